//! What a write says about its value besides the bytes: a content type,
//! user metadata and a time to live.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};

use crate::Error;

/// The prefix of the user metadata headers: `X-Dynamo-Meta-{name}`.
const META_PREFIX: &str = "x-dynamo-meta-";
/// The longest `Content-Type` a node keeps, in bytes.
const MAX_CONTENT_TYPE_BYTES: usize = 256;

/// The attributes of a write ([`crate::Client::put_with`]): kept with the
/// version it writes and returned by reads ([`crate::Version`]). The
/// default gives none, as [`crate::Client::put`] does.
///
/// ```
/// use std::time::Duration;
/// use dynamo_client::WriteOptions;
///
/// let options = WriteOptions::new()
///     .content_type("application/json")
///     .meta("owner", "ops")
///     .ttl(Duration::from_secs(3600));
/// ```
///
/// The client refuses, without a request, a content type or metadata it
/// cannot send as they are ([`Error::InvalidAttribute`]). The node's
/// limits (at most 32 metadata entries and 4 KiB of names and values, a
/// TTL of at most ten years) it leaves to the node, which answers `400
/// invalid_header` or `400 invalid_ttl`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// The value's `Content-Type` (1 to 256 bytes of visible ASCII, inner
    /// spaces allowed), returned as [`crate::Version::content_type`].
    pub content_type: Option<String>,
    /// User metadata, each entry sent as an `X-Dynamo-Meta-{name}: {value}`
    /// header. Names are HTTP header name characters (letters, digits and
    /// ``!#$%&'*+-.^_`|~``), case-insensitive: reads return them in lower
    /// case, and two names that differ only in case are refused. Values
    /// are visible ASCII, inner spaces allowed.
    pub meta: BTreeMap<String, String>,
    /// How long the value lives: from the coordinating node's clock at the
    /// write plus this, the version reads as deleted. Sent in whole
    /// seconds, rounded up (so at least 1 s); zero is refused.
    pub ttl: Option<Duration>,
}

impl WriteOptions {
    /// No attributes (the default).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the content type.
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// Adds (or replaces) the metadata entry `name`.
    pub fn meta(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.meta.insert(name.into(), value.into());
        self
    }

    /// Sets the time to live.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The headers and the TTL (whole seconds) to send, or why they cannot
    /// be sent.
    pub(crate) fn prepare(&self) -> Result<Prepared, Error> {
        let mut headers = Vec::with_capacity(self.meta.len() + 1);
        if let Some(content_type) = &self.content_type {
            if content_type.is_empty() || content_type.len() > MAX_CONTENT_TYPE_BYTES {
                return Err(invalid(format!(
                    "a content type is 1 to {MAX_CONTENT_TYPE_BYTES} bytes; this one is {}",
                    content_type.len()
                )));
            }
            let value = header_value(content_type)
                .ok_or_else(|| invalid(format!("the content type {content_type:?}{TEXT_RULE}")))?;
            headers.push((CONTENT_TYPE, value));
        }
        let mut names: Vec<String> = Vec::with_capacity(self.meta.len());
        for (name, value) in &self.meta {
            if name.is_empty() || !name.bytes().all(is_token) {
                return Err(invalid(format!(
                    "the metadata name {name:?} is not an HTTP header name: use letters, \
                     digits and !#$%&'*+-.^_`|~"
                )));
            }
            let lower = name.to_ascii_lowercase();
            if names.contains(&lower) {
                return Err(invalid(format!(
                    "the metadata name {lower:?} is given twice (names are case-insensitive)"
                )));
            }
            let header = HeaderName::try_from(format!("{META_PREFIX}{lower}"))
                .map_err(|e| invalid(format!("the metadata name {name:?}: {e}")))?;
            let value = header_value(value).ok_or_else(|| {
                invalid(format!(
                    "the value {value:?} of the metadata {name:?}{TEXT_RULE}"
                ))
            })?;
            names.push(lower);
            headers.push((header, value));
        }
        let ttl = match self.ttl {
            None => None,
            Some(ttl) if ttl.is_zero() => {
                return Err(invalid("a TTL must be positive".to_string()));
            }
            Some(ttl) => Some(ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)),
        };
        Ok(Prepared { headers, ttl })
    }
}

/// A write's attributes as they are sent.
pub(crate) struct Prepared {
    /// `Content-Type` and `X-Dynamo-Meta-*`.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `?ttl=`, in seconds.
    pub ttl: Option<u64>,
}

const TEXT_RULE: &str =
    " is not visible ASCII (spaces allowed inside, not at either end, which HTTP drops)";

/// `text` as a header value that reaches the node unchanged: visible ASCII
/// and inner spaces (HTTP strips whitespace at either end).
fn header_value(text: &str) -> Option<HeaderValue> {
    let bytes = text.as_bytes();
    let visible = |b: &u8| b.is_ascii_graphic();
    let inner_ok = bytes.iter().all(|b| visible(b) || *b == b' ');
    let ends_ok = bytes.first().is_none_or(visible) && bytes.last().is_none_or(visible);
    (inner_ok && ends_ok)
        .then(|| HeaderValue::from_str(text).ok())
        .flatten()
}

/// An RFC 9110 `tchar`.
fn is_token(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

fn invalid(reason: String) -> Error {
    Error::InvalidAttribute(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(options: WriteOptions) -> String {
        match options.prepare() {
            Err(Error::InvalidAttribute(reason)) => reason,
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("{options:?} was taken"),
        }
    }

    #[test]
    fn attributes_become_headers_and_seconds() {
        let prepared = WriteOptions::new()
            .content_type("text/plain; charset=utf-8")
            .meta("Owner", "ops team")
            .meta("x.y_z~1", "")
            .ttl(Duration::from_millis(1500))
            .prepare()
            .unwrap();
        let headers: Vec<(&str, &str)> = prepared
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            headers,
            [
                ("content-type", "text/plain; charset=utf-8"),
                ("x-dynamo-meta-owner", "ops team"),
                ("x-dynamo-meta-x.y_z~1", ""),
            ]
        );
        assert_eq!(prepared.ttl, Some(2), "rounded up");
        let second = WriteOptions::new().ttl(Duration::from_nanos(1));
        assert_eq!(second.prepare().unwrap().ttl, Some(1));
        let none = WriteOptions::default().prepare().unwrap();
        assert!(none.headers.is_empty() && none.ttl.is_none());
    }

    #[test]
    fn what_cannot_be_sent_is_refused() {
        assert!(refused(WriteOptions::new().meta("", "v")).contains("header name"));
        assert!(refused(WriteOptions::new().meta("a b", "v")).contains("header name"));
        assert!(refused(WriteOptions::new().meta("a:b", "v")).contains("header name"));
        assert!(refused(WriteOptions::new().meta("café", "v")).contains("header name"));
        let twice = WriteOptions::new().meta("Owner", "a").meta("owner", "b");
        assert!(refused(twice).contains("twice"));
        assert!(refused(WriteOptions::new().meta("n", "a\nb")).contains("visible ASCII"));
        assert!(refused(WriteOptions::new().meta("n", " a")).contains("visible ASCII"));
        assert!(refused(WriteOptions::new().meta("n", "é")).contains("visible ASCII"));
        assert!(refused(WriteOptions::new().content_type("")).contains("1 to 256"));
        assert!(refused(WriteOptions::new().content_type("a".repeat(257))).contains("1 to 256"));
        assert!(refused(WriteOptions::new().content_type("text/plain\r\nx: y")).contains("ASCII"));
        assert!(refused(WriteOptions::new().ttl(Duration::ZERO)).contains("positive"));
    }
}
