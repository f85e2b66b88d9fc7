//! What a node does when a peer asks it to read or store a replica, or to
//! coordinate a write it was handed.

use crate::coordinator::Coordinator;
use crate::transport::{Request, RequestHandler, Response};

/// Answers peers' requests from the local store and coordinator.
pub struct ReplicaService {
    coordinator: Coordinator,
}

impl ReplicaService {
    /// A service over this node's coordinator (and through it, its store).
    pub fn new(coordinator: Coordinator) -> Self {
        Self { coordinator }
    }
}

impl RequestHandler for ReplicaService {
    fn handle_now(&self, request: Request) -> Result<Response, Request> {
        let storage = self.coordinator.storage();
        let response = match request {
            Request::ReplicaRead { key } => match storage.get(&key) {
                Ok(object) => Response::Object(object),
                Err(error) => Response::Failed(error.to_string()),
            },
            Request::Ping => Response::Pong,
            Request::ReplicaWrite { .. } | Request::CoordinateWrite(_) => return Err(request),
        };
        Ok(response)
    }

    async fn handle_async(self: std::sync::Arc<Self>, request: Request) -> Response {
        match request {
            Request::ReplicaWrite { key, object } => {
                match self.coordinator.storage().merge(key, object).await {
                    Ok(()) => Response::Written,
                    Err(error) => Response::Failed(error.to_string()),
                }
            }
            Request::CoordinateWrite(write) => self.coordinator.coordinate_forwarded(write).await,
            other => Response::Failed(format!("{} cannot be handled asynchronously", other.kind())),
        }
    }
}
