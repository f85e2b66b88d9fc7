//! The `DynamoRestore` controller: merges every record of a backup into a
//! running cluster with the driver's `restore` (each chunk checked before
//! its records are sent), in a task of this process
//! ([`transfer::drive`]). A finalizer stops a running restore when the
//! resource is deleted.

use std::sync::Arc;

use dynamo_backup::driver::restore::restore;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, ResourceExt};

use super::access::cluster_access;
use super::transfer::{self, Attempt, Kind, Transfer};
use super::{BackupContext, BackupError, Blocked, target};
use crate::crd::backup::{
    BackupTarget, DynamoBackup, DynamoRestore, RestoreSource, TransferPhase, TransferStatus,
};

/// The finalizer of every `DynamoRestore`.
pub const FINALIZER: &str = "kv.dynamo.dev/restore";

impl Transfer for DynamoRestore {
    const KIND: Kind = Kind::Restore;

    fn transfer_status(&self) -> Option<&TransferStatus> {
        self.status.as_ref()
    }
}

/// Reconciles one `DynamoRestore`.
#[tracing::instrument(skip_all, fields(restore = %restore.name_any(), namespace = restore.namespace().unwrap_or_default()))]
pub async fn reconcile(
    restore: Arc<DynamoRestore>,
    ctx: Arc<BackupContext>,
) -> Result<Action, BackupError> {
    let ns = restore
        .namespace()
        .ok_or_else(|| BackupError::Incomplete(restore.name_any()))?;
    let api: Api<DynamoRestore> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, restore, |event| async {
        match event {
            Finalizer::Apply(restore) => apply(&api, &ctx, &ns, &restore).await,
            Finalizer::Cleanup(restore) => {
                if let Some(uid) = restore.uid() {
                    ctx.tasks.abort(&uid);
                }
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| BackupError::Finalizer(e.to_string()))
}

/// Starts, follows or ends the restore.
async fn apply(
    api: &Api<DynamoRestore>,
    ctx: &BackupContext,
    ns: &str,
    restore_object: &DynamoRestore,
) -> Result<Action, BackupError> {
    transfer::drive(api, ctx, restore_object, |progress, failed| async move {
        let (_, access) = cluster_access(&ctx.client, ns, &restore_object.spec.cluster).await?;
        let (target, id) = source(&ctx.client, ns, &restore_object.spec.source).await?;
        let store = target::open(&ctx.client, ns, &target, ctx.volume_root.as_deref()).await?;
        let backup_id = id.clone();
        let work = async move {
            restore(&access.admin, access.seed(failed), &store, &id, &progress)
                .await
                .map_err(|e| e.to_string())
        };
        Ok(Attempt {
            backup_id,
            location: target::location(&target),
            work: Box::pin(work),
        })
    })
    .await
}

/// The target and backup id `source` names: a completed `DynamoBackup`
/// of namespace `ns`, or the id and target given.
pub async fn source(
    client: &kube::Client,
    ns: &str,
    source: &RestoreSource,
) -> Result<(BackupTarget, String), Blocked> {
    match (&source.backup, &source.backup_id, &source.target) {
        (Some(name), _, _) => {
            let backup = Api::<DynamoBackup>::namespaced(client.clone(), ns)
                .get_opt(name)
                .await?
                .ok_or_else(|| Blocked(format!("DynamoBackup {name} not found")))?;
            completed_backup(backup)
        }
        (None, Some(id), Some(target)) => Ok((target.clone(), id.clone())),
        _ => Err(Blocked(
            "the source names neither a backup nor a backupId and a target".into(),
        )),
    }
}

/// The target and id of `backup` once it is complete.
fn completed_backup(backup: DynamoBackup) -> Result<(BackupTarget, String), Blocked> {
    let name = backup.name_any();
    let status = backup.status.unwrap_or_default();
    match status.phase {
        Some(TransferPhase::Completed) => {
            Ok((backup.spec.target, status.backup_id.unwrap_or(name)))
        }
        Some(TransferPhase::Failed) => Err(Blocked(format!(
            "DynamoBackup {name} failed: there is nothing to restore"
        ))),
        _ => Err(Blocked(format!(
            "waiting for DynamoBackup {name} to complete"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::backup::{DynamoBackupSpec, VolumeTarget};

    fn backup(phase: Option<TransferPhase>) -> DynamoBackup {
        let spec = DynamoBackupSpec {
            cluster: "demo".into(),
            target: BackupTarget {
                s3: None,
                volume: Some(VolumeTarget { path: "b".into() }),
            },
            chunk_mib: None,
            deletion_policy: Default::default(),
        };
        let mut backup = DynamoBackup::new("nightly-1", spec);
        backup.status = Some(TransferStatus {
            phase,
            ..TransferStatus::default()
        });
        backup
    }

    #[test]
    fn only_a_completed_backup_is_a_source() {
        let (target, id) =
            completed_backup(backup(Some(TransferPhase::Completed))).expect("usable");
        assert_eq!(id, "nightly-1");
        assert_eq!(target::location(&target), "volume:b");
        let running = completed_backup(backup(Some(TransferPhase::Running))).unwrap_err();
        assert!(running.0.contains("waiting"), "{running}");
        let failed = completed_backup(backup(Some(TransferPhase::Failed))).unwrap_err();
        assert!(failed.0.contains("nothing to restore"), "{failed}");
    }
}
