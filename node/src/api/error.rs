//! JSON error replies: `{"error": {"code": "...", "message": "..."}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::coordinator::CoordinatorError;
use crate::storage::StorageError;

/// An error reply with a stable machine-readable code.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
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
            CoordinatorError::NoCoordinator(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "quorum_unavailable",
                error.to_string(),
            ),
            CoordinatorError::Storage(
                e @ (StorageError::ImpossibleContext { .. } | StorageError::CounterExhausted),
            ) => Self::bad_request("invalid_context", e.to_string()),
            CoordinatorError::Storage(e) => {
                tracing::error!(error = %e, "storage failure");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}
