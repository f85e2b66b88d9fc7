//! Gossip: every round a node exchanges its ring document and heartbeat
//! counters with one random member (push-pull), so a ring published to one
//! node reaches all, and every node learns when others were last active.
//! Every few rounds, and always while this node is not yet in the ring, it
//! also talks to a seed (the peers it was started with), so nodes started
//! apart still find each other.
//!
//! What a peer says is checked: a gossiped ring goes through adoption (off
//! the async runtime), which refuses rings that may not follow the current
//! one, and heartbeats are kept for ring members only. A refused ring and
//! a failed TLS handshake with a peer are warnings, at most one per peer
//! a minute (`WARN_EVERY`), as they repeat every round.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dynamo_ring::{NodeId, RingDocument};
use rand::seq::IndexedRandom;
use serde::Serialize;

use crate::membership::{Membership, supersedes};
use crate::peer::Peer;
use crate::periodic::{PeriodicTask, RoundError};
use crate::ring_adoption::RingAdoption;
use crate::sync::lock;
use crate::transport::{Dialing, GossipDigest, Request, Response, RpcError, Transport};

/// A seed is contacted at least every this many rounds.
const SEED_EVERY: u64 = 5;

/// A warning about one peer (a ring it gossips is refused, TLS with it
/// fails) is logged at most this often: the cause repeats every round
/// until someone fixes it, and one line a minute says so without flooding
/// the log.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// When a warning about each peer was last logged.
#[derive(Default)]
struct PeerWarnings {
    last: Mutex<HashMap<NodeId, Instant>>,
}

impl PeerWarnings {
    /// Whether a warning about `peer` may be logged now; if so, the next
    /// one waits [`WARN_EVERY`].
    fn due(&self, peer: &str) -> bool {
        let now = Instant::now();
        let mut last = lock(&self.last);
        if last
            .get(peer)
            .is_some_and(|at| now.duration_since(*at) < WARN_EVERY)
        {
            return false;
        }
        last.insert(peer.to_string(), now);
        true
    }
}

/// A member's heartbeat as this node last learned it.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Heartbeat {
    /// The member's own round counter.
    pub counter: u64,
    /// Milliseconds since the counter last went up.
    pub age_ms: u64,
}

/// Gossip state: heartbeats and the seeds.
pub struct Gossip {
    membership: Arc<Membership>,
    rings: Arc<RingAdoption>,
    seeds: Vec<Peer>,
    transport: Transport,
    interval: Duration,
    round: AtomicU64,
    heartbeats: Mutex<HashMap<NodeId, (u64, Instant)>>,
    warnings: Arc<PeerWarnings>,
}

impl Gossip {
    /// Gossip for this node every `interval`; `seeds` are contacted to
    /// join and to heal logical partitions.
    pub fn new(
        membership: Arc<Membership>,
        rings: Arc<RingAdoption>,
        seeds: Vec<Peer>,
        dialing: Dialing,
        interval: Duration,
    ) -> Self {
        Self {
            membership,
            rings,
            seeds,
            transport: Transport::dialing(dialing),
            interval,
            round: AtomicU64::new(0),
            heartbeats: Mutex::new(HashMap::new()),
            warnings: Arc::default(),
        }
    }

    /// This node's digest for a gossip exchange.
    pub fn digest(&self) -> GossipDigest {
        let me = self.membership.me().to_string();
        let mut heartbeats: Vec<(NodeId, u64)> = lock(&self.heartbeats)
            .iter()
            .map(|(id, (counter, _))| (id.clone(), *counter))
            .collect();
        heartbeats.retain(|(id, _)| *id != me);
        heartbeats.push((me.clone(), self.round.load(Ordering::Relaxed)));
        GossipDigest {
            from: me,
            ring: self.membership.view().doc().clone(),
            heartbeats,
        }
    }

    /// Takes in a peer's digest: a newer ring is handed to adoption,
    /// higher heartbeat counters of ring members are recorded. Must run on
    /// the async runtime.
    pub fn absorb(&self, digest: GossipDigest) {
        self.offer_ring(digest.from, digest.ring);
        self.record_heartbeats(digest.heartbeats);
    }

    /// Adopts `ring`, gossiped by `from`, if it supersedes the current one:
    /// on a blocking thread, as validating and switching to a large ring
    /// takes milliseconds to seconds. A refused ring is a warning.
    fn offer_ring(&self, from: NodeId, ring: RingDocument) {
        if !supersedes(&ring, self.membership.view().doc()) {
            return;
        }
        let rings = self.rings.clone();
        let warnings = self.warnings.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(error) = rings.adopt(ring)
                && warnings.due(&from)
            {
                tracing::warn!(%from, %error, "ignoring a gossiped ring");
            }
        });
    }

    /// Records the heartbeat counters that went up. Counters of ids that
    /// are not ring members (strangers, or members since removed) are not
    /// kept: a peer cannot make this node track any id it likes.
    fn record_heartbeats(&self, heard: Vec<(NodeId, u64)>) {
        let view = self.membership.view();
        let me = self.membership.me();
        let now = Instant::now();
        let mut heartbeats = lock(&self.heartbeats);
        heartbeats.retain(|id, _| view.peer(id).is_some());
        for (id, counter) in heard {
            if id == me || view.peer(&id).is_none() {
                continue;
            }
            let entry = heartbeats.entry(id).or_insert((0, now));
            if counter > entry.0 {
                *entry = (counter, now);
            }
        }
    }

    /// Heartbeats of every member this node has heard of.
    pub fn heartbeats(&self) -> HashMap<NodeId, Heartbeat> {
        lock(&self.heartbeats)
            .iter()
            .map(|(id, (counter, at))| {
                let age_ms = u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX);
                (
                    id.clone(),
                    Heartbeat {
                        counter: *counter,
                        age_ms,
                    },
                )
            })
            .collect()
    }

    /// Whom to gossip with this round: a random other member, plus a random
    /// seed every [`SEED_EVERY`] rounds or while this node is not a member.
    fn partners(&self, round: u64) -> Vec<Peer> {
        let view = self.membership.view();
        let me = self.membership.me();
        let others: Vec<&Arc<Peer>> = view.all().filter(|p| p.member.id != me).collect();
        let mut rng = rand::rng();
        let mut partners: Vec<Peer> = others
            .choose(&mut rng)
            .map(|p| p.as_ref().clone())
            .into_iter()
            .collect();
        let member = view.peer(me).is_some();
        if !member || round.is_multiple_of(SEED_EVERY) {
            let seeds: Vec<&Peer> = self
                .seeds
                .iter()
                .filter(|s| s.member.id != me && !partners.iter().any(|p| p.address == s.address))
                .collect();
            if let Some(seed) = seeds.choose(&mut rng) {
                partners.push((*seed).clone());
            }
        }
        partners
    }
}

impl PeriodicTask for Gossip {
    fn name(&self) -> &'static str {
        "gossip"
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    /// Exchanges digests with this round's partners; a partner that fails
    /// is skipped, the others are still gossiped with. A failed TLS
    /// handshake (an expired certificate, another CA) is a warning, other
    /// failures (a peer down) are logged at debug level.
    async fn round(&self) -> Result<(), RoundError> {
        let round = self.round.fetch_add(1, Ordering::Relaxed) + 1;
        for peer in self.partners(round) {
            let request = Request::Gossip(Box::new(self.digest()));
            let id = &peer.member.id;
            match self.transport.call(&peer, &request).await {
                Ok(Response::Gossip(reply)) => {
                    self.membership.liveness().record_success(id);
                    self.absorb(*reply);
                }
                Ok(_) => tracing::debug!(peer = %id, "unexpected gossip reply"),
                Err(error) if is_tls_failure(&error) && self.warnings.due(id) => {
                    tracing::warn!(peer = %id, %error, "TLS with a peer failed");
                }
                Err(error) => tracing::debug!(peer = %id, %error, "gossip failed"),
            }
        }
        Ok(())
    }
}

/// Whether a call failed in the TLS handshake or TLS set-up (the
/// transport says so in the reason of a connection failure).
fn is_tls_failure(error: &RpcError) -> bool {
    matches!(error, RpcError::Connection { reason, .. } if reason.contains("TLS"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_about_a_peer_waits_its_interval() {
        let warnings = PeerWarnings::default();
        assert!(warnings.due("a"));
        assert!(!warnings.due("a"));
        assert!(warnings.due("b"));
        let long_ago = Instant::now().checked_sub(WARN_EVERY);
        if let Some(long_ago) = long_ago {
            lock(&warnings.last).insert("a".into(), long_ago);
            assert!(warnings.due("a"));
        }
    }

    #[test]
    fn only_tls_connection_failures_count_as_tls_failures() {
        let connection = |reason: &str| RpcError::Connection {
            peer: "b".into(),
            reason: reason.into(),
        };
        assert!(is_tls_failure(&connection(
            "TLS handshake: invalid peer certificate: UnknownIssuer"
        )));
        assert!(!is_tls_failure(&connection(
            "Connection refused (os error 111)"
        )));
        assert!(!is_tls_failure(&RpcError::Timeout {
            peer: "b".into(),
            timeout_ms: 1
        }));
    }
}
