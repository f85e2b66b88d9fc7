//! A replica that stops answering (SIGSTOP, as in a long GC pause) or
//! answers slowly (each answer held, as a stalled disk or a busy machine
//! would, while it still answers in time for the failure detector) must
//! not hold requests: coordinators prefer replicas that answer and hedge a
//! read to another replica after a delay derived from recent latencies.
//! An open-loop load on the two healthy nodes keeps its tail (a bound loose
//! enough for a busy CI machine; `scripts/bench.sh` measures the real
//! figures) and loses nothing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dynamo_node::version::{Dot, Object, VersionVector, encode_context};
use dynamo_testkit::http::CONTEXT;
use reqwest::StatusCode;

use crate::support::{ClusterOptions, TestCluster};

/// Keys the load reads and writes.
const KEYS: usize = 200;
/// One operation every this often (200 per second), whatever the answers.
const INTERVAL: Duration = Duration::from_millis(5);
/// The load runs this long; node 2 is slow from `SLOW_AT` for `SLOW`.
const RUN: Duration = Duration::from_secs(8);
const SLOW_AT: Duration = Duration::from_secs(2);
const SLOW: Duration = Duration::from_secs(4);
/// The p99 bound while node 2 is slow (the node-to-node timeout is 2 s).
const P99_BOUND: Duration = Duration::from_millis(250);
/// How long the slow replica holds each answer: well over the bound, well
/// under the timeout (it is never judged down).
const HELD: Duration = Duration::from_millis(400);

/// One operation: when it started (after the load began), how long it
/// took, whether it was a read, and how it ended.
struct Sample {
    started: Duration,
    took: Duration,
    read: bool,
    outcome: Result<StatusCode, String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_replica_does_not_hold_requests_for_the_timeout() {
    let c = TestCluster::start(3, &[]).await;
    let samples = load(&c, |slow| c.pause(2, slow)).await;
    assert_tail(&samples, "stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_that_answers_slowly_is_read_around() {
    let options = ClusterOptions {
        proxies: true,
        ..ClusterOptions::default()
    };
    let c = TestCluster::start_with(3, options).await;
    let held = |slow| c.slow_down(2, if slow { HELD } else { Duration::ZERO });
    let samples = load(&c, held).await;
    assert_tail(&samples, "slow");
}

/// Writes every key, then runs the open-loop load on nodes 0 and 1,
/// calling `slow(true)` at `SLOW_AT` and `slow(false)` `SLOW` later; every
/// operation's sample.
async fn load(c: &TestCluster, slow: impl Fn(bool)) -> Vec<Sample> {
    for k in 0..KEYS {
        let (status, _) = c.put(0, &format!("k{k}"), "v0", None, "?w=3").await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let samples = Arc::new(Mutex::new(Vec::new()));
    let began = Instant::now();
    let mut tasks = Vec::new();
    for n in 0.. {
        let due = INTERVAL * n;
        if due >= RUN {
            break;
        }
        tokio::time::sleep_until((began + due).into()).await;
        if due == SLOW_AT {
            slow(true);
        }
        if due == SLOW_AT + SLOW {
            slow(false);
        }
        let read = n % 2 == 0;
        let url = c.kv(n as usize % 2, &format!("k{}", n as usize % KEYS));
        let (http, samples) = (c.http.clone(), samples.clone());
        tasks.push(tokio::spawn(async move {
            let started = began.elapsed();
            let request = match read {
                true => http.get(url),
                false => http.put(url).body(format!("v{n}")),
            };
            let outcome = request
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .map(|r| r.status())
                .map_err(|e| e.to_string());
            let took = began.elapsed() - started;
            samples.lock().unwrap().push(Sample {
                started,
                took,
                read,
                outcome,
            });
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    std::mem::take(&mut *samples.lock().unwrap())
}

/// No operation failed, and reads and writes started while node 2 was
/// slow kept p99 under [`P99_BOUND`].
fn assert_tail(samples: &[Sample], how: &str) {
    let failed: Vec<String> = samples
        .iter()
        .filter(|s| !matches!(s.outcome, Ok(status) if status.is_success()))
        .map(|s| format!("read {} at {:?}: {:?}", s.read, s.started, s.outcome))
        .collect();
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    for read in [true, false] {
        let mut took: Vec<Duration> = samples
            .iter()
            .filter(|s| s.read == read && (SLOW_AT..SLOW_AT + SLOW).contains(&s.started))
            .map(|s| s.took)
            .collect();
        took.sort();
        let p99 = took[took.len() * 99 / 100];
        let worst = took[took.len() - 1];
        let what = if read { "reads" } else { "writes" };
        eprintln!(
            "{what} while a replica was {how}: {} ops, p99 {p99:?}, max {worst:?}",
            took.len()
        );
        assert!(
            p99 < P99_BOUND,
            "{what}: p99 {p99:?} while a replica was {how} (max {worst:?})"
        );
    }
}

/// A write's coordinator that lags behind what the client read catches up
/// first, and waits for the only replica that can tell it, however slow:
/// a delete acknowledged while the value it was sent to delete survives
/// would be a ghost. Node 0 alone holds a value (written there directly,
/// with anti-entropy too slow to copy it in the test's time) and holds
/// every answer [`HELD`]; node 2 answers at once. A delete through node 1
/// with the context read from node 0 deletes the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lagging_coordinator_waits_for_a_slow_replica_before_superseding() {
    let options = ClusterOptions {
        extra: ["--partitions", "64", "--anti-entropy-interval-ms", "600000"]
            .map(String::from)
            .to_vec(),
        proxies: true,
        ..ClusterOptions::default()
    };
    let c = TestCluster::start_with(3, options).await;
    let key = "only-on-node-0";
    let mut object = Object::new();
    let dot = Dot {
        actor: 7,
        counter: 1,
    };
    object
        .write(
            dot,
            &VersionVector::new(),
            Some(Bytes::from_static(b"doomed")),
        )
        .unwrap();
    c.replica_write(0, key, object).await;
    let context = encode_context(&c.replica(0, key).await.unwrap().context());
    c.slow_down(0, HELD);

    let r = c
        .http
        .delete(c.kv(1, key))
        .header(CONTEXT, &context)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    c.slow_down(0, Duration::ZERO);
    for i in 0..3 {
        let (status, _, values) = c.get_json(i, key, "?r=3").await;
        assert_eq!(
            (status, values),
            (StatusCode::NOT_FOUND, vec![]),
            "node {i} still reads the value the delete was sent to delete"
        );
    }
}
