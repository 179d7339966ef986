//! Standard Webhooks (<https://www.standardwebhooks.com>, the scheme Svix uses): `webhook-id`,
//! `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256("{id}.{timestamp}.{body}")>`,
//! with a replay window on the timestamp and several secrets at once for rotation.

use std::fmt;
use std::time::{Duration, SystemTime};

use ::hmac::{Hmac, Mac};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use http::HeaderMap;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{check_secrets, check_timestamp, ct_any, ct_any_choice, AuthConfigError, AuthError};
use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Secrets are standard base64 with or without the trailing `=` padding: the reference
/// libraries accept both, and some senders show their `whsec_` keys without it.
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The replay window the specification recommends: five minutes either way.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

pub(crate) const ID: &str = "webhook-id";
pub(crate) const TIMESTAMP: &str = "webhook-timestamp";
const SIGNATURE: &str = "webhook-signature";

/// Verifies Standard Webhooks signatures. Keeps one pre-keyed MAC per secret; `Debug` prints only
/// how many.
pub struct StandardWebhooksVerifier {
    macs: Vec<HmacSha256>,
    /// Accepted clock skew in both directions; bounds how long a captured request can be replayed.
    tolerance: Duration,
}

impl StandardWebhooksVerifier {
    /// Each secret is base64 (padded or not) with an optional `whsec_` prefix. Fails when there are no secrets or
    /// one is empty or not base64; the error names the secret's index, never its value.
    pub fn new(secrets: Vec<Secret>, tolerance: Duration) -> Result<Self, AuthConfigError> {
        check_secrets(&secrets)?;
        let macs = secrets
            .iter()
            .enumerate()
            .map(|(index, secret)| {
                let encoded = secret.expose();
                let encoded = encoded.strip_prefix("whsec_").unwrap_or(encoded);
                let key = SECRET_BASE64
                    .decode(encoded)
                    .map_err(|_| AuthConfigError::NotBase64 { index })?;
                if key.is_empty() {
                    return Err(AuthConfigError::EmptySecret { index });
                }
                HmacSha256::new_from_slice(&key).map_err(|_| AuthConfigError::InvalidKey { index })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(StandardWebhooksVerifier { macs, tolerance })
    }

    /// The replay window: how far a signed timestamp may be from now.
    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    /// `webhook-id`, `webhook-timestamp` and `webhook-signature` are present: the check that can
    /// run before the body is read.
    pub(crate) fn headers_present(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        for name in [ID, TIMESTAMP, SIGNATURE] {
            header(headers, name)?;
        }
        Ok(())
    }

    pub(crate) fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), AuthError> {
        let id = header(headers, ID)?;
        let timestamp = header(headers, TIMESTAMP)?;
        let signatures = header(headers, SIGNATURE)?;
        check_timestamp(timestamp, now, self.tolerance)?;
        let ok = ct_any(&self.macs, |keyed| {
            let mut mac = keyed.clone();
            mac.update(id);
            mac.update(b".");
            mac.update(timestamp);
            mac.update(b".");
            mac.update(body);
            let expected = mac.finalize().into_bytes();
            // Entries of other versions (`v1a,...`) and undecodable ones simply do not match.
            ct_any_choice(signatures.split(|&b| b == b' '), |entry| {
                let mut buf = [0u8; 64];
                match entry.strip_prefix(b"v1,") {
                    Some(encoded) => match STANDARD.decode_slice(encoded, &mut buf) {
                        Ok(n) => buf[..n].ct_eq(expected.as_slice()),
                        Err(_) => 0u8.into(),
                    },
                    None => 0u8.into(),
                }
            })
        });
        if ok {
            Ok(())
        } else {
            Err(AuthError::Mismatch)
        }
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h [u8], AuthError> {
    headers
        .get(name)
        .map(|v| v.as_bytes())
        .ok_or(AuthError::Missing(name))
}

impl fmt::Debug for StandardWebhooksVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandardWebhooksVerifier")
            .field("secrets", &self.macs.len())
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use http::HeaderValue;
    use std::time::UNIX_EPOCH;

    // Official vector from the standard-webhooks Rust library (libraries/rust/src/lib.rs,
    // test_sign), copied from fixtures/signatures/standard-webhooks-rust-lib-test-vector.json.
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const MSG_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: u64 = 1_649_367_553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn verifier(secrets: &[&str]) -> StandardWebhooksVerifier {
        let secrets = secrets.iter().map(|s| Secret::new(*s)).collect();
        StandardWebhooksVerifier::new(secrets, DEFAULT_TOLERANCE).unwrap()
    }

    fn headers(id: &str, ts: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ID, HeaderValue::from_str(id).unwrap());
        h.insert(TIMESTAMP, HeaderValue::from_str(ts).unwrap());
        h.insert(SIGNATURE, HeaderValue::from_str(sig).unwrap());
        h
    }

    fn vector() -> HeaderMap {
        headers(MSG_ID, &TS.to_string(), SIG)
    }

    /// Signs like a sender would, for timestamps other than the vector's.
    fn sign(secret: &str, id: &str, ts: u64, body: &[u8]) -> String {
        let key = STANDARD
            .decode(secret.trim_start_matches("whsec_"))
            .unwrap();
        let mut mac = HmacSha256::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// A key whose base64 needs padding (22 bytes: `...IQ==`), written without it, and the
    /// signature of the official vector's message under that key (computed with Python's
    /// `hmac`/`hashlib`, independently of this code).
    const UNPADDED: &str = "whsec_c2llbWdhdGUtdW5wYWRkZWQta2V5IQ";
    const UNPADDED_SIG: &str = "v1,kPS+X5g6QIsOOFlATjqM1iJeHIh3uTyWblJv+e2gHiI=";

    #[test]
    fn secrets_without_padding_are_accepted_and_verify() {
        let h = headers(MSG_ID, &TS.to_string(), UNPADDED_SIG);
        assert_eq!(verifier(&[UNPADDED]).verify(&h, BODY, at(TS)), Ok(()));
        // The padded form is the same key.
        let padded = format!("{UNPADDED}==");
        assert_eq!(verifier(&[&padded]).verify(&h, BODY, at(TS)), Ok(()));
        // And the key still matters: the official vector's signature does not pass with it.
        assert!(verifier(&[UNPADDED])
            .verify(&vector(), BODY, at(TS))
            .is_err());
        // Something that is not base64 at all is still refused.
        for bad in ["whsec_c2llbW*hdGU", "whsec_c2llbWdhdGUtdW5wYWRkZWQta2V5I"] {
            assert!(
                StandardWebhooksVerifier::new(vec![Secret::new(bad)], DEFAULT_TOLERANCE).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn official_test_vector_passes() {
        assert_eq!(verifier(&[SECRET]).verify(&vector(), BODY, at(TS)), Ok(()));
        // Without the whsec_ prefix the secret is the same key.
        let bare = SECRET.trim_start_matches("whsec_");
        assert_eq!(
            verifier(&[bare]).verify(&vector(), BODY, at(TS + 60)),
            Ok(())
        );
    }

    #[test]
    fn second_rotated_secret_passes() {
        let old = STANDARD.encode(b"an-older-signing-key");
        assert_eq!(
            verifier(&[&old, SECRET]).verify(&vector(), BODY, at(TS)),
            Ok(())
        );
    }

    #[test]
    fn any_v1_entry_may_match_and_other_versions_are_ignored() {
        let v = verifier(&[SECRET]);
        let ts = TS.to_string();
        let other = sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", MSG_ID, TS, BODY);
        let list = format!("v1a,abc {other} v1,!!! {SIG}");
        assert_eq!(v.verify(&headers(MSG_ID, &ts, &list), BODY, at(TS)), Ok(()));
        // The right bytes under another version label do not count.
        let relabelled = SIG.replacen("v1,", "v1a,", 1);
        assert_eq!(
            v.verify(&headers(MSG_ID, &ts, &relabelled), BODY, at(TS)),
            Err(AuthError::Mismatch)
        );
    }

    #[test]
    fn missing_headers() {
        let v = verifier(&[SECRET]);
        for name in [ID, TIMESTAMP, SIGNATURE] {
            let mut h = vector();
            h.remove(name);
            let err = v.verify(&h, BODY, at(TS)).unwrap_err();
            assert_eq!(err, AuthError::Missing(name));
            assert!(err.is_missing());
        }
    }

    #[test]
    fn wrong_secret_tampered_body_or_id_mismatch() {
        let wrong = STANDARD.encode(b"not-the-right-key");
        assert_eq!(
            verifier(&[&wrong]).verify(&vector(), BODY, at(TS)),
            Err(AuthError::Mismatch)
        );
        let v = verifier(&[SECRET]);
        assert_eq!(
            v.verify(
                &vector(),
                br#"{"email":"evil@example.com","username":"test_user"}"#,
                at(TS)
            ),
            Err(AuthError::Mismatch)
        );
        let other_id = headers("msg_other", &TS.to_string(), SIG);
        assert_eq!(v.verify(&other_id, BODY, at(TS)), Err(AuthError::Mismatch));
    }

    #[test]
    fn stale_and_future_timestamps_rejected() {
        let v = verifier(&[SECRET]);
        let h = vector();
        assert_eq!(v.verify(&h, BODY, at(TS + 300)), Ok(()));
        assert_eq!(
            v.verify(&h, BODY, at(TS + 301)),
            Err(AuthError::TimestampOutOfWindow)
        );
        assert_eq!(
            v.verify(&h, BODY, at(TS - 301)),
            Err(AuthError::TimestampOutOfWindow)
        );
        // A freshly signed future message is still rejected, and the window is configurable.
        let future = TS + 3600;
        let sig = sign(SECRET, MSG_ID, future, BODY);
        let h = headers(MSG_ID, &future.to_string(), &sig);
        assert_eq!(
            v.verify(&h, BODY, at(TS)),
            Err(AuthError::TimestampOutOfWindow)
        );
        let wide =
            StandardWebhooksVerifier::new(vec![Secret::new(SECRET)], Duration::from_secs(3600))
                .unwrap();
        assert_eq!(wide.verify(&h, BODY, at(TS)), Ok(()));
    }

    #[test]
    fn malformed_timestamp() {
        let v = verifier(&[SECRET]);
        for ts in ["", "abc", "1649367553.5", "-1649367553"] {
            assert!(
                matches!(
                    v.verify(&headers(MSG_ID, ts, SIG), BODY, at(TS)),
                    Err(AuthError::Malformed(_))
                ),
                "{ts:?}"
            );
        }
    }

    #[test]
    fn malformed_signature_entries_mismatch() {
        let v = verifier(&[SECRET]);
        let ts = TS.to_string();
        for sig in ["", "garbage", "v1,", "v1,%%%", "v1,dGVzdA=="] {
            assert_eq!(
                v.verify(&headers(MSG_ID, &ts, sig), BODY, at(TS)),
                Err(AuthError::Mismatch),
                "{sig:?}"
            );
        }
    }

    #[test]
    fn config_errors_name_the_index_only() {
        let err = StandardWebhooksVerifier::new(
            vec![Secret::new(SECRET), Secret::new("whsec_not*base64!")],
            DEFAULT_TOLERANCE,
        )
        .unwrap_err();
        assert_eq!(err, AuthConfigError::NotBase64 { index: 1 });
        assert!(!err.to_string().contains("not*base64"));
        assert_eq!(
            StandardWebhooksVerifier::new(vec![], DEFAULT_TOLERANCE).unwrap_err(),
            AuthConfigError::NoSecrets
        );
        assert_eq!(
            StandardWebhooksVerifier::new(vec![Secret::new("whsec_")], DEFAULT_TOLERANCE)
                .unwrap_err(),
            AuthConfigError::EmptySecret { index: 0 }
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let v = verifier(&[SECRET]);
        let s = format!("{v:?}");
        assert!(!s.contains("C2FV") && !s.contains("whsec"), "{s}");
    }
}
