//! A cluster of real `dynamo-node` processes on loopback for tests, on
//! top of `dynamo_testkit`.

pub use dynamo_testkit::proxy;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dynamo_node::peer::Peer;
use dynamo_node::transport::{Request, Response, RpcError, Transport};
use dynamo_node::version::Object;
use dynamo_ring::Member;
use dynamo_testkit::checks::{self, Convergence};
use dynamo_testkit::http::{self, CONTEXT, get_json};
use dynamo_testkit::process::{FAST_BACKGROUND, NodeProcess, free_port_on, serve_command};
use reqwest::StatusCode;

/// Fast background work (64 partitions), so convergence takes seconds.
pub fn fast(extra: &[&str]) -> Vec<String> {
    ["--partitions", "64"]
        .iter()
        .chain(&FAST_BACKGROUND)
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
}

/// The third byte B of a loopback /24 (127.0.B.0) that no other cluster
/// of this process uses. All node integration tests run in one process,
/// on parallel threads: subnets are handed out in turn (254 before one
/// repeats), from a random start so that test processes running at the
/// same time rarely meet.
pub fn fresh_subnet() -> u8 {
    static LAST: Mutex<Option<u8>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap();
    let next = match *last {
        None => rand::random_range(1..=254u8),
        Some(254) => 1,
        Some(b) => b + 1,
    };
    *last = Some(next);
    next
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
    /// Its data directory was wiped: it restarts as a member that lost
    /// its data (`--initial-cluster-state existing`).
    pub lost_data: bool,
    process: Option<NodeProcess>,
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
    /// Third byte of the nodes' loopback IPs (127.0.B.i); a
    /// [`fresh_subnet`] if unset.
    pub subnet: Option<u8>,
    /// PEM CA the nodes' certificates chain to: talk HTTPS, trusting it.
    pub ca_pem: Option<String>,
    /// Start the nodes with `--initial-cluster-state existing` (default:
    /// `new`, as a cluster being created is started).
    pub existing_cluster: bool,
    /// Log at this `RUST_LOG` level into a file per node (see
    /// [`TestCluster::log`]) instead of warnings on the test's stderr.
    pub log_files: Option<String>,
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

impl TestCluster {
    /// Node `i`'s `/v1/status`.
    pub async fn status(&self, i: usize) -> serde_json::Value {
        get_json(&self.http, &format!("{}/v1/status", self.url(i))).await
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
        let subnet = options.subnet.unwrap_or_else(fresh_subnet);
        let http = match &options.ca_pem {
            Some(pem) => http::https_client(pem),
            None => http::http_client(),
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
            lost_data: false,
            process: None,
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
            .post(format!("{}/v1/admin/members", self.admin_url(via)))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "member change refused");
        r.json().await.unwrap()
    }

    fn spawn(&mut self, i: usize) {
        let node = &self.nodes[i];
        let mut command = serve_command(
            Path::new(env!("CARGO_BIN_EXE_dynamo-node")),
            &node.id,
            &format!("{}:{}", node.ip, node.port),
            &node.zone,
            &node.data_dir,
        );
        command
            .args([
                "--internal-listen",
                &format!("{}:{}", node.ip, node.internal_port),
            ])
            .args(&self.options.extra);
        if node.joining {
            command.arg("--join").arg("--peer").arg(peer_spec(node));
        }
        let state = match self.options.existing_cluster || node.lost_data {
            true => "existing",
            false => "new",
        };
        command.args(["--initial-cluster-state", state]);
        for peer in &self.peers {
            command.arg("--peer").arg(peer);
        }
        if let Some(level) = &self.options.log_files {
            command.env("RUST_LOG", level).stderr(self.log_file(i));
        }
        self.nodes[i].process = Some(NodeProcess::spawn(&node.id, &mut command));
    }

    /// Node `i`'s log file, opened for appending (a restarted node goes on
    /// writing to it).
    fn log_file(&self, i: usize) -> std::fs::File {
        let path = self.log_path(i);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("{}.log", self.nodes[i].id))
    }

    /// What node `i` has logged so far (with
    /// [`ClusterOptions::log_files`]), across its restarts.
    pub fn log(&self, i: usize) -> String {
        let path = self.log_path(i);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }

    pub fn url(&self, i: usize) -> String {
        let scheme = match self.options.ca_pem {
            Some(_) => "https",
            None => "http",
        };
        format!("{scheme}://{}:{}", self.nodes[i].ip, self.nodes[i].port)
    }

    /// Base URL of node `i`'s internal listener (the admin routes and the
    /// node-to-node stream), reached directly, not through its proxy.
    pub fn admin_url(&self, i: usize) -> String {
        let scheme = match self.options.ca_pem {
            Some(_) => "https",
            None => "http",
        };
        format!(
            "{scheme}://{}:{}",
            self.nodes[i].ip, self.nodes[i].internal_port
        )
    }

    pub fn kv(&self, i: usize, key: &str) -> String {
        format!("{}/v1/kv/{}", self.url(i), key)
    }

    /// Waits until node `i` answers `/readyz`; fails at once, with its exit
    /// status, if the node process ends first (its stderr is the test's).
    pub async fn wait_ready(&mut self, i: usize) {
        let url = self.url(i);
        let process = self.nodes[i].process.as_mut().expect("node is running");
        process.wait_ready(&self.http, &url).await;
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self, i: usize) {
        if let Some(process) = self.nodes[i].process.take() {
            process.kill();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self, i: usize) {
        if let Some(process) = self.nodes[i].process.take() {
            process.stop();
        }
    }

    pub async fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].process.is_none(), "node is still running");
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
            Ok(r) => (r.status(), http::context(&r)),
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
        http::read(&self.http, &format!("{}{}", self.kv(i, key), query)).await
    }
}

impl TestCluster {
    /// Node `i` as a peer, reached directly (not through its proxy).
    pub fn peer(&self, i: usize) -> Peer {
        Peer {
            member: Member::new(self.nodes[i].id.clone(), self.nodes[i].zone.clone()),
            address: format!("{}:{}", self.nodes[i].ip, self.nodes[i].internal_port),
        }
    }

    /// Merges `object` into node `i`'s own copy of `key` only, as a replica
    /// write from a coordinator does (no hint, no other replica).
    pub async fn replica_write(&self, i: usize, key: &str, object: Object) {
        let request = Request::ReplicaWrite {
            key: Bytes::from(key.to_string()),
            object,
            hint_for: None,
        };
        let reply = Transport::new(Duration::from_secs(5))
            .call(&self.peer(i), &request)
            .await;
        assert!(matches!(reply, Ok(Response::Written)), "{reply:?}");
    }

    /// Node `i`'s own stored state of `key`, read over the node-to-node
    /// transport (no quorum, no repair), once it is not receiving the key's
    /// partition; `None` also when its record is unreadable.
    pub async fn replica(&self, i: usize, key: &str) -> Option<Object> {
        let transport = Transport::new(Duration::from_secs(5));
        let peer = self.peer(i);
        let request = Request::ReplicaRead {
            key: Bytes::from(key.to_string()),
        };
        // A node still receiving the key's partition answers NotReady
        // until the transfer is done: ask again.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match transport.call(&peer, &request).await {
                Ok(Response::Object(object)) => return object,
                // The node answered that its record is unreadable (corrupt).
                Err(RpcError::Remote { .. }) => return None,
                Ok(Response::NotReady) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => panic!("unexpected reply {other:?}"),
            }
        }
    }
}

fn peer_spec(node: &TestNode) -> String {
    format!("{}={},{}", node.id, node.advertised, node.zone)
}

impl TestCluster {
    /// Reads every key through the given nodes (round robin) and panics
    /// listing the acknowledged writes that cannot be read back.
    pub async fn assert_all_readable(&self, acked: &[(String, String)], via: &[usize]) {
        checks::assert_all_readable(&self.http, acked, &self.urls(via)).await;
    }

    /// The client URLs of `nodes`.
    pub fn urls(&self, nodes: &[usize]) -> Vec<String> {
        nodes.iter().map(|&i| self.url(i)).collect()
    }

    /// Waits until `nodes` use one ring and, for every partition, all of
    /// them that own it have equal Merkle roots.
    pub async fn wait_converged(&self, nodes: &[usize]) {
        let admin_urls: Vec<String> = nodes.iter().map(|&i| self.admin_url(i)).collect();
        checks::wait_converged(&self.http, &admin_urls, Convergence::default()).await;
    }

    /// Node `i`'s transfer report.
    pub async fn transfers(&self, i: usize) -> serde_json::Value {
        get_json(
            &self.http,
            &format!("{}/v1/admin/transfers", self.admin_url(i)),
        )
        .await
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
            .get(format!("{}/v1/admin/ring", self.admin_url(i)))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Node `i`'s process id.
    pub fn pid(&self, i: usize) -> u32 {
        self.nodes[i]
            .process
            .as_ref()
            .expect("node is running")
            .pid()
    }

    /// Pauses (SIGSTOP) or resumes (SIGCONT) node `i`.
    pub fn pause(&self, i: usize, paused: bool) {
        let process = self.nodes[i].process.as_ref().expect("node is running");
        process.pause(paused);
    }

    /// Node indexes of the owners of `key`, in preference order, and of
    /// the other nodes, in walk order, by node `via`'s ring.
    pub async fn owners_and_others(&self, via: usize, key: &str) -> (Vec<usize>, Vec<usize>) {
        let ring = self.ring(via).await;
        let index = |id: &str| self.nodes.iter().position(|n| n.id == id).unwrap();
        let walk: Vec<usize> = ring
            .ring
            .extended_preference_list(ring.ring.partition_for_key(key.as_bytes()))
            .iter()
            .map(|m| index(&m.id))
            .collect();
        let n = ring.ring.replication;
        (walk[..n].to_vec(), walk[n..].to_vec())
    }

    /// Holds every answer node `i` gives its peers for `delay` (zero:
    /// none), as a stalled disk or a busy machine would; clients are not
    /// slowed.
    pub fn slow_down(&self, i: usize, delay: Duration) {
        assert!(self.options.proxies, "start the cluster with proxies");
        self.proxies[i].set_delay(delay);
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

    /// Deletes the data directory of stopped node `i`, which restarts as a
    /// member that lost its data.
    pub fn wipe(&mut self, i: usize) {
        assert!(self.nodes[i].process.is_none(), "node is still running");
        std::fs::remove_dir_all(&self.nodes[i].data_dir).unwrap();
        self.nodes[i].lost_data = true;
    }

    /// Stops node `i` for good and deletes its data directory.
    pub fn remove_node_data(&mut self, i: usize) {
        self.stop(i);
        std::fs::remove_dir_all(&self.nodes[i].data_dir).unwrap();
    }
}
