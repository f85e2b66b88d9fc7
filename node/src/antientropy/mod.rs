//! Anti-entropy: replicas of a partition compare Merkle trees and exchange
//! only the keys of differing segments.

mod exchange;
mod tree;

pub use exchange::{AntiEntropy, AntiEntropyReport};
pub use tree::{MerkleForest, SEGMENTS, record_digest, root_of, segment_range};
