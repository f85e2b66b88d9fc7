//! Anti-entropy: periodic exchanges between replicas of the same
//! partitions, comparing their Merkle trees (see [`crate::merkle`]) and
//! moving only the keys of differing segments.
//!
//! Each round this node picks the next reachable peer and, for every
//! partition both own: compares Merkle roots (one request for all shared
//! partitions); for differing roots, the 64 leaves; for differing leaves,
//! the (key, digest) lists of those segments; and then moves only the keys
//! whose digests differ, in both directions (pull: read from the peer and
//! merge here; push: send ours to merge there). Merging is idempotent and
//! commutative, so both sides end with the join of their states.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;

use crate::config::Pacing;
use crate::membership::Membership;
use crate::merkle::{SEGMENTS, segment_range};
use crate::pacing::pace;
use crate::peer::Peer;
use crate::periodic::{PeriodicTask, RoundError};
use crate::storage::Storage;
use crate::transfer::Transfers;
use crate::transport::{Dialing, Request, Response, Transport};
use crate::version::Object;

/// Keys moved per request.
const BATCH: usize = 128;

/// Anti-entropy counters, as shown by `/v1/status`.
#[derive(Default)]
struct Counters {
    exchanges: AtomicU64,
    partitions_compared: AtomicU64,
    partitions_differing: AtomicU64,
    keys_repaired: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    exchanges_failed: AtomicU64,
    bytes_repaired: AtomicU64,
}

/// A snapshot of the counters.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct AntiEntropyReport {
    /// Completed exchanges with a peer.
    pub exchanges: u64,
    /// Partitions whose roots were compared.
    pub partitions_compared: u64,
    /// Partitions whose roots differed.
    pub partitions_differing: u64,
    /// Keys pulled or pushed because they differed.
    pub keys_repaired: u64,
    /// Bytes of requests sent (tree parts, digests, keys and states).
    pub bytes_sent: u64,
    /// Bytes of replies received.
    pub bytes_received: u64,
}

/// The totals `/metrics` shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExchangeTotals {
    /// Exchanges that completed.
    pub exchanges: u64,
    /// Exchanges that failed part way (the peer failed or answered
    /// wrongly); what they repaired before is counted.
    pub exchanges_failed: u64,
    /// Keys pulled or pushed because they differed.
    pub keys_repaired: u64,
    /// Encoded bytes of the states those keys moved with.
    pub bytes_repaired: u64,
}

/// Anti-entropy over this node's store.
pub struct AntiEntropy {
    storage: Arc<Storage>,
    membership: Arc<Membership>,
    transfers: Arc<Transfers>,
    transport: Transport,
    interval: Duration,
    keys_per_sec: u64,
    counters: Counters,
    next_peer: AtomicU64,
}

impl AntiEntropy {
    /// Anti-entropy paced by `pacing`: one exchange per interval,
    /// repairing at most so many keys a second.
    pub fn new(
        storage: Arc<Storage>,
        membership: Arc<Membership>,
        transfers: Arc<Transfers>,
        dialing: Dialing,
        pacing: Pacing,
    ) -> Self {
        Self {
            storage,
            membership,
            transfers,
            transport: Transport::dialing(dialing),
            interval: pacing.interval,
            keys_per_sec: pacing.keys_per_sec.max(1),
            counters: Counters::default(),
            next_peer: AtomicU64::new(0),
        }
    }

    /// Current counters.
    pub fn report(&self) -> AntiEntropyReport {
        let c = &self.counters;
        AntiEntropyReport {
            exchanges: c.exchanges.load(Ordering::Relaxed),
            partitions_compared: c.partitions_compared.load(Ordering::Relaxed),
            partitions_differing: c.partitions_differing.load(Ordering::Relaxed),
            keys_repaired: c.keys_repaired.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
            bytes_received: c.bytes_received.load(Ordering::Relaxed),
        }
    }

    /// Exchange and repair totals.
    pub fn totals(&self) -> ExchangeTotals {
        let c = &self.counters;
        ExchangeTotals {
            exchanges: c.exchanges.load(Ordering::Relaxed),
            exchanges_failed: c.exchanges_failed.load(Ordering::Relaxed),
            keys_repaired: c.keys_repaired.load(Ordering::Relaxed),
            bytes_repaired: c.bytes_repaired.load(Ordering::Relaxed),
        }
    }

    /// The next reachable peer in id order.
    fn pick_peer(&self) -> Option<Arc<Peer>> {
        let view = self.membership.view();
        let me = self.membership.me();
        let peers: Vec<&Arc<Peer>> = view
            .all()
            .filter(|p| p.member.id != me && self.membership.is_usable(&p.member.id))
            .collect();
        if peers.is_empty() {
            return None;
        }
        let i = self.next_peer.fetch_add(1, Ordering::Relaxed) as usize % peers.len();
        Some(peers[i].clone())
    }

    /// One full exchange with `peer` over the partitions both own.
    pub async fn exchange(&self, peer: &Peer) -> Result<(), String> {
        let view = self.membership.view();
        let ring = view.ring();
        let mine = ring.partitions_of(self.membership.me());
        let theirs = ring.partitions_of(&peer.member.id);
        let shared: Vec<u32> = mine
            .into_iter()
            .filter(|p| theirs.binary_search(p).is_ok() && !self.transfers.is_receiving(*p))
            .collect();
        if shared.is_empty() {
            return Ok(());
        }
        let roots = match self
            .call(
                peer,
                Request::MerkleRoots {
                    partitions: shared.clone(),
                },
            )
            .await?
        {
            Response::Roots(roots) if roots.len() == shared.len() => roots,
            _ => return Err("bad reply to a roots request".into()),
        };
        let forest = self.storage.forest();
        self.counters
            .partitions_compared
            .fetch_add(shared.len() as u64, Ordering::Relaxed);
        for (partition, root) in shared.into_iter().zip(roots) {
            if forest.root(partition) == root {
                continue;
            }
            self.counters
                .partitions_differing
                .fetch_add(1, Ordering::Relaxed);
            self.repair_partition(peer, partition).await?;
        }
        Ok(())
    }

    async fn repair_partition(&self, peer: &Peer, partition: u32) -> Result<(), String> {
        let theirs = match self.call(peer, Request::MerkleLeaves { partition }).await? {
            Response::Leaves(leaves) if leaves.len() == SEGMENTS => leaves,
            _ => return Err("bad reply to a leaves request".into()),
        };
        let ours = self.storage.forest().leaves(partition);
        let segments: Vec<u16> = (0..SEGMENTS)
            .filter(|&s| ours[s] != theirs[s])
            .map(|s| s as u16)
            .collect();
        if segments.is_empty() {
            return Ok(());
        }
        let remote = self.segment_digests(peer, partition, &segments).await?;
        let partitions = self.storage.forest().partitions();
        let mut local: HashMap<Bytes, u64> = HashMap::new();
        for segment in segments {
            let range = segment_range(partition, usize::from(segment), partitions);
            for (key, digest) in self.storage.digests(&range).map_err(|e| e.to_string())? {
                local.insert(key, digest);
            }
        }
        let mut pull = Vec::new();
        for (key, digest) in remote {
            match local.remove(&key) {
                Some(ours) if ours == digest => {}
                Some(_) => {
                    pull.push(key.clone());
                    local.insert(key, 0);
                }
                None => pull.push(key),
            }
        }
        // What is left in `local` the peer lacks or holds differently.
        let push: Vec<Bytes> = local.into_keys().collect();
        for chunk in pull.chunks(BATCH) {
            self.pull(peer, chunk.to_vec()).await?;
        }
        for chunk in push.chunks(BATCH) {
            self.push(peer, chunk).await?;
        }
        Ok(())
    }

    /// The peer's (key, digest) pairs of `segments` of `partition`, asking
    /// again for the segments a reply leaves out (one that would be too
    /// large holds the first segments only).
    async fn segment_digests(
        &self,
        peer: &Peer,
        partition: u32,
        segments: &[u16],
    ) -> Result<Vec<(Bytes, u64)>, String> {
        let mut digests = Vec::new();
        let mut rest = segments;
        while !rest.is_empty() {
            let request = Request::SegmentDigests {
                partition,
                segments: rest.to_vec(),
            };
            match self.call(peer, request).await? {
                Response::Digests(all) => return Ok([digests, all].concat()),
                Response::DigestsPrefix {
                    digests: some,
                    segments: covered,
                } if (1..=rest.len()).contains(&usize::from(covered)) => {
                    digests.extend(some);
                    rest = &rest[usize::from(covered)..];
                }
                _ => return Err("bad reply to a digests request".into()),
            }
        }
        Ok(digests)
    }

    /// Reads `keys` from the peer and merges them here, asking again for
    /// the keys a reply leaves out (one that would be too large holds the
    /// first states only). A peer still receiving their partition has
    /// nothing to give yet (it answers not ready): the pull stops there,
    /// and its transfer, then a later exchange, converge the keys.
    async fn pull(&self, peer: &Peer, keys: Vec<Bytes>) -> Result<(), String> {
        let started = Instant::now();
        let mut bytes = 0;
        let mut rest = keys.as_slice();
        while !rest.is_empty() {
            let request = Request::ReadBatch {
                keys: rest.to_vec(),
            };
            let objects = match self.call(peer, request).await? {
                Response::Objects(objects) if (1..=rest.len()).contains(&objects.len()) => objects,
                Response::NotReady => break,
                _ => return Err("bad reply to a batch read".into()),
            };
            let (read, unread) = rest.split_at(objects.len());
            bytes += objects.iter().flatten().map(encoded_size).sum::<usize>();
            let merges = read
                .iter()
                .zip(objects)
                .filter_map(|(key, object)| object.map(|o| self.storage.merge(key.clone(), o)));
            for result in futures::future::join_all(merges).await {
                result.map_err(|e| e.to_string())?;
            }
            rest = unread;
        }
        self.repaired(keys.len() - rest.len(), bytes, started).await;
        Ok(())
    }

    async fn push(&self, peer: &Peer, keys: &[Bytes]) -> Result<(), String> {
        let started = Instant::now();
        let mut items: Vec<(Bytes, Object)> = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(object) = self.storage.get(key).map_err(|e| e.to_string())? {
                items.push((key.clone(), object));
            }
        }
        if items.is_empty() {
            return Ok(());
        }
        let count = items.len();
        let bytes = items.iter().map(|(_, object)| encoded_size(object)).sum();
        match self.call(peer, Request::MergeBatch { items }).await? {
            Response::Written => {}
            _ => return Err("bad reply to a merge batch".into()),
        }
        self.repaired(count, bytes, started).await;
        Ok(())
    }

    /// Counts repaired keys and their bytes, and paces repair to the
    /// configured key rate.
    async fn repaired(&self, count: usize, bytes: usize, started: Instant) {
        self.counters
            .keys_repaired
            .fetch_add(count as u64, Ordering::Relaxed);
        self.counters
            .bytes_repaired
            .fetch_add(bytes as u64, Ordering::Relaxed);
        pace(count, self.keys_per_sec, started).await;
    }

    /// Calls `peer`, counting the bytes both ways.
    async fn call(&self, peer: &Peer, request: Request) -> Result<Response, String> {
        let sent = postcard::to_stdvec(&request).map_or(0, |b| b.len());
        self.counters
            .bytes_sent
            .fetch_add(sent as u64, Ordering::Relaxed);
        let response = self
            .transport
            .call(peer, &request)
            .await
            .map_err(|e| e.to_string())?;
        let received = postcard::to_stdvec(&response).map_or(0, |b| b.len());
        self.counters
            .bytes_received
            .fetch_add(received as u64, Ordering::Relaxed);
        match response {
            Response::Failed(why) => Err(why),
            other => Ok(other),
        }
    }
}

impl PeriodicTask for AntiEntropy {
    fn name(&self) -> &'static str {
        "anti-entropy"
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    /// One exchange with the next reachable peer.
    async fn round(&self) -> Result<(), RoundError> {
        let Some(peer) = self.pick_peer() else {
            return Ok(());
        };
        let before = self.report();
        let outcome = self.exchange(&peer).await;
        log_repairs(&peer.member.id, &before, &self.report());
        outcome.map_err(|error| {
            self.counters
                .exchanges_failed
                .fetch_add(1, Ordering::Relaxed);
            RoundError::peer(
                "anti-entropy exchange failed",
                peer.member.id.clone(),
                error,
            )
        })?;
        self.counters.exchanges.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// The size of `object` as it crosses the wire.
fn encoded_size(object: &Object) -> usize {
    postcard::experimental::serialized_size(object).unwrap_or(0)
}

/// One line for an exchange with `peer` that repaired keys (counters
/// went from `before` to `after`); nothing when it repaired none.
fn log_repairs(peer: &str, before: &AntiEntropyReport, after: &AntiEntropyReport) {
    let keys = after.keys_repaired - before.keys_repaired;
    if keys == 0 {
        return;
    }
    let partitions = after.partitions_differing - before.partitions_differing;
    let bytes =
        (after.bytes_sent + after.bytes_received) - (before.bytes_sent + before.bytes_received);
    tracing::info!(
        peer,
        keys,
        partitions,
        bytes,
        "anti-entropy repaired {keys} keys in {partitions} partitions with {peer} ({bytes} bytes exchanged)"
    );
}
