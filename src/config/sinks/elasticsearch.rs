//! The `type = "elasticsearch"` sink's keys (Elasticsearch 7/8 and OpenSearch 1/2 `_bulk`),
//! the runtime settings `validate()` turns them into, and the index name template
//! (`{vendor}`, `{source}`, `%Y.%m.%d` of the event time).

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use bytes::{BufMut, BytesMut};
use http::HeaderValue;
use serde::Deserialize;

use super::super::{ConfigDuration, Issues, SecretRef};
use super::{
    endpoint_and_tls, positive, BatchConfig, ClientTlsConfig, Endpoint, EventEncoding, QueueConfig,
    SinkCommon, SinkFilterConfig, SinkKind, SinkKindConfig,
};
use crate::normalize::Event;
use crate::tls::ClientTls;

/// Elastic suggests bulk requests of 5 to 15 MB; 5 MB stays under the 10 MiB body limit of
/// the smallest managed OpenSearch instances.
pub const DEFAULT_ES_MAX_REQUEST_BYTES: usize = 5_000_000;
/// A bulk request of a few MB is indexed in well under this; a stalled node is noticed.
pub const DEFAULT_ES_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_ES_INDEX: &str = "siemgate-events";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchSinkConfig {
    pub id: String,
    /// What each document is: `siemgate` (the normalized Event) or `ocsf` (one OCSF class
    /// object); either way with `@timestamp` set to the event time.
    #[serde(default)]
    pub encoding: EventEncoding,
    /// With `encoding = "ocsf"`: "1.1.0" (default) or "1.8.0".
    pub ocsf_version: Option<String>,
    /// The cluster's base URL; the sink posts to `<url>/_bulk`.
    pub url: String,
    /// Index or data stream name: `{vendor}`, `{source}` and `%Y`, `%m`, `%d` (of the event
    /// time, UTC) are replaced per event.
    #[serde(default = "default_index")]
    pub index: String,
    /// `create` (default; the only one data streams accept, and a resent event answers 409
    /// instead of being indexed twice) or `index` (replaces a document with the same id).
    #[serde(default)]
    pub op_type: EsOpType,
    /// An ingest pipeline every document goes through.
    pub pipeline: Option<String>,
    pub username: Option<String>,
    pub password: Option<SecretRef>,
    /// The `encoded` value Elasticsearch returns when it creates an API key.
    pub api_key: Option<SecretRef>,
    pub bearer_token: Option<SecretRef>,
    pub tls: Option<ClientTlsConfig>,
    #[serde(default = "super::default_true")]
    pub gzip: bool,
    /// Uncompressed bytes per `_bulk` request; a batch above it goes in several requests,
    /// split between events.
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
    /// NDJSON file for events the destination refuses for good (mapping errors), with the
    /// reason and time.
    pub dead_letter_path: Option<PathBuf>,
    /// Give up retrying a batch after this long and dead-letter it; absent: retry forever.
    pub max_retry_duration: Option<ConfigDuration>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EsOpType {
    #[default]
    Create,
    Index,
}

impl EsOpType {
    pub fn as_str(self) -> &'static str {
        match self {
            EsOpType::Create => "create",
            EsOpType::Index => "index",
        }
    }
}

fn default_index() -> String {
    DEFAULT_ES_INDEX.to_owned()
}
fn default_max_request_bytes() -> usize {
    DEFAULT_ES_MAX_REQUEST_BYTES
}
fn default_request_timeout() -> ConfigDuration {
    ConfigDuration(DEFAULT_ES_REQUEST_TIMEOUT)
}

pub struct ElasticsearchSettings {
    pub endpoint: Endpoint,
    pub tls: Option<ClientTls>,
    pub index: IndexTemplate,
    pub op_type: EsOpType,
    pub pipeline: Option<String>,
    /// The `Authorization` header value, marked sensitive (never logged).
    pub authorization: Option<HeaderValue>,
    pub gzip: bool,
    pub max_request_bytes: usize,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

/// One piece of an index name template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(Box<str>),
    Vendor,
    Source,
    Year,
    Month,
    Day,
}

/// An index name with per-event parts, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexTemplate {
    parts: Vec<Part>,
}

/// Characters Elasticsearch and OpenSearch refuse in index names.
const FORBIDDEN: &[char] = &['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':'];

impl IndexTemplate {
    /// Parses `text`; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<IndexTemplate, String> {
        if text.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if text.len() > 200 {
            return Err("must be at most 200 bytes (index names are at most 255)".to_owned());
        }
        if text.starts_with(['-', '_', '+']) {
            return Err("must not start with -, _ or + (Elasticsearch refuses it)".to_owned());
        }
        let mut parts = Vec::new();
        let mut text_part = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            let (part, len) = if rest.starts_with("{vendor}") {
                (Some(Part::Vendor), 8)
            } else if rest.starts_with("{source}") {
                (Some(Part::Source), 8)
            } else if rest.starts_with("%Y") {
                (Some(Part::Year), 2)
            } else if rest.starts_with("%m") {
                (Some(Part::Month), 2)
            } else if rest.starts_with("%d") {
                (Some(Part::Day), 2)
            } else if c == '{' || c == '}' || c == '%' {
                return Err(format!(
                    "{c:?} starts no known placeholder: use {{vendor}}, {{source}}, %Y, %m or %d"
                ));
            } else if c.is_uppercase() || FORBIDDEN.contains(&c) || c.is_control() {
                return Err(format!(
                    "{c:?} is not allowed in an index name (lowercase, none of \\ / * ? \" < > | , # : or spaces)"
                ));
            } else {
                text_part.push(c);
                rest = &rest[c.len_utf8()..];
                continue;
            };
            if !text_part.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text_part).into()));
            }
            parts.extend(part);
            rest = &rest[len..];
        }
        if !text_part.is_empty() {
            parts.push(Part::Text(text_part.into()));
        }
        if parts == [Part::Text(".".into())] || parts == [Part::Text("..".into())] {
            return Err("must not be . or ..".to_owned());
        }
        Ok(IndexTemplate { parts })
    }

    /// Appends the index name of `event` (source ids are lowercased: index names must be).
    pub fn render(&self, event: &Event<'_>, out: &mut BytesMut) {
        let mut ts = [0u8; 24];
        let date = event.time.rfc3339(&mut ts).as_bytes();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.extend_from_slice(t.as_bytes()),
                Part::Vendor => out.extend_from_slice(event.vendor.as_str().as_bytes()),
                Part::Source => {
                    for b in event.source.bytes() {
                        out.put_u8(b.to_ascii_lowercase());
                    }
                }
                Part::Year => out.extend_from_slice(date.get(..4).unwrap_or(b"0000")),
                Part::Month => out.extend_from_slice(date.get(5..7).unwrap_or(b"00")),
                Part::Day => out.extend_from_slice(date.get(8..10).unwrap_or(b"00")),
            }
        }
    }
}

impl SinkKindConfig for ElasticsearchSinkConfig {
    fn type_name(&self) -> &'static str {
        "elasticsearch"
    }

    fn common(&self) -> SinkCommon<'_> {
        common_keys!(self)
    }

    fn validate(&self, path: &str, issues: &mut Issues) -> Option<SinkKind> {
        validate(self, path, issues)
    }
}

fn validate(c: &ElasticsearchSinkConfig, path: &str, issues: &mut Issues) -> Option<SinkKind> {
    let target = endpoint_and_tls(&c.url, c.tls.as_ref(), path, issues);
    let index = match IndexTemplate::parse(&c.index) {
        Ok(t) => Some(t),
        Err(m) => {
            issues.push(format!("{path}.index"), m);
            None
        }
    };
    if let Some(p) = &c.pipeline {
        if p.is_empty()
            || !p
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'&' && b != b'#')
        {
            issues.push(
                format!("{path}.pipeline"),
                "must be a pipeline name (printable ASCII without & or #)",
            );
        }
    }
    let mut resolve = |key: &str, r: &SecretRef| match r.resolve() {
        Ok(s) => Some(s),
        Err(m) => {
            issues.push(format!("{path}.{key}"), m);
            None
        }
    };
    let authorization = match (&c.username, &c.password, &c.api_key, &c.bearer_token) {
        (None, None, None, None) => Some(None),
        (Some(user), Some(pass), None, None) => resolve("password", pass).map(|p| {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", p.expose()));
            Some(format!("Basic {token}"))
        }),
        (None, None, Some(key), None) => {
            resolve("api_key", key).map(|k| Some(format!("ApiKey {}", k.expose())))
        }
        (None, None, None, Some(token)) => {
            resolve("bearer_token", token).map(|t| Some(format!("Bearer {}", t.expose())))
        }
        (Some(_), None, None, None) | (None, Some(_), None, None) => {
            issues.push(
                format!("{path}.username"),
                "username and password go together",
            );
            None
        }
        _ => {
            issues.push(
                format!("{path}.api_key"),
                "use one of username + password, api_key or bearer_token",
            );
            None
        }
    };
    let authorization = match authorization {
        Some(Some(text)) => match HeaderValue::from_str(&text) {
            Ok(mut v) => {
                v.set_sensitive(true);
                Some(Some(v))
            }
            Err(_) => {
                // The value is not repeated: it is a secret.
                issues.push(
                    format!("{path}.username"),
                    "the credentials hold characters an HTTP header cannot carry",
                );
                None
            }
        },
        other => other.map(|_| None),
    };
    if c.max_request_bytes < 1024 {
        issues.push(format!("{path}.max_request_bytes"), "must be at least 1024");
    }
    positive(c.request_timeout, format!("{path}.request_timeout"), issues);
    positive(c.connect_timeout, format!("{path}.connect_timeout"), issues);
    let (endpoint, tls) = target?;
    Some(SinkKind::Elasticsearch(ElasticsearchSettings {
        endpoint,
        tls,
        index: index?,
        op_type: c.op_type,
        pipeline: c.pipeline.clone(),
        authorization: authorization?,
        gzip: c.gzip,
        max_request_bytes: c.max_request_bytes,
        request_timeout: c.request_timeout.0,
        connect_timeout: c.connect_timeout.0,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::normalize::Timestamp;
    use crate::vendors::Vendor;

    #[test]
    fn index_templates_render_vendor_source_and_the_event_date() {
        let raw: &serde_json::value::RawValue = serde_json::from_str("{}").unwrap();
        let mut e = Event::new(Vendor::PrismaCloud, "Prisma-EU", raw, Timestamp(0));
        e.time = Timestamp::parse_rfc3339("2026-12-02T23:59:59Z").unwrap();
        let t = IndexTemplate::parse("siem-{vendor}-{source}-%Y.%m.%d").unwrap();
        let mut out = BytesMut::new();
        t.render(&e, &mut out);
        assert_eq!(&out[..], b"siem-prisma_cloud-prisma-eu-2026.12.02");
    }

    #[test]
    fn index_templates_refuse_what_elasticsearch_refuses() {
        for (bad, why) in [
            ("", "empty"),
            ("Logs", "'L'"),
            ("a b", "' '"),
            ("_x", "must not start"),
            ("x-{vendr}", "no known placeholder"),
            ("x-%H", "no known placeholder"),
            ("..", ". or .."),
        ] {
            let e = IndexTemplate::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(IndexTemplate::parse("logs-siemgate-default").is_ok());
    }
}
