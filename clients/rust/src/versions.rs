//! What a read returns: every live version of a key and its context.

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
    /// Every live version's bytes.
    pub values: Vec<Bytes>,
}

impl Versions {
    /// Whether the key has a live value.
    pub fn exists(&self) -> bool {
        !self.values.is_empty()
    }

    /// The one value; `None` when absent, [`Error::Siblings`] when the key
    /// holds concurrent versions (merge them with [`crate::Client::update`]).
    pub fn value(&self) -> Result<Option<&Bytes>, Error> {
        match self.values.as_slice() {
            [] => Ok(None),
            [value] => Ok(Some(value)),
            many => Err(Error::Siblings(many.len())),
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
}

impl WireVersions {
    /// Decodes the base64 values; `key` when the answer does not name it.
    pub(crate) fn into_versions(self, key: &str) -> Result<Versions, String> {
        let values = self
            .values
            .iter()
            .map(|v| STANDARD.decode(v).map(Bytes::from))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("a value is not base64: {e}"))?;
        Ok(Versions {
            key: self.key.unwrap_or_else(|| key.to_string()),
            context: self.context.filter(|c| !c.is_empty()),
            values,
        })
    }
}
