//! The node-to-node protocol: compact binary (postcard) messages over HTTP
//! with keep-alive connection pools, and the client that sends them.

use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::Peer;
use crate::version::{Object, VersionVector};

/// Path of [`ReplicaRead`].
pub const REPLICA_READ: &str = "/internal/v1/replica/read";
/// Path of [`ReplicaWrite`].
pub const REPLICA_WRITE: &str = "/internal/v1/replica/write";
/// Path of [`CoordinateWrite`].
pub const COORDINATE_WRITE: &str = "/internal/v1/coordinate/write";
/// Path of the liveness probe.
pub const PING: &str = "/internal/v1/ping";

/// Asks a replica for its state of a key; answered with `Option<Object>`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReplicaRead {
    /// The user key.
    pub key: Bytes,
}

/// Asks a replica to merge a state into its own; answered with `()`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReplicaWrite {
    /// The user key.
    pub key: Bytes,
    /// The state to merge.
    pub object: Object,
}

/// Asks a node in the key's preference list to coordinate a client write;
/// answered with [`CoordinateWriteReply`].
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

/// Why a request to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// Connection refused, timed out, reset.
    #[error("request to {peer} failed: {source}")]
    Transport {
        /// Peer id.
        peer: String,
        /// Underlying error.
        source: reqwest::Error,
    },
    /// The peer answered with an error status.
    #[error("{peer} answered {status}: {body}")]
    Status {
        /// Peer id.
        peer: String,
        /// HTTP status.
        status: u16,
        /// Response body, truncated.
        body: String,
    },
    /// The peer's answer did not decode.
    #[error("{peer} sent an undecodable reply: {source}")]
    Decode {
        /// Peer id.
        peer: String,
        /// Decoding error.
        source: postcard::Error,
    },
}

/// Client for the internal routes of other nodes.
#[derive(Clone)]
pub struct RpcClient {
    http: reqwest::Client,
}

impl RpcClient {
    /// A client whose every request times out after `timeout`.
    pub fn new(timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_millis(500)))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()?;
        Ok(Self { http })
    }

    /// Sends a postcard-encoded request body and decodes the reply.
    pub async fn call<R: DeserializeOwned>(
        &self,
        peer: &Peer,
        path: &str,
        body: Bytes,
    ) -> Result<R, RpcError> {
        let bytes = self.send(peer, path, body).await?;
        postcard::from_bytes(&bytes).map_err(|source| RpcError::Decode {
            peer: peer.member.id.clone(),
            source,
        })
    }

    /// Sends a body and returns the raw reply of a successful request.
    pub async fn send(&self, peer: &Peer, path: &str, body: Bytes) -> Result<Bytes, RpcError> {
        let url = format!("http://{}{}", peer.address, path);
        let transport = |source| RpcError::Transport {
            peer: peer.member.id.clone(),
            source,
        };
        let response = self
            .http
            .post(url)
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            let body = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned();
            return Err(RpcError::Status {
                peer: peer.member.id.clone(),
                status: status.as_u16(),
                body,
            });
        }
        Ok(bytes)
    }

    /// Probes a peer's liveness endpoint.
    pub async fn ping(&self, peer: &Peer, timeout: Duration) -> bool {
        let url = format!("http://{}{}", peer.address, PING);
        matches!(
            self.http.get(url).timeout(timeout).send().await,
            Ok(r) if r.status().is_success()
        )
    }
}

/// Encodes a message for the wire.
pub fn encode<T: Serialize>(message: &T) -> Bytes {
    Bytes::from(postcard::to_stdvec(message).expect("protocol messages always serialize"))
}
