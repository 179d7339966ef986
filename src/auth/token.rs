//! Static token in a request header (`Authorization: Bearer <token>` or e.g. `X-Api-Key: <token>`),
//! with several accepted tokens at once for rotation.

use http::{HeaderMap, HeaderName};
use subtle::ConstantTimeEq;

use super::{check_secrets, ct_any, AuthConfigError, AuthError};
use crate::secret::Secret;

/// Checks one header against a list of accepted tokens. `Debug` is safe: `Secret` prints `***`.
#[derive(Debug)]
pub struct TokenVerifier {
    header: HeaderName,
    /// Text before the token, such as `"Bearer "`; matched ASCII case-insensitively because the
    /// scheme word is case-insensitive (RFC 9110 section 11.1).
    prefix: Option<String>,
    secrets: Vec<Secret>,
}

impl TokenVerifier {
    /// Fails when `secrets` is empty or holds an empty secret. An empty prefix means no prefix.
    pub fn new(
        header: HeaderName,
        prefix: Option<String>,
        secrets: Vec<Secret>,
    ) -> Result<Self, AuthConfigError> {
        check_secrets(&secrets)?;
        Ok(TokenVerifier {
            header,
            prefix: prefix.filter(|p| !p.is_empty()),
            secrets,
        })
    }

    pub(crate) fn verify(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let value = headers
            .get(&self.header)
            .ok_or(AuthError::Missing("credential header"))?
            .as_bytes();
        let token = match &self.prefix {
            None => value,
            Some(prefix) => {
                let prefix = prefix.as_bytes();
                match value.split_at_checked(prefix.len()) {
                    Some((head, rest)) if head.eq_ignore_ascii_case(prefix) => rest,
                    _ => return Err(AuthError::Mismatch),
                }
            }
        };
        // Every secret is compared; a length difference ends one comparison early, which leaks
        // at most the length.
        if ct_any(&self.secrets, |s| token.ct_eq(s.expose().as_bytes())) {
            Ok(())
        } else {
            Err(AuthError::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use http::header::AUTHORIZATION;
    use http::HeaderValue;

    fn bearer(secrets: &[&str]) -> TokenVerifier {
        TokenVerifier::new(
            AUTHORIZATION,
            Some("Bearer ".to_owned()),
            secrets.iter().map(|s| Secret::new(*s)).collect(),
        )
        .unwrap()
    }

    fn headers(name: HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn right_token_passes() {
        let v = bearer(&["s3cret"]);
        assert_eq!(v.verify(&headers(AUTHORIZATION, "Bearer s3cret")), Ok(()));
        // The scheme word is case-insensitive.
        assert_eq!(v.verify(&headers(AUTHORIZATION, "bearer s3cret")), Ok(()));
    }

    #[test]
    fn second_rotated_secret_passes() {
        let v = bearer(&["old-token", "new-token"]);
        assert_eq!(
            v.verify(&headers(AUTHORIZATION, "Bearer new-token")),
            Ok(())
        );
        assert_eq!(
            v.verify(&headers(AUTHORIZATION, "Bearer old-token")),
            Ok(())
        );
    }

    #[test]
    fn missing_header() {
        let err = bearer(&["s3cret"]).verify(&HeaderMap::new()).unwrap_err();
        assert_eq!(err, AuthError::Missing("credential header"));
        assert!(err.is_missing());
    }

    #[test]
    fn wrong_token_or_prefix_mismatches() {
        let v = bearer(&["s3cret"]);
        for value in [
            "Bearer nope",
            "Bearer s3cre",
            "Bearer s3cret ",
            "Basic s3cret",
            "s3cret",
            "Bear",
        ] {
            assert_eq!(
                v.verify(&headers(AUTHORIZATION, value)),
                Err(AuthError::Mismatch),
                "{value}"
            );
        }
    }

    #[test]
    fn custom_header_without_prefix() {
        let name = HeaderName::from_static("x-api-key");
        let v = TokenVerifier::new(name.clone(), None, vec![Secret::new("k1")]).unwrap();
        assert_eq!(v.verify(&headers(name.clone(), "k1")), Ok(()));
        assert_eq!(v.verify(&headers(name, "k2")), Err(AuthError::Mismatch));
        assert_eq!(
            v.verify(&headers(AUTHORIZATION, "k1")),
            Err(AuthError::Missing("credential header"))
        );
    }

    #[test]
    fn config_errors() {
        assert_eq!(
            TokenVerifier::new(AUTHORIZATION, None, vec![]).unwrap_err(),
            AuthConfigError::NoSecrets
        );
        assert_eq!(
            TokenVerifier::new(AUTHORIZATION, None, vec![Secret::new("a"), Secret::new("")])
                .unwrap_err(),
            AuthConfigError::EmptySecret { index: 1 }
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let v = bearer(&["hunter2-token"]);
        assert!(!format!("{v:?}").contains("hunter2"));
    }
}
