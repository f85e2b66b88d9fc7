//! The life of a backup or restore resource, the same for both: start an
//! attempt in a task ([`super::tasks::Tasks`]), write its progress into the status while
//! it runs, then `Completed` with the manifest's totals, or, after a
//! failed attempt, another attempt (up to [`MAX_ATTEMPTS`]) and then
//! `Failed`. While the cluster, target or source is not usable, `Pending`
//! with the reason.
//!
//! The status transitions are pure functions ([`Step`]); [`drive`] does
//! the API calls.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use dynamo_backup::driver::layout::Manifest;
use dynamo_backup::driver::progress::{Progress, ProgressReport};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::report::{complete_condition, event, patch_status, progress, progress_line};
use super::tasks::{Notes, TaskState};
use super::{
    ATTEMPT_BACKOFF, BackupContext, BackupError, Blocked, MAX_ATTEMPTS, PENDING_RETRY,
    PROGRESS_INTERVAL,
};
use crate::crd::backup::{TransferPhase, TransferStatus};

/// Backup or restore: the words of their statuses and Events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A `DynamoBackup`.
    Backup,
    /// A `DynamoRestore`.
    Restore,
}

impl Kind {
    fn doing(self) -> &'static str {
        match self {
            Kind::Backup => "backing up",
            Kind::Restore => "restoring",
        }
    }

    fn done(self, manifest: &Manifest) -> String {
        let mib = manifest.stored_bytes as f64 / f64::from(1 << 20);
        match self {
            Kind::Backup => format!(
                "backed up {} records of {} nodes ({mib:.1} MiB stored)",
                manifest.records,
                manifest.nodes.len()
            ),
            Kind::Restore => format!(
                "restored backup {}: {} records merged",
                manifest.id, manifest.records
            ),
        }
    }
}

/// A resource whose status is a [`TransferStatus`].
pub trait Transfer:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug + Send + Sync + 'static
{
    /// Backup or restore.
    const KIND: Kind;
    /// Its status, if it has one yet.
    fn transfer_status(&self) -> Option<&TransferStatus>;
}

/// The work of one attempt, ready to run in a task.
pub struct Attempt {
    /// The backup's id.
    pub backup_id: String,
    /// Where it is, for people.
    pub location: String,
    /// The driver's call; its result is the manifest of what moved.
    pub work: Pin<Box<dyn Future<Output = Result<Manifest, String>> + Send>>,
}

/// The next status, and what goes with it.
#[derive(Debug, PartialEq)]
pub struct Step {
    /// The status to write.
    pub status: TransferStatus,
    /// An Event: warning or not, reason, note.
    pub event: Option<(bool, &'static str, String)>,
    /// When to look again (`None`: on the next change).
    pub requeue: Option<Duration>,
}

impl Step {
    /// The status while an attempt runs. It also says that the attempt
    /// started, in case writing [`Step::started`] failed: a restart then
    /// still counts the attempt, and resumes the backup as its own.
    pub fn running(
        kind: Kind,
        mut status: TransferStatus,
        report: &ProgressReport,
        note: Option<String>,
        now: &Time,
    ) -> Step {
        status.phase = Some(TransferPhase::Running);
        status.started_at.get_or_insert_with(|| now.clone());
        status.attempts = status.attempts.max(status.failed_attempts + 1);
        status.progress = Some(progress(report));
        let line = progress_line(kind.doing(), report);
        status.message = Some(match note {
            Some(note) => format!("{line} ({note})"),
            None => line,
        });
        Step {
            status,
            event: None,
            requeue: Some(PROGRESS_INTERVAL),
        }
    }

    /// The status of an attempt just started.
    pub fn started(mut status: TransferStatus, attempt: &Attempt, now: &Time) -> Step {
        let first = status.started_at.is_none() && status.failed_attempts == 0;
        status.phase = Some(TransferPhase::Running);
        status.attempts = status.failed_attempts + 1;
        status.backup_id = Some(attempt.backup_id.clone());
        status.location = Some(attempt.location.clone());
        status.started_at.get_or_insert_with(|| now.clone());
        status.progress = None;
        let (reason, note) = match first {
            true => (
                "Started",
                format!("{} on {}", attempt.backup_id, attempt.location),
            ),
            false => (
                "Resumed",
                format!(
                    "{} on {}: attempt {} of {MAX_ATTEMPTS}",
                    attempt.backup_id,
                    attempt.location,
                    status.failed_attempts + 1
                ),
            ),
        };
        status.message = Some(note.clone());
        Step {
            status,
            event: Some((false, reason, note)),
            requeue: Some(Duration::from_secs(1)),
        }
    }

    /// The status once the attempt brought everything across.
    pub fn completed(
        kind: Kind,
        mut status: TransferStatus,
        manifest: &Manifest,
        generation: Option<i64>,
        now: &Time,
    ) -> Step {
        let message = kind.done(manifest);
        status.phase = Some(TransferPhase::Completed);
        status.completed_at = Some(now.clone());
        status.progress = None;
        status.records = Some(manifest.records);
        status.raw_bytes = Some(manifest.raw_bytes);
        status.stored_bytes = Some(manifest.stored_bytes);
        status.nodes = u32::try_from(manifest.nodes.len()).ok();
        status.ring_epoch = Some(manifest.epoch);
        status.message = Some(message.clone());
        status.conditions = complete_condition(
            &status.conditions,
            TransferPhase::Completed,
            "Completed",
            &message,
            generation,
            now,
        );
        Step {
            status,
            event: Some((false, "Completed", message)),
            requeue: None,
        }
    }

    /// The status after a failed attempt: another one later, or `Failed`.
    pub fn attempt_failed(
        mut status: TransferStatus,
        error: &str,
        generation: Option<i64>,
        now: &Time,
    ) -> Step {
        status.failed_attempts += 1;
        status.progress = None;
        if status.failed_attempts >= MAX_ATTEMPTS {
            let message = format!("failed {MAX_ATTEMPTS} times; the last: {error}");
            status.phase = Some(TransferPhase::Failed);
            status.message = Some(message.clone());
            status.conditions = complete_condition(
                &status.conditions,
                TransferPhase::Failed,
                "Failed",
                &message,
                generation,
                now,
            );
            return Step {
                status,
                event: Some((true, "Failed", message)),
                requeue: None,
            };
        }
        let message = format!(
            "attempt {} of {MAX_ATTEMPTS} failed: {error}; trying again in {} s",
            status.failed_attempts,
            ATTEMPT_BACKOFF.as_secs()
        );
        status.message = Some(message.clone());
        Step {
            status,
            event: Some((true, "AttemptFailed", message)),
            requeue: Some(ATTEMPT_BACKOFF),
        }
    }

    /// Whether the status says an attempt runs that no task of this
    /// process runs: the operator stopped while it ran.
    pub fn was_interrupted(status: &TransferStatus) -> bool {
        status.attempts > status.failed_attempts
    }

    /// The status after an attempt the operator stopped during: a failed
    /// attempt, so that a transfer that kills the operator (out of memory,
    /// say) ends `Failed` instead of starting again forever.
    pub fn interrupted(status: TransferStatus, generation: Option<i64>, now: &Time) -> Step {
        let error = "the operator restarted while it ran (if that repeats, see whether \
                     the operator is killed, for example for want of memory)";
        Step::attempt_failed(status, error, generation, now)
    }

    /// The status while the cluster, target or source is not usable; an
    /// Event only when the reason changed.
    pub fn pending(
        mut status: TransferStatus,
        blocked: &Blocked,
        generation: Option<i64>,
        now: &Time,
    ) -> Step {
        let message = blocked.0.clone();
        let changed = status.message.as_deref() != Some(message.as_str());
        status.phase = Some(TransferPhase::Pending);
        status.message = Some(message.clone());
        status.conditions = complete_condition(
            &status.conditions,
            TransferPhase::Pending,
            "Waiting",
            &message,
            generation,
            now,
        );
        Step {
            status,
            event: changed.then_some((true, "Waiting", message)),
            requeue: Some(PENDING_RETRY),
        }
    }
}

/// One reconcile of `object`: starts, follows or ends its attempt.
/// `prepare` makes an attempt's work from its progress counters and the
/// number of attempts that failed before it.
pub async fn drive<K, P, F>(
    api: &Api<K>,
    ctx: &BackupContext,
    object: &K,
    prepare: P,
) -> Result<Action, BackupError>
where
    K: Transfer,
    P: FnOnce(Arc<Progress>, u32) -> F,
    F: Future<Output = Result<Attempt, Blocked>>,
{
    let name = object.name_any();
    let uid = object
        .uid()
        .ok_or_else(|| BackupError::Incomplete(name.clone()))?;
    let status = object.transfer_status().cloned().unwrap_or_default();
    if matches!(
        status.phase,
        Some(TransferPhase::Completed | TransferPhase::Failed)
    ) {
        return Ok(Action::await_change());
    }
    let generation = object.meta().generation;
    let now = Time(Timestamp::now());
    let step = match ctx.tasks.poll(&uid).await {
        TaskState::Running(report, note) => Step::running(K::KIND, status, &report, note, &now),
        TaskState::Finished(Ok(manifest)) => {
            Step::completed(K::KIND, status, &manifest, generation, &now)
        }
        TaskState::Finished(Err(error)) => Step::attempt_failed(status, &error, generation, &now),
        TaskState::Absent if Step::was_interrupted(&status) => {
            Step::interrupted(status, generation, &now)
        }
        TaskState::Absent => {
            let notes = Notes::default();
            let progress = notes.progress();
            match prepare(progress.clone(), status.failed_attempts).await {
                Ok(attempt) => {
                    let step = Step::started(status, &attempt, &now);
                    ctx.tasks.start(&uid, progress, notes, attempt.work);
                    step
                }
                Err(blocked) => Step::pending(status, &blocked, generation, &now),
            }
        }
    };
    patch_status(api, &name, &step.status).await?;
    if let Some((warning, reason, note)) = &step.event {
        event(&ctx.recorder, object, *warning, reason, note).await;
    }
    Ok(step
        .requeue
        .map_or_else(Action::await_change, Action::requeue))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::backups::COMPLETE;

    fn now() -> Time {
        Time(Timestamp::from_second(1_800_000_000).expect("time"))
    }

    fn manifest() -> Manifest {
        Manifest {
            layout: 1,
            id: "nightly".into(),
            started_at_ms: 0,
            finished_at_ms: 0,
            epoch: 4,
            partitions: 64,
            format: Some(2),
            records: 900,
            raw_bytes: 9 << 20,
            stored_bytes: 3 << 20,
            nodes: BTreeMap::new(),
        }
    }

    fn attempt() -> Attempt {
        Attempt {
            backup_id: "nightly".into(),
            location: "s3://b/p".into(),
            work: Box::pin(async { Err("unused".to_string()) }),
        }
    }

    fn complete(status: &TransferStatus) -> Option<(&str, &str)> {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == COMPLETE)
            .map(|c| (c.status.as_str(), c.reason.as_str()))
    }

    #[test]
    fn the_first_attempt_starts_and_a_later_one_resumes() {
        let first = Step::started(TransferStatus::default(), &attempt(), &now());
        assert_eq!(first.status.phase, Some(TransferPhase::Running));
        assert_eq!(first.status.backup_id.as_deref(), Some("nightly"));
        assert_eq!(first.status.started_at, Some(now()));
        assert_eq!(first.event.as_ref().map(|e| e.1), Some("Started"));

        let failed = Step::attempt_failed(first.status, "node down", Some(1), &now());
        assert_eq!(failed.status.failed_attempts, 1);
        assert_eq!(
            failed.event.as_ref().map(|e| (e.0, e.1)),
            Some((true, "AttemptFailed"))
        );
        assert_eq!(failed.requeue, Some(ATTEMPT_BACKOFF));
        assert_eq!(failed.status.phase, Some(TransferPhase::Running));

        let again = Step::started(failed.status, &attempt(), &now());
        assert_eq!(again.event.as_ref().map(|e| e.1), Some("Resumed"));
        assert!(
            again
                .status
                .message
                .as_deref()
                .unwrap_or_default()
                .contains("attempt 2 of 3")
        );
    }

    #[test]
    fn an_attempt_the_operator_stopped_during_counts_as_failed() {
        let mut status = TransferStatus::default();
        assert!(!Step::was_interrupted(&status));
        for _ in 0..MAX_ATTEMPTS {
            status = Step::started(status, &attempt(), &now()).status;
            assert!(
                Step::was_interrupted(&status),
                "no task runs it after a restart"
            );
            let step = Step::interrupted(status, None, &now());
            assert!(!Step::was_interrupted(&step.status));
            status = step.status;
        }
        assert_eq!(status.phase, Some(TransferPhase::Failed));
        assert_eq!(status.failed_attempts, MAX_ATTEMPTS);
        assert!(
            status
                .message
                .as_deref()
                .unwrap_or_default()
                .contains("operator restarted")
        );
    }

    #[test]
    fn the_third_failure_is_final() {
        let mut status = TransferStatus::default();
        for _ in 0..MAX_ATTEMPTS {
            status = Step::attempt_failed(status, "bucket gone", None, &now()).status;
        }
        assert_eq!(status.phase, Some(TransferPhase::Failed));
        assert_eq!(complete(&status), Some(("False", "Failed")));
        assert!(
            status
                .message
                .as_deref()
                .unwrap_or_default()
                .ends_with("bucket gone")
        );
    }

    #[test]
    fn completion_keeps_the_manifests_totals() {
        let running = Step::started(TransferStatus::default(), &attempt(), &now()).status;
        let done = Step::completed(Kind::Backup, running, &manifest(), Some(1), &now());
        let s = &done.status;
        assert_eq!(s.phase, Some(TransferPhase::Completed));
        assert_eq!(
            (s.records, s.raw_bytes, s.stored_bytes),
            (Some(900), Some(9 << 20), Some(3 << 20))
        );
        assert_eq!((s.nodes, s.ring_epoch), (Some(0), Some(4)));
        assert_eq!(complete(s), Some(("True", "Completed")));
        assert_eq!(done.requeue, None);
        let restored = Step::completed(
            Kind::Restore,
            TransferStatus::default(),
            &manifest(),
            None,
            &now(),
        );
        assert_eq!(
            restored.status.message.as_deref(),
            Some("restored backup nightly: 900 records merged")
        );
    }

    #[test]
    fn pending_says_why_and_raises_an_event_only_when_the_reason_changes() {
        let blocked = Blocked("Secret s3-creds not found".into());
        let first = Step::pending(TransferStatus::default(), &blocked, None, &now());
        assert_eq!(first.status.phase, Some(TransferPhase::Pending));
        assert_eq!(complete(&first.status), Some(("False", "Waiting")));
        assert!(first.event.is_some());
        let second = Step::pending(first.status, &blocked, None, &now());
        assert_eq!(second.event, None);
        assert_eq!(second.requeue, Some(PENDING_RETRY));
    }

    #[test]
    fn running_shows_progress_and_the_newest_note() {
        let report = ProgressReport {
            records: 10,
            bytes: 1 << 20,
            expected_records: 0,
            seconds: 1.0,
            records_per_sec: 10.0,
            bytes_per_sec: 1048576.0,
            eta_secs: None,
        };
        let step = Step::running(
            Kind::Backup,
            TransferStatus::default(),
            &report,
            Some("resuming".into()),
            &now(),
        );
        assert_eq!(step.status.progress.as_ref().map(|p| p.records), Some(10));
        assert_eq!(
            step.status.started_at,
            Some(now()),
            "even if Started was not written"
        );
        assert!(Step::was_interrupted(&step.status), "the attempt counts");
        assert_eq!(
            step.status.message.as_deref(),
            Some("backing up: 10 records (1.0 MiB), 10 records/s (resuming)")
        );
    }
}
