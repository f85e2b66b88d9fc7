//! Pure partitioning logic for the Dynamo-style store: how keys map to
//! partitions, which nodes own each partition, and how ownership changes when
//! the membership changes.
//!
//! The ring follows the Dynamo paper's *strategy 3*: the 64-bit hash space is
//! cut into `Q` equal partitions (a power of two) and every partition is owned
//! by `N` distinct nodes, spread over distinct zones where possible. The crate
//! does no I/O; the node and the operator both link it and compute identical
//! rings from identical inputs.
//!
//! - [`hash`]: key hashing ([`key_hash`]) and partition math
//!   ([`partition_of`], [`partition_range`]).
//! - [`member`]: members ([`Member`]), their ids and the ring's size limits.
//! - [`ring`]: the versioned [`Ring`] document, its construction
//!   ([`Ring::build`]) and its evolution ([`Ring::rebalance`]).
//! - [`assign`]: the zone-aware, balanced, minimal-movement assignment behind
//!   both.
//! - [`preference`]: preference lists and extended preference lists.
//! - [`document`]: the JSON documents the node and the operator exchange
//!   (published ring, transfer report).

pub mod assign;
pub mod document;
mod error;
pub mod hash;
pub mod member;
pub mod preference;
pub mod ring;

pub use document::{RingDocument, TransferReport};
pub use hash::{key_hash, partition_of, partition_range};
pub use member::{Member, NodeId};
pub use ring::{Ring, RingError};
