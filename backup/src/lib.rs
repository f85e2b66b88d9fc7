//! Backups of a Dynamo cluster.
//!
//! A node exports a checkpoint of its records as a [record stream](records)
//! and imports such a stream by merging each record into the key's current
//! replicas. The backup tool cuts exported streams into compressed,
//! checksummed chunks on a target (an S3-compatible object store or a
//! directory) and writes a manifest last; restore and verify read them back.

pub mod records;
