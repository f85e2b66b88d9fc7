//! Overload answers: `503` with `Retry-After` and the JSON error body, for
//! the cap on client requests in flight (here) and on connections (the
//! listener's), and `408` for a request body that came too slowly.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::ApiError;

/// Seconds an overloaded node asks clients to wait before retrying.
pub const RETRY_AFTER_SECS: u64 = 1;

/// `503` with `Retry-After` and the JSON error `code`.
pub fn overloaded(code: &'static str, message: impl Into<String>) -> Response {
    let mut response =
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    response
}

/// `408 body_timeout`: the request body did not arrive within `timeout`.
pub fn body_timeout(timeout: Duration) -> Response {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "body_timeout",
        format!(
            "the request body did not arrive within {} ms",
            timeout.as_millis()
        ),
    )
    .into_response()
}

/// The slots of client requests in flight.
pub(super) struct InFlight {
    slots: Semaphore,
    max: usize,
}

impl InFlight {
    /// Room for `max` requests at once.
    pub(super) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: Semaphore::new(max),
            max,
        })
    }
}

/// Middleware running a request in a free slot, or answering `503
/// overloaded` at once when all are taken (rather than queueing).
pub(super) async fn limit_in_flight(
    State(in_flight): State<Arc<InFlight>>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(_slot) = in_flight.slots.try_acquire() else {
        return overloaded(
            "overloaded",
            format!(
                "{} requests are in flight, the most this node takes; retry later",
                in_flight.max
            ),
        );
    };
    next.run(request).await
}
