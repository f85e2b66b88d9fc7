//! TLS for every listener and every node-to-node connection (`--tls-dir`).
//!
//! The directory holds what a Kubernetes TLS Secret (for example one
//! cert-manager issues) holds: `tls.crt` (this node's certificate chain,
//! PEM), `tls.key` (its private key, PEM) and `ca.crt` (the CA that signed
//! every node's certificate). Listeners then speak HTTPS only, and a node
//! dials its peers over TLS, checking their certificate against `ca.crt`
//! for the host name of the peer's address and presenting its own as a
//! client certificate: listeners ask for one and check it against
//! `ca.crt`, and the node-to-node stream requires it (mutual TLS), while
//! clients and administrators may connect without one.
//!
//! The files are read again when they change ([`Tls::reload`]), as
//! cert-manager renews the Secret in place and the kubelet swaps the
//! mounted files: new connections, accepted or dialed, then use the new
//! certificate and `ca.crt`, while open ones go on with the old. Files
//! that do not form a usable certificate (half written, a key of another
//! certificate) leave the current one in use.
//!
//! A certificate that peers will refuse (expired, not yet valid, not
//! signed by `ca.crt`, not for the node's address) does not stop the node,
//! as it may be renewed in place, but it is a warning, as is one close to
//! its expiry ([`Tls::warn_if_peers_refuse`]).

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{CertificateError, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::file_watch::FileWatch;
use crate::sync::{lock, read, write};

/// The files of `--tls-dir`: the certificate chain, its key, the CA.
const FILES: [&str; 3] = ["tls.crt", "tls.key", "ca.crt"];

/// A certificate expiring sooner than this is a warning: its renewal is
/// late (cert-manager renews a third of the lifetime before the end).
pub const EXPIRY_WARNING: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often a warning about the certificate that still holds is logged
/// again.
pub const WARNING_REPEAT: Duration = Duration::from_secs(3600);

/// The server and client sides of this node's TLS, as last read from
/// `--tls-dir`. Clones share the state: a reload reaches every holder.
#[derive(Clone)]
pub struct Tls(Arc<Shared>);

/// What every clone of a [`Tls`] shares.
struct Shared {
    /// The configuration new connections use.
    current: RwLock<Arc<Loaded>>,
    /// The files of `--tls-dir`, to read them again when they change.
    watch: FileWatch,
    /// The last warning logged about the certificate.
    warnings: Mutex<Warnings>,
}

/// One version of the files, and the configurations built from them.
struct Loaded {
    /// Accepts connections on the listeners.
    server: Arc<ServerConfig>,
    /// Opens connections to peers.
    client: Arc<ClientConfig>,
    /// The contents of [`FILES`], to tell a change from a touch.
    files: [Vec<u8>; 3],
    /// This node's certificate chain, and what its peers check it against.
    chain: Vec<CertificateDer<'static>>,
    roots: RootCertStore,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tls { .. }")
    }
}

impl Tls {
    /// Loads `tls.crt`, `tls.key` and `ca.crt` from `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let watch = FileWatch::new(dir, &FILES);
        let loaded = Loaded::read(dir)?;
        Ok(Self(Arc::new(Shared {
            current: RwLock::new(Arc::new(loaded)),
            watch,
            warnings: Mutex::new(Warnings::default()),
        })))
    }

    /// The `--tls-dir` the files are read from.
    pub fn dir(&self) -> &Path {
        self.0.watch.dir()
    }

    /// Accepts a connection with the current certificate.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current().server.clone())
    }

    /// Dials a peer with the current certificate and `ca.crt`.
    pub fn connector(&self) -> TlsConnector {
        TlsConnector::from(self.current().client.clone())
    }

    fn current(&self) -> Arc<Loaded> {
        read(&self.0.current).clone()
    }

    /// Reads the files again if they changed since last looked at (inode,
    /// length or modification time, following symlinks as the kubelet's
    /// swap of `..data` needs); returns whether the configuration changed
    /// (files rewritten with the same contents change nothing). Files that
    /// do not form a usable certificate keep the current configuration:
    /// the error says why, once per change of the files.
    pub fn reload(&self) -> anyhow::Result<bool> {
        if !self.0.watch.changed() {
            return Ok(false);
        }
        let dir = self.dir();
        let keep = || {
            format!(
                "reading the changed files in {}; the node keeps its current certificate",
                dir.display()
            )
        };
        let loaded = Loaded::read(dir).with_context(keep)?;
        if loaded.files == self.current().files {
            return Ok(false);
        }
        *write(&self.0.current) = Arc::new(loaded);
        Ok(true)
    }

    /// When the current certificate expires (its not-after time).
    pub fn not_after(&self) -> Option<SystemTime> {
        let loaded = self.current();
        let (end_entity, intermediates) = loaded.chain.split_first()?;
        let cert = ParsedCertificate::try_from(end_entity).ok()?;
        // Checked at the end of time, every certificate has expired, and
        // the error tells when: the validity is checked before the chain.
        let end_of_time = UnixTime::since_unix_epoch(Duration::from_secs(u64::MAX));
        let algorithms = loaded.provider.signature_verification_algorithms.all;
        match verify_server_cert_signed_by_trust_anchor(
            &cert,
            &loaded.roots,
            intermediates,
            end_of_time,
            algorithms,
        ) {
            Err(rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
                not_after,
                ..
            })) => Some(system_time(not_after)),
            _ => None,
        }
    }

    /// Why a peer dialing this node at `address` (`HOST:PORT`) at time
    /// `now` would refuse its certificate, checking it as peers do against
    /// `ca.crt`: expired, not valid yet, not signed by the CA, or not for
    /// that host; `None` if it would accept it. The host is not checked
    /// when it is unspecified (`0.0.0.0`: a node not told its address).
    pub fn peer_refusal(&self, address: &str, now: UnixTime) -> Option<String> {
        let loaded = self.current();
        let (end_entity, intermediates) = loaded.chain.split_first()?;
        let refusal = |error: rustls::Error| match error {
            rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
                not_after,
                ..
            }) => format!("certificate expired at {}", rfc3339(not_after)),
            rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext {
                not_before,
                ..
            }) => format!(
                "certificate not valid yet: valid from {}",
                rfc3339(not_before)
            ),
            rustls::Error::InvalidCertificate(error) => error.to_string(),
            other => other.to_string(),
        };
        let cert = match ParsedCertificate::try_from(end_entity) {
            Ok(cert) => cert,
            Err(error) => return Some(refusal(error)),
        };
        let algorithms = loaded.provider.signature_verification_algorithms.all;
        if let Err(error) = verify_server_cert_signed_by_trust_anchor(
            &cert,
            &loaded.roots,
            intermediates,
            now,
            algorithms,
        ) {
            return Some(refusal(error));
        }
        if host(address)
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified())
        {
            return None;
        }
        let name = match server_name(address) {
            Ok(name) => name,
            Err(error) => return Some(error),
        };
        verify_server_name(&cert, &name).err().map(refusal)
    }

    /// What is wrong with the current certificate at time `now` for peers
    /// reaching this node at `address`: that they refuse it (see
    /// [`Tls::peer_refusal`]), or that it expires within
    /// [`EXPIRY_WARNING`].
    fn warning(&self, address: &str, now: UnixTime) -> Option<String> {
        if let Some(reason) = self.peer_refusal(address, now) {
            return Some(format!(
                "peers will refuse this node's certificate (tls.crt): {reason}"
            ));
        }
        let not_after = self.not_after()?;
        let left = not_after
            .duration_since(system_time(now))
            .unwrap_or_default();
        (left < EXPIRY_WARNING).then(|| {
            format!(
                "this node's certificate (tls.crt) expires at {}, in less than {}: peers will \
                 refuse it then unless it is renewed",
                humantime::format_rfc3339_seconds(not_after),
                humantime::format_duration(EXPIRY_WARNING)
            )
        })
    }

    /// Logs a warning if peers would refuse this node's certificate now
    /// (see [`Tls::peer_refusal`]) or it expires within
    /// [`EXPIRY_WARNING`], `address` being where peers reach the node. A
    /// warning that still holds is logged again at most every
    /// [`WARNING_REPEAT`]; its end is logged once.
    pub fn warn_if_peers_refuse(&self, address: &str) {
        let warning = self.warning(address, UnixTime::now());
        let notice = lock(&self.0.warnings).note(warning, Instant::now());
        let tls_dir = self.dir().display();
        match notice {
            Notice::Quiet => {}
            Notice::Warn(warning) => tracing::warn!(%tls_dir, %address, "{warning}"),
            Notice::Cleared => {
                tracing::info!(%tls_dir, %address, "this node's certificate is fine again")
            }
        }
    }
}

impl Loaded {
    /// Reads [`FILES`] in `dir` and builds the configurations.
    fn read(dir: &Path) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
        };
        let cert_pem = read("tls.crt")?;
        let chain = parse_certs(&dir.join("tls.crt"), &cert_pem)?;
        let key_pem = read("tls.key")?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).with_context(|| {
            format!("parsing the private key {}", dir.join("tls.key").display())
        })?;
        let ca_pem = read("ca.crt")?;
        let mut roots = RootCertStore::empty();
        for ca in parse_certs(&dir.join("ca.crt"), &ca_pem)? {
            roots
                .add(ca)
                .context("adding ca.crt to the trusted roots")?;
        }
        let peers =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots.clone()), provider.clone())
                .allow_unauthenticated()
                .build()
                .context("checking client certificates against ca.crt")?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_client_cert_verifier(peers)
            .with_single_cert(chain.clone(), key.clone_key())
            .context("tls.crt and tls.key do not form a usable certificate")?;
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        let client = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(chain.clone(), key)
            .context("tls.crt and tls.key as the client certificate to peers")?;
        Ok(Self {
            server: Arc::new(server),
            client: Arc::new(client),
            files: [cert_pem, key_pem, ca_pem],
            chain,
            roots,
            provider,
        })
    }
}

/// The certificates in `pem`, the contents of `path`: at least one.
fn parse_certs(path: &Path, pem: &[u8]) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "{} holds no certificate", path.display());
    Ok(certs)
}

/// `time` as a [`SystemTime`], to the second.
fn system_time(time: UnixTime) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(time.as_secs())
}

/// `time` as RFC 3339, to the second.
fn rfc3339(time: UnixTime) -> String {
    humantime::format_rfc3339_seconds(system_time(time)).to_string()
}

/// The warning last logged about the certificate, and when.
#[derive(Default)]
struct Warnings {
    last: Option<(String, Instant)>,
}

/// What to log about the certificate.
#[derive(Debug, PartialEq)]
enum Notice {
    /// Nothing.
    Quiet,
    /// This warning.
    Warn(String),
    /// That the last warning no longer holds.
    Cleared,
}

impl Warnings {
    /// What to log at `now` given the `warning` that holds (`None`: all is
    /// well): a new warning at once, one that still holds again after
    /// [`WARNING_REPEAT`], and the end of one.
    fn note(&mut self, warning: Option<String>, now: Instant) -> Notice {
        match (warning, &self.last) {
            (None, None) => Notice::Quiet,
            (None, Some(_)) => {
                self.last = None;
                Notice::Cleared
            }
            (Some(warning), Some((last, at)))
                if *last == warning && now.duration_since(*at) < WARNING_REPEAT =>
            {
                Notice::Quiet
            }
            (Some(warning), _) => {
                self.last = Some((warning.clone(), now));
                Notice::Warn(warning)
            }
        }
    }
}

/// The host of `HOST:PORT` (without the brackets of an IPv6 address).
fn host(address: &str) -> &str {
    address
        .rsplit_once(':')
        .map_or(address, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']')
}

/// The name a peer's certificate must carry: the host of `HOST:PORT`.
pub fn server_name(address: &str) -> Result<ServerName<'static>, String> {
    let host = host(address);
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("{host} is not a valid TLS name: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamo_testkit::pki::{TestCa, handshake, replace_file};

    /// 4096-01-01T00:00:00Z, when the test CA's certificates expire.
    const TEST_NOT_AFTER: u64 = 67_090_118_400;

    #[test]
    fn peer_names_come_from_the_address_host() {
        assert_eq!(
            format!("{:?}", server_name("n1.demo-a.default.svc:7000").unwrap()),
            format!(
                "{:?}",
                ServerName::try_from("n1.demo-a.default.svc").unwrap()
            )
        );
        assert!(matches!(
            server_name("127.0.0.1:7000").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]:7000").unwrap(),
            ServerName::IpAddress(_)
        ));
    }

    /// TLS loaded from a directory with a certificate for 127.0.0.1 signed
    /// by `signer`, and `trusted` as `ca.crt`.
    fn load_issued(signer: &TestCa, trusted: &TestCa) -> Tls {
        let dir = tempfile::tempdir().unwrap();
        signer.write_tls_dir(dir.path(), &["127.0.0.1"]);
        std::fs::write(dir.path().join("ca.crt"), trusted.pem()).unwrap();
        Tls::load(dir.path()).unwrap()
    }

    #[test]
    fn a_certificate_peers_would_refuse_is_named_with_the_reason() {
        let ca = TestCa::new("test CA");
        let tls = load_issued(&ca, &ca);
        let now = UnixTime::now();
        assert_eq!(tls.peer_refusal("127.0.0.1:7000", now), None);
        assert_eq!(tls.peer_refusal("0.0.0.0:7000", now), None);
        let wrong_host = tls.peer_refusal("10.1.2.3:7000", now).unwrap();
        assert!(wrong_host.contains("not valid for name"), "{wrong_host}");
        // The test CA's certificates are valid from 1975 to 4096.
        let year_5000 = UnixTime::since_unix_epoch(Duration::from_secs(95_617_584_000));
        let expired = tls.peer_refusal("127.0.0.1:7000", year_5000).unwrap();
        assert_eq!(expired, "certificate expired at 4096-01-01T00:00:00Z");
        let year_1971 = UnixTime::since_unix_epoch(Duration::from_secs(31_536_000));
        let early = tls.peer_refusal("127.0.0.1:7000", year_1971).unwrap();
        assert!(early.contains("not valid yet"), "{early}");
        assert!(early.contains("1975-01-01T00:00:00Z"), "{early}");
        let stranger = TestCa::new("another CA");
        let foreign = load_issued(&ca, &stranger);
        let unknown = foreign.peer_refusal("127.0.0.1:7000", now).unwrap();
        assert!(unknown.contains("UnknownIssuer"), "{unknown}");
    }

    #[test]
    fn the_expiry_is_known_and_a_near_one_is_a_warning() {
        let ca = TestCa::new("test CA");
        let tls = load_issued(&ca, &ca);
        let not_after = Duration::from_secs(TEST_NOT_AFTER);
        assert_eq!(tls.not_after(), Some(SystemTime::UNIX_EPOCH + not_after));
        let address = "127.0.0.1:7000";
        assert_eq!(tls.warning(address, UnixTime::now()), None);
        let a_day_before = UnixTime::since_unix_epoch(not_after - Duration::from_secs(86_400));
        let soon = tls.warning(address, a_day_before).unwrap();
        assert!(soon.contains("expires at 4096-01-01T00:00:00Z"), "{soon}");
        let refused = tls.warning("10.1.2.3:7000", UnixTime::now()).unwrap();
        assert!(refused.starts_with("peers will refuse"), "{refused}");
    }

    #[test]
    fn a_warning_is_logged_when_it_starts_changes_or_an_hour_passed() {
        let mut warnings = Warnings::default();
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        let expired = || Some("expired".to_string());
        assert_eq!(warnings.note(None, at(0)), Notice::Quiet);
        assert_eq!(
            warnings.note(expired(), at(0)),
            Notice::Warn("expired".into())
        );
        assert_eq!(warnings.note(expired(), at(10)), Notice::Quiet);
        assert_eq!(warnings.note(expired(), at(3_599)), Notice::Quiet);
        assert_eq!(
            warnings.note(expired(), at(3_600)),
            Notice::Warn("expired".into())
        );
        assert_eq!(
            warnings.note(Some("wrong host".into()), at(3_610)),
            Notice::Warn("wrong host".into())
        );
        assert_eq!(warnings.note(None, at(3_620)), Notice::Cleared);
        assert_eq!(warnings.note(None, at(3_630)), Notice::Quiet);
        assert_eq!(
            warnings.note(expired(), at(3_640)),
            Notice::Warn("expired".into())
        );
    }

    #[test]
    fn missing_or_broken_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let error = Tls::load(dir.path()).unwrap_err();
        assert!(format!("{error:#}").contains("tls.crt"), "{error:#}");
        std::fs::write(dir.path().join("tls.crt"), "not pem").unwrap();
        let error = Tls::load(dir.path()).unwrap_err();
        assert!(format!("{error:#}").contains("tls.crt"), "{error:#}");
    }

    /// Whether a handshake with `server` as 127.0.0.1 completes, `client`
    /// dialing: each checks the other's certificate (the client's, if it
    /// presents one).
    fn connects(client: &TlsConnector, server: &TlsAcceptor) -> bool {
        handshake(
            "127.0.0.1",
            client.config().clone(),
            server.config().clone(),
        )
        .is_ok()
    }

    /// A directory of a certificate for 127.0.0.1 signed by `ca`.
    fn tls_dir(ca: &TestCa) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        ca.write_tls_dir(dir.path(), &["127.0.0.1"]);
        dir
    }

    #[test]
    fn a_reload_takes_the_new_certificate_and_ca_for_new_connections() {
        let (old, new) = (TestCa::new("old CA"), TestCa::new("new CA"));
        let dir = tls_dir(&old);
        let tls = Tls::load(dir.path()).unwrap();
        let old_peer = Tls::load(tls_dir(&old).path()).unwrap();
        let new_peer = Tls::load(tls_dir(&new).path()).unwrap();
        let accepting_before = tls.acceptor();
        assert!(connects(&tls.connector(), &old_peer.acceptor()));
        assert!(connects(&old_peer.connector(), &tls.acceptor()));
        assert!(!connects(&tls.connector(), &new_peer.acceptor()));
        assert!(!connects(&new_peer.connector(), &tls.acceptor()));

        let issued = new.issue(&["127.0.0.1"]);
        replace_file(dir.path(), "tls.crt", &issued.cert_pem);
        replace_file(dir.path(), "tls.key", &issued.key_pem);
        replace_file(dir.path(), "ca.crt", new.pem());
        assert!(tls.reload().unwrap());
        // Both ways, each side checks the other's certificate against its
        // own ca.crt: the node now presents and trusts the new CA's only.
        assert!(connects(&tls.connector(), &new_peer.acceptor()));
        assert!(connects(&new_peer.connector(), &tls.acceptor()));
        assert!(!connects(&tls.connector(), &old_peer.acceptor()));
        assert!(!connects(&old_peer.connector(), &tls.acceptor()));
        assert!(
            connects(&old_peer.connector(), &accepting_before),
            "what was taken before the reload keeps the old certificate"
        );
        assert!(!tls.reload().unwrap(), "a reload happens once per change");
    }

    #[test]
    fn files_that_do_not_form_a_certificate_keep_the_current_one() {
        let (old, new) = (TestCa::new("old CA"), TestCa::new("new CA"));
        let dir = tls_dir(&old);
        let tls = Tls::load(dir.path()).unwrap();
        let old_peer = Tls::load(tls_dir(&old).path()).unwrap();
        let new_peer = Tls::load(tls_dir(&new).path()).unwrap();
        let issued = new.issue(&["127.0.0.1"]);

        // The new certificate and CA, with the old key.
        replace_file(dir.path(), "tls.crt", &issued.cert_pem);
        replace_file(dir.path(), "ca.crt", new.pem());
        let error = format!("{:#}", tls.reload().unwrap_err());
        assert!(error.contains("keeps its current certificate"), "{error}");
        assert!(
            error.contains("do not form a usable certificate"),
            "{error}"
        );
        assert!(connects(&old_peer.connector(), &tls.acceptor()));
        assert!(connects(&tls.connector(), &old_peer.acceptor()));
        assert!(!tls.reload().unwrap(), "a failure is reported once");

        // The new key, half written.
        let half = &issued.key_pem[..issued.key_pem.len() / 2];
        replace_file(dir.path(), "tls.key", half);
        let error = format!("{:#}", tls.reload().unwrap_err());
        assert!(error.contains("tls.key"), "{error}");
        assert!(connects(&old_peer.connector(), &tls.acceptor()));

        replace_file(dir.path(), "tls.key", &issued.key_pem);
        assert!(tls.reload().unwrap());
        assert!(connects(&new_peer.connector(), &tls.acceptor()));
        assert!(connects(&tls.connector(), &new_peer.acceptor()));
    }

    #[test]
    fn files_that_did_not_change_are_not_taken_again() {
        let ca = TestCa::new("test CA");
        let dir = tls_dir(&ca);
        let tls = Tls::load(dir.path()).unwrap();
        let serving = tls.acceptor();
        assert!(!tls.reload().unwrap());
        for file in FILES {
            let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
            replace_file(dir.path(), file, &text);
        }
        assert!(
            !tls.reload().unwrap(),
            "files written again with the same contents change nothing"
        );
        assert!(Arc::ptr_eq(serving.config(), tls.acceptor().config()));
    }
}
