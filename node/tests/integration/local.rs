//! `dynamo-node local`: output prefixed with node ids, the ring's members
//! reported, a node that exits (kill -9) reported without stopping the
//! others, the printed command restarting it, and Ctrl-C stopping every
//! node it still runs.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dynamo_testkit::checks::wait_ready;
use dynamo_testkit::http::http_client;
use dynamo_testkit::process::free_port_run;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::StatusCode;

const EXE: &str = env!("CARGO_BIN_EXE_dynamo-node");

/// What a child process printed so far, read by a thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<String>>);

impl Captured {
    fn reading(from: impl Read + Send + 'static) -> Self {
        let captured = Captured::default();
        let text = captured.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(from).lines() {
                let Ok(line) = line else { return };
                let mut text = text.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        captured
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    /// Waits up to 60 s for a line for which `wanted` holds, and returns it.
    async fn wait_line(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(line) = self.text().lines().find(|l| wanted(l)) {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no line {what} in:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `local` and the node it was asked to restart, killed if the test fails.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}

/// The pid `local` printed for `id` (`  node2  http://...  (zone zone-b, pid 123)`).
async fn printed_pid(stdout: &Captured, id: &str) -> i32 {
    let line = stdout
        .wait_line(&format!("with the pid of {id}"), |l| {
            l.trim_start().starts_with(&format!("{id} ")) && l.contains(", pid ")
        })
        .await;
    let pid = line.rsplit(", pid ").next().unwrap().trim_end_matches(')');
    pid.parse().unwrap_or_else(|_| panic!("pid in {line:?}"))
}

async fn put(http: &reqwest::Client, url: &str, value: &str) -> StatusCode {
    http.put(url)
        .body(value.to_string())
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn local_keeps_the_others_running_when_a_node_dies_and_ctrl_c_stops_them() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_port_run(3);
    let mut local = Command::new(EXE)
        .args(["local", "--nodes", "3", "--base-port", &base.to_string()])
        .args(["--partitions", "64", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = Captured::reading(local.stdout.take().unwrap());
    let stderr = Captured::reading(local.stderr.take().unwrap());
    let local_pid = local.id() as i32;
    let mut processes = Processes(vec![local]);
    let http = http_client();
    let urls: Vec<String> = (0..3)
        .map(|i| format!("http://127.0.0.1:{}", base + i))
        .collect();

    // The members as node1 reports them, once every node is ready.
    stdout
        .wait_line("reporting the ring", |l| {
            l.starts_with("ring epoch 1 as node1") && l.ends_with("3 members")
        })
        .await;
    for (i, url) in urls.iter().enumerate() {
        let address = url.trim_start_matches("http://");
        let zone = ["zone-a", "zone-b", "zone-c"][i];
        let expected = format!("  member node{}  zone {zone}  {address}  ", i + 1);
        stdout
            .wait_line(&format!("listing node{}", i + 1), |l| {
                l.starts_with(&expected)
            })
            .await;
    }
    // Each node's log lines come with its id in front.
    for id in ["node1", "node2", "node3"] {
        stderr
            .wait_line(&format!("from {id}"), |l| {
                l.starts_with(&format!("{id} | "))
            })
            .await;
    }
    let pids = [
        printed_pid(&stdout, "node1").await,
        printed_pid(&stdout, "node2").await,
        printed_pid(&stdout, "node3").await,
    ];
    assert_eq!(
        put(&http, &format!("{}/v1/kv/before", urls[0]), "1").await,
        StatusCode::NO_CONTENT
    );

    // kill -9 one node: local says so and keeps the others running.
    kill(Pid::from_raw(pids[1]), Signal::SIGKILL).unwrap();
    stdout
        .wait_line("reporting node2's exit", |l| {
            l == "node2 exited (signal 9); the others keep running; Ctrl-C stops them"
        })
        .await;
    let restart = stdout
        .wait_line("with node2's restart command", |l| {
            l.contains(" serve --node-id node2 ")
        })
        .await;
    assert!(processes.0[0].try_wait().unwrap().is_none(), "local exited");
    for url in [&urls[0], &urls[2]] {
        let key = format!("{url}/v1/kv/while-node2-is-down?w=1");
        assert_eq!(put(&http, &key, "2").await, StatusCode::NO_CONTENT, "{url}");
    }
    let read = http
        .get(format!("{}/v1/kv/before?r=1", urls[2]))
        .send()
        .await
        .unwrap();
    assert_eq!(read.bytes().await.unwrap().as_ref(), b"1");

    // The printed command starts node2 again, on its data directory.
    let mut words = restart.split_whitespace();
    let exe = words.next().unwrap();
    let node2 = Command::new(exe)
        .args(words)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let node2_pid = node2.id() as i32;
    processes.0.push(node2);
    wait_ready(&http, &urls[1]).await;

    // Ctrl-C stops the nodes local runs, and local exits cleanly.
    kill(Pid::from_raw(local_pid), Signal::SIGINT).unwrap();
    let status = processes.0[0].wait().unwrap();
    assert!(status.success(), "local exited with {status}");
    for id in ["node1", "node3"] {
        let stopped = format!("{id} stopped");
        stdout.wait_line(&stopped, |l| l == stopped).await;
    }
    let printed = stdout.text();
    assert!(!printed.contains("node2 stopped"), "{printed}");
    for pid in [pids[0], pids[2]] {
        assert!(!alive(pid), "node process {pid} still running");
    }
    for url in [&urls[0], &urls[2]] {
        assert!(
            http.get(format!("{url}/healthz")).send().await.is_err(),
            "{url} still serving"
        );
    }
    assert!(
        alive(node2_pid),
        "the node restarted by hand is not local's"
    );
    for node in ["node1", "node2", "node3"] {
        assert!(
            dir.path().join(node).is_dir(),
            "{node} data directory missing"
        );
    }
}
