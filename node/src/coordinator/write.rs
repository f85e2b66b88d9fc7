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
use crate::transport::handshake::WRITE_OUTCOME;
use crate::transport::{
    CoordinateWrite, QuorumShortfall, Request, Response, RpcError, UnacknowledgedWrite,
};
use crate::version::{Actor, Content, Dot, MAX_CONTEXT_ACTORS, Object, VersionVector};

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
            .coordinate_write(key.clone(), context.clone(), content)
            .await?;
        let retry = retry_context(context, &object, self.storage.actor());
        let context = object.context();
        match self.replicate(key, object, &replicas, w).await {
            Ok(()) => Ok(context),
            Err(shortfall) => Err(unacknowledged(shortfall, retry)),
        }
    }

    /// Lets the local copy of `key` see what `context` claims, when other
    /// replicas have: the client may have read replicas this one lags
    /// behind, and a write supersedes only versions its coordinator has
    /// seen (a context never enters a clock). Asks the key's other targets,
    /// merges their states as they answer and stops once the context is
    /// covered or all have answered; a replica that fails is skipped (the
    /// write then supersedes less, never more). A slow replica is waited
    /// for (up to the request timeout) only while the context is not yet
    /// covered: a bound tried here left acknowledged writes and deletes
    /// that did not supersede what the client had read, whenever the only
    /// replica holding it answered after the bound.
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
    pub async fn coordinate_forwarded(&self, write: CoordinateWrite) -> ForwardedOutcome {
        let view = self.membership.view();
        let n = view.ring().replication;
        if !(1..=n).contains(&write.w) {
            return ForwardedOutcome::Failed(format!("w={} outside 1..={n}", write.w));
        }
        if !view
            .replicas(&write.key)
            .owners()
            .iter()
            .any(|p| self.is_me(p))
        {
            return ForwardedOutcome::Failed(format!(
                "{} is not a replica of this key",
                self.membership.me()
            ));
        }
        match self
            .write(write.key, write.context, write.content, write.w)
            .await
        {
            Ok(context) => ForwardedOutcome::Written(context),
            Err(CoordinatorError::Unacknowledged(write)) => ForwardedOutcome::Unacknowledged(write),
            Err(CoordinatorError::Rejected(rejection)) => {
                ForwardedOutcome::Failed(rejection.to_wire())
            }
            Err(other) => ForwardedOutcome::Failed(other.to_string()),
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
            .coordinate_write_for(
                write.key.clone(),
                write.context.clone(),
                write.content,
                owners,
            )
            .await?;
        // This node took the write for an owner, as the others in `targets`
        // will (each counted as it is sent).
        self.stats.stand_in();
        let retry = retry_context(write.context, &object, self.storage.actor());
        let context = object.context();
        let replicated = self
            .replicate_to(write.key, object, targets, reserve, replicas.n(), write.w)
            .await;
        match replicated {
            Ok(()) => Ok(context),
            Err(shortfall) => Err(unacknowledged(shortfall, retry)),
        }
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

    /// Hands a write to an owner of the key, trying them in turn: reachable
    /// ones first, those expected to answer soonest first among them (a
    /// forwarded write is not hedged: two coordinators would store it
    /// twice). An owner's rejection of what the client sent is the answer:
    /// no other owner is asked to take it.
    async fn forward_write(
        &self,
        owners: &[Arc<Peer>],
        write: &CoordinateWrite,
    ) -> Result<VersionVector, CoordinatorError> {
        let mut ordered: Vec<&Arc<Peer>> = owners.iter().collect();
        ordered.sort_by_key(|p| self.answer_order(p));
        let mut errors = Vec::new();
        for peer in ordered {
            let request = match self.transport.protocol_of(peer).await {
                Ok(version) if version >= WRITE_OUTCOME => {
                    Request::CoordinateWriteWithOutcome(write.clone())
                }
                _ => Request::CoordinateWrite(write.clone()),
            };
            match self.call(peer, &request).await {
                Ok(Response::WriteOutcome(reply)) => return reply.map_err(CoordinatorError::from),
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

/// How a write handed over by another node went, answered in the shape
/// the request asked for.
pub enum ForwardedOutcome {
    /// Stored on W replicas: the new version's context.
    Written(VersionVector),
    /// Stored on fewer than W replicas.
    Unacknowledged(UnacknowledgedWrite),
    /// Not coordinated here (refused, or failed), with why.
    Failed(String),
}

impl ForwardedOutcome {
    /// The answer to `Request::CoordinateWrite` (protocols before 3: a
    /// shortfall without the context).
    pub fn into_coordinated(self) -> Response {
        match self {
            ForwardedOutcome::Written(context) => Response::Coordinated(Ok(context)),
            ForwardedOutcome::Unacknowledged(write) => Response::Coordinated(Err(write.shortfall)),
            ForwardedOutcome::Failed(why) => Response::Failed(why),
        }
    }

    /// The answer to `Request::CoordinateWriteWithOutcome`.
    pub fn into_write_outcome(self) -> Response {
        match self {
            ForwardedOutcome::Written(context) => Response::WriteOutcome(Ok(context)),
            ForwardedOutcome::Unacknowledged(write) => Response::WriteOutcome(Err(write)),
            ForwardedOutcome::Failed(why) => Response::Failed(why),
        }
    }
}

/// The context to retry a write with when it fell short of its quorum:
/// what the client's own context `sent` covered, and the version `actor`
/// (this node) just created in `object` (its newest dot of that actor), so
/// that the retry replaces that version rather than adding an identical
/// sibling. A context covers every event of an actor up to a counter, so
/// when `object` holds an older version of `actor` that `sent` does not
/// cover (a concurrent write this node coordinated, which the client never
/// saw), naming the new one would supersede it too: then `sent` as it
/// was (the retry adds a sibling, as it would without this). Cut to the
/// most actors a context names likewise.
fn retry_context(sent: VersionVector, object: &Object, actor: Actor) -> VersionVector {
    let new = Dot {
        actor,
        counter: object.clock().get(actor),
    };
    let unseen_older = object
        .siblings()
        .iter()
        .any(|s| s.dot.actor == actor && s.dot.counter < new.counter && !sent.covers(s.dot));
    let mut retry = sent.clone();
    retry.add(new);
    match unseen_older || retry.entries().len() > MAX_CONTEXT_ACTORS {
        true => sent,
        false => retry,
    }
}

/// A write `shortfall` left on fewer replicas than its quorum, with the
/// `context` to retry it with.
fn unacknowledged(shortfall: QuorumShortfall, context: VersionVector) -> CoordinatorError {
    CoordinatorError::Unacknowledged(UnacknowledgedWrite { shortfall, context })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn write(object: &mut Object, actor: Actor, context: &VersionVector, value: &'static str) {
        let counter = object.next_counter(actor, context).unwrap();
        let dot = Dot { actor, counter };
        object
            .write(dot, context, Some(Bytes::from_static(value.as_bytes())))
            .unwrap();
    }

    /// The retry context names the new version beside what the client
    /// sent, and so supersedes exactly those; unless that would also cover
    /// an older version of the same actor the client never saw.
    #[test]
    fn a_retry_context_supersedes_only_what_the_client_saw_and_its_own_version() {
        let blind = VersionVector::new();
        let mut object = Object::new();
        write(&mut object, 2, &blind, "other node's");
        write(&mut object, 1, &blind, "short write");
        let retry = retry_context(blind.clone(), &object, 1);
        let covered: Vec<Actor> = object
            .siblings()
            .iter()
            .filter(|s| retry.covers(s.dot))
            .map(|s| s.dot.actor)
            .collect();
        assert_eq!(covered, [1]);

        write(&mut object, 1, &blind, "second short write");
        assert_eq!(
            retry_context(blind.clone(), &object, 1),
            blind,
            "would cover the first"
        );
        let seen = object.context();
        write(&mut object, 1, &seen, "after a read");
        assert!(retry_context(seen.clone(), &object, 1).descends(&object.context()));
    }
}
