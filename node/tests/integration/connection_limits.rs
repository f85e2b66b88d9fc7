//! Connection exhaustion: slow and idle connections are closed, client
//! connections and requests in flight are capped with a `503` that says
//! when to retry, and node-to-node streams keep a reserve of their own.
//!
//! The limits are set through their `DYNAMO_*` environment variables (the
//! flags' equivalents), small so that each test takes seconds.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use dynamo_testkit::http::{self, http_client, https_client};
use dynamo_testkit::pki::TestCa;
use dynamo_testkit::process::{NodeProcess, free_port_on, serve_command};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::support;

/// Generous bound for anything the node must do within a timeout of a
/// second or two: the tests assert that it happens, not when.
const BOUND: Duration = Duration::from_secs(15);

/// A node of a test: its process, where it serves, and its directory.
struct Node {
    process: NodeProcess,
    address: SocketAddr,
    scheme: &'static str,
    _dir: tempfile::TempDir,
}

impl Node {
    fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.address)
    }
}

/// How to start a node: its id, address, the `--peer` list (members all
/// serving internal routes on their client address), extra flags and
/// environment.
struct Spec<'a> {
    id: &'a str,
    address: SocketAddr,
    peers: &'a [String],
    flags: &'a [&'a str],
    env: &'a [(&'a str, &'a str)],
}

/// Starts a node as `spec` says and waits until it is ready, asking with
/// `http` (a client that keeps no connection open).
async fn start(spec: &Spec<'_>, scheme: &'static str, http: &reqwest::Client) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let mut command = serve_command(
        Path::new(env!("CARGO_BIN_EXE_dynamo-node")),
        spec.id,
        &spec.address.to_string(),
        &format!("zone-{}", spec.id),
        &dir.path().join("data"),
    );
    command
        .args(support::fast(spec.flags))
        .args(["--initial-cluster-state", "new"])
        .envs(spec.env.iter().copied());
    for peer in spec.peers {
        command.arg("--peer").arg(peer);
    }
    let mut node = Node {
        process: NodeProcess::spawn(spec.id, &mut command),
        address: spec.address,
        scheme,
        _dir: dir,
    };
    let url = node.url();
    node.process.wait_ready(http, &url).await;
    node
}

/// A free address on a loopback /24 of this test's own.
fn address(subnet: u8, host: u8) -> SocketAddr {
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, subnet, host));
    SocketAddr::new(ip, free_port_on(ip))
}

/// A plain HTTP client that opens a new connection for every request.
fn unpooled_client() -> reqwest::Client {
    http::builder(None)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Whether the node closes `stream` within [`BOUND`]; whatever it sends
/// first is skipped.
async fn closed_within_bound(stream: &mut TcpStream) -> bool {
    let deadline = Instant::now() + BOUND;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Sends `partial` and then one more header byte every 200 ms, the way a
/// slowloris attack keeps a request head from ever completing; whether the
/// node closes the connection within [`BOUND`].
async fn closed_while_trickling(stream: &mut TcpStream, partial: &[u8]) -> bool {
    let deadline = Instant::now() + BOUND;
    if stream.write_all(partial).await.is_err() {
        return true;
    }
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if stream.write_all(b"x").await.is_err() {
            return true;
        }
        let read = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
        if matches!(read, Ok(Ok(0) | Err(_))) {
            return true;
        }
    }
    false
}

/// A response read off a raw connection (sent with `Connection: close`).
struct RawResponse {
    status: u16,
    head: String,
    body: serde_json::Value,
}

/// Sends `request` on a new connection to `address`, leaving the
/// connection to the caller.
async fn send_raw(address: SocketAddr, request: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// Reads the whole response from `stream` (the request asked the node to
/// close the connection after it); `None` unless it all came within
/// [`BOUND`].
async fn read_raw(mut stream: TcpStream) -> Option<RawResponse> {
    let mut bytes = Vec::new();
    tokio::time::timeout(BOUND, stream.read_to_end(&mut bytes))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(RawResponse {
        status,
        head: head.to_ascii_lowercase(),
        body: serde_json::from_str(body).unwrap_or_default(),
    })
}

/// Asserts that `response` is the overload answer: 503, `Retry-After`,
/// and the JSON error `code`.
async fn assert_overloaded(response: reqwest::Response, code: &str) {
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        response.headers().contains_key("retry-after"),
        "no Retry-After in {:?}",
        response.headers()
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed() {
    let subnet = support::fresh_subnet();
    let env = [
        ("DYNAMO_HEADER_READ_TIMEOUT_MS", "1000"),
        ("DYNAMO_IDLE_TIMEOUT_MS", "2000"),
    ];
    let spec = Spec {
        id: "n1",
        address: address(subnet, 1),
        peers: &[],
        flags: &[],
        env: &env,
    };
    let node = start(&spec, "http", &unpooled_client()).await;

    let mut slowloris = TcpStream::connect(node.address).await.unwrap();
    assert!(
        closed_while_trickling(
            &mut slowloris,
            b"GET /healthz HTTP/1.1\r\nHost: n1\r\nX-Slow: "
        )
        .await,
        "a request head trickled in byte by byte still held its connection after {BOUND:?}"
    );

    let mut silent = TcpStream::connect(node.address).await.unwrap();
    assert!(
        closed_within_bound(&mut silent).await,
        "a connection that never sent a request was still open after {BOUND:?}"
    );

    let mut idle = send_raw(node.address, "GET /healthz HTTP/1.1\r\nHost: n1\r\n\r\n").await;
    assert!(
        closed_within_bound(&mut idle).await,
        "an idle keep-alive connection was still open after {BOUND:?}"
    );

    let health = http_client()
        .get(format!("{}/healthz", node.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK, "the node serves on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tls_handshake_is_closed() {
    let subnet = support::fresh_subnet();
    let spec_address = address(subnet, 1);
    let ca = TestCa::new("connection limits test CA");
    let tls = tempfile::tempdir().unwrap();
    ca.write_tls_dir(tls.path(), &[&spec_address.ip().to_string()]);
    let tls_dir = tls.path().to_str().unwrap();
    let env = [("DYNAMO_TLS_HANDSHAKE_TIMEOUT_MS", "1000")];
    let flags = ["--tls-dir", tls_dir];
    let spec = Spec {
        id: "n1",
        address: spec_address,
        peers: &[],
        flags: &flags,
        env: &env,
    };
    let https = http::builder(Some(ca.pem()))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let node = start(&spec, "https", &https).await;

    // The first bytes of a TLS record header, and then nothing.
    let mut stalled = TcpStream::connect(node.address).await.unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    assert!(
        closed_within_bound(&mut stalled).await,
        "a TLS handshake that never completed still held its connection after {BOUND:?}"
    );
    let health = https_client(ca.pem())
        .get(format!("{}/healthz", node.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK, "the node serves on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_in_flight_cap_get_503_and_never_hang() {
    let subnet = support::fresh_subnet();
    let env = [
        ("DYNAMO_MAX_IN_FLIGHT_REQUESTS", "2"),
        ("DYNAMO_BODY_READ_TIMEOUT_MS", "2000"),
    ];
    let spec = Spec {
        id: "n1",
        address: address(subnet, 1),
        peers: &[],
        flags: &[],
        env: &env,
    };
    let node = start(&spec, "http", &unpooled_client()).await;

    // Six writes whose bodies never come: two hold the two slots until
    // their body times out, the others are refused at once (unless one
    // arrives only once a slot is free again).
    let slow =
        "PUT /v1/kv/slow HTTP/1.1\r\nHost: n1\r\nConnection: close\r\nContent-Length: 10\r\n\r\n";
    let mut pending = Vec::new();
    for _ in 0..6 {
        pending.push(send_raw(node.address, slow).await);
    }
    let mut statuses = Vec::new();
    for stream in pending {
        let response = read_raw(stream)
            .await
            .expect("a slow request got no complete answer");
        if response.status == 503 {
            assert!(response.head.contains("retry-after:"), "{}", response.head);
            assert_eq!(response.body["error"]["code"], "overloaded");
        } else {
            assert_eq!(response.status, 408, "{}", response.head);
            assert_eq!(response.body["error"]["code"], "body_timeout");
        }
        statuses.push(response.status);
    }
    assert!(
        statuses.contains(&503) && statuses.contains(&408),
        "statuses of the six slow writes: {statuses:?}"
    );

    let client = unpooled_client();
    let put = client
        .put(format!("{}/v1/kv/after", node.url()))
        .body("served")
        .send()
        .await
        .unwrap();
    assert_eq!(
        put.status(),
        StatusCode::NO_CONTENT,
        "the node serves again"
    );
}

/// Opens connections to `url`'s node that never send anything, `cap`
/// and then one more each time a client request is still served (a slot
/// may come free once a connection of the readiness check is closed),
/// until one is refused; the connections and the refusal.
async fn fill_client_connections(url: &str, cap: usize) -> (Vec<TcpStream>, reqwest::Response) {
    let address = url.trim_start_matches("http://");
    let client = unpooled_client();
    let mut held = Vec::new();
    for _ in 0..cap {
        held.push(TcpStream::connect(address).await.unwrap());
    }
    loop {
        let response = client
            .get(format!("{url}/v1/status"))
            .send()
            .await
            .expect("a client beyond the cap gets an answer, not a hang");
        if response.status() != StatusCode::OK || held.len() > cap + 4 {
            return (held, response);
        }
        held.push(TcpStream::connect(address).await.unwrap());
    }
}

/// PUTs `value` under `key` through `url` with `query` until it succeeds
/// (the nodes may still be learning of each other); the last status.
async fn put_until_stored(url: &str, key: &str, value: &str, query: &str) -> StatusCode {
    let client = unpooled_client();
    let deadline = Instant::now() + BOUND;
    loop {
        let status = match client
            .put(format!("{url}/v1/kv/{key}{query}"))
            .body(value.to_string())
            .send()
            .await
        {
            Ok(response) => response.status(),
            Err(_) => StatusCode::from_u16(599).unwrap(),
        };
        if status == StatusCode::NO_CONTENT || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_client_connections_refuse_clients_but_not_peers() {
    let subnet = support::fresh_subnet();
    let addresses: Vec<SocketAddr> = (1..=3).map(|i| address(subnet, i)).collect();
    let peers: Vec<String> = addresses
        .iter()
        .enumerate()
        .map(|(i, a)| format!("n{}={a},zone-n{}", i + 1, i + 1))
        .collect();
    const LIMITED: [(&str, &str); 2] = [
        ("DYNAMO_MAX_CLIENT_CONNECTIONS", "4"),
        ("DYNAMO_HEADER_READ_TIMEOUT_MS", "60000"),
    ];
    let ready = unpooled_client();
    let spec = |i: usize, env: &'static [(&'static str, &'static str)]| Spec {
        id: ["n1", "n2", "n3"][i],
        address: addresses[i],
        peers: &peers,
        flags: &[],
        env,
    };
    let n1 = start(&spec(0, &LIMITED), "http", &ready).await;

    // Fill n1's client connections before its peers start: every stream
    // they open to n1 (on its one port) arrives while clients are at cap.
    let (held, refused) = fill_client_connections(&n1.url(), 4).await;
    assert_overloaded(refused, "too_many_connections").await;

    let _n2 = start(&spec(1, &[]), "http", &ready).await;
    let n3 = start(&spec(2, &[]), "http", &ready).await;
    let status = put_until_stored(&n3.url(), "k", "replicated", "?w=3").await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "a w=3 write needs n1, whose client connections are full"
    );

    drop(held);
    let client = unpooled_client();
    let deadline = Instant::now() + BOUND;
    let (status, _, values) = loop {
        let read = http::read(&client, &format!("{}/v1/kv/k?r=3", n1.url())).await;
        if read.0 == StatusCode::OK || Instant::now() > deadline {
            break read;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (status, values),
        (StatusCode::OK, vec!["replicated".to_string()]),
        "n1 serves clients again once connections close"
    );
}
