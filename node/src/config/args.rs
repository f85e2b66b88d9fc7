//! The `serve` settings as given: command-line flags, `DYNAMO_*`
//! environment variables and an optional TOML file, in that order of
//! precedence, then clap's defaults (see [`defaults`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, FromArgMatches};
use serde::Deserialize;

use super::{ClusterState, NodeConfig, defaults};
use crate::logging::LogFormat;

/// The text of a default in [`defaults`], for clap, which shows it and
/// parses it like a given value (and keeps it as a `&'static str`).
macro_rules! text {
    ($default:expr) => {{
        static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        TEXT.get_or_init(|| $default.to_string()).as_str()
    }};
}

/// `dynamo-node serve` settings as given by the user. Every field is
/// optional here so that flags, environment and file can be layered; the
/// defaults clap shows are applied last (see [`ExplicitServeArgs`]).
#[derive(Args, Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeArgs {
    /// TOML file with any of these settings (keys in kebab-case).
    #[arg(long, env = "DYNAMO_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// This node's unique id.
    #[arg(long, env = "DYNAMO_NODE_ID")]
    pub node_id: Option<String>,
    /// Address for the client API (and the internal API unless
    /// --internal-listen is set).
    #[arg(long, env = "DYNAMO_LISTEN", default_value = text!(defaults::LISTEN))]
    pub listen: Option<SocketAddr>,
    /// Optional separate address for the node-to-node stream and the
    /// admin routes (which then leave the client address).
    #[arg(long, env = "DYNAMO_INTERNAL_LISTEN")]
    pub internal_listen: Option<SocketAddr>,
    /// Directory for RocksDB data.
    #[arg(long, env = "DYNAMO_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// This node's zone (failure domain).
    #[arg(long, env = "DYNAMO_ZONE", default_value = defaults::ZONE)]
    pub zone: Option<String>,
    /// A cluster member, `ID=HOST:PORT[,ZONE]` (repeatable; in the
    /// environment, space-separated). HOST:PORT is where that node serves
    /// internal routes. The list may include this node itself, giving the
    /// address others reach it at (when that differs from its listener).
    #[arg(long = "peer", env = "DYNAMO_PEERS", value_delimiter = ' ')]
    #[serde(default)]
    pub peers: Vec<String>,
    /// Replication factor N (at most the number of members).
    #[arg(long, env = "DYNAMO_N", default_value = text!(defaults::N))]
    pub n: Option<usize>,
    /// Read quorum R (at most N).
    #[arg(long, env = "DYNAMO_R", default_value = text!(defaults::R))]
    pub r: Option<usize>,
    /// Write quorum W (at most N).
    #[arg(long, env = "DYNAMO_W", default_value = text!(defaults::W))]
    pub w: Option<usize>,
    /// Number of ring partitions Q (power of two), fixed for the cluster.
    #[arg(long, env = "DYNAMO_PARTITIONS", default_value = text!(defaults::PARTITIONS))]
    pub partitions: Option<u32>,
    /// Largest accepted value in bytes.
    #[arg(long, env = "DYNAMO_MAX_VALUE_BYTES", default_value = text!(defaults::MAX_VALUE_BYTES))]
    pub max_value_bytes: Option<usize>,
    /// Timeout of one node-to-node request, in milliseconds.
    #[arg(long, env = "DYNAMO_REQUEST_TIMEOUT_MS", default_value = text!(defaults::REQUEST_TIMEOUT_MS))]
    pub request_timeout_ms: Option<u64>,
    /// fsync the write-ahead log before acknowledging each write.
    #[arg(long, env = "DYNAMO_FSYNC", default_value = text!(defaults::FSYNC))]
    pub fsync: Option<bool>,
    /// RocksDB block cache size in MiB.
    #[arg(long, env = "DYNAMO_BLOCK_CACHE_MB", default_value = text!(defaults::BLOCK_CACHE_MB))]
    pub block_cache_mb: Option<usize>,
    /// Threads serving requests (default: the CPUs this process may use).
    #[arg(long, env = "DYNAMO_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
    /// JSON ring document (as published by the operator) to start from;
    /// used when newer than the ring this node last persisted. The --peer
    /// list then only names seeds for gossip.
    #[arg(long, env = "DYNAMO_RING_FILE")]
    pub ring_file: Option<PathBuf>,
    /// Start outside the ring: the --peer list names seeds to learn the ring
    /// from, and the node serves as a member once an admin call or the
    /// operator adds it.
    #[arg(long, env = "DYNAMO_JOIN", num_args = 0..=1, default_missing_value = "true", default_value = text!(defaults::JOIN))]
    pub join: Option<bool>,
    /// `existing` (the default): a node starting on an empty data directory
    /// while its ring lists it as a member has lost its data, and receives
    /// every partition it owns from the other replicas before it answers
    /// reads for it. `new`: the cluster is being created, there is nothing
    /// to receive (give it to every node of a new cluster).
    #[arg(long, env = "DYNAMO_INITIAL_CLUSTER_STATE", value_enum, default_value = text!(defaults::INITIAL_CLUSTER_STATE))]
    pub initial_cluster_state: Option<ClusterState>,
    /// Directory of credentials: `admin-token`, `peer-token`, and client
    /// tokens (`client-token`, `clients.json`); no authentication when
    /// unset.
    #[arg(long, env = "DYNAMO_AUTH_DIR")]
    pub auth_dir: Option<PathBuf>,
    /// Directory with `tls.crt`, `tls.key` and `ca.crt`: serve HTTPS only
    /// and dial peers over TLS, checking them against `ca.crt`.
    #[arg(long, env = "DYNAMO_TLS_DIR")]
    pub tls_dir: Option<PathBuf>,
    /// Share of reads (0 to 1) that ask all N replicas and repair stale
    /// ones; the others ask R.
    #[arg(long, env = "DYNAMO_READ_REPAIR_CHANCE", default_value = text!(defaults::READ_REPAIR_CHANCE))]
    pub read_repair_chance: Option<f64>,
    /// Milliseconds between gossip rounds.
    #[arg(long, env = "DYNAMO_GOSSIP_INTERVAL_MS", default_value = text!(defaults::GOSSIP_INTERVAL_MS))]
    pub gossip_interval_ms: Option<u64>,
    /// Milliseconds between anti-entropy exchanges (each with one peer).
    #[arg(long, env = "DYNAMO_ANTI_ENTROPY_INTERVAL_MS", default_value = text!(defaults::ANTI_ENTROPY_INTERVAL_MS))]
    pub anti_entropy_interval_ms: Option<u64>,
    /// Most keys anti-entropy repairs per second.
    #[arg(long, env = "DYNAMO_ANTI_ENTROPY_KEYS_PER_SEC", default_value = text!(defaults::ANTI_ENTROPY_KEYS_PER_SEC))]
    pub anti_entropy_keys_per_sec: Option<u64>,
    /// Milliseconds between hinted-handoff passes.
    #[arg(long, env = "DYNAMO_HANDOFF_INTERVAL_MS", default_value = text!(defaults::HANDOFF_INTERVAL_MS))]
    pub handoff_interval_ms: Option<u64>,
    /// Most hinted keys delivered per second.
    #[arg(long, env = "DYNAMO_HANDOFF_KEYS_PER_SEC", default_value = text!(defaults::HANDOFF_KEYS_PER_SEC))]
    pub handoff_keys_per_sec: Option<u64>,
    /// Most keys per second received when streaming gained partitions.
    #[arg(long, env = "DYNAMO_TRANSFER_KEYS_PER_SEC", default_value = text!(defaults::TRANSFER_KEYS_PER_SEC))]
    pub transfer_keys_per_sec: Option<u64>,
    /// Seconds a tombstone is kept at least; it is purged once it is this
    /// old and every node confirms nothing it covers can still arrive.
    #[arg(long, env = "DYNAMO_TOMBSTONE_MIN_AGE_SECS", default_value = text!(defaults::TOMBSTONE_MIN_AGE_SECS))]
    pub tombstone_min_age_secs: Option<u64>,
    /// Seconds a member removed from the ring that cannot be reached keeps
    /// blocking tombstone purges (default 7 days).
    #[arg(long, env = "DYNAMO_TOMBSTONE_DEPARTED_WAIT_SECS", default_value = text!(defaults::TOMBSTONE_DEPARTED_WAIT_SECS))]
    pub tombstone_departed_wait_secs: Option<u64>,
    /// Milliseconds between scans of the tombstone index.
    #[arg(long, env = "DYNAMO_TOMBSTONE_SCAN_INTERVAL_MS", default_value = text!(defaults::TOMBSTONE_SCAN_INTERVAL_MS))]
    pub tombstone_scan_interval_ms: Option<u64>,
    /// Milliseconds a connection has to send a whole request head, from
    /// its accept or from the first byte of a later request.
    #[arg(long, env = "DYNAMO_HEADER_READ_TIMEOUT_MS", default_value = text!(defaults::HEADER_READ_TIMEOUT_MS))]
    pub header_read_timeout_ms: Option<u64>,
    /// Milliseconds a request has to send its whole body (then 408).
    #[arg(long, env = "DYNAMO_BODY_READ_TIMEOUT_MS", default_value = text!(defaults::BODY_READ_TIMEOUT_MS))]
    pub body_read_timeout_ms: Option<u64>,
    /// Milliseconds a keep-alive connection may sit idle between requests.
    #[arg(long, env = "DYNAMO_IDLE_TIMEOUT_MS", default_value = text!(defaults::IDLE_TIMEOUT_MS))]
    pub idle_timeout_ms: Option<u64>,
    /// Milliseconds a TLS handshake may take.
    #[arg(long, env = "DYNAMO_TLS_HANDSHAKE_TIMEOUT_MS", default_value = text!(defaults::TLS_HANDSHAKE_TIMEOUT_MS))]
    pub tls_handshake_timeout_ms: Option<u64>,
    /// Most open client connections; beyond them new connections may only
    /// open node-to-node streams.
    #[arg(long, env = "DYNAMO_MAX_CLIENT_CONNECTIONS", default_value = text!(defaults::MAX_CLIENT_CONNECTIONS))]
    pub max_client_connections: Option<usize>,
    /// Connections kept for node-to-node streams beyond the client ones.
    #[arg(long, env = "DYNAMO_MAX_PEER_CONNECTIONS", default_value = text!(defaults::MAX_PEER_CONNECTIONS))]
    pub max_peer_connections: Option<usize>,
    /// Most client requests in flight at once (then 503).
    #[arg(long, env = "DYNAMO_MAX_IN_FLIGHT_REQUESTS", default_value = text!(defaults::MAX_IN_FLIGHT_REQUESTS))]
    pub max_in_flight_requests: Option<usize>,
    /// Log lines as `text` (colour only on a terminal) or `json`.
    #[arg(long, env = "DYNAMO_LOG_FORMAT", value_enum, default_value = text!(defaults::LOG_FORMAT))]
    pub log_format: Option<LogFormat>,
    /// OTLP/HTTP endpoint to export trace spans to, a base URL such as
    /// `http://jaeger:4318` (spans go to its `/v1/traces`); without it, and
    /// without OpenTelemetry's `OTEL_EXPORTER_OTLP_ENDPOINT`, nothing is
    /// exported.
    #[arg(long, env = "DYNAMO_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// [`ServeArgs`] holding only what was given explicitly, by flag or
/// environment variable: clap fills unset flags in from their defaults,
/// which must not hide what the config file sets, so those values are
/// left out here (and applied by [`ServeArgs::resolve`] after the file).
#[derive(Debug)]
pub struct ExplicitServeArgs(pub ServeArgs);

impl FromArgMatches for ExplicitServeArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        ServeArgs::from_arg_matches(&without_defaults(matches)).map(Self)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(&without_defaults(matches))
    }
}

impl Args for ExplicitServeArgs {
    fn augment_args(command: clap::Command) -> clap::Command {
        ServeArgs::augment_args(command)
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        ServeArgs::augment_args_for_update(command)
    }
}

/// `matches` without the values clap took from the defaults.
fn without_defaults(matches: &ArgMatches) -> ArgMatches {
    let mut explicit = matches.clone();
    let defaulted = matches
        .ids()
        .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::DefaultValue));
    for id in defaulted {
        // The id comes from these very matches, so clearing it cannot fail.
        let _ = explicit.try_clear_id(id.as_str());
    }
    explicit
}

impl ServeArgs {
    /// Fills every unset field from `file`.
    fn or(self, file: ServeArgs) -> ServeArgs {
        ServeArgs {
            config: self.config,
            node_id: self.node_id.or(file.node_id),
            listen: self.listen.or(file.listen),
            internal_listen: self.internal_listen.or(file.internal_listen),
            data_dir: self.data_dir.or(file.data_dir),
            zone: self.zone.or(file.zone),
            peers: if self.peers.is_empty() {
                file.peers
            } else {
                self.peers
            },
            n: self.n.or(file.n),
            r: self.r.or(file.r),
            w: self.w.or(file.w),
            partitions: self.partitions.or(file.partitions),
            max_value_bytes: self.max_value_bytes.or(file.max_value_bytes),
            request_timeout_ms: self.request_timeout_ms.or(file.request_timeout_ms),
            fsync: self.fsync.or(file.fsync),
            block_cache_mb: self.block_cache_mb.or(file.block_cache_mb),
            worker_threads: self.worker_threads.or(file.worker_threads),
            ring_file: self.ring_file.or(file.ring_file),
            join: self.join.or(file.join),
            initial_cluster_state: self.initial_cluster_state.or(file.initial_cluster_state),
            read_repair_chance: self.read_repair_chance.or(file.read_repair_chance),
            auth_dir: self.auth_dir.or(file.auth_dir),
            tls_dir: self.tls_dir.or(file.tls_dir),
            gossip_interval_ms: self.gossip_interval_ms.or(file.gossip_interval_ms),
            anti_entropy_interval_ms: self
                .anti_entropy_interval_ms
                .or(file.anti_entropy_interval_ms),
            anti_entropy_keys_per_sec: self
                .anti_entropy_keys_per_sec
                .or(file.anti_entropy_keys_per_sec),
            handoff_interval_ms: self.handoff_interval_ms.or(file.handoff_interval_ms),
            handoff_keys_per_sec: self.handoff_keys_per_sec.or(file.handoff_keys_per_sec),
            transfer_keys_per_sec: self.transfer_keys_per_sec.or(file.transfer_keys_per_sec),
            tombstone_min_age_secs: self.tombstone_min_age_secs.or(file.tombstone_min_age_secs),
            tombstone_departed_wait_secs: self
                .tombstone_departed_wait_secs
                .or(file.tombstone_departed_wait_secs),
            tombstone_scan_interval_ms: self
                .tombstone_scan_interval_ms
                .or(file.tombstone_scan_interval_ms),
            header_read_timeout_ms: self.header_read_timeout_ms.or(file.header_read_timeout_ms),
            body_read_timeout_ms: self.body_read_timeout_ms.or(file.body_read_timeout_ms),
            idle_timeout_ms: self.idle_timeout_ms.or(file.idle_timeout_ms),
            tls_handshake_timeout_ms: self
                .tls_handshake_timeout_ms
                .or(file.tls_handshake_timeout_ms),
            max_client_connections: self.max_client_connections.or(file.max_client_connections),
            max_peer_connections: self.max_peer_connections.or(file.max_peer_connections),
            max_in_flight_requests: self.max_in_flight_requests.or(file.max_in_flight_requests),
            log_format: self.log_format.or(file.log_format),
            otlp_endpoint: self.otlp_endpoint.or(file.otlp_endpoint),
        }
    }

    /// Layers the config file under the flags and validates the result.
    pub fn resolve(self) -> anyhow::Result<NodeConfig> {
        self.with_file()?.validate()
    }

    /// Layers the config file, if any, under the flags (unvalidated: the
    /// logger reads the node id and log format from these before the
    /// rest is checked, so that checking can log).
    pub fn with_file(self) -> anyhow::Result<ServeArgs> {
        match &self.config {
            Some(path) => {
                let file = read_file(path)?;
                Ok(self.or(file))
            }
            None => Ok(self),
        }
    }

    /// Validates settings already layered with the file.
    pub fn validate(self) -> anyhow::Result<NodeConfig> {
        NodeConfig::from_args(self)
    }
}

fn read_file(path: &Path) -> anyhow::Result<ServeArgs> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use clap::Command;

    use super::*;

    /// `dynamo-node serve`'s command, as the binary builds it.
    fn serve_command() -> Command {
        ExplicitServeArgs::augment_args(Command::new("serve"))
    }

    fn parse(args: &[&str]) -> ServeArgs {
        let matches = serve_command()
            .try_get_matches_from(std::iter::once("serve").chain(args.iter().copied()))
            .unwrap();
        ExplicitServeArgs::from_arg_matches(&matches).unwrap().0
    }

    #[test]
    fn clap_defaults_leave_the_config_file_its_say() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "node-id = \"a\"\ndata-dir = \"/d\"\nlisten = \"127.0.0.1:9\"\ngossip-interval-ms = 7\n",
        )
        .unwrap();
        let config = path.to_str().unwrap();
        let from_file = parse(&["--config", config]);
        assert_eq!(from_file.listen, None, "clap's default is left out");
        let cfg = from_file.resolve().unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:9".parse().unwrap());
        assert_eq!(cfg.maintenance.gossip_interval.as_millis(), 7);
        assert_eq!(cfg.request_timeout.as_millis(), 2000, "the default applies");
        let cfg = parse(&["--config", config, "--gossip-interval-ms", "1000"])
            .resolve()
            .unwrap();
        assert_eq!(
            cfg.maintenance.gossip_interval.as_millis(),
            1000,
            "a flag beats the file, even when it repeats the default"
        );
    }

    /// One row of the README's table of `serve` settings.
    #[derive(Debug)]
    struct Row {
        flag: String,
        env: String,
        file_key: String,
        default: String,
    }

    /// The text between the first two backticks of a table cell.
    fn code(cell: &str) -> &str {
        cell.split('`').nth(1).unwrap_or("")
    }

    /// The rows of the README's settings table (the one whose header names
    /// the flag, environment, file key and default).
    fn readme_settings() -> Vec<Row> {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));
        readme
            .lines()
            .skip_while(|line| !line.starts_with("| flag | environment | file key | default |"))
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let default = cells[4].replace('`', "");
                let default = default.split(" (").next().unwrap_or("").trim();
                Row {
                    flag: code(cells[1]).split(' ').next().unwrap_or("").to_string(),
                    env: code(cells[2]).to_string(),
                    file_key: code(cells[3]).to_string(),
                    default: default.to_string(),
                }
            })
            .collect()
    }

    #[test]
    fn the_readme_lists_every_flag_with_its_environment_variable_file_key_and_default() {
        let command = serve_command();
        let rows = readme_settings();
        assert!(!rows.is_empty(), "no settings table in the README");
        for row in &rows {
            let arg = command
                .get_arguments()
                .find(|a| a.get_long().is_some_and(|l| format!("--{l}") == row.flag))
                .unwrap_or_else(|| panic!("the README lists {}, which serve lacks", row.flag));
            let env = arg.get_env().and_then(|e| e.to_str()).unwrap_or("");
            assert_eq!(row.env, env, "environment variable of {}", row.flag);
            // The file's keys are the fields' names in kebab-case, as are
            // clap's ids; the file cannot name another file.
            let file_key = match arg.get_id().as_str() {
                "config" => String::new(),
                id => id.replace('_', "-"),
            };
            assert_eq!(row.file_key, file_key, "file key of {}", row.flag);
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            match defaults.as_slice() {
                [default] => assert_eq!(&row.default, default, "default of {}", row.flag),
                [] => assert!(
                    ["", "required", "none"].contains(&row.default.as_str())
                        || row.default.contains(' '),
                    "the README gives {} the default {:?}, which clap lacks",
                    row.flag,
                    row.default
                ),
                _ => panic!("{} has several defaults", row.flag),
            }
        }
        for arg in command.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                let flag = format!("--{long}");
                assert!(
                    rows.iter().any(|r| r.flag == flag),
                    "{flag} is missing from the README's settings table"
                );
            }
        }
    }
}
