//! Causality tracking: dotted version vectors.
//!
//! Every stored value carries a [`Dot`] (the write event that created it) and
//! every key carries one [`VersionVector`] summarising all events a replica has
//! seen for it. This is the "DVV set" of Preguiça et al., the scheme Riak 2.0
//! and Garage K2V use: a write supersedes exactly the siblings its client
//! context covers, concurrent writes become siblings, and stale writes never
//! overwrite newer ones. Whatever clients send, counters stay below
//! [`MAX_COUNTER`], a key within [`MAX_SIBLINGS`] and [`MAX_OBJECT_BYTES`],
//! and contexts within [`MAX_CONTEXT_LEN`]. See `docs/versioning.md`.

mod clock;
mod content;
mod context;
mod limits;
mod object;

pub use clock::{Actor, Dot, VersionVector};
pub use content::{Attributes, Content, now_ms};
pub use context::{ContextError, decode_context, encode_context};
pub use limits::{
    MAX_CONTEXT_ACTORS, MAX_CONTEXT_BYTES, MAX_CONTEXT_LEN, MAX_COUNTER, MAX_OBJECT_BYTES,
    MAX_SIBLINGS,
};
pub use object::{Object, Sibling, WriteRefused};
