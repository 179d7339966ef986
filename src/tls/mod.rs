//! TLS for both directions, in one place: the listener's rustls `ServerConfig` with optional
//! client certificates (`server`), the sinks' `ClientConfig` with CA files, pins and self-signed
//! receivers (`client`), the one PEM loader both read their files with (`pem`), and SHA-256
//! certificate fingerprints as config writes and rustls presents them.
//!
//! A leaf: it knows files, certificates and rustls, not the config file or the runtime, so
//! `config` builds the TLS settings it validates here and `server` and `sinks` use them.

pub mod client;
pub mod pem;
pub mod server;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use sha2::{Digest, Sha256};

pub use client::{client_tls, ClientTls, ClientTlsError, ClientTlsOptions};
pub use server::{server_config, ClientCert, ServerTlsError, ServerTlsOptions};

/// The crypto provider every config is built with (ring).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The SHA-256 fingerprint of a DER certificate.
pub fn fingerprint(cert: &[u8]) -> [u8; 32] {
    Sha256::digest(cert).into()
}

/// A SHA-256 fingerprint written as 64 hex digits, optionally in colon-separated pairs (as
/// `openssl x509 -fingerprint -sha256` prints it).
pub fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let digits: String = text.chars().filter(|&c| c != ':').collect();
    let mut out = [0u8; 32];
    hex::decode_to_slice(digits, &mut out).ok()?;
    Some(out)
}
