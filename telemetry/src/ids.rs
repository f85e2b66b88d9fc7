//! Trace ids for log lines: each span, once entered, carries the ids of
//! its OpenTelemetry span in its extensions, where a log formatter finds
//! them.

use std::sync::OnceLock;

use opentelemetry::trace::TraceContextExt;
use tracing::dispatcher::WeakDispatch;
use tracing::span::Id;
use tracing::{Dispatch, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};

/// The ids of a span's OpenTelemetry span, in the hexadecimal of W3C
/// trace context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceIds {
    /// The trace's id: 32 hex digits.
    pub trace_id: String,
    /// The span's id: 16 hex digits.
    pub span_id: String,
}

impl TraceIds {
    /// The ids of the innermost span of `scope` (innermost first, as
    /// `event_scope` gives it) that has them.
    pub fn innermost<'a, S, I>(scope: I) -> Option<TraceIds>
    where
        S: LookupSpan<'a> + 'a,
        I: IntoIterator<Item = SpanRef<'a, S>>,
    {
        scope
            .into_iter()
            .find_map(|span| span.extensions().get::<TraceIds>().cloned())
    }
}

/// The layer that gives each span its [`TraceIds`] when first entered,
/// from the OpenTelemetry layer beneath it.
#[derive(Default)]
pub(crate) struct RecordIds {
    dispatch: OnceLock<WeakDispatch>,
}

impl<S> Layer<S> for RecordIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        if span.extensions().get::<TraceIds>().is_some() {
            return;
        }
        let Some(dispatch) = self.dispatch.get().and_then(WeakDispatch::upgrade) else {
            return;
        };
        let Some(context) = tracing_opentelemetry::get_otel_context(id, &dispatch) else {
            return;
        };
        let otel = context.span();
        let ids = otel.span_context();
        if ids.is_valid() {
            span.extensions_mut().insert(TraceIds {
                trace_id: ids.trace_id().to_string(),
                span_id: ids.span_id().to_string(),
            });
        }
    }
}
