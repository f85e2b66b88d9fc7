//! `dynamoctl backup`: create, list, describe, verify, restore and delete
//! backups on an S3-compatible object store or in a directory. What a
//! backup holds and how it is laid out: docs/backup.md.

mod progress;
mod target;

use std::sync::Arc;

use clap::Subcommand;
use dynamo_backup::driver::create::{self, Cluster};
use dynamo_backup::driver::layout::{self, Manifest};
use dynamo_backup::driver::nodes::Admin;
use dynamo_backup::driver::progress::Progress;
use dynamo_backup::driver::restore;
use dynamo_backup::driver::store::Store;
use dynamo_backup::driver::{DriverError, now_ms};
use serde_json::json;

use crate::Target;
use crate::client::CtlError;
use crate::output::print;
use progress::Printer;
use target::TargetArgs;

/// Default records per chunk before compression: 32 MiB.
const CHUNK_MIB: u16 = 32;

/// A backup command.
#[derive(Subcommand)]
pub enum Command {
    /// Back up the cluster (or finish the backup of that id).
    Create {
        /// The backup's id (a DNS label); default: backup-SECONDS (the Unix time).
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
            let store = args.open()?;
            let id = id.unwrap_or_else(default_id);
            let admin = admin(target)?;
            let cluster = Cluster {
                admin: &admin,
                seed: &target.admin_address,
            };
            let (progress, printer) = start("backup", target);
            let chunk_bytes = usize::from(chunk_mib) << 20;
            let manifest = create::create(&cluster, &store, &id, chunk_bytes, &progress).await?;
            drop(printer);
            print_done(target, "backed up", &manifest, &progress);
            Ok(())
        }
        Command::List { target: args } => list(target, &args.open()?).await,
        Command::Describe { id, target: args } => {
            let manifest = restore::manifest(&args.open()?, &id).await?;
            describe(target, &manifest);
            Ok(())
        }
        Command::Verify { id, target: args } => verify(target, &id, &args).await,
        Command::Restore { id, target: args } => {
            let store = args.open()?;
            let admin = admin(target)?;
            let (progress, printer) = start("restore", target);
            let manifest =
                restore::restore(&admin, &target.admin_address, &store, &id, &progress).await?;
            drop(printer);
            print_done(target, "restored", &manifest, &progress);
            Ok(())
        }
        Command::Delete { id, target: args } => {
            check_id(&id)?;
            let store = args.open()?;
            let names = store.list(&id).await?;
            for name in &names {
                store.delete(name).await?;
            }
            let json = json!({"id": id, "deleted_objects": names.len()});
            let line = format!("{id}: {} objects", names.len());
            print(target.format, &json, &["DELETED"], &[vec![line]]);
            Ok(())
        }
    }
}

/// The admin routes' client of the driver, with dynamoctl's admin token
/// and CA.
fn admin(target: &Target) -> Result<Admin, CtlError> {
    let ca = match &target.ca {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| CtlError::Other(format!("reading CA file {}: {e}", path.display())))?,
        ),
        None => None,
    };
    Ok(Admin::new(target.admin_token.clone(), ca.as_deref())?)
}

/// Progress of `what`, printed to stderr while the printer lives, notes at
/// once.
fn start(what: &'static str, target: &Target) -> (Arc<Progress>, Printer) {
    let progress = Arc::new(Progress::new(|note| eprintln!("{note}")));
    let printer = Printer::start(what, progress.clone(), target.format);
    (progress, printer)
}

/// `verify`: every chunk re-read and checked; each problem listed.
async fn verify(target: &Target, id: &str, args: &TargetArgs) -> Result<(), CtlError> {
    let (progress, printer) = start("verify", target);
    let problems = restore::verify(&args.open()?, id, &progress).await?;
    drop(printer);
    let report = progress.report();
    let json = json!({"id": id, "records": report.records, "raw_bytes": report.bytes,
                      "problems": problems});
    match problems.is_empty() {
        true => {
            let line = format!("{id}: {} records checked", report.records);
            print(target.format, &json, &["OK"], &[vec![line]]);
            Ok(())
        }
        false => {
            let rows: Vec<Vec<String>> = problems.iter().map(|p| vec![p.clone()]).collect();
            print(target.format, &json, &["PROBLEM"], &rows);
            Err(CtlError::Other(format!(
                "backup {id} is damaged: {} problem(s)",
                problems.len()
            )))
        }
    }
}

/// `list`: every backup id on the target, complete or not.
async fn list(target: &Target, store: &Store) -> Result<(), CtlError> {
    let mut listed = Vec::new();
    for id in store.list_dirs().await? {
        let manifest = match store.get(&layout::manifest(&id)).await? {
            Some(bytes) => Some(create::parse::<Manifest>(&bytes, &id)?),
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
fn describe(target: &Target, manifest: &Manifest) {
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

fn print_done(target: &Target, what: &str, manifest: &Manifest, progress: &Progress) {
    let report = progress.report();
    let seconds = report.seconds;
    let json = json!({
        "id": manifest.id, "records": report.records, "raw_bytes": report.bytes,
        "stored_bytes": manifest.stored_bytes, "seconds": seconds,
        "records_per_sec": report.records_per_sec,
        "mib_per_sec": report.bytes_per_sec / 1048576.0,
    });
    let line = format!(
        "{what} {}: {} records, {:.1} MiB ({:.1} MiB stored) in {seconds:.1} s",
        manifest.id,
        report.records,
        report.bytes as f64 / 1048576.0,
        manifest.stored_bytes as f64 / 1048576.0
    );
    print(target.format, &json, &["DONE"], &[vec![line]]);
}

/// Refuses an id that is not a DNS label.
fn check_id(id: &str) -> Result<(), CtlError> {
    dynamo_backup::check_id(id).map_err(|e| CtlError::Other(e.to_string()))
}

/// `backup-` and the time (seconds since the Unix epoch).
fn default_id() -> String {
    format!("backup-{}", now_ms() / 1000)
}

impl From<DriverError> for CtlError {
    fn from(error: DriverError) -> Self {
        match error {
            DriverError::Unreachable { url, reason } => CtlError::Unreachable { url, reason },
            DriverError::Denied { url, status, body } => CtlError::Denied { url, status, body },
            DriverError::Node { url, status, body } => CtlError::Failed { url, status, body },
            DriverError::NoSuchBackup(message) => CtlError::NotFound(message),
            other => CtlError::Other(other.to_string()),
        }
    }
}
