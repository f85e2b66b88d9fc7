//! Who is in the cluster, where they live on the ring, and whether they are
//! reachable as this node sees it.
//!
//! The ring is a [`RingDocument`] (ring plus member addresses) ordered by
//! epoch. Every node holds one current [`View`] of it; a newer document
//! arriving from the operator, an admin call or gossip replaces it
//! atomically, and request paths pick the view up on their next request.
//! A document is only adopted if it may follow the current one
//! ([`RingDocument::validate_successor`]: same partition count, epoch at
//! most `MAX_EPOCH_JUMP` ahead).

mod liveness;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use dynamo_ring::document::DocumentError;
use dynamo_ring::{NodeId, Ring, RingDocument};
use tokio::sync::watch;

use crate::peer::Peer;
pub use liveness::{Liveness, PeerState, PeerStatus};

/// A partition's members in walk order (see [`View::partition_replicas`]).
type Walk = Arc<[Arc<Peer>]>;

/// One version of the cluster layout, with lookups precomputed.
pub struct View {
    doc: RingDocument,
    peers: BTreeMap<NodeId, Arc<Peer>>,
    /// Per partition, every member in walk order: the N owners first, then
    /// the fallbacks of the extended preference list. Each is computed on
    /// first use (`O(S log S)` for S members): computing all of them takes
    /// `Q * S` steps, seconds for the largest rings, which would hold up
    /// adoption.
    walks: Box<[OnceLock<Walk>]>,
}

impl View {
    /// Lookups for a validated document; linear in the members and
    /// partitions.
    pub fn new(doc: RingDocument) -> Self {
        let peers: BTreeMap<NodeId, Arc<Peer>> = doc
            .ring
            .members
            .iter()
            .map(|m| {
                let address = doc.addresses.get(&m.id).cloned().unwrap_or_default();
                let peer = Peer {
                    member: m.clone(),
                    address,
                };
                (m.id.clone(), Arc::new(peer))
            })
            .collect();
        let walks = (0..doc.ring.partitions).map(|_| OnceLock::new()).collect();
        Self { doc, peers, walks }
    }

    /// The walk of a partition of the ring.
    fn walk(&self, partition: u32) -> &Walk {
        self.walks[partition as usize].get_or_init(|| {
            self.doc
                .ring
                .extended_preference_list(partition)
                .into_iter()
                .filter_map(|m| self.peers.get(&m.id).cloned())
                .collect()
        })
    }

    /// The ring.
    pub fn ring(&self) -> &Ring {
        &self.doc.ring
    }

    /// The document this view was built from.
    pub fn doc(&self) -> &RingDocument {
        &self.doc
    }

    /// The ring's epoch.
    pub fn epoch(&self) -> u64 {
        self.doc.ring.epoch
    }

    /// A member by id.
    pub fn peer(&self, id: &str) -> Option<&Arc<Peer>> {
        self.peers.get(id)
    }

    /// Every member, sorted by id.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Peer>> {
        self.peers.values()
    }

    /// The replicas of `key`: its partition's owners and fallbacks.
    pub fn replicas(&self, key: &[u8]) -> Replicas {
        self.partition_replicas(self.doc.ring.partition_for_key(key))
    }

    /// The replicas of one partition.
    pub fn partition_replicas(&self, partition: u32) -> Replicas {
        let walk = self.walk(partition).clone();
        Replicas {
            n: self.doc.ring.replication.min(walk.len()),
            walk,
        }
    }
}

/// A partition's members in walk order, the first `n` being its owners.
#[derive(Clone)]
pub struct Replicas {
    walk: Walk,
    n: usize,
}

impl Replicas {
    /// The N owners in preference order.
    pub fn owners(&self) -> &[Arc<Peer>] {
        &self.walk[..self.n]
    }

    /// Every member in walk order (owners, then fallbacks).
    pub fn walk(&self) -> &[Arc<Peer>] {
        &self.walk
    }

    /// Replication factor N.
    pub fn n(&self) -> usize {
        self.n
    }
}

/// Groups items by the peer they go to, one batch per peer.
pub fn by_peer<T>(items: impl IntoIterator<Item = (Arc<Peer>, T)>) -> Vec<(Arc<Peer>, Vec<T>)> {
    let mut groups: BTreeMap<NodeId, (Arc<Peer>, Vec<T>)> = BTreeMap::new();
    for (peer, item) in items {
        groups
            .entry(peer.member.id.clone())
            .or_insert_with(|| (peer, Vec::new()))
            .1
            .push(item);
    }
    groups.into_values().collect()
}

/// Whether `candidate` should replace `current`: a higher epoch wins; two
/// different documents of one epoch (concurrent admin calls) are ordered by
/// a hash of their content so every node picks the same one.
pub fn supersedes(candidate: &RingDocument, current: &RingDocument) -> bool {
    use std::cmp::Ordering;
    match candidate.ring.epoch.cmp(&current.ring.epoch) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => candidate != current && fingerprint(candidate) > fingerprint(current),
    }
}

fn fingerprint(doc: &RingDocument) -> u64 {
    let bytes = postcard::to_stdvec(doc).unwrap_or_default();
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

/// This node's view of the cluster: the current ring, liveness, and which
/// of its own partitions it is still receiving.
pub struct Membership {
    me: NodeId,
    view: watch::Sender<Arc<View>>,
    liveness: Liveness,
    /// Per partition: still being received, so this node cannot answer for
    /// it yet (set by the transfers, read by every request path).
    receiving: Box<[AtomicBool]>,
}

impl Membership {
    /// A membership starting from `doc`.
    pub fn new(me: NodeId, doc: RingDocument) -> Self {
        let liveness = Liveness::new(doc.ring.members.iter().map(|m| m.id.clone()));
        let receiving = (0..doc.ring.partitions)
            .map(|_| AtomicBool::new(false))
            .collect();
        let (view, _) = watch::channel(Arc::new(View::new(doc)));
        Self {
            me,
            view,
            liveness,
            receiving,
        }
    }

    /// Whether this node is still receiving `partition` (its copy may lack
    /// what the other replicas hold).
    pub fn is_receiving(&self, partition: u32) -> bool {
        self.receiving
            .get(partition as usize)
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// Whether this node is still receiving the partition of `key`.
    pub fn is_receiving_key(&self, key: &[u8]) -> bool {
        self.is_receiving(self.view().ring().partition_for_key(key))
    }

    /// Marks exactly `partitions` as being received.
    pub fn set_receiving(&self, partitions: impl IntoIterator<Item = u32>) {
        for flag in self.receiving.iter() {
            flag.store(false, Ordering::Relaxed);
        }
        for partition in partitions {
            if let Some(flag) = self.receiving.get(partition as usize) {
                flag.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Marks `partition` as received.
    pub fn set_received(&self, partition: u32) {
        if let Some(flag) = self.receiving.get(partition as usize) {
            flag.store(false, Ordering::Relaxed);
        }
    }

    /// This node's id.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// The current view.
    pub fn view(&self) -> Arc<View> {
        self.view.borrow().clone()
    }

    /// Notifies on every view change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<View>> {
        self.view.subscribe()
    }

    /// Installs `doc` if it supersedes the current one; returns the view it
    /// replaced, or `None` when `doc` was not newer. A document that may
    /// not follow the current one (invalid, another partition count, an
    /// epoch too far ahead) is an error.
    pub fn adopt(&self, doc: RingDocument) -> Result<Option<Arc<View>>, DocumentError> {
        doc.validate_successor(self.view().ring())?;
        let mut replaced = None;
        self.view.send_if_modified(|view| {
            if !supersedes(&doc, view.doc()) {
                return false;
            }
            replaced = Some(std::mem::replace(view, Arc::new(View::new(doc))));
            true
        });
        Ok(replaced)
    }

    /// The failure detector.
    pub fn liveness(&self) -> &Liveness {
        &self.liveness
    }

    /// Whether `peer` is this node.
    pub fn is_me(&self, peer: &Peer) -> bool {
        peer.member.id == self.me
    }

    /// Whether `id` is believed reachable (this node always is).
    pub fn is_usable(&self, id: &str) -> bool {
        id == self.me || self.liveness.is_usable(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamo_ring::Member;

    fn doc(ids: &[&str], epoch: u64) -> RingDocument {
        let members = ids.iter().map(|id| Member::new(*id, "z")).collect();
        let mut ring = Ring::build(members, 2, 8).unwrap();
        ring.epoch = epoch;
        let addresses = ids
            .iter()
            .map(|id| (id.to_string(), format!("{id}:1")))
            .collect();
        RingDocument { ring, addresses }
    }

    #[test]
    fn newer_epochs_replace_and_ties_resolve_the_same_everywhere() {
        let m = Membership::new("a".into(), doc(&["a", "b"], 1));
        assert!(m.adopt(doc(&["a", "b"], 1)).unwrap().is_none());
        let replaced = m.adopt(doc(&["a", "b", "c"], 2)).unwrap();
        assert_eq!(replaced.unwrap().epoch(), 1);
        assert_eq!(m.view().epoch(), 2);
        assert!(m.adopt(doc(&["a", "c"], 1)).unwrap().is_none());
        let (x, y) = (doc(&["a", "b", "d"], 3), doc(&["a", "c", "d"], 3));
        assert_ne!(supersedes(&x, &y), supersedes(&y, &x));
    }

    #[test]
    fn owners_come_first_in_the_walk() {
        let view = View::new(doc(&["a", "b", "c"], 1));
        let replicas = view.replicas(b"key");
        assert_eq!(replicas.owners().len(), 2);
        assert_eq!(replicas.walk().len(), 3);
        let owner_ids: Vec<&str> = view
            .ring()
            .preference_list_for_key(b"key")
            .into_iter()
            .map(|m| m.id.as_str())
            .collect();
        let got: Vec<&str> = replicas
            .owners()
            .iter()
            .map(|p| p.member.id.as_str())
            .collect();
        assert_eq!(got, owner_ids);
    }

    #[test]
    fn a_ring_far_ahead_is_refused_and_leaves_the_view_alone() {
        use dynamo_ring::member::{MAX_EPOCH, MAX_EPOCH_JUMP};
        let m = Membership::new("a".into(), doc(&["a", "b"], 1));
        for epoch in [u64::MAX, MAX_EPOCH + 1, 2 + MAX_EPOCH_JUMP] {
            assert!(m.adopt(doc(&["a", "b", "c"], epoch)).is_err(), "{epoch}");
        }
        assert_eq!(m.view().epoch(), 1);
        let far = doc(&["a", "b", "c"], 1 + MAX_EPOCH_JUMP);
        assert!(m.adopt(far).unwrap().is_some());
    }

    #[test]
    fn walks_are_computed_once_on_first_use() {
        let view = View::new(doc(&["a", "b", "c", "d"], 1));
        assert!(view.walks.iter().all(|w| w.get().is_none()));
        let first = view.partition_replicas(3);
        let again = view.partition_replicas(3);
        assert!(Arc::ptr_eq(&first.walk, &again.walk));
        assert_eq!(first.walk().len(), 4);
        assert_eq!(view.walks.iter().filter(|w| w.get().is_some()).count(), 1);
    }

    #[test]
    fn a_ring_with_another_partition_count_is_refused() {
        let m = Membership::new("a".into(), doc(&["a", "b"], 1));
        let members = vec![Member::new("a", "z"), Member::new("b", "z")];
        let mut ring = Ring::build(members, 2, 16).unwrap();
        ring.epoch = 5;
        let other = RingDocument {
            ring,
            addresses: doc(&["a", "b"], 1).addresses,
        };
        assert!(m.adopt(other).is_err());
    }
}
