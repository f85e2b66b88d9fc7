//! Hinted handoff: delivering the states this node kept for owners that
//! were unreachable when they were written.
//!
//! A fallback node that takes a write for an unreachable owner merges it
//! into its own store and records a durable hint marker (owner, key) in the
//! same RocksDB commit, so hints survive restarts. This task hands each
//! hinted key's current state to its owner once the owner is reachable
//! again (or, if the owner left the ring, to the key's current owners),
//! then clears the marker; when this node does not own the key itself, it
//! drops its copy too. Delivery is paced to a configured key rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;

use crate::config::Pacing;
use crate::membership::{Membership, by_peer};
use crate::pacing::pace;
use crate::peer::Peer;
use crate::periodic::{PeriodicTask, RoundError};
use crate::storage::{Hint, Storage};
use crate::transport::{Dialing, Request, Response, Transport};
use crate::version::Object;

/// Hints delivered per request.
const BATCH: usize = 128;
/// Pending hints (in total) beyond which the backlog is warned about.
const BACKLOG_WARN_HINTS: u64 = 10_000;

/// Handoff counters.
#[derive(Default)]
pub struct HandoffStats {
    delivered: AtomicU64,
    failed: AtomicU64,
}

/// A snapshot of [`HandoffStats`] plus the backlog.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct HandoffReport {
    /// Hint markers not yet delivered.
    pub pending: u64,
    /// Keys handed to their owners so far.
    pub delivered: u64,
    /// Delivery attempts that failed.
    pub failed: u64,
}

/// Delivers hints in the background.
pub struct Handoff {
    storage: Arc<Storage>,
    membership: Arc<Membership>,
    transport: Transport,
    interval: Duration,
    keys_per_sec: u64,
    stats: HandoffStats,
    backlog: BacklogAlarm,
}

/// Whether the hint backlog is above [`BACKLOG_WARN_HINTS`], so that
/// crossing it is logged once each way: a warning when it grows past it,
/// a notice when it is drained.
#[derive(Default)]
struct BacklogAlarm {
    raised: AtomicBool,
}

/// A change of the backlog worth a log line.
#[derive(Debug, PartialEq, Eq)]
enum BacklogChange {
    /// The backlog grew past the threshold.
    Raised,
    /// The backlog that had been raised is empty again.
    Drained,
}

impl BacklogAlarm {
    /// Notes `pending` hints; returns the change to log, if any.
    fn observe(&self, pending: u64) -> Option<BacklogChange> {
        let raised = self.raised.load(Ordering::Relaxed);
        if !raised && pending > BACKLOG_WARN_HINTS {
            self.raised.store(true, Ordering::Relaxed);
            return Some(BacklogChange::Raised);
        }
        if raised && pending == 0 {
            self.raised.store(false, Ordering::Relaxed);
            return Some(BacklogChange::Drained);
        }
        None
    }
}

impl Handoff {
    /// Handoff over this node's store, paced by `pacing`.
    pub fn new(
        storage: Arc<Storage>,
        membership: Arc<Membership>,
        dialing: Dialing,
        pacing: Pacing,
    ) -> Self {
        Self {
            storage,
            membership,
            transport: Transport::dialing(dialing),
            interval: pacing.interval,
            keys_per_sec: pacing.keys_per_sec.max(1),
            stats: HandoffStats::default(),
            backlog: BacklogAlarm::default(),
        }
    }

    /// Current counters.
    pub fn report(&self) -> HandoffReport {
        HandoffReport {
            pending: self.storage.hints_pending(),
            delivered: self.stats.delivered.load(Ordering::Relaxed),
            failed: self.stats.failed.load(Ordering::Relaxed),
        }
    }

    /// One pass over every owner this node holds hints for.
    async fn deliver_all(&self) -> Result<(), RoundError> {
        let owners = self
            .storage
            .hinted_owners()
            .map_err(|error| RoundError::local("listing hints", error))?;
        let view = self.membership.view();
        for owner in owners {
            // Hints for a member that left the ring go to the key's current
            // owners, whatever the failure detector last said of it.
            let member = view.peer(&owner).is_some();
            if owner == self.membership.me() || (member && !self.membership.is_usable(&owner)) {
                continue;
            }
            loop {
                let started = Instant::now();
                let hints = match self.storage.hints_for(&owner, BATCH) {
                    Ok(hints) if !hints.is_empty() => hints,
                    Ok(_) => break,
                    Err(error) => return Err(RoundError::local("reading hints", error)),
                };
                let count = hints.len();
                if !self.deliver(&owner, hints).await {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                pace(count, self.keys_per_sec, started).await;
            }
        }
        Ok(())
    }

    /// Hands one batch of `owner`'s hints over; says whether it was taken.
    async fn deliver(&self, owner: &str, hints: Vec<Hint>) -> bool {
        let view = self.membership.view();
        let mut items: Vec<(Bytes, Object, u64)> = Vec::with_capacity(hints.len());
        for hint in &hints {
            match self.storage.get_with_digest(&hint.key) {
                Ok(Some((object, digest))) => items.push((hint.key.clone(), object, digest)),
                // Nothing (or nothing readable) to hand over: drop the marker.
                _ => items.push((hint.key.clone(), Object::new(), 0)),
            }
        }
        // The owner itself, or the keys' current owners if it left the ring.
        let recipients: Vec<Vec<Arc<Peer>>> = match view.peer(owner) {
            Some(peer) => vec![vec![peer.clone()]; items.len()],
            None => items
                .iter()
                .map(|(key, _, _)| view.replicas(key).owners().to_vec())
                .collect(),
        };
        let sends = items
            .iter()
            .zip(&recipients)
            .filter(|((_, object, _), _)| !object.is_empty())
            .flat_map(|((key, object, _), peers)| {
                peers
                    .iter()
                    .filter(|peer| !self.membership.is_me(peer))
                    .map(move |peer| (peer.clone(), (key.clone(), object.clone())))
            });
        for (peer, batch) in by_peer(sends) {
            let request = Request::MergeBatch { items: batch };
            match self.transport.call(&peer, &request).await {
                Ok(Response::Written) => {}
                Ok(_) | Err(_) => return false,
            }
        }
        for (hint, (key, _, digest)) in hints.into_iter().zip(items) {
            match self
                .storage
                .clear_hint(owner.to_string(), key.clone(), hint.seq)
                .await
            {
                Ok(true) => {
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    self.drop_stray_copy(&view, key, digest).await;
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "clearing a hint"),
            }
        }
        true
    }

    /// Deletes this node's copy of a handed-over key it does not own, unless
    /// it changed since or other owners still have hints on it.
    async fn drop_stray_copy(&self, view: &crate::membership::View, key: Bytes, digest: u64) {
        let replicas = view.replicas(&key);
        if digest == 0 || replicas.owners().iter().any(|p| self.membership.is_me(p)) {
            return;
        }
        let owners: Vec<&str> = replicas
            .owners()
            .iter()
            .map(|p| p.member.id.as_str())
            .collect();
        match self.storage.has_hint(&key, &owners) {
            Ok(false) => {
                if let Err(error) = self.storage.delete_relocated(key, digest).await {
                    tracing::warn!(%error, "dropping a handed-over copy");
                }
            }
            Ok(true) => {}
            Err(error) => tracing::warn!(%error, "checking hints"),
        }
    }
}

impl PeriodicTask for Handoff {
    fn name(&self) -> &'static str {
        "handoff"
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    /// Delivers every pending hint, if there are any, logging the
    /// backlog crossing its threshold either way.
    async fn round(&self) -> Result<(), RoundError> {
        let pending = self.storage.hints_pending();
        match self.backlog.observe(pending) {
            Some(BacklogChange::Raised) => tracing::warn!(
                pending,
                threshold = BACKLOG_WARN_HINTS,
                "hint backlog: {pending} writes wait for owners that were unreachable; \
                 they are delivered once the owners answer"
            ),
            Some(BacklogChange::Drained) => tracing::info!("hint backlog drained"),
            None => {}
        }
        if pending > 0 {
            self.deliver_all().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_is_reported_once_when_raised_and_once_when_drained() {
        let alarm = BacklogAlarm::default();
        assert_eq!(alarm.observe(5), None);
        assert_eq!(
            alarm.observe(BACKLOG_WARN_HINTS + 1),
            Some(BacklogChange::Raised)
        );
        assert_eq!(alarm.observe(BACKLOG_WARN_HINTS + 500), None);
        assert_eq!(alarm.observe(3), None, "not drained until empty");
        assert_eq!(alarm.observe(0), Some(BacklogChange::Drained));
        assert_eq!(alarm.observe(0), None);
    }
}
