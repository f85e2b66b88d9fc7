//! The nodes' admin routes as the driver calls them: a bearer token (the
//! admin token), and HTTPS trusting one CA when the cluster serves TLS.

use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::DriverError;

/// How long a call may take, but an export stream or an import.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an export stream may take in all.
const STREAM_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long one import request may take.
const IMPORT_TIMEOUT: Duration = Duration::from_secs(120);

/// A client of the nodes' admin routes.
pub struct Admin {
    http: reqwest::Client,
    token: Option<String>,
    scheme: &'static str,
}

impl Admin {
    /// A client sending `token` as a bearer token; over HTTPS trusting only
    /// the CA certificates of the PEM `ca` when given.
    pub fn new(token: Option<String>, ca: Option<&[u8]>) -> Result<Self, DriverError> {
        let (http, scheme) = http_client(reqwest::Client::builder(), ca)?;
        Ok(Self {
            http,
            token,
            scheme,
        })
    }

    /// The URL of `path` on a node at `address` (`HOST:PORT` or a URL).
    pub fn url(&self, address: &str, path: &str) -> String {
        node_url(self.scheme, address, path)
    }

    /// Sends a request; a 2xx answer, else the error.
    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Response, DriverError> {
        let mut request = self.http.request(method, url).timeout(timeout);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/octet-stream")
                .body(body);
        }
        let response = request.send().await.map_err(|e| DriverError::Unreachable {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let url = url.to_string();
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                DriverError::Denied { url, status, body }
            }
            _ => DriverError::Node { url, status, body },
        })
    }

    /// GET `path` on `address` as JSON.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        address: &str,
        path: &str,
    ) -> Result<T, DriverError> {
        let url = self.url(address, path);
        let response = self.send(Method::GET, &url, None, CALL_TIMEOUT).await?;
        response
            .json()
            .await
            .map_err(|e| DriverError::Other(format!("{url}: unexpected answer: {e}")))
    }

    /// Calls `path` on `address`; its JSON answer, or `Value::Null` when
    /// it has none.
    pub async fn call(
        &self,
        address: &str,
        method: Method,
        path: &str,
    ) -> Result<Value, DriverError> {
        let url = self.url(address, path);
        let response = self.send(method, &url, None, CALL_TIMEOUT).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| DriverError::Other(format!("{url}: {e}")))?;
        match bytes.is_empty() {
            true => Ok(Value::Null),
            false => serde_json::from_slice(&bytes)
                .map_err(|e| DriverError::Other(format!("{url}: unexpected answer: {e}"))),
        }
    }

    /// A long GET whose body is read as it comes (an export stream).
    pub async fn stream(&self, url: &str) -> Result<Response, DriverError> {
        self.send(Method::GET, url, None, STREAM_TIMEOUT).await
    }

    /// POSTs record frames to `address`'s import route.
    pub async fn import(&self, address: &str, frames: Vec<u8>) -> Result<(), DriverError> {
        let url = self.url(address, "/v1/admin/import");
        self.send(Method::POST, &url, Some(frames), IMPORT_TIMEOUT)
            .await
            .map(drop)
    }
}

/// The HTTP client `builder` makes, and the scheme to call nodes with:
/// HTTPS trusting only the CA certificates of the PEM `ca` when given,
/// else plain HTTP.
pub fn http_client(
    builder: reqwest::ClientBuilder,
    ca: Option<&[u8]>,
) -> Result<(reqwest::Client, &'static str), DriverError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (builder, scheme) = match ca {
        Some(pem) => (builder.use_preconfigured_tls(tls_config(pem)?), "https"),
        None => (builder, "http"),
    };
    let http = builder
        .build()
        .map_err(|e| DriverError::Other(format!("building the HTTP client: {e}")))?;
    Ok((http, scheme))
}

/// The URL of `path` on a node at `address`: `address` is `HOST:PORT`
/// (called with `scheme`) or a URL.
pub fn node_url(scheme: &str, address: &str, path: &str) -> String {
    match address.contains("://") {
        true => format!("{}{path}", address.trim_end_matches('/')),
        false => format!("{scheme}://{address}{path}"),
    }
}

/// A TLS configuration trusting only the CA certificates of `pem`.
pub fn tls_config(pem: &[u8]) -> Result<rustls::ClientConfig, DriverError> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(pem) {
        let certificate = certificate.map_err(|e| DriverError::Other(format!("CA: {e}")))?;
        roots
            .add(certificate)
            .map_err(|e| DriverError::Other(format!("CA: {e}")))?;
    }
    if roots.is_empty() {
        return Err(DriverError::Other("the CA holds no certificate".into()));
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}
