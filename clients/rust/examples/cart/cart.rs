//! The paper's shopping cart as an observed-remove set in JSON: every add
//! carries a fresh tag, a remove hides the tags it has seen, and siblings
//! merge by union, so concurrent adds are never lost and an add wins over
//! a concurrent remove. The layout is the same in the Python and Go
//! clients' examples:
//!
//! `{"adds": {"<item>": ["<tag>", ...]}, "removes": {"<item>": ["<tag>", ...]}}`

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use dynamo_client::{Client, Error};
use serde::{Deserialize, Serialize};

/// A cart's state: add tags and removed tags per item.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    #[serde(default)]
    adds: BTreeMap<String, BTreeSet<String>>,
    #[serde(default)]
    removes: BTreeMap<String, BTreeSet<String>>,
}

impl Cart {
    /// The union of sibling carts (an unreadable sibling counts as empty).
    pub fn merge(siblings: &[Bytes]) -> Cart {
        let mut cart = Cart::default();
        for sibling in siblings {
            let other: Cart = serde_json::from_slice(sibling).unwrap_or_default();
            for (item, tags) in other.adds {
                cart.adds.entry(item).or_default().extend(tags);
            }
            for (item, tags) in other.removes {
                cart.removes.entry(item).or_default().extend(tags);
            }
        }
        cart
    }

    /// Adds `item` under a fresh tag.
    pub fn add(&mut self, item: &str) {
        let tag = format!("{:032x}", rand::random::<u128>());
        self.adds.entry(item.to_string()).or_default().insert(tag);
    }

    /// Removes `item` as this cart sees it: its add tags become removed.
    pub fn remove(&mut self, item: &str) {
        if let Some(tags) = self.adds.get(item) {
            let tags = tags.clone();
            self.removes
                .entry(item.to_string())
                .or_default()
                .extend(tags);
        }
    }

    /// The items in the cart: those with an add tag not removed.
    pub fn items(&self) -> BTreeSet<String> {
        let removed = |item: &str, tag: &String| {
            self.removes
                .get(item)
                .is_some_and(|tags| tags.contains(tag))
        };
        self.adds
            .iter()
            .filter(|(item, tags)| tags.iter().any(|tag| !removed(item, tag)))
            .map(|(item, _)| item.clone())
            .collect()
    }

    fn to_bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("a cart serialises"))
    }
}

/// Adds `item` to the cart stored at `key`, merging its siblings first.
pub async fn add(client: &Client, key: &str, item: &str) -> Result<(), Error> {
    change(client, key, |cart| cart.add(item)).await
}

/// Removes `item` from the cart stored at `key`, merging its siblings first.
pub async fn remove(client: &Client, key: &str, item: &str) -> Result<(), Error> {
    change(client, key, |cart| cart.remove(item)).await
}

/// The items of the cart stored at `key`.
pub async fn items(client: &Client, key: &str) -> Result<BTreeSet<String>, Error> {
    Ok(Cart::merge(&client.get(key).await?.values).items())
}

async fn change(client: &Client, key: &str, edit: impl FnOnce(&mut Cart)) -> Result<(), Error> {
    client
        .update(key, |siblings| {
            let mut cart = Cart::merge(siblings);
            edit(&mut cart);
            Some(cart.to_bytes())
        })
        .await?;
    Ok(())
}
