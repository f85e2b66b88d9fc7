//! Which changes of a `DynamoCluster` start a reconcile.
//!
//! A change of the spec (a new `metadata.generation`) or of the annotations
//! (`kubectl annotate` to ask for a reconcile now) does; a status update,
//! the operator's own after every reconcile, does not. Owned objects and
//! pods start reconciles through their own watches, and a settled cluster
//! is looked at again every 5 minutes.

use kube::runtime::{Predicate, predicates};

use crate::crd::DynamoCluster;

/// The key of a `DynamoCluster` event: a reconcile starts when it changes.
pub fn cluster_trigger() -> impl Predicate<DynamoCluster> {
    predicates::generation.combine(predicates::annotations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::DynamoClusterStatus;
    use crate::reconcile::fixtures::{cluster, spec};

    fn key(c: &DynamoCluster) -> Option<u64> {
        cluster_trigger().hash_property(c)
    }

    #[test]
    fn spec_and_annotation_changes_trigger_and_status_updates_do_not() {
        let mut c = cluster(spec(&[("a", 3)]));
        c.metadata.generation = Some(1);
        let first = key(&c);
        assert!(first.is_some());

        c.status = Some(DynamoClusterStatus {
            ring_epoch: Some(7),
            ..DynamoClusterStatus::default()
        });
        assert_eq!(key(&c), first, "a status update");

        c.metadata.generation = Some(2);
        let second = key(&c);
        assert_ne!(second, first, "a spec change");

        c.metadata
            .annotations
            .get_or_insert_default()
            .insert("test/nudge".into(), "1".into());
        assert_ne!(key(&c), second, "an annotation");
    }
}
