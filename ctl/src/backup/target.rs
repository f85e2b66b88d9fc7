//! The options naming a backup target, as dynamoctl takes them.

use std::path::PathBuf;

use dynamo_backup::driver::store::{Addressing, S3Options, Store};

use crate::client::CtlError;

/// How S3 requests name the bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AddressingArg {
    /// `https://endpoint/bucket/key` (most S3-compatible servers).
    Path,
    /// `https://bucket.endpoint/key` (AWS).
    Virtual,
}

/// The options naming a backup target.
#[derive(clap::Args, Clone, Debug)]
pub struct TargetArgs {
    /// Where backups live: `s3://BUCKET[/PREFIX]`, or a directory
    /// (`file:///PATH` or a path). S3 credentials come from
    /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN).
    #[arg(long, env = "DYNAMO_BACKUP_TARGET")]
    pub target: String,
    /// The S3 service endpoint (`http(s)://HOST:PORT`, without the
    /// bucket); AWS's when absent.
    #[arg(long, env = "DYNAMO_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// The S3 region.
    #[arg(long, env = "DYNAMO_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// Path-style or virtual-host addressing of the bucket.
    #[arg(long, env = "DYNAMO_S3_ADDRESSING", value_enum, default_value = "path")]
    pub s3_addressing: AddressingArg,
    /// PEM file of a CA the S3 endpoint's certificate chains to (beside
    /// the system's).
    #[arg(long, env = "DYNAMO_S3_CA")]
    pub s3_ca: Option<PathBuf>,
}

impl TargetArgs {
    /// Opens the target these options name.
    pub fn open(&self) -> Result<Store, CtlError> {
        let ca_pem = match &self.s3_ca {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                CtlError::Other(format!("reading the S3 CA {}: {e}", path.display()))
            })?),
            None => None,
        };
        let options = S3Options {
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            addressing: match self.s3_addressing {
                AddressingArg::Path => Addressing::Path,
                AddressingArg::Virtual => Addressing::Virtual,
            },
            ca_pem,
            credentials: None,
        };
        Ok(Store::open(&self.target, &options)?)
    }
}
