//! Node-to-node reply frames as a node reads them from a peer it called:
//! the peer answers the upgrade, then sends these bytes, which go through
//! the frame reader, the postcard decoding of `transport::Response` and
//! the version handshake in `Transport::call`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: dynamo_fuzz::write_seeds_if_asked(dynamo_fuzz::seeds::response_frames),
    |data: &[u8]| dynamo_fuzz::stream::call_with_reply_bytes(data)
);
