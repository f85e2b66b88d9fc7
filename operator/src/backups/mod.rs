//! Backups and restores run by the operator itself, with the driver
//! `dynamoctl backup` runs (`dynamo_backup::driver`):
//!
//! - [`backup`]: a `DynamoBackup` is taken in a task of this process,
//!   resumed after a failure or an operator restart (the driver resumes
//!   after the last uploaded chunk), and its progress written into its
//!   status every few seconds;
//! - [`schedule`]: a `DynamoBackupSchedule` makes `DynamoBackup`s when its
//!   cron expression is due and deletes the old ones;
//! - [`restore`]: a `DynamoRestore` merges a backup into a running
//!   cluster (`DynamoCluster.spec.restoreFrom` makes one once the cluster
//!   is first Ready: `reconcile::restore_from`);
//! - [`access`]: how a cluster's nodes are reached (admin token, CA, ring
//!   addresses); [`target`]: a target's object store; [`tasks`]: the
//!   running transfers; [`transfer`]: the life of a backup or restore
//!   resource; [`report`]: status and Events.

pub mod access;
pub mod backup;
pub mod report;
pub mod restore;
pub mod schedule;
pub mod target;
pub mod tasks;
pub mod transfer;

use std::path::PathBuf;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::runtime::{Predicate, predicates};
use kube::{Resource, ResourceExt};

use tasks::Tasks;

/// Attempts at a backup or restore before it is `Failed`.
pub const MAX_ATTEMPTS: u32 = 3;

/// How often a running transfer's progress is written to its status.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// How long a transfer waits before trying again when its cluster, target
/// or source is not usable yet.
pub const PENDING_RETRY: Duration = Duration::from_secs(15);

/// How long a transfer waits after a failed attempt before the next.
pub const ATTEMPT_BACKOFF: Duration = Duration::from_secs(20);

/// Condition of a backup or restore: true once it is complete.
pub const COMPLETE: &str = "Complete";

/// What the backup controllers share.
pub struct BackupContext {
    /// API client.
    pub client: kube::Client,
    /// Event recorder.
    pub recorder: Recorder,
    /// The transfers running in this process.
    pub tasks: Tasks,
    /// Where the backup volume is mounted (`--backup-volume`), when the
    /// operator has one: volume targets live under it.
    pub volume_root: Option<PathBuf>,
}

/// Why a backup controller's reconcile failed (retried with back-off).
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// A deleted backup's objects could not be deleted (its finalizer
    /// stays; the message says how to let it go).
    #[error("{0}")]
    Cleanup(String),
    /// The object lacks a namespace or uid (not from the API server).
    #[error("{0} has no namespace or uid")]
    Incomplete(String),
}

/// Why a backup or restore cannot go on now: shown in its status, and
/// tried again after [`PENDING_RETRY`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Blocked(pub String);

impl From<kube::Error> for Blocked {
    fn from(error: kube::Error) -> Self {
        Blocked(format!("kubernetes API: {error}"))
    }
}

/// Which changes of a backup, restore or schedule start a reconcile: its
/// spec, its finalizers (the one the operator adds) and its deletion
/// (which bumps the generation); not the status the operator writes.
pub fn trigger<K: Resource>() -> impl Predicate<K> {
    predicates::generation.combine(predicates::finalizers)
}

/// Retries a failed reconcile after [`PENDING_RETRY`].
pub fn error_policy<K: Resource>(
    object: std::sync::Arc<K>,
    error: &BackupError,
    _: std::sync::Arc<BackupContext>,
) -> Action {
    tracing::warn!(name = %object.name_any(), %error, "reconcile failed");
    Action::requeue(PENDING_RETRY)
}
