//! The `DynamoCluster` custom resource (`kv.dynamo.dev/v1alpha1`): what a
//! user asks for (spec) and what the operator reports back (status).
//!
//! The schema is generated from these types (see the `crdgen` binary) and
//! kept structural: every field is typed, and the free-form maps
//! (`nodeConfig`, `podTemplate`) are marked
//! `x-kubernetes-preserve-unknown-fields`.

pub mod backup;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, ResourceRequirements, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the custom resource.
pub const GROUP: &str = "kv.dynamo.dev";

/// Default partition count `Q`.
pub const DEFAULT_PARTITIONS: u32 = 1024;

/// A Dynamo-style key-value cluster spread over one or more zones.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kv.dynamo.dev",
    version = "v1alpha1",
    kind = "DynamoCluster",
    plural = "dynamoclusters",
    shortname = "dync",
    namespaced,
    status = "DynamoClusterStatus",
    doc = "A Dynamo-style key-value cluster: zone StatefulSets, a published ring, safe scaling and rolling upgrades.",
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name must be a DNS label that starts with a letter (lowercase letters, digits and '-'): it names the cluster's Services"),
    validation = Rule::new("size(oldSelf.spec.zones.filter(z, z.replicas > 0)) < oldSelf.spec.replication.factor || size(self.spec.zones.filter(z, z.replicas > 0)) >= self.spec.replication.factor").message("zones with nodes cannot drop below replication.factor: the ring keeps the replicas of each partition in distinct zones, so removing or emptying a zone that holds them would put two replicas in one zone (the operator moves a removed zone's data off it only while enough zones remain)"),
    validation = Rule::new("self.spec.zones.all(z, size(self.metadata.name) + size(z.name) <= 51)").message("metadata.name and each zone name together must be at most 51 characters: the zone's StatefulSet <name>-<zone> names its pods and their revision label, which Kubernetes limits to 63"),
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Nodes","type":"integer","description":"Ready node pods","jsonPath":".status.readyNodes"}"#,
    printcolumn = r#"{"name":"Desired","type":"integer","description":"Node pods the spec asks for","jsonPath":".status.desiredNodes"}"#,
    printcolumn = r#"{"name":"Epoch","type":"integer","description":"Published ring epoch","jsonPath":".status.ringEpoch"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DynamoClusterSpec {
    /// Node container image.
    pub image: String,
    /// Image pull policy of the node container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    /// Failure zones, each with its own StatefulSet.
    #[schemars(length(min = 1, max = 16))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(z, self.exists_one(y, y.name == z.name))", "message": "zone names must be unique"}
    ]))]
    pub zones: Vec<ZoneSpec>,
    /// Replication factor and quorums.
    #[serde(default)]
    pub replication: ReplicationSpec,
    /// Partition count `Q`: a power of two, fixed once set (the API server
    /// refuses a change; the operator also refuses one of an existing
    /// ring written before the field was set).
    #[serde(default = "default_partitions")]
    #[schemars(range(min = 1, max = 65536))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536].exists(p, p == self)", "message": "partitions must be a power of two"},
        {"rule": "self == oldSelf", "message": "partitions cannot change: the ring's partition count is fixed when the cluster is created"}
    ]))]
    pub partitions: u32,
    /// Persistent volume of every node.
    pub storage: StorageSpec,
    /// Resource requests and limits of the node container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Extra node settings (keys of the node's TOML file), rendered into
    /// `node.toml`. Settings the operator manages (node id, zone, listen
    /// addresses, auth dir, data dir, N/R/W, partitions, peers) are
    /// rejected.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "free_form_object")]
    pub node_config: BTreeMap<String, serde_json::Value>,
    /// Secret (same namespace, e.g. `kubernetes.io/tls` from cert-manager)
    /// with keys `tls.crt` (PEM certificate chain), `tls.key` (PEM private
    /// key) and `ca.crt` (PEM CA that signed every node certificate);
    /// mounted at `/etc/dynamo-tls` (`DYNAMO_TLS_DIR`). The nodes then serve
    /// HTTPS only on both ports (client and admin API, probes,
    /// node-to-node), and on the node-to-node stream present `tls.crt` as
    /// client certificate and require one signed by `ca.crt`; the operator
    /// calls their admin API over HTTPS trusting `ca.crt`. The certificate
    /// must cover `*.<cluster>-<zone>.<namespace>.svc` for every zone and
    /// `<cluster>.<namespace>.svc`, for server and client authentication.
    /// Nodes read it when they start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<SecretReference>,
    /// Credentials the nodes require, mounted read-only at
    /// `/etc/dynamo-auth` (`DYNAMO_AUTH_DIR`). Authentication is always on:
    /// without `auth` (or without `auth.secretName`) the operator creates
    /// the Secret `<cluster>-auth` with random tokens and uses it; there is
    /// no way to turn authentication off through the operator. Clients of
    /// `/v1/kv` on port 7000 send a client token; the admin routes are on
    /// port 7001 only and take the admin token. Nodes read the admin and
    /// peer tokens when they start (restart the pods after changing them)
    /// and pick up changed client tokens by themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    /// Pod disruption budget settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_disruption: Option<PodDisruptionSpec>,
    /// Seconds a starting node may take to answer `GET /healthz` (opening
    /// its store, replaying its write-ahead log) before the kubelet
    /// restarts it: the budget of the node container's startup probe
    /// (`periodSeconds: 5`, `failureThreshold` this divided by 5, rounded
    /// up). The liveness and readiness probes start only once it succeeded.
    /// Default 600 (10 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 86400))]
    pub startup_timeout_seconds: Option<u32>,
    /// How strictly node pods of the cluster avoid sharing a Kubernetes
    /// node. `Preferred` (default): a preferred pod anti-affinity and a
    /// topology spread constraint (`maxSkew: 1`, `ScheduleAnyway`) over
    /// `kubernetes.io/hostname` spread them, and pods share nodes when
    /// there are too few. `Required`: a required anti-affinity and
    /// `DoNotSchedule`, so two node pods never share a Kubernetes node and
    /// a pod stays Pending while no free node is left. A zone whose own
    /// `affinity` has a `podAntiAffinity` keeps that one and gets no spread
    /// constraint.
    #[serde(default)]
    pub pod_anti_affinity: PodAntiAffinityMode,
    /// Secrets (same namespace) with registry credentials for the node
    /// image: the pods' `imagePullSecrets`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// ServiceAccount the node pods run as. Nodes never call the Kubernetes
    /// API: without it the pods run as the namespace's `default`
    /// ServiceAccount with `automountServiceAccountToken: false`; with it
    /// the ServiceAccount's own `automountServiceAccountToken` decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub service_account_name: Option<String>,
    /// PriorityClass of the node pods; it must exist, or the API server
    /// refuses the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub priority_class_name: Option<String>,
    /// Extra labels of the node pods. Keys the operator sets are refused:
    /// `app.kubernetes.io/name`, `app.kubernetes.io/instance`,
    /// `app.kubernetes.io/managed-by`, `app.kubernetes.io/component` and
    /// every key under `kv.dynamo.dev/`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_labels: BTreeMap<String, String>,
    /// Extra annotations of the node pods. Keys under `kv.dynamo.dev/` are
    /// the operator's and refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
    /// User and group settings of the node pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security: Option<PodSecuritySpec>,
    /// Override of the generated pod template (the `metadata` and `spec` of
    /// the zone StatefulSets' `spec.template`), applied last as a JSON
    /// merge patch (RFC 7386: objects merge key by key, `null` removes a
    /// key, any other value replaces), except that lists of named entries
    /// merge entry by entry on their key: `spec.containers`,
    /// `spec.initContainers`, `spec.volumes` and `spec.imagePullSecrets` on
    /// `name`, and in each container `env` on `name`, `ports` on
    /// `containerPort` and `volumeMounts` on `mountPath`. An entry with a
    /// new key is appended, one with an existing key is merged into that
    /// entry: `{"name": "node", ...}` changes the node container, another
    /// name adds a sidecar. Every other list (`tolerations`, `args`,
    /// `topologySpreadConstraints`, ...) is replaced whole. Refused: an
    /// entry without its key, removing the node container, changing its
    /// `command` or an `env`, `ports` or `volumeMounts` entry the operator
    /// generates, changing a volume the operator generates, a field a pod
    /// template does not have, and labels or annotations the operator sets
    /// (see `podLabels`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "free_form_object")]
    pub pod_template: BTreeMap<String, serde_json::Value>,
    /// Stop every change while true, for maintenance windows and incident
    /// response: the operator applies no object, publishes no ring,
    /// restarts no pod and creates no Secret; it keeps observing and
    /// reports the cluster in the status with the condition `Paused`.
    /// Transfers of a ring published before the pause go on (the nodes
    /// do them). Setting it back to false resumes where the spec says.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// A NetworkPolicy `<cluster>-nodes` for the node pods (none when
    /// unset): the client port 7000 open to `clients` (everyone when
    /// empty), the internal port 7001 (node-to-node stream and admin
    /// routes) only to the cluster's node pods and to pods of any
    /// namespace labelled `kv.dynamo.dev/admin-access: "true"` (the
    /// operator's pods carry it when installed with the chart). It takes
    /// effect only with a network plugin that enforces NetworkPolicies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NodeNetworkPolicy>,
    /// How the nodes log (their container's `DYNAMO_LOG_FORMAT` and
    /// `RUST_LOG`). Unset: JSON lines, one object per event, which log
    /// collectors parse without configuration, at the node's default level
    /// (`info`). Nodes read it when they start: a change restarts the pods
    /// one at a time, like any other change of the pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<NodeLogging>,
    /// A backup to restore once, when the cluster is first Ready: the
    /// operator creates the `DynamoRestore` `<cluster>-restore` (owned by
    /// the cluster) and reports it in the condition `Restored`. The
    /// records are merged like replica writes, so writes the cluster
    /// takes meanwhile are kept. Once `Restored` is true a change here
    /// does nothing; use a `DynamoRestore` to restore again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_from: Option<backup::RestoreSource>,
}

fn default_partitions() -> u32 {
    DEFAULT_PARTITIONS
}

fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Image pull policy of the node container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PullPolicy {
    /// Always pull.
    Always,
    /// Pull when the image is missing on the node.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl PullPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// One failure zone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZoneSpec {
    /// Zone name: a DNS label, also the ring zone of its nodes (a logical
    /// failure domain: replicas of a key go to distinct zones first).
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Number of storage nodes in the zone.
    #[schemars(range(min = 0, max = 256))]
    pub replicas: i32,
    /// Kubernetes zone (the `topology.kubernetes.io/zone` node label) the
    /// zone's pods must run in. Without it, and without `nodeSelector` or
    /// `affinity`, pods prefer nodes whose zone label is the zone's name
    /// and run on any node otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub topology_zone: Option<String>,
    /// Node selector of the zone's pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Affinity of the zone's pods (pod anti-affinity on hostname is added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Tolerations of the zone's pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
}

/// Replication factor `N`, read quorum `R` and write quorum `W`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.readQuorum <= self.factor", "message": "readQuorum must be at most factor"},
    {"rule": "self.writeQuorum <= self.factor", "message": "writeQuorum must be at most factor"}
]))]
/// Dynamo's N, R and W. The YAML keys are spelt out because a bare `n`
/// is the boolean `false` to YAML 1.1 parsers such as kubectl's and
/// Helm's.
pub struct ReplicationSpec {
    /// N: replicas per key; fixed once the ring exists.
    #[serde(rename = "factor")]
    #[schemars(range(min = 1, max = 16))]
    pub n: u32,
    /// R: read quorum, `1..=factor`.
    #[serde(rename = "readQuorum")]
    #[schemars(range(min = 1, max = 16))]
    pub r: u32,
    /// W: write quorum, `1..=factor`.
    #[serde(rename = "writeQuorum")]
    #[schemars(range(min = 1, max = 16))]
    pub w: u32,
}

impl Default for ReplicationSpec {
    fn default() -> Self {
        ReplicationSpec { n: 3, r: 2, w: 2 }
    }
}

/// Persistent volume of every node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)", "message": "storageClassName cannot change: a StatefulSet cannot move its volumes to another storage class (make a new cluster and copy the data)"}
]))]
pub struct StorageSpec {
    /// Volume size, e.g. `10Gi`.
    pub size: Quantity,
    /// Storage class; the cluster default when absent. Fixed once set (the
    /// API server refuses a change; the operator holds one made under an
    /// older CRD and says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// What happens to the volume claims when the cluster is deleted:
    /// `Retain` (default: the data outlives the cluster; delete the claims
    /// by hand, or a cluster created again under the same name refuses
    /// them) or `Delete`. Claims of pods removed by a scale-down are always
    /// deleted, once the ring without them is confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_deleted: Option<ClaimRetention>,
}

/// What happens to the volume claims when the cluster is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ClaimRetention {
    /// Keep the claims and their data.
    #[default]
    Retain,
    /// Delete the claims with the cluster.
    Delete,
}

impl ClaimRetention {
    /// The StatefulSet's `persistentVolumeClaimRetentionPolicy` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retain => "Retain",
            Self::Delete => "Delete",
        }
    }
}

/// A Secret in the cluster's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// Secret name.
    pub secret_name: String,
}

/// Where the nodes' credentials come from. Nodes read the admin and peer
/// tokens when they start and pick up changed client tokens by themselves.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// Secret (same namespace) with the nodes' bearer tokens, one per key:
    /// `admin-token` (opens the admin routes `/v1/admin/*` and
    /// `/v1/status`; the operator sends it with its admin calls),
    /// `peer-token` (nodes send it to each other on the node-to-node
    /// stream), optionally `client-token` (one client with read-write
    /// rights on every key under `/v1/kv`), or the legacy `token`, which
    /// serves every role whose own key is absent. It must hold
    /// `admin-token` and `peer-token`, or `token`; otherwise the cluster is
    /// held with a `Degraded` condition. Unset: the operator creates the
    /// Secret `<cluster>-auth` (if it does not exist; it never overwrites
    /// it) with `admin-token`, `peer-token` and `client-token`, each 32
    /// random bytes hex-encoded, owned by the cluster so it is deleted with
    /// it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,
    /// Secret (same namespace) whose key `clients.json` holds scoped
    /// application tokens: a JSON array of `{"name": "orders", "token":
    /// "...", "prefix": "orders/", "access": "read" | "read-write"}`. It is
    /// projected as `clients.json` next to the tokens; a missing Secret or
    /// key holds the cluster with a `Degraded` condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub clients_secret_name: Option<String>,
}

/// The node pods' NetworkPolicy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeNetworkPolicy {
    /// Whether the operator keeps the NetworkPolicy (default true); false
    /// deletes it. Removing `networkPolicy` altogether leaves the last
    /// one in place: set `enabled: false` to remove it.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Who may reach the client port 7000, as NetworkPolicy `from` entries
    /// (pod and namespace selectors, IP blocks); empty: every pod and
    /// address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<k8s_openapi::api::networking::v1::NetworkPolicyPeer>,
}

fn enabled() -> bool {
    true
}

/// How the nodes log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeLogging {
    /// `json` (default): one JSON object per line with `timestamp`,
    /// `level`, `node`, `target` and `fields`; `text`: one human-readable
    /// line per event. Either way without ANSI colour codes.
    #[serde(default)]
    pub format: LogFormat,
    /// A `RUST_LOG` filter of the nodes: a level (`error`, `warn`, `info`,
    /// `debug`, `trace`) or directives such as
    /// `info,dynamo_node::antientropy=debug`. Unset: `info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub level: Option<String>,
}

/// Format of the nodes' log lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// One human-readable line per event.
    Text,
}

impl LogFormat {
    /// The node's spelling (`--log-format`, `DYNAMO_LOG_FORMAT`).
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Json => "json",
            LogFormat::Text => "text",
        }
    }
}

/// Pod disruption budget settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodDisruptionSpec {
    /// Overrides the derived `maxUnavailable` (see the operator docs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 16))]
    pub max_unavailable: Option<i32>,
}

/// How strictly node pods of a cluster avoid sharing a Kubernetes node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PodAntiAffinityMode {
    /// Spread over nodes where possible, share nodes otherwise.
    #[default]
    Preferred,
    /// Never two node pods of the cluster on one Kubernetes node.
    Required,
}

/// User and group settings of the node pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSecuritySpec {
    /// True (default): the pods run as user and group 10001 with `fsGroup`
    /// 10001. False: `runAsUser`, `runAsGroup` and `fsGroup` stay unset,
    /// for platforms that assign them, such as OpenShift's `restricted-v2`
    /// SecurityContextConstraints (elsewhere the image's user, 10001,
    /// applies). Either way the pods must run as non-root, without
    /// privilege escalation, with every capability dropped, the
    /// `RuntimeDefault` seccomp profile and a read-only root filesystem.
    #[serde(default = "default_assign_ids")]
    pub assign_ids: bool,
}

fn default_assign_ids() -> bool {
    true
}

/// What the operator observed and did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DynamoClusterStatus {
    /// `Ready`, `Progressing`, `Degraded` and `Rebalancing`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Epoch of the published ring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_epoch: Option<u64>,
    /// Coarse summary of what the cluster is doing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Per zone ready and desired node counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<ZoneStatus>,
    /// Node pods ready, over all zones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_nodes: Option<i32>,
    /// Node pods the spec asks for, over all zones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_nodes: Option<i32>,
    /// Progress of moving partitions to the published ring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalancing: Option<RebalancingStatus>,
}

/// Coarse summary of what the cluster is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// Pods are being created; no node is serving yet.
    Creating,
    /// Every node is ready and owns its share of the ring.
    Running,
    /// New nodes are being started before they join the ring.
    ScalingUp,
    /// Nodes are leaving: first the ring, then the StatefulSet.
    ScalingDown,
    /// Partitions are moving to the published ring.
    Rebalancing,
    /// Pods are being replaced one at a time.
    Upgrading,
    /// The spec was refused; the cluster keeps its last good state.
    Invalid,
}

/// Ready and desired node counts of a zone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZoneStatus {
    /// Zone name.
    pub name: String,
    /// Nodes the spec asks for.
    pub desired: i32,
    /// Pods currently ready.
    pub ready: i32,
}

/// Progress of moving partitions to the published ring.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RebalancingStatus {
    /// Epoch being moved to.
    pub epoch: u64,
    /// Partition copies not yet received, summed over reporting nodes.
    pub pending_partitions: u32,
    /// Partition copies received, summed over reporting nodes.
    pub done_partitions: u32,
    /// Ring members that have not confirmed every partition they own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incomplete_nodes: Vec<String>,
}

/// Condition types the operator maintains.
pub mod condition {
    /// Every node is ready, in the ring and done transferring.
    pub const READY: &str = "Ready";
    /// The operator is moving the cluster towards the spec.
    pub const PROGRESSING: &str = "Progressing";
    /// Some ring member is not ready or does not answer the admin API.
    pub const DEGRADED: &str = "Degraded";
    /// Partitions are moving to the published ring.
    pub const REBALANCING: &str = "Rebalancing";
    /// Every part of the spec is in effect (false when a change the
    /// StatefulSets cannot follow, such as a new storage class, is held).
    pub const SPEC_APPLIED: &str = "SpecApplied";
    /// `spec.paused` is true: the operator changes nothing.
    pub const PAUSED: &str = "Paused";
    /// With `spec.tls`: the nodes' certificate is one peers accept now
    /// (reason `ExpiresSoon` while true but within a week of its end).
    pub const TLS_CERTIFICATE: &str = "TlsCertificate";
    /// With `spec.restoreFrom`: the backup is restored (false while
    /// waiting for the cluster to be Ready, restoring, or failed).
    pub const RESTORED: &str = "Restored";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_to_a_minimal_spec() {
        let spec: DynamoClusterSpec = serde_json::from_value(serde_json::json!({
            "image": "dynamo:1",
            "zones": [{"name": "a", "replicas": 3}],
            "storage": {"size": "1Gi"}
        }))
        .expect("minimal spec parses");
        assert_eq!(spec.replication, ReplicationSpec { n: 3, r: 2, w: 2 });
        assert_eq!(spec.partitions, DEFAULT_PARTITIONS);
        assert!(spec.node_config.is_empty());
        assert_eq!(spec.auth, None);
    }

    #[test]
    fn pod_settings_default_to_todays_pods() {
        let minimal = serde_json::json!({
            "image": "dynamo:1",
            "zones": [{"name": "a", "replicas": 3}],
            "storage": {"size": "1Gi"}
        });
        let spec: DynamoClusterSpec = serde_json::from_value(minimal.clone()).expect("parses");
        assert_eq!(spec.pod_anti_affinity, PodAntiAffinityMode::Preferred);
        assert_eq!(spec.startup_timeout_seconds, None);
        assert_eq!(spec.pod_security, None);
        assert!(spec.pod_template.is_empty() && spec.pod_labels.is_empty());
        let mut with_settings = minimal;
        with_settings["podSecurity"] = serde_json::json!({});
        with_settings["podAntiAffinity"] = serde_json::json!("Required");
        let spec: DynamoClusterSpec = serde_json::from_value(with_settings).expect("parses");
        assert_eq!(
            spec.pod_security,
            Some(PodSecuritySpec { assign_ids: true })
        );
        assert_eq!(spec.pod_anti_affinity, PodAntiAffinityMode::Required);
    }

    #[test]
    fn logging_defaults_to_json_at_the_nodes_default_level() {
        let spec: DynamoClusterSpec = serde_json::from_value(serde_json::json!({
            "image": "dynamo:1",
            "zones": [{"name": "a", "replicas": 3}],
            "storage": {"size": "1Gi"},
            "logging": {}
        }))
        .expect("spec with empty logging parses");
        assert_eq!(spec.logging, Some(NodeLogging::default()));
        assert_eq!(NodeLogging::default().format.as_str(), "json");
        let text: NodeLogging =
            serde_json::from_value(serde_json::json!({"format": "text", "level": "debug"}))
                .expect("text format parses");
        assert_eq!(text.format, LogFormat::Text);
        assert_eq!(text.level.as_deref(), Some("debug"));
        assert!(
            serde_json::from_value::<NodeLogging>(serde_json::json!({"format": "Json"})).is_err()
        );
    }

    #[test]
    fn an_auth_secret_name_written_for_the_single_token_secret_still_parses() {
        let spec: DynamoClusterSpec = serde_json::from_value(serde_json::json!({
            "image": "dynamo:1",
            "zones": [{"name": "a", "replicas": 3}],
            "storage": {"size": "1Gi"},
            "auth": {"secretName": "demo-auth"}
        }))
        .expect("spec with auth.secretName parses");
        assert_eq!(
            spec.auth,
            Some(AuthSpec {
                secret_name: Some("demo-auth".into()),
                clients_secret_name: None,
            })
        );
    }
}
