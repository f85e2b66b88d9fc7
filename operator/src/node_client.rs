//! Calls to the nodes' admin API, behind [`NodeAdmin`] so reconcile tests
//! can fake the nodes.
//!
//! - `PUT /v1/admin/ring` with a [`RingDocument`]: 200 when adopted (or
//!   already adopted), 409 when the node has a newer epoch, 400 when invalid.
//! - `GET /v1/admin/transfers`: the node's [`TransferReport`].
//!
//! The calls go to a node's internal address (its ring address, port
//! 7001), where the admin routes are served. Nodes answer them only with
//! `Authorization: Bearer <admin token>` (401 otherwise); every call
//! carries the cluster's admin [`BearerToken`] (the auth Secret's
//! `admin-token`, or its legacy `token`).
//!
//! A cluster with `spec.tls` runs nodes that serve HTTPS only; calls then
//! go to `https://` and trust only the cluster's [`TrustedCa`] (the
//! `ca.crt` of its TLS Secret), checking the certificate against the host
//! name of the address called. Without TLS the calls are plain `http://`.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dynamo_ring::{RingDocument, TransferReport};
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

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

/// The CA certificates that signed the nodes' certificates: the only roots
/// an HTTPS admin call trusts.
///
/// Equal CAs compare and hash equal, so [`HttpNodeAdmin`] keeps one client
/// per CA.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TrustedCa {
    certificates: Arc<[CertificateDer<'static>]>,
}

/// Why a PEM value is not a usable CA.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CaError {
    /// Not PEM, or a PEM block that does not decode.
    #[error("not PEM: {0}")]
    NotPem(String),
    /// PEM without any `CERTIFICATE` block.
    #[error("no PEM CERTIFICATE block")]
    NoCertificate,
    /// A `CERTIFICATE` block that is not an X.509 certificate usable as a
    /// trust anchor.
    #[error("not a usable CA certificate: {0}")]
    NotACertificate(String),
}

impl TrustedCa {
    /// The CA from PEM text (one or more `CERTIFICATE` blocks; other block
    /// types are skipped).
    pub fn from_pem(pem: &[u8]) -> Result<Self, CaError> {
        let certificates = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CaError::NotPem(e.to_string()))?;
        if certificates.is_empty() {
            return Err(CaError::NoCertificate);
        }
        let ca = TrustedCa {
            certificates: certificates.into(),
        };
        ca.roots()?;
        Ok(ca)
    }

    fn roots(&self) -> Result<RootCertStore, CaError> {
        let mut roots = RootCertStore::empty();
        for certificate in self.certificates.iter() {
            roots
                .add(certificate.clone())
                .map_err(|e| CaError::NotACertificate(e.to_string()))?;
        }
        Ok(roots)
    }
}

/// Shows the number of certificates, not their bytes.
impl fmt::Debug for TrustedCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedCa")
            .field("certificates", &self.certificates.len())
            .finish()
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
        source: TransportError,
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
    /// No HTTPS client could be built for the cluster's CA.
    #[error("admin API of {address}: {source}")]
    Client {
        /// `HOST:PORT` to be called.
        address: String,
        /// Why the client could not be built.
        source: ClientError,
    },
}

/// Why an HTTP client of [`HttpNodeAdmin`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The CA is not usable as a root of trust.
    #[error("HTTPS client trusting the cluster CA: {0}")]
    Ca(#[from] CaError),
    /// The TLS configuration was refused.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// The admin calls the operator makes to a node at `HOST:PORT`.
pub trait NodeAdmin: Send + Sync + 'static {
    /// Sends the ring to the node, with `token` when the cluster has one,
    /// over HTTPS trusting `ca` when the cluster has TLS.
    fn publish_ring(
        &self,
        address: &str,
        token: Option<&BearerToken>,
        ca: Option<&TrustedCa>,
        document: &RingDocument,
    ) -> impl Future<Output = Result<PublishOutcome, NodeError>> + Send;

    /// Reads the node's transfer report, with `token` when the cluster has
    /// one, over HTTPS trusting `ca` when the cluster has TLS.
    fn transfers(
        &self,
        address: &str,
        token: Option<&BearerToken>,
        ca: Option<&TrustedCa>,
    ) -> impl Future<Output = Result<TransferReport, NodeError>> + Send;
}

/// HTTP/1 client of the admin calls; `http://` or `https://` by URL.
type Client = hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// [`NodeAdmin`] over HTTP, or HTTPS for clusters with TLS.
#[derive(Clone, Debug)]
pub struct HttpNodeAdmin {
    timeout: Duration,
    /// Client of the plain `http://` calls.
    plain: Client,
    /// Clients of the `https://` calls, one per trusted CA.
    https: Arc<Mutex<HashMap<TrustedCa, Client>>>,
}

impl HttpNodeAdmin {
    /// A client whose calls time out after `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, ClientError> {
        Ok(HttpNodeAdmin {
            timeout,
            // The plain client trusts no CA: it only calls `http://`.
            plain: client(RootCertStore::empty())?,
            https: Arc::default(),
        })
    }

    /// The client and URL scheme of calls trusting `ca` (`None`: plain HTTP).
    fn client_for(
        &self,
        address: &str,
        ca: Option<&TrustedCa>,
    ) -> Result<(Client, &'static str), NodeError> {
        let Some(ca) = ca else {
            return Ok((self.plain.clone(), "http"));
        };
        let error = |source: ClientError| NodeError::Client {
            address: address.to_string(),
            source,
        };
        // A poisoned lock only means another call panicked mid-insert; the
        // map itself is still a valid cache.
        let mut clients = self.https.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(ca) {
            return Ok((client.clone(), "https"));
        }
        let roots = ca.roots().map_err(|e| error(e.into()))?;
        let built = client(roots).map_err(error)?;
        clients.insert(ca.clone(), built.clone());
        Ok((built, "https"))
    }

    /// `method` on `path` of the node at `address`, with the token and a
    /// JSON `body`; the status and body of the answer, within the timeout.
    async fn call(
        &self,
        method: Method,
        address: &str,
        path: &str,
        token: Option<&BearerToken>,
        ca: Option<&TrustedCa>,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), NodeError> {
        let (client, scheme) = self.client_for(address, ca)?;
        let transport = |source: TransportError| NodeError::Transport {
            address: address.to_string(),
            source,
        };
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{scheme}://{address}{path}"));
        if let Some(BearerToken(value)) = token {
            request = request.header(AUTHORIZATION, value.clone());
        }
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| transport(TransportError::Request(e)))?;
        let exchange = async {
            let response = client
                .request(request)
                .await
                .map_err(TransportError::Send)?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(TransportError::Body)?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| transport(TransportError::Timeout(self.timeout)))?
            .map_err(transport)
    }
}

/// Why a call got no (readable) answer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The request could not be built (an address that is no URL authority).
    #[error("invalid request: {0}")]
    Request(http::Error),
    /// No connection, TLS handshake or answer (the causes follow the
    /// message, e.g. an untrusted certificate).
    #[error("{}", chain(.0))]
    Send(hyper_util::client::legacy::Error),
    /// The answer's body broke off.
    #[error("reading the answer: {0}")]
    Body(hyper::Error),
    /// No full answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The answer is not the expected JSON.
    #[error("unexpected answer: {0}")]
    Json(serde_json::Error),
}

/// `error: cause: cause ...`, since the legacy client's own message is
/// only "client error (Connect)".
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

/// A client with the ring crypto provider that calls `http://` URLs as
/// they are and `https://` URLs trusting only `roots`, checking the host
/// name of the URL.
fn client(roots: RootCertStore) -> Result<Client, ClientError> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector))
}

fn unexpected(address: &str, status: StatusCode, body: &[u8]) -> NodeError {
    NodeError::Status {
        address: address.to_string(),
        status: status.as_u16(),
        body: String::from_utf8_lossy(body).into_owned(),
    }
}

/// A JSON body that does not (de)serialize, for a call to `address`.
fn json_error(address: &str, error: serde_json::Error) -> NodeError {
    NodeError::Transport {
        address: address.to_string(),
        source: TransportError::Json(error),
    }
}

impl NodeAdmin for HttpNodeAdmin {
    async fn publish_ring(
        &self,
        address: &str,
        token: Option<&BearerToken>,
        ca: Option<&TrustedCa>,
        document: &RingDocument,
    ) -> Result<PublishOutcome, NodeError> {
        let body = serde_json::to_vec(document).map_err(|e| json_error(address, e))?;
        let (status, answer) = self
            .call(
                Method::PUT,
                address,
                "/v1/admin/ring",
                token,
                ca,
                Some(body),
            )
            .await?;
        match status {
            s if s.is_success() => Ok(PublishOutcome::Accepted),
            StatusCode::CONFLICT => Ok(PublishOutcome::NewerEpoch),
            _ => Err(unexpected(address, status, &answer)),
        }
    }

    async fn transfers(
        &self,
        address: &str,
        token: Option<&BearerToken>,
        ca: Option<&TrustedCa>,
    ) -> Result<TransferReport, NodeError> {
        let (status, answer) = self
            .call(Method::GET, address, "/v1/admin/transfers", token, ca, None)
            .await?;
        if !status.is_success() {
            return Err(unexpected(address, status, &answer));
        }
        serde_json::from_slice(&answer).map_err(|e| json_error(address, e))
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
    use dynamo_testkit::pki::TestCa;

    use super::*;
    use crate::ring_steps::fixtures::settled_report;

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
                    check(&seen, &headers)
                        .await
                        .map(|()| Json(settled_report("n0", 3)))
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
            .publish_ring(&address, Some(&token), None, &document())
            .await
            .expect("ring accepted");
        assert_eq!(outcome, PublishOutcome::Accepted);
        let report = admin
            .transfers(&address, Some(&token), None)
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
            match admin.publish_ring(&address, token, None, &document()).await {
                Err(NodeError::Status { status, body, .. }) => {
                    assert_eq!(status, 401);
                    assert!(body.contains("unauthorized"), "{body}");
                }
                other => panic!("expected 401, got {other:?}"),
            }
            assert!(matches!(
                admin.transfers(&address, token, None).await,
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

    /// A stand-in for a node with `DYNAMO_TLS_DIR`: HTTPS only, serving
    /// `config` (a certificate for `localhost` and `127.0.0.1`), answering
    /// `GET /v1/admin/transfers` (404 otherwise). Returns the port.
    async fn tls_node(config: rustls::ServerConfig) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.expect("accept");
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that does not trust the certificate ends
                    // the handshake: nothing to answer.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let report = serde_json::to_string(&settled_report("n0", 3)).expect("json");
                    let (status, body) = if request.starts_with(b"GET /v1/admin/transfers ") {
                        ("200 OK", report)
                    } else {
                        ("404 Not Found", String::new())
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn calls_to_a_tls_node_use_https_and_trust_only_the_cluster_ca() {
        let cluster_ca = TestCa::new("cluster CA");
        let port = tls_node(
            cluster_ca
                .issue(&["localhost", "127.0.0.1"])
                .server_config(),
        )
        .await;
        let address = format!("localhost:{port}");
        let admin = HttpNodeAdmin::new(Duration::from_secs(5)).expect("client");
        let ca = TrustedCa::from_pem(cluster_ca.pem().as_bytes()).expect("CA");
        let other =
            TrustedCa::from_pem(TestCa::new("another CA").pem().as_bytes()).expect("other CA");

        for _ in 0..2 {
            let report = admin
                .transfers(&address, None, Some(&ca))
                .await
                .expect("report over HTTPS");
            assert_eq!(report.epoch, 3);
        }
        let ip = format!("127.0.0.1:{port}");
        let report = admin.transfers(&ip, None, Some(&ca)).await;
        assert_eq!(report.expect("report over HTTPS by IP").epoch, 3);
        match admin.transfers(&address, None, Some(&other)).await {
            Err(error @ NodeError::Transport { .. }) => assert!(
                error.to_string().contains("UnknownIssuer"),
                "a certificate from another CA is refused: {error}"
            ),
            other => panic!("expected a refused certificate, got {other:?}"),
        }
        assert!(
            matches!(
                admin.transfers(&address, None, None).await,
                Err(NodeError::Transport { .. })
            ),
            "plain HTTP gets no answer from a TLS node"
        );
        assert_eq!(
            admin.https.lock().expect("lock").len(),
            2,
            "one HTTPS client per CA"
        );
    }

    #[tokio::test]
    async fn a_node_that_does_not_answer_times_out() {
        // Accepts connections and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                held.push(tcp);
            }
        });
        let admin = HttpNodeAdmin::new(Duration::from_millis(200)).expect("client");
        match admin.transfers(&address, None, None).await {
            Err(NodeError::Transport {
                source: TransportError::Timeout(after),
                ..
            }) => assert_eq!(after, Duration::from_millis(200)),
            other => panic!("expected a timeout, got {other:?}"),
        }
    }

    #[test]
    fn a_ca_must_be_pem_certificates() {
        let pem = TestCa::new("cluster CA").pem().to_string();
        let ca = TrustedCa::from_pem(pem.as_bytes()).expect("CA");
        let twice = TrustedCa::from_pem(format!("{pem}{pem}").as_bytes()).expect("two CAs");
        assert_ne!(ca, twice);
        assert_eq!(format!("{twice:?}"), "TrustedCa { certificates: 2 }");
        assert_eq!(
            TrustedCa::from_pem(b"not a certificate"),
            Err(CaError::NoCertificate)
        );
        assert!(matches!(
            TrustedCa::from_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            Err(CaError::NotACertificate(_))
        ));
        assert!(matches!(
            TrustedCa::from_pem(b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n"),
            Err(CaError::NotPem(_))
        ));
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
