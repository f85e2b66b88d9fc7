//! Whether the store takes writes.
//!
//! The first write that fails with an I/O error (a full or failing data
//! volume) makes the store unavailable for writes: RocksDB has stopped
//! writing by then (a failed WAL or SST write is a "background error" that
//! refuses every later write), and the writer refuses writes itself from
//! then on, without going to RocksDB, answering
//! [`StorageError::WritesUnavailable`], whose message names no file. Reads
//! are served as before. The outage is logged once, as an error.
//!
//! RocksDB resumes by itself once the volume has room again: its
//! SstFileManager checks the free space every 5 seconds and, once the
//! largest memtable fits, flushes the memtables to new files and starts a
//! new WAL. A probe thread, started with the outage, notices that with one
//! small synced write every [`PROBE_INTERVAL`]; once one succeeds the store
//! takes writes again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use rocksdb::{DB, WriteOptions};

use super::StorageError;
use super::layout::{META_CF, META_WRITE_PROBE};
use super::now_ms;

/// How often an unavailable store tries a probe write. RocksDB itself
/// checks for free space every 5 seconds; probing more often only shortens
/// the wait after its recovery, and costs one tiny write per probe.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Texts of RocksDB I/O errors that mean the volume has no room.
const NO_SPACE: [&str; 2] = ["No space left on device", "Disk quota exceeded"];

/// Why the store refuses writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum WriteFault {
    /// The data volume is full (or over its quota).
    #[error("the data volume is full")]
    NoSpace,
    /// The data volume failed a write for another reason.
    #[error("the data volume failed a write")]
    #[serde(rename = "io_error")]
    Io,
}

impl WriteFault {
    /// The fault behind `error`, if it is an I/O error.
    fn of(error: &rocksdb::Error) -> Option<Self> {
        Self::classify(error.kind(), error.as_ref())
    }

    /// The fault behind a RocksDB error of `kind` reading `text`.
    fn classify(kind: rocksdb::ErrorKind, text: &str) -> Option<Self> {
        if kind != rocksdb::ErrorKind::IOError {
            return None;
        }
        match NO_SPACE.iter().any(|s| text.contains(s)) {
            true => Some(Self::NoSpace),
            false => Some(Self::Io),
        }
    }
}

/// The store's write availability, as `/v1/status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WriteHealthReport {
    /// Whether writes are taken.
    pub writable: bool,
    /// Why writes are refused (`None` while writable).
    pub fault: Option<WriteFault>,
    /// When writes started to be refused, in ms since the Unix epoch.
    pub unavailable_since_ms: Option<u64>,
    /// Writes refused since this node started.
    pub refused_writes: u64,
    /// Times the store became unavailable since this node started.
    pub outages: u64,
}

/// An ongoing outage.
#[derive(Clone, Copy, Debug)]
struct Outage {
    fault: WriteFault,
    since_ms: u64,
}

/// The write availability the writer, the store and the probe share.
#[derive(Debug, Default)]
pub(super) struct WriteHealth {
    outage: Mutex<Option<Outage>>,
    /// Mirrors `outage.is_none()`, read without the lock on every group.
    writable: AtomicBool,
    refused: AtomicU64,
    outages: AtomicU64,
}

impl WriteHealth {
    /// A store that takes writes.
    pub(super) fn new() -> Self {
        Self {
            writable: AtomicBool::new(true),
            ..Self::default()
        }
    }

    /// `Ok` while writes are taken; otherwise counts `writes` refused
    /// writes and returns the error to answer them with.
    pub(super) fn admit(&self, writes: usize) -> Result<(), StorageError> {
        if self.writable.load(Ordering::Acquire) {
            return Ok(());
        }
        let Some(outage) = *self.lock() else {
            return Ok(());
        };
        self.refused.fetch_add(writes as u64, Ordering::Relaxed);
        Err(StorageError::WritesUnavailable(outage.fault))
    }

    /// What to answer for a write to `db` that failed with `error`. An I/O
    /// error starts an outage (logged, and probed for its end, once) and is
    /// answered as [`StorageError::WritesUnavailable`]; other errors are
    /// returned as they are.
    pub(super) fn failed(self: &Arc<Self>, error: StorageError, db: &Arc<DB>) -> StorageError {
        let StorageError::Rocks(rocks) = &error else {
            return error;
        };
        let Some(fault) = WriteFault::of(rocks) else {
            return error;
        };
        if self.start_outage(fault) {
            tracing::error!(
                error = %rocks,
                "storage unavailable for writes ({fault}): refusing writes, serving reads, \
                 probing every {PROBE_INTERVAL:?} for the volume to take writes again"
            );
            self.spawn_probe(Arc::downgrade(db));
        }
        StorageError::WritesUnavailable(fault)
    }

    /// Records an outage for `fault` unless one is ongoing; says whether
    /// it did.
    fn start_outage(&self, fault: WriteFault) -> bool {
        let mut outage = self.lock();
        if outage.is_some() {
            return false;
        }
        *outage = Some(Outage {
            fault,
            since_ms: now_ms(),
        });
        self.writable.store(false, Ordering::Release);
        self.outages.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// The current availability.
    pub(super) fn report(&self) -> WriteHealthReport {
        let outage = *self.lock();
        WriteHealthReport {
            writable: outage.is_none(),
            fault: outage.map(|o| o.fault),
            unavailable_since_ms: outage.map(|o| o.since_ms),
            refused_writes: self.refused.load(Ordering::Relaxed),
            outages: self.outages.load(Ordering::Relaxed),
        }
    }

    /// Ends the outage, if any: writes are taken again.
    fn end_outage(&self) -> Option<Outage> {
        let outage = self.lock().take();
        self.writable.store(true, Ordering::Release);
        outage
    }

    /// Ends the outage once a probe write succeeded.
    fn recovered(&self) {
        let Some(outage) = self.end_outage() else {
            return;
        };
        let seconds = now_ms().saturating_sub(outage.since_ms) / 1000;
        tracing::warn!(
            fault = %outage.fault,
            seconds,
            refused_writes = self.refused.load(Ordering::Relaxed),
            "storage takes writes again"
        );
    }

    /// Starts the thread that probes `db` until a write succeeds. Without
    /// one (the thread cannot be started), writes are let through again at
    /// once and the next one is the probe.
    fn spawn_probe(self: &Arc<Self>, db: Weak<DB>) {
        let health = self.clone();
        let started = std::thread::Builder::new()
            .name("storage-probe".into())
            .spawn(move || health.probe_until_writable(&db));
        if let Err(error) = started {
            tracing::error!(%error, "cannot start the storage probe thread");
            self.end_outage();
        }
    }

    /// Tries a probe write every [`PROBE_INTERVAL`] until one succeeds (the
    /// outage ends) or the store is closed.
    fn probe_until_writable(&self, db: &Weak<DB>) {
        loop {
            std::thread::sleep(PROBE_INTERVAL);
            let Some(db) = db.upgrade() else {
                return;
            };
            if probe(&db).is_ok() {
                self.recovered();
                return;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Outage>> {
        self.outage.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One small synced write, to a metadata record of its own. While RocksDB
/// holds a background error it is refused before touching the disk.
fn probe(db: &DB) -> Result<(), rocksdb::Error> {
    let meta = db
        .cf_handle(META_CF)
        .expect("column families are created at open");
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    db.put_cf_opt(meta, META_WRITE_PROBE, now_ms().to_be_bytes(), &sync)
}

#[cfg(test)]
mod tests {
    use rocksdb::ErrorKind;

    use super::*;

    #[test]
    fn io_errors_are_faults_and_a_full_volume_is_told_apart() {
        let full = "IO error: No space left on device: While appending to file: \
                    /d/000004.log: No space left on device";
        let classify = WriteFault::classify;
        assert_eq!(
            classify(ErrorKind::IOError, full),
            Some(WriteFault::NoSpace)
        );
        let failed = "IO error: While appending to file: /d/000004.log: Input/output error";
        assert_eq!(classify(ErrorKind::IOError, failed), Some(WriteFault::Io));
        assert_eq!(
            classify(ErrorKind::Corruption, "Corruption: bad block"),
            None
        );
    }

    /// A real RocksDB I/O error: opening a database `db` holds open
    /// (its lock file is taken).
    fn io_error(db: &DB) -> StorageError {
        let options = rocksdb::Options::default();
        let error = DB::open_cf(&options, db.path(), [META_CF]).err().unwrap();
        assert_eq!(error.kind(), ErrorKind::IOError, "{error}");
        StorageError::Rocks(error)
    }

    #[test]
    fn an_io_failure_refuses_writes_until_a_probe_write_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(open_db(dir.path()));
        let health = Arc::new(WriteHealth::new());
        assert!(health.admit(1).is_ok());

        let answer = health.failed(io_error(&db), &db);
        assert!(matches!(
            answer,
            StorageError::WritesUnavailable(WriteFault::Io)
        ));
        assert!(!answer.to_string().contains('/'), "{answer}");
        // A second failure of the same outage is answered alike.
        health.failed(io_error(&db), &db);
        assert!(health.admit(3).is_err());
        let report = health.report();
        assert!(!report.writable);
        assert_eq!((report.refused_writes, report.outages), (3, 1));

        // The volume takes writes (it always did here): the probe notices.
        let deadline = std::time::Instant::now() + 5 * PROBE_INTERVAL;
        while health.admit(0).is_err() {
            assert!(std::time::Instant::now() < deadline, "never recovered");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(health.report().writable);
        assert_eq!(health.report().outages, 1);
    }

    #[test]
    fn other_errors_leave_the_store_writable() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(open_db(dir.path()));
        let health = Arc::new(WriteHealth::new());
        let answer = health.failed(StorageError::WriterStopped, &db);
        assert!(matches!(answer, StorageError::WriterStopped));
        assert!(health.report().writable);
    }

    fn open_db(dir: &std::path::Path) -> DB {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        DB::open_cf(&options, dir, [META_CF]).unwrap()
    }
}
