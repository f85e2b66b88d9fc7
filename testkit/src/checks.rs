//! Checks on running nodes: ready, every acknowledged write readable,
//! replicas converged.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::http::{get_json, read};

/// Whether the node at `url` answers `/readyz` with 200 right now.
pub async fn ready(http: &reqwest::Client, url: &str) -> bool {
    let answer = http.get(format!("{url}/readyz")).send().await;
    answer.is_ok_and(|r| r.status() == StatusCode::OK)
}

/// Waits (up to 30 s) until the node at `url` answers `/readyz` with 200.
pub async fn wait_ready(http: &reqwest::Client, url: &str) {
    wait_ready_unless(http, url, || None).await;
}

/// Waits (up to 30 s) until the node at `url` answers `/readyz` with 200;
/// fails at once when `exited` reports that the node process has ended.
pub(crate) async fn wait_ready_unless(
    http: &reqwest::Client,
    url: &str,
    mut exited: impl FnMut() -> Option<String>,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if ready(http, url).await {
            return;
        }
        if let Some(status) = exited() {
            panic!("{url} exited with {status} before it was ready");
        }
        assert!(Instant::now() < deadline, "{url} never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads every acknowledged (key, value) through the nodes at `via` (base
/// URLs, round robin) and panics listing the writes whose value cannot be
/// read back.
pub async fn assert_all_readable(
    http: &reqwest::Client,
    acked: &[(String, String)],
    via: &[String],
) {
    let mut missing = Vec::new();
    for (n, (key, value)) in acked.iter().enumerate() {
        let url = format!("{}/v1/kv/{key}", via[n % via.len()]);
        let (status, _, values) = read(http, &url).await;
        if !values.contains(value) {
            missing.push(format!("{key} ({status}, {values:?})"));
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes are not readable: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)]
    );
}

/// What [`wait_converged`] requires besides equal Merkle roots among the
/// nodes reporting a partition; the default requires nothing more but one
/// ring epoch on every node.
#[derive(Clone, Copy, Debug, Default)]
pub struct Convergence {
    /// The ring epoch every node must use (any one, the same on every node,
    /// when `None`).
    pub epoch: Option<u64>,
    /// How many nodes must report each partition (its owners: `N`).
    pub replicas: Option<usize>,
    /// How many partitions must be reported in all (`Q`).
    pub partitions: Option<usize>,
}

/// Waits (up to 90 s) until the nodes at `urls` (base URLs of their admin
/// routes) use one ring and, for every partition, all of them that own it
/// report equal Merkle roots, as `want` further requires.
pub async fn wait_converged(http: &reqwest::Client, urls: &[String], want: Convergence) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut epochs = Vec::new();
        let mut roots: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for url in urls {
            let body = get_json(http, &format!("{url}/v1/admin/merkle")).await;
            epochs.push(body["epoch"].as_u64().expect("epoch"));
            for (partition, root) in body["roots"].as_object().expect("roots") {
                let partition = partition.parse().expect("partition number");
                let root = root.as_str().expect("hex root").to_string();
                roots.entry(partition).or_default().push(root);
            }
        }
        let differing: Vec<u32> = roots
            .iter()
            .filter(|(_, r)| {
                want.replicas.is_some_and(|n| r.len() != n) || r.iter().any(|x| x != &r[0])
            })
            .map(|(p, _)| *p)
            .collect();
        let epoch = want.epoch.unwrap_or(epochs[0]);
        let same_epoch = epochs.iter().all(|e| *e == epoch);
        let all_reported = want.partitions.is_none_or(|q| roots.len() == q);
        if same_epoch && differing.is_empty() && all_reported {
            eprintln!(
                "converged: {} partitions with equal roots on {urls:?} at epoch {epoch}",
                roots.len()
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replicas did not converge: epochs {epochs:?}, partitions differing {differing:?}, \
             {} partitions reported",
            roots.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
