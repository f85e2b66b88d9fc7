//! Quorum coordination of client requests.
//!
//! Any node accepts a request. Reads are coordinated by the receiving node:
//! it asks the key's N replicas, answers after R replies, and repairs stale
//! replicas in the background. Writes are coordinated by a replica of the
//! key (the receiving node if it is one, otherwise it forwards): the
//! coordinator creates the new version locally, sends it to the other
//! replicas and answers after W acknowledgements.
//!
//! Quorums are sloppy: owners believed down are replaced by the next
//! healthy nodes of the key's extended preference list, which keep the
//! state with a hint for the owner they stand in for (see
//! [`crate::handoff`]).

mod fanout;
mod import;
mod latency;
mod list;
mod read;
mod rejection;
mod stats;
mod write;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::Instrument;

use crate::log_limit::LogLimit;
use crate::membership::{Membership, Replicas};
use crate::peer::Peer;
use crate::storage::{Storage, StorageError};
use crate::transport::handshake::DESCRIBED;
use crate::transport::{
    QuorumShortfall, Request, Response, RpcError, Transport, UnacknowledgedWrite,
};
use crate::version::Object;
pub use import::{ImportIncomplete, Imported};
use latency::Latencies;
pub use list::{KeyPage, REMOTE_SCANS_PER_PAGE};
pub use rejection::{Rejection, RejectionKind};
pub use stats::CoordinatorReport;
pub use write::ForwardedOutcome;

/// Why a coordinated request failed.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// Fewer than R replicas answered a read (or a forwarded write's
    /// coordinator of an older release fell short of W).
    #[error(transparent)]
    Quorum(#[from] QuorumShortfall),
    /// Fewer than W replicas took a write; those that did keep it.
    #[error(transparent)]
    Unacknowledged(#[from] UnacknowledgedWrite),
    /// The local store failed.
    #[error(transparent)]
    Storage(StorageError),
    /// The write was refused because of what the client sent (by this
    /// node, or by the owner it forwarded the write to).
    #[error(transparent)]
    Rejected(Rejection),
    /// No replica of the key could be reached to coordinate a write.
    #[error("no replica of the key could coordinate the write: {0}")]
    NoCoordinator(String),
    /// A write with attributes (content type, metadata, expiry) while some
    /// member does not, or may not, speak the protocol that carries them.
    #[error(
        "values with a content type, metadata or a TTL are taken once every node runs a \
         release that keeps them (node-to-node protocol {DESCRIBED} or later); {0}"
    )]
    AttributesUnsupported(String),
}

impl From<StorageError> for CoordinatorError {
    /// A rejection when the client caused the error, else a failure.
    fn from(error: StorageError) -> Self {
        match Rejection::of(&error) {
            Some(rejection) => CoordinatorError::Rejected(rejection),
            None => CoordinatorError::Storage(error),
        }
    }
}

/// Coordinates reads and writes for this node.
#[derive(Clone)]
pub struct Coordinator {
    storage: Arc<Storage>,
    membership: Arc<Membership>,
    transport: Arc<Transport>,
    read_repair_chance: f64,
    quorum_log: Arc<LogLimit>,
    stats: Arc<stats::Stats>,
    latencies: Arc<Latencies>,
}

/// At most one quorum-failure warning per this interval.
const QUORUM_LOG_INTERVAL: Duration = Duration::from_secs(10);

impl Coordinator {
    /// A coordinator over the local store and the cluster view.
    /// `read_repair_chance` is the share of reads that ask all N replicas
    /// and repair the stale ones; the others ask only R (more when some
    /// fail). Anti-entropy repairs what reads do not.
    pub fn new(
        storage: Arc<Storage>,
        membership: Arc<Membership>,
        transport: Arc<Transport>,
        read_repair_chance: f64,
    ) -> Self {
        Self {
            storage,
            membership,
            transport,
            read_repair_chance: read_repair_chance.clamp(0.0, 1.0),
            quorum_log: Arc::new(LogLimit::new(QUORUM_LOG_INTERVAL)),
            stats: Arc::default(),
            latencies: Arc::default(),
        }
    }

    /// What this coordinator has counted since the node started.
    pub fn report(&self) -> CoordinatorReport {
        self.stats.report()
    }

    /// Counts a quorum this node failed to reach as coordinator, warns of
    /// it (at most once per [`QUORUM_LOG_INTERVAL`], counting the failures
    /// it leaves out) and returns it.
    fn quorum_failed(&self, shortfall: QuorumShortfall) -> QuorumShortfall {
        self.stats.shortfall(&shortfall.op);
        if let Some(suppressed) = self.quorum_log.admit(Instant::now()) {
            tracing::warn!(
                op = %shortfall.op,
                needed = shortfall.needed,
                answered = shortfall.answered,
                replicas = shortfall.replicas,
                not_logged_since_last = suppressed,
                "quorum not reached: {shortfall}"
            );
        }
        shortfall
    }

    /// The cluster view this coordinator routes by.
    pub fn membership(&self) -> &Arc<Membership> {
        &self.membership
    }

    /// The local store.
    pub fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }

    fn is_me(&self, peer: &Peer) -> bool {
        self.membership.is_me(peer)
    }

    /// How soon `peer` may be expected to answer, as a sort key: this node
    /// first, then the peers the failure detector deems usable, the ones
    /// expected to answer soonest first (see [`latency`]).
    fn answer_order(&self, peer: &Peer) -> (bool, bool, Duration) {
        let id = &peer.member.id;
        (
            !self.is_me(peer),
            !self.membership.is_usable(id),
            self.latencies.expected_wait(id),
        )
    }

    /// The first N usable nodes of the walk, each with the owner it stands
    /// in for (`None` for an owner), plus the usable nodes after them.
    fn sloppy_targets(&self, replicas: &Replicas) -> (Vec<Target>, Vec<Arc<Peer>>) {
        let mut missing: std::collections::VecDeque<&str> = replicas
            .owners()
            .iter()
            .filter(|p| !self.membership.is_usable(&p.member.id))
            .map(|p| p.member.id.as_str())
            .collect();
        let mut targets = Vec::with_capacity(replicas.n());
        let mut reserve = Vec::new();
        for (i, peer) in replicas.walk().iter().enumerate() {
            if !self.membership.is_usable(&peer.member.id) {
                continue;
            }
            if targets.len() == replicas.n() {
                reserve.push(peer.clone());
                continue;
            }
            let stand_in_for = match i < replicas.n() {
                true => None,
                false => missing.pop_front().map(str::to_string),
            };
            targets.push(Target {
                peer: peer.clone(),
                stand_in_for,
            });
        }
        (targets, reserve)
    }

    /// Calls a peer and tells the failure detector how it went. Inside a
    /// span (a client request's), the call has a span of its own, whose
    /// context goes with the request (see [`crate::transport`]).
    async fn call(&self, peer: &Peer, request: &Request) -> Result<Response, RpcError> {
        let span = match tracing::Span::current().is_none() {
            true => tracing::Span::none(),
            false => tracing::info_span!(
                "replica call",
                otel.name = request.kind(),
                otel.kind = "client",
                peer = %peer.member.id,
            ),
        };
        let sampled = matches!(
            request,
            Request::ReplicaRead { .. } | Request::ReplicaWrite { .. } | Request::ReadBatch { .. }
        );
        let flight = self.latencies.start(&peer.member.id, sampled);
        let result = self.transport.call(peer, request).instrument(span).await;
        match &result {
            Err(error) if !error.peer_answered() => flight.failed(),
            _ => flight.answered(),
        }
        let liveness = self.membership.liveness();
        match &result {
            Err(error) if !error.peer_answered() => liveness.record_failure(&peer.member.id),
            _ => liveness.record_success(&peer.member.id),
        }
        result
    }

    /// A replica's state of `key`, local or remote.
    async fn read_replica(&self, peer: &Peer, key: Bytes) -> Result<Option<Object>, String> {
        if self.is_me(peer) {
            if self.membership.is_receiving_key(&key) {
                return Err("this node is still receiving this partition".into());
            }
            return self.storage.get(&key).map_err(|e| e.to_string());
        }
        match self.call(peer, &Request::ReplicaRead { key }).await {
            Ok(Response::Object(object)) => Ok(object),
            Ok(Response::NotReady) => Err(format!(
                "{} is still receiving this partition",
                peer.member.id
            )),
            Ok(_) => Err(unexpected(peer, "replica read").to_string()),
            Err(error) => Err(error.to_string()),
        }
    }

    /// The states of `keys` on a replica, local or remote, one per key in
    /// order: one request for them all (asked again for the keys a reply
    /// too large to hold them all leaves out).
    async fn read_replica_keys(
        &self,
        peer: &Peer,
        keys: &[Bytes],
    ) -> Result<Vec<Option<Object>>, String> {
        if let [key] = keys {
            return Ok(vec![self.read_replica(peer, key.clone()).await?]);
        }
        if self.is_me(peer) {
            if keys.iter().any(|key| self.membership.is_receiving_key(key)) {
                return Err("this node is still receiving a partition of these keys".into());
            }
            return keys
                .iter()
                .map(|key| self.storage.get(key).map_err(|e| e.to_string()))
                .collect();
        }
        let mut out = Vec::with_capacity(keys.len());
        while out.len() < keys.len() {
            let rest = keys[out.len()..].to_vec();
            let asked = rest.len();
            match self.call(peer, &Request::ReadBatch { keys: rest }).await {
                Ok(Response::Objects(objects)) if (1..=asked).contains(&objects.len()) => {
                    out.extend(objects);
                }
                Ok(Response::NotReady) => {
                    return Err(format!(
                        "{} is still receiving a partition of these keys",
                        peer.member.id
                    ));
                }
                Ok(_) => return Err(unexpected(peer, "read batch").to_string()),
                Err(error) => return Err(error.to_string()),
            }
        }
        Ok(out)
    }

    /// Merges `object` into a replica, local or remote; `stand_in_for`
    /// names the owner a fallback node keeps a hint for.
    async fn write_replica(
        &self,
        peer: &Peer,
        key: Bytes,
        object: Object,
        stand_in_for: Option<String>,
    ) -> Result<(), String> {
        if stand_in_for.is_some() {
            self.stats.stand_in();
        }
        if self.is_me(peer) {
            return self
                .storage
                .merge_for(key, object, stand_in_for)
                .await
                .map_err(|e| e.to_string());
        }
        let request = Request::ReplicaWrite {
            key,
            object,
            hint_for: stand_in_for,
        };
        match self.call(peer, &request).await {
            Ok(Response::Written) => Ok(()),
            Ok(_) => Err(unexpected(peer, "replica write").to_string()),
            Err(error) => Err(error.to_string()),
        }
    }
}

/// A node a write or read goes to.
#[derive(Clone)]
struct Target {
    peer: Arc<Peer>,
    /// The unreachable owner this fallback node stands in for.
    stand_in_for: Option<String>,
}

fn unexpected(peer: &Peer, request: &'static str) -> RpcError {
    RpcError::Unexpected {
        peer: peer.member.id.clone(),
        request,
    }
}

#[cfg(test)]
mod tests {
    use crate::transport::limits::MAX_FRAME;
    use crate::version::MAX_OBJECT_BYTES;

    /// A key at the size limit fits a node-to-node frame with room for the
    /// merge of versions three more coordinators took concurrently (checked
    /// when the tests build).
    const _: () = assert!(4 * MAX_OBJECT_BYTES <= MAX_FRAME);
}
