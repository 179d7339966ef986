//! Configuration: the TOML file's serde types, secret references, and `validate()`, which turns
//! them into the runtime [`Settings`] the gateway runs on.
//!
//! Parsing and validation are two steps on purpose. Serde rejects what is malformed (unknown
//! keys, wrong types) and stops at the first problem; `validate()` then checks everything that
//! needs context (secret references, sink names, CIDRs, TLS files) and reports *every* problem
//! it finds, each with its key path, so that `siemgate check` lists them all at once. Runtime
//! types can only be built by `validate()`, so an unvalidated config never reaches the server.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use serde::Deserialize;

use crate::auth::hmac::{HmacSettings, SignatureEncoding};
use crate::auth::{self, Verifier};
use crate::normalize::{Kind, Severity, Status, Vendor};
use crate::secret::Secret;
use crate::vendors::mapping::{Mapping, MappingConfig};

pub mod admin;
pub mod cluster;
pub mod kafka;
pub mod parse_error;
pub mod role;
pub mod sinks;
pub use admin::*;
pub use sinks::*;

/// Default cap on a request body. Prisma Cloud batches and Wallarm arrays of a few hundred alerts
/// stay well under a megabyte; anything larger is far more likely abuse than a webhook.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// How long a client may take to send its request headers (slowloris protection).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send its whole body once the headers are in.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a TLS handshake may take before the connection is dropped.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent connections; each holds a socket and a small read buffer.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// How long a connection may sit with no request in flight before it is closed (HTTP/1.1
/// keep-alive and HTTP/2 alike): an idle connection costs a socket and a connection slot, and
/// vendors open a new one in milliseconds. Kept shorter than the header timeout.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may live: past it the connection is closed gracefully (GOAWAY, or
/// `Connection: close` on the next answer), so no client holds a slot for ever by staying busy.
pub const DEFAULT_MAX_CONNECTION_AGE: Duration = Duration::from_secs(10 * 60);
/// How often an HTTP/2 connection is pinged to find peers that went away without closing.
pub const DEFAULT_H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long an HTTP/2 ping may go unanswered before the connection is dropped.
pub const DEFAULT_H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections one client address may hold at once: a quarter of the default `max_connections`,
/// so a single host cannot take every slot. Behind a proxy that connects from one address, raise
/// it to `max_connections`.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;
/// Concurrent HTTP/2 streams per connection: webhook senders send a few requests at a time, and
/// each stream may buffer a body.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 16;
/// Request body bytes all connections together may have in flight (declared or received and not
/// yet answered): 64 bodies of the default maximum size.
pub const DEFAULT_MAX_INFLIGHT_BODY_BYTES: u64 = 64 * 1024 * 1024;
/// How long a clean shutdown may spend finishing requests and draining queues.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Replay window for signed timestamps (Standard Webhooks uses five minutes).
pub const DEFAULT_SIGNATURE_TOLERANCE: Duration = Duration::from_secs(300);
// ---------------------------------------------------------------------------------------------
// File types (serde)
// ---------------------------------------------------------------------------------------------

/// The config file as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub server: ServerConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    #[serde(default)]
    pub sinks: Vec<SinkConfig>,
    /// The admin API; off when absent.
    pub admin: Option<AdminConfig>,
    /// The Kafka topic through which the nodes of a cluster share the admin API's sources;
    /// without it they live in this node's `<data_dir>/admin/sources.json`.
    pub cluster: Option<cluster::ClusterConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the webhook listener.
    pub listen: String,
    /// TLS settings; without them the listener speaks plaintext only if `plaintext = true`.
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub plaintext: bool,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: ConfigDuration,
    /// Where disk queues live (`<data_dir>/queues/<sink id>`) unless a queue sets its `path`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Threads serving the webhook listener's connections; absent: one per CPU.
    #[serde(default)]
    pub threads: Option<usize>,
}

/// The most `server.threads` may be: each is an OS thread with its own event loop.
pub const MAX_SERVER_THREADS: usize = 256;

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA bundle for client certificates (mTLS). Sources opt in with `require_client_cert`.
    pub client_ca: Option<PathBuf>,
}

impl TlsConfig {
    /// The files the listener's TLS is built from.
    pub fn options(&self) -> crate::tls::ServerTlsOptions<'_> {
        crate::tls::ServerTlsOptions {
            cert: &self.cert,
            key: &self.key,
            client_ca: self.client_ca.as_deref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: ConfigDuration,
    #[serde(default = "default_body_read_timeout")]
    pub body_read_timeout: ConfigDuration,
    #[serde(default = "default_tls_handshake_timeout")]
    pub tls_handshake_timeout: ConfigDuration,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    #[serde(default = "default_max_events_per_request")]
    pub max_events_per_request: usize,
    /// Absent: [`DEFAULT_IDLE_TIMEOUT`], or half of `header_read_timeout` if that is shorter.
    #[serde(default)]
    pub idle_timeout: Option<ConfigDuration>,
    #[serde(default = "default_max_connection_age")]
    pub max_connection_age: ConfigDuration,
    #[serde(default = "default_h2_keepalive_interval")]
    pub h2_keepalive_interval: ConfigDuration,
    #[serde(default = "default_h2_keepalive_timeout")]
    pub h2_keepalive_timeout: ConfigDuration,
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    #[serde(default = "default_max_concurrent_streams")]
    pub max_concurrent_streams: u32,
    #[serde(default = "default_max_inflight_body_bytes")]
    pub max_inflight_body_bytes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            header_read_timeout: default_header_read_timeout(),
            body_read_timeout: default_body_read_timeout(),
            tls_handshake_timeout: default_tls_handshake_timeout(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_events_per_request: DEFAULT_MAX_EVENTS_PER_REQUEST,
            idle_timeout: None,
            max_connection_age: default_max_connection_age(),
            h2_keepalive_interval: default_h2_keepalive_interval(),
            h2_keepalive_timeout: default_h2_keepalive_timeout(),
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            max_inflight_body_bytes: DEFAULT_MAX_INFLIGHT_BODY_BYTES,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the metrics and health listener (`/metrics`, `/healthz`, `/readyz`).
    /// Set `enabled = false` to run without it.
    #[serde(default = "default_metrics_listen")]
    pub listen: String,
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: default_metrics_listen(),
            enabled: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub id: String,
    /// A label for people (the admin API shows it).
    pub name: Option<String>,
    /// `false`: the hook answers 404 as if the source did not exist.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `true`: requests are still verified and answered, events are counted and not forwarded.
    #[serde(default)]
    pub suppressed: bool,
    #[serde(default = "default_vendor")]
    pub vendor: String,
    pub auth: AuthConfig,
    pub sinks: Vec<String>,
    /// CIDRs allowed to send; checked before anything else. Empty means any address.
    #[serde(default)]
    pub allowed_ips: Vec<String>,
    /// Require a client certificate from `server.tls.client_ca` (mTLS).
    #[serde(default)]
    pub require_client_cert: bool,
    /// With `require_client_cert`: the certificate must carry one of these names (subject CN,
    /// DNS, URI or email subjectAltName) or one of `client_cert_sha256`'s fingerprints, so
    /// that a certificate from the shared `client_ca` cannot speak for every source.
    #[serde(default)]
    pub client_cert_names: Vec<String>,
    /// With `require_client_cert`: SHA-256 fingerprints (hex, colons allowed) of client
    /// certificates allowed for this source.
    #[serde(default)]
    pub client_cert_sha256: Vec<String>,
    #[serde(default)]
    pub filter: FilterConfig,
    /// Field mapping for `vendor = "generic"`: where each Event field comes from.
    pub mapping: Option<MappingConfig>,
    /// JSON pointers (RFC 6901, relative to each alert object) of fields to redact besides
    /// the vendor's known credential fields: a sender's template can put a secret anywhere,
    /// and nothing downstream of siemgate should ever hold it.
    #[serde(default)]
    pub redact: Vec<String>,
    /// Splunk HEC envelope overrides for this source's events (index, sourcetype, ...).
    #[serde(default)]
    pub hec: HecOverrides,
    /// De-duplication of vendor retries; off when absent.
    pub dedup: Option<DedupConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    /// How long a request is remembered.
    pub window: ConfigDuration,
    /// Keys remembered at most (150 to 300 bytes each with their times, receipt and table
    /// slack); the oldest go first. Also bounds the replay memory of signed-timestamp schemes.
    #[serde(default = "default_dedup_max_entries")]
    pub max_entries: usize,
}

/// Remembered requests per source: about 30 MB at most.
pub const DEFAULT_DEDUP_MAX_ENTRIES: usize = 100_000;

fn default_dedup_max_entries() -> usize {
    DEFAULT_DEDUP_MAX_ENTRIES
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    pub min_severity: Option<Severity>,
    #[serde(default)]
    pub kinds: Vec<Kind>,
    #[serde(default)]
    pub statuses: Vec<Status>,
}

/// How a source proves who it is. `scheme` selects the variant.
///
/// The derived deserializer is the externally tagged one (`remote = "Self"`); the `Deserialize`
/// impl below reads the table, takes `scheme` out and hands `{scheme: rest}` to it. Serde's own
/// internally tagged form buffers the table and loses the key path of an error inside it (a
/// value of the wrong type would be reported at `sources[0].auth`, not `...auth.secrets`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(remote = "Self", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    None {
        #[serde(default)]
        allow_unauthenticated: bool,
    },
    Token {
        header: Option<String>,
        prefix: Option<String>,
        secret: Option<SecretRef>,
        #[serde(default)]
        secrets: Vec<SecretRef>,
    },
    Basic {
        username: Option<String>,
        password: Option<SecretRef>,
        #[serde(default)]
        credentials: Vec<BasicCredential>,
    },
    HmacSha256 {
        header: Option<String>,
        #[serde(default)]
        encoding: EncodingConfig,
        prefix: Option<String>,
        timestamp_header: Option<String>,
        #[serde(default = "default_signature_tolerance")]
        tolerance: ConfigDuration,
        secret: Option<SecretRef>,
        #[serde(default)]
        secrets: Vec<SecretRef>,
    },
    StandardWebhooks {
        #[serde(default = "default_signature_tolerance")]
        tolerance: ConfigDuration,
        secret: Option<SecretRef>,
        #[serde(default)]
        secrets: Vec<SecretRef>,
    },
}

impl<'de> Deserialize<'de> for AuthConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        use serde_json::{Map, Value};

        /// The derived (externally tagged) deserializer, as a `Deserialize` type.
        struct Tagged(AuthConfig);
        impl<'de> Deserialize<'de> for Tagged {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                AuthConfig::deserialize(d).map(Tagged)
            }
        }

        let mut table = Map::<String, Value>::deserialize(d)?;
        let scheme = match table.remove("scheme") {
            Some(Value::String(s)) => s,
            Some(_) => {
                return Err(D::Error::custom(parse_error::nested(
                    "scheme",
                    "invalid type, expected a string",
                )))
            }
            None => return Err(D::Error::missing_field("scheme")),
        };
        let tagged = Value::Object(Map::from_iter([(scheme.clone(), Value::Object(table))]));
        match serde_path_to_error::deserialize::<_, Tagged>(tagged) {
            Ok(Tagged(auth)) => Ok(auth),
            Err(e) => {
                let path = e.path().to_string();
                let inner = path
                    .strip_prefix(scheme.as_str())
                    .unwrap_or("")
                    .trim_start_matches('.');
                let message = parse_error::without_values(&e.into_inner().to_string());
                // An unknown variant is the `scheme` key's value.
                let inner = if inner.is_empty() && message.starts_with("unknown variant") {
                    "scheme"
                } else {
                    inner
                };
                Err(D::Error::custom(if inner.is_empty() {
                    message
                } else {
                    parse_error::nested(inner, &message)
                }))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicCredential {
    pub username: String,
    pub password: SecretRef,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncodingConfig {
    #[default]
    Hex,
    Base64,
    /// Hex or base64, told apart by length.
    Any,
}

/// A secret as written in the file: a literal, `${ENV_VAR}`, or `@file:/path`.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct SecretRef(String);

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretRef(***)")
    }
}

impl SecretRef {
    /// A secret given as its value (the admin API takes no references).
    pub fn literal(value: String) -> SecretRef {
        SecretRef(value)
    }

    /// Whether this names an environment variable or a file rather than holding the value.
    pub fn is_reference(&self) -> bool {
        let raw = self.0.as_str();
        raw.starts_with("@file:") || (raw.starts_with("${") && raw.ends_with('}'))
    }

    /// Resolves the reference. Error messages name the variable or file, never the value.
    pub fn resolve(&self) -> Result<Secret, String> {
        let raw = self.0.as_str();
        if let Some(var) = raw.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
            return match std::env::var(var) {
                Ok(v) if v.is_empty() => Err(format!("environment variable {var} is empty")),
                Ok(v) => Ok(Secret::new(v)),
                Err(std::env::VarError::NotPresent) => {
                    Err(format!("environment variable {var} is not set"))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(format!("environment variable {var} is not valid UTF-8"))
                }
            };
        }
        if let Some(path) = raw.strip_prefix("@file:") {
            return match std::fs::read_to_string(path) {
                Ok(v) => {
                    let v = v.trim_end_matches(['\r', '\n']);
                    if v.is_empty() {
                        Err(format!("secret file {path} is empty"))
                    } else {
                        Ok(Secret::new(v))
                    }
                }
                Err(e) => Err(format!("cannot read secret file {path}: {e}")),
            };
        }
        if raw.is_empty() {
            return Err("secret is empty".to_owned());
        }
        Ok(Secret::new(raw))
    }
}

/// A duration written as `250ms`, `10s`, `5m` or `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigDuration(pub Duration);

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map(ConfigDuration).ok_or_else(|| {
            // The value is not repeated: a secret may have been written here by mistake.
            serde::de::Error::custom(
                "invalid duration: expected a number followed by ms, s, m or h, e.g. 10s",
            )
        })
    }
}

/// Parses `250ms`, `10s`, `5m`, `1h`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        _ => None,
    }
}

fn default_true() -> bool {
    true
}
fn default_shutdown_grace() -> ConfigDuration {
    ConfigDuration(DEFAULT_SHUTDOWN_GRACE)
}
/// Events one request may carry: far above any vendor's batch (Prisma Cloud sends at most a
/// few hundred alerts per call), far below what would let one request hold hundreds of MB.
pub const DEFAULT_MAX_EVENTS_PER_REQUEST: usize = 10_000;

fn default_max_events_per_request() -> usize {
    DEFAULT_MAX_EVENTS_PER_REQUEST
}

fn default_max_body_bytes() -> u64 {
    DEFAULT_MAX_BODY_BYTES
}
fn default_header_read_timeout() -> ConfigDuration {
    ConfigDuration(DEFAULT_HEADER_READ_TIMEOUT)
}
fn default_body_read_timeout() -> ConfigDuration {
    ConfigDuration(DEFAULT_BODY_READ_TIMEOUT)
}
fn default_tls_handshake_timeout() -> ConfigDuration {
    ConfigDuration(DEFAULT_TLS_HANDSHAKE_TIMEOUT)
}
fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}
fn default_max_connection_age() -> ConfigDuration {
    ConfigDuration(DEFAULT_MAX_CONNECTION_AGE)
}
fn default_h2_keepalive_interval() -> ConfigDuration {
    ConfigDuration(DEFAULT_H2_KEEPALIVE_INTERVAL)
}
fn default_h2_keepalive_timeout() -> ConfigDuration {
    ConfigDuration(DEFAULT_H2_KEEPALIVE_TIMEOUT)
}
fn default_max_connections_per_ip() -> usize {
    DEFAULT_MAX_CONNECTIONS_PER_IP
}
fn default_max_concurrent_streams() -> u32 {
    DEFAULT_MAX_CONCURRENT_STREAMS
}
fn default_max_inflight_body_bytes() -> u64 {
    DEFAULT_MAX_INFLIGHT_BODY_BYTES
}
fn default_metrics_listen() -> String {
    "127.0.0.1:9464".to_owned()
}
fn default_vendor() -> String {
    "generic".to_owned()
}
fn default_signature_tolerance() -> ConfigDuration {
    ConfigDuration(DEFAULT_SIGNATURE_TOLERANCE)
}

// ---------------------------------------------------------------------------------------------
// Runtime types
// ---------------------------------------------------------------------------------------------

/// A validated configuration: the only way to start the gateway.
pub struct Settings {
    pub server: ServerSettings,
    pub metrics: Option<SocketAddr>,
    /// In the order of `file.sources`.
    pub sources: Vec<SourceSettings>,
    /// In the order of `file.sinks`.
    pub sinks: Vec<SinkSettings>,
    pub admin: Option<AdminSettings>,
    /// `[cluster]`: the admin API's sources are shared through a Kafka topic.
    pub cluster: Option<cluster::ClusterSettings>,
    /// The file as written, to tell on reload what changed.
    pub file: ConfigFile,
    /// The file the settings came from, when they came from one (reload reads it again).
    pub path: Option<PathBuf>,
    /// What this process runs (`serve --role`; not a key of the file): `all` unless the
    /// command line says otherwise; [`role::check`] says whether the sinks allow it.
    pub role: role::Role,
}

pub struct ServerSettings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `None` means plaintext (only when the file says `plaintext = true`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub limits: Limits,
    pub shutdown_grace: Duration,
    /// Threads serving the webhook listener's connections (at least one).
    pub threads: usize,
}

/// Limits on what a peer may make the server hold or wait for.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bodies above this are refused with 413, decided from Content-Length or while streaming.
    pub max_body_bytes: u64,
    /// Slowloris protection: the connection is closed if headers do not arrive in time.
    pub header_read_timeout: Duration,
    /// A body that does not arrive in time gets 408.
    pub body_read_timeout: Duration,
    /// A handshake that does not finish in time is dropped.
    pub tls_handshake_timeout: Duration,
    /// Open connections per listener. A new connection beyond it closes the connection that has
    /// been idle longest (never one with a request in flight), or is closed itself when every
    /// connection is busy, so new clients are answered instead of waiting in the backlog.
    pub max_connections: usize,
    /// A body with more events is refused with 413 as soon as the one past the cap is decoded:
    /// every event costs its encoded form per target sink, so this bounds a request's memory
    /// and work whatever its body holds (349,524 empty objects fit in 1 MiB).
    pub max_events_per_request: usize,
    /// A connection with no request in flight for this long is closed (h1 keep-alive and h2);
    /// shorter than `header_read_timeout`, which bounds the wait for the first request.
    pub idle_timeout: Duration,
    /// A connection older than this is closed gracefully once its requests finish, so busy
    /// connections do not hold their slot for ever.
    pub max_connection_age: Duration,
    /// HTTP/2 pings find dead peers: sent this often, dropped after `h2_keepalive_timeout`
    /// without an answer.
    pub h2_keepalive_interval: Duration,
    pub h2_keepalive_timeout: Duration,
    /// Connections one client address may hold; more are closed at once, so one host cannot
    /// take every slot. At `max_connections` (the most it can be) there is no per-address cap.
    pub max_connections_per_ip: usize,
    /// Concurrent HTTP/2 streams per connection: each stream may buffer a body, so this bounds
    /// what one connection can make the server hold.
    pub max_concurrent_streams: u32,
    /// Body bytes in flight across all requests (reserved from Content-Length, else as data
    /// arrives); a request that does not fit gets 503 with Retry-After before more of its body
    /// is read. One client address may hold at most a quarter of it (at least one full body).
    pub max_inflight_body_bytes: u64,
}

pub struct SourceSettings {
    pub id: String,
    pub name: Option<String>,
    pub enabled: bool,
    pub suppressed: bool,
    pub vendor: Vendor,
    pub verifier: Verifier,
    /// Indexes into `Settings::sinks`, sorted and unique.
    pub sinks: Vec<usize>,
    pub allowed_ips: Vec<IpNet>,
    pub require_client_cert: bool,
    /// Client certificate names allowed (empty, with no fingerprints: any from `client_ca`).
    pub client_cert_names: Vec<String>,
    /// Client certificate SHA-256 fingerprints allowed.
    pub client_cert_sha256: Vec<[u8; 32]>,
    pub filter: Filter,
    pub mapping: Option<Mapping>,
    /// Pointers redacted in every event besides the vendor's credential fields.
    pub redact: Vec<crate::vendors::mapping::Pointer>,
    pub hec: HecOverrides,
    /// The memory of accepted requests: on when de-duplication is configured, and by default
    /// on schemes that sign a timestamp (replay protection).
    pub dedup: Option<DedupSettings>,
    /// Secrets replaced by a reset that still pass until the given time.
    pub grace: Option<(Verifier, std::time::SystemTime)>,
}

/// A source's memory of accepted requests (see `dedup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupSettings {
    /// How long an accepted request is remembered at least; zero when only replay protection
    /// is on (a request is then remembered while its signed timestamp still verifies).
    pub window: Duration,
    /// Keys remembered at most, so memory stays bounded whatever the request rate.
    pub max_entries: usize,
}
/// Why `min_severity = "unknown"` is refused: it is no level to filter from.
pub(crate) const UNKNOWN_MIN_SEVERITY: &str = "\"unknown\" is not a level: use informational, low, medium, high or critical (events of unknown severity pass every min_severity)";

/// Which events of a source are forwarded; the rest are counted and dropped on purpose.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub min_severity: Option<Severity>,
    pub kinds: Vec<Kind>,
    pub statuses: Vec<Status>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.min_severity.is_none() && self.kinds.is_empty() && self.statuses.is_empty()
    }

    pub fn accepts(&self, severity: Severity, kind: Kind, status: Status) -> bool {
        self.min_severity.is_none_or(|min| severity.passes(min))
            && (self.kinds.is_empty() || self.kinds.contains(&kind))
            && (self.statuses.is_empty() || self.statuses.contains(&status))
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// One problem in a config, with the key path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The TOML error's key path, position and message, without the source line it would
    /// quote or the value it would describe (either can hold a secret written in the wrong
    /// place): see [`parse_error`].
    #[error("cannot parse config file {path}: line {line}, column {column}: {}", located(.key, .message))]
    Parse {
        path: PathBuf,
        /// Where serde stopped, e.g. `admin.tokens[0].token`; empty for the whole file.
        key: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("invalid config ({} problems):\n{}", .0.len(), issues_text(.0))]
    Invalid(Vec<ConfigIssue>),
}

fn located(key: &str, message: &str) -> String {
    if key.is_empty() {
        message.to_owned()
    } else {
        format!("{key}: {message}")
    }
}

impl ConfigError {
    /// The error as one issue with its key path (for the reload API's answer).
    pub fn into_issue(self) -> ConfigIssue {
        match self {
            ConfigError::Parse {
                key,
                line,
                column,
                message,
                ..
            } => ConfigIssue {
                path: key,
                message: format!("line {line}, column {column}: {message}"),
            },
            other => ConfigIssue {
                path: String::new(),
                message: other.to_string(),
            },
        }
    }
}

fn issues_text(issues: &[ConfigIssue]) -> String {
    issues
        .iter()
        .map(|i| format!("  {i}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let file: ConfigFile = parse_file(path, &text)?;
    let mut settings = validate(file).map_err(ConfigError::Invalid)?;
    settings.path = Some(path.to_owned());
    Ok(settings)
}

/// Reads and validates a file holding one generic field mapping: the keys of a
/// `[sources.mapping]` table at the top level (for `siemgate normalize --mapping`). Errors
/// carry key paths relative to the file, as `check` reports them under `sources[i].mapping`.
pub fn load_mapping(path: &Path) -> Result<Mapping, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let cfg: MappingConfig = parse_file(path, &text)?;
    Mapping::build(&cfg).map_err(|problems| {
        ConfigError::Invalid(
            problems
                .into_iter()
                .map(|(path, message)| ConfigIssue { path, message })
                .collect(),
        )
    })
}

/// Parses TOML `text` read from `path` into `T`; a failure names the key path, line and
/// column, without the values (see [`parse_error`]).
fn parse_file<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    parse_located(text).map_err(|(key, e)| {
        let at = e.span().map_or(0, |s| s.start).min(text.len());
        let before = &text.as_bytes()[..at];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = at
            - before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1)
            + 1;
        let (key, message) = located_message(key, e.message());
        ConfigError::Parse {
            path: path.to_owned(),
            key,
            line,
            column,
            message,
        }
    })
}

/// Whether `id` may name a source (its hook URL and its queue directories); the rule when not.
pub fn check_source_id(id: &str) -> Result<(), &'static str> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(ID_RULE)
    }
}

pub fn parse(text: &str) -> Result<ConfigFile, toml::de::Error> {
    toml::from_str(text)
}

/// Parses like [`parse`], and on failure also names the key path where serde stopped.
fn parse_located<T: serde::de::DeserializeOwned>(
    text: &str,
) -> Result<T, (String, toml::de::Error)> {
    let de = toml::Deserializer::parse(text).map_err(|e| (String::new(), e))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = parse_error::key_path(e.path());
        (key, e.into_inner())
    })
}

/// The key path and message of a parse error, with a path nested in the message (see
/// [`parse_error::nested`]) moved onto the key path.
fn located_message(key: String, message: &str) -> (String, String) {
    let message = parse_error::without_values(message);
    match parse_error::split_nested(&message) {
        Some((inner, rest)) if key.is_empty() => (inner.to_owned(), rest.to_owned()),
        Some((inner, rest)) => (format!("{key}.{inner}"), rest.to_owned()),
        None => (key, message),
    }
}

/// Collects issues while validating.
#[derive(Default)]
struct Issues(Vec<ConfigIssue>);

impl Issues {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigIssue {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Checks everything that needs context and builds the runtime settings; every problem found is
/// returned, each with its key path.
pub fn validate(file: ConfigFile) -> Result<Settings, Vec<ConfigIssue>> {
    let mut issues = Issues::default();

    let server = validate_server(&file.server, &mut issues);
    let metrics = if file.metrics.enabled {
        parse_addr(&file.metrics.listen, "metrics.listen", &mut issues)
    } else {
        None
    };

    let mut sink_ids: HashSet<&str> = HashSet::new();
    let mut sinks = Vec::with_capacity(file.sinks.len());
    for (i, sink) in file.sinks.iter().enumerate() {
        let path = format!("sinks[{i}]");
        if let Some(s) = validate_sink(sink, &path, &file.server.data_dir, &mut issues) {
            if !sink_ids.insert(sink.id()) {
                issues.push(
                    format!("{path}.id"),
                    format!("duplicate sink id {:?}", s.id),
                );
            }
            sinks.push(s);
        }
    }

    let sink_id_list: Vec<&str> = file.sinks.iter().map(SinkConfig::id).collect();
    let client_ca = file
        .server
        .tls
        .as_ref()
        .is_some_and(|t| t.client_ca.is_some());
    let mut source_ids: HashSet<&str> = HashSet::new();
    let mut sources = Vec::with_capacity(file.sources.len());
    for (i, source) in file.sources.iter().enumerate() {
        let path = format!("sources[{i}]");
        if !source_ids.insert(source.id.as_str()) {
            issues.push(
                format!("{path}.id"),
                format!("duplicate source id {:?}", source.id),
            );
        }
        if let Some(s) = validate_source(source, &path, &sink_id_list, client_ca, &mut issues) {
            sources.push(s);
        }
    }
    if file.sources.is_empty() && file.admin.is_none() {
        issues.push(
            "sources",
            "no sources configured: add at least one [[sources]] table (or [admin] to add them through the API)",
        );
    }
    let admin = file
        .admin
        .as_ref()
        .and_then(|a| validate_admin(a, server.as_ref().map(|s| s.listen), &mut issues));
    let cluster = file
        .cluster
        .as_ref()
        .and_then(|c| cluster::validate_cluster(c, &mut issues));

    match (server, issues.0.is_empty()) {
        (Some(server), true) => Ok(Settings {
            server,
            metrics,
            sources,
            sinks,
            admin,
            cluster,
            file,
            path: None,
            role: role::Role::All,
        }),
        _ => Err(issues.0),
    }
}

fn parse_addr(text: &str, path: &str, issues: &mut Issues) -> Option<SocketAddr> {
    match text.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            issues.push(
                path,
                format!("{text:?} is not an address such as 127.0.0.1:8080"),
            );
            None
        }
    }
}

fn validate_server(server: &ServerConfig, issues: &mut Issues) -> Option<ServerSettings> {
    let listen = parse_addr(&server.listen, "server.listen", issues);
    let tls = match (&server.tls, server.plaintext) {
        (Some(_), true) => {
            issues.push(
                "server.plaintext",
                "set either [server.tls] or plaintext = true, not both",
            );
            None
        }
        (None, false) => {
            issues.push(
                "server.tls",
                "no TLS configured: add [server.tls] with cert and key, or set plaintext = true",
            );
            None
        }
        (None, true) => None,
        (Some(tls), false) => match crate::tls::server_config(&tls.options()) {
            Ok(cfg) => Some(cfg),
            Err(e) => {
                issues.push(format!("server.tls.{}", e.key()), e.to_string());
                None
            }
        },
    };
    let l = &server.limits;
    if l.max_body_bytes == 0 {
        issues.push("server.limits.max_body_bytes", "must be greater than 0");
    }
    if l.max_connections == 0 {
        issues.push("server.limits.max_connections", "must be greater than 0");
    }
    if l.max_events_per_request == 0 {
        issues.push(
            "server.limits.max_events_per_request",
            "must be greater than 0",
        );
    }
    for (key, d) in [
        ("header_read_timeout", l.header_read_timeout),
        ("body_read_timeout", l.body_read_timeout),
        ("tls_handshake_timeout", l.tls_handshake_timeout),
        ("max_connection_age", l.max_connection_age),
        ("h2_keepalive_interval", l.h2_keepalive_interval),
        ("h2_keepalive_timeout", l.h2_keepalive_timeout),
    ] {
        if d.0.is_zero() {
            issues.push(format!("server.limits.{key}"), "must be greater than 0");
        }
    }
    let idle_timeout = match l.idle_timeout {
        Some(d) => {
            if d.0.is_zero() {
                issues.push("server.limits.idle_timeout", "must be greater than 0");
            } else if d.0 >= l.header_read_timeout.0 {
                issues.push(
                    "server.limits.idle_timeout",
                    "must be shorter than header_read_timeout",
                );
            }
            d.0
        }
        None => DEFAULT_IDLE_TIMEOUT.min(l.header_read_timeout.0 / 2),
    };
    if l.max_connections_per_ip == 0 {
        issues.push(
            "server.limits.max_connections_per_ip",
            "must be greater than 0",
        );
    }
    if l.max_concurrent_streams == 0 {
        issues.push(
            "server.limits.max_concurrent_streams",
            "must be greater than 0",
        );
    }
    if l.max_inflight_body_bytes < l.max_body_bytes {
        issues.push(
            "server.limits.max_inflight_body_bytes",
            "must be at least max_body_bytes, or no body of the largest size could be accepted",
        );
    }
    match server.threads {
        Some(0) => issues.push("server.threads", "must be greater than 0"),
        Some(n) if n > MAX_SERVER_THREADS => issues.push(
            "server.threads",
            format!("must be at most {MAX_SERVER_THREADS}"),
        ),
        _ => {}
    }
    let listen = listen?;
    if server.tls.is_some() && tls.is_none() {
        return None;
    }
    Some(ServerSettings {
        listen,
        data_dir: server.data_dir.clone(),
        tls,
        limits: Limits {
            max_body_bytes: l.max_body_bytes,
            header_read_timeout: l.header_read_timeout.0,
            body_read_timeout: l.body_read_timeout.0,
            tls_handshake_timeout: l.tls_handshake_timeout.0,
            max_connections: l.max_connections,
            max_events_per_request: l.max_events_per_request,
            idle_timeout,
            max_connection_age: l.max_connection_age.0,
            h2_keepalive_interval: l.h2_keepalive_interval.0,
            h2_keepalive_timeout: l.h2_keepalive_timeout.0,
            max_connections_per_ip: l.max_connections_per_ip.min(l.max_connections),
            max_concurrent_streams: l.max_concurrent_streams,
            max_inflight_body_bytes: l.max_inflight_body_bytes,
        },
        shutdown_grace: server.shutdown_grace.0,
        threads: server.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        }),
    })
}

/// Validates one source on its own (the admin API's sources): every problem, with paths below
/// `path` (`""` for paths relative to the source itself). `sink_ids` are the running sinks;
/// `SourceSettings::sinks` index into it.
pub fn validate_source_config(
    source: &SourceConfig,
    path: &str,
    sink_ids: &[&str],
    client_ca_configured: bool,
) -> Result<SourceSettings, Vec<ConfigIssue>> {
    let mut issues = Issues::default();
    let settings = validate_source(source, path, sink_ids, client_ca_configured, &mut issues);
    let mut out = issues.0;
    for i in &mut out {
        if let Some(rest) = i.path.strip_prefix('.') {
            i.path = rest.to_owned();
        }
    }
    match settings {
        Some(s) if out.is_empty() => Ok(s),
        _ => Err(out),
    }
}

fn validate_source(
    source: &SourceConfig,
    path: &str,
    sink_ids: &[&str],
    client_ca_configured: bool,
    issues: &mut Issues,
) -> Option<SourceSettings> {
    let before = issues.0.len();
    if !valid_id(&source.id) {
        issues.push(
            format!("{path}.id"),
            format!("{:?} is not a valid id: {ID_RULE}", source.id),
        );
    }
    let vendor = Vendor::from_name(&source.vendor);
    if vendor.is_none() {
        issues.push(
            format!("{path}.vendor"),
            format!(
                "unknown vendor {:?}: expected one of {}",
                source.vendor,
                Vendor::names().collect::<Vec<_>>().join(", ")
            ),
        );
    }
    let mut targets = Vec::with_capacity(source.sinks.len());
    if source.sinks.is_empty() {
        issues.push(
            format!("{path}.sinks"),
            "names no sink: events would go nowhere",
        );
    }
    for (j, name) in source.sinks.iter().enumerate() {
        match sink_ids.iter().position(|s| s == name) {
            Some(idx) => targets.push(idx),
            None => issues.push(
                format!("{path}.sinks[{j}]"),
                format!("no sink has id {name:?}"),
            ),
        }
    }
    targets.sort_unstable();
    targets.dedup();
    let mut allowed_ips = Vec::with_capacity(source.allowed_ips.len());
    for (j, cidr) in source.allowed_ips.iter().enumerate() {
        match parse_cidr(cidr) {
            Some(net) => allowed_ips.push(net),
            None => issues.push(
                format!("{path}.allowed_ips[{j}]"),
                format!("{cidr:?} is not an IP address or CIDR such as 10.0.0.0/8"),
            ),
        }
    }
    if source.name.as_ref().is_some_and(|n| n.len() > 200) {
        issues.push(format!("{path}.name"), "longer than 200 characters");
    }
    if source.require_client_cert && !client_ca_configured {
        issues.push(
            format!("{path}.require_client_cert"),
            "needs server.tls.client_ca to verify client certificates",
        );
    }
    let client_cert_sha256 = client_identities(source, path, issues);
    let verifier = validate_auth(&source.auth, vendor, &format!("{path}.auth"), issues);
    let mapping = match (&source.mapping, vendor) {
        (None, _) => None,
        (Some(_), Some(v)) if v != Vendor::Generic => {
            issues.push(
                format!("{path}.mapping"),
                format!(
                    "only generic sources take a mapping; vendor {} has its own decoder",
                    v.as_str()
                ),
            );
            None
        }
        (Some(cfg), _) => match Mapping::build(cfg) {
            Ok(m) => Some(m),
            Err(problems) => {
                for (key, message) in problems {
                    issues.push(format!("{path}.mapping.{key}"), message);
                }
                None
            }
        },
    };
    if source.filter.min_severity == Some(Severity::Unknown) {
        issues.push(format!("{path}.filter.min_severity"), UNKNOWN_MIN_SEVERITY);
    }
    let filter = Filter {
        min_severity: source.filter.min_severity,
        kinds: source.filter.kinds.clone(),
        statuses: source.filter.statuses.clone(),
    };
    let replay_tolerance = verifier
        .as_ref()
        .and_then(Verifier::signed_timestamp_tolerance);
    let mut redact = Vec::with_capacity(source.redact.len());
    for (j, text) in source.redact.iter().enumerate() {
        match crate::vendors::redact::parse_pointer(text) {
            Ok(p) => redact.push(p),
            Err(message) => issues.push(format!("{path}.redact[{j}]"), message),
        }
    }
    if let Some(d) = &source.dedup {
        if d.window.0.is_zero() {
            issues.push(format!("{path}.dedup.window"), "must be greater than 0");
        } else if let Some(tolerance) = replay_tolerance.filter(|t| d.window.0 < *t) {
            issues.push(
                format!("{path}.dedup.window"),
                format!(
                    "shorter than auth.tolerance ({}s): a replay that still verifies would be queued again; use at least the tolerance",
                    tolerance.as_secs()
                ),
            );
        }
        if d.max_entries == 0 {
            issues.push(
                format!("{path}.dedup.max_entries"),
                "must be greater than 0",
            );
        }
    }
    if issues.0.len() != before {
        return None;
    }
    Some(SourceSettings {
        id: source.id.clone(),
        name: source.name.clone(),
        enabled: source.enabled,
        suppressed: source.suppressed,
        grace: None,
        vendor: vendor?,
        verifier: verifier?,
        sinks: targets,
        allowed_ips,
        require_client_cert: source.require_client_cert,
        client_cert_names: source.client_cert_names.clone(),
        client_cert_sha256,
        filter,
        mapping,
        redact,
        hec: source.hec.clone(),
        dedup: match (&source.dedup, replay_tolerance) {
            (Some(d), _) => Some(DedupSettings {
                window: d.window.0,
                max_entries: d.max_entries,
            }),
            // Replay protection: on by default where a timestamp is signed.
            (None, Some(_)) => Some(DedupSettings {
                window: Duration::ZERO,
                max_entries: DEFAULT_DEDUP_MAX_ENTRIES,
            }),
            (None, None) => None,
        },
    })
}

/// Checks `client_cert_names` and `client_cert_sha256`; returns the parsed fingerprints.
fn client_identities(source: &SourceConfig, path: &str, issues: &mut Issues) -> Vec<[u8; 32]> {
    let given = !source.client_cert_names.is_empty() || !source.client_cert_sha256.is_empty();
    if given && !source.require_client_cert {
        issues.push(
            format!("{path}.require_client_cert"),
            "client_cert_names and client_cert_sha256 need require_client_cert = true",
        );
    }
    for (j, name) in source.client_cert_names.iter().enumerate() {
        if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
            issues.push(
                format!("{path}.client_cert_names[{j}]"),
                "must be a certificate name of 1 to 255 characters without control characters",
            );
        }
    }
    let mut pins = Vec::with_capacity(source.client_cert_sha256.len());
    for (j, text) in source.client_cert_sha256.iter().enumerate() {
        match crate::tls::parse_sha256(text) {
            Some(p) => pins.push(p),
            None => issues.push(
                format!("{path}.client_cert_sha256[{j}]"),
                "must be a SHA-256 fingerprint: 64 hex digits, colons allowed",
            ),
        }
    }
    pins
}

fn parse_cidr(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

/// Resolves `secret` and `secrets` into one list (rotation: any listed secret passes).
fn resolve_secrets(
    one: &Option<SecretRef>,
    many: &[SecretRef],
    path: &str,
    issues: &mut Issues,
) -> Vec<Secret> {
    if one.is_none() && many.is_empty() {
        issues.push(format!("{path}.secret"), "missing: set secret or secrets");
        return Vec::new();
    }
    if one.is_some() && !many.is_empty() {
        issues.push(
            format!("{path}.secrets"),
            "set either secret or secrets, not both",
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    if let Some(s) = one {
        match s.resolve() {
            Ok(v) => out.push(v),
            Err(m) => issues.push(format!("{path}.secret"), m),
        }
    }
    for (i, s) in many.iter().enumerate() {
        match s.resolve() {
            Ok(v) => out.push(v),
            Err(m) => issues.push(format!("{path}.secrets[{i}]"), m),
        }
    }
    out
}

fn parse_header(name: &str, path: &str, issues: &mut Issues) -> Option<HeaderName> {
    match HeaderName::from_bytes(name.as_bytes()) {
        Ok(h) => Some(h),
        Err(_) => {
            issues.push(path, format!("{name:?} is not a valid HTTP header name"));
            None
        }
    }
}

/// Builds a verifier from an auth table on its own (the admin API's grace secrets).
pub fn build_verifier(auth: &AuthConfig, vendor: Vendor) -> Result<Verifier, Vec<ConfigIssue>> {
    let mut issues = Issues::default();
    match validate_auth(auth, Some(vendor), "auth", &mut issues) {
        Some(v) if issues.0.is_empty() => Ok(v),
        _ => Err(issues.0),
    }
}

fn validate_auth(
    auth: &AuthConfig,
    vendor: Option<Vendor>,
    path: &str,
    issues: &mut Issues,
) -> Option<Verifier> {
    let before = issues.0.len();
    let built: Result<Verifier, auth::AuthConfigError> = match auth {
        AuthConfig::None {
            allow_unauthenticated,
        } => {
            if !allow_unauthenticated {
                issues.push(
                    format!("{path}.allow_unauthenticated"),
                    "scheme \"none\" accepts anyone: set allow_unauthenticated = true to confirm",
                );
            }
            Ok(Verifier::None)
        }
        AuthConfig::Token {
            header,
            prefix,
            secret,
            secrets,
        } => {
            let default_header = vendor.map_or("Authorization", Vendor::default_token_header);
            let header = parse_header(
                header.as_deref().unwrap_or(default_header),
                &format!("{path}.header"),
                issues,
            );
            let secrets = resolve_secrets(secret, secrets, path, issues);
            match header {
                Some(h) if issues.0.len() == before => {
                    auth::token::TokenVerifier::new(h, prefix.clone(), secrets).map(Verifier::Token)
                }
                _ => return None,
            }
        }
        AuthConfig::Basic {
            username,
            password,
            credentials,
        } => {
            let mut creds = Vec::new();
            match (username, password) {
                (Some(u), Some(p)) => match p.resolve() {
                    Ok(p) => creds.push((u.clone(), p)),
                    Err(m) => issues.push(format!("{path}.password"), m),
                },
                (None, None) => {}
                _ => issues.push(
                    format!("{path}.password"),
                    "set username and password together",
                ),
            }
            for (i, c) in credentials.iter().enumerate() {
                match c.password.resolve() {
                    Ok(p) => creds.push((c.username.clone(), p)),
                    Err(m) => issues.push(format!("{path}.credentials[{i}].password"), m),
                }
            }
            if creds.is_empty() && issues.0.len() == before {
                issues.push(
                    format!("{path}.credentials"),
                    "missing: set username and password, or credentials",
                );
            }
            if issues.0.len() != before {
                return None;
            }
            auth::basic::BasicVerifier::new(creds).map(Verifier::Basic)
        }
        AuthConfig::HmacSha256 {
            header,
            encoding,
            prefix,
            timestamp_header,
            tolerance,
            secret,
            secrets,
        } => {
            let default_header = vendor.map_or("X-Signature", Vendor::default_signature_header);
            let header = parse_header(
                header.as_deref().unwrap_or(default_header),
                &format!("{path}.header"),
                issues,
            );
            let timestamp_header = timestamp_header
                .as_deref()
                .map(|h| parse_header(h, &format!("{path}.timestamp_header"), issues));
            let secrets = resolve_secrets(secret, secrets, path, issues);
            if issues.0.len() != before {
                return None;
            }
            let header = header?;
            let timestamp_header = match timestamp_header {
                Some(h) => Some(h?),
                None => None,
            };
            auth::hmac::HmacVerifier::new(HmacSettings {
                header,
                encoding: match encoding {
                    EncodingConfig::Hex => SignatureEncoding::Hex,
                    EncodingConfig::Base64 => SignatureEncoding::Base64,
                    EncodingConfig::Any => SignatureEncoding::HexOrBase64,
                },
                prefix: prefix.clone(),
                timestamp_header,
                tolerance: tolerance.0,
                secrets,
            })
            .map(Verifier::Hmac)
        }
        AuthConfig::StandardWebhooks {
            tolerance,
            secret,
            secrets,
        } => {
            let secrets = resolve_secrets(secret, secrets, path, issues);
            if issues.0.len() != before {
                return None;
            }
            auth::standard_webhooks::StandardWebhooksVerifier::new(secrets, tolerance.0)
                .map(Verifier::StandardWebhooks)
        }
    };
    match built {
        Ok(v) if issues.0.len() == before => Some(v),
        Ok(_) => None,
        Err(e) => {
            issues.push(path, e.to_string());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn issues_of(text: &str) -> Vec<String> {
        match validate(parse(text).unwrap()) {
            Ok(_) => Vec::new(),
            Err(issues) => issues.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("1d"), None);
    }

    #[test]
    fn connection_limits_are_validated_and_defaulted() {
        let base = |limits: &str| {
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\nplaintext = true\n[server.limits]\n{limits}\n\
                 [[sinks]]\nid = \"out\"\ntype = \"file\"\npath = \"out.ndjson\"\n\
                 [[sources]]\nid = \"s\"\nsinks = [\"out\"]\nauth = {{ scheme = \"none\", allow_unauthenticated = true }}\n"
            )
        };
        let limits = |text: &str| validate(parse(&base(text)).unwrap()).unwrap().server.limits;
        let l = limits("");
        assert_eq!(l.idle_timeout, DEFAULT_IDLE_TIMEOUT);
        assert_eq!(l.max_connections_per_ip, DEFAULT_MAX_CONNECTIONS_PER_IP);
        assert_eq!(l.max_concurrent_streams, DEFAULT_MAX_CONCURRENT_STREAMS);
        assert_eq!(l.max_inflight_body_bytes, DEFAULT_MAX_INFLIGHT_BODY_BYTES);
        assert_eq!(l.max_connection_age, DEFAULT_MAX_CONNECTION_AGE);
        // Unset, the idle timeout stays below a short header timeout; the per-IP cap never
        // exceeds max_connections.
        let l = limits("header_read_timeout = \"300ms\"\nmax_connections = 2");
        assert_eq!(l.idle_timeout, Duration::from_millis(150));
        assert_eq!(l.max_connections_per_ip, 2);

        for (text, key, message) in [
            (
                "idle_timeout = \"10s\"",
                "server.limits.idle_timeout",
                "must be shorter than header_read_timeout",
            ),
            (
                "idle_timeout = \"0s\"",
                "server.limits.idle_timeout",
                "must be greater than 0",
            ),
            (
                "max_connections_per_ip = 0",
                "server.limits.max_connections_per_ip",
                "must be greater than 0",
            ),
            (
                "max_concurrent_streams = 0",
                "server.limits.max_concurrent_streams",
                "must be greater than 0",
            ),
            (
                "max_connection_age = \"0s\"",
                "server.limits.max_connection_age",
                "must be greater than 0",
            ),
            (
                "max_inflight_body_bytes = 1000",
                "server.limits.max_inflight_body_bytes",
                "must be at least max_body_bytes",
            ),
        ] {
            let issues = issues_of(&base(text));
            assert!(
                issues
                    .iter()
                    .any(|i| i.contains(key) && i.contains(message)),
                "{text}: {issues:?}"
            );
        }
    }

    #[test]
    fn kafka_queue_keys_are_checked_with_their_paths() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/config/invalid/kafka-queue-problems.toml"
        ))
        .unwrap();
        let issues = issues_of(&text);
        for key in [
            "sinks[0].queue.brokers: ",
            "sinks[0].queue.topic: ",
            "sinks[0].queue.produce_timeout: ",
            "sinks[1].queue.brokers: only Kafka queues",
        ] {
            assert!(
                issues.iter().any(|i| i.starts_with(key)),
                "{key}: {issues:#?}"
            );
        }
    }

    #[test]
    fn kafka_sink_keys_are_checked_with_their_paths() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/config/invalid/kafka-sink-problems.toml"
        ))
        .unwrap();
        // An unknown compression is a parse error that lists the ones there are.
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("snappy") && err.contains("`lz4`, `zstd`, `gzip`, `none`"),
            "{err}"
        );
        let (head, _) = text.split_once("[[sinks]]\nid = \"bus2\"").unwrap();
        let text = format!("{head}{}", &text[text.find("[[sources]]").unwrap()..]);
        let issues = issues_of(&text);
        for key in [
            "sinks[0].brokers: at least one broker",
            "sinks[0].topic: \"{severity}\" is no known placeholder",
            "sinks[0].max_message_bytes: must be from 1000",
            "sinks[0].delivery_timeout: must be greater than 0",
        ] {
            assert!(
                issues.iter().any(|i| i.starts_with(key)),
                "{key}: {issues:#?}"
            );
        }
    }

    #[cfg(feature = "kafka")]
    #[test]
    fn a_kafka_queue_defaults_its_topic_and_group_to_the_sink_id() {
        let text = "[server]\nlisten = \"127.0.0.1:0\"\nplaintext = true\n\
                    [[sinks]]\nid = \"hec\"\ntype = \"file\"\npath = \"out.ndjson\"\n\
                    [sinks.queue]\ntype = \"kafka\"\nbrokers = [\"k1:9092\", \"k2:9092\"]\n\
                    [[sources]]\nid = \"s\"\nsinks = [\"hec\"]\n\
                    auth = { scheme = \"none\", allow_unauthenticated = true }\n";
        let s = validate(parse(text).unwrap()).unwrap();
        let k = s.sinks[0].kafka.as_ref().unwrap();
        assert_eq!(k.topic, "siemgate.hec");
        assert_eq!(k.group, "siemgate.hec");
        assert_eq!(k.produce_timeout, kafka::DEFAULT_PRODUCE_TIMEOUT);
        assert_eq!(k.connection.brokers, "k1:9092,k2:9092");
    }

    #[test]
    fn example_config_validates() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/siemgate.toml"))
                .unwrap();
        let settings = validate(parse(&text).unwrap()).unwrap();
        assert!(!settings.sources.is_empty());
        assert!(!settings.sinks.is_empty());
    }

    #[test]
    fn valid_corpus_validates_and_invalid_corpus_fails() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/config");
        let mut seen = 0;
        for (sub, should_pass) in [("valid", true), ("invalid", false)] {
            for entry in std::fs::read_dir(format!("{dir}/{sub}")).unwrap() {
                let p = entry.unwrap().path();
                let text = std::fs::read_to_string(&p).unwrap();
                let ok = parse(&text).ok().map(validate).is_some_and(|r| r.is_ok());
                assert_eq!(ok, should_pass, "{}", p.display());
                seen += 1;
            }
        }
        assert!(seen >= 4);
    }

    #[test]
    fn a_bad_time_format_is_reported_with_its_path() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/config/invalid/mapping-bad-time-format.toml"
        ))
        .unwrap();
        let issues = issues_of(&text);
        assert!(
            issues
                .iter()
                .any(|i| i.starts_with("sources[0].mapping.time_format: ") && i.contains("%Q")),
            "{issues:#?}"
        );
    }

    #[test]
    fn sink_problems_are_reported_with_their_paths() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/config/invalid/sink-problems.toml"
        ))
        .unwrap();
        let issues = issues_of(&text);
        for expect in [
            "sinks[0].url: \"splunk.example:8088\" must start with http:// or https://",
            "sinks[1].address: ",
            "sinks[1].leef_delimiter: ",
            "sinks[2].template: unknown placeholder {{titel}}",
        ] {
            assert!(
                issues.iter().any(|i| i.starts_with(expect)),
                "missing {expect:?} in {issues:#?}"
            );
        }
    }

    #[test]
    fn redact_pointers_and_unknown_min_severity_are_refused_with_their_paths() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/config/invalid/redact-and-severity-problems.toml"
        ))
        .unwrap();
        let issues = issues_of(&text);
        for expect in [
            "sinks[0].filter.min_severity: \"unknown\" is not a level",
            "sources[0].filter.min_severity: \"unknown\" is not a level",
            "sources[0].redact[0]: \"privateKey\" is not a JSON pointer",
            "sources[0].redact[1]: \"/a~2b\" is not a JSON pointer",
            "sources[0].redact[2]: the empty pointer",
        ] {
            assert!(
                issues.iter().any(|i| i.starts_with(expect)),
                "missing {expect:?} in {issues:#?}"
            );
        }
        assert_eq!(issues.len(), 5, "{issues:#?}");
    }

    #[test]
    fn reports_every_problem_with_its_path() {
        let text = r#"
            [server]
            listen = "nope"
            plaintext = true
            [[sinks]]
            id = "out"
            type = "file"
            path = "/tmp/siemgate-config-test/out.ndjson"
            [[sources]]
            id = "a"
            auth = { scheme = "token", secret = "${SIEMGATE_TEST_SURELY_UNSET}" }
            sinks = ["missing"]
            [[sources]]
            id = "b"
            vendor = "nosuch"
            auth = { scheme = "none" }
            sinks = ["out"]
            allowed_ips = ["300.1.1.1/8"]
        "#;
        let issues = issues_of(text);
        let expect = [
            "server.listen: ",
            "sources[0].auth.secret: environment variable SIEMGATE_TEST_SURELY_UNSET is not set",
            "sources[0].sinks[0]: no sink has id \"missing\"",
            "sources[1].vendor: unknown vendor \"nosuch\"",
            "sources[1].allowed_ips[0]: ",
            "sources[1].auth.allow_unauthenticated: ",
        ];
        for e in expect {
            assert!(
                issues.iter().any(|i| i.starts_with(e)),
                "missing {e:?} in {issues:#?}"
            );
        }
        assert_eq!(issues.len(), expect.len(), "{issues:#?}");
    }

    #[test]
    fn admin_problems_are_reported_with_their_paths() {
        let text = r#"
            [server]
            listen = "127.0.0.1:8080"
            plaintext = true
            [admin]
            listen = "0.0.0.0:8080"
            [[admin.tokens]]
            name = "ops"
            token = "short"
            [[admin.tokens]]
            name = "ops"
            token = "long-enough-token-1234"
            role = "read"
        "#;
        let issues = issues_of(text);
        let expect = [
            "admin.listen: the admin API needs its own listener",
            "admin.tls: an admin listener on a non-loopback address needs [admin.tls]",
            "admin.tokens[0].token: too short",
            "admin.tokens[1].name: duplicate token name \"ops\"",
        ];
        for e in expect {
            assert!(
                issues.iter().any(|i| i.starts_with(e)),
                "missing {e:?} in {issues:#?}"
            );
        }
        assert_eq!(issues.len(), expect.len(), "{issues:#?}");

        // With [admin], a file may start without sources: they can come from the API.
        let ok = r#"
            [server]
            listen = "127.0.0.1:8080"
            plaintext = true
            [admin]
            listen = "127.0.0.1:9300"
            [[admin.tokens]]
            name = "ops"
            token = "long-enough-token-1234"
        "#;
        let settings = validate(parse(ok).unwrap()).unwrap();
        let admin = settings.admin.unwrap();
        assert_eq!(admin.tokens[0].role, AdminRole::Admin);
        assert!(admin.tls.is_none());
        assert_eq!(admin.limits, AdminLimits::default());
        assert_eq!(admin.limits.max_sources, 1000);

        // The admin API's bounds.
        let bounds = ok.replace(
            "listen = \"127.0.0.1:9300\"",
            "listen = \"127.0.0.1:9300\"\nmax_sources = 0\nmax_auth_failures = 0\nauth_failure_window = \"500ms\"",
        );
        let issues = issues_of(&bounds);
        for key in [
            "admin.max_sources: must be 1 to",
            "admin.max_auth_failures: must be at least 1",
            "admin.auth_failure_window: must be 1s to 24h",
        ] {
            assert!(
                issues.iter().any(|i| i.starts_with(key)),
                "missing {key:?} in {issues:#?}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = parse("[server]\nlisten = \"127.0.0.1:1\"\nplaintext = true\nbogus = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
        let err = parse(
            "[server]\nlisten = \"127.0.0.1:1\"\nplaintext = true\n[[sources]]\nid=\"a\"\nsinks=[]\nauth = { scheme = \"token\", secret = \"x\", colour = \"red\" }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn secret_refs_resolve_without_echoing_values() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tok");
        std::fs::write(&f, "from-file\n").unwrap();
        let r = SecretRef(format!("@file:{}", f.display()));
        assert_eq!(r.resolve().unwrap().expose(), "from-file");
        assert_eq!(
            SecretRef("literal".into()).resolve().unwrap().expose(),
            "literal"
        );
        let missing = SecretRef("@file:/nonexistent/siemgate".into())
            .resolve()
            .unwrap_err();
        assert!(missing.contains("/nonexistent/siemgate"));
        assert_eq!(
            format!("{:?}", SecretRef("literal".into())),
            "SecretRef(***)"
        );
    }

    #[test]
    fn replay_memory_is_on_for_signed_timestamps_and_no_shorter_than_their_tolerance() {
        let source = |auth: &str, dedup: &str| {
            format!(
                r#"
                [server]
                listen = "127.0.0.1:8080"
                plaintext = true
                [[sinks]]
                id = "out"
                type = "file"
                path = "/tmp/siemgate-config-test/out.ndjson"
                [[sources]]
                id = "a"
                sinks = ["out"]
                auth = {auth}
                {dedup}
                "#
            )
        };
        let swh = r#"{ scheme = "standard_webhooks", tolerance = "5m", secret = "whsec_c2VjcmV0LXNlY3JldA==" }"#;
        let hmac_ts = r#"{ scheme = "hmac_sha256", timestamp_header = "X-Ts", tolerance = "2m", secret = "k" }"#;
        let hmac = r#"{ scheme = "hmac_sha256", secret = "k" }"#;
        let dedup_of = |auth: &str, dedup: &str| {
            validate(parse(&source(auth, dedup)).unwrap())
                .map(|s| s.sources[0].dedup)
                .map_err(|issues| issues.iter().map(ToString::to_string).collect::<Vec<_>>())
        };
        let replay_only = Some(DedupSettings {
            window: Duration::ZERO,
            max_entries: DEFAULT_DEDUP_MAX_ENTRIES,
        });
        assert_eq!(dedup_of(swh, ""), Ok(replay_only));
        assert_eq!(dedup_of(hmac_ts, ""), Ok(replay_only));
        assert_eq!(
            dedup_of(hmac, ""),
            Ok(None),
            "nothing signed tells a replay"
        );
        assert_eq!(
            dedup_of(
                hmac_ts,
                "[sources.dedup]\nwindow = \"2m\"\nmax_entries = 50"
            ),
            Ok(Some(DedupSettings {
                window: Duration::from_secs(120),
                max_entries: 50
            }))
        );
        let issues = dedup_of(swh, "[sources.dedup]\nwindow = \"1m\"").unwrap_err();
        assert_eq!(issues.len(), 1, "{issues:#?}");
        assert!(
            issues[0].starts_with("sources[0].dedup.window: shorter than auth.tolerance (300s)"),
            "{issues:#?}"
        );
        assert!(dedup_of(hmac, "[sources.dedup]\nwindow = \"1m\"").is_ok());
    }

    #[test]
    fn client_cert_identities_are_checked() {
        let source = |keys: &str| {
            format!(
                r#"
[server]
listen = "127.0.0.1:0"
[server.tls]
cert = "/nonexistent/cert.pem"
key = "/nonexistent/key.pem"
[[sinks]]
id = "out"
type = "file"
path = "/tmp/siemgate-config-test/out.ndjson"
[[sources]]
id = "a"
sinks = ["out"]
auth = {{ scheme = "token", secret = "t" }}
{keys}
"#
            )
        };
        let issues = issues_of(&source(
            "client_cert_names = ['ok.example', '', \"bad\\u0000name\"]\nclient_cert_sha256 = ['abcd']",
        ));
        for expect in [
            "sources[0].require_client_cert: client_cert_names and client_cert_sha256 need require_client_cert = true",
            "sources[0].client_cert_names[1]: must be a certificate name",
            "sources[0].client_cert_names[2]: must be a certificate name",
            "sources[0].client_cert_sha256[0]: must be a SHA-256 fingerprint",
        ] {
            assert!(
                issues.iter().any(|i| i.starts_with(expect)),
                "missing {expect:?} in {issues:#?}"
            );
        }
        assert!(
            !issues.iter().any(|i| i.contains("client_cert_names[0]")),
            "{issues:#?}"
        );
    }
}
