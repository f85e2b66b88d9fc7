//! The read path: ask N replicas, answer after R, repair stale replicas.

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Coordinator, CoordinatorError};
use crate::config::Peer;
use crate::rpc::{self, QuorumShortfall, ReplicaRead, ReplicaWrite, RpcError};
use crate::version::Object;

type Reply = (Peer, Result<Option<Object>, String>);

impl Coordinator {
    /// Reads `key` from `r` replicas and returns the merge of their states
    /// (empty when nobody has it). Replicas that turn out stale once all
    /// have answered are repaired in the background.
    pub async fn read(&self, key: Bytes, r: usize) -> Result<Object, CoordinatorError> {
        let replicas = self.membership.preference_list(&key);
        let (tx, mut rx) = mpsc::channel::<Reply>(replicas.len());
        for peer in &replicas {
            let this = self.clone();
            let peer = peer.clone();
            let key = key.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let result = this.read_replica(&peer, key).await;
                let _ = tx.send((peer, result)).await;
            });
        }
        drop(tx);

        let mut replies: Vec<(Peer, Object)> = Vec::with_capacity(replicas.len());
        let mut merged = Object::new();
        let mut local_error = None;
        while replies.len() < r {
            let Some((peer, result)) = rx.recv().await else {
                break;
            };
            match result {
                Ok(object) => {
                    let object = object.unwrap_or_default();
                    merged.merge(&object);
                    replies.push((peer, object));
                }
                Err(error) if self.is_me(&peer) => local_error = Some(error),
                Err(_) => {}
            }
        }
        if replies.len() < r {
            if let Some(error) = local_error {
                tracing::warn!(%error, "local replica read failed");
            }
            return Err(QuorumShortfall {
                op: "read".into(),
                needed: r,
                answered: replies.len(),
                replicas: replicas.len(),
            }
            .into());
        }
        let this = self.clone();
        let result = merged.clone();
        tokio::spawn(async move { this.read_repair(key, merged, replies, rx).await });
        Ok(result)
    }

    async fn read_replica(&self, peer: &Peer, key: Bytes) -> Result<Option<Object>, String> {
        if self.is_me(peer) {
            return self.storage.get(&key).map_err(|e| e.to_string());
        }
        let result: Result<Option<Object>, RpcError> = self
            .rpc
            .call(peer, rpc::REPLICA_READ, rpc::encode(&ReplicaRead { key }))
            .await;
        self.observe(peer, &result);
        result.map_err(|e| e.to_string())
    }

    /// Waits for the remaining replies, then sends the merged state to every
    /// replica whose state differs from it.
    async fn read_repair(
        &self,
        key: Bytes,
        mut merged: Object,
        mut replies: Vec<(Peer, Object)>,
        mut rx: mpsc::Receiver<Reply>,
    ) {
        while let Some((peer, result)) = rx.recv().await {
            if let Ok(object) = result {
                let object = object.unwrap_or_default();
                merged.merge(&object);
                replies.push((peer, object));
            }
        }
        if merged.is_empty() {
            return;
        }
        let stale: Vec<Peer> = replies
            .into_iter()
            .filter(|(_, object)| *object != merged)
            .map(|(peer, _)| peer)
            .collect();
        if stale.is_empty() {
            return;
        }
        let body = rpc::encode(&ReplicaWrite {
            key: key.clone(),
            object: merged.clone(),
        });
        for peer in stale {
            let result = if self.is_me(&peer) {
                self.storage
                    .merge(&key, &merged)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            } else {
                let r: Result<(), RpcError> =
                    self.rpc.call(&peer, rpc::REPLICA_WRITE, body.clone()).await;
                self.observe(&peer, &r);
                r.map_err(|e| e.to_string())
            };
            match result {
                Ok(()) => tracing::debug!(peer = %peer.member.id, "read repair"),
                Err(error) => tracing::debug!(peer = %peer.member.id, %error, "read repair failed"),
            }
        }
    }
}
