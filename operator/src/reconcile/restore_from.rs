//! `DynamoCluster.spec.restoreFrom`: once the cluster is first Ready the
//! cluster reconcile creates the `DynamoRestore` `<cluster>-restore`
//! (owned by the cluster, so its changes reconcile the cluster) and
//! mirrors it into the condition `Restored`. Once that is true nothing
//! more happens, whatever the spec says later.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Api;
use kube::api::PostParams;

use super::status::{ConditionUpdate, is_true, merge_conditions};
use crate::crd::backup::{
    CLUSTER_LABEL, DynamoRestore, DynamoRestoreSpec, RestoreSource, TransferPhase,
};
use crate::crd::condition::{READY, RESTORED};
use crate::crd::{DynamoCluster, DynamoClusterStatus};
use crate::resources::ClusterRef;

/// Name of the restore `spec.restoreFrom` makes for cluster `cluster`.
pub fn restore_name(cluster: &str) -> String {
    format!("{cluster}-restore")
}

/// The `DynamoRestore` of `spec.restoreFrom`, owned by the cluster.
pub fn restore_object(cluster: &ClusterRef, source: &RestoreSource) -> DynamoRestore {
    let mut labels = cluster.labels();
    labels.insert(CLUSTER_LABEL.to_string(), cluster.name.clone());
    DynamoRestore {
        metadata: ObjectMeta {
            name: Some(restore_name(&cluster.name)),
            namespace: Some(cluster.namespace.clone()),
            labels: Some(labels.into_iter().collect::<BTreeMap<_, _>>()),
            owner_references: Some(vec![cluster.owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: DynamoRestoreSpec {
            cluster: cluster.name.clone(),
            source: source.clone(),
        },
        status: None,
    }
}

/// What `Restored` says, given whether the cluster is Ready and its
/// restore (`None`: not created yet).
pub fn restored_condition(ready: bool, restore: Option<&DynamoRestore>) -> ConditionUpdate {
    let status = restore.and_then(|r| r.status.as_ref());
    let message = status.and_then(|s| s.message.clone()).unwrap_or_default();
    match (restore, status.and_then(|s| s.phase)) {
        (None, _) if !ready => ConditionUpdate::new(
            RESTORED,
            false,
            "WaitingForReady",
            "spec.restoreFrom is restored once the cluster is first Ready",
        ),
        (None, _) => ConditionUpdate::new(RESTORED, false, "Restoring", "creating the restore"),
        (Some(_), Some(TransferPhase::Completed)) => {
            ConditionUpdate::new(RESTORED, true, "Restored", message)
        }
        (Some(_), Some(TransferPhase::Failed)) => ConditionUpdate::new(
            RESTORED,
            false,
            "RestoreFailed",
            format!(
                "{message}; delete the DynamoRestore {} to try again",
                restore.map_or_else(String::new, kube::ResourceExt::name_any)
            ),
        ),
        (Some(_), _) => ConditionUpdate::new(RESTORED, false, "Restoring", message),
    }
}

/// Whether `restore` is the one this cluster made (it owns it).
pub fn is_owned_by(restore: &DynamoRestore, cluster: &ClusterRef) -> bool {
    restore
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == cluster.owner.uid)
}

/// What `Restored` says when a `DynamoRestore` named `name` exists that
/// this cluster did not make: its outcome is not this cluster's.
fn foreign_restore(name: &str) -> ConditionUpdate {
    ConditionUpdate::new(
        RESTORED,
        false,
        "RestoreConflict",
        format!(
            "the DynamoRestore {name} exists and is not this cluster's; \
             delete it (or rename the cluster) to restore spec.restoreFrom"
        ),
    )
}

/// With `spec.restoreFrom` and no `Restored=True` yet: creates the restore
/// once `status` says Ready, and sets `Restored` in `status`.
pub async fn sync(
    client: &kube::Client,
    cluster: &DynamoCluster,
    cref: &ClusterRef,
    status: &mut DynamoClusterStatus,
    now: &Time,
) -> Result<(), kube::Error> {
    let Some(source) = &cluster.spec.restore_from else {
        return Ok(());
    };
    if is_true(&status.conditions, RESTORED) {
        return Ok(());
    }
    let api: Api<DynamoRestore> = Api::namespaced(client.clone(), &cref.namespace);
    let name = restore_name(&cref.name);
    let mut restore = api.get_opt(&name).await?;
    let ready = is_true(&status.conditions, READY);
    if restore.is_none() && ready {
        restore = match api
            .create(&PostParams::default(), &restore_object(cref, source))
            .await
        {
            Ok(created) => Some(created),
            Err(kube::Error::Api(e)) if e.code == 409 => api.get_opt(&name).await?,
            Err(e) => return Err(e),
        };
    }
    let update = match restore.as_ref().filter(|r| !is_owned_by(r, cref)) {
        Some(_) => foreign_restore(&name),
        None => restored_condition(ready, restore.as_ref()),
    };
    status.conditions = merge_conditions(
        &status.conditions,
        &[update],
        cluster.metadata.generation,
        now,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::backup::TransferStatus;
    use crate::resources::fixtures::cluster_ref;

    fn source() -> RestoreSource {
        RestoreSource {
            backup: Some("nightly".into()),
            ..RestoreSource::default()
        }
    }

    fn restore(phase: TransferPhase, message: &str) -> DynamoRestore {
        let mut r = restore_object(&cluster_ref(), &source());
        r.status = Some(TransferStatus {
            phase: Some(phase),
            message: Some(message.into()),
            ..TransferStatus::default()
        });
        r
    }

    #[test]
    fn the_restore_is_named_labelled_and_owned_by_the_cluster() {
        let cref = cluster_ref();
        let r = restore_object(&cref, &source());
        assert_eq!(r.metadata.name.as_deref(), Some("demo-restore"));
        assert_eq!(r.spec.cluster, "demo");
        assert_eq!(r.metadata.owner_references, Some(vec![cref.owner.clone()]));
        let labels = r.metadata.labels.expect("labels");
        assert_eq!(labels[CLUSTER_LABEL], "demo");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "dynamo-operator");
    }

    #[test]
    fn a_restore_the_cluster_did_not_make_is_not_its_own() {
        let cref = cluster_ref();
        let ours = restore_object(&cref, &source());
        assert!(is_owned_by(&ours, &cref));
        let mut theirs = ours.clone();
        theirs.metadata.owner_references = None;
        assert!(!is_owned_by(&theirs, &cref));
        let update = foreign_restore("demo-restore");
        assert_eq!(
            (update.status, update.reason.as_str()),
            (false, "RestoreConflict")
        );
    }

    #[test]
    fn restored_follows_readiness_and_the_restore() {
        let reason = |u: ConditionUpdate| (u.status, u.reason);
        assert_eq!(
            reason(restored_condition(false, None)),
            (false, "WaitingForReady".into())
        );
        assert_eq!(
            reason(restored_condition(true, None)),
            (false, "Restoring".into())
        );
        let running = restore(TransferPhase::Running, "restoring: 10 records");
        assert_eq!(
            reason(restored_condition(true, Some(&running))),
            (false, "Restoring".into())
        );
        let done = restore(
            TransferPhase::Completed,
            "restored backup nightly: 9 records merged",
        );
        let update = restored_condition(true, Some(&done));
        assert_eq!(
            (update.status, update.message.as_str()),
            (true, "restored backup nightly: 9 records merged")
        );
        let failed = restore(TransferPhase::Failed, "failed 3 times");
        let update = restored_condition(true, Some(&failed));
        assert_eq!(update.reason, "RestoreFailed");
        assert!(
            update
                .message
                .contains("delete the DynamoRestore demo-restore"),
            "{}",
            update.message
        );
    }
}
