//! Rolling upgrades: the pure decision of which pod to replace next when
//! the pod template changed (image, configuration, resources).
//!
//! StatefulSets use `OnDelete`, so the operator replaces pods itself, one at
//! a time: only when every pod is Ready and every node reports no hinted
//! write pending (so the restarted node's writes have reached their owners),
//! it deletes one outdated pod: zones in spec order, highest ordinal first.
//!
//! An outdated pod that is not Ready is replaced first, whatever the
//! others do: it serves nothing, and it is how a rollout stuck on a bad
//! template (a crash-looping pod) recovers once the spec is corrected.

use std::collections::BTreeMap;

use dynamo_ring::TransferReport;

use super::observe::PodState;

/// What to do about outdated pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestartDecision {
    /// Every pod runs its StatefulSet's update revision.
    UpToDate,
    /// Some pod is outdated but it is not safe to restart one now.
    Wait {
        /// Outdated pods left.
        outdated: usize,
        /// Why not now.
        reason: String,
    },
    /// Delete this pod; its StatefulSet recreates it from the new template.
    Restart {
        /// Pod name.
        pod: String,
        /// Outdated pods left, this one included.
        outdated: usize,
    },
}

/// Whether `pod` runs another revision than its StatefulSet's update
/// revision.
fn is_outdated(pod: &PodState, update_revisions: &BTreeMap<String, String>) -> bool {
    match (update_revisions.get(&pod.zone), &pod.revision) {
        (Some(wanted), Some(has)) => wanted != has,
        _ => false,
    }
}

/// An outdated pod that is not Ready (nor already being deleted), to
/// replace at once: it serves nothing, and it is how a rollout of a bad
/// template recovers once the spec is corrected.
pub fn stuck_pod(
    pods: &[PodState],
    update_revisions: &BTreeMap<String, String>,
) -> Option<RestartDecision> {
    let outdated = pods.iter().filter(|p| is_outdated(p, update_revisions));
    let stuck = outdated.clone().find(|p| !p.ready && !p.terminating)?;
    Some(RestartDecision::Restart {
        pod: stuck.name.clone(),
        outdated: outdated.count(),
    })
}

/// Decides the next pod to restart.
///
/// `update_revisions` maps a zone to its StatefulSet's `updateRevision`;
/// `zone_order` is the order of the spec's zones.
pub fn next_restart(
    pods: &[PodState],
    zone_order: &[String],
    update_revisions: &BTreeMap<String, String>,
    reports: &BTreeMap<String, TransferReport>,
) -> RestartDecision {
    let mut outdated: Vec<&PodState> = pods
        .iter()
        .filter(|p| is_outdated(p, update_revisions))
        .collect();
    if outdated.is_empty() {
        return RestartDecision::UpToDate;
    }
    let count = outdated.len();
    if let Some(stuck) = stuck_pod(pods, update_revisions) {
        return stuck;
    }
    let wait = |reason: String| RestartDecision::Wait {
        outdated: count,
        reason,
    };
    if let Some(pod) = pods.iter().find(|p| !p.is_ready()) {
        return wait(format!("pod {} is not ready", pod.name));
    }
    for pod in pods {
        match reports.get(&pod.name) {
            None => return wait(format!("node {} did not report", pod.name)),
            Some(report) if report.hints_pending > 0 => {
                return wait(format!(
                    "node {} has {} hinted writes pending",
                    pod.name, report.hints_pending
                ));
            }
            Some(_) => {}
        }
    }
    let zone_rank = |zone: &str| {
        zone_order
            .iter()
            .position(|z| z == zone)
            .unwrap_or(zone_order.len())
    };
    outdated.sort_by(|a, b| {
        zone_rank(&a.zone)
            .cmp(&zone_rank(&b.zone))
            .then(b.ordinal.cmp(&a.ordinal))
    });
    RestartDecision::Restart {
        pod: outdated[0].name.clone(),
        outdated: count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring_steps::fixtures::settled_report;

    fn pod(zone: &str, ordinal: i32, revision: &str) -> PodState {
        PodState {
            name: format!("demo-{zone}-{ordinal}"),
            zone: zone.into(),
            ordinal,
            ready: true,
            terminating: false,
            revision: Some(revision.into()),
            problem: None,
            replace: false,
        }
    }

    fn reports(pods: &[PodState], hints: u64) -> BTreeMap<String, TransferReport> {
        pods.iter()
            .map(|p| {
                (
                    p.name.clone(),
                    TransferReport {
                        hints_pending: hints,
                        ..settled_report(&p.name, 1)
                    },
                )
            })
            .collect()
    }

    fn zones() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    fn revisions(rev: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("a".into(), rev.into()), ("b".into(), rev.into())])
    }

    #[test]
    fn nothing_to_do_when_every_pod_runs_the_update_revision() {
        let pods = vec![pod("a", 0, "r2"), pod("b", 0, "r2")];
        let reports = reports(&pods, 0);
        assert_eq!(
            next_restart(&pods, &zones(), &revisions("r2"), &reports),
            RestartDecision::UpToDate
        );
    }

    #[test]
    fn pods_are_replaced_one_at_a_time_in_zone_then_reverse_ordinal_order() {
        let mut pods = vec![pod("b", 0, "r1"), pod("a", 0, "r1"), pod("a", 1, "r1")];
        let mut order = Vec::new();
        loop {
            let reports = reports(&pods, 0);
            match next_restart(&pods, &zones(), &revisions("r2"), &reports) {
                RestartDecision::Restart { pod, .. } => {
                    order.push(pod.clone());
                    let p = pods.iter_mut().find(|p| p.name == pod).expect("pod");
                    // Deleted: not ready until it comes back on the new revision.
                    p.ready = false;
                    p.revision = Some("r2".into());
                    let again = next_restart(&pods, &zones(), &revisions("r2"), &reports);
                    assert!(
                        matches!(
                            again,
                            RestartDecision::Wait { .. } | RestartDecision::UpToDate
                        ),
                        "no second restart while {pod} is down"
                    );
                    pods.iter_mut().for_each(|p| p.ready = true);
                }
                RestartDecision::UpToDate => break,
                RestartDecision::Wait { reason, .. } => panic!("unexpected wait: {reason}"),
            }
        }
        assert_eq!(order, ["demo-a-1", "demo-a-0", "demo-b-0"]);
    }

    /// A bad template crash-loops the first replaced pod; the corrected
    /// template must replace it at once, although it is not ready.
    #[test]
    fn an_outdated_pod_that_is_not_ready_is_replaced_first() {
        let mut pods = vec![pod("a", 0, "r1"), pod("a", 1, "r2"), pod("b", 0, "r1")];
        pods[1].ready = false;
        assert_eq!(
            next_restart(&pods, &zones(), &revisions("r3"), &reports(&pods, 0)),
            RestartDecision::Restart {
                pod: "demo-a-1".into(),
                outdated: 3
            }
        );
        pods[1].terminating = true;
        assert!(matches!(
            next_restart(&pods, &zones(), &revisions("r3"), &reports(&pods, 0)),
            RestartDecision::Wait { .. }
        ));
    }

    #[test]
    fn waits_for_hints_to_drain() {
        let pods = vec![pod("a", 0, "r1"), pod("b", 0, "r2")];
        let decision = next_restart(&pods, &zones(), &revisions("r2"), &reports(&pods, 5));
        assert_eq!(
            decision,
            RestartDecision::Wait {
                outdated: 1,
                reason: "node demo-a-0 has 5 hinted writes pending".into()
            }
        );
    }

    #[test]
    fn waits_for_an_unready_or_silent_pod() {
        let mut pods = vec![pod("a", 0, "r1"), pod("b", 0, "r2")];
        let mut silent = reports(&pods, 0);
        silent.remove("demo-b-0");
        assert!(matches!(
            next_restart(&pods, &zones(), &revisions("r2"), &silent),
            RestartDecision::Wait { .. }
        ));
        pods[1].ready = false;
        assert!(matches!(
            next_restart(&pods, &zones(), &revisions("r2"), &reports(&pods, 0)),
            RestartDecision::Wait { .. }
        ));
    }
}
