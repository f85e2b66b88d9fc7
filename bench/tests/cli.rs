//! End-to-end runs of the `dynamo-bench` binary over real loopback sockets:
//! against `dynamo-bench baseline-server`, through `baseline`, and against a
//! hand-written server that answers 404, 300 and 503 to check how answers
//! are counted. No assertion depends on timing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_dynamo-bench");

/// `dynamo-bench baseline-server` on a free port, killed on drop.
struct BaselineServer {
    child: Child,
    url: String,
}

impl BaselineServer {
    fn start() -> Self {
        let mut child = Command::new(BIN)
            .args(["baseline-server", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start baseline-server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the listening line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Self {
            url: format!("http://{addr}"),
            child,
        }
    }
}

impl Drop for BaselineServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bench(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run dynamo-bench")
}

/// Runs `dynamo-bench` expecting success and JSON on stdout.
fn bench_json(args: &[&str]) -> Value {
    let out = bench(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn count(report: &Value, op: &str) -> u64 {
    report["operations"][op]["count"].as_u64().unwrap()
}

#[test]
fn mixed_closed_loop_counts_every_operation() {
    let server = BaselineServer::start();
    let report = bench_json(&[
        "run",
        "--url",
        &server.url,
        "--ops",
        "2000",
        "--concurrency",
        "4",
        "-o",
        "json",
        "--workload",
        "mixed",
    ]);
    let (reads, writes) = (count(&report, "read"), count(&report, "write"));
    assert_eq!(reads + writes, 2000, "{report:#}");
    assert!(reads > 0 && writes > 0, "{report:#}");
    assert_eq!(report["total_ops"], 2000);
    assert_eq!(report["errors"], 0);
    assert_eq!(count(&report, "rmw"), 0);
    for op in ["read", "write"] {
        let o = &report["operations"][op];
        assert_eq!(o["errors"]["total"], 0, "{op}");
        assert_eq!(o["ok"], o["count"], "{op}");
        assert!(o["latency_ms"]["p99"].as_f64().unwrap() > 0.0, "{op}");
    }
    assert_eq!(report["urls"][0], server.url.as_str());
    assert_eq!(report["concurrency"], 4);
    assert!(report["rate"].is_null());
}

#[test]
fn baseline_spawns_its_server_and_reports_it() {
    let report = bench_json(&["baseline", "--ops", "1000", "-o", "json"]);
    assert_eq!(report["total_ops"], 1000);
    assert_eq!(report["errors"], 0);
    assert_eq!(count(&report, "read") + count(&report, "write"), 1000);
    let processes = report["processes"].as_array().unwrap();
    assert_eq!(processes.len(), 2, "{report:#}");
    assert_eq!(processes[0]["name"], "dynamo-bench");
    assert_eq!(processes[1]["name"], "baseline-server");
    for p in processes {
        assert!(p["cpu_percent"].is_number(), "{p}");
        assert!(p["rss_max_mib"].as_f64().unwrap() > 0.0, "{p}");
    }
}

#[test]
fn open_loop_runs_the_requested_number_of_operations() {
    let server = BaselineServer::start();
    let report = bench_json(&[
        "run",
        "--url",
        &server.url,
        "--rate",
        "500",
        "--ops",
        "500",
        "--warmup",
        "0.2s",
        "--concurrency",
        "4",
        "--workload",
        "read",
        "-o",
        "json",
    ]);
    assert_eq!(report["total_ops"], 500);
    assert_eq!(count(&report, "read"), 500);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["rate"], 500.0);
}

#[test]
fn rmw_counts_its_get_put_and_whole_operation() {
    let server = BaselineServer::start();
    let report = bench_json(&[
        "run",
        "--url",
        &server.url,
        "--url",
        &server.url,
        "--workload",
        "rmw",
        "--dist",
        "zipfian",
        "--ops",
        "300",
        "--warmup",
        "0",
        "-c",
        "3",
        "--threads",
        "2",
        "-o",
        "json",
    ]);
    assert_eq!(report["total_ops"], 300);
    for op in ["read", "write", "rmw"] {
        assert_eq!(count(&report, op), 300, "{op}");
    }
    assert_eq!(report["key_dist"], "zipfian");
    assert_eq!(report["zipf_exponent"], 0.99);
}

#[test]
fn text_report_with_prefill() {
    let server = BaselineServer::start();
    let out = bench(&[
        "run",
        "--url",
        &server.url,
        "--workload",
        "read",
        "--prefill",
        "--keys",
        "200",
        "--ops",
        "100",
        "--warmup",
        "0",
        "--r",
        "1",
        "--w",
        "1",
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("prefill: wrote 200 keys"), "{stderr}");
    assert!(stdout.contains("100 ops"), "{stdout}");
    assert!(stdout.contains("p99 ms"), "{stdout}");
    assert!(stdout.contains("errors: none"), "{stdout}");
}

/// A keep-alive HTTP/1.1 server on a thread: `/readyz` is 200; with a
/// `token`, anything else without `Authorization: Bearer <token>` is 401;
/// a GET of a key ending in an even digit is 404, odd 300; every PUT is
/// 503.
fn start_picky_server(token: Option<&'static str>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve_picky(stream, token));
        }
    });
    url
}

fn serve_picky(stream: TcpStream, token: Option<&str>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut content_length = 0;
        let mut authorized = token.is_none();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                content_length = value.trim().parse().unwrap();
            }
            if let (Some((name, value)), Some(token)) = (header.split_once(':'), token)
                && name.eq_ignore_ascii_case("authorization")
            {
                authorized = value.trim() == format!("Bearer {token}");
            }
        }
        let mut body = vec![0; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let path = path.split('?').next().unwrap_or("");
        let status = match (method, path) {
            ("GET", "/readyz") => "200 OK",
            _ if !authorized => "401 Unauthorized",
            ("GET", p) if p.ends_with(['0', '2', '4', '6', '8']) => "404 Not Found",
            ("GET", _) => "300 Multiple Choices",
            _ => "503 Service Unavailable",
        };
        let response = format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\n\r\nok");
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn not_found_siblings_and_errors_are_counted_apart() {
    let url = start_picky_server(None);
    let report = bench_json(&[
        "run",
        "--url",
        &url,
        "--workload",
        "mixed",
        "--read-ratio",
        "0.7",
        "--ops",
        "400",
        "--warmup",
        "0",
        "-c",
        "2",
        "-o",
        "json",
    ]);
    let read = &report["operations"]["read"];
    let write = &report["operations"]["write"];
    let (reads, writes) = (count(&report, "read"), count(&report, "write"));
    assert_eq!(reads + writes, 400);
    assert!(read["ok"].as_u64().unwrap() > 0, "300 is a success: {read}");
    assert!(read["not_found"].as_u64().unwrap() > 0, "{read}");
    assert_eq!(
        read["ok"].as_u64().unwrap() + read["not_found"].as_u64().unwrap(),
        reads
    );
    assert_eq!(read["errors"]["total"], 0);
    assert_eq!(write["errors"]["status"]["503"].as_u64(), Some(writes));
    assert_eq!(write["errors"]["total"].as_u64(), Some(writes));
    assert!(write["latency_ms"].is_null());
    assert_eq!(report["errors"].as_u64(), Some(writes));
}

#[test]
fn unreachable_url_is_a_clear_error() {
    // Bind and drop a listener: nothing listens on that port any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = bench(&["run", "--url", &url, "--ops", "10"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cannot reach {url}")), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    for (args, needle) in [
        (&["--workload", "scan"][..], "scan"),
        (&["--read-ratio", "1.5"], "outside 0..=1"),
        (&["--concurrency", "0"], "at least 1"),
        (&["--duration", "soon"], "soon"),
    ] {
        let mut all = vec!["run", "--url", "http://127.0.0.1:1"];
        all.extend_from_slice(args);
        let out = bench(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn the_token_goes_with_every_request() {
    let url = start_picky_server(Some("t0k"));
    let args = [
        "run",
        "--url",
        &url,
        "--workload",
        "read",
        "--ops",
        "50",
        "--warmup",
        "0",
        "-o",
        "json",
    ];
    let refused = bench_json(&args);
    assert_eq!(
        refused["operations"]["read"]["errors"]["status"]["401"].as_u64(),
        Some(50),
        "{refused}"
    );
    let with_token: Vec<&str> = args.iter().copied().chain(["--token", "t0k"]).collect();
    let report = bench_json(&with_token);
    assert_eq!(
        report["operations"]["read"]["errors"]["total"], 0,
        "{report}"
    );
    assert_eq!(count(&report, "read"), 50);
}
