//! `/v1/status`: concise by default, the partition list on request, and
//! this node's own entry complete.

use reqwest::StatusCode;

use crate::support::TestCluster;

/// Most bytes the concise status of a small cluster may take, however many
/// partitions its ring has.
const CONCISE_BYTES: usize = 4096;

/// Node 0's `/v1/status` with `query`: (status, body).
async fn status_with(c: &TestCluster, query: &str) -> (StatusCode, String) {
    let r = c
        .http
        .get(format!("{}/v1/status{query}", c.url(0)))
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn status_is_concise_unless_the_partition_list_is_asked_for() {
    // The default ring of 1024 partitions, all held by this node.
    let c = TestCluster::start(2, &[]).await;
    let (code, concise) = status_with(&c, "").await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        concise.len() < CONCISE_BYTES,
        "{} bytes: {concise}",
        concise.len()
    );
    let concise: serde_json::Value = serde_json::from_str(&concise).unwrap();
    let owned = &concise["partitions_owned"];
    assert_eq!(owned["replica"], 1024, "{concise}");
    assert!(owned.get("list").is_none(), "{concise}");

    let (code, full) = status_with(&c, "?partitions=true").await;
    assert_eq!(code, StatusCode::OK);
    let full: serde_json::Value = serde_json::from_str(&full).unwrap();
    let list = full["partitions_owned"]["list"].as_array().expect("a list");
    assert_eq!(list.len(), 1024);

    let (code, body) = status_with(&c, "?partitions=yes").await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("invalid_parameter"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_the_node_itself_in_one_entry() {
    let c = TestCluster::start(2, &["--partitions", "64"]).await;
    let (key_status, _) = c.put(0, "k", "v", None, "").await;
    assert!(key_status.is_success(), "{key_status}");
    let status = c.status(0).await;
    let node = &status["node"];
    assert_eq!(node["id"], "n1", "{status}");
    assert_eq!(node["zone"], c.nodes[0].zone.as_str(), "{status}");
    assert_eq!(node["address"], c.nodes[0].advertised.as_str(), "{status}");
    assert_eq!(node["version"], env!("CARGO_PKG_VERSION"), "{status}");
    assert!(node["actor"].as_u64().is_some_and(|a| a > 0), "{status}");
    assert_eq!(node["member"], true, "{status}");
    assert_eq!(node["ring_epoch"], status["ring"]["epoch"], "{status}");
    assert_eq!(node["partitions"], 64, "{status}");
    assert_eq!(
        node["primary_partitions"],
        status["partitions_owned"]["primary"]
    );
    assert_eq!(node["transfers_pending"], 0, "{status}");
    assert_eq!(node["hints_pending"], 0, "{status}");
    assert_eq!(node["writable"], true, "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_with_the_ring_lists_every_partitions_owners() {
    let c = TestCluster::start(3, &["--partitions", "32"]).await;
    let (code, concise) = status_with(&c, "").await;
    assert_eq!(code, StatusCode::OK);
    assert!(!concise.contains("owners"), "{concise}");

    let (code, body) = status_with(&c, "?ring=true").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let doc = c.ring(0).await;
    let owners = status["ring"]["owners"].as_array().expect("owners");
    assert_eq!(owners.len(), 32, "{body}");
    for (p, listed) in owners.iter().enumerate() {
        let expected: Vec<&str> = doc
            .ring
            .preference_list(p as u32)
            .iter()
            .map(|m| m.id.as_str())
            .collect();
        assert_eq!(listed, &serde_json::json!(expected), "partition {p}");
    }

    let (code, body) = status_with(&c, "?ring=1").await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains("ring=\\\"1\\\" must be true or false"),
        "{body}"
    );
}
