//! The data directory's format version: a meta record saying how the
//! directory's records are laid out, so that a release refuses a directory
//! it does not understand instead of misreading it.
//!
//! A new format is defined when a release writes records an older release
//! would misread (a new key layout, a changed encoding of a state or of a
//! meta document); a release that reads older formats keeps them in
//! [`READS`] and upgrades or reads them as they are. Releases before the
//! record existed wrote format 1 without saying so.
//!
//! The formats:
//!
//! 1. The first.
//! 2. A version may hold a value with attributes (content type, user
//!    metadata, expiry; `Content::Described` in `version/content.rs`), and
//!    the tombstone index also holds the keys with a value that expires
//!    (at its expiry). Everything else is format 1, so a directory stays
//!    format 1, which the releases before attributes open, until the first
//!    such version is stored: the commit that stores it records format 2.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use super::{Storage, StorageError};

/// Meta record holding the data directory's format version, as decimal
/// ASCII.
pub const FORMAT_RECORD: &str = "format-version";

/// The format a new data directory gets.
pub const FORMAT: u32 = 1;

/// The format of a directory once it holds a version with attributes.
pub const DESCRIBED_FORMAT: u32 = 2;

/// The formats this release reads.
pub const READS: RangeInclusive<u32> = 1..=DESCRIBED_FORMAT;

/// Why a node may not use a data directory's format.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// A format this release does not read (written by a newer release).
    #[error(
        "the data directory {dir} has format version {found}, but this release of dynamo-node \
         reads versions {}..={}: run a release that reads format {found} \
         (the one that wrote it, or a newer one)",
        READS.start(),
        READS.end()
    )]
    Unsupported {
        /// The data directory.
        dir: PathBuf,
        /// The format recorded there.
        found: u32,
    },
    /// A record that is not a version number (damaged, or not this
    /// program's).
    #[error(
        "the data directory {dir} has a format version record that does not parse ({found:?}); \
         this release reads versions {}..={}: check that the directory is a dynamo-node \
         data directory, and run the release that wrote it",
        READS.start(),
        READS.end()
    )]
    Unreadable {
        /// The data directory.
        dir: PathBuf,
        /// The record, as text.
        found: String,
    },
    /// The record could not be read or written.
    #[error("reading or recording the format version of the data directory {dir}: {source}")]
    Storage {
        /// The data directory.
        dir: PathBuf,
        /// What failed.
        source: StorageError,
    },
}

/// Makes sure this release reads the format of the data directory `dir`
/// that `storage` holds: refuses a format it does not read, and records
/// [`FORMAT`] in a directory that names none (a new one, or one from a
/// release before the record, which wrote format 1).
pub fn check(storage: &Storage, dir: &Path) -> Result<(), FormatError> {
    let storage_error = |source| FormatError::Storage {
        dir: dir.to_path_buf(),
        source,
    };
    let Some(record) = storage.meta_get(FORMAT_RECORD).map_err(storage_error)? else {
        tracing::info!(
            dir = %dir.display(),
            "the data directory records no format version (new, or from a release before \
             versions were recorded); recording format {FORMAT}"
        );
        return storage
            .meta_put(FORMAT_RECORD, FORMAT.to_string().as_bytes())
            .map_err(storage_error);
    };
    let found = parse(&record).ok_or_else(|| FormatError::Unreadable {
        dir: dir.to_path_buf(),
        found: String::from_utf8_lossy(&record).into_owned(),
    })?;
    match READS.contains(&found) {
        true => Ok(()),
        false => Err(FormatError::Unsupported {
            dir: dir.to_path_buf(),
            found,
        }),
    }
}

/// The format `storage` records, if it records a readable one.
pub fn recorded(storage: &Storage) -> Option<u32> {
    parse(&storage.meta_get(FORMAT_RECORD).ok()??)
}

/// The version a record names, if it is one.
fn parse(record: &[u8]) -> Option<u32> {
    std::str::from_utf8(record).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageOptions;

    fn open(dir: &Path) -> Storage {
        let options = StorageOptions {
            partitions: 16,
            ..StorageOptions::default()
        };
        Storage::open(dir, &options).unwrap()
    }

    #[test]
    fn a_directory_without_a_record_gets_the_current_format() {
        let dir = tempfile::tempdir().unwrap();
        let storage = open(dir.path());
        check(&storage, dir.path()).unwrap();
        assert_eq!(
            storage.meta_get(FORMAT_RECORD).unwrap(),
            Some(FORMAT.to_string().into_bytes())
        );
        check(&storage, dir.path()).unwrap();
    }

    #[test]
    fn a_newer_format_is_refused_naming_the_directory_and_the_versions() {
        let dir = tempfile::tempdir().unwrap();
        let storage = open(dir.path());
        storage.meta_put(FORMAT_RECORD, b"99").unwrap();
        let error = check(&storage, dir.path()).unwrap_err();
        assert!(matches!(error, FormatError::Unsupported { found: 99, .. }));
        let message = error.to_string();
        for part in [
            &dir.path().display().to_string(),
            "format version 99",
            &format!("reads versions 1..={DESCRIBED_FORMAT}"),
            "run a release that reads format 99",
        ] {
            assert!(message.contains(part), "{part:?} missing in: {message}");
        }
        assert_eq!(
            storage.meta_get(FORMAT_RECORD).unwrap(),
            Some(b"99".to_vec())
        );
    }

    #[test]
    fn a_record_that_does_not_parse_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let storage = open(dir.path());
        for record in [&b"one"[..], b"", b"-1", &[0xff, 0xfe]] {
            storage.meta_put(FORMAT_RECORD, record).unwrap();
            let error = check(&storage, dir.path()).unwrap_err();
            assert!(matches!(error, FormatError::Unreadable { .. }), "{error}");
            assert!(error.to_string().contains("does not parse"), "{error}");
        }
    }

    #[test]
    fn every_format_this_release_reads_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let storage = open(dir.path());
        for version in READS {
            storage
                .meta_put(FORMAT_RECORD, version.to_string().as_bytes())
                .unwrap();
            check(&storage, dir.path()).unwrap();
        }
    }
}
