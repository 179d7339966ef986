//! The Kafka sink (`type = "kafka"`): produces each event to its topic (a literal or a
//! template of vendor, source and kind) with an idempotent producer, `acks=all`, keyed as
//! configured and with `event_id`, `vendor` and `source` headers, for SIEMs that read Kafka.
//!
//! A send produces the batch and waits for every message's delivery report: the reports are
//! the sink's acknowledgements, so an event leaves the queue only once the brokers hold it.
//! librdkafka retries what the brokers answer with a retriable error (not enough replicas,
//! leader elections, timeouts) on its own, for at most `delivery_timeout` per message; what
//! still fails is classified once ([`classify`]):
//!
//! * refused for good, per event: a message over `max_message_bytes` or that the brokers call
//!   too large or invalid goes to the dead letters with the reason (`Partial::refused`), while
//!   the rest of the batch is delivered;
//! * held: topic or cluster authorization, SASL authentication, an unknown topic, a compression
//!   the brokers do not support. Nothing is dropped: the batch stays at the head of the queue
//!   and is sent again after a backoff, for as long as it takes (`SendError::Config`, which
//!   `max_retry_duration` never gives up on), and `/readyz` names the sink and the reason;
//! * everything else (a delivery that timed out, brokers down) is sent again after a backoff.
//!
//! A message that timed out may still have reached the brokers: it is sent again (at least
//! once); consumers de-duplicate on the `event_id` header.

mod record;

pub use record::KafkaEncoder;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use tokio::sync::oneshot;

use super::retry::SendError;
use super::sent::{Partial, Sent};
use super::transport::{Probe, Transport};
use crate::config::{KafkaKey, KafkaSinkSettings};
use crate::metrics::KafkaSinkMetrics;

/// How long a probe waits for the brokers' metadata.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long closing waits for the producer to hand over what it still holds.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// librdkafka reports every message within `delivery_timeout`; a send waits this much more
/// before it counts the missing reports as failures (never expected).
const REPORT_GRACE: Duration = Duration::from_secs(10);

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Delivered,
    /// Refused for good as it is: dead letters.
    Refused(String),
    /// Worth sending again.
    Retry(String),
    /// The brokers refuse this sink's configuration or credentials: hold the queue.
    Hold(String),
}

/// What a failed message's error means (see the module docs).
fn classify(code: RDKafkaErrorCode, reason: String) -> Outcome {
    use RDKafkaErrorCode as C;
    match code {
        C::MessageSizeTooLarge
        | C::InvalidMessageSize
        | C::InvalidMessage
        | C::InvalidRecord
        | C::BadMessage => Outcome::Refused(reason),
        C::TopicAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::TransactionalIdAuthorizationFailed
        | C::SaslAuthenticationFailed
        | C::Authentication
        | C::UnknownTopicOrPartition
        | C::UnknownTopic
        | C::UnknownPartition
        | C::InvalidTopic
        | C::UnsupportedCompressionType
        | C::UnsupportedForMessageFormat => Outcome::Hold(reason),
        _ => Outcome::Retry(reason),
    }
}

/// The reports of the batch being sent, filled in by the producer's thread.
#[derive(Default)]
struct Round {
    /// Which send this is; reports of an earlier, abandoned send are ignored.
    id: usize,
    outcomes: Vec<Option<Outcome>>,
    left: usize,
    done: Option<oneshot::Sender<()>>,
}

impl Round {
    /// A delivery report: ignored unless it is of this round.
    fn report(&mut self, opaque: usize, outcome: Outcome) {
        if self.id & 0xffff == opaque & 0xffff {
            self.settle(opaque >> 16, outcome);
        }
    }

    fn settle(&mut self, index: usize, outcome: Outcome) {
        let Some(slot) = self.outcomes.get_mut(index) else {
            return;
        };
        if slot.replace(outcome).is_none() {
            self.left -= 1;
            if self.left == 0 {
                if let Some(tx) = self.done.take() {
                    let _ = tx.send(());
                }
            }
        }
    }
}

/// The producer's callbacks: delivery reports fill the current round; client-level errors
/// (authentication) are kept to explain messages that time out meanwhile.
#[derive(Default)]
struct SinkContext {
    round: Mutex<Round>,
    /// The last error the client reported outside any message, while it stands.
    client_error: Mutex<Option<(RDKafkaErrorCode, String)>>,
    /// Whether `client_error` is set: a delivery clears it without taking the lock each time.
    client_failing: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each update under these locks is a few assignments; a panic leaves nothing half done
    // that matters more than a report being counted as missing.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The opaque of a message: its round (low bits) and its index in the batch.
fn opaque(round: usize, index: usize) -> usize {
    (index << 16) | (round & 0xffff)
}

impl ClientContext for SinkContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(error = %error, %reason, "Kafka sink client error");
        if let Some(code) = error.rdkafka_error_code() {
            let said = match code {
                RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed => {
                    format!(
                        "the Kafka brokers refuse the SASL login, authentication failed: {reason}"
                    )
                }
                _ => format!("{error}: {reason}"),
            };
            let holds = |c| matches!(classify(c, String::new()), Outcome::Hold(_));
            let mut current = lock(&self.client_error);
            // A refused login stands until a delivery goes through: the "all brokers down"
            // that follows it (and librdkafka's silence on the identical refusals after it)
            // must not hide why.
            if holds(code) || !current.as_ref().is_some_and(|(c, _)| holds(*c)) {
                *current = Some((code, said));
            }
            self.client_failing.store(true, Ordering::Relaxed);
        }
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let outcome = match result {
            Ok(_) => {
                if self.client_failing.swap(false, Ordering::Relaxed) {
                    *lock(&self.client_error) = None;
                }
                Outcome::Delivered
            }
            Err((e, m)) => self.failed(e, m.payload().map_or(0, <[u8]>::len)),
        };
        lock(&self.round).report(opaque, outcome);
    }
}

impl SinkContext {
    /// The client-level error that holds the queue (a refused login), while it stands.
    fn holding(&self) -> Option<String> {
        if !self.client_failing.load(Ordering::Relaxed) {
            return None;
        }
        let (code, reason) = lock(&self.client_error).clone()?;
        match classify(code, reason) {
            Outcome::Hold(r) => Some(r),
            _ => None,
        }
    }

    /// Classifies a failed message of `size` bytes; one that timed out while the client cannot
    /// authenticate is held, with that reason.
    fn failed(&self, e: &KafkaError, size: usize) -> Outcome {
        let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
        if code == RDKafkaErrorCode::MessageSizeTooLarge {
            return Outcome::Refused(format!(
                "{e}: the brokers refused a message of {size} bytes as too large (the topic's max.message.bytes)"
            ));
        }
        if code == RDKafkaErrorCode::MessageTimedOut {
            if let Some((client_code, reason)) = lock(&self.client_error).clone() {
                if let Outcome::Hold(r) = classify(client_code, reason) {
                    return Outcome::Hold(format!("{e}; {r}"));
                }
            }
        }
        classify(code, e.to_string())
    }
}

type SinkProducer = ThreadedProducer<SinkContext>;

pub struct KafkaSink {
    sink_id: String,
    settings: KafkaSinkSettings,
    /// The most messages librdkafka holds: above the largest batch, so a send is never
    /// refused for room.
    max_messages: usize,
    /// `None` until the first send, and again after a fatal producer error.
    producer: Option<Arc<SinkProducer>>,
    rounds: usize,
    /// The topic of the message being produced (reused).
    topic: String,
    metrics: KafkaSinkMetrics,
}

impl KafkaSink {
    pub fn new(
        sink_id: &str,
        settings: &KafkaSinkSettings,
        max_batch_events: usize,
        metrics: KafkaSinkMetrics,
    ) -> KafkaSink {
        KafkaSink {
            sink_id: sink_id.to_owned(),
            settings: settings.clone(),
            max_messages: max_batch_events
                .saturating_mul(2)
                .clamp(100_000, i32::MAX as usize),
            producer: None,
            rounds: 0,
            topic: String::new(),
            metrics,
        }
    }

    /// The producer, created on first use; `Config` when librdkafka refuses its settings
    /// (an unreadable CA file, say).
    fn producer(&mut self) -> Result<Arc<SinkProducer>, SendError> {
        if let Some(p) = &self.producer {
            return Ok(p.clone());
        }
        let s = &self.settings;
        let mut cfg = crate::kafka::client_config(&s.connection);
        crate::kafka::idempotent_producer(&mut cfg)
            .set(
                "message.timeout.ms",
                s.delivery_timeout
                    .as_millis()
                    .clamp(1, i32::MAX as u128)
                    .to_string(),
            )
            .set("compression.type", s.compression.as_str())
            // The topics must exist: a metadata request of ours never creates one with the
            // brokers' defaults (replication factor 1, say); an unknown topic holds the queue.
            .set("allow.auto.create.topics", "false")
            .set("message.max.bytes", s.max_message_bytes.to_string())
            .set(
                "queue.buffering.max.messages",
                self.max_messages.to_string(),
            );
        let producer: SinkProducer = cfg
            .create_with_context(SinkContext::default())
            .map_err(|e| SendError::Config(format!("cannot create the Kafka producer: {e}")))?;
        let producer = Arc::new(producer);
        self.producer = Some(producer.clone());
        Ok(producer)
    }

    /// Drops the producer off the runtime's threads: librdkafka's destroy blocks (it purges,
    /// flushes for up to 500 ms and joins the producer's thread).
    fn discard(&mut self) {
        let Some(p) = self.producer.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(move || drop(p))),
            Err(_) => drop(p),
        }
    }

    /// Produces every event of `batch`; the outcome of each, once every report is in.
    async fn produce(&mut self, batch: &[Bytes]) -> Result<Vec<Outcome>, SendError> {
        let producer = self.producer()?;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let (tx, rx) = oneshot::channel();
        self.rounds = self.rounds.wrapping_add(1);
        let id = self.rounds;
        *lock(&producer.context().round) = Round {
            id,
            outcomes: vec![None; batch.len()],
            left: batch.len(),
            done: Some(tx),
        };
        for (i, item) in batch.iter().enumerate() {
            let failed = match record::parse(item) {
                None => Some(Outcome::Refused(
                    "not a Kafka sink record (was the dead letter edited?)".to_owned(),
                )),
                Some(r) => self.produce_one(&producer, &r, opaque(id, i)),
            };
            if let Some(outcome) = failed {
                lock(&producer.context().round).settle(i, outcome);
            }
        }
        let wait = self.settings.delivery_timeout + REPORT_GRACE;
        let _ = tokio::time::timeout(wait, rx).await;
        let round = std::mem::take(&mut *lock(&producer.context().round));
        Ok(round
            .outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    Outcome::Retry(format!("no delivery report within {}s", wait.as_secs()))
                })
            })
            .collect())
    }

    /// Hands one event to the producer; its outcome when it is refused at once.
    fn produce_one(
        &mut self,
        producer: &SinkProducer,
        r: &record::Record<'_>,
        opaque: usize,
    ) -> Option<Outcome> {
        let m = &r.meta;
        self.settings
            .topic
            .render_into(&m.vendor, &m.source, &m.kind, &mut self.topic);
        let headers = crate::kafka::event_headers(&m.source, &m.vendor, Some(m.id.as_bytes()));
        let mut message: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(&self.topic, opaque)
                .payload(r.value)
                .headers(headers);
        message.key = match self.settings.key {
            KafkaKey::Source => Some(m.source.as_bytes()),
            KafkaKey::EventId => Some(m.id.as_bytes()),
            KafkaKey::None => None,
        };
        let (e, _) = producer.send(message).err()?;
        let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
        let reason = match code {
            RDKafkaErrorCode::MessageSizeTooLarge => format!(
                "{e}: the message is {} bytes, over max_message_bytes = {}",
                r.value.len(),
                self.settings.max_message_bytes
            ),
            _ => format!("{e} (topic {})", self.topic),
        };
        Some(classify(code, reason))
    }
}

/// Turns the outcomes of a send into the worker's answer: delivery of all; a per-event answer
/// when some were delivered or refused; otherwise the failure of the whole batch (held when any
/// event was held).
fn answer(outcomes: &[Outcome]) -> Result<Sent, SendError> {
    let mut partial = Partial::default();
    let mut hold = None;
    let mut delivered = 0;
    for (i, o) in outcomes.iter().enumerate() {
        match o {
            Outcome::Delivered => delivered += 1,
            Outcome::Refused(r) => partial.refused.push((i, r.clone())),
            Outcome::Retry(r) => {
                partial.retry.push(i);
                partial.retry_reason.get_or_insert_with(|| r.clone());
            }
            Outcome::Hold(r) => {
                partial.retry.push(i);
                hold.get_or_insert_with(|| r.clone());
            }
        }
    }
    if partial.retry.is_empty() && partial.refused.is_empty() {
        return Ok(Sent::Delivered(outcomes.len()));
    }
    if delivered == 0 && partial.refused.is_empty() {
        return Err(match (hold, partial.retry_reason) {
            (Some(h), _) => SendError::Config(h),
            (None, r) => SendError::retryable(r.unwrap_or_default()),
        });
    }
    if let Some(h) = hold {
        partial.retry_reason = Some(h);
    }
    Ok(Sent::Partial(partial))
}

impl Transport for KafkaSink {
    async fn send(&mut self, batch: &[Bytes]) -> Result<Sent, SendError> {
        let started = Instant::now();
        let outcomes = self.produce(batch).await?;
        self.metrics
            .produce_seconds
            .record(started.elapsed().as_secs_f64());
        for o in &outcomes {
            match o {
                Outcome::Delivered => {}
                Outcome::Refused(_) => self.metrics.refused.increment(1),
                Outcome::Retry(_) => self.metrics.retried.increment(1),
                Outcome::Hold(_) => self.metrics.held.increment(1),
            }
        }
        let fatal = self
            .producer
            .as_ref()
            .and_then(|p| p.client().fatal_error());
        if let Some((_, reason)) = fatal {
            // An idempotent producer that hit a fatal error takes no more messages.
            tracing::warn!(sink = %self.sink_id, %reason, "the Kafka producer hit a fatal error; starting a new one");
            self.discard();
        }
        answer(&outcomes)
    }

    /// Whether the producer can be made (its TLS files, say) and, with a literal topic,
    /// whether the brokers answer and know the topic (and let this client see it). A
    /// template's topics are only known per event: unchecked.
    async fn probe(&mut self) -> Result<Probe, SendError> {
        let producer = self.producer()?;
        let Some(topic) = self.settings.topic.literal().map(str::to_owned) else {
            return Ok(Probe::Unchecked);
        };
        let p = producer.clone();
        let metadata = tokio::task::spawn_blocking(move || {
            p.client()
                .fetch_metadata(Some(&topic), PROBE_TIMEOUT)
                .map(|md| {
                    md.topics()
                        .iter()
                        .find(|t| t.name() == topic)
                        .map(|t| (t.error(), t.partitions().len()))
                })
        })
        .await
        .map_err(|e| SendError::retryable(format!("metadata request failed: {e}")))?;
        let topic = self.settings.topic.literal().unwrap_or_default();
        match metadata {
            // The brokers answer, but refuse this client (wrong SASL credentials, say).
            Err(e) => Err(match producer.context().holding() {
                Some(r) => SendError::Config(r),
                None => SendError::retryable(format!("brokers unreachable: {e}")),
            }),
            Ok(Some((None, n))) if n > 0 => Ok(Probe::Reachable),
            Ok(Some((Some(err), _))) => {
                let code = RDKafkaErrorCode::from(err);
                match classify(code, format!("topic {topic}: {code}")) {
                    Outcome::Hold(r) => Err(SendError::Config(r)),
                    Outcome::Refused(r) | Outcome::Retry(r) => Err(SendError::retryable(r)),
                    Outcome::Delivered => Ok(Probe::Reachable),
                }
            }
            Ok(_) => Err(SendError::Config(format!(
                "topic {topic}: the brokers do not know it"
            ))),
        }
    }

    async fn close(&mut self) {
        let Some(p) = self.producer.take() else {
            return;
        };
        let sink = self.sink_id.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = p.flush(FLUSH_TIMEOUT) {
                tracing::warn!(%sink, error = %e, "the Kafka producer still held messages when the sink closed; they stay queued and are sent again");
            }
        })
        .await;
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        self.discard();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn errors_are_refused_held_or_retried() {
        use RDKafkaErrorCode as C;
        let of = |c| match classify(c, String::new()) {
            Outcome::Refused(_) => "refused",
            Outcome::Hold(_) => "hold",
            Outcome::Retry(_) => "retry",
            Outcome::Delivered => "delivered",
        };
        assert_eq!(of(C::MessageSizeTooLarge), "refused");
        assert_eq!(of(C::TopicAuthorizationFailed), "hold");
        assert_eq!(of(C::ClusterAuthorizationFailed), "hold");
        assert_eq!(of(C::SaslAuthenticationFailed), "hold");
        assert_eq!(of(C::UnknownTopicOrPartition), "hold");
        assert_eq!(of(C::NotEnoughReplicas), "retry");
        assert_eq!(of(C::MessageTimedOut), "retry");
        assert_eq!(of(C::RequestTimedOut), "retry");
    }

    #[test]
    fn a_send_answers_per_event_only_when_some_were_delivered_or_refused() {
        let d = Outcome::Delivered;
        let big = Outcome::Refused("too large".into());
        let auth = Outcome::Hold("Broker: Topic authorization failed".into());
        let slow = Outcome::Retry("Local: Message timed out".into());
        assert!(matches!(
            answer(&[d.clone(), d.clone()]),
            Ok(Sent::Delivered(2))
        ));
        assert!(matches!(
            answer(&[auth.clone(), slow.clone()]),
            Err(SendError::Config(r)) if r.contains("authorization")
        ));
        assert!(matches!(
            answer(&[slow.clone(), slow.clone()]),
            Err(SendError::Retryable { reason, .. }) if reason.contains("timed out")
        ));
        match answer(&[d.clone(), big, d.clone(), auth]) {
            Ok(Sent::Partial(p)) => {
                assert_eq!(p.refused, vec![(1, "too large".to_owned())]);
                assert_eq!(p.retry, vec![3]);
                assert!(p.retry_reason.unwrap().contains("authorization"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_report_of_an_abandoned_send_settles_nothing() {
        let (tx, mut rx) = oneshot::channel();
        let mut round = Round {
            id: 7,
            outcomes: vec![None; 2],
            left: 2,
            done: Some(tx),
        };
        round.report(opaque(6, 1), Outcome::Delivered);
        assert_eq!(round.left, 2);
        round.report(opaque(7, 1), Outcome::Delivered);
        round.report(opaque(7, 1), Outcome::Delivered);
        assert_eq!(round.left, 1, "a second report of one message counts once");
        assert!(rx.try_recv().is_err());
        round.report(opaque(7, 0), Outcome::Retry("x".into()));
        assert!(
            rx.try_recv().is_ok(),
            "the send wakes once every report is in"
        );
        assert_eq!(
            round.outcomes,
            vec![Some(Outcome::Retry("x".into())), Some(Outcome::Delivered)]
        );
    }
}
