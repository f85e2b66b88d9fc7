//! Where backups live: an S3-compatible object store or a directory (a
//! mounted volume), both through the `object_store` crate, under a prefix.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use super::DriverError;

/// Part size of multipart uploads (S3's smallest but for the last part).
const PART_BYTES: usize = 5 << 20;

/// How S3 requests name the bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Addressing {
    /// `https://endpoint/bucket/key` (most S3-compatible servers).
    #[default]
    Path,
    /// `https://bucket.endpoint/key` (AWS).
    Virtual,
}

/// How to reach an S3 target (beside its `s3://BUCKET/PREFIX` location).
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    /// The service endpoint (`http(s)://HOST:PORT`, without the bucket);
    /// AWS's when absent.
    pub endpoint: Option<String>,
    /// The region to sign for.
    pub region: String,
    /// Path-style or virtual-host requests.
    pub addressing: Addressing,
    /// A PEM CA the endpoint's certificate chains to, beside the system's.
    pub ca_pem: Option<Vec<u8>>,
    /// Access key id and secret; from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) when absent.
    pub credentials: Option<(String, String)>,
}

/// A backup target: an object store and the prefix backups live under.
#[derive(Clone)]
pub struct Store {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// The target as given, for messages.
    pub name: String,
}

impl Store {
    /// Opens the target at `location`: `s3://BUCKET[/PREFIX]` (reached as
    /// `s3` says), or a directory (`file:///PATH` or a path).
    pub fn open(location: &str, s3: &S3Options) -> Result<Self, DriverError> {
        let name = location.to_string();
        let (store, prefix): (Arc<dyn ObjectStore>, &str) = match location.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                (Arc::new(s3_bucket(s3, bucket)?), prefix)
            }
            None => {
                let dir = location.strip_prefix("file://").unwrap_or(location);
                (Arc::new(directory(dir)?), "")
            }
        };
        Ok(Self {
            store,
            prefix: Path::from(prefix.trim_matches('/')),
            name,
        })
    }

    /// The path of `name` under the prefix.
    fn path(&self, name: &str) -> Path {
        match self.prefix.as_ref().is_empty() {
            true => Path::from(name),
            false => Path::from(format!("{}/{name}", self.prefix)),
        }
    }

    /// Stores a small object in one request.
    pub async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), DriverError> {
        self.store
            .put(&self.path(name), PutPayload::from(bytes))
            .await
            .map_err(|e| self.error("writing", name, e))?;
        Ok(())
    }

    /// Stores an object as a multipart upload of 5 MiB parts:
    /// it appears whole, or not at all.
    pub async fn put_multipart(&self, name: &str, bytes: &[u8]) -> Result<(), DriverError> {
        let upload = self
            .store
            .put_multipart(&self.path(name))
            .await
            .map_err(|e| self.error("starting an upload of", name, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        writer.write(bytes);
        writer
            .finish()
            .await
            .map_err(|e| self.error("uploading", name, e))?;
        Ok(())
    }

    /// The object `name`, or `None` when there is none.
    pub async fn get(&self, name: &str) -> Result<Option<Bytes>, DriverError> {
        match self.store.get(&self.path(name)).await {
            Ok(result) => Ok(Some(
                result
                    .bytes()
                    .await
                    .map_err(|e| self.error("reading", name, e))?,
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("reading", name, e)),
        }
    }

    /// The names (relative to the prefix) of every object under `dir`.
    pub async fn list(&self, dir: &str) -> Result<Vec<String>, DriverError> {
        let base = self.path(dir);
        let objects: Vec<_> = self
            .store
            .list(Some(&base))
            .try_collect()
            .await
            .map_err(|e| self.error("listing", dir, e))?;
        let skip = match self.prefix.as_ref().is_empty() {
            true => 0,
            false => self.prefix.as_ref().len() + 1,
        };
        let mut names: Vec<String> = objects
            .into_iter()
            .map(|o| o.location.as_ref()[skip..].to_string())
            .collect();
        names.sort();
        Ok(names)
    }

    /// The "directories" right under the prefix.
    pub async fn list_dirs(&self) -> Result<Vec<String>, DriverError> {
        let base = (!self.prefix.as_ref().is_empty()).then(|| self.prefix.clone());
        let listing = self
            .store
            .list_with_delimiter(base.as_ref())
            .await
            .map_err(|e| self.error("listing", "", e))?;
        let mut dirs: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        dirs.sort();
        Ok(dirs)
    }

    /// Deletes the object `name` (nothing when there is none).
    pub async fn delete(&self, name: &str) -> Result<(), DriverError> {
        match self.store.delete(&self.path(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("deleting", name, e)),
        }
    }

    fn error(&self, doing: &str, name: &str, error: object_store::Error) -> DriverError {
        DriverError::Target(format!("{doing} {name} on {}: {error}", self.name))
    }
}

/// An S3 bucket as `s3` describes it.
fn s3_bucket(s3: &S3Options, bucket: &str) -> Result<object_store::aws::AmazonS3, DriverError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut options = ClientOptions::new().with_allow_http(true);
    if let Some(pem) = &s3.ca_pem {
        let certificate = object_store::Certificate::from_pem(pem)
            .map_err(|e| DriverError::Target(format!("the S3 CA: {e}")))?;
        options = options.with_root_certificate(certificate);
    }
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_region(&s3.region)
        .with_virtual_hosted_style_request(s3.addressing == Addressing::Virtual)
        .with_client_options(options);
    if let Some((access_key, secret_key)) = &s3.credentials {
        builder = builder
            .with_access_key_id(access_key)
            .with_secret_access_key(secret_key);
    }
    if let Some(endpoint) = &s3.endpoint {
        builder = builder.with_endpoint(bucket_endpoint(endpoint, bucket, s3.addressing));
    }
    builder
        .build()
        .map_err(|e| DriverError::Target(format!("the S3 target s3://{bucket}: {e}")))
}

/// The endpoint requests go to: the service's for path-style requests,
/// with the bucket as the first label of the host for virtual-host ones
/// (as `object_store` expects an endpoint it is given then).
fn bucket_endpoint(endpoint: &str, bucket: &str, addressing: Addressing) -> String {
    match (addressing, endpoint.split_once("://")) {
        (Addressing::Virtual, Some((scheme, host))) => format!("{scheme}://{bucket}.{host}"),
        _ => endpoint.to_string(),
    }
}

/// A directory as an object store (created when missing).
fn directory(dir: &str) -> Result<LocalFileSystem, DriverError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| DriverError::Target(format!("creating the backup directory {dir}: {e}")))?;
    LocalFileSystem::new_with_prefix(dir)
        .map_err(|e| DriverError::Target(format!("the backup directory {dir}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_virtual_host_endpoint_names_the_bucket_first() {
        let endpoint = "https://s3.example:8333";
        assert_eq!(bucket_endpoint(endpoint, "b", Addressing::Path), endpoint);
        assert_eq!(
            bucket_endpoint(endpoint, "b", Addressing::Virtual),
            "https://b.s3.example:8333"
        );
    }
}
