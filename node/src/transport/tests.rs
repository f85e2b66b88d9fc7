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
use crate::version::{Dot, Object};

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
        value: None,
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
