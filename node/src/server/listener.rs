//! Accepting connections within the caps: client connections up to their
//! cap, then a reserve only node-to-node streams may use (on a shared
//! listener, a connection admitted on the reserve may only open the stream
//! upgrade), and beyond both, new connections are closed at once. TLS
//! handshakes have their own timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::connection::Connection;
use crate::config::ConnectionLimits;
use crate::tls::Tls;

/// Longest wait for open connections to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after a failed accept (such as running out of file descriptors),
/// so that the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The connections a listener may hold open.
pub struct Budget {
    /// Connections that may make any request; `None` when the listener
    /// serves only node-to-node routes.
    clients: Option<Arc<Semaphore>>,
    /// Connections for node-to-node streams; `None` when the listener
    /// serves only clients.
    peers: Option<Arc<Semaphore>>,
    /// Whether the client connections were last found all taken.
    clients_full: AtomicBool,
}

/// A connection's slot, and whether it came from the peer reserve of a
/// listener that also serves clients.
struct Admission {
    slot: OwnedSemaphorePermit,
    peer_only: bool,
}

impl Budget {
    /// A listener serving clients and peers: the client cap, then the
    /// peer reserve.
    pub fn shared(limits: &ConnectionLimits) -> Self {
        Self::new(
            Some(limits.max_client_connections),
            Some(limits.max_peer_connections),
        )
    }

    /// A listener serving clients only.
    pub fn clients(limits: &ConnectionLimits) -> Self {
        Self::new(Some(limits.max_client_connections), None)
    }

    /// A listener serving node-to-node routes only.
    pub fn peers(limits: &ConnectionLimits) -> Self {
        Self::new(None, Some(limits.max_peer_connections))
    }

    fn new(clients: Option<usize>, peers: Option<usize>) -> Self {
        let semaphore = |cap| Arc::new(Semaphore::new(cap));
        Self {
            clients: clients.map(semaphore),
            peers: peers.map(semaphore),
            clients_full: AtomicBool::new(false),
        }
    }

    /// A slot for a new connection: a client one if free, else one of the
    /// peer reserve; `None` when both are taken.
    fn admit(&self) -> Option<Admission> {
        if let Some(clients) = &self.clients {
            if let Ok(slot) = clients.clone().try_acquire_owned() {
                self.clients_full.store(false, Ordering::Relaxed);
                return Some(Admission {
                    slot,
                    peer_only: false,
                });
            }
            if !self.clients_full.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "client connections are at their cap: new connections may only open \
                     node-to-node streams until some close"
                );
            }
        }
        let slot = self.peers.as_ref()?.clone().try_acquire_owned().ok()?;
        Some(Admission {
            slot,
            peer_only: self.clients.is_some(),
        })
    }
}

/// What a listener serves, and within which limits.
pub struct Listener {
    /// The routes.
    pub router: Router,
    /// TLS, if the node serves HTTPS: each connection is accepted with
    /// the certificate current when it arrives.
    pub tls: Option<Tls>,
    /// The connections it may hold open.
    pub budget: Budget,
    /// The timeouts of its connections.
    pub limits: ConnectionLimits,
}

impl Listener {
    /// Serves connections accepted on `tcp` until `stop` turns true, then
    /// lets open connections finish (at most [`DRAIN_TIMEOUT`]). Every
    /// connection gets TCP_NODELAY: replies are small frames, and Nagle's
    /// algorithm combined with the peer's delayed ACKs would hold them for
    /// up to 40 ms at low load.
    pub async fn serve(self, tcp: TcpListener, mut stop: watch::Receiver<bool>) {
        let graceful = GracefulShutdown::new();
        let listener = Arc::new(self);
        loop {
            let accepted = tokio::select! {
                accepted = tcp.accept() => accepted,
                _ = stop.wait_for(|s| *s) => break,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let Some(admission) = listener.budget.admit() else {
                tracing::debug!("closing a new connection: every connection slot is taken");
                continue;
            };
            if let Err(error) = stream.set_nodelay(true) {
                tracing::warn!(%error, "setting TCP_NODELAY");
            }
            tokio::spawn(listener.clone().open(stream, admission, graceful.watcher()));
        }
        drop(tcp);
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the drain timeout");
        }
    }

    /// Serves an admitted connection, after its TLS handshake if any.
    async fn open(self: Arc<Self>, stream: TcpStream, admission: Admission, watcher: Watcher) {
        let mut connection = Connection {
            router: self.router.clone(),
            limits: self.limits.clone(),
            peer_only: admission.peer_only,
            client_certificate: false,
            slot: admission.slot,
        };
        let Some(tls) = &self.tls else {
            return connection.serve(stream, watcher).await;
        };
        match tokio::time::timeout(
            self.limits.tls_handshake_timeout,
            tls.acceptor().accept(stream),
        )
        .await
        {
            Ok(Ok(stream)) => {
                connection.client_certificate = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .is_some_and(|chain| !chain.is_empty());
                connection.serve(stream, watcher).await
            }
            Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
            Err(_) => tracing::debug!("TLS handshake timed out"),
        }
    }
}
