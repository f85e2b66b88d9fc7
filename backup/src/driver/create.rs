//! `dynamoctl backup create`: hold relocations on every node, checkpoint
//! every node, release the holds, then upload each node's records in
//! chunks and write the manifest last. Run again with the same id, it
//! resumes after the last uploaded chunk when every node still has its
//! checkpoint, and starts over otherwise.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::Value;

use super::layout::{self, Checkpoint, Chunk, Manifest, NodeDone, NodeEntry, Started};
use super::nodes::Admin;
use super::progress::Progress;
use super::store::Store;
use super::{DriverError, now_ms};
use crate::records::{Decoder, Frame, put_record};

/// How long the relocation holds last if this tool dies before ending them.
const HOLD_SECS: u64 = 300;
/// Attempts at a node's export stream before giving up.
const EXPORT_ATTEMPTS: u32 = 5;

/// The cluster a backup is taken of: the admin routes' client, and the
/// admin address of a member, which names the others.
pub struct Cluster<'a> {
    /// The admin routes' client.
    pub admin: &'a Admin,
    /// A member's admin address.
    pub seed: &'a str,
}

/// Takes backup `id` of `cluster` onto `store`, with chunks of about
/// `chunk_bytes` of records; returns its manifest.
pub async fn create(
    cluster: &Cluster<'_>,
    store: &Store,
    id: &str,
    chunk_bytes: usize,
    progress: &Arc<Progress>,
) -> Result<Manifest, DriverError> {
    crate::check_id(id).map_err(|e| DriverError::Other(e.to_string()))?;
    if store.get(&layout::manifest(id)).await?.is_some() {
        return Err(DriverError::Backup(format!(
            "backup {id} on {} is already complete",
            store.name
        )));
    }
    let (started, checkpoints) = checkpoint_all(cluster, store, id, progress).await?;
    for checkpoint in checkpoints.values() {
        progress.expect(checkpoint.1);
    }
    let mut nodes = BTreeMap::new();
    for (node, address) in &started.nodes {
        let (checkpoint, _) = &checkpoints[node];
        let node_export = NodeExport {
            admin: cluster.admin,
            store,
            id,
            node,
            address,
            chunk_bytes,
            progress,
        };
        nodes.insert(node.clone(), node_export.run(checkpoint).await?);
    }
    let manifest = manifest(&started, nodes);
    let json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    store.put(&layout::manifest(id), json).await?;
    for address in started.nodes.values() {
        let path = format!("/v1/admin/backups/{id}");
        if let Err(error) = cluster.admin.call(address, Method::DELETE, &path).await {
            progress.note(&format!("removing the checkpoint on {address}: {error}"));
        }
    }
    Ok(manifest)
}

/// The started record and every node's checkpoint (with its estimated
/// records): those of an earlier run of this backup when every node still
/// has its checkpoint, else new ones (and the earlier run's objects gone).
async fn checkpoint_all(
    cluster: &Cluster<'_>,
    store: &Store,
    id: &str,
    progress: &Progress,
) -> Result<(Started, BTreeMap<String, (Checkpoint, u64)>), DriverError> {
    let admin = cluster.admin;
    if let Some(bytes) = store.get(&layout::started(id)).await? {
        let started: Started = parse(&bytes, "backup.json")?;
        if every_node_has_checkpoint(admin, &started).await? {
            progress.note(&format!(
                "backup {id}: resuming (every node still has its checkpoint)"
            ));
            let checkpoints = make_checkpoints(admin, &started).await?;
            return Ok((started, checkpoints));
        }
        progress.note(&format!(
            "backup {id}: starting over (a node lost its checkpoint)"
        ));
        for address in started.nodes.values() {
            let path = format!("/v1/admin/backups/{id}");
            let _ = admin.call(address, Method::DELETE, &path).await;
        }
        for name in store.list(id).await? {
            store.delete(&name).await?;
        }
    }
    let started = Started {
        id: id.to_string(),
        started_at_ms: now_ms(),
        nodes: members(cluster).await?,
    };
    let json = serde_json::to_vec_pretty(&started).unwrap_or_default();
    store.put(&layout::started(id), json).await?;
    let hold = format!("/v1/admin/backups/{id}/hold");
    let held = async {
        for address in started.nodes.values() {
            let path = format!("{hold}?seconds={HOLD_SECS}");
            admin.call(address, Method::PUT, &path).await?;
        }
        make_checkpoints(admin, &started).await
    }
    .await;
    for address in started.nodes.values() {
        if let Err(error) = admin.call(address, Method::DELETE, &hold).await {
            progress.note(&format!("ending the relocation hold on {address}: {error}"));
        }
    }
    Ok((started, held?))
}

/// Every member and its admin address, as the seed sees them.
async fn members(cluster: &Cluster<'_>) -> Result<BTreeMap<String, String>, DriverError> {
    let status: Value = cluster.admin.get_json(cluster.seed, "/v1/status").await?;
    let members = status["members"].as_array().cloned().unwrap_or_default();
    let listed: BTreeMap<String, String> = members
        .iter()
        .filter_map(|m| {
            Some((
                m["id"].as_str()?.to_string(),
                m["address"].as_str()?.to_string(),
            ))
        })
        .collect();
    match listed.is_empty() {
        true => Err(DriverError::Other("the node lists no members".into())),
        false => Ok(listed),
    }
}

async fn every_node_has_checkpoint(admin: &Admin, started: &Started) -> Result<bool, DriverError> {
    for address in started.nodes.values() {
        let listed: Value = admin.get_json(address, "/v1/admin/backups").await?;
        let has = listed["checkpoints"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["id"] == started.id.as_str()));
        if !has {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Asks every node for its checkpoint of the backup (made now, or made
/// before).
async fn make_checkpoints(
    admin: &Admin,
    started: &Started,
) -> Result<BTreeMap<String, (Checkpoint, u64)>, DriverError> {
    let mut out = BTreeMap::new();
    for (node, address) in &started.nodes {
        let path = format!("/v1/admin/backups/{}", started.id);
        let answer: Value = admin.call(address, Method::PUT, &path).await?;
        if answer["node"] != node.as_str() {
            return Err(DriverError::Backup(format!(
                "{address} is {}, not {node}: the members changed since the backup began; \
                 delete the backup and start again",
                answer["node"]
            )));
        }
        let checkpoint = Checkpoint {
            created_at_ms: answer["created_at_ms"].as_u64().unwrap_or_default(),
            epoch: answer["epoch"].as_u64().unwrap_or_default(),
            partitions: answer["partitions"].as_u64().unwrap_or_default() as u32,
            format: answer["format"].as_u64().map(|f| f as u32),
        };
        let estimated = answer["estimated_records"].as_u64().unwrap_or_default();
        out.insert(node.clone(), (checkpoint, estimated));
    }
    Ok(out)
}

/// One node's upload.
struct NodeExport<'a> {
    admin: &'a Admin,
    store: &'a Store,
    id: &'a str,
    node: &'a str,
    address: &'a str,
    chunk_bytes: usize,
    progress: &'a Arc<Progress>,
}

/// Chunk being filled.
#[derive(Default)]
struct Filling {
    raw: Vec<u8>,
    records: u64,
    last_key: Vec<u8>,
    partitions: BTreeMap<u32, u64>,
}

impl NodeExport<'_> {
    /// Uploads what is not uploaded yet of the node's records; returns
    /// the node's manifest entry.
    async fn run(&self, checkpoint: &Checkpoint) -> Result<NodeEntry, DriverError> {
        let mut chunks = self.uploaded_chunks().await?;
        let done_name = layout::node_done(self.id, self.node);
        let done = match self.store.get(&done_name).await? {
            Some(bytes) => parse::<NodeDone>(&bytes, &done_name)?,
            None => {
                let done = self.export(checkpoint, &mut chunks).await?;
                let json = serde_json::to_vec_pretty(&done).unwrap_or_default();
                self.store.put(&done_name, json).await?;
                done
            }
        };
        let mut entry = NodeEntry {
            checkpoint: done.checkpoint,
            records: 0,
            raw_bytes: 0,
            stored_bytes: 0,
            partitions: BTreeMap::new(),
            chunks,
        };
        for chunk in &entry.chunks {
            entry.records += chunk.records;
            entry.raw_bytes += chunk.raw_bytes;
            entry.stored_bytes += chunk.stored_bytes;
            for (partition, count) in &chunk.partitions {
                *entry.partitions.entry(*partition).or_default() += count;
            }
        }
        if entry.records != done.records {
            return Err(DriverError::Backup(format!(
                "node {}: the export sent {} records but the chunks hold {}",
                self.node, done.records, entry.records
            )));
        }
        Ok(entry)
    }

    /// The chunks an earlier run uploaded, in order.
    async fn uploaded_chunks(&self) -> Result<Vec<Chunk>, DriverError> {
        let mut chunks = Vec::new();
        for name in self
            .store
            .list(&layout::node_dir(self.id, self.node))
            .await?
        {
            if name.ends_with(".json") && !name.ends_with("/done.json") {
                let bytes = self.store.get(&name).await?.unwrap_or_default();
                let chunk: Chunk = parse(&bytes, &name)?;
                let expected = format!(
                    "{}.chunk",
                    layout::chunk(self.id, self.node, chunks.len() as u32)
                );
                if chunk.object != expected {
                    return Err(DriverError::Backup(format!(
                        "{name} names {}, expected {expected}: the backup's objects are not this \
                         tool's; delete the backup and start again",
                        chunk.object
                    )));
                }
                self.progress.add(chunk.records, chunk.raw_bytes);
                chunks.push(chunk);
            }
        }
        Ok(chunks)
    }

    /// Streams the node's records after the last uploaded chunk, uploading
    /// chunks as they fill; asks again after the last uploaded chunk when
    /// the stream breaks.
    async fn export(
        &self,
        checkpoint: &Checkpoint,
        chunks: &mut Vec<Chunk>,
    ) -> Result<NodeDone, DriverError> {
        let mut failures = 0;
        loop {
            match self.stream_once(checkpoint, chunks).await {
                Ok(records) => {
                    return Ok(NodeDone {
                        records,
                        checkpoint: checkpoint.clone(),
                    });
                }
                Err(error) if failures + 1 < EXPORT_ATTEMPTS => {
                    failures += 1;
                    self.progress.note(&format!(
                        "the export of {} broke ({error}); going on after the last uploaded \
                         chunk",
                        self.node
                    ));
                    tokio::time::sleep(Duration::from_secs(failures.into())).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// One export stream from after the last uploaded chunk to its end;
    /// returns the records the whole export sent.
    async fn stream_once(
        &self,
        checkpoint: &Checkpoint,
        chunks: &mut Vec<Chunk>,
    ) -> Result<u64, DriverError> {
        let mut path = format!("/v1/admin/backups/{}/records", self.id);
        if let Some(last) = chunks.last() {
            path.push_str(&format!("?after={}", last.last_key));
        }
        let before: u64 = chunks.iter().map(|c| c.records).sum();
        let url = self.admin.url(self.address, &path);
        let mut response = self.admin.stream(&url).await?;
        let mut decoder = Decoder::new();
        let mut filling = Filling::default();
        let mut arrived: u64 = 0;
        loop {
            let piece = response
                .chunk()
                .await
                .map_err(|e| DriverError::Unreachable {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
            let Some(piece) = piece else {
                return Err(DriverError::Unreachable {
                    url,
                    reason: "the stream ended without its end".into(),
                });
            };
            decoder.push(&piece);
            while let Some(frame) = decoder
                .next_frame()
                .map_err(|e| DriverError::Other(format!("{url}: {e}")))?
            {
                match frame {
                    Frame::Record(record) => {
                        arrived += 1;
                        put_record(&mut filling.raw, &record.key, &record.value);
                        filling.records += 1;
                        let hash = dynamo_ring::key_hash(&record.key);
                        let partition =
                            dynamo_ring::partition_of(hash, checkpoint.partitions.max(1));
                        *filling.partitions.entry(partition).or_default() += 1;
                        filling.last_key = record.key.to_vec();
                        if filling.raw.len() >= self.chunk_bytes {
                            self.upload(std::mem::take(&mut filling), chunks).await?;
                        }
                    }
                    Frame::End(sent) => {
                        if arrived != sent {
                            return Err(DriverError::Other(format!(
                                "{url}: the node says it sent {sent} records, {arrived} arrived"
                            )));
                        }
                        if filling.records > 0 {
                            self.upload(filling, chunks).await?;
                        }
                        return Ok(before + sent);
                    }
                }
            }
        }
    }

    /// Uploads a full chunk, then its entry.
    async fn upload(&self, filling: Filling, chunks: &mut Vec<Chunk>) -> Result<(), DriverError> {
        let (stored, sha256) = super::chunk::seal(&filling.raw)?;
        let name = layout::chunk(self.id, self.node, chunks.len() as u32);
        let object = format!("{name}.chunk");
        self.store.put_multipart(&object, &stored).await?;
        let chunk = Chunk {
            object,
            records: filling.records,
            raw_bytes: filling.raw.len() as u64,
            stored_bytes: stored.len() as u64,
            sha256,
            last_key: URL_SAFE_NO_PAD.encode(&filling.last_key),
            partitions: filling.partitions,
        };
        let json = serde_json::to_vec_pretty(&chunk).unwrap_or_default();
        self.store.put(&format!("{name}.json"), json).await?;
        self.progress.add(chunk.records, chunk.raw_bytes);
        chunks.push(chunk);
        Ok(())
    }
}

/// The manifest of a backup whose nodes are all uploaded.
fn manifest(started: &Started, nodes: BTreeMap<String, NodeEntry>) -> Manifest {
    Manifest {
        layout: layout::LAYOUT,
        id: started.id.clone(),
        started_at_ms: started.started_at_ms,
        finished_at_ms: now_ms(),
        epoch: nodes
            .values()
            .map(|n| n.checkpoint.epoch)
            .max()
            .unwrap_or(0),
        partitions: nodes
            .values()
            .map(|n| n.checkpoint.partitions)
            .max()
            .unwrap_or(0),
        format: nodes.values().filter_map(|n| n.checkpoint.format).max(),
        records: nodes.values().map(|n| n.records).sum(),
        raw_bytes: nodes.values().map(|n| n.raw_bytes).sum(),
        stored_bytes: nodes.values().map(|n| n.stored_bytes).sum(),
        nodes,
    }
}

/// A document of the backup.
pub fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], name: &str) -> Result<T, DriverError> {
    serde_json::from_slice(bytes)
        .map_err(|e| DriverError::Backup(format!("{name} does not parse: {e}")))
}
