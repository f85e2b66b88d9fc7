//! `GET /metrics`: the series the node exposes, with the values the
//! traffic a test sends must leave in them, on both listeners; sloppy
//! quorum stand-ins and hints; the optional metrics token.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;

use crate::support::{ClusterOptions, TestCluster, fast, wait_state};

/// `/metrics` at `base` (a node's client or internal URL), with `token`
/// (none if empty): (status, body).
async fn scrape_with(c: &TestCluster, base: &str, token: &str) -> (StatusCode, String) {
    let mut request = c.http.get(format!("{base}/metrics"));
    if !token.is_empty() {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

/// Node `i`'s metrics, from its client port.
async fn scrape(c: &TestCluster, i: usize) -> String {
    let (status, text) = scrape_with(c, &c.url(i), "").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    text
}

/// The value of `series` (name and labels exactly as exposed) in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{series}: {v:?}")))
}

/// Like [`value`], failing when the series is missing.
fn get(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

/// Node `i`'s metrics once it counts all three members alive (a node just
/// started may not have heard from every peer yet); fails after 10 s.
async fn scrape_until_all_alive(c: &TestCluster, i: usize) -> String {
    let alive = r#"dynamo_members{state="alive"}"#;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = scrape(c, i).await;
        if get(&text, alive) == 3.0 {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not 3 members alive within 10 s:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn requests(op: &str, outcome: &str) -> String {
    format!(r#"dynamo_requests_total{{op="{op}",outcome="{outcome}"}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_versions_and_quorum_failures_are_counted() {
    // Every read asks all replicas; anti-entropy runs once, at the start,
    // so that only a read repairs the replica this test leaves behind.
    let flags = [
        "--partitions",
        "64",
        "--read-repair-chance",
        "1",
        "--anti-entropy-interval-ms",
        "3600000",
    ];
    let options = ClusterOptions {
        extra: flags.map(String::from).to_vec(),
        proxies: true,
        ..ClusterOptions::default()
    };
    let c = TestCluster::start_with(3, options).await;
    let response = c.http.get(format!("{}/metrics", c.url(0))).send().await;
    let content_type = response.unwrap().headers()[CONTENT_TYPE].clone();
    assert!(
        content_type
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{content_type:?}"
    );
    let before = scrape_until_all_alive(&c, 0).await;
    assert_eq!(get(&before, &requests("put", "ok")), 0.0);
    let version = format!(
        r#"dynamo_build_info{{version="{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(get(&before, &version), 1.0);

    for i in 0..5 {
        let (status, _) = c.put(0, &format!("k{i}"), "value", None, "").await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    for i in 0..3 {
        let (status, _, _) = c.get_json(0, &format!("k{i}"), "").await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _, _) = c.get_json(0, "missing", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Two writes from the same read: siblings, read once with both.
    c.put(0, "cart", "v0", None, "").await;
    let (_, ctx, _) = c.get_json(0, "cart", "").await;
    c.put(0, "cart", "apple", ctx.as_deref(), "").await;
    c.put(0, "cart", "pear", ctx.as_deref(), "").await;
    let (status, _, values) = c.get_json(0, "cart", "").await;
    assert_eq!((status, values.len()), (StatusCode::MULTIPLE_CHOICES, 2));
    let deleted = c.http.delete(c.kv(0, "k4")).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let bad = c.put(0, "k0", "x", None, "?w=9").await.0;
    assert_eq!(bad, StatusCode::BAD_REQUEST);

    let text = scrape(&c, 0).await;
    assert_eq!(get(&text, &requests("put", "ok")), 8.0, "{text}");
    assert_eq!(get(&text, &requests("put", "bad_request")), 1.0);
    assert_eq!(get(&text, &requests("get", "ok")), 5.0);
    assert_eq!(get(&text, &requests("get", "not_found")), 1.0);
    assert_eq!(get(&text, &requests("delete", "ok")), 1.0);
    let count = r#"dynamo_request_duration_seconds_count{op="put",outcome="ok"}"#;
    assert_eq!(get(&text, count), 8.0);
    let fast_puts = r#"dynamo_request_duration_seconds_bucket{le="10.0",op="put",outcome="ok"}"#;
    assert_eq!(get(&text, fast_puts), 8.0, "{text}");
    assert_eq!(
        get(&text, r#"dynamo_read_versions_total{versions="1"}"#),
        4.0
    );
    assert_eq!(
        get(&text, r#"dynamo_read_versions_total{versions="2"}"#),
        1.0
    );
    assert_eq!(
        get(&text, r#"dynamo_read_versions_total{versions="3+"}"#),
        0.0
    );
    assert!(get(&text, "dynamo_rocksdb_memtable_bytes") > 0.0, "{text}");
    assert_eq!(get(&text, "dynamo_rocksdb_write_stopped"), 0.0);
    // The internal listener serves the same metrics.
    let (status, internal) = scrape_with(&c, &c.admin_url(0), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(get(&internal, &requests("put", "ok")), 8.0);

    // One node cut off: R = 3 and W = 3 cannot be met.
    c.proxies[2].set_isolated(true);
    let (status, _, _) = c.get_json(0, "k0", "?r=3").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = c.put(0, "stale", "only-two", None, "?w=3").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let text = scrape(&c, 0).await;
    assert_eq!(get(&text, &requests("get", "quorum_failed")), 1.0);
    assert_eq!(get(&text, &requests("put", "quorum_failed")), 1.0);
    assert_eq!(
        get(&text, r#"dynamo_quorum_shortfalls_total{op="read"}"#),
        1.0
    );
    assert_eq!(
        get(&text, r#"dynamo_quorum_shortfalls_total{op="write"}"#),
        1.0
    );

    // Back, it lacks "stale": a read asking every replica repairs it.
    c.proxies[2].set_isolated(false);
    wait_state(&c, 0, 2, "alive").await;
    let (status, _, _) = c.get_json(0, "stale", "").await;
    assert_eq!(status, StatusCode::OK);
    let repaired = r#"dynamo_repaired_keys_total{source="read_repair"}"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&scrape(&c, 0).await, repaired) < 1.0 {
        assert!(Instant::now() < deadline, "no read repair counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = scrape(&c, 0).await;
    assert!(
        get(
            &text,
            r#"dynamo_repaired_bytes_total{source="read_repair"}"#
        ) > 0.0
    );
}

/// The sum of `series` over nodes `nodes`.
async fn total(c: &TestCluster, nodes: &[usize], series: &str) -> f64 {
    let mut sum = 0.0;
    for &i in nodes {
        sum += get(&scrape(c, i).await, series);
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stand_ins_and_hints_are_counted_until_delivered() {
    let options = ClusterOptions {
        extra: fast(&[]),
        ..ClusterOptions::default()
    };
    let mut c = TestCluster::start_with(4, options).await;
    c.kill(3);
    wait_state(&c, 0, 3, "down").await;
    let text = scrape(&c, 0).await;
    assert_eq!(get(&text, r#"dynamo_members{state="down"}"#), 1.0);
    assert_eq!(get(&text, r#"dynamo_members{state="alive"}"#), 3.0);
    for i in 0..20 {
        let (status, _) = c.put(0, &format!("h{i}"), "v", None, "").await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let up = [0, 1, 2];
    // With 4 nodes and N = 3, most keys have the down node as an owner.
    assert!(total(&c, &up, "dynamo_sloppy_standins_total").await >= 5.0);
    let stored = total(&c, &up, "dynamo_hints_stored_total").await;
    assert!(stored >= 5.0, "{stored}");
    assert_eq!(total(&c, &up, "dynamo_hints_pending").await, stored);

    c.restart(3).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while total(&c, &up, "dynamo_hints_pending").await > 0.0 {
        assert!(Instant::now() < deadline, "hints never delivered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(total(&c, &up, "dynamo_hints_delivered_total").await, stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_metrics_token_only_when_there_is_one() {
    let dir = tempfile::tempdir().unwrap();
    for (file, token) in [
        ("admin-token", "admin-1"),
        ("peer-token", "peer-1"),
        ("client-token", "client-1"),
    ] {
        std::fs::write(dir.path().join(file), token).unwrap();
    }
    let auth = ["--auth-dir", dir.path().to_str().unwrap()];
    let mut c = TestCluster::start(1, &auth).await;
    assert_eq!(scrape_with(&c, &c.url(0), "").await.0, StatusCode::OK);
    c.stop(0);

    std::fs::write(dir.path().join("metrics-token"), "metrics-1").unwrap();
    c.restart(0).await;
    for (base, token, expected) in [
        (c.url(0), "", StatusCode::UNAUTHORIZED),
        (c.url(0), "wrong", StatusCode::UNAUTHORIZED),
        (c.url(0), "client-1", StatusCode::FORBIDDEN),
        (c.url(0), "metrics-1", StatusCode::OK),
        (c.url(0), "admin-1", StatusCode::OK),
        (c.admin_url(0), "", StatusCode::UNAUTHORIZED),
        (c.admin_url(0), "metrics-1", StatusCode::OK),
    ] {
        let (status, body) = scrape_with(&c, &base, token).await;
        assert_eq!(status, expected, "{base} with {token:?}: {body}");
    }
}
