//! The transport over real sockets: an axum server with the stream route
//! and a test handler, called through [`Transport`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request as HttpRequest;
use axum::routing::get;
use bytes::Bytes;
use dynamo_ring::Member;
use tokio::net::TcpListener;

use super::*;
use crate::peer::Peer;
use crate::version::{Content, Dot, Object};

/// Echoes reads with an empty object named after the key length, answers
/// forwarded writes after a delay (to exercise timeouts and concurrency).
struct TestHandler;

impl RequestHandler for TestHandler {
    fn handle_now(&self, request: Request) -> Result<Response, Request> {
        match request {
            Request::Ping => Ok(Response::Pong),
            Request::ReplicaRead { key } if key.as_ref() == b"fail" => {
                Ok(Response::Failed("no".into()))
            }
            Request::ReplicaRead { key } => {
                let mut object = Object::new();
                let dot = Dot {
                    actor: key.len() as u64,
                    counter: 1,
                };
                object
                    .write(dot, &Default::default(), Some(key))
                    .expect("a new object takes any dot");
                Ok(Response::Object(Some(object)))
            }
            other => Err(other),
        }
    }

    async fn handle_async(self: Arc<Self>, request: Request) -> Response {
        let Request::CoordinateWrite(write) = request else {
            return Response::Failed("?".into());
        };
        tokio::time::sleep(Duration::from_millis(write.w as u64)).await;
        Response::Coordinated(Ok(write.context))
    }

    fn stall_timeout(&self) -> Duration {
        Duration::from_secs(5)
    }
}

async fn start_server() -> (Peer, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let handler = Arc::new(TestHandler);
    let app = Router::new().route(
        STREAM_PATH,
        get(move |r: HttpRequest| accept_stream(handler.clone(), r)),
    );
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let peer = Peer {
        member: Member {
            id: "p".into(),
            zone: "z".into(),
        },
        address,
    };
    (peer, task)
}

fn read(key: &str) -> Request {
    Request::ReplicaRead {
        key: Bytes::from(key.to_string()),
    }
}

#[tokio::test]
async fn many_concurrent_requests_share_one_stream() {
    let (peer, _server) = start_server().await;
    let transport = Arc::new(Transport::new(Duration::from_secs(5)));
    assert!(matches!(
        transport.call(&peer, &Request::Ping).await,
        Ok(Response::Pong)
    ));
    let calls = (0..500).map(|i| {
        let transport = transport.clone();
        let peer = peer.clone();
        async move {
            let key = "k".repeat(i % 50 + 1);
            match transport.call(&peer, &read(&key)).await.unwrap() {
                Response::Object(Some(o)) => {
                    assert_eq!(o.live_values().next().unwrap().len(), key.len())
                }
                other => panic!("{other:?}"),
            }
        }
    });
    futures::future::join_all(calls).await;
    let error = transport.call(&peer, &read("fail")).await.unwrap_err();
    assert!(error.peer_answered(), "{error}");
}

#[tokio::test]
async fn slow_answers_time_out_and_the_peer_stays_reachable() {
    let (peer, _server) = start_server().await;
    let transport = Transport::new(Duration::from_millis(100));
    let slow = Request::CoordinateWrite(CoordinateWrite {
        key: Bytes::from_static(b"k"),
        context: Default::default(),
        content: Content::Deleted,
        w: 300,
    });
    let error = transport.call(&peer, &slow).await.unwrap_err();
    assert!(matches!(error, RpcError::Timeout { .. }), "{error}");
    assert!(matches!(
        transport.call(&peer, &Request::Ping).await,
        Ok(Response::Pong)
    ));
}

#[tokio::test]
async fn a_dead_peer_fails_fast_and_a_restarted_one_is_redialed() {
    let (peer, server) = start_server().await;
    let transport = Transport::new(Duration::from_secs(2));
    assert!(transport.call(&peer, &Request::Ping).await.is_ok());
    server.abort();
    let _ = server.await;
    // Established streams were owned by the aborted server's tasks, which
    // are gone with the runtime's cancellation of the accept loop only; the
    // listener itself is closed, so a fresh dial must fail.
    let mut failed = false;
    for _ in 0..50 {
        match transport.call(&peer, &Request::Ping).await {
            Err(error) => {
                assert!(!error.peer_answered(), "{error}");
                failed = true;
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let listener = TcpListener::bind(&peer.address).await.unwrap();
    let handler = Arc::new(TestHandler);
    let app = Router::new().route(
        STREAM_PATH,
        get(move |r: HttpRequest| accept_stream(handler.clone(), r)),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    if failed {
        let mut redialed = false;
        for _ in 0..50 {
            if transport.call(&peer, &Request::Ping).await.is_ok() {
                redialed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(redialed, "never reconnected");
    }
    assert!(transport.call(&peer, &Request::Ping).await.is_ok());
}

#[tokio::test]
async fn a_plain_request_to_the_stream_route_is_refused() {
    let (peer, _server) = start_server().await;
    let mut stream = tokio::net::TcpStream::connect(&peer.address).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(
            format!("GET {STREAM_PATH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
}

/// A peer that accepts the upgrade and then never answers (a stalled
/// process, or a connection whose other end is gone): every call times out
/// and the silent connection is dropped, so the next call dials again.
#[tokio::test]
async fn a_silent_connection_is_dropped_and_redialed() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = [0u8; 1024];
                let _ = socket.read(&mut head).await;
                let reply = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: dynamo-rpc/1\r\n\r\n";
                socket.write_all(reply.as_bytes()).await.unwrap();
                tokio::time::sleep(Duration::from_secs(60)).await;
                drop(socket);
            });
        }
    });
    let peer = Peer {
        member: Member {
            id: "silent".into(),
            zone: "z".into(),
        },
        address,
    };
    let transport = Transport::new(Duration::from_millis(100));
    for _ in 0..2 {
        let error = transport.call(&peer, &Request::Ping).await.unwrap_err();
        assert!(matches!(error, RpcError::Timeout { .. }), "{error}");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "redialed after the silence"
    );
}

/// Answers every replica read with a state of about 1 MiB and counts the
/// requests it answered; stalls are tolerated for `stall`.
struct LargeReplies {
    answered: std::sync::atomic::AtomicUsize,
    stall: Duration,
}

impl LargeReplies {
    fn new(stall: Duration) -> Arc<Self> {
        Arc::new(Self {
            answered: Default::default(),
            stall,
        })
    }

    fn answered(&self) -> usize {
        self.answered.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl RequestHandler for LargeReplies {
    fn handle_now(&self, request: Request) -> Result<Response, Request> {
        self.answered
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let Request::ReplicaRead { .. } = request else {
            return Ok(Response::Pong);
        };
        let mut object = Object::new();
        let dot = Dot {
            actor: 1,
            counter: 1,
        };
        let value = Bytes::from(vec![0u8; 1 << 20]);
        object
            .write(dot, &Default::default(), Some(value))
            .expect("a new object takes any dot");
        Ok(Response::Object(Some(object)))
    }

    async fn handle_async(self: Arc<Self>, _: Request) -> Response {
        Response::Failed("?".into())
    }

    fn stall_timeout(&self) -> Duration {
        self.stall
    }
}

/// Writes `count` replica reads, one frame each, as fast as the node takes
/// them; returns how many it could write before `patience` ran out.
async fn flood<W: tokio::io::AsyncWrite + Unpin>(
    peer: &mut W,
    count: u64,
    patience: Duration,
) -> u64 {
    use tokio::io::AsyncWriteExt;
    for id in 0..count {
        let frame = super::frame::encode(id, &read("k"));
        match tokio::time::timeout(patience, peer.write_all(&frame)).await {
            Ok(Ok(())) => {}
            _ => return id,
        }
    }
    count
}

/// A peer that sends many requests and reads no reply: the node stops
/// reading it once the replies waiting for it fill the stream's budget,
/// and when the peer reads again, every reply arrives, none dropped.
#[tokio::test]
async fn a_peer_that_reads_no_replies_stops_being_read_and_loses_none() {
    let handler = LargeReplies::new(Duration::from_secs(60));
    let (mut peer, node) = tokio::io::duplex(64 << 10);
    tokio::spawn(super::server::serve(handler.clone(), node));
    let sent = flood(&mut peer, 200, Duration::from_millis(500)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answered = handler.answered();
    let budget = super::limits::CONNECTION_BYTES >> 20;
    assert!(
        answered <= budget + 2,
        "{answered} replies of 1 MiB in hand for a peer that reads none (budget {budget} MiB)"
    );

    // Read every reply: the node goes on reading, and answers all.
    let (mut reader, mut writer) = tokio::io::split(peer);
    let rest = tokio::spawn(async move {
        let more = flood(&mut writer, 200 - sent, Duration::from_secs(10)).await;
        (writer, more)
    });
    let mut ids = Vec::new();
    let mut buf = Vec::new();
    while ids.len() < 200 {
        let (id, response): (u64, Response) =
            super::frame::read(&mut reader, &mut buf, Duration::from_secs(5))
                .await
                .unwrap();
        assert!(matches!(response, Response::Object(Some(_))));
        ids.push(id);
        if ids.len() == 1 {
            assert!(buf.capacity() <= 2 << 20);
        }
    }
    let (_writer, more) = rest.await.unwrap();
    assert_eq!(sent + more, 200);
    ids.sort_unstable();
    assert_eq!(ids, (0..200).collect::<Vec<_>>());
}

/// A peer that reads no reply for the stall timeout loses the stream, and
/// with it everything the node held for it.
#[tokio::test]
async fn a_peer_that_reads_no_replies_for_the_stall_timeout_loses_the_stream() {
    use tokio::io::AsyncReadExt;

    let handler = LargeReplies::new(Duration::from_millis(200));
    let (mut peer, node) = tokio::io::duplex(64 << 10);
    let served = tokio::spawn(super::server::serve(handler.clone(), node));
    flood(&mut peer, 100, Duration::from_millis(500)).await;
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("the node stopped serving the stream")
        .unwrap();
    // What was written before the node gave up, then the end.
    let mut sink = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), peer.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "the stream is closed");
}

/// Requests a node cannot decode (garbage, a newer peer's kind, a list
/// longer than allowed) are answered with an error, and the stream goes on.
#[tokio::test]
async fn an_undecodable_request_is_answered_with_an_error() {
    use tokio::io::AsyncWriteExt;

    let (mut peer, node) = tokio::io::duplex(1 << 20);
    tokio::spawn(super::server::serve(Arc::new(TestHandler), node));
    let mut garbage = 9u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(&1u64.to_be_bytes());
    garbage.push(0x7f);
    peer.write_all(&garbage).await.unwrap();
    let too_many = Request::ReadBatch {
        keys: vec![Bytes::from_static(b"k"); super::limits::MAX_KEYS + 1],
    };
    peer.write_all(&super::frame::encode(2, &too_many))
        .await
        .unwrap();
    peer.write_all(&super::frame::encode(3, &Request::Ping))
        .await
        .unwrap();
    let mut buf = Vec::new();
    let stall = Duration::from_secs(5);
    for expected in [1, 2] {
        let (id, response): (u64, Response) = super::frame::read(&mut peer, &mut buf, stall)
            .await
            .unwrap();
        assert_eq!(id, expected);
        assert!(matches!(response, Response::Failed(_)), "{response:?}");
    }
    let (id, response): (u64, Response) = super::frame::read(&mut peer, &mut buf, stall)
        .await
        .unwrap();
    assert!(matches!((id, response), (3, Response::Pong)));
}

/// The cap tables follow the variants' order: each kind's tag (the first
/// byte of its encoding) finds the cap its name says.
#[test]
fn frame_caps_follow_the_variant_order() {
    use super::frame::Capped;
    use super::limits::{LIST_FRAME, MAX_FRAME, SMALL_FRAME, STATE_FRAME};

    let key = || Bytes::from_static(b"k");
    let ring = || {
        let members = vec![Member::new("a", "z")];
        let ring = dynamo_ring::Ring::build(members, 1, 1).unwrap();
        let addresses = [("a".to_string(), "h:1".to_string())].into();
        dynamo_ring::RingDocument { ring, addresses }
    };
    let digest = || GossipDigest {
        from: "a".into(),
        ring: ring(),
        heartbeats: Vec::new(),
    };
    let report = || dynamo_ring::TransferReport {
        node: "a".into(),
        epoch: 1,
        pending: 0,
        done: 0,
        hints_pending: 0,
        retired: 0,
        partitions: Vec::new(),
    };
    let requests = [
        (Request::ReplicaRead { key: key() }, SMALL_FRAME),
        (
            Request::ReplicaWrite {
                key: key(),
                object: Object::new(),
                hint_for: None,
            },
            MAX_FRAME,
        ),
        (Request::MergeBatch { items: Vec::new() }, MAX_FRAME),
        (Request::ReadBatch { keys: Vec::new() }, LIST_FRAME),
        (
            Request::MerkleRoots {
                partitions: Vec::new(),
            },
            LIST_FRAME,
        ),
        (Request::MerkleLeaves { partition: 0 }, SMALL_FRAME),
        (
            Request::SegmentDigests {
                partition: 0,
                segments: Vec::new(),
            },
            SMALL_FRAME,
        ),
        (
            Request::ScanPartition {
                partition: 0,
                after: None,
                limit: 1,
            },
            SMALL_FRAME,
        ),
        (Request::PurgeTombstones { items: Vec::new() }, LIST_FRAME),
        (Request::TransferReport, SMALL_FRAME),
        (Request::Gossip(Box::new(digest())), STATE_FRAME),
        (
            Request::CoordinateWrite(CoordinateWrite {
                key: key(),
                context: Default::default(),
                content: Content::Deleted,
                w: 1,
            }),
            MAX_FRAME,
        ),
        (Request::Ping, SMALL_FRAME),
        (Request::TombstoneCheck { keys: Vec::new() }, LIST_FRAME),
        (handshake::hello(), SMALL_FRAME),
        (
            Request::CoordinateWriteWithOutcome(CoordinateWrite {
                key: key(),
                context: Default::default(),
                content: Content::Deleted,
                w: 1,
            }),
            MAX_FRAME,
        ),
    ];
    assert_eq!(requests.len(), super::message::REQUEST_CAPS.len());
    for (i, (request, cap)) in requests.iter().enumerate() {
        let tag = postcard::to_stdvec(request).unwrap()[0];
        assert_eq!(usize::from(tag), i, "{}", request.kind());
        assert_eq!(Request::max_len(tag), *cap, "{}", request.kind());
    }
    let responses = [
        (Response::Object(None), MAX_FRAME),
        (Response::Written, SMALL_FRAME),
        (Response::Coordinated(Ok(Default::default())), LIST_FRAME),
        (Response::Pong, SMALL_FRAME),
        (Response::Objects(Vec::new()), MAX_FRAME),
        (Response::Roots(Vec::new()), LIST_FRAME),
        (Response::Leaves(Vec::new()), SMALL_FRAME),
        (Response::Digests(Vec::new()), MAX_FRAME),
        (
            Response::Page {
                items: Vec::new(),
                next: None,
            },
            MAX_FRAME,
        ),
        (Response::Transfers(Box::new(report())), STATE_FRAME),
        (Response::Gossip(Box::new(digest())), STATE_FRAME),
        (Response::NotReady, SMALL_FRAME),
        (Response::Failed(String::new()), LIST_FRAME),
        (
            Response::TombstoneCheck(Box::new(TombstoneCheckReply {
                transfers: report(),
                keys: Vec::new(),
            })),
            STATE_FRAME,
        ),
        (
            Response::DigestsPrefix {
                digests: Vec::new(),
                segments: 1,
            },
            MAX_FRAME,
        ),
        (handshake::answer(1, 1, "r"), SMALL_FRAME),
        (Response::WriteOutcome(Ok(Default::default())), LIST_FRAME),
    ];
    assert_eq!(responses.len(), super::message::RESPONSE_CAPS.len());
    for (i, (response, cap)) in responses.iter().enumerate() {
        let tag = postcard::to_stdvec(response).unwrap()[0];
        assert_eq!(usize::from(tag), i, "{response:?}");
        assert_eq!(Response::max_len(tag), *cap, "{response:?}");
    }
}

/// A reply the node cannot decode (say, a kind a newer peer added) fails
/// its call as an answer from the peer; the connection carries on.
#[tokio::test]
async fn an_undecodable_reply_fails_its_call_and_keeps_the_connection() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    head.push(socket.read_u8().await.unwrap());
                }
                let reply = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: dynamo-rpc/1\r\n\r\n";
                socket.write_all(reply.as_bytes()).await.unwrap();
                let mut buf = Vec::new();
                let mut answered = 0;
                loop {
                    let Ok((id, request)) = super::frame::read::<_, Request>(
                        &mut socket,
                        &mut buf,
                        Duration::from_secs(5),
                    )
                    .await
                    else {
                        return;
                    };
                    if let Some(hello) = hello_reply(&request) {
                        let frame = super::frame::encode(id, &hello);
                        socket.write_all(&frame).await.unwrap();
                        continue;
                    }
                    answered += 1;
                    let frame = match answered {
                        // Tag 0x7e: no response kind of this version.
                        1 => {
                            let mut frame = 9u32.to_be_bytes().to_vec();
                            frame.extend_from_slice(&id.to_be_bytes());
                            frame.push(0x7e);
                            frame
                        }
                        _ => super::frame::encode(id, &Response::Pong),
                    };
                    socket.write_all(&frame).await.unwrap();
                }
            });
        }
    });
    let peer = Peer {
        member: Member {
            id: "newer".into(),
            zone: "z".into(),
        },
        address,
    };
    let transport = Transport::new(Duration::from_secs(5));
    let error = transport.call(&peer, &Request::Ping).await.unwrap_err();
    assert!(
        matches!(&error, RpcError::Remote { message, .. } if message.contains("undecodable")),
        "{error}"
    );
    assert!(matches!(
        transport.call(&peer, &Request::Ping).await,
        Ok(Response::Pong)
    ));
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection");
}

/// A transport dropped closes its connections: the peer sees the stream
/// end instead of keeping it (and its share of connections) forever.
#[tokio::test]
async fn a_dropped_transport_closes_its_connections() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (ended_tx, ended) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(socket.read_u8().await.unwrap());
        }
        let reply = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: dynamo-rpc/1\r\n\r\n";
        socket.write_all(reply.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let stall = Duration::from_secs(5);
        while let Ok((id, request)) =
            super::frame::read::<_, Request>(&mut socket, &mut buf, stall).await
        {
            let reply = hello_reply(&request).unwrap_or(Response::Pong);
            let pong = super::frame::encode(id, &reply);
            socket.write_all(&pong).await.unwrap();
        }
        let _ = ended_tx.send(());
    });
    let peer = Peer {
        member: Member {
            id: "p".into(),
            zone: "z".into(),
        },
        address,
    };
    let transport = Transport::new(Duration::from_secs(5));
    assert!(matches!(
        transport.call(&peer, &Request::Ping).await,
        Ok(Response::Pong)
    ));
    drop(transport);
    tokio::time::timeout(Duration::from_secs(10), ended)
        .await
        .expect("the stream stays open after its transport is gone")
        .unwrap();
}

/// A fake peer's answer to `request` if it is the handshake: what a node
/// of this release answers.
fn hello_reply(request: &Request) -> Option<Response> {
    let Request::Hello {
        min_protocol,
        protocol,
        release,
    } = request
    else {
        return None;
    };
    Some(handshake::answer(*min_protocol, *protocol, release))
}

/// What a fake peer was sent besides the handshake: the trace context
/// each request carried, if any.
type Seen = Arc<std::sync::Mutex<Vec<Option<TraceContext>>>>;

/// A peer at a new address that answers the handshake with `hello` and
/// every other request with `Pong`, noting those.
async fn fake_peer(id: &str, hello: Response) -> (Peer, Seen) {
    use tokio::io::AsyncWriteExt;

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let hello = super::frame::encode(0, &hello);
    let seen = Seen::default();
    let requests = seen.clone();
    tokio::spawn(async move {
        let mut socket = accept_upgraded(&listener).await;
        let mut buf = Vec::new();
        let stall = Duration::from_secs(5);
        while let Ok(header) = super::frame::read_header::<_, Request>(&mut socket, stall).await {
            let Ok((request, context)) =
                super::frame::read_payload_with_trailer(&mut socket, &header, &mut buf, stall)
                    .await
            else {
                return;
            };
            let mut frame = match request {
                Request::Hello { .. } => hello.clone(),
                _ => {
                    requests.lock().unwrap().push(context);
                    super::frame::encode(0, &Response::Pong)
                }
            };
            frame[4..12].copy_from_slice(&header.id.to_be_bytes());
            socket.write_all(&frame).await.unwrap();
        }
    });
    let peer = Peer {
        member: Member {
            id: id.into(),
            zone: "z".into(),
        },
        address,
    };
    (peer, seen)
}

/// Accepts one connection on `listener` and answers its upgrade to the
/// stream protocol.
async fn accept_upgraded(listener: &TcpListener) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (mut socket, _) = listener.accept().await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(socket.read_u8().await.unwrap());
    }
    let reply =
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: dynamo-rpc/1\r\n\r\n";
    socket.write_all(reply.as_bytes()).await.unwrap();
    socket
}

/// A stream that breaks with a call in flight (here the peer announces a
/// reply longer than any may be) fails the call at once, and says why at
/// WARN: the failure detector counts such failures against the peer, so a
/// break must not go unexplained.
#[tokio::test]
async fn a_stream_that_breaks_under_a_call_says_why() {
    use tokio::io::AsyncWriteExt;

    let sink = crate::logging::Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let agreed = handshake::answer(handshake::MIN_PROTOCOL, handshake::PROTOCOL, "test");
    tokio::spawn(async move {
        let mut socket = accept_upgraded(&listener).await;
        let mut buf = Vec::new();
        let stall = Duration::from_secs(5);
        loop {
            let header = super::frame::read_header::<_, Request>(&mut socket, stall)
                .await
                .unwrap();
            let request: Request =
                super::frame::read_payload(&mut socket, &header, &mut buf, stall)
                    .await
                    .unwrap();
            let reply = match request {
                Request::Hello { .. } => &agreed,
                _ => &Response::Pong,
            };
            let mut frame = super::frame::encode(header.id, reply);
            if !matches!(request, Request::Hello { .. }) {
                frame[..4].copy_from_slice(&u32::MAX.to_be_bytes());
            }
            socket.write_all(&frame).await.unwrap();
        }
    });
    let peer = Peer {
        member: Member::new("breaking", "z"),
        address: address.clone(),
    };
    let reply = Transport::new(Duration::from_secs(5))
        .call(&peer, &Request::Ping)
        .await;
    assert!(
        matches!(&reply, Err(RpcError::Connection { .. })),
        "{reply:?}"
    );
    let logged = sink.text();
    assert!(logged.contains("WARN"), "{logged}");
    assert!(logged.contains("peer stream broke"), "{logged}");
    assert!(logged.contains(&format!("peer={address}")), "{logged}");
    assert!(logged.contains("in_flight=1"), "{logged}");
}

/// A peer of the release before versions answers the handshake as any
/// request kind it does not know: it is spoken to as protocol 1.
#[tokio::test]
async fn a_peer_that_predates_versions_is_called_as_protocol_1() {
    let unknown = Response::Failed(
        "undecodable request: Found an enum discriminant that was not in range".into(),
    );
    let (peer, seen) = fake_peer("previous", unknown).await;
    let transport = Transport::new(Duration::from_secs(5));
    for _ in 0..2 {
        assert!(matches!(
            transport.call(&peer, &Request::Ping).await,
            Ok(Response::Pong)
        ));
    }
    assert_eq!(seen.lock().unwrap().len(), 2);
}

/// A peer whose protocol range does not overlap this release's is refused
/// before any request goes to it, with both ranges in the error; it is
/// not a peer that answered (the failure detector counts it as down).
#[tokio::test]
async fn a_peer_speaking_only_newer_protocols_is_refused() {
    let newer = Response::Hello {
        min_protocol: 99,
        protocol: 99,
        release: "dynamo-node 99.0.0".into(),
    };
    let (peer, seen) = fake_peer("newer", newer).await;
    let transport = Transport::new(Duration::from_secs(5));
    let error = transport.call(&peer, &Request::Ping).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, RpcError::Incompatible { .. }), "{message}");
    assert!(!error.peer_answered());
    for part in [
        "newer is incompatible: protocol mismatch",
        &format!(
            "speaks protocols {MIN_PROTOCOL}..={PROTOCOL}",
            MIN_PROTOCOL = handshake::MIN_PROTOCOL,
            PROTOCOL = handshake::PROTOCOL
        ),
        "(\"dynamo-node 99.0.0\") speaks protocols 99..=99",
    ] {
        assert!(message.contains(part), "{part:?} missing in: {message}");
    }
    assert!(seen.lock().unwrap().is_empty());
}

/// The protocol a peer agreed on is known after the first call, and a
/// peer never reached is dialed to learn it: what the coordinator checks
/// before it takes a write with attributes.
#[tokio::test]
async fn the_protocol_a_peer_agreed_on_is_known() {
    let older = Response::Hello {
        min_protocol: 1,
        protocol: 2,
        release: "dynamo-node 0.2.0".into(),
    };
    let (peer, _) = fake_peer("older", older).await;
    let transport = Transport::new(Duration::from_secs(5));
    assert_eq!(transport.protocol_of(&peer).await.unwrap(), 2);
    let current = handshake::answer(handshake::MIN_PROTOCOL, handshake::PROTOCOL, "test");
    let (peer, _) = fake_peer("current", current).await;
    transport.call(&peer, &Request::Ping).await.unwrap();
    assert_eq!(
        transport.protocol_of(&peer).await.unwrap(),
        handshake::DESCRIBED
    );
    let unreachable = Peer {
        member: peer.member.clone(),
        address: "127.0.0.1:1".into(),
    };
    assert!(transport.protocol_of(&unreachable).await.is_err());
}

/// The serving side refuses a handshake without a common version, saying
/// why, and goes on serving the stream; requests without a handshake (a
/// dialer of the release before versions) are served too.
#[tokio::test]
async fn a_handshake_without_a_common_version_is_refused_and_the_stream_goes_on() {
    use tokio::io::AsyncWriteExt;

    let (mut peer, node) = tokio::io::duplex(1 << 20);
    tokio::spawn(super::server::serve(Arc::new(TestHandler), node));
    peer.write_all(&super::frame::encode(1, &Request::Ping))
        .await
        .unwrap();
    let newer = Request::Hello {
        min_protocol: 99,
        protocol: 99,
        release: "dynamo-node 99.0.0".into(),
    };
    peer.write_all(&super::frame::encode(2, &newer))
        .await
        .unwrap();
    peer.write_all(&super::frame::encode(3, &handshake::hello()))
        .await
        .unwrap();
    let mut buf = Vec::new();
    let stall = Duration::from_secs(5);
    let mut next = async || -> (u64, Response) {
        super::frame::read(&mut peer, &mut buf, stall)
            .await
            .unwrap()
    };
    assert!(matches!(next().await, (1, Response::Pong)));
    let (id, refusal) = next().await;
    assert_eq!(id, 2);
    assert!(
        matches!(&refusal, Response::Failed(m) if m.starts_with("protocol mismatch") && m.contains("99..=99")),
        "{refusal:?}"
    );
    let (id, agreed) = next().await;
    assert_eq!(id, 3);
    assert!(
        matches!(agreed, Response::Hello { protocol, .. } if protocol == handshake::PROTOCOL),
        "{agreed:?}"
    );
}

/// Runs `test` with spans traced (exported nowhere), on this thread and
/// the tasks it runs.
async fn traced<F: Future>(test: F) -> F::Output {
    use tracing_subscriber::layer::SubscriberExt;

    let tracing = dynamo_telemetry::Tracing::start("test", vec![], None).unwrap();
    let subscriber = tracing_subscriber::registry().with(tracing.layer());
    let _default = tracing::subscriber::set_default(subscriber);
    test.await
}

/// A span child of a known remote one, and its own context.
fn client_span() -> (tracing::Span, dynamo_telemetry::TraceParent) {
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let span = tracing::info_span!("client request");
    dynamo_telemetry::TraceParent::parse(parent)
        .unwrap()
        .adopt(&span);
    let context = dynamo_telemetry::TraceParent::of(&span).unwrap();
    (span, context)
}

/// A request made inside a traced span carries the span's context to a
/// peer that agreed on a protocol with trace contexts; one made outside
/// any span carries none.
#[tokio::test]
async fn a_request_in_a_traced_span_carries_its_context() {
    use tracing::Instrument;

    traced(async {
        let agreed = handshake::answer(handshake::MIN_PROTOCOL, handshake::PROTOCOL, "test");
        let (peer, seen) = fake_peer("current", agreed).await;
        let transport = Transport::new(Duration::from_secs(5));
        let (span, context) = client_span();
        let reply = transport.call(&peer, &Request::Ping).instrument(span).await;
        assert!(matches!(reply, Ok(Response::Pong)), "{reply:?}");
        transport.call(&peer, &Request::Ping).await.unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen, [Some(TraceContext::of(context)), None]);
    })
    .await;
}

/// A peer of the release before versions (protocol 1) is never sent a
/// trace context, which it could not read.
#[tokio::test]
async fn a_peer_of_protocol_1_gets_no_trace_context() {
    use tracing::Instrument;

    traced(async {
        let unknown = Response::Failed("undecodable request: Found an enum discriminant".into());
        let (peer, seen) = fake_peer("previous", unknown).await;
        let transport = Transport::new(Duration::from_secs(5));
        let (span, _) = client_span();
        let reply = transport.call(&peer, &Request::Ping).instrument(span).await;
        assert!(matches!(reply, Ok(Response::Pong)), "{reply:?}");
        assert_eq!(*seen.lock().unwrap(), [None]);
    })
    .await;
}

/// Notes the trace each request was handled in, answered now or later.
#[derive(Default)]
struct TraceRecorder(std::sync::Mutex<Vec<Option<dynamo_telemetry::TraceParent>>>);

impl TraceRecorder {
    fn note(&self) {
        let context = dynamo_telemetry::TraceParent::of(&tracing::Span::current());
        self.0.lock().unwrap().push(context);
    }
}

impl RequestHandler for TraceRecorder {
    fn handle_now(&self, request: Request) -> Result<Response, Request> {
        match request {
            Request::Ping => {
                self.note();
                Ok(Response::Pong)
            }
            other => Err(other),
        }
    }

    async fn handle_async(self: Arc<Self>, _: Request) -> Response {
        self.note();
        Response::Written
    }

    fn stall_timeout(&self) -> Duration {
        Duration::from_secs(5)
    }
}

/// The serving node handles a request that carries a trace context in a
/// span of that trace (its own span, a child of the sender's), whether it
/// answers at once or later; a request without one, in no span.
#[tokio::test]
async fn a_traced_request_is_handled_in_a_span_of_its_trace() {
    use tracing::Instrument;

    traced(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let recorder = Arc::new(TraceRecorder::default());
        let handler = recorder.clone();
        let app = Router::new().route(
            STREAM_PATH,
            get(move |r: HttpRequest| accept_stream(handler.clone(), r)),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let peer = Peer {
            member: Member {
                id: "p".into(),
                zone: "z".into(),
            },
            address,
        };
        let transport = Transport::new(Duration::from_secs(5));
        let (span, client) = client_span();
        let merge = Request::MergeBatch { items: Vec::new() };
        async {
            transport.call(&peer, &Request::Ping).await.unwrap();
            transport.call(&peer, &merge).await.unwrap();
        }
        .instrument(span)
        .await;
        transport.call(&peer, &Request::Ping).await.unwrap();
        let handled = recorder.0.lock().unwrap().clone();
        assert_eq!(handled.len(), 3);
        for context in &handled[..2] {
            let context = context.expect("a traced request is handled in a span");
            assert_eq!(context.trace_id(), client.trace_id());
            assert_ne!(context.span_id(), client.span_id());
        }
        assert_eq!(handled[2], None);
    })
    .await;
}
