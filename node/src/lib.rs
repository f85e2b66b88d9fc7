//! The Dynamo node: a replicated, versioned key-value store.
//!
//! Layers, bottom up: [`version`] (dotted version vectors), [`storage`]
//! (RocksDB), [`membership`] (ring and liveness), [`transport`]
//! (node-to-node streams), [`coordinator`] (quorum reads and writes),
//! [`replica`] (answering peers), [`api`] (HTTP routes), [`server`]
//! (wiring) and [`local`] (the one-command cluster).

#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod coordinator;
pub mod local;
pub mod membership;
pub mod replica;
pub mod server;
pub mod storage;
pub mod transport;
pub mod version;
