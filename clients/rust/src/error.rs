//! What a call can fail with.

use std::time::Duration;

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node answered with an error (never retried unless it is a
    /// `503`, whose last answer this is once the retries ran out).
    #[error("{method} {url}: {status} {code}: {message}")]
    Api {
        /// `GET`, `PUT`, ...
        method: String,
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The stable error code (`invalid_key`, `quorum_unavailable`, ...).
        code: String,
        /// The node's explanation, for people.
        message: String,
    },
    /// No node could be reached, after every retry.
    #[error("{method} {url}: no answer after {attempts} attempt(s) over {elapsed:?}: {reason}")]
    Unreachable {
        /// `GET`, `PUT`, ...
        method: String,
        /// The last URL tried.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// Time spent, backoff included.
        elapsed: Duration,
        /// The last connection error.
        reason: String,
    },
    /// [`crate::Versions::value`] of a key holding several siblings.
    #[error("the key has {0} concurrent versions (siblings): read them all and merge")]
    Siblings(usize),
    /// A key this client cannot send: `.` and `..` are path segments every
    /// WHATWG URL library (this one's included) resolves away, encoded or
    /// not.
    #[error("the key {0:?} cannot be sent in a URL path: use another key")]
    UnaddressableKey(String),
    /// A write's attributes ([`crate::WriteOptions`]) this client cannot
    /// send as given (a metadata name that is not an HTTP header name, a
    /// zero TTL, ...): refused before any request.
    #[error("write attributes: {0}")]
    InvalidAttribute(String),
    /// The client could not be built (a bad URL, an unreadable CA file).
    #[error("client configuration: {0}")]
    Config(String),
    /// A node answered with something this client does not understand.
    #[error("{url}: unexpected answer: {reason}")]
    Decode {
        /// The URL asked.
        url: String,
        /// What was wrong.
        reason: String,
    },
}

impl Error {
    /// The HTTP status of an [`Error::Api`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error code of an [`Error::Api`] (`forbidden`, `invalid_key`, ...).
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the node refused the credentials (`401` or `403`).
    pub fn is_denied(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }

    /// Whether the cluster could not serve the call now (`503` after the
    /// retries, or no node reachable): worth trying again later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unreachable { .. }) || self.status() == Some(503)
    }
}
