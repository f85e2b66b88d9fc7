//! Moving single replicas until every zone, then every member, holds
//! exactly its target.
//!
//! Moves are tried cheapest first: moving a *fresh* replica (one that is new
//! to its partition in this rebalance, see [`State::is_fresh`]) costs no
//! extra data transfer, so the phases use fresh replicas before touching
//! replicas that would otherwise stay put.

use std::collections::VecDeque;

use super::state::State;
use super::targets::Targets;

/// One replica move: `partition`'s replica in `slot` goes to `to`.
struct Move {
    partition: usize,
    slot: usize,
    to: usize,
}

/// Which replicas a search may move.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Replicas {
    /// Only replicas new to their partition (free to move again).
    Fresh,
    /// Any replica.
    Any,
}

impl Replicas {
    fn allows(self, state: &State, partition: usize, slot: usize) -> bool {
        self == Replicas::Any || state.is_fresh(partition, slot)
    }
}

/// Carries out one move.
fn apply(state: &mut State, step: &Move) {
    state.vacate(step.partition, step.slot);
    state.place(step.partition, step.slot, step.to);
}

/// Moves replicas between zones until each zone holds its target, keeping
/// every partition within the zone bounds. Tries, with fresh replicas first
/// and then any: a direct move from a member above target to a member below
/// target, any direct move between the zones, and finally a shortest chain
/// of moves through other zones.
pub(crate) fn zones(state: &mut State, targets: &Targets) {
    loop {
        let topology = state.topology();
        let gap = |z: usize| state.zone_load(z) as i64 - targets.zone[z] as i64;
        let mut over: Vec<usize> = (0..topology.zone_count()).filter(|&z| gap(z) > 0).collect();
        let mut under: Vec<usize> = (0..topology.zone_count()).filter(|&z| gap(z) < 0).collect();
        if over.is_empty() || under.is_empty() {
            return;
        }
        over.sort_by_key(|&z| -gap(z));
        under.sort_by_key(|&z| gap(z));
        let steps = [Replicas::Fresh, Replicas::Any]
            .into_iter()
            .find_map(|replicas| {
                direct_move(state, targets, &over, &under, replicas, true)
                    .or_else(|| direct_move(state, targets, &over, &under, replicas, false))
                    .map(|step| vec![step])
                    .or_else(|| zone_chain(state, targets, &over, &under, replicas))
            });
        let Some(steps) = steps else {
            return;
        };
        for step in &steps {
            apply(state, step);
        }
    }
}

/// A move of one replica from a zone in `over` to a zone in `under` that
/// keeps the zone bounds; if `exact`, only from a member above target to a
/// member below target.
fn direct_move(
    state: &State,
    targets: &Targets,
    over: &[usize],
    under: &[usize],
    replicas: Replicas,
    exact: bool,
) -> Option<Move> {
    let topology = state.topology();
    for &x in over {
        if replicas == Replicas::Fresh && state.zone_fresh(x) == 0 {
            continue;
        }
        let mut sources = topology.zone_members[x].clone();
        sources.sort_by_key(|&m| (-targets.surplus(state, m), m));
        for &from in &sources {
            if exact && targets.surplus(state, from) <= 0 {
                break;
            }
            for &partition in state.held(from) {
                let partition = partition as usize;
                let Some(slot) = state.slot_of(partition, from) else {
                    continue;
                };
                if !replicas.allows(state, partition, slot) {
                    continue;
                }
                for &y in under {
                    if !movable(state, partition, x, y) {
                        continue;
                    }
                    let Some(to) = receiver(state, targets, partition, y) else {
                        continue;
                    };
                    if !exact || targets.surplus(state, to) < 0 {
                        return Some(Move {
                            partition,
                            slot,
                            to,
                        });
                    }
                }
            }
        }
    }
    None
}

/// Whether one replica of `partition` may move from zone `x` to zone `y`.
fn movable(state: &State, partition: usize, x: usize, y: usize) -> bool {
    let topology = state.topology();
    state.zone_count(partition, x) > topology.min_per_partition[x]
        && state.zone_count(partition, y) < topology.max_per_partition[y]
}

/// The member of `zone` to receive a replica of `partition`: furthest below
/// target, then a former owner (whose data is still there), then by
/// tie-break score. `None` if every member of the zone holds the partition
/// already.
fn receiver(state: &State, targets: &Targets, partition: usize, zone: usize) -> Option<usize> {
    let topology = state.topology();
    topology.zone_members[zone]
        .iter()
        .copied()
        .filter(|&m| !state.holds(partition, m))
        .max_by_key(|&m| {
            (
                -targets.surplus(state, m),
                state.was_owner(partition, m),
                topology.member_score(partition, m),
            )
        })
}

/// Shortest chain of moves from a zone in `over` to a zone in `under`, each
/// hop moving one allowed replica of some partition from one zone to the
/// next. A shortest chain never uses a partition twice (two hops through one
/// partition could be short-cut by the first hop's replica), so the hops can
/// be applied one after the other.
fn zone_chain(
    state: &State,
    targets: &Targets,
    over: &[usize],
    under: &[usize],
    replicas: Replicas,
) -> Option<Vec<Move>> {
    let topology = state.topology();
    let zones = topology.zone_count();
    let mut reached: Vec<Option<(usize, usize, usize)>> = vec![None; zones];
    let mut seen = vec![false; zones];
    let mut queue: VecDeque<usize> = over.iter().copied().collect();
    for &z in over {
        seen[z] = true;
    }
    while let Some(x) = queue.pop_front() {
        if replicas == Replicas::Fresh && state.zone_fresh(x) == 0 {
            continue;
        }
        for partition in 0..topology.partitions {
            if state.zone_count(partition, x) <= topology.min_per_partition[x] {
                continue;
            }
            let Some(slot) = (0..topology.replication).find(|&slot| {
                state.slots(partition)[slot].is_some_and(|m| topology.zone_of[usize::from(m)] == x)
                    && replicas.allows(state, partition, slot)
            }) else {
                continue;
            };
            for y in 0..zones {
                if seen[y] || state.zone_count(partition, y) >= topology.max_per_partition[y] {
                    continue;
                }
                seen[y] = true;
                reached[y] = Some((x, partition, slot));
                if under.contains(&y) {
                    let mut chain = Vec::new();
                    let mut at = y;
                    while let Some((from, partition, slot)) = reached[at] {
                        chain.push(Move {
                            partition,
                            slot,
                            to: receiver(state, targets, partition, at)?,
                        });
                        at = from;
                    }
                    return Some(chain);
                }
                queue.push_back(y);
            }
        }
    }
    None
}

/// Inside each zone, moves replicas from members above target to members
/// below it: along a chain of free moves (of fresh replicas, or back to a
/// former owner) when one exists, possibly through members of other zones,
/// else directly from the member furthest above target to the one furthest
/// below, preferring a replica the receiver held before, then a fresh one.
/// Targets in a zone differ by at most one, so the member above target
/// always holds a partition the other lacks.
pub(crate) fn members(state: &mut State, targets: &Targets) {
    let topology = state.topology();
    for nodes in &topology.zone_members {
        // Direct moves add no free move that could shorten the work left,
        // so once no free chain exists, stop looking for one.
        let mut free_chains = true;
        loop {
            if free_chains {
                if let Some(chain) = free_chain(state, targets, nodes) {
                    for step in &chain {
                        apply(state, step);
                    }
                    continue;
                }
                free_chains = false;
            }
            let by_surplus = |&m: &usize| (targets.surplus(state, m), std::cmp::Reverse(m));
            let (Some(from), Some(to)) = (
                nodes.iter().copied().max_by_key(by_surplus),
                nodes.iter().copied().min_by_key(by_surplus),
            ) else {
                break;
            };
            if targets.surplus(state, from) <= 0 || targets.surplus(state, to) >= 0 {
                break;
            }
            let best = state
                .held(from)
                .iter()
                .map(|&p| p as usize)
                .filter(|&p| !state.holds(p, to))
                .filter_map(|p| state.slot_of(p, from).map(|slot| (p, slot)))
                .max_by_key(|&(p, slot)| (state.was_owner(p, to), state.is_fresh(p, slot)));
            let Some((partition, slot)) = best else {
                break;
            };
            apply(
                state,
                &Move {
                    partition,
                    slot,
                    to,
                },
            );
        }
    }
}

/// A chain of free moves from a member of one zone (`nodes`) above target
/// to a member of the same zone below target, possibly through members of
/// other zones (whose loads, and so every zone's load, end unchanged). A
/// move is free when the replica is fresh or the receiver owned the
/// partition before, and must keep the partition within the zone bounds.
/// The chain uses each partition at most once, so its moves stay valid when
/// applied one after the other.
fn free_chain(state: &State, targets: &Targets, nodes: &[usize]) -> Option<Vec<Move>> {
    if !nodes.iter().any(|&m| targets.surplus(state, m) < 0) {
        return None;
    }
    let topology = state.topology();
    let members = topology.member_count();
    let mut seen = vec![false; members];
    let mut reached: Vec<Option<(usize, usize, usize)>> = vec![None; members];
    let mut queue = VecDeque::new();
    for &m in nodes {
        if targets.surplus(state, m) > 0 {
            seen[m] = true;
            queue.push_back(m);
        }
    }
    let sink_zone = nodes.first().map(|&m| topology.zone_of[m]);
    let on_path = |reached: &[Option<(usize, usize, usize)>], mut at: usize, partition: usize| {
        while let Some((previous, p, _)) = reached[at] {
            if p == partition {
                return true;
            }
            at = previous;
        }
        false
    };
    while let Some(from) = queue.pop_front() {
        let from_zone = topology.zone_of[from];
        for &partition in state.held(from) {
            let partition = partition as usize;
            let Some(slot) = state.slot_of(partition, from) else {
                continue;
            };
            if on_path(&reached, from, partition) {
                continue;
            }
            let candidates: Vec<usize> = if state.is_fresh(partition, slot) {
                (0..members).collect()
            } else {
                state.former_owners(partition).collect()
            };
            for to in candidates {
                if seen[to] || state.holds(partition, to) {
                    continue;
                }
                let to_zone = topology.zone_of[to];
                if to_zone != from_zone && !movable(state, partition, from_zone, to_zone) {
                    continue;
                }
                seen[to] = true;
                reached[to] = Some((from, partition, slot));
                if Some(to_zone) == sink_zone && targets.surplus(state, to) < 0 {
                    let mut chain = Vec::new();
                    let mut at = to;
                    while let Some((previous, partition, slot)) = reached[at] {
                        chain.push(Move {
                            partition,
                            slot,
                            to: at,
                        });
                        at = previous;
                    }
                    return Some(chain);
                }
                queue.push_back(to);
            }
        }
    }
    None
}
