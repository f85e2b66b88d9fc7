//! A randomized history: clients read, write, delete and re-create keys
//! (with and without contexts) while a nemesis kills (-9), pauses, cuts
//! off, adds and removes nodes, with tombstones purged after one second.
//! After healing it checks, for every key, on every node:
//! - every node returns the same values;
//! - no value a later acknowledged operation superseded (one its read
//!   returned, so its context covered it) is back: no deleted value returns;
//! - every acknowledged value nothing superseded is there: no acknowledged
//!   write lost, so the last acknowledged write of a key is readable;
//! - all Merkle roots agree.
//!
//! `DYNAMO_HISTORY_SECS` sets how long faults are injected (default 30, as
//! in CI); `DYNAMO_HISTORY_SEED` replays a history's random choices.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dynamo_testkit::http::{CONTEXT, decode_values};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;

use crate::support::{ClusterOptions, TestCluster, fast};

/// Keys written, each by one client in sequence.
const KEYS: usize = 32;

/// What happened to one key, as its client saw it.
#[derive(Default)]
struct KeyLog {
    /// Values of acknowledged writes.
    acked: BTreeSet<String>,
    /// Values returned by the read of an acknowledged operation that
    /// carried its context: that operation superseded them.
    superseded: BTreeSet<String>,
    /// Values returned by the read of an operation never acknowledged: it
    /// may or may not have superseded them.
    maybe_superseded: BTreeSet<String>,
    /// Operations done.
    ops: usize,
}

/// Client URLs of the members of the current ring, which clients use.
type Urls = Arc<Mutex<Vec<String>>>;

fn seconds(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A GET as JSON with a short timeout: (status, context, values), or
/// `None` when the node did not answer.
async fn read(
    http: &reqwest::Client,
    url: &str,
    key: &str,
) -> Option<(StatusCode, Option<String>, BTreeSet<String>)> {
    let r = http
        .get(format!("{url}/v1/kv/{key}"))
        .header("accept", "application/json")
        .send()
        .await
        .ok()?;
    let status = r.status();
    let context = r
        .headers()
        .get(CONTEXT)
        .map(|v| v.to_str().unwrap().to_string());
    let values = match status {
        StatusCode::OK | StatusCode::MULTIPLE_CHOICES => {
            decode_values(&r.json().await.ok()?).into_iter().collect()
        }
        StatusCode::NOT_FOUND => BTreeSet::new(),
        _ => return None,
    };
    Some((status, context, values))
}

/// PUT (`Some` value) or DELETE with an optional context; whether it was
/// acknowledged.
async fn write(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    value: Option<&str>,
    context: Option<&str>,
) -> bool {
    let url = format!("{url}/v1/kv/{key}");
    let mut request = match value {
        Some(value) => http.put(url).body(value.to_string()),
        None => http.delete(url),
    };
    if let Some(context) = context {
        request = request.header(CONTEXT, context);
    }
    request.send().await.is_ok_and(|r| r.status().is_success())
}

/// One client: operations on `key` in sequence until `stop`, each retried
/// (with a fresh value per attempt) until acknowledged or given up.
async fn client(key: String, urls: Urls, stop: Arc<AtomicBool>, seed: u64) -> KeyLog {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut log = KeyLog::default();
    while !stop.load(Ordering::SeqCst) {
        let pick = |rng: &mut StdRng| {
            let urls = urls.lock().unwrap();
            urls[rng.random_range(0..urls.len())].clone()
        };
        // 0: blind write, 1-2: read-modify-write, 3: delete.
        let kind = rng.random_range(0..4u8);
        let read_first = kind != 0 && rng.random_bool(0.9);
        let (context, seen) = match read_first {
            true => match read(&http, &pick(&mut rng), &key).await {
                Some((_, context, values)) => (context, values),
                None => continue,
            },
            false => (None, BTreeSet::new()),
        };
        let delete = kind == 3 && context.is_some();
        let mut acked = false;
        for attempt in 0..20 {
            let value = format!("{key}-{}-{attempt}", log.ops);
            let value = (!delete).then_some(value);
            let url = pick(&mut rng);
            if write(&http, &url, &key, value.as_deref(), context.as_deref()).await {
                log.acked.extend(value);
                acked = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if context.is_some() {
            match acked {
                true => log.superseded.extend(seen),
                false => log.maybe_superseded.extend(seen),
            }
        }
        log.ops += 1;
        // Half the deletes rest long enough for the tombstone to be purged
        // before the key is re-created.
        let pause = match delete && acked && rng.random_bool(0.5) {
            true => rng.random_range(1500..3500),
            false => rng.random_range(0..40),
        };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    log
}

/// The fault in force, undone by [`heal`].
enum Fault {
    Killed(usize),
    Paused(usize),
    Cut(usize),
}

async fn heal(c: &mut TestCluster, fault: Fault) {
    match fault {
        Fault::Killed(i) => c.restart(i).await,
        Fault::Paused(i) => c.pause(i, false),
        Fault::Cut(i) => c.isolate(i, false),
    }
}

/// Injects faults one at a time for `duration`: kill -9, SIGSTOP, cut
/// off, plus one join and one removal, keeping `members` (node indexes)
/// and the clients' `urls` in step with the ring.
async fn nemesis(
    c: &mut TestCluster,
    members: &mut Vec<usize>,
    urls: &Urls,
    duration: Duration,
    rng: &mut StdRng,
) {
    let started = Instant::now();
    let mut joined = false;
    let mut removed = false;
    while started.elapsed() < duration {
        let current = members.clone();
        let victim = current[rng.random_range(0..current.len())];
        let third = started.elapsed() > duration / 3;
        if third && !joined {
            joined = true;
            let i = c.start_joining_node().await;
            c.admit(current[0], i).await;
            members.push(i);
            eprintln!("nemesis: node {i} joined");
        } else if started.elapsed() > duration * 2 / 3 && !removed {
            let via = *current.iter().find(|&&i| i != victim).unwrap();
            c.retire(via, victim).await;
            members.retain(|&i| i != victim);
            removed = true;
            eprintln!("nemesis: node {victim} removed");
        } else {
            let fault = match rng.random_range(0..3u8) {
                0 => {
                    c.kill(victim);
                    Fault::Killed(victim)
                }
                1 => {
                    c.pause(victim, true);
                    Fault::Paused(victim)
                }
                _ => {
                    c.isolate(victim, true);
                    Fault::Cut(victim)
                }
            };
            tokio::time::sleep(Duration::from_millis(rng.random_range(1000..5000))).await;
            heal(c, fault).await;
        }
        *urls.lock().unwrap() = members.iter().map(|&i| c.url(i)).collect();
        tokio::time::sleep(Duration::from_millis(rng.random_range(1000..4000))).await;
    }
}

/// Every check on `key` through every member; the failures found.
async fn check_key(c: &TestCluster, members: &[usize], key: &str, log: &KeyLog) -> Vec<String> {
    let mut answers: Vec<BTreeSet<String>> = Vec::new();
    for &i in members {
        let (_, _, values) = c.get_json(i, key, "?r=3").await;
        answers.push(values.into_iter().collect());
    }
    let mut failures = Vec::new();
    if answers.iter().any(|a| a != &answers[0]) {
        failures.push(format!("{key}: nodes disagree: {answers:?}"));
    }
    let live = &answers[0];
    for ghost in live.intersection(&log.superseded) {
        failures.push(format!("{key}: superseded value {ghost} is back"));
    }
    for value in &log.acked {
        let gone = log.superseded.contains(value) || log.maybe_superseded.contains(value);
        if !gone && !live.contains(value) {
            failures.push(format!("{key}: acknowledged {value} lost (live: {live:?})"));
        }
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_randomized_history_of_deletes_and_re_creates_under_faults() {
    let seed = seconds("DYNAMO_HISTORY_SEED", rand::random_range(0..1_000_000));
    let duration = Duration::from_secs(seconds("DYNAMO_HISTORY_SECS", 30));
    eprintln!("history seed {seed}, {duration:?} of faults");
    let mut rng = StdRng::seed_from_u64(seed);
    let options = ClusterOptions {
        extra: fast(&[
            "--tombstone-min-age-secs",
            "1",
            "--tombstone-scan-interval-ms",
            "500",
        ]),
        proxies: true,
        ..ClusterOptions::default()
    };
    let mut c = TestCluster::start_with(5, options).await;
    let mut members: Vec<usize> = (0..5).collect();
    let urls: Urls = Arc::new(Mutex::new(members.iter().map(|&i| c.url(i)).collect()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..KEYS)
        .map(|k| {
            tokio::spawn(client(
                format!("key-{k}"),
                urls.clone(),
                stop.clone(),
                seed.wrapping_add(k as u64 + 1),
            ))
        })
        .collect();
    nemesis(&mut c, &mut members, &urls, duration, &mut rng).await;
    stop.store(true, Ordering::SeqCst);
    let mut logs = HashMap::new();
    for (k, task) in clients.into_iter().enumerate() {
        logs.insert(format!("key-{k}"), task.await.unwrap());
    }
    let ops: usize = logs.values().map(|l| l.ops).sum();
    let acked: usize = logs.values().map(|l| l.acked.len()).sum();
    eprintln!("{ops} operations, {acked} acknowledged writes; members at the end {members:?}");

    c.wait_converged(&members).await;
    let mut failures = Vec::new();
    for (key, log) in &logs {
        failures.extend(check_key(&c, &members, key, log).await);
    }
    // Purges keep running: a second look, a few sweeps later.
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.wait_converged(&members).await;
    for (key, log) in &logs {
        failures.extend(check_key(&c, &members, key, log).await);
    }
    let mut purged = 0;
    for &i in &members {
        purged += c.status(i).await["tombstones"]["purged"].as_u64().unwrap();
    }
    eprintln!("{purged} tombstones purged");
    assert!(purged > 0, "the history exercised purging");
    assert!(
        failures.is_empty(),
        "seed {seed}: {} failures: {failures:#?}",
        failures.len()
    );
}
