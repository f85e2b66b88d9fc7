//! How partitions get their owners (the paper's strategy 3, zone-aware).
//!
//! Rules, for `S` members in `Z` zones, `Q` partitions and replication `N`:
//!
//! - **Distinct nodes**: each partition has `N` distinct members.
//! - **Zones**: if `Z >= N`, the `N` owners of a partition are in `N`
//!   distinct zones; otherwise every partition has at least one owner in
//!   every zone. Either way a partition spans `min(Z, N)` zones.
//! - **Balanced replicas**: the fair share of a member is the water-filling
//!   solution of the zone rules: the `Q*N` replicas are shared out as evenly
//!   per member as possible, except that a zone can hold at most `Q`
//!   replicas when `Z >= N` (one per partition) and at least `Q` when
//!   `Z < N`. With zones of equal size that is `Q*N/S` each. Every member
//!   ends with its fair share rounded down or up.
//! - **Balanced primaries**: likewise each member is primary for its fair
//!   share of the `Q` partitions (`Q/S` unless it holds fewer replicas),
//!   rounded down or up, as far as the replica layout allows (with fewer
//!   partitions than members, k partitions may be owned by fewer than k
//!   members, one of whom must then lead two). Moving a member to the front
//!   of its list moves no data.
//! - **Minimal movement** on rebalance: surviving replicas stay where they
//!   are unless the zone rules changed; the replicas of removed members are
//!   re-placed; then replicas move from members above their integer target
//!   to members below it. Targets are rounded towards the current loads, so
//!   a ring rebalanced to the same members does not change.
//!
//! Steps: compute integer targets per zone and per member; vacate the slots
//! that break the zone rules; fill empty slots greedily (the zone, then the
//! member, furthest below target, ties broken by a rendezvous hash of
//! (partition, name)); move replicas between zones until every zone is on
//! target; move replicas inside each zone until every member is on target;
//! finally move primaries by swapping positions inside lists. The balancing
//! steps follow augmenting paths (chains of single moves through other
//! zones or members) when no direct move exists, so they reach the targets
//! exactly, and they prefer moves that cost no extra transfer: moving a
//! replica that is new to its partition in this rebalance again, or handing
//! a replica back to a member that held it before. A move is only ever made
//! towards a target, so every phase ends.

mod balance;
mod fill;
mod primaries;
mod state;
mod targets;
mod topology;

use crate::member::Member;
use state::State;
use topology::Topology;

/// Owner lists (indices into `members`, primary first) for every partition.
///
/// `members` are sorted and valid for `replication` and `partitions`;
/// `previous` holds the former owners mapped to the new member indices
/// (`None` for a departed member), or is `None` for a fresh ring.
pub(crate) fn assign(
    members: &[Member],
    replication: usize,
    partitions: u32,
    previous: Option<&[Vec<Option<u16>>]>,
) -> Vec<Vec<u16>> {
    let topology = Topology::new(members, replication, partitions as usize);
    let mut state = State::new(&topology, previous);
    let before_vacating = targets::replicas(&state);
    fill::vacate_zone_violations(&mut state, &before_vacating);
    // Round again now that the vacated replicas are gone, so that the
    // members left lowest get the lower targets.
    let replica_targets = targets::replicas(&state);
    let planned_primaries = targets::primaries(&replica_targets.member, topology.partitions);
    fill::fill_empty_slots(&mut state, &replica_targets, &planned_primaries);
    balance::zones(&mut state, &replica_targets);
    balance::members(&mut state, &replica_targets);
    let primary_targets = targets::primaries(&state.loads(), topology.partitions);
    primaries::balance(&mut state, &primary_targets);
    state.into_owners()
}
