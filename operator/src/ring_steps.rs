//! Ring steps: the pure decisions that move a cluster from its published
//! ring to the one its spec asks for without losing data.
//!
//! - **Create**: with no ring yet, the first ring (epoch 1) is built from
//!   the pod names the StatefulSets will create, so nodes start with it.
//! - **Scale up**: StatefulSet replicas rise first; once every new pod is
//!   Ready the next ring (with them) is published.
//! - **Scale down**: the next ring (without the highest ordinals) is
//!   published first; the StatefulSet shrinks only once every member of that
//!   ring confirms it holds all it owns (`complete_for(epoch)`).
//! - One step at a time: no ring is published while the previous one is
//!   still being transferred.
//! - **Publication**: every ready pod that does not report the ring's epoch
//!   is sent the ring ([`needs_ring`]), members and leaving pods alike.

use std::collections::{BTreeMap, BTreeSet};

use dynamo_ring::{Member, Ring, RingDocument, RingError, TransferReport};

use crate::resources::ClusterRef;

/// One zone as the step logic sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneState {
    /// Zone name.
    pub name: String,
    /// Nodes the spec asks for (0 for a zone removed from the spec).
    pub target: i32,
    /// Replicas of the zone's StatefulSet, if it exists.
    pub current: Option<i32>,
}

/// Everything a ring step depends on.
#[derive(Clone, Debug)]
pub struct StepInput<'a> {
    /// Names and addresses of the cluster.
    pub cluster: &'a ClusterRef,
    /// Zones of the spec, then zones only the cluster still has.
    pub zones: &'a [ZoneState],
    /// Replication factor `N`.
    pub replication: usize,
    /// Partition count `Q`.
    pub partitions: u32,
    /// The published ring, if any.
    pub ring: Option<&'a RingDocument>,
    /// Names of the pods that are Ready.
    pub ready_pods: &'a BTreeSet<String>,
    /// Transfer reports by pod name (absent: not reachable).
    pub reports: &'a BTreeMap<String, TransferReport>,
}

/// How far the members of a ring are with receiving what they own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransferProgress {
    /// Ring epoch.
    pub epoch: u64,
    /// Partition copies not received yet, over reporting members.
    pub pending: u32,
    /// Partition copies received, over reporting members.
    pub done: u32,
    /// Members that have not confirmed the epoch, by id.
    pub incomplete: Vec<String>,
}

impl TransferProgress {
    /// Whether every member confirmed the epoch.
    pub fn complete(&self) -> bool {
        self.incomplete.is_empty()
    }
}

/// What the step logic decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepAction {
    /// Nothing to change: the ring matches the spec and is transferred.
    Steady,
    /// Publish the first ring.
    Create,
    /// Raise StatefulSet replicas and wait for the new pods to be Ready.
    WaitForPods {
        /// New members that are not Ready yet.
        waiting: Vec<String>,
    },
    /// Publish a ring with these members joining and leaving.
    Publish {
        /// Members joining.
        joining: Vec<String>,
        /// Members leaving.
        leaving: Vec<String>,
    },
    /// The published ring is being transferred; no new step.
    Transferring,
    /// The ring without these pods is confirmed, but they still run and
    /// have not handed their copies to the new owners (or have hints
    /// pending): wait before removing them.
    HandingOver {
        /// Pods that left the ring and still run.
        pods: Vec<String>,
    },
    /// Lower StatefulSet replicas: the ring without those pods is confirmed.
    Shrink {
        /// Pods being removed.
        removed: Vec<String>,
    },
}

/// The outcome of one step decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepPlan {
    /// Ring to have in the ConfigMap (and on every member) after this step.
    pub ring: RingDocument,
    /// Whether `ring` is a new epoch to publish now.
    pub publish: bool,
    /// StatefulSet replicas per zone.
    pub replicas: BTreeMap<String, i32>,
    /// Progress of `ring` (a freshly published ring has nobody complete).
    pub progress: TransferProgress,
    /// What was decided.
    pub action: StepAction,
}

impl StepPlan {
    /// StatefulSet replicas of `zone` after this step (0 for a zone
    /// without any).
    pub fn zone_replicas(&self, zone: &str) -> i32 {
        self.replicas.get(zone).copied().unwrap_or(0)
    }
}

/// Why no step can be computed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The ring library refused the member set.
    #[error("cannot build the ring: {0}")]
    Ring(#[from] RingError),
}

/// The zones a step works on: those of `spec` (name, replicas) in order,
/// then the zones only a StatefulSet or the `ring` still has (target 0),
/// by name. `current` holds the replicas of every zone StatefulSet.
pub fn zone_states(
    spec: &[(String, i32)],
    current: &BTreeMap<String, i32>,
    ring: Option<&RingDocument>,
) -> Vec<ZoneState> {
    let ring_zones = ring
        .iter()
        .flat_map(|d| d.ring.members.iter().map(|m| m.zone.clone()));
    let leftover: BTreeSet<String> = current
        .keys()
        .cloned()
        .chain(ring_zones)
        .filter(|zone| !spec.iter().any(|(name, _)| name == zone))
        .collect();
    spec.iter()
        .cloned()
        .chain(leftover.into_iter().map(|name| (name, 0)))
        .map(|(name, target)| ZoneState {
            current: current.get(&name).copied(),
            name,
            target,
        })
        .collect()
}

/// Whether a ready pod must be sent the ring of `epoch`: it gave no
/// transfer `report`, or one of an older epoch. Leaving pods too: one that
/// kept the old ring would go on coordinating writes as an owner.
pub fn needs_ring(report: Option<&TransferReport>, epoch: u64) -> bool {
    report.is_none_or(|r| r.epoch < epoch)
}

/// The members the spec asks for: ordinals `0..target` of every zone.
pub fn desired_members(cluster: &ClusterRef, zones: &[ZoneState]) -> Vec<Member> {
    zones
        .iter()
        .flat_map(|z| {
            (0..z.target).map(move |i| Member::new(cluster.pod_name(&z.name, i), &z.name))
        })
        .collect()
}

/// A document for `ring` with every member's internal address.
pub fn document(cluster: &ClusterRef, ring: Ring) -> RingDocument {
    let addresses = ring
        .members
        .iter()
        .map(|m| (m.id.clone(), cluster.pod_address(&m.zone, &m.id)))
        .collect();
    RingDocument { ring, addresses }
}

/// Transfer progress of `ring` from the members' reports.
pub fn progress(ring: &Ring, reports: &BTreeMap<String, TransferReport>) -> TransferProgress {
    let mut progress = TransferProgress {
        epoch: ring.epoch,
        ..TransferProgress::default()
    };
    for member in &ring.members {
        match reports.get(&member.id) {
            Some(report) if report.epoch == ring.epoch => {
                progress.pending += report.pending;
                progress.done += report.done;
                if !report.complete_for(ring.epoch) {
                    progress.incomplete.push(member.id.clone());
                }
            }
            _ => progress.incomplete.push(member.id.clone()),
        }
    }
    progress
}

/// Whether pod `id`, which left the ring of `epoch`, may be removed: it is
/// not running (nothing more can come from it), or it reports that ring
/// with no retired partition kept (it handed its copies to their new
/// owners after they streamed them, so writes it took under the old ring
/// are not lost) and no hint pending.
pub fn handed_over(id: &str, epoch: u64, input: &StepInput<'_>) -> bool {
    if !input.ready_pods.contains(id) {
        return true;
    }
    input
        .reports
        .get(id)
        .is_some_and(|r| r.epoch == epoch && r.retired == 0 && r.hints_pending == 0)
}

/// Decides the next ring step. See the module docs for the rules.
pub fn plan_step(input: &StepInput<'_>) -> Result<StepPlan, StepError> {
    let desired = desired_members(input.cluster, input.zones);
    let Some(current) = input.ring else {
        return first_ring(input, desired);
    };
    let ring_ids: BTreeSet<&str> = current.ring.members.iter().map(|m| m.id.as_str()).collect();
    let desired_ids: BTreeSet<&str> = desired.iter().map(|m| m.id.as_str()).collect();
    let progress_now = progress(&current.ring, input.reports);
    let NextReplicas {
        replicas,
        removed,
        handing_over,
    } = next_replicas(input, current, &ring_ids, &progress_now);

    let unchanged = |action| StepPlan {
        ring: current.clone(),
        publish: false,
        replicas: replicas.clone(),
        progress: progress_now.clone(),
        action,
    };
    if !progress_now.complete() {
        return Ok(unchanged(StepAction::Transferring));
    }
    if ring_ids == desired_ids {
        let action = if !handing_over.is_empty() {
            StepAction::HandingOver { pods: handing_over }
        } else if removed.is_empty() {
            StepAction::Steady
        } else {
            StepAction::Shrink { removed }
        };
        return Ok(unchanged(action));
    }
    let joining: Vec<String> = desired_ids
        .difference(&ring_ids)
        .map(|id| id.to_string())
        .collect();
    let waiting: Vec<String> = joining
        .iter()
        .filter(|id| !input.ready_pods.contains(*id))
        .cloned()
        .collect();
    if !waiting.is_empty() {
        return Ok(unchanged(StepAction::WaitForPods { waiting }));
    }
    let leaving: Vec<String> = ring_ids
        .difference(&desired_ids)
        .map(|id| id.to_string())
        .collect();
    let next = document(input.cluster, current.ring.rebalance(desired)?);
    let progress = progress(&next.ring, input.reports);
    Ok(StepPlan {
        ring: next,
        publish: true,
        replicas,
        progress,
        action: StepAction::Publish { joining, leaving },
    })
}

/// The step of a cluster without a ring: publish the first one (epoch 1)
/// of the `desired` members, with every StatefulSet at its target.
fn first_ring(input: &StepInput<'_>, desired: Vec<Member>) -> Result<StepPlan, StepError> {
    let ring = document(
        input.cluster,
        Ring::build(desired, input.replication, input.partitions)?,
    );
    let replicas = input
        .zones
        .iter()
        .map(|z| (z.name.clone(), z.target))
        .collect();
    let progress = progress(&ring.ring, &BTreeMap::new());
    Ok(StepPlan {
        ring,
        publish: true,
        replicas,
        progress,
        action: StepAction::Create,
    })
}

/// StatefulSet replicas per zone under the published ring, with the pods
/// they remove now and the leaving pods still handing their data over.
struct NextReplicas {
    replicas: BTreeMap<String, i32>,
    removed: Vec<String>,
    handing_over: Vec<String>,
}

/// Replicas per zone under the published ring `current` (members
/// `ring_ids`, transfer progress `progress_now`): grow at once; shrink only
/// once no removed pod is in the ring, the ring without them is confirmed
/// by every member, and every removed pod still running has handed its
/// data over.
fn next_replicas(
    input: &StepInput<'_>,
    current: &RingDocument,
    ring_ids: &BTreeSet<&str>,
    progress_now: &TransferProgress,
) -> NextReplicas {
    let mut result = NextReplicas {
        replicas: BTreeMap::new(),
        removed: Vec::new(),
        handing_over: Vec::new(),
    };
    for zone in input.zones {
        let current_replicas = zone.current.unwrap_or(0);
        let value = if zone.target >= current_replicas {
            zone.target
        } else {
            let leaving: Vec<String> = (zone.target..current_replicas)
                .map(|i| input.cluster.pod_name(&zone.name, i))
                .collect();
            let still_member = leaving.iter().any(|id| ring_ids.contains(id.as_str()));
            let busy: Vec<String> = leaving
                .iter()
                .filter(|id| !handed_over(id, current.ring.epoch, input))
                .cloned()
                .collect();
            if still_member || !progress_now.complete() {
                current_replicas
            } else if !busy.is_empty() {
                result.handing_over.extend(busy);
                current_replicas
            } else {
                result.removed.extend(leaving);
                zone.target
            }
        };
        result.replicas.insert(zone.name.clone(), value);
    }
    result
}

#[cfg(test)]
pub(crate) mod fixtures {
    use dynamo_ring::TransferReport;

    /// The transfer report of `node` at `epoch`, with nothing pending,
    /// retired or hinted.
    pub fn settled_report(node: &str, epoch: u64) -> TransferReport {
        TransferReport {
            node: node.into(),
            epoch,
            pending: 0,
            done: 0,
            hints_pending: 0,
            retired: 0,
            partitions: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::settled_report;
    use super::*;
    use crate::resources::fixtures::cluster_ref;

    /// A simulated cluster: zones, StatefulSet replicas, ready pods and
    /// what every node reports.
    struct Sim {
        cluster: ClusterRef,
        zones: Vec<ZoneState>,
        ring: Option<RingDocument>,
        ready: BTreeSet<String>,
        reports: BTreeMap<String, TransferReport>,
    }

    impl Sim {
        fn new(zones: &[(&str, i32)]) -> Sim {
            Sim {
                cluster: cluster_ref(),
                zones: zones
                    .iter()
                    .map(|(name, target)| ZoneState {
                        name: name.to_string(),
                        target: *target,
                        current: None,
                    })
                    .collect(),
                ring: None,
                ready: BTreeSet::new(),
                reports: BTreeMap::new(),
            }
        }

        fn step(&mut self) -> StepPlan {
            let plan = plan_step(&StepInput {
                cluster: &self.cluster,
                zones: &self.zones,
                replication: 3,
                partitions: 64,
                ring: self.ring.as_ref(),
                ready_pods: &self.ready,
                reports: &self.reports,
            })
            .expect("step");
            for zone in &mut self.zones {
                zone.current = plan.replicas.get(&zone.name).copied();
            }
            self.ring = Some(plan.ring.clone());
            plan
        }

        fn set_target(&mut self, zone: &str, target: i32) {
            let z = self
                .zones
                .iter_mut()
                .find(|z| z.name == zone)
                .expect("zone");
            z.target = target;
        }

        fn pods_become_ready(&mut self) {
            for zone in &self.zones {
                for i in 0..zone.current.unwrap_or(0) {
                    self.ready.insert(self.cluster.pod_name(&zone.name, i));
                }
            }
        }

        /// Every ready pod reports the published ring (the operator sends
        /// it to all of them): members with `pending` partitions to
        /// receive, pods that left it with their lost partitions retired
        /// until the members have received everything.
        fn nodes_report(&mut self, pending: u32) {
            let ring = &self.ring.as_ref().expect("ring").ring;
            for id in &self.ready {
                let member = ring.member(id).is_some();
                self.reports.insert(
                    id.clone(),
                    TransferReport {
                        pending: if member { pending } else { 0 },
                        done: 1,
                        retired: u32::from(!member && pending > 0),
                        ..settled_report(id, ring.epoch)
                    },
                );
            }
        }

        fn members(&self) -> Vec<String> {
            let ring = &self.ring.as_ref().expect("ring").ring;
            ring.members.iter().map(|m| m.id.clone()).collect()
        }
    }

    fn steady_cluster() -> Sim {
        let mut sim = Sim::new(&[("a", 1), ("b", 1), ("c", 1)]);
        let created = sim.step();
        assert_eq!(created.action, StepAction::Create);
        sim.pods_become_ready();
        sim.nodes_report(0);
        assert_eq!(sim.step().action, StepAction::Steady);
        sim
    }

    #[test]
    fn first_ring_is_built_from_the_future_pod_names() {
        let mut sim = Sim::new(&[("a", 2), ("b", 1), ("c", 1)]);
        let plan = sim.step();
        assert!(plan.publish);
        assert_eq!(plan.ring.ring.epoch, 1);
        assert_eq!(
            sim.members(),
            ["demo-a-0", "demo-a-1", "demo-b-0", "demo-c-0"]
        );
        assert_eq!(
            plan.ring.addresses["demo-b-0"],
            "demo-b-0.demo-b.default.svc:7001"
        );
        assert_eq!(plan.replicas["a"], 2);
        plan.ring.validate().expect("valid document");
    }

    #[test]
    fn scale_up_grows_the_statefulset_then_publishes_once_pods_are_ready() {
        let mut sim = steady_cluster();
        sim.set_target("a", 2);

        let grow = sim.step();
        assert_eq!(grow.replicas["a"], 2, "StatefulSet grows first");
        assert!(!grow.publish, "no ring before the new pod is ready");
        assert_eq!(
            grow.action,
            StepAction::WaitForPods {
                waiting: vec!["demo-a-1".into()]
            }
        );

        sim.pods_become_ready();
        let publish = sim.step();
        assert!(publish.publish);
        assert_eq!(publish.ring.ring.epoch, 2);
        assert_eq!(
            publish.action,
            StepAction::Publish {
                joining: vec!["demo-a-1".into()],
                leaving: vec![]
            }
        );
        assert!(sim.members().contains(&"demo-a-1".to_string()));

        let transferring = sim.step();
        assert_eq!(transferring.action, StepAction::Transferring);
        assert!(!transferring.publish);

        sim.nodes_report(2);
        let still = sim.step();
        assert_eq!(still.action, StepAction::Transferring);
        assert_eq!(still.progress.pending, 8);

        sim.nodes_report(0);
        assert_eq!(sim.step().action, StepAction::Steady);
    }

    #[test]
    fn scale_down_publishes_first_and_does_not_shrink_until_transfer_is_confirmed() {
        let mut sim = Sim::new(&[("a", 2), ("b", 1), ("c", 1)]);
        sim.step();
        sim.pods_become_ready();
        sim.nodes_report(0);
        assert_eq!(sim.step().action, StepAction::Steady);

        sim.set_target("a", 1);
        let publish = sim.step();
        assert!(
            publish.publish,
            "the ring without the leaving pod comes first"
        );
        assert_eq!(
            publish.action,
            StepAction::Publish {
                joining: vec![],
                leaving: vec!["demo-a-1".into()]
            }
        );
        assert_eq!(
            publish.replicas["a"], 2,
            "StatefulSet keeps the leaving pod"
        );
        assert!(!sim.members().contains(&"demo-a-1".to_string()));

        // Old-epoch reports, then partial new-epoch reports: no shrink.
        let waiting = sim.step();
        assert_eq!(waiting.action, StepAction::Transferring);
        assert_eq!(waiting.replicas["a"], 2);
        sim.nodes_report(3);
        let partial = sim.step();
        assert_eq!(
            partial.replicas["a"], 2,
            "does not shrink until transfer is confirmed"
        );
        sim.reports.remove("demo-b-0");
        sim.nodes_report(0);
        sim.reports.remove("demo-c-0");
        let unreachable = sim.step();
        assert_eq!(
            unreachable.replicas["a"], 2,
            "an unreachable member blocks the shrink"
        );

        sim.nodes_report(0);
        let shrink = sim.step();
        assert_eq!(shrink.replicas["a"], 1);
        assert_eq!(
            shrink.action,
            StepAction::Shrink {
                removed: vec!["demo-a-1".into()]
            }
        );
        assert!(!shrink.publish);
        assert_eq!(sim.step().action, StepAction::Steady);
    }

    /// A steady cluster grown to two pods in zone `a`, then asked for one
    /// again: the ring without `demo-a-1` is published.
    fn shrinking_from_two_in_zone_a() -> Sim {
        let mut sim = steady_cluster();
        sim.set_target("a", 2);
        sim.step();
        sim.pods_become_ready();
        sim.step();
        sim.nodes_report(0);
        sim.step();
        sim.set_target("a", 1);
        assert!(sim.step().publish);
        sim
    }

    /// A leaving pod that still runs keeps its lost partitions until it has
    /// handed them to their new owners (writes it took under the old ring
    /// after they streamed them); it is removed only then.
    #[test]
    fn a_leaving_pod_is_removed_only_after_it_handed_its_data_over() {
        let mut sim = shrinking_from_two_in_zone_a();
        sim.nodes_report(0);
        let leaving = "demo-a-1".to_string();
        sim.reports.get_mut(&leaving).expect("report").retired = 2;
        assert_eq!(sim.step().replicas["a"], 2, "still handing over");
        sim.reports.get_mut(&leaving).expect("report").retired = 0;
        sim.reports.get_mut(&leaving).expect("report").hints_pending = 3;
        assert_eq!(sim.step().replicas["a"], 2, "hints still pending");
        sim.reports.get_mut(&leaving).expect("report").hints_pending = 0;
        sim.reports.get_mut(&leaving).expect("report").epoch = 2;
        assert_eq!(sim.step().replicas["a"], 2, "still on the old ring");
        sim.nodes_report(0);
        assert_eq!(sim.step().replicas["a"], 1);
    }

    #[test]
    fn a_leaving_pod_that_is_not_running_does_not_block_the_shrink() {
        let mut sim = shrinking_from_two_in_zone_a();
        sim.ready.remove("demo-a-1");
        sim.reports.remove("demo-a-1");
        sim.nodes_report(0);
        assert_eq!(sim.step().replicas["a"], 1);
    }

    #[test]
    fn no_new_ring_while_the_previous_one_is_in_flight() {
        let mut sim = steady_cluster();
        sim.set_target("a", 2);
        sim.step();
        sim.pods_become_ready();
        assert!(sim.step().publish);
        sim.set_target("b", 2);
        sim.step();
        sim.pods_become_ready();
        let blocked = sim.step();
        assert_eq!(blocked.action, StepAction::Transferring);
        assert_eq!(blocked.ring.ring.epoch, 2);
        sim.nodes_report(0);
        let next = sim.step();
        assert!(next.publish);
        assert_eq!(next.ring.ring.epoch, 3);
    }

    #[test]
    fn a_removed_zone_leaves_the_ring_before_its_statefulset_empties() {
        let mut sim = Sim::new(&[("a", 1), ("b", 1), ("c", 1), ("d", 1)]);
        sim.step();
        sim.pods_become_ready();
        sim.nodes_report(0);
        sim.step();
        sim.set_target("d", 0);
        let publish = sim.step();
        assert!(publish.publish);
        assert_eq!(publish.replicas["d"], 1);
        sim.nodes_report(0);
        let shrink = sim.step();
        assert_eq!(shrink.replicas["d"], 0);
    }

    #[test]
    fn zones_of_the_spec_come_first_then_leftovers_by_name_with_target_zero() {
        let mut sim = Sim::new(&[("c", 1), ("a", 1), ("b", 1), ("d", 1)]);
        sim.step();
        let spec = [("b".to_string(), 2), ("a".to_string(), 1)];
        let current = BTreeMap::from([("a".to_string(), 1), ("e".to_string(), 3)]);
        let zones = zone_states(&spec, &current, sim.ring.as_ref());
        let got: Vec<(&str, i32, Option<i32>)> = zones
            .iter()
            .map(|z| (z.name.as_str(), z.target, z.current))
            .collect();
        assert_eq!(
            got,
            [
                ("b", 2, None),
                ("a", 1, Some(1)),
                ("c", 0, None),
                ("d", 0, None),
                ("e", 0, Some(3))
            ]
        );
    }

    #[test]
    fn a_pod_needs_the_ring_unless_it_reports_that_epoch_or_a_newer_one() {
        let report = |epoch| settled_report("demo-a-0", epoch);
        assert!(needs_ring(None, 1));
        assert!(needs_ring(Some(&report(1)), 2));
        assert!(!needs_ring(Some(&report(2)), 2));
        assert!(!needs_ring(Some(&report(3)), 2));
    }

    #[test]
    fn progress_counts_only_members_of_the_ring_epoch() {
        let mut sim = steady_cluster();
        let ring = sim.ring.clone().expect("ring").ring;
        sim.reports.insert(
            "demo-a-0".into(),
            settled_report("demo-a-0", ring.epoch + 1),
        );
        let p = progress(&ring, &sim.reports);
        assert_eq!(p.incomplete, vec!["demo-a-0".to_string()]);
        assert!(!p.complete());
    }
}
