//! Periodic tasks: liveness probes, gossip, hinted handoff, anti-entropy
//! and tombstone purging each do one round of work every interval until
//! the node stops. They share one shape, [`PeriodicTask`], and one runner,
//! [`spawn`], which also logs the rounds that fail.

use std::error::Error;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dynamo_ring::NodeId;
use tokio::sync::watch;

/// A task that does one round of work every [`PeriodicTask::interval`].
pub trait PeriodicTask: Send + Sync + 'static {
    /// A short name, for logs.
    fn name(&self) -> &'static str;
    /// Time between the starts of two rounds.
    fn interval(&self) -> Duration;
    /// One round of work. A failed round ends early; the next one starts
    /// at the next interval all the same.
    fn round(&self) -> impl Future<Output = Result<(), RoundError>> + Send;
}

/// Why a round ended early.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    /// This node's own work failed (its store could not be read): logged
    /// as a warning.
    #[error("{doing}: {error}")]
    Local {
        /// What the round was doing.
        doing: &'static str,
        /// What went wrong.
        error: Box<dyn Error + Send + Sync>,
    },
    /// Working with a peer failed: logged at debug level, since peers come
    /// and go and the next rounds retry.
    #[error("{doing} ({peer}): {error}")]
    Peer {
        /// What the round was doing.
        doing: &'static str,
        /// The peer.
        peer: NodeId,
        /// What went wrong.
        error: Box<dyn Error + Send + Sync>,
    },
}

impl RoundError {
    /// A failure of this node's own work.
    pub fn local(doing: &'static str, error: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Self::Local {
            doing,
            error: error.into(),
        }
    }

    /// A failure working with `peer`.
    pub fn peer(
        doing: &'static str,
        peer: impl Into<NodeId>,
        error: impl Into<Box<dyn Error + Send + Sync>>,
    ) -> Self {
        Self::Peer {
            doing,
            peer: peer.into(),
            error: error.into(),
        }
    }

    fn log(&self, task: &'static str) {
        match self {
            RoundError::Local { doing, error } => tracing::warn!(task, %error, "{doing}"),
            RoundError::Peer { doing, peer, error } => {
                tracing::debug!(task, %peer, %error, "{doing}")
            }
        }
    }
}

/// Runs `task`'s rounds every interval until `stop` turns true (a round in
/// progress is abandoned then), logging the rounds that fail.
pub fn spawn<T: PeriodicTask>(task: Arc<T>, stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        every(task.interval(), stop, || async {
            if let Err(failure) = task.round().await {
                failure.log(task.name());
            }
        })
        .await;
    });
}

/// Runs `round` every `interval` until `stop` turns true (a round in
/// progress is abandoned then). A round that overruns delays the next one
/// rather than piling up.
async fn every<F, Fut>(interval: Duration, mut stop: watch::Receiver<bool>, mut round: F)
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

#[cfg(test)]
mod tests {
    use super::*;
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
}
