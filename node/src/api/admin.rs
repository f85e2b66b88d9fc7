//! Admin routes: publish a ring, add or remove members, follow transfers,
//! compare Merkle roots. Documented in `docs/api.md`.
//!
//! Parsing, validating, computing and adopting a ring take up to seconds
//! for the largest rings, so the ring routes do that work on a blocking
//! thread: the async runtime goes on answering health checks and requests.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dynamo_ring::{Member, RingDocument, TransferReport};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState};
use crate::ring_adoption::AdoptError;

/// Largest `PUT /v1/admin/ring` body, in bytes: 16 MiB. The JSON of the
/// largest ring (4,096 members with long ids and their addresses, 65,536
/// partitions of 16 owners) is about 10 MiB; the limit of client values
/// (`--max-value-bytes`) does not apply to it.
const MAX_RING_BODY_BYTES: usize = 16 << 20;

/// `PUT /v1/admin/ring`: adopt a published ring if it is newer.
pub(super) async fn put_ring(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_ring_body(&headers, body).await?;
    off_runtime(move || publish_ring(&state, &bytes)).await
}

/// The body of a ring publication, at most [`MAX_RING_BODY_BYTES`].
async fn read_ring_body(headers: &HeaderMap, body: Body) -> Result<bytes::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "ring_too_large",
            format!("a ring document holds at most {MAX_RING_BODY_BYTES} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_RING_BODY_BYTES as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_RING_BODY_BYTES)
        .await
        .map_err(|e| {
            let over_limit = std::error::Error::source(&e)
                .is_some_and(|cause| cause.is::<http_body_util::LengthLimitError>());
            if over_limit {
                too_large()
            } else {
                ApiError::bad_request("invalid_ring", format!("reading the ring: {e}"))
            }
        })
}

/// Runs `work` on a blocking thread.
async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the ring work stopped: {e}"),
        )
    })?
}

/// Parses the ring document in `body` and adopts it if it is newer.
fn publish_ring(state: &AppState, body: &[u8]) -> Result<Response, ApiError> {
    let doc: RingDocument = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_ring", format!("parsing the ring: {e}")))?;
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
    let adopted = adopt(state, doc)?;
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
    off_runtime(move || apply_change(&state, change)).await
}

/// Rebalances the current ring to the members `change` leaves and adopts
/// the result.
fn apply_change(state: &AppState, change: MemberChange) -> Result<Response, ApiError> {
    if change.add.is_empty() && change.remove.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_change",
            "name members to add or remove",
        ));
    }
    let view = state.coordinator.membership().view();
    let current = view.doc();
    let mut members: BTreeMap<String, Member> = current
        .ring
        .members
        .iter()
        .map(|m| (m.id.clone(), m.clone()))
        .collect();
    let mut addresses: BTreeMap<String, String> = current.addresses.clone();
    for id in &change.remove {
        if members.remove(id).is_none() {
            return Err(ApiError::bad_request(
                "unknown_member",
                format!("{id} is not a member"),
            ));
        }
        addresses.remove(id);
    }
    for new in change.add {
        if members.contains_key(&new.id) {
            return Err(ApiError::bad_request(
                "duplicate_member",
                format!("{} is already a member", new.id),
            ));
        }
        members.insert(new.id.clone(), Member::new(new.id.clone(), new.zone));
        addresses.insert(new.id, new.address);
    }
    let ring = current
        .ring
        .rebalance(members.into_values().collect())
        .map_err(|e| ApiError::bad_request("invalid_change", e.to_string()))?;
    let moved = current.ring.moved_replicas(&ring);
    let doc = RingDocument { ring, addresses };
    let epoch = doc.ring.epoch;
    adopt(state, doc)?;
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
        AdoptError::Storage(e) => e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of `chunks` chunks of 1 MiB, with no `Content-Length`.
    fn chunked(chunks: usize) -> Body {
        let chunk = bytes::Bytes::from(vec![b' '; 1 << 20]);
        let stream =
            futures::stream::iter((0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
        Body::from_stream(stream)
    }

    #[tokio::test]
    async fn a_chunked_ring_body_over_the_limit_is_too_large() {
        let error = read_ring_body(&HeaderMap::new(), chunked(17))
            .await
            .expect_err("over the limit");
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("error body");
        assert!(String::from_utf8_lossy(&body).contains("\"ring_too_large\""));
        let body = read_ring_body(&HeaderMap::new(), chunked(16))
            .await
            .expect("at the limit");
        assert_eq!(body.len(), MAX_RING_BODY_BYTES);
    }
}
