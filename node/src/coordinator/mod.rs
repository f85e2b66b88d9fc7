//! Quorum coordination of client requests.
//!
//! Any node accepts a request. Reads are coordinated by the receiving node:
//! it asks the key's N replicas, answers after R replies, and repairs stale
//! replicas in the background. Writes are coordinated by a replica of the
//! key (the receiving node if it is one, otherwise it forwards): the
//! coordinator creates the new version locally, sends it to the other
//! replicas and answers after W acknowledgements.

mod read;
mod write;

use std::sync::Arc;

use crate::config::Peer;
use crate::membership::Membership;
use crate::rpc::{QuorumShortfall, RpcClient, RpcError};
use crate::storage::{Storage, StorageError};

/// Why a coordinated request failed.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// Fewer than R (or W) replicas answered.
    #[error(transparent)]
    Quorum(#[from] QuorumShortfall),
    /// The local store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// No replica of the key could be reached to coordinate a write.
    #[error("no replica of the key could coordinate the write: {0}")]
    NoCoordinator(String),
}

/// Coordinates reads and writes for this node.
#[derive(Clone)]
pub struct Coordinator {
    storage: Arc<Storage>,
    membership: Arc<Membership>,
    rpc: RpcClient,
}

impl Coordinator {
    /// A coordinator over the local store and the cluster view.
    pub fn new(storage: Arc<Storage>, membership: Arc<Membership>, rpc: RpcClient) -> Self {
        Self {
            storage,
            membership,
            rpc,
        }
    }

    /// The cluster view this coordinator routes by.
    pub fn membership(&self) -> &Arc<Membership> {
        &self.membership
    }

    fn is_me(&self, peer: &Peer) -> bool {
        peer.member.id == self.membership.me()
    }

    /// Records the outcome of a request to a peer with the failure detector.
    fn observe<T>(&self, peer: &Peer, result: &Result<T, RpcError>) {
        match result {
            Ok(_) | Err(RpcError::Status { .. }) => {
                self.membership.liveness().record_success(&peer.member.id)
            }
            Err(_) => self.membership.liveness().record_failure(&peer.member.id),
        }
    }
}
