//! The `[admin]` section: the admin API's own listener and its bearer tokens.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Deserialize;

use std::time::Duration;

use super::{parse_addr, ConfigDuration, Issues, SecretRef, TlsConfig};
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
    /// Most sources the admin API may hold at once. Each costs memory for as long as it
    /// exists (its verifier, de-duplication window, metric series), so a runaway script or a
    /// leaked token cannot grow the gateway without bound; past it, creating one is a 409.
    #[serde(default = "default_max_sources")]
    pub max_sources: usize,
    /// Failed authentications one client address may make within `auth_failure_window`;
    /// after that its requests get 429 with Retry-After, without the token being checked, until
    /// the window ends. Bounds token guessing and the log lines failures write.
    #[serde(default = "default_max_auth_failures")]
    pub max_auth_failures: u32,
    #[serde(default = "default_auth_failure_window")]
    pub auth_failure_window: ConfigDuration,
}

/// Default cap on API sources: far above what one gateway's vendors need.
pub const DEFAULT_MAX_SOURCES: usize = 1000;
/// Default failed admin authentications per client address and window.
pub const DEFAULT_MAX_AUTH_FAILURES: u32 = 10;
/// Default window for counting failed admin authentications.
pub const DEFAULT_AUTH_FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Largest accepted `max_sources`: the whole set is rewritten to the store on each change.
const MAX_MAX_SOURCES: usize = 100_000;

fn default_max_sources() -> usize {
    DEFAULT_MAX_SOURCES
}
fn default_max_auth_failures() -> u32 {
    DEFAULT_MAX_AUTH_FAILURES
}
fn default_auth_failure_window() -> ConfigDuration {
    ConfigDuration(DEFAULT_AUTH_FAILURE_WINDOW)
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
    pub limits: AdminLimits,
}

/// The admin API's bounds (see [`AdminConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminLimits {
    pub max_sources: usize,
    pub max_auth_failures: u32,
    pub auth_failure_window: Duration,
}

impl Default for AdminLimits {
    fn default() -> Self {
        AdminLimits {
            max_sources: DEFAULT_MAX_SOURCES,
            max_auth_failures: DEFAULT_MAX_AUTH_FAILURES,
            auth_failure_window: DEFAULT_AUTH_FAILURE_WINDOW,
        }
    }
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
            match crate::tls::server_config(&tls.options()) {
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
    if admin.max_sources == 0 || admin.max_sources > MAX_MAX_SOURCES {
        issues.push(
            "admin.max_sources",
            format!("must be 1 to {MAX_MAX_SOURCES}"),
        );
    }
    if admin.max_auth_failures == 0 {
        issues.push("admin.max_auth_failures", "must be at least 1");
    }
    let window = admin.auth_failure_window.0;
    if window < Duration::from_secs(1) || window > Duration::from_secs(24 * 3600) {
        issues.push("admin.auth_failure_window", "must be 1s to 24h");
    }
    if issues.0.len() != before {
        return None;
    }
    Some(AdminSettings {
        listen: listen?,
        tls,
        tokens,
        limits: AdminLimits {
            max_sources: admin.max_sources,
            max_auth_failures: admin.max_auth_failures,
            auth_failure_window: window,
        },
    })
}
