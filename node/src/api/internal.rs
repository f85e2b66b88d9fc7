//! Internal routes: the upgrade to the node-to-node stream.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::routing::get;

use crate::replica::ReplicaService;
use crate::transport::{self, STREAM_PATH};

pub(super) fn router(service: Arc<ReplicaService>) -> Router {
    Router::new().route(
        STREAM_PATH,
        get(move |request: Request| transport::accept_stream(service.clone(), request)),
    )
}
