//! The node-to-node stream, both ways, through the node's public entry
//! points (the frame reader itself is private to `transport`):
//!
//! - [`serve_request_frames`]: a peer that upgrades to the stream and sends
//!   arbitrary bytes; the node reads them as request frames
//!   (`transport::accept_stream`, the route every node serves).
//! - [`call_with_reply_bytes`]: a node that calls a peer which answers the
//!   upgrade and then sends arbitrary bytes; the node reads them as reply
//!   frames (`Transport::call`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dynamo_node::peer::Peer;
use dynamo_node::transport::{
    Request, RequestHandler, Response, STREAM_PATH, Transport, UPGRADE_PROTOCOL, accept_stream,
};
use dynamo_ring::Member;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::{runtime, verbose};

/// Longest an input may keep a stream open: far above what any input
/// needs (its bytes are all there, then the stream ends), so reaching it
/// means the node hangs on a peer that has sent everything and left.
const HANG: Duration = Duration::from_secs(10);

/// How long the node waits for a stalled frame or a call's reply.
const STALL: Duration = Duration::from_millis(200);

/// Answers every request at once without touching any state: what is
/// fuzzed is the reading of frames and requests, not their handling.
struct Answer;

impl RequestHandler for Answer {
    fn handle_now(&self, request: Request) -> Result<Response, Request> {
        match request {
            // The requests a node answers later (they wait on other nodes
            // or on a write) take the other path.
            Request::ReplicaWrite { .. } | Request::MergeBatch { .. } => Err(request),
            Request::CoordinateWrite(_) => Err(request),
            Request::Ping => Ok(Response::Pong),
            other => Ok(Response::Failed(other.kind().to_string())),
        }
    }

    async fn handle_async(self: Arc<Self>, request: Request) -> Response {
        drop(request);
        Response::Written
    }

    fn stall_timeout(&self) -> Duration {
        STALL
    }
}

/// Upgrades an in-memory HTTP/1.1 connection to the node-to-node stream,
/// sends `data` on it, ends the stream, and reads the node's replies until
/// the node closes its side.
pub fn serve_request_frames(data: &[u8]) {
    runtime().block_on(async {
        let (client, server) = tokio::io::duplex(64 << 10);
        let handler = Arc::new(Answer);
        let service = hyper::service::service_fn(move |request: http::Request<_>| {
            let handler = handler.clone();
            async move {
                let request = request.map(axum::body::Body::new);
                Ok::<_, Infallible>(accept_stream(handler, request).await)
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(server), service)
            .with_upgrades();
        let served = tokio::spawn(connection);
        let (mut reader, mut writer) = tokio::io::split(client);
        let head = format!(
            "GET {STREAM_PATH} HTTP/1.1\r\nHost: fuzz\r\nConnection: Upgrade\r\nUpgrade: {UPGRADE_PROTOCOL}\r\n\r\n"
        );
        writer.write_all(head.as_bytes()).await.expect("head");
        let status = read_head(&mut reader).await;
        assert_eq!(status, Some(101), "the stream route refused the upgrade");
        let send = async {
            // The node may close the stream before taking everything.
            let _ = writer.write_all(data).await;
            let _ = writer.shutdown().await;
        };
        let drain = async {
            let mut replies = Vec::new();
            let _ = reader.read_to_end(&mut replies).await;
            if verbose() {
                eprintln!("the node replied with {} bytes", replies.len());
            }
        };
        let both = async { tokio::join!(send, drain) };
        tokio::time::timeout(HANG, both)
            .await
            .expect("the node kept a finished stream open");
        let _ = served.await;
    });
}

/// Reads an HTTP response head; its status, or `None` if the stream ended
/// first or the head is malformed.
async fn read_head<R: AsyncRead + Unpin>(reader: &mut R) -> Option<u16> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if reader.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut response = httparse::Response::new(&mut headers);
    response.parse(&head).ok()?;
    response.code
}

/// A peer on the loopback interface that upgrades each connection, reads
/// the node's first request frame, then sends the bytes it is handed and
/// closes.
struct FakePeer {
    address: SocketAddr,
    replies: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
}

fn fake_peer() -> &'static FakePeer {
    static PEER: OnceLock<FakePeer> = OnceLock::new();
    PEER.get_or_init(|| {
        let listener = runtime().block_on(async {
            TcpListener::bind("127.0.0.1:0")
                .await
                .expect("binding the fake peer")
        });
        let address = listener.local_addr().expect("fake peer address");
        let (replies, mut queue) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        runtime().spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let Some(reply) = queue.recv().await else {
                    return;
                };
                tokio::spawn(async move {
                    let _ = answer(&mut stream, &reply).await;
                });
            }
        });
        FakePeer { address, replies }
    })
}

/// One connection of the fake peer: the upgrade, the request, `reply`.
async fn answer(stream: &mut tokio::net::TcpStream, reply: &[u8]) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let upgraded = format!(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: {UPGRADE_PROTOCOL}\r\n\r\n"
    );
    stream.write_all(upgraded.as_bytes()).await?;
    // The request: its length, then that many bytes.
    let len = stream.read_u32().await?;
    let mut request = vec![0; len as usize];
    stream.read_exact(&mut request).await?;
    stream.write_all(reply).await?;
    // Closing first leaves the TIME_WAIT on this side, so the node's
    // ephemeral ports are free again at once.
    stream.shutdown().await?;
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await?;
    Ok(())
}

/// Calls the fake peer with a ping; the peer answers the node's first
/// request (the version handshake) with `data`, which the node reads as
/// reply frames: to the handshake (id 0), then to the ping (id 1) if the
/// handshake agreed on a version.
pub fn call_with_reply_bytes(data: &[u8]) {
    let peer = fake_peer();
    peer.replies
        .send(data.to_vec())
        .expect("the fake peer runs");
    let target = Peer {
        member: Member::new("fuzz-peer", "z"),
        address: peer.address.to_string(),
    };
    runtime().block_on(async {
        let transport = Transport::new(STALL);
        let call = transport.call(&target, &Request::Ping);
        let outcome = tokio::time::timeout(HANG, call)
            .await
            .expect("the call outlived its own timeout");
        // Any outcome is fine.
        if verbose() {
            eprintln!("the call returned {outcome:?}");
        }
    });
}
