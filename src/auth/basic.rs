//! HTTP Basic authentication (`Authorization: Basic base64(user:pass)`, RFC 7617) against a list of
//! accepted username/password pairs, several at once for rotation.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::AUTHORIZATION;
use http::HeaderMap;
use subtle::ConstantTimeEq;

use super::{ct_any, AuthConfigError, AuthError};
use crate::secret::Secret;

/// Checks `Authorization: Basic ...`. `Debug` prints only how many pairs are configured.
pub struct BasicVerifier {
    credentials: Vec<(String, Secret)>,
}

impl BasicVerifier {
    /// Fails when no pair is given, a username is empty or holds ':' (which Basic cannot carry),
    /// or a password is empty.
    pub fn new(credentials: Vec<(String, Secret)>) -> Result<Self, AuthConfigError> {
        if credentials.is_empty() {
            return Err(AuthConfigError::NoSecrets);
        }
        for (index, (user, pass)) in credentials.iter().enumerate() {
            if user.is_empty() {
                return Err(AuthConfigError::EmptyUsername { index });
            }
            if user.contains(':') {
                return Err(AuthConfigError::UsernameHasColon { index });
            }
            if pass.expose().is_empty() {
                return Err(AuthConfigError::EmptySecret { index });
            }
        }
        Ok(BasicVerifier { credentials })
    }

    pub(crate) fn verify(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let value = headers
            .get(AUTHORIZATION)
            .ok_or(AuthError::Missing("authorization"))?
            .as_bytes();
        let (scheme, rest) = value
            .iter()
            .position(|&b| b == b' ')
            .map(|i| value.split_at(i))
            .ok_or(AuthError::Malformed("authorization is not basic"))?;
        if !scheme.eq_ignore_ascii_case(b"basic") {
            return Err(AuthError::Malformed("authorization is not basic"));
        }
        let decoded = STANDARD
            .decode(rest.trim_ascii())
            .map_err(|_| AuthError::Malformed("basic credential is not base64"))?;
        let colon = decoded
            .iter()
            .position(|&b| b == b':')
            .ok_or(AuthError::Malformed("basic credential has no ':'"))?;
        let (user, pass) = (&decoded[..colon], &decoded[colon + 1..]);
        let ok = ct_any(&self.credentials, |(u, p)| {
            user.ct_eq(u.as_bytes()) & pass.ct_eq(p.expose().as_bytes())
        });
        if ok {
            Ok(())
        } else {
            Err(AuthError::Mismatch)
        }
    }
}

impl fmt::Debug for BasicVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicVerifier")
            .field("credentials", &self.credentials.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use http::HeaderValue;

    fn verifier() -> BasicVerifier {
        BasicVerifier::new(vec![
            ("alice".to_owned(), Secret::new("old-pass")),
            ("alice".to_owned(), Secret::new("new-pass")),
            ("bob".to_owned(), Secret::new("b0b")),
        ])
        .unwrap()
    }

    fn auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    fn basic(user_pass: &str) -> HeaderMap {
        auth(&format!("Basic {}", STANDARD.encode(user_pass)))
    }

    #[test]
    fn right_credentials_pass() {
        let v = verifier();
        assert_eq!(v.verify(&basic("alice:old-pass")), Ok(()));
        assert_eq!(v.verify(&basic("bob:b0b")), Ok(()));
        // RFC 7617: the scheme is case-insensitive, the password may contain ':'.
        let v2 = BasicVerifier::new(vec![("u".to_owned(), Secret::new("a:b"))]).unwrap();
        assert_eq!(
            v2.verify(&auth(&format!("bAsIc {}", STANDARD.encode("u:a:b")))),
            Ok(())
        );
    }

    #[test]
    fn second_rotated_secret_passes() {
        assert_eq!(verifier().verify(&basic("alice:new-pass")), Ok(()));
    }

    #[test]
    fn missing_header() {
        assert_eq!(
            verifier().verify(&HeaderMap::new()),
            Err(AuthError::Missing("authorization"))
        );
    }

    #[test]
    fn wrong_credentials_mismatch() {
        let v = verifier();
        for up in [
            "alice:b0b",
            "bob:new-pass",
            "alice:",
            ":new-pass",
            "mallory:x",
            "alice:new-pass ",
        ] {
            assert_eq!(v.verify(&basic(up)), Err(AuthError::Mismatch), "{up}");
        }
    }

    #[test]
    fn malformed() {
        let v = verifier();
        let no_colon = format!("Basic {}", STANDARD.encode("alicenew-pass"));
        for value in [
            "Bearer abc",
            "Basic",
            "Basic !!!notbase64",
            "Basic",
            no_colon.as_str(),
        ] {
            assert!(
                matches!(v.verify(&auth(value)), Err(AuthError::Malformed(_))),
                "{value}"
            );
        }
    }

    #[test]
    fn config_errors() {
        assert_eq!(
            BasicVerifier::new(vec![]).unwrap_err(),
            AuthConfigError::NoSecrets
        );
        assert_eq!(
            BasicVerifier::new(vec![(String::new(), Secret::new("p"))]).unwrap_err(),
            AuthConfigError::EmptyUsername { index: 0 }
        );
        assert_eq!(
            BasicVerifier::new(vec![("a:b".to_owned(), Secret::new("p"))]).unwrap_err(),
            AuthConfigError::UsernameHasColon { index: 0 }
        );
        assert_eq!(
            BasicVerifier::new(vec![("a".to_owned(), Secret::new(""))]).unwrap_err(),
            AuthConfigError::EmptySecret { index: 0 }
        );
    }

    #[test]
    fn debug_hides_credentials() {
        let s = format!("{:?}", verifier());
        assert!(!s.contains("pass") && !s.contains("alice"), "{s}");
    }
}
