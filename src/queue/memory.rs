//! `MemoryQueue`: a bounded in-memory queue of encoded events (one `Bytes` each).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::config::QueueLimits;

/// Refusal to reserve: the queue has no room for the whole request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("queue full")]
pub struct QueueFull;

/// A bounded FIFO of encoded events, shared by dispatch (producer) and one sink worker.
#[derive(Debug)]
pub struct MemoryQueue {
    limits: QueueLimits,
    inner: Mutex<Inner>,
    /// Wakes the worker when events are committed or the queue is closed.
    ready: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    items: VecDeque<Bytes>,
    /// When each run of events was queued, oldest first: `(events, at)`, for the age of the
    /// oldest undelivered event (one entry per request, not per event).
    stamps: VecDeque<(usize, std::time::Instant)>,
    /// Bytes in `items`.
    bytes: u64,
    /// Room promised to reservations not yet committed or dropped.
    reserved_events: u64,
    reserved_bytes: u64,
    /// No more commits once closed; the worker drains what is left and stops.
    closed: bool,
}

impl Inner {
    /// Records when the events from index `before` on were queued.
    fn stamp(&mut self, before: usize) {
        let n = self.items.len() - before;
        if n > 0 {
            self.stamps.push_back((n, std::time::Instant::now()));
        }
    }
}

/// Depth of a queue, for metrics and readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Depth {
    pub events: u64,
    pub bytes: u64,
}

impl MemoryQueue {
    pub fn new(limits: QueueLimits) -> MemoryQueue {
        MemoryQueue {
            limits,
            inner: Mutex::new(Inner::default()),
            ready: Notify::new(),
        }
    }

    pub fn limits(&self) -> QueueLimits {
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
    pub fn try_reserve(&self, events: u64, bytes: u64) -> Result<Reservation<'_>, QueueFull> {
        let mut inner = self.lock();
        let used_events = inner.items.len() as u64 + inner.reserved_events;
        let used_bytes = inner.bytes + inner.reserved_bytes;
        if inner.closed
            || used_events + events > self.limits.max_events
            || used_bytes + bytes > self.limits.max_bytes
        {
            return Err(QueueFull);
        }
        inner.reserved_events += events;
        inner.reserved_bytes += bytes;
        Ok(Reservation {
            queue: self,
            events,
            bytes,
        })
    }

    /// How long the oldest undelivered event has waited (zero when the queue is empty).
    /// Events loaded from a disk queue at start count from the start.
    pub fn oldest_age(&self) -> std::time::Duration {
        self.lock()
            .stamps
            .front()
            .map_or(std::time::Duration::ZERO, |(_, at)| at.elapsed())
    }

    pub fn depth(&self) -> Depth {
        let inner = self.lock();
        Depth {
            events: inner.items.len() as u64,
            bytes: inner.bytes,
        }
    }

    /// Stops further commits; the worker delivers what is queued and then sees `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_waiters();
        self.ready.notify_one();
    }

    /// Waits for at least one event after the first `skip` (events already handed to the
    /// destination and awaiting its confirmation), then up to `linger` for the batch to fill,
    /// and returns copies (reference-counted, not byte copies) of the oldest such events within
    /// the bounds. The events stay queued until [`ack`](Self::ack). `None` once the queue is
    /// closed with nothing after `skip`.
    pub async fn next_batch(
        &self,
        skip: usize,
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
                let available = inner.items.len().saturating_sub(skip);
                if available > 0 {
                    let skipped: u64 = inner.items.iter().take(skip).map(|i| i.len() as u64).sum();
                    Some(
                        available >= max_events
                            || inner.bytes - skipped >= max_bytes as u64
                            || inner.closed,
                    )
                } else if inner.closed {
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
        for item in inner.items.iter().skip(skip).take(max_events) {
            // Always take the first event, even alone over max_bytes, so nothing gets stuck.
            if !out.is_empty() && size + item.len() > max_bytes {
                break;
            }
            size += item.len();
            out.push(item.clone());
        }
        Some(())
    }

    /// Appends events whose room a detached reservation holds (see
    /// [`Reservation::detach`]), in the order the disk queue wrote them.
    pub fn push_reserved(&self, events: u64, bytes: u64, items: impl Iterator<Item = Bytes>) {
        let mut inner = self.lock();
        inner.reserved_events -= events.min(inner.reserved_events);
        inner.reserved_bytes -= bytes.min(inner.reserved_bytes);
        let before = inner.items.len();
        for item in items {
            inner.bytes += item.len() as u64;
            inner.items.push_back(item);
        }
        inner.stamp(before);
        drop(inner);
        self.ready.notify_one();
    }

    /// Gives back the room of a detached reservation whose events were not written.
    pub fn release(&self, events: u64, bytes: u64) {
        let mut inner = self.lock();
        inner.reserved_events -= events.min(inner.reserved_events);
        inner.reserved_bytes -= bytes.min(inner.reserved_bytes);
    }

    /// Loads events recovered from disk at start, whatever the bounds say (a smaller bound
    /// than before only makes new requests wait).
    pub fn preload(&self, items: impl Iterator<Item = Bytes>) {
        let mut inner = self.lock();
        let before = inner.items.len();
        for item in items {
            inner.bytes += item.len() as u64;
            inner.items.push_back(item);
        }
        inner.stamp(before);
    }

    /// Removes the `n` oldest events after their sink delivered them.
    pub fn ack(&self, n: usize) {
        let mut inner = self.lock();
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
    }
}

/// Room held in a queue for one request's events; see [`MemoryQueue::try_reserve`].
#[derive(Debug)]
pub struct Reservation<'q> {
    queue: &'q MemoryQueue,
    events: u64,
    bytes: u64,
}

impl Reservation<'_> {
    /// Hands the reserved room to someone who will call [`MemoryQueue::push_reserved`] or
    /// [`MemoryQueue::release`] later; returns `(events, bytes)`.
    pub fn detach(mut self) -> (u64, u64) {
        let held = (self.events, self.bytes);
        self.events = 0;
        self.bytes = 0;
        held
    }

    /// Appends the events (exactly the reserved number and size) and wakes the worker.
    pub fn commit(mut self, items: impl Iterator<Item = Bytes>) {
        let mut inner = self.queue.lock();
        inner.reserved_events -= self.events;
        inner.reserved_bytes -= self.bytes;
        let before = inner.items.len();
        for item in items {
            inner.bytes += item.len() as u64;
            inner.items.push_back(item);
        }
        inner.stamp(before);
        drop(inner);
        self.events = 0;
        self.bytes = 0;
        self.queue.ready.notify_one();
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

    fn q(events: u64, bytes: u64) -> MemoryQueue {
        MemoryQueue::new(QueueLimits {
            max_events: events,
            max_bytes: bytes,
        })
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
        q.next_batch(0, 10, 6, Duration::ZERO, &mut out)
            .await
            .unwrap();
        assert_eq!(
            out,
            [Bytes::from_static(b"aaa"), Bytes::from_static(b"bbb")]
        );
        q.next_batch(0, 10, 6, Duration::ZERO, &mut out)
            .await
            .unwrap();
        assert_eq!(out.len(), 2, "nothing removed before ack");
        q.ack(2);
        q.close();
        q.next_batch(0, 10, 6, Duration::ZERO, &mut out)
            .await
            .unwrap();
        assert_eq!(out, [Bytes::from_static(b"ccc")]);
        q.ack(1);
        assert!(q
            .next_batch(0, 10, 6, Duration::ZERO, &mut out)
            .await
            .is_none());
        assert!(q.try_reserve(1, 1).is_err(), "closed queues refuse");
    }

    #[test]
    fn oldest_age_follows_the_head_across_partial_acks() {
        let q = q(100, 1000);
        assert_eq!(q.oldest_age(), Duration::ZERO);
        q.try_reserve(2, 2)
            .unwrap()
            .commit([Bytes::from_static(b"a"), Bytes::from_static(b"b")].into_iter());
        std::thread::sleep(Duration::from_millis(30));
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
    async fn batches_can_start_after_events_awaiting_confirmation() {
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
        q.next_batch(2, 10, 100, Duration::ZERO, &mut out)
            .await
            .unwrap();
        assert_eq!(out, [Bytes::from_static(b"ccc")]);
        q.close();
        assert!(q
            .next_batch(3, 10, 100, Duration::ZERO, &mut out)
            .await
            .is_none());
        q.ack(1);
        q.next_batch(1, 10, 100, Duration::ZERO, &mut out)
            .await
            .unwrap();
        assert_eq!(out, [Bytes::from_static(b"ccc")]);
    }
}
