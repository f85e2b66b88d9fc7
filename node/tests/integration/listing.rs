//! Reading many keys: the paginated key listing (`GET /v1/kv`) and batch
//! reads (`POST /v1/batch/get`), and the refusal of what the client API
//! does not support (unknown parameters, conditional requests).

use std::collections::{BTreeSet, HashSet};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{ClusterOptions, TestCluster, fast};

/// Three nodes with fast background work (64 partitions).
async fn started() -> TestCluster {
    let options = ClusterOptions {
        extra: fast(&[]),
        ..ClusterOptions::default()
    };
    TestCluster::start_with(3, options).await
}

/// One page of node `i`'s listing with `query`: (keys, cursor).
async fn page(c: &TestCluster, i: usize, query: &str) -> (Vec<String>, Option<String>) {
    let (status, body) = get(c, i, &format!("/v1/kv?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let keys = body["keys"]
        .as_array()
        .expect("a key list")
        .iter()
        .map(|k| k.as_str().expect("a key").to_string())
        .collect();
    (keys, body["cursor"].as_str().map(str::to_string))
}

/// Every key of the listing with `query`, page after page through the
/// nodes in turn; fails on a key listed twice.
async fn list_all(c: &TestCluster, nodes: &[usize], query: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut cursor: Option<String> = None;
    for turn in 0.. {
        assert!(turn < 1000, "the listing never ends");
        let query = match &cursor {
            Some(cursor) => format!("{query}&cursor={cursor}"),
            None => query.to_string(),
        };
        let (keys, next) = page(c, nodes[turn % nodes.len()], &query).await;
        for key in keys {
            assert!(seen.insert(key.clone()), "{key} listed twice");
        }
        match next {
            Some(next) => cursor = Some(next),
            None => return seen,
        }
    }
    unreachable!()
}

async fn get(c: &TestCluster, i: usize, path_and_query: &str) -> (StatusCode, Value) {
    let r = c
        .http
        .get(format!("{}{path_and_query}", c.url(i)))
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or_default())
}

async fn batch(c: &TestCluster, i: usize, query: &str, body: Value) -> (StatusCode, Value) {
    let r = c
        .http
        .post(format!("{}/v1/batch/get{query}", c.url(i)))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or_default())
}

/// Writes `count` keys `{prefix}{n}` through the nodes in turn (w=3).
async fn write_keys(c: &TestCluster, prefix: &str, count: usize) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for n in 0..count {
        let key = format!("{prefix}{n:04}");
        let (status, _) = c.put(n % c.nodes.len(), &key, "v", None, "?w=3").await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{key}");
        keys.insert(key);
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_pages_through_every_live_key_once() {
    let c = started().await;
    let mut users = write_keys(&c, "users/", 240).await;
    let orders = write_keys(&c, "orders/", 60).await;
    for n in (0..240).step_by(12) {
        let key = format!("users/{n:04}");
        let r = c.http.delete(c.kv(1, &key)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{key}");
        users.remove(&key);
    }
    let everything: BTreeSet<String> = users.union(&orders).cloned().collect();

    assert_eq!(list_all(&c, &[0, 1, 2], "limit=37").await, everything);
    assert_eq!(list_all(&c, &[2], "prefix=users/&limit=1000").await, users);
    assert_eq!(list_all(&c, &[1], "prefix=orders/&r=3").await, orders);
    assert!(list_all(&c, &[0], "prefix=nobody/").await.is_empty());

    let (keys, cursor) = page(&c, 0, "limit=5").await;
    assert_eq!(keys.len(), 5, "a full ring fills a small page");
    assert!(cursor.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_listing_goes_on_across_a_ring_change() {
    let mut c = started().await;
    let written = write_keys(&c, "k/", 200).await;
    let mut seen = HashSet::new();
    let mut cursor = None;
    for _ in 0..2 {
        let query = match &cursor {
            Some(cursor) => format!("limit=40&cursor={cursor}"),
            None => "limit=40".to_string(),
        };
        let (keys, next) = page(&c, 0, &query).await;
        seen.extend(keys);
        cursor = next;
    }
    assert_eq!(seen.len(), 80);

    let newcomer = c.start_joining_node().await;
    let joined = c.admit(0, newcomer).await;
    let epoch = joined["epoch"].as_u64().unwrap();
    c.wait_transfers_done(&[0, 1, 2, newcomer], epoch).await;

    let mut cursor = cursor.expect("more keys follow");
    loop {
        let (keys, next) = page(&c, newcomer, &format!("limit=40&cursor={cursor}")).await;
        for key in keys {
            assert!(seen.insert(key.clone()), "{key} listed twice");
        }
        match next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    let seen: BTreeSet<String> = seen.into_iter().collect();
    assert_eq!(seen, written, "every key once, before and after the join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_read_answers_every_key_in_order() {
    let c = started().await;
    // Two writes without a context: siblings.
    for (i, value) in [(0, "red"), (1, "blue")] {
        let (status, _) = c.put(i, "colour", value, None, "?w=3").await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let (status, _) = c.put(2, "gone", "soon", None, "?w=3").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let r = c.http.delete(c.kv(0, "gone")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (status, _) = c.put(1, "plain", "one", None, "?w=3").await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let keys = ["plain", "never", "colour", "gone"];
    for r in ["", "?r=3"] {
        let (status, body) = batch(&c, 2, r, json!({ "keys": keys })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let items = body["items"].as_array().expect("items");
        let names: Vec<&str> = items.iter().map(|i| i["key"].as_str().unwrap()).collect();
        assert_eq!(names, keys, "in the order asked");
        assert_eq!(items[0]["values"], json!(["b25l"]), "{body}");
        assert!(items[0]["context"].is_string());
        assert_eq!(
            items[1],
            json!({"key": "never", "context": null, "values": [], "siblings": []})
        );
        let mut colours: Vec<&str> = items[2]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        colours.sort_unstable();
        assert_eq!(colours, ["Ymx1ZQ==", "cmVk"], "both siblings: {body}");
        assert_eq!(items[3]["values"], json!([]), "{body}");
        assert!(items[3]["context"].is_string(), "a tombstone's context");
    }

    // The batch's context supersedes the siblings, as a single read's does.
    let (_, body) = batch(&c, 0, "", json!({ "keys": ["colour"] })).await;
    let context = body["items"][0]["context"].as_str().unwrap().to_string();
    let (status, _) = c.put(1, "colour", "purple", Some(&context), "?w=3").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, body) = batch(&c, 2, "?r=3", json!({ "keys": ["colour"] })).await;
    assert_eq!(body["items"][0]["values"], json!(["cHVycGxl"]), "{body}");

    // The most keys a batch may name, across every replica set.
    let many: Vec<String> = (0..100).map(|n| format!("many/{n}")).collect();
    let (status, body) = batch(&c, 1, "", json!({ "keys": many })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["items"].as_array().unwrap().len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_api_does_not_support_is_refused_with_what_it_does() {
    let c = TestCluster::start(1, &["--partitions", "64"]).await;
    let url = |path: &str| format!("{}{path}", c.url(0));
    let code = |body: &Value| {
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    // Unknown query parameters, on every client route.
    for (method, path) in [
        ("PUT", "/v1/kv/k?expires=10"),
        ("GET", "/v1/kv/k?consistency=strong"),
        ("DELETE", "/v1/kv/k?force=true"),
        ("GET", "/v1/kv?start=a"),
        ("POST", "/v1/batch/get?w=2"),
        ("GET", "/v1/status?verbose=true"),
    ] {
        let request = c
            .http
            .request(method.parse().unwrap(), url(path))
            .header("content-type", "application/json")
            .body(r#"{"keys":["k"]}"#);
        let r = request.send().await.unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {body}");
        assert_eq!(code(&body), "invalid_parameter", "{method} {path}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("this route takes"),
            "{body}"
        );
    }

    // A parameter given twice is not resolved silently either.
    let r = c
        .http
        .put(url("/v1/kv/k?w=1&w=1"))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(code(&body), "invalid_parameter", "{body}");
    assert!(body.to_string().contains("more than once"), "{body}");

    // A path no route has is not an absent key.
    let (status, body) = get(&c, 0, "/v2/kv/k").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "no_such_route", "{body}");

    // Conditional requests: never silently ignored.
    for (method, header) in [
        ("PUT", "if-none-match"),
        ("PUT", "if-match"),
        ("GET", "if-modified-since"),
        ("DELETE", "if-unmodified-since"),
    ] {
        let r = c
            .http
            .request(method.parse().unwrap(), url("/v1/kv/k"))
            .header(header, "*")
            .body("v")
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {header}: {body}");
        assert_eq!(code(&body), "unsupported_header", "{body}");
    }
    let (status, body) = get(&c, 0, "/v1/kv/k").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was written: {body}");

    // Listing parameters.
    for query in [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "cursor=AQ",
        "cursor=%21",
        "r=4",
    ] {
        let (status, body) = get(&c, 0, &format!("/v1/kv?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(code(&body), "invalid_parameter", "{query}");
    }
    let r = c.http.put(url("/v1/kv")).body("v").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "PUT needs a key");

    // Batch bodies.
    let too_many: Vec<String> = (0..101).map(|n| n.to_string()).collect();
    for (body, expected) in [
        (json!({ "keys": [] }), "invalid_body"),
        (json!({ "keys": too_many }), "invalid_body"),
        (json!({ "keys": ["a", "a"] }), "invalid_body"),
        (json!({ "keys": [""] }), "invalid_key"),
        (json!({ "keys": ["a"], "values": true }), "invalid_body"),
        (json!(["a"]), "invalid_body"),
    ] {
        let (status, answer) = batch(&c, 0, "", body.clone()).await;
        assert!(status.is_client_error(), "{body}: {status} {answer}");
        assert_eq!(code(&answer), expected, "{body}: {answer}");
    }
    let r = c
        .http
        .post(url("/v1/batch/get"))
        .body(r#"{"keys":["a"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "JSON only");
    let body: Value = r.json().await.unwrap();
    assert_eq!(code(&body), "invalid_body");
}

/// `dynamo_peer_requests_total{kind}` of node `i`.
async fn served(c: &TestCluster, i: usize, kind: &str) -> f64 {
    let r = c
        .http
        .get(format!("{}/metrics", c.url(i)))
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    let series = format!("dynamo_peer_requests_total{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series)?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_read_asks_each_replica_once_not_once_per_key() {
    // No anti-entropy or handoff while the test counts requests.
    let quiet = [
        "--partitions",
        "64",
        "--anti-entropy-interval-ms",
        "3600000",
        "--handoff-interval-ms",
        "3600000",
    ];
    let c = TestCluster::start(3, &quiet).await;
    let keys: Vec<String> = (0..100).map(|n| format!("batch/{n}")).collect();
    for key in keys.iter().take(10) {
        let (status, _) = c.put(0, key, "v", None, "?w=3").await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let before = [
        served(&c, 1, "read batch").await,
        served(&c, 2, "read batch").await,
    ];
    let single = [
        served(&c, 1, "replica read").await,
        served(&c, 2, "replica read").await,
    ];

    // Three nodes, N=3: every key has the same replicas, so r=3 asks the
    // two other nodes one request each for all 100 keys.
    let (status, body) = batch(&c, 0, "?r=3", json!({ "keys": keys })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let found = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["values"] != json!([]))
        .count();
    assert_eq!(found, 10);
    for (i, node) in [1, 2].into_iter().enumerate() {
        assert_eq!(
            served(&c, node, "read batch").await,
            before[i] + 1.0,
            "node {node}"
        );
        assert_eq!(
            served(&c, node, "replica read").await,
            single[i],
            "node {node}"
        );
    }
}
