//! `dynamoctl backup restore` and `verify`: read a complete backup's
//! chunks, checking each against its manifest entry, and (restore) import
//! their records into the cluster `--node` belongs to, through the nodes'
//! import route (each record merged into its key's current owners).

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;

use super::DriverError;
use super::layout::{self, Chunk, Manifest};
use super::nodes::Admin;
use super::progress::Progress;
use super::store::Store;
use crate::records::{Record, decode_all, put_record};

/// Bytes of record frames an import request carries at most.
const IMPORT_BYTES: usize = 8 << 20;
/// Attempts at an import request the cluster cannot take yet (503).
const IMPORT_ATTEMPTS: u32 = 10;

/// The manifest of backup `id`: the backup must be complete.
pub async fn manifest(store: &Store, id: &str) -> Result<Manifest, DriverError> {
    let name = layout::manifest(id);
    match store.get(&name).await? {
        Some(bytes) => super::create::parse(&bytes, &name),
        None if store.get(&layout::started(id)).await?.is_some() => {
            Err(DriverError::Backup(format!(
                "backup {id} on {} is not complete (it has no manifest): it cannot be restored; \
             run `dynamoctl backup create --id {id}` again to finish it",
                store.name
            )))
        }
        None => Err(DriverError::NoSuchBackup(format!(
            "no backup {id} on {}",
            store.name
        ))),
    }
}

/// The records of `chunk`, checked against its entry.
async fn read_chunk(store: &Store, chunk: &Chunk) -> Result<Vec<Record>, DriverError> {
    let stored = store.get(&chunk.object).await?.ok_or_else(|| {
        DriverError::Backup(format!(
            "chunk {} is missing from {}",
            chunk.object, store.name
        ))
    })?;
    let raw = super::chunk::open(&chunk.object, &stored, &chunk.sha256, chunk.raw_bytes)?;
    let records = decode_all(&raw)
        .map_err(|e| DriverError::Backup(format!("chunk {} is damaged: {e}", chunk.object)))?;
    if records.len() as u64 != chunk.records {
        return Err(DriverError::Backup(format!(
            "chunk {} is damaged: it holds {} records, the manifest says {}",
            chunk.object,
            records.len(),
            chunk.records
        )));
    }
    Ok(records)
}

/// Reads every chunk of backup `id` and checks it; returns the problems
/// found (none when the backup is whole).
pub async fn verify(
    store: &Store,
    id: &str,
    progress: &Arc<Progress>,
) -> Result<Vec<String>, DriverError> {
    let manifest = manifest(store, id).await?;
    progress.expect(manifest.records);
    let mut problems = Vec::new();
    for chunk in manifest.chunks() {
        match read_chunk(store, chunk).await {
            Ok(_) => progress.add(chunk.records, chunk.raw_bytes),
            Err(error) => problems.push(error.to_string()),
        }
    }
    Ok(problems)
}

/// Imports every record of backup `id` into the cluster of the node at the
/// admin address `node`; returns the manifest. Stops at the first damaged
/// chunk (what was imported before it stays: importing again is harmless).
pub async fn restore(
    admin: &Admin,
    node: &str,
    store: &Store,
    id: &str,
    progress: &Arc<Progress>,
) -> Result<Manifest, DriverError> {
    let manifest = manifest(store, id).await?;
    progress.expect(manifest.records);
    for chunk in manifest.chunks() {
        let records = read_chunk(store, chunk).await?;
        for batch in batches(&records) {
            import(admin, node, batch).await?;
        }
        progress.add(chunk.records, chunk.raw_bytes);
    }
    Ok(manifest)
}

/// Record frames of `records`, cut into import requests.
fn batches(records: &[Record]) -> Vec<Vec<u8>> {
    let mut out = vec![Vec::new()];
    for record in records {
        let full = out
            .last()
            .is_some_and(|b| !b.is_empty() && b.len() >= IMPORT_BYTES);
        if full {
            out.push(Vec::new());
        }
        if let Some(batch) = out.last_mut() {
            put_record(batch, &record.key, &record.value);
        }
    }
    out.retain(|b| !b.is_empty());
    out
}

/// One import request, asked again while the cluster answers 503 (an
/// owner unreachable).
async fn import(admin: &Admin, node: &str, batch: Vec<u8>) -> Result<(), DriverError> {
    let mut attempt = 0;
    loop {
        match admin.import(node, batch.clone()).await {
            Ok(()) => return Ok(()),
            Err(DriverError::Node { status, .. })
                if status == StatusCode::SERVICE_UNAVAILABLE && attempt + 1 < IMPORT_ATTEMPTS =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(250 << attempt.min(5))).await;
            }
            Err(error) => return Err(error),
        }
    }
}
