//! Kubernetes operator for the Dynamo-style key-value store.
//!
//! - [`crd`]: the `DynamoCluster` resource.
//! - [`crdgen`]: the generated CustomResourceDefinition YAML.

pub mod crd;
pub mod crdgen;
