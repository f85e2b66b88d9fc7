//! The write path: local version creation, replication to W, forwarding.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::{Coordinator, CoordinatorError, unexpected};
use crate::config::Peer;
use crate::transport::{CoordinateWrite, QuorumShortfall, Request, Response};
use crate::version::{Object, VersionVector};

impl Coordinator {
    /// Stores `value` (or a tombstone for `None`) under `key`, superseding
    /// what `context` covers, once `w` replicas hold it. Returns the context
    /// of the new version.
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
        let object = self
            .storage
            .coordinate_write(key.clone(), context, value)
            .await?;
        let context = object.context().clone();
        self.replicate(key, object, &replicas, w).await?;
        Ok(context)
    }

    /// Coordinates a write a non-replica node handed over.
    pub async fn coordinate_forwarded(&self, write: CoordinateWrite) -> Response {
        let n = self.membership.ring().replication;
        if !(1..=n).contains(&write.w) {
            return Response::Failed(format!("w={} outside 1..={n}", write.w));
        }
        let replicas = self.membership.preference_list(&write.key);
        if !replicas.iter().any(|p| self.is_me(p)) {
            return Response::Failed(format!(
                "{} is not a replica of this key",
                self.membership.me()
            ));
        }
        match self
            .write(write.key, write.context, write.value, write.w)
            .await
        {
            Ok(context) => Response::Coordinated(Ok(context)),
            Err(CoordinatorError::Quorum(shortfall)) => Response::Coordinated(Err(shortfall)),
            Err(other) => Response::Failed(other.to_string()),
        }
    }

    /// Sends the coordinator's new state to the other replicas; returns once
    /// `w` replicas (counting this one) hold it. Stragglers finish in the
    /// background.
    async fn replicate(
        &self,
        key: Bytes,
        object: Object,
        replicas: &[Arc<Peer>],
        w: usize,
    ) -> Result<(), QuorumShortfall> {
        let mut pending: FuturesUnordered<_> = replicas
            .iter()
            .filter(|p| !self.is_me(p))
            .map(|peer| {
                let this = self.clone();
                let peer = peer.clone();
                let key = key.clone();
                let object = object.clone();
                async move {
                    let result = this.write_replica(&peer, key, object).await;
                    if let Err(error) = &result {
                        tracing::debug!(peer = %peer.member.id, %error, "replica write failed");
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
        replicas: &[Arc<Peer>],
        write: CoordinateWrite,
    ) -> Result<VersionVector, CoordinatorError> {
        let liveness = self.membership.liveness();
        let mut ordered: Vec<&Arc<Peer>> = replicas.iter().collect();
        ordered.sort_by_key(|p| !liveness.is_usable(&p.member.id));
        let request = Request::CoordinateWrite(write);
        let mut errors = Vec::new();
        for peer in ordered {
            match self.call(peer, &request).await {
                Ok(Response::Coordinated(reply)) => return reply.map_err(CoordinatorError::from),
                Ok(_) => errors.push(unexpected(peer, "coordinate write").to_string()),
                Err(error) => errors.push(error.to_string()),
            }
        }
        Err(CoordinatorError::NoCoordinator(errors.join("; ")))
    }
}
