//! Node-to-node request frames as a node reads them from a peer's stream:
//! the bytes follow the upgrade of `/internal/v1/stream` and go through the
//! frame reader (length, request id, per-kind cap, payload) and the
//! postcard decoding of `transport::Request`, in the node's stream server.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: dynamo_fuzz::write_seeds_if_asked(dynamo_fuzz::seeds::request_frames),
    |data: &[u8]| dynamo_fuzz::stream::serve_request_frames(data)
);
