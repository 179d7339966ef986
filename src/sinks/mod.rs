//! Sinks: the runtime handle each sink is reached by (queue, metrics, health), the `Encoder`
//! shape every wire format shares, and the wiring of each sink's transport to the one worker
//! loop all sinks run (`worker`): dequeue -> send -> ack | retry with backoff | hold on a
//! configuration error | dead-letter what a destination refuses for good.
//!
//! A sink is a config type, an encoder (`Encoding`) and a transport (`transport::Transport`,
//! one `SinkTransport` variant): the transport says what became of each send (`sent`), and
//! nothing of its protocol reaches the worker. Splunk HEC's indexer acknowledgements (polls,
//! timeouts, resends, the cap on pending events) live in `hec`, behind `Transport::settled`;
//! the Kafka sink's delivery reports in `kafka`.
//!
//! Encoding happens at the edge, inside the request (DESIGN §2): the queue holds each event's
//! final wire bytes, so retries and batching never re-encode.

pub mod dead_letter;
pub mod elasticsearch;
pub mod file;
pub mod hec;
pub mod http;
pub mod http_client;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod retry;
pub mod sent;
pub mod sentinel;
pub mod syslog;
pub mod transport;
pub mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::sync::CancellationToken;

use crate::config::{SinkKind, SinkSettings, SourceSettings};
use crate::metrics::{Registry, SinkMetrics};
use crate::normalize::ocsf::{OcsfEvent, OcsfVersion};
pub use crate::normalize::write::one_line;
use crate::normalize::Event;
use crate::queue::disk::DiskMetrics;
use crate::queue::{OpenError, Queue};
use sent::Sent;
use transport::{SinkTransport, Transport};

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

    #[test]
    fn ndjson_keeps_pretty_printed_tags_on_one_line() {
        let body = "[\n {\n  \"alertId\": \"P-1\",\n  \"resource\": {\n   \"resourceTags\": {\n    \"env\": \"prod\",\r\n    \"team\": \"a\"\n   }\n  }\n }\n]";
        let ctx = crate::vendors::Context {
            source: "s",
            received_at: Timestamp(0),
        };
        let mut events = Vec::new();
        Vendor::PrismaCloud
            .decode(body, &ctx, |e| events.push(e))
            .unwrap();
        let e = &events[0];
        assert!(e.resource.tags.is_some_and(|t| t.get().contains('\n')));
        let mut out = BytesMut::new();
        Ndjson.encode(e, &mut out).unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(text.matches(['\n', '\r']).count(), 1, "{text}");
        let back: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            back["resource"]["tags"],
            serde_json::json!({"env": "prod", "team": "a"})
        );
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
        crate::normalize::write::event(event, out);
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

/// The wire format of one source's events for one sink (closed set, static dispatch). Built
/// per (source, sink) pair, so per-source settings such as HEC's index are baked in once.
pub enum Encoding {
    Ndjson(Ndjson),
    OcsfNdjson(OcsfNdjson),
    Hec(hec::HecEncoder),
    Syslog(syslog::SyslogEncoder),
    Http(http::HttpEncoder),
    Elasticsearch(elasticsearch::EsEncoder),
    Sentinel(sentinel::SentinelEncoder),
    #[cfg(feature = "kafka")]
    Kafka(kafka::KafkaEncoder),
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
            (SinkKind::Elasticsearch(e), ocsf) => {
                Encoding::Elasticsearch(elasticsearch::EsEncoder::new(e, ocsf))
            }
            (SinkKind::Sentinel(_), ocsf) => {
                Encoding::Sentinel(sentinel::SentinelEncoder::new(ocsf))
            }
            #[cfg(feature = "kafka")]
            (SinkKind::Kafka(_), ocsf) => Encoding::Kafka(kafka::KafkaEncoder::new(ocsf)),
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
            Encoding::Elasticsearch(e) => e.encode(event, out),
            Encoding::Sentinel(e) => e.encode(event, out),
            #[cfg(feature = "kafka")]
            Encoding::Kafka(e) => e.encode(event, out),
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
    /// The last send failure (when, why), for the admin API and console.
    pub last_error: std::sync::Mutex<Option<(crate::normalize::Timestamp, String)>>,
    /// Why the destination last failed, for `/readyz` (a missing role, a refused token).
    failure: std::sync::Mutex<Option<String>>,
}

impl SinkHandle {
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Why the destination is failing, while it is.
    pub fn failure(&self) -> Option<String> {
        if self.is_healthy() {
            return None;
        }
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    /// Marks the sink failing, for `reason`.
    fn set_failure(&self, reason: &str) {
        if let Ok(mut f) = self.failure.lock() {
            *f = Some(reason.to_owned());
        }
        self.set_healthy(false);
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

/// A sink ready to run: its shared handle and its worker.
pub struct Sink {
    pub handle: Arc<SinkHandle>,
    /// Shared with the admin API (list, replay, purge).
    pub dead_letters: Arc<dead_letter::DeadLetters>,
    worker: worker::Worker<SinkTransport>,
}

impl Sink {
    /// Builds the sink; a disk queue is opened and recovered here, so a bad directory stops
    /// the start. `role` says which sides of a Kafka queue run here (other queues run whole:
    /// `config::role::check` keeps them out of split roles).
    pub fn build(
        settings: &SinkSettings,
        registry: &Arc<Registry>,
        role: crate::config::role::Role,
    ) -> Result<Sink, OpenError> {
        #[cfg(not(feature = "kafka"))]
        let _ = role;
        let metrics = registry.sink(&settings.id);
        metrics.up.set(1.0);
        let queue = match (&settings.disk, &settings.kafka) {
            #[cfg(feature = "kafka")]
            (_, Some(kafka)) => Queue::kafka(
                settings.queue,
                kafka,
                crate::queue::kafka::Sides {
                    // A delivery worker produces too, though webhooks never reach it: its
                    // dead letters (in its data_dir) are replayed through the topic.
                    produce: true,
                    consume: role.delivers(),
                },
                registry.kafka(&settings.id),
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
            last_error: std::sync::Mutex::new(None),
            failure: std::sync::Mutex::new(None),
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
        let transport = SinkTransport::build(settings, &handle.metrics, registry);
        // A changed destination starts from a clean slate, as at start; its first send or
        // probe tells.
        handle.set_healthy(true);
        let dead_letters = Arc::new(dead_letter::DeadLetters::new(
            &settings.id,
            settings.dead_letter_path.clone(),
            &handle.metrics,
        ));
        Sink {
            handle: handle.clone(),
            dead_letters: dead_letters.clone(),
            worker: worker::Worker::new(
                handle,
                transport,
                settings.batch,
                dead_letters,
                settings.max_retry_duration,
            ),
        }
    }

    /// Delivers batches until the queue is closed and drained, or `abort` fires (shutdown
    /// grace over); see [`worker`]. Returns at once on a node that does not deliver this
    /// queue (`--role intake`): nothing there probes or sends to the destination.
    pub async fn run(self, abort: CancellationToken) {
        if !self.handle.queue.delivers() {
            return;
        }
        self.worker.run(abort).await;
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
    let mut transport = SinkTransport::build(settings, &metrics, &registry);
    let mut sent = 0;
    let mut error = None;
    let run = async {
        while sent < events.len() {
            match transport.send(&events[sent..]).await {
                Ok(Sent::Delivered(0) | Sent::HandedOff(0)) => {
                    return Err("the destination accepted none of the events".to_owned())
                }
                Ok(Sent::Delivered(n) | Sent::HandedOff(n)) => sent += n,
                Ok(Sent::Partial(p)) => {
                    if let Some((_, reason)) = p.refused.into_iter().next() {
                        return Err(reason);
                    }
                    if !p.retry.is_empty() {
                        return Err(p
                            .retry_reason
                            .unwrap_or_else(|| "the destination asked to retry".to_owned()));
                    }
                    sent = events.len();
                }
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
