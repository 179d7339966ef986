//! Sinks: the runtime handle each sink is reached by (queue, encoder, metrics, health), the
//! `Encoder` shape every wire format shares, and the one worker loop all sinks run:
//! dequeue -> send -> ack | retry with backoff | give up (counted and logged).
//!
//! Encoding happens at the edge, inside the request (DESIGN §2): the queue holds each event's
//! final wire bytes, so retries and batching never re-encode.

pub mod file;
pub mod retry;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::sync::CancellationToken;

use crate::config::{BatchLimits, SinkKind, SinkSettings};
use crate::metrics::{Registry, SinkMetrics};
use crate::normalize::Event;
use crate::queue::MemoryQueue;
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

/// The wire format of a sink (closed set, static dispatch).
#[derive(Debug, Clone, Copy)]
pub enum Encoding {
    Ndjson(Ndjson),
}

impl Encoder for Encoding {
    fn encode(&self, event: &Event<'_>, out: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            Encoding::Ndjson(e) => e.encode(event, out),
        }
    }
}

/// What the rest of the gateway knows of a sink; the worker owns the transport.
pub struct SinkHandle {
    pub id: String,
    pub queue: MemoryQueue,
    pub encoding: Encoding,
    pub metrics: SinkMetrics,
    /// False while the destination is failing; `/readyz` reports it.
    healthy: AtomicBool,
}

impl SinkHandle {
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Publishes the queue depth to the gauges.
    pub fn update_depth_gauges(&self) {
        let d = self.queue.depth();
        self.metrics.queue_events.set(d.events as f64);
        self.metrics.queue_bytes.set(d.bytes as f64);
    }
}

/// A sink's connection to its destination (closed set).
pub enum Transport {
    File(file::FileSink),
}

impl Transport {
    async fn send(&mut self, batch: &[Bytes]) -> Result<(), SendError> {
        match self {
            Transport::File(f) => f.send(batch).await,
        }
    }

    async fn close(&mut self) {
        match self {
            Transport::File(f) => f.close().await,
        }
    }
}

/// A sink ready to run: its shared handle and the worker state.
pub struct Sink {
    pub handle: Arc<SinkHandle>,
    transport: Transport,
    batch: BatchLimits,
}

impl Sink {
    pub fn build(settings: &SinkSettings, registry: &Registry) -> Sink {
        let metrics = registry.sink(&settings.id);
        let (transport, encoding) = match &settings.kind {
            SinkKind::File(f) => (
                Transport::File(file::FileSink::new(
                    settings.id.clone(),
                    f.clone(),
                    metrics.torn_tail_bytes.clone(),
                )),
                Encoding::Ndjson(Ndjson),
            ),
        };
        Sink {
            handle: Arc::new(SinkHandle {
                id: settings.id.clone(),
                queue: MemoryQueue::new(settings.queue),
                encoding,
                metrics,
                healthy: AtomicBool::new(true),
            }),
            transport,
            batch: settings.batch,
        }
    }

    /// Delivers batches until the queue is closed and empty, or `abort` fires (shutdown grace
    /// over). Retryable failures are retried with backoff, the batch kept at the head of the
    /// queue so nothing overtakes it; permanent failures are counted and logged.
    pub async fn run(mut self, abort: CancellationToken) {
        let handle = self.handle;
        let mut batch = Vec::with_capacity(self.batch.max_events);
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        loop {
            let next = tokio::select! {
                n = handle.queue.next_batch(self.batch.max_events, self.batch.max_bytes, self.batch.linger, &mut batch) => n,
                () = abort.cancelled() => None,
            };
            if next.is_none() {
                break;
            }
            loop {
                let sent = tokio::select! {
                    r = self.transport.send(&batch) => r,
                    () = abort.cancelled() => {
                        tracing::error!(sink = %handle.id, events = handle.queue.depth().events, "shutdown deadline reached during a send; events left undelivered");
                        self.transport.close().await;
                        return;
                    }
                };
                match sent {
                    Ok(()) => {
                        handle.queue.ack(batch.len());
                        handle.metrics.delivered.increment(batch.len() as u64);
                        handle.healthy.store(true, Ordering::Relaxed);
                        backoff.reset();
                        break;
                    }
                    Err(SendError::Retryable(reason)) => {
                        handle.healthy.store(false, Ordering::Relaxed);
                        handle.metrics.retries.increment(1);
                        let delay = backoff.next_delay();
                        tracing::warn!(sink = %handle.id, %reason, events = batch.len(), ?delay, "send failed, will retry");
                        tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            () = abort.cancelled() => {
                                tracing::error!(sink = %handle.id, events = handle.queue.depth().events, "shutdown deadline reached with events undelivered");
                                self.transport.close().await;
                                return;
                            }
                        }
                    }
                    Err(SendError::Permanent(reason)) => {
                        tracing::error!(sink = %handle.id, %reason, events = batch.len(), "destination refused events permanently; dropping them");
                        handle.queue.ack(batch.len());
                        handle.metrics.failed.increment(batch.len() as u64);
                        break;
                    }
                }
            }
            handle.update_depth_gauges();
        }
        self.transport.close().await;
    }
}
