//! Storage changes: growing volumes, and the changes a StatefulSet cannot
//! follow.
//!
//! A StatefulSet's volume claim templates are immutable: the API server
//! answers 422 to any change of them, so a zone's StatefulSet always keeps
//! the claim template it was created with. A larger `storage.size` is
//! carried out on the claims themselves where the StorageClass allows
//! expansion: every claim of the zone smaller than the spec is asked to
//! grow, including the claim of a pod added later (made from the old
//! template, then grown). The StatefulSet is not recreated for it: deleting
//! it with its pods orphaned risks the pods (a garbage collector that has
//! not seen them as dependents deletes them as dangling). A smaller size
//! (volumes cannot shrink), another storage class, or a size the API
//! server refuses to grow to are held and reported, with what to do about
//! it; everything else in the spec is still applied.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::claims::ClaimState;
use super::observe::StatefulSetState;
use crate::crd::StorageSpec;
use crate::quantity;

/// A zone whose claim template stays as it is although the spec differs.
#[derive(Clone, Debug, PartialEq)]
pub struct HeldStorage {
    /// The zone.
    pub zone: String,
    /// What its StatefulSet keeps.
    pub kept: StorageSpec,
    /// Why, for people.
    pub message: String,
    /// The change is under way (volumes growing), not refused.
    pub expanding: bool,
}

/// What the storage of the zones needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoragePlan {
    /// Zones whose StatefulSet keeps a claim template other than the
    /// spec's, with that template.
    pub kept: BTreeMap<String, StorageSpec>,
    /// Storage changes refused or under way, reported in the status.
    pub held: Vec<HeldStorage>,
    /// Claims to grow to the spec's size.
    pub grow: Vec<String>,
}

/// Compares every zone StatefulSet's claim template (and its claims) with
/// `wanted`: sizes by amount (`1024Mi` is `1Gi`), storage classes as named.
/// `refusal` is why the API server refuses to grow a claim, if it does.
pub fn storage_plan(
    wanted: &StorageSpec,
    statefulsets: &BTreeMap<String, StatefulSetState>,
    claims: &[ClaimState],
    refusal: Option<&str>,
) -> StoragePlan {
    let mut plan = StoragePlan::default();
    for (zone, sts) in statefulsets {
        let Some(size) = sts.storage_size.as_deref() else {
            continue;
        };
        let zone_claims: Vec<&ClaimState> = claims
            .iter()
            .filter(|c| &c.zone == zone && !c.terminating)
            .collect();
        let kept = StorageSpec {
            size: Quantity(size.to_string()),
            storage_class_name: sts.storage_class.clone(),
            when_deleted: wanted.when_deleted,
        };
        let order = compare(size, &wanted.size.0);
        let larger = above(&zone_claims, &wanted.size.0);
        if !larger.is_empty() && sts.storage_class == wanted.storage_class_name {
            let message = format!(
                "zone {zone}: storage size {} not applied: {larger:?} already ask for more and a volume cannot shrink; set spec.storage.size back to at least what they ask for to clear this",
                wanted.size.0
            );
            plan.kept.insert(zone.clone(), kept.clone());
            plan.held.push(refused(zone, kept, message));
        } else if sts.storage_class != wanted.storage_class_name || order == Ordering::Greater {
            plan.kept.insert(zone.clone(), kept.clone());
            plan.held
                .push(refused(zone, kept, immutable_message(zone, sts, wanted)));
        } else if order == Ordering::Less {
            plan.kept.insert(zone.clone(), kept.clone());
            grow_zone(&mut plan, zone, kept, wanted, &zone_claims, refusal);
        } else {
            let resizing = below(&zone_claims, &wanted.size.0, |c| c.capacity.as_deref());
            if !resizing.is_empty() {
                let message = format!(
                    "zone {zone}: waiting for the storage provider to grow {resizing:?} to {}",
                    wanted.size.0
                );
                plan.held.push(expanding(zone, wanted.clone(), message));
            }
        }
    }
    plan
}

/// A zone whose claim template asks for less than `wanted`: its smaller
/// claims grow, and the growth is reported until every claim provides
/// `wanted`; or it is held when the API server refuses it.
fn grow_zone(
    plan: &mut StoragePlan,
    zone: &str,
    kept: StorageSpec,
    wanted: &StorageSpec,
    claims: &[&ClaimState],
    refusal: Option<&str>,
) {
    let (from, to) = (kept.size.0.clone(), &wanted.size.0);
    if let Some(refusal) = refusal {
        let message = format!(
            "zone {zone}: storage size {from} -> {to} not applied: the API server refuses to grow the claims ({refusal}); use a StorageClass with allowVolumeExpansion: true, or set spec.storage.size back to {from} to clear this"
        );
        plan.held.push(refused(zone, kept, message));
        return;
    }
    let small = below(claims, to, |c| c.requested.as_deref());
    let resizing = below(claims, to, |c| c.capacity.as_deref());
    if !resizing.is_empty() {
        let message = format!(
            "zone {zone}: growing volumes {from} -> {to}: asking {small:?} to grow, waiting for the storage provider to grow {resizing:?}"
        );
        plan.held.push(expanding(zone, kept, message));
    }
    plan.grow.extend(small);
}

/// Names of `claims` whose `size` (requested or provided) is below `to`.
fn below(
    claims: &[&ClaimState],
    to: &str,
    size: impl Fn(&ClaimState) -> Option<&str>,
) -> Vec<String> {
    claims
        .iter()
        .filter(|c| size(c).is_none_or(|s| compare(s, to) == Ordering::Less))
        .map(|c| c.name.clone())
        .collect()
}

/// Names of `claims` that ask for more than `to`.
fn above(claims: &[&ClaimState], to: &str) -> Vec<String> {
    claims
        .iter()
        .filter(|c| {
            c.requested
                .as_deref()
                .is_some_and(|s| compare(s, to) == Ordering::Greater)
        })
        .map(|c| c.name.clone())
        .collect()
}

/// Quantities by amount; unparsable ones as equal (nothing to do).
fn compare(a: &str, b: &str) -> Ordering {
    match (quantity::amount(a), quantity::amount(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => Ordering::Equal,
    }
}

fn refused(zone: &str, kept: StorageSpec, message: String) -> HeldStorage {
    HeldStorage {
        zone: zone.to_string(),
        kept,
        message,
        expanding: false,
    }
}

fn expanding(zone: &str, kept: StorageSpec, message: String) -> HeldStorage {
    HeldStorage {
        zone: zone.to_string(),
        kept,
        message,
        expanding: true,
    }
}

/// Why a change of class, or a smaller size, is not applied.
fn immutable_message(zone: &str, sts: &StatefulSetState, wanted: &StorageSpec) -> String {
    let size = sts.storage_size.as_deref().unwrap_or_default();
    let mut changes = Vec::new();
    if !quantity::same(size, &wanted.size.0) {
        changes.push(format!("size {size} -> {}", wanted.size.0));
    }
    if sts.storage_class != wanted.storage_class_name {
        changes.push(format!(
            "storageClassName {} -> {}",
            class_name(&sts.storage_class),
            class_name(&wanted.storage_class_name)
        ));
    }
    format!(
        "zone {zone}: storage {} not applied: a volume cannot shrink and a StatefulSet cannot change the storage class of its volumes, so its existing volumes stay as they are; set spec.storage back to size {size}, storageClassName {} to clear this",
        changes.join(", "),
        class_name(&sts.storage_class),
    )
}

fn class_name(class: &Option<String>) -> &str {
    class.as_deref().unwrap_or("(cluster default)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(size: &str, class: Option<&str>) -> BTreeMap<String, StatefulSetState> {
        BTreeMap::from([(
            "a".to_string(),
            StatefulSetState {
                zone: "a".into(),
                replicas: 2,
                storage_size: Some(size.into()),
                storage_class: class.map(str::to_string),
                update_revision: None,
                template_hash: None,
                controller_caught_up: true,
            },
        )])
    }

    fn wanted(size: &str, class: Option<&str>) -> StorageSpec {
        StorageSpec {
            size: Quantity(size.into()),
            storage_class_name: class.map(str::to_string),
            when_deleted: None,
        }
    }

    fn claims(requested: [&str; 2], capacity: [&str; 2]) -> Vec<ClaimState> {
        (0..2)
            .map(|i| ClaimState {
                name: format!("data-demo-a-{i}"),
                zone: "a".into(),
                cluster_uid: Some("uid-demo".into()),
                older_than_cluster: false,
                requested: Some(requested[i].into()),
                capacity: Some(capacity[i].into()),
                terminating: false,
            })
            .collect()
    }

    #[test]
    fn a_canonicalised_size_is_no_change() {
        let plan = storage_plan(
            &wanted("1024Mi", None),
            &sts("1Gi", None),
            &claims(["1Gi", "1Gi"], ["1Gi", "1Gi"]),
            None,
        );
        assert_eq!(plan, StoragePlan::default());
    }

    #[test]
    fn a_new_class_or_a_smaller_size_keeps_the_existing_template_and_says_why() {
        let same = claims(["1Gi", "1Gi"], ["1Gi", "1Gi"]);
        let plan = storage_plan(
            &wanted("1Gi", Some("fast")),
            &sts("1Gi", Some("standard")),
            &same,
            None,
        );
        assert_eq!(plan.held.len(), 1);
        assert!(!plan.held[0].expanding);
        assert_eq!(plan.kept["a"], wanted("1Gi", Some("standard")));
        assert!(
            plan.held[0]
                .message
                .contains("storageClassName standard -> fast")
        );
        let plan = storage_plan(&wanted("512Mi", None), &sts("1Gi", None), &same, None);
        assert!(
            plan.held[0]
                .message
                .contains("storage size 512Mi not applied")
        );
        assert!(plan.held[0].message.contains("cannot shrink"));
        assert_eq!(plan.kept["a"], wanted("1Gi", None));
        assert!(plan.grow.is_empty());
    }

    #[test]
    fn a_larger_size_grows_every_smaller_claim_and_keeps_the_template() {
        let plan = storage_plan(
            &wanted("2Gi", None),
            &sts("1Gi", None),
            &claims(["2Gi", "1Gi"], ["1Gi", "1Gi"]),
            None,
        );
        assert_eq!(plan.grow, ["data-demo-a-1"]);
        assert_eq!(
            plan.kept["a"],
            wanted("1Gi", None),
            "the template is immutable"
        );
        assert!(plan.held[0].expanding);
        assert!(plan.held[0].message.contains("data-demo-a-0"));

        let grown = storage_plan(
            &wanted("2Gi", None),
            &sts("1Gi", None),
            &claims(["2Gi", "2Gi"], ["2Gi", "2Gi"]),
            None,
        );
        assert!(grown.grow.is_empty() && grown.held.is_empty(), "{grown:?}");
        assert_eq!(grown.kept["a"], wanted("1Gi", None));

        let back = storage_plan(
            &wanted("1Gi", None),
            &sts("1Gi", None),
            &claims(["2Gi", "2Gi"], ["2Gi", "2Gi"]),
            None,
        );
        assert!(back.held[0].message.contains("cannot shrink"), "{back:?}");
        assert!(!back.held[0].expanding && back.grow.is_empty());
    }

    #[test]
    fn a_growth_the_api_server_refuses_is_held_with_its_answer() {
        let plan = storage_plan(
            &wanted("2Gi", None),
            &sts("1Gi", None),
            &claims(["1Gi", "1Gi"], ["1Gi", "1Gi"]),
            Some("data-demo-a-0: only dynamically provisioned pvc can be resized"),
        );
        assert!(plan.grow.is_empty());
        assert!(!plan.held[0].expanding);
        assert!(plan.held[0].message.contains("allowVolumeExpansion"));
        assert!(
            plan.held[0]
                .message
                .contains("only dynamically provisioned")
        );
    }
}
