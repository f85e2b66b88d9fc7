//! Pacing work to a rate limit, so that handoff, anti-entropy and partition
//! transfer yield to client requests.

use std::time::{Duration, Instant};

/// Sleeps so that `count` items handled since `started` take at least as
/// long as `per_sec` allows.
pub async fn pace(count: usize, per_sec: u64, started: Instant) {
    let budget = Duration::from_secs_f64(count as f64 / per_sec.max(1) as f64);
    if let Some(rest) = budget.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pacing_spreads_items_over_the_rate() {
        let started = Instant::now();
        let clock = tokio::time::Instant::now();
        pace(500, 1000, started).await;
        assert!(clock.elapsed() >= Duration::from_millis(490));
    }
}
