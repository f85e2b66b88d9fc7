//! Node failures: kill -9, restarts, read repair. No acknowledged write may
//! be lost.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::support::TestCluster;

#[tokio::test]
async fn one_node_down_keeps_reads_and_writes_working() {
    let mut c = TestCluster::start(3, &[]).await;
    for k in 0..20 {
        assert_eq!(
            c.put(0, &format!("before-{k}"), "v", None, "").await.0,
            StatusCode::NO_CONTENT
        );
    }
    c.kill(2);
    for k in 0..20 {
        let key = format!("during-{k}");
        assert_eq!(
            c.put(k % 2, &key, "v", None, "").await.0,
            StatusCode::NO_CONTENT,
            "{key}"
        );
        assert_eq!(
            c.get_json((k + 1) % 2, &format!("before-{k}"), "").await.0,
            StatusCode::OK
        );
    }
    // All three replicas are needed for w=3: a clear 503, not a hang or 500.
    let r = c
        .http
        .put(format!("{}?w=3", c.kv(0, "strict")))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "quorum_unavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("needed 3 of 3") && message.contains("only 2 answered"),
        "{message}"
    );

    // Two nodes down: quorum reads fail with 503 too.
    c.kill(1);
    let r = c.http.get(c.kv(0, "before-1")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    // r=1 still serves what the surviving replica holds.
    assert_eq!(c.get_json(0, "before-1", "?r=1").await.0, StatusCode::OK);
}

/// A writer runs with w=3 (every replica acknowledges); node 3 is killed
/// with SIGKILL mid-stream. After a restart, node 3 alone must serve every
/// write that was acknowledged before the kill.
#[tokio::test]
async fn killed_node_has_every_write_it_acknowledged() {
    let mut c = TestCluster::start(3, &[]).await;
    let writer = {
        let http = c.http.clone();
        let url = c.url(0);
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut failures = 0;
            for k in 0..100_000 {
                let key = format!("k{k}");
                let r = http
                    .put(format!("{url}/v1/kv/{key}?w=3"))
                    .body(format!("value-{k}"))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == StatusCode::NO_CONTENT => acked.push(k),
                    _ => {
                        failures += 1;
                        if failures > 20 {
                            break;
                        }
                    }
                }
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.kill(2);
    let acked = writer.await.unwrap();
    assert!(
        acked.len() > 20,
        "writer made too little progress: {}",
        acked.len()
    );

    c.restart(2).await;
    c.stop(0);
    c.stop(1);
    for k in &acked {
        let (status, _, values) = c.get_json(2, &format!("k{k}"), "?r=1").await;
        assert_eq!(
            (status, values),
            (StatusCode::OK, vec![format!("value-{k}")]),
            "key k{k}"
        );
    }
}

#[tokio::test]
async fn restarting_every_node_keeps_all_data() {
    let mut c = TestCluster::start(3, &[]).await;
    for k in 0..100 {
        assert_eq!(
            c.put(k % 3, &format!("key-{k}"), &format!("v{k}"), None, "")
                .await
                .0,
            StatusCode::NO_CONTENT
        );
    }
    for i in 0..3 {
        c.stop(i);
    }
    for i in 0..3 {
        c.restart(i).await;
    }
    for k in 0..100 {
        let (status, _, values) = c.get_json((k + 1) % 3, &format!("key-{k}"), "?r=3").await;
        assert_eq!(
            (status, values),
            (StatusCode::OK, vec![format!("v{k}")]),
            "key-{k}"
        );
    }
}

/// A node that missed writes while down is repaired by reads that see its
/// stale answer.
#[tokio::test]
async fn read_repair_brings_a_stale_replica_up_to_date() {
    // Anti-entropy is slowed down so that only read repair can fix n3.
    let mut c = TestCluster::start(3, &["--anti-entropy-interval-ms", "600000"]).await;
    c.kill(2);
    for k in 0..10 {
        assert_eq!(
            c.put(0, &format!("missed-{k}"), "fresh", None, "").await.0,
            StatusCode::NO_CONTENT
        );
    }
    c.restart(2).await;
    for k in 0..10 {
        // r=3 waits for all replicas, including the stale one.
        assert_eq!(
            c.get_json(1, &format!("missed-{k}"), "?r=3").await.0,
            StatusCode::OK
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for k in 0..10 {
        let key = format!("missed-{k}");
        while c.replica(2, &key).await.is_none() {
            assert!(Instant::now() < deadline, "{key} never repaired on n3");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    c.stop(0);
    c.stop(1);
    for k in 0..10 {
        let (status, _, values) = c.get_json(2, &format!("missed-{k}"), "?r=1").await;
        assert_eq!(
            (status, values),
            (StatusCode::OK, vec!["fresh".to_string()])
        );
    }
}
