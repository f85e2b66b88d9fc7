//! Wire documents shared by the node and the operator: the published ring
//! (what the operator computes and every node adopts) and the transfer
//! report (what a node says about moving partitions to a new ring).
//!
//! Both are plain JSON over the node's admin API (`PUT /v1/admin/ring`,
//! `GET /v1/admin/transfers`) and, for the ring, a file in the operator's
//! ConfigMap (`--ring-file`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::member::{MAX_EPOCH_JUMP, NodeId};
use crate::ring::{Ring, RingError};

/// A ring plus where each of its members serves node-to-node traffic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingDocument {
    /// Partition ownership; its epoch orders documents.
    pub ring: Ring,
    /// `HOST:PORT` of every member's internal routes, by member id.
    pub addresses: BTreeMap<NodeId, String>,
}

/// Why a ring document is unusable.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// The ring itself is inconsistent.
    #[error(transparent)]
    Ring(#[from] RingError),
    /// A member has no address.
    #[error("member {0:?} has no address")]
    MissingAddress(NodeId),
    /// The partition count differs from the cluster's, which is fixed.
    #[error("the ring has {document} partitions but the cluster has {cluster}; Q cannot change")]
    PartitionsChanged {
        /// The cluster's partition count.
        cluster: u32,
        /// The document's.
        document: u32,
    },
    /// The epoch is more than [`MAX_EPOCH_JUMP`] ahead of the ring in use.
    #[error(
        "epoch {document} is too far ahead of the ring in use (epoch {current}): \
         a ring may be at most {MAX_EPOCH_JUMP} epochs newer"
    )]
    EpochJump {
        /// The epoch of the ring in use.
        current: u64,
        /// The document's.
        document: u64,
    },
    /// An address is not `HOST:PORT`.
    #[error("address {address:?} of member {id:?} must be HOST:PORT")]
    BadAddress {
        /// Member id.
        id: NodeId,
        /// The offending address.
        address: String,
    },
}

impl RingDocument {
    /// Checks the ring and that every member has a `HOST:PORT` address.
    pub fn validate(&self) -> Result<(), DocumentError> {
        self.ring.validate()?;
        for member in &self.ring.members {
            let address = self
                .addresses
                .get(&member.id)
                .ok_or_else(|| DocumentError::MissingAddress(member.id.clone()))?;
            let valid = address
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid {
                return Err(DocumentError::BadAddress {
                    id: member.id.clone(),
                    address: address.clone(),
                });
            }
        }
        Ok(())
    }

    /// Checks the document (see [`RingDocument::validate`]) and that it may
    /// follow `current`, the ring in use: the same partition count, and an
    /// epoch at most [`MAX_EPOCH_JUMP`] above (an older epoch is no error
    /// here: it simply does not supersede).
    pub fn validate_successor(&self, current: &Ring) -> Result<(), DocumentError> {
        self.validate()?;
        if self.ring.partitions != current.partitions {
            return Err(DocumentError::PartitionsChanged {
                cluster: current.partitions,
                document: self.ring.partitions,
            });
        }
        if self.ring.epoch.saturating_sub(current.epoch) > MAX_EPOCH_JUMP {
            return Err(DocumentError::EpochJump {
                current: current.epoch,
                document: self.ring.epoch,
            });
        }
        Ok(())
    }
}

/// State of one partition this node must receive for the current ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransferState {
    /// Not started yet.
    Pending,
    /// Streaming from a previous owner.
    Streaming,
    /// Every key received; the node serves the partition as an owner.
    Done,
}

/// One partition this node gains in the current ring.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionTransfer {
    /// Partition number.
    pub partition: u32,
    /// Previous owner streamed from (or being tried).
    pub from: Option<NodeId>,
    /// Progress.
    pub state: TransferState,
    /// Keys received so far.
    pub keys: u64,
    /// Bytes received so far.
    pub bytes: u64,
}

/// A node's report on moving to its current ring
/// (`GET /v1/admin/transfers`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferReport {
    /// This node's id.
    pub node: NodeId,
    /// Epoch of the ring the node currently uses.
    pub epoch: u64,
    /// Partitions gained in this epoch that are not done yet.
    pub pending: u32,
    /// Partitions gained in this epoch that are done.
    pub done: u32,
    /// Hinted writes held for other nodes and not yet delivered.
    pub hints_pending: u64,
    /// Partitions the node no longer owns whose data it keeps until their
    /// new owners confirm they received them.
    #[serde(default)]
    pub retired: u32,
    /// Per gained partition, in partition order.
    pub partitions: Vec<PartitionTransfer>,
}

impl TransferReport {
    /// Whether the node has everything it owns in `epoch`.
    pub fn complete_for(&self, epoch: u64) -> bool {
        self.epoch == epoch && self.pending == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::Member;

    fn document() -> RingDocument {
        let members = vec![
            Member::new("a", "z1"),
            Member::new("b", "z2"),
            Member::new("c", "z3"),
        ];
        let ring = Ring::build(members, 3, 16).expect("ring");
        let addresses = ["a", "b", "c"]
            .iter()
            .map(|id| (id.to_string(), format!("{id}.svc:7000")))
            .collect();
        RingDocument { ring, addresses }
    }

    #[test]
    fn a_complete_document_validates_and_round_trips() {
        let doc = document();
        doc.validate().expect("valid");
        let json = serde_json::to_string(&doc).expect("json");
        let back: RingDocument = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, doc);
    }

    #[test]
    fn missing_or_bad_addresses_are_rejected() {
        let mut doc = document();
        doc.addresses.remove("b");
        assert!(matches!(doc.validate(), Err(DocumentError::MissingAddress(id)) if id == "b"));
        let mut doc = document();
        doc.addresses.insert("c".into(), "no-port".into());
        assert!(matches!(
            doc.validate(),
            Err(DocumentError::BadAddress { .. })
        ));
    }

    #[test]
    fn a_successor_keeps_q_and_stays_within_the_epoch_jump() {
        let current = document();
        let mut next = document();
        next.ring.epoch = current.ring.epoch + MAX_EPOCH_JUMP;
        next.validate_successor(&current.ring)
            .expect("within the jump");
        next.ring.epoch += 1;
        let error = next.validate_successor(&current.ring).unwrap_err();
        assert!(matches!(error, DocumentError::EpochJump { current: 1, .. }));
        assert!(error.to_string().contains(&next.ring.epoch.to_string()));
        let mut older = current.clone();
        older.ring.epoch = 1;
        let mut later = current.clone();
        later.ring.epoch = 7;
        older
            .validate_successor(&later.ring)
            .expect("older is not a jump");
        let members = current.ring.members.clone();
        let other_q = RingDocument {
            ring: Ring::build(members, 3, 32).expect("ring"),
            addresses: current.addresses.clone(),
        };
        assert!(matches!(
            other_q.validate_successor(&current.ring),
            Err(DocumentError::PartitionsChanged {
                cluster: 16,
                document: 32
            })
        ));
    }

    #[test]
    fn completeness_needs_the_epoch_and_no_pending_partition() {
        let report = TransferReport {
            node: "a".into(),
            epoch: 2,
            pending: 0,
            done: 3,
            hints_pending: 0,
            retired: 0,
            partitions: vec![],
        };
        assert!(report.complete_for(2));
        assert!(!report.complete_for(3));
        let busy = TransferReport {
            pending: 1,
            ..report
        };
        assert!(!busy.complete_for(2));
    }
}
