//! Gossip: every round a node exchanges its ring document and heartbeat
//! counters with one random member (push-pull), so a ring published to one
//! node reaches all, and every node learns when others were last active.
//! Every few rounds, and always while this node is not yet in the ring, it
//! also talks to a seed (the peers it was started with), so nodes started
//! apart still find each other.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dynamo_ring::NodeId;
use rand::seq::IndexedRandom;
use serde::Serialize;

use crate::membership::Membership;
use crate::peer::Peer;
use crate::periodic::{PeriodicTask, RoundError};
use crate::ring_adoption::RingAdoption;
use crate::sync::lock;
use crate::transport::{Dialing, GossipDigest, Request, Response, Transport};

/// A seed is contacted at least every this many rounds.
const SEED_EVERY: u64 = 5;

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

    /// Takes in a peer's digest: a newer ring is adopted, higher heartbeat
    /// counters are recorded.
    pub fn absorb(&self, digest: GossipDigest) {
        if let Err(error) = self.rings.adopt(digest.ring) {
            tracing::warn!(from = %digest.from, %error, "ignoring a gossiped ring");
        }
        let me = self.membership.me();
        let now = Instant::now();
        let mut heartbeats = lock(&self.heartbeats);
        for (id, counter) in digest.heartbeats {
            if id == me {
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
    /// is skipped (logged at debug level), the others are still gossiped
    /// with.
    async fn round(&self) -> Result<(), RoundError> {
        let round = self.round.fetch_add(1, Ordering::Relaxed) + 1;
        for peer in self.partners(round) {
            let request = Request::Gossip(Box::new(self.digest()));
            match self.transport.call(&peer, &request).await {
                Ok(Response::Gossip(reply)) => {
                    self.membership.liveness().record_success(&peer.member.id);
                    self.absorb(*reply);
                }
                Ok(_) => tracing::debug!(peer = %peer.member.id, "unexpected gossip reply"),
                Err(error) => tracing::debug!(peer = %peer.member.id, %error, "gossip failed"),
            }
        }
        Ok(())
    }
}
