//! The inbound side of node-to-node RPC: the [`RequestHandler`] that
//! dispatches peers' requests arriving over the transport (read or store
//! replicas, coordinate a write this node was handed, serve anti-entropy,
//! transfer and tombstone requests, and gossip).
//!
//! Requests come from peers that may be hostile: a request that repeats a
//! key or a segment is refused, and replies that gather states or digests
//! stop at [`BATCH_BYTES`] and let the caller ask for the rest, so that no
//! reply is much larger than what was asked.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::coordinator::Coordinator;
use crate::gossip::Gossip;
use crate::merkle::{SEGMENTS, segment_range};
use crate::metrics::Metrics;
use crate::storage::Storage;
use crate::transfer::Transfers;
use crate::transport::limits::BATCH_BYTES;
use crate::transport::{Request, RequestHandler, Response, TombstoneCheckReply};

/// Answers peers' requests from the local store and coordinator.
pub struct RpcHandler {
    coordinator: Coordinator,
    transfers: Arc<Transfers>,
    gossip: Arc<Gossip>,
    stall_timeout: Duration,
    metrics: Metrics,
}

impl RpcHandler {
    /// A handler over this node's coordinator (and through it, its store).
    /// A peer stalling for `stall_timeout` inside a frame, or leaving
    /// replies unread that long, loses its stream: the node's request
    /// timeout, after which the peer's callers have given up anyway.
    /// Requests are counted by kind in `metrics`.
    pub fn new(
        coordinator: Coordinator,
        transfers: Arc<Transfers>,
        gossip: Arc<Gossip>,
        stall_timeout: Duration,
        metrics: Metrics,
    ) -> Self {
        Self {
            coordinator,
            transfers,
            gossip,
            metrics,
            stall_timeout,
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

    /// The states of `keys`, in order, as many as fit in [`BATCH_BYTES`]
    /// (at least one); refused when a key repeats; not ready while a partition of any of them is still being received
    /// (as for a single read).
    fn read_batch(&self, keys: &[Bytes]) -> Response {
        if !distinct(keys) {
            return Response::Failed("a read batch names a key more than once".into());
        }
        let view = self.coordinator.membership().view();
        let ring = view.ring();
        if keys
            .iter()
            .any(|key| self.transfers.is_receiving(ring.partition_for_key(key)))
        {
            return Response::NotReady;
        }
        let storage = self.coordinator.storage();
        let mut objects = Vec::with_capacity(keys.len());
        let mut bytes = 0;
        for key in keys {
            let object = match storage.get(key) {
                Ok(object) => object,
                Err(error) => return Response::Failed(error.to_string()),
            };
            let size = postcard::experimental::serialized_size(&object).unwrap_or(0);
            if !objects.is_empty() && bytes + size > BATCH_BYTES {
                break;
            }
            bytes += size;
            objects.push(object);
        }
        Response::Objects(objects)
    }

    fn answer_now(&self, request: Request) -> Result<Response, Request> {
        let storage = self.coordinator.storage();
        let failed = |e: crate::storage::StorageError| Response::Failed(e.to_string());
        let response = match request {
            Request::ReplicaRead { key } => self.read(&key),
            Request::Ping => Response::Pong,
            Request::TransferReport => Response::Transfers(Box::new(self.transfers.report())),
            Request::ReadBatch { keys } => self.read_batch(&keys),
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
                segment_digests(storage, partition, &segments)
            }
            Request::ScanPartition { partition, .. }
                if let Some(refusal) = self.transfers.scan_refusal(partition) =>
            {
                refusal
            }
            Request::ScanPartition {
                partition,
                after,
                limit,
            } if partition < storage.forest().partitions() => {
                let range = dynamo_ring::partition_range(partition, storage.forest().partitions());
                let limit = (limit as usize).clamp(1, 4096);
                match storage.scan_page(&range, after.as_deref(), limit, BATCH_BYTES) {
                    Ok((items, next)) => {
                        self.transfers.count_sent(items.len());
                        Response::Page {
                            items,
                            next: next.map(Bytes::from),
                        }
                    }
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
            // Answered here rather than in a task: its reply (this node's
            // ring) may be larger than the request, which only replies
            // answered at once may be (see the stream's memory budget in
            // `transport/server.rs`).
            Request::Gossip(digest) => {
                let reply = self.gossip.digest();
                self.gossip.absorb(*digest);
                Response::Gossip(Box::new(reply))
            }
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
        self.metrics.observe_peer_request(request.kind());
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
            Request::CoordinateWrite(write) => {
                let outcome = self.coordinator.coordinate_forwarded(write).await;
                outcome.into_coordinated()
            }
            Request::CoordinateWriteWithOutcome(write) => {
                let outcome = self.coordinator.coordinate_forwarded(write).await;
                outcome.into_write_outcome()
            }
            other => Response::Failed(format!("{} cannot be handled asynchronously", other.kind())),
        }
    }

    fn stall_timeout(&self) -> Duration {
        self.stall_timeout
    }
}

/// The (key, digest) pairs of `segments` of `partition`, whole segments in
/// order, as many as fit in [`BATCH_BYTES`] (at least one); refused when
/// a segment repeats or does not exist.
fn segment_digests(storage: &Storage, partition: u32, segments: &[u16]) -> Response {
    if segments.iter().any(|&s| usize::from(s) >= SEGMENTS) {
        return Response::Failed(format!("segments are numbered below {SEGMENTS}"));
    }
    if !distinct(segments) {
        return Response::Failed("a digests request names a segment more than once".into());
    }
    let q = storage.forest().partitions();
    let mut out = Vec::new();
    let mut bytes = 0;
    for (done, &segment) in segments.iter().enumerate() {
        let range = segment_range(partition, usize::from(segment), q);
        let digests = match storage.digests(&range) {
            Ok(digests) => digests,
            Err(error) => return Response::Failed(error.to_string()),
        };
        // A key, its length and a digest, each encoded in at most 10 bytes.
        let size: usize = digests.iter().map(|(key, _)| key.len() + 20).sum();
        if done > 0 && bytes + size > BATCH_BYTES {
            return Response::DigestsPrefix {
                digests: out,
                segments: u16::try_from(done).expect("at most 64 segments"),
            };
        }
        bytes += size;
        out.extend(digests);
    }
    Response::Digests(out)
}

/// Whether no item of `items` repeats.
fn distinct<T: Eq + Hash>(items: &[T]) -> bool {
    let mut seen = HashSet::with_capacity(items.len());
    items.iter().all(|item| seen.insert(item))
}

/// `Written` when every store operation succeeded, else the first error.
fn written<T>(results: Vec<Result<T, crate::storage::StorageError>>) -> Response {
    match results.into_iter().find_map(Result::err) {
        None => Response::Written,
        Some(error) => Response::Failed(error.to_string()),
    }
}
