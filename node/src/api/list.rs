//! `GET /v1/kv?prefix=&limit=&cursor=`: a page of the key listing (see
//! [`crate::coordinator::KeyPage`]). The cursor is the position the page
//! stopped at, URL-safe base64 behind a format byte; clients treat it as
//! opaque.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use super::auth::refused;
use super::kv::MAX_KEY_BYTES;
use super::params::{QueryParams, count, known, no_conditions, quorum};
use super::{ApiError, AppState};
use crate::credentials::{Client, Operation};

/// Keys per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 100;
/// Most keys per page.
pub const MAX_LIMIT: usize = 1000;
/// The first byte of every cursor (its format).
const CURSOR_FORMAT: u8 = 1;

/// `GET /v1/kv`: keys with a live value, in ring order, and the cursor of
/// the next page (`null` at the end).
pub(super) async fn list_keys(
    State(state): State<Arc<AppState>>,
    client: Option<Extension<Arc<Client>>>,
    query: QueryParams,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = known(&query, &["prefix", "limit", "cursor", "r"])?;
    no_conditions(&headers)?;
    let r = quorum(&params, "r", 1, state.n)?;
    let limit = count(
        &params,
        "limit",
        DEFAULT_LIMIT,
        MAX_LIMIT,
        &MAX_LIMIT.to_string(),
    )?;
    let position = match params.get("cursor") {
        Some(cursor) => decode_cursor(cursor)?,
        None => Vec::new(),
    };
    let asked = params.get("prefix").map_or("", String::as_str);
    let prefix = match client {
        Some(Extension(client)) => match visible_prefix(&client, asked) {
            Some(prefix) => prefix,
            None => return Ok(refused(&client, Operation::Read)),
        },
        None => asked.to_string(),
    };
    let page = state
        .coordinator
        .list_keys(&position, prefix.as_bytes(), limit, r)
        .await?;
    let keys: Vec<_> = page
        .keys
        .iter()
        .map(|k| String::from_utf8_lossy(k))
        .collect();
    let cursor = page.next.as_deref().map(encode_cursor);
    Ok(Json(json!({ "keys": keys, "cursor": cursor })).into_response())
}

/// The prefix a client may list under when it asks for `asked`: its own
/// prefix when that is narrower, `asked` when it lies within it, `None`
/// when they do not overlap.
fn visible_prefix(client: &Client, asked: &str) -> Option<String> {
    if client.prefix.starts_with(asked) {
        Some(client.prefix.clone())
    } else if asked.starts_with(&client.prefix) {
        Some(asked.to_string())
    } else {
        None
    }
}

fn encode_cursor(position: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(1 + position.len());
    bytes.push(CURSOR_FORMAT);
    bytes.extend_from_slice(position);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The position a cursor holds; a bad request unless it is one this API
/// hands out (a format byte, an 8-byte hash, at most a key).
fn decode_cursor(cursor: &str) -> Result<Vec<u8>, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_parameter",
            "cursor is not one a listing handed out: pass the last page's cursor unchanged",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    match bytes.split_first() {
        Some((&CURSOR_FORMAT, position)) if (8..=8 + MAX_KEY_BYTES).contains(&position.len()) => {
            Ok(position.to_vec())
        }
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_strangers_are_refused() {
        let position = [1, 2, 3, 4, 5, 6, 7, 8, b'k'];
        assert_eq!(decode_cursor(&encode_cursor(&position)).unwrap(), position);
        for bad in ["", "!!", "AQ", &URL_SAFE_NO_PAD.encode([2u8; 9])] {
            assert!(decode_cursor(bad).is_err(), "{bad:?}");
        }
        let long = vec![0u8; 8 + MAX_KEY_BYTES + 1];
        assert!(decode_cursor(&encode_cursor(&long)).is_err());
    }
}
