//! Per-source memory of accepted requests: de-duplication of vendor retries and replay
//! protection. Vendors send a request again when we answer slowly or not at all (Prisma Cloud
//! gives up after about 10 s, Wallarm after 15 s and then retries for hours); a captured signed
//! request can be sent again by anyone who saw it. A request seen before, while it is
//! remembered, is answered 200 with the first receipt and not queued twice.
//!
//! The key is what the sender signed, never a header it did not: the `webhook-id` where the
//! scheme signs it (Standard Webhooks), the signed timestamp and the body's SHA-256 for HMAC
//! with a timestamp header, else the body's SHA-256. A request is remembered for the
//! configured window, and, on schemes that sign a timestamp, at least until that timestamp
//! leaves the scheme's tolerance (after which verification refuses a replay anyway), so a
//! replay is never queued twice while it still verifies.
//!
//! A key is remembered only once its request is queued: a request that failed (503, a bad body)
//! leaves nothing behind, so its retry is processed normally. A copy arriving while the first is
//! still being queued gets 503 and Retry-After, never a 200 for events that might not be queued.
//! Memory is bounded by `max_entries` keys (150 to 300 bytes each); past it the oldest go first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use crate::auth::Signed;
use crate::config::DedupSettings;

type Key = [u8; 32];

#[derive(Debug, Clone, Copy)]
enum State<R> {
    InFlight,
    Done(R),
}

/// The memory of one source's requests; `R` is the receipt a duplicate is answered with (the
/// request path's `routes::Accepted`).
pub struct Dedup<R> {
    settings: DedupSettings,
    inner: Mutex<Inner<R>>,
}

/// One remembered request.
#[derive(Debug, Clone, Copy)]
struct Entry<R> {
    /// When it was first seen: identifies this entry in `order`.
    at: Instant,
    /// Forgotten from then on (once queued).
    until: Instant,
    state: State<R>,
}

struct Inner<R> {
    seen: HashMap<Key, Entry<R>>,
    /// Keys in insertion order, for expiry and the size bound.
    order: VecDeque<(Key, Instant)>,
}

impl<R> Default for Inner<R> {
    fn default() -> Self {
        Inner {
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<R> Inner<R> {
    /// Drops the oldest key, unless it was seen again since (a newer entry owns it then).
    fn forget_front(&mut self, k: Key, at: Instant) {
        self.order.pop_front();
        if self.seen.get(&k).is_some_and(|e| e.at == at) {
            self.seen.remove(&k);
        }
    }

    /// Forgets the oldest keys while they have expired (or were replaced). Lifetimes differ
    /// from key to key, so an expired key behind a live one waits for it; it counts against
    /// the bound meanwhile, and [`Dedup::check`] never answers from it.
    fn expire(&mut self, now: Instant) {
        while let Some(&(k, at)) = self.order.front() {
            let live = self.seen.get(&k).is_some_and(|e| {
                e.at == at && (matches!(e.state, State::InFlight) || e.until > now)
            });
            if live {
                break;
            }
            self.forget_front(k, at);
        }
    }
}

/// What a request is, seen from the window.
pub enum Seen<'a, R> {
    /// First time: queue it, then [`Pending::done`].
    New(Pending<'a, R>),
    /// Queued before, within the window: answer with this receipt.
    Duplicate(R),
    /// The same request is being queued right now.
    InFlight,
}

/// A first request being queued; dropped without `done`, it is forgotten.
pub struct Pending<'a, R> {
    dedup: &'a Dedup<R>,
    key: Key,
    /// How long to remember it once queued.
    keep: Duration,
    armed: bool,
}

impl<R> Pending<'_, R> {
    pub fn done(mut self, accepted: R) {
        self.armed = false;
        let mut inner = self.dedup.lock();
        if let Some(entry) = inner.seen.get_mut(&self.key) {
            entry.state = State::Done(accepted);
            entry.until = Instant::now() + self.keep;
        }
    }
}

impl<R> Drop for Pending<'_, R> {
    fn drop(&mut self) {
        if self.armed {
            self.dedup.lock().seen.remove(&self.key);
        }
    }
}

impl<R> Dedup<R> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<R>> {
        // Every update is a map insert or remove; a poisoned lock holds consistent data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<R: Copy> Dedup<R> {
    pub fn new(settings: DedupSettings) -> Dedup<R> {
        Dedup {
            settings,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// What this memory was built from (a reload keeps it when these stay the same).
    pub fn settings(&self) -> DedupSettings {
        self.settings
    }

    /// The key of a verified request: what its sender signed (see the module docs).
    pub fn key(signed: &Signed<'_>, body: &[u8]) -> Key {
        let mut h = Sha256::new();
        match signed {
            Signed::MessageId { id, .. } => {
                h.update(b"webhook-id\0");
                h.update(id);
            }
            Signed::Timestamp { text, .. } => {
                h.update(b"timestamp\0");
                h.update(text);
                h.update(b"\0body\0");
                h.update(body);
            }
            Signed::Body => {
                h.update(b"body\0");
                h.update(body);
            }
        }
        h.finalize().into()
    }

    /// Looks a request up, and remembers it if it is new. Once queued it is remembered for the
    /// window, or for `replayable` if longer (how long a replay of it would still verify).
    pub fn check(&self, key: Key, replayable: Duration) -> Seen<'_, R> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.expire(now);
        match inner.seen.get(&key) {
            Some(Entry {
                state: State::InFlight,
                ..
            }) => return Seen::InFlight,
            Some(Entry {
                state: State::Done(a),
                until,
                ..
            }) if *until > now => return Seen::Duplicate(*a),
            _ => {}
        }
        // Make room: the oldest keys go first.
        while inner.order.len() >= self.settings.max_entries {
            let Some(&(k, at)) = inner.order.front() else {
                break;
            };
            inner.forget_front(k, at);
        }
        inner.seen.insert(
            key,
            Entry {
                at: now,
                until: now,
                state: State::InFlight,
            },
        );
        inner.order.push_back((key, now));
        Seen::New(Pending {
            dedup: self,
            key,
            keep: self.settings.window.max(replayable),
            armed: true,
        })
    }

    /// [`check`](Self::check) for a verified request: its key and how long a replay of it
    /// would still verify, from what it signed.
    pub fn check_request(&self, signed: &Signed<'_>, body: &[u8]) -> Seen<'_, R> {
        self.check(
            Self::key(signed, body),
            signed.replayable_for(SystemTime::now()),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The receipt a duplicate is answered with (the request path's is `routes::Accepted`).
    #[derive(Debug, Clone, Copy)]
    struct Accepted {
        events: usize,
    }

    type Dedup = super::Dedup<Accepted>;

    fn accepted(n: usize) -> Accepted {
        Accepted { events: n }
    }

    fn dedup(window: Duration, max_entries: usize) -> Dedup {
        Dedup::new(DedupSettings {
            window,
            max_entries,
        })
    }

    fn body_key(body: &[u8]) -> Key {
        Dedup::key(&Signed::Body, body)
    }

    #[test]
    fn remembers_only_what_was_queued_within_the_window() {
        let d = dedup(Duration::from_millis(50), 100);
        let k = body_key(b"{\"a\":1}");
        let Seen::New(p) = d.check(k, Duration::ZERO) else {
            panic!()
        };
        assert!(matches!(d.check(k, Duration::ZERO), Seen::InFlight));
        drop(p);
        let Seen::New(p) = d.check(k, Duration::ZERO) else {
            panic!("a failed request is forgotten")
        };
        p.done(accepted(3));
        assert!(matches!(d.check(k, Duration::ZERO), Seen::Duplicate(a) if a.events == 3));
        std::thread::sleep(Duration::from_millis(60));
        assert!(
            matches!(d.check(k, Duration::ZERO), Seen::New(_)),
            "expired"
        );
    }

    #[test]
    fn only_a_signed_webhook_id_names_the_message() {
        let tol = Duration::from_secs(300);
        let sw = |id: &'static [u8]| Signed::MessageId {
            id,
            timestamp: Some(1000),
            tolerance: tol,
        };
        // Standard Webhooks signs the id: a retry of msg_1 is msg_1 whatever its body.
        assert_eq!(
            Dedup::key(&sw(b"msg_1"), b"x"),
            Dedup::key(&sw(b"msg_1"), b"y")
        );
        assert_ne!(
            Dedup::key(&sw(b"msg_1"), b"x"),
            Dedup::key(&sw(b"msg_2"), b"x")
        );
        // HMAC with a signed timestamp: the timestamp and the body, both.
        let ts = |text: &'static [u8]| Signed::Timestamp {
            text,
            timestamp: None,
            tolerance: tol,
        };
        assert_eq!(
            Dedup::key(&ts(b"1000"), b"x"),
            Dedup::key(&ts(b"1000"), b"x")
        );
        assert_ne!(
            Dedup::key(&ts(b"1000"), b"x"),
            Dedup::key(&ts(b"1001"), b"x")
        );
        assert_ne!(
            Dedup::key(&ts(b"1000"), b"x"),
            Dedup::key(&ts(b"1000"), b"y")
        );
        // Nothing else signed: the body alone, and no field of one key is another's.
        assert_ne!(body_key(b"x"), body_key(b"y"));
        assert_ne!(body_key(b"x"), Dedup::key(&sw(b"x"), b"x"));
    }

    #[test]
    fn a_replayable_request_is_remembered_past_the_window_and_the_bound_evicts_the_oldest() {
        let d = dedup(Duration::from_millis(20), 2);
        let k = body_key(b"r");
        let Seen::New(p) = d.check(k, Duration::from_secs(60)) else {
            panic!()
        };
        p.done(accepted(1));
        std::thread::sleep(Duration::from_millis(40));
        assert!(
            matches!(d.check(k, Duration::ZERO), Seen::Duplicate(_)),
            "still replayable: remembered past the window"
        );
        for body in [&b"1"[..], b"2"] {
            let Seen::New(p) = d.check(body_key(body), Duration::from_secs(60)) else {
                panic!()
            };
            p.done(accepted(1));
        }
        assert!(
            matches!(d.check(k, Duration::ZERO), Seen::New(_)),
            "evicted"
        );
    }

    #[test]
    fn replayable_for_runs_to_the_end_of_the_signed_timestamps_tolerance() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(10_000);
        let signed = |timestamp| Signed::Timestamp {
            text: b"",
            timestamp,
            tolerance: Duration::from_secs(300),
        };
        assert_eq!(
            signed(Some(10_000)).replayable_for(now),
            Duration::from_secs(301)
        );
        // A timestamp ahead of our clock stays valid for longer.
        assert_eq!(
            signed(Some(10_300)).replayable_for(now),
            Duration::from_secs(601)
        );
        assert_eq!(signed(Some(9_000)).replayable_for(now), Duration::ZERO);
        assert_eq!(signed(None).replayable_for(now), Duration::ZERO);
        assert_eq!(Signed::Body.replayable_for(now), Duration::ZERO);
    }
}
