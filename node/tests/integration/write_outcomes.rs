//! What a client learns from a write that missed its quorum: the replicas
//! that took it keep it (nothing is rolled back), and the `503` carries a
//! context to retry with (the client's own plus the version the write
//! left), so a retry replaces that version instead of adding an identical
//! sibling, and supersedes nothing the client had not seen. Both when the
//! receiving node coordinates and when it forwards the write to an owner.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::support::TestCluster;

const KEY: &str = "unacknowledged";

/// A `w=3` write through `via` with two owners down: `503` with a context.
async fn short_write(c: &TestCluster, via: usize, value: &str, context: Option<&str>) -> String {
    let (status, context) = c.put(via, KEY, value, context, "?w=3").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    context.expect("a 503 of a stored write carries its context")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_short_of_its_quorum_answers_its_context_and_a_retry_replaces_it() {
    let mut c = TestCluster::start(4, &[]).await;
    let (owners, others) = c.owners_and_others(0, KEY).await;
    // A version the writer below never reads, by another coordinator than
    // the one left: it must survive.
    let (status, _) = c.put(owners[1], KEY, "concurrent", None, "?w=3").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (live, down) = (owners[0], &owners[1..]);
    for &i in down {
        c.kill(i);
    }
    // Blind, forwarded by a node that owns nothing of the key; then,
    // retried with the context it got, coordinated by the live owner.
    let forwarded = short_write(&c, others[0], "first", None).await;
    let local = short_write(&c, live, "second", Some(&forwarded)).await;

    for &i in down {
        c.restart(i).await;
    }
    let (status, _) = c.put(live, KEY, "resolved", Some(&local), "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Every node, reading all three owners once they answer again.
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0..4 {
        loop {
            let (status, _, values) = c.get_json(i, KEY, "?r=3").await;
            if status == StatusCode::MULTIPLE_CHOICES {
                let mut values = values;
                values.sort();
                assert_eq!(values, ["concurrent", "resolved"], "node {i}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {i} answers {status} with r=3"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
