//! The read path: ask R replicas (all N on a share of reads), fallbacks
//! for owners believed down and for replicas that fail; answer after R;
//! repair the stale owners among those that answered.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tracing::Instrument;

use super::{Coordinator, CoordinatorError};
use crate::peer::Peer;
use crate::transport::QuorumShortfall;
use crate::version::Object;

type ReadResult = (Arc<Peer>, Result<Option<Object>, String>);

impl Coordinator {
    /// Reads `key` from `r` replicas and returns the merge of their states
    /// (empty when nobody has it). Owners that turn out stale once all asked
    /// have answered are repaired in the background.
    pub async fn read(&self, key: Bytes, r: usize) -> Result<Object, CoordinatorError> {
        let view = self.membership.view();
        let replicas = view.replicas(&key);
        let (mut targets, reserve) = self.sloppy_targets(&replicas);
        let mut reserve: VecDeque<Arc<Peer>> = reserve.into();
        if rand::random::<f64>() >= self.read_repair_chance {
            // Ask R: this node first when it holds the key (a local read is
            // cheap), the others in walk order; the rest stand by.
            if let Some(mine) = targets.iter().position(|t| self.is_me(&t.peer)) {
                let me = targets.remove(mine);
                targets.insert(0, me);
            }
            for spare in targets.drain(r.min(targets.len())..).rev() {
                reserve.push_front(spare.peer);
            }
        }
        let mut pending: FuturesUnordered<BoxFuture<'static, ReadResult>> = FuturesUnordered::new();
        for target in targets {
            pending.push(self.read_from(target.peer, key.clone()));
        }

        let mut replies: Vec<(Arc<Peer>, Object)> = Vec::with_capacity(replicas.n());
        let mut merged = Object::new();
        while replies.len() < r {
            let Some((peer, result)) = pending.next().await else {
                break;
            };
            match result {
                Ok(object) => {
                    let object = object.unwrap_or_default();
                    merged.merge(&object);
                    replies.push((peer, object));
                }
                Err(error) => {
                    tracing::debug!(peer = %peer.member.id, %error, "replica read failed");
                    if let Some(next) = reserve.pop_front() {
                        pending.push(self.read_from(next, key.clone()));
                    }
                }
            }
        }
        if replies.len() < r {
            return Err(self
                .quorum_failed(QuorumShortfall {
                    op: "read".into(),
                    needed: r,
                    answered: replies.len(),
                    replicas: replicas.n(),
                })
                .into());
        }
        let answer = merged.clone();
        // Most reads ask only R replicas and find them equal: nothing is
        // left to wait for or repair, so no task is spawned.
        if pending.is_empty() && replies.iter().all(|(_, object)| *object == merged) {
            return Ok(answer);
        }
        let owners: Vec<String> = replicas
            .owners()
            .iter()
            .map(|p| p.member.id.clone())
            .collect();
        let this = self.clone();
        // In the client request's span, whose trace the repair belongs to.
        let repair = async move {
            while let Some((peer, result)) = pending.next().await {
                if let Ok(object) = result {
                    let object = object.unwrap_or_default();
                    merged.merge(&object);
                    replies.push((peer, object));
                }
            }
            replies.retain(|(peer, _)| owners.contains(&peer.member.id));
            this.read_repair(key, merged, replies).await;
        };
        tokio::spawn(repair.in_current_span());
        Ok(answer)
    }

    fn read_from(&self, peer: Arc<Peer>, key: Bytes) -> BoxFuture<'static, ReadResult> {
        let this = self.clone();
        Box::pin(async move {
            let result = this.read_replica(&peer, key).await;
            (peer, result)
        })
    }

    /// Sends the merged state to every owner whose state differs from it.
    async fn read_repair(&self, key: Bytes, merged: Object, replies: Vec<(Arc<Peer>, Object)>) {
        if merged.is_empty() {
            return;
        }
        for (peer, object) in replies {
            if object == merged {
                continue;
            }
            match self
                .write_replica(&peer, key.clone(), merged.clone(), None)
                .await
            {
                Ok(()) => {
                    let bytes = postcard::experimental::serialized_size(&merged).unwrap_or(0);
                    self.stats.repaired(bytes);
                    tracing::debug!(peer = %peer.member.id, "read repair");
                }
                Err(error) => tracing::debug!(peer = %peer.member.id, %error, "read repair failed"),
            }
        }
    }
}
