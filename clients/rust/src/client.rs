//! The client: node URLs, credentials, retries, and the calls.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::Stream;
use reqwest::header::{ACCEPT, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;
use serde_json::json;

use crate::path::{encode, key_path};
use crate::versions::WireVersions;
use crate::{Error, Versions, WriteOptions};

/// The header carrying a key's causal context.
pub const CONTEXT_HEADER: &str = "x-dynamo-context";

/// How calls are retried: `503` answers and connection failures, with
/// exponential backoff and full jitter, each attempt on the next node.
/// Client errors (`4xx`) are never retried.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// The first backoff's upper bound; it doubles per attempt.
    pub base: Duration,
    /// The largest backoff.
    pub cap: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 5,
            base: Duration::from_millis(50),
            cap: Duration::from_secs(2),
        }
    }
}

impl Retry {
    /// The wait after failed attempt `attempt` (1-based): uniform in
    /// `0..=min(cap, base * 2^(attempt-1))`, at least `floor` (a
    /// `Retry-After`) but never above `cap`.
    fn backoff(&self, attempt: u32, floor: Duration) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << (attempt - 1).min(20))
            .min(self.cap);
        let jitter = ceiling.mul_f64(rand::random::<f64>());
        jitter.max(floor).min(self.cap)
    }
}

/// One page of a key listing.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct KeyPage {
    /// Keys with a live value, in ring order (not sorted).
    pub keys: Vec<String>,
    /// The next page's cursor; `None` at the end.
    pub cursor: Option<String>,
}

/// Builds a [`Client`].
#[derive(Debug)]
pub struct ClientBuilder {
    urls: Vec<String>,
    token: Option<String>,
    ca_pem: Option<Vec<u8>>,
    timeout: Duration,
    retry: Retry,
    r: Option<u32>,
    w: Option<u32>,
}

impl ClientBuilder {
    /// Sends `Authorization: Bearer <token>` (nodes with `--auth-dir`).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Trusts only the CA certificates of this PEM (nodes with
    /// `--tls-dir`; use `https://` URLs).
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Trusts only the CA certificates of this PEM file.
    pub fn ca_file(self, path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let pem = std::fs::read(path)
            .map_err(|e| Error::Config(format!("reading CA file {}: {e}", path.display())))?;
        Ok(self.ca_pem(pem))
    }

    /// Time limit of one attempt (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How calls are retried (see [`Retry`]).
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Read quorum of every read (default: the node's).
    pub fn read_quorum(mut self, r: u32) -> Self {
        self.r = Some(r);
        self
    }

    /// Write quorum of every write (default: the node's).
    pub fn write_quorum(mut self, w: u32) -> Self {
        self.w = Some(w);
        self
    }

    /// The client.
    pub fn build(self) -> Result<Client, Error> {
        if self.urls.is_empty() {
            return Err(Error::Config("no node URL".into()));
        }
        let urls: Vec<String> = self
            .urls
            .iter()
            .map(|u| u.trim_end_matches('/').to_string())
            .collect();
        if let Some(bad) = urls
            .iter()
            .find(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return Err(Error::Config(format!(
                "{bad:?} is not an http:// or https:// URL"
            )));
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder().timeout(self.timeout);
        if let Some(pem) = &self.ca_pem {
            builder = builder.use_preconfigured_tls(tls_config(pem)?);
        }
        let http = builder
            .build()
            .map_err(|e| Error::Config(format!("building the HTTP client: {e}")))?;
        Ok(Client {
            http,
            urls: urls.into(),
            next: Arc::new(AtomicUsize::new(0)),
            token: self.token,
            retry: self.retry,
            r: self.r,
            w: self.w,
        })
    }
}

/// A TLS configuration trusting only the CA certificates of `pem`.
fn tls_config(pem: &[u8]) -> Result<rustls::ClientConfig, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(pem) {
        let certificate = certificate.map_err(|e| Error::Config(format!("CA PEM: {e}")))?;
        roots
            .add(certificate)
            .map_err(|e| Error::Config(format!("CA PEM: {e}")))?;
    }
    if roots.is_empty() {
        return Err(Error::Config("the CA PEM holds no certificate".into()));
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A client of a cluster: any node coordinates any key, so calls go to
/// the nodes in turn, and to the next one when a node fails. Cheap to
/// clone (clones share connections).
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    urls: Arc<[String]>,
    next: Arc<AtomicUsize>,
    token: Option<String>,
    retry: Retry,
    r: Option<u32>,
    w: Option<u32>,
}

/// A call: what to send, built again for each attempt.
struct Call<'a> {
    method: Method,
    path: String,
    context: Option<&'a str>,
    /// Headers besides the context, the token and `Accept`: a write's
    /// `Content-Type` and metadata.
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<Body>,
    /// Whether `404` is an answer (a read of an absent key) and not an error.
    found_or_not: bool,
}

enum Body {
    Bytes(Bytes),
    Json(serde_json::Value),
}

impl Client {
    /// A builder for a client of the nodes at `urls` (`http://host:port`
    /// or `https://host:port`).
    pub fn builder<I, S>(urls: I) -> ClientBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ClientBuilder {
            urls: urls.into_iter().map(Into::into).collect(),
            token: None,
            ca_pem: None,
            timeout: Duration::from_secs(5),
            retry: Retry::default(),
            r: None,
            w: None,
        }
    }

    /// Reads `key`: every live version and the context to write it back
    /// with. An absent key is not an error: no values (and, after a delete,
    /// the tombstone's context).
    pub async fn get(&self, key: &str) -> Result<Versions, Error> {
        let call = Call {
            method: Method::GET,
            path: format!("{}{}", key_path(key)?, quorum("r", self.r)),
            context: None,
            headers: Vec::new(),
            body: None,
            found_or_not: true,
        };
        let (url, response) = self.send(&call).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(Versions::absent(key, context_of(&response)));
        }
        let wire: WireVersions = decode(&url, response).await?;
        wire.into_versions(key)
            .map_err(|reason| Error::Decode { url, reason })
    }

    /// Writes `value`, superseding the versions `context` (from a read of
    /// this key) covers; without one, a value already there stays as a
    /// sibling. Returns the new version's context. The version has no
    /// attributes (reads give no content type, metadata or expiry): see
    /// [`Client::put_with`].
    pub async fn put(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        context: Option<&str>,
    ) -> Result<String, Error> {
        self.put_with(key, value, context, &WriteOptions::default())
            .await
    }

    /// Writes `value` as [`Client::put`] does, with the content type,
    /// metadata and time to live of `options`, which reads return with
    /// this version ([`crate::Version`]). Options the client cannot send
    /// are refused before any request ([`Error::InvalidAttribute`]).
    /// During a rolling upgrade from a release without attributes, a node
    /// answers such a write `503 attributes_unavailable`, retried as any
    /// `503` is.
    pub async fn put_with(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        context: Option<&str>,
        options: &WriteOptions,
    ) -> Result<String, Error> {
        let path = key_path(key)?;
        let attributes = options.prepare()?;
        let call = Call {
            method: Method::PUT,
            path: format!(
                "{path}{}",
                query(&[("w", self.w.map(u64::from)), ("ttl", attributes.ttl)])
            ),
            context,
            headers: attributes.headers,
            body: Some(Body::Bytes(value.into())),
            found_or_not: false,
        };
        let (url, response) = self.send(&call).await?;
        context_of(&response).ok_or_else(|| Error::Decode {
            url,
            reason: "a write answered without a context".into(),
        })
    }

    /// Deletes `key` (a tombstone superseding what `context` covers, or,
    /// without one, what the node reads). Returns the tombstone's context,
    /// `None` when there was nothing to delete.
    pub async fn delete(&self, key: &str, context: Option<&str>) -> Result<Option<String>, Error> {
        let call = Call {
            method: Method::DELETE,
            path: format!("{}{}", key_path(key)?, quorum("w", self.w)),
            context,
            headers: Vec::new(),
            body: None,
            found_or_not: true,
        };
        let (_, response) = self.send(&call).await?;
        Ok(match response.status() {
            StatusCode::NOT_FOUND => None,
            _ => context_of(&response),
        })
    }

    /// Read, merge, write: reads `key`, calls `merge` with its live values
    /// (none when absent, several when siblings) and writes what it
    /// returns with the read's context, so the write supersedes exactly
    /// what `merge` saw; `None` deletes the key. Returns the new context
    /// (`None` when there was nothing to delete). The value written has no
    /// attributes, whatever the siblings had: see [`Client::update_with`].
    pub async fn update<F>(&self, key: &str, merge: F) -> Result<Option<String>, Error>
    where
        F: FnOnce(&[Bytes]) -> Option<Bytes>,
    {
        self.update_with(key, &WriteOptions::default(), merge).await
    }

    /// [`Client::update`] writing the merged value with the attributes of
    /// `options` (checked before the read). The siblings' own attributes
    /// are not carried over: read them from [`Versions::siblings`] to
    /// choose `options`.
    pub async fn update_with<F>(
        &self,
        key: &str,
        options: &WriteOptions,
        merge: F,
    ) -> Result<Option<String>, Error>
    where
        F: FnOnce(&[Bytes]) -> Option<Bytes>,
    {
        options.prepare()?;
        let current = self.get(key).await?;
        match merge(&current.values) {
            Some(value) => Ok(Some(
                self.put_with(key, value, current.context.as_deref(), options)
                    .await?,
            )),
            None if current.exists() => self.delete(key, current.context.as_deref()).await,
            None => Ok(current.context),
        }
    }

    /// Reads up to 100 keys in one request (one per replica set on the
    /// node's side), in the order given.
    pub async fn get_many(&self, keys: &[&str]) -> Result<Vec<Versions>, Error> {
        #[derive(Deserialize)]
        struct Batch {
            items: Vec<WireVersions>,
        }
        let call = Call {
            method: Method::POST,
            path: format!("/v1/batch/get{}", quorum("r", self.r)),
            context: None,
            headers: Vec::new(),
            body: Some(Body::Json(json!({ "keys": keys }))),
            found_or_not: false,
        };
        let (url, response) = self.send(&call).await?;
        let batch: Batch = decode(&url, response).await?;
        if batch.items.len() != keys.len() {
            return Err(Error::Decode {
                url,
                reason: format!("{} items for {} keys", batch.items.len(), keys.len()),
            });
        }
        batch
            .items
            .into_iter()
            .zip(keys)
            .map(|(item, key)| item.into_versions(key))
            .collect::<Result<_, _>>()
            .map_err(|reason| Error::Decode { url, reason })
    }

    /// One page of the keys starting with `prefix` (see the API's listing:
    /// ring order, a page may be short while more follow).
    pub async fn list_page(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<KeyPage, Error> {
        let mut path = format!("/v1/kv?prefix={}&limit={limit}", encode(prefix));
        if let Some(cursor) = cursor {
            path.push_str(&format!("&cursor={}", encode(cursor)));
        }
        let call = Call {
            method: Method::GET,
            path,
            context: None,
            headers: Vec::new(),
            body: None,
            found_or_not: false,
        };
        let (url, response) = self.send(&call).await?;
        decode(&url, response).await
    }

    /// Every key starting with `prefix`, page after page (100 keys a
    /// request), as a stream.
    pub fn list_keys<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Stream<Item = Result<String, Error>> + 'a {
        enum State {
            Next(Option<String>),
            Done,
        }
        let pages = futures::stream::unfold(State::Next(None), move |state| async move {
            let State::Next(cursor) = state else {
                return None;
            };
            match self.list_page(prefix, cursor.as_deref(), 100).await {
                Ok(page) => {
                    let next = match page.cursor {
                        Some(cursor) => State::Next(Some(cursor)),
                        None => State::Done,
                    };
                    let keys: Vec<Result<String, Error>> = page.keys.into_iter().map(Ok).collect();
                    Some((futures::stream::iter(keys), next))
                }
                Err(error) => Some((futures::stream::iter(vec![Err(error)]), State::Done)),
            }
        });
        futures::StreamExt::flatten(pages)
    }

    /// Sends `call` to the nodes in turn until one answers other than
    /// `503`, retrying as [`Retry`] says; the URL and the answer (`2xx`,
    /// `300`, and `404` when the call takes it), else the error.
    async fn send(&self, call: &Call<'_>) -> Result<(String, Response), Error> {
        let started = Instant::now();
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        let mut attempt = 0;
        // A write answered 503 may have left its version on some replicas;
        // the 503 then carries the context to retry with, which replaces
        // that version instead of adding an identical sibling.
        let mut context = call.context.map(str::to_string);
        loop {
            attempt += 1;
            let url = format!(
                "{}{}",
                self.urls[(first + attempt as usize - 1) % self.urls.len()],
                call.path
            );
            let last = attempt >= self.retry.attempts.max(1);
            match self.request(call, &url, context.as_deref()).send().await {
                Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE && !last => {
                    if let Some(retry) = context_of(&response) {
                        context = Some(retry);
                    }
                    let floor = retry_after(&response).unwrap_or_default();
                    tokio::time::sleep(self.retry.backoff(attempt, floor)).await;
                }
                Ok(response) => {
                    let status = response.status();
                    let found_or_not = call.found_or_not && status == StatusCode::NOT_FOUND;
                    if status.is_success() || status == StatusCode::MULTIPLE_CHOICES || found_or_not
                    {
                        return Ok((url, response));
                    }
                    return Err(api_error(&call.method, url, response).await);
                }
                Err(_) if !last => {
                    tokio::time::sleep(self.retry.backoff(attempt, Duration::ZERO)).await;
                }
                Err(error) => {
                    return Err(Error::Unreachable {
                        method: call.method.to_string(),
                        url,
                        attempts: attempt,
                        elapsed: started.elapsed(),
                        reason: error_chain(&error),
                    });
                }
            }
        }
    }

    fn request(&self, call: &Call<'_>, url: &str, context: Option<&str>) -> RequestBuilder {
        let mut request = self
            .http
            .request(call.method.clone(), url)
            .header(ACCEPT, "application/json");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(context) = context {
            request = request.header(CONTEXT_HEADER, context);
        }
        for (name, value) in &call.headers {
            request = request.header(name, value);
        }
        match &call.body {
            // No `Content-Type` unless the write gives one: the node keeps
            // it with the version.
            Some(Body::Bytes(bytes)) => request.body(bytes.clone()),
            Some(Body::Json(value)) => request.json(value),
            None => request,
        }
    }
}

/// `?name=n` when a quorum is set.
fn quorum(name: &str, value: Option<u32>) -> String {
    query(&[(name, value.map(u64::from))])
}

/// The query string of the parameters that are set (`?w=2&ttl=60`), or
/// nothing.
fn query(params: &[(&str, Option<u64>)]) -> String {
    let mut text = String::new();
    for (name, value) in params {
        if let Some(value) = value {
            text.push(if text.is_empty() { '?' } else { '&' });
            text.push_str(&format!("{name}={value}"));
        }
    }
    text
}

fn context_of(response: &Response) -> Option<String> {
    response
        .headers()
        .get(CONTEXT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn retry_after(response: &Response) -> Option<Duration> {
    let seconds = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    seconds.parse().ok().map(Duration::from_secs)
}

async fn decode<T: serde::de::DeserializeOwned>(url: &str, response: Response) -> Result<T, Error> {
    response.json().await.map_err(|e| Error::Decode {
        url: url.to_string(),
        reason: error_chain(&e),
    })
}

/// The error a node's error answer stands for (its JSON `code` and
/// `message`, or the status and body when it is not JSON).
async fn api_error(method: &Method, url: String, response: Response) -> Error {
    #[derive(Deserialize)]
    struct Wire {
        error: Detail,
    }
    #[derive(Deserialize)]
    struct Detail {
        code: String,
        message: String,
    }
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let (code, message) = match serde_json::from_str::<Wire>(&text) {
        Ok(wire) => (wire.error.code, wire.error.message),
        Err(_) => (format!("http_{status}"), text),
    };
    Error::Api {
        method: method.to_string(),
        url,
        status,
        code,
        message,
    }
}

/// An error and its sources, for messages.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_hold_the_parameters_set() {
        assert_eq!(query(&[("w", None), ("ttl", None)]), "");
        assert_eq!(query(&[("w", None), ("ttl", Some(60))]), "?ttl=60");
        assert_eq!(query(&[("w", Some(2)), ("ttl", Some(60))]), "?w=2&ttl=60");
    }
}
