//! A cluster member and where to reach it: the one data type every layer
//! shares. It sits at the bottom of the crate and imports nothing from it.

use dynamo_ring::Member;

/// One known cluster member and where to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Ring identity.
    pub member: Member,
    /// `HOST:PORT` of its internal routes.
    pub address: String,
}
