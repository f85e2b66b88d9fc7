//! Key listing: the ring walked partition by partition in hash order, each
//! partition's records read from `r` of its owners (one by default), a
//! page bounded in keys and in partition scans.
//!
//! A page asks other nodes at most [`REMOTE_SCANS_PER_PAGE`] times; scans
//! of partitions this node holds are local reads and go on until the page
//! is full (an empty partition costs one RocksDB seek).
//!
//! A position is a RocksDB data key (8-byte ring hash, then the user key,
//! possibly empty): a page continues after it. Positions are hash-based,
//! not partition- or node-based, so a listing goes on across ring changes.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::{Coordinator, CoordinatorError};
use crate::peer::Peer;
use crate::storage::data_key;
use crate::transport::limits::BATCH_BYTES;
use crate::transport::{QuorumShortfall, Request, Response};
use crate::version::Object;

/// Most partition scans one page asks of other nodes: a page of a sparse
/// ring may hold fewer keys than asked, with a position to go on.
pub const REMOTE_SCANS_PER_PAGE: usize = 128;

/// One page of a listing.
#[derive(Debug)]
pub struct KeyPage {
    /// Keys with a live value, in hash order.
    pub keys: Vec<Bytes>,
    /// Where the next page starts; `None` once the whole ring was walked.
    pub next: Option<Vec<u8>>,
}

/// One replica's page of a partition: (key, state) records in hash order
/// and the position it stopped at, when more remain.
type ReplicaPage = (Vec<(Bytes, Object)>, Option<Vec<u8>>);

/// The records of one partition scan, merged over the replicas asked.
struct Scan {
    records: BTreeMap<Vec<u8>, (Bytes, Object)>,
    next: Option<Vec<u8>>,
    /// Requests it sent to other nodes.
    remote: usize,
}

impl Coordinator {
    /// Up to `limit` keys starting with `prefix` whose data key comes
    /// after `position` (an empty position starts at the beginning of the
    /// ring), read from `r` owners of each partition.
    pub async fn list_keys(
        &self,
        position: &[u8],
        prefix: &[u8],
        limit: usize,
        r: usize,
    ) -> Result<KeyPage, CoordinatorError> {
        let partitions = self.membership.view().ring().partitions;
        let mut position = position.to_vec();
        let mut keys = Vec::new();
        let mut remote = 0;
        while remote < REMOTE_SCANS_PER_PAGE {
            let hash = position_hash(&position);
            let partition = dynamo_ring::partition_of(hash, partitions);
            let scan = self
                .scan(partition, &position, limit - keys.len(), r)
                .await?;
            remote += scan.remote;
            let live = scan.records.into_values().filter(|(key, object)| {
                key.starts_with(prefix) && object.live_values().next().is_some()
            });
            keys.extend(live.map(|(key, _)| key));
            position = match scan.next {
                Some(next) => next,
                None if partition + 1 == partitions => return Ok(KeyPage { keys, next: None }),
                None => partition_start(partition + 1, partitions),
            };
            if keys.len() == limit {
                break;
            }
        }
        Ok(KeyPage {
            keys,
            next: Some(position),
        })
    }

    /// Up to `limit` records of `partition` after `position` from `r` of
    /// its owners (this node first when it is one, then those expected to
    /// answer soonest): `r` asked at once, the next owner for each that
    /// fails. With
    /// several, the page ends where the shortest reply ends, so it holds
    /// every record any of them has up to there.
    async fn scan(
        &self,
        partition: u32,
        position: &[u8],
        limit: usize,
        r: usize,
    ) -> Result<Scan, CoordinatorError> {
        let replicas = self.membership.view().partition_replicas(partition);
        let mut owners: Vec<&Peer> = replicas.owners().iter().map(AsRef::as_ref).collect();
        owners.sort_by_key(|p| self.answer_order(p));
        let mut owners = owners.into_iter();
        let mut pending = FuturesUnordered::new();
        for owner in owners.by_ref().take(r) {
            pending.push(self.scan_from(owner, partition, position, limit));
        }
        let mut replies = Vec::with_capacity(r);
        let mut remote = 0;
        while let Some((owner, page)) = pending.next().await {
            remote += usize::from(!self.is_me(owner));
            match page {
                Ok(page) => replies.push(page),
                Err(error) => {
                    tracing::debug!(peer = %owner.member.id, %error, "partition scan failed");
                    if let Some(next) = owners.next() {
                        pending.push(self.scan_from(next, partition, position, limit));
                    }
                }
            }
        }
        if replies.len() < r {
            return Err(QuorumShortfall {
                op: "list".into(),
                needed: r,
                answered: replies.len(),
                replicas: replicas.n(),
            }
            .into());
        }
        Ok(merge_pages(replies, remote))
    }

    /// [`Coordinator::scan_replica`], with the owner it asked.
    async fn scan_from<'a>(
        &'a self,
        owner: &'a Peer,
        partition: u32,
        position: &'a [u8],
        limit: usize,
    ) -> (&'a Peer, Result<ReplicaPage, String>) {
        let page = self.scan_replica(owner, partition, position, limit).await;
        (owner, page)
    }

    /// One replica's page of `partition`, local or remote.
    async fn scan_replica(
        &self,
        peer: &Peer,
        partition: u32,
        position: &[u8],
        limit: usize,
    ) -> Result<ReplicaPage, String> {
        let partitions = self.membership.view().ring().partitions;
        if self.is_me(peer) {
            if self.membership.is_receiving(partition) {
                return Err("this node is still receiving the partition".into());
            }
            let range: RangeInclusive<u64> = dynamo_ring::partition_range(partition, partitions);
            return self
                .storage
                .scan_page(&range, Some(position), limit, BATCH_BYTES)
                .map_err(|e| e.to_string());
        }
        let request = Request::ScanPartition {
            partition,
            after: Some(Bytes::copy_from_slice(position)),
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
        };
        match self.call(peer, &request).await {
            Ok(Response::Page { items, next }) => Ok((items, next.map(|n| n.to_vec()))),
            Ok(Response::NotReady) => Err(format!(
                "{} is still receiving the partition",
                peer.member.id
            )),
            Ok(Response::Failed(error)) => Err(error),
            Ok(_) => Err(format!(
                "{}: unexpected reply to a partition scan",
                peer.member.id
            )),
            Err(error) => Err(error.to_string()),
        }
    }
}

/// The union of replicas' pages up to the end of the shortest one (the
/// smallest position a reply stopped at, if any stopped early).
fn merge_pages(pages: Vec<ReplicaPage>, remote: usize) -> Scan {
    let next = pages.iter().filter_map(|(_, next)| next.clone()).min();
    let mut records: BTreeMap<Vec<u8>, (Bytes, Object)> = BTreeMap::new();
    for (items, _) in pages {
        for (key, object) in items {
            let position = data_key(&key);
            if next.as_ref().is_some_and(|end| position > *end) {
                continue;
            }
            match records.get_mut(&position) {
                Some((_, held)) => {
                    held.merge(&object);
                }
                None => {
                    records.insert(position, (key, object));
                }
            }
        }
    }
    Scan {
        records,
        next,
        remote,
    }
}

/// The ring hash a position lies at (0 for a position shorter than a hash).
fn position_hash(position: &[u8]) -> u64 {
    position
        .get(..8)
        .and_then(|bytes| bytes.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// The position just before every key of `partition`.
fn partition_start(partition: u32, partitions: u32) -> Vec<u8> {
    dynamo_ring::partition_range(partition, partitions)
        .start()
        .to_be_bytes()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::{Dot, VersionVector};

    fn object(value: &str) -> Object {
        let mut object = Object::new();
        let dot = Dot {
            actor: 1,
            counter: 1,
        };
        object
            .write(
                dot,
                &VersionVector::new(),
                Some(Bytes::from(value.to_string())),
            )
            .expect("a first write");
        object
    }

    fn record(key: &str) -> (Bytes, Object) {
        (Bytes::from(key.to_string()), object(key))
    }

    #[test]
    fn merged_pages_end_where_the_shortest_reply_ends() {
        let mut keys: Vec<&str> = vec!["a", "b", "c", "d", "e", "f"];
        keys.sort_by_key(|k| data_key(k.as_bytes()));
        let full: Vec<_> = keys.iter().map(|k| record(k)).collect();
        let short: Vec<_> = keys[..3].iter().map(|k| record(k)).collect();
        let stop = data_key(keys[2].as_bytes());
        let scan = merge_pages(vec![(full, None), (short, Some(stop.clone()))], 1);
        assert_eq!(scan.next, Some(stop));
        let listed: Vec<Bytes> = scan.records.into_values().map(|(k, _)| k).collect();
        let expected: Vec<Bytes> = keys[..3]
            .iter()
            .map(|k| Bytes::from(k.to_string()))
            .collect();
        assert_eq!(
            listed, expected,
            "in hash order, none past the shorter reply"
        );
    }

    #[test]
    fn a_partition_start_sorts_before_every_key_of_the_partition() {
        let partitions = 64;
        for key in ["a", "zz", "users/42"] {
            let position = data_key(key.as_bytes());
            let partition = dynamo_ring::partition_of(position_hash(&position), partitions);
            let start = partition_start(partition, partitions);
            assert!(start < position, "{key}");
            assert_eq!(
                dynamo_ring::partition_of(position_hash(&start), partitions),
                partition
            );
        }
    }
}
