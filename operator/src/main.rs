//! `dynamo-operator`: reconciles DynamoCluster resources while this replica
//! holds the leader Lease, and serves metrics and health endpoints.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use dynamo_operator::backups::{self, BackupContext};
use dynamo_operator::crd::DynamoCluster;
use dynamo_operator::crd::backup::{
    DynamoBackup, DynamoBackupSchedule, DynamoRestore, SCHEDULE_LABEL,
};
use dynamo_operator::leader::LeaderElector;
use dynamo_operator::metrics::Metrics;
use dynamo_operator::node_client::HttpNodeAdmin;
use dynamo_operator::reconcile::{Context, error_policy, reconcile};
use dynamo_operator::resources::INSTANCE_LABEL;
use dynamo_operator::server::{ServerState, router};
use dynamo_operator::trigger::cluster_trigger;
use dynamo_telemetry::{KeyValue, Tracing};
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Controller, Predicate, PredicateConfig, WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};

/// Kubernetes operator for Dynamo-style key-value clusters.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Namespaces to watch, comma-separated; empty watches every namespace.
    #[arg(
        long,
        env = "WATCH_NAMESPACE",
        value_delimiter = ',',
        default_value = ""
    )]
    watch_namespace: Vec<String>,
    /// Namespace of the leader election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    leader_election_namespace: String,
    /// Name of the leader election Lease.
    #[arg(long, default_value = "dynamo-operator")]
    lease_name: String,
    /// Seconds a leader holds the Lease without renewing it.
    #[arg(long, default_value_t = 15)]
    lease_seconds: u64,
    /// Identity of this replica (its pod name).
    #[arg(long, env = "POD_NAME", default_value = "dynamo-operator")]
    pod_name: String,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Timeout of a call to a node's admin API, in seconds.
    #[arg(long, default_value_t = 5)]
    node_timeout_seconds: u64,
    /// OTLP/HTTP endpoint to export reconcile traces to, a base URL such
    /// as `http://jaeger:4318`; without it, and without OpenTelemetry's
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, nothing is exported.
    #[arg(long, env = "DYNAMO_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Where the backup volume is mounted (the chart's
    /// `backups.volume.claimName`): `DynamoBackup` volume targets are
    /// directories under it. Without it only S3 targets work.
    #[arg(long, env = "DYNAMO_BACKUP_VOLUME")]
    backup_volume: Option<PathBuf>,
}

/// Installs the JSON logger (`RUST_LOG` filters, default `info`) and, when
/// an OTLP endpoint is configured, the tracing of reconciles (one span
/// each, naming the cluster). The returned tracer exports the spans still
/// queued when dropped.
fn init_logging(args: &Args) -> anyhow::Result<Option<Tracing>> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let tracing = match dynamo_telemetry::otlp_configured(args.otlp_endpoint.as_deref()) {
        true => Some(Tracing::start(
            "dynamo-operator",
            vec![KeyValue::new("service.instance.id", args.pod_name.clone())],
            args.otlp_endpoint.as_deref(),
        )?),
        false => None,
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::registry()
        .with(tracing.as_ref().map(Tracing::layer))
        .with(tracing_subscriber::fmt::layer().json().with_filter(filter))
        .init();
    Ok(tracing)
}

fn api<K>(client: &kube::Client, namespace: &str) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    if namespace.is_empty() {
        Api::all(client.clone())
    } else {
        Api::namespaced(client.clone(), namespace)
    }
}

/// The namespaces to run a controller for: the distinct non-empty names
/// given, or one empty name (every namespace) when none is.
fn watched_namespaces(given: &[String]) -> Vec<String> {
    let mut namespaces: Vec<String> = given
        .iter()
        .map(|ns| ns.trim().to_string())
        .filter(|ns| !ns.is_empty())
        .collect();
    namespaces.sort();
    namespaces.dedup();
    if namespaces.is_empty() {
        namespaces.push(String::new());
    }
    namespaces
}

/// Runs the controller over one namespace (or every namespace for `""`)
/// until a shutdown signal. `DynamoCluster` events start a reconcile only
/// for a spec or annotation change ([`cluster_trigger`]), not for the
/// operator's own status updates.
async fn run_controller(client: &kube::Client, ns: &str, ctx: Arc<Context<HttpNodeAdmin>>) {
    let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=dynamo-operator");
    let (reader, writer) = reflector::store();
    let clusters = watcher(api::<DynamoCluster>(client, ns), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(cluster_trigger(), PredicateConfig::default());
    Controller::for_stream(clusters, reader)
        .owns(api::<StatefulSet>(client, ns), owned.clone())
        .owns(api::<Service>(client, ns), owned.clone())
        .owns(api::<ConfigMap>(client, ns), owned.clone())
        .owns(api::<DynamoRestore>(client, ns), owned.clone())
        .watches(api::<Pod>(client, ns), owned, |pod: Pod| {
            let namespace = pod.namespace();
            pod.labels().get(INSTANCE_LABEL).map(|name| {
                ObjectRef::<DynamoCluster>::new(name).within(&namespace.unwrap_or_default())
            })
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(cluster = %object.name, "reconciled"),
                Err(error) => tracing::warn!(%error, "reconcile error"),
            }
        })
        .await;
}

/// The objects of kind `K` in `ns` (every namespace for `""`), with a
/// store for the controller, passing on the changes `trigger` sees.
fn triggered<K, P>(
    client: &kube::Client,
    ns: &str,
    trigger: P,
) -> (
    reflector::Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + use<K, P>,
)
where
    P: Predicate<K> + Send + 'static,
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api::<K>(client, ns), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(trigger, PredicateConfig::default());
    (reader, stream)
}

/// Logs a reconcile's result.
async fn log_result<K, E: std::fmt::Display>(
    result: Result<
        (ObjectRef<K>, kube::runtime::controller::Action),
        kube::runtime::controller::Error<E, watcher::Error>,
    >,
) where
    K: Resource,
    K::DynamicType: Clone + Eq + std::hash::Hash,
{
    match result {
        Ok((object, _)) => tracing::debug!(name = %object.name, "reconciled"),
        Err(error) => tracing::warn!(%error, "reconcile error"),
    }
}

/// Runs the backup, restore and schedule controllers over one namespace
/// (or every namespace for `""`) until a shutdown signal. A schedule is
/// also looked at when one of its backups changes (retention).
async fn run_backup_controllers(client: &kube::Client, ns: &str, ctx: Arc<BackupContext>) {
    let (reader, stream) = triggered::<DynamoBackup, _>(client, ns, backups::trigger());
    let backups = Controller::for_stream(stream, reader)
        .shutdown_on_signal()
        .run(
            backups::backup::reconcile,
            backups::error_policy,
            ctx.clone(),
        )
        .for_each(log_result);
    let (reader, stream) = triggered::<DynamoRestore, _>(client, ns, backups::trigger());
    let restores = Controller::for_stream(stream, reader)
        .shutdown_on_signal()
        .run(
            backups::restore::reconcile,
            backups::error_policy,
            ctx.clone(),
        )
        .for_each(log_result);
    let (reader, stream) = triggered::<DynamoBackupSchedule, _>(client, ns, backups::trigger());
    let made_by_schedule = watcher::Config::default().labels(SCHEDULE_LABEL);
    let schedules = Controller::for_stream(stream, reader)
        .watches(
            api::<DynamoBackup>(client, ns),
            made_by_schedule,
            |backup| {
                let namespace = backup.namespace().unwrap_or_default();
                backup
                    .labels()
                    .get(SCHEDULE_LABEL)
                    .map(|name| ObjectRef::<DynamoBackupSchedule>::new(name).within(&namespace))
            },
        )
        .shutdown_on_signal()
        .run(backups::schedule::reconcile, backups::error_policy, ctx)
        .for_each(log_result);
    futures::join!(backups, restores, schedules);
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _tracing = init_logging(&args)?;
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("binding {}", args.metrics_addr))?;
    let app = router(ServerState {
        metrics: metrics.clone(),
        ready: ready.clone(),
    });
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "metrics server stopped");
        }
    });

    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API")?;
    ready.store(true, Ordering::Relaxed);
    let elector = LeaderElector::new(
        client.clone(),
        &args.leader_election_namespace,
        &args.lease_name,
        &args.pod_name,
        Duration::from_secs(args.lease_seconds),
    );
    tracing::info!(identity = %args.pod_name, lease = %args.lease_name, "waiting for leadership");
    elector.acquire().await;
    tracing::info!(identity = %args.pod_name, "leading");

    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "dynamo-operator".into(),
                instance: Some(args.pod_name.clone()),
            },
        ),
        nodes: HttpNodeAdmin::new(Duration::from_secs(args.node_timeout_seconds))
            .context("building the node admin client")?,
        metrics,
        failures: Default::default(),
    });
    let backup_ctx = Arc::new(BackupContext {
        client: client.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "dynamo-operator".into(),
                instance: Some(args.pod_name.clone()),
            },
        ),
        tasks: Default::default(),
        volume_root: args.backup_volume.clone(),
    });
    let namespaces = watched_namespaces(&args.watch_namespace);
    tracing::info!(
        ?namespaces,
        "watching (an empty name means every namespace)"
    );
    let controllers = namespaces.iter().map(|ns| {
        let clusters = run_controller(&client, ns, ctx.clone());
        let backups = run_backup_controllers(&client, ns, backup_ctx.clone());
        async move {
            futures::join!(clusters, backups);
        }
    });
    let controller = async {
        futures::future::join_all(controllers).await;
    };
    tokio::select! {
        () = controller => {
            tracing::info!("controller stopped");
            match elector.release().await {
                Ok(true) => tracing::info!("released the leader lease"),
                Ok(false) => tracing::info!("the leader lease was no longer ours"),
                Err(error) => tracing::warn!(%error, "releasing the leader lease; it expires by itself"),
            }
            Ok(())
        }
        () = elector.keep() => anyhow::bail!("lost the leader lease; exiting so a new leader takes over"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_distinct_and_none_means_all() {
        let given = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(watched_namespaces(&given(&[""])), vec![String::new()]);
        assert_eq!(watched_namespaces(&given(&[])), vec![String::new()]);
        assert_eq!(
            watched_namespaces(&given(&["b", " a", "b", ""])),
            vec!["a".to_string(), "b".to_string()]
        );
    }

    #[test]
    fn the_environment_takes_a_comma_separated_list() {
        let args = Args::parse_from(["dynamo-operator", "--watch-namespace", "team-a,team-b"]);
        assert_eq!(args.watch_namespace, vec!["team-a", "team-b"]);
    }
}
