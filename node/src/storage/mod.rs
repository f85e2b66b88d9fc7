//! RocksDB storage of versioned objects.
//!
//! Reads go straight to RocksDB from the calling task. Writes are queued to
//! one writer thread that commits them in groups (see [`writer`]).

mod layout;
mod writer;

use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, Options, WriteOptions};

use crate::version::{Actor, Object, VersionVector};
pub use layout::{DATA_CF, META_CF};
use layout::{META_ACTOR, data_key, hash_range_bounds, user_key};
use tokio::sync::{mpsc, oneshot};
use writer::WriteOp;

/// Memory all memtables may use together. With the block cache (which also
/// holds index and filter blocks) this bounds RocksDB's memory.
const MEMTABLE_BUDGET: usize = 32 << 20;

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
#[derive(Clone, Debug, thiserror::Error)]
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
    /// The writer thread could not be started.
    #[error("starting the storage writer: {0}")]
    Thread(String),
    /// The writer thread is gone (the node is shutting down).
    #[error("the storage writer has stopped")]
    WriterStopped,
}

/// The node's RocksDB database.
pub struct Storage {
    db: Arc<DB>,
    writer: Option<mpsc::UnboundedSender<WriteOp>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    actor: Actor,
}

impl Drop for Storage {
    /// Stops the writer after it has committed everything queued, so the
    /// database is closed when this returns.
    fn drop(&mut self) {
        self.writer.take();
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
    }
}

impl Storage {
    /// Opens (or creates) the database under `dir`.
    pub fn open(dir: &Path, options: &StorageOptions) -> Result<Self, StorageError> {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.increase_parallelism(2);
        // Flushes and compactions yield the CPU to request handling.
        let mut env = rocksdb::Env::new()?;
        env.lower_thread_pool_cpu_priority();
        env.lower_high_priority_thread_pool_cpu_priority();
        db_opts.set_env(&env);
        // Memory bound: memtables of all column families together.
        db_opts.set_db_write_buffer_size(MEMTABLE_BUDGET);
        // The meta column family is written rarely, so its memtable would pin
        // old WAL files; past this size RocksDB flushes it and frees them.
        db_opts.set_max_total_wal_size(4 * MEMTABLE_BUDGET as u64);

        let cache = Cache::new_lru_cache(options.block_cache_bytes)?;
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        let mut data_opts = Options::default();
        data_opts.set_block_based_table_factory(&table);
        data_opts.set_write_buffer_size(MEMTABLE_BUDGET / 4);
        data_opts.set_max_write_buffer_number(4);
        data_opts.set_level_compaction_dynamic_level_bytes(true);

        let cfs = vec![
            ColumnFamilyDescriptor::new(DATA_CF, data_opts),
            ColumnFamilyDescriptor::new(META_CF, Options::default()),
        ];
        let db = Arc::new(DB::open_cf_descriptors(&db_opts, dir, cfs)?);
        let actor = load_or_create_actor(&db)?;
        let mut write_options = WriteOptions::default();
        write_options.set_sync(options.fsync);
        let (writer, writer_thread) = writer::spawn(db.clone(), actor, write_options)
            .map_err(|e| StorageError::Thread(e.to_string()))?;
        Ok(Self {
            db,
            writer: Some(writer),
            writer_thread: Some(writer_thread),
            actor,
        })
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

    /// Applies a client write coordinated by this node: adds a new version
    /// of `key` superseding what `context` covers, and returns the key's new
    /// state once it is in the write-ahead log.
    pub async fn coordinate_write(
        &self,
        key: Bytes,
        context: VersionVector,
        value: Option<Bytes>,
    ) -> Result<Object, StorageError> {
        let (reply, done) = oneshot::channel();
        self.submit(WriteOp::Coordinate {
            key,
            context,
            value,
            reply,
        })?;
        done.await.map_err(|_| StorageError::WriterStopped)?
    }

    /// Merges a replica's state into the local one; returns once the result
    /// is in the write-ahead log (at once when nothing changed).
    pub async fn merge(&self, key: Bytes, object: Object) -> Result<(), StorageError> {
        let (reply, done) = oneshot::channel();
        self.submit(WriteOp::Merge { key, object, reply })?;
        done.await.map_err(|_| StorageError::WriterStopped)?
    }

    fn submit(&self, op: WriteOp) -> Result<(), StorageError> {
        let writer = self.writer.as_ref().ok_or(StorageError::WriterStopped)?;
        writer.send(op).map_err(|_| StorageError::WriterStopped)
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

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are created at open")
    }
}

/// The actor id stored with the data, created on first open. A missing or
/// unreadable record gets a fresh actor: a new actor can never collide with
/// dots issued before.
fn load_or_create_actor(db: &DB) -> Result<Actor, StorageError> {
    let meta = db
        .cf_handle(META_CF)
        .expect("column families are created at open");
    if let Some(bytes) = db.get_cf(meta, META_ACTOR)?
        && let Ok(raw) = <[u8; 8]>::try_from(bytes.as_slice())
    {
        return Ok(u64::from_be_bytes(raw));
    }
    let actor: Actor = rand::random::<u64>().max(1);
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    db.put_cf_opt(meta, META_ACTOR, actor.to_be_bytes(), &sync)?;
    Ok(actor)
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

    fn value(s: &'static str) -> Option<Bytes> {
        Some(Bytes::from_static(s.as_bytes()))
    }

    #[tokio::test]
    async fn writes_survive_reopen_and_actor_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let actor;
        {
            let s = open(dir.path());
            actor = s.actor();
            s.coordinate_write(Bytes::from_static(b"k"), VersionVector::new(), value("v"))
                .await
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

    #[tokio::test]
    async fn merge_and_scan() {
        let a_dir = tempfile::tempdir().unwrap();
        let b_dir = tempfile::tempdir().unwrap();
        let (a, b) = (open(a_dir.path()), open(b_dir.path()));
        let key = Bytes::from_static(b"k");
        let o = b
            .coordinate_write(key.clone(), VersionVector::new(), value("x"))
            .await
            .unwrap();
        a.merge(key.clone(), o.clone()).await.unwrap();
        a.merge(key, o.clone()).await.unwrap();
        assert_eq!(a.get(b"k").unwrap(), Some(o.clone()));
        let all = a.scan_hash_range(&(0..=u64::MAX)).unwrap();
        assert_eq!(all, vec![(b"k".to_vec(), o)]);
        let h = dynamo_ring::key_hash(b"k");
        let empty = if h > 0 { 0..=h - 1 } else { 1..=u64::MAX };
        assert!(a.scan_hash_range(&empty).unwrap().is_empty());
    }

    /// Many concurrent writes of one key land in shared groups; each must
    /// see the previous ones (distinct dots, none lost).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_to_one_key_are_serialized_within_groups() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(open(dir.path()));
        let writes = (0..200).map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let v = Some(Bytes::from(format!("v{i}")));
                s.coordinate_write(Bytes::from_static(b"hot"), VersionVector::new(), v)
                    .await
                    .unwrap()
            })
        });
        let results = futures::future::join_all(writes).await;
        let mut counters: Vec<u64> = results
            .into_iter()
            .map(|r| r.unwrap().context().get(s.actor()))
            .collect();
        counters.sort_unstable();
        assert_eq!(counters, (1..=200).collect::<Vec<_>>());
        let stored = s.get(b"hot").unwrap().unwrap();
        assert_eq!(
            stored.live_values().count(),
            200,
            "blind writes are all siblings"
        );
    }
}
