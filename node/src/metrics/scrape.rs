//! The figures read at scrape time from the modules that keep them: the
//! coordinator, handoff, anti-entropy, transfers, the failure detector and
//! the store (RocksDB's properties).

use dynamo_ring::document::TransferState;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use crate::antientropy::AntiEntropy;
use crate::coordinator::Coordinator;
use crate::handoff::Handoff;
use crate::membership::PeerState;
use crate::transfer::Transfers;

/// Where the scrape-time figures come from.
pub struct Sources<'a> {
    /// Quorum shortfalls, stand-ins, read repairs; through it, the store
    /// and the cluster view.
    pub coordinator: &'a Coordinator,
    /// Hints delivered.
    pub handoff: &'a Handoff,
    /// Exchanges and repairs.
    pub anti_entropy: &'a AntiEntropy,
    /// Partitions being received and keys moved.
    pub transfers: &'a Transfers,
}

/// One label and its value.
type Label = [(&'static str, &'static str); 1];

/// A counter family with one label, holding `values` as they are now.
fn counters(label: &'static str, values: &[(&'static str, u64)]) -> Family<Label, Counter> {
    let family = Family::<Label, Counter>::default();
    for &(value, count) in values {
        family.get_or_create(&[(label, value)]).inc_by(count);
    }
    family
}

/// A gauge family with one label, holding `values`.
fn gauges(label: &'static str, values: &[(&'static str, u64)]) -> Family<Label, Gauge> {
    let family = Family::<Label, Gauge>::default();
    for &(value, level) in values {
        family.get_or_create(&[(label, value)]).set(signed(level));
    }
    family
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn counter(value: u64) -> ConstCounter {
    ConstCounter::new(value)
}

fn gauge(value: u64) -> ConstGauge {
    ConstGauge::new(signed(value))
}

/// Adds every scrape-time series to `registry`.
pub(super) fn register(registry: &mut Registry, sources: &Sources<'_>) {
    let build = gauges("version", &[(env!("CARGO_PKG_VERSION"), 1)]);
    registry.register("build_info", "The node's release (always 1)", build);
    register_requests(registry, sources.coordinator);
    register_repairs(registry, sources);
    register_transfers(registry, sources.transfers);
    register_members(registry, sources.coordinator);
    register_engine(registry, sources.coordinator);
}

/// Quorum shortfalls and sloppy-quorum stand-ins.
fn register_requests(registry: &mut Registry, coordinator: &Coordinator) {
    let report = coordinator.report();
    registry.register(
        "quorum_shortfalls",
        "Reads and writes this node coordinated that failed for lack of R or W replies",
        counters(
            "op",
            &[
                ("read", report.read_shortfalls),
                ("write", report.write_shortfalls),
            ],
        ),
    );
    registry.register(
        "sloppy_standins",
        "Replica writes this node sent to a stand-in for an owner believed down",
        counter(report.stand_ins),
    );
    registry.register(
        "hedged_reads",
        "Replica reads this node sent because the replicas it asked first were slow to answer",
        counter(report.hedged_reads),
    );
}

/// Hints, anti-entropy exchanges and the keys and bytes repaired.
fn register_repairs(registry: &mut Registry, sources: &Sources<'_>) {
    let storage = sources.coordinator.storage();
    let handoff = sources.handoff.report();
    registry.register(
        "hints_stored",
        "Hints this node stored for owners it stood in for",
        counter(storage.hints_stored()),
    );
    registry.register(
        "hints_delivered",
        "Hints this node delivered to their owners",
        counter(handoff.delivered),
    );
    registry.register(
        "hints_pending",
        "Hints this node holds, not yet delivered",
        gauge(handoff.pending),
    );
    let exchanges = sources.anti_entropy.totals();
    registry.register(
        "antientropy_exchanges",
        "Merkle anti-entropy exchanges with a peer, by outcome",
        counters(
            "outcome",
            &[
                ("ok", exchanges.exchanges),
                ("failed", exchanges.exchanges_failed),
            ],
        ),
    );
    let reads = sources.coordinator.report();
    registry.register(
        "repaired_keys",
        "Keys brought up to date on a replica, by what repaired them",
        counters(
            "source",
            &[
                ("antientropy", exchanges.keys_repaired),
                ("read_repair", reads.repaired_keys),
            ],
        ),
    );
    registry.register(
        "repaired_bytes",
        "Encoded bytes of the states repairs sent or fetched, by what repaired them",
        counters(
            "source",
            &[
                ("antientropy", exchanges.bytes_repaired),
                ("read_repair", reads.repaired_bytes),
            ],
        ),
    );
}

/// Partitions by transfer state and keys moved.
fn register_transfers(registry: &mut Registry, transfers: &Transfers) {
    let report = transfers.report();
    let count = |state: TransferState| {
        report
            .partitions
            .iter()
            .filter(|t| t.state == state)
            .count() as u64
    };
    registry.register(
        "transfer_partitions",
        "Partitions of the current transfer plan by state (retired: given up, kept until \
         their new owners hold them)",
        gauges(
            "state",
            &[
                ("pending", count(TransferState::Pending)),
                ("receiving", count(TransferState::Streaming)),
                ("done", count(TransferState::Done)),
                ("retired", u64::from(report.retired)),
            ],
        ),
    );
    let totals = transfers.totals();
    registry.register(
        "transfer_keys",
        "Keys moved by partition transfers, by direction",
        counters(
            "direction",
            &[
                ("sent", totals.keys_sent),
                ("received", totals.keys_received),
            ],
        ),
    );
}

/// The members of this node's ring by how its failure detector sees them
/// (this node itself is alive).
fn register_members(registry: &mut Registry, coordinator: &Coordinator) {
    let membership = coordinator.membership();
    let view = membership.view();
    let mut by_state = [0u64; 4];
    for peer in view.all() {
        let state = match membership.is_me(peer) {
            true => PeerState::Alive,
            false => membership.liveness().status(&peer.member.id).state,
        };
        by_state[state as usize] += 1;
    }
    let states = [
        PeerState::Unknown,
        PeerState::Alive,
        PeerState::Suspect,
        PeerState::Down,
    ]
    .map(|state| (state_name(state), by_state[state as usize]));
    registry.register(
        "members",
        "Members of the ring by the state this node sees them in",
        gauges("state", &states),
    );
}

fn state_name(state: PeerState) -> &'static str {
    match state {
        PeerState::Unknown => "unknown",
        PeerState::Alive => "alive",
        PeerState::Suspect => "suspect",
        PeerState::Down => "down",
    }
}

/// RocksDB's sizes, compactions and write stalls; left out, with a
/// debug line, if RocksDB does not answer.
fn register_engine(registry: &mut Registry, coordinator: &Coordinator) {
    let stats = match coordinator.storage().engine_stats() {
        Ok(stats) => stats,
        Err(error) => {
            tracing::debug!(%error, "reading RocksDB's properties for /metrics");
            return;
        }
    };
    let mut add = |name: &str, help: &str, value: u64| {
        registry.register(format!("rocksdb_{name}"), help, gauge(value));
    };
    add(
        "live_data_bytes",
        "Estimated bytes of live data in RocksDB",
        stats.live_data_bytes,
    );
    add(
        "sst_files_bytes",
        "Bytes of all RocksDB SST files, obsolete ones included",
        stats.sst_files_bytes,
    );
    add(
        "memtable_bytes",
        "Bytes of RocksDB's memtables",
        stats.memtable_bytes,
    );
    add(
        "pending_compaction_bytes",
        "Bytes RocksDB estimates compaction has to rewrite",
        stats.pending_compaction_bytes,
    );
    add(
        "running_compactions",
        "RocksDB compactions running",
        stats.running_compactions,
    );
    add(
        "delayed_write_rate_bytes",
        "Rate RocksDB slows writes to, in bytes a second (0: not slowed)",
        stats.delayed_write_rate,
    );
    add(
        "write_stopped",
        "1 while RocksDB stops writes until compaction catches up",
        u64::from(stats.write_stopped),
    );
}
