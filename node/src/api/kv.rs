//! The key-value routes: `GET`, `PUT` and `DELETE` of `/v1/kv/{key}`.

use std::sync::Arc;

use super::attributes;
use super::params::{QueryParams, known, no_conditions, quorum, single_header};
use super::{ApiError, AppState, CONTEXT_HEADER};
use crate::version::{
    Content, Object, Sibling, VersionVector, decode_context, encode_context, now_ms,
};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Longest accepted key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// `PUT /v1/kv/{key}`: writes a value, superseding what the context covers.
pub(super) async fn put_kv(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    query: QueryParams,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = parse_key(path)?;
    let params = known(&query, &["w", "ttl"])?;
    no_conditions(&headers)?;
    let w = quorum(&params, "w", state.w, state.n)?;
    let context = context_header(&headers)?.unwrap_or_default();
    let attributes = attributes::of_write(&headers, &params, now_ms())?;
    let value = match body {
        Ok(bytes) => bytes,
        Err(BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_))) => {
            return Err(too_large(state.max_value_bytes));
        }
        Err(rejection) => {
            return Err(ApiError::bad_request("invalid_body", rejection.body_text()));
        }
    };
    let context = state
        .coordinator
        .write(key, context, Content::value(value, attributes), w)
        .await?;
    Ok(no_content(&context))
}

/// `DELETE /v1/kv/{key}`: writes a tombstone, superseding what the context
/// (or, without one, a read) covers.
pub(super) async fn delete_kv(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    query: QueryParams,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = parse_key(path)?;
    let params = known(&query, &["w", "r"])?;
    no_conditions(&headers)?;
    let w = quorum(&params, "w", state.w, state.n)?;
    let r = quorum(&params, "r", state.r, state.n)?;
    let context = match context_header(&headers)? {
        Some(context) => context,
        None => {
            let current = state.coordinator.read(key.clone(), r).await?;
            if current.live_values().next().is_none() {
                return Ok(not_found(&current));
            }
            current.context()
        }
    };
    let context = state
        .coordinator
        .write(key, context, Content::Deleted, w)
        .await?;
    Ok(no_content(&context))
}

/// `GET /v1/kv/{key}`: the value, or every sibling with their context.
pub(super) async fn get_kv(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    query: QueryParams,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = parse_key(path)?;
    let params = known(&query, &["r"])?;
    no_conditions(&headers)?;
    let r = quorum(&params, "r", state.r, state.n)?;
    let object = state.coordinator.read(key, r).await?;
    let context = encode_context(&object.context());
    let now = now_ms();
    let live: Vec<&Sibling> = object.live(now).collect();
    state.metrics.observe_read_versions(live.len());
    let wants_json = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/json"));
    let mut response = match live.as_slice() {
        [] => return Ok(not_found(&object)),
        [only] if !wants_json => {
            let value = only.content.bytes().cloned().unwrap_or_default();
            let mut response = value.into_response();
            attributes::insert_headers(response.headers_mut(), only.content.attributes());
            response
        }
        several => {
            let status = match several.len() {
                1 => StatusCode::OK,
                _ => StatusCode::MULTIPLE_CHOICES,
            };
            (status, axum::Json(attributes::live_json(&object, now))).into_response()
        }
    };
    response
        .headers_mut()
        .insert(CONTEXT_HEADER, header_value(&context));
    Ok(response)
}

/// `404` for a key with no live version, with the context of its
/// tombstone when it has one (a write with it supersedes the delete).
fn not_found(object: &Object) -> Response {
    let mut response = ApiError::not_found("key not found").into_response();
    if !object.is_empty() {
        response.headers_mut().insert(
            CONTEXT_HEADER,
            header_value(&encode_context(&object.context())),
        );
    }
    response
}

/// Any method on `/v1/kv` or `/v1/kv/`: a key is required.
pub(super) async fn empty_key() -> ApiError {
    ApiError::bad_request("invalid_key", "the key is empty; use /v1/kv/{key}")
}

fn parse_key(path: Result<Path<String>, PathRejection>) -> Result<Bytes, ApiError> {
    let Path(key) = path.map_err(|r| ApiError::bad_request("invalid_key", r.body_text()))?;
    valid_key(key)
}

/// `key` as stored, if it is 1 to [`MAX_KEY_BYTES`] bytes long.
pub(super) fn valid_key(key: String) -> Result<Bytes, ApiError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(ApiError::bad_request(
            "invalid_key",
            format!(
                "keys must be 1 to {MAX_KEY_BYTES} bytes; this one is {}",
                key.len()
            ),
        ));
    }
    Ok(Bytes::from(key))
}

fn context_header(headers: &HeaderMap) -> Result<Option<VersionVector>, ApiError> {
    let Some(text) = single_header(headers, "invalid_context", CONTEXT_HEADER)? else {
        return Ok(None);
    };
    decode_context(&text)
        .map(Some)
        .map_err(|e| ApiError::bad_request("invalid_context", e.to_string()))
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "value_too_large",
        format!("values are limited to {limit} bytes"),
    )
}

fn no_content(context: &VersionVector) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(CONTEXT_HEADER, header_value(&encode_context(context)));
    response
}

fn header_value(context: &str) -> HeaderValue {
    HeaderValue::from_str(context).expect("base64 is a valid header value")
}
