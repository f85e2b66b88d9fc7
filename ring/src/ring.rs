//! The ring document: members, partition owners and the epoch that versions
//! them, plus building a first ring and deriving the next one.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::assign;
pub use crate::error::RingError;
use crate::hash::{key_hash, partition_of};
use crate::member::{MAX_EPOCH, MAX_MEMBERS, MAX_PARTITIONS, MAX_ZONES, Member};

/// One version of partition ownership.
///
/// The hash space is cut into `partitions` equal partitions and each is owned
/// by `replication` distinct members, listed in preference order. Rings are
/// deterministic: every party computing a ring from the same inputs gets an
/// identical value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ring {
    /// Version number: 1 for a fresh ring, +1 for each rebalance; at most
    /// [`MAX_EPOCH`].
    pub epoch: u64,
    /// Number of partitions `Q`: a power of two in `1..=65536`.
    pub partitions: u32,
    /// Replication factor `N`: owners per partition.
    pub replication: usize,
    /// Members sorted by id, ids unique.
    pub members: Vec<Member>,
    /// Per partition, `N` distinct indices into `members` in preference
    /// order; index 0 is the primary (the usual coordinator).
    pub owners: Vec<Vec<u16>>,
}

impl Ring {
    /// Builds a fresh ring (epoch 1) for `members`, replication `N` and
    /// `partitions` partitions.
    ///
    /// Deterministic: the same members in any input order give an identical
    /// ring. See [`crate::assign`] for the zone and balance guarantees.
    pub fn build(
        members: Vec<Member>,
        replication: usize,
        partitions: u32,
    ) -> Result<Ring, RingError> {
        let members = sorted_members(members)?;
        check_parameters(members.len(), replication, partitions)?;
        let owners = assign::assign(&members, replication, partitions, None);
        Ok(Ring {
            epoch: 1,
            partitions,
            replication,
            members,
            owners,
        })
    }

    /// The next ring (epoch + 1) for a new member set, keeping `Q` and `N`.
    ///
    /// Nodes may be added and removed at once. Movement is minimal: a
    /// replica moves only to re-place a removed node's replicas, to give new
    /// nodes their fair share (taken from the nodes above theirs), or when a
    /// change in the zone layout forces it. A member whose zone changed is
    /// treated as removed and re-added under its new zone. Deterministic
    /// function of `self` and the member set (in any order).
    pub fn rebalance(&self, members: Vec<Member>) -> Result<Ring, RingError> {
        self.validate()?;
        let epoch = Some(self.epoch + 1)
            .filter(|&next| next <= MAX_EPOCH)
            .ok_or(RingError::EpochOverflow(self.epoch))?;
        let members = sorted_members(members)?;
        check_parameters(members.len(), self.replication, self.partitions)?;
        let new_index: Vec<Option<u16>> = self
            .members
            .iter()
            .map(|old| {
                members
                    .binary_search_by(|m| m.id.cmp(&old.id))
                    .ok()
                    .filter(|&i| members.get(i).is_some_and(|m| m.zone == old.zone))
                    .and_then(|i| u16::try_from(i).ok())
            })
            .collect();
        let previous: Vec<Vec<Option<u16>>> = self
            .owners
            .iter()
            .map(|list| {
                list.iter()
                    .map(|&i| new_index.get(usize::from(i)).copied().flatten())
                    .collect()
            })
            .collect();
        let owners = assign::assign(&members, self.replication, self.partitions, Some(&previous));
        Ok(Ring {
            epoch,
            partitions: self.partitions,
            replication: self.replication,
            members,
            owners,
        })
    }

    /// Checks the structure of a ring received from elsewhere: an epoch of
    /// at most [`MAX_EPOCH`], valid `Q` and `N`, at most [`MAX_ZONES`]
    /// zones, members sorted with unique non-empty ids, and `Q` owner lists
    /// of `N` distinct valid indices. Zone spread and balance are not
    /// checked. Linear in the size of the ring.
    pub fn validate(&self) -> Result<(), RingError> {
        if self.epoch > MAX_EPOCH {
            return Err(RingError::EpochTooHigh(self.epoch));
        }
        check_parameters(self.members.len(), self.replication, self.partitions)?;
        check_zones(&self.members)?;
        for pair in self.members.windows(2) {
            if pair[0].id == pair[1].id {
                return Err(RingError::DuplicateMember(pair[1].id.clone()));
            }
            if pair[0].id > pair[1].id {
                return Err(RingError::MembersNotSorted(pair[1].id.clone()));
            }
        }
        if self.members.iter().any(|m| m.id.is_empty()) {
            return Err(RingError::EmptyMemberId);
        }
        if self.owners.len() != self.partitions as usize {
            return Err(RingError::OwnerListCount {
                partitions: self.partitions,
                lists: self.owners.len(),
            });
        }
        for (partition, list) in (0u32..).zip(&self.owners) {
            if list.len() != self.replication {
                return Err(RingError::OwnerListLength {
                    partition,
                    owners: list.len(),
                    replication: self.replication,
                });
            }
            for (slot, &index) in list.iter().enumerate() {
                let Some(member) = self.members.get(usize::from(index)) else {
                    return Err(RingError::OwnerOutOfRange {
                        partition,
                        index,
                        members: self.members.len(),
                    });
                };
                if list[..slot].contains(&index) {
                    return Err(RingError::DuplicateOwner {
                        partition,
                        id: member.id.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The partition that owns `key`.
    pub fn partition_for_key(&self, key: &[u8]) -> u32 {
        partition_of(key_hash(key), self.partitions)
    }

    /// The member with this id, if any.
    pub fn member(&self, id: &str) -> Option<&Member> {
        self.index_of(id).and_then(|i| self.members.get(i))
    }

    /// The primary (first owner) of a partition; `None` for a partition
    /// outside `0..Q`.
    pub fn primary(&self, partition: u32) -> Option<&Member> {
        self.owners
            .get(partition as usize)
            .and_then(|list| list.first())
            .and_then(|&i| self.members.get(usize::from(i)))
    }

    /// Partitions where `id` is one of the `N` owners, ascending.
    pub fn partitions_of(&self, id: &str) -> Vec<u32> {
        self.partitions_where(id, |list, index| list.contains(&index))
    }

    /// Partitions where `id` is the primary (first owner), ascending.
    pub fn primary_partitions_of(&self, id: &str) -> Vec<u32> {
        self.partitions_where(id, |list, index| list.first() == Some(&index))
    }

    /// Number of replicas `other` places on a node that did not already hold
    /// that partition in `self`: the partition copies a transition from
    /// `self` to `other` must transfer.
    ///
    /// Owners are compared by member id, partition by partition, so the
    /// count is meaningful for rings with the same `Q`. Reordering within a
    /// partition's list moves no data and is not counted; partitions that
    /// only `other` has count all their replicas.
    pub fn moved_replicas(&self, other: &Ring) -> usize {
        (0..other.owners.len())
            .map(|p| {
                let before = self.owner_ids(p);
                other
                    .owner_ids(p)
                    .into_iter()
                    .filter(|id| !before.contains(id))
                    .count()
            })
            .sum()
    }

    fn owner_ids(&self, partition: usize) -> Vec<&str> {
        self.owners
            .get(partition)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.members.get(usize::from(i)))
            .map(|m| m.id.as_str())
            .collect()
    }

    fn index_of(&self, id: &str) -> Option<usize> {
        self.members
            .binary_search_by(|m| m.id.as_str().cmp(id))
            .ok()
    }

    fn partitions_where(&self, id: &str, holds: impl Fn(&[u16], u16) -> bool) -> Vec<u32> {
        let Some(index) = self.index_of(id).and_then(|i| u16::try_from(i).ok()) else {
            return Vec::new();
        };
        (0u32..)
            .zip(&self.owners)
            .filter(|(_, list)| holds(list, index))
            .map(|(p, _)| p)
            .collect()
    }
}

/// Sorts members by id and rejects empty, duplicate or too many ids, and
/// too many zones.
fn sorted_members(mut members: Vec<Member>) -> Result<Vec<Member>, RingError> {
    if members.is_empty() {
        return Err(RingError::NoMembers);
    }
    if members.len() > MAX_MEMBERS {
        return Err(RingError::TooManyMembers {
            members: members.len(),
        });
    }
    if members.iter().any(|m| m.id.is_empty()) {
        return Err(RingError::EmptyMemberId);
    }
    check_zones(&members)?;
    members.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some(pair) = members.windows(2).find(|pair| pair[0].id == pair[1].id) {
        return Err(RingError::DuplicateMember(pair[1].id.clone()));
    }
    Ok(members)
}

/// Checks that `members` span at most [`MAX_ZONES`] zones.
fn check_zones(members: &[Member]) -> Result<(), RingError> {
    let zones: BTreeSet<&str> = members.iter().map(|m| m.zone.as_str()).collect();
    if zones.len() > MAX_ZONES {
        return Err(RingError::TooManyZones { zones: zones.len() });
    }
    Ok(())
}

/// Checks `Q` and `N` against each other and the member count.
fn check_parameters(members: usize, replication: usize, partitions: u32) -> Result<(), RingError> {
    if members == 0 {
        return Err(RingError::NoMembers);
    }
    if members > MAX_MEMBERS {
        return Err(RingError::TooManyMembers { members });
    }
    if partitions == 0 || partitions > MAX_PARTITIONS {
        return Err(RingError::PartitionsOutOfRange(partitions));
    }
    if !partitions.is_power_of_two() {
        return Err(RingError::PartitionsNotPowerOfTwo(partitions));
    }
    if replication == 0 {
        return Err(RingError::ReplicationZero);
    }
    if replication > members {
        return Err(RingError::ReplicationExceedsMembers {
            n: replication,
            members,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
