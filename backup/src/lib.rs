//! Backups of a Dynamo cluster.
//!
//! A node exports a checkpoint of its records as a [record stream](records)
//! and imports such a stream by merging each record into the key's current
//! replicas. The backup tool cuts exported streams into compressed,
//! checksummed chunks on a target (an S3-compatible object store or a
//! directory) and writes a manifest last; restore and verify read them back.

#[cfg(feature = "driver")]
pub mod driver;
pub mod records;

/// A backup id that is not a DNS label.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid backup id {0:?}: use 1 to 63 lowercase letters, digits and '-', starting and \
     ending with a letter or digit"
)]
pub struct InvalidId(pub String);

/// Refuses a backup id that is not a DNS label: it names a node's
/// checkpoint directory, objects on the target and Kubernetes resources.
pub fn check_id(id: &str) -> Result<(), InvalidId> {
    let bytes = id.as_bytes();
    let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    let ok = (1..=63).contains(&bytes.len())
        && bytes.iter().all(allowed)
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-');
    match ok {
        true => Ok(()),
        false => Err(InvalidId(id.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_dns_labels() {
        for good in ["a", "nightly-1", &"x".repeat(63)] {
            assert_eq!(check_id(good), Ok(()), "{good}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a/b", "..", &"x".repeat(64)] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }
}
