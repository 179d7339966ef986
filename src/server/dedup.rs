//! Per-source de-duplication of vendor retries. Vendors send a request again when we answer
//! slowly or not at all (Prisma Cloud gives up after about 10 s, Wallarm after 15 s and then
//! retries for hours); within the window, a request seen before is answered 200 with the first
//! receipt and not queued twice.
//!
//! The key is the `webhook-id` header when the sender gives one (Standard Webhooks), else the
//! SHA-256 of the body. A key is remembered only once its request is queued: a request that
//! failed (503, a bad body) leaves nothing behind, so its retry is processed normally. A copy
//! arriving while the first is still being queued gets 503 and Retry-After, never a 200 for
//! events that might not be queued. Memory is bounded: the oldest keys go first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::dispatch::Accepted;

type Key = [u8; 32];

#[derive(Debug, Clone, Copy)]
enum State {
    InFlight,
    Done(Accepted),
}

pub struct Dedup {
    window: Duration,
    max_entries: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    seen: HashMap<Key, (Instant, State)>,
    /// Keys in insertion order, for expiry and the size bound.
    order: VecDeque<(Key, Instant)>,
}

impl Inner {
    /// Drops the oldest key, unless it was seen again since (a newer entry owns it then).
    fn forget_front(&mut self, k: Key, at: Instant) {
        self.order.pop_front();
        if self.seen.get(&k).is_some_and(|(t, _)| *t == at) {
            self.seen.remove(&k);
        }
    }
}

/// What a request is, seen from the window.
pub enum Seen<'a> {
    /// First time: queue it, then [`Pending::done`].
    New(Pending<'a>),
    /// Queued before, within the window: answer with this receipt.
    Duplicate(Accepted),
    /// The same request is being queued right now.
    InFlight,
}

/// A first request being queued; dropped without `done`, it is forgotten.
pub struct Pending<'a> {
    dedup: &'a Dedup,
    key: Key,
    armed: bool,
}

impl Pending<'_> {
    pub fn done(mut self, accepted: Accepted) {
        self.armed = false;
        let mut inner = self.dedup.lock();
        if let Some(entry) = inner.seen.get_mut(&self.key) {
            entry.1 = State::Done(accepted);
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.dedup.lock().seen.remove(&self.key);
        }
    }
}

impl Dedup {
    pub fn new(window: Duration, max_entries: usize) -> Dedup {
        Dedup {
            window,
            max_entries,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every update is a map insert or remove; a poisoned lock holds consistent data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key of a request: its `webhook-id`, else its body's hash.
    pub fn key(headers: &HeaderMap, body: &[u8]) -> Key {
        let mut h = Sha256::new();
        match headers.get("webhook-id") {
            Some(id) => {
                h.update(b"webhook-id\0");
                h.update(id.as_bytes());
            }
            None => {
                h.update(b"body\0");
                h.update(body);
            }
        }
        h.finalize().into()
    }

    pub fn check(&self, key: Key) -> Seen<'_> {
        let now = Instant::now();
        let mut inner = self.lock();
        // Forget what is older than the window.
        while let Some(&(k, at)) = inner.order.front() {
            if now.duration_since(at) < self.window {
                break;
            }
            inner.forget_front(k, at);
        }
        match inner.seen.get(&key) {
            Some((_, State::Done(a))) => return Seen::Duplicate(*a),
            Some((_, State::InFlight)) => return Seen::InFlight,
            None => {}
        }
        // Make room: the oldest keys go first.
        while inner.order.len() >= self.max_entries {
            let Some(&(k, at)) = inner.order.front() else {
                break;
            };
            inner.forget_front(k, at);
        }
        inner.seen.insert(key, (now, State::InFlight));
        inner.order.push_back((key, now));
        Seen::New(Pending {
            dedup: self,
            key,
            armed: true,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn accepted(n: usize) -> Accepted {
        Accepted {
            events: n,
            filtered: 0,
            suppressed: false,
        }
    }

    #[test]
    fn remembers_only_what_was_queued_within_the_window() {
        let d = Dedup::new(Duration::from_millis(50), 100);
        let k = Dedup::key(&HeaderMap::new(), b"{\"a\":1}");
        let Seen::New(p) = d.check(k) else { panic!() };
        assert!(matches!(d.check(k), Seen::InFlight));
        drop(p);
        let Seen::New(p) = d.check(k) else {
            panic!("a failed request is forgotten")
        };
        p.done(accepted(3));
        assert!(matches!(d.check(k), Seen::Duplicate(a) if a.events == 3));
        std::thread::sleep(Duration::from_millis(60));
        assert!(matches!(d.check(k), Seen::New(_)), "expired");
    }

    #[test]
    fn webhook_id_wins_over_the_body_and_the_bound_evicts_the_oldest() {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", "msg_1".parse().unwrap());
        assert_eq!(Dedup::key(&h, b"x"), Dedup::key(&h, b"y"));
        assert_ne!(Dedup::key(&h, b"x"), Dedup::key(&HeaderMap::new(), b"x"));
        let d = Dedup::new(Duration::from_secs(60), 2);
        for body in [&b"1"[..], b"2", b"3"] {
            let Seen::New(p) = d.check(Dedup::key(&HeaderMap::new(), body)) else {
                panic!()
            };
            p.done(accepted(1));
        }
        assert!(matches!(
            d.check(Dedup::key(&HeaderMap::new(), b"1")),
            Seen::New(_)
        ));
        assert!(matches!(
            d.check(Dedup::key(&HeaderMap::new(), b"3")),
            Seen::Duplicate(_)
        ));
    }
}
