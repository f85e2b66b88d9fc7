//! Three `dynamo-node` processes on loopback for the client's tests, each
//! on its own IP (127.0.B.i) behind a fault proxy, so a test can cut one
//! off from the others.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use dynamo_testkit::pki::TestCa;
use dynamo_testkit::process::{
    FAST_BACKGROUND, NodeProcess, free_port_on, node_binary, serve_command,
};
use dynamo_testkit::proxy::FaultProxy;

/// One node: where it serves clients and how to start it again.
pub struct Node {
    pub id: String,
    pub ip: IpAddr,
    pub port: u16,
    internal_port: u16,
    process: Option<NodeProcess>,
}

/// A running cluster of three nodes (n = 3, r = w = 2).
pub struct Cluster {
    pub nodes: Vec<Node>,
    proxies: Vec<FaultProxy>,
    peers: Vec<String>,
    extra: Vec<String>,
    scheme: &'static str,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts three nodes with extra `serve` flags; serving TLS with a
    /// certificate of `ca` for their IPs when given.
    pub async fn start(extra: &[&str], ca: Option<&TestCa>) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let subnet = rand::random_range(1..=254u8);
        let mut nodes = Vec::new();
        let mut proxies = Vec::new();
        let mut peers = Vec::new();
        for i in 1..=3u8 {
            let ip = IpAddr::V4(Ipv4Addr::new(127, 0, subnet, i));
            let internal_port = free_port_on(ip);
            let proxy = FaultProxy::start(ip, SocketAddr::new(ip, internal_port)).await;
            peers.push(format!("n{i}={},z{i}", proxy.address));
            proxies.push(proxy);
            nodes.push(Node {
                id: format!("n{i}"),
                ip,
                port: free_port_on(ip),
                internal_port,
                process: None,
            });
        }
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if let Some(ca) = ca {
            let ips: Vec<String> = nodes.iter().map(|n| n.ip.to_string()).collect();
            let names: Vec<&str> = ips.iter().map(String::as_str).collect();
            let tls_dir = dir.path().join("tls");
            ca.write_tls_dir(&tls_dir, &names);
            extra.extend(["--tls-dir".to_string(), tls_dir.display().to_string()]);
        }
        let mut cluster = Cluster {
            nodes,
            proxies,
            peers,
            extra,
            scheme: if ca.is_some() { "https" } else { "http" },
            http: match ca {
                Some(ca) => dynamo_testkit::http::https_client(ca.pem()),
                None => dynamo_testkit::http::http_client(),
            },
            dir,
        };
        for i in 0..3 {
            cluster.spawn(i);
        }
        for i in 0..3 {
            cluster.wait_ready(i).await;
        }
        cluster
    }

    /// Node `i`'s client URL.
    pub fn url(&self, i: usize) -> String {
        let node = &self.nodes[i];
        format!("{}://{}:{}", self.scheme, node.ip, node.port)
    }

    /// Every node's client URL.
    pub fn urls(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|i| self.url(i)).collect()
    }

    fn spawn(&mut self, i: usize) {
        let node = &self.nodes[i];
        let data_dir = self.dir.path().join(&node.id);
        let mut command = serve_command(
            &binary(),
            &node.id,
            &format!("{}:{}", node.ip, node.port),
            &format!("z{}", i + 1),
            Path::new(&data_dir),
        );
        command
            .args([
                "--internal-listen",
                &format!("{}:{}", node.ip, node.internal_port),
            ])
            .args(["--partitions", "64", "--initial-cluster-state", "new"])
            .args(FAST_BACKGROUND)
            .args(&self.extra);
        for peer in &self.peers {
            command.arg("--peer").arg(peer);
        }
        self.nodes[i].process = Some(NodeProcess::spawn(&node.id, &mut command));
    }

    async fn wait_ready(&mut self, i: usize) {
        let url = self.url(i);
        let process = self.nodes[i].process.as_mut().expect("started");
        process.wait_ready(&self.http, &url).await;
    }

    /// Stops node `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        if let Some(process) = self.nodes[i].process.take() {
            process.kill();
        }
    }

    /// Starts node `i` again on its data.
    pub async fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.wait_ready(i).await;
    }

    /// Cuts node `i` off from the others (or heals the cut): its proxy
    /// refuses everyone, the others' refuse it. Clients still reach it.
    pub fn isolate(&self, i: usize, cut: bool) {
        self.proxies[i].set_isolated(cut);
        for (j, proxy) in self.proxies.iter().enumerate() {
            if j != i {
                proxy.set_blocked(self.nodes[i].ip, cut);
            }
        }
    }

    /// Node `i`'s `/metrics` text.
    pub async fn metrics(&self, i: usize) -> String {
        self.http
            .get(format!("{}/metrics", self.url(i)))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// The `dynamo-node` to run: `$DYNAMO_NODE_BIN` when set (scripts/test.sh
/// sets it), else the one next to the test executable.
fn binary() -> PathBuf {
    match std::env::var_os("DYNAMO_NODE_BIN") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => node_binary(),
    }
}

/// The sum of the series whose text starts with `prefix` (every outcome
/// of an operation, say).
pub fn series_sum(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix(prefix))
        .filter_map(|rest| rest.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// The value of the series `name{labels}` in a metrics text (0 if absent).
pub fn series(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}
