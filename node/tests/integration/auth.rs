//! Bearer-token authentication over real processes.

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use crate::support::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_v1_route_and_peer_stream_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "s3cret-token\n").unwrap();
    let auth_dir = dir.path().to_str().unwrap();
    let mut c = TestCluster::start(3, &["--auth-dir", auth_dir]).await;
    let anonymous = c.http.clone();

    for url in [c.kv(0, "k"), format!("{}/v1/status", c.url(0))] {
        let r = anonymous.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{url}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let r = anonymous
        .get(format!("{}/v1/admin/ring", c.url(1)))
        .header(AUTHORIZATION, "Bearer wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    for probe in ["healthz", "readyz"] {
        let r = anonymous
            .get(format!("{}/{probe}", c.url(2)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{probe} stays open");
    }
    // Peers without the token cannot open the node-to-node stream.
    let r = anonymous
        .get(format!(
            "http://{}:{}/internal/v1/stream",
            c.nodes[0].ip, c.nodes[0].internal_port
        ))
        .header("connection", "upgrade")
        .header("upgrade", "dynamo-rpc/1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_static("Bearer s3cret-token"),
    );
    c.http = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    // With the token, a write through one node replicates to the others
    // (whose streams carry the token) and reads back with all three.
    let (status, _) = c.put(0, "k", "v", None, "?w=3").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, values) = c.get_json(1, "k", "?r=3").await;
    assert_eq!((status, values), (StatusCode::OK, vec!["v".to_string()]));
}
