//! The Microsoft Sentinel sink, through the Azure Monitor Logs Ingestion API: the row encoder
//! (one JSON object per event, in the columns a data collection rule's stream declares, built
//! at the edge) and the transport that posts rows as JSON arrays of at most 1 MB with a
//! Microsoft Entra token ([`token`]).
//!
//! How answers are classified ("Logs Ingestion API in Azure Monitor",
//! <https://learn.microsoft.com/azure/azure-monitor/logs/logs-ingestion-api-overview>, and the
//! REST reference "Logs Ingestion - Upload", api-version 2023-01-01:
//! `POST {endpoint}/dataCollectionRules/{ruleId}/streams/{stream}`, body a JSON array,
//! `Content-Encoding: gzip` allowed, 1 MB per call):
//! * 204: every row delivered.
//! * 413: the body was over the limit; the rows per request halve (a row alone over it is
//!   refused for good).
//! * 400: a row does not fit the stream's declaration; the API refuses the whole request and
//!   ingests nothing, so the request is split in halves until each refused row stands alone:
//!   those go to the dead letters with the API's message, the others are delivered once.
//! * 429, 408 and 5xx: retried, honouring `Retry-After`.
//! * 401: the token expired or was revoked: fetched again once and the request resent; a second
//!   401 holds the queue.
//! * 403: the app lacks the role "Monitoring Metrics Publisher" on the DCR: holds the queue and
//!   says so in the log and `/readyz`. 404 (unknown DCR or stream) and other answers hold the
//!   queue too.
//!
//! Sentinel does not de-duplicate, so every row carries the event id (`EventId`) for a KQL
//! `summarize arg_max(TimeGenerated, *) by EventId`.

pub mod token;

use std::io::Write as _;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, USER_AGENT};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use super::http_client::{HttpClient, Reply};
use super::retry::SendError;
use super::sent::{Partial, Sent};
use super::transport::{Probe, Transport};
use super::{EncodeError, Encoder};
use crate::config::SentinelSettings;
use crate::normalize::ocsf::{OcsfEvent, OcsfVersion};
use crate::normalize::{Event, Timestamp};
use token::TokenClient;

const USER_AGENT_VALUE: &str = concat!("siemgate/", env!("CARGO_PKG_VERSION"));
/// The role the app registration needs on the data collection rule.
pub const REQUIRED_ROLE: &str = "Monitoring Metrics Publisher";

/// One event as one row. `siemgate` shape: the columns listed in the README (TimeGenerated,
/// EventId, the Event's fields flattened, and the whole Event as `Event`); `ocsf` shape: the
/// OCSF object's own fields, with `TimeGenerated` and `EventId` in front.
pub struct SentinelEncoder {
    ocsf: Option<OcsfVersion>,
}

impl SentinelEncoder {
    pub fn new(ocsf: Option<OcsfVersion>) -> SentinelEncoder {
        SentinelEncoder { ocsf }
    }
}

struct Time(Timestamp);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 24];
        s.serialize_str(self.0.rfc3339(&mut buf))
    }
}

/// The `siemgate` shape's row.
struct Row<'e, 'a>(&'e Event<'a>);

impl Serialize for Row<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("TimeGenerated", &Time(e.time))?;
        m.serialize_entry("EventId", &e.id)?;
        m.serialize_entry("ReceivedAt", &Time(e.received_at))?;
        m.serialize_entry("Vendor", &e.vendor)?;
        m.serialize_entry("Product", e.product)?;
        m.serialize_entry("Source", e.source)?;
        m.serialize_entry("Kind", &e.kind)?;
        m.serialize_entry("Status", &e.status)?;
        m.serialize_entry("Severity", &e.severity)?;
        m.serialize_entry("SeverityId", &e.severity.ocsf_id())?;
        let text = [
            ("VendorSeverity", &e.vendor_severity),
            ("Title", &e.title),
            ("Description", &e.description),
            ("Url", &e.url),
            ("ResourceId", &e.resource.id),
            ("ResourceName", &e.resource.name),
            ("ResourceType", &e.resource.kind),
            ("ResourceRegion", &e.resource.region),
            ("ResourceAccountId", &e.resource.account_id),
            ("ResourceAccountName", &e.resource.account_name),
            ("ResourceCloud", &e.resource.cloud),
            ("SrcIp", &e.network.src_ip),
            ("Domain", &e.network.domain),
            ("Path", &e.network.path),
            ("Method", &e.network.method),
            ("PolicyId", &e.finding.policy_id),
            ("PolicyName", &e.finding.policy_name),
            ("PolicyType", &e.finding.policy_type),
            ("Rule", &e.finding.rule),
            ("FindingType", &e.finding.type_code),
            ("Remediation", &e.remediation),
            ("StatusDetail", &e.status_detail),
            ("VendorCloud", &e.vendor_cloud),
        ];
        for (column, value) in text {
            if let Some(v) = value {
                m.serialize_entry(column, v.as_ref())?;
            }
        }
        if let Some(p) = e.network.src_port {
            m.serialize_entry("SrcPort", &p)?;
        }
        if let Some(d) = e.disposition {
            m.serialize_entry("Disposition", &d)?;
        }
        if let Some(t) = e.finding.first_seen {
            m.serialize_entry("FirstSeen", &Time(t))?;
        }
        if let Some(t) = e.finding.last_seen {
            m.serialize_entry("LastSeen", &Time(t))?;
        }
        m.serialize_entry("ClassUid", &e.ocsf.class_uid)?;
        m.serialize_entry("Event", e)?;
        m.end()
    }
}

impl Encoder for SentinelEncoder {
    fn encode(&self, event: &Event<'_>, out: &mut BytesMut) -> Result<(), EncodeError> {
        let Some(version) = self.ocsf else {
            return serde_json::to_writer(out.writer(), &Row(event)).map_err(EncodeError::from);
        };
        let mut ts = [0u8; 24];
        out.extend_from_slice(b"{\"TimeGenerated\":\"");
        out.extend_from_slice(event.time.rfc3339(&mut ts).as_bytes());
        out.extend_from_slice(b"\",\"EventId\":");
        serde_json::to_writer(out.writer(), &event.id)?;
        let at = out.len();
        serde_json::to_writer(out.writer(), &OcsfEvent::new(event, version))?;
        // The object's own `{` becomes the comma after `EventId`; it always has fields.
        if out.get(at) == Some(&b'{') {
            out[at] = b',';
        }
        Ok(())
    }
}

/// The error object of an answer: `{"error":{"code":..,"message":..}}`.
#[derive(Deserialize)]
struct ErrorAnswer {
    error: Option<ApiError>,
}

#[derive(Deserialize)]
struct ApiError {
    code: Option<String>,
    message: Option<String>,
}

fn describe(reply: &Reply) -> String {
    let detail = serde_json::from_slice::<ErrorAnswer>(&reply.body)
        .ok()
        .and_then(|a| a.error)
        .map(|e| {
            let message: String = e.message.unwrap_or_default().chars().take(300).collect();
            format!(
                "{}: {message}",
                e.code.unwrap_or_else(|| "error".to_owned())
            )
        });
    match detail {
        Some(d) => format!("Logs Ingestion API answered {}: {d}", reply.status),
        None => format!("Logs Ingestion API answered {}", reply.status),
    }
}

/// What one request of rows came to.
enum Posted {
    Delivered,
    TooLarge,
    /// 400: some row of the request does not fit the stream.
    Refused(String),
}

pub struct SentinelSink {
    sink_id: String,
    client: HttpClient,
    tokens: TokenClient,
    path: String,
    dcr: String,
    stream: String,
    gzip: bool,
    max_request_bytes: usize,
    /// Rows per request; halves on a 413 and grows back on success.
    max_events: usize,
    body: Vec<u8>,
}

impl SentinelSink {
    pub fn new(sink_id: &str, settings: &SentinelSettings) -> SentinelSink {
        SentinelSink {
            sink_id: sink_id.to_owned(),
            client: HttpClient::new(
                settings.endpoint.clone(),
                settings.tls.as_ref(),
                settings.connect_timeout,
                settings.request_timeout,
            ),
            tokens: TokenClient::new(settings),
            path: settings.ingest_path.clone(),
            dcr: settings.dcr_immutable_id.clone(),
            stream: settings.stream.clone(),
            gzip: settings.gzip,
            max_request_bytes: settings.max_request_bytes,
            max_events: usize::MAX,
            body: Vec::new(),
        }
    }

    /// Rows from the front of `rows` that fit one request (at least one).
    fn request_len(&self, rows: &[Bytes]) -> usize {
        // `[`, `]` and a comma between rows.
        let mut bytes = 2;
        let mut n = 0;
        for row in rows.iter().take(self.max_events) {
            let add = row.len() + usize::from(n > 0);
            if n > 0 && bytes + add > self.max_request_bytes {
                break;
            }
            bytes += add;
            n += 1;
        }
        n.max(1).min(rows.len())
    }

    fn body(&mut self, rows: &[Bytes]) -> Bytes {
        self.body.clear();
        let mut json = std::mem::take(&mut self.body);
        json.push(b'[');
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                json.push(b',');
            }
            json.extend_from_slice(row);
        }
        json.push(b']');
        let out = if self.gzip {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            // Writing into a Vec cannot fail.
            let _ = gz.write_all(&json);
            Bytes::from(gz.finish().unwrap_or_default())
        } else {
            Bytes::copy_from_slice(&json)
        };
        self.body = json;
        out
    }

    /// Posts `rows` as one request with a valid token; a 401 fetches a new token once.
    async fn post(&mut self, rows: &[Bytes]) -> Result<Posted, SendError> {
        let body = self.body(rows);
        let mut refreshed = false;
        loop {
            let bearer = self.tokens.bearer().await?;
            let mut req = Request::new(Full::new(body.clone()));
            *req.method_mut() = Method::POST;
            *req.uri_mut() = self.path.parse().unwrap_or_default();
            let h = req.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            h.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
            h.insert(AUTHORIZATION, bearer);
            if self.gzip {
                h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            let reply = self.client.send(req).await.map_err(SendError::from)?;
            let status = reply.status;
            if status.is_success() {
                return Ok(Posted::Delivered);
            }
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                refreshed = true;
                self.tokens.invalidate();
                tracing::info!(sink = %self.sink_id, "ingestion endpoint answered 401; fetching a new token");
                continue;
            }
            return self.classify(&reply);
        }
    }

    fn classify(&self, reply: &Reply) -> Result<Posted, SendError> {
        let reason = describe(reply);
        match reply.status {
            StatusCode::PAYLOAD_TOO_LARGE => Ok(Posted::TooLarge),
            StatusCode::BAD_REQUEST => Ok(Posted::Refused(reason)),
            StatusCode::FORBIDDEN => Err(SendError::Config(format!(
                "{reason} (the app registration needs the role \"{REQUIRED_ROLE}\" on the data collection rule {})",
                self.dcr
            ))),
            StatusCode::NOT_FOUND => Err(SendError::Config(format!(
                "{reason} (no stream {} in data collection rule {} at this endpoint)",
                self.stream, self.dcr
            ))),
            StatusCode::UNAUTHORIZED => Err(SendError::Config(format!(
                "{reason} (refused a freshly fetched token)"
            ))),
            _ => match reply.retryable(&reason) {
                Some(retry) => Err(retry),
                None => Err(SendError::Config(reason)),
            },
        }
    }
}

impl Transport for SentinelSink {
    /// Sends the whole batch, split under `max_request_bytes`, and says per row what became of
    /// it.
    async fn send(&mut self, batch: &[Bytes]) -> Result<Sent, SendError> {
        let mut partial = Partial::default();
        let mut settled_any = false;
        // Ranges of rows still to send; the last one goes next.
        let mut ranges = vec![(0, batch.len())];
        while let Some((lo, hi)) = ranges.pop() {
            let n = self.request_len(&batch[lo..hi]);
            if lo + n < hi {
                ranges.push((lo + n, hi));
            }
            let hi = lo + n;
            match self.post(&batch[lo..hi]).await {
                Ok(Posted::Delivered) => {
                    settled_any = true;
                    self.max_events = self.max_events.saturating_mul(2);
                }
                Ok(Posted::TooLarge) if n > 1 => {
                    self.max_events = n / 2;
                    tracing::warn!(sink = %self.sink_id, rows = n, now = self.max_events, "Logs Ingestion API answered 413; halving the rows per request");
                    ranges.push((lo, hi));
                }
                Ok(Posted::TooLarge) => {
                    settled_any = true;
                    partial.refused.push((
                        lo,
                        "413: the row alone is over the API's 1 MB limit".to_owned(),
                    ));
                }
                Ok(Posted::Refused(_)) if n > 1 => {
                    let mid = lo + n / 2;
                    ranges.push((mid, hi));
                    ranges.push((lo, mid));
                }
                Ok(Posted::Refused(reason)) => {
                    settled_any = true;
                    partial.refused.push((lo, reason));
                }
                Err(e) if !settled_any => return Err(e),
                Err(e) => {
                    // What went before is settled; the rest goes again.
                    if let SendError::Retryable { retry_after, .. } = &e {
                        partial.retry_after = *retry_after;
                    }
                    partial.retry_reason = Some(e.to_string());
                    partial.retry.extend(lo..hi);
                    for (l, h) in ranges.drain(..) {
                        partial.retry.extend(l..h);
                    }
                    break;
                }
            }
        }
        partial.retry.sort_unstable();
        partial.refused.sort_unstable_by_key(|(i, _)| *i);
        if partial.refused.is_empty() && partial.retry.is_empty() {
            return Ok(Sent::Delivered(batch.len()));
        }
        Ok(Sent::Partial(partial))
    }

    /// Gets a token before the first batch, so wrong client credentials show on `/readyz` at
    /// start. Whether the app may write to the DCR only an ingestion call tells, so a token
    /// alone never makes a failing sink ready.
    async fn probe(&mut self) -> Result<Probe, SendError> {
        self.tokens.bearer().await.map(|_| Probe::Unchecked)
    }

    fn last_status(&self) -> Option<u16> {
        self.client
            .last_status()
            .or_else(|| self.tokens.last_status().map(|s| s.as_u16()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::normalize::{EventId, Severity};
    use crate::vendors::Vendor;
    use std::borrow::Cow;

    fn row(enc: &SentinelEncoder, e: &Event<'_>) -> serde_json::Value {
        let mut out = BytesMut::new();
        enc.encode(e, &mut out).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn siemgate_rows_flatten_the_event_and_keep_it_whole() {
        let raw: &serde_json::value::RawValue =
            serde_json::from_str("{\"alertId\":\"P-1\",\n\"x\":1}").unwrap();
        let mut e = Event::new(Vendor::PrismaCloud, "prisma", raw, Timestamp(1_000));
        e.id = EventId::Vendor(Cow::Borrowed("P-1"));
        e.time = Timestamp::parse_rfc3339("2026-12-02T10:00:00Z").unwrap();
        e.severity = Severity::High;
        e.title = Some("Open bucket".into());
        e.resource.id = Some("arn:aws:s3:::b".into());
        e.network.src_port = Some(443);
        let r = row(&SentinelEncoder::new(None), &e);
        assert_eq!(r["TimeGenerated"], "2026-12-02T10:00:00.000Z");
        assert_eq!(r["EventId"], "P-1");
        assert_eq!(r["ReceivedAt"], "1970-01-01T00:00:01.000Z");
        assert_eq!(r["Vendor"], "prisma_cloud");
        assert_eq!(r["Source"], "prisma");
        assert_eq!(r["Severity"], "high");
        assert_eq!(r["SeverityId"], 4);
        assert_eq!(r["Title"], "Open bucket");
        assert_eq!(r["ResourceId"], "arn:aws:s3:::b");
        assert_eq!(r["SrcPort"], 443);
        assert_eq!(r["ClassUid"], 2004);
        assert!(r.get("Description").is_none(), "absent fields are left out");
        assert_eq!(r["Event"]["raw"]["alertId"], "P-1");
        assert_eq!(r["Event"]["id"], "P-1");
    }

    #[test]
    fn ocsf_rows_are_the_ocsf_object_with_time_generated_and_event_id() {
        let raw: &serde_json::value::RawValue = serde_json::from_str("{}").unwrap();
        let mut e = Event::new(Vendor::Generic, "g", raw, Timestamp(0));
        e.id = EventId::Vendor(Cow::Borrowed("g-1"));
        let r = row(&SentinelEncoder::new(Some(OcsfVersion::V1_8_0)), &e);
        assert_eq!(r["TimeGenerated"], "1970-01-01T00:00:00.000Z");
        assert_eq!(r["EventId"], "g-1");
        assert_eq!(r["class_uid"], 2004);
        assert_eq!(r["metadata"]["version"], "1.8.0");
    }

    #[test]
    fn api_errors_are_described_with_code_and_message() {
        let reply = Reply {
            status: StatusCode::FORBIDDEN,
            headers: http::HeaderMap::new(),
            body: Bytes::from_static(
                br#"{"error":{"code":"OperationFailed","message":"The authentication token provided does not have access to ingest data for the data collection rule with immutable Id 'dcr-1'."}}"#,
            ),
        };
        let d = describe(&reply);
        assert!(
            d.starts_with("Logs Ingestion API answered 403 Forbidden: OperationFailed: The authentication token"),
            "{d}"
        );
    }
}
