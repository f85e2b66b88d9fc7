//! The bounds of versions, keys and contexts, and why each is what it is.
//! They hold against any client: no counter arithmetic can wrap, a key
//! always fits one node-to-node frame, and every context a node hands out
//! is one it accepts back.

/// Largest version counter a node issues or a context may claim. Counters
/// come from one sequence per data directory that starts at 1 (or, for
/// data written before the sequence existed, at the time in milliseconds
/// times 1024, about 2^51) and grows by one per write and by at most 2^20
/// per restart, so no node reaches 2^62; and a bound far below `u64::MAX`
/// leaves every `+ 1` on a counter room.
pub const MAX_COUNTER: u64 = 1 << 62;

/// Most concurrent versions (siblings) a write may leave a key with. A
/// write that would leave more, and more than the key had, is refused: a
/// client that keeps writing without reading is not resolving conflicts,
/// and every extra sibling travels with every read and replica write of
/// the key. Riak's `max_siblings` default.
pub const MAX_SIBLINGS: usize = 100;

/// Largest encoded size of a key's versions a write may leave (values
/// included), refused likewise. A key travels whole in one node-to-node
/// frame (replica writes and reads, hinted handoff), so this stays well
/// within the frame limit (`transport::frame::MAX_FRAME`, 256 MiB; a
/// coordinator test checks four times this fits): room for the merge of
/// versions several coordinators took without seeing each other, which
/// no write can refuse.
pub const MAX_OBJECT_BYTES: usize = 16 << 20;

/// Most actors a context names. A context names one actor per sibling at
/// most (see `Object::context`), so the contexts of keys within
/// [`MAX_SIBLINGS`] are never cut; a key above it (after such a merge)
/// hands out a context of its first actors, which still lets a write
/// shrink it.
pub const MAX_CONTEXT_ACTORS: usize = MAX_SIBLINGS;

/// Largest context in bytes: its entry count, then per actor the actor
/// (any `u64`) and a counter up to [`MAX_COUNTER`], as postcard varints.
pub const MAX_CONTEXT_BYTES: usize = varint_len(usize::BITS - MAX_CONTEXT_ACTORS.leading_zeros())
    + MAX_CONTEXT_ACTORS
        * (varint_len(u64::BITS) + varint_len(u64::BITS - MAX_COUNTER.leading_zeros()));

/// Longest context accepted from a client, in characters: the largest
/// context in URL-safe base64 without padding. Every context a node hands
/// out fits.
pub const MAX_CONTEXT_LEN: usize = (MAX_CONTEXT_BYTES * 4).div_ceil(3);

/// Bytes of a postcard varint of a number with `bits` significant bits.
const fn varint_len(bits: u32) -> usize {
    let bytes = bits.div_ceil(7);
    if bytes == 0 { 1 } else { bytes as usize }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_lengths_match_postcard() {
        for value in [0u64, 1, 127, 128, 1 << 40, MAX_COUNTER, u64::MAX] {
            let encoded = postcard::to_stdvec(&value).unwrap();
            assert_eq!(
                encoded.len(),
                varint_len(u64::BITS - value.leading_zeros()),
                "{value}"
            );
        }
    }

    #[test]
    fn the_context_limit_is_about_two_and_a_half_thousand_characters() {
        assert_eq!(MAX_CONTEXT_BYTES, 1 + 100 * (10 + 9));
        assert_eq!(MAX_CONTEXT_LEN, 2535);
    }
}
