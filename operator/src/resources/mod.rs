//! Pure builders of every object the operator owns for a cluster, one file
//! per kind, plus the names and labels they share.

pub mod auth;
pub mod configmap;
pub mod network_policy;
pub mod pdb;
pub mod pod_template;
pub mod service;
pub mod statefulset;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// Port of the node's client API (`/v1/kv/...`) and probes (`--listen`):
/// container port `http`, the only port of the client Service.
pub const CLIENT_PORT: i32 = 7000;

/// Port of the node-to-node stream and the admin API
/// (`--internal-listen`): container port `internal`, on the per-zone
/// headless Services. Ring member addresses, which peers dial and the
/// operator's admin calls use, are on this port.
pub const INTERNAL_PORT: i32 = 7001;

/// Label with the ring zone of a node pod.
pub const ZONE_LABEL: &str = "kv.dynamo.dev/zone";

/// Label with the cluster name.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// Label the StatefulSet controller puts on pods with their revision.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// Pod template annotation with a hash of the node configuration, so a
/// configuration change is a template change (and a rolling restart).
pub const CONFIG_HASH_ANNOTATION: &str = "kv.dynamo.dev/config-hash";

/// Annotation of a zone StatefulSet: hash of the pod template the operator
/// last applied, so the next reconcile knows whether a rollout is starting
/// before the StatefulSet controller has computed a new revision.
pub const TEMPLATE_HASH_ANNOTATION: &str = "kv.dynamo.dev/template-hash";

/// Pod annotation asking the operator to replace the pod with one on a
/// new, empty volume: `kubectl annotate pod <pod> kv.dynamo.dev/replace=true`
/// (see `reconcile::replace`).
pub const REPLACE_ANNOTATION: &str = "kv.dynamo.dev/replace";

/// Identity of one cluster: what every object name and label derives from.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterRef {
    /// `DynamoCluster` name.
    pub name: String,
    /// Namespace of the cluster and everything it owns.
    pub namespace: String,
    /// Owner reference (controller) pointing at the cluster.
    pub owner: OwnerReference,
}

impl ClusterRef {
    /// Labels on every owned object.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), "dynamo".to_string()),
            (INSTANCE_LABEL.to_string(), self.name.clone()),
            (
                "app.kubernetes.io/managed-by".to_string(),
                "dynamo-operator".to_string(),
            ),
        ])
    }

    /// Labels selecting every node pod of the cluster.
    pub fn node_selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), "dynamo".to_string()),
            (INSTANCE_LABEL.to_string(), self.name.clone()),
            (
                "app.kubernetes.io/component".to_string(),
                "node".to_string(),
            ),
        ])
    }

    /// Labels selecting the node pods of one zone.
    pub fn zone_selector(&self, zone: &str) -> BTreeMap<String, String> {
        let mut labels = self.node_selector();
        labels.insert(ZONE_LABEL.to_string(), zone.to_string());
        labels
    }

    /// Label selector string matching every node pod of the cluster.
    pub fn node_selector_string(&self) -> String {
        selector_string(&self.node_selector())
    }

    /// Label selector string matching every object owned by the cluster.
    pub fn owned_selector_string(&self) -> String {
        format!("{INSTANCE_LABEL}={}", self.name)
    }

    /// Name of a zone's StatefulSet and headless Service.
    pub fn zone_object_name(&self, zone: &str) -> String {
        format!("{}-{zone}", self.name)
    }

    /// Name of a node pod (also its ring member id).
    pub fn pod_name(&self, zone: &str, ordinal: i32) -> String {
        format!("{}-{zone}-{ordinal}", self.name)
    }

    /// Internal `HOST:PORT` of a node pod, as published in the ring.
    pub fn pod_address(&self, zone: &str, pod: &str) -> String {
        format!(
            "{pod}.{}.{}.svc:{INTERNAL_PORT}",
            self.zone_object_name(zone),
            self.namespace
        )
    }

    /// Name of the ConfigMap holding `node.toml` and `ring.json`.
    pub fn config_map_name(&self) -> String {
        format!("{}-config", self.name)
    }

    /// Name of the auth Secret the operator generates when `spec.auth`
    /// names none.
    pub fn generated_auth_secret_name(&self) -> String {
        format!("{}-auth", self.name)
    }

    /// Metadata of an owned object: name, namespace, labels, owner.
    pub fn metadata(&self, name: String, extra_labels: BTreeMap<String, String>) -> ObjectMeta {
        let mut labels = self.labels();
        labels.extend(extra_labels);
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }
}

fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// The cluster `demo` in namespace `default`.
    pub fn cluster_ref() -> ClusterRef {
        ClusterRef {
            name: "demo".into(),
            namespace: "default".into(),
            owner: OwnerReference {
                api_version: "kv.dynamo.dev/v1alpha1".into(),
                kind: "DynamoCluster".into(),
                name: "demo".into(),
                uid: "uid-demo".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::cluster_ref;

    #[test]
    fn names_and_addresses_follow_the_statefulset_scheme() {
        let c = cluster_ref();
        assert_eq!(c.zone_object_name("a"), "demo-a");
        assert_eq!(c.pod_name("a", 2), "demo-a-2");
        assert_eq!(
            c.pod_address("a", "demo-a-2"),
            "demo-a-2.demo-a.default.svc:7001",
            "ring addresses are on the internal port"
        );
        assert_eq!(c.config_map_name(), "demo-config");
        assert_eq!(c.generated_auth_secret_name(), "demo-auth");
        assert_eq!(
            c.node_selector_string(),
            "app.kubernetes.io/component=node,app.kubernetes.io/instance=demo,app.kubernetes.io/name=dynamo"
        );
    }
}
