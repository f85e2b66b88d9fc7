//! The nodes' HTTP API as dynamoctl calls it: one client (bearer token,
//! optional CA for HTTPS) and the errors a call can end with, each with the
//! exit code it maps to.

use std::path::Path;
use std::time::Duration;

use dynamo_backup::driver::nodes;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The node could not be reached.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// What was called.
        url: String,
        /// Why not.
        reason: String,
    },
    /// The token is missing, unknown or lacks the rights.
    #[error("{url}: {status}: {body}")]
    Denied {
        /// What was called.
        url: String,
        /// 401 or 403.
        status: StatusCode,
        /// The node's explanation.
        body: String,
    },
    /// The key has no live version.
    #[error("not found: {0}")]
    NotFound(String),
    /// The node answered with another error.
    #[error("{url}: {status}: {body}")]
    Failed {
        /// What was called.
        url: String,
        /// The status.
        status: StatusCode,
        /// The node's explanation.
        body: String,
    },
    /// Anything else (bad input, a wait that timed out, a local file).
    #[error("{0}")]
    Other(String),
}

impl CtlError {
    /// The process exit code: 1 for a failure, 3 not found, 4 unreachable,
    /// 5 denied (2 is clap's, for usage errors).
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Failed { .. } | CtlError::Other(_) => 1,
            CtlError::NotFound(_) => 3,
            CtlError::Unreachable { .. } => 4,
            CtlError::Denied { .. } => 5,
        }
    }
}

/// A client of the nodes' HTTP API.
pub struct Client {
    http: reqwest::Client,
    token: Option<String>,
    scheme: &'static str,
}

impl Client {
    /// A client sending `token` as a bearer token; over HTTPS trusting only
    /// the PEM CA in `ca` when given.
    pub fn new(token: Option<String>, ca: Option<&Path>) -> Result<Self, CtlError> {
        let pem = ca.map(read_ca).transpose()?;
        let builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
        let (http, scheme) = nodes::http_client(builder, pem.as_deref()).map_err(|e| match ca {
            Some(path) => CtlError::Other(format!("CA file {}: {e}", path.display())),
            None => CtlError::Other(e.to_string()),
        })?;
        Ok(Self {
            http,
            token,
            scheme,
        })
    }

    /// The URL of `path` on a node at `address` (`HOST:PORT` or a URL).
    pub fn url(&self, address: &str, path: &str) -> String {
        nodes::node_url(self.scheme, address, path)
    }

    /// A request with the token.
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        let request = self.http.request(method, url);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `request` to `url`; a 2xx (or 300) answer, else the error.
    pub async fn send(&self, url: &str, request: RequestBuilder) -> Result<Response, CtlError> {
        let response = request.send().await.map_err(|e| CtlError::Unreachable {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let status = response.status();
        if status.is_success() || status == StatusCode::MULTIPLE_CHOICES {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let url = url.to_string();
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                CtlError::Denied { url, status, body }
            }
            StatusCode::NOT_FOUND => CtlError::NotFound(body),
            _ => CtlError::Failed { url, status, body },
        })
    }

    /// GET `path` on `address` as JSON.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        address: &str,
        path: &str,
    ) -> Result<T, CtlError> {
        let url = self.url(address, path);
        let response = self.send(&url, self.request(Method::GET, &url)).await?;
        response
            .json()
            .await
            .map_err(|e| CtlError::Other(format!("{url}: unexpected answer: {e}")))
    }
}

/// The PEM CA file `path`.
fn read_ca(path: &Path) -> Result<Vec<u8>, CtlError> {
    std::fs::read(path)
        .map_err(|e| CtlError::Other(format!("reading CA file {}: {e}", path.display())))
}
