//! Backups on the node: checkpoints of the store named by backup id, kept
//! under the data directory until the backup tool removes them (or they
//! are a day old), and the record stream exported from one. Imports go
//! through the coordinator (`Coordinator::import`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::storage::{CheckpointReader, Storage, StorageError, now_ms};

/// Where checkpoints live, under the data directory.
const DIR: &str = "backup-checkpoints";
/// The file in a checkpoint that describes it.
const INFO: &str = "dynamo-checkpoint.json";
/// Checkpoints older than this are removed when the node starts and when
/// a backup creates one: a backup tool that died left them behind.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Bytes of records an export sends at a time.
const SEND_BYTES: usize = 256 << 10;

/// What a checkpoint is.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The backup it was made for.
    pub id: String,
    /// When it was made (ms since the Unix epoch).
    pub created_at_ms: u64,
}

/// Why a backup request failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A backup id that is not a DNS label.
    #[error(transparent)]
    InvalidId(#[from] dynamo_backup::InvalidId),
    /// No checkpoint of that backup on this node.
    #[error("this node has no checkpoint of backup {0:?}")]
    NoSuchCheckpoint(String),
    /// The store failed.
    #[error("{context}: {source}")]
    Storage {
        /// What was being done.
        context: String,
        /// What failed.
        source: StorageError,
    },
    /// The file system failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// What failed.
        source: std::io::Error,
    },
}

/// The node's backup checkpoints.
pub struct Backups {
    dir: PathBuf,
    storage: Arc<Storage>,
    /// Held while a checkpoint is made, so two requests for one backup
    /// do not both make it.
    creating: Mutex<()>,
}

impl Backups {
    /// The checkpoints of the store under `data_dir`; removes those older
    /// than [`MAX_AGE`] and any a crash left half made.
    pub fn new(data_dir: &Path, storage: Arc<Storage>) -> Self {
        let backups = Self {
            dir: data_dir.join(DIR),
            storage,
            creating: Mutex::new(()),
        };
        backups.remove_stale();
        backups
    }

    /// Creates the checkpoint of backup `id`, or returns the one made
    /// before (a backup tool asking again after a lost answer).
    pub fn create(&self, id: &str) -> Result<(CheckpointInfo, bool), BackupError> {
        check_id(id)?;
        let _creating = self.creating.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(info) = self.info(id)? {
            return Ok((info, false));
        }
        self.remove_stale();
        let partial = self.dir.join(format!(".{id}.partial"));
        remove_dir(&partial)?;
        std::fs::create_dir_all(&self.dir).map_err(|source| BackupError::Io {
            context: format!("creating {}", self.dir.display()),
            source,
        })?;
        self.storage
            .checkpoint(&partial)
            .map_err(|source| BackupError::Storage {
                context: format!("creating a checkpoint in {}", partial.display()),
                source,
            })?;
        let info = CheckpointInfo {
            id: id.to_string(),
            created_at_ms: now_ms(),
        };
        let json = serde_json::to_vec(&info).unwrap_or_default();
        std::fs::write(partial.join(INFO), json)
            .and_then(|()| std::fs::rename(&partial, self.dir.join(id)))
            .map_err(|source| BackupError::Io {
                context: format!("recording the checkpoint {}", partial.display()),
                source,
            })?;
        tracing::info!(backup = id, "checkpoint made for a backup");
        Ok((info, true))
    }

    /// Every checkpoint, oldest first.
    pub fn list(&self) -> Result<Vec<CheckpointInfo>, BackupError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(BackupError::Io {
                    context: format!("listing {}", self.dir.display()),
                    source,
                });
            }
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if check_id(&name).is_ok()
                && let Some(info) = self.info(&name)?
            {
                out.push(info);
            }
        }
        out.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(out)
    }

    /// Removes the checkpoint of backup `id`; says whether there was one.
    pub fn remove(&self, id: &str) -> Result<bool, BackupError> {
        check_id(id)?;
        let dir = self.dir.join(id);
        let existed = dir.exists();
        remove_dir(&dir)?;
        Ok(existed)
    }

    /// The records of backup `id`'s checkpoint after the user key `after`,
    /// as a record stream that ends with its end frame; read on a blocking
    /// thread, a piece at a time, as the receiver takes them.
    pub fn export(
        &self,
        id: &str,
        after: Option<Bytes>,
    ) -> Result<mpsc::Receiver<Result<Bytes, BackupError>>, BackupError> {
        check_id(id)?;
        if self.info(id)?.is_none() {
            return Err(BackupError::NoSuchCheckpoint(id.to_string()));
        }
        let dir = self.dir.join(id);
        let reader = CheckpointReader::open(&dir).map_err(|source| BackupError::Storage {
            context: format!("opening the checkpoint {}", dir.display()),
            source,
        })?;
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            if let Err(error) = send_records(&reader, after.as_deref(), &tx) {
                let _ = tx.blocking_send(Err(BackupError::Storage {
                    context: format!("reading the checkpoint {}", dir.display()),
                    source: error,
                }));
            }
        });
        Ok(rx)
    }

    fn info(&self, id: &str) -> Result<Option<CheckpointInfo>, BackupError> {
        let path = self.dir.join(id).join(INFO);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(BackupError::Io {
                context: format!("reading {}", path.display()),
                source,
            }),
        }
    }

    /// Removes checkpoints older than [`MAX_AGE`] and half-made ones.
    fn remove_stale(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let oldest = now_ms().saturating_sub(MAX_AGE.as_millis() as u64);
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale = match self.info(&name) {
                Ok(Some(info)) => info.created_at_ms < oldest,
                _ => name.ends_with(".partial"),
            };
            if stale {
                tracing::info!(checkpoint = name, "removing a stale backup checkpoint");
                if let Err(error) = remove_dir(&entry.path()) {
                    tracing::warn!(%error, "removing a stale backup checkpoint");
                }
            }
        }
    }
}

/// Sends the checkpoint's records after `after` to `tx` in pieces, then
/// the end frame; stops early when the receiver is gone.
fn send_records(
    reader: &CheckpointReader,
    after: Option<&[u8]>,
    tx: &mpsc::Sender<Result<Bytes, BackupError>>,
) -> Result<(), StorageError> {
    let mut piece = Vec::with_capacity(SEND_BYTES);
    let mut count = 0u64;
    let mut open = true;
    reader.records(after, |key, value| {
        dynamo_backup::records::put_record(&mut piece, key, value);
        count += 1;
        if piece.len() >= SEND_BYTES {
            open = tx
                .blocking_send(Ok(std::mem::take(&mut piece).into()))
                .is_ok();
        }
        open
    })?;
    if open {
        dynamo_backup::records::put_end(&mut piece, count);
        let _ = tx.blocking_send(Ok(piece.into()));
    }
    Ok(())
}

/// Refuses an id that is not a DNS label (it names a directory).
pub fn check_id(id: &str) -> Result<(), BackupError> {
    Ok(dynamo_backup::check_id(id)?)
}

fn remove_dir(dir: &Path) -> Result<(), BackupError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(BackupError::Io {
            context: format!("removing {}", dir.display()),
            source: e,
        }),
        _ => Ok(()),
    }
}
