//! Kubernetes operator for the Dynamo-style key-value store.
//!
//! - [`crd`]: the `DynamoCluster` resource and the backup resources;
//!   [`crdgen`]: their CRD YAML.
//! - [`backups`]: backups, schedules and restores, run by the operator.
//! - [`reconcile`]: observe -> validate -> plan -> apply -> status, and
//!   [`reconcile::rolling_upgrade`]: which pod to replace next.
//! - [`resources`]: pure builders of every owned object.
//! - [`ring_steps`]: safe scale up and scale down of the ring.
//! - [`node_client`]: the nodes' admin API.
//! - [`metrics`], [`server`], [`leader`]: the operator process (metrics,
//!   health endpoints, Lease-based leader election); [`trigger`]: which
//!   cluster changes start a reconcile.

pub mod backups;
pub mod crd;
pub mod crdgen;
pub mod leader;
pub mod metrics;
pub mod node_client;
pub mod quantity;
pub mod reconcile;
pub mod resources;
pub mod ring_steps;
pub mod server;
pub mod trigger;
