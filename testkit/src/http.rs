//! HTTP clients for tests, and the node's client API as tests call it.

use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;

/// The header carrying a read's context (and a write's, back).
pub const CONTEXT: &str = "x-dynamo-context";

/// A client builder with a 10 s timeout that trusts only the PEM CA
/// `ca_pem` when given (for HTTPS), for callers that add settings.
pub fn builder(ca_pem: Option<&str>) -> reqwest::ClientBuilder {
    // reqwest is built with rustls but no crypto provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
    match ca_pem {
        Some(pem) => builder.use_preconfigured_tls(crate::pki::client_config(pem)),
        None => builder,
    }
}

/// A plain HTTP client with a 10 s timeout.
pub fn http_client() -> reqwest::Client {
    builder(None).build().expect("HTTP client")
}

/// An HTTPS client with a 10 s timeout trusting only the PEM CA `ca_pem`.
pub fn https_client(ca_pem: &str) -> reqwest::Client {
    builder(Some(ca_pem)).build().expect("HTTPS client")
}

/// GETs `url` and parses the body as JSON.
pub async fn get_json(http: &reqwest::Client, url: &str) -> serde_json::Value {
    let response = http
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    response
        .json()
        .await
        .unwrap_or_else(|e| panic!("JSON from {url}: {e}"))
}

/// GETs the key at `kv_url` (`<base>/v1/kv/<key>[?query]`) as JSON:
/// (status, context, values); values are empty unless the status is 200
/// or 300.
pub async fn read(
    http: &reqwest::Client,
    kv_url: &str,
) -> (StatusCode, Option<String>, Vec<String>) {
    let response = http
        .get(kv_url)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {kv_url}: {e}"));
    let status = response.status();
    let context = context(&response);
    let values = if status == StatusCode::OK || status == StatusCode::MULTIPLE_CHOICES {
        decode_values(&response.json().await.expect("JSON read answer"))
    } else {
        Vec::new()
    };
    (status, context, values)
}

/// The context header of `response`, if any.
pub fn context(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(CONTEXT)
        .map(|v| v.to_str().expect("ASCII context").to_string())
}

/// The values of a JSON read answer (`{"values": ["<base64>", ...]}`).
pub fn decode_values(body: &serde_json::Value) -> Vec<String> {
    body["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().expect("base64 string"))
                .expect("base64");
            String::from_utf8(bytes).expect("UTF-8 value")
        })
        .collect()
}
