//! The write path: local version creation, replication to W over a sloppy
//! quorum, forwarding.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::fanout::WriteFanout;
use super::rejection::Rejection;
use super::{Coordinator, CoordinatorError, DESCRIBED, Target, unexpected};
use crate::membership::Replicas;
use crate::peer::Peer;
use crate::transport::{CoordinateWrite, QuorumShortfall, Request, Response, RpcError};
use crate::version::{Content, Object, VersionVector};

impl Coordinator {
    /// Stores `content` (a value, or a tombstone) under `key`, superseding
    /// what `context` covers, once `w` replicas hold it. Returns the context
    /// of the new version. A value with attributes is refused until every
    /// member speaks a protocol that carries them.
    pub async fn write(
        &self,
        key: Bytes,
        context: VersionVector,
        content: Content,
        w: usize,
    ) -> Result<VersionVector, CoordinatorError> {
        if content.is_described() {
            self.check_described_writes().await?;
        }
        let view = self.membership.view();
        let replicas = view.replicas(&key);
        if !replicas.owners().iter().any(|p| self.is_me(p)) {
            let write = CoordinateWrite {
                key,
                context,
                content,
                w,
            };
            return match self.forward_write(replicas.owners(), &write).await {
                Err(CoordinatorError::NoCoordinator(why)) => {
                    self.coordinate_as_stand_in(write, &replicas, why).await
                }
                outcome => outcome,
            };
        }
        self.catch_up(&key, &context, &replicas).await?;
        let object = self
            .storage
            .coordinate_write(key.clone(), context, content)
            .await?;
        let context = object.context();
        self.replicate(key, object, &replicas, w).await?;
        Ok(context)
    }

    /// Lets the local copy of `key` see what `context` claims, when other
    /// replicas have: the client may have read replicas this one lags
    /// behind, and a write supersedes only versions its coordinator has
    /// seen (a context never enters a clock). Asks the key's other targets,
    /// merges their states as they answer and stops once the context is
    /// covered or all have answered; a replica that fails is skipped (the
    /// write then supersedes less, never more).
    async fn catch_up(
        &self,
        key: &Bytes,
        context: &VersionVector,
        replicas: &Replicas,
    ) -> Result<(), CoordinatorError> {
        let mut seen = self.storage.get(key)?.unwrap_or_default().clock().clone();
        if seen.descends(context) {
            return Ok(());
        }
        let (targets, _) = self.sloppy_targets(replicas);
        let mut replies: FuturesUnordered<_> = targets
            .into_iter()
            .filter(|t| !self.is_me(&t.peer))
            .map(|t| async move { (self.read_replica(&t.peer, key.clone()).await, t) })
            .collect();
        let mut learned = Object::new();
        while let Some((reply, target)) = replies.next().await {
            match reply {
                Ok(object) => {
                    learned.merge(&object.unwrap_or_default());
                }
                Err(error) => {
                    tracing::debug!(peer = %target.peer.member.id, %error, "catch-up read failed");
                }
            }
            seen.merge(learned.clock());
            if seen.descends(context) {
                break;
            }
        }
        if !learned.is_empty() {
            self.storage.merge(key.clone(), learned).await?;
        }
        Ok(())
    }

    /// Refuses a write with attributes unless every other member of the
    /// ring agreed on a protocol that carries them: a member of an older
    /// release would refuse (or, before versions, misread) every message
    /// holding such a version, replica writes and transfers alike. A member
    /// never reached, or on an older protocol, is named.
    async fn check_described_writes(&self) -> Result<(), CoordinatorError> {
        let view = self.membership.view();
        let others = view.all().filter(|p| !self.is_me(p));
        let answers = futures::future::join_all(
            others.map(|peer| async move { (peer, self.transport.protocol_of(peer).await) }),
        )
        .await;
        let behind: Vec<String> = answers
            .into_iter()
            .filter_map(|(peer, protocol)| match protocol {
                Ok(version) if version >= DESCRIBED => None,
                Ok(version) => Some(format!("{} speaks protocol {version}", peer.member.id)),
                Err(error) => Some(format!("{} could not be asked ({error})", peer.member.id)),
            })
            .collect();
        match behind.is_empty() {
            true => Ok(()),
            false => Err(CoordinatorError::AttributesUnsupported(behind.join("; "))),
        }
    }

    /// Coordinates a write a non-replica node handed over.
    pub async fn coordinate_forwarded(&self, write: CoordinateWrite) -> Response {
        let view = self.membership.view();
        let n = view.ring().replication;
        if !(1..=n).contains(&write.w) {
            return Response::Failed(format!("w={} outside 1..={n}", write.w));
        }
        if !view
            .replicas(&write.key)
            .owners()
            .iter()
            .any(|p| self.is_me(p))
        {
            return Response::Failed(format!(
                "{} is not a replica of this key",
                self.membership.me()
            ));
        }
        match self
            .write(write.key, write.context, write.content, write.w)
            .await
        {
            Ok(context) => Response::Coordinated(Ok(context)),
            Err(CoordinatorError::Quorum(shortfall)) => Response::Coordinated(Err(shortfall)),
            Err(CoordinatorError::Rejected(rejection)) => Response::Failed(rejection.to_wire()),
            Err(other) => Response::Failed(other.to_string()),
        }
    }

    /// No owner of the key answered: if this node is among the first N
    /// healthy nodes of the key's walk after the owners, it creates the
    /// version itself, with hints for every owner, and replicates it to the
    /// other fallback nodes, each standing in for one owner.
    async fn coordinate_as_stand_in(
        &self,
        write: CoordinateWrite,
        replicas: &Replicas,
        why: String,
    ) -> Result<VersionVector, CoordinatorError> {
        let owners: Vec<String> = replicas
            .owners()
            .iter()
            .map(|p| p.member.id.clone())
            .collect();
        let mut fallbacks = replicas.walk()[replicas.n()..]
            .iter()
            .filter(|p| self.membership.is_usable(&p.member.id))
            .cloned();
        let targets: Vec<Target> = fallbacks
            .by_ref()
            .take(replicas.n())
            .zip(&owners)
            .map(|(peer, owner)| Target {
                peer,
                stand_in_for: Some(owner.clone()),
            })
            .collect();
        let reserve: Vec<Arc<Peer>> = fallbacks.collect();
        if !targets.iter().any(|t| self.is_me(&t.peer)) {
            return Err(CoordinatorError::NoCoordinator(why));
        }
        let object = self
            .storage
            .coordinate_write_for(write.key.clone(), write.context, write.content, owners)
            .await?;
        // This node took the write for an owner, as the others in `targets`
        // will (each counted as it is sent).
        self.stats.stand_in();
        let context = object.context();
        self.replicate_to(write.key, object, targets, reserve, replicas.n(), write.w)
            .await?;
        Ok(context)
    }

    /// Sends the coordinator's new state to the other targets of the sloppy
    /// quorum; returns once `w` nodes (counting this one) hold it. Failed
    /// targets are replaced by fallbacks; stragglers finish in the
    /// background.
    async fn replicate(
        &self,
        key: Bytes,
        object: Object,
        replicas: &Replicas,
        w: usize,
    ) -> Result<(), QuorumShortfall> {
        let (targets, reserve) = self.sloppy_targets(replicas);
        self.replicate_to(key, object, targets, reserve, replicas.n(), w)
            .await
    }

    /// Sends the state to `targets` (this node among them already holds
    /// it), replacing failed ones from `reserve`; returns once `w` nodes
    /// hold it.
    async fn replicate_to(
        &self,
        key: Bytes,
        object: Object,
        targets: Vec<Target>,
        reserve: Vec<Arc<Peer>>,
        n: usize,
        w: usize,
    ) -> Result<(), QuorumShortfall> {
        let others: Vec<Target> = targets
            .into_iter()
            .filter(|t| !self.is_me(&t.peer))
            .collect();
        let mut fanout = WriteFanout::start(self.clone(), key, object, others, reserve, 1);
        let reached = fanout.until(w).await;
        let acks = fanout.acks;
        fanout.finish_in_background();
        if reached {
            Ok(())
        } else {
            Err(self.quorum_failed(QuorumShortfall {
                op: "write".into(),
                needed: w,
                answered: acks,
                replicas: n,
            }))
        }
    }

    /// Hands a write to an owner of the key, trying them in preference
    /// order (reachable ones first). An owner's rejection of what the
    /// client sent is the answer: no other owner is asked to take it.
    async fn forward_write(
        &self,
        owners: &[Arc<Peer>],
        write: &CoordinateWrite,
    ) -> Result<VersionVector, CoordinatorError> {
        let liveness = self.membership.liveness();
        let mut ordered: Vec<&Arc<Peer>> = owners.iter().collect();
        ordered.sort_by_key(|p| !liveness.is_usable(&p.member.id));
        let request = Request::CoordinateWrite(write.clone());
        let mut errors = Vec::new();
        for peer in ordered {
            match self.call(peer, &request).await {
                Ok(Response::Coordinated(reply)) => return reply.map_err(CoordinatorError::from),
                Ok(_) => errors.push(unexpected(peer, "coordinate write").to_string()),
                Err(error) => {
                    if let RpcError::Remote { message, .. } = &error
                        && let Some(rejection) = Rejection::from_wire(message)
                    {
                        return Err(CoordinatorError::Rejected(rejection));
                    }
                    errors.push(error.to_string());
                }
            }
        }
        Err(CoordinatorError::NoCoordinator(errors.join("; ")))
    }
}
