//! RocksDB storage of versioned objects.
//!
//! Reads go straight to RocksDB from the calling task. Writes are queued to
//! one writer (a task, or a thread when every commit is fsynced) that
//! commits them in groups (see `writer.rs`), keeping the per-partition
//! Merkle leaves, the tombstone index and the hint markers in step with the
//! data.
//!
//! A write failing with an I/O error (a full or failing volume) makes the
//! store unavailable for writes until it takes them again (see
//! `health.rs`); reads are served throughout.

mod checkpoint;
mod dots;
mod engine;
pub mod format;
mod health;
mod hold;
mod layout;
pub mod meta;
mod writer;

use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use dynamo_ring::{NodeId, key_hash};
use rocksdb::{BlockBasedOptions, Cache, DB, Options, WriteOptions};
use tokio::sync::{mpsc, oneshot};

use crate::config::defaults;
use crate::merkle::{MerkleForest, record_digest};
pub use crate::version::now_ms;
use crate::version::{Actor, Content, Object, VersionVector};
pub use checkpoint::CheckpointReader;
pub use engine::EngineStats;
use health::WriteHealth;
pub use health::{WriteFault, WriteHealthReport};
pub use hold::RelocationHold;
pub use layout::{DATA_CF, HINTS_CF, META_CF, TOMBS_CF, data_key};
use layout::{
    META_ACTOR, column_families, hash_range_bounds, hint_key, hint_prefix, split_hint_key, user_key,
};
use writer::{WriteOp, decode_seq};

/// Memory all memtables may use together. With the block cache (which also
/// holds index and filter blocks) this bounds RocksDB's memory.
const MEMTABLE_BUDGET: usize = 32 << 20;

/// Largest memtable of any column family. RocksDB waits for this much free
/// space before it resumes writing after a full volume (it flushes the
/// memtables first), and preallocates WAL files in blocks of about this
/// size.
const MEMTABLE_MAX: usize = MEMTABLE_BUDGET / 4;

/// What RocksDB writes to its own info log (the `LOG` file in the data
/// directory): fatal errors only (and the options, at open). Debian's
/// librocksdb 7.8 is built with assertions, and its file logger asserts
/// (`WritableFileWriter::AssertFalseAndGetStatusForPrevError`) on the
/// first line logged after a write to `LOG` failed. On a full volume that
/// is the warning RocksDB logs about the write that failed, so any lower
/// level aborts the process. The node logs storage errors itself.
const INFO_LOG_LEVEL: rocksdb::LogLevel = rocksdb::LogLevel::Fatal;

/// Tuning and durability settings for the store.
#[derive(Clone, Debug)]
pub struct StorageOptions {
    /// fsync the WAL before acknowledging each write. Without it an
    /// acknowledged write survives a process crash (kill -9) but not a
    /// machine crash; with N replicas the others still hold it.
    pub fsync: bool,
    /// Block cache size in bytes.
    pub block_cache_bytes: usize,
    /// Ring partition count, for the Merkle trees.
    pub partitions: u32,
}

impl Default for StorageOptions {
    /// The settings' defaults.
    fn default() -> Self {
        Self {
            fsync: defaults::FSYNC,
            block_cache_bytes: defaults::BLOCK_CACHE_MB << 20,
            partitions: defaults::PARTITIONS,
        }
    }
}

/// (user key, state) pairs.
pub type Records = Vec<(Bytes, Object)>;

/// One stored record's identity for anti-entropy: user key and digest.
pub type KeyDigest = (Bytes, u64);

/// A hint marker: our copy of `key` must reach the owner it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hint {
    /// The user key.
    pub key: Bytes,
    /// Marker version: clearing succeeds only if nothing re-marked it since.
    pub seq: u64,
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
    /// The writer thread could not be started, or the blocking thread
    /// committing a stalled group failed.
    #[error("storage writer thread: {0}")]
    Thread(String),
    /// The writer is gone (the node is shutting down).
    #[error("the storage writer has stopped")]
    WriterStopped,
    /// A client context claims a version counter of this node's actor that
    /// it never issued.
    #[error(
        "the context claims version counter {counter} of this node, which has issued only up to {issued}"
    )]
    ImpossibleContext {
        /// The counter the context claims.
        counter: u64,
        /// The highest counter issued so far.
        issued: u64,
    },
    /// The key's clock is at the largest counter there is.
    #[error("the key's version counter is exhausted")]
    CounterExhausted,
    /// The key's versions refused the write: it would leave the key above
    /// its sibling or size limit (a client's doing), or it was given a dot
    /// the key had seen (a bug).
    #[error(transparent)]
    Refused(#[from] crate::version::WriteRefused),
    /// A write failed with an I/O error and writes are refused until the
    /// volume takes them again; reads are served.
    #[error("storage is unavailable for writes: {0}; reads are served")]
    WritesUnavailable(WriteFault),
}

/// The node's RocksDB database.
pub struct Storage {
    db: Arc<DB>,
    writer: Option<mpsc::UnboundedSender<WriteOp>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    actor: Actor,
    forest: Arc<MerkleForest>,
    hints_pending: Arc<AtomicU64>,
    hints_stored: Arc<AtomicU64>,
    health: Arc<WriteHealth>,
    relocations: RelocationHold,
}

impl Drop for Storage {
    /// Stops the writer. A writer thread first commits everything queued;
    /// a writer task fails what is still queued (its callers are gone, as
    /// every write is awaited through a borrow of this storage). Either
    /// way the database is closed when this returns, except while a writer
    /// task's group is being committed on another thread, or a probe write
    /// of an unavailable store is being made.
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
        db_opts.set_log_level(INFO_LOG_LEVEL);

        let cache = Cache::new_lru_cache(options.block_cache_bytes)?;
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);
        // Filter and index blocks stay in memory beside the cache, loaded
        // with their SST file (about 3 bytes a key): kept in the cache,
        // data whose filters and indexes outgrow it reloads them from the
        // files on most lookups (past about a million keys, writes here
        // fell from 20,000 to 3,400 a second, most of the CPU copying and
        // checksumming filter blocks of hundreds of KiB).
        table.set_cache_index_and_filter_blocks(false);
        // A hash index inside each data block: a point lookup finds its
        // entry without a binary search over the block's restart points.
        table.set_data_block_index_type(rocksdb::DataBlockIndexType::BinaryAndHash);
        let mut data_opts = Options::default();
        data_opts.set_block_based_table_factory(&table);
        data_opts.set_write_buffer_size(MEMTABLE_MAX);
        data_opts.set_max_write_buffer_number(4);
        data_opts.set_level_compaction_dynamic_level_bytes(true);
        // Most point reads miss the memtables (the data is in SST files):
        // a memtable bloom filter answers that without a skiplist search.
        data_opts.set_memtable_prefix_bloom_ratio(0.1);
        data_opts.set_memtable_whole_key_filtering(true);
        // Overwrites spread over the whole key space make every L0 file
        // overlap all of the last level, so each L0 compaction rewrites it:
        // compacting 8 files at a time instead of 4 halves that rewriting.
        data_opts.set_level_zero_file_num_compaction_trigger(8);

        // The other column families are small; RocksDB's default memtable
        // (64 MiB, more than the whole budget) would only raise the free
        // space RocksDB waits for after a full volume.
        let mut other_opts = Options::default();
        other_opts.set_write_buffer_size(MEMTABLE_MAX);

        let db = Arc::new(DB::open_cf_descriptors(
            &db_opts,
            dir,
            column_families(data_opts, &other_opts),
        )?);
        let actor = load_or_create_actor(&db)?;
        let forest = Arc::new(build_forest(&db, options.partitions)?);
        let hints_pending = Arc::new(AtomicU64::new(count(&db, HINTS_CF)?));
        let hints_stored = Arc::new(AtomicU64::new(0));
        let health = Arc::new(WriteHealth::new());
        let shared = writer::Shared {
            db: db.clone(),
            forest: forest.clone(),
            hints_pending: hints_pending.clone(),
            hints_stored: hints_stored.clone(),
            health: health.clone(),
        };
        let dots = dots::Dots::load(&db, actor)?;
        let (writer, writer_thread) = writer::spawn(shared, dots, options.fsync)
            .map_err(|e| StorageError::Thread(e.to_string()))?;
        Ok(Self {
            db,
            writer: Some(writer),
            writer_thread,
            actor,
            forest,
            hints_pending,
            hints_stored,
            health,
            relocations: RelocationHold::default(),
        })
    }

    /// Backups' holds on deleting copies handed to other nodes (see
    /// [`RelocationHold`]).
    pub fn relocations(&self) -> &RelocationHold {
        &self.relocations
    }

    /// Whether the store takes writes, and since when it refuses them.
    pub fn write_health(&self) -> WriteHealthReport {
        self.health.report()
    }

    /// The per-partition Merkle trees over this node's records.
    pub fn forest(&self) -> &MerkleForest {
        &self.forest
    }

    /// Hint markers not yet delivered.
    pub fn hints_pending(&self) -> u64 {
        self.hints_pending.load(Ordering::Relaxed)
    }

    /// Hint markers created since the store opened (a key marked again
    /// for the same owner before delivery is not counted again).
    pub fn hints_stored(&self) -> u64 {
        self.hints_stored.load(Ordering::Relaxed)
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

    /// The stored state of `key` with its record digest, read once.
    pub fn get_with_digest(&self, key: &[u8]) -> Result<Option<(Object, u64)>, StorageError> {
        let cf = self.cf(DATA_CF);
        match self.db.get_pinned_cf(cf, data_key(key))? {
            Some(bytes) => Ok(Some((
                decode(key, &bytes)?,
                record_digest(key_hash(key), &bytes),
            ))),
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
        content: impl Into<Content>,
    ) -> Result<Object, StorageError> {
        self.coordinate_write_for(key, context, content, Vec::new())
            .await
    }

    /// Like [`Storage::coordinate_write`], for a node standing in for the
    /// key's `owners`: each gets a hint marker in the same commit.
    pub async fn coordinate_write_for(
        &self,
        key: Bytes,
        context: VersionVector,
        content: impl Into<Content>,
        owners: Vec<NodeId>,
    ) -> Result<Object, StorageError> {
        let content = content.into();
        self.request(|reply| WriteOp::Coordinate {
            key,
            context,
            content,
            hints: owners,
            reply,
        })
        .await
    }

    /// Merges a replica's state into the local one; returns once the result
    /// is in the write-ahead log (at once when nothing changed).
    pub async fn merge(&self, key: Bytes, object: Object) -> Result<(), StorageError> {
        self.merge_for(key, object, None).await
    }

    /// Merges a replica's state and, when standing in for an unreachable
    /// `owner`, records a hint marker for it in the same commit.
    pub async fn merge_for(
        &self,
        key: Bytes,
        object: Object,
        owner: Option<NodeId>,
    ) -> Result<(), StorageError> {
        self.request(|reply| WriteOp::Merge {
            key,
            object,
            hint: owner,
            reply,
        })
        .await
    }

    /// Deletes `key` if its record's digest is still `digest`; says whether
    /// it did.
    pub async fn delete_if(&self, key: Bytes, digest: u64) -> Result<bool, StorageError> {
        self.request(|reply| WriteOp::DeleteIf { key, digest, reply })
            .await
    }

    /// [`Self::delete_if`] for a copy another node now holds (a
    /// handed-over hint, a partition moved away): waits while a backup
    /// holds relocations ([`RelocationHold`]). A caller deleting many such
    /// copies in one go takes [`RelocationHold::permit`] once instead.
    pub async fn delete_relocated(&self, key: Bytes, digest: u64) -> Result<bool, StorageError> {
        let _permit = self.relocations.permit().await;
        self.delete_if(key, digest).await
    }

    /// Drops a hint marker once delivered, unless it was re-marked since.
    pub async fn clear_hint(
        &self,
        owner: NodeId,
        key: Bytes,
        seq: u64,
    ) -> Result<bool, StorageError> {
        self.request(|reply| WriteOp::ClearHint {
            owner,
            key,
            seq,
            reply,
        })
        .await
    }

    async fn request<T>(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<T, StorageError>>) -> WriteOp,
    ) -> Result<T, StorageError> {
        let (reply, done) = oneshot::channel();
        self.submit(op(reply))?;
        done.await.map_err(|_| StorageError::WriterStopped)?
    }

    fn submit(&self, op: WriteOp) -> Result<(), StorageError> {
        let writer = self.writer.as_ref().ok_or(StorageError::WriterStopped)?;
        writer.send(op).map_err(|_| StorageError::WriterStopped)
    }

    /// Up to `limit` records whose hash lies in `range`, starting after
    /// data key position `after` (exclusive), in hash order, stopping
    /// before the record that would take the keys and stored records past
    /// `max_bytes` (the first record always comes); plus the position to
    /// continue from when more remain.
    pub fn scan_page(
        &self,
        range: &RangeInclusive<u64>,
        after: Option<&[u8]>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<(Records, Option<Vec<u8>>), StorageError> {
        let mut out = Vec::new();
        let mut last = None;
        let mut more = false;
        let mut total = 0;
        self.walk(range, after, |dk, key, bytes| {
            let size = key.len() + bytes.len();
            if out.len() >= limit || (!out.is_empty() && total + size > max_bytes) {
                more = true;
                return Ok(false);
            }
            total += size;
            out.push((Bytes::copy_from_slice(key), decode(key, bytes)?));
            last = Some(dk.to_vec());
            Ok(true)
        })?;
        Ok((out, if more { last } else { None }))
    }

    /// (key, record digest) of every record whose hash lies in `range`.
    pub fn digests(&self, range: &RangeInclusive<u64>) -> Result<Vec<KeyDigest>, StorageError> {
        let mut out = Vec::new();
        self.walk(range, None, |dk, key, bytes| {
            let hash = u64::from_be_bytes(dk[..8].try_into().unwrap_or_default());
            out.push((Bytes::copy_from_slice(key), record_digest(hash, bytes)));
            Ok(true)
        })?;
        Ok(out)
    }

    /// Digest of the stored record of `key` (0 when absent).
    pub fn digest(&self, key: &[u8]) -> Result<u64, StorageError> {
        let cf = self.cf(DATA_CF);
        Ok(self
            .db
            .get_pinned_cf(cf, data_key(key))?
            .map_or(0, |bytes| record_digest(key_hash(key), &bytes)))
    }

    /// Calls `visit(data key, user key, record)` for records in `range`
    /// after `after`, until it returns false.
    fn walk(
        &self,
        range: &RangeInclusive<u64>,
        after: Option<&[u8]>,
        mut visit: impl FnMut(&[u8], &[u8], &[u8]) -> Result<bool, StorageError>,
    ) -> Result<(), StorageError> {
        let (start, end) = hash_range_bounds(range);
        let mut read_opts = rocksdb::ReadOptions::default();
        if let Some(end) = end {
            read_opts.set_iterate_upper_bound(end);
        }
        let from = match after {
            Some(after) if after >= start.as_slice() => {
                let mut next = after.to_vec();
                next.push(0);
                next
            }
            _ => start,
        };
        let iter = self.db.iterator_cf_opt(
            self.cf(DATA_CF),
            read_opts,
            rocksdb::IteratorMode::From(&from, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (dk, bytes) = item?;
            let key = user_key(&dk).unwrap_or_default();
            if !visit(&dk, key, &bytes)? {
                break;
            }
        }
        Ok(())
    }

    /// Owners this node holds hint markers for.
    pub fn hinted_owners(&self) -> Result<Vec<NodeId>, StorageError> {
        let mut owners: Vec<NodeId> = Vec::new();
        let mut from: Vec<u8> = Vec::new();
        loop {
            let mut iter = self.db.iterator_cf(
                self.cf(HINTS_CF),
                rocksdb::IteratorMode::From(&from, rocksdb::Direction::Forward),
            );
            let Some(item) = iter.next() else {
                return Ok(owners);
            };
            let (key, _) = item?;
            let Some((owner, _)) = split_hint_key(&key) else {
                return Ok(owners);
            };
            owners.push(String::from_utf8_lossy(owner).into_owned());
            // Skip to the first key after this owner's range.
            from = hint_prefix(owners.last().map_or("", |o| o.as_str()));
            while from.last() == Some(&0xff) {
                from.pop();
            }
            match from.last_mut() {
                Some(last) => *last += 1,
                None => return Ok(owners),
            }
        }
    }

    /// Up to `limit` hint markers for `owner`.
    pub fn hints_for(&self, owner: &str, limit: usize) -> Result<Vec<Hint>, StorageError> {
        let prefix = hint_prefix(owner);
        let iter = self.db.iterator_cf(
            self.cf(HINTS_CF),
            rocksdb::IteratorMode::From(&prefix, rocksdb::Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            let (key, value) = item?;
            if !key.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let Some((_, dk)) = split_hint_key(&key) else {
                continue;
            };
            out.push(Hint {
                key: Bytes::copy_from_slice(user_key(dk).unwrap_or_default()),
                seq: decode_seq(&value).unwrap_or(0),
            });
        }
        Ok(out)
    }

    /// The keys holding a hint marker for any owner, to check one by one
    /// (the owners with markers are listed once, here).
    pub fn hinted_keys(&self) -> Result<HintedKeys<'_>, StorageError> {
        Ok(HintedKeys {
            storage: self,
            owners: self.hinted_owners()?,
        })
    }

    /// Whether any hint marker for `key` names one of `owners`.
    pub fn has_hint<S: AsRef<str>>(&self, key: &[u8], owners: &[S]) -> Result<bool, StorageError> {
        let dk = data_key(key);
        for owner in owners {
            if self
                .db
                .get_pinned_cf(self.cf(HINTS_CF), hint_key(owner.as_ref(), &dk))?
                .is_some()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Up to `limit` tombstones with the time (ms since the Unix epoch) this
    /// replica first held each, starting after user key position `after`.
    pub fn tombstones(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, u64)>, StorageError> {
        let from = after.map(|k| {
            let mut dk = data_key(k);
            dk.push(0);
            dk
        });
        let mode = match &from {
            Some(from) => rocksdb::IteratorMode::From(from, rocksdb::Direction::Forward),
            None => rocksdb::IteratorMode::Start,
        };
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(TOMBS_CF), mode).take(limit) {
            let (dk, since) = item?;
            out.push((
                Bytes::copy_from_slice(user_key(&dk).unwrap_or_default()),
                decode_seq(&since).unwrap_or(0),
            ));
        }
        Ok(out)
    }

    /// A metadata record.
    pub fn meta_get(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.db.get_cf(self.cf(META_CF), name.as_bytes())?)
    }

    /// Stores a metadata record durably (fsync), outside the write path;
    /// refused like every write while the store is unavailable for writes.
    pub fn meta_put(&self, name: &str, value: &[u8]) -> Result<(), StorageError> {
        self.health.admit(1)?;
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.db
            .put_cf_opt(self.cf(META_CF), name.as_bytes(), value, &sync)
            .map_err(|e| self.health.failed(e.into(), &self.db))
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are created at open")
    }
}

/// The keys holding a hint marker, as of [`Storage::hinted_keys`].
pub struct HintedKeys<'a> {
    storage: &'a Storage,
    owners: Vec<NodeId>,
}

impl HintedKeys<'_> {
    /// Whether `key` holds a hint marker for any owner.
    pub fn contains(&self, key: &[u8]) -> Result<bool, StorageError> {
        self.storage.has_hint(key, &self.owners)
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

/// Builds the Merkle trees from every stored record (once, at open).
fn build_forest(db: &DB, partitions: u32) -> Result<MerkleForest, StorageError> {
    let forest = MerkleForest::new(partitions);
    let cf = db
        .cf_handle(DATA_CF)
        .expect("column families are created at open");
    for item in db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
        let (dk, bytes) = item?;
        if let Some(hash) = dk.get(..8).and_then(|h| <[u8; 8]>::try_from(h).ok()) {
            let hash = u64::from_be_bytes(hash);
            forest.update(hash, 0, record_digest(hash, &bytes));
        }
    }
    Ok(forest)
}

fn count(db: &DB, name: &str) -> Result<u64, StorageError> {
    let cf = db
        .cf_handle(name)
        .expect("column families are created at open");
    let mut n = 0;
    for item in db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
        item?;
        n += 1;
    }
    Ok(n)
}

/// The digest `object` has once stored under the key with `key_hash`
/// (0 for an empty object, which is never stored): how another replica's
/// state compares with a local record.
pub fn object_digest(key_hash: u64, object: &Object) -> u64 {
    match object.is_empty() {
        true => 0,
        false => record_digest(key_hash, &writer::encode(object)),
    }
}

/// The state a stored record of `key` holds (also what a backup's records
/// hold).
pub fn decode(key: &[u8], bytes: &[u8]) -> Result<Object, StorageError> {
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

    /// A directory stays format 1 through plain writes; the commit of the
    /// first value with attributes records format 2, and a value that
    /// expires enters the tombstone index at its expiry, and leaves it as a
    /// tombstone once expired.
    #[tokio::test]
    async fn a_value_with_attributes_records_format_2_and_its_expiry() {
        use crate::version::{Attributes, Content};
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        format::check(&s, dir.path()).unwrap();
        let key = Bytes::from_static(b"k");
        s.coordinate_write(key.clone(), VersionVector::new(), value("plain"))
            .await
            .unwrap();
        let recorded = || s.meta_get(format::FORMAT_RECORD).unwrap();
        assert_eq!(recorded(), Some(b"1".to_vec()));
        let attributes = Attributes {
            expires_at: Some(5_000),
            ..Attributes::default()
        };
        let described = Content::value(Bytes::from_static(b"v"), attributes);
        let mut object = s
            .coordinate_write(key.clone(), VersionVector::new(), described)
            .await
            .unwrap();
        assert_eq!(recorded(), Some(b"2".to_vec()));
        assert_eq!(s.tombstones(None, 10).unwrap(), vec![(key.clone(), 5_000)]);
        assert!(object.expire(5_000));
        s.merge(key.clone(), object).await.unwrap();
        assert_eq!(
            s.tombstones(None, 10).unwrap(),
            Vec::new(),
            "a live value is left"
        );
        let context = s.get(&key).unwrap().unwrap().context();
        s.coordinate_write(key.clone(), context, None)
            .await
            .unwrap();
        let index = s.tombstones(None, 10).unwrap();
        assert!(matches!(index.as_slice(), [(k, since)] if *k == key && *since > 5_000));
        drop(s);
        format::check(&open(dir.path()), dir.path()).unwrap();
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
        let (all, more) = a.scan_page(&(0..=u64::MAX), None, 10, usize::MAX).unwrap();
        assert_eq!(all, vec![(Bytes::from_static(b"k"), o)]);
        assert!(more.is_none());
        let h = dynamo_ring::key_hash(b"k");
        let empty = if h > 0 { 0..=h - 1 } else { 1..=u64::MAX };
        assert!(
            a.scan_page(&empty, None, 10, usize::MAX)
                .unwrap()
                .0
                .is_empty()
        );
    }

    /// A page stops before the record that would pass its byte budget, but
    /// holds one record whatever its size; the next page goes on from there.
    #[tokio::test]
    async fn scan_pages_stop_at_their_byte_budget() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        for key in ["a", "b", "c"] {
            s.coordinate_write(Bytes::from(key), VersionVector::new(), value("xxxx"))
                .await
                .unwrap();
        }
        let all = 0..=u64::MAX;
        let (page, next) = s.scan_page(&all, None, 10, 1).unwrap();
        assert_eq!(page.len(), 1);
        let (rest, end) = s.scan_page(&all, next.as_deref(), 10, usize::MAX).unwrap();
        assert_eq!((rest.len(), end), (2, None));
    }

    /// A purged key's next version gets a dot above every one it had, also
    /// after the store is reopened (the counter's reservation is durable).
    #[tokio::test]
    async fn a_purged_key_never_gets_a_dot_it_had_even_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let key = Bytes::from_static(b"k");
        let (actor, deleted) = {
            let s = open(dir.path());
            let o = s
                .coordinate_write(key.clone(), VersionVector::new(), value("v"))
                .await
                .unwrap();
            let tombstone = s
                .coordinate_write(key.clone(), o.context().clone(), None)
                .await
                .unwrap();
            let digest = s.digest(&key).unwrap();
            assert!(s.delete_if(key.clone(), digest).await.unwrap());
            assert!(s.get(&key).unwrap().is_none());
            (s.actor(), tombstone.context().get(s.actor()))
        };
        let s = open(dir.path());
        let again = s
            .coordinate_write(key.clone(), VersionVector::new(), value("again"))
            .await
            .unwrap();
        assert!(again.context().get(actor) > deleted);
    }

    /// Many concurrent writes of one key land in shared groups; each must
    /// see the previous ones (distinct dots, none lost), so blind writes
    /// stop at exactly the sibling limit.
    #[tokio::test]
    async fn a_refused_write_for_absent_owners_leaves_no_hint_marker() {
        use crate::version::MAX_SIBLINGS;
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let key = Bytes::from_static(b"full");
        for i in 0..MAX_SIBLINGS {
            let value = Some(Bytes::from(format!("v{i}")));
            s.coordinate_write(key.clone(), VersionVector::new(), value)
                .await
                .unwrap();
        }
        let refused = s
            .coordinate_write_for(
                key,
                VersionVector::new(),
                Some(Bytes::from_static(b"one too many")),
                vec!["absent".to_string()],
            )
            .await;
        assert!(
            matches!(refused, Err(StorageError::Refused(_))),
            "{refused:?}"
        );
        assert_eq!(s.hints_pending(), 0);
        assert!(s.hints_for("absent", 10).unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_to_one_key_are_serialized_within_groups() {
        use crate::version::{MAX_SIBLINGS, WriteRefused};
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(open(dir.path()));
        let writes = (0..MAX_SIBLINGS + 20).map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let v = Some(Bytes::from(format!("v{i}")));
                s.coordinate_write(Bytes::from_static(b"hot"), VersionVector::new(), v)
                    .await
            })
        });
        let mut counters = Vec::new();
        for result in futures::future::join_all(writes).await {
            match result.unwrap() {
                Ok(object) => counters.push(object.context().get(s.actor())),
                Err(error) => assert!(
                    matches!(
                        error,
                        StorageError::Refused(WriteRefused::TooManySiblings { .. })
                    ),
                    "{error}"
                ),
            }
        }
        counters.sort_unstable();
        counters.dedup();
        assert_eq!(counters.len(), MAX_SIBLINGS);
        let stored = s.get(b"hot").unwrap().unwrap();
        assert_eq!(
            stored.live_values().count(),
            MAX_SIBLINGS,
            "blind writes are all siblings, up to the limit"
        );
    }
}
