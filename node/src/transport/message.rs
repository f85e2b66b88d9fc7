//! The messages nodes exchange.

use bytes::Bytes;
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
    },
    /// Coordinate a client write (the sender is not a replica of the key);
    /// answered with [`Response::Coordinated`].
    CoordinateWrite(CoordinateWrite),
    /// Liveness probe; answered with [`Response::Pong`].
    Ping,
}

impl Request {
    /// A short name for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::ReplicaRead { .. } => "replica read",
            Request::ReplicaWrite { .. } => "replica write",
            Request::CoordinateWrite(_) => "coordinate write",
            Request::Ping => "ping",
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
    /// The request failed on the peer.
    Failed(String),
}

/// A client write handed to a replica of the key.
#[derive(Debug, Serialize, Deserialize)]
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
