//! Helpers shared by the workspace's tests (a dev-dependency only).
//!
//! - [`pki`]: a CA and certificates it signs, laid out as a node's
//!   `--tls-dir` or a `kubernetes.io/tls` Secret expects.
//! - [`process`]: the `dynamo-node` binary, free ports, the `serve` command
//!   line, and a node process killed when dropped.
//! - [`proxy`]: a fault-injecting TCP proxy in front of a node's internal
//!   port, to cut nodes off from each other.
//! - [`http`]: reqwest clients (plain, or HTTPS trusting one CA) and the
//!   node's client API as tests call it.
//! - [`s3`]: a real S3-compatible server (SeaweedFS) on loopback, with
//!   static credentials and one bucket, killed when dropped.
//! - [`writer`]: a background writer recording every acknowledged write.
//! - [`checks`]: a node is ready, every acknowledged write is readable,
//!   replicas have converged.

#![warn(missing_docs)]

pub mod checks;
pub mod http;
pub mod pki;
pub mod process;
pub mod proxy;
pub mod s3;
pub mod writer;
