//! The runtime source, in one place: the routing table the hooks listener reads ([`Routes`]),
//! each configured source as the request path uses it ([`Source`]: settings, metric handles,
//! target sinks, de-duplication window, live counters), and the receipt a request gets
//! ([`Accepted`]). Built by `control` from validated settings, swapped whole on a reload, read
//! by `server::ingest` and `dispatch`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use crate::config::{Limits, SinkFilter, SourceSettings};
use crate::dedup::Dedup;
use crate::metrics::sharded::ShardedU64;
use crate::metrics::SourceMetrics;
use crate::normalize::Timestamp;
use crate::sinks::{Encoding, SinkHandle};

/// What requests are routed by: every enabled source, the per-request limits, and the active
/// sinks. Replaced atomically, so a request sees one version from start to end.
pub struct Routes {
    pub sources: HashMap<String, Arc<Source>>,
    pub limits: Limits,
    pub sinks: Vec<Arc<SinkHandle>>,
}

/// A configured source with what the request path needs at hand.
pub struct Source {
    pub settings: Arc<SourceSettings>,
    pub metrics: Arc<SourceMetrics>,
    /// The source's sinks, in a fixed order.
    pub targets: Vec<Target>,
    /// Remembered requests, when de-duplication is on.
    pub dedup: Option<Arc<Dedup<Accepted>>>,
    /// Counters the admin API shows; they outlive changes to the source.
    pub stats: Arc<SourceStats>,
}

/// A source's live counters since the process started.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Kept per thread shard: every accepted request adds to it.
    pub events_accepted: ShardedU64,
    /// Unix milliseconds of the last accepted request with events; 0 before the first.
    pub last_event_ms: AtomicI64,
    pub auth_failures: AtomicU64,
    /// Unix milliseconds of the last warning logged about unrecognised bodies; at most one a
    /// minute per source, so a misconfigured sender cannot flood the log.
    pub unrecognized_logged_ms: AtomicI64,
    /// The last few accepted events, normalized, for the console: at most [`RECENT_EVENTS`],
    /// each at most [`RECENT_EVENT_BYTES`], so a source costs a bounded few kilobytes.
    recent: Mutex<VecDeque<RecentEvent>>,
    /// Unix milliseconds of the last request whose events were kept for the console: one
    /// request per [`RECENT_INTERVAL_MS`] at most, so a flood pays one atomic load per request
    /// for the console, not an extra encode and a lock.
    recent_claimed_ms: AtomicI64,
    /// The last few refused requests (time and reason), at most [`RECENT_REFUSALS`].
    refusals: Mutex<VecDeque<(Timestamp, &'static str)>>,
}

/// Events kept per source for the console.
pub const RECENT_EVENTS: usize = 5;
/// Largest normalized event kept whole; a larger one is kept as its size alone.
pub const RECENT_EVENT_BYTES: usize = 16 * 1024;
/// At most one request per this many milliseconds per source has its events kept.
pub const RECENT_INTERVAL_MS: i64 = 100;
/// Refusals kept per source for the console.
pub const RECENT_REFUSALS: usize = 20;

/// One accepted event as the file sink would write it (normalized and redacted, with the
/// vendor's object in `raw`); `None` when it was over [`RECENT_EVENT_BYTES`].
#[derive(Debug, Clone)]
pub struct RecentEvent {
    pub received_at: Timestamp,
    pub json: Option<Bytes>,
    pub bytes: usize,
}

impl SourceStats {
    /// Counts a request's accepted events, received at `at`.
    pub fn accepted(&self, events: usize, at: Timestamp) {
        if events == 0 {
            return;
        }
        self.events_accepted.add(events as u64);
        // Written only when it moves (about once a millisecond under load, not per request),
        // so the listener's threads mostly read the line rather than take it from each other.
        if self.last_event_ms.load(Ordering::Relaxed) < at.millis() {
            self.last_event_ms.store(at.millis(), Ordering::Relaxed);
        }
    }

    pub fn auth_failure(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// How many of a request received at `at` to keep for the console: [`RECENT_EVENTS`] for
    /// the first request after [`RECENT_INTERVAL_MS`], none for the others.
    pub fn claim_recent(&self, at: Timestamp) -> usize {
        let last = self.recent_claimed_ms.load(Ordering::Relaxed);
        if at.millis().saturating_sub(last) < RECENT_INTERVAL_MS {
            return 0;
        }
        match self.recent_claimed_ms.compare_exchange(
            last,
            at.millis(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => RECENT_EVENTS,
            Err(_) => 0,
        }
    }

    /// Remembers a request's first events (see [`RECENT_EVENTS`]), newest last.
    pub fn remember(&self, events: Vec<RecentEvent>) {
        if events.is_empty() {
            return;
        }
        let mut r = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        for e in events {
            if r.len() == RECENT_EVENTS {
                r.pop_front();
            }
            r.push_back(e);
        }
    }

    /// The remembered events, oldest first.
    pub fn recent(&self) -> Vec<RecentEvent> {
        let r = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        r.iter().cloned().collect()
    }

    /// Remembers a refused request.
    pub fn refused(&self, reason: &'static str, at: Timestamp) {
        let mut r = self.refusals.lock().unwrap_or_else(PoisonError::into_inner);
        if r.len() == RECENT_REFUSALS {
            r.pop_front();
        }
        r.push_back((at, reason));
    }

    /// The remembered refusals, oldest first.
    pub fn refusals(&self) -> Vec<(Timestamp, &'static str)> {
        let r = self.refusals.lock().unwrap_or_else(PoisonError::into_inner);
        r.iter().copied().collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_keeps_one_request_per_interval_for_the_console() {
        let stats = SourceStats::default();
        let t0 = Timestamp(1_700_000_000_000);
        assert_eq!(stats.claim_recent(t0), RECENT_EVENTS);
        assert_eq!(stats.claim_recent(t0), 0);
        assert_eq!(
            stats.claim_recent(Timestamp(t0.millis() + RECENT_INTERVAL_MS - 1)),
            0
        );
        assert_eq!(
            stats.claim_recent(Timestamp(t0.millis() + RECENT_INTERVAL_MS)),
            RECENT_EVENTS
        );
        stats.remember(Vec::new());
        assert!(stats.recent().is_empty());
    }

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
