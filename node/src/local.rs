//! `dynamo-node local`: a multi-node cluster on loopback, one OS process per
//! node, for experiments. Each node's output is prefixed with its id; once
//! the nodes are ready the members of the ring (as a node reports them)
//! are printed; a node that exits is reported with the command that
//! restarts it, and the others keep running until Ctrl-C (or SIGTERM)
//! stops them all.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::available_cpus;
use crate::server::shutdown_signal;

/// How long `local` waits for every node to be ready before it reads the
/// ring from whichever answers.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long `local` then waits for the node it asks to see every member
/// alive (gossip takes a few rounds).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

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

/// A started node process.
struct LocalNode {
    id: String,
    zone: String,
    address: String,
    /// The `serve` arguments that restart the node by hand (without
    /// `--initial-cluster-state new`: a restarted node on an empty data
    /// directory then receives its data from the other replicas).
    serve_args: Vec<String>,
    child: Child,
    pid: Option<u32>,
    exited: bool,
}

impl LocalNode {
    fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

/// Starts the nodes, prints their endpoints and then the ring's members,
/// reports nodes that exit, and stops the rest on Ctrl-C or SIGTERM.
/// Fails when every node has exited.
pub async fn run(args: LocalArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.nodes >= 1, "--nodes must be at least 1");
    let last_port = usize::from(args.base_port) + args.nodes - 1;
    anyhow::ensure!(last_port <= usize::from(u16::MAX), "ports beyond 65535");
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let data_dir = args
        .data_dir
        .canonicalize()
        .with_context(|| format!("resolving {}", args.data_dir.display()))?;
    let specs = node_specs(&args);
    let (mut nodes, outputs) = start_nodes(&args, &specs, &data_dir)?;
    print_endpoints(&nodes, &data_dir);
    let all_exited = supervise(&mut nodes).await;
    stop_all(&mut nodes).await;
    for output in outputs {
        // The relays end when the nodes close their output; a node's own
        // child could keep it open, so do not wait forever.
        let _ = tokio::time::timeout(Duration::from_secs(2), output).await;
    }
    anyhow::ensure!(!all_exited, "every node has exited");
    Ok(())
}

/// Reports the ring's members once the nodes are ready and every node
/// that exits, until Ctrl-C or SIGTERM (false) or until every node has
/// exited (true).
async fn supervise(nodes: &mut [LocalNode]) -> bool {
    let mut stop = std::pin::pin!(shutdown_signal());
    let addresses = nodes.iter().map(|n| n.address.clone()).collect();
    let mut members = std::pin::pin!(report_members(addresses));
    let mut members_reported = false;
    loop {
        if nodes.iter().all(|n| n.exited) {
            println!("every node has exited");
            return true;
        }
        tokio::select! {
            _ = &mut stop => return false,
            () = &mut members, if !members_reported => members_reported = true,
            (i, status) = next_exit(nodes) => {
                nodes[i].exited = true;
                report_exit(&nodes[i], &status);
            }
        }
    }
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

/// The `dynamo-node serve` arguments of one node: every node is a peer,
/// its data directory is under `data_dir`.
fn serve_args(
    args: &LocalArgs,
    spec: &NodeSpec,
    specs: &[NodeSpec],
    data_dir: &Path,
    worker_threads: usize,
) -> Vec<String> {
    let mut argv: Vec<String> = vec![
        "serve".into(),
        "--node-id".into(),
        spec.id.clone(),
        "--listen".into(),
        spec.address.clone(),
        "--zone".into(),
        spec.zone.clone(),
        "--data-dir".into(),
        data_dir.join(&spec.id).display().to_string(),
    ];
    for peer in specs {
        argv.push("--peer".into());
        argv.push(format!("{}={},{}", peer.id, peer.address, peer.zone));
    }
    for (flag, value) in [("--n", args.n), ("--r", args.r), ("--w", args.w)] {
        if let Some(value) = value {
            argv.extend([flag.to_string(), value.to_string()]);
        }
    }
    argv.extend(["--worker-threads".into(), worker_threads.to_string()]);
    if let Some(q) = args.partitions {
        argv.extend(["--partitions".into(), q.to_string()]);
    }
    argv
}

/// Starts one `dynamo-node serve` process per node, its stdout and stderr
/// relayed line by line with its id in front (the relay tasks are
/// returned).
fn start_nodes(
    args: &LocalArgs,
    specs: &[NodeSpec],
    data_dir: &Path,
) -> anyhow::Result<(Vec<LocalNode>, Vec<JoinHandle<()>>)> {
    let exe = std::env::current_exe().context("locating the dynamo-node executable")?;
    let worker_threads = args
        .worker_threads
        .unwrap_or_else(|| (available_cpus() / args.nodes).max(1));
    let width = specs.iter().map(|s| s.id.len()).max().unwrap_or(0);
    let mut nodes = Vec::new();
    let mut outputs = Vec::new();
    for spec in specs {
        let id = &spec.id;
        let argv = serve_args(args, spec, specs, data_dir, worker_threads);
        let mut child = Command::new(&exe)
            .args(&argv)
            // All nodes start together: empty data directories are a new
            // cluster, not lost data.
            .args(["--initial-cluster-state", "new"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {id} ({})", exe.display()))?;
        let prefix = format!("{id:<width$} | ");
        if let Some(stdout) = child.stdout.take() {
            outputs.push(tokio::spawn(relay(stdout, prefix.clone(), Sink::Stdout)));
        }
        if let Some(stderr) = child.stderr.take() {
            outputs.push(tokio::spawn(relay(stderr, prefix, Sink::Stderr)));
        }
        nodes.push(LocalNode {
            id: id.clone(),
            zone: spec.zone.clone(),
            address: spec.address.clone(),
            serve_args: argv,
            pid: child.id(),
            child,
            exited: false,
        });
    }
    Ok((nodes, outputs))
}

/// Where a relayed line goes.
#[derive(Clone, Copy)]
enum Sink {
    Stdout,
    Stderr,
}

/// Copies `from` line by line to `sink`, each line after `prefix`.
async fn relay(from: impl AsyncRead + Unpin, prefix: String, sink: Sink) {
    use std::io::Write as _;
    let mut reader = BufReader::new(from);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.last() != Some(&b'\n') {
            line.push(b'\n');
        }
        let mut out = prefix.clone().into_bytes();
        out.extend_from_slice(&line);
        // A closed stdout or stderr of `local` drops the line; the node
        // keeps running.
        let _ = match sink {
            Sink::Stdout => std::io::stdout().lock().write_all(&out),
            Sink::Stderr => std::io::stderr().lock().write_all(&out),
        };
    }
}

/// Prints where the nodes serve, their process ids and how to try them.
fn print_endpoints(nodes: &[LocalNode], data_dir: &Path) {
    println!(
        "dynamo local cluster: {} nodes, data under {}",
        nodes.len(),
        data_dir.display()
    );
    for node in nodes {
        let pid = node.pid.map_or_else(|| "?".to_string(), |p| p.to_string());
        println!(
            "  {}  {}  (zone {}, pid {pid})",
            node.id,
            node.url(),
            node.zone
        );
    }
    if let (Some(first), Some(last)) = (nodes.first(), nodes.last()) {
        println!(
            "try:  curl -X PUT --data-binary hello {}/v1/kv/greeting",
            first.url()
        );
        println!("      curl -i {}/v1/kv/greeting", last.url());
        println!("      open {}/ui/ (the status page)", first.url());
    }
    println!("Ctrl-C stops all nodes.");
}

/// Waits until every node is ready (or [`READY_TIMEOUT`] has passed),
/// then prints the ring's members as the first node that answers
/// `GET /v1/status` reports them, once it sees them all alive (or after
/// [`SETTLE_TIMEOUT`], as it sees them then).
async fn report_members(addresses: Vec<String>) {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut waiting = addresses.clone();
    while !waiting.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for address in waiting {
            if !matches!(http_get(&address, "/readyz").await, Ok((200, _))) {
                still.push(address);
            }
        }
        waiting = still;
        if !waiting.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let settled = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let mut failures = Vec::new();
        let mut seen = None;
        for address in &addresses {
            match status(address).await {
                Ok(status) => {
                    seen = Some((address, status));
                    break;
                }
                Err(error) => failures.push(format!("{address}: {error:#}")),
            }
        }
        match seen {
            Some((address, status)) if all_alive(&status) || Instant::now() >= settled => {
                print!("{}", members_text(address, &status));
                return;
            }
            Some(_) => {}
            None if Instant::now() >= settled => {
                println!(
                    "could not read the ring from any node ({})",
                    failures.join("; ")
                );
                return;
            }
            None => {}
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether a node's status sees every member alive.
fn all_alive(status: &serde_json::Value) -> bool {
    status["members"]
        .as_array()
        .is_some_and(|members| members.iter().all(|m| m["state"] == "alive"))
}

/// `GET /v1/status` of the node at `address`.
async fn status(address: &str) -> anyhow::Result<serde_json::Value> {
    let (code, body) = http_get(address, "/v1/status").await?;
    anyhow::ensure!(code == 200, "GET /v1/status answered {code}");
    serde_json::from_slice(&body).context("GET /v1/status: not JSON")
}

/// The ring's members as a node's status reports them, one line each:
/// id, zone, address and the state the node sees.
fn members_text(address: &str, status: &serde_json::Value) -> String {
    let field = |v: &serde_json::Value, name: &str| match &v[name] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    let members = status["members"].as_array().map_or(&[][..], Vec::as_slice);
    let mut text = format!(
        "ring epoch {} as {} ({address}) sees it: {} members\n",
        field(&status["ring"], "epoch"),
        field(status, "node_id"),
        members.len()
    );
    for member in members {
        text.push_str(&format!(
            "  member {}  zone {}  {}  {}\n",
            field(member, "id"),
            field(member, "zone"),
            field(member, "address"),
            field(member, "state"),
        ));
    }
    text
}

/// Largest response [`http_get`] reads.
const MAX_RESPONSE: u64 = 1 << 20;

/// `GET path` from the node at `address` over plain HTTP/1.0 (the
/// connection closes after the response): the status code and the body.
async fn http_get(address: &str, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.take(MAX_RESPONSE).read_to_end(&mut response).await?;
        anyhow::Ok(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .with_context(|| format!("GET {path} from {address}: no answer in 5 s"))?
        .with_context(|| format!("GET {path} from {address}"))?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Response::new(&mut headers);
    match parsed.parse(&response) {
        Ok(httparse::Status::Complete(head)) => {
            Ok((parsed.code.unwrap_or_default(), response[head..].to_vec()))
        }
        Ok(httparse::Status::Partial) => anyhow::bail!("GET {path}: incomplete response"),
        Err(error) => anyhow::bail!("GET {path}: malformed response: {error}"),
    }
}

/// The index and exit status of the next node (of those still running)
/// to exit. Pending forever when none is running.
async fn next_exit(nodes: &mut [LocalNode]) -> (usize, String) {
    let waits: Vec<_> = nodes
        .iter_mut()
        .enumerate()
        .filter(|(_, n)| !n.exited)
        .map(|(i, n)| {
            Box::pin(async move {
                let status = n.child.wait().await;
                (i, status.map_or_else(|e| e.to_string(), describe))
            })
        })
        .collect();
    if waits.is_empty() {
        return std::future::pending().await;
    }
    futures::future::select_all(waits).await.0
}

/// `signal 9` or `exit code 1`.
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// Tells that a node exited and how to start it again by hand.
fn report_exit(node: &LocalNode, status: &str) {
    let exe = std::env::current_exe()
        .map_or_else(|_| "dynamo-node".to_string(), |p| p.display().to_string());
    println!(
        "{} exited ({status}); the others keep running; Ctrl-C stops them",
        node.id
    );
    println!(
        "  restart it by hand (Ctrl-C here does not stop it then):\n  {} {}",
        shell_word(&exe),
        node.serve_args
            .iter()
            .map(|a| shell_word(a))
            .collect::<Vec<_>>()
            .join(" ")
    );
}

/// `word` as one word for a POSIX shell: as it is when it has only safe
/// characters, else in single quotes.
fn shell_word(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./=,:@%+".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Sends SIGTERM to every running node and waits up to 10 s for each,
/// then kills what is left.
async fn stop_all(nodes: &mut [LocalNode]) {
    for node in nodes.iter().filter(|n| !n.exited) {
        if let Some(pid) = node.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
    for node in nodes.iter_mut().filter(|n| !n.exited) {
        match tokio::time::timeout(Duration::from_secs(10), node.child.wait()).await {
            Ok(_) => println!("{} stopped", node.id),
            Err(_) => {
                let _ = node.child.kill().await;
                println!("{} killed after 10 s", node.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_listed_one_per_line() {
        let status = serde_json::json!({
            "node_id": "node1",
            "ring": {"epoch": 3},
            "members": [
                {"id": "node1", "zone": "zone-a", "address": "127.0.0.1:7001", "state": "alive"},
                {"id": "node2", "zone": "zone-b", "address": null, "state": "down"}
            ]
        });
        assert_eq!(
            members_text("127.0.0.1:7001", &status),
            "ring epoch 3 as node1 (127.0.0.1:7001) sees it: 2 members\n\
             \x20 member node1  zone zone-a  127.0.0.1:7001  alive\n\
             \x20 member node2  zone zone-b  -  down\n"
        );
    }

    #[test]
    fn restart_commands_quote_what_a_shell_would_split() {
        assert_eq!(shell_word("--peer"), "--peer");
        assert_eq!(
            shell_word("node1=127.0.0.1:7001,zone-a"),
            "node1=127.0.0.1:7001,zone-a"
        );
        assert_eq!(shell_word("/tmp/my data"), "'/tmp/my data'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn exit_statuses_name_the_signal_or_the_code() {
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(describe(ExitStatus::from_raw(9)), "signal 9");
        assert_eq!(describe(ExitStatus::from_raw(1 << 8)), "exit code 1");
    }
}
