//! A value's attributes on the wire: the `Content-Type`, the user metadata
//! headers (`X-Dynamo-Meta-{name}`) and the time to live (`?ttl=` or
//! `X-Dynamo-TTL`, in seconds) a write gives, and how reads return them
//! (headers for a single value, fields per sibling in JSON).

use std::collections::HashMap;

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::ApiError;
use super::params::single_header;
use crate::version::{Attributes, Object, Sibling, encode_context};

/// Prefix of the user metadata headers.
pub const META_PREFIX: &str = "x-dynamo-meta-";
/// Header giving a write's time to live, in seconds.
pub const TTL_HEADER: &str = "x-dynamo-ttl";
/// Header of a read answer: when the value expires, in milliseconds since
/// the Unix epoch.
pub const EXPIRES_HEADER: &str = "x-dynamo-expires-at";
/// Longest TTL: ten years, in seconds.
pub const MAX_TTL_SECONDS: u64 = 10 * 365 * 24 * 3600;
/// Longest `Content-Type` kept, in bytes.
pub const MAX_CONTENT_TYPE_BYTES: usize = 256;
/// Most metadata entries on one value.
pub const MAX_META_ENTRIES: usize = 32;
/// Most bytes of metadata (names and values) on one value.
pub const MAX_META_BYTES: usize = 4096;

/// The attributes a write gives (empty when it gives none), its expiry
/// counted from `now` (ms since the Unix epoch).
pub(super) fn of_write(
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    now: u64,
) -> Result<Attributes, ApiError> {
    let ttl = ttl(headers, params)?;
    Ok(Attributes {
        content_type: content_type(headers)?,
        meta: meta(headers)?,
        expires_at: ttl.map(|seconds| now.saturating_add(seconds.saturating_mul(1000))),
    })
}

fn content_type(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = single_header(headers, "invalid_header", header::CONTENT_TYPE.as_str())?
    else {
        return Ok(None);
    };
    if value.is_empty() || value.len() > MAX_CONTENT_TYPE_BYTES {
        return Err(ApiError::bad_request(
            "invalid_header",
            format!(
                "Content-Type must be 1 to {MAX_CONTENT_TYPE_BYTES} bytes; this one is {}",
                value.len()
            ),
        ));
    }
    Ok(Some(value))
}

/// The metadata headers, names without the prefix, sorted.
fn meta(headers: &HeaderMap) -> Result<Vec<(String, String)>, ApiError> {
    let names: Vec<&HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(META_PREFIX))
        .collect();
    let mut meta = Vec::with_capacity(names.len());
    for name in names {
        let short = &name.as_str()[META_PREFIX.len()..];
        if short.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_header",
                format!("a metadata header needs a name after {META_PREFIX:?}"),
            ));
        }
        let value = single_header(headers, "invalid_header", name.as_str())?.unwrap_or_default();
        meta.push((short.to_string(), value));
    }
    meta.sort();
    let bytes: usize = meta.iter().map(|(n, v)| n.len() + v.len()).sum();
    if meta.len() > MAX_META_ENTRIES || bytes > MAX_META_BYTES {
        return Err(ApiError::bad_request(
            "invalid_header",
            format!(
                "a value keeps at most {MAX_META_ENTRIES} metadata headers of {MAX_META_BYTES} \
                 bytes in all (names and values); this write gives {} of {bytes} bytes",
                meta.len()
            ),
        ));
    }
    Ok(meta)
}

/// The TTL in seconds, from `?ttl=` or the header (not both).
fn ttl(headers: &HeaderMap, params: &HashMap<String, String>) -> Result<Option<u64>, ApiError> {
    let given = match (
        params.get("ttl"),
        single_header(headers, "invalid_header", TTL_HEADER)?,
    ) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_ttl",
                "give the TTL as ?ttl= or as X-Dynamo-TTL, not both",
            ));
        }
        (Some(text), None) => text.clone(),
        (None, Some(text)) => text,
        (None, None) => return Ok(None),
    };
    match given.trim().parse::<u64>() {
        Ok(seconds) if (1..=MAX_TTL_SECONDS).contains(&seconds) => Ok(Some(seconds)),
        _ => Err(ApiError::bad_request(
            "invalid_ttl",
            format!(
                "the TTL is a whole number of seconds from 1 to {MAX_TTL_SECONDS} (ten years); \
                 got {given:?}"
            ),
        )),
    }
}

/// The headers that describe a single value read: its content type
/// (`application/octet-stream` when it was written without one), its
/// metadata and its expiry.
pub(super) fn insert_headers(headers: &mut HeaderMap, attributes: Option<&Attributes>) {
    let content_type = attributes
        .and_then(|a| a.content_type.as_deref())
        .and_then(|t| HeaderValue::from_str(t).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    let Some(attributes) = attributes else {
        return;
    };
    for (name, value) in &attributes.meta {
        let name = HeaderName::try_from(format!("{META_PREFIX}{name}"));
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_str(value)) {
            headers.insert(name, value);
        }
    }
    if let Some(at) = attributes.expires_at {
        headers.insert(EXPIRES_HEADER, HeaderValue::from(at));
    }
}

/// A key's read answer in JSON: its context, its live values (base64)
/// and, per live sibling, the value with its attributes.
pub(super) fn live_json(object: &Object, now: u64) -> Map<String, Value> {
    let live: Vec<&Sibling> = object.live(now).collect();
    let values: Vec<String> = live
        .iter()
        .filter_map(|s| s.content.bytes())
        .map(|v| STANDARD.encode(v))
        .collect();
    let siblings: Vec<Value> = live.iter().map(|s| sibling_json(s)).collect();
    let context = (!object.is_empty()).then(|| encode_context(&object.context()));
    let mut answer = Map::new();
    answer.insert("context".into(), json!(context));
    answer.insert("values".into(), json!(values));
    answer.insert("siblings".into(), Value::Array(siblings));
    answer
}

fn sibling_json(sibling: &Sibling) -> Value {
    let attributes = sibling.content.attributes();
    let meta: Map<String, Value> = attributes
        .map(|a| a.meta.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|(name, value)| (name.clone(), json!(value)))
        .collect();
    json!({
        "value": sibling.content.bytes().map(|v| STANDARD.encode(v)),
        "content_type": attributes.and_then(|a| a.content_type.as_deref()),
        "meta": meta,
        "expires_at": attributes.and_then(|a| a.expires_at),
    })
}
