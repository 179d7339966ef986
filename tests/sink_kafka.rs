//! The Kafka sink (`type = "kafka"`) end to end, against librdkafka's mock cluster (real Kafka
//! protocol on 127.0.0.1 ports, in this process), read back with a real consumer:
//!
//! * events posted to a hook arrive on the templated topic with the configured key, the
//!   `event_id`, `vendor` and `source` headers, and the event as the value (the real binary);
//! * every compression (zstd, lz4, gzip, none) is read back by a consumer, with each key choice;
//! * an event over `max_message_bytes` goes to the dead letters with the reason while the rest
//!   of its batch is delivered; so does one the brokers refuse as too large;
//! * retriable produce errors are retried and everything arrives;
//! * a topic authorization error holds the queue (nothing delivered, nothing dropped), `/readyz`
//!   names the sink and the reason, and once the brokers authorize again everything arrives;
//! * so does a topic the brokers do not know, until it is created;
//! * and so do wrong SASL credentials (a broker that refuses every login: the mock speaks no
//!   SASL): `/readyz` names the sink and says authentication failed, the password shown nowhere.
#![cfg(feature = "kafka")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/kafka.rs"]
mod kafka_mock;
#[path = "common/sasl_broker.rs"]
mod sasl_broker;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use serde_json::Value;

const AUTH: (&str, &str) = ("authorization", "Bearer tok");
/// Bound for waits on deliveries; generous for a noisy 2-core machine.
const BOUND: Duration = Duration::from_secs(30);

type Mock = MockCluster<'static, rdkafka::producer::DefaultProducerContext>;

/// A message as a consumer read it.
#[derive(Debug, Clone)]
struct Got {
    topic: String,
    key: Option<String>,
    headers: BTreeMap<String, String>,
    value: Value,
}

/// Reads `topics` from the start until `want` messages came or [`BOUND`] passed (then
/// returns what came), off the runtime's threads.
async fn consume(bootstrap: &str, topics: &[&str], want: usize) -> Vec<Got> {
    let bootstrap = bootstrap.to_owned();
    let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
    // A group of its own each time: every read starts from the beginning, and never waits for
    // an earlier reader's membership to expire.
    static READERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = READERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tokio::task::spawn_blocking(move || {
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", format!("reader-{n}"))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        reader.subscribe(&names).unwrap();
        let mut got = Vec::new();
        let start = Instant::now();
        while got.len() < want && start.elapsed() < BOUND {
            let Some(Ok(m)) = reader.poll(Duration::from_millis(100)) else {
                continue;
            };
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| {
                            let v = String::from_utf8(x.value.unwrap().to_vec()).unwrap();
                            (x.key.to_owned(), v)
                        })
                        .collect()
                })
                .unwrap_or_default();
            got.push(Got {
                topic: m.topic().to_owned(),
                key: m.key().map(|k| String::from_utf8(k.to_vec()).unwrap()),
                headers,
                value: serde_json::from_slice(m.payload().unwrap()).unwrap(),
            });
        }
        got
    })
    .await
    .unwrap()
}

fn ids(got: &[Got]) -> BTreeSet<String> {
    got.iter()
        .map(|g| g.value["id"].as_str().unwrap().to_owned())
        .collect()
}

fn event(id: &str) -> String {
    format!(r#"{{"id":"{id}","severity":"high","title":"kafka {id}"}}"#)
}

fn source(id: &str, sinks: &str) -> String {
    format!(
        "[[sources]]\nid = \"{id}\"\nvendor = \"generic\"\nsinks = {sinks}\n\
         auth = {{ scheme = \"token\", prefix = \"Bearer \", secret = \"tok\" }}\n"
    )
}

/// A gateway with one Kafka sink `bus` on `brokers` and topic `topic`, `extra` keys in the
/// sink's table, and the source `demo` routing to it; dead letters in `{dir}/dead.ndjson`.
fn config(brokers: &str, topic: &str, extra: &str) -> String {
    format!(
        r#"{PLAIN_SERVER}
[[sinks]]
id = "bus"
type = "kafka"
brokers = ["{brokers}"]
topic = "{topic}"
dead_letter_path = "{{dir}}/dead.ndjson"
{extra}
[sinks.batch]
linger = "20ms"

{}"#,
        source("demo", "[\"bus\"]")
    )
}

fn mock(topics: &[&str]) -> Mock {
    let m = MockCluster::new(1).unwrap();
    for t in topics {
        m.create_topic(t, 1, 1).unwrap();
    }
    m
}

/// A mock cluster with `topic`, its bootstrap address, and a gateway ([`config`]) producing to
/// it.
async fn gateway(topic: &str, extra: &str) -> (Mock, String, TestGateway) {
    let m = mock(&[topic]);
    let bootstrap = m.bootstrap_servers();
    let gw = start(&config(&bootstrap, topic, extra)).await;
    (m, bootstrap, gw)
}

/// Posts one event and reads it from `topic`: the producer has its id and the topic's
/// metadata, so that errors injected next hit real produce requests.
async fn warm_up(gw: &TestGateway, bootstrap: &str, topic: &str) {
    accepted(gw.addr(), "demo", event("warm")).await;
    assert_eq!(consume(bootstrap, &[topic], 1).await.len(), 1);
}

/// Two seconds on (past the tests' `max_retry_duration` of 1 s), the sink's queue still holds
/// `queued` events and nothing went to the dead letters.
async fn still_held(gw: &TestGateway, queued: f64) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let queue = gw.sink_metric("siemgate_queue_events", "bus").await;
    assert_eq!(queue, Some(queued), "held in the queue");
    let dead = gw.sink_metric("siemgate_dead_letters_total", "bus").await;
    assert_eq!(dead, Some(0.0), "nothing dead-lettered");
}

async fn accepted(addr: std::net::SocketAddr, source: &str, body: String) {
    let a = send(addr, post(addr, source, &[AUTH], body)).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
}

/// The real binary: two sources' events go to the topic their template names, keyed by source,
/// with the headers and the normalized event as the value, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_on_the_templated_topic_with_key_headers_and_value() {
    let topics = ["siem.generic.demo.alert", "siem.generic.other.alert"];
    let m = mock(&topics);
    let bootstrap = m.bootstrap_servers();
    let mut cfg = config(&bootstrap, "siem.{vendor}.{source}.{kind}", "");
    cfg.push_str(&source("other", "[\"bus\"]"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg.replace("{dir}", dir.path().to_str().unwrap());
    let mut proc = common::binary::Process::start(dir.path(), &cfg, &[("SIEMGATE_LOG", "info")]);
    let [addr] = proc.wait_ready(["hooks"]);
    accepted(addr, "demo", format!("[{},{}]", event("d-1"), event("d-2"))).await;
    accepted(addr, "other", event("o-1")).await;

    let got = consume(&bootstrap, &topics, 3).await;
    assert_eq!(got.len(), 3, "{got:#?}");
    for g in &got {
        let id = g.value["id"].as_str().unwrap();
        let src = if id.starts_with('d') { "demo" } else { "other" };
        assert_eq!(g.topic, format!("siem.generic.{src}.alert"));
        assert_eq!(g.key.as_deref(), Some(src));
        assert_eq!(g.headers["event_id"], id);
        assert_eq!(g.headers["vendor"], "generic");
        assert_eq!(g.headers["source"], src);
        assert_eq!(g.value["source"], src);
        assert_eq!(g.value["title"], format!("kafka {id}"));
        assert_eq!(g.value["raw"]["id"], id, "the vendor's alert rides along");
    }
    assert_eq!(
        ids(&got),
        BTreeSet::from(["d-1", "d-2", "o-1"].map(String::from))
    );
    proc.signal("-TERM");
    assert!(proc.wait_exit(BOUND).success());
}

/// One source to four sinks, one per compression: a consumer reads every topic back, each
/// message keyed as its sink says (event id, none, source).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_is_read_back_with_each_key_choice() {
    let codecs = [
        ("zstd", "event_id"),
        ("lz4", "none"),
        ("gzip", "source"),
        ("none", "source"),
    ];
    let topics: Vec<String> = codecs.iter().map(|(c, _)| format!("c-{c}")).collect();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let m = mock(&names);
    let bootstrap = m.bootstrap_servers();
    let mut cfg = PLAIN_SERVER.to_owned();
    for (c, key) in codecs {
        cfg.push_str(&format!(
            "[[sinks]]\nid = \"k-{c}\"\ntype = \"kafka\"\nbrokers = [\"{bootstrap}\"]\n\
             topic = \"c-{c}\"\ncompression = \"{c}\"\nkey = \"{key}\"\n"
        ));
    }
    let sinks: Vec<String> = codecs.iter().map(|(c, _)| format!("k-{c}")).collect();
    cfg.push_str(&source(
        "demo",
        &format!("[{}]", toml_list(sinks.iter().map(String::as_str))),
    ));
    let gw = start(&cfg).await;
    // Repetitive values, so that each codec has something to compress.
    let body = format!(
        "[{}]",
        (0..20)
            .map(|i| event(&format!("z-{i}")))
            .collect::<Vec<_>>()
            .join(",")
    );
    accepted(gw.addr(), "demo", body).await;
    let want: BTreeSet<String> = (0..20).map(|i| format!("z-{i}")).collect();
    for (c, key) in codecs {
        let got = consume(&bootstrap, &[&format!("c-{c}")], 20).await;
        assert_eq!(ids(&got), want, "{c}");
        for g in &got {
            let expected = match key {
                "event_id" => g.value["id"].as_str().map(str::to_owned),
                "none" => None,
                _ => Some("demo".to_owned()),
            };
            assert_eq!(g.key, expected, "{c}, key = {key}");
        }
    }
    gw.stop().await;
}

/// An event over `max_message_bytes` goes to the dead letters with the reason; the rest of its
/// batch (before and after it) is delivered, and the counters say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_event_goes_to_the_dead_letters_and_the_rest_is_delivered() {
    let (_m, bootstrap, gw) = gateway("small", "max_message_bytes = 2000").await;
    let big = format!(
        r#"{{"id":"big","severity":"high","title":"{}"}}"#,
        "x".repeat(3000)
    );
    let body = format!("[{},{big},{}]", event("s-1"), event("s-2"));
    accepted(gw.addr(), "demo", body).await;

    let got = consume(&bootstrap, &["small"], 2).await;
    assert_eq!(ids(&got), BTreeSet::from(["s-1", "s-2"].map(String::from)));
    gw.sink_metric_until("siemgate_dead_letters_total", "bus", |v| v == Some(1.0))
        .await;
    let dead = read_lines(&gw.dir.path().join("dead.ndjson"));
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0]["event_id"], "big");
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("too large") && reason.contains("max_message_bytes = 2000"),
        "{reason}"
    );
    gw.sink_metric_until("siemgate_events_delivered_total", "bus", |v| v == Some(2.0))
        .await;
    assert_eq!(
        gw.sink_metric("siemgate_events_failed_total", "bus").await,
        Some(1.0)
    );
    assert_eq!(
        gw.readyz().await.0,
        StatusCode::OK,
        "one refused event is not a failing sink"
    );
    gw.stop().await;
}

/// The brokers refuse a produce as too large (MSG_SIZE_TOO_LARGE: their own limit, below the
/// sink's `max_message_bytes`): that event goes to the dead letters with a reason naming the
/// size refusal, the sink is neither held nor failing, and the events after it are delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_brokers_refuse_as_too_large_goes_to_the_dead_letters() {
    let (m, bootstrap, gw) = gateway("sized", "").await;
    warm_up(&gw, &bootstrap, "sized").await;
    m.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );
    accepted(gw.addr(), "demo", event("too-big")).await;
    gw.sink_metric_until("siemgate_dead_letters_total", "bus", |v| v == Some(1.0))
        .await;
    let dead = read_lines(&gw.dir.path().join("dead.ndjson"));
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0]["event_id"], "too-big");
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("too large") && reason.contains("brokers refused"),
        "{reason}"
    );
    accepted(
        gw.addr(),
        "demo",
        format!("[{},{}]", event("after-1"), event("after-2")),
    )
    .await;
    let got = consume(&bootstrap, &["sized"], 3).await;
    assert_eq!(
        ids(&got),
        BTreeSet::from(["warm", "after-1", "after-2"].map(String::from))
    );
    gw.sink_metric_until("siemgate_events_delivered_total", "bus", |v| v == Some(3.0))
        .await;
    assert_eq!(
        gw.readyz().await.0,
        StatusCode::OK,
        "one refused event is not a failing sink"
    );
    gw.stop().await;
}

/// Produce errors the brokers call retriable are retried (by librdkafka, within the delivery
/// timeout): everything arrives, nothing goes to the dead letters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retriable_produce_errors_are_retried_and_everything_arrives() {
    let (m, bootstrap, gw) = gateway("retry", "").await;
    warm_up(&gw, &bootstrap, "retry").await;
    m.request_errors(
        RDKafkaApiKey::Produce,
        &kafka_mock::RETRIABLE_PRODUCE_ERRORS,
    );
    accepted(
        gw.addr(),
        "demo",
        format!("[{},{}]", event("r-1"), event("r-2")),
    )
    .await;
    accepted(gw.addr(), "demo", event("r-3")).await;
    let got = consume(&bootstrap, &["retry"], 4).await;
    assert_eq!(
        ids(&got),
        BTreeSet::from(["warm", "r-1", "r-2", "r-3"].map(String::from))
    );
    gw.sink_metric_until("siemgate_events_delivered_total", "bus", |v| v == Some(4.0))
        .await;
    assert_eq!(
        gw.sink_metric("siemgate_dead_letters_total", "bus").await,
        Some(0.0)
    );
    gw.stop().await;
}

/// TOPIC_AUTHORIZATION_FAILED on every produce: the queue is held (nothing reaches the topic,
/// nothing is dropped or dead-lettered, even past `max_retry_duration`), `/readyz` names the sink and the reason; once the
/// brokers authorize again, everything queued meanwhile arrives and the sink is ready again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorization_error_holds_the_queue_and_readyz_names_the_sink() {
    // A retryable failure would be given up on after 1 s; a held queue never is.
    let (m, bootstrap, gw) = gateway("guarded", "max_retry_duration = \"1s\"").await;
    warm_up(&gw, &bootstrap, "guarded").await;
    m.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 1000],
    );
    accepted(
        gw.addr(),
        "demo",
        format!("[{},{}]", event("h-1"), event("h-2")),
    )
    .await;
    let ready = gw.readyz_becomes(StatusCode::SERVICE_UNAVAILABLE).await;
    let reasons = ready["reasons"].to_string();
    assert!(
        reasons.contains("sink bus: destination failing")
            && reasons.to_lowercase().contains("authorization failed"),
        "{reasons}"
    );
    accepted(gw.addr(), "demo", event("h-3")).await;
    still_held(&gw, 3.0).await;
    let held = metric(
        &gw.metrics_text().await,
        "siemgate_kafka_sink_produce_errors_total",
        &[("sink", "bus"), ("class", "held")],
    );
    assert!(held.is_some_and(|n| n >= 1.0), "{held:?}");

    m.clear_request_errors(RDKafkaApiKey::Produce);
    let got = consume(&bootstrap, &["guarded"], 4).await;
    assert_eq!(
        ids(&got),
        BTreeSet::from(["warm", "h-1", "h-2", "h-3"].map(String::from))
    );
    gw.readyz_becomes(StatusCode::OK).await;
    gw.sink_metric_until("siemgate_queue_events", "bus", |v| v == Some(0.0))
        .await;
    assert!(!gw.dir.path().join("dead.ndjson").exists());
    gw.stop().await;
}

/// A topic the brokers do not know: `/readyz` names the sink from the start, the events wait in
/// the queue (none dropped or dead-lettered), and they arrive once the topic is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_topic_holds_the_queue_until_it_is_created() {
    let m = mock(&[]);
    let bootstrap = m.bootstrap_servers();
    let gw = start(&config(&bootstrap, "later", "max_retry_duration = \"1s\"")).await;
    let ready = gw.readyz_becomes(StatusCode::SERVICE_UNAVAILABLE).await;
    let reasons = ready["reasons"].to_string();
    assert!(
        reasons.contains("sink bus: destination failing") && reasons.contains("later"),
        "{reasons}"
    );
    accepted(
        gw.addr(),
        "demo",
        format!("[{},{}]", event("u-1"), event("u-2")),
    )
    .await;
    still_held(&gw, 2.0).await;
    m.create_topic("later", 1, 1).unwrap();
    let got = consume(&bootstrap, &["later"], 2).await;
    assert_eq!(ids(&got), BTreeSet::from(["u-1", "u-2"].map(String::from)));
    gw.readyz_becomes(StatusCode::OK).await;
    gw.stop().await;
}

/// Wrong SASL credentials, against a broker on 127.0.0.1 that refuses every login
/// (`common/sasl_broker.rs`): the events are held (nothing dropped or dead-lettered, even past
/// `max_retry_duration`), `/readyz` names the sink and says authentication failed, and the
/// password is in no log line (debug included) and not on `/readyz`. The real binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_sasl_credentials_hold_the_queue_and_readyz_says_authentication_failed() {
    const PASSWORD: &str = "Wr0ng-sink-pa55word";
    let broker = sasl_broker::SaslRefusingBroker::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "delivery_timeout = \"2s\"\nmax_retry_duration = \"1s\"\n[sinks.sasl]\n\
         mechanism = \"PLAIN\"\nusername = \"siemgate\"\npassword = \"{PASSWORD}\"\n"
    );
    let cfg = config(&broker.bootstrap(), "bus-events", &extra);
    let log = &[("SIEMGATE_LOG", "debug")];
    let mut proc = common::binary::Process::start(dir.path(), &cfg, log);
    let [addr, ops] = proc.wait_ready(["hooks", "metrics"]);
    accepted(addr, "demo", format!("[{},{}]", event("l-1"), event("l-2"))).await;

    let reasons = readyz_refuses_saying(ops, "authentication failed", BOUND).await;
    assert!(
        reasons.contains("sink bus: destination failing") && reasons.contains("SASL login"),
        "{reasons}"
    );
    assert!(!reasons.contains(PASSWORD), "{reasons}");
    // Past `delivery_timeout` and `max_retry_duration`: still held, nothing dead-lettered.
    poll_until("a delivery timed out and was held", BOUND, || async {
        let text = metrics_text(ops).await;
        metric(
            &text,
            "siemgate_kafka_sink_produce_errors_total",
            &[("sink", "bus"), ("class", "held")],
        )
        .is_some_and(|n| n >= 2.0)
    })
    .await;
    let text = metrics_text(ops).await;
    assert_eq!(
        metric(&text, "siemgate_queue_events", &[("sink", "bus")]),
        Some(2.0),
        "held in the queue"
    );
    assert_eq!(
        metric(&text, "siemgate_dead_letters_total", &[("sink", "bus")]),
        Some(0.0)
    );
    assert!(broker.refusals() >= 1);
    assert!(broker.mechanisms().iter().all(|m| m == "PLAIN"));
    let stderr = proc.stderr_text();
    assert!(!stderr.contains(PASSWORD), "the password was logged");
    proc.kill9();
}
