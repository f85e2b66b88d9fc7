//! `dynamo-node local`: a multi-node cluster on loopback, one OS process per
//! node, stopped cleanly with Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::config::available_cpus;
use crate::server::shutdown_signal;

/// Settings of the local cluster.
#[derive(Args, Debug, Clone)]
pub struct LocalArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Client port of the first node; node i listens on base-port + i.
    #[arg(long, default_value_t = 7001)]
    pub base_port: u16,
    /// Directory holding one data directory per node (kept between runs).
    #[arg(long, default_value = "dynamo-local-data")]
    pub data_dir: PathBuf,
    /// Replication factor N (at most the number of nodes).
    #[arg(long)]
    pub n: Option<usize>,
    /// Read quorum R.
    #[arg(long)]
    pub r: Option<usize>,
    /// Write quorum W.
    #[arg(long)]
    pub w: Option<usize>,
    /// Ring partitions Q.
    #[arg(long)]
    pub partitions: Option<u32>,
    /// Request threads per node (default: this machine's CPUs divided
    /// among the nodes, at least 1, so the nodes do not oversubscribe it).
    #[arg(long)]
    pub worker_threads: Option<usize>,
}

struct LocalNode {
    id: String,
    zone: String,
    url: String,
    child: Child,
}

/// Starts the nodes, prints their endpoints, waits for Ctrl-C, stops them.
pub async fn run(args: LocalArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.nodes >= 1, "--nodes must be at least 1");
    let last_port = usize::from(args.base_port) + args.nodes - 1;
    anyhow::ensure!(last_port <= usize::from(u16::MAX), "ports beyond 65535");
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    let specs = node_specs(&args);
    let mut nodes = start_nodes(&args, &specs, &data_dir)?;
    print_endpoints(&nodes, &data_dir);
    tokio::select! {
        _ = shutdown_signal() => {}
        (id, status) = first_exit(&mut nodes) => {
            eprintln!("{id} exited unexpectedly ({status}); stopping the others");
        }
    }
    stop_all(&mut nodes).await;
    Ok(())
}

/// One node of the cluster: its id, address and zone.
struct NodeSpec {
    id: String,
    address: String,
    zone: String,
}

/// Node i is `node{i+1}`, listens on base-port + i and has a zone of its
/// own (`zone-a`, `zone-b`, ...).
fn node_specs(args: &LocalArgs) -> Vec<NodeSpec> {
    (0..args.nodes)
        .map(|i| NodeSpec {
            id: format!("node{}", i + 1),
            address: format!("127.0.0.1:{}", usize::from(args.base_port) + i),
            zone: format!("zone-{}", (b'a' + (i % 26) as u8) as char),
        })
        .collect()
}

/// Starts one `dynamo-node serve` process per node, each listing every node
/// as a peer, with a data directory under `data_dir`.
fn start_nodes(
    args: &LocalArgs,
    specs: &[NodeSpec],
    data_dir: &Path,
) -> anyhow::Result<Vec<LocalNode>> {
    let exe = std::env::current_exe().context("locating the dynamo-node executable")?;
    let worker_threads = args
        .worker_threads
        .unwrap_or_else(|| (available_cpus() / args.nodes).max(1));
    let mut nodes = Vec::new();
    for spec in specs {
        let id = &spec.id;
        let mut command = Command::new(&exe);
        command
            .arg("serve")
            .args([
                "--node-id",
                id,
                "--listen",
                &spec.address,
                "--zone",
                &spec.zone,
            ])
            .arg("--data-dir")
            .arg(data_dir.join(id))
            // All nodes start together: empty data directories are a new
            // cluster, not lost data.
            .args(["--initial-cluster-state", "new"]);
        for peer in specs {
            command
                .arg("--peer")
                .arg(format!("{}={},{}", peer.id, peer.address, peer.zone));
        }
        for (flag, value) in [("--n", args.n), ("--r", args.r), ("--w", args.w)] {
            if let Some(value) = value {
                command.arg(flag).arg(value.to_string());
            }
        }
        command
            .arg("--worker-threads")
            .arg(worker_threads.to_string());
        if let Some(q) = args.partitions {
            command.arg("--partitions").arg(q.to_string());
        }
        command.stdin(Stdio::null()).kill_on_drop(true);
        let child = command.spawn().with_context(|| format!("starting {id}"))?;
        nodes.push(LocalNode {
            id: id.clone(),
            zone: spec.zone.clone(),
            url: format!("http://{}", spec.address),
            child,
        });
    }
    Ok(nodes)
}

/// Prints where the nodes serve and how to try them.
fn print_endpoints(nodes: &[LocalNode], data_dir: &Path) {
    println!(
        "dynamo local cluster: {} nodes, data under {}",
        nodes.len(),
        data_dir.display()
    );
    for node in nodes {
        println!("  {}  {}  (zone {})", node.id, node.url, node.zone);
    }
    if let Some(first) = nodes.first() {
        println!(
            "try:  curl -X PUT --data-binary hello {}/v1/kv/greeting",
            first.url
        );
        println!(
            "      curl -i {}/v1/kv/greeting",
            nodes.last().map_or(&first.url, |n| &n.url)
        );
    }
    println!("Ctrl-C stops all nodes.");
}

async fn first_exit(nodes: &mut [LocalNode]) -> (String, String) {
    let waits = nodes.iter_mut().map(|n| {
        Box::pin(async move {
            let status = n.child.wait().await;
            (
                n.id.clone(),
                status.map_or_else(|e| e.to_string(), |s| s.to_string()),
            )
        })
    });
    futures::future::select_all(waits).await.0
}

async fn stop_all(nodes: &mut [LocalNode]) {
    for node in nodes.iter() {
        if let Some(pid) = node.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
    for node in nodes.iter_mut() {
        match tokio::time::timeout(Duration::from_secs(10), node.child.wait()).await {
            Ok(_) => println!("{} stopped", node.id),
            Err(_) => {
                let _ = node.child.kill().await;
                println!("{} killed after 10 s", node.id);
            }
        }
    }
}
