//! Tombstone purging, and expiry.
//!
//! A value written with a TTL carries its expiry; it reads as deleted from
//! then on, everywhere. The tombstone index also lists such keys (at their
//! expiry), and each sweep turns the versions whose expiry passed into
//! tombstones with the same dots, which are then purged like any other.
//!
//! A delete is stored as a tombstone version so that replicas which missed
//! it cannot bring the old value back. A tombstone is purged only when no
//! copy of anything it covers can still arrive:
//! - it is older than `min_age` here (a cost knob: how long deletes keep
//!   their space);
//! - every member of the ring answers, uses the same epoch and has no
//!   partition transfer in flight (a node that cannot be asked blocks the
//!   purge);
//! - every owner of the key holds the identical tombstone record;
//! - no other node holds a record of the key other than that tombstone,
//!   and no node, owners included, holds a hint marker for it (a hinted
//!   copy written before the delete would bring the old value back when
//!   delivered);
//! - members removed from the ring are asked the same until they report
//!   the current epoch with no retired partition kept and no pending hints
//!   at all (or stayed unreachable for `departed_wait`): a removed member
//!   keeps the partitions it lost until it has handed them to their new
//!   owners, and that hand-over would bring back what a purge removed.
//!
//! Then the record is deleted on every node that holds it, each only if
//! its record still has that digest. A purge that stops halfway (one owner
//! unreachable for the delete) leaves replicas that still converge: dots
//! are never reused (see `storage::dots`), so a later write is never
//! covered by a tombstone left behind, and anti-entropy copies that
//! tombstone back until the next sweep purges it everywhere.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::config::TombstonePolicy;
use crate::membership::{Membership, View};
use crate::peer::Peer;
use crate::periodic::{PeriodicTask, RoundError};
use crate::storage::{Storage, StorageError, now_ms};
use crate::sync::lock;
use crate::transfer::Transfers;
use crate::transport::{Dialing, KeyHolding, Request, Response, TombstoneCheckReply, Transport};

/// Tombstones examined per batch.
const BATCH: usize = 256;
/// Meta record of the members seen and those that left the ring (JSON).
const META_DEPARTED: &str = "departed-members";

/// Purge counters.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct TombstoneReport {
    /// Tombstones removed here after every node confirmed it was safe.
    pub purged: u64,
    /// Sweeps that purged nothing because a node could not be asked, was
    /// on another ring epoch or was still transferring partitions.
    pub blocked_sweeps: u64,
    /// Purge requests to other nodes that failed (the purge was left
    /// halfway and is retried by a later sweep).
    pub interrupted: u64,
    /// Members removed from the ring still asked before purging.
    pub departed_members: u64,
    /// Keys whose expired values were turned into tombstones here.
    pub expired: u64,
}

/// Members seen in the ring, and those that left it since.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Departures {
    /// Members of the last ring seen, with their addresses.
    last: BTreeMap<String, String>,
    /// Members that left: address and when they were first missed (ms).
    departed: BTreeMap<String, (String, u64)>,
}

/// The purging task.
pub struct TombstoneGc {
    storage: Arc<Storage>,
    membership: Arc<Membership>,
    transfers: Arc<Transfers>,
    transport: Transport,
    policy: TombstonePolicy,
    scan_interval: Duration,
    departures: Mutex<Departures>,
    purged: AtomicU64,
    blocked: AtomicU64,
    interrupted: AtomicU64,
    expired: AtomicU64,
}

/// A tombstone every node agreed may go, and the other nodes holding it.
struct Confirmed {
    key: Bytes,
    digest: u64,
    holders: Vec<Arc<Peer>>,
}

/// What one node answered about a batch of candidate keys.
struct Answer {
    peer: Arc<Peer>,
    departed: bool,
    reply: TombstoneCheckReply,
}

impl TombstoneGc {
    /// Purging under `policy`, scanning the tombstone index every
    /// `scan_interval`.
    pub fn new(
        storage: Arc<Storage>,
        membership: Arc<Membership>,
        transfers: Arc<Transfers>,
        dialing: Dialing,
        policy: TombstonePolicy,
        scan_interval: Duration,
    ) -> Self {
        let departures = match storage.meta_get(META_DEPARTED) {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                tracing::warn!(%error, "the record of departed members does not parse; starting afresh");
                Departures::default()
            }),
            Ok(None) => Departures::default(),
            Err(error) => {
                tracing::warn!(%error, "reading the record of departed members");
                Departures::default()
            }
        };
        Self {
            storage,
            membership,
            transfers,
            transport: Transport::dialing(dialing),
            policy,
            scan_interval,
            departures: Mutex::new(departures),
            purged: AtomicU64::new(0),
            blocked: AtomicU64::new(0),
            interrupted: AtomicU64::new(0),
            expired: AtomicU64::new(0),
        }
    }

    /// Counters so far.
    pub fn report(&self) -> TombstoneReport {
        TombstoneReport {
            purged: self.purged.load(Ordering::Relaxed),
            blocked_sweeps: self.blocked.load(Ordering::Relaxed),
            interrupted: self.interrupted.load(Ordering::Relaxed),
            departed_members: lock(&self.departures).departed.len() as u64,
            expired: self.expired.load(Ordering::Relaxed),
        }
    }

    /// One pass over the tombstone index: turns the values whose expiry
    /// passed into tombstones, and purges the tombstones that may go (until
    /// some node blocks purging for this pass).
    async fn sweep(&self) -> Result<(), RoundError> {
        let view = self.membership.view();
        self.note_departures(&view);
        if view.peer(self.membership.me()).is_none() {
            return Ok(());
        }
        let mut after: Option<Bytes> = None;
        let mut purging = true;
        loop {
            let batch = match self.storage.tombstones(after.as_deref(), BATCH) {
                Ok(batch) if !batch.is_empty() => batch,
                Ok(_) => return Ok(()),
                Err(error) => return Err(RoundError::local("reading the tombstone index", error)),
            };
            after = batch.last().map(|(key, _)| key.clone());
            let now = now_ms();
            let due = batch.iter().filter(|(_, since)| *since <= now);
            self.expire(due.map(|(key, _)| key), now)
                .await
                .map_err(|error| RoundError::local("expiring values", error))?;
            if !purging {
                continue;
            }
            let old_enough: Vec<Bytes> = batch
                .into_iter()
                .filter(|(_, since)| {
                    Duration::from_millis(now.saturating_sub(*since)) >= self.policy.min_age
                })
                .map(|(key, _)| key)
                .collect();
            match self.purge(&view, old_enough).await {
                Ok(true) => {}
                Ok(false) => {
                    self.blocked.fetch_add(1, Ordering::Relaxed);
                    purging = false;
                }
                Err(error) => {
                    self.blocked.fetch_add(1, Ordering::Relaxed);
                    return Err(RoundError::local("reading tombstones to purge", error));
                }
            }
        }
    }

    /// Turns the versions of `keys` whose expiry passed at `now` into
    /// tombstones with the same dots. Every replica does so on its own at
    /// the expiry the version carries, and a merge carries the tombstone to
    /// one that has not yet: an expired value never comes back.
    async fn expire(
        &self,
        keys: impl Iterator<Item = &Bytes>,
        now: u64,
    ) -> Result<(), StorageError> {
        for key in keys {
            let Some(mut object) = self.storage.get(key)? else {
                continue;
            };
            if object.expire(now) {
                self.storage.merge(key.clone(), object).await?;
                self.expired.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Records members that left the ring since the last sweep (and
    /// forgets those that came back), persisting the record when it
    /// changed.
    fn note_departures(&self, view: &View) {
        let current: BTreeMap<String, String> = view
            .all()
            .map(|p| (p.member.id.clone(), p.address.clone()))
            .collect();
        let mut departures = lock(&self.departures);
        if departures.last == current {
            return;
        }
        let now = now_ms();
        let left: Vec<(String, String)> = departures
            .last
            .iter()
            .filter(|(id, _)| !current.contains_key(*id))
            .map(|(id, address)| (id.clone(), address.clone()))
            .collect();
        for (id, address) in left {
            tracing::info!(member = %id, "member left the ring; it is asked before purging tombstones until its hints are delivered");
            departures.departed.insert(id, (address, now));
        }
        departures
            .departed
            .retain(|id, _| !current.contains_key(id));
        departures.last = current;
        self.persist(&departures);
    }

    fn persist(&self, departures: &Departures) {
        let bytes = serde_json::to_vec(departures).unwrap_or_default();
        if let Err(error) = self.storage.meta_put(META_DEPARTED, &bytes) {
            tracing::warn!(%error, "persisting the record of departed members");
        }
    }

    /// The members to ask (every member but this node) and the departed
    /// members still to be asked.
    fn nodes_to_ask(&self, view: &View) -> Vec<(Arc<Peer>, bool)> {
        let members = view
            .all()
            .filter(|p| !self.membership.is_me(p))
            .map(|p| (p.clone(), false));
        let departed: Vec<(Arc<Peer>, bool)> = lock(&self.departures)
            .departed
            .iter()
            .map(|(id, (address, _))| {
                let member = dynamo_ring::Member::new(id.clone(), String::new());
                let peer = Peer {
                    member,
                    address: address.clone(),
                };
                (Arc::new(peer), true)
            })
            .collect();
        members.chain(departed).collect()
    }

    /// Purges what can be purged of `keys`; returns false when the sweep
    /// must stop because some node blocks every purge for now, and an
    /// error when this node's own records cannot be read.
    async fn purge(&self, view: &View, keys: Vec<Bytes>) -> Result<bool, StorageError> {
        let local = self.local_candidates(view, keys)?;
        if local.is_empty() {
            return Ok(true);
        }
        if !settled(&self.transfers.report(), view.epoch()) {
            return Ok(false);
        }
        let Some(answers) = self.ask_everyone(view, &local).await else {
            return Ok(false);
        };
        let mut holders: Vec<Vec<Arc<Peer>>> = vec![Vec::new(); local.len()];
        let mut safe = vec![true; local.len()];
        for answer in &answers {
            for (i, (key, digest)) in local.iter().enumerate() {
                let holding = &answer.reply.keys[i];
                let owner = !answer.departed
                    && view
                        .replicas(key)
                        .owners()
                        .iter()
                        .any(|o| o.member.id == answer.peer.member.id);
                safe[i] &= !holding.hinted
                    && match owner {
                        true => holding.digest == *digest,
                        false => holding.digest == 0 || holding.digest == *digest,
                    };
                if holding.digest != 0 {
                    holders[i].push(answer.peer.clone());
                }
            }
        }
        let confirmed: Vec<Confirmed> = local
            .into_iter()
            .zip(holders)
            .zip(safe)
            .filter(|(_, safe)| *safe)
            .map(|(((key, digest), holders), _)| Confirmed {
                key,
                digest,
                holders,
            })
            .collect();
        self.delete_everywhere(confirmed).await;
        Ok(true)
    }

    /// The keys of `keys` this node owns whose record here is a tombstone
    /// with no hint marker on it, with their record digests.
    fn local_candidates(
        &self,
        view: &View,
        keys: Vec<Bytes>,
    ) -> Result<Vec<(Bytes, u64)>, StorageError> {
        let hinted = self.storage.hinted_keys()?;
        let mut local = Vec::new();
        for key in keys {
            let owned = view
                .replicas(&key)
                .owners()
                .iter()
                .any(|p| self.membership.is_me(p));
            if !owned || hinted.contains(&key)? {
                continue;
            }
            match self.storage.get_with_digest(&key)? {
                Some((object, digest)) if object.is_tombstone() => local.push((key, digest)),
                _ => {}
            }
        }
        Ok(local)
    }

    /// Asks every member and departed member what it holds of `local`'s
    /// keys. `None` when a member cannot be asked, is on another epoch or
    /// is still transferring partitions; departed members that cannot be
    /// asked block too, until `departed_wait` has passed.
    async fn ask_everyone(&self, view: &View, local: &[(Bytes, u64)]) -> Option<Vec<Answer>> {
        let keys: Vec<Bytes> = local.iter().map(|(key, _)| key.clone()).collect();
        let request = Request::TombstoneCheck { keys };
        let mut answers = Vec::new();
        for (peer, departed) in self.nodes_to_ask(view) {
            let reply = match self.transport.call(&peer, &request).await {
                Ok(Response::TombstoneCheck(reply)) if reply.keys.len() == local.len() => reply,
                other => {
                    let why = match other {
                        Ok(response) => format!("unexpected reply {response:?}"),
                        Err(error) => error.to_string(),
                    };
                    if departed && self.forget_if_overdue(&peer.member.id) {
                        continue;
                    }
                    tracing::debug!(peer = %peer.member.id, %why, "tombstone purge waits for a node it cannot ask");
                    return None;
                }
            };
            if departed {
                // Until it has handed over and dropped the partitions it
                // lost (it keeps them, retired, for their new owners), a
                // removed member holds old copies that its hand-over would
                // merge back into owners that purged a tombstone: its
                // answers below keep such keys' purges waiting. Forgotten
                // only once it uses this ring with nothing retired and no
                // hints, it can no longer bring anything back.
                if reply.transfers.hints_pending == 0 && settled(&reply.transfers, view.epoch()) {
                    self.forget(
                        &peer.member.id,
                        "it holds no hints and no retired partitions",
                    );
                }
            } else if !settled(&reply.transfers, view.epoch()) {
                return None;
            }
            answers.push(Answer {
                peer,
                departed,
                reply: *reply,
            });
        }
        Some(answers)
    }

    /// Forgets departed member `id` if it has been gone longer than
    /// `departed_wait`; says whether it did.
    fn forget_if_overdue(&self, id: &str) -> bool {
        let since = lock(&self.departures)
            .departed
            .get(id)
            .map(|(_, since)| *since);
        let overdue = since.is_some_and(|since| {
            Duration::from_millis(now_ms().saturating_sub(since)) >= self.policy.departed_wait
        });
        if overdue {
            tracing::warn!(member = %id, "a member removed from the ring stayed unreachable past tombstone-departed-wait-secs; purges no longer wait for its hints");
            self.forget(id, "it stayed unreachable");
        }
        overdue
    }

    fn forget(&self, id: &str, why: &str) {
        let mut departures = lock(&self.departures);
        if departures.departed.remove(id).is_some() {
            tracing::info!(member = %id, why, "departed member no longer asked before purging");
            self.persist(&departures);
        }
    }

    /// Deletes each confirmed tombstone on every node holding it, then here.
    async fn delete_everywhere(&self, confirmed: Vec<Confirmed>) {
        let sends = confirmed.iter().flat_map(|c| {
            c.holders
                .iter()
                .map(move |peer| (peer.clone(), (c.key.clone(), c.digest)))
        });
        for (peer, items) in crate::membership::by_peer(sends) {
            let count = items.len();
            let request = Request::PurgeTombstones { items };
            if let Err(error) = self.transport.call(&peer, &request).await {
                self.interrupted.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(peer = %peer.member.id, tombstones = count, %error, "tombstone purge interrupted: the peer keeps them; anti-entropy spreads them back and a later sweep purges them everywhere");
            }
        }
        for c in confirmed {
            if let Ok(true) = self.storage.delete_if(c.key, c.digest).await {
                self.purged.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Whether a node's transfer report says it uses `epoch` and has nothing
/// in flight (no partition still to receive, none retired but kept).
fn settled(report: &dynamo_ring::TransferReport, epoch: u64) -> bool {
    report.epoch == epoch && report.pending == 0 && report.retired == 0
}

/// What this node holds of `keys`, for another node's purge check.
pub fn holdings(storage: &Storage, keys: &[Bytes]) -> Result<Vec<KeyHolding>, StorageError> {
    let hinted = storage.hinted_keys()?;
    keys.iter()
        .map(|key| {
            Ok(KeyHolding {
                digest: storage.digest(key)?,
                hinted: hinted.contains(key)?,
            })
        })
        .collect()
}

impl PeriodicTask for TombstoneGc {
    fn name(&self) -> &'static str {
        "tombstone purge"
    }

    fn interval(&self) -> Duration {
        self.scan_interval
    }

    /// One pass over the tombstone index.
    async fn round(&self) -> Result<(), RoundError> {
        self.sweep().await
    }
}
