//! The status page: `GET /ui/` and its assets, plain HTML, CSS and
//! JavaScript embedded in the binary, and `/` redirecting to it. The page
//! draws what `/v1/status?ring=true` of the node that served it says; it
//! loads nothing from anywhere else.
//!
//! The page and its assets hold no data and need no token. The JSON it
//! reads needs one as every `/v1/status` call does: on a node with
//! `--auth-dir`, the page asks for a client or admin token and keeps it in
//! the tab's `sessionStorage`. Every asset goes out with a strict
//! `Content-Security-Policy` (scripts, styles and images from the node
//! itself, requests to the node itself, no inline script, no framing).

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// The policy every page asset is served with.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One embedded file of the page.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// The page's files; any other path under `/ui/` is `404 no_such_route`.
static ASSETS: [Asset; 4] = [
    Asset {
        path: "/ui/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("ui/index.html"),
    },
    Asset {
        path: "/ui/status.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("ui/status.js"),
    },
    Asset {
        path: "/ui/status.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("ui/status.css"),
    },
    Asset {
        path: "/ui/favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("ui/favicon.svg"),
    },
];

/// `/` and `/ui` redirecting to `/ui/`, and the page's files, open to
/// everyone.
pub(super) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new()
        .route("/", get(|| async { Redirect::to("ui/") }))
        .route("/ui", get(|| async { Redirect::to("ui/") }));
    for asset in &ASSETS {
        router = router.route(asset.path, get(move || async move { serve(asset) }));
    }
    router
}

/// `asset` with its type and the page's security headers.
fn serve(asset: &'static Asset) -> Response {
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, asset.content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
