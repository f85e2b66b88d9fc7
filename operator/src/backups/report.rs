//! What the backup controllers write: status subresources (server-side
//! apply, the cluster reconcile's `apply_status`), progress, the
//! `Complete` condition and Events.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};

use super::COMPLETE;
use crate::crd::backup::{TransferPhase, TransferProgress};
pub use crate::reconcile::status::apply_status as patch_status;
use crate::reconcile::status::{ConditionUpdate, merge_conditions};
use dynamo_backup::driver::progress::ProgressReport;

/// Records an Event about `object`; one that cannot be written is a
/// warning in the log (the status is the record).
pub async fn event<K>(recorder: &Recorder, object: &K, warning: bool, reason: &str, note: &str)
where
    K: Resource<DynamicType = ()>,
{
    let event = Event {
        type_: match warning {
            true => EventType::Warning,
            false => EventType::Normal,
        },
        reason: reason.to_string(),
        note: Some(note.chars().take(1000).collect()),
        action: reason.to_string(),
        secondary: None,
    };
    if let Err(error) = recorder.publish(&event, &object.object_ref(&())).await {
        tracing::warn!(%error, reason, "recording an event failed");
    }
}

/// The status's progress from the driver's.
pub fn progress(report: &ProgressReport) -> TransferProgress {
    TransferProgress {
        records: report.records,
        bytes: report.bytes,
        expected_records: report.expected_records,
        records_per_second: report.records_per_sec.max(0.0) as u64,
        bytes_per_second: report.bytes_per_sec.max(0.0) as u64,
        eta_seconds: report.eta_secs,
        elapsed_seconds: report.seconds.max(0.0) as u64,
    }
}

/// A progress line for the status message: records, MiB, rate and ETA.
pub fn progress_line(verb: &str, report: &ProgressReport) -> String {
    let mib = report.bytes as f64 / f64::from(1 << 20);
    let mut line = format!(
        "{verb}: {} records ({mib:.1} MiB), {:.0} records/s",
        report.records, report.records_per_sec
    );
    if report.expected_records > 0 {
        line.push_str(&format!(" of about {}", report.expected_records));
    }
    if let Some(eta) = report.eta_secs {
        line.push_str(&format!(", about {eta} s left"));
    }
    line
}

/// `conditions` with `Complete` set for `phase`, its reason and message.
pub fn complete_condition(
    conditions: &[Condition],
    phase: TransferPhase,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let update = ConditionUpdate::new(COMPLETE, phase == TransferPhase::Completed, reason, message);
    merge_conditions(conditions, &[update], generation, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> ProgressReport {
        ProgressReport {
            records: 1000,
            bytes: 3 << 20,
            expected_records: 4000,
            seconds: 2.5,
            records_per_sec: 400.0,
            bytes_per_sec: 1258291.0,
            eta_secs: Some(8),
        }
    }

    #[test]
    fn progress_keeps_the_drivers_figures_in_whole_numbers() {
        let p = progress(&report());
        assert_eq!(
            (p.records, p.bytes, p.expected_records),
            (1000, 3 << 20, 4000)
        );
        assert_eq!((p.records_per_second, p.bytes_per_second), (400, 1258291));
        assert_eq!((p.eta_seconds, p.elapsed_seconds), (Some(8), 2));
    }

    #[test]
    fn the_progress_line_says_records_size_rate_and_time_left() {
        assert_eq!(
            progress_line("backing up", &report()),
            "backing up: 1000 records (3.0 MiB), 400 records/s of about 4000, about 8 s left"
        );
    }
}
