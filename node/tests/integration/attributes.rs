//! What a version carries besides its bytes: the content type and user
//! metadata a write gives, returned with the value (per sibling in JSON),
//! and a time to live after which the value reads as absent everywhere,
//! becomes a tombstone and is purged, never to come back.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde_json::{Value, json};

use crate::support::{ClusterOptions, TestCluster, fast};

/// Expired values turn into tombstones, purged a second later.
const QUICK_SWEEPS: [&str; 4] = [
    "--tombstone-min-age-secs",
    "1",
    "--tombstone-scan-interval-ms",
    "300",
];

async fn started() -> TestCluster {
    let options = ClusterOptions {
        extra: fast(&QUICK_SWEEPS),
        ..ClusterOptions::default()
    };
    TestCluster::start_with(3, options).await
}

/// PUT `value` with `headers` and `query`; the status and the answer's body.
async fn put(
    c: &TestCluster,
    i: usize,
    key: &str,
    query: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut request = c
        .http
        .put(format!("{}{query}", c.kv(i, key)))
        .body(format!("value of {key}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("PUT");
    (response.status(), response.text().await.unwrap_or_default())
}

/// A plain GET: status, headers, body.
async fn get(c: &TestCluster, i: usize, key: &str) -> (StatusCode, HeaderMap, String) {
    let response = c.http.get(c.kv(i, key)).send().await.expect("GET");
    let headers = response.headers().clone();
    (response.status(), headers, response.text().await.unwrap())
}

/// A GET asking for JSON: status and body.
async fn get_json(c: &TestCluster, i: usize, key: &str) -> (StatusCode, Value) {
    let response = c
        .http
        .get(c.kv(i, key))
        .header("accept", "application/json")
        .send()
        .await
        .expect("GET");
    let status = response.status();
    let body = match status {
        StatusCode::OK | StatusCode::MULTIPLE_CHOICES => response.json().await.unwrap(),
        _ => Value::Null,
    };
    (status, body)
}

fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(since.as_millis()).unwrap()
}

/// The content type and metadata a write gives come back with a single
/// value as headers and, per sibling, in the JSON answer and a batch
/// read; a value written without them reads as octet-stream with none.
#[tokio::test(flavor = "multi_thread")]
async fn content_type_and_metadata_are_kept_per_version() {
    let c = started().await;
    let described = [
        ("content-type", "application/json"),
        ("x-dynamo-meta-owner", "team ops"),
        ("X-Dynamo-Meta-Color", "blue"),
    ];
    let (status, body) = put(&c, 0, "doc", "", &described).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for i in 0..3 {
        let (status, headers, body) = get(&c, i, "doc").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "value of doc");
        assert_eq!(headers[CONTENT_TYPE], "application/json");
        assert_eq!(headers["x-dynamo-meta-owner"], "team ops");
        assert_eq!(headers["x-dynamo-meta-color"], "blue");
        assert!(headers.get("x-dynamo-expires-at").is_none());
    }

    assert_eq!(put(&c, 1, "plain", "", &[]).await.0, StatusCode::NO_CONTENT);
    let (_, headers, _) = get(&c, 2, "plain").await;
    assert_eq!(headers[CONTENT_TYPE], "application/octet-stream");
    assert!(
        !headers
            .keys()
            .any(|h| h.as_str().starts_with("x-dynamo-meta-"))
    );

    // A blind write of another type makes a sibling: each keeps its own.
    let other = [
        ("content-type", "text/plain"),
        ("x-dynamo-meta-owner", "dev"),
    ];
    assert_eq!(
        put(&c, 2, "doc", "", &other).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, body) = get_json(&c, 0, "doc").await;
    assert_eq!(status, StatusCode::MULTIPLE_CHOICES, "{body}");
    let mut siblings: Vec<(Value, Value)> = body["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["content_type"].clone(), s["meta"].clone()))
        .collect();
    siblings.sort_by_key(|(t, _)| t.to_string());
    assert_eq!(
        siblings,
        vec![
            (
                json!("application/json"),
                json!({"color": "blue", "owner": "team ops"})
            ),
            (json!("text/plain"), json!({"owner": "dev"})),
        ]
    );
    assert_eq!(body["values"].as_array().unwrap().len(), 2);

    let batch = c
        .http
        .post(format!("{}/v1/batch/get", c.url(1)))
        .json(&json!({"keys": ["plain", "doc"]}))
        .send()
        .await
        .unwrap();
    let batch: Value = batch.json().await.unwrap();
    let plain = &batch["items"][0]["siblings"][0];
    assert_eq!(plain["content_type"], Value::Null);
    assert_eq!(plain["meta"], json!({}));
    assert_eq!(batch["items"][1]["siblings"].as_array().unwrap().len(), 2);
}

/// Request headers: (name, value) pairs.
type Headers<'a> = Vec<(&'a str, &'a str)>;

/// Attributes a write cannot have are refused with a message, never
/// ignored or stored cut.
#[tokio::test(flavor = "multi_thread")]
async fn invalid_attributes_are_refused() {
    let c = TestCluster::start(1, &[]).await;
    let many: Vec<(String, String)> = (0..33)
        .map(|i| (format!("x-dynamo-meta-m{i}"), "v".to_string()))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let long_type = "t".repeat(300);
    let cases: Vec<(&str, Headers, &str)> = vec![
        ("?ttl=0", vec![], "invalid_ttl"),
        ("?ttl=ten", vec![], "invalid_ttl"),
        ("?ttl=-5", vec![], "invalid_ttl"),
        ("?ttl=400000000", vec![], "invalid_ttl"),
        ("?ttl=5", vec![("x-dynamo-ttl", "5")], "invalid_ttl"),
        ("", vec![("x-dynamo-ttl", "soon")], "invalid_ttl"),
        ("", many, "invalid_header"),
        (
            "",
            vec![("content-type", long_type.as_str())],
            "invalid_header",
        ),
    ];
    for (query, headers, code) in cases {
        let (status, body) = put(&c, 0, "k", query, &headers).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{query} {headers:?}: {body}"
        );
        assert!(body.contains(code), "{query}: {body}");
    }
    let twice = c
        .http
        .put(c.kv(0, "k"))
        .header("x-dynamo-meta-a", "1")
        .header("x-dynamo-meta-a", "2")
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), StatusCode::BAD_REQUEST);
    assert!(twice.text().await.unwrap().contains("more than once"));
    assert_eq!(
        get(&c, 0, "k").await.0,
        StatusCode::NOT_FOUND,
        "nothing stored"
    );
}

/// A value with a TTL reads (with its expiry) until then and as absent
/// from then on through every node, in reads, listings and batches; a
/// sibling without a TTL stays; the expired version becomes a tombstone
/// on every replica and is purged. A replica paused across the expiry
/// (holding the value) never brings it back when it resumes.
#[tokio::test(flavor = "multi_thread")]
async fn a_value_expires_everywhere_and_never_comes_back() {
    let c = started().await;
    let before = now_ms();
    let (status, body) = put(&c, 0, "session", "?ttl=3", &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _) = put(&c, 1, "cart", "", &[("x-dynamo-ttl", "3")]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(put(&c, 2, "cart", "", &[]).await.0, StatusCode::NO_CONTENT);

    let (status, headers, _) = get(&c, 1, "session").await;
    assert_eq!(status, StatusCode::OK);
    let expires: u64 = headers["x-dynamo-expires-at"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (before + 3000..=now_ms() + 3000).contains(&expires),
        "{expires}"
    );
    let (status, body) = get_json(&c, 2, "cart").await;
    assert_eq!(status, StatusCode::MULTIPLE_CHOICES);
    let expiries: Vec<&Value> = body["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["expires_at"])
        .collect();
    assert_eq!(expiries.iter().filter(|e| e.is_u64()).count(), 1, "{body}");
    // The cart's expiring sibling was written after the session: both are
    // past their expiry once the later one is.
    let last_expiry = expiries
        .iter()
        .filter_map(|e| e.as_u64())
        .fold(expires, u64::max);
    for i in 0..3 {
        let deadline = Instant::now() + Duration::from_secs(5);
        while c.replica(i, "session").await.is_none() {
            assert!(Instant::now() < deadline, "node {i} never got the value");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Node 2 sleeps through the expiry, holding the live version.
    c.pause(2, true);
    while now_ms() < last_expiry {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..2 {
        let (status, headers, _) = get(&c, i, "session").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "node {i}");
        assert!(
            headers.get("x-dynamo-context").is_some(),
            "an expired key has a context"
        );
        let (status, body) = get_json(&c, i, "cart").await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the sibling without a TTL stays: {body}"
        );
        assert_eq!(body["siblings"][0]["expires_at"], Value::Null);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..2 {
        loop {
            let held = c.replica(i, "session").await;
            if held.as_ref().is_none_or(|o| o.is_tombstone()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {i} never expired it: {held:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    c.pause(2, false);
    let listing: Value = c
        .http
        .get(format!("{}/v1/kv?r=3", c.url(0)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listing["keys"], json!(["cart"]), "{listing}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for i in 0..3 {
            assert_eq!(
                get(&c, i, "session").await.0,
                StatusCode::NOT_FOUND,
                "node {i}"
            );
        }
        let mut held = Vec::new();
        for i in 0..3 {
            held.push(c.replica(i, "session").await);
        }
        if held.iter().all(Option::is_none) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the expired value was never purged everywhere: {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for i in 0..3 {
        let (status, body) = get_json(&c, i, "cart").await;
        assert_eq!(status, StatusCode::OK, "node {i}: {body}");
    }
}
