//! Who is in the cluster, where they live on the ring, and whether they are
//! reachable as this node sees it.

mod liveness;

use std::collections::BTreeMap;
use std::sync::Arc;

use dynamo_ring::{NodeId, Ring};

use crate::config::Peer;
pub use liveness::{Liveness, PeerState, PeerStatus};

/// This node's view of the cluster: the ring, member addresses, liveness.
pub struct Membership {
    me: NodeId,
    ring: Arc<Ring>,
    peers: BTreeMap<NodeId, Arc<Peer>>,
    /// Per partition, the owners in preference order (precomputed: the hot
    /// path only clones an `Arc`).
    preference: Vec<Arc<[Arc<Peer>]>>,
    liveness: Liveness,
}

impl Membership {
    /// A static membership: every node started with the same member list
    /// computes the same ring.
    pub fn new(me: NodeId, ring: Ring, peers: Vec<Peer>) -> Self {
        let liveness = Liveness::new(peers.iter().map(|p| p.member.id.clone()));
        let peers: BTreeMap<NodeId, Arc<Peer>> = peers
            .into_iter()
            .map(|p| (p.member.id.clone(), Arc::new(p)))
            .collect();
        let preference = (0..ring.partitions)
            .map(|partition| {
                ring.preference_list(partition)
                    .into_iter()
                    .filter_map(|m| peers.get(&m.id).cloned())
                    .collect()
            })
            .collect();
        Self {
            me,
            ring: Arc::new(ring),
            peers,
            preference,
            liveness,
        }
    }

    /// This node's id.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// The current ring.
    pub fn ring(&self) -> &Arc<Ring> {
        &self.ring
    }

    /// Every member other than this node.
    pub fn others(&self) -> impl Iterator<Item = &Arc<Peer>> {
        self.peers.values().filter(|p| p.member.id != self.me)
    }

    /// Every member including this node, sorted by id.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Peer>> {
        self.peers.values()
    }

    /// The failure detector.
    pub fn liveness(&self) -> &Liveness {
        &self.liveness
    }

    /// The N nodes that hold `key`, in preference order.
    pub fn preference_list(&self, key: &[u8]) -> Arc<[Arc<Peer>]> {
        let partition = self.ring.partition_for_key(key) as usize;
        self.preference[partition].clone()
    }
}
