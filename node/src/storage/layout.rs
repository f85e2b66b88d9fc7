//! How keys are laid out in RocksDB.
//!
//! A data key is the 8-byte big-endian ring hash of the user key followed by
//! the user key itself. Partitions are contiguous hash ranges (the top bits
//! of the hash), so one partition is one contiguous RocksDB key range: a
//! transfer or an anti-entropy pass scans a range, never the whole database.

use std::ops::RangeInclusive;

/// Column family holding key -> versioned object.
pub const DATA_CF: &str = "data";
/// Column family holding node metadata (identity, ring).
pub const META_CF: &str = "meta";

/// Meta key under which the node's write actor id is stored.
pub const META_ACTOR: &[u8] = b"actor";

/// The RocksDB key of a user key.
pub fn data_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.len());
    out.extend_from_slice(&dynamo_ring::key_hash(key).to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// The user key stored in a RocksDB data key, if it has the expected layout.
pub fn user_key(data_key: &[u8]) -> Option<&[u8]> {
    data_key.get(8..)
}

/// RocksDB bounds `[start, end)` of a ring-hash range; `end` is `None` when
/// the range reaches the top of the ring.
pub fn hash_range_bounds(range: &RangeInclusive<u64>) -> (Vec<u8>, Option<Vec<u8>>) {
    let start = range.start().to_be_bytes().to_vec();
    let end = range.end().checked_add(1).map(|e| e.to_be_bytes().to_vec());
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_is_a_contiguous_key_range() {
        let q = 16;
        for key in [&b"a"[..], b"hello", b"", b"\xff\xff"] {
            let dk = data_key(key);
            assert_eq!(user_key(&dk), Some(key));
            let p = dynamo_ring::partition_of(dynamo_ring::key_hash(key), q);
            let (start, end) = hash_range_bounds(&dynamo_ring::partition_range(p, q));
            assert!(dk.as_slice() >= start.as_slice());
            if let Some(end) = end {
                assert!(dk.as_slice() < end.as_slice());
            }
        }
    }
}
