//! Progress of a long backup, verify or restore: records and bytes done,
//! of about how many, and what happened along the way (resumed, started
//! over, a stream asked for again), for a command line to print or an
//! operator to put in a resource's status.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

/// Counters a backup, verify or restore advances.
pub struct Progress {
    started: Instant,
    records: AtomicU64,
    bytes: AtomicU64,
    expected_records: AtomicU64,
    on_note: Box<dyn Fn(&str) + Send + Sync>,
}

/// Progress at one moment.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ProgressReport {
    /// Records done.
    pub records: u64,
    /// Bytes of record frames done (before compression).
    pub bytes: u64,
    /// Records expected in all (an estimate; 0 when unknown).
    pub expected_records: u64,
    /// Seconds since the start.
    pub seconds: f64,
    /// Records a second so far.
    pub records_per_sec: f64,
    /// Bytes a second so far.
    pub bytes_per_sec: f64,
    /// Seconds left at the rate so far, when known.
    pub eta_secs: Option<u64>,
}

impl Progress {
    /// Progress from now, calling `on_note` with each note.
    pub fn new(on_note: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self {
            started: Instant::now(),
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            expected_records: AtomicU64::new(0),
            on_note: Box::new(on_note),
        }
    }

    /// Counts `records` of `bytes` (uncompressed) done.
    pub fn add(&self, records: u64, bytes: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Adds to the records expected in all (for the ETA).
    pub fn expect(&self, records: u64) {
        self.expected_records.fetch_add(records, Ordering::Relaxed);
    }

    /// Says what happened (resumed, started over, a stream broke).
    pub fn note(&self, message: &str) {
        (self.on_note)(message);
    }

    /// Where things stand now.
    pub fn report(&self) -> ProgressReport {
        let records = self.records.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed);
        let expected = self.expected_records.load(Ordering::Relaxed);
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = records as f64 / seconds.max(1e-3);
        ProgressReport {
            records,
            bytes,
            expected_records: expected,
            seconds,
            records_per_sec: rate.round(),
            bytes_per_sec: (bytes as f64 / seconds.max(1e-3)).round(),
            eta_secs: (expected > records && rate > 0.0)
                .then(|| ((expected - records) as f64 / rate).round() as u64),
        }
    }
}
