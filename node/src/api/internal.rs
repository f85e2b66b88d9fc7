//! Internal routes: the upgrade to the node-to-node stream.

use std::sync::Arc;

use axum::extract::Request;
use axum::routing::get;
use axum::{Router, middleware};

use super::auth;
use crate::rpc_handler::RpcHandler;
use crate::transport::{self, STREAM_PATH};

pub(super) fn router(service: Arc<RpcHandler>, guard: auth::PeerGuard) -> Router {
    let router = Router::new().route(
        STREAM_PATH,
        get(move |request: Request| transport::accept_stream(service.clone(), request)),
    );
    if guard.credentials.is_none() && !guard.certificate {
        return router;
    }
    router.route_layer(middleware::from_fn_with_state(guard, auth::require_peer))
}
