//! The ConfigMap `<cluster>-config`: `node.toml` (extra node settings from
//! the spec), `ring.json` (the published [`RingDocument`]) and
//! `initial-cluster-state` (what an empty volume means to a starting node).

use std::collections::BTreeMap;

use dynamo_ring::RingDocument;
use k8s_openapi::api::core::v1::ConfigMap;

use super::ClusterRef;

/// Key of the node settings file.
pub const NODE_TOML_KEY: &str = "node.toml";

/// Key of the published ring.
pub const RING_JSON_KEY: &str = "ring.json";

/// Key of what an empty data directory means to a starting node: `new`
/// until every member of the first ring has served, then `existing` (the
/// node lost its data and receives it from the other replicas).
pub const INITIAL_CLUSTER_STATE_KEY: &str = "initial-cluster-state";

/// Why the node settings cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A value TOML cannot represent (null, mixed-type array...).
    #[error("nodeConfig cannot be rendered as TOML: {0}")]
    Toml(#[from] toml::ser::Error),
    /// The ring does not serialize.
    #[error("ring document cannot be rendered as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// `nodeConfig` rendered as a TOML document.
pub fn render_node_toml(
    node_config: &BTreeMap<String, serde_json::Value>,
) -> Result<String, RenderError> {
    Ok(toml::to_string(node_config)?)
}

/// Hash of the rendered settings, used as a pod template annotation.
pub fn config_hash(node_toml: &str) -> String {
    format!("{:016x}", dynamo_ring::key_hash(node_toml.as_bytes()))
}

/// The ConfigMap with the rendered settings, whether the cluster has
/// `formed` (every member of its first ring served), and, once there is
/// one, the ring.
pub fn config_map(
    cluster: &ClusterRef,
    node_toml: &str,
    ring: Option<&RingDocument>,
    formed: bool,
) -> Result<ConfigMap, RenderError> {
    let state = match formed {
        true => "existing",
        false => "new",
    };
    let mut data = BTreeMap::from([
        (NODE_TOML_KEY.to_string(), node_toml.to_string()),
        (INITIAL_CLUSTER_STATE_KEY.to_string(), state.to_string()),
    ]);
    if let Some(ring) = ring {
        data.insert(RING_JSON_KEY.to_string(), serde_json::to_string(ring)?);
    }
    Ok(ConfigMap {
        metadata: cluster.metadata(cluster.config_map_name(), BTreeMap::new()),
        data: Some(data),
        ..ConfigMap::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::fixtures::cluster_ref;
    use dynamo_ring::{Member, Ring};

    #[test]
    fn node_config_renders_typed_toml() {
        let config = BTreeMap::from([
            ("fsync".to_string(), serde_json::json!(true)),
            ("block-cache-mb".to_string(), serde_json::json!(256)),
        ]);
        let toml = render_node_toml(&config).expect("toml");
        assert_eq!(toml, "block-cache-mb = 256\nfsync = true\n");
        assert_ne!(config_hash(&toml), config_hash(""));
    }

    #[test]
    fn null_values_are_rejected() {
        let config = BTreeMap::from([("x".to_string(), serde_json::Value::Null)]);
        assert!(render_node_toml(&config).is_err());
    }

    #[test]
    fn ring_is_stored_as_json_once_it_exists() {
        let cluster = cluster_ref();
        let cm = config_map(&cluster, "", None, false).expect("cm");
        assert!(!cm.data.as_ref().expect("data").contains_key(RING_JSON_KEY));
        assert_eq!(
            cm.data.as_ref().expect("data")[INITIAL_CLUSTER_STATE_KEY],
            "new"
        );
        let ring = Ring::build(vec![Member::new("demo-a-0", "a")], 1, 4).expect("ring");
        let doc = RingDocument {
            ring,
            addresses: BTreeMap::from([("demo-a-0".into(), "x:7000".into())]),
        };
        let cm = config_map(&cluster, "", Some(&doc), true).expect("cm");
        assert_eq!(
            cm.data.as_ref().expect("data")[INITIAL_CLUSTER_STATE_KEY],
            "existing"
        );
        let stored: RingDocument =
            serde_json::from_str(&cm.data.expect("data")[RING_JSON_KEY]).expect("json");
        assert_eq!(stored, doc);
        assert_eq!(cm.metadata.name.as_deref(), Some("demo-config"));
    }
}
