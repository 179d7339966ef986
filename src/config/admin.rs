//! The `[admin]` section: the admin API's own listener and its bearer tokens.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Deserialize;

use super::{parse_addr, Issues, SecretRef, TlsConfig};
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin API; never the hooks listener's. Without `[admin.tls]` it must be
    /// a loopback address.
    pub listen: String,
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub tokens: Vec<AdminTokenConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTokenConfig {
    /// Who holds the token; audit lines name it.
    pub name: String,
    pub token: SecretRef,
    #[serde(default)]
    pub role: AdminRole,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminRole {
    /// Every route.
    #[default]
    Admin,
    /// GET routes only.
    Read,
}

pub struct AdminSettings {
    pub listen: SocketAddr,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub tokens: Vec<AdminToken>,
}

pub struct AdminToken {
    pub name: String,
    pub token: Secret,
    pub role: AdminRole,
}

/// Shortest admin token accepted: a guessable token would open the whole gateway.
const MIN_TOKEN_BYTES: usize = 16;

pub(super) fn validate_admin(
    admin: &AdminConfig,
    hooks: Option<SocketAddr>,
    issues: &mut Issues,
) -> Option<AdminSettings> {
    let before = issues.0.len();
    let listen = parse_addr(&admin.listen, "admin.listen", issues);
    if let (Some(a), Some(h)) = (listen, hooks) {
        if a.port() != 0
            && a.port() == h.port()
            && (a.ip() == h.ip() || a.ip().is_unspecified() || h.ip().is_unspecified())
        {
            issues.push(
                "admin.listen",
                "the admin API needs its own listener: use another port than server.listen",
            );
        }
    }
    let tls = match &admin.tls {
        None => {
            if listen.is_some_and(|a| !a.ip().is_loopback()) {
                issues.push(
                    "admin.tls",
                    "an admin listener on a non-loopback address needs [admin.tls] (cert and key)",
                );
            }
            None
        }
        Some(tls) => {
            if tls.client_ca.is_some() {
                issues.push(
                    "admin.tls.client_ca",
                    "not supported on the admin listener: it authenticates with bearer tokens",
                );
            }
            match crate::server::tls::server_config(tls) {
                Ok(cfg) => Some(cfg),
                Err(e) => {
                    issues.push(format!("admin.tls.{}", e.key()), e.to_string());
                    None
                }
            }
        }
    };
    if admin.tokens.is_empty() {
        issues.push(
            "admin.tokens",
            "no tokens: add at least one [[admin.tokens]] with a name and a token",
        );
    }
    let mut tokens: Vec<AdminToken> = Vec::with_capacity(admin.tokens.len());
    for (i, t) in admin.tokens.iter().enumerate() {
        let path = format!("admin.tokens[{i}]");
        if t.name.is_empty() || t.name.len() > 64 {
            issues.push(format!("{path}.name"), "must be 1 to 64 characters");
        } else if admin.tokens[..i].iter().any(|o| o.name == t.name) {
            issues.push(
                format!("{path}.name"),
                format!("duplicate token name {:?}", t.name),
            );
        }
        match t.token.resolve() {
            Ok(secret) if secret.expose().len() < MIN_TOKEN_BYTES => issues.push(
                format!("{path}.token"),
                format!("too short: use at least {MIN_TOKEN_BYTES} characters (e.g. openssl rand -hex 32)"),
            ),
            Ok(secret) => {
                if tokens.iter().any(|o| o.token.expose() == secret.expose()) {
                    issues.push(format!("{path}.token"), "the same token is given twice");
                }
                tokens.push(AdminToken {
                    name: t.name.clone(),
                    token: secret,
                    role: t.role,
                });
            }
            Err(m) => issues.push(format!("{path}.token"), m),
        }
    }
    if issues.0.len() != before {
        return None;
    }
    Some(AdminSettings {
        listen: listen?,
        tls,
        tokens,
    })
}
