//! Turns an observed cluster into a [`ValidatedCluster`] the operator may
//! act on, or into a [`Rejection`] a user can act on. Checks the spec alone
//! (quorums, partitions, zone names, `nodeConfig`, pod labels and
//! annotations, the `podTemplate` override) and against the
//! published ring (changes that would lose data or that the ring cannot
//! follow), then what the cluster needs from outside its spec: usable
//! auth, clients and `tls` Secrets, and no volumes of a previous cluster.

use std::collections::BTreeSet;

use dynamo_ring::Ring;
use dynamo_ring::member::MAX_PARTITIONS;

use super::observe::{AdminAuth, AuthProblem, NodeTls, TlsProblem, World};
use crate::crd::{DynamoCluster, DynamoClusterSpec};
use crate::node_client::{BearerToken, TrustedCa};
use crate::resources::ClusterRef;
use crate::resources::configmap::render_node_toml;
use crate::resources::pod_template::{PodTemplateError, is_managed_annotation, is_managed_label};
use crate::resources::statefulset::pod_template;

/// Node settings the operator sets itself; `nodeConfig` may not override them.
pub const MANAGED_NODE_KEYS: &[&str] = &[
    "node-id",
    "listen",
    "internal-listen",
    "auth-dir",
    "data-dir",
    "zone",
    "peers",
    "n",
    "r",
    "w",
    "partitions",
    "ring-file",
    // `spec.logging.format` sets it (DYNAMO_LOG_FORMAT, which wins over the
    // file).
    "log-format",
];

/// One reason a spec is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecProblem {
    /// No zone at all.
    #[error("spec.zones is empty")]
    NoZones,
    /// A zone name is not a DNS label.
    #[error("zone name {0:?} must be a DNS label (lowercase letters, digits and '-')")]
    BadZoneName(String),
    /// Two zones share a name.
    #[error("zone {0:?} appears twice")]
    DuplicateZone(String),
    /// A zone asks for a negative replica count.
    #[error("zone {0:?} has negative replicas")]
    NegativeReplicas(String),
    /// A quorum is outside `1..=N`.
    #[error("replication: readQuorum={r} and writeQuorum={w} must be in 1..=factor (factor={n})")]
    Quorum {
        /// Replication factor.
        n: u32,
        /// Read quorum.
        r: u32,
        /// Write quorum.
        w: u32,
    },
    /// The partition count is not a power of two in range.
    #[error("partitions={0} must be a power of two in 1..=65536")]
    Partitions(u32),
    /// Fewer nodes than replicas.
    #[error("replication.factor={n} exceeds the {nodes} nodes the zones ask for")]
    ReplicationExceedsNodes {
        /// Replication factor.
        n: u32,
        /// Total nodes over all zones.
        nodes: i64,
    },
    /// N differs from the published ring.
    #[error("replication.factor cannot change from {ring} to {spec} on an existing ring")]
    ReplicationChanged {
        /// N of the ring.
        ring: usize,
        /// N of the spec.
        spec: u32,
    },
    /// Q differs from the published ring.
    #[error("partitions cannot change from {ring} to {spec} on an existing ring")]
    PartitionsChanged {
        /// Q of the ring.
        ring: u32,
        /// Q of the spec.
        spec: u32,
    },
    /// The ring spreads replicas over N zones and the spec keeps fewer.
    #[error(
        "the ring spreads each partition over {n} zones; keeping {remaining} zone(s) with nodes would put replicas of a partition in one zone"
    )]
    TooFewZones {
        /// Replication factor.
        n: usize,
        /// Zones with nodes in the spec.
        remaining: usize,
    },
    /// `nodeConfig` sets a setting the operator manages.
    #[error("nodeConfig key {0:?} is managed by the operator")]
    ManagedNodeKey(String),
    /// `nodeConfig` is not representable as TOML.
    #[error("{0}")]
    NodeConfig(String),
    /// A pod label or annotation key the operator sets.
    #[error(
        "spec.{field} key {key:?} is the operator's: it sets the labels app.kubernetes.io/name, app.kubernetes.io/instance, app.kubernetes.io/managed-by, app.kubernetes.io/component and every label and annotation under kv.dynamo.dev/"
    )]
    ManagedPodMetadata {
        /// The spec field with the key.
        field: &'static str,
        /// The key.
        key: String,
    },
    /// `podTemplate` cannot be applied.
    #[error(transparent)]
    PodTemplate(PodTemplateError),
    /// `logging.level` is not a `RUST_LOG` filter (the node would ignore
    /// it and log at `info`).
    #[error("logging.level {level:?} is not a RUST_LOG filter: {reason}")]
    LogLevel {
        /// The filter as given.
        level: String,
        /// Why it does not parse.
        reason: String,
    },
}

/// A cluster the operator may act on: its spec passed validation against
/// the published ring, its auth, clients and `tls` Secrets are usable and no
/// volumes of a previous cluster are in the way; with what validation
/// derived on the way.
#[derive(Clone, Debug)]
pub struct ValidatedCluster<'a> {
    /// The cluster object.
    pub object: &'a DynamoCluster,
    /// Names, namespace and owner of everything the cluster owns.
    pub cref: &'a ClusterRef,
    /// `spec.nodeConfig` rendered as `node.toml`.
    pub node_toml: String,
    /// Bearer token of the admin calls: the auth Secret's admin token.
    pub token: BearerToken,
    /// CA the admin calls trust, over HTTPS (`spec.tls`).
    pub ca: Option<TrustedCa>,
}

impl<'a> ValidatedCluster<'a> {
    /// The valid spec.
    pub fn spec(&self) -> &'a DynamoClusterSpec {
        &self.object.spec
    }
}

/// Why a cluster cannot be acted on now; the message says what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The spec is invalid or would lose data: the user must edit it.
    #[error("{}", join_problems(.0))]
    Spec(Vec<SpecProblem>),
    /// The auth Secret gives no admin and peer token, or the clients
    /// Secret no `clients.json`.
    #[error(transparent)]
    Auth(AuthProblem),
    /// The `spec.tls` Secret gives no usable CA.
    #[error(transparent)]
    Tls(TlsProblem),
    /// Volume claims a zone StatefulSet would adopt are older than the
    /// cluster: they hold the data of a deleted cluster of the same name.
    #[error(
        "PersistentVolumeClaims {names} are older than this DynamoCluster: they hold the data of a deleted cluster of the same name, which new nodes must not half-reuse. To start empty, delete them: kubectl delete pvc -n {namespace} {names}. To keep that data, delete this DynamoCluster and restore the data into a cluster of another name.",
        names = .claims.join(" ")
    )]
    PreviousClusterVolumes {
        /// Claim names.
        claims: Vec<String>,
        /// Namespace of the cluster and the claims.
        namespace: String,
    },
}

impl Rejection {
    /// `PascalCase` reason for conditions and events.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Spec(_) => "SpecRefused",
            Rejection::Auth(problem) => problem.reason(),
            Rejection::Tls(problem) => problem.reason(),
            Rejection::PreviousClusterVolumes { .. } => "PreviousClusterVolumes",
        }
    }
}

/// The problems, `; `-separated.
fn join_problems(problems: &[SpecProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Validates `cluster` (identified by `cref`) as observed in `world`: the
/// spec first, then the auth, clients and `tls` Secrets, then volumes of
/// a previous cluster of the same name.
pub fn validate_cluster<'a>(
    cluster: &'a DynamoCluster,
    cref: &'a ClusterRef,
    world: &World,
) -> Result<ValidatedCluster<'a>, Rejection> {
    let ring = world.ring.as_ref().map(|d| &d.ring);
    let node_toml = valid_node_toml(&cluster.spec, cref, ring).map_err(Rejection::Spec)?;
    let token = match &world.auth {
        AdminAuth::Token(token) | AdminAuth::Generate { token, .. } => token.clone(),
        AdminAuth::Unusable(problem) => return Err(Rejection::Auth(problem.clone())),
    };
    let ca = match &world.tls {
        NodeTls::Unusable(problem) => return Err(Rejection::Tls(problem.clone())),
        tls => tls.ca().cloned(),
    };
    if !world.previous_claims.is_empty() {
        return Err(Rejection::PreviousClusterVolumes {
            claims: world.previous_claims.clone(),
            namespace: cref.namespace.clone(),
        });
    }
    Ok(ValidatedCluster {
        object: cluster,
        cref,
        node_toml,
        token,
        ca,
    })
}

/// The rendered `nodeConfig` of a spec that passes [`validate`] against
/// `ring` and whose `podTemplate` applies to every zone of `cref`;
/// otherwise every problem, a `nodeConfig` TOML cannot hold last.
fn valid_node_toml(
    spec: &DynamoClusterSpec,
    cref: &ClusterRef,
    ring: Option<&Ring>,
) -> Result<String, Vec<SpecProblem>> {
    let mut problems = validate(spec, ring).err().unwrap_or_default();
    problems.extend(
        spec.zones
            .iter()
            .find_map(|zone| pod_template(cref, spec, zone, "").err())
            .map(SpecProblem::PodTemplate),
    );
    match render_node_toml(&spec.node_config) {
        Ok(node_toml) if problems.is_empty() => return Ok(node_toml),
        Ok(_) => {}
        Err(error) => problems.push(SpecProblem::NodeConfig(error.to_string())),
    }
    Err(problems)
}

/// Checks `spec` alone and against the published `ring`. (Whether
/// `nodeConfig` renders as TOML is checked by [`validate_cluster`], which
/// keeps the rendering; storage changes a StatefulSet cannot follow are
/// not refusals: see `storage.rs`.)
pub fn validate(spec: &DynamoClusterSpec, ring: Option<&Ring>) -> Result<(), Vec<SpecProblem>> {
    let mut problems = zone_problems(spec);
    problems.extend(replication_problems(spec));
    if let Some(ring) = ring {
        problems.extend(ring_problems(spec, ring));
    }
    for key in spec.node_config.keys() {
        if MANAGED_NODE_KEYS.contains(&key.as_str()) {
            problems.push(SpecProblem::ManagedNodeKey(key.clone()));
        }
    }
    problems.extend(pod_metadata_problems(spec));
    problems.extend(log_level_problem(spec));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// A `logging.level` the node's log filter would not parse.
fn log_level_problem(spec: &DynamoClusterSpec) -> Option<SpecProblem> {
    let level = spec.logging.as_ref()?.level.as_ref()?;
    let error = tracing_subscriber::EnvFilter::try_new(level).err()?;
    Some(SpecProblem::LogLevel {
        level: level.clone(),
        reason: error.to_string(),
    })
}

/// Keys of `podLabels`, `podAnnotations` and the `podTemplate` metadata
/// that the operator sets.
fn pod_metadata_problems(spec: &DynamoClusterSpec) -> Vec<SpecProblem> {
    let template_keys = |kind: &str| -> Vec<String> {
        spec.pod_template
            .get("metadata")
            .and_then(|metadata| metadata.get(kind))
            .and_then(serde_json::Value::as_object)
            .map(|map| map.keys().cloned().collect())
            .unwrap_or_default()
    };
    let mut problems = Vec::new();
    let mut check = |field: &'static str, keys: Vec<String>, managed: fn(&str) -> bool| {
        problems.extend(
            keys.into_iter()
                .filter(|key| managed(key))
                .map(|key| SpecProblem::ManagedPodMetadata { field, key }),
        );
    };
    check(
        "podLabels",
        spec.pod_labels.keys().cloned().collect(),
        is_managed_label,
    );
    check(
        "podTemplate.metadata.labels",
        template_keys("labels"),
        is_managed_label,
    );
    check(
        "podAnnotations",
        spec.pod_annotations.keys().cloned().collect(),
        is_managed_annotation,
    );
    check(
        "podTemplate.metadata.annotations",
        template_keys("annotations"),
        is_managed_annotation,
    );
    problems
}

/// Zones: at least one, unique DNS labels, no negative replica count.
fn zone_problems(spec: &DynamoClusterSpec) -> Vec<SpecProblem> {
    let mut problems = Vec::new();
    if spec.zones.is_empty() {
        problems.push(SpecProblem::NoZones);
    }
    let mut names = BTreeSet::new();
    for zone in &spec.zones {
        if !is_dns_label(&zone.name) {
            problems.push(SpecProblem::BadZoneName(zone.name.clone()));
        }
        if !names.insert(zone.name.as_str()) {
            problems.push(SpecProblem::DuplicateZone(zone.name.clone()));
        }
        if zone.replicas < 0 {
            problems.push(SpecProblem::NegativeReplicas(zone.name.clone()));
        }
    }
    problems
}

/// Quorums within `1..=N`, a partition count in range, and at least `N`
/// nodes.
fn replication_problems(spec: &DynamoClusterSpec) -> Vec<SpecProblem> {
    let mut problems = Vec::new();
    let rep = spec.replication;
    if rep.n == 0 || !(1..=rep.n).contains(&rep.r) || !(1..=rep.n).contains(&rep.w) {
        problems.push(SpecProblem::Quorum {
            n: rep.n,
            r: rep.r,
            w: rep.w,
        });
    }
    if !spec.partitions.is_power_of_two() || spec.partitions > MAX_PARTITIONS {
        problems.push(SpecProblem::Partitions(spec.partitions));
    }
    let nodes: i64 = spec
        .zones
        .iter()
        .map(|z| i64::from(z.replicas.max(0)))
        .sum();
    if i64::from(rep.n) > nodes {
        problems.push(SpecProblem::ReplicationExceedsNodes { n: rep.n, nodes });
    }
    problems
}

/// Changes the published `ring` cannot follow: another `N` or `Q`, or
/// fewer zones with nodes than the zones it spreads replicas over.
fn ring_problems(spec: &DynamoClusterSpec, ring: &Ring) -> Vec<SpecProblem> {
    let mut problems = Vec::new();
    let n = spec.replication.n;
    if usize::try_from(n).ok() != Some(ring.replication) {
        problems.push(SpecProblem::ReplicationChanged {
            ring: ring.replication,
            spec: n,
        });
    }
    if ring.partitions != spec.partitions {
        problems.push(SpecProblem::PartitionsChanged {
            ring: ring.partitions,
            spec: spec.partitions,
        });
    }
    let ring_zones: BTreeSet<&str> = ring.members.iter().map(|m| m.zone.as_str()).collect();
    let remaining = spec.zones.iter().filter(|z| z.replicas > 0).count();
    if ring_zones.len() >= ring.replication && remaining < ring.replication {
        problems.push(SpecProblem::TooFewZones {
            n: ring.replication,
            remaining,
        });
    }
    problems
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::crd::{AuthSpec, NodeLogging, ReplicationSpec, SecretReference};
    use crate::reconcile::fixtures::{cluster, spec, world};
    use crate::resources::fixtures::cluster_ref;
    use dynamo_ring::Member;

    fn ring(zones: &[&str], n: usize, q: u32) -> Ring {
        let members = zones
            .iter()
            .map(|z| Member::new(format!("demo-{z}-0"), *z))
            .collect();
        Ring::build(members, n, q).expect("ring")
    }

    #[test]
    fn a_sound_spec_passes() {
        let spec = spec(&[("a", 1), ("b", 1), ("c", 1)]);
        assert_eq!(validate(&spec, None), Ok(()));
        assert_eq!(
            validate(&spec, Some(&ring(&["a", "b", "c"], 3, 64))),
            Ok(())
        );
    }

    #[test]
    fn quorums_must_fit_in_n() {
        let mut spec = spec(&[("a", 3)]);
        spec.replication = ReplicationSpec { n: 3, r: 4, w: 0 };
        let problems = validate(&spec, None).expect_err("refused");
        assert_eq!(problems, vec![SpecProblem::Quorum { n: 3, r: 4, w: 0 }]);
    }

    #[test]
    fn n_larger_than_the_node_count_is_refused() {
        let spec = spec(&[("a", 1), ("b", 1)]);
        let problems = validate(&spec, None).expect_err("refused");
        assert_eq!(
            problems,
            vec![SpecProblem::ReplicationExceedsNodes { n: 3, nodes: 2 }]
        );
    }

    #[test]
    fn ring_parameters_cannot_change() {
        let mut spec = spec(&[("a", 1), ("b", 1), ("c", 1)]);
        spec.partitions = 128;
        spec.replication = ReplicationSpec { n: 2, r: 1, w: 1 };
        let problems = validate(&spec, Some(&ring(&["a", "b", "c"], 3, 64))).expect_err("refused");
        assert!(problems.contains(&SpecProblem::PartitionsChanged {
            ring: 64,
            spec: 128
        }));
        assert!(problems.contains(&SpecProblem::ReplicationChanged { ring: 3, spec: 2 }));
    }

    #[test]
    fn removing_a_zone_below_n_zones_is_refused() {
        let spec = spec(&[("a", 2), ("b", 1), ("c", 0)]);
        let problems = validate(&spec, Some(&ring(&["a", "b", "c"], 3, 64))).expect_err("refused");
        assert_eq!(
            problems,
            vec![SpecProblem::TooFewZones { n: 3, remaining: 2 }]
        );
        let spread = spec_with_four_zones();
        assert_eq!(
            validate(&spread, Some(&ring(&["a", "b", "c", "d"], 3, 64))),
            Ok(())
        );
    }

    fn spec_with_four_zones() -> DynamoClusterSpec {
        spec(&[("a", 1), ("b", 1), ("c", 1), ("d", 0)])
    }

    #[test]
    fn partitions_must_be_a_power_of_two() {
        let mut spec = spec(&[("a", 3)]);
        spec.partitions = 1000;
        assert_eq!(
            validate(&spec, None),
            Err(vec![SpecProblem::Partitions(1000)])
        );
    }

    #[test]
    fn zone_names_must_be_unique_dns_labels() {
        let spec = spec(&[("a", 2), ("a", 1), ("B_1", 1)]);
        let problems = validate(&spec, None).expect_err("refused");
        assert!(problems.contains(&SpecProblem::DuplicateZone("a".into())));
        assert!(problems.contains(&SpecProblem::BadZoneName("B_1".into())));
    }

    #[test]
    fn node_config_may_not_override_managed_settings() {
        let mut spec = spec(&[("a", 3)]);
        spec.node_config
            .insert("listen".into(), serde_json::json!("0.0.0.0:1"));
        spec.node_config
            .insert("fsync".into(), serde_json::json!(true));
        assert_eq!(
            validate(&spec, None),
            Err(vec![SpecProblem::ManagedNodeKey("listen".into())])
        );
    }

    #[test]
    fn the_log_format_is_spec_logging_and_the_level_must_parse() {
        let mut spec = spec(&[("a", 3)]);
        spec.node_config
            .insert("log-format".into(), serde_json::json!("text"));
        assert_eq!(
            validate(&spec, None),
            Err(vec![SpecProblem::ManagedNodeKey("log-format".into())])
        );
        spec.node_config.clear();
        for level in ["debug", "info,dynamo_node::antientropy=debug"] {
            spec.logging = Some(NodeLogging {
                level: Some(level.into()),
                ..NodeLogging::default()
            });
            assert_eq!(validate(&spec, None), Ok(()), "{level}");
        }
        spec.logging = Some(NodeLogging {
            level: Some("info,dynamo_node=loud".into()),
            ..NodeLogging::default()
        });
        let problems = validate(&spec, None).expect_err("refused");
        assert!(
            matches!(&problems[..], [SpecProblem::LogLevel { level, .. }] if level == "info,dynamo_node=loud"),
            "{problems:?}"
        );
    }

    #[test]
    fn tls_and_auth_secrets_are_accepted() {
        let mut spec = spec(&[("a", 3)]);
        spec.tls = Some(SecretReference {
            secret_name: "demo-tls".into(),
        });
        assert_eq!(validate(&spec, None), Ok(()), "tls is supported");
        spec.auth = Some(AuthSpec {
            secret_name: Some("custom-auth".into()),
            clients_secret_name: Some("demo-clients".into()),
        });
        assert_eq!(validate(&spec, None), Ok(()), "with auth too");
        spec.node_config
            .insert("auth-dir".into(), serde_json::json!("/tmp"));
        assert_eq!(
            validate(&spec, None),
            Err(vec![SpecProblem::ManagedNodeKey("auth-dir".into())]),
            "the operator always sets the auth directory"
        );
    }

    #[test]
    fn pod_labels_and_annotations_may_not_use_the_operators_keys() {
        let mut spec = spec(&[("a", 3)]);
        spec.pod_labels = BTreeMap::from([
            ("team".into(), "storage".into()),
            ("app.kubernetes.io/instance".into(), "other".into()),
            ("kv.dynamo.dev/zone".into(), "b".into()),
        ]);
        spec.pod_annotations = BTreeMap::from([
            (
                "app.kubernetes.io/instance".into(),
                "fine as an annotation".into(),
            ),
            ("kv.dynamo.dev/config-hash".into(), "forged".into()),
        ]);
        spec.pod_template = BTreeMap::from([(
            "metadata".to_string(),
            serde_json::json!({
                "labels": {"app.kubernetes.io/component": null, "tier": "data"},
                "annotations": {"kv.dynamo.dev/template-hash": "x"}
            }),
        )]);
        let managed = |field: &'static str, key: &str| SpecProblem::ManagedPodMetadata {
            field,
            key: key.into(),
        };
        assert_eq!(
            validate(&spec, None),
            Err(vec![
                managed("podLabels", "app.kubernetes.io/instance"),
                managed("podLabels", "kv.dynamo.dev/zone"),
                managed("podTemplate.metadata.labels", "app.kubernetes.io/component"),
                managed("podAnnotations", "kv.dynamo.dev/config-hash"),
                managed(
                    "podTemplate.metadata.annotations",
                    "kv.dynamo.dev/template-hash"
                ),
            ])
        );
        spec.pod_labels.retain(|key, _| key == "team");
        spec.pod_annotations
            .retain(|key, _| !key.starts_with("kv.dynamo.dev/"));
        spec.pod_template.clear();
        assert_eq!(validate(&spec, None), Ok(()));
    }

    #[test]
    fn a_pod_template_override_that_breaks_the_node_contract_is_refused() {
        let mut spec = spec(&[("a", 3)]);
        spec.pod_template = BTreeMap::from([(
            "spec".to_string(),
            serde_json::json!({"containers": [{"name": "node", "command": ["sh", "-c", "sleep 1d"]}]}),
        )]);
        let cluster = cluster(spec);
        let cref = cluster_ref();
        let rejection = validate_cluster(&cluster, &cref, &world()).expect_err("refused");
        assert_eq!(rejection.reason(), "SpecRefused");
        assert_eq!(
            rejection.to_string(),
            "spec.podTemplate changes spec.containers[name=node].command, which the operator sets and relies on; use the spec's own fields instead"
        );
    }

    #[test]
    fn a_pod_template_override_adding_env_and_resources_is_accepted() {
        let mut spec = spec(&[("a", 3)]);
        spec.pod_template = BTreeMap::from([(
            "spec".to_string(),
            serde_json::json!({"containers": [{
                "name": "node",
                "env": [{"name": "RUST_LOG", "value": "debug"}],
                "resources": {"limits": {"memory": "4Gi"}}
            }]}),
        )]);
        let cluster = cluster(spec);
        let cref = cluster_ref();
        assert!(validate_cluster(&cluster, &cref, &world()).is_ok());
    }
}
