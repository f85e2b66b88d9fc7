//! The client context header (`X-Dynamo-Context`): `decode_context` on
//! any text. What it accepts is a well-formed vector within the limits,
//! and encodes back to a context that decodes to the same vector.

#![no_main]

use dynamo_node::version::{
    MAX_CONTEXT_ACTORS, MAX_CONTEXT_LEN, MAX_COUNTER, decode_context, encode_context,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: dynamo_fuzz::write_seeds_if_asked(dynamo_fuzz::seeds::contexts),
    |data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let Ok(clock) = decode_context(text) else {
            return;
        };
        assert!(clock.is_well_formed(), "{text:?} decoded to {clock:?}");
        assert!(clock.entries().len() <= MAX_CONTEXT_ACTORS);
        assert!(clock.entries().iter().all(|&(_, c)| c <= MAX_COUNTER));
        let encoded = encode_context(&clock);
        assert!(encoded.len() <= MAX_CONTEXT_LEN, "{encoded:?} is too long");
        assert_eq!(decode_context(&encoded), Ok(clock));
    }
);
