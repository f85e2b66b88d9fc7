//! Version vectors and dots.

use serde::{Deserialize, Serialize};

/// Identity of a write coordinator: one per node data directory incarnation,
/// so a node that lost its data never reuses an old counter.
pub type Actor = u64;

/// One write event: the `counter`-th write coordinated by `actor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// The coordinator that created the event.
    pub actor: Actor,
    /// Its event counter: the actor's node-wide sequence, from 1 up to
    /// [`MAX_COUNTER`](super::MAX_COUNTER).
    pub counter: u64,
}

/// A map actor -> highest counter seen, kept as a vector sorted by actor
/// (compact on the wire, cheap to compare).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VersionVector(Vec<(Actor, u64)>);

impl VersionVector {
    /// The empty vector: has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Highest counter seen from `actor` (0 when none).
    pub fn get(&self, actor: Actor) -> u64 {
        match self.0.binary_search_by_key(&actor, |(a, _)| *a) {
            Ok(i) => self.0[i].1,
            Err(_) => 0,
        }
    }

    /// Whether the event `dot` is included in this vector.
    pub fn covers(&self, dot: Dot) -> bool {
        dot.counter <= self.get(dot.actor)
    }

    /// Raises the entry of `dot.actor` to at least `dot.counter`. A zero
    /// counter (no event) adds nothing.
    pub fn add(&mut self, dot: Dot) {
        if dot.counter == 0 {
            return;
        }
        match self.0.binary_search_by_key(&dot.actor, |(a, _)| *a) {
            Ok(i) => self.0[i].1 = self.0[i].1.max(dot.counter),
            Err(i) => self.0.insert(i, (dot.actor, dot.counter)),
        }
    }

    /// Pointwise maximum with `other`.
    pub fn merge(&mut self, other: &VersionVector) {
        for &(actor, counter) in &other.0 {
            self.add(Dot { actor, counter });
        }
    }

    /// Whether this vector has seen everything `other` has (`self >= other`).
    pub fn descends(&self, other: &VersionVector) -> bool {
        other
            .0
            .iter()
            .all(|&(actor, counter)| self.get(actor) >= counter)
    }

    /// The entries, sorted by actor.
    pub fn entries(&self) -> &[(Actor, u64)] {
        &self.0
    }

    /// Keeps the entries of the first `actors` actors only (a vector that
    /// has seen less).
    pub fn truncate(&mut self, actors: usize) {
        self.0.truncate(actors);
    }

    /// Whether every entry is sorted by strictly increasing actor with a
    /// non-zero counter (the invariant of a well-formed vector).
    pub fn is_well_formed(&self) -> bool {
        self.0.windows(2).all(|w| w[0].0 < w[1].0) && self.0.iter().all(|(_, c)| *c > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vv(entries: &[(Actor, u64)]) -> VersionVector {
        let mut v = VersionVector::new();
        for &(actor, counter) in entries {
            v.add(Dot { actor, counter });
        }
        v
    }

    fn arb_vv() -> impl Strategy<Value = VersionVector> {
        proptest::collection::vec((0u64..5, 1u64..6), 0..6).prop_map(|e| vv(&e))
    }

    /// Numbers at the edges: 0, 1, the counter limit and the ends of `u64`.
    fn extreme() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0),
            Just(1),
            Just(crate::version::MAX_COUNTER),
            Just(u64::MAX - 1),
            Just(u64::MAX),
            any::<u64>(),
        ]
    }

    fn arb_extreme_vv() -> impl Strategy<Value = VersionVector> {
        proptest::collection::vec((extreme(), extreme()), 0..6).prop_map(|e| vv(&e))
    }

    #[test]
    fn covers_and_descends() {
        let a = vv(&[(1, 2), (2, 1)]);
        assert!(a.covers(Dot {
            actor: 1,
            counter: 2
        }));
        assert!(!a.covers(Dot {
            actor: 1,
            counter: 3
        }));
        assert!(!a.covers(Dot {
            actor: 3,
            counter: 1
        }));
        assert!(a.descends(&vv(&[(1, 1)])));
        assert!(!vv(&[(1, 1)]).descends(&a));
        assert!(!a.descends(&vv(&[(3, 1)])) && !vv(&[(3, 1)]).descends(&a));
        assert!(a.descends(&VersionVector::new()));
    }

    proptest! {
        #[test]
        fn merge_is_a_join(a in arb_vv(), b in arb_vv(), c in arb_vv()) {
            let mut ab = a.clone(); ab.merge(&b);
            let mut ba = b.clone(); ba.merge(&a);
            prop_assert_eq!(&ab, &ba);
            prop_assert!(ab.descends(&a) && ab.descends(&b));
            prop_assert!(ab.is_well_formed());
            let mut aa = a.clone(); aa.merge(&a);
            prop_assert_eq!(&aa, &a);
            let mut ab_c = ab.clone(); ab_c.merge(&c);
            let mut bc = b.clone(); bc.merge(&c);
            let mut a_bc = a.clone(); a_bc.merge(&bc);
            prop_assert_eq!(ab_c, a_bc);
        }

        /// Extreme actors and counters: no panic, no wrap, a well-formed
        /// vector (zero counters add nothing), and merge is still a join.
        #[test]
        fn extreme_counters_keep_merge_a_join(a in arb_extreme_vv(), b in arb_extreme_vv(), c in arb_extreme_vv()) {
            prop_assert!(a.is_well_formed() && b.is_well_formed());
            let mut ab = a.clone(); ab.merge(&b);
            let mut ba = b.clone(); ba.merge(&a);
            prop_assert_eq!(&ab, &ba);
            prop_assert!(ab.is_well_formed() && ab.descends(&a) && ab.descends(&b));
            for &(actor, counter) in ab.entries() {
                prop_assert_eq!(counter, a.get(actor).max(b.get(actor)));
                let dot = Dot { actor, counter };
                prop_assert!(ab.covers(dot));
            }
            let mut ab_c = ab.clone(); ab_c.merge(&c);
            let mut bc = b.clone(); bc.merge(&c);
            let mut a_bc = a.clone(); a_bc.merge(&bc);
            prop_assert_eq!(ab_c, a_bc);
        }

        #[test]
        fn descends_matches_merge(a in arb_vv(), b in arb_vv()) {
            let mut ab = a.clone(); ab.merge(&b);
            prop_assert_eq!(a.descends(&b), ab == a);
        }
    }
}
