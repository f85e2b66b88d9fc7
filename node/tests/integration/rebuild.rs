//! Nodes that lost their data directory: they receive every partition they
//! own from the other replicas, and answer nothing for a partition before
//! they have it.

use std::time::Duration;

use bytes::Bytes;
use dynamo_node::transport::{Request, Response, Transport};

use crate::support::{ClusterOptions, TestCluster, fast};

async fn start(existing_cluster: bool) -> TestCluster {
    let options = ClusterOptions {
        extra: fast(&[]),
        existing_cluster,
        ..ClusterOptions::default()
    };
    TestCluster::start_with(3, options).await
}

/// What node `i` answers for its own copy of `key` over the node-to-node
/// transport.
async fn replica_answer(c: &TestCluster, i: usize, key: &str) -> Response {
    let request = Request::ReplicaRead {
        key: Bytes::from(key.to_string()),
    };
    Transport::new(Duration::from_secs(5))
        .call(&c.peer(i), &request)
        .await
        .expect("the node answers")
}

/// Node `i`'s transfer report: (pending, done, keys received).
async fn transfer_counts(c: &TestCluster, i: usize) -> (u64, u64, u64) {
    let report = c.transfers(i).await;
    let keys = report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["keys"].as_u64().unwrap())
        .sum();
    (
        report["pending"].as_u64().unwrap(),
        report["done"].as_u64().unwrap(),
        keys,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_that_lost_their_data_answer_nothing_before_they_received_it() {
    let mut c = start(false).await;
    let mut acked = Vec::new();
    for k in 0..300 {
        let (key, value) = (format!("rebuild-{k}"), format!("value-{k}"));
        let (status, _) = c.put(k % 3, &key, &value, None, "?w=3").await;
        assert!(status.is_success(), "{key}: {status}");
        acked.push((key, value));
    }
    let epoch = c.ring(0).await.ring.epoch;

    // Two of the three replicas lose their data; the only one that still
    // has it is down while they come back.
    c.stop(0);
    c.stop(1);
    c.stop(2);
    c.wipe(1);
    c.wipe(2);
    c.restart(1).await;
    c.restart(2).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    for i in [1, 2] {
        let (pending, _, _) = transfer_counts(&c, i).await;
        assert_eq!(
            pending, 64,
            "node {i} must not count what it lacks as received"
        );
    }
    for (key, _) in acked.iter().take(20) {
        let (status, _, values) = c.get_json(1, key, "?r=1").await;
        assert!(
            status.is_server_error(),
            "{key}: a read must fail, not answer {status} {values:?} from a copy that lacks it"
        );
        assert!(matches!(
            replica_answer(&c, 2, key).await,
            Response::NotReady
        ));
    }

    c.restart(0).await;
    c.wait_transfers_done(&[1, 2], epoch).await;
    for i in [1, 2] {
        let (_, done, keys) = transfer_counts(&c, i).await;
        assert_eq!(done, 64);
        assert!(keys >= 300, "node {i} received {keys} keys");
    }
    // Both rebuilt nodes alone now answer for every acknowledged write.
    c.stop(0);
    for (key, value) in &acked {
        let (status, _, values) = c.get_json(1, key, "?r=2").await;
        assert!(status.is_success(), "{key}: {status}");
        assert_eq!(values, vec![value.clone()], "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_cluster_started_as_existing_finds_nothing_to_receive() {
    let c = start(true).await;
    let epoch = c.ring(0).await.ring.epoch;
    c.wait_transfers_done(&[0, 1, 2], epoch).await;
    for i in 0..3 {
        let (_, done, keys) = transfer_counts(&c, i).await;
        assert_eq!((done, keys), (64, 0), "node {i}: every partition checked");
    }
    let (status, _) = c.put(0, "after", "v", None, "?w=3").await;
    assert!(status.is_success(), "{status}");
    let (status, _, values) = c.get_json(2, "after", "?r=3").await;
    assert!(status.is_success(), "{status}");
    assert_eq!(values, vec!["v".to_string()]);
}
