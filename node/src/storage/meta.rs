//! Records of the meta column family that describe the data directory
//! itself: the node it belongs to, and the documents other layers keep
//! there as JSON (the ring, the transfer plan).

use serde::de::DeserializeOwned;

use super::{Storage, StorageError};

/// Meta record holding the id of the node the data directory belongs to.
const META_NODE_ID: &str = "node-id";

/// Why a node may not use a data directory.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// The directory holds another node's data: its replicas, hints and
    /// version counters are that node's, and serving them as this node
    /// would mix two nodes' histories.
    #[error(
        "the data directory belongs to node {owner:?}, not to {node:?}: \
         give each node its own --data-dir (or start it as {owner:?})"
    )]
    OtherNode {
        /// The node recorded in the directory.
        owner: String,
        /// The node starting.
        node: String,
    },
    /// The record could not be read or written.
    #[error("reading or recording the data directory's node id: {0}")]
    Storage(#[from] StorageError),
}

/// Makes sure the data directory belongs to node `node_id`: refuses one
/// recorded for another node, and records `node_id` in one that names no
/// node yet (a new directory, or one from a release that did not record
/// it).
pub fn claim_for(storage: &Storage, node_id: &str) -> Result<(), DataDirError> {
    match storage.meta_get(META_NODE_ID)? {
        Some(owner) if owner == node_id.as_bytes() => Ok(()),
        Some(owner) => Err(DataDirError::OtherNode {
            owner: String::from_utf8_lossy(&owner).into_owned(),
            node: node_id.to_string(),
        }),
        None => {
            tracing::info!(
                "the data directory records no node id yet; it now belongs to {node_id:?}"
            );
            Ok(storage.meta_put(META_NODE_ID, node_id.as_bytes())?)
        }
    }
}

/// The JSON document in meta record `record` (`what` names it in the log),
/// if there is one. A record that does not parse as `T` (written by another
/// release, or damaged) is discarded with a warning saying why: the caller
/// goes on as if there were none.
pub fn read_json<T: DeserializeOwned>(
    storage: &Storage,
    record: &str,
    what: &str,
) -> Result<Option<T>, StorageError> {
    let Some(bytes) = storage.meta_get(record)? else {
        return Ok(None);
    };
    match serde_json::from_slice(&bytes) {
        Ok(document) => Ok(Some(document)),
        Err(error) => {
            tracing::warn!(
                record,
                bytes = bytes.len(),
                %error,
                "discarding the persisted {what}: it does not parse"
            );
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageOptions;

    fn open(dir: &std::path::Path) -> Storage {
        let options = StorageOptions {
            partitions: 16,
            ..StorageOptions::default()
        };
        Storage::open(dir, &options).unwrap()
    }

    #[test]
    fn a_directory_belongs_to_the_first_node_that_claims_it() {
        let dir = tempfile::tempdir().unwrap();
        let storage = open(dir.path());
        claim_for(&storage, "a").unwrap();
        claim_for(&storage, "a").unwrap();
        let error = claim_for(&storage, "b").unwrap_err();
        assert!(
            matches!(&error, DataDirError::OtherNode { owner, node } if owner == "a" && node == "b")
        );
        assert!(error.to_string().contains("--data-dir"), "{error}");
    }

    #[test]
    fn documents_that_do_not_parse_are_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let storage = open(dir.path());
        assert_eq!(
            read_json::<Vec<u32>>(&storage, "doc", "list").unwrap(),
            None
        );
        storage.meta_put("doc", b"[1, 2]").unwrap();
        assert_eq!(
            read_json::<Vec<u32>>(&storage, "doc", "list").unwrap(),
            Some(vec![1, 2])
        );
        storage.meta_put("doc", b"{broken").unwrap();
        assert_eq!(
            read_json::<Vec<u32>>(&storage, "doc", "list").unwrap(),
            None
        );
    }
}
