//! Authentication and authorization of the routes, with `--auth-dir`
//! (see [`crate::credentials`]): `/v1/kv` takes client tokens within
//! their prefix and rights, the admin routes take the admin token,
//! `/v1/status` either, and the node-to-node stream the peer token (and,
//! with TLS, a client certificate signed by `ca.crt`). The health probes
//! stay open, and so does `/metrics` unless the credentials have a
//! `metrics-token` (then it takes that or the admin token), as Garage
//! does: a scraper needs no key rights, and the metrics show none. No token is `401 unauthorized`; a valid token used beyond
//! its rights is `403 forbidden`.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::credentials::{Client, Credentials, Operation};
use crate::periodic::{PeriodicTask, RoundError};

/// How often the client token files are checked for changes.
pub const CLIENT_RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads the client tokens again when their files change (a Secret
/// edited on Kubernetes reaches the mounted files within a minute or so).
pub struct ClientReload(pub Arc<Credentials>);

impl PeriodicTask for ClientReload {
    fn name(&self) -> &'static str {
        "client credentials"
    }

    fn interval(&self) -> std::time::Duration {
        CLIENT_RELOAD_INTERVAL
    }

    async fn round(&self) -> Result<(), RoundError> {
        match self.0.reload_clients() {
            Ok(true) => tracing::info!("client credentials changed: read them again"),
            Ok(false) => {}
            Err(error) => {
                let error = format!("{error:#}");
                return Err(RoundError::local("reloading client credentials", error));
            }
        }
        Ok(())
    }
}

/// Marks a request whose connection presented a client certificate that
/// the TLS handshake checked against `ca.crt`.
#[derive(Clone, Copy, Debug)]
pub struct ClientCertificate;

/// What the node-to-node stream requires.
#[derive(Clone)]
pub struct PeerGuard {
    /// The peer token, if the node has credentials.
    pub credentials: Option<Arc<Credentials>>,
    /// Whether a client certificate is required (the node serves TLS).
    pub certificate: bool,
}

/// The bearer token of `headers`, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn unauthorized(message: &str) -> Response {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response()
}

fn forbidden(message: String) -> Response {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message).into_response()
}

/// The client of the request's bearer token, or the error refusing it.
fn client_of(credentials: &Credentials, headers: &HeaderMap) -> Result<Arc<Client>, ApiError> {
    let Some(given) = bearer(headers) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this node requires Authorization: Bearer <client token>",
        ));
    };
    let Some(client) = credentials.client(given) else {
        if credentials.admin().matches(given) || credentials.peer().matches(given) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the admin and peer tokens do not open /v1/kv: use a client token",
            ));
        }
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unknown token",
        ));
    };
    Ok(client)
}

/// The answer refusing `client` an `operation` on a key outside its rights.
pub fn refused(client: &Client, operation: Operation) -> Response {
    let rights = match operation {
        Operation::Read => "read",
        Operation::Write => "write",
    };
    forbidden(format!(
        "client {:?} may not {rights} this key (its rights: {:?} on keys starting with {:?})",
        client.name, client.access, client.prefix
    ))
}

/// `/v1/kv/{key}`: a client token whose prefix covers the key and whose
/// rights cover the method. A key the path cannot hold goes on to the
/// handler, which refuses it.
pub async fn require_client(
    State(credentials): State<Arc<Credentials>>,
    key: Result<Path<String>, PathRejection>,
    request: Request,
    next: Next,
) -> Response {
    let client = match client_of(&credentials, request.headers()) {
        Ok(client) => client,
        Err(refusal) => return refusal.into_response(),
    };
    let operation = match *request.method() {
        Method::GET | Method::HEAD => Operation::Read,
        _ => Operation::Write,
    };
    if let Ok(Path(key)) = &key
        && !client.may(operation, key.as_bytes())
    {
        return refused(&client, operation);
    }
    next.run(request).await
}

/// The read routes over many keys (batch reads, listing): any client
/// token; the handler checks each key (or the prefix) against the
/// [`Client`] this leaves in the request's extensions.
pub async fn require_reader(
    State(credentials): State<Arc<Credentials>>,
    mut request: Request,
    next: Next,
) -> Response {
    match client_of(&credentials, request.headers()) {
        Ok(client) => {
            request.extensions_mut().insert(client);
            next.run(request).await
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// The admin routes: the admin token only.
pub async fn require_admin(
    State(credentials): State<Arc<Credentials>>,
    request: Request,
    next: Next,
) -> Response {
    match bearer(request.headers()) {
        Some(given) if credentials.admin().matches(given) => next.run(request).await,
        Some(given) if credentials.client(given).is_some() || credentials.peer().matches(given) => {
            forbidden("only the admin token opens the admin routes".into())
        }
        Some(_) => unauthorized("unknown token"),
        None => unauthorized("this node requires Authorization: Bearer <admin token>"),
    }
}

/// `/v1/status`: the admin token or any client token.
pub async fn require_admin_or_client(
    State(credentials): State<Arc<Credentials>>,
    request: Request,
    next: Next,
) -> Response {
    match bearer(request.headers()) {
        Some(given)
            if credentials.admin().matches(given) || credentials.client(given).is_some() =>
        {
            next.run(request).await
        }
        Some(_) => unauthorized("unknown token"),
        None => unauthorized("this node requires Authorization: Bearer <token>"),
    }
}

/// `/metrics`: open without a metrics token; with one, that or the admin
/// token.
pub async fn require_metrics(
    State(credentials): State<Arc<Credentials>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(metrics) = credentials.metrics() else {
        return next.run(request).await;
    };
    match bearer(request.headers()) {
        Some(given) if metrics.matches(given) || credentials.admin().matches(given) => {
            next.run(request).await
        }
        Some(given) if credentials.client(given).is_some() || credentials.peer().matches(given) => {
            forbidden("only the metrics or admin token opens /metrics".into())
        }
        Some(_) => unauthorized("unknown token"),
        None => unauthorized("this node requires Authorization: Bearer <metrics token>"),
    }
}

/// The node-to-node stream: the peer token, and with TLS a client
/// certificate signed by `ca.crt`.
pub async fn require_peer(
    State(guard): State<PeerGuard>,
    request: Request,
    next: Next,
) -> Response {
    if guard.certificate && request.extensions().get::<ClientCertificate>().is_none() {
        return unauthorized(
            "the node-to-node stream requires a client certificate signed by the cluster's CA",
        );
    }
    if let Some(credentials) = &guard.credentials
        && !bearer(request.headers()).is_some_and(|given| credentials.peer().matches(given))
    {
        return unauthorized("the node-to-node stream requires Authorization: Bearer <peer token>");
    }
    next.run(request).await
}
