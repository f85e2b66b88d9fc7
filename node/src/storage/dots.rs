//! The node-wide dot counter: every version this data directory creates
//! gets a counter no version it created before had, for any key, across
//! restarts and whatever was purged since.
//!
//! A per-key counter (`max(clock[me], context[me]) + 1`) starts again at 1
//! once a key's tombstone is purged, so a copy of the old state surviving
//! anywhere would cover the new write. Instead the writer hands out
//! counters from one sequence. Counters are reserved in blocks: before any
//! counter of a block is used, the block's end is stored in the `meta`
//! column family in a commit that is fsynced, so a restart (even after a
//! machine crash that loses unsynced WAL) resumes above every counter that
//! could have left the node.

use rocksdb::DB;

use super::StorageError;
use super::layout::{DATA_CF, META_CF};
use crate::version::{Actor, Dot, Object, VersionVector};

/// Meta key of the end of the reserved counter block (big-endian u64).
pub const META_DOTS: &[u8] = b"dot-counter";

/// Counters reserved per fsynced meta write.
const BLOCK: u64 = 1 << 20;

/// The writer's dot sequence for this data directory's actor.
#[derive(Debug)]
pub struct Dots {
    actor: Actor,
    /// The next counter to hand out.
    next: u64,
    /// Counters below this may be handed out (reserved, perhaps not yet
    /// durable).
    reserved: u64,
    /// The reservation known to be on disk.
    durable: u64,
}

impl Dots {
    /// Resumes the sequence stored in `db`. A store without the record
    /// either is new (start at 1) or was written by a version that used
    /// per-key counters; those are small, so starting above a clock-derived
    /// value (milliseconds since the epoch times 1024) clears them all.
    pub fn load(db: &DB, actor: Actor) -> Result<Self, StorageError> {
        let meta = db
            .cf_handle(META_CF)
            .expect("column families are created at open");
        let stored = db
            .get_cf(meta, META_DOTS)?
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
            .map(u64::from_be_bytes);
        let start = match stored {
            Some(end) => end,
            None if has_data(db)? => super::now_ms().saturating_mul(1 << 10),
            None => 1,
        };
        Ok(Self::starting_at(actor, start))
    }

    /// A sequence whose next counter is `start`, nothing reserved yet.
    pub fn starting_at(actor: Actor, start: u64) -> Self {
        Self {
            actor,
            next: start.max(1),
            reserved: 0,
            durable: 0,
        }
    }

    /// The dot of a new version of `object` written with `context`: above
    /// every counter this node handed out and everything the key or the
    /// context has seen of this actor. A context claiming a counter this
    /// node never issued is refused.
    pub fn issue(&mut self, object: &Object, context: &VersionVector) -> Result<Dot, StorageError> {
        let claimed = context.get(self.actor);
        if claimed >= self.next {
            return Err(StorageError::ImpossibleContext {
                counter: claimed,
                issued: self.next - 1,
            });
        }
        let counter = object
            .next_counter(self.actor, context)
            .map(|c| c.max(self.next))
            .and_then(|c| c.checked_add(1).map(|after| (c, after)));
        let Some((counter, after)) = counter else {
            return Err(StorageError::CounterExhausted);
        };
        self.next = after;
        if after > self.reserved {
            self.reserved = after.saturating_add(BLOCK);
        }
        Ok(Dot {
            actor: self.actor,
            counter,
        })
    }

    /// A reservation to store (fsynced) with the current group, if the
    /// group used counters beyond the durable one.
    pub fn pending_reservation(&self) -> Option<u64> {
        (self.reserved > self.durable).then_some(self.reserved)
    }

    /// Records the outcome of the group that carried the reservation: on
    /// failure the reservation is not on disk, so it must be made again.
    pub fn committed(&mut self, ok: bool) {
        match ok {
            true => self.durable = self.reserved,
            false => self.reserved = self.durable,
        }
    }
}

fn has_data(db: &DB) -> Result<bool, StorageError> {
    let cf = db
        .cf_handle(DATA_CF)
        .expect("column families are created at open");
    match db.iterator_cf(cf, rocksdb::IteratorMode::Start).next() {
        Some(item) => item.map(|_| true).map_err(StorageError::from),
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn counters_grow_across_keys_and_the_first_use_of_a_block_asks_for_a_reservation() {
        let mut dots = Dots::starting_at(7, 1);
        let empty = VersionVector::new();
        let a = dots.issue(&Object::new(), &empty).unwrap();
        let b = dots.issue(&Object::new(), &empty).unwrap();
        assert_eq!((a.counter, b.counter), (1, 2));
        assert_eq!(dots.pending_reservation(), Some(2 + BLOCK));
        dots.committed(true);
        assert_eq!(dots.pending_reservation(), None);
        dots.issue(&Object::new(), &empty).unwrap();
        assert_eq!(dots.pending_reservation(), None);
    }

    #[test]
    fn a_failed_commit_keeps_the_reservation_pending() {
        let mut dots = Dots::starting_at(7, 1);
        dots.issue(&Object::new(), &VersionVector::new()).unwrap();
        dots.committed(false);
        dots.issue(&Object::new(), &VersionVector::new()).unwrap();
        assert!(dots.pending_reservation().is_some());
    }

    #[test]
    fn a_key_that_saw_higher_counters_moves_the_sequence_past_them() {
        let mut dots = Dots::starting_at(7, 1);
        let mut object = Object::new();
        let high = Dot {
            actor: 7,
            counter: 50,
        };
        object
            .write(high, &VersionVector::new(), Some(Bytes::from_static(b"x")))
            .unwrap();
        // The key's clock says 50 (a counter from before the sequence
        // existed); the next dot goes above it.
        let blind = VersionVector::new();
        assert_eq!(dots.issue(&object, &blind).unwrap().counter, 51);
        assert_eq!(
            dots.issue(&Object::new(), &VersionVector::new())
                .unwrap()
                .counter,
            52
        );
    }

    #[test]
    fn contexts_claiming_counters_never_issued_are_refused() {
        let mut dots = Dots::starting_at(7, 10);
        let mut ctx = VersionVector::new();
        ctx.add(Dot {
            actor: 7,
            counter: u64::MAX,
        });
        assert!(matches!(
            dots.issue(&Object::new(), &ctx),
            Err(StorageError::ImpossibleContext { .. })
        ));
        let mut ctx = VersionVector::new();
        ctx.add(Dot {
            actor: 7,
            counter: 9,
        });
        assert_eq!(dots.issue(&Object::new(), &ctx).unwrap().counter, 10);
    }
}
