//! `dynamo-bench`: a load generator for the store's HTTP API, in the spirit
//! of cassandra-stress and redis-benchmark, plus a trivial one-hop server to
//! measure the cost of HTTP itself on the same machine.
//!
//! The generator usually shares a small machine with the cluster it
//! measures, so it keeps its own cost per request low: each worker owns one
//! keep-alive HTTP/1.1 connection made with hyper's low-level client
//! (`hyper::client::conn::http1`), and by default all workers run on a
//! single-threaded tokio runtime. Against `baseline` on 2 cores that costs
//! about 10 µs of CPU per request, against 16 to 24 µs for reqwest's pooled
//! client, and a multi-threaded runtime adds 1 to 3 µs more.
//!
//! Modules: [`workload`] (op mix, keys, values), [`client`] (URLs and
//! connections), [`schedule`] (closed and open loop), [`runner`] (a whole
//! run), [`report`] (histograms, text and JSON), [`monitor`] (/proc
//! sampling), [`baseline`] (the one-hop server and the mode that runs it).

mod baseline;
mod client;
mod contexts;
mod monitor;
mod report;
mod runner;
mod schedule;
mod workload;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::client::TargetUrl;
use crate::monitor::Watched;
use crate::report::Report;
use crate::runner::Settings;
use crate::schedule::Limit;
use crate::workload::{KeyDist, Workload};

/// Default measured duration when neither `--duration` nor `--ops` is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(30);
/// Longest accepted duration (warmup, measured phase, timeout).
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
/// Most connections a run may open.
const MAX_CONCURRENCY: usize = 10_000;
/// Most runtime threads.
const MAX_THREADS: usize = 256;
/// Largest value (1 GiB).
const MAX_VALUE_SIZE: usize = 1 << 30;

const JSON_FIELDS: &str = "\
JSON output (-o json) is one object:
  urls, workload, read_ratio (mixed only, else null), keys, key_dist,
  zipf_exponent (zipfian only, else null), value_size, concurrency,
  rate (null = closed loop), warmup_s, elapsed_s (measured phase),
  total_ops (an rmw counts once), ops_per_sec, errors,
  operations: {read, write, rmw}, each
    {count, ok, not_found, ops_per_sec,
     latency_ms: {p50, p90, p99, p999, max, mean} or null,
     errors: {total, status: {\"<code>\": n}, connect, timeout, other}},
  processes: [{pid, name, cpu_percent, rss_max_mib, rss_end_mib, note}]
    (this process first, then each monitored one).
count = ok + not_found + errors.total. Reads: 200 and 300 (siblings) are ok,
404 is not_found (not an error). Writes: any 2xx is ok. Latency covers ok
and not_found answers. In an open loop (--rate) a request that is already
due when a worker takes it (all workers were busy) is timed from its
intended start, so coordinated omission does not hide a stalled server; one
a worker waits for is timed from its send. In an rmw workload read and write
hold its GETs and PUTs and rmw the whole operation.";

const EXAMPLES: &str = "\
Examples:
  # 30 s of 50/50 reads and writes over a 3-node local cluster
  dynamo-bench run --url http://127.0.0.1:7001 --url http://127.0.0.1:7002 --url http://127.0.0.1:7003
  # zipfian reads of existing keys at a fixed 5000 ops/s, as JSON
  dynamo-bench run --url http://127.0.0.1:7001 --workload read --prefill --dist zipfian --rate 5000 -o json
  # the same machine's cost of one HTTP hop, to compare with
  dynamo-bench baseline --duration 10s --workload read";

/// Load generator for the Dynamo-style store's HTTP API: closed- or
/// open-loop workloads with HDR latency percentiles, plus a one-hop
/// baseline server to compare against.
#[derive(Debug, Parser)]
#[command(name = "dynamo-bench", version, propagate_version = true, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a workload against running nodes.
    #[command(after_long_help = JSON_FIELDS)]
    Run(RunArgs),
    /// Measure one HTTP hop: start `baseline-server` as a child process on a
    /// free loopback port and run the workload against it.
    #[command(after_long_help = JSON_FIELDS)]
    Baseline(LoadArgs),
    /// Serve a trivial one-hop API: GET /v1/kv/{key} answers 200 with a
    /// fixed body, PUT and DELETE answer 204, GET /readyz answers 200.
    BaselineServer(ServerArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Node base URL, e.g. http://127.0.0.1:7001; repeat for several nodes
    /// (connections are spread round-robin over them).
    #[arg(long = "url", value_name = "URL", required = true, value_parser = parse_url)]
    urls: Vec<TargetUrl>,
    /// Bearer token sent with every request, for nodes run with
    /// `--auth-dir` (a client token; on Kubernetes, `client-token` of the
    /// Secret `<cluster>-auth`).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "DYNAMO_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Debug, Args)]
struct LoadArgs {
    /// Operations to issue.
    #[arg(long, value_enum, default_value_t = Workload::Mixed)]
    workload: Workload,

    /// Share of reads in the mixed workload, 0 to 1.
    #[arg(long, value_name = "F", default_value_t = 0.5, value_parser = parse_ratio)]
    read_ratio: f64,

    /// Number of distinct keys.
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    keys: u64,

    /// Key names are PREFIX followed by the key number.
    #[arg(long, value_name = "PREFIX", default_value = "key-")]
    key_prefix: String,

    /// Key popularity.
    #[arg(long, value_enum, default_value_t = KeyDist::Uniform)]
    dist: KeyDist,

    /// Exponent s of the zipfian distribution (key i has weight 1/(i+1)^s).
    #[arg(long, value_name = "S", default_value_t = 0.99, value_parser = parse_exponent)]
    zipf_exponent: f64,

    /// Bytes per written value (generated once, pseudo-random).
    #[arg(long, value_name = "BYTES", default_value_t = 1024, value_parser = parse_value_size)]
    value_size: usize,

    /// Connections, one worker each.
    #[arg(short, long, value_name = "C", default_value_t = 32, value_parser = parse_concurrency)]
    concurrency: usize,

    /// Length of the measured phase, e.g. 30s, 2m, or plain seconds
    /// [default: 30s unless --ops is given].
    #[arg(short, long, value_name = "TIME", value_parser = parse_positive_duration, conflicts_with = "ops")]
    duration: Option<Duration>,

    /// Measured operations in total, instead of --duration (an rmw counts once).
    #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    ops: Option<u64>,

    /// Unmeasured time before the measured phase.
    #[arg(long, value_name = "TIME", default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,

    /// Open loop at R operations per second in total, at fixed intervals; a
    /// request sent late because every worker was busy is timed from its
    /// intended start (no coordinated omission). Without it: closed loop,
    /// as fast as the server answers.
    #[arg(long, value_name = "R", value_parser = parse_rate)]
    rate: Option<f64>,

    /// Write every key once before the run (concurrently, not measured).
    #[arg(long)]
    prefill: bool,

    /// Send writes without a context. By default a write carries the
    /// context the last write of the same key returned, so it replaces the
    /// value like a client's overwrite; a blind write supersedes nothing and
    /// adds a sibling to a key that has a value.
    #[arg(long)]
    blind_writes: bool,

    /// Read quorum for each read, sent as ?r=N.
    #[arg(long = "r", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    r: Option<u32>,

    /// Write quorum for each write, sent as ?w=N.
    #[arg(long = "w", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    w: Option<u32>,

    /// Per-request timeout.
    #[arg(long, value_name = "TIME", default_value = "10s", value_parser = parse_positive_duration)]
    timeout: Duration,

    /// Also report CPU % and RSS of this process over the measured phase
    /// (repeatable), e.g. the nodes under test.
    #[arg(long = "monitor-pid", value_name = "PID")]
    monitor_pids: Vec<u32>,

    /// Runtime threads of this load generator. 1 (the default) runs every
    /// worker on one thread, which costs the least CPU per request and
    /// leaves the other cores to the system under test.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_threads)]
    threads: usize,

    /// Report format on stdout.
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Human-readable table.
    Text,
    /// One JSON object (fields listed in --help).
    Json,
}

#[derive(Debug, Args)]
struct ServerArgs {
    /// Address to listen on (port 0 picks a free one; the address is
    /// printed as "listening on ADDR").
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7100")]
    listen: SocketAddr,

    /// Bytes in the body of every GET answer.
    #[arg(long, value_name = "BYTES", default_value_t = 1024, value_parser = parse_value_size)]
    value_size: usize,
}

fn parse_url(s: &str) -> Result<TargetUrl, String> {
    TargetUrl::parse(s).map_err(|e| e.to_string())
}

fn parse_number(s: &str) -> Result<f64, String> {
    s.parse().map_err(|_| format!("{s:?} is not a number"))
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    let f = parse_number(s)?;
    if (0.0..=1.0).contains(&f) {
        Ok(f)
    } else {
        Err(format!("{s} is outside 0..=1"))
    }
}

fn parse_exponent(s: &str) -> Result<f64, String> {
    let f = parse_number(s)?;
    if f.is_finite() && f >= 0.0 {
        Ok(f)
    } else {
        Err(format!("{s} must be a finite number >= 0"))
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let f = parse_number(s)?;
    if f.is_finite() && f > 0.0 {
        Ok(f)
    } else {
        Err(format!(
            "{s} must be a positive number of operations per second"
        ))
    }
}

/// A whole number in `range`.
fn parse_count(s: &str, range: std::ops::RangeInclusive<usize>) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number"))?;
    if range.contains(&n) {
        Ok(n)
    } else if n < *range.start() {
        Err(format!("must be at least {}", range.start()))
    } else {
        Err(format!("must be at most {}", range.end()))
    }
}

fn parse_concurrency(s: &str) -> Result<usize, String> {
    parse_count(s, 1..=MAX_CONCURRENCY)
}

fn parse_threads(s: &str) -> Result<usize, String> {
    parse_count(s, 1..=MAX_THREADS)
}

fn parse_value_size(s: &str) -> Result<usize, String> {
    parse_count(s, 0..=MAX_VALUE_SIZE)
}

/// A duration as humantime text (`30s`, `1m30s`, `500ms`) or plain seconds
/// (`2.5`), at most [`MAX_DURATION`].
fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = match s.parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("{s} is not a valid number of seconds"))?,
        Err(_) => humantime::parse_duration(s)
            .map_err(|e| format!("{s:?}: {e} (try e.g. 30s, 2m or 1.5)"))?,
    };
    if d > MAX_DURATION {
        Err("must be at most 365 days".to_owned())
    } else {
        Ok(d)
    }
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        Err("must be longer than zero".to_owned())
    } else {
        Ok(d)
    }
}

impl LoadArgs {
    fn into_settings(self) -> anyhow::Result<Settings> {
        let limit = match (self.ops, self.duration) {
            (Some(n), _) => Limit::Ops(n),
            (None, Some(d)) => Limit::Duration(d),
            (None, None) => Limit::Duration(DEFAULT_DURATION),
        };
        let monitor = self
            .monitor_pids
            .iter()
            .map(|&pid| Watched::existing(pid))
            .collect::<anyhow::Result<_>>()?;
        Ok(Settings {
            workload: self.workload,
            read_ratio: self.read_ratio,
            keys: self.keys,
            key_prefix: self.key_prefix,
            dist: self.dist,
            zipf_exponent: self.zipf_exponent,
            value_size: self.value_size,
            concurrency: self.concurrency,
            limit,
            warmup: self.warmup,
            rate: self.rate,
            prefill: self.prefill,
            blind_writes: self.blind_writes,
            r: self.r,
            w: self.w,
            timeout: self.timeout,
            monitor,
        })
    }
}

fn print_report(report: &Report, output: Output) {
    match output {
        Output::Text => print!("{}", report.to_text()),
        Output::Json => println!("{}", report.to_json()),
    }
}

impl Command {
    /// The async runtime this command runs on: the load generator on
    /// `--threads` threads, the baseline server on one per core.
    fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let threads = match self {
            Command::Run(args) => args.load.threads,
            Command::Baseline(load) => load.threads,
            Command::BaselineServer(_) => 0,
        };
        let mut builder = match threads {
            1 => tokio::runtime::Builder::new_current_thread(),
            0 => tokio::runtime::Builder::new_multi_thread(),
            n => {
                let mut builder = tokio::runtime::Builder::new_multi_thread();
                builder.worker_threads(n);
                builder
            }
        };
        builder.enable_all().build()
    }

    async fn execute(self) -> anyhow::Result<()> {
        match self {
            Command::Run(args) => {
                let output = args.load.output;
                let settings = args.load.into_settings()?;
                let report = runner::run(&args.urls, args.token.as_deref(), &settings).await?;
                print_report(&report, output);
            }
            Command::Baseline(load) => {
                let output = load.output;
                let settings = load.into_settings()?;
                let report = baseline::run(&settings).await?;
                print_report(&report, output);
            }
            Command::BaselineServer(server) => {
                baseline::serve(server.listen, server.value_size).await?
            }
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    let command = Cli::parse().command;
    let runtime = match command.runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command.execute()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("dynamo-bench").chain(args.iter().copied()))
    }

    fn load(args: &[&str]) -> LoadArgs {
        match parse(args).unwrap().command {
            Command::Run(run) => run.load,
            Command::Baseline(load) => load,
            Command::BaselineServer(_) => panic!("not a load command"),
        }
    }

    const URL: [&str; 3] = ["run", "--url", "http://127.0.0.1:7001"];

    fn with_url(extra: &[&'static str]) -> Vec<&'static str> {
        URL.iter().chain(extra).copied().collect()
    }

    #[test]
    fn defaults() {
        let l = load(&URL);
        assert_eq!(l.workload, Workload::Mixed);
        assert_eq!(l.read_ratio, 0.5);
        assert_eq!(l.keys, 100_000);
        assert_eq!(l.key_prefix, "key-");
        assert_eq!(l.dist, KeyDist::Uniform);
        assert_eq!(l.zipf_exponent, 0.99);
        assert_eq!(l.value_size, 1024);
        assert_eq!(l.concurrency, 32);
        assert_eq!(l.threads, 1);
        assert_eq!(l.warmup, Duration::from_secs(2));
        assert_eq!(l.output, Output::Text);
        let s = l.into_settings().unwrap();
        assert_eq!(s.limit, Limit::Duration(DEFAULT_DURATION));
        assert_eq!(s.rate, None);
    }

    #[test]
    fn durations_accept_humantime_and_seconds() {
        let s = load(&with_url(&["--duration", "1m30s", "--warmup", "0"]))
            .into_settings()
            .unwrap();
        assert_eq!(s.limit, Limit::Duration(Duration::from_secs(90)));
        assert_eq!(s.warmup, Duration::ZERO);
        let s = load(&with_url(&["--duration", "2.5"]))
            .into_settings()
            .unwrap();
        assert_eq!(s.limit, Limit::Duration(Duration::from_millis(2500)));
        let s = load(&with_url(&["--ops", "10", "--rate", "500"]))
            .into_settings()
            .unwrap();
        assert_eq!((s.limit, s.rate), (Limit::Ops(10), Some(500.0)));
    }

    #[test]
    fn urls_repeat_and_baseline_needs_none() {
        let cli = parse(&with_url(&["--url", "http://localhost:7002"])).unwrap();
        let Command::Run(run) = cli.command else {
            panic!("expected run")
        };
        assert_eq!(run.urls.len(), 2);
        assert!(parse(&["baseline", "--ops", "5", "-o", "json"]).is_ok());
        assert!(parse(&["baseline-server", "--listen", "127.0.0.1:0"]).is_ok());
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        let cases: &[&[&'static str]] = &[
            &["--workload", "scan"],
            &["--read-ratio", "1.5"],
            &["--read-ratio", "-0.1"],
            &["--concurrency", "0"],
            &["--threads", "0"],
            &["--concurrency", "10001"],
            &["--value-size", "2000000000"],
            &["--duration", "400days"],
            &["--warmup", "1e30"],
            &["--keys", "0"],
            &["--ops", "0"],
            &["--duration", "0s"],
            &["--duration", "soon"],
            &["--rate", "0"],
            &["--rate", "inf"],
            &["--zipf-exponent", "-1"],
            &["--dist", "pareto"],
            &["--r", "0"],
            &["--ops", "10", "--duration", "5s"],
            &["-o", "xml"],
        ];
        for extra in cases {
            let err = parse(&with_url(extra)).expect_err(&format!("{extra:?} should fail"));
            assert_eq!(err.exit_code(), 2, "{extra:?}");
        }
        for args in [
            &["run"][..],
            &["run", "--url", "https://127.0.0.1:7001"],
            &["run", "--url", "http://127.0.0.1:7001/v1/kv"],
            &["run", "--url", "not a url"],
        ] {
            let err = parse(args).expect_err(&format!("{args:?} should fail"));
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
        let err = parse(&with_url(&["--workload", "scan"])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidValue);
    }

    #[test]
    fn monitoring_a_missing_process_is_an_error() {
        let err = load(&with_url(&["--monitor-pid", "4294967295"]))
            .into_settings()
            .unwrap_err();
        assert!(err.to_string().contains("no such process"), "{err}");
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
