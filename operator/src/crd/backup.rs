//! The backup resources (`kv.dynamo.dev/v1alpha1`):
//!
//! - `DynamoBackup`: one backup of a cluster onto a target, taken by the
//!   operator with the same driver as `dynamoctl backup create`;
//! - `DynamoBackupSchedule`: backups on a cron schedule, with retention;
//! - `DynamoRestore`: a backup merged into a running cluster.
//!
//! `DynamoCluster.spec.restoreFrom` takes the same [`RestoreSource`] as a
//! `DynamoRestore`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Label of a backup made by a schedule: the schedule's name.
pub const SCHEDULE_LABEL: &str = "kv.dynamo.dev/backup-schedule";

/// Label of a backup or restore the operator makes: its cluster's name.
pub const CLUSTER_LABEL: &str = "kv.dynamo.dev/cluster";

/// Default chunk size of a backup, in MiB of records before compression.
pub const DEFAULT_CHUNK_MIB: u16 = 32;

/// Default number of completed backups a schedule keeps.
pub const DEFAULT_KEEP: u32 = 7;

/// Where backups are stored: an S3-compatible bucket, or a directory of
/// the volume the operator mounts (the chart's `backups.volume`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.s3) != has(self.volume)", "message": "a target is either s3 or volume, and one of them is required"}
]))]
pub struct BackupTarget {
    /// An S3-compatible bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Target>,
    /// A directory of the operator's backup volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeTarget>,
}

/// An S3-compatible bucket; each backup lives under `<prefix>/<backup id>/`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Target {
    /// Bucket name.
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    /// Prefix of the backups' objects in the bucket (none when empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 512))]
    pub prefix: String,
    /// Endpoint of an S3-compatible server, `http(s)://HOST[:PORT]`
    /// without the bucket; AWS S3 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^https?://[^/]+/?$')", "message": "endpoint must be http(s)://HOST[:PORT], without a path"}
    ]))]
    pub endpoint: Option<String>,
    /// Region the requests are signed for. Default `us-east-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// How requests name the bucket: `Path` (default,
    /// `endpoint/bucket/key`, what most S3-compatible servers want) or
    /// `Virtual` (`bucket.endpoint/key`, AWS's).
    #[serde(default)]
    pub addressing: S3Addressing,
    /// Secret (same namespace) with keys `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`. Without it the operator's own environment
    /// gives the credentials (as the AWS SDKs read it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// Secret (same namespace) whose key `ca.crt` holds the PEM CA the
    /// endpoint's certificate chains to, trusted beside the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<String>,
}

/// How S3 requests name the bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum S3Addressing {
    /// `endpoint/bucket/key`.
    #[default]
    Path,
    /// `bucket.endpoint/key`.
    Virtual,
}

/// A directory of the operator's backup volume.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeTarget {
    /// Directory relative to where the volume is mounted; each backup
    /// lives under `<path>/<backup id>/`.
    #[schemars(length(min = 1, max = 1024))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "!self.startsWith('/') && !self.matches('(^|/)[.][.]?(/|$)')", "message": "path must be relative, without '.' or '..' segments"}
    ]))]
    pub path: String,
}

/// What happens to a backup's stored objects when its `DynamoBackup` is
/// deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// The objects stay (restore them with `dynamoctl` or a
    /// `DynamoRestore` naming the target and id).
    #[default]
    Retain,
    /// The objects are deleted before the resource goes.
    Delete,
}

/// One backup of a cluster. Its name is the backup's id on the target.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kv.dynamo.dev",
    version = "v1alpha1",
    kind = "DynamoBackup",
    plural = "dynamobackups",
    shortname = "dynb",
    namespaced,
    status = "TransferStatus",
    doc = "A backup of a DynamoCluster onto S3 or a volume: every write acknowledged before it started, with siblings and tombstones.",
    validation = Rule::new("self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 63").message("metadata.name must be a DNS label (lowercase letters, digits and '-', at most 63): it is the backup's id on the target"),
    validation = Rule::new("self.spec == oldSelf.spec").message("a backup's spec cannot change: create another backup"),
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.cluster"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Records","type":"integer","jsonPath":".status.records"}"#,
    printcolumn = r#"{"name":"Stored","type":"integer","description":"Bytes stored on the target","jsonPath":".status.storedBytes"}"#,
    printcolumn = r#"{"name":"ETA","type":"integer","priority":1,"description":"Seconds left","jsonPath":".status.progress.etaSeconds"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DynamoBackupSpec {
    /// The DynamoCluster (same namespace) to back up.
    #[schemars(length(min = 1, max = 63))]
    pub cluster: String,
    /// Where to store it.
    pub target: BackupTarget,
    /// Chunk size in MiB of records before compression (default 32, at
    /// most 128): a running transfer holds a few chunks in memory.
    #[serde(default, rename = "chunkMiB", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 128))]
    pub chunk_mib: Option<u16>,
    /// What deleting this resource does to the stored backup: `Retain`
    /// (default) or `Delete`.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// Where a backup or restore stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TransferPhase {
    /// Waiting for the cluster or the target (the message says why).
    Pending,
    /// Records are moving.
    Running,
    /// Done; the totals are in the status.
    Completed,
    /// Given up after repeated failures (the message says the last).
    Failed,
}

/// Progress of a running backup or restore.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferProgress {
    /// Records done.
    pub records: u64,
    /// Bytes of records done (before compression).
    pub bytes: u64,
    /// Records expected in all (an estimate; 0 when unknown).
    pub expected_records: u64,
    /// Records a second so far.
    pub records_per_second: u64,
    /// Bytes a second so far.
    pub bytes_per_second: u64,
    /// Seconds left at the rate so far, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<u64>,
    /// Seconds since this attempt began.
    pub elapsed_seconds: u64,
}

/// What the operator did with a backup or restore.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferStatus {
    /// `Pending`, `Running`, `Completed` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<TransferPhase>,
    /// The backup's id on the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// The target, as `s3://BUCKET/PREFIX` or `volume:PATH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// When the first attempt began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the backup's manifest was written, or the restore's last
    /// record merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// Attempts that failed so far; after the third it is `Failed`
    /// (before, the next attempt of a backup resumes after its last
    /// uploaded chunk, and a restore runs again: restoring is idempotent).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_attempts: u32,
    /// Attempts started so far. One more than `failedAttempts` while an
    /// attempt runs; an attempt the operator did not see end (it
    /// restarted, or was killed, meanwhile) counts as failed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
    /// Progress of the running attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<TransferProgress>,
    /// Records of the backup (every replica's copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    /// Bytes of records before compression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_bytes: Option<u64>,
    /// Bytes stored on the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_bytes: Option<u64>,
    /// Nodes the backup was taken of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<u32>,
    /// Ring epoch at the checkpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_epoch: Option<u64>,
    /// What is happening or went wrong, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `Complete`: true once the backup's manifest is written, or every
    /// record of the restore merged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Backups of a cluster on a cron schedule, with retention.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kv.dynamo.dev",
    version = "v1alpha1",
    kind = "DynamoBackupSchedule",
    plural = "dynamobackupschedules",
    shortname = "dynbs",
    namespaced,
    status = "DynamoBackupScheduleStatus",
    doc = "Backups of a DynamoCluster on a cron schedule; the oldest are deleted beyond a count or an age.",
    validation = Rule::new("self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 48").message("metadata.name must be a DNS label of at most 48 characters: its backups are named <name>-<UTC time as YYYYMMDDhhmmss>"),
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.cluster"}"#,
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Suspend","type":"boolean","jsonPath":".spec.suspend"}"#,
    printcolumn = r#"{"name":"Last","type":"date","jsonPath":".status.lastScheduleTime"}"#,
    printcolumn = r#"{"name":"Next","type":"date","jsonPath":".status.nextScheduleTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DynamoBackupScheduleSpec {
    /// The DynamoCluster (same namespace) to back up.
    #[schemars(length(min = 1, max = 63))]
    pub cluster: String,
    /// When, in UTC, as a cron expression: five fields (minute, hour, day
    /// of month, month, day of week, as a CronJob's) or six with seconds
    /// first; `@hourly`, `@daily`, `@weekly` and `@monthly` too. A time
    /// missed while the operator was down is caught up once.
    #[schemars(length(min = 1, max = 256))]
    pub schedule: String,
    /// Where to store the backups.
    pub target: BackupTarget,
    /// Chunk size in MiB (default 32, at most 128).
    #[serde(default, rename = "chunkMiB", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 128))]
    pub chunk_mib: Option<u16>,
    /// Completed backups to keep (default 7): older completed ones are
    /// deleted, and failed ones once a newer backup completed.
    #[serde(default = "default_keep")]
    #[schemars(range(min = 1, max = 10000))]
    pub keep: u32,
    /// Also delete completed backups older than this (`45s`, `90m`, `12h`,
    /// `30d`), except the newest completed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^[1-9][0-9]{0,8}[smhd]$')", "message": "maxAge is a whole number and a unit s, m, h or d, such as 30d"}
    ]))]
    pub max_age: Option<String>,
    /// The `deletionPolicy` of the backups it makes: `Delete` (default:
    /// retention removes the stored objects too) or `Retain`.
    #[serde(default = "default_schedule_deletion")]
    pub deletion_policy: DeletionPolicy,
    /// Make no new backup while true (retention goes on).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

fn default_keep() -> u32 {
    DEFAULT_KEEP
}

fn default_schedule_deletion() -> DeletionPolicy {
    DeletionPolicy::Delete
}

/// What a schedule did last and will do next.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DynamoBackupScheduleStatus {
    /// When the last backup was due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// When the next backup is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// Name of the last backup made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<String>,
    /// Name of the newest completed backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_backup: Option<String>,
    /// Backups of this schedule that exist now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backups: Vec<String>,
    /// `Scheduled`: true while the schedule is valid and not suspended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A backup to restore: a `DynamoBackup` of this namespace, or an id on a
/// target (one made by `dynamoctl backup create`, or in another namespace).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.backup) ? !has(self.backupId) && !has(self.target) : has(self.backupId) && has(self.target)", "message": "name either backup, or both backupId and target"}
]))]
pub struct RestoreSource {
    /// A completed `DynamoBackup` in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// The id of a backup on `target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// Where the backup `backupId` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<BackupTarget>,
}

/// A backup merged into a running cluster: every record is merged as a
/// replica merges a write, so nothing newer is lost and restoring twice
/// changes nothing.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kv.dynamo.dev",
    version = "v1alpha1",
    kind = "DynamoRestore",
    plural = "dynamorestores",
    shortname = "dynr",
    namespaced,
    status = "TransferStatus",
    doc = "A backup merged into a running DynamoCluster (nothing newer is lost; restoring twice changes nothing).",
    validation = Rule::new("self.spec == oldSelf.spec").message("a restore's spec cannot change: create another restore"),
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.cluster"}"#,
    printcolumn = r#"{"name":"Backup","type":"string","jsonPath":".status.backupId"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Records","type":"integer","jsonPath":".status.records"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DynamoRestoreSpec {
    /// The DynamoCluster (same namespace) to restore into.
    #[schemars(length(min = 1, max = 63))]
    pub cluster: String,
    /// The backup.
    pub source: RestoreSource,
}
