//! The status page (`/ui/`): its embedded assets with their content types
//! and Content-Security-Policy, `404` for anything else under `/ui/`, the
//! redirects to it, and its place in the auth model (the page is open,
//! the status it reads is not).

use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, X_CONTENT_TYPE_OPTIONS};

use crate::support::TestCluster;

/// The page's assets and their content types.
const ASSETS: [(&str, &str); 4] = [
    ("/ui/", "text/html; charset=utf-8"),
    ("/ui/status.js", "text/javascript; charset=utf-8"),
    ("/ui/status.css", "text/css; charset=utf-8"),
    ("/ui/favicon.svg", "image/svg+xml"),
];

/// A client that does not follow redirects.
fn no_redirects() -> reqwest::Client {
    dynamo_testkit::http::builder(None)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Checks every asset on `base`: 200, its type, the policy, nosniff.
async fn check_assets(http: &reqwest::Client, base: &str) {
    for (path, content_type) in ASSETS {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{base}{path}");
        let header = |name| {
            r.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(
            header(CONTENT_TYPE).as_deref(),
            Some(content_type),
            "{path}"
        );
        assert_eq!(header(X_CONTENT_TYPE_OPTIONS).as_deref(), Some("nosniff"));
        let policy = header(CONTENT_SECURITY_POLICY).expect("a Content-Security-Policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self';",
            "connect-src 'self'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe"), "{path}: {policy}");
        assert!(!r.text().await.unwrap().is_empty(), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_page_is_served_with_its_types_and_policy() {
    let c = TestCluster::start(2, &["--partitions", "16"]).await;
    let http = no_redirects();
    check_assets(&http, &c.url(0)).await;
    // The admin listener serves /v1/status too, and so the page.
    check_assets(&http, &c.admin_url(1)).await;

    // One script, from its own file: the policy allows no inline script.
    let page = http.get(format!("{}/ui/", c.url(0))).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert_eq!(page.matches("<script").count(), 1, "{page}");
    assert!(page.contains(r#"<script src="status.js" defer></script>"#));

    for path in ["/", "/ui"] {
        let r = http
            .get(format!("{}{path}", c.url(0)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.headers()[LOCATION], "ui/", "{path}");
    }

    for path in [
        "/ui/missing.js",
        "/ui/status.js.map",
        "/ui/index.html",
        "/ui/x/status.js",
    ] {
        let r = http
            .get(format!("{}{path}", c.url(0)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "no_such_route", "{path}");
    }
    let r = http.post(format!("{}/ui/", c.url(0))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_needs_no_token_but_the_status_it_reads_does() {
    let dir = tempfile::tempdir().unwrap();
    for (file, token) in [("admin-token", "admin-e41f"), ("peer-token", "peer-7c20")] {
        std::fs::write(dir.path().join(file), format!("{token}\n")).unwrap();
    }
    let c = TestCluster::start(1, &["--auth-dir", dir.path().to_str().unwrap()]).await;
    let http = no_redirects();
    check_assets(&http, &c.url(0)).await;
    let status = format!("{}/v1/status?ring=true", c.url(0));
    let r = http.get(&status).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http.get(&status).bearer_auth("admin-e41f").send().await;
    assert_eq!(r.unwrap().status(), StatusCode::OK);
}
