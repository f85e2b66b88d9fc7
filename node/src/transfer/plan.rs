//! Which partitions a node must receive when the ring changes, and from
//! whom: the pure part of a transfer.

use std::collections::{BTreeMap, BTreeSet};

use dynamo_ring::document::{PartitionTransfer, TransferState};
use dynamo_ring::{NodeId, RingDocument};
use serde::{Deserialize, Serialize};

/// A previous owner to stream a partition from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Its node id.
    pub id: NodeId,
    /// Where it serves internal routes.
    pub address: String,
}

/// One partition being received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incoming {
    /// Previous owners, in preference order.
    pub sources: Vec<Source>,
    /// Progress.
    pub state: TransferState,
    /// Source currently (or last) streamed from.
    pub from: Option<NodeId>,
    /// Keys received.
    pub keys: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Received because this node lost its data (see [`Plan::rebuild`]).
    #[serde(default)]
    pub rebuild: bool,
}

impl From<Vec<Source>> for Incoming {
    /// A partition to receive from `sources`; with none, nobody held it
    /// before, so it is complete at once.
    fn from(sources: Vec<Source>) -> Self {
        Self {
            state: match sources.is_empty() {
                true => TransferState::Done,
                false => TransferState::Pending,
            },
            sources,
            from: None,
            keys: 0,
            bytes: 0,
            rebuild: false,
        }
    }
}

/// The owners of `partition` in `doc` other than `me`, in preference
/// order, with their addresses.
fn other_owners(doc: &RingDocument, partition: u32, me: &str) -> Vec<Source> {
    doc.ring
        .preference_list(partition)
        .into_iter()
        .filter(|m| m.id != me)
        .filter_map(|m| {
            let address = doc.addresses.get(&m.id)?.clone();
            Some(Source {
                id: m.id.clone(),
                address,
            })
        })
        .collect()
}

/// Everything this node receives for its current ring (persisted, so a
/// restart resumes it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Epoch of the ring the plan is for.
    pub epoch: u64,
    /// Gained partitions.
    pub partitions: BTreeMap<u32, Incoming>,
    /// Partitions this node no longer owns but still holds data of, until
    /// their new owners confirm they have received them.
    #[serde(default)]
    pub retired: BTreeSet<u32>,
}

impl Plan {
    /// Moves the plan from ring `previous` to ring `next` for node `me`:
    /// partitions `me` owns in `next` but not in `previous` are to be
    /// received from their previous owners; partitions still being received
    /// keep their sources (plus any new previous owners); partitions `me`
    /// no longer owns are dropped. A partition nobody owned before has
    /// nothing to receive.
    pub fn advance(&mut self, previous: &RingDocument, next: &RingDocument, me: &str) {
        let owned_before = previous.ring.partitions_of(me);
        let owned_now = next.ring.partitions_of(me);
        for partition in &owned_before {
            if owned_now.binary_search(partition).is_err() {
                self.retired.insert(*partition);
            }
        }
        for partition in &owned_now {
            self.retired.remove(partition);
        }
        let mut partitions = BTreeMap::new();
        for partition in owned_now {
            let old_sources = other_owners(previous, partition, me);
            let incoming = match self.partitions.remove(&partition) {
                Some(mut unfinished) if unfinished.state != TransferState::Done => {
                    for source in old_sources {
                        if !unfinished.sources.iter().any(|s| s.id == source.id) {
                            unfinished.sources.push(source);
                        }
                    }
                    unfinished
                }
                _ if owned_before.binary_search(&partition).is_ok() => continue,
                _ => Incoming::from(old_sources),
            };
            partitions.insert(partition, incoming);
        }
        self.epoch = next.ring.epoch;
        self.partitions = partitions;
    }

    /// The plan of a node that lost its data but is a member of `doc`:
    /// every partition `me` owns is to be received from the other owners
    /// of the same ring.
    pub fn rebuild(doc: &RingDocument, me: &str) -> Self {
        let partitions = doc
            .ring
            .partitions_of(me)
            .into_iter()
            .map(|partition| {
                let incoming = Incoming {
                    rebuild: true,
                    ..Incoming::from(other_owners(doc, partition, me))
                };
                (partition, incoming)
            })
            .collect();
        Self {
            epoch: doc.ring.epoch,
            partitions,
            retired: BTreeSet::new(),
        }
    }

    /// Partitions not yet complete.
    pub fn unfinished(&self) -> impl Iterator<Item = u32> + '_ {
        self.partitions
            .iter()
            .filter(|(_, i)| i.state != TransferState::Done)
            .map(|(p, _)| *p)
    }

    /// The per-partition report.
    pub fn report(&self) -> Vec<PartitionTransfer> {
        self.partitions
            .iter()
            .map(|(&partition, i)| PartitionTransfer {
                partition,
                from: i.from.clone(),
                state: i.state,
                keys: i.keys,
                bytes: i.bytes,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamo_ring::{Member, Ring};

    fn doc(ring: Ring) -> RingDocument {
        let addresses = ring
            .members
            .iter()
            .map(|m| (m.id.clone(), format!("{}:1", m.id)))
            .collect();
        RingDocument { ring, addresses }
    }

    fn members(ids: &[&str]) -> Vec<Member> {
        ids.iter().map(|id| Member::new(*id, *id)).collect()
    }

    #[test]
    fn a_joining_node_receives_exactly_its_new_partitions_from_their_old_owners() {
        let before = doc(Ring::build(members(&["a", "b", "c"]), 3, 64).unwrap());
        let after = doc(before
            .ring
            .rebalance(members(&["a", "b", "c", "d"]))
            .unwrap());
        let mut plan = Plan::default();
        plan.advance(&before, &after, "d");
        assert_eq!(plan.epoch, 2);
        let gained = after.ring.partitions_of("d");
        assert_eq!(plan.partitions.keys().copied().collect::<Vec<_>>(), gained);
        for (p, incoming) in &plan.partitions {
            assert_eq!(incoming.state, TransferState::Pending);
            let ids: Vec<&str> = incoming.sources.iter().map(|s| s.id.as_str()).collect();
            let old: Vec<&str> = before
                .ring
                .preference_list(*p)
                .into_iter()
                .map(|m| m.id.as_str())
                .collect();
            assert_eq!(ids, old);
        }
        let mut unchanged = Plan::default();
        unchanged.advance(&before, &after, "a");
        let a_gained: Vec<u32> = after
            .ring
            .partitions_of("a")
            .into_iter()
            .filter(|p| !before.ring.partitions_of("a").contains(p))
            .collect();
        assert_eq!(
            unchanged.partitions.keys().copied().collect::<Vec<_>>(),
            a_gained
        );
    }

    #[test]
    fn unfinished_partitions_carry_over_and_lost_ones_are_dropped() {
        let r1 = doc(Ring::build(members(&["a", "b", "c"]), 2, 32).unwrap());
        let r2 = doc(r1.ring.rebalance(members(&["a", "b", "c", "d"])).unwrap());
        let r3 = doc(r2.ring.rebalance(members(&["a", "b", "d", "e"])).unwrap());
        let mut plan = Plan::default();
        plan.advance(&r1, &r2, "d");
        let first: Vec<u32> = plan.unfinished().collect();
        plan.advance(&r2, &r3, "d");
        for p in &first {
            let still_owned = r3.ring.partitions_of("d").contains(p);
            assert_eq!(plan.partitions.contains_key(p), still_owned);
            if still_owned {
                let ids: Vec<&str> = plan.partitions[p]
                    .sources
                    .iter()
                    .map(|s| s.id.as_str())
                    .collect();
                for m in r1.ring.preference_list(*p) {
                    assert!(ids.contains(&m.id.as_str()), "keeps source {}", m.id);
                }
            }
        }
        assert!(
            plan.report()
                .iter()
                .all(|t| t.state == TransferState::Pending)
        );
    }

    #[test]
    fn a_node_that_lost_its_data_receives_every_partition_it_owns_from_the_other_owners() {
        let ring = doc(Ring::build(members(&["a", "b", "c", "d"]), 3, 32).unwrap());
        let plan = Plan::rebuild(&ring, "b");
        assert_eq!(plan.epoch, ring.ring.epoch);
        let owned = ring.ring.partitions_of("b");
        assert!(!owned.is_empty());
        assert_eq!(plan.partitions.keys().copied().collect::<Vec<_>>(), owned);
        for (p, incoming) in &plan.partitions {
            assert_eq!(incoming.state, TransferState::Pending);
            assert!(incoming.rebuild);
            let ids: Vec<&str> = incoming.sources.iter().map(|s| s.id.as_str()).collect();
            let others: Vec<&str> = ring
                .ring
                .preference_list(*p)
                .into_iter()
                .map(|m| m.id.as_str())
                .filter(|id| *id != "b")
                .collect();
            assert_eq!(ids, others);
            assert_eq!(ids.len(), 2);
        }
        assert!(Plan::rebuild(&ring, "not-a-member").partitions.is_empty());
    }

    #[test]
    fn lost_partitions_are_retired_until_regained() {
        let r1 = doc(Ring::build(members(&["a", "b", "c"]), 2, 32).unwrap());
        let r2 = doc(r1.ring.rebalance(members(&["a", "b", "c", "d"])).unwrap());
        let r3 = doc(r2.ring.rebalance(members(&["a", "b", "c"])).unwrap());
        let mut plan = Plan::default();
        plan.advance(&r1, &r2, "a");
        let lost: BTreeSet<u32> = r1
            .ring
            .partitions_of("a")
            .into_iter()
            .filter(|p| !r2.ring.partitions_of("a").contains(p))
            .collect();
        assert!(!lost.is_empty());
        assert_eq!(plan.retired, lost);
        plan.advance(&r2, &r3, "a");
        for p in r3.ring.partitions_of("a") {
            assert!(!plan.retired.contains(&p), "regained {p} is not retired");
        }
    }
}
