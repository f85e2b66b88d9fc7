//! Helpers shared by the background tasks: periodic rounds that stop with
//! the node, and pacing to a rate limit so background work yields to
//! client requests.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Runs `round` every `interval` until `stop` turns true (a round in
/// progress is abandoned then). A round that overruns delays the next one
/// rather than piling up.
pub async fn every<F, Fut>(interval: Duration, mut stop: watch::Receiver<bool>, mut round: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        tokio::select! {
            _ = round() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

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
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn rounds_repeat_until_stopped() {
        let (stop_tx, stop_rx) = watch::channel(false);
        let rounds = Arc::new(AtomicUsize::new(0));
        let counted = rounds.clone();
        let task = tokio::spawn(every(Duration::from_secs(1), stop_rx, move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        }));
        tokio::time::sleep(Duration::from_millis(3500)).await;
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(rounds.load(Ordering::SeqCst), 4, "at 0, 1, 2 and 3 s");
    }

    #[tokio::test(start_paused = true)]
    async fn pacing_spreads_items_over_the_rate() {
        let started = Instant::now();
        let clock = tokio::time::Instant::now();
        pace(500, 1000, started).await;
        assert!(clock.elapsed() >= Duration::from_millis(490));
    }
}
