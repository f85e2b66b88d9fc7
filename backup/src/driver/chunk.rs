//! A chunk: record frames compressed with zstd, named by the SHA-256 of
//! the stored bytes in its manifest entry.

use sha2::{Digest, Sha256};

use super::DriverError;

/// zstd level: fast, most of the gain.
const LEVEL: i32 = 3;

/// The stored bytes of a chunk of `raw` record frames, and their SHA-256.
pub fn seal(raw: &[u8]) -> Result<(Vec<u8>, String), DriverError> {
    let stored = zstd::bulk::compress(raw, LEVEL)
        .map_err(|e| DriverError::Other(format!("compressing a chunk: {e}")))?;
    let sum = sha256(&stored);
    Ok((stored, sum))
}

/// The record frames of a chunk's stored bytes, after checking them
/// against the manifest's checksum and sizes.
pub fn open(
    name: &str,
    stored: &[u8],
    sha256_hex: &str,
    raw_bytes: u64,
) -> Result<Vec<u8>, DriverError> {
    let sum = sha256(stored);
    if sum != sha256_hex {
        return Err(DriverError::Backup(format!(
            "chunk {name} is damaged: its SHA-256 is {sum}, the manifest says {sha256_hex}"
        )));
    }
    let raw = zstd::bulk::decompress(stored, raw_bytes as usize)
        .map_err(|e| DriverError::Backup(format!("chunk {name} is damaged: decompressing: {e}")))?;
    if raw.len() as u64 != raw_bytes {
        return Err(DriverError::Backup(format!(
            "chunk {name} is damaged: it holds {} bytes of records, the manifest says {raw_bytes}",
            raw.len()
        )));
    }
    Ok(raw)
}

/// SHA-256 of `bytes`, hex.
pub fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_chunk_opens_and_a_flipped_bit_is_caught() {
        let raw = b"records records records".repeat(100);
        let (mut stored, sum) = seal(&raw).unwrap();
        assert_eq!(open("c", &stored, &sum, raw.len() as u64).unwrap(), raw);
        let middle = stored.len() / 2;
        stored[middle] ^= 1;
        let error = open("c", &stored, &sum, raw.len() as u64).unwrap_err();
        assert!(error.to_string().contains("damaged"), "{error}");
    }
}
