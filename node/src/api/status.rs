//! `GET /v1/status`: this node's view of itself and the cluster.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;

pub(super) async fn status(State(state): State<Arc<AppState>>) -> Json<Value> {
    let membership = state.coordinator.membership();
    let view = membership.view();
    let ring = view.ring();
    let me = membership.me();
    let heartbeats = state.tasks.gossip.heartbeats();
    let members: Vec<Value> = view
        .all()
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
        .collect();
    let owned = ring.partitions_of(me);
    let primary = ring.primary_partitions_of(me);
    let transfers = state.transfers.report();
    Json(json!({
        "node_id": me,
        "zone": state.zone,
        "member": view.peer(me).is_some(),
        "ring": {
            "epoch": ring.epoch,
            "partitions": ring.partitions,
            "replication": ring.replication,
        },
        "quorum": { "n": state.n, "r": state.r, "w": state.w },
        "members": members,
        "partitions_owned": {
            "replica": owned.len(),
            "primary": primary.len(),
            "list": owned,
        },
        "transfers": {
            "pending": transfers.pending,
            "done": transfers.done,
        },
        "hints": state.tasks.handoff.report(),
        "anti_entropy": state.tasks.anti_entropy.report(),
        "tombstones": state.tasks.tombstones.report(),
        "storage": state.coordinator.storage().write_health(),
    }))
}
