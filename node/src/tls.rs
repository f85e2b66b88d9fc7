//! TLS for every listener and every node-to-node connection (`--tls-dir`).
//!
//! The directory holds what a Kubernetes TLS Secret (for example one
//! cert-manager issues) holds: `tls.crt` (this node's certificate chain,
//! PEM), `tls.key` (its private key, PEM) and `ca.crt` (the CA that signed
//! every node's certificate). Listeners then speak HTTPS only, and a node
//! dials its peers over TLS, checking their certificate against `ca.crt`
//! for the host name of the peer's address.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The server and client sides of this node's TLS.
#[derive(Clone)]
pub struct Tls {
    /// Accepts connections on the listeners.
    pub acceptor: TlsAcceptor,
    /// Opens connections to peers.
    pub connector: TlsConnector,
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
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .context("tls.crt and tls.key do not form a usable certificate")?;
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }
}

/// The name a peer's certificate must carry: the host of `HOST:PORT`.
pub fn server_name(address: &str) -> Result<ServerName<'static>, String> {
    let host = address
        .rsplit_once(':')
        .map_or(address, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
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
