//! Valid inputs for each target, from which the committed corpus grew:
//! real messages, frames, contexts, ring documents and HTTP requests, made
//! with the node's own types and encoders.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use dynamo_node::transport::{
    CoordinateWrite, GossipDigest, QuorumShortfall, Request, Response, TraceContext,
    UnacknowledgedWrite, handshake,
};
use dynamo_node::version::{Attributes, Content, Dot, Object, VersionVector, encode_context};
use dynamo_ring::document::{PartitionTransfer, TransferState};
use dynamo_ring::{Member, Ring, RingDocument, TransferReport};

use crate::frame;
use crate::http_api::NODE_ID;

fn clock(entries: &[(u64, u64)]) -> VersionVector {
    let mut clock = VersionVector::new();
    for &(actor, counter) in entries {
        clock.add(Dot { actor, counter });
    }
    clock
}

/// A key's state with two concurrent siblings, one a tombstone.
fn object() -> Object {
    let mut object = Object::new();
    let empty = VersionVector::new();
    object
        .write(
            Dot {
                actor: 7,
                counter: 1,
            },
            &empty,
            Some(Bytes::from_static(b"value")),
        )
        .expect("a first write");
    object
        .write(
            Dot {
                actor: 9,
                counter: 4,
            },
            &empty,
            None,
        )
        .expect("a concurrent delete");
    object
}

/// A ring document of `ids` in up to three zones, replication `n`,
/// `partitions` partitions, each member at `ID.svc:7000`.
pub fn ring_document(ids: &[&str], n: usize, partitions: u32) -> RingDocument {
    let members = ids
        .iter()
        .enumerate()
        .map(|(i, id)| Member::new(*id, format!("z{}", i % 3)))
        .collect();
    let ring = Ring::build(members, n, partitions).expect("a seed ring");
    let addresses = ids
        .iter()
        .map(|id| (id.to_string(), format!("{id}.svc:7000")))
        .collect();
    RingDocument { ring, addresses }
}

fn transfer_report() -> TransferReport {
    TransferReport {
        node: "b".into(),
        epoch: 2,
        pending: 1,
        done: 0,
        hints_pending: 3,
        retired: 0,
        partitions: vec![PartitionTransfer {
            partition: 5,
            from: Some("a".into()),
            state: TransferState::Streaming,
            keys: 10,
            bytes: 1000,
        }],
    }
}

fn gossip() -> GossipDigest {
    GossipDigest {
        from: "a".into(),
        ring: ring_document(&["a", "b", "c"], 2, 8),
        heartbeats: vec![("a".into(), 12), ("b".into(), 9)],
    }
}

/// One of each kind of request.
pub fn requests() -> Vec<Request> {
    let key = || Bytes::from_static(b"user:42");
    vec![
        Request::ReplicaRead { key: key() },
        Request::ReplicaWrite {
            key: key(),
            object: object(),
            hint_for: Some("c".into()),
        },
        Request::MergeBatch {
            items: vec![
                (key(), object()),
                (Bytes::from_static(b"k2"), Object::new()),
            ],
        },
        Request::ReadBatch {
            keys: vec![key(), Bytes::from_static(b"k2")],
        },
        Request::MerkleRoots {
            partitions: vec![0, 3, 7],
        },
        Request::MerkleLeaves { partition: 3 },
        Request::SegmentDigests {
            partition: 3,
            segments: vec![0, 1, 63],
        },
        Request::ScanPartition {
            partition: 3,
            after: Some(key()),
            limit: 256,
        },
        Request::PurgeTombstones {
            items: vec![(key(), 0xdead_beef)],
        },
        Request::TransferReport,
        Request::Gossip(Box::new(gossip())),
        Request::CoordinateWrite(CoordinateWrite {
            key: key(),
            context: clock(&[(7, 1), (9, 4)]),
            content: Content::value(
                Bytes::from_static(b"new value"),
                Attributes {
                    content_type: Some("application/json".into()),
                    meta: vec![("owner".into(), "ops".into())],
                    expires_at: Some(1_800_000_000_000),
                },
            ),
            w: 2,
        }),
        Request::Ping,
        Request::TombstoneCheck { keys: vec![key()] },
        handshake::hello(),
        Request::CoordinateWriteWithOutcome(CoordinateWrite {
            key: key(),
            context: clock(&[(7, 1)]),
            content: Content::Value(Bytes::from_static(b"value")),
            w: 3,
        }),
    ]
}

/// One of each common kind of response.
pub fn responses() -> Vec<Response> {
    vec![
        Response::Object(Some(object())),
        Response::Object(None),
        Response::Written,
        Response::Coordinated(Ok(clock(&[(7, 2)]))),
        Response::Coordinated(Err(QuorumShortfall {
            op: "write".into(),
            needed: 2,
            answered: 1,
            replicas: 3,
        })),
        Response::Pong,
        Response::Objects(vec![Some(object()), None]),
        Response::Roots(vec![1, 2, 3]),
        Response::Leaves(vec![4; 64]),
        Response::Digests(vec![(Bytes::from_static(b"k"), 5)]),
        Response::Page {
            items: vec![(Bytes::from_static(b"k"), object())],
            next: Some(Bytes::from_static(b"k")),
        },
        Response::Transfers(Box::new(transfer_report())),
        Response::Gossip(Box::new(gossip())),
        Response::NotReady,
        Response::Failed("no such partition".into()),
        handshake::answer(handshake::MIN_PROTOCOL, handshake::PROTOCOL, "seed"),
        Response::WriteOutcome(Err(UnacknowledgedWrite {
            shortfall: QuorumShortfall {
                op: "write".into(),
                needed: 3,
                answered: 1,
                replicas: 3,
            },
            context: clock(&[(7, 2)]),
        })),
    ]
}

/// `transport_messages`: each request and response, postcard-encoded.
pub fn messages() -> Vec<Vec<u8>> {
    let requests = requests().into_iter().map(|r| postcard::to_stdvec(&r));
    let responses = responses().into_iter().map(|r| postcard::to_stdvec(&r));
    requests
        .chain(responses)
        .map(|encoded| encoded.expect("messages serialize"))
        .collect()
}

/// `transport_request_frames`: each request as a frame, then all of them
/// back to back on one stream.
pub fn request_frames() -> Vec<Vec<u8>> {
    let frames: Vec<Vec<u8>> = (0u64..)
        .zip(requests())
        .map(|(id, request)| frame(id, &request))
        .collect();
    let mut seeds = frames.clone();
    seeds.push(frames.concat());
    // From protocol 2 on, a request may carry its sender's trace context.
    let context = TraceContext {
        trace_id: [0x4b; 16],
        span_id: [0xf0; 8],
        flags: 1,
    };
    for request in [Request::Ping, Request::ReplicaRead { key: Bytes::from_static(b"k") }] {
        let mut traced = frame(1, &request);
        traced.extend(postcard::to_stdvec(&context).expect("contexts serialize"));
        let len = u32::try_from(traced.len() - 4).expect("seed frames are small");
        traced[..4].copy_from_slice(&len.to_be_bytes());
        seeds.push(traced);
    }
    seeds
}

/// `transport_response_frames`: each response as the reply to the node's
/// first request on the stream (request id 0, the version handshake), each
/// as the reply to its call (id 1) after a handshake reply, and one reply
/// to an unknown id before the handshake's.
pub fn response_frames() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = responses().iter().map(|r| frame(0, r)).collect();
    let hello = handshake::answer(handshake::MIN_PROTOCOL, handshake::PROTOCOL, "seed");
    for response in responses() {
        let mut after_hello = frame(0, &hello);
        after_hello.extend(frame(1, &response));
        seeds.push(after_hello);
    }
    let mut late = frame(5, &Response::Pong);
    late.extend(frame(0, &hello));
    seeds.push(late);
    seeds
}

/// `client_context`: contexts a node hands out, from empty to many actors.
pub fn contexts() -> Vec<Vec<u8>> {
    let many: Vec<(u64, u64)> = (1..=20).map(|a| (a * 1_000_003, a)).collect();
    let contexts = [
        encode_context(&VersionVector::new()),
        encode_context(&clock(&[(7, 1)])),
        encode_context(&clock(&[(7, 1), (9, 4), (u64::MAX, 1 << 40)])),
        encode_context(&clock(&many)),
        // Not a vector: trailing bytes.
        URL_SAFE_NO_PAD.encode([1, 7, 1, 0]),
    ];
    contexts.into_iter().map(String::into_bytes).collect()
}

/// `ring_document`: published rings of one to five members.
pub fn ring_documents() -> Vec<Vec<u8>> {
    [
        ring_document(&["a"], 1, 1),
        ring_document(&["a", "b", "c"], 3, 8),
        ring_document(&["a", "b", "c", "d", "e"], 2, 16),
    ]
    .iter()
    .map(|doc| serde_json::to_vec_pretty(doc).expect("ring documents serialize"))
    .collect()
}

/// An HTTP/1.1 request as it arrives: `head` (request line and headers,
/// without the blank line) then `body`.
fn http(head: &str, body: &[u8]) -> Vec<u8> {
    let mut request = head.replace('\n', "\r\n").into_bytes();
    request.extend_from_slice(b"\r\n\r\n");
    request.extend_from_slice(body);
    request
}

/// `http_client_api`: a request to each route, the key-value ones with
/// quorum parameters and a context.
pub fn http_requests() -> Vec<Vec<u8>> {
    let context = encode_context(&clock(&[(7, 1), (9, 4)]));
    // The node's own ring (see `http_api`), one epoch on.
    let mut ring = Ring::build(vec![Member::new(NODE_ID, "z1")], 1, 16).expect("a seed ring");
    ring.epoch += 1;
    let addresses = [(NODE_ID.to_string(), "127.0.0.1:9".to_string())].into();
    let next_ring = serde_json::to_vec(&RingDocument { ring, addresses }).expect("ring JSON");
    let members = br#"{"add":[{"id":"fuzz-b","zone":"z2","address":"127.0.0.1:9"}]}"#;
    vec![
        http("PUT /v1/kv/user:42?w=1 HTTP/1.1\nHost: node", b"hello"),
        http(
            &format!("PUT /v1/kv/a%2Fb HTTP/1.1\nX-Dynamo-Context: {context}"),
            b"v2",
        ),
        http(
            "GET /v1/kv/user:42?r=1 HTTP/1.1\nAccept: application/json",
            b"",
        ),
        http(
            &format!("DELETE /v1/kv/user:42 HTTP/1.1\nX-Dynamo-Context: {context}"),
            b"",
        ),
        http("DELETE /v1/kv/missing?r=1&w=1 HTTP/1.1", b""),
        http("GET /v1/kv/ HTTP/1.1", b""),
        http("GET /v1/status HTTP/1.1", b""),
        http("GET /v1/admin/ring HTTP/1.1", b""),
        http(
            "PUT /v1/admin/ring HTTP/1.1\nContent-Type: application/json",
            &next_ring,
        ),
        http(
            "POST /v1/admin/members HTTP/1.1\nContent-Type: application/json",
            members,
        ),
        http("GET /v1/admin/transfers HTTP/1.1", b""),
        http("GET /v1/admin/merkle?partition=3 HTTP/1.1", b""),
        http("GET /healthz HTTP/1.1", b""),
        http("GET /readyz HTTP/1.1", b""),
        http(
            "GET /internal/v1/stream HTTP/1.1\nConnection: Upgrade\nUpgrade: dynamo-rpc/1",
            b"",
        ),
    ]
}

/// A key's state with one value written with attributes.
fn described_object() -> Object {
    let mut object = Object::new();
    let content = Content::value(
        Bytes::from_static(b"{}"),
        Attributes {
            content_type: Some("application/json".into()),
            meta: vec![("owner".into(), "ops".into())],
            expires_at: Some(1_800_000_000_000),
        },
    );
    let dot = Dot {
        actor: 3,
        counter: 2,
    };
    object
        .write(dot, &VersionVector::new(), content)
        .expect("a first write");
    object
}

/// Import bodies and chunk contents: records of real stored states (a key
/// with siblings and a tombstone, one with attributes), as the node stores
/// them.
pub fn backup_records() -> Vec<Vec<u8>> {
    let states = [object(), described_object()];
    let mut all = Vec::new();
    let mut seeds = Vec::new();
    for (i, state) in states.iter().enumerate() {
        let value = postcard::to_stdvec(state).expect("a state encodes");
        let mut one = Vec::new();
        dynamo_backup::records::put_record(&mut one, format!("key-{i}").as_bytes(), &value);
        all.extend_from_slice(&one);
        seeds.push(one);
    }
    seeds.push(all);
    seeds.push(Vec::new());
    seeds
}
