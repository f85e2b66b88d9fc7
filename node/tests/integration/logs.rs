//! What nodes log: lines a file can hold (no colour, each naming its node),
//! a peer's outage once each way, missed quorums rate-limited, and a
//! ring change summarised.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::support::{ClusterOptions, TestCluster, fast, wait_state};

/// A cluster of `count` nodes logging at `level` into files.
async fn logging_cluster(count: usize, level: &str, extra: &[&str]) -> TestCluster {
    let options = ClusterOptions {
        extra: fast(extra),
        log_files: Some(level.to_string()),
        ..ClusterOptions::default()
    };
    TestCluster::start_with(count, options).await
}

/// The lines of `log` that contain every one of `needles`.
fn lines_with<'a>(log: &'a str, needles: &[&str]) -> Vec<&'a str> {
    log.lines()
        .filter(|line| needles.iter().all(|n| line.contains(n)))
        .collect()
}

/// Waits until node `i`'s log past byte `from` has a line with every one
/// of `needles`, for at most `within`.
async fn wait_logged(c: &TestCluster, i: usize, from: usize, needles: &[&str], within: Duration) {
    let deadline = Instant::now() + within;
    while lines_with(&c.log(i)[from..], needles).is_empty() {
        assert!(
            Instant::now() < deadline,
            "node {} logged no line with {needles:?} within {within:?}:\n{}",
            c.nodes[i].id,
            &c.log(i)[from..]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn text_logs_in_a_file_have_no_colour_and_every_line_names_its_node() {
    let c = logging_cluster(2, "info", &[]).await;
    let (status, _) = c.put(0, "k", "v", None, "").await;
    assert!(status.is_success(), "{status}");
    for (i, node) in c.nodes.iter().enumerate() {
        let log = c.log(i);
        assert!(log.lines().count() > 1, "{} logged almost nothing", node.id);
        assert!(!log.contains('\x1b'), "{}: ANSI codes in {log:?}", node.id);
        let tag = format!(" node={} ", node.id);
        for line in log.lines() {
            assert!(line.contains(&tag), "{} logged {line:?}", node.id);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_object_a_line_naming_the_node() {
    let c = logging_cluster(1, "info", &["--log-format", "json"]).await;
    let log = c.log(0);
    assert!(log.lines().count() > 1, "the node logged almost nothing");
    for line in log.lines() {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert_eq!(object["node"], "n1", "{line}");
        assert!(object["fields"]["message"].is_string(), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_peer_is_logged_once_as_unreachable_and_once_as_back() {
    let mut c = logging_cluster(3, "info", &[]).await;
    for observer in [0, 1] {
        wait_state(&c, observer, 2, "alive").await;
    }
    let marks: Vec<usize> = [0, 1].iter().map(|&i| c.log(i).len()).collect();
    c.kill(2);
    let down = ["WARN", "peer n3 is unreachable"];
    for (observer, &mark) in marks.iter().enumerate() {
        // Three probe failures a second apart, each timing out in 0.5 s.
        wait_logged(&c, observer, mark, &down, Duration::from_secs(10)).await;
    }
    // Probes keep failing: none of them may log again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for (observer, &mark) in marks.iter().enumerate() {
        let log = c.log(observer);
        assert_eq!(
            lines_with(&log[mark..], &["peer n3 is unreachable"]).len(),
            1,
            "node {observer}:\n{}",
            &log[mark..]
        );
    }
    c.restart(2).await;
    let back = ["INFO", "peer n3 is reachable again"];
    for (observer, &mark) in marks.iter().enumerate() {
        wait_logged(&c, observer, mark, &back, Duration::from_secs(10)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (observer, &mark) in marks.iter().enumerate() {
        let log = c.log(observer);
        let since = &log[mark..];
        assert_eq!(
            lines_with(since, &["peer n3 is reachable again"]).len(),
            1,
            "{since}"
        );
        assert_eq!(
            lines_with(since, &["peer n3 is unreachable"]).len(),
            1,
            "{since}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ring_change_logs_one_transfer_summary_per_receiving_node() {
    let mut c = logging_cluster(3, "info", &[]).await;
    for i in 0..60 {
        let (status, _) = c.put(0, &format!("k{i}"), "v", None, "").await;
        assert!(status.is_success(), "{status}");
    }
    let joining = c.start_joining_node().await;
    let marks: Vec<usize> = (0..c.nodes.len()).map(|i| c.log(i).len()).collect();
    let change = c.admit(0, joining).await;
    let epoch = change["epoch"].as_u64().expect("the new ring's epoch");
    let all: Vec<usize> = (0..c.nodes.len()).collect();
    c.wait_transfers_done(&all, epoch).await;
    let summary = format!("transfers for ring {epoch} complete");
    let mut receivers = 0;
    for (i, &mark) in marks.iter().enumerate() {
        let log = c.log(i);
        let since = &log[mark..];
        let received = c.transfers(i).await["done"].as_u64().unwrap();
        let expected = usize::from(received > 0);
        receivers += expected;
        assert_eq!(
            lines_with(since, &["INFO", &summary]).len(),
            expected,
            "node {i}:\n{since}"
        );
        let adopted = format!(" epoch={epoch} ");
        assert_eq!(
            lines_with(since, &["INFO", "adopted a new ring", &adopted]).len(),
            1,
            "node {i}:\n{since}"
        );
        for per_partition in ["partition received", "retired partition deleted"] {
            assert!(
                lines_with(since, &[per_partition]).is_empty(),
                "node {i}:\n{since}"
            );
        }
    }
    assert!(receivers >= 1, "the joining node receives partitions");
}

#[tokio::test(flavor = "multi_thread")]
async fn missed_quorums_are_one_warning_per_interval_with_the_count_left_out() {
    let mut c = logging_cluster(3, "warn", &[]).await;
    c.kill(1);
    c.kill(2);
    let mark = c.log(0).len();
    let write = |i: usize| {
        let c = &c;
        async move { c.put(0, &format!("k{i}"), "v", None, "?w=3").await.0 }
    };
    for i in 0..5 {
        assert_eq!(write(i).await, StatusCode::SERVICE_UNAVAILABLE);
    }
    let quorum = ["WARN", "quorum not reached"];
    assert_eq!(
        lines_with(&c.log(0)[mark..], &quorum).len(),
        1,
        "{}",
        &c.log(0)[mark..]
    );
    // Past the 10 s interval, the next failure is logged with the four
    // left out.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(write(5).await, StatusCode::SERVICE_UNAVAILABLE);
    let lines = lines_with(&c.log(0)[mark..], &quorum).len();
    let counted = lines_with(&c.log(0)[mark..], &["not_logged_since_last=4"]).len();
    assert_eq!((lines, counted), (2, 1), "{}", &c.log(0)[mark..]);
}
