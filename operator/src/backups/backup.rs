//! The `DynamoBackup` controller: takes the backup with the driver's
//! `create` (holds, checkpoints, chunks, manifest last), in a task of this
//! process ([`transfer::drive`]). A finalizer stops a running backup when
//! the resource is deleted and, with `deletionPolicy: Delete`, deletes its
//! objects first, unless that can never succeed because its namespace is
//! being deleted and took a Secret the target needs with it.

use std::sync::Arc;

use dynamo_backup::driver::create::{Cluster, create};
use dynamo_backup::driver::restore::manifest;
use dynamo_backup::driver::store::Store;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, ResourceExt};

use super::access::cluster_access;
use super::report::event;
use super::transfer::{self, Attempt, Kind, Transfer};
use super::{BackupContext, BackupError, Blocked, target};
use crate::crd::backup::{
    BackupTarget, DEFAULT_CHUNK_MIB, DeletionPolicy, DynamoBackup, TransferPhase, TransferStatus,
};

/// The finalizer of every `DynamoBackup`.
pub const FINALIZER: &str = "kv.dynamo.dev/backup";

impl Transfer for DynamoBackup {
    const KIND: Kind = Kind::Backup;

    fn transfer_status(&self) -> Option<&TransferStatus> {
        self.status.as_ref()
    }
}

/// Reconciles one `DynamoBackup`.
#[tracing::instrument(skip_all, fields(backup = %backup.name_any(), namespace = backup.namespace().unwrap_or_default()))]
pub async fn reconcile(
    backup: Arc<DynamoBackup>,
    ctx: Arc<BackupContext>,
) -> Result<Action, BackupError> {
    let ns = backup
        .namespace()
        .ok_or_else(|| BackupError::Incomplete(backup.name_any()))?;
    let api: Api<DynamoBackup> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, backup, |event| async {
        match event {
            Finalizer::Apply(backup) => apply(&api, &ctx, &ns, &backup).await,
            Finalizer::Cleanup(backup) => cleanup(&ctx, &ns, &backup).await,
        }
    })
    .await
    .map_err(|e| BackupError::Finalizer(e.to_string()))
}

/// Starts, follows or ends the backup.
async fn apply(
    api: &Api<DynamoBackup>,
    ctx: &BackupContext,
    ns: &str,
    backup: &DynamoBackup,
) -> Result<Action, BackupError> {
    transfer::drive(api, ctx, backup, |progress, failed| async move {
        let (_, access) = cluster_access(&ctx.client, ns, &backup.spec.cluster).await?;
        let target = &backup.spec.target;
        let store = target::open(&ctx.client, ns, target, ctx.volume_root.as_deref()).await?;
        let id = backup.name_any();
        let resuming = failed > 0
            || backup
                .status
                .as_ref()
                .is_some_and(|s| s.started_at.is_some());
        refuse_foreign(&store, &id, resuming).await?;
        let chunk_bytes = usize::from(backup.spec.chunk_mib.unwrap_or(DEFAULT_CHUNK_MIB)) << 20;
        let backup_id = id.clone();
        let work = async move {
            if let Ok(done) = manifest(&store, &id).await {
                return Ok(done);
            }
            let cluster = Cluster {
                admin: &access.admin,
                seed: access.seed(failed),
            };
            create(&cluster, &store, &id, chunk_bytes, &progress)
                .await
                .map_err(|e| e.to_string())
        };
        Ok(Attempt {
            backup_id,
            location: target::location(target),
            work: Box::pin(work),
        })
    })
    .await
}

/// Refuses to start a new backup under an id the target already holds
/// (another cluster's, or one made by hand): it is not this resource's.
async fn refuse_foreign(store: &Store, id: &str, resuming: bool) -> Result<(), Blocked> {
    if resuming {
        return Ok(());
    }
    let existing = store.list(id).await.map_err(|e| Blocked(e.to_string()))?;
    match existing.is_empty() {
        true => Ok(()),
        false => Err(Blocked(format!(
            "{} already holds a backup {id} this resource did not start: \
             name the resource otherwise or use another prefix",
            store.name
        ))),
    }
}

/// Before the resource goes: stop a running backup, and with
/// `deletionPolicy: Delete` delete its objects.
async fn cleanup(
    ctx: &BackupContext,
    ns: &str,
    backup: &DynamoBackup,
) -> Result<Action, BackupError> {
    if let Some(uid) = backup.uid() {
        ctx.tasks.abort(&uid);
    }
    let started = backup
        .status
        .as_ref()
        .is_some_and(|s| s.started_at.is_some() || s.phase == Some(TransferPhase::Completed));
    if backup.spec.deletion_policy == DeletionPolicy::Delete && started {
        let location = target::location(&backup.spec.target);
        match delete_objects(ctx, ns, backup).await {
            Ok(()) => {
                let note = format!("deleted backup {} from {location}", backup.name_any());
                event(&ctx.recorder, backup, false, "Deleted", &note).await;
            }
            Err(blocked) => match never_deletable(&ctx.client, ns, &backup.spec.target).await {
                Some(gone) => {
                    let note = format!(
                        "left backup {} in {location}: {blocked}, and namespace {ns} is being \
                         deleted, so Secret {gone} cannot come back; delete the objects by hand",
                        backup.name_any()
                    );
                    // Only the log: a terminating namespace takes no Event.
                    tracing::warn!(backup = %backup.name_any(), namespace = ns, "{note}");
                }
                None => {
                    let note = format!(
                        "deleting the stored backup: {blocked}; remove the finalizer \
                         {FINALIZER} to delete the resource and leave the objects"
                    );
                    event(&ctx.recorder, backup, true, "DeleteFailed", &note).await;
                    return Err(BackupError::Cleanup(note));
                }
            },
        }
    }
    Ok(Action::await_change())
}

/// The Secret the target needs that is gone for good, if any: namespace
/// `ns` is being deleted (it takes no new objects) and the Secret is no
/// longer there. Deleting a namespace deletes its Secrets and backups in no
/// set order, so without this a backup with `deletionPolicy: Delete`
/// would hold the namespace forever.
async fn never_deletable(client: &kube::Client, ns: &str, target: &BackupTarget) -> Option<String> {
    if !namespace_terminating(client, ns).await {
        return None;
    }
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    for name in target::secret_names(target) {
        if let Ok(None) = secrets.get_opt(name).await {
            return Some(name.to_string());
        }
    }
    None
}

/// Whether namespace `ns` is being deleted. An operator that may not read
/// it (RBAC of an older chart) answers no, and keeps retrying.
async fn namespace_terminating(client: &kube::Client, ns: &str) -> bool {
    match Api::<Namespace>::all(client.clone()).get_opt(ns).await {
        Ok(found) => found.is_none_or(|n| n.metadata.deletion_timestamp.is_some()),
        Err(error) => {
            tracing::warn!(%error, namespace = ns, "reading the namespace failed");
            false
        }
    }
}

/// Deletes every object of the backup from its target.
async fn delete_objects(
    ctx: &BackupContext,
    ns: &str,
    backup: &DynamoBackup,
) -> Result<(), Blocked> {
    let target = &backup.spec.target;
    let store = target::open(&ctx.client, ns, target, ctx.volume_root.as_deref()).await?;
    let id = backup.name_any();
    let names = store.list(&id).await.map_err(|e| Blocked(e.to_string()))?;
    for name in names {
        store
            .delete(&name)
            .await
            .map_err(|e| Blocked(e.to_string()))?;
    }
    Ok(())
}
