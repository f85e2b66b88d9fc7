//! Internal routes: replica reads and writes, forwarded coordination, ping.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use super::{ApiError, AppState};
use crate::coordinator::CoordinatorError;
use crate::rpc::{self, CoordinateWrite, CoordinateWriteReply, ReplicaRead, ReplicaWrite};

/// Replica messages carry whole objects (all siblings), so allow more than
/// one value's worth.
const INTERNAL_BODY_LIMIT: usize = 256 << 20;

pub(super) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(rpc::REPLICA_READ, post(replica_read))
        .route(rpc::REPLICA_WRITE, post(replica_write))
        .route(rpc::COORDINATE_WRITE, post(coordinate_write))
        .route(
            rpc::PING,
            get(|State(state): State<Arc<AppState>>| async move {
                state.coordinator.membership().me().to_string()
            }),
        )
        .layer(DefaultBodyLimit::max(INTERNAL_BODY_LIMIT))
        .with_state(state)
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    postcard::from_bytes(body).map_err(|e| ApiError::bad_request("invalid_message", e.to_string()))
}

async fn replica_read(State(state): State<Arc<AppState>>, body: Bytes) -> Result<Bytes, ApiError> {
    let request: ReplicaRead = decode(&body)?;
    let object = state
        .storage
        .get(&request.key)
        .map_err(CoordinatorError::from)?;
    Ok(rpc::encode(&object))
}

async fn replica_write(State(state): State<Arc<AppState>>, body: Bytes) -> Result<Bytes, ApiError> {
    let request: ReplicaWrite = decode(&body)?;
    state
        .storage
        .merge(&request.key, &request.object)
        .map_err(CoordinatorError::from)?;
    Ok(rpc::encode(&()))
}

async fn coordinate_write(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Bytes, ApiError> {
    let request: CoordinateWrite = decode(&body)?;
    let membership = state.coordinator.membership();
    if !membership
        .preference_list(&request.key)
        .iter()
        .any(|p| p.member.id == membership.me())
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_a_replica",
            format!("{} does not hold this key in its ring", membership.me()),
        ));
    }
    if !(1..=state.n).contains(&request.w) {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("w={} outside 1..={}", request.w, state.n),
        ));
    }
    let reply: CoordinateWriteReply = match state
        .coordinator
        .write(request.key, request.context, request.value, request.w)
        .await
    {
        Ok(context) => Ok(context),
        Err(CoordinatorError::Quorum(shortfall)) => Err(shortfall),
        Err(other) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "coordinator_failed",
                other.to_string(),
            ));
        }
    };
    Ok(rpc::encode(&reply))
}
