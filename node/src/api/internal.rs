//! Internal routes: the upgrade to the node-to-node stream.

use std::sync::Arc;

use axum::extract::Request;
use axum::routing::get;
use axum::{Router, middleware};

use super::auth;
use crate::rpc_handler::RpcHandler;
use crate::transport::{self, STREAM_PATH};

pub(super) fn router(service: Arc<RpcHandler>, token: Option<Arc<str>>) -> Router {
    let router = Router::new().route(
        STREAM_PATH,
        get(move |request: Request| transport::accept_stream(service.clone(), request)),
    );
    match token {
        Some(token) => router.route_layer(middleware::from_fn_with_state(token, auth::require)),
        None => router,
    }
}
