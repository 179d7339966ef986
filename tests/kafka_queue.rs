//! The Kafka-backed queue end to end, against librdkafka's mock cluster (real Kafka protocol
//! on 127.0.0.1 ports, in this process): a request is answered 200 only once the brokers
//! acknowledged its events, which then reach the sink through the sink's consumer group; a
//! broker outage longer than `produce_timeout` answers 503 with Retry-After and loses nothing
//! that was accepted, and a sender that hangs up while its request waits for the brokers is
//! counted under code 499, its event still delivered; retriable produce errors are retried; an
//! authorization error refuses the request (503) and says why; an event the brokers refuse as
//! too large is answered 413; wrong SASL credentials (a broker that refuses every login: the mock
//! speaks no SASL) answer 503 and `/readyz` says authentication failed, the password shown
//! nowhere.
#![cfg(feature = "kafka")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/kafka.rs"]
mod kafka_mock;
#[path = "common/sasl_broker.rs"]
mod sasl_broker;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

const AUTH: (&str, &str) = ("authorization", "Bearer tok");
/// Bound for waits on deliveries; generous for a noisy 2-core machine.
const BOUND: Duration = Duration::from_secs(30);

/// A gateway whose file sink `out` (at `{dir}/out.ndjson`) has a Kafka queue on `brokers`;
/// the source `demo` routes to it.
fn config(brokers: &str, produce_timeout: &str) -> String {
    let brokers = toml_list(brokers.split(','));
    format!(
        r#"{PLAIN_SERVER}
[[sinks]]
id = "out"
type = "file"
path = "{{dir}}/out.ndjson"
fsync = "never"
[sinks.queue]
type = "kafka"
brokers = [{brokers}]
produce_timeout = "{produce_timeout}"
[sinks.batch]
linger = "0ms"

[[sources]]
id = "demo"
vendor = "generic"
sinks = ["out"]
auth = {{ scheme = "token", prefix = "Bearer ", secret = "tok" }}
"#
    )
}

/// The gateway's logs, shown with a failing test's output.
fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("siemgate=debug,librdkafka=info")
        .with_test_writer()
        .try_init();
}

fn event(id: &str) -> String {
    format!(r#"{{"id":"{id}","severity":"high","title":"kafka {id}"}}"#)
}

fn ids(gw: &TestGateway) -> BTreeSet<String> {
    gw.lines()
        .iter()
        .filter_map(|l| l["id"].as_str().map(str::to_owned))
        .collect()
}

async fn wait_for_ids(gw: &TestGateway, want: &[&str]) {
    let start = Instant::now();
    loop {
        let got = ids(gw);
        if want.iter().all(|w| got.contains(*w)) {
            return;
        }
        assert!(
            start.elapsed() < BOUND,
            "never delivered {want:?}; the sink has {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn mock(
    brokers: i32,
    partitions: i32,
) -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let m = MockCluster::new(brokers).unwrap();
    m.create_topic("siemgate.out", partitions, brokers.min(3))
        .unwrap();
    m
}

/// The topic's high watermarks summed over its partitions: how many events the brokers hold.
fn topic_events(bootstrap: &str, partitions: i32) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    (0..partitions)
        .map(|p| {
            c.fetch_watermarks("siemgate.out", p, Duration::from_secs(5))
                .unwrap()
                .1
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_comes_only_once_the_brokers_hold_the_events_which_reach_the_sink_keyed_by_source() {
    let m = mock(3, 3);
    let bootstrap = m.bootstrap_servers();
    let gw = start(&config(&bootstrap, "10s")).await;
    let body = format!("[{},{}]", event("k-1"), event("k-2"));
    let a = send(gw.addr(), post(gw.addr(), "demo", &[AUTH], body)).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.json()["accepted"], 2);
    // At the moment of the 200 the brokers hold both events.
    assert_eq!(topic_events(&bootstrap, 3), 2);
    wait_for_ids(&gw, &["k-1", "k-2"]).await;

    // A consumer of its own reads them with the source as key and the ids in headers.
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "test-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    reader.subscribe(&["siemgate.out"]).unwrap();
    let mut seen = BTreeSet::new();
    let start = Instant::now();
    while seen.len() < 2 && start.elapsed() < BOUND {
        if let Some(Ok(msg)) = reader.poll(Duration::from_millis(100)) {
            assert_eq!(msg.key(), Some(&b"demo"[..]));
            let headers = msg.headers().expect("headers");
            let mut h = std::collections::BTreeMap::new();
            for x in headers.iter() {
                h.insert(
                    x.key.to_owned(),
                    String::from_utf8(x.value.unwrap().to_vec()).unwrap(),
                );
            }
            assert_eq!(h["source"], "demo");
            assert_eq!(h["vendor"], "generic");
            let line: serde_json::Value = serde_json::from_slice(msg.payload().unwrap()).unwrap();
            assert_eq!(line["id"].as_str().unwrap(), h["event_id"]);
            seen.insert(h["event_id"].clone());
        }
    }
    assert_eq!(seen, BTreeSet::from(["k-1".to_owned(), "k-2".to_owned()]));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_down_longer_than_produce_timeout_answers_503_and_loses_nothing_accepted() {
    let m = mock(1, 1);
    let gw = start(&config(&m.bootstrap_servers(), "1s")).await;
    let a = send(gw.addr(), post(gw.addr(), "demo", &[AUTH], event("before"))).await;
    assert_eq!(a.status, StatusCode::OK);
    wait_for_ids(&gw, &["before"]).await;

    m.broker_down(1).unwrap();
    let a = send(gw.addr(), post(gw.addr(), "demo", &[AUTH], event("during"))).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", a.body);
    assert!(a.headers.contains_key("retry-after"));
    assert_eq!(a.json()["error"], "queue_write_failed");
    // Well past the produce timeout: librdkafka must not have expired the event it holds.
    tokio::time::sleep(Duration::from_secs(4)).await;
    m.broker_up(1).unwrap();
    // The refused request's event still goes out once the broker is back, and so does the
    // sender's retry (at least once).
    wait_for_ids(&gw, &["during"]).await;
    let a = send(gw.addr(), post(gw.addr(), "demo", &[AUTH], event("after"))).await;
    assert_eq!(a.status, StatusCode::OK);
    wait_for_ids(&gw, &["before", "during", "after"]).await;
    gw.stop().await;
}

/// A sender that hangs up while its request waits for the brokers gets no answer; the request
/// is counted under code 499 (it would otherwise be counted nowhere), and its event, already
/// handed to the producer, still goes out once the broker is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_that_hangs_up_while_its_request_waits_is_counted_as_499() {
    logs();
    let m = mock(1, 1);
    let gw = start(&config(&m.bootstrap_servers(), "20s")).await;
    let a = send(gw.addr(), post(gw.addr(), "demo", &[AUTH], event("warm"))).await;
    assert_eq!(a.status, StatusCode::OK);
    let count =
        |text: &str, name: &str, labels: &[(&str, &str)]| metric(text, name, labels).unwrap_or(0.0);
    let closed = [("source", "demo"), ("code", "499")];
    let text = gw.metrics_text().await;
    assert_eq!(count(&text, "siemgate_http_requests_total", &closed), 0.0);

    m.broker_down(1).unwrap();
    let body = event("gone");
    let head = format!(
        "POST /hooks/demo HTTP/1.1\r\nhost: {}\r\nauthorization: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        gw.addr(),
        AUTH.1,
        body.len()
    );
    let mut sender = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut sender, format!("{head}{body}").as_bytes())
        .await
        .unwrap();
    // The request has been read and decoded once its event is counted; it then waits for the
    // brokers (up to the 20 s produce timeout).
    let start = Instant::now();
    while count(
        &gw.metrics_text().await,
        "siemgate_events_received_total",
        &[("source", "demo")],
    ) < 2.0
    {
        assert!(start.elapsed() < BOUND, "the request was never read");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(sender);
    let text = loop {
        let text = gw.metrics_text().await;
        if count(&text, "siemgate_http_requests_total", &closed) > 0.0 {
            break text;
        }
        assert!(
            start.elapsed() < BOUND,
            "the unanswered request was never counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(count(&text, "siemgate_http_requests_total", &closed), 1.0);
    for code in ["200", "503"] {
        assert_eq!(
            count(
                &text,
                "siemgate_http_requests_total",
                &[("source", "demo"), ("code", code)]
            ),
            if code == "200" { 1.0 } else { 0.0 },
            "code {code}"
        );
    }

    m.broker_up(1).unwrap();
    wait_for_ids(&gw, &["warm", "gone"]).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retriable_produce_errors_are_retried_until_the_events_are_acknowledged() {
    let m = mock(3, 1);
    let gw = start(&config(&m.bootstrap_servers(), "20s")).await;
    // Warm up (producer id, metadata) so the injected errors hit real produce requests.
    let a = send(gw.addr(), post(gw.addr(), "demo", &[AUTH], event("warm"))).await;
    assert_eq!(a.status, StatusCode::OK);
    m.request_errors(
        RDKafkaApiKey::Produce,
        &kafka_mock::RETRIABLE_PRODUCE_ERRORS,
    );
    let a = send(
        gw.addr(),
        post(gw.addr(), "demo", &[AUTH], event("retried")),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    wait_for_ids(&gw, &["warm", "retried"]).await;
    gw.stop().await;
}

/// A gateway on a one-broker mock cluster whose first request (`warm`) went through, so that
/// the producer has its id and the topic's metadata, and whose next produce request the
/// brokers answer with `error`.
async fn next_produce_fails(
    error: RDKafkaRespErr,
) -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    TestGateway,
) {
    logs();
    let m = mock(1, 1);
    let gw = start(&config(&m.bootstrap_servers(), "10s")).await;
    let a = send(gw.addr(), post(gw.addr(), "demo", &[AUTH], event("warm"))).await;
    assert_eq!(a.status, StatusCode::OK);
    m.request_errors(RDKafkaApiKey::Produce, &[error]);
    (m, gw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorization_error_refuses_the_request_and_says_why() {
    let (_m, gw) =
        next_produce_fails(RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED).await;
    let a = send(gw.addr(), post(gw.addr(), "demo", &[AUTH], event("denied"))).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", a.body);
    assert!(a.headers.contains_key("retry-after"));
    // /readyz names the sink and the brokers' reason while the refusal stands.
    let ready = gw.readyz_becomes(StatusCode::SERVICE_UNAVAILABLE).await;
    let reasons = ready["reasons"].to_string();
    assert!(
        reasons.contains("sink out") && reasons.to_lowercase().contains("authoriz"),
        "{reasons}"
    );
    // Once the brokers authorize again, the sender's retries go through (the producer looks
    // at the topic again within its metadata refresh interval).
    let start = Instant::now();
    loop {
        let a = send(gw.addr(), post(gw.addr(), "demo", &[AUTH], event("denied"))).await;
        if a.status == StatusCode::OK {
            break;
        }
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", a.body);
        assert!(start.elapsed() < BOUND, "never accepted again");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    wait_for_ids(&gw, &["warm", "denied"]).await;
    gw.readyz_becomes(StatusCode::OK).await;
    gw.stop().await;
}

type Posts = (
    std::net::SocketAddr,
    Vec<(String, http::Request<http_body_util::Full<bytes::Bytes>>)>,
);

/// `count` requests of one event each, over the three sources, to `gw`; their ids in `sent`.
fn post_some(gw: &TestGateway, count: usize, sent: &mut Vec<String>, n: &mut usize) -> Posts {
    let mut reqs = Vec::new();
    for _ in 0..count {
        let id = format!("r-{n}");
        let source = ["demo", "demo1", "demo2"][*n % 3];
        *n += 1;
        reqs.push((id.clone(), post(gw.addr(), source, &[AUTH], event(&id))));
        sent.push(id);
    }
    (gw.addr(), reqs)
}

/// Two nodes, each intake and delivery worker, in the sink's one consumer group: a node
/// joining and a node leaving (rebalances) while events flow lose none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_delivery_workers_in_one_group_lose_nothing_across_rebalances() {
    let m = mock(3, 4);
    let mut cfg = config(&m.bootstrap_servers(), "10s");
    // Two more sources: keys spread the events over the partitions.
    for id in ["demo1", "demo2"] {
        cfg.push_str(&format!(
            "[[sources]]\nid = \"{id}\"\nvendor = \"generic\"\nsinks = [\"out\"]\n\
             auth = {{ scheme = \"token\", prefix = \"Bearer \", secret = \"tok\" }}\n"
        ));
    }
    let a = start(&cfg).await;
    let mut sent = Vec::new();
    let mut n = 0;
    for (addr, reqs) in [post_some(&a, 15, &mut sent, &mut n)] {
        for (id, r) in reqs {
            assert_eq!(send(addr, r).await.status, StatusCode::OK, "{id}");
        }
    }
    // A is in the group and delivering before B joins.
    let first: Vec<String> = sent.clone();
    let start_wait = Instant::now();
    while !first.iter().all(|id| ids(&a).contains(id)) {
        assert!(
            start_wait.elapsed() < Duration::from_secs(60),
            "A never delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let b = start(&cfg).await;
    for (addr, reqs) in [
        post_some(&a, 10, &mut sent, &mut n),
        post_some(&b, 10, &mut sent, &mut n),
    ] {
        for (id, r) in reqs {
            assert_eq!(send(addr, r).await.status, StatusCode::OK, "{id}");
        }
    }
    // Everything so far is delivered by one member or the other (the join's rebalance is
    // done) before A leaves.
    let start_wait = Instant::now();
    while !sent
        .iter()
        .all(|id| ids(&a).contains(id) || ids(&b).contains(id))
    {
        assert!(
            start_wait.elapsed() < Duration::from_secs(60),
            "lost across the join"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let a_dir = a.stop().await;
    for (addr, reqs) in [post_some(&b, 10, &mut sent, &mut n)] {
        for (id, r) in reqs {
            assert_eq!(send(addr, r).await.status, StatusCode::OK, "{id}");
        }
    }
    let start_wait = Instant::now();
    loop {
        let mut got = ids(&b);
        got.extend(
            read_lines(&a_dir.path().join("out.ndjson"))
                .iter()
                .filter_map(|l| l["id"].as_str().map(str::to_owned)),
        );
        let missing: Vec<_> = sent.iter().filter(|id| !got.contains(*id)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            start_wait.elapsed() < Duration::from_secs(60),
            "never delivered {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.stop().await;
}

/// `kill -9` of the real binary while requests flow: after a restart, every event that got a
/// 200 reaches the sink at least once (from the brokers, through the consumer group's last
/// commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_event_that_got_a_200() {
    let m = mock(3, 2);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&m.bootstrap_servers(), "10s").replace("{dir}", dir.path().to_str().unwrap());
    let log = &[("SIEMGATE_LOG", "info")];
    let mut proc = common::binary::Process::start(dir.path(), &cfg, log);
    let [addr] = proc.wait_ready(["hooks"]);
    let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut senders = Vec::new();
    for client in 0..4 {
        let (accepted, stop) = (accepted.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            for i in 0..500 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let id = format!("c{client}-{i}");
                // A request cut by the kill panics inside its own task: not accepted.
                let r = tokio::spawn(send(addr, post(addr, "demo", &[AUTH], event(&id)))).await;
                if matches!(r, Ok(ref a) if a.status == StatusCode::OK) {
                    accepted.lock().unwrap().push(id);
                }
            }
        }));
    }
    // Kill once some events are through, with requests still coming.
    let start_wait = Instant::now();
    while accepted.lock().unwrap().len() < 40 {
        assert!(start_wait.elapsed() < BOUND, "no request accepted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proc.kill9();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for s in senders {
        let _ = s.await;
    }
    let accepted = accepted.lock().unwrap().clone();
    let mut proc = common::binary::Process::spawn(dir.path(), log);
    proc.wait_ready(["hooks"]);
    let out = dir.path().join("out.ndjson");
    let start_wait = Instant::now();
    loop {
        let got: BTreeSet<String> = read_lines(&out)
            .iter()
            .filter_map(|l| l["id"].as_str().map(str::to_owned))
            .collect();
        let missing: Vec<_> = accepted.iter().filter(|id| !got.contains(*id)).collect();
        if missing.is_empty() {
            break;
        }
        if start_wait.elapsed() > Duration::from_secs(90) {
            proc.kill_and_panic(&format!(
                "{} accepted events never delivered: {missing:?}",
                missing.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proc.signal("-TERM");
    proc.wait_exit(Duration::from_secs(30));
}

/// The brokers refuse an event as too large (MSG_SIZE_TOO_LARGE, their own limit): the request
/// is answered 413 `event_too_large` naming the sink and the size refusal, with no Retry-After
/// (sending it again cannot help), counted as a rejection and a produce error; `/readyz` stays
/// ready, the refused event never reaches the sink, and the next requests are accepted and
/// delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_brokers_refuse_as_too_large_answers_413_and_nothing_else_is_lost() {
    let (_m, gw) = next_produce_fails(RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE).await;
    let a = send(gw.addr(), post(gw.addr(), "demo", &[AUTH], event("huge"))).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{:?}", a.body);
    assert!(!a.headers.contains_key("retry-after"));
    let body = a.json();
    assert_eq!(body["error"], "event_too_large");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("sink out") && detail.to_lowercase().contains("too large"),
        "{detail}"
    );
    let text = gw.metrics_text().await;
    assert_eq!(
        metric(
            &text,
            "siemgate_requests_rejected_total",
            &[("source", "demo"), ("reason", "event_too_large")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "siemgate_kafka_produce_errors_total",
            &[("sink", "out"), ("kind", "message_too_large")]
        ),
        Some(1.0)
    );
    assert_eq!(
        gw.readyz().await.0,
        StatusCode::OK,
        "one event's size is not a broker problem"
    );

    let a = send(gw.addr(), post(gw.addr(), "demo", &[AUTH], event("after"))).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    wait_for_ids(&gw, &["warm", "after"]).await;
    assert!(
        !ids(&gw).contains("huge"),
        "a refused event is not delivered"
    );
    gw.stop().await;
}

/// Wrong SASL credentials, against a broker on 127.0.0.1 that refuses every login
/// (`common/sasl_broker.rs`): a request is answered 503 with Retry-After once
/// `produce_timeout` passes; `/readyz` is 503 and says the brokers refuse the login
/// (authentication failed), not only that no broker is reachable;
/// `siemgate_kafka_produce_errors_total{kind="authentication"}` counts the refusals; the
/// password is in no log line (debug included) and not on `/readyz`. The real binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_sasl_credentials_answer_503_and_readyz_says_authentication_failed() {
    const PASSWORD: &str = "Wr0ng-kafka-pa55word";
    let broker = sasl_broker::SaslRefusingBroker::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&broker.bootstrap(), "1s").replace(
        "produce_timeout = \"1s\"\n",
        &format!(
            "produce_timeout = \"1s\"\n[sinks.queue.sasl]\nmechanism = \"SCRAM-SHA-512\"\n\
             username = \"siemgate\"\npassword = \"{PASSWORD}\"\n"
        ),
    );
    assert!(cfg.contains("[sinks.queue.sasl]"));
    let log = &[("SIEMGATE_LOG", "debug")];
    let mut proc = common::binary::Process::start(dir.path(), &cfg, log);
    let [addr, ops] = proc.wait_ready(["hooks", "metrics"]);

    let a = send(addr, post(addr, "demo", &[AUTH], event("refused-login"))).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", a.body);
    assert!(a.headers.contains_key("retry-after"));
    let reasons = readyz_refuses_saying(ops, "authentication failed", BOUND).await;
    assert!(
        reasons.contains("sink out") && reasons.contains("SASL login"),
        "{reasons}"
    );
    assert!(!reasons.contains(PASSWORD), "{reasons}");
    let text = metrics_text(ops).await;
    let refused = metric(
        &text,
        "siemgate_kafka_produce_errors_total",
        &[("sink", "out"), ("kind", "authentication")],
    );
    assert!(refused.is_some_and(|n| n >= 1.0), "{refused:?}");
    assert!(broker.refusals() >= 1);
    assert!(
        broker.mechanisms().iter().all(|m| m == "SCRAM-SHA-512"),
        "{:?}",
        broker.mechanisms()
    );
    let stderr = proc.stderr_text();
    assert!(stderr.contains("authentication"), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "the password was logged");
    proc.kill9();
}
