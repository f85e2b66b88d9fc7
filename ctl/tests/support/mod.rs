//! What the dynamoctl tests share: a cluster of `dynamo-node` processes on
//! loopback with tokens and separate internal ports (as on Kubernetes),
//! and running dynamoctl against one of its nodes.

// Each test binary (cli, backup) uses part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dynamo_testkit::pki::TestCa;
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

/// One node serving HTTPS only, with a certificate of its own test CA for
/// 127.0.0.1 and the tokens of [`auth_dir`]; N=R=W=1.
pub struct TlsNode {
    pub node: Node,
    pub process: NodeProcess,
    /// A client trusting the node's CA.
    pub https: reqwest::Client,
    /// `https://` and the client address.
    pub base: String,
    /// The CA's PEM file.
    pub ca_file: PathBuf,
    /// Data, auth and TLS directories.
    dirs: [tempfile::TempDir; 3],
}

/// Starts a [`TlsNode`] whose CA is named `ca_name` and waits until it is
/// ready.
pub async fn tls_node(ca_name: &str) -> TlsNode {
    let dirs = [
        tempfile::tempdir().unwrap(),
        auth_dir(),
        tempfile::tempdir().unwrap(),
    ];
    let [data, auth, tls] = &dirs;
    let ca = TestCa::new(ca_name);
    ca.write_tls_dir(tls.path(), &["127.0.0.1"]);
    let node = nodes(1).remove(0);
    let mut command = serve_command(
        &node_binary(),
        &node.id,
        &node.client,
        "z",
        &data.path().join("n"),
    );
    command
        .args(["--internal-listen", &node.internal, "--partitions", "64"])
        .arg("--auth-dir")
        .arg(auth.path())
        .arg("--tls-dir")
        .arg(tls.path())
        .args(["--n", "1", "--r", "1", "--w", "1"]);
    let mut process = NodeProcess::spawn(&node.id, &mut command);
    let https = dynamo_testkit::http::https_client(ca.pem());
    let base = format!("https://{}", node.client);
    process.wait_ready(&https, &base).await;
    TlsNode {
        ca_file: tls.path().join("ca.crt"),
        node,
        process,
        https,
        base,
        dirs,
    }
}
