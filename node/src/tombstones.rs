//! Tombstone purging.
//!
//! A delete is stored as a tombstone version so that replicas which missed
//! it cannot bring the old value back. This task removes tombstones when
//! that can no longer happen:
//! - once a tombstone is older than `min_age` and every owner of the key
//!   holds the identical record, it is removed on all of them (each only if
//!   its record is still that tombstone);
//! - once it is older than the grace period (default 10 days), it is
//!   removed locally whatever the other replicas hold, as Cassandra's
//!   `gc_grace_seconds` does: a replica that stayed unreachable longer
//!   than that must be rebuilt rather than merged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dynamo_ring::key_hash;
use serde::Serialize;
use tokio::sync::watch;

use crate::background::every;
use crate::config::Peer;
use crate::membership::{Membership, View, by_peer};
use crate::storage::{Storage, now_ms, object_digest};
use crate::transport::{Dialing, Request, Response, Transport};

/// Tombstones examined per batch.
const BATCH: usize = 256;

/// When tombstones may go.
#[derive(Clone, Copy, Debug)]
pub struct TombstonePolicy {
    /// Youngest tombstone purged once every replica holds it.
    pub min_age: Duration,
    /// Age after which a tombstone is purged locally regardless.
    pub grace: Duration,
}

/// Purge counters.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct TombstoneReport {
    /// Tombstones removed after every replica confirmed it.
    pub purged_confirmed: u64,
    /// Tombstones removed because the grace period passed.
    pub purged_expired: u64,
}

/// The purging task.
pub struct TombstoneGc {
    storage: Arc<Storage>,
    membership: Arc<Membership>,
    transport: Transport,
    policy: TombstonePolicy,
    confirmed: AtomicU64,
    expired: AtomicU64,
}

impl TombstoneGc {
    /// Purging under `policy`.
    pub fn new(
        storage: Arc<Storage>,
        membership: Arc<Membership>,
        dialing: Dialing,
        policy: TombstonePolicy,
    ) -> Self {
        Self {
            storage,
            membership,
            transport: Transport::dialing(dialing),
            policy,
            confirmed: AtomicU64::new(0),
            expired: AtomicU64::new(0),
        }
    }

    /// Counters so far.
    pub fn report(&self) -> TombstoneReport {
        TombstoneReport {
            purged_confirmed: self.confirmed.load(Ordering::Relaxed),
            purged_expired: self.expired.load(Ordering::Relaxed),
        }
    }

    /// Scans the tombstone index every `interval` until `stop` turns true.
    pub async fn run(self: Arc<Self>, interval: Duration, stop: watch::Receiver<bool>) {
        every(interval, stop, || self.sweep()).await;
    }

    /// One pass over the tombstone index.
    pub async fn sweep(&self) {
        let mut after: Option<Bytes> = None;
        loop {
            let batch = match self.storage.tombstones(after.as_deref(), BATCH) {
                Ok(batch) if !batch.is_empty() => batch,
                Ok(_) => return,
                Err(error) => {
                    tracing::warn!(%error, "reading the tombstone index");
                    return;
                }
            };
            after = batch.last().map(|(key, _)| key.clone());
            let now = now_ms();
            let age = |since: u64| Duration::from_millis(now.saturating_sub(since));
            let mut candidates = Vec::new();
            for (key, since) in batch {
                if age(since) >= self.policy.grace {
                    if self.purge_local(&key).await {
                        self.expired.fetch_add(1, Ordering::Relaxed);
                    }
                } else if age(since) >= self.policy.min_age {
                    candidates.push(key);
                }
            }
            self.purge_confirmed(candidates).await;
        }
    }

    async fn purge_local(&self, key: &Bytes) -> bool {
        let Ok(digest) = self.storage.digest(key) else {
            return false;
        };
        self.storage
            .delete_if(key.clone(), digest)
            .await
            .unwrap_or(false)
    }

    /// The owners of `key` other than this node.
    fn other_owners(&self, view: &View, key: &[u8]) -> Vec<Arc<Peer>> {
        view.replicas(key)
            .owners()
            .iter()
            .filter(|peer| !self.membership.is_me(peer))
            .cloned()
            .collect()
    }

    /// Purges the keys whose every owner holds the same tombstone as here.
    /// Each other owner is asked once, for all the keys it shares.
    async fn purge_confirmed(&self, keys: Vec<Bytes>) {
        let view = self.membership.view();
        let mut local: Vec<(Bytes, u64)> = Vec::new();
        for key in keys {
            let owned = view
                .replicas(&key)
                .owners()
                .iter()
                .any(|p| self.membership.is_me(p));
            if let Ok(digest) = self.storage.digest(&key)
                && digest != 0
                && owned
            {
                local.push((key, digest));
            }
        }
        let asks = local.iter().enumerate().flat_map(|(i, (key, _))| {
            self.other_owners(&view, key)
                .into_iter()
                .map(move |peer| (peer, i))
        });
        let mut agreed = vec![true; local.len()];
        for (peer, indices) in by_peer(asks) {
            let keys: Vec<Bytes> = indices.iter().map(|&i| local[i].0.clone()).collect();
            let remote = match self
                .transport
                .call(&peer, &Request::ReadBatch { keys })
                .await
            {
                Ok(Response::Objects(objects)) if objects.len() == indices.len() => objects,
                _ => {
                    indices.iter().for_each(|&i| agreed[i] = false);
                    continue;
                }
            };
            for (&i, object) in indices.iter().zip(remote) {
                let (key, digest) = &local[i];
                let theirs = object.map_or(0, |o| object_digest(key_hash(key), &o));
                agreed[i] &= theirs == *digest;
            }
        }
        let confirmed: Vec<(Bytes, u64)> = local
            .into_iter()
            .zip(agreed)
            .filter_map(|(item, agreed)| agreed.then_some(item))
            .collect();
        if confirmed.is_empty() {
            return;
        }
        // Every owner holds exactly these tombstones: remove them everywhere.
        let sends = confirmed.iter().flat_map(|(key, digest)| {
            self.other_owners(&view, key)
                .into_iter()
                .map(move |peer| (peer, (key.clone(), *digest)))
        });
        for (peer, items) in by_peer(sends) {
            let request = Request::PurgeTombstones { items };
            if let Err(error) = self.transport.call(&peer, &request).await {
                tracing::debug!(peer = %peer.member.id, %error, "tombstone purge request failed");
            }
        }
        for (key, digest) in confirmed {
            if let Ok(true) = self.storage.delete_if(key, digest).await {
                self.confirmed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
