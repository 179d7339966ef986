//! Per-sink queues of encoded events: bounded by events and bytes, filled all-or-nothing by
//! dispatch and drained by the sink's worker. Events stay in the queue until their sink
//! acknowledges them, so a batch that fails is still there to retry, and queue depth counts
//! what is not yet delivered.
//!
//! # The API every queue implements
//!
//! [`Queue`] is the one type callers see; what backs it is a closed set (`Backing`), matched
//! in each method, so a new kind of queue is one variant and one arm per method, with no
//! dynamic dispatch on the request path. Callers use only:
//!
//! * producer (dispatch): [`limits`](Queue::limits), [`try_reserve`](Queue::try_reserve) then
//!   [`Reservation::grow`] as events are encoded, then [`commit`](Queue::commit), which answers
//!   at once or with a [`Written`] receipt once the events are durable;
//! * consumer (the sink's worker): [`next_batch`](Queue::next_batch) then
//!   [`ack`](Queue::ack) for the oldest events once delivered, and, for destinations that
//!   confirm later, [`hand_off`](Queue::hand_off) and [`rewind`](Queue::rewind);
//! * observers: [`depth`](Queue::depth), [`oldest_age`](Queue::oldest_age), and, for the
//!   admin API and tests, [`resident`](Queue::resident), [`kind`](Queue::kind) and
//!   [`read_errors`](Queue::read_errors);
//! * lifecycle: [`close`](Queue::close) (no more commits; the worker drains) and
//!   [`close_disk`](Queue::close_disk) (flush the backing store; blocks).
//!
//! Every backing keeps a `Window` (`window.rs`) in memory: the worker's view of the oldest
//! undelivered events, and the accounting of the whole queue's bounds that reservations are
//! taken against. What differs is where committed events go before the worker sees them and
//! what an acknowledgement becomes: nothing more for memory; for disk, the segment log
//! (`log.rs`) through its writer thread (`disk.rs`), and the log's committed position. A
//! Kafka-backed queue fits the same shape: `commit` produces to the topic and answers
//! through `Written` once the broker acknowledged, the window is refilled from the consumer,
//! and `ack` commits the consumer offset. Disk-only operations (recovery, read back, fsync)
//! stay inside this module.

pub mod disk;
pub mod log;
mod window;

pub use disk::{WriteError, Written};
pub use window::{Depth, QueueFull, Reservation};

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::config::QueueLimits;
use disk::{DiskMetrics, DiskSettings, DiskWriter};
use log::LogError;
use window::Window;

/// A sink's queue (see the module docs for its API).
pub struct Queue {
    window: Arc<Window>,
    backing: Backing,
}

/// Where a queue's events are kept beyond its in-memory window.
enum Backing {
    /// Nowhere: the window is the whole queue.
    Memory,
    /// A segment log on disk, written by its own thread; the window holds the oldest events.
    Disk(DiskWriter),
}

impl Queue {
    pub fn memory(limits: QueueLimits) -> Queue {
        Queue {
            window: Arc::new(Window::new(limits)),
            backing: Backing::Memory,
        }
    }

    /// Opens (and recovers) a disk queue; its undelivered events are queued again, the
    /// oldest of them (`settings.memory`) read back into memory by its writer thread.
    pub fn disk(
        sink_id: &str,
        limits: QueueLimits,
        settings: &DiskSettings,
        metrics: DiskMetrics,
    ) -> Result<Queue, LogError> {
        let window = Arc::new(Window::spilling(limits, settings.memory));
        let disk = DiskWriter::open(sink_id, settings, window.clone(), metrics)?;
        Ok(Queue {
            window,
            backing: Backing::Disk(disk),
        })
    }

    /// The bounds of the whole queue.
    pub fn limits(&self) -> QueueLimits {
        self.window.limits()
    }

    /// Reserves room for `events` events of `bytes` bytes in total, or refuses if the queue
    /// would exceed either bound. The room is given back when the reservation is dropped
    /// uncommitted.
    pub fn try_reserve(&self, events: u64, bytes: u64) -> Result<Reservation<'_>, QueueFull> {
        self.window.try_reserve(events, bytes)
    }

    /// Puts a request's events in the queue. A memory queue takes them at once (`None`); a
    /// disk queue answers through `Written` once they are in its log (and fsynced, per its
    /// policy). `Err` when the disk writer is too far behind; the room is given back.
    pub fn commit(
        &self,
        reservation: Reservation<'_>,
        items: Vec<Bytes>,
    ) -> Result<Option<Written>, QueueFull> {
        match &self.backing {
            Backing::Memory => {
                reservation.commit(items.into_iter());
                Ok(None)
            }
            Backing::Disk(disk) => {
                let (events, bytes) = reservation.detach();
                disk.append(items, events, bytes).map(Some).map_err(|_| {
                    self.window.release(events, bytes);
                    QueueFull
                })
            }
        }
    }

    /// Waits for at least one event after those handed off, then up to `linger` for the batch
    /// to fill, and puts the oldest such events within the bounds in `out` (reference-counted,
    /// not copied). They stay queued until [`ack`](Self::ack), and the next call returns them
    /// again unless they were [handed off](Self::hand_off). `None` once the queue is closed
    /// with nothing left to hand out.
    pub async fn next_batch(
        &self,
        max_events: usize,
        max_bytes: usize,
        linger: Duration,
        out: &mut Vec<Bytes>,
    ) -> Option<()> {
        self.window
            .next_batch(max_events, max_bytes, linger, out)
            .await
    }

    /// Marks the next `n` events of the head as handed to a destination that confirms them
    /// later (Splunk HEC indexer acknowledgement): they stay queued, in order, until
    /// [`ack`](Self::ack)ed, and later batches start after them.
    pub fn hand_off(&self, n: usize) {
        self.window.hand_off(n);
    }

    /// Forgets what was handed off, so a new worker sends it again: its transport never saw
    /// those events confirmed.
    pub fn rewind(&self) {
        self.window.rewind();
    }

    /// Removes the `n` oldest events after their sink delivered them.
    pub fn ack(&self, n: usize) {
        let refill = self.window.ack(n);
        if let Backing::Disk(d) = &self.backing {
            d.acked(n as u64);
            if refill {
                d.refill();
            }
        }
    }

    /// Undelivered events of the whole queue, in memory and beyond.
    pub fn depth(&self) -> Depth {
        self.window.depth()
    }

    /// How long the oldest undelivered event has waited (zero when the queue is empty).
    pub fn oldest_age(&self) -> Duration {
        self.window.oldest_age()
    }

    /// The events held in memory (all of them for a memory queue).
    pub fn resident(&self) -> Depth {
        self.window.resident()
    }

    /// The most events and the most bytes ever held in memory at once (each its own maximum).
    pub fn resident_peak(&self) -> Depth {
        self.window.resident_peak()
    }

    /// What backs the queue, as the configuration names it: `memory` or `disk`.
    pub fn kind(&self) -> &'static str {
        match self.backing {
            Backing::Memory => "memory",
            Backing::Disk(_) => "disk",
        }
    }

    pub fn is_disk(&self) -> bool {
        matches!(self.backing, Backing::Disk(_))
    }

    /// Stops further commits; the worker delivers what is queued and then sees `None`.
    pub fn close(&self) {
        self.window.close();
    }

    /// Disk queues: waits for the writer to fsync and record the last deliveries. Blocks.
    pub fn close_disk(&self) {
        if let Backing::Disk(d) = &self.backing {
            d.close();
        }
    }

    /// Disk queues: reads of queued events back from the log that failed since start (the
    /// events stay on disk and the read is tried again). Zero for memory queues.
    pub fn read_errors(&self) -> u64 {
        match &self.backing {
            Backing::Memory => 0,
            Backing::Disk(d) => d.read_errors(),
        }
    }
}
