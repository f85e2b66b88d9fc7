//! The HTTP side: target URLs and one keep-alive HTTP/1.1 connection per
//! worker, built on hyper's low-level client (`hyper::client::conn::http1`),
//! which costs less CPU per request than a pooled client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The causal-context header of the store's API.
pub const CONTEXT: HeaderName = HeaderName::from_static("x-dynamo-context");

/// Why a `--url` was rejected.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// Not a URI at all.
    #[error("not a URL: {0}")]
    Syntax(#[from] http::uri::InvalidUri),
    /// Anything but plain `http`.
    #[error("only http:// URLs are supported")]
    Scheme,
    /// No host.
    #[error("the URL has no host")]
    NoHost,
    /// A path or query besides `/`.
    #[error("the URL must be a base URL like http://127.0.0.1:7001, without a path or query")]
    Path,
}

/// A node's base URL as given on the command line, e.g. `http://127.0.0.1:7001`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl {
    url: String,
    host: String,
    port: u16,
    authority: String,
}

impl TargetUrl {
    /// Parses and checks a base URL (`http://HOST[:PORT]`, optional trailing `/`).
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let uri: Uri = url.parse()?;
        if uri.scheme_str() != Some("http") {
            return Err(UrlError::Scheme);
        }
        let authority = uri.authority().ok_or(UrlError::NoHost)?;
        if authority.host().is_empty() {
            return Err(UrlError::NoHost);
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(UrlError::Path);
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            host,
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_owned(),
        })
    }

    /// The URL as given (without a trailing `/`).
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// Resolves the host name to an address to connect to.
    pub async fn resolve(&self) -> anyhow::Result<Target> {
        use anyhow::Context as _;
        let addr = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .with_context(|| format!("cannot resolve {}", self.url))?
            .next()
            .with_context(|| format!("{} resolves to no address", self.url))?;
        let host = HeaderValue::from_str(&self.authority)
            .with_context(|| format!("{} is not a valid Host header", self.authority))?;
        Ok(Target {
            url: self.url.clone(),
            addr,
            host,
            authorization: None,
        })
    }
}

/// A resolved node: where to connect, what to send as `Host`, and the
/// `Authorization` header of every request, if the node requires a token.
#[derive(Debug)]
pub struct Target {
    url: String,
    addr: SocketAddr,
    host: HeaderValue,
    authorization: Option<HeaderValue>,
}

impl Target {
    /// This target, sending `Authorization: Bearer <token>` with every
    /// request.
    pub fn with_token(mut self, token: &str) -> anyhow::Result<Self> {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| anyhow::anyhow!("the token is not valid in an HTTP header"))?;
        value.set_sensitive(true);
        self.authorization = Some(value);
        Ok(self)
    }

    /// The URL this target came from.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// How a request failed before an HTTP status was received.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// TCP connect or the HTTP handshake failed.
    #[error("cannot connect to {addr}")]
    Connect {
        /// Where we tried to connect.
        addr: SocketAddr,
        /// Why it failed.
        source: std::io::Error,
    },
    /// No complete answer within the request timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection failed mid-request (reset, closed, malformed answer).
    #[error("HTTP exchange failed")]
    Http(#[from] hyper::Error),
    /// The request path is not a valid URI path.
    #[error("invalid request path")]
    Path(#[from] http::uri::InvalidUri),
}

/// A completed exchange.
#[derive(Debug)]
pub struct Reply {
    /// The response status.
    pub status: StatusCode,
    /// The `X-Dynamo-Context` response header, if any.
    pub context: Option<HeaderValue>,
}

/// One worker's keep-alive HTTP/1.1 connection to one node. It connects on
/// first use and reconnects after any failure.
pub struct Connection {
    target: Arc<Target>,
    timeout: Duration,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    /// A connection to `target` (not yet connected) whose requests time out after `timeout`.
    pub fn new(target: Arc<Target>, timeout: Duration) -> Self {
        Self {
            target,
            timeout,
            sender: None,
        }
    }

    /// The URL of the node this connection goes to.
    pub fn url(&self) -> &str {
        self.target.url()
    }

    /// Connects now, so start-up problems surface before the run.
    pub async fn connect(&mut self) -> Result<(), RequestError> {
        let sender = tokio::time::timeout(self.timeout, self.open())
            .await
            .map_err(|_| RequestError::Timeout(self.timeout))??;
        self.sender = Some(sender);
        Ok(())
    }

    /// `GET path`; the body is read and dropped.
    pub async fn get(&mut self, path: &str) -> Result<Reply, RequestError> {
        self.request(Method::GET, path, Bytes::new(), None).await
    }

    /// `PUT path` with `body`, and `X-Dynamo-Context: context` when given.
    pub async fn put(
        &mut self,
        path: &str,
        body: Bytes,
        context: Option<HeaderValue>,
    ) -> Result<Reply, RequestError> {
        self.request(Method::PUT, path, body, context).await
    }

    async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
        context: Option<HeaderValue>,
    ) -> Result<Reply, RequestError> {
        let outcome =
            tokio::time::timeout(self.timeout, self.exchange(method, path, body, context)).await;
        match outcome {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                // The connection is mid-exchange; start afresh.
                self.sender = None;
                Err(RequestError::Timeout(self.timeout))
            }
        }
    }

    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
        context: Option<HeaderValue>,
    ) -> Result<Reply, RequestError> {
        let reusable = match self.sender.take() {
            Some(mut sender) => sender.ready().await.is_ok().then_some(sender),
            None => None,
        };
        let sender = match reusable {
            Some(sender) => self.sender.insert(sender),
            None => {
                let sender = self.open().await?;
                self.sender.insert(sender)
            }
        };

        let is_put = method == Method::PUT;
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = Uri::try_from(path)?;
        let headers = request.headers_mut();
        headers.insert(HOST, self.target.host.clone());
        if let Some(authorization) = &self.target.authorization {
            headers.insert(AUTHORIZATION, authorization.clone());
        }
        if is_put {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
        }
        if let Some(context) = context {
            headers.insert(CONTEXT, context);
        }

        let response = sender.send_request(request).await?;
        let status = response.status();
        let context = response.headers().get(CONTEXT).cloned();
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            frame?;
        }
        Ok(Reply { status, context })
    }

    async fn open(&self) -> Result<SendRequest<Full<Bytes>>, RequestError> {
        let addr = self.target.addr;
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| RequestError::Connect { addr, source })?;
        stream
            .set_nodelay(true)
            .map_err(|source| RequestError::Connect { addr, source })?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Errors reach the worker through `sender`; nothing to add here.
            let _ = connection.await;
        });
        Ok(sender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_parse() {
        let u = TargetUrl::parse("http://127.0.0.1:7001").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 7001));
        assert_eq!(u.as_str(), "http://127.0.0.1:7001");
        let u = TargetUrl::parse("http://localhost/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("localhost", 80));
        assert_eq!(u.as_str(), "http://localhost");
        let u = TargetUrl::parse("http://[::1]:7002").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 7002));
    }

    #[test]
    fn bad_urls_are_rejected() {
        assert!(matches!(
            TargetUrl::parse("https://127.0.0.1:7001"),
            Err(UrlError::Scheme)
        ));
        assert!(matches!(
            TargetUrl::parse("127.0.0.1:7001"),
            Err(UrlError::Scheme)
        ));
        assert!(matches!(
            TargetUrl::parse("http://127.0.0.1:7001/v1/kv"),
            Err(UrlError::Path)
        ));
        assert!(matches!(
            TargetUrl::parse("http://a b"),
            Err(UrlError::Syntax(_))
        ));
    }
}
