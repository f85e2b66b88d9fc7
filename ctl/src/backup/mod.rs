//! `dynamoctl backup`: create, list, describe, verify, restore and delete
//! backups on an S3-compatible object store or in a directory. What a
//! backup holds and how it is laid out: docs/backup.md.

mod chunk;
mod create;
mod layout;
mod progress;
mod restore;
mod store;

use clap::Subcommand;
use serde_json::json;

use crate::Target;
use crate::client::CtlError;
use crate::output::print;
use progress::Progress;
use store::{Store, TargetArgs};

/// Default records per chunk before compression: 32 MiB.
const CHUNK_MIB: u16 = 32;

/// A backup command.
#[derive(Subcommand)]
pub enum Command {
    /// Back up the cluster (or finish the backup of that id).
    Create {
        /// The backup's id (a DNS label); default: backup-<UTC time>.
        #[arg(long)]
        id: Option<String>,
        /// MiB of records per chunk before compression.
        #[arg(long, default_value_t = CHUNK_MIB, value_parser = clap::value_parser!(u16).range(1..=1024))]
        chunk_mib: u16,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// The backups on the target, complete or not.
    List {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// A backup's manifest: when, nodes, records, sizes.
    Describe {
        /// The backup's id.
        id: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Read every chunk of a backup and check it against its manifest.
    Verify {
        /// The backup's id.
        id: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Merge a backup's records into the cluster --node belongs to.
    Restore {
        /// The backup's id.
        id: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Delete a backup's objects (complete or not).
    Delete {
        /// The backup's id.
        id: String,
        #[command(flatten)]
        target: TargetArgs,
    },
}

/// Runs a backup command.
pub async fn run(target: &Target, command: Command) -> Result<(), CtlError> {
    match command {
        Command::Create {
            id,
            chunk_mib,
            target: args,
        } => {
            let store = Store::open(&args)?;
            let id = id.unwrap_or_else(default_id);
            let (progress, printer) = Progress::start("backup", target.format);
            let manifest =
                create::create(target, &store, &id, usize::from(chunk_mib) << 20, &progress)
                    .await?;
            drop(printer);
            print_done(target, "backed up", &manifest, &progress);
            Ok(())
        }
        Command::List { target: args } => list(target, &Store::open(&args)?).await,
        Command::Describe { id, target: args } => {
            let manifest = restore::manifest(&Store::open(&args)?, &id).await?;
            describe(target, &manifest);
            Ok(())
        }
        Command::Verify { id, target: args } => {
            let (progress, printer) = Progress::start("verify", target.format);
            let problems = restore::verify(&Store::open(&args)?, &id, &progress).await?;
            drop(printer);
            let (records, bytes) = progress.done();
            let json =
                json!({"id": id, "records": records, "raw_bytes": bytes, "problems": problems});
            let rows: Vec<Vec<String>> = problems.iter().map(|p| vec![p.clone()]).collect();
            match problems.is_empty() {
                true => print(
                    target.format,
                    &json,
                    &["OK"],
                    &[vec![format!("{id}: {records} records checked")]],
                ),
                false => print(target.format, &json, &["PROBLEM"], &rows),
            }
            match problems.is_empty() {
                true => Ok(()),
                false => Err(CtlError::Other(format!(
                    "backup {id} is damaged: {} problem(s)",
                    problems.len()
                ))),
            }
        }
        Command::Restore { id, target: args } => {
            let store = Store::open(&args)?;
            let (progress, printer) = Progress::start("restore", target.format);
            let manifest = restore::restore(target, &store, &id, &progress).await?;
            drop(printer);
            print_done(target, "restored", &manifest, &progress);
            Ok(())
        }
        Command::Delete { id, target: args } => {
            check_id(&id)?;
            let store = Store::open(&args)?;
            let names = store.list(&id).await?;
            for name in &names {
                store.delete(name).await?;
            }
            let json = json!({"id": id, "deleted_objects": names.len()});
            print(
                target.format,
                &json,
                &["DELETED"],
                &[vec![format!("{id}: {} objects", names.len())]],
            );
            Ok(())
        }
    }
}

/// `list`: every backup id on the target, complete or not.
async fn list(target: &Target, store: &Store) -> Result<(), CtlError> {
    let mut listed = Vec::new();
    for id in store.list_dirs().await? {
        let manifest = match store.get(&layout::manifest(&id)).await? {
            Some(bytes) => Some(create::parse::<layout::Manifest>(&bytes, &id)?),
            None => None,
        };
        listed.push(json!({
            "id": id,
            "complete": manifest.is_some(),
            "started_at_ms": manifest.as_ref().map(|m| m.started_at_ms),
            "finished_at_ms": manifest.as_ref().map(|m| m.finished_at_ms),
            "records": manifest.as_ref().map(|m| m.records),
            "stored_bytes": manifest.as_ref().map(|m| m.stored_bytes),
        }));
    }
    let rows: Vec<Vec<String>> = listed
        .iter()
        .map(|b| {
            vec![
                b["id"].as_str().unwrap_or_default().to_string(),
                match b["complete"].as_bool() {
                    Some(true) => "complete".into(),
                    _ => "incomplete".into(),
                },
                b["records"].to_string(),
                b["stored_bytes"].to_string(),
            ]
        })
        .collect();
    print(
        target.format,
        &json!({"backups": listed}),
        &["ID", "STATE", "RECORDS", "BYTES"],
        &rows,
    );
    Ok(())
}

/// `describe`: the manifest, whole as JSON, summed up as text.
fn describe(target: &Target, manifest: &layout::Manifest) {
    let rows: Vec<Vec<String>> = manifest
        .nodes
        .iter()
        .map(|(id, node)| {
            vec![
                id.clone(),
                node.records.to_string(),
                node.raw_bytes.to_string(),
                node.stored_bytes.to_string(),
                node.chunks.len().to_string(),
                node.partitions.len().to_string(),
                node.checkpoint.epoch.to_string(),
            ]
        })
        .collect();
    let json = serde_json::to_value(manifest).unwrap_or_default();
    print(
        target.format,
        &json,
        &[
            "NODE",
            "RECORDS",
            "RAW BYTES",
            "STORED BYTES",
            "CHUNKS",
            "PARTITIONS",
            "EPOCH",
        ],
        &rows,
    );
}

fn print_done(target: &Target, what: &str, manifest: &layout::Manifest, progress: &Progress) {
    let (records, bytes) = progress.done();
    let seconds = progress.elapsed();
    let json = json!({
        "id": manifest.id, "records": records, "raw_bytes": bytes,
        "stored_bytes": manifest.stored_bytes, "seconds": seconds,
        "records_per_sec": (records as f64 / seconds.max(1e-3)).round(),
        "mib_per_sec": bytes as f64 / 1048576.0 / seconds.max(1e-3),
    });
    let line = format!(
        "{what} {}: {records} records, {:.1} MiB ({:.1} MiB stored) in {seconds:.1} s",
        manifest.id,
        bytes as f64 / 1048576.0,
        manifest.stored_bytes as f64 / 1048576.0
    );
    print(target.format, &json, &["DONE"], &[vec![line]]);
}

/// Refuses an id that is not a DNS label.
fn check_id(id: &str) -> Result<(), CtlError> {
    dynamo_backup::check_id(id).map_err(|e| CtlError::Other(e.to_string()))
}

/// `backup-` and the UTC time (seconds since the epoch, in base 10).
fn default_id() -> String {
    format!("backup-{}", now_ms() / 1000)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}
