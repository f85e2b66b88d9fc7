//! Group commit: one thread applies every write to the store.
//!
//! Writes (a coordinator's new version, a replica merge) are queued to a
//! dedicated thread. It takes everything queued, reads each key's current
//! state once, applies the writes in order, and commits the whole group as
//! one RocksDB write batch: one WAL append (and one fsync when enabled) for
//! many client writes. Callers are answered only after the batch is in the
//! WAL. Being the only writer also makes every read-modify-write atomic
//! without locks.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use rocksdb::{DB, WriteBatch, WriteOptions};
use tokio::sync::{mpsc, oneshot};

use super::layout::{DATA_CF, data_key};
use super::{StorageError, decode};
use crate::version::{Actor, Object, VersionVector};

/// Most writes committed in one batch.
const MAX_BATCH: usize = 512;

/// One queued write.
pub(super) enum WriteOp {
    /// A client write coordinated here: add a version under `actor`.
    Coordinate {
        key: Bytes,
        context: VersionVector,
        value: Option<Bytes>,
        reply: oneshot::Sender<Result<Object, StorageError>>,
    },
    /// Merge another replica's state.
    Merge {
        key: Bytes,
        object: Object,
        reply: oneshot::Sender<Result<(), StorageError>>,
    },
}

impl WriteOp {
    fn fail(self, error: StorageError) {
        match self {
            WriteOp::Coordinate { reply, .. } => drop(reply.send(Err(error))),
            WriteOp::Merge { reply, .. } => drop(reply.send(Err(error))),
        }
    }
}

/// Starts the writer thread; it ends when every sender is dropped.
pub(super) fn spawn(
    db: Arc<DB>,
    actor: Actor,
    write_options: WriteOptions,
) -> std::io::Result<(mpsc::UnboundedSender<WriteOp>, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let thread = std::thread::Builder::new()
        .name("storage-writer".into())
        .spawn(move || run(&db, actor, &write_options, rx))?;
    Ok((tx, thread))
}

/// Where the outcome of one write goes once its batch is committed.
enum Reply {
    Coordinate(oneshot::Sender<Result<Object, StorageError>>, Object),
    Merge(oneshot::Sender<Result<(), StorageError>>),
}

impl Reply {
    fn send(self, committed: Result<(), &StorageError>) {
        match (self, committed) {
            (Reply::Coordinate(tx, object), Ok(())) => drop(tx.send(Ok(object))),
            (Reply::Coordinate(tx, _), Err(e)) => drop(tx.send(Err(e.clone()))),
            (Reply::Merge(tx), Ok(())) => drop(tx.send(Ok(()))),
            (Reply::Merge(tx), Err(e)) => drop(tx.send(Err(e.clone()))),
        }
    }
}

fn run(
    db: &DB,
    actor: Actor,
    write_options: &WriteOptions,
    mut rx: mpsc::UnboundedReceiver<WriteOp>,
) {
    let cf = db
        .cf_handle(DATA_CF)
        .expect("column families are created at open");
    let mut ops = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        ops.push(first);
        while ops.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        // Each key's state is read once per group and updated in queue order.
        let mut states: HashMap<Vec<u8>, (Object, bool)> = HashMap::with_capacity(ops.len());
        let mut replies = Vec::with_capacity(ops.len());
        for op in ops.drain(..) {
            let key = match &op {
                WriteOp::Coordinate { key, .. } | WriteOp::Merge { key, .. } => key.clone(),
            };
            let dk = data_key(&key);
            if !states.contains_key(&dk) {
                match load(db, cf, &key, &dk) {
                    Ok(object) => {
                        states.insert(dk.clone(), (object, false));
                    }
                    Err(error) => {
                        op.fail(error);
                        continue;
                    }
                }
            }
            let (object, dirty) = states.get_mut(&dk).expect("loaded above");
            match op {
                WriteOp::Coordinate {
                    context,
                    value,
                    reply,
                    ..
                } => {
                    object.write(actor, &context, value);
                    *dirty = true;
                    replies.push(Reply::Coordinate(reply, object.clone()));
                }
                WriteOp::Merge {
                    object: incoming,
                    reply,
                    ..
                } => {
                    *dirty |= object.merge(&incoming);
                    replies.push(Reply::Merge(reply));
                }
            }
        }
        let mut batch = WriteBatch::default();
        for (dk, (object, dirty)) in &states {
            if *dirty {
                let bytes = postcard::to_stdvec(object).expect("an object always serializes");
                batch.put_cf(cf, dk, bytes);
            }
        }
        let committed = match batch.is_empty() {
            true => Ok(()),
            false => db
                .write_opt(batch, write_options)
                .map_err(StorageError::from),
        };
        for reply in replies {
            reply.send(committed.as_ref().map(|_| ()));
        }
    }
}

fn load(
    db: &DB,
    cf: &rocksdb::ColumnFamily,
    key: &[u8],
    dk: &[u8],
) -> Result<Object, StorageError> {
    match db.get_pinned_cf(cf, dk)? {
        Some(bytes) => decode(key, &bytes),
        None => Ok(Object::new()),
    }
}
