//! How the operator reaches a cluster's nodes for a backup or restore: the
//! admin token of its auth Secret, the CA of its TLS Secret, and the node
//! addresses of its published ring, as the cluster reconcile reads them.

use dynamo_backup::driver::nodes::Admin;
use dynamo_ring::RingDocument;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;

use super::Blocked;
use crate::crd::DynamoCluster;
use crate::reconcile::cluster_ref;
use crate::resources::auth::{ADMIN_TOKEN_KEY, LEGACY_TOKEN_KEY, auth_secret_name};
use crate::resources::configmap::RING_JSON_KEY;

/// Key of the TLS Secret with the CA of the nodes' certificates.
const TLS_CA_KEY: &str = "ca.crt";

/// A cluster's nodes as a backup or restore reaches them.
pub struct ClusterAccess {
    /// The admin routes' client (token, and CA when the cluster has TLS).
    pub admin: Admin,
    /// The nodes' internal addresses (`HOST:7001`) from the published ring.
    pub addresses: Vec<String>,
}

impl ClusterAccess {
    /// The address to start from on `attempt` (each attempt tries the
    /// next node, so one that is down does not stop every attempt).
    pub fn seed(&self, attempt: u32) -> &str {
        let index = attempt as usize % self.addresses.len().max(1);
        self.addresses.get(index).map_or("", String::as_str)
    }
}

/// The DynamoCluster `name` of namespace `ns` and how to reach its nodes.
pub async fn cluster_access(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<(DynamoCluster, ClusterAccess), Blocked> {
    let cluster = Api::<DynamoCluster>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?
        .ok_or_else(|| Blocked(format!("DynamoCluster {name} not found")))?;
    let cref = cluster_ref(&cluster).map_err(|e| Blocked(e.to_string()))?;
    let auth_name = auth_secret_name(&cref, cluster.spec.auth.as_ref());
    let auth = read_secret(client, ns, &auth_name).await?;
    let token = [ADMIN_TOKEN_KEY, LEGACY_TOKEN_KEY]
        .into_iter()
        .find_map(|key| secret_text(&auth, key))
        .ok_or_else(|| Blocked(format!("Secret {auth_name} has no {ADMIN_TOKEN_KEY}")))?;
    let ca = match &cluster.spec.tls {
        Some(tls) => {
            let secret = read_secret(client, ns, &tls.secret_name).await?;
            Some(secret_bytes(&secret, TLS_CA_KEY).ok_or_else(|| {
                Blocked(format!("Secret {} has no {TLS_CA_KEY}", tls.secret_name))
            })?)
        }
        None => None,
    };
    let admin = Admin::new(Some(token), ca.as_deref()).map_err(|e| Blocked(e.to_string()))?;
    let addresses = ring_addresses(client, ns, &cref.config_map_name()).await?;
    Ok((cluster, ClusterAccess { admin, addresses }))
}

/// The Secret `name` of namespace `ns`.
pub async fn read_secret(client: &kube::Client, ns: &str, name: &str) -> Result<Secret, Blocked> {
    Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?
        .ok_or_else(|| Blocked(format!("Secret {name} not found")))
}

/// The bytes of `key` in `secret`.
pub fn secret_bytes(secret: &Secret, key: &str) -> Option<Vec<u8>> {
    secret
        .data
        .as_ref()
        .and_then(|data| data.get(key))
        .map(|value| value.0.clone())
}

/// The text of `key` in `secret`, surrounding whitespace trimmed; `None`
/// when absent, blank or not UTF-8.
pub fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret_bytes(secret, key)?;
    let text = String::from_utf8(bytes).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The member addresses of the ring in ConfigMap `name`.
async fn ring_addresses(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<Vec<String>, Blocked> {
    let config_map = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?;
    let json = config_map
        .as_ref()
        .and_then(|cm| cm.data.as_ref())
        .and_then(|data| data.get(RING_JSON_KEY))
        .ok_or_else(|| Blocked(format!("the cluster has published no ring yet ({name})")))?;
    let ring: RingDocument = serde_json::from_str(json)
        .map_err(|e| Blocked(format!("{RING_JSON_KEY} in ConfigMap {name}: {e}")))?;
    match ring.addresses.is_empty() {
        true => Err(Blocked(format!(
            "the ring in ConfigMap {name} has no members"
        ))),
        false => Ok(ring.addresses.into_values().collect()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;

    use super::*;

    fn secret(pairs: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn secret_text_is_trimmed_and_blank_is_absent() {
        let s = secret(&[("admin-token", " abc\n"), ("token", "  ")]);
        assert_eq!(secret_text(&s, "admin-token").as_deref(), Some("abc"));
        assert_eq!(secret_text(&s, "token"), None);
        assert_eq!(secret_text(&s, "missing"), None);
    }

    #[test]
    fn each_attempt_starts_from_the_next_node() {
        let access = ClusterAccess {
            admin: Admin::new(None, None).expect("client"),
            addresses: vec!["a:7001".into(), "b:7001".into()],
        };
        assert_eq!(access.seed(0), "a:7001");
        assert_eq!(access.seed(1), "b:7001");
        assert_eq!(access.seed(2), "a:7001");
    }
}
