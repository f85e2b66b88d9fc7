//! The backup driver: takes, verifies and restores backups of a cluster on
//! a target, talking to the nodes' admin routes. `dynamoctl backup` runs it
//! (docs/backup.md says what a backup holds and how it is laid out).

pub mod chunk;
pub mod create;
mod error;
pub mod layout;
pub mod nodes;
pub mod progress;
pub mod restore;
pub mod store;

pub use error::DriverError;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}
