//! Hostile or broken input over real processes: rings too large or with
//! epochs far ahead (from an admin or by gossip), gossip about strangers,
//! bad certificates, a missing ring file, persisted state that no longer
//! parses, a data directory of another node and one of a newer format.
//! Each is refused with a clear error, or logged as a warning, and the
//! node keeps serving.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use dynamo_node::peer::Peer;
use dynamo_node::storage::{Storage, StorageOptions, format};
use dynamo_node::transport::{GossipDigest, Request, Response, Transport};
use dynamo_ring::member::{MAX_EPOCH, MAX_EPOCH_JUMP, MAX_MEMBERS, MAX_ZONES};
use dynamo_ring::{Member, Ring, RingDocument};
use dynamo_testkit::checks::wait_ready;
use dynamo_testkit::http::{builder, get_json, http_client, https_client};
use dynamo_testkit::pki::TestCa;
use dynamo_testkit::process::{NodeProcess, free_port};
use reqwest::StatusCode;
use serde_json::json;

const EXE: &str = env!("CARGO_BIN_EXE_dynamo-node");

/// How long a log line or an exit is waited for.
const PATIENCE: Duration = Duration::from_secs(20);

/// A node process on 127.0.0.1 whose log (stderr) goes to a file the test
/// reads.
struct LoggedNode {
    id: String,
    address: String,
    log: PathBuf,
    process: Option<NodeProcess>,
}

impl LoggedNode {
    /// `serve` as node `id` on a free port with its data in `dir/<id>`,
    /// logging at `level`, plus `extra` flags; not waited for.
    fn spawn(dir: &Path, id: &str, level: &str, extra: &[String]) -> LoggedNode {
        let address = format!("127.0.0.1:{}", free_port());
        let log = dir.join(format!("{id}-{}.log", free_port()));
        let mut command = serve(dir, id, &address, extra);
        command
            .env("RUST_LOG", level)
            .stderr(std::fs::File::create(&log).unwrap());
        LoggedNode {
            id: id.to_string(),
            address,
            log,
            process: Some(NodeProcess::spawn(id, &mut command)),
        }
    }

    /// Spawned as [`LoggedNode::spawn`] says, then ready over HTTP.
    async fn start(dir: &Path, id: &str, extra: &[String]) -> LoggedNode {
        let mut node = Self::spawn(dir, id, "warn", extra);
        let url = node.url();
        let process = node.process.as_mut().unwrap();
        process.wait_ready(&http_client(), &url).await;
        node
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The first log line holding every one of `needles`; fails after
    /// [`PATIENCE`] with the whole log.
    async fn wait_for_line(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let log = self.log();
            let found = log
                .lines()
                .find(|line| needles.iter().all(|n| line.contains(n)));
            if let Some(line) = found {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "{}: no log line with {needles:?} in:\n{log}",
                self.id
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn stop(&mut self) {
        self.process.take().unwrap().stop();
    }
}

/// `dynamo-node serve` as node `id` listening on `address`, data in
/// `dir/<id>`, plus `extra`.
fn serve(dir: &Path, id: &str, address: &str, extra: &[String]) -> Command {
    let mut command = Command::new(EXE);
    command
        .arg("serve")
        .args(["--node-id", id, "--listen", address])
        .arg("--data-dir")
        .arg(dir.join(id))
        .args(["--initial-cluster-state", "new"])
        .args(extra)
        .stdin(Stdio::null());
    command
}

fn flags(flags: &[&str]) -> Vec<String> {
    flags.iter().map(|f| f.to_string()).collect()
}

/// Waits up to [`PATIENCE`] for `child` to exit; kills it and fails if it
/// keeps running.
fn exit_status(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: the node kept running");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// PUTs `doc` as the ring. Patient: a ring of the largest size takes a
/// debug build seconds to adopt, many more on a loaded machine, and the
/// tests check what is answered meanwhile, not how fast.
async fn put_ring(url: &str, doc: &serde_json::Value) -> (StatusCode, serde_json::Value) {
    let patient = builder(None)
        .timeout(Duration::from_secs(180))
        .build()
        .unwrap();
    let r = patient
        .put(format!("{url}/v1/admin/ring"))
        .json(doc)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or_default())
}

async fn ring_of(url: &str) -> RingDocument {
    serde_json::from_value(get_json(&http_client(), &format!("{url}/v1/admin/ring")).await).unwrap()
}

/// A ring of `members` members (node `me` at `address`, the others at a
/// closed port) spread over `zones` zones, replication 3, `q` partitions.
fn big_ring(me: &str, address: &str, members: usize, zones: usize, q: u32) -> RingDocument {
    let mut list: Vec<Member> = (1..members)
        .map(|i| Member::new(format!("m{i:05}"), format!("zone-{}", i % zones)))
        .collect();
    list.push(Member::new(me, "zone-0"));
    let ring = Ring::build(list, 3, q).unwrap();
    let addresses = ring
        .members
        .iter()
        .map(|m| match m.id == me {
            true => (m.id.clone(), address.to_string()),
            false => (m.id.clone(), "127.0.0.1:1".to_string()),
        })
        .collect();
    RingDocument { ring, addresses }
}

/// GET /healthz, failing if it takes longer than `bound`.
async fn healthz_within(url: &str, bound: Duration) -> Duration {
    let started = Instant::now();
    let answer =
        tokio::time::timeout(bound, http_client().get(format!("{url}/healthz")).send()).await;
    assert!(
        answer.is_ok_and(|r| r.is_ok_and(|r| r.status() == StatusCode::OK)),
        "/healthz did not answer within {bound:?} while a ring was processed"
    );
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_ring_is_adopted_while_healthz_answers_and_larger_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // One runtime thread: a ring processed on it would stall /healthz.
    let extra = flags(&["--partitions", "1024", "--worker-threads", "1"]);
    let node = LoggedNode::start(dir.path(), "solo", &extra).await;
    let url = node.url();

    let built = Instant::now();
    let mut largest = big_ring("solo", &node.address, MAX_MEMBERS, MAX_ZONES, 1024);
    largest.ring.epoch = 2;
    println!(
        "built a ring of {MAX_MEMBERS} members in {MAX_ZONES} zones in {:?}",
        built.elapsed()
    );
    let body = serde_json::to_value(&largest).unwrap();
    let started = Instant::now();
    let put = tokio::spawn({
        let url = url.clone();
        async move { put_ring(&url, &body).await }
    });
    let mut slowest = Duration::ZERO;
    while !put.is_finished() {
        slowest = slowest.max(healthz_within(&url, Duration::from_secs(5)).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, reply) = put.await.unwrap();
    println!(
        "PUT of the largest ring took {:?}; slowest /healthz meanwhile {slowest:?}",
        started.elapsed()
    );
    assert_eq!(
        (status, reply["adopted"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    healthz_within(&url, Duration::from_secs(5)).await;

    let mut too_many = largest.clone();
    too_many.ring.epoch = 3;
    too_many
        .ring
        .members
        .push(Member::new("zz-extra", "zone-0"));
    too_many
        .addresses
        .insert("zz-extra".into(), "127.0.0.1:1".into());
    let (status, reply) = put_ring(&url, &serde_json::to_value(&too_many).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_eq!(reply["error"]["code"], "invalid_ring");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&(MAX_MEMBERS + 1).to_string()),
        "{message}"
    );

    let mut too_many_zones = big_ring("solo", &node.address, MAX_ZONES + 1, 1, 1024);
    for (i, member) in too_many_zones.ring.members.iter_mut().enumerate() {
        member.zone = format!("zone-{i}");
    }
    too_many_zones.ring.epoch = 3;
    let (status, reply) = put_ring(&url, &serde_json::to_value(&too_many_zones).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.contains("zones"), "{message}");
    assert_eq!(ring_of(&url).await.ring.epoch, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_rings_with_epochs_far_ahead_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = LoggedNode::start(dir.path(), "solo", &flags(&["--partitions", "32"])).await;
    let url = node.url();
    let current = ring_of(&url).await;
    let at_epoch = |epoch: u64| {
        let mut doc = current.clone();
        doc.ring.epoch = epoch;
        serde_json::to_value(doc).unwrap()
    };
    for epoch in [u64::MAX, MAX_EPOCH + 1, 1 + MAX_EPOCH_JUMP + 1] {
        let (status, reply) = put_ring(&url, &at_epoch(epoch)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "epoch {epoch}: {reply}");
        assert_eq!(reply["error"]["code"], "invalid_ring");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.contains(&epoch.to_string()), "{message}");
    }
    assert_eq!(ring_of(&url).await.ring.epoch, 1);

    let (status, _) = put_ring(&url, &at_epoch(1000)).await;
    assert_eq!(status, StatusCode::OK);
    let change = json!({ "add": [{ "id": "b", "address": "127.0.0.1:1" }] });
    let r = http_client()
        .post(format!("{url}/v1/admin/members"))
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "membership still changes");
    assert_eq!(ring_of(&url).await.ring.epoch, 1001);
}

/// One gossip exchange with `node`, as node `from`; returns its reply.
async fn gossip(node: &LoggedNode, digest: GossipDigest) -> GossipDigest {
    let peer = Peer {
        member: Member::new(node.id.clone(), "default"),
        address: node.address.clone(),
    };
    let transport = Transport::new(Duration::from_secs(5));
    match transport
        .call(&peer, &Request::Gossip(Box::new(digest)))
        .await
    {
        Ok(Response::Gossip(reply)) => *reply,
        other => panic!("gossip with {}: {other:?}", node.id),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_cannot_push_far_epochs_or_news_of_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let node = LoggedNode::start(dir.path(), "solo", &flags(&["--partitions", "32"])).await;
    let current = ring_of(&node.url()).await;
    let mut frozen = current.clone();
    frozen.ring.epoch = u64::MAX;
    let hostile = GossipDigest {
        from: "stranger".into(),
        ring: frozen,
        heartbeats: vec![("ghost".into(), 7), ("stranger".into(), 9)],
    };
    gossip(&node, hostile).await;
    let line = node.wait_for_line(&["WARN", "gossiped ring"]).await;
    assert!(line.contains(&u64::MAX.to_string()), "{line}");
    assert_eq!(ring_of(&node.url()).await.ring.epoch, 1);

    let quiet = GossipDigest {
        from: "stranger".into(),
        ring: current,
        heartbeats: Vec::new(),
    };
    let reply = gossip(&node, quiet).await;
    let known: Vec<&str> = reply.heartbeats.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(known, ["solo"], "heartbeats of non-members were kept");
}

/// A CA and a certificate for 127.0.0.1 that expired in 2001 (valid
/// 2000-01-01 to 2001-01-01), made with openssl for this test.
const EXPIRED_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBmjCCAUGgAwIBAgIUZEqXjJ5uz9NkaW9aLIpggteP5H0wCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPZXhwaXJlZCB0ZXN0IENBMCAXDTI2MTEzMDA1MzUyMVoYDzIx
MjYxMTA2MDUzNTIxWjAaMRgwFgYDVQQDDA9leHBpcmVkIHRlc3QgQ0EwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAATe0gXPlo+rHSNs9yyDowqqxOamb03pgVEtHzD1
aK8nsCcdF2Ul/Uv+ioND1ZtmeyaQHjKsl8q1/it9SFgZYVQTo2MwYTAdBgNVHQ4E
FgQU0En0wGDZp2nhukzLaX26ARj9TQIwHwYDVR0jBBgwFoAU0En0wGDZp2nhukzL
aX26ARj9TQIwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYwCgYIKoZI
zj0EAwIDRwAwRAIgKwOXIJ4vghb45MWjoA7okD106Rw8gSbzZeGrQDF003sCIFxv
WaiOqkeHtqoC6bwER9AGKf8Sm2bpsKaSk1wee5M7
-----END CERTIFICATE-----
";
const EXPIRED_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBsjCCAVegAwIBAgIBATAKBggqhkjOPQQDAjAaMRgwFgYDVQQDDA9leHBpcmVk
IHRlc3QgQ0EwHhcNMDAwMTAxMDAwMDAwWhcNMDEwMTAxMDAwMDAwWjAcMRowGAYD
VQQDDBFleHBpcmVkIHRlc3Qgbm9kZTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IA
BKsl86Ah4NpWR/97aQo/+G3OwQ5Npn2Ipu8UTPWv7lLCan/Bkx7ZizTYCTRad/F6
k0/pqZx6DuOLnpNcOpo4kP6jgYswgYgwCQYDVR0TBAIwADALBgNVHQ8EBAMCB4Aw
HQYDVR0lBBYwFAYIKwYBBQUHAwEGCCsGAQUFBwMCMA8GA1UdEQQIMAaHBH8AAAEw
HQYDVR0OBBYEFG9JasSGexSRVcHUJNSYmBPezcnRMB8GA1UdIwQYMBaAFNBJ9MBg
2adp4bpMy2l9ugEY/U0CMAoGCCqGSM49BAMCA0kAMEYCIQCQGDFPsgfQqNwwZ7Gh
nEBUnydAb9WXQZpsjToy9CxnTAIhAOXqMhKT7hC3J0to8g+stNZw/wc0OJzaP1Qb
f454eO3W
-----END CERTIFICATE-----
";
const EXPIRED_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg6OdcLHaSGcdOmHiL
CY3p30Y5QwEebKQaxR+lHkvL1WehRANCAASrJfOgIeDaVkf/e2kKP/htzsEOTaZ9
iKbvFEz1r+5Swmp/wZMe2Ys02Ak0WnfxepNP6amceg7ji56TXDqaOJD+
-----END PRIVATE KEY-----
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_an_expired_certificate_warns_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::write(tls.join("ca.crt"), EXPIRED_CA).unwrap();
    std::fs::write(tls.join("tls.crt"), EXPIRED_CERT).unwrap();
    std::fs::write(tls.join("tls.key"), EXPIRED_KEY).unwrap();
    let extra = vec![
        "--tls-dir".to_string(),
        tls.display().to_string(),
        "--partitions".to_string(),
        "16".to_string(),
    ];
    let mut node = LoggedNode::spawn(dir.path(), "solo", "warn", &extra);
    let line = node.wait_for_line(&["WARN", "tls.crt"]).await;
    assert!(line.to_lowercase().contains("expired"), "{line}");
    // It still serves (peers and clients will refuse it, not this node).
    tokio::time::sleep(Duration::from_millis(500)).await;
    node.stop();
}

/// `--tls-dir` flags with a certificate for 127.0.0.1 signed by `ca`.
fn tls_flags(ca: &TestCa, dir: &Path) -> Vec<String> {
    ca.write_tls_dir(dir, &["127.0.0.1"]);
    vec!["--tls-dir".to_string(), dir.display().to_string()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_certificate_from_another_ca_is_a_warning_once_per_peer() {
    let dir = tempfile::tempdir().unwrap();
    let (ours, theirs) = (TestCa::new("our CA"), TestCa::new("their CA"));
    let (p1, p2) = (free_port(), free_port());
    let peers = [
        "--peer".to_string(),
        format!("n1=127.0.0.1:{p1}"),
        "--peer".to_string(),
        format!("n2=127.0.0.1:{p2}"),
        "--gossip-interval-ms".to_string(),
        "100".to_string(),
    ];
    let mut nodes = Vec::new();
    for (id, port, ca) in [("n1", p1, &ours), ("n2", p2, &theirs)] {
        let mut extra = tls_flags(ca, &dir.path().join(format!("{id}-tls")));
        extra.extend(peers.iter().cloned());
        let log = dir.path().join(format!("{id}.log"));
        let mut command = serve(dir.path(), id, &format!("127.0.0.1:{port}"), &extra);
        command
            .env("RUST_LOG", "warn")
            .stderr(std::fs::File::create(&log).unwrap());
        nodes.push(LoggedNode {
            id: id.into(),
            address: format!("127.0.0.1:{port}"),
            log,
            process: Some(NodeProcess::spawn(id, &mut command)),
        });
    }
    let https = https_client(ours.pem());
    wait_ready(&https, &format!("https://{}", nodes[0].address)).await;
    let line = nodes[0].wait_for_line(&["WARN", "n2", "certificate"]).await;
    assert!(line.contains("UnknownIssuer"), "{line}");
    // Gossip retries every 100 ms; the warning is not repeated each time.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let repeats = nodes[0]
        .log()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("n2") && l.contains("UnknownIssuer"))
        .count();
    assert!(repeats <= 2, "warned {repeats} times:\n{}", nodes[0].log());
}

#[test]
fn a_missing_ring_file_stops_the_node_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-ring.json");
    let address = format!("127.0.0.1:{}", free_port());
    let mut child = serve(dir.path(), "solo", &address, &[])
        .arg("--ring-file")
        .arg(&missing)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = exit_status(&mut child, "a missing --ring-file");
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains(&missing.display().to_string()) && stderr.contains("does not exist"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persisted_state_that_no_longer_parses_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let extra = flags(&["--partitions", "32"]);
    let mut node = LoggedNode::start(dir.path(), "solo", &extra).await;
    node.stop();
    {
        let options = StorageOptions {
            partitions: 32,
            ..StorageOptions::default()
        };
        let storage = Storage::open(&dir.path().join("solo"), &options).unwrap();
        storage.meta_put("ring", b"{\"ring\": 1").unwrap();
        storage.meta_put("transfers", b"not json").unwrap();
    }
    let node = LoggedNode::start(dir.path(), "solo", &extra).await;
    let ring = node.wait_for_line(&["WARN", "persisted ring"]).await;
    assert!(ring.contains("discard"), "{ring}");
    let plan = node.wait_for_line(&["WARN", "transfer plan"]).await;
    assert!(plan.contains("discard"), "{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_of_another_node_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let extra = flags(&["--partitions", "16"]);
    let mut first = LoggedNode::start(dir.path(), "first", &extra).await;
    first.stop();
    std::fs::rename(dir.path().join("first"), dir.path().join("second")).unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let mut child = serve(dir.path(), "second", &address, &extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = exit_status(&mut child, "a data directory of node first");
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains("belongs to node \"first\"") && stderr.contains("\"second\""),
        "{stderr}"
    );

    // A data directory from before node ids were recorded is adopted.
    let options = StorageOptions {
        partitions: 16,
        ..StorageOptions::default()
    };
    drop(Storage::open(&dir.path().join("older"), &options).unwrap());
    let mut older = LoggedNode::spawn(dir.path(), "older", "info", &extra);
    older.wait_for_line(&["INFO", "node id", "\"older\""]).await;
    let url = older.url();
    older
        .process
        .as_mut()
        .unwrap()
        .wait_ready(&http_client(), &url)
        .await;
    older.stop();
}

/// A data directory whose format record names a version this release does
/// not read (one a newer release wrote) is refused with a message naming
/// the directory, the version found, the versions this release reads and
/// what to do; a directory from before the record existed is taken as
/// format 1, and the record is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_of_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let extra = flags(&["--partitions", "16"]);
    let options = StorageOptions {
        partitions: 16,
        ..StorageOptions::default()
    };
    let newer = dir.path().join("newer");
    let storage = Storage::open(&newer, &options).unwrap();
    storage.meta_put(format::FORMAT_RECORD, b"99").unwrap();
    drop(storage);
    let address = format!("127.0.0.1:{}", free_port());
    let mut child = serve(dir.path(), "newer", &address, &extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = exit_status(&mut child, "a data directory of format 99");
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    let expected = format!(
        "the data directory {} has format version 99, but this release of dynamo-node reads \
         versions 1..={}: run a release that reads format 99",
        newer.display(),
        format::READS.end()
    );
    assert!(stderr.contains(&expected), "{stderr}");

    drop(Storage::open(&dir.path().join("older"), &options).unwrap());
    let mut older = LoggedNode::spawn(dir.path(), "older", "info", &extra);
    older
        .wait_for_line(&["INFO", "no format version", "recording format 1"])
        .await;
    let url = older.url();
    older
        .process
        .as_mut()
        .unwrap()
        .wait_ready(&http_client(), &url)
        .await;
    older.stop();
    let storage = Storage::open(&dir.path().join("older"), &options).unwrap();
    assert_eq!(
        storage.meta_get(format::FORMAT_RECORD).unwrap(),
        Some(b"1".to_vec())
    );
}
