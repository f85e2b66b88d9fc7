//! Zones, their members, and how many replicas of one partition a zone may
//! hold.

use std::collections::BTreeMap;

use crate::hash::rendezvous_score;
use crate::member::Member;

/// The fixed facts the assignment works with.
pub(crate) struct Topology<'m> {
    /// Members, sorted by id.
    pub(crate) members: &'m [Member],
    /// `Q`.
    pub(crate) partitions: usize,
    /// `N`.
    pub(crate) replication: usize,
    /// Zone index of each member; zones are numbered in name order.
    pub(crate) zone_of: Vec<usize>,
    /// Members of each zone, ascending.
    pub(crate) zone_members: Vec<Vec<usize>>,
    /// Zone names.
    zone_names: Vec<&'m str>,
    /// Fewest replicas of one partition a zone must hold.
    pub(crate) min_per_partition: Vec<usize>,
    /// Most replicas of one partition a zone may hold.
    pub(crate) max_per_partition: Vec<usize>,
}

impl<'m> Topology<'m> {
    /// Groups `members` by zone and derives the per-partition zone bounds:
    /// `[0, 1]` when there are at least `N` zones, otherwise at least one
    /// replica per zone and at most `min(zone size, N - Z + 1)`.
    pub(crate) fn new(members: &'m [Member], replication: usize, partitions: usize) -> Self {
        let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, member) in members.iter().enumerate() {
            by_name.entry(member.zone.as_str()).or_default().push(i);
        }
        let zone_names: Vec<&str> = by_name.keys().copied().collect();
        let zone_members: Vec<Vec<usize>> = by_name.into_values().collect();
        let mut zone_of = vec![0; members.len()];
        for (zone, nodes) in zone_members.iter().enumerate() {
            for &node in nodes {
                zone_of[node] = zone;
            }
        }
        let zones = zone_members.len();
        let (min_per_partition, max_per_partition) = if zones >= replication {
            (vec![0; zones], vec![1; zones])
        } else {
            let cap = replication - zones + 1;
            (
                vec![1; zones],
                zone_members.iter().map(|m| m.len().min(cap)).collect(),
            )
        };
        Topology {
            members,
            partitions,
            replication,
            zone_of,
            zone_members,
            zone_names,
            min_per_partition,
            max_per_partition,
        }
    }

    /// Number of members.
    pub(crate) fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Number of zones.
    pub(crate) fn zone_count(&self) -> usize {
        self.zone_members.len()
    }

    /// Tie-break score of a member for a partition.
    pub(crate) fn member_score(&self, partition: usize, member: usize) -> u64 {
        rendezvous_score(partition as u32, &self.members[member].id)
    }

    /// Tie-break score of a zone for a partition.
    pub(crate) fn zone_score(&self, partition: usize, zone: usize) -> u64 {
        rendezvous_score(partition as u32, self.zone_names[zone])
    }
}
