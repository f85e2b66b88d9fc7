//! What a read returns: every live version of a key, with the attributes
//! each was written with, and the key's context.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Deserialize;

use crate::Error;

/// A key as a read saw it: its live versions (several are siblings, none
/// means absent or deleted) and the causal context to write it back with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versions {
    /// The key.
    pub key: String,
    /// The context of what the read saw; `None` when the key has no state
    /// at all (a deleted key keeps its tombstone's context: writing with
    /// it supersedes the delete).
    pub context: Option<String>,
    /// Every live version's bytes (the [`Version::value`]s of
    /// [`Versions::siblings`], in the same order).
    pub values: Vec<Bytes>,
    /// Every live version with the attributes it was written with, in the
    /// order of [`Versions::values`].
    pub siblings: Vec<Version>,
}

/// One live version of a key: its bytes and what its write said about it
/// (see [`crate::WriteOptions`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// The value's bytes.
    pub value: Bytes,
    /// The `Content-Type` it was written with; `None` when it was written
    /// without one (a plain read answers `application/octet-stream`).
    pub content_type: Option<String>,
    /// Its user metadata (`X-Dynamo-Meta-{name}` headers), names in lower
    /// case.
    pub meta: BTreeMap<String, String>,
    /// When it expires (the coordinating node's clock at the write plus
    /// its TTL, to the millisecond); `None` when it was written without a
    /// TTL. From then on it reads as deleted.
    pub expires_at: Option<SystemTime>,
}

impl Version {
    /// A version written without attributes.
    fn plain(value: Bytes) -> Self {
        Self {
            value,
            content_type: None,
            meta: BTreeMap::new(),
            expires_at: None,
        }
    }
}

impl Versions {
    /// Whether the key has a live value.
    pub fn exists(&self) -> bool {
        !self.values.is_empty()
    }

    /// The one value; `None` when absent, [`Error::Siblings`] when the key
    /// holds concurrent versions (merge them with [`crate::Client::update`]).
    pub fn value(&self) -> Result<Option<&Bytes>, Error> {
        Ok(self.version()?.map(|version| &version.value))
    }

    /// The one version with its attributes; `None` when absent,
    /// [`Error::Siblings`] when the key holds concurrent versions.
    pub fn version(&self) -> Result<Option<&Version>, Error> {
        match self.siblings.as_slice() {
            [] => Ok(None),
            [version] => Ok(Some(version)),
            many => Err(Error::Siblings(many.len())),
        }
    }

    /// No live version: an absent or deleted key, with the context of its
    /// tombstone if it has one.
    pub(crate) fn absent(key: &str, context: Option<String>) -> Self {
        Self {
            key: key.to_string(),
            context,
            values: Vec::new(),
            siblings: Vec::new(),
        }
    }
}

/// The JSON shape of a read (`GET` with `Accept: application/json`) and of
/// a batch read's item.
#[derive(Deserialize)]
pub(crate) struct WireVersions {
    #[serde(default)]
    pub key: Option<String>,
    pub context: Option<String>,
    pub values: Vec<String>,
    /// Absent from the answers of nodes older than attributes.
    #[serde(default)]
    pub siblings: Option<Vec<WireVersion>>,
}

/// One element of `siblings`.
#[derive(Deserialize)]
pub(crate) struct WireVersion {
    value: String,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    meta: BTreeMap<String, String>,
    /// Milliseconds since the Unix epoch.
    #[serde(default)]
    expires_at: Option<u64>,
}

impl WireVersions {
    /// Decodes the base64 values and the siblings' attributes; `key` when
    /// the answer does not name it. A node older than attributes sends
    /// `values` alone: its versions have none.
    pub(crate) fn into_versions(self, key: &str) -> Result<Versions, String> {
        let siblings: Vec<Version> = match self.siblings {
            Some(siblings) => {
                if siblings.len() != self.values.len() {
                    return Err(format!(
                        "{} siblings for {} values",
                        siblings.len(),
                        self.values.len()
                    ));
                }
                siblings
                    .into_iter()
                    .map(WireVersion::into_version)
                    .collect::<Result<_, _>>()?
            }
            None => self
                .values
                .iter()
                .map(|v| base64(v).map(Version::plain))
                .collect::<Result<_, _>>()?,
        };
        Ok(Versions {
            key: self.key.unwrap_or_else(|| key.to_string()),
            context: self.context.filter(|c| !c.is_empty()),
            values: siblings.iter().map(|s| s.value.clone()).collect(),
            siblings,
        })
    }
}

impl WireVersion {
    fn into_version(self) -> Result<Version, String> {
        let expires_at = match self.expires_at {
            Some(ms) => Some(
                UNIX_EPOCH
                    .checked_add(Duration::from_millis(ms))
                    .ok_or_else(|| format!("expires_at {ms} is out of range"))?,
            ),
            None => None,
        };
        Ok(Version {
            value: base64(&self.value)?,
            content_type: self.content_type,
            meta: self.meta,
            expires_at,
        })
    }
}

fn base64(text: &str) -> Result<Bytes, String> {
    STANDARD
        .decode(text)
        .map(Bytes::from)
        .map_err(|e| format!("a value is not base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(json: &str) -> Result<Versions, String> {
        serde_json::from_str::<WireVersions>(json)
            .unwrap()
            .into_versions("k")
    }

    #[test]
    fn siblings_carry_their_attributes() {
        let read = decode(
            r#"{"context": "C", "values": ["eyJhIjoxfQ==", "aGk="], "siblings": [
                {"value": "eyJhIjoxfQ==", "content_type": "application/json",
                 "meta": {"owner": "ops"}, "expires_at": null},
                {"value": "aGk=", "content_type": null, "meta": {}, "expires_at": 1764547200000}]}"#,
        )
        .unwrap();
        assert_eq!(read.key, "k");
        assert_eq!(read.values, [Bytes::from(r#"{"a":1}"#), Bytes::from("hi")]);
        let [json, hi] = read.siblings.as_slice() else {
            panic!("{read:?}");
        };
        assert_eq!(json.value, read.values[0]);
        assert_eq!(json.content_type.as_deref(), Some("application/json"));
        assert_eq!(json.meta["owner"], "ops");
        assert_eq!(json.expires_at, None);
        assert_eq!(hi.content_type, None);
        assert!(hi.meta.is_empty());
        assert_eq!(
            hi.expires_at,
            Some(UNIX_EPOCH + Duration::from_millis(1_764_547_200_000))
        );
        assert!(matches!(read.version(), Err(Error::Siblings(2))));
    }

    #[test]
    fn an_answer_without_siblings_has_plain_versions() {
        let read = decode(r#"{"context": "C", "values": ["aGk="]}"#).unwrap();
        assert_eq!(read.siblings, [Version::plain(Bytes::from("hi"))]);
        assert_eq!(read.value().unwrap(), Some(&Bytes::from("hi")));
    }

    #[test]
    fn inconsistent_answers_are_refused() {
        let short = decode(r#"{"context": "C", "values": ["aGk="], "siblings": []}"#);
        assert_eq!(short.unwrap_err(), "0 siblings for 1 values");
        let not_base64 = decode(
            r#"{"context": "C", "values": ["!"], "siblings": [
                {"value": "!", "content_type": null, "meta": {}, "expires_at": null}]}"#,
        );
        assert!(not_base64.unwrap_err().contains("base64"));
    }
}
