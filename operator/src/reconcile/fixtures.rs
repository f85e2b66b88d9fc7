//! Test fixtures: specs, cluster objects and observed worlds.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::observe::{AdminAuth, NodeTls, World};
use crate::crd::{
    AuthSpec, DynamoCluster, DynamoClusterSpec, ReplicationSpec, SecretReference, StorageSpec,
    ZoneSpec,
};
use crate::node_client::BearerToken;

/// A spec with image `dynamo:1`, N/R/W 3/2/2, 64 partitions and these zones.
pub fn spec(zones: &[(&str, i32)]) -> DynamoClusterSpec {
    DynamoClusterSpec {
        image: "dynamo:1".into(),
        pull_policy: None,
        zones: zones
            .iter()
            .map(|(name, replicas)| ZoneSpec {
                name: name.to_string(),
                replicas: *replicas,
                node_selector: Default::default(),
                affinity: None,
                tolerations: vec![],
                topology_zone: None,
            })
            .collect(),
        replication: ReplicationSpec::default(),
        partitions: 64,
        storage: StorageSpec {
            size: Quantity("1Gi".into()),
            storage_class_name: None,
            when_deleted: None,
        },
        resources: None,
        node_config: Default::default(),
        tls: None,
        auth: None,
        pod_disruption: None,
        startup_timeout_seconds: None,
        pod_anti_affinity: Default::default(),
        image_pull_secrets: vec![],
        service_account_name: None,
        priority_class_name: None,
        pod_labels: Default::default(),
        pod_annotations: Default::default(),
        pod_security: None,
        pod_template: Default::default(),
        paused: false,
        network_policy: None,
        logging: None,
        restore_from: None,
    }
}

/// The cluster `demo` in `default` (uid `uid-demo`, generation 1).
pub fn cluster(spec: DynamoClusterSpec) -> DynamoCluster {
    let mut cluster = DynamoCluster::new("demo", spec);
    cluster.metadata.namespace = Some("default".into());
    cluster.metadata.uid = Some("uid-demo".into());
    cluster.metadata.generation = Some(1);
    cluster
}

/// `c` with `spec.auth` naming the Secret `custom-auth`.
pub fn with_auth(mut c: DynamoCluster) -> DynamoCluster {
    c.spec.auth = Some(AuthSpec {
        secret_name: Some("custom-auth".into()),
        clients_secret_name: None,
    });
    c
}

/// The admin token of [`world`]: `adm1n`.
pub fn admin_token() -> BearerToken {
    BearerToken::new(b"adm1n").expect("token")
}

/// A world with nothing in it but usable credentials ([`admin_token`])
/// and plain HTTP.
pub fn world() -> World {
    World {
        statefulsets: Default::default(),
        pods: Vec::new(),
        ring: None,
        formed: false,
        reports: Default::default(),
        auth: AdminAuth::Token(admin_token()),
        tls: NodeTls::Plain,
        certificate: None,
        previous_claims: Vec::new(),
        claims: Vec::new(),
        expansion_refusal: None,
    }
}

/// `c` with `spec.tls` naming the Secret `demo-tls`.
pub fn with_tls(mut c: DynamoCluster) -> DynamoCluster {
    c.spec.tls = Some(SecretReference {
        secret_name: "demo-tls".into(),
    });
    c
}
