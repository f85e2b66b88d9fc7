//! Plan: the pure decision of a reconcile. From the cluster object and the
//! observed [`World`] it computes every desired object, the ring step, the
//! pod to restart, the status, the events and the token and CA of the
//! admin calls; [`super::apply`] carries it out.

use std::collections::{BTreeMap, BTreeSet};

use dynamo_ring::RingDocument;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::Error;
use super::observe::{AdminAuth, NodeTls, World};
use super::status::{ConditionUpdate, merge_conditions, refused, secret_blocked};
use super::storage::{HeldStorage, held_storage};
use super::validate::validate;
use crate::crd::{
    DynamoCluster, DynamoClusterStatus, Phase, RebalancingStatus, ZoneStatus, condition,
};
use crate::node_client::{BearerToken, TrustedCa};
use crate::resources::ClusterRef;
use crate::resources::configmap::{config_hash, config_map, render_node_toml};
use crate::resources::pdb::{max_unavailable, pod_disruption_budget};
use crate::resources::service::{client_service, headless_service};
use crate::resources::statefulset::{applied_template_hash, pod_zone, statefulset};
use crate::ring_steps::{StepAction, StepInput, ZoneState, plan_step};
use crate::rolling_upgrade::{RestartDecision, next_restart, stuck_pod};

/// An event to record about a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Warning (true) or Normal.
    pub warning: bool,
    /// `PascalCase` reason, also used as the event action.
    pub reason: &'static str,
    /// What was decided and why.
    pub note: String,
}

impl Decision {
    fn normal(reason: &'static str, note: String) -> Self {
        Decision {
            warning: false,
            reason,
            note,
        }
    }
}

/// Every object the cluster should own, as server-side apply bodies.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredObjects {
    /// `<c>-config`.
    pub config_map: ConfigMap,
    /// Headless Service per spec zone, then the client Service.
    pub services: Vec<Service>,
    /// StatefulSet per spec zone.
    pub statefulsets: Vec<StatefulSet>,
    /// `<c>` budget.
    pub pdb: PodDisruptionBudget,
}

/// What a reconcile of a valid spec does.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Objects to apply.
    pub objects: DesiredObjects,
    /// StatefulSets of zones gone from the spec, with the replicas to set.
    pub scale_removed: Vec<(String, i32)>,
    /// Zones gone from the spec whose StatefulSet and Service can go.
    pub delete_zones: Vec<String>,
    /// The ring every member should have.
    pub ring: RingDocument,
    /// Admin addresses of ready members that do not report `ring`'s epoch.
    pub publish_to: Vec<String>,
    /// Pod to delete for a rolling upgrade.
    pub restart: Option<String>,
    /// Status to write.
    pub status: DynamoClusterStatus,
    /// Events to record.
    pub decisions: Vec<Decision>,
    /// Whether something is in progress (poll again soon).
    pub busy: bool,
    /// Bearer token of the ring publications (`spec.auth`).
    pub token: Option<BearerToken>,
    /// CA the ring publications trust, over HTTPS (`spec.tls`).
    pub ca: Option<TrustedCa>,
}

/// The decision of a reconcile.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The spec is valid: carry out the plan.
    Act(Box<Plan>),
    /// The spec is refused: write the status and record the event, change
    /// nothing else, and wait for the user to edit the resource.
    Refuse {
        /// Status to write.
        status: DynamoClusterStatus,
        /// Events to record.
        decisions: Vec<Decision>,
    },
    /// Something only the user can fix blocks the cluster (volumes of a
    /// previous cluster of the same name): write the status and record the
    /// event, change nothing, and look again soon (claims are not watched).
    Wait {
        /// Status to write.
        status: DynamoClusterStatus,
        /// Events to record.
        decisions: Vec<Decision>,
    },
    /// The `spec.auth` Secret gives no token or the `spec.tls` Secret no
    /// usable CA, so the nodes cannot be called: write the status and
    /// record the event, change nothing else, and look again after a
    /// back-off (Secrets are not watched).
    Blocked {
        /// Status to write.
        status: DynamoClusterStatus,
        /// Events to record.
        decisions: Vec<Decision>,
    },
}

/// Zones whose existing StatefulSet has another pod template than
/// `desired`, or whose controller has not yet seen its latest spec: a
/// rollout is starting there even though no pod is outdated yet.
fn zones_changing_template(desired: &[StatefulSet], world: &World) -> Vec<String> {
    desired
        .iter()
        .filter_map(|sts| {
            let zone = sts.metadata.labels.as_ref().and_then(pod_zone)?;
            let observed = world.statefulsets.get(zone)?;
            let changing = observed.template_hash.as_deref() != applied_template_hash(sts)
                || !observed.controller_caught_up;
            changing.then(|| zone.to_string())
        })
        .collect()
}

/// `SpecApplied`: true unless a zone keeps a claim template the spec no
/// longer asks for.
fn spec_applied(held: &[HeldStorage]) -> ConditionUpdate {
    match held.is_empty() {
        true => ConditionUpdate::new(condition::SPEC_APPLIED, true, "Applied", ""),
        false => ConditionUpdate::new(
            condition::SPEC_APPLIED,
            false,
            "StorageChangeRefused",
            held.iter()
                .map(|h| h.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
    }
}

/// Decides what to do about `cluster` given the observed `world`.
pub fn plan(
    cluster: &DynamoCluster,
    cref: &ClusterRef,
    world: &World,
    now: &Time,
) -> Result<Outcome, Error> {
    let spec = &cluster.spec;
    let generation = cluster.metadata.generation;
    let previous = cluster.status.clone().unwrap_or_default();
    if let Err(problems) = validate(spec, world.ring.as_ref().map(|d| &d.ring)) {
        let message = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        let status = DynamoClusterStatus {
            conditions: merge_conditions(&previous.conditions, &refused(&message), generation, now),
            observed_generation: generation,
            phase: Some(Phase::Invalid),
            ..previous
        };
        let decisions = vec![Decision {
            warning: true,
            reason: "SpecRefused",
            note: message,
        }];
        return Ok(Outcome::Refuse { status, decisions });
    }
    let unusable_secret = match (&world.auth, &world.tls) {
        (AdminAuth::Unusable(problem), _) => Some((problem.reason(), problem.to_string())),
        (_, NodeTls::Unusable(problem)) => Some((problem.reason(), problem.to_string())),
        _ => None,
    };
    if let Some((reason, message)) = unusable_secret {
        let status = DynamoClusterStatus {
            conditions: merge_conditions(
                &previous.conditions,
                &secret_blocked(reason, &message),
                generation,
                now,
            ),
            observed_generation: generation,
            ..previous
        };
        let decisions = vec![Decision {
            warning: true,
            reason,
            note: message,
        }];
        return Ok(Outcome::Blocked { status, decisions });
    }

    if !world.previous_claims.is_empty() {
        let message = format!(
            "PersistentVolumeClaims {claims} are older than this DynamoCluster: they hold the data of a deleted cluster of the same name, which new nodes must not half-reuse. To start empty, delete them: kubectl delete pvc -n {ns} {claims}. To keep that data, delete this DynamoCluster and restore the data into a cluster of another name.",
            claims = world.previous_claims.join(" "),
            ns = cref.namespace,
        );
        let status = DynamoClusterStatus {
            conditions: merge_conditions(
                &previous.conditions,
                &secret_blocked("PreviousClusterVolumes", &message),
                generation,
                now,
            ),
            observed_generation: generation,
            ..previous
        };
        let decisions = vec![Decision {
            warning: true,
            reason: "PreviousClusterVolumes",
            note: message,
        }];
        return Ok(Outcome::Wait { status, decisions });
    }
    if let (None, Some(epoch)) = (&world.ring, previous.ring_epoch) {
        return Err(Error::RingLost {
            config_map: cref.config_map_name(),
            epoch,
        });
    }
    let zones = zone_states(cluster, world);
    let ready = world.ready_pods();
    let step = plan_step(&StepInput {
        cluster: cref,
        zones: &zones,
        replication: spec.replication.n as usize,
        partitions: spec.partitions,
        ring: world.ring.as_ref(),
        ready_pods: &ready,
        reports: &world.reports,
    })?;

    let held = held_storage(&spec.storage, &world.statefulsets);
    let node_toml = render_node_toml(&spec.node_config)?;
    let hash = config_hash(&node_toml);
    let replicas = |zone: &str| step.replicas.get(zone).copied().unwrap_or(0);
    let spec_zones: BTreeSet<&str> = spec.zones.iter().map(|z| z.name.as_str()).collect();
    let mut services: Vec<Service> = spec
        .zones
        .iter()
        .map(|z| headless_service(cref, &z.name))
        .collect();
    services.push(client_service(cref));
    let objects = DesiredObjects {
        config_map: config_map(cref, &node_toml, Some(&step.ring))?,
        services,
        statefulsets: spec
            .zones
            .iter()
            .map(|z| {
                let storage = held
                    .iter()
                    .find(|h| h.zone == z.name)
                    .map_or(&spec.storage, |h| &h.kept);
                statefulset(cref, spec, z, storage, replicas(&z.name), &hash)
            })
            .collect(),
        pdb: pod_disruption_budget(cref, max_unavailable(spec.replication, spec.pod_disruption)),
    };

    let new_templates = zones_changing_template(&objects.statefulsets, world);
    let mut scale_removed = Vec::new();
    let mut delete_zones = Vec::new();
    for zone in zones
        .iter()
        .filter(|z| !spec_zones.contains(z.name.as_str()))
    {
        let wanted = replicas(&zone.name);
        let has_pods = world.pods.iter().any(|p| p.zone == zone.name);
        match zone.current {
            Some(current) if current != wanted => {
                scale_removed.push((cref.zone_object_name(&zone.name), wanted));
            }
            Some(0) if !has_pods => delete_zones.push(zone.name.clone()),
            _ => {}
        }
    }

    // Every ready pod gets a newer ring, members and leaving pods alike: a
    // leaving pod that keeps the old ring keeps coordinating writes as an
    // owner.
    let publish_to: Vec<String> = world
        .pods
        .iter()
        .filter(|p| ready.contains(&p.name))
        .filter(|p| {
            world
                .reports
                .get(&p.name)
                .is_none_or(|r| r.epoch < step.ring.ring.epoch)
        })
        .map(|p| cref.pod_address(&p.zone, &p.name))
        .collect();

    let mut decisions: Vec<Decision> = held
        .iter()
        .map(|h| Decision {
            warning: true,
            reason: "StorageChangeRefused",
            note: h.message.clone(),
        })
        .collect();
    match &step.action {
        StepAction::Create => decisions.push(Decision::normal(
            "RingPublished",
            format!(
                "published the first ring (epoch 1) with {} members",
                step.ring.ring.members.len()
            ),
        )),
        StepAction::Publish { joining, leaving } => decisions.push(Decision::normal(
            "RingPublished",
            format!(
                "published ring epoch {}: joining {joining:?}, leaving {leaving:?}",
                step.ring.ring.epoch
            ),
        )),
        StepAction::Shrink { removed } => decisions.push(Decision::normal(
            "ScaledDown",
            format!(
                "ring epoch {} confirmed by every member; removing pods {removed:?}",
                step.ring.ring.epoch
            ),
        )),
        StepAction::Steady
        | StepAction::WaitForPods { .. }
        | StepAction::Transferring
        | StepAction::HandingOver { .. } => {}
    }
    if step.action != StepAction::Create {
        for zone in &zones {
            let current = zone.current.unwrap_or(0);
            if replicas(&zone.name) > current {
                decisions.push(Decision::normal(
                    "ScalingUp",
                    format!(
                        "zone {}: StatefulSet replicas {current} -> {}; the ring follows once the new pods are ready",
                        zone.name,
                        replicas(&zone.name)
                    ),
                ));
            }
        }
    }

    let revisions: BTreeMap<String, String> = world
        .statefulsets
        .iter()
        .filter_map(|(zone, s)| s.update_revision.clone().map(|r| (zone.clone(), r)))
        .collect();
    // A pod that is outdated and not Ready is replaced whatever the ring
    // step: it serves nothing, and a member that never gets Ready would
    // otherwise keep every step from completing.
    let restart = match step.action {
        StepAction::Steady => {
            let order: Vec<String> = spec.zones.iter().map(|z| z.name.clone()).collect();
            next_restart(&world.pods, &order, &revisions, &world.reports)
        }
        _ => stuck_pod(&world.pods, &revisions).unwrap_or(RestartDecision::UpToDate),
    };
    let restart_pod = match &restart {
        RestartDecision::Restart { pod, outdated } => {
            decisions.push(Decision::normal(
                "PodRestarted",
                format!("deleting {pod} to move it to the new pod template ({outdated} outdated)"),
            ));
            Some(pod.clone())
        }
        RestartDecision::UpToDate | RestartDecision::Wait { .. } => None,
    };

    let members: Vec<&str> = step
        .ring
        .ring
        .members
        .iter()
        .map(|m| m.id.as_str())
        .collect();
    let unready: Vec<&str> = members
        .iter()
        .copied()
        .filter(|id| !ready.contains(*id))
        .collect();
    let silent: Vec<&str> = members
        .iter()
        .copied()
        .filter(|id| ready.contains(*id) && !world.reports.contains_key(*id))
        .collect();
    let epoch = step.ring.ring.epoch;
    // Creating until the first ring has been complete once: a member that
    // fails later is a degraded cluster, not one still being created.
    let created_before = !matches!(previous.phase, None | Some(Phase::Creating));
    let creating = epoch == 1 && !step.progress.complete() && !created_before;
    let rebalancing = epoch > 1 && !step.progress.complete();
    let (phase, progressing_reason, progressing_message) = match (&step.action, &restart) {
        _ if creating => (
            Phase::Creating,
            "Creating",
            "starting the first nodes".to_string(),
        ),
        (StepAction::WaitForPods { waiting }, _) => (
            Phase::ScalingUp,
            "WaitingForPods",
            format!("waiting for {waiting:?} to be ready before they join the ring"),
        ),
        (StepAction::Shrink { .. }, _) => (
            Phase::ScalingDown,
            "ScalingDown",
            "removing pods that left the ring".to_string(),
        ),
        (StepAction::HandingOver { pods }, _) => (
            Phase::ScalingDown,
            "HandingOver",
            format!(
                "waiting for {pods:?}, which left the ring, to hand their data to its new owners"
            ),
        ),
        _ if rebalancing => (
            Phase::Rebalancing,
            "Rebalancing",
            format!("moving partitions to ring epoch {epoch}"),
        ),
        _ if !new_templates.is_empty() => (
            Phase::Upgrading,
            "RollingUpgrade",
            format!("applying a new pod template to zone(s) {new_templates:?}"),
        ),
        (_, RestartDecision::Restart { outdated, .. } | RestartDecision::Wait { outdated, .. }) => {
            (
                Phase::Upgrading,
                "RollingUpgrade",
                format!("{outdated} pod(s) to move to the new template"),
            )
        }
        _ => (
            Phase::Running,
            "Idle",
            "the cluster matches the spec".to_string(),
        ),
    };
    let progressing = phase != Phase::Running;
    let all_available = unready.is_empty() && silent.is_empty();
    let pod_problems: Vec<String> = world
        .pods
        .iter()
        .filter_map(|p| p.problem.as_ref().map(|why| format!("{}: {why}", p.name)))
        .collect();
    let degraded = (!creating && !all_available) || !pod_problems.is_empty();
    let ready_now = !progressing && !degraded;
    let progressing_message = match pod_problems.is_empty() {
        true => progressing_message,
        false => format!(
            "{progressing_message}; blocked by {}",
            pod_problems.join("; ")
        ),
    };
    let updates = [
        ConditionUpdate::new(
            condition::READY,
            ready_now,
            if ready_now {
                "AllNodesReady"
            } else {
                progressing_reason
            },
            if ready_now {
                format!("{} nodes serve ring epoch {epoch}", members.len())
            } else {
                progressing_message.clone()
            },
        ),
        ConditionUpdate::new(
            condition::PROGRESSING,
            progressing,
            progressing_reason,
            progressing_message,
        ),
        ConditionUpdate::new(
            condition::DEGRADED,
            degraded,
            if degraded {
                "NodesUnavailable"
            } else {
                "AllNodesAvailable"
            },
            if degraded {
                let mut message = format!("not ready: {unready:?}; not answering: {silent:?}");
                for problem in &pod_problems {
                    message.push_str("; ");
                    message.push_str(problem);
                }
                message
            } else {
                String::new()
            },
        ),
        spec_applied(&held),
        ConditionUpdate::new(
            condition::REBALANCING,
            rebalancing,
            if rebalancing {
                "Transferring"
            } else {
                "Settled"
            },
            if rebalancing {
                format!(
                    "{} partition copies pending; waiting for {:?}",
                    step.progress.pending, step.progress.incomplete
                )
            } else {
                String::new()
            },
        ),
    ];
    let zone_statuses: Vec<ZoneStatus> = spec
        .zones
        .iter()
        .map(|z| ZoneStatus {
            name: z.name.clone(),
            desired: z.replicas,
            ready: world
                .pods
                .iter()
                .filter(|p| p.zone == z.name && ready.contains(&p.name))
                .count()
                .try_into()
                .unwrap_or(i32::MAX),
        })
        .collect();
    let status = DynamoClusterStatus {
        conditions: merge_conditions(&previous.conditions, &updates, generation, now),
        observed_generation: generation,
        ring_epoch: Some(epoch),
        phase: Some(phase),
        ready_nodes: Some(zone_statuses.iter().map(|z| z.ready).sum()),
        desired_nodes: Some(zone_statuses.iter().map(|z| z.desired).sum()),
        zones: zone_statuses,
        rebalancing: (!step.progress.complete()).then(|| RebalancingStatus {
            epoch,
            pending_partitions: step.progress.pending,
            done_partitions: step.progress.done,
            incomplete_nodes: step.progress.incomplete.clone(),
        }),
    };
    Ok(Outcome::Act(Box::new(Plan {
        objects,
        scale_removed,
        delete_zones,
        ring: step.ring,
        publish_to,
        restart: restart_pod,
        status,
        decisions,
        busy: !ready_now,
        token: world.auth.token().cloned(),
        ca: world.tls.ca().cloned(),
    })))
}

/// Zones of the spec (in order), then zones only a StatefulSet or the ring
/// still has (target 0).
fn zone_states(cluster: &DynamoCluster, world: &World) -> Vec<ZoneState> {
    let mut zones: Vec<ZoneState> = cluster
        .spec
        .zones
        .iter()
        .map(|z| ZoneState {
            name: z.name.clone(),
            target: z.replicas,
            current: world.statefulsets.get(&z.name).map(|s| s.replicas),
        })
        .collect();
    let ring_zones = world
        .ring
        .iter()
        .flat_map(|d| d.ring.members.iter().map(|m| m.zone.clone()));
    let leftover: BTreeSet<String> = world
        .statefulsets
        .keys()
        .cloned()
        .chain(ring_zones)
        .filter(|zone| !cluster.spec.zones.iter().any(|z| &z.name == zone))
        .collect();
    zones.extend(leftover.into_iter().map(|name| ZoneState {
        current: world.statefulsets.get(&name).map(|s| s.replicas),
        name,
        target: 0,
    }));
    zones
}

#[cfg(test)]
mod tests {
    use dynamo_ring::TransferReport;
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::reconcile::cluster_ref;
    use crate::reconcile::fixtures::{cluster, spec, with_auth, with_tls};
    use crate::reconcile::observe::{AuthProblem, PodState, StatefulSetState, TlsProblem};

    fn now() -> Time {
        Time(Timestamp::from_second(1_000).expect("time"))
    }

    fn act(outcome: Outcome) -> Plan {
        match outcome {
            Outcome::Act(plan) => *plan,
            Outcome::Refuse { status, .. }
            | Outcome::Blocked { status, .. }
            | Outcome::Wait { status, .. } => {
                panic!("not acted on: {:?}", status.conditions)
            }
        }
    }

    /// The world once every StatefulSet has the replicas of `plan` and
    /// every pod is Ready on `revision` and reports the ring epoch.
    fn settled(plan: &Plan, revision: &str) -> World {
        let mut world = World {
            ring: Some(plan.ring.clone()),
            ..World::default()
        };
        for sts in &plan.objects.statefulsets {
            let zone = sts.metadata.labels.as_ref().expect("labels")["kv.dynamo.dev/zone"].clone();
            let replicas = sts
                .spec
                .as_ref()
                .and_then(|s| s.replicas)
                .expect("replicas");
            for ordinal in 0..replicas {
                let name = format!("demo-{zone}-{ordinal}");
                world.pods.push(PodState {
                    name: name.clone(),
                    zone: zone.clone(),
                    ordinal,
                    ready: true,
                    terminating: false,
                    revision: Some(revision.into()),
                    problem: None,
                });
                world.reports.insert(
                    name.clone(),
                    TransferReport {
                        node: name,
                        epoch: plan.ring.ring.epoch,
                        pending: 0,
                        done: 0,
                        hints_pending: 0,
                        retired: 0,
                        partitions: vec![],
                    },
                );
            }
            world.statefulsets.insert(
                zone.clone(),
                StatefulSetState {
                    zone,
                    replicas,
                    storage_size: Some("1Gi".into()),
                    storage_class: None,
                    update_revision: Some(revision.into()),
                    template_hash: applied_template_hash(sts).map(str::to_string),
                    controller_caught_up: true,
                },
            );
        }
        world
    }

    fn condition<'a>(status: &'a DynamoClusterStatus, type_: &str) -> &'a str {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map_or("missing", |c| c.status.as_str())
    }

    #[test]
    fn a_new_cluster_gets_every_object_with_owner_and_labels() {
        let c = cluster(spec(&[("a", 1), ("b", 1), ("c", 1)]));
        let cref = cluster_ref(&c).expect("ref");
        let plan = act(plan(&c, &cref, &World::default(), &now()).expect("plan"));
        let o = &plan.objects;
        let names: Vec<String> = std::iter::once(&o.config_map.metadata)
            .chain(o.services.iter().map(|s| &s.metadata))
            .chain(o.statefulsets.iter().map(|s| &s.metadata))
            .chain(std::iter::once(&o.pdb.metadata))
            .map(|m| {
                assert_eq!(
                    m.owner_references.as_ref().expect("owner")[0].uid,
                    "uid-demo"
                );
                assert_eq!(
                    m.owner_references.as_ref().expect("owner")[0].controller,
                    Some(true)
                );
                assert_eq!(
                    m.labels.as_ref().expect("labels")["app.kubernetes.io/instance"],
                    "demo"
                );
                m.name.clone().expect("name")
            })
            .collect();
        assert_eq!(
            names,
            [
                "demo-config",
                "demo-a",
                "demo-b",
                "demo-c",
                "demo",
                "demo-a",
                "demo-b",
                "demo-c",
                "demo"
            ]
        );
        assert_eq!(plan.ring.ring.epoch, 1);
        assert_eq!(plan.ring.ring.members.len(), 3);
        assert!(plan.publish_to.is_empty(), "no pod is ready yet");
        assert_eq!(plan.status.phase, Some(Phase::Creating));
        assert_eq!(condition(&plan.status, condition::READY), "False");
        assert_eq!(condition(&plan.status, condition::PROGRESSING), "True");
        assert_eq!(plan.decisions[0].reason, "RingPublished");
        assert!(plan.busy);
    }

    #[test]
    fn a_settled_cluster_is_ready_and_quiet() {
        let c = cluster(spec(&[("a", 1), ("b", 1), ("c", 1)]));
        let cref = cluster_ref(&c).expect("ref");
        let first = act(plan(&c, &cref, &World::default(), &now()).expect("plan"));
        let world = settled(&first, "r1");
        let steady = act(plan(&c, &cref, &world, &now()).expect("plan"));
        assert_eq!(steady.status.phase, Some(Phase::Running));
        assert_eq!(condition(&steady.status, condition::READY), "True");
        assert_eq!(condition(&steady.status, condition::DEGRADED), "False");
        assert_eq!(condition(&steady.status, condition::REBALANCING), "False");
        assert_eq!(steady.status.ring_epoch, Some(1));
        assert!(steady.decisions.is_empty());
        assert!(steady.publish_to.is_empty());
        assert!(steady.restart.is_none());
        assert!(!steady.busy);
    }

    /// `kubectl wait --for=condition=Ready` right after an image change must
    /// not return before the rollout: the first reconcile after the change
    /// sees pods on the old revision only, yet is not Ready.
    #[test]
    fn a_new_pod_template_is_not_ready_before_the_statefulset_has_a_new_revision() {
        let c = cluster(spec(&[("a", 1), ("b", 1), ("c", 1)]));
        let cref = cluster_ref(&c).expect("ref");
        let first = act(plan(&c, &cref, &World::default(), &now()).expect("plan"));
        let mut world = settled(&first, "r1");
        let mut changed = c.clone();
        changed.spec.image = "dynamo:2".into();
        let applying = act(plan(&changed, &cref, &world, &now()).expect("plan"));
        assert_eq!(applying.status.phase, Some(Phase::Upgrading));
        assert_eq!(condition(&applying.status, condition::READY), "False");

        // Applied, but the StatefulSet controller has not caught up yet.
        let applied = settled(&applying, "r1");
        for (zone, sts) in applied.statefulsets {
            world.statefulsets.insert(
                zone,
                StatefulSetState {
                    controller_caught_up: false,
                    ..sts
                },
            );
        }
        let waiting = act(plan(&changed, &cref, &world, &now()).expect("plan"));
        assert_eq!(condition(&waiting.status, condition::READY), "False");
    }

    /// A corrected spec after a bad one: the crash-looping pod is a ring
    /// member that never gets Ready (so no ring step completes), yet it is
    /// replaced at once.
    #[test]
    fn an_outdated_member_that_is_not_ready_is_replaced_although_the_ring_is_incomplete() {
        let c = cluster(spec(&[("a", 1), ("b", 1), ("c", 1)]));
        let cref = cluster_ref(&c).expect("ref");
        let first = act(plan(&c, &cref, &World::default(), &now()).expect("plan"));
        let mut world = settled(&first, "r1");
        for sts in world.statefulsets.values_mut() {
            sts.update_revision = Some("r3".into());
        }
        let looping = world
            .pods
            .iter_mut()
            .find(|p| p.name == "demo-a-0")
            .expect("pod");
        looping.ready = false;
        looping.revision = Some("r2".into());
        looping.problem = Some("CrashLoopBackOff".into());
        world.reports.remove("demo-a-0");
        let mut running = c.clone();
        running.status = Some(DynamoClusterStatus {
            phase: Some(Phase::Upgrading),
            ..DynamoClusterStatus::default()
        });
        let outcome = act(plan(&running, &cref, &world, &now()).expect("plan"));
        assert_eq!(outcome.restart.as_deref(), Some("demo-a-0"));
        assert_ne!(outcome.status.phase, Some(Phase::Creating));
        assert_eq!(condition(&outcome.status, condition::DEGRADED), "True");
    }

    #[test]
    fn a_storage_class_change_keeps_the_claim_template_and_the_rest_is_applied() {
        let c = cluster(spec(&[("a", 1), ("b", 1), ("c", 1)]));
        let cref = cluster_ref(&c).expect("ref");
        let first = act(plan(&c, &cref, &World::default(), &now()).expect("plan"));
        let world = settled(&first, "r1");
        let mut changed = c.clone();
        changed.spec.storage.storage_class_name = Some("fast".into());
        changed.spec.image = "dynamo:2".into();
        let outcome = act(plan(&changed, &cref, &world, &now()).expect("plan"));
        assert_eq!(condition(&outcome.status, condition::SPEC_APPLIED), "False");
        assert!(
            outcome
                .decisions
                .iter()
                .any(|d| d.warning && d.reason == "StorageChangeRefused")
        );
        for sts in &outcome.objects.statefulsets {
            let spec = sts.spec.as_ref().expect("spec");
            let claim = &spec.volume_claim_templates.as_ref().expect("claims")[0];
            assert_eq!(
                claim
                    .spec
                    .as_ref()
                    .and_then(|s| s.storage_class_name.clone()),
                None,
                "the existing claim template is kept"
            );
            let pod = spec.template.spec.as_ref().expect("pod");
            assert_eq!(pod.containers[0].image.as_deref(), Some("dynamo:2"));
        }
    }

    #[test]
    fn volumes_of_a_previous_cluster_of_the_same_name_block_creation_and_say_what_to_do() {
        let c = cluster(spec(&[("a", 1), ("b", 1), ("c", 1)]));
        let cref = cluster_ref(&c).expect("ref");
        let world = World {
            previous_claims: vec!["data-demo-a-0".into()],
            ..World::default()
        };
        match plan(&c, &cref, &world, &now()).expect("plan") {
            Outcome::Wait { status, decisions } => {
                assert_eq!(condition(&status, condition::READY), "False");
                let ready = status
                    .conditions
                    .iter()
                    .find(|c| c.type_ == condition::READY)
                    .expect("ready");
                assert_eq!(ready.reason, "PreviousClusterVolumes");
                assert!(
                    ready.message.contains("kubectl delete pvc"),
                    "{}",
                    ready.message
                );
                assert!(decisions[0].warning);
            }
            other => panic!("expected Wait, got {other:?}"),
        }
    }

    #[test]
    fn an_invalid_spec_is_refused_with_a_condition_and_an_event() {
        let mut s = spec(&[("a", 1), ("b", 1), ("c", 1)]);
        s.replication.w = 5;
        let c = cluster(s);
        let cref = cluster_ref(&c).expect("ref");
        match plan(&c, &cref, &World::default(), &now()).expect("plan") {
            Outcome::Refuse { status, decisions } => {
                assert_eq!(status.phase, Some(Phase::Invalid));
                let ready = status
                    .conditions
                    .iter()
                    .find(|c| c.type_ == condition::READY)
                    .expect("ready");
                assert_eq!(ready.status, "False");
                assert_eq!(ready.reason, "SpecRefused");
                assert!(ready.message.contains("writeQuorum=5"), "{}", ready.message);
                assert_eq!(decisions.len(), 1);
                assert!(decisions[0].warning);
                assert_eq!(decisions[0].reason, "SpecRefused");
            }
            other => panic!("an invalid spec must be refused: {other:?}"),
        }
    }

    #[test]
    fn changing_partitions_of_an_existing_ring_is_refused() {
        let c = cluster(spec(&[("a", 1), ("b", 1), ("c", 1)]));
        let cref = cluster_ref(&c).expect("ref");
        let first = act(plan(&c, &cref, &World::default(), &now()).expect("plan"));
        let world = settled(&first, "r1");
        let mut changed = c.clone();
        changed.spec.partitions = 128;
        assert!(matches!(
            plan(&changed, &cref, &world, &now()).expect("plan"),
            Outcome::Refuse { .. }
        ));
    }

    #[test]
    fn scale_down_keeps_the_statefulset_until_the_new_ring_is_confirmed() {
        let c = cluster(spec(&[("a", 2), ("b", 1), ("c", 1)]));
        let cref = cluster_ref(&c).expect("ref");
        let first = act(plan(&c, &cref, &World::default(), &now()).expect("plan"));
        let mut world = settled(&first, "r1");
        let mut smaller = c.clone();
        smaller.spec.zones[0].replicas = 1;

        let publish = act(plan(&smaller, &cref, &world, &now()).expect("plan"));
        let replicas_a = |p: &Plan| {
            p.objects.statefulsets[0]
                .spec
                .as_ref()
                .and_then(|s| s.replicas)
        };
        assert_eq!(publish.ring.ring.epoch, 2);
        assert_eq!(replicas_a(&publish), Some(2));
        assert_eq!(
            publish.publish_to.len(),
            4,
            "every ready pod gets the ring, the leaving one too"
        );

        world.ring = Some(publish.ring.clone());
        let waiting = act(plan(&smaller, &cref, &world, &now()).expect("plan"));
        assert_eq!(
            replicas_a(&waiting),
            Some(2),
            "not before the members confirm"
        );
        assert_eq!(waiting.status.phase, Some(Phase::Rebalancing));
        assert_eq!(condition(&waiting.status, condition::REBALANCING), "True");
        let progress = waiting.status.rebalancing.as_ref().expect("progress");
        assert_eq!(progress.incomplete_nodes.len(), 3);

        for report in world.reports.values_mut() {
            report.epoch = 2;
        }
        world.reports.get_mut("demo-a-1").expect("report").retired = 1;
        let handing_over = act(plan(&smaller, &cref, &world, &now()).expect("plan"));
        assert_eq!(
            replicas_a(&handing_over),
            Some(2),
            "not before the leaving pod handed its data over"
        );
        world.reports.get_mut("demo-a-1").expect("report").retired = 0;
        let shrink = act(plan(&smaller, &cref, &world, &now()).expect("plan"));
        assert_eq!(replicas_a(&shrink), Some(1));
        assert_eq!(shrink.decisions[0].reason, "ScaledDown");
    }

    #[test]
    fn a_lost_ring_is_not_silently_rebuilt() {
        let mut c = cluster(spec(&[("a", 1), ("b", 1), ("c", 1)]));
        c.status = Some(DynamoClusterStatus {
            ring_epoch: Some(4),
            ..DynamoClusterStatus::default()
        });
        let cref = cluster_ref(&c).expect("ref");
        assert!(matches!(
            plan(&c, &cref, &World::default(), &now()),
            Err(Error::RingLost { epoch: 4, .. })
        ));
    }

    #[test]
    fn a_removed_zone_is_emptied_after_the_ring_then_deleted() {
        let c = cluster(spec(&[("a", 1), ("b", 1), ("c", 1), ("d", 1)]));
        let cref = cluster_ref(&c).expect("ref");
        let first = act(plan(&c, &cref, &World::default(), &now()).expect("plan"));
        let mut world = settled(&first, "r1");
        let mut without_d = c.clone();
        without_d.spec.zones.pop();

        let publish = act(plan(&without_d, &cref, &world, &now()).expect("plan"));
        assert!(publish.ring.ring.members.iter().all(|m| m.zone != "d"));
        assert!(
            publish.scale_removed.is_empty(),
            "d keeps its pod until confirmed"
        );
        assert_eq!(publish.objects.statefulsets.len(), 3);

        world.ring = Some(publish.ring.clone());
        for report in world.reports.values_mut() {
            report.epoch = 2;
        }
        let shrink = act(plan(&without_d, &cref, &world, &now()).expect("plan"));
        assert_eq!(shrink.scale_removed, vec![("demo-d".to_string(), 0)]);

        world.statefulsets.get_mut("d").expect("d").replicas = 0;
        world.pods.retain(|p| p.zone != "d");
        let delete = act(plan(&without_d, &cref, &world, &now()).expect("plan"));
        assert_eq!(delete.delete_zones, vec!["d".to_string()]);
        assert_eq!(delete.status.phase, Some(Phase::Running));
    }

    #[test]
    fn a_template_change_restarts_one_pod() {
        let c = cluster(spec(&[("a", 1), ("b", 1), ("c", 1)]));
        let cref = cluster_ref(&c).expect("ref");
        let first = act(plan(&c, &cref, &World::default(), &now()).expect("plan"));
        let mut world = settled(&first, "r1");
        for sts in world.statefulsets.values_mut() {
            sts.update_revision = Some("r2".into());
        }
        let upgrade = act(plan(&c, &cref, &world, &now()).expect("plan"));
        assert_eq!(upgrade.restart.as_deref(), Some("demo-a-0"));
        assert_eq!(upgrade.status.phase, Some(Phase::Upgrading));
        assert_eq!(upgrade.decisions[0].reason, "PodRestarted");
    }

    #[test]
    fn a_config_change_changes_the_pod_template() {
        let c = cluster(spec(&[("a", 1), ("b", 1), ("c", 1)]));
        let cref = cluster_ref(&c).expect("ref");
        let before = act(plan(&c, &cref, &World::default(), &now()).expect("plan"));
        let mut changed = c.clone();
        changed
            .spec
            .node_config
            .insert("fsync".into(), serde_json::json!(true));
        let after = act(plan(&changed, &cref, &World::default(), &now()).expect("plan"));
        let template = |p: &Plan| {
            p.objects.statefulsets[0]
                .spec
                .as_ref()
                .map(|s| s.template.clone())
        };
        assert_ne!(template(&before), template(&after));
    }

    #[test]
    fn an_unready_member_degrades_the_cluster() {
        let c = cluster(spec(&[("a", 1), ("b", 1), ("c", 1)]));
        let cref = cluster_ref(&c).expect("ref");
        let first = act(plan(&c, &cref, &World::default(), &now()).expect("plan"));
        let mut world = settled(&first, "r1");
        world.pods[1].ready = false;
        let degraded = act(plan(&c, &cref, &world, &now()).expect("plan"));
        assert_eq!(condition(&degraded.status, condition::DEGRADED), "True");
        assert_eq!(condition(&degraded.status, condition::READY), "False");
        assert_eq!(degraded.status.zones[1].ready, 0);
        assert!(degraded.busy);
    }

    #[test]
    fn the_plan_carries_the_token_of_the_auth_secret() {
        let c = with_auth(cluster(spec(&[("a", 1), ("b", 1), ("c", 1)])));
        let cref = cluster_ref(&c).expect("ref");
        let token = BearerToken::new(b"s3cret").expect("token");
        let world = World {
            auth: AdminAuth::Token(token.clone()),
            ..World::default()
        };
        let planned = act(plan(&c, &cref, &world, &now()).expect("plan"));
        assert_eq!(planned.token, Some(token));
        let open = act(plan(&c, &cref, &World::default(), &now()).expect("plan"));
        assert_eq!(open.token, None);
    }

    #[test]
    fn a_missing_auth_secret_blocks_with_conditions_and_a_warning() {
        let mut c = with_auth(cluster(spec(&[("a", 1), ("b", 1), ("c", 1)])));
        c.status = Some(DynamoClusterStatus {
            ring_epoch: Some(3),
            phase: Some(Phase::Running),
            ..DynamoClusterStatus::default()
        });
        let cref = cluster_ref(&c).expect("ref");
        let world = World {
            auth: AdminAuth::Unusable(AuthProblem::SecretMissing("demo-auth".into())),
            ..World::default()
        };
        match plan(&c, &cref, &world, &now()).expect("plan") {
            Outcome::Blocked { status, decisions } => {
                assert_eq!(condition(&status, condition::READY), "False");
                assert_eq!(condition(&status, condition::PROGRESSING), "False");
                assert_eq!(condition(&status, condition::DEGRADED), "True");
                let degraded = status
                    .conditions
                    .iter()
                    .find(|c| c.type_ == condition::DEGRADED)
                    .expect("degraded");
                assert_eq!(degraded.reason, "AuthSecretMissing");
                assert!(
                    degraded.message.contains("demo-auth"),
                    "{}",
                    degraded.message
                );
                assert_eq!(status.ring_epoch, Some(3), "the ring is kept");
                assert_eq!(status.phase, Some(Phase::Running));
                assert_eq!(status.observed_generation, Some(1));
                assert_eq!(decisions.len(), 1);
                assert!(decisions[0].warning);
                assert_eq!(decisions[0].reason, "AuthSecretMissing");
            }
            other => panic!("expected Blocked, got {other:?}"),
        }
    }

    #[test]
    fn a_spec_with_tls_is_acted_on_and_the_plan_carries_the_ca() {
        let c = with_tls(cluster(spec(&[("a", 1), ("b", 1), ("c", 1)])));
        let cref = cluster_ref(&c).expect("ref");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().expect("key");
        let pem = params.self_signed(&key).expect("CA").pem();
        let ca = TrustedCa::from_pem(pem.as_bytes()).expect("CA");
        let world = World {
            tls: NodeTls::Ca(ca.clone()),
            ..World::default()
        };
        let planned = act(plan(&c, &cref, &world, &now()).expect("plan"));
        assert_eq!(planned.ca, Some(ca));
        assert_ne!(planned.status.phase, Some(Phase::Invalid));
        let plain = act(plan(&c, &cref, &World::default(), &now()).expect("plan"));
        assert_eq!(plain.ca, None);
    }

    #[test]
    fn an_unusable_tls_secret_blocks_with_conditions_and_a_warning() {
        let c = with_tls(cluster(spec(&[("a", 1), ("b", 1), ("c", 1)])));
        let cref = cluster_ref(&c).expect("ref");
        for (problem, reason) in [
            (
                TlsProblem::SecretMissing("demo-tls".into()),
                "TlsSecretMissing",
            ),
            (
                TlsProblem::BadCa {
                    secret: "demo-tls".into(),
                    problem: crate::node_client::CaError::NoCertificate,
                },
                "TlsCaInvalid",
            ),
        ] {
            let world = World {
                tls: NodeTls::Unusable(problem),
                ..World::default()
            };
            match plan(&c, &cref, &world, &now()).expect("plan") {
                Outcome::Blocked { status, decisions } => {
                    assert_eq!(condition(&status, condition::READY), "False");
                    assert_eq!(condition(&status, condition::DEGRADED), "True");
                    let degraded = status
                        .conditions
                        .iter()
                        .find(|c| c.type_ == condition::DEGRADED)
                        .expect("degraded");
                    assert_eq!(degraded.reason, reason);
                    assert!(
                        degraded.message.contains("demo-tls"),
                        "{}",
                        degraded.message
                    );
                    assert_eq!(decisions.len(), 1);
                    assert!(decisions[0].warning);
                    assert_eq!(decisions[0].reason, reason);
                }
                other => panic!("expected Blocked, got {other:?}"),
            }
        }
    }
}
