//! The NetworkPolicy `<cluster>-nodes`, when `spec.networkPolicy.enabled`:
//! the client port open to the clients the spec names (everyone when it
//! names none), the internal port (node-to-node stream and admin routes)
//! only to the cluster's own node pods and to pods labelled
//! [`ADMIN_ACCESS_LABEL`] (the operator's, by the chart).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{CLIENT_PORT, ClusterRef, INTERNAL_PORT};

/// Label (value `"true"`) of pods, in any namespace, that may reach the
/// nodes' internal port: the operator's pods (the chart sets it) and admin
/// tools.
pub const ADMIN_ACCESS_LABEL: &str = "kv.dynamo.dev/admin-access";

/// Name of the cluster's NetworkPolicy.
pub fn network_policy_name(cluster: &ClusterRef) -> String {
    format!("{}-nodes", cluster.name)
}

fn tcp(port: i32) -> Vec<NetworkPolicyPort> {
    vec![NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..NetworkPolicyPort::default()
    }]
}

fn pods_labelled(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        ..LabelSelector::default()
    }
}

/// The NetworkPolicy of `cluster`'s node pods; `clients` may reach the
/// client port (anyone when empty).
pub fn network_policy(cluster: &ClusterRef, clients: &[NetworkPolicyPeer]) -> NetworkPolicy {
    let peers = NetworkPolicyPeer {
        pod_selector: Some(pods_labelled(cluster.node_selector())),
        ..NetworkPolicyPeer::default()
    };
    let admins = NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector::default()),
        pod_selector: Some(pods_labelled(BTreeMap::from([(
            ADMIN_ACCESS_LABEL.to_string(),
            "true".to_string(),
        )]))),
        ..NetworkPolicyPeer::default()
    };
    let client_rule = NetworkPolicyIngressRule {
        from: (!clients.is_empty()).then(|| clients.to_vec()),
        ports: Some(tcp(CLIENT_PORT)),
    };
    let internal_rule = NetworkPolicyIngressRule {
        from: Some(vec![peers, admins]),
        ports: Some(tcp(INTERNAL_PORT)),
    };
    NetworkPolicy {
        metadata: cluster.metadata(network_policy_name(cluster), BTreeMap::new()),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(pods_labelled(cluster.node_selector())),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![client_rule, internal_rule]),
            ..NetworkPolicySpec::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::fixtures::cluster_ref;

    #[test]
    fn the_internal_port_admits_only_peers_and_admin_pods() {
        let policy = network_policy(&cluster_ref(), &[]);
        assert_eq!(policy.metadata.name.as_deref(), Some("demo-nodes"));
        let spec = policy.spec.expect("spec");
        let nodes = cluster_ref().node_selector();
        assert_eq!(spec.pod_selector.unwrap().match_labels, Some(nodes.clone()));
        let rules = spec.ingress.expect("ingress");
        let port = |rule: &NetworkPolicyIngressRule| rule.ports.as_ref().unwrap()[0].port.clone();
        assert_eq!(port(&rules[0]), Some(IntOrString::Int(7000)));
        assert_eq!(rules[0].from, None, "clients: anyone");
        assert_eq!(port(&rules[1]), Some(IntOrString::Int(7001)));
        let from = rules[1].from.as_ref().expect("internal sources");
        assert_eq!(from.len(), 2);
        assert_eq!(
            from[0].pod_selector.as_ref().unwrap().match_labels,
            Some(nodes)
        );
        assert_eq!(from[0].namespace_selector, None, "peers: this namespace");
        let admin = from[1]
            .pod_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap();
        assert_eq!(
            admin.get(ADMIN_ACCESS_LABEL).map(String::as_str),
            Some("true")
        );
        assert_eq!(from[1].namespace_selector, Some(LabelSelector::default()));
    }

    #[test]
    fn named_clients_restrict_the_client_port() {
        let app = NetworkPolicyPeer {
            pod_selector: Some(pods_labelled(BTreeMap::from([(
                "app".to_string(),
                "shop".to_string(),
            )]))),
            ..NetworkPolicyPeer::default()
        };
        let policy = network_policy(&cluster_ref(), std::slice::from_ref(&app));
        let rules = policy.spec.unwrap().ingress.unwrap();
        assert_eq!(rules[0].from, Some(vec![app]));
    }
}
