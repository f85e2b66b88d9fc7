//! Why a ring could not be built, rebalanced or accepted.

use crate::member::{MAX_EPOCH, MAX_MEMBERS, MAX_PARTITIONS, MAX_ZONES, NodeId};

/// Bad input to [`Ring::build`](crate::Ring::build) or
/// [`Ring::rebalance`](crate::Ring::rebalance), or a malformed ring found by
/// [`Ring::validate`](crate::Ring::validate).
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum RingError {
    /// The member list is empty.
    #[error("a ring needs at least one member")]
    NoMembers,
    /// A member has an empty id.
    #[error("member ids must not be empty")]
    EmptyMemberId,
    /// Two members share an id.
    #[error("duplicate member id {0:?}")]
    DuplicateMember(NodeId),
    /// More members than [`MAX_MEMBERS`].
    #[error("{members} members is too many: a ring holds at most {MAX_MEMBERS}")]
    TooManyMembers {
        /// Number of members given.
        members: usize,
    },
    /// Members in more distinct zones than [`MAX_ZONES`].
    #[error("{zones} zones is too many: a ring spans at most {MAX_ZONES}")]
    TooManyZones {
        /// Number of distinct zones given.
        zones: usize,
    },
    /// The partition count is 0 or above [`MAX_PARTITIONS`].
    #[error("partition count {0} is out of range: it must be between 1 and {MAX_PARTITIONS}")]
    PartitionsOutOfRange(u32),
    /// The partition count is not a power of two.
    #[error("partition count {0} is not a power of two")]
    PartitionsNotPowerOfTwo(u32),
    /// The replication factor `N` is 0.
    #[error("replication factor must be at least 1")]
    ReplicationZero,
    /// The replication factor `N` is larger than the number of members.
    #[error("replication factor {n} exceeds the number of members ({members})")]
    ReplicationExceedsMembers {
        /// The replication factor.
        n: usize,
        /// Number of members.
        members: usize,
    },
    /// The epoch is already [`MAX_EPOCH`], so no later ring can be
    /// numbered.
    #[error("epoch {0} cannot be incremented: epochs stop at {MAX_EPOCH}")]
    EpochOverflow(u64),
    /// A ring's epoch is above [`MAX_EPOCH`].
    #[error("epoch {0} is above the highest epoch a ring may carry ({MAX_EPOCH})")]
    EpochTooHigh(u64),
    /// A ring's members are not sorted by id (the named id is out of place).
    #[error("ring members are not sorted by id: {0:?} is out of order")]
    MembersNotSorted(NodeId),
    /// A ring has a different number of owner lists than partitions.
    #[error("ring has {lists} owner lists for {partitions} partitions")]
    OwnerListCount {
        /// Declared partition count.
        partitions: u32,
        /// Number of owner lists present.
        lists: usize,
    },
    /// A partition's owner list does not hold exactly `N` entries.
    #[error("partition {partition} has {owners} owners, expected {replication}")]
    OwnerListLength {
        /// The partition.
        partition: u32,
        /// Number of owners listed.
        owners: usize,
        /// The replication factor.
        replication: usize,
    },
    /// A partition names an owner index outside the member list.
    #[error("partition {partition} names owner index {index}, but the ring has {members} members")]
    OwnerOutOfRange {
        /// The partition.
        partition: u32,
        /// The bad index.
        index: u16,
        /// Number of members.
        members: usize,
    },
    /// A partition lists the same owner twice.
    #[error("partition {partition} lists owner {id:?} more than once")]
    DuplicateOwner {
        /// The partition.
        partition: u32,
        /// The repeated member id.
        id: NodeId,
    },
}
