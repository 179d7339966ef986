//! `type = "splunk_hec"`: Splunk's HTTP Event Collector, with optional indexer
//! acknowledgement. Its keys (and the per-source `[sources.hec]` overrides), its runtime
//! settings and their validation.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::super::{ConfigDuration, Issues, SecretRef};
use super::{
    default_connect_timeout, default_true, endpoint_and_tls, positive, system_hostname,
    BatchConfig, ClientTlsConfig, Endpoint, EventEncoding, QueueConfig, SinkCommon,
    SinkFilterConfig, SinkKind, SinkKindConfig,
};
use crate::secret::Secret;
use crate::tls::ClientTls;

/// HEC: Splunk Cloud and older Splunk Enterprise refuse request bodies over about 1 MB
/// (`max_content_length`), so batches stay under it uncompressed.
pub const DEFAULT_HEC_MAX_REQUEST_BYTES: usize = 1_000_000;
pub const DEFAULT_HEC_SOURCETYPE: &str = "siemgate:ocsf";
/// HEC: long enough for a busy indexer tier, short enough to notice a dead one.
pub const DEFAULT_HEC_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// HEC acks: Splunk expects polls every few seconds, batched; ten seconds is what Vector uses.
pub const DEFAULT_ACK_POLL_INTERVAL: Duration = Duration::from_secs(10);
/// HEC acks: after this a batch is sent again rather than given up (Vector drops it; Kinesis
/// Firehose allows 180-600 s).
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(300);
/// HEC acks: events sent and not yet acknowledged; at the cap the sink waits, which is
/// backpressure on its queue.
pub const DEFAULT_ACK_MAX_PENDING_EVENTS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HecSinkConfig {
    pub id: String,
    /// What each event is written as: `siemgate` (the normalized Event) or `ocsf` (one OCSF
    /// class object, valid against OCSF 1.1.0 and 1.8.0).
    #[serde(default)]
    pub encoding: EventEncoding,
    /// With `encoding = "ocsf"`: the OCSF version written in `metadata.version`, "1.1.0"
    /// (default; what Amazon Security Lake validates against) or "1.8.0".
    pub ocsf_version: Option<String>,
    /// Base URL; the sink adds `/services/collector/event`.
    pub url: String,
    pub token: SecretRef,
    pub host: Option<String>,
    pub source: Option<String>,
    #[serde(default = "default_hec_sourcetype")]
    pub sourcetype: String,
    pub index: Option<String>,
    #[serde(default = "default_true")]
    pub gzip: bool,
    #[serde(default = "default_hec_max_request_bytes")]
    pub max_request_bytes: usize,
    #[serde(default = "default_hec_request_timeout")]
    pub request_timeout: ConfigDuration,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: ConfigDuration,
    pub tls: Option<ClientTlsConfig>,
    #[serde(default)]
    pub acknowledgements: AckConfig,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub filter: SinkFilterConfig,
    /// NDJSON file for events the destination refuses for good, with the reason and time.
    pub dead_letter_path: Option<PathBuf>,
    /// Give up retrying a batch after this long and dead-letter it; absent: retry forever.
    pub max_retry_duration: Option<ConfigDuration>,
}

/// HEC indexer acknowledgement: a batch counts as delivered only once Splunk says it is
/// indexed, not when it answers 200 (which only means "looks valid").
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_ack_poll_interval")]
    pub poll_interval: ConfigDuration,
    #[serde(default = "default_ack_timeout")]
    pub timeout: ConfigDuration,
    #[serde(default = "default_ack_max_pending_events")]
    pub max_pending_events: usize,
}

impl Default for AckConfig {
    fn default() -> Self {
        AckConfig {
            enabled: false,
            poll_interval: default_ack_poll_interval(),
            timeout: default_ack_timeout(),
            max_pending_events: DEFAULT_ACK_MAX_PENDING_EVENTS,
        }
    }
}

/// Per-source HEC envelope overrides (`[sources.hec]`).
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HecOverrides {
    pub host: Option<String>,
    pub source: Option<String>,
    pub sourcetype: Option<String>,
    pub index: Option<String>,
}

fn default_hec_sourcetype() -> String {
    DEFAULT_HEC_SOURCETYPE.to_owned()
}
fn default_hec_max_request_bytes() -> usize {
    DEFAULT_HEC_MAX_REQUEST_BYTES
}
fn default_hec_request_timeout() -> ConfigDuration {
    ConfigDuration(DEFAULT_HEC_REQUEST_TIMEOUT)
}
fn default_ack_poll_interval() -> ConfigDuration {
    ConfigDuration(DEFAULT_ACK_POLL_INTERVAL)
}
fn default_ack_timeout() -> ConfigDuration {
    ConfigDuration(DEFAULT_ACK_TIMEOUT)
}
fn default_ack_max_pending_events() -> usize {
    DEFAULT_ACK_MAX_PENDING_EVENTS
}

pub struct HecSettings {
    pub endpoint: Endpoint,
    pub tls: Option<ClientTls>,
    pub token: Secret,
    pub host: String,
    /// `None`: `siemgate:<source id>`.
    pub source: Option<String>,
    pub sourcetype: String,
    pub index: Option<String>,
    pub gzip: bool,
    pub max_request_bytes: usize,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// `Some` when indexer acknowledgement is on.
    pub acks: Option<AckSettings>,
}

#[derive(Debug, Clone, Copy)]
pub struct AckSettings {
    pub poll_interval: Duration,
    pub timeout: Duration,
    pub max_pending_events: usize,
}

impl SinkKindConfig for HecSinkConfig {
    fn type_name(&self) -> &'static str {
        "splunk_hec"
    }

    fn common(&self) -> SinkCommon<'_> {
        common_keys!(self)
    }

    fn validate(&self, path: &str, issues: &mut Issues) -> Option<SinkKind> {
        let h = self;
        let target = endpoint_and_tls(&h.url, h.tls.as_ref(), path, issues);
        let token = match h.token.resolve() {
            Ok(t) => Some(t),
            Err(m) => {
                issues.push(format!("{path}.token"), m);
                None
            }
        };
        if h.max_request_bytes < 1024 {
            issues.push(
                format!("{path}.max_request_bytes"),
                "must be at least 1024 (Splunk accepts about 1 MB by default)",
            );
        }
        for (key, value) in [
            ("host", h.host.as_deref()),
            ("source", h.source.as_deref()),
            ("sourcetype", Some(h.sourcetype.as_str())),
            ("index", h.index.as_deref()),
        ] {
            if value.is_some_and(str::is_empty) {
                issues.push(format!("{path}.{key}"), "must not be empty (leave it out)");
            }
        }
        positive(h.request_timeout, format!("{path}.request_timeout"), issues);
        positive(h.connect_timeout, format!("{path}.connect_timeout"), issues);
        let a = &h.acknowledgements;
        if a.enabled {
            positive(
                a.poll_interval,
                format!("{path}.acknowledgements.poll_interval"),
                issues,
            );
            positive(
                a.timeout,
                format!("{path}.acknowledgements.timeout"),
                issues,
            );
            if a.max_pending_events == 0 {
                issues.push(
                    format!("{path}.acknowledgements.max_pending_events"),
                    "must be greater than 0",
                );
            }
        }
        let (endpoint, tls) = target?;
        Some(SinkKind::SplunkHec(HecSettings {
            endpoint,
            tls,
            token: token?,
            host: h.host.clone().unwrap_or_else(system_hostname),
            source: h.source.clone(),
            sourcetype: h.sourcetype.clone(),
            index: h.index.clone(),
            gzip: h.gzip,
            max_request_bytes: h.max_request_bytes,
            request_timeout: h.request_timeout.0,
            connect_timeout: h.connect_timeout.0,
            acks: a.enabled.then_some(AckSettings {
                poll_interval: a.poll_interval.0,
                timeout: a.timeout.0,
                max_pending_events: a.max_pending_events,
            }),
        }))
    }
}
