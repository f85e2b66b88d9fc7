//! The opaque causal context handed to clients.
//!
//! A context is a version vector naming the versions a read saw (per
//! actor, its newest sibling; see `Object::context`), encoded as compact
//! binary and then URL-safe base64 so it fits an HTTP header.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::VersionVector;
use super::limits::{MAX_CONTEXT_ACTORS, MAX_CONTEXT_LEN, MAX_COUNTER};

/// Why a client-supplied context was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContextError {
    /// Longer than the largest context a node hands out.
    #[error("context is {0} characters long; at most {MAX_CONTEXT_LEN} are accepted")]
    TooLong(usize),
    /// Not URL-safe base64.
    #[error("context is not URL-safe base64: {0}")]
    NotBase64(String),
    /// Decodes to bytes that are not a version vector.
    #[error("context does not decode to a version vector")]
    Malformed,
    /// Names more actors than any context a node hands out.
    #[error("context names {0} actors; at most {MAX_CONTEXT_ACTORS} are accepted")]
    TooManyActors(usize),
    /// Claims a counter above any a node issues.
    #[error("context claims version counter {0}; no node issues one above {MAX_COUNTER}")]
    CounterTooLarge(u64),
}

/// Encodes a version vector as an opaque client context.
pub fn encode_context(clock: &VersionVector) -> String {
    let bytes = postcard::to_stdvec(clock).expect("a version vector always serializes");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes a client context; an empty string is the empty context. Only
/// what a node could have handed out is accepted: a well-formed vector of
/// at most [`MAX_CONTEXT_ACTORS`] actors with counters up to
/// [`MAX_COUNTER`].
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
    let entries = clock.entries();
    if entries.len() > MAX_CONTEXT_ACTORS {
        return Err(ContextError::TooManyActors(entries.len()));
    }
    if let Some(&(_, counter)) = entries.iter().find(|(_, c)| *c > MAX_COUNTER) {
        return Err(ContextError::CounterTooLarge(counter));
    }
    Ok(clock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::Dot;
    use proptest::prelude::*;

    fn vv(entries: &[(u64, u64)]) -> VersionVector {
        let mut v = VersionVector::new();
        for &(actor, counter) in entries {
            v.add(Dot { actor, counter });
        }
        v
    }

    fn extreme() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0),
            Just(1),
            Just(MAX_COUNTER),
            Just(MAX_COUNTER + 1),
            Just(u64::MAX - 1),
            Just(u64::MAX),
            any::<u64>(),
        ]
    }

    #[test]
    fn the_largest_context_a_node_hands_out_is_accepted() {
        let largest: Vec<(u64, u64)> = (0..=u64::MAX)
            .rev()
            .take(MAX_CONTEXT_ACTORS)
            .map(|actor| (actor, MAX_COUNTER))
            .collect();
        let text = encode_context(&vv(&largest));
        assert_eq!(text.len(), MAX_CONTEXT_LEN);
        assert_eq!(decode_context(&text), Ok(vv(&largest)));
    }

    #[test]
    fn extreme_counters_and_too_many_actors_are_refused() {
        for counter in [MAX_COUNTER + 1, u64::MAX - 1, u64::MAX] {
            let text = encode_context(&vv(&[(7, 1), (9, counter)]));
            assert_eq!(
                decode_context(&text),
                Err(ContextError::CounterTooLarge(counter))
            );
        }
        let many: Vec<(u64, u64)> = (1..)
            .take(MAX_CONTEXT_ACTORS + 1)
            .map(|actor| (actor, 1))
            .collect();
        assert_eq!(
            decode_context(&encode_context(&vv(&many))),
            Err(ContextError::TooManyActors(MAX_CONTEXT_ACTORS + 1))
        );
        let zero = URL_SAFE_NO_PAD.encode(postcard::to_stdvec(&vec![(5u64, 0u64)]).unwrap());
        assert_eq!(decode_context(&zero), Err(ContextError::Malformed));
    }

    proptest! {
        /// Vectors with extreme actors and counters: a context decodes to
        /// the vector exactly when a node could have handed it out.
        #[test]
        fn decoding_accepts_exactly_the_contexts_within_the_limits(
            entries in proptest::collection::vec((extreme(), extreme()), 0..8)
        ) {
            let clock = vv(&entries);
            let within = clock.entries().iter().all(|(_, c)| *c <= MAX_COUNTER);
            match decode_context(&encode_context(&clock)) {
                Ok(decoded) => prop_assert!(within && decoded == clock),
                Err(error) => prop_assert!(!within, "{error}"),
            }
        }

        /// Any text, and any bytes in base64: an answer, never a panic.
        #[test]
        fn decoding_arbitrary_input_never_panics(
            text in ".{0,64}",
            bytes in proptest::collection::vec(any::<u8>(), 0..64)
        ) {
            let _ = decode_context(&text);
            if let Ok(clock) = decode_context(&URL_SAFE_NO_PAD.encode(&bytes)) {
                prop_assert!(clock.is_well_formed());
            }
        }
    }

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
