//! Dispatch: decodes a body with the source's vendor, applies the source's filter, encodes each
//! event into the wire bytes of every target sink whose filter takes it, and enqueues into
//! every target queue all or nothing. If any queue lacks room, nothing is enqueued anywhere and the caller answers 503.
//!
//! The borrowed `Event`s never outlive this call: each is encoded the moment it is decoded, into
//! one buffer per target sink, and the queues receive reference-counted slices of those buffers.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::BytesMut;

use crate::config::{SinkFilter, SourceSettings};
use crate::metrics::SourceMetrics;
use crate::normalize::Timestamp;
use crate::server::reject::Reject;
use crate::sinks::{Encoder, Encoding, SinkHandle};
use crate::vendors::Context;

/// A configured source with what the request path needs at hand.
pub struct Source {
    pub settings: Arc<SourceSettings>,
    pub metrics: Arc<SourceMetrics>,
    /// The source's sinks, in a fixed order.
    pub targets: Vec<Target>,
    /// Remembered requests, when de-duplication is on.
    pub dedup: Option<Arc<crate::server::dedup::Dedup>>,
    /// Counters the admin API shows; they outlive changes to the source.
    pub stats: Arc<SourceStats>,
}

/// A source's live counters since the process started.
#[derive(Debug, Default)]
pub struct SourceStats {
    pub events_accepted: AtomicU64,
    /// Unix milliseconds of the last accepted request with events; 0 before the first.
    pub last_event_ms: AtomicI64,
    pub auth_failures: AtomicU64,
    /// Unix milliseconds of the last warning logged about unrecognised bodies; at most one a
    /// minute per source, so a misconfigured sender cannot flood the log.
    pub unrecognized_logged_ms: AtomicI64,
}

impl SourceStats {
    /// Counts a request's accepted events, received at `at`.
    pub fn accepted(&self, events: usize, at: Timestamp) {
        if events == 0 {
            return;
        }
        self.events_accepted
            .fetch_add(events as u64, Ordering::Relaxed);
        self.last_event_ms.store(at.millis(), Ordering::Relaxed);
    }

    pub fn auth_failure(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether a warning about unrecognised bodies may be logged at `at`: true at most once per
    /// [`UNRECOGNIZED_LOG_INTERVAL_MS`].
    pub fn may_log_unrecognized(&self, at: Timestamp) -> bool {
        let last = self.unrecognized_logged_ms.load(Ordering::Relaxed);
        let due = last == 0 || at.millis().saturating_sub(last) >= UNRECOGNIZED_LOG_INTERVAL_MS;
        due && self
            .unrecognized_logged_ms
            .compare_exchange(
                last,
                at.millis().max(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
    }
}

/// At most one warning a minute per source about bodies of an unrecognised shape.
pub const UNRECOGNIZED_LOG_INTERVAL_MS: i64 = 60_000;

/// One sink a source routes to: the sink, its filter, and this source's encoding for it.
pub struct Target {
    pub sink: Arc<SinkHandle>,
    pub filter: SinkFilter,
    pub encoding: Encoding,
}

/// What a request delivered into the queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// Events decoded from the body.
    pub events: usize,
    /// Of those, events the source's filter dropped on purpose.
    pub filtered: usize,
    /// The source is suppressed: the events were counted and not forwarded.
    pub suppressed: bool,
}

/// One target sink's share of a request: its encoded events back to back, and where each ends.
struct Encoded {
    buf: BytesMut,
    ends: Vec<usize>,
    /// Events the sink's filter left out.
    filtered: u64,
}

/// Events of disk queues on their way to disk: the request answers once each is written.
pub type Pending = Vec<crate::queue::disk::Written>;

pub fn dispatch(
    source: &Source,
    body: &str,
    received_at: Timestamp,
) -> Result<(Accepted, Pending), Reject> {
    let ctx = Context {
        source: &source.settings.id,
        received_at,
    };
    let filter = &source.settings.filter;
    let mut unrecognized = 0usize;
    if source.settings.suppressed {
        let events = source
            .settings
            .vendor
            .decode_mapped(
                body,
                &ctx,
                source.settings.mapping.as_ref(),
                &source.settings.redact,
                |e| {
                    unrecognized += usize::from(e.is_unrecognized());
                },
            )
            .map_err(Reject::Decode)?;
        source.metrics.events_received.increment(events as u64);
        source.metrics.events_suppressed.increment(events as u64);
        count_unrecognized(source, unrecognized, received_at);
        let accepted = Accepted {
            events,
            filtered: 0,
            suppressed: true,
        };
        return Ok((accepted, Vec::new()));
    }
    let mut encoded: Vec<Encoded> = source
        .targets
        .iter()
        .map(|_| Encoded {
            // The normalized form is roughly the body plus a few hundred bytes per event.
            buf: BytesMut::with_capacity(body.len() * 2 + 512),
            ends: Vec::new(),
            filtered: 0,
        })
        .collect();
    let mut filtered = 0;
    let mut encode_failed = false;
    let events = source
        .settings
        .vendor
        .decode_mapped(
            body,
            &ctx,
            source.settings.mapping.as_ref(),
            &source.settings.redact,
            |event| {
                unrecognized += usize::from(event.is_unrecognized());
                if !filter.is_empty() && !filter.accepts(event.severity, event.kind, event.status) {
                    filtered += 1;
                    return;
                }
                for (target, out) in source.targets.iter().zip(encoded.iter_mut()) {
                    if !target.filter.is_empty()
                        && !target
                            .filter
                            .accepts(event.severity, event.kind, event.vendor)
                    {
                        out.filtered += 1;
                        continue;
                    }
                    let start = out.buf.len();
                    if target.encoding.encode(&event, &mut out.buf).is_err() {
                        out.buf.truncate(start);
                        encode_failed = true;
                        continue;
                    }
                    out.ends.push(out.buf.len());
                }
            },
        )
        .map_err(Reject::Decode)?;
    if encode_failed {
        return Err(Reject::Internal("an event could not be encoded for a sink"));
    }
    let accepted = Accepted {
        events,
        filtered,
        suppressed: false,
    };
    if events == filtered {
        count(source, accepted, &encoded);
        count_unrecognized(source, unrecognized, received_at);
        return Ok((accepted, Vec::new()));
    }

    let mut reservations = Vec::with_capacity(encoded.len());
    for (target, out) in source.targets.iter().zip(&encoded) {
        let sink = &target.sink;
        if out.ends.is_empty() {
            reservations.push(None);
            continue;
        }
        match sink
            .queue
            .try_reserve(out.ends.len() as u64, out.buf.len() as u64)
        {
            Ok(r) => reservations.push(Some(r)),
            // Dropping the reservations made so far releases their room.
            Err(_) => {
                return Err(Reject::QueueFull {
                    sink: sink.id.clone(),
                })
            }
        }
    }
    count(source, accepted, &encoded);
    count_unrecognized(source, unrecognized, received_at);
    let mut pending = Vec::new();
    for ((reservation, out), target) in reservations.into_iter().zip(encoded).zip(&source.targets) {
        let Some(reservation) = reservation else {
            continue;
        };
        let sink = &target.sink;
        let all = out.buf.freeze();
        let mut start = 0;
        let items = out
            .ends
            .iter()
            .map(|&end| {
                let one = all.slice(start..end);
                start = end;
                one
            })
            .collect();
        match sink.queue.commit(reservation, items) {
            Ok(Some(written)) => pending.push(written),
            Ok(None) => {}
            // The disk writer is too far behind: refuse (queues committed before this one
            // keep their copy; the sender's retry may duplicate it, never lose it).
            Err(_) => {
                return Err(Reject::QueueFull {
                    sink: sink.id.clone(),
                })
            }
        }
        sink.update_depth_gauges();
    }
    Ok((accepted, pending))
}

/// Counts a request's events once they are accepted (a refused request counts nothing, so a
/// sender's retry is not counted twice).
fn count(source: &Source, accepted: Accepted, encoded: &[Encoded]) {
    for (target, out) in source.targets.iter().zip(encoded) {
        if out.filtered > 0 {
            target.sink.metrics.filtered.increment(out.filtered);
        }
    }
    source
        .metrics
        .events_received
        .increment(accepted.events as u64);
    source
        .metrics
        .events_filtered
        .increment(accepted.filtered as u64);
}

/// Counts an accepted request's events of an unrecognised shape and, at most once a minute per
/// source, logs a warning: they still reach the SIEM (a refused vendor disables its webhook),
/// marked with severity unknown, but someone should look at the sender's template.
fn count_unrecognized(source: &Source, unrecognized: usize, at: Timestamp) {
    if unrecognized == 0 {
        return;
    }
    source
        .metrics
        .events_unrecognized
        .increment(unrecognized as u64);
    if source.stats.may_log_unrecognized(at) {
        tracing::warn!(
            source = %source.settings.id,
            vendor = source.settings.vendor.as_str(),
            events = unrecognized,
            "a body carried none of the vendor's recognisable fields; forwarded with severity unknown (check the sender's payload template)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unrecognized_warning_at_most_once_a_minute() {
        let stats = SourceStats::default();
        let t0 = Timestamp(1_700_000_000_000);
        assert!(stats.may_log_unrecognized(t0));
        assert!(!stats.may_log_unrecognized(t0));
        assert!(
            !stats.may_log_unrecognized(Timestamp(t0.millis() + UNRECOGNIZED_LOG_INTERVAL_MS - 1))
        );
        assert!(stats.may_log_unrecognized(Timestamp(t0.millis() + UNRECOGNIZED_LOG_INTERVAL_MS)));
        // A clock that stepped back does not log again before the minute is over.
        assert!(!stats.may_log_unrecognized(t0));
    }
}
