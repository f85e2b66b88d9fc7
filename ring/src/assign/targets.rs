//! Fair shares: how many replicas each zone and member should hold, and how
//! many partitions each member should be primary for.
//!
//! Shares are computed exactly (rational water-filling), then rounded to
//! integers that add up to the total, rounding up the items whose current
//! count is furthest above their share's floor so that a balanced ring stays
//! as it is.

use std::cmp::Ordering;

use super::state::State;

/// Integer replica targets.
pub(crate) struct Targets {
    /// Replicas per zone.
    pub(crate) zone: Vec<usize>,
    /// Replicas per member; the members of a zone add up to its target.
    pub(crate) member: Vec<usize>,
}

impl Targets {
    /// How far `member` is above its replica target (negative: below).
    pub(crate) fn surplus(&self, state: &State, member: usize) -> i64 {
        state.load(member) as i64 - self.member[member] as i64
    }
}

/// Replica targets for the members and zones of `state`, rounded towards
/// the loads `state` currently has.
pub(crate) fn replicas(state: &State) -> Targets {
    let topology = state.topology();
    let q = topology.partitions as u128;
    let total = q * topology.replication as u128;
    let bounds: Vec<Bounds> = (0..topology.zone_count())
        .map(|z| Bounds {
            weight: topology.zone_members[z].len() as u128,
            low: q * topology.min_per_partition[z] as u128,
            high: q * topology.max_per_partition[z] as u128,
        })
        .collect();
    let zone_loads: Vec<usize> = (0..topology.zone_count())
        .map(|z| state.zone_load(z))
        .collect();
    let zone = round(&water_fill(&bounds, total), total, &zone_loads);
    let mut member = vec![0; topology.member_count()];
    for (z, nodes) in topology.zone_members.iter().enumerate() {
        let base = zone[z] / nodes.len();
        let mut order = nodes.clone();
        order.sort_by(|&a, &b| state.load(b).cmp(&state.load(a)).then(a.cmp(&b)));
        for (rank, &m) in order.iter().enumerate() {
            member[m] = base + usize::from(rank < zone[z] % nodes.len());
        }
    }
    Targets { zone, member }
}

/// Primary targets as `(floor, ceil)` of each member's fair share: the
/// `partitions` primaries shared evenly, except that a member cannot be
/// primary for more partitions than it holds (`loads`).
pub(crate) fn primaries(loads: &[usize], partitions: usize) -> Vec<(usize, usize)> {
    let bounds: Vec<Bounds> = loads
        .iter()
        .map(|&load| Bounds {
            weight: 1,
            low: 0,
            high: load as u128,
        })
        .collect();
    water_fill(&bounds, partitions as u128)
        .iter()
        .map(|share| {
            let floor = share.floor() as usize;
            (floor, floor + usize::from(!share.is_whole()))
        })
        .collect()
}

/// One item of a water-filling: it receives `weight * level`, clamped to
/// `[low, high]`.
struct Bounds {
    weight: u128,
    low: u128,
    high: u128,
}

/// A non-negative fraction. Values stay far below `2^100`, so cross
/// products fit in `u128`.
#[derive(Clone, Copy, Debug)]
struct Ratio {
    num: u128,
    den: u128,
}

impl Ratio {
    fn whole(value: u128) -> Self {
        Ratio { num: value, den: 1 }
    }

    fn floor(self) -> u128 {
        self.num / self.den
    }

    fn is_whole(self) -> bool {
        self.num.is_multiple_of(self.den)
    }

    fn cmp(self, other: Ratio) -> Ordering {
        (self.num * other.den).cmp(&(other.num * self.den))
    }

    fn clamp(self, low: u128, high: u128) -> Ratio {
        if self.cmp(Ratio::whole(low)) == Ordering::Less {
            Ratio::whole(low)
        } else if self.cmp(Ratio::whole(high)) == Ordering::Greater {
            Ratio::whole(high)
        } else {
            self
        }
    }

    fn times(self, weight: u128) -> Ratio {
        Ratio {
            num: self.num * weight,
            den: self.den,
        }
    }
}

/// Finds the level `l` with `sum(clamp(weight * l, low, high)) = total` and
/// returns each item's share at that level (exactly). Every item must have
/// `weight >= 1` and `low <= high`; `total` must lie between the sums of the
/// lows and the highs (outside that, the nearest bound is returned).
fn water_fill(items: &[Bounds], total: u128) -> Vec<Ratio> {
    // The filled amount at a level, as a numerator over the level's
    // denominator.
    let filled = |level: Ratio| -> u128 {
        items
            .iter()
            .map(|b| (b.weight * level.num).clamp(b.low * level.den, b.high * level.den))
            .sum()
    };
    let mut breakpoints: Vec<Ratio> = items
        .iter()
        .flat_map(|b| {
            [
                Ratio {
                    num: b.low,
                    den: b.weight,
                },
                Ratio {
                    num: b.high,
                    den: b.weight,
                },
            ]
        })
        .collect();
    breakpoints.sort_by(|a, b| a.cmp(*b));
    breakpoints.dedup_by(|a, b| a.cmp(*b) == Ordering::Equal);
    let reached = |level: &Ratio| filled(*level) >= total * level.den;
    let level = match breakpoints.iter().position(reached) {
        None => breakpoints.last().copied().unwrap_or(Ratio::whole(0)),
        Some(0) => breakpoints[0],
        Some(k) => {
            // Between two breakpoints the filled amount grows linearly with
            // the weight of the items that are strictly inside their bounds.
            let (before, after) = (breakpoints[k - 1], breakpoints[k]);
            let slope: u128 = items
                .iter()
                .filter(|b| {
                    Ratio {
                        num: b.low,
                        den: b.weight,
                    }
                    .cmp(before)
                        != Ordering::Greater
                        && Ratio {
                            num: b.high,
                            den: b.weight,
                        }
                        .cmp(after)
                            != Ordering::Less
                })
                .map(|b| b.weight)
                .sum();
            if slope == 0 {
                after
            } else {
                Ratio {
                    num: before.num * slope + total * before.den - filled(before),
                    den: before.den * slope,
                }
            }
        }
    };
    items
        .iter()
        .map(|b| level.times(b.weight).clamp(b.low, b.high))
        .collect()
}

/// Rounds `shares` (which add up to `total`) to integers with the same sum:
/// every share goes to its floor, and the remaining units go to fractional
/// shares whose `current` count exceeds their floor the most (ties: lower
/// index).
fn round(shares: &[Ratio], total: u128, current: &[usize]) -> Vec<usize> {
    let mut rounded: Vec<usize> = shares.iter().map(|s| s.floor() as usize).collect();
    let floors: u128 = shares.iter().map(|s| s.floor()).sum();
    let mut fractional: Vec<usize> = (0..shares.len())
        .filter(|&i| !shares[i].is_whole())
        .collect();
    let above_floor = |i: usize| current.get(i).copied().unwrap_or(0) as i128 - rounded[i] as i128;
    fractional.sort_by(|&a, &b| above_floor(b).cmp(&above_floor(a)).then(a.cmp(&b)));
    let extra = total.saturating_sub(floors) as usize;
    for &i in fractional.iter().take(extra) {
        rounded[i] += 1;
    }
    rounded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(items: &[(u128, u128, u128)], total: u128) -> Vec<f64> {
        let bounds: Vec<Bounds> = items
            .iter()
            .map(|&(weight, low, high)| Bounds { weight, low, high })
            .collect();
        water_fill(&bounds, total)
            .iter()
            .map(|r| r.num as f64 / r.den as f64)
            .collect()
    }

    #[test]
    fn unconstrained_shares_follow_weights() {
        assert_eq!(
            shares(&[(1, 0, 100), (2, 0, 100), (1, 0, 100)], 100),
            [25.0, 50.0, 25.0]
        );
    }

    #[test]
    fn capped_items_pass_the_rest_on() {
        // Three zones (1, 1, 5 members), Q = 64, N = 3, at most 64 each.
        assert_eq!(
            shares(&[(1, 0, 64), (1, 0, 64), (5, 0, 64)], 192),
            [64.0, 64.0, 64.0]
        );
        // Weights 1, 1, 4 with total 120: level 20 would give the big one 80.
        assert_eq!(
            shares(&[(1, 0, 120), (1, 0, 120), (4, 0, 64)], 120),
            [28.0, 28.0, 64.0]
        );
    }

    #[test]
    fn floors_are_raised_first() {
        // Two zones, N = 3: each needs at least Q = 10; weights 1 and 9.
        let s = shares(&[(1, 10, 20), (9, 10, 20)], 30);
        assert_eq!(s, [10.0, 20.0]);
        let s = shares(&[(1, 10, 20), (2, 10, 20)], 30);
        assert_eq!(s, [10.0, 20.0]);
        let s = shares(&[(3, 10, 20), (2, 10, 20)], 30);
        assert_eq!(s, [18.0, 12.0]);
    }

    #[test]
    fn fractional_shares_are_exact() {
        let s = shares(&[(1, 0, 10), (1, 0, 10), (1, 0, 10)], 10);
        assert!(s.iter().all(|&x| (x - 10.0 / 3.0).abs() < 1e-12));
    }

    #[test]
    fn rounding_keeps_the_total_and_prefers_current_counts() {
        let third = Ratio { num: 10, den: 3 };
        assert_eq!(round(&[third; 3], 10, &[0, 0, 0]), [4, 3, 3]);
        assert_eq!(round(&[third; 3], 10, &[3, 3, 4]), [3, 3, 4]);
        assert_eq!(
            round(&[Ratio::whole(2), third, third, third], 12, &[9, 0, 4, 0]),
            [2, 3, 4, 3]
        );
    }

    #[test]
    fn primaries_are_limited_by_loads() {
        assert_eq!(
            primaries(&[1, 10, 10, 10], 16),
            [(1, 1), (5, 5), (5, 5), (5, 5)]
        );
        assert_eq!(primaries(&[2, 2, 2], 4), [(1, 2), (1, 2), (1, 2)]);
    }
}
