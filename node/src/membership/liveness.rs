//! Local failure detection from request outcomes and periodic probes.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dynamo_ring::NodeId;
use serde::Serialize;

use crate::sync::{read, write};

/// Consecutive failures after which a suspect peer is considered down.
const DOWN_AFTER_FAILURES: u32 = 3;

/// How this node currently sees a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    /// Not contacted yet.
    Unknown,
    /// The last contact succeeded.
    Alive,
    /// Recent contacts failed, but not enough to give up on it.
    Suspect,
    /// Several consecutive contacts failed.
    Down,
}

/// A peer's state plus when it last answered.
#[derive(Clone, Debug, Serialize)]
pub struct PeerStatus {
    /// Current verdict.
    pub state: PeerState,
    /// Milliseconds since the peer last answered, if it ever did.
    pub last_heard_ms: Option<u64>,
}

/// One peer's record, updated without exclusive locks (every replica call
/// records its outcome, and every request checks usability).
#[derive(Default)]
struct Record {
    /// Milliseconds after [`Liveness::epoch`] of the last answer, plus one
    /// (0: never answered).
    last_ok: AtomicU64,
    failures: AtomicU32,
}

/// Per-peer record of successes and failures.
pub struct Liveness {
    epoch: Instant,
    records: RwLock<HashMap<NodeId, Record>>,
}

impl Liveness {
    /// Tracks the given peers, all unknown.
    pub fn new(ids: impl IntoIterator<Item = NodeId>) -> Self {
        let records = ids.into_iter().map(|id| (id, Record::default())).collect();
        Self {
            epoch: Instant::now(),
            records: RwLock::new(records),
        }
    }

    /// A request to `id` succeeded. A peer that was down is logged as
    /// reachable again (once: only the success ending the run of failures
    /// sees them).
    pub fn record_success(&self, id: &str) {
        let stamp = duration_ms(self.epoch.elapsed()).saturating_add(1);
        self.with_record(id, |record| {
            let last_ok = record.last_ok.swap(stamp, Ordering::Relaxed);
            let failures = record.failures.swap(0, Ordering::Relaxed);
            if failures >= DOWN_AFTER_FAILURES {
                let down_ms = stamp.saturating_sub(last_ok);
                tracing::info!(
                    peer = %id,
                    failures,
                    "peer {id} is reachable again ({}) after {failures} failed requests",
                    heard_before(last_ok, down_ms)
                );
            }
        });
    }

    /// A request to `id` failed to get an answer. The failure that makes
    /// the peer down is logged (once per outage: the ones after it do not
    /// cross the threshold again).
    pub fn record_failure(&self, id: &str) {
        let now = duration_ms(self.epoch.elapsed());
        self.with_record(id, |record| {
            let before = record
                .failures
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| {
                    Some(f.saturating_add(1))
                })
                .unwrap_or_default();
            if before.saturating_add(1) == DOWN_AFTER_FAILURES {
                let last_ok = record.last_ok.load(Ordering::Relaxed);
                let since = now.saturating_sub(last_ok.saturating_sub(1));
                tracing::warn!(
                    peer = %id,
                    failures = DOWN_AFTER_FAILURES,
                    "peer {id} is unreachable: {DOWN_AFTER_FAILURES} requests in a row failed ({}); \
                     it is routed around until it answers again",
                    heard_before(last_ok, since)
                );
            }
        });
    }

    /// Current view of `id`.
    pub fn status(&self, id: &str) -> PeerStatus {
        let records = read(&self.records);
        let Some(record) = records.get(id) else {
            return PeerStatus {
                state: PeerState::Unknown,
                last_heard_ms: None,
            };
        };
        let failures = record.failures.load(Ordering::Relaxed);
        let last_ok = record.last_ok.load(Ordering::Relaxed);
        let state = match (failures, last_ok) {
            (0, 0) => PeerState::Unknown,
            (0, _) => PeerState::Alive,
            (f, _) if f >= DOWN_AFTER_FAILURES => PeerState::Down,
            _ => PeerState::Suspect,
        };
        let now = duration_ms(self.epoch.elapsed());
        PeerStatus {
            state,
            last_heard_ms: (last_ok > 0).then(|| now.saturating_sub(last_ok - 1)),
        }
    }

    /// Whether `id` is believed reachable (alive or not yet known).
    pub fn is_usable(&self, id: &str) -> bool {
        let records = read(&self.records);
        records
            .get(id)
            .is_none_or(|r| r.failures.load(Ordering::Relaxed) < DOWN_AFTER_FAILURES)
    }

    fn with_record(&self, id: &str, update: impl Fn(&Record)) {
        {
            let records = read(&self.records);
            if let Some(record) = records.get(id) {
                update(record);
                return;
            }
        }
        let mut records = write(&self.records);
        update(records.entry(id.to_string()).or_default());
    }
}

/// When a peer last answered, for a log line: `last_ok` as in [`Record`],
/// `ago_ms` the time since.
fn heard_before(last_ok: u64, ago_ms: u64) -> String {
    match last_ok {
        0 => "it never answered".to_string(),
        _ => format!("last answer {:.1} s earlier", ago_ms as f64 / 1000.0),
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_outcomes() {
        let l = Liveness::new(["b".to_string()]);
        assert_eq!(l.status("b").state, PeerState::Unknown);
        l.record_success("b");
        assert_eq!(l.status("b").state, PeerState::Alive);
        assert!(l.status("b").last_heard_ms.is_some());
        l.record_failure("b");
        assert_eq!(l.status("b").state, PeerState::Suspect);
        assert!(l.is_usable("b"));
        l.record_failure("b");
        l.record_failure("b");
        assert_eq!(l.status("b").state, PeerState::Down);
        assert!(!l.is_usable("b"));
        l.record_success("b");
        assert_eq!(l.status("b").state, PeerState::Alive);
        assert_eq!(l.status("zz").state, PeerState::Unknown);
    }
}
