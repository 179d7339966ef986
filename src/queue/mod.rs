//! Per-sink queues of encoded events: bounded by events and bytes, filled all-or-nothing by
//! dispatch (`try_reserve` then `commit`) and drained by the sink's worker (`next_batch` then
//! `ack`). Events stay in the queue until their sink acknowledges them, so a batch that fails is
//! still there to retry, and queue depth counts what is not yet delivered.

pub mod disk;
pub mod log;
pub mod memory;

pub use memory::{Depth, MemoryQueue, QueueFull, Reservation, Room};

use std::sync::Arc;

use bytes::Bytes;

use crate::config::QueueLimits;
use disk::{DiskMetrics, DiskSettings, DiskWriter, Written};
use log::LogError;

/// A sink's queue: in memory only, or on disk with a window of its oldest events in memory.
/// Reads, bounds and depth are the memory queue's (for a disk queue the depth counts the events
/// waiting on disk too); a disk queue also writes each request's events to its log before they
/// become visible, reads the events beyond the window back as the window drains, and turns
/// acknowledgements into the log's committed position.
pub struct Queue {
    mem: Arc<MemoryQueue>,
    disk: Option<DiskWriter>,
}

impl std::ops::Deref for Queue {
    type Target = MemoryQueue;

    fn deref(&self) -> &MemoryQueue {
        &self.mem
    }
}

impl Queue {
    pub fn memory(limits: QueueLimits) -> Queue {
        Queue {
            mem: Arc::new(MemoryQueue::new(limits)),
            disk: None,
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
        let mem = Arc::new(MemoryQueue::with_window(limits, settings.memory));
        let disk = DiskWriter::open(sink_id, settings, mem.clone(), metrics)?;
        Ok(Queue {
            mem,
            disk: Some(disk),
        })
    }

    /// Puts a request's events in the queue. A memory queue takes them at once (`None`); a
    /// disk queue answers through `Written` once they are in its log (and fsynced, per its
    /// policy). `Err` when the disk writer is too far behind; the room is given back.
    pub fn commit(
        &self,
        reservation: Reservation<'_>,
        items: Vec<Bytes>,
    ) -> Result<Option<Written>, QueueFull> {
        match &self.disk {
            None => {
                reservation.commit(items.into_iter());
                Ok(None)
            }
            Some(disk) => {
                let (events, bytes) = reservation.detach();
                disk.append(items, events, bytes).map(Some).map_err(|_| {
                    self.mem.release(events, bytes);
                    QueueFull
                })
            }
        }
    }

    pub fn is_disk(&self) -> bool {
        self.disk.is_some()
    }

    /// Disk queues: waits for the writer to fsync and record the last deliveries. Blocks.
    pub fn close_disk(&self) {
        if let Some(d) = &self.disk {
            d.close();
        }
    }

    /// Removes the `n` oldest events after their sink delivered them.
    pub fn ack(&self, n: usize) {
        let refill = self.mem.ack(n);
        if let Some(d) = &self.disk {
            d.acked(n as u64);
            if refill {
                d.refill();
            }
        }
    }

    /// Disk queues: reads of queued events back from the log that failed since start (the
    /// events stay on disk and the read is tried again). Zero for memory queues.
    pub fn read_errors(&self) -> u64 {
        self.disk.as_ref().map_or(0, DiskWriter::read_errors)
    }
}
