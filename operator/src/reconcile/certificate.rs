//! Whether the nodes' certificate (the `spec.tls` Secret) is one their
//! peers accept: signed by `ca.crt`, valid now, matching `tls.key`, and
//! not about to expire. The result becomes the `TlsCertificate` condition,
//! so an expired or mismatched certificate shows in the cluster's status
//! (and as a warning in the operator's log) before nodes refuse each
//! other.

use std::time::Duration;

use rustls::RootCertStore;
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::sign::CertifiedKey;

/// How long before expiry a certificate is reported as expiring soon
/// (cert-manager renews 15 days ahead by default; a certificate still this
/// close to its end was not renewed).
pub const RENEWAL_WARNING: Duration = Duration::from_secs(7 * 24 * 3600);

/// The verdict on the nodes' certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateCheck {
    /// Whether peers accept it now.
    pub valid: bool,
    /// `PascalCase` reason: `Valid`, `ExpiresSoon`, `Expired`,
    /// `NotYetValid`, `NotFromCa`, `KeyMismatch` or `Unreadable`.
    pub reason: &'static str,
    /// What is wrong, for people.
    pub message: String,
}

impl CertificateCheck {
    fn problem(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            valid: false,
            reason,
            message: message.into(),
        }
    }
}

/// Checks the PEM `tls.crt` chain and `tls.key` against the PEM `ca.crt`
/// at `now`.
pub fn check_certificate(cert: &[u8], key: &[u8], ca: &[u8], now: UnixTime) -> CertificateCheck {
    let provider = rustls::crypto::ring::default_provider();
    let parsed: Result<Vec<CertificateDer<'static>>, _> =
        CertificateDer::pem_slice_iter(cert).collect();
    let chain = match parsed {
        Ok(chain) if !chain.is_empty() => chain,
        Ok(_) => return CertificateCheck::problem("Unreadable", "tls.crt holds no certificate"),
        Err(e) => return CertificateCheck::problem("Unreadable", format!("tls.crt: {e}")),
    };
    if let Some(problem) = key_mismatch(&provider, &chain, key) {
        return problem;
    }
    let mut roots = RootCertStore::empty();
    for anchor in CertificateDer::pem_slice_iter(ca).flatten() {
        let _ = roots.add(anchor);
    }
    if let Err(problem) = verify(&provider, &chain, &roots, now) {
        return problem;
    }
    let soon = UnixTime::since_unix_epoch(Duration::from_secs(now.as_secs()) + RENEWAL_WARNING);
    match verify(&provider, &chain, &roots, soon) {
        Err(later) if later.reason == "Expired" => CertificateCheck {
            valid: true,
            reason: "ExpiresSoon",
            message: format!(
                "tls.crt expires within {} days and was not renewed",
                RENEWAL_WARNING.as_secs() / 86_400
            ),
        },
        _ => CertificateCheck {
            valid: true,
            reason: "Valid",
            message: "tls.crt is signed by ca.crt, valid, and matches tls.key".into(),
        },
    }
}

/// A problem if `key` is not the private key of the chain's first
/// certificate (or does not parse).
fn key_mismatch(
    provider: &CryptoProvider,
    chain: &[CertificateDer<'static>],
    key: &[u8],
) -> Option<CertificateCheck> {
    let key = match PrivateKeyDer::from_pem_slice(key) {
        Ok(key) => key,
        Err(e) => {
            return Some(CertificateCheck::problem(
                "Unreadable",
                format!("tls.key: {e}"),
            ));
        }
    };
    let signing = match provider.key_provider.load_private_key(key) {
        Ok(signing) => signing,
        Err(e) => {
            return Some(CertificateCheck::problem(
                "Unreadable",
                format!("tls.key: {e}"),
            ));
        }
    };
    match CertifiedKey::new(chain.to_vec(), signing).keys_match() {
        Ok(()) => None,
        Err(rustls::Error::InconsistentKeys(_)) => Some(CertificateCheck::problem(
            "KeyMismatch",
            "tls.key is not the private key of tls.crt",
        )),
        Err(_) => None,
    }
}

/// Whether the chain leads to one of `roots` and is valid at `at`.
fn verify(
    provider: &CryptoProvider,
    chain: &[CertificateDer<'static>],
    roots: &RootCertStore,
    at: UnixTime,
) -> Result<(), CertificateCheck> {
    let (end_entity, intermediates) = chain.split_first().expect("a non-empty chain");
    let parsed = ParsedCertificate::try_from(end_entity)
        .map_err(|e| CertificateCheck::problem("Unreadable", format!("tls.crt: {e}")))?;
    let algorithms = provider.signature_verification_algorithms.all;
    verify_server_cert_signed_by_trust_anchor(&parsed, roots, intermediates, at, algorithms)
        .map_err(|error| {
            use rustls::CertificateError as E;
            let reason = match &error {
                rustls::Error::InvalidCertificate(E::Expired | E::ExpiredContext { .. }) => {
                    "Expired"
                }
                rustls::Error::InvalidCertificate(
                    E::NotValidYet | E::NotValidYetContext { .. },
                ) => "NotYetValid",
                rustls::Error::InvalidCertificate(E::UnknownIssuer | E::BadSignature) => {
                    "NotFromCa"
                }
                _ => "Unreadable",
            };
            CertificateCheck::problem(reason, format!("peers refuse tls.crt: {error}"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamo_testkit::pki::TestCa;

    fn at(seconds: u64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(seconds))
    }

    #[test]
    fn a_good_certificate_is_valid_and_each_fault_has_its_reason() {
        let ca = TestCa::new("cluster CA");
        let issued = ca.issue(&["n1.demo-a.kv.svc"]);
        let (cert, key) = (issued.cert_pem.as_bytes(), issued.key_pem.as_bytes());
        let check = |cert: &[u8], key: &[u8], ca: &[u8], now| check_certificate(cert, key, ca, now);
        let now = UnixTime::now();
        let good = check(cert, key, ca.pem().as_bytes(), now);
        assert_eq!((good.valid, good.reason), (true, "Valid"), "{good:?}");
        // The test CA's certificates are valid from 1975-01-01 to 4096-01-01.
        let expired = check(cert, key, ca.pem().as_bytes(), at(95_617_584_000)); // 5000-01-01
        assert_eq!(
            (expired.valid, expired.reason),
            (false, "Expired"),
            "{expired:?}"
        );
        let early = check(cert, key, ca.pem().as_bytes(), at(63_072_000)); // 1972-01-01
        assert_eq!((early.valid, early.reason), (false, "NotYetValid"));
        let soon = check(cert, key, ca.pem().as_bytes(), at(67_089_859_200)); // 4095-12-29
        assert_eq!((soon.valid, soon.reason), (true, "ExpiresSoon"), "{soon:?}");
        let other_ca = TestCa::new("another CA");
        let foreign = check(cert, key, other_ca.pem().as_bytes(), now);
        assert_eq!(
            (foreign.valid, foreign.reason),
            (false, "NotFromCa"),
            "{foreign:?}"
        );
        let other_key = ca.issue(&["x"]).key_pem;
        let mismatch = check(cert, other_key.as_bytes(), ca.pem().as_bytes(), now);
        assert_eq!(
            (mismatch.valid, mismatch.reason),
            (false, "KeyMismatch"),
            "{mismatch:?}"
        );
        let garbage = check(b"not pem", key, ca.pem().as_bytes(), now);
        assert_eq!((garbage.valid, garbage.reason), (false, "Unreadable"));
    }
}
