//! Prometheus metrics of the operator: reconciles, failures, reconcile
//! duration and the ring epoch of every cluster.

use std::time::Duration;

use kube::ResourceExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::crd::DynamoCluster;

/// Labels naming a cluster.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    /// Namespace.
    pub namespace: String,
    /// Cluster name.
    pub cluster: String,
}

/// Labels of a failed reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Namespace.
    pub namespace: String,
    /// Cluster name.
    pub cluster: String,
    /// Error kind.
    pub error: String,
}

/// The operator's metrics and the registry that exposes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ClusterLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Histogram,
    ring_epoch: Family<ClusterLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("dynamo_operator");
        let reconciles = Family::<ClusterLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.01, 2.0, 12));
        let ring_epoch = Family::<ClusterLabels, Gauge>::default();
        registry.register("reconciles", "Reconciles started", reconciles.clone());
        registry.register("reconcile_errors", "Reconciles failed", errors.clone());
        registry.register(
            "reconcile_duration_seconds",
            "Duration of successful reconciles",
            duration.clone(),
        );
        registry.register(
            "ring_epoch",
            "Epoch of the published ring",
            ring_epoch.clone(),
        );
        Metrics {
            registry,
            reconciles,
            errors,
            duration,
            ring_epoch,
        }
    }
}

fn labels(cluster: &DynamoCluster) -> ClusterLabels {
    ClusterLabels {
        namespace: cluster.namespace().unwrap_or_default(),
        cluster: cluster.name_any(),
    }
}

impl Metrics {
    /// Counts a reconcile of `cluster`.
    pub fn reconciled(&self, cluster: &DynamoCluster) {
        self.reconciles.get_or_create(&labels(cluster)).inc();
    }

    /// Counts a failed reconcile.
    pub fn failed(&self, cluster: &DynamoCluster, error: &str) {
        let ClusterLabels { namespace, cluster } = labels(cluster);
        self.errors
            .get_or_create(&ErrorLabels {
                namespace,
                cluster,
                error: error.to_string(),
            })
            .inc();
    }

    /// Records the duration of a successful reconcile.
    pub fn observe_duration(&self, elapsed: Duration) {
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// Sets the ring epoch gauge of `cluster`.
    pub fn set_ring_epoch(&self, cluster: &DynamoCluster, epoch: u64) {
        self.ring_epoch
            .get_or_create(&labels(cluster))
            .set(i64::try_from(epoch).unwrap_or(i64::MAX));
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::fixtures::{cluster, spec};

    #[test]
    fn metrics_are_exposed_per_cluster() {
        let metrics = Metrics::default();
        let c = cluster(spec(&[("a", 3)]));
        metrics.reconciled(&c);
        metrics.failed(&c, "kube");
        metrics.set_ring_epoch(&c, 4);
        metrics.observe_duration(Duration::from_millis(30));
        let text = metrics.encode().expect("encode");
        assert!(
            text.contains(
                r#"dynamo_operator_reconciles_total{namespace="default",cluster="demo"} 1"#
            )
        );
        assert!(
            text.contains(r#"dynamo_operator_ring_epoch{namespace="default",cluster="demo"} 4"#)
        );
        assert!(text.contains(r#"error="kube""#));
        assert!(text.contains("dynamo_operator_reconcile_duration_seconds_count 1"));
    }
}
