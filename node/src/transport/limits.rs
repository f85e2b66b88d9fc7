//! What a peer may send in one frame, ask for in one request, and have a
//! node hold on its behalf. These bounds keep a hostile or broken peer from
//! making a node allocate more than it has received, or answer with much
//! more than was asked.
//!
//! Each bound comes from what the node's own callers send, with a margin of
//! four or more, so a peer running this code never meets one:
//! anti-entropy reads and pushes 128 keys at a time and asks for at most
//! the 64 segments of a partition; hinted handoff merges 128 keys at a
//! time; transfers scan and merge 256 records at a time; tombstone sweeps
//! check and purge 256 keys at a time; keys are at most 1 KiB (the client
//! API refuses longer ones); a ring has at most 65 536 partitions.

use dynamo_ring::member::{MAX_MEMBERS, MAX_PARTITIONS};

/// Largest frame of any kind (the length field: request id plus message).
/// Frames that carry whole key states (a replica write, a merge batch, a
/// forwarded write, a read or scan reply) may be this large: a state holds
/// every sibling of its key, each up to the largest value.
pub const MAX_FRAME: usize = 256 << 20;

/// Largest frame of a request about one key or partition: a replica read,
/// Merkle leaves, segment digests (at most 64 segment numbers), a partition
/// scan (a 1 KiB position), a transfer report, a ping.
pub const SMALL_FRAME: usize = 64 << 10;

/// Largest frame that lists keys or partitions: [`MAX_KEYS`] keys of 1 KiB
/// come to about 1 MiB, [`MAX_PARTITIONS`] partition numbers to 320 KiB.
pub const LIST_FRAME: usize = 4 << 20;

/// Largest frame of membership state: a gossip digest (a ring of 65 536
/// partitions with three owners each comes to about 1 MiB; 4 096 members
/// with their addresses and heartbeats to a few MiB more), a transfer
/// report (a few dozen bytes per partition gained).
pub const STATE_FRAME: usize = 16 << 20;

/// Most keys in one read batch, tombstone check or tombstone purge.
pub const MAX_KEYS: usize = 1024;

/// Most (key, state) pairs in one merge batch.
pub const MAX_BATCH_ITEMS: usize = 4096;

/// Most partitions in one Merkle roots request.
pub const MAX_ROOTS: usize = MAX_PARTITIONS as usize;

/// Most heartbeats in one gossip digest: the members of a ring, and as
/// many again for those of the ring before it still being forgotten.
pub const MAX_HEARTBEATS: usize = 2 * MAX_MEMBERS;

/// Bytes of states or digests gathered into one reply (a read batch, the
/// digests of segments, a partition scan page) or one merge batch of a
/// partition hand-over. The gathering stops before the item that would
/// exceed it (one item always goes, whatever its size) and the caller asks
/// for the rest.
pub const BATCH_BYTES: usize = 8 << 20;

/// Bytes a node holds for one peer stream: the frame being read, the
/// requests being answered, and the replies not yet written. When they
/// reach it, the node stops reading that stream until replies drain (a
/// single frame larger than this is taken alone). Together with the
/// 256 KiB read buffer and the write buffer, this bounds a stream's memory.
pub const CONNECTION_BYTES: usize = 64 << 20;

/// Least a frame counts for against [`CONNECTION_BYTES`]: what a request
/// in hand costs beyond its bytes (its task, its reply, buffers). It also
/// bounds the requests in hand on one stream to
/// `CONNECTION_BYTES / FRAME_OVERHEAD` (16 384).
pub const FRAME_OVERHEAD: usize = 4 << 10;
