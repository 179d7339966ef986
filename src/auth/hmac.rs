//! HMAC-SHA256 signature of the raw body in a header (GitHub `X-Hub-Signature-256: sha256=<hex>`
//! style), hex or base64, with an optional prefix and an optional signed timestamp header that
//! bounds replays.

use std::fmt;
use std::time::{Duration, SystemTime};

use ::hmac::{Hmac, Mac};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::{HeaderMap, HeaderName};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{check_secrets, check_timestamp, ct_any, AuthConfigError, AuthError};
use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

/// The length of an HMAC-SHA256 tag.
const TAG_LEN: usize = 32;

/// How the tag is written in the signature header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureEncoding {
    /// Hex, either case (decoded, then compared as bytes).
    Hex,
    /// Standard base64 with padding.
    Base64,
    /// Either: a 32-byte tag is 64 characters in hex and 44 in base64, so the length decides.
    /// For senders that do not document their encoding (Immuta).
    HexOrBase64,
}

/// Configuration for [`HmacVerifier`]. `Debug` is safe: `Secret` prints `***`.
#[derive(Debug, Clone)]
pub struct HmacSettings {
    /// Header carrying the signature, e.g. `x-hub-signature-256`.
    pub header: HeaderName,
    pub encoding: SignatureEncoding,
    /// Text before the encoded tag, e.g. `"sha256="`; matched ASCII case-insensitively.
    pub prefix: Option<String>,
    /// When set, this header holds unix seconds and the MAC covers `timestamp + "." + body`, so a
    /// captured request cannot be replayed outside `tolerance`.
    pub timestamp_header: Option<HeaderName>,
    /// Accepted clock skew in both directions; bounds the replay window. Only used with
    /// `timestamp_header`.
    pub tolerance: Duration,
    /// Accepted signing secrets; several at once for rotation.
    pub secrets: Vec<Secret>,
}

/// Verifies an HMAC-SHA256 body signature. Keeps one pre-keyed MAC per secret (cloned per request,
/// which skips re-hashing the key); `Debug` prints only how many.
pub struct HmacVerifier {
    header: HeaderName,
    encoding: SignatureEncoding,
    prefix: Option<String>,
    timestamp_header: Option<HeaderName>,
    tolerance: Duration,
    macs: Vec<HmacSha256>,
}

impl HmacVerifier {
    /// Fails when there are no secrets or one is empty. An empty prefix means no prefix.
    pub fn new(s: HmacSettings) -> Result<Self, AuthConfigError> {
        check_secrets(&s.secrets)?;
        let macs = s
            .secrets
            .iter()
            .enumerate()
            .map(|(index, secret)| {
                HmacSha256::new_from_slice(secret.expose().as_bytes())
                    .map_err(|_| AuthConfigError::InvalidKey { index })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HmacVerifier {
            header: s.header,
            encoding: s.encoding,
            prefix: s.prefix.filter(|p| !p.is_empty()),
            timestamp_header: s.timestamp_header,
            tolerance: s.tolerance,
            macs,
        })
    }

    /// The header holding the signed timestamp, when the signature covers one.
    pub fn timestamp_header(&self) -> Option<&HeaderName> {
        self.timestamp_header.as_ref()
    }

    /// The replay window: how far a signed timestamp may be from now (with a timestamp header).
    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    /// The signature header, and the timestamp header when one is configured, are present: the
    /// check that can run before the body is read.
    pub(crate) fn headers_present(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        if !headers.contains_key(&self.header) {
            return Err(AuthError::Missing("signature header"));
        }
        match &self.timestamp_header {
            Some(name) if !headers.contains_key(name) => {
                Err(AuthError::Missing("timestamp header"))
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), AuthError> {
        let value = headers
            .get(&self.header)
            .ok_or(AuthError::Missing("signature header"))?
            .as_bytes();
        let timestamp = match &self.timestamp_header {
            None => None,
            Some(name) => Some(
                headers
                    .get(name)
                    .ok_or(AuthError::Missing("timestamp header"))?
                    .as_bytes(),
            ),
        };
        let encoded = match &self.prefix {
            None => value,
            Some(prefix) => {
                let prefix = prefix.as_bytes();
                match value.split_at_checked(prefix.len()) {
                    Some((head, rest)) if head.eq_ignore_ascii_case(prefix) => rest,
                    _ => return Err(AuthError::Malformed("signature prefix missing")),
                }
            }
        };
        let tag = decode_tag(encoded, self.encoding)?;
        if let Some(ts) = timestamp {
            check_timestamp(ts, now, self.tolerance)?;
        }
        let ok = ct_any(&self.macs, |keyed| {
            let mut mac = keyed.clone();
            if let Some(ts) = timestamp {
                mac.update(ts);
                mac.update(b".");
            }
            mac.update(body);
            mac.finalize().into_bytes().as_slice().ct_eq(&tag)
        });
        if ok {
            Ok(())
        } else {
            Err(AuthError::Mismatch)
        }
    }
}

fn decode_tag(encoded: &[u8], encoding: SignatureEncoding) -> Result<[u8; TAG_LEN], AuthError> {
    let mut tag = [0u8; TAG_LEN];
    let hex = match encoding {
        SignatureEncoding::Hex => true,
        SignatureEncoding::Base64 => false,
        SignatureEncoding::HexOrBase64 => encoded.len() == TAG_LEN * 2,
    };
    if hex {
        if encoded.len() != TAG_LEN * 2 {
            return Err(AuthError::Malformed("signature is not 32 bytes"));
        }
        hex::decode_to_slice(encoded, &mut tag)
            .map_err(|_| AuthError::Malformed("signature is not valid hex"))?;
    } else {
        // Room for more than a tag, so a too-long signature decodes and fails the length check.
        let mut buf = [0u8; TAG_LEN * 2];
        let n = STANDARD
            .decode_slice(encoded, &mut buf)
            .map_err(|_| AuthError::Malformed("signature is not valid base64"))?;
        if n != TAG_LEN {
            return Err(AuthError::Malformed("signature is not 32 bytes"));
        }
        tag.copy_from_slice(&buf[..TAG_LEN]);
    }
    Ok(tag)
}

impl fmt::Debug for HmacVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacVerifier")
            .field("header", &self.header)
            .field("encoding", &self.encoding)
            .field("prefix", &self.prefix)
            .field("timestamp_header", &self.timestamp_header)
            .field("tolerance", &self.tolerance)
            .field("secrets", &self.macs.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use http::HeaderValue;
    use std::time::UNIX_EPOCH;

    // GitHub docs test vector (fixtures/signatures/github-docs-test-vector.json).
    const GH_SECRET: &str = "It's a Secret to Everybody";
    const GH_BODY: &[u8] = b"Hello, World!";
    const GH_SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    static SIG: HeaderName = HeaderName::from_static("x-hub-signature-256");
    static TS: HeaderName = HeaderName::from_static("x-timestamp");
    const NOW: u64 = 1_700_000_000;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }

    fn settings(secrets: &[&str]) -> HmacSettings {
        HmacSettings {
            header: SIG.clone(),
            encoding: SignatureEncoding::Hex,
            prefix: Some("sha256=".to_owned()),
            timestamp_header: None,
            tolerance: Duration::from_secs(300),
            secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
        }
    }

    fn github(secrets: &[&str]) -> HmacVerifier {
        HmacVerifier::new(settings(secrets)).unwrap()
    }

    fn tag(secret: &str, parts: &[&[u8]]) -> Vec<u8> {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().to_vec()
    }

    fn headers(pairs: &[(&HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert((*k).clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn github_test_vector_passes() {
        let v = github(&[GH_SECRET]);
        assert_eq!(
            v.verify(&headers(&[(&SIG, GH_SIGNATURE)]), GH_BODY, now()),
            Ok(())
        );
        // Upper-case hex and prefix decode to the same bytes.
        let upper = GH_SIGNATURE.to_ascii_uppercase();
        assert_eq!(
            v.verify(&headers(&[(&SIG, &upper)]), GH_BODY, now()),
            Ok(())
        );
    }

    #[test]
    fn second_rotated_secret_passes() {
        let v = github(&["the-old-secret", GH_SECRET]);
        assert_eq!(
            v.verify(&headers(&[(&SIG, GH_SIGNATURE)]), GH_BODY, now()),
            Ok(())
        );
    }

    #[test]
    fn missing_signature() {
        assert_eq!(
            github(&[GH_SECRET]).verify(&HeaderMap::new(), GH_BODY, now()),
            Err(AuthError::Missing("signature header"))
        );
    }

    #[test]
    fn wrong_secret_or_tampered_body_mismatches() {
        let h = headers(&[(&SIG, GH_SIGNATURE)]);
        assert_eq!(
            github(&["nope"]).verify(&h, GH_BODY, now()),
            Err(AuthError::Mismatch)
        );
        assert_eq!(
            github(&[GH_SECRET]).verify(&h, b"Hello, World?", now()),
            Err(AuthError::Mismatch)
        );
    }

    #[test]
    fn malformed_signatures() {
        let v = github(&[GH_SECRET]);
        let bad = [
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", // no prefix
            "sha256=757107ea",                                                  // short
            "sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", // not hex
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1700",
        ];
        for value in bad {
            assert!(
                matches!(
                    v.verify(&headers(&[(&SIG, value)]), GH_BODY, now()),
                    Err(AuthError::Malformed(_))
                ),
                "{value}"
            );
        }
    }

    #[test]
    fn hex_or_base64_accepts_both() {
        let mut s = settings(&[GH_SECRET]);
        s.encoding = SignatureEncoding::HexOrBase64;
        let v = HmacVerifier::new(s).unwrap();
        let t = tag(GH_SECRET, &[GH_BODY]);
        let as_b64 = format!("sha256={}", STANDARD.encode(&t));
        for sig in [GH_SIGNATURE, &GH_SIGNATURE.to_ascii_uppercase(), &as_b64] {
            assert_eq!(
                v.verify(&headers(&[(&SIG, sig)]), GH_BODY, now()),
                Ok(()),
                "{sig}"
            );
        }
        assert!(matches!(
            v.verify(&headers(&[(&SIG, "sha256=abcd")]), GH_BODY, now()),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn base64_encoding() {
        let mut s = settings(&["k"]);
        s.encoding = SignatureEncoding::Base64;
        s.prefix = None;
        let v = HmacVerifier::new(s).unwrap();
        let good = STANDARD.encode(tag("k", &[b"body"]));
        assert_eq!(v.verify(&headers(&[(&SIG, &good)]), b"body", now()), Ok(()));
        let other = STANDARD.encode(tag("k", &[b"other"]));
        assert_eq!(
            v.verify(&headers(&[(&SIG, &other)]), b"body", now()),
            Err(AuthError::Mismatch)
        );
        let short = STANDARD.encode([0u8; 31]);
        let long = STANDARD.encode([0u8; 33]);
        for value in ["not base64!", short.as_str(), long.as_str()] {
            assert!(
                matches!(
                    v.verify(&headers(&[(&SIG, value)]), b"body", now()),
                    Err(AuthError::Malformed(_))
                ),
                "{value}"
            );
        }
    }

    fn timestamped() -> HmacVerifier {
        let mut s = settings(&["k"]);
        s.timestamp_header = Some(TS.clone());
        HmacVerifier::new(s).unwrap()
    }

    fn signed_at(ts: u64, body: &[u8]) -> HeaderMap {
        let ts = ts.to_string();
        let sig = format!(
            "sha256={}",
            hex::encode(tag("k", &[ts.as_bytes(), b".", body]))
        );
        headers(&[(&SIG, &sig), (&TS, &ts)])
    }

    #[test]
    fn timestamp_covered_and_windowed() {
        let v = timestamped();
        assert_eq!(v.verify(&signed_at(NOW, b"b"), b"b", now()), Ok(()));
        assert_eq!(v.verify(&signed_at(NOW - 300, b"b"), b"b", now()), Ok(()));
        assert_eq!(
            v.verify(&signed_at(NOW - 301, b"b"), b"b", now()),
            Err(AuthError::TimestampOutOfWindow)
        );
        assert_eq!(
            v.verify(&signed_at(NOW + 301, b"b"), b"b", now()),
            Err(AuthError::TimestampOutOfWindow)
        );
        // Changing the timestamp breaks the signature.
        let mut h = signed_at(NOW, b"b");
        h.insert(
            TS.clone(),
            HeaderValue::from_str(&(NOW + 1).to_string()).unwrap(),
        );
        assert_eq!(v.verify(&h, b"b", now()), Err(AuthError::Mismatch));
        assert_eq!(
            v.verify(&signed_at(NOW, b"b"), b"c", now()),
            Err(AuthError::Mismatch)
        );
    }

    #[test]
    fn timestamp_missing_or_malformed() {
        let v = timestamped();
        let mut h = signed_at(NOW, b"b");
        h.remove(&TS);
        assert_eq!(
            v.verify(&h, b"b", now()),
            Err(AuthError::Missing("timestamp header"))
        );
        h.insert(TS.clone(), HeaderValue::from_static("yesterday"));
        assert!(matches!(
            v.verify(&h, b"b", now()),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn config_errors_and_debug() {
        assert_eq!(
            HmacVerifier::new(settings(&[])).unwrap_err(),
            AuthConfigError::NoSecrets
        );
        assert_eq!(
            HmacVerifier::new(settings(&["a", ""])).unwrap_err(),
            AuthConfigError::EmptySecret { index: 1 }
        );
        let s = settings(&["hunter2-key"]);
        assert!(!format!("{s:?}").contains("hunter2"));
        let v = HmacVerifier::new(s).unwrap();
        assert!(!format!("{v:?}").contains("hunter2"));
    }
}
