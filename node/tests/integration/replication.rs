//! Reads, writes, siblings and deletes across real node processes.

use dynamo_testkit::http::CONTEXT;
use reqwest::StatusCode;

use crate::support::TestCluster;

#[tokio::test]
async fn write_through_one_node_read_through_another() {
    let c = TestCluster::start(3, &[]).await;
    let (status, ctx) = c.put(0, "greeting", "hello", None, "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(ctx.is_some());

    let r = c.http.get(c.kv(2, "greeting")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let read_ctx = r
        .headers()
        .get(CONTEXT)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"hello");

    // An update with the read's context replaces the value, on every node.
    let (status, _) = c.put(1, "greeting", "hi", Some(&read_ctx), "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for i in 0..3 {
        let (status, _, values) = c.get_json(i, "greeting", "").await;
        assert_eq!((status, values), (StatusCode::OK, vec!["hi".to_string()]));
    }

    // Keys with slashes and non-ASCII characters are plain keys.
    let (status, _) = c.put(0, "users%2F42/caf%C3%A9", "x", None, "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, values) = c.get_json(2, "users%2F42/caf%C3%A9", "").await;
    assert_eq!((status, values), (StatusCode::OK, vec!["x".to_string()]));
}

#[tokio::test]
async fn concurrent_writes_become_siblings_and_a_context_resolves_them() {
    let c = TestCluster::start(3, &[]).await;
    c.put(0, "cart", "v0", None, "").await;
    let (_, ctx, _) = c.get_json(0, "cart", "").await;
    let ctx = ctx.unwrap();

    // Two clients update from the same read through different nodes.
    assert_eq!(
        c.put(0, "cart", "apple", Some(&ctx), "").await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.put(2, "cart", "pear", Some(&ctx), "").await.0,
        StatusCode::NO_CONTENT
    );

    let r = c.http.get(c.kv(1, "cart")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::MULTIPLE_CHOICES);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["values"].as_array().unwrap().len(), 2);

    let (status, both_ctx, mut values) = c.get_json(1, "cart", "").await;
    values.sort();
    assert_eq!(
        (status, values),
        (
            StatusCode::MULTIPLE_CHOICES,
            vec!["apple".to_string(), "pear".to_string()]
        )
    );

    // A stale write (old context) does not overwrite: it joins as a sibling.
    c.put(1, "cart", "stale", Some(&ctx), "").await;
    let (_, both_ctx2, values) = c.get_json(1, "cart", "").await;
    assert_eq!(values.len(), 3, "{values:?}");
    assert_ne!(both_ctx, both_ctx2);

    // Writing with the context of a read that saw all of them collapses them.
    c.put(1, "cart", "apple+pear", both_ctx2.as_deref(), "")
        .await;
    for i in 0..3 {
        let (status, _, values) = c.get_json(i, "cart", "").await;
        assert_eq!(
            (status, values),
            (StatusCode::OK, vec!["apple+pear".to_string()])
        );
    }
}

#[tokio::test]
async fn delete_writes_a_tombstone() {
    let c = TestCluster::start(3, &[]).await;
    c.put(0, "doomed", "x", None, "").await;
    let (_, ctx, _) = c.get_json(1, "doomed", "").await;
    let r = c
        .http
        .delete(c.kv(2, "doomed"))
        .header(CONTEXT, ctx.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.headers().get(CONTEXT).is_some());

    let r = c.http.get(c.kv(0, "doomed")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(
        r.headers().get(CONTEXT).is_some(),
        "a tombstone's context is returned"
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");

    // Writing again with the tombstone's context brings the key back cleanly.
    let (_, ctx, _) = c.get_json(0, "doomed", "").await;
    c.put(0, "doomed", "back", ctx.as_deref(), "").await;
    let (status, _, values) = c.get_json(2, "doomed", "").await;
    assert_eq!((status, values), (StatusCode::OK, vec!["back".to_string()]));

    // Without a context, DELETE removes what a quorum read sees.
    let r = c.http.delete(c.kv(1, "doomed")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(c.get_json(2, "doomed", "").await.0, StatusCode::NOT_FOUND);
    let r = c
        .http
        .delete(c.kv(1, "never-written"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(c.get_json(0, "never-written", "").await.1, None);
}

#[tokio::test]
async fn client_mistakes_get_json_errors_not_500s() {
    let c = TestCluster::start(3, &["--max-value-bytes", "1024"]).await;
    let expect = |status: StatusCode, code: &'static str| {
        move |r: reqwest::Response| async move {
            assert_eq!(r.status(), status);
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], code, "{body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
    };
    let http = &c.http;
    expect(StatusCode::BAD_REQUEST, "invalid_context")(
        http.put(c.kv(0, "k"))
            .header(CONTEXT, "%%%")
            .body("v")
            .send()
            .await
            .unwrap(),
    )
    .await;
    expect(StatusCode::BAD_REQUEST, "invalid_context")(
        http.put(c.kv(0, "k"))
            .header(CONTEXT, "AAAAAAAA")
            .body("v")
            .send()
            .await
            .unwrap(),
    )
    .await;
    for query in ["?w=0", "?w=4", "?w=two", "?w=-1"] {
        expect(StatusCode::BAD_REQUEST, "invalid_parameter")(
            http.put(format!("{}{query}", c.kv(0, "k")))
                .body("v")
                .send()
                .await
                .unwrap(),
        )
        .await;
    }
    expect(StatusCode::BAD_REQUEST, "invalid_parameter")(
        http.get(format!("{}?r=9", c.kv(0, "k")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    expect(StatusCode::BAD_REQUEST, "invalid_key")(
        http.get(format!("{}/v1/kv/", c.url(0)))
            .send()
            .await
            .unwrap(),
    )
    .await;
    expect(StatusCode::BAD_REQUEST, "invalid_key")(
        http.get(c.kv(0, &"k".repeat(1025))).send().await.unwrap(),
    )
    .await;
    expect(StatusCode::BAD_REQUEST, "invalid_key")(
        http.get(c.kv(0, "%FF%FE")).send().await.unwrap(),
    )
    .await;
    expect(StatusCode::PAYLOAD_TOO_LARGE, "value_too_large")(
        http.put(c.kv(0, "big"))
            .body(vec![b'x'; 1025])
            .send()
            .await
            .unwrap(),
    )
    .await;
    expect(StatusCode::NOT_FOUND, "no_such_route")(
        http.get(format!("{}/nope", c.url(0))).send().await.unwrap(),
    )
    .await;
    expect(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")(
        http.post(c.kv(0, "k")).send().await.unwrap(),
    )
    .await;
    // A value exactly at the limit and an empty value are fine; a valid w too.
    assert_eq!(
        http.put(c.kv(0, "edge"))
            .body(vec![b'x'; 1024])
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        http.put(format!("{}?w=3", c.kv(0, "empty")))
            .body("")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    let r = http
        .get(format!("{}?r=3", c.kv(1, "empty")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn status_reports_ring_members_and_liveness() {
    let mut c = TestCluster::start(3, &["--partitions", "64"]).await;
    let status = c.status(0).await;
    assert_eq!(status["node_id"], "n1");
    assert_eq!(status["zone"], "zone-0");
    assert_eq!(status["ring"]["partitions"], 64);
    assert_eq!(status["ring"]["epoch"], 1);
    assert_eq!(status["members"].as_array().unwrap().len(), 3);
    // With N=3 of 3 nodes every node holds every partition.
    assert_eq!(status["partitions_owned"]["replica"], 64);

    c.kill(2);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let status = c.status(0).await;
        let n3 = status["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == "n3")
            .unwrap()
            .clone();
        let n2 = status["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == "n2")
            .unwrap()
            .clone();
        if n3["state"] == "down" {
            assert_eq!(n2["state"], "alive");
            assert!(n2["last_heard_ms"].as_u64().unwrap() < 5000);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "n3 never detected as down: {n3}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
