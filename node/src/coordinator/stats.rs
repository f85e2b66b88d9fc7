//! What the coordinator counts as it works: quorums it failed to reach,
//! replica writes it sent to stand-ins for owners believed down, the keys
//! and bytes its read repairs sent, and the reads it hedged. `/metrics`
//! reads them.

use std::sync::atomic::{AtomicU64, Ordering};

/// The coordinator's counters since the node started.
#[derive(Default)]
pub(super) struct Stats {
    read_shortfalls: AtomicU64,
    write_shortfalls: AtomicU64,
    stand_ins: AtomicU64,
    repaired_keys: AtomicU64,
    repaired_bytes: AtomicU64,
    hedged_reads: AtomicU64,
}

/// A snapshot of the coordinator's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoordinatorReport {
    /// Reads that failed for lack of R replies.
    pub read_shortfalls: u64,
    /// Writes that failed for lack of W acknowledgements.
    pub write_shortfalls: u64,
    /// Replica writes sent to a node standing in for an owner believed
    /// down (each carries a hint for that owner).
    pub stand_ins: u64,
    /// Replicas a read repair brought up to date.
    pub repaired_keys: u64,
    /// Bytes of the states those repairs sent (their encoded size).
    pub repaired_bytes: u64,
    /// Replica reads sent because the replicas asked first were slow to
    /// answer (hedged reads).
    pub hedged_reads: u64,
}

impl Stats {
    /// Counts a quorum not reached by an operation named `op` ("read" or
    /// "write", as in [`crate::transport::QuorumShortfall`]).
    pub fn shortfall(&self, op: &str) {
        let counter = match op {
            "read" => &self.read_shortfalls,
            _ => &self.write_shortfalls,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a replica write sent to a stand-in.
    pub fn stand_in(&self) {
        self.stand_ins.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a replica repaired by a read, with the state's size.
    pub fn repaired(&self, bytes: usize) {
        self.repaired_keys.fetch_add(1, Ordering::Relaxed);
        self.repaired_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts a replica read sent to hedge slow ones.
    pub fn hedged(&self) {
        self.hedged_reads.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn report(&self) -> CoordinatorReport {
        CoordinatorReport {
            read_shortfalls: self.read_shortfalls.load(Ordering::Relaxed),
            write_shortfalls: self.write_shortfalls.load(Ordering::Relaxed),
            stand_ins: self.stand_ins.load(Ordering::Relaxed),
            repaired_keys: self.repaired_keys.load(Ordering::Relaxed),
            repaired_bytes: self.repaired_bytes.load(Ordering::Relaxed),
            hedged_reads: self.hedged_reads.load(Ordering::Relaxed),
        }
    }
}
