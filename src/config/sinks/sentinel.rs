//! The `type = "sentinel"` sink's keys (Microsoft Sentinel through the Azure Monitor Logs
//! Ingestion API: a data collection rule's stream, a Microsoft Entra app's client credentials)
//! and the runtime settings `validate()` turns them into.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::super::{ConfigDuration, Issues, SecretRef};
use super::{
    build_client_tls, endpoint_and_tls, positive, BatchConfig, ClientTlsConfig, Endpoint,
    EventEncoding, QueueConfig, SinkCommon, SinkFilterConfig, SinkKind, SinkKindConfig,
};
use crate::secret::Secret;
use crate::tls::ClientTls;

/// The Logs Ingestion API takes at most 1 MB per call; whole events are split under it.
pub const DEFAULT_SENTINEL_MAX_REQUEST_BYTES: usize = 1_000_000;
/// What the API accepts at most: the key cannot go over it.
pub const MAX_SENTINEL_REQUEST_BYTES: usize = 1_048_576;
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";
/// The Azure Monitor audience of the public cloud; sovereign clouds have their own.
pub const DEFAULT_SENTINEL_SCOPE: &str = "https://monitor.azure.com/.default";
/// The ingestion API version the sink speaks.
pub const LOGS_INGESTION_API_VERSION: &str = "2023-01-01";
pub const DEFAULT_SENTINEL_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentinelSinkConfig {
    pub id: String,
    /// The data collection endpoint's (or the DCR's own) logs ingestion URL,
    /// `https://<name>.<region>.ingest.monitor.azure.com`.
    pub endpoint: String,
    /// The DCR's immutable id, `dcr-<32 hex digits>`.
    pub dcr_immutable_id: String,
    /// The DCR's input stream, `Custom-<Table>_CL` for a custom table.
    pub stream: String,
    /// The columns each row carries: `siemgate` (the Event's fields flattened, and the whole
    /// Event as the dynamic column `Event`) or `ocsf` (the OCSF class object's fields).
    #[serde(default)]
    pub stream_shape: StreamShape,
    /// With `stream_shape = "ocsf"`: "1.1.0" (default) or "1.8.0".
    pub ocsf_version: Option<String>,
    pub tenant_id: String,
    /// The app registration's application (client) id.
    pub client_id: String,
    pub client_secret: SecretRef,
    /// Microsoft Entra's host; sovereign clouds (and tests) set their own.
    #[serde(default = "default_authority_host")]
    pub authority_host: String,
    /// The token's scope; sovereign clouds have their own Azure Monitor audience.
    #[serde(default = "default_scope")]
    pub scope: String,
    pub tls: Option<ClientTlsConfig>,
    #[serde(default = "super::default_true")]
    pub gzip: bool,
    /// Uncompressed bytes per request, at most 1048576 (the API's limit).
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
    #[serde(default = "default_request_timeout")]
    pub request_timeout: ConfigDuration,
    #[serde(default = "super::default_connect_timeout")]
    pub connect_timeout: ConfigDuration,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub filter: SinkFilterConfig,
    /// NDJSON file for rows the API refuses for good, with the reason and time.
    pub dead_letter_path: Option<PathBuf>,
    /// Give up retrying a batch after this long and dead-letter it; absent: retry forever.
    pub max_retry_duration: Option<ConfigDuration>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamShape {
    #[default]
    Siemgate,
    Ocsf,
}

impl SentinelSinkConfig {
    /// The shape as the shared `encoding` key would say it.
    pub fn encoding(&self) -> EventEncoding {
        match self.stream_shape {
            StreamShape::Siemgate => EventEncoding::Siemgate,
            StreamShape::Ocsf => EventEncoding::Ocsf,
        }
    }
}

fn default_authority_host() -> String {
    DEFAULT_AUTHORITY_HOST.to_owned()
}
fn default_scope() -> String {
    DEFAULT_SENTINEL_SCOPE.to_owned()
}
fn default_max_request_bytes() -> usize {
    DEFAULT_SENTINEL_MAX_REQUEST_BYTES
}
fn default_request_timeout() -> ConfigDuration {
    ConfigDuration(DEFAULT_SENTINEL_REQUEST_TIMEOUT)
}

pub struct SentinelSettings {
    pub endpoint: Endpoint,
    pub tls: Option<ClientTls>,
    /// The ingestion request target: `/dataCollectionRules/<id>/streams/<stream>?api-version=`.
    pub ingest_path: String,
    pub dcr_immutable_id: String,
    pub stream: String,
    pub authority: Endpoint,
    pub authority_tls: Option<ClientTls>,
    /// `/<tenant>/oauth2/v2.0/token` under the authority host.
    pub token_path: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scope: String,
    pub gzip: bool,
    pub max_request_bytes: usize,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

/// 1 to `max` of ASCII letters, digits and `extra`.
fn word(text: &str, max: usize, extra: &[u8]) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

impl SinkKindConfig for SentinelSinkConfig {
    fn type_name(&self) -> &'static str {
        "sentinel"
    }

    /// `stream_shape` plays the part of the shared `encoding` key.
    fn common(&self) -> SinkCommon<'_> {
        SinkCommon {
            id: &self.id,
            encoding: self.encoding(),
            ocsf_version: self.ocsf_version.as_deref(),
            queue: &self.queue,
            batch: &self.batch,
            filter: &self.filter,
            dead_letter_path: self.dead_letter_path.as_deref(),
            max_retry_duration: self.max_retry_duration,
        }
    }

    fn validate(&self, path: &str, issues: &mut Issues) -> Option<SinkKind> {
        validate(self, path, issues)
    }
}

fn validate(c: &SentinelSinkConfig, path: &str, issues: &mut Issues) -> Option<SinkKind> {
    // `endpoint_and_tls` names the key `url`; this sink calls it `endpoint`.
    let before = issues.0.len();
    let target = endpoint_and_tls(&c.endpoint, c.tls.as_ref(), path, issues);
    for issue in &mut issues.0[before..] {
        if issue.path == format!("{path}.url") {
            issue.path = format!("{path}.endpoint");
        }
    }
    if let Some((e, _)) = &target {
        if !e.path.is_empty() {
            issues.push(
                format!("{path}.endpoint"),
                "give the ingestion endpoint without a path (the sink adds /dataCollectionRules/...)",
            );
        }
    }
    let dcr = c.dcr_immutable_id.as_str();
    if !(dcr.starts_with("dcr-") && word(&dcr[4..], 64, b"")) {
        issues.push(
            format!("{path}.dcr_immutable_id"),
            "must be the rule's immutable id, dcr- followed by its hex digits (the DCR's JSON view, immutableId)",
        );
    }
    if !word(&c.stream, 128, b"-_") {
        issues.push(
            format!("{path}.stream"),
            "must be the DCR's stream name, such as Custom-SiemgateEvents_CL",
        );
    }
    if !word(&c.tenant_id, 128, b"-.") {
        issues.push(
            format!("{path}.tenant_id"),
            "must be the directory (tenant) id or a verified domain name",
        );
    }
    if !word(&c.client_id, 128, b"-") {
        issues.push(
            format!("{path}.client_id"),
            "must be the app registration's application (client) id",
        );
    }
    if c.scope.is_empty() || !c.scope.bytes().all(|b| b.is_ascii_graphic()) {
        issues.push(
            format!("{path}.scope"),
            "must be a scope such as https://monitor.azure.com/.default",
        );
    }
    let secret = match c.client_secret.resolve() {
        Ok(s) => Some(s),
        Err(m) => {
            issues.push(format!("{path}.client_secret"), m);
            None
        }
    };
    let authority = match Endpoint::parse(&c.authority_host) {
        Ok(e) if e.path.is_empty() => Some(e),
        Ok(_) => {
            issues.push(
                format!("{path}.authority_host"),
                "give the host only, such as https://login.microsoftonline.com",
            );
            None
        }
        Err(m) => {
            issues.push(format!("{path}.authority_host"), m);
            None
        }
    };
    let authority_tls = match &authority {
        Some(a) if a.https => Some(build_client_tls(c.tls.as_ref(), &a.host, path, issues)),
        _ => None,
    };
    if c.max_request_bytes < 1024 || c.max_request_bytes > MAX_SENTINEL_REQUEST_BYTES {
        issues.push(
            format!("{path}.max_request_bytes"),
            format!("must be from 1024 to {MAX_SENTINEL_REQUEST_BYTES} (the API takes at most 1 MB per call)"),
        );
    }
    positive(c.request_timeout, format!("{path}.request_timeout"), issues);
    positive(c.connect_timeout, format!("{path}.connect_timeout"), issues);
    if issues.0.len() != before {
        return None;
    }
    let (endpoint, tls) = target?;
    let authority = authority?;
    let authority_tls = match authority_tls {
        Some(t) => Some(t?),
        None => None,
    };
    Some(SinkKind::Sentinel(SentinelSettings {
        ingest_path: format!(
            "/dataCollectionRules/{dcr}/streams/{}?api-version={LOGS_INGESTION_API_VERSION}",
            c.stream
        ),
        endpoint,
        tls,
        dcr_immutable_id: c.dcr_immutable_id.clone(),
        stream: c.stream.clone(),
        token_path: format!("/{}/oauth2/v2.0/token", c.tenant_id),
        authority,
        authority_tls,
        client_id: c.client_id.clone(),
        client_secret: secret?,
        scope: c.scope.clone(),
        gzip: c.gzip,
        max_request_bytes: c.max_request_bytes,
        request_timeout: c.request_timeout.0,
        connect_timeout: c.connect_timeout.0,
    }))
}
