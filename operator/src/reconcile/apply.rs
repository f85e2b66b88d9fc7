//! Apply: carry out a [`Plan`] — creating the generated auth Secret,
//! server-side apply of every owned object under the `dynamo-operator`
//! field manager, scaling and deleting the objects of removed zones,
//! sending the ring to the nodes, restarting one pod, replacing pods on new
//! volumes — then record the
//! decisions as Events.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::claims::{grow_patch, label_patch};
use super::plan::{Decision, Plan, PolicyChange, VolumeChanges};
use super::{Error, FIELD_MANAGER};
use crate::crd::DynamoCluster;
use crate::node_client::{NodeAdmin, PublishOutcome};
use crate::resources::ClusterRef;
use crate::resources::auth::{GeneratedCredentials, generated_auth_secret};
use crate::resources::network_policy::network_policy_name;
use crate::resources::pod_template::data_claim_name;

async fn server_side_apply<K>(client: &kube::Client, ns: &str, object: &K) -> Result<(), Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    api.patch(
        &object.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await?;
    Ok(())
}

/// Treats "already gone" as done.
fn ignore_not_found<T>(result: Result<T, kube::Error>) -> Result<(), Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Creates the generated auth Secret of `cluster` holding `credentials`;
/// one that appeared since it was observed is kept as it is (never
/// overwritten).
async fn create_auth_secret(
    client: &kube::Client,
    cluster: &ClusterRef,
    credentials: &GeneratedCredentials,
) -> Result<(), Error> {
    let secret = generated_auth_secret(cluster, credentials);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    let name = cluster.generated_auth_secret_name();
    match Api::<Secret>::namespaced(client.clone(), &cluster.namespace)
        .create(&params, &secret)
        .await
    {
        Ok(_) => {
            tracing::info!(secret = %name, "created the auth Secret");
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            tracing::info!(secret = %name, "the auth Secret exists already; kept as it is");
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

/// Creates the generated auth Secret, applies the objects, then acts on
/// the ring and the pods.
///
/// The auth Secret goes first so pods never wait for it, then the
/// ConfigMap so a pod never starts without its ring; the ring is sent to
/// the nodes after the ConfigMap holds it. A node that does not take the
/// ring is logged and retried on the next reconcile.
pub async fn apply<N: NodeAdmin>(
    client: &kube::Client,
    nodes: &N,
    cluster: &ClusterRef,
    plan: &Plan,
) -> Result<(), Error> {
    let ns = cluster.namespace.as_str();
    if let Some(credentials) = &plan.create_auth_secret {
        create_auth_secret(client, cluster, credentials).await?;
    }
    let objects = &plan.objects;
    server_side_apply::<ConfigMap>(client, ns, &objects.config_map).await?;
    for service in &objects.services {
        server_side_apply::<Service>(client, ns, service).await?;
    }
    for sts in &objects.statefulsets {
        server_side_apply::<StatefulSet>(client, ns, sts).await?;
    }
    server_side_apply::<PodDisruptionBudget>(client, ns, &objects.pdb).await?;
    match &objects.network_policy {
        PolicyChange::Apply(policy) => {
            server_side_apply::<NetworkPolicy>(client, ns, policy).await?
        }
        PolicyChange::Delete => {
            let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
            let name = network_policy_name(cluster);
            ignore_not_found(policies.delete(&name, &DeleteParams::default()).await)?;
        }
        PolicyChange::Leave => {}
    }

    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    for (name, replicas) in &plan.scale_removed {
        let body = serde_json::json!({"spec": {"replicas": replicas}});
        statefulsets
            .patch(name, &PatchParams::default(), &Patch::Merge(&body))
            .await?;
    }
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    for zone in &plan.delete_zones {
        let name = cluster.zone_object_name(zone);
        ignore_not_found(statefulsets.delete(&name, &DeleteParams::default()).await)?;
        ignore_not_found(services.delete(&name, &DeleteParams::default()).await)?;
    }

    for address in &plan.publish_to {
        match nodes
            .publish_ring(address, Some(&plan.token), plan.ca.as_ref(), &plan.ring)
            .await
        {
            Ok(PublishOutcome::Accepted) => {
                tracing::info!(%address, epoch = plan.ring.ring.epoch, "ring sent");
            }
            Ok(PublishOutcome::NewerEpoch) => {
                tracing::warn!(%address, epoch = plan.ring.ring.epoch, "node has a newer ring");
            }
            Err(error) => tracing::warn!(%error, "ring not sent; retrying next reconcile"),
        }
    }

    if let Some(pod) = &plan.restart {
        ignore_not_found(
            Api::<Pod>::namespaced(client.clone(), ns)
                .delete(pod, &DeleteParams::default())
                .await,
        )?;
    }
    for pod in &plan.replace {
        replace_pod(client, ns, pod).await?;
    }
    change_volumes(client, cluster, &plan.volumes).await
}

/// Labels this cluster's claims with its uid and grows claims.
async fn change_volumes(
    client: &kube::Client,
    cluster: &ClusterRef,
    volumes: &VolumeChanges,
) -> Result<(), Error> {
    let ns = cluster.namespace.as_str();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let label = label_patch(&cluster.owner.uid);
    for claim in &volumes.label {
        ignore_not_found(
            claims
                .patch(claim, &PatchParams::default(), &Patch::Merge(&label))
                .await,
        )?;
    }
    let grow = grow_patch(&volumes.size);
    for claim in &volumes.grow {
        tracing::info!(%claim, size = %volumes.size, "growing the claim");
        ignore_not_found(
            claims
                .patch(claim, &PatchParams::default(), &Patch::Merge(&grow))
                .await,
        )?;
    }
    Ok(())
}

/// Deletes the volume claim of `pod`, then the pod without a grace period
/// (its node may be gone, and its data is given up): the claim goes once
/// the pod is gone, and the StatefulSet recreates the pod with a new claim.
async fn replace_pod(client: &kube::Client, ns: &str, pod: &str) -> Result<(), Error> {
    let claim = data_claim_name(pod);
    tracing::info!(%pod, %claim, "replacing the pod on a new volume");
    ignore_not_found(
        Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
            .delete(&claim, &DeleteParams::default())
            .await,
    )?;
    ignore_not_found(
        Api::<Pod>::namespaced(client.clone(), ns)
            .delete(pod, &DeleteParams::default().grace_period(0))
            .await,
    )
}

/// Records each decision as an Event on the cluster object.
pub async fn record(
    recorder: &Recorder,
    cluster: &DynamoCluster,
    decisions: &[Decision],
) -> Result<(), Error> {
    let reference = cluster.object_ref(&());
    for decision in decisions {
        let event = Event {
            type_: if decision.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: decision.reason.to_string(),
            note: Some(decision.note.chars().take(1000).collect()),
            action: decision.reason.to_string(),
            secondary: None,
        };
        recorder.publish(&event, &reference).await?;
    }
    Ok(())
}
