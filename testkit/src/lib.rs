//! Helpers shared by the workspace's tests (a dev-dependency only).
//!
//! [`pki`] makes a CA and certificates it signs, laid out as a node's
//! `--tls-dir` or a `kubernetes.io/tls` Secret expects.

pub mod pki;
