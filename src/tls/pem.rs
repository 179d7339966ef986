//! The one PEM loader: certificate chains and CA bundles (`certs`) and private keys
//! (`private_key`) from files, for the listener and the sinks alike, through
//! `rustls-pki-types` (rustls-pemfile is unmaintained). A file with no certificate in it is an
//! error here, so every caller reports it the same way.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a PEM file gave nothing usable; the caller adds the file and the key it came from.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    /// Unreadable, or not PEM.
    #[error("{0}")]
    Read(#[from] rustls_pki_types::pem::Error),
    #[error("no PEM certificate found")]
    NoCertificate,
}

/// Every certificate in the PEM file at `path`, in order; at least one.
pub fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = CertificateDer::pem_file_iter(path)?.collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err(PemError::NoCertificate);
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in the PEM file at `path`.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    Ok(PrivateKeyDer::from_pem_file(path)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn reads_certificates_and_keys_and_refuses_files_without_them() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.example".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let both = dir.path().join("both.pem");
        std::fs::write(&both, format!("{}{}", cert.pem(), cert.pem())).unwrap();
        let read = certs(&both).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].as_ref(), cert.der().as_ref());
        let key_file = dir.path().join("key.pem");
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        assert!(private_key(&key_file).is_ok());

        // A key file holds no certificate; a certificate file holds no key.
        assert!(matches!(certs(&key_file), Err(PemError::NoCertificate)));
        assert!(private_key(&both).is_err());
        let missing = dir.path().join("missing.pem");
        assert!(matches!(certs(&missing), Err(PemError::Read(_))));
    }
}
