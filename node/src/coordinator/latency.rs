//! What replica calls took lately, so that a slow replica does not hold
//! requests (the paper's 99.9th percentile; "The Tail at Scale"):
//!
//! - per peer, a smoothed latency and how long it has had calls in flight
//!   without answering any (a peer in a GC pause or on a stalled disk
//!   answers nothing: that wait grows and it sorts last, long before the
//!   failure detector gives up on it);
//! - over all peers, a smoothed latency and deviation (as TCP's
//!   retransmission timer keeps them): a read that has not heard from
//!   enough replicas after [`Latencies::hedge_delay`] asks one more.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::sync::{read, write};

/// Shortest hedge delay: below it, hedges would double the replica load
/// for gains lost in scheduling noise.
pub const MIN_HEDGE: Duration = Duration::from_millis(5);
/// Longest hedge delay: a replica that has not answered by then is slow
/// for this request, whatever the recent latencies say.
pub const MAX_HEDGE: Duration = Duration::from_millis(50);

/// Recent replica latencies.
pub struct Latencies {
    epoch: Instant,
    peers: RwLock<HashMap<String, Peer>>,
    /// Smoothed latency of all sampled calls, µs.
    smoothed_us: AtomicU64,
    /// Smoothed deviation from it, µs.
    deviation_us: AtomicU64,
}

/// One peer's record, updated without exclusive locks.
#[derive(Default)]
struct Peer {
    /// Smoothed latency of its answers, µs.
    smoothed_us: AtomicU64,
    /// Calls in flight.
    in_flight: AtomicU32,
    /// Microseconds after the epoch since when the calls in flight have
    /// waited without any answer (the last answer, or the first call of a
    /// busy spell).
    waiting_since_us: AtomicU64,
}

/// One call in flight; [`Flight::answered`] or [`Flight::failed`] ends it.
pub struct Flight<'a> {
    latencies: &'a Latencies,
    peer: String,
    started: Instant,
    /// Whether its latency counts toward the hedge delay.
    sampled: bool,
}

impl Default for Latencies {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            peers: RwLock::default(),
            smoothed_us: AtomicU64::new(0),
            deviation_us: AtomicU64::new(0),
        }
    }
}

impl Latencies {
    /// Notes a call to `peer` starting now. `sampled`: whether its latency
    /// is a replica read's or write's (a scan or a forwarded write takes
    /// longer by nature and would inflate the hedge delay).
    pub fn start(&self, peer: &str, sampled: bool) -> Flight<'_> {
        self.with_peer(peer, |record| {
            if record.in_flight.fetch_add(1, Ordering::Relaxed) == 0 {
                record
                    .waiting_since_us
                    .store(self.now_us(), Ordering::Relaxed);
            }
        });
        Flight {
            latencies: self,
            peer: peer.to_string(),
            started: Instant::now(),
            sampled,
        }
    }

    /// How long a call to `peer` may be expected to take now: its smoothed
    /// latency, or how long its calls in flight have waited without an
    /// answer when that is longer. Unknown peers score 0.
    pub fn expected_wait(&self, peer: &str) -> Duration {
        let peers = read(&self.peers);
        let Some(record) = peers.get(peer) else {
            return Duration::ZERO;
        };
        let smoothed = record.smoothed_us.load(Ordering::Relaxed);
        let waiting = match record.in_flight.load(Ordering::Relaxed) {
            0 => 0,
            _ => self
                .now_us()
                .saturating_sub(record.waiting_since_us.load(Ordering::Relaxed)),
        };
        Duration::from_micros(smoothed.max(waiting))
    }

    /// How long a read waits for its replicas before asking one more:
    /// the smoothed latency plus four deviations, within
    /// [`MIN_HEDGE`]..=[`MAX_HEDGE`].
    pub fn hedge_delay(&self) -> Duration {
        let smoothed = self.smoothed_us.load(Ordering::Relaxed);
        let deviation = self.deviation_us.load(Ordering::Relaxed);
        let delay = Duration::from_micros(smoothed.saturating_add(deviation.saturating_mul(4)));
        delay.clamp(MIN_HEDGE, MAX_HEDGE)
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn with_peer(&self, peer: &str, f: impl FnOnce(&Peer)) {
        if let Some(record) = read(&self.peers).get(peer) {
            return f(record);
        }
        f(write(&self.peers).entry(peer.to_string()).or_default());
    }

    /// Folds one answer's latency in.
    fn answered(&self, peer: &str, took: Duration, sampled: bool) {
        let took_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let now = self.now_us();
        self.with_peer(peer, |record| {
            leave(&record.in_flight);
            record.waiting_since_us.store(now, Ordering::Relaxed);
            let smoothed = record.smoothed_us.load(Ordering::Relaxed);
            record
                .smoothed_us
                .store(smooth(smoothed, took_us, 8), Ordering::Relaxed);
        });
        if sampled {
            let smoothed = self.smoothed_us.load(Ordering::Relaxed);
            let deviation = self.deviation_us.load(Ordering::Relaxed);
            let gap = smoothed.abs_diff(took_us);
            self.deviation_us
                .store(smooth(deviation, gap, 4), Ordering::Relaxed);
            self.smoothed_us
                .store(smooth(smoothed, took_us, 8), Ordering::Relaxed);
        }
    }

    /// A call that got no answer (a timeout, a lost connection).
    fn failed(&self, peer: &str) {
        self.with_peer(peer, |record| leave(&record.in_flight));
    }
}

impl Flight<'_> {
    /// The peer answered (whatever it said).
    pub fn answered(self) {
        let took = self.started.elapsed();
        self.latencies.answered(&self.peer, took, self.sampled);
    }

    /// The peer did not answer.
    pub fn failed(self) {
        self.latencies.failed(&self.peer);
    }
}

/// One call fewer in flight (never below none).
fn leave(in_flight: &AtomicU32) {
    let _ = in_flight.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
}

/// `old` moved `1/weight` of the way to `sample` (the first sample, when
/// there is no `old`, is taken as it is).
fn smooth(old: u64, sample: u64, weight: u64) -> u64 {
    match old {
        0 => sample,
        _ => old - old / weight + sample / weight,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_that_stops_answering_sorts_after_one_that_answers() {
        let latencies = Latencies::default();
        for _ in 0..10 {
            latencies.start("fast", true).answered();
        }
        let stuck = latencies.start("stuck", true);
        assert_eq!(latencies.expected_wait("never"), Duration::ZERO);
        std::thread::sleep(Duration::from_millis(20));
        let fast = latencies.expected_wait("fast");
        let waiting = latencies.expected_wait("stuck");
        assert!(waiting >= Duration::from_millis(20), "{waiting:?}");
        assert!(fast < waiting, "{fast:?} vs {waiting:?}");
        stuck.failed();
        assert!(latencies.expected_wait("stuck") < Duration::from_millis(1));
    }

    #[test]
    fn the_hedge_delay_follows_latencies_within_its_bounds() {
        let latencies = Latencies::default();
        assert_eq!(latencies.hedge_delay(), MIN_HEDGE);
        for _ in 0..50 {
            latencies.answered("slow", Duration::from_millis(30), true);
        }
        let delay = latencies.hedge_delay();
        assert!(
            (Duration::from_millis(25)..=MAX_HEDGE).contains(&delay),
            "{delay:?}"
        );
        for _ in 0..50 {
            latencies.answered("slower", Duration::from_secs(1), true);
        }
        assert_eq!(latencies.hedge_delay(), MAX_HEDGE);
        for _ in 0..50 {
            latencies.answered("unsampled", Duration::from_micros(1), false);
        }
        assert_eq!(latencies.hedge_delay(), MAX_HEDGE, "scans do not count");
    }
}
