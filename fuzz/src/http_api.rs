//! The node's HTTP API in-process: the client router merged with the
//! internal one, as a node serves them on one listener, over a one-member
//! cluster whose RocksDB store sits in a temporary directory (under
//! `TMPDIR`). The wiring follows `server::serve`, without listeners and
//! without starting the periodic tasks, so no request leaves the process.
//!
//! A request may change the node's ring (`PUT /v1/admin/ring`,
//! `POST /v1/admin/members`). After such a request the node is built
//! afresh: every input meets the same one-member ring, and a ring naming
//! other members (at addresses the fuzzer wrote) never routes a request
//! anywhere.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use dynamo_node::api::{self, AppState};
use dynamo_node::config::{NodeConfig, ServeArgs};
use dynamo_node::coordinator::Coordinator;
use dynamo_node::membership::Membership;
use dynamo_node::metrics::Metrics;
use dynamo_node::ring_adoption::RingAdoption;
use dynamo_node::rpc_handler::RpcHandler;
use dynamo_node::server;
use dynamo_node::storage::{Storage, StorageOptions, meta};
use dynamo_node::transfer::Transfers;
use dynamo_node::transport::{Dialing, Transport};
use dynamo_ring::RingDocument;
use http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::{runtime, verbose};

/// The one member's id.
pub const NODE_ID: &str = "fuzz-a";

/// Largest value the node takes: small, so that the fuzzer reaches the
/// limit with inputs of a few KB.
pub const MAX_VALUE_BYTES: usize = 1024;

/// A running node's routers and what decides when to rebuild it.
struct Node {
    router: Router,
    state: Arc<AppState>,
    ring: RingDocument,
    /// Removes the data directory when the node is rebuilt.
    _dir: tempfile::TempDir,
}

impl Node {
    fn build() -> Node {
        let dir = tempfile::Builder::new()
            .prefix("dynamo-fuzz-node-")
            .tempdir()
            .expect("creating the node's data directory");
        let config = ServeArgs {
            node_id: Some(NODE_ID.into()),
            data_dir: Some(dir.path().to_path_buf()),
            listen: Some("127.0.0.1:9".parse().expect("address")),
            peers: vec![format!("{NODE_ID}=127.0.0.1:9,z1")],
            n: Some(1),
            r: Some(1),
            w: Some(1),
            partitions: Some(16),
            max_value_bytes: Some(MAX_VALUE_BYTES),
            request_timeout_ms: Some(200),
            block_cache_mb: Some(1),
            ..ServeArgs::default()
        }
        .resolve()
        .expect("the fuzzing node's configuration");
        let (state, rpc) = wire(&config).expect("wiring the fuzzing node");
        let ring = state.coordinator.membership().view().doc().clone();
        let guard = api::auth::PeerGuard {
            credentials: None,
            certificate: false,
        };
        let router = api::client_router(state.clone(), None, true)
            .merge(api::stream_router(rpc, guard));
        Node {
            router,
            state,
            ring,
            _dir: dir,
        }
    }

    /// Whether a request changed what the next input would meet.
    fn drifted(&self) -> bool {
        *self.state.coordinator.membership().view().doc() != self.ring
    }
}

/// The node's state and RPC handler, built as `server::serve` builds them.
fn wire(config: &NodeConfig) -> anyhow::Result<(Arc<AppState>, Arc<RpcHandler>)> {
    let initial = config.initial_ring()?;
    let options = StorageOptions {
        fsync: false,
        block_cache_bytes: config.block_cache_bytes,
        partitions: initial.ring.partitions,
    };
    let storage = Arc::new(Storage::open(&config.data_dir, &options)?);
    meta::claim_for(&storage, &config.node_id)?;
    let dialing = Dialing::for_node(config);
    let membership = Arc::new(Membership::new(config.node_id.clone(), initial.clone()));
    let transfers = Arc::new(Transfers::new(
        storage.clone(),
        membership.clone(),
        dialing.clone(),
        config.maintenance.transfer_keys_per_sec,
    )?);
    let rings = Arc::new(RingAdoption::new(
        storage.clone(),
        membership.clone(),
        transfers.clone(),
    ));
    rings.adopt(initial)?;
    rings.persist_current()?;
    let coordinator = Coordinator::new(
        storage.clone(),
        membership.clone(),
        Arc::new(Transport::dialing(dialing.clone())),
        config.read_repair_chance,
    );
    let tasks =
        server::maintenance_tasks(config, &storage, &membership, &rings, &transfers, &dialing);
    let metrics = Metrics::default();
    let rpc = Arc::new(RpcHandler::new(
        coordinator.clone(),
        transfers.clone(),
        tasks.gossip.clone(),
        config.request_timeout,
        metrics.clone(),
    ));
    let state = Arc::new(AppState::new(
        coordinator,
        config,
        rings,
        transfers,
        tasks,
        metrics,
    ));
    Ok((state, rpc))
}

fn node() -> &'static Mutex<Option<Node>> {
    static NODE: Mutex<Option<Node>> = Mutex::new(None);
    &NODE
}

/// Parses `data` as an HTTP/1.1 request (request line, headers, a blank
/// line, then the body: all bytes after it); `None` when it is not one a
/// server would hand to the router.
pub fn parse_request(data: &[u8]) -> Option<http::Request<Body>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(head_len) = parsed.parse(data).ok()? else {
        return None;
    };
    let method = Method::from_bytes(parsed.method?.as_bytes()).ok()?;
    let uri: Uri = parsed.path?.parse().ok()?;
    let body = &data[head_len..];
    let mut request = http::Request::builder().method(method).uri(uri);
    for header in parsed.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes()).ok()?;
        // The server frames the body; its length is what arrived.
        if name == http::header::CONTENT_LENGTH || name == http::header::TRANSFER_ENCODING {
            continue;
        }
        request = request.header(name, HeaderValue::from_bytes(header.value).ok()?);
    }
    if !body.is_empty() {
        request = request.header(http::header::CONTENT_LENGTH, body.len());
    }
    request.body(Body::from(body.to_vec())).ok()
}

/// Sends the request in `data` (if it is one) to the node and reads the
/// whole response. Panics on a 500: no request may make the node fail.
pub fn handle(data: &[u8]) {
    let Some(request) = parse_request(data) else {
        return;
    };
    let description = format!("{} {}", request.method(), request.uri());
    let mut slot = node()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let node = slot.get_or_insert_with(Node::build);
    let router = node.router.clone();
    let (status, body) = runtime().block_on(async move {
        let response = router
            .oneshot(request)
            .await
            .expect("routers are infallible");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        (status, body)
    });
    if verbose() {
        eprintln!(
            "{description} -> {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{description} answered 500: {}",
        String::from_utf8_lossy(&body)
    );
    if node.drifted() {
        *slot = None;
    }
}
