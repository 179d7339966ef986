//! The `type = "kafka"` sink's keys (events produced to a Kafka topic, for SIEMs that read
//! Kafka: QRadar, Splunk Connect for Kafka, Sentinel through Event Hubs' Kafka endpoint), the
//! runtime settings `validate()` turns them into, and the topic template (`{vendor}`,
//! `{source}`, `{kind}`). Brokers, TLS and SASL are the Kafka queue's keys (`config::kafka`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::super::kafka::{validate_connection, KafkaConnection, KafkaSaslConfig, KafkaTlsConfig};
use super::super::{ConfigDuration, Issues};
use super::{
    positive, BatchConfig, EventEncoding, QueueConfig, SinkCommon, SinkFilterConfig, SinkKind,
    SinkKindConfig,
};
use crate::normalize::{Kind, Vendor};

/// How long librdkafka tries to deliver one message before it reports it failed; the sink
/// then sends it again after a backoff (never dropped unless `max_retry_duration` says so).
/// Short enough that a broker outage shows on `/readyz` within a minute, long enough to ride
/// out a leader election.
pub const DEFAULT_KAFKA_DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// librdkafka's and Kafka's own default (`message.max.bytes`, the topic's
/// `max.message.bytes` is about the same): an event larger than this is refused for good.
pub const DEFAULT_KAFKA_MAX_MESSAGE_BYTES: usize = 1_000_000;
/// librdkafka refuses a `message.max.bytes` outside this range.
const MESSAGE_BYTES_RANGE: std::ops::RangeInclusive<usize> = 1000..=1_000_000_000;
/// Kafka's longest topic name.
const MAX_TOPIC_LEN: usize = 249;
/// The longest source id (`ID_RULE`), hence the most `{source}` adds to a topic name.
const MAX_SOURCE_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    pub id: String,
    /// What each message's value is: `siemgate` (the normalized Event as JSON) or `ocsf` (one
    /// OCSF class object).
    #[serde(default)]
    pub encoding: EventEncoding,
    /// With `encoding = "ocsf"`: "1.1.0" (default) or "1.8.0".
    pub ocsf_version: Option<String>,
    /// `host:port` of one or more brokers of the cluster.
    #[serde(default)]
    pub brokers: Vec<String>,
    /// The topic, or a template of it: `{vendor}`, `{source}` and `{kind}` are replaced per
    /// event. Each topic must exist (siemgate creates none).
    pub topic: String,
    /// The message key: `source` (default; one source's events stay in order within a
    /// partition), `event_id` (spread evenly; a compacted topic keeps one message per id), or
    /// `none` (the producer spreads them).
    #[serde(default)]
    pub key: KafkaKey,
    /// `lz4` (default), `zstd`, `gzip` or `none`. Azure Event Hubs' Kafka endpoint refuses
    /// compressed batches: use `none` there.
    #[serde(default)]
    pub compression: KafkaCompression,
    /// The largest message the producer sends (librdkafka `message.max.bytes`): an event over
    /// it goes to the dead letters. Keep it at most the topic's `max.message.bytes`, so that
    /// the brokers never refuse a batch for its size.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// How long one delivery may take before it counts as failed and is sent again.
    #[serde(default = "default_delivery_timeout")]
    pub delivery_timeout: ConfigDuration,
    pub tls: Option<KafkaTlsConfig>,
    pub sasl: Option<KafkaSaslConfig>,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub filter: SinkFilterConfig,
    /// NDJSON file for events the brokers refuse for good (too large), with the reason.
    pub dead_letter_path: Option<PathBuf>,
    /// Give up retrying a batch after this long and dead-letter it; absent: retry forever.
    /// Authorization errors and unknown topics are never given up on: they hold the queue.
    pub max_retry_duration: Option<ConfigDuration>,
}

/// What each message is keyed by.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaKey {
    #[default]
    Source,
    EventId,
    None,
}

/// The producer's `compression.type`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaCompression {
    /// Fast, and read by every Kafka since 0.8.2 and by Redpanda: JSON events shrink several
    /// times for little CPU.
    #[default]
    Lz4,
    Zstd,
    Gzip,
    None,
}

impl KafkaCompression {
    /// librdkafka's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            KafkaCompression::Lz4 => "lz4",
            KafkaCompression::Zstd => "zstd",
            KafkaCompression::Gzip => "gzip",
            KafkaCompression::None => "none",
        }
    }
}

fn default_max_message_bytes() -> usize {
    DEFAULT_KAFKA_MAX_MESSAGE_BYTES
}
fn default_delivery_timeout() -> ConfigDuration {
    ConfigDuration(DEFAULT_KAFKA_DELIVERY_TIMEOUT)
}

/// A validated Kafka sink.
#[derive(Debug, Clone)]
pub struct KafkaSinkSettings {
    pub connection: KafkaConnection,
    pub topic: TopicTemplate,
    pub key: KafkaKey,
    pub compression: KafkaCompression,
    pub max_message_bytes: usize,
    pub delivery_timeout: Duration,
}

/// One piece of a topic template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicPart {
    Text(Box<str>),
    Vendor,
    Source,
    Kind,
}

/// A topic name with per-event parts, parsed once. Every name it renders is a valid topic
/// name: the text is checked here, and vendor names, kinds and source ids only hold
/// `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate {
    parts: Vec<TopicPart>,
}

/// Every kind, for the longest name `{kind}` renders.
const KINDS: [Kind; 5] = [
    Kind::Alert,
    Kind::Vulnerability,
    Kind::Attack,
    Kind::System,
    Kind::Test,
];

const PLACEHOLDERS: [(&str, TopicPart); 3] = [
    ("{vendor}", TopicPart::Vendor),
    ("{source}", TopicPart::Source),
    ("{kind}", TopicPart::Kind),
];

impl TopicTemplate {
    /// Parses `text`; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<TopicTemplate, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let literal = rest.find(['{', '}']).unwrap_or(rest.len());
            if literal > 0 {
                let t = &rest[..literal];
                if let Some(c) = t.chars().find(|c| !valid_topic_char(*c)) {
                    return Err(format!(
                        "{c:?} cannot be in a Kafka topic name (A-Z a-z 0-9 . _ - and placeholders)"
                    ));
                }
                parts.push(TopicPart::Text(t.into()));
                rest = &rest[literal..];
                continue;
            }
            let Some((name, part)) = PLACEHOLDERS.iter().find(|(p, _)| rest.starts_with(p)) else {
                let shown = rest.find('}').map_or(rest, |end| &rest[..=end]);
                return Err(format!(
                    "{shown:?} is no known placeholder: use {{vendor}}, {{source}} or {{kind}}"
                ));
            };
            parts.push(part.clone());
            rest = &rest[name.len()..];
        }
        let t = TopicTemplate { parts };
        if t.longest() == 0 {
            return Err("must not be empty".to_owned());
        }
        if let Some(literal) = t.literal() {
            if literal == "." || literal == ".." {
                return Err("must not be . or ..".to_owned());
            }
        }
        if t.longest() > MAX_TOPIC_LEN {
            return Err(format!(
                "may render names of up to {} characters; Kafka takes at most {MAX_TOPIC_LEN} \
                 (a source id is up to {MAX_SOURCE_LEN})",
                t.longest()
            ));
        }
        Ok(t)
    }

    /// The topic when it has no placeholder.
    pub fn literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [TopicPart::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// The longest name it can render.
    fn longest(&self) -> usize {
        let vendor = Vendor::names().map(str::len).max().unwrap_or(0);
        let kind = KINDS.iter().map(|k| k.as_str().len()).max().unwrap_or(0);
        self.parts
            .iter()
            .map(|p| match p {
                TopicPart::Text(t) => t.len(),
                TopicPart::Vendor => vendor,
                TopicPart::Source => MAX_SOURCE_LEN,
                TopicPart::Kind => kind,
            })
            .sum()
    }

    /// Writes the topic of an event of `vendor`, `source` and `kind` into `out` (cleared).
    pub fn render_into(&self, vendor: &str, source: &str, kind: &str, out: &mut String) {
        out.clear();
        for part in &self.parts {
            out.push_str(match part {
                TopicPart::Text(t) => t,
                TopicPart::Vendor => vendor,
                TopicPart::Source => source,
                TopicPart::Kind => kind,
            });
        }
    }
}

fn valid_topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

impl SinkKindConfig for KafkaSinkConfig {
    fn type_name(&self) -> &'static str {
        "kafka"
    }

    fn common(&self) -> SinkCommon<'_> {
        common_keys!(self)
    }

    fn validate(&self, path: &str, issues: &mut Issues) -> Option<SinkKind> {
        validate(self, path, issues)
    }
}

fn validate(c: &KafkaSinkConfig, path: &str, issues: &mut Issues) -> Option<SinkKind> {
    if !cfg!(feature = "kafka") {
        issues.push(
            format!("{path}.type"),
            "this siemgate was built without Kafka support (cargo feature `kafka`)",
        );
    }
    let connection = validate_connection(&c.brokers, c.tls.as_ref(), c.sasl.as_ref(), path, issues);
    let topic = match TopicTemplate::parse(&c.topic) {
        Ok(t) => Some(t),
        Err(m) => {
            issues.push(format!("{path}.topic"), m);
            None
        }
    };
    if !MESSAGE_BYTES_RANGE.contains(&c.max_message_bytes) {
        issues.push(
            format!("{path}.max_message_bytes"),
            format!(
                "must be from {} to {} (what librdkafka takes)",
                MESSAGE_BYTES_RANGE.start(),
                MESSAGE_BYTES_RANGE.end()
            ),
        );
    }
    positive(
        c.delivery_timeout,
        format!("{path}.delivery_timeout"),
        issues,
    );
    #[cfg(feature = "kafka")]
    {
        Some(SinkKind::Kafka(KafkaSinkSettings {
            connection: connection?,
            topic: topic?,
            key: c.key,
            compression: c.compression,
            max_message_bytes: c.max_message_bytes,
            delivery_timeout: c.delivery_timeout.0,
        }))
    }
    #[cfg(not(feature = "kafka"))]
    {
        let _ = (connection, topic);
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn render(t: &str, vendor: &str, source: &str, kind: &str) -> String {
        let mut out = String::from("stale");
        TopicTemplate::parse(t)
            .unwrap()
            .render_into(vendor, source, kind, &mut out);
        out
    }

    #[test]
    fn topic_templates_render_vendor_source_and_kind() {
        assert_eq!(
            render("siem.{vendor}.{source}-{kind}", "wallarm", "W-eu", "attack"),
            "siem.wallarm.W-eu-attack"
        );
        assert_eq!(render("alerts", "generic", "s", "alert"), "alerts");
        assert_eq!(
            TopicTemplate::parse("alerts").unwrap().literal(),
            Some("alerts")
        );
        assert_eq!(TopicTemplate::parse("a-{kind}").unwrap().literal(), None);
    }

    #[test]
    fn topic_templates_refuse_what_kafka_refuses_and_unknown_placeholders() {
        for (bad, why) in [
            ("", "empty"),
            ("a/b", "'/'"),
            ("a b", "' '"),
            ("x-{vendr}", "no known placeholder"),
            ("x-{severity}", "no known placeholder"),
            ("x}", "no known placeholder"),
            ("..", ". or .."),
            (&"x".repeat(250), "at most 249"),
        ] {
            let e = TopicTemplate::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        // 185 characters of text and a source id of up to 64: exactly 249.
        assert!(TopicTemplate::parse(&format!("{}{{source}}", "x".repeat(185))).is_ok());
        assert!(TopicTemplate::parse(&format!("{}{{source}}", "x".repeat(186))).is_err());
    }
}
