//! Group commit: one thread applies every write to the store.
//!
//! Writes (a coordinator's new version, a replica merge, a conditional
//! delete, a hint marker change) are queued to a dedicated thread. It takes
//! everything queued, reads each key's current state once, applies the
//! writes in order, and commits the whole group as one RocksDB write batch:
//! one WAL append (and one fsync when enabled) for many client writes.
//! Callers are answered only after the batch is in the WAL. Being the only
//! writer also makes every read-modify-write atomic without locks, and lets
//! the thread keep the Merkle leaves, the tombstone index and the hint
//! count exact.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dynamo_ring::{NodeId, key_hash};
use rocksdb::{DB, WriteBatch, WriteOptions};
use tokio::sync::{mpsc, oneshot};

use super::layout::{DATA_CF, HINTS_CF, TOMBS_CF, data_key, hint_key};
use super::{StorageError, decode};
use crate::antientropy::{MerkleForest, record_digest};
use crate::version::{Actor, Object, VersionVector};

/// Most writes committed in one batch.
const MAX_BATCH: usize = 512;

type Reply<T> = oneshot::Sender<Result<T, StorageError>>;

/// One queued write.
pub(super) enum WriteOp {
    /// A client write coordinated here: add a version under `actor`, and
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

/// What the writer thread shares with readers.
pub(super) struct Shared {
    pub db: Arc<DB>,
    pub forest: Arc<MerkleForest>,
    pub hints_pending: Arc<AtomicU64>,
}

/// Starts the writer thread; it ends when every sender is dropped.
pub(super) fn spawn(
    shared: Shared,
    actor: Actor,
    write_options: WriteOptions,
) -> std::io::Result<(mpsc::UnboundedSender<WriteOp>, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let thread = std::thread::Builder::new()
        .name("storage-writer".into())
        .spawn(move || run(&shared, actor, &write_options, rx))?;
    Ok((tx, thread))
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

fn run(
    shared: &Shared,
    actor: Actor,
    write_options: &WriteOptions,
    mut rx: mpsc::UnboundedReceiver<WriteOp>,
) {
    let db = &shared.db;
    let cf = |name| {
        db.cf_handle(name)
            .expect("column families are created at open")
    };
    let (data, hints, tombs) = (cf(DATA_CF), cf(HINTS_CF), cf(TOMBS_CF));
    let mut ops = Vec::with_capacity(MAX_BATCH);
    // Marker sequence numbers grow across restarts too (clock-based start),
    // so a marker re-made after a restart never repeats an old number.
    let mut next_seq: u64 = now_ms().saturating_mul(1 << 10).max(1);
    while let Some(first) = rx.blocking_recv() {
        ops.push(first);
        while ops.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
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
                    if let Err(error) = owners.iter().try_for_each(|o| mark(o, next_seq)) {
                        drop(reply.send(Err(error)));
                        continue;
                    }
                    next_seq += 1;
                    state.object.write(actor, &context, value);
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
                        if let Err(error) = mark(&owner, next_seq) {
                            drop(reply.send(Err(error)));
                            continue;
                        }
                        next_seq += 1;
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
        let committed = match batch.is_empty() {
            true => Ok(()),
            false => db
                .write_opt(batch, write_options)
                .map_err(StorageError::from),
        };
        if committed.is_ok() {
            for (hash, old, new) in leaf_updates {
                shared.forest.update(hash, old, new);
            }
            match marker_delta {
                d if d >= 0 => shared
                    .hints_pending
                    .fetch_add(d.unsigned_abs(), Ordering::Relaxed),
                d => shared
                    .hints_pending
                    .fetch_sub(d.unsigned_abs(), Ordering::Relaxed),
            };
        }
        for outcome in outcomes {
            outcome.send(committed.as_ref().map(|_| ()));
        }
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
