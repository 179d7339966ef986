//! The listener's side: its rustls `ServerConfig`, built once, at config validation: TLS 1.2 and 1.3 only,
//! ALPN `h2` then `http/1.1`, and, when `client_ca` is set, client certificates verified against
//! it. Client certificates are optional at the handshake (sources without mTLS share the
//! listener); a source with `require_client_cert` refuses requests that did not present one.
//!
//! Also reads a verified client certificate once per connection into a [`ClientCert`]: its
//! SHA-256 fingerprint, its names and whether it is meant for client authentication, which
//! each source then matches against its own allowed identities (`client_cert_names`,
//! `client_cert_sha256`). WebPKI already refuses at the handshake a certificate whose extended
//! key usage leaves out clientAuth (a serverAuth-only server certificate); one with no extended
//! key usage at all passes there and is refused by the sources (`client_auth` false). The
//! listener's own certificate is never a client certificate, whatever its key usage says: it is
//! refused at the handshake ([`NotOurOwn`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::pem::{self, PemError};

/// What `[server.tls]` (or `[admin.tls]`) names: the files to read.
#[derive(Debug, Clone, Copy)]
pub struct ServerTlsOptions<'a> {
    /// The listener's certificate chain, leaf first.
    pub cert: &'a Path,
    pub key: &'a Path,
    /// CA bundle client certificates are verified against; `None`: no client certificates.
    pub client_ca: Option<&'a Path>,
}

/// The identity a verified client certificate proves, read once when the connection opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// SHA-256 of the certificate's DER: what `client_cert_sha256` lists.
    pub sha256: [u8; 32],
    /// The subject's common names and the DNS, URI and email subjectAltNames, as written:
    /// what `client_cert_names` is matched against.
    pub names: Vec<String>,
    /// The extended key usage lists clientAuth. A certificate without that extension is for
    /// any purpose to WebPKI; sources require the purpose to be stated, so that a server's
    /// own certificate cannot stand in for a client.
    pub client_auth: bool,
}

impl ClientCert {
    /// Reads `der`, a certificate rustls has already verified. Anything unreadable leaves the
    /// names empty and `client_auth` false, which no source accepts.
    pub fn read(der: &[u8]) -> ClientCert {
        use x509_parser::extensions::GeneralName;
        let sha256 = super::fingerprint(der);
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            return ClientCert {
                sha256,
                names: Vec::new(),
                client_auth: false,
            };
        };
        let mut names: Vec<String> = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .map(str::to_owned)
            .collect();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) | GeneralName::URI(n) | GeneralName::RFC822Name(n) => {
                        names.push((*n).to_owned());
                    }
                    _ => {}
                }
            }
        }
        let client_auth =
            matches!(cert.extended_key_usage(), Ok(Some(eku)) if eku.value.client_auth);
        ClientCert {
            sha256,
            names,
            client_auth,
        }
    }

    /// Whether this certificate may speak for a source that allows `names` and `sha256`
    /// (either list may be empty; both empty: any certificate from `client_ca`); `Err` says
    /// why not. Names compare ASCII case-insensitively and whole (no wildcards); fingerprints
    /// in constant time.
    pub fn allowed(&self, names: &[String], sha256: &[[u8; 32]]) -> Result<(), &'static str> {
        use subtle::ConstantTimeEq;
        if !self.client_auth {
            return Err("the client certificate is not for client authentication (its extended key usage must list clientAuth)");
        }
        if names.is_empty() && sha256.is_empty() {
            return Ok(());
        }
        let by_pin = sha256
            .iter()
            .fold(false, |hit, pin| hit | bool::from(pin.ct_eq(&self.sha256)));
        let by_name = self
            .names
            .iter()
            .any(|n| names.iter().any(|allowed| allowed.eq_ignore_ascii_case(n)));
        if by_pin || by_name {
            Ok(())
        } else {
            Err("the client certificate is not one this source allows (client_cert_names, client_cert_sha256)")
        }
    }
}

/// Why the listener's TLS cannot be set up; each names its file.
#[derive(Debug, thiserror::Error)]
pub enum ServerTlsError {
    #[error("cannot read certificates from {path}: {source}")]
    Cert { path: PathBuf, source: PemError },
    #[error("cannot read a private key from {path}: {source}")]
    Key { path: PathBuf, source: PemError },
    #[error("cannot use client CA bundle {path}: {reason}")]
    ClientCa { path: PathBuf, reason: String },
    #[error("certificate and key do not form a usable pair: {0}")]
    Pair(rustls::Error),
}

impl ServerTlsError {
    /// The config key under `server.tls` the problem belongs to.
    pub fn key(&self) -> &'static str {
        match self {
            ServerTlsError::Cert { .. } | ServerTlsError::Pair(_) => "cert",
            ServerTlsError::Key { .. } => "key",
            ServerTlsError::ClientCa { .. } => "client_ca",
        }
    }
}

/// The client certificate check: WebPKI against `client_ca`, and never the listener's own
/// certificate (a server certificate that also lists clientAuth, as many do, would otherwise
/// let whoever holds the server's key pass as a client).
#[derive(Debug)]
struct NotOurOwn {
    inner: Arc<dyn ClientCertVerifier>,
    /// The listener's own end-entity certificate.
    own: Vec<CertificateDer<'static>>,
}

impl ClientCertVerifier for NotOurOwn {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if self.own.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The listener's config: TLS 1.3 and 1.2, ALPN `h2` then `http/1.1`, and with `client_ca`
/// optional client certificates checked against it (never the listener's own).
pub fn server_config(opts: &ServerTlsOptions<'_>) -> Result<Arc<ServerConfig>, ServerTlsError> {
    let chain = pem::certs(opts.cert).map_err(|source| ServerTlsError::Cert {
        path: opts.cert.to_owned(),
        source,
    })?;
    let key = pem::private_key(opts.key).map_err(|source| ServerTlsError::Key {
        path: opts.key.to_owned(),
        source,
    })?;
    let provider = super::provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(ServerTlsError::Pair)?;
    let builder = match opts.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca_path) => {
            let ca_err = |reason: String| ServerTlsError::ClientCa {
                path: ca_path.to_owned(),
                reason,
            };
            let mut roots = RootCertStore::empty();
            for ca in pem::certs(ca_path).map_err(|e| ca_err(e.to_string()))? {
                roots.add(ca).map_err(|e| ca_err(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| ca_err(e.to_string()))?;
            builder.with_client_cert_verifier(Arc::new(NotOurOwn {
                inner: verifier,
                own: chain.first().cloned().into_iter().collect(),
            }))
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(ServerTlsError::Pair)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, SanType};

    fn cert(cn: &str, sans: Vec<SanType>, eku: Vec<ExtendedKeyUsagePurpose>) -> Vec<u8> {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.subject_alt_names = sans;
        p.extended_key_usages = eku;
        p.self_signed(&KeyPair::generate().unwrap())
            .unwrap()
            .der()
            .to_vec()
    }

    #[test]
    fn reads_names_fingerprint_and_client_auth() {
        let der = cert(
            "Sender One",
            vec![
                SanType::DnsName("one.example".try_into().unwrap()),
                SanType::URI("spiffe://p/one".try_into().unwrap()),
                SanType::Rfc822Name("ops@one.example".try_into().unwrap()),
                SanType::IpAddress("192.0.2.1".parse().unwrap()),
            ],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        );
        let c = ClientCert::read(&der);
        assert_eq!(
            c.names,
            [
                "Sender One",
                "one.example",
                "spiffe://p/one",
                "ops@one.example"
            ]
        );
        assert!(c.client_auth);
        assert_eq!(
            c.sha256,
            <[u8; 32]>::from(<sha2::Sha256 as sha2::Digest>::digest(&der))
        );
        let server_only = ClientCert::read(&cert(
            "s",
            vec![],
            vec![ExtendedKeyUsagePurpose::ServerAuth],
        ));
        assert!(!server_only.client_auth);
        assert!(!ClientCert::read(&cert("s", vec![], vec![])).client_auth);
        let junk = ClientCert::read(b"not a certificate");
        assert!(junk.names.is_empty() && !junk.client_auth);
    }

    #[test]
    fn allowed_by_name_or_fingerprint_and_only_for_client_auth() {
        let der = cert(
            "Sender One",
            vec![SanType::DnsName("one.example".try_into().unwrap())],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        );
        let c = ClientCert::read(&der);
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(c.allowed(&[], &[]), Ok(()));
        assert_eq!(c.allowed(&names(&["ONE.example"]), &[]), Ok(()));
        assert_eq!(c.allowed(&names(&["sender one"]), &[]), Ok(()));
        assert_eq!(c.allowed(&names(&["x", "one.example"]), &[[0; 32]]), Ok(()));
        assert_eq!(c.allowed(&[], &[[0; 32], c.sha256]), Ok(()));
        // No partial or wildcard matches.
        assert!(c
            .allowed(&names(&["*.example", "one.exampl"]), &[])
            .is_err());
        assert!(c.allowed(&names(&["two.example"]), &[[0; 32]]).is_err());
        let mut no_eku = c.clone();
        no_eku.client_auth = false;
        let why = no_eku.allowed(&[], &[]).unwrap_err();
        assert!(why.contains("clientAuth"), "{why}");
        assert!(no_eku
            .allowed(&names(&["one.example"]), &[c.sha256])
            .is_err());
    }
}
