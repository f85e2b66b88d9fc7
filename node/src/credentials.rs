//! Credentials (`--auth-dir`): one secret per role, and application
//! tokens scoped to a key prefix.
//!
//! The directory holds what a Kubernetes Secret mounted there holds:
//!
//! - `admin-token`: opens the admin routes (`/v1/admin/...`) and
//!   `/v1/status`;
//! - `peer-token`: what nodes present to each other on the node-to-node
//!   stream;
//! - `client-token` (optional): a client with read-write rights on every
//!   key;
//! - `clients.json` (optional): application tokens, each with read or
//!   read-write rights on the keys that start with its prefix;
//! - `metrics-token` (optional): what a scraper presents for `/metrics`,
//!   which is open to any caller without it (the metrics hold counts and
//!   member names, no key or value);
//! - `token` (older layout): serves every role whose own file is absent,
//!   with a warning, as one token for everything makes every client an
//!   administrator.
//!
//! Roles never share a value: a directory where two roles hold the same
//! token (other than through `token`) is refused.
//!
//! Client tokens are read again when their files change
//! ([`Credentials::reload_clients`]), so that applications can be added or
//! revoked by editing the Secret; the admin, peer and metrics tokens are
//! read at start only, as a change of either must reach every node
//! together.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, RwLock};

use anyhow::{Context, bail, ensure};
use serde::Deserialize;

use crate::file_watch::FileWatch;

/// A token, compared in time independent of where the first difference
/// is, and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Whether `given` is this token.
    pub fn matches(&self, given: &str) -> bool {
        let (given, token) = (given.as_bytes(), self.0.as_bytes());
        let mut difference = given.len() ^ token.len();
        for (i, expected) in token.iter().enumerate() {
            difference |= usize::from(given.get(i).copied().unwrap_or(0) ^ expected);
        }
        difference == 0
    }

    /// The token itself, to send it.
    pub fn expose(&self) -> &Arc<str> {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// What a client token may do with the keys under its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Access {
    /// `GET` only.
    #[serde(rename = "read")]
    Read,
    /// `GET`, `PUT` and `DELETE`.
    #[serde(rename = "read-write")]
    ReadWrite,
}

/// What a request does with a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Reads it.
    Read,
    /// Writes or deletes it.
    Write,
}

/// An application's token and its rights.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Client {
    /// The application's name, for errors and logs.
    pub name: String,
    token: Secret,
    /// The keys it may use: those that start with this (every key when
    /// empty).
    pub prefix: String,
    /// What it may do with them.
    pub access: Access,
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        one_word(&text)
            .map(|word| Self(word.into()))
            .ok_or_else(|| serde::de::Error::custom("a token must be one non-empty word"))
    }
}

impl Client {
    /// Whether this client may do `operation` on `key`.
    pub fn may(&self, operation: Operation, key: &[u8]) -> bool {
        key.starts_with(self.prefix.as_bytes())
            && (operation == Operation::Read || self.access == Access::ReadWrite)
    }
}

/// The credentials of every role.
#[derive(Debug)]
pub struct Credentials {
    admin: Secret,
    peer: Secret,
    metrics: Option<Secret>,
    clients: RwLock<Arc<[Arc<Client>]>>,
    /// The client files, to read them again when they change.
    watch: FileWatch,
}

/// The files client tokens come from (with the older single `token`).
const CLIENT_FILES: [&str; 3] = ["token", "client-token", "clients.json"];

/// A role's token as read from the directory, and the file it came from.
#[derive(Clone)]
struct Found {
    secret: Secret,
    file: &'static str,
}

/// The name of the all-keys client read from `client-token` (or `token`).
const DEFAULT_CLIENT: &str = "client-token";

impl Credentials {
    /// Reads the credentials in `dir` (see the module documentation).
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let watch = FileWatch::new(dir, &CLIENT_FILES);
        let Roles {
            admin,
            peer,
            metrics,
            clients,
        } = read(dir)?;
        if clients.is_empty() {
            tracing::warn!(
                auth_dir = %dir.display(),
                "no client credentials (client-token or clients.json): every /v1/kv request \
                 will be refused"
            );
        }
        Ok(Self {
            admin,
            peer,
            metrics,
            clients: RwLock::new(shared(clients)),
            watch,
        })
    }

    /// Reads the client tokens again if their files changed since last
    /// read; returns whether they did. A directory that no longer reads
    /// keeps the clients as they were (the error says why).
    pub fn reload_clients(&self) -> anyhow::Result<bool> {
        if !self.watch.changed() {
            return Ok(false);
        }
        let dir = self.watch.dir();
        let roles = read(dir).with_context(|| {
            format!(
                "reading the changed credentials in {}; the clients stay as they were",
                dir.display()
            )
        })?;
        if roles.admin != self.admin || roles.peer != self.peer || roles.metrics != self.metrics {
            tracing::warn!(
                auth_dir = %dir.display(),
                "admin-token, peer-token or metrics-token changed: a change takes effect when \
                 the node restarts"
            );
        }
        *crate::sync::write(&self.clients) = shared(roles.clients);
        Ok(true)
    }
}

/// `clients` as the lookup holds them: each shared, so a request's lookup
/// copies no name or prefix.
fn shared(clients: Vec<Client>) -> Arc<[Arc<Client>]> {
    clients.into_iter().map(Arc::new).collect()
}

/// The tokens of every role, as read from the directory.
struct Roles {
    admin: Secret,
    peer: Secret,
    metrics: Option<Secret>,
    clients: Vec<Client>,
}

/// The tokens and clients in `dir`.
fn read(dir: &Path) -> anyhow::Result<Roles> {
    let legacy = read_token(dir, "token")?;
    let mut borrowed = Vec::new();
    let mut role = |file: &'static str| -> anyhow::Result<Option<Found>> {
        let own = read_token(dir, file)?;
        if own.is_none() && legacy.is_some() {
            borrowed.push(file);
        }
        Ok(own.or_else(|| legacy.clone()))
    };
    let admin = role("admin-token")?;
    let peer = role("peer-token")?;
    let client = role("client-token")?;
    let metrics = read_token(dir, "metrics-token")?;
    let scoped = read_clients(dir)?;
    if !borrowed.is_empty() {
        tracing::warn!(
            auth_dir = %dir.display(),
            roles = ?borrowed,
            "the single `token` serves these roles: whoever holds it is an administrator \
             and a peer; give each role its own file"
        );
    }
    let missing = |file: &str| {
        format!(
            "{} has no {file} (nor the older single `token`)",
            dir.display()
        )
    };
    let admin = admin.with_context(|| missing("admin-token"))?;
    let peer = peer.with_context(|| missing("peer-token"))?;
    let (admin, peer, clients) = checked(admin, peer, client, metrics.as_ref(), scoped)
        .with_context(|| format!("credentials in {}", dir.display()))?;
    Ok(Roles {
        admin,
        peer,
        metrics: metrics.map(|found| found.secret),
        clients,
    })
}

/// The roles' tokens and the clients; refuses two roles or clients
/// sharing a token (roles may share the older single `token`).
fn checked(
    admin: Found,
    peer: Found,
    client: Option<Found>,
    metrics: Option<&Found>,
    scoped: Vec<Client>,
) -> anyhow::Result<(Secret, Secret, Vec<Client>)> {
    let mut clients: Vec<Client> = client
        .iter()
        .map(|found| Client {
            name: DEFAULT_CLIENT.into(),
            token: found.secret.clone(),
            prefix: String::new(),
            access: Access::ReadWrite,
        })
        .collect();
    clients.extend(scoped);
    let mut owners: Vec<(String, &Secret, &str)> = vec![
        ("admin-token".into(), &admin.secret, admin.file),
        ("peer-token".into(), &peer.secret, peer.file),
    ];
    if let Some(found) = &client {
        owners.push((DEFAULT_CLIENT.into(), &found.secret, found.file));
    }
    if let Some(found) = metrics {
        owners.push(("metrics-token".into(), &found.secret, found.file));
    }
    for scoped in clients.iter().skip(usize::from(client.is_some())) {
        owners.push((
            format!("client {:?}", scoped.name),
            &scoped.token,
            "clients.json",
        ));
    }
    for (i, (first, secret, file)) in owners.iter().enumerate() {
        for (second, other, other_file) in &owners[i + 1..] {
            let shared_legacy = *file == "token" && *other_file == "token";
            ensure!(
                shared_legacy || secret != other,
                "{first} and {second} hold the same token: give each its own"
            );
        }
    }
    Ok((admin.secret, peer.secret, clients))
}

impl Credentials {
    /// The token of the admin routes.
    pub fn admin(&self) -> &Secret {
        &self.admin
    }

    /// The token of the node-to-node stream.
    pub fn peer(&self) -> &Secret {
        &self.peer
    }

    /// The token `/metrics` requires, if any.
    pub fn metrics(&self) -> Option<&Secret> {
        self.metrics.as_ref()
    }

    /// The client whose token is `given`, if any.
    pub fn client(&self, given: &str) -> Option<Arc<Client>> {
        let clients = crate::sync::read(&self.clients);
        clients.iter().find(|c| c.token.matches(given)).cloned()
    }
}

/// `text` trimmed, if it is one word (no inner whitespace or control
/// characters).
fn one_word(text: &str) -> Option<&str> {
    let word = text.trim();
    let valid = !word.is_empty() && !word.chars().any(|c| c.is_whitespace() || c.is_control());
    valid.then_some(word)
}

/// The token in `dir/file`, or `None` if there is no such file.
fn read_token(dir: &Path, file: &'static str) -> anyhow::Result<Option<Found>> {
    let path = dir.join(file);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error).with_context(|| format!("reading the token {}", path.display()));
        }
    };
    let Some(word) = one_word(&text) else {
        bail!("the token in {} must be one non-empty word", path.display());
    };
    Ok(Some(Found {
        secret: Secret(word.into()),
        file,
    }))
}

/// The application tokens in `dir/clients.json` (none without the file).
fn read_clients(dir: &Path) -> anyhow::Result<Vec<Client>> {
    let path = dir.join("clients.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    };
    let clients: Vec<Client> = serde_json::from_str(&text).with_context(|| {
        format!(
            "parsing {}: expected [{{\"name\", \"token\", \"prefix\", \"access\": \"read\" | \
             \"read-write\"}}, ...]",
            path.display()
        )
    })?;
    for (i, client) in clients.iter().enumerate() {
        ensure!(
            !client.name.is_empty(),
            "{}: client {i} has an empty name",
            path.display()
        );
        ensure!(
            clients[..i].iter().all(|c| c.name != client.name),
            "{}: two clients are named {:?}",
            path.display(),
            client.name
        );
    }
    Ok(clients)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    fn load(files: &[(&str, &str)]) -> anyhow::Result<Credentials> {
        Credentials::load(dir_with(files).path())
    }

    #[test]
    fn only_the_exact_token_matches() {
        let secret = Secret("s3cret".into());
        assert!(secret.matches("s3cret"));
        assert!(!secret.matches("s3cre"));
        assert!(!secret.matches("s3cretX"));
        assert!(!secret.matches(""));
        assert_eq!(format!("{secret:?}"), "Secret(..)");
    }

    #[test]
    fn each_role_reads_its_own_file() {
        let clients =
            r#"[{"name": "orders", "token": "t-orders", "prefix": "orders/", "access": "read"}]"#;
        let c = load(&[
            ("admin-token", "t-admin\n"),
            ("peer-token", "t-peer"),
            ("client-token", "t-client"),
            ("clients.json", clients),
        ])
        .unwrap();
        assert!(c.admin().matches("t-admin"));
        assert!(c.peer().matches("t-peer"));
        assert_eq!(c.client("t-client").unwrap().name, "client-token");
        let orders = c.client("t-orders").unwrap();
        assert!(orders.may(Operation::Read, b"orders/1"));
        assert!(!orders.may(Operation::Write, b"orders/1"));
        assert!(!orders.may(Operation::Read, b"users/1"));
        assert!(c.client("t-admin").is_none());
        assert!(c.client("t-peer").is_none());
    }

    #[test]
    fn the_older_single_token_fills_the_roles_without_a_file() {
        let c = load(&[("token", "legacy"), ("admin-token", "t-admin")]).unwrap();
        assert!(c.admin().matches("t-admin"));
        assert!(!c.admin().matches("legacy"));
        assert!(c.peer().matches("legacy"));
        assert!(c.client("legacy").unwrap().may(Operation::Write, b"any"));
    }

    #[test]
    fn the_metrics_token_is_optional() {
        let c = load(&[("admin-token", "a"), ("peer-token", "p")]).unwrap();
        assert!(c.metrics().is_none());
        let c = load(&[
            ("admin-token", "a"),
            ("peer-token", "p"),
            ("metrics-token", "m"),
        ])
        .unwrap();
        assert!(c.metrics().unwrap().matches("m"));
        assert!(c.client("m").is_none());
    }

    #[test]
    fn missing_roles_shared_tokens_and_bad_files_are_refused() {
        let error = |files: &[(&str, &str)]| format!("{:#}", load(files).unwrap_err());
        assert!(error(&[("peer-token", "p")]).contains("no admin-token"));
        assert!(error(&[("admin-token", "a")]).contains("no peer-token"));
        let shared = error(&[("admin-token", "same"), ("peer-token", "same")]);
        assert!(shared.contains("same token"), "{shared}");
        let scoped_admin = r#"[{"name": "x", "token": "a", "prefix": "", "access": "read"}]"#;
        let shared = error(&[
            ("admin-token", "a"),
            ("peer-token", "p"),
            ("clients.json", scoped_admin),
        ]);
        assert!(shared.contains("client \"x\""), "{shared}");
        let shared = error(&[
            ("admin-token", "a"),
            ("peer-token", "p"),
            ("metrics-token", "a"),
        ]);
        assert!(shared.contains("metrics-token"), "{shared}");
        let two_words = error(&[("admin-token", "a b"), ("peer-token", "p")]);
        assert!(two_words.contains("one non-empty word"), "{two_words}");
        for bad in [
            "{}",
            r#"[{"name": "x", "token": "t", "prefix": "", "access": "write"}]"#,
            r#"[{"name": "x", "token": "t", "prefix": "", "access": "read", "extra": 1}]"#,
            r#"[{"name": "", "token": "t", "prefix": "", "access": "read"}]"#,
            r#"[{"name": "x", "token": "t1", "prefix": "", "access": "read"},
                {"name": "x", "token": "t2", "prefix": "", "access": "read"}]"#,
        ] {
            let message = error(&[
                ("admin-token", "a"),
                ("peer-token", "p"),
                ("clients.json", bad),
            ]);
            assert!(message.contains("clients.json"), "{bad}: {message}");
        }
    }

    #[test]
    fn client_tokens_are_read_again_when_their_files_change() {
        let dir = dir_with(&[
            ("admin-token", "a"),
            ("peer-token", "p"),
            ("client-token", "c1"),
        ]);
        let c = Credentials::load(dir.path()).unwrap();
        assert!(!c.reload_clients().unwrap(), "nothing changed");
        let scoped = r#"[{"name": "x", "token": "t-x", "prefix": "x/", "access": "read"}]"#;
        std::fs::write(dir.path().join("clients.json"), scoped).unwrap();
        std::fs::remove_file(dir.path().join("client-token")).unwrap();
        assert!(c.reload_clients().unwrap());
        assert!(c.client("c1").is_none(), "a removed token is revoked");
        assert_eq!(c.client("t-x").unwrap().name, "x");
        std::fs::write(dir.path().join("clients.json"), "not json").unwrap();
        let error = format!("{:#}", c.reload_clients().unwrap_err());
        assert!(error.contains("stay as they were"), "{error}");
        assert_eq!(
            c.client("t-x").unwrap().name,
            "x",
            "a broken file changes nothing"
        );
        assert!(
            !c.reload_clients().unwrap(),
            "a broken file is reported once"
        );
    }

    #[test]
    fn no_client_credentials_is_allowed() {
        let c = load(&[("admin-token", "a"), ("peer-token", "p")]).unwrap();
        assert!(c.client("a").is_none());
    }
}
