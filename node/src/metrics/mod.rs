//! Prometheus metrics of the node (`GET /metrics`, in the OpenMetrics text
//! format).
//!
//! Two kinds of figures:
//!
//! - what only the client API sees, kept here as it happens: requests by
//!   operation and outcome, their latency histograms, and how many
//!   versions successful reads returned (the divergence statistic of the
//!   Dynamo paper, section 6.3);
//! - everything else, counted where it happens by the module doing it
//!   (the coordinator, handoff, anti-entropy, transfers, the store, the
//!   failure detector) and read from it at scrape time (see [`Sources`]),
//!   so that `/metrics` and `/v1/status` read the same counters.
//!
//! Every series a label set names exists from the start (at zero), so
//! that ratios and rates work before the first event.

mod scrape;

use std::fmt;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use scrape::Sources;

/// Upper bounds of the latency histogram buckets, in seconds: fine
/// enough between 0.5 ms and 10 s to read p99 and p99.9 of a request.
pub const LATENCY_BUCKETS: [f64; 24] = [
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15,
    0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
];

/// A client operation on a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `GET` (and `HEAD`) of `/v1/kv/{key}`.
    Get,
    /// `PUT`.
    Put,
    /// `DELETE`.
    Delete,
    /// `GET /v1/kv`: a page of a key listing.
    List,
    /// `POST /v1/batch/get`: many keys read at once.
    BatchGet,
}

/// How a client request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Answered with the value(s) or stored (2xx, or 300 with siblings).
    Ok,
    /// The key has no value (404).
    NotFound,
    /// The request was malformed or refused for what it asked (other 4xx).
    BadRequest,
    /// No or the wrong credentials (401, 403).
    Denied,
    /// Fewer than R or W replicas answered (503 `quorum_unavailable`).
    QuorumFailed,
    /// The request did not arrive in time (408).
    Timeout,
    /// The node was at its cap of requests in flight (503 `overloaded`).
    Overloaded,
    /// The store refused writes: full or failing volume (503, 507).
    Unavailable,
    /// Any other failure (5xx).
    Error,
}

impl Op {
    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Put => "put",
            Op::Delete => "delete",
            Op::List => "list",
            Op::BatchGet => "batch_get",
        }
    }
}

impl Outcome {
    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NotFound => "not_found",
            Outcome::BadRequest => "bad_request",
            Outcome::Denied => "denied",
            Outcome::QuorumFailed => "quorum_failed",
            Outcome::Timeout => "timeout",
            Outcome::Overloaded => "overloaded",
            Outcome::Unavailable => "unavailable",
            Outcome::Error => "error",
        }
    }
}

/// The labels of a request's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    op: &'static str,
    outcome: &'static str,
}

/// The labels of the counter of requests served to peers.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerRequestLabels {
    kind: &'static str,
}

/// The labels of the read versions counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    versions: &'static str,
}

type Histograms = Family<RequestLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The node's metrics: a cheap handle (clones share the series).
#[derive(Clone, Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    durations: Histograms,
    read_versions: Family<VersionLabels, Counter>,
    peer_requests: Family<PeerRequestLabels, Counter>,
}

impl Default for Metrics {
    /// Every request and read-version series at zero.
    fn default() -> Self {
        let metrics = Self {
            requests: Family::default(),
            durations: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            read_versions: Family::default(),
            peer_requests: Family::default(),
        };
        for op in [Op::Get, Op::Put, Op::Delete, Op::List, Op::BatchGet] {
            for outcome in [Outcome::Ok, Outcome::NotFound, Outcome::QuorumFailed] {
                let labels = request_labels(op, outcome);
                drop(metrics.requests.get_or_create(&labels));
                drop(metrics.durations.get_or_create(&labels));
            }
        }
        for versions in VERSIONS {
            drop(
                metrics
                    .read_versions
                    .get_or_create(&VersionLabels { versions }),
            );
        }
        metrics
    }
}

/// The values of the `versions` label, by versions returned.
const VERSIONS: [&str; 3] = ["1", "2", "3+"];

fn request_labels(op: Op, outcome: Outcome) -> RequestLabels {
    RequestLabels {
        op: op.name(),
        outcome: outcome.name(),
    }
}

impl Metrics {
    /// Records a client request: its operation, outcome and how long it
    /// took to answer.
    pub fn observe_request(&self, op: Op, outcome: Outcome, elapsed: Duration) {
        let labels = request_labels(op, outcome);
        self.requests.get_or_create(&labels).inc();
        self.durations
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// Records a successful read that returned `versions` concurrent
    /// values (siblings) to the client; a read of no value is not counted.
    pub fn observe_read_versions(&self, versions: usize) {
        let label = match versions {
            0 => return,
            1 => VERSIONS[0],
            2 => VERSIONS[1],
            _ => VERSIONS[2],
        };
        self.read_versions
            .get_or_create(&VersionLabels { versions: label })
            .inc();
    }

    /// Records a request a peer sent over the node-to-node stream, by its
    /// kind ([`crate::transport::Request::kind`]).
    pub fn observe_peer_request(&self, kind: &'static str) {
        self.peer_requests
            .get_or_create(&PeerRequestLabels { kind })
            .inc();
    }

    /// Every metric of the node, with the figures of `sources` as they are
    /// now, in the OpenMetrics text format.
    pub fn encode(&self, sources: &Sources<'_>) -> Result<String, fmt::Error> {
        let mut registry = Registry::with_prefix("dynamo");
        self.register(&mut registry);
        scrape::register(&mut registry, sources);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)?;
        Ok(out)
    }

    /// Adds the series kept here to `registry`.
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "requests",
            "Client requests on keys, by operation and outcome",
            self.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to answer client requests on keys, by operation and outcome",
            self.durations.clone(),
        );
        registry.register(
            "read_versions",
            "Successful reads by the number of concurrent versions (siblings) they returned",
            self.read_versions.clone(),
        );
        registry.register(
            "peer_requests",
            "Requests this node served for its peers over the node-to-node stream, by kind",
            self.peer_requests.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(metrics: &Metrics) -> String {
        let mut registry = Registry::with_prefix("dynamo");
        metrics.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn requests_are_counted_and_timed_by_operation_and_outcome() {
        let metrics = Metrics::default();
        let zero = text(&metrics);
        assert!(zero.contains(r#"dynamo_requests_total{op="delete",outcome="quorum_failed"} 0"#));
        assert!(zero.contains(r#"dynamo_read_versions_total{versions="3+"} 0"#));
        metrics.observe_request(Op::Get, Outcome::Ok, Duration::from_micros(700));
        metrics.observe_request(Op::Get, Outcome::Ok, Duration::from_millis(40));
        metrics.observe_request(Op::Put, Outcome::Overloaded, Duration::ZERO);
        let out = text(&metrics);
        assert!(out.contains(r#"dynamo_requests_total{op="get",outcome="ok"} 2"#));
        assert!(out.contains(r#"dynamo_requests_total{op="put",outcome="overloaded"} 1"#));
        let bucket = |le: &str| {
            format!(r#"dynamo_request_duration_seconds_bucket{{le="{le}",op="get",outcome="ok"}}"#)
        };
        assert!(out.contains(&format!("{} 0\n", bucket("0.0005"))), "{out}");
        assert!(out.contains(&format!("{} 1\n", bucket("0.001"))), "{out}");
        assert!(out.contains(&format!("{} 2\n", bucket("0.05"))), "{out}");
        assert!(out.contains(&format!("{} 2\n", bucket("+Inf"))), "{out}");
    }

    #[test]
    fn reads_are_counted_by_versions_returned() {
        let metrics = Metrics::default();
        for versions in [0, 1, 1, 2, 3, 7] {
            metrics.observe_read_versions(versions);
        }
        let out = text(&metrics);
        assert!(out.contains(r#"dynamo_read_versions_total{versions="1"} 2"#));
        assert!(out.contains(r#"dynamo_read_versions_total{versions="2"} 1"#));
        assert!(out.contains(r#"dynamo_read_versions_total{versions="3+"} 2"#));
    }
}
