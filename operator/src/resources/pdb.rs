//! The PodDisruptionBudget `<cluster>` and the rule deriving it from N/R/W.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::ClusterRef;
use crate::crd::{PodDisruptionSpec, ReplicationSpec};

/// How many node pods may be voluntarily disrupted at once.
///
/// Any `k` disrupted nodes may all be replicas of one partition, so strict
/// read and write quorums survive only while `k <= N - R` and `k <= N - W`:
/// the budget is `min(N - R, N - W)`. It is never below 1, so a drain can
/// always make progress; with `R = N` or `W = N` one disruption costs strict
/// quorum for some keys while sloppy quorum and hinted handoff keep writes
/// available. `podDisruption.maxUnavailable` overrides the rule.
pub fn max_unavailable(replication: ReplicationSpec, spec: Option<PodDisruptionSpec>) -> i32 {
    if let Some(value) = spec.and_then(|s| s.max_unavailable) {
        return value;
    }
    let n = replication.n;
    let slack = n
        .saturating_sub(replication.r)
        .min(n.saturating_sub(replication.w));
    i32::try_from(slack.max(1)).unwrap_or(i32::MAX)
}

/// The budget over every node pod of the cluster.
pub fn pod_disruption_budget(cluster: &ClusterRef, max_unavailable: i32) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: cluster.metadata(cluster.name.clone(), Default::default()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(max_unavailable)),
            selector: Some(LabelSelector {
                match_labels: Some(cluster.node_selector()),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::fixtures::cluster_ref;

    fn rep(n: u32, r: u32, w: u32) -> ReplicationSpec {
        ReplicationSpec { n, r, w }
    }

    #[test]
    fn budget_is_the_smaller_quorum_slack() {
        assert_eq!(max_unavailable(rep(3, 2, 2), None), 1);
        assert_eq!(max_unavailable(rep(5, 2, 3), None), 2);
        assert_eq!(max_unavailable(rep(5, 1, 1), None), 4);
    }

    #[test]
    fn budget_never_blocks_drains_entirely() {
        assert_eq!(max_unavailable(rep(3, 3, 1), None), 1);
        assert_eq!(max_unavailable(rep(1, 1, 1), None), 1);
    }

    #[test]
    fn spec_overrides_the_derived_budget() {
        let spec = PodDisruptionSpec {
            max_unavailable: Some(0),
        };
        assert_eq!(max_unavailable(rep(3, 2, 2), Some(spec)), 0);
    }

    #[test]
    fn budget_selects_every_node_pod() {
        let pdb = pod_disruption_budget(&cluster_ref(), 1);
        let spec = pdb.spec.expect("spec");
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(
            spec.selector.and_then(|s| s.match_labels).expect("labels")["app.kubernetes.io/instance"],
            "demo"
        );
    }
}
