//! `Secret`: a credential value that never prints.
//!
//! Secrets come from the config file (literal, `${ENV_VAR}` or `@file:/path`, resolved in
//! `config.rs`) or, later, from the admin API. They only leave this type through
//! [`Secret::expose`], which the verifiers call when they compare or key a MAC.

use std::fmt;

/// A resolved secret value. `Debug` and `Display` print `***` so that a secret can never reach a
/// log line or the output of `siemgate check` by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<str>);

impl Secret {
    pub fn new(value: impl Into<Box<str>>) -> Self {
        Secret(value.into())
    }

    /// The secret's bytes, for comparison or MAC keying only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "hunter2");
    }
}
