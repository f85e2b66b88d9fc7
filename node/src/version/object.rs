//! A key's versioned state: a DVV set (one clock plus dotted siblings).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::content::{Content, now_ms};
use super::limits::{MAX_CONTEXT_ACTORS, MAX_COUNTER, MAX_OBJECT_BYTES, MAX_SIBLINGS};
use super::{Actor, Dot, VersionVector};

/// Bound of the encoded size of one clock entry: two varints.
const ENTRY_BYTES: usize = 20;
/// Bound of the encoded size of a sibling besides its value: its dot, the
/// value's presence and length.
const SIBLING_OVERHEAD: usize = ENTRY_BYTES + 11;
/// Bound of the encoded size of the two list lengths of an object.
const LENGTHS: usize = 20;

/// Why a write was not applied (nothing changed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WriteRefused {
    /// The dot is not newer than what the key or the context has seen of
    /// its actor, or is above [`MAX_COUNTER`]: two versions must never
    /// share a dot.
    #[error("dot {0:?} is not newer than what the key has seen of its actor")]
    StaleDot(Dot),
    /// The key would hold more than [`MAX_SIBLINGS`] concurrent versions.
    #[error(
        "the key would hold {siblings} concurrent versions; at most {MAX_SIBLINGS} are kept: \
         read the key and write with its context to resolve them"
    )]
    TooManySiblings {
        /// Siblings the write would leave.
        siblings: usize,
    },
    /// The key's versions would be larger than [`MAX_OBJECT_BYTES`].
    #[error(
        "the key's versions would take about {bytes} bytes; at most {MAX_OBJECT_BYTES} are kept: \
         read the key and write with its context to resolve them"
    )]
    TooLarge {
        /// The encoded size (bound) the write would leave.
        bytes: usize,
    },
}

/// One concurrent version of a value: a value, or a tombstone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sibling {
    /// The write event that created this version.
    pub dot: Dot,
    /// The value (with its attributes), or a delete.
    pub content: Content,
}

impl Sibling {
    /// Bound of its encoded size.
    fn size_bound(&self) -> usize {
        self.content.size_bound().saturating_add(SIBLING_OVERHEAD)
    }

    /// The value, if this version is a value that has not expired at `now`
    /// (ms since the Unix epoch).
    pub fn live_value(&self, now: u64) -> Option<&Bytes> {
        self.content
            .is_live(now)
            .then(|| self.content.bytes())
            .flatten()
    }
}

/// Everything a replica knows about one key.
///
/// Invariants: sibling dots are unique, sorted, and covered by `clock`; no
/// sibling is causally older than another (each was written without seeing
/// the others); the clock holds only dots some coordinator created (a
/// client context never enters it).
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
    /// context has seen. `None` when that would pass [`MAX_COUNTER`] (a
    /// context no coordinator could have issued).
    pub fn next_counter(&self, actor: Actor, context: &VersionVector) -> Option<u64> {
        self.clock
            .get(actor)
            .max(context.get(actor))
            .checked_add(1)
            .filter(|counter| *counter <= MAX_COUNTER)
    }

    /// Records a write with the new event `dot` from a client that had read
    /// `context`: the new version supersedes exactly the siblings the context
    /// covers; everything else stays as a sibling. The context only selects
    /// what is superseded: the clock takes the new dot, not the context's
    /// counters, so a context claiming events this replica has not seen
    /// supersedes none of them (they survive merges as siblings).
    ///
    /// Refused, with nothing changed, when `dot` is not newer than what the
    /// key or the context has seen of its actor (two versions must never
    /// share a dot), or when the key would be left above [`MAX_SIBLINGS`]
    /// or [`MAX_OBJECT_BYTES`] and larger than it was (a write that
    /// shrinks a key is always taken).
    pub fn write(
        &mut self,
        dot: Dot,
        context: &VersionVector,
        content: impl Into<Content>,
    ) -> Result<(), WriteRefused> {
        let fresh = self
            .next_counter(dot.actor, context)
            .is_some_and(|min| (min..=MAX_COUNTER).contains(&dot.counter));
        if !fresh {
            return Err(WriteRefused::StaleDot(dot));
        }
        let new = Sibling {
            dot,
            content: content.into(),
        };
        self.check_limits(context, &new)?;
        self.siblings.retain(|s| !context.covers(s.dot));
        self.clock.add(dot);
        self.siblings.push(new);
        self.siblings.sort_by_key(|s| s.dot);
        Ok(())
    }

    /// Refuses a write of `new` with `context` that would leave the key
    /// above a limit and larger than it is.
    fn check_limits(&self, context: &VersionVector, new: &Sibling) -> Result<(), WriteRefused> {
        let kept = || self.siblings.iter().filter(|s| !context.covers(s.dot));
        let siblings = kept().count().saturating_add(1);
        if siblings > MAX_SIBLINGS && siblings > self.siblings.len() {
            return Err(WriteRefused::TooManySiblings { siblings });
        }
        let new_actor = usize::from(self.clock.get(new.dot.actor) == 0);
        let clock_entries = self.clock.entries().len().saturating_add(new_actor);
        let bytes = size_bound(clock_entries, kept().chain([new]));
        if bytes > MAX_OBJECT_BYTES && bytes > self.size_bound() {
            return Err(WriteRefused::TooLarge { bytes });
        }
        Ok(())
    }

    /// Merges another replica's state into this one (the DVV-set "sync"):
    /// a sibling survives if the other side holds it too or has not seen it;
    /// a version the other side holds as expired (a tombstone with the
    /// same dot) becomes that tombstone here. Returns whether this object
    /// changed.
    pub fn merge(&mut self, other: &Object) -> bool {
        let before_len = self.siblings.len();
        let before_clock = self.clock.clone();
        self.siblings
            .retain(|s| other.has_dot(s.dot) || !other.clock.covers(s.dot));
        let removed = self.siblings.len() != before_len;
        let expired = self.take_expiries(other);
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
        removed || expired || added || self.clock != before_clock
    }

    /// Turns into tombstones the expiring versions `other` holds as
    /// tombstones with the same dot (a dot names one write, so the
    /// tombstone is that version, expired where `other` is). Returns
    /// whether any changed.
    fn take_expiries(&mut self, other: &Object) -> bool {
        let mut changed = false;
        for sibling in &mut self.siblings {
            let expires = sibling.content.expires_at().is_some();
            if expires && other.holds_deleted(sibling.dot) {
                sibling.content = Content::Deleted;
                changed = true;
            }
        }
        changed
    }

    /// Turns every version expired at `now` into a tombstone with its dot.
    /// Returns whether any was.
    pub fn expire(&mut self, now: u64) -> bool {
        let mut changed = false;
        for sibling in &mut self.siblings {
            if sibling.content.has_expired(now) {
                sibling.content = Content::Deleted;
                changed = true;
            }
        }
        changed
    }

    /// The earliest expiry of a value version that is not yet a tombstone.
    pub fn next_expiry(&self) -> Option<u64> {
        self.siblings
            .iter()
            .filter_map(|s| s.content.expires_at())
            .min()
    }

    /// Whether a version has attributes (needs data format 2, protocol 3).
    pub fn is_described(&self) -> bool {
        self.siblings.iter().any(|s| s.content.is_described())
    }

    /// Whether this state has seen every event `other` has.
    pub fn descends(&self, other: &Object) -> bool {
        self.clock.descends(&other.clock)
    }

    /// Every event this state has seen.
    pub fn clock(&self) -> &VersionVector {
        &self.clock
    }

    /// The causal context to hand to a client that read this state: per
    /// actor of a sibling, its newest sibling's counter. A write with it
    /// supersedes exactly these siblings (what the clock covers beyond them
    /// is superseded already, and merges drop it wherever it lingers), and
    /// it names at most one actor per sibling, cut to
    /// [`MAX_CONTEXT_ACTORS`], so it always fits the accepted context size.
    pub fn context(&self) -> VersionVector {
        let mut context = VersionVector::new();
        for s in &self.siblings {
            context.add(s.dot);
        }
        context.truncate(MAX_CONTEXT_ACTORS);
        context
    }

    /// All concurrent versions, tombstones included, sorted by dot.
    pub fn siblings(&self) -> &[Sibling] {
        &self.siblings
    }

    /// The versions that are values not expired at `now` (ms since the
    /// Unix epoch), sorted by dot.
    pub fn live(&self, now: u64) -> impl Iterator<Item = &Sibling> {
        self.siblings.iter().filter(move |s| s.content.is_live(now))
    }

    /// The values live now by this node's clock, sorted by dot.
    pub fn live_values(&self) -> impl Iterator<Item = &Bytes> {
        let now = now_ms();
        self.siblings.iter().filter_map(move |s| s.live_value(now))
    }

    /// Whether nothing was ever written (no clock, no siblings).
    pub fn is_empty(&self) -> bool {
        self.siblings.is_empty() && self.clock.entries().is_empty()
    }

    /// Whether every remaining version is a delete (a tombstone that can be
    /// purged once all replicas hold it).
    pub fn is_tombstone(&self) -> bool {
        !self.siblings.is_empty()
            && self
                .siblings
                .iter()
                .all(|s| matches!(s.content, Content::Deleted))
    }

    /// A bound of the size of this state once encoded.
    fn size_bound(&self) -> usize {
        size_bound(self.clock.entries().len(), self.siblings.iter())
    }

    fn has_dot(&self, dot: Dot) -> bool {
        self.siblings.binary_search_by_key(&dot, |s| s.dot).is_ok()
    }

    fn holds_deleted(&self, dot: Dot) -> bool {
        self.siblings
            .binary_search_by_key(&dot, |s| s.dot)
            .is_ok_and(|i| self.siblings[i].content == Content::Deleted)
    }
}

/// Bound of the encoded size of an object with `clock_entries` clock
/// entries and `siblings`.
fn size_bound<'a>(clock_entries: usize, siblings: impl Iterator<Item = &'a Sibling>) -> usize {
    siblings.fold(
        clock_entries
            .saturating_mul(ENTRY_BYTES)
            .saturating_add(LENGTHS),
        |total, s| total.saturating_add(s.size_bound()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::{Attributes, decode_context, encode_context};
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
        let ctx = replica.context();
        put(&mut replica, 1, &ctx, val("a"));
        put(&mut replica, 2, &ctx, val("b"));
        assert_eq!(live(&replica), vec![&b"a"[..], b"b"]);
        let seen = replica.context();
        put(&mut replica, 1, &seen, val("merged"));
        assert_eq!(live(&replica), vec![&b"merged"[..]]);
    }

    #[test]
    fn stale_write_does_not_overwrite_newer() {
        let mut replica = Object::new();
        put(&mut replica, 1, &VersionVector::new(), val("old"));
        let stale = replica.context();
        put(&mut replica, 1, &stale, val("new"));
        put(&mut replica, 2, &stale, val("late"));
        assert_eq!(live(&replica), vec![&b"new"[..], b"late"]);
    }

    #[test]
    fn delete_leaves_a_tombstone_that_merges_away_the_value() {
        let mut a = Object::new();
        put(&mut a, 1, &VersionVector::new(), val("x"));
        let mut b = a.clone();
        let ctx = a.context();
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
            Err(WriteRefused::StaleDot(reused))
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
        for (seen, next) in [
            (MAX_COUNTER - 1, Some(MAX_COUNTER)),
            (MAX_COUNTER, None),
            (u64::MAX - 1, None),
        ] {
            let mut ctx = VersionVector::new();
            ctx.add(Dot {
                actor: 1,
                counter: seen,
            });
            assert_eq!(Object::new().next_counter(1, &ctx), next, "{seen}");
        }
    }

    /// Dots at and past the counter limit are refused, also when the
    /// key's clock is at the limit (no counter is left above it).
    #[test]
    fn dots_past_the_counter_limit_are_refused() {
        let empty = VersionVector::new();
        for counter in [MAX_COUNTER + 1, u64::MAX - 1, u64::MAX] {
            let dot = Dot { actor: 1, counter };
            assert_eq!(
                Object::new().write(dot, &empty, val("x")),
                Err(WriteRefused::StaleDot(dot))
            );
        }
        let mut full = Object::new();
        let last = Dot {
            actor: 1,
            counter: MAX_COUNTER,
        };
        full.write(last, &empty, val("x")).unwrap();
        let reused = Dot {
            actor: 1,
            counter: 5,
        };
        assert_eq!(
            full.write(reused, &empty, val("y")),
            Err(WriteRefused::StaleDot(reused))
        );
        assert_eq!(live(&full), vec![&b"x"[..]]);
    }

    /// A context claiming events this replica has not seen supersedes what
    /// it holds, and its counters do not enter the clock: the event it
    /// claims, when it exists and arrives, is kept.
    #[test]
    fn a_context_claiming_unseen_events_does_not_enter_the_clock() {
        let mut a = Object::new();
        put(&mut a, 1, &VersionVector::new(), val("old"));
        let mut b = Object::new();
        let unseen = put(&mut b, 2, &VersionVector::new(), val("elsewhere"));
        let mut claim = a.context();
        claim.add(Dot {
            actor: 2,
            counter: 1 << 40,
        });
        put(&mut a, 1, &claim, val("new"));
        assert_eq!(a.clock().get(2), 0);
        assert_eq!(live(&a), vec![&b"new"[..]]);
        a.merge(&b);
        assert!(a.siblings().iter().any(|s| s.dot == unseen));
        assert_eq!(live(&a), vec![&b"new"[..], b"elsewhere"]);
    }

    /// Blind writes stop at the sibling limit; a write that replaces a
    /// sibling, or collapses them with the read context, is taken.
    #[test]
    fn blind_writes_stop_at_the_sibling_limit() {
        let mut o = Object::new();
        let blind = VersionVector::new();
        for _ in 0..MAX_SIBLINGS {
            put(&mut o, 1, &blind, val("b"));
        }
        let dot = Dot {
            actor: 2,
            counter: 1,
        };
        assert_eq!(
            o.write(dot, &blind, val("one too many")),
            Err(WriteRefused::TooManySiblings {
                siblings: MAX_SIBLINGS + 1
            })
        );
        assert_eq!(o.siblings().len(), MAX_SIBLINGS);
        let mut one = VersionVector::new();
        one.add(o.siblings()[0].dot);
        put(&mut o, 2, &one, val("replaces one"));
        assert_eq!(o.siblings().len(), MAX_SIBLINGS);
        let read = o.context();
        put(&mut o, 2, &read, val("resolved"));
        assert_eq!(live(&o), vec![&b"resolved"[..]]);
    }

    /// A key above the limits (merges never refuse) takes every write that
    /// shrinks it, and its context, cut to the most actors a context
    /// names, shrinks it by that many: a few rounds of read and write
    /// resolve it.
    #[test]
    fn a_key_merged_above_the_limits_can_be_shrunk_with_its_context() {
        let mut o = Object::new();
        let blind = VersionVector::new();
        for actor in (1..).take(2 * MAX_SIBLINGS) {
            let mut one = Object::new();
            put(&mut one, actor, &blind, val("b"));
            o.merge(&one);
        }
        assert_eq!(o.siblings().len(), 2 * MAX_SIBLINGS);
        let context = o.context();
        assert_eq!(context.entries().len(), MAX_CONTEXT_ACTORS);
        assert_eq!(
            decode_context(&encode_context(&context)),
            Ok(context.clone())
        );
        put(&mut o, 1, &context, val("shrinks"));
        assert_eq!(o.siblings().len(), MAX_SIBLINGS + 1);
        let context = o.context();
        put(&mut o, 1, &context, val("shrinks"));
        assert_eq!(o.siblings().len(), 2);
        let context = o.context();
        put(&mut o, 1, &context, val("resolved"));
        assert_eq!(live(&o), vec![&b"resolved"[..]]);
    }

    /// Large values stop at the object size limit; the key still takes a
    /// write that resolves it.
    #[test]
    fn large_values_stop_at_the_object_size_limit() {
        let mut o = Object::new();
        let large = Some(Bytes::from(vec![7; MAX_OBJECT_BYTES / 4]));
        let blind = VersionVector::new();
        for _ in 0..3 {
            put(&mut o, 1, &blind, large.clone());
        }
        let dot = Dot {
            actor: 1,
            counter: o.next_counter(1, &blind).unwrap(),
        };
        let refused = o.write(dot, &blind, large.clone());
        assert!(
            matches!(refused, Err(WriteRefused::TooLarge { bytes }) if bytes > MAX_OBJECT_BYTES),
            "{refused:?}"
        );
        assert!(postcard::to_stdvec(&o).unwrap().len() <= o.size_bound());
        let read = o.context();
        put(&mut o, 1, &read, large);
        assert_eq!(o.siblings().len(), 1);
    }

    /// The failure a per-key counter allows: a tombstone purged on one
    /// replica but not another, then a write with no context there. A
    /// counter that never repeats keeps the new value; a per-key counter
    /// would reuse the tombstone's dot and lose it.
    #[test]
    fn a_write_after_a_partial_purge_survives_with_a_never_repeating_counter() {
        let mut kept = Object::new();
        put(&mut kept, 1, &VersionVector::new(), val("old"));
        let ctx = kept.context();
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

    /// A value reads as absent from its expiry on; a replica that turned it
    /// into a tombstone hands that tombstone to one that has not, and the
    /// other way round nothing changes: the two converge on the tombstone.
    #[test]
    fn an_expired_value_becomes_a_tombstone_that_merges_converge_on() {
        let mut a = Object::new();
        let dot = put_content(&mut a, 1, &VersionVector::new(), expiring(100));
        put(&mut a, 2, &VersionVector::new(), val("kept"));
        assert_eq!(a.live(99).count(), 2);
        assert_eq!(a.live(100).count(), 1);
        assert_eq!(a.next_expiry(), Some(100));
        let mut b = a.clone();
        assert!(!b.expire(99));
        assert!(b.expire(100));
        assert!(b.holds_deleted(dot) && b.next_expiry().is_none());
        assert!(!b.merge(&a), "the value does not come back");
        assert!(a.merge(&b), "the tombstone is taken");
        assert_eq!(a, b);
        assert!(!a.is_tombstone(), "the other value stays");
    }

    fn put_content(o: &mut Object, actor: Actor, ctx: &VersionVector, content: Content) -> Dot {
        let counter = o.next_counter(actor, ctx).unwrap();
        let dot = Dot { actor, counter };
        o.write(dot, ctx, content).unwrap();
        dot
    }

    /// A random history: replicas that take writes with contexts read from
    /// random replicas, merge with each other, and purge tombstones; and
    /// writes with crafted contexts.
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
        /// A write of a value that expires at `at`.
        Expiring {
            ctx_from: usize,
            actor: Actor,
            at: u64,
        },
        /// Replica `replica` turns what expired at `now` into tombstones.
        Expire {
            replica: usize,
            now: u64,
        },
        /// A write with a crafted context; the coordinator first catches up
        /// from replica `catch_up`, as it does for any context it has not
        /// seen all of.
        Forged {
            actor: Actor,
            ctx: VersionVector,
            catch_up: usize,
        },
    }

    /// Numbers at the edges, and the small ones histories use.
    fn extreme() -> impl Strategy<Value = u64> {
        prop_oneof![
            0..6u64,
            Just(MAX_COUNTER - 1),
            Just(MAX_COUNTER),
            Just(u64::MAX - 1),
            Just(u64::MAX),
            any::<u64>(),
        ]
    }

    fn arb_forged() -> impl Strategy<Value = Op> {
        let entries = proptest::collection::vec((extreme(), extreme()), 0..5);
        (1..4u64, entries, 0..3usize).prop_map(|(actor, entries, catch_up)| {
            let mut ctx = VersionVector::new();
            for (actor, counter) in entries {
                ctx.add(Dot { actor, counter });
            }
            Op::Forged {
                actor,
                ctx,
                catch_up,
            }
        })
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
            (0..3usize, 1..4u64, 0..10u64).prop_map(|(ctx_from, actor, at)| Op::Expiring {
                ctx_from,
                actor,
                at
            }),
            (0..3usize, 0..12u64).prop_map(|(replica, now)| Op::Expire { replica, now }),
        ]
    }

    fn arb_hostile_op() -> impl Strategy<Value = Op> {
        prop_oneof![3 => arb_op(), 1 => arb_forged()]
    }

    /// A version written: its dot, the context it was written with, the
    /// clock of its coordinator's replica when it was written (what the
    /// write could supersede), whether it was a delete.
    #[derive(Debug)]
    struct Written {
        dot: Dot,
        ctx: VersionVector,
        known: VersionVector,
        tombstone: bool,
        expiring: bool,
    }

    impl Written {
        /// Whether this write superseded `dot`: its context covers it and
        /// its coordinator had seen it.
        fn supersedes(&self, dot: Dot) -> bool {
            self.ctx.covers(dot) && self.known.covers(dot)
        }
    }

    /// Replicas plus, per actor, the node-wide counter of the last dot it
    /// issued (what `Storage` keeps).
    struct History {
        replicas: Vec<Object>,
        issued: [u64; 4],
        written: Vec<Written>,
    }

    impl History {
        /// A write by `actor` at its own replica (actor % 3, as a
        /// coordinator writes locally), with a never-repeating counter,
        /// after catching up from replica `catch_up` when the context
        /// names events the replica has not seen. Refused like
        /// `storage::Dots` refuses it (a counter of `actor` never issued,
        /// or none left) or as `Object::write` does.
        fn write(
            &mut self,
            actor: Actor,
            ctx: VersionVector,
            content: Content,
            catch_up: usize,
        ) -> Result<(), Option<WriteRefused>> {
            let i = actor as usize % 3;
            if !self.replicas[i].clock().descends(&ctx) {
                let source = self.replicas[catch_up].clone();
                self.replicas[i].merge(&source);
            }
            let issued = self.issued[actor as usize];
            if ctx.get(actor) > issued {
                return Err(None);
            }
            let next = self.replicas[i].next_counter(actor, &ctx).ok_or(None)?;
            let dot = Dot {
                actor,
                counter: next.max(issued + 1),
            };
            let known = self.replicas[i].clock().clone();
            let tombstone = content == Content::Deleted;
            let expiring = content.expires_at().is_some();
            self.replicas[i].write(dot, &ctx, content).map_err(Some)?;
            self.issued[actor as usize] = dot.counter;
            self.written.push(Written {
                dot,
                ctx,
                known,
                tombstone,
                expiring,
            });
            Ok(())
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

    /// Runs a history; returns the history: the replicas, the issued
    /// counters and every version written.
    fn run(ops: &[Op]) -> History {
        let mut h = History {
            replicas: vec![Object::new(); 3],
            issued: [0; 4],
            written: Vec::new(),
        };
        for op in ops {
            match op {
                &Op::Write {
                    ctx_from,
                    actor,
                    tombstone,
                } => {
                    let ctx = h.replicas[ctx_from].context();
                    let value = if tombstone { None } else { val("w") };
                    h.write(actor, ctx, value.into(), ctx_from)
                        .expect("a write with a read context is taken");
                }
                &Op::Expiring {
                    ctx_from,
                    actor,
                    at,
                } => {
                    let ctx = h.replicas[ctx_from].context();
                    h.write(actor, ctx, expiring(at), ctx_from)
                        .expect("a write with a read context is taken");
                }
                &Op::Expire { replica, now } => {
                    h.replicas[replica].expire(now);
                }
                &Op::Blind { actor } => h
                    .write(actor, VersionVector::new(), val("b").into(), 0)
                    .expect("a blind write is taken"),
                &Op::Sync { from, to } => {
                    let src = h.replicas[from].clone();
                    h.replicas[to].merge(&src);
                }
                &Op::Purge { mask } => h.purge(mask),
                Op::Forged {
                    actor,
                    ctx,
                    catch_up,
                } => {
                    let _ = h.write(*actor, ctx.clone(), val("f").into(), *catch_up);
                }
            }
        }
        h
    }

    fn expiring(at: u64) -> Content {
        let attributes = Attributes {
            expires_at: Some(at),
            ..Attributes::default()
        };
        Content::value(Bytes::from_static(b"e"), attributes)
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
        fn merge_is_commutative_associative_idempotent(ops in proptest::collection::vec(arb_hostile_op(), 0..40)) {
            let r = run(&ops).replicas;
            prop_assert_eq!(merged(&r[0], &r[1]), merged(&r[1], &r[0]));
            prop_assert_eq!(merged(&merged(&r[0], &r[1]), &r[2]), merged(&r[0], &merged(&r[1], &r[2])));
            prop_assert_eq!(merged(&r[0], &r[0]), r[0].clone());
            for o in &r {
                prop_assert!(well_formed(o));
            }
        }

        #[test]
        fn merge_descends_both_and_descent_means_nothing_to_learn_but_expiries(ops in proptest::collection::vec(arb_hostile_op(), 0..40)) {
            let r = run(&ops).replicas;
            let m = merged(&r[0], &r[1]);
            prop_assert!(m.descends(&r[0]) && m.descends(&r[1]));
            if r[0].descends(&r[1]) {
                // Nothing to learn but expiries: the same clock and dots.
                let m = merged(&r[0], &r[1]);
                let dots = |o: &Object| o.siblings().iter().map(|s| s.dot).collect::<Vec<_>>();
                prop_assert_eq!(m.clock(), r[0].clock());
                prop_assert_eq!(dots(&m), dots(&r[0]));
            }
        }

        /// After full sync every written value is either still a sibling or
        /// was superseded by a later write whose context covered it and
        /// whose coordinator had seen it, even when tombstones were purged
        /// on some replicas and not others in between, and whatever
        /// contexts clients crafted: nothing is lost silently. (A purged
        /// tombstone may be gone; that is what purging is for.)
        #[test]
        fn converged_state_keeps_exactly_the_unsuperseded_writes(ops in proptest::collection::vec(arb_hostile_op(), 0..60)) {
            let h = run(&ops);
            let r = &h.replicas;
            let all = merged(&merged(&r[0], &r[1]), &r[2]);
            for w in &h.written {
                let superseded = h.written.iter().any(|later| later.supersedes(w.dot));
                let present = all.siblings().iter().any(|s| s.dot == w.dot);
                if w.tombstone || w.expiring {
                    prop_assert!(!(present && superseded), "dot {:?}", w.dot);
                } else {
                    prop_assert_eq!(present, !superseded, "dot {:?}", w.dot);
                }
            }
        }

        /// An expiry is final: a version any replica turned into a
        /// tombstone at its expiry is, once all replicas are merged, that
        /// tombstone or purged, never the value again.
        #[test]
        fn an_expired_version_never_comes_back(ops in proptest::collection::vec(arb_op(), 0..60)) {
            let h = run(&ops);
            let r = &h.replicas;
            let all = merged(&merged(&r[0], &r[1]), &r[2]);
            for w in h.written.iter().filter(|w| w.expiring) {
                let deleted_somewhere = r.iter().any(|o| o.holds_deleted(w.dot));
                let value_in_all = all.siblings().iter().any(|s| s.dot == w.dot && s.content != Content::Deleted);
                prop_assert!(!(deleted_somewhere && value_in_all), "dot {:?} came back", w.dot);
            }
        }

        /// No context enters a clock: every replica's clock names only the
        /// actors that wrote, at counters they issued, however extreme the
        /// crafted contexts; and every context a replica hands out is
        /// accepted back.
        #[test]
        fn clocks_hold_only_issued_counters(ops in proptest::collection::vec(arb_hostile_op(), 0..60)) {
            let h = run(&ops);
            for o in &h.replicas {
                prop_assert!(well_formed(o));
                for &(actor, counter) in o.clock().entries() {
                    prop_assert!((1..4).contains(&actor), "actor {}", actor);
                    prop_assert!(counter <= h.issued[actor as usize]);
                }
                let context = o.context();
                prop_assert_eq!(decode_context(&encode_context(&context)), Ok(context));
            }
        }

        /// Dots are unique forever: no two versions ever written share one.
        #[test]
        fn no_two_versions_share_a_dot(ops in proptest::collection::vec(arb_hostile_op(), 0..60)) {
            let mut dots: Vec<Dot> = run(&ops).written.iter().map(|w| w.dot).collect();
            let count = dots.len();
            dots.sort_unstable();
            dots.dedup();
            prop_assert_eq!(dots.len(), count);
        }
    }
}
