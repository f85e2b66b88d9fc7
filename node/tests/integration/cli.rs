//! The command line: `local` starts and stops a cluster; `serve` takes its
//! settings from the environment and a config file; bad settings fail fast.

use std::process::{Command, Stdio};

use dynamo_testkit::checks::wait_ready;
use dynamo_testkit::http::{get_json, http_client};
use dynamo_testkit::process::{free_port, free_port_run};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::StatusCode;

const EXE: &str = env!("CARGO_BIN_EXE_dynamo-node");

#[tokio::test]
async fn local_starts_a_cluster_and_ctrl_c_stops_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_port_run(3);
    let mut local = Command::new(EXE)
        .args([
            "local",
            "--nodes",
            "3",
            "--base-port",
            &base.to_string(),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let http = http_client();
    let urls: Vec<String> = (0..3)
        .map(|i| format!("http://127.0.0.1:{}", base + i))
        .collect();
    for url in &urls {
        wait_ready(&http, url).await;
    }
    let r = http
        .put(format!("{}/v1/kv/hello", urls[0]))
        .body("world")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = http
        .get(format!("{}/v1/kv/hello", urls[2]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"world");
    for node in ["node1", "node2", "node3"] {
        assert!(
            dir.path().join(node).is_dir(),
            "{node} data directory missing"
        );
    }

    kill(Pid::from_raw(local.id() as i32), Signal::SIGINT).unwrap();
    let status = local.wait().unwrap();
    assert!(status.success(), "local exited with {status}");
    let mut printed = String::new();
    std::io::Read::read_to_string(local.stdout.as_mut().unwrap(), &mut printed).unwrap();
    assert!(
        printed.contains(&urls[0]) && printed.contains(&dir.path().display().to_string()),
        "{printed}"
    );
    assert_eq!(printed.matches(" stopped").count(), 3, "{printed}");
    for url in &urls {
        assert!(
            http.get(format!("{url}/healthz")).send().await.is_err(),
            "{url} still serving"
        );
    }
}

#[tokio::test]
async fn serve_reads_environment_and_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!("node-id = \"solo\"\nlisten = \"127.0.0.1:{port}\"\nzone = \"from-file\"\n"),
    )
    .unwrap();
    let mut node = Command::new(EXE)
        .arg("serve")
        .env("DYNAMO_CONFIG", &config)
        .env("DYNAMO_DATA_DIR", dir.path().join("data"))
        .env("DYNAMO_ZONE", "from-env")
        .env("DYNAMO_PARTITIONS", "16")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let http = http_client();
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(&http, &url).await;
    let status = get_json(&http, &format!("{url}/v1/status")).await;
    assert_eq!(status["node_id"], "solo");
    assert_eq!(status["zone"], "from-env");
    assert_eq!(status["ring"]["partitions"], 16);
    assert_eq!(status["quorum"]["n"], 1);
    let r = http
        .put(format!("{url}/v1/kv/a"))
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    kill(Pid::from_raw(node.id() as i32), Signal::SIGTERM).unwrap();
    assert!(node.wait().unwrap().success());
}

#[test]
fn invalid_settings_fail_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["--node-id", "a", "--n", "3"], "n=3"),
        (&["--node-id", "a", "--partitions", "1000"], "power of two"),
        (&["--node-id", "a", "--peer", "b"], "ID=HOST:PORT"),
        (&["--peer", "b=h:1"], "--node-id is required"),
    ];
    for (args, expected) in cases {
        let out = Command::new(EXE)
            .arg("serve")
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--listen", &format!("127.0.0.1:{}", free_port())])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            stderr.contains(expected),
            "{args:?}: expected {expected:?} in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
