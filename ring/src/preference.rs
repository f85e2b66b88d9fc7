//! Preference lists: who holds a partition, and who stands in when owners
//! are unreachable.
//!
//! The preference list of a partition is its `N` owners in the ring's order
//! (the first is the primary). The extended preference list appends every
//! other member in an order fixed per partition, for sloppy quorums: a
//! coordinator walks it and uses the first `N` healthy nodes, handing hints
//! to the stand-ins. Stand-ins are taken zone by zone, always from a zone that
//! holds the fewest entries so far, and inside a zone by rendezvous score of
//! (partition, node id), so different partitions fall back to different
//! nodes and a failed node's load spreads over the cluster.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use crate::hash::rendezvous_score;
use crate::member::Member;
use crate::ring::Ring;

/// Candidates of one zone for the extended list.
struct ZoneQueue<'r> {
    /// Entries of this zone already in the list.
    listed: usize,
    /// Remaining members, best last (popped first).
    waiting: Vec<(u64, &'r Member)>,
}

/// A zone's place in the order zones take turns (greatest first): fewest
/// entries listed, then best waiting score, then lowest zone (by name).
type Turn = (Reverse<usize>, u64, Reverse<usize>);

impl ZoneQueue<'_> {
    /// The turn of this zone, the `zone`-th by name; `None` once empty.
    fn turn(&self, zone: usize) -> Option<Turn> {
        let &(score, _) = self.waiting.last()?;
        Some((Reverse(self.listed), score, Reverse(zone)))
    }
}

impl Ring {
    /// The `N` owners of a partition in preference order (primary first).
    /// Empty for a partition outside `0..Q`.
    pub fn preference_list(&self, partition: u32) -> Vec<&Member> {
        self.owners
            .get(partition as usize)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.members.get(usize::from(i)))
            .collect()
    }

    /// The owners of a partition key-wise: `preference_list` of
    /// `partition_for_key(key)`.
    pub fn preference_list_for_key(&self, key: &[u8]) -> Vec<&Member> {
        self.preference_list(self.partition_for_key(key))
    }

    /// Every member: the `N` owners first (same order as
    /// [`Ring::preference_list`]), then all other members in a deterministic,
    /// per-partition order that spreads over zones (the zone with the fewest
    /// entries so far goes next) and, within a zone, follows the rendezvous
    /// score of (partition, node id), highest first. Empty for a partition
    /// outside `0..Q`. Takes `O(S log S)` for `S` members.
    pub fn extended_preference_list(&self, partition: u32) -> Vec<&Member> {
        let Some(list) = self.owners.get(partition as usize) else {
            return Vec::new();
        };
        let mut is_owner = vec![false; self.members.len()];
        for &i in list {
            if let Some(flag) = is_owner.get_mut(usize::from(i)) {
                *flag = true;
            }
        }
        let mut zones: BTreeMap<&str, ZoneQueue> = BTreeMap::new();
        for (member, owner) in self.members.iter().zip(&is_owner) {
            let queue = zones.entry(member.zone.as_str()).or_insert(ZoneQueue {
                listed: 0,
                waiting: Vec::new(),
            });
            if *owner {
                queue.listed += 1;
            } else {
                queue
                    .waiting
                    .push((rendezvous_score(partition, &member.id), member));
            }
        }
        for queue in zones.values_mut() {
            queue
                .waiting
                .sort_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.id.cmp(&a.1.id)));
        }
        let mut queues: Vec<ZoneQueue> = zones.into_values().collect();
        let mut turns: BinaryHeap<Turn> = (0..)
            .zip(&queues)
            .filter_map(|(zone, queue)| queue.turn(zone))
            .collect();
        let mut extended = self.preference_list(partition);
        extended.reserve(self.members.len().saturating_sub(extended.len()));
        while let Some((_, _, Reverse(zone))) = turns.pop() {
            let queue = &mut queues[zone];
            if let Some((_, member)) = queue.waiting.pop() {
                extended.push(member);
            }
            queue.listed += 1;
            turns.extend(queue.turn(zone));
        }
        extended
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use crate::member::Member;
    use crate::ring::Ring;

    fn ring(zones: &[&str], replication: usize) -> Ring {
        let members = zones
            .iter()
            .enumerate()
            .map(|(i, zone)| Member::new(format!("node-{i:02}"), *zone))
            .collect();
        Ring::build(members, replication, 64).unwrap()
    }

    #[test]
    fn preference_list_follows_owner_order() {
        let ring = ring(&["a", "b", "c", "a", "b", "c"], 3);
        for p in 0..ring.partitions {
            let ids: Vec<&str> = ring
                .preference_list(p)
                .iter()
                .map(|m| m.id.as_str())
                .collect();
            let expected: Vec<&str> = ring.owners[p as usize]
                .iter()
                .map(|&i| ring.members[usize::from(i)].id.as_str())
                .collect();
            assert_eq!(ids, expected);
            assert_eq!(
                ring.primary(p).map(|m| m.id.as_str()),
                expected.first().copied()
            );
        }
    }

    #[test]
    fn key_lookup_uses_the_key_partition() {
        let ring = ring(&["a", "b", "c"], 2);
        let key = b"user:42";
        assert_eq!(
            ring.preference_list_for_key(key),
            ring.preference_list(ring.partition_for_key(key))
        );
    }

    #[test]
    fn extended_list_holds_everyone_once_owners_first() {
        let ring = ring(&["a", "b", "c", "a", "b", "c", "a", "d"], 3);
        for p in 0..ring.partitions {
            let extended = ring.extended_preference_list(p);
            assert_eq!(extended.len(), ring.members.len());
            assert_eq!(&extended[..3], &ring.preference_list(p)[..]);
            let unique: HashSet<&str> = extended.iter().map(|m| m.id.as_str()).collect();
            assert_eq!(unique.len(), ring.members.len());
        }
    }

    #[test]
    fn extended_list_visits_least_used_zones_first() {
        // Zones: a x3, b x3, c x1, N = 2. After two owners in two zones, the
        // first stand-in must come from a zone not yet listed, if any.
        let ring = ring(&["a", "a", "a", "b", "b", "b", "c"], 2);
        for p in 0..ring.partitions {
            let extended = ring.extended_preference_list(p);
            let first_three: HashSet<&str> =
                extended[..3].iter().map(|m| m.zone.as_str()).collect();
            assert_eq!(first_three.len(), 3, "partition {p}: {extended:?}");
        }
    }

    #[test]
    fn extended_list_order_depends_on_partition() {
        let ring = ring(&["z"; 12], 1);
        let orders: HashSet<Vec<&str>> = (0..ring.partitions)
            .map(|p| {
                ring.extended_preference_list(p)[1..]
                    .iter()
                    .map(|m| m.id.as_str())
                    .collect()
            })
            .collect();
        assert!(orders.len() > ring.partitions as usize / 2);
    }

    #[test]
    fn extended_lists_keep_their_order() {
        // Pinned from the first implementation: the walk decides which
        // nodes stand in and receive hints, so every release walks alike.
        let small = ring(
            &["a", "b", "c", "a", "b", "a", "d", "e", "a", "b", "c", "f"],
            3,
        );
        let zones: Vec<String> = (0..40).map(|i| format!("z{}", i * 7 % 13)).collect();
        let zones: Vec<&str> = zones.iter().map(String::as_str).collect();
        let large = ring(&zones, 2);
        let mut walked = String::new();
        for ring in [&small, &large] {
            for p in 0..ring.partitions {
                for member in ring.extended_preference_list(p) {
                    walked.push_str(&member.id);
                    walked.push(',');
                }
            }
        }
        assert_eq!(
            xxhash_rust::xxh3::xxh3_64(walked.as_bytes()),
            0x73cb_6edf_436a_81d1
        );
    }

    #[test]
    fn out_of_range_partition_has_empty_lists() {
        let ring = ring(&["a", "b"], 1);
        assert!(ring.preference_list(ring.partitions).is_empty());
        assert!(ring.extended_preference_list(u32::MAX).is_empty());
        assert!(ring.primary(ring.partitions).is_none());
    }
}
