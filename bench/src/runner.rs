//! A whole run: start-up checks, the optional prefill, the workers with
//! their connections, one progress line per second, and the report.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::HeaderValue;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{Connection, Reply, RequestError, Target, TargetUrl};
use crate::contexts::ContextCache;
use crate::monitor::{Monitor, Watched};
use crate::report::{ErrorKind, OpStats, Outcome, Report, RunInfo, Stats};
use crate::schedule::{Limit, Pacing, Schedule, Slot};
use crate::workload::{KeyChooser, KeyDist, KeyPaths, Op, OpMix, Workload, make_value};

/// Everything a run needs besides the URLs, already validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Operation kinds.
    pub workload: Workload,
    /// Share of reads in a mixed workload, `0..=1`.
    pub read_ratio: f64,
    /// Key space size, at least 1.
    pub keys: u64,
    /// Key names are `{key_prefix}{i}`.
    pub key_prefix: String,
    /// Key distribution.
    pub dist: KeyDist,
    /// Zipf exponent, finite and non-negative.
    pub zipf_exponent: f64,
    /// Bytes per value.
    pub value_size: usize,
    /// Connections (workers), at least 1.
    pub concurrency: usize,
    /// When the measured phase ends.
    pub limit: Limit,
    /// Unmeasured time before it.
    pub warmup: Duration,
    /// Open-loop rate in ops/s; `None` for a closed loop.
    pub rate: Option<f64>,
    /// Write every key once before the run.
    pub prefill: bool,
    /// Writes carry no context (see `--blind-writes`).
    pub blind_writes: bool,
    /// `?r=` on reads.
    pub r: Option<u32>,
    /// `?w=` on writes.
    pub w: Option<u32>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Processes to report CPU and memory of, besides this one.
    pub monitor: Vec<Watched>,
}

/// What workers share: how to pick and phrase operations.
struct Plan {
    mix: OpMix,
    keys: KeyChooser,
    paths: KeyPaths,
    value: Bytes,
    /// Contexts for plain writes; `None` with `--blind-writes`.
    contexts: Option<ContextCache>,
}

impl Plan {
    /// PUT the plan's value under `key` with the key's last context, and
    /// remember the context the store returns.
    async fn write(
        &self,
        connection: &mut Connection,
        path: &mut String,
        key: u64,
    ) -> Result<Reply, RequestError> {
        let context = self.contexts.as_ref().and_then(|c| c.get(key));
        let result = self.put(connection, path, key, context).await;
        if let (Some(contexts), Ok(reply)) = (&self.contexts, &result)
            && reply.status.is_success()
        {
            contexts.set(key, reply.context.clone());
        }
        result
    }

    /// PUT the plan's value under `key` with `context`.
    async fn put(
        &self,
        connection: &mut Connection,
        path: &mut String,
        key: u64,
        context: Option<HeaderValue>,
    ) -> Result<Reply, RequestError> {
        connection
            .put(
                self.paths.write_path(path, key),
                self.value.clone(),
                context,
            )
            .await
    }
}

/// Counters for the progress lines, over all phases.
#[derive(Default)]
struct Progress {
    ops: AtomicU64,
    errors: AtomicU64,
}

impl Progress {
    fn add(&self, outcome: Outcome) {
        self.ops.fetch_add(1, Ordering::Relaxed);
        if matches!(outcome, Outcome::Error(_)) {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs the workload against `urls` and returns the report.
pub async fn run(
    urls: &[TargetUrl],
    token: Option<&str>,
    settings: &Settings,
) -> anyhow::Result<Report> {
    let targets = resolve_and_probe(urls, token, settings.timeout).await?;
    let plan = Arc::new(Plan {
        mix: OpMix::new(settings.workload, settings.read_ratio),
        keys: KeyChooser::new(settings.keys, settings.dist, settings.zipf_exponent)?,
        paths: KeyPaths::new(&settings.key_prefix, settings.r, settings.w),
        value: make_value(settings.value_size),
        contexts: (!settings.blind_writes).then(ContextCache::default),
    });
    let mut watched = vec![Watched::new(std::process::id(), "dynamo-bench")];
    watched.extend(settings.monitor.iter().cloned());

    if settings.prefill {
        prefill(&targets, &plan, settings).await?;
    }
    let connections = connect_all(&targets, settings).await?;

    let pacing = match settings.rate {
        Some(rate) => Pacing::Open { rate },
        None => Pacing::Closed,
    };
    let schedule = Arc::new(Schedule::new(
        Instant::now(),
        settings.warmup,
        settings.limit,
        pacing,
    ));
    let measure_start = schedule.measure_start();
    let monitor = Monitor::start(watched, measure_start);
    let progress = Arc::new(Progress::default());
    let printer = tokio::spawn(print_progress(
        Arc::clone(&progress),
        "run",
        Some(measure_start),
    ));

    let mut workers = JoinSet::new();
    for connection in connections {
        workers.spawn(worker(
            connection,
            Arc::clone(&plan),
            Arc::clone(&schedule),
            Arc::clone(&progress),
        ));
    }
    let mut stats = Stats::default();
    while let Some(done) = workers.join_next().await {
        stats.merge(&done.context("a worker task failed")?);
    }
    let elapsed = Instant::now().saturating_duration_since(measure_start);
    printer.abort();
    let processes = monitor.finish().await;

    let info = RunInfo {
        urls: targets.iter().map(|t| t.url().to_owned()).collect(),
        workload: settings.workload,
        read_ratio: settings.read_ratio,
        keys: settings.keys,
        key_dist: settings.dist,
        zipf_exponent: settings.zipf_exponent,
        value_size: settings.value_size,
        concurrency: settings.concurrency,
        rate: settings.rate,
        warmup: settings.warmup,
    };
    Ok(Report::new(info, &stats, elapsed, processes))
}

/// Resolves every URL (sending `token` with every request, if given) and
/// checks that it answers `GET /readyz` with 200.
async fn resolve_and_probe(
    urls: &[TargetUrl],
    token: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<Vec<Arc<Target>>> {
    let mut targets = Vec::with_capacity(urls.len());
    for url in urls {
        let mut target = url.resolve().await?;
        if let Some(token) = token {
            target = target.with_token(token)?;
        }
        let target = Arc::new(target);
        let mut probe = Connection::new(Arc::clone(&target), timeout);
        let reply = probe
            .get("/readyz")
            .await
            .with_context(|| format!("cannot reach {}", url.as_str()))?;
        if reply.status != http::StatusCode::OK {
            bail!(
                "{} is not ready: GET /readyz answered {}",
                url.as_str(),
                reply.status
            );
        }
        targets.push(target);
    }
    Ok(targets)
}

/// Opens one connection per worker, spread round-robin over the targets.
async fn connect_all(
    targets: &[Arc<Target>],
    settings: &Settings,
) -> anyhow::Result<Vec<Connection>> {
    let mut connections = Vec::with_capacity(settings.concurrency);
    for mut connection in worker_connections(targets, settings) {
        connection
            .connect()
            .await
            .with_context(|| format!("cannot connect to {}", connection.url()))?;
        connections.push(connection);
    }
    Ok(connections)
}

/// `concurrency` connections, spread round-robin over the targets, not yet
/// connected (each connects on first use).
fn worker_connections<'a>(
    targets: &'a [Arc<Target>],
    settings: &Settings,
) -> impl Iterator<Item = Connection> + 'a {
    let timeout = settings.timeout;
    targets
        .iter()
        .cycle()
        .take(settings.concurrency)
        .map(move |target| Connection::new(Arc::clone(target), timeout))
}

/// Writes every key once, untimed, on `concurrency` connections of its own.
async fn prefill(
    targets: &[Arc<Target>],
    plan: &Arc<Plan>,
    settings: &Settings,
) -> anyhow::Result<()> {
    let keys = settings.keys;
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(Progress::default());
    let printer = tokio::spawn(print_progress(Arc::clone(&progress), "prefill", None));
    let mut writers = JoinSet::new();
    for mut connection in worker_connections(targets, settings) {
        let (next, plan, progress) = (Arc::clone(&next), Arc::clone(plan), Arc::clone(&progress));
        writers.spawn(async move {
            let mut path = String::new();
            loop {
                let key = next.fetch_add(1, Ordering::Relaxed);
                if key >= keys {
                    break;
                }
                let result = plan.write(&mut connection, &mut path, key).await;
                progress.add(write_outcome(&result));
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.context("a prefill task failed")?;
    }
    printer.abort();
    let errors = progress.errors.load(Ordering::Relaxed);
    eprintln!(
        "prefill: wrote {keys} keys in {:.1} s, {errors} failed",
        started.elapsed().as_secs_f64()
    );
    if errors == keys {
        bail!("prefill failed: no write succeeded");
    }
    Ok(())
}

/// Prints one line per second to stderr: elapsed time, ops/s over the last
/// second, errors so far. Runs until aborted.
async fn print_progress(progress: Arc<Progress>, label: &str, measure_start: Option<Instant>) {
    let start = Instant::now();
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut last_ops, mut last_at) = (0, start);
    loop {
        let now = tick.tick().await;
        let ops = progress.ops.load(Ordering::Relaxed);
        let errors = progress.errors.load(Ordering::Relaxed);
        let rate = (ops - last_ops) as f64 / (now - last_at).as_secs_f64();
        let phase = match measure_start {
            Some(at) if now < at => " (warmup)",
            _ => "",
        };
        eprintln!(
            "{label} [{:>4.0}s] {rate:>9.0} ops/s, {errors} errors{phase}",
            (now - start).as_secs_f64()
        );
        (last_ops, last_at) = (ops, now);
    }
}

/// Runs slots from the schedule on one connection until the schedule ends.
async fn worker(
    mut connection: Connection,
    plan: Arc<Plan>,
    schedule: Arc<Schedule>,
    progress: Arc<Progress>,
) -> Stats {
    let mut rng = SmallRng::from_os_rng();
    let mut stats = Stats::default();
    let mut path = String::with_capacity(64);
    while let Some(slot) = schedule.next_slot() {
        let start = match slot.intended {
            // On time: wait for the slot and time from the send, so the
            // timer's granularity (about 1 ms) is not counted as latency.
            Some(at) if at > Instant::now() => {
                tokio::time::sleep_until(at).await;
                Instant::now()
            }
            // Already due: every worker was busy, so the wait so far is
            // the server's doing and counts.
            Some(at) => at,
            None => Instant::now(),
        };
        let key = plan.keys.next_key(&mut rng);
        let outcome = match plan.mix.next_op(&mut rng) {
            Op::Read => {
                let result = connection.get(plan.paths.read_path(&mut path, key)).await;
                let outcome = read_outcome(&result);
                record(&mut stats.read, slot, outcome, start);
                outcome
            }
            Op::Write => {
                let result = plan.write(&mut connection, &mut path, key).await;
                let outcome = write_outcome(&result);
                record(&mut stats.write, slot, outcome, start);
                outcome
            }
            Op::ReadModifyWrite => {
                read_modify_write(
                    &mut connection,
                    &plan,
                    &mut path,
                    key,
                    slot,
                    start,
                    &mut stats,
                )
                .await
            }
        };
        progress.add(outcome);
    }
    stats
}

/// GET then PUT with the read's context. The GET and the whole operation
/// are timed from `start` (see [`worker`]); the PUT from when it is sent.
async fn read_modify_write(
    connection: &mut Connection,
    plan: &Plan,
    path: &mut String,
    key: u64,
    slot: Slot,
    start: Instant,
    stats: &mut Stats,
) -> Outcome {
    let result = connection.get(plan.paths.read_path(path, key)).await;
    let read = read_outcome(&result);
    record(&mut stats.read, slot, read, start);
    let context = match (read, result) {
        (Outcome::Ok, Ok(reply)) => reply.context,
        (Outcome::NotFound, _) => None,
        (failed, _) => {
            record(&mut stats.rmw, slot, failed, start);
            return failed;
        }
    };
    let put_start = Instant::now();
    let result = plan.put(connection, path, key, context).await;
    let write = write_outcome(&result);
    record(&mut stats.write, slot, write, put_start);
    record(&mut stats.rmw, slot, write, start);
    write
}

fn record(stats: &mut OpStats, slot: Slot, outcome: Outcome, start: Instant) {
    if slot.measured {
        stats.record(outcome, start.elapsed());
    }
}

/// 200 and 300 (siblings) are successes, 404 is "not found".
fn read_outcome(result: &Result<Reply, RequestError>) -> Outcome {
    match result {
        Ok(reply) => match reply.status.as_u16() {
            200 | 300 => Outcome::Ok,
            404 => Outcome::NotFound,
            code => Outcome::Error(ErrorKind::Status(code)),
        },
        Err(e) => Outcome::Error(e.into()),
    }
}

/// Any 2xx is a success.
fn write_outcome(result: &Result<Reply, RequestError>) -> Outcome {
    match result {
        Ok(reply) if reply.status.is_success() => Outcome::Ok,
        Ok(reply) => Outcome::Error(ErrorKind::Status(reply.status.as_u16())),
        Err(e) => Outcome::Error(e.into()),
    }
}
