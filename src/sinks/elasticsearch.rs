//! The Elasticsearch / OpenSearch sink: the `_bulk` encoder (one action line and one document
//! line per event, built at the edge) and the transport that posts them and reads every item
//! of the answer.
//!
//! How answers are classified (Elasticsearch "Bulk API" reference, response body:
//! <https://www.elastic.co/guide/en/elasticsearch/reference/current/docs-bulk.html>; OpenSearch
//! <https://docs.opensearch.org/latest/api-reference/document-apis/bulk/>):
//! * 200 with `items`: one result per action, in request order; `errors: true` means some items
//!   failed, so a 200 alone is never delivery. Per item: 2xx delivered; 409 on `create`
//!   (`version_conflict_engine_exception`: a document with that `_id`, our event id, is already
//!   indexed, so a resend after a lost answer) delivered; 429 (`es_rejected_execution_exception`)
//!   and 5xx sent again alone; any other status (`mapper_parsing_exception`,
//!   `illegal_argument_exception`, `document_parsing_exception`, ...) refused for good with
//!   its reason: dead letters.
//! * whole request: 429, 408 and 5xx retried (honouring `Retry-After`); 413 halves the events
//!   per request; 401, 403, 404 and other answers hold the queue (a configuration problem).
//! * An answer that cannot be read (cut, or not one item per action) is retried whole: with
//!   `_id` = event id a resend indexes nothing twice.
//!
//! No `_type` is sent (OpenSearch and Elasticsearch 8 refuse it).

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, USER_AGENT};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde::Deserialize;

use super::http_client::{HttpClient, Reply};
use super::retry::SendError;
use super::sent::{Partial, Sent};
use super::transport::Transport;
use super::{one_line, EncodeError, Encoder};
use crate::config::{ElasticsearchSettings, EsOpType, IndexTemplate};
use crate::normalize::ocsf::{OcsfEvent, OcsfVersion};
use crate::normalize::Event;

const USER_AGENT_VALUE: &str = concat!("siemgate/", env!("CARGO_PKG_VERSION"));
/// Only what the sink reads of each item, so a large batch's answer stays small.
const FILTER_PATH: &str =
    "filter_path=errors,items.*.status,items.*.error.type,items.*.error.reason";
/// A filtered answer is about 30 bytes per item; room for batches of tens of thousands.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// OpenSearch 2.9+ refuses `_id`s over 512 bytes; a longer event id is hashed.
const MAX_ID_BYTES: usize = 512;

/// Encodes one event as `{"<op>":{"_index":..,"_id":..}}\n{"@timestamp":..,<document>}\n`.
pub struct EsEncoder {
    index: IndexTemplate,
    op: EsOpType,
    ocsf: Option<OcsfVersion>,
}

impl EsEncoder {
    pub fn new(settings: &ElasticsearchSettings, ocsf: Option<OcsfVersion>) -> EsEncoder {
        EsEncoder {
            index: settings.index.clone(),
            op: settings.op_type,
            ocsf,
        }
    }
}

impl Encoder for EsEncoder {
    fn encode(&self, event: &Event<'_>, out: &mut BytesMut) -> Result<(), EncodeError> {
        out.extend_from_slice(b"{\"");
        out.extend_from_slice(self.op.as_str().as_bytes());
        out.extend_from_slice(b"\":{\"_index\":\"");
        self.index.render(event, out);
        out.extend_from_slice(b"\",\"_id\":");
        let id_at = out.len();
        serde_json::to_writer(out.writer(), &event.id)?;
        if out.len() - id_at > MAX_ID_BYTES + 2 {
            let long = out.split_off(id_at);
            let hashed = crate::normalize::EventId::hash_of(&long);
            serde_json::to_writer(out.writer(), &hashed)?;
        }
        out.extend_from_slice(b"}}\n");
        let mut ts = [0u8; 24];
        out.extend_from_slice(b"{\"@timestamp\":\"");
        out.extend_from_slice(event.time.rfc3339(&mut ts).as_bytes());
        out.put_u8(b'"');
        let doc_at = out.len();
        match self.ocsf {
            // On one line already.
            None => crate::normalize::write::event(event, out),
            Some(v) => {
                serde_json::to_writer(out.writer(), &OcsfEvent::new(event, v))?;
                one_line(&mut out[doc_at..]);
            }
        }
        // The document's own `{` becomes the comma after `@timestamp`; an object always has
        // fields here (id, time, class_uid, ...).
        if out.get(doc_at) == Some(&b'{') {
            out[doc_at] = b',';
        }
        out.put_u8(b'\n');
        Ok(())
    }
}

/// The parts of a `_bulk` answer the sink reads.
#[derive(Debug, Deserialize)]
struct BulkAnswer {
    #[serde(default)]
    errors: bool,
    #[serde(default)]
    items: Vec<std::collections::HashMap<String, BulkItem>>,
}

#[derive(Debug, Deserialize)]
struct BulkItem {
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

impl BulkItem {
    /// `status type: reason`, as the dead letters and the log show it.
    fn describe(&self) -> String {
        let (kind, reason) = match &self.error {
            Some(serde_json::Value::Object(e)) => (
                e.get("type").and_then(|v| v.as_str()).unwrap_or("error"),
                e.get("reason").and_then(|v| v.as_str()).unwrap_or(""),
            ),
            Some(serde_json::Value::String(s)) => ("error", s.as_str()),
            _ => ("error", ""),
        };
        format!("{} {kind}: {reason}", self.status)
    }
}

/// What one item of an answer means for its event.
#[derive(Debug, PartialEq, Eq)]
enum ItemOutcome {
    Delivered,
    Retry(String),
    Refused(String),
}

fn classify_item(item: &BulkItem, create: bool) -> ItemOutcome {
    match item.status {
        200..=299 => ItemOutcome::Delivered,
        409 if create => ItemOutcome::Delivered,
        408 | 429 | 500..=599 => ItemOutcome::Retry(item.describe()),
        _ => ItemOutcome::Refused(item.describe()),
    }
}

/// The outcome of one `_bulk` request.
enum Posted {
    Items(Vec<ItemOutcome>),
    TooLarge,
}

/// Reads a 200 answer into one outcome per action; `Err` when it does not hold one per action.
fn read_items(body: &[u8], actions: usize, create: bool) -> Result<Vec<ItemOutcome>, SendError> {
    let answer: BulkAnswer = serde_json::from_slice(body)
        .map_err(|e| SendError::retryable(format!("unreadable _bulk answer: {e}")))?;
    if !answer.errors && answer.items.is_empty() {
        // `filter_path` leaves `items` out when no item has a status: never for a real
        // answer, so treat it as unread.
        return Err(SendError::retryable("_bulk answer without items"));
    }
    if answer.items.len() != actions {
        return Err(SendError::retryable(format!(
            "_bulk answered {} items for {actions} actions",
            answer.items.len()
        )));
    }
    Ok(answer
        .items
        .iter()
        .map(|item| match item.values().next() {
            Some(i) => classify_item(i, create),
            None => ItemOutcome::Retry("empty _bulk item".to_owned()),
        })
        .collect())
}

pub struct ElasticsearchSink {
    sink_id: String,
    client: HttpClient,
    path: String,
    authorization: Option<HeaderValue>,
    gzip: bool,
    create: bool,
    max_request_bytes: usize,
    /// Events per request; halves on a 413 and grows back on success.
    max_events: usize,
    body: Vec<u8>,
}

impl ElasticsearchSink {
    pub fn new(sink_id: &str, settings: &ElasticsearchSettings) -> ElasticsearchSink {
        let mut path = settings.endpoint.full_path("/_bulk");
        path.push(if path.contains('?') { '&' } else { '?' });
        path.push_str(FILTER_PATH);
        if let Some(p) = &settings.pipeline {
            path.push_str("&pipeline=");
            path.push_str(p);
        }
        ElasticsearchSink {
            sink_id: sink_id.to_owned(),
            client: HttpClient::new(
                settings.endpoint.clone(),
                settings.tls.as_ref(),
                settings.connect_timeout,
                settings.request_timeout,
            )
            .with_max_response_bytes(MAX_RESPONSE_BYTES),
            path,
            authorization: settings.authorization.clone(),
            gzip: settings.gzip,
            create: settings.op_type == EsOpType::Create,
            max_request_bytes: settings.max_request_bytes,
            max_events: usize::MAX,
            body: Vec::new(),
        }
    }

    /// How many events from the front of `items` go in one request (at least one).
    fn request_len(&self, items: &[Bytes]) -> usize {
        let mut bytes = 0;
        let mut n = 0;
        for item in items.iter().take(self.max_events) {
            if n > 0 && bytes + item.len() > self.max_request_bytes {
                break;
            }
            bytes += item.len();
            n += 1;
        }
        n.max(1).min(items.len())
    }

    fn body(&mut self, items: &[Bytes]) -> Bytes {
        super::http_client::concat_body(&mut self.body, self.gzip, items)
    }

    async fn post(&mut self, items: &[Bytes]) -> Result<Posted, SendError> {
        let body = self.body(items);
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.path.parse().unwrap_or_default();
        let h = req.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        h.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        if self.gzip {
            h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        if let Some(a) = &self.authorization {
            h.insert(AUTHORIZATION, a.clone());
        }
        let reply = self.client.send(req).await.map_err(SendError::from)?;
        classify_reply(&reply, items.len(), self.create)
    }
}

impl Transport for ElasticsearchSink {
    /// Sends the whole batch (in several requests when it is over `max_request_bytes`) and
    /// says, per event, what became of it.
    async fn send(&mut self, batch: &[Bytes]) -> Result<Sent, SendError> {
        let mut partial = Partial::default();
        let mut at = 0;
        while at < batch.len() {
            let n = self.request_len(&batch[at..]);
            match self.post(&batch[at..at + n]).await {
                Ok(Posted::Items(outcomes)) => {
                    self.max_events = self.max_events.saturating_mul(2);
                    for (i, outcome) in outcomes.into_iter().enumerate() {
                        match outcome {
                            ItemOutcome::Delivered => {}
                            ItemOutcome::Retry(reason) => {
                                partial.retry.push(at + i);
                                partial.retry_reason.get_or_insert(reason);
                            }
                            ItemOutcome::Refused(reason) => partial.refused.push((at + i, reason)),
                        }
                    }
                }
                Ok(Posted::TooLarge) if n > 1 => {
                    self.max_events = n / 2;
                    tracing::warn!(sink = %self.sink_id, events = n, now = self.max_events, "_bulk answered 413; halving the events per request");
                    continue;
                }
                Ok(Posted::TooLarge) => partial.refused.push((
                    at,
                    "413: the event alone is larger than the cluster accepts (http.max_content_length)"
                        .to_owned(),
                )),
                Err(e) if at == 0 => return Err(e),
                Err(e) => {
                    // What went before is settled; the rest goes again.
                    if let SendError::Retryable { retry_after, .. } = &e {
                        partial.retry_after = *retry_after;
                    }
                    partial.retry_reason.get_or_insert(e.to_string());
                    partial.retry.extend(at..batch.len());
                    break;
                }
            }
            at += n;
        }
        Ok(settle(partial, batch.len()))
    }

    fn last_status(&self) -> Option<u16> {
        self.client.last_status()
    }
}

/// A `Partial` that names nothing is delivery of all.
fn settle(partial: Partial, sent: usize) -> Sent {
    if partial.refused.is_empty() && partial.retry.is_empty() {
        Sent::Delivered(sent)
    } else {
        Sent::Partial(partial)
    }
}

/// Classifies a whole answer (see the module docs).
fn classify_reply(reply: &Reply, actions: usize, create: bool) -> Result<Posted, SendError> {
    let status = reply.status;
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return Ok(Posted::TooLarge);
    }
    if status.is_success() {
        return read_items(&reply.body, actions, create).map(Posted::Items);
    }
    let reason = describe_error(status, &reply.body);
    if let Some(retry) = reply.retryable(&reason) {
        return Err(retry);
    }
    Err(SendError::Config(reason))
}

/// `status type: reason` from an error answer (`{"error":{"type":..,"reason":..},"status":..}`).
fn describe_error(status: StatusCode, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorAnswer {
        error: Option<serde_json::Value>,
    }
    let detail = serde_json::from_slice::<ErrorAnswer>(body)
        .ok()
        .and_then(|a| a.error)
        .map(|e| match e {
            serde_json::Value::Object(o) => format!(
                "{}: {}",
                o.get("type").and_then(|v| v.as_str()).unwrap_or("error"),
                o.get("reason").and_then(|v| v.as_str()).unwrap_or("")
            ),
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        });
    match detail {
        Some(d) => format!("cluster answered {status}: {d}"),
        None => format!("cluster answered {status}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::IndexTemplate;
    use crate::normalize::{EventId, Timestamp};
    use crate::vendors::Vendor;
    use std::borrow::Cow;

    fn encoder(op: EsOpType, ocsf: Option<OcsfVersion>) -> EsEncoder {
        EsEncoder {
            index: IndexTemplate::parse("siemgate-{vendor}-%Y.%m").unwrap(),
            op,
            ocsf,
        }
    }

    fn lines(enc: &EsEncoder, e: &Event<'_>) -> (serde_json::Value, serde_json::Value) {
        let mut out = BytesMut::new();
        enc.encode(e, &mut out).unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.ends_with('\n'));
        let mut it = text.lines();
        let action = serde_json::from_str(it.next().unwrap()).unwrap();
        let doc = serde_json::from_str(it.next().unwrap()).unwrap();
        assert!(it.next().is_none(), "{text}");
        (action, doc)
    }

    #[test]
    fn action_names_index_and_event_id_and_the_document_carries_timestamp() {
        let raw: &serde_json::value::RawValue =
            serde_json::from_str("{\n \"alertId\": \"A-1\"\n}").unwrap();
        let mut e = Event::new(Vendor::PrismaCloud, "p", raw, Timestamp(0));
        e.id = EventId::Vendor(Cow::Borrowed("A-1"));
        e.time = Timestamp::parse_rfc3339("2026-03-04T05:06:07.089Z").unwrap();
        let (action, doc) = lines(&encoder(EsOpType::Create, None), &e);
        assert_eq!(
            action,
            serde_json::json!({"create": {"_index": "siemgate-prisma_cloud-2026.03", "_id": "A-1"}})
        );
        assert_eq!(doc["@timestamp"], "2026-03-04T05:06:07.089Z");
        assert_eq!(doc["id"], "A-1");
        assert_eq!(doc["raw"]["alertId"], "A-1");
        assert!(doc.get("_type").is_none());
        let (action, doc) = lines(&encoder(EsOpType::Index, Some(OcsfVersion::V1_8_0)), &e);
        assert_eq!(action["index"]["_id"], "A-1");
        assert_eq!(doc["class_uid"], 2004);
        assert_eq!(doc["@timestamp"], "2026-03-04T05:06:07.089Z");
    }

    #[test]
    fn ids_over_512_bytes_are_hashed() {
        let raw: &serde_json::value::RawValue = serde_json::from_str("{}").unwrap();
        let mut e = Event::new(Vendor::Generic, "g", raw, Timestamp(0));
        let long = "x".repeat(600);
        e.id = EventId::Vendor(Cow::Owned(long));
        let (action, _) = lines(&encoder(EsOpType::Create, None), &e);
        let id = action["create"]["_id"].as_str().unwrap();
        assert_eq!(id.len(), 32, "{id}");
    }

    #[test]
    fn bulk_items_are_read_one_per_action() {
        let body = br#"{"errors":true,"items":[
            {"create":{"status":201}},
            {"create":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"document already exists"}}},
            {"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [severity_id]"}}},
            {"create":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution"}}},
            {"create":{"status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}}
        ]}"#;
        let out = read_items(body, 5, true).unwrap();
        assert_eq!(out[0], ItemOutcome::Delivered);
        assert_eq!(out[1], ItemOutcome::Delivered);
        assert_eq!(
            out[2],
            ItemOutcome::Refused(
                "400 mapper_parsing_exception: failed to parse field [severity_id]".to_owned()
            )
        );
        assert!(matches!(&out[3], ItemOutcome::Retry(r) if r.contains("es_rejected")));
        assert!(matches!(&out[4], ItemOutcome::Retry(_)));
        // With `index`, a 409 is a real conflict, not a resend.
        let out = read_items(body, 5, false).unwrap();
        assert!(matches!(&out[1], ItemOutcome::Refused(r) if r.starts_with("409")));
        // A count that does not match, or a cut answer, is not delivery.
        assert!(read_items(body, 4, true).is_err());
        assert!(read_items(&body[..40], 5, true).is_err());
        assert!(read_items(b"{\"errors\":false}", 1, true).is_err());
    }

    #[test]
    fn only_an_answer_naming_nothing_is_delivery_of_all() {
        assert_eq!(settle(Partial::default(), 3), Sent::Delivered(3));
        let tail = Partial {
            retry: vec![2, 3],
            ..Partial::default()
        };
        assert!(matches!(settle(tail, 4), Sent::Partial(p) if p.delivered(4) == 2));
    }

    #[test]
    fn whole_answers_are_retried_held_or_halved() {
        let reply = |status: u16, body: &str| Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: http::HeaderMap::new(),
            body: Bytes::copy_from_slice(body.as_bytes()),
        };
        assert!(matches!(
            classify_reply(&reply(413, ""), 2, true),
            Ok(Posted::TooLarge)
        ));
        assert!(matches!(
            classify_reply(&reply(429, ""), 2, true),
            Err(SendError::Retryable { .. })
        ));
        assert!(matches!(
            classify_reply(&reply(502, ""), 2, true),
            Err(SendError::Retryable { .. })
        ));
        match classify_reply(
            &reply(
                401,
                r#"{"error":{"type":"security_exception","reason":"missing authentication credentials"},"status":401}"#,
            ),
            2,
            true,
        ) {
            Err(SendError::Config(r)) => {
                assert!(
                    r.contains("security_exception: missing authentication"),
                    "{r}"
                )
            }
            _ => panic!("401 must hold the queue"),
        }
        assert!(matches!(
            classify_reply(&reply(403, ""), 2, true),
            Err(SendError::Config(_))
        ));
    }
}
