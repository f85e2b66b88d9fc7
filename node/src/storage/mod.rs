//! RocksDB storage of versioned objects.
//!
//! Every read-modify-write of a key (a coordinated write, a replica merge)
//! runs under one of a fixed set of striped mutexes, held only for the
//! synchronous RocksDB calls and never across an `.await`.

mod layout;

use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::Mutex;

use bytes::Bytes;
use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, Options, WriteOptions};

use crate::version::{Actor, Object, VersionVector};
pub use layout::{DATA_CF, META_CF};
use layout::{META_ACTOR, data_key, hash_range_bounds, user_key};

const LOCK_STRIPES: usize = 1024;

/// Tuning and durability settings for the store.
#[derive(Clone, Debug)]
pub struct StorageOptions {
    /// fsync the WAL before acknowledging each write. Without it an
    /// acknowledged write survives a process crash (kill -9) but not a
    /// machine crash; with N replicas the others still hold it.
    pub fsync: bool,
    /// Block cache size in bytes.
    pub block_cache_bytes: usize,
}

impl Default for StorageOptions {
    fn default() -> Self {
        Self {
            fsync: false,
            block_cache_bytes: 64 << 20,
        }
    }
}

/// Errors from the storage layer, naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// RocksDB reported an error.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A stored record could not be decoded.
    #[error("corrupt record for key {key:?}: {source}")]
    Corrupt {
        /// The user key, lossily printed.
        key: String,
        /// The decoding error.
        source: postcard::Error,
    },
}

/// The node's RocksDB database.
pub struct Storage {
    db: DB,
    write_options: WriteOptions,
    locks: Vec<Mutex<()>>,
    actor: Actor,
}

impl Storage {
    /// Opens (or creates) the database under `dir`.
    pub fn open(dir: &Path, options: &StorageOptions) -> Result<Self, StorageError> {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.increase_parallelism(2);

        let cache = Cache::new_lru_cache(options.block_cache_bytes)?;
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);
        let mut data_opts = Options::default();
        data_opts.set_block_based_table_factory(&table);

        let cfs = vec![
            ColumnFamilyDescriptor::new(DATA_CF, data_opts),
            ColumnFamilyDescriptor::new(META_CF, Options::default()),
        ];
        let db = DB::open_cf_descriptors(&db_opts, dir, cfs)?;
        let mut write_options = WriteOptions::default();
        write_options.set_sync(options.fsync);
        let mut storage = Self {
            db,
            write_options,
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            actor: 0,
        };
        storage.actor = storage.load_or_create_actor()?;
        Ok(storage)
    }

    /// This data directory's write actor id (random, created with the data).
    pub fn actor(&self) -> Actor {
        self.actor
    }

    /// The stored state of `key`, if any.
    pub fn get(&self, key: &[u8]) -> Result<Option<Object>, StorageError> {
        let cf = self.cf(DATA_CF);
        match self.db.get_pinned_cf(cf, data_key(key))? {
            Some(bytes) => Ok(Some(decode(key, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Applies a client write coordinated by this node: reads the local
    /// state, adds a new version superseding what `context` covers, stores
    /// and returns the result.
    pub fn coordinate_write(
        &self,
        key: &[u8],
        context: &VersionVector,
        value: Option<Bytes>,
    ) -> Result<Object, StorageError> {
        let _guard = self.lock(key);
        let mut object = self.get(key)?.unwrap_or_default();
        object.write(self.actor, context, value);
        self.put(key, &object)?;
        Ok(object)
    }

    /// Merges a replica's state into the local one; writes only if something
    /// changed. Returns the merged state.
    pub fn merge(&self, key: &[u8], incoming: &Object) -> Result<Object, StorageError> {
        let _guard = self.lock(key);
        let object = match self.get(key)? {
            Some(mut local) => {
                if !local.merge(incoming) {
                    return Ok(local);
                }
                local
            }
            None => incoming.clone(),
        };
        self.put(key, &object)?;
        Ok(object)
    }

    /// Every (user key, object) whose ring hash lies in `range`, in hash order.
    pub fn scan_hash_range(
        &self,
        range: &RangeInclusive<u64>,
    ) -> Result<Vec<(Vec<u8>, Object)>, StorageError> {
        let (start, end) = hash_range_bounds(range);
        let mut read_opts = rocksdb::ReadOptions::default();
        if let Some(end) = end {
            read_opts.set_iterate_upper_bound(end);
        }
        let iter = self.db.iterator_cf_opt(
            self.cf(DATA_CF),
            read_opts,
            rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            let (k, v) = item?;
            let key = user_key(&k).unwrap_or_default().to_vec();
            let object = decode(&key, &v)?;
            out.push((key, object));
        }
        Ok(out)
    }

    fn put(&self, key: &[u8], object: &Object) -> Result<(), StorageError> {
        let bytes = postcard::to_stdvec(object).expect("an object always serializes");
        self.db
            .put_cf_opt(self.cf(DATA_CF), data_key(key), bytes, &self.write_options)?;
        Ok(())
    }

    fn lock(&self, key: &[u8]) -> std::sync::MutexGuard<'_, ()> {
        let stripe = (dynamo_ring::key_hash(key) as usize) % LOCK_STRIPES;
        self.locks[stripe]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are created at open")
    }

    fn load_or_create_actor(&self) -> Result<Actor, StorageError> {
        let meta = self.cf(META_CF);
        // A missing or unreadable record gets a fresh actor: a new actor can
        // never collide with dots issued before.
        if let Some(bytes) = self.db.get_cf(meta, META_ACTOR)?
            && let Ok(raw) = <[u8; 8]>::try_from(bytes.as_slice())
        {
            return Ok(u64::from_be_bytes(raw));
        }
        let actor: Actor = rand::random::<u64>().max(1);
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.db
            .put_cf_opt(meta, META_ACTOR, actor.to_be_bytes(), &sync)?;
        Ok(actor)
    }
}

fn decode(key: &[u8], bytes: &[u8]) -> Result<Object, StorageError> {
    postcard::from_bytes(bytes).map_err(|source| StorageError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> Storage {
        Storage::open(dir, &StorageOptions::default()).unwrap()
    }

    #[test]
    fn writes_survive_reopen_and_actor_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let actor;
        {
            let s = open(dir.path());
            actor = s.actor();
            s.coordinate_write(b"k", &VersionVector::new(), Some(Bytes::from_static(b"v")))
                .unwrap();
        }
        let s = open(dir.path());
        assert_eq!(s.actor(), actor);
        let o = s.get(b"k").unwrap().unwrap();
        assert_eq!(
            o.live_values().collect::<Vec<_>>(),
            vec![&Bytes::from_static(b"v")]
        );
        assert!(s.get(b"missing").unwrap().is_none());
    }

    #[test]
    fn merge_stores_only_changes_and_scan_returns_range() {
        let dir = tempfile::tempdir().unwrap();
        let a = open(dir.path());
        let other = tempfile::tempdir().unwrap();
        let b = open(other.path());
        let o = b
            .coordinate_write(b"k", &VersionVector::new(), Some(Bytes::from_static(b"x")))
            .unwrap();
        assert_eq!(a.merge(b"k", &o).unwrap(), o);
        assert_eq!(a.merge(b"k", &o).unwrap(), o);
        let all = a.scan_hash_range(&(0..=u64::MAX)).unwrap();
        assert_eq!(all, vec![(b"k".to_vec(), o)]);
        let h = dynamo_ring::key_hash(b"k");
        let empty = if h > 0 { 0..=h - 1 } else { 1..=u64::MAX };
        assert!(a.scan_hash_range(&empty).unwrap().is_empty());
    }
}
