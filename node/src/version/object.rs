//! A key's versioned state: a DVV set (one clock plus dotted siblings).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Actor, Dot, VersionVector};

/// One concurrent version of a value: live bytes, or a tombstone (`None`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sibling {
    /// The write event that created this version.
    pub dot: Dot,
    /// The value, or `None` for a delete.
    pub value: Option<Bytes>,
}

/// Everything a replica knows about one key.
///
/// Invariants: sibling dots are unique, sorted, and covered by `clock`; no
/// sibling is causally older than another (each was written without seeing
/// the others).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Object {
    clock: VersionVector,
    siblings: Vec<Sibling>,
}

impl Object {
    /// The state of a key nobody has written.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a write coordinated by `actor` from a client that had read
    /// `context`: the new version supersedes exactly the siblings the context
    /// covers; everything else stays as a sibling. Returns the new dot.
    pub fn write(&mut self, actor: Actor, context: &VersionVector, value: Option<Bytes>) -> Dot {
        let counter = self.clock.get(actor).max(context.get(actor)) + 1;
        let dot = Dot { actor, counter };
        self.siblings.retain(|s| !context.covers(s.dot));
        self.clock.merge(context);
        self.clock.add(dot);
        self.siblings.push(Sibling { dot, value });
        self.siblings.sort_by_key(|s| s.dot);
        dot
    }

    /// Merges another replica's state into this one (the DVV-set "sync"):
    /// a sibling survives if the other side holds it too or has not seen it.
    /// Returns whether this object changed.
    pub fn merge(&mut self, other: &Object) -> bool {
        let before_len = self.siblings.len();
        let before_clock = self.clock.clone();
        self.siblings
            .retain(|s| other.has_dot(s.dot) || !other.clock.covers(s.dot));
        let removed = self.siblings.len() != before_len;
        let mut added = false;
        for s in &other.siblings {
            if !before_clock.covers(s.dot) && !self.has_dot(s.dot) {
                self.siblings.push(s.clone());
                added = true;
            }
        }
        if added {
            self.siblings.sort_by_key(|s| s.dot);
        }
        self.clock.merge(&other.clock);
        removed || added || self.clock != before_clock
    }

    /// Whether this state has seen every event `other` has.
    pub fn descends(&self, other: &Object) -> bool {
        self.clock.descends(&other.clock)
    }

    /// The causal context to hand to a client that read this state.
    pub fn context(&self) -> &VersionVector {
        &self.clock
    }

    /// All concurrent versions, tombstones included, sorted by dot.
    pub fn siblings(&self) -> &[Sibling] {
        &self.siblings
    }

    /// The live (non-deleted) values, sorted by dot.
    pub fn live_values(&self) -> impl Iterator<Item = &Bytes> {
        self.siblings.iter().filter_map(|s| s.value.as_ref())
    }

    /// Whether nothing was ever written (no clock, no siblings).
    pub fn is_empty(&self) -> bool {
        self.siblings.is_empty() && self.clock.entries().is_empty()
    }

    /// Whether every remaining version is a delete (a tombstone that can be
    /// purged once all replicas hold it).
    pub fn is_tombstone(&self) -> bool {
        !self.siblings.is_empty() && self.siblings.iter().all(|s| s.value.is_none())
    }

    fn has_dot(&self, dot: Dot) -> bool {
        self.siblings.binary_search_by_key(&dot, |s| s.dot).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn val(s: &str) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn live(o: &Object) -> Vec<&[u8]> {
        o.live_values().map(|b| b.as_ref()).collect()
    }

    #[test]
    fn two_writers_with_same_context_make_siblings_and_a_read_collapses_them() {
        let mut replica = Object::new();
        replica.write(1, &VersionVector::new(), val("v1"));
        let ctx = replica.context().clone();
        replica.write(1, &ctx, val("a"));
        replica.write(2, &ctx, val("b"));
        assert_eq!(live(&replica), vec![&b"a"[..], b"b"]);
        let seen = replica.context().clone();
        replica.write(1, &seen, val("merged"));
        assert_eq!(live(&replica), vec![&b"merged"[..]]);
    }

    #[test]
    fn stale_write_does_not_overwrite_newer() {
        let mut replica = Object::new();
        replica.write(1, &VersionVector::new(), val("old"));
        let stale = replica.context().clone();
        replica.write(1, &stale, val("new"));
        replica.write(2, &stale, val("late"));
        assert_eq!(live(&replica), vec![&b"new"[..], b"late"]);
    }

    #[test]
    fn delete_leaves_a_tombstone_that_merges_away_the_value() {
        let mut a = Object::new();
        a.write(1, &VersionVector::new(), val("x"));
        let mut b = a.clone();
        let ctx = a.context().clone();
        a.write(1, &ctx, None);
        assert_eq!(live(&a).len(), 0);
        assert!(b.merge(&a));
        assert_eq!(b, a);
        assert!(!b.merge(&a));
    }

    /// A random history: replicas that take writes with contexts read from
    /// random replicas, and merge with each other.
    #[derive(Clone, Debug)]
    enum Op {
        Write {
            ctx_from: usize,
            actor: Actor,
            tombstone: bool,
        },
        Blind {
            actor: Actor,
        },
        Sync {
            from: usize,
            to: usize,
        },
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..3usize, 1..4u64, any::<bool>()).prop_map(|(ctx_from, actor, tombstone)| {
                Op::Write {
                    ctx_from,
                    actor,
                    tombstone,
                }
            }),
            (1..4u64).prop_map(|actor| Op::Blind { actor }),
            (0..3usize, 0..3usize).prop_map(|(from, to)| Op::Sync { from, to }),
        ]
    }

    /// Runs a history. Each actor writes only at its own replica (actor % 3,
    /// as a coordinator writes locally), so dots are unique. Returns the replicas and every
    /// value ever written with the dot it got.
    fn run(ops: &[Op]) -> (Vec<Object>, Vec<(Dot, VersionVector)>) {
        let mut replicas = vec![Object::new(); 3];
        let mut written = Vec::new();
        for op in ops {
            match *op {
                Op::Write {
                    ctx_from,
                    actor,
                    tombstone,
                } => {
                    let ctx = replicas[ctx_from].context().clone();
                    let value = if tombstone { None } else { val("w") };
                    let i = actor as usize % 3;
                    let dot = replicas[i].write(actor, &ctx, value);
                    written.push((dot, ctx));
                }
                Op::Blind { actor } => {
                    let i = actor as usize % 3;
                    let dot = replicas[i].write(actor, &VersionVector::new(), val("b"));
                    written.push((dot, VersionVector::new()));
                }
                Op::Sync { from, to } => {
                    let src = replicas[from].clone();
                    replicas[to].merge(&src);
                }
            }
        }
        (replicas, written)
    }

    fn well_formed(o: &Object) -> bool {
        o.siblings.windows(2).all(|w| w[0].dot < w[1].dot)
            && o.siblings.iter().all(|s| o.clock.covers(s.dot))
            && o.clock.is_well_formed()
    }

    fn merged(a: &Object, b: &Object) -> Object {
        let mut m = a.clone();
        m.merge(b);
        m
    }

    proptest! {
        #[test]
        fn merge_is_commutative_associative_idempotent(ops in proptest::collection::vec(arb_op(), 0..40)) {
            let (r, _) = run(&ops);
            prop_assert_eq!(merged(&r[0], &r[1]), merged(&r[1], &r[0]));
            prop_assert_eq!(merged(&merged(&r[0], &r[1]), &r[2]), merged(&r[0], &merged(&r[1], &r[2])));
            prop_assert_eq!(merged(&r[0], &r[0]), r[0].clone());
            for o in &r {
                prop_assert!(well_formed(o));
            }
        }

        #[test]
        fn merge_descends_both_and_descent_means_nothing_to_learn(ops in proptest::collection::vec(arb_op(), 0..40)) {
            let (r, _) = run(&ops);
            let m = merged(&r[0], &r[1]);
            prop_assert!(m.descends(&r[0]) && m.descends(&r[1]));
            if r[0].descends(&r[1]) {
                prop_assert_eq!(merged(&r[0], &r[1]), r[0].clone());
            }
        }

        /// After full sync every written version is either still a sibling
        /// or was superseded by a later write whose context covered it:
        /// nothing is lost silently.
        #[test]
        fn converged_state_keeps_exactly_the_unsuperseded_writes(ops in proptest::collection::vec(arb_op(), 0..40)) {
            let (r, written) = run(&ops);
            let all = merged(&merged(&r[0], &r[1]), &r[2]);
            for (dot, _) in &written {
                let superseded = written.iter().any(|(_, ctx)| ctx.covers(*dot));
                let present = all.siblings().iter().any(|s| s.dot == *dot);
                prop_assert_eq!(present, !superseded, "dot {:?}", dot);
            }
        }
    }
}
