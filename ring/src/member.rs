//! Who can own partitions: members, their ids, and how many a ring holds.

use serde::{Deserialize, Serialize};

/// Identifies a physical node. Unique within a ring.
pub type NodeId = String;

/// Largest partition count a ring accepts.
pub const MAX_PARTITIONS: u32 = 65_536;

/// Largest member count a ring accepts (owner indices are `u16`).
pub const MAX_MEMBERS: usize = 65_536;

/// A physical node and the failure zone it runs in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// Unique, non-empty node id.
    pub id: NodeId,
    /// Failure zone (rack, availability zone...). Replicas of a partition
    /// are spread over distinct zones first.
    pub zone: String,
}

impl Member {
    /// A member with the given id and zone.
    pub fn new(id: impl Into<NodeId>, zone: impl Into<String>) -> Self {
        Member {
            id: id.into(),
            zone: zone.into(),
        }
    }
}
