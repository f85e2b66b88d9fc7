//! How keys are laid out in RocksDB.
//!
//! A data key is the 8-byte big-endian ring hash of the user key followed by
//! the user key itself. Partitions are contiguous hash ranges (the top bits
//! of the hash), so one partition is one contiguous RocksDB key range: a
//! transfer or an anti-entropy pass scans a range, never the whole database.

use std::ops::RangeInclusive;

/// Column family holding key -> versioned object.
pub const DATA_CF: &str = "data";
/// Column family holding node metadata (identity, ring, transfers).
pub const META_CF: &str = "meta";
/// Column family of hint markers: "the owner `o` misses our copy of key
/// `k`", keyed by owner then data key, valued by a sequence number.
pub const HINTS_CF: &str = "hints";
/// Column family indexing tombstones: data key -> when this replica first
/// held the key as a tombstone (ms since the Unix epoch, big-endian).
pub const TOMBS_CF: &str = "tombstones";

/// The column families of a store: the data column family with
/// `data_options`, the others (RocksDB's unused default one included) with
/// `other_options`.
pub fn column_families(
    data_options: rocksdb::Options,
    other_options: &rocksdb::Options,
) -> Vec<rocksdb::ColumnFamilyDescriptor> {
    use rocksdb::{ColumnFamilyDescriptor, DEFAULT_COLUMN_FAMILY_NAME};
    vec![
        ColumnFamilyDescriptor::new(DEFAULT_COLUMN_FAMILY_NAME, other_options.clone()),
        ColumnFamilyDescriptor::new(DATA_CF, data_options),
        ColumnFamilyDescriptor::new(META_CF, other_options.clone()),
        ColumnFamilyDescriptor::new(HINTS_CF, other_options.clone()),
        ColumnFamilyDescriptor::new(TOMBS_CF, other_options.clone()),
    ]
}

/// Meta key under which the node's write actor id is stored.
pub const META_ACTOR: &[u8] = b"actor";

/// Meta key the write probe of an unavailable store writes (the time of
/// the probe, ms since the Unix epoch, big-endian).
pub const META_WRITE_PROBE: &[u8] = b"write-probe";

/// The RocksDB key of a user key.
pub fn data_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.len());
    out.extend_from_slice(&dynamo_ring::key_hash(key).to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// The RocksDB key of a hint marker: owner id length, owner id, data key.
/// Markers of one owner are one contiguous range.
pub fn hint_key(owner: &str, data_key: &[u8]) -> Vec<u8> {
    let mut out = hint_prefix(owner);
    out.extend_from_slice(data_key);
    out
}

/// The key prefix shared by every hint marker of `owner`.
pub fn hint_prefix(owner: &str) -> Vec<u8> {
    let owner = &owner.as_bytes()[..owner.len().min(255)];
    let mut out = Vec::with_capacity(1 + owner.len() + 8);
    out.push(owner.len() as u8);
    out.extend_from_slice(owner);
    out
}

/// Splits a hint marker key into (owner, data key).
pub fn split_hint_key(key: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&len, rest) = key.split_first()?;
    let len = usize::from(len);
    (rest.len() >= len + 8).then(|| rest.split_at(len))
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
    fn hint_keys_round_trip_and_group_by_owner() {
        let dk = data_key(b"k");
        let hk = hint_key("node-2", &dk);
        assert!(hk.starts_with(&hint_prefix("node-2")));
        assert!(!hk.starts_with(&hint_prefix("node-")));
        assert_eq!(split_hint_key(&hk), Some((&b"node-2"[..], dk.as_slice())));
        assert_eq!(split_hint_key(b"\x05ab"), None);
    }

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
