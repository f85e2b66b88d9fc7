//! Distributed tracing shared by the node and the operator.
//!
//! A process that traces installs the layer of a [`Tracing`] beside its
//! log layer: its `tracing` spans (at INFO and above) become OpenTelemetry
//! spans, exported over OTLP/HTTP when an endpoint is configured and kept
//! nowhere otherwise, and every span gets [`TraceIds`] that log lines can
//! show. A span's place in a trace crosses process boundaries as a
//! [`TraceParent`]: the W3C `traceparent` header of a client request, or
//! its binary form in a node-to-node message.

mod export;
mod ids;
mod parent;

pub use export::{Tracing, otlp_configured};
pub use ids::TraceIds;
pub use opentelemetry::KeyValue;
pub use parent::TraceParent;

#[cfg(test)]
mod tests {
    use tracing::Span;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::registry::LookupSpan;

    use super::*;

    const HEADER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// Runs `f` under a subscriber that traces (exporting nothing).
    fn traced<T>(f: impl FnOnce() -> T) -> T {
        let tracing = Tracing::start("test", vec![], None).unwrap();
        assert!(!tracing.is_exporting());
        let subscriber = tracing_subscriber::registry().with(tracing.layer());
        tracing::subscriber::with_default(subscriber, f)
    }

    /// The ids recorded for log lines on the current span.
    fn current_ids() -> Option<TraceIds> {
        let id = Span::current().id()?;
        tracing::dispatcher::get_default(|dispatch| {
            let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
            let span = registry.span(&id)?;
            TraceIds::innermost([span])
        })
    }

    #[test]
    fn a_span_adopting_a_remote_parent_joins_its_trace() {
        let parent = TraceParent::parse(HEADER).unwrap();
        let (child, ids) = traced(|| {
            let span = tracing::info_span!("request");
            parent.adopt(&span);
            let _entered = span.enter();
            (TraceParent::of(&span), current_ids())
        });
        let child = child.expect("a traced span has a context");
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.span_id(), parent.span_id());
        assert_eq!(child.flags(), 1);
        let ids = ids.expect("an entered span has ids for log lines");
        assert_eq!(ids.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ids.span_id.len(), 16);
    }

    #[test]
    fn a_span_without_a_parent_starts_a_trace() {
        let (outer, inner) = traced(|| {
            let outer = tracing::info_span!("outer");
            let _entered = outer.enter();
            let inner = tracing::info_span!("inner");
            (TraceParent::of(&outer), TraceParent::of(&inner))
        });
        let (outer, inner) = (outer.unwrap(), inner.unwrap());
        assert_eq!(outer.trace_id(), inner.trace_id());
        assert_ne!(outer.span_id(), inner.span_id());
    }

    #[test]
    fn without_tracing_spans_have_no_context() {
        let subscriber = tracing_subscriber::registry();
        let context = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request");
            TraceParent::parse(HEADER).unwrap().adopt(&span);
            TraceParent::of(&span)
        });
        assert_eq!(context, None);
    }

    #[test]
    fn traceparent_headers_round_trip_and_invalid_ones_are_refused() {
        assert_eq!(TraceParent::parse(HEADER).unwrap().to_string(), HEADER);
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more";
        assert_eq!(
            TraceParent::parse(later).unwrap().to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        );
        for invalid in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "not a header",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceParent::parse(invalid), None, "{invalid:?}");
        }
        assert_eq!(TraceParent::new([0; 16], [1; 8], 1), None);
        assert_eq!(TraceParent::new([1; 16], [0; 8], 1), None);
        assert!(TraceParent::new([1; 16], [1; 8], 0).is_some());
    }
}
