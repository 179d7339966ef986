//! Dispatch: decodes a body with the source's vendor, applies the source's filter, encodes each
//! event into the wire bytes of every target sink whose filter takes it, and enqueues into
//! every target queue all or nothing.
//!
//! The borrowed `Event`s never outlive this call: each is encoded the moment it is decoded, into
//! one buffer per target sink, and the queues receive reference-counted slices of those buffers.
//!
//! A request's cost is bounded as it goes, never after the fact: room in each target queue is
//! reserved as events are encoded, and the work stops at the first event that does not fit —
//! past `max_events_per_request` (413: it can never be taken), past a queue's whole bounds (413,
//! likewise), or past the room a queue has now (503: retry later). A refused request leaves
//! nothing in any queue. Bodies above [`INLINE_BODY_BYTES`] are decoded and encoded on the
//! blocking pool, at most [`heavy_permits`] at once, so that large bodies cannot take the
//! runtime's threads from the small requests and the probes.

use std::cell::RefCell;
use std::ops::ControlFlow;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use std::io::Write as _;

use bytes::{BufMut as _, Bytes, BytesMut};
use tokio::sync::Semaphore;

use crate::normalize::Event;
use crate::normalize::Timestamp;
use crate::queue::{EventKeys, Reservation};
use crate::queue::{WriteError, Written};
use crate::routes::{Accepted, RecentEvent, Source, Target, RECENT_EVENT_BYTES};
use crate::sinks::{Encoder, Ndjson, SinkHandle};
use crate::vendors::{json, Context, DecodeError};

/// Bodies up to this size are decoded and encoded inline on the runtime thread (typical webhook
/// calls are a few KB, and a hop to another thread would cost more than the work); larger ones
/// on the blocking pool, behind [`heavy_permits`].
pub const INLINE_BODY_BYTES: usize = 64 * 1024;

/// Room reserved ahead in a queue, so its lock is taken once per this many events (or bytes)
/// rather than per event; what a request does not use is given back before it commits.
const RESERVE_AHEAD_EVENTS: u64 = 64;
const RESERVE_AHEAD_BYTES: u64 = 64 * 1024;

/// How long a request waits for its events to reach a disk queue's log before it is refused
/// (vendors give up after 10-15 s; the events may still land, and be delivered).
const DISK_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a body was not dispatched; the server turns each into its answer (`Reject`).
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// More events than `max_events_per_request`: the request can never be taken whole.
    #[error("more than {limit} events in one request")]
    TooManyEvents { limit: usize },
    /// More events (or bytes) for one sink than its whole queue holds: it can never fit.
    #[error("more events for sink {sink} than its whole queue holds")]
    BatchTooLarge { sink: String },
    /// No room in a sink's queue now (or its disk writer is too far behind).
    #[error("the queue of sink {sink} is full")]
    QueueFull { sink: String },
    /// A disk queue could not write (or fsync) the events in time.
    #[error("a disk queue could not write the events in time")]
    QueueWrite,
    /// A Kafka queue refused an event as larger than its producer or brokers take (the
    /// request's other events were delivered): it can never be taken as it is.
    #[error("sink {sink}: {reason}")]
    EventTooLarge { sink: String, reason: Arc<str> },
    #[error("{0}")]
    Internal(&'static str),
}

/// A dispatched request: what it delivered, and the wait until it is durable.
#[must_use = "a request is answered only once its events are durable"]
pub struct Dispatched {
    pub accepted: Accepted,
    pub durable: Durable,
}

/// The wait until a dispatched request's events are durable: nothing for memory queues; for
/// disk queues until each has written (and fsynced, per its policy) the events to its log,
/// each within `DISK_WRITE_TIMEOUT` (5 s).
#[must_use = "a request is answered only once its events are durable"]
pub struct Durable {
    /// Each queue's receipt, with how long it may take, and its sink.
    written: Vec<(Written, Duration, Arc<SinkHandle>)>,
}

impl Durable {
    /// Resolves once every disk queue the request went to has its events in its log, and
    /// every Kafka queue its delivery reports (within its `produce_timeout`); `QueueWrite`
    /// when one failed or took too long (the events may still land), `EventTooLarge` when a
    /// Kafka queue refused an event for its size alone.
    pub async fn wait(self, source: &str) -> Result<(), DispatchError> {
        for (w, timeout, sink) in self.written {
            match tokio::time::timeout(timeout, w).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(WriteError::TooLarge(reason)))) => {
                    return Err(DispatchError::EventTooLarge {
                        sink: sink.id.clone(),
                        reason,
                    });
                }
                Ok(Ok(Err(e))) => {
                    tracing::error!(source = %source, error = %e, "queue write failed");
                    return Err(DispatchError::QueueWrite);
                }
                Ok(Err(_)) | Err(_) => return Err(DispatchError::QueueWrite),
            }
        }
        Ok(())
    }
}

/// One target sink's share of a request: its encoded events back to back, where each ends,
/// and the queue room held for them so far.
struct Encoded<'q> {
    buf: BytesMut,
    ends: Vec<usize>,
    /// Events the sink's filter left out.
    filtered: u64,
    /// Kafka queues: each event's id, back to back, ending at `id_ends` (message headers).
    keyed: bool,
    ids: BytesMut,
    id_ends: Vec<usize>,
    reservation: Option<Reservation<'q>>,
}

impl<'q> Encoded<'q> {
    /// Makes sure the queue holds room for every event encoded so far, reserving a little ahead.
    /// `BatchTooLarge` when they are more than the whole queue holds, `QueueFull` when they
    /// are more than its room now; the room held so far is kept for the caller to drop.
    fn cover(&mut self, sink: &'q SinkHandle) -> Result<(), DispatchError> {
        let (events, bytes) = (self.ends.len() as u64, self.buf.len() as u64);
        let (held_events, held_bytes) = self.reservation.as_ref().map_or((0, 0), Reservation::held);
        if events <= held_events && bytes <= held_bytes {
            return Ok(());
        }
        let limits = sink.queue.limits();
        if events > limits.max_events || bytes > limits.max_bytes {
            return Err(DispatchError::BatchTooLarge {
                sink: sink.id.clone(),
            });
        }
        let full = || DispatchError::QueueFull {
            sink: sink.id.clone(),
        };
        let more_events = events.saturating_sub(held_events);
        let more_bytes = bytes.saturating_sub(held_bytes);
        let (ahead_events, ahead_bytes) = (
            more_events.max(RESERVE_AHEAD_EVENTS),
            more_bytes.max(RESERVE_AHEAD_BYTES),
        );
        match &mut self.reservation {
            Some(r) => r
                .grow(ahead_events, ahead_bytes)
                .or_else(|_| r.grow(more_events, more_bytes))
                .map_err(|_| full()),
            // The first event: one trip to the queue's lock takes the room ahead too.
            None => {
                let r = sink
                    .queue
                    .try_reserve(ahead_events, ahead_bytes)
                    .or_else(|_| sink.queue.try_reserve(more_events, more_bytes))
                    .map_err(|_| full())?;
                self.reservation = Some(r);
                Ok(())
            }
        }
    }
}

impl Drop for Encoded<'_> {
    fn drop(&mut self) {
        give_back_ends(std::mem::take(&mut self.ends));
    }
}

/// Most event boundaries a spare list may hold on to: a request of more events gives its
/// larger list back to the allocator rather than keep it for the thread's next request.
const SPARE_ENDS_CAPACITY: usize = 1024;
/// Most spare lists a thread keeps (one per target sink of a request).
const SPARE_ENDS_LISTS: usize = 8;

thread_local! {
    /// Event-boundary lists of finished requests, cleared, for the next request on this
    /// thread: a request's `ends` reuse an earlier request's allocation.
    static SPARE_ENDS: RefCell<Vec<Vec<usize>>> = const { RefCell::new(Vec::new()) };
}

fn spare_ends() -> Vec<usize> {
    SPARE_ENDS
        .try_with(|s| s.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn give_back_ends(mut ends: Vec<usize>) {
    if ends.capacity() == 0 || ends.capacity() > SPARE_ENDS_CAPACITY {
        return;
    }
    ends.clear();
    let _ = SPARE_ENDS.try_with(|s| {
        let mut spare = s.borrow_mut();
        if spare.len() < SPARE_ENDS_LISTS {
            spare.push(ends);
        }
    });
}

/// The room a sink's buffer takes for a body of `body_len` bytes, guessed from its first event
/// (`first`): that event's encoded size ([`Event::encoded_len_hint`]) for each `raw` of its size
/// in the body, so that a body of one alert, or of alike ones, is encoded without the buffer
/// growing (a copy of all written so far, and a buffer of twice the size). A memory queue keeps
/// the whole buffer alive while it counts only the encoded bytes, so the guess never goes above
/// twice the body and 1 KiB unless the first event alone needs more; a body of many small
/// events grows its buffer as it goes.
fn first_capacity(body_len: usize, first: &Event<'_>) -> usize {
    let hint = first.encoded_len_hint();
    let raw = first.raw.get().len().max(1);
    let scaled = hint.saturating_mul(body_len.max(raw)) / raw;
    scaled
        .min(body_len.saturating_mul(2).saturating_add(1024))
        .max(hint)
}

/// How many large bodies are decoded and encoded at once, off the runtime: half the CPUs, at
/// least one, so that they never take every core from the small requests.
pub fn heavy_permits() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

fn heavy() -> &'static Semaphore {
    static HEAVY: OnceLock<Semaphore> = OnceLock::new();
    HEAVY.get_or_init(|| Semaphore::new(heavy_permits()))
}

/// Checks and dispatches a request's raw body (see [`dispatch`]): inline when it is small,
/// else on the blocking pool once one of the [`heavy_permits`] is free.
pub async fn dispatch_body(
    source: &Arc<Source>,
    body: Bytes,
    received_at: Timestamp,
    max_events: usize,
) -> Result<Dispatched, DispatchError> {
    if body.len() <= INLINE_BODY_BYTES {
        return dispatch_raw(source, &body, received_at, max_events);
    }
    let permit = heavy()
        .acquire()
        .await
        .map_err(|_| DispatchError::Internal("the decoding pool is closed"))?;
    // Only a body decoded off the event loop takes a reference of its own to the source: the
    // reference count is shared by every thread serving the source.
    let source = source.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        dispatch_raw(&source, &body, received_at, max_events)
    })
    .await
    .unwrap_or(Err(DispatchError::Internal("decoding the body failed")))
}

fn dispatch_raw(
    source: &Source,
    body: &[u8],
    received_at: Timestamp,
    max_events: usize,
) -> Result<Dispatched, DispatchError> {
    // The body's limits are checked by the decoder (`Vendor::decode_until`).
    let text = json::utf8(body).map_err(DispatchError::Decode)?;
    dispatch(source, text, received_at, max_events)
}

/// Decodes, filters, encodes and enqueues one body; refuses it whole at the first event past
/// `max_events` or past a target queue's room (see the module docs).
pub fn dispatch(
    source: &Source,
    body: &str,
    received_at: Timestamp,
    max_events: usize,
) -> Result<Dispatched, DispatchError> {
    let ctx = Context {
        source: &source.settings.id,
        received_at,
    };
    let filter = &source.settings.filter;
    let mapping = source.settings.mapping.as_ref();
    let redact = &source.settings.redact;
    let mut seen = 0usize;
    let mut unrecognized = 0usize;
    // The request's first few events, for the console: a few encodes for at most one request
    // per source every `RECENT_INTERVAL_MS`, none for the rest of a flood.
    let keep_recent = source.stats.claim_recent(received_at);
    let mut recent: Vec<RecentEvent> = Vec::new();
    if source.settings.suppressed {
        let events = source
            .settings
            .vendor
            .decode_until(body, &ctx, mapping, redact, |e| {
                seen += 1;
                if seen > max_events {
                    ControlFlow::Break(())
                } else {
                    unrecognized += usize::from(e.is_unrecognized());
                    if recent.len() < keep_recent {
                        recent.push(remembered(&e, received_at));
                    }
                    ControlFlow::Continue(())
                }
            })
            .map_err(DispatchError::Decode)?;
        if events > max_events {
            return Err(DispatchError::TooManyEvents { limit: max_events });
        }
        source.metrics.events_received.increment(events as u64);
        source.metrics.events_suppressed.increment(events as u64);
        count_unrecognized(source, unrecognized, received_at);
        source.stats.remember(recent);
        let accepted = Accepted {
            events,
            filtered: 0,
            suppressed: true,
        };
        return Ok(Dispatched {
            accepted,
            durable: Durable {
                written: Vec::new(),
            },
        });
    }
    let share = |t: &Target| Encoded {
        // Sized at the first event (`first_capacity`).
        buf: BytesMut::new(),
        ends: spare_ends(),
        filtered: 0,
        keyed: t.sink.queue.kind() == "kafka",
        ids: BytesMut::new(),
        id_ends: Vec::new(),
        reservation: None,
    };
    // The first target's share inline, the others (if any) in a list: a source with one sink,
    // the usual case, allocates no list per request.
    let (first, others) = source
        .targets
        .split_first()
        .map_or((None, &[][..]), |(t, rest)| (Some(t), rest));
    let mut first = first.map(share);
    let mut rest: Vec<Encoded<'_>> = others.iter().map(share).collect();
    let mut filtered = 0;
    let mut stopped: Option<DispatchError> = None;
    let events = source
        .settings
        .vendor
        .decode_until(body, &ctx, mapping, redact, |event| {
            seen += 1;
            if seen > max_events {
                stopped = Some(DispatchError::TooManyEvents { limit: max_events });
                return ControlFlow::Break(());
            }
            unrecognized += usize::from(event.is_unrecognized());
            if recent.len() < keep_recent {
                recent.push(remembered(&event, received_at));
            }
            if !filter.is_empty() && !filter.accepts(event.severity, event.kind, event.status) {
                filtered += 1;
                return ControlFlow::Continue(());
            }
            for (target, out) in source
                .targets
                .iter()
                .zip(first.iter_mut().chain(rest.iter_mut()))
            {
                if !target.filter.is_empty()
                    && !target
                        .filter
                        .accepts(event.severity, event.kind, event.vendor)
                {
                    out.filtered += 1;
                    continue;
                }
                if out.buf.capacity() == 0 {
                    out.buf.reserve(first_capacity(body.len(), &event));
                }
                let start = out.buf.len();
                if target.encoding.encode(&event, &mut out.buf).is_err() {
                    out.buf.truncate(start);
                    stopped = Some(DispatchError::Internal(
                        "an event could not be encoded for a sink",
                    ));
                    return ControlFlow::Break(());
                }
                out.ends.push(out.buf.len());
                if out.keyed {
                    // Display of an id writes into the buffer; it cannot fail.
                    let _ = write!((&mut out.ids).writer(), "{}", event.id);
                    out.id_ends.push(out.ids.len());
                }
                if let Err(refused) = out.cover(&target.sink) {
                    stopped = Some(refused);
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        })
        .map_err(DispatchError::Decode)?;
    // Dropping the shares gives back every queue's room held so far.
    if let Some(refused) = stopped {
        return Err(refused);
    }
    let accepted = Accepted {
        events,
        filtered,
        suppressed: false,
    };
    count(source, accepted, first.iter().chain(&rest));
    count_unrecognized(source, unrecognized, received_at);
    source.stats.remember(recent);
    let mut written = Vec::new();
    for (mut out, target) in first.into_iter().chain(rest).zip(&source.targets) {
        let Some(reservation) = out.reservation.take() else {
            continue;
        };
        let sink = &target.sink;
        let all = std::mem::take(&mut out.buf).freeze();
        let keys = EventKeys {
            source: &source.settings.id,
            vendor: source.settings.vendor.as_str(),
            ids: &out.ids,
            id_ends: &out.id_ends,
        };
        match sink
            .queue
            .commit_encoded(reservation, &all, &out.ends, keys)
        {
            Ok(Some(w)) => written.push((
                w,
                sink.queue.write_timeout().unwrap_or(DISK_WRITE_TIMEOUT),
                sink.clone(),
            )),
            Ok(None) => {}
            // The disk writer is too far behind: refuse (queues committed before this one
            // keep their copy; the sender's retry may duplicate it, never lose it).
            Err(_) => {
                return Err(DispatchError::QueueFull {
                    sink: sink.id.clone(),
                })
            }
        }
        // The depth gauges are brought up to date when `/metrics` is rendered (and by the
        // sink's worker), not per request.
    }
    Ok(Dispatched {
        accepted,
        durable: Durable { written },
    })
}

/// An event as the console shows it: normalized and redacted, as the file sink writes it.
fn remembered(event: &Event<'_>, received_at: Timestamp) -> RecentEvent {
    let mut buf = BytesMut::new();
    let ok = Ndjson.encode(event, &mut buf).is_ok();
    let bytes = buf.len();
    RecentEvent {
        received_at,
        json: (ok && bytes <= RECENT_EVENT_BYTES).then(|| buf.freeze()),
        bytes,
    }
}

/// Counts a request's events once they are accepted (a refused request counts nothing, so a
/// sender's retry is not counted twice).
fn count<'a, 'q: 'a>(
    source: &Source,
    accepted: Accepted,
    encoded: impl Iterator<Item = &'a Encoded<'q>>,
) {
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
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::normalize::vendor::Vendor;

    /// A vendor fixture of one event, NDJSON-encoded into a buffer sized from that event, fits
    /// without the buffer growing (a copy of everything written so far); and for every fixture
    /// the guess stays within twice the body and 1 KiB, or the first event's own size, since a
    /// memory queue holds the whole buffer while it counts only what the events take.
    #[test]
    fn a_body_is_encoded_into_the_room_guessed_from_its_first_event() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vendors");
        let ctx = Context {
            source: "fixtures",
            received_at: Timestamp(1_700_000_000_000),
        };
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let vendor = ["prisma_cloud", "wallarm", "coralogix", "immuta", "generic"]
                .into_iter()
                .find(|v| name.starts_with(v))
                .and_then(Vendor::from_name)
                .unwrap();
            let body = std::fs::read_to_string(&path).unwrap();
            let mut buf = BytesMut::new();
            let mut guessed = 0;
            let decoded = vendor.decode(&body, &ctx, |e| {
                if buf.capacity() == 0 {
                    buf.reserve(first_capacity(body.len(), &e));
                    guessed = buf.capacity();
                    assert!(
                        guessed <= (2 * body.len() + 1024).max(e.encoded_len_hint()),
                        "{name}: {guessed} bytes for a body of {}",
                        body.len()
                    );
                }
                Ndjson.encode(&e, &mut buf).unwrap();
            });
            let Ok(events) = decoded else {
                continue;
            };
            assert!(!buf.is_empty(), "{name}");
            if events == 1 {
                assert_eq!(
                    buf.capacity(),
                    guessed,
                    "{name}: grew to {} bytes",
                    buf.len()
                );
                checked += 1;
            }
        }
        assert!(checked >= 15, "{checked} one-event fixtures");
    }
}
