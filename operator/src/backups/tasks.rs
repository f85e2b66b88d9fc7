//! The backups and restores running in this operator process, one task
//! each, keyed by the uid of their resource. A reconcile starts a task,
//! reads its progress while it runs, and takes its result once it ended.
//! An operator that restarts has none: the reconcile starts the transfer
//! again (a backup resumes after its last uploaded chunk, a restore is
//! idempotent). At most [`MAX_RUNNING`] run at once: each holds chunks of
//! records in memory (about three times its chunk size), and the others
//! wait for a slot.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use dynamo_backup::driver::layout::Manifest;
use dynamo_backup::driver::progress::{Progress, ProgressReport};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Transfers that run at once in one operator process.
pub const MAX_RUNNING: usize = 2;

/// The notes of a running transfer (resumed, started over, a stream asked
/// for again), newest last.
#[derive(Clone, Default)]
pub struct Notes(Arc<Mutex<Vec<String>>>);

impl Notes {
    /// Keeps `note` (the last few only).
    pub fn push(&self, note: &str) {
        if let Ok(mut notes) = self.0.lock() {
            notes.push(note.to_string());
            let excess = notes.len().saturating_sub(8);
            notes.drain(..excess);
        }
    }

    /// The newest note.
    pub fn last(&self) -> Option<String> {
        self.0.lock().ok().and_then(|notes| notes.last().cloned())
    }

    /// A [`Progress`] whose notes go here.
    pub fn progress(&self) -> Arc<Progress> {
        let notes = self.clone();
        Arc::new(Progress::new(move |note| notes.push(note)))
    }
}

struct Task {
    progress: Arc<Progress>,
    notes: Notes,
    handle: JoinHandle<Result<Manifest, String>>,
}

/// Where a resource's transfer stands in this process.
#[derive(Debug)]
pub enum TaskState {
    /// No task (never started here, or its result was taken).
    Absent,
    /// Running: its progress and newest note.
    Running(ProgressReport, Option<String>),
    /// Ended: the manifest of what was backed up or restored, or why not.
    Finished(Result<Manifest, String>),
}

/// The running transfers.
pub struct Tasks {
    running: Mutex<HashMap<String, Task>>,
    slots: Arc<Semaphore>,
}

impl Default for Tasks {
    fn default() -> Self {
        Tasks::with_slots(MAX_RUNNING)
    }
}

impl Tasks {
    /// Transfers of which `slots` run at once.
    pub fn with_slots(slots: usize) -> Self {
        Tasks {
            running: Mutex::default(),
            slots: Arc::new(Semaphore::new(slots)),
        }
    }

    /// Runs `work` for resource `uid` once a slot is free, reporting
    /// through `progress` and `notes`; a task still running under that
    /// uid is aborted first.
    pub fn start<F>(&self, uid: &str, progress: Arc<Progress>, notes: Notes, work: F)
    where
        F: Future<Output = Result<Manifest, String>> + Send + 'static,
    {
        let slots = self.slots.clone();
        let waiting = notes.clone();
        let handle = tokio::spawn(async move {
            let _slot = match slots.clone().try_acquire_owned() {
                Ok(slot) => slot,
                Err(_) => {
                    waiting.push(&format!(
                        "waiting: {MAX_RUNNING} transfers already run in this operator"
                    ));
                    let slot = slots
                        .acquire_owned()
                        .await
                        .map_err(|_| "the operator is stopping".to_string())?;
                    waiting.push("started after waiting for another transfer to end");
                    slot
                }
            };
            work.await
        });
        let task = Task {
            progress,
            notes,
            handle,
        };
        if let Some(old) = self.lock().insert(uid.to_string(), task) {
            old.handle.abort();
        }
    }

    /// Where the task of `uid` stands; a finished task's result is taken
    /// (asked again, it is [`TaskState::Absent`]).
    pub async fn poll(&self, uid: &str) -> TaskState {
        let finished = {
            let mut tasks = self.lock();
            match tasks.get(uid) {
                None => return TaskState::Absent,
                Some(task) if !task.handle.is_finished() => {
                    return TaskState::Running(task.progress.report(), task.notes.last());
                }
                Some(_) => tasks.remove(uid),
            }
        };
        let Some(task) = finished else {
            return TaskState::Absent;
        };
        TaskState::Finished(match task.handle.await {
            Ok(result) => result,
            Err(error) => Err(format!("the task ended abnormally: {error}")),
        })
    }

    /// Stops the task of `uid`, if any (its resource is being deleted).
    pub fn abort(&self, uid: &str) {
        if let Some(task) = self.lock().remove(uid) {
            task.handle.abort();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Task>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;

    fn manifest(records: u64) -> Manifest {
        Manifest {
            layout: 1,
            id: "b".into(),
            started_at_ms: 0,
            finished_at_ms: 0,
            epoch: 1,
            partitions: 8,
            format: None,
            records,
            raw_bytes: 0,
            stored_bytes: 0,
            nodes: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn a_task_reports_progress_then_its_result_once() {
        let tasks = Tasks::default();
        assert!(matches!(tasks.poll("u").await, TaskState::Absent));
        let notes = Notes::default();
        let progress = notes.progress();
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let reporter = progress.clone();
        tasks.start("u", progress, notes, async move {
            reporter.add(5, 50);
            reporter.note("resuming");
            wait.await.ok();
            Ok(manifest(5))
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        match tasks.poll("u").await {
            TaskState::Running(report, note) => {
                assert_eq!(report.records, 5);
                assert_eq!(note.as_deref(), Some("resuming"));
            }
            other => panic!("expected running, got {other:?}"),
        }
        go.send(()).expect("task waiting");
        tokio::time::sleep(Duration::from_millis(20)).await;
        match tasks.poll("u").await {
            TaskState::Finished(Ok(m)) => assert_eq!(m.records, 5),
            other => panic!("expected finished, got {other:?}"),
        }
        assert!(matches!(tasks.poll("u").await, TaskState::Absent));
    }

    #[tokio::test]
    async fn an_aborted_task_is_gone() {
        let tasks = Tasks::default();
        let notes = Notes::default();
        tasks.start("u", notes.progress(), notes, std::future::pending());
        tasks.abort("u");
        assert!(matches!(tasks.poll("u").await, TaskState::Absent));
    }

    #[tokio::test]
    async fn a_task_waits_for_a_free_slot() {
        let tasks = Tasks::with_slots(1);
        let notes = Notes::default();
        tasks.start("first", notes.progress(), notes, std::future::pending());
        let notes = Notes::default();
        tasks.start("second", notes.progress(), notes, async { Ok(manifest(1)) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        match tasks.poll("second").await {
            TaskState::Running(_, note) => {
                assert!(note.unwrap_or_default().starts_with("waiting"));
            }
            other => panic!("expected waiting, got {other:?}"),
        }
        tasks.abort("first");
        tokio::time::sleep(Duration::from_millis(20)).await;
        match tasks.poll("second").await {
            TaskState::Finished(Ok(m)) => assert_eq!(m.records, 1),
            other => panic!("expected finished, got {other:?}"),
        }
    }

    #[test]
    fn notes_keep_the_newest_few() {
        let notes = Notes::default();
        for i in 0..20 {
            notes.push(&format!("n{i}"));
        }
        assert_eq!(notes.last().as_deref(), Some("n19"));
        assert_eq!(notes.0.lock().expect("lock").len(), 8);
    }
}
