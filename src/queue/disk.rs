//! The disk queue: a sink's in-memory `Window` backed by a [`SegmentLog`], so that every event
//! whose request got a 2xx survives a restart or `kill -9` until its sink delivers it.
//!
//! One writer thread per disk queue owns the log. Requests hand it their encoded events over a
//! bounded channel; it appends everything that is waiting, fsyncs once for all of them (group
//! commit: concurrent requests share one fsync, which is what keeps `fsync = "always"` fast),
//! then makes the events visible to the sink's worker, in log order, and answers each request
//! (through its connection thread's relay, `reply.rs`: one wake-up per thread per write).
//! The worker's acknowledgements are a counter the writer turns into the log's committed
//! position. At start the log is recovered (a torn tail is cut and counted) and every
//! uncommitted event is queued again, to be delivered again.
//!
//! Only a window of the oldest undelivered events is held in memory (`memory_events`,
//! `memory_bytes`): the queue's bounds (`max_events`, `max_bytes`) are what the log may hold
//! undelivered, and can be far larger than memory. An event the window has no room for, or that
//! comes after one waiting on disk, stays in the log only; as the worker's acknowledgements
//! drain the window to half, the writer reads the next records back from the log into it, in
//! log order. Log sequence numbers and the worker's view stay in step: the window and the
//! events waiting on disk together are exactly the log's uncommitted records, in order. At
//! start nothing but the window is read back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use metrics::{Counter, Histogram};
use tokio::sync::oneshot;

use super::log::{LogError, SegmentLog};
use super::reply::{self, Answers, Relay};
use super::window::{Room, Window};
pub use crate::config::DiskSettings;
use crate::config::QueueFsync;

/// Requests waiting for the writer; beyond this a request is refused with 503 rather than
/// blocking the runtime.
const CHANNEL_DEPTH: usize = 4096;
/// How often the idle writer turns acknowledgements into the committed position, and checks
/// the `interval` fsync.
const TICK: Duration = Duration::from_millis(50);
/// Least time between two writes of the committed position. Each write costs two fsyncs and a
/// rename; done on every turn of a busy writer, they took as long as the appends' own fsyncs.
/// Committing later only widens what a crash can deliver again.
const COMMIT_EVERY: Duration = TICK;
/// Most records and bytes read back from the log per read: each read is one allocation shared
/// by its events, freed once the last of them is delivered, so this bounds what delivered
/// events can keep alive beyond the window.
const READ_CHUNK_EVENTS: u64 = 10_000;
const READ_CHUNK_BYTES: u64 = 1024 * 1024;
/// Most reads back per turn of the writer, so that appends (and their requests' answers) do
/// not wait for a large window to fill: the rest is read on the next turns.
const READS_PER_TURN: usize = 8;
/// Wait before reading back again after a failed read, doubling up to the maximum.
const READ_RETRY_FIRST: Duration = Duration::from_millis(250);
const READ_RETRY_MAX: Duration = Duration::from_secs(30);

/// Metric handles the writer updates.
pub struct DiskMetrics {
    pub torn_bytes: Counter,
    /// Events loaded back at start: not known to be delivered, so sent (perhaps again).
    pub recovered: Counter,
    pub fsync_seconds: Histogram,
    /// Failed reads back from the log (the events stay on disk and are read again).
    pub read_errors: Counter,
}

/// Whether a request's events are durable (per the fsync policy) and visible to the worker.
pub type Written = oneshot::Receiver<Result<(), WriteError>>;

/// Why a disk queue did not make a request's events durable. The message is the log's or the
/// file system's, shared by every request of the failed write.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// Appending to the log failed: the events are not in it (their room is given back).
    #[error("{0}")]
    Append(Arc<str>),
    /// The fsync after the append failed: the events are in the log and will be delivered,
    /// but may not survive a crash.
    #[error("{0}")]
    Fsync(Arc<str>),
    /// Kafka queues: the brokers refused an event of the request (or the producer could not
    /// take it); the others may have been delivered.
    #[error("{0}")]
    Produce(Arc<str>),
    /// Kafka queues: every refused event of the request is larger than the producer or the
    /// brokers take (`MSG_SIZE_TOO_LARGE`); sending it again cannot help. The request's other
    /// events were delivered.
    #[error("{0}")]
    TooLarge(Arc<str>),
}

/// The writer has too many requests waiting (or has stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the disk queue writer is busy")]
pub struct WriterBusy;

struct Append {
    items: Vec<Bytes>,
    events: u64,
    bytes: u64,
    reply: oneshot::Sender<Result<(), WriteError>>,
    /// The relay of the connection thread the request waits on, if it has one.
    relay: Option<Arc<Relay>>,
}

/// What the writer is sent.
enum Msg {
    Append(Append),
    /// The window drained: read the next events back from the log.
    Refill,
}

pub(super) struct DiskWriter {
    tx: Mutex<Option<SyncSender<Msg>>>,
    /// Events the worker acknowledged since start.
    acked: Arc<AtomicU64>,
    /// A `Refill` is on its way (or the writer is about to look anyway).
    wake: Arc<AtomicBool>,
    /// Reads back from the log that failed.
    read_errors: Arc<AtomicU64>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl DiskWriter {
    /// Opens and recovers the log, counts its undelivered events into `mem`, and starts the
    /// writer thread, which reads the oldest of them back into the window first.
    pub(super) fn open(
        sink_id: &str,
        settings: &DiskSettings,
        mem: Arc<Window>,
        metrics: DiskMetrics,
    ) -> Result<DiskWriter, LogError> {
        let (mut log, recovered) = SegmentLog::open(&settings.dir, settings.segment_bytes)?;
        // Deleting a delivered 64 MiB segment takes ext4 tens of milliseconds: not on the thread
        // the requests wait for.
        log.delete_in_background()?;
        if recovered.torn_bytes > 0 {
            tracing::warn!(sink = %sink_id, dir = %settings.dir.display(), bytes = recovered.torn_bytes, "cut a torn tail from the disk queue (a write interrupted by a crash); the events before it are kept");
            metrics.torn_bytes.increment(recovered.torn_bytes);
        }
        mem.recovered(recovered.records, recovered.bytes);
        metrics.recovered.increment(recovered.records);
        if recovered.records > 0 {
            tracing::info!(sink = %sink_id, events = recovered.records, bytes = recovered.bytes, "undelivered events in the disk queue will be delivered");
        }
        let (tx, rx) = mpsc::sync_channel(CHANNEL_DEPTH);
        let acked = Arc::new(AtomicU64::new(0));
        let wake = Arc::new(AtomicBool::new(false));
        let read_errors = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            sink_id: sink_id.to_owned(),
            base: log.committed(),
            log,
            mem,
            fsync: settings.fsync,
            acked: acked.clone(),
            committed_acks: 0,
            last_commit: Instant::now(),
            unsynced: false,
            last_sync: Instant::now(),
            metrics,
            scratch: Vec::new(),
            wake: wake.clone(),
            read_errors: read_errors.clone(),
            read_retry_at: None,
            read_backoff: READ_RETRY_FIRST,
            read_buf: Vec::new(),
            refilling: false,
            answers: Answers::default(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("siemgate-queue-{sink_id}"))
            .spawn(move || writer.run(rx))
            .map_err(|source| LogError::Io {
                op: "start the writer thread for",
                path: settings.dir.clone(),
                source,
            })?;
        Ok(DiskWriter {
            tx: Mutex::new(Some(tx)),
            acked,
            wake,
            read_errors,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Hands a request's events to the writer. `Err` with the room to give back when the
    /// writer is too far behind.
    pub(super) fn append(
        &self,
        items: Vec<Bytes>,
        events: u64,
        bytes: u64,
    ) -> Result<Written, WriterBusy> {
        let (reply, rx) = oneshot::channel();
        let guard = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = guard.as_ref() else {
            return Err(WriterBusy);
        };
        match tx.try_send(Msg::Append(Append {
            items,
            events,
            bytes,
            reply,
            relay: reply::current(),
        })) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(WriterBusy),
        }
    }

    /// The worker delivered the `n` oldest events.
    pub(super) fn acked(&self, n: u64) {
        self.acked.fetch_add(n, Ordering::Relaxed);
    }

    /// Asks the writer to read the next events back into the window now rather than at its
    /// next tick. Never blocks: when its channel is full the writer is busy and looks anyway.
    pub(super) fn refill(&self) {
        if self.wake.swap(true, Ordering::AcqRel) {
            return;
        }
        let guard = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = guard.as_ref() {
            let _ = tx.try_send(Msg::Refill);
        }
    }

    /// Reads back from the log that failed since start (the events stayed on disk).
    pub(super) fn read_errors(&self) -> u64 {
        self.read_errors.load(Ordering::Relaxed)
    }
}

impl DiskWriter {
    /// Stops the writer once it has written what it was given, fsynced (unless the policy is
    /// `never`) and recorded the last acknowledgements. Blocks; call it off the runtime.
    pub(super) fn close(&self) {
        // Closing the channel ends the writer's loop.
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for DiskWriter {
    fn drop(&mut self) {
        self.close();
    }
}

struct Writer {
    sink_id: String,
    log: SegmentLog,
    mem: Arc<Window>,
    fsync: QueueFsync,
    /// The committed position at start, which is the sequence number of the queue's head
    /// then; with `acked` it gives the committed position now.
    base: u64,
    acked: Arc<AtomicU64>,
    committed_acks: u64,
    /// When the committed position was last written (or tried).
    last_commit: Instant,
    unsynced: bool,
    last_sync: Instant,
    metrics: DiskMetrics,
    /// Reused list of every waiting request's events, written with one append.
    scratch: Vec<Bytes>,
    wake: Arc<AtomicBool>,
    read_errors: Arc<AtomicU64>,
    /// After a failed read back: no new attempt before this.
    read_retry_at: Option<Instant>,
    /// The wait after the next failed read back.
    read_backoff: Duration,
    /// Reused: the records of one read back.
    read_buf: Vec<Bytes>,
    /// The window is being filled: carry on until it is full, whatever its level.
    refilling: bool,
    /// Reused: one write's answers, by connection thread.
    answers: Answers,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let mut batch: Vec<Append> = Vec::new();
        // Whether the window is being filled from the log: then the writer does not wait for
        // messages. True at first, for the window of what was recovered.
        let mut filling = true;
        loop {
            match rx.recv_timeout(if filling { Duration::ZERO } else { TICK }) {
                Ok(Msg::Append(first)) => batch.push(first),
                Ok(Msg::Refill) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while batch.len() < CHANNEL_DEPTH {
                match rx.try_recv() {
                    Ok(Msg::Append(m)) => batch.push(m),
                    Ok(Msg::Refill) => {}
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.write(&mut batch);
            }
            self.wake.store(false, Ordering::Release);
            filling = self.refill();
            if self.unsynced {
                if let QueueFsync::Interval(every) = self.fsync {
                    if self.last_sync.elapsed() >= every {
                        let _ = self.sync();
                    }
                }
            }
            if self.last_commit.elapsed() >= COMMIT_EVERY {
                self.commit_acks();
            }
        }
        if self.unsynced && self.fsync != QueueFsync::Never {
            let _ = self.sync();
        }
        self.commit_acks();
    }

    fn sync(&mut self) -> Result<(), LogError> {
        let started = Instant::now();
        let r = self.log.sync();
        self.metrics
            .fsync_seconds
            .record(started.elapsed().as_secs_f64());
        self.last_sync = Instant::now();
        if r.is_ok() {
            self.unsynced = false;
        }
        r
    }

    /// Appends every waiting request with one write, fsyncs once (policy `always`), then
    /// publishes and answers.
    fn write(&mut self, batch: &mut Vec<Append>) {
        let mut all = std::mem::take(&mut self.scratch);
        all.clear();
        for m in batch.iter() {
            all.extend(m.items.iter().cloned());
        }
        let appended = self.log.append(&all);
        all.clear();
        self.scratch = all;
        if let Err(e) = appended {
            tracing::error!(sink = %self.sink_id, error = %e, "cannot write to the disk queue; the requests are refused");
            let reason = WriteError::Append(e.to_string().into());
            for m in batch.drain(..) {
                self.mem.release(m.events, m.bytes);
                self.answers.add(m.relay, (m.reply, Err(reason.clone())));
            }
            self.answers.send();
            return;
        }
        self.unsynced = true;
        let synced = if self.fsync == QueueFsync::Always {
            self.sync()
                .map_err(|e| WriteError::Fsync(e.to_string().into()))
        } else {
            Ok(())
        };
        if let Err(e) = &synced {
            tracing::error!(sink = %self.sink_id, error = %e, "cannot fsync the disk queue; the requests are refused (their events may still be delivered)");
        }
        for m in batch.drain(..) {
            // In the log either way, so delivered either way: the worker must see them in log
            // order, even when the answer is an error (the sender retries; a duplicate at worst).
            self.mem
                .push_reserved(m.events, m.bytes, m.items.into_iter());
            self.answers.add(m.relay, (m.reply, synced.clone()));
        }
        self.answers.send();
    }

    /// Reads the events after the window back from the log into it, in order: once the window
    /// has drained to half (see [`Window::wants_refill`]), until it is full or nothing
    /// waits on disk, at most [`READS_PER_TURN`] reads per call. True when there is more to
    /// read now. A failed read leaves the events on disk, is logged and counted, and is tried
    /// again after a growing wait.
    fn refill(&mut self) -> bool {
        if self.read_retry_at.is_some_and(|at| Instant::now() < at) {
            return false;
        }
        if !self.refilling && !self.mem.wants_refill() {
            return false;
        }
        self.refilling = true;
        for _ in 0..READS_PER_TURN {
            let Some(room) = self.mem.refill_room() else {
                self.refilling = false;
                return false;
            };
            match self.read_back(room) {
                Ok(true) => {
                    self.read_retry_at = None;
                    self.read_backoff = READ_RETRY_FIRST;
                    self.mem.push_read(self.read_buf.drain(..));
                }
                // The next record is larger than the room left: full for now.
                Ok(false) => {
                    self.refilling = false;
                    return false;
                }
                Err(e) => {
                    self.read_buf.clear();
                    self.read_errors.fetch_add(1, Ordering::Relaxed);
                    self.metrics.read_errors.increment(1);
                    let wait = self.read_backoff;
                    self.read_retry_at = Some(Instant::now() + wait);
                    self.read_backoff = (wait * 2).min(READ_RETRY_MAX);
                    tracing::error!(sink = %self.sink_id, error = %e, events_on_disk = room.spilled, retry_in = ?wait, "cannot read queued events back from the disk queue; they stay on disk and the read is tried again");
                    self.refilling = false;
                    return false;
                }
            }
        }
        true
    }

    /// Reads the next records after the window into `read_buf`, within `room`. `Ok(false)`
    /// when the next record does not fit.
    fn read_back(&mut self, room: Room) -> Result<bool, LogError> {
        // The events waiting on disk are the log's last records.
        let seq = self
            .log
            .next_seq()
            .checked_sub(room.spilled)
            .ok_or(LogError::OutOfRange {
                seq: 0,
                committed: self.log.committed(),
                next_seq: self.log.next_seq(),
            })?;
        let records = usize::try_from(room.events.min(room.spilled).min(READ_CHUNK_EVENTS))
            .unwrap_or(usize::MAX);
        let chunk = usize::try_from(room.bytes.min(READ_CHUNK_BYTES)).unwrap_or(usize::MAX);
        self.read_buf.clear();
        self.log
            .read_within(seq, records.max(1), chunk, &mut self.read_buf)?;
        if self.read_buf.is_empty() {
            if room.empty {
                // Alone in the window, whatever its size, so that nothing gets stuck.
                self.log.read_from(seq, 1, 0, &mut self.read_buf)?;
            } else if room.bytes > chunk as u64 {
                // Larger than a chunk, yet it fits the room.
                let all = usize::try_from(room.bytes).unwrap_or(usize::MAX);
                self.log.read_within(seq, 1, all, &mut self.read_buf)?;
            }
        }
        Ok(!self.read_buf.is_empty())
    }

    fn commit_acks(&mut self) {
        let acked = self.acked.load(Ordering::Relaxed);
        if acked == self.committed_acks {
            return;
        }
        self.last_commit = Instant::now();
        // The window holds the oldest of the log's uncommitted records in log order, so the
        // worker's n-th acknowledgement is record `base + n`.
        let upto = self.base + acked;
        match self.log.commit(upto) {
            Ok(()) => self.committed_acks = acked,
            Err(e) => {
                tracing::error!(sink = %self.sink_id, error = %e, "cannot record delivered events in the disk queue; they may be delivered again after a restart")
            }
        }
    }
}
