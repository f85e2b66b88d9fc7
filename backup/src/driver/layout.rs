//! A backup's objects and documents on its target, under `<prefix>/<id>/`:
//!
//! - `backup.json`: the [`Started`] record, written first;
//! - `nodes/<node>/<seq>.chunk`: a node's records, zstd-compressed record
//!   frames (`dynamo_backup::records`), each uploaded whole;
//! - `nodes/<node>/<seq>.json`: that chunk's [`Chunk`] entry, written
//!   once the chunk is uploaded (a resumed backup goes on after the last);
//! - `nodes/<node>/done.json`: the node's [`NodeDone`], once all its
//!   records are uploaded;
//! - `manifest.json`: the [`Manifest`], written last: a backup without it
//!   is not complete and cannot be restored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The layout version a manifest names.
pub const LAYOUT: u32 = 1;

/// The name of the started record of backup `id`.
pub fn started(id: &str) -> String {
    format!("{id}/backup.json")
}

/// The name of the manifest of backup `id`.
pub fn manifest(id: &str) -> String {
    format!("{id}/manifest.json")
}

/// The directory of `node`'s objects in backup `id`.
pub fn node_dir(id: &str, node: &str) -> String {
    format!("{id}/nodes/{node}")
}

/// The name of chunk `seq` of `node` (without extension).
pub fn chunk(id: &str, node: &str, seq: u32) -> String {
    format!("{}/{seq:06}", node_dir(id, node))
}

/// The name of `node`'s completion record.
pub fn node_done(id: &str, node: &str) -> String {
    format!("{}/done.json", node_dir(id, node))
}

/// What a backup started from: when, and the members it checkpoints.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Started {
    /// The backup's id.
    pub id: String,
    /// T: the backup holds every write acknowledged before it (ms since
    /// the Unix epoch).
    pub started_at_ms: u64,
    /// The members and their admin addresses.
    pub nodes: BTreeMap<String, String>,
}

/// One node's checkpoint, as the node described it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    /// When it was made (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// The node's ring epoch then.
    pub epoch: u64,
    /// Partitions of the ring.
    pub partitions: u32,
    /// The node's data format (how its records are encoded).
    pub format: Option<u32>,
}

/// One uploaded chunk.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Chunk {
    /// Its object's name, relative to the prefix.
    pub object: String,
    /// Records in it.
    pub records: u64,
    /// Bytes of record frames before compression.
    pub raw_bytes: u64,
    /// Bytes of the object.
    pub stored_bytes: u64,
    /// SHA-256 of the object, hex.
    pub sha256: String,
    /// The last record's key, URL-safe base64 (where a resumed export
    /// goes on from).
    pub last_key: String,
    /// Records per ring partition.
    pub partitions: BTreeMap<u32, u64>,
}

/// A node whose records are all uploaded.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeDone {
    /// The records the node's export sent.
    pub records: u64,
    /// Its checkpoint.
    pub checkpoint: Checkpoint,
}

/// One node in a manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeEntry {
    /// Its checkpoint.
    pub checkpoint: Checkpoint,
    /// Records.
    pub records: u64,
    /// Bytes before compression.
    pub raw_bytes: u64,
    /// Bytes stored.
    pub stored_bytes: u64,
    /// Records per ring partition.
    pub partitions: BTreeMap<u32, u64>,
    /// Its chunks in order.
    pub chunks: Vec<Chunk>,
}

/// A complete backup.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// [`LAYOUT`].
    pub layout: u32,
    /// The backup's id.
    pub id: String,
    /// T (ms since the Unix epoch).
    pub started_at_ms: u64,
    /// When the manifest was written.
    pub finished_at_ms: u64,
    /// The highest ring epoch of the nodes' checkpoints.
    pub epoch: u64,
    /// Ring partitions.
    pub partitions: u32,
    /// The newest data format among the nodes (a restoring node must read it).
    pub format: Option<u32>,
    /// Records over all nodes (each replica's copy counted).
    pub records: u64,
    /// Bytes before compression.
    pub raw_bytes: u64,
    /// Bytes stored.
    pub stored_bytes: u64,
    /// The nodes, by id.
    pub nodes: BTreeMap<String, NodeEntry>,
}

impl Manifest {
    /// Every chunk, node by node.
    pub fn chunks(&self) -> impl Iterator<Item = &Chunk> {
        self.nodes.values().flat_map(|n| n.chunks.iter())
    }
}
