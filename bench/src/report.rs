//! Results: per-operation HDR latency histograms and outcome counters, and
//! the final report rendered as text or as one JSON object.
//!
//! # JSON fields
//!
//! ```text
//! urls            [string]   node base URLs the run used
//! workload        string     "write" | "read" | "mixed" | "rmw"
//! read_ratio      number|null  share of reads (mixed only)
//! keys            integer    size of the key space
//! key_dist        string     "uniform" | "zipfian"
//! zipf_exponent   number|null  (zipfian only)
//! value_size      integer    bytes per written value
//! concurrency     integer    connections (= workers)
//! rate            number|null  target ops/s (open loop); null = closed loop
//! warmup_s        number     warmup length, excluded from everything below
//! elapsed_s       number     length of the measured phase
//! total_ops       integer    measured operations (an rmw counts once)
//! ops_per_sec     number     total_ops / elapsed_s
//! errors          integer    operations that failed (an rmw counts once)
//! operations      object     {read, write, rmw}, each:
//!   count         integer    ok + not_found + errors.total
//!   ok            integer    2xx, and 300 (siblings) for reads
//!   not_found     integer    404 answers to reads (not errors)
//!   ops_per_sec   number     count / elapsed_s
//!   latency_ms    object|null  {p50, p90, p99, p999, max, mean} in ms over
//!                            ok and not_found answers; null if none
//!   errors        object     {total, status: {"<code>": n}, connect, timeout, other}
//! processes       [object]   {pid, name, cpu_percent, rss_max_mib,
//!                            rss_end_mib, note}: this process first, then
//!                            every monitored one (values null if unknown)
//! ```
//!
//! In an rmw workload `read` and `write` hold its GETs and PUTs and `rmw`
//! the whole operation; in the other workloads `rmw` has count 0.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::client::RequestError;
use crate::monitor::ProcessUsage;
use crate::workload::{KeyDist, Workload};

/// Lowest latency the histograms track, in microseconds.
const LATENCY_LOW_US: u64 = 1;
/// Highest latency the histograms track (60 s), in microseconds; longer
/// ones are recorded as 60 s.
const LATENCY_HIGH_US: u64 = 60_000_000;

/// Why an operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// An HTTP status that is not a success for this operation.
    Status(u16),
    /// Could not connect.
    Connect,
    /// No answer within the request timeout.
    Timeout,
    /// Anything else (connection reset mid-request, malformed answer).
    Other,
}

impl From<&RequestError> for ErrorKind {
    fn from(e: &RequestError) -> Self {
        match e {
            RequestError::Connect { .. } => Self::Connect,
            RequestError::Timeout(_) => Self::Timeout,
            RequestError::Http(_) | RequestError::Path(_) => Self::Other,
        }
    }
}

/// What one request or operation came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Success.
    Ok,
    /// A read found no live version (404): an answer, not an error.
    NotFound,
    /// Failure.
    Error(ErrorKind),
}

/// Counters and latency histogram of one operation type.
#[derive(Debug, Clone, Default)]
pub struct OpStats {
    /// Created on the first latency: a histogram is ~140 KiB, and each
    /// worker has one per operation type it actually runs.
    latency_us: Option<Histogram<u64>>,
    ok: u64,
    not_found: u64,
    errors: BTreeMap<ErrorKind, u64>,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LATENCY_LOW_US, LATENCY_HIGH_US, 3)
        .expect("constant histogram bounds are valid")
}

impl OpStats {
    /// Records one outcome; its latency goes into the histogram unless it is an error.
    pub fn record(&mut self, outcome: Outcome, latency: Duration) {
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::NotFound => self.not_found += 1,
            Outcome::Error(kind) => {
                *self.errors.entry(kind).or_default() += 1;
                return;
            }
        }
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_us
            .get_or_insert_with(new_histogram)
            .saturating_record(us.max(LATENCY_LOW_US));
    }

    /// Adds another worker's counts.
    pub fn merge(&mut self, other: &OpStats) {
        if let Some(theirs) = &other.latency_us {
            // Both histograms have the same bounds, so adding cannot fail.
            let _ = self
                .latency_us
                .get_or_insert_with(new_histogram)
                .add(theirs);
        }
        self.ok += other.ok;
        self.not_found += other.not_found;
        for (kind, n) in &other.errors {
            *self.errors.entry(*kind).or_default() += n;
        }
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn count(&self) -> u64 {
        self.ok + self.not_found + self.error_count()
    }

    fn report(&self, elapsed_s: f64) -> OpReport {
        let ms = |us: u64| us as f64 / 1000.0;
        let latency_ms = self.latency_us.as_ref().map(|h| LatencyMs {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        });
        let mut errors = ErrorCounts {
            total: self.error_count(),
            ..ErrorCounts::default()
        };
        for (kind, &n) in &self.errors {
            match kind {
                ErrorKind::Status(code) => {
                    errors.status.insert(code.to_string(), n);
                }
                ErrorKind::Connect => errors.connect += n,
                ErrorKind::Timeout => errors.timeout += n,
                ErrorKind::Other => errors.other += n,
            }
        }
        OpReport {
            count: self.count(),
            ok: self.ok,
            not_found: self.not_found,
            ops_per_sec: per_sec(self.count(), elapsed_s),
            latency_ms,
            errors,
        }
    }
}

/// Everything one worker (or, merged, the whole run) measured.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// GETs, including those of rmw operations.
    pub read: OpStats,
    /// PUTs, including those of rmw operations.
    pub write: OpStats,
    /// Whole read-modify-write operations.
    pub rmw: OpStats,
}

impl Stats {
    /// Adds another worker's stats.
    pub fn merge(&mut self, other: &Stats) {
        self.read.merge(&other.read);
        self.write.merge(&other.write);
        self.rmw.merge(&other.rmw);
    }

    /// Measured operations and how many of them failed; an rmw counts once.
    fn totals(&self) -> (u64, u64) {
        if self.rmw.count() > 0 {
            (self.rmw.count(), self.rmw.error_count())
        } else {
            (
                self.read.count() + self.write.count(),
                self.read.error_count() + self.write.error_count(),
            )
        }
    }
}

/// What was run, for the report header.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// Node base URLs.
    pub urls: Vec<String>,
    /// The workload.
    pub workload: Workload,
    /// Share of reads in a mixed workload.
    pub read_ratio: f64,
    /// Size of the key space.
    pub keys: u64,
    /// Key distribution.
    pub key_dist: KeyDist,
    /// Zipf exponent.
    pub zipf_exponent: f64,
    /// Bytes per value.
    pub value_size: usize,
    /// Connections.
    pub concurrency: usize,
    /// Open-loop rate, if any.
    pub rate: Option<f64>,
    /// Warmup length.
    pub warmup: Duration,
}

/// The final report; see the module documentation for the JSON fields.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Node base URLs.
    pub urls: Vec<String>,
    /// The workload.
    pub workload: Workload,
    /// Share of reads (mixed workload only).
    pub read_ratio: Option<f64>,
    /// Size of the key space.
    pub keys: u64,
    /// Key distribution.
    pub key_dist: KeyDist,
    /// Zipf exponent (zipfian only).
    pub zipf_exponent: Option<f64>,
    /// Bytes per value.
    pub value_size: usize,
    /// Connections.
    pub concurrency: usize,
    /// Open-loop rate; `None` for a closed loop.
    pub rate: Option<f64>,
    /// Warmup length in seconds.
    pub warmup_s: f64,
    /// Length of the measured phase in seconds.
    pub elapsed_s: f64,
    /// Measured operations.
    pub total_ops: u64,
    /// Measured operations per second.
    pub ops_per_sec: f64,
    /// Failed operations.
    pub errors: u64,
    /// Per operation type.
    pub operations: Operations,
    /// Resource use of this process and the monitored ones.
    pub processes: Vec<ProcessUsage>,
}

/// Per-operation-type results.
#[derive(Debug, Clone, Serialize)]
pub struct Operations {
    /// GETs.
    pub read: OpReport,
    /// PUTs.
    pub write: OpReport,
    /// Whole read-modify-write operations.
    pub rmw: OpReport,
}

/// Results of one operation type.
#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    /// All completed operations: ok + not_found + errors.
    pub count: u64,
    /// Successes.
    pub ok: u64,
    /// Reads answered 404.
    pub not_found: u64,
    /// `count` per second of the measured phase.
    pub ops_per_sec: f64,
    /// Latency percentiles over successful answers, if there were any.
    pub latency_ms: Option<LatencyMs>,
    /// Failures by kind.
    pub errors: ErrorCounts,
}

/// Latency percentiles in milliseconds (microsecond resolution).
#[derive(Debug, Clone, Serialize)]
pub struct LatencyMs {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Maximum.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// Failures of one operation type by kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ErrorCounts {
    /// All failures.
    pub total: u64,
    /// Unexpected HTTP statuses, keyed by code.
    pub status: BTreeMap<String, u64>,
    /// Connection failures.
    pub connect: u64,
    /// Timeouts.
    pub timeout: u64,
    /// Other failures.
    pub other: u64,
}

fn per_sec(n: u64, elapsed_s: f64) -> f64 {
    if elapsed_s > 0.0 {
        n as f64 / elapsed_s
    } else {
        0.0
    }
}

impl Report {
    /// Builds the report of a run from its merged stats.
    pub fn new(
        info: RunInfo,
        stats: &Stats,
        elapsed: Duration,
        processes: Vec<ProcessUsage>,
    ) -> Self {
        let elapsed_s = elapsed.as_secs_f64();
        let (total_ops, errors) = stats.totals();
        Self {
            urls: info.urls,
            workload: info.workload,
            read_ratio: (info.workload == Workload::Mixed).then_some(info.read_ratio),
            keys: info.keys,
            key_dist: info.key_dist,
            zipf_exponent: (info.key_dist == KeyDist::Zipfian).then_some(info.zipf_exponent),
            value_size: info.value_size,
            concurrency: info.concurrency,
            rate: info.rate,
            warmup_s: info.warmup.as_secs_f64(),
            elapsed_s,
            total_ops,
            ops_per_sec: per_sec(total_ops, elapsed_s),
            errors,
            operations: Operations {
                read: stats.read.report(elapsed_s),
                write: stats.write.report(elapsed_s),
                rmw: stats.rmw.report(elapsed_s),
            },
            processes,
        }
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The report as human-readable text: a header, a row per operation
    /// type, the 404s and errors, and the processes' resource use.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_text(&mut out);
        out
    }

    /// The sections of [`Report::to_text`], separated by blank lines.
    fn write_text(&self, out: &mut String) -> fmt::Result {
        let ops = self.op_rows();
        self.write_header(out)?;
        write_latency_table(out, &ops)?;
        writeln!(out)?;
        write_not_found(out, &ops)?;
        write_errors(out, &ops)?;
        if !self.processes.is_empty() {
            write_processes(out, &self.processes)?;
        }
        Ok(())
    }

    /// What was run, against what, and the totals.
    fn write_header(&self, out: &mut String) -> fmt::Result {
        let workload = match self.read_ratio {
            Some(ratio) => format!("mixed (read ratio {ratio:.2})"),
            None => format!("{:?}", self.workload).to_lowercase(),
        };
        let keys = match self.zipf_exponent {
            Some(s) => format!("{} keys (zipfian, s = {s})", self.keys),
            None => format!("{} keys (uniform)", self.keys),
        };
        let pacing = match self.rate {
            Some(rate) => format!("open loop at {rate} ops/s"),
            None => "closed loop".to_owned(),
        };
        writeln!(out, "workload {workload} against {}", self.urls.join(", "))?;
        writeln!(
            out,
            "{} connections, {pacing}, {keys}, {}-byte values",
            self.concurrency, self.value_size
        )?;
        writeln!(
            out,
            "warmup {:.1} s, measured {:.2} s: {} ops, {:.1} ops/s, {} errors",
            self.warmup_s, self.elapsed_s, self.total_ops, self.ops_per_sec, self.errors
        )
    }

    /// The operation types worth a row: those this workload issues.
    fn op_rows(&self) -> Vec<(&'static str, &OpReport)> {
        let o = &self.operations;
        match self.workload {
            Workload::Read => vec![("read", &o.read)],
            Workload::Write => vec![("write", &o.write)],
            Workload::Mixed => vec![("read", &o.read), ("write", &o.write)],
            Workload::Rmw => vec![("read", &o.read), ("write", &o.write), ("rmw", &o.rmw)],
        }
    }
}

/// A row per operation type: count, rate and latency percentiles.
fn write_latency_table(out: &mut String, ops: &[(&str, &OpReport)]) -> fmt::Result {
    writeln!(
        out,
        "\n{:<6} {:>10} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "op", "count", "ops/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
    )?;
    for (name, op) in ops {
        write!(out, "{name:<6} {:>10} {:>11.1}", op.count, op.ops_per_sec)?;
        match &op.latency_ms {
            Some(l) => writeln!(
                out,
                " {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                l.p50, l.p90, l.p99, l.p999, l.max
            )?,
            None => writeln!(
                out,
                " {:>9} {:>9} {:>9} {:>9} {:>9}",
                "-", "-", "-", "-", "-"
            )?,
        }
    }
    Ok(())
}

/// A line per operation type that had 404 answers.
fn write_not_found(out: &mut String, ops: &[(&str, &OpReport)]) -> fmt::Result {
    for (name, op) in ops {
        if op.not_found > 0 {
            writeln!(out, "{name}: {} not found (404)", op.not_found)?;
        }
    }
    Ok(())
}

/// A line per operation type that failed, with its failures by kind, or
/// `errors: none`.
fn write_errors(out: &mut String, ops: &[(&str, &OpReport)]) -> fmt::Result {
    let failing: Vec<_> = ops.iter().filter(|(_, op)| op.errors.total > 0).collect();
    if failing.is_empty() {
        writeln!(out, "errors: none")?;
    }
    for (name, op) in failing {
        writeln!(
            out,
            "errors ({name}): {} ({})",
            op.errors.total,
            error_kinds(&op.errors)
        )?;
    }
    Ok(())
}

/// `HTTP 503: 1, timeout: 2`: the kinds of failure that occurred, statuses
/// first.
fn error_kinds(e: &ErrorCounts) -> String {
    let mut kinds: Vec<String> = e
        .status
        .iter()
        .map(|(code, n)| format!("HTTP {code}: {n}"))
        .collect();
    for (label, n) in [
        ("connect", e.connect),
        ("timeout", e.timeout),
        ("other", e.other),
    ] {
        if n > 0 {
            kinds.push(format!("{label}: {n}"));
        }
    }
    kinds.join(", ")
}

/// A row per process: pid, CPU and memory, and why a value is missing.
fn write_processes(out: &mut String, processes: &[ProcessUsage]) -> fmt::Result {
    writeln!(
        out,
        "\n{:<20} {:>8} {:>8} {:>12} {:>12}",
        "process", "pid", "cpu %", "rss max MiB", "rss end MiB"
    )?;
    for p in processes {
        write!(
            out,
            "{:<20} {:>8} {:>8} {:>12} {:>12}",
            p.name,
            p.pid,
            one_decimal(p.cpu_percent),
            one_decimal(p.rss_max_mib),
            one_decimal(p.rss_end_mib)
        )?;
        if let Some(note) = &p.note {
            write!(out, "  ({note})")?;
        }
        out.push('\n');
    }
    writeln!(out, "(cpu % is of one core over the measured phase)")
}

/// `v` with one decimal, or `-` when unknown.
fn one_decimal(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(workload: Workload) -> RunInfo {
        RunInfo {
            urls: vec!["http://127.0.0.1:7001".into()],
            workload,
            read_ratio: 0.5,
            keys: 100,
            key_dist: KeyDist::Uniform,
            zipf_exponent: 0.99,
            value_size: 1024,
            concurrency: 4,
            rate: None,
            warmup: Duration::ZERO,
        }
    }

    /// Reads of 1..=1000 ms, one each, plus a 404 and two errors.
    fn known_stats() -> Stats {
        let mut stats = Stats::default();
        for ms in 1..=1000 {
            stats.read.record(Outcome::Ok, Duration::from_millis(ms));
        }
        stats.write.record(Outcome::Ok, Duration::from_micros(500));
        let mut other = Stats::default();
        other
            .read
            .record(Outcome::NotFound, Duration::from_millis(1));
        other
            .write
            .record(Outcome::Error(ErrorKind::Status(503)), Duration::ZERO);
        other
            .write
            .record(Outcome::Error(ErrorKind::Timeout), Duration::ZERO);
        stats.merge(&other);
        stats
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let stats = known_stats();
        let report = Report::new(
            info(Workload::Mixed),
            &stats,
            Duration::from_secs(2),
            vec![],
        );
        let read = &report.operations.read;
        assert_eq!((read.count, read.ok, read.not_found), (1001, 1000, 1));
        let l = read.latency_ms.as_ref().unwrap();
        // 1001 samples: 1 ms twice, then 2..=1000 ms. HDR with 3 significant
        // digits reports values within 0.1%.
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(close(l.p50, 500.0), "p50 {}", l.p50);
        assert!(close(l.p90, 900.0), "p90 {}", l.p90);
        assert!(close(l.p99, 990.0), "p99 {}", l.p99);
        assert!(close(l.p999, 999.0), "p99.9 {}", l.p999);
        assert!(close(l.max, 1000.0), "max {}", l.max);
        let write = &report.operations.write;
        assert_eq!((write.count, write.ok, write.errors.total), (3, 1, 2));
        assert_eq!(write.errors.status.get("503"), Some(&1));
        assert_eq!(write.errors.timeout, 1);
        assert_eq!(report.total_ops, 1004);
        assert_eq!(report.errors, 2);
        assert!((report.ops_per_sec - 502.0).abs() < 1e-9);
        assert!(report.operations.rmw.latency_ms.is_none());
    }

    #[test]
    fn json_has_the_documented_fields() {
        let report = Report::new(
            info(Workload::Mixed),
            &known_stats(),
            Duration::from_secs(1),
            vec![],
        );
        let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        for field in [
            "urls",
            "workload",
            "read_ratio",
            "keys",
            "key_dist",
            "zipf_exponent",
            "value_size",
            "concurrency",
            "rate",
            "warmup_s",
            "elapsed_s",
            "total_ops",
            "ops_per_sec",
            "errors",
            "operations",
            "processes",
        ] {
            assert!(v.get(field).is_some(), "missing {field}");
        }
        assert_eq!(v["workload"], "mixed");
        assert_eq!(v["key_dist"], "uniform");
        assert!(v["zipf_exponent"].is_null());
        assert!(v["rate"].is_null());
        for op in ["read", "write", "rmw"] {
            let o = &v["operations"][op];
            for field in [
                "count",
                "ok",
                "not_found",
                "ops_per_sec",
                "latency_ms",
                "errors",
            ] {
                assert!(o.get(field).is_some(), "missing {op}.{field}");
            }
            for field in ["total", "status", "connect", "timeout", "other"] {
                assert!(
                    o["errors"].get(field).is_some(),
                    "missing {op}.errors.{field}"
                );
            }
        }
        let latency = &v["operations"]["read"]["latency_ms"];
        for field in ["p50", "p90", "p99", "p999", "max", "mean"] {
            assert!(latency[field].is_number(), "missing latency {field}");
        }
        assert_eq!(v["operations"]["write"]["errors"]["status"]["503"], 1);
        assert!(v["operations"]["rmw"]["latency_ms"].is_null());
    }

    #[test]
    fn text_lists_the_workload_ops_and_errors() {
        let report = Report::new(
            info(Workload::Mixed),
            &known_stats(),
            Duration::from_secs(1),
            vec![],
        );
        let text = report.to_text();
        assert!(text.contains("\nread "), "{text}");
        assert!(text.contains("\nwrite "), "{text}");
        assert!(!text.contains("\nrmw "), "{text}");
        assert!(text.contains("read: 1 not found"), "{text}");
        assert!(
            text.contains("errors (write): 2 (HTTP 503: 1, timeout: 1)"),
            "{text}"
        );
    }

    /// A report that takes every branch of `to_text`: a mixed workload over
    /// zipfian keys in an open loop, a 404, errors of every kind, an
    /// operation type without latencies, and processes with missing values.
    fn every_branch_report() -> Report {
        let mut stats = known_stats();
        for kind in [ErrorKind::Status(500), ErrorKind::Connect, ErrorKind::Other] {
            stats.read.record(Outcome::Error(kind), Duration::ZERO);
        }
        let mut run = info(Workload::Rmw);
        run.urls.push("http://127.0.0.1:7002".into());
        run.key_dist = KeyDist::Zipfian;
        run.rate = Some(250.5);
        run.warmup = Duration::from_millis(1500);
        stats
            .rmw
            .record(Outcome::Error(ErrorKind::Timeout), Duration::ZERO);
        let processes = vec![
            ProcessUsage {
                pid: 4242,
                name: "dynamo-bench".into(),
                cpu_percent: Some(12.345),
                rss_max_mib: Some(20.25),
                rss_end_mib: Some(19.0),
                note: None,
            },
            ProcessUsage {
                pid: 77,
                name: "dynamo-node".into(),
                cpu_percent: None,
                rss_max_mib: Some(100.0),
                rss_end_mib: None,
                note: Some("exited or unreadable during the run".into()),
            },
        ];
        Report::new(run, &stats, Duration::from_millis(2500), processes)
    }

    #[test]
    fn text_of_every_branch_is_exact() {
        let want = r#"workload rmw against http://127.0.0.1:7001, http://127.0.0.1:7002
4 connections, open loop at 250.5 ops/s, 100 keys (zipfian, s = 0.99), 1024-byte values
warmup 1.5 s, measured 2.50 s: 1 ops, 0.4 ops/s, 1 errors

op          count       ops/s    p50 ms    p90 ms    p99 ms  p99.9 ms    max ms
read         1004       401.6   500.223   900.095   990.207   999.423  1000.447
write           3         1.2     0.500     0.500     0.500     0.500     0.500
rmw             1         0.4         -         -         -         -         -

read: 1 not found (404)
errors (read): 3 (HTTP 500: 1, connect: 1, other: 1)
errors (write): 2 (HTTP 503: 1, timeout: 1)
errors (rmw): 1 (timeout: 1)

process                   pid    cpu %  rss max MiB  rss end MiB
dynamo-bench             4242     12.3         20.2         19.0
dynamo-node                77        -        100.0            -  (exited or unreadable during the run)
(cpu % is of one core over the measured phase)
"#;
        assert_eq!(every_branch_report().to_text(), want);
    }

    #[test]
    fn text_of_a_mixed_run_without_errors_is_exact() {
        let mut stats = Stats::default();
        for ms in 1..=10 {
            stats.write.record(Outcome::Ok, Duration::from_millis(ms));
        }
        let report = Report::new(
            info(Workload::Mixed),
            &stats,
            Duration::from_secs(1),
            vec![],
        );
        let want = r#"workload mixed (read ratio 0.50) against http://127.0.0.1:7001
4 connections, closed loop, 100 keys (uniform), 1024-byte values
warmup 0.0 s, measured 1.00 s: 10 ops, 10.0 ops/s, 0 errors

op          count       ops/s    p50 ms    p90 ms    p99 ms  p99.9 ms    max ms
read            0         0.0         -         -         -         -         -
write          10        10.0     5.003     9.007    10.007    10.007    10.007

errors: none
"#;
        assert_eq!(report.to_text(), want);
    }

    #[test]
    fn rmw_totals_count_each_operation_once() {
        let mut stats = Stats::default();
        for _ in 0..3 {
            stats.read.record(Outcome::Ok, Duration::from_millis(1));
            stats.write.record(Outcome::Ok, Duration::from_millis(1));
            stats.rmw.record(Outcome::Ok, Duration::from_millis(2));
        }
        stats
            .read
            .record(Outcome::Error(ErrorKind::Connect), Duration::ZERO);
        stats
            .rmw
            .record(Outcome::Error(ErrorKind::Connect), Duration::ZERO);
        let report = Report::new(info(Workload::Rmw), &stats, Duration::from_secs(1), vec![]);
        assert_eq!(report.total_ops, 4);
        assert_eq!(report.errors, 1);
        assert_eq!(report.operations.read.count, 4);
        assert_eq!(report.operations.write.count, 3);
    }
}
