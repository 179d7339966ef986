//! The generic HTTP-out sink: the same knobs Wallarm and Coralogix give their own webhook
//! senders (method, extra headers, a body template, timeouts, TLS), plus an HMAC-SHA256
//! signature of the body that a siemgate `hmac_sha256` source verifies.
//!
//! The body is rendered at the edge like every other encoding: the queue holds each event's
//! request body (`event`, `template`) or NDJSON line (`ndjson`), so a retry resends the same
//! bytes with the same signature input.

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use http::header::{HeaderValue, CONTENT_TYPE, USER_AGENT};
use http::{Request, StatusCode};
use http_body_util::Full;
use sha2::Sha256;

use super::http_client::HttpClient;
use super::retry::SendError;
use super::sent::{Partial, Sent};
use super::transport::Transport;
use super::{EncodeError, Encoder};
use crate::config::{
    Field, HttpBodySettings, HttpSettings, Segment, SignatureEncodingConfig, SignatureSettings,
    Template,
};
use crate::normalize::ocsf::{OcsfEvent, OcsfVersion};
use crate::normalize::Event;

const USER_AGENT_VALUE: &str = concat!("siemgate/", env!("CARGO_PKG_VERSION"));

/// Renders `template` for `event`: its text as written, its fields JSON-escaped.
fn render(template: &Template, event: &Event<'_>, out: &mut BytesMut) -> Result<(), EncodeError> {
    for seg in template.segments() {
        match seg {
            Segment::Text(t) => out.extend_from_slice(t.as_bytes()),
            Segment::Field(f) => write_field(*f, event, out)?,
        }
    }
    Ok(())
}

/// Appends `s` JSON-string-escaped, without quotes (the template supplies them).
fn escape_json(s: &str, out: &mut BytesMut) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(b"\\u00");
                out.put_u8(HEX[usize::from(b >> 4)]);
                out.put_u8(HEX[usize::from(b & 0xf)]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

fn write_opt(v: Option<&str>, out: &mut BytesMut) {
    if let Some(v) = v {
        escape_json(v, out);
    }
}

fn write_field(field: Field, e: &Event<'_>, out: &mut BytesMut) -> Result<(), EncodeError> {
    let mut ts = [0u8; 24];
    match field {
        Field::Event => crate::normalize::write::event(e, out),
        Field::Raw => crate::normalize::write::as_sent(&e.raw, out),
        Field::Id => {
            let _ = std::fmt::Write::write_fmt(&mut EscapeWriter(out), format_args!("{}", e.id));
        }
        Field::Time => escape_json(e.time.rfc3339(&mut ts), out),
        Field::ReceivedAt => escape_json(e.received_at.rfc3339(&mut ts), out),
        Field::Vendor => escape_json(e.vendor.as_str(), out),
        Field::Product => escape_json(e.product, out),
        Field::Source => escape_json(e.source, out),
        Field::Kind => escape_json(e.kind.as_str(), out),
        Field::Status => escape_json(e.status.as_str(), out),
        Field::Severity => escape_json(e.severity.as_str(), out),
        Field::SeverityId => {
            let _ = std::io::Write::write_fmt(
                &mut out.writer(),
                format_args!("{}", e.severity.ocsf_id()),
            );
        }
        Field::VendorSeverity => write_opt(e.vendor_severity.as_deref(), out),
        Field::Title => write_opt(e.title.as_deref(), out),
        Field::Description => write_opt(e.description.as_deref(), out),
        Field::Url => write_opt(e.url.as_deref(), out),
        Field::ResourceId => write_opt(e.resource.id.as_deref(), out),
        Field::ResourceName => write_opt(e.resource.name.as_deref(), out),
        Field::ResourceType => write_opt(e.resource.kind.as_deref(), out),
        Field::ResourceRegion => write_opt(e.resource.region.as_deref(), out),
        Field::ResourceAccountId => write_opt(e.resource.account_id.as_deref(), out),
        Field::ResourceAccountName => write_opt(e.resource.account_name.as_deref(), out),
        Field::ResourceCloud => write_opt(e.resource.cloud.as_deref(), out),
        Field::SrcIp => write_opt(e.network.src_ip.as_deref(), out),
        Field::SrcPort => {
            if let Some(p) = e.network.src_port {
                let _ = std::io::Write::write_fmt(&mut out.writer(), format_args!("{p}"));
            }
        }
        Field::Domain => write_opt(e.network.domain.as_deref(), out),
        Field::Path => write_opt(e.network.path.as_deref(), out),
        Field::Method => write_opt(e.network.method.as_deref(), out),
        Field::Disposition => write_opt(e.disposition.map(|d| d.as_str()), out),
        Field::Remediation => write_opt(e.remediation.as_deref(), out),
        Field::StatusDetail => write_opt(e.status_detail.as_deref(), out),
        Field::VendorCloud => write_opt(e.vendor_cloud.as_deref(), out),
        Field::PolicyId => write_opt(e.finding.policy_id.as_deref(), out),
        Field::PolicyName => write_opt(e.finding.policy_name.as_deref(), out),
        Field::PolicyType => write_opt(e.finding.policy_type.as_deref(), out),
        Field::Rule => write_opt(e.finding.rule.as_deref(), out),
        Field::FindingType => write_opt(e.finding.type_code.as_deref(), out),
        Field::FirstSeen => {
            if let Some(t) = e.finding.first_seen {
                escape_json(t.rfc3339(&mut ts), out);
            }
        }
        Field::LastSeen => {
            if let Some(t) = e.finding.last_seen {
                escape_json(t.rfc3339(&mut ts), out);
            }
        }
    }
    Ok(())
}

/// Formats `Display` values (the event id) straight into escaped output.
struct EscapeWriter<'a>(&'a mut BytesMut);

impl std::fmt::Write for EscapeWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        escape_json(s, self.0);
        Ok(())
    }
}

/// What one queued item of an HTTP sink is.
#[derive(Debug, Clone)]
pub enum HttpEncoder {
    /// One request body: the Event JSON.
    Event,
    /// One NDJSON line; a batch of them is one request.
    Ndjson,
    /// One request body: the rendered template.
    Template(Template),
    /// One request body: the OCSF object.
    OcsfEvent(OcsfVersion),
    /// One OCSF object per line; a batch of them is one request.
    OcsfNdjson(OcsfVersion),
}

impl HttpEncoder {
    pub fn new(settings: &HttpSettings) -> HttpEncoder {
        match &settings.body {
            HttpBodySettings::Event => HttpEncoder::Event,
            HttpBodySettings::Ndjson => HttpEncoder::Ndjson,
            HttpBodySettings::Template(t) => HttpEncoder::Template(t.clone()),
        }
    }

    /// With `encoding = "ocsf"` (validation allows it only for `event` and `ndjson` bodies).
    pub fn with_ocsf(self, ocsf: Option<OcsfVersion>) -> HttpEncoder {
        match (self, ocsf) {
            (HttpEncoder::Event, Some(v)) => HttpEncoder::OcsfEvent(v),
            (HttpEncoder::Ndjson, Some(v)) => HttpEncoder::OcsfNdjson(v),
            (e, _) => e,
        }
    }
}

impl Encoder for HttpEncoder {
    fn encode(&self, event: &Event<'_>, out: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            HttpEncoder::Event => crate::normalize::write::event(event, out),
            HttpEncoder::Ndjson => super::Ndjson.encode(event, out)?,
            HttpEncoder::Template(t) => render(t, event, out)?,
            HttpEncoder::OcsfEvent(v) => {
                serde_json::to_writer(out.writer(), &OcsfEvent::new(event, *v))?;
            }
            HttpEncoder::OcsfNdjson(v) => super::OcsfNdjson(*v).encode(event, out)?,
        }
        Ok(())
    }
}

pub struct HttpSink {
    client: HttpClient,
    method: http::Method,
    path: String,
    batched: bool,
    content_type: HeaderValue,
    headers: Vec<(http::HeaderName, HeaderValue)>,
    signature: Option<Signer>,
    body: Vec<u8>,
}

struct Signer {
    header: http::HeaderName,
    key: Hmac<Sha256>,
    encoding: SignatureEncodingConfig,
    prefix: String,
}

impl Signer {
    fn new(s: &SignatureSettings) -> Option<Signer> {
        Some(Signer {
            header: s.header.clone(),
            key: Hmac::<Sha256>::new_from_slice(s.secret.expose().as_bytes()).ok()?,
            encoding: s.encoding,
            prefix: s.prefix.clone(),
        })
    }

    fn sign(&self, body: &[u8]) -> Option<HeaderValue> {
        let mut mac = self.key.clone();
        mac.update(body);
        let tag = mac.finalize().into_bytes();
        let encoded = match self.encoding {
            SignatureEncodingConfig::Hex => hex::encode(tag),
            SignatureEncodingConfig::Base64 => {
                base64::engine::general_purpose::STANDARD.encode(tag)
            }
        };
        HeaderValue::from_str(&format!("{}{encoded}", self.prefix)).ok()
    }
}

impl HttpSink {
    pub fn new(settings: &HttpSettings) -> HttpSink {
        HttpSink {
            client: HttpClient::new(
                settings.endpoint.clone(),
                settings.tls.as_ref(),
                settings.connect_timeout,
                settings.request_timeout,
            ),
            method: settings.method.clone(),
            path: settings.endpoint.full_path(""),
            batched: matches!(settings.body, HttpBodySettings::Ndjson),
            content_type: settings.content_type.clone(),
            headers: settings.headers.clone(),
            signature: settings.signature.as_ref().and_then(Signer::new),
            body: Vec::new(),
        }
    }

    /// Sends one body and classifies the answer.
    async fn post(&mut self, body: Bytes) -> Result<(), Posted> {
        let mut req = Request::new(Full::new(body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.path.parse().unwrap_or_default();
        let h = req.headers_mut();
        h.insert(CONTENT_TYPE, self.content_type.clone());
        h.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        // Configured headers come last, so they can replace the defaults above.
        for (k, v) in &self.headers {
            h.insert(k.clone(), v.clone());
        }
        if let Some(signer) = &self.signature {
            if let Some(v) = signer.sign(&body) {
                h.insert(signer.header.clone(), v);
            }
        }
        let reply = self
            .client
            .send(req)
            .await
            .map_err(|e| Posted::Failed(SendError::from(e)))?;
        let status = reply.status;
        if status.is_success() {
            return Ok(());
        }
        let reason = format!("receiver answered {status}");
        if let Some(retry) = reply.retryable(&reason) {
            return Err(Posted::Failed(retry));
        }
        if status.is_redirection()
            || status == StatusCode::UNAUTHORIZED
            || status == StatusCode::FORBIDDEN
            || status == StatusCode::NOT_FOUND
        {
            return Err(Posted::Failed(SendError::Config(reason)));
        }
        Err(Posted::Refused(reason))
    }
}

/// How one request ended, when it did not deliver.
enum Posted {
    /// Any other 4xx: the receiver will never take this body as it is.
    Refused(String),
    Failed(SendError),
}

impl Transport for HttpSink {
    /// `ndjson`: the batch as one request, delivered or refused whole. `event` and `template`:
    /// one request per event, in order; a refused event does not stop the ones after it, and
    /// a failure stops the call with what went through reported.
    async fn send(&mut self, batch: &[Bytes]) -> Result<Sent, SendError> {
        if self.batched {
            self.body.clear();
            for item in batch {
                self.body.extend_from_slice(item);
            }
            let body = Bytes::copy_from_slice(&self.body);
            return match self.post(body).await {
                Ok(()) => Ok(Sent::Delivered(batch.len())),
                Err(Posted::Refused(reason)) => Ok(Sent::Partial(Partial {
                    refused: (0..batch.len()).map(|i| (i, reason.clone())).collect(),
                    ..Partial::default()
                })),
                Err(Posted::Failed(e)) => Err(e),
            };
        }
        let mut refused = Vec::new();
        for (i, item) in batch.iter().enumerate() {
            match self.post(item.clone()).await {
                Ok(()) => {}
                Err(Posted::Refused(reason)) => refused.push((i, reason)),
                Err(Posted::Failed(e)) if refused.is_empty() && i == 0 => return Err(e),
                // Report what went through; the next call meets the error again and backs off.
                Err(Posted::Failed(_)) if refused.is_empty() => return Ok(Sent::Delivered(i)),
                Err(Posted::Failed(e)) => {
                    return Ok(Sent::Partial(Partial {
                        refused,
                        retry: (i..batch.len()).collect(),
                        retry_after: e.retry_after(),
                        retry_reason: Some(e.to_string()),
                    }))
                }
            }
        }
        if refused.is_empty() {
            Ok(Sent::Delivered(batch.len()))
        } else {
            Ok(Sent::Partial(Partial {
                refused,
                ..Partial::default()
            }))
        }
    }

    fn last_status(&self) -> Option<u16> {
        self.client.last_status()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::normalize::{Severity, Timestamp};
    use crate::vendors::Vendor;

    #[test]
    fn ocsf_bodies_are_the_ocsf_object_alone_or_one_per_line() {
        let raw: &serde_json::value::RawValue = serde_json::from_str("{}").unwrap();
        let mut e = Event::new(Vendor::Generic, "g", raw, Timestamp(5));
        e.severity = Severity::High;
        let encode = |enc: &HttpEncoder| {
            let mut out = BytesMut::new();
            enc.encode(&e, &mut out).unwrap();
            String::from_utf8(out.to_vec()).unwrap()
        };
        let body = encode(&HttpEncoder::Event.with_ocsf(Some(OcsfVersion::V1_8_0)));
        assert!(!body.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (v["class_uid"].as_u64(), v["severity_id"].as_u64()),
            (Some(2004), Some(4))
        );
        assert_eq!(v["metadata"]["version"], "1.8.0");
        let line = encode(&HttpEncoder::Ndjson.with_ocsf(Some(OcsfVersion::V1_1_0)));
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["metadata"]["version"], "1.1.0");
        // Without OCSF the body stays the Event.
        let plain = encode(&HttpEncoder::Event.with_ocsf(None));
        assert!(plain.contains("\"raw\":{}"), "{plain}");
    }

    #[test]
    fn templates_escape_strings_and_embed_json() {
        let raw: &serde_json::value::RawValue = serde_json::from_str("{\"a\":\n1}").unwrap();
        let mut e = Event::new(Vendor::Wallarm, "w", raw, Timestamp(0));
        e.title = Some("say \"hi\"\\\n\u{1}".into());
        e.severity = Severity::High;
        let t = Template::parse(
            r#"{"t":"{{title}}","s":"{{ severity }}","r":{{raw}},"p":"{{network.src_port}}"}"#,
        )
        .unwrap();
        let mut out = BytesMut::new();
        render(&t, &e, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["t"], "say \"hi\"\\\n\u{1}");
        assert_eq!(v["s"], "high");
        assert_eq!(v["r"]["a"], 1);
        assert_eq!(v["p"], "");
    }

    #[test]
    fn templates_name_the_finding_disposition_and_vendor_context() {
        use crate::normalize::Disposition;
        let raw: &serde_json::value::RawValue = serde_json::from_str("{}").unwrap();
        let mut e = Event::new(Vendor::PrismaCloud, "p", raw, Timestamp(0));
        e.finding.policy_id = Some("pid".into());
        e.finding.policy_name = Some("pname".into());
        e.finding.policy_type = Some("network".into());
        e.finding.rule = Some("rule \"1\"".into());
        e.finding.type_code = Some("sqli".into());
        e.finding.first_seen = Some(Timestamp(1_000));
        e.remediation = Some("fix it".into());
        e.status_detail = Some("USER_REOPENED".into());
        e.disposition = Some(Disposition::Detected);
        e.vendor_cloud = Some("EU".into());
        let t = Template::parse(
            r#"{"a":"{{finding.policy.id}}","b":"{{finding.policy.name}}","c":"{{finding.policy.type}}","d":"{{finding.rule}}","e":"{{finding.type}}","f":"{{finding.first_seen}}","g":"{{finding.last_seen}}","h":"{{remediation}}","i":"{{status_detail}}","j":"{{disposition}}","k":"{{vendor_cloud}}"}"#,
        )
        .unwrap();
        let mut out = BytesMut::new();
        render(&t, &e, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": "pid", "b": "pname", "c": "network", "d": "rule \"1\"",
                "e": "sqli", "f": "1970-01-01T00:00:01.000Z", "g": "", "h": "fix it",
                "i": "USER_REOPENED", "j": "detected", "k": "EU"})
        );
    }

    #[test]
    fn refuses_unknown_and_unclosed_placeholders() {
        let e = Template::parse("{{titel}}").unwrap_err();
        assert!(e.contains("unknown placeholder {{titel}}"), "{e}");
        assert!(Template::parse("x {{title")
            .unwrap_err()
            .contains("never closed"));
        assert!(Template::parse("no placeholders").is_ok());
    }
}
