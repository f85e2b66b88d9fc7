//! The reconcile pipeline of one `DynamoCluster`:
//!
//! 1. [`observe`]: read StatefulSets, pods, the ring ConfigMap, the auth,
//!    clients and `spec.tls` Secrets and the nodes' transfer reports into a
//!    [`observe::World`];
//! 2. [`validate`]: refuse specs that are invalid or would lose data, hold
//!    a cluster whose Secrets are unusable or whose volumes belong to a
//!    previous cluster, and hand planning a [`validate::ValidatedCluster`];
//! 3. [`plan`]: decide (pure) the desired objects, the ring step, the pod
//!    to restart ([`rolling_upgrade`]), the pods to replace on a new volume
//!    ([`replace`]), the events and the status;
//! 4. [`apply`]: creation of the generated auth Secret, server-side apply,
//!    ring publication, pod restart and replacement, events;
//! 5. [`status`]: compute the phase and conditions (with `Restored` from
//!    [`restore_from`] when the spec has `restoreFrom`), and patch the
//!    status subresource.
//!
//! Only observe, apply, [`restore_from`] and status touch the API; the decisions are pure
//! functions tested without a cluster.

pub mod apply;
pub mod certificate;
pub mod claims;
pub mod observe;
pub mod plan;
pub mod replace;
pub mod restore_from;
pub mod rolling_upgrade;
pub mod status;
pub mod storage;
pub mod validate;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::{Api, Resource, ResourceExt};

use crate::crd::{DynamoCluster, DynamoClusterStatus};
use crate::metrics::Metrics;
use crate::node_client::NodeAdmin;
use crate::resources::ClusterRef;
use crate::resources::configmap::RenderError;
use crate::resources::pod_template::PodTemplateError;
use crate::ring_steps::StepError;
use plan::{Decision, Outcome};

/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "dynamo-operator";

/// Requeue delay while something is in progress (transfers are polled).
pub const BUSY_REQUEUE: Duration = Duration::from_secs(10);

/// Requeue delay of a settled cluster.
pub const IDLE_REQUEUE: Duration = Duration::from_secs(300);

/// First retry delay after a failed reconcile.
pub const BACKOFF_BASE: Duration = Duration::from_secs(5);

/// Longest retry delay after repeated failures.
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The ring in the ConfigMap does not parse.
    #[error("ring.json in ConfigMap {config_map} is not a ring document: {source}")]
    RingDocument {
        /// ConfigMap name.
        config_map: String,
        /// Parse error.
        source: serde_json::Error,
    },
    /// The status says a ring was published but the ConfigMap has none;
    /// building a fresh epoch-1 ring would contradict the nodes.
    #[error(
        "ConfigMap {config_map} lost ring.json (status says epoch {epoch}); restore it from a node's /v1/admin/ring or the ConfigMap history"
    )]
    RingLost {
        /// ConfigMap name.
        config_map: String,
        /// Epoch in the status.
        epoch: u64,
    },
    /// The ring step could not be computed.
    #[error(transparent)]
    Step(#[from] StepError),
    /// The ConfigMap could not be rendered.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// `spec.podTemplate` could not be applied (validation refuses such a
    /// spec first).
    #[error(transparent)]
    PodTemplate(#[from] PodTemplateError),
    /// The object lacks a namespace or uid (not from the API server).
    #[error("DynamoCluster {0} has no namespace or uid")]
    Incomplete(String),
}

impl Error {
    /// Short label for the errors metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::RingDocument { .. } => "ring_document",
            Error::RingLost { .. } => "ring_lost",
            Error::Step(_) => "ring_step",
            Error::Render(_) => "render",
            Error::PodTemplate(_) => "pod_template",
            Error::Incomplete(_) => "incomplete",
        }
    }
}

/// What every reconcile shares.
pub struct Context<N> {
    /// API client.
    pub client: kube::Client,
    /// Event recorder.
    pub recorder: Recorder,
    /// Node admin API.
    pub nodes: N,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Consecutive failures per cluster (`namespace/name`), for back-off.
    pub failures: Mutex<HashMap<String, u32>>,
}

/// Retry delay after `failures` consecutive failures: doubles from
/// [`BACKOFF_BASE`] and stops at [`BACKOFF_CAP`].
pub fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    BACKOFF_BASE.saturating_mul(1 << exponent).min(BACKOFF_CAP)
}

fn key(cluster: &DynamoCluster) -> String {
    format!(
        "{}/{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any()
    )
}

/// The identity every owned object derives from.
pub fn cluster_ref(cluster: &DynamoCluster) -> Result<ClusterRef, Error> {
    let incomplete = || Error::Incomplete(cluster.name_any());
    Ok(ClusterRef {
        name: cluster.name_any(),
        namespace: cluster.namespace().ok_or_else(incomplete)?,
        owner: cluster.controller_owner_ref(&()).ok_or_else(incomplete)?,
    })
}

/// Reconciles one cluster (see the module docs for the stages).
#[tracing::instrument(skip_all, fields(cluster = %cluster.name_any(), namespace = cluster.namespace().unwrap_or_default()))]
pub async fn reconcile<N: NodeAdmin>(
    cluster: Arc<DynamoCluster>,
    ctx: Arc<Context<N>>,
) -> Result<Action, Error> {
    let started = Instant::now();
    ctx.metrics.reconciled(&cluster);
    let cref = cluster_ref(&cluster)?;
    let world = observe::observe(
        &ctx.client,
        &ctx.nodes,
        &cref,
        &cluster.spec,
        cluster.metadata.creation_timestamp.as_ref(),
    )
    .await?;
    let now = Time(Timestamp::now());
    let api: Api<DynamoCluster> = Api::namespaced(ctx.client.clone(), &cref.namespace);
    let action = match plan::plan(&cluster, &cref, &world, &now)? {
        Outcome::Refuse { status, decisions } => {
            tracing::warn!(reason = ?decisions, "spec refused");
            report(&api, &ctx.recorder, &cluster, &status, &decisions).await?;
            Action::await_change()
        }
        Outcome::Paused { status, decisions } => {
            tracing::info!("paused: changing nothing");
            report(&api, &ctx.recorder, &cluster, &status, &decisions).await?;
            Action::requeue(BUSY_REQUEUE)
        }
        Outcome::Wait { status, decisions } => {
            tracing::warn!(reason = ?decisions, "waiting for the user");
            report(&api, &ctx.recorder, &cluster, &status, &decisions).await?;
            Action::requeue(BUSY_REQUEUE)
        }
        Outcome::Blocked { status, decisions } => {
            tracing::warn!(reason = ?decisions, "blocked on the auth, clients or TLS Secret");
            report(&api, &ctx.recorder, &cluster, &status, &decisions).await?;
            ctx.metrics.observe_duration(started.elapsed());
            return Ok(Action::requeue(backoff(count_failure(&ctx, &cluster))));
        }
        Outcome::Act(plan) => {
            apply::apply(&ctx.client, &ctx.nodes, &cref, &plan).await?;
            let mut status = plan.status.clone();
            restore_from::sync(&ctx.client, &cluster, &cref, &mut status, &now).await?;
            report(&api, &ctx.recorder, &cluster, &status, &plan.decisions).await?;
            ctx.metrics.set_ring_epoch(&cluster, plan.ring.ring.epoch);
            if plan.busy {
                Action::requeue(BUSY_REQUEUE)
            } else {
                Action::requeue(IDLE_REQUEUE)
            }
        }
    };
    if let Ok(mut failures) = ctx.failures.lock() {
        failures.remove(&key(&cluster));
    }
    ctx.metrics.observe_duration(started.elapsed());
    Ok(action)
}

/// Writes `status` to `cluster`, then records `decisions` as its Events;
/// an Event that cannot be written is a warning in the log, never a
/// failed reconcile (Events are informative, the status is the record).
async fn report(
    api: &Api<DynamoCluster>,
    recorder: &Recorder,
    cluster: &DynamoCluster,
    status: &DynamoClusterStatus,
    decisions: &[Decision],
) -> Result<(), Error> {
    status::patch_status(api, &cluster.name_any(), status).await?;
    if let Err(error) = apply::record(recorder, cluster, decisions).await {
        tracing::warn!(%error, "recording events failed; the reconcile goes on");
    }
    Ok(())
}

/// Counts one more consecutive failure of `cluster`; returns the count.
fn count_failure<N>(ctx: &Context<N>, cluster: &DynamoCluster) -> u32 {
    match ctx.failures.lock() {
        Ok(mut map) => {
            let count = map.entry(key(cluster)).or_insert(0);
            *count = count.saturating_add(1);
            *count
        }
        Err(_) => 1,
    }
}

/// Counts the failure and retries after an exponential back-off.
pub fn error_policy<N: NodeAdmin>(
    cluster: Arc<DynamoCluster>,
    error: &Error,
    ctx: Arc<Context<N>>,
) -> Action {
    ctx.metrics.failed(&cluster, error.kind());
    let failures = count_failure(&ctx, &cluster);
    let delay = backoff(failures);
    tracing::warn!(cluster = %key(&cluster), %error, failures, ?delay, "reconcile failed");
    Action::requeue(delay)
}

#[cfg(test)]
mod api_tests;
#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(3), Duration::from_secs(20));
        assert_eq!(backoff(7), Duration::from_secs(300));
        assert_eq!(backoff(u32::MAX), BACKOFF_CAP);
    }
}
