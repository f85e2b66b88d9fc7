//! The node's log lines: text or JSON on stderr, each naming the node
//! that wrote it, with ANSI colour only when stderr is a terminal.
//!
//! Text lines read `TIMESTAMP LEVEL node=ID TARGET: MESSAGE FIELDS`; JSON
//! lines are objects with `timestamp`, `level`, `node`, `target` and
//! `fields` (the message and the event's fields), and `trace_id` and
//! `span_id` when written inside a traced span (a client request, or a
//! peer's request on its behalf).
//!
//! Spans are traced ([`node_tracing`]) when an OTLP endpoint is configured,
//! and exported there; with JSON lines and no endpoint they are traced
//! too, only to give the lines their trace ids.

use std::fmt::{self, Debug, Write as _};
use std::io::IsTerminal;

use dynamo_telemetry::{KeyValue, TraceIds, Tracing};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The format `DYNAMO_LOG_FORMAT` names (`json`, else text), for
    /// commands without a `--log-format` flag.
    pub fn from_env() -> Self {
        match std::env::var("DYNAMO_LOG_FORMAT") {
            Ok(format) if format == "json" => LogFormat::Json,
            _ => LogFormat::Text,
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// The service name a node's spans carry.
pub const SERVICE: &str = "dynamo-node";

/// Installs the process's logger: `RUST_LOG` filters (default `info`),
/// lines go to stderr in `format`, naming `node` when given (a process
/// that is no node, such as `dynamo-node local`, names none). With
/// `tracing`, spans are traced too (whatever `RUST_LOG` says).
pub fn init(format: LogFormat, node: Option<&str>, tracing: Option<&Tracing>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(format == LogFormat::Text && std::io::stderr().is_terminal())
        .event_format(LineFormat::new(format, node))
        .with_filter(filter);
    tracing_subscriber::registry()
        .with(tracing.map(Tracing::layer))
        .with(lines)
        .init();
}

/// A node's tracing (see the module's doc): spans exported to `endpoint`
/// (an OTLP/HTTP base URL) or where OpenTelemetry's variables say, or,
/// with JSON lines, kept only for their trace ids; `None` when neither.
/// Spans name the node and its zone.
pub fn node_tracing(
    format: LogFormat,
    endpoint: Option<&str>,
    node: Option<&str>,
    zone: &str,
) -> anyhow::Result<Option<Tracing>> {
    if !dynamo_telemetry::otlp_configured(endpoint) && format != LogFormat::Json {
        return Ok(None);
    }
    let mut attributes = vec![KeyValue::new("dynamo.zone", zone.to_string())];
    if let Some(node) = node {
        attributes.push(KeyValue::new("service.instance.id", node.to_string()));
        attributes.push(KeyValue::new("dynamo.node", node.to_string()));
    }
    Tracing::start(SERVICE, attributes, endpoint).map(Some)
}

/// Formats one event as a line of the chosen format.
pub struct LineFormat {
    format: LogFormat,
    node: Option<String>,
}

impl LineFormat {
    /// Lines in `format` naming `node`.
    pub fn new(format: LogFormat, node: Option<&str>) -> Self {
        Self {
            format,
            node: node.map(str::to_string),
        }
    }
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        match self.format {
            LogFormat::Text => self.text(ctx, writer, event),
            LogFormat::Json => self.json(ctx, writer, event),
        }
    }
}

impl LineFormat {
    fn text<S, N>(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        let meta = event.metadata();
        SystemTime.format_time(&mut writer)?;
        let level = *meta.level();
        match writer.has_ansi_escapes() {
            true => write!(writer, " \x1b[{}m{level:>5}\x1b[0m", colour(level))?,
            false => write!(writer, " {level:>5}")?,
        }
        if let Some(node) = &self.node {
            write!(writer, " node={node}")?;
        }
        write!(writer, " {}: ", meta.target())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }

    fn json<S, N>(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        let meta = event.metadata();
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        let mut line = Map::new();
        line.insert("timestamp".into(), timestamp.into());
        line.insert("level".into(), meta.level().as_str().into());
        if let Some(node) = &self.node {
            line.insert("node".into(), node.as_str().into());
        }
        line.insert("target".into(), meta.target().into());
        line.insert("fields".into(), Value::Object(fields.0));
        if let Some(ids) = ctx.event_scope().and_then(TraceIds::innermost) {
            line.insert("trace_id".into(), ids.trace_id.into());
            line.insert("span_id".into(), ids.span_id.into());
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// The ANSI colour code of a level's name.
fn colour(level: Level) -> u8 {
    match level {
        Level::ERROR => 31,
        Level::WARN => 33,
        Level::INFO => 32,
        Level::DEBUG => 34,
        Level::TRACE => 35,
    }
}

/// An event's fields as JSON values.
#[derive(Default)]
struct JsonFields(Map<String, Value>);

impl Visit for JsonFields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.0.insert(field.name().into(), text.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
}

/// A log sink tests write lines into and read back.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl Sink {
    /// Everything written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[cfg(test)]
impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What one warning logs in `format`, with or without ANSI.
    fn logged(format: LogFormat, ansi: bool) -> String {
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(ansi)
            .event_format(LineFormat::new(format, Some("n7")))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(peer = "n2", failures = 3u64, "peer is unreachable");
        });
        sink.text()
    }

    #[test]
    fn text_lines_name_the_node_and_colour_only_when_asked() {
        let plain = logged(LogFormat::Text, false);
        assert!(plain.contains(" WARN node=n7 "), "{plain}");
        assert!(plain.contains("peer is unreachable"), "{plain}");
        assert!(plain.contains("failures=3"), "{plain}");
        assert!(!plain.contains('\x1b'), "{plain:?}");
        assert!(logged(LogFormat::Text, true).contains('\x1b'));
    }

    /// The JSON lines of a warning outside any span and of one inside a
    /// span child of the `traceparent` `parent`, with spans traced.
    fn traced_json_lines(parent: &str) -> Vec<Value> {
        let sink = Sink::default();
        let writer = sink.clone();
        let tracing = node_tracing(LogFormat::Json, None, Some("n7"), "z1")
            .unwrap()
            .expect("JSON lines trace spans");
        let lines = tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .event_format(LineFormat::new(LogFormat::Json, Some("n7")));
        let subscriber = tracing_subscriber::registry()
            .with(tracing.layer())
            .with(lines);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!("outside");
            let span = tracing::info_span!("request");
            dynamo_telemetry::TraceParent::parse(parent)
                .unwrap()
                .adopt(&span);
            span.in_scope(|| tracing::warn!("inside"));
        });
        let text = sink.text();
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[test]
    fn json_lines_in_a_traced_span_carry_its_trace_id() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let lines = traced_json_lines(parent);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["fields"]["message"], "outside");
        assert!(lines[0].get("trace_id").is_none(), "{}", lines[0]);
        assert_eq!(lines[1]["fields"]["message"], "inside");
        assert_eq!(lines[1]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        let span_id = lines[1]["span_id"].as_str().unwrap();
        assert!(
            span_id.len() == 16 && span_id != "00f067aa0ba902b7",
            "{span_id}"
        );
    }

    #[test]
    fn text_lines_alone_trace_nothing() {
        assert!(
            node_tracing(LogFormat::Text, None, Some("n7"), "z1")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn json_lines_carry_the_node_and_the_fields() {
        let line: Value = serde_json::from_str(logged(LogFormat::Json, false).trim()).unwrap();
        assert_eq!(line["node"], "n7");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["fields"]["message"], "peer is unreachable");
        assert_eq!(line["fields"]["peer"], "n2");
        assert_eq!(line["fields"]["failures"], 3);
    }
}
