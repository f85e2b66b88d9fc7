//! The node-to-node transport.
//!
//! Each node keeps one long-lived, multiplexed binary stream to each peer.
//! The stream starts as an HTTP/1.1 request to the internal route
//! [`STREAM_PATH`] with `Upgrade: dynamo-rpc/1` (so it shares the internal
//! listener, and whatever authentication later guards the internal router
//! guards it too), then carries length-prefixed frames, each a request id
//! plus a postcard-encoded [`Request`] or [`Response`]. Many requests are in
//! flight at once, and every frame queued while the socket is busy goes out
//! in the same write: under load, replica traffic is batched for free.
//!
//! Every stream a node dials opens with a version handshake
//! ([`handshake`]): both sides speak the highest protocol version in both
//! their ranges, and a peer with none in common is refused with a message
//! saying so. The messages' shapes are the protocol: how they may change
//! is said at the top of `transport/message.rs` and in [`handshake`].
//! From protocol 2 on, a request made inside a traced span carries that
//! span's context, and the peer handles it in a span that is its child.
//!
//! Peers are not trusted to be well-behaved: frames are capped by kind and
//! read as they arrive, a frame stalled half-way closes the stream, lists
//! in requests are bounded, replies that gather states stop at a byte
//! budget, and each stream has a memory budget past which the node stops
//! reading it until the peer reads its replies ([`limits`]).

mod client;
mod frame;
pub mod handshake;
pub mod limits;
mod message;
mod server;

pub use client::Dialing;
pub use client::Transport;
pub use message::{
    CoordinateWrite, CoordinateWriteReply, GossipDigest, KeyHolding, QuorumShortfall, Request,
    Response, TombstoneCheckReply, TraceContext, UnacknowledgedWrite, WriteOutcome,
};
pub use server::{RequestHandler, accept_stream};

/// Internal route that upgrades to the binary stream.
pub const STREAM_PATH: &str = "/internal/v1/stream";
/// Value of the `Upgrade` header that selects this protocol.
pub const UPGRADE_PROTOCOL: &str = "dynamo-rpc/1";

/// Why a request to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// Could not connect or upgrade, or the connection broke.
    #[error("connection to {peer} failed: {reason}")]
    Connection {
        /// Peer id.
        peer: String,
        /// What went wrong.
        reason: String,
    },
    /// No answer within the request timeout.
    #[error("{peer} did not answer within {timeout_ms} ms")]
    Timeout {
        /// Peer id.
        peer: String,
        /// The timeout that expired.
        timeout_ms: u64,
    },
    /// The peer answered with an error.
    #[error("{peer} failed the request: {message}")]
    Remote {
        /// Peer id.
        peer: String,
        /// The peer's error message.
        message: String,
    },
    /// The peer speaks no protocol version this node speaks (see
    /// [`handshake`]); the stream was refused.
    #[error("{peer} is incompatible: {reason}")]
    Incompatible {
        /// Peer id.
        peer: String,
        /// Both sides' versions, and what to do.
        reason: String,
    },
    /// The peer answered something other than what the request expects.
    #[error("{peer} sent an unexpected reply to {request}")]
    Unexpected {
        /// Peer id.
        peer: String,
        /// The request kind.
        request: &'static str,
    },
}

impl RpcError {
    /// Whether the failure says nothing about the peer being reachable
    /// (it answered, just not with success).
    pub fn peer_answered(&self) -> bool {
        matches!(self, RpcError::Remote { .. } | RpcError::Unexpected { .. })
    }
}

#[cfg(test)]
mod tests;
