//! TLS on every listener and between nodes, over real processes, with a
//! CA and node certificates made for the test; the node-to-node stream
//! with mutual TLS; certificates and CAs renewed in place.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use dynamo_testkit::http::{builder, http_client, https_client};
use dynamo_testkit::pki::{TestCa, replace_file};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONNECTION, UPGRADE};

use crate::support::{self, ClusterOptions, TestCluster};

/// A CA, and one certificate it signed for all of `ips`, in a directory
/// laid out as `--tls-dir` expects.
fn tls_dir(ips: &[IpAddr]) -> (tempfile::TempDir, String) {
    let ca = TestCa::new("tls test CA");
    let names: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    ca.write_tls_dir(dir.path(), &names);
    (dir, ca.pem().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_and_peers_speak_tls_checked_against_the_ca() {
    let subnet = support::fresh_subnet();
    let ips: Vec<IpAddr> = (1..=3)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, subnet, i)))
        .collect();
    let (dir, ca_pem) = tls_dir(&ips);
    let options = ClusterOptions {
        extra: vec![
            "--tls-dir".to_string(),
            dir.path().to_str().unwrap().to_string(),
        ],
        subnet: Some(subnet),
        ca_pem: Some(ca_pem),
        ..ClusterOptions::default()
    };
    let c = TestCluster::start_with(3, options).await;

    // w=3 and r=3 need every node-to-node stream, all over TLS.
    let (status, _) = c.put(0, "k", "over tls", None, "?w=3").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, values) = c.get_json(1, "k", "?r=3").await;
    assert_eq!(
        (status, values),
        (StatusCode::OK, vec!["over tls".to_string()])
    );

    // Plain HTTP gets no answer, and a client that does not trust the CA
    // cannot connect.
    let plain = http_client();
    let url = c.url(2).replacen("https://", "http://", 1);
    assert!(plain.get(format!("{url}/healthz")).send().await.is_err());
    let (_, other_ca) = tls_dir(&ips);
    let stranger = https_client(&other_ca);
    assert!(
        stranger
            .get(format!("{}/healthz", c.url(2)))
            .send()
            .await
            .is_err()
    );
    let r = c
        .http
        .get(format!("{}/healthz", c.url(2)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_needs_a_client_certificate_signed_by_the_cluster_ca() {
    let subnet = support::fresh_subnet();
    let ips: Vec<IpAddr> = (1..=3)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, subnet, i)))
        .collect();
    let names: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let ca = TestCa::new("mutual TLS test CA");
    let tls = tempfile::tempdir().unwrap();
    ca.write_tls_dir(tls.path(), &names);
    let auth = tempfile::tempdir().unwrap();
    for (file, token) in [
        ("admin-token", "a"),
        ("peer-token", "p"),
        ("client-token", "c"),
    ] {
        std::fs::write(auth.path().join(file), token).unwrap();
    }
    let options = ClusterOptions {
        extra: ["--tls-dir", tls.path().to_str().unwrap()]
            .into_iter()
            .chain(["--auth-dir", auth.path().to_str().unwrap()])
            .map(str::to_string)
            .collect(),
        subnet: Some(subnet),
        ca_pem: Some(ca.pem().to_string()),
        ..ClusterOptions::default()
    };
    let mut c = TestCluster::start_with(3, options).await;
    c.http = builder(Some(ca.pem()))
        .default_headers(
            [(AUTHORIZATION, "Bearer c".parse().unwrap())]
                .into_iter()
                .collect(),
        )
        .build()
        .unwrap();

    // Nodes present their certificates to each other: w=3 and r=3 work.
    let (status, _) = c.put(0, "k", "mutual", None, "?w=3").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, values) = c.get_json(2, "k", "?r=3").await;
    assert_eq!(
        (status, values),
        (StatusCode::OK, vec!["mutual".to_string()])
    );

    // The peer token alone does not open the stream without a certificate
    // of the cluster's CA; with one, it does.
    let stream = format!("{}/internal/v1/stream", c.admin_url(0));
    let upgrade = |client: reqwest::Client| {
        client
            .get(&stream)
            .header(CONNECTION, "upgrade")
            .header(UPGRADE, "dynamo-rpc/1")
            .bearer_auth("p")
            .send()
    };
    let anonymous = upgrade(https_client(ca.pem())).await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let member = ca.issue(&["peer"]).client_config(ca.pem());
    let member = builder(None).use_preconfigured_tls(member).build().unwrap();
    let r = upgrade(member).await.unwrap();
    assert_eq!(r.status(), StatusCode::SWITCHING_PROTOCOLS);
    let stranger = TestCa::new("another CA")
        .issue(&["peer"])
        .client_config(ca.pem());
    let stranger = builder(None)
        .use_preconfigured_tls(stranger)
        .build()
        .unwrap();
    let refused = upgrade(stranger).await;
    assert!(
        refused.is_err(),
        "a certificate of another CA is refused in the handshake: {refused:?}"
    );
    // Clients and the admin need no certificate.
    let ring = c
        .http
        .get(format!("{}/v1/admin/ring", c.admin_url(1)))
        .bearer_auth("a")
        .send()
        .await
        .unwrap();
    assert_eq!(ring.status(), StatusCode::OK);
}

/// Writes a certificate of `ca` for `names` into `dir` as the kubelet
/// updates a mounted Secret (each file renamed over the old one), with
/// `ca_pem` as `ca.crt`.
fn renew(dir: &Path, ca: &TestCa, names: &[&str], ca_pem: &str) {
    let issued = ca.issue(names);
    replace_file(dir, "ca.crt", ca_pem);
    replace_file(dir, "tls.crt", &issued.cert_pem);
    replace_file(dir, "tls.key", &issued.key_pem);
}

/// Polls until `check(i)` holds for every node `i` of `c`, for at most
/// 30 s (nodes look at their files every 10 s).
async fn wait_all(c: &TestCluster, what: &str, check: impl AsyncFn(usize) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..c.nodes.len() {
        while !check(i).await {
            assert!(Instant::now() < deadline, "node {i} did not {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Whether node `i` opens the node-to-node stream to a client presenting
/// the client certificate of `tls`.
async fn stream_opens(c: &TestCluster, i: usize, tls: rustls::ClientConfig) -> bool {
    let client = builder(None).use_preconfigured_tls(tls).build().unwrap();
    client
        .get(format!("{}/internal/v1/stream", c.admin_url(i)))
        .header(CONNECTION, "upgrade")
        .header(UPGRADE, "dynamo-rpc/1")
        .send()
        .await
        .is_ok_and(|r| r.status() == StatusCode::SWITCHING_PROTOCOLS)
}

/// Retries a write of `key` with w=3 until it succeeds (for at most 30 s).
async fn put_all_replicas(c: &TestCluster, key: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = c.put(0, key, value, None, "?w=3").await;
        if status == StatusCode::NO_CONTENT {
            return;
        }
        assert!(Instant::now() < deadline, "w=3 still fails: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_and_ca_are_taken_without_a_restart() {
    let subnet = support::fresh_subnet();
    let names: Vec<String> = (1..=3).map(|i| format!("127.0.{subnet}.{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (old, new) = (TestCa::new("old CA"), TestCa::new("new CA"));
    let tls = tempfile::tempdir().unwrap();
    old.write_tls_dir(tls.path(), &names);
    let options = ClusterOptions {
        extra: vec![
            "--tls-dir".to_string(),
            tls.path().to_str().unwrap().to_string(),
        ],
        proxies: true,
        subnet: Some(subnet),
        ca_pem: Some(old.pem().to_string()),
        ..ClusterOptions::default()
    };
    let mut c = TestCluster::start_with(3, options).await;
    let (status, _) = c.put(0, "k", "before", None, "?w=3").await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // A CA rotation as cert-manager does it: every node trusts both CAs
    // and gets a certificate of the new one...
    let both = format!("{}{}", old.pem(), new.pem());
    renew(tls.path(), &new, &names, &both);
    c.http = https_client(&both);
    wait_all(&c, "serve the new CA's certificate", async |i| {
        let healthz = format!("{}/healthz", c.url(i));
        https_client(new.pem()).get(healthz).send().await.is_ok()
    })
    .await;
    let old_member = || old.issue(&["peer"]).client_config(&both);
    let new_member = || new.issue(&["peer"]).client_config(&both);
    for i in 0..3 {
        assert!(stream_opens(&c, i, old_member()).await);
        assert!(stream_opens(&c, i, new_member()).await);
    }

    // ...then stops trusting the old one.
    replace_file(tls.path(), "ca.crt", new.pem());
    wait_all(&c, "refuse the old CA's certificates", async |i| {
        !stream_opens(&c, i, old_member()).await
    })
    .await;
    for i in 0..3 {
        assert!(stream_opens(&c, i, new_member()).await);
    }

    // Every node-to-node connection is cut: nodes dial each other again,
    // each checking the other's new certificate against the new CA only.
    for i in 0..3 {
        c.isolate(i, true);
    }
    for i in 0..3 {
        c.isolate(i, false);
    }
    put_all_replicas(&c, "k2", "after").await;
    for (key, value) in [("k", "before"), ("k2", "after")] {
        let (status, _, values) = c.get_json(2, key, "?r=3").await;
        assert_eq!((status, values), (StatusCode::OK, vec![value.to_string()]));
    }
}
