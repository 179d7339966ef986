//! Request authentication: the per-source [`Verifier`], the [`AuthError`] a request fails with and
//! the [`AuthConfigError`] a verifier fails to build with.
//!
//! Header-only schemes (token, basic) run before the body is read so that a caller without a
//! credential is turned away cheaply; body schemes (HMAC, Standard Webhooks) run on the raw body
//! bytes exactly as received. Every scheme accepts several secrets at once (rotation) and compares
//! against all of them in constant time, so neither the timing nor the error says which came close.

pub mod basic;
pub mod hmac;
pub mod standard_webhooks;
pub mod token;

pub use basic::BasicVerifier;
pub use hmac::{HmacSettings, HmacVerifier, SignatureEncoding};
pub use standard_webhooks::StandardWebhooksVerifier;
pub use token::TokenVerifier;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use subtle::Choice;

/// Which part of the request a verifier needs. Header-only schemes are checked before the body is
/// read (cheap rejection).
#[derive(Debug)]
pub enum Verifier {
    None,
    Token(token::TokenVerifier),
    Basic(basic::BasicVerifier),
    Hmac(hmac::HmacVerifier),
    StandardWebhooks(standard_webhooks::StandardWebhooksVerifier),
}

impl Verifier {
    /// The scheme's name, as used in config and as a metric/log label.
    pub fn scheme(&self) -> &'static str {
        match self {
            Verifier::None => "none",
            Verifier::Token(_) => "token",
            Verifier::Basic(_) => "basic",
            Verifier::Hmac(_) => "hmac_sha256",
            Verifier::StandardWebhooks(_) => "standard_webhooks",
        }
    }

    /// Whether [`Verifier::verify_body`] does any work (true for HMAC and Standard Webhooks).
    pub fn needs_body(&self) -> bool {
        matches!(self, Verifier::Hmac(_) | Verifier::StandardWebhooks(_))
    }

    /// What this scheme's signature covers besides the body, read from a request's headers.
    /// Meaningful once the request is verified: it is then what the sender signed.
    pub fn signed<'h>(&self, headers: &'h HeaderMap) -> Signed<'h> {
        match self {
            Verifier::StandardWebhooks(v) => match (
                headers.get(standard_webhooks::ID),
                headers.get(standard_webhooks::TIMESTAMP),
            ) {
                (Some(id), Some(ts)) => Signed::MessageId {
                    id: id.as_bytes(),
                    timestamp: parse_unix_seconds(ts.as_bytes()),
                    tolerance: v.tolerance(),
                },
                _ => Signed::Body,
            },
            Verifier::Hmac(v) => match v.timestamp_header().and_then(|h| headers.get(h)) {
                Some(ts) => Signed::Timestamp {
                    text: ts.as_bytes(),
                    timestamp: parse_unix_seconds(ts.as_bytes()),
                    tolerance: v.tolerance(),
                },
                None => Signed::Body,
            },
            Verifier::None | Verifier::Token(_) | Verifier::Basic(_) => Signed::Body,
        }
    }

    /// The replay window of a scheme whose signature covers a timestamp (Standard Webhooks, and
    /// HMAC with a `timestamp_header`): a captured request verifies for this long either side
    /// of its timestamp. `None` for schemes that sign no timestamp.
    pub fn signed_timestamp_tolerance(&self) -> Option<Duration> {
        match self {
            Verifier::StandardWebhooks(v) => Some(v.tolerance()),
            Verifier::Hmac(v) => v.timestamp_header().map(|_| v.tolerance()),
            Verifier::None | Verifier::Token(_) | Verifier::Basic(_) => None,
        }
    }

    /// Token and Basic check here; HMAC and Standard Webhooks check that the headers their
    /// signature needs are present, so a request without them is refused (401) before its body
    /// is read.
    pub fn verify_headers(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        match self {
            Verifier::Token(v) => v.verify(headers),
            Verifier::Basic(v) => v.verify(headers),
            Verifier::Hmac(v) => v.headers_present(headers),
            Verifier::StandardWebhooks(v) => v.headers_present(headers),
            Verifier::None => Ok(()),
        }
    }

    /// HMAC and Standard Webhooks check here (raw body bytes exactly as received); others return
    /// `Ok(())`.
    pub fn verify_body(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), AuthError> {
        match self {
            Verifier::Hmac(v) => v.verify(headers, body, now),
            Verifier::StandardWebhooks(v) => v.verify(headers, body, now),
            Verifier::None | Verifier::Token(_) | Verifier::Basic(_) => Ok(()),
        }
    }
}

/// What a verified request's signature covers besides its body: what tells a sender's own
/// retry, a byte-identical replay and a different message apart (see `dedup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signed<'h> {
    /// Standard Webhooks: the message id (`webhook-id`) and timestamp are signed with the body,
    /// so the id names the message and a sender's retry of it keeps the id.
    MessageId {
        id: &'h [u8],
        /// The signed `webhook-timestamp`, in unix seconds (`None` if unreadable).
        timestamp: Option<u64>,
        tolerance: Duration,
    },
    /// HMAC with a signed timestamp header: the timestamp's text and the body are signed.
    Timestamp {
        text: &'h [u8],
        timestamp: Option<u64>,
        tolerance: Duration,
    },
    /// Only the body is signed (HMAC without a timestamp), or nothing is (token, basic, none):
    /// no header can be trusted to name the message.
    Body,
}

impl Signed<'_> {
    /// How long after `now` a replay of this request would still pass verification: until its
    /// signed timestamp leaves the tolerance window. Zero without a signed timestamp.
    pub fn replayable_for(&self, now: SystemTime) -> Duration {
        let (timestamp, tolerance) = match *self {
            Signed::MessageId {
                timestamp,
                tolerance,
                ..
            }
            | Signed::Timestamp {
                timestamp,
                tolerance,
                ..
            } => (timestamp, tolerance),
            Signed::Body => return Duration::ZERO,
        };
        let Some(ts) = timestamp else {
            return Duration::ZERO;
        };
        let until = UNIX_EPOCH + Duration::from_secs(ts) + tolerance;
        // One second more: the window check compares whole seconds.
        until
            .duration_since(now)
            .map_or(Duration::ZERO, |d| d + Duration::from_secs(1))
    }
}

/// Unix seconds from a timestamp header's digits; `None` unless it is 1 to 19 ASCII digits.
fn parse_unix_seconds(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        value
            .iter()
            .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0')),
    )
}

/// Why a request failed verification. `reason()` is a metric label (snake_case, `&'static str`).
/// Missing credential -> the server answers 401; every other variant -> 403. The variants must
/// never say which secret came close.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// The credential (named by header, or a fixed text when the header name is configurable) is
    /// absent.
    #[error("missing credential: {0}")]
    Missing(&'static str),
    #[error("credential does not match")]
    Mismatch,
    #[error("malformed credential: {0}")]
    Malformed(&'static str),
    #[error("timestamp outside the accepted window")]
    TimestampOutOfWindow,
}

impl AuthError {
    /// The metric reason label.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing(_) => "missing_credential",
            AuthError::Mismatch => "invalid_credential",
            AuthError::Malformed(_) => "malformed_credential",
            AuthError::TimestampOutOfWindow => "timestamp_out_of_window",
        }
    }

    /// True when no credential was presented (401 rather than 403).
    pub fn is_missing(&self) -> bool {
        matches!(self, AuthError::Missing(_))
    }
}

/// Errors building a verifier from config values. Messages name the secret by its index, never by
/// its value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthConfigError {
    #[error("no secrets configured")]
    NoSecrets,
    #[error("secrets[{index}] is empty")]
    EmptySecret { index: usize },
    #[error("credentials[{index}] has an empty username")]
    EmptyUsername { index: usize },
    #[error("credentials[{index}] has a username containing ':'")]
    UsernameHasColon { index: usize },
    #[error("secrets[{index}] is not valid base64 (after an optional whsec_ prefix)")]
    NotBase64 { index: usize },
    #[error("secrets[{index}] cannot key an hmac")]
    InvalidKey { index: usize },
}

/// Constant-time any-of: evaluates `matches` for every item (no short-circuit across secrets) and
/// folds the results with `subtle::Choice`, so timing does not tell which item, if any, matched.
pub(crate) fn ct_any<T>(
    items: impl IntoIterator<Item = T>,
    matches: impl FnMut(T) -> Choice,
) -> bool {
    ct_any_choice(items, matches).into()
}

/// [`ct_any`] without leaving `Choice`, for nesting (every signature entry against every secret).
pub(crate) fn ct_any_choice<T>(
    items: impl IntoIterator<Item = T>,
    mut matches: impl FnMut(T) -> Choice,
) -> Choice {
    let mut found = Choice::from(0u8);
    for item in items {
        found |= matches(item);
    }
    found
}

/// Reject every secret list that is empty or holds an empty secret.
pub(crate) fn check_secrets(secrets: &[crate::secret::Secret]) -> Result<(), AuthConfigError> {
    if secrets.is_empty() {
        return Err(AuthConfigError::NoSecrets);
    }
    match secrets.iter().position(|s| s.expose().is_empty()) {
        Some(index) => Err(AuthConfigError::EmptySecret { index }),
        None => Ok(()),
    }
}

/// Checks a unix-seconds timestamp header value against `now`, accepting at most `tolerance` of
/// skew in either direction (stale replays and clocks running ahead are both rejected).
pub(crate) fn check_timestamp(
    value: &[u8],
    now: SystemTime,
    tolerance: Duration,
) -> Result<(), AuthError> {
    // 19 digits always fit an i128 and cover every realistic unix time.
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(AuthError::Malformed("timestamp is not unix seconds"));
    }
    let ts = value
        .iter()
        .fold(0i128, |acc, d| acc * 10 + i128::from(d - b'0'));
    let now = match now.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::from(d.as_secs()),
        Err(e) => -i128::from(e.duration().as_secs()),
    };
    if (now - ts).unsigned_abs() > u128::from(tolerance.as_secs()) {
        return Err(AuthError::TimestampOutOfWindow);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use subtle::ConstantTimeEq;

    #[test]
    fn reasons_and_status_class() {
        assert_eq!(AuthError::Missing("x").reason(), "missing_credential");
        assert!(AuthError::Missing("x").is_missing());
        assert_eq!(AuthError::Mismatch.reason(), "invalid_credential");
        assert!(!AuthError::Mismatch.is_missing());
        assert_eq!(AuthError::Malformed("x").reason(), "malformed_credential");
        assert_eq!(
            AuthError::TimestampOutOfWindow.reason(),
            "timestamp_out_of_window"
        );
    }

    #[test]
    fn ct_any_checks_all() {
        let secrets: [&[u8]; 3] = [b"a", b"bb", b"ccc"];
        let mut calls = 0;
        assert!(ct_any(secrets, |s| {
            calls += 1;
            b"a".ct_eq(s)
        }));
        assert_eq!(calls, 3);
        assert!(!ct_any(secrets, |s| b"zz".ct_eq(s)));
    }

    #[test]
    fn timestamp_window() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let tol = Duration::from_secs(300);
        assert_eq!(check_timestamp(b"1000", now, tol), Ok(()));
        assert_eq!(check_timestamp(b"700", now, tol), Ok(()));
        assert_eq!(check_timestamp(b"1300", now, tol), Ok(()));
        assert_eq!(
            check_timestamp(b"699", now, tol),
            Err(AuthError::TimestampOutOfWindow)
        );
        assert_eq!(
            check_timestamp(b"1301", now, tol),
            Err(AuthError::TimestampOutOfWindow)
        );
        for bad in [
            &b""[..],
            b"-5",
            b"+5",
            b"1e3",
            b" 1000",
            b"99999999999999999999",
        ] {
            assert!(matches!(
                check_timestamp(bad, now, tol),
                Err(AuthError::Malformed(_))
            ));
        }
    }

    #[test]
    fn dispatch_by_part() {
        use crate::secret::Secret;
        let now = SystemTime::now();
        let empty = HeaderMap::new();
        assert_eq!(Verifier::None.scheme(), "none");
        assert!(!Verifier::None.needs_body());
        assert_eq!(Verifier::None.verify_headers(&empty), Ok(()));
        assert_eq!(Verifier::None.verify_body(&empty, b"", now), Ok(()));

        let token = Verifier::Token(
            TokenVerifier::new(http::header::AUTHORIZATION, None, vec![Secret::new("t")]).unwrap(),
        );
        assert_eq!((token.scheme(), token.needs_body()), ("token", false));
        assert!(token.verify_headers(&empty).unwrap_err().is_missing());
        assert_eq!(token.verify_body(&empty, b"", now), Ok(()));

        let sw = Verifier::StandardWebhooks(
            StandardWebhooksVerifier::new(vec![Secret::new("dGVzdA==")], Duration::from_secs(300))
                .unwrap(),
        );
        assert_eq!((sw.scheme(), sw.needs_body()), ("standard_webhooks", true));
        assert_eq!(
            sw.verify_headers(&empty),
            Err(AuthError::Missing("webhook-id"))
        );
        assert!(sw.verify_body(&empty, b"", now).unwrap_err().is_missing());
        assert!(!format!("{sw:?}").contains("dGVzdA"));
    }
}
