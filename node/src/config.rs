//! Node configuration: command-line flags, `DYNAMO_*` environment variables
//! and an optional TOML file, in that order of precedence.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use dynamo_ring::{Member, Ring, RingDocument};
use serde::Deserialize;

/// Default replication factor N.
pub const DEFAULT_N: usize = 3;
/// Default read quorum R.
pub const DEFAULT_R: usize = 2;
/// Default write quorum W.
pub const DEFAULT_W: usize = 2;
/// Default number of ring partitions Q.
pub const DEFAULT_PARTITIONS: u32 = 1024;
/// Zone of a node or peer that names none.
pub const DEFAULT_ZONE: &str = "default";
/// Default largest accepted value.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1 << 20;

/// `dynamo-node serve` settings as given by the user. Every field is
/// optional here so that flags, environment and file can be layered.
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
    #[arg(long, env = "DYNAMO_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Optional separate address for node-to-node routes.
    #[arg(long, env = "DYNAMO_INTERNAL_LISTEN")]
    pub internal_listen: Option<SocketAddr>,
    /// Directory for RocksDB data.
    #[arg(long, env = "DYNAMO_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// This node's zone (failure domain).
    #[arg(long, env = "DYNAMO_ZONE")]
    pub zone: Option<String>,
    /// A cluster member, `ID=HOST:PORT[,ZONE]` (repeatable; in the
    /// environment, space-separated). HOST:PORT is where that node serves
    /// internal routes. The list may include this node itself, giving the
    /// address others reach it at (when that differs from its listener).
    #[arg(long = "peer", env = "DYNAMO_PEERS", value_delimiter = ' ')]
    #[serde(default)]
    pub peers: Vec<String>,
    /// Replication factor N.
    #[arg(long, env = "DYNAMO_N")]
    pub n: Option<usize>,
    /// Read quorum R.
    #[arg(long, env = "DYNAMO_R")]
    pub r: Option<usize>,
    /// Write quorum W.
    #[arg(long, env = "DYNAMO_W")]
    pub w: Option<usize>,
    /// Number of ring partitions Q (power of two), fixed for the cluster.
    #[arg(long, env = "DYNAMO_PARTITIONS")]
    pub partitions: Option<u32>,
    /// Largest accepted value in bytes.
    #[arg(long, env = "DYNAMO_MAX_VALUE_BYTES")]
    pub max_value_bytes: Option<usize>,
    /// Timeout of one node-to-node request, in milliseconds.
    #[arg(long, env = "DYNAMO_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// fsync the write-ahead log before acknowledging each write.
    #[arg(long, env = "DYNAMO_FSYNC")]
    pub fsync: Option<bool>,
    /// RocksDB block cache size in MiB.
    #[arg(long, env = "DYNAMO_BLOCK_CACHE_MB")]
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
    #[arg(long, env = "DYNAMO_JOIN", num_args = 0..=1, default_missing_value = "true")]
    pub join: Option<bool>,
    /// Directory holding the bearer token (file `token`) that clients and
    /// peers must present; no authentication when unset.
    #[arg(long, env = "DYNAMO_AUTH_DIR")]
    pub auth_dir: Option<PathBuf>,
    /// Directory with `tls.crt`, `tls.key` and `ca.crt`: serve HTTPS only
    /// and dial peers over TLS, checking them against `ca.crt`.
    #[arg(long, env = "DYNAMO_TLS_DIR")]
    pub tls_dir: Option<PathBuf>,
    /// Share of reads (0 to 1) that ask all N replicas and repair stale
    /// ones; the others ask R.
    #[arg(long, env = "DYNAMO_READ_REPAIR_CHANCE")]
    pub read_repair_chance: Option<f64>,
    /// Milliseconds between gossip rounds.
    #[arg(long, env = "DYNAMO_GOSSIP_INTERVAL_MS")]
    pub gossip_interval_ms: Option<u64>,
    /// Milliseconds between anti-entropy exchanges (each with one peer).
    #[arg(long, env = "DYNAMO_ANTI_ENTROPY_INTERVAL_MS")]
    pub anti_entropy_interval_ms: Option<u64>,
    /// Most keys anti-entropy repairs per second.
    #[arg(long, env = "DYNAMO_ANTI_ENTROPY_KEYS_PER_SEC")]
    pub anti_entropy_keys_per_sec: Option<u64>,
    /// Milliseconds between hinted-handoff passes.
    #[arg(long, env = "DYNAMO_HANDOFF_INTERVAL_MS")]
    pub handoff_interval_ms: Option<u64>,
    /// Most hinted keys delivered per second.
    #[arg(long, env = "DYNAMO_HANDOFF_KEYS_PER_SEC")]
    pub handoff_keys_per_sec: Option<u64>,
    /// Most keys per second received when streaming gained partitions.
    #[arg(long, env = "DYNAMO_TRANSFER_KEYS_PER_SEC")]
    pub transfer_keys_per_sec: Option<u64>,
    /// Seconds a tombstone is kept at least; it is purged once it is this
    /// old and every node confirms nothing it covers can still arrive.
    #[arg(long, env = "DYNAMO_TOMBSTONE_MIN_AGE_SECS")]
    pub tombstone_min_age_secs: Option<u64>,
    /// Seconds a member removed from the ring that cannot be reached keeps
    /// blocking tombstone purges (default 7 days).
    #[arg(long, env = "DYNAMO_TOMBSTONE_DEPARTED_WAIT_SECS")]
    pub tombstone_departed_wait_secs: Option<u64>,
    /// Milliseconds between scans of the tombstone index.
    #[arg(long, env = "DYNAMO_TOMBSTONE_SCAN_INTERVAL_MS")]
    pub tombstone_scan_interval_ms: Option<u64>,
}

/// Pacing of the background work (gossip, handoff, anti-entropy, transfer,
/// tombstone purging); all of it yields to client requests through these
/// rate limits.
#[derive(Clone, Debug)]
pub struct Background {
    /// Between gossip rounds.
    pub gossip_interval: Duration,
    /// Between anti-entropy exchanges.
    pub anti_entropy_interval: Duration,
    /// Anti-entropy repair rate.
    pub anti_entropy_keys_per_sec: u64,
    /// Between handoff passes.
    pub handoff_interval: Duration,
    /// Handoff delivery rate.
    pub handoff_keys_per_sec: u64,
    /// Partition streaming rate.
    pub transfer_keys_per_sec: u64,
    /// Tombstone purge policy.
    pub tombstones: crate::tombstones::TombstonePolicy,
    /// Between tombstone index scans.
    pub tombstone_scan_interval: Duration,
}

/// One known cluster member and where to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Ring identity.
    pub member: Member,
    /// `HOST:PORT` of its internal routes.
    pub address: String,
}

/// Validated node configuration.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node.
    pub node_id: String,
    /// This node's zone.
    pub zone: String,
    /// Client (and by default internal) listen address.
    pub listen: SocketAddr,
    /// Separate internal listen address, if any.
    pub internal_listen: Option<SocketAddr>,
    /// RocksDB directory.
    pub data_dir: PathBuf,
    /// The members given with --peer, sorted by id: the initial ring's
    /// members (with this node, unless joining), or seeds when a ring file
    /// or --join is used.
    pub peers: Vec<Peer>,
    /// The ring document read from --ring-file, if the file exists.
    pub ring_document: Option<RingDocument>,
    /// Whether the node starts outside the ring.
    pub join: bool,
    /// Share of reads that ask all N replicas.
    pub read_repair_chance: f64,
    /// Bearer token required from clients and peers, if any.
    pub auth_token: Option<std::sync::Arc<str>>,
    /// TLS for listeners and peers, if any.
    pub tls: Option<crate::tls::Tls>,
    /// This node's own internal address.
    pub address: String,
    /// Replication factor.
    pub n: usize,
    /// Default read quorum.
    pub r: usize,
    /// Default write quorum.
    pub w: usize,
    /// Ring partitions.
    pub partitions: u32,
    /// Largest accepted value.
    pub max_value_bytes: usize,
    /// Timeout of one node-to-node request.
    pub request_timeout: Duration,
    /// fsync per write.
    pub fsync: bool,
    /// Block cache in bytes.
    pub block_cache_bytes: usize,
    /// Request-serving threads.
    pub worker_threads: usize,
    /// Background work pacing.
    pub background: Background,
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
        }
    }

    /// Layers the config file under the flags and validates the result.
    pub fn resolve(self) -> anyhow::Result<NodeConfig> {
        let args = match &self.config {
            Some(path) => {
                let file = read_file(path)?;
                self.or(file)
            }
            None => self,
        };
        NodeConfig::from_args(args)
    }
}

fn read_file(path: &Path) -> anyhow::Result<ServeArgs> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

impl NodeConfig {
    fn from_args(args: ServeArgs) -> anyhow::Result<NodeConfig> {
        let node_id = args.node_id.context("--node-id is required")?;
        validate_id(&node_id)?;
        let listen = args
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7000)));
        let data_dir = args.data_dir.context("--data-dir is required")?;

        let mut peers: Vec<Peer> = Vec::new();
        let mut listed_zone = None;
        let mut listed_address = None;
        for spec in &args.peers {
            let (peer, explicit_zone) = parse_peer_spec(spec)?;
            if peers.iter().any(|p| p.member.id == peer.member.id)
                || listed_zone.is_some() && peer.member.id == node_id
            {
                bail!("peer {} is listed twice", peer.member.id);
            }
            if peer.member.id == node_id {
                listed_zone = Some(explicit_zone);
                listed_address = Some(peer.address);
            } else {
                peers.push(peer);
            }
        }
        let zone = match (args.zone, listed_zone.flatten()) {
            (Some(flag), Some(listed)) if flag != listed => {
                bail!("--peer lists this node ({node_id}) in zone {listed} but --zone is {flag}")
            }
            (Some(zone), _) | (None, Some(zone)) => zone,
            (None, None) => DEFAULT_ZONE.to_string(),
        };
        // Others reach this node at the address the peer list gives it, if
        // it lists this node, else at its internal (or client) listener.
        let self_address =
            listed_address.unwrap_or_else(|| args.internal_listen.unwrap_or(listen).to_string());
        let join = args.join.unwrap_or(false);
        if !join {
            peers.push(Peer {
                member: Member {
                    id: node_id.clone(),
                    zone: zone.clone(),
                },
                address: self_address.clone(),
            });
        }
        peers.sort_by(|a, b| a.member.id.cmp(&b.member.id));
        if join && peers.is_empty() {
            bail!("--join needs at least one --peer to learn the ring from");
        }

        let ring_document = match &args.ring_file {
            Some(path) if path.exists() => Some(read_ring_file(path)?),
            _ => None,
        };
        if let Some(doc) = &ring_document {
            let ring = &doc.ring;
            if args.n.is_some_and(|n| n != ring.replication) {
                bail!(
                    "--n is {} but the ring file replicates {} times",
                    args.n.unwrap_or_default(),
                    ring.replication
                );
            }
            if args.partitions.is_some_and(|q| q != ring.partitions) {
                bail!(
                    "--partitions is {} but the ring file has {} partitions",
                    args.partitions.unwrap_or_default(),
                    ring.partitions
                );
            }
        }
        let n = args
            .n
            .or(ring_document.as_ref().map(|d| d.ring.replication))
            .unwrap_or(DEFAULT_N.min(peers.len().max(1)));
        let r = args.r.unwrap_or(DEFAULT_R.min(n));
        let w = args.w.unwrap_or(DEFAULT_W.min(n));
        if n == 0 || (args.ring_file.is_none() && n > peers.len()) {
            bail!(
                "n={n} must be between 1 and the number of members ({})",
                peers.len()
            );
        }
        if r == 0 || r > n {
            bail!("r={r} must be between 1 and n={n}");
        }
        if w == 0 || w > n {
            bail!("w={w} must be between 1 and n={n}");
        }
        let partitions = args
            .partitions
            .or(ring_document.as_ref().map(|d| d.ring.partitions))
            .unwrap_or(DEFAULT_PARTITIONS);
        let max_value_bytes = args.max_value_bytes.unwrap_or(DEFAULT_MAX_VALUE_BYTES);
        if max_value_bytes == 0 {
            bail!("max-value-bytes must be positive");
        }
        Ok(NodeConfig {
            node_id,
            zone,
            listen,
            internal_listen: args.internal_listen,
            data_dir,
            peers,
            n,
            r,
            w,
            partitions,
            max_value_bytes,
            request_timeout: Duration::from_millis(args.request_timeout_ms.unwrap_or(2000).max(1)),
            fsync: args.fsync.unwrap_or(false),
            block_cache_bytes: args.block_cache_mb.unwrap_or(64) << 20,
            worker_threads: match args.worker_threads {
                Some(0) => bail!("worker-threads must be at least 1"),
                Some(threads) => threads,
                None => available_cpus(),
            },
            ring_document,
            join,
            auth_token: args.auth_dir.as_deref().map(read_token).transpose()?,
            tls: args
                .tls_dir
                .as_deref()
                .map(crate::tls::Tls::load)
                .transpose()?,
            read_repair_chance: match args.read_repair_chance.unwrap_or(0.1) {
                chance if (0.0..=1.0).contains(&chance) => chance,
                chance => bail!("read-repair-chance={chance} must be between 0 and 1"),
            },
            address: self_address,
            background: Background {
                gossip_interval: millis(args.gossip_interval_ms, 1000),
                anti_entropy_interval: millis(args.anti_entropy_interval_ms, 10_000),
                anti_entropy_keys_per_sec: args.anti_entropy_keys_per_sec.unwrap_or(2000),
                handoff_interval: millis(args.handoff_interval_ms, 1000),
                handoff_keys_per_sec: args.handoff_keys_per_sec.unwrap_or(2000),
                transfer_keys_per_sec: args.transfer_keys_per_sec.unwrap_or(5000),
                tombstones: crate::tombstones::TombstonePolicy {
                    min_age: Duration::from_secs(args.tombstone_min_age_secs.unwrap_or(3600)),
                    departed_wait: Duration::from_secs(
                        args.tombstone_departed_wait_secs.unwrap_or(7 * 86_400),
                    ),
                },
                tombstone_scan_interval: millis(args.tombstone_scan_interval_ms, 60_000),
            },
        })
    }

    /// How this node dials peers: its request timeout, and its own
    /// internal IP as the source address unless it listens on all
    /// interfaces.
    pub fn dialing(&self) -> crate::transport::Dialing {
        let ip = self.internal_listen.unwrap_or(self.listen).ip();
        crate::transport::Dialing {
            timeout: self.request_timeout,
            source: (!ip.is_unspecified()).then_some(ip),
            token: self.auth_token.clone(),
            tls: self.tls.as_ref().map(|t| t.connector.clone()),
        }
    }

    /// The ring this node starts from: the ring file when given and
    /// present, else a fresh ring (epoch 1) of the --peer members.
    pub fn initial_ring(&self) -> anyhow::Result<RingDocument> {
        if let Some(doc) = &self.ring_document {
            return Ok(doc.clone());
        }
        let members = self.peers.iter().map(|p| p.member.clone()).collect();
        let ring = Ring::build(members, self.n, self.partitions).context("building the ring")?;
        let addresses = self
            .peers
            .iter()
            .map(|p| (p.member.id.clone(), p.address.clone()))
            .collect();
        Ok(RingDocument { ring, addresses })
    }
}

/// Reads the bearer token from `dir/token`.
fn read_token(dir: &Path) -> anyhow::Result<std::sync::Arc<str>> {
    let path = dir.join("token");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the auth token {}", path.display()))?;
    let token = text.trim();
    if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!(
            "the auth token in {} must be one non-empty word",
            path.display()
        );
    }
    Ok(token.into())
}

/// Reads and validates a ring document file.
fn read_ring_file(path: &Path) -> anyhow::Result<RingDocument> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading ring file {}", path.display()))?;
    let doc: RingDocument = serde_json::from_str(&text)
        .with_context(|| format!("parsing ring file {}", path.display()))?;
    doc.validate()
        .with_context(|| format!("ring file {}", path.display()))?;
    Ok(doc)
}

/// A duration in milliseconds, with a default; at least 1 ms.
fn millis(value: Option<u64>, default: u64) -> Duration {
    Duration::from_millis(value.unwrap_or(default).max(1))
}

/// CPUs this process may use (respects affinity and cgroup quotas).
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn validate_id(id: &str) -> anyhow::Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 253
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        bail!("node id {id:?} must be 1-253 characters of letters, digits, '-', '_' or '.'");
    }
    Ok(())
}

/// Parses `ID=HOST:PORT[,ZONE]`; also says whether the zone was given.
fn parse_peer_spec(spec: &str) -> anyhow::Result<(Peer, Option<String>)> {
    let (id, rest) = spec
        .split_once('=')
        .with_context(|| format!("peer {spec:?} must look like ID=HOST:PORT[,ZONE]"))?;
    validate_id(id)?;
    let (address, zone) = match rest.split_once(',') {
        Some((address, zone)) => (address, Some(zone.to_string())),
        None => (rest, None),
    };
    let valid_address = address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !valid_address {
        bail!("peer {spec:?}: address {address:?} must be HOST:PORT");
    }
    if zone.as_deref() == Some("") {
        bail!("peer {spec:?}: zone is empty");
    }
    let peer = Peer {
        member: Member {
            id: id.to_string(),
            zone: zone.clone().unwrap_or_else(|| DEFAULT_ZONE.to_string()),
        },
        address: address.to_string(),
    };
    Ok((peer, zone))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(peers: &[&str]) -> ServeArgs {
        ServeArgs {
            node_id: Some("a".into()),
            data_dir: Some("/tmp/x".into()),
            zone: Some("z1".into()),
            peers: peers.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn peers_include_self_and_defaults_follow_member_count() {
        let cfg = args(&["b=127.0.0.1:2,z2", "a=127.0.0.1:1,z1"])
            .resolve()
            .unwrap();
        assert_eq!(cfg.peers.len(), 2);
        assert_eq!((cfg.n, cfg.r, cfg.w), (2, 2, 2));
        assert_eq!(
            cfg.peers[0].member,
            Member {
                id: "a".into(),
                zone: "z1".into()
            }
        );
        let single = args(&[]).resolve().unwrap();
        assert_eq!((single.n, single.r, single.w), (1, 1, 1));
    }

    #[test]
    fn a_ring_file_sets_n_and_q_and_peers_become_seeds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring.json");
        let members = vec![Member::new("a", "z1"), Member::new("b", "z2")];
        let ring = Ring::build(members, 2, 16).unwrap();
        let addresses = [("a", "h:1"), ("b", "h:2")]
            .iter()
            .map(|(id, a)| (id.to_string(), a.to_string()))
            .collect();
        let doc = RingDocument { ring, addresses };
        std::fs::write(&path, serde_json::to_string(&doc).unwrap()).unwrap();
        let mut from_file = args(&[]);
        from_file.ring_file = Some(path.clone());
        let cfg = from_file.clone().resolve().unwrap();
        assert_eq!((cfg.n, cfg.r, cfg.w, cfg.partitions), (2, 2, 2, 16));
        assert_eq!(cfg.initial_ring().unwrap(), doc);
        let mut wrong_n = from_file.clone();
        wrong_n.n = Some(3);
        assert!(wrong_n.resolve().is_err());
        let mut wrong_q = from_file;
        wrong_q.partitions = Some(32);
        assert!(wrong_q.resolve().is_err());
        std::fs::write(&path, "{").unwrap();
        let mut broken = args(&[]);
        broken.ring_file = Some(path);
        assert!(broken.resolve().is_err());
    }

    #[test]
    fn joining_leaves_this_node_out_of_the_initial_ring() {
        let mut joining = args(&["b=h:1,z2", "c=h:2,z3", "a=h:9,z1"]);
        joining.join = Some(true);
        let cfg = joining.resolve().unwrap();
        let ring = cfg.initial_ring().unwrap();
        assert!(ring.ring.member("a").is_none());
        assert_eq!(cfg.address, "h:9", "advertised from the peer list");
        let mut alone = args(&[]);
        alone.join = Some(true);
        assert!(alone.resolve().is_err(), "joining needs seeds");
    }

    #[test]
    fn rejects_bad_input() {
        assert!(args(&["b"]).resolve().is_err());
        assert!(args(&["b=nohost"]).resolve().is_err());
        assert!(args(&["b=h:1", "b=h:2"]).resolve().is_err());
        assert!(args(&["a=h:1,z9"]).resolve().is_err());
        let mut too_big = args(&["b=h:1"]);
        too_big.n = Some(3);
        assert!(too_big.resolve().is_err());
        let mut bad_r = args(&["b=h:1"]);
        bad_r.r = Some(0);
        assert!(bad_r.resolve().is_err());
        let mut missing = args(&[]);
        missing.node_id = None;
        assert!(missing.resolve().is_err());
    }

    #[test]
    fn file_fills_unset_fields_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "node-id = \"file\"\nzone = \"zf\"\nn = 1\npeers = [\"b=h:1,zb\"]\ndata-dir = \"/d\"\n",
        )
        .unwrap();
        let cli = ServeArgs {
            config: Some(path.clone()),
            zone: Some("zc".into()),
            ..Default::default()
        };
        let cfg = cli.resolve().unwrap();
        assert_eq!(cfg.node_id, "file");
        assert_eq!(cfg.zone, "zc");
        assert_eq!(cfg.n, 1);
        assert_eq!(cfg.peers.len(), 2);
        std::fs::write(&path, "bogus-key = 1\n").unwrap();
        let err = ServeArgs {
            config: Some(path),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(format!("{err:#}").contains("bogus-key"));
    }
}
