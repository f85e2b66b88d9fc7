//! A fault-injecting TCP proxy in front of one node's internal port.
//!
//! Every node dials its peers from its own loopback IP (127.0.B.i), so the
//! proxy in front of node j can tell which node a connection comes from.
//! Cutting node i off means: its own proxy refuses everything and closes
//! what is open, and every other proxy refuses and closes connections
//! coming from node i's IP. Client traffic goes straight to the nodes'
//! client ports and is never cut. A proxy can also hold every answer of
//! its node for a while (a slow replica: a stalled disk, a busy machine)
//! without slowing what goes to it.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;

#[derive(Default)]
struct Rules {
    /// Refuse every connection.
    isolated: bool,
    /// Refuse connections from these source IPs.
    blocked: HashSet<IpAddr>,
    /// Open connections by source IP.
    open: Vec<(IpAddr, AbortHandle)>,
}

impl Rules {
    fn refuses(&self, source: IpAddr) -> bool {
        self.isolated || self.blocked.contains(&source)
    }

    fn close_refused(&mut self) {
        let (closing, open): (Vec<_>, Vec<_>) = std::mem::take(&mut self.open)
            .into_iter()
            .partition(|(ip, _)| self.isolated || self.blocked.contains(ip));
        for (_, handle) in closing {
            handle.abort();
        }
        self.open = open;
    }
}

/// A proxy listening on `address` and forwarding to `target`.
pub struct FaultProxy {
    /// Where it listens: the address peers are told to dial.
    pub address: SocketAddr,
    rules: Arc<Mutex<Rules>>,
    /// How long each answer of the node is held, in microseconds.
    delay_us: Arc<AtomicU64>,
    accept: AbortHandle,
}

impl FaultProxy {
    /// Starts a proxy on `ip` (any free port) in front of `target`.
    pub async fn start(ip: IpAddr, target: SocketAddr) -> Self {
        let listener = TcpListener::bind((ip, 0)).await.expect("binding a proxy");
        let address = listener.local_addr().unwrap();
        let rules = Arc::new(Mutex::new(Rules::default()));
        let accept_rules = rules.clone();
        let delay_us = Arc::new(AtomicU64::new(0));
        let delay = delay_us.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((inbound, from)) = listener.accept().await else {
                    continue;
                };
                if accept_rules.lock().unwrap().refuses(from.ip()) {
                    drop(inbound);
                    continue;
                }
                let task = tokio::spawn(pipe(inbound, target, delay.clone()));
                let mut rules = accept_rules.lock().unwrap();
                rules.open.retain(|(_, h)| !h.is_finished());
                rules.open.push((from.ip(), task.abort_handle()));
            }
        })
        .abort_handle();
        Self {
            address,
            rules,
            delay_us,
            accept,
        }
    }

    /// Holds every byte the node sends back for `delay` (zero: none) before
    /// passing it on, on open connections too; what goes to the node is
    /// not held.
    pub fn set_delay(&self, delay: Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.delay_us.store(micros, Ordering::Relaxed);
    }

    /// Refuses (or again accepts) every connection.
    pub fn set_isolated(&self, isolated: bool) {
        let mut rules = self.rules.lock().unwrap();
        rules.isolated = isolated;
        rules.close_refused();
    }

    /// Refuses (or again accepts) connections from `source`.
    pub fn set_blocked(&self, source: IpAddr, blocked: bool) {
        let mut rules = self.rules.lock().unwrap();
        match blocked {
            true => rules.blocked.insert(source),
            false => rules.blocked.remove(&source),
        };
        rules.close_refused();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for (_, handle) in self.rules.lock().unwrap().open.drain(..) {
            handle.abort();
        }
    }
}

async fn pipe(inbound: TcpStream, target: SocketAddr, delay_us: Arc<AtomicU64>) {
    let Ok(outbound) = TcpStream::connect(target).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (mut from_peer, to_peer) = inbound.into_split();
    let (from_node, mut to_node) = outbound.into_split();
    // Either side closing ends both (the halves close as they drop).
    tokio::select! {
        _ = tokio::io::copy(&mut from_peer, &mut to_node) => {}
        () = held(from_node, to_peer, delay_us) => {}
    }
}

/// Copies what the node sends to the peer, each chunk passed on `delay_us`
/// after it arrived (the chunks behind it wait no longer than that).
async fn held(mut from_node: OwnedReadHalf, mut to_peer: OwnedWriteHalf, delay_us: Arc<AtomicU64>) {
    let (chunks, mut queued) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0; 64 << 10];
        loop {
            match from_node.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let due =
                        Instant::now() + Duration::from_micros(delay_us.load(Ordering::Relaxed));
                    if chunks.send((due, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = queued.recv().await {
            tokio::time::sleep_until(due).await;
            if to_peer.write_all(&chunk).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(reader, writer);
}
