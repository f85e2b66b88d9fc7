//! Every call against a live cluster: contexts and siblings, batch reads
//! and listings, errors and retries, a dead node, tokens and TLS.

use std::time::Duration;

use bytes::Bytes;
use dynamo_client::{Client, Error, Retry};
use dynamo_testkit::pki::TestCa;
use futures::TryStreamExt;

use crate::support::{Cluster, series};

/// Fast retries, so failing calls end quickly.
const QUICK: Retry = Retry {
    attempts: 4,
    base: Duration::from_millis(20),
    cap: Duration::from_millis(200),
};

fn client(cluster: &Cluster) -> Client {
    Client::builder(cluster.urls()).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_siblings_updates_and_deletes() {
    let cluster = Cluster::start(&[], None).await;
    let client = client(&cluster);

    let absent = client.get("cart").await.unwrap();
    assert!(!absent.exists() && absent.context.is_none(), "{absent:?}");

    client.put("cart", "apple", None).await.unwrap();
    let read = client.get("cart").await.unwrap();
    assert_eq!(read.value().unwrap(), Some(&Bytes::from("apple")));
    // With the read's context the write supersedes; without, a sibling.
    client
        .put("cart", "apple,pear", read.context.as_deref())
        .await
        .unwrap();
    client.put("cart", "plum", None).await.unwrap();
    let read = client.get("cart").await.unwrap();
    let mut values = read.values.clone();
    values.sort();
    assert_eq!(values, [Bytes::from("apple,pear"), Bytes::from("plum")]);
    assert!(matches!(read.value(), Err(Error::Siblings(2))));

    // update merges the siblings and writes with the read's context.
    client
        .update("cart", |siblings| {
            let mut items: Vec<&str> = siblings
                .iter()
                .flat_map(|v| std::str::from_utf8(v).unwrap().split(','))
                .collect();
            items.sort_unstable();
            Some(Bytes::from(items.join(",")))
        })
        .await
        .unwrap();
    let read = client.get("cart").await.unwrap();
    assert_eq!(read.values, [Bytes::from("apple,pear,plum")]);

    // A delete leaves a tombstone whose context a re-create supersedes.
    let tombstone = client
        .delete("cart", read.context.as_deref())
        .await
        .unwrap();
    assert!(tombstone.is_some());
    let gone = client.get("cart").await.unwrap();
    assert!(!gone.exists());
    assert!(gone.context.is_some(), "the tombstone's context");
    client
        .put("cart", "fig", gone.context.as_deref())
        .await
        .unwrap();
    assert_eq!(
        client.get("cart").await.unwrap().values,
        [Bytes::from("fig")]
    );
    assert_eq!(client.delete("never", None).await.unwrap(), None);
    assert_eq!(client.update("never", |_| None).await.unwrap(), None);

    // Keys with spaces, slashes and non-ASCII text travel as they are.
    for key in [
        "a b/c?d#e%f",
        "café/ü",
        "users/42",
        "a/../b",
        "./x",
        "...",
        "a//b/",
    ] {
        client.put(key, key.to_string(), None).await.unwrap();
        let read = client.get(key).await.unwrap();
        assert_eq!(read.values, [Bytes::from(key.to_string())], "{key}");
    }
    let error = client.put("..", "v", None).await.unwrap_err();
    assert!(matches!(error, Error::UnaddressableKey(_)), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_reads_and_listings() {
    let cluster = Cluster::start(&[], None).await;
    let client = client(&cluster);
    for n in 0..150 {
        client
            .put(&format!("list/{n:03}"), format!("v{n}"), None)
            .await
            .unwrap();
    }
    client.put("other", "x", None).await.unwrap();

    let read = client
        .get_many(&["list/007", "nobody", "list/100"])
        .await
        .unwrap();
    let keys: Vec<&str> = read.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(keys, ["list/007", "nobody", "list/100"]);
    assert_eq!(read[0].values, [Bytes::from("v7")]);
    assert!(!read[1].exists() && read[1].context.is_none());
    assert_eq!(read[2].values, [Bytes::from("v100")]);

    let mut listed: Vec<String> = client.list_keys("list/").try_collect().await.unwrap();
    listed.sort();
    let expected: Vec<String> = (0..150).map(|n| format!("list/{n:03}")).collect();
    assert_eq!(listed, expected, "every key once, nothing else");
    let page = client.list_page("", None, 10).await.unwrap();
    assert_eq!(page.keys.len(), 10);
    assert!(page.cursor.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_fail_at_once_and_unavailability_is_retried() {
    let mut cluster = Cluster::start(&[], None).await;
    let first = cluster.url(0);
    let only_first = |retry| {
        Client::builder([first.clone()])
            .retry(retry)
            .write_quorum(3)
            .build()
            .unwrap()
    };

    // A quorum above N is the client's mistake: one request, no retry.
    let wrong = Client::builder([cluster.url(0)])
        .write_quorum(9)
        .build()
        .unwrap();
    let error = wrong.put("k", "v", None).await.unwrap_err();
    assert_eq!(error.status(), Some(400), "{error}");
    assert_eq!(error.code(), Some("invalid_parameter"), "{error}");
    let metrics = cluster.metrics(0).await;
    let bad = r#"dynamo_requests_total{op="put",outcome="bad_request"}"#;
    assert_eq!(series(&metrics, bad), 1.0, "sent once");

    // With two of three nodes down, w=3 cannot be met: 503, retried on
    // every attempt, then reported.
    cluster.kill(1);
    cluster.kill(2);
    let error = only_first(QUICK).put("k", "v", None).await.unwrap_err();
    assert!(error.is_unavailable(), "{error}");
    assert_eq!(error.code(), Some("quorum_unavailable"), "{error}");
    let metrics = cluster.metrics(0).await;
    let failed = r#"dynamo_requests_total{op="put",outcome="quorum_failed"}"#;
    assert_eq!(series(&metrics, failed), f64::from(QUICK.attempts));

    // Nodes back during the backoff: the retried write goes through.
    let patient = Retry {
        attempts: 40,
        base: Duration::from_millis(250),
        cap: Duration::from_millis(500),
    };
    let writer = only_first(patient);
    let write = tokio::spawn(async move { writer.put("k", "v", None).await });
    cluster.restart(1).await;
    cluster.restart(2).await;
    write
        .await
        .unwrap()
        .expect("retried until the nodes were back");

    // A fresh key written while the quorum cannot be met: each 503 left a
    // version and carried the context to retry with, so every retry
    // replaced the previous one: one version in the end, not one per
    // attempt.
    let before = series(&cluster.metrics(0).await, failed);
    cluster.kill(1);
    cluster.kill(2);
    let writer = only_first(patient);
    let write = tokio::spawn(async move { writer.put("fresh", "v", None).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.restart(1).await;
    cluster.restart(2).await;
    write
        .await
        .unwrap()
        .expect("retried until the nodes were back");
    let metrics = cluster.metrics(0).await;
    assert!(
        series(&metrics, failed) >= before + 1.0,
        "answered 503 at least once"
    );
    let reader = Client::builder(cluster.urls())
        .read_quorum(3)
        .build()
        .unwrap();
    let read = reader.get("fresh").await.unwrap();
    assert_eq!(
        read.values,
        [Bytes::from("v")],
        "one version after the retries"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_skipped() {
    let mut cluster = Cluster::start(&[], None).await;
    cluster.kill(0);
    let client = Client::builder(cluster.urls())
        .retry(QUICK)
        .build()
        .unwrap();
    for n in 0..6 {
        let key = format!("k{n}");
        client.put(&key, "v", None).await.unwrap();
        assert!(client.get(&key).await.unwrap().exists());
    }
    let dead_only = Client::builder([cluster.url(0)])
        .retry(QUICK)
        .build()
        .unwrap();
    let error = dead_only.get("k0").await.unwrap_err();
    assert!(
        matches!(error, Error::Unreachable { attempts: 4, .. }),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_and_tls() {
    let ca = TestCa::new("client test CA");
    let auth = tempfile::tempdir().unwrap();
    for (file, token) in [
        ("admin-token", "admin-1"),
        ("peer-token", "peer-1"),
        ("client-token", "client-1"),
    ] {
        std::fs::write(auth.path().join(file), token).unwrap();
    }
    let auth_dir = auth.path().to_str().unwrap();
    let cluster = Cluster::start(&["--auth-dir", auth_dir], Some(&ca)).await;

    let trusted = Client::builder(cluster.urls()).ca_pem(ca.pem());
    let client = trusted.token("client-1").build().unwrap();
    client.put("secret", "s", None).await.unwrap();
    assert!(client.get("secret").await.unwrap().exists());

    let anonymous = Client::builder(cluster.urls())
        .ca_pem(ca.pem())
        .build()
        .unwrap();
    let error = anonymous.get("secret").await.unwrap_err();
    assert!(error.is_denied(), "{error}");
    assert_eq!(error.status(), Some(401));

    let admin = Client::builder(cluster.urls())
        .ca_pem(ca.pem())
        .token("admin-1")
        .build()
        .unwrap();
    assert_eq!(admin.get("secret").await.unwrap_err().status(), Some(403));

    let other_ca = TestCa::new("someone else");
    let untrusting = Client::builder(cluster.urls())
        .ca_pem(other_ca.pem())
        .token("client-1")
        .retry(Retry {
            attempts: 1,
            ..QUICK
        })
        .build()
        .unwrap();
    let error = untrusting.get("secret").await.unwrap_err();
    assert!(matches!(error, Error::Unreachable { .. }), "{error}");
    assert!(error.to_string().contains("certificate"), "{error}");

    let bad = Client::builder(cluster.urls()).ca_pem("not a certificate");
    assert!(matches!(bad.build(), Err(Error::Config(_))));
}
