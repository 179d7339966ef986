//! What the admin API takes: a source definition with the keys of a `[[sources]]` table, as
//! JSON. Secrets are values, never references; a secret left out is generated (or, on an update
//! that keeps the scheme, kept).

use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Map, Value};

use crate::config::{AuthConfig, ConfigIssue, SecretRef, SourceConfig};
use crate::control::store::parse_value;

/// A definition ready to store, and the secret generated for it, if one was.
pub struct Prepared {
    pub definition: Value,
    pub config: SourceConfig,
    pub generated: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("the system's random number generator failed")]
pub struct RandomError;

/// The keys holding a scheme's secrets, and the one a generated secret goes in.
fn secret_keys(scheme: &str) -> Option<(&'static [&'static str], &'static str)> {
    match scheme {
        "token" | "hmac_sha256" | "standard_webhooks" => Some((&["secret", "secrets"], "secret")),
        "basic" => Some((&["password", "credentials"], "password")),
        _ => None,
    }
}

/// 32 random bytes, written the way the scheme's senders expect: `whsec_` and base64 for
/// Standard Webhooks, hex for HMAC keys, URL-safe base64 for tokens and passwords.
pub fn generate_secret(scheme: &str) -> Result<String, RandomError> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| RandomError)?;
    Ok(match scheme {
        "standard_webhooks" => format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        ),
        "hmac_sha256" => hex::encode(bytes),
        _ => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    })
}

fn join(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) => format!("{prefix}.{path}"),
    }
}

fn issue(path: String, message: impl Into<String>) -> ConfigIssue {
    ConfigIssue {
        path,
        message: message.into(),
    }
}

/// Fills in the secret (kept from `existing` or generated), parses the definition strictly, and
/// refuses secret references. Issue paths start with `prefix`.
pub fn prepare(
    mut value: Value,
    existing: Option<&Value>,
    prefix: &str,
) -> Result<Prepared, Vec<ConfigIssue>> {
    let Value::Object(obj) = &mut value else {
        return Err(vec![issue(prefix.to_owned(), "must be a JSON object")]);
    };
    let mut generated = None;
    let scheme = obj
        .get("auth")
        .and_then(|a| a.get("scheme"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let (Some(scheme), Some(Value::Object(auth))) = (scheme.as_deref(), obj.get_mut("auth")) {
        if let Some((keys, main)) = secret_keys(scheme) {
            if !keys.iter().any(|k| auth.contains_key(*k)) {
                let kept = existing
                    .and_then(|e| e.get("auth"))
                    .and_then(Value::as_object)
                    .filter(|a| a.get("scheme").and_then(Value::as_str) == Some(scheme));
                match kept {
                    Some(old) => {
                        for k in keys {
                            if let Some(v) = old.get(*k) {
                                auth.insert((*k).to_owned(), v.clone());
                            }
                        }
                    }
                    None => {
                        let secret = generate_secret(scheme)
                            .map_err(|e| vec![issue(join(prefix, "auth"), e.to_string())])?;
                        auth.insert(main.to_owned(), Value::String(secret.clone()));
                        generated = Some(secret);
                    }
                }
            }
        }
    }
    let config: SourceConfig = parse_value(&value).map_err(|mut i| {
        if i.path == "auth" {
            if let Some(inner) = value.get("auth").and_then(auth_key_problem) {
                i = inner;
            }
        }
        i.path = join(prefix, &i.path);
        vec![i]
    })?;
    let refs: Vec<ConfigIssue> = secret_refs(&config.auth)
        .into_iter()
        .filter(|(_, r)| r.is_reference())
        .map(|(k, _)| {
            issue(
                join(prefix, &format!("auth.{k}")),
                "secret references (${VAR}, @file:) are for the config file: give the secret's value, or leave it out to have one generated",
            )
        })
        .collect();
    if !refs.is_empty() {
        return Err(refs);
    }
    Ok(Prepared {
        definition: value,
        config,
        generated,
    })
}

/// Finds the key of an auth table that does not parse. The table is tagged by `scheme`, and
/// serde reports problems inside a tagged table at the table itself; every key but `scheme` is
/// optional, so each can be tried on its own to name the one at fault.
fn auth_key_problem(auth: &Value) -> Option<ConfigIssue> {
    let obj = auth.as_object()?;
    let scheme = obj.get("scheme")?;
    obj.iter()
        .filter(|(k, _)| *k != "scheme")
        .find_map(|(k, v)| {
            let mut one = Map::new();
            one.insert("scheme".to_owned(), scheme.clone());
            one.insert(k.clone(), v.clone());
            parse_value::<AuthConfig>(&Value::Object(one))
                .err()
                .map(|e| ConfigIssue {
                    path: format!("auth.{k}"),
                    message: e.message,
                })
        })
}

/// Every secret of an auth table, with its key path below `auth`.
fn secret_refs(auth: &AuthConfig) -> Vec<(String, &SecretRef)> {
    let mut out: Vec<(String, &SecretRef)> = Vec::new();
    match auth {
        AuthConfig::None { .. } => {}
        AuthConfig::Token {
            secret, secrets, ..
        }
        | AuthConfig::HmacSha256 {
            secret, secrets, ..
        }
        | AuthConfig::StandardWebhooks {
            secret, secrets, ..
        } => {
            if let Some(s) = secret {
                out.push(("secret".to_owned(), s));
            }
            for (i, s) in secrets.iter().enumerate() {
                out.push((format!("secrets[{i}]"), s));
            }
        }
        AuthConfig::Basic {
            password,
            credentials,
            ..
        } => {
            if let Some(p) = password {
                out.push(("password".to_owned(), p));
            }
            for (i, c) in credentials.iter().enumerate() {
                out.push((format!("credentials[{i}].password"), &c.password));
            }
        }
    }
    out
}

/// The auth table of `definition` with its secrets replaced by `secret`; `None` for a scheme
/// without secrets.
pub fn with_new_secret(definition: &Value, secret: &str) -> Option<Value> {
    let mut def = definition.clone();
    let auth = def.get_mut("auth")?.as_object_mut()?;
    let scheme = auth.get("scheme")?.as_str()?.to_owned();
    let (keys, main) = secret_keys(&scheme)?;
    let mut kept: Map<String, Value> = std::mem::take(auth);
    for k in keys {
        kept.remove(*k);
    }
    kept.insert(main.to_owned(), Value::String(secret.to_owned()));
    *auth = kept;
    Some(def)
}

/// The scheme named by a definition's auth table.
pub fn scheme_of(definition: &Value) -> Option<&str> {
    definition.get("auth")?.get("scheme")?.as_str()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn generates_a_secret_in_each_schemes_form() {
        let sw = generate_secret("standard_webhooks").unwrap();
        assert!(sw.starts_with("whsec_") && sw.len() == 6 + 44, "{sw}");
        let h = generate_secret("hmac_sha256").unwrap();
        assert_eq!(h.len(), 64);
        assert!(h.bytes().all(|b| b.is_ascii_hexdigit()));
        let t = generate_secret("token").unwrap();
        assert_eq!(t.len(), 43);
        assert_ne!(t, generate_secret("token").unwrap());
    }

    #[test]
    fn fills_keeps_or_refuses_secrets() {
        let p = prepare(
            json!({"id": "a", "auth": {"scheme": "hmac_sha256"}, "sinks": ["out"]}),
            None,
            "",
        )
        .unwrap();
        let secret = p.generated.clone().unwrap();
        assert_eq!(p.definition["auth"]["secret"], json!(secret));

        // An update with the same scheme and no secret keeps the stored one.
        let kept = prepare(
            json!({"id": "a", "auth": {"scheme": "hmac_sha256", "encoding": "base64"}, "sinks": ["out"]}),
            Some(&p.definition),
            "",
        )
        .unwrap();
        assert!(kept.generated.is_none());
        assert_eq!(kept.definition["auth"]["secret"], json!(secret));

        let refused = prepare(
            json!({"id": "a", "auth": {"scheme": "token", "secret": "${HOME}"}, "sinks": ["out"]}),
            None,
            "sources[2]",
        )
        .err()
        .unwrap();
        assert_eq!(refused[0].path, "sources[2].auth.secret");

        let unknown = prepare(
            json!({"id": "a", "auth": {"scheme": "token", "secret": "x", "colour": 1}, "sinks": []}),
            None,
            "",
        )
        .err()
        .unwrap();
        assert_eq!(unknown[0].path, "auth.colour");
        let bad_value = prepare(
            json!({"id": "a", "auth": {"scheme": "hmac_sha256", "secret": "x", "tolerance": "soon"}, "sinks": []}),
            None,
            "sources[0]",
        )
        .err()
        .unwrap();
        assert_eq!(bad_value[0].path, "sources[0].auth.tolerance");
        let missing = prepare(json!({"id": "a", "sinks": []}), None, "")
            .err()
            .unwrap();
        assert_eq!(missing[0].path, "auth");
        assert!(unknown[0].message.contains("colour"), "{:?}", unknown[0]);
        let wrong_type = prepare(
            json!({"id": "a", "auth": {"scheme": "none"}, "sinks": "out"}),
            None,
            "",
        )
        .err()
        .unwrap();
        assert_eq!(wrong_type[0].path, "sinks");
    }

    #[test]
    fn replaces_every_secret_key() {
        let def =
            json!({"id": "a", "auth": {"scheme": "token", "secrets": ["a", "b"], "header": "X-T"}});
        let new = with_new_secret(&def, "fresh").unwrap();
        assert_eq!(
            new["auth"],
            json!({"scheme": "token", "secret": "fresh", "header": "X-T"})
        );
        assert!(with_new_secret(&json!({"auth": {"scheme": "none"}}), "x").is_none());
    }
}
