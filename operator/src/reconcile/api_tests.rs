//! The API calls of whole reconciles, checked against a mock API server
//! (`tower_test::mock`): each scenario asserts every request's method, path
//! and body in order and answers it, under a short timeout so a missing
//! call fails fast.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dynamo_ring::{RingDocument, TransferReport};
use dynamo_testkit::pki::TestCa;
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};

use super::fixtures::{cluster, spec, with_auth, with_tls};
use super::{BUSY_REQUEUE, Context, backoff, reconcile};
use crate::crd::DynamoCluster;
use crate::metrics::Metrics;
use crate::node_client::{BearerToken, NodeAdmin, NodeError, PublishOutcome, TrustedCa};
use crate::resources::configmap::RING_JSON_KEY;
use crate::ring_steps::fixtures::settled_report;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// Nodes that answer from a table of reports and remember published rings
/// and the token and trusted CA of every call.
#[derive(Default)]
struct FakeNodes {
    reports: BTreeMap<String, TransferReport>,
    published: Mutex<Vec<(String, u64)>>,
    tokens: Mutex<Vec<(&'static str, Option<BearerToken>)>>,
    cas: Mutex<Vec<Option<TrustedCa>>>,
}

impl FakeNodes {
    fn saw(&self, call: &'static str, token: Option<&BearerToken>, ca: Option<&TrustedCa>) {
        self.tokens
            .lock()
            .expect("lock")
            .push((call, token.cloned()));
        self.cas.lock().expect("lock").push(ca.cloned());
    }
}

impl NodeAdmin for FakeNodes {
    async fn publish_ring(
        &self,
        address: &str,
        token: Option<&BearerToken>,
        ca: Option<&TrustedCa>,
        document: &RingDocument,
    ) -> Result<PublishOutcome, NodeError> {
        self.saw("ring", token, ca);
        self.published
            .lock()
            .expect("lock")
            .push((address.to_string(), document.ring.epoch));
        Ok(PublishOutcome::Accepted)
    }

    async fn transfers(
        &self,
        address: &str,
        token: Option<&BearerToken>,
        ca: Option<&TrustedCa>,
    ) -> Result<TransferReport, NodeError> {
        self.saw("transfers", token, ca);
        self.reports
            .get(address)
            .cloned()
            .ok_or_else(|| NodeError::Status {
                address: address.to_string(),
                status: 503,
                body: String::new(),
            })
    }
}

/// The API server side of a scenario.
struct ApiServer(Handle);

impl ApiServer {
    /// Takes the next request, checks method and path, answers `reply`
    /// with `status`; returns the request's query and JSON body.
    async fn answer(
        &mut self,
        method: Method,
        path: &str,
        status: StatusCode,
        reply: Value,
    ) -> (String, Value) {
        self.answer_with(method, path, status, |_| reply).await
    }

    /// Like [`ApiServer::answer`], the reply computed from the request body.
    async fn answer_with(
        &mut self,
        method: Method,
        path: &str,
        status: StatusCode,
        reply: impl FnOnce(&Value) -> Value,
    ) -> (String, Value) {
        let (request, send) = self
            .0
            .next_request()
            .await
            .unwrap_or_else(|| panic!("expected {method} {path}, the client stopped"));
        assert_eq!(
            (request.method(), request.uri().path()),
            (&method, path),
            "unexpected request order"
        );
        let query = request.uri().query().unwrap_or_default().to_string();
        let bytes = request.into_body().collect_bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON body")
        };
        let response = Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&reply(&body)).expect("json")))
            .expect("response");
        send.send_response(response);
        (query, body)
    }

    /// A server-side apply of `path`, answered with the applied object.
    async fn apply(&mut self, path: &str) -> Value {
        self.apply_answering(path, Value::clone).await
    }

    /// A server-side apply of `path`, answered with `reply(body)`.
    async fn apply_answering(&mut self, path: &str, reply: impl FnOnce(&Value) -> Value) -> Value {
        let (query, body) = self
            .answer_with(Method::PATCH, path, StatusCode::OK, reply)
            .await;
        assert!(
            query.contains("fieldManager=dynamo-operator"),
            "{path}: {query}"
        );
        assert!(query.contains("force=true"), "{path}: {query}");
        body
    }

    /// The applies of a three-zone cluster's ConfigMap, its four Services
    /// and its three zone StatefulSets, in that order; returns the
    /// StatefulSets as applied.
    async fn objects_applied(&mut self) -> Vec<Value> {
        let core = "/api/v1/namespaces/default";
        self.apply(&format!("{core}/configmaps/demo-config")).await;
        for name in ["demo-a", "demo-b", "demo-c", "demo"] {
            self.apply(&format!("{core}/services/{name}")).await;
        }
        let mut statefulsets = Vec::new();
        for name in ["demo-a", "demo-b", "demo-c"] {
            let path = format!("/apis/apps/v1/namespaces/default/statefulsets/{name}");
            statefulsets.push(self.apply(&path).await);
        }
        statefulsets
    }

    /// The end of a reconcile that published a ring: the PDB apply, a
    /// `Rebalancing` status patch (returned) and a `RingPublished` event.
    async fn ring_published(&mut self, cluster: &Value) -> Value {
        self.apply("/apis/policy/v1/namespaces/default/poddisruptionbudgets/demo")
            .await;
        let status = self.status_patch(cluster).await;
        assert_eq!(status["status"]["phase"], "Rebalancing");
        let (_, event) = self
            .answer(
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/default/events",
                StatusCode::CREATED,
                event_created(),
            )
            .await;
        assert_eq!(event["reason"], "RingPublished");
        status
    }

    /// The status patch of `cluster`, answered with the cluster carrying it.
    async fn status_patch(&mut self, cluster: &Value) -> Value {
        self.apply_answering(
            "/apis/kv.dynamo.dev/v1alpha1/namespaces/default/dynamoclusters/demo/status",
            |body| {
                let mut object = cluster.clone();
                object["status"] = body["status"].clone();
                object
            },
        )
        .await
    }

    /// The observe stage: StatefulSets, pods, the ConfigMap, the volume
    /// claims (none).
    async fn observe(&mut self, statefulsets: Value, pods: Value, config_map: Option<Value>) {
        let ns = "/apis/apps/v1/namespaces/default";
        let (query, _) = self
            .answer(
                Method::GET,
                &format!("{ns}/statefulsets"),
                StatusCode::OK,
                statefulsets,
            )
            .await;
        assert!(query.contains("labelSelector="), "{query}");
        self.answer(
            Method::GET,
            "/api/v1/namespaces/default/pods",
            StatusCode::OK,
            pods,
        )
        .await;
        let path = "/api/v1/namespaces/default/configmaps/demo-config";
        match config_map {
            Some(cm) => self.answer(Method::GET, path, StatusCode::OK, cm).await,
            None => {
                self.answer(Method::GET, path, StatusCode::NOT_FOUND, not_found())
                    .await
            }
        };
        self.answer(
            Method::GET,
            "/api/v1/namespaces/default/persistentvolumeclaims",
            StatusCode::OK,
            list("PersistentVolumeClaimList", "v1", Vec::new()),
        )
        .await;
    }
}

impl ApiServer {
    /// The read of the auth Secret `name`: answered with `secret`, or 404.
    async fn auth_secret(&mut self, name: &str, secret: Option<Value>) {
        let path = format!("/api/v1/namespaces/default/secrets/{name}");
        match secret {
            Some(secret) => {
                self.answer(Method::GET, &path, StatusCode::OK, secret)
                    .await
            }
            None => {
                self.answer(Method::GET, &path, StatusCode::NOT_FOUND, not_found())
                    .await
            }
        };
    }

    /// The read of the generated auth Secret `demo-auth`, which exists
    /// ([`generated_secret`]).
    async fn existing_generated_secret(&mut self) {
        self.auth_secret("demo-auth", Some(generated_secret()))
            .await;
    }
}

/// The Secret `name` with `data` (base64 values).
fn secret(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": name, "namespace": "default"},
           "data": data})
}

/// The auth Secret `demo-auth` as the operator generated it earlier, with
/// the admin token [`ADMIN_TOKEN`].
fn generated_secret() -> Value {
    secret(
        "demo-auth",
        json!({"admin-token": STANDARD.encode(ADMIN_TOKEN),
               "peer-token": STANDARD.encode("p33r"),
               "client-token": STANDARD.encode("cl1ent")}),
    )
}

/// Admin token of [`generated_secret`].
const ADMIN_TOKEN: &str = "adm1n";

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "reason": "NotFound", "code": 404, "message": "not found"})
}

fn list(kind: &str, api_version: &str, items: Vec<Value>) -> Value {
    json!({"kind": kind, "apiVersion": api_version, "metadata": {}, "items": items})
}

fn context(client: kube::Client, nodes: FakeNodes) -> Arc<Context<FakeNodes>> {
    Arc::new(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "dynamo-operator".into(),
                instance: Some("test".into()),
            },
        ),
        client,
        nodes,
        metrics: Arc::new(Metrics::default()),
        failures: Default::default(),
    })
}

/// Runs `reconcile` against a scenario; returns its action, the
/// scenario's result and the context (to inspect the fake nodes).
async fn run<F>(
    cluster: DynamoCluster,
    nodes: FakeNodes,
    scenario: impl FnOnce(ApiServer) -> F,
) -> (Action, Arc<Context<FakeNodes>>)
where
    F: Future<Output = ApiServer> + Send + 'static,
{
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let ctx = context(client, nodes);
    let server = tokio::spawn(scenario(ApiServer(handle)));
    let action = tokio::time::timeout(
        Duration::from_secs(5),
        reconcile(Arc::new(cluster), ctx.clone()),
    )
    .await
    .expect("reconcile timed out")
    .expect("reconcile");
    let ApiServer(mut handle) = tokio::time::timeout(Duration::from_secs(1), server)
        .await
        .expect("scenario timed out")
        .expect("scenario");
    let leftover = tokio::time::timeout(Duration::from_millis(50), handle.next_request()).await;
    assert!(leftover.is_err(), "a request beyond the scenario was made");
    (action, ctx)
}

/// Checks the body of the generated auth Secret's creation: `demo-auth`,
/// owned by and labelled for the cluster, with three distinct tokens of 32
/// random bytes hex-encoded; returns the admin token.
fn check_generated_secret(query: &str, body: &Value) -> String {
    assert!(query.contains("fieldManager=dynamo-operator"), "{query}");
    assert_eq!(body["metadata"]["name"], "demo-auth");
    let owner = &body["metadata"]["ownerReferences"][0];
    assert_eq!(
        (&owner["kind"], &owner["uid"], &owner["controller"]),
        (&json!("DynamoCluster"), &json!("uid-demo"), &json!(true))
    );
    assert_eq!(
        body["metadata"]["labels"]["app.kubernetes.io/instance"],
        "demo"
    );
    let data = body["data"].as_object().expect("data");
    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
    assert_eq!(keys, ["admin-token", "client-token", "peer-token"]);
    let tokens: Vec<String> = data
        .values()
        .map(|v| {
            let raw = STANDARD
                .decode(v.as_str().expect("base64"))
                .expect("base64");
            String::from_utf8(raw).expect("text")
        })
        .collect();
    for token in &tokens {
        assert_eq!(token.len(), 64, "{token}");
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{token}"
        );
    }
    assert!(
        tokens[0] != tokens[1] && tokens[1] != tokens[2] && tokens[0] != tokens[2],
        "distinct tokens"
    );
    tokens[0].clone()
}

#[tokio::test]
async fn first_reconcile_creates_the_auth_secret_applies_every_object_then_the_status() {
    let c = cluster(spec(&[("a", 1), ("b", 1), ("c", 1)]));
    let object = serde_json::to_value(&c).expect("json");
    let (action, _) = run(c, FakeNodes::default(), |mut api| async move {
        api.observe(
            list("StatefulSetList", "apps/v1", vec![]),
            list("PodList", "v1", vec![]),
            None,
        )
        .await;
        api.auth_secret("demo-auth", None).await;
        let core = "/api/v1/namespaces/default";
        let (query, created) = api
            .answer_with(
                Method::POST,
                &format!("{core}/secrets"),
                StatusCode::CREATED,
                Value::clone,
            )
            .await;
        check_generated_secret(&query, &created);
        let cm = api.apply(&format!("{core}/configmaps/demo-config")).await;
        assert_eq!(cm["metadata"]["ownerReferences"][0]["uid"], "uid-demo");
        let ring: RingDocument =
            serde_json::from_str(cm["data"][RING_JSON_KEY].as_str().expect("ring.json"))
                .expect("ring document");
        assert_eq!(ring.ring.epoch, 1);
        assert_eq!(ring.ring.members.len(), 3);
        assert_eq!(
            ring.addresses["demo-a-0"], "demo-a-0.demo-a.default.svc:7001",
            "peers dial the internal port"
        );
        for name in ["demo-a", "demo-b", "demo-c", "demo"] {
            let svc = api.apply(&format!("{core}/services/{name}")).await;
            assert_eq!(svc["kind"], "Service");
            assert_eq!(
                svc["metadata"]["ownerReferences"][0]["kind"],
                "DynamoCluster"
            );
            let ports: Vec<(&str, i64)> = svc["spec"]["ports"]
                .as_array()
                .expect("ports")
                .iter()
                .map(|p| {
                    (
                        p["name"].as_str().expect("name"),
                        p["port"].as_i64().expect("port"),
                    )
                })
                .collect();
            if name == "demo" {
                assert_eq!(ports, [("http", 7000)], "the client Service");
            } else {
                assert_eq!(ports, [("http", 7000), ("internal", 7001)], "{name}");
            }
        }
        for name in ["demo-a", "demo-b", "demo-c"] {
            let sts = api
                .apply(&format!(
                    "/apis/apps/v1/namespaces/default/statefulsets/{name}"
                ))
                .await;
            assert_eq!(sts["spec"]["replicas"], 1);
            assert_eq!(sts["spec"]["updateStrategy"]["type"], "OnDelete");
            let pod = &sts["spec"]["template"]["spec"];
            assert!(
                pod["volumes"].as_array().expect("volumes").contains(&json!(
                    {"name": "auth", "projected": {"sources": [{"secret": {"name": "demo-auth"}}]}}
                )),
                "{pod}"
            );
            let env = pod["containers"][0]["env"].as_array().expect("env");
            for var in [
                json!({"name": "DYNAMO_AUTH_DIR", "value": "/etc/dynamo-auth"}),
                json!({"name": "DYNAMO_LISTEN", "value": "0.0.0.0:7000"}),
                json!({"name": "DYNAMO_INTERNAL_LISTEN", "value": "0.0.0.0:7001"}),
            ] {
                assert!(env.contains(&var), "{var} in {env:?}");
            }
        }
        let pdb = api
            .apply("/apis/policy/v1/namespaces/default/poddisruptionbudgets/demo")
            .await;
        assert_eq!(pdb["spec"]["maxUnavailable"], 1);
        let status = api.status_patch(&object).await;
        assert_eq!(status["status"]["phase"], "Creating");
        assert_eq!(status["status"]["ringEpoch"], 1);
        assert_eq!(status["status"]["observedGeneration"], 1);
        for reason in ["AuthSecretCreated", "RingPublished"] {
            let (_, event) = api
                .answer(
                    Method::POST,
                    "/apis/events.k8s.io/v1/namespaces/default/events",
                    StatusCode::CREATED,
                    event_created(),
                )
                .await;
            assert_eq!(event["reason"], reason);
            assert_eq!(event["type"], "Normal");
        }
        api
    })
    .await;
    assert_eq!(action, Action::requeue(BUSY_REQUEUE));
}

#[tokio::test]
async fn an_auth_secret_created_meanwhile_is_kept_and_the_reconcile_goes_on() {
    let c = cluster(spec(&[("a", 1), ("b", 1), ("c", 1)]));
    let object = serde_json::to_value(&c).expect("json");
    let (action, _) = run(c, FakeNodes::default(), |mut api| async move {
        api.observe(
            list("StatefulSetList", "apps/v1", vec![]),
            list("PodList", "v1", vec![]),
            None,
        )
        .await;
        api.auth_secret("demo-auth", None).await;
        let core = "/api/v1/namespaces/default";
        api.answer(
            Method::POST,
            &format!("{core}/secrets"),
            StatusCode::CONFLICT,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                   "status": "Failure", "reason": "AlreadyExists", "code": 409,
                   "message": "secrets \"demo-auth\" already exists"}),
        )
        .await;
        api.objects_applied().await;
        api.apply("/apis/policy/v1/namespaces/default/poddisruptionbudgets/demo")
            .await;
        api.status_patch(&object).await;
        for _ in 0..2 {
            api.answer(
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/default/events",
                StatusCode::CREATED,
                event_created(),
            )
            .await;
        }
        api
    })
    .await;
    assert_eq!(action, Action::requeue(BUSY_REQUEUE));
}

#[tokio::test]
async fn an_invalid_spec_gets_a_status_and_an_event_and_no_statefulset_nor_secret() {
    let (c, object) = invalid_cluster();
    let (action, _) = run(c, FakeNodes::default(), |api| refuse(api, object)).await;
    assert_eq!(action, Action::await_change());
}

/// A cluster whose spec is refused (a read quorum above N), and its JSON.
fn invalid_cluster() -> (DynamoCluster, Value) {
    let mut s = spec(&[("a", 1), ("b", 1), ("c", 1)]);
    s.replication.r = 4;
    let c = cluster(s);
    let object = serde_json::to_value(&c).expect("json");
    (c, object)
}

/// The reconcile of [`invalid_cluster`]: it observes, looks for the auth
/// Secret, then sets the status and posts an event saying why.
async fn refuse(mut api: ApiServer, object: Value) -> ApiServer {
    api.observe(
        list("StatefulSetList", "apps/v1", vec![]),
        list("PodList", "v1", vec![]),
        None,
    )
    .await;
    api.auth_secret("demo-auth", None).await;
    let status = api.status_patch(&object).await;
    assert_eq!(status["status"]["phase"], "Invalid");
    let ready = status["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
        .expect("Ready condition");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "SpecRefused");
    let (_, event) = api
        .answer(
            Method::POST,
            "/apis/events.k8s.io/v1/namespaces/default/events",
            StatusCode::CREATED,
            json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
                   "metadata": {"name": "e"}, "eventTime": null}),
        )
        .await;
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "SpecRefused");
    assert!(
        event["note"]
            .as_str()
            .expect("note")
            .contains("readQuorum=4"),
        "{event}"
    );
    api
}

/// A span that closed: its name, its fields as text, and whether it was
/// an OpenTelemetry span (one a configured endpoint would receive).
#[derive(Debug)]
struct ClosedSpan {
    name: &'static str,
    fields: BTreeMap<String, String>,
    traced: bool,
}

/// Notes every span as it closes.
#[derive(Clone, Default)]
struct ClosedSpans(Arc<Mutex<Vec<ClosedSpan>>>);

/// A span's fields as text.
#[derive(Clone, Default)]
struct Fields(BTreeMap<String, String>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
}

impl<S> tracing_subscriber::Layer<S> for ClosedSpans
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attributes: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = Fields::default();
        attributes.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let extensions = span.extensions();
        self.0.lock().expect("lock").push(ClosedSpan {
            name: span.name(),
            fields: extensions.get::<Fields>().cloned().unwrap_or_default().0,
            traced: extensions.get::<dynamo_telemetry::TraceIds>().is_some(),
        });
    }
}

/// With tracing on, a reconcile is one span, naming the cluster and its
/// namespace, that the OpenTelemetry layer turns into a span to export.
#[tokio::test]
async fn a_reconcile_is_traced_as_a_span_naming_the_cluster() {
    use tracing_subscriber::layer::SubscriberExt;

    let tracing =
        dynamo_telemetry::Tracing::start("dynamo-operator", vec![], None).expect("tracing");
    let closed = ClosedSpans::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing.layer())
        .with(closed.clone());
    let _default = tracing::subscriber::set_default(subscriber);
    let (c, object) = invalid_cluster();
    run(c, FakeNodes::default(), |api| refuse(api, object)).await;
    let closed = closed.0.lock().expect("lock");
    let reconciles: Vec<&ClosedSpan> = closed.iter().filter(|s| s.name == "reconcile").collect();
    assert_eq!(reconciles.len(), 1, "{closed:?}");
    let reconcile = reconciles[0];
    assert!(reconcile.traced, "{reconcile:?}");
    assert_eq!(
        reconcile.fields.get("cluster").map(String::as_str),
        Some("demo")
    );
    assert_eq!(
        reconcile.fields.get("namespace").map(String::as_str),
        Some("default")
    );
}

fn zone_statefulset(zone: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": format!("demo-{zone}"), "namespace": "default",
                     "labels": {"kv.dynamo.dev/zone": zone}},
        "spec": {"replicas": replicas, "selector": {}, "serviceName": format!("demo-{zone}"),
                 "template": {}},
        "status": {"replicas": replicas, "readyReplicas": replicas, "updateRevision": format!("demo-{zone}-r1")}
    })
}

fn ready_pod(zone: &str, ordinal: i32) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("demo-{zone}-{ordinal}"), "namespace": "default",
                     "labels": {"kv.dynamo.dev/zone": zone,
                                "controller-revision-hash": format!("demo-{zone}-r1")}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}
    })
}

/// Zones a (2 pods), b and c (1 pod each) at ring epoch 1, every node
/// reporting it complete: the ring JSON of the ConfigMap and the nodes.
fn four_nodes_at_epoch_one() -> (String, FakeNodes) {
    let zones = [("a", 2), ("b", 1), ("c", 1)];
    let first = {
        let c = cluster(spec(&zones));
        let cref = super::cluster_ref(&c).expect("ref");
        let members = crate::ring_steps::desired_members(
            &cref,
            &zones
                .iter()
                .map(|(name, target)| crate::ring_steps::ZoneState {
                    name: name.to_string(),
                    target: *target,
                    current: Some(*target),
                })
                .collect::<Vec<_>>(),
        );
        let ring = dynamo_ring::Ring::build(members, 3, 64).expect("ring");
        crate::ring_steps::document(&cref, ring)
    };
    let mut nodes = FakeNodes::default();
    for (zone, count) in zones {
        for i in 0..count {
            let pod = format!("demo-{zone}-{i}");
            nodes.reports.insert(
                format!("{pod}.demo-{zone}.default.svc:7001"),
                settled_report(&pod, 1),
            );
        }
    }
    (serde_json::to_string(&first).expect("json"), nodes)
}

/// The observe stage of [`four_nodes_at_epoch_one`]: its StatefulSets,
/// ready pods and ConfigMap.
async fn observe_four_nodes(api: &mut ApiServer, ring_json: String) {
    api.observe(
        list(
            "StatefulSetList",
            "apps/v1",
            vec![
                zone_statefulset("a", 2),
                zone_statefulset("b", 1),
                zone_statefulset("c", 1),
            ],
        ),
        list(
            "PodList",
            "v1",
            vec![
                ready_pod("a", 0),
                ready_pod("a", 1),
                ready_pod("b", 0),
                ready_pod("c", 0),
            ],
        ),
        Some(json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "demo-config", "namespace": "default"},
                    "data": {"ring.json": ring_json}})),
    )
    .await;
}

#[tokio::test]
async fn scale_down_publishes_the_smaller_ring_and_keeps_the_statefulset() {
    let (ring_json, nodes) = four_nodes_at_epoch_one();
    let c = cluster(spec(&[("a", 1), ("b", 1), ("c", 1)]));
    let object = serde_json::to_value(&c).expect("json");
    let (action, ctx) = run(c, nodes, |mut api| async move {
        observe_four_nodes(&mut api, ring_json).await;
        // The generated Secret exists: used as it is, not created again.
        api.existing_generated_secret().await;
        let core = "/api/v1/namespaces/default";
        let cm = api.apply(&format!("{core}/configmaps/demo-config")).await;
        let ring: RingDocument =
            serde_json::from_str(cm["data"][RING_JSON_KEY].as_str().expect("ring.json"))
                .expect("ring document");
        assert_eq!(ring.ring.epoch, 2);
        assert!(
            ring.ring.member("demo-a-1").is_none(),
            "the leaving pod left the ring"
        );
        for name in ["demo-a", "demo-b", "demo-c", "demo"] {
            api.apply(&format!("{core}/services/{name}")).await;
        }
        let sts_a = api
            .apply("/apis/apps/v1/namespaces/default/statefulsets/demo-a")
            .await;
        assert_eq!(
            sts_a["spec"]["replicas"], 2,
            "does not shrink the StatefulSet until transfer is confirmed"
        );
        for name in ["demo-b", "demo-c"] {
            api.apply(&format!(
                "/apis/apps/v1/namespaces/default/statefulsets/{name}"
            ))
            .await;
        }
        let status = api.ring_published(&object).await;
        assert_eq!(status["status"]["rebalancing"]["epoch"], 2);
        api
    })
    .await;
    assert_eq!(action, Action::requeue(BUSY_REQUEUE));
    let published = ctx.nodes.published.lock().expect("lock").clone();
    assert_eq!(
        published,
        [
            ("demo-a-0.demo-a.default.svc:7001".to_string(), 2),
            // The leaving pod gets the ring too, so it stops coordinating
            // writes as an owner.
            ("demo-a-1.demo-a.default.svc:7001".to_string(), 2),
            ("demo-b-0.demo-b.default.svc:7001".to_string(), 2),
            ("demo-c-0.demo-c.default.svc:7001".to_string(), 2),
        ]
    );
    let tokens = ctx.nodes.tokens.lock().expect("lock").clone();
    assert_eq!(tokens.len(), 8, "4 reports, 4 rings: {tokens:?}");
    let admin = BearerToken::new(ADMIN_TOKEN.as_bytes()).expect("token");
    assert!(
        tokens
            .iter()
            .all(|(_, token)| token.as_ref() == Some(&admin)),
        "every admin call carries the generated Secret's admin-token: {tokens:?}"
    );
    assert!(
        ctx.nodes
            .cas
            .lock()
            .expect("lock")
            .iter()
            .all(Option::is_none),
        "no spec.tls, plain HTTP"
    );
}

fn event_created() -> Value {
    json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
           "metadata": {"name": "e"}, "eventTime": null})
}

#[tokio::test]
async fn a_named_legacy_auth_secret_is_mounted_and_its_token_goes_with_every_admin_call() {
    let (ring_json, nodes) = four_nodes_at_epoch_one();
    let c = with_auth(cluster(spec(&[("a", 1), ("b", 1), ("c", 1)])));
    let object = serde_json::to_value(&c).expect("json");
    let (action, ctx) = run(c, nodes, |mut api| async move {
        observe_four_nodes(&mut api, ring_json).await;
        // "czNjcmV0Cg==" is base64 of "s3cret\n".
        api.auth_secret(
            "custom-auth",
            Some(secret("custom-auth", json!({"token": "czNjcmV0Cg=="}))),
        )
        .await;
        for sts in api.objects_applied().await {
            let pod = &sts["spec"]["template"]["spec"];
            let env = pod["containers"][0]["env"].as_array().expect("env");
            assert!(
                env.contains(&json!({"name": "DYNAMO_AUTH_DIR", "value": "/etc/dynamo-auth"})),
                "{env:?}"
            );
            assert!(
                pod["volumes"].as_array().expect("volumes").contains(&json!(
                    {"name": "auth", "projected": {"sources": [{"secret": {"name": "custom-auth"}}]}}
                )),
                "{pod}"
            );
        }
        api.ring_published(&object).await;
        api
    })
    .await;
    assert_eq!(action, Action::requeue(BUSY_REQUEUE));
    let token = BearerToken::new(b"s3cret").expect("token");
    let tokens = ctx.nodes.tokens.lock().expect("lock").clone();
    let calls = |kind: &str| tokens.iter().filter(|(call, _)| *call == kind).count();
    assert_eq!((calls("transfers"), calls("ring")), (4, 4), "{tokens:?}");
    assert!(
        tokens.iter().all(|(_, t)| t.as_ref() == Some(&token)),
        "every admin call carries the legacy token: {tokens:?}"
    );
}

#[tokio::test]
async fn the_clients_secret_is_checked_and_projected_next_to_the_tokens() {
    let (ring_json, nodes) = four_nodes_at_epoch_one();
    let mut c = with_auth(cluster(spec(&[("a", 1), ("b", 1), ("c", 1)])));
    if let Some(auth) = c.spec.auth.as_mut() {
        auth.clients_secret_name = Some("demo-clients".into());
    }
    let object = serde_json::to_value(&c).expect("json");
    let (action, ctx) = run(c, nodes, |mut api| async move {
        observe_four_nodes(&mut api, ring_json).await;
        api.auth_secret(
            "custom-auth",
            Some(secret(
                "custom-auth",
                json!({"admin-token": STANDARD.encode("custom-adm1n"),
                       "peer-token": STANDARD.encode("custom-p33r")}),
            )),
        )
        .await;
        // "W10=" is base64 of "[]".
        api.auth_secret(
            "demo-clients",
            Some(secret("demo-clients", json!({"clients.json": "W10="}))),
        )
        .await;
        for sts in api.objects_applied().await {
            let volumes = sts["spec"]["template"]["spec"]["volumes"].clone();
            let auth = volumes
                .as_array()
                .expect("volumes")
                .iter()
                .find(|v| v["name"] == "auth")
                .cloned()
                .expect("auth volume");
            assert_eq!(
                auth,
                json!({"name": "auth", "projected": {"sources": [
                    {"secret": {"name": "custom-auth"}},
                    {"secret": {"name": "demo-clients",
                                "items": [{"key": "clients.json", "path": "clients.json"}]}}
                ]}})
            );
        }
        api.ring_published(&object).await;
        api
    })
    .await;
    assert_eq!(action, Action::requeue(BUSY_REQUEUE));
    let admin = BearerToken::new(b"custom-adm1n").expect("token");
    let tokens = ctx.nodes.tokens.lock().expect("lock").clone();
    assert_eq!(tokens.len(), 8, "{tokens:?}");
    assert!(
        tokens.iter().all(|(_, t)| t.as_ref() == Some(&admin)),
        "every admin call carries the admin-token: {tokens:?}"
    );
}

/// A blocked reconcile of the cluster `object` after observing it: the
/// status patch with `Degraded` for `reason` whose message contains
/// `mentions`, and the Warning event.
async fn blocked(api: &mut ApiServer, object: &Value, reason: &str, mentions: &str) {
    let status = api.status_patch(object).await;
    let conditions = status["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .clone();
    let get = |type_: &str| {
        conditions
            .iter()
            .find(|c| c["type"] == type_)
            .cloned()
            .unwrap_or_else(|| panic!("{type_} condition"))
    };
    assert_eq!(get("Ready")["status"], "False");
    assert_eq!(get("Degraded")["status"], "True");
    assert_eq!(get("Degraded")["reason"], reason);
    assert!(
        get("Degraded")["message"]
            .as_str()
            .expect("message")
            .contains(mentions),
        "{conditions:?}"
    );
    let (_, event) = api
        .answer(
            Method::POST,
            "/apis/events.k8s.io/v1/namespaces/default/events",
            StatusCode::CREATED,
            event_created(),
        )
        .await;
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], reason);
}

/// The reconcile of a cluster whose auth or clients Secret is unusable:
/// `answer` plays the Secret reads, then the cluster is blocked with
/// `reason` (its message containing `mentions`) and backs off without
/// calling a node.
async fn check_blocked<F>(
    c: DynamoCluster,
    reason: &'static str,
    mentions: &'static str,
    answer: impl FnOnce(ApiServer) -> F + Send + 'static,
) where
    F: Future<Output = ApiServer> + Send + 'static,
{
    let (ring_json, nodes) = four_nodes_at_epoch_one();
    let object = serde_json::to_value(&c).expect("json");
    let (action, ctx) = run(c, nodes, |mut api| async move {
        observe_four_nodes(&mut api, ring_json).await;
        let mut api = answer(api).await;
        blocked(&mut api, &object, reason, mentions).await;
        api
    })
    .await;
    assert_eq!(action, Action::requeue(backoff(1)));
    assert_eq!(
        ctx.failures.lock().expect("lock").get("default/demo"),
        Some(&1),
        "counted for the back-off"
    );
    assert!(
        ctx.nodes.tokens.lock().expect("lock").is_empty(),
        "no admin call without usable credentials"
    );
}

#[tokio::test]
async fn an_event_the_api_server_refuses_does_not_fail_the_reconcile() {
    let c = with_auth(cluster(spec(&[("a", 2), ("b", 1), ("c", 1)])));
    let (ring_json, nodes) = four_nodes_at_epoch_one();
    let object = serde_json::to_value(&c).expect("json");
    let (action, _) = run(c, nodes, |mut api| async move {
        observe_four_nodes(&mut api, ring_json).await;
        api.auth_secret("custom-auth", None).await;
        api.status_patch(&object).await;
        api.answer(
            Method::POST,
            "/apis/events.k8s.io/v1/namespaces/default/events",
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                   "message": "etcd is having a bad day", "code": 500}),
        )
        .await;
        api
    })
    .await;
    assert_eq!(
        action,
        Action::requeue(backoff(1)),
        "the status was written: the reconcile ends as a blocked one, not as an error"
    );
}

#[tokio::test]
async fn a_missing_auth_secret_sets_conditions_warns_and_backs_off_without_calling_nodes() {
    let c = with_auth(cluster(spec(&[("a", 2), ("b", 1), ("c", 1)])));
    check_blocked(
        c,
        "AuthSecretMissing",
        "\"custom-auth\"",
        |mut api| async move {
            api.auth_secret("custom-auth", None).await;
            api
        },
    )
    .await;
}

#[tokio::test]
async fn an_auth_secret_without_admin_and_peer_tokens_blocks_the_cluster() {
    let c = with_auth(cluster(spec(&[("a", 2), ("b", 1), ("c", 1)])));
    check_blocked(
        c,
        "AuthSecretMissing",
        "\"peer-token\"",
        |mut api| async move {
            api.auth_secret(
                "custom-auth",
                Some(secret(
                    "custom-auth",
                    json!({"admin-token": STANDARD.encode("adm1n"),
                       "client-token": STANDARD.encode("cl1ent")}),
                )),
            )
            .await;
            api
        },
    )
    .await;
}

#[tokio::test]
async fn a_generated_auth_secret_emptied_by_hand_blocks_the_cluster_and_is_not_overwritten() {
    let c = cluster(spec(&[("a", 2), ("b", 1), ("c", 1)]));
    check_blocked(
        c,
        "AuthSecretMissing",
        "\"demo-auth\"",
        |mut api| async move {
            api.auth_secret("demo-auth", Some(secret("demo-auth", json!({}))))
                .await;
            api
        },
    )
    .await;
}

#[tokio::test]
async fn the_generated_secret_of_a_deleted_cluster_of_the_same_name_is_waited_out() {
    let c = cluster(spec(&[("a", 2), ("b", 1), ("c", 1)]));
    check_blocked(
        c,
        "PreviousClusterAuthSecret",
        "garbage-collected",
        |mut api| async move {
            let mut previous = generated_secret();
            previous["metadata"]["ownerReferences"] = json!([{
                "apiVersion": "kv.dynamo.dev/v1alpha1", "kind": "DynamoCluster",
                "name": "demo", "uid": "uid-of-the-deleted-cluster", "controller": true
            }]);
            api.auth_secret("demo-auth", Some(previous)).await;
            api
        },
    )
    .await;
}

#[tokio::test]
async fn a_missing_clients_secret_or_clients_json_blocks_the_cluster() {
    for clients in [
        None,
        Some(secret("demo-clients", json!({"clients.yaml": "W10="}))),
    ] {
        let mut c = cluster(spec(&[("a", 2), ("b", 1), ("c", 1)]));
        c.spec.auth = Some(crate::crd::AuthSpec {
            secret_name: None,
            clients_secret_name: Some("demo-clients".into()),
        });
        let mentions = if clients.is_none() {
            "\"demo-clients\""
        } else {
            "\"clients.json\""
        };
        check_blocked(c, "ClientsSecretMissing", mentions, |mut api| async move {
            api.existing_generated_secret().await;
            api.auth_secret("demo-clients", clients).await;
            api
        })
        .await;
    }
}

const TLS_SECRET_PATH: &str = "/api/v1/namespaces/default/secrets/demo-tls";

/// A `kubernetes.io/tls` Secret `demo-tls` with `data` (base64 values).
fn tls_secret(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
           "metadata": {"name": "demo-tls", "namespace": "default"},
           "data": data})
}

#[tokio::test]
async fn the_tls_secret_is_read_and_its_ca_is_trusted_by_every_admin_call() {
    let (ring_json, nodes) = four_nodes_at_epoch_one();
    let c = with_tls(cluster(spec(&[("a", 1), ("b", 1), ("c", 1)])));
    let object = serde_json::to_value(&c).expect("json");
    let pem = TestCa::new("cluster CA").pem().to_string();
    let encoded = STANDARD.encode(&pem);
    let (action, ctx) = run(c, nodes, |mut api| async move {
        observe_four_nodes(&mut api, ring_json).await;
        api.existing_generated_secret().await;
        // "eA==" is base64 of "x": the node's files, not read by the operator.
        api.answer(
            Method::GET,
            TLS_SECRET_PATH,
            StatusCode::OK,
            tls_secret(json!({"tls.crt": "eA==", "tls.key": "eA==", "ca.crt": encoded})),
        )
        .await;
        for sts in api.objects_applied().await {
            let pod = &sts["spec"]["template"]["spec"];
            let container = &pod["containers"][0];
            let env = container["env"].as_array().expect("env");
            assert!(
                env.contains(&json!({"name": "DYNAMO_TLS_DIR", "value": "/etc/dynamo-tls"})),
                "{env:?}"
            );
            assert!(
                pod["volumes"]
                    .as_array()
                    .expect("volumes")
                    .contains(&json!({"name": "tls", "secret": {"secretName": "demo-tls"}})),
                "{pod}"
            );
            assert_eq!(container["readinessProbe"]["httpGet"]["scheme"], "HTTPS");
            assert_eq!(container["livenessProbe"]["httpGet"]["scheme"], "HTTPS");
        }
        api.ring_published(&object).await;
        api
    })
    .await;
    assert_eq!(action, Action::requeue(BUSY_REQUEUE));
    let ca = TrustedCa::from_pem(pem.as_bytes()).expect("CA");
    let cas = ctx.nodes.cas.lock().expect("lock").clone();
    assert_eq!(cas.len(), 8, "4 reports, 4 rings: {cas:?}");
    assert!(
        cas.iter().all(|c| c.as_ref() == Some(&ca)),
        "every admin call trusts the CA of the Secret: {cas:?}"
    );
}

#[tokio::test]
async fn a_tls_secret_without_ca_sets_conditions_warns_and_backs_off_without_calling_nodes() {
    let (ring_json, nodes) = four_nodes_at_epoch_one();
    let c = with_tls(cluster(spec(&[("a", 1), ("b", 1), ("c", 1)])));
    let object = serde_json::to_value(&c).expect("json");
    let (action, ctx) = run(c, nodes, |mut api| async move {
        observe_four_nodes(&mut api, ring_json).await;
        api.existing_generated_secret().await;
        api.answer(
            Method::GET,
            TLS_SECRET_PATH,
            StatusCode::OK,
            tls_secret(json!({"tls.crt": "eA==", "tls.key": "eA=="})),
        )
        .await;
        let status = api.status_patch(&object).await;
        let conditions = status["status"]["conditions"]
            .as_array()
            .expect("conditions")
            .clone();
        let degraded = conditions
            .iter()
            .find(|c| c["type"] == "Degraded")
            .expect("Degraded condition");
        assert_eq!(degraded["status"], "True");
        assert_eq!(degraded["reason"], "TlsSecretMissing");
        assert!(
            degraded["message"]
                .as_str()
                .expect("message")
                .contains("\"ca.crt\""),
            "{conditions:?}"
        );
        let (_, event) = api
            .answer(
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/default/events",
                StatusCode::CREATED,
                event_created(),
            )
            .await;
        assert_eq!(event["type"], "Warning");
        assert_eq!(event["reason"], "TlsSecretMissing");
        api
    })
    .await;
    assert_eq!(action, Action::requeue(backoff(1)));
    assert!(
        ctx.nodes.cas.lock().expect("lock").is_empty(),
        "no admin call without a usable CA"
    );
}
