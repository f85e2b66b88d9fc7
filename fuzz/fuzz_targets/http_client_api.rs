//! The node's HTTP API: a raw HTTP/1.1 request (request line, headers,
//! body) handed to the node's routers, in process, over a one-member
//! cluster with a real store. Covers the key path, the quorum parameters,
//! the context header, bodies and their limits, and the admin documents.
//! No request may make the node answer 500.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: dynamo_fuzz::write_seeds_if_asked(dynamo_fuzz::seeds::http_requests),
    |data: &[u8]| dynamo_fuzz::http_api::handle(data)
);
