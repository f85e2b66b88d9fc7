//! TLS on every listener and between nodes, over real processes, with a
//! CA and node certificates made for the test.

use std::net::{IpAddr, Ipv4Addr};

use dynamo_testkit::http::{http_client, https_client};
use dynamo_testkit::pki::TestCa;
use reqwest::StatusCode;

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
