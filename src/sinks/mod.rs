//! Sinks: the runtime handle each sink is reached by (queue, encoder, metrics, health), the
//! `Encoder` shape every wire format shares, and the one worker loop all sinks run:
//! dequeue -> send -> ack | retry with backoff | hold on a configuration error | count and log
//! the events a destination refuses for good.
//!
//! Encoding happens at the edge, inside the request (DESIGN §2): the queue holds each event's
//! final wire bytes, so retries and batching never re-encode.

pub mod dead_letter;
pub mod file;
pub mod hec;
pub mod http;
pub mod http_client;
pub mod retry;
pub mod sent;
pub mod syslog;
pub mod tls;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::sync::CancellationToken;

use crate::config::{BatchLimits, SinkKind, SinkSettings, SourceSettings};
use crate::metrics::{Registry, SinkMetrics};
use crate::normalize::ocsf::{OcsfEvent, OcsfVersion};
use crate::normalize::Event;
use crate::queue::disk::DiskMetrics;
use crate::queue::{OpenError, Queue};
use retry::{Backoff, SendError};

/// Turns an event into one record of a sink's wire format, appended to `out`.
pub trait Encoder {
    fn encode(&self, event: &Event<'_>, out: &mut BytesMut) -> Result<(), EncodeError>;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::normalize::Timestamp;
    use crate::vendors::Vendor;

    #[test]
    fn ndjson_keeps_a_pretty_printed_raw_on_one_line() {
        let raw: &serde_json::value::RawValue =
            serde_json::from_str("{\n  \"a\": \"x\\ny\",\r\n  \"b\": [1,\n 2]\n}").unwrap();
        let e = Event::new(Vendor::Generic, "s", raw, Timestamp(0));
        let mut out = BytesMut::new();
        Ndjson.encode(&e, &mut out).unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(text.ends_with('\n'));
        let back: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(back["raw"], serde_json::json!({"a": "x\ny", "b": [1, 2]}));
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot encode event: {0}")]
pub struct EncodeError(#[from] serde_json::Error);

/// One normalized event as one JSON line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ndjson;

impl Encoder for Ndjson {
    fn encode(&self, event: &Event<'_>, out: &mut BytesMut) -> Result<(), EncodeError> {
        let start = out.len();
        serde_json::to_writer(out.writer(), event)?;
        one_line(&mut out[start..]);
        out.put_u8(b'\n');
        Ok(())
    }
}

/// One event as one OCSF class object on one JSON line (`encoding = "ocsf"` of the file sink;
/// see `normalize::ocsf`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OcsfNdjson(pub OcsfVersion);

impl Encoder for OcsfNdjson {
    fn encode(&self, event: &Event<'_>, out: &mut BytesMut) -> Result<(), EncodeError> {
        serde_json::to_writer(out.writer(), &OcsfEvent::new(event, self.0))?;
        out.put_u8(b'\n');
        Ok(())
    }
}

/// Turns the line breaks of a pretty-printed `raw` into spaces so the event stays on one line.
/// JSON strings cannot hold a raw CR or LF (they are escaped as `\n`/`\r`), so every CR or LF
/// in encoded JSON is whitespace between tokens, and a space means the same.
pub fn one_line(json: &mut [u8]) {
    for b in json.iter_mut() {
        if *b == b'\n' || *b == b'\r' {
            *b = b' ';
        }
    }
}

/// The wire format of one source's events for one sink (closed set, static dispatch). Built
/// per (source, sink) pair, so per-source settings such as HEC's index are baked in once.
pub enum Encoding {
    Ndjson(Ndjson),
    OcsfNdjson(OcsfNdjson),
    Hec(hec::HecEncoder),
    Syslog(syslog::SyslogEncoder),
    Http(http::HttpEncoder),
}

impl Encoding {
    pub fn for_target(
        sink: &SinkSettings,
        source: &SourceSettings,
        metrics: &SinkMetrics,
    ) -> Encoding {
        match (&sink.kind, sink.ocsf) {
            (SinkKind::File(_), None) => Encoding::Ndjson(Ndjson),
            (SinkKind::File(_), Some(v)) => Encoding::OcsfNdjson(OcsfNdjson(v)),
            (SinkKind::SplunkHec(h), ocsf) => {
                Encoding::Hec(hec::HecEncoder::new(h, source).with_ocsf(ocsf))
            }
            (SinkKind::Syslog(s), ocsf) => Encoding::Syslog(
                syslog::SyslogEncoder::new(s, metrics.truncations.clone()).with_ocsf(ocsf),
            ),
            (SinkKind::Http(h), ocsf) => Encoding::Http(http::HttpEncoder::new(h).with_ocsf(ocsf)),
        }
    }
}

impl Encoder for Encoding {
    fn encode(&self, event: &Event<'_>, out: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            Encoding::Ndjson(e) => e.encode(event, out),
            Encoding::OcsfNdjson(e) => e.encode(event, out),
            Encoding::Hec(e) => e.encode(event, out),
            Encoding::Syslog(e) => e.encode(event, out),
            Encoding::Http(e) => e.encode(event, out),
        }
    }
}

/// What the rest of the gateway knows of a sink; the worker owns the transport.
pub struct SinkHandle {
    pub id: String,
    pub queue: Queue,
    pub metrics: SinkMetrics,
    /// False while the destination is failing; `/readyz` reports it.
    healthy: AtomicBool,
}

impl SinkHandle {
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
        self.metrics.up.set(if healthy { 1.0 } else { 0.0 });
    }

    /// Publishes the queue's bounds to their gauges: once, when the queue is built.
    fn publish_bounds(&self) {
        let limits = self.queue.limits();
        self.metrics.queue_max_events.set(limits.max_events as f64);
        self.metrics.queue_max_bytes.set(limits.max_bytes as f64);
    }

    /// Publishes the queue depth to the gauges.
    pub fn update_depth_gauges(&self) {
        let d = self.queue.depth();
        self.metrics.queue_events.set(d.events as f64);
        self.metrics.queue_bytes.set(d.bytes as f64);
        self.metrics
            .queue_oldest_age
            .set(self.queue.oldest_age().as_secs_f64());
    }
}

/// A sink's connection to its destination (closed set).
pub enum Transport {
    File(file::FileSink),
    Hec(Box<hec::HecSink>),
    Syslog(Box<syslog::SyslogSink>),
    Http(Box<http::HttpSink>),
}

impl Transport {
    fn build(settings: &SinkSettings, metrics: &SinkMetrics, registry: &Registry) -> Transport {
        match &settings.kind {
            SinkKind::File(f) => Transport::File(file::FileSink::new(
                settings.id.clone(),
                f.clone(),
                metrics.torn_tail_bytes.clone(),
            )),
            SinkKind::SplunkHec(h) => Transport::Hec(Box::new(hec::HecSink::new(
                &settings.id,
                h,
                h.acks.map(|_| registry.hec_acks(&settings.id)),
            ))),
            SinkKind::Syslog(s) => Transport::Syslog(Box::new(syslog::SyslogSink::new(
                &settings.id,
                s,
                metrics.reconnects.clone(),
            ))),
            SinkKind::Http(h) => Transport::Http(Box::new(http::HttpSink::new(h))),
        }
    }

    /// Sends the batch, or its first events. `Ok(n)`: the first `n` (at least one) are
    /// delivered and the rest, if any, is sent by the next call.
    async fn send(&mut self, batch: &[Bytes]) -> Result<usize, SendError> {
        match self {
            Transport::File(f) => f.send(batch).await,
            Transport::Hec(h) => h.send(batch).await,
            Transport::Syslog(s) => s.send(batch).await,
            Transport::Http(h) => h.send(batch).await,
        }
    }

    /// Checks the destination before the first batch, so a wrong token or URL shows on
    /// `/readyz` at start rather than with the first alert.
    async fn probe(&mut self) -> Result<(), SendError> {
        match self {
            Transport::Hec(h) => h.probe().await,
            Transport::File(_) | Transport::Syslog(_) | Transport::Http(_) => Ok(()),
        }
    }

    /// Whether the destination confirms deliveries after accepting them (HEC indexer
    /// acknowledgement): then events leave the queue only once settled, in order.
    fn acknowledges(&self) -> bool {
        matches!(self, Transport::Hec(h) if h.acknowledges())
    }

    /// Events handed over and not yet released from the queue.
    fn unconfirmed(&self) -> usize {
        match self {
            Transport::Hec(h) => h.unconfirmed(),
            _ => 0,
        }
    }

    /// Events that may be handed over before the destination confirms earlier ones.
    fn room(&self) -> usize {
        match self {
            Transport::Hec(h) => h.room(),
            _ => usize::MAX,
        }
    }

    fn next_poll(&self) -> tokio::time::Instant {
        match self {
            Transport::Hec(h) => h.next_poll(),
            _ => tokio::time::Instant::now(),
        }
    }

    fn has_resend(&self) -> bool {
        matches!(self, Transport::Hec(h) if h.has_resend())
    }

    async fn resend(&mut self) -> Result<(), SendError> {
        match self {
            Transport::Hec(h) => h.resend().await,
            _ => Ok(()),
        }
    }

    /// The events a resend had refused, for the dead letters.
    fn take_refused(&mut self) -> Vec<Bytes> {
        match self {
            Transport::Hec(h) => h.take_refused(),
            _ => Vec::new(),
        }
    }

    fn take_settled(&mut self) -> hec::Confirmed {
        match self {
            Transport::Hec(h) => h.take_settled(),
            _ => hec::Confirmed::default(),
        }
    }

    async fn confirm(&mut self) -> Result<(), SendError> {
        match self {
            Transport::Hec(h) => h.confirm().await,
            _ => Ok(()),
        }
    }

    /// Whether `probe` really asks the destination (only then can it turn a sink ready).
    fn probes(&self) -> bool {
        matches!(self, Transport::Hec(_))
    }

    /// The destination's HTTP status on the last answer (HTTP destinations only).
    fn last_status(&self) -> Option<u16> {
        match self {
            Transport::Hec(h) => h.last_status(),
            Transport::Http(h) => h.last_status(),
            Transport::File(_) | Transport::Syslog(_) => None,
        }
    }

    async fn close(&mut self) {
        match self {
            Transport::File(f) => f.close().await,
            Transport::Syslog(s) => s.close().await,
            Transport::Hec(_) | Transport::Http(_) => {}
        }
    }
}

/// How often an idle sink that is not ready checks its destination again.
const IDLE_PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// A sink ready to run: its shared handle and the worker state.
pub struct Sink {
    pub handle: Arc<SinkHandle>,
    transport: Transport,
    batch: BatchLimits,
    dead_letters: dead_letter::DeadLetters,
    /// Retryable failures of one batch for longer than this dead-letter it.
    max_retry: Option<Duration>,
}

impl Sink {
    /// Builds the sink; a disk queue is opened and recovered here, so a bad directory stops
    /// the start.
    pub fn build(settings: &SinkSettings, registry: &Registry) -> Result<Sink, OpenError> {
        let metrics = registry.sink(&settings.id);
        metrics.up.set(1.0);
        let queue = match (&settings.disk, &settings.kafka) {
            #[cfg(feature = "kafka")]
            (_, Some(kafka)) => Queue::kafka(
                settings.queue,
                kafka,
                crate::queue::kafka::Sides {
                    produce: true,
                    consume: true,
                },
            )?,
            (None, _) => Queue::memory(settings.queue),
            (Some(disk), _) => Queue::disk(
                &settings.id,
                settings.queue,
                disk,
                DiskMetrics {
                    torn_bytes: metrics.queue_torn_bytes.clone(),
                    recovered: metrics.queue_recovered.clone(),
                    fsync_seconds: metrics.queue_fsync_seconds.clone(),
                    read_errors: metrics.queue_read_errors.clone(),
                },
            )?,
        };
        let handle = Arc::new(SinkHandle {
            id: settings.id.clone(),
            queue,
            metrics,
            healthy: AtomicBool::new(true),
        });
        handle.publish_bounds();
        Ok(Sink::with_handle(settings, registry, handle))
    }

    /// A sink with new settings on the queue of an existing one (a reload that changed the
    /// destination): what is queued stays, in order, and goes to the new destination. The old
    /// sink's worker must have stopped.
    pub fn with_handle(
        settings: &SinkSettings,
        registry: &Registry,
        handle: Arc<SinkHandle>,
    ) -> Sink {
        let transport = Transport::build(settings, &handle.metrics, registry);
        // A changed destination starts from a clean slate, as at start; its first send or
        // probe tells.
        handle.set_healthy(true);
        let dead_letters = dead_letter::DeadLetters::new(
            &settings.id,
            settings.dead_letter_path.clone(),
            handle.metrics.dead_letters.clone(),
        );
        Sink {
            dead_letters,
            handle,
            transport,
            batch: settings.batch,
            max_retry: settings.max_retry_duration,
        }
    }

    /// Delivers batches until the queue is closed and empty, or `abort` fires (shutdown grace
    /// over). Each batch stays at the head of the queue until every event in it is delivered or
    /// refused for good, so nothing overtakes it; retryable failures back off with jitter,
    /// configuration errors hold the queue and mark the sink not ready.
    ///
    /// A destination that confirms later (HEC indexer acknowledgement) gets new batches while
    /// earlier ones wait, up to its cap; its events leave the queue, in order, only once
    /// confirmed.
    pub async fn run(mut self, abort: CancellationToken) {
        let handle = self.handle.clone();
        let mut batch = Vec::with_capacity(self.batch.max_events);
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        let acking = self.transport.acknowledges();
        let probed = tokio::select! {
            r = self.transport.probe() => r,
            () = abort.cancelled() => Ok(()),
        };
        if let Err(e) = probed {
            handle.set_healthy(false);
            tracing::error!(sink = %handle.id, reason = %e, "destination check failed; events will be held until it works");
        }
        loop {
            // Requests whose acknowledgement timed out go again before anything new.
            if self.transport.has_resend() {
                if !self.resend(&mut backoff, &abort).await {
                    tracing::error!(sink = %handle.id, events = handle.queue.depth().events, "shutdown deadline reached with events undelivered");
                    self.transport.close().await;
                    return;
                }
                self.release();
                handle.update_depth_gauges();
                continue;
            }
            let in_flight = self.transport.unconfirmed();
            let poll_at = (in_flight > 0).then(|| self.transport.next_poll());
            let room = self.transport.room();
            let max_events = self.batch.max_events.min(room);
            let wake = loop {
                tokio::select! {
                    n = handle.queue.next_batch(in_flight, max_events, self.batch.max_bytes, self.batch.linger, &mut batch), if room > 0 => {
                        break if n.is_some() { Wake::Batch } else { Wake::Drained };
                    }
                    () = abort.cancelled() => break Wake::Abort,
                    () = sleep_until_or_never(poll_at) => break Wake::Confirm,
                    // While idle and not ready, check again now and then, so the sink turns
                    // ready when its destination is fixed even if no event comes to prove it.
                    () = tokio::time::sleep(IDLE_PROBE_INTERVAL), if !handle.is_healthy() => {
                        if self.transport.probe().await.is_ok() && self.transport.probes() {
                            handle.set_healthy(true);
                            tracing::info!(sink = %handle.id, "destination check passed");
                        }
                    }
                }
            };
            match wake {
                Wake::Abort => {
                    tracing::error!(sink = %handle.id, events = handle.queue.depth().events, "shutdown deadline reached with events undelivered");
                    self.transport.close().await;
                    return;
                }
                Wake::Drained if in_flight == 0 => break,
                // Closed and everything sent: wait for the confirmations still due.
                Wake::Drained => {
                    tokio::select! {
                        () = sleep_until_or_never(poll_at) => {}
                        () = abort.cancelled() => continue,
                    }
                    self.confirm(&abort).await;
                }
                Wake::Confirm => self.confirm(&abort).await,
                Wake::Batch => {
                    if !self.deliver(&batch, acking, &mut backoff, &abort).await {
                        tracing::error!(sink = %handle.id, events = handle.queue.depth().events, "shutdown deadline reached with events undelivered");
                        self.transport.close().await;
                        return;
                    }
                    self.release();
                }
            }
            handle.update_depth_gauges();
        }
        self.transport.close().await;
    }

    /// Polls the destination's confirmations and releases what settled.
    async fn confirm(&mut self, abort: &CancellationToken) {
        let polled = tokio::select! {
            r = self.transport.confirm() => r,
            () = abort.cancelled() => return,
        };
        match polled {
            Ok(()) => {}
            Err(SendError::Config(reason)) => {
                self.handle.set_healthy(false);
                tracing::error!(sink = %self.handle.id, %reason, "acknowledgement poll refused; the events stay pending");
            }
            Err(e) => {
                tracing::warn!(sink = %self.handle.id, reason = %e, "acknowledgement poll failed; the events stay pending");
            }
        }
        self.release();
    }

    /// Takes the settled events off the head of the queue and counts what settled.
    fn release(&mut self) {
        let c = self.transport.take_settled();
        if c.released > 0 {
            self.handle.queue.ack(c.released);
        }
        self.handle.metrics.delivered.increment(c.delivered as u64);
        self.handle.metrics.failed.increment(c.failed as u64);
    }

    /// Sends the requests whose acknowledgement timed out again, backing off on failures as
    /// a first send does. False when `abort` fired first.
    async fn resend(&mut self, backoff: &mut Backoff, abort: &CancellationToken) -> bool {
        while self.transport.has_resend() {
            let sent = tokio::select! {
                r = self.transport.resend() => r,
                () = abort.cancelled() => return false,
            };
            match sent {
                Ok(()) => {
                    self.handle.set_healthy(true);
                    backoff.reset();
                }
                Err(SendError::Rejected { reason, .. }) => {
                    tracing::error!(sink = %self.handle.id, %reason, "destination refused a resent event for good; it goes to the dead letters");
                    let refused = self.transport.take_refused();
                    self.dead_letters.record(&reason, refused).await;
                }
                Err(e) => {
                    let delay = self.failure_delay(e, backoff);
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = abort.cancelled() => return false,
                    }
                }
            }
        }
        true
    }

    /// Marks the sink failing, counts the retry, logs, and says how long to back off.
    fn failure_delay(&self, e: SendError, backoff: &mut Backoff) -> Duration {
        let handle = &self.handle;
        handle.set_healthy(false);
        handle.metrics.retries.increment(1);
        let events = handle.queue.depth().events;
        match e {
            SendError::Config(reason) => {
                let delay = backoff.next_delay();
                tracing::error!(sink = %handle.id, %reason, events, ?delay, "destination refuses this sink's configuration; holding the queue");
                delay
            }
            SendError::Retryable {
                reason,
                retry_after,
            } => {
                let delay = backoff
                    .next_delay()
                    .max(retry_after.unwrap_or(Duration::ZERO));
                tracing::warn!(sink = %handle.id, %reason, events, ?delay, "send failed, will retry");
                delay
            }
            SendError::Rejected { reason, .. } => {
                let delay = backoff.next_delay();
                tracing::warn!(sink = %handle.id, %reason, events, ?delay, "send failed, will retry");
                delay
            }
        }
    }

    /// Sends one batch until every event in it is delivered, refused for good, or (with
    /// confirmations) handed over. False when `abort` fired first.
    async fn deliver(
        &mut self,
        batch: &[Bytes],
        acking: bool,
        backoff: &mut Backoff,
        abort: &CancellationToken,
    ) -> bool {
        let handle = &self.handle;
        let mut done = 0;
        let mut failing_since: Option<std::time::Instant> = None;
        while done < batch.len() {
            let rest = batch.len() - done;
            let sent = tokio::select! {
                r = self.transport.send(&batch[done..]) => r,
                () = abort.cancelled() => return false,
            };
            let delay = match sent {
                Ok(n) if n > 0 => {
                    let n = n.min(rest);
                    if !acking {
                        handle.queue.ack(n);
                        handle.metrics.delivered.increment(n as u64);
                    }
                    handle.set_healthy(true);
                    backoff.reset();
                    failing_since = None;
                    done += n;
                    continue;
                }
                Ok(_) => self.failure_delay(
                    SendError::retryable("destination accepted none of the batch"),
                    backoff,
                ),
                Err(SendError::Rejected {
                    delivered,
                    rejected,
                    reason,
                }) => {
                    let delivered = delivered.min(rest);
                    let rejected = rejected.clamp(1, rest - delivered);
                    if !acking {
                        handle.queue.ack(delivered + rejected);
                        handle.metrics.delivered.increment(delivered as u64);
                        handle.metrics.failed.increment(rejected as u64);
                    }
                    handle.set_healthy(true);
                    tracing::error!(sink = %handle.id, %reason, delivered, rejected, "destination refused events for good; they go to the dead letters");
                    let first = done + delivered;
                    self.dead_letters
                        .record(&reason, batch[first..first + rejected].to_vec())
                        .await;
                    done += delivered + rejected;
                    continue;
                }
                Err(e) => {
                    let retryable = matches!(e, SendError::Retryable { .. });
                    let delay = self.failure_delay(e, backoff);
                    // Only retryable failures time out: a configuration error holds the queue
                    // until someone fixes it, however long that takes.
                    let since = *failing_since.get_or_insert_with(std::time::Instant::now);
                    if retryable
                        && !acking
                        && self.max_retry.is_some_and(|max| since.elapsed() >= max)
                    {
                        let rest = batch.len() - done;
                        tracing::error!(sink = %handle.id, events = rest, "retried for longer than max_retry_duration; the batch goes to the dead letters");
                        handle.queue.ack(rest);
                        handle.metrics.failed.increment(rest as u64);
                        self.dead_letters
                            .record(
                                "retried for longer than max_retry_duration",
                                batch[done..].to_vec(),
                            )
                            .await;
                        backoff.reset();
                        return true;
                    }
                    delay
                }
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = abort.cancelled() => return false,
            }
        }
        true
    }
}

/// How long a test send may take, connection included.
const TEST_SEND_TIMEOUT: Duration = Duration::from_secs(20);

/// What a test send to a destination found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestOutcome {
    pub ok: bool,
    /// The destination's HTTP status, when it is an HTTP destination and it answered.
    pub http_status: Option<u16>,
    pub error: Option<String>,
}

/// Sends `events` (already in this sink's wire format) straight to the sink's destination,
/// on a connection of its own, outside the queue: the admin API's test buttons. Nothing is
/// retried; the first answer is the result.
pub async fn test_send(settings: &SinkSettings, events: &[Bytes]) -> TestOutcome {
    let registry = Registry::new();
    let metrics = registry.sink(&settings.id);
    let mut transport = Transport::build(settings, &metrics, &registry);
    let mut sent = 0;
    let mut error = None;
    let run = async {
        while sent < events.len() {
            match transport.send(&events[sent..]).await {
                Ok(0) => return Err("the destination accepted none of the events".to_owned()),
                Ok(n) => sent += n,
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    };
    match tokio::time::timeout(TEST_SEND_TIMEOUT, run).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => error = Some(e),
        Err(_) => error = Some(format!("no answer within {}s", TEST_SEND_TIMEOUT.as_secs())),
    }
    let http_status = transport.last_status();
    transport.close().await;
    TestOutcome {
        ok: error.is_none(),
        http_status,
        error,
    }
}

/// What woke the worker.
enum Wake {
    Batch,
    /// The queue is closed and holds nothing beyond what awaits confirmation.
    Drained,
    Confirm,
    Abort,
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until_or_never(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
