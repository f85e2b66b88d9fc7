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
//!
//! A commit failing with an I/O error (a full or failing volume) makes the
//! store unavailable for writes: from then on the writer fails every write
//! at once, without going to RocksDB, until the store takes writes again
//! (see `health.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use dynamo_ring::{NodeId, key_hash};
use rocksdb::{DB, WriteBatch, WriteOptions};
use tokio::sync::{mpsc, oneshot};

use super::dots::{Dots, META_DOTS};
use super::format::{DESCRIBED_FORMAT, FORMAT_RECORD};
use super::health::WriteHealth;
use super::layout::{DATA_CF, HINTS_CF, META_CF, TOMBS_CF, data_key, hint_key};
use super::{StorageError, decode, now_ms};
use crate::merkle::{MerkleForest, record_digest};
use crate::version::{Content, Object, VersionVector};

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
        content: Content,
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
    /// Hint markers created since the store opened.
    pub hints_stored: Arc<AtomicU64>,
    pub health: Arc<WriteHealth>,
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
    // Unbounded, and it needs no bound: every op is queued by a caller that
    // then awaits its reply (see `Storage::request`), so the queue never
    // holds more ops than there are writes in flight, and those are already
    // limited where they start (requests being served, peer frames being
    // answered, background batches of at most a few hundred keys). A bound
    // would only move that wait from the reply to the send.
    let (tx, rx) = mpsc::unbounded_channel();
    let mut write_options = WriteOptions::default();
    write_options.set_sync(fsync);
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) if !fsync => {
            let shared = Shared {
                db: Arc::downgrade(&shared.db),
                forest: shared.forest,
                hints_pending: shared.hints_pending,
                hints_stored: shared.hints_stored,
                health: shared.health,
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
    /// The key's entry in the sweep index before this group.
    old_sweep: Sweep,
    dirty: bool,
}

/// Why a key has an entry in the sweep index (the tombstone column
/// family), and the entry's time: a tombstone, since the time this replica
/// first held it; a value version that expires, at its expiry (the
/// tombstone sweeper then turns it into a tombstone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sweep {
    None,
    Tombstone,
    ExpiresAt(u64),
}

impl Sweep {
    fn of(object: &Object) -> Self {
        if object.is_tombstone() {
            return Sweep::Tombstone;
        }
        object.next_expiry().map_or(Sweep::None, Sweep::ExpiresAt)
    }
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

/// Fails every op of `ops` (emptied) while the store refuses writes; says
/// whether it did.
fn refused(health: &WriteHealth, ops: &mut Vec<WriteOp>) -> bool {
    let Err(error) = health.admit(ops.len()) else {
        return false;
    };
    for op in ops.drain(..) {
        op.fail(error.clone());
    }
    true
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
        if refused(&shared.health, &mut ops) {
            continue;
        }
        let group = prepare(&shared.db, &mut dots, &mut ops, &mut next_seq);
        let options = if group.sync { &synced } else { write_options };
        let committed = write(&shared.db, group.batch, options)
            .map_err(|e| shared.health.failed(e, &shared.db));
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
        if refused(&shared.health, &mut ops) {
            continue;
        }
        let Some(db) = shared.db.upgrade() else {
            for op in ops.drain(..) {
                op.fail(StorageError::WriterStopped);
            }
            continue;
        };
        let group = prepare(&db, &mut dots, &mut ops, &mut next_seq);
        let committed = match group.sync {
            // A new block of dot counters: fsynced, off the runtime.
            true => commit_blocking(db.clone(), group.batch, synced.clone()).await,
            false => {
                // Writing consumes the batch: keep its bytes to redo a
                // commit that RocksDB refuses to make without delay.
                let retry = group.batch.data().to_vec();
                match write(&db, group.batch, &inline_options) {
                    Err(StorageError::Rocks(e)) if e.kind() == rocksdb::ErrorKind::Incomplete => {
                        let batch = WriteBatch::from_data(&retry);
                        commit_blocking(db.clone(), batch, write_options.clone()).await
                    }
                    committed => committed,
                }
            }
        }
        .map_err(|e| shared.health.failed(e, &db));
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
    /// Markers the group creates (not counting those it re-marks).
    markers_added: u64,
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
        shared
            .hints_stored
            .fetch_add(applied.markers_added, Ordering::Relaxed);
    }
    for outcome in applied.outcomes {
        outcome.send(committed.as_ref().map(|_| ()));
    }
}

/// Applies `ops` (emptied) to their keys' current states and builds the
/// batch that stores the result.
fn prepare(db: &DB, dots: &mut Dots, ops: &mut Vec<WriteOp>, next_seq: &mut u64) -> Group {
    let cf = Families::of(db);
    // Each key's state is read once per group and updated in queue order.
    let mut states: HashMap<Vec<u8>, KeyState> = HashMap::with_capacity(ops.len());
    let mut markers = Markers {
        db,
        cf: cf.hints,
        touched: HashMap::new(),
        delta: 0,
        added: 0,
        next_seq,
    };
    let mut outcomes = Vec::with_capacity(ops.len());
    for op in ops.drain(..) {
        let key = op.key().clone();
        let dk = data_key(&key);
        if !states.contains_key(&dk) {
            match load(db, cf.data, &key, &dk) {
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
        let target = Target {
            key: &key,
            dk: &dk,
            state,
        };
        if let Some(outcome) = apply(op, target, &mut markers, dots) {
            outcomes.push(outcome);
        }
    }
    let mut batch = WriteBatch::default();
    let leaf_updates = store_states(&mut batch, &cf, &states);
    for (hk, value) in &markers.touched {
        match value {
            Some(seq) => batch.put_cf(cf.hints, hk, seq.to_be_bytes()),
            None => batch.delete_cf(cf.hints, hk),
        }
    }
    let reservation = dots.pending_reservation();
    if let Some(end) = reservation {
        batch.put_cf(cf.meta, META_DOTS, end.to_be_bytes());
    }
    Group {
        batch,
        sync: reservation.is_some(),
        applied: Applied {
            leaf_updates,
            marker_delta: markers.delta,
            markers_added: markers.added,
            outcomes,
        },
    }
}

/// The column families a group writes to.
struct Families<'a> {
    data: &'a rocksdb::ColumnFamily,
    hints: &'a rocksdb::ColumnFamily,
    tombs: &'a rocksdb::ColumnFamily,
    meta: &'a rocksdb::ColumnFamily,
}

impl<'a> Families<'a> {
    fn of(db: &'a DB) -> Self {
        let cf = |name| {
            db.cf_handle(name)
                .expect("column families are created at open")
        };
        Self {
            data: cf(DATA_CF),
            hints: cf(HINTS_CF),
            tombs: cf(TOMBS_CF),
            meta: cf(META_CF),
        }
    }
}

/// The hint markers a group touches.
struct Markers<'a> {
    db: &'a DB,
    cf: &'a rocksdb::ColumnFamily,
    /// Marker key -> new value (`None`: deleted).
    touched: HashMap<Vec<u8>, Option<u64>>,
    /// How the number of markers changes.
    delta: i64,
    /// How many markers are created.
    added: u64,
    /// The sequence number of the next write's markers.
    next_seq: &'a mut u64,
}

impl Markers<'_> {
    /// Marks data key `dk` for each of `owners`, all with the next sequence
    /// number, which is then used up (also when there is no owner).
    fn mark(&mut self, owners: &[NodeId], dk: &[u8]) -> Result<(), StorageError> {
        for owner in owners {
            let hk = hint_key(owner, dk);
            let existed = match self.touched.get(&hk) {
                Some(value) => value.is_some(),
                None => self.db.get_pinned_cf(self.cf, &hk)?.is_some(),
            };
            if !existed {
                self.delta += 1;
                self.added += 1;
            }
            self.touched.insert(hk, Some(*self.next_seq));
        }
        *self.next_seq += 1;
        Ok(())
    }

    /// Deletes the marker of (`owner`, data key `dk`) if it still has
    /// `seq`; says whether it did.
    fn clear(&mut self, owner: &str, dk: &[u8], seq: u64) -> Result<bool, StorageError> {
        let hk = hint_key(owner, dk);
        let current = match self.touched.get(&hk) {
            Some(value) => *value,
            None => self
                .db
                .get_pinned_cf(self.cf, &hk)?
                .and_then(|v| decode_seq(&v)),
        };
        if current != Some(seq) {
            return Ok(false);
        }
        self.touched.insert(hk, None);
        self.delta -= 1;
        Ok(true)
    }
}

/// The key one write applies to, and its state within the group.
struct Target<'a> {
    key: &'a Bytes,
    dk: &'a [u8],
    state: &'a mut KeyState,
}

/// Applies one write to its key's state; returns the outcome to send once
/// the group is committed (`None` when the write failed and its caller was
/// answered already).
fn apply(
    op: WriteOp,
    target: Target<'_>,
    markers: &mut Markers<'_>,
    dots: &mut Dots,
) -> Option<Outcome> {
    let Target { key, dk, state } = target;
    match op {
        WriteOp::Coordinate {
            context,
            content,
            hints: owners,
            reply,
            ..
        } => match coordinate(state, dk, &context, content, &owners, markers, dots) {
            Ok(()) => Some(Outcome::Object(reply, state.object.clone())),
            Err(error) => {
                drop(reply.send(Err(error)));
                None
            }
        },
        WriteOp::Merge {
            object: incoming,
            hint,
            reply,
            ..
        } => {
            if let Some(owner) = hint
                && let Err(error) = markers.mark(&[owner], dk)
            {
                drop(reply.send(Err(error)));
                return None;
            }
            state.dirty |= state.object.merge(&incoming);
            Some(Outcome::Unit(reply))
        }
        WriteOp::DeleteIf { digest, reply, .. } => {
            let current = state.current_digest(key_hash(key));
            let matches = current != 0 && current == digest;
            if matches {
                state.object = Object::new();
                state.dirty = true;
            }
            Some(Outcome::Flag(reply, matches))
        }
        WriteOp::ClearHint {
            owner, seq, reply, ..
        } => match markers.clear(&owner, dk, seq) {
            Ok(cleared) => Some(Outcome::Flag(reply, cleared)),
            Err(error) => {
                drop(reply.send(Err(error)));
                None
            }
        },
    }
}

/// Adds a new version of the key (data key `dk`) written with `context`,
/// with a new dot from `dots`, marking it for the `owners` a stand-in
/// writes it for.
fn coordinate(
    state: &mut KeyState,
    dk: &[u8],
    context: &VersionVector,
    content: Content,
    owners: &[NodeId],
    markers: &mut Markers<'_>,
    dots: &mut Dots,
) -> Result<(), StorageError> {
    let dot = dots.issue(&state.object, context)?;
    // Written on a copy first: a refused write (or a failed marker) must
    // leave neither a new version nor a hint marker behind.
    let mut object = state.object.clone();
    object.write(dot, context, content)?;
    markers.mark(owners, dk)?;
    state.object = object;
    state.dirty = true;
    Ok(())
}

/// Adds the changed key states (records, tombstone index entries) to
/// `batch`; returns the Merkle leaf updates, (key hash, old digest, new
/// digest), to make once it is committed.
fn store_states(
    batch: &mut WriteBatch,
    cf: &Families<'_>,
    states: &HashMap<Vec<u8>, KeyState>,
) -> Vec<(u64, u64, u64)> {
    let mut leaf_updates = Vec::new();
    let now = now_ms();
    let mut described = false;
    for (dk, state) in states {
        if !state.dirty {
            continue;
        }
        described |= state.object.is_described();
        let hash = u64::from_be_bytes(dk[..8].try_into().expect("data keys start with a hash"));
        let new_digest = if state.object.is_empty() {
            batch.delete_cf(cf.data, dk);
            0
        } else {
            let bytes = encode(&state.object);
            let digest = record_digest(hash, &bytes);
            batch.put_cf(cf.data, dk, bytes);
            digest
        };
        let sweep = Sweep::of(&state.object);
        if sweep != state.old_sweep {
            match sweep {
                Sweep::Tombstone => batch.put_cf(cf.tombs, dk, now.to_be_bytes()),
                Sweep::ExpiresAt(at) => batch.put_cf(cf.tombs, dk, at.to_be_bytes()),
                Sweep::None => batch.delete_cf(cf.tombs, dk),
            }
        }
        leaf_updates.push((hash, state.old_digest, new_digest));
    }
    if described {
        let format = DESCRIBED_FORMAT.to_string();
        batch.put_cf(cf.meta, FORMAT_RECORD, format.as_bytes());
    }
    leaf_updates
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
            old_sweep: Sweep::None,
            dirty: false,
        });
    };
    let old_digest = record_digest(key_hash(key), &bytes);
    let object = decode(key, &bytes).unwrap_or_else(|error| {
        tracing::warn!(%error, "replacing an unreadable record");
        Object::new()
    });
    Ok(KeyState {
        old_sweep: Sweep::of(&object),
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
        DB::open_cf_descriptors(&db_opts, dir, column_families(data, &Options::default())).unwrap()
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
            hints_stored: Arc::new(AtomicU64::new(0)),
            health: Arc::new(WriteHealth::new()),
        };
        let (tx, thread) = spawn(shared, Dots::starting_at(7, 1), false).unwrap();
        assert!(thread.is_none(), "without fsync the writer is a task");
        let key = Bytes::from_static(b"k");
        let (reply, done) = oneshot::channel();
        tx.send(WriteOp::Coordinate {
            key: key.clone(),
            context: VersionVector::new(),
            content: Content::Value(big),
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
            hints_stored: Arc::new(AtomicU64::new(0)),
            health: Arc::new(WriteHealth::new()),
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
