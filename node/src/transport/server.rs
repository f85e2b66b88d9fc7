//! Accepting a peer's stream and answering its requests.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request as HttpRequest;
use axum::http::{StatusCode, header};
use axum::response::Response as HttpResponse;
use hyper_util::rt::TokioIo;
use tokio::io::BufReader;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tracing::{Instrument, Span};

use super::frame::{self, FrameError};
use super::handshake;
use super::limits::{CONNECTION_BYTES, FRAME_OVERHEAD};
use super::{Request, Response, TraceContext, UPGRADE_PROTOCOL};

/// What a node does with the requests its peers send.
pub trait RequestHandler: Send + Sync + 'static {
    /// Answers a request that completes without waiting on other nodes
    /// (local reads and merges), or returns it for [`Self::handle_async`].
    fn handle_now(&self, request: Request) -> Result<Response, Request>;
    /// Answers a request that waits on other nodes or on a write (a
    /// forwarded write, a merge). Its reply should be no larger than the
    /// request's share of the stream's memory budget (its size, at least
    /// [`FRAME_OVERHEAD`]), as it never waits for more (see
    /// `transport/server.rs`).
    fn handle_async(self: Arc<Self>, request: Request) -> impl Future<Output = Response> + Send;
    /// How long a peer may stall in the middle of a frame, or leave the
    /// node's replies unread, before its stream is closed.
    fn stall_timeout(&self) -> Duration;
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

/// Serves one peer stream: reads requests, answers them, writes replies.
///
/// Memory is bounded per stream by a budget of [`CONNECTION_BYTES`]: each
/// frame read takes its share of it (at least [`FRAME_OVERHEAD`]) before
/// its payload is read, and each reply from the time it is encoded until
/// it is handed to the socket. When the budget is spent, reading stops
/// until the peer reads replies; nothing is dropped. A request answered at
/// once gives its share back and its reply takes a share of its own
/// (waiting for it, so a peer that reads no replies soon finds its stream
/// unread). A request answered later ([`RequestHandler::handle_async`])
/// keeps its share for its reply, plus what more the reply needs if that
/// is free right away: such replies (written, a forwarded write's version
/// vector, an error) are no larger than their requests' share in practice,
/// and they never wait, so that no task holding a share can wait for one.
/// A peer that stalls inside a frame, or reads no reply for the stall
/// timeout, loses the stream.
///
/// A request whose frame carries a trace context (protocol 2 on, see
/// [`handshake`]) is handled, now or later, in a span that is the child
/// of the sender's; others in none.
pub(super) async fn serve<H, S>(handler: Arc<H>, stream: S)
where
    H: RequestHandler,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let stall = handler.stall_timeout();
    let (reader, writer) = tokio::io::split(stream);
    // Unbounded in frames, bounded in bytes by the budget each holds a
    // share of.
    let (replies, queue) = mpsc::unbounded_channel::<Reply>();
    tokio::spawn(frame::write_loop(writer, queue, Some(stall)));
    let budget = Arc::new(Semaphore::new(CONNECTION_BYTES));
    let mut reader = BufReader::with_capacity(256 << 10, reader);
    let mut buf = Vec::new();
    loop {
        let header = tokio::select! {
            header = frame::read_header::<_, Request>(&mut reader, stall) => header,
            // The writer gave up on the peer.
            () = replies.closed() => return,
        };
        let header = match header {
            Ok(header) => header,
            Err(error) => return closing(&error),
        };
        let Some(share) = reserve(&budget, header.len, &replies).await else {
            return;
        };
        let payload = frame::read_payload_with_trailer(&mut reader, &header, &mut buf, stall);
        let (answer, span) = match payload.await {
            // The handshake is the transport's own; a peer that sends none
            // (the release before versions) is served all the same.
            Ok((
                Request::Hello {
                    min_protocol,
                    protocol,
                    release,
                },
                _,
            )) => (
                Ok(handshake::answer(min_protocol, protocol, &release)),
                Span::none(),
            ),
            Ok((request, context)) => {
                let span = handling_span(&request, context);
                (span.in_scope(|| handler.handle_now(request)), span)
            }
            // The frame was whole: say so and go on with the next.
            Err(FrameError::Decode(error)) => (Ok(undecodable(&error)), Span::none()),
            Err(error @ FrameError::Trailing(_)) => (Ok(undecodable(&error)), Span::none()),
            Err(error) => return closing(&error),
        };
        match answer {
            Ok(response) => {
                drop(share);
                let frame = frame::encode(header.id, &response);
                drop(response);
                let Some(share) = reserve(&budget, frame.len(), &replies).await else {
                    return;
                };
                if replies.send(Reply::new(frame, share)).is_err() {
                    return;
                }
            }
            Err(request) => {
                let answer =
                    answer_later(handler.clone(), request, header.id, share, budget.clone())
                        .instrument(span);
                let replies = replies.clone();
                tokio::spawn(async move {
                    let _ = replies.send(answer.await);
                });
            }
        }
    }
}

/// The answer to a request whose frame was whole but not a request.
fn undecodable(error: &dyn std::fmt::Display) -> Response {
    Response::Failed(format!("undecodable request: {error}"))
}

/// The span a peer's request is handled in: a child of the sender's span
/// the request carries the context of, else none.
fn handling_span(request: &Request, context: Option<TraceContext>) -> Span {
    let Some(parent) = context.as_ref().and_then(TraceContext::parent) else {
        return Span::none();
    };
    let span = tracing::info_span!(
        "peer request",
        otel.name = request.kind(),
        otel.kind = "server"
    );
    parent.adopt(&span);
    span
}

/// The reply to a request answered by [`RequestHandler::handle_async`],
/// with the request's `share` of the budget and, if free right away, what
/// more the reply needs (see [`serve`]).
async fn answer_later<H: RequestHandler>(
    handler: Arc<H>,
    request: Request,
    id: u64,
    mut share: OwnedSemaphorePermit,
    budget: Arc<Semaphore>,
) -> Reply {
    let frame = frame::encode(id, &handler.handle_async(request).await);
    let more = frame.len().saturating_sub(share.num_permits());
    if more > 0
        && let Ok(extra) = budget.try_acquire_many_owned(permits(more))
    {
        share.merge(extra);
    }
    Reply::new(frame, share)
}

/// A reply frame and its share of the stream's budget, given back once
/// the writer hands the frame on.
struct Reply {
    frame: Vec<u8>,
    _share: OwnedSemaphorePermit,
}

impl Reply {
    fn new(frame: Vec<u8>, share: OwnedSemaphorePermit) -> Self {
        Self {
            frame,
            _share: share,
        }
    }
}

impl AsRef<[u8]> for Reply {
    fn as_ref(&self) -> &[u8] {
        &self.frame
    }
}

/// Waits for a share of `budget` for `bytes` (see [`serve`]); `None` when
/// the writer has given up on the peer meanwhile.
async fn reserve(
    budget: &Arc<Semaphore>,
    bytes: usize,
    replies: &mpsc::UnboundedSender<Reply>,
) -> Option<OwnedSemaphorePermit> {
    tokio::select! {
        share = budget.clone().acquire_many_owned(permits(bytes)) => share.ok(),
        () = replies.closed() => None,
    }
}

/// Permits standing for `bytes`: at least the per-frame overhead, at most
/// the whole budget (a larger frame is taken alone).
fn permits(bytes: usize) -> u32 {
    let permits = bytes.clamp(FRAME_OVERHEAD, CONNECTION_BYTES);
    u32::try_from(permits).expect("the budget fits in u32")
}

/// Logs why a stream is closed; a peer hanging up is routine.
fn closing(error: &FrameError) {
    match error {
        FrameError::Io(_) => tracing::debug!(%error, "peer stream closed"),
        _ => tracing::warn!(%error, "closing peer stream"),
    }
}
