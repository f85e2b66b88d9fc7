//! The span of each key-value request: a child of the span the client
//! names in a W3C `traceparent` header, else the root of a new trace.
//! The replica calls the request causes are its children (see
//! `coordinator/mod.rs`), on this node and, through the context they
//! carry, on the replicas.

use axum::extract::Request;
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use dynamo_telemetry::TraceParent;
use tracing::Instrument;
use xxhash_rust::xxh3::xxh3_64;

/// The W3C trace context header.
const TRACEPARENT: &str = "traceparent";

/// Serves `request` inside its span, and notes the status answered.
pub(super) async fn client_span(request: Request, next: Next) -> Response {
    let method = request.method();
    // The key as the path gives it (percent-encoded): its length and hash,
    // not the key itself, which may be private.
    let key = request.uri().path().strip_prefix("/v1/kv/").unwrap_or("");
    let span = tracing::info_span!(
        "client request",
        otel.name = span_name(method),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        http.response.status_code = tracing::field::Empty,
        // Signed: OpenTelemetry's integers are, and tracing-opentelemetry
        // records unsigned ones as text.
        dynamo.key.bytes = key.len() as i64,
        dynamo.key.hash = format!("{:016x}", xxh3_64(key.as_bytes())),
    );
    if let Some(parent) = traceparent(request.headers()) {
        parent.adopt(&span);
    }
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    response
}

/// The span's name: the method and the route.
fn span_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET /v1/kv/{key}",
        Method::PUT => "PUT /v1/kv/{key}",
        Method::DELETE => "DELETE /v1/kv/{key}",
        _ => "/v1/kv/{key}",
    }
}

/// The span a single valid `traceparent` header names.
fn traceparent(headers: &HeaderMap) -> Option<TraceParent> {
    let mut given = headers.get_all(TRACEPARENT).iter();
    let value = given.next()?;
    match given.next() {
        Some(_) => None,
        None => TraceParent::parse(value.to_str().ok()?),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn only_one_valid_traceparent_header_names_a_parent() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut headers = HeaderMap::new();
        assert_eq!(traceparent(&headers), None);
        headers.insert(TRACEPARENT, HeaderValue::from_static(valid));
        assert_eq!(traceparent(&headers).unwrap().to_string(), valid);
        headers.append(TRACEPARENT, HeaderValue::from_static(valid));
        assert_eq!(traceparent(&headers), None, "two headers");
        headers.insert(TRACEPARENT, HeaderValue::from_static("00-zz-01"));
        assert_eq!(traceparent(&headers), None);
    }
}
