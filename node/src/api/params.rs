//! Query parameters and request headers of the client routes: each route
//! names what it takes, and anything else is refused with a message
//! saying what is supported (nothing is silently ignored).

use std::collections::HashMap;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::{HeaderMap, header};

use super::error::ApiError;

/// A route's query string, as axum extracts it (every pair, in order).
pub(super) type QueryParams = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// Conditional request headers: refused, since the store has no strong
/// conditional writes (docs/api.md, "What the API does not do").
const CONDITIONAL_HEADERS: [header::HeaderName; 5] = [
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
];

/// The parameters of `query`, refusing a malformed query string, a
/// parameter given twice and any parameter not in `allowed`.
pub(super) fn known(
    query: &QueryParams,
    allowed: &[&str],
) -> Result<HashMap<String, String>, ApiError> {
    let Query(pairs) = query
        .as_ref()
        .map_err(|r| ApiError::bad_request("invalid_parameter", r.body_text()))?;
    let mut unknown: Vec<&str> = pairs
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| !allowed.contains(name))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        unknown.dedup();
        let supported = match allowed {
            [] => "none".to_string(),
            _ => allowed.join(", "),
        };
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("unknown query parameter(s) {unknown:?}; this route takes: {supported}"),
        ));
    }
    let mut params = HashMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        if params.insert(name.clone(), value.clone()).is_some() {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!("the query parameter {name:?} is given more than once"),
            ));
        }
    }
    Ok(params)
}

/// A quorum parameter (`r`, `w`): `default` when absent, else an integer
/// in `1..=n`.
pub(super) fn quorum(
    params: &HashMap<String, String>,
    name: &str,
    default: usize,
    n: usize,
) -> Result<usize, ApiError> {
    count(params, name, default, n, &format!("n={n}"))
}

/// A count parameter: `default` when absent, else an integer in
/// `1..=max` (`max_text` says what the bound is, for the message).
pub(super) fn count(
    params: &HashMap<String, String>,
    name: &str,
    default: usize,
    max: usize,
    max_text: &str,
) -> Result<usize, ApiError> {
    let Some(raw) = params.get(name) else {
        return Ok(default);
    };
    match raw.parse::<usize>() {
        Ok(v) if (1..=max).contains(&v) => Ok(v),
        _ => Err(ApiError::bad_request(
            "invalid_parameter",
            format!("{name}={raw:?} must be an integer from 1 to {max_text}"),
        )),
    }
}

/// Whether `?{name}=` asks for what it names (`true` or `false`; absent is
/// false; anything else is a bad request).
pub(super) fn flag(params: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match params.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::bad_request(
            "invalid_parameter",
            format!("{name}={other:?} must be true or false"),
        )),
    }
}

/// Refuses a conditional request (`If-Match`, `If-None-Match`, ...): the
/// store cannot honour it, and ignoring it would make a sibling where the
/// client asked for a refusal.
pub(super) fn no_conditions(headers: &HeaderMap) -> Result<(), ApiError> {
    match CONDITIONAL_HEADERS
        .iter()
        .find(|h| headers.contains_key(*h))
    {
        None => Ok(()),
        Some(name) => Err(ApiError::bad_request(
            "unsupported_header",
            format!(
                "{name} is not supported: writes are never conditional (concurrent writes \
                 become siblings; send X-Dynamo-Context from a read to supersede what it saw)"
            ),
        )),
    }
}

/// The one value of header `name`, if given; refused with `400 code` when
/// given twice or not visible ASCII.
pub(super) fn single_header(
    headers: &HeaderMap,
    code: &'static str,
    name: &str,
) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::bad_request(
            code,
            format!("the header {name} is given more than once"),
        ));
    }
    let text = value.to_str().map_err(|_| {
        ApiError::bad_request(code, format!("the header {name} must be visible ASCII"))
    })?;
    Ok(Some(text.to_string()))
}
