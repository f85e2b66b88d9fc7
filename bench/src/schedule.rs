//! Pacing: which operation a worker runs next, when, and whether it counts.
//!
//! * **Closed loop** (no `--rate`): every worker sends its next request as
//!   soon as the previous one is answered; latency is measured from the
//!   moment the request is sent.
//! * **Open loop** (`--rate R`): operation `k` (counted over all workers) is
//!   *intended* to start at `start + k / R`. Workers take the next slot from
//!   a shared counter. A slot that is already due when a worker takes it
//!   (every worker was busy: the server fell behind) is timed from its
//!   intended start, so a stalled server shows up as latency of every
//!   request that should have been sent meanwhile instead of being hidden by
//!   the workers waiting (coordinated omission). A slot still ahead is
//!   waited for and timed from its send, which keeps the async timer's
//!   granularity (about 1 ms late per wake-up) out of the latency.
//!
//! Warmup comes first and is never counted: in a closed loop it is the
//! operations that start before `start + warmup`; in an open loop it is the
//! first `ceil(warmup * R)` slots. The measured phase then ends after `--ops`
//! operations or once `--duration` has passed since it began.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// When the measured phase ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// After this many measured operations.
    Ops(u64),
    /// After this much time since the measured phase began.
    Duration(Duration),
}

/// Closed or open loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// As fast as the server answers.
    Closed,
    /// This many operations per second in total, at fixed intervals.
    Open {
        /// Operations per second over all workers; finite and positive.
        rate: f64,
    },
}

/// The next operation a worker should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Open loop only: when the operation is meant to start. The worker
    /// waits until then; if it is already past, latency counts from here.
    pub intended: Option<Instant>,
    /// False during warmup.
    pub measured: bool,
}

/// The shared schedule that all workers draw their operations from.
#[derive(Debug)]
pub struct Schedule {
    start: Instant,
    warmup: Duration,
    warmup_slots: u64,
    limit: Limit,
    pacing: Pacing,
    next: AtomicU64,
}

impl Schedule {
    /// A schedule beginning at `start`.
    pub fn new(start: Instant, warmup: Duration, limit: Limit, pacing: Pacing) -> Self {
        let warmup_slots = match pacing {
            Pacing::Closed => 0,
            Pacing::Open { rate } => (warmup.as_secs_f64() * rate).ceil() as u64,
        };
        Self {
            start,
            warmup,
            warmup_slots,
            limit,
            pacing,
            next: AtomicU64::new(0),
        }
    }

    /// When the measured phase begins.
    pub fn measure_start(&self) -> Instant {
        match self.pacing {
            Pacing::Closed => self.start + self.warmup,
            Pacing::Open { rate } => self.intended_start(self.warmup_slots, rate),
        }
    }

    /// Intended start of open-loop slot `k` at `rate` operations per second.
    fn intended_start(&self, k: u64, rate: f64) -> Instant {
        let nanos = (k as f64 * 1e9 / rate).round();
        self.start + Duration::from_nanos(nanos as u64)
    }

    /// The next operation to run, or `None` once the run is over.
    pub fn next_slot(&self) -> Option<Slot> {
        match self.pacing {
            Pacing::Closed => self.next_closed(Instant::now()),
            Pacing::Open { rate } => self.next_open(rate),
        }
    }

    fn next_closed(&self, now: Instant) -> Option<Slot> {
        let measure_start = self.start + self.warmup;
        if now < measure_start {
            return Some(Slot {
                intended: None,
                measured: false,
            });
        }
        let more = match self.limit {
            Limit::Ops(n) => self.next.fetch_add(1, Ordering::Relaxed) < n,
            Limit::Duration(d) => now < measure_start + d,
        };
        more.then_some(Slot {
            intended: None,
            measured: true,
        })
    }

    fn next_open(&self, rate: f64) -> Option<Slot> {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        let intended = self.intended_start(k, rate);
        if k < self.warmup_slots {
            return Some(Slot {
                intended: Some(intended),
                measured: false,
            });
        }
        let more = match self.limit {
            Limit::Ops(n) => k - self.warmup_slots < n,
            Limit::Duration(d) => intended < self.measure_start() + d,
        };
        more.then_some(Slot {
            intended: Some(intended),
            measured: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(schedule: &Schedule) -> Vec<Slot> {
        std::iter::from_fn(|| schedule.next_slot()).collect()
    }

    #[test]
    fn open_loop_spaces_intended_starts_at_one_over_rate() {
        let start = Instant::now();
        let schedule = Schedule::new(
            start,
            Duration::ZERO,
            Limit::Ops(5),
            Pacing::Open { rate: 100.0 },
        );
        let slots = drain(&schedule);
        assert_eq!(slots.len(), 5);
        for (k, slot) in slots.iter().enumerate() {
            assert!(slot.measured);
            assert_eq!(
                slot.intended,
                Some(start + Duration::from_millis(10 * k as u64))
            );
        }
        assert_eq!(schedule.measure_start(), start);
    }

    #[test]
    fn open_loop_warmup_slots_come_first_and_do_not_count() {
        let start = Instant::now();
        let schedule = Schedule::new(
            start,
            Duration::from_millis(25),
            Limit::Ops(3),
            Pacing::Open { rate: 200.0 },
        );
        // 25 ms at 200/s = 5 warmup slots, 5 ms apart.
        let slots = drain(&schedule);
        assert_eq!(slots.len(), 8);
        assert!(slots[..5].iter().all(|s| !s.measured));
        assert!(slots[5..].iter().all(|s| s.measured));
        assert_eq!(slots[7].intended, Some(start + Duration::from_millis(35)));
        assert_eq!(schedule.measure_start(), start + Duration::from_millis(25));
    }

    #[test]
    fn open_loop_duration_ends_at_the_last_slot_before_the_deadline() {
        let start = Instant::now();
        let schedule = Schedule::new(
            start,
            Duration::from_millis(100),
            Limit::Duration(Duration::from_secs(1)),
            Pacing::Open { rate: 1000.0 },
        );
        let slots = drain(&schedule);
        assert_eq!(slots.iter().filter(|s| !s.measured).count(), 100);
        assert_eq!(slots.iter().filter(|s| s.measured).count(), 1000);
        let last = slots.last().and_then(|s| s.intended).unwrap();
        assert_eq!(last, start + Duration::from_millis(1099));
    }

    #[test]
    fn closed_loop_hands_out_exactly_the_op_count_and_no_intended_start() {
        let schedule = Schedule::new(
            Instant::now(),
            Duration::ZERO,
            Limit::Ops(7),
            Pacing::Closed,
        );
        let slots = drain(&schedule);
        assert_eq!(slots.len(), 7);
        assert!(slots.iter().all(|s| s.measured && s.intended.is_none()));
    }

    #[test]
    fn closed_loop_phases_follow_the_clock() {
        let start = Instant::now();
        let schedule = Schedule::new(
            start,
            Duration::from_secs(2),
            Limit::Duration(Duration::from_secs(3)),
            Pacing::Closed,
        );
        let warm = schedule
            .next_closed(start + Duration::from_secs(1))
            .unwrap();
        assert!(!warm.measured);
        let hot = schedule
            .next_closed(start + Duration::from_secs(4))
            .unwrap();
        assert!(hot.measured);
        assert_eq!(schedule.next_closed(start + Duration::from_secs(5)), None);
        assert_eq!(schedule.measure_start(), start + Duration::from_secs(2));
    }
}
