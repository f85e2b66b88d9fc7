//! `POST /v1/batch/get`: many keys read in one request, with one request
//! per replica of each set of keys that share their owners.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::attributes::live_json;
use super::auth::refused;
use super::kv::valid_key;
use super::params::{QueryParams, known, no_conditions, quorum};
use super::{ApiError, AppState};
use crate::credentials::{Client, Operation};
use crate::version::{Object, now_ms};

/// Most keys one batch read names.
pub const MAX_BATCH_KEYS: usize = 100;

/// The body of a batch read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BatchGet {
    keys: Vec<String>,
}

/// `POST /v1/batch/get`: every key's live values and context, in the
/// order asked (no values for an absent key).
pub(super) async fn batch_get(
    State(state): State<Arc<AppState>>,
    client: Option<Extension<Arc<Client>>>,
    query: QueryParams,
    headers: HeaderMap,
    body: Result<Json<BatchGet>, JsonRejection>,
) -> Result<Response, ApiError> {
    let params = known(&query, &["r"])?;
    no_conditions(&headers)?;
    let r = quorum(&params, "r", state.r, state.n)?;
    let Json(BatchGet { keys }) =
        body.map_err(|r| ApiError::new(r.status(), "invalid_body", r.body_text()))?;
    let keys = batch_keys(keys)?;
    if let Some(Extension(client)) = client
        && !keys.iter().all(|key| client.may(Operation::Read, key))
    {
        return Ok(refused(&client, Operation::Read));
    }
    let objects = state.coordinator.read_many(&keys, r).await?;
    let now = now_ms();
    let items: Vec<Value> = keys
        .iter()
        .zip(&objects)
        .map(|(key, object)| {
            let values = object.live(now).count();
            if values > 0 {
                state.metrics.observe_read_versions(values);
            }
            item(key, object, now)
        })
        .collect();
    Ok(Json(json!({ "items": items })).into_response())
}

/// The keys of a batch: 1 to [`MAX_BATCH_KEYS`] valid keys, each once.
fn batch_keys(keys: Vec<String>) -> Result<Vec<Bytes>, ApiError> {
    if keys.is_empty() || keys.len() > MAX_BATCH_KEYS {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!(
                "a batch read names 1 to {MAX_BATCH_KEYS} keys; this one names {}",
                keys.len()
            ),
        ));
    }
    let mut seen = HashSet::with_capacity(keys.len());
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        if !seen.insert(key.clone()) {
            return Err(ApiError::bad_request(
                "invalid_body",
                format!("the batch names the key {key:?} more than once"),
            ));
        }
        out.push(valid_key(key)?);
    }
    Ok(out)
}

/// One key's answer: its live values (base64) and siblings with their
/// attributes, and its context when the key has any state (a tombstone's
/// too).
fn item(key: &Bytes, object: &Object, now: u64) -> Value {
    let mut answer = live_json(object, now);
    answer.insert("key".into(), json!(String::from_utf8_lossy(key)));
    Value::Object(answer)
}
