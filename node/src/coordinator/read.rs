//! The read path: ask N replicas (fallbacks for owners believed down),
//! answer after R, repair stale owners.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;

use super::{Coordinator, CoordinatorError};
use crate::config::Peer;
use crate::transport::QuorumShortfall;
use crate::version::Object;

type ReadResult = (Arc<Peer>, Result<Option<Object>, String>);

impl Coordinator {
    /// Reads `key` from `r` replicas and returns the merge of their states
    /// (empty when nobody has it). Owners that turn out stale once all have
    /// answered are repaired in the background.
    pub async fn read(&self, key: Bytes, r: usize) -> Result<Object, CoordinatorError> {
        let view = self.membership.view();
        let replicas = view.replicas(&key);
        let (targets, reserve) = self.sloppy_targets(&replicas);
        let mut reserve: VecDeque<Arc<Peer>> = reserve.into();
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
            return Err(QuorumShortfall {
                op: "read".into(),
                needed: r,
                answered: replies.len(),
                replicas: replicas.n(),
            }
            .into());
        }
        let answer = merged.clone();
        let this = self.clone();
        let owners: Vec<String> = replicas
            .owners()
            .iter()
            .map(|p| p.member.id.clone())
            .collect();
        tokio::spawn(async move {
            while let Some((peer, result)) = pending.next().await {
                if let Ok(object) = result {
                    let object = object.unwrap_or_default();
                    merged.merge(&object);
                    replies.push((peer, object));
                }
            }
            replies.retain(|(peer, _)| owners.contains(&peer.member.id));
            this.read_repair(key, merged, replies).await;
        });
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
                Ok(()) => tracing::debug!(peer = %peer.member.id, "read repair"),
                Err(error) => tracing::debug!(peer = %peer.member.id, %error, "read repair failed"),
            }
        }
    }
}
