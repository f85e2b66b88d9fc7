//! `status`, `ring` and `transfers`: the cluster as one node sees it, and
//! what each member reports about itself.

use dynamo_ring::{RingDocument, TransferReport};
use serde_json::{Value, json};

use crate::Target;
use crate::client::CtlError;
use crate::output::print;

/// The ring document the node at the admin address uses.
pub async fn fetch_ring(target: &Target) -> Result<RingDocument, CtlError> {
    target
        .admin
        .get_json(&target.admin_address, "/v1/admin/ring")
        .await
}

/// The transfer report of the member at `address`.
pub async fn fetch_transfers(target: &Target, address: &str) -> Result<TransferReport, CtlError> {
    target.admin.get_json(address, "/v1/admin/transfers").await
}

/// `dynamoctl status`: the node's view of every member, with the hints
/// each member holds when its admin routes answer.
pub async fn status(target: &Target) -> Result<(), CtlError> {
    let status: Value = target.client.get_json(&target.node, "/v1/status").await?;
    let members = status["members"].as_array().cloned().unwrap_or_default();
    let mut listed = Vec::new();
    for member in &members {
        let address = member["address"].as_str().unwrap_or_default();
        let hints = fetch_transfers(target, address)
            .await
            .ok()
            .map(|report| report.hints_pending);
        listed.push(json!({
            "id": member["id"],
            "state": member["state"],
            "zone": member["zone"],
            "partitions": member["partitions"],
            "hints": hints,
            "last_heard_ms": member["last_heard_ms"],
        }));
    }
    let rows = listed
        .iter()
        .map(|m| {
            vec![
                text(&m["id"]),
                text(&m["state"]),
                text(&m["zone"]),
                text(&m["partitions"]),
                text(&m["hints"]),
                last_heard(&m["last_heard_ms"]),
            ]
        })
        .collect::<Vec<_>>();
    let header = ["ID", "STATE", "ZONE", "PARTITIONS", "HINTS", "LAST HEARD"];
    print(
        target.format,
        &json!({"epoch": status["ring"]["epoch"], "members": listed}),
        &header,
        &rows,
    );
    Ok(())
}

/// `dynamoctl ring`: replicas and primaries per member, and the balance
/// (most replicas over fewest).
pub async fn ring(target: &Target) -> Result<(), CtlError> {
    let doc = fetch_ring(target).await?;
    let ring = &doc.ring;
    let total = (ring.partitions as usize * ring.replication).max(1);
    let owned: Vec<(String, String, usize, usize)> = ring
        .members
        .iter()
        .map(|m| {
            let replicas = ring.partitions_of(&m.id).len();
            let primaries = ring.primary_partitions_of(&m.id).len();
            (m.id.clone(), m.zone.clone(), replicas, primaries)
        })
        .collect();
    let most = owned.iter().map(|o| o.2).max().unwrap_or(0);
    let fewest = owned.iter().map(|o| o.2).min().unwrap_or(0).max(1);
    let balance = most as f64 / fewest as f64;
    let rows = owned
        .iter()
        .map(|(id, zone, replicas, primaries)| {
            let share = 100.0 * *replicas as f64 / total as f64;
            vec![
                id.clone(),
                zone.clone(),
                replicas.to_string(),
                primaries.to_string(),
                format!("{share:.1}%"),
            ]
        })
        .collect::<Vec<_>>();
    let members: Vec<Value> = owned
        .iter()
        .map(|(id, zone, replicas, primaries)| {
            json!({"id": id, "zone": zone, "replicas": replicas, "primaries": primaries})
        })
        .collect();
    let json = json!({
        "epoch": ring.epoch,
        "partitions": ring.partitions,
        "replication": ring.replication,
        "members": members,
        "balance": balance,
    });
    print(
        target.format,
        &json,
        &["ID", "ZONE", "REPLICAS", "PRIMARIES", "SHARE"],
        &rows,
    );
    if target.format == crate::output::Format::Text {
        println!(
            "epoch {}, {} partitions, N={}, balance (most/fewest replicas) {balance:.2}",
            ring.epoch, ring.partitions, ring.replication
        );
    }
    Ok(())
}

/// `dynamoctl transfers`: every member's transfer report (a member that
/// does not answer is listed with its error).
pub async fn transfers(target: &Target) -> Result<(), CtlError> {
    let doc = fetch_ring(target).await?;
    let mut reports = Vec::new();
    let mut rows = Vec::new();
    for (id, address) in &doc.addresses {
        match fetch_transfers(target, address).await {
            Ok(r) => {
                rows.push(vec![
                    id.clone(),
                    r.epoch.to_string(),
                    r.pending.to_string(),
                    r.done.to_string(),
                    r.retired.to_string(),
                    r.hints_pending.to_string(),
                ]);
                reports.push(json!({"node": id, "epoch": r.epoch, "pending": r.pending,
                    "done": r.done, "retired": r.retired, "hints_pending": r.hints_pending}));
            }
            Err(error) => {
                rows.push(vec![id.clone(), format!("error: {error}")]);
                reports.push(json!({"node": id, "error": error.to_string()}));
            }
        }
    }
    let header = ["NODE", "EPOCH", "PENDING", "DONE", "RETIRED", "HINTS"];
    print(target.format, &json!(reports), &header, &rows);
    Ok(())
}

/// A JSON scalar as a table cell (`-` for null).
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Milliseconds since last heard from, as people read it.
fn last_heard(value: &Value) -> String {
    match value.as_u64() {
        Some(ms) if ms < 1000 => format!("{ms}ms"),
        Some(ms) => format!("{:.1}s", ms as f64 / 1000.0),
        None => "-".into(),
    }
}
