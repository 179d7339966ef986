//! The sinks' side: client TLS for the sinks that dial out (Splunk HEC, syslog over TLS, HTTP out): one rustls
//! `ClientConfig` per sink, built at config validation so a bad CA file or key is a `check`
//! error with its key path, not a failure at the first send.
//!
//! Trust comes from `ca_file` when set (Splunk's default certificate is self-signed, QRadar's is
//! its own), else from the system's roots. `verify = false` accepts any certificate: it exists
//! for tests against throwaway receivers and is logged as a warning whenever a sink uses it.
//!
//! Self-signed servers: the certificate `openssl req -x509` makes by default is marked CA:TRUE
//! and is also the server's own certificate, which WebPKI path building refuses
//! (`CaUsedAsEndEntity`) while OpenSSL clients accept it. A server certificate that is byte for
//! byte one of the certificates in `ca_file` is therefore trusted as itself, and so is one whose
//! SHA-256 fingerprint is in `pinned_sha256` (which replaces `ca_file`). Either way its name and
//! validity period are still checked (unless `verify = false`), with the subject CN standing in
//! for the name when the certificate has no subjectAltName at all, as OpenSSL does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_name, WebPkiServerVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::pem::{self, PemError};
use super::{fingerprint, provider};

/// What `[sinks.tls]` says, already checked to be complete.
#[derive(Debug, Clone)]
pub struct ClientTlsOptions<'a> {
    pub ca_file: Option<&'a Path>,
    pub verify: bool,
    /// SHA-256 fingerprints of the server certificates trusted as themselves; when not empty
    /// they replace `ca_file` and the system roots.
    pub pinned_sha256: &'a [[u8; 32]],
    pub client_cert: Option<&'a Path>,
    pub client_key: Option<&'a Path>,
}

/// A ready client TLS setup: the config and the name the server must prove.
#[derive(Clone)]
pub struct ClientTls {
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
    pub verify: bool,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .field("verify", &self.verify)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    #[error("cannot read CA certificates from {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("no trusted CA certificates: the system has none readable ({0}); set tls.ca_file")]
    NoSystemRoots(String),
    #[error("cannot read the client certificate {path}: {source}")]
    ClientCert { path: PathBuf, source: PemError },
    #[error("cannot read the client key {path}: {source}")]
    ClientKey { path: PathBuf, source: PemError },
    #[error("client_cert and client_key go together: set both or neither")]
    HalfClientAuth,
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    #[error("cannot build the TLS client: {0}")]
    Build(rustls::Error),
    #[error("cannot build the certificate verifier: {0}")]
    Verifier(String),
}

impl ClientTlsError {
    /// The key under `tls` the problem belongs to.
    pub fn key(&self) -> &'static str {
        match self {
            ClientTlsError::CaFile { .. } | ClientTlsError::NoSystemRoots(_) => "ca_file",
            ClientTlsError::ClientCert { .. } | ClientTlsError::HalfClientAuth => "client_cert",
            ClientTlsError::ClientKey { .. } => "client_key",
            ClientTlsError::ServerName(_) => "server_name",
            ClientTlsError::Build(_) | ClientTlsError::Verifier(_) => "ca_file",
        }
    }
}

/// The trust anchors, and the certificates of `ca_file` themselves (empty for system roots).
fn roots(
    ca_file: Option<&Path>,
) -> Result<(RootCertStore, Vec<CertificateDer<'static>>), ClientTlsError> {
    let mut roots = RootCertStore::empty();
    let mut exact = Vec::new();
    match ca_file {
        Some(path) => {
            let ca_err = |reason: String| ClientTlsError::CaFile {
                path: path.to_owned(),
                reason,
            };
            for c in pem::certs(path).map_err(|e| ca_err(e.to_string()))? {
                roots.add(c.clone()).map_err(|e| ca_err(e.to_string()))?;
                exact.push(c);
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or_else(|| "none found".to_owned(), ToString::to_string);
                return Err(ClientTlsError::NoSystemRoots(why));
            }
        }
    }
    Ok((roots, exact))
}

/// Builds the client TLS setup for a sink dialing `host`; `server_name` overrides the name
/// checked against the certificate (and sent as SNI).
pub fn client_tls(
    opts: &ClientTlsOptions<'_>,
    host: &str,
    server_name: Option<&str>,
) -> Result<ClientTls, ClientTlsError> {
    let name_text = server_name.unwrap_or(host);
    let server_name = ServerName::try_from(name_text.to_owned())
        .map_err(|_| ClientTlsError::ServerName(name_text.to_owned()))?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(ClientTlsError::Build)?;
    let trust = if !opts.pinned_sha256.is_empty() {
        Trust::Pinned {
            pins: opts.pinned_sha256.to_vec(),
            check_name_and_time: opts.verify,
        }
    } else if opts.verify {
        let (roots, exact) = roots(opts.ca_file)?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| ClientTlsError::Verifier(e.to_string()))?;
        Trust::Chain { webpki, exact }
    } else {
        Trust::Any
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SinkServerVerifier {
            trust,
            provider: provider(),
        }));
    let config = match (opts.client_cert, opts.client_key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = pem::certs(cert).map_err(|source| ClientTlsError::ClientCert {
                path: cert.to_owned(),
                source,
            })?;
            let key_der = pem::private_key(key).map_err(|source| ClientTlsError::ClientKey {
                path: key.to_owned(),
                source,
            })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(ClientTlsError::Build)?
        }
        _ => return Err(ClientTlsError::HalfClientAuth),
    };
    Ok(ClientTls {
        config: Arc::new(config),
        server_name,
        verify: opts.verify,
    })
}

/// Whether a TLS failure is the peer's certificate or our TLS setup (a configuration problem
/// retrying will not fix) rather than the network.
pub fn is_config_error(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| {
            matches!(
                r,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::UnsupportedNameType
                    | rustls::Error::PeerIncompatible(_)
                    | rustls::Error::AlertReceived(_)
            )
        })
}

/// Which server certificates a sink accepts.
#[derive(Debug)]
enum Trust {
    /// WebPKI against the roots, then a server certificate that is byte for byte one of
    /// `ca_file`'s (a self-signed CA:TRUE certificate, which WebPKI refuses as an end entity),
    /// with its name and validity checked.
    Chain {
        webpki: Arc<WebPkiServerVerifier>,
        /// The certificates of `ca_file`: one presented as it is is trusted as itself.
        exact: Vec<CertificateDer<'static>>,
    },
    /// Only the certificates with these SHA-256 fingerprints; name and validity are checked
    /// unless `check_name_and_time` is off (`verify = false` with pins).
    Pinned {
        pins: Vec<[u8; 32]>,
        check_name_and_time: bool,
    },
    /// `verify = false` without pins: any certificate. The handshake signatures are still
    /// checked, so the session is encrypted to whoever holds the key the certificate names.
    Any,
}

/// The server certificate check of every sink: its [`Trust`], and the handshake signatures
/// by the provider's algorithms.
#[derive(Debug)]
struct SinkServerVerifier {
    trust: Trust,
    provider: Arc<CryptoProvider>,
}

/// Checks that `cert` names `server_name` and is valid at `now`: the subjectAltName by
/// WebPKI's rules, or the subject CN when the certificate has no subjectAltName at all.
fn check_name_and_time(
    cert: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let bad = || rustls::Error::InvalidCertificate(CertificateError::BadEncoding);
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|_| bad())?;
    let validity = x509.validity();
    let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if now_secs < validity.not_before.timestamp() {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet,
        ));
    }
    if now_secs > validity.not_after.timestamp() {
        return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
    }
    let parsed = ParsedCertificate::try_from(cert)?;
    match verify_server_name(&parsed, server_name) {
        Ok(()) => Ok(()),
        Err(e) => {
            let has_san = x509.subject_alternative_name().ok().flatten().is_some();
            let wanted = server_name.to_str();
            let cn_matches = !has_san
                && x509
                    .subject()
                    .iter_common_name()
                    .filter_map(|cn| cn.as_str().ok())
                    .any(|cn| cn.eq_ignore_ascii_case(&wanted));
            if cn_matches {
                Ok(())
            } else {
                Err(e)
            }
        }
    }
}

impl ServerCertVerifier for SinkServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.trust {
            Trust::Chain { webpki, exact } => {
                match webpki.verify_server_cert(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp_response,
                    now,
                ) {
                    Ok(v) => Ok(v),
                    // Any chain error, `CaUsedAsEndEntity` among them, for a certificate the
                    // operator listed as it is: name and time decide (they fail the same way
                    // WebPKI would).
                    Err(_) if exact.iter().any(|c| c.as_ref() == end_entity.as_ref()) => {
                        check_name_and_time(end_entity, server_name, now)?;
                        Ok(ServerCertVerified::assertion())
                    }
                    Err(e) => Err(e),
                }
            }
            Trust::Pinned {
                pins,
                check_name_and_time: check,
            } => {
                let fp = fingerprint(end_entity.as_ref());
                if !pins.iter().any(|p| p == &fp) {
                    return Err(rustls::Error::InvalidCertificate(
                        CertificateError::ApplicationVerificationFailure,
                    ));
                }
                if *check {
                    check_name_and_time(end_entity, server_name, now)?;
                }
                Ok(ServerCertVerified::assertion())
            }
            Trust::Any => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::super::{fingerprint, provider};
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

    /// A self-signed CA:TRUE certificate for `cn`, with `sans` as subjectAltNames, valid from
    /// `from` to `to` (years).
    fn self_signed(cn: &str, sans: &[&str], from: i32, to: i32) -> CertificateDer<'static> {
        let mut p =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.not_before = rcgen::date_time_ymd(from, 1, 1);
        p.not_after = rcgen::date_time_ymd(to, 1, 1);
        p.self_signed(&KeyPair::generate().unwrap())
            .unwrap()
            .der()
            .clone()
    }

    fn verifier_for(exact: &CertificateDer<'static>) -> SinkServerVerifier {
        let mut roots = RootCertStore::empty();
        roots.add(exact.clone()).unwrap();
        SinkServerVerifier {
            trust: Trust::Chain {
                webpki: WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                    .build()
                    .unwrap(),
                exact: vec![exact.clone()],
            },
            provider: provider(),
        }
    }

    fn check(
        v: &SinkServerVerifier,
        cert: &CertificateDer<'_>,
        name: &str,
    ) -> Result<(), rustls::Error> {
        let name = ServerName::try_from(name.to_owned()).unwrap();
        v.verify_server_cert(cert, &[], &name, &[], UnixTime::now())
            .map(|_| ())
    }

    #[test]
    fn an_exact_ca_file_certificate_is_trusted_with_its_name_and_time_checked() {
        let cert = self_signed("siem.example", &["siem.example"], 2020, 2100);
        let v = verifier_for(&cert);
        check(&v, &cert, "siem.example").unwrap();
        let err = check(&v, &cert, "other.example").unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })
            ),
            "{err:?}"
        );
        // Another self-signed certificate with the same name is not trusted.
        let other = self_signed("siem.example", &["siem.example"], 2020, 2100);
        assert!(check(&v, &other, "siem.example").is_err());
    }

    #[test]
    fn an_expired_or_future_exact_certificate_is_refused() {
        let old = self_signed("siem.example", &["siem.example"], 2000, 2001);
        let err = check(&verifier_for(&old), &old, "siem.example").unwrap_err();
        assert_eq!(
            err,
            rustls::Error::InvalidCertificate(CertificateError::Expired)
        );
        let future = self_signed("siem.example", &["siem.example"], 2200, 2300);
        let err = check(&verifier_for(&future), &future, "siem.example").unwrap_err();
        assert_eq!(
            err,
            rustls::Error::InvalidCertificate(CertificateError::NotValidYet)
        );
    }

    #[test]
    fn the_common_name_stands_in_only_without_any_subject_alt_name() {
        let cn_only = self_signed("siem.example", &[], 2020, 2100);
        check(&verifier_for(&cn_only), &cn_only, "SIEM.example").unwrap();
        assert!(check(&verifier_for(&cn_only), &cn_only, "other.example").is_err());
        // With a subjectAltName the CN is not a name.
        let with_san = self_signed("siem.example", &["alt.example"], 2020, 2100);
        assert!(check(&verifier_for(&with_san), &with_san, "siem.example").is_err());
        check(&verifier_for(&with_san), &with_san, "alt.example").unwrap();
    }

    #[test]
    fn pins_accept_only_the_pinned_certificate() {
        let cert = self_signed("siem.example", &["siem.example"], 2020, 2100);
        let other = self_signed("siem.example", &["siem.example"], 2020, 2100);
        let pinned = |check_name_and_time| SinkServerVerifier {
            trust: Trust::Pinned {
                pins: vec![fingerprint(cert.as_ref())],
                check_name_and_time,
            },
            provider: provider(),
        };
        let v = pinned(true);
        check(&v, &cert, "siem.example").unwrap();
        assert!(check(&v, &cert, "other.example").is_err());
        assert_eq!(
            check(&v, &other, "siem.example").unwrap_err(),
            rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
        );
        // verify = false with pins: the pin alone decides.
        let v = pinned(false);
        check(&v, &cert, "other.example").unwrap();
        assert!(check(&v, &other, "siem.example").is_err());
    }
}
