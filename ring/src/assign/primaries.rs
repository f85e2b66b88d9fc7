//! Balancing primaries by reordering owner lists (no data moves).

use std::collections::VecDeque;

use super::state::State;

/// Moves primaries until every member's primary count lies within its
/// `(floor, ceil)` target, or no swap sequence can get closer. Each step
/// follows a shortest augmenting path: a member with too many primaries
/// hands a partition's primary role to a co-owner, who hands one of its own
/// on, and so on until a member with room receives one. A shortest path uses
/// each partition at most once (a partition is left only by its current
/// primary), so its swaps can be applied one after the other. Every step
/// lowers the total distance to the targets, so the loop ends.
pub(crate) fn balance(state: &mut State, targets: &[(usize, usize)]) {
    loop {
        let count = |m: usize| state.primary_count(m);
        // Above the ceiling towards anyone below theirs, then anyone above
        // the floor towards someone below theirs.
        let path = augmenting_path(
            state,
            |m| count(m) > targets[m].1,
            |m| count(m) < targets[m].1,
        )
        .or_else(|| {
            augmenting_path(
                state,
                |m| count(m) > targets[m].0,
                |m| count(m) < targets[m].0,
            )
        });
        let Some(path) = path else {
            return;
        };
        for (partition, member) in path {
            state.promote(partition, member);
        }
    }
}

/// Shortest chain of (partition, new primary) swaps from a member that
/// satisfies `source` to one that satisfies `sink`, or `None` if there is
/// no sink or no chain reaches one.
fn augmenting_path(
    state: &State,
    source: impl Fn(usize) -> bool,
    sink: impl Fn(usize) -> bool,
) -> Option<Vec<(usize, usize)>> {
    let members = state.topology().member_count();
    if !(0..members).any(&sink) {
        return None;
    }
    let mut seen: Vec<bool> = (0..members).map(&source).collect();
    let mut reached: Vec<Option<(usize, usize)>> = vec![None; members];
    let mut queue: VecDeque<usize> = (0..members).filter(|&m| seen[m]).collect();
    while let Some(from) = queue.pop_front() {
        for &partition in state.held(from) {
            let partition = partition as usize;
            if state.primary(partition) != Some(from) {
                continue;
            }
            for to in state.owners(partition) {
                if seen[to] {
                    continue;
                }
                seen[to] = true;
                reached[to] = Some((from, partition));
                if sink(to) {
                    let mut path = Vec::new();
                    let mut at = to;
                    while let Some((previous, partition)) = reached[at] {
                        path.push((partition, at));
                        at = previous;
                    }
                    return Some(path);
                }
                queue.push_back(to);
            }
        }
    }
    None
}
