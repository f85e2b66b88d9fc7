//! A full disk: a node whose data volume runs out of space refuses writes
//! with a clean 507 (never a 500 naming a file, never an abort), keeps
//! serving reads, says so in `/v1/status`, and takes writes again by
//! itself once space is freed.
//!
//! The data directory is put on a small tmpfs, which needs root (the tests
//! run as root here and in CI); without it the tests print why and skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dynamo_testkit::checks;
use reqwest::StatusCode;

use crate::support::{ClusterOptions, TestCluster, fast};

/// Size of the tmpfs holding a node's data.
const VOLUME_MIB: u64 = 24;
/// A file taking most of the volume, deleted to free space.
const FILLER_MIB: u64 = 14;
/// Size of each written value: the free space fills in a few hundred.
const VALUE_BYTES: usize = 32 << 10;
/// More writes than the free space can take.
const MAX_WRITES: usize = 2000;
/// How long a node may take to accept writes again once space is freed.
const RECOVERY: Duration = Duration::from_secs(30);

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB at `path` (created); `None`, with the
    /// reason printed, when that is not possible here (not root, no mount).
    fn mount(path: &Path, mib: u64) -> Option<Self> {
        std::fs::create_dir_all(path).expect("mount point");
        let size = format!("size={mib}m");
        let outcome = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &size, "tmpfs"])
            .arg(path)
            .output();
        match outcome {
            Ok(output) if output.status.success() => Some(Self {
                path: path.to_path_buf(),
            }),
            Ok(output) => {
                let why = String::from_utf8_lossy(&output.stderr);
                eprintln!("SKIPPED: cannot mount a tmpfs (needs root): {why}");
                None
            }
            Err(error) => {
                eprintln!("SKIPPED: cannot run mount: {error}");
                None
            }
        }
    }

    /// The filler file taking most of the volume.
    fn filler(&self) -> PathBuf {
        self.path.join("filler")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a node process not reaped yet): detach it.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Writes a file of `mib` MiB at `path`.
fn fill(path: &Path, mib: u64) {
    let chunk = vec![0x5au8; 1 << 20];
    let mut file = std::fs::File::create(path).expect("filler file");
    for _ in 0..mib {
        std::io::Write::write_all(&mut file, &chunk).expect("writing the filler file");
    }
    file.sync_all().expect("syncing the filler file");
}

/// A value of [`VALUE_BYTES`] unique to write `k`.
fn value(k: usize) -> String {
    let head = format!("value-{k}-");
    format!("{head}{}", "x".repeat(VALUE_BYTES - head.len()))
}

/// PUT `key` through node `i`: the status and the body.
async fn put(c: &TestCluster, i: usize, key: &str, value: &str) -> (StatusCode, String) {
    let response = c
        .http
        .put(c.kv(i, key))
        .body(value.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {key}: the node did not answer: {e}"));
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

/// Asserts that a refused write was answered 507 (or 503) with a JSON error
/// body that names no file.
fn assert_clean_refusal(key: &str, status: StatusCode, body: &str) {
    assert!(
        status == StatusCode::INSUFFICIENT_STORAGE || status == StatusCode::SERVICE_UNAVAILABLE,
        "write {key} on a full disk answered {status}: {body}"
    );
    let json: serde_json::Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("write {key}: the error body is not JSON ({e}): {body}"));
    assert!(
        json["error"]["code"].is_string() && json["error"]["message"].is_string(),
        "write {key}: not an error body: {body}"
    );
    assert!(
        !body.contains('/'),
        "write {key}: the error body names a path: {body}"
    );
}

/// Node `i` still answers `/healthz` (its process is alive).
async fn assert_alive(c: &TestCluster, i: usize) {
    let answer = c.http.get(format!("{}/healthz", c.url(i))).send().await;
    assert!(
        answer.is_ok_and(|r| r.status() == StatusCode::OK),
        "node {i} is gone"
    );
}

/// Moves node `i` onto an empty [`VOLUME_MIB`] tmpfs mounted over its data
/// directory (stopped, data removed, restarted), with a [`FILLER_MIB`]
/// filler file beside its data; `None` when no tmpfs can be mounted.
async fn on_tmpfs(c: &mut TestCluster, i: usize) -> Option<Tmpfs> {
    c.stop(i);
    let data_dir = c.nodes[i].data_dir.clone();
    std::fs::remove_dir_all(&data_dir).expect("removing the first data directory");
    let volume = Tmpfs::mount(&data_dir, VOLUME_MIB)?;
    fill(&volume.filler(), FILLER_MIB);
    c.restart(i).await;
    Some(volume)
}

/// Writes values through node `via` until `full` says the volume is full
/// (given the write's key, status and body); returns the acknowledged
/// (key, value) pairs.
async fn write_until_full(
    c: &TestCluster,
    via: usize,
    mut full: impl AsyncFnMut(&str, StatusCode, &str) -> bool,
) -> Vec<(String, String)> {
    let mut acked = Vec::new();
    for k in 0..MAX_WRITES {
        let key = format!("k{k}");
        let value = value(k);
        let (status, body) = put(c, via, &key, &value).await;
        if status == StatusCode::NO_CONTENT {
            acked.push((key.clone(), value));
        }
        if full(&key, status, &body).await {
            assert!(!acked.is_empty(), "the very first write was refused");
            return acked;
        }
    }
    panic!("{MAX_WRITES} writes of {VALUE_BYTES} bytes fit on a {VOLUME_MIB} MiB volume");
}

/// Whether node `i`'s status says its storage takes writes.
async fn writable(c: &TestCluster, i: usize) -> bool {
    let status = c.status(i).await;
    let writable = &status["storage"]["writable"];
    assert!(writable.is_boolean(), "/v1/status: {status}");
    writable == true
}

/// Asserts, for `attempts` writes through node `i`, that each is refused
/// cleanly.
async fn assert_writes_refused(c: &TestCluster, i: usize, attempts: usize) {
    for k in 0..attempts {
        let key = format!("refused-{k}");
        let (status, body) = put(c, i, &key, &value(k)).await;
        assert_clean_refusal(&key, status, &body);
    }
}

/// Polls writes through node `i` until one is acknowledged (added to
/// `acked`), each refused one checked; then its status must agree.
async fn wait_writable(c: &TestCluster, i: usize, acked: &mut Vec<(String, String)>) {
    let deadline = Instant::now() + RECOVERY;
    for attempt in 0.. {
        let key = format!("after-{attempt}");
        let value = value(attempt);
        let (status, body) = put(c, i, &key, &value).await;
        if status == StatusCode::NO_CONTENT {
            acked.push((key, value));
            break;
        }
        assert_clean_refusal(&key, status, &body);
        assert!(
            Instant::now() < deadline,
            "writes still refused {RECOVERY:?} after space was freed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(writable(c, i).await, "/v1/status still says not writable");
}

/// Writes `count` values through node `i`, keys starting with `prefix`,
/// each acknowledged.
async fn write_more(
    c: &TestCluster,
    i: usize,
    prefix: &str,
    count: usize,
    acked: &mut Vec<(String, String)>,
) {
    for k in 0..count {
        let key = format!("{prefix}-{k}");
        let value = value(k);
        let (status, body) = put(c, i, &key, &value).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{key}: {body}");
        acked.push((key, value));
    }
}

#[tokio::test]
async fn a_full_disk_refuses_writes_cleanly_keeps_reads_and_recovers() {
    let mut c = TestCluster::start(1, &["--n", "1", "--r", "1", "--w", "1"]).await;
    let Some(volume) = on_tmpfs(&mut c, 0).await else {
        return;
    };
    let mut acked = write_until_full(&c, 0, async |key, status, body| {
        if status == StatusCode::NO_CONTENT {
            return false;
        }
        assert_clean_refusal(key, status, body);
        true
    })
    .await;
    assert_writes_refused(&c, 0, 100).await;
    assert_alive(&c, 0).await;
    c.assert_all_readable(&acked, &[0]).await;
    assert!(!writable(&c, 0).await, "/v1/status says writable");
    assert!(
        checks::ready(&c.http, &c.url(0)).await,
        "a node that cannot write still serves reads: it stays ready"
    );

    std::fs::remove_file(volume.filler()).expect("freeing space");
    wait_writable(&c, 0, &mut acked).await;
    write_more(&c, 0, "recovered", 20, &mut acked).await;
    c.assert_all_readable(&acked, &[0]).await;
    // The node goes before its volume is unmounted.
    drop(c);
}

/// One replica of three fills up: the others keep taking writes (w=2),
/// the full one refuses the writes it coordinates and answers replica
/// writes with errors without going down, and it catches up once space is
/// freed.
#[tokio::test]
async fn a_full_replica_keeps_the_cluster_writable_and_catches_up() {
    let options = ClusterOptions {
        extra: fast(&[]),
        ..ClusterOptions::default()
    };
    let mut c = TestCluster::start_with(3, options).await;
    let Some(volume) = on_tmpfs(&mut c, 2).await else {
        return;
    };
    let mut writes = 0;
    let mut acked = write_until_full(&c, 0, async |key, status, body| {
        assert_eq!(status, StatusCode::NO_CONTENT, "{key}: {body}");
        writes += 1;
        writes % 20 == 0 && !writable(&c, 2).await
    })
    .await;
    write_more(&c, 0, "while-full", 50, &mut acked).await;
    assert_alive(&c, 2).await;
    assert_writes_refused(&c, 2, 20).await;
    c.assert_all_readable(&acked, &[2]).await;

    std::fs::remove_file(volume.filler()).expect("freeing space");
    wait_writable(&c, 2, &mut acked).await;
    write_more(&c, 2, "recovered", 20, &mut acked).await;
    c.wait_converged(&[0, 1, 2]).await;
    c.assert_all_readable(&acked, &[2]).await;
    drop(c);
}
