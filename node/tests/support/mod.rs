//! A cluster of real `dynamo-node` processes on loopback for tests.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dynamo_node::config::Peer;
use dynamo_node::transport::{Request, Response, Transport};
use dynamo_node::version::Object;
use dynamo_ring::Member;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::StatusCode;

pub const CONTEXT: &str = "x-dynamo-context";

/// One node process and how to restart it.
pub struct TestNode {
    pub id: String,
    pub port: u16,
    pub data_dir: PathBuf,
    child: Option<Child>,
}

/// N node processes that share a peer list.
pub struct TestCluster {
    pub nodes: Vec<TestNode>,
    peers: Vec<String>,
    extra: Vec<String>,
    _dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
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
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = http.get(format!("{url}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status() == StatusCode::OK) {
            return;
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
        let dir = tempfile::tempdir().unwrap();
        let nodes: Vec<TestNode> = (0..count)
            .map(|i| TestNode {
                id: format!("n{}", i + 1),
                port: free_port(),
                data_dir: dir.path().join(format!("n{}", i + 1)),
                child: None,
            })
            .collect();
        let peers = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{}=127.0.0.1:{},zone-{}", n.id, n.port, i))
            .collect();
        let mut cluster = Self {
            nodes,
            peers,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            _dir: dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        };
        for i in 0..count {
            cluster.spawn(i);
        }
        for i in 0..count {
            cluster.wait_ready(i).await;
        }
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let node = &self.nodes[i];
        let mut command = Command::new(env!("CARGO_BIN_EXE_dynamo-node"));
        command
            .arg("serve")
            .args(["--node-id", &node.id])
            .args(["--listen", &format!("127.0.0.1:{}", node.port)])
            .args(["--zone", &format!("zone-{i}")])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--request-timeout-ms", "1000"])
            .args(&self.extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        for peer in &self.peers {
            command.arg("--peer").arg(peer);
        }
        let child = command.spawn().expect("spawning dynamo-node");
        self.nodes[i].child = Some(child);
    }

    pub fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].port)
    }

    pub fn kv(&self, i: usize, key: &str) -> String {
        format!("{}/v1/kv/{}", self.url(i), key)
    }

    /// Waits until node `i` answers `/readyz`.
    pub async fn wait_ready(&self, i: usize) {
        wait_ready(&self.http, &self.url(i)).await;
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
            let body: serde_json::Value = r.json().await.unwrap();
            body["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| {
                    use base64::Engine;
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(v.as_str().unwrap())
                        .unwrap();
                    String::from_utf8(bytes).unwrap()
                })
                .collect()
        } else {
            Vec::new()
        };
        (status, context, values)
    }
}

impl TestCluster {
    /// Node `i`'s own stored state of `key`, read over the node-to-node
    /// transport (no quorum, no repair).
    pub async fn replica(&self, i: usize, key: &str) -> Option<Object> {
        let transport = Transport::new(Duration::from_secs(5));
        let peer = Peer {
            member: Member {
                id: self.nodes[i].id.clone(),
                zone: String::new(),
            },
            address: format!("127.0.0.1:{}", self.nodes[i].port),
        };
        let request = Request::ReplicaRead {
            key: Bytes::from(key.to_string()),
        };
        match transport.call(&peer, &request).await.unwrap() {
            Response::Object(object) => object,
            other => panic!("unexpected reply {other:?}"),
        }
    }
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
