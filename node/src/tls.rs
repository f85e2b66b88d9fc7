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
//! A certificate that peers will refuse (expired, not yet valid, not
//! signed by `ca.crt`, not for the node's address) does not stop the node,
//! as a certificate renewed in place is picked up by the next start, but
//! it is a warning at start ([`Tls::warn_if_peers_refuse`]).

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The server and client sides of this node's TLS.
#[derive(Clone)]
pub struct Tls {
    /// Accepts connections on the listeners.
    pub acceptor: TlsAcceptor,
    /// Opens connections to peers.
    pub connector: TlsConnector,
    own: Arc<OwnCertificate>,
}

/// This node's certificate chain, and what its peers check it against.
struct OwnCertificate {
    /// The `--tls-dir` it was read from.
    dir: PathBuf,
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
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let read_certs = |name: &str| -> anyhow::Result<Vec<CertificateDer<'static>>> {
            let path = dir.join(name);
            let certs = CertificateDer::pem_file_iter(&path)
                .with_context(|| format!("reading {}", path.display()))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("parsing {}", path.display()))?;
            anyhow::ensure!(!certs.is_empty(), "{} holds no certificate", path.display());
            Ok(certs)
        };
        let chain = read_certs("tls.crt")?;
        let key_path = dir.join("tls.key");
        let key = PrivateKeyDer::from_pem_file(&key_path)
            .with_context(|| format!("reading the private key {}", key_path.display()))?;
        let mut roots = RootCertStore::empty();
        for ca in read_certs("ca.crt")? {
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
        let own = OwnCertificate {
            dir: dir.to_path_buf(),
            chain,
            roots,
            provider,
        };
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            own: Arc::new(own),
        })
    }

    /// Why a peer dialing this node at `address` (`HOST:PORT`) at time
    /// `now` would refuse its certificate, checking it as peers do against
    /// `ca.crt`: expired, not valid yet, not signed by the CA, or not for
    /// that host; `None` if it would accept it. The host is not checked
    /// when it is unspecified (`0.0.0.0`: a node not told its address).
    pub fn peer_refusal(&self, address: &str, now: UnixTime) -> Option<String> {
        let own = &self.own;
        let (end_entity, intermediates) = own.chain.split_first()?;
        let refusal = |error: rustls::Error| match error {
            rustls::Error::InvalidCertificate(error) => error.to_string(),
            other => other.to_string(),
        };
        let cert = match ParsedCertificate::try_from(end_entity) {
            Ok(cert) => cert,
            Err(error) => return Some(refusal(error)),
        };
        let algorithms = own.provider.signature_verification_algorithms.all;
        if let Err(error) = verify_server_cert_signed_by_trust_anchor(
            &cert,
            &own.roots,
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

    /// Logs a warning if peers would refuse this node's certificate now
    /// (see [`Tls::peer_refusal`]), `address` being where they reach it.
    pub fn warn_if_peers_refuse(&self, address: &str) {
        if let Some(reason) = self.peer_refusal(address, UnixTime::now()) {
            tracing::warn!(
                tls_dir = %self.own.dir.display(),
                %address,
                "peers will refuse this node's certificate (tls.crt): {reason}"
            );
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
    fn load_issued(
        signer: &dynamo_testkit::pki::TestCa,
        trusted: &dynamo_testkit::pki::TestCa,
    ) -> Tls {
        let dir = tempfile::tempdir().unwrap();
        signer.write_tls_dir(dir.path(), &["127.0.0.1"]);
        std::fs::write(dir.path().join("ca.crt"), trusted.pem()).unwrap();
        Tls::load(dir.path()).unwrap()
    }

    #[test]
    fn a_certificate_peers_would_refuse_is_named_with_the_reason() {
        use std::time::Duration;
        let ca = dynamo_testkit::pki::TestCa::new("test CA");
        let tls = load_issued(&ca, &ca);
        let now = UnixTime::now();
        assert_eq!(tls.peer_refusal("127.0.0.1:7000", now), None);
        assert_eq!(tls.peer_refusal("0.0.0.0:7000", now), None);
        let wrong_host = tls.peer_refusal("10.1.2.3:7000", now).unwrap();
        assert!(wrong_host.contains("not valid for name"), "{wrong_host}");
        // The test CA's certificates are valid from 1975 to 4096.
        let year_5000 = UnixTime::since_unix_epoch(Duration::from_secs(95_617_584_000));
        let expired = tls.peer_refusal("127.0.0.1:7000", year_5000).unwrap();
        assert!(expired.contains("expired"), "{expired}");
        let year_1971 = UnixTime::since_unix_epoch(Duration::from_secs(31_536_000));
        let early = tls.peer_refusal("127.0.0.1:7000", year_1971).unwrap();
        assert!(early.contains("not valid yet"), "{early}");
        let stranger = dynamo_testkit::pki::TestCa::new("another CA");
        let foreign = load_issued(&ca, &stranger);
        let unknown = foreign.peer_refusal("127.0.0.1:7000", now).unwrap();
        assert!(unknown.contains("UnknownIssuer"), "{unknown}");
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
}
