//! The Dynamo node: a replicated, versioned key-value store.
//!
//! Layers, bottom up: [`version`] (dotted version vectors), [`storage`]
//! (RocksDB), [`membership`] (ring and liveness), [`transport`]
//! (node-to-node streams), [`coordinator`] (sloppy-quorum reads and
//! writes), [`replica`] (answering peers), [`api`] (HTTP routes),
//! [`server`] (wiring) and [`local`] (the one-command cluster). Background
//! work that keeps replicas converged: [`gossip`] (ring and heartbeats),
//! [`handoff`] (hinted handoff), [`antientropy`] (Merkle trees),
//! [`transfer`] (ring changes and partition streaming) and [`tombstones`]
//! (purging deletes).

#![warn(missing_docs)]

pub mod antientropy;
pub mod api;
pub mod background;
pub mod config;
pub mod coordinator;
pub mod gossip;
pub mod handoff;
pub mod local;
pub mod membership;
pub mod replica;
pub mod server;
pub mod storage;
pub mod tls;
pub mod tombstones;
pub mod transfer;
pub mod transport;
pub mod version;
