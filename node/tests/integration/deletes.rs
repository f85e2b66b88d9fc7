//! Deletes without ghosts: each path by which a purged tombstone could cost
//! a later write, or bring a deleted value back, on real node processes.
//! Each test ends with every replica equal and the last acknowledged write
//! (or the delete) readable from every node.

use std::time::{Duration, Instant};

use bytes::Bytes;
use dynamo_node::storage::object_digest;
use dynamo_node::transport::{Request, Response, Transport};
use dynamo_ring::key_hash;
use dynamo_testkit::http::CONTEXT;
use reqwest::StatusCode;

use crate::support::{ClusterOptions, TestCluster, fast, wait_state};

async fn start(count: usize, proxies: bool, extra: &[&str]) -> TestCluster {
    let options = ClusterOptions {
        extra: fast(extra),
        proxies,
        ..ClusterOptions::default()
    };
    TestCluster::start_with(count, options).await
}

/// Short tombstone ages: the minimum age is a cost knob, not a safety one.
const QUICK_PURGE: [&str; 4] = [
    "--tombstone-min-age-secs",
    "1",
    "--tombstone-scan-interval-ms",
    "300",
];

/// DELETE with a context; asserts it was acknowledged.
async fn delete(c: &TestCluster, via: usize, key: &str, context: &str, query: &str) {
    let r = c
        .http
        .delete(format!("{}{query}", c.kv(via, key)))
        .header(CONTEXT, context)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "delete of {key}: {}", r.status());
}

/// Asks node `i` directly (node-to-node transport) to purge its record of
/// `key` if it still has `digest`, as a purging node does.
async fn purge_on(c: &TestCluster, i: usize, key: &str, digest: u64) {
    let request = Request::PurgeTombstones {
        items: vec![(Bytes::from(key.to_string()), digest)],
    };
    let reply = Transport::new(Duration::from_secs(5))
        .call(&c.peer(i), &request)
        .await;
    assert!(matches!(reply, Ok(Response::Written)), "{reply:?}");
}

/// Waits until every node answers `key` with exactly `values` (404 for
/// none) reading all N replicas, and no node holds any record of it when
/// `values` is empty and `purged` is asked for.
async fn wait_everywhere(c: &TestCluster, key: &str, values: &[&str], purged: bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut agreed = true;
        for i in 0..c.nodes.len() {
            let (status, _, got) = c.get_json(i, key, "?r=3").await;
            let want: Vec<String> = values.iter().map(|v| v.to_string()).collect();
            agreed &= got == want && (status == StatusCode::NOT_FOUND) == values.is_empty();
            if purged {
                agreed &= c.replica(i, key).await.is_none();
            }
        }
        if agreed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{key} never read as {values:?} (purged: {purged}) on every node"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_purge_that_fails_on_one_owner_then_a_re_create_without_context() {
    // Purging is driven by hand here (the automatic one would wait an hour).
    let c = start(3, false, &[]).await;
    let key = "cart";
    let (status, context) = c.put(0, key, "old", None, "?w=3").await;
    assert!(status.is_success());
    delete(&c, 0, key, &context.unwrap(), "?w=3").await;
    let tombstone = c.replica(0, key).await.unwrap();
    assert!(tombstone.is_tombstone());
    let digest = object_digest(key_hash(key.as_bytes()), &tombstone);
    // The purge reaches two owners; the third keeps the tombstone.
    purge_on(&c, 0, key, digest).await;
    purge_on(&c, 1, key, digest).await;
    assert!(c.replica(0, key).await.is_none());
    assert!(c.replica(2, key).await.unwrap().is_tombstone());

    // A client that read 404 with no context writes with none, through the
    // node that coordinated the delete and has since forgotten it.
    let (status, _) = c.put(0, key, "new", None, "?w=3").await;
    assert!(status.is_success());
    c.wait_converged(&[0, 1, 2]).await;
    wait_everywhere(&c, key, &["new"], false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hinted_copy_written_before_the_delete_blocks_the_purge_until_delivered() {
    let c = start(4, true, &QUICK_PURGE).await;
    let key = "hinted";
    let (owners, others) = c.owners_and_others(0, key).await;
    let (coordinator, missing) = (owners[0], owners[2]);
    let fallback = others[0];

    // An owner is cut off: the write lands on a fallback with a hint.
    c.isolate(missing, true);
    wait_state(&c, coordinator, missing, "down").await;
    let (status, context) = c.put(coordinator, key, "old", None, "?w=3").await;
    assert!(status.is_success(), "sloppy quorum write: {status}");
    assert!(
        c.replica(fallback, key).await.is_some(),
        "the fallback stands in for the missing owner"
    );

    // The owner is back but the fallback is now cut off, holding the old
    // value: the delete reaches the three owners only.
    c.isolate(missing, false);
    c.isolate(fallback, true);
    wait_state(&c, coordinator, fallback, "down").await;
    wait_state(&c, coordinator, missing, "alive").await;
    delete(&c, coordinator, key, &context.unwrap(), "?w=3").await;

    // Nobody may purge while the fallback cannot be asked.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for &i in &owners {
        let held = c.replica(i, key).await;
        assert!(
            held.is_some_and(|o| o.is_tombstone()),
            "owner {i} kept the tombstone while a fallback holding the key is unreachable"
        );
    }

    // Healed: the hint is delivered (the tombstone covers it), then the
    // tombstone goes everywhere, and the old value never comes back.
    c.isolate(fallback, false);
    wait_everywhere(&c, key, &[], true).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_everywhere(&c, key, &[], true).await;
    c.wait_converged(&[0, 1, 2, 3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_re_create_while_an_old_replica_is_partitioned_away_then_healed() {
    let c = start(3, true, &QUICK_PURGE).await;
    let key = "profile";
    let (status, context) = c.put(0, key, "old", None, "?w=3").await;
    assert!(status.is_success());
    delete(&c, 0, key, &context.unwrap(), "?w=3").await;
    c.isolate(2, true);
    wait_state(&c, 0, 2, "down").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        c.replica(0, key).await.is_some_and(|o| o.is_tombstone()),
        "no purge while an owner cannot be asked"
    );
    // Re-created with no context on the reachable side.
    let (status, _) = c.put(0, key, "new", None, "").await;
    assert!(status.is_success());
    c.isolate(2, false);
    c.wait_converged(&[0, 1, 2]).await;
    wait_everywhere(&c, key, &["new"], false).await;

    // Deleted again once healed: now it is purged everywhere.
    let (_, context, _) = c.get_json(1, key, "?r=3").await;
    delete(&c, 1, key, &context.unwrap(), "?w=3").await;
    wait_everywhere(&c, key, &[], true).await;
}

/// Hint markers pending on every node but `except`.
async fn pending_hints(c: &TestCluster, except: usize) -> u64 {
    let mut total = 0;
    for i in (0..c.nodes.len()).filter(|&i| i != except) {
        total += c.status(i).await["hints"]["pending"].as_u64().unwrap();
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hints_for_a_member_that_left_the_ring_reach_the_current_owners() {
    let mut c = start(4, false, &[]).await;
    let key = "orphan";
    let (owners, _) = c.owners_and_others(3, key).await;
    let leaving = owners[1];
    let via = owners[0];
    c.kill(leaving);
    wait_state(&c, via, leaving, "down").await;
    let (status, _) = c.put(via, key, "kept", None, "?w=3").await;
    assert!(status.is_success());
    assert!(
        pending_hints(&c, leaving).await > 0,
        "a fallback holds a hint for the dead owner"
    );

    // The dead member is removed (and its data is gone for good).
    c.retire(via, leaving).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while pending_hints(&c, leaving).await > 0 {
        assert!(
            Instant::now() < deadline,
            "hints for the removed member never delivered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (new_owners, _) = c.owners_and_others(via, key).await;
    for &i in &new_owners {
        let held = c.replica(i, key).await;
        assert!(
            held.is_some_and(|o| o.live_values().any(|v| v.as_ref() == b"kept")),
            "current owner {i} holds the hinted write"
        );
    }
}

/// Whether node `i` holds `value` live in its own record of `key`.
async fn holds(c: &TestCluster, i: usize, key: &str, value: &str) -> bool {
    c.replica(i, key)
        .await
        .is_some_and(|o| o.live_values().any(|v| v.as_ref() == value.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_removed_member_still_holding_a_deleted_value_blocks_the_purge_until_it_dropped_it() {
    let c = start(4, true, &QUICK_PURGE).await;
    let key = "departed";
    let (owners, _) = c.owners_and_others(0, key).await;
    let (via, leaving) = (owners[0], owners[1]);
    let (status, _) = c.put(via, key, "old", None, "?w=3").await;
    assert!(status.is_success());
    assert!(holds(&c, leaving, key, "old").await);

    // The leaving owner is removed, but for now it cannot call the others
    // (they can still call it): it keeps the partitions it lost, "old"
    // included, as a removed node does until it has handed them over.
    for j in (0..c.nodes.len()).filter(|&j| j != leaving) {
        c.proxies[j].set_blocked(c.nodes[leaving].ip, true);
    }
    c.retire(via, leaving).await;
    let ring = c.ring(via).await;
    let r = c
        .http
        .put(format!("{}/v1/admin/ring", c.admin_url(leaving)))
        .json(&ring)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "the removed node adopts the new ring"
    );
    let members: Vec<usize> = (0..c.nodes.len()).filter(|&i| i != leaving).collect();
    c.wait_transfers_done(&members, ring.ring.epoch).await;

    // Deleted under the new ring: the removed node never sees the delete.
    let (_, context, values) = c.get_json(via, key, "?r=3").await;
    assert_eq!(values, ["old"]);
    delete(&c, via, key, &context.unwrap(), "?w=3").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut purged_early = Vec::new();
    for &i in &members {
        if c.replica(i, key).await.is_none() {
            purged_early.push(i);
        }
    }
    assert!(holds(&c, leaving, key, "old").await);

    // Unblocked: the removed node hands its retired partitions over and
    // drops them. The old value must not come back, on any member.
    for j in (0..c.nodes.len()).filter(|&j| j != leaving) {
        c.proxies[j].set_blocked(c.nodes[leaving].ip, false);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.transfers(leaving).await["retired"] != 0 {
        assert!(
            Instant::now() < deadline,
            "the removed node never dropped its retired partitions"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(c.replica(leaving, key).await.is_none());
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.wait_converged(&members).await;
    for &i in &members {
        let (_, _, values) = c.get_json(i, key, "?r=3").await;
        assert!(
            values.is_empty(),
            "deleted value back on node {i}: {values:?} (the tombstone was purged on \
             {purged_early:?} while the removed node still held the old value)"
        );
    }
    assert!(
        purged_early.is_empty(),
        "members {purged_early:?} purged the tombstone while a removed node held the old value"
    );
    // Then the tombstone goes everywhere, and "old" stays gone.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut gone = true;
        for &i in &members {
            gone &= c.replica(i, key).await.is_none();
        }
        if gone {
            break;
        }
        assert!(Instant::now() < deadline, "the tombstone was never purged");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for &i in &members {
        let (status, _, values) = c.get_json(i, key, "?r=3").await;
        assert_eq!(
            (status, values),
            (StatusCode::NOT_FOUND, Vec::<String>::new()),
            "node {i} after the purge"
        );
    }
}
