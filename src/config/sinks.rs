//! The `[[sinks]]` part of the config: each sink type's keys as written (serde), the runtime
//! settings `validate()` turns them into, and that validation, every problem with its key path.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use serde::Deserialize;

use super::{ConfigDuration, Issues, SecretRef};
use crate::normalize::ocsf::OcsfVersion;
use crate::normalize::{Kind, Severity};
use crate::secret::Secret;
use crate::sinks::http::Template;
use crate::sinks::http_client::Endpoint;
use crate::sinks::tls::{client_tls, ClientTls, ClientTlsOptions};
use crate::vendors::Vendor;

/// Default queue bound in events per sink.
pub const DEFAULT_QUEUE_MAX_EVENTS: u64 = 100_000;
/// Default queue bound in encoded bytes per sink.
pub const DEFAULT_QUEUE_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Disk queues: the default most undelivered events held in memory (the oldest ones; the rest
/// wait on disk). About 3 MiB of bookkeeping on top of the events' bytes.
pub const DEFAULT_QUEUE_MEMORY_EVENTS: u64 = 100_000;
/// Disk queues: the default most bytes of undelivered events held in memory: enough to keep a
/// busy sink's batches coming while the rest of a long backlog waits on disk.
pub const DEFAULT_QUEUE_MEMORY_BYTES: u64 = 64 * 1024 * 1024;
/// Disk queue segment size: large enough that rolling over is rare, small enough that a
/// delivered segment frees its space soon.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Default batch bounds and linger for sink workers.
pub const DEFAULT_BATCH_MAX_EVENTS: usize = 500;
pub const DEFAULT_BATCH_MAX_BYTES: usize = 1024 * 1024;
pub const DEFAULT_BATCH_LINGER: Duration = Duration::from_millis(50);
/// File sink defaults.
pub const DEFAULT_FILE_ROTATE_BYTES: u64 = 100 * 1024 * 1024;
pub const DEFAULT_FILE_KEEP_FILES: usize = 5;
pub const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_secs(1);
/// HEC: Splunk Cloud and older Splunk Enterprise refuse request bodies over about 1 MB
/// (`max_content_length`), so batches stay under it uncompressed.
pub const DEFAULT_HEC_MAX_REQUEST_BYTES: usize = 1_000_000;
pub const DEFAULT_HEC_SOURCETYPE: &str = "siemgate:ocsf";
/// HEC: long enough for a busy indexer tier, short enough to notice a dead one.
pub const DEFAULT_HEC_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// HEC acks: Splunk expects polls every few seconds, batched; ten seconds is what Vector uses.
pub const DEFAULT_ACK_POLL_INTERVAL: Duration = Duration::from_secs(10);
/// HEC acks: after this a batch is sent again rather than given up (Vector drops it; Kinesis
/// Firehose allows 180-600 s).
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(300);
/// HEC acks: events sent and not yet acknowledged; at the cap the sink waits, which is
/// backpressure on its queue.
pub const DEFAULT_ACK_MAX_PENDING_EVENTS: usize = 10_000;
/// Syslog: QRadar's default maximum TCP syslog payload.
pub const DEFAULT_SYSLOG_MAX_MESSAGE_BYTES: usize = 4096;
/// RFC 5424 §6.1: every receiver must accept 480 octets.
pub const MIN_SYSLOG_MESSAGE_BYTES: usize = 480;
/// Larger than any receiver we know accepts (QRadar: 32767) and under a UDP datagram's limit.
pub const MAX_SYSLOG_MESSAGE_BYTES: usize = 65_000;
/// Syslog facility 13, "log audit": security events meant for an audit trail.
pub const DEFAULT_SYSLOG_FACILITY: u8 = 13;
/// IANA's private enterprise number reserved for documentation (RFC 5612), used in the
/// structured-data id `siemgate@32473` until an operator sets their own.
pub const DEFAULT_ENTERPRISE_NUMBER: u32 = 32473;
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP out: Wallarm's and Coralogix's own webhook senders use 15 s request and 20 s connect
/// timeouts; siemgate defaults to the same so a receiver tuned for them behaves the same.
pub const DEFAULT_HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
pub const DEFAULT_HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Siemgate-Signature";

// ---------------------------------------------------------------------------------------------
// File types (serde)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkConfig {
    File(FileSinkConfig),
    SplunkHec(HecSinkConfig),
    Syslog(SyslogSinkConfig),
    Http(HttpSinkConfig),
}

impl SinkConfig {
    pub fn id(&self) -> &str {
        match self {
            SinkConfig::File(s) => &s.id,
            SinkConfig::SplunkHec(s) => &s.id,
            SinkConfig::Syslog(s) => &s.id,
            SinkConfig::Http(s) => &s.id,
        }
    }

    /// The `type` key's value.
    pub fn type_name(&self) -> &'static str {
        match self {
            SinkConfig::File(_) => "file",
            SinkConfig::SplunkHec(_) => "splunk_hec",
            SinkConfig::Syslog(_) => "syslog",
            SinkConfig::Http(_) => "http",
        }
    }

    /// The `encoding` and `ocsf_version` keys.
    pub fn encoding(&self) -> (EventEncoding, Option<&str>) {
        let (e, v) = match self {
            SinkConfig::File(s) => (s.encoding, &s.ocsf_version),
            SinkConfig::SplunkHec(s) => (s.encoding, &s.ocsf_version),
            SinkConfig::Syslog(s) => (s.encoding, &s.ocsf_version),
            SinkConfig::Http(s) => (s.encoding, &s.ocsf_version),
        };
        (e, v.as_deref())
    }

    pub fn queue(&self) -> &QueueConfig {
        match self {
            SinkConfig::File(s) => &s.queue,
            SinkConfig::SplunkHec(s) => &s.queue,
            SinkConfig::Syslog(s) => &s.queue,
            SinkConfig::Http(s) => &s.queue,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    pub id: String,
    /// What each event is written as: `siemgate` (the normalized Event) or `ocsf` (one OCSF
    /// class object, valid against OCSF 1.1.0 and 1.8.0).
    #[serde(default)]
    pub encoding: EventEncoding,
    /// With `encoding = "ocsf"`: the OCSF version written in `metadata.version`, "1.1.0"
    /// (default; what Amazon Security Lake validates against) or "1.8.0".
    pub ocsf_version: Option<String>,
    pub path: PathBuf,
    #[serde(default)]
    pub fsync: FsyncPolicy,
    #[serde(default = "default_fsync_interval")]
    pub fsync_interval: ConfigDuration,
    #[serde(default = "default_file_rotate_bytes")]
    pub rotate_bytes: u64,
    #[serde(default = "default_file_keep_files")]
    pub keep_files: usize,
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSinkConfig {
    pub id: String,
    /// What each event is written as: `siemgate` (the normalized Event) or `ocsf` (one OCSF
    /// class object, valid against OCSF 1.1.0 and 1.8.0).
    #[serde(default)]
    pub encoding: EventEncoding,
    /// With `encoding = "ocsf"`: the OCSF version written in `metadata.version`, "1.1.0"
    /// (default; what Amazon Security Lake validates against) or "1.8.0".
    pub ocsf_version: Option<String>,
    /// `host:port` of the receiver.
    pub address: String,
    #[serde(default)]
    pub transport: SyslogTransport,
    #[serde(default)]
    pub framing: SyslogFraming,
    #[serde(default)]
    pub header: SyslogHeader,
    #[serde(default)]
    pub format: SyslogFormat,
    #[serde(default = "default_syslog_facility")]
    pub facility: u8,
    pub hostname: Option<String>,
    #[serde(default = "default_app_name")]
    pub app_name: String,
    #[serde(default = "default_syslog_max_message_bytes")]
    pub max_message_bytes: usize,
    #[serde(default = "default_leef_delimiter")]
    pub leef_delimiter: String,
    #[serde(default = "default_enterprise_number")]
    pub enterprise_number: u32,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: ConfigDuration,
    #[serde(default = "default_write_timeout")]
    pub write_timeout: ConfigDuration,
    pub tls: Option<ClientTlsConfig>,
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkConfig {
    pub id: String,
    /// What each event is written as: `siemgate` (the normalized Event) or `ocsf` (one OCSF
    /// class object, valid against OCSF 1.1.0 and 1.8.0).
    #[serde(default)]
    pub encoding: EventEncoding,
    /// With `encoding = "ocsf"`: the OCSF version written in `metadata.version`, "1.1.0"
    /// (default; what Amazon Security Lake validates against) or "1.8.0".
    pub ocsf_version: Option<String>,
    pub url: String,
    #[serde(default)]
    pub method: HttpMethod,
    #[serde(default)]
    pub body: HttpBody,
    pub template: Option<String>,
    pub content_type: Option<String>,
    #[serde(default = "default_http_request_timeout")]
    pub request_timeout: ConfigDuration,
    #[serde(default = "default_http_connect_timeout")]
    pub connect_timeout: ConfigDuration,
    /// Extra request headers; values are secrets (API keys) and never logged.
    #[serde(default)]
    pub headers: BTreeMap<String, SecretRef>,
    pub signature: Option<SignatureConfig>,
    pub tls: Option<ClientTlsConfig>,
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureConfig {
    #[serde(default = "default_signature_header")]
    pub header: String,
    pub secret: SecretRef,
    #[serde(default)]
    pub encoding: SignatureEncodingConfig,
    #[serde(default)]
    pub prefix: String,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncodingConfig {
    #[default]
    Hex,
    Base64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum HttpMethod {
    #[default]
    #[serde(alias = "post")]
    POST,
    #[serde(alias = "put")]
    PUT,
}

/// What a JSON sink writes for each event.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventEncoding {
    /// The normalized Event (DESIGN §3).
    #[default]
    Siemgate,
    /// One OCSF class object per event (`normalize::ocsf`).
    Ocsf,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpBody {
    /// One request per event, the Event JSON.
    #[default]
    Event,
    /// One request per batch, one Event JSON per line.
    Ndjson,
    /// One request per event, the template rendered.
    Template,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogTransport {
    /// RFC 5425: the default, because alerts should not cross a network in clear text.
    #[default]
    Tls,
    Tcp,
    /// RFC 5426: lossy and unacknowledged; only when chosen.
    Udp,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogFraming {
    /// RFC 6587 §3.4.1 `LEN SP MSG`: safe for any content; required by RFC 5425.
    #[default]
    OctetCounting,
    /// One message per line: what QRadar, rsyslog `imtcp` and syslog-ng `network()` expect.
    Lf,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogHeader {
    #[default]
    Rfc5424,
    Rfc3164,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogFormat {
    #[default]
    Leef,
    Cef,
    Json,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsConfig {
    /// PEM CA bundle the destination's certificate must chain to; default: the system roots.
    pub ca_file: Option<PathBuf>,
    /// `false` accepts any certificate (with `pinned_sha256`: any pinned one, its name and
    /// dates unchecked): only for tests against throwaway receivers.
    #[serde(default = "default_true")]
    pub verify: bool,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// The name the certificate must carry (and SNI); default: the host of the url/address.
    pub server_name: Option<String>,
    /// SHA-256 fingerprints (hex, colons allowed) of the only server certificates accepted,
    /// each trusted as itself: for self-signed receivers whose certificate cannot be a CA
    /// file's. Replaces `ca_file`; name and validity are still checked unless `verify = false`.
    #[serde(default)]
    pub pinned_sha256: Vec<String>,
}

/// Which events a sink takes; the others are not queued for it.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkFilterConfig {
    pub min_severity: Option<Severity>,
    #[serde(default)]
    pub kinds: Vec<Kind>,
    #[serde(default)]
    pub vendors: Vec<String>,
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

/// When a file sink calls fsync.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// After every batch, before the batch counts as delivered.
    Always,
    /// At most once per `fsync_interval`; a crash may lose the last interval.
    #[default]
    Interval,
    /// Leave it to the operating system.
    Never,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    #[serde(default, rename = "type")]
    pub kind: QueueKind,
    /// Bound of the whole queue in undelivered events (a disk queue's: what its log holds not
    /// yet delivered); when a request does not fit, it is refused with 503, or with 413 when
    /// it holds more events for this sink than the bound itself. Default 100000.
    #[serde(default = "default_queue_max_events")]
    pub max_events: u64,
    /// Bound of the whole queue in bytes of undelivered encoded events, like `max_events`. A
    /// memory queue holds all of it in memory; a disk queue only `memory_bytes` of it. Default
    /// 256 MiB.
    #[serde(default = "default_queue_max_bytes")]
    pub max_bytes: u64,
    /// Disk queues: the most undelivered events held in memory, the oldest ones, ready for the
    /// sink; the events after them wait in the log only and are read back, in order, as
    /// deliveries make room. Default [`DEFAULT_QUEUE_MEMORY_EVENTS`]; must be greater than 0.
    pub memory_events: Option<u64>,
    /// Disk queues: the most bytes of undelivered events held in memory, as `memory_events`
    /// (one event larger than this is still taken, alone). Default
    /// [`DEFAULT_QUEUE_MEMORY_BYTES`] (64 MiB); must be greater than 0. With `max_bytes` far
    /// above it, a long outage is absorbed on disk while memory stays at this.
    pub memory_bytes: Option<u64>,
    /// Disk queues: the directory; default `<server.data_dir>/queues/<sink id>`.
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub fsync: QueueFsyncConfig,
    #[serde(default = "default_queue_fsync_interval")]
    pub fsync_interval: ConfigDuration,
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    /// Kafka queues: the brokers, `host:port` each (required).
    #[serde(default)]
    pub brokers: Vec<String>,
    /// Kafka queues: the sink's topic; default `siemgate.<sink id>`. It must exist, with
    /// replication factor 3 and `min.insync.replicas = 2` for an accepted event to survive the
    /// loss of a broker.
    pub topic: Option<String>,
    /// Kafka queues: how long a request waits for the brokers' delivery reports before it is
    /// answered 503 with Retry-After. Default 5 s.
    pub produce_timeout: Option<ConfigDuration>,
    /// Kafka queues: TLS to the brokers.
    pub tls: Option<super::kafka::KafkaTlsConfig>,
    /// Kafka queues: SASL PLAIN or SCRAM to the brokers.
    pub sasl: Option<super::kafka::KafkaSaslConfig>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            kind: QueueKind::default(),
            max_events: DEFAULT_QUEUE_MAX_EVENTS,
            max_bytes: DEFAULT_QUEUE_MAX_BYTES,
            memory_events: None,
            memory_bytes: None,
            path: None,
            fsync: QueueFsyncConfig::default(),
            fsync_interval: default_queue_fsync_interval(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            brokers: Vec::new(),
            topic: None,
            produce_timeout: None,
            tls: None,
            sasl: None,
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueKind {
    /// Lost on a crash or restart; for tests and for users who accept that.
    #[default]
    Memory,
    /// Every accepted event is on disk before its 2xx (with `fsync = "always"`).
    Disk,
    /// Every accepted event is on the Kafka brokers (acks=all) before its 2xx; delivery
    /// workers consume the sink's topic (the cluster mode).
    Kafka,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueFsyncConfig {
    #[default]
    Always,
    Interval,
    Never,
}

/// When a disk queue calls fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueFsync {
    /// Before a request's 2xx, shared by the requests waiting together (group commit).
    Always,
    /// At most this long apart; a crash may lose what was accepted in the last interval.
    Interval(Duration),
    /// Left to the operating system.
    Never,
}

fn default_queue_fsync_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_millis(100))
}
fn default_segment_bytes() -> u64 {
    DEFAULT_SEGMENT_BYTES
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    #[serde(default = "default_batch_max_events")]
    pub max_events: usize,
    #[serde(default = "default_batch_max_bytes")]
    pub max_bytes: usize,
    #[serde(default = "default_batch_linger")]
    pub linger: ConfigDuration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_events: DEFAULT_BATCH_MAX_EVENTS,
            max_bytes: DEFAULT_BATCH_MAX_BYTES,
            linger: default_batch_linger(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_fsync_interval() -> ConfigDuration {
    ConfigDuration(DEFAULT_FSYNC_INTERVAL)
}
fn default_file_rotate_bytes() -> u64 {
    DEFAULT_FILE_ROTATE_BYTES
}
fn default_file_keep_files() -> usize {
    DEFAULT_FILE_KEEP_FILES
}
fn default_queue_max_events() -> u64 {
    DEFAULT_QUEUE_MAX_EVENTS
}
fn default_queue_max_bytes() -> u64 {
    DEFAULT_QUEUE_MAX_BYTES
}
fn default_batch_max_events() -> usize {
    DEFAULT_BATCH_MAX_EVENTS
}
fn default_batch_max_bytes() -> usize {
    DEFAULT_BATCH_MAX_BYTES
}
fn default_batch_linger() -> ConfigDuration {
    ConfigDuration(DEFAULT_BATCH_LINGER)
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
fn default_connect_timeout() -> ConfigDuration {
    ConfigDuration(DEFAULT_CONNECT_TIMEOUT)
}
fn default_write_timeout() -> ConfigDuration {
    ConfigDuration(DEFAULT_WRITE_TIMEOUT)
}
fn default_syslog_facility() -> u8 {
    DEFAULT_SYSLOG_FACILITY
}
fn default_app_name() -> String {
    "siemgate".to_owned()
}
fn default_syslog_max_message_bytes() -> usize {
    DEFAULT_SYSLOG_MAX_MESSAGE_BYTES
}
fn default_leef_delimiter() -> String {
    "^".to_owned()
}
fn default_enterprise_number() -> u32 {
    DEFAULT_ENTERPRISE_NUMBER
}
fn default_http_request_timeout() -> ConfigDuration {
    ConfigDuration(DEFAULT_HTTP_REQUEST_TIMEOUT)
}
fn default_http_connect_timeout() -> ConfigDuration {
    ConfigDuration(DEFAULT_HTTP_CONNECT_TIMEOUT)
}
fn default_signature_header() -> String {
    DEFAULT_SIGNATURE_HEADER.to_owned()
}

// ---------------------------------------------------------------------------------------------
// Runtime types
// ---------------------------------------------------------------------------------------------

pub struct SinkSettings {
    pub id: String,
    pub queue: QueueLimits,
    pub batch: BatchLimits,
    pub filter: SinkFilter,
    /// Where refused events go; without it they are logged (their first bytes) and counted.
    pub dead_letter_path: Option<PathBuf>,
    /// `Some` for a disk queue.
    pub disk: Option<crate::queue::disk::DiskSettings>,
    /// `Some` for a Kafka queue.
    pub kafka: Option<super::kafka::KafkaQueueSettings>,
    /// Retryable failures of one batch for longer than this dead-letter it; `None`: forever.
    pub max_retry_duration: Option<Duration>,
    /// `Some(version)` with `encoding = "ocsf"`: events are written as OCSF objects.
    pub ocsf: Option<OcsfVersion>,
    pub kind: SinkKind,
}

#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    pub max_events: u64,
    pub max_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_events: usize,
    pub max_bytes: usize,
    pub linger: Duration,
}

/// A sink's filter: an event is queued for the sink only if it passes every condition given.
#[derive(Debug, Clone, Default)]
pub struct SinkFilter {
    pub min_severity: Option<Severity>,
    pub kinds: Vec<Kind>,
    pub vendors: Vec<Vendor>,
}

impl SinkFilter {
    pub fn is_empty(&self) -> bool {
        self.min_severity.is_none() && self.kinds.is_empty() && self.vendors.is_empty()
    }

    pub fn accepts(&self, severity: Severity, kind: Kind, vendor: Vendor) -> bool {
        self.min_severity.is_none_or(|min| severity.passes(min))
            && (self.kinds.is_empty() || self.kinds.contains(&kind))
            && (self.vendors.is_empty() || self.vendors.contains(&vendor))
    }
}

pub enum SinkKind {
    File(FileSettings),
    SplunkHec(HecSettings),
    Syslog(SyslogSettings),
    Http(HttpSettings),
}

#[derive(Debug, Clone)]
pub struct FileSettings {
    pub path: PathBuf,
    pub fsync: FsyncPolicy,
    pub fsync_interval: Duration,
    pub rotate_bytes: u64,
    pub keep_files: usize,
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

pub struct SyslogSettings {
    pub host: String,
    pub port: u16,
    pub transport: SyslogTransport,
    pub framing: SyslogFraming,
    pub header: SyslogHeader,
    pub format: SyslogFormat,
    pub facility: u8,
    pub hostname: String,
    pub app_name: String,
    pub max_message_bytes: usize,
    pub leef_delimiter: u8,
    pub enterprise_number: u32,
    pub connect_timeout: Duration,
    pub write_timeout: Duration,
    pub tls: Option<ClientTls>,
}

pub struct HttpSettings {
    pub endpoint: Endpoint,
    pub tls: Option<ClientTls>,
    pub method: http::Method,
    pub body: HttpBodySettings,
    pub content_type: HeaderValue,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub signature: Option<SignatureSettings>,
}

pub enum HttpBodySettings {
    Event,
    Ndjson,
    Template(Template),
}

pub struct SignatureSettings {
    pub header: HeaderName,
    pub secret: Secret,
    pub encoding: SignatureEncodingConfig,
    pub prefix: String,
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// This machine's name, for the HEC `host` and the syslog HOSTNAME when the config sets none.
/// Only printable ASCII without spaces survives (RFC 5424 HOSTNAME); `siemgate` if none is set.
pub fn system_hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if name.is_empty() {
        "siemgate".to_owned()
    } else {
        name
    }
}

/// What a valid source or sink id is, for error messages.
pub(super) const ID_RULE: &str = "use 1 to 64 of A-Z a-z 0-9 - _ . (not . or .. alone)";

/// Ids name URL paths (`/hooks/<id>`, `/api/v1/sources/<id>`) and directories (a disk queue's
/// `<data_dir>/queues/<id>`), so `.` and `..` are refused: they would resolve to another path.
pub(super) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

pub(super) fn validate_sink(
    sink: &SinkConfig,
    path: &str,
    data_dir: &std::path::Path,
    issues: &mut Issues,
) -> Option<SinkSettings> {
    let before = issues.0.len();
    let id = sink.id();
    if !valid_id(id) {
        issues.push(
            format!("{path}.id"),
            format!("{id:?} is not a valid id: {ID_RULE}"),
        );
    }
    let (queue, batch, filter, dead_letter_path, max_retry) = match sink {
        SinkConfig::File(s) => (
            &s.queue,
            &s.batch,
            &s.filter,
            &s.dead_letter_path,
            s.max_retry_duration,
        ),
        SinkConfig::SplunkHec(s) => (
            &s.queue,
            &s.batch,
            &s.filter,
            &s.dead_letter_path,
            s.max_retry_duration,
        ),
        SinkConfig::Syslog(s) => (
            &s.queue,
            &s.batch,
            &s.filter,
            &s.dead_letter_path,
            s.max_retry_duration,
        ),
        SinkConfig::Http(s) => (
            &s.queue,
            &s.batch,
            &s.filter,
            &s.dead_letter_path,
            s.max_retry_duration,
        ),
    };
    if max_retry.is_some_and(|d| d.0.is_zero()) {
        issues.push(
            format!("{path}.max_retry_duration"),
            "must be greater than 0 (leave it out to retry forever)",
        );
    }
    if let Some(p) = dead_letter_path {
        if p.is_dir() {
            issues.push(
                format!("{path}.dead_letter_path"),
                format!("{} is a directory", p.display()),
            );
        }
    }
    let disk = (queue.kind == QueueKind::Disk).then(|| {
        if queue.fsync == QueueFsyncConfig::Interval && queue.fsync_interval.0.is_zero() {
            issues.push(
                format!("{path}.queue.fsync_interval"),
                "must be greater than 0",
            );
        }
        crate::queue::disk::DiskSettings {
            dir: queue
                .path
                .clone()
                .unwrap_or_else(|| data_dir.join("queues").join(id)),
            fsync: match queue.fsync {
                QueueFsyncConfig::Always => QueueFsync::Always,
                QueueFsyncConfig::Interval => QueueFsync::Interval(queue.fsync_interval.0),
                QueueFsyncConfig::Never => QueueFsync::Never,
            },
            segment_bytes: queue.segment_bytes,
            memory: QueueLimits {
                max_events: queue.memory_events.unwrap_or(DEFAULT_QUEUE_MEMORY_EVENTS),
                max_bytes: queue.memory_bytes.unwrap_or(DEFAULT_QUEUE_MEMORY_BYTES),
            },
        }
    });
    let kafka = validate_kafka_queue(queue, id, &format!("{path}.queue"), issues);
    if queue.kind != QueueKind::Disk && queue.path.is_some() {
        issues.push(
            format!("{path}.queue.path"),
            "only disk queues have a path (type = \"disk\")",
        );
    }
    for (key, value) in [
        ("memory_events", queue.memory_events),
        ("memory_bytes", queue.memory_bytes),
    ] {
        match value {
            Some(_) if queue.kind == QueueKind::Memory => issues.push(
                format!("{path}.queue.{key}"),
                "only disk queues keep part of the queue in memory (type = \"disk\"); a memory \
                 queue holds all of it, bounded by max_events and max_bytes",
            ),
            Some(0) => issues.push(format!("{path}.queue.{key}"), "must be greater than 0"),
            _ => {}
        }
    }
    let ocsf = validate_encoding(sink, path, issues);
    let queue = validate_queue(queue, &format!("{path}.queue"), issues);
    let batch = validate_batch(batch, &format!("{path}.batch"), issues);
    let filter = validate_filter(filter, &format!("{path}.filter"), issues);
    let kind = match sink {
        SinkConfig::File(f) => validate_file(f, path, issues),
        SinkConfig::SplunkHec(h) => validate_hec(h, path, issues),
        SinkConfig::Syslog(s) => validate_syslog(s, path, issues),
        SinkConfig::Http(h) => validate_http(h, path, issues),
    };
    if issues.0.len() != before {
        return None;
    }
    Some(SinkSettings {
        id: id.to_owned(),
        queue: queue?,
        batch: batch?,
        filter,
        dead_letter_path: dead_letter_path.clone(),
        disk,
        kafka,
        max_retry_duration: max_retry.map(|d| d.0),
        ocsf,
        kind: kind?,
    })
}

/// The Kafka keys of a queue: required and checked with `type = "kafka"`, refused without.
fn validate_kafka_queue(
    queue: &QueueConfig,
    sink_id: &str,
    path: &str,
    issues: &mut Issues,
) -> Option<super::kafka::KafkaQueueSettings> {
    if queue.kind != QueueKind::Kafka {
        let set = [
            ("brokers", !queue.brokers.is_empty()),
            ("topic", queue.topic.is_some()),
            ("produce_timeout", queue.produce_timeout.is_some()),
            ("tls", queue.tls.is_some()),
            ("sasl", queue.sasl.is_some()),
        ];
        for (key, _) in set.iter().filter(|(_, on)| *on) {
            issues.push(
                format!("{path}.{key}"),
                "only Kafka queues have this key (type = \"kafka\")",
            );
        }
        return None;
    }
    if !cfg!(feature = "kafka") {
        issues.push(
            format!("{path}.type"),
            "this siemgate was built without Kafka support (cargo feature `kafka`)",
        );
    }
    let connection = super::kafka::validate_connection(
        &queue.brokers,
        queue.tls.as_ref(),
        queue.sasl.as_ref(),
        path,
        issues,
    );
    let topic = queue
        .topic
        .clone()
        .unwrap_or_else(|| format!("siemgate.{sink_id}"));
    if !super::kafka::valid_topic(&topic) {
        issues.push(
            format!("{path}.topic"),
            format!("{topic:?} is not a Kafka topic name (1-249 of A-Z a-z 0-9 . _ -)"),
        );
    }
    let produce_timeout = queue
        .produce_timeout
        .map_or(super::kafka::DEFAULT_PRODUCE_TIMEOUT, |d| d.0);
    if produce_timeout.is_zero() {
        issues.push(format!("{path}.produce_timeout"), "must be greater than 0");
    }
    Some(super::kafka::KafkaQueueSettings {
        connection: connection?,
        group: format!("siemgate.{sink_id}"),
        topic,
        produce_timeout,
        memory: QueueLimits {
            max_events: queue.memory_events.unwrap_or(DEFAULT_QUEUE_MEMORY_EVENTS),
            max_bytes: queue.memory_bytes.unwrap_or(DEFAULT_QUEUE_MEMORY_BYTES),
        },
    })
}

/// `encoding` and `ocsf_version`: OCSF is JSON, so only where the sink sends JSON.
fn validate_encoding(sink: &SinkConfig, path: &str, issues: &mut Issues) -> Option<OcsfVersion> {
    let (encoding, version) = sink.encoding();
    if encoding == EventEncoding::Siemgate {
        if version.is_some() {
            issues.push(
                format!("{path}.ocsf_version"),
                "only used with encoding = \"ocsf\"",
            );
        }
        return None;
    }
    match sink {
        SinkConfig::Syslog(s) if s.format != SyslogFormat::Json => issues.push(
            format!("{path}.encoding"),
            "\"ocsf\" is JSON: it needs format = \"json\" (LEEF and CEF carry siemgate's \
             own fields)",
        ),
        SinkConfig::Http(h) if h.body == HttpBody::Template => issues.push(
            format!("{path}.encoding"),
            "\"ocsf\" needs body = \"event\" or \"ndjson\" (a template renders siemgate's \
             own fields)",
        ),
        _ => {}
    }
    match version {
        None => Some(OcsfVersion::default()),
        Some(v) => {
            let parsed = OcsfVersion::from_name(v);
            if parsed.is_none() {
                issues.push(
                    format!("{path}.ocsf_version"),
                    format!(
                        "{v:?} is not a supported OCSF version: use one of {:?}",
                        OcsfVersion::NAMES
                    ),
                );
            }
            parsed
        }
    }
}

fn validate_file(f: &FileSinkConfig, path: &str, issues: &mut Issues) -> Option<SinkKind> {
    if f.rotate_bytes == 0 {
        issues.push(format!("{path}.rotate_bytes"), "must be greater than 0");
    }
    if f.fsync == FsyncPolicy::Interval && f.fsync_interval.0.is_zero() {
        issues.push(format!("{path}.fsync_interval"), "must be greater than 0");
    }
    if f.path.is_dir() {
        issues.push(
            format!("{path}.path"),
            format!("{} is a directory", f.path.display()),
        );
    }
    Some(SinkKind::File(FileSettings {
        path: f.path.clone(),
        fsync: f.fsync,
        fsync_interval: f.fsync_interval.0,
        rotate_bytes: f.rotate_bytes,
        keep_files: f.keep_files,
    }))
}

fn positive(d: ConfigDuration, key: String, issues: &mut Issues) {
    if d.0.is_zero() {
        issues.push(key, "must be greater than 0");
    }
}

/// Parses a sink `url` and builds its TLS client when the URL is https.
fn endpoint_and_tls(
    url: &str,
    tls: Option<&ClientTlsConfig>,
    path: &str,
    issues: &mut Issues,
) -> Option<(Endpoint, Option<ClientTls>)> {
    let endpoint = match Endpoint::parse(url) {
        Ok(e) => e,
        Err(m) => {
            issues.push(format!("{path}.url"), m);
            return None;
        }
    };
    if !endpoint.https {
        if tls.is_some() {
            issues.push(
                format!("{path}.tls"),
                "the url is http://: TLS settings need an https:// url",
            );
            return None;
        }
        return Some((endpoint, None));
    }
    let tls = build_client_tls(tls, &endpoint.host, path, issues)?;
    Some((endpoint, Some(tls)))
}

fn build_client_tls(
    cfg: Option<&ClientTlsConfig>,
    host: &str,
    path: &str,
    issues: &mut Issues,
) -> Option<ClientTls> {
    let mut pins = Vec::new();
    for (i, text) in cfg.map_or(&[][..], |c| &c.pinned_sha256).iter().enumerate() {
        match parse_sha256(text) {
            Some(p) => pins.push(p),
            None => {
                issues.push(
                    format!("{path}.tls.pinned_sha256[{i}]"),
                    "must be a SHA-256 fingerprint: 64 hex digits, colons allowed",
                );
                return None;
            }
        }
    }
    if !pins.is_empty() && cfg.is_some_and(|c| c.ca_file.is_some()) {
        issues.push(
            format!("{path}.tls.pinned_sha256"),
            "the pinned certificates are trusted as themselves: leave ca_file out",
        );
        return None;
    }
    let opts = ClientTlsOptions {
        ca_file: cfg.and_then(|c| c.ca_file.as_deref()),
        verify: cfg.is_none_or(|c| c.verify),
        pinned_sha256: &pins,
        client_cert: cfg.and_then(|c| c.client_cert.as_deref()),
        client_key: cfg.and_then(|c| c.client_key.as_deref()),
    };
    let server_name = cfg.and_then(|c| c.server_name.as_deref());
    match client_tls(&opts, host, server_name) {
        Ok(t) => Some(t),
        Err(e) => {
            issues.push(format!("{path}.tls.{}", e.key()), e.to_string());
            None
        }
    }
}

/// A SHA-256 fingerprint written as 64 hex digits, optionally in colon-separated pairs (as
/// `openssl x509 -fingerprint -sha256` prints it).
pub fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let digits: String = text.chars().filter(|&c| c != ':').collect();
    let mut out = [0u8; 32];
    hex::decode_to_slice(digits, &mut out).ok()?;
    Some(out)
}

fn validate_hec(h: &HecSinkConfig, path: &str, issues: &mut Issues) -> Option<SinkKind> {
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

/// RFC 5424 PRINTUSASCII (no spaces, no control characters), 1 to `max` bytes.
fn printusascii(text: &str, max: usize) -> bool {
    !text.is_empty() && text.len() <= max && text.bytes().all(|b| b.is_ascii_graphic())
}

fn split_host_port(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

fn validate_syslog(s: &SyslogSinkConfig, path: &str, issues: &mut Issues) -> Option<SinkKind> {
    let before = issues.0.len();
    let address = split_host_port(&s.address);
    if address.is_none() {
        issues.push(
            format!("{path}.address"),
            format!("{:?} is not host:port, e.g. 127.0.0.1:6514", s.address),
        );
    }
    if s.facility > 23 {
        issues.push(format!("{path}.facility"), "must be 0 to 23");
    }
    let hostname = s.hostname.clone().unwrap_or_else(system_hostname);
    if !printusascii(&hostname, 255) {
        issues.push(
            format!("{path}.hostname"),
            "must be 1 to 255 printable ASCII characters without spaces",
        );
    }
    let app_max = if s.header == SyslogHeader::Rfc3164 {
        32
    } else {
        48
    };
    let app_ok = printusascii(&s.app_name, app_max)
        && (s.header == SyslogHeader::Rfc5424
            || s.app_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
    if !app_ok {
        issues.push(
            format!("{path}.app_name"),
            format!("must be 1 to {app_max} printable ASCII characters without spaces (RFC 3164: letters, digits, - and _)"),
        );
    }
    if !(MIN_SYSLOG_MESSAGE_BYTES..=MAX_SYSLOG_MESSAGE_BYTES).contains(&s.max_message_bytes) {
        issues.push(
            format!("{path}.max_message_bytes"),
            format!("must be {MIN_SYSLOG_MESSAGE_BYTES} to {MAX_SYSLOG_MESSAGE_BYTES}"),
        );
    }
    let delimiter = match s.leef_delimiter.as_str() {
        "\t" | "x09" | "0x09" => Some(b'\t'),
        d if d.len() == 1 => {
            let b = d.as_bytes()[0];
            let ok = b.is_ascii_graphic() && !b.is_ascii_alphanumeric() && !b"=|".contains(&b);
            ok.then_some(b)
        }
        _ => None,
    };
    if delimiter.is_none() {
        issues.push(
            format!("{path}.leef_delimiter"),
            "must be one printable ASCII character other than a letter, a digit, = or | (or \"\\t\")",
        );
    }
    if s.transport == SyslogTransport::Udp && s.framing != SyslogFraming::default() {
        issues.push(
            format!("{path}.framing"),
            "UDP sends one message per datagram; framing applies to tcp and tls",
        );
    }
    if s.transport != SyslogTransport::Tls && s.tls.is_some() {
        issues.push(
            format!("{path}.tls"),
            "TLS settings need transport = \"tls\"",
        );
    }
    positive(s.connect_timeout, format!("{path}.connect_timeout"), issues);
    positive(s.write_timeout, format!("{path}.write_timeout"), issues);
    let (host, port) = address?;
    let tls = if s.transport == SyslogTransport::Tls {
        Some(build_client_tls(s.tls.as_ref(), &host, path, issues)?)
    } else {
        None
    };
    if issues.0.len() != before {
        return None;
    }
    Some(SinkKind::Syslog(SyslogSettings {
        host,
        port,
        transport: s.transport,
        framing: s.framing,
        header: s.header,
        format: s.format,
        facility: s.facility,
        hostname,
        app_name: s.app_name.clone(),
        max_message_bytes: s.max_message_bytes,
        leef_delimiter: delimiter?,
        enterprise_number: s.enterprise_number,
        connect_timeout: s.connect_timeout.0,
        write_timeout: s.write_timeout.0,
        tls,
    }))
}

fn validate_http(h: &HttpSinkConfig, path: &str, issues: &mut Issues) -> Option<SinkKind> {
    let before = issues.0.len();
    let target = endpoint_and_tls(&h.url, h.tls.as_ref(), path, issues);
    let body = match (h.body, &h.template) {
        (HttpBody::Template, Some(t)) => match Template::parse(t) {
            Ok(t) => Some(HttpBodySettings::Template(t)),
            Err(m) => {
                issues.push(format!("{path}.template"), m);
                None
            }
        },
        (HttpBody::Template, None) => {
            issues.push(
                format!("{path}.template"),
                "missing: body = \"template\" needs a template",
            );
            None
        }
        (_, Some(_)) => {
            issues.push(
                format!("{path}.template"),
                "only used with body = \"template\"",
            );
            None
        }
        (HttpBody::Event, None) => Some(HttpBodySettings::Event),
        (HttpBody::Ndjson, None) => Some(HttpBodySettings::Ndjson),
    };
    let default_type = match h.body {
        HttpBody::Ndjson => "application/x-ndjson",
        _ => "application/json",
    };
    let content_type =
        match HeaderValue::from_str(h.content_type.as_deref().unwrap_or(default_type)) {
            Ok(v) => Some(v),
            Err(_) => {
                issues.push(
                    format!("{path}.content_type"),
                    "is not a valid header value",
                );
                None
            }
        };
    let mut headers = Vec::with_capacity(h.headers.len());
    for (name, value) in &h.headers {
        let key = format!("{path}.headers.{name}");
        let Ok(hn) = HeaderName::from_bytes(name.as_bytes()) else {
            issues.push(key, format!("{name:?} is not a valid HTTP header name"));
            continue;
        };
        match value.resolve() {
            Ok(secret) => match HeaderValue::from_str(secret.expose()) {
                Ok(mut v) => {
                    v.set_sensitive(true);
                    headers.push((hn, v));
                }
                Err(_) => issues.push(key, "the value is not a valid header value"),
            },
            Err(m) => issues.push(key, m),
        }
    }
    let signature = h.signature.as_ref().and_then(|s| {
        let header = HeaderName::from_bytes(s.header.as_bytes());
        if header.is_err() {
            issues.push(
                format!("{path}.signature.header"),
                format!("{:?} is not a valid HTTP header name", s.header),
            );
        }
        let secret = s
            .secret
            .resolve()
            .map_err(|m| issues.push(format!("{path}.signature.secret"), m))
            .ok();
        Some(SignatureSettings {
            header: header.ok()?,
            secret: secret?,
            encoding: s.encoding,
            prefix: s.prefix.clone(),
        })
    });
    positive(h.request_timeout, format!("{path}.request_timeout"), issues);
    positive(h.connect_timeout, format!("{path}.connect_timeout"), issues);
    if issues.0.len() != before {
        return None;
    }
    let (endpoint, tls) = target?;
    Some(SinkKind::Http(HttpSettings {
        endpoint,
        tls,
        method: match h.method {
            HttpMethod::POST => http::Method::POST,
            HttpMethod::PUT => http::Method::PUT,
        },
        body: body?,
        content_type: content_type?,
        request_timeout: h.request_timeout.0,
        connect_timeout: h.connect_timeout.0,
        headers,
        signature,
    }))
}

fn validate_filter(f: &SinkFilterConfig, path: &str, issues: &mut Issues) -> SinkFilter {
    let mut vendors = Vec::with_capacity(f.vendors.len());
    for (i, name) in f.vendors.iter().enumerate() {
        match Vendor::from_name(name) {
            Some(v) => vendors.push(v),
            None => issues.push(
                format!("{path}.vendors[{i}]"),
                format!(
                    "unknown vendor {name:?}: expected one of {}",
                    Vendor::names().collect::<Vec<_>>().join(", ")
                ),
            ),
        }
    }
    if f.min_severity == Some(Severity::Unknown) {
        issues.push(format!("{path}.min_severity"), super::UNKNOWN_MIN_SEVERITY);
    }
    SinkFilter {
        min_severity: f.min_severity,
        kinds: f.kinds.clone(),
        vendors,
    }
}

fn validate_queue(q: &QueueConfig, path: &str, issues: &mut Issues) -> Option<QueueLimits> {
    let mut ok = true;
    if q.max_events == 0 {
        issues.push(format!("{path}.max_events"), "must be greater than 0");
        ok = false;
    }
    if q.max_bytes == 0 {
        issues.push(format!("{path}.max_bytes"), "must be greater than 0");
        ok = false;
    }
    ok.then_some(QueueLimits {
        max_events: q.max_events,
        max_bytes: q.max_bytes,
    })
}

fn validate_batch(b: &BatchConfig, path: &str, issues: &mut Issues) -> Option<BatchLimits> {
    let mut ok = true;
    if b.max_events == 0 {
        issues.push(format!("{path}.max_events"), "must be greater than 0");
        ok = false;
    }
    if b.max_bytes == 0 {
        issues.push(format!("{path}.max_bytes"), "must be greater than 0");
        ok = false;
    }
    ok.then_some(BatchLimits {
        max_events: b.max_events,
        max_bytes: b.max_bytes,
        linger: b.linger.0,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn issues_with_tls(tls: &str) -> Vec<String> {
        let text = format!(
            r#"
[server]
listen = "127.0.0.1:0"
plaintext = true
[[sinks]]
id = "q"
type = "syslog"
address = "127.0.0.1:6514"
transport = "tls"
tls = {{ {tls} }}
[[sources]]
id = "a"
sinks = ["q"]
auth = {{ scheme = "token", secret = "t" }}
"#
        );
        match crate::config::validate(crate::config::parse(&text).unwrap()) {
            Ok(_) => Vec::new(),
            Err(issues) => issues.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn pinned_sha256_takes_hex_with_or_without_colons() {
        let hex = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_sha256(&hex), Some([0xAB; 32]));
        assert_eq!(parse_sha256(&colons), Some([0xAB; 32]));
        assert_eq!(parse_sha256(&hex[2..]), None);
        assert_eq!(parse_sha256(&format!("{hex}ab")), None);
        assert_eq!(parse_sha256(&"zz".repeat(32)), None);
        let ok = issues_with_tls(&format!("pinned_sha256 = ['{hex}', '{colons}']"));
        assert_eq!(ok, Vec::<String>::new());
    }

    #[test]
    fn a_bad_pin_or_a_pin_with_ca_file_is_a_config_error() {
        let issues = issues_with_tls("pinned_sha256 = ['abcd']");
        assert!(
            issues
                .iter()
                .any(|i| i.starts_with("sinks[0].tls.pinned_sha256[0]: must be a SHA-256")),
            "{issues:?}"
        );
        let hex = "ab".repeat(32);
        let issues = issues_with_tls(&format!(
            "pinned_sha256 = ['{hex}'], ca_file = '/etc/ssl/certs/ca-certificates.crt'"
        ));
        assert!(
            issues
                .iter()
                .any(|i| i.starts_with("sinks[0].tls.pinned_sha256: the pinned certificates")),
            "{issues:?}"
        );
    }
}
