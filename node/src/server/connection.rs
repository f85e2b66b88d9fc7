//! One accepted connection, served within its timeouts: a request head
//! must arrive within the header timeout (counted from the accept, or from
//! the first byte of a later request), a body within the body timeout, and
//! a keep-alive connection idle longer than the idle timeout is closed. A
//! connection admitted on the peer reserve may only open a node-to-node
//! stream.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::service::{Service, service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnectionBuilder;
use hyper_util::server::graceful::Watcher;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::time::{Instant, Sleep};

use crate::api::auth::ClientCertificate;
use crate::api::limits;
use crate::config::ConnectionLimits;
use crate::sync::lock;
use crate::transport::STREAM_PATH;

/// How one connection is served.
pub struct Connection {
    /// The routes it serves.
    pub router: Router,
    /// Its timeouts.
    pub limits: ConnectionLimits,
    /// Whether it was admitted on the peer reserve, beyond the client
    /// connections: then it may only open a node-to-node stream.
    pub peer_only: bool,
    /// Whether it presented a client certificate signed by `ca.crt`
    /// (checked in the TLS handshake).
    pub client_certificate: bool,
    /// Its place among the listener's open connections, held as long as
    /// the socket is open (also once a stream upgrade took it over).
    pub slot: OwnedSemaphorePermit,
}

impl Connection {
    /// Serves HTTP on `io` until the connection closes, misses a timeout,
    /// or is drained through `watcher`.
    pub async fn serve<S>(self, io: S, watcher: Watcher)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(Activity::new());
        let io = Tracked {
            inner: io,
            activity: activity.clone(),
            _slot: self.slot,
        };
        let requests = Arc::new(Requests {
            router: TowerToHyperService::new(self.router),
            activity: activity.clone(),
            body_timeout: self.limits.body_read_timeout,
            peer_only: self.peer_only,
            client_certificate: self.client_certificate,
        });
        let service = service_fn(move |request| requests.clone().answer(request));
        let builder = ConnectionBuilder::new(TokioExecutor::new());
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        let connection = watcher.watch(connection.into_owned());
        tokio::select! {
            result = connection => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
            }
            waited = activity.expired(&self.limits) => {
                tracing::debug!(waited, "closing a connection past its timeout");
            }
        }
    }
}

/// Where a connection stands, for its header and idle timeouts.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Waiting for a request head since then (the accept, or the first
    /// byte of a later request).
    Head(Instant),
    /// Idle between requests since then.
    Idle(Instant),
    /// Serving this many requests.
    Busy(usize),
}

/// A connection's phase, and a signal when it changes.
struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Activity {
    /// A connection just accepted: its first request head is awaited.
    fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::Head(Instant::now())),
            changed: Notify::new(),
        }
    }

    /// Applies `step` to the phase, signalling a change.
    fn update(&self, step: impl FnOnce(Phase) -> Phase) {
        let mut phase = lock(&self.phase);
        *phase = step(*phase);
        self.changed.notify_one();
    }

    /// Bytes arrived: an idle connection now awaits a request head.
    fn bytes_read(&self) {
        let mut phase = lock(&self.phase);
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Head(Instant::now());
            self.changed.notify_one();
        }
    }

    /// A request head arrived; the request is served until the guard drops.
    fn busy(self: &Arc<Self>) -> BusyGuard {
        self.update(|phase| match phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            Phase::Head(_) | Phase::Idle(_) => Phase::Busy(1),
        });
        BusyGuard(self.clone())
    }

    /// The deadline of the current phase and what it waits for; `None`
    /// while requests are served.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, &'static str)> {
        match *lock(&self.phase) {
            Phase::Head(since) => Some((since + limits.header_read_timeout, "request head")),
            Phase::Idle(since) => Some((since + limits.idle_timeout, "idle")),
            Phase::Busy(_) => None,
        }
    }

    /// Resolves once the connection is past the deadline of its phase,
    /// with what it waited for.
    async fn expired(&self, limits: &ConnectionLimits) -> &'static str {
        loop {
            match self.deadline(limits) {
                None => self.changed.notified().await,
                Some((deadline, waited)) if deadline <= Instant::now() => return waited,
                Some((deadline, _)) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {}
                        () = self.changed.notified() => {}
                    }
                }
            }
        }
    }
}

/// Marks a request as being served until dropped.
struct BusyGuard(Arc<Activity>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.update(|phase| match phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        });
    }
}

/// A connection's stream: notes reads for the timeouts, and holds the
/// connection's slot until it is dropped.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
    _slot: OwnedSemaphorePermit,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.bytes_read();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Answers a connection's requests.
struct Requests {
    router: TowerToHyperService<Router>,
    activity: Arc<Activity>,
    body_timeout: Duration,
    peer_only: bool,
    client_certificate: bool,
}

impl Requests {
    /// Answers `request` through the router, its body read within the
    /// body timeout; on a peer-only connection, anything but the stream
    /// upgrade gets `503` and the connection is closed.
    async fn answer(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<Body>, Infallible> {
        let _busy = self.activity.busy();
        if self.peer_only && request.uri().path() != STREAM_PATH {
            return Ok(closing(limits::overloaded(
                "too_many_connections",
                "this node's client connections are all taken; retry later",
            )));
        }
        let expired = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + self.body_timeout;
        let mut request = request.map(|body| DeadlineBody {
            inner: body,
            deadline,
            sleep: None,
            expired: expired.clone(),
        });
        if self.client_certificate {
            request.extensions_mut().insert(ClientCertificate);
        }
        let mut response = self.router.call(request).await?;
        if expired.load(Ordering::Relaxed) {
            response = closing(limits::body_timeout(self.body_timeout));
        }
        if self.peer_only && response.status() != StatusCode::SWITCHING_PROTOCOLS {
            response = closing(response);
        }
        Ok(response)
    }
}

/// `response`, asking to close the connection after it.
fn closing(mut response: Response<Body>) -> Response<Body> {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A request body that fails once its deadline passes before its end,
/// noting that in `expired`.
struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    /// Started when the body first has to wait.
    sleep: Option<Pin<Box<Sleep>>>,
    expired: Arc<AtomicBool>,
}

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.expired.store(true, Ordering::Relaxed);
        Poll::Ready(Some(Err("the request body did not arrive in time".into())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(1),
            body_read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
            tls_handshake_timeout: Duration::from_secs(1),
            max_client_connections: 1,
            max_peer_connections: 1,
            max_in_flight_requests: 1,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn heads_and_idle_connections_expire_but_busy_ones_do_not() {
        let limits = limits();
        let activity = Arc::new(Activity::new());
        let start = Instant::now();
        assert_eq!(activity.expired(&limits).await, "request head");
        assert_eq!(start.elapsed(), limits.header_read_timeout);

        let busy = activity.busy();
        let waiting = tokio::time::timeout(Duration::from_secs(600), activity.expired(&limits));
        assert!(waiting.await.is_err(), "a busy connection never expires");

        drop(busy);
        let idle_since = Instant::now();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(activity.deadline(&limits).is_some_and(|(_, w)| w == "idle"));
        activity.bytes_read();
        assert_eq!(activity.expired(&limits).await, "request head");
        assert_eq!(
            idle_since.elapsed(),
            Duration::from_secs(3) + limits.header_read_timeout,
            "the first byte of a request starts the header timeout"
        );
    }
}
