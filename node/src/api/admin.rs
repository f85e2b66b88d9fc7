//! Admin routes: publish a ring, add or remove members, follow transfers,
//! compare Merkle roots. Documented in `docs/api.md`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dynamo_ring::{Member, RingDocument, TransferReport};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState};
use crate::ring_adoption::AdoptError;

/// `PUT /v1/admin/ring`: adopt a published ring if it is newer.
pub(super) async fn put_ring(
    State(state): State<Arc<AppState>>,
    body: Result<Json<RingDocument>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(doc) = body.map_err(|e| ApiError::bad_request("invalid_ring", e.body_text()))?;
    let epoch = doc.ring.epoch;
    let current = state.coordinator.membership().view();
    if epoch < current.epoch() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "stale_ring",
            format!(
                "this node already uses ring epoch {}, newer than {epoch}",
                current.epoch()
            ),
        ));
    }
    let same = doc == *current.doc();
    let adopted = adopt(&state, doc)?;
    if !adopted && !same {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflicting_ring",
            format!("a different ring with epoch {epoch} is already in use"),
        ));
    }
    let now = state.coordinator.membership().view().epoch();
    Ok(Json(json!({ "epoch": now, "adopted": adopted })).into_response())
}

/// `GET /v1/admin/ring`: the ring document in use.
pub(super) async fn get_ring(State(state): State<Arc<AppState>>) -> Json<RingDocument> {
    Json(state.coordinator.membership().view().doc().clone())
}

/// A member to add.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewMember {
    id: String,
    #[serde(default = "default_zone")]
    zone: String,
    address: String,
}

fn default_zone() -> String {
    crate::config::defaults::ZONE.to_string()
}

/// Body of `POST /v1/admin/members`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MemberChange {
    #[serde(default)]
    add: Vec<NewMember>,
    #[serde(default)]
    remove: Vec<String>,
}

/// `POST /v1/admin/members`: computes the next ring (minimal movement)
/// with members added and removed, adopts it and lets gossip spread it.
pub(super) async fn change_members(
    State(state): State<Arc<AppState>>,
    body: Result<Json<MemberChange>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(change) = body.map_err(|e| ApiError::bad_request("invalid_change", e.body_text()))?;
    if change.add.is_empty() && change.remove.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_change",
            "name members to add or remove",
        ));
    }
    let view = state.coordinator.membership().view();
    let current = view.doc();
    let mut members: Vec<Member> = current.ring.members.clone();
    let mut addresses: BTreeMap<String, String> = current.addresses.clone();
    for id in &change.remove {
        if !members.iter().any(|m| &m.id == id) {
            return Err(ApiError::bad_request(
                "unknown_member",
                format!("{id} is not a member"),
            ));
        }
        members.retain(|m| &m.id != id);
        addresses.remove(id);
    }
    for new in change.add {
        if members.iter().any(|m| m.id == new.id) {
            return Err(ApiError::bad_request(
                "duplicate_member",
                format!("{} is already a member", new.id),
            ));
        }
        members.push(Member::new(new.id.clone(), new.zone));
        addresses.insert(new.id, new.address);
    }
    let ring = current
        .ring
        .rebalance(members)
        .map_err(|e| ApiError::bad_request("invalid_change", e.to_string()))?;
    let moved = current.ring.moved_replicas(&ring);
    let doc = RingDocument { ring, addresses };
    let epoch = doc.ring.epoch;
    adopt(&state, doc)?;
    Ok(Json(json!({ "epoch": epoch, "moved_replicas": moved })).into_response())
}

/// `GET /v1/admin/transfers`: what this node still has to receive.
pub(super) async fn transfers(State(state): State<Arc<AppState>>) -> Json<TransferReport> {
    Json(state.transfers.report())
}

/// `GET /v1/admin/merkle`: Merkle roots of the partitions this node owns.
pub(super) async fn merkle(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let membership = state.coordinator.membership();
    let view = membership.view();
    let forest = state.coordinator.storage().forest();
    let roots: BTreeMap<String, String> = view
        .ring()
        .partitions_of(membership.me())
        .into_iter()
        .map(|p| (p.to_string(), format!("{:016x}", forest.root(p))))
        .collect();
    Json(json!({ "epoch": view.epoch(), "roots": roots }))
}

fn adopt(state: &AppState, doc: RingDocument) -> Result<bool, ApiError> {
    state.rings.adopt(doc).map_err(|error| match error {
        AdoptError::Invalid(e) => ApiError::bad_request("invalid_ring", e.to_string()),
        AdoptError::Storage(e) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        }
    })
}
