//! Backup routes (admin token): relocation holds, checkpoints, the record
//! stream of a checkpoint, and imports. Documented in `docs/backup.md`.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use serde_json::json;

use super::params::{QueryParams, count, known};
use super::{ApiError, AppState};
use crate::backup::BackupError;
use crate::coordinator::Imported;
use crate::storage::format;

/// How long a hold lasts when the request names no `seconds`.
const DEFAULT_HOLD_SECS: usize = 300;
/// The longest hold a request may ask for.
const MAX_HOLD_SECS: usize = 3600;
/// Largest import body, in bytes.
pub const MAX_IMPORT_BYTES: usize = 32 << 20;

impl From<BackupError> for ApiError {
    fn from(error: BackupError) -> Self {
        match &error {
            BackupError::InvalidId(_) => {
                ApiError::bad_request("invalid_backup_id", error.to_string())
            }
            BackupError::NoSuchCheckpoint(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "no_such_checkpoint",
                error.to_string(),
            ),
            BackupError::Storage { .. } | BackupError::Io { .. } => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "backup_failed",
                error.to_string(),
            ),
        }
    }
}

/// `GET /v1/admin/backups`: this node's checkpoints and the holds in force.
pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    query: QueryParams,
) -> Result<Response, ApiError> {
    known(&query, &[])?;
    let checkpoints = state.backups.list()?;
    let holds: Vec<_> = state
        .coordinator
        .storage()
        .relocations()
        .in_force()
        .into_iter()
        .map(|(id, left)| json!({"id": id, "remaining_ms": left.as_millis() as u64}))
        .collect();
    Ok(Json(json!({"checkpoints": checkpoints, "holds": holds})).into_response())
}

/// `PUT /v1/admin/backups/{id}`: makes the backup's checkpoint of this
/// node (201), or describes the one made before (200).
pub(super) async fn create(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    query: QueryParams,
) -> Result<Response, ApiError> {
    known(&query, &[])?;
    let (info, created) = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || state.backups.create(&id))
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "backup_failed",
                    format!("the checkpoint work stopped: {e}"),
                )
            })??
    };
    let membership = state.coordinator.membership();
    let view = membership.view();
    let storage = state.coordinator.storage();
    let format = format::recorded(storage);
    let body = json!({
        "id": info.id,
        "created_at_ms": info.created_at_ms,
        "node": membership.me(),
        "epoch": view.epoch(),
        "partitions": view.ring().partitions,
        "format": format,
        "estimated_records": storage.estimated_records().unwrap_or(0),
    });
    let status = match created {
        true => StatusCode::CREATED,
        false => StatusCode::OK,
    };
    Ok((status, Json(body)).into_response())
}

/// `DELETE /v1/admin/backups/{id}`: removes the backup's checkpoint.
pub(super) async fn remove(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    query: QueryParams,
) -> Result<Response, ApiError> {
    known(&query, &[])?;
    match state.backups.remove(&id)? {
        true => Ok(StatusCode::NO_CONTENT.into_response()),
        false => Err(BackupError::NoSuchCheckpoint(id).into()),
    }
}

/// `PUT /v1/admin/backups/{id}/hold?seconds=`: holds relocations (see
/// `storage::RelocationHold`); answers once deletions under way ended.
pub(super) async fn hold(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let params = known(&query, &["seconds"])?;
    check_id(&id)?;
    let seconds = count(&params, "seconds", DEFAULT_HOLD_SECS, MAX_HOLD_SECS, "3600")?;
    let hold = Duration::from_secs(seconds as u64);
    state
        .coordinator
        .storage()
        .relocations()
        .hold(&id, hold)
        .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /v1/admin/backups/{id}/hold`: ends the hold.
pub(super) async fn release(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    query: QueryParams,
) -> Result<Response, ApiError> {
    known(&query, &[])?;
    check_id(&id)?;
    state.coordinator.storage().relocations().release(&id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1/admin/backups/{id}/records?after=`: the checkpoint's records
/// after the key `after` (URL-safe base64), as a record stream.
pub(super) async fn records(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let params = known(&query, &["after"])?;
    let after = match params.get("after") {
        Some(after) => Some(
            URL_SAFE_NO_PAD
                .decode(after)
                .map(Bytes::from)
                .map_err(|e| {
                    ApiError::bad_request(
                        "invalid_parameter",
                        format!("after: not URL-safe base64 without padding: {e}"),
                    )
                })?,
        ),
        None => None,
    };
    let rx = state.backups.export(&id, after)?;
    let stream = body_stream(rx);
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// The pieces an export sends, as a body stream (an error cuts the body:
/// the stream then has no end frame, which the reader notices).
fn body_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, BackupError>>,
) -> impl futures::Stream<Item = Result<Bytes, BackupError>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// `POST /v1/admin/import`: merges a record stream (without an end
/// frame) into the current owners of its keys.
pub(super) async fn import(
    State(state): State<Arc<AppState>>,
    query: QueryParams,
    body: Body,
) -> Result<Response, ApiError> {
    known(&query, &[])?;
    let bytes = axum::body::to_bytes(body, MAX_IMPORT_BYTES)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "import_too_large",
                format!("an import body holds at most {MAX_IMPORT_BYTES} bytes: {e}"),
            )
        })?;
    let records = dynamo_backup::records::decode_all(&bytes)
        .map_err(|e| ApiError::bad_request("invalid_records", e.to_string()))?;
    let mut items = Vec::with_capacity(records.len());
    for record in records {
        let object = crate::storage::decode(&record.key, &record.value)
            .map_err(|e| ApiError::bad_request("invalid_records", e.to_string()))?;
        items.push(Imported {
            size: record.value.len(),
            key: record.key,
            object,
        });
    }
    let count = items.len();
    state.coordinator.import(items).await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "import_incomplete",
            e.to_string(),
        )
    })?;
    Ok(Json(json!({"records": count})).into_response())
}

fn check_id(id: &str) -> Result<(), ApiError> {
    crate::backup::check_id(id).map_err(ApiError::from)
}
