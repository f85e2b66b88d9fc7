//! Calls to the nodes' admin API, behind [`NodeAdmin`] so reconcile tests
//! can fake the nodes.
//!
//! - `PUT /v1/admin/ring` with a [`RingDocument`]: 200 when adopted (or
//!   already adopted), 409 when the node has a newer epoch, 400 when invalid.
//! - `GET /v1/admin/transfers`: the node's [`TransferReport`].

use std::future::Future;
use std::time::Duration;

use dynamo_ring::{RingDocument, TransferReport};

/// What a node said to a published ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishOutcome {
    /// The node uses the ring (now or already).
    Accepted,
    /// The node already has a newer epoch.
    NewerEpoch,
}

/// Why a call to a node's admin API failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// No answer, or an unreadable one.
    #[error("admin API of {address}: {source}")]
    Transport {
        /// `HOST:PORT` called.
        address: String,
        /// Underlying error.
        source: reqwest::Error,
    },
    /// An answer with an unexpected status.
    #[error("admin API of {address} answered {status}: {body}")]
    Status {
        /// `HOST:PORT` called.
        address: String,
        /// HTTP status.
        status: u16,
        /// Response body, for the log.
        body: String,
    },
}

/// The admin calls the operator makes to a node at `HOST:PORT`.
pub trait NodeAdmin: Send + Sync + 'static {
    /// Sends the ring to the node.
    fn publish_ring(
        &self,
        address: &str,
        document: &RingDocument,
    ) -> impl Future<Output = Result<PublishOutcome, NodeError>> + Send;

    /// Reads the node's transfer report.
    fn transfers(
        &self,
        address: &str,
    ) -> impl Future<Output = Result<TransferReport, NodeError>> + Send;
}

/// [`NodeAdmin`] over HTTP.
#[derive(Clone, Debug)]
pub struct HttpNodeAdmin {
    client: reqwest::Client,
}

impl HttpNodeAdmin {
    /// A client whose calls time out after `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(HttpNodeAdmin {
            client: reqwest::Client::builder().timeout(timeout).build()?,
        })
    }
}

fn transport(address: &str) -> impl FnOnce(reqwest::Error) -> NodeError + '_ {
    move |source| NodeError::Transport {
        address: address.to_string(),
        source,
    }
}

async fn unexpected(address: &str, response: reqwest::Response) -> NodeError {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    NodeError::Status {
        address: address.to_string(),
        status,
        body,
    }
}

impl NodeAdmin for HttpNodeAdmin {
    async fn publish_ring(
        &self,
        address: &str,
        document: &RingDocument,
    ) -> Result<PublishOutcome, NodeError> {
        let response = self
            .client
            .put(format!("http://{address}/v1/admin/ring"))
            .json(document)
            .send()
            .await
            .map_err(transport(address))?;
        match response.status() {
            s if s.is_success() => Ok(PublishOutcome::Accepted),
            reqwest::StatusCode::CONFLICT => Ok(PublishOutcome::NewerEpoch),
            _ => Err(unexpected(address, response).await),
        }
    }

    async fn transfers(&self, address: &str) -> Result<TransferReport, NodeError> {
        let response = self
            .client
            .get(format!("http://{address}/v1/admin/transfers"))
            .send()
            .await
            .map_err(transport(address))?;
        if !response.status().is_success() {
            return Err(unexpected(address, response).await);
        }
        response.json().await.map_err(transport(address))
    }
}
