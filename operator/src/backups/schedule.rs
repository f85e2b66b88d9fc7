//! The `DynamoBackupSchedule` controller: when the cron expression is due
//! it creates the `DynamoBackup` `<schedule>-<due time as
//! YYYYMMDDhhmmss>` (labelled with the schedule, not owned by it, so
//! deleting a schedule keeps its backups), unless one of its backups is
//! still running; it deletes old backups as `keep` and `maxAge` say, but
//! never one that a restore still reads.
//!
//! The times and the retention are pure functions of the spec, the
//! backups and the clock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Year};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::jiff::tz::TimeZone;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::report::{event, patch_status};
use super::{BackupContext, BackupError};
use crate::crd::DynamoCluster;
use crate::crd::backup::{
    CLUSTER_LABEL, DynamoBackup, DynamoBackupSchedule, DynamoBackupScheduleSpec, DynamoBackupSpec,
    DynamoRestore, SCHEDULE_LABEL, TransferPhase,
};
use crate::crd::condition::RESTORED;
use crate::reconcile::status::{ConditionUpdate, is_true, merge_conditions};

/// Condition of a schedule: true while it is valid and not suspended.
pub const SCHEDULED: &str = "Scheduled";

/// Longest wait between two looks at a schedule (retention, a clock that
/// jumped).
const LONGEST_WAIT: Duration = Duration::from_secs(300);

/// The cron expression `expr`: five fields, or six with seconds first, in
/// UTC; nicknames such as `@daily`.
pub fn parse_schedule(expr: &str) -> Result<Cron, String> {
    CronParser::builder()
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| format!("schedule {expr:?} is not a cron expression: {e}"))
}

fn zoned(at: Timestamp) -> k8s_openapi::jiff::Zoned {
    at.to_zoned(TimeZone::UTC)
}

/// The first time `cron` is due after `after`.
pub fn next_due(cron: &Cron, after: Timestamp) -> Option<Timestamp> {
    cron.find_next_occurrence(&zoned(after), false)
        .ok()
        .map(|z| z.timestamp())
}

/// The latest time `cron` was due after `since` and up to `now`: the one
/// backup to make now (times missed while the operator was down are
/// caught up once, not one by one).
pub fn latest_due(cron: &Cron, since: Timestamp, now: Timestamp) -> Option<Timestamp> {
    let first = next_due(cron, since)?;
    if first > now {
        return None;
    }
    cron.find_previous_occurrence(&zoned(now), true)
        .ok()
        .map(|z| z.timestamp())
        .filter(|latest| *latest >= first)
        .or(Some(first))
}

/// `maxAge` (`45s`, `90m`, `12h`, `30d`) as a duration.
pub fn parse_age(age: &str) -> Option<Duration> {
    let (number, unit) = age.split_at(age.len().checked_sub(1)?);
    let n: u64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    n.checked_mul(seconds).map(Duration::from_secs)
}

/// The name of the backup due at `due`.
pub fn backup_name(schedule: &str, due: Timestamp) -> String {
    format!("{schedule}-{}", due.strftime("%Y%m%d%H%M%S"))
}

/// A schedule's backup as retention sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Made {
    /// Its name.
    pub name: String,
    /// When it was created.
    pub created: Timestamp,
    /// Where it stands.
    pub phase: Option<TransferPhase>,
}

impl Made {
    fn of(backup: &DynamoBackup) -> Made {
        Made {
            name: backup.name_any(),
            created: backup
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
            phase: backup.status.as_ref().and_then(|s| s.phase),
        }
    }

    /// Whether it runs, or was just created: a `Pending` one (its
    /// target or cluster not usable) does not hold the schedule up.
    fn running(&self) -> bool {
        matches!(self.phase, None | Some(TransferPhase::Running))
    }
}

/// The backups restores still read: those named by a `DynamoRestore` not
/// yet finished, or by the `spec.restoreFrom` of a cluster not yet
/// `Restored`.
pub fn in_use(restores: &[DynamoRestore], clusters: &[DynamoCluster]) -> BTreeSet<String> {
    let restoring = restores
        .iter()
        .filter(|r| {
            !matches!(
                r.status.as_ref().and_then(|s| s.phase),
                Some(TransferPhase::Completed | TransferPhase::Failed)
            )
        })
        .filter_map(|r| r.spec.source.backup.clone());
    let to_restore = clusters
        .iter()
        .filter(|c| {
            !c.status
                .as_ref()
                .is_some_and(|s| is_true(&s.conditions, RESTORED))
        })
        .filter_map(|c| c.spec.restore_from.as_ref()?.backup.clone());
    restoring.chain(to_restore).collect()
}

/// The backups to delete: completed ones beyond the `keep` newest, and
/// older than `max_age` but for the newest; failed ones older than the
/// newest completed one. Running ones stay, and so do those `in_use`.
pub fn retention(
    made: &[Made],
    keep: u32,
    max_age: Option<Duration>,
    now: Timestamp,
    in_use: &BTreeSet<String>,
) -> Vec<String> {
    let mut completed: Vec<&Made> = made
        .iter()
        .filter(|m| m.phase == Some(TransferPhase::Completed))
        .collect();
    completed.sort_by_key(|m| std::cmp::Reverse(m.created));
    let too_old = |m: &Made| {
        max_age.is_some_and(|age| {
            let age = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
            now.as_second().saturating_sub(m.created.as_second()) > age
        })
    };
    let mut doomed: Vec<String> = completed
        .iter()
        .enumerate()
        .filter(|(i, m)| *i >= keep as usize || (*i > 0 && too_old(m)))
        .map(|(_, m)| m.name.clone())
        .collect();
    if let Some(newest) = completed.first() {
        doomed.extend(
            made.iter()
                .filter(|m| m.phase == Some(TransferPhase::Failed) && m.created < newest.created)
                .map(|m| m.name.clone()),
        );
    }
    doomed.retain(|name| !in_use.contains(name));
    doomed.sort();
    doomed
}

/// The `DynamoBackup` a schedule makes at `due`.
pub fn scheduled_backup(
    schedule: &str,
    spec: &DynamoBackupScheduleSpec,
    due: Timestamp,
) -> DynamoBackup {
    let labels = BTreeMap::from([
        (SCHEDULE_LABEL.to_string(), schedule.to_string()),
        (CLUSTER_LABEL.to_string(), spec.cluster.clone()),
    ]);
    DynamoBackup {
        metadata: ObjectMeta {
            name: Some(backup_name(schedule, due)),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: DynamoBackupSpec {
            cluster: spec.cluster.clone(),
            target: spec.target.clone(),
            chunk_mib: spec.chunk_mib,
            deletion_policy: spec.deletion_policy,
        },
        status: None,
    }
}

/// Reconciles one `DynamoBackupSchedule`: retention, then the backup due
/// now if any, then the status.
#[tracing::instrument(skip_all, fields(schedule = %schedule.name_any(), namespace = schedule.namespace().unwrap_or_default()))]
pub async fn reconcile(
    schedule: Arc<DynamoBackupSchedule>,
    ctx: Arc<BackupContext>,
) -> Result<Action, BackupError> {
    let name = schedule.name_any();
    let ns = schedule
        .namespace()
        .ok_or_else(|| BackupError::Incomplete(name.clone()))?;
    let backups: Api<DynamoBackup> = Api::namespaced(ctx.client.clone(), &ns);
    let schedules: Api<DynamoBackupSchedule> = Api::namespaced(ctx.client.clone(), &ns);
    let spec = &schedule.spec;
    let now = Timestamp::now();
    let time = Time(now);
    let generation = schedule.metadata.generation;
    let mut status = schedule.status.clone().unwrap_or_default();
    let selector = ListParams::default().labels(&format!("{SCHEDULE_LABEL}={name}"));
    // Those being deleted are gone as far as retention is concerned.
    let mut made: Vec<Made> = backups
        .list(&selector)
        .await?
        .items
        .iter()
        .filter(|b| b.metadata.deletion_timestamp.is_none())
        .map(Made::of)
        .collect();
    prune(&backups, &ctx, &schedule, &mut made, now).await?;

    let cron = match parse_schedule(&spec.schedule) {
        Ok(cron) => cron,
        Err(message) => {
            let update = ConditionUpdate::new(SCHEDULED, false, "InvalidSchedule", message);
            status.conditions = merge_conditions(&status.conditions, &[update], generation, &time);
            status.next_schedule_time = None;
            patch_status(&schedules, &name, &status).await?;
            return Ok(Action::await_change());
        }
    };
    let since = status
        .last_schedule_time
        .as_ref()
        .or(schedule.metadata.creation_timestamp.as_ref())
        .map_or(now, |t| t.0);
    let due = latest_due(&cron, since, now).filter(|_| !spec.suspend);
    if let Some(due) = due {
        if let Some(created) = make_due(&backups, &ctx, &schedule, &made, due).await? {
            status.last_backup = Some(created.name.clone());
            if !made.iter().any(|m| m.name == created.name) {
                made.push(created);
            }
        }
        status.last_schedule_time = Some(Time(due));
    }
    let next = next_due(&cron, now.max(since));
    status.conditions = merge_conditions(
        &status.conditions,
        &[scheduled_condition(spec.suspend, next)],
        generation,
        &time,
    );
    status.next_schedule_time = next.filter(|_| !spec.suspend).map(Time);
    made.sort_by_key(|m| m.created);
    status.last_successful_backup = made
        .iter()
        .rev()
        .find(|m| m.phase == Some(TransferPhase::Completed))
        .map(|m| m.name.clone());
    status.backups = made.iter().map(|m| m.name.clone()).collect();
    patch_status(&schedules, &name, &status).await?;
    Ok(Action::requeue(wait_until(next, now)))
}

/// Deletes the backups retention drops (see [`retention`]) and takes them
/// out of `made`.
async fn prune(
    backups: &Api<DynamoBackup>,
    ctx: &BackupContext,
    schedule: &DynamoBackupSchedule,
    made: &mut Vec<Made>,
    now: Timestamp,
) -> Result<(), BackupError> {
    let spec = &schedule.spec;
    let max_age = spec.max_age.as_deref().and_then(parse_age);
    let ns = schedule.namespace().unwrap_or_default();
    let restores: Api<DynamoRestore> = Api::namespaced(ctx.client.clone(), &ns);
    let clusters: Api<DynamoCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let in_use = in_use(
        &restores.list(&ListParams::default()).await?.items,
        &clusters.list(&ListParams::default()).await?.items,
    );
    for doomed in retention(made, spec.keep, max_age, now, &in_use) {
        match backups.delete(&doomed, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        let note = format!(
            "deleted backup {doomed} (keep {}, maxAge {})",
            spec.keep,
            spec.max_age.as_deref().unwrap_or("none")
        );
        event(&ctx.recorder, schedule, false, "Pruned", &note).await;
        made.retain(|m| m.name != doomed);
    }
    Ok(())
}

/// Creates the backup due at `due`, unless one of the schedule's backups
/// still runs (then the due time is skipped); returns the one created, or
/// the one made for `due` already (the status read may predate it).
async fn make_due(
    backups: &Api<DynamoBackup>,
    ctx: &BackupContext,
    schedule: &DynamoBackupSchedule,
    made: &[Made],
    due: Timestamp,
) -> Result<Option<Made>, BackupError> {
    let name = backup_name(&schedule.name_any(), due);
    if let Some(existing) = made.iter().find(|m| m.name == name) {
        return Ok(Some(existing.clone()));
    }
    if let Some(active) = made.iter().find(|m| m.running()) {
        let note = format!(
            "the backup due at {due} is skipped: {} is still running",
            active.name
        );
        event(&ctx.recorder, schedule, true, "Skipped", &note).await;
        return Ok(None);
    }
    let backup = scheduled_backup(&schedule.name_any(), &schedule.spec, due);
    match backups.create(&PostParams::default(), &backup).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    let note = format!("created backup {name} (due at {due})");
    event(&ctx.recorder, schedule, false, "Scheduled", &note).await;
    Ok(Some(Made {
        name,
        created: Timestamp::now(),
        phase: None,
    }))
}

/// The `Scheduled` condition: false while suspended.
fn scheduled_condition(suspend: bool, next: Option<Timestamp>) -> ConditionUpdate {
    match suspend {
        true => ConditionUpdate::new(
            SCHEDULED,
            false,
            "Suspended",
            "spec.suspend is true: no new backups",
        ),
        false => ConditionUpdate::new(
            SCHEDULED,
            true,
            "Scheduled",
            next.map_or_else(
                || "never due again".to_string(),
                |n| format!("next backup at {n}"),
            ),
        ),
    }
}

/// How long to wait for `next` (at least a second, at most
/// [`LONGEST_WAIT`]).
fn wait_until(next: Option<Timestamp>, now: Timestamp) -> Duration {
    let seconds = next.map_or(LONGEST_WAIT.as_secs(), |n| {
        u64::try_from(n.as_second().saturating_sub(now.as_second())).unwrap_or(0)
    });
    Duration::from_secs(seconds.clamp(1, LONGEST_WAIT.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    #[test]
    fn five_and_six_field_expressions_and_nicknames_parse() {
        for good in [
            "0 3 * * *",
            "*/20 * * * * *",
            "@daily",
            "0 0 * * SUN",
            "0 0 * * 0",
        ] {
            assert!(parse_schedule(good).is_ok(), "{good}");
        }
        for bad in ["", "every day", "61 * * * *", "* * * * * * 2030"] {
            assert!(parse_schedule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn due_times_are_in_utc_and_a_long_gap_is_caught_up_once() {
        let daily = parse_schedule("0 3 * * *").expect("cron");
        let since = at("2026-11-30T10:00:00Z");
        assert_eq!(next_due(&daily, since), Some(at("2026-12-01T03:00:00Z")));
        assert_eq!(latest_due(&daily, since, at("2026-12-01T02:59:59Z")), None);
        assert_eq!(
            latest_due(&daily, since, at("2026-12-01T03:00:00Z")),
            Some(at("2026-12-01T03:00:00Z"))
        );
        assert_eq!(
            latest_due(&daily, since, at("2026-12-05T09:00:00Z")),
            Some(at("2026-12-05T03:00:00Z")),
            "four missed days make one backup, the latest"
        );
        let every_20s = parse_schedule("*/20 * * * * *").expect("cron");
        assert_eq!(
            next_due(&every_20s, at("2026-12-01T00:00:05Z")),
            Some(at("2026-12-01T00:00:20Z"))
        );
    }

    #[test]
    fn ages_have_a_unit() {
        assert_eq!(parse_age("45s"), Some(Duration::from_secs(45)));
        assert_eq!(parse_age("90m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_age("30d"), Some(Duration::from_secs(30 * 86400)));
        for bad in ["", "d", "12", "1w", "-1d"] {
            assert_eq!(parse_age(bad), None, "{bad}");
        }
    }

    #[test]
    fn backups_are_named_after_their_due_time() {
        assert_eq!(
            backup_name("nightly", at("2026-12-01T03:00:20Z")),
            "nightly-20261201030020"
        );
    }

    fn made(name: &str, created: &str, phase: Option<TransferPhase>) -> Made {
        Made {
            name: name.into(),
            created: at(created),
            phase,
        }
    }

    #[test]
    fn retention_keeps_the_newest_completed_and_drops_failed_ones_behind_them() {
        use TransferPhase::*;
        let list = [
            made("a", "2026-12-01T00:00:00Z", Some(Completed)),
            made("b", "2026-12-01T00:01:00Z", Some(Failed)),
            made("c", "2026-12-01T00:02:00Z", Some(Completed)),
            made("d", "2026-12-01T00:03:00Z", Some(Completed)),
            made("e", "2026-12-01T00:04:00Z", Some(Failed)),
            made("f", "2026-12-01T00:05:00Z", Some(Running)),
        ];
        let now = at("2026-12-01T00:06:00Z");
        let none = BTreeSet::new();
        assert_eq!(retention(&list, 2, None, now, &none), ["a", "b"]);
        assert_eq!(retention(&list, 5, None, now, &none), ["b"]);
        assert_eq!(
            retention(&list, 5, Some(Duration::from_secs(200)), now, &none),
            ["a", "b", "c"],
            "older than 200 s, but the newest completed stays"
        );
        assert_eq!(
            retention(&list, 5, Some(Duration::from_secs(1)), now, &none),
            ["a", "b", "c"],
        );
        let restoring_a = BTreeSet::from(["a".to_string()]);
        assert_eq!(retention(&list, 2, None, now, &restoring_a), ["b"]);
        let only_failed = [made("x", "2026-12-01T00:00:00Z", Some(Failed))];
        assert!(retention(&only_failed, 1, Some(Duration::from_secs(1)), now, &none).is_empty());
    }

    #[test]
    fn a_pending_backup_does_not_hold_the_schedule_up() {
        use TransferPhase::*;
        let at_ = "2026-12-01T00:00:00Z";
        assert!(made("new", at_, None).running());
        assert!(made("r", at_, Some(Running)).running());
        for phase in [Pending, Completed, Failed] {
            assert!(!made("x", at_, Some(phase)).running(), "{phase:?}");
        }
    }

    #[test]
    fn backups_unfinished_restores_read_are_in_use() {
        use crate::crd::backup::{DynamoRestoreSpec, RestoreSource, TransferStatus};
        let restore = |name: &str, backup: &str, phase: Option<TransferPhase>| {
            let mut r = DynamoRestore::new(
                name,
                DynamoRestoreSpec {
                    cluster: "demo".into(),
                    source: RestoreSource {
                        backup: Some(backup.into()),
                        ..RestoreSource::default()
                    },
                },
            );
            r.status = phase.map(|phase| TransferStatus {
                phase: Some(phase),
                ..TransferStatus::default()
            });
            r
        };
        let restores = [
            restore("r1", "running", Some(TransferPhase::Running)),
            restore("r2", "new", None),
            restore("r3", "done", Some(TransferPhase::Completed)),
            restore("r4", "failed", Some(TransferPhase::Failed)),
        ];
        use crate::reconcile::fixtures;
        let mut cluster = fixtures::cluster(fixtures::spec(&[("a", 3)]));
        cluster.spec.restore_from = Some(RestoreSource {
            backup: Some("wanted".into()),
            ..RestoreSource::default()
        });
        let used = in_use(&restores, std::slice::from_ref(&cluster));
        assert_eq!(
            used.into_iter().collect::<Vec<_>>(),
            ["new", "running", "wanted"]
        );
        let restored = ConditionUpdate::new(RESTORED, true, "Restored", "done");
        let time = Time(at("2026-12-01T00:00:00Z"));
        cluster.status.get_or_insert_default().conditions =
            merge_conditions(&[], &[restored], None, &time);
        assert!(!in_use(&[], &[cluster]).contains("wanted"));
    }

    #[test]
    fn a_scheduled_backup_carries_the_schedules_target_and_labels() {
        let spec: DynamoBackupScheduleSpec = serde_json::from_value(serde_json::json!({
            "cluster": "demo",
            "schedule": "@daily",
            "target": {"volume": {"path": "daily"}},
        }))
        .expect("spec");
        assert_eq!(spec.keep, 7);
        let backup = scheduled_backup("daily", &spec, at("2026-12-01T00:00:00Z"));
        assert_eq!(backup.name_any(), "daily-20261201000000");
        assert_eq!(
            backup.spec.deletion_policy,
            crate::crd::backup::DeletionPolicy::Delete
        );
        assert_eq!(backup.labels()[SCHEDULE_LABEL], "daily");
        assert_eq!(backup.labels()[CLUSTER_LABEL], "demo");
        assert!(
            backup.owner_references().is_empty(),
            "not owned by the schedule"
        );
    }

    #[test]
    fn the_wait_is_bounded() {
        let now = at("2026-12-01T00:00:00Z");
        assert_eq!(
            wait_until(Some(at("2026-12-01T00:00:20Z")), now),
            Duration::from_secs(20)
        );
        assert_eq!(wait_until(Some(now), now), Duration::from_secs(1));
        assert_eq!(wait_until(None, now), LONGEST_WAIT);
        assert_eq!(
            wait_until(Some(at("2027-01-01T00:00:00Z")), now),
            LONGEST_WAIT
        );
    }
}
