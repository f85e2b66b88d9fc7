//! Node-to-node messages: postcard decoding of `transport::Request` and
//! `transport::Response`, and what a node does first with the states they
//! carry (merging them). A decoded message encodes to bytes that decode
//! and encode again to the same bytes.

#![no_main]

use dynamo_node::transport::{Request, Response};
use dynamo_node::version::Object;
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Decodes `data` as a `T`; if it is one, checks that its encoding is
/// stable, and hands it to `inspect`.
fn decode<T: Serialize + DeserializeOwned>(data: &[u8], inspect: impl Fn(&T)) {
    let Ok(message) = postcard::from_bytes::<T>(data) else {
        return;
    };
    inspect(&message);
    let encoded = postcard::to_stdvec(&message).expect("a decoded message encodes");
    let again: T = postcard::from_bytes(&encoded).expect("an encoded message decodes");
    let reencoded = postcard::to_stdvec(&again).expect("a decoded message encodes");
    assert_eq!(encoded, reencoded, "the encoding is not stable");
}

/// Merges a state from a peer the way replicas do, into nothing and into
/// itself, and reads it the way reads do.
fn absorb(object: &Object) {
    let mut local = Object::new();
    local.merge(object);
    let mut twice = object.clone();
    twice.merge(object);
    let _ = object.context();
    let _ = object.live_values().count();
    let _ = object.descends(&local);
}

fn request_states(request: &Request) {
    match request {
        Request::ReplicaWrite { object, .. } => absorb(object),
        Request::MergeBatch { items } => items.iter().for_each(|(_, o)| absorb(o)),
        Request::Gossip(digest) => {
            let _ = digest.ring.validate();
        }
        _ => {}
    }
}

fn response_states(response: &Response) {
    match response {
        Response::Object(Some(object)) => absorb(object),
        Response::Objects(objects) => objects.iter().flatten().for_each(absorb),
        Response::Page { items, .. } => items.iter().for_each(|(_, o)| absorb(o)),
        Response::Gossip(digest) => {
            let _ = digest.ring.validate();
        }
        _ => {}
    }
}

fuzz_target!(
    init: dynamo_fuzz::write_seeds_if_asked(dynamo_fuzz::seeds::messages),
    |data: &[u8]| {
        decode::<Request>(data, request_states);
        decode::<Response>(data, response_states);
    }
);
