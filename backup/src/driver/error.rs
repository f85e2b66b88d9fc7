//! Why a backup, verify or restore failed.

use reqwest::StatusCode;

/// Why a backup, verify or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A node could not be reached.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// What was called.
        url: String,
        /// Why not.
        reason: String,
    },
    /// A node refused the token (401, 403).
    #[error("{url}: {status}: {body}")]
    Denied {
        /// What was called.
        url: String,
        /// The status.
        status: StatusCode,
        /// The node's explanation.
        body: String,
    },
    /// A node answered with another error.
    #[error("{url}: {status}: {body}")]
    Node {
        /// What was called.
        url: String,
        /// The status.
        status: StatusCode,
        /// The node's explanation.
        body: String,
    },
    /// No backup of that id on the target.
    #[error("{0}")]
    NoSuchBackup(String),
    /// The backup is not complete, damaged, or not this tool's.
    #[error("{0}")]
    Backup(String),
    /// The target failed (an object store or directory error).
    #[error("{0}")]
    Target(String),
    /// Anything else (a bad id, a node's unexpected answer).
    #[error("{0}")]
    Other(String),
}
