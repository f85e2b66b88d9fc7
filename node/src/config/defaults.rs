//! The default of every `serve` setting that has a fixed one, in one
//! table: the clap attributes of [`ServeArgs`](super::ServeArgs) show them
//! (`--help`, and the README's settings table, checked by a test),
//! [`NodeConfig`](super::NodeConfig) applies them to whatever was left
//! unset, and other constructors (such as the storage options' `Default`)
//! refer to them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Client (and internal) listen address.
pub const LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 7000);
/// Zone of a node or peer that names none.
pub const ZONE: &str = "default";
/// Replication factor N (capped at the number of members).
pub const N: usize = 3;
/// Read quorum R (capped at N).
pub const R: usize = 2;
/// Write quorum W (capped at N).
pub const W: usize = 2;
/// How log lines are written.
pub const LOG_FORMAT: crate::logging::LogFormat = crate::logging::LogFormat::Text;
/// Number of ring partitions Q.
pub const PARTITIONS: u32 = 1024;
/// Largest accepted value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// Timeout of one node-to-node request, in milliseconds.
pub const REQUEST_TIMEOUT_MS: u64 = 2000;
/// Whether each write's WAL append is fsynced.
pub const FSYNC: bool = false;
/// RocksDB block cache, in MiB.
pub const BLOCK_CACHE_MB: usize = 64;
/// Whether the node starts outside the ring.
pub const JOIN: bool = false;
/// A node on an empty data directory that its ring lists has lost its data.
pub const INITIAL_CLUSTER_STATE: super::ClusterState = super::ClusterState::Existing;
/// Share of reads that ask all N replicas.
pub const READ_REPAIR_CHANCE: f64 = 0.1;
/// Milliseconds between gossip rounds.
pub const GOSSIP_INTERVAL_MS: u64 = 1000;
/// Milliseconds between anti-entropy exchanges.
pub const ANTI_ENTROPY_INTERVAL_MS: u64 = 10_000;
/// Anti-entropy repair rate limit, in keys per second.
pub const ANTI_ENTROPY_KEYS_PER_SEC: u64 = 2000;
/// Milliseconds between hinted-handoff passes.
pub const HANDOFF_INTERVAL_MS: u64 = 1000;
/// Hint delivery rate limit, in keys per second.
pub const HANDOFF_KEYS_PER_SEC: u64 = 2000;
/// Partition streaming rate limit, in keys per second.
pub const TRANSFER_KEYS_PER_SEC: u64 = 5000;
/// Seconds a tombstone is kept at least.
pub const TOMBSTONE_MIN_AGE_SECS: u64 = 3600;
/// Seconds an unreachable departed member keeps blocking purges (7 days).
pub const TOMBSTONE_DEPARTED_WAIT_SECS: u64 = 7 * 86_400;
/// Milliseconds between tombstone index scans.
pub const TOMBSTONE_SCAN_INTERVAL_MS: u64 = 60_000;
/// Milliseconds a connection has to send a whole request head (from its
/// accept, or from the first byte of a later request).
pub const HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// Milliseconds a request has to send its whole body.
pub const BODY_READ_TIMEOUT_MS: u64 = 30_000;
/// Milliseconds a keep-alive connection may sit idle between requests.
pub const IDLE_TIMEOUT_MS: u64 = 60_000;
/// Milliseconds a TLS handshake may take.
pub const TLS_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Most open client connections.
pub const MAX_CLIENT_CONNECTIONS: usize = 4096;
/// Connections kept for node-to-node streams beyond the client ones.
pub const MAX_PEER_CONNECTIONS: usize = 1024;
/// Most client requests in flight at once.
pub const MAX_IN_FLIGHT_REQUESTS: usize = 1024;
