//! TLS on every listener and between nodes, over real processes, with a
//! CA and node certificates made for the test.

mod support;

use std::net::{IpAddr, Ipv4Addr};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use reqwest::StatusCode;
use support::{ClusterOptions, TestCluster};

/// A CA, and one certificate it signed for all of `ips`, in a directory
/// laid out as `--tls-dir` expects.
fn tls_dir(ips: &[IpAddr]) -> (tempfile::TempDir, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let node_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = ips.iter().map(|ip| SanType::IpAddress(*ip)).collect();
    let cert = params.signed_by(&node_key, &issuer).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), node_key.serialize_pem()).unwrap();
    std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
    (dir, ca.pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_and_peers_speak_tls_checked_against_the_ca() {
    let subnet = rand::random_range(1..=254u8);
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
    let plain = support::http_client();
    let url = c.url(2).replacen("https://", "http://", 1);
    assert!(plain.get(format!("{url}/healthz")).send().await.is_err());
    let (_, other_ca) = tls_dir(&ips);
    let stranger = support::https_client(&other_ca);
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
