//! Local failure detection from request outcomes and periodic probes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dynamo_ring::NodeId;
use serde::Serialize;

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

#[derive(Default)]
struct Record {
    last_ok: Option<Instant>,
    failures: u32,
}

/// Per-peer record of successes and failures.
pub struct Liveness {
    records: Mutex<HashMap<NodeId, Record>>,
}

impl Liveness {
    /// Tracks the given peers, all unknown.
    pub fn new(ids: impl IntoIterator<Item = NodeId>) -> Self {
        let records = ids.into_iter().map(|id| (id, Record::default())).collect();
        Self {
            records: Mutex::new(records),
        }
    }

    /// A request to `id` succeeded.
    pub fn record_success(&self, id: &str) {
        let mut records = self.lock();
        let record = records.entry(id.to_string()).or_default();
        record.last_ok = Some(Instant::now());
        record.failures = 0;
    }

    /// A request to `id` failed to get an answer.
    pub fn record_failure(&self, id: &str) {
        let mut records = self.lock();
        let record = records.entry(id.to_string()).or_default();
        record.failures = record.failures.saturating_add(1);
    }

    /// Current view of `id`.
    pub fn status(&self, id: &str) -> PeerStatus {
        let records = self.lock();
        let Some(record) = records.get(id) else {
            return PeerStatus {
                state: PeerState::Unknown,
                last_heard_ms: None,
            };
        };
        let state = match (record.failures, record.last_ok) {
            (0, Some(_)) => PeerState::Alive,
            (0, None) => PeerState::Unknown,
            (f, _) if f >= DOWN_AFTER_FAILURES => PeerState::Down,
            _ => PeerState::Suspect,
        };
        PeerStatus {
            state,
            last_heard_ms: record.last_ok.map(|t| duration_ms(t.elapsed())),
        }
    }

    /// Whether `id` is believed reachable (alive or not yet known).
    pub fn is_usable(&self, id: &str) -> bool {
        !matches!(self.status(id).state, PeerState::Down)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, Record>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
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
