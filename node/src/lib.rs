//! The Dynamo node: a replicated, versioned key-value store.
//!
//! Layers, bottom up; a module uses only modules of the layers below it
//! (and of its own layer where listed in that order):
//!
//! 1. Plain building blocks that use nothing of the crate: [`peer`] (a
//!    member and its address), [`version`] (dotted version vectors),
//!    [`merkle`] (per-partition hash trees), [`tls`], [`credentials`]
//!    (who may use which routes), [`file_watch`] (files changed since
//!    read), [`sync`] (poison-tolerant locks), [`pacing`] (rate limits),
//!    [`log_limit`] (rate-limited log lines), [`logging`] (the log line
//!    formats) and [`periodic`] (the shape of periodic tasks and their
//!    runner).
//! 2. [`config`]: the settings, their defaults and the node configuration
//!    every layer reads (including each layer's own settings).
//! 3. [`storage`] (RocksDB, keeping the Merkle trees), [`membership`]
//!    (ring view and failure detector) and [`transport`] (node-to-node
//!    streams).
//! 4. [`coordinator`] (sloppy-quorum reads and writes), [`probe`]
//!    (liveness probes), [`transfer`] (streaming gained partitions) and,
//!    above it, [`ring_adoption`] (switching to newer rings).
//! 5. The maintenance tasks that keep replicas converged: [`gossip`]
//!    (rings and heartbeats), [`handoff`] (hinted handoff),
//!    [`antientropy`] (Merkle exchanges) and [`tombstones`] (purging
//!    deletes).
//! 6. [`rpc_handler`] (answering peers' requests), [`metrics`] (the
//!    Prometheus metrics, read from the layers below at scrape time),
//!    [`api`] (HTTP routes), [`server`] (wiring, `dynamo-node serve`) and
//!    [`local`] (the one-command cluster).

pub mod antientropy;
pub mod api;
pub mod backup;
pub mod config;
pub mod coordinator;
pub mod credentials;
pub mod file_watch;
pub mod gossip;
pub mod handoff;
pub mod local;
pub mod log_limit;
pub mod logging;
pub mod membership;
pub mod merkle;
pub mod metrics;
pub mod pacing;
pub mod peer;
pub mod periodic;
pub mod probe;
pub mod ring_adoption;
pub mod rpc_handler;
pub mod server;
pub mod storage;
pub mod sync;
pub mod tls;
pub mod tombstones;
pub mod transfer;
pub mod transport;
pub mod version;
