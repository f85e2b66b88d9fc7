//! `GET /v1/status`: this node's view of itself and the cluster. Concise by
//! default; `?partitions=true` adds the list of partitions this node holds,
//! `?ring=true` every partition's owners (what the status page draws).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use dynamo_ring::Ring;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::params::{QueryParams, flag, known};

pub(super) async fn status(
    State(state): State<Arc<AppState>>,
    query: QueryParams,
) -> Result<Json<Value>, ApiError> {
    let params = known(&query, &["partitions", "ring"])?;
    let with_partitions = flag(&params, "partitions")?;
    let with_ring = flag(&params, "ring")?;
    let membership = state.coordinator.membership();
    let view = membership.view();
    let ring = view.ring();
    let me = membership.me();
    let owned = ring.partitions_of(me);
    let primary = ring.primary_partitions_of(me);
    let mut partitions_owned = json!({
        "replica": owned.len(),
        "primary": primary.len(),
    });
    if with_partitions {
        partitions_owned["list"] = json!(owned);
    }
    let mut ring_entry = json!({
        "epoch": ring.epoch,
        "partitions": ring.partitions,
        "replication": ring.replication,
    });
    if with_ring {
        ring_entry["owners"] = owners(ring);
    }
    let transfers = state.transfers.report();
    Ok(Json(json!({
        "node_id": me,
        "zone": state.zone,
        "member": view.peer(me).is_some(),
        "node": node_entry(&state),
        "ring": ring_entry,
        "quorum": { "n": state.n, "r": state.r, "w": state.w },
        "members": members(&state),
        "partitions_owned": partitions_owned,
        "transfers": {
            "pending": transfers.pending,
            "done": transfers.done,
        },
        "hints": state.tasks.handoff.report(),
        "anti_entropy": state.tasks.anti_entropy.report(),
        "tombstones": state.tasks.tombstones.report(),
        "storage": state.coordinator.storage().write_health(),
    })))
}

/// Per partition, in partition order, the ids of its owners in preference
/// order (the first is the primary).
fn owners(ring: &Ring) -> Value {
    (0..ring.partitions)
        .map(|p| {
            let list = ring.preference_list(p);
            list.iter().map(|m| m.id.as_str()).collect::<Vec<_>>()
        })
        .collect()
}

/// This node in one object: who and where it is, its release and write
/// actor, the ring it uses and what it holds, receives and owes.
fn node_entry(state: &AppState) -> Value {
    let membership = state.coordinator.membership();
    let view = membership.view();
    let ring = view.ring();
    let me = membership.me();
    let storage = state.coordinator.storage();
    let transfers = state.transfers.report();
    json!({
        "id": me,
        "zone": state.zone,
        "address": state.address,
        "version": env!("CARGO_PKG_VERSION"),
        "actor": storage.actor(),
        "member": view.peer(me).is_some(),
        "ring_epoch": ring.epoch,
        "partitions": ring.partitions_of(me).len(),
        "primary_partitions": ring.primary_partitions_of(me).len(),
        "transfers_pending": transfers.pending,
        "transfers_done": transfers.done,
        "hints_pending": storage.hints_pending(),
        "writable": storage.write_health().writable,
    })
}

/// Every member as this node sees it.
fn members(state: &AppState) -> Vec<Value> {
    let membership = state.coordinator.membership();
    let view = membership.view();
    let ring = view.ring();
    let me = membership.me();
    let heartbeats = state.tasks.gossip.heartbeats();
    view.all()
        .map(|peer| {
            let id = &peer.member.id;
            let (state, last_heard_ms) = if id == me {
                (json!("alive"), json!(0))
            } else {
                let status = membership.liveness().status(id);
                (json!(status.state), json!(status.last_heard_ms))
            };
            json!({
                "id": id,
                "zone": peer.member.zone,
                "address": peer.address,
                "state": state,
                "last_heard_ms": last_heard_ms,
                "heartbeat": heartbeats.get(id),
                "partitions": ring.partitions_of(id).len(),
            })
        })
        .collect()
}
