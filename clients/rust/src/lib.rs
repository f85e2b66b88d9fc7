//! Async client of the dynamo key-value store's HTTP API.
//!
//! Any node of a cluster coordinates any key, so a [`Client`] takes every
//! node's URL and uses them in turn. It carries the causal context for
//! you: a read returns [`Versions`] (every live version of the key, and
//! the context), and writes take the context back, so a write supersedes
//! exactly what its read saw. Concurrent writes become siblings, which
//! [`Client::update`] hands to your merge function before writing the
//! result.
//!
//! ```no_run
//! # async fn example() -> Result<(), dynamo_client::Error> {
//! use dynamo_client::Client;
//!
//! let client = Client::builder(["http://127.0.0.1:7001", "http://127.0.0.1:7002"]).build()?;
//! let context = client.put("greeting", "hello", None).await?;
//! let read = client.get("greeting").await?;
//! assert_eq!(read.value()?.map(|v| v.as_ref()), Some(&b"hello"[..]));
//! client.put("greeting", "hello again", read.context.as_deref()).await?;
//! # let _ = context;
//!
//! // Siblings merged by the application: here, the longest value wins.
//! client
//!     .update("greeting", |siblings| siblings.iter().max_by_key(|v| v.len()).cloned())
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! Each version also keeps what its write said about it: a content type,
//! user metadata and a time to live ([`WriteOptions`], given to
//! [`Client::put_with`]), which reads return per sibling
//! ([`Versions::siblings`], each a [`Version`]).
//!
//! ```no_run
//! # async fn example(client: dynamo_client::Client) -> Result<(), dynamo_client::Error> {
//! use std::time::Duration;
//! use dynamo_client::WriteOptions;
//!
//! let options = WriteOptions::new()
//!     .content_type("application/json")
//!     .meta("owner", "ops")
//!     .ttl(Duration::from_secs(3600));
//! client.put_with("doc", r#"{"a":1}"#, None, &options).await?;
//! let read = client.get("doc").await?;
//! if let Some(version) = read.version()? {
//!     println!("{:?} {:?} {:?}", version.content_type, version.meta, version.expires_at);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Failures: `503` answers and connection errors are retried with
//! exponential backoff and full jitter on the next node ([`Retry`]);
//! client errors never are. A write retried after a lost answer may leave
//! a sibling, never a lost value. Every error is an [`Error`].

mod client;
mod error;
mod path;
mod versions;
mod write;

pub use client::{CONTEXT_HEADER, Client, ClientBuilder, KeyPage, Retry};
pub use error::Error;
pub use versions::{Version, Versions};
pub use write::WriteOptions;
