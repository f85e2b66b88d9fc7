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

use crate::antientropy::record_digest;
use crate::membership::{Membership, by_peer};
use crate::storage::{Storage, now_ms};
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
    pub async fn run(self: Arc<Self>, interval: Duration, mut stop: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            tokio::select! {
                _ = self.sweep() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
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

    /// Purges the keys whose every owner holds the same tombstone as here.
    async fn purge_confirmed(&self, keys: Vec<Bytes>) {
        let view = self.membership.view();
        let mut confirmed: Vec<(Bytes, u64)> = Vec::new();
        'keys: for key in keys {
            let Ok(local) = self.storage.digest(&key) else {
                continue;
            };
            let replicas = view.replicas(&key);
            if local == 0 || !replicas.owners().iter().any(|p| self.membership.is_me(p)) {
                continue;
            }
            for peer in replicas.owners() {
                if self.membership.is_me(peer) {
                    continue;
                }
                let request = Request::ReadBatch {
                    keys: vec![key.clone()],
                };
                let remote = match self.transport.call(peer, &request).await {
                    Ok(Response::Objects(mut objects)) if objects.len() == 1 => objects.pop(),
                    _ => continue 'keys,
                };
                let digest = remote.flatten().map_or(0, |object| {
                    let bytes = postcard::to_stdvec(&object).unwrap_or_default();
                    record_digest(key_hash(&key), &bytes)
                });
                if digest != local {
                    continue 'keys;
                }
            }
            confirmed.push((key, local));
        }
        if confirmed.is_empty() {
            return;
        }
        // Every owner holds exactly these tombstones: remove them everywhere.
        let sends = confirmed.iter().flat_map(|(key, digest)| {
            let owners = view.replicas(key).owners().to_vec();
            owners
                .into_iter()
                .filter(|peer| !self.membership.is_me(peer))
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
