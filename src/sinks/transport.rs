//! The seam between the generic sink worker and a destination: [`Transport`], what each
//! sink's connection implements, and [`SinkTransport`], the closed set of them, dispatched
//! statically.
//!
//! A transport sends bytes the encoder made at the edge and classifies the answer once
//! (`Sent`, or a `SendError` that is retryable or a configuration problem); the worker does
//! the rest: queue order, backoff, dead letters, metrics and readiness. A destination that
//! confirms events after taking them (Splunk HEC indexer acknowledgement) keeps that
//! machinery to itself (polls, timeouts, resends, its cap on what is in flight) and reports
//! through [`settled`](Transport::settled) what the worker may release.

use std::future::Future;

use bytes::Bytes;

use super::retry::SendError;
use super::sent::{Sent, Settled};
use super::{elasticsearch, file, hec, http, sentinel, syslog};
use crate::config::{SinkKind, SinkSettings};
use crate::metrics::{Registry, SinkMetrics};

/// What a probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The destination answered and would take events: a sink marked failing is ready again.
    Reachable,
    /// Nothing was checked (there is no cheap check); only a send tells.
    Unchecked,
}

/// A sink's connection to its destination, driven by one worker (one call at a time).
///
/// Every future must be safe to drop at an `.await` when the worker shuts down; `settled` is
/// also dropped whenever a batch arrives first, and must lose nothing then (work it had begun
/// may be done again, by the next `send` or `settled`).
pub trait Transport {
    /// Sends the batch, or its first events, and says what became of them (see [`Sent`]).
    /// `Err` means nothing of this call counts; the worker backs off and sends again.
    fn send(&mut self, batch: &[Bytes]) -> impl Future<Output = Result<Sent, SendError>> + Send;

    /// Checks the destination before the first batch and while the sink is failing, so a
    /// wrong token or URL shows on `/readyz` at start rather than with the first alert.
    fn probe(&mut self) -> impl Future<Output = Result<Probe, SendError>> + Send {
        async { Ok(Probe::Unchecked) }
    }

    /// Resolves once events handed off earlier (`Sent::HandedOff`) settle, or the transport's
    /// own work for them fails (`Err`: the worker backs off before calling again). Never
    /// resolves for a transport that does not hand events off.
    fn settled(&mut self) -> impl Future<Output = Result<Settled, SendError>> + Send {
        std::future::pending()
    }

    /// The destination's HTTP status on the last answer (HTTP destinations only), for the
    /// admin API's test sends.
    fn last_status(&self) -> Option<u16> {
        None
    }

    /// Flushes and closes the connection; the worker calls it last.
    fn close(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Every sink's transport (closed set, static dispatch).
pub enum SinkTransport {
    File(file::FileSink),
    Hec(Box<hec::HecSink>),
    Syslog(Box<syslog::SyslogSink>),
    Http(Box<http::HttpSink>),
    Elasticsearch(Box<elasticsearch::ElasticsearchSink>),
    Sentinel(Box<sentinel::SentinelSink>),
    #[cfg(feature = "kafka")]
    Kafka(Box<super::kafka::KafkaSink>),
}

impl SinkTransport {
    pub fn build(settings: &SinkSettings, metrics: &SinkMetrics, registry: &Registry) -> Self {
        match &settings.kind {
            SinkKind::File(f) => SinkTransport::File(file::FileSink::new(
                settings.id.clone(),
                f.clone(),
                metrics.torn_tail_bytes.clone(),
            )),
            SinkKind::SplunkHec(h) => SinkTransport::Hec(Box::new(hec::HecSink::new(
                &settings.id,
                h,
                h.acks.map(|_| registry.hec_acks(&settings.id)),
            ))),
            SinkKind::Syslog(s) => SinkTransport::Syslog(Box::new(syslog::SyslogSink::new(
                &settings.id,
                s,
                metrics.reconnects.clone(),
            ))),
            SinkKind::Http(h) => SinkTransport::Http(Box::new(http::HttpSink::new(h))),
            SinkKind::Elasticsearch(e) => SinkTransport::Elasticsearch(Box::new(
                elasticsearch::ElasticsearchSink::new(&settings.id, e),
            )),
            SinkKind::Sentinel(s) => {
                SinkTransport::Sentinel(Box::new(sentinel::SentinelSink::new(&settings.id, s)))
            }
            #[cfg(feature = "kafka")]
            SinkKind::Kafka(k) => SinkTransport::Kafka(Box::new(super::kafka::KafkaSink::new(
                &settings.id,
                k,
                settings.batch.max_events,
                registry.kafka_sink(&settings.id),
            ))),
        }
    }
}

impl Transport for SinkTransport {
    async fn send(&mut self, batch: &[Bytes]) -> Result<Sent, SendError> {
        match self {
            SinkTransport::File(t) => t.send(batch).await,
            SinkTransport::Hec(t) => t.send(batch).await,
            SinkTransport::Syslog(t) => t.send(batch).await,
            SinkTransport::Http(t) => t.send(batch).await,
            SinkTransport::Elasticsearch(t) => t.send(batch).await,
            SinkTransport::Sentinel(t) => t.send(batch).await,
            #[cfg(feature = "kafka")]
            SinkTransport::Kafka(t) => t.send(batch).await,
        }
    }

    async fn probe(&mut self) -> Result<Probe, SendError> {
        match self {
            SinkTransport::File(t) => t.probe().await,
            SinkTransport::Hec(t) => t.probe().await,
            SinkTransport::Syslog(t) => t.probe().await,
            SinkTransport::Http(t) => t.probe().await,
            SinkTransport::Elasticsearch(t) => t.probe().await,
            SinkTransport::Sentinel(t) => t.probe().await,
            #[cfg(feature = "kafka")]
            SinkTransport::Kafka(t) => t.probe().await,
        }
    }

    async fn settled(&mut self) -> Result<Settled, SendError> {
        match self {
            SinkTransport::File(t) => t.settled().await,
            SinkTransport::Hec(t) => t.settled().await,
            SinkTransport::Syslog(t) => t.settled().await,
            SinkTransport::Http(t) => t.settled().await,
            SinkTransport::Elasticsearch(t) => t.settled().await,
            SinkTransport::Sentinel(t) => t.settled().await,
            #[cfg(feature = "kafka")]
            SinkTransport::Kafka(t) => t.settled().await,
        }
    }

    fn last_status(&self) -> Option<u16> {
        match self {
            SinkTransport::File(t) => t.last_status(),
            SinkTransport::Hec(t) => t.last_status(),
            SinkTransport::Syslog(t) => t.last_status(),
            SinkTransport::Http(t) => t.last_status(),
            SinkTransport::Elasticsearch(t) => t.last_status(),
            SinkTransport::Sentinel(t) => t.last_status(),
            #[cfg(feature = "kafka")]
            SinkTransport::Kafka(t) => t.last_status(),
        }
    }

    async fn close(&mut self) {
        match self {
            SinkTransport::File(t) => t.close().await,
            SinkTransport::Hec(t) => t.close().await,
            SinkTransport::Syslog(t) => t.close().await,
            SinkTransport::Http(t) => t.close().await,
            SinkTransport::Elasticsearch(t) => t.close().await,
            SinkTransport::Sentinel(t) => t.close().await,
            #[cfg(feature = "kafka")]
            SinkTransport::Kafka(t) => t.close().await,
        }
    }
}
