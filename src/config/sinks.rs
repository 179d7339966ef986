//! The `[[sinks]]` part of the config: the keys every sink has, whatever its type, their
//! runtime settings and their validation; each type's own keys are in a file of its own
//! (`sinks/file.rs`, `splunk_hec.rs`, `syslog.rs`, `http.rs`, `elasticsearch.rs`, `sentinel.rs`,
//! `kafka.rs`).
//!
//! The shared keys (`id`, `encoding`, `ocsf_version`, `queue`, `batch`, `filter`,
//! `dead_letter_path`, `max_retry_duration`) sit beside a type's own keys in the file, so each
//! type's serde struct declares them (serde cannot refuse unknown keys through `flatten`), and
//! [`SinkKindConfig::common`] reads them back as one [`SinkCommon`] that [`validate_sink`]
//! checks once for every type.
//!
//! A new sink type is: a file here with its `XSinkConfig` (the shared keys first and last, as
//! in `file.rs`; `common_keys!` reads them) implementing [`SinkKindConfig`], its runtime
//! settings as a [`SinkKind`] variant, and a [`SinkConfig`] variant with its arm in
//! [`SinkConfig::kind`]. The `sinks` module builds the running sink from the settings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigDuration, Issues};
use crate::normalize::ocsf::OcsfVersion;
use crate::normalize::{Kind, Severity, Vendor};
use crate::tls::{client_tls, ClientTls, ClientTlsOptions};

/// [`SinkCommon`] of a sink type's config struct: the shared keys have the same names in
/// every type.
macro_rules! common_keys {
    ($s:expr) => {
        SinkCommon {
            id: &$s.id,
            encoding: $s.encoding,
            ocsf_version: $s.ocsf_version.as_deref(),
            queue: &$s.queue,
            batch: &$s.batch,
            filter: &$s.filter,
            dead_letter_path: $s.dead_letter_path.as_deref(),
            max_retry_duration: $s.max_retry_duration,
        }
    };
}

mod elasticsearch;
mod endpoint;
mod file;
mod http;
mod kafka;
mod sentinel;
mod splunk_hec;
mod syslog;

pub use elasticsearch::*;
pub use endpoint::Endpoint;
pub use file::*;
pub use http::*;
pub use kafka::*;
pub use sentinel::*;
pub use splunk_hec::*;
pub use syslog::*;

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
/// How long the HEC and syslog sinks wait for a connection (and its TLS handshake).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
    Elasticsearch(ElasticsearchSinkConfig),
    Sentinel(SentinelSinkConfig),
    Kafka(KafkaSinkConfig),
}

impl SinkConfig {
    /// The sink's type-specific config behind the one shape every type has.
    fn kind(&self) -> &dyn SinkKindConfig {
        match self {
            SinkConfig::File(s) => s,
            SinkConfig::SplunkHec(s) => s,
            SinkConfig::Syslog(s) => s,
            SinkConfig::Http(s) => s,
            SinkConfig::Elasticsearch(s) => s,
            SinkConfig::Sentinel(s) => s,
            SinkConfig::Kafka(s) => s,
        }
    }

    /// The keys every sink has.
    pub fn common(&self) -> SinkCommon<'_> {
        self.kind().common()
    }

    pub fn id(&self) -> &str {
        self.common().id
    }

    /// The `type` key's value.
    pub fn type_name(&self) -> &'static str {
        self.kind().type_name()
    }

    /// The `encoding` and `ocsf_version` keys.
    pub fn encoding(&self) -> (EventEncoding, Option<&str>) {
        let c = self.common();
        (c.encoding, c.ocsf_version)
    }

    pub fn queue(&self) -> &QueueConfig {
        self.common().queue
    }
}

/// What every sink type's config is: its `type`, the keys every sink has, and its own keys
/// checked and turned into its runtime settings.
pub(in crate::config) trait SinkKindConfig {
    /// The `type` key's value.
    fn type_name(&self) -> &'static str;

    /// The keys every sink has (`common_keys!(self)`).
    fn common(&self) -> SinkCommon<'_>;

    /// Why `encoding = "ocsf"` does not fit this sink as configured (it would not send the
    /// events as JSON); `None`: it fits.
    fn ocsf_conflict(&self) -> Option<&'static str> {
        None
    }

    /// Checks the type's own keys, each problem with its key path under `path`, and builds
    /// its settings; `None` when there was a problem.
    fn validate(&self, path: &str, issues: &mut Issues) -> Option<SinkKind>;
}

/// The keys every sink has, as one sink's config writes them.
#[derive(Debug, Clone, Copy)]
pub struct SinkCommon<'a> {
    pub id: &'a str,
    /// What each event is written as: `siemgate` (the normalized Event) or `ocsf`.
    pub encoding: EventEncoding,
    /// With `encoding = "ocsf"`: the OCSF version written in `metadata.version`.
    pub ocsf_version: Option<&'a str>,
    pub queue: &'a QueueConfig,
    pub batch: &'a BatchConfig,
    pub filter: &'a SinkFilterConfig,
    /// NDJSON file for events the destination refuses for good, with the reason and time.
    pub dead_letter_path: Option<&'a Path>,
    /// Give up retrying a batch after this long and dead-letter it; absent: retry forever.
    pub max_retry_duration: Option<ConfigDuration>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventEncoding {
    /// The normalized Event (DESIGN §3).
    #[default]
    Siemgate,
    /// One OCSF class object per event (`normalize::ocsf`).
    Ocsf,
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
fn default_connect_timeout() -> ConfigDuration {
    ConfigDuration(DEFAULT_CONNECT_TIMEOUT)
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
    pub disk: Option<DiskSettings>,
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
    Elasticsearch(ElasticsearchSettings),
    Sentinel(SentinelSettings),
    /// Only in builds with Kafka support; without it `validate()` refuses the type.
    #[cfg(feature = "kafka")]
    Kafka(KafkaSinkSettings),
}

/// Where and how a disk queue keeps its segment log.
#[derive(Debug, Clone)]
pub struct DiskSettings {
    pub dir: PathBuf,
    pub fsync: QueueFsync,
    pub segment_bytes: u64,
    /// The most undelivered events (and bytes of them) held in memory: the oldest ones.
    pub memory: QueueLimits,
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
    let common = sink.common();
    let (queue, batch, filter) = (common.queue, common.batch, common.filter);
    let (dead_letter_path, max_retry) = (common.dead_letter_path, common.max_retry_duration);
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
        DiskSettings {
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
    let kind = sink.kind().validate(path, issues);
    if issues.0.len() != before {
        return None;
    }
    Some(SinkSettings {
        id: id.to_owned(),
        queue: queue?,
        batch: batch?,
        filter,
        dead_letter_path: dead_letter_path.map(Path::to_owned),
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
    if let Some(why) = sink.kind().ocsf_conflict() {
        issues.push(format!("{path}.encoding"), why);
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
        match crate::tls::parse_sha256(text) {
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
    use crate::tls::parse_sha256;

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
