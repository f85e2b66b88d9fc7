//! HTTP routers: the client API (`/v1`, health) and the internal
//! node-to-node API (`/internal/v1`), kept apart so each can get its own
//! listener and, later, its own authentication.

mod admin;
pub mod auth;
mod error;
mod internal;
mod kv;
pub mod limits;
mod status;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Router, middleware};

use crate::antientropy::AntiEntropy;
use crate::config::NodeConfig;
use crate::coordinator::Coordinator;
use crate::gossip::Gossip;
use crate::handoff::Handoff;
use crate::ring_adoption::RingAdoption;
use crate::rpc_handler::RpcHandler;
use crate::tombstones::TombstoneGc;
use crate::transfer::Transfers;
pub use error::ApiError;

/// Everything the handlers need.
pub struct AppState {
    /// Request coordination.
    pub coordinator: Coordinator,
    /// This node's zone.
    pub zone: String,
    /// Replication factor N, the bound of per-request R and W.
    pub n: usize,
    /// Default read quorum.
    pub r: usize,
    /// Default write quorum.
    pub w: usize,
    /// Largest accepted value in bytes.
    pub max_value_bytes: usize,
    /// Most client requests in flight at once.
    pub max_in_flight_requests: usize,
    /// Ring adoption (admin calls publish rings through it).
    pub rings: Arc<RingAdoption>,
    /// Partition transfer.
    pub transfers: Arc<Transfers>,
    /// The maintenance tasks whose state `/v1/status` shows.
    pub tasks: MaintenanceTasks,
    ready: AtomicBool,
}

/// The node's periodic maintenance tasks (those with state to show; the
/// liveness probes report through the failure detector).
pub struct MaintenanceTasks {
    /// Membership gossip.
    pub gossip: Arc<Gossip>,
    /// Hinted handoff.
    pub handoff: Arc<Handoff>,
    /// Merkle anti-entropy.
    pub anti_entropy: Arc<AntiEntropy>,
    /// Tombstone purging.
    pub tombstones: Arc<TombstoneGc>,
}

impl AppState {
    /// State for a node that is ready to serve.
    pub fn new(
        coordinator: Coordinator,
        config: &NodeConfig,
        rings: Arc<RingAdoption>,
        transfers: Arc<Transfers>,
        tasks: MaintenanceTasks,
    ) -> Self {
        Self {
            coordinator,
            rings,
            transfers,
            tasks,
            zone: config.zone.clone(),
            n: config.n,
            r: config.r,
            w: config.w,
            max_value_bytes: config.max_value_bytes,
            max_in_flight_requests: config.connections.max_in_flight_requests,
            ready: AtomicBool::new(true),
        }
    }

    /// Marks the node as draining: `/readyz` fails from now on.
    pub fn set_not_ready(&self) {
        self.ready.store(false, Ordering::SeqCst);
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

/// The client-facing router: `/v1/kv/{key}`, `/v1/status`, the admin
/// routes, `/healthz` and `/readyz`; with a token, `/v1` routes require it.
/// Beyond the cap on requests in flight, `/v1` routes answer `503` at once.
pub fn client_router(state: Arc<AppState>, token: Option<Arc<str>>) -> Router {
    let limit = state.max_value_bytes;
    let in_flight = limits::InFlight::new(state.max_in_flight_requests);
    let mut v1 = Router::new()
        .route(
            "/v1/kv/{*key}",
            get(kv::get_kv).put(kv::put_kv).delete(kv::delete_kv),
        )
        .route("/v1/kv", any(kv::empty_key))
        .route("/v1/kv/", any(kv::empty_key))
        .route("/v1/status", get(status::status))
        .route("/v1/admin/ring", get(admin::get_ring).put(admin::put_ring))
        .route("/v1/admin/members", post(admin::change_members))
        .route("/v1/admin/transfers", get(admin::transfers))
        .route("/v1/admin/merkle", get(admin::merkle));
    if let Some(token) = token {
        v1 = v1.route_layer(middleware::from_fn_with_state(token, auth::require));
    }
    v1 = v1.route_layer(middleware::from_fn_with_state(
        in_flight,
        limits::limit_in_flight,
    ));
    v1.route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
            )
        })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// `GET /readyz`: ready until the node starts shutting down.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.is_ready() {
        "ready".into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "node is shutting down",
        )
        .into_response()
    }
}

/// The node-to-node router; with a token, the stream upgrade requires it.
pub fn internal_router(service: Arc<RpcHandler>, token: Option<Arc<str>>) -> Router {
    internal::router(service, token)
}
