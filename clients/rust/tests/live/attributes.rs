//! What a write says about its value besides the bytes: content type,
//! metadata and TTL, kept per version and read back by `get` and
//! `get_many`; what the client or the node refuses.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use dynamo_client::{Client, Error, Version, WriteOptions};

use crate::support::{Cluster, series, series_sum};

fn client(cluster: &Cluster) -> Client {
    Client::builder(cluster.urls()).build().unwrap()
}

fn meta(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// The sibling holding `value`.
fn sibling<'a>(siblings: &'a [Version], value: &str) -> &'a Version {
    siblings
        .iter()
        .find(|s| s.value == value.as_bytes())
        .unwrap_or_else(|| panic!("no sibling {value:?} in {siblings:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_round_trip_per_version() {
    let cluster = Cluster::start(&[], None).await;
    let client = client(&cluster);

    // Content type, metadata (names come back in lower case) and a TTL.
    let options = WriteOptions::new()
        .content_type("application/json")
        .meta("Owner", "ops")
        .meta("trace-id", "a b c")
        .ttl(Duration::from_secs(3600));
    let before = SystemTime::now();
    client
        .put_with("doc", r#"{"a":1}"#, None, &options)
        .await
        .unwrap();
    let after = SystemTime::now();
    let read = client.get("doc").await.unwrap();
    let version = read.version().unwrap().expect("a value");
    assert_eq!(version.value, Bytes::from(r#"{"a":1}"#));
    assert_eq!(read.values, std::slice::from_ref(&version.value));
    assert_eq!(version.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        version.meta,
        meta(&[("owner", "ops"), ("trace-id", "a b c")])
    );
    let expires_at = version.expires_at.expect("an expiry");
    let slack = Duration::from_secs(5);
    assert!(
        expires_at >= before + Duration::from_secs(3600) - slack
            && expires_at <= after + Duration::from_secs(3600) + slack,
        "{expires_at:?} is not an hour after the write"
    );

    // A plain write sends no content type: none comes back.
    client.put("plain", "bytes", None).await.unwrap();
    let plain = client.get("plain").await.unwrap();
    let plain = plain.version().unwrap().expect("a value");
    assert_eq!(
        (&plain.content_type, plain.meta.is_empty(), plain.expires_at),
        (&None, true, None)
    );

    // Batch reads carry the same attributes.
    let many = client.get_many(&["doc", "plain", "nobody"]).await.unwrap();
    assert_eq!(many[0].siblings, read.siblings);
    assert_eq!(many[1].siblings[0].content_type, None);
    assert!(many[2].siblings.is_empty() && many[2].values.is_empty());

    // Two concurrent writes: siblings, each with its own attributes.
    let json = WriteOptions::new()
        .content_type("application/json")
        .meta("writer", "a");
    let text = WriteOptions::new()
        .content_type("text/plain")
        .meta("writer", "b")
        .meta("lang", "en")
        .ttl(Duration::from_secs(600));
    client.put_with("pair", "[1]", None, &json).await.unwrap();
    client.put_with("pair", "one", None, &text).await.unwrap();
    for read in [
        client.get("pair").await.unwrap(),
        client.get_many(&["pair"]).await.unwrap().remove(0),
    ] {
        assert!(matches!(read.version(), Err(Error::Siblings(2))));
        let values: Vec<&Bytes> = read.siblings.iter().map(|s| &s.value).collect();
        assert_eq!(values, read.values.iter().collect::<Vec<_>>(), "same order");
        let a = sibling(&read.siblings, "[1]");
        assert_eq!(a.content_type.as_deref(), Some("application/json"));
        assert_eq!(a.meta, meta(&[("writer", "a")]));
        assert_eq!(a.expires_at, None);
        let b = sibling(&read.siblings, "one");
        assert_eq!(b.content_type.as_deref(), Some("text/plain"));
        assert_eq!(b.meta, meta(&[("lang", "en"), ("writer", "b")]));
        assert!(b.expires_at.is_some());
    }

    // update_with writes the merged value with its options; update
    // writes it bare.
    let merged = WriteOptions::new()
        .content_type("text/csv")
        .meta("merged", "yes");
    client
        .update_with("pair", &merged, |siblings| {
            let mut parts: Vec<&[u8]> = siblings.iter().map(|v| v.as_ref()).collect();
            parts.sort_unstable();
            Some(Bytes::from(parts.join(&b","[..])))
        })
        .await
        .unwrap();
    let read = client.get("pair").await.unwrap();
    let version = read.version().unwrap().expect("merged");
    assert_eq!(version.value, Bytes::from("[1],one"));
    assert_eq!(version.content_type.as_deref(), Some("text/csv"));
    assert_eq!(version.meta, meta(&[("merged", "yes")]));
    assert_eq!(version.expires_at, None, "the TTL'd sibling was superseded");
    client
        .update("pair", |siblings| siblings.first().cloned())
        .await
        .unwrap();
    let read = client.get("pair").await.unwrap();
    let version = read.version().unwrap().expect("rewritten");
    assert_eq!(
        (&version.content_type, version.meta.is_empty()),
        (&None, true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_reads_as_deleted_once_its_ttl_passed() {
    let cluster = Cluster::start(&[], None).await;
    let client = client(&cluster);
    let second = WriteOptions::new().ttl(Duration::from_millis(300));
    let before = SystemTime::now();
    client
        .put_with("ttl/short", "brief", None, &second)
        .await
        .unwrap();
    // A sibling written without a TTL outlives its TTL'd sibling.
    client.put("ttl/mixed", "stays", None).await.unwrap();
    client
        .put_with("ttl/mixed", "goes", None, &second)
        .await
        .unwrap();
    let written = SystemTime::now();

    let read = client.get("ttl/short").await.unwrap();
    let expires_at = read.version().unwrap().expect("live").expires_at.unwrap();
    assert!(
        expires_at >= before + Duration::from_millis(990)
            && expires_at <= written + Duration::from_secs(2),
        "300 ms rounds up to 1 s: {expires_at:?}"
    );
    assert_eq!(client.get("ttl/mixed").await.unwrap().values.len(), 2);

    // Expired after about a second: poll, up to a deadline.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (gone, mixed) = loop {
        let gone = client.get("ttl/short").await.unwrap();
        let mixed = client.get("ttl/mixed").await.unwrap();
        if !gone.exists() && mixed.values.len() == 1 {
            break (gone, mixed);
        }
        assert!(Instant::now() < deadline, "still there: {gone:?} {mixed:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(SystemTime::now() >= expires_at, "not before its expiry");
    assert!(gone.context.is_some(), "an expired value keeps its context");
    assert_eq!(mixed.values, [Bytes::from("stays")]);
    assert_eq!(mixed.siblings[0].expires_at, None);
    let many = client.get_many(&["ttl/short", "ttl/mixed"]).await.unwrap();
    assert!(many[0].values.is_empty() && many[0].siblings.is_empty());
    assert!(many[0].context.is_some());
    assert_eq!(many[1].values, [Bytes::from("stays")]);

    // Written again with the expired read's context: live again, without
    // an expiry.
    client
        .put("ttl/short", "back", gone.context.as_deref())
        .await
        .unwrap();
    let read = client.get("ttl/short").await.unwrap();
    assert_eq!(read.values, [Bytes::from("back")]);
    assert_eq!(read.siblings[0].expires_at, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_attributes_are_refused_and_not_retried() {
    let cluster = Cluster::start(&[], None).await;
    let client = Client::builder([cluster.url(0)]).build().unwrap();
    let puts = r#"dynamo_requests_total{op="put","#;
    let gets = r#"dynamo_requests_total{op="get","#;

    // What the client cannot send it refuses without a request, even
    // through update_with (no read either).
    for options in [
        WriteOptions::new().meta("bad name", "v"),
        WriteOptions::new().meta("owner", "line\nbreak"),
        WriteOptions::new().meta("Owner", "a").meta("owner", "b"),
        WriteOptions::new().content_type(""),
        WriteOptions::new().ttl(Duration::ZERO),
    ] {
        let error = client.put_with("k", "v", None, &options).await.unwrap_err();
        assert!(matches!(error, Error::InvalidAttribute(_)), "{error}");
        let error = client
            .update_with("k", &options, |_| Some(Bytes::from("v")))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::InvalidAttribute(_)), "{error}");
    }
    let metrics = cluster.metrics(0).await;
    assert_eq!(series_sum(&metrics, puts), 0.0, "no write sent");
    assert_eq!(series_sum(&metrics, gets), 0.0, "no read sent");

    // What only the node's limits refuse is a 400, sent once.
    let ten_years = Duration::from_secs(315_360_000);
    let error = client
        .put_with("k", "v", None, &WriteOptions::new().ttl(ten_years * 2))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(400), "{error}");
    assert_eq!(error.code(), Some("invalid_ttl"), "{error}");
    let crowded = (0..33).fold(WriteOptions::new(), |options, n| {
        options.meta(format!("m{n}"), "v")
    });
    let error = client.put_with("k", "v", None, &crowded).await.unwrap_err();
    assert_eq!(error.status(), Some(400), "{error}");
    assert_eq!(error.code(), Some("invalid_header"), "{error}");
    let metrics = cluster.metrics(0).await;
    let bad = r#"dynamo_requests_total{op="put",outcome="bad_request"}"#;
    assert_eq!(series(&metrics, bad), 2.0, "each sent once");
    assert_eq!(series_sum(&metrics, puts), 2.0, "and nothing else");

    // The longest TTL and 32 entries are taken.
    let full = (0..32).fold(WriteOptions::new().ttl(ten_years), |options, n| {
        options.meta(format!("m{n}"), "v")
    });
    client.put_with("k", "v", None, &full).await.unwrap();
    let read = client.get("k").await.unwrap();
    assert_eq!(read.siblings[0].meta.len(), 32);
}
