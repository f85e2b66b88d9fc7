//! The inbound side of node-to-node RPC: the [`RequestHandler`] that
//! dispatches peers' requests arriving over the transport (read or store
//! replicas, coordinate a write this node was handed, serve anti-entropy,
//! transfer and tombstone requests, and gossip).

use std::sync::Arc;

use bytes::Bytes;

use crate::coordinator::Coordinator;
use crate::gossip::Gossip;
use crate::merkle::segment_range;
use crate::transfer::Transfers;
use crate::transport::{Request, RequestHandler, Response, TombstoneCheckReply};

/// Answers peers' requests from the local store and coordinator.
pub struct RpcHandler {
    coordinator: Coordinator,
    transfers: Arc<Transfers>,
    gossip: Arc<Gossip>,
}

impl RpcHandler {
    /// A handler over this node's coordinator (and through it, its store).
    pub fn new(coordinator: Coordinator, transfers: Arc<Transfers>, gossip: Arc<Gossip>) -> Self {
        Self {
            coordinator,
            transfers,
            gossip,
        }
    }

    fn read(&self, key: &[u8]) -> Response {
        let partition = self
            .coordinator
            .membership()
            .view()
            .ring()
            .partition_for_key(key);
        if self.transfers.is_receiving(partition) {
            return Response::NotReady;
        }
        match self.coordinator.storage().get(key) {
            Ok(object) => Response::Object(object),
            Err(error) => Response::Failed(error.to_string()),
        }
    }

    fn answer_now(&self, request: Request) -> Result<Response, Request> {
        let storage = self.coordinator.storage();
        let failed = |e: crate::storage::StorageError| Response::Failed(e.to_string());
        let response = match request {
            Request::ReplicaRead { key } => self.read(&key),
            Request::Ping => Response::Pong,
            Request::TransferReport => Response::Transfers(Box::new(self.transfers.report())),
            Request::ReadBatch { keys } => keys
                .iter()
                .map(|key| storage.get(key))
                .collect::<Result<Vec<_>, _>>()
                .map_or_else(failed, Response::Objects),
            Request::MerkleRoots { partitions } => {
                let forest = storage.forest();
                let valid = partitions.iter().all(|&p| p < forest.partitions());
                match valid {
                    true => Response::Roots(partitions.iter().map(|&p| forest.root(p)).collect()),
                    false => Response::Failed("partition out of range".into()),
                }
            }
            Request::MerkleLeaves { partition } if partition < storage.forest().partitions() => {
                Response::Leaves(storage.forest().leaves(partition))
            }
            Request::SegmentDigests {
                partition,
                segments,
            } if partition < storage.forest().partitions() => {
                let q = storage.forest().partitions();
                let mut out = Vec::new();
                for segment in segments {
                    let range = segment_range(partition, usize::from(segment), q);
                    match storage.digests(&range) {
                        Ok(digests) => out.extend(digests),
                        Err(error) => return Ok(failed(error)),
                    }
                }
                Response::Digests(out)
            }
            Request::ScanPartition {
                partition,
                after,
                limit,
            } if partition < storage.forest().partitions() => {
                let range = dynamo_ring::partition_range(partition, storage.forest().partitions());
                let limit = (limit as usize).clamp(1, 4096);
                match storage.scan_page(&range, after.as_deref(), limit) {
                    Ok((items, next)) => Response::Page {
                        items,
                        next: next.map(Bytes::from),
                    },
                    Err(error) => failed(error),
                }
            }
            Request::TombstoneCheck { keys } => match crate::tombstones::holdings(storage, &keys) {
                Ok(keys) => Response::TombstoneCheck(Box::new(TombstoneCheckReply {
                    transfers: self.transfers.report(),
                    keys,
                })),
                Err(error) => failed(error),
            },
            Request::MerkleLeaves { .. }
            | Request::SegmentDigests { .. }
            | Request::ScanPartition { .. } => Response::Failed("partition out of range".into()),
            other => return Err(other),
        };
        Ok(response)
    }
}

impl RequestHandler for RpcHandler {
    fn handle_now(&self, request: Request) -> Result<Response, Request> {
        self.answer_now(request)
    }

    async fn handle_async(self: Arc<Self>, request: Request) -> Response {
        let storage = self.coordinator.storage();
        match request {
            Request::ReplicaWrite {
                key,
                object,
                hint_for,
            } => match storage.merge_for(key, object, hint_for).await {
                Ok(()) => Response::Written,
                Err(error) => Response::Failed(error.to_string()),
            },
            Request::MergeBatch { items } => {
                let merges = items
                    .into_iter()
                    .map(|(key, object)| storage.merge(key, object));
                written(futures::future::join_all(merges).await)
            }
            Request::PurgeTombstones { items } => {
                let purges = items
                    .into_iter()
                    .map(|(key, digest)| storage.delete_if(key, digest));
                written(futures::future::join_all(purges).await)
            }
            Request::Gossip(digest) => {
                let reply = self.gossip.digest();
                self.gossip.absorb(*digest);
                Response::Gossip(Box::new(reply))
            }
            Request::CoordinateWrite(write) => self.coordinator.coordinate_forwarded(write).await,
            other => Response::Failed(format!("{} cannot be handled asynchronously", other.kind())),
        }
    }
}

/// `Written` when every store operation succeeded, else the first error.
fn written<T>(results: Vec<Result<T, crate::storage::StorageError>>) -> Response {
    match results.into_iter().find_map(Result::err) {
        None => Response::Written,
        Some(error) => Response::Failed(error.to_string()),
    }
}
