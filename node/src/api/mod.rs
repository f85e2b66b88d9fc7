//! HTTP routers: the client API (`/v1`, health) and the internal
//! node-to-node API (`/internal/v1`), kept apart so each can get its own
//! listener and, later, its own authentication.

mod admin;
pub mod auth;
mod client;
mod error;
mod internal;
mod status;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;

use crate::antientropy::AntiEntropy;
use crate::config::NodeConfig;
use crate::coordinator::Coordinator;
use crate::gossip::Gossip;
use crate::handoff::Handoff;
use crate::replica::ReplicaService;
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
    /// Ring changes and partition transfer.
    pub transfers: Arc<Transfers>,
    /// The background tasks whose counters `/v1/status` shows.
    pub background: BackgroundTasks,
    ready: AtomicBool,
}

/// The node's background tasks, for their counters.
pub struct BackgroundTasks {
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
        transfers: Arc<Transfers>,
        background: BackgroundTasks,
    ) -> Self {
        Self {
            coordinator,
            transfers,
            background,
            zone: config.zone.clone(),
            n: config.n,
            r: config.r,
            w: config.w,
            max_value_bytes: config.max_value_bytes,
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

/// The client-facing router; with a token, `/v1` routes require it.
pub fn client_router(state: Arc<AppState>, token: Option<Arc<str>>) -> Router {
    client::router(state, token)
}

/// The node-to-node router; with a token, the stream upgrade requires it.
pub fn internal_router(service: Arc<ReplicaService>, token: Option<Arc<str>>) -> Router {
    internal::router(service, token)
}
