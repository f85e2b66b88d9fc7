//! `members add|remove`: the plan (computed with the ring's own rebalancing,
//! as the node will), the change, and `--wait` following the transfers to
//! the end.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use dynamo_ring::{Member, Ring};
use reqwest::Method;
use serde_json::{Value, json};

use crate::Target;
use crate::client::CtlError;
use crate::cluster::{fetch_ring, fetch_transfers};
use crate::output::{Format, print};

/// A membership change.
#[derive(clap::Subcommand)]
pub enum Change {
    /// Add nodes started with `--join`: `ID=HOST:PORT[,ZONE]` (their
    /// internal address; zone `default` if none).
    Add {
        /// The nodes to add.
        #[arg(required = true)]
        nodes: Vec<String>,
        #[command(flatten)]
        apply: Apply,
    },
    /// Remove members by id.
    Remove {
        /// The members to remove.
        #[arg(required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        apply: Apply,
    },
}

/// Whether and how to carry a change out.
#[derive(clap::Args)]
pub struct Apply {
    /// Carry the change out (without it, only the plan is shown).
    #[arg(long)]
    yes: bool,
    /// Then wait until every member has received what it owns.
    #[arg(long)]
    wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

/// Plans, and with `--yes` applies (and with `--wait` follows), `change`.
pub async fn run(target: &Target, change: Change) -> Result<(), CtlError> {
    let doc = fetch_ring(target).await?;
    let (add, remove, apply) = match change {
        Change::Add { nodes, apply } => (parse_nodes(&nodes)?, Vec::new(), apply),
        Change::Remove { ids, apply } => (Vec::new(), ids, apply),
    };
    let next = planned_ring(&doc.ring, &add, &remove)?;
    show_plan(target.format, &doc.ring, &next);
    if !apply.yes {
        eprintln!("dynamoctl: nothing changed; add --yes to carry this out");
        return Ok(());
    }
    let body = json!({
        "add": add.iter().map(|(m, address)| json!({"id": m.id, "zone": m.zone, "address": address})).collect::<Vec<_>>(),
        "remove": remove,
    });
    let url = target.admin.url(&target.admin_address, "/v1/admin/members");
    let request = target.admin.request(Method::POST, &url).json(&body);
    let answer: Value = target
        .admin
        .send(&url, request)
        .await?
        .json()
        .await
        .map_err(|e| CtlError::Other(format!("{url}: unexpected answer: {e}")))?;
    let epoch = answer["epoch"].as_u64().unwrap_or(next.epoch);
    eprintln!(
        "dynamoctl: ring epoch {epoch} adopted, {} replicas to move",
        answer["moved_replicas"]
    );
    if apply.wait {
        let mut addresses = doc.addresses.clone();
        addresses.extend(add.iter().map(|(m, a)| (m.id.clone(), a.clone())));
        let members: BTreeMap<String, String> = next
            .members
            .iter()
            .filter_map(|m| Some((m.id.clone(), addresses.get(&m.id)?.clone())))
            .collect();
        wait_for_transfers(target, &members, epoch, Duration::from_secs(apply.timeout)).await?;
    }
    Ok(())
}

/// `ID=HOST:PORT[,ZONE]` specs as members with their addresses.
fn parse_nodes(specs: &[String]) -> Result<Vec<(Member, String)>, CtlError> {
    specs
        .iter()
        .map(|spec| {
            let (id, rest) = spec.split_once('=').ok_or_else(|| {
                CtlError::Other(format!("{spec:?}: expected ID=HOST:PORT[,ZONE]"))
            })?;
            let (address, zone) = rest.split_once(',').unwrap_or((rest, "default"));
            if id.is_empty() || address.is_empty() || zone.is_empty() {
                return Err(CtlError::Other(format!(
                    "{spec:?}: expected ID=HOST:PORT[,ZONE]"
                )));
            }
            Ok((Member::new(id, zone), address.to_string()))
        })
        .collect()
}

/// The ring the node will compute for the change (the same rebalancing).
fn planned_ring(
    ring: &Ring,
    add: &[(Member, String)],
    remove: &[String],
) -> Result<Ring, CtlError> {
    for id in remove {
        if ring.member(id).is_none() {
            return Err(CtlError::Other(format!("{id} is not a member")));
        }
    }
    let mut members: Vec<Member> = ring
        .members
        .iter()
        .filter(|m| !remove.contains(&m.id))
        .cloned()
        .collect();
    members.extend(add.iter().map(|(m, _)| m.clone()));
    ring.rebalance(members)
        .map_err(|e| CtlError::Other(format!("the change is not possible: {e}")))
}

/// Prints, per member, the replicas it owns before and after and what it
/// gains; and the total moved.
fn show_plan(format: Format, before: &Ring, after: &Ring) {
    let mut ids: Vec<&str> = before.members.iter().map(|m| m.id.as_str()).collect();
    ids.extend(after.members.iter().map(|m| m.id.as_str()));
    ids.sort();
    ids.dedup();
    let mut moved = 0;
    let mut rows = Vec::new();
    let mut plan = Vec::new();
    for id in ids {
        let old = before.partitions_of(id);
        let new = after.partitions_of(id);
        let gains = new.iter().filter(|p| old.binary_search(p).is_err()).count();
        moved += gains;
        rows.push(vec![
            id.to_string(),
            old.len().to_string(),
            new.len().to_string(),
            gains.to_string(),
        ]);
        plan.push(json!({"id": id, "before": old.len(), "after": new.len(), "gains": gains}));
    }
    let json = json!({"epoch": after.epoch, "moved_replicas": moved, "members": plan});
    print(format, &json, &["ID", "BEFORE", "AFTER", "GAINS"], &rows);
    if format == Format::Text {
        println!(
            "ring epoch {} -> {}: {moved} replicas move",
            before.epoch, after.epoch
        );
    }
}

/// Polls every member until each reports `epoch` with nothing pending,
/// showing progress (a bar on a terminal, a line every few seconds
/// otherwise).
async fn wait_for_transfers(
    target: &Target,
    members: &BTreeMap<String, String>,
    epoch: u64,
    timeout: Duration,
) -> Result<(), CtlError> {
    let started = Instant::now();
    let mut last_line = Instant::now();
    loop {
        let (mut done, mut pending, mut behind) = (0u64, 0u64, Vec::new());
        for (id, address) in members {
            match fetch_transfers(target, address).await {
                Ok(r) if r.epoch >= epoch => {
                    done += u64::from(r.done);
                    pending += u64::from(r.pending);
                    if r.pending > 0 {
                        behind.push(id.clone());
                    }
                }
                _ => behind.push(id.clone()),
            }
        }
        progress(done, done + pending, &behind, &mut last_line);
        if behind.is_empty() {
            eprintln!("\ndynamoctl: every member has received what it owns in epoch {epoch}");
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(CtlError::Other(format!(
                "timed out after {}s waiting for {behind:?}",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One progress report on stderr.
fn progress(done: u64, total: u64, behind: &[String], last_line: &mut Instant) {
    let stderr = std::io::stderr();
    if stderr.is_terminal() {
        let width = 30;
        let filled = (done * width).checked_div(total).unwrap_or(width) as usize;
        let bar = format!(
            "{}{}",
            "#".repeat(filled),
            ".".repeat(width as usize - filled)
        );
        let _ = write!(
            stderr.lock(),
            "\r[{bar}] {done}/{total} partitions received; waiting for {}   ",
            behind.len()
        );
    } else if last_line.elapsed() > Duration::from_secs(5) {
        eprintln!("{done}/{total} partitions received; waiting for {behind:?}");
        *last_line = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_specs_parse_with_an_optional_zone_and_refuse_nonsense() {
        let parsed = parse_nodes(&["n4=10.0.0.4:7001,b".into(), "n5=h:1".into()]).unwrap();
        assert_eq!(parsed[0], (Member::new("n4", "b"), "10.0.0.4:7001".into()));
        assert_eq!(parsed[1], (Member::new("n5", "default"), "h:1".into()));
        for bad in ["n4", "=h:1", "n4=", "n4=h:1,"] {
            assert!(parse_nodes(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_plan_is_the_nodes_rebalancing_and_refuses_unknown_members() {
        let members = ["a", "b", "c"].map(|id| Member::new(id, id)).to_vec();
        let ring = Ring::build(members, 3, 64).unwrap();
        let next = planned_ring(&ring, &[(Member::new("d", "d"), "x:1".into())], &[]).unwrap();
        assert_eq!(next.epoch, ring.epoch + 1);
        assert!(!next.partitions_of("d").is_empty());
        assert!(planned_ring(&ring, &[], &["zz".into()]).is_err());
        assert!(
            planned_ring(&ring, &[], &["a".into()]).is_err(),
            "fewer members than N"
        );
    }
}
