//! Storage changes a StatefulSet cannot follow.
//!
//! A StatefulSet's volume claim templates are immutable: the API server
//! answers 422 to any change of them. So when the spec's `storage` differs
//! from what a zone's StatefulSet already has, the zone keeps its current
//! claim template (everything else in the spec is still applied) and the
//! difference is reported, with what to do about it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

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
}

/// The zones whose existing claim template differs from `wanted`: sizes
/// compared by amount (`1024Mi` is `1Gi`), storage classes as named.
pub fn held_storage(
    wanted: &StorageSpec,
    statefulsets: &BTreeMap<String, StatefulSetState>,
) -> Vec<HeldStorage> {
    statefulsets
        .iter()
        .filter_map(|(zone, sts)| {
            let size = sts.storage_size.as_deref()?;
            let size_differs = !quantity::same(size, &wanted.size.0);
            let class_differs = sts.storage_class != wanted.storage_class_name;
            if !size_differs && !class_differs {
                return None;
            }
            let mut changes = Vec::new();
            if size_differs {
                changes.push(format!("size {size} -> {}", wanted.size.0));
            }
            if class_differs {
                changes.push(format!(
                    "storageClassName {} -> {}",
                    class_name(&sts.storage_class),
                    class_name(&wanted.storage_class_name)
                ));
            }
            let message = format!(
                "zone {zone}: storage {} not applied: a StatefulSet's volume claim templates are immutable, so its existing volumes stay as they are; set spec.storage back to size {size}, storageClassName {} to clear this",
                changes.join(", "),
                class_name(&sts.storage_class),
            );
            Some(HeldStorage {
                zone: zone.clone(),
                kept: StorageSpec {
                    size: Quantity(size.to_string()),
                    storage_class_name: sts.storage_class.clone(),
                },
                message,
            })
        })
        .collect()
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
                replicas: 1,
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
        }
    }

    #[test]
    fn a_canonicalised_size_is_no_change() {
        assert!(held_storage(&wanted("1024Mi", None), &sts("1Gi", None)).is_empty());
    }

    #[test]
    fn a_new_class_or_size_keeps_the_existing_template_and_says_why() {
        let held = held_storage(&wanted("1Gi", Some("fast")), &sts("1Gi", Some("standard")));
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].kept, wanted("1Gi", Some("standard")));
        assert!(
            held[0]
                .message
                .contains("storageClassName standard -> fast")
        );
        let held = held_storage(&wanted("2Gi", None), &sts("1Gi", None));
        assert!(held[0].message.contains("size 1Gi -> 2Gi"));
        assert_eq!(held[0].kept, wanted("1Gi", None));
    }
}
