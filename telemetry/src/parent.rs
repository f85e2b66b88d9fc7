//! A span's place in a trace, as it crosses to another process.

use std::fmt;

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C trace context of a span: its trace, itself, and whether the
/// trace is sampled. Both ids are never zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

impl TraceParent {
    /// A context from its parts; `None` when an id is zero (which W3C
    /// trace context makes invalid).
    pub fn new(trace_id: [u8; 16], span_id: [u8; 8], flags: u8) -> Option<Self> {
        let valid = trace_id != [0; 16] && span_id != [0; 8];
        valid.then_some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The trace's id.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The span's id.
    pub fn span_id(&self) -> [u8; 8] {
        self.span_id
    }

    /// The trace flags (bit 0: sampled).
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// The context of `span`, if it belongs to a trace (the process
    /// traces, and the span is enabled).
    pub fn of(span: &Span) -> Option<Self> {
        let context = span.context();
        let otel = context.span();
        let ids = otel.span_context();
        if !ids.is_valid() {
            return None;
        }
        Self::new(
            ids.trace_id().to_bytes(),
            ids.span_id().to_bytes(),
            ids.trace_flags().to_u8(),
        )
    }

    /// The context a `traceparent` header value gives, if it is valid
    /// W3C trace context (version 00, or a later one's first four fields).
    pub fn parse(header: &str) -> Option<Self> {
        let mut fields = header.trim().split('-');
        let version = fields.next()?;
        let (trace_id, span_id, flags) = (fields.next()?, fields.next()?, fields.next()?);
        let well_formed = hex(version, 2)
            && version != "ff"
            && (version != "00" || fields.next().is_none())
            && hex(trace_id, 32)
            && hex(span_id, 16)
            && hex(flags, 2);
        if !well_formed {
            return None;
        }
        Self::new(
            u128::from_str_radix(trace_id, 16).ok()?.to_be_bytes(),
            u64::from_str_radix(span_id, 16).ok()?.to_be_bytes(),
            u8::from_str_radix(flags, 16).ok()?,
        )
    }

    /// Makes `span`, which must not have been entered yet, a child of this
    /// span of another process. Without tracing, nothing happens.
    pub fn adopt(&self, span: &Span) {
        let remote = SpanContext::new(
            TraceId::from_bytes(self.trace_id),
            SpanId::from_bytes(self.span_id),
            TraceFlags::new(self.flags),
            true,
            TraceState::default(),
        );
        let parent = opentelemetry::Context::new().with_remote_span_context(remote);
        if let Err(error) = span.set_parent(parent) {
            tracing::trace!(%error, "span not linked to its remote parent");
        }
    }
}

/// The `traceparent` header value of the context.
impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let trace = TraceId::from_bytes(self.trace_id);
        let span = SpanId::from_bytes(self.span_id);
        write!(f, "00-{trace}-{span}-{:02x}", self.flags)
    }
}

/// Whether `field` is `digits` lowercase hexadecimal digits.
fn hex(field: &str, digits: usize) -> bool {
    field.len() == digits
        && field
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
