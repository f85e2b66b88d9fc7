//! Hostile clients on real node processes: crafted contexts (extreme
//! counters, other nodes' actors, many actors, through a node that forwards
//! the write) and keys grown by blind writes. Each test checks that the
//! attack gets a JSON 4xx and that afterwards nothing acknowledged is lost:
//! every replica reads the same values and the key's own read context is
//! accepted on a write, through every node.

use dynamo_node::version::{
    Dot, MAX_COUNTER, MAX_OBJECT_BYTES, MAX_SIBLINGS, VersionVector, decode_context, encode_context,
};
use dynamo_testkit::http::CONTEXT;
use reqwest::StatusCode;

use crate::support::TestCluster;

/// Counters no node issues: the extremes of `u64` and above the counter
/// limit.
const IMPOSSIBLE: [u64; 3] = [u64::MAX, u64::MAX - 1, MAX_COUNTER + 1];

/// A counter below the limit that no node of a fresh cluster has reached.
const NEVER_ISSUED: u64 = 1 << 40;

/// Replicas per key (N, the default of at most three).
fn replicas(c: &TestCluster) -> usize {
    c.nodes.len().min(3)
}

/// A PUT's status and error code (empty on success), and its context.
async fn put(
    c: &TestCluster,
    via: usize,
    key: &str,
    value: Vec<u8>,
    context: Option<&str>,
) -> (StatusCode, String, Option<String>) {
    let url = format!("{}?w={}", c.kv(via, key), replicas(c));
    let mut request = c.http.put(url).body(value);
    if let Some(context) = context {
        request = request.header(CONTEXT, context);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let context = dynamo_testkit::http::context(&response);
    let code = match status.is_success() {
        true => String::new(),
        false => {
            let body: serde_json::Value = response.json().await.unwrap();
            body["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        }
    };
    (status, code, context)
}

/// PUTs `value`; asserts it was acknowledged and returns the new context.
async fn put_ok(
    c: &TestCluster,
    via: usize,
    key: &str,
    value: &str,
    context: Option<&str>,
) -> String {
    let (status, code, context) = put(c, via, key, value.into(), context).await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "PUT {key}={value} via {via}: {code}"
    );
    context.expect("a write returns its context")
}

/// PUTs `value` with `context`; asserts the answer is 400 `invalid_context`.
async fn put_refused(c: &TestCluster, via: usize, key: &str, context: &VersionVector) {
    let text = encode_context(context);
    let (status, code, _) = put(c, via, key, "forged".into(), Some(&text)).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_context"),
        "PUT {key} via {via} with the crafted context {:?}",
        context.entries()
    );
}

/// Whether a GET found live values (one, or siblings).
fn readable(status: StatusCode) -> bool {
    matches!(status, StatusCode::OK | StatusCode::MULTIPLE_CHOICES)
}

/// Reads `key` from all replicas through every node; asserts each
/// answers `values` (sorted) and returns the context of the last read.
async fn read_everywhere(c: &TestCluster, key: &str, values: &[&str]) -> String {
    let mut context = None;
    for i in 0..c.nodes.len() {
        let query = format!("?r={}", replicas(c));
        let (status, read_context, mut got) = c.get_json(i, key, &query).await;
        got.sort();
        assert!(readable(status), "GET {key} via {i}: {status}");
        assert_eq!(got, values, "GET {key} via {i}");
        context = read_context;
    }
    context.expect("a read returns a context")
}

/// The one actor of a context written by one node.
fn only_actor(context: &str) -> u64 {
    let entries = decode_context(context).unwrap().entries().to_vec();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0].0
}

/// The actor (write identity) of node `i`, from a blind write of a key of
/// its own.
async fn actor_of(c: &TestCluster, i: usize) -> u64 {
    only_actor(&put_ok(c, i, &format!("actor-probe-{i}"), "x", None).await)
}

fn vv(entries: &[(u64, u64)]) -> VersionVector {
    let mut v = VersionVector::new();
    for &(actor, counter) in entries {
        v.add(Dot { actor, counter });
    }
    v
}

/// After an attack on `key`, whose only value is `value`: every node
/// updates it with its read context, and a blind write through each node
/// gets a counter of that node's sequence (no crafted counter moved it).
async fn still_usable(c: &TestCluster, key: &str, value: &str) {
    let mut context = read_everywhere(c, key, &[value]).await;
    for i in 0..c.nodes.len() {
        let next = format!("{value}-{i}");
        context = put_ok(c, i, key, &next, Some(&context)).await;
        read_everywhere(c, key, &[&next]).await;
    }
    for i in 0..c.nodes.len() {
        let blind = put_ok(c, i, key, &format!("blind-{i}"), None).await;
        let counters = decode_context(&blind).unwrap();
        assert!(
            counters.entries().iter().all(|&(_, n)| n < NEVER_ISSUED),
            "node {i} issued a counter a crafted context gave it: {:?}",
            counters.entries()
        );
    }
}

#[tokio::test]
async fn extreme_counters_of_the_coordinator_are_refused_and_nothing_is_lost() {
    let c = TestCluster::start(3, &[]).await;
    let key = "own-actor";
    let context = put_ok(&c, 0, key, "v1", None).await;
    let actor = only_actor(&context);
    for counter in IMPOSSIBLE.into_iter().chain([NEVER_ISSUED]) {
        put_refused(&c, 0, key, &vv(&[(actor, counter)])).await;
    }
    let twice = c
        .http
        .put(c.kv(0, key))
        .header(CONTEXT, &context)
        .header(CONTEXT, encode_context(&vv(&[(actor, u64::MAX)])))
        .body("twice")
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), StatusCode::BAD_REQUEST, "two contexts");
    still_usable(&c, key, "v1").await;
}

#[tokio::test]
async fn extreme_counters_of_other_actors_are_refused_and_nothing_is_lost() {
    let c = TestCluster::start(3, &[]).await;
    let key = "other-actors";
    put_ok(&c, 0, key, "v1", None).await;
    let other = actor_of(&c, 1).await;
    for counter in IMPOSSIBLE {
        put_refused(&c, 0, key, &vv(&[(other, counter)])).await;
        put_refused(&c, 0, key, &vv(&[(rand::random(), counter)])).await;
    }
    still_usable(&c, key, "v1").await;
}

/// Counters below the limit that no node issued, for other nodes' actors
/// and for invented ones, cannot be told from a context a lagging replica
/// has not seen yet: they are accepted, but no replica's clock takes them,
/// so they neither grow the key's context nor move another node's counter.
#[tokio::test]
async fn forged_counters_below_the_limit_do_not_poison_the_key() {
    let c = TestCluster::start(3, &[]).await;
    let key = "poison";
    put_ok(&c, 0, key, "v0", None).await;
    let other = actor_of(&c, 1).await;
    let mut value = "v0".to_string();
    for round in 1..=3 {
        let read = read_everywhere(&c, key, &[&value]).await;
        let mut forged = decode_context(&read).unwrap();
        forged.add(Dot {
            actor: other,
            counter: NEVER_ISSUED,
        });
        for _ in 0..40 {
            forged.add(Dot {
                actor: rand::random(),
                counter: NEVER_ISSUED,
            });
        }
        value = format!("v{round}");
        put_ok(&c, 0, key, &value, Some(&encode_context(&forged))).await;
        let context = read_everywhere(&c, key, &[&value]).await;
        let entries = decode_context(&context).unwrap().entries().len();
        assert!(
            entries <= 3,
            "round {round}: the context grew to {entries} actors"
        );
    }
    still_usable(&c, key, &value).await;
}

/// Contexts with more actors than any context the node hands out are
/// refused. Without that, each write with a context of fresh actors (short
/// enough to be accepted) grew the key's clock, until its own read context
/// was longer than the node accepts back.
#[tokio::test]
async fn contexts_with_too_many_actors_are_refused_and_the_read_context_stays_usable() {
    let c = TestCluster::start(3, &[]).await;
    let key = "many-actors";
    put_ok(&c, 0, key, "v1", None).await;
    let mut answers = Vec::new();
    for round in 0..4u64 {
        let forged: Vec<(u64, u64)> = match round {
            0 => (1..=200).map(|actor| (actor, 1)).collect(),
            _ => (0..300).map(|_| (rand::random(), 1)).collect(),
        };
        let text = encode_context(&vv(&forged));
        let (status, code, _) = put(&c, 0, key, "v1".into(), Some(&text)).await;
        answers.push((status, code));
    }
    let (status, context, _) = c.get_json(2, key, "?r=3").await;
    assert!(readable(status), "GET {key}: {status}");
    put_ok(&c, 1, key, "resolved", context.as_deref()).await;
    still_usable(&c, key, "resolved").await;
    for (status, code) in answers {
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_context")
        );
    }
}

/// A node that is not a replica of the key forwards the write to an
/// owner; the owner whose counter the context claims refuses it, and that
/// refusal reaches the client instead of another owner taking the write.
#[tokio::test]
async fn a_forwarded_impossible_context_is_refused_and_nothing_is_lost() {
    let c = TestCluster::start(4, &[]).await;
    let key = "forwarded";
    let (owners, others) = c.owners_and_others(0, key).await;
    let (first, outsider) = (owners[0], others[0]);
    let actor = only_actor(&put_ok(&c, first, key, "v1", None).await);
    for counter in [NEVER_ISSUED].into_iter().chain(IMPOSSIBLE) {
        put_refused(&c, outsider, key, &vv(&[(actor, counter)])).await;
    }
    still_usable(&c, key, "v1").await;
}

/// Blind writes of one key (no context) stop at the sibling limit with
/// 409 `too_many_siblings`; the key still reads, its read context resolves
/// it, and all three replicas agree.
#[tokio::test]
async fn blind_writes_stop_at_the_sibling_limit_and_the_key_stays_usable() {
    let c = TestCluster::start(3, &[]).await;
    let key = "blind";
    let mut written: Vec<String> = (0..MAX_SIBLINGS).map(|i| format!("v{i:03}")).collect();
    for (i, value) in written.iter().enumerate() {
        put_ok(&c, i % 3, key, value, None).await;
    }
    for via in 0..3 {
        let (status, code, _) = put(&c, via, key, "one-too-many".into(), None).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::CONFLICT, "too_many_siblings"),
            "blind write number {} via {via}",
            MAX_SIBLINGS + 1
        );
    }
    written.sort();
    let expected: Vec<&str> = written.iter().map(String::as_str).collect();
    let context = read_everywhere(&c, key, &expected).await;
    put_ok(&c, 1, key, "resolved", Some(&context)).await;
    still_usable(&c, key, "resolved").await;
}

/// Blind writes of large values stop before the key outgrows the object
/// size limit (so that it always fits a node-to-node frame), with 409
/// `object_too_large`; the key resolves as above. One node: replicating
/// keys of several MiB takes a debug build longer than the tests' request
/// timeout (1 s), and the limit is the coordinator's decision.
#[tokio::test]
async fn blind_writes_stop_at_the_object_size_limit_and_the_key_stays_usable() {
    let largest = MAX_OBJECT_BYTES / 4;
    let c = TestCluster::start(1, &["--max-value-bytes", &largest.to_string()]).await;
    let key = "large";
    let value = |i: u8| vec![b'a' + i; largest];
    for i in 0..3 {
        let (status, code, _) = put(&c, 0, key, value(i), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "value {i}: {code}");
    }
    let (status, code, _) = put(&c, 0, key, value(3), None).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "object_too_large")
    );
    let (status, context, values) = c.get_json(0, key, "").await;
    assert_eq!((status, values.len()), (StatusCode::MULTIPLE_CHOICES, 3));
    put_ok(&c, 0, key, "small", context.as_deref()).await;
    still_usable(&c, key, "small").await;
}
