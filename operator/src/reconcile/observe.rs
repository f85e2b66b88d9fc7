//! Observe: read everything a decision needs into a plain [`World`] — the
//! zone StatefulSets, the node pods, the published ring, the admin token
//! of the auth Secret (or fresh credentials for `<cluster>-auth` when the
//! operator is to create it), the clients Secret, the CA of `spec.tls` and
//! what every ready node reports about its transfers.

use std::collections::{BTreeMap, BTreeSet};

use dynamo_ring::{RingDocument, TransferReport};
use futures::future::join_all;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use rustls::pki_types::UnixTime;

use super::Error;
use super::certificate::{CertificateCheck, check_certificate};
use super::claims::{ClaimState, claim_states, grow_patch, previous_claims};
use crate::crd::DynamoClusterSpec;
use crate::node_client::{BearerToken, CaError, NodeAdmin, TokenError, TrustedCa};
use crate::quantity;
use crate::resources::auth::{
    ADMIN_TOKEN_KEY, CLIENT_TOKEN_KEY, CLIENTS_JSON_KEY, GeneratedCredentials, LEGACY_TOKEN_KEY,
    PEER_TOKEN_KEY, auth_secret_name,
};
use crate::resources::configmap::{INITIAL_CLUSTER_STATE_KEY, RING_JSON_KEY};
use crate::resources::statefulset::{applied_template_hash, pod_zone};
use crate::resources::{ClusterRef, REPLACE_ANNOTATION, REVISION_LABEL};

/// A zone StatefulSet as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatefulSetState {
    /// Zone (from the zone label).
    pub zone: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// Size requested by the `data` volume claim template.
    pub storage_size: Option<String>,
    /// Storage class of the `data` claim template (`None`: the default).
    pub storage_class: Option<String>,
    /// `status.updateRevision`: the revision of the current template.
    pub update_revision: Option<String>,
    /// Hash of the pod template the operator last applied.
    pub template_hash: Option<String>,
    /// Whether the StatefulSet controller has seen its latest spec
    /// (`status.observedGeneration` is `metadata.generation`).
    pub controller_caught_up: bool,
}

/// A node pod as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodState {
    /// Pod name, also the ring member id.
    pub name: String,
    /// Zone (from the zone label).
    pub zone: String,
    /// StatefulSet ordinal.
    pub ordinal: i32,
    /// Whether the `Ready` condition is true.
    pub ready: bool,
    /// Whether the pod is being deleted.
    pub terminating: bool,
    /// StatefulSet revision the pod was created from.
    pub revision: Option<String>,
    /// Why the pod cannot run, when Kubernetes says so: it cannot be
    /// scheduled, or its container is waiting in a back-off.
    pub problem: Option<String>,
    /// Marked for replacement on a new volume ([`REPLACE_ANNOTATION`]).
    pub replace: bool,
}

impl PodState {
    /// Whether the pod is Ready and not being deleted.
    pub fn is_ready(&self) -> bool {
        self.ready && !self.terminating
    }
}

/// How the operator authenticates to the nodes' admin API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminAuth {
    /// The admin token of the auth Secret (its `admin-token`, else its
    /// legacy `token`).
    Token(BearerToken),
    /// `spec.auth` names no Secret and `<cluster>-auth` does not exist yet:
    /// apply creates it with `credentials`, whose admin token is `token`.
    Generate {
        /// The tokens of the Secret to create.
        credentials: GeneratedCredentials,
        /// Its admin token.
        token: BearerToken,
    },
    /// The auth or clients Secret cannot be used.
    Unusable(AuthProblem),
}

/// Why the auth Secret gives no usable credentials, or the clients Secret
/// no `clients.json`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthProblem {
    /// The auth Secret named by `spec.auth.secretName` does not exist.
    #[error("Secret {0:?} named by spec.auth.secretName does not exist in the cluster's namespace")]
    SecretMissing(String),
    /// The auth Secret lacks the admin or the peer token.
    #[error(
        "auth Secret {0:?} must hold the keys \"admin-token\" and \"peer-token\", or the legacy key \"token\" (which serves every role whose own key is absent)"
    )]
    KeyMissing(String),
    /// A token of the auth Secret cannot be sent as a bearer token.
    #[error("key {key:?} of auth Secret {secret:?} is unusable: {problem}")]
    BadToken {
        /// Secret name.
        secret: String,
        /// The key holding the token.
        key: &'static str,
        /// What is wrong with the value.
        problem: TokenError,
    },
    /// Two role keys of the auth Secret hold the same token, which the
    /// nodes refuse.
    #[error(
        "keys {first:?} and {second:?} of auth Secret {secret:?} hold the same token; nodes refuse to start with a token shared by two roles"
    )]
    SharedToken {
        /// Secret name.
        secret: String,
        /// One key holding the token.
        first: &'static str,
        /// Another key holding it.
        second: &'static str,
    },
    /// The generated auth Secret `<cluster>-auth` belongs to a deleted
    /// cluster of the same name and is about to be garbage-collected.
    #[error(
        "Secret {0:?} belongs to a deleted DynamoCluster of the same name and is being garbage-collected; new credentials are generated once it is gone"
    )]
    PreviousClusterSecret(String),
    /// The clients Secret named by `spec.auth.clientsSecretName` does not
    /// exist.
    #[error(
        "Secret {0:?} named by spec.auth.clientsSecretName does not exist in the cluster's namespace"
    )]
    ClientsSecretMissing(String),
    /// The clients Secret has no `clients.json`.
    #[error("Secret {0:?} named by spec.auth.clientsSecretName has no key \"clients.json\"")]
    ClientsKeyMissing(String),
}

impl AuthProblem {
    /// `PascalCase` reason for conditions and events.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthProblem::SecretMissing(_) | AuthProblem::KeyMissing(_) => "AuthSecretMissing",
            AuthProblem::BadToken { .. } | AuthProblem::SharedToken { .. } => "AuthTokenInvalid",
            AuthProblem::PreviousClusterSecret(_) => "PreviousClusterAuthSecret",
            AuthProblem::ClientsSecretMissing(_) | AuthProblem::ClientsKeyMissing(_) => {
                "ClientsSecretMissing"
            }
        }
    }
}

/// Keys of the `spec.tls` Secret: the node's certificate chain and private
/// key (read by the node only) and the CA that signed every node
/// certificate (read by the node and the operator).
pub const TLS_KEYS: [&str; 3] = ["tls.crt", "tls.key", TLS_CA_KEY];

/// Key of the `spec.tls` Secret holding the CA the admin calls trust.
pub const TLS_CA_KEY: &str = "ca.crt";

/// How the operator reaches the nodes' admin API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NodeTls {
    /// No `spec.tls`: plain HTTP.
    #[default]
    Plain,
    /// HTTPS, trusting the `ca.crt` of the `spec.tls` Secret.
    Ca(TrustedCa),
    /// `spec.tls` names a Secret the operator cannot use.
    Unusable(TlsProblem),
}

impl NodeTls {
    /// The CA to trust, if the cluster has TLS.
    pub fn ca(&self) -> Option<&TrustedCa> {
        match self {
            NodeTls::Ca(ca) => Some(ca),
            NodeTls::Plain | NodeTls::Unusable(_) => None,
        }
    }
}

/// Why the `spec.tls` Secret gives no usable CA (or lacks what the nodes
/// need).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TlsProblem {
    /// The Secret does not exist.
    #[error("Secret {0:?} named by spec.tls does not exist in the cluster's namespace")]
    SecretMissing(String),
    /// The Secret lacks one of [`TLS_KEYS`].
    #[error("Secret {secret:?} named by spec.tls has no key {key:?}")]
    KeyMissing {
        /// Secret name.
        secret: String,
        /// The missing key.
        key: &'static str,
    },
    /// The `ca.crt` value is not a usable CA.
    #[error("key \"ca.crt\" of Secret {secret:?} named by spec.tls is unusable: {problem}")]
    BadCa {
        /// Secret name.
        secret: String,
        /// What is wrong with the value.
        problem: CaError,
    },
}

impl TlsProblem {
    /// `PascalCase` reason for conditions and events.
    pub fn reason(&self) -> &'static str {
        match self {
            TlsProblem::SecretMissing(_) | TlsProblem::KeyMissing { .. } => "TlsSecretMissing",
            TlsProblem::BadCa { .. } => "TlsCaInvalid",
        }
    }
}

/// Everything observed about one cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct World {
    /// Zone StatefulSets by zone.
    pub statefulsets: BTreeMap<String, StatefulSetState>,
    /// Node pods, by name order.
    pub pods: Vec<PodState>,
    /// The ring in the ConfigMap, if any.
    pub ring: Option<RingDocument>,
    /// The ConfigMap already tells starting nodes that the cluster exists
    /// (`initial-cluster-state: existing`).
    pub formed: bool,
    /// Transfer reports of ready pods that answered, by pod name.
    pub reports: BTreeMap<String, TransferReport>,
    /// Credentials of the admin API.
    pub auth: AdminAuth,
    /// Transport of the admin API.
    pub tls: NodeTls,
    /// With a usable `spec.tls` Secret: whether peers accept its
    /// certificate.
    pub certificate: Option<CertificateCheck>,
    /// Volume claims a zone StatefulSet would adopt that a deleted cluster
    /// of the same name left (see [`super::claims`]).
    pub previous_claims: Vec<String>,
    /// The claims of the cluster's zone StatefulSets.
    pub claims: Vec<ClaimState>,
    /// Why the API server refuses to grow a claim to `spec.storage.size`
    /// (asked with a dry run while some claim is smaller), if it does.
    pub expansion_refusal: Option<String>,
}

impl World {
    /// Names of the pods that are Ready and not being deleted.
    pub fn ready_pods(&self) -> BTreeSet<String> {
        self.pods
            .iter()
            .filter(|p| p.is_ready())
            .map(|p| p.name.clone())
            .collect()
    }

    /// `spec.replicas` of every zone StatefulSet, by zone.
    pub fn statefulset_replicas(&self) -> BTreeMap<String, i32> {
        self.statefulsets
            .iter()
            .map(|(zone, s)| (zone.clone(), s.replicas))
            .collect()
    }

    /// `status.updateRevision` of every zone StatefulSet that has one, by
    /// zone.
    pub fn update_revisions(&self) -> BTreeMap<String, String> {
        self.statefulsets
            .iter()
            .filter_map(|(zone, s)| s.update_revision.clone().map(|r| (zone.clone(), r)))
            .collect()
    }
}

/// Reads the StatefulSets, pods, ConfigMap, the auth Secret, the clients
/// and `tls` Secrets (when the spec names them) and node reports of
/// `cluster`.
///
/// Without a usable token the nodes are not asked: they would answer 401
/// (so neither while the auth Secret is still to be generated); without a
/// usable CA neither: the calls could not check who answers.
pub async fn observe<N: NodeAdmin>(
    client: &kube::Client,
    nodes: &N,
    cluster: &ClusterRef,
    spec: &DynamoClusterSpec,
    created: Option<&Time>,
) -> Result<World, Error> {
    let ns = cluster.namespace.as_str();
    let selected = ListParams::default().labels(&cluster.node_selector_string());
    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), ns)
        .list(&selected)
        .await?
        .items
        .iter()
        .filter_map(statefulset_state)
        .map(|s| (s.zone.clone(), s))
        .collect();
    let mut pods: Vec<PodState> = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&selected)
        .await?
        .items
        .iter()
        .filter_map(pod_state)
        .collect();
    pods.sort_by(|a, b| a.name.cmp(&b.name));
    let (ring, formed) = read_ring(client, cluster).await?;
    let claims = observe_claims(client, cluster, spec, &statefulsets, created).await?;
    let previous_claims = previous_claims(&claims, &cluster.owner.uid);
    let expansion_refusal = expansion_refusal(client, cluster, spec, &claims).await;
    let auth = read_auth(client, cluster, spec).await?;
    let (tls, certificate) = match &spec.tls {
        None => (NodeTls::Plain, None),
        Some(reference) => {
            let secret = read_secret(client, ns, &reference.secret_name).await?;
            let tls = node_tls(&reference.secret_name, secret.as_ref());
            let check = match (&tls, &secret) {
                (NodeTls::Ca(_), Some(secret)) => Some(certificate_of(secret)),
                _ => None,
            };
            (tls, check)
        }
    };
    let reports = match (&auth, &tls) {
        (AdminAuth::Token(token), NodeTls::Plain | NodeTls::Ca(_)) => {
            read_reports(nodes, token, tls.ca(), cluster, &pods).await
        }
        _ => BTreeMap::new(),
    };
    Ok(World {
        statefulsets,
        pods,
        ring,
        formed,
        reports,
        auth,
        tls,
        certificate,
        previous_claims,
        claims,
        expansion_refusal,
    })
}

/// The ring in the cluster's ConfigMap (`None`: no ConfigMap or no ring
/// in it yet), and whether the ConfigMap says the cluster has formed.
async fn read_ring(
    client: &kube::Client,
    cluster: &ClusterRef,
) -> Result<(Option<RingDocument>, bool), Error> {
    let config_map = Api::<ConfigMap>::namespaced(client.clone(), &cluster.namespace)
        .get_opt(&cluster.config_map_name())
        .await?;
    let data = config_map.as_ref().and_then(|cm| cm.data.as_ref());
    let formed = data
        .and_then(|d| d.get(INITIAL_CLUSTER_STATE_KEY))
        .is_some_and(|state| state == "existing");
    let Some(json) = data.and_then(|d| d.get(RING_JSON_KEY)) else {
        return Ok((None, formed));
    };
    serde_json::from_str(json)
        .map(|ring| (Some(ring), formed))
        .map_err(|source| Error::RingDocument {
            config_map: cluster.config_map_name(),
            source,
        })
}

/// The admin credentials of `cluster`: from its auth Secret, or fresh ones
/// when `spec.auth` names no Secret and `<cluster>-auth` does not exist;
/// unusable when the clients Secret `spec.auth` names gives no
/// `clients.json`.
async fn read_auth(
    client: &kube::Client,
    cluster: &ClusterRef,
    spec: &DynamoClusterSpec,
) -> Result<AdminAuth, Error> {
    let ns = cluster.namespace.as_str();
    let configured = spec.auth.as_ref();
    let name = auth_secret_name(cluster, configured);
    let secret = read_secret(client, ns, &name).await?;
    let named = configured.is_some_and(|a| a.secret_name.is_some());
    let auth = match secret {
        None if !named => generated_auth(&name, GeneratedCredentials::random()),
        Some(secret) if !named && owned_by_previous_cluster(&secret, cluster) => {
            AdminAuth::Unusable(AuthProblem::PreviousClusterSecret(name))
        }
        secret => admin_auth(&name, secret.as_ref()),
    };
    let clients = configured.and_then(|a| a.clients_secret_name.as_deref());
    match (auth, clients) {
        (auth @ AdminAuth::Unusable(_), _) | (auth, None) => Ok(auth),
        (auth, Some(clients)) => {
            let secret = read_secret(client, ns, clients).await?;
            Ok(match clients_problem(clients, secret.as_ref()) {
                Some(problem) => AdminAuth::Unusable(problem),
                None => auth,
            })
        }
    }
}

/// The Secret `name` in namespace `ns` (`None`: not found).
async fn read_secret(client: &kube::Client, ns: &str, name: &str) -> Result<Option<Secret>, Error> {
    Ok(Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?)
}

/// The claims the zone StatefulSets of the spec (and of zones only the
/// cluster still has) make or would adopt.
async fn observe_claims(
    client: &kube::Client,
    cluster: &ClusterRef,
    spec: &DynamoClusterSpec,
    statefulsets: &BTreeMap<String, StatefulSetState>,
    created: Option<&Time>,
) -> Result<Vec<ClaimState>, Error> {
    let zones: Vec<String> = spec
        .zones
        .iter()
        .map(|z| z.name.clone())
        .chain(statefulsets.keys().cloned())
        .collect::<BTreeSet<String>>()
        .into_iter()
        .collect();
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &cluster.namespace)
        .list(&ListParams::default())
        .await?
        .items;
    Ok(claim_states(&claims, cluster, &zones, created))
}

/// With a claim of this cluster asking for less than `spec.storage.size`:
/// whether the API server would refuse to grow it (a dry run of the
/// change; a StorageClass without `allowVolumeExpansion` is refused).
async fn expansion_refusal(
    client: &kube::Client,
    cluster: &ClusterRef,
    spec: &DynamoClusterSpec,
    claims: &[ClaimState],
) -> Option<String> {
    let wanted = quantity::amount(&spec.storage.size.0)?;
    let smaller = claims.iter().find(|c| {
        !c.terminating
            && !c.is_previous(&cluster.owner.uid)
            && c.requested
                .as_deref()
                .and_then(quantity::amount)
                .is_some_and(|size| size < wanted)
    })?;
    let change = grow_patch(&spec.storage.size.0);
    let params = PatchParams {
        dry_run: true,
        ..PatchParams::default()
    };
    match Api::<PersistentVolumeClaim>::namespaced(client.clone(), &cluster.namespace)
        .patch(&smaller.name, &params, &Patch::Merge(&change))
        .await
    {
        Ok(_) => None,
        Err(kube::Error::Api(status)) => Some(format!("{}: {}", smaller.name, status.message)),
        Err(error) => {
            tracing::warn!(%error, claim = %smaller.name, "could not ask whether the claim can grow");
            None
        }
    }
}

/// Whether peers accept the certificate of the `spec.tls` Secret now
/// (warned about in the log when they do not).
fn certificate_of(secret: &Secret) -> CertificateCheck {
    let value = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map_or(&[][..], |v| v.0.as_slice())
    };
    let check = check_certificate(
        value("tls.crt"),
        value("tls.key"),
        value(TLS_CA_KEY),
        UnixTime::now(),
    );
    if !check.valid || check.reason == "ExpiresSoon" {
        tracing::warn!(
            secret = secret.metadata.name.as_deref().unwrap_or_default(),
            reason = check.reason,
            "{}",
            check.message
        );
    }
    check
}

/// The admin transport from the `tls` Secret `name` (`None`: not found).
fn node_tls(name: &str, secret: Option<&Secret>) -> NodeTls {
    let Some(secret) = secret else {
        return NodeTls::Unusable(TlsProblem::SecretMissing(name.to_string()));
    };
    let data = secret.data.as_ref();
    if let Some(key) = TLS_KEYS
        .into_iter()
        .find(|key| data.is_none_or(|d| !d.contains_key(*key)))
    {
        return NodeTls::Unusable(TlsProblem::KeyMissing {
            secret: name.to_string(),
            key,
        });
    }
    let pem = data.and_then(|d| d.get(TLS_CA_KEY)).map(|v| v.0.as_slice());
    match TrustedCa::from_pem(pem.unwrap_or_default()) {
        Ok(ca) => NodeTls::Ca(ca),
        Err(problem) => NodeTls::Unusable(TlsProblem::BadCa {
            secret: name.to_string(),
            problem,
        }),
    }
}

/// Whether `secret` is owned by another cluster of `cluster`'s kind and
/// name: one deleted and created again, whose dependents the garbage
/// collector is removing.
fn owned_by_previous_cluster(secret: &Secret, cluster: &ClusterRef) -> bool {
    let owner = &cluster.owner;
    secret.metadata.owner_references.iter().flatten().any(|r| {
        r.api_version == owner.api_version
            && r.kind == owner.kind
            && r.name == owner.name
            && r.uid != owner.uid
    })
}

/// The admin credentials from the auth Secret `name` (`None`: not found).
fn admin_auth(name: &str, secret: Option<&Secret>) -> AdminAuth {
    let Some(secret) = secret else {
        return AdminAuth::Unusable(AuthProblem::SecretMissing(name.to_string()));
    };
    let empty = BTreeMap::new();
    match admin_token(name, secret.data.as_ref().unwrap_or(&empty)) {
        Ok(token) => AdminAuth::Token(token),
        Err(problem) => AdminAuth::Unusable(problem),
    }
}

/// The credentials to put into the auth Secret `name`, checked as the
/// Secret will be read.
fn generated_auth(name: &str, credentials: GeneratedCredentials) -> AdminAuth {
    match admin_token(name, &credentials.data()) {
        Ok(token) => AdminAuth::Generate { credentials, token },
        Err(problem) => AdminAuth::Unusable(problem),
    }
}

/// The admin token of the auth Secret `name` holding `data`, as the node
/// reads its directory: each role's own key, else the legacy `token`.
/// Both the admin and the peer token must be there and usable.
fn admin_token(
    name: &str,
    data: &BTreeMap<String, ByteString>,
) -> Result<BearerToken, AuthProblem> {
    let role = |key: &'static str| {
        [key, LEGACY_TOKEN_KEY]
            .into_iter()
            .find_map(|k| data.get(k).map(|value| (k, value)))
            .ok_or_else(|| AuthProblem::KeyMissing(name.to_string()))
    };
    let token = |(key, value): (&'static str, &ByteString)| {
        BearerToken::new(&value.0).map_err(|problem| AuthProblem::BadToken {
            secret: name.to_string(),
            key,
            problem,
        })
    };
    let admin = token(role(ADMIN_TOKEN_KEY)?)?;
    token(role(PEER_TOKEN_KEY)?)?;
    match shared_token(data) {
        Some((first, second)) => Err(AuthProblem::SharedToken {
            secret: name.to_string(),
            first,
            second,
        }),
        None => Ok(admin),
    }
}

/// Two role keys of `data` holding the same token (surrounding whitespace
/// trimmed), if any.
fn shared_token(data: &BTreeMap<String, ByteString>) -> Option<(&'static str, &'static str)> {
    let present: Vec<(&'static str, &[u8])> = [ADMIN_TOKEN_KEY, PEER_TOKEN_KEY, CLIENT_TOKEN_KEY]
        .into_iter()
        .filter_map(|key| data.get(key).map(|value| (key, value.0.trim_ascii())))
        .collect();
    present.iter().enumerate().find_map(|(i, (first, value))| {
        present[i + 1..]
            .iter()
            .find(|(_, other)| other == value)
            .map(|(second, _)| (*first, *second))
    })
}

/// Why the clients Secret `name` (`None`: not found) is unusable, if it is.
fn clients_problem(name: &str, secret: Option<&Secret>) -> Option<AuthProblem> {
    let Some(secret) = secret else {
        return Some(AuthProblem::ClientsSecretMissing(name.to_string()));
    };
    let has_key = secret
        .data
        .as_ref()
        .is_some_and(|d| d.contains_key(CLIENTS_JSON_KEY));
    (!has_key).then(|| AuthProblem::ClientsKeyMissing(name.to_string()))
}

/// Asks every ready pod for its transfer report; a node that does not
/// answer is left out (and so counts as not complete).
async fn read_reports<N: NodeAdmin>(
    nodes: &N,
    token: &BearerToken,
    ca: Option<&TrustedCa>,
    cluster: &ClusterRef,
    pods: &[PodState],
) -> BTreeMap<String, TransferReport> {
    let asked: Vec<&PodState> = pods.iter().filter(|p| p.is_ready()).collect();
    let answers = join_all(asked.iter().map(|p| {
        let address = cluster.pod_address(&p.zone, &p.name);
        async move { nodes.transfers(&address, Some(token), ca).await }
    }))
    .await;
    asked
        .into_iter()
        .zip(answers)
        .filter_map(|(pod, answer)| match answer {
            Ok(report) => Some((pod.name.clone(), report)),
            Err(error) => {
                tracing::warn!(pod = %pod.name, %error, "no transfer report");
                None
            }
        })
        .collect()
}

fn statefulset_state(sts: &StatefulSet) -> Option<StatefulSetState> {
    let zone = pod_zone(sts.metadata.labels.as_ref()?)?.to_string();
    let status = sts.status.as_ref();
    Some(StatefulSetState {
        zone,
        replicas: sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        storage_size: data_claim(sts)
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.clone()),
        storage_class: data_claim(sts).and_then(|s| s.storage_class_name.clone()),
        update_revision: status.and_then(|s| s.update_revision.clone()),
        template_hash: applied_template_hash(sts).map(str::to_string),
        controller_caught_up: status.and_then(|s| s.observed_generation) >= sts.metadata.generation,
    })
}

/// The spec of a StatefulSet's `data` claim template.
fn data_claim(sts: &StatefulSet) -> Option<&k8s_openapi::api::core::v1::PersistentVolumeClaimSpec> {
    sts.spec
        .as_ref()?
        .volume_claim_templates
        .as_ref()?
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some("data"))?
        .spec
        .as_ref()
}

fn pod_state(pod: &Pod) -> Option<PodState> {
    let name = pod.metadata.name.clone()?;
    let labels = pod.metadata.labels.as_ref()?;
    let zone = pod_zone(labels)?.to_string();
    let ordinal = name.rsplit_once('-')?.1.parse().ok()?;
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
    Some(PodState {
        name,
        zone,
        ordinal,
        ready,
        terminating: pod.metadata.deletion_timestamp.is_some(),
        revision: labels.get(REVISION_LABEL).cloned(),
        problem: pod_problem(pod),
        replace: pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REPLACE_ANNOTATION))
            .is_some_and(|value| value == "true"),
    })
}

/// What keeps a pod from running, as Kubernetes reports it: an
/// `Unschedulable` scheduling condition, or a container waiting for a
/// reason other than starting (`CrashLoopBackOff`, `ImagePullBackOff`,
/// `CreateContainerConfigError`, ...).
fn pod_problem(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let unschedulable = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    });
    if let Some(condition) = unschedulable {
        return Some(format!(
            "unschedulable: {}",
            condition.message.as_deref().unwrap_or("no node fits")
        ));
    }
    status
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
        .find(|w| {
            w.reason
                .as_deref()
                .is_some_and(|r| r != "ContainerCreating" && r != "PodInitializing")
        })
        .map(|w| {
            let reason = w.reason.as_deref().unwrap_or_default();
            match w.message.as_deref() {
                Some(message) => format!("{reason}: {message}"),
                None => reason.to_string(),
            }
        })
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use dynamo_testkit::pki::TestCa;

    use super::*;
    use crate::resources::fixtures::cluster_ref;

    #[test]
    fn pods_are_read_with_zone_ordinal_readiness_and_revision() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "demo-a-12",
                "labels": {"kv.dynamo.dev/zone": "a", "controller-revision-hash": "demo-a-7f"}
            },
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .expect("pod");
        assert_eq!(
            pod_state(&pod),
            Some(PodState {
                name: "demo-a-12".into(),
                zone: "a".into(),
                ordinal: 12,
                ready: true,
                terminating: false,
                revision: Some("demo-a-7f".into()),
                problem: None,
                replace: false,
            })
        );
    }

    #[test]
    fn an_unschedulable_or_crash_looping_pod_says_why() {
        let pending: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "demo-a-0", "labels": {"kv.dynamo.dev/zone": "a"}},
            "status": {"conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
            }]}
        }))
        .expect("pod");
        assert_eq!(
            pod_state(&pending).and_then(|p| p.problem).as_deref(),
            Some(
                "unschedulable: 0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
            )
        );
        let looping: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "demo-a-0", "labels": {"kv.dynamo.dev/zone": "a"}},
            "status": {"containerStatuses": [{
                "name": "node", "image": "dynamo:1", "imageID": "", "ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}}
            }]}
        }))
        .expect("pod");
        assert_eq!(
            pod_state(&looping).and_then(|p| p.problem).as_deref(),
            Some("CrashLoopBackOff: back-off 40s restarting failed container")
        );
        let starting: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "demo-a-0", "labels": {"kv.dynamo.dev/zone": "a"}},
            "status": {"containerStatuses": [{
                "name": "node", "image": "dynamo:1", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}}
            }]}
        }))
        .expect("pod");
        assert_eq!(pod_state(&starting).and_then(|p| p.problem), None);
    }

    fn secret(data: serde_json::Value) -> Secret {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "custom-auth"},
            "data": data
        }))
        .expect("secret")
    }

    fn token(raw: &str) -> BearerToken {
        BearerToken::new(raw.as_bytes()).expect("token")
    }

    #[test]
    fn the_admin_token_comes_from_admin_token_and_the_legacy_token_serves_missing_roles() {
        // base64 of "adm1n\n", "p33r", "s3cret\n".
        let (admin, peer, legacy) = ("YWRtMW4K", "cDMzcg==", "czNjcmV0Cg==");
        let cases = [
            (
                serde_json::json!({"admin-token": admin, "peer-token": peer}),
                "adm1n",
            ),
            (
                serde_json::json!({"admin-token": admin, "peer-token": peer, "token": legacy}),
                "adm1n",
            ),
            (serde_json::json!({"token": legacy}), "s3cret"),
            (
                serde_json::json!({"peer-token": peer, "token": legacy}),
                "s3cret",
            ),
            (
                serde_json::json!({"admin-token": admin, "token": legacy}),
                "adm1n",
            ),
        ];
        for (data, expected) in cases {
            let auth = admin_auth("custom-auth", Some(&secret(data.clone())));
            assert_eq!(auth, AdminAuth::Token(token(expected)), "{data}");
        }
    }

    #[test]
    fn an_auth_secret_without_admin_and_peer_tokens_is_reported_not_used() {
        assert_eq!(
            admin_auth("custom-auth", None),
            AdminAuth::Unusable(AuthProblem::SecretMissing("custom-auth".into()))
        );
        for data in [
            serde_json::json!({"password": "czNjcmV0"}),
            serde_json::json!({"admin-token": "YWRtMW4K"}),
            serde_json::json!({"peer-token": "cDMzcg==", "client-token": "czNjcmV0"}),
        ] {
            let auth = admin_auth("custom-auth", Some(&secret(data.clone())));
            assert_eq!(
                auth,
                AdminAuth::Unusable(AuthProblem::KeyMissing("custom-auth".into())),
                "{data}"
            );
        }
        let problem = AuthProblem::KeyMissing("custom-auth".into());
        assert_eq!(problem.reason(), "AuthSecretMissing");
        let message = problem.to_string();
        for key in [
            "\"admin-token\"",
            "\"peer-token\"",
            "\"token\"",
            "\"custom-auth\"",
        ] {
            assert!(message.contains(key), "{message}");
        }
    }

    #[test]
    fn a_blank_admin_or_peer_token_is_reported_with_its_key() {
        // "IAo=" is base64 of " \n".
        for (data, key) in [
            (
                serde_json::json!({"admin-token": "IAo=", "peer-token": "cDMzcg=="}),
                "admin-token",
            ),
            (
                serde_json::json!({"admin-token": "YWRtMW4K", "peer-token": "IAo="}),
                "peer-token",
            ),
            (serde_json::json!({"token": "IAo="}), "token"),
        ] {
            let problem = AuthProblem::BadToken {
                secret: "custom-auth".into(),
                key,
                problem: TokenError::Empty,
            };
            assert_eq!(problem.reason(), "AuthTokenInvalid");
            assert_eq!(
                admin_auth("custom-auth", Some(&secret(data))),
                AdminAuth::Unusable(problem)
            );
        }
    }

    #[test]
    fn role_keys_sharing_a_token_are_reported_as_the_nodes_refuse_them() {
        // "YWRtMW4K" is base64 of "adm1n\n", "YWRtMW4=" of "adm1n".
        let shared = admin_auth(
            "custom-auth",
            Some(&secret(serde_json::json!({
                "admin-token": "YWRtMW4K", "peer-token": "cDMzcg==", "client-token": "YWRtMW4="
            }))),
        );
        assert_eq!(
            shared,
            AdminAuth::Unusable(AuthProblem::SharedToken {
                secret: "custom-auth".into(),
                first: "admin-token",
                second: "client-token",
            })
        );
        let AdminAuth::Unusable(problem) = shared else {
            panic!("unusable")
        };
        assert_eq!(problem.reason(), "AuthTokenInvalid");
        let legacy_for_two_roles = admin_auth(
            "custom-auth",
            Some(&secret(
                serde_json::json!({"token": "YWRtMW4K", "client-token": "cDMzcg=="}),
            )),
        );
        assert_eq!(legacy_for_two_roles, AdminAuth::Token(token("adm1n")));
    }

    fn secret_owned_by(uid: &str) -> Secret {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "demo-auth", "ownerReferences": [{
                "apiVersion": "kv.dynamo.dev/v1alpha1", "kind": "DynamoCluster",
                "name": "demo", "uid": uid, "controller": true
            }]}
        }))
        .expect("secret")
    }

    #[test]
    fn a_generated_secret_of_a_deleted_cluster_of_the_same_name_is_recognised() {
        let cluster = cluster_ref();
        assert!(owned_by_previous_cluster(
            &secret_owned_by("uid-before"),
            &cluster
        ));
        assert!(!owned_by_previous_cluster(
            &secret_owned_by("uid-demo"),
            &cluster
        ));
        assert!(
            !owned_by_previous_cluster(&secret(serde_json::json!({})), &cluster),
            "a Secret made by hand is used as it is"
        );
        assert_eq!(
            AuthProblem::PreviousClusterSecret("demo-auth".into()).reason(),
            "PreviousClusterAuthSecret"
        );
    }

    #[test]
    fn generated_credentials_give_their_admin_token() {
        let credentials = GeneratedCredentials::random();
        let admin = credentials.data()[ADMIN_TOKEN_KEY].0.clone();
        let expected = BearerToken::new(&admin).expect("token");
        match generated_auth("demo-auth", credentials.clone()) {
            AdminAuth::Generate {
                credentials: kept,
                token,
            } => {
                assert_eq!(kept, credentials);
                assert_eq!(token, expected);
            }
            other => panic!("expected Generate, got {other:?}"),
        }
    }

    #[test]
    fn a_clients_secret_must_exist_and_hold_clients_json() {
        assert_eq!(
            clients_problem("demo-clients", None),
            Some(AuthProblem::ClientsSecretMissing("demo-clients".into()))
        );
        let without_key = clients_problem(
            "demo-clients",
            Some(&secret(serde_json::json!({"clients.yaml": "W10="}))),
        );
        assert_eq!(
            without_key,
            Some(AuthProblem::ClientsKeyMissing("demo-clients".into()))
        );
        let problem = without_key.expect("problem");
        assert_eq!(problem.reason(), "ClientsSecretMissing");
        assert!(
            problem.to_string().contains("\"clients.json\""),
            "{problem}"
        );
        // "W10=" is base64 of "[]".
        assert_eq!(
            clients_problem(
                "demo-clients",
                Some(&secret(serde_json::json!({"clients.json": "W10="})))
            ),
            None
        );
    }

    fn tls_secret(data: serde_json::Value) -> Secret {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "demo-tls"},
            "type": "kubernetes.io/tls",
            "data": data
        }))
        .expect("secret")
    }

    #[test]
    fn the_ca_comes_from_the_tls_secret_key_ca_crt() {
        let ca = STANDARD.encode(TestCa::new("test CA").pem());
        // "eA==" is base64 of "x": the node's files, not read here.
        let tls = node_tls(
            "demo-tls",
            Some(&tls_secret(
                serde_json::json!({"tls.crt": "eA==", "tls.key": "eA==", "ca.crt": ca}),
            )),
        );
        let expected = {
            let pem = STANDARD.decode(&ca).expect("base64");
            TrustedCa::from_pem(&pem).expect("CA")
        };
        assert_eq!(tls, NodeTls::Ca(expected.clone()));
        assert_eq!(tls.ca(), Some(&expected));
        assert_eq!(NodeTls::Plain.ca(), None);
    }

    #[test]
    fn a_missing_tls_secret_key_or_bad_ca_is_reported_not_used() {
        let missing = node_tls("demo-tls", None);
        assert_eq!(
            missing,
            NodeTls::Unusable(TlsProblem::SecretMissing("demo-tls".into()))
        );
        assert_eq!(missing.ca(), None);
        let ca = STANDARD.encode(TestCa::new("test CA").pem());
        let without_ca = node_tls(
            "demo-tls",
            Some(&tls_secret(
                serde_json::json!({"tls.crt": "eA==", "tls.key": "eA=="}),
            )),
        );
        assert_eq!(
            without_ca,
            NodeTls::Unusable(TlsProblem::KeyMissing {
                secret: "demo-tls".into(),
                key: "ca.crt"
            })
        );
        let without_key = node_tls(
            "demo-tls",
            Some(&tls_secret(
                serde_json::json!({"tls.crt": "eA==", "ca.crt": ca}),
            )),
        );
        assert_eq!(
            without_key,
            NodeTls::Unusable(TlsProblem::KeyMissing {
                secret: "demo-tls".into(),
                key: "tls.key"
            })
        );
        let NodeTls::Unusable(problem) = &without_key else {
            panic!("unusable")
        };
        assert_eq!(problem.reason(), "TlsSecretMissing");
        assert!(
            problem.to_string().contains("no key \"tls.key\""),
            "{problem}"
        );
        let bad_ca = node_tls(
            "demo-tls",
            Some(&tls_secret(
                serde_json::json!({"tls.crt": "eA==", "tls.key": "eA==", "ca.crt": "eA=="}),
            )),
        );
        assert_eq!(
            bad_ca,
            NodeTls::Unusable(TlsProblem::BadCa {
                secret: "demo-tls".into(),
                problem: CaError::NoCertificate
            })
        );
        let NodeTls::Unusable(problem) = &bad_ca else {
            panic!("unusable")
        };
        assert_eq!(problem.reason(), "TlsCaInvalid");
    }

    #[test]
    fn a_pod_without_zone_label_is_ignored() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "demo-a-0", "labels": {}}
        }))
        .expect("pod");
        assert_eq!(pod_state(&pod), None);
    }
}
