//! What one version holds: a value (with, optionally, its attributes: a
//! content type, user metadata, an expiry), or a delete.
//!
//! The encoding keeps the versions every release stored readable as they
//! are: postcard writes an enum's variant index where it wrote an
//! `Option`'s tag, so [`Content::Deleted`] and [`Content::Value`] are
//! byte for byte the `None` and `Some(value)` of the releases before
//! attributes existed. Only [`Content::Described`] is new: it is what data
//! format 2 and node-to-node protocol 3 add (see `storage/format.rs` and
//! `transport/handshake.rs`).

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Bound of the encoded size of attributes besides their strings: the
/// presence tags, the list length, the expiry and each string's length.
const ATTRIBUTES_OVERHEAD: usize = 24;
/// Bound of the encoded length prefixes of one metadata entry.
const ENTRY_OVERHEAD: usize = 10;

/// One version's payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Content {
    /// A delete (a tombstone).
    Deleted,
    /// A value without attributes.
    Value(Bytes),
    /// A value with attributes (boxed: most values have none).
    Described(Bytes, Box<Attributes>),
}

/// What a client said about a value besides its bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes {
    /// The `Content-Type` it was written with.
    pub content_type: Option<String>,
    /// User metadata (`X-Dynamo-Meta-{name}: {value}`), sorted by name,
    /// names in lower case.
    pub meta: Vec<(String, String)>,
    /// When the value expires, in milliseconds since the Unix epoch: from
    /// then on it reads as deleted.
    pub expires_at: Option<u64>,
}

impl Attributes {
    /// Whether there is nothing to keep (a value with such attributes is
    /// stored as a plain [`Content::Value`]).
    pub fn is_empty(&self) -> bool {
        self.content_type.is_none() && self.meta.is_empty() && self.expires_at.is_none()
    }

    /// Bound of their encoded size.
    pub fn size_bound(&self) -> usize {
        let content_type = self.content_type.as_ref().map_or(0, String::len);
        let meta = self.meta.iter().fold(0usize, |total, (name, value)| {
            total
                .saturating_add(name.len())
                .saturating_add(value.len())
                .saturating_add(ENTRY_OVERHEAD)
        });
        content_type
            .saturating_add(meta)
            .saturating_add(ATTRIBUTES_OVERHEAD)
    }
}

impl Content {
    /// A value with `attributes`, stored plain when they are empty.
    pub fn value(value: Bytes, attributes: Attributes) -> Self {
        match attributes.is_empty() {
            true => Content::Value(value),
            false => Content::Described(value, Box::new(attributes)),
        }
    }

    /// The value, whether or not it has expired; `None` for a delete.
    pub fn bytes(&self) -> Option<&Bytes> {
        match self {
            Content::Deleted => None,
            Content::Value(value) | Content::Described(value, _) => Some(value),
        }
    }

    /// The attributes, if the value has any.
    pub fn attributes(&self) -> Option<&Attributes> {
        match self {
            Content::Described(_, attributes) => Some(attributes),
            _ => None,
        }
    }

    /// When the value expires, if it does.
    pub fn expires_at(&self) -> Option<u64> {
        self.attributes().and_then(|a| a.expires_at)
    }

    /// Whether it is a value that has not expired at `now` (ms since the
    /// Unix epoch).
    pub fn is_live(&self, now: u64) -> bool {
        self.bytes().is_some() && self.expires_at().is_none_or(|at| now < at)
    }

    /// Whether it is a value whose expiry has passed at `now`.
    pub fn has_expired(&self, now: u64) -> bool {
        self.bytes().is_some() && self.expires_at().is_some_and(|at| now >= at)
    }

    /// Whether encoding it needs data format 2 and protocol 3.
    pub fn is_described(&self) -> bool {
        matches!(self, Content::Described(..))
    }

    /// Bound of the encoded size of the value and its attributes.
    pub fn size_bound(&self) -> usize {
        let value = self.bytes().map_or(0, Bytes::len);
        value.saturating_add(self.attributes().map_or(0, Attributes::size_bound))
    }
}

impl From<Option<Bytes>> for Content {
    /// A plain value, or a delete for `None`.
    fn from(value: Option<Bytes>) -> Self {
        value.map_or(Content::Deleted, Content::Value)
    }
}

/// Milliseconds since the Unix epoch by this node's clock (0 before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described() -> Content {
        Content::value(
            Bytes::from_static(b"v"),
            Attributes {
                content_type: Some("text/plain".into()),
                meta: vec![("owner".into(), "ops".into())],
                expires_at: Some(1_000),
            },
        )
    }

    /// A plain value and a delete encode exactly as the `Option<Bytes>`
    /// of the releases before attributes, both ways.
    #[test]
    fn plain_content_encodes_as_the_option_it_replaced() {
        for old in [None, Some(Bytes::from_static(b"value"))] {
            let new = Content::from(old.clone());
            let bytes = postcard::to_stdvec(&old).unwrap();
            assert_eq!(postcard::to_stdvec(&new).unwrap(), bytes);
            assert_eq!(postcard::from_bytes::<Content>(&bytes).unwrap(), new);
        }
    }

    /// A described value does not decode as the old `Option` (an old
    /// release refuses it rather than misreading it).
    #[test]
    fn a_described_value_is_not_an_old_option() {
        let bytes = postcard::to_stdvec(&described()).unwrap();
        assert!(postcard::from_bytes::<Option<Bytes>>(&bytes).is_err());
        assert_eq!(
            postcard::from_bytes::<Content>(&bytes).unwrap(),
            described()
        );
        assert!(bytes.len() <= described().size_bound() + 1);
    }

    #[test]
    fn a_value_is_live_until_its_expiry() {
        let content = described();
        assert!(content.is_live(999) && !content.has_expired(999));
        assert!(!content.is_live(1_000) && content.has_expired(1_000));
        assert!(!Content::Deleted.is_live(0) && !Content::Deleted.has_expired(u64::MAX));
        assert!(Content::Value(Bytes::new()).is_live(u64::MAX));
    }

    #[test]
    fn empty_attributes_store_a_plain_value() {
        let plain = Content::value(Bytes::from_static(b"v"), Attributes::default());
        assert_eq!(plain, Content::Value(Bytes::from_static(b"v")));
        assert!(!plain.is_described() && described().is_described());
    }
}
