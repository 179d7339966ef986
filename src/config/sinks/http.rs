//! `type = "http"`: the generic webhook out (method, headers, a body template, an HMAC
//! signature, TLS), and the body template language it renders. Its keys, its runtime settings
//! and their validation.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use serde::Deserialize;

use super::super::{ConfigDuration, Issues, SecretRef};
use super::{
    endpoint_and_tls, positive, BatchConfig, ClientTlsConfig, Endpoint, EventEncoding, QueueConfig,
    SinkCommon, SinkFilterConfig, SinkKind, SinkKindConfig,
};
use crate::secret::Secret;
use crate::tls::ClientTls;

/// HTTP out: Wallarm's and Coralogix's own webhook senders use 15 s request and 20 s connect
/// timeouts; siemgate defaults to the same so a receiver tuned for them behaves the same.
pub const DEFAULT_HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
pub const DEFAULT_HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Siemgate-Signature";

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
pub enum HttpBody {
    /// One request per event, the Event JSON.
    #[default]
    Event,
    /// One request per batch, one Event JSON per line.
    Ndjson,
    /// One request per event, the template rendered.
    Template,
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
// The body template language
// ---------------------------------------------------------------------------------------------

/// An Event field a template can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Event,
    Raw,
    Id,
    Time,
    ReceivedAt,
    Vendor,
    Product,
    Source,
    Kind,
    Status,
    Severity,
    SeverityId,
    VendorSeverity,
    Title,
    Description,
    Url,
    ResourceId,
    ResourceName,
    ResourceType,
    ResourceRegion,
    ResourceAccountId,
    ResourceAccountName,
    ResourceCloud,
    SrcIp,
    SrcPort,
    Domain,
    Path,
    Method,
    Disposition,
    Remediation,
    StatusDetail,
    VendorCloud,
    PolicyId,
    PolicyName,
    PolicyType,
    Rule,
    FindingType,
    FirstSeen,
    LastSeen,
}

const FIELDS: [(&str, Field); 39] = [
    ("event", Field::Event),
    ("raw", Field::Raw),
    ("id", Field::Id),
    ("time", Field::Time),
    ("received_at", Field::ReceivedAt),
    ("vendor", Field::Vendor),
    ("product", Field::Product),
    ("source", Field::Source),
    ("kind", Field::Kind),
    ("status", Field::Status),
    ("severity", Field::Severity),
    ("severity_id", Field::SeverityId),
    ("vendor_severity", Field::VendorSeverity),
    ("title", Field::Title),
    ("description", Field::Description),
    ("url", Field::Url),
    ("resource.id", Field::ResourceId),
    ("resource.name", Field::ResourceName),
    ("resource.type", Field::ResourceType),
    ("resource.region", Field::ResourceRegion),
    ("resource.account_id", Field::ResourceAccountId),
    ("resource.account_name", Field::ResourceAccountName),
    ("resource.cloud", Field::ResourceCloud),
    ("network.src_ip", Field::SrcIp),
    ("network.src_port", Field::SrcPort),
    ("network.domain", Field::Domain),
    ("network.path", Field::Path),
    ("network.method", Field::Method),
    ("disposition", Field::Disposition),
    ("remediation", Field::Remediation),
    ("status_detail", Field::StatusDetail),
    ("vendor_cloud", Field::VendorCloud),
    ("finding.policy.id", Field::PolicyId),
    ("finding.policy.name", Field::PolicyName),
    ("finding.policy.type", Field::PolicyType),
    ("finding.rule", Field::Rule),
    ("finding.type", Field::FindingType),
    ("finding.first_seen", Field::FirstSeen),
    ("finding.last_seen", Field::LastSeen),
];

/// A part of a template: text as written, or a field rendered JSON-escaped.
#[derive(Debug, Clone)]
pub enum Segment {
    Text(Box<str>),
    Field(Field),
}

/// A body template: text with `{{field}}` placeholders, parsed once at config load.
#[derive(Debug, Clone)]
pub struct Template {
    segments: Vec<Segment>,
}

impl Template {
    /// Parses a template; an unknown or unclosed placeholder is an error naming it.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut segments = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                segments.push(Segment::Text(rest[..open].into()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| {
                format!(
                    "a placeholder opened at byte {} is never closed with }}}}",
                    text.len() - rest.len() + open
                )
            })?;
            let name = after[..close].trim();
            let field = FIELDS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|&(_, f)| f)
                .ok_or_else(|| {
                    format!(
                        "unknown placeholder {{{{{name}}}}}: expected one of {}",
                        FIELDS
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            segments.push(Segment::Field(field));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Text(rest.into()));
        }
        Ok(Template { segments })
    }

    /// The parts of the template, in order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }
}

impl SinkKindConfig for HttpSinkConfig {
    fn type_name(&self) -> &'static str {
        "http"
    }

    fn common(&self) -> SinkCommon<'_> {
        common_keys!(self)
    }

    fn ocsf_conflict(&self) -> Option<&'static str> {
        (self.body == HttpBody::Template).then_some(
            "\"ocsf\" needs body = \"event\" or \"ndjson\" (a template renders siemgate's \
             own fields)",
        )
    }

    fn validate(&self, path: &str, issues: &mut Issues) -> Option<SinkKind> {
        let h = self;
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
}
