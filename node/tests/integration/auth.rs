//! Credentials over real processes: one token per role, application
//! tokens scoped to a prefix, and the admin routes and the node-to-node
//! stream on the internal listener only.

use reqwest::header::{AUTHORIZATION, CONNECTION, HeaderMap, HeaderValue, UPGRADE};
use reqwest::{Method, StatusCode};

use crate::support::TestCluster;

const ADMIN: &str = "admin-5b0c";
const PEER: &str = "peer-91de";
const CLIENT: &str = "client-77aa";
const ORDERS: &str = "orders-0f3e";
const AUDIT: &str = "audit-c41b";

/// An auth directory with a token per role and two application tokens:
/// `orders` (read-write on `orders/`) and `audit` (read-only, every key).
fn auth_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (file, token) in [
        ("admin-token", ADMIN),
        ("peer-token", PEER),
        ("client-token", CLIENT),
    ] {
        std::fs::write(dir.path().join(file), format!("{token}\n")).unwrap();
    }
    let clients = serde_json::json!([
        {"name": "orders", "token": ORDERS, "prefix": "orders/", "access": "read-write"},
        {"name": "audit", "token": AUDIT, "prefix": "", "access": "read"},
    ]);
    std::fs::write(dir.path().join("clients.json"), clients.to_string()).unwrap();
    dir
}

/// Sends `method url` with `token` (none if empty); returns the status and
/// the error code of a JSON error body.
async fn call(c: &TestCluster, method: Method, url: &str, token: &str) -> (StatusCode, String) {
    let mut request = c.http.request(method.clone(), url);
    if !token.is_empty() {
        request = request.bearer_auth(token);
    }
    if method == Method::PUT {
        request = request.body("v");
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (status, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_has_its_own_token_and_clients_stay_within_their_prefix() {
    let dir = auth_dir();
    let mut c = TestCluster::start(3, &["--auth-dir", dir.path().to_str().unwrap()]).await;
    let (kv, status) = (c.kv(0, "orders/1"), format!("{}/v1/status", c.url(0)));
    let ring = format!("{}/v1/admin/ring", c.admin_url(1));
    let expect = [
        // No token, or one the node does not know: 401.
        (Method::GET, &kv, "", StatusCode::UNAUTHORIZED),
        (Method::GET, &status, "", StatusCode::UNAUTHORIZED),
        (Method::GET, &ring, "", StatusCode::UNAUTHORIZED),
        (Method::GET, &ring, "wrong", StatusCode::UNAUTHORIZED),
        // A valid token beyond its rights: 403.
        (Method::GET, &ring, CLIENT, StatusCode::FORBIDDEN),
        (Method::GET, &ring, PEER, StatusCode::FORBIDDEN),
        (Method::PUT, &kv, ADMIN, StatusCode::FORBIDDEN),
        (Method::GET, &kv, PEER, StatusCode::FORBIDDEN),
        (Method::PUT, &kv, AUDIT, StatusCode::FORBIDDEN),
        (Method::DELETE, &kv, AUDIT, StatusCode::FORBIDDEN),
        // Within its rights.
        (Method::GET, &ring, ADMIN, StatusCode::OK),
        (Method::GET, &status, ADMIN, StatusCode::OK),
        (Method::GET, &status, AUDIT, StatusCode::OK),
        (Method::PUT, &kv, ORDERS, StatusCode::NO_CONTENT),
        (Method::GET, &kv, AUDIT, StatusCode::OK),
    ];
    for (method, url, token, status) in expect {
        let (got, code) = call(&c, method.clone(), url, token).await;
        assert_eq!(got, status, "{method} {url} with {token:?}: {code}");
        let expected_code = match status {
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            _ => "",
        };
        assert_eq!(code, expected_code, "{method} {url} with {token:?}");
    }
    let users = c.kv(0, "users/1");
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let (got, _) = call(&c, method.clone(), &users, ORDERS).await;
        assert_eq!(got, StatusCode::FORBIDDEN, "{method} outside orders/");
    }
    // The admin routes are not on the client listener at all.
    let on_client_port = format!("{}/v1/admin/ring", c.url(1));
    let (got, code) = call(&c, Method::GET, &on_client_port, ADMIN).await;
    assert_eq!(
        (got, code.as_str()),
        (StatusCode::NOT_FOUND, "no_such_route")
    );
    for probe in ["healthz", "readyz"] {
        let (got, _) = call(&c, Method::GET, &format!("{}/{probe}", c.url(2)), "").await;
        assert_eq!(got, StatusCode::OK, "{probe} stays open");
    }

    // Only the peer token opens the node-to-node stream: a client or the
    // admin cannot send forged writes or gossip on it.
    let stream = format!("{}/internal/v1/stream", c.admin_url(0));
    for token in ["", CLIENT, ADMIN, ORDERS] {
        let mut request = c
            .http
            .get(&stream)
            .header(CONNECTION, "upgrade")
            .header(UPGRADE, "dynamo-rpc/1");
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        let r = request.send().await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "stream with {token:?}"
        );
    }

    // Nodes present the peer token to each other: a write through one node
    // replicates to the others and reads back from all three.
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {CLIENT}")).unwrap(),
    );
    c.http = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let (status, _) = c.put(0, "k", "v", None, "?w=3").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, values) = c.get_json(1, "k", "?r=3").await;
    assert_eq!((status, values), (StatusCode::OK, vec!["v".to_string()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_to_start_with_roles_sharing_a_token() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin-token"), "same").unwrap();
    std::fs::write(dir.path().join("peer-token"), "same").unwrap();
    let data = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_dynamo-node"))
        .args(["serve", "--node-id", "n1", "--data-dir"])
        .arg(data.path())
        .arg("--auth-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("hold the same token"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_added_to_clients_json_is_let_in_without_a_restart() {
    let dir = auth_dir();
    let c = TestCluster::start(1, &["--auth-dir", dir.path().to_str().unwrap()]).await;
    let key = c.kv(0, "billing/1");
    let (status, _) = call(&c, Method::PUT, &key, "billing-9e1d").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "not yet a client");
    let clients = serde_json::json!([
        {"name": "billing", "token": "billing-9e1d", "prefix": "billing/", "access": "read-write"},
    ]);
    std::fs::write(dir.path().join("clients.json"), clients.to_string()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, code) = call(&c, Method::PUT, &key, "billing-9e1d").await;
        if status == StatusCode::NO_CONTENT {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {status} {code}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    // The applications dropped from the file are revoked.
    let (status, _) = call(&c, Method::GET, &c.kv(0, "orders/1"), ORDERS).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_and_batch_reads_stay_within_the_client_prefix() {
    let dir = auth_dir();
    let c = TestCluster::start(3, &["--auth-dir", dir.path().to_str().unwrap()]).await;
    for key in ["orders/1", "orders/2", "users/1"] {
        let r = c
            .http
            .put(c.kv(0, key))
            .bearer_auth(CLIENT)
            .body("v")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{key}");
    }
    let list = |token: &'static str, query: &'static str| {
        let request = c
            .http
            .get(format!("{}/v1/kv?{query}", c.url(1)))
            .bearer_auth(token);
        async move {
            let r = request.send().await.unwrap();
            let status = r.status();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    // `orders` sees its own keys only, whatever wider prefix it asks for.
    for query in [
        "limit=1000",
        "prefix=ord&limit=1000",
        "prefix=orders/&limit=1000",
    ] {
        let (status, body) = list(ORDERS, query).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        let mut keys: Vec<&str> = body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["orders/1", "orders/2"], "{query}: {body}");
    }
    let (status, body) = list(ORDERS, "prefix=users/").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = list(AUDIT, "limit=1000").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["keys"].as_array().unwrap().len(), 3, "{body}");
    let (status, _) = list(PEER, "").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the peer token reads no keys"
    );
    let (status, _) = list("", "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let batch = |token: &'static str, keys: &'static [&'static str]| {
        let request = c
            .http
            .post(format!("{}/v1/batch/get", c.url(2)))
            .bearer_auth(token)
            .json(&serde_json::json!({ "keys": keys }));
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(
        batch(ORDERS, &["orders/1", "orders/2"]).await,
        StatusCode::OK
    );
    assert_eq!(
        batch(ORDERS, &["orders/1", "users/1"]).await,
        StatusCode::FORBIDDEN,
        "one key outside the prefix refuses the batch"
    );
    assert_eq!(batch(AUDIT, &["orders/1", "users/1"]).await, StatusCode::OK);
    assert_eq!(batch(ADMIN, &["orders/1"]).await, StatusCode::FORBIDDEN);
}
