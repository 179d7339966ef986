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
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod log;
pub mod reply;
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

/// What identifies a request's events on the topic besides their bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventKeys<'a> {
    /// The source id: the key, so one source's events keep their order within a partition.
    pub source: &'a str,
    pub vendor: &'a str,
    /// The events' ids back to back, each ending where `id_ends` says (empty: no ids).
    pub ids: &'a [u8],
    pub id_ends: &'a [usize],
}

impl EventKeys<'_> {
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    fn id(&self, i: usize) -> Option<&[u8]> {
        let end = *self.id_ends.get(i)?;
        let start = if i == 0 { 0 } else { self.id_ends[i - 1] };
        self.ids.get(start..end)
    }
}

/// Why a sink's queue could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the disk queue: {0}")]
    Disk(#[from] LogError),
    #[cfg(feature = "kafka")]
    #[error(transparent)]
    Kafka(Box<kafka::KafkaQueueError>),
}

#[cfg(feature = "kafka")]
impl From<kafka::KafkaQueueError> for OpenError {
    fn from(e: kafka::KafkaQueueError) -> Self {
        OpenError::Kafka(Box::new(e))
    }
}

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
    /// A Kafka topic: commits are produced to it, and the window is filled from the sink's
    /// consumer group (`kafka.rs`).
    #[cfg(feature = "kafka")]
    Kafka(Box<kafka::KafkaQueue>),
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

    /// Opens a Kafka queue: connects its producer and, with `sides.consume`, starts reading
    /// the sink's topic in the sink's consumer group. The brokers may come later.
    #[cfg(feature = "kafka")]
    pub fn kafka(
        limits: QueueLimits,
        settings: &crate::config::kafka::KafkaQueueSettings,
        sides: kafka::Sides,
        metrics: crate::metrics::KafkaMetrics,
    ) -> Result<Queue, kafka::KafkaQueueError> {
        let window = Arc::new(Window::new(settings.memory));
        let k = kafka::KafkaQueue::open(limits, settings, window.clone(), sides, metrics)?;
        Ok(Queue {
            window,
            backing: Backing::Kafka(Box::new(k)),
        })
    }

    /// The bounds of the whole queue.
    pub fn limits(&self) -> QueueLimits {
        match &self.backing {
            #[cfg(feature = "kafka")]
            Backing::Kafka(k) => k.inflight().limits(),
            _ => self.window.limits(),
        }
    }

    /// How long a request may wait for [`Written`] before it is refused: `None` for the
    /// caller's default (disk), a Kafka queue's `produce_timeout`.
    pub fn write_timeout(&self) -> Option<Duration> {
        match &self.backing {
            #[cfg(feature = "kafka")]
            Backing::Kafka(k) => Some(k.produce_timeout()),
            _ => None,
        }
    }

    /// Reserves room for `events` events of `bytes` bytes in total, or refuses if the queue
    /// would exceed either bound. The room is given back when the reservation is dropped
    /// uncommitted.
    pub fn try_reserve(&self, events: u64, bytes: u64) -> Result<Reservation<'_>, QueueFull> {
        match &self.backing {
            #[cfg(feature = "kafka")]
            Backing::Kafka(k) => k.inflight().try_reserve(events, bytes),
            _ => self.window.try_reserve(events, bytes),
        }
    }

    /// Puts a request's events in the queue. A memory queue takes them at once (`None`); a
    /// disk queue answers through `Written` once they are in its log (and fsynced, per its
    /// policy). `Err` when the disk writer is too far behind; the room is given back.
    pub fn commit(
        &self,
        reservation: Reservation<'_>,
        items: Vec<Bytes>,
    ) -> Result<Option<Written>, QueueFull> {
        self.commit_keyed(reservation, items, EventKeys::default())
    }

    /// [`commit`](Self::commit), with what identifies the events on a Kafka topic (key and
    /// headers); other queues ignore `keys`. A Kafka queue answers through `Written` once
    /// every event has its delivery report.
    pub fn commit_keyed(
        &self,
        reservation: Reservation<'_>,
        items: Vec<Bytes>,
        keys: EventKeys<'_>,
    ) -> Result<Option<Written>, QueueFull> {
        #[cfg(not(feature = "kafka"))]
        let _ = keys;
        match &self.backing {
            #[cfg(feature = "kafka")]
            Backing::Kafka(k) => {
                let room = reservation.detach();
                Ok(Some(k.produce(room, items, keys)))
            }
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

    /// [`commit_keyed`](Self::commit_keyed) for events encoded back to back in `all`, event
    /// `i` ending at `ends[i]`. A memory queue appends reference-counted slices of `all` as it
    /// goes, without collecting them into a list, and its commit gives back whatever room the
    /// reservation held beyond them; the others get the list, and that room back first.
    pub fn commit_encoded(
        &self,
        mut reservation: Reservation<'_>,
        all: &Bytes,
        ends: &[usize],
        keys: EventKeys<'_>,
    ) -> Result<Option<Written>, QueueFull> {
        let slices = ends.iter().scan(0, |start, &end| {
            let one = all.slice(*start..end);
            *start = end;
            Some(one)
        });
        match &self.backing {
            Backing::Memory => {
                reservation.commit(slices);
                Ok(None)
            }
            _ => {
                reservation.shrink_to(ends.len() as u64, all.len() as u64);
                self.commit_keyed(reservation, slices.collect(), keys)
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
        match &self.backing {
            Backing::Memory => {}
            Backing::Disk(d) => {
                d.acked(n as u64);
                if refill {
                    d.refill();
                }
            }
            #[cfg(feature = "kafka")]
            Backing::Kafka(k) => k.acked(n),
        }
    }

    /// Undelivered events of the whole queue, in memory and beyond.
    pub fn depth(&self) -> Depth {
        let d = self.window.depth();
        match &self.backing {
            #[cfg(feature = "kafka")]
            Backing::Kafka(k) => {
                let p = k.inflight_depth();
                Depth {
                    events: d.events + p.events,
                    bytes: d.bytes + p.bytes,
                }
            }
            _ => d,
        }
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

    /// What backs the queue, as the configuration names it: `memory`, `disk` or `kafka`.
    pub fn kind(&self) -> &'static str {
        match self.backing {
            Backing::Memory => "memory",
            Backing::Disk(_) => "disk",
            #[cfg(feature = "kafka")]
            Backing::Kafka(_) => "kafka",
        }
    }

    /// Whether this process delivers the queue's events: a Kafka queue on an intake-only
    /// node (`--role intake`) has no consumer, and its sink no worker.
    pub fn delivers(&self) -> bool {
        match &self.backing {
            #[cfg(feature = "kafka")]
            Backing::Kafka(k) => k.consumes(),
            _ => true,
        }
    }

    pub fn is_disk(&self) -> bool {
        matches!(self.backing, Backing::Disk(_))
    }

    /// Why the queue cannot take events now, when it knows (a Kafka queue's last refusal by
    /// the brokers, until an event is delivered again), for `/readyz`.
    pub fn problem(&self) -> Option<Arc<str>> {
        match &self.backing {
            #[cfg(feature = "kafka")]
            Backing::Kafka(k) => k.problem(),
            _ => None,
        }
    }

    /// Whether undelivered events outlive this process (disk and Kafka queues).
    pub fn is_durable(&self) -> bool {
        !matches!(self.backing, Backing::Memory)
    }

    /// Stops further commits; the worker delivers what is queued and then sees `None`. A
    /// Kafka queue stops reading its topic.
    pub fn close(&self) {
        self.window.close();
        #[cfg(feature = "kafka")]
        if let Backing::Kafka(k) = &self.backing {
            k.inflight().close();
            k.close();
        }
    }

    /// Disk queues: waits for the writer to fsync and record the last deliveries. Kafka
    /// queues: commits the delivered offsets, leaves the group, flushes the producer. Blocks;
    /// call after the sink's worker stopped.
    pub fn close_disk(&self) {
        match &self.backing {
            Backing::Memory => {}
            Backing::Disk(d) => d.close(),
            #[cfg(feature = "kafka")]
            Backing::Kafka(k) => k.shutdown(),
        }
    }

    /// Disk queues: reads of queued events back from the log that failed since start (the
    /// events stay on disk and the read is tried again). Zero for memory queues.
    pub fn read_errors(&self) -> u64 {
        match &self.backing {
            Backing::Disk(d) => d.read_errors(),
            _ => 0,
        }
    }
}
