//! The Kafka-backed queue (`[sinks.queue] type = "kafka"`): a sink's events live on a topic,
//! replicated by the brokers, instead of one node's memory or disk.
//!
//! * Intake (producer): a request's events are produced to the sink's topic with an idempotent
//!   producer (`enable.idempotence`, hence `acks=all`), keyed by source id (one source's events
//!   keep their order within a partition) with `event_id`, `vendor` and `source` headers for
//!   de-duplication downstream. The request's [`Written`] resolves once every event has a
//!   successful delivery report. `message.timeout.ms = 0`: librdkafka never expires what it
//!   holds, so a broker outage cannot silently drop an accepted event; the request answers 503
//!   when its reports do not come within `produce_timeout` (dispatch's wait), and the events
//!   still go out once the brokers are back. Room in the queue's bounds is held from the
//!   reservation until the delivery report, so what the producer holds stays bounded.
//! * Delivery (consumer): one thread per sink polls a consumer in the group named after the
//!   sink and feeds the queue's window, which the sink worker reads as for any queue. An offset
//!   is stored (`enable.auto.offset.store = false`) only once its event is acknowledged by the
//!   sink, tracking per partition the offset below which everything is delivered, since
//!   deliveries may finish in any order; stored offsets are committed as they are stored
//!   (asynchronously), every second, on every revocation (synchronously, before the
//!   partitions go) and at shutdown. When the window is full the assignment is paused and the thread keeps polling, so that the group never takes
//!   a slow sink for a dead member.
//! * Roles (`serve --role`, [`Sides`]): an intake node runs only the producer; a delivery
//!   worker the consumer, and a producer for dead-letter replays.
//! * Metrics ([`KafkaMetrics`]): each request's wait for its delivery reports, refusals by
//!   kind and lost broker connections, the bytes the producer holds, rebalances, and from
//!   librdkafka's statistics (every [`STATS_INTERVAL`]) the lag of each owned partition: its
//!   high watermark minus the stored (delivered) offset, or the committed one, or the start;
//!   and, for `/readyz`, whether the producer or the consumer reaches any broker.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::oneshot;

use super::disk::{WriteError, Written};
use super::window::{Depth, Window};
use super::EventKeys;
use crate::config::kafka::KafkaQueueSettings;
use crate::config::QueueLimits;
use crate::metrics::KafkaMetrics;
use metrics::Gauge;

/// How long the consumer thread waits in one poll; also how soon a window that made room is
/// refilled while the assignment is paused.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How often librdkafka reports its statistics to the producer and the consumer: how fresh
/// the lag gauges and the "no broker reachable" readiness are.
pub const STATS_INTERVAL: Duration = Duration::from_secs(5);

/// How long shutdown waits for the producer to hand over what it still holds.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a Kafka queue could not start.
#[derive(Debug, thiserror::Error)]
pub enum KafkaQueueError {
    #[error("cannot create the Kafka {what} for topic {topic}: {source}")]
    Client {
        what: &'static str,
        topic: String,
        source: KafkaError,
    },
    #[error("cannot start the delivery worker's consumer thread: {0}")]
    Thread(std::io::Error),
}

/// Which sides of the queue run on this node (`--role`): intake produces, delivery consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sides {
    pub produce: bool,
    pub consume: bool,
}

/// A Kafka queue's state (see the module docs).
pub struct KafkaQueue {
    topic: String,
    produce_timeout: Duration,
    /// Events handed to the producer whose delivery reports are still due, bounded by the
    /// queue's limits (reservations are taken here).
    inflight: Arc<Window>,
    producer: Option<ThreadedProducer<ProduceContext>>,
    consumer: Option<ConsumerSide>,
    metrics: Arc<KafkaMetrics>,
}

struct ConsumerSide {
    consumer: Arc<BaseConsumer<GroupContext>>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl KafkaQueue {
    /// Connects the producer and (with `sides.consume`) starts the consumer thread feeding
    /// `window`. Nothing waits for the brokers: they may come later.
    pub(super) fn open(
        limits: QueueLimits,
        settings: &KafkaQueueSettings,
        window: Arc<Window>,
        sides: Sides,
        metrics: KafkaMetrics,
    ) -> Result<KafkaQueue, KafkaQueueError> {
        let metrics = Arc::new(metrics);
        let client_err = |what, source| KafkaQueueError::Client {
            what,
            topic: settings.topic.clone(),
            source,
        };
        let base = crate::kafka::client_config(&settings.connection);
        let producer = if sides.produce {
            let mut cfg = base.clone();
            // librdkafka's own bounds only need to stay above the queue's (which the
            // reservations enforce), so that it never refuses what the queue admitted.
            let kbytes = (limits.max_bytes / 1024 + 1024).min(i32::MAX as u64);
            let messages = limits.max_events.saturating_add(1024).min(i32::MAX as u64);
            crate::kafka::idempotent_producer(&mut cfg)
                .set("message.timeout.ms", "0")
                .set("queue.buffering.max.kbytes", kbytes.to_string())
                .set("queue.buffering.max.messages", messages.to_string())
                .set("linger.ms", "5")
                // A topic the brokers refused (authorization, unknown topic) is refused at
                // once until the producer looks at it again: every 10 s, not librdkafka's 5 min.
                .set("topic.metadata.refresh.interval.ms", "10000")
                .set(
                    "statistics.interval.ms",
                    STATS_INTERVAL.as_millis().to_string(),
                );
            Some(
                cfg.create_with_context(ProduceContext {
                    failing: AtomicBool::new(false),
                    brokers_down: AtomicBool::new(false),
                    login: LoginRefusal::default(),
                    last_error: Mutex::new(None),
                    metrics: metrics.clone(),
                })
                .map_err(|e| client_err("producer", e))?,
            )
        } else {
            None
        };
        let consumer = if sides.consume {
            Some(
                ConsumerSide::start(base, settings, window, metrics.clone()).map_err(
                    |e| match e {
                        StartError::Client(e) => client_err("consumer", e),
                        StartError::Thread(e) => KafkaQueueError::Thread(e),
                    },
                )?,
            )
        } else {
            None
        };
        Ok(KafkaQueue {
            topic: settings.topic.clone(),
            produce_timeout: settings.produce_timeout,
            inflight: Arc::new(Window::new(limits)),
            producer,
            consumer,
            metrics,
        })
    }

    /// Whether this node reads the topic (and so runs the sink's worker).
    pub(super) fn consumes(&self) -> bool {
        self.consumer.is_some()
    }

    pub(super) fn inflight(&self) -> &Window {
        &self.inflight
    }

    pub(super) fn produce_timeout(&self) -> Duration {
        self.produce_timeout
    }

    /// Produces a request's events (their room held in `inflight` as `(events, bytes)`);
    /// the receipt resolves once every event has its delivery report, `Err` with the first
    /// failure. The room is given back when the last report arrives, not before.
    pub(super) fn produce(
        &self,
        (events, bytes): (u64, u64),
        items: Vec<Bytes>,
        keys: EventKeys<'_>,
    ) -> Written {
        let (tx, rx) = oneshot::channel();
        let pending = Arc::new(Pending {
            left: AtomicUsize::new(items.len() + 1),
            error: Mutex::new(None),
            reply: Mutex::new(Some(tx)),
            room: (events, bytes),
            inflight: self.inflight.clone(),
            metrics: self.metrics.clone(),
            since: Instant::now(),
        });
        let Some(producer) = &self.producer else {
            pending.fail("this node does not produce to the queue's topic");
            pending.metrics.inflight_bytes.increment(bytes as f64);
            pending.done(items.len() + 1);
            return rx;
        };
        self.metrics.inflight_bytes.increment(bytes as f64);
        for (i, item) in items.iter().enumerate() {
            let headers = crate::kafka::event_headers(keys.source, keys.vendor, keys.id(i));
            let record = BaseRecord::with_opaque_to(&self.topic, pending.clone())
                .key(keys.source)
                .payload(item.as_ref())
                .headers(headers);
            if let Err((e, _)) = producer.send(record) {
                let kind = error_kind(&e);
                self.metrics.produce_error(kind);
                if kind == TOO_LARGE {
                    // Over the producer's `message.max.bytes`: this event alone can never go;
                    // the rest are produced.
                    pending.refuse(&format!(
                        "{e}: an event of {} bytes is over the producer's message.max.bytes",
                        item.len()
                    ));
                    pending.done(1);
                    continue;
                }
                // Not handed over: neither this event nor the rest will have a report.
                pending.fail(&e.to_string());
                pending.done(items.len() - i);
                break;
            }
        }
        pending.done(1);
        rx
    }

    /// Stops reading the topic (what the window holds is still delivered).
    pub(super) fn close(&self) {
        if let Some(c) = &self.consumer {
            c.shared.closed.store(true, Ordering::Relaxed);
        }
    }

    /// After the sink worker stopped: stores nothing more, commits what was stored and leaves
    /// the group; hands the producer's last events to the brokers. Blocks.
    pub(super) fn shutdown(&self) {
        if let Some(c) = &self.consumer {
            c.shared.finish.store(true, Ordering::Relaxed);
            let thread = lock(&c.thread).take();
            if let Some(t) = thread {
                let _ = t.join();
            }
            match c.consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => {}
                Err(e) if is_no_offset(&e) => {}
                Err(e) => {
                    tracing::warn!(topic = %self.topic, error = %e, "committing the delivered offsets at shutdown failed; those events will be delivered again")
                }
            }
            // Leave the group now, so its other members take the partitions at once rather
            // than after the session timeout.
            if c.consumer.close_queue().is_ok() {
                let until = std::time::Instant::now() + FLUSH_TIMEOUT;
                while !c.consumer.closed() && std::time::Instant::now() < until {
                    let _ = c.consumer.poll(POLL_INTERVAL);
                }
            }
        }
        if let Some(p) = &self.producer {
            if let Err(e) = p.flush(FLUSH_TIMEOUT) {
                tracing::warn!(topic = %self.topic, error = %e, events = p.in_flight_count(), "the Kafka producer still held events at shutdown (their requests were answered 503)");
            }
        }
    }

    /// The sink delivered the `n` oldest events of the window: store the offsets that now
    /// have everything below them delivered.
    pub(super) fn acked(&self, n: usize) {
        let Some(c) = &self.consumer else {
            return;
        };
        let tpl = lock(&c.shared.tracker).ack(n, &self.topic);
        if tpl.count() == 0 {
            return;
        }
        if let Err(e) = c.consumer.store_offsets(&tpl) {
            // A partition revoked meanwhile: its new owner starts from the last commit and
            // delivers those events again (at least once).
            tracing::debug!(topic = %self.topic, error = %e, "offsets not stored");
            return;
        }
        // Committed at once (asynchronously: this only hands the request to librdkafka), not
        // only at the next auto-commit: a worker killed mid-batch then has its successor
        // deliver again the batch in flight, not every batch of the last second.
        if let Err(e) = c.consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!(topic = %self.topic, error = %e, "offsets not committed");
        }
    }

    /// Why the brokers refused this node's last produced event, until one is delivered again;
    /// else that the producer, or the consumer, reached no broker at its last statistics.
    pub(super) fn problem(&self) -> Option<Arc<str>> {
        if let Some(p) = &self.producer {
            let cx = p.context();
            if let Some(refused) = cx.login.get() {
                return Some(Arc::from(format!("the producer: {refused}")));
            }
            if cx.failing.load(Ordering::Relaxed) {
                if let Some(e) = lock(&cx.last_error).clone() {
                    return Some(e);
                }
            }
            if cx.brokers_down.load(Ordering::Relaxed) {
                return Some(Arc::from("the producer reaches no Kafka broker"));
            }
        }
        let c = self.consumer.as_ref()?;
        if let Some(refused) = c.shared.login.get() {
            return Some(Arc::from(format!(
                "the delivery worker's consumer: {refused}"
            )));
        }
        c.shared
            .brokers_down
            .load(Ordering::Relaxed)
            .then(|| Arc::from("the delivery worker's consumer reaches no Kafka broker"))
    }

    /// Events of this node not yet delivered: those read ahead and those being produced.
    pub(super) fn inflight_depth(&self) -> Depth {
        self.inflight.reserved()
    }
}

impl Drop for KafkaQueue {
    fn drop(&mut self) {
        if let Some(c) = &self.consumer {
            c.shared.finish.store(true, Ordering::Relaxed);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is a few pushes and pops; a panic cannot leave them
    // half done in a way that matters more than the events being delivered again.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn is_no_offset(e: &KafkaError) -> bool {
    e.rdkafka_error_code() == Some(RDKafkaErrorCode::NoOffset)
}

/// One request's wait for its delivery reports.
struct Pending {
    /// Reports still due, plus one held by `produce` until every event was handed over.
    left: AtomicUsize,
    /// The first failure, and whether every failure so far is an event too large to ever go
    /// (the request is then refused for good rather than retried).
    error: Mutex<Option<(Arc<str>, bool)>>,
    reply: Mutex<Option<oneshot::Sender<Result<(), WriteError>>>>,
    room: (u64, u64),
    inflight: Arc<Window>,
    metrics: Arc<KafkaMetrics>,
    /// When the events were handed to the producer.
    since: Instant,
}

impl Pending {
    /// A failure a later attempt may get past.
    fn fail(&self, reason: &str) {
        let mut e = lock(&self.error);
        match &mut *e {
            None => *e = Some((Arc::from(reason), false)),
            Some((_, too_large)) => *too_large = false,
        }
    }

    /// An event too large to ever be taken.
    fn refuse(&self, reason: &str) {
        lock(&self.error).get_or_insert_with(|| (Arc::from(reason), true));
    }

    fn done(&self, n: usize) {
        if self.left.fetch_sub(n, Ordering::AcqRel) != n {
            return;
        }
        self.inflight.release(self.room.0, self.room.1);
        self.metrics.inflight_bytes.decrement(self.room.1 as f64);
        self.metrics
            .produce_seconds
            .record(self.since.elapsed().as_secs_f64());
        let result = match lock(&self.error).take() {
            None => Ok(()),
            Some((e, true)) => Err(WriteError::TooLarge(e)),
            Some((e, false)) => Err(WriteError::Produce(e)),
        };
        if let Some(tx) = lock(&self.reply).take() {
            let _ = tx.send(result);
        }
    }
}

/// The producer's callbacks: delivery reports resolve requests, and the last refusal is kept
/// for `/readyz` until an event is delivered again.
struct ProduceContext {
    failing: AtomicBool,
    last_error: Mutex<Option<Arc<str>>>,
    /// No broker was up at the last statistics report (for `/readyz`).
    brokers_down: AtomicBool,
    login: LoginRefusal,
    metrics: Arc<KafkaMetrics>,
}

/// The brokers' refusal of this client's SASL login (wrong credentials, say), for `/readyz`,
/// while no broker is up: librdkafka keeps trying to log in, and says only that each try failed.
#[derive(Default)]
struct LoginRefusal(Mutex<Option<Arc<str>>>);

impl LoginRefusal {
    /// Records a client-level error when it is a refused login, counting it; whether it was.
    fn note(&self, error: &KafkaError, reason: &str, metrics: &KafkaMetrics) -> bool {
        if error_kind(error) != AUTHENTICATION {
            return false;
        }
        metrics.produce_error(AUTHENTICATION);
        *lock(&self.0) = Some(Arc::from(format!(
            "the Kafka brokers refuse its SASL login, authentication failed: {reason}"
        )));
        true
    }

    /// A statistics report: a broker up means a login went through.
    fn stats(&self, any_broker_up: bool) {
        if any_broker_up {
            lock(&self.0).take();
        }
    }

    fn get(&self) -> Option<Arc<str>> {
        lock(&self.0).clone()
    }
}

impl ClientContext for ProduceContext {
    fn stats_raw(&self, statistics: &[u8]) {
        if let Ok(stats) = serde_json::from_slice::<Stats>(statistics) {
            let up = stats.any_broker_up();
            self.brokers_down.store(!up, Ordering::Relaxed);
            self.login.stats(up);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if is_transport(&error) {
            self.metrics.produce_error("transport");
        } else {
            self.login.note(&error, reason, &self.metrics);
        }
        tracing::warn!(target: "librdkafka", error = %error, reason, "Kafka producer");
    }
}

/// Whether a client-level error is a lost connection to one broker or to all of them.
fn is_transport(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown)
    )
}

/// The `kind` of an event larger than the producer or the brokers take.
const TOO_LARGE: &str = "message_too_large";
/// The `kind` of a SASL login the brokers refused.
const AUTHENTICATION: &str = "authentication";

/// The `kind` label of a produce error (see `metrics::KAFKA_PRODUCE_ERROR_KINDS`).
fn error_kind(e: &KafkaError) -> &'static str {
    use RDKafkaErrorCode as C;
    match e.rdkafka_error_code() {
        Some(
            C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::GroupAuthorizationFailed,
        ) => "authorization",
        Some(C::SaslAuthenticationFailed | C::Authentication) => AUTHENTICATION,
        Some(C::UnknownTopicOrPartition | C::UnknownTopic | C::UnknownPartition) => "unknown_topic",
        Some(C::MessageSizeTooLarge | C::InvalidMessageSize) => TOO_LARGE,
        Some(C::QueueFull) => "local_queue_full",
        Some(C::BrokerTransportFailure | C::AllBrokersDown) => "transport",
        _ => "other",
    }
}

impl ProducerContext for ProduceContext {
    type DeliveryOpaque = Arc<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Arc<Pending>) {
        match result {
            Err((e, message)) if error_kind(e) == TOO_LARGE => {
                // One event's size, not the brokers' state: refused for good, and no readiness
                // problem.
                self.metrics.produce_error(TOO_LARGE);
                let reason = format!(
                    "{e}: the brokers refused an event of {} bytes as too large (the topic's max.message.bytes)",
                    message.payload().map_or(0, <[u8]>::len)
                );
                tracing::warn!(error = %reason, "Kafka refused an event as too large; its request is answered 413");
                pending.refuse(&reason);
            }
            Err((e, _)) => {
                self.metrics.produce_error(error_kind(e));
                let reason: Arc<str> = Arc::from(e.to_string());
                tracing::error!(error = %reason, "Kafka refused an event; its request is answered 503");
                pending.fail(&reason);
                *lock(&self.last_error) = Some(reason);
                self.failing.store(true, Ordering::Relaxed);
            }
            Ok(_) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    *lock(&self.last_error) = None;
                }
            }
        }
        pending.done(1);
    }
}

/// State shared by the consumer thread, its rebalance callbacks and the sink's acks.
struct Shared {
    window: Arc<Window>,
    tracker: Mutex<Tracker>,
    /// Whether the assignment is paused (the window is full, or the queue closed): newly
    /// assigned partitions are paused too.
    paused: AtomicBool,
    /// No more reading (the queue is closed).
    closed: AtomicBool,
    /// The thread commits and stops.
    finish: AtomicBool,
    topic: String,
    /// No broker was up at the last statistics report (for `/readyz`).
    brokers_down: AtomicBool,
    login: LoginRefusal,
    metrics: Arc<KafkaMetrics>,
    /// The lag gauge of each owned partition, once the statistics reported it.
    lag: Mutex<HashMap<i32, Gauge>>,
}

impl Shared {
    /// Puts a consumed event in the window, recording its offset; gives it back when the
    /// window has no room.
    fn offer(&self, partition: i32, offset: i64, item: Bytes) -> Result<(), Bytes> {
        let mut t = lock(&self.tracker);
        self.window.push_consumed(item)?;
        // Under the tracker lock: the window's events and their offsets stay in one order.
        t.consumed(partition, offset);
        Ok(())
    }
}

/// Where each event of the window came from, and per assigned partition the offsets read and
/// not yet delivered.
#[derive(Default)]
struct Tracker {
    /// One per event of the window, in the window's order.
    metas: VecDeque<Meta>,
    parts: HashMap<i32, PartState>,
    generations: u64,
}

#[derive(Clone, Copy)]
struct Meta {
    partition: i32,
    offset: i64,
    /// The assignment the event was read under; 0: none (the partition was revoked).
    generation: u64,
}

struct PartState {
    generation: u64,
    /// Offsets read and not yet stored, ascending, each with whether it is delivered.
    pending: VecDeque<(i64, bool)>,
    /// One past the highest offset read.
    next: i64,
    /// The offset last stored (the next to read after a restart).
    stored: i64,
}

impl Tracker {
    fn assigned(&mut self, partition: i32) {
        self.generations += 1;
        self.parts.insert(
            partition,
            PartState {
                generation: self.generations,
                pending: VecDeque::new(),
                next: -1,
                stored: -1,
            },
        );
    }

    fn revoked(&mut self, partition: i32) {
        self.parts.remove(&partition);
    }

    fn consumed(&mut self, partition: i32, offset: i64) {
        let generation = match self.parts.get_mut(&partition) {
            Some(p) if offset >= p.next => {
                p.pending.push_back((offset, false));
                p.next = offset + 1;
                p.generation
            }
            // Read again after a seek, or from a partition no longer assigned: delivered,
            // but not tracked (its offsets are not ours to store).
            _ => 0,
        };
        self.metas.push_back(Meta {
            partition,
            offset,
            generation,
        });
    }

    /// The `n` oldest events are delivered: the offsets to store now.
    fn ack(&mut self, n: usize, topic: &str) -> TopicPartitionList {
        let mut touched: Vec<i32> = Vec::new();
        for _ in 0..n {
            let Some(m) = self.metas.pop_front() else {
                break;
            };
            let Some(p) = self.parts.get_mut(&m.partition) else {
                continue;
            };
            if p.generation != m.generation {
                continue;
            }
            if let Ok(i) = p.pending.binary_search_by_key(&m.offset, |(o, _)| *o) {
                p.pending[i].1 = true;
            }
            if !touched.contains(&m.partition) {
                touched.push(m.partition);
            }
        }
        let mut tpl = TopicPartitionList::new();
        for partition in touched {
            let Some(p) = self.parts.get_mut(&partition) else {
                continue;
            };
            let mut below = None;
            while let Some(&(o, true)) = p.pending.front() {
                below = Some(o + 1);
                p.pending.pop_front();
            }
            // Everything before the oldest undelivered offset is delivered.
            let store = match p.pending.front() {
                Some(&(o, _)) => o,
                None => match below {
                    Some(b) => b,
                    None => continue,
                },
            };
            if store > p.stored {
                p.stored = store;
                let _ = tpl.add_partition_offset(topic, partition, Offset::Offset(store));
            }
        }
        tpl
    }
}

/// The consumer's callbacks: commit before partitions go, track new ones, and turn
/// statistics into lag gauges.
struct GroupContext {
    shared: Arc<Shared>,
}

/// The part of librdkafka's statistics JSON the delivery worker reads
/// (<https://github.com/confluentinc/librdkafka/blob/master/STATISTICS.md>).
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Stats {
    brokers: HashMap<String, BrokerStats>,
    topics: HashMap<String, TopicStats>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct BrokerStats {
    state: String,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct TopicStats {
    partitions: HashMap<String, PartitionStats>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct PartitionStats {
    partition: i32,
    /// Assigned to this consumer.
    desired: bool,
    lo_offset: i64,
    hi_offset: i64,
    stored_offset: i64,
    committed_offset: i64,
}

impl Stats {
    fn any_broker_up(&self) -> bool {
        self.brokers.values().any(|b| b.state == "UP")
    }
}

impl PartitionStats {
    /// Events past the delivered position: the stored offset, else the committed one, else
    /// the partition's start (`auto.offset.reset = earliest`); `None` when nothing is known.
    fn lag(&self) -> Option<i64> {
        let position = [self.stored_offset, self.committed_offset, self.lo_offset]
            .into_iter()
            .find(|o| *o >= 0)?;
        (self.hi_offset >= 0).then(|| (self.hi_offset - position).max(0))
    }
}

impl ClientContext for GroupContext {
    fn stats_raw(&self, statistics: &[u8]) {
        let Ok(stats) = serde_json::from_slice::<Stats>(statistics) else {
            tracing::debug!(topic = %self.shared.topic, "unreadable librdkafka statistics");
            return;
        };
        let up = stats.any_broker_up();
        self.shared.brokers_down.store(!up, Ordering::Relaxed);
        self.shared.login.stats(up);
        let owned: Vec<(i32, i64)> = stats
            .topics
            .get(&self.shared.topic)
            .map(|t| {
                t.partitions
                    .values()
                    .filter(|p| p.desired && p.partition >= 0)
                    .filter_map(|p| Some((p.partition, p.lag()?)))
                    .collect()
            })
            .unwrap_or_default();
        let mut gauges = lock(&self.shared.lag);
        let metrics = &self.shared.metrics;
        gauges.retain(|p, _| {
            let keep = owned.iter().any(|(o, _)| o == p);
            if !keep {
                metrics.forget_lag(*p);
            }
            keep
        });
        for (p, lag) in owned {
            gauges
                .entry(p)
                .or_insert_with(|| metrics.lag(p))
                .set(lag as f64);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.shared.login.note(&error, reason, &self.shared.metrics);
        tracing::warn!(target: "librdkafka", topic = %self.shared.topic, error = %error, reason, "Kafka consumer");
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => {}
            Err(e) if is_no_offset(&e) => {}
            Err(e) => {
                tracing::warn!(topic = %self.shared.topic, error = %e, "committing the delivered offsets before a rebalance failed; the next owner delivers those events again")
            }
        }
        let mut t = lock(&self.shared.tracker);
        let mut gauges = lock(&self.shared.lag);
        for el in tpl.elements() {
            t.revoked(el.partition());
            if gauges.remove(&el.partition()).is_some() {
                self.shared.metrics.forget_lag(el.partition());
            }
        }
        self.shared.metrics.revoked.increment(1);
        tracing::info!(topic = %self.shared.topic, partitions = tpl.count(), "partitions revoked");
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(tpl) = rebalance else {
            return;
        };
        {
            let mut t = lock(&self.shared.tracker);
            for el in tpl.elements() {
                t.assigned(el.partition());
            }
        }
        if self.shared.paused.load(Ordering::Relaxed) {
            let _ = consumer.pause(tpl);
        }
        self.shared.metrics.assigned.increment(1);
        tracing::info!(topic = %self.shared.topic, partitions = tpl.count(), "partitions assigned");
    }
}

enum StartError {
    Client(KafkaError),
    Thread(std::io::Error),
}

impl ConsumerSide {
    fn start(
        mut cfg: ClientConfig,
        settings: &KafkaQueueSettings,
        window: Arc<Window>,
        metrics: Arc<KafkaMetrics>,
    ) -> Result<ConsumerSide, StartError> {
        // What librdkafka reads ahead per partition: about the window's size, so a paused
        // consumer holds little more than the window.
        let prefetch_kb = (settings.memory.max_bytes / 1024).clamp(1024, 65536);
        cfg.set("group.id", &settings.group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // A node that died (kill -9, lost host) has its partitions taken over within 10 s
            // rather than librdkafka's 45 s; heartbeats come from librdkafka's own thread.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "3000")
            .set("queued.max.messages.kbytes", prefetch_kb.to_string())
            .set(
                "statistics.interval.ms",
                STATS_INTERVAL.as_millis().to_string(),
            );
        let shared = Arc::new(Shared {
            window,
            tracker: Mutex::new(Tracker::default()),
            paused: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            finish: AtomicBool::new(false),
            topic: settings.topic.clone(),
            brokers_down: AtomicBool::new(false),
            login: LoginRefusal::default(),
            metrics,
            lag: Mutex::new(HashMap::new()),
        });
        let consumer: BaseConsumer<GroupContext> = cfg
            .create_with_context(GroupContext {
                shared: shared.clone(),
            })
            .map_err(StartError::Client)?;
        consumer
            .subscribe(&[settings.topic.as_str()])
            .map_err(StartError::Client)?;
        let consumer = Arc::new(consumer);
        let (c, s) = (consumer.clone(), shared.clone());
        let thread = std::thread::Builder::new()
            .name(format!("kafka-{}", settings.group))
            .spawn(move || consume(&c, &s))
            .map_err(StartError::Thread)?;
        Ok(ConsumerSide {
            consumer,
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }
}

/// The consumer thread: reads the topic into the window while it has room, pauses the
/// assignment while it has none, and keeps polling either way (rebalances, group liveness).
fn consume(consumer: &BaseConsumer<GroupContext>, shared: &Shared) {
    let mut held: VecDeque<(i32, i64, Bytes)> = VecDeque::new();
    let mut paused = false;
    while !shared.finish.load(Ordering::Relaxed) {
        let closed = shared.closed.load(Ordering::Relaxed);
        if closed {
            // Not delivered, offsets not stored: read again by the next owner.
            held.clear();
        }
        while let Some((p, o, item)) = held.pop_front() {
            if let Err(item) = shared.offer(p, o, item) {
                held.push_front((p, o, item));
                break;
            }
        }
        let want_pause = closed || !held.is_empty();
        if want_pause != paused {
            shared.paused.store(want_pause, Ordering::Relaxed);
            if let Ok(assignment) = consumer.assignment() {
                let r = if want_pause {
                    consumer.pause(&assignment)
                } else {
                    consumer.resume(&assignment)
                };
                if let Err(e) = r {
                    tracing::warn!(topic = %shared.topic, error = %e, "pausing or resuming the consumer failed");
                }
            }
            paused = want_pause;
        }
        match consumer.poll(POLL_INTERVAL) {
            None => {}
            Some(Err(e)) => {
                tracing::warn!(topic = %shared.topic, error = %e, "reading the queue topic failed; retrying");
            }
            Some(Ok(m)) if !closed => {
                let item = Bytes::copy_from_slice(m.payload().unwrap_or_default());
                let (p, o) = (m.partition(), m.offset());
                if !held.is_empty() {
                    held.push_back((p, o, item));
                } else if let Err(item) = shared.offer(p, o, item) {
                    held.push_back((p, o, item));
                }
            }
            Some(Ok(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn offsets(tpl: &TopicPartitionList) -> Vec<(i32, i64)> {
        tpl.elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => (e.partition(), o),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn the_stored_offset_never_passes_an_undelivered_event() {
        let mut t = Tracker::default();
        t.assigned(0);
        t.assigned(1);
        for (p, o) in [(0, 10), (1, 5), (0, 11), (0, 12), (1, 6)] {
            t.consumed(p, o);
        }
        assert_eq!(offsets(&t.ack(1, "t")), vec![(0, 11)]);
        assert_eq!(offsets(&t.ack(1, "t")), vec![(1, 6)]);
        // Mark 0/12 delivered out of order: 0/11 still holds the offset back.
        t.parts.get_mut(&0).unwrap().pending[1].1 = true;
        let m = t.metas.remove(1).unwrap();
        assert_eq!((m.partition, m.offset), (0, 12));
        assert_eq!(offsets(&t.ack(0, "t")), vec![]);
        assert_eq!(offsets(&t.ack(1, "t")), vec![(0, 13)], "0/11 then 0/12");
        assert_eq!(offsets(&t.ack(1, "t")), vec![(1, 7)]);
    }

    #[test]
    fn events_of_a_revoked_partition_store_nothing_even_once_reassigned() {
        let mut t = Tracker::default();
        t.assigned(0);
        t.consumed(0, 3);
        t.revoked(0);
        t.assigned(0);
        t.consumed(0, 1);
        assert_eq!(
            offsets(&t.ack(1, "t")),
            vec![],
            "read under the old assignment"
        );
        assert_eq!(offsets(&t.ack(1, "t")), vec![(0, 2)]);
    }
}
