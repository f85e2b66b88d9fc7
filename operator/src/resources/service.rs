//! The per-zone headless Service (stable pod DNS names for the ring's
//! internal addresses, both node ports) and the client Service over every
//! node (the client port only).

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{CLIENT_PORT, ClusterRef, INTERNAL_PORT};

/// The Service port `name` (`port`) onto the container port of that name.
fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

/// Headless Service `<cluster>-<zone>` with ports `http` (7000) and
/// `internal` (7001); publishes not-ready addresses so nodes can reach a
/// peer that is still starting (and replaying hints).
pub fn headless_service(cluster: &ClusterRef, zone: &str) -> Service {
    let selector = cluster.zone_selector(zone);
    Service {
        metadata: cluster.metadata(cluster.zone_object_name(zone), selector.clone()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector),
            ports: Some(vec![
                port("http", CLIENT_PORT),
                port("internal", INTERNAL_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// Client Service `<cluster>` over every ready node, on the client port
/// (7000) only: the admin routes and the node-to-node stream are not
/// reachable through it.
pub fn client_service(cluster: &ClusterRef) -> Service {
    Service {
        metadata: cluster.metadata(cluster.name.clone(), Default::default()),
        spec: Some(ServiceSpec {
            selector: Some(cluster.node_selector()),
            ports: Some(vec![port("http", CLIENT_PORT)]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::fixtures::cluster_ref;

    #[test]
    fn headless_service_publishes_not_ready_pods_of_its_zone() {
        let svc = headless_service(&cluster_ref(), "b");
        assert_eq!(svc.metadata.name.as_deref(), Some("demo-b"));
        let spec = svc.spec.expect("spec");
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        assert_eq!(spec.selector.expect("selector")["kv.dynamo.dev/zone"], "b");
        assert_eq!(
            ports(spec.ports),
            [("http".to_string(), 7000), ("internal".to_string(), 7001)]
        );
    }

    /// `(name, port)` of every Service port, each onto the container port
    /// of its name.
    fn ports(ports: Option<Vec<ServicePort>>) -> Vec<(String, i32)> {
        ports
            .into_iter()
            .flatten()
            .map(|p| {
                let name = p.name.expect("port name");
                assert_eq!(p.target_port, Some(IntOrString::String(name.clone())));
                (name, p.port)
            })
            .collect()
    }

    #[test]
    fn client_service_selects_every_node() {
        let svc = client_service(&cluster_ref());
        assert_eq!(svc.metadata.name.as_deref(), Some("demo"));
        let spec = svc.spec.expect("spec");
        assert_eq!(
            ports(spec.ports),
            [("http".to_string(), 7000)],
            "clients reach neither the admin routes nor the node-to-node stream"
        );
        assert!(
            !spec
                .selector
                .expect("selector")
                .contains_key("kv.dynamo.dev/zone")
        );
    }
}
