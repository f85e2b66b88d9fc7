//! A fault-injecting TCP proxy in front of one node's internal port.
//!
//! Every node dials its peers from its own loopback IP (127.0.B.i), so the
//! proxy in front of node j can tell which node a connection comes from.
//! Cutting node i off means: its own proxy refuses everything and closes
//! what is open, and every other proxy refuses and closes connections
//! coming from node i's IP. Client traffic goes straight to the nodes'
//! client ports and is never cut.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

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
    accept: AbortHandle,
}

impl FaultProxy {
    /// Starts a proxy on `ip` (any free port) in front of `target`.
    pub async fn start(ip: IpAddr, target: SocketAddr) -> Self {
        let listener = TcpListener::bind((ip, 0)).await.expect("binding a proxy");
        let address = listener.local_addr().unwrap();
        let rules = Arc::new(Mutex::new(Rules::default()));
        let accept_rules = rules.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((inbound, from)) = listener.accept().await else {
                    continue;
                };
                if accept_rules.lock().unwrap().refuses(from.ip()) {
                    drop(inbound);
                    continue;
                }
                let task = tokio::spawn(pipe(inbound, target));
                let mut rules = accept_rules.lock().unwrap();
                rules.open.retain(|(_, h)| !h.is_finished());
                rules.open.push((from.ip(), task.abort_handle()));
            }
        })
        .abort_handle();
        Self {
            address,
            rules,
            accept,
        }
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

async fn pipe(mut inbound: TcpStream, target: SocketAddr) {
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
}
