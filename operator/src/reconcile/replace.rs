//! Replacing a dead node: the pure decision of which pods marked with
//! [`REPLACE_ANNOTATION`](crate::resources::REPLACE_ANNOTATION) lose their volume claim and are recreated now.
//!
//! A replaced pod keeps its name, so it keeps its ring identity: the ring
//! does not change and no other node moves data. Its new, empty volume
//! makes the node start as one that lost its data (the ConfigMap says the
//! cluster exists), so it receives every partition it owns from the other
//! replicas before it answers reads for them.

use std::collections::BTreeMap;

use dynamo_ring::TransferReport;

use super::observe::PodState;

/// Marked pods: those to replace now, and those that must wait, with why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replacements {
    /// Pods whose claim and pod are deleted now.
    pub now: Vec<String>,
    /// Pods marked for replacement that wait, with the reason.
    pub waiting: Vec<(String, String)>,
}

/// Decides the replacements. A marked pod that is not Ready is replaced
/// at once: whatever it held is lost or unreachable anyway, and the other
/// replicas stream it back. A marked pod that still serves is replaced only
/// when every other pod is Ready and has received all it owns, so its data
/// exists elsewhere in full; one at a time.
pub fn replacements(pods: &[PodState], reports: &BTreeMap<String, TransferReport>) -> Replacements {
    let mut decided = Replacements::default();
    for pod in pods.iter().filter(|p| p.replace) {
        if !pod.is_ready() {
            decided.now.push(pod.name.clone());
            continue;
        }
        match reason_to_wait(pod, pods, reports) {
            Some(reason) => decided.waiting.push((pod.name.clone(), reason)),
            None if decided.now.is_empty() => decided.now.push(pod.name.clone()),
            None => decided
                .waiting
                .push((pod.name.clone(), "another pod is being replaced".into())),
        }
    }
    decided
}

/// Why a serving pod may not be replaced yet: another pod is not Ready or
/// has partitions still to receive.
fn reason_to_wait(
    pod: &PodState,
    pods: &[PodState],
    reports: &BTreeMap<String, TransferReport>,
) -> Option<String> {
    for other in pods.iter().filter(|p| p.name != pod.name) {
        if !other.is_ready() {
            return Some(format!("pod {} is not ready", other.name));
        }
        match reports.get(&other.name) {
            None => return Some(format!("node {} did not report", other.name)),
            Some(report) if report.pending > 0 => {
                return Some(format!(
                    "node {} has {} partitions still to receive",
                    other.name, report.pending
                ));
            }
            Some(_) => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ready: bool, replace: bool) -> PodState {
        PodState {
            name: name.into(),
            zone: "a".into(),
            ordinal: name.rsplit_once('-').unwrap().1.parse().unwrap(),
            ready,
            terminating: false,
            revision: None,
            problem: None,
            replace,
        }
    }

    fn report(node: &str, pending: u32) -> (String, TransferReport) {
        let report = TransferReport {
            node: node.into(),
            epoch: 1,
            pending,
            done: 0,
            hints_pending: 0,
            retired: 0,
            partitions: Vec::new(),
        };
        (node.into(), report)
    }

    #[test]
    fn a_dead_marked_pod_is_replaced_at_once_and_unmarked_pods_never() {
        let pods = [
            pod("demo-a-0", true, false),
            pod("demo-a-1", false, true),
            pod("demo-a-2", false, false),
        ];
        let decided = replacements(&pods, &BTreeMap::new());
        assert_eq!(decided.now, vec!["demo-a-1".to_string()]);
        assert!(decided.waiting.is_empty());
    }

    #[test]
    fn a_serving_marked_pod_waits_until_its_data_exists_elsewhere_in_full() {
        let pods = [
            pod("demo-a-0", true, true),
            pod("demo-a-1", true, false),
            pod("demo-a-2", true, true),
        ];
        let mut reports: BTreeMap<_, _> = [report("demo-a-0", 0), report("demo-a-2", 0)].into();
        let decided = replacements(&pods, &reports);
        assert!(decided.now.is_empty());
        assert!(decided.waiting[0].1.contains("demo-a-1 did not report"));

        reports.extend([report("demo-a-1", 3)]);
        let decided = replacements(&pods, &reports);
        assert!(
            decided.waiting[0]
                .1
                .contains("3 partitions still to receive")
        );

        reports.extend([report("demo-a-1", 0)]);
        let decided = replacements(&pods, &reports);
        assert_eq!(decided.now, vec!["demo-a-0".to_string()]);
        assert_eq!(
            decided.waiting,
            vec![(
                "demo-a-2".to_string(),
                "another pod is being replaced".to_string()
            )]
        );
    }
}
