//! The messages nodes exchange.

use bytes::Bytes;
use dynamo_ring::{NodeId, RingDocument, TransferReport};
use serde::{Deserialize, Serialize};

use crate::version::{Object, VersionVector};

/// A request from one node to another.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// The peer's stored state of a key; answered with [`Response::Object`].
    ReplicaRead {
        /// The user key.
        key: Bytes,
    },
    /// Merge a state into the peer's own; answered with [`Response::Written`].
    ReplicaWrite {
        /// The user key.
        key: Bytes,
        /// The state to merge.
        object: Object,
        /// Set when the peer stands in for this unreachable owner (sloppy
        /// quorum): it keeps a hint and hands the state over later.
        hint_for: Option<NodeId>,
    },
    /// Merge many states (handoff, anti-entropy, transfer); answered with
    /// [`Response::Written`] once all are durable.
    MergeBatch {
        /// (key, state) pairs.
        items: Vec<(Bytes, Object)>,
    },
    /// The stored states of many keys; answered with [`Response::Objects`].
    ReadBatch {
        /// The user keys.
        keys: Vec<Bytes>,
    },
    /// Merkle roots of partitions; answered with [`Response::Roots`].
    MerkleRoots {
        /// Partitions asked about.
        partitions: Vec<u32>,
    },
    /// Merkle leaves of one partition; answered with [`Response::Leaves`].
    MerkleLeaves {
        /// The partition.
        partition: u32,
    },
    /// (key, digest) of the records in segments of a partition; answered
    /// with [`Response::Digests`].
    SegmentDigests {
        /// The partition.
        partition: u32,
        /// Segment numbers.
        segments: Vec<u16>,
    },
    /// A page of a partition's records, for a node that gained it; answered
    /// with [`Response::Page`].
    ScanPartition {
        /// The partition.
        partition: u32,
        /// Continue after this position (from the previous page).
        after: Option<Bytes>,
        /// Most records in the page.
        limit: u32,
    },
    /// Delete tombstones every replica holds (each only if its record still
    /// has the given digest); answered with [`Response::Written`].
    PurgeTombstones {
        /// (key, digest of the tombstone record).
        items: Vec<(Bytes, u64)>,
    },
    /// The peer's transfer report; answered with [`Response::Transfers`].
    TransferReport,
    /// Push-pull gossip: the sender's ring and heartbeats; answered with
    /// [`Response::Gossip`] carrying the receiver's.
    Gossip(Box<GossipDigest>),
    /// Coordinate a client write (the sender is not a replica of the key);
    /// answered with [`Response::Coordinated`].
    CoordinateWrite(CoordinateWrite),
    /// Liveness probe; answered with [`Response::Pong`].
    Ping,
    /// What the peer holds of keys another node wants to purge: its record
    /// digests and hint markers, and its transfer state; answered with
    /// [`Response::TombstoneCheck`].
    TombstoneCheck {
        /// The user keys.
        keys: Vec<Bytes>,
    },
}

impl Request {
    /// A short name for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::ReplicaRead { .. } => "replica read",
            Request::ReplicaWrite { .. } => "replica write",
            Request::MergeBatch { .. } => "merge batch",
            Request::ReadBatch { .. } => "read batch",
            Request::MerkleRoots { .. } => "merkle roots",
            Request::MerkleLeaves { .. } => "merkle leaves",
            Request::SegmentDigests { .. } => "segment digests",
            Request::ScanPartition { .. } => "scan partition",
            Request::PurgeTombstones { .. } => "purge tombstones",
            Request::Gossip(_) => "gossip",
            Request::TransferReport => "transfer report",
            Request::CoordinateWrite(_) => "coordinate write",
            Request::Ping => "ping",
            Request::TombstoneCheck { .. } => "tombstone check",
        }
    }
}

/// A reply to a [`Request`].
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    /// The stored state, if any.
    Object(Option<Object>),
    /// The merge is durable.
    Written,
    /// Outcome of a forwarded write.
    Coordinated(CoordinateWriteReply),
    /// Reply to [`Request::Ping`].
    Pong,
    /// The states of [`Request::ReadBatch`], in request order.
    Objects(Vec<Option<Object>>),
    /// Roots of [`Request::MerkleRoots`], in request order.
    Roots(Vec<u64>),
    /// Leaves of [`Request::MerkleLeaves`].
    Leaves(Vec<u64>),
    /// (key, digest) pairs of [`Request::SegmentDigests`].
    Digests(Vec<(Bytes, u64)>),
    /// A page of [`Request::ScanPartition`].
    Page {
        /// (key, state) pairs.
        items: Vec<(Bytes, Object)>,
        /// Position to continue after, when more remain.
        next: Option<Bytes>,
    },
    /// Reply to [`Request::TransferReport`].
    Transfers(Box<TransferReport>),
    /// The receiver's side of [`Request::Gossip`].
    Gossip(Box<GossipDigest>),
    /// This replica is still receiving the key's partition and cannot answer
    /// for it yet.
    NotReady,
    /// The request failed on the peer.
    Failed(String),
    /// Reply to [`Request::TombstoneCheck`].
    TombstoneCheck(Box<TombstoneCheckReply>),
}

/// What a node holds of keys another node wants to purge.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TombstoneCheckReply {
    /// The node's transfer report (epoch, partitions in flight, hints).
    pub transfers: TransferReport,
    /// Per key asked, in request order.
    pub keys: Vec<KeyHolding>,
}

/// One node's holding of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyHolding {
    /// Digest of its record (0 when it has none).
    pub digest: u64,
    /// Whether it holds a hint marker for the key (a copy still to be
    /// delivered to an owner).
    pub hinted: bool,
}

/// What nodes gossip: their ring document and liveness heartbeats.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GossipDigest {
    /// The sender.
    pub from: NodeId,
    /// The sender's current ring.
    pub ring: RingDocument,
    /// Highest heartbeat counter the sender knows per node (each node bumps
    /// its own every gossip round).
    pub heartbeats: Vec<(NodeId, u64)>,
}

/// A client write handed to a replica of the key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CoordinateWrite {
    /// The user key.
    pub key: Bytes,
    /// The client's context.
    pub context: VersionVector,
    /// The value, or `None` for a delete.
    pub value: Option<Bytes>,
    /// Write quorum for this request.
    pub w: usize,
}

/// Outcome of a forwarded write: the new context, or how short the quorum fell.
pub type CoordinateWriteReply = Result<VersionVector, QuorumShortfall>;

/// A quorum that could not be reached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{op} needed {needed} of {replicas} replicas but only {answered} answered")]
pub struct QuorumShortfall {
    /// "read" or "write".
    pub op: String,
    /// R or W.
    pub needed: usize,
    /// How many replicas answered successfully.
    pub answered: usize,
    /// How many replicas were asked.
    pub replicas: usize,
}
