//! Accepting a peer's stream and answering its requests.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request as HttpRequest;
use axum::http::{StatusCode, header};
use axum::response::Response as HttpResponse;
use hyper_util::rt::TokioIo;
use tokio::io::BufReader;
use tokio::sync::mpsc;

use super::{Request, Response, UPGRADE_PROTOCOL, frame};

/// What a node does with the requests its peers send.
pub trait RequestHandler: Send + Sync + 'static {
    /// Answers a request that completes without waiting on other nodes
    /// (local reads and merges), or returns it for [`Self::handle_async`].
    fn handle_now(&self, request: Request) -> Result<Response, Request>;
    /// Answers a request that waits on other nodes (a forwarded write).
    fn handle_async(self: Arc<Self>, request: Request) -> impl Future<Output = Response> + Send;
}

/// Axum handler for the stream route: answers `101 Switching Protocols` and
/// serves the upgraded connection in the background.
pub async fn accept_stream<H: RequestHandler>(
    handler: Arc<H>,
    request: HttpRequest,
) -> HttpResponse {
    let wants_protocol = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(UPGRADE_PROTOCOL));
    if !wants_protocol {
        return HttpResponse::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(Body::from(format!(
                "this route needs Upgrade: {UPGRADE_PROTOCOL}"
            )))
            .expect("static response");
    }
    let on_upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve(handler, TokioIo::new(upgraded)).await,
            Err(error) => tracing::warn!(%error, "peer stream upgrade failed"),
        }
    });
    HttpResponse::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, UPGRADE_PROTOCOL)
        .body(Body::empty())
        .expect("static response")
}

async fn serve<H, S>(handler: Arc<H>, stream: S)
where
    H: RequestHandler,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    // Unbounded, and it needs no bound: it holds answers to the requests
    // the peer has in flight on this stream, which its transport limits
    // (each caller waits for its answer, at most one timeout, and the
    // peer's stream is replaced when it stays silent that long); the peer
    // reads answers continuously, in a task of its own. A bound would let a
    // slow socket stall the reading of requests, even those answered at once.
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(frame::write_loop(writer, rx));
    let mut reader = BufReader::with_capacity(256 << 10, reader);
    let mut buf = Vec::new();
    loop {
        let (id, request): (u64, Request) = match frame::read(&mut reader, &mut buf).await {
            Ok(frame) => frame,
            Err(frame::FrameError::Io(_)) => return,
            Err(error) => {
                tracing::warn!(%error, "closing peer stream");
                return;
            }
        };
        match handler.handle_now(request) {
            Ok(response) => {
                if tx.send(frame::encode(id, &response)).is_err() {
                    return;
                }
            }
            Err(request) => {
                let handler = handler.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let response = handler.handle_async(request).await;
                    let _ = tx.send(frame::encode(id, &response));
                });
            }
        }
    }
}
