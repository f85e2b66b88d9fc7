//! Status: the phase, the five conditions (`Ready`, `Progressing`,
//! `Degraded`, `SpecApplied`, `Rebalancing`) in the `metav1.Condition`
//! shape, and the status patch.
//!
//! A condition's `lastTransitionTime` changes only when its status flips.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Api;
use kube::api::{Patch, PatchParams};

use super::observe::World;
use super::rolling_upgrade::RestartDecision;
use super::storage::HeldStorage;
use super::{Error, FIELD_MANAGER};
use crate::crd::{
    DynamoCluster, DynamoClusterStatus, Phase, RebalancingStatus, ZoneSpec, ZoneStatus, condition,
};
use crate::resources::REPLACE_ANNOTATION;
use crate::ring_steps::{StepAction, StepPlan};

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
fn refused(message: &str) -> Vec<ConditionUpdate> {
    vec![
        ConditionUpdate::new(condition::READY, false, "SpecRefused", message),
        ConditionUpdate::new(condition::PROGRESSING, false, "SpecRefused", message),
    ]
}

/// The conditions of a cluster held by what only the user can fix (an
/// auth Secret that gives no admin and peer token, a clients Secret without
/// `clients.json`, a `spec.tls` Secret that gives no usable CA, volumes of
/// a previous cluster): not ready, not progressing, degraded.
fn held(reason: &str, message: &str) -> Vec<ConditionUpdate> {
    vec![
        ConditionUpdate::new(condition::READY, false, reason, message),
        ConditionUpdate::new(condition::PROGRESSING, false, reason, message),
        ConditionUpdate::new(condition::DEGRADED, true, reason, message),
    ]
}

/// The status of `cluster` once its spec is refused with `message`: the
/// `refused` conditions and phase `Invalid`; the rest is kept.
pub fn refused_status(cluster: &DynamoCluster, message: &str, now: &Time) -> DynamoClusterStatus {
    let previous = cluster.status.clone().unwrap_or_default();
    let generation = cluster.metadata.generation;
    DynamoClusterStatus {
        conditions: merge_conditions(&previous.conditions, &refused(message), generation, now),
        observed_generation: generation,
        phase: Some(Phase::Invalid),
        ..previous
    }
}

/// The status of `cluster` once it is held for `reason`: the `held`
/// conditions; the phase and the rest are kept.
pub fn held_status(
    cluster: &DynamoCluster,
    reason: &str,
    message: &str,
    now: &Time,
) -> DynamoClusterStatus {
    let previous = cluster.status.clone().unwrap_or_default();
    let generation = cluster.metadata.generation;
    DynamoClusterStatus {
        conditions: merge_conditions(
            &previous.conditions,
            &held(reason, message),
            generation,
            now,
        ),
        observed_generation: generation,
        ..previous
    }
}

/// The status of a paused `cluster`: the counts and progress of
/// `observed` (what acting would report), with the phase and observed
/// generation kept (nothing of the current spec was carried out), and
/// `Paused` true, `Progressing` false.
pub fn paused_status(
    cluster: &DynamoCluster,
    observed: DynamoClusterStatus,
    now: &Time,
) -> DynamoClusterStatus {
    let previous = cluster.status.clone().unwrap_or_default();
    let message = "spec.paused is true: the operator applies no object, publishes no ring and \
                   restarts no pod until it is false";
    let updates = [
        ConditionUpdate::new(condition::PAUSED, true, "Paused", message),
        ConditionUpdate::new(condition::PROGRESSING, false, "Paused", message),
    ];
    DynamoClusterStatus {
        conditions: merge_conditions(
            &previous.conditions,
            &updates,
            cluster.metadata.generation,
            now,
        ),
        phase: previous.phase,
        observed_generation: previous.observed_generation,
        ..observed
    }
}

/// `status` of a cluster acted on, with `Paused` turned false if an
/// earlier reconcile set it.
pub fn resumed_status(
    cluster: &DynamoCluster,
    mut status: DynamoClusterStatus,
    now: &Time,
) -> DynamoClusterStatus {
    if status
        .conditions
        .iter()
        .any(|c| c.type_ == condition::PAUSED)
    {
        let update = ConditionUpdate::new(
            condition::PAUSED,
            false,
            "Resumed",
            "spec.paused is false: the operator acts on the spec",
        );
        status.conditions = merge_conditions(
            &status.conditions,
            &[update],
            cluster.metadata.generation,
            now,
        );
    }
    status
}

/// What the status of a cluster acted on is computed from.
#[derive(Clone, Copy, Debug)]
pub struct Decided<'a> {
    /// The ring step.
    pub step: &'a StepPlan,
    /// The rolling-upgrade decision.
    pub restart: &'a RestartDecision,
    /// Zones whose StatefulSet gets a new pod template.
    pub new_templates: &'a [String],
    /// Zones keeping a claim template the spec no longer asks for.
    pub held: &'a [HeldStorage],
    /// The observed cluster.
    pub world: &'a World,
    /// Names of the Ready pods.
    pub ready: &'a BTreeSet<String>,
}

/// The status of `cluster` after the decisions `decided`: phase, the five
/// conditions, ring epoch, node counts per zone and transfer progress.
pub fn acted_status(
    cluster: &DynamoCluster,
    decided: &Decided<'_>,
    now: &Time,
) -> DynamoClusterStatus {
    let previous = cluster.status.clone().unwrap_or_default();
    let generation = cluster.metadata.generation;
    let step = decided.step;
    let creating = is_creating(step, previous.phase);
    let progress = progress(decided, creating);
    let health = Health::of(decided);
    let mut updates = conditions(decided, &progress, &health, creating).to_vec();
    if let Some(check) = &decided.world.certificate {
        updates.push(ConditionUpdate::new(
            condition::TLS_CERTIFICATE,
            check.valid,
            check.reason,
            check.message.clone(),
        ));
    }
    let zones = zone_statuses(&cluster.spec.zones, decided);
    let mut conditions = merge_conditions(&previous.conditions, &updates, generation, now);
    if decided.world.certificate.is_none() {
        conditions.retain(|c| c.type_ != condition::TLS_CERTIFICATE);
    }
    DynamoClusterStatus {
        conditions,
        observed_generation: generation,
        ring_epoch: Some(step.ring.ring.epoch),
        phase: Some(progress.phase),
        ready_nodes: Some(zones.iter().map(|z| z.ready).sum()),
        desired_nodes: Some(zones.iter().map(|z| z.desired).sum()),
        zones,
        rebalancing: rebalancing_status(step),
    }
}

/// Whether the first ring is still being transferred and has never been
/// complete: a member that fails later is a degraded cluster, not one
/// still being created.
fn is_creating(step: &StepPlan, previous_phase: Option<Phase>) -> bool {
    let created_before = !matches!(previous_phase, None | Some(Phase::Creating));
    step.ring.ring.epoch == 1 && !step.progress.complete() && !created_before
}

/// Whether partitions are moving to a ring after the first.
fn is_rebalancing(step: &StepPlan) -> bool {
    step.ring.ring.epoch > 1 && !step.progress.complete()
}

/// The phase, with the reason and message of `Progressing`.
struct Progress {
    phase: Phase,
    reason: &'static str,
    message: String,
}

/// What the cluster is busy with, most telling first.
fn progress(decided: &Decided<'_>, creating: bool) -> Progress {
    let progress = |phase, reason, message| Progress {
        phase,
        reason,
        message,
    };
    let epoch = decided.step.ring.ring.epoch;
    let new_templates = decided.new_templates;
    match (&decided.step.action, decided.restart) {
        _ if creating => progress(
            Phase::Creating,
            "Creating",
            "starting the first nodes".to_string(),
        ),
        (StepAction::WaitForPods { waiting }, _) => progress(
            Phase::ScalingUp,
            "WaitingForPods",
            format!("waiting for {waiting:?} to be ready before they join the ring"),
        ),
        (StepAction::Shrink { .. }, _) => progress(
            Phase::ScalingDown,
            "ScalingDown",
            "removing pods that left the ring".to_string(),
        ),
        (StepAction::HandingOver { pods }, _) => progress(
            Phase::ScalingDown,
            "HandingOver",
            format!(
                "waiting for {pods:?}, which left the ring, to hand their data to its new owners"
            ),
        ),
        (StepAction::Transferring, _) if !blocking_members(decided).is_empty() => progress(
            match is_rebalancing(decided.step) {
                true => Phase::Rebalancing,
                false => Phase::Running,
            },
            "BlockedByMember",
            blocked_message(epoch, &blocking_members(decided)),
        ),
        _ if is_rebalancing(decided.step) => progress(
            Phase::Rebalancing,
            "Rebalancing",
            format!("moving partitions to ring epoch {epoch}"),
        ),
        _ if !new_templates.is_empty() => progress(
            Phase::Upgrading,
            "RollingUpgrade",
            format!("applying a new pod template to zone(s) {new_templates:?}"),
        ),
        (_, RestartDecision::Restart { outdated, .. } | RestartDecision::Wait { outdated, .. }) => {
            progress(
                Phase::Upgrading,
                "RollingUpgrade",
                format!("{outdated} pod(s) to move to the new template"),
            )
        }
        _ => progress(
            Phase::Running,
            "Idle",
            "the cluster matches the spec".to_string(),
        ),
    }
}

/// Members the ring step waits for that do not serve (not Ready), each
/// with why when Kubernetes says.
fn blocking_members(decided: &Decided<'_>) -> Vec<String> {
    decided
        .step
        .progress
        .incomplete
        .iter()
        .filter(|member| !decided.ready.contains(*member))
        .map(|member| {
            let pod = decided.world.pods.iter().find(|p| &p.name == member);
            match pod.and_then(|p| p.problem.as_deref()) {
                Some(problem) => format!("{member} ({problem})"),
                None if pod.is_none() => format!("{member} (no pod)"),
                None => format!("{member} (not ready)"),
            }
        })
        .collect()
}

/// What blocks ring epoch `epoch` and what to do about it.
fn blocked_message(epoch: u64, blocking: &[String]) -> String {
    format!(
        "ring epoch {epoch} waits for {}, which do not serve: no ring step, scale-down or \
         rolling restart goes on until they do. Once a pod is back the step goes on by itself; \
         if its machine or volume is lost for good, replace it on a new volume: \
         kubectl annotate pod <pod> {REPLACE_ANNOTATION}=true",
        blocking.join(", ")
    )
}

/// Which ring members are not serving, and why pods cannot run.
struct Health<'a> {
    /// Members of the ring.
    members: usize,
    /// Members that are not Ready.
    unready: Vec<&'a str>,
    /// Ready members that gave no transfer report.
    silent: Vec<&'a str>,
    /// `<pod>: <why>` of every pod Kubernetes cannot run.
    pod_problems: Vec<String>,
}

impl<'a> Health<'a> {
    fn of(decided: &Decided<'a>) -> Self {
        let (ready, reports) = (decided.ready, &decided.world.reports);
        let members: Vec<&str> = decided
            .step
            .ring
            .ring
            .members
            .iter()
            .map(|m| m.id.as_str())
            .collect();
        Health {
            members: members.len(),
            unready: members
                .iter()
                .copied()
                .filter(|id| !ready.contains(*id))
                .collect(),
            silent: members
                .iter()
                .copied()
                .filter(|id| ready.contains(*id) && !reports.contains_key(*id))
                .collect(),
            pod_problems: decided
                .world
                .pods
                .iter()
                .filter_map(|p| p.problem.as_ref().map(|why| format!("{}: {why}", p.name)))
                .collect(),
        }
    }

    /// Degraded: a member is not serving (once created), or a pod cannot
    /// run (creation included).
    fn degraded(&self, creating: bool) -> bool {
        let all_available = self.unready.is_empty() && self.silent.is_empty();
        (!creating && !all_available) || !self.pod_problems.is_empty()
    }

    /// The `Degraded` message.
    fn message(&self) -> String {
        let mut message = format!(
            "not ready: {:?}; not answering: {:?}",
            self.unready, self.silent
        );
        for problem in &self.pod_problems {
            message.push_str("; ");
            message.push_str(problem);
        }
        message
    }
}

/// The five condition updates of a cluster acted on.
fn conditions(
    decided: &Decided<'_>,
    progress: &Progress,
    health: &Health<'_>,
    creating: bool,
) -> [ConditionUpdate; 5] {
    let epoch = decided.step.ring.ring.epoch;
    let progressing = progress.phase != Phase::Running;
    let degraded = health.degraded(creating);
    let ready = !progressing && !degraded;
    let progressing_message = match health.pod_problems.is_empty() {
        true => progress.message.clone(),
        false => format!(
            "{}; blocked by {}",
            progress.message,
            health.pod_problems.join("; ")
        ),
    };
    let rebalancing = is_rebalancing(decided.step);
    [
        match ready {
            true => ConditionUpdate::new(
                condition::READY,
                true,
                "AllNodesReady",
                format!("{} nodes serve ring epoch {epoch}", health.members),
            ),
            false => ConditionUpdate::new(
                condition::READY,
                false,
                progress.reason,
                progressing_message.clone(),
            ),
        },
        ConditionUpdate::new(
            condition::PROGRESSING,
            progressing,
            progress.reason,
            progressing_message,
        ),
        match degraded {
            true => ConditionUpdate::new(
                condition::DEGRADED,
                true,
                "NodesUnavailable",
                health.message(),
            ),
            false => ConditionUpdate::new(condition::DEGRADED, false, "AllNodesAvailable", ""),
        },
        spec_applied(decided.held),
        match rebalancing {
            true => ConditionUpdate::new(
                condition::REBALANCING,
                true,
                "Transferring",
                format!(
                    "{} partition copies pending; waiting for {:?}",
                    decided.step.progress.pending, decided.step.progress.incomplete
                ),
            ),
            false => ConditionUpdate::new(condition::REBALANCING, false, "Settled", ""),
        },
    ]
}

/// `SpecApplied`: true unless a zone keeps a claim template the spec no
/// longer asks for.
fn spec_applied(held: &[HeldStorage]) -> ConditionUpdate {
    match held.is_empty() {
        true => ConditionUpdate::new(condition::SPEC_APPLIED, true, "Applied", ""),
        false => ConditionUpdate::new(
            condition::SPEC_APPLIED,
            false,
            match held.iter().all(|h| h.expanding) {
                true => "VolumesExpanding",
                false => "StorageChangeRefused",
            },
            held.iter()
                .map(|h| h.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
    }
}

/// Desired and Ready pods of every zone of the spec.
fn zone_statuses(zones: &[ZoneSpec], decided: &Decided<'_>) -> Vec<ZoneStatus> {
    zones
        .iter()
        .map(|z| ZoneStatus {
            name: z.name.clone(),
            desired: z.replicas,
            ready: decided
                .world
                .pods
                .iter()
                .filter(|p| p.zone == z.name && decided.ready.contains(&p.name))
                .count()
                .try_into()
                .unwrap_or(i32::MAX),
        })
        .collect()
}

/// Transfer progress of the step's ring, while it is not complete.
fn rebalancing_status(step: &StepPlan) -> Option<RebalancingStatus> {
    let progress = &step.progress;
    (!progress.complete()).then(|| RebalancingStatus {
        epoch: step.ring.ring.epoch,
        pending_partitions: progress.pending,
        done_partitions: progress.done,
        incomplete_nodes: progress.incomplete.clone(),
    })
}

/// Writes `status` to the status subresource (server-side apply).
pub async fn patch_status(
    api: &Api<DynamoCluster>,
    name: &str,
    status: &DynamoClusterStatus,
) -> Result<(), Error> {
    Ok(apply_status(api, name, status).await?)
}

/// Writes `status` into the status subresource of the `K` named `name`
/// (server-side apply as the operator, forced): the status of every
/// resource the operator reports on.
pub async fn apply_status<K, S>(api: &Api<K>, name: &str, status: &S) -> Result<(), kube::Error>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize,
{
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
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
