//! A real S3-compatible server for tests: SeaweedFS's all-in-one
//! `weed mini` (master, volume server, filer and S3 gateway in one
//! process), built from its published Go module by
//! `testbed/build-go-tool.sh testbed/seaweedfs`. It listens on free
//! loopback ports, keeps its data in a temporary directory, enforces one
//! static identity ([`ACCESS_KEY`], [`SECRET_KEY`], every action), and has
//! one bucket ([`BUCKET`]) before [`S3Server::start`] returns. It is killed
//! when dropped.
//!
//! Path-style requests (`http://127.0.0.1:PORT/BUCKET/KEY`) are what tests
//! use. Virtual-host requests (`BUCKET.localhost:PORT`) are served too, but
//! `*.localhost` names only resolve on machines whose resolver maps them to
//! loopback (glibc does not by itself).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::process::free_ports;

/// The access key of the server's only identity.
pub const ACCESS_KEY: &str = "DYNAMOTESTACCESSKEY1";
/// The secret key of the server's only identity.
pub const SECRET_KEY: &str = "dynamo-test-secret-key-for-loopback-only";
/// The region clients sign for (the server accepts any).
pub const REGION: &str = "us-east-1";
/// The bucket that exists when [`S3Server::start`] returns.
pub const BUCKET: &str = "dynamo-backups";

/// How long [`S3Server::start`] and [`S3Server::restart`] wait for the
/// server to be ready: about 5 s on an idle 2-core machine, 15-20 s after
/// a restart (the master's warm-up).
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// The `weed` binary: `$DYNAMO_WEED_BIN` when set, else what
/// `testbed/build-go-tool.sh testbed/seaweedfs` prints (it builds the
/// binary once per machine, about 11 minutes cold on 2 cores, then returns
/// at once). Blocks; looked up once per test process.
pub fn weed_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(find_weed_binary).clone()
}

fn find_weed_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("DYNAMO_WEED_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "DYNAMO_WEED_BIN={} is not a file",
            path.display()
        );
        return path;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit/ is inside the workspace root");
    let script = root.join("testbed/build-go-tool.sh");
    // Its progress goes to the test's stderr, the bin directory to stdout.
    let output = Command::new(&script)
        .arg(root.join("testbed/seaweedfs"))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} testbed/seaweedfs exited with {}",
        script.display(),
        output.status
    );
    let bin_dir = String::from_utf8(output.stdout).expect("bin directory in UTF-8");
    let binary = Path::new(bin_dir.trim()).join("weed");
    assert!(
        binary.is_file(),
        "{} is missing after the build",
        binary.display()
    );
    binary
}

/// The ports one server listens on, all on 127.0.0.1.
#[derive(Clone, Copy, Debug)]
struct Ports {
    master: u16,
    master_grpc: u16,
    volume: u16,
    volume_grpc: u16,
    filer: u16,
    filer_grpc: u16,
    s3: u16,
    s3_grpc: u16,
    admin: u16,
    admin_grpc: u16,
}

impl Ports {
    fn free() -> Ports {
        let p = free_ports(10);
        Ports {
            master: p[0],
            master_grpc: p[1],
            volume: p[2],
            volume_grpc: p[3],
            filer: p[4],
            filer_grpc: p[5],
            s3: p[6],
            s3_grpc: p[7],
            admin: p[8],
            admin_grpc: p[9],
        }
    }
}

/// A running SeaweedFS S3 server. SIGKILLed and reaped when dropped,
/// including when the test panics; its directory is removed then.
pub struct S3Server {
    binary: PathBuf,
    /// Holds `data/`, `logs/`, `s3.json` and the filer's and gateway's
    /// Unix sockets.
    dir: tempfile::TempDir,
    ports: Ports,
    child: Option<Child>,
}

impl S3Server {
    /// Starts a server (building `weed` first if needed, see
    /// [`weed_binary`]) and waits until it answers S3 requests and
    /// [`BUCKET`] exists.
    pub async fn start() -> S3Server {
        let binary = tokio::task::spawn_blocking(weed_binary)
            .await
            .expect("looking up the weed binary");
        let dir = tempfile::Builder::new()
            .prefix("dynamo-s3-")
            .tempdir()
            .expect("temporary directory for the S3 server");
        for sub in ["data", "logs"] {
            std::fs::create_dir(dir.path().join(sub))
                .unwrap_or_else(|e| panic!("creating {sub}/ in {}: {e}", dir.path().display()));
        }
        let identities = serde_json::json!({
            "identities": [{
                "name": "dynamo-test",
                "credentials": [{ "accessKey": ACCESS_KEY, "secretKey": SECRET_KEY }],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }]
        });
        let config = dir.path().join("s3.json");
        std::fs::write(&config, identities.to_string())
            .unwrap_or_else(|e| panic!("writing {}: {e}", config.display()));
        let mut server = S3Server {
            binary,
            dir,
            ports: Ports::free(),
            child: None,
        };
        server.spawn();
        server.wait_ready().await;
        server
    }

    /// `http://127.0.0.1:PORT`, the S3 endpoint (path-style requests).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.s3)
    }

    /// The bucket created at start ([`BUCKET`]).
    pub fn bucket(&self) -> &str {
        BUCKET
    }

    /// The only access key the server accepts ([`ACCESS_KEY`]).
    pub fn access_key(&self) -> &str {
        ACCESS_KEY
    }

    /// The secret key of [`Self::access_key`] ([`SECRET_KEY`]).
    pub fn secret_key(&self) -> &str {
        SECRET_KEY
    }

    /// The region to sign for ([`REGION`]).
    pub fn region(&self) -> &str {
        REGION
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: the target becomes unavailable at once (connections
    /// refused). Returns once the process is reaped; the data stays for
    /// [`Self::restart`]. A no-op when it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL to weed");
            child.wait().expect("waiting for the killed weed");
        }
    }

    /// Starts the server again (after [`Self::kill`], or kills it first) on
    /// the same ports and data, and waits until it accepts writes again:
    /// objects written before are still there. Takes 15-20 s, most of it
    /// the master's warm-up (3 heartbeat pulses of 5 s) before it assigns
    /// new file ids. Panics if another process took one of the ports
    /// meanwhile.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_ready().await;
    }

    /// `weed mini` as documented in testbed/README.md: everything on
    /// 127.0.0.1, no WebDAV, Iceberg or Lance listeners, no telemetry,
    /// only errors on stderr (the rest in `logs/`), buckets created only
    /// explicitly (`-s3.autoCreateBucket=false`), virtual-host requests
    /// under `localhost`.
    fn spawn(&mut self) {
        let dir = self.dir.path();
        let p = self.ports;
        let mut command = Command::new(&self.binary);
        command
            .current_dir(dir)
            .arg(format!("-logdir={}", dir.join("logs").display()))
            .args(["-alsologtostderr=false", "-stderrthreshold=ERROR", "mini"])
            .arg(format!("-dir={}", dir.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={}", p.master))
            .arg(format!("-master.port.grpc={}", p.master_grpc))
            .arg("-master.telemetry=false")
            .arg(format!("-volume.port={}", p.volume))
            .arg(format!("-volume.port.grpc={}", p.volume_grpc))
            .arg(format!("-filer.port={}", p.filer))
            .arg(format!("-filer.port.grpc={}", p.filer_grpc))
            .arg(format!(
                "-filer.localSocket={}",
                dir.join("filer.sock").display()
            ))
            .arg(format!("-s3.port={}", p.s3))
            .arg(format!("-s3.port.grpc={}", p.s3_grpc))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg(format!("-s3.localSocket={}", dir.join("s3.sock").display()))
            .arg(format!("-s3.config={}", dir.join("s3.json").display()))
            .args(["-s3.autoCreateBucket=false", "-s3.domainName=localhost"])
            .args(["-webdav=false", "-admin.ui=false", "-admin.port.legacy=0"])
            .arg(format!("-admin.port={}", p.admin))
            .arg(format!("-admin.port.grpc={}", p.admin_grpc))
            .arg(format!("-bucket={BUCKET}"))
            // The sentry client in weed reports only if this names a DSN.
            .env_remove("SENTRY_DSN")
            .stdin(Stdio::null())
            // A progress table and a welcome banner.
            .stdout(Stdio::null());
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", self.binary.display()));
        self.child = Some(child);
    }

    /// Waits until the S3 gateway answers `/healthz`, the filer has
    /// [`BUCKET`], and the master is past its warm-up (it answers a lookup
    /// of an unknown volume with 404, not 503); fails at once if the process
    /// ends first.
    async fn wait_ready(&mut self) {
        let http = crate::http::builder(None)
            .timeout(Duration::from_secs(2))
            .build()
            .expect("HTTP client");
        let p = self.ports;
        let probes = [
            (format!("http://127.0.0.1:{}/healthz", p.s3), StatusCode::OK),
            (
                format!("http://127.0.0.1:{}/buckets/{BUCKET}/", p.filer),
                StatusCode::OK,
            ),
            (
                format!(
                    "http://127.0.0.1:{}/dir/lookup?volumeId=4294967295",
                    p.master
                ),
                StatusCode::NOT_FOUND,
            ),
        ];
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut next = 0;
        while next < probes.len() {
            let (url, want) = &probes[next];
            let status = http.get(url).send().await.map(|r| r.status());
            if status.as_ref().is_ok_and(|s| s == want) {
                next += 1;
                continue;
            }
            let child = self.child.as_mut().expect("weed was spawned");
            if let Some(exit) = child.try_wait().expect("polling weed") {
                panic!("weed mini exited with {exit} before it was ready (its errors are above)");
            }
            assert!(
                Instant::now() < deadline,
                "weed mini not ready after {READY_TIMEOUT:?}: {url} answered {status:?}, not {want}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // weed puts its internal gRPC sockets in /tmp whatever the flags,
        // named after the ports; a killed weed leaves them behind.
        let p = self.ports;
        for (service, port) in [
            ("master", p.master_grpc),
            ("volume", p.volume_grpc),
            ("filer", p.filer_grpc),
            ("s3", p.s3_grpc),
            ("admin", p.admin_grpc),
        ] {
            let _ = std::fs::remove_file(format!("/tmp/seaweedfs-{service}-grpc-{port}.sock"));
        }
    }
}
