//! Published ring documents (`PUT /v1/admin/ring`, `--ring-file`, gossip):
//! JSON parsing of `RingDocument` and its validation. A document that
//! validates round-trips through JSON, answers every query a node makes of
//! its ring, and rebalances into rings that validate too.

#![no_main]

use dynamo_ring::{Member, RingDocument};
use libfuzzer_sys::fuzz_target;

fn exercise(doc: &RingDocument) {
    let ring = &doc.ring;
    let json = serde_json::to_vec(doc).expect("a document serializes");
    let back: RingDocument = serde_json::from_slice(&json).expect("its JSON parses");
    assert_eq!(&back, doc, "the JSON round trip changed the document");
    doc.validate_successor(ring)
        .expect("a valid ring may follow itself");
    let last = ring.partitions - 1;
    for partition in [0, last / 2, last, ring.partitions] {
        let owners = ring.preference_list(partition);
        let extended = ring.extended_preference_list(partition);
        if partition < ring.partitions {
            assert_eq!(owners.len(), ring.replication);
            assert_eq!(extended.len(), ring.members.len());
            assert_eq!(&extended[..owners.len()], &owners[..]);
        }
    }
    assert!(ring.partition_for_key(b"user:42") < ring.partitions);
    let first = &ring.members[0];
    let _ = ring.partitions_of(&first.id);
    let _ = ring.primary_partitions_of(&first.id);
    let _ = ring.primary(0);
    // What the admin API and the operator derive from it: the same members,
    // one fewer, one more.
    let members = ring.members.clone();
    let fewer = members[1..].to_vec();
    let mut more = members.clone();
    more.push(Member::new("~fuzz-new-member", "~fuzz-new-zone"));
    for members in [members, fewer, more] {
        if let Ok(next) = ring.rebalance(members) {
            next.validate().expect("a rebalanced ring validates");
            assert_eq!(next.epoch, ring.epoch + 1);
            let _ = ring.moved_replicas(&next);
        }
    }
}

fuzz_target!(
    init: dynamo_fuzz::write_seeds_if_asked(dynamo_fuzz::seeds::ring_documents),
    |data: &[u8]| {
        let Ok(doc) = serde_json::from_slice::<RingDocument>(data) else {
            return;
        };
        if doc.validate().is_ok() {
            exercise(&doc);
        }
    }
);
