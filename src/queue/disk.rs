//! The disk queue: a sink's [`MemoryQueue`] backed by a [`SegmentLog`], so that every event
//! whose request got a 2xx survives a restart or `kill -9` until its sink delivers it.
//!
//! One writer thread per disk queue owns the log. Requests hand it their encoded events over a
//! bounded channel; it appends everything that is waiting, fsyncs once for all of them (group
//! commit: concurrent requests share one fsync, which is what keeps `fsync = "always"` fast),
//! then makes the events visible to the sink's worker, in log order, and answers each request.
//! The worker's acknowledgements are a counter the writer turns into the log's committed
//! position. At start the log is recovered (a torn tail is cut and counted) and every
//! uncommitted event is loaded back, to be delivered again.
//!
//! The queue's events are held in memory as well as on disk, so `max_bytes` bounds both.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use metrics::{Counter, Histogram};
use tokio::sync::oneshot;

use super::log::{LogError, SegmentLog};
use super::MemoryQueue;
use crate::config::QueueFsync;

/// Requests waiting for the writer; beyond this a request is refused with 503 rather than
/// blocking the runtime.
const CHANNEL_DEPTH: usize = 4096;
/// How often the idle writer turns acknowledgements into the committed position, and checks
/// the `interval` fsync.
const TICK: Duration = Duration::from_millis(50);
/// Records read back per call while loading the queue at start.
const LOAD_CHUNK: usize = 10_000;

#[derive(Debug, Clone)]
pub struct DiskSettings {
    pub dir: PathBuf,
    pub fsync: QueueFsync,
    pub segment_bytes: u64,
}

/// Metric handles the writer updates.
pub struct DiskMetrics {
    pub torn_bytes: Counter,
    /// Events loaded back at start: not known to be delivered, so sent (perhaps again).
    pub recovered: Counter,
    pub fsync_seconds: Histogram,
}

/// Whether a request's events are durable (per the fsync policy) and visible to the worker.
pub type Written = oneshot::Receiver<Result<(), String>>;

/// The writer has too many requests waiting (or has stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the disk queue writer is busy")]
pub struct WriterBusy;

struct Append {
    items: Vec<Bytes>,
    events: u64,
    bytes: u64,
    reply: oneshot::Sender<Result<(), String>>,
}

pub struct DiskWriter {
    tx: Mutex<Option<SyncSender<Append>>>,
    /// Events the worker acknowledged since start.
    acked: Arc<AtomicU64>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl DiskWriter {
    /// Opens and recovers the log, loads its undelivered events into `mem`, and starts the
    /// writer thread.
    pub fn open(
        sink_id: &str,
        settings: &DiskSettings,
        mem: Arc<MemoryQueue>,
        metrics: DiskMetrics,
    ) -> Result<DiskWriter, LogError> {
        let (mut log, recovered) = SegmentLog::open(&settings.dir, settings.segment_bytes)?;
        if recovered.torn_bytes > 0 {
            tracing::warn!(sink = %sink_id, dir = %settings.dir.display(), bytes = recovered.torn_bytes, "cut a torn tail from the disk queue (a write interrupted by a crash); the events before it are kept");
            metrics.torn_bytes.increment(recovered.torn_bytes);
        }
        let first = log.committed();
        let mut seq = first;
        let mut chunk = Vec::new();
        while seq < log.next_seq() {
            chunk.clear();
            log.read_from(seq, LOAD_CHUNK, 64 * 1024 * 1024, &mut chunk)?;
            if chunk.is_empty() {
                break;
            }
            seq += chunk.len() as u64;
            mem.preload(chunk.drain(..));
        }
        metrics.recovered.increment(recovered.records);
        if recovered.records > 0 {
            tracing::info!(sink = %sink_id, events = recovered.records, "loaded undelivered events from the disk queue");
        }
        let (tx, rx) = mpsc::sync_channel(CHANNEL_DEPTH);
        let acked = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            sink_id: sink_id.to_owned(),
            log,
            mem,
            fsync: settings.fsync,
            base: first,
            acked: acked.clone(),
            committed_acks: 0,
            unsynced: false,
            last_sync: Instant::now(),
            metrics,
            scratch: Vec::new(),
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
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Hands a request's events to the writer. `Err` with the room to give back when the
    /// writer is too far behind.
    pub fn append(
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
        match tx.try_send(Append {
            items,
            events,
            bytes,
            reply,
        }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(WriterBusy),
        }
    }

    /// The worker delivered the `n` oldest events.
    pub fn acked(&self, n: u64) {
        self.acked.fetch_add(n, Ordering::Relaxed);
    }
}

impl DiskWriter {
    /// Stops the writer once it has written what it was given, fsynced (unless the policy is
    /// `never`) and recorded the last acknowledgements. Blocks; call it off the runtime.
    pub fn close(&self) {
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
    mem: Arc<MemoryQueue>,
    fsync: QueueFsync,
    /// The committed position at start, which is the sequence number of the queue's head
    /// then; with `acked` it gives the committed position now.
    base: u64,
    acked: Arc<AtomicU64>,
    committed_acks: u64,
    unsynced: bool,
    last_sync: Instant,
    metrics: DiskMetrics,
    /// Reused list of every waiting request's events, written with one append.
    scratch: Vec<Bytes>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Append>) {
        let mut batch: Vec<Append> = Vec::new();
        loop {
            match rx.recv_timeout(TICK) {
                Ok(first) => batch.push(first),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while batch.len() < CHANNEL_DEPTH {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.write(&mut batch);
            }
            if self.unsynced {
                if let QueueFsync::Interval(every) = self.fsync {
                    if self.last_sync.elapsed() >= every {
                        let _ = self.sync();
                    }
                }
            }
            self.commit_acks();
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
            let reason = e.to_string();
            for m in batch.drain(..) {
                self.mem.release(m.events, m.bytes);
                let _ = m.reply.send(Err(reason.clone()));
            }
            return;
        }
        self.unsynced = true;
        let synced = if self.fsync == QueueFsync::Always {
            self.sync().map_err(|e| e.to_string())
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
            let _ = m.reply.send(synced.clone());
        }
    }

    fn commit_acks(&mut self) {
        let acked = self.acked.load(Ordering::Relaxed);
        if acked == self.committed_acks {
            return;
        }
        // The memory queue holds the log's uncommitted records in log order, so the worker's
        // n-th acknowledgement is record `base + n`.
        let upto = self.base + acked;
        match self.log.commit(upto) {
            Ok(()) => self.committed_acks = acked,
            Err(e) => {
                tracing::error!(sink = %self.sink_id, error = %e, "cannot record delivered events in the disk queue; they may be delivered again after a restart")
            }
        }
    }
}
