//! Client TLS for the sinks that dial out (Splunk HEC, syslog over TLS, HTTP out): one rustls
//! `ClientConfig` per sink, built at config validation so a bad CA file or key is a `check`
//! error with its key path, not a failure at the first send.
//!
//! Trust comes from `ca_file` when set (Splunk's default certificate is self-signed, QRadar's is
//! its own), else from the system's roots. `verify = false` accepts any certificate: it exists
//! for tests against throwaway receivers and is logged as a warning whenever a sink uses it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// What `[sinks.tls]` says, already checked to be complete.
#[derive(Debug, Clone)]
pub struct ClientTlsOptions<'a> {
    pub ca_file: Option<&'a Path>,
    pub verify: bool,
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
    #[error("cannot read the client certificate {path}: {reason}")]
    ClientCert { path: PathBuf, reason: String },
    #[error("cannot read the client key {path}: {reason}")]
    ClientKey { path: PathBuf, reason: String },
    #[error("client_cert and client_key go together: set both or neither")]
    HalfClientAuth,
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    #[error("cannot build the TLS client: {0}")]
    Build(rustls::Error),
}

impl ClientTlsError {
    /// The key under `tls` the problem belongs to.
    pub fn key(&self) -> &'static str {
        match self {
            ClientTlsError::CaFile { .. } | ClientTlsError::NoSystemRoots(_) => "ca_file",
            ClientTlsError::ClientCert { .. } | ClientTlsError::HalfClientAuth => "client_cert",
            ClientTlsError::ClientKey { .. } => "client_key",
            ClientTlsError::ServerName(_) => "server_name",
            ClientTlsError::Build(_) => "ca_file",
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, ClientTlsError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| ClientTlsError::CaFile {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(ClientTlsError::CaFile {
                    path: path.to_owned(),
                    reason: "no PEM certificate in it".to_owned(),
                });
            }
            for c in certs {
                roots.add(c).map_err(|e| ClientTlsError::CaFile {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?;
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
    Ok(roots)
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
    let builder = if opts.verify {
        builder.with_root_certificates(roots(opts.ca_file)?)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
    };
    let config = match (opts.client_cert, opts.client_key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| ClientTlsError::ClientCert {
                    path: cert.to_owned(),
                    reason: e.to_string(),
                })?;
            if chain.is_empty() {
                return Err(ClientTlsError::ClientCert {
                    path: cert.to_owned(),
                    reason: "no PEM certificate in it".to_owned(),
                });
            }
            let key_der =
                PrivateKeyDer::from_pem_file(key).map_err(|e| ClientTlsError::ClientKey {
                    path: key.to_owned(),
                    reason: e.to_string(),
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

/// `verify = false`: accepts any server certificate but still checks the handshake signatures,
/// so the session is encrypted to whoever holds the key the certificate names.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
