//! A cluster of real `dynamo-node` processes on loopback for tests.

#![allow(dead_code)]

pub mod proxy;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dynamo_node::peer::Peer;
use dynamo_node::transport::{Request, Response, RpcError, Transport};
use dynamo_node::version::Object;
use dynamo_ring::Member;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::StatusCode;

pub const CONTEXT: &str = "x-dynamo-context";

/// Fast background work, so convergence takes seconds.
pub fn fast(extra: &[&str]) -> Vec<String> {
    let mut flags: Vec<String> = [
        "--partitions",
        "64",
        "--anti-entropy-interval-ms",
        "300",
        "--anti-entropy-keys-per-sec",
        "50000",
        "--handoff-interval-ms",
        "300",
        "--gossip-interval-ms",
        "300",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    flags.extend(extra.iter().map(|s| s.to_string()));
    flags
}

/// Polls node `observer`'s status until it sees node `target` as `state`.
pub async fn wait_state(c: &TestCluster, observer: usize, target: usize, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = c.status(observer).await;
        let seen = status["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == c.nodes[target].id.as_str())
            .map(|m| m["state"].clone());
        if seen.as_ref().is_some_and(|s| s == state) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {observer} never saw node {target} as {state} (last: {seen:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One node process and how to restart it.
pub struct TestNode {
    pub id: String,
    /// Its own loopback IP: it listens and dials from there.
    pub ip: IpAddr,
    pub port: u16,
    pub internal_port: u16,
    /// Where peers reach it (its proxy when faults are injected).
    pub advertised: String,
    pub zone: String,
    pub data_dir: PathBuf,
    /// Started with --join (outside the initial ring).
    pub joining: bool,
    child: Option<Child>,
}

/// How to start a test cluster.
#[derive(Clone, Default)]
pub struct ClusterOptions {
    /// Extra `serve` flags for every node.
    pub extra: Vec<String>,
    /// Put a fault-injecting proxy in front of every node's internal port.
    pub proxies: bool,
    /// Zone of node i (default: `zone-i`).
    pub zones: Vec<String>,
    /// Third byte of the nodes' loopback IPs (127.0.B.i); random if unset.
    pub subnet: Option<u8>,
    /// PEM CA the nodes' certificates chain to: talk HTTPS, trusting it.
    pub ca_pem: Option<String>,
}

/// N node processes that share a peer list.
pub struct TestCluster {
    pub nodes: Vec<TestNode>,
    peers: Vec<String>,
    options: ClusterOptions,
    subnet: u8,
    pub proxies: Vec<proxy::FaultProxy>,
    dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

pub fn free_port() -> u16 {
    free_port_on(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// A port free on `ip` right now.
pub fn free_port_on(ip: IpAddr) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A base port such that `count` consecutive ports are free right now.
pub fn free_port_run(count: u16) -> u16 {
    loop {
        let base = free_port();
        if base.checked_add(count).is_none() {
            continue;
        }
        let all_free = (0..count).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if all_free {
            return base;
        }
    }
}

/// Waits until the node at `url` answers `/readyz` with 200.
pub async fn wait_ready(http: &reqwest::Client, url: &str) {
    wait_ready_unless(http, url, || None).await;
}

/// Waits until the node at `url` answers `/readyz` with 200; fails at once
/// when `exited` reports that the node process has ended.
async fn wait_ready_unless(
    http: &reqwest::Client,
    url: &str,
    mut exited: impl FnMut() -> Option<String>,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = http.get(format!("{url}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status() == StatusCode::OK) {
            return;
        }
        if let Some(status) = exited() {
            panic!("{url} exited with {status} before it was ready");
        }
        assert!(Instant::now() < deadline, "{url} never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GETs `url` and parses the body as JSON.
pub async fn get_json_value(http: &reqwest::Client, url: &str) -> serde_json::Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

impl TestCluster {
    /// Node `i`'s `/v1/status`.
    pub async fn status(&self, i: usize) -> serde_json::Value {
        get_json_value(&self.http, &format!("{}/v1/status", self.url(i))).await
    }

    /// Starts `count` nodes, each in its own zone, with extra `serve` flags.
    pub async fn start(count: usize, extra: &[&str]) -> Self {
        let options = ClusterOptions {
            extra: extra.iter().map(|s| s.to_string()).collect(),
            ..ClusterOptions::default()
        };
        Self::start_with(count, options).await
    }

    /// Starts `count` nodes as `options` say.
    pub async fn start_with(count: usize, options: ClusterOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // A /24 of loopback per cluster, so nodes have distinct source IPs
        // and concurrent test clusters do not meet.
        let subnet = options
            .subnet
            .unwrap_or_else(|| rand::random_range(1..=254u8));
        let http = match &options.ca_pem {
            Some(pem) => https_client(pem),
            None => http_client(),
        };
        let mut cluster = Self {
            nodes: Vec::new(),
            peers: Vec::new(),
            options,
            subnet,
            proxies: Vec::new(),
            dir,
            http,
        };
        for _ in 0..count {
            cluster.add_node(false).await;
        }
        cluster.peers = cluster.nodes.iter().map(peer_spec).collect();
        for i in 0..count {
            cluster.spawn(i);
        }
        for i in 0..count {
            cluster.wait_ready(i).await;
        }
        cluster
    }

    /// Prepares node `nodes.len()` (with its proxy, if any); not started.
    async fn add_node(&mut self, joining: bool) -> usize {
        let i = self.nodes.len();
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, self.subnet, i as u8 + 1));
        let internal_port = free_port_on(ip);
        let advertised = if self.options.proxies {
            let target = SocketAddr::new(ip, internal_port);
            let proxy = proxy::FaultProxy::start(ip, target).await;
            let address = proxy.address.to_string();
            self.proxies.push(proxy);
            address
        } else {
            format!("{ip}:{internal_port}")
        };
        let zone = self
            .options
            .zones
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("zone-{i}"));
        self.nodes.push(TestNode {
            id: format!("n{}", i + 1),
            ip,
            port: free_port_on(ip),
            internal_port,
            advertised,
            zone,
            data_dir: self.dir.path().join(format!("n{}", i + 1)),
            joining,
            child: None,
        });
        i
    }

    /// Starts one more node with `--join`, seeded with the initial peers;
    /// it is not a member until added (see [`TestCluster::admit`]).
    pub async fn start_joining_node(&mut self) -> usize {
        let i = self.add_node(true).await;
        self.spawn(i);
        self.wait_ready(i).await;
        i
    }

    /// Adds node `i` to the ring through node `via`'s admin API.
    pub async fn admit(&self, via: usize, i: usize) -> serde_json::Value {
        let node = &self.nodes[i];
        let body = serde_json::json!({
            "add": [{ "id": node.id, "zone": node.zone, "address": node.advertised }]
        });
        self.admin_change(via, body).await
    }

    /// Removes node `i` from the ring through node `via`'s admin API.
    pub async fn retire(&self, via: usize, i: usize) -> serde_json::Value {
        let body = serde_json::json!({ "remove": [self.nodes[i].id] });
        self.admin_change(via, body).await
    }

    async fn admin_change(&self, via: usize, body: serde_json::Value) -> serde_json::Value {
        let r = self
            .http
            .post(format!("{}/v1/admin/members", self.url(via)))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "member change refused");
        r.json().await.unwrap()
    }

    fn spawn(&mut self, i: usize) {
        let node = &self.nodes[i];
        let mut command = Command::new(env!("CARGO_BIN_EXE_dynamo-node"));
        command
            .arg("serve")
            .args(["--node-id", &node.id])
            .args(["--listen", &format!("{}:{}", node.ip, node.port)])
            .args([
                "--internal-listen",
                &format!("{}:{}", node.ip, node.internal_port),
            ])
            .args(["--zone", &node.zone])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--request-timeout-ms", "1000"])
            .args(&self.options.extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        if node.joining {
            command.arg("--join").arg("--peer").arg(peer_spec(node));
        }
        for peer in &self.peers {
            command.arg("--peer").arg(peer);
        }
        let child = command.spawn().expect("spawning dynamo-node");
        self.nodes[i].child = Some(child);
    }

    pub fn url(&self, i: usize) -> String {
        let scheme = match self.options.ca_pem {
            Some(_) => "https",
            None => "http",
        };
        format!("{scheme}://{}:{}", self.nodes[i].ip, self.nodes[i].port)
    }

    pub fn kv(&self, i: usize, key: &str) -> String {
        format!("{}/v1/kv/{}", self.url(i), key)
    }

    /// Waits until node `i` answers `/readyz`; fails at once, with its exit
    /// status, if the node process ends first (its stderr is the test's).
    pub async fn wait_ready(&mut self, i: usize) {
        let url = self.url(i);
        let child = &mut self.nodes[i].child;
        wait_ready_unless(&self.http, &url, || {
            let status = child.as_mut()?.try_wait().ok()??;
            Some(status.to_string())
        })
        .await;
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
            let status = child.wait().unwrap();
            assert!(
                status.success(),
                "node {} exited with {status}",
                self.nodes[i].id
            );
        }
    }

    pub async fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].child.is_none(), "node is still running");
        self.spawn(i);
        self.wait_ready(i).await;
    }

    /// PUT a value, returning (status, context header).
    pub async fn put(
        &self,
        i: usize,
        key: &str,
        value: &str,
        context: Option<&str>,
        query: &str,
    ) -> (StatusCode, Option<String>) {
        let mut request = self
            .http
            .put(format!("{}{}", self.kv(i, key), query))
            .body(value.to_string());
        if let Some(context) = context {
            request = request.header(CONTEXT, context);
        }
        match request.send().await {
            Ok(r) => (r.status(), header(&r)),
            Err(_) => (StatusCode::from_u16(599).unwrap(), None),
        }
    }

    /// GET a key as JSON: (status, context, values).
    pub async fn get_json(
        &self,
        i: usize,
        key: &str,
        query: &str,
    ) -> (StatusCode, Option<String>, Vec<String>) {
        let r = self
            .http
            .get(format!("{}{}", self.kv(i, key), query))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        let status = r.status();
        let context = header(&r);
        let values = if status == StatusCode::OK || status == StatusCode::MULTIPLE_CHOICES {
            decode_values(&r.json().await.unwrap())
        } else {
            Vec::new()
        };
        (status, context, values)
    }
}

/// The values of a JSON read answer (`{"values": ["<base64>", ...]}`).
pub fn decode_values(body: &serde_json::Value) -> Vec<String> {
    use base64::Engine;
    body["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap();
            String::from_utf8(bytes).unwrap()
        })
        .collect()
}

impl TestCluster {
    /// Node `i`'s own stored state of `key`, read over the node-to-node
    /// transport (no quorum, no repair); `None` also when its record is
    /// unreadable.
    pub async fn replica(&self, i: usize, key: &str) -> Option<Object> {
        let transport = Transport::new(Duration::from_secs(5));
        let peer = Peer {
            member: Member {
                id: self.nodes[i].id.clone(),
                zone: String::new(),
            },
            address: format!("{}:{}", self.nodes[i].ip, self.nodes[i].internal_port),
        };
        let request = Request::ReplicaRead {
            key: Bytes::from(key.to_string()),
        };
        match transport.call(&peer, &request).await {
            Ok(Response::Object(object)) => object,
            // The node answered that its record is unreadable (corrupt).
            Err(RpcError::Remote { .. }) => None,
            other => panic!("unexpected reply {other:?}"),
        }
    }
}

/// Installs ring as the process's rustls provider (the tests build
/// reqwest with rustls but no provider of its own); idempotent.
fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A plain HTTP client with a 10 s timeout.
pub fn http_client() -> reqwest::Client {
    install_crypto();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// An HTTPS client trusting only the PEM CA `pem`.
pub fn https_client(pem: &str) -> reqwest::Client {
    install_crypto();
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn peer_spec(node: &TestNode) -> String {
    format!("{}={},{}", node.id, node.advertised, node.zone)
}

fn header(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get(CONTEXT)
        .map(|v| v.to_str().unwrap().to_string())
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Keys written by a background writer and acknowledged by the cluster.
pub struct Writer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    /// (key, value) of every acknowledged write.
    pub acked: Arc<Mutex<Vec<(String, String)>>>,
    /// Client URLs the writer cycles through (changeable while it runs).
    pub targets: Arc<Mutex<Vec<String>>>,
    /// Writes attempted so far.
    pub attempts: Arc<AtomicUsize>,
}

impl Writer {
    /// Writes fresh keys `prefix-N` through `targets` until stopped.
    pub fn start(http: reqwest::Client, prefix: &str, targets: Vec<String>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let targets = Arc::new(Mutex::new(targets));
        let attempts = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (stop, acked, targets, attempts) = (
                stop.clone(),
                acked.clone(),
                targets.clone(),
                attempts.clone(),
            );
            let prefix = prefix.to_string();
            async move {
                let mut n = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    let url = {
                        let targets = targets.lock().unwrap();
                        targets[n % targets.len()].clone()
                    };
                    let key = format!("{prefix}-{n}");
                    let value = format!("value-of-{key}");
                    attempts.fetch_add(1, Ordering::SeqCst);
                    let sent = http
                        .put(format!("{url}/v1/kv/{key}"))
                        .body(value.clone())
                        .send()
                        .await;
                    if sent.is_ok_and(|r| r.status().is_success()) {
                        acked.lock().unwrap().push((key, value));
                    }
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
        Self {
            stop,
            task,
            acked,
            targets,
            attempts,
        }
    }

    /// Stops writing; returns every acknowledged (key, value).
    pub async fn stop(self) -> Vec<(String, String)> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        let acked = self.acked.lock().unwrap().clone();
        let attempts = self.attempts.load(Ordering::SeqCst);
        eprintln!("writer: {} of {attempts} writes acknowledged", acked.len());
        acked
    }
}

impl TestCluster {
    /// Reads every key through the given nodes (round robin) and panics
    /// listing the acknowledged writes that cannot be read back.
    pub async fn assert_all_readable(&self, acked: &[(String, String)], via: &[usize]) {
        let mut missing = Vec::new();
        for (n, (key, value)) in acked.iter().enumerate() {
            let node = via[n % via.len()];
            let (status, _, values) = self.get_json(node, key, "").await;
            if !values.contains(value) {
                missing.push(format!("{key} ({status}, {values:?})"));
            }
        }
        assert!(
            missing.is_empty(),
            "{} of {} acknowledged writes are missing: {:?}",
            missing.len(),
            acked.len(),
            &missing[..missing.len().min(10)]
        );
    }

    /// Node `i`'s Merkle roots of the partitions it owns, and its epoch.
    pub async fn merkle(&self, i: usize) -> (u64, HashMap<u32, String>) {
        let body = get_json_value(&self.http, &format!("{}/v1/admin/merkle", self.url(i))).await;
        let roots = body["roots"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(p, r)| (p.parse().unwrap(), r.as_str().unwrap().to_string()))
            .collect();
        (body["epoch"].as_u64().unwrap(), roots)
    }

    /// Waits until `nodes` use one ring and, for every partition, all of
    /// them that own it have equal Merkle roots.
    pub async fn wait_converged(&self, nodes: &[usize]) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let mut epochs = Vec::new();
            let mut roots: HashMap<u32, Vec<String>> = HashMap::new();
            for &i in nodes {
                let (epoch, mine) = self.merkle(i).await;
                epochs.push(epoch);
                for (p, r) in mine {
                    roots.entry(p).or_default().push(r);
                }
            }
            let differing = roots
                .values()
                .filter(|r| r.iter().any(|x| x != &r[0]))
                .count();
            if differing == 0 && epochs.iter().all(|e| *e == epochs[0]) {
                eprintln!(
                    "converged: {} partitions, equal roots on nodes {nodes:?}",
                    roots.len()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replicas did not converge: {differing} partitions differ, epochs {epochs:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Node `i`'s transfer report.
    pub async fn transfers(&self, i: usize) -> serde_json::Value {
        get_json_value(&self.http, &format!("{}/v1/admin/transfers", self.url(i))).await
    }

    /// Waits until every node in `nodes` uses ring `epoch` and has received
    /// all its partitions.
    pub async fn wait_transfers_done(&self, nodes: &[usize], epoch: u64) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let mut done = true;
            for &i in nodes {
                let report = self.transfers(i).await;
                done &= report["epoch"].as_u64() == Some(epoch) && report["pending"] == 0;
            }
            if done {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "transfers to epoch {epoch} never finished"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The ring node `i` uses.
    pub async fn ring(&self, i: usize) -> dynamo_ring::RingDocument {
        self.http
            .get(format!("{}/v1/admin/ring", self.url(i)))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Pauses (SIGSTOP) or resumes (SIGCONT) node `i`.
    pub fn pause(&self, i: usize, paused: bool) {
        let child = self.nodes[i].child.as_ref().expect("node is running");
        let signal = if paused {
            Signal::SIGSTOP
        } else {
            Signal::SIGCONT
        };
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
    }

    /// Cuts node `i` off from the other nodes (not from clients), or heals.
    pub fn isolate(&self, i: usize, cut: bool) {
        assert!(self.options.proxies, "start the cluster with proxies");
        for (j, proxy) in self.proxies.iter().enumerate() {
            if j == i {
                proxy.set_isolated(cut);
            } else {
                proxy.set_blocked(self.nodes[i].ip, cut);
            }
        }
    }

    /// Stops node `i` for good and deletes its data directory.
    pub fn remove_node_data(&mut self, i: usize) {
        self.stop(i);
        std::fs::remove_dir_all(&self.nodes[i].data_dir).unwrap();
    }
}
