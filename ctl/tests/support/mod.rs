//! What the dynamoctl tests share: a cluster of `dynamo-node` processes on
//! loopback with tokens and separate internal ports (as on Kubernetes),
//! and running dynamoctl against one of its nodes.

// Each test binary (cli, backup) uses part of this module.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use dynamo_testkit::process::{NodeProcess, free_ports, node_binary, serve_command};
use serde_json::Value;

pub const ADMIN: &str = "admin-ctl-1";
pub const CLIENT: &str = "client-ctl-1";

/// A node of the test: client and internal address.
pub struct Node {
    pub id: String,
    pub client: String,
    pub internal: String,
}

pub fn auth_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (file, token) in [
        ("admin-token", ADMIN),
        ("peer-token", "peer-ctl-1"),
        ("client-token", CLIENT),
    ] {
        std::fs::write(dir.path().join(file), token).unwrap();
    }
    dir
}

pub fn nodes(count: usize) -> Vec<Node> {
    let ports = free_ports(2 * count);
    (0..count)
        .map(|i| Node {
            id: format!("n{}", i + 1),
            client: format!("127.0.0.1:{}", ports[2 * i]),
            internal: format!("127.0.0.1:{}", ports[2 * i + 1]),
        })
        .collect()
}

pub fn start(node: &Node, peers: &[Node], join: bool, data: &Path, auth: &Path) -> NodeProcess {
    let mut command = serve_command(
        &node_binary(),
        &node.id,
        &node.client,
        &format!("zone-{}", node.id),
        &data.join(&node.id),
    );
    command
        .args(["--internal-listen", &node.internal, "--partitions", "64"])
        .args(["--initial-cluster-state", "new", "--auth-dir"])
        .arg(auth)
        .args(dynamo_testkit::process::FAST_BACKGROUND);
    if join {
        command.arg("--join");
    }
    for peer in peers {
        command
            .arg("--peer")
            .arg(format!("{}={},zone-{}", peer.id, peer.internal, peer.id));
    }
    NodeProcess::spawn(&node.id, &mut command)
}

/// Runs dynamoctl against `node` with the client and admin tokens.
pub fn ctl(node: &Node, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dynamoctl"))
        .args(["--node", &node.client, "--admin", &node.internal])
        .args(["--token", CLIENT, "--admin-token", ADMIN])
        .args(args)
        .output()
        .expect("dynamoctl runs")
}

pub fn ok_json(output: &Output) -> Value {
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

/// A running cluster of the test and what it keeps on disk.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub processes: Vec<NodeProcess>,
    pub data: tempfile::TempDir,
}

/// Starts `count` nodes forming a new cluster, with the tokens in `auth`,
/// and waits until each is ready.
pub async fn cluster(count: usize, auth: &Path) -> Cluster {
    let data = tempfile::tempdir().unwrap();
    let nodes = nodes(count);
    let http = dynamo_testkit::http::http_client();
    let mut processes: Vec<_> = nodes
        .iter()
        .map(|node| start(node, &nodes, false, data.path(), auth))
        .collect();
    for (process, node) in processes.iter_mut().zip(&nodes) {
        process
            .wait_ready(&http, &format!("http://{}", node.client))
            .await;
    }
    Cluster {
        nodes,
        processes,
        data,
    }
}
