//! Group commit: one writer applies every write to the store.
//!
//! Writes (a coordinator's new version, a replica merge, a conditional
//! delete, a hint marker change) are queued to a single writer. It takes
//! everything queued, reads each key's current state once, applies the
//! writes in order, and commits the whole group as one RocksDB write batch:
//! one WAL append (and one fsync when enabled) for many client writes.
//! Callers are answered only after the batch is in the WAL. Being the only
//! writer also makes every read-modify-write atomic without locks, and lets
//! the writer keep the Merkle leaves, the tombstone index and the hint
//! count exact.
//!
//! Without fsync the writer is a task on the request runtime: a commit is a
//! buffered WAL append, cheaper than the two thread wake-ups a hand-off to
//! a writer thread costs per group. A commit RocksDB would delay (write
//! stall) is handed to a blocking thread instead of stalling the runtime.
//! With fsync the writer is a thread of its own, so an fsync never blocks
//! request handling.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dynamo_ring::{NodeId, key_hash};
use rocksdb::{DB, WriteBatch, WriteOptions};
use tokio::sync::{mpsc, oneshot};

use super::dots::{Dots, META_DOTS};
use super::layout::{DATA_CF, HINTS_CF, META_CF, TOMBS_CF, data_key, hint_key};
use super::{StorageError, decode};
use crate::antientropy::{MerkleForest, record_digest};
use crate::version::{Object, VersionVector};

/// Most writes committed in one batch.
const MAX_BATCH: usize = 512;

type Reply<T> = oneshot::Sender<Result<T, StorageError>>;

/// One queued write.
pub(super) enum WriteOp {
    /// A client write coordinated here: add a version with a new dot, and
    /// remember that `hints` (owners standing in for) miss it.
    Coordinate {
        key: Bytes,
        context: VersionVector,
        value: Option<Bytes>,
        hints: Vec<NodeId>,
        reply: Reply<Object>,
    },
    /// Merge another replica's state, optionally as a stand-in for `hint`.
    Merge {
        key: Bytes,
        object: Object,
        hint: Option<NodeId>,
        reply: Reply<()>,
    },
    /// Delete the key if its stored record still has `digest`.
    DeleteIf {
        key: Bytes,
        digest: u64,
        reply: Reply<bool>,
    },
    /// Drop the hint marker of (`owner`, `key`) if it still has `seq`.
    ClearHint {
        owner: NodeId,
        key: Bytes,
        seq: u64,
        reply: Reply<bool>,
    },
}

impl WriteOp {
    fn key(&self) -> &Bytes {
        match self {
            WriteOp::Coordinate { key, .. }
            | WriteOp::Merge { key, .. }
            | WriteOp::DeleteIf { key, .. }
            | WriteOp::ClearHint { key, .. } => key,
        }
    }

    fn fail(self, error: StorageError) {
        match self {
            WriteOp::Coordinate { reply, .. } => drop(reply.send(Err(error))),
            WriteOp::Merge { reply, .. } => drop(reply.send(Err(error))),
            WriteOp::DeleteIf { reply, .. } | WriteOp::ClearHint { reply, .. } => {
                drop(reply.send(Err(error)))
            }
        }
    }
}

/// What the writer shares with readers. The writer task holds the database
/// weakly, so it closes when the [`super::Storage`] is dropped.
pub(super) struct Shared<D> {
    pub db: D,
    pub forest: Arc<MerkleForest>,
    pub hints_pending: Arc<AtomicU64>,
}

/// Starts the writer: a thread when `fsync` is set or no Tokio runtime is
/// running, a task otherwise. It ends when every sender is dropped; the
/// thread's handle is returned so the owner can wait for it.
pub(super) fn spawn(
    shared: Shared<Arc<DB>>,
    dots: Dots,
    fsync: bool,
) -> std::io::Result<(
    mpsc::UnboundedSender<WriteOp>,
    Option<std::thread::JoinHandle<()>>,
)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut write_options = WriteOptions::default();
    write_options.set_sync(fsync);
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) if !fsync => {
            let shared = Shared {
                db: Arc::downgrade(&shared.db),
                forest: shared.forest,
                hints_pending: shared.hints_pending,
            };
            runtime.spawn(run_task(shared, dots, write_options, rx));
            Ok((tx, None))
        }
        _ => {
            let thread = std::thread::Builder::new()
                .name("storage-writer".into())
                .spawn(move || run_thread(&shared, dots, &write_options, rx))?;
            Ok((tx, Some(thread)))
        }
    }
}

/// Where the outcome of one write goes once its batch is committed.
enum Outcome {
    Object(Reply<Object>, Object),
    Unit(Reply<()>),
    Flag(Reply<bool>, bool),
}

impl Outcome {
    fn send(self, committed: Result<(), &StorageError>) {
        match (self, committed) {
            (Outcome::Object(tx, object), Ok(())) => drop(tx.send(Ok(object))),
            (Outcome::Unit(tx), Ok(())) => drop(tx.send(Ok(()))),
            (Outcome::Flag(tx, flag), Ok(())) => drop(tx.send(Ok(flag))),
            (Outcome::Object(tx, _), Err(e)) => drop(tx.send(Err(e.clone()))),
            (Outcome::Unit(tx), Err(e)) => drop(tx.send(Err(e.clone()))),
            (Outcome::Flag(tx, _), Err(e)) => drop(tx.send(Err(e.clone()))),
        }
    }
}

/// A key's state within one group.
struct KeyState {
    object: Object,
    /// Digest of the record on disk before this group (0: absent).
    old_digest: u64,
    old_tombstone: bool,
    dirty: bool,
}

impl KeyState {
    /// Digest the record would have if written now.
    fn current_digest(&self, hash: u64) -> u64 {
        match self.dirty {
            true => super::object_digest(hash, &self.object),
            false => self.old_digest,
        }
    }
}

/// The first sequence number of hint markers: clock-based, so numbers grow
/// across restarts too and a marker re-made after a restart never repeats
/// an old number.
fn first_seq() -> u64 {
    now_ms().saturating_mul(1 << 10).max(1)
}

/// Moves every op already queued (up to [`MAX_BATCH`]) into `ops`.
fn drain_queued(rx: &mut mpsc::UnboundedReceiver<WriteOp>, ops: &mut Vec<WriteOp>) {
    while ops.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
}

fn run_thread(
    shared: &Shared<Arc<DB>>,
    mut dots: Dots,
    write_options: &WriteOptions,
    mut rx: mpsc::UnboundedReceiver<WriteOp>,
) {
    let mut ops = Vec::with_capacity(MAX_BATCH);
    let mut next_seq = first_seq();
    let synced = synced();
    while let Some(first) = rx.blocking_recv() {
        ops.push(first);
        drain_queued(&mut rx, &mut ops);
        let group = prepare(&shared.db, &mut dots, &mut ops, &mut next_seq);
        let options = if group.sync { &synced } else { write_options };
        let committed = write(&shared.db, group.batch, options);
        dots.committed(committed.is_ok());
        finish(shared, group.applied, committed);
    }
}

/// Options of a commit that must be on disk before anyone hears of it.
fn synced() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

async fn run_task(
    shared: Shared<Weak<DB>>,
    mut dots: Dots,
    write_options: WriteOptions,
    mut rx: mpsc::UnboundedReceiver<WriteOp>,
) {
    let mut ops = Vec::with_capacity(MAX_BATCH);
    let mut next_seq = first_seq();
    let mut inline_options = WriteOptions::default();
    inline_options.set_no_slowdown(true);
    let write_options = Arc::new(write_options);
    let synced = Arc::new(synced());
    while let Some(first) = rx.recv().await {
        ops.push(first);
        // Let the tasks that are ready right now queue their writes too, so
        // they share this commit.
        tokio::task::yield_now().await;
        drain_queued(&mut rx, &mut ops);
        let Some(db) = shared.db.upgrade() else {
            for op in ops.drain(..) {
                op.fail(StorageError::WriterStopped);
            }
            continue;
        };
        let group = prepare(&db, &mut dots, &mut ops, &mut next_seq);
        let committed = match group.sync {
            // A new block of dot counters: fsynced, off the runtime.
            true => commit_blocking(db, group.batch, synced.clone()).await,
            false => {
                // Writing consumes the batch: keep its bytes to redo a
                // commit that RocksDB refuses to make without delay.
                let retry = group.batch.data().to_vec();
                match write(&db, group.batch, &inline_options) {
                    Err(StorageError::Rocks(e)) if e.kind() == rocksdb::ErrorKind::Incomplete => {
                        let batch = WriteBatch::from_data(&retry);
                        commit_blocking(db, batch, write_options.clone()).await
                    }
                    committed => committed,
                }
            }
        };
        dots.committed(committed.is_ok());
        finish(&shared, group.applied, committed);
    }
}

/// Commits `batch` on a blocking thread.
async fn commit_blocking(
    db: Arc<DB>,
    batch: WriteBatch,
    options: Arc<WriteOptions>,
) -> Result<(), StorageError> {
    tokio::task::spawn_blocking(move || write(&db, batch, &options))
        .await
        .unwrap_or_else(|e| Err(StorageError::Thread(e.to_string())))
}

/// A group's write batch, and what to do once it is committed.
struct Group {
    batch: WriteBatch,
    /// The batch reserves dot counters: it must be fsynced.
    sync: bool,
    applied: Applied,
}

/// The effects of a group besides the batch: applied once it is durable.
struct Applied {
    leaf_updates: Vec<(u64, u64, u64)>,
    marker_delta: i64,
    outcomes: Vec<Outcome>,
}

fn write(db: &DB, batch: WriteBatch, options: &WriteOptions) -> Result<(), StorageError> {
    match batch.is_empty() {
        true => Ok(()),
        false => db.write_opt(batch, options).map_err(StorageError::from),
    }
}

/// Updates the Merkle leaves and the hint count for a committed group and
/// answers its callers.
fn finish<D>(shared: &Shared<D>, applied: Applied, committed: Result<(), StorageError>) {
    if committed.is_ok() {
        for (hash, old, new) in applied.leaf_updates {
            shared.forest.update(hash, old, new);
        }
        match applied.marker_delta {
            d if d >= 0 => shared
                .hints_pending
                .fetch_add(d.unsigned_abs(), Ordering::Relaxed),
            d => shared
                .hints_pending
                .fetch_sub(d.unsigned_abs(), Ordering::Relaxed),
        };
    }
    for outcome in applied.outcomes {
        outcome.send(committed.as_ref().map(|_| ()));
    }
}

/// Applies `ops` (emptied) to their keys' current states and builds the
/// batch that stores the result.
fn prepare(db: &DB, dots: &mut Dots, ops: &mut Vec<WriteOp>, next_seq: &mut u64) -> Group {
    let cf = |name| {
        db.cf_handle(name)
            .expect("column families are created at open")
    };
    let (data, hints, tombs) = (cf(DATA_CF), cf(HINTS_CF), cf(TOMBS_CF));
    // Each key's state is read once per group and updated in queue order.
    let mut states: HashMap<Vec<u8>, KeyState> = HashMap::with_capacity(ops.len());
    // Hint markers touched by this group: key -> new value (None: deleted).
    let mut markers: HashMap<Vec<u8>, Option<u64>> = HashMap::new();
    let mut marker_delta: i64 = 0;
    let mut outcomes = Vec::with_capacity(ops.len());
    for op in ops.drain(..) {
        let key = op.key().clone();
        let dk = data_key(&key);
        if !states.contains_key(&dk) {
            match load(db, data, &key, &dk) {
                Ok(state) => {
                    states.insert(dk.clone(), state);
                }
                Err(error) => {
                    op.fail(error);
                    continue;
                }
            }
        }
        let state = states.get_mut(&dk).expect("loaded above");
        let mut mark = |owner: &str, seq: u64| -> Result<(), StorageError> {
            let hk = hint_key(owner, &dk);
            let existed = match markers.get(&hk) {
                Some(value) => value.is_some(),
                None => db.get_pinned_cf(hints, &hk)?.is_some(),
            };
            if !existed {
                marker_delta += 1;
            }
            markers.insert(hk, Some(seq));
            Ok(())
        };
        match op {
            WriteOp::Coordinate {
                context,
                value,
                hints: owners,
                reply,
                ..
            } => {
                let dot = match dots.issue(&state.object, &context) {
                    Ok(dot) => dot,
                    Err(error) => {
                        drop(reply.send(Err(error)));
                        continue;
                    }
                };
                if let Err(error) = owners.iter().try_for_each(|o| mark(o, *next_seq)) {
                    drop(reply.send(Err(error)));
                    continue;
                }
                *next_seq += 1;
                if let Err(stale) = state.object.write(dot, &context, value) {
                    drop(reply.send(Err(stale.into())));
                    continue;
                }
                state.dirty = true;
                outcomes.push(Outcome::Object(reply, state.object.clone()));
            }
            WriteOp::Merge {
                object: incoming,
                hint,
                reply,
                ..
            } => {
                if let Some(owner) = hint {
                    if let Err(error) = mark(&owner, *next_seq) {
                        drop(reply.send(Err(error)));
                        continue;
                    }
                    *next_seq += 1;
                }
                state.dirty |= state.object.merge(&incoming);
                outcomes.push(Outcome::Unit(reply));
            }
            WriteOp::DeleteIf { digest, reply, .. } => {
                let current = state.current_digest(key_hash(&key));
                let matches = current != 0 && current == digest;
                if matches {
                    state.object = Object::new();
                    state.dirty = true;
                }
                outcomes.push(Outcome::Flag(reply, matches));
            }
            WriteOp::ClearHint {
                owner, seq, reply, ..
            } => {
                let hk = hint_key(&owner, &dk);
                let current = match markers.get(&hk) {
                    Some(value) => Ok(*value),
                    None => db
                        .get_pinned_cf(hints, &hk)
                        .map(|v| v.and_then(|v| decode_seq(&v))),
                };
                match current {
                    Ok(Some(current)) if current == seq => {
                        markers.insert(hk, None);
                        marker_delta -= 1;
                        outcomes.push(Outcome::Flag(reply, true));
                    }
                    Ok(_) => outcomes.push(Outcome::Flag(reply, false)),
                    Err(error) => drop(reply.send(Err(error.into()))),
                }
            }
        }
    }

    let mut batch = WriteBatch::default();
    let mut leaf_updates = Vec::new();
    let now = now_ms();
    for (dk, state) in &states {
        if !state.dirty {
            continue;
        }
        let hash = u64::from_be_bytes(dk[..8].try_into().expect("data keys start with a hash"));
        let new_digest = if state.object.is_empty() {
            batch.delete_cf(data, dk);
            0
        } else {
            let bytes = encode(&state.object);
            let digest = record_digest(hash, &bytes);
            batch.put_cf(data, dk, bytes);
            digest
        };
        let tombstone = state.object.is_tombstone();
        if tombstone && !state.old_tombstone {
            batch.put_cf(tombs, dk, now.to_be_bytes());
        } else if !tombstone && state.old_tombstone {
            batch.delete_cf(tombs, dk);
        }
        leaf_updates.push((hash, state.old_digest, new_digest));
    }
    for (hk, value) in &markers {
        match value {
            Some(seq) => batch.put_cf(hints, hk, seq.to_be_bytes()),
            None => batch.delete_cf(hints, hk),
        }
    }
    let reservation = dots.pending_reservation();
    if let Some(end) = reservation {
        batch.put_cf(cf(META_CF), META_DOTS, end.to_be_bytes());
    }
    Group {
        batch,
        sync: reservation.is_some(),
        applied: Applied {
            leaf_updates,
            marker_delta,
            outcomes,
        },
    }
}

/// Reads a key's record. A record that does not decode counts as absent
/// (replicas repair it), but keeps its digest so the Merkle leaves stay
/// exact.
fn load(
    db: &DB,
    cf: &rocksdb::ColumnFamily,
    key: &[u8],
    dk: &[u8],
) -> Result<KeyState, StorageError> {
    let Some(bytes) = db.get_pinned_cf(cf, dk)? else {
        return Ok(KeyState {
            object: Object::new(),
            old_digest: 0,
            old_tombstone: false,
            dirty: false,
        });
    };
    let old_digest = record_digest(key_hash(key), &bytes);
    let object = decode(key, &bytes).unwrap_or_else(|error| {
        tracing::warn!(%error, "replacing an unreadable record");
        Object::new()
    });
    Ok(KeyState {
        old_tombstone: object.is_tombstone(),
        object,
        old_digest,
        dirty: false,
    })
}

/// The stored bytes of an object.
pub(super) fn encode(object: &Object) -> Vec<u8> {
    postcard::to_stdvec(object).expect("an object always serializes")
}

/// Decodes a hint marker's sequence number.
pub(super) fn decode_seq(bytes: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(bytes).ok().map(u64::from_be_bytes)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use rocksdb::Options;

    use super::*;
    use crate::storage::layout::column_families;

    /// A store's column families under `dir`, the data one with `data`.
    fn open_db(dir: &std::path::Path, data: Options) -> DB {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        DB::open_cf_descriptors(&db_opts, dir, column_families(data)).unwrap()
    }

    /// A database whose data column family has two sorted runs, a slowdown
    /// trigger of two runs and a compaction picker that never merges them
    /// (universal compaction needing 100 runs to merge, size amplification
    /// allowed up to 100x): RocksDB delays every write to it.
    fn stalling_db(dir: &std::path::Path) -> DB {
        let mut data = Options::default();
        let mut universal = rocksdb::UniversalCompactOptions::default();
        universal.set_min_merge_width(100);
        universal.set_max_size_amplification_percent(10_000);
        data.set_compaction_style(rocksdb::DBCompactionStyle::Universal);
        data.set_universal_compaction_options(&universal);
        data.set_level_zero_file_num_compaction_trigger(2);
        data.set_level_zero_slowdown_writes_trigger(2);
        data.set_level_zero_stop_writes_trigger(1000);
        let db = open_db(dir, data);
        let cf = db.cf_handle(DATA_CF).unwrap();
        for key in [b"a", b"b"] {
            db.put_cf(cf, key, b"record").unwrap();
            db.flush_cf(cf).unwrap();
        }
        db
    }

    #[tokio::test]
    async fn a_commit_rocksdb_would_delay_is_made_on_a_blocking_thread() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(stalling_db(dir.path()));
        // RocksDB sizes a write's delay by the previous write group: after
        // one of 8 MiB, the next write is delayed, so the inline commit the
        // writer task tries first is refused.
        let big = Bytes::from(vec![7u8; 8 << 20]);
        let cf = db.cf_handle(DATA_CF).unwrap();
        db.put_cf(cf, b"big", &big).unwrap();
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, b"probe", &big);
        let mut inline = WriteOptions::default();
        inline.set_no_slowdown(true);
        let refused = db.write_opt(batch, &inline).unwrap_err();
        assert_eq!(refused.kind(), rocksdb::ErrorKind::Incomplete);

        let forest = Arc::new(MerkleForest::new(8));
        let shared = Shared {
            db: db.clone(),
            forest: forest.clone(),
            hints_pending: Arc::new(AtomicU64::new(0)),
        };
        let (tx, thread) = spawn(shared, Dots::starting_at(7, 1), false).unwrap();
        assert!(thread.is_none(), "without fsync the writer is a task");
        let key = Bytes::from_static(b"k");
        let (reply, done) = oneshot::channel();
        tx.send(WriteOp::Coordinate {
            key: key.clone(),
            context: VersionVector::new(),
            value: Some(big),
            hints: Vec::new(),
            reply,
        })
        .unwrap_or_else(|_| panic!("writer gone"));
        let written = done.await.unwrap().unwrap();
        let stored = db.get_pinned_cf(cf, data_key(&key)).unwrap().unwrap();
        assert_eq!(decode(&key, &stored).unwrap(), written);
        let roots: u64 = (0..forest.partitions())
            .map(|p| forest.root(p))
            .fold(0, |a, r| a ^ r);
        assert_ne!(roots, 0, "the Merkle leaves saw the commit");
    }

    #[tokio::test]
    async fn with_fsync_the_writer_is_a_thread() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(open_db(dir.path(), Options::default()));
        let shared = Shared {
            db: db.clone(),
            forest: Arc::new(MerkleForest::new(8)),
            hints_pending: Arc::new(AtomicU64::new(0)),
        };
        let (tx, thread) = spawn(shared, Dots::starting_at(7, 1), true).unwrap();
        let (reply, done) = oneshot::channel();
        tx.send(WriteOp::Merge {
            key: Bytes::from_static(b"k"),
            object: Object::new(),
            hint: None,
            reply,
        })
        .unwrap_or_else(|_| panic!("writer gone"));
        done.await.unwrap().unwrap();
        drop(tx);
        let thread = thread.expect("with fsync the writer is a thread");
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
    }
}
