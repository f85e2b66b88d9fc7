//! The cluster's volume claims as observed: which belong to it (labelled
//! with its uid), which a previous cluster of the same name left behind,
//! and their requested and provisioned sizes (for volume expansion).
//!
//! The StatefulSets make claims `data-<cluster>-<zone>-<ordinal>`. The
//! operator labels each claim made for this cluster with
//! [`CLUSTER_UID_LABEL`]; a claim of that name carrying another uid, or
//! unlabelled and older than the cluster, was left by a deleted cluster of
//! the same name and is never adopted (validation holds the cluster until
//! it is deleted).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::resources::ClusterRef;

/// Label naming the uid of the cluster a claim was made for.
pub const CLUSTER_UID_LABEL: &str = "kv.dynamo.dev/cluster-uid";

/// One volume claim a zone StatefulSet of the cluster makes or would adopt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimState {
    /// Claim name.
    pub name: String,
    /// Zone of the StatefulSet it belongs to.
    pub zone: String,
    /// The uid in [`CLUSTER_UID_LABEL`], if labelled.
    pub cluster_uid: Option<String>,
    /// Made before the cluster existed.
    pub older_than_cluster: bool,
    /// `spec.resources.requests.storage`.
    pub requested: Option<String>,
    /// `status.capacity.storage`: what the volume provides.
    pub capacity: Option<String>,
    /// Being deleted.
    pub terminating: bool,
}

impl ClaimState {
    /// Whether a previous cluster of the same name left it.
    pub fn is_previous(&self, uid: &str) -> bool {
        match &self.cluster_uid {
            Some(label) => label != uid,
            None => self.older_than_cluster,
        }
    }
}

/// The claims among `claims` that a StatefulSet of one of `zones` makes
/// (`data-<cluster>-<zone>-<ordinal>`), by name.
pub fn claim_states(
    claims: &[PersistentVolumeClaim],
    cluster: &ClusterRef,
    zones: &[String],
    created: Option<&Time>,
) -> Vec<ClaimState> {
    let mut states: Vec<ClaimState> = claims
        .iter()
        .filter_map(|claim| {
            let name = claim.metadata.name.clone()?;
            let zone = zones
                .iter()
                .find(|zone| is_claim_of(&name, cluster, zone))?;
            Some(ClaimState {
                zone: zone.clone(),
                cluster_uid: claim
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(CLUSTER_UID_LABEL).cloned()),
                older_than_cluster: match (&claim.metadata.creation_timestamp, created) {
                    (Some(made), Some(created)) => made.0 < created.0,
                    _ => false,
                },
                requested: storage_of(
                    claim
                        .spec
                        .as_ref()
                        .and_then(|s| s.resources.as_ref())
                        .and_then(|r| r.requests.as_ref()),
                ),
                capacity: storage_of(claim.status.as_ref().and_then(|s| s.capacity.as_ref())),
                terminating: claim.metadata.deletion_timestamp.is_some(),
                name,
            })
        })
        .collect();
    states.sort_by(|a, b| a.name.cmp(&b.name));
    states
}

/// Names of the claims a previous cluster of the same name left.
pub fn previous_claims(states: &[ClaimState], uid: &str) -> Vec<String> {
    states
        .iter()
        .filter(|c| c.is_previous(uid))
        .map(|c| c.name.clone())
        .collect()
}

/// Names of this cluster's claims that do not carry its uid yet.
pub fn unlabelled_claims(states: &[ClaimState], uid: &str) -> Vec<String> {
    states
        .iter()
        .filter(|c| c.cluster_uid.is_none() && !c.is_previous(uid) && !c.terminating)
        .map(|c| c.name.clone())
        .collect()
}

/// The merge patch growing a claim to `size`.
pub fn grow_patch(size: &str) -> serde_json::Value {
    serde_json::json!({"spec": {"resources": {"requests": {"storage": size}}}})
}

/// The merge patch labelling a claim with the uid of its cluster.
pub fn label_patch(uid: &str) -> serde_json::Value {
    serde_json::json!({"metadata": {"labels": {CLUSTER_UID_LABEL: uid}}})
}

/// Whether `name` is `data-<cluster>-<zone>-<ordinal>`.
fn is_claim_of(name: &str, cluster: &ClusterRef, zone: &str) -> bool {
    name.strip_prefix(&format!("data-{}-", cluster.zone_object_name(zone)))
        .is_some_and(|ordinal| !ordinal.is_empty() && ordinal.bytes().all(|b| b.is_ascii_digit()))
}

/// The `storage` entry of a resource list.
fn storage_of(map: Option<&BTreeMap<String, Quantity>>) -> Option<String> {
    map.and_then(|m| m.get("storage")).map(|q| q.0.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::fixtures::cluster_ref;

    fn claim(name: &str, created: &str, uid: Option<&str>) -> PersistentVolumeClaim {
        let labels = uid.map(|uid| serde_json::json!({CLUSTER_UID_LABEL: uid}));
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "creationTimestamp": created, "labels": labels},
            "spec": {"resources": {"requests": {"storage": "1Gi"}}},
            "status": {"capacity": {"storage": "1Gi"}}
        }))
        .expect("claim")
    }

    #[test]
    fn claims_are_ours_by_uid_label_and_a_previous_clusters_are_recognised() {
        let created: Time =
            serde_json::from_value(serde_json::json!("2026-01-02T00:00:00Z")).expect("time");
        let claims = [
            claim("data-demo-a-0", "2026-01-01T00:00:00Z", None),
            claim("data-demo-a-1", "2026-01-03T00:00:00Z", None),
            claim("data-demo-a-2", "2026-01-03T00:00:00Z", Some("uid-old")),
            claim("data-demo-a-3", "2026-01-03T00:00:00Z", Some("uid-demo")),
            claim("data-demo-a-b-0", "2026-01-01T00:00:00Z", None),
            claim("data-demo-z-0", "2026-01-01T00:00:00Z", None),
            claim("data-demo-a-x", "2026-01-01T00:00:00Z", None),
        ];
        let states = claim_states(&claims, &cluster_ref(), &["a".into()], Some(&created));
        let names: Vec<&str> = states.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "data-demo-a-0",
                "data-demo-a-1",
                "data-demo-a-2",
                "data-demo-a-3"
            ]
        );
        assert_eq!(
            previous_claims(&states, "uid-demo"),
            ["data-demo-a-0", "data-demo-a-2"]
        );
        assert_eq!(unlabelled_claims(&states, "uid-demo"), ["data-demo-a-1"]);
        assert_eq!(states[3].requested.as_deref(), Some("1Gi"));
        assert_eq!(states[3].capacity.as_deref(), Some("1Gi"));
    }
}
