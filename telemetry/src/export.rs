//! The tracer provider and where its spans go.

use anyhow::{Context, bail};
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::registry::LookupSpan;

use crate::ids;

/// OpenTelemetry's own variables naming an OTLP endpoint for traces; when
/// one is set, spans are exported even without an endpoint of ours.
const STANDARD_ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// Where OTLP/HTTP receivers take traces, below their base URL.
const TRACES_PATH: &str = "/v1/traces";

/// Whether spans are to be exported: `endpoint` is given, or one of
/// OpenTelemetry's standard variables names one.
pub fn otlp_configured(endpoint: Option<&str>) -> bool {
    endpoint.is_some_and(|e| !e.is_empty())
        || STANDARD_ENDPOINT_VARIABLES
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

/// A process's tracer. Dropping it exports the spans still queued.
pub struct Tracing {
    provider: SdkTracerProvider,
    service: &'static str,
    exporting: bool,
}

impl Tracing {
    /// Traces of `service`, whose resource also carries `attributes` (such
    /// as the node id). When [`otlp_configured`], spans are exported in
    /// batches over OTLP/HTTP with protobuf: to `endpoint`, a base URL
    /// such as `http://jaeger:4318` (spans go to its `/v1/traces`), else
    /// where OpenTelemetry's variables say. Otherwise they are kept
    /// nowhere, and serve only to give log lines their trace ids.
    pub fn start(
        service: &'static str,
        attributes: Vec<KeyValue>,
        endpoint: Option<&str>,
    ) -> anyhow::Result<Self> {
        let resource = Resource::builder()
            .with_service_name(service)
            .with_attributes(attributes)
            .build();
        let mut provider = SdkTracerProvider::builder().with_resource(resource);
        let exporting = otlp_configured(endpoint);
        if exporting {
            provider = provider.with_batch_exporter(exporter(endpoint)?);
        }
        Ok(Self {
            provider: provider.build(),
            service,
            exporting,
        })
    }

    /// Whether spans leave the process.
    pub fn is_exporting(&self) -> bool {
        self.exporting
    }

    /// The layer that turns `tracing` spans at INFO and above into
    /// OpenTelemetry spans and gives each its [`TraceIds`](crate::TraceIds).
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer(self.service))
            .with_tracked_inactivity(false)
            .with_threads(false)
            .and_then(ids::RecordIds::default())
            .with_filter(LevelFilter::INFO)
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "exporting the last spans failed");
        }
    }
}

/// The OTLP/HTTP exporter to `endpoint` (a base URL), or to what
/// OpenTelemetry's variables name when it is `None`.
fn exporter(endpoint: Option<&str>) -> anyhow::Result<SpanExporter> {
    let mut builder = SpanExporter::builder().with_http();
    if let Some(endpoint) = endpoint.filter(|e| !e.is_empty()) {
        builder = builder.with_endpoint(traces_url(endpoint)?);
    }
    builder
        .build()
        .context("setting up the OTLP trace exporter")
}

/// The URL spans are posted to, below the base URL `endpoint`.
fn traces_url(endpoint: &str) -> anyhow::Result<String> {
    if !endpoint.starts_with("http://") {
        bail!(
            "the OTLP endpoint {endpoint:?} must be an http:// URL (such as \
             http://jaeger:4318): spans are sent over OTLP/HTTP without TLS"
        );
    }
    Ok(format!("{}{TRACES_PATH}", endpoint.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_go_below_the_base_url() {
        assert_eq!(
            traces_url("http://jaeger:4318").unwrap(),
            "http://jaeger:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://127.0.0.1:4318/").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        let error = traces_url("https://jaeger:4318").unwrap_err().to_string();
        assert!(error.contains("http://"), "{error}");
        assert!(traces_url("jaeger:4318").is_err());
    }

    #[test]
    fn an_endpoint_of_ours_turns_export_on() {
        assert!(otlp_configured(Some("http://collector:4318")));
    }
}
