//! The node's integration tests, one test binary: clusters of real
//! `dynamo-node` processes on loopback with real RocksDB, one module per
//! topic. Run one module with
//! `cargo test -p dynamo-node --test integration history::`.
//!
//! Every test runs in this one process, on parallel threads: each cluster
//! gets a loopback /24 no other cluster of the process uses
//! ([`support::fresh_subnet`]), and everything else a test uses (ports,
//! directories, processes) is its own.

mod admin;
mod attributes;
mod auth;
mod backup;
mod cli;
mod connection_limits;
mod deletes;
mod disk_full;
mod durability;
mod faults;
mod history;
mod hostile_admin;
mod hostile_clients;
mod hostile_peers;
mod listing;
mod local;
mod logs;
mod metrics;
mod rebuild;
mod replication;
mod slow_replica;
mod status;
mod support;
mod tls;
mod ui;
mod write_outcomes;
