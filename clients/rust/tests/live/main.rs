//! The client against live three-node clusters (one test binary; the
//! clusters live on loopback IPs of their own, so tests run in parallel).

mod attributes;
mod calls;
mod cart;
mod support;
