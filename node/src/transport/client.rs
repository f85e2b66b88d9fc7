//! Calling peers: one lazily (re)connected stream per peer address, each
//! opened with the version handshake (see [`super::handshake`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};

use dynamo_telemetry::TraceParent;

use super::frame::{self, FrameError};
use super::handshake;
use super::{Request, Response, RpcError, STREAM_PATH, TraceContext, UPGRADE_PROTOCOL};
use crate::config::NodeConfig;
use crate::peer::Peer;
use crate::sync::{lock, read, write};
use crate::tls::Tls;

/// Longest HTTP response head accepted during the upgrade.
const MAX_HEAD: usize = 16 << 10;

/// How a transport dials peers.
#[derive(Clone)]
pub struct Dialing {
    /// Timeout of a call (and of a dial).
    pub timeout: Duration,
    /// Local address outgoing connections come from (the node's own
    /// internal IP), so peers and firewalls can tell nodes apart.
    pub source: Option<IpAddr>,
    /// Bearer token peers require, if any.
    pub token: Option<Arc<str>>,
    /// TLS to peers, if the cluster uses it: each dial uses the
    /// certificate and `ca.crt` current when it starts.
    pub tls: Option<Tls>,
}

impl Dialing {
    /// How the node configured by `config` dials peers: its request
    /// timeout, and its own internal IP as the source address unless it
    /// listens on all interfaces.
    pub fn for_node(config: &NodeConfig) -> Self {
        let ip = config.internal_listen.unwrap_or(config.listen).ip();
        Self {
            timeout: config.request_timeout,
            source: (!ip.is_unspecified()).then_some(ip),
            token: config
                .credentials
                .as_ref()
                .map(|c| c.peer().expose().clone()),
            tls: config.tls.clone(),
        }
    }
}

/// Client side of the node-to-node transport, shared by all tasks.
pub struct Transport {
    timeout: Duration,
    source: Option<IpAddr>,
    token: Option<Arc<str>>,
    tls: Option<Tls>,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

/// The connection to one address, and a lock so that only one task dials.
#[derive(Default)]
struct Slot {
    live: RwLock<Option<Arc<Connection>>>,
    dialing: tokio::sync::Mutex<()>,
    /// The protocol agreed in the last handshake with the address (0 before
    /// the first), kept while the connection is down.
    agreed: AtomicU32,
}

struct Connection {
    queue: mpsc::UnboundedSender<Vec<u8>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Response>>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    /// The protocol version agreed in the handshake (0 until then).
    protocol: AtomicU32,
    /// When the connection was opened.
    opened: Instant,
    /// Milliseconds after `opened` of the last frame received.
    last_heard_ms: AtomicU64,
}

impl Connection {
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        lock(&self.pending).clear();
    }

    fn is_open(&self) -> bool {
        !self.closed.load(Ordering::SeqCst)
    }

    /// Notes that a frame arrived.
    fn heard(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_heard_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether nothing arrived for at least `quiet` (while a call waited).
    fn silent_for(&self, quiet: Duration) -> bool {
        let last = Duration::from_millis(self.last_heard_ms.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(last) >= quiet
    }

    fn forget(&self, id: u64) {
        lock(&self.pending).remove(&id);
    }

    /// The frame of `request`: with the trace context of the current span
    /// when there is one and the peer agreed on a protocol that carries it.
    fn frame(&self, id: u64, request: &Request) -> Vec<u8> {
        let context = (self.protocol.load(Ordering::Relaxed) >= handshake::TRACED)
            .then(|| TraceParent::of(&tracing::Span::current()))
            .flatten();
        match context {
            Some(parent) => frame::encode_with_trailer(id, request, &TraceContext::of(parent)),
            None => frame::encode(id, request),
        }
    }
}

impl Transport {
    /// A transport whose calls (and dials) time out after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self::dialing(Dialing {
            timeout,
            source: None,
            token: None,
            tls: None,
        })
    }

    /// A transport dialing as `dialing` says.
    pub fn dialing(dialing: Dialing) -> Self {
        Self {
            timeout: dialing.timeout,
            source: dialing.source,
            token: dialing.token,
            tls: dialing.tls,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `request` to `peer` and waits for its reply.
    pub async fn call(&self, peer: &Peer, request: &Request) -> Result<Response, RpcError> {
        let connection = self.connection(peer).await?;
        self.exchange(peer, &connection, request).await
    }

    /// Sends `request` on `connection` to `peer` and waits for its reply.
    async fn exchange(
        &self,
        peer: &Peer,
        connection: &Connection,
        request: &Request,
    ) -> Result<Response, RpcError> {
        let id = connection.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&connection.pending).insert(id, tx);
        if connection
            .queue
            .send(connection.frame(id, request))
            .is_err()
        {
            connection.close();
            return Err(lost(peer));
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(Response::Failed(message))) => Err(RpcError::Remote {
                peer: peer.member.id.clone(),
                message,
            }),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(_)) => Err(lost(peer)),
            Err(_) => {
                connection.forget(id);
                // A connection that carried nothing back for a whole timeout
                // is dead (the peer moved, a cable was cut, the kernel still
                // retransmits) or its peer is stalled: drop it, the next
                // call dials again.
                if connection.silent_for(self.timeout) {
                    connection.close();
                }
                Err(RpcError::Timeout {
                    peer: peer.member.id.clone(),
                    timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
                })
            }
        }
    }

    /// The protocol version `peer` agreed on in the last handshake with it;
    /// dials it when it was never reached. A peer now down keeps the
    /// version it last spoke (a restart under another release is learned
    /// at the next dial).
    pub async fn protocol_of(&self, peer: &Peer) -> Result<u32, RpcError> {
        let known = lock(&self.slots)
            .get(&peer.address)
            .map_or(0, |slot| slot.agreed.load(Ordering::Relaxed));
        if known > 0 {
            return Ok(known);
        }
        let connection = self.connection(peer).await?;
        Ok(connection.protocol.load(Ordering::Relaxed))
    }

    async fn connection(&self, peer: &Peer) -> Result<Arc<Connection>, RpcError> {
        let slot = {
            let mut slots = lock(&self.slots);
            slots.entry(peer.address.clone()).or_default().clone()
        };
        if let Some(live) = slot.open() {
            return Ok(live);
        }
        let _dialing = slot.dialing.lock().await;
        if let Some(live) = slot.open() {
            return Ok(live);
        }
        let connection = tokio::time::timeout(
            self.timeout,
            dial(
                &peer.address,
                self.source,
                self.token.as_deref(),
                self.tls.as_ref(),
                self.timeout,
            ),
        )
        .await
        .map_err(|_| "dial timed out".to_string())
        .and_then(|r| r)
        .map_err(|reason| RpcError::Connection {
            peer: peer.member.id.clone(),
            reason,
        })?;
        let reply = self.exchange(peer, &connection, &handshake::hello()).await;
        match handshake::outcome(peer, reply) {
            Ok(version) => {
                connection.protocol.store(version, Ordering::Relaxed);
                slot.agreed.store(version, Ordering::Relaxed);
            }
            Err(error) => {
                connection.close();
                return Err(error);
            }
        }
        *write(&slot.live) = Some(connection.clone());
        Ok(connection)
    }
}

impl Slot {
    fn open(&self) -> Option<Arc<Connection>> {
        read(&self.live).as_ref().filter(|c| c.is_open()).cloned()
    }
}

fn lost(peer: &Peer) -> RpcError {
    RpcError::Connection {
        peer: peer.member.id.clone(),
        reason: "connection lost".into(),
    }
}

/// Connects, upgrades to the stream protocol, and starts the reader and
/// writer tasks; a reply frame that stalls for `stall` half-way closes the
/// connection.
async fn dial(
    address: &str,
    source: Option<IpAddr>,
    token: Option<&str>,
    tls: Option<&Tls>,
    stall: Duration,
) -> Result<Arc<Connection>, String> {
    let mut stream = connect(address, source).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let Some(tls) = tls else {
        upgrade(&mut stream, address, token).await?;
        let (reader, writer) = stream.into_split();
        return Ok(start(reader, writer, stall, address));
    };
    let name = crate::tls::server_name(address)?;
    let mut stream = tls
        .connector()
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    upgrade(&mut stream, address, token).await?;
    let (reader, writer) = tokio::io::split(stream);
    Ok(start(reader, writer, stall, address))
}

/// Asks the peer to switch `stream` to the node-to-node protocol.
async fn upgrade<S>(stream: &mut S, address: &str, token: Option<&str>) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let authorization = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "GET {STREAM_PATH} HTTP/1.1\r\nHost: {address}\r\nConnection: Upgrade\r\nUpgrade: {UPGRADE_PROTOCOL}\r\n{authorization}\r\n"
    );
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    read_upgrade_response(stream).await
}

/// Starts the reader and writer tasks of an upgraded connection to
/// `address`.
fn start<R, W>(reader: R, writer: W, stall: Duration, address: &str) -> Arc<Connection>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    // Unbounded, and it needs no bound: each frame is a call whose caller
    // waits for the answer, at most one timeout. When the peer stops
    // reading, nothing comes back either, so within one timeout the
    // connection is closed (see `Transport::call`) and later calls go to a
    // new one: a stalled connection collects at most one timeout's worth of
    // calls, and the failure detector soon stops most calls to that peer.
    let (queue, rx) = mpsc::unbounded_channel();
    let connection = Arc::new(Connection {
        queue,
        pending: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
        closed: AtomicBool::new(false),
        protocol: AtomicU32::new(0),
        opened: Instant::now(),
        last_heard_ms: AtomicU64::new(0),
    });
    // No stall timeout on writes: a peer that stops reading is pushing
    // back (it has as much of this node's requests in hand as it takes),
    // and calls time out on their own.
    tokio::spawn(frame::write_loop(writer, rx, None));
    let weak = Arc::downgrade(&connection);
    tokio::spawn(read_loop(reader, weak, stall, address.to_string()));
    connection
}

/// Opens a TCP connection to `address`, from `source` when given.
async fn connect(address: &str, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(address).await;
    };
    let mut last = None;
    for target in tokio::net::lookup_host(address).await? {
        let socket = match target {
            SocketAddr::V4(_) if source.is_ipv4() => TcpSocket::new_v4()?,
            SocketAddr::V6(_) if source.is_ipv6() => TcpSocket::new_v6()?,
            _ => continue,
        };
        socket.bind(SocketAddr::new(source, 0))?;
        match socket.connect(target).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{address} has no address of the family of {source}"),
        )
    }))
}

/// Reads the HTTP response head; the server sends nothing after it until
/// the first request, so no stream bytes are consumed here.
async fn read_upgrade_response<S: AsyncRead + Unpin>(stream: &mut S) -> Result<(), String> {
    let mut head = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed during upgrade".into());
        }
        head.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&head) {
            Ok(httparse::Status::Complete(len)) => {
                if response.code != Some(101) {
                    return Err(format!("upgrade refused with status {:?}", response.code));
                }
                if len != head.len() {
                    return Err("unexpected bytes after the upgrade response".into());
                }
                return Ok(());
            }
            Ok(httparse::Status::Partial) if head.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => return Err("upgrade response head too long".into()),
            Err(e) => return Err(format!("bad upgrade response: {e}")),
        }
    }
}

/// Hands each reply to its caller until the stream ends or fails. A reply
/// this node cannot decode (a kind a newer peer added) fails its call
/// only: the frame was whole, so the stream goes on.
///
/// It holds the connection weakly: once nothing can call on it any more
/// (its transport dropped it, or was dropped), the connection goes, its
/// writer closes the stream, the peer closes its side, and this ends.
async fn read_loop<R: AsyncRead + Unpin>(
    reader: R,
    connection: Weak<Connection>,
    stall: Duration,
    address: String,
) {
    let mut reader = BufReader::with_capacity(256 << 10, reader);
    let mut buf = Vec::new();
    loop {
        let header = match frame::read_header::<_, Response>(&mut reader, stall).await {
            Ok(header) => header,
            Err(error) => return closed(&connection, &error, &address),
        };
        let response = match frame::read_payload(&mut reader, &header, &mut buf, stall).await {
            Ok(response) => response,
            Err(FrameError::Decode(error)) => {
                Response::Failed(format!("undecodable reply: {error}"))
            }
            Err(error) => return closed(&connection, &error, &address),
        };
        let Some(connection) = connection.upgrade() else {
            return;
        };
        connection.heard();
        let waiter = lock(&connection.pending).remove(&header.id);
        if let Some(waiter) = waiter {
            let _ = waiter.send(response);
        }
    }
}

/// Ends a stream whose replies can no longer be read. Calls still waiting
/// on it fail at once (the next call dials again), which the failure
/// detector counts against the peer: that is worth a warning with its
/// cause, unlike a stream closed with nothing in flight.
fn closed(connection: &Weak<Connection>, error: &FrameError, address: &str) {
    let Some(connection) = connection.upgrade() else {
        tracing::debug!(%error, peer = %address, "peer stream closed");
        return;
    };
    let in_flight = lock(&connection.pending).len();
    match connection.is_open() && in_flight > 0 {
        true => tracing::warn!(
            %error,
            peer = %address,
            in_flight,
            "peer stream broke: the calls in flight on it fail"
        ),
        false => tracing::debug!(%error, peer = %address, "peer stream closed"),
    }
    connection.close();
}
