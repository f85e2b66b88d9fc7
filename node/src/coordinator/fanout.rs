//! Sending one write to its replicas: count acknowledgements, and replace a
//! replica that fails by the next healthy fallback node, which keeps a hint
//! for the owner it stands in for.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tracing::Instrument;

use super::{Coordinator, Target};
use crate::peer::Peer;
use crate::version::Object;

/// Replica writes in flight for one key.
pub(super) struct WriteFanout {
    coordinator: Coordinator,
    key: Bytes,
    object: Object,
    pending: FuturesUnordered<BoxFuture<'static, (Target, bool)>>,
    reserve: VecDeque<Arc<Peer>>,
    /// Replicas that hold the state so far.
    pub acks: usize,
}

impl WriteFanout {
    /// Starts writing to `targets`; `acks` counts copies already durable
    /// (the coordinator's own).
    pub fn start(
        coordinator: Coordinator,
        key: Bytes,
        object: Object,
        targets: Vec<Target>,
        reserve: Vec<Arc<Peer>>,
        acks: usize,
    ) -> Self {
        let mut fanout = Self {
            coordinator,
            key,
            object,
            pending: FuturesUnordered::new(),
            reserve: reserve.into(),
            acks,
        };
        for target in targets {
            fanout.launch(target);
        }
        fanout
    }

    fn launch(&mut self, target: Target) {
        let coordinator = self.coordinator.clone();
        let key = self.key.clone();
        let object = self.object.clone();
        self.pending.push(Box::pin(async move {
            let result = coordinator
                .write_replica(&target.peer, key, object, target.stand_in_for.clone())
                .await;
            if let Err(error) = &result {
                tracing::debug!(peer = %target.peer.member.id, %error, "replica write failed");
            }
            (target, result.is_ok())
        }));
    }

    /// Waits until `w` replicas hold the state or every attempt (including
    /// fallbacks) has answered; says whether `w` was reached.
    pub async fn until(&mut self, w: usize) -> bool {
        while self.acks < w {
            let Some((target, ok)) = self.pending.next().await else {
                break;
            };
            if ok {
                self.acks += 1;
                continue;
            }
            if let Some(peer) = self.reserve.pop_front() {
                let owner = target.stand_in_for.unwrap_or(target.peer.member.id.clone());
                self.launch(Target {
                    peer,
                    stand_in_for: Some(owner),
                });
            }
        }
        self.acks >= w
    }

    /// Lets the remaining writes (and their fallbacks) finish after the
    /// client was answered, so that N copies exist when possible.
    pub fn finish_in_background(mut self) {
        if self.pending.is_empty() {
            return;
        }
        // In the client request's span, whose trace they belong to.
        tokio::spawn(
            async move {
                self.until(usize::MAX).await;
            }
            .in_current_span(),
        );
    }
}
