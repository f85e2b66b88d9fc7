//! The StatefulSet of one zone: the node container contract (command, env,
//! probes, volumes), placement and the `OnDelete` update strategy that lets
//! the operator restart pods one at a time.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm,
    PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, PreferredSchedulingTerm, Probe,
    SeccompProfile, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
    VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::auth::auth_volume;
use super::{
    CLIENT_PORT, CONFIG_HASH_ANNOTATION, ClusterRef, INTERNAL_PORT, TEMPLATE_HASH_ANNOTATION,
    ZONE_LABEL,
};
use crate::crd::{DynamoClusterSpec, StorageSpec, ZoneSpec};

/// Kubernetes node label naming its zone.
pub const TOPOLOGY_ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Where the ConfigMap (`node.toml`, `ring.json`) is mounted.
pub const CONFIG_DIR: &str = "/etc/dynamo";

/// Where the auth Secret (and `clients.json` of the clients Secret) is
/// mounted (`DYNAMO_AUTH_DIR`); the node reads its tokens from the files
/// `admin-token`, `peer-token`, `client-token`, `clients.json` (or the
/// legacy `token`) there.
pub const AUTH_DIR: &str = "/etc/dynamo-auth";

/// Where the `spec.tls` Secret is mounted (`DYNAMO_TLS_DIR`); the node
/// reads `tls.crt`, `tls.key` and `ca.crt` there and serves HTTPS only.
pub const TLS_DIR: &str = "/etc/dynamo-tls";

/// User and group the node runs as.
pub const NODE_UID: i64 = 10001;

/// Seconds a node gets to hand off and flush before it is killed.
pub const TERMINATION_GRACE_SECONDS: i64 = 60;

/// The StatefulSet `<cluster>-<zone>` with `replicas` pods whose volumes
/// are `storage` (the spec's, or the zone's existing claim template when
/// the spec asks for a change a StatefulSet cannot make).
///
/// `config_hash` is the hash of the rendered `node.toml`; it is a pod
/// template annotation so a configuration change changes the revision.
pub fn statefulset(
    cluster: &ClusterRef,
    spec: &DynamoClusterSpec,
    zone: &ZoneSpec,
    storage: &StorageSpec,
    replicas: i32,
    config_hash: &str,
) -> StatefulSet {
    let name = cluster.zone_object_name(&zone.name);
    let selector = cluster.zone_selector(&zone.name);
    let mut pod_labels = cluster.labels();
    pod_labels.extend(selector.clone());
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: Some(BTreeMap::from([(
                CONFIG_HASH_ANNOTATION.to_string(),
                config_hash.to_string(),
            )])),
            ..ObjectMeta::default()
        }),
        spec: Some(pod_spec(cluster, spec, zone)),
    };
    let mut metadata = cluster.metadata(name.clone(), selector.clone());
    metadata.annotations = Some(BTreeMap::from([(
        TEMPLATE_HASH_ANNOTATION.to_string(),
        template_hash(&template),
    )]));
    StatefulSet {
        metadata,
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(name),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            pod_management_policy: Some("Parallel".into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                ..StatefulSetUpdateStrategy::default()
            }),
            template,
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("data".into()),
                    ..ObjectMeta::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    storage_class_name: storage.storage_class_name.clone(),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".to_string(),
                            storage.size.clone(),
                        )])),
                        ..VolumeResourceRequirements::default()
                    }),
                    ..PersistentVolumeClaimSpec::default()
                }),
                ..PersistentVolumeClaim::default()
            }]),
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}

fn pod_spec(cluster: &ClusterRef, spec: &DynamoClusterSpec, zone: &ZoneSpec) -> PodSpec {
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: cluster.config_map_name(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        auth_volume("auth", cluster, spec.auth.as_ref()),
    ];
    let mut mounts = vec![
        mount("data", "/data"),
        mount("config", CONFIG_DIR),
        read_only_mount("auth", AUTH_DIR),
    ];
    if let Some(tls) = &spec.tls {
        volumes.push(Volume {
            name: "tls".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(tls.secret_name.clone()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(read_only_mount("tls", TLS_DIR));
    }
    // With TLS the node answers its probes over HTTPS only (the kubelet
    // does not verify the certificate).
    let scheme = spec.tls.as_ref().map(|_| "HTTPS");
    PodSpec {
        containers: vec![Container {
            name: "node".into(),
            image: Some(spec.image.clone()),
            image_pull_policy: spec.pull_policy.map(|p| p.as_str().to_string()),
            command: Some(vec!["dynamo-node".into(), "serve".into()]),
            env: Some(env(spec, zone)),
            ports: Some(vec![
                container_port("http", CLIENT_PORT),
                container_port("internal", INTERNAL_PORT),
            ]),
            readiness_probe: Some(probe("/readyz", 5, scheme)),
            liveness_probe: Some(probe("/healthz", 30, scheme)),
            resources: spec.resources.clone(),
            volume_mounts: Some(mounts),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                run_as_non_root: Some(true),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".into()]),
                    ..Capabilities::default()
                }),
                ..SecurityContext::default()
            }),
            ..Container::default()
        }],
        affinity: Some(affinity(cluster, zone)),
        node_selector: (!zone.node_selector.is_empty()).then(|| zone.node_selector.clone()),
        tolerations: (!zone.tolerations.is_empty()).then(|| zone.tolerations.clone()),
        termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(NODE_UID),
            run_as_group: Some(NODE_UID),
            fs_group: Some(NODE_UID),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        volumes: Some(volumes),
        ..PodSpec::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..VolumeMount::default()
    }
}

fn read_only_mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        read_only: Some(true),
        ..mount(name, path)
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

/// An HTTP GET probe of `path` on the client port (`http`); `scheme`
/// `None` is the kubelet's default, HTTP.
fn probe(path: &str, initial_delay: i32, scheme: Option<&str>) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            scheme: scheme.map(str::to_string),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(10),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

fn env(spec: &DynamoClusterSpec, zone: &ZoneSpec) -> Vec<EnvVar> {
    let value = |name: &str, value: String| EnvVar {
        name: name.into(),
        value: Some(value),
        ..EnvVar::default()
    };
    let mut vars = vec![
        EnvVar {
            name: "DYNAMO_NODE_ID".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".into(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        },
        value("DYNAMO_ZONE", zone.name.clone()),
        value("DYNAMO_LISTEN", format!("0.0.0.0:{CLIENT_PORT}")),
        value("DYNAMO_INTERNAL_LISTEN", format!("0.0.0.0:{INTERNAL_PORT}")),
        value("DYNAMO_DATA_DIR", "/data".into()),
        value("DYNAMO_N", spec.replication.n.to_string()),
        value("DYNAMO_R", spec.replication.r.to_string()),
        value("DYNAMO_W", spec.replication.w.to_string()),
        value("DYNAMO_PARTITIONS", spec.partitions.to_string()),
        value("DYNAMO_CONFIG", format!("{CONFIG_DIR}/node.toml")),
        value("DYNAMO_RING_FILE", format!("{CONFIG_DIR}/ring.json")),
        value("DYNAMO_AUTH_DIR", AUTH_DIR.into()),
    ];
    if spec.tls.is_some() {
        vars.push(value("DYNAMO_TLS_DIR", TLS_DIR.into()));
    }
    vars
}

/// The zone's placement on Kubernetes nodes plus a preferred
/// anti-affinity that spreads the cluster's pods over hosts:
/// - `topologyZone` set: required `topology.kubernetes.io/zone` in it;
/// - else the zone's own `affinity` or `nodeSelector`, if any;
/// - else a preference (not a requirement) for nodes whose zone label is
///   the zone's name, so pods run on nodes without zone labels too (a
///   one-node kind cluster) and land in a matching cloud zone when there is
///   one.
fn affinity(cluster: &ClusterRef, zone: &ZoneSpec) -> Affinity {
    let mut affinity = zone.affinity.clone().unwrap_or_default();
    let zone_term = |value: &str| NodeSelectorTerm {
        match_expressions: Some(vec![NodeSelectorRequirement {
            key: TOPOLOGY_ZONE_LABEL.into(),
            operator: "In".into(),
            values: Some(vec![value.to_string()]),
        }]),
        ..NodeSelectorTerm::default()
    };
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    if let Some(topology_zone) = &zone.topology_zone {
        let required = node_affinity
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(|| NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm::default()],
            });
        // Terms are ORed, requirements within a term ANDed: the zone joins
        // every term.
        let wanted = zone_term(topology_zone)
            .match_expressions
            .unwrap_or_default();
        for term in &mut required.node_selector_terms {
            term.match_expressions
                .get_or_insert_with(Vec::new)
                .extend(wanted.iter().cloned());
        }
    } else if zone.affinity.is_none() && zone.node_selector.is_empty() {
        node_affinity.preferred_during_scheduling_ignored_during_execution =
            Some(vec![PreferredSchedulingTerm {
                weight: 100,
                preference: zone_term(&zone.name),
            }]);
    }
    if *node_affinity == NodeAffinity::default() {
        affinity.node_affinity = None;
    }
    if affinity.pod_anti_affinity.is_none() {
        affinity.pod_anti_affinity = Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        topology_key: "kubernetes.io/hostname".into(),
                        label_selector: Some(LabelSelector {
                            match_labels: Some(cluster.node_selector()),
                            ..LabelSelector::default()
                        }),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            ..PodAntiAffinity::default()
        });
    }
    affinity
}

/// Hash of a pod template as the operator renders it.
pub fn template_hash(template: &PodTemplateSpec) -> String {
    let json = serde_json::to_string(template).unwrap_or_default();
    format!("{:016x}", dynamo_ring::key_hash(json.as_bytes()))
}

/// The template hash annotation of a StatefulSet, if any.
pub fn applied_template_hash(sts: &StatefulSet) -> Option<&str> {
    sts.metadata
        .annotations
        .as_ref()?
        .get(TEMPLATE_HASH_ANNOTATION)
        .map(String::as_str)
}

/// The zone of a pod, from its labels.
pub fn pod_zone(labels: &BTreeMap<String, String>) -> Option<&str> {
    labels.get(ZONE_LABEL).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{AuthSpec, SecretReference};
    use crate::reconcile::fixtures::spec;
    use crate::resources::fixtures::cluster_ref;

    /// The StatefulSet of the first zone of `spec`: 3 replicas, the spec's
    /// storage, config hash `h1`.
    fn first_zone_statefulset(spec: &DynamoClusterSpec) -> StatefulSet {
        statefulset(&cluster_ref(), spec, &spec.zones[0], &spec.storage, 3, "h1")
    }

    /// The pod spec of [`first_zone_statefulset`].
    fn first_zone_pod(spec: &DynamoClusterSpec) -> PodSpec {
        first_zone_statefulset(spec)
            .spec
            .expect("spec")
            .template
            .spec
            .expect("pod")
    }

    #[test]
    fn zone_statefulset_follows_the_node_contract() {
        let spec = spec(&[("a", 3)]);
        let sts = first_zone_statefulset(&spec);
        assert_eq!(sts.metadata.name.as_deref(), Some("demo-a"));
        assert_eq!(
            sts.metadata.owner_references.as_ref().expect("owner")[0].uid,
            "uid-demo"
        );
        let s = sts.spec.expect("spec");
        assert_eq!(s.replicas, Some(3));
        assert_eq!(s.service_name.as_deref(), Some("demo-a"));
        assert_eq!(
            s.update_strategy.and_then(|u| u.type_).as_deref(),
            Some("OnDelete")
        );
        assert_eq!(
            s.volume_claim_templates.expect("pvc")[0]
                .metadata
                .name
                .as_deref(),
            Some("data")
        );
        let pod = s.template.spec.expect("pod");
        assert_eq!(pod.termination_grace_period_seconds, Some(60));
        assert_eq!(
            pod.security_context.as_ref().and_then(|c| c.run_as_user),
            Some(NODE_UID)
        );
        let container = &pod.containers[0];
        assert_eq!(
            container.command.as_deref(),
            Some(&["dynamo-node".to_string(), "serve".to_string()][..])
        );
        let env: BTreeMap<_, _> = container
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.as_str(), e))
            .collect();
        assert_eq!(
            env["DYNAMO_NODE_ID"]
                .value_from
                .as_ref()
                .and_then(|v| v.field_ref.as_ref())
                .map(|f| f.field_path.as_str()),
            Some("metadata.name")
        );
        assert_eq!(env["DYNAMO_ZONE"].value.as_deref(), Some("a"));
        assert_eq!(env["DYNAMO_N"].value.as_deref(), Some("3"));
        assert_eq!(
            env["DYNAMO_RING_FILE"].value.as_deref(),
            Some("/etc/dynamo/ring.json")
        );
        let readiness = container
            .readiness_probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref());
        assert_eq!(readiness.and_then(|h| h.path.as_deref()), Some("/readyz"));
        assert_eq!(
            readiness.map(|h| &h.port),
            Some(&IntOrString::String("http".into())),
            "probes go to the client listener"
        );
        let preferred = pod
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .expect("zone affinity");
        assert!(
            preferred
                .required_during_scheduling_ignored_during_execution
                .is_none(),
            "without topologyZone a zone runs on nodes without zone labels too"
        );
        let term = &preferred
            .preferred_during_scheduling_ignored_during_execution
            .as_ref()
            .expect("preferred zone")[0]
            .preference;
        let requirement = &term.match_expressions.as_ref().expect("expressions")[0];
        assert_eq!(requirement.key, TOPOLOGY_ZONE_LABEL);
        assert_eq!(requirement.values.as_deref(), Some(&["a".to_string()][..]));
    }

    #[test]
    fn pods_meet_the_restricted_pod_security_standard() {
        let pod = first_zone_pod(&spec(&[("a", 3)]));
        let pod_context = pod.security_context.expect("pod security context");
        assert_eq!(pod_context.run_as_non_root, Some(true));
        assert_eq!(
            pod_context.seccomp_profile.map(|p| p.type_).as_deref(),
            Some("RuntimeDefault")
        );
        let context = pod.containers[0].security_context.clone().expect("context");
        assert_eq!(context.allow_privilege_escalation, Some(false));
        assert_eq!(
            context.capabilities.and_then(|c| c.drop),
            Some(vec!["ALL".to_string()])
        );
    }

    #[test]
    fn a_topology_zone_is_required_and_joins_the_zones_own_affinity_terms() {
        let mut spec = spec(&[("a", 3)]);
        spec.zones[0].topology_zone = Some("eu-west-1a".into());
        spec.zones[0].affinity = Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "pool".into(),
                            operator: "In".into(),
                            values: Some(vec!["fast".into()]),
                        }]),
                        ..NodeSelectorTerm::default()
                    }],
                }),
                ..NodeAffinity::default()
            }),
            ..Affinity::default()
        });
        let pod = first_zone_pod(&spec);
        let required = pod
            .affinity
            .and_then(|a| a.node_affinity)
            .and_then(|n| n.required_during_scheduling_ignored_during_execution)
            .expect("required");
        let keys: Vec<(String, Option<Vec<String>>)> = required.node_selector_terms[0]
            .match_expressions
            .iter()
            .flatten()
            .map(|r| (r.key.clone(), r.values.clone()))
            .collect();
        assert_eq!(
            keys,
            [
                ("pool".to_string(), Some(vec!["fast".to_string()])),
                (
                    TOPOLOGY_ZONE_LABEL.to_string(),
                    Some(vec!["eu-west-1a".to_string()])
                )
            ]
        );
    }

    #[test]
    fn a_node_selector_replaces_the_default_zone_affinity() {
        let mut spec = spec(&[("a", 3)]);
        spec.zones[0].node_selector = BTreeMap::from([("pool".into(), "fast".into())]);
        let pod = first_zone_pod(&spec);
        let affinity = pod.affinity.expect("affinity");
        assert!(affinity.node_affinity.is_none());
        assert!(affinity.pod_anti_affinity.is_some());
        assert_eq!(pod.node_selector.expect("selector")["pool"], "fast");
    }

    #[test]
    fn the_client_and_internal_listeners_are_separate_named_ports() {
        let pod = first_zone_pod(&spec(&[("a", 3)]));
        let container = &pod.containers[0];
        let ports: Vec<(Option<String>, i32)> = container
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone(), p.container_port))
            .collect();
        assert_eq!(
            ports,
            [
                (Some("http".to_string()), 7000),
                (Some("internal".to_string()), 7001)
            ]
        );
        let env: BTreeMap<&str, Option<&str>> = container
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.as_str(), e.value.as_deref()))
            .collect();
        assert_eq!(env["DYNAMO_LISTEN"], Some("0.0.0.0:7000"));
        assert_eq!(env["DYNAMO_INTERNAL_LISTEN"], Some("0.0.0.0:7001"));
    }

    /// What the pod of a spec's first zone does with Secrets.
    struct SecretUse {
        /// `(volume, secret names)` of the Secret and projected volumes.
        secrets: Vec<(String, Vec<String>)>,
        /// `(volume, path, read-only)` of every mount.
        mounts: Vec<(String, String, Option<bool>)>,
        /// Environment values by name.
        env: BTreeMap<String, Option<String>>,
        /// Schemes of the readiness and liveness probes.
        schemes: Vec<Option<String>>,
    }

    fn secret_use(spec: &DynamoClusterSpec) -> SecretUse {
        let pod = first_zone_pod(spec);
        let secrets = pod
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| {
                let plain = v.secret.as_ref().and_then(|s| s.secret_name.clone());
                let projected = v
                    .projected
                    .iter()
                    .flat_map(|p| p.sources.iter().flatten())
                    .filter_map(|s| s.secret.as_ref().map(|s| s.name.clone()));
                let names: Vec<String> = plain.into_iter().chain(projected).collect();
                (!names.is_empty()).then(|| (v.name.clone(), names))
            })
            .collect();
        let container = &pod.containers[0];
        let mounts = container
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| (m.name.clone(), m.mount_path.clone(), m.read_only))
            .collect();
        let env = container
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone()))
            .collect();
        let schemes = [&container.readiness_probe, &container.liveness_probe]
            .into_iter()
            .map(|p| {
                p.as_ref()
                    .and_then(|p| p.http_get.as_ref())
                    .expect("http probe")
                    .scheme
                    .clone()
            })
            .collect();
        SecretUse {
            secrets,
            mounts,
            env,
            schemes,
        }
    }

    fn reference(name: &str) -> Option<SecretReference> {
        Some(SecretReference {
            secret_name: name.into(),
        })
    }

    fn auth(secret: Option<&str>, clients: Option<&str>) -> Option<AuthSpec> {
        Some(AuthSpec {
            secret_name: secret.map(str::to_string),
            clients_secret_name: clients.map(str::to_string),
        })
    }

    fn names(secrets: &[&str]) -> Vec<String> {
        secrets.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn without_spec_auth_the_generated_secret_is_mounted_and_probes_stay_http() {
        let SecretUse {
            secrets,
            mounts,
            env,
            schemes,
        } = secret_use(&spec(&[("a", 3)]));
        assert_eq!(secrets, [("auth".to_string(), names(&["demo-auth"]))]);
        assert!(mounts.contains(&("auth".into(), "/etc/dynamo-auth".into(), Some(true))));
        assert!(!mounts.iter().any(|m| m.1 == "/etc/dynamo-tls"));
        assert_eq!(
            env.get("DYNAMO_AUTH_DIR"),
            Some(&Some("/etc/dynamo-auth".to_string()))
        );
        assert!(!env.contains_key("DYNAMO_TLS_DIR"));
        assert_eq!(schemes, [None, None]);
    }

    #[test]
    fn a_named_auth_secret_and_the_clients_secret_share_the_auth_directory() {
        let mut spec = spec(&[("a", 3)]);
        spec.auth = auth(Some("custom-auth"), Some("demo-clients"));
        let SecretUse {
            secrets, mounts, ..
        } = secret_use(&spec);
        assert_eq!(
            secrets,
            [("auth".to_string(), names(&["custom-auth", "demo-clients"]))]
        );
        let auth_mounts: Vec<_> = mounts.iter().filter(|m| m.0 == "auth").collect();
        assert_eq!(
            auth_mounts,
            [&(
                "auth".to_string(),
                "/etc/dynamo-auth".to_string(),
                Some(true)
            )]
        );
    }

    #[test]
    fn changing_the_auth_or_clients_secret_changes_the_pod_template() {
        let hash = |auth: Option<AuthSpec>| {
            let mut spec = spec(&[("a", 3)]);
            spec.auth = auth;
            applied_template_hash(&first_zone_statefulset(&spec)).map(str::to_string)
        };
        let generated = hash(None);
        assert_eq!(generated, hash(auth(None, None)), "the same Secret");
        let named = hash(auth(Some("custom-auth"), None));
        let with_clients = hash(auth(Some("custom-auth"), Some("demo-clients")));
        let other_clients = hash(auth(Some("custom-auth"), Some("other-clients")));
        assert_ne!(generated, named);
        assert_ne!(named, with_clients);
        assert_ne!(with_clients, other_clients);
    }

    #[test]
    fn the_tls_secret_is_mounted_read_only_and_probes_use_https() {
        let mut spec = spec(&[("a", 3)]);
        spec.tls = reference("demo-tls");
        let SecretUse {
            secrets,
            mounts,
            env,
            schemes,
        } = secret_use(&spec);
        assert_eq!(
            secrets,
            [
                ("auth".to_string(), names(&["demo-auth"])),
                ("tls".to_string(), names(&["demo-tls"]))
            ]
        );
        assert!(mounts.contains(&("tls".into(), "/etc/dynamo-tls".into(), Some(true))));
        assert!(mounts.contains(&("auth".into(), "/etc/dynamo-auth".into(), Some(true))));
        assert_eq!(
            env.get("DYNAMO_TLS_DIR"),
            Some(&Some("/etc/dynamo-tls".to_string()))
        );
        assert_eq!(
            schemes,
            [Some("HTTPS".to_string()), Some("HTTPS".to_string())]
        );
    }
}
