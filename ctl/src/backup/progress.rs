//! Progress of a long backup or restore: records, bytes, rate and ETA,
//! printed to stderr every few seconds (as JSON lines with `-o json`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::output::Format;

/// How often progress is printed.
const EVERY: Duration = Duration::from_secs(2);

/// Counters a backup or restore advances.
pub struct Progress {
    what: &'static str,
    started: Instant,
    records: AtomicU64,
    bytes: AtomicU64,
    expected_records: AtomicU64,
}

impl Progress {
    /// Progress of `what` ("backup", "restore", "verify"), printed until
    /// the returned handle is dropped.
    pub fn start(what: &'static str, format: Format) -> (Arc<Self>, Printer) {
        let progress = Arc::new(Self {
            what,
            started: Instant::now(),
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            expected_records: AtomicU64::new(0),
        });
        let task = tokio::spawn({
            let progress = progress.clone();
            async move {
                let mut tick = tokio::time::interval(EVERY);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    progress.print(format);
                }
            }
        });
        (progress, Printer(task))
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

    /// Records and bytes done so far.
    pub fn done(&self) -> (u64, u64) {
        (
            self.records.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// Seconds since the start.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn print(&self, format: Format) {
        let (records, bytes) = self.done();
        let expected = self.expected_records.load(Ordering::Relaxed);
        let elapsed = self.elapsed().max(1e-3);
        let rate = records as f64 / elapsed;
        let eta = (expected > records && rate > 0.0)
            .then(|| ((expected - records) as f64 / rate).round() as u64);
        match format {
            Format::Json => eprintln!(
                "{}",
                json!({"progress": self.what, "records": records, "bytes": bytes,
                       "expected_records": expected, "records_per_sec": rate.round(),
                       "bytes_per_sec": (bytes as f64 / elapsed).round(), "eta_secs": eta})
            ),
            Format::Text => eprintln!(
                "{}: {records} records{}, {:.1} MiB, {:.0} records/s, {:.1} MiB/s{}",
                self.what,
                match expected {
                    0 => String::new(),
                    n => format!(" of about {n}"),
                },
                bytes as f64 / 1048576.0,
                rate,
                bytes as f64 / 1048576.0 / elapsed,
                eta.map(|s| format!(", about {s} s left"))
                    .unwrap_or_default(),
            ),
        }
    }
}

/// Prints progress while it lives.
pub struct Printer(tokio::task::JoinHandle<()>);

impl Drop for Printer {
    fn drop(&mut self) {
        self.0.abort();
    }
}
