//! Structural checks over the workspace's own Rust sources, run by
//! `cargo test` (see `tests/workspace.rs`) and by `cargo run -p
//! dynamo-codecheck` for a readable listing.
//!
//! - [`modules`] reads a crate's module tree the way rustc finds it
//!   (`mod x;` → `x.rs` or `x/mod.rs`) and records which module names a
//!   path into which other module (`crate::…`, `super::…`, `self::…`).
//! - [`layering`] turns those references into one graph per parent module
//!   (an edge between two of its children) and finds cycles.
//! - [`length`] measures every function.
//!
//! Code under `#[cfg(test)]` and `#[test]` functions are left out: the
//! rules are about the shipped code's structure.

pub mod layering;
pub mod length;
pub mod modules;
pub mod syntax;
pub mod workspace;
