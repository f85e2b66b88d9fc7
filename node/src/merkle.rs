//! Merkle trees over the stored records: incrementally maintained hash
//! trees, one per partition, kept by the storage writer and compared by
//! anti-entropy.
//!
//! Each partition's hash range is cut into [`SEGMENTS`] contiguous segments.
//! A segment's leaf is the XOR of the digests of its keys' stored records,
//! so a write updates it in O(1) from the old and new digest, with no
//! rescan; the partition's root hashes its leaves. Two replicas holding the
//! same data have the same root; where roots differ, the differing leaves
//! name the key ranges to compare.

use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};

use dynamo_ring::{partition_of, partition_range};

/// Leaves per partition tree (a power of two).
pub const SEGMENTS: usize = 64;
const SEGMENT_BITS: u32 = SEGMENTS.trailing_zeros();

/// Digest of one stored record: `0` stands for "absent".
pub fn record_digest(key_hash: u64, stored: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(stored, key_hash).max(1)
}

/// The trees of every partition of a ring with a fixed partition count.
pub struct MerkleForest {
    partitions: u32,
    leaves: Box<[AtomicU64]>,
}

impl MerkleForest {
    /// Empty trees for `partitions` partitions (a power of two).
    pub fn new(partitions: u32) -> Self {
        let leaves = (0..partitions as usize * SEGMENTS)
            .map(|_| AtomicU64::new(0))
            .collect();
        Self { partitions, leaves }
    }

    /// Partition count the forest was built for.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Records that the record of the key with `key_hash` changed from
    /// digest `old` to `new` (either may be 0 for absent).
    pub fn update(&self, key_hash: u64, old: u64, new: u64) {
        if old != new {
            self.leaves[self.leaf_index(key_hash)].fetch_xor(old ^ new, Ordering::Relaxed);
        }
    }

    /// The leaves of one partition.
    pub fn leaves(&self, partition: u32) -> Vec<u64> {
        let start = partition as usize * SEGMENTS;
        self.leaves[start..start + SEGMENTS]
            .iter()
            .map(|l| l.load(Ordering::Relaxed))
            .collect()
    }

    /// The root of one partition's tree: a hash of its leaves (0 when the
    /// partition holds nothing).
    pub fn root(&self, partition: u32) -> u64 {
        root_of(&self.leaves(partition))
    }

    fn leaf_index(&self, key_hash: u64) -> usize {
        let partition = partition_of(key_hash, self.partitions) as usize;
        partition * SEGMENTS + segment_of(key_hash, self.partitions)
    }
}

/// The root over a partition's leaves.
pub fn root_of(leaves: &[u64]) -> u64 {
    if leaves.iter().all(|&l| l == 0) {
        return 0;
    }
    let bytes: Vec<u8> = leaves.iter().flat_map(|l| l.to_le_bytes()).collect();
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

/// Which segment of its partition a key hash falls in: the hash bits just
/// below the partition bits.
fn segment_of(key_hash: u64, partitions: u32) -> usize {
    let partition_bits = partitions.trailing_zeros();
    let below = key_hash.checked_shl(partition_bits).unwrap_or(0);
    (below >> (64 - SEGMENT_BITS)) as usize
}

/// The hash range of one segment of a partition.
pub fn segment_range(partition: u32, segment: usize, partitions: u32) -> RangeInclusive<u64> {
    let whole = partition_range(partition, partitions);
    let width = (whole.end() - whole.start()) / SEGMENTS as u64 + 1;
    let start = whole.start() + width * segment as u64;
    start..=start + (width - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_tile_the_partition_and_match_segment_of() {
        for partitions in [1u32, 16, 1024] {
            let p = partitions / 2;
            let whole = partition_range(p, partitions);
            let mut next = *whole.start();
            for s in 0..SEGMENTS {
                let range = segment_range(p, s, partitions);
                assert_eq!(*range.start(), next);
                assert_eq!(segment_of(*range.start(), partitions), s);
                assert_eq!(segment_of(*range.end(), partitions), s);
                assert_eq!(partition_of(*range.end(), partitions), p);
                next = range.end().wrapping_add(1);
            }
            assert_eq!(next, whole.end().wrapping_add(1));
        }
    }

    #[test]
    fn roots_depend_on_content_not_on_update_order() {
        let a = MerkleForest::new(16);
        let b = MerkleForest::new(16);
        let records = [(11u64, 5u64), (u64::MAX - 3, 9), (1 << 60, 4)];
        for (hash, digest) in records {
            a.update(hash, 0, digest);
        }
        for (hash, digest) in records.iter().rev() {
            b.update(*hash, 0, 7);
            b.update(*hash, 7, *digest);
        }
        for p in 0..16 {
            assert_eq!(a.root(p), b.root(p));
        }
        assert_ne!(a.root(0), 0);
        a.update(11, 5, 0);
        assert_ne!(a.root(0), b.root(0));
        b.update(11, 5, 0);
        assert_eq!(a.root(0), b.root(0));
    }
}
