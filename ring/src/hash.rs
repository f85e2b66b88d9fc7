//! Key hashing and partition math.
//!
//! Keys are hashed with XXH3-64 (seed 0). The function is part of the on-disk
//! and on-wire contract: a key's partition must never change between
//! releases, so the algorithm and seed are fixed and pinned by tests.
//!
//! A partition is the set of hashes whose top `log2(Q)` bits equal its number,
//! so every partition is one contiguous range of the hash space and partitions
//! appear in hash order. Storage that lays keys out by hash can therefore
//! scan, transfer or compare one partition as a single key range.

use std::ops::RangeInclusive;

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Hashes a key onto the 64-bit ring with XXH3-64, seed 0.
///
/// Stable across releases: changing it would move every key to another
/// partition.
pub fn key_hash(key: &[u8]) -> u64 {
    xxh3_64(key)
}

/// The partition a hash falls in, out of `partitions` equal partitions.
///
/// For `partitions = 2^k` this is the top `k` bits of the hash (and always 0
/// when `partitions` is 1). It is computed as `hash * partitions / 2^64`,
/// which also gives contiguous, nearly equal ranges for other counts and
/// never panics; `partitions = 0` yields 0.
pub fn partition_of(hash: u64, partitions: u32) -> u32 {
    // hash * partitions < 2^64 * partitions, so the quotient is < partitions.
    ((u128::from(hash) * u128::from(partitions)) >> 64) as u32
}

/// The inclusive range of hashes that [`partition_of`] maps to `partition`.
///
/// The ranges of partitions `0..partitions` tile `0..=u64::MAX` in order,
/// without gaps or overlaps. A partition outside `0..partitions` covers no
/// hash and gets an empty range (`1..=0`).
pub fn partition_range(partition: u32, partitions: u32) -> RangeInclusive<u64> {
    if partition >= partitions {
        return RangeInclusive::new(1, 0);
    }
    let start = first_hash(partition, partitions);
    let end = if partition + 1 == partitions {
        u64::MAX
    } else {
        first_hash(partition + 1, partitions) - 1
    };
    start..=end
}

/// The smallest hash `h` with `h * partitions >= partition * 2^64`.
/// Callers guarantee `partition < partitions`, so the result fits in 64 bits.
fn first_hash(partition: u32, partitions: u32) -> u64 {
    ((u128::from(partition) << 64).div_ceil(u128::from(partitions))) as u64
}

/// Rendezvous (highest-random-weight) score of a name for a partition:
/// XXH3-64 of the name seeded with the partition number.
///
/// Used to break ties deterministically when assigning partitions and to
/// order the non-owners in an extended preference list. Stable across
/// releases for the same reason as [`key_hash`].
pub fn rendezvous_score(partition: u32, name: &str) -> u64 {
    xxh3_64_with_seed(name.as_bytes(), u64::from(partition))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POWERS: [u32; 6] = [1, 2, 16, 1024, 4096, 65_536];

    #[test]
    fn key_hash_is_pinned_xxh3() {
        // Values from the reference C implementation of XXH3-64.
        assert_eq!(key_hash(b""), 0x2D06_8005_38D3_94C2);
        assert_eq!(key_hash(b"hello"), 0x9555_E855_5C62_DCFD);
        assert_eq!(key_hash(&[b'x'; 300]), 0xA5D1_B460_7DC8_3554);
        assert_eq!(rendezvous_score(7, "node-a"), 0x5E25_040D_F92F_A70A);
    }

    #[test]
    fn single_partition_takes_everything() {
        for hash in [0, 1, u64::MAX / 2, u64::MAX] {
            assert_eq!(partition_of(hash, 1), 0);
        }
        assert_eq!(partition_range(0, 1), 0..=u64::MAX);
    }

    #[test]
    fn partition_is_top_bits() {
        for q in POWERS {
            let bits = q.trailing_zeros();
            for hash in [0, 1, 0x8000_0000_0000_0000, 0xDEAD_BEEF_0123_4567, u64::MAX] {
                let top = if bits == 0 { 0 } else { hash >> (64 - bits) };
                assert_eq!(
                    u64::from(partition_of(hash, q)),
                    top,
                    "hash {hash:#x} q {q}"
                );
            }
        }
    }

    #[test]
    fn extreme_hashes_land_in_first_and_last_partition() {
        for q in POWERS {
            assert_eq!(partition_of(0, q), 0);
            assert_eq!(partition_of(u64::MAX, q), q - 1);
        }
    }

    #[test]
    fn ranges_tile_the_hash_space() {
        for q in POWERS {
            let mut next = 0u64;
            for p in 0..q {
                let range = partition_range(p, q);
                assert_eq!(
                    *range.start(),
                    next,
                    "gap or overlap before partition {p} of {q}"
                );
                assert_eq!(partition_of(*range.start(), q), p);
                assert_eq!(partition_of(*range.end(), q), p);
                if p + 1 < q {
                    assert_eq!(partition_of(range.end() + 1, q), p + 1);
                    next = range.end() + 1;
                } else {
                    assert_eq!(*range.end(), u64::MAX);
                }
            }
        }
    }

    #[test]
    fn ranges_are_equal_for_powers_of_two() {
        for q in POWERS {
            let width = u128::from(u64::MAX) + 1;
            for p in [0, q / 2, q - 1] {
                let range = partition_range(p, q);
                let len = u128::from(range.end() - range.start()) + 1;
                assert_eq!(len, width / u128::from(q));
            }
        }
    }

    #[test]
    fn out_of_range_partitions_cover_nothing() {
        assert!(partition_range(16, 16).is_empty());
        assert!(partition_range(0, 0).is_empty());
        assert_eq!(partition_of(u64::MAX, 0), 0);
    }
}
