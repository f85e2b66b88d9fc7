//! RocksDB's own figures for the store: sizes, memtables, compaction
//! backlog and write stalls, read from its properties when asked (each
//! is a cheap in-memory lookup).

use rocksdb::DEFAULT_COLUMN_FAMILY_NAME;

use super::layout::{DATA_CF, HINTS_CF, META_CF, TOMBS_CF};
use super::{Storage, StorageError};

/// RocksDB's figures, summed over the store's column families where
/// RocksDB keeps them per column family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Estimated bytes of live data (`rocksdb.estimate-live-data-size`).
    pub live_data_bytes: u64,
    /// Bytes of every SST file, obsolete versions included
    /// (`rocksdb.total-sst-files-size`).
    pub sst_files_bytes: u64,
    /// Bytes of the active and immutable memtables
    /// (`rocksdb.cur-size-all-mem-tables`).
    pub memtable_bytes: u64,
    /// Bytes compaction would rewrite to bring every level within its
    /// target (`rocksdb.estimate-pending-compaction-bytes`).
    pub pending_compaction_bytes: u64,
    /// Compactions running now (`rocksdb.num-running-compactions`).
    pub running_compactions: u64,
    /// The rate writes are delayed to, in bytes a second, when RocksDB
    /// slows them down; 0 when it does not
    /// (`rocksdb.actual-delayed-write-rate`).
    pub delayed_write_rate: u64,
    /// Whether RocksDB has stopped writes until compaction or flushes
    /// catch up (`rocksdb.is-write-stopped`).
    pub write_stopped: bool,
}

/// Every column family of the store.
const FAMILIES: [&str; 5] = [
    DEFAULT_COLUMN_FAMILY_NAME,
    DATA_CF,
    META_CF,
    HINTS_CF,
    TOMBS_CF,
];

impl Storage {
    /// RocksDB's figures now.
    pub fn engine_stats(&self) -> Result<EngineStats, StorageError> {
        let per_family = |name: &str| -> Result<u64, StorageError> {
            let mut total = 0;
            for family in FAMILIES {
                let cf = self.cf(family);
                total += self.db.property_int_value_cf(cf, name)?.unwrap_or(0);
            }
            Ok(total)
        };
        let whole = |name: &str| -> Result<u64, StorageError> {
            Ok(self.db.property_int_value(name)?.unwrap_or(0))
        };
        Ok(EngineStats {
            live_data_bytes: per_family("rocksdb.estimate-live-data-size")?,
            sst_files_bytes: per_family("rocksdb.total-sst-files-size")?,
            memtable_bytes: per_family("rocksdb.cur-size-all-mem-tables")?,
            pending_compaction_bytes: per_family("rocksdb.estimate-pending-compaction-bytes")?,
            running_compactions: whole("rocksdb.num-running-compactions")?,
            delayed_write_rate: whole("rocksdb.actual-delayed-write-rate")?,
            write_stopped: whole("rocksdb.is-write-stopped")? != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::storage::StorageOptions;
    use crate::version::VersionVector;

    #[tokio::test]
    async fn the_figures_grow_with_writes_and_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), &StorageOptions::default()).unwrap();
        let empty = storage.engine_stats().unwrap();
        assert_eq!(empty.sst_files_bytes, 0);
        assert!(!empty.write_stopped);
        for i in 0..200 {
            // Random bytes, which compression cannot shrink.
            let value = Some(Bytes::from_iter((0..1000).map(|_| rand::random::<u8>())));
            let key = Bytes::from(format!("key-{i}"));
            storage
                .coordinate_write(key, VersionVector::new(), value)
                .await
                .unwrap();
        }
        let written = storage.engine_stats().unwrap();
        assert!(written.memtable_bytes > empty.memtable_bytes, "{written:?}");
        storage.db.flush_cf(storage.cf(DATA_CF)).unwrap();
        let flushed = storage.engine_stats().unwrap();
        assert!(flushed.sst_files_bytes > 100_000, "{flushed:?}");
        assert!(flushed.live_data_bytes > 0, "{flushed:?}");
    }
}
