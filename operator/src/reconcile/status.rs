//! Status: the four conditions (`Ready`, `Progressing`, `Degraded`,
//! `Rebalancing`) in the `metav1.Condition` shape, the phase, and the
//! status patch.
//!
//! A condition's `lastTransitionTime` changes only when its status flips.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Api;
use kube::api::{Patch, PatchParams};

use super::{Error, FIELD_MANAGER};
use crate::crd::{DynamoCluster, DynamoClusterStatus, GROUP, condition};

/// The wanted state of one condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionUpdate {
    /// Condition type (see [`condition`]).
    pub type_: &'static str,
    /// Whether the condition holds.
    pub status: bool,
    /// `PascalCase` reason.
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
}

impl ConditionUpdate {
    /// A condition update.
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        ConditionUpdate {
            type_,
            status,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// Applies `updates` to `previous`: conditions not updated are kept, an
/// updated condition keeps its `lastTransitionTime` unless its status flips.
/// Result is ordered by type.
pub fn merge_conditions(
    previous: &[Condition],
    updates: &[ConditionUpdate],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let mut conditions: Vec<Condition> = previous
        .iter()
        .filter(|c| !updates.iter().any(|u| u.type_ == c.type_))
        .cloned()
        .collect();
    for update in updates {
        let status = if update.status { "True" } else { "False" };
        let last_transition_time = previous
            .iter()
            .find(|c| c.type_ == update.type_ && c.status == status)
            .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
        conditions.push(Condition {
            type_: update.type_.to_string(),
            status: status.to_string(),
            reason: update.reason.clone(),
            message: update.message.clone(),
            observed_generation: generation,
            last_transition_time,
        });
    }
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    conditions
}

/// Whether a condition of this type is true.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// The conditions of a refused spec: not ready, not progressing.
pub fn refused(message: &str) -> Vec<ConditionUpdate> {
    vec![
        ConditionUpdate::new(condition::READY, false, "SpecRefused", message),
        ConditionUpdate::new(condition::PROGRESSING, false, "SpecRefused", message),
    ]
}

/// The conditions of a cluster whose `spec.auth` Secret gives no token or
/// whose `spec.tls` Secret gives no usable CA: not ready, not progressing,
/// degraded (the nodes cannot be called).
pub fn secret_blocked(reason: &str, message: &str) -> Vec<ConditionUpdate> {
    vec![
        ConditionUpdate::new(condition::READY, false, reason, message),
        ConditionUpdate::new(condition::PROGRESSING, false, reason, message),
        ConditionUpdate::new(condition::DEGRADED, true, reason, message),
    ]
}

/// Writes `status` to the status subresource (server-side apply).
pub async fn patch_status(
    api: &Api<DynamoCluster>,
    name: &str,
    status: &DynamoClusterStatus,
) -> Result<(), Error> {
    let body = serde_json::json!({
        "apiVersion": format!("{GROUP}/v1alpha1"),
        "kind": "DynamoCluster",
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).expect("time"))
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let first = merge_conditions(
            &[],
            &[ConditionUpdate::new(
                condition::READY,
                false,
                "Creating",
                "pods starting",
            )],
            Some(1),
            &at(100),
        );
        assert_eq!(first[0].last_transition_time, at(100));

        let same = merge_conditions(
            &first,
            &[ConditionUpdate::new(
                condition::READY,
                false,
                "Rebalancing",
                "epoch 2",
            )],
            Some(2),
            &at(200),
        );
        assert_eq!(same[0].last_transition_time, at(100));
        assert_eq!(same[0].reason, "Rebalancing");
        assert_eq!(same[0].observed_generation, Some(2));

        let flipped = merge_conditions(
            &same,
            &[ConditionUpdate::new(
                condition::READY,
                true,
                "AllNodesReady",
                "",
            )],
            Some(2),
            &at(300),
        );
        assert_eq!(flipped[0].status, "True");
        assert_eq!(flipped[0].last_transition_time, at(300));
    }

    #[test]
    fn conditions_not_updated_are_kept_and_sorted() {
        let previous = merge_conditions(
            &[],
            &[
                ConditionUpdate::new(condition::REBALANCING, true, "Transferring", ""),
                ConditionUpdate::new(condition::DEGRADED, false, "AllNodesReady", ""),
            ],
            Some(1),
            &at(1),
        );
        let merged = merge_conditions(&previous, &refused("bad"), Some(2), &at(2));
        let types: Vec<&str> = merged.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Degraded", "Progressing", "Ready", "Rebalancing"]);
        assert!(is_true(&merged, condition::REBALANCING));
        assert!(!is_true(&merged, condition::READY));
    }
}
