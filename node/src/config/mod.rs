//! Node configuration: the `serve` settings (see [`ServeArgs`] for where
//! they come from and [`defaults`] for their defaults), validated into a
//! [`NodeConfig`].
//!
//! Configuration is read by every layer, so it imports none of them: the
//! settings of each layer (its pacing, the tombstone policy) are defined
//! here, and the layers take them from here.

mod args;
pub mod defaults;
mod limits;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use dynamo_ring::{Member, Ring, RingDocument};

use crate::peer::Peer;
pub use args::{ExplicitServeArgs, ServeArgs};
pub use limits::ConnectionLimits;

/// How often a task runs, and how many keys a second it may move.
#[derive(Clone, Copy, Debug)]
pub struct Pacing {
    /// Between rounds.
    pub interval: Duration,
    /// Most keys moved per second.
    pub keys_per_sec: u64,
}

/// Intervals and rate limits of the maintenance work (gossip, handoff,
/// anti-entropy, transfer, tombstone purging); all of it yields to client
/// requests through these rate limits.
#[derive(Clone, Debug)]
pub struct Maintenance {
    /// Between gossip rounds.
    pub gossip_interval: Duration,
    /// Hinted handoff.
    pub handoff: Pacing,
    /// Anti-entropy exchanges.
    pub anti_entropy: Pacing,
    /// Partition streaming rate.
    pub transfer_keys_per_sec: u64,
    /// Between tombstone index scans.
    pub tombstone_scan_interval: Duration,
    /// Tombstone purge policy.
    pub tombstones: TombstonePolicy,
}

/// When tombstones may go.
#[derive(Clone, Copy, Debug)]
pub struct TombstonePolicy {
    /// Youngest tombstone purged.
    pub min_age: Duration,
    /// How long a member removed from the ring that cannot be reached keeps
    /// blocking purges (it may hold hints written before a delete).
    pub departed_wait: Duration,
}

/// What an empty data directory means for a node its ring lists as a
/// member (`--initial-cluster-state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterState {
    /// The cluster is being created: nothing exists to receive.
    New,
    /// The cluster exists: the node lost its data and rebuilds it from the
    /// other replicas.
    Existing,
}

impl std::fmt::Display for ClusterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::New => "new",
            Self::Existing => "existing",
        })
    }
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
    /// The ring document read from --ring-file, if given.
    pub ring_document: Option<RingDocument>,
    /// Whether the node starts outside the ring.
    pub join: bool,
    /// Whether an empty data directory means lost data (see
    /// [`ClusterState`]).
    pub initial_cluster_state: ClusterState,
    /// Share of reads that ask all N replicas.
    pub read_repair_chance: f64,
    /// The tokens clients, administrators and peers must present, if any.
    pub credentials: Option<std::sync::Arc<crate::credentials::Credentials>>,
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
    /// Maintenance work pacing.
    pub maintenance: Maintenance,
    /// Timeouts and caps of the HTTP listeners.
    pub connections: ConnectionLimits,
}

impl NodeConfig {
    fn from_args(args: ServeArgs) -> anyhow::Result<NodeConfig> {
        let node_id = args.node_id.clone().context("--node-id is required")?;
        validate_id(&node_id)?;
        let listen = args.listen.unwrap_or(defaults::LISTEN);
        let data_dir = args.data_dir.clone().context("--data-dir is required")?;
        let members = Members::from_args(&args, &node_id, listen)?;
        let ring_document = read_ring_document(&args)?;
        let (n, r, w) = quorums(&args, ring_document.as_ref(), members.peers.len())?;
        let partitions = args
            .partitions
            .or(ring_document.as_ref().map(|d| d.ring.partitions))
            .unwrap_or(defaults::PARTITIONS);
        let max_value_bytes = args.max_value_bytes.unwrap_or(defaults::MAX_VALUE_BYTES);
        // A key holds at least three concurrent versions of the largest value.
        let largest = crate::version::MAX_OBJECT_BYTES / 4;
        if !(1..=largest).contains(&max_value_bytes) {
            bail!("max-value-bytes={max_value_bytes} must be from 1 to {largest}");
        }
        Ok(NodeConfig {
            node_id,
            zone: members.zone,
            listen,
            internal_listen: args.internal_listen,
            data_dir,
            peers: members.peers,
            n,
            r,
            w,
            partitions,
            max_value_bytes,
            request_timeout: millis(args.request_timeout_ms, defaults::REQUEST_TIMEOUT_MS),
            fsync: args.fsync.unwrap_or(defaults::FSYNC),
            block_cache_bytes: args.block_cache_mb.unwrap_or(defaults::BLOCK_CACHE_MB) << 20,
            worker_threads: match args.worker_threads {
                Some(0) => bail!("worker-threads must be at least 1"),
                Some(threads) => threads,
                None => available_cpus(),
            },
            ring_document,
            join: members.join,
            initial_cluster_state: args
                .initial_cluster_state
                .unwrap_or(defaults::INITIAL_CLUSTER_STATE),
            credentials: args
                .auth_dir
                .as_deref()
                .map(crate::credentials::Credentials::load)
                .transpose()?
                .map(std::sync::Arc::new),
            tls: args
                .tls_dir
                .as_deref()
                .map(crate::tls::Tls::load)
                .transpose()?,
            read_repair_chance: match args
                .read_repair_chance
                .unwrap_or(defaults::READ_REPAIR_CHANCE)
            {
                chance if (0.0..=1.0).contains(&chance) => chance,
                chance => bail!("read-repair-chance={chance} must be between 0 and 1"),
            },
            address: members.self_address,
            maintenance: Maintenance::from_args(&args),
            connections: ConnectionLimits::from_args(&args)?,
        })
    }

    /// The ring this node starts from: the ring file when given, else a
    /// fresh ring (epoch 1) of the --peer members.
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

/// The cluster members as the settings give them.
struct Members {
    /// The --peer members sorted by id, with this node unless it joins.
    peers: Vec<Peer>,
    /// This node's zone.
    zone: String,
    /// The address other nodes reach this node at.
    self_address: String,
    /// Whether the node starts outside the ring.
    join: bool,
}

impl Members {
    /// Parses the --peer list of node `node_id`, which listens on `listen`.
    fn from_args(args: &ServeArgs, node_id: &str, listen: SocketAddr) -> anyhow::Result<Self> {
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
        let zone = match (args.zone.clone(), listed_zone.flatten()) {
            (Some(flag), Some(listed)) if flag != listed => {
                bail!("--peer lists this node ({node_id}) in zone {listed} but --zone is {flag}")
            }
            (Some(zone), _) | (None, Some(zone)) => zone,
            (None, None) => defaults::ZONE.to_string(),
        };
        // Others reach this node at the address the peer list gives it, if
        // it lists this node, else at its internal (or client) listener.
        let self_address =
            listed_address.unwrap_or_else(|| args.internal_listen.unwrap_or(listen).to_string());
        let join = args.join.unwrap_or(defaults::JOIN);
        if !join {
            peers.push(Peer {
                member: Member {
                    id: node_id.to_string(),
                    zone: zone.clone(),
                },
                address: self_address.clone(),
            });
        }
        peers.sort_by(|a, b| a.member.id.cmp(&b.member.id));
        if join && peers.is_empty() {
            bail!("--join needs at least one --peer to learn the ring from");
        }
        Ok(Self {
            peers,
            zone,
            self_address,
            join,
        })
    }
}

/// The ring document of --ring-file, if given, checked against --n and
/// --partitions.
fn read_ring_document(args: &ServeArgs) -> anyhow::Result<Option<RingDocument>> {
    let ring_document = args.ring_file.as_deref().map(read_ring_file).transpose()?;
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
    Ok(ring_document)
}

/// N, R and W: as set, else N from the ring file or the default capped at
/// the member count, and R and W defaults capped at N.
fn quorums(
    args: &ServeArgs,
    ring_document: Option<&RingDocument>,
    members: usize,
) -> anyhow::Result<(usize, usize, usize)> {
    let n = args
        .n
        .or(ring_document.map(|d| d.ring.replication))
        .unwrap_or(defaults::N.min(members.max(1)));
    let r = args.r.unwrap_or(defaults::R.min(n));
    let w = args.w.unwrap_or(defaults::W.min(n));
    if n == 0 || (args.ring_file.is_none() && n > members) {
        bail!("n={n} must be between 1 and the number of members ({members})");
    }
    if r == 0 || r > n {
        bail!("r={r} must be between 1 and n={n}");
    }
    if w == 0 || w > n {
        bail!("w={w} must be between 1 and n={n}");
    }
    Ok((n, r, w))
}

impl Maintenance {
    /// The maintenance settings, defaults filled in.
    fn from_args(args: &ServeArgs) -> Self {
        let secs = |value: Option<u64>, default| Duration::from_secs(value.unwrap_or(default));
        Maintenance {
            gossip_interval: millis(args.gossip_interval_ms, defaults::GOSSIP_INTERVAL_MS),
            handoff: Pacing {
                interval: millis(args.handoff_interval_ms, defaults::HANDOFF_INTERVAL_MS),
                keys_per_sec: args
                    .handoff_keys_per_sec
                    .unwrap_or(defaults::HANDOFF_KEYS_PER_SEC),
            },
            anti_entropy: Pacing {
                interval: millis(
                    args.anti_entropy_interval_ms,
                    defaults::ANTI_ENTROPY_INTERVAL_MS,
                ),
                keys_per_sec: args
                    .anti_entropy_keys_per_sec
                    .unwrap_or(defaults::ANTI_ENTROPY_KEYS_PER_SEC),
            },
            transfer_keys_per_sec: args
                .transfer_keys_per_sec
                .unwrap_or(defaults::TRANSFER_KEYS_PER_SEC),
            tombstone_scan_interval: millis(
                args.tombstone_scan_interval_ms,
                defaults::TOMBSTONE_SCAN_INTERVAL_MS,
            ),
            tombstones: TombstonePolicy {
                min_age: secs(
                    args.tombstone_min_age_secs,
                    defaults::TOMBSTONE_MIN_AGE_SECS,
                ),
                departed_wait: secs(
                    args.tombstone_departed_wait_secs,
                    defaults::TOMBSTONE_DEPARTED_WAIT_SECS,
                ),
            },
        }
    }
}

/// Reads and validates a ring document file. A missing file is an error:
/// the operator writes the ring into the ConfigMap before it creates any
/// node, so the file is there from a node's first start, and without it
/// the node would start a ring of its own (of its --peer list, or itself
/// alone) and never join the cluster's.
fn read_ring_file(path: &Path) -> anyhow::Result<RingDocument> {
    if !path.exists() {
        bail!(
            "ring file {} does not exist (--ring-file must name the cluster's ring)",
            path.display()
        );
    }
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
            zone: zone.clone().unwrap_or_else(|| defaults::ZONE.to_string()),
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
        let mut missing = args(&[]);
        missing.ring_file = Some(dir.path().join("absent.json"));
        let error = missing.resolve().unwrap_err();
        assert!(
            format!("{error:#}").contains("absent.json does not exist"),
            "{error:#}"
        );
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
        let largest = crate::version::MAX_OBJECT_BYTES / 4;
        for (value, accepted) in [(0, false), (largest, true), (largest + 1, false)] {
            let mut max_value = args(&[]);
            max_value.max_value_bytes = Some(value);
            assert_eq!(max_value.resolve().is_ok(), accepted, "{value}");
        }
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
