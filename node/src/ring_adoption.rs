//! Ring adoption.
//!
//! Every new ring, whether published by the operator, made by an admin call
//! or learned through gossip, goes through [`RingAdoption::adopt`]: the
//! node switches to it if it supersedes the current one, has its partition
//! transfers replanned (see [`crate::transfer`]) and persists both the plan
//! and the ring, so a restart resumes from them. Adopting a large ring
//! takes a while: callers on the async runtime run it on a blocking thread.

use std::sync::{Arc, Mutex};

use dynamo_ring::RingDocument;
use dynamo_ring::document::DocumentError;

use crate::membership::Membership;
use crate::storage::meta::read_json;
use crate::storage::{Storage, StorageError};
use crate::sync::lock;
use crate::transfer::Transfers;

/// Meta record holding the current ring document (JSON).
const META_RING: &str = "ring";

/// Why a ring could not be adopted.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    /// The document is inconsistent, or may not follow the current ring.
    #[error(transparent)]
    Invalid(#[from] DocumentError),
    /// It could not be persisted.
    #[error("persisting the ring: {0}")]
    Storage(#[from] StorageError),
}

/// Switches the node to newer rings, one at a time.
pub struct RingAdoption {
    storage: Arc<Storage>,
    membership: Arc<Membership>,
    transfers: Arc<Transfers>,
    adopting: Mutex<()>,
}

impl RingAdoption {
    /// Adoption into `membership`, replanning `transfers`.
    pub fn new(
        storage: Arc<Storage>,
        membership: Arc<Membership>,
        transfers: Arc<Transfers>,
    ) -> Self {
        Self {
            storage,
            membership,
            transfers,
            adopting: Mutex::new(()),
        }
    }

    /// The ring document persisted by an earlier run, if any. One that
    /// does not parse or is not a valid ring (written by another release,
    /// or damaged) is discarded with a warning: the node then starts from
    /// its configured ring and learns the current one through gossip.
    pub fn persisted_ring(storage: &Storage) -> Result<Option<RingDocument>, StorageError> {
        let doc: Option<RingDocument> = read_json(storage, META_RING, "ring")?;
        Ok(doc.filter(|doc| match doc.validate() {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "discarding the persisted ring: it is not a valid ring");
                false
            }
        }))
    }

    /// Whether an earlier run persisted a ring, valid or not: a data
    /// directory without one has never served.
    pub fn has_persisted_ring(storage: &Storage) -> Result<bool, StorageError> {
        Ok(storage.meta_get(META_RING)?.is_some())
    }

    /// Switches to `doc` if it supersedes the current ring: plans the
    /// partitions to receive, persists the plan and the ring, and wakes the
    /// transfer task. Returns whether the ring changed.
    pub fn adopt(&self, doc: RingDocument) -> Result<bool, AdoptError> {
        let _one_at_a_time = lock(&self.adopting);
        let Some(previous) = self.membership.adopt(doc)? else {
            return Ok(false);
        };
        let view = self.membership.view();
        let receiving = self.transfers.replan(previous.doc(), view.doc())?;
        self.persist(view.doc())?;
        self.transfers.resume();
        tracing::info!(epoch = view.epoch(), receiving, "adopted a new ring");
        Ok(true)
    }

    /// Persists the transfer plan and the ring the node starts from (first
    /// start).
    pub fn persist_current(&self) -> Result<(), StorageError> {
        self.transfers.persist_plan()?;
        self.persist(self.membership.view().doc())
    }

    fn persist(&self, doc: &RingDocument) -> Result<(), StorageError> {
        let ring_json = serde_json::to_vec(doc).expect("a ring serializes");
        self.storage.meta_put(META_RING, &ring_json)
    }
}
