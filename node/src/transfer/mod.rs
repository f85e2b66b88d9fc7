//! Partition transfer after ring changes.
//!
//! Every ring the node adopts (see the `ring_adoption` module, which sits
//! above this one) replans which partitions it gained
//! ([`Transfers::replan`]). A task then streams each gained partition from
//! every reachable previous owner (merging, so nothing any of them holds
//! is missed). Until a partition is complete the node answers reads for it
//! with "not ready", so it never serves as an owner before it has the
//! data; writes to it are accepted (they merge with what arrives later).
//!
//! Partitions the node lost are retired: it keeps their data (new owners
//! stream from it) until every new owner reports it has received them,
//! hands its copy to them once more (writes it coordinated under the old
//! ring after they streamed it would otherwise exist only here), then
//! deletes it, except keys it still holds hints for. Old data left behind
//! could otherwise come back if the node owned the partition again later,
//! after a delete of one of its keys had been purged.

mod plan;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dynamo_ring::document::TransferState;
use dynamo_ring::{Member, RingDocument, TransferReport};
use tokio::sync::{Notify, watch};

use crate::membership::Membership;
use crate::pacing::pace;
use crate::peer::Peer;
use crate::storage::meta::read_json;
use crate::storage::{Storage, StorageError};
use crate::sync::lock;
use crate::transport::limits::BATCH_BYTES;
use crate::transport::{Dialing, Request, Response, RpcError, Transport};
pub use plan::{Incoming, Plan, Source};

/// Meta record holding the transfer plan (JSON).
const META_PLAN: &str = "transfers";
/// Records per streamed page.
const PAGE: u32 = 256;
/// How often, when idle, retired partitions are checked for deletion.
const RETIRED_CHECK: Duration = Duration::from_secs(5);

/// The refusal of a scan by a source that lost its data and is receiving
/// the partition itself, as it crosses the wire (the previous release
/// counts it as a failed source, which is right too).
const REBUILDING: &str =
    "rebuilding: this node lost its data and is receiving the partition itself";

/// Why a source did not stream a partition.
enum SourceError {
    /// It lost its data and is receiving the partition itself.
    Rebuilding,
    /// It is receiving the partition after a ring change.
    Receiving,
    /// It could not be reached or failed.
    Failed(String),
}

/// Whether a persisted plan is for the ring of epoch `epoch`, the one the
/// node starts from. A plan for another ring with partitions in it is
/// discarded with a warning (the node replans when it adopts a ring, but
/// loses track of what it was receiving and retiring).
fn plan_applies(plan: &Plan, epoch: u64) -> bool {
    if plan.epoch == epoch {
        return true;
    }
    if !plan.partitions.is_empty() || !plan.retired.is_empty() {
        tracing::warn!(
            plan_epoch = plan.epoch,
            ring_epoch = epoch,
            "discarding the persisted transfer plan: it is for another ring"
        );
    }
    false
}

/// The plan of partitions to receive, and the task streaming them.
pub struct Transfers {
    storage: Arc<Storage>,
    membership: Arc<Membership>,
    transport: Transport,
    plan: Mutex<Plan>,
    wake: Notify,
    keys_per_sec: u64,
    /// When the current plan started (for the summary of its transfers).
    started: Mutex<Instant>,
    totals: Totals,
}

/// Keys moved by transfers since the node started, both ways.
#[derive(Default)]
struct Totals {
    sent: AtomicU64,
    received: AtomicU64,
}

/// A snapshot of the keys transfers moved since the node started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransferTotals {
    /// Keys this node sent: pages of partitions others streamed from it,
    /// and retired partitions it handed over.
    pub keys_sent: u64,
    /// Keys this node received streaming the partitions it gained.
    pub keys_received: u64,
}

impl Transfers {
    /// Loads the persisted plan, if it is for the ring `membership` starts
    /// from; a plan that does not parse is discarded with a warning.
    pub fn new(
        storage: Arc<Storage>,
        membership: Arc<Membership>,
        dialing: Dialing,
        keys_per_sec: u64,
    ) -> Result<Self, StorageError> {
        let view = membership.view();
        let plan = read_json::<Plan>(&storage, META_PLAN, "transfer plan")?
            .filter(|plan| plan_applies(plan, view.epoch()))
            .unwrap_or_default();
        let transfers = Self {
            storage,
            membership,
            transport: Transport::dialing(dialing),
            plan: Mutex::new(plan),
            wake: Notify::new(),
            keys_per_sec: keys_per_sec.max(1),
            started: Mutex::new(Instant::now()),
            totals: Totals::default(),
        };
        transfers.refresh_receiving();
        Ok(transfers)
    }

    /// Moves the plan from ring `previous` to ring `next`, which the node
    /// has just switched to, and persists it; returns how many partitions
    /// it now receives. [`Transfers::resume`] starts receiving them.
    pub fn replan(
        &self,
        previous: &RingDocument,
        next: &RingDocument,
    ) -> Result<usize, StorageError> {
        let plan = {
            let mut plan = lock(&self.plan);
            plan.advance(previous, next, self.membership.me());
            plan.clone()
        };
        *lock(&self.started) = Instant::now();
        self.persist(&plan)?;
        Ok(plan.unfinished().count())
    }

    /// Replaces the plan with receiving every partition this node owns in
    /// its current ring from the other owners, for a node that starts on an
    /// empty data directory of an existing cluster (see [`Plan::rebuild`]),
    /// and persists it; returns how many partitions it receives.
    pub fn plan_rebuild(&self) -> Result<usize, StorageError> {
        let view = self.membership.view();
        let plan = Plan::rebuild(view.doc(), self.membership.me());
        self.persist(&plan)?;
        let receiving = plan.unfinished().count();
        *lock(&self.plan) = plan;
        *lock(&self.started) = Instant::now();
        self.refresh_receiving();
        Ok(receiving)
    }

    /// Marks the partitions of a new plan as being received and wakes the
    /// transfer task.
    pub fn resume(&self) {
        self.refresh_receiving();
        self.wake.notify_one();
    }

    /// Persists the current plan.
    pub fn persist_plan(&self) -> Result<(), StorageError> {
        let plan = lock(&self.plan).clone();
        self.persist(&plan)
    }

    fn persist(&self, plan: &Plan) -> Result<(), StorageError> {
        let plan_json = serde_json::to_vec(plan).expect("a plan serializes");
        self.storage.meta_put(META_PLAN, &plan_json)
    }

    fn refresh_receiving(&self) {
        let plan = lock(&self.plan);
        self.membership.set_receiving(plan.unfinished());
    }

    /// Whether this node is still receiving `partition`.
    pub fn is_receiving(&self, partition: u32) -> bool {
        self.membership.is_receiving(partition)
    }

    /// What `GET /v1/admin/transfers` shows.
    pub fn report(&self) -> TransferReport {
        let plan = lock(&self.plan);
        let partitions = plan.report();
        let pending = partitions
            .iter()
            .filter(|t| t.state != TransferState::Done)
            .count();
        TransferReport {
            node: self.membership.me().to_string(),
            epoch: self.membership.view().epoch(),
            pending: u32::try_from(pending).unwrap_or(u32::MAX),
            done: u32::try_from(partitions.len() - pending).unwrap_or(u32::MAX),
            hints_pending: self.storage.hints_pending(),
            retired: u32::try_from(plan.retired.len()).unwrap_or(u32::MAX),
            partitions,
        }
    }

    /// Counts keys of a partition page this node served to a peer
    /// streaming the partition from it.
    pub fn count_sent(&self, keys: usize) {
        self.totals.sent.fetch_add(keys as u64, Ordering::Relaxed);
    }

    /// Keys moved since the node started.
    pub fn totals(&self) -> TransferTotals {
        TransferTotals {
            keys_sent: self.totals.sent.load(Ordering::Relaxed),
            keys_received: self.totals.received.load(Ordering::Relaxed),
        }
    }

    /// Streams unfinished partitions until `stop` turns true; retries
    /// partitions whose sources are all unreachable every few seconds.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let next = lock(&self.plan).unfinished().next();
            match next {
                Some(partition) => {
                    let complete = tokio::select! {
                        complete = self.receive(partition) => complete,
                        _ = stop.wait_for(|s| *s) => return,
                    };
                    if !complete {
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                            _ = self.wake.notified() => {}
                            _ = stop.wait_for(|s| *s) => return,
                        }
                    }
                }
                None => {
                    tokio::select! {
                        _ = self.clean_retired() => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(RETIRED_CHECK) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            }
        }
    }

    /// Streams one partition from each of its sources; complete when at
    /// least one streamed fully and every other was tried, or, for a node
    /// rebuilding lost data, when every other owner lost its data too (there
    /// is nothing to receive). Says whether the partition is complete.
    async fn receive(&self, partition: u32) -> bool {
        let Some(incoming) = lock(&self.plan).partitions.get(&partition).cloned() else {
            return true;
        };
        let epoch = lock(&self.plan).epoch;
        self.update(epoch, partition, |i| i.state = TransferState::Streaming);
        let (mut streamed, mut rebuilding) = (0, 0);
        for source in &incoming.sources {
            self.update(epoch, partition, |i| i.from = Some(source.id.clone()));
            match self.stream_from(epoch, partition, source).await {
                Ok(()) => streamed += 1,
                Err(SourceError::Rebuilding) => rebuilding += 1,
                Err(SourceError::Receiving) => {
                    tracing::debug!(partition, source = %source.id, "transfer source still receiving")
                }
                Err(SourceError::Failed(error)) => {
                    tracing::debug!(partition, source = %source.id, %error, "transfer source failed")
                }
            }
            if lock(&self.plan).epoch != epoch {
                return false;
            }
        }
        let nothing_anywhere = incoming.rebuild && rebuilding == incoming.sources.len();
        let complete = streamed > 0 || nothing_anywhere;
        self.update(epoch, partition, |i| {
            i.state = match complete {
                true => TransferState::Done,
                false => TransferState::Pending,
            }
        });
        if complete {
            self.completed(partition, nothing_anywhere);
        }
        complete
    }

    /// Records that `partition` is complete.
    fn completed(&self, partition: u32, nothing_anywhere: bool) {
        self.membership.set_received(partition);
        if let Err(error) = self.persist_plan() {
            tracing::warn!(%error, "persisting transfer progress");
        }
        match nothing_anywhere {
            true => tracing::debug!(
                partition,
                "partition complete: every other owner lost its data too, nothing to receive"
            ),
            false => tracing::debug!(partition, "partition received"),
        }
        self.log_if_all_received();
    }

    /// One line once every partition of the plan is received: how many,
    /// with how many keys and bytes, in how long.
    fn log_if_all_received(&self) {
        let plan = lock(&self.plan);
        if plan.unfinished().next().is_some() {
            return;
        }
        let partitions = plan.partitions.len();
        let keys: u64 = plan.partitions.values().map(|i| i.keys).sum();
        let bytes: u64 = plan.partitions.values().map(|i| i.bytes).sum();
        let secs = lock(&self.started).elapsed().as_secs_f64();
        tracing::info!(
            epoch = plan.epoch,
            partitions,
            keys,
            bytes,
            secs,
            "transfers for ring {} complete: received {partitions} partitions, {keys} keys, {bytes} bytes in {secs:.1} s",
            plan.epoch
        );
    }

    /// What a source answers to a scan of `partition`: `None` to serve it,
    /// else why not (it is receiving the partition itself).
    pub fn scan_refusal(&self, partition: u32) -> Option<Response> {
        if !self.is_receiving(partition) {
            return None;
        }
        let rebuilding = lock(&self.plan)
            .partitions
            .get(&partition)
            .is_some_and(|i| i.rebuild);
        Some(match rebuilding {
            true => Response::Failed(REBUILDING.into()),
            false => Response::NotReady,
        })
    }

    async fn stream_from(
        &self,
        epoch: u64,
        partition: u32,
        source: &Source,
    ) -> Result<(), SourceError> {
        let peer = Peer {
            member: Member::new(source.id.clone(), ""),
            address: source.address.clone(),
        };
        let mut after: Option<Bytes> = None;
        loop {
            let started = Instant::now();
            let request = Request::ScanPartition {
                partition,
                after: after.clone(),
                limit: PAGE,
            };
            let (items, next) = match self.transport.call(&peer, &request).await {
                Ok(Response::Page { items, next }) => (items, next),
                Err(RpcError::Remote { message, .. }) if message == REBUILDING => {
                    return Err(SourceError::Rebuilding);
                }
                Ok(Response::NotReady) => return Err(SourceError::Receiving),
                Ok(_) => {
                    return Err(SourceError::Failed(
                        "unexpected reply to a partition scan".into(),
                    ));
                }
                Err(error) => return Err(SourceError::Failed(error.to_string())),
            };
            let items_len = items.len();
            let count = items_len as u64;
            let bytes: u64 = items
                .iter()
                .map(|(k, o)| (k.len() + o.siblings().iter().map(value_len).sum::<usize>()) as u64)
                .sum();
            let merges = items
                .into_iter()
                .map(|(key, object)| self.storage.merge(key, object));
            for result in futures::future::join_all(merges).await {
                result.map_err(|e| SourceError::Failed(e.to_string()))?;
            }
            self.update(epoch, partition, |i| {
                i.keys += count;
                i.bytes += bytes;
            });
            self.totals.received.fetch_add(count, Ordering::Relaxed);
            // Background work yields: pace to the configured key rate.
            pace(items_len, self.keys_per_sec, started).await;
            match next {
                Some(next) => after = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// Deletes the data of retired partitions whose new owners all report
    /// the current epoch with the partition received.
    async fn clean_retired(&self) {
        let (epoch, retired) = {
            let plan = lock(&self.plan);
            (plan.epoch, plan.retired.clone())
        };
        let view = self.membership.view();
        if retired.is_empty() || view.epoch() != epoch {
            return;
        }
        let mut reports = std::collections::HashMap::new();
        for peer in view.all().filter(|p| !self.membership.is_me(p)) {
            if let Ok(Response::Transfers(report)) =
                self.transport.call(peer, &Request::TransferReport).await
            {
                reports.insert(peer.member.id.clone(), report);
            }
        }
        // Partitions and keys deleted, for one line at the end.
        let mut cleaned = (0usize, 0usize);
        for partition in retired {
            let received =
                view.partition_replicas(partition)
                    .owners()
                    .iter()
                    .all(|owner| {
                        reports.get(&owner.member.id).is_some_and(|r| {
                            r.epoch == epoch
                                && !r.partitions.iter().any(|t| {
                                    t.partition == partition && t.state != TransferState::Done
                                })
                        })
                    });
            if !received {
                continue;
            }
            let owners = view.partition_replicas(partition).owners().to_vec();
            if let Err(error) = self.hand_over(partition, &owners).await {
                tracing::info!(partition, %error, "handing over a retired partition; retrying later");
                continue;
            }
            match self.drop_partition(partition).await {
                Ok(deleted) => {
                    let plan = {
                        let mut plan = lock(&self.plan);
                        if plan.epoch != epoch {
                            return;
                        }
                        plan.retired.remove(&partition);
                        plan.clone()
                    };
                    if let Err(error) = self.persist(&plan) {
                        tracing::warn!(%error, "persisting transfer progress");
                    }
                    tracing::debug!(partition, deleted, "retired partition deleted");
                    cleaned.0 += 1;
                    cleaned.1 += deleted;
                }
                Err(error) => tracing::warn!(partition, %error, "deleting a retired partition"),
            }
        }
        if cleaned.0 > 0 {
            let (partitions, keys) = cleaned;
            tracing::info!(
                epoch,
                partitions,
                keys,
                "deleted {partitions} retired partitions ({keys} keys): their new owners hold them"
            );
        }
    }

    /// Merges this node's records of `partition` into each of `owners`
    /// (skipping an owner whose Merkle root already equals ours), so writes
    /// that reached this node after the owners streamed the partition are
    /// not lost when the node drops it.
    async fn hand_over(&self, partition: u32, owners: &[Arc<Peer>]) -> Result<(), String> {
        let ours = self.storage.forest().root(partition);
        for owner in owners.iter().filter(|o| !self.membership.is_me(o)) {
            let request = Request::MerkleRoots {
                partitions: vec![partition],
            };
            match self.transport.call(owner, &request).await {
                Ok(Response::Roots(roots)) if roots == [ours] => continue,
                Ok(Response::Roots(_)) => {}
                Ok(other) => return Err(format!("unexpected reply {other:?}")),
                Err(error) => return Err(error.to_string()),
            }
            self.push_partition(partition, owner).await?;
        }
        Ok(())
    }

    /// Sends every record of `partition` to `owner` in merge batches (of
    /// at most [`BATCH_BYTES`] each, or one record).
    async fn push_partition(&self, partition: u32, owner: &Peer) -> Result<(), String> {
        let range =
            dynamo_ring::partition_range(partition, self.membership.view().ring().partitions);
        let mut after: Option<Vec<u8>> = None;
        loop {
            let started = Instant::now();
            let (items, next) = self
                .storage
                .scan_page(&range, after.as_deref(), PAGE as usize, BATCH_BYTES)
                .map_err(|e| e.to_string())?;
            let count = items.len();
            match self
                .transport
                .call(owner, &Request::MergeBatch { items })
                .await
            {
                Ok(Response::Written) => self.count_sent(count),
                Ok(other) => return Err(format!("unexpected reply {other:?}")),
                Err(error) => return Err(error.to_string()),
            }
            pace(count, self.keys_per_sec, started).await;
            match next {
                Some(next) => after = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// Deletes this node's records of `partition`, except keys it holds
    /// hints for; returns how many it deleted.
    async fn drop_partition(&self, partition: u32) -> Result<usize, StorageError> {
        let range =
            dynamo_ring::partition_range(partition, self.membership.view().ring().partitions);
        // One permit for the whole partition (Storage::delete_relocated
        // takes one per key): a backup's hold waits for the partition.
        let _permit = self.storage.relocations().permit().await;
        let hinted = self.storage.hinted_keys()?;
        let mut deleted = 0;
        for (key, digest) in self.storage.digests(&range)? {
            if hinted.contains(&key)? {
                continue;
            }
            deleted += usize::from(self.storage.delete_if(key, digest).await?);
        }
        Ok(deleted)
    }

    fn update(&self, epoch: u64, partition: u32, change: impl FnOnce(&mut Incoming)) {
        let mut plan = lock(&self.plan);
        if plan.epoch == epoch
            && let Some(incoming) = plan.partitions.get_mut(&partition)
        {
            change(incoming);
        }
    }
}

fn value_len(sibling: &crate::version::Sibling) -> usize {
    sibling.content.bytes().map_or(0, |v| v.len())
}
