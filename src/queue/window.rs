//! `Window`: the in-memory part of a queue, a bounded FIFO of encoded events (one `Bytes`
//! each) that the sink's worker reads, with the accounting of the whole queue's bounds.
//!
//! A memory queue's window holds every event it accepted. A disk queue's window holds only the
//! oldest undelivered events, up to its own bounds; the events after them are counted here (as
//! "spilled") but held only in the disk queue's log, which reads them back into the window, in
//! log order, as deliveries make room. Depth and the queue bounds count both.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
// tokio's clock: the real one, except in tests that pause it.
use tokio::time::Instant;

use crate::config::QueueLimits;

/// Most runs of events the oldest-age record keeps; beyond it neighbouring runs are merged
/// (each keeping the older time), so a long backlog costs a bounded amount of memory and the
/// age of the oldest event stays exact.
const MAX_STAMPS: usize = 8192;

/// Refusal to reserve: the queue has no room for the whole request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("queue full")]
pub struct QueueFull;

/// A bounded FIFO of encoded events, shared by dispatch (producer) and one sink worker.
#[derive(Debug)]
pub(super) struct Window {
    limits: QueueLimits,
    /// Disk queues: the most events and bytes held in memory; `None`: everything is (a memory
    /// queue).
    window: Option<QueueLimits>,
    inner: Mutex<Inner>,
    /// Wakes the worker when events are committed or the queue is closed.
    ready: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    /// The events in memory: the oldest undelivered ones, in order.
    items: VecDeque<Bytes>,
    /// When each run of events was queued, oldest first: `(events, at)`, for the age of the
    /// oldest undelivered event (one entry per request, not per event; spilled events too).
    stamps: VecDeque<(usize, Instant)>,
    /// Bytes in `items`.
    bytes: u64,
    /// Disk queues: undelivered events after `items` that are only in the log.
    spilled_events: u64,
    spilled_bytes: u64,
    /// Most events and bytes `items` ever held.
    peak_events: u64,
    peak_bytes: u64,
    /// Room promised to reservations not yet committed or dropped.
    reserved_events: u64,
    reserved_bytes: u64,
    /// No more commits once closed; the worker drains what is left and stops.
    closed: bool,
    /// The oldest events in `items` that the worker handed to a destination which confirms
    /// them later: still queued (undelivered), but batches start after them.
    handed_off: usize,
}

impl Inner {
    /// Records that `n` events were queued now.
    fn stamp(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        if self.stamps.len() >= MAX_STAMPS {
            let old = std::mem::take(&mut self.stamps);
            let mut runs = old.into_iter();
            while let Some((events, at)) = runs.next() {
                let next = runs.next().map_or(0, |(m, _)| m);
                self.stamps.push_back((events + next, at));
            }
        }
        self.stamps.push_back((n, Instant::now()));
    }

    /// Appends an event to the events in memory.
    fn push_resident(&mut self, item: Bytes) {
        self.bytes += item.len() as u64;
        self.items.push_back(item);
        self.peak_events = self.peak_events.max(self.items.len() as u64);
        self.peak_bytes = self.peak_bytes.max(self.bytes);
    }

    /// Whether an event of `len` bytes may join the events in memory now: nothing is spilled
    /// before it (order), and it fits the window, or the window is empty (an event larger than
    /// the window must not get stuck).
    fn fits(&self, window: Option<QueueLimits>, len: usize) -> bool {
        let Some(w) = window else {
            return true;
        };
        self.spilled_events == 0
            && (self.items.is_empty()
                || ((self.items.len() as u64) < w.max_events
                    && self.bytes + len as u64 <= w.max_bytes))
    }
}

/// Depth of a queue, for metrics and readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Depth {
    pub events: u64,
    pub bytes: u64,
}

/// What a disk queue's writer may read back from its log now; see [`Window::refill_room`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// Events and bytes the window can still take.
    pub events: u64,
    pub bytes: u64,
    /// The window is empty: the next event is taken whatever its size.
    pub empty: bool,
    /// Events waiting in the log only; the first of them is the next to read.
    pub spilled: u64,
}

impl Window {
    /// A memory queue: every event it holds is in memory.
    pub(super) fn new(limits: QueueLimits) -> Window {
        Window {
            limits,
            window: None,
            inner: Mutex::new(Inner::default()),
            ready: Notify::new(),
        }
    }

    /// A disk queue's window: at most `window` of its oldest events in memory, the rest
    /// counted as spilled to its log (see the module docs).
    pub(super) fn spilling(limits: QueueLimits, window: QueueLimits) -> Window {
        Window {
            window: Some(window),
            ..Window::new(limits)
        }
    }

    /// The bounds of the whole queue.
    pub(super) fn limits(&self) -> QueueLimits {
        self.limits
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave `Inner` inconsistent (every update is
        // a few integer adds), so a poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves room for `events` events of `bytes` bytes in total, or refuses if the queue
    /// would exceed either bound. The room is released when the reservation is dropped
    /// uncommitted.
    pub(super) fn try_reserve(
        &self,
        events: u64,
        bytes: u64,
    ) -> Result<Reservation<'_>, QueueFull> {
        self.reserve_more(events, bytes)?;
        Ok(Reservation {
            queue: self,
            events,
            bytes,
        })
    }

    /// Holds room for `events` more events of `bytes` more bytes, all or nothing.
    fn reserve_more(&self, events: u64, bytes: u64) -> Result<(), QueueFull> {
        let mut inner = self.lock();
        let used_events = inner.items.len() as u64 + inner.spilled_events + inner.reserved_events;
        let used_bytes = inner.bytes + inner.spilled_bytes + inner.reserved_bytes;
        if inner.closed
            || used_events.saturating_add(events) > self.limits.max_events
            || used_bytes.saturating_add(bytes) > self.limits.max_bytes
        {
            return Err(QueueFull);
        }
        inner.reserved_events += events;
        inner.reserved_bytes += bytes;
        Ok(())
    }

    /// How long the oldest undelivered event has waited (zero when the queue is empty).
    /// Events loaded from a disk queue at start count from the start. Over a long backlog the
    /// ages of events after the oldest are rounded up (see `MAX_STAMPS`).
    pub(super) fn oldest_age(&self) -> Duration {
        self.lock()
            .stamps
            .front()
            .map_or(Duration::ZERO, |(_, at)| at.elapsed())
    }

    /// Undelivered events of the whole queue: in memory and, for a disk queue, in its log only.
    pub(super) fn depth(&self) -> Depth {
        let inner = self.lock();
        Depth {
            events: inner.items.len() as u64 + inner.spilled_events,
            bytes: inner.bytes + inner.spilled_bytes,
        }
    }

    /// The events held in memory (a disk queue's window).
    pub(super) fn resident(&self) -> Depth {
        let inner = self.lock();
        Depth {
            events: inner.items.len() as u64,
            bytes: inner.bytes,
        }
    }

    /// The most events and the most bytes ever held in memory at once (each its own maximum).
    pub(super) fn resident_peak(&self) -> Depth {
        let inner = self.lock();
        Depth {
            events: inner.peak_events,
            bytes: inner.peak_bytes,
        }
    }

    /// Stops further commits; the worker delivers what is queued and then sees `None`.
    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_waiters();
        self.ready.notify_one();
    }

    /// Waits for at least one event after those handed off (see
    /// [`hand_off`](Self::hand_off)), then up to `linger` for the batch to fill, and returns
    /// copies (reference-counted, not byte copies) of the oldest such events within the bounds.
    /// The events stay queued until [`ack`](Self::ack); the next call returns them again
    /// unless they were handed off. `None` once the queue is closed with nothing left to hand
    /// out, in memory or on disk.
    pub(super) async fn next_batch(
        &self,
        max_events: usize,
        max_bytes: usize,
        linger: Duration,
        out: &mut Vec<Bytes>,
    ) -> Option<()> {
        out.clear();
        loop {
            let notified = self.ready.notified();
            // `Some(full)` once there is something to send; the lock is released before waiting.
            let state = {
                let inner = self.lock();
                let skip = inner.handed_off;
                let available = inner.items.len().saturating_sub(skip);
                if available > 0 {
                    let skipped: u64 = inner.items.iter().take(skip).map(|i| i.len() as u64).sum();
                    // With events waiting on disk the window is as full as it gets for now.
                    Some(
                        available >= max_events
                            || inner.bytes - skipped >= max_bytes as u64
                            || inner.spilled_events > 0
                            || inner.closed,
                    )
                } else if inner.closed && inner.spilled_events == 0 {
                    return None;
                } else {
                    None
                }
            };
            match state {
                Some(full) => {
                    if !full && !linger.is_zero() {
                        tokio::time::sleep(linger).await;
                    }
                    break;
                }
                None => notified.await,
            }
        }
        let inner = self.lock();
        let mut size = 0usize;
        for item in inner.items.iter().skip(inner.handed_off).take(max_events) {
            // Always take the first event, even alone over max_bytes, so nothing gets stuck.
            if !out.is_empty() && size + item.len() > max_bytes {
                break;
            }
            size += item.len();
            out.push(item.clone());
        }
        Some(())
    }

    /// Appends events whose room a detached reservation holds (see [`Reservation::detach`]),
    /// in the order the disk queue wrote them: into memory while they fit the window and
    /// nothing is waiting on disk before them, else counted as waiting on disk only.
    pub(super) fn push_reserved(
        &self,
        events: u64,
        bytes: u64,
        items: impl Iterator<Item = Bytes>,
    ) {
        let mut inner = self.lock();
        inner.reserved_events -= events.min(inner.reserved_events);
        inner.reserved_bytes -= bytes.min(inner.reserved_bytes);
        // The worker waits only while nothing after the handed-off events is in memory (see
        // `next_batch`); while something is, it is busy or lingering and will take these
        // events with the rest, so waking it again per request would be wasted work.
        let idle = inner.items.len() <= inner.handed_off;
        let mut n = 0;
        for item in items {
            n += 1;
            if inner.fits(self.window, item.len()) {
                inner.push_resident(item);
            } else {
                inner.spilled_events += 1;
                inner.spilled_bytes += item.len() as u64;
            }
        }
        inner.stamp(n);
        drop(inner);
        if idle {
            self.ready.notify_one();
        }
    }

    /// Kafka queues: appends one event a delivery worker read from the topic, if it fits the
    /// window's bounds (or the window is empty, so that an event larger than the window does
    /// not get stuck); gives it back otherwise, or once the queue is closed.
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub(super) fn push_consumed(&self, item: Bytes) -> Result<(), Bytes> {
        let mut inner = self.lock();
        let fits = inner.items.is_empty()
            || ((inner.items.len() as u64) < self.limits.max_events
                && inner.bytes + item.len() as u64 <= self.limits.max_bytes);
        if inner.closed || !fits {
            return Err(item);
        }
        inner.push_resident(item);
        inner.stamp(1);
        drop(inner);
        self.ready.notify_one();
        Ok(())
    }

    /// Room held by reservations not yet committed or dropped (a Kafka queue's events handed
    /// to the producer whose delivery reports are still due).
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub(super) fn reserved(&self) -> Depth {
        let inner = self.lock();
        Depth {
            events: inner.reserved_events,
            bytes: inner.reserved_bytes,
        }
    }

    /// Gives back the room of a detached reservation whose events were not written.
    pub(super) fn release(&self, events: u64, bytes: u64) {
        let mut inner = self.lock();
        inner.reserved_events -= events.min(inner.reserved_events);
        inner.reserved_bytes -= bytes.min(inner.reserved_bytes);
    }

    /// Counts the undelivered events a disk queue recovered at start, all on disk only until
    /// the writer reads the window back; whatever the bounds say (a smaller bound than before
    /// only makes new requests wait). Their age counts from now.
    pub(super) fn recovered(&self, events: u64, bytes: u64) {
        let mut inner = self.lock();
        inner.spilled_events += events;
        inner.spilled_bytes += bytes;
        inner.stamp(usize::try_from(events).unwrap_or(usize::MAX));
    }

    /// Whether a disk queue's window has drained enough to be worth refilling from the log:
    /// events wait on disk and the window is at most half full (by events and by bytes), so
    /// reads come in large chunks rather than one per acknowledgement.
    pub(super) fn wants_refill(&self) -> bool {
        Self::wants(&self.lock(), self.window)
    }

    fn wants(inner: &Inner, window: Option<QueueLimits>) -> bool {
        let Some(w) = window else {
            return false;
        };
        inner.spilled_events > 0
            && (inner.items.len() as u64).saturating_mul(2) <= w.max_events
            && inner.bytes.saturating_mul(2) <= w.max_bytes
    }

    /// What the window can take now, or `None` when nothing waits on disk or it is full.
    pub(super) fn refill_room(&self) -> Option<Room> {
        let w = self.window?;
        let inner = self.lock();
        let room = Room {
            events: w.max_events.saturating_sub(inner.items.len() as u64),
            bytes: w.max_bytes.saturating_sub(inner.bytes),
            empty: inner.items.is_empty(),
            spilled: inner.spilled_events,
        };
        (room.spilled > 0 && (room.empty || (room.events > 0 && room.bytes > 0))).then_some(room)
    }

    /// Moves events the writer read back from the log (the next ones after the window, in
    /// order) into memory, and wakes the worker.
    pub(super) fn push_read(&self, items: impl Iterator<Item = Bytes>) {
        let mut inner = self.lock();
        for item in items {
            inner.spilled_events = inner.spilled_events.saturating_sub(1);
            inner.spilled_bytes = inner.spilled_bytes.saturating_sub(item.len() as u64);
            inner.push_resident(item);
        }
        drop(inner);
        self.ready.notify_one();
    }

    /// Marks the next `n` events after those already handed off as handed to a destination
    /// that confirms them later: they stay queued until acknowledged, and batches start after
    /// them.
    pub(super) fn hand_off(&self, n: usize) {
        let mut inner = self.lock();
        inner.handed_off = (inner.handed_off + n).min(inner.items.len());
    }

    /// Forgets what was handed off: a new worker sends those events again, since the
    /// destination connection that awaited their confirmation is gone.
    pub(super) fn rewind(&self) {
        self.lock().handed_off = 0;
    }

    /// Removes the `n` oldest events after their sink delivered them. True when a disk queue's
    /// window should now be refilled from its log (see [`wants_refill`](Self::wants_refill)).
    pub(super) fn ack(&self, n: usize) -> bool {
        let mut inner = self.lock();
        inner.handed_off = inner.handed_off.saturating_sub(n);
        let mut left = n.min(inner.items.len());
        while left > 0 {
            let Some(front) = inner.stamps.front_mut() else {
                break;
            };
            if front.0 > left {
                front.0 -= left;
                break;
            }
            left -= front.0;
            inner.stamps.pop_front();
        }
        for _ in 0..n {
            match inner.items.pop_front() {
                Some(item) => inner.bytes -= item.len() as u64,
                None => break,
            }
        }
        Self::wants(&inner, self.window)
    }
}

/// Room held in a queue for one request's events; see [`Queue::try_reserve`](super::Queue::try_reserve).
#[derive(Debug)]
pub struct Reservation<'q> {
    queue: &'q Window,
    events: u64,
    bytes: u64,
}

impl Reservation<'_> {
    /// The room held: `(events, bytes)`.
    pub fn held(&self) -> (u64, u64) {
        (self.events, self.bytes)
    }

    /// Holds room for `events` more events of `bytes` more bytes too, or refuses and keeps
    /// holding what it held: a request reserves as it encodes, and stops at the first refusal.
    pub fn grow(&mut self, events: u64, bytes: u64) -> Result<(), QueueFull> {
        self.queue.reserve_more(events, bytes)?;
        self.events += events;
        self.bytes += bytes;
        Ok(())
    }

    /// Gives back the room held beyond `events` events of `bytes` bytes.
    pub fn shrink_to(&mut self, events: u64, bytes: u64) {
        let (events, bytes) = (events.min(self.events), bytes.min(self.bytes));
        if (events, bytes) != (self.events, self.bytes) {
            self.queue.release(self.events - events, self.bytes - bytes);
            self.events = events;
            self.bytes = bytes;
        }
    }

    /// Hands the reserved room to someone who will call [`Window::push_reserved`] or
    /// [`Window::release`] later; returns `(events, bytes)`.
    pub(super) fn detach(mut self) -> (u64, u64) {
        let held = (self.events, self.bytes);
        self.events = 0;
        self.bytes = 0;
        held
    }

    /// Appends the events (at most the reserved number and size: room held beyond them is
    /// given back) and wakes the worker if it waits. For memory queues; a disk queue's events
    /// go through its writer.
    pub(super) fn commit(mut self, items: impl Iterator<Item = Bytes>) {
        let (events, bytes) = (self.events, self.bytes);
        self.events = 0;
        self.bytes = 0;
        self.queue.push_reserved(events, bytes, items);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.events != 0 || self.bytes != 0 {
            let mut inner = self.queue.lock();
            inner.reserved_events -= self.events;
            inner.reserved_bytes -= self.bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn q(events: u64, bytes: u64) -> Window {
        Window::new(QueueLimits {
            max_events: events,
            max_bytes: bytes,
        })
    }

    #[test]
    fn a_reservation_grows_until_refused_and_gives_back_what_it_does_not_use() {
        let q = q(10, 100);
        let mut r = q.try_reserve(0, 0).unwrap();
        r.grow(4, 40).unwrap();
        assert_eq!(r.grow(7, 1), Err(QueueFull), "11 events");
        assert_eq!(r.grow(1, 61), Err(QueueFull), "101 bytes");
        assert_eq!(r.held(), (4, 40), "a refusal keeps what was held");
        r.shrink_to(2, 10);
        assert_eq!(r.held(), (2, 10));
        let other = q.try_reserve(8, 90).unwrap();
        drop(other);
        r.commit([Bytes::from_static(b"12345"), Bytes::from_static(b"12345")].into_iter());
        assert_eq!(
            q.depth(),
            Depth {
                events: 2,
                bytes: 10
            }
        );
        let r = q.try_reserve(8, 90).unwrap();
        drop(r);
        assert!(q.try_reserve(8, 90).is_ok(), "dropped room is given back");
    }

    #[test]
    fn bounds_by_events_and_bytes_and_releases_dropped_reservations() {
        let q = q(3, 10);
        let r = q.try_reserve(2, 4).unwrap();
        assert_eq!(q.try_reserve(2, 1).unwrap_err(), QueueFull);
        assert_eq!(q.try_reserve(1, 7).unwrap_err(), QueueFull);
        drop(r);
        let r = q.try_reserve(3, 10).unwrap();
        r.commit(
            [
                Bytes::from_static(b"12345"),
                Bytes::from_static(b"123"),
                Bytes::from_static(b"12"),
            ]
            .into_iter(),
        );
        assert_eq!(
            q.depth(),
            Depth {
                events: 3,
                bytes: 10
            }
        );
        assert!(q.try_reserve(1, 0).is_err());
        q.ack(2);
        assert_eq!(
            q.depth(),
            Depth {
                events: 1,
                bytes: 2
            }
        );
        assert!(q.try_reserve(2, 8).is_ok());
    }

    #[tokio::test]
    async fn batches_respect_bounds_and_stay_until_acked() {
        let q = q(100, 1000);
        q.try_reserve(3, 9).unwrap().commit(
            [
                Bytes::from_static(b"aaa"),
                Bytes::from_static(b"bbb"),
                Bytes::from_static(b"ccc"),
            ]
            .into_iter(),
        );
        let mut out = Vec::new();
        q.next_batch(10, 6, Duration::ZERO, &mut out).await.unwrap();
        assert_eq!(
            out,
            [Bytes::from_static(b"aaa"), Bytes::from_static(b"bbb")]
        );
        q.next_batch(10, 6, Duration::ZERO, &mut out).await.unwrap();
        assert_eq!(out.len(), 2, "nothing removed before ack");
        q.ack(2);
        q.close();
        q.next_batch(10, 6, Duration::ZERO, &mut out).await.unwrap();
        assert_eq!(out, [Bytes::from_static(b"ccc")]);
        q.ack(1);
        assert!(q
            .next_batch(10, 6, Duration::ZERO, &mut out)
            .await
            .is_none());
        assert!(q.try_reserve(1, 1).is_err(), "closed queues refuse");
    }

    #[tokio::test(start_paused = true)]
    async fn oldest_age_follows_the_head_across_partial_acks() {
        let q = q(100, 1000);
        assert_eq!(q.oldest_age(), Duration::ZERO);
        q.try_reserve(2, 2)
            .unwrap()
            .commit([Bytes::from_static(b"a"), Bytes::from_static(b"b")].into_iter());
        tokio::time::advance(Duration::from_millis(30)).await;
        q.try_reserve(1, 1)
            .unwrap()
            .commit([Bytes::from_static(b"c")].into_iter());
        assert!(q.oldest_age() >= Duration::from_millis(30));
        q.ack(1);
        assert!(
            q.oldest_age() >= Duration::from_millis(30),
            "b is as old as a"
        );
        q.ack(1);
        assert!(q.oldest_age() < Duration::from_millis(30), "c is newer");
        q.ack(1);
        assert_eq!(q.oldest_age(), Duration::ZERO);
    }

    #[tokio::test]
    async fn batches_start_after_events_handed_off() {
        let q = q(100, 1000);
        q.try_reserve(3, 9).unwrap().commit(
            [
                Bytes::from_static(b"aaa"),
                Bytes::from_static(b"bbb"),
                Bytes::from_static(b"ccc"),
            ]
            .into_iter(),
        );
        let mut out = Vec::new();
        q.hand_off(2);
        q.next_batch(10, 100, Duration::ZERO, &mut out)
            .await
            .unwrap();
        assert_eq!(out, [Bytes::from_static(b"ccc")]);
        q.hand_off(1);
        q.close();
        assert!(q
            .next_batch(10, 100, Duration::ZERO, &mut out)
            .await
            .is_none());
        assert_eq!(q.depth().events, 3, "handed off is still queued");
        q.ack(1);
        q.rewind();
        q.next_batch(10, 100, Duration::ZERO, &mut out)
            .await
            .unwrap();
        assert_eq!(
            out,
            [Bytes::from_static(b"bbb"), Bytes::from_static(b"ccc")],
            "after a rewind what was handed off is handed out again"
        );
    }

    fn windowed(events: u64, bytes: u64) -> Window {
        Window::spilling(
            QueueLimits {
                max_events: 1000,
                max_bytes: 100_000,
            },
            QueueLimits {
                max_events: events,
                max_bytes: bytes,
            },
        )
    }

    fn push(q: &Window, items: &[&'static [u8]]) {
        let bytes: u64 = items.iter().map(|i| i.len() as u64).sum();
        let (e, b) = q.try_reserve(items.len() as u64, bytes).unwrap().detach();
        q.push_reserved(e, b, items.iter().map(|i| Bytes::from_static(i)));
    }

    #[test]
    fn a_window_keeps_the_oldest_events_and_counts_the_rest_on_disk() {
        let q = windowed(10, 8);
        push(&q, &[b"aaa", b"bbb", b"ccc", b"d"]);
        // "ccc" does not fit 8 bytes; "d" would, but comes after an event on disk.
        assert_eq!(
            q.resident(),
            Depth {
                events: 2,
                bytes: 6
            }
        );
        assert_eq!(
            q.depth(),
            Depth {
                events: 4,
                bytes: 10
            }
        );
        assert!(
            q.try_reserve(997, 1).is_err(),
            "the bounds count the events on disk"
        );
        assert!(!q.wants_refill(), "the window is more than half full");
        assert_eq!(
            q.refill_room(),
            Some(Room {
                events: 8,
                bytes: 2,
                empty: false,
                spilled: 2
            })
        );
        assert!(q.ack(1), "half full now: refill");
        q.push_read([Bytes::from_static(b"ccc")].into_iter());
        assert_eq!(
            q.resident(),
            Depth {
                events: 2,
                bytes: 6
            }
        );
        assert_eq!(
            q.depth(),
            Depth {
                events: 3,
                bytes: 7
            }
        );
        push(&q, &[b"e"]);
        assert_eq!(
            q.depth(),
            Depth {
                events: 4,
                bytes: 8
            }
        );
        assert_eq!(
            q.resident().events,
            2,
            "after events on disk, new ones go to disk too"
        );
        assert!(q.ack(2));
        q.push_read([Bytes::from_static(b"d"), Bytes::from_static(b"e")].into_iter());
        assert_eq!(
            q.depth(),
            Depth {
                events: 2,
                bytes: 2
            }
        );
        assert_eq!(q.refill_room(), None, "nothing on disk");
        assert_eq!(
            q.resident_peak(),
            Depth {
                events: 2,
                bytes: 6
            }
        );
    }

    #[test]
    fn an_event_larger_than_the_window_is_taken_alone() {
        let q = windowed(10, 4);
        push(&q, &[b"123456", b"1"]);
        assert_eq!(
            q.resident(),
            Depth {
                events: 1,
                bytes: 6
            }
        );
        assert_eq!(q.depth().events, 2);
        assert!(!q.ack(0));
        assert!(q.ack(1));
        assert_eq!(
            q.refill_room(),
            Some(Room {
                events: 10,
                bytes: 4,
                empty: true,
                spilled: 1
            })
        );
    }

    #[tokio::test]
    async fn a_closed_queue_is_drained_only_once_nothing_waits_on_disk() {
        let q = windowed(1, 100);
        push(&q, &[b"a", b"b"]);
        q.close();
        let mut out = Vec::new();
        q.next_batch(10, 100, Duration::from_secs(5), &mut out)
            .await
            .unwrap();
        assert_eq!(
            out,
            [Bytes::from_static(b"a")],
            "no linger with events on disk"
        );
        assert!(q.ack(1));
        let waiting = tokio::time::timeout(
            Duration::from_millis(50),
            q.next_batch(10, 100, Duration::ZERO, &mut out),
        )
        .await;
        assert!(waiting.is_err(), "waits for the read back, not None");
        q.push_read([Bytes::from_static(b"b")].into_iter());
        q.next_batch(10, 100, Duration::ZERO, &mut out)
            .await
            .unwrap();
        assert_eq!(out, [Bytes::from_static(b"b")]);
        q.ack(1);
        assert!(q
            .next_batch(10, 100, Duration::ZERO, &mut out)
            .await
            .is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn recovered_events_wait_on_disk_and_age_from_the_start() {
        let q = windowed(10, 100);
        q.recovered(3, 30);
        assert_eq!(
            q.depth(),
            Depth {
                events: 3,
                bytes: 30
            }
        );
        assert_eq!(q.resident().events, 0);
        assert!(q.wants_refill());
        tokio::time::advance(Duration::from_millis(20)).await;
        assert!(q.oldest_age() >= Duration::from_millis(20));
    }

    #[tokio::test(start_paused = true)]
    async fn age_records_stay_bounded_and_the_oldest_exact() {
        let q = q(u64::MAX, u64::MAX);
        q.try_reserve(1, 1)
            .unwrap()
            .commit([Bytes::from_static(b"x")].into_iter());
        tokio::time::advance(Duration::from_millis(30)).await;
        let runs = 3 * MAX_STAMPS;
        for _ in 0..runs {
            q.try_reserve(1, 1)
                .unwrap()
                .commit([Bytes::from_static(b"y")].into_iter());
        }
        assert!(q.lock().stamps.len() <= MAX_STAMPS);
        let counted: usize = q.lock().stamps.iter().map(|s| s.0).sum();
        assert_eq!(counted, runs + 1);
        assert!(q.oldest_age() >= Duration::from_millis(30));
        q.ack(runs + 1);
        assert_eq!(q.oldest_age(), Duration::ZERO);
    }
}
