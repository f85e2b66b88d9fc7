//! The operator's ring decisions against real node processes, without
//! Kubernetes.
//!
//! [`Cluster::reconcile`] stands in for the operator's reconcile loop: it
//! observes real `dynamo-node` processes on loopback, lets [`plan_step`]
//! decide, and applies the decision the way the operator does. A zone's
//! "StatefulSet" is a replica count whose ordinals `0..replicas` run as
//! processes named by [`ClusterRef::pod_name`], started with the ring of
//! the "ConfigMap" as `--ring-file`; a pod is Ready when `/readyz` answers
//! 200; transfer reports come from the operator's [`HttpNodeAdmin`], which
//! also sends every published ring. Nodes serve TLS (`--tls-dir`, as with
//! `spec.tls`; every call trusts only the cluster CA) and require a bearer
//! token (`--auth-dir`, as with `spec.auth`), so every admin call carries
//! the operator's token over HTTPS.
//!
//! The operator only removes the highest ordinals of a zone, so a ring of
//! "three other nodes" is reached through zone changes: zones a/b/c (one
//! node each, epoch 1), zone d added (four nodes, epoch 2), zones e and f
//! added (six nodes, epoch 3), then zones a/b/c removed from the spec
//! (epoch 4: `demo-d-0`, `demo-e-0`, `demo-f-0`), all under a background
//! writer. Every acknowledged write must then be readable and the
//! remaining replicas must converge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dynamo_operator::node_client::{
    BearerToken, HttpNodeAdmin, NodeAdmin, PublishOutcome, TrustedCa,
};
use dynamo_operator::resources::ClusterRef;
use dynamo_operator::ring_steps::{
    StepAction, StepInput, StepPlan, needs_ring, plan_step, zone_states,
};
use dynamo_ring::{RingDocument, TransferReport};
use dynamo_testkit::checks::{self, Convergence};
use dynamo_testkit::pki::TestCa;
use dynamo_testkit::process::{
    FAST_BACKGROUND, NodeProcess, free_ports, node_binary, serve_command,
};
use dynamo_testkit::writer::Writer;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// Replication factor `N` (with `R = W = 2`).
const N: usize = 3;
/// Partition count `Q`: small, so transfers and convergence take seconds.
const PARTITIONS: u32 = 64;
/// The cluster's auth token (the auth Secret's `token` key).
const TOKEN: &str = "ring-test-token";
/// Every zone the scenario uses, one pod (ordinal 0) each at most.
const ZONES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

/// One running node process, the stand-in for a pod. Killed (SIGKILL) when
/// dropped, including when the test panics.
struct Pod {
    process: NodeProcess,
    data_dir: PathBuf,
}

impl Pod {
    /// Removes the pod as a StatefulSet scale-down does: SIGTERM, a clean
    /// exit, then its volume (data directory) is deleted.
    fn remove(self) {
        self.process.stop();
        std::fs::remove_dir_all(&self.data_dir).expect("deleting the data directory");
    }
}

/// A cluster as the operator sees it through Kubernetes, played by local
/// processes.
struct Cluster {
    /// Running pods by name. Declared first so that they are killed before
    /// `dir` is deleted.
    pods: BTreeMap<String, Pod>,
    cluster: ClusterRef,
    /// Zones of the spec and their node counts, in spec order.
    spec: Vec<(String, i32)>,
    /// Replicas of each zone's StatefulSet.
    statefulsets: BTreeMap<String, i32>,
    /// The ring in the ConfigMap, as the operator computed it.
    ring: Option<RingDocument>,
    /// Loopback `HOST:PORT` standing in for each pod's DNS name.
    addresses: BTreeMap<String, String>,
    /// Base URLs of the current ring's members, for the writer.
    members: Arc<Mutex<Vec<String>>>,
    /// Every epoch published, in order.
    epochs: Vec<u64>,
    admin: HttpNodeAdmin,
    /// The cluster's auth token: nodes start with `--auth-dir`, and every
    /// admin and client call carries it, as with `spec.auth`.
    token: BearerToken,
    /// The cluster CA: nodes start with `--tls-dir` (a certificate for
    /// 127.0.0.1 signed by it), and every call trusts only it, as with
    /// `spec.tls`.
    ca: TrustedCa,
    /// The TLS Secret's files, as mounted for `--tls-dir`.
    tls_dir: PathBuf,
    http: reqwest::Client,
    binary: PathBuf,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// The cluster `demo` with zones a/b/c of one node each; nothing runs
    /// and no ring exists yet.
    fn new() -> Cluster {
        let dir = tempfile::tempdir().expect("temporary directory");
        // The TLS Secret: a fresh CA and one certificate for 127.0.0.1 it
        // signed, which every node serves.
        let ca = TestCa::new("demo CA");
        let tls_dir = dir.path().join("tls");
        ca.write_tls_dir(&tls_dir, &["127.0.0.1"]);
        let cluster = ClusterRef {
            name: "demo".into(),
            namespace: "default".into(),
            owner: OwnerReference {
                api_version: "kv.dynamo.dev/v1alpha1".into(),
                kind: "DynamoCluster".into(),
                name: "demo".into(),
                uid: "uid-demo".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
        };
        let addresses = ZONES
            .iter()
            .zip(free_ports(ZONES.len()))
            .map(|(zone, port)| (cluster.pod_name(zone, 0), format!("127.0.0.1:{port}")))
            .collect();
        Cluster {
            pods: BTreeMap::new(),
            cluster,
            spec: ["a", "b", "c"].iter().map(|z| (z.to_string(), 1)).collect(),
            statefulsets: BTreeMap::new(),
            ring: None,
            addresses,
            members: Arc::new(Mutex::new(Vec::new())),
            epochs: Vec::new(),
            admin: HttpNodeAdmin::new(Duration::from_secs(5)).expect("admin client"),
            token: BearerToken::new(TOKEN.as_bytes()).expect("token"),
            ca: TrustedCa::from_pem(ca.pem().as_bytes()).expect("CA"),
            tls_dir,
            http: dynamo_testkit::http::builder(Some(ca.pem()))
                .timeout(Duration::from_secs(5))
                .default_headers(reqwest::header::HeaderMap::from_iter([(
                    reqwest::header::AUTHORIZATION,
                    reqwest::header::HeaderValue::from_str(&format!("Bearer {TOKEN}"))
                        .expect("header value"),
                )]))
                .build()
                .expect("http client"),
            binary: node_binary(),
            dir,
        }
    }

    /// The directory holding the auth Secret's `token` file (the older
    /// single-token layout, which serves every role). Written once, and
    /// atomically: a node starting while it was rewritten in place could
    /// read it empty and refuse to start.
    fn auth_dir(&self) -> PathBuf {
        let dir = self.dir.path().join("auth");
        let token = dir.join("token");
        if !token.exists() {
            std::fs::create_dir_all(&dir).expect("auth directory");
            let staged = dir.join(".token.new");
            std::fs::write(&staged, format!("{TOKEN}\n")).expect("token file");
            std::fs::rename(&staged, &token).expect("token file in place");
        }
        dir
    }

    /// The base URL (HTTPS) of pod `name`.
    fn url(&self, name: &str) -> String {
        format!("https://{}", self.addresses[name])
    }

    /// The ConfigMap's ring file, read by pods when they start.
    fn ring_file(&self) -> PathBuf {
        self.dir.path().join("ring.json")
    }

    /// `doc` with every member's pod DNS address replaced by its loopback
    /// stand-in: the one rewrite between the operator and the processes.
    fn local(&self, doc: &RingDocument) -> RingDocument {
        let mut local = doc.clone();
        for (id, address) in &mut local.addresses {
            *address = self.addresses[id].clone();
        }
        local
    }

    /// Ready pods (answering `/readyz`) and the transfer reports the
    /// operator's client gets from them (absent when the call fails).
    async fn observe(&self) -> (BTreeSet<String>, BTreeMap<String, TransferReport>) {
        let mut ready = BTreeSet::new();
        let mut reports = BTreeMap::new();
        for name in self.pods.keys() {
            if checks::ready(&self.http, &self.url(name)).await {
                ready.insert(name.clone());
                if let Ok(report) = self
                    .admin
                    .transfers(&self.addresses[name], Some(&self.token), Some(&self.ca))
                    .await
                {
                    reports.insert(name.clone(), report);
                }
            }
        }
        (ready, reports)
    }

    /// One reconcile pass: observe, let `plan_step` decide, check that no
    /// StatefulSet shrinks early, then apply like the operator: ring into
    /// the ConfigMap, StatefulSet replicas (pods started or removed), and
    /// the ring sent to every ready pod reporting an older epoch, leaving
    /// ones included (the operator's `publish_to` rule).
    async fn reconcile(&mut self) -> StepPlan {
        let (ready, reports) = self.observe().await;
        let zones = zone_states(&self.spec, &self.statefulsets, self.ring.as_ref());
        let plan = plan_step(&StepInput {
            cluster: &self.cluster,
            zones: &zones,
            replication: N,
            partitions: PARTITIONS,
            ring: self.ring.as_ref(),
            ready_pods: &ready,
            reports: &reports,
        })
        .expect("plan_step");
        self.check_no_early_shrink(&plan, &reports);

        let local = self.local(&plan.ring);
        if plan.publish {
            self.epochs.push(plan.ring.ring.epoch);
            let json = serde_json::to_vec(&local).expect("ring JSON");
            std::fs::write(self.ring_file(), json).expect("writing the ring file");
        }
        self.ring = Some(plan.ring.clone());

        for (zone, &replicas) in &plan.replicas {
            let current = self.statefulsets.get(zone).copied().unwrap_or(0);
            for ordinal in current..replicas {
                self.start_pod(zone, ordinal);
            }
            for ordinal in replicas..current {
                let name = self.cluster.pod_name(zone, ordinal);
                let pod = self.pods.remove(&name).expect("a running pod");
                pod.remove();
            }
            self.statefulsets.insert(zone.clone(), replicas);
        }

        let epoch = plan.ring.ring.epoch;
        for name in &ready {
            if needs_ring(reports.get(name), epoch) {
                let outcome = self
                    .admin
                    .publish_ring(
                        &self.addresses[name],
                        Some(&self.token),
                        Some(&self.ca),
                        &local,
                    )
                    .await
                    .unwrap_or_else(|e| panic!("publishing epoch {epoch}: {e}"));
                assert_eq!(outcome, PublishOutcome::Accepted, "{name} took {epoch}");
            }
        }
        *self.members.lock().expect("members") = plan
            .ring
            .ring
            .members
            .iter()
            .map(|m| self.url(&m.id))
            .collect();
        plan
    }

    /// Panics if `plan` lowers a StatefulSet while a pod it removes is
    /// still in the ring, or before every member of the ring reported
    /// `complete_for(epoch)` in this pass.
    fn check_no_early_shrink(&self, plan: &StepPlan, reports: &BTreeMap<String, TransferReport>) {
        let ring = &plan.ring.ring;
        for (zone, &replicas) in &plan.replicas {
            let current = self.statefulsets.get(zone).copied().unwrap_or(0);
            if replicas >= current {
                continue;
            }
            for ordinal in replicas..current {
                let name = self.cluster.pod_name(zone, ordinal);
                assert!(
                    ring.member(&name).is_none(),
                    "{name} removed while a member"
                );
            }
            let unconfirmed: Vec<&str> = ring
                .members
                .iter()
                .filter(|m| {
                    !reports
                        .get(&m.id)
                        .is_some_and(|r| r.complete_for(ring.epoch))
                })
                .map(|m| m.id.as_str())
                .collect();
            assert!(
                unconfirmed.is_empty(),
                "zone {zone} shrinks from {current} to {replicas} before {unconfirmed:?} \
                 confirmed epoch {}",
                ring.epoch
            );
        }
    }

    /// Starts ordinal `ordinal` of `zone` with the ConfigMap's ring file.
    fn start_pod(&mut self, zone: &str, ordinal: i32) {
        let name = self.cluster.pod_name(zone, ordinal);
        let data_dir = self.dir.path().join(&name);
        let mut command =
            serve_command(&self.binary, &name, &self.addresses[&name], zone, &data_dir);
        command
            .arg("--ring-file")
            .arg(self.ring_file())
            .arg("--auth-dir")
            .arg(self.auth_dir())
            .arg("--tls-dir")
            .arg(&self.tls_dir)
            .args(["--n", "3", "--r", "2", "--w", "2"])
            .args(["--partitions", &PARTITIONS.to_string()])
            .args(FAST_BACKGROUND);
        let process = NodeProcess::spawn(&name, &mut command);
        self.pods.insert(name, Pod { process, data_dir });
    }

    /// Reconciles until `plan_step` says `Steady`; returns every plan.
    async fn until_steady(&mut self) -> Vec<StepPlan> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut plans = Vec::new();
        loop {
            let plan = self.reconcile().await;
            let steady = plan.action == StepAction::Steady;
            plans.push(plan);
            if steady {
                return plans;
            }
            assert!(
                Instant::now() < deadline,
                "no steady state; last step {:?}",
                plans.last().map(|p| (&p.action, &p.progress))
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Sets zone `zone` of the spec to `replicas` nodes (adding it last if
    /// new).
    fn set_zone(&mut self, zone: &str, replicas: i32) {
        match self.spec.iter_mut().find(|(name, _)| name == zone) {
            Some(entry) => entry.1 = replicas,
            None => self.spec.push((zone.to_string(), replicas)),
        }
    }

    /// Reads every acknowledged write through the running pods (round
    /// robin) and panics listing those not readable with their value.
    async fn assert_all_readable(&self, acked: &[(String, String)]) {
        let via = self.running();
        checks::assert_all_readable(&self.http, acked, &via).await;
    }

    /// Waits until every running pod uses ring `epoch` and, for every
    /// partition, all `N` owners report equal Merkle roots.
    async fn wait_converged(&self, epoch: u64) {
        let want = Convergence {
            epoch: Some(epoch),
            replicas: Some(N),
            partitions: Some(PARTITIONS as usize),
        };
        checks::wait_converged(&self.http, &self.running(), want).await;
    }

    /// Base URLs of the running pods.
    fn running(&self) -> Vec<String> {
        self.pods.keys().map(|name| self.url(name)).collect()
    }
}

/// The actions of `plans` in order, repeats folded (`Transferring x3`),
/// for the log.
fn actions(plans: &[StepPlan]) -> String {
    let mut folded: Vec<(String, usize)> = Vec::new();
    for plan in plans {
        let action = format!("{:?}", plan.action);
        match folded.last_mut() {
            Some((last, count)) if *last == action => *count += 1,
            _ => folded.push((action, 1)),
        }
    }
    folded
        .iter()
        .map(|(action, count)| match count {
            1 => action.clone(),
            _ => format!("{action} x{count}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Names of the pods of `zones`, ordinal 0.
fn pods(cluster: &ClusterRef, zones: &[&str]) -> Vec<String> {
    zones.iter().map(|z| cluster.pod_name(z, 0)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_ring_steps_move_a_cluster_to_three_other_nodes_under_a_writer() {
    let started = Instant::now();
    let mut c = Cluster::new();
    let members = |c: &Cluster| -> Vec<String> {
        let ring = &c.ring.as_ref().expect("ring").ring;
        ring.members.iter().map(|m| m.id.clone()).collect()
    };

    // Create: the first ring (epoch 1) from the future pod names, then the
    // pods start with it.
    let created = c.until_steady().await;
    println!("create: {}", actions(&created));
    assert_eq!(created[0].action, StepAction::Create);
    assert_eq!(created[0].ring.ring.epoch, 1);
    assert_eq!(members(&c), pods(&c.cluster, &["a", "b", "c"]));

    let writer = Writer::start_shared(c.http.clone(), "w", c.members.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Scale up to four nodes: the StatefulSet of zone d grows, its pod
    // starts with the epoch-1 ring (not a member), then the ring with it
    // is published and transferred.
    c.set_zone("d", 1);
    let grown = c.until_steady().await;
    println!("zone d added: {}", actions(&grown));
    let demo_d_0 = c.cluster.pod_name("d", 0);
    assert_eq!(
        grown[0].action,
        StepAction::WaitForPods {
            waiting: vec![demo_d_0.clone()]
        },
        "the pod comes before the ring"
    );
    assert!(grown.iter().any(|p| p.action
        == StepAction::Publish {
            joining: vec![demo_d_0.clone()],
            leaving: vec![]
        }));
    assert_eq!(members(&c), pods(&c.cluster, &["a", "b", "c", "d"]));

    // Up to six nodes: zones e and f.
    c.set_zone("e", 1);
    c.set_zone("f", 1);
    let six = c.until_steady().await;
    println!("zones e, f added: {}", actions(&six));
    assert_eq!(members(&c), pods(&c.cluster, &ZONES));

    // Down to three other nodes: zones a/b/c leave the spec. The ring
    // without them comes first; their StatefulSets keep their pod until
    // every member confirmed the epoch (also checked on every pass by
    // `check_no_early_shrink`).
    c.spec
        .retain(|(zone, _)| !["a", "b", "c"].contains(&zone.as_str()));
    let moved = c.until_steady().await;
    println!("zones a, b, c removed: {}", actions(&moved));
    let leaving = pods(&c.cluster, &["a", "b", "c"]);
    assert_eq!(
        moved[0].action,
        StepAction::Publish {
            joining: vec![],
            leaving: leaving.clone()
        }
    );
    // Each leaving zone shrinks once its pod has handed over, in the same
    // pass or in different ones (`check_no_early_shrink` checks every pass).
    let lowered = |plan: &StepPlan| ["a", "b", "c"].iter().any(|z| plan.zone_replicas(z) == 0);
    let shrink_at = moved
        .iter()
        .position(lowered)
        .expect("a step lowering a leaving zone");
    for plan in &moved {
        if let StepAction::Shrink { removed } = &plan.action {
            assert!(
                removed.iter().all(|pod| leaving.contains(pod)),
                "only leaving pods are removed: {removed:?}"
            );
        }
    }
    let last = moved.last().expect("steps");
    for zone in ["a", "b", "c"] {
        assert_eq!(last.zone_replicas(zone), 0, "zone {zone} shrank to 0");
    }
    let final_epoch = moved[0].ring.ring.epoch;
    assert!(moved[shrink_at].progress.complete());
    assert_eq!(moved[shrink_at].progress.epoch, final_epoch);
    assert_eq!(members(&c), pods(&c.cluster, &["d", "e", "f"]));
    assert_eq!(
        c.pods.keys().cloned().collect::<Vec<_>>(),
        members(&c),
        "only the three other nodes still run"
    );

    tokio::time::sleep(Duration::from_secs(1)).await;
    let acked = writer.stop().await;
    println!("epochs traversed {:?}", c.epochs);
    assert_eq!(c.epochs, [1, 2, 3, 4]);
    assert!(acked.len() > 100, "the writer made progress");
    c.assert_all_readable(&acked).await;
    c.wait_converged(final_epoch).await;
    println!("finished in {:.1} s", started.elapsed().as_secs_f64());
}
