//! The write path: local version creation, replication to W, forwarding.

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::{Coordinator, CoordinatorError};
use crate::config::Peer;
use crate::rpc::{
    self, CoordinateWrite, CoordinateWriteReply, QuorumShortfall, ReplicaWrite, RpcError,
};
use crate::version::{Object, VersionVector};

impl Coordinator {
    /// Stores `value` (or a tombstone for `None`) under `key`, superseding
    /// what `context` covers, once `w` replicas hold it. Returns the new
    /// state of the key.
    pub async fn write(
        &self,
        key: Bytes,
        context: VersionVector,
        value: Option<Bytes>,
        w: usize,
    ) -> Result<VersionVector, CoordinatorError> {
        let replicas = self.membership.preference_list(&key);
        if !replicas.iter().any(|p| self.is_me(p)) {
            return self
                .forward_write(
                    &replicas,
                    CoordinateWrite {
                        key,
                        context,
                        value,
                        w,
                    },
                )
                .await;
        }
        let object = self.storage.coordinate_write(&key, &context, value)?;
        let context = object.context().clone();
        self.replicate(key, object, &replicas, w).await?;
        Ok(context)
    }

    /// Sends the coordinator's new state to the other replicas; returns once
    /// `w` replicas (counting this one) hold it. Stragglers finish in the
    /// background.
    async fn replicate(
        &self,
        key: Bytes,
        object: Object,
        replicas: &[Peer],
        w: usize,
    ) -> Result<(), QuorumShortfall> {
        let body = rpc::encode(&ReplicaWrite { key, object });
        let mut pending: FuturesUnordered<_> = replicas
            .iter()
            .filter(|p| !self.is_me(p))
            .map(|peer| {
                let this = self.clone();
                let peer = peer.clone();
                let body = body.clone();
                async move {
                    let result: Result<(), RpcError> =
                        this.rpc.call(&peer, rpc::REPLICA_WRITE, body).await;
                    this.observe(&peer, &result);
                    if let Err(error) = &result {
                        tracing::debug!(%error, "replica write failed");
                    }
                    result.is_ok()
                }
            })
            .collect();
        // On failure, every reply is awaited (each is bounded by the request
        // timeout) so the error says exactly how many replicas took the write.
        let mut acks = 1;
        while acks < w {
            let Some(ok) = pending.next().await else {
                break;
            };
            acks += usize::from(ok);
        }
        if !pending.is_empty() {
            tokio::spawn(async move { while pending.next().await.is_some() {} });
        }
        if acks >= w {
            Ok(())
        } else {
            Err(QuorumShortfall {
                op: "write".into(),
                needed: w,
                answered: acks,
                replicas: replicas.len(),
            })
        }
    }

    /// Hands a write to a replica of the key, trying them in preference
    /// order (reachable ones first).
    async fn forward_write(
        &self,
        replicas: &[Peer],
        request: CoordinateWrite,
    ) -> Result<VersionVector, CoordinatorError> {
        let body = rpc::encode(&request);
        let liveness = self.membership.liveness();
        let mut ordered: Vec<&Peer> = replicas.iter().collect();
        ordered.sort_by_key(|p| !liveness.is_usable(&p.member.id));
        let mut errors = Vec::new();
        for peer in ordered {
            let result: Result<CoordinateWriteReply, RpcError> = self
                .rpc
                .call(peer, rpc::COORDINATE_WRITE, body.clone())
                .await;
            self.observe(peer, &result);
            match result {
                Ok(reply) => return reply.map_err(CoordinatorError::from),
                Err(error) => errors.push(error.to_string()),
            }
        }
        Err(CoordinatorError::NoCoordinator(errors.join("; ")))
    }
}
