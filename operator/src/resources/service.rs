//! The per-zone headless Service (stable pod DNS names for the ring's
//! internal addresses) and the client Service over every node.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{ClusterRef, NODE_PORT};

fn http_port() -> ServicePort {
    ServicePort {
        name: Some("http".into()),
        port: NODE_PORT,
        target_port: Some(IntOrString::String("http".into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

/// Headless Service `<cluster>-<zone>`; publishes not-ready addresses so
/// nodes can reach a peer that is still starting (and replaying hints).
pub fn headless_service(cluster: &ClusterRef, zone: &str) -> Service {
    let selector = cluster.zone_selector(zone);
    Service {
        metadata: cluster.metadata(cluster.zone_object_name(zone), selector.clone()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector),
            ports: Some(vec![http_port()]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// Client Service `<cluster>` on port 7000 over every ready node.
pub fn client_service(cluster: &ClusterRef) -> Service {
    Service {
        metadata: cluster.metadata(cluster.name.clone(), Default::default()),
        spec: Some(ServiceSpec {
            selector: Some(cluster.node_selector()),
            ports: Some(vec![http_port()]),
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
    }

    #[test]
    fn client_service_selects_every_node() {
        let svc = client_service(&cluster_ref());
        assert_eq!(svc.metadata.name.as_deref(), Some("demo"));
        let spec = svc.spec.expect("spec");
        assert_eq!(spec.ports.expect("ports")[0].port, 7000);
        assert!(
            !spec
                .selector
                .expect("selector")
                .contains_key("kv.dynamo.dev/zone")
        );
    }
}
