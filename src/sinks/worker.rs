//! The one worker loop every sink runs: dequeue -> send -> ack | retry with backoff | hold on a
//! configuration error | dead-letter what the destination refuses for good, plus the release
//! of what a destination that confirms later (`Sent::HandedOff`) reports as settled.
//!
//! The worker knows nothing of any protocol: it acts on the answer classes of `sent` and
//! `retry`, through the `Transport` seam. Each batch stays at the head of the queue until
//! every event in it is delivered or refused for good (or handed off), so nothing overtakes
//! it; events a destination asks to retry (`Partial::retry`) are sent again alone, after a
//! backoff.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::dead_letter::DeadLetters;
use super::retry::{Backoff, SendError};
use super::sent::{Partial, Sent, Settled};
use super::transport::{Probe, Transport};
use super::SinkHandle;
use crate::config::BatchLimits;

/// How often an idle sink that is not ready checks its destination again.
const IDLE_PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// Why a batch that kept failing was dead-lettered.
const GAVE_UP: &str = "retried for longer than max_retry_duration";

/// A sink's worker: its transport and what it needs to act on the answers.
pub struct Worker<T> {
    pub(super) handle: Arc<SinkHandle>,
    transport: T,
    batch: BatchLimits,
    dead_letters: DeadLetters,
    /// Retryable failures of one batch for longer than this dead-letter it.
    max_retry: Option<Duration>,
    backoff: Backoff,
    /// Events handed off (`Sent::HandedOff`) and not yet released by `settled`.
    handed_off: usize,
}

/// What woke the worker.
enum Wake {
    Batch,
    /// The queue is closed and has nothing more to hand out.
    Drained,
    Settled(Result<Settled, SendError>),
    Probe,
    Abort,
}

impl<T: Transport> Worker<T> {
    pub fn new(
        handle: Arc<SinkHandle>,
        transport: T,
        batch: BatchLimits,
        dead_letters: DeadLetters,
        max_retry: Option<Duration>,
    ) -> Worker<T> {
        Worker {
            handle,
            transport,
            batch,
            dead_letters,
            max_retry,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(30)),
            handed_off: 0,
        }
    }

    /// Delivers batches until the queue is closed, empty and nothing handed off is unsettled,
    /// or `abort` fires (shutdown grace over). Retryable failures back off with jitter,
    /// configuration errors hold the queue and mark the sink not ready.
    pub async fn run(mut self, abort: CancellationToken) {
        let handle = self.handle.clone();
        // What an earlier worker handed off was never confirmed to this transport.
        handle.queue.rewind();
        self.check(&abort).await;
        let (limits, mut batch) = (self.batch, Vec::with_capacity(self.batch.max_events));
        let mut drained = false;
        let completed = loop {
            let wake = tokio::select! {
                biased;
                () = abort.cancelled() => Wake::Abort,
                s = self.transport.settled() => Wake::Settled(s),
                n = handle.queue.next_batch(limits.max_events, limits.max_bytes, limits.linger, &mut batch), if !drained => {
                    if n.is_some() { Wake::Batch } else { Wake::Drained }
                }
                () = tokio::time::sleep(IDLE_PROBE_INTERVAL), if !handle.is_healthy() => Wake::Probe,
            };
            let going = match wake {
                Wake::Batch => self.deliver(&batch, &abort).await,
                Wake::Settled(s) => self.settle(s, &abort).await,
                Wake::Drained => {
                    drained = true;
                    true
                }
                Wake::Probe => self.check(&abort).await,
                Wake::Abort => false,
            };
            handle.update_depth_gauges();
            if !going || (drained && self.handed_off == 0) {
                break going;
            }
        };
        if !completed {
            tracing::error!(sink = %handle.id, events = handle.queue.depth().events, "shutdown deadline reached with events undelivered");
        }
        self.transport.close().await;
    }

    /// Probes the destination: a failure marks the sink not ready, a real check that passes
    /// marks it ready. True unless `abort` fired.
    async fn check(&mut self, abort: &CancellationToken) -> bool {
        let probed = tokio::select! {
            r = self.transport.probe() => r,
            () = abort.cancelled() => return false,
        };
        match probed {
            Ok(Probe::Reachable) if !self.handle.is_healthy() => {
                self.handle.set_healthy(true);
                tracing::info!(sink = %self.handle.id, "destination check passed");
            }
            Ok(_) => {}
            Err(e) if self.handle.is_healthy() => {
                self.handle.set_failure(&e.to_string());
                tracing::error!(sink = %self.handle.id, reason = %e, "destination check failed; events will be held until it works");
            }
            Err(_) => {}
        }
        true
    }

    /// Applies what the transport reports as settled, or backs off after its failure. False
    /// when `abort` fired first.
    async fn settle(
        &mut self,
        settled: Result<Settled, SendError>,
        abort: &CancellationToken,
    ) -> bool {
        let s = match settled {
            Ok(s) => s,
            Err(e) => {
                let delay = self.failure_delay(e);
                return sleep_unless(delay, abort).await;
            }
        };
        let released = s.released.min(self.handed_off);
        if released > 0 {
            self.handle.queue.ack(released);
            self.handed_off -= released;
        }
        self.handle.metrics.delivered.increment(s.delivered as u64);
        if s.resent {
            self.handle.set_healthy(true);
            self.backoff.reset();
        }
        self.refuse(s.refused).await;
        true
    }

    /// Counts, logs and dead-letters events the destination refused for good: the one path
    /// for them, whether a send or a later settlement says so.
    async fn refuse(&mut self, refused: Vec<(Bytes, String)>) {
        let Some((_, reason)) = refused.first() else {
            return;
        };
        tracing::error!(sink = %self.handle.id, %reason, events = refused.len(), "destination refused events for good; they go to the dead letters");
        self.handle.metrics.failed.increment(refused.len() as u64);
        self.dead_letters.record(refused).await;
    }

    /// Marks the sink failing, counts the retry, logs, and says how long to back off.
    fn failure_delay(&mut self, e: SendError) -> Duration {
        let handle = &self.handle;
        handle.set_failure(&e.to_string());
        handle.metrics.retries.increment(1);
        let events = handle.queue.depth().events;
        let delay = self
            .backoff
            .next_delay()
            .max(e.retry_after().unwrap_or_default());
        match e {
            SendError::Config(reason) => {
                tracing::error!(sink = %handle.id, %reason, events, ?delay, "destination refuses this sink's configuration; holding the queue");
            }
            SendError::Retryable { reason, .. } => {
                tracing::warn!(sink = %handle.id, %reason, events, ?delay, "send failed, will retry");
            }
        }
        delay
    }

    /// Sends one batch until every event in it is delivered, refused for good, or handed off.
    /// False when `abort` fired first.
    async fn deliver(&mut self, batch: &[Bytes], abort: &CancellationToken) -> bool {
        let mut todo = Todo::new(batch.len());
        let mut failing_since: Option<Instant> = None;
        let mut delay = Duration::ZERO;
        while !todo.is_done() {
            if !sleep_unless(delay, abort).await {
                return false;
            }
            let events = todo.events(batch);
            let sent = tokio::select! {
                r = self.transport.send(&events) => r,
                () = abort.cancelled() => return false,
            };
            let retry_since = *failing_since.get_or_insert_with(Instant::now);
            let retryable = match sent {
                Ok(Sent::Delivered(n)) if n > 0 => {
                    let n = todo.settle_first(n);
                    self.handle.metrics.delivered.increment(n as u64);
                    None
                }
                Ok(Sent::HandedOff(n)) if n > 0 => {
                    let n = todo.settle_first(n);
                    self.handle.queue.hand_off(n);
                    self.handed_off += n;
                    todo.handed_off = true;
                    None
                }
                Ok(Sent::Partial(p)) => self.partial(p, &mut todo, batch).await,
                Ok(_) => Some(SendError::retryable(
                    "destination accepted none of the batch",
                )),
                Err(e) => Some(e),
            };
            delay = match retryable {
                None => {
                    self.handle.set_healthy(true);
                    self.backoff.reset();
                    failing_since = None;
                    Duration::ZERO
                }
                Some(e) => {
                    let give_up = matches!(e, SendError::Retryable { .. })
                        && self.handed_off == 0
                        && self
                            .max_retry
                            .is_some_and(|max| retry_since.elapsed() >= max);
                    let delay = self.failure_delay(e);
                    if give_up {
                        self.give_up(&mut todo, batch).await;
                    }
                    delay
                }
            };
            let head = todo.settled_head();
            if head > 0 && !todo.handed_off {
                self.handle.queue.ack(head);
            }
        }
        true
    }

    /// Applies a per-event answer: refused events to the dead letters, the rest delivered but
    /// those to retry. The error to back off on when some are to be retried.
    async fn partial(&mut self, p: Partial, todo: &mut Todo, batch: &[Bytes]) -> Option<SendError> {
        let (delivered, refused) = todo.settle_partial(&p, batch);
        self.handle.metrics.delivered.increment(delivered as u64);
        self.refuse(refused).await;
        if todo.is_done() {
            return None;
        }
        let reason = p
            .retry_reason
            .unwrap_or_else(|| "the destination asked to retry some events".to_owned());
        Some(SendError::Retryable {
            reason,
            retry_after: p.retry_after,
        })
    }

    /// Dead-letters what is left of a batch that kept failing for longer than
    /// `max_retry_duration`.
    async fn give_up(&mut self, todo: &mut Todo, batch: &[Bytes]) {
        let rest = todo.take_rest(batch);
        tracing::error!(sink = %self.handle.id, events = rest.len(), "retried for longer than max_retry_duration; the batch goes to the dead letters");
        self.handle.metrics.failed.increment(rest.len() as u64);
        self.dead_letters
            .record(rest.into_iter().map(|e| (e, GAVE_UP.to_owned())).collect())
            .await;
        self.backoff.reset();
    }
}

/// The events of a batch still to send, by index, in order.
struct Todo {
    len: usize,
    pending: Vec<usize>,
    /// Events at the head of the batch already acknowledged to the queue.
    acked: usize,
    /// Some events of the batch were handed off: the transport releases the head from now on.
    handed_off: bool,
}

impl Todo {
    fn new(len: usize) -> Todo {
        Todo {
            len,
            pending: (0..len).collect(),
            acked: 0,
            handed_off: false,
        }
    }

    fn is_done(&self) -> bool {
        self.pending.is_empty()
    }

    /// The events to send now: the pending ones, in order (a sub-slice while they are the
    /// batch's tail, copies of the `Bytes` handles once some in between are settled).
    fn events<'b>(&self, batch: &'b [Bytes]) -> std::borrow::Cow<'b, [Bytes]> {
        match self.pending.first() {
            Some(&first) if first + self.pending.len() == self.len => {
                std::borrow::Cow::Borrowed(&batch[first..])
            }
            _ => self.pending.iter().map(|&i| batch[i].clone()).collect(),
        }
    }

    /// The first `n` pending events are settled; returns how many that is.
    fn settle_first(&mut self, n: usize) -> usize {
        let n = n.min(self.pending.len());
        self.pending.drain(..n);
        n
    }

    /// Applies a per-event answer about the events sent; returns the number delivered and the
    /// refused events with their reasons. Indexes out of range are ignored.
    fn settle_partial(&mut self, p: &Partial, batch: &[Bytes]) -> (usize, Vec<(Bytes, String)>) {
        let sent = self.pending.len();
        let mut refused = Vec::with_capacity(p.refused.len());
        let mut keep = vec![false; sent];
        let mut gone = vec![false; sent];
        for (i, reason) in &p.refused {
            if *i < sent && !gone[*i] {
                gone[*i] = true;
                refused.push((batch[self.pending[*i]].clone(), reason.clone()));
            }
        }
        for &i in &p.retry {
            if i < sent && !gone[i] {
                keep[i] = true;
            }
        }
        let delivered = (0..sent).filter(|&i| !keep[i] && !gone[i]).count();
        let mut i = 0;
        self.pending.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        (delivered, refused)
    }

    /// Takes every pending event out, for the dead letters.
    fn take_rest(&mut self, batch: &[Bytes]) -> Vec<Bytes> {
        self.pending.drain(..).map(|i| batch[i].clone()).collect()
    }

    /// How many more events at the head of the batch are settled since the last call: they
    /// leave the queue now, the rest stay behind the first pending one.
    fn settled_head(&mut self) -> usize {
        let head = self.pending.first().copied().unwrap_or(self.len);
        let n = head.saturating_sub(self.acked);
        self.acked = self.acked.max(head);
        n
    }
}

/// Sleeps for `delay` unless `abort` fires first; false then.
async fn sleep_unless(delay: Duration, abort: &CancellationToken) -> bool {
    if delay.is_zero() {
        return !abort.is_cancelled();
    }
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = abort.cancelled() => false,
    }
}
