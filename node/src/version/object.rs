//! A key's versioned state: a DVV set (one clock plus dotted siblings).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Actor, Dot, VersionVector};

/// A write was given a dot its key (or its context) has already seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("dot {0:?} is not newer than what the key has seen of its actor")]
pub struct StaleDot(pub Dot);

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

    /// The smallest counter `actor` may give a new version of this key
    /// written with `context`: above every event of `actor` the key or the
    /// context has seen. `None` when that would overflow (a context no
    /// coordinator could have issued).
    pub fn next_counter(&self, actor: Actor, context: &VersionVector) -> Option<u64> {
        self.clock.get(actor).max(context.get(actor)).checked_add(1)
    }

    /// Records a write with the new event `dot` from a client that had read
    /// `context`: the new version supersedes exactly the siblings the context
    /// covers; everything else stays as a sibling. Refused (nothing changes)
    /// when `dot` is not newer than what the key or the context has seen of
    /// its actor, since two versions must never share a dot.
    pub fn write(
        &mut self,
        dot: Dot,
        context: &VersionVector,
        value: Option<Bytes>,
    ) -> Result<(), StaleDot> {
        if self.next_counter(dot.actor, context) > Some(dot.counter) {
            return Err(StaleDot(dot));
        }
        self.siblings.retain(|s| !context.covers(s.dot));
        self.clock.merge(context);
        self.clock.add(dot);
        self.siblings.push(Sibling { dot, value });
        self.siblings.sort_by_key(|s| s.dot);
        Ok(())
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

    /// A write by `actor` with the per-key counter (what a node whose
    /// counter never moved past this key would pick).
    fn put(o: &mut Object, actor: Actor, ctx: &VersionVector, value: Option<Bytes>) -> Dot {
        let counter = o.next_counter(actor, ctx).unwrap();
        let dot = Dot { actor, counter };
        o.write(dot, ctx, value).unwrap();
        dot
    }

    #[test]
    fn two_writers_with_same_context_make_siblings_and_a_read_collapses_them() {
        let mut replica = Object::new();
        put(&mut replica, 1, &VersionVector::new(), val("v1"));
        let ctx = replica.context().clone();
        put(&mut replica, 1, &ctx, val("a"));
        put(&mut replica, 2, &ctx, val("b"));
        assert_eq!(live(&replica), vec![&b"a"[..], b"b"]);
        let seen = replica.context().clone();
        put(&mut replica, 1, &seen, val("merged"));
        assert_eq!(live(&replica), vec![&b"merged"[..]]);
    }

    #[test]
    fn stale_write_does_not_overwrite_newer() {
        let mut replica = Object::new();
        put(&mut replica, 1, &VersionVector::new(), val("old"));
        let stale = replica.context().clone();
        put(&mut replica, 1, &stale, val("new"));
        put(&mut replica, 2, &stale, val("late"));
        assert_eq!(live(&replica), vec![&b"new"[..], b"late"]);
    }

    #[test]
    fn delete_leaves_a_tombstone_that_merges_away_the_value() {
        let mut a = Object::new();
        put(&mut a, 1, &VersionVector::new(), val("x"));
        let mut b = a.clone();
        let ctx = a.context().clone();
        put(&mut a, 1, &ctx, None);
        assert_eq!(live(&a).len(), 0);
        assert!(b.merge(&a));
        assert_eq!(b, a);
        assert!(!b.merge(&a));
    }

    #[test]
    fn a_dot_the_key_or_the_context_has_seen_is_refused() {
        let mut o = Object::new();
        put(&mut o, 1, &VersionVector::new(), val("x"));
        let reused = Dot {
            actor: 1,
            counter: 1,
        };
        assert_eq!(
            o.write(reused, &VersionVector::new(), val("y")),
            Err(StaleDot(reused))
        );
        let mut ctx = VersionVector::new();
        ctx.add(Dot {
            actor: 2,
            counter: 9,
        });
        let seen = Dot {
            actor: 2,
            counter: 9,
        };
        assert!(Object::new().write(seen, &ctx, val("y")).is_err());
        assert_eq!(live(&o), vec![&b"x"[..]]);
    }

    #[test]
    fn a_context_at_the_counter_limit_has_no_next_counter() {
        let mut ctx = VersionVector::new();
        ctx.add(Dot {
            actor: 1,
            counter: u64::MAX,
        });
        assert_eq!(Object::new().next_counter(1, &ctx), None);
        assert_eq!(Object::new().next_counter(2, &ctx), Some(1));
    }

    /// The failure a per-key counter allows: a tombstone purged on one
    /// replica but not another, then a write with no context there. A
    /// counter that never repeats keeps the new value; a per-key counter
    /// would reuse the tombstone's dot and lose it.
    #[test]
    fn a_write_after_a_partial_purge_survives_with_a_never_repeating_counter() {
        let mut kept = Object::new();
        put(&mut kept, 1, &VersionVector::new(), val("old"));
        let ctx = kept.context().clone();
        put(&mut kept, 1, &ctx, None);
        let tombstone = kept.clone();
        let mut purged = Object::new();
        let node_counter = 3;
        let fresh = Dot {
            actor: 1,
            counter: purged
                .next_counter(1, &VersionVector::new())
                .unwrap()
                .max(node_counter),
        };
        purged
            .write(fresh, &VersionVector::new(), val("new"))
            .unwrap();
        kept.merge(&purged);
        purged.merge(&kept);
        assert_eq!(kept, purged);
        assert_eq!(live(&kept), vec![&b"new"[..]]);

        let mut reused = Object::new();
        put(&mut reused, 1, &VersionVector::new(), val("new"));
        let mut merged = tombstone.clone();
        merged.merge(&reused);
        assert!(live(&merged).is_empty(), "a reused dot loses the write");
    }

    /// A random history: replicas that take writes with contexts read from
    /// random replicas, merge with each other, and purge tombstones.
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
        /// When every replica holds the same tombstone, forget it on the
        /// replicas in `mask` (a purge that may stop halfway).
        Purge {
            mask: u8,
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
            (1..8u8).prop_map(|mask| Op::Purge { mask }),
        ]
    }

    /// Replicas plus, per actor, the node-wide counter of the last dot it
    /// issued (what `Storage` keeps).
    struct History {
        replicas: Vec<Object>,
        issued: [u64; 4],
        written: Vec<(Dot, VersionVector, bool)>,
    }

    impl History {
        /// A write by `actor` at its own replica (actor % 3, as a
        /// coordinator writes locally), with a never-repeating counter.
        fn write(&mut self, actor: Actor, ctx: VersionVector, value: Option<Bytes>) {
            let i = actor as usize % 3;
            let next = self.replicas[i].next_counter(actor, &ctx).unwrap();
            let counter = next.max(self.issued[actor as usize] + 1);
            self.issued[actor as usize] = counter;
            let dot = Dot { actor, counter };
            let tombstone = value.is_none();
            self.replicas[i].write(dot, &ctx, value).unwrap();
            self.written.push((dot, ctx, tombstone));
        }

        fn purge(&mut self, mask: u8) {
            let first = &self.replicas[0];
            let agreed = first.is_tombstone() && self.replicas.iter().all(|r| r == first);
            if agreed {
                for (i, r) in self.replicas.iter_mut().enumerate() {
                    if mask & (1 << i) != 0 {
                        *r = Object::new();
                    }
                }
            }
        }
    }

    /// Runs a history; returns the replicas and every version written with
    /// its dot, the context it was written with and whether it was a delete.
    fn run(ops: &[Op]) -> (Vec<Object>, Vec<(Dot, VersionVector, bool)>) {
        let mut h = History {
            replicas: vec![Object::new(); 3],
            issued: [0; 4],
            written: Vec::new(),
        };
        for op in ops {
            match *op {
                Op::Write {
                    ctx_from,
                    actor,
                    tombstone,
                } => {
                    let ctx = h.replicas[ctx_from].context().clone();
                    let value = if tombstone { None } else { val("w") };
                    h.write(actor, ctx, value);
                }
                Op::Blind { actor } => h.write(actor, VersionVector::new(), val("b")),
                Op::Sync { from, to } => {
                    let src = h.replicas[from].clone();
                    h.replicas[to].merge(&src);
                }
                Op::Purge { mask } => h.purge(mask),
            }
        }
        (h.replicas, h.written)
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

        /// After full sync every written value is either still a sibling or
        /// was superseded by a later write whose context covered it, even
        /// when tombstones were purged on some replicas and not others in
        /// between: nothing is lost silently. (A purged tombstone may be
        /// gone; that is what purging is for.)
        #[test]
        fn converged_state_keeps_exactly_the_unsuperseded_writes(ops in proptest::collection::vec(arb_op(), 0..60)) {
            let (r, written) = run(&ops);
            let all = merged(&merged(&r[0], &r[1]), &r[2]);
            for (dot, _, tombstone) in &written {
                let superseded = written.iter().any(|(_, ctx, _)| ctx.covers(*dot));
                let present = all.siblings().iter().any(|s| s.dot == *dot);
                if *tombstone {
                    prop_assert!(!(present && superseded), "dot {:?}", dot);
                } else {
                    prop_assert_eq!(present, !superseded, "dot {:?}", dot);
                }
            }
        }

        /// Dots are unique forever: no two versions ever written share one.
        #[test]
        fn no_two_versions_share_a_dot(ops in proptest::collection::vec(arb_op(), 0..60)) {
            let (_, written) = run(&ops);
            let mut dots: Vec<Dot> = written.iter().map(|(d, _, _)| *d).collect();
            let count = dots.len();
            dots.sort_unstable();
            dots.dedup();
            prop_assert_eq!(dots.len(), count);
        }
    }
}
