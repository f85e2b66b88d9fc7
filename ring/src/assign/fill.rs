//! Emptying slots that break the zone rules and filling empty slots.

use std::cmp::Reverse;

use super::state::State;
use super::targets::Targets;

/// Empties the fewest slots needed so that every partition can satisfy the
/// zone rules: no zone above its per-partition maximum, and enough empty
/// slots left for the zones below their minimum. The replica given up is
/// the one whose zone, then member, is furthest above target.
pub(crate) fn vacate_zone_violations(state: &mut State, targets: &Targets) {
    let topology = state.topology();
    let zones_below_exist = topology.min_per_partition.iter().any(|&m| m > 0);
    for partition in 0..topology.partitions {
        while let Some(slot) = worst_slot(state, targets, partition, |state, zone| {
            state.zone_count(partition, zone) > topology.max_per_partition[zone]
        }) {
            state.vacate(partition, slot);
        }
        if !zones_below_exist {
            continue;
        }
        loop {
            let missing: usize = (0..topology.zone_count())
                .map(|z| {
                    topology.min_per_partition[z].saturating_sub(state.zone_count(partition, z))
                })
                .sum();
            let empty = state
                .slots(partition)
                .iter()
                .filter(|s| s.is_none())
                .count();
            if empty >= missing {
                break;
            }
            let Some(slot) = worst_slot(state, targets, partition, |state, zone| {
                state.zone_count(partition, zone) > topology.min_per_partition[zone]
            }) else {
                break;
            };
            state.vacate(partition, slot);
        }
    }
}

/// Among the filled slots of `partition` whose member's zone passes
/// `eligible`, the one to give up: zone furthest above its target, then
/// member furthest above target, then lowest tie-break score.
fn worst_slot(
    state: &State,
    targets: &Targets,
    partition: usize,
    eligible: impl Fn(&State, usize) -> bool,
) -> Option<usize> {
    let topology = state.topology();
    state
        .slots(partition)
        .iter()
        .enumerate()
        .filter_map(|(slot, owner)| owner.map(|m| (slot, usize::from(m))))
        .filter(|&(_, member)| eligible(state, topology.zone_of[member]))
        .max_by_key(|&(_, member)| {
            let zone = topology.zone_of[member];
            (
                state.zone_load(zone) as i64 - targets.zone[zone] as i64,
                targets.surplus(state, member),
                Reverse(topology.member_score(partition, member)),
            )
        })
        .map(|(slot, _)| slot)
}

/// Fills every empty slot, partition by partition. Each slot goes to the
/// zone the partition needs most (below its minimum first; then fewest
/// replicas of this partition; then furthest below the zone target) and
/// within it to the member furthest below target. A partition whose primary
/// slot was empty then gets as primary the owner furthest below its planned
/// primary count.
pub(crate) fn fill_empty_slots(
    state: &mut State,
    targets: &Targets,
    planned_primaries: &[(usize, usize)],
) {
    let topology = state.topology();
    for partition in 0..topology.partitions {
        let primary_was_empty = state.primary(partition).is_none();
        for slot in 0..topology.replication {
            if state.slots(partition)[slot].is_some() {
                continue;
            }
            let chosen = pick_zone(state, targets, partition)
                .and_then(|zone| {
                    pick_member(state, targets, partition, &topology.zone_members[zone])
                })
                .or_else(|| {
                    let everyone: Vec<usize> = (0..topology.member_count()).collect();
                    pick_member(state, targets, partition, &everyone)
                });
            if let Some(member) = chosen {
                state.place(partition, slot, member);
            }
        }
        if primary_was_empty {
            let best = state.owners(partition).max_by_key(|&m| {
                (
                    planned_primaries[m].1 as i64 - state.primary_count(m) as i64,
                    topology.member_score(partition, m),
                )
            });
            if let Some(member) = best {
                state.promote(partition, member);
            }
        }
    }
}

/// The zone the next replica of `partition` should go to.
fn pick_zone(state: &State, targets: &Targets, partition: usize) -> Option<usize> {
    let topology = state.topology();
    let counts: Vec<usize> = (0..topology.zone_count())
        .map(|z| state.zone_count(partition, z))
        .collect();
    let below_min = (0..topology.zone_count()).any(|z| counts[z] < topology.min_per_partition[z]);
    let limit = if below_min {
        &topology.min_per_partition
    } else {
        &topology.max_per_partition
    };
    (0..topology.zone_count())
        .filter(|&z| counts[z] < limit[z])
        .max_by_key(|&z| {
            (
                Reverse(counts[z]),
                targets.zone[z] as i64 - state.zone_load(z) as i64,
                topology.zone_score(partition, z),
            )
        })
}

/// The candidate furthest below target that does not hold `partition` yet.
fn pick_member(
    state: &State,
    targets: &Targets,
    partition: usize,
    candidates: &[usize],
) -> Option<usize> {
    let topology = state.topology();
    candidates
        .iter()
        .copied()
        .filter(|&m| !state.holds(partition, m))
        .max_by_key(|&m| {
            (
                -targets.surplus(state, m),
                topology.member_score(partition, m),
            )
        })
}
