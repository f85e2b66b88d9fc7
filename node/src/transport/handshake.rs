//! The version handshake that opens every stream a node dials.
//!
//! Each release speaks a range of node-to-node protocol versions,
//! [`MIN_PROTOCOL`]`..=`[`PROTOCOL`]. The dialing node's first request on
//! a new stream is [`Request::Hello`] with its range and release; the peer
//! answers [`Response::Hello`] with its own when the two ranges overlap,
//! else [`Response::Failed`] saying why, and the dialer refuses the
//! stream. Both then speak the highest version in both ranges.
//!
//! The release before versions existed answers a `Hello` as it answers
//! every request kind it does not know ("undecodable request"), and dials
//! without one: either way it is taken as speaking protocol 1.
//!
//! The versions:
//!
//! 1. The first: the messages of `transport/message.rs` as they were when
//!    versions began.
//! 2. A request's frame may carry, after its message, the
//!    [`TraceContext`](super::message::TraceContext) of the sender's span
//!    (see `transport/frame.rs`), so that a client request and the replica
//!    calls it causes form one trace across nodes. It goes only to peers
//!    that agreed on 2 or later; a peer of protocol 1 never sees one.
//! 3. A version may hold a value with attributes (content type, user
//!    metadata, expiry: `Content::Described`, see `version/content.rs`).
//!    The messages of protocols 1 and 2 still decode as they did; a
//!    coordinator takes a write with attributes only once every member of
//!    the ring agreed on 3 or later with it, so a node of an older release
//!    is never sent such a version (one that joins afterwards, or a member
//!    rolled back, refuses the messages that carry one, as undecodable;
//!    see docs/operator.md, "Upgrade the operator and the node image").
//!    And a forwarded write may be sent as
//!    `Request::CoordinateWriteWithOutcome`, answered with
//!    `Response::WriteOutcome`, which carries a context to retry with also
//!    when the quorum fell short.
//!
//! Raising the versions: any change to the messages that an older release
//! would decode differently, or not at all (a new variant, a new or
//! changed field), raises [`PROTOCOL`], and what is new goes only to
//! peers that negotiated it. [`MIN_PROTOCOL`] is raised only when support
//! for an old release is dropped: peers that speak nothing newer are then
//! refused.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::RangeInclusive;
use std::sync::Mutex;

use super::{Request, Response, RpcError};
use crate::peer::Peer;
use crate::sync::lock;

/// The newest node-to-node protocol version this release speaks.
pub const PROTOCOL: u32 = 3;

/// The first protocol version whose versions may carry attributes.
pub const DESCRIBED: u32 = 3;

/// The first protocol version that takes
/// `Request::CoordinateWriteWithOutcome`.
pub const WRITE_OUTCOME: u32 = 3;

/// The first protocol version whose requests may carry a trace context.
pub const TRACED: u32 = 2;

/// The oldest node-to-node protocol version this release speaks.
pub const MIN_PROTOCOL: u32 = 1;

/// This release, as it introduces itself to peers.
pub const RELEASE: &str = concat!("dynamo-node ", env!("CARGO_PKG_VERSION"));

/// The protocol of the release before versions existed.
const UNVERSIONED: u32 = 1;

/// How that release answers a request kind it does not know, `Hello`
/// included (see `transport/server.rs`).
const UNKNOWN_REQUEST: &str = "undecodable request";

/// How a refusal of the handshake begins.
const MISMATCH: &str = "protocol mismatch";

/// Longest part of a peer's release name that goes into logs and errors.
const RELEASE_SHOWN: usize = 64;

/// What was warned about already: a refusal is logged once per peer and
/// version range, not once per call.
static WARNED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Most refusals remembered in [`WARNED`]; past it, it starts afresh (so
/// that peers announcing ever new ranges cannot grow it without bound).
const MAX_WARNED: usize = 256;

/// The first request on a stream this node dials.
pub fn hello() -> Request {
    Request::Hello {
        min_protocol: MIN_PROTOCOL,
        protocol: PROTOCOL,
        release: RELEASE.to_string(),
    }
}

/// The highest version in both this release's range and `theirs`.
pub fn common(theirs: &RangeInclusive<u32>) -> Option<u32> {
    let highest = PROTOCOL.min(*theirs.end());
    (highest >= MIN_PROTOCOL.max(*theirs.start())).then_some(highest)
}

/// One side of a handshake: the protocols it speaks and its release.
#[derive(Debug)]
struct Side<'a> {
    protocols: RangeInclusive<u32>,
    release: &'a str,
}

impl<'a> Side<'a> {
    /// This node's side.
    fn this_node() -> Side<'static> {
        Side {
            protocols: MIN_PROTOCOL..=PROTOCOL,
            release: RELEASE,
        }
    }

    /// A peer's side, as it announced it.
    fn peer(min_protocol: u32, protocol: u32, release: &'a str) -> Self {
        Side {
            protocols: min_protocol..=protocol,
            release,
        }
    }
}

impl fmt::Display for Side<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let release: String = self.release.chars().take(RELEASE_SHOWN).collect();
        let (min, max) = (self.protocols.start(), self.protocols.end());
        write!(f, "({release:?}) speaks protocols {min}..={max}")
    }
}

/// Why two sides of a handshake cannot talk.
fn mismatch(dialer: &Side, dialed: &Side) -> String {
    format!(
        "{MISMATCH}: the dialing node {dialer}, the dialed node {dialed}; none in common: \
         upgrade or roll back through a release that speaks both"
    )
}

/// The answer to a peer's [`Request::Hello`]: this release's range when
/// it overlaps the peer's, else a refusal saying why (logged once).
pub fn answer(min_protocol: u32, protocol: u32, release: &str) -> Response {
    if common(&(min_protocol..=protocol)).is_some() {
        return Response::Hello {
            min_protocol: MIN_PROTOCOL,
            protocol: PROTOCOL,
            release: RELEASE.to_string(),
        };
    }
    let dialer = Side::peer(min_protocol, protocol, release);
    let refusal = mismatch(&dialer, &Side::this_node());
    warn_once(format!("dialed by {dialer}"), || {
        tracing::warn!("refused a dialing peer's handshake: {refusal}");
    });
    Response::Failed(refusal)
}

/// The protocol to speak with `peer`, from its reply to [`hello`]. A
/// mismatch, or any other answer than an agreement (a peer that fails or
/// garbles the handshake), is an [`RpcError::Incompatible`], logged once
/// per peer; a reply that did not come (a timeout, a broken connection)
/// is the error it is.
pub fn outcome(peer: &Peer, reply: Result<Response, RpcError>) -> Result<u32, RpcError> {
    let reason = match reply {
        Ok(Response::Hello {
            min_protocol,
            protocol,
            release,
        }) => match common(&(min_protocol..=protocol)) {
            Some(version) => return Ok(agreed(peer, version, &release)),
            None => mismatch(
                &Side::this_node(),
                &Side::peer(min_protocol, protocol, &release),
            ),
        },
        Err(RpcError::Remote { message, .. }) if message.starts_with(UNKNOWN_REQUEST) => {
            return Ok(agreed(peer, UNVERSIONED, "a release before versions"));
        }
        Err(RpcError::Remote { message, .. }) if message.starts_with(MISMATCH) => message,
        Err(RpcError::Remote { message, .. }) => format!("the handshake failed: {message}"),
        Ok(_) => "the peer answered the handshake with another kind of reply".to_string(),
        Err(error) => return Err(error),
    };
    warn_once(format!("{} {reason}", peer.member.id), || {
        tracing::warn!(
            peer = %peer.member.id,
            address = %peer.address,
            "refusing the stream to the peer, it is treated as unreachable: {reason}"
        );
    });
    Err(RpcError::Incompatible {
        peer: peer.member.id.clone(),
        reason,
    })
}

/// Notes the protocol agreed with `peer` (a later mismatch warns again).
fn agreed(peer: &Peer, version: u32, release: &str) -> u32 {
    let prefix = format!("{} ", peer.member.id);
    lock(&WARNED).retain(|key| !key.starts_with(&prefix));
    tracing::debug!(peer = %peer.member.id, release, version, "node-to-node protocol agreed");
    version
}

/// Runs `warn` unless it ran for `key` already.
fn warn_once(key: String, warn: impl FnOnce()) {
    if first_time(&mut lock(&WARNED), key) {
        warn();
    }
}

/// Whether `key` is new to `seen`, which it joins; `seen` holds at most
/// [`MAX_WARNED`] keys.
fn first_time(seen: &mut BTreeSet<String>, key: String) -> bool {
    if seen.contains(&key) {
        return false;
    }
    if seen.len() >= MAX_WARNED {
        seen.clear();
    }
    seen.insert(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamo_ring::Member;

    fn peer(id: &str) -> Peer {
        Peer {
            member: Member {
                id: id.into(),
                zone: "z".into(),
            },
            address: "h:1".into(),
        }
    }

    fn remote(message: &str) -> Result<Response, RpcError> {
        Err(RpcError::Remote {
            peer: "p".into(),
            message: message.into(),
        })
    }

    #[test]
    fn the_highest_common_version_is_spoken() {
        assert_eq!(common(&(1..=1)), Some(1));
        assert_eq!(common(&(0..=7)), Some(PROTOCOL));
        assert_eq!(common(&(PROTOCOL + 1..=PROTOCOL + 5)), None);
        assert_eq!(common(&(99..=99)), None);
        assert_eq!(common(&(0..=0)), None);
        let (min_protocol, protocol) = (2, 1);
        let empty = min_protocol..=protocol;
        assert_eq!(common(&empty), None, "an empty range overlaps nothing");
    }

    #[test]
    fn a_peer_with_a_range_in_common_gets_this_release_s_range() {
        let Response::Hello {
            min_protocol,
            protocol,
            release,
        } = answer(1, 5, "dynamo-node 9")
        else {
            panic!("refused");
        };
        assert_eq!((min_protocol, protocol), (MIN_PROTOCOL, PROTOCOL));
        assert_eq!(release, RELEASE);
    }

    #[test]
    fn a_peer_without_a_range_in_common_is_refused_saying_why() {
        let Response::Failed(message) = answer(99, 99, "dynamo-node 99.0.0") else {
            panic!("accepted");
        };
        assert!(message.starts_with(MISMATCH), "{message}");
        for part in [
            "the dialing node (\"dynamo-node 99.0.0\") speaks protocols 99..=99",
            &format!("the dialed node ({RELEASE:?}) speaks protocols {MIN_PROTOCOL}..={PROTOCOL}"),
            "upgrade or roll back",
        ] {
            assert!(message.contains(part), "{part:?} missing in: {message}");
        }
    }

    #[test]
    fn a_long_release_name_is_cut_short_in_messages() {
        let Response::Failed(message) = answer(99, 99, &"x".repeat(10_000)) else {
            panic!("accepted");
        };
        assert!(message.len() < 400, "{} bytes", message.len());
    }

    #[test]
    fn the_dialer_speaks_the_common_version_or_refuses() {
        let p = peer("a");
        let hello = |min_protocol, protocol| {
            Ok(Response::Hello {
                min_protocol,
                protocol,
                release: "r".into(),
            })
        };
        assert_eq!(outcome(&p, hello(1, 3)).unwrap(), PROTOCOL);
        let error = outcome(&p, hello(50, 60)).unwrap_err();
        assert!(
            matches!(&error, RpcError::Incompatible { reason, .. } if reason.contains("50..=60")),
            "{error}"
        );
        assert!(!error.peer_answered());
    }

    #[test]
    fn a_peer_that_predates_versions_speaks_protocol_1() {
        let reply = remote("undecodable request: Found an enum discriminant that was not in range");
        assert_eq!(outcome(&peer("old"), reply).unwrap(), UNVERSIONED);
    }

    #[test]
    fn a_refusal_by_the_peer_is_an_incompatible_peer() {
        let refusal = "protocol mismatch: the dialing node (\"r\") speaks protocols 5..=6";
        let error = outcome(&peer("b"), remote(refusal)).unwrap_err();
        assert!(
            matches!(&error, RpcError::Incompatible { reason, .. } if reason == refusal),
            "{error}"
        );
    }

    #[test]
    fn a_failed_or_garbled_handshake_is_an_incompatible_peer() {
        let error = outcome(&peer("c"), Ok(Response::Pong)).unwrap_err();
        assert!(matches!(error, RpcError::Incompatible { .. }), "{error}");
        let error = outcome(&peer("c"), remote("undecodable reply: bad")).unwrap_err();
        assert!(
            matches!(&error, RpcError::Incompatible { reason, .. } if reason.contains("undecodable reply")),
            "{error}"
        );
    }

    #[test]
    fn no_reply_is_not_a_version_verdict() {
        let timeout = RpcError::Timeout {
            peer: "e".into(),
            timeout_ms: 1,
        };
        let error = outcome(&peer("e"), Err(timeout)).unwrap_err();
        assert!(matches!(error, RpcError::Timeout { .. }), "{error}");
    }

    #[test]
    fn the_memory_of_refusals_is_bounded() {
        let mut seen = BTreeSet::new();
        assert!(first_time(&mut seen, "a".into()));
        assert!(!first_time(&mut seen, "a".into()));
        for range in 0..10 * MAX_WARNED {
            assert!(first_time(&mut seen, format!("dialed by {range}..=99")));
            assert!(seen.len() <= MAX_WARNED);
        }
    }

    #[test]
    fn a_refusal_is_warned_once_until_the_peer_agrees_again() {
        let mut warned = 0;
        for _ in 0..3 {
            warn_once("d 1..=1".into(), || warned += 1);
        }
        assert_eq!(warned, 1);
        agreed(&peer("d"), 1, "r");
        warn_once("d 1..=1".into(), || warned += 1);
        assert_eq!(warned, 2);
    }
}
