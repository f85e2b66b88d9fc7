//! Checkpoints: a consistent copy of the store, made of hard links to its
//! files, that a backup reads while the node goes on serving.

use std::path::Path;

use rocksdb::{DB, Options};

use super::layout::{DATA_CF, column_families, data_key, user_key};
use super::{Storage, StorageError};

impl Storage {
    /// Creates a checkpoint of the whole store at `dir`, which must not
    /// exist yet (on the data directory's file system: its files are hard
    /// links).
    pub fn checkpoint(&self, dir: &Path) -> Result<(), StorageError> {
        rocksdb::checkpoint::Checkpoint::new(&self.db)?.create_checkpoint(dir)?;
        Ok(())
    }

    /// RocksDB's estimate of the records stored (`rocksdb.estimate-num-keys`).
    pub fn estimated_records(&self) -> Result<u64, StorageError> {
        let cf = self.cf(DATA_CF);
        Ok(self
            .db
            .property_int_value_cf(cf, "rocksdb.estimate-num-keys")?
            .unwrap_or(0))
    }
}

/// A checkpoint opened read-only.
pub struct CheckpointReader {
    db: DB,
}

impl CheckpointReader {
    /// Opens the checkpoint at `dir`.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        let options = Options::default();
        let families = column_families(Options::default(), &options);
        let db = DB::open_cf_descriptors_read_only(&options, dir, families, false)?;
        Ok(Self { db })
    }

    /// Calls `visit(user key, stored state)` for every record in hash
    /// order, starting after the user key `after` (exclusive), until it
    /// returns false.
    pub fn records(
        &self,
        after: Option<&[u8]>,
        mut visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StorageError> {
        let cf = self
            .db
            .cf_handle(DATA_CF)
            .expect("column families are opened with the checkpoint");
        let from = after.map(|key| {
            let mut next = data_key(key);
            next.push(0);
            next
        });
        let mode = match &from {
            Some(from) => rocksdb::IteratorMode::From(from, rocksdb::Direction::Forward),
            None => rocksdb::IteratorMode::Start,
        };
        for item in self.db.iterator_cf(cf, mode) {
            let (dk, bytes) = item?;
            if !visit(user_key(&dk).unwrap_or_default(), &bytes) {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::storage::StorageOptions;
    use crate::version::VersionVector;

    #[tokio::test]
    async fn a_checkpoint_keeps_what_was_stored_before_it_and_nothing_after() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&dir.path().join("db"), &StorageOptions::default()).unwrap();
        for key in ["a", "b", "c"] {
            let value = Some(Bytes::from_static(b"v"));
            storage
                .coordinate_write(Bytes::from(key), VersionVector::default(), value)
                .await
                .unwrap();
        }
        let checkpoint = dir.path().join("checkpoint");
        storage.checkpoint(&checkpoint).unwrap();
        let later = Some(Bytes::from_static(b"later"));
        storage
            .coordinate_write(Bytes::from("d"), VersionVector::default(), later)
            .await
            .unwrap();

        let reader = CheckpointReader::open(&checkpoint).unwrap();
        let mut seen = Vec::new();
        reader
            .records(None, |key, bytes| {
                seen.push((key.to_vec(), bytes.to_vec()));
                true
            })
            .unwrap();
        let mut keys: Vec<_> = seen.iter().map(|(k, _)| k.clone()).collect();
        keys.sort();
        assert_eq!(keys, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        for (key, bytes) in &seen {
            let stored = storage.get(key).unwrap().unwrap();
            assert_eq!(super::super::decode(key, bytes).unwrap(), stored);
        }

        let mut after_first = Vec::new();
        reader
            .records(Some(&seen[0].0), |key, _| {
                after_first.push(key.to_vec());
                true
            })
            .unwrap();
        assert_eq!(after_first, [seen[1].0.clone(), seen[2].0.clone()]);
    }
}
