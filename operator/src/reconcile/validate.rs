//! Turns a spec into one the operator may act on, or into problems a user
//! can fix. Checks both the spec alone (quorums, partitions, zone names)
//! and the spec against the published ring (changes that would lose data
//! or that the ring cannot follow).

use std::collections::BTreeSet;

use dynamo_ring::Ring;
use dynamo_ring::ring::MAX_PARTITIONS;

use crate::crd::DynamoClusterSpec;
use crate::resources::configmap::render_node_toml;

/// Node settings the operator sets itself; `nodeConfig` may not override them.
pub const MANAGED_NODE_KEYS: &[&str] = &[
    "node-id",
    "listen",
    "internal-listen",
    "data-dir",
    "zone",
    "peers",
    "n",
    "r",
    "w",
    "partitions",
    "ring-file",
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
}

/// Checks `spec` alone and against the published `ring`. (Storage changes
/// a StatefulSet cannot follow are not refusals: see `storage.rs`.)
pub fn validate(spec: &DynamoClusterSpec, ring: Option<&Ring>) -> Result<(), Vec<SpecProblem>> {
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
    if let Some(ring) = ring {
        if usize::try_from(rep.n).ok() != Some(ring.replication) {
            problems.push(SpecProblem::ReplicationChanged {
                ring: ring.replication,
                spec: rep.n,
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
    }
    for key in spec.node_config.keys() {
        if MANAGED_NODE_KEYS.contains(&key.as_str()) {
            problems.push(SpecProblem::ManagedNodeKey(key.clone()));
        }
    }
    if let Err(error) = render_node_toml(&spec.node_config) {
        problems.push(SpecProblem::NodeConfig(error.to_string()));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
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
    use super::*;
    use crate::crd::{ReplicationSpec, SecretReference};
    use crate::reconcile::fixtures::spec;
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
    fn tls_and_auth_secrets_are_accepted() {
        let mut spec = spec(&[("a", 3)]);
        spec.tls = Some(SecretReference {
            secret_name: "demo-tls".into(),
        });
        assert_eq!(validate(&spec, None), Ok(()), "tls is supported");
        spec.auth = Some(SecretReference {
            secret_name: "demo-auth".into(),
        });
        assert_eq!(validate(&spec, None), Ok(()), "with auth too");
    }
}
