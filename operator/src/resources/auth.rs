//! The nodes' credentials: the auth Secret (named by `spec.auth.secretName`,
//! or `<cluster>-auth`, which the operator generates), its keys, and the
//! one projected volume that puts it and the optional clients Secret into
//! the node's auth directory.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    KeyToPath, ProjectedVolumeSource, Secret, SecretProjection, Volume, VolumeProjection,
};
use rand::RngCore;

use super::ClusterRef;
use crate::crd::AuthSpec;

/// Key (and file) of the token that opens the admin routes
/// (`/v1/admin/*`, `/v1/status`); the operator sends it.
pub const ADMIN_TOKEN_KEY: &str = "admin-token";

/// Key (and file) of the token nodes send each other on the node-to-node
/// stream.
pub const PEER_TOKEN_KEY: &str = "peer-token";

/// Key (and file) of the optional token of one client with read-write
/// rights on every key.
pub const CLIENT_TOKEN_KEY: &str = "client-token";

/// Legacy key (and file): one token serving every role whose own key is
/// absent.
pub const LEGACY_TOKEN_KEY: &str = "token";

/// Key of the clients Secret (and file of the auth directory) listing
/// scoped application tokens.
pub const CLIENTS_JSON_KEY: &str = "clients.json";

/// Random bytes in a generated token (hex-encoded: twice as many
/// characters).
pub const TOKEN_BYTES: usize = 32;

/// Name of the cluster's auth Secret: the one `auth` names, else the
/// generated `<cluster>-auth`.
pub fn auth_secret_name(cluster: &ClusterRef, auth: Option<&AuthSpec>) -> String {
    auth.and_then(|a| a.secret_name.clone())
        .unwrap_or_else(|| cluster.generated_auth_secret_name())
}

/// Fresh admin, peer and client tokens for a generated auth Secret.
///
/// `Debug` does not show the tokens, so it can sit in logged structures.
#[derive(Clone, PartialEq, Eq)]
pub struct GeneratedCredentials {
    admin: String,
    peer: String,
    client: String,
}

impl GeneratedCredentials {
    /// Three independent tokens of [`TOKEN_BYTES`] random bytes each, from
    /// the thread-local CSPRNG (seeded from the operating system).
    pub fn random() -> Self {
        GeneratedCredentials {
            admin: random_token(),
            peer: random_token(),
            client: random_token(),
        }
    }

    /// The Secret data: `admin-token`, `peer-token` and `client-token`.
    pub fn data(&self) -> BTreeMap<String, ByteString> {
        [
            (ADMIN_TOKEN_KEY, &self.admin),
            (PEER_TOKEN_KEY, &self.peer),
            (CLIENT_TOKEN_KEY, &self.client),
        ]
        .into_iter()
        .map(|(key, token)| (key.to_string(), ByteString(token.as_bytes().to_vec())))
        .collect()
    }
}

/// Shows that there are tokens, not their values.
impl fmt::Debug for GeneratedCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedCredentials")
            .finish_non_exhaustive()
    }
}

/// [`TOKEN_BYTES`] random bytes, hex-encoded.
fn random_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().fold(String::new(), |mut hex, byte| {
        hex.push_str(&format!("{byte:02x}"));
        hex
    })
}

/// The generated Secret `<cluster>-auth` holding `credentials`, labelled
/// and owned by the cluster (so it is deleted with it).
pub fn generated_auth_secret(cluster: &ClusterRef, credentials: &GeneratedCredentials) -> Secret {
    Secret {
        metadata: cluster.metadata(cluster.generated_auth_secret_name(), BTreeMap::new()),
        type_: Some("Opaque".into()),
        data: Some(credentials.data()),
        ..Secret::default()
    }
}

/// The volume `name` of the node's auth directory: one projected volume
/// with every key of the auth Secret and, when `auth` names a clients
/// Secret, its `clients.json`.
pub fn auth_volume(name: &str, cluster: &ClusterRef, auth: Option<&AuthSpec>) -> Volume {
    let secret = |name: String, items: Option<Vec<KeyToPath>>| VolumeProjection {
        secret: Some(SecretProjection {
            name,
            items,
            ..SecretProjection::default()
        }),
        ..VolumeProjection::default()
    };
    let mut sources = vec![secret(auth_secret_name(cluster, auth), None)];
    if let Some(clients) = auth.and_then(|a| a.clients_secret_name.clone()) {
        let item = KeyToPath {
            key: CLIENTS_JSON_KEY.into(),
            path: CLIENTS_JSON_KEY.into(),
            mode: None,
        };
        sources.push(secret(clients, Some(vec![item])));
    }
    Volume {
        name: name.into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(sources),
            ..ProjectedVolumeSource::default()
        }),
        ..Volume::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::fixtures::cluster_ref;

    fn is_token(value: &[u8]) -> bool {
        value.len() == 2 * TOKEN_BYTES
            && value
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    }

    #[test]
    fn generated_credentials_are_three_distinct_random_hex_tokens() {
        let data = GeneratedCredentials::random().data();
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        assert_eq!(keys, [ADMIN_TOKEN_KEY, CLIENT_TOKEN_KEY, PEER_TOKEN_KEY]);
        for (key, value) in &data {
            assert!(is_token(&value.0), "{key}: {:?}", value.0);
        }
        let distinct: std::collections::BTreeSet<&Vec<u8>> = data.values().map(|v| &v.0).collect();
        assert_eq!(distinct.len(), 3, "every role gets its own token");
        assert_ne!(
            GeneratedCredentials::random(),
            GeneratedCredentials::random(),
            "each Secret gets fresh tokens"
        );
    }

    #[test]
    fn generated_credentials_do_not_show_in_debug_output() {
        let credentials = GeneratedCredentials::random();
        let shown = format!("{credentials:?}");
        let admin = String::from_utf8(credentials.data()[ADMIN_TOKEN_KEY].0.clone()).expect("hex");
        assert!(!shown.contains(&admin), "{shown}");
    }

    #[test]
    fn the_generated_secret_is_named_labelled_and_owned_by_the_cluster() {
        let credentials = GeneratedCredentials::random();
        let secret = generated_auth_secret(&cluster_ref(), &credentials);
        assert_eq!(secret.metadata.name.as_deref(), Some("demo-auth"));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("default"));
        let owner = &secret.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("DynamoCluster", "uid-demo", Some(true))
        );
        assert_eq!(
            secret.metadata.labels.as_ref().expect("labels")["app.kubernetes.io/instance"],
            "demo"
        );
        assert_eq!(secret.data, Some(credentials.data()));
    }

    #[test]
    fn the_auth_secret_is_the_named_one_else_the_generated_one() {
        let cluster = cluster_ref();
        assert_eq!(auth_secret_name(&cluster, None), "demo-auth");
        let clients_only = AuthSpec {
            secret_name: None,
            clients_secret_name: Some("demo-clients".into()),
        };
        assert_eq!(auth_secret_name(&cluster, Some(&clients_only)), "demo-auth");
        let named = AuthSpec {
            secret_name: Some("custom-auth".into()),
            clients_secret_name: None,
        };
        assert_eq!(auth_secret_name(&cluster, Some(&named)), "custom-auth");
    }

    #[test]
    fn the_clients_secret_projects_only_clients_json_next_to_the_tokens() {
        let auth = AuthSpec {
            secret_name: Some("custom-auth".into()),
            clients_secret_name: Some("demo-clients".into()),
        };
        let volume = auth_volume("auth", &cluster_ref(), Some(&auth));
        let value = serde_json::to_value(&volume).expect("json");
        assert_eq!(
            value,
            serde_json::json!({"name": "auth", "projected": {"sources": [
                {"secret": {"name": "custom-auth"}},
                {"secret": {"name": "demo-clients",
                            "items": [{"key": "clients.json", "path": "clients.json"}]}}
            ]}})
        );
        let generated = auth_volume("auth", &cluster_ref(), None);
        assert_eq!(
            serde_json::to_value(&generated).expect("json"),
            serde_json::json!({"name": "auth", "projected": {"sources": [
                {"secret": {"name": "demo-auth"}}
            ]}})
        );
    }
}
