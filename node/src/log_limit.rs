//! Rate-limited log lines: an event that can repeat many times a second
//! (a quorum failure under load) is logged at most once per interval,
//! with the number of occurrences left unlogged since the last line.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sync::lock;

/// Lets one log line through per interval and counts the rest.
pub struct LogLimit {
    interval: Duration,
    state: Mutex<LimitState>,
}

#[derive(Default)]
struct LimitState {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    /// At most one line per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new(LimitState::default()),
        }
    }

    /// Records one occurrence at `now`: `Some(suppressed)` when it is to be
    /// logged (with the count of occurrences not logged since the last
    /// line), `None` when it is to be counted only.
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let mut state = lock(&self.state);
        let due = state
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if !due {
            state.suppressed += 1;
            return None;
        }
        state.last = Some(now);
        Some(std::mem::take(&mut state.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_counting_the_rest() {
        let limit = LogLimit::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(limit.admit(start), Some(0));
        for i in 1..=5 {
            assert_eq!(limit.admit(start + Duration::from_secs(i)), None);
        }
        assert_eq!(limit.admit(start + Duration::from_secs(10)), Some(5));
        assert_eq!(limit.admit(start + Duration::from_secs(11)), None);
        assert_eq!(limit.admit(start + Duration::from_secs(25)), Some(1));
    }
}
