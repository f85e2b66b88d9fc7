//! A backup target as the driver opens it: an S3 bucket with the
//! credentials and CA of the Secrets it names, or a directory under the
//! operator's backup volume.

use std::path::{Component, Path, PathBuf};

use dynamo_backup::driver::store::{Addressing, S3Options, Store};

use super::Blocked;
use super::access::{read_secret, secret_bytes, secret_text};
use crate::crd::backup::{BackupTarget, S3Addressing, S3Target};

/// Key of the credentials Secret with the access key id.
pub const ACCESS_KEY_ID_KEY: &str = "AWS_ACCESS_KEY_ID";

/// Key of the credentials Secret with the secret access key.
pub const SECRET_ACCESS_KEY_KEY: &str = "AWS_SECRET_ACCESS_KEY";

/// Key of the CA Secret with the PEM CA of the endpoint.
pub const CA_KEY: &str = "ca.crt";

/// Region requests are signed for when the target names none.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The target as people read it: `s3://BUCKET[/PREFIX]` or `volume:PATH`.
pub fn location(target: &BackupTarget) -> String {
    match (&target.s3, &target.volume) {
        (Some(s3), _) => s3_location(s3),
        (None, Some(volume)) => format!("volume:{}", volume.path),
        (None, None) => "no target".to_string(),
    }
}

fn s3_location(s3: &S3Target) -> String {
    match s3.prefix.trim_matches('/') {
        "" => format!("s3://{}", s3.bucket),
        prefix => format!("s3://{}/{prefix}", s3.bucket),
    }
}

/// Opens `target` for a resource of namespace `ns`; `volume_root` is where
/// the operator's backup volume is mounted, if it has one.
pub async fn open(
    client: &kube::Client,
    ns: &str,
    target: &BackupTarget,
    volume_root: Option<&Path>,
) -> Result<Store, Blocked> {
    match (&target.s3, &target.volume) {
        (Some(s3), _) => {
            let options = s3_options(client, ns, s3).await?;
            Store::open(&s3_location(s3), &options).map_err(|e| Blocked(e.to_string()))
        }
        (None, Some(volume)) => {
            let root = volume_root.ok_or_else(|| {
                Blocked(
                    "the operator has no backup volume: install the chart with \
                     backups.volume.claimName, or use an s3 target"
                        .to_string(),
                )
            })?;
            let dir = volume_dir(root, &volume.path)?;
            std::fs::create_dir_all(&dir)
                .map_err(|e| Blocked(format!("creating {}: {e}", dir.display())))?;
            let location = dir.to_string_lossy();
            Store::open(&location, &S3Options::default()).map_err(|e| Blocked(e.to_string()))
        }
        (None, None) => Err(Blocked("the target names neither s3 nor volume".into())),
    }
}

/// The Secrets `target` needs to be opened: an S3 target's credentials
/// and CA Secrets, when it names them.
pub fn secret_names(target: &BackupTarget) -> Vec<&str> {
    target
        .s3
        .iter()
        .flat_map(|s3| [&s3.credentials_secret, &s3.ca_secret])
        .filter_map(|name| name.as_deref())
        .collect()
}

/// `path` under `root`: relative, without `.` or `..` segments (the API
/// server checks this too).
pub fn volume_dir(root: &Path, path: &str) -> Result<PathBuf, Blocked> {
    let relative = Path::new(path);
    let plain = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    match plain && !path.is_empty() {
        true => Ok(root.join(relative)),
        false => Err(Blocked(format!(
            "volume path {path:?} must be relative, without '.' or '..' segments"
        ))),
    }
}

/// How to reach `s3`: its endpoint, region and addressing, and the
/// credentials and CA of the Secrets it names.
async fn s3_options(client: &kube::Client, ns: &str, s3: &S3Target) -> Result<S3Options, Blocked> {
    let credentials = match &s3.credentials_secret {
        Some(name) => {
            let secret = read_secret(client, ns, name).await?;
            let value = |key: &str| {
                secret_text(&secret, key)
                    .ok_or_else(|| Blocked(format!("Secret {name} has no {key}")))
            };
            Some((value(ACCESS_KEY_ID_KEY)?, value(SECRET_ACCESS_KEY_KEY)?))
        }
        None => None,
    };
    let ca_pem = match &s3.ca_secret {
        Some(name) => {
            let secret = read_secret(client, ns, name).await?;
            Some(
                secret_bytes(&secret, CA_KEY)
                    .ok_or_else(|| Blocked(format!("Secret {name} has no {CA_KEY}")))?,
            )
        }
        None => None,
    };
    Ok(S3Options {
        endpoint: s3.endpoint.clone(),
        region: s3
            .region
            .clone()
            .unwrap_or_else(|| DEFAULT_REGION.to_string()),
        addressing: match s3.addressing {
            S3Addressing::Path => Addressing::Path,
            S3Addressing::Virtual => Addressing::Virtual,
        },
        ca_pem,
        credentials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::backup::VolumeTarget;

    fn bucket() -> S3Target {
        S3Target {
            bucket: "b".into(),
            ..S3Target::default()
        }
    }

    fn s3_target(s3: &S3Target) -> BackupTarget {
        BackupTarget {
            s3: Some(s3.clone()),
            volume: None,
        }
    }

    fn volume_target(path: &str) -> BackupTarget {
        BackupTarget {
            s3: None,
            volume: Some(VolumeTarget { path: path.into() }),
        }
    }

    #[test]
    fn locations_name_the_bucket_and_prefix_or_the_volume_path() {
        let mut s3 = bucket();
        assert_eq!(location(&s3_target(&s3)), "s3://b");
        s3.prefix = "/team/prod/".into();
        assert_eq!(location(&s3_target(&s3)), "s3://b/team/prod");
        assert_eq!(location(&volume_target("nightly")), "volume:nightly");
    }

    #[test]
    fn volume_paths_stay_under_the_mount() {
        let root = Path::new("/backups");
        assert_eq!(
            volume_dir(root, "a/b").expect("plain"),
            PathBuf::from("/backups/a/b")
        );
        for bad in ["", "/etc", "../x", "a/../../x", "./a"] {
            assert!(volume_dir(root, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secret_names_are_the_s3_credentials_and_ca() {
        let mut s3 = bucket();
        assert!(secret_names(&s3_target(&s3)).is_empty());
        s3.credentials_secret = Some("creds".into());
        assert_eq!(secret_names(&s3_target(&s3)), ["creds"]);
        s3.ca_secret = Some("ca".into());
        assert_eq!(secret_names(&s3_target(&s3)), ["creds", "ca"]);
        assert!(secret_names(&volume_target("nightly")).is_empty());
    }
}
