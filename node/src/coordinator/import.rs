//! Importing a backup's records: each record is merged into every current
//! owner of its key, as anti-entropy and hinted handoff merge states, so
//! importing several replicas' backups yields their union and importing
//! the same records again changes nothing.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::join_all;

use super::Coordinator;
use crate::peer::Peer;
use crate::transport::limits::{BATCH_BYTES, MAX_BATCH_ITEMS};
use crate::transport::{Request, Response};
use crate::version::Object;

/// A record to import.
#[derive(Clone)]
pub struct Imported {
    /// The user key.
    pub key: Bytes,
    /// Its state.
    pub object: Object,
    /// The size of its stored encoding (for batching).
    pub size: usize,
}

/// Owners an import could not reach, with why.
#[derive(Debug, thiserror::Error)]
#[error("{} of the keys' owners did not take the records: {}", .0.len(), describe(.0))]
pub struct ImportIncomplete(pub Vec<(String, String)>);

fn describe(failures: &[(String, String)]) -> String {
    let parts: Vec<_> = failures
        .iter()
        .map(|(owner, why)| format!("{owner}: {why}"))
        .collect();
    parts.join("; ")
}

impl Coordinator {
    /// Merges every `(key, state)` into each current owner of the key;
    /// returns once every owner has them durably, or which owners failed
    /// (what the others took stays: a retry merges it again, harmlessly).
    pub async fn import(&self, items: Vec<Imported>) -> Result<(), ImportIncomplete> {
        let view = self.membership.view();
        let mut by_owner: HashMap<String, (Arc<Peer>, Vec<Imported>)> = HashMap::new();
        for item in items {
            for owner in view.replicas(&item.key).owners() {
                by_owner
                    .entry(owner.member.id.clone())
                    .or_insert_with(|| (owner.clone(), Vec::new()))
                    .1
                    .push(item.clone());
            }
        }
        let merges = by_owner.into_values().map(|(owner, items)| async move {
            let result = self.merge_into(&owner, items).await;
            result.map_err(|why| (owner.member.id.clone(), why))
        });
        let failures: Vec<_> = join_all(merges)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect();
        match failures.is_empty() {
            true => Ok(()),
            false => Err(ImportIncomplete(failures)),
        }
    }

    /// Merges `items` into `owner`'s store, local or remote, in batches a
    /// merge request carries.
    async fn merge_into(&self, owner: &Peer, items: Vec<Imported>) -> Result<(), String> {
        if self.is_me(owner) {
            let merges = items
                .into_iter()
                .map(|item| self.storage.merge(item.key, item.object));
            return join_all(merges)
                .await
                .into_iter()
                .collect::<Result<(), _>>()
                .map_err(|e| e.to_string());
        }
        for batch in batches(items) {
            match self
                .call(owner, &Request::MergeBatch { items: batch })
                .await
            {
                Ok(Response::Written) => {}
                Ok(other) => return Err(format!("unexpected reply {other:?}")),
                Err(error) => return Err(error.to_string()),
            }
        }
        Ok(())
    }
}

/// `items` cut into merge batches of at most [`MAX_BATCH_ITEMS`] items and
/// about [`BATCH_BYTES`] of keys and values (one item when it is larger).
fn batches(items: Vec<Imported>) -> Vec<Vec<(Bytes, Object)>> {
    let mut out: Vec<Vec<(Bytes, Object)>> = Vec::new();
    let mut size = 0;
    for Imported {
        key,
        object,
        size: stored,
    } in items
    {
        let item_size = key.len() + stored;
        let full = out.last().is_none_or(|batch| {
            batch.len() >= MAX_BATCH_ITEMS || (!batch.is_empty() && size + item_size > BATCH_BYTES)
        });
        if full {
            out.push(Vec::new());
            size = 0;
        }
        size += item_size;
        if let Some(batch) = out.last_mut() {
            batch.push((key, object));
        }
    }
    out
}
