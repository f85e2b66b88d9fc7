//! The StatefulSet of one zone: the node container contract (command, env,
//! probes, volumes), placement and spreading over hosts, the pod settings
//! of the spec (pull secrets, service account, priority class, labels,
//! annotations, user ids), the `spec.podTemplate` override, and the
//! `OnDelete` update strategy that lets the operator restart pods one at a
//! time.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapKeySelector, ConfigMapVolumeSource, Container, ContainerPort,
    EnvVar, EnvVarSource, HTTPGetAction, NodeAffinity, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec,
    PreferredSchedulingTerm, Probe, SeccompProfile, SecretVolumeSource, SecurityContext,
    TopologySpreadConstraint, Volume, VolumeMount, VolumeResourceRequirements,
    WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::auth::auth_volume;
use super::configmap::INITIAL_CLUSTER_STATE_KEY;
use super::pod_template::{DATA_VOLUME, NODE_CONTAINER, PodTemplateError, apply_override};
use super::{
    CLIENT_PORT, CONFIG_HASH_ANNOTATION, ClusterRef, INTERNAL_PORT, TEMPLATE_HASH_ANNOTATION,
    ZONE_LABEL,
};
use crate::crd::{DynamoClusterSpec, PodAntiAffinityMode, StorageSpec, ZoneSpec};

/// Kubernetes node label naming its zone.
pub const TOPOLOGY_ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Kubernetes node label naming the node: the topology of the spread over
/// hosts.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// Seconds between two startup probes of the node container.
pub const STARTUP_PROBE_PERIOD_SECONDS: u32 = 5;

/// `spec.startupTimeoutSeconds` when unset.
pub const DEFAULT_STARTUP_TIMEOUT_SECONDS: u32 = 600;

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
/// Fails when `spec.podTemplate` cannot be applied ([`pod_template`]).
pub fn statefulset(
    cluster: &ClusterRef,
    spec: &DynamoClusterSpec,
    zone: &ZoneSpec,
    storage: &StorageSpec,
    replicas: i32,
    config_hash: &str,
) -> Result<StatefulSet, PodTemplateError> {
    let name = cluster.zone_object_name(&zone.name);
    let selector = cluster.zone_selector(&zone.name);
    let template = pod_template(cluster, spec, zone, config_hash)?;
    let mut metadata = cluster.metadata(name.clone(), selector.clone());
    metadata.annotations = Some(BTreeMap::from([(
        TEMPLATE_HASH_ANNOTATION.to_string(),
        template_hash(&template),
    )]));
    Ok(StatefulSet {
        metadata,
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(name),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            pod_management_policy: Some("Parallel".into()),
            // A scale-down lowers replicas only once the ring without the
            // removed pods is confirmed, so their claims can go with them.
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(storage.when_deleted.unwrap_or_default().as_str().into()),
                    when_scaled: Some("Delete".into()),
                },
            ),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                ..StatefulSetUpdateStrategy::default()
            }),
            template,
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(DATA_VOLUME.into()),
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
    })
}

/// The pod template of a zone: the node container contract and the pod
/// settings of the spec, with `spec.podTemplate` merged over them (see
/// [`apply_override`]). The operator's labels (the cluster's labels and the
/// zone selector) and its config hash annotation win over `podLabels`,
/// `podAnnotations` and the override's metadata (validation refuses such
/// keys anyway).
pub fn pod_template(
    cluster: &ClusterRef,
    spec: &DynamoClusterSpec,
    zone: &ZoneSpec,
    config_hash: &str,
) -> Result<PodTemplateSpec, PodTemplateError> {
    let mut labels = cluster.labels();
    labels.extend(cluster.zone_selector(&zone.name));
    let annotations =
        BTreeMap::from([(CONFIG_HASH_ANNOTATION.to_string(), config_hash.to_string())]);
    let over = |user: &BTreeMap<String, String>, managed: &BTreeMap<String, String>| {
        let mut all = user.clone();
        all.extend(managed.clone());
        all
    };
    let generated = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(over(&spec.pod_labels, &labels)),
            annotations: Some(over(&spec.pod_annotations, &annotations)),
            ..ObjectMeta::default()
        }),
        spec: Some(pod_spec(cluster, spec, zone)),
    };
    let mut template = apply_override(&generated, &spec.pod_template)?;
    let metadata = template.metadata.get_or_insert_with(ObjectMeta::default);
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(labels);
    metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .extend(annotations);
    Ok(template)
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
    if let Some(tls) = &spec.tls {
        volumes.push(Volume {
            name: "tls".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(tls.secret_name.clone()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    // A zone's own pod anti-affinity replaces the operator's spreading.
    let own_anti_affinity = zone
        .affinity
        .as_ref()
        .is_some_and(|a| a.pod_anti_affinity.is_some());
    PodSpec {
        containers: vec![node_container(cluster, spec, zone)],
        affinity: Some(affinity(cluster, zone, spec.pod_anti_affinity)),
        topology_spread_constraints: (!own_anti_affinity)
            .then(|| vec![host_spread(cluster, spec.pod_anti_affinity)]),
        node_selector: (!zone.node_selector.is_empty()).then(|| zone.node_selector.clone()),
        tolerations: (!zone.tolerations.is_empty()).then(|| zone.tolerations.clone()),
        termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
        security_context: Some(pod_security_context(spec)),
        image_pull_secrets: (!spec.image_pull_secrets.is_empty())
            .then(|| spec.image_pull_secrets.clone()),
        service_account_name: spec.service_account_name.clone(),
        // Nodes never call the Kubernetes API: no token unless a named
        // ServiceAccount says otherwise.
        automount_service_account_token: spec.service_account_name.is_none().then_some(false),
        priority_class_name: spec.priority_class_name.clone(),
        volumes: Some(volumes),
        ..PodSpec::default()
    }
}

/// The node container: command, environment, ports, probes, mounts and
/// the restricted security context.
fn node_container(cluster: &ClusterRef, spec: &DynamoClusterSpec, zone: &ZoneSpec) -> Container {
    let mut mounts = vec![
        mount(DATA_VOLUME, "/data"),
        mount("config", CONFIG_DIR),
        read_only_mount("auth", AUTH_DIR),
    ];
    if spec.tls.is_some() {
        mounts.push(read_only_mount("tls", TLS_DIR));
    }
    // With TLS the node answers its probes over HTTPS only (the kubelet
    // does not verify the certificate).
    let scheme = spec.tls.as_ref().map(|_| "HTTPS");
    Container {
        name: NODE_CONTAINER.into(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.pull_policy.map(|p| p.as_str().to_string()),
        command: Some(vec!["dynamo-node".into(), "serve".into()]),
        env: Some(env(cluster, spec, zone)),
        ports: Some(vec![
            container_port("http", CLIENT_PORT),
            container_port("internal", INTERNAL_PORT),
        ]),
        startup_probe: Some(startup_probe(spec.startup_timeout_seconds, scheme)),
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
    }
}

/// Non-root with the `RuntimeDefault` seccomp profile; user, group and
/// `fsGroup` [`NODE_UID`] unless `podSecurity.assignIds` is false.
fn pod_security_context(spec: &DynamoClusterSpec) -> PodSecurityContext {
    let assign_ids = spec.pod_security.is_none_or(|p| p.assign_ids);
    let id = assign_ids.then_some(NODE_UID);
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: id,
        run_as_group: id,
        fs_group: id,
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
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

/// The startup probe: `GET /healthz` every [`STARTUP_PROBE_PERIOD_SECONDS`]
/// for `timeout_seconds` ([`DEFAULT_STARTUP_TIMEOUT_SECONDS`] when unset),
/// rounded up to whole periods.
fn startup_probe(timeout_seconds: Option<u32>, scheme: Option<&str>) -> Probe {
    let timeout = timeout_seconds.unwrap_or(DEFAULT_STARTUP_TIMEOUT_SECONDS);
    let periods = timeout.div_ceil(STARTUP_PROBE_PERIOD_SECONDS).max(1);
    Probe {
        initial_delay_seconds: None,
        period_seconds: i32::try_from(STARTUP_PROBE_PERIOD_SECONDS).ok(),
        failure_threshold: Some(i32::try_from(periods).unwrap_or(i32::MAX)),
        ..probe("/healthz", 0, scheme)
    }
}

fn env(cluster: &ClusterRef, spec: &DynamoClusterSpec, zone: &ZoneSpec) -> Vec<EnvVar> {
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
        initial_cluster_state(cluster),
    ];
    if spec.tls.is_some() {
        vars.push(value("DYNAMO_TLS_DIR", TLS_DIR.into()));
    }
    // `spec.logging`: JSON lines unless asked otherwise; `RUST_LOG` only
    // when a level is given, so the node's default applies otherwise.
    let logging = spec.logging.clone().unwrap_or_default();
    vars.push(value("DYNAMO_LOG_FORMAT", logging.format.as_str().into()));
    if let Some(level) = logging.level {
        vars.push(value("RUST_LOG", level));
    }
    vars
}

/// `DYNAMO_INITIAL_CLUSTER_STATE` from the ConfigMap, read when the
/// container starts: `new` while the cluster is being created, then
/// `existing`, so a node that later starts on an empty volume receives its
/// data from the other replicas instead of serving nothing (unset, with an
/// older ConfigMap: the node's default, `existing`).
fn initial_cluster_state(cluster: &ClusterRef) -> EnvVar {
    EnvVar {
        name: "DYNAMO_INITIAL_CLUSTER_STATE".into(),
        value_from: Some(EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: cluster.config_map_name(),
                key: INITIAL_CLUSTER_STATE_KEY.into(),
                optional: Some(true),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// The zone's placement on Kubernetes nodes plus the anti-affinity of
/// `mode` that spreads the cluster's pods over hosts (unless the zone's
/// own affinity has one):
/// - `topologyZone` set: required `topology.kubernetes.io/zone` in it;
/// - else the zone's own `affinity` or `nodeSelector`, if any;
/// - else a preference (not a requirement) for nodes whose zone label is
///   the zone's name, so pods run on nodes without zone labels too (a
///   one-node kind cluster) and land in a matching cloud zone when there is
///   one.
fn affinity(cluster: &ClusterRef, zone: &ZoneSpec, mode: PodAntiAffinityMode) -> Affinity {
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
        affinity.pod_anti_affinity = Some(host_anti_affinity(cluster, mode));
    }
    affinity
}

/// Selector of every node pod of the cluster, whatever its zone.
fn node_pods(cluster: &ClusterRef) -> LabelSelector {
    LabelSelector {
        match_labels: Some(cluster.node_selector()),
        ..LabelSelector::default()
    }
}

/// Anti-affinity against the cluster's other node pods on the same host:
/// a preference, or with [`PodAntiAffinityMode::Required`] a requirement.
fn host_anti_affinity(cluster: &ClusterRef, mode: PodAntiAffinityMode) -> PodAntiAffinity {
    let term = PodAffinityTerm {
        topology_key: HOSTNAME_LABEL.into(),
        label_selector: Some(node_pods(cluster)),
        ..PodAffinityTerm::default()
    };
    match mode {
        PodAntiAffinityMode::Preferred => PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: term,
                },
            ]),
            ..PodAntiAffinity::default()
        },
        PodAntiAffinityMode::Required => PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![term]),
            ..PodAntiAffinity::default()
        },
    }
}

/// At most one node pod of the cluster more on a host than on the
/// emptiest eligible one: a scoring preference, or with
/// [`PodAntiAffinityMode::Required`] a filter.
fn host_spread(cluster: &ClusterRef, mode: PodAntiAffinityMode) -> TopologySpreadConstraint {
    let when_unsatisfiable = match mode {
        PodAntiAffinityMode::Preferred => "ScheduleAnyway",
        PodAntiAffinityMode::Required => "DoNotSchedule",
    };
    TopologySpreadConstraint {
        max_skew: 1,
        topology_key: HOSTNAME_LABEL.into(),
        when_unsatisfiable: when_unsatisfiable.into(),
        label_selector: Some(node_pods(cluster)),
        ..TopologySpreadConstraint::default()
    }
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
    use k8s_openapi::api::core::v1::LocalObjectReference;

    use super::*;
    use crate::crd::{AuthSpec, LogFormat, NodeLogging, PodSecuritySpec, SecretReference};
    use crate::reconcile::fixtures::spec;
    use crate::resources::fixtures::cluster_ref;
    use crate::resources::pod_template::{is_managed_annotation, is_managed_label};

    /// The StatefulSet of the first zone of `spec`: 3 replicas, the spec's
    /// storage, config hash `h1`.
    fn first_zone_statefulset(spec: &DynamoClusterSpec) -> StatefulSet {
        statefulset(&cluster_ref(), spec, &spec.zones[0], &spec.storage, 3, "h1")
            .expect("statefulset")
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
        let retention = s
            .persistent_volume_claim_retention_policy
            .clone()
            .expect("retention");
        assert_eq!(retention.when_deleted.as_deref(), Some("Retain"));
        assert_eq!(retention.when_scaled.as_deref(), Some("Delete"));
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

    fn startup(spec: &DynamoClusterSpec) -> Probe {
        first_zone_pod(spec).containers[0]
            .startup_probe
            .clone()
            .expect("startup probe")
    }

    #[test]
    fn a_startup_probe_gives_a_starting_node_ten_minutes_by_default() {
        let mut spec = spec(&[("a", 3)]);
        let probe = startup(&spec);
        let get = probe.http_get.as_ref().expect("http get");
        assert_eq!(get.path.as_deref(), Some("/healthz"));
        assert_eq!(get.port, IntOrString::String("http".into()));
        assert_eq!(get.scheme, None);
        assert_eq!(probe.period_seconds, Some(5));
        assert_eq!(probe.failure_threshold, Some(120), "600 s / 5 s");
        assert_eq!(probe.initial_delay_seconds, None);
        for (timeout, threshold) in [(61, 13), (10, 2), (86400, 17280)] {
            spec.startup_timeout_seconds = Some(timeout);
            assert_eq!(
                startup(&spec).failure_threshold,
                Some(threshold),
                "{timeout}s"
            );
        }
        spec.tls = reference("demo-tls");
        let scheme = startup(&spec).http_get.and_then(|h| h.scheme);
        assert_eq!(scheme.as_deref(), Some("HTTPS"));
    }

    /// `(anti-affinity preferred terms, required terms, spread constraints)`
    /// of the first zone's pods.
    fn spreading(
        spec: &DynamoClusterSpec,
    ) -> (
        Vec<WeightedPodAffinityTerm>,
        Vec<PodAffinityTerm>,
        Vec<TopologySpreadConstraint>,
    ) {
        let pod = first_zone_pod(spec);
        let anti = pod
            .affinity
            .and_then(|a| a.pod_anti_affinity)
            .unwrap_or_default();
        (
            anti.preferred_during_scheduling_ignored_during_execution
                .unwrap_or_default(),
            anti.required_during_scheduling_ignored_during_execution
                .unwrap_or_default(),
            pod.topology_spread_constraints.unwrap_or_default(),
        )
    }

    #[test]
    fn pods_prefer_distinct_hosts_by_default_and_require_them_when_asked() {
        let mut spec = spec(&[("a", 3)]);
        let node_pods = Some(LabelSelector {
            match_labels: Some(cluster_ref().node_selector()),
            ..LabelSelector::default()
        });
        let (preferred, required, spread) = spreading(&spec);
        assert!(required.is_empty());
        assert_eq!(preferred.len(), 1);
        assert_eq!(preferred[0].pod_affinity_term.topology_key, HOSTNAME_LABEL);
        assert_eq!(preferred[0].pod_affinity_term.label_selector, node_pods);
        let expected_spread = |when: &str| TopologySpreadConstraint {
            max_skew: 1,
            topology_key: HOSTNAME_LABEL.into(),
            when_unsatisfiable: when.into(),
            label_selector: node_pods.clone(),
            ..TopologySpreadConstraint::default()
        };
        assert_eq!(spread, [expected_spread("ScheduleAnyway")]);

        spec.pod_anti_affinity = PodAntiAffinityMode::Required;
        let (preferred, required, spread) = spreading(&spec);
        assert!(preferred.is_empty());
        assert_eq!(required.len(), 1);
        assert_eq!(required[0].topology_key, HOSTNAME_LABEL);
        assert_eq!(required[0].label_selector, node_pods);
        assert_eq!(spread, [expected_spread("DoNotSchedule")]);
    }

    #[test]
    fn a_zones_own_pod_anti_affinity_replaces_the_spreading() {
        let mut spec = spec(&[("a", 3)]);
        spec.pod_anti_affinity = PodAntiAffinityMode::Required;
        let own = PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![]),
            ..PodAntiAffinity::default()
        };
        spec.zones[0].affinity = Some(Affinity {
            pod_anti_affinity: Some(own.clone()),
            ..Affinity::default()
        });
        let pod = first_zone_pod(&spec);
        assert_eq!(pod.affinity.and_then(|a| a.pod_anti_affinity), Some(own));
        assert_eq!(pod.topology_spread_constraints, None);
    }

    #[test]
    fn pull_secrets_service_account_and_priority_class_reach_the_pod() {
        let mut spec = spec(&[("a", 3)]);
        let pod = first_zone_pod(&spec);
        assert_eq!(pod.image_pull_secrets, None);
        assert_eq!(pod.service_account_name, None);
        assert_eq!(
            pod.automount_service_account_token,
            Some(false),
            "nodes never call the Kubernetes API"
        );
        assert_eq!(pod.priority_class_name, None);

        spec.image_pull_secrets = vec![LocalObjectReference {
            name: "registry".into(),
        }];
        spec.service_account_name = Some("dynamo-node".into());
        spec.priority_class_name = Some("storage-critical".into());
        let pod = first_zone_pod(&spec);
        assert_eq!(
            pod.image_pull_secrets,
            Some(vec![LocalObjectReference {
                name: "registry".into()
            }])
        );
        assert_eq!(pod.service_account_name.as_deref(), Some("dynamo-node"));
        assert_eq!(
            pod.automount_service_account_token, None,
            "the named ServiceAccount decides"
        );
        assert_eq!(pod.priority_class_name.as_deref(), Some("storage-critical"));
    }

    fn template_metadata(spec: &DynamoClusterSpec) -> ObjectMeta {
        first_zone_statefulset(spec)
            .spec
            .expect("spec")
            .template
            .metadata
            .expect("metadata")
    }

    #[test]
    fn pod_labels_and_annotations_are_added_and_the_operators_keys_win() {
        let mut spec = spec(&[("a", 3)]);
        spec.pod_labels = BTreeMap::from([
            ("team".into(), "storage".into()),
            (ZONE_LABEL.into(), "elsewhere".into()),
            ("app.kubernetes.io/instance".into(), "other".into()),
        ]);
        spec.pod_annotations = BTreeMap::from([
            ("prometheus.io/scrape".into(), "true".into()),
            (CONFIG_HASH_ANNOTATION.into(), "forged".into()),
        ]);
        spec.pod_template = BTreeMap::from([(
            "metadata".to_string(),
            serde_json::json!({"labels": {"app.kubernetes.io/component": null, "tier": "data"}}),
        )]);
        let metadata = template_metadata(&spec);
        let labels = metadata.labels.expect("labels");
        assert_eq!(labels["team"], "storage");
        assert_eq!(labels["tier"], "data");
        for (key, value) in cluster_ref().zone_selector("a") {
            assert_eq!(labels.get(&key), Some(&value), "{key}");
        }
        let annotations = metadata.annotations.expect("annotations");
        assert_eq!(annotations["prometheus.io/scrape"], "true");
        assert_eq!(annotations[CONFIG_HASH_ANNOTATION], "h1");
    }

    #[test]
    fn every_label_and_annotation_the_operator_sets_is_reserved() {
        let metadata = template_metadata(&spec(&[("a", 3)]));
        for key in metadata.labels.expect("labels").keys() {
            assert!(is_managed_label(key), "{key}");
        }
        for key in metadata.annotations.expect("annotations").keys() {
            assert!(is_managed_annotation(key), "{key}");
        }
        assert!(!is_managed_label("team") && !is_managed_annotation("team"));
    }

    #[test]
    fn without_assign_ids_the_platform_picks_user_and_groups() {
        let mut spec = spec(&[("a", 3)]);
        spec.pod_security = Some(PodSecuritySpec { assign_ids: false });
        let pod = first_zone_pod(&spec);
        let context = pod.security_context.expect("pod security context");
        assert_eq!(
            (context.run_as_user, context.run_as_group, context.fs_group),
            (None, None, None)
        );
        assert_eq!(context.run_as_non_root, Some(true));
        assert_eq!(
            context.seccomp_profile.map(|p| p.type_).as_deref(),
            Some("RuntimeDefault")
        );
        let container = pod.containers[0].security_context.clone().expect("context");
        assert_eq!(container.read_only_root_filesystem, Some(true));
        assert_eq!(container.allow_privilege_escalation, Some(false));

        spec.pod_security = Some(PodSecuritySpec { assign_ids: true });
        let context = first_zone_pod(&spec).security_context.expect("context");
        assert_eq!(
            (context.run_as_user, context.run_as_group, context.fs_group),
            (Some(NODE_UID), Some(NODE_UID), Some(NODE_UID))
        );
    }

    #[test]
    fn a_pod_template_override_sets_resources_env_and_a_sidecar() {
        let mut spec = spec(&[("a", 3)]);
        spec.pod_template = serde_json::from_value(serde_json::json!({
            "spec": {
                "containers": [
                    {
                        "name": "node",
                        "env": [{"name": "RUST_LOG", "value": "debug"}],
                        "resources": {"requests": {"cpu": "2"}, "limits": {"memory": "4Gi"}}
                    },
                    {"name": "exporter", "image": "exporter:1"}
                ]
            }
        }))
        .expect("override");
        let pod = first_zone_pod(&spec);
        let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["node", "exporter"]);
        let node = &pod.containers[0];
        let env: Vec<&str> = node.env.iter().flatten().map(|e| e.name.as_str()).collect();
        assert_eq!(env.first(), Some(&"DYNAMO_NODE_ID"));
        assert_eq!(env.last(), Some(&"RUST_LOG"));
        let resources = node.resources.clone().expect("resources");
        assert_eq!(resources.requests.expect("requests")["cpu"].0, "2");
        assert_eq!(resources.limits.expect("limits")["memory"].0, "4Gi");
        assert!(node.startup_probe.is_some(), "the rest is kept");
    }

    #[test]
    fn a_pod_template_override_that_breaks_the_node_contract_fails() {
        let mut spec = spec(&[("a", 3)]);
        spec.pod_template = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [{"name": "node", "env": [{"name": "DYNAMO_ZONE", "value": "b"}]}]}
        }))
        .expect("override");
        let error = statefulset(
            &cluster_ref(),
            &spec,
            &spec.zones[0],
            &spec.storage,
            3,
            "h1",
        )
        .expect_err("refused");
        assert_eq!(
            error,
            PodTemplateError::Protected("spec.containers[name=node].env[name=DYNAMO_ZONE]".into())
        );
    }

    /// The node container's value of the environment variable `name`.
    fn node_env(spec: &DynamoClusterSpec, name: &str) -> Option<String> {
        first_zone_pod(spec).containers[0]
            .env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .map(|e| e.value.clone().expect("a plain value"))
    }

    #[test]
    fn nodes_log_json_lines_unless_the_spec_asks_for_text() {
        let mut spec = spec(&[("a", 3)]);
        assert_eq!(
            node_env(&spec, "DYNAMO_LOG_FORMAT").as_deref(),
            Some("json")
        );
        assert_eq!(
            node_env(&spec, "RUST_LOG"),
            None,
            "the node's default level"
        );
        spec.logging = Some(NodeLogging::default());
        assert_eq!(
            node_env(&spec, "DYNAMO_LOG_FORMAT").as_deref(),
            Some("json")
        );
        spec.logging = Some(NodeLogging {
            format: LogFormat::Text,
            level: Some("info,dynamo_node::antientropy=debug".into()),
        });
        assert_eq!(
            node_env(&spec, "DYNAMO_LOG_FORMAT").as_deref(),
            Some("text")
        );
        assert_eq!(
            node_env(&spec, "RUST_LOG").as_deref(),
            Some("info,dynamo_node::antientropy=debug")
        );
    }

    #[test]
    fn the_log_settings_are_the_operators_not_the_pod_templates() {
        let mut spec = spec(&[("a", 3)]);
        spec.pod_template.insert(
            "spec".into(),
            serde_json::json!({"containers": [{"name": "node", "env": [{"name": "DYNAMO_LOG_FORMAT", "value": "text"}]}]}),
        );
        let error = pod_template(&cluster_ref(), &spec, &spec.zones[0], "h1").expect_err("refused");
        assert_eq!(
            error,
            PodTemplateError::Protected(
                "spec.containers[name=node].env[name=DYNAMO_LOG_FORMAT]".into()
            )
        );
    }

    #[test]
    fn every_pod_setting_changes_the_template_hash() {
        let base = spec(&[("a", 3)]);
        type Change = fn(&mut DynamoClusterSpec);
        let hash = |change: Change| {
            let mut spec = base.clone();
            change(&mut spec);
            applied_template_hash(&first_zone_statefulset(&spec)).map(str::to_string)
        };
        let unchanged = hash(|_| {});
        let changes: [(&str, Change); 11] = [
            ("logging.format", |s| {
                s.logging = Some(NodeLogging {
                    format: LogFormat::Text,
                    level: None,
                });
            }),
            ("logging.level", |s| {
                s.logging = Some(NodeLogging {
                    format: LogFormat::Json,
                    level: Some("debug".into()),
                });
            }),
            ("startupTimeoutSeconds", |s| {
                s.startup_timeout_seconds = Some(900)
            }),
            ("podAntiAffinity", |s| {
                s.pod_anti_affinity = PodAntiAffinityMode::Required;
            }),
            ("imagePullSecrets", |s| {
                s.image_pull_secrets = vec![LocalObjectReference { name: "r".into() }];
            }),
            ("serviceAccountName", |s| {
                s.service_account_name = Some("sa".into());
            }),
            ("priorityClassName", |s| {
                s.priority_class_name = Some("high".into());
            }),
            ("podLabels", |s| {
                s.pod_labels.insert("team".into(), "storage".into());
            }),
            ("podAnnotations", |s| {
                s.pod_annotations.insert("note".into(), "x".into());
            }),
            ("podSecurity", |s| {
                s.pod_security = Some(PodSecuritySpec { assign_ids: false });
            }),
            ("podTemplate", |s| {
                s.pod_template.insert(
                    "spec".into(),
                    serde_json::json!({"terminationGracePeriodSeconds": 90}),
                );
            }),
        ];
        for (field, change) in changes {
            assert_ne!(hash(change), unchanged, "{field}");
        }
    }
}
