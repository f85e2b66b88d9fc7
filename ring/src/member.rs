//! Who can own partitions: members, their ids, and the ring's limits (how
//! many members, zones and partitions it holds, how far its epoch goes).

use serde::{Deserialize, Serialize};

/// Identifies a physical node. Unique within a ring.
pub type NodeId = String;

/// Largest partition count a ring accepts.
pub const MAX_PARTITIONS: u32 = 65_536;

/// Largest member count a ring accepts: 4,096, what the operator can
/// create (16 zones of at most 256 nodes each), far above the clusters a
/// Dynamo-style ring serves in practice (hundreds of nodes). A ring comes
/// from outside (an admin call, gossip, a file), and its size bounds the
/// work and memory every node spends on it.
pub const MAX_MEMBERS: usize = 4_096;

/// Largest number of distinct zones a ring accepts: 256, sixteen times the
/// operator's limit of 16 zones, enough for one zone per rack in a large
/// data center. Assigning owners does work per zone for every partition.
pub const MAX_ZONES: usize = 256;

/// Highest epoch a ring may carry: 2^53, the largest integer every JSON
/// reader holds exactly (JavaScript's numbers, `jq`). One ring a second
/// would take 285 million years to reach it, so a ring at the ceiling is a
/// mistake or an attack; refusing it keeps room for later epochs (a ring at
/// `u64::MAX` could never be superseded).
pub const MAX_EPOCH: u64 = 1 << 53;

/// Furthest a ring's epoch may be ahead of the ring a node uses for the
/// node to adopt it: 1,000,000. Epochs step by one per ring change (the
/// operator publishes one ring per scaling step), so a node only lags by
/// that much after missing a million changes; a far larger jump is a
/// mistake or an attack, and would leave every later ring numbered from
/// the jump.
pub const MAX_EPOCH_JUMP: u64 = 1_000_000;

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
