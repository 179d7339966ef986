//! The hooks handler: route -> limits -> auth -> decode -> normalize -> dispatch -> receipt.
//! Each request is answered exactly once, counted once, and, if refused, logged once with its
//! source id and remote address.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use metrics::Counter;

use super::budget::{BodyBudget, Reservation};
use super::reject::{json_response, Reject};
use super::ConnInfo;
use crate::auth::{AuthError, Signed, Verifier};
use crate::config::Limits;
use crate::dedup::Seen;
use crate::dispatch::dispatch_body;
use crate::metrics::CLIENT_CLOSED;
use crate::normalize::Timestamp;
use crate::routes::{Accepted, Routes, Source};

/// Everything the hooks listener needs to answer requests.
pub struct Ingest {
    /// The routing table; the admin API and reloads swap it whole.
    pub routes: Arc<ArcSwap<Routes>>,
    /// Requests to paths no source is configured at.
    pub unrouted: Counter,
    /// Body bytes in flight across every connection (`max_inflight_body_bytes`): bounds what
    /// unauthenticated or slow senders can make the server buffer at once.
    pub budget: BodyBudget,
}

/// Answers one request to the hooks listener.
///
/// Not an `async fn`: one of those keeps each argument twice in its future (as passed, and as a
/// local) and copies it from one to the other on the first poll. Here the request is split
/// before the future is made, and the future and [`accept`]'s hold each part once; hyper stores
/// and moves the future per request, so its size is paid in copies.
pub fn handle(
    state: Arc<Ingest>,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> impl Future<Output = Response<Full<Bytes>>> + Send + 'static {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    async move {
        let (source, limits) = {
            let routes = state.routes.load();
            let source = parts
                .uri
                .path()
                .strip_prefix("/hooks/")
                .and_then(|id| routes.sources.get(id))
                .cloned();
            (source, routes.limits)
        };
        let Some(source) = source else {
            state.unrouted.increment(1);
            tracing::debug!(path = parts.uri.path(), peer = %conn.peer, "request to unknown source");
            return Reject::UnknownSource.response();
        };
        let mut unanswered = Unanswered {
            source: &source,
            conn: &conn,
            answered: false,
        };
        let resp = match accept(&limits, &state.budget, &source, &conn, &parts, body).await {
            Ok(Receipt::Queued(accepted, received_at)) => {
                source
                    .stats
                    .accepted(accepted.events - accepted.filtered, received_at);
                receipt(accepted, false)
            }
            Ok(Receipt::Duplicate(accepted)) => receipt(accepted, true),
            Err(reject) => {
                let (status, reason, level) = reject.class();
                log_reject(level, &source, &conn, status, reason, &reject);
                source.metrics.rejected(reason);
                source.stats.refused(reason, Timestamp::now());
                if let Reject::Auth(e) = &reject {
                    source.metrics.auth_failure(e.reason());
                    source.stats.auth_failure();
                } else if matches!(
                    reject,
                    Reject::IpNotAllowed
                        | Reject::ClientCertRequired
                        | Reject::ClientCertNotAllowed(_)
                ) {
                    source.metrics.auth_failure(reason);
                    source.stats.auth_failure();
                }
                reject.response()
            }
        };
        unanswered.answered = true;
        source.metrics.request(resp.status().as_u16());
        source
            .metrics
            .duration
            .record(started.elapsed().as_secs_f64());
        resp
    }
}

/// A routed request being handled. Dropped before its answer is made (hyper drops the handler
/// when the sender closes the connection or resets the stream, and at the end of the
/// shutdown's grace period), it counts the request under [`CLIENT_CLOSED`] and logs it, at
/// most one line per source and `REJECT_LOG_INTERVAL`; otherwise such a request would be
/// counted nowhere. Its events may already be in a queue: they are delivered, and the sender's
/// retry (it saw no answer) may deliver them again.
struct Unanswered<'a> {
    source: &'a Source,
    conn: &'a ConnInfo,
    answered: bool,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let metrics = &self.source.metrics;
        metrics.request(CLIENT_CLOSED);
        if let Some(unlogged) = metrics.unanswered_log_permit() {
            tracing::warn!(
                source = self.source.settings.id.as_str(),
                peer = %self.conn.peer,
                code = CLIENT_CLOSED,
                unlogged,
                "request ended unanswered: the sender closed the connection or reset the stream (or the shutdown's grace period ended) while it was handled; events it had queued are delivered, and a retry may deliver them again"
            );
        }
    }
}

/// Logs a refusal, at most one line per source, reason and `REJECT_LOG_INTERVAL`; the line
/// says how many refusals of that kind were left out since the previous one.
fn log_reject(
    level: tracing::Level,
    source: &Source,
    conn: &ConnInfo,
    status: StatusCode,
    reason: &'static str,
    reject: &Reject,
) {
    let Some(unlogged) = source.metrics.reject_log_permit(reason) else {
        return;
    };
    let source = source.settings.id.as_str();
    let detail = reject.detail();
    match level {
        tracing::Level::ERROR => {
            tracing::error!(source, peer = %conn.peer, status = status.as_u16(), reason, detail, unlogged, "request refused")
        }
        tracing::Level::WARN => {
            tracing::warn!(source, peer = %conn.peer, status = status.as_u16(), reason, detail, unlogged, "request refused")
        }
        _ => {
            tracing::debug!(source, peer = %conn.peer, status = status.as_u16(), reason, detail, unlogged, "request refused")
        }
    }
}

/// The receipts of requests of at most 8 events, none filtered, not duplicates: the usual
/// answer, sent as it is rather than serialized per request (a test checks they match).
const RECEIPTS: [&str; 9] = [
    r#"{"accepted":0}"#,
    r#"{"accepted":1}"#,
    r#"{"accepted":2}"#,
    r#"{"accepted":3}"#,
    r#"{"accepted":4}"#,
    r#"{"accepted":5}"#,
    r#"{"accepted":6}"#,
    r#"{"accepted":7}"#,
    r#"{"accepted":8}"#,
];

fn receipt(accepted: Accepted, duplicate: bool) -> Response<Full<Bytes>> {
    let plain = accepted.filtered == 0 && !duplicate && !accepted.suppressed;
    if let Some(body) = RECEIPTS.get(accepted.events).filter(|_| plain) {
        let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        return resp;
    }
    serialized_receipt(accepted, duplicate)
}

fn serialized_receipt(accepted: Accepted, duplicate: bool) -> Response<Full<Bytes>> {
    #[derive(serde::Serialize)]
    struct Body {
        accepted: usize,
        #[serde(skip_serializing_if = "is_zero")]
        filtered: usize,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        duplicate: bool,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        suppressed: bool,
    }
    fn is_zero(n: &usize) -> bool {
        *n == 0
    }
    json_response(
        StatusCode::OK,
        &Body {
            accepted: accepted.events - accepted.filtered,
            filtered: accepted.filtered,
            duplicate,
            suppressed: accepted.suppressed,
        },
    )
}

fn ip_allowed(source: &Source, peer: IpAddr) -> bool {
    let nets = &source.settings.allowed_ips;
    if nets.is_empty() {
        return true;
    }
    let peer = match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    nets.iter().any(|n| n.contains(&peer))
}

/// Admits, reads, verifies, decodes and queues one request's body. The request head is
/// borrowed from [`handle`]'s future rather than moved into this one (see there why).
async fn accept(
    limits: &Limits,
    budget: &BodyBudget,
    source: &Arc<Source>,
    conn: &ConnInfo,
    parts: &http::request::Parts,
    body: Incoming,
) -> Result<Receipt, Reject> {
    if parts.method != Method::POST && parts.method != Method::PUT {
        return Err(Reject::MethodNotAllowed);
    }
    if !ip_allowed(source, conn.peer.ip()) {
        return Err(Reject::IpNotAllowed);
    }
    if source.settings.require_client_cert {
        let Some(cert) = &conn.client_cert else {
            return Err(Reject::ClientCertRequired);
        };
        cert.allowed(
            &source.settings.client_cert_names,
            &source.settings.client_cert_sha256,
        )
        .map_err(Reject::ClientCertNotAllowed)?;
    }
    let grace = grace_verifier(source);
    verify(source, grace, |v| v.verify_headers(&parts.headers))?;

    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes) {
        return Err(Reject::BodyTooLarge {
            limit: limits.max_body_bytes,
        });
    }
    // Reserved before any of the body is read: from Content-Length, else frame by frame.
    let mut reserved = budget.reservation(conn.peer.ip());
    if let Some(n) = declared {
        reserved.ensure(n).map_err(|_| Reject::BodyBudget)?;
    }
    let body = read_body(body, limits, &mut reserved).await?;
    let received_at = Timestamp::now();
    verify(source, grace, |v| {
        v.verify_body(&parts.headers, &body, SystemTime::now())
    })?;

    let pending = match &source.dedup {
        None => None,
        Some(d) => match d.check_request(&signed(source, grace, &parts.headers), &body) {
            Seen::New(p) => Some(p),
            Seen::Duplicate(first) => {
                source.metrics.duplicates.increment(1);
                tracing::debug!(source = %source.settings.id, peer = %conn.peer, "duplicate request answered from the de-duplication window");
                return Ok(Receipt::Duplicate(first));
            }
            Seen::InFlight => return Err(Reject::DuplicateInFlight),
        },
    };
    let dispatched =
        dispatch_body(source, body, received_at, limits.max_events_per_request).await?;
    // Disk queues answer once the events are in their logs (fsynced, per policy).
    dispatched.durable.wait(&source.settings.id).await?;
    let accepted = dispatched.accepted;
    if let Some(p) = pending {
        p.done(accepted);
    }
    Ok(Receipt::Queued(accepted, received_at))
}

/// What a verified request signed besides its body. While replaced secrets are in their grace
/// period the request may have passed with either verifier; unless both read the same signed
/// material from it, only the body is trusted.
fn signed<'h>(source: &Source, grace: Option<&Verifier>, headers: &'h HeaderMap) -> Signed<'h> {
    let signed = source.settings.verifier.signed(headers);
    match grace {
        Some(g) if g.signed(headers) != signed => Signed::Body,
        _ => signed,
    }
}

/// The verifier of the secrets a reset replaced, while their grace period lasts.
fn grace_verifier(source: &Source) -> Option<&Verifier> {
    match &source.settings.grace {
        Some((v, until)) if SystemTime::now() < *until => Some(v),
        _ => None,
    }
}

/// Runs one verification step with the current secrets, then, if that fails, with the secrets
/// still in their grace period.
fn verify(
    source: &Source,
    grace: Option<&Verifier>,
    step: impl Fn(&Verifier) -> Result<(), AuthError>,
) -> Result<(), Reject> {
    match step(&source.settings.verifier) {
        Ok(()) => Ok(()),
        Err(e) => match grace {
            Some(g) if step(g).is_ok() => Ok(()),
            _ => Err(Reject::Auth(e)),
        },
    }
}

/// What a request got.
enum Receipt {
    /// Queued, with the time the body had arrived.
    Queued(Accepted, Timestamp),
    /// Queued by an earlier copy of the same request.
    Duplicate(Accepted),
}

/// Reads the whole body, refusing it as soon as it passes the size cap or the in-flight budget
/// (`reserved` grows with each frame beyond what was declared), and if it does not arrive within
/// the body timeout. A body of one frame is kept as is, without a copy.
async fn read_body(
    mut body: Incoming,
    limits: &Limits,
    reserved: &mut Reservation<'_>,
) -> Result<Bytes, Reject> {
    let deadline = tokio::time::Instant::now() + limits.body_read_timeout;
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
    let mut total: u64 = 0;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(Reject::BodyTimeout),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(Reject::BodyRead),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > limits.max_body_bytes {
            return Err(Reject::BodyTooLarge {
                limit: limits.max_body_bytes,
            });
        }
        reserved.ensure(total).map_err(|_| Reject::BodyBudget)?;
        match (&mut first, &mut rest) {
            (None, _) => first = Some(data),
            (Some(head), None) => {
                let mut buf = BytesMut::with_capacity(head.len() + data.len());
                buf.extend_from_slice(head);
                buf.extend_from_slice(&data);
                rest = Some(buf);
            }
            (Some(_), Some(buf)) => buf.extend_from_slice(&data),
        }
    }
    Ok(match (first, rest) {
        (_, Some(buf)) => buf.freeze(),
        (Some(one), None) => one,
        (None, None) => Bytes::new(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn body_of(resp: Response<Full<Bytes>>) -> (StatusCode, String, Bytes) {
        let status = resp.status();
        let ct = resp.headers()[http::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        (
            status,
            ct,
            resp.into_body().collect().await.unwrap().to_bytes(),
        )
    }

    #[tokio::test]
    async fn the_ready_made_receipts_are_the_serialized_ones() {
        for events in 0..=RECEIPTS.len() + 1 {
            let accepted = Accepted {
                events,
                filtered: 0,
                suppressed: false,
            };
            let fast = body_of(receipt(accepted, false)).await;
            let slow = body_of(serialized_receipt(accepted, false)).await;
            assert_eq!(fast, slow, "{events} events");
            assert_eq!(fast.0, StatusCode::OK);
            assert_eq!(fast.1, "application/json");
        }
        let filtered = Accepted {
            events: 2,
            filtered: 1,
            suppressed: false,
        };
        let (_, _, body) = body_of(receipt(filtered, false)).await;
        assert_eq!(&body[..], br#"{"accepted":1,"filtered":1}"#);
        let (_, _, body) = body_of(receipt(
            Accepted {
                events: 1,
                filtered: 0,
                suppressed: false,
            },
            true,
        ))
        .await;
        assert_eq!(&body[..], br#"{"accepted":1,"duplicate":true}"#);
    }
}
