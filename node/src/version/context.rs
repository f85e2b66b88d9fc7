//! The opaque causal context handed to clients.
//!
//! A context is the version vector of what a read saw, encoded as compact
//! binary and then URL-safe base64 so it fits an HTTP header.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::VersionVector;

/// Longest context accepted from a client, in encoded characters.
pub const MAX_CONTEXT_LEN: usize = 8 * 1024;

/// Why a client-supplied context was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContextError {
    /// Longer than the largest accepted context (8 KiB).
    #[error("context is {0} characters long; at most {MAX_CONTEXT_LEN} are accepted")]
    TooLong(usize),
    /// Not URL-safe base64.
    #[error("context is not URL-safe base64: {0}")]
    NotBase64(String),
    /// Decodes to bytes that are not a version vector.
    #[error("context does not decode to a version vector")]
    Malformed,
}

/// Encodes a version vector as an opaque client context.
pub fn encode_context(clock: &VersionVector) -> String {
    let bytes = postcard::to_stdvec(clock).expect("a version vector always serializes");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes a client context; an empty string is the empty context.
pub fn decode_context(text: &str) -> Result<VersionVector, ContextError> {
    let text = text.trim();
    if text.len() > MAX_CONTEXT_LEN {
        return Err(ContextError::TooLong(text.len()));
    }
    if text.is_empty() {
        return Ok(VersionVector::new());
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|e| ContextError::NotBase64(e.to_string()))?;
    let (clock, rest): (VersionVector, _) =
        postcard::take_from_bytes(&bytes).map_err(|_| ContextError::Malformed)?;
    if !rest.is_empty() || !clock.is_well_formed() {
        return Err(ContextError::Malformed);
    }
    Ok(clock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::Dot;

    #[test]
    fn round_trip() {
        let mut clock = VersionVector::new();
        clock.add(Dot {
            actor: u64::MAX,
            counter: 7,
        });
        clock.add(Dot {
            actor: 3,
            counter: 1,
        });
        assert_eq!(decode_context(&encode_context(&clock)), Ok(clock));
        assert_eq!(decode_context(""), Ok(VersionVector::new()));
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            decode_context("!!!"),
            Err(ContextError::NotBase64(_))
        ));
        assert_eq!(decode_context("AAAA"), Err(ContextError::Malformed));
        // Unsorted entries are not a well-formed vector.
        let unsorted =
            URL_SAFE_NO_PAD.encode(postcard::to_stdvec(&vec![(5u64, 1u64), (2, 1)]).unwrap());
        assert_eq!(decode_context(&unsorted), Err(ContextError::Malformed));
        let long = "A".repeat(MAX_CONTEXT_LEN + 1);
        assert_eq!(
            decode_context(&long),
            Err(ContextError::TooLong(MAX_CONTEXT_LEN + 1))
        );
    }
}
