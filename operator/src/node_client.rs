//! Calls to the nodes' admin API, behind [`NodeAdmin`] so reconcile tests
//! can fake the nodes.
//!
//! - `PUT /v1/admin/ring` with a [`RingDocument`]: 200 when adopted (or
//!   already adopted), 409 when the node has a newer epoch, 400 when invalid.
//! - `GET /v1/admin/transfers`: the node's [`TransferReport`].
//!
//! A cluster with `spec.auth` runs nodes that answer `/v1/...` only with
//! `Authorization: Bearer <token>` (401 otherwise); every call then carries
//! the cluster's [`BearerToken`].

use std::future::Future;
use std::time::Duration;

use dynamo_ring::{RingDocument, TransferReport};
use reqwest::header::{AUTHORIZATION, HeaderValue};

/// The `Authorization: Bearer <token>` header of a cluster's admin calls.
///
/// Marked sensitive: its `Debug` output does not show the token, so it can
/// sit in logged structures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BearerToken(HeaderValue);

/// Why a token cannot be sent as a bearer token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Nothing but whitespace.
    #[error("the token is empty")]
    Empty,
    /// Bytes an HTTP header value cannot hold (control characters,
    /// non-ASCII text).
    #[error("the token is not valid in an HTTP header (control or non-ASCII characters)")]
    NotAHeaderValue,
}

impl BearerToken {
    /// The token from raw bytes (a Secret's value), surrounding whitespace
    /// trimmed as the node trims its token file.
    pub fn new(raw: &[u8]) -> Result<Self, TokenError> {
        let token = raw.trim_ascii();
        if token.is_empty() {
            return Err(TokenError::Empty);
        }
        if !token.iter().all(|b| (0x20..0x7f).contains(b)) {
            return Err(TokenError::NotAHeaderValue);
        }
        let mut value = HeaderValue::from_bytes(&[b"Bearer ", token].concat())
            .map_err(|_| TokenError::NotAHeaderValue)?;
        value.set_sensitive(true);
        Ok(BearerToken(value))
    }
}

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
    /// Sends the ring to the node, with `token` when the cluster has one.
    fn publish_ring(
        &self,
        address: &str,
        token: Option<&BearerToken>,
        document: &RingDocument,
    ) -> impl Future<Output = Result<PublishOutcome, NodeError>> + Send;

    /// Reads the node's transfer report, with `token` when the cluster has one.
    fn transfers(
        &self,
        address: &str,
        token: Option<&BearerToken>,
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

fn authorize(
    request: reqwest::RequestBuilder,
    token: Option<&BearerToken>,
) -> reqwest::RequestBuilder {
    match token {
        Some(BearerToken(value)) => request.header(AUTHORIZATION, value.clone()),
        None => request,
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
        token: Option<&BearerToken>,
        document: &RingDocument,
    ) -> Result<PublishOutcome, NodeError> {
        let request = self.client.put(format!("http://{address}/v1/admin/ring"));
        let response = authorize(request, token)
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

    async fn transfers(
        &self,
        address: &str,
        token: Option<&BearerToken>,
    ) -> Result<TransferReport, NodeError> {
        let request = self
            .client
            .get(format!("http://{address}/v1/admin/transfers"));
        let response = authorize(request, token)
            .send()
            .await
            .map_err(transport(address))?;
        if !response.status().is_success() {
            return Err(unexpected(address, response).await);
        }
        response.json().await.map_err(transport(address))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Json;
    use axum::Router;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, put};
    use dynamo_ring::{Member, Ring};

    use super::*;

    /// The `Authorization` header of every request, in order.
    type Seen = Arc<Mutex<Vec<Option<String>>>>;

    /// A stand-in for a node's admin API that, like the node with
    /// `DYNAMO_AUTH_DIR`, answers 401 unless it gets `Bearer s3cret`.
    async fn node(seen: Seen) -> String {
        async fn check(seen: &Seen, headers: &HeaderMap) -> Result<(), Response> {
            let given = headers
                .get(AUTHORIZATION)
                .map(|v| v.to_str().expect("ASCII header").to_string());
            let ok = given.as_deref() == Some("Bearer s3cret");
            seen.lock().expect("lock").push(given);
            if ok {
                Ok(())
            } else {
                Err((
                    StatusCode::UNAUTHORIZED,
                    Json(serde_json::json!({"error": {"code": "unauthorized", "message": "no"}})),
                )
                    .into_response())
            }
        }
        let app = Router::new()
            .route(
                "/v1/admin/ring",
                put(|State(seen): State<Seen>, headers: HeaderMap| async move {
                    check(&seen, &headers).await.map(|()| StatusCode::OK)
                }),
            )
            .route(
                "/v1/admin/transfers",
                get(|State(seen): State<Seen>, headers: HeaderMap| async move {
                    check(&seen, &headers).await.map(|()| {
                        Json(TransferReport {
                            node: "n0".into(),
                            epoch: 3,
                            pending: 0,
                            done: 0,
                            hints_pending: 0,
                            retired: 0,
                            partitions: vec![],
                        })
                    })
                }),
            )
            .with_state(seen);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        address
    }

    fn document() -> RingDocument {
        let ring = Ring::build(vec![Member::new("n0", "a")], 1, 8).expect("ring");
        RingDocument {
            ring,
            addresses: [("n0".to_string(), "n0:7000".to_string())].into(),
        }
    }

    #[tokio::test]
    async fn every_admin_call_carries_the_bearer_token() {
        let seen = Seen::default();
        let address = node(seen.clone()).await;
        let admin = HttpNodeAdmin::new(Duration::from_secs(5)).expect("client");
        let token = BearerToken::new(b" s3cret\n").expect("token");

        let outcome = admin
            .publish_ring(&address, Some(&token), &document())
            .await
            .expect("ring accepted");
        assert_eq!(outcome, PublishOutcome::Accepted);
        let report = admin
            .transfers(&address, Some(&token))
            .await
            .expect("report");
        assert_eq!(report.epoch, 3);
        assert_eq!(
            *seen.lock().expect("lock"),
            [
                Some("Bearer s3cret".to_string()),
                Some("Bearer s3cret".to_string())
            ]
        );
    }

    #[tokio::test]
    async fn without_the_token_the_node_answers_401_and_the_call_fails() {
        let seen = Seen::default();
        let address = node(seen.clone()).await;
        let admin = HttpNodeAdmin::new(Duration::from_secs(5)).expect("client");
        let wrong = BearerToken::new(b"s3cre").expect("token");

        for token in [None, Some(&wrong)] {
            match admin.publish_ring(&address, token, &document()).await {
                Err(NodeError::Status { status, body, .. }) => {
                    assert_eq!(status, 401);
                    assert!(body.contains("unauthorized"), "{body}");
                }
                other => panic!("expected 401, got {other:?}"),
            }
            assert!(matches!(
                admin.transfers(&address, token).await,
                Err(NodeError::Status { status: 401, .. })
            ));
        }
        assert_eq!(
            *seen.lock().expect("lock"),
            [
                None,
                None,
                Some("Bearer s3cre".to_string()),
                Some("Bearer s3cre".to_string())
            ]
        );
    }

    #[test]
    fn tokens_are_trimmed_checked_and_not_shown_in_debug_output() {
        assert_eq!(
            BearerToken::new(b"\t s3cret \r\n"),
            BearerToken::new(b"s3cret")
        );
        assert_eq!(BearerToken::new(b" \n"), Err(TokenError::Empty));
        assert_eq!(
            BearerToken::new(b"s3\ncret"),
            Err(TokenError::NotAHeaderValue)
        );
        assert_eq!(
            BearerToken::new("sécret".as_bytes()),
            Err(TokenError::NotAHeaderValue)
        );
        let token = BearerToken::new(b"s3cret").expect("token");
        assert!(!format!("{token:?}").contains("s3cret"), "{token:?}");
    }
}
