//! The read path: ask N replicas, answer after R, repair stale replicas.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::{Coordinator, CoordinatorError};
use crate::config::Peer;
use crate::transport::QuorumShortfall;
use crate::version::Object;

impl Coordinator {
    /// Reads `key` from `r` replicas and returns the merge of their states
    /// (empty when nobody has it). Replicas that turn out stale once all
    /// have answered are repaired in the background.
    pub async fn read(&self, key: Bytes, r: usize) -> Result<Object, CoordinatorError> {
        let replicas = self.membership.preference_list(&key);
        let mut pending: FuturesUnordered<_> = replicas
            .iter()
            .map(|peer| {
                let this = self.clone();
                let peer = peer.clone();
                let key = key.clone();
                async move {
                    let result = this.read_replica(&peer, key).await;
                    (peer, result)
                }
            })
            .collect();

        let mut replies: Vec<(Arc<Peer>, Object)> = Vec::with_capacity(replicas.len());
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
                    tracing::debug!(peer = %peer.member.id, %error, "replica read failed")
                }
            }
        }
        if replies.len() < r {
            return Err(QuorumShortfall {
                op: "read".into(),
                needed: r,
                answered: replies.len(),
                replicas: replicas.len(),
            }
            .into());
        }
        let answer = merged.clone();
        let this = self.clone();
        tokio::spawn(async move {
            while let Some((peer, result)) = pending.next().await {
                if let Ok(object) = result {
                    let object = object.unwrap_or_default();
                    merged.merge(&object);
                    replies.push((peer, object));
                }
            }
            this.read_repair(key, merged, replies).await;
        });
        Ok(answer)
    }

    /// Sends the merged state to every replica whose state differs from it.
    async fn read_repair(&self, key: Bytes, merged: Object, replies: Vec<(Arc<Peer>, Object)>) {
        if merged.is_empty() {
            return;
        }
        for (peer, object) in replies {
            if object == merged {
                continue;
            }
            match self.write_replica(&peer, key.clone(), merged.clone()).await {
                Ok(()) => tracing::debug!(peer = %peer.member.id, "read repair"),
                Err(error) => tracing::debug!(peer = %peer.member.id, %error, "read repair failed"),
            }
        }
    }
}
