//! JSON error replies: `{"error": {"code": "...", "message": "..."}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::CONTEXT_HEADER;
use crate::coordinator::{CoordinatorError, RejectionKind};
use crate::storage::{StorageError, WriteFault};
use crate::version::{VersionVector, encode_context};

/// The code of an error reply, kept in the response's extensions for the
/// middleware that counts requests by outcome.
#[derive(Clone, Copy, Debug)]
pub struct ErrorCode(pub &'static str);

/// An error reply with a stable machine-readable code.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// `X-Dynamo-Context` of the reply, when it has one.
    context: Option<String>,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            context: None,
        }
    }

    /// The same error, answered with `context` in `X-Dynamo-Context`.
    pub fn with_context(mut self, context: &VersionVector) -> Self {
        self.context = Some(encode_context(context));
        self
    }

    /// 400 for a client mistake.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl From<CoordinatorError> for ApiError {
    fn from(error: CoordinatorError) -> Self {
        match error {
            CoordinatorError::Quorum(shortfall) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "quorum_unavailable",
                shortfall.to_string(),
            ),
            CoordinatorError::Unacknowledged(write) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "quorum_unavailable",
                write.to_string(),
            )
            .with_context(&write.context),
            CoordinatorError::NoCoordinator(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "quorum_unavailable",
                error.to_string(),
            ),
            CoordinatorError::Rejected(rejection) => {
                let status = match rejection.kind {
                    RejectionKind::InvalidContext => StatusCode::BAD_REQUEST,
                    RejectionKind::TooManySiblings | RejectionKind::ObjectTooLarge => {
                        StatusCode::CONFLICT
                    }
                };
                Self::new(status, rejection.kind.code(), rejection.message)
            }
            CoordinatorError::AttributesUnsupported(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "attributes_unavailable",
                error.to_string(),
            ),
            CoordinatorError::Storage(e) => e.into(),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::WritesUnavailable(fault) => {
                // Logged once by the store when writes became unavailable.
                let (status, code) = match fault {
                    WriteFault::NoSpace => {
                        (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage")
                    }
                    WriteFault::Io => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
                };
                Self::new(status, code, error.to_string())
            }
            error => {
                // The details (RocksDB's messages name files) go to the log only.
                tracing::error!(error = %error, "storage failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the node's storage failed; the details are in its log",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        response.extensions_mut().insert(ErrorCode(self.code));
        if let Some(context) = self.context.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response.headers_mut().insert(CONTEXT_HEADER, context);
        }
        response
    }
}
