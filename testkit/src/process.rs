//! Node processes for tests: the `dynamo-node` binary, free ports, the
//! `serve` command line every test starts from, and a process that is
//! killed when dropped.

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// `serve` flags for fast background work (anti-entropy, hinted handoff
/// and gossip every 300 ms, anti-entropy unthrottled), so convergence
/// takes seconds.
pub const FAST_BACKGROUND: [&str; 8] = [
    "--anti-entropy-interval-ms",
    "300",
    "--anti-entropy-keys-per-sec",
    "50000",
    "--handoff-interval-ms",
    "300",
    "--gossip-interval-ms",
    "300",
];

/// The `dynamo-node` binary of the target directory the running test was
/// built in: the test runs as `<target>/<profile>/deps/<test>-<hash>`, the
/// node is `<target>/<profile>/dynamo-node`. For tests of other packages,
/// which cargo does not make build it; the node's own integration tests
/// use `env!("CARGO_BIN_EXE_dynamo-node")`.
pub fn node_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from <target>/<profile>/deps");
    let binary = profile_dir.join(format!("dynamo-node{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build -p dynamo-node` first \
         (`cargo test --workspace`, as scripts/test.sh runs it, builds it)",
        binary.display()
    );
    binary
}

/// `binary serve` as node `node_id` of zone `zone`, listening for clients
/// on `listen` (`HOST:PORT`), with its data in `data_dir`, a 1 s request
/// timeout, warnings only in its log (on the test's stderr) and no stdin.
/// Callers add the rest of the flags.
pub fn serve_command(
    binary: &Path,
    node_id: &str,
    listen: &str,
    zone: &str,
    data_dir: &Path,
) -> Command {
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .args(["--node-id", node_id])
        .args(["--listen", listen])
        .args(["--zone", zone])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--request-timeout-ms", "1000"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    free_port_on(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// A port free on `ip` right now.
pub fn free_port_on(ip: IpAddr) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|listener| listener.local_addr())
        .unwrap_or_else(|e| panic!("no free port on {ip}: {e}"))
        .port()
}

/// `count` distinct ports free on 127.0.0.1 right now (all bound at once,
/// so none repeats).
pub fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("binding a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local address").port())
        .collect()
}

/// A base port such that `count` consecutive ports on 127.0.0.1 are free
/// right now.
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

/// A running node process, killed (SIGKILL) and reaped when dropped,
/// including when the test panics.
pub struct NodeProcess {
    name: String,
    child: Child,
}

impl NodeProcess {
    /// Spawns `command` as the process called `name` in messages.
    pub fn spawn(name: &str, command: &mut Command) -> NodeProcess {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        NodeProcess {
            name: name.to_string(),
            child,
        }
    }

    /// SIGKILL: no chance to flush anything. Returns once it is reaped.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("waiting for the killed process");
    }

    /// SIGTERM, then waits for the process to exit and asserts it exited
    /// cleanly.
    pub fn stop(mut self) {
        self.signal(Signal::SIGTERM);
        let status = self.child.wait().expect("waiting for the process");
        assert!(status.success(), "{} exited with {status}", self.name);
    }

    /// Pauses (SIGSTOP) or resumes (SIGCONT) the process.
    pub fn pause(&self, paused: bool) {
        self.signal(match paused {
            true => Signal::SIGSTOP,
            false => Signal::SIGCONT,
        });
    }

    /// Waits until the node answers `<url>/readyz` with 200; fails at once,
    /// with its exit status, if the process ends first.
    pub async fn wait_ready(&mut self, http: &reqwest::Client, url: &str) {
        crate::checks::wait_ready_unless(http, url, || {
            self.exited().map(|status| status.to_string())
        })
        .await;
    }

    /// The process id (to read its `/proc/<pid>/status`, say).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, once the process has ended.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("polling the process")
    }

    fn signal(&self, signal: Signal) {
        let pid = i32::try_from(self.child.id()).expect("pid fits i32");
        kill(Pid::from_raw(pid), signal)
            .unwrap_or_else(|e| panic!("{signal} to {}: {e}", self.name));
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        // After `kill` or `stop` it is reaped: both calls are no-ops then.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
