//! HTTP routers: the client API (`/v1/kv`, `/v1/status`, health), the
//! admin API (`/v1/admin`) and the node-to-node stream (`/internal/v1`),
//! each with its own credentials, kept apart so that the admin routes and
//! the stream can get a listener of their own.

mod admin;
pub mod attributes;
pub mod auth;
mod backup;
mod batch;
mod error;
mod internal;
mod kv;
pub mod limits;
mod list;
mod metrics;
mod params;
mod status;
mod trace;
mod ui;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};

use crate::antientropy::AntiEntropy;
use crate::backup::Backups;
use crate::config::NodeConfig;
use crate::coordinator::Coordinator;
use crate::credentials::Credentials;
use crate::gossip::Gossip;
use crate::handoff::Handoff;
use crate::metrics::Metrics;
use crate::ring_adoption::RingAdoption;
use crate::rpc_handler::RpcHandler;
use crate::tombstones::TombstoneGc;
use crate::transfer::Transfers;
pub use error::ApiError;

/// Header carrying the opaque causal context.
pub const CONTEXT_HEADER: &str = "x-dynamo-context";

/// Everything the handlers need.
pub struct AppState {
    /// Request coordination.
    pub coordinator: Coordinator,
    /// This node's zone.
    pub zone: String,
    /// Where the other nodes reach this one.
    pub address: String,
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
    /// What `/metrics` shows.
    pub metrics: Metrics,
    /// Backup checkpoints.
    pub backups: Backups,
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
    /// State for a node that is ready to serve, recording into `metrics`
    /// (shared with the node-to-node handler).
    pub fn new(
        coordinator: Coordinator,
        config: &NodeConfig,
        rings: Arc<RingAdoption>,
        transfers: Arc<Transfers>,
        tasks: MaintenanceTasks,
        metrics: Metrics,
    ) -> Self {
        let backups = Backups::new(&config.data_dir, coordinator.storage().clone());
        Self {
            backups,
            coordinator,
            rings,
            transfers,
            tasks,
            metrics,
            zone: config.zone.clone(),
            address: config.address.clone(),
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

/// The client routes: `/v1/kv/{key}`, `/v1/status`, `/healthz`,
/// `/readyz` and `/metrics`, and the admin routes too when `with_admin`
/// (a node without a separate internal listener). With credentials, each
/// `/v1` route requires its token (see [`auth`]). Beyond the cap on
/// requests in flight, `/v1` routes answer `503` at once.
pub fn client_router(
    state: Arc<AppState>,
    credentials: Option<Arc<Credentials>>,
    with_admin: bool,
) -> Router {
    let mut v1 = kv_routes(&credentials).merge(status_routes(&credentials));
    if with_admin {
        v1 = v1.merge(admin_routes(&credentials));
    }
    finish(v1, state.clone()).merge(metrics::router(state, credentials))
}

/// The admin routes (`/v1/admin/...`), `/v1/status`, the probes and
/// `/metrics`, for a listener of their own.
pub fn admin_router(state: Arc<AppState>, credentials: Option<Arc<Credentials>>) -> Router {
    let v1 = admin_routes(&credentials).merge(status_routes(&credentials));
    finish(v1, state.clone()).merge(metrics::router(state, credentials))
}

/// `/v1/kv/{key}`, requiring a client token with rights on the key; the
/// listing (`GET /v1/kv`) and batch reads, requiring a client token
/// whose rights the handler checks key by key.
fn kv_routes(credentials: &Option<Arc<Credentials>>) -> Router<Arc<AppState>> {
    let keys = Router::new()
        .route(
            "/v1/kv/{*key}",
            get(kv::get_kv).put(kv::put_kv).delete(kv::delete_kv),
        )
        .route("/v1/kv/", any(kv::empty_key));
    let many = Router::new()
        .route("/v1/kv", get(list::list_keys).fallback(kv::empty_key))
        .route("/v1/batch/get", post(batch::batch_get));
    let routes = match credentials {
        Some(c) => keys
            .route_layer(from_fn_with_state(c.clone(), auth::require_client))
            .merge(many.route_layer(from_fn_with_state(c.clone(), auth::require_reader))),
        None => keys.merge(many),
    };
    routes.route_layer(axum::middleware::from_fn(trace::client_span))
}

/// `/v1/status`, requiring the admin token or a client token.
fn status_routes(credentials: &Option<Arc<Credentials>>) -> Router<Arc<AppState>> {
    let routes = Router::new().route("/v1/status", get(status::status));
    match credentials {
        Some(c) => routes.route_layer(from_fn_with_state(c.clone(), auth::require_admin_or_client)),
        None => routes,
    }
}

/// `/v1/admin/...`, requiring the admin token.
fn admin_routes(credentials: &Option<Arc<Credentials>>) -> Router<Arc<AppState>> {
    let routes = Router::new()
        .route("/v1/admin/ring", get(admin::get_ring).put(admin::put_ring))
        .route("/v1/admin/members", post(admin::change_members))
        .route("/v1/admin/transfers", get(admin::transfers))
        .route("/v1/admin/merkle", get(admin::merkle))
        .route("/v1/admin/backups", get(backup::list))
        .route(
            "/v1/admin/backups/{id}",
            put(backup::create).delete(backup::remove),
        )
        .route(
            "/v1/admin/backups/{id}/hold",
            put(backup::hold).delete(backup::release),
        )
        .route("/v1/admin/backups/{id}/records", get(backup::records))
        .route("/v1/admin/import", post(backup::import));
    match credentials {
        Some(c) => routes.route_layer(from_fn_with_state(c.clone(), auth::require_admin)),
        None => routes,
    }
}

/// `v1` with the cap on requests in flight and, around it, the count of
/// key requests by outcome; the probes, the status page (`ui`), JSON
/// answers for unknown routes and methods, and the body limit.
fn finish(v1: Router<Arc<AppState>>, state: Arc<AppState>) -> Router {
    let in_flight = limits::InFlight::new(state.max_in_flight_requests);
    v1.route_layer(from_fn_with_state(in_flight, limits::limit_in_flight))
        .route_layer(from_fn_with_state(state.clone(), metrics::measure))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .merge(ui::routes())
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_such_route",
                "no such route (see docs/api.md)",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
            )
        })
        .layer(DefaultBodyLimit::max(state.max_value_bytes))
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

/// The node-to-node router: the stream upgrade, requiring what `guard`
/// names.
pub fn stream_router(service: Arc<RpcHandler>, guard: auth::PeerGuard) -> Router {
    internal::router(service, guard)
}
