//! `GET /metrics` (see [`crate::metrics`]), and the middleware that
//! counts and times the key requests by outcome.
//!
//! `/metrics` is outside the cap on requests in flight, like the probes,
//! so that an overloaded node can still be scraped. It needs no token
//! unless the credentials have a `metrics-token` (see [`auth`]).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::error::ErrorCode;
use super::{ApiError, AppState, auth};
use crate::credentials::Credentials;
use crate::metrics::{Op, Outcome, Sources};

/// The content type of the OpenMetrics text format.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `/metrics`, requiring the metrics token when the credentials have one.
pub(super) fn router(state: Arc<AppState>, credentials: Option<Arc<Credentials>>) -> Router {
    let routes = Router::new().route("/metrics", get(metrics));
    let routes = match credentials {
        Some(c) => routes.route_layer(from_fn_with_state(c, auth::require_metrics)),
        None => routes,
    };
    routes.with_state(state)
}

/// `GET /metrics`: every metric of the node.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let sources = Sources {
        coordinator: &state.coordinator,
        handoff: &state.tasks.handoff,
        anti_entropy: &state.tasks.anti_entropy,
        transfers: &state.transfers,
    };
    match state.metrics.encode(&sources) {
        Ok(text) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            text,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "encoding the metrics");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the metrics could not be encoded; the details are in the node's log",
            )
            .into_response()
        }
    }
}

/// Middleware counting and timing each client operation (see
/// [`client_op`]) by outcome (refusals for lack of credentials or room
/// included); other requests pass untouched.
pub(super) async fn measure(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(op) = client_op(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let started = Instant::now();
    let response = next.run(request).await;
    let code = response.extensions().get::<ErrorCode>().map(|c| c.0);
    let outcome = outcome(response.status(), code);
    state
        .metrics
        .observe_request(op, outcome, started.elapsed());
    response
}

/// The client operation a request is, if it is one: a key's `GET`,
/// `HEAD`, `PUT` or `DELETE`, a listing or a batch read.
fn client_op(method: &Method, path: &str) -> Option<Op> {
    match (method, path) {
        (&Method::GET, "/v1/kv") => Some(Op::List),
        (&Method::POST, "/v1/batch/get") => Some(Op::BatchGet),
        (method, path) if path.starts_with("/v1/kv/") => match *method {
            Method::GET | Method::HEAD => Some(Op::Get),
            Method::PUT => Some(Op::Put),
            Method::DELETE => Some(Op::Delete),
            _ => None,
        },
        _ => None,
    }
}

/// The outcome an answer's status and error code stand for.
fn outcome(status: StatusCode, code: Option<&str>) -> Outcome {
    match status.as_u16() {
        200..=300 => Outcome::Ok,
        404 => Outcome::NotFound,
        408 => Outcome::Timeout,
        401 | 403 => Outcome::Denied,
        400..=499 => Outcome::BadRequest,
        503 if code == Some("quorum_unavailable") => Outcome::QuorumFailed,
        503 if code == Some("overloaded") => Outcome::Overloaded,
        503 | 507 => Outcome::Unavailable,
        _ => Outcome::Error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_to_outcomes() {
        let cases = [
            (200, None, Outcome::Ok),
            (204, None, Outcome::Ok),
            (300, None, Outcome::Ok),
            (404, Some("not_found"), Outcome::NotFound),
            (400, Some("invalid_context"), Outcome::BadRequest),
            (409, Some("too_many_siblings"), Outcome::BadRequest),
            (413, Some("value_too_large"), Outcome::BadRequest),
            (401, Some("unauthorized"), Outcome::Denied),
            (403, Some("forbidden"), Outcome::Denied),
            (408, Some("body_timeout"), Outcome::Timeout),
            (503, Some("quorum_unavailable"), Outcome::QuorumFailed),
            (503, Some("overloaded"), Outcome::Overloaded),
            (503, Some("storage_unavailable"), Outcome::Unavailable),
            (507, Some("insufficient_storage"), Outcome::Unavailable),
            (500, Some("internal"), Outcome::Error),
        ];
        for (status, code, expected) in cases {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(outcome(status, code), expected, "{status} {code:?}");
        }
    }
}
