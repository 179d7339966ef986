//! Metrics: every metric name as a constant, and handle structs registered once per source and
//! sink when the gateway starts, so the request path only bumps atomics (the `metrics` macros
//! allocate per call when labels are not literals).
//!
//! Each gateway owns its own series store ([`store`]) rather than installing a global recorder,
//! so that several gateways in one process (tests) never mix their counters; the store can
//! forget a removed source's or sink's series, so admin API churn does not grow `/metrics`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::Matcher;

pub mod sharded;
mod store;

pub const HTTP_REQUESTS: &str = "siemgate_http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "siemgate_http_request_duration_seconds";
pub const UNROUTED_REQUESTS: &str = "siemgate_unrouted_requests_total";
pub const REQUESTS_REJECTED: &str = "siemgate_requests_rejected_total";
pub const AUTH_FAILURES: &str = "siemgate_auth_failures_total";
pub const EVENTS_RECEIVED: &str = "siemgate_events_received_total";
pub const EVENTS_FILTERED: &str = "siemgate_events_filtered_total";
pub const EVENTS_UNRECOGNIZED: &str = "siemgate_events_unrecognized_total";
pub const DUPLICATES: &str = "siemgate_duplicate_requests_total";
pub const EVENTS_SUPPRESSED: &str = "siemgate_events_suppressed_total";
pub const ADMIN_REQUESTS: &str = "siemgate_admin_requests_total";
pub const EVENTS_DELIVERED: &str = "siemgate_events_delivered_total";
pub const EVENTS_FAILED: &str = "siemgate_events_failed_total";
pub const SINK_RETRIES: &str = "siemgate_sink_retries_total";
pub const QUEUE_EVENTS: &str = "siemgate_queue_events";
pub const QUEUE_BYTES: &str = "siemgate_queue_bytes";
pub const QUEUE_OLDEST_AGE: &str = "siemgate_queue_oldest_event_age_seconds";
pub const QUEUE_MAX_EVENTS: &str = "siemgate_queue_max_events";
pub const QUEUE_MAX_BYTES: &str = "siemgate_queue_max_bytes";
pub const FILE_TORN_TAIL_BYTES: &str = "siemgate_file_torn_tail_bytes_total";
pub const DEAD_LETTERS: &str = "siemgate_dead_letters_total";
pub const DEAD_LETTERS_WAITING: &str = "siemgate_dead_letters_waiting";
pub const DEAD_LETTER_REPLAYS: &str = "siemgate_dead_letter_replays_total";
pub const DEAD_LETTER_PURGES: &str = "siemgate_dead_letter_purges_total";
pub const SINK_EVENTS_FILTERED: &str = "siemgate_sink_events_filtered_total";
pub const SINK_TRUNCATIONS: &str = "siemgate_sink_truncations_total";
pub const SINK_RECONNECTS: &str = "siemgate_sink_reconnects_total";
pub const SINK_UP: &str = "siemgate_sink_up";
pub const QUEUE_TORN_BYTES: &str = "siemgate_queue_torn_bytes_total";
pub const QUEUE_RECOVERED: &str = "siemgate_queue_recovered_events_total";
pub const QUEUE_READ_ERRORS: &str = "siemgate_queue_read_errors_total";
pub const QUEUE_FSYNC_DURATION: &str = "siemgate_queue_fsync_duration_seconds";
pub const HEC_PENDING_ACK_EVENTS: &str = "siemgate_hec_pending_ack_events";
pub const HEC_ACK_TIMEOUTS: &str = "siemgate_hec_ack_timeouts_total";
pub const KAFKA_SINK_PRODUCE_DURATION: &str = "siemgate_kafka_sink_produce_duration_seconds";
pub const KAFKA_SINK_PRODUCE_ERRORS: &str = "siemgate_kafka_sink_produce_errors_total";
pub const CONNECTIONS_REFUSED: &str = "siemgate_connections_refused_total";
pub const CONNECTIONS_CLOSED: &str = "siemgate_connections_closed_total";
pub const CONNECTIONS_OPEN: &str = "siemgate_connections_open";
pub const KAFKA_PRODUCE_DURATION: &str = "siemgate_kafka_produce_duration_seconds";
pub const KAFKA_PRODUCE_ERRORS: &str = "siemgate_kafka_produce_errors_total";
pub const KAFKA_PRODUCE_INFLIGHT_BYTES: &str = "siemgate_kafka_produce_inflight_bytes";
pub const KAFKA_CONSUMER_LAG: &str = "siemgate_kafka_consumer_lag";
pub const KAFKA_REBALANCES: &str = "siemgate_kafka_rebalances_total";

/// The `kind` label of `siemgate_kafka_produce_errors_total`: what the brokers or librdkafka
/// said when an event was not taken (each pre-registered per Kafka-queued sink). `transport`
/// counts lost broker connections and `authentication` SASL logins the brokers refused (no
/// event fails with either: the producer holds them).
pub const KAFKA_PRODUCE_ERROR_KINDS: [&str; 7] = [
    "authorization",
    "authentication",
    "unknown_topic",
    "message_too_large",
    "local_queue_full",
    "transport",
    "other",
];

/// Status codes the hooks listener answers with, each pre-registered per source, and
/// [`CLIENT_CLOSED`].
pub const STATUS_CODES: [u16; 10] = [200, 400, 401, 403, 405, 408, 413, 499, 500, 503];

/// The `code` of a request that ended before it was answered: its sender closed the connection
/// or reset the stream while it was being handled (waiting on a disk or Kafka queue), or the
/// shutdown's grace period ended. No answer was sent; 499 is the code nginx logs for it.
pub const CLIENT_CLOSED: u16 = 499;

/// Auth failure reasons, each pre-registered per source.
pub const AUTH_REASONS: [&str; 7] = [
    "missing_credential",
    "invalid_credential",
    "malformed_credential",
    "timestamp_out_of_window",
    "ip_not_allowed",
    "client_cert_required",
    "client_cert_not_allowed",
];

/// Refusal reasons (the `reason` label of `siemgate_requests_rejected_total`), each
/// pre-registered per source; `server::reject` picks one for each refusal in its one match.
/// The last one, `internal`, stands for any label not listed.
pub const REJECT_REASONS: [&str; 24] = [
    "unknown_source",
    "method_not_allowed",
    "ip_not_allowed",
    "client_cert_required",
    "client_cert_not_allowed",
    "missing_credential",
    "invalid_credential",
    "malformed_credential",
    "timestamp_out_of_window",
    "body_too_large",
    "body_timeout",
    "body_read_failed",
    "body_budget_exhausted",
    "invalid_utf8",
    "malformed_json",
    "too_deep",
    "unexpected_shape",
    "too_many_events",
    "batch_too_large",
    "queue_full",
    "duplicate_in_flight",
    "queue_write_failed",
    "event_too_large",
    "internal",
];

/// Where `reason` is in [`REJECT_REASONS`] (`internal` if it is not there).
pub fn reject_reason_index(reason: &str) -> usize {
    REJECT_REASONS
        .iter()
        .position(|r| *r == reason)
        .unwrap_or(REJECT_REASONS.len() - 1)
}

/// Buckets for the wait for a request's delivery reports: a few milliseconds on a healthy
/// cluster (acks=all, linger 5 ms), up to `produce_timeout` (default 5 s) when brokers struggle.
const PRODUCE_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets for request latency: the ingest path answers in well under a millisecond when
/// healthy, so the buckets are fine at the low end.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

static METADATA: Metadata<'static> = Metadata::new("siemgate", Level::INFO, Some("siemgate"));

/// The series of one gateway, which `/metrics` renders.
pub struct Registry {
    recorder: store::Store,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub fn new() -> Registry {
        let recorder = store::Store::new(
            HashMap::from([
                (
                    Matcher::Full(HTTP_REQUEST_DURATION.to_owned()),
                    LATENCY_BUCKETS.to_vec(),
                ),
                (
                    Matcher::Full(KAFKA_PRODUCE_DURATION.to_owned()),
                    PRODUCE_BUCKETS.to_vec(),
                ),
            ]),
            // What every accepted request adds to (`server::ingest`, `dispatch`).
            &[HTTP_REQUESTS, EVENTS_RECEIVED, EVENTS_FILTERED],
        );
        let r = Registry { recorder };
        r.describe();
        r
    }

    fn describe(&self) {
        let c = |name: &'static str, unit: Option<Unit>, help: &'static str| {
            self.recorder
                .describe_counter(KeyName::from_const_str(name), unit, help.into());
        };
        c(
            HTTP_REQUESTS,
            None,
            "Webhook requests answered, by source and status code.",
        );
        c(
            UNROUTED_REQUESTS,
            None,
            "Requests to no configured source (404), by status code.",
        );
        c(
            EVENTS_SUPPRESSED,
            None,
            "Events of suppressed sources: verified and counted, not forwarded.",
        );
        c(
            ADMIN_REQUESTS,
            None,
            "Admin API requests answered, by route and status code.",
        );
        c(
            REQUESTS_REJECTED,
            None,
            "Webhook requests refused, by source and reason.",
        );
        c(
            AUTH_FAILURES,
            None,
            "Requests that failed sender verification, by source and reason.",
        );
        c(
            EVENTS_RECEIVED,
            None,
            "Events decoded from accepted requests, by source.",
        );
        c(
            EVENTS_FILTERED,
            None,
            "Events dropped on purpose by a source filter, by source.",
        );
        c(
            EVENTS_UNRECOGNIZED,
            None,
            "Events of accepted requests whose object carried none of the vendor's recognisable fields (forwarded with severity unknown), by source.",
        );
        c(
            DUPLICATES,
            None,
            "Requests answered from the de-duplication window without queuing, by source.",
        );
        c(
            EVENTS_DELIVERED,
            None,
            "Events a sink delivered to its destination, by sink.",
        );
        c(
            EVENTS_FAILED,
            None,
            "Events a sink could not deliver and gave up on, by sink.",
        );
        c(
            SINK_RETRIES,
            None,
            "Send attempts that failed and were retried, by sink.",
        );
        c(
            FILE_TORN_TAIL_BYTES,
            Some(Unit::Bytes),
            "Bytes of an unterminated last line cut from a file sink's file at open, by sink.",
        );
        c(
            DEAD_LETTERS,
            None,
            "Events a destination refused for good, written to the dead-letter file (or the log), by sink.",
        );
        c(
            DEAD_LETTER_REPLAYS,
            None,
            "Dead letters put back into their sink's queue through the admin API, by sink.",
        );
        c(
            DEAD_LETTER_PURGES,
            None,
            "Dead letters marked purged through the admin API (never to be replayed), by sink.",
        );
        self.recorder.describe_gauge(
            KeyName::from_const_str(DEAD_LETTERS_WAITING),
            None,
            "Entries of a sink's dead-letter file waiting for a replay or purge, by sink.".into(),
        );
        c(
            SINK_EVENTS_FILTERED,
            None,
            "Events of accepted requests a sink's filter left out, by sink.",
        );
        c(
            SINK_TRUNCATIONS,
            None,
            "Messages shortened to the sink's maximum message size, by sink.",
        );
        c(
            SINK_RECONNECTS,
            None,
            "Connections a sink opened again after losing one, by sink.",
        );
        c(
            QUEUE_READ_ERRORS,
            None,
            "Failed reads of queued events back from a disk queue (they stay on disk and are read again), by sink.",
        );
        c(
            QUEUE_RECOVERED,
            None,
            "Events a disk queue loaded back at start, undelivered or in flight at the stop (the in-flight ones may arrive twice), by sink.",
        );
        c(
            QUEUE_TORN_BYTES,
            Some(Unit::Bytes),
            "Bytes of a torn tail record cut from a disk queue at start (a crash mid-write), by sink.",
        );
        self.recorder.describe_histogram(
            KeyName::from_const_str(QUEUE_FSYNC_DURATION),
            Some(Unit::Seconds),
            "Time a disk queue's fsync took (one per group of requests), by sink.".into(),
        );
        c(
            HEC_ACK_TIMEOUTS,
            None,
            "HEC requests sent again because their indexer acknowledgement did not come in time, by sink.",
        );
        self.recorder.describe_histogram(
            KeyName::from_const_str(KAFKA_SINK_PRODUCE_DURATION),
            Some(Unit::Seconds),
            "Time a Kafka sink's batch took from the producer to its last delivery report, by sink."
                .into(),
        );
        c(
            KAFKA_SINK_PRODUCE_ERRORS,
            None,
            "Events a Kafka sink's brokers did not take, by sink and class (refused: dead letters; retried; held: authorization or unknown topic).",
        );
        c(
            CONNECTIONS_REFUSED,
            None,
            "Connections closed at once without being served, by listener and reason (per_ip_limit, at_capacity).",
        );
        c(
            CONNECTIONS_CLOSED,
            None,
            "Connections the server closed, by listener and reason (idle, max_age, evicted to make room).",
        );
        self.recorder.describe_gauge(
            KeyName::from_const_str(CONNECTIONS_OPEN),
            None,
            "Connections holding a slot, by listener.".into(),
        );
        self.recorder.describe_gauge(
            KeyName::from_const_str(HEC_PENDING_ACK_EVENTS),
            None,
            "Events sent to HEC and waiting for their indexer acknowledgement, by sink.".into(),
        );
        self.recorder.describe_gauge(
            KeyName::from_const_str(SINK_UP),
            None,
            "1 while the sink's destination accepts what it sends, 0 while it is failing.".into(),
        );
        self.recorder.describe_gauge(
            KeyName::from_const_str(QUEUE_EVENTS),
            None,
            "Events queued for a sink and not yet delivered.".into(),
        );
        self.recorder.describe_gauge(
            KeyName::from_const_str(QUEUE_OLDEST_AGE),
            Some(Unit::Seconds),
            "How long the oldest undelivered event of a sink has waited (0 when none), by sink."
                .into(),
        );
        self.recorder.describe_gauge(
            KeyName::from_const_str(QUEUE_BYTES),
            Some(Unit::Bytes),
            "Encoded bytes queued for a sink and not yet delivered.".into(),
        );
        c(
            KAFKA_PRODUCE_ERRORS,
            None,
            "Kafka-queued events the brokers or the producer refused (their requests answered 503), and lost broker connections (kind transport), by sink and kind.",
        );
        c(
            KAFKA_REBALANCES,
            None,
            "Consumer group rebalances a delivery worker took part in, by sink and kind (assign, revoke).",
        );
        self.recorder.describe_histogram(
            KeyName::from_const_str(KAFKA_PRODUCE_DURATION),
            Some(Unit::Seconds),
            "Time from handing a request's events to the Kafka producer to their last delivery report, by sink.".into(),
        );
        self.recorder.describe_gauge(
            KeyName::from_const_str(KAFKA_PRODUCE_INFLIGHT_BYTES),
            Some(Unit::Bytes),
            "Bytes handed to the Kafka producer whose delivery reports are still due, by sink."
                .into(),
        );
        self.recorder.describe_gauge(
            KeyName::from_const_str(KAFKA_CONSUMER_LAG),
            None,
            "Events of a sink's topic partition beyond what this delivery worker has delivered (high watermark minus the stored or committed offset), by sink and partition; refreshed every few seconds, for the partitions this worker owns.".into(),
        );
        self.recorder.describe_histogram(
            KeyName::from_const_str(HTTP_REQUEST_DURATION),
            Some(Unit::Seconds),
            "Time from request head to answer on the hooks listener, by source.".into(),
        );
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.recorder.render()
    }

    /// Forgets the series of every source `exists` says is gone (deleted through the admin
    /// API, or removed from the config file at a reload), so churn does not grow `/metrics`.
    pub fn retain_sources(&self, exists: impl Fn(&str) -> bool) -> usize {
        self.recorder.retain_labelled("source", exists)
    }

    /// Forgets every series of a sink that no longer exists (and has finished its queue).
    /// The value of a sink's counter `name` (for the admin API; not for the hot path).
    pub fn sink_counter(&self, name: &'static str, sink: &str) -> u64 {
        self.recorder
            .counter_value(&Self::key(name, &[("sink", sink)]))
    }

    pub fn remove_sink(&self, sink: &str) -> usize {
        self.recorder.retain_labelled("sink", |s| s != sink)
    }

    /// How many series exist (sources' and sinks' handles, admin routes, ...).
    pub fn series(&self) -> usize {
        self.recorder.len()
    }

    fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
        let labels: Vec<Label> = labels
            .iter()
            .map(|&(k, v)| Label::new(k, v.to_owned()))
            .collect();
        Key::from_parts(name, labels)
    }

    fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.recorder
            .register_counter(&Self::key(name, labels), &METADATA)
    }

    fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        self.recorder
            .register_gauge(&Self::key(name, labels), &METADATA)
    }

    fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        self.recorder
            .register_histogram(&Self::key(name, labels), &METADATA)
    }

    pub fn source(&self, source: &str) -> SourceMetrics {
        SourceMetrics {
            requests: STATUS_CODES.map(|code| {
                let code_label = code.to_string();
                let labels = [("source", source), ("code", code_label.as_str())];
                (code, self.counter(HTTP_REQUESTS, &labels))
            }),
            rejected: REJECT_REASONS.map(|reason| {
                self.counter(REQUESTS_REJECTED, &[("source", source), ("reason", reason)])
            }),
            auth_failures: AUTH_REASONS.map(|reason| {
                self.counter(AUTH_FAILURES, &[("source", source), ("reason", reason)])
            }),
            events_received: self.counter(EVENTS_RECEIVED, &[("source", source)]),
            events_filtered: self.counter(EVENTS_FILTERED, &[("source", source)]),
            events_unrecognized: self.counter(EVENTS_UNRECOGNIZED, &[("source", source)]),
            duplicates: self.counter(DUPLICATES, &[("source", source)]),
            events_suppressed: self.counter(EVENTS_SUPPRESSED, &[("source", source)]),
            duration: self.histogram(HTTP_REQUEST_DURATION, &[("source", source)]),
            reject_log: RejectLog::new(),
        }
    }

    /// Admin API requests by route and status code.
    pub fn admin_request(&self, route: &'static str, code: u16) -> Counter {
        let code = code.to_string();
        self.counter(ADMIN_REQUESTS, &[("route", route), ("code", code.as_str())])
    }

    /// Connection counters of one listener (`hooks`, `metrics`, `admin`).
    pub fn connections(&self, listener: &'static str) -> ConnMetrics {
        let refused = |reason| {
            self.counter(
                CONNECTIONS_REFUSED,
                &[("listener", listener), ("reason", reason)],
            )
        };
        let closed = |reason| {
            self.counter(
                CONNECTIONS_CLOSED,
                &[("listener", listener), ("reason", reason)],
            )
        };
        ConnMetrics {
            refused_per_ip: refused("per_ip_limit"),
            refused_at_capacity: refused("at_capacity"),
            evicted: closed("evicted"),
            closed_idle: closed("idle"),
            closed_max_age: closed("max_age"),
            open: self.gauge(CONNECTIONS_OPEN, &[("listener", listener)]),
        }
    }

    pub fn unrouted(&self) -> Counter {
        self.counter(UNROUTED_REQUESTS, &[("code", "404")])
    }

    pub fn sink(&self, sink: &str) -> SinkMetrics {
        SinkMetrics {
            delivered: self.counter(EVENTS_DELIVERED, &[("sink", sink)]),
            failed: self.counter(EVENTS_FAILED, &[("sink", sink)]),
            retries: self.counter(SINK_RETRIES, &[("sink", sink)]),
            queue_events: self.gauge(QUEUE_EVENTS, &[("sink", sink)]),
            queue_bytes: self.gauge(QUEUE_BYTES, &[("sink", sink)]),
            queue_oldest_age: self.gauge(QUEUE_OLDEST_AGE, &[("sink", sink)]),
            queue_max_events: self.gauge(QUEUE_MAX_EVENTS, &[("sink", sink)]),
            queue_max_bytes: self.gauge(QUEUE_MAX_BYTES, &[("sink", sink)]),
            torn_tail_bytes: self.counter(FILE_TORN_TAIL_BYTES, &[("sink", sink)]),
            filtered: self.counter(SINK_EVENTS_FILTERED, &[("sink", sink)]),
            dead_letters: self.counter(DEAD_LETTERS, &[("sink", sink)]),
            dead_letters_waiting: self.gauge(DEAD_LETTERS_WAITING, &[("sink", sink)]),
            dead_letter_replays: self.counter(DEAD_LETTER_REPLAYS, &[("sink", sink)]),
            dead_letter_purges: self.counter(DEAD_LETTER_PURGES, &[("sink", sink)]),
            truncations: self.counter(SINK_TRUNCATIONS, &[("sink", sink)]),
            reconnects: self.counter(SINK_RECONNECTS, &[("sink", sink)]),
            up: self.gauge(SINK_UP, &[("sink", sink)]),
            queue_torn_bytes: self.counter(QUEUE_TORN_BYTES, &[("sink", sink)]),
            queue_recovered: self.counter(QUEUE_RECOVERED, &[("sink", sink)]),
            queue_read_errors: self.counter(QUEUE_READ_ERRORS, &[("sink", sink)]),
            queue_fsync_seconds: self.histogram(QUEUE_FSYNC_DURATION, &[("sink", sink)]),
        }
    }
}

/// Handles of a sink whose queue is on Kafka: the producer's side (intake) and the
/// consumer's (delivery). Lag gauges come and go with the partitions assigned.
pub struct KafkaMetrics {
    pub produce_seconds: Histogram,
    produce_errors: [Counter; KAFKA_PRODUCE_ERROR_KINDS.len()],
    pub inflight_bytes: Gauge,
    pub assigned: Counter,
    pub revoked: Counter,
    registry: std::sync::Arc<Registry>,
    sink: String,
}

impl KafkaMetrics {
    /// Counts a produce error of `kind`, one of [`KAFKA_PRODUCE_ERROR_KINDS`] (else `other`).
    pub fn produce_error(&self, kind: &'static str) {
        let i = KAFKA_PRODUCE_ERROR_KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(KAFKA_PRODUCE_ERROR_KINDS.len() - 1);
        if let Some(c) = self.produce_errors.get(i) {
            c.increment(1);
        }
    }

    /// The lag gauge of one partition (registered on first use; not for the hot path).
    pub fn lag(&self, partition: i32) -> Gauge {
        let p = partition.to_string();
        self.registry.gauge(
            KAFKA_CONSUMER_LAG,
            &[("sink", &self.sink), ("partition", &p)],
        )
    }

    /// Forgets the lag of a partition this worker no longer owns (its new owner reports it).
    pub fn forget_lag(&self, partition: i32) {
        let p = partition.to_string();
        self.registry.recorder.remove(&Registry::key(
            KAFKA_CONSUMER_LAG,
            &[("sink", &self.sink), ("partition", &p)],
        ));
    }
}

impl Registry {
    pub fn kafka(self: &std::sync::Arc<Self>, sink: &str) -> KafkaMetrics {
        let rebalances = |kind| self.counter(KAFKA_REBALANCES, &[("sink", sink), ("kind", kind)]);
        KafkaMetrics {
            produce_seconds: self.histogram(KAFKA_PRODUCE_DURATION, &[("sink", sink)]),
            produce_errors: KAFKA_PRODUCE_ERROR_KINDS
                .map(|kind| self.counter(KAFKA_PRODUCE_ERRORS, &[("sink", sink), ("kind", kind)])),
            inflight_bytes: self.gauge(KAFKA_PRODUCE_INFLIGHT_BYTES, &[("sink", sink)]),
            assigned: rebalances("assign"),
            revoked: rebalances("revoke"),
            registry: self.clone(),
            sink: sink.to_owned(),
        }
    }
}

/// Handles only HEC sinks with indexer acknowledgement have.
pub struct HecAckMetrics {
    pub pending_events: Gauge,
    pub timeouts: Counter,
}

impl Registry {
    pub fn hec_acks(&self, sink: &str) -> HecAckMetrics {
        HecAckMetrics {
            pending_events: self.gauge(HEC_PENDING_ACK_EVENTS, &[("sink", sink)]),
            timeouts: self.counter(HEC_ACK_TIMEOUTS, &[("sink", sink)]),
        }
    }
}

/// Handles only Kafka sinks have.
pub struct KafkaSinkMetrics {
    pub produce_seconds: Histogram,
    pub refused: Counter,
    pub retried: Counter,
    pub held: Counter,
}

impl Registry {
    pub fn kafka_sink(&self, sink: &str) -> KafkaSinkMetrics {
        let errors = |class| {
            self.counter(
                KAFKA_SINK_PRODUCE_ERRORS,
                &[("sink", sink), ("class", class)],
            )
        };
        KafkaSinkMetrics {
            produce_seconds: self.histogram(KAFKA_SINK_PRODUCE_DURATION, &[("sink", sink)]),
            refused: errors("refused"),
            retried: errors("retried"),
            held: errors("held"),
        }
    }
}

/// Counters and the gauge of one listener's connections, registered once.
pub struct ConnMetrics {
    pub refused_per_ip: Counter,
    pub refused_at_capacity: Counter,
    pub evicted: Counter,
    pub closed_idle: Counter,
    pub closed_max_age: Counter,
    pub open: Gauge,
}

/// Handles for one source.
pub struct SourceMetrics {
    requests: [(u16, Counter); STATUS_CODES.len()],
    rejected: [Counter; REJECT_REASONS.len()],
    auth_failures: [Counter; AUTH_REASONS.len()],
    pub events_received: Counter,
    pub events_filtered: Counter,
    /// Events whose shape the vendor's decoder did not recognise.
    pub events_unrecognized: Counter,
    pub duplicates: Counter,
    pub events_suppressed: Counter,
    pub duration: Histogram,
    reject_log: RejectLog,
}

/// How often one source may log a refusal line for one reason: a flood of bad requests costs
/// one line per reason and interval, the next line saying how many were left out (the
/// `siemgate_requests_rejected_total` counter counts every one).
pub const REJECT_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// The refusal log limiter of one source: per reason, when a line was last written and how
/// many refusals since were not logged. Atomics only, so a flood does not contend on a lock.
struct RejectLog {
    epoch: Instant,
    /// Milliseconds after `epoch` (+1, so 0 means never) of the last line, per reason, and
    /// last ([`UNANSWERED_LOG`]) for requests that ended unanswered.
    last: [AtomicU64; REJECT_REASONS.len() + 1],
    unlogged: [AtomicU64; REJECT_REASONS.len() + 1],
}

/// [`RejectLog`]'s slot for requests that ended unanswered ([`CLIENT_CLOSED`]).
const UNANSWERED_LOG: usize = REJECT_REASONS.len();

impl RejectLog {
    fn new() -> RejectLog {
        RejectLog {
            epoch: Instant::now(),
            last: std::array::from_fn(|_| AtomicU64::new(0)),
            unlogged: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn permit(&self, reason: usize, now: Instant) -> Option<u64> {
        let (last, unlogged) = (self.last.get(reason)?, self.unlogged.get(reason)?);
        let now_ms = u64::try_from(now.saturating_duration_since(self.epoch).as_millis())
            .unwrap_or(u64::MAX - 1)
            + 1;
        let interval = u64::try_from(REJECT_LOG_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        let prev = last.load(Ordering::Relaxed);
        let due = prev == 0 || now_ms.saturating_sub(prev) >= interval;
        if !due
            || last
                .compare_exchange(prev, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            unlogged.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(unlogged.swap(0, Ordering::Relaxed))
    }
}

impl SourceMetrics {
    pub fn request(&self, code: u16) {
        if let Some((_, c)) = self.requests.iter().find(|(c, _)| *c == code) {
            c.increment(1);
        }
    }

    /// Counts a refusal for `reason`, one of [`REJECT_REASONS`].
    pub fn rejected(&self, reason: &'static str) {
        if let Some(c) = self.rejected.get(reject_reason_index(reason)) {
            c.increment(1);
        }
    }

    /// Whether a refusal of this kind may be logged now: `Some(n)` with the number of refusals
    /// of that kind left out since the last line, or `None` (counted for the next line).
    pub fn reject_log_permit(&self, reason: &'static str) -> Option<u64> {
        self.reject_log
            .permit(reject_reason_index(reason), Instant::now())
    }

    /// [`reject_log_permit`](Self::reject_log_permit) for a request that ended unanswered.
    pub fn unanswered_log_permit(&self) -> Option<u64> {
        self.reject_log.permit(UNANSWERED_LOG, Instant::now())
    }

    pub fn auth_failure(&self, reason: &'static str) {
        if let Some(i) = AUTH_REASONS.iter().position(|r| *r == reason) {
            self.auth_failures[i].increment(1);
        }
    }
}

/// Handles for one sink.
pub struct SinkMetrics {
    pub delivered: Counter,
    pub failed: Counter,
    pub retries: Counter,
    pub queue_events: Gauge,
    pub queue_bytes: Gauge,
    pub queue_oldest_age: Gauge,
    /// The bounds the sink's queue runs with (`[sinks.queue] max_events`, `max_bytes`), so an
    /// alert can compare the depth with them; set once when the queue is built (a reload keeps
    /// the running queue, and its bounds, until the next start).
    pub queue_max_events: Gauge,
    pub queue_max_bytes: Gauge,
    pub torn_tail_bytes: Counter,
    pub filtered: Counter,
    pub dead_letters: Counter,
    /// Entries of the dead-letter file waiting for a replay or purge.
    pub dead_letters_waiting: Gauge,
    /// Dead letters put back into the queue by the admin API.
    pub dead_letter_replays: Counter,
    /// Dead letters marked purged by the admin API.
    pub dead_letter_purges: Counter,
    pub truncations: Counter,
    pub reconnects: Counter,
    pub up: Gauge,
    pub queue_torn_bytes: Counter,
    pub queue_recovered: Counter,
    pub queue_read_errors: Counter,
    pub queue_fsync_seconds: Histogram,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_lines_are_limited_per_reason_and_report_what_was_left_out() {
        let log = RejectLog::new();
        let t0 = log.epoch;
        assert_eq!(log.permit(0, t0), Some(0));
        for _ in 0..5 {
            assert_eq!(log.permit(0, t0 + Duration::from_millis(500)), None);
        }
        // Another reason has its own budget.
        assert_eq!(log.permit(3, t0 + Duration::from_millis(500)), Some(0));
        assert_eq!(log.permit(0, t0 + Duration::from_millis(1000)), Some(5));
        assert_eq!(log.permit(0, t0 + Duration::from_millis(1100)), None);
        assert_eq!(log.permit(0, t0 + Duration::from_millis(2500)), Some(1));
        // An index out of range is never logged (and never panics).
        assert_eq!(log.permit(usize::MAX, t0), None);
    }
}
