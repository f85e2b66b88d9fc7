//! A throwaway certificate authority for tests.

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

/// A self-signed CA made for one test.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// A certificate signed by a [`TestCa`], with its private key.
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl TestCa {
    /// A fresh CA whose subject's common name is `common_name`.
    pub fn new(common_name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let key = KeyPair::generate().expect("CA key");
        let pem = params.self_signed(&key).expect("CA certificate").pem();
        TestCa {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// The CA certificate, PEM (what a Secret's `ca.crt` holds).
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A certificate for `names` (DNS names, or IP addresses written as
    /// text, which become IP subject alternative names).
    pub fn issue(&self, names: &[&str]) -> Issued {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let key = KeyPair::generate().expect("certificate key");
        let cert = CertificateParams::new(names)
            .expect("certificate parameters")
            .signed_by(&key, &self.issuer)
            .expect("certificate");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    /// Writes `tls.crt` and `tls.key` (one certificate for `names`) and
    /// `ca.crt` into `dir`, as a node's `--tls-dir` expects.
    pub fn write_tls_dir(&self, dir: &Path, names: &[&str]) {
        let issued = self.issue(names);
        std::fs::create_dir_all(dir).expect("TLS directory");
        std::fs::write(dir.join("tls.crt"), &issued.cert_pem).expect("tls.crt");
        std::fs::write(dir.join("tls.key"), &issued.key_pem).expect("tls.key");
        std::fs::write(dir.join("ca.crt"), &self.pem).expect("ca.crt");
    }

    /// A rustls client configuration trusting only this CA.
    pub fn client_config(&self) -> rustls::ClientConfig {
        client_config(&self.pem)
    }
}

impl Issued {
    /// A rustls client configuration trusting only the CA certificates in
    /// `ca_pem` and presenting this certificate as its client certificate.
    pub fn client_config(&self, ca_pem: &str) -> rustls::ClientConfig {
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots(ca_pem))
            .with_client_auth_cert(
                vec![self.cert_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )
            .expect("client configuration")
    }

    /// A rustls server configuration presenting this certificate.
    pub fn server_config(&self) -> rustls::ServerConfig {
        rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )
            .expect("server configuration")
    }
}

/// A rustls client configuration trusting only the CA certificates in
/// `ca_pem`.
pub fn client_config(ca_pem: &str) -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots(ca_pem))
        .with_no_client_auth()
}

/// The CA certificates in `ca_pem` as trusted roots.
fn roots(ca_pem: &str) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA root");
    }
    roots
}

/// Replaces `dir/name` with `contents` as the kubelet updates a mounted
/// Secret: a new file renamed over the old one (a new inode), so that a
/// reader never sees it half written.
pub fn replace_file(dir: &Path, name: &str, contents: &str) {
    let staged = dir.join(format!(".{name}.new"));
    std::fs::write(&staged, contents).expect("staging a file");
    std::fs::rename(&staged, dir.join(name)).expect("renaming a staged file");
}

/// Runs a TLS handshake in memory with the server called `name`; `Err`
/// when either side refuses the other's certificate.
pub fn handshake(
    name: &str,
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
) -> Result<(), rustls::Error> {
    let name = ServerName::try_from(name.to_string()).expect("server name");
    let mut client = rustls::ClientConnection::new(client, name)?;
    let mut server = rustls::ServerConnection::new(server)?;
    while client.is_handshaking() || server.is_handshaking() {
        let mut buffer = Vec::new();
        client.write_tls(&mut buffer).expect("client bytes");
        server
            .read_tls(&mut buffer.as_slice())
            .expect("server reads");
        server.process_new_packets()?;
        buffer.clear();
        server.write_tls(&mut buffer).expect("server bytes");
        client
            .read_tls(&mut buffer.as_slice())
            .expect("client reads");
        client.process_new_packets()?;
    }
    Ok(())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_trusting_the_ca_accepts_its_certificates_and_no_other() {
        let ca = TestCa::new("test CA");
        let server = Arc::new(ca.issue(&["localhost", "127.0.0.1"]).server_config());
        assert!(handshake("localhost", Arc::new(ca.client_config()), server.clone()).is_ok());
        let stranger = TestCa::new("another CA");
        assert!(handshake("localhost", Arc::new(stranger.client_config()), server).is_err());
    }

    #[test]
    fn names_written_as_ip_addresses_are_ip_names() {
        let ca = TestCa::new("test CA");
        let server = Arc::new(ca.issue(&["127.0.0.1"]).server_config());
        assert!(handshake("127.0.0.1", Arc::new(ca.client_config()), server.clone()).is_ok());
        assert!(handshake("127.0.0.2", Arc::new(ca.client_config()), server).is_err());
    }

    #[test]
    fn a_tls_dir_holds_the_three_files_a_node_reads() {
        let dir = std::env::temp_dir().join(format!("testkit-pki-{}", std::process::id()));
        let ca = TestCa::new("test CA");
        ca.write_tls_dir(&dir, &["127.0.0.1"]);
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect(name);
        assert_eq!(read("ca.crt"), ca.pem());
        assert!(read("tls.crt").starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(read("tls.key").contains("PRIVATE KEY"));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
