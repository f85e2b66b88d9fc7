//! Plan: the pure decision of a reconcile. The cluster object and the
//! observed [`World`] are validated ([`validate_cluster`]); a rejected
//! cluster gets a status saying why, and a [`ValidatedCluster`] gets every
//! desired object, the generated auth Secret to create, the ring step, the
//! pod to restart, the events, the status ([`super::status`]) and the
//! token and CA of the admin calls.
//! [`super::apply`] carries it out.

use std::collections::{BTreeMap, BTreeSet};

use dynamo_ring::RingDocument;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::Error;
use super::claims::unlabelled_claims;
use super::observe::{AdminAuth, World};
use super::replace::{Replacements, replacements};
use super::rolling_upgrade::{RestartDecision, next_restart, stuck_pod};
use super::status::{
    Decided, acted_status, held_status, is_true, paused_status, refused_status, resumed_status,
};
use super::storage::{HeldStorage, StoragePlan, storage_plan};
use super::validate::{Rejection, ValidatedCluster, validate_cluster};
use crate::crd::{DynamoCluster, DynamoClusterSpec, DynamoClusterStatus, StorageSpec, condition};
use crate::node_client::{BearerToken, TrustedCa};
use crate::resources::auth::GeneratedCredentials;
use crate::resources::configmap::{config_hash, config_map};
use crate::resources::network_policy::network_policy;
use crate::resources::pdb::{max_unavailable, pod_disruption_budget};
use crate::resources::service::{client_service, headless_service};
use crate::resources::statefulset::{applied_template_hash, pod_zone, statefulset};
use crate::resources::{ClusterRef, REPLACE_ANNOTATION};
use crate::ring_steps::{
    StepAction, StepInput, StepPlan, ZoneState, document, needs_ring, plan_step, zone_states,
};

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

    fn warning(reason: &'static str, note: String) -> Self {
        Decision {
            warning: true,
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
    /// What to do about the NetworkPolicy `<c>-nodes`.
    pub network_policy: PolicyChange,
}

/// What a reconcile does about the NetworkPolicy `<c>-nodes`.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyChange {
    /// `spec.networkPolicy.enabled`: apply it.
    Apply(Box<NetworkPolicy>),
    /// `spec.networkPolicy.enabled: false`: delete it if it exists.
    Delete,
    /// No `spec.networkPolicy`: leave whatever exists alone (no API call).
    Leave,
}

/// What a reconcile of a valid spec does.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Tokens of the auth Secret `<cluster>-auth` to create first, when
    /// `spec.auth` names no Secret and it does not exist yet.
    pub create_auth_secret: Option<GeneratedCredentials>,
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
    /// Pods to recreate on a new, empty volume: their claim and the pod
    /// are deleted (see [`super::replace`]).
    pub replace: Vec<String>,
    /// Changes to the volume claims and the StatefulSets holding them.
    pub volumes: VolumeChanges,
    /// Status to write.
    pub status: DynamoClusterStatus,
    /// Events to record.
    pub decisions: Vec<Decision>,
    /// Whether something is in progress (poll again soon): a ring step,
    /// a replacement, or claims still growing (claims are not watched).
    pub busy: bool,
    /// Bearer token of the ring publications: the auth Secret's admin
    /// token.
    pub token: BearerToken,
    /// CA the ring publications trust, over HTTPS (`spec.tls`).
    pub ca: Option<TrustedCa>,
}

/// Changes to the volume claims (see [`super::storage`] and
/// [`super::claims`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeChanges {
    /// Claims to grow to `size`.
    pub grow: Vec<String>,
    /// The size they grow to.
    pub size: String,
    /// Claims of this cluster to label with its uid.
    pub label: Vec<String>,
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
    /// `spec.paused` is true: write the status and record the events,
    /// change nothing else, and look again soon to keep the status current.
    Paused {
        /// Status to write.
        status: DynamoClusterStatus,
        /// Events to record.
        decisions: Vec<Decision>,
    },
    /// The auth Secret gives no admin and peer token, the clients Secret
    /// no `clients.json`, or the `spec.tls` Secret no usable CA, so the
    /// nodes cannot be called or started: write the status and
    /// record the event, change nothing else, and look again after a
    /// back-off (Secrets are not watched).
    Blocked {
        /// Status to write.
        status: DynamoClusterStatus,
        /// Events to record.
        decisions: Vec<Decision>,
    },
}

/// Decides what to do about `cluster` given the observed `world`: act on
/// it once validated, or say why not.
pub fn plan(
    cluster: &DynamoCluster,
    cref: &ClusterRef,
    world: &World,
    now: &Time,
) -> Result<Outcome, Error> {
    match validate_cluster(cluster, cref, world) {
        Ok(valid) => {
            let mut plan = plan_valid(&valid, world, now)?;
            if cluster.spec.paused {
                return Ok(paused(cluster, plan, now));
            }
            if was_paused(cluster) {
                plan.decisions
                    .insert(0, Decision::normal("Resumed", RESUMED.into()));
            }
            plan.status = resumed_status(cluster, plan.status, now);
            Ok(Outcome::Act(Box::new(plan)))
        }
        Err(rejection) => Ok(rejected(cluster, &rejection, now)),
    }
}

/// The event note of a pause.
const PAUSED: &str = "spec.paused is true: no object, ring or pod changes until it is false";

/// The event note of a resumption.
const RESUMED: &str = "spec.paused is false again: acting on the spec";

/// Whether the last status written says the cluster is paused.
fn was_paused(cluster: &DynamoCluster) -> bool {
    cluster
        .status
        .as_ref()
        .is_some_and(|s| is_true(&s.conditions, condition::PAUSED))
}

/// A paused cluster: the status the plan would report, held as paused,
/// and an event when the pause begins; nothing of the plan is carried out.
fn paused(cluster: &DynamoCluster, plan: Plan, now: &Time) -> Outcome {
    let decisions = if was_paused(cluster) {
        Vec::new()
    } else {
        vec![Decision::normal("Paused", PAUSED.into())]
    };
    Outcome::Paused {
        status: paused_status(cluster, plan.status, now),
        decisions,
    }
}

/// A rejected cluster: a status and a warning event saying why, nothing
/// else. A refused spec waits for the user's edit, an unusable Secret
/// backs off, volumes of a previous cluster are looked at again soon.
fn rejected(cluster: &DynamoCluster, rejection: &Rejection, now: &Time) -> Outcome {
    let (reason, message) = (rejection.reason(), rejection.to_string());
    let decisions = vec![Decision::warning(reason, message.clone())];
    match rejection {
        Rejection::Spec(_) => Outcome::Refuse {
            status: refused_status(cluster, &message, now),
            decisions,
        },
        Rejection::Auth(_) | Rejection::Tls(_) => Outcome::Blocked {
            status: held_status(cluster, reason, &message, now),
            decisions,
        },
        Rejection::PreviousClusterVolumes { .. } => Outcome::Wait {
            status: held_status(cluster, reason, &message, now),
            decisions,
        },
    }
}

/// The plan of a validated cluster: the ring step first, then what
/// follows from it (objects, removed zones, ring publication, restart,
/// events, status).
pub fn plan_valid(valid: &ValidatedCluster<'_>, world: &World, now: &Time) -> Result<Plan, Error> {
    let (cref, spec) = (valid.cref, valid.spec());
    let zones = zone_states(
        &spec_zones(spec),
        &world.statefulset_replicas(),
        world.ring.as_ref(),
    );
    let ready = world.ready_pods();
    let published = published_ring(valid, world)?;
    let step = plan_step(&StepInput {
        cluster: cref,
        zones: &zones,
        replication: spec.replication.n as usize,
        partitions: spec.partitions,
        ring: published.as_ref(),
        ready_pods: &ready,
        reports: &world.reports,
    })?;
    let storage = storage_plan(
        &spec.storage,
        &world.statefulsets,
        &world.claims,
        world.expansion_refusal.as_deref(),
    );
    let held = storage.held.clone();
    let objects = desired_objects(valid, &step, &storage.kept, has_formed(world))?;
    let new_templates = zones_changing_template(&objects.statefulsets, world);
    let (scale_removed, delete_zones) = removed_zones(valid, &zones, &step, world);
    let restart = restart_decision(spec, world, &step.action);
    let status = acted_status(
        valid.object,
        &Decided {
            step: &step,
            restart: &restart,
            new_templates: &new_templates,
            held: &held,
            world,
            ready: &ready,
        },
        now,
    );
    let create_auth_secret = match &world.auth {
        AdminAuth::Generate { credentials, .. } => Some(credentials.clone()),
        AdminAuth::Token(_) | AdminAuth::Unusable(_) => None,
    };
    let replacements = replacements(&world.pods, &world.reports);
    let volumes = volume_changes(cref, &spec.storage.size.0, &storage, world);
    let mut decisions = decisions(&held, &step, &zones, &restart);
    decisions.extend(volume_decisions(&volumes));
    decisions.extend(replacement_decisions(&replacements));
    if create_auth_secret.is_some() {
        decisions.insert(0, auth_secret_decision(cref));
    }
    Ok(Plan {
        create_auth_secret,
        publish_to: publish_targets(cref, world, &ready, step.ring.ring.epoch),
        decisions,
        restart: restarted_pod(&restart),
        busy: !is_true(&status.conditions, condition::READY)
            || !replacements.now.is_empty()
            || held.iter().any(|h| h.expanding),
        replace: replacements.now,
        volumes,
        objects,
        scale_removed,
        delete_zones,
        ring: step.ring,
        status,
        token: valid.token.clone(),
        ca: valid.ca.clone(),
    })
}

/// The zones of `spec` as `(name, replicas)`, in order.
fn spec_zones(spec: &DynamoClusterSpec) -> Vec<(String, i32)> {
    spec.zones
        .iter()
        .map(|z| (z.name.clone(), z.replicas))
        .collect()
}

/// The ring in the ConfigMap, if any, with every member's address as the
/// operator gives it now (a ring published before the internal port
/// existed named the client port; pods started from the ConfigMap must
/// dial the internal one); an error when the status says a ring was
/// published but the ConfigMap lost it (a fresh epoch-1 ring would
/// contradict the nodes).
fn published_ring(
    valid: &ValidatedCluster<'_>,
    world: &World,
) -> Result<Option<RingDocument>, Error> {
    let status_epoch = valid.object.status.as_ref().and_then(|s| s.ring_epoch);
    match (&world.ring, status_epoch) {
        (None, Some(epoch)) => Err(Error::RingLost {
            config_map: valid.cref.config_map_name(),
            epoch,
        }),
        (ring, _) => Ok(ring.as_ref().map(|d| document(valid.cref, d.ring.clone()))),
    }
}

/// The volume changes of this reconcile: claims to grow and to label.
fn volume_changes(
    cref: &ClusterRef,
    size: &str,
    storage: &StoragePlan,
    world: &World,
) -> VolumeChanges {
    VolumeChanges {
        grow: storage.grow.clone(),
        size: size.to_string(),
        label: unlabelled_claims(&world.claims, &cref.owner.uid),
    }
}

/// The event of growing volumes.
fn volume_decisions(volumes: &VolumeChanges) -> Option<Decision> {
    (!volumes.grow.is_empty()).then(|| {
        Decision::normal(
            "VolumeExpansion",
            format!("asking {:?} to grow to {}", volumes.grow, volumes.size),
        )
    })
}

/// The events of replacing pods on new volumes, and of replacements that
/// wait.
fn replacement_decisions(replacements: &Replacements) -> Vec<Decision> {
    let now = replacements.now.iter().map(|pod| {
        Decision::normal(
            "ReplacingNode",
            format!(
                "replacing {pod} (annotated {REPLACE_ANNOTATION}=true): deleting its volume claim \
                 and the pod; the new pod starts on an empty volume under the same name and \
                 receives its partitions from the other replicas"
            ),
        )
    });
    let waiting = replacements.waiting.iter().map(|(pod, why)| {
        Decision::warning(
            "ReplacementWaiting",
            format!("{pod} is marked for replacement but still serves: waiting, {why}"),
        )
    });
    now.chain(waiting).collect()
}

/// The event of creating the generated auth Secret.
fn auth_secret_decision(cref: &ClusterRef) -> Decision {
    Decision::normal(
        "AuthSecretCreated",
        format!(
            "creating Secret {} with generated admin-token, peer-token and client-token (spec.auth names no Secret)",
            cref.generated_auth_secret_name()
        ),
    )
}

/// Whether the cluster has formed: the ConfigMap says so already, or
/// every member of the published ring has served (reported its
/// transfers). From then on an empty volume means lost data.
fn has_formed(world: &World) -> bool {
    world.formed
        || world.ring.as_ref().is_some_and(|doc| {
            doc.ring
                .members
                .iter()
                .all(|m| world.reports.contains_key(&m.id))
        })
}

/// Every object the cluster should own after `step`; a zone in `kept`
/// keeps that claim template.
fn desired_objects(
    valid: &ValidatedCluster<'_>,
    step: &StepPlan,
    kept: &BTreeMap<String, StorageSpec>,
    formed: bool,
) -> Result<DesiredObjects, Error> {
    let (cref, spec) = (valid.cref, valid.spec());
    let hash = config_hash(&valid.node_toml);
    let mut services: Vec<Service> = spec
        .zones
        .iter()
        .map(|z| headless_service(cref, &z.name))
        .collect();
    services.push(client_service(cref));
    let statefulsets = spec
        .zones
        .iter()
        .map(|z| {
            let storage = kept.get(&z.name).unwrap_or(&spec.storage);
            statefulset(cref, spec, z, storage, step.zone_replicas(&z.name), &hash)
        })
        .collect::<Result<_, _>>()?;
    Ok(DesiredObjects {
        config_map: config_map(cref, &valid.node_toml, Some(&step.ring), formed)?,
        services,
        statefulsets,
        pdb: pod_disruption_budget(cref, max_unavailable(spec.replication, spec.pod_disruption)),
        network_policy: match &spec.network_policy {
            Some(p) if p.enabled => PolicyChange::Apply(Box::new(network_policy(cref, &p.clients))),
            Some(_) => PolicyChange::Delete,
            None => PolicyChange::Leave,
        },
    })
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

/// Zones gone from the spec: the StatefulSets to scale to the step's
/// replicas, and the empty zones whose StatefulSet and Service can go.
fn removed_zones(
    valid: &ValidatedCluster<'_>,
    zones: &[ZoneState],
    step: &StepPlan,
    world: &World,
) -> (Vec<(String, i32)>, Vec<String>) {
    let spec_zones: BTreeSet<&str> = valid.spec().zones.iter().map(|z| z.name.as_str()).collect();
    let mut scale = Vec::new();
    let mut delete = Vec::new();
    for zone in zones
        .iter()
        .filter(|z| !spec_zones.contains(z.name.as_str()))
    {
        let wanted = step.zone_replicas(&zone.name);
        let has_pods = world.pods.iter().any(|p| p.zone == zone.name);
        match zone.current {
            Some(current) if current != wanted => {
                scale.push((valid.cref.zone_object_name(&zone.name), wanted));
            }
            Some(0) if !has_pods => delete.push(zone.name.clone()),
            _ => {}
        }
    }
    (scale, delete)
}

/// Admin addresses of the ready pods to send the ring of `epoch`
/// ([`needs_ring`]).
fn publish_targets(
    cref: &ClusterRef,
    world: &World,
    ready: &BTreeSet<String>,
    epoch: u64,
) -> Vec<String> {
    world
        .pods
        .iter()
        .filter(|p| ready.contains(&p.name))
        .filter(|p| needs_ring(world.reports.get(&p.name), epoch))
        .map(|p| cref.pod_address(&p.zone, &p.name))
        .collect()
}

/// The next pod to replace: once the ring is steady, by the rolling
/// upgrade's rules; during a ring step, only an outdated pod that is not
/// Ready (it serves nothing, and a member that never gets Ready would keep
/// every step from completing).
fn restart_decision(
    spec: &DynamoClusterSpec,
    world: &World,
    action: &StepAction,
) -> RestartDecision {
    let revisions: BTreeMap<String, String> = world.update_revisions();
    match action {
        StepAction::Steady => {
            let order: Vec<String> = spec.zones.iter().map(|z| z.name.clone()).collect();
            next_restart(&world.pods, &order, &revisions, &world.reports)
        }
        _ => stuck_pod(&world.pods, &revisions).unwrap_or(RestartDecision::UpToDate),
    }
}

/// The pod `restart` deletes, if any.
fn restarted_pod(restart: &RestartDecision) -> Option<String> {
    match restart {
        RestartDecision::Restart { pod, .. } => Some(pod.clone()),
        RestartDecision::UpToDate | RestartDecision::Wait { .. } => None,
    }
}

/// The events of a plan, in order: storage changes held, the ring step,
/// zones scaling up, the pod restarted.
fn decisions(
    held: &[HeldStorage],
    step: &StepPlan,
    zones: &[ZoneState],
    restart: &RestartDecision,
) -> Vec<Decision> {
    let mut decisions: Vec<Decision> = held
        .iter()
        .filter(|h| !h.expanding)
        .map(|h| Decision::warning("StorageChangeRefused", h.message.clone()))
        .collect();
    decisions.extend(step_decision(step));
    if step.action != StepAction::Create {
        decisions.extend(scale_up_decisions(step, zones));
    }
    if let RestartDecision::Restart { pod, outdated } = restart {
        decisions.push(Decision::normal(
            "PodRestarted",
            format!("deleting {pod} to move it to the new pod template ({outdated} outdated)"),
        ));
    }
    decisions
}

/// The event of a ring step that publishes a ring or removes pods.
fn step_decision(step: &StepPlan) -> Option<Decision> {
    let epoch = step.ring.ring.epoch;
    match &step.action {
        StepAction::Create => Some(Decision::normal(
            "RingPublished",
            format!(
                "published the first ring (epoch 1) with {} members",
                step.ring.ring.members.len()
            ),
        )),
        StepAction::Publish { joining, leaving } => Some(Decision::normal(
            "RingPublished",
            format!("published ring epoch {epoch}: joining {joining:?}, leaving {leaving:?}"),
        )),
        StepAction::Shrink { removed } => Some(Decision::normal(
            "ScaledDown",
            format!("ring epoch {epoch} confirmed by every member; removing pods {removed:?}"),
        )),
        StepAction::Steady
        | StepAction::WaitForPods { .. }
        | StepAction::Transferring
        | StepAction::HandingOver { .. } => None,
    }
}

/// An event for every zone whose StatefulSet grows in this step.
fn scale_up_decisions(step: &StepPlan, zones: &[ZoneState]) -> Vec<Decision> {
    zones
        .iter()
        .filter_map(|zone| {
            let current = zone.current.unwrap_or(0);
            let wanted = step.zone_replicas(&zone.name);
            (wanted > current).then(|| {
                Decision::normal(
                    "ScalingUp",
                    format!(
                        "zone {}: StatefulSet replicas {current} -> {wanted}; the ring follows once the new pods are ready",
                        zone.name
                    ),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use dynamo_testkit::pki::TestCa;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::crd::Phase;
    use crate::reconcile::claims::ClaimState;
    use crate::reconcile::cluster_ref;
    use crate::reconcile::fixtures::{
        admin_token, cluster, spec, with_auth, with_tls, world as base_world,
    };
    use crate::reconcile::observe::{AuthProblem, NodeTls, PodState, StatefulSetState, TlsProblem};
    use crate::ring_steps::fixtures::settled_report;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn now() -> Time {
        Time(Timestamp::from_second(1_000).expect("time"))
    }

    fn act(outcome: Outcome) -> Plan {
        match outcome {
            Outcome::Act(plan) => *plan,
            Outcome::Refuse { status, .. }
            | Outcome::Blocked { status, .. }
            | Outcome::Paused { status, .. }
            | Outcome::Wait { status, .. } => {
                panic!("not acted on: {:?}", status.conditions)
            }
        }
    }

    /// The outcome of planning `c` in `world`.
    fn outcome(c: &DynamoCluster, world: &World) -> Outcome {
        let cref = cluster_ref(c).expect("ref");
        plan(c, &cref, world, &now()).expect("plan")
    }

    /// The plan of `c` in `world`, which must be acted on.
    fn acted(c: &DynamoCluster, world: &World) -> Plan {
        act(outcome(c, world))
    }

    /// A cluster with `zones`, and the world once its first plan settled
    /// (every pod Ready on revision `r1`).
    fn settled_cluster(zones: &[(&str, i32)]) -> (DynamoCluster, World) {
        let c = cluster(spec(zones));
        let first = acted(&c, &base_world());
        (c, settled(&first, "r1"))
    }

    /// The world once every StatefulSet has the replicas of `plan` and
    /// every pod is Ready on `revision` and reports the ring epoch.
    fn settled(plan: &Plan, revision: &str) -> World {
        let mut world = World {
            ring: Some(plan.ring.clone()),
            ..base_world()
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
                    replace: false,
                });
                let report = settled_report(&name, plan.ring.ring.epoch);
                world.reports.insert(name, report);
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

    /// The condition `type_` of `status`, which must be there.
    fn condition_of<'a>(status: &'a DynamoClusterStatus, type_: &str) -> &'a Condition {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap_or_else(|| panic!("no {type_} condition"))
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
        let plan = acted(&c, &base_world());
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
        assert_eq!(plan.token, admin_token(), "the auth Secret's admin token");
        assert_eq!(plan.create_auth_secret, None, "the auth Secret exists");
        assert_eq!(plan.status.phase, Some(Phase::Creating));
        assert_eq!(condition(&plan.status, condition::READY), "False");
        assert_eq!(condition(&plan.status, condition::PROGRESSING), "True");
        assert_eq!(plan.decisions[0].reason, "RingPublished");
        assert!(plan.busy);
    }

    #[test]
    fn a_settled_cluster_is_ready_and_quiet() {
        let (c, world) = settled_cluster(&[("a", 1), ("b", 1), ("c", 1)]);
        let steady = acted(&c, &world);
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

    /// The operator does not watch claims: while a claim has not grown to
    /// the new size the plan stays busy, so the next reconcile (10 s, not
    /// 5 min) sees the growth and reports `SpecApplied` again.
    #[test]
    fn claims_still_growing_keep_the_cluster_busy() {
        let (mut c, mut world) = settled_cluster(&[("a", 3)]);
        c.spec.storage.size = Quantity("2Gi".into());
        let claim = |i: usize, capacity: &str| ClaimState {
            name: format!("data-demo-a-{i}"),
            zone: "a".into(),
            cluster_uid: Some("uid-demo".into()),
            older_than_cluster: false,
            requested: Some("2Gi".into()),
            capacity: Some(capacity.into()),
            terminating: false,
        };
        world.claims = vec![claim(0, "2Gi"), claim(1, "1Gi"), claim(2, "2Gi")];
        let growing = acted(&c, &world);
        assert!(growing.busy, "{:?}", growing.status.conditions);
        assert_eq!(condition(&growing.status, condition::SPEC_APPLIED), "False");

        world.claims = vec![claim(0, "2Gi"), claim(1, "2Gi"), claim(2, "2Gi")];
        let grown = acted(&c, &world);
        assert!(!grown.busy, "{:?}", grown.status.conditions);
        assert_eq!(condition(&grown.status, condition::SPEC_APPLIED), "True");
    }

    /// `kubectl wait --for=condition=Ready` right after an image change must
    /// not return before the rollout: the first reconcile after the change
    /// sees pods on the old revision only, yet is not Ready.
    #[test]
    fn a_new_pod_template_is_not_ready_before_the_statefulset_has_a_new_revision() {
        let (c, mut world) = settled_cluster(&[("a", 1), ("b", 1), ("c", 1)]);
        let mut changed = c.clone();
        changed.spec.image = "dynamo:2".into();
        let applying = acted(&changed, &world);
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
        let waiting = acted(&changed, &world);
        assert_eq!(condition(&waiting.status, condition::READY), "False");
    }

    /// A corrected spec after a bad one: the crash-looping pod is a ring
    /// member that never gets Ready (so no ring step completes), yet it is
    /// replaced at once.
    #[test]
    fn an_outdated_member_that_is_not_ready_is_replaced_although_the_ring_is_incomplete() {
        let (c, mut world) = settled_cluster(&[("a", 1), ("b", 1), ("c", 1)]);
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
        let outcome = acted(&running, &world);
        assert_eq!(outcome.restart.as_deref(), Some("demo-a-0"));
        assert_ne!(outcome.status.phase, Some(Phase::Creating));
        assert_eq!(condition(&outcome.status, condition::DEGRADED), "True");
    }

    #[test]
    fn a_storage_class_change_keeps_the_claim_template_and_the_rest_is_applied() {
        let (c, world) = settled_cluster(&[("a", 1), ("b", 1), ("c", 1)]);
        let mut changed = c.clone();
        changed.spec.storage.storage_class_name = Some("fast".into());
        changed.spec.image = "dynamo:2".into();
        let outcome = acted(&changed, &world);
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
        let world = World {
            previous_claims: vec!["data-demo-a-0".into()],
            ..base_world()
        };
        match outcome(&c, &world) {
            Outcome::Wait { status, decisions } => {
                assert_eq!(condition(&status, condition::READY), "False");
                let ready = condition_of(&status, condition::READY);
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
        match outcome(&c, &base_world()) {
            Outcome::Refuse { status, decisions } => {
                assert_eq!(status.phase, Some(Phase::Invalid));
                let ready = condition_of(&status, condition::READY);
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
        let (c, world) = settled_cluster(&[("a", 1), ("b", 1), ("c", 1)]);
        let mut changed = c.clone();
        changed.spec.partitions = 128;
        assert!(matches!(outcome(&changed, &world), Outcome::Refuse { .. }));
    }

    #[test]
    fn scale_down_keeps_the_statefulset_until_the_new_ring_is_confirmed() {
        let (c, mut world) = settled_cluster(&[("a", 2), ("b", 1), ("c", 1)]);
        let mut smaller = c.clone();
        smaller.spec.zones[0].replicas = 1;

        let publish = acted(&smaller, &world);
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
        let waiting = acted(&smaller, &world);
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
        let handing_over = acted(&smaller, &world);
        assert_eq!(
            replicas_a(&handing_over),
            Some(2),
            "not before the leaving pod handed its data over"
        );
        world.reports.get_mut("demo-a-1").expect("report").retired = 0;
        let shrink = acted(&smaller, &world);
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
            plan(&c, &cref, &base_world(), &now()),
            Err(Error::RingLost { epoch: 4, .. })
        ));
    }

    #[test]
    fn a_removed_zone_is_emptied_after_the_ring_then_deleted() {
        let (c, mut world) = settled_cluster(&[("a", 1), ("b", 1), ("c", 1), ("d", 1)]);
        let mut without_d = c.clone();
        without_d.spec.zones.pop();

        let publish = acted(&without_d, &world);
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
        let shrink = acted(&without_d, &world);
        assert_eq!(shrink.scale_removed, vec![("demo-d".to_string(), 0)]);

        world.statefulsets.get_mut("d").expect("d").replicas = 0;
        world.pods.retain(|p| p.zone != "d");
        let delete = acted(&without_d, &world);
        assert_eq!(delete.delete_zones, vec!["d".to_string()]);
        assert_eq!(delete.status.phase, Some(Phase::Running));
    }

    #[test]
    fn a_paused_cluster_changes_nothing_until_resumed() {
        let (mut c, mut world) = settled_cluster(&[("a", 1), ("b", 1), ("c", 1)]);
        for sts in world.statefulsets.values_mut() {
            sts.update_revision = Some("r2".into());
        }
        let before = acted(&c, &world).status;
        c.status = Some(before.clone());
        c.spec.paused = true;
        c.metadata.generation = Some(before.observed_generation.unwrap_or(1) + 1);
        let Outcome::Paused { status, decisions } = outcome(&c, &world) else {
            panic!("a paused cluster is not acted on");
        };
        assert_eq!(decisions.len(), 1);
        assert_eq!(decisions[0].reason, "Paused");
        assert!(is_true(&status.conditions, condition::PAUSED));
        assert!(!is_true(&status.conditions, condition::PROGRESSING));
        assert_eq!(status.phase, before.phase, "the phase is kept");
        assert_eq!(
            status.observed_generation, before.observed_generation,
            "the paused generation is not claimed as carried out"
        );
        c.status = Some(status);
        let Outcome::Paused { decisions, .. } = outcome(&c, &world) else {
            panic!("still paused");
        };
        assert!(decisions.is_empty(), "one event per pause");

        c.spec.paused = false;
        let resumed = acted(&c, &world);
        assert_eq!(resumed.decisions[0].reason, "Resumed");
        assert!(resumed.decisions.iter().any(|d| d.reason == "PodRestarted"));
        let paused = resumed
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == condition::PAUSED)
            .expect("Paused condition");
        assert_eq!(
            (paused.status.as_str(), paused.reason.as_str()),
            ("False", "Resumed")
        );
        assert_eq!(resumed.status.observed_generation, c.metadata.generation);
    }

    #[test]
    fn the_network_policy_is_applied_deleted_or_left_as_the_spec_says() {
        let (mut c, world) = settled_cluster(&[("a", 1), ("b", 1), ("c", 1)]);
        assert_eq!(
            acted(&c, &world).objects.network_policy,
            PolicyChange::Leave
        );
        c.spec.network_policy = Some(crate::crd::NodeNetworkPolicy {
            enabled: true,
            clients: vec![],
        });
        let PolicyChange::Apply(policy) = acted(&c, &world).objects.network_policy else {
            panic!("enabled: the policy is applied");
        };
        assert_eq!(policy.metadata.name.as_deref(), Some("demo-nodes"));
        c.spec.network_policy = Some(crate::crd::NodeNetworkPolicy {
            enabled: false,
            clients: vec![],
        });
        assert_eq!(
            acted(&c, &world).objects.network_policy,
            PolicyChange::Delete
        );
    }

    #[test]
    fn the_certificate_verdict_is_a_condition_only_with_tls() {
        let (c, mut world) = settled_cluster(&[("a", 1), ("b", 1), ("c", 1)]);
        let find = |plan: &Plan| {
            plan.status
                .conditions
                .iter()
                .find(|c| c.type_ == condition::TLS_CERTIFICATE)
                .cloned()
        };
        assert_eq!(find(&acted(&c, &world)), None);
        world.certificate = Some(crate::reconcile::certificate::CertificateCheck {
            valid: false,
            reason: "Expired",
            message: "peers refuse tls.crt: expired".into(),
        });
        let expired = find(&acted(&c, &world)).expect("TlsCertificate condition");
        assert_eq!(
            (expired.status.as_str(), expired.reason.as_str()),
            ("False", "Expired")
        );
        let mut c = c;
        c.status = Some(acted(&c, &world).status);
        world.certificate = None;
        assert_eq!(find(&acted(&c, &world)), None, "gone with spec.tls");
    }

    #[test]
    fn a_template_change_restarts_one_pod() {
        let (c, mut world) = settled_cluster(&[("a", 1), ("b", 1), ("c", 1)]);
        for sts in world.statefulsets.values_mut() {
            sts.update_revision = Some("r2".into());
        }
        let upgrade = acted(&c, &world);
        assert_eq!(upgrade.restart.as_deref(), Some("demo-a-0"));
        assert_eq!(upgrade.status.phase, Some(Phase::Upgrading));
        assert_eq!(upgrade.decisions[0].reason, "PodRestarted");
    }

    #[test]
    fn a_config_change_changes_the_pod_template() {
        let c = cluster(spec(&[("a", 1), ("b", 1), ("c", 1)]));
        let before = acted(&c, &base_world());
        let mut changed = c.clone();
        changed
            .spec
            .node_config
            .insert("fsync".into(), serde_json::json!(true));
        let after = acted(&changed, &base_world());
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
        let (c, mut world) = settled_cluster(&[("a", 1), ("b", 1), ("c", 1)]);
        world.pods[1].ready = false;
        let degraded = acted(&c, &world);
        assert_eq!(condition(&degraded.status, condition::DEGRADED), "True");
        assert_eq!(condition(&degraded.status, condition::READY), "False");
        assert_eq!(degraded.status.zones[1].ready, 0);
        assert!(degraded.busy);
    }

    #[test]
    fn a_dead_member_blocking_the_ring_is_named_with_what_to_do() {
        let (mut c, mut world) = settled_cluster(&[("a", 1), ("b", 1), ("c", 1)]);
        c.status = Some(DynamoClusterStatus {
            phase: Some(Phase::Running),
            ..DynamoClusterStatus::default()
        });
        world.pods[1].ready = false;
        world.pods[1].problem = Some("unschedulable: 0/3 nodes are available".into());
        world.reports.remove("demo-b-0");
        let blocked = acted(&c, &world);
        let progressing = condition_of(&blocked.status, condition::PROGRESSING);
        assert_eq!(progressing.reason, "BlockedByMember");
        assert!(
            progressing
                .message
                .contains("demo-b-0 (unschedulable: 0/3 nodes are available)"),
            "{}",
            progressing.message
        );
        assert!(
            progressing
                .message
                .contains("kubectl annotate pod <pod> kv.dynamo.dev/replace=true")
        );

        world.pods[1].replace = true;
        let replacing = acted(&c, &world);
        assert_eq!(replacing.replace, vec!["demo-b-0".to_string()]);
        assert!(replacing.busy);
        assert!(
            replacing
                .decisions
                .iter()
                .any(|d| d.reason == "ReplacingNode")
        );
    }

    #[test]
    fn nodes_are_told_the_cluster_exists_once_every_member_has_served() {
        let state = |plan: &Plan| {
            plan.objects.config_map.data.as_ref().expect("data")["initial-cluster-state"].clone()
        };
        let c = cluster(spec(&[("a", 1), ("b", 1), ("c", 1)]));
        let first = acted(&c, &base_world());
        assert_eq!(state(&first), "new");
        let mut world = settled(&first, "r1");
        let absent = world.reports.pop_first().expect("a report");
        assert_eq!(
            state(&acted(&c, &world)),
            "new",
            "a member has not served yet"
        );
        world.reports.insert(absent.0.clone(), absent.1);
        assert_eq!(state(&acted(&c, &world)), "existing");
        world.reports.remove(&absent.0);
        world.formed = true;
        assert_eq!(state(&acted(&c, &world)), "existing", "never back to new");
    }

    #[test]
    fn the_plan_carries_the_token_of_the_auth_secret() {
        let c = with_auth(cluster(spec(&[("a", 1), ("b", 1), ("c", 1)])));
        let token = BearerToken::new(b"s3cret").expect("token");
        let world = World {
            auth: AdminAuth::Token(token.clone()),
            ..base_world()
        };
        let planned = acted(&c, &world);
        assert_eq!(planned.token, token);
        assert_eq!(planned.create_auth_secret, None, "the Secret exists");
        assert!(
            planned
                .decisions
                .iter()
                .all(|d| d.reason != "AuthSecretCreated")
        );
    }

    #[test]
    fn without_an_auth_secret_the_plan_creates_one_and_uses_its_admin_token() {
        let c = cluster(spec(&[("a", 1), ("b", 1), ("c", 1)]));
        let credentials = GeneratedCredentials::random();
        let token = BearerToken::new(b"generated").expect("token");
        let world = World {
            auth: AdminAuth::Generate {
                credentials: credentials.clone(),
                token: token.clone(),
            },
            ..base_world()
        };
        let planned = acted(&c, &world);
        assert_eq!(planned.create_auth_secret, Some(credentials.clone()));
        assert_eq!(planned.token, token);
        assert_eq!(planned.decisions[0].reason, "AuthSecretCreated");
        assert!(
            planned.decisions[0].note.contains("demo-auth"),
            "{}",
            planned.decisions[0].note
        );
        assert!(!planned.decisions[0].warning);
        assert!(
            !planned.decisions[0].note.contains(
                &String::from_utf8(credentials.data()["admin-token"].0.clone()).expect("hex")
            ),
            "the event does not show the token"
        );
    }

    #[test]
    fn a_ring_published_with_client_port_addresses_is_kept_with_internal_ones() {
        let (c, mut world) = settled_cluster(&[("a", 1), ("b", 1), ("c", 1)]);
        let ring = world.ring.as_mut().expect("ring");
        for address in ring.addresses.values_mut() {
            *address = address.replace(":7001", ":7000");
        }
        let steady = acted(&c, &world);
        assert_eq!(steady.ring.ring, world.ring.as_ref().expect("ring").ring);
        assert_eq!(
            steady.ring.addresses["demo-b-0"],
            "demo-b-0.demo-b.default.svc:7001"
        );
        assert!(
            steady.ring.addresses.values().all(|a| a.ends_with(":7001")),
            "{:?}",
            steady.ring.addresses
        );
        assert!(steady.publish_to.is_empty(), "same epoch: nothing to send");
        let stored: RingDocument = serde_json::from_str(
            &steady.objects.config_map.data.as_ref().expect("data")["ring.json"],
        )
        .expect("ring.json");
        assert_eq!(
            stored, steady.ring,
            "new pods start with internal addresses"
        );
    }

    #[test]
    fn an_unusable_auth_or_clients_secret_blocks_with_conditions_and_a_warning() {
        let mut c = with_auth(cluster(spec(&[("a", 1), ("b", 1), ("c", 1)])));
        c.status = Some(DynamoClusterStatus {
            ring_epoch: Some(3),
            phase: Some(Phase::Running),
            ..DynamoClusterStatus::default()
        });
        for (problem, reason, named) in [
            (
                AuthProblem::SecretMissing("custom-auth".into()),
                "AuthSecretMissing",
                "custom-auth",
            ),
            (
                AuthProblem::KeyMissing("custom-auth".into()),
                "AuthSecretMissing",
                "custom-auth",
            ),
            (
                AuthProblem::ClientsSecretMissing("demo-clients".into()),
                "ClientsSecretMissing",
                "demo-clients",
            ),
            (
                AuthProblem::ClientsKeyMissing("demo-clients".into()),
                "ClientsSecretMissing",
                "demo-clients",
            ),
        ] {
            let world = World {
                auth: AdminAuth::Unusable(problem),
                ..base_world()
            };
            match outcome(&c, &world) {
                Outcome::Blocked { status, decisions } => {
                    assert_eq!(condition(&status, condition::READY), "False");
                    assert_eq!(condition(&status, condition::PROGRESSING), "False");
                    assert_eq!(condition(&status, condition::DEGRADED), "True");
                    let degraded = condition_of(&status, condition::DEGRADED);
                    assert_eq!(degraded.reason, reason);
                    assert!(degraded.message.contains(named), "{}", degraded.message);
                    assert_eq!(status.ring_epoch, Some(3), "the ring is kept");
                    assert_eq!(status.phase, Some(Phase::Running));
                    assert_eq!(status.observed_generation, Some(1));
                    assert_eq!(decisions.len(), 1);
                    assert!(decisions[0].warning);
                    assert_eq!(decisions[0].reason, reason);
                }
                other => panic!("expected Blocked, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_spec_with_tls_is_acted_on_and_the_plan_carries_the_ca() {
        let c = with_tls(cluster(spec(&[("a", 1), ("b", 1), ("c", 1)])));
        let ca = TrustedCa::from_pem(TestCa::new("cluster CA").pem().as_bytes()).expect("CA");
        let world = World {
            tls: NodeTls::Ca(ca.clone()),
            ..base_world()
        };
        let planned = acted(&c, &world);
        assert_eq!(planned.ca, Some(ca));
        assert_ne!(planned.status.phase, Some(Phase::Invalid));
        let plain = acted(&c, &base_world());
        assert_eq!(plain.ca, None);
    }

    #[test]
    fn an_unusable_tls_secret_blocks_with_conditions_and_a_warning() {
        let c = with_tls(cluster(spec(&[("a", 1), ("b", 1), ("c", 1)])));
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
                ..base_world()
            };
            match outcome(&c, &world) {
                Outcome::Blocked { status, decisions } => {
                    assert_eq!(condition(&status, condition::READY), "False");
                    assert_eq!(condition(&status, condition::DEGRADED), "True");
                    let degraded = condition_of(&status, condition::DEGRADED);
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
