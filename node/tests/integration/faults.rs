//! Fault tests: real node processes on loopback, faults injected by
//! kill -9, SIGSTOP/SIGCONT, a fault-injecting TCP proxy in front of every
//! node's internal port (to cut one node off from the others but not from
//! clients), and direct damage to a node's RocksDB. Each test ends by
//! reading every acknowledged write back and checking that all replicas
//! have equal Merkle roots.

use std::time::{Duration, Instant};

use dynamo_ring::key_hash;
use dynamo_testkit::http::CONTEXT;
use dynamo_testkit::writer::Writer;
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

/// Counts the acknowledged keys node `i` does not hold itself.
async fn missing_locally(c: &TestCluster, i: usize, acked: &[(String, String)]) -> usize {
    let mut missing = 0;
    for (key, value) in acked {
        let holds = c
            .replica(i, key)
            .await
            .is_some_and(|o| o.live_values().any(|v| v.as_ref() == value.as_bytes()));
        missing += usize::from(!holds);
    }
    missing
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_a_writer_then_the_node_catches_up() {
    let mut c = start(3, false, &[]).await;
    let writer = Writer::start(c.http.clone(), "k9", c.urls(&[0, 1, 2]));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.kill(2);
    *writer.targets.lock().unwrap() = c.urls(&[0, 1]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.restart(2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let acked = writer.stop().await;
    assert!(acked.len() > 100, "the writer made progress");

    c.wait_converged(&[0, 1, 2]).await;
    c.assert_all_readable(&acked, &[0, 1, 2]).await;
    assert_eq!(missing_locally(&c, 2, &acked).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigstop_past_failure_detection_then_sigcont() {
    let c = start(3, false, &[]).await;
    let writer = Writer::start(c.http.clone(), "stop", c.urls(&[0, 1]));
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.pause(2, true);
    wait_state(&c, 0, 2, "down").await;
    let during = writer.acked.lock().unwrap().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        writer.acked.lock().unwrap().len() > during + 50,
        "writes go on while a replica is paused"
    );
    c.pause(2, false);
    wait_state(&c, 0, 2, "alive").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let acked = writer.stop().await;

    c.wait_converged(&[0, 1, 2]).await;
    c.assert_all_readable(&acked, &[2, 1, 0]).await;
    assert_eq!(missing_locally(&c, 2, &acked).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_cut_off_from_its_peers_then_healed() {
    let c = start(3, true, &[]).await;
    let writer = Writer::start(c.http.clone(), "cut", c.urls(&[0, 1, 2]));
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.isolate(2, true);
    wait_state(&c, 0, 2, "down").await;
    wait_state(&c, 2, 0, "down").await;
    // Clients still reach the node; it cannot gather a write quorum alone.
    let (status, _) = c.put(2, "lonely", "v", None, "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.isolate(2, false);
    wait_state(&c, 0, 2, "alive").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let acked = writer.stop().await;

    c.wait_converged(&[0, 1, 2]).await;
    c.assert_all_readable(&acked, &[2, 0, 1]).await;
    assert_eq!(missing_locally(&c, 2, &acked).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_of_three_owners_down_writes_succeed_through_sloppy_quorum_and_hints_heal() {
    let mut c = start(5, false, &[]).await;
    let ring = c.ring(0).await;
    let index = |id: &str| c.nodes.iter().position(|n| n.id == id).unwrap();
    let owners_of = |key: &str| -> Vec<usize> {
        ring.ring
            .preference_list_for_key(key.as_bytes())
            .iter()
            .map(|m| index(&m.id))
            .collect()
    };
    let owners = owners_of("probe");
    let keys: Vec<String> = (0..5000)
        .map(|i| format!("sloppy-{i}"))
        .filter(|k| {
            let mut o = owners_of(k);
            let mut want = owners.clone();
            o.sort_unstable();
            want.sort_unstable();
            o == want
        })
        .take(40)
        .collect();
    assert_eq!(keys.len(), 40);
    let (alive_owner, down) = (owners[0], [owners[1], owners[2]]);
    let others: Vec<usize> = (0..5).filter(|i| !owners.contains(i)).collect();
    c.kill(down[0]);
    c.kill(down[1]);

    let mut acked = Vec::new();
    for (n, key) in keys.iter().enumerate() {
        let via = if n % 2 == 0 { alive_owner } else { others[0] };
        let value = format!("v-{key}");
        let (status, _) = c.put(via, key, &value, None, "").await;
        assert!(
            status.is_success(),
            "write {key} through node {via} failed with {status} while W=2 healthy nodes exist"
        );
        acked.push((key.clone(), value));
    }
    c.assert_all_readable(&acked, &[others[1], alive_owner])
        .await;
    let hinted: u64 = {
        let mut total = 0;
        for &i in &others {
            total += c.status(i).await["hints"]["pending"].as_u64().unwrap();
        }
        total
    };
    assert!(
        hinted >= keys.len() as u64,
        "fallbacks hold hints ({hinted})"
    );
    // Hints are durable: they survive kill -9 of the nodes holding them.
    for &i in &others {
        c.kill(i);
        c.restart(i).await;
    }
    let mut hinted_after = 0;
    for &i in &others {
        hinted_after += c.status(i).await["hints"]["pending"].as_u64().unwrap();
    }
    assert_eq!(hinted_after, hinted, "hints survive a restart");

    c.restart(down[0]).await;
    c.restart(down[1]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut pending = 0;
        for i in 0..5 {
            pending += c.status(i).await["hints"]["pending"].as_u64().unwrap();
        }
        if pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{pending} hints never delivered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for &i in &owners {
        assert_eq!(missing_locally(&c, i, &acked).await, 0, "owner {i}");
    }
    for &i in &others {
        let mut strays = 0;
        for (key, _) in &acked {
            strays += usize::from(c.replica(i, key).await.is_some());
        }
        assert_eq!(
            strays, 0,
            "fallback node {i} dropped its handed-over copies"
        );
    }
    c.wait_converged(&[0, 1, 2, 3, 4]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn all_owners_down_a_fallback_coordinates_the_write_and_hands_it_over() {
    let mut c = start(5, false, &[]).await;
    let ring = c.ring(0).await;
    let owners: Vec<usize> = ring
        .ring
        .preference_list_for_key(b"orphan")
        .iter()
        .map(|m| c.nodes.iter().position(|n| n.id == m.id).unwrap())
        .collect();
    let others: Vec<usize> = (0..5).filter(|i| !owners.contains(i)).collect();
    for &i in &owners {
        c.kill(i);
    }
    // No owner answers: the receiving node coordinates as a stand-in, and
    // W=2 is met by the two healthy nodes of the walk.
    let (status, _) = c.put(others[0], "orphan", "kept", None, "").await;
    assert!(status.is_success(), "write with every owner down: {status}");
    let (status, _, values) = c.get_json(others[1], "orphan", "").await;
    assert_eq!((status, values), (StatusCode::OK, vec!["kept".to_string()]));

    for &i in &owners {
        c.restart(i).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let acked = vec![("orphan".to_string(), "kept".to_string())];
    for &i in &owners {
        while missing_locally(&c, i, &acked).await > 0 {
            assert!(
                Instant::now() < deadline,
                "owner {i} never got the hinted write"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    c.wait_converged(&[0, 1, 2, 3, 4]).await;
}

/// Waits until no node in `nodes` holds a key it does not own in node
/// `nodes[0]`'s ring, and every node has deleted all its retired partitions.
async fn wait_no_leftovers(c: &TestCluster, keys: &[(String, String)], nodes: &[usize]) {
    let ring = c.ring(nodes[0]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut leftovers = 0;
        for (key, _) in keys {
            let owners = ring.ring.preference_list_for_key(key.as_bytes());
            for &i in nodes {
                let owner = owners.iter().any(|m| m.id == c.nodes[i].id);
                if !owner && c.replica(i, key).await.is_some() {
                    leftovers += 1;
                }
            }
        }
        let mut retired = 0;
        for &i in nodes {
            retired += c.transfers(i).await["retired"].as_u64().unwrap();
        }
        if leftovers == 0 && retired == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{leftovers} copies left on nodes that no longer own their keys, {retired} partitions still retired"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn join_a_fourth_node_and_remove_an_original_under_a_writer() {
    let mut c = start(3, false, &[]).await;
    let writer = Writer::start(c.http.clone(), "move", c.urls(&[0, 1, 2]));
    tokio::time::sleep(Duration::from_secs(1)).await;

    let newcomer = c.start_joining_node().await;
    let joined = c.admit(0, newcomer).await;
    let epoch = joined["epoch"].as_u64().unwrap();
    assert!(joined["moved_replicas"].as_u64().unwrap() > 0);
    c.wait_transfers_done(&[0, 1, 2, newcomer], epoch).await;
    // The original nodes each lost partitions to the newcomer: once it has
    // them, they delete their old copies.
    let before_join = writer.acked.lock().unwrap().clone();
    wait_no_leftovers(&c, &before_join, &[0, 1, 2, newcomer]).await;
    *writer.targets.lock().unwrap() = c.urls(&[1, 2, newcomer]);

    let left = c.retire(1, 0).await;
    let epoch = left["epoch"].as_u64().unwrap();
    let remaining = [1, 2, newcomer];
    c.wait_transfers_done(&remaining, epoch).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let acked = writer.stop().await;
    c.remove_node_data(0);

    c.wait_converged(&remaining).await;
    c.assert_all_readable(&acked, &remaining).await;
    let ring = c.ring(1).await;
    assert!(ring.ring.member(&c.nodes[0].id).is_none());
    let mut under_replicated = Vec::new();
    for (key, value) in &acked {
        for owner in ring.ring.preference_list_for_key(key.as_bytes()) {
            let i = c.nodes.iter().position(|n| n.id == owner.id).unwrap();
            let holds = c
                .replica(i, key)
                .await
                .is_some_and(|o| o.live_values().any(|v| v.as_ref() == value.as_bytes()));
            if !holds {
                under_replicated.push(format!("{key}@{}", owner.id));
            }
        }
    }
    assert!(
        under_replicated.is_empty(),
        "{} replicas missing on owners of the new ring: {:?}",
        under_replicated.len(),
        &under_replicated[..under_replicated.len().min(10)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn anti_entropy_repairs_deleted_and_corrupted_records() {
    let mut c = start(3, false, &[]).await;
    let value = "x".repeat(1024);
    let mut acked = Vec::new();
    for i in 0..1500 {
        let key = format!("ae-{i}");
        let (status, _) = c.put(i % 3, &key, &value, None, "?w=3").await;
        assert!(status.is_success());
        acked.push((key, value.clone()));
    }
    c.wait_converged(&[0, 1, 2]).await;
    let ae_bytes = |s: &serde_json::Value| {
        s["anti_entropy"]["bytes_sent"].as_u64().unwrap()
            + s["anti_entropy"]["bytes_received"].as_u64().unwrap()
    };
    let ae_keys = |s: &serde_json::Value| s["anti_entropy"]["keys_repaired"].as_u64().unwrap();
    let (mut before, mut keys_before) = (0, 0);
    for i in 0..2 {
        let status = c.status(i).await;
        before += ae_bytes(&status);
        keys_before += ae_keys(&status);
    }

    // Damage node 3's RocksDB while it is down: 100 records deleted, 100
    // overwritten with garbage.
    c.stop(2);
    {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(false);
        let cfs = ["default", "data", "meta", "hints", "tombstones"];
        let db = rocksdb::DB::open_cf(&options, &c.nodes[2].data_dir, cfs).unwrap();
        let data = db.cf_handle("data").unwrap();
        for (n, (key, _)) in acked.iter().take(200).enumerate() {
            let mut dk = key_hash(key.as_bytes()).to_be_bytes().to_vec();
            dk.extend_from_slice(key.as_bytes());
            if n < 100 {
                db.delete_cf(data, &dk).unwrap();
            } else {
                db.put_cf(data, &dk, b"\xffgarbage").unwrap();
            }
        }
        db.flush_cf(data).unwrap();
    }
    c.restart(2).await;

    c.wait_converged(&[0, 1, 2]).await;
    assert_eq!(missing_locally(&c, 2, &acked).await, 0);
    let (mut after, mut keys_after) = (0, 0);
    for i in 0..3 {
        let status = c.status(i).await;
        after += ae_bytes(&status);
        keys_after += ae_keys(&status);
    }
    // No client read touched these keys: anti-entropy repaired them.
    assert!(
        keys_after - keys_before >= 200,
        "anti-entropy repaired {} keys",
        keys_after - keys_before
    );
    // Node 3's counters restarted from zero, so all of its traffic counts.
    let moved = after - before;
    let data_bytes = (acked.len() * (value.len() + 10)) as u64;
    eprintln!(
        "anti-entropy exchanged {moved} bytes to repair 200 of {} keys ({data_bytes} bytes of data)",
        acked.len()
    );
    assert!(
        moved < data_bytes / 2,
        "only differing ranges move: {moved} bytes for {data_bytes} bytes of data"
    );
    c.assert_all_readable(&acked, &[2]).await;
}

/// Whether no node holds any record of `key`.
async fn purged(c: &TestCluster, key: &str) -> bool {
    for i in 0..c.nodes.len() {
        if c.replica(i, key).await.is_some() {
            return false;
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tombstones_are_purged_once_every_replica_holds_them_and_never_resurrect() {
    let mut c = start(
        3,
        false,
        &[
            "--tombstone-min-age-secs",
            "1",
            "--tombstone-scan-interval-ms",
            "300",
        ],
    )
    .await;
    let mut contexts = Vec::new();
    for i in 0..20 {
        let key = format!("t-{i}");
        let (status, context) = c.put(0, &key, "v", None, "?w=3").await;
        assert!(status.is_success());
        contexts.push((key, context.unwrap()));
    }
    for (key, context) in &contexts[..10] {
        let r = c
            .http
            .delete(c.kv(1, key))
            .header(CONTEXT, context.as_str())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for (key, _) in &contexts[..10] {
        while !purged(&c, key).await {
            assert!(Instant::now() < deadline, "tombstone of {key} never purged");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for (key, _) in &contexts[..10] {
        assert_eq!(c.get_json(2, key, "").await.0, StatusCode::NOT_FOUND);
    }
    for (key, _) in &contexts[10..] {
        assert_eq!(c.get_json(2, key, "").await.2, vec!["v".to_string()]);
    }

    // A replica misses the delete: nobody may purge until it holds the
    // tombstone, and its old value must not come back.
    let (_, context) = c.put(0, "r", "old", None, "?w=3").await;
    c.stop(2);
    let r = c
        .http
        .delete(c.kv(0, "r"))
        .header(CONTEXT, context.unwrap())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let kept = c.replica(0, "r").await.expect("tombstone kept");
    assert!(kept.is_tombstone(), "not purged while a replica is down");
    c.restart(2).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !purged(&c, "r").await {
        assert!(Instant::now() < deadline, "tombstone of r never purged");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..3 {
        assert_eq!(c.get_json(i, "r", "").await.0, StatusCode::NOT_FOUND);
        assert!(c.replica(i, "r").await.is_none(), "resurrected on node {i}");
    }
}
