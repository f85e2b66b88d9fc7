//! The relocation hold: while a backup takes its checkpoints, no node
//! deletes a copy it has handed to another node (a hinted key handed to
//! its owner, a retired partition deleted after its new owners received
//! it).
//!
//! Records only ever leave a node after another node stored them, so at
//! every moment some node holds each acknowledged write. A backup holds
//! relocations on every node, then checkpoints every node, then releases
//! the holds: every record present on some node when the last hold began
//! is in some checkpoint. A deletion takes a [`RelocationPermit`] first,
//! and [`RelocationHold::hold`] returns only once the deletions that began
//! before it have ended. Holds expire by themselves, so a backup tool that
//! dies does not stop relocations for good.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, RwLock, RwLockReadGuard};

/// The holds in force, by backup id.
#[derive(Default)]
pub struct RelocationHold {
    holds: Mutex<HashMap<String, Instant>>,
    released: Notify,
    deletions: RwLock<()>,
}

/// Leave to delete a copy handed to another node, taken when no hold is
/// in force; a hold that begins meanwhile waits for it to be dropped.
pub struct RelocationPermit<'a> {
    _deleting: RwLockReadGuard<'a, ()>,
}

impl RelocationHold {
    /// Holds relocations for backup `id` for `duration` from now (again,
    /// from now, if it already held them); returns once every deletion
    /// that began before it has ended.
    pub async fn hold(&self, id: &str, duration: Duration) {
        self.lock()
            .insert(id.to_string(), Instant::now() + duration);
        drop(self.deletions.write().await);
    }

    /// Leave to delete a copy handed to another node: waits until no hold
    /// is in force.
    pub async fn permit(&self) -> RelocationPermit<'_> {
        loop {
            let deleting = self.deletions.read().await;
            if self.in_force().is_empty() {
                return RelocationPermit {
                    _deleting: deleting,
                };
            }
            drop(deleting);
            self.wait().await;
        }
    }

    /// Ends the hold of backup `id`; says whether it was in force.
    pub fn release(&self, id: &str) -> bool {
        let was = self
            .lock()
            .remove(id)
            .is_some_and(|until| until > Instant::now());
        self.released.notify_waiters();
        was
    }

    /// The holds in force, with the time each has left.
    pub fn in_force(&self) -> Vec<(String, Duration)> {
        let now = Instant::now();
        let mut holds = self.lock();
        holds.retain(|_, until| *until > now);
        let mut out: Vec<_> = holds
            .iter()
            .map(|(id, until)| (id.clone(), *until - now))
            .collect();
        out.sort();
        out
    }

    /// Returns once no hold is in force.
    async fn wait(&self) {
        loop {
            let released = self.released.notified();
            let Some(until) = self.lock().values().max().copied() else {
                return;
            };
            if until <= Instant::now() {
                self.lock().clear();
                return;
            }
            tracing::debug!("relocations held by a backup taking its checkpoints");
            tokio::select! {
                _ = released => {}
                _ = tokio::time::sleep_until(until.into()) => {}
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.holds
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiting_ends_when_the_last_hold_is_released_or_expires() {
        let hold = std::sync::Arc::new(RelocationHold::default());
        drop(hold.permit().await);
        hold.hold("a", Duration::from_secs(60)).await;
        hold.hold("b", Duration::from_millis(50)).await;
        let waiter = tokio::spawn({
            let hold = hold.clone();
            async move { drop(hold.permit().await) }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished(), "a hold is still in force");
        assert_eq!(hold.in_force().len(), 1);
        assert!(hold.release("a"));
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(!hold.release("b"), "b had expired");
        assert!(hold.in_force().is_empty());
    }

    #[tokio::test]
    async fn a_hold_waits_for_a_deletion_under_way() {
        let hold = std::sync::Arc::new(RelocationHold::default());
        let permit = hold.permit().await;
        let holding = tokio::spawn({
            let hold = hold.clone();
            async move { hold.hold("a", Duration::from_secs(60)).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !holding.is_finished(),
            "the deletion under way has not ended"
        );
        drop(permit);
        tokio::time::timeout(Duration::from_secs(5), holding)
            .await
            .unwrap()
            .unwrap();
        let waiting = tokio::spawn({
            let hold = hold.clone();
            async move { drop(hold.permit().await) }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "no deletion begins under a hold");
        hold.release("a");
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
    }
}
