//! Hostile peers on the node-to-node stream: frames that announce far more
//! than they send, requests whose replies would dwarf them, and a peer
//! that never reads its replies. The node must hold memory in proportion
//! to what it received (plus fixed per-connection budgets), close streams
//! stalled inside a frame, and keep serving everyone else.
//!
//! Memory is read from `/proc/<pid>/status` (`VmHWM`, the peak resident
//! set, so a short-lived allocation counts too). The bounds are generous:
//! the point is "not hundreds of MiB", and nothing here asserts timing.

use std::time::Duration;

use bytes::Bytes;
use dynamo_node::transport::limits::BATCH_BYTES;
use dynamo_node::transport::{Request, Response, STREAM_PATH, UPGRADE_PROTOCOL, handshake};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{ClusterOptions, TestCluster, fast};

/// How much a node's peak resident set may grow during an attack.
const GROWTH_BOUND: u64 = 192 << 20;

/// Largest reply frame accepted from a node in these tests: what a reply
/// gathers at most, plus room for a large state or two.
const REPLY_BOUND: usize = BATCH_BYTES + (4 << 20);

/// Generous bound for anything the node must do within its 1 s request
/// timeout (the stall timeout of a half-sent frame).
const BOUND: Duration = Duration::from_secs(20);

/// A value of about 1 MiB (the default largest value is 1 MiB).
fn large_value() -> String {
    "v".repeat(1_000_000)
}

/// One node (64 partitions, 1 s request timeout, no auth token).
async fn start_node() -> TestCluster {
    let options = ClusterOptions {
        extra: fast(&[]),
        ..ClusterOptions::default()
    };
    TestCluster::start_with(1, options).await
}

/// Peak resident set of process `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kib << 10
}

/// Asserts node 0 still serves a client write and read.
async fn assert_serves(c: &TestCluster, key: &str) {
    let (status, _) = c.put(0, key, "still-here", None, "").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "PUT {key}");
    let (status, _, values) = c.get_json(0, key, "").await;
    assert_eq!(
        (status, values),
        (StatusCode::OK, vec!["still-here".into()])
    );
}

/// A node-to-node stream opened by hand, as any process that reaches the
/// internal port can open it (the test nodes have no auth token).
struct RawPeer {
    stream: TcpStream,
}

impl RawPeer {
    /// Upgrades a fresh connection to node `i`'s internal port.
    async fn open(c: &TestCluster, i: usize) -> Self {
        let address = (c.nodes[i].ip, c.nodes[i].internal_port);
        let mut stream = TcpStream::connect(address).await.unwrap();
        let head = format!(
            "GET {STREAM_PATH} HTTP/1.1\r\nHost: peer\r\nConnection: Upgrade\r\nUpgrade: {UPGRADE_PROTOCOL}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // Byte by byte, so that nothing after the head is consumed.
        let mut reply = Vec::new();
        while !reply.ends_with(b"\r\n\r\n") {
            reply.push(stream.read_u8().await.unwrap());
        }
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 101"), "{reply}");
        Self { stream }
    }

    /// Sends one request frame; false when the node closed the stream.
    async fn send(&mut self, id: u64, request: &Request) -> bool {
        let payload = postcard::to_stdvec(request).unwrap();
        let mut frame = u32::try_from(8 + payload.len())
            .unwrap()
            .to_be_bytes()
            .to_vec();
        frame.extend_from_slice(&id.to_be_bytes());
        frame.extend_from_slice(&payload);
        self.stream.write_all(&frame).await.is_ok()
    }

    /// Reads one reply: its id, the frame's announced length, and the
    /// decoded response. Fails the test when the frame is larger than
    /// [`REPLY_BOUND`] (without reading it).
    async fn reply(&mut self) -> (u64, usize, Response) {
        let len = self.stream.read_u32().await.expect("a reply frame") as usize;
        assert!(
            len <= REPLY_BOUND,
            "the node answered with a frame of {len} bytes (bound {REPLY_BOUND})"
        );
        let id = self.stream.read_u64().await.unwrap();
        let mut payload = vec![0; len - 8];
        self.stream.read_exact(&mut payload).await.unwrap();
        (id, len, postcard::from_bytes(&payload).unwrap())
    }

    /// Waits until the node closes the stream (reads hit end of stream or
    /// an error), discarding whatever it sends first.
    async fn wait_closed(&mut self) {
        let mut sink = vec![0; 64 << 10];
        let closed = tokio::time::timeout(BOUND, async {
            while let Ok(n) = self.stream.read(&mut sink).await
                && n > 0
            {}
        })
        .await;
        assert!(closed.is_ok(), "the node kept the stream open");
    }
}

/// Connections that each announce a 256 MiB frame (of the kind with the
/// largest cap, a merge batch) and send nothing more: the node allocates
/// nothing for them, serves clients meanwhile, and closes each once it
/// has stalled for its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_headers_announcing_256_mib_allocate_nothing_and_are_closed() {
    let c = start_node().await;
    let pid = c.pid(0);
    assert_serves(&c, "warm-up").await;
    let before = peak_rss(pid);

    let merge_batch_tag =
        postcard::to_stdvec(&Request::MergeBatch { items: Vec::new() }).unwrap()[0];
    let mut peers = Vec::new();
    for id in 0..12u64 {
        let mut peer = RawPeer::open(&c, 0).await;
        let mut header = (256u32 << 20).to_be_bytes().to_vec();
        header.extend_from_slice(&id.to_be_bytes());
        header.push(merge_batch_tag);
        peer.stream.write_all(&header).await.unwrap();
        peers.push(peer);
    }
    // Serving clients also gives the node time to act on the headers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_serves(&c, "during-the-attack").await;
    let grown = peak_rss(pid).saturating_sub(before);
    assert!(
        grown < GROWTH_BOUND,
        "12 frame headers grew the node's peak RSS by {} MiB",
        grown >> 20
    );
    for peer in &mut peers {
        peer.wait_closed().await;
    }
    assert_serves(&c, "after-the-attack").await;
}

/// A read batch of a thousand repeats of one ~1 MiB key, a read batch of
/// distinct large keys, and a digests request repeating one segment
/// tens of thousands of times: every reply stays under the reply bound (a
/// refusal, or a part of the answer the caller asks the rest of), and the
/// node keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_to_repeated_or_large_requests_stay_bounded() {
    let c = start_node().await;
    let value = large_value();
    let large_keys: Vec<String> = (0..12).map(|i| format!("large-{i}")).collect();
    for key in &large_keys {
        let (status, _) = c.put(0, key, &value, None, "").await;
        assert_eq!(status, StatusCode::NO_CONTENT, "PUT {key}");
    }
    let mut peer = RawPeer::open(&c, 0).await;

    let repeated = Request::ReadBatch {
        keys: vec![Bytes::from(large_keys[0].clone()); 1000],
    };
    assert!(peer.send(1, &repeated).await);
    let (id, _, response) = peer.reply().await;
    assert_eq!(id, 1);
    assert!(
        matches!(response, Response::Failed(_)),
        "repeated keys must be refused, got {}",
        describe(&response)
    );

    // Distinct keys whose states together exceed the reply budget: the
    // reply holds the first ones, in request order, and the caller asks
    // again for the rest.
    let keys: Vec<Bytes> = large_keys.iter().cloned().map(Bytes::from).collect();
    let mut rest = keys.as_slice();
    let mut replies = 0;
    while !rest.is_empty() {
        let request = Request::ReadBatch {
            keys: rest.to_vec(),
        };
        assert!(peer.send(2, &request).await);
        let (_, len, response) = peer.reply().await;
        let Response::Objects(objects) = response else {
            panic!("a read batch got {}", describe(&response));
        };
        assert!(
            !objects.is_empty() && objects.len() <= rest.len(),
            "{} objects for {} keys ({len} bytes)",
            objects.len(),
            rest.len()
        );
        assert!(objects.iter().all(|o| o.is_some()));
        rest = &rest[objects.len()..];
        replies += 1;
    }
    assert!(replies > 1, "12 MB of states came back in one reply");

    // A long key alone in its segment, asked for 30 000 times.
    let long_key = "k".repeat(1000);
    let (status, _) = c.put(0, &long_key, "v", None, "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let partition = c.ring(0).await.ring.partition_for_key(long_key.as_bytes());
    assert!(peer.send(3, &Request::MerkleLeaves { partition }).await);
    let (_, _, response) = peer.reply().await;
    let Response::Leaves(leaves) = response else {
        panic!("merkle leaves got {}", describe(&response));
    };
    let segment = leaves
        .iter()
        .position(|&l| l != 0)
        .expect("a written segment") as u16;
    let repeated = Request::SegmentDigests {
        partition,
        segments: vec![segment; 30_000],
    };
    assert!(peer.send(4, &repeated).await);
    let (id, _, response) = peer.reply().await;
    assert_eq!(id, 4);
    assert!(
        matches!(response, Response::Failed(_)),
        "repeated segments must be refused, got {}",
        describe(&response)
    );
    // The stream still works, and so do clients.
    assert!(peer.send(5, &Request::Ping).await);
    assert!(matches!(peer.reply().await, (5, _, Response::Pong)));
    assert_serves(&c, "after-the-requests").await;
}

/// A peer that sends a thousand requests for a ~1 MiB state and never
/// reads a reply: the node stops reading from it once a bounded amount of
/// replies waits for it, holds bounded memory, and serves other peers
/// and clients meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_replies_is_held_to_a_bounded_queue() {
    let c = start_node().await;
    let pid = c.pid(0);
    let (status, _) = c.put(0, "large", &large_value(), None, "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_serves(&c, "warm-up").await;
    let before = peak_rss(pid);

    let mut deaf = RawPeer::open(&c, 0).await;
    let request = Request::ReadBatch {
        keys: vec![Bytes::from_static(b"large")],
    };
    for id in 0..1000 {
        // The node may stop reading (the write then waits in the kernel's
        // buffers; the time bound lets the test go on) or close the stream.
        match tokio::time::timeout(Duration::from_secs(2), deaf.send(id, &request)).await {
            Ok(true) => {}
            Ok(false) | Err(_) => break,
        }
    }
    // Without a bound, the node queues about 1 GB of replies, at whatever
    // pace it produces them (tens of MB a second in a debug build): watch
    // the peak for a few seconds while others are served.
    let mut other = RawPeer::open(&c, 0).await;
    for round in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(other.send(round, &Request::Ping).await);
        assert!(matches!(other.reply().await, (id, _, Response::Pong) if id == round));
        let grown = peak_rss(pid).saturating_sub(before);
        assert!(
            grown < GROWTH_BOUND,
            "a peer that never reads grew the node's peak RSS by {} MiB",
            grown >> 20
        );
    }
    assert_serves(&c, "while-a-peer-is-deaf").await;
    drop(deaf);
    assert_serves(&c, "after-the-deaf-peer").await;
}

/// A short description of a response, without its payload.
fn describe(response: &Response) -> String {
    match response {
        Response::Failed(why) => format!("Failed({why})"),
        Response::Objects(objects) => format!("Objects({} states)", objects.len()),
        Response::Digests(digests) => format!("Digests({} entries)", digests.len()),
        other => format!("{:.80}", format!("{other:?}")),
    }
}

/// A peer announcing only protocol versions this release does not speak
/// (99..=99) is refused with a message naming both ranges and what to do;
/// the stream and the node go on serving, and a handshake in range is
/// answered with the node's own range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_announcing_only_unknown_protocols_is_refused_and_the_node_serves_on() {
    let c = start_node().await;
    let mut peer = RawPeer::open(&c, 0).await;
    let newer = Request::Hello {
        min_protocol: 99,
        protocol: 99,
        release: "dynamo-node 99.0.0".into(),
    };
    assert!(peer.send(1, &newer).await);
    let (id, _, refusal) = peer.reply().await;
    assert_eq!(id, 1);
    let Response::Failed(message) = refusal else {
        panic!("the handshake was not refused: {refusal:?}");
    };
    let ours = format!(
        "the dialed node ({:?}) speaks protocols {}..={}",
        handshake::RELEASE,
        handshake::MIN_PROTOCOL,
        handshake::PROTOCOL
    );
    for part in [
        "protocol mismatch",
        "the dialing node (\"dynamo-node 99.0.0\") speaks protocols 99..=99",
        &ours,
        "upgrade or roll back through a release that speaks both",
    ] {
        assert!(message.contains(part), "{part:?} missing in: {message}");
    }
    assert!(peer.send(2, &Request::Ping).await);
    assert!(matches!(peer.reply().await, (2, _, Response::Pong)));
    assert!(peer.send(3, &handshake::hello()).await);
    let (id, _, agreed) = peer.reply().await;
    assert!(
        matches!(agreed, Response::Hello { protocol, .. } if id == 3 && protocol == handshake::PROTOCOL),
        "{agreed:?}"
    );
    assert_serves(&c, "after-refusal").await;
}
