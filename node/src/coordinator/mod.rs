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

use bytes::Bytes;

use crate::config::Peer;
use crate::membership::Membership;
use crate::storage::{Storage, StorageError};
use crate::transport::{QuorumShortfall, Request, Response, RpcError, Transport};
use crate::version::Object;

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
    transport: Arc<Transport>,
}

impl Coordinator {
    /// A coordinator over the local store and the cluster view.
    pub fn new(
        storage: Arc<Storage>,
        membership: Arc<Membership>,
        transport: Arc<Transport>,
    ) -> Self {
        Self {
            storage,
            membership,
            transport,
        }
    }

    /// The cluster view this coordinator routes by.
    pub fn membership(&self) -> &Arc<Membership> {
        &self.membership
    }

    /// The local store.
    pub fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }

    fn is_me(&self, peer: &Peer) -> bool {
        peer.member.id == self.membership.me()
    }

    /// Calls a peer and tells the failure detector how it went.
    async fn call(&self, peer: &Peer, request: &Request) -> Result<Response, RpcError> {
        let result = self.transport.call(peer, request).await;
        let liveness = self.membership.liveness();
        match &result {
            Err(error) if !error.peer_answered() => liveness.record_failure(&peer.member.id),
            _ => liveness.record_success(&peer.member.id),
        }
        result
    }

    /// A replica's state of `key`, local or remote.
    async fn read_replica(&self, peer: &Peer, key: Bytes) -> Result<Option<Object>, String> {
        if self.is_me(peer) {
            return self.storage.get(&key).map_err(|e| e.to_string());
        }
        match self.call(peer, &Request::ReplicaRead { key }).await {
            Ok(Response::Object(object)) => Ok(object),
            Ok(_) => Err(unexpected(peer, "replica read").to_string()),
            Err(error) => Err(error.to_string()),
        }
    }

    /// Merges `object` into a replica, local or remote.
    async fn write_replica(&self, peer: &Peer, key: Bytes, object: Object) -> Result<(), String> {
        if self.is_me(peer) {
            return self
                .storage
                .merge(key, object)
                .await
                .map_err(|e| e.to_string());
        }
        match self
            .call(peer, &Request::ReplicaWrite { key, object })
            .await
        {
            Ok(Response::Written) => Ok(()),
            Ok(_) => Err(unexpected(peer, "replica write").to_string()),
            Err(error) => Err(error.to_string()),
        }
    }
}

fn unexpected(peer: &Peer, request: &'static str) -> RpcError {
    RpcError::Unexpected {
        peer: peer.member.id.clone(),
        request,
    }
}
