//! The Splunk HTTP Event Collector sink: the HEC event encoder (`encoder`) and the transport
//! that posts batches to `/services/collector/event` and reads every answer's HEC code, with
//! indexer acknowledgement when it is on (`acks`: polls, timeouts, resends and the cap on
//! pending events stay here; the worker sees handed-off events and what settled).
//!
//! How answers are classified (Splunk's "Possible error codes" table, reference/siem-outputs.md
//! §1.5):
//! * 2xx: delivered (codes 24/25 are capacity warnings on a 200, logged).
//! * 5xx (8, 9, 18-20, 23), 429 (26, 27), 408: retryable, honouring `Retry-After`.
//! * data errors, 400 with code 5, 6, 12, 13 or 15: `invalid-event-number` n says the events
//!   before n were indexed and event n is bad; n is refused for good and the rest sent again.
//!   Sending the whole batch again would index 0..n twice (vector#11434).
//! * 413: the body was too big for this indexer; the number of events per request halves.
//! * anything else (401/403 token, 400 codes 7, 10, 11, 14, 16, 3xx, 404, 415): the sink's
//!   configuration is wrong; hold the queue and say so until it works. Fluent Bit drops on these
//!   (fluent-bit#3699), which loses data a fixed token would have delivered.

mod acks;
mod encoder;

use tokio::time::Instant;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, USER_AGENT};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde::Deserialize;

use super::http_client::{HttpClient, Reply};
use super::retry::SendError;
use super::sent::{Partial, Sent, Settled};
use super::transport::{Probe, Transport};
use crate::config::HecSettings;
use crate::metrics::HecAckMetrics;
use acks::Acks;
pub use encoder::HecEncoder;

const EVENT_PATH: &str = "/services/collector/event";
const HEALTH_PATH: &str = "/services/collector/health";
const ACK_PATH: &str = "/services/collector/ack";
const CHANNEL_HEADER: &str = "x-splunk-request-channel";
const USER_AGENT_VALUE: &str = concat!("siemgate/", env!("CARGO_PKG_VERSION"));

/// The `{"text","code"}` body HEC answers with.
#[derive(Debug, Default, Deserialize)]
struct HecAnswer {
    #[serde(default)]
    text: String,
    code: Option<u32>,
    #[serde(rename = "invalid-event-number")]
    invalid_event_number: Option<usize>,
    #[serde(rename = "ackId")]
    ack_id: Option<u64>,
}

impl HecAnswer {
    fn parse(body: &[u8]) -> HecAnswer {
        serde_json::from_slice(body).unwrap_or_default()
    }

    fn describe(&self, status: StatusCode) -> String {
        match self.code {
            Some(code) => format!("HEC answered {status}, code {code}: {}", self.text),
            None => format!("HEC answered {status}"),
        }
    }
}

/// How a request ended, when HEC did not take it.
enum Posted {
    /// 413: too big for this indexer; the caller decides how to split.
    TooLarge,
    /// A data error: the events before `bad` were indexed, event `bad` never will be.
    Refused {
        bad: usize,
        reason: String,
    },
    Failed(SendError),
}

/// How a request of the leading events of a slice ended, 413s already handled.
enum Leading {
    /// HEC took the first `n` events, with this ackId if it gave one.
    Took(usize, Option<u64>),
    /// HEC indexed the events before `bad` and refused event `bad`.
    Refused {
        bad: usize,
        reason: String,
    },
    Failed(SendError),
}

const TOO_LARGE: &str = "HEC refused a single event as too large (413)";

/// HEC codes that mean the events themselves are bad.
const DATA_ERROR_CODES: [u32; 5] = [5, 6, 12, 13, 15];

pub struct HecSink {
    sink_id: String,
    client: HttpClient,
    authorization: HeaderValue,
    channel: HeaderValue,
    event_path: String,
    health_path: String,
    gzip: bool,
    max_request_bytes: usize,
    /// Events per request: unbounded until a 413, then halved; doubles back after successes.
    max_events: usize,
    body: Vec<u8>,
    /// Indexer acknowledgement state, when it is on.
    acks: Option<Acks>,
    ack_path: String,
}

/// `{"acks":{"3":true,"4":false}}`
#[derive(Debug, Default, Deserialize)]
struct AckAnswer {
    #[serde(default)]
    acks: std::collections::HashMap<String, bool>,
}

impl HecSink {
    pub fn new(
        sink_id: &str,
        settings: &HecSettings,
        ack_metrics: Option<HecAckMetrics>,
    ) -> HecSink {
        let mut authorization =
            HeaderValue::from_str(&format!("Splunk {}", settings.token.expose()))
                .unwrap_or_else(|_| HeaderValue::from_static("Splunk"));
        authorization.set_sensitive(true);
        let channel = uuid::Uuid::new_v4().to_string();
        tracing::info!(sink = %sink_id, %channel, "HEC request channel");
        if settings.tls.as_ref().is_some_and(|t| !t.verify) {
            tracing::warn!(sink = %sink_id, "TLS certificate verification is off (tls.verify = false)");
        }
        HecSink {
            sink_id: sink_id.to_owned(),
            client: HttpClient::new(
                settings.endpoint.clone(),
                settings.tls.as_ref(),
                settings.connect_timeout,
                settings.request_timeout,
            ),
            authorization,
            channel: HeaderValue::from_str(&channel).unwrap_or_else(|_| {
                HeaderValue::from_static("00000000-0000-4000-8000-000000000000")
            }),
            event_path: settings.endpoint.full_path(EVENT_PATH),
            health_path: settings.endpoint.full_path(HEALTH_PATH),
            gzip: settings.gzip,
            max_request_bytes: settings.max_request_bytes,
            max_events: usize::MAX,
            body: Vec::new(),
            acks: settings
                .acks
                .zip(ack_metrics)
                .map(|(a, metrics)| Acks::new(a, metrics)),
            ack_path: settings.endpoint.full_path(ACK_PATH),
        }
    }

    fn request(&self, method: Method, path: &str, body: Bytes) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = path.parse().unwrap_or_default();
        let h = req.headers_mut();
        h.insert(AUTHORIZATION, self.authorization.clone());
        h.insert(CHANNEL_HEADER, self.channel.clone());
        h.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        req
    }

    /// How many leading events go in the next request: within the byte cap (at least one
    /// event, whole events only) and the current event cap.
    fn request_len(&self, batch: &[Bytes]) -> usize {
        let mut n = 0;
        let mut bytes = 0;
        for item in batch {
            if n > 0 && (n >= self.max_events || bytes + item.len() > self.max_request_bytes) {
                break;
            }
            n += 1;
            bytes += item.len();
        }
        n
    }

    fn body(&mut self, events: &[Bytes]) -> Bytes {
        super::http_client::concat_body(&mut self.body, self.gzip, events)
    }

    /// Posts events as one request and reads the answer.
    async fn post_events(&mut self, events: &[Bytes]) -> Result<Reply, SendError> {
        let body = self.body(events);
        let mut req = self.request(Method::POST, &self.event_path, body);
        req.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.gzip {
            req.headers_mut()
                .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        self.client.send(req).await.map_err(SendError::from)
    }

    /// Posts `items` as one request and classifies the answer: `Ok` with the ackId HEC gave,
    /// if any.
    async fn exchange(&mut self, items: &[Bytes]) -> Result<Option<u64>, Posted> {
        let reply = self.post_events(items).await.map_err(Posted::Failed)?;
        if reply.status == StatusCode::PAYLOAD_TOO_LARGE {
            return Err(Posted::TooLarge);
        }
        let answer = HecAnswer::parse(&reply.body);
        self.classify(&reply, &answer, items.len())?;
        Ok(answer.ack_id)
    }

    /// Sends the leading events of `batch` (at most `cap`) as one request; a 413 halves the
    /// events per request and tries again, down to one event, which it refuses.
    async fn post_leading(&mut self, batch: &[Bytes], cap: usize) -> Leading {
        loop {
            let n = self.request_len(batch).min(cap);
            match self.exchange(&batch[..n]).await {
                Ok(ack_id) => {
                    self.max_events = self.max_events.saturating_mul(2);
                    return Leading::Took(n, ack_id);
                }
                Err(Posted::TooLarge) if n > 1 => {
                    self.max_events = n / 2;
                    tracing::warn!(sink = %self.sink_id, events = n, now = self.max_events, "HEC answered 413; halving the events per request");
                }
                Err(Posted::TooLarge) => {
                    return Leading::Refused {
                        bad: 0,
                        reason: TOO_LARGE.to_owned(),
                    }
                }
                Err(Posted::Refused { bad, reason }) => {
                    return Leading::Refused {
                        bad: bad.min(n - 1),
                        reason,
                    }
                }
                Err(Posted::Failed(e)) => return Leading::Failed(e),
            }
        }
    }

    /// Without acknowledgement: the first request HEC takes delivers its events. After a data
    /// error the events after the bad one go at once, in the same call, so that the answer
    /// covers the whole slice (`Sent::Partial`).
    async fn send_now(&mut self, batch: &[Bytes]) -> Result<Sent, SendError> {
        let mut done = 0;
        let mut refused = Vec::new();
        while done < batch.len() {
            match self.post_leading(&batch[done..], usize::MAX).await {
                Leading::Took(n, _) if refused.is_empty() => return Ok(Sent::Delivered(n)),
                Leading::Took(n, _) => done += n,
                Leading::Refused { bad, reason } => {
                    refused.push((done + bad, reason));
                    done += bad + 1;
                }
                Leading::Failed(e) if refused.is_empty() => return Err(e),
                Leading::Failed(e) => {
                    return Ok(Sent::Partial(Partial {
                        refused,
                        retry: (done..batch.len()).collect(),
                        retry_after: e.retry_after(),
                        retry_reason: Some(e.to_string()),
                    }))
                }
            }
        }
        Ok(Sent::Partial(Partial {
            refused,
            ..Partial::default()
        }))
    }

    /// With acknowledgement: everything HEC takes or refuses is handed off and settles through
    /// `settled`, in order. Overdue requests go again first, and nothing new goes while
    /// `max_pending_events` are awaiting their ack.
    async fn send_acked(&mut self, batch: &[Bytes]) -> Result<Sent, SendError> {
        let room = self.catch_up().await?;
        let outcome = self.post_leading(batch, room).await;
        let Some(acks) = &mut self.acks else {
            return Err(SendError::retryable("acknowledgement state missing"));
        };
        match outcome {
            Leading::Took(n, ack_id) => {
                acks.sent(&batch[..n], ack_id);
                Ok(Sent::HandedOff(n))
            }
            Leading::Refused { bad, reason } => {
                acks.refused(&batch[..=bad], reason);
                Ok(Sent::HandedOff(bad + 1))
            }
            Leading::Failed(e) => Err(e),
        }
    }

    /// Does the acknowledgement work that is due before anything new is sent (resends of
    /// overdue requests, a poll whose time has come) and waits, polling, while the cap on
    /// pending events is reached. Returns the room left under the cap.
    async fn catch_up(&mut self) -> Result<usize, SendError> {
        loop {
            while self
                .acks
                .as_ref()
                .is_some_and(|a| a.next_resend().is_some())
            {
                self.resend().await?;
            }
            let Some(acks) = &self.acks else {
                return Ok(usize::MAX);
            };
            let (room, next_poll) = (acks.room(), acks.next_poll);
            if room > 0 && Instant::now() < next_poll {
                return Ok(room);
            }
            if room == 0 {
                tokio::time::sleep_until(next_poll).await;
            }
            self.poll().await?;
        }
    }

    /// Polls the acknowledgements of every waiting request (one request for all ids) and marks
    /// the overdue ones for a resend. A failed poll loses nothing: the events stay pending and
    /// the next poll asks again. `Err` only when HEC refuses the poll for a configuration
    /// reason (the worker reports the sink not ready).
    async fn poll(&mut self) -> Result<(), SendError> {
        let Some(acks) = &mut self.acks else {
            return Ok(());
        };
        let ids = acks.waiting_ids();
        let mut result = Ok(());
        if !ids.is_empty() {
            let body = serde_json::json!({ "acks": ids }).to_string();
            let mut req = self.request(Method::POST, &self.ack_path, Bytes::from(body));
            req.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            match self.client.send(req).await {
                Ok(reply) if reply.status.is_success() => {
                    let answer: AckAnswer = serde_json::from_slice(&reply.body).unwrap_or_default();
                    if let Some(acks) = &mut self.acks {
                        acks.acknowledged(&answer.acks);
                    }
                }
                Ok(reply) => {
                    let reason = HecAnswer::parse(&reply.body).describe(reply.status);
                    let status = reply.status;
                    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                        tracing::warn!(sink = %self.sink_id, %reason, "acknowledgement poll failed; the events stay pending");
                    } else {
                        tracing::error!(sink = %self.sink_id, %reason, "acknowledgement poll refused; the events stay pending");
                        result = Err(SendError::Config(reason));
                    }
                }
                Err(e) => {
                    tracing::warn!(sink = %self.sink_id, reason = %e, "acknowledgement poll failed; the events stay pending");
                    if e.is_config_error() {
                        result = Err(SendError::from(e));
                    }
                }
            }
        }
        if let Some(acks) = &mut self.acks {
            // Set once the poll is done: a poll dropped half-way is made again at once.
            acks.next_poll = Instant::now() + acks.settings.poll_interval;
            let overdue = acks.mark_overdue(Instant::now());
            if overdue > 0 {
                tracing::warn!(sink = %self.sink_id, requests = overdue, "no indexer acknowledgement in time; sending those events again");
            }
        }
        result
    }

    /// Sends the first overdue request again, whole, with the same handling as a first send:
    /// a 413 splits it, a data error settles the events up to the bad one.
    async fn resend(&mut self) -> Result<(), SendError> {
        let Some(items) = self.acks.as_ref().and_then(Acks::next_resend) else {
            return Ok(());
        };
        let outcome = self.exchange(&items).await;
        let Some(acks) = &mut self.acks else {
            return Ok(());
        };
        match outcome {
            Ok(ack_id) => acks.resent(ack_id),
            Err(Posted::TooLarge) if items.len() > 1 => acks.split_resend(items.len() / 2),
            Err(Posted::TooLarge) => acks.resend_refused(0, TOO_LARGE.to_owned()),
            Err(Posted::Refused { bad, reason }) => acks.resend_refused(bad, reason),
            Err(Posted::Failed(e)) => return Err(e),
        }
        Ok(())
    }

    fn classify(&self, reply: &Reply, answer: &HecAnswer, n: usize) -> Result<(), Posted> {
        let status = reply.status;
        if status.is_success() {
            if matches!(answer.code, Some(24 | 25)) {
                tracing::warn!(sink = %self.sink_id, text = %answer.text, "HEC warns it is near capacity");
            }
            return Ok(());
        }
        let reason = answer.describe(status);
        if let Some(retry) = reply.retryable(&reason) {
            return Err(Posted::Failed(retry));
        }
        if status == StatusCode::BAD_REQUEST
            && answer.code.is_some_and(|c| DATA_ERROR_CODES.contains(&c))
        {
            let bad = answer.invalid_event_number.unwrap_or(0).min(n - 1);
            return Err(Posted::Refused { bad, reason });
        }
        Err(Posted::Failed(SendError::Config(reason)))
    }
}

impl Transport for HecSink {
    async fn send(&mut self, batch: &[Bytes]) -> Result<Sent, SendError> {
        if batch.is_empty() {
            return Ok(Sent::Delivered(0));
        }
        if self.acks.is_some() {
            self.send_acked(batch).await
        } else {
            self.send_now(batch).await
        }
    }

    /// `GET /services/collector/health`: a token or URL problem is a configuration error; a
    /// busy or unreachable collector is reported as retryable.
    async fn probe(&mut self) -> Result<Probe, SendError> {
        let req = self.request(Method::GET, &self.health_path, Bytes::new());
        let reply = self.client.send(req).await.map_err(SendError::from)?;
        let status = reply.status;
        if status.is_success() {
            return Ok(Probe::Reachable);
        }
        let reason = HecAnswer::parse(&reply.body).describe(status);
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            Err(SendError::retryable(reason))
        } else {
            Err(SendError::Config(reason))
        }
    }

    /// With acknowledgement: reports what settled, polling every `poll_interval` while
    /// requests await their ack and sending overdue ones again. Before a poll or a resend it
    /// yields once, so that a batch already waiting goes first (its `send` does that work
    /// before anything new); a poll dropped half-way is made again, a resend dropped half-way
    /// is sent again (at worst a duplicate, as any resend after a timeout may be).
    async fn settled(&mut self) -> Result<Settled, SendError> {
        loop {
            let Some(acks) = &mut self.acks else {
                return std::future::pending().await;
            };
            let settled = acks.take_settled();
            if !settled.is_empty() {
                return Ok(settled);
            }
            if acks.next_resend().is_some() {
                tokio::task::yield_now().await;
                self.resend().await?;
                continue;
            }
            if !acks.is_waiting() {
                return std::future::pending().await;
            }
            tokio::time::sleep_until(acks.next_poll).await;
            tokio::task::yield_now().await;
            self.poll().await?;
        }
    }

    fn last_status(&self) -> Option<u16> {
        self.client.last_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_answers_with_and_without_event_numbers() {
        let a = HecAnswer::parse(
            br#"{"text":"Invalid data format","code":6,"invalid-event-number":2}"#,
        );
        assert_eq!((a.code, a.invalid_event_number), (Some(6), Some(2)));
        let a = HecAnswer::parse(b"<html>bad gateway</html>");
        assert_eq!(a.code, None);
    }
}
