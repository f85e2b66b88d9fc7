//! The Dynamo node: a replicated, versioned key-value store.
//!
//! Layers, bottom up: [`version`] (dotted version vectors), [`storage`]
//! (RocksDB), [`membership`] (ring and liveness), [`rpc`] (node-to-node
//! protocol), [`coordinator`] (quorum reads and writes), [`api`] (HTTP
//! routes), [`server`] (wiring) and [`local`] (the one-command cluster).

pub mod api;
pub mod config;
pub mod coordinator;
pub mod local;
pub mod membership;
pub mod rpc;
pub mod server;
pub mod storage;
pub mod version;
