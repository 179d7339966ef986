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
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
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
                self.handle.set_healthy(false);
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
        handle.set_healthy(false);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::collections::VecDeque;
    use std::sync::atomic::AtomicBool;
    use std::sync::Mutex;

    use tokio::sync::mpsc;

    use super::*;
    use crate::config::QueueLimits;
    use crate::metrics::Registry;
    use crate::queue::Queue;

    /// One send the worker made: when, what, and how deep the queue was then.
    #[derive(Debug, Clone)]
    struct Call {
        at: Instant,
        events: Vec<Bytes>,
        depth: u64,
    }

    /// A transport that answers from a script and records every send.
    struct Scripted {
        handle: Arc<SinkHandle>,
        answers: VecDeque<Result<Sent, SendError>>,
        /// The answer once the script is used up, from the number of events sent.
        otherwise: fn(usize) -> Sent,
        calls: Arc<Mutex<Vec<Call>>>,
        settled: Option<mpsc::Receiver<Settled>>,
    }

    impl Transport for Scripted {
        async fn send(&mut self, batch: &[Bytes]) -> Result<Sent, SendError> {
            self.calls.lock().unwrap().push(Call {
                at: Instant::now(),
                events: batch.to_vec(),
                depth: self.handle.queue.depth().events,
            });
            self.answers
                .pop_front()
                .unwrap_or_else(|| Ok((self.otherwise)(batch.len())))
        }

        async fn settled(&mut self) -> Result<Settled, SendError> {
            match &mut self.settled {
                Some(rx) => match rx.recv().await {
                    Some(s) => Ok(s),
                    None => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        }
    }

    struct Rig {
        registry: Registry,
        handle: Arc<SinkHandle>,
        calls: Arc<Mutex<Vec<Call>>>,
        dead: std::path::PathBuf,
        _dir: tempfile::TempDir,
    }

    impl Rig {
        fn new(events: &[&'static str]) -> Rig {
            let registry = Registry::new();
            let queue = Queue::memory(QueueLimits {
                max_events: 100,
                max_bytes: 10_000,
            });
            let items: Vec<Bytes> = events
                .iter()
                .map(|e| Bytes::from_static(e.as_bytes()))
                .collect();
            let bytes = items.iter().map(|i| i.len() as u64).sum();
            let reservation = queue.try_reserve(items.len() as u64, bytes).unwrap();
            assert!(queue.commit(reservation, items).unwrap().is_none());
            let handle = Arc::new(SinkHandle {
                id: "t".to_owned(),
                queue,
                metrics: registry.sink("t"),
                healthy: AtomicBool::new(true),
            });
            let dir = tempfile::tempdir().unwrap();
            Rig {
                dead: dir.path().join("dead.ndjson"),
                registry,
                handle,
                calls: Arc::default(),
                _dir: dir,
            }
        }

        fn worker(
            &self,
            answers: Vec<Result<Sent, SendError>>,
            otherwise: fn(usize) -> Sent,
            settled: Option<mpsc::Receiver<Settled>>,
            max_retry: Option<Duration>,
        ) -> Worker<Scripted> {
            let transport = Scripted {
                handle: self.handle.clone(),
                answers: answers.into(),
                otherwise,
                calls: self.calls.clone(),
                settled,
            };
            let batch = BatchLimits {
                max_events: 10,
                max_bytes: 10_000,
                linger: Duration::ZERO,
            };
            let dead_letters = DeadLetters::new(
                "t",
                Some(self.dead.clone()),
                self.handle.metrics.dead_letters.clone(),
            );
            Worker::new(
                self.handle.clone(),
                transport,
                batch,
                dead_letters,
                max_retry,
            )
        }

        fn calls(&self) -> Vec<Call> {
            self.calls.lock().unwrap().clone()
        }

        /// A counter of sink `t`, from the Prometheus text.
        fn counter(&self, name: &str) -> f64 {
            let text = self.registry.render();
            text.lines()
                .find(|l| l.starts_with(name) && l.contains("sink=\"t\""))
                .and_then(|l| l.rsplit(' ').next())
                .map_or(0.0, |v| v.parse().unwrap())
        }

        /// `[delivered, failed, retries, dead letters]`
        fn counts(&self) -> [f64; 4] {
            [
                "siemgate_events_delivered_total",
                "siemgate_events_failed_total",
                "siemgate_sink_retries_total",
                "siemgate_dead_letters_total",
            ]
            .map(|n| self.counter(n))
        }

        /// `(event, reason)` of every dead letter written.
        fn dead_letters(&self) -> Vec<(String, String)> {
            let text = std::fs::read_to_string(&self.dead).unwrap_or_default();
            text.lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    (
                        v["event"].as_str().unwrap().to_owned(),
                        v["reason"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        }
    }

    fn bytes(events: &[&'static str]) -> Vec<Bytes> {
        events
            .iter()
            .map(|e| Bytes::from_static(e.as_bytes()))
            .collect()
    }

    /// Waits (on paused time) until `cond` holds.
    async fn until(what: &str, cond: impl Fn() -> bool) {
        for _ in 0..1000 {
            if cond() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never: {what}");
    }

    /// Runs the worker over what is queued (the queue closed first) to its end.
    async fn drain(rig: &Rig, worker: Worker<Scripted>) {
        rig.handle.queue.close();
        tokio::time::timeout(
            Duration::from_secs(600),
            worker.run(CancellationToken::new()),
        )
        .await
        .expect("the worker finishes once the queue is drained");
    }

    /// A per-event answer refusing event 1 and asking to retry event 3 after 2 s: the refused
    /// event is dead-lettered once with its reason, event 3 goes again alone no sooner than
    /// 2 s later, the others are counted delivered once, and event 4 (delivered) does not
    /// leave the queue before event 3 does.
    #[tokio::test(start_paused = true)]
    async fn partial_answer_refuses_once_and_retries_alone_after_retry_after() {
        let rig = Rig::new(&["e0", "e1", "e2", "e3", "e4"]);
        let partial = Partial {
            refused: vec![(1, "mapper_parsing_exception".to_owned())],
            retry: vec![3],
            retry_after: Some(Duration::from_secs(2)),
            retry_reason: Some("es_rejected_execution_exception".to_owned()),
        };
        let worker = rig.worker(
            vec![Ok(Sent::Partial(partial))],
            Sent::Delivered,
            None,
            None,
        );
        drain(&rig, worker).await;

        let calls = rig.calls();
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert_eq!(calls[0].events, bytes(&["e0", "e1", "e2", "e3", "e4"]));
        assert_eq!(
            calls[1].events,
            bytes(&["e3"]),
            "the retried event goes alone"
        );
        let waited = calls[1].at - calls[0].at;
        assert!(waited >= Duration::from_secs(2), "retried after {waited:?}");
        assert_eq!(calls[0].depth, 5);
        assert_eq!(
            calls[1].depth, 2,
            "e0-e2 settled at the head leave; e4 waits behind the retried e3"
        );
        assert_eq!(rig.handle.queue.depth().events, 0);
        assert_eq!(
            rig.dead_letters(),
            [("e1".to_owned(), "mapper_parsing_exception".to_owned())]
        );
        assert_eq!(
            rig.counts(),
            [4.0, 1.0, 1.0, 1.0],
            "delivered, failed, retries, dead letters"
        );
    }

    /// A whole-batch retryable failure with `Retry-After: 3` is sent again whole, no sooner
    /// than 3 s later, and counted as one retry; nothing is delivered twice.
    #[tokio::test(start_paused = true)]
    async fn retryable_failure_waits_for_retry_after() {
        let rig = Rig::new(&["a", "b"]);
        let busy = SendError::Retryable {
            reason: "busy".to_owned(),
            retry_after: Some(Duration::from_secs(3)),
        };
        let worker = rig.worker(vec![Err(busy)], Sent::Delivered, None, None);
        drain(&rig, worker).await;

        let calls = rig.calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1].events, bytes(&["a", "b"]));
        assert!(calls[1].at - calls[0].at >= Duration::from_secs(3));
        assert_eq!(rig.counts(), [2.0, 0.0, 1.0, 0.0]);
        assert!(
            rig.handle.is_healthy(),
            "ready again after the retry went through"
        );
    }

    /// Events handed off stay queued (and are not handed out again) until the transport
    /// reports them settled; a closed queue's worker waits for that before it stops; what
    /// settled refused goes to the dead letters once.
    #[tokio::test(start_paused = true)]
    async fn handed_off_events_leave_the_queue_only_once_settled() {
        let rig = Rig::new(&["h0", "h1", "h2"]);
        let (tx, rx) = mpsc::channel(4);
        let worker = rig.worker(
            vec![Ok(Sent::HandedOff(2))],
            Sent::HandedOff,
            Some(rx),
            None,
        );
        rig.handle.queue.close();
        let run = tokio::spawn(worker.run(CancellationToken::new()));
        until("both sends", || rig.calls().len() == 2).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        let calls = rig.calls();
        assert_eq!(calls.len(), 2, "nothing handed out twice: {calls:?}");
        assert_eq!(calls[1].events, bytes(&["h2"]), "the rest of the batch");
        assert_eq!(
            rig.handle.queue.depth().events,
            3,
            "handed off is still queued"
        );
        assert!(!run.is_finished(), "the worker waits for the settlement");
        assert_eq!(rig.counts(), [0.0, 0.0, 0.0, 0.0]);

        tx.send(Settled {
            released: 1,
            delivered: 2,
            ..Settled::default()
        })
        .await
        .unwrap();
        until("h0 released", || rig.handle.queue.depth().events == 2).await;
        assert_eq!(
            rig.counts(),
            [2.0, 0.0, 0.0, 0.0],
            "counted when settled, released in order"
        );
        assert!(!run.is_finished());

        tx.send(Settled {
            released: 2,
            delivered: 0,
            refused: vec![(Bytes::from_static(b"h2"), "invalid data format".to_owned())],
            resent: false,
        })
        .await
        .unwrap();
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the worker stops once everything settled")
            .unwrap();
        assert_eq!(rig.handle.queue.depth().events, 0);
        assert_eq!(rig.counts(), [2.0, 1.0, 0.0, 1.0]);
        assert_eq!(
            rig.dead_letters(),
            [("h2".to_owned(), "invalid data format".to_owned())]
        );
    }

    /// `max_retry_duration` also gives up on events a per-event answer keeps asking to retry:
    /// they go to the dead letters (the refused one with its own reason), each counted failed
    /// once, and the queue empties.
    #[tokio::test(start_paused = true)]
    async fn max_retry_duration_applies_to_events_retried_alone() {
        let rig = Rig::new(&["m0", "m1", "m2"]);
        let retry_m1 = || {
            Ok(Sent::Partial(Partial {
                retry: vec![0],
                retry_reason: Some("busy".to_owned()),
                ..Partial::default()
            }))
        };
        let first = Ok(Sent::Partial(Partial {
            refused: vec![(2, "bad".to_owned())],
            retry: vec![1],
            retry_reason: Some("busy".to_owned()),
            ..Partial::default()
        }));
        let answers = std::iter::once(first)
            .chain(std::iter::repeat_with(retry_m1).take(500))
            .collect();
        let worker = rig.worker(answers, Sent::Delivered, None, Some(Duration::from_secs(5)));
        drain(&rig, worker).await;

        let calls = rig.calls();
        assert!(
            calls[1..].iter().all(|c| c.events == bytes(&["m1"])),
            "{calls:?}"
        );
        let last = calls.last().unwrap();
        assert!(last.at - calls[0].at >= Duration::from_secs(5));
        assert_eq!(rig.handle.queue.depth().events, 0);
        assert_eq!(
            rig.dead_letters(),
            [
                ("m2".to_owned(), "bad".to_owned()),
                ("m1".to_owned(), GAVE_UP.to_owned())
            ]
        );
        let [delivered, failed, retries, dead] = rig.counts();
        assert_eq!((delivered, failed, dead), (1.0, 2.0, 2.0));
        assert_eq!(
            retries,
            calls.len() as f64,
            "one retry per answer that asked for one"
        );
    }
}
