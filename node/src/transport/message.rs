//! The messages nodes exchange.
//!
//! Both enums are postcard-encoded by position: append new variants (and
//! never insert or reorder), and keep [`REQUEST_CAPS`] and
//! [`RESPONSE_CAPS`] in step. Lists a peer sends are refused while
//! decoding when longer than the protocol allows ([`bounded`]), before
//! their elements are allocated.
//!
//! The shapes here are the node-to-node protocol: a change an older
//! release would decode differently, or not at all, raises
//! [`PROTOCOL`](super::handshake::PROTOCOL) (see [`super::handshake`]).

use bytes::Bytes;
use dynamo_ring::{NodeId, RingDocument, TransferReport};
use dynamo_telemetry::TraceParent;
use serde::{Deserialize, Serialize};

use super::frame::Capped;
use super::limits::{LIST_FRAME, MAX_FRAME, SMALL_FRAME, STATE_FRAME};
use crate::version::{Content, Object, VersionVector};

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
        #[serde(deserialize_with = "bounded::batch_items")]
        items: Vec<(Bytes, Object)>,
    },
    /// The stored states of many keys; answered with [`Response::Objects`].
    ReadBatch {
        /// The user keys, each at most once.
        #[serde(deserialize_with = "bounded::keys")]
        keys: Vec<Bytes>,
    },
    /// Merkle roots of partitions; answered with [`Response::Roots`].
    MerkleRoots {
        /// Partitions asked about.
        #[serde(deserialize_with = "bounded::partitions")]
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
        /// Segment numbers, each at most once.
        #[serde(deserialize_with = "bounded::segments")]
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
        #[serde(deserialize_with = "bounded::keyed")]
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
        #[serde(deserialize_with = "bounded::keys")]
        keys: Vec<Bytes>,
    },
    /// The version handshake, the first request on a stream a node dials
    /// (see [`super::handshake`]); answered with [`Response::Hello`], or
    /// with [`Response::Failed`] when the ranges do not overlap.
    Hello {
        /// The oldest protocol version the sender speaks.
        min_protocol: u32,
        /// The newest protocol version the sender speaks.
        protocol: u32,
        /// The sender's release, for messages.
        release: String,
    },
    /// [`Request::CoordinateWrite`] answered with
    /// [`Response::WriteOutcome`], which carries a context to retry with
    /// also when the quorum fell short. Sent only to peers that agreed on
    /// protocol [`WRITE_OUTCOME`](super::handshake::WRITE_OUTCOME) or later.
    CoordinateWriteWithOutcome(CoordinateWrite),
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
            Request::CoordinateWrite(_) | Request::CoordinateWriteWithOutcome(_) => {
                "coordinate write"
            }
            Request::Ping => "ping",
            Request::TombstoneCheck { .. } => "tombstone check",
            Request::Hello { .. } => "hello",
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
    /// The states of [`Request::ReadBatch`], in request order: all of them,
    /// or the first ones when the rest would not fit in one reply (see
    /// [`BATCH_BYTES`](super::limits::BATCH_BYTES)); the caller asks again
    /// for the rest.
    Objects(Vec<Option<Object>>),
    /// Roots of [`Request::MerkleRoots`], in request order.
    Roots(Vec<u64>),
    /// Leaves of [`Request::MerkleLeaves`].
    Leaves(Vec<u64>),
    /// (key, digest) pairs of [`Request::SegmentDigests`], all segments.
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
    /// (key, digest) pairs of the first `segments` segments of a
    /// [`Request::SegmentDigests`], when the rest would not fit in one reply
    /// (see [`BATCH_BYTES`](super::limits::BATCH_BYTES)); the caller asks
    /// again for the rest.
    DigestsPrefix {
        /// (key, digest) pairs.
        digests: Vec<(Bytes, u64)>,
        /// How many of the segments asked for they cover (at least one).
        segments: u16,
    },
    /// Reply to [`Request::Hello`]: the replier's own range and release.
    Hello {
        /// The oldest protocol version the replier speaks.
        min_protocol: u32,
        /// The newest protocol version the replier speaks.
        protocol: u32,
        /// The replier's release, for messages.
        release: String,
    },
    /// Outcome of [`Request::CoordinateWriteWithOutcome`].
    WriteOutcome(WriteOutcome),
}

/// Largest frame of each request kind, by tag (variant index).
pub const REQUEST_CAPS: [usize; 16] = [
    SMALL_FRAME, // ReplicaRead: one key
    MAX_FRAME,   // ReplicaWrite: a key's state
    MAX_FRAME,   // MergeBatch: states
    LIST_FRAME,  // ReadBatch: keys
    LIST_FRAME,  // MerkleRoots: partitions
    SMALL_FRAME, // MerkleLeaves: a partition
    SMALL_FRAME, // SegmentDigests: a partition, at most 64 segments
    SMALL_FRAME, // ScanPartition: a partition and a position
    LIST_FRAME,  // PurgeTombstones: (key, digest) pairs
    SMALL_FRAME, // TransferReport
    STATE_FRAME, // Gossip: a ring and heartbeats
    MAX_FRAME,   // CoordinateWrite: a value
    SMALL_FRAME, // Ping
    LIST_FRAME,  // TombstoneCheck: keys
    SMALL_FRAME, // Hello: versions and a release name
    MAX_FRAME,   // CoordinateWriteWithOutcome: a value
];

/// Largest frame of each response kind, by tag (variant index).
pub const RESPONSE_CAPS: [usize; 17] = [
    MAX_FRAME,   // Object: a key's state
    SMALL_FRAME, // Written
    LIST_FRAME,  // Coordinated: a version vector or a shortfall
    SMALL_FRAME, // Pong
    MAX_FRAME,   // Objects: states
    LIST_FRAME,  // Roots: one per partition asked
    SMALL_FRAME, // Leaves: 64 per partition
    MAX_FRAME,   // Digests: as many as the segments hold
    MAX_FRAME,   // Page: states
    STATE_FRAME, // Transfers: a transfer report
    STATE_FRAME, // Gossip: a ring and heartbeats
    SMALL_FRAME, // NotReady
    LIST_FRAME,  // Failed: an error message
    STATE_FRAME, // TombstoneCheck: a transfer report and key holdings
    MAX_FRAME,   // DigestsPrefix: as many as the segments hold
    SMALL_FRAME, // Hello: versions and a release name
    LIST_FRAME,  // WriteOutcome: a version vector, maybe with a shortfall
];

/// Tags beyond the table (a newer peer's request, or garbage) get the
/// smallest cap; decoding then fails and the sender is told so.
impl Capped for Request {
    fn max_len(tag: u8) -> usize {
        REQUEST_CAPS
            .get(usize::from(tag))
            .copied()
            .unwrap_or(SMALL_FRAME)
    }
}

impl Capped for Response {
    fn max_len(tag: u8) -> usize {
        RESPONSE_CAPS
            .get(usize::from(tag))
            .copied()
            .unwrap_or(SMALL_FRAME)
    }
}

/// Deserializers for lists a peer sends, refusing one longer than the
/// protocol allows (see [`super::limits`]) from its announced length, before
/// reading or allocating its elements. The encoding is a plain `Vec`'s.
mod bounded {
    use std::fmt;
    use std::marker::PhantomData;

    use bytes::Bytes;
    use serde::de::{Deserialize, Deserializer, Error, SeqAccess, Visitor};

    use super::super::limits::{MAX_BATCH_ITEMS, MAX_HEARTBEATS, MAX_KEYS, MAX_ROOTS};
    use crate::merkle::SEGMENTS;
    use crate::version::Object;

    pub fn keys<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Bytes>, D::Error> {
        at_most(d, MAX_KEYS)
    }

    pub fn keyed<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(Bytes, u64)>, D::Error> {
        at_most(d, MAX_KEYS)
    }

    pub fn batch_items<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(Bytes, Object)>, D::Error> {
        at_most(d, MAX_BATCH_ITEMS)
    }

    pub fn partitions<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
        at_most(d, MAX_ROOTS)
    }

    pub fn segments<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u16>, D::Error> {
        at_most(d, SEGMENTS)
    }

    pub fn heartbeats<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, u64)>, D::Error> {
        at_most(d, MAX_HEARTBEATS)
    }

    fn at_most<'de, D, T>(deserializer: D, max: usize) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        deserializer.deserialize_seq(AtMost {
            max,
            items: PhantomData,
        })
    }

    struct AtMost<T> {
        max: usize,
        items: PhantomData<T>,
    }

    impl<'de, T: Deserialize<'de>> Visitor<'de> for AtMost<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a sequence of at most {} elements", self.max)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let announced = seq.size_hint().unwrap_or(0);
            if announced > self.max {
                return Err(A::Error::invalid_length(announced, &self));
            }
            let mut out = Vec::with_capacity(announced);
            while let Some(item) = seq.next_element()? {
                if out.len() == self.max {
                    return Err(A::Error::invalid_length(self.max + 1, &self));
                }
                out.push(item);
            }
            Ok(out)
        }
    }
}

/// The trace context that may follow a request's message in its frame,
/// from protocol [`TRACED`](super::handshake::TRACED) on: the span of the
/// sender the request belongs to, which the receiver's span of the
/// request is a child of. It encodes to a fixed 25 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    /// The trace's id.
    pub trace_id: [u8; 16],
    /// The sending span's id.
    pub span_id: [u8; 8],
    /// W3C trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceContext {
    /// The context of a span.
    pub fn of(parent: TraceParent) -> Self {
        Self {
            trace_id: parent.trace_id(),
            span_id: parent.span_id(),
            flags: parent.flags(),
        }
    }

    /// The span it names; `None` when an id is zero (a peer's mistake).
    pub fn parent(&self) -> Option<TraceParent> {
        TraceParent::new(self.trace_id, self.span_id, self.flags)
    }
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
    #[serde(deserialize_with = "bounded::heartbeats")]
    pub heartbeats: Vec<(NodeId, u64)>,
}

/// A client write handed to a replica of the key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CoordinateWrite {
    /// The user key.
    pub key: Bytes,
    /// The client's context.
    pub context: VersionVector,
    /// The value (with its attributes), or a delete.
    pub content: Content,
    /// Write quorum for this request.
    pub w: usize,
}

/// Outcome of a forwarded write: the new context, or how short the quorum fell.
pub type CoordinateWriteReply = Result<VersionVector, QuorumShortfall>;

/// Outcome of a forwarded write: the new version's context, or how short
/// the quorum fell and the context to retry the write with.
pub type WriteOutcome = Result<VersionVector, UnacknowledgedWrite>;

/// A write stored on fewer replicas than its quorum: the replicas that
/// took it keep it (nothing is rolled back), so the client gets a context
/// to retry with: the one it wrote with plus the version the write left,
/// so a retry replaces that version rather than adding a sibling.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{shortfall}; the replicas that took the write keep it")]
pub struct UnacknowledgedWrite {
    /// How short the quorum fell.
    pub shortfall: QuorumShortfall,
    /// The client's context plus the version the write left.
    pub context: VersionVector,
}

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
