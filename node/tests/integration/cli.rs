//! The command line: `serve` takes its settings from the environment and a
//! config file; bad settings fail fast (`local` has its own module).

use std::process::{Command, Stdio};

use dynamo_testkit::checks::wait_ready;
use dynamo_testkit::http::{get_json, http_client};
use dynamo_testkit::process::free_port;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::StatusCode;

const EXE: &str = env!("CARGO_BIN_EXE_dynamo-node");

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
