//! A siemgate cluster on Kafka, end to end: intake nodes (`serve --role intake`) and delivery
//! workers (`serve --role deliver`) as separate real processes sharing librdkafka's mock
//! cluster on 127.0.0.1.
//!
//! * what a 200 from an intake node promises survives `kill -9` of the intake node and of a
//!   delivery worker mid-batch (duplicates only from the batch in flight);
//! * two delivery workers in one group: a join and a leave while delivering lose nothing, and
//!   the group's committed offsets never pass an event the sink does not have;
//! * a split role refuses a sink whose queue is not Kafka, naming it;
//! * the Kafka metrics move: produce latency, errors and in-flight bytes on the intake side;
//!   rebalances and consumer lag on the delivery side; and readiness follows the role;
//! * a delivery worker replays its dead letters through the sink's topic.
#![cfg(feature = "kafka")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/http_rx.rs"]
mod http_rx;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use common::binary;
use common::cluster::*;
use common::{post, send};
use http::StatusCode;
use http_rx::{Receiver, Reply};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

/// Bound on waits for deliveries: a delivery worker killed with `kill -9` keeps its
/// partitions until the group's session timeout (10 s) ends; generous for a noisy machine.
const BOUND: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intake_node_and_a_delivery_node_split_the_work() {
    let m = mock(3, 2);
    let cfg = config(&m.bootstrap_servers(), &file_sink(), "10s", 50);
    let deliver = Node::start(&cfg, "deliver");
    let intake = Node::start(&cfg, "intake");
    assert!(
        deliver.proc.stderr_text().contains("no hooks listener"),
        "{}",
        deliver.proc.stderr_text()
    );
    let mut sent = Vec::new();
    for i in 0..9 {
        let id = format!("split-{i}");
        let a = send(
            intake.hooks(),
            post(intake.hooks(), SOURCES[i % 3], &[AUTH], event(&id)),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
        sent.push(id);
    }
    wait_all_arrive("delivery node", &sent, BOUND, || deliver.sink_ids()).await;
    // The intake node delivers nothing itself: its sink file never appears.
    assert!(
        !intake.dir.path().join("out.ndjson").exists(),
        "the intake node wrote to the sink"
    );
    // Both are ready: the intake with its hooks listener, the delivery node without one.
    assert_eq!(intake.readyz().await.0, StatusCode::OK);
    let (status, body) = deliver.readyz().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Delivered once each.
    let got = deliver.sink_ids();
    assert_eq!(got.len(), sent.len(), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_role_refuses_a_sink_whose_queue_is_not_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{}\n[[sinks]]\nid = \"local\"\ntype = \"file\"\npath = \"{{dir}}/o.ndjson\"\n\
         [sinks.queue]\ntype = \"disk\"\n\n[[sources]]\nid = \"demo\"\nvendor = \"generic\"\n\
         sinks = [\"local\"]\nauth = {{ scheme = \"token\", secret = \"tok\" }}\n",
        common::PLAIN_SERVER
    );
    let path = binary::write_config(dir.path(), &cfg);
    let path = path.to_str().unwrap();
    for role in ["intake", "deliver"] {
        for cmd in ["serve", "check"] {
            let r = binary::run(dir.path(), &[cmd, "--config", path, "--role", role], &[]);
            assert!(!r.status.success(), "{cmd} --role {role}: {}", r.all());
            let want =
                format!("--role {role} needs every sink's queue to be kafka; sink \"local\" has a disk queue");
            assert!(r.all().contains(&want), "{cmd} --role {role}: {}", r.all());
        }
    }
    // The same config runs whole.
    let r = binary::run(
        dir.path(),
        &["check", "--config", path, "--role", "all"],
        &[],
    );
    assert!(r.status.success(), "{}", r.all());
}

/// Events of every request the HTTP receiver got (the sink's NDJSON batches), in order,
/// duplicates included.
fn received_ids(rx: &Receiver) -> Vec<String> {
    rx.requests()
        .iter()
        .flat_map(|r| {
            r.body
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_slice(l).unwrap();
                    v["id"].as_str().unwrap().to_owned()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `kill -9` of a delivery worker while a batch is at the destination (the receiver holds
/// each batch 200 ms before its 200), under a bounded load; another worker takes over. Every
/// event that got a 200 arrives, and what arrives twice is at most the batch in flight and
/// the one before it (acknowledged, its commit possibly still on its way): 2 × max_events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_delivery_worker_mid_batch_redelivers_only_the_batch_in_flight() {
    const MAX_EVENTS: usize = 10;
    let m = mock(3, 2);
    let rx = Receiver::start(Vec::new()).await;
    rx.set_default(Reply::delayed(200, Duration::from_millis(200)));
    let cfg = config(
        &m.bootstrap_servers(),
        &http_sink(&rx.url("/in")),
        "10s",
        MAX_EVENTS,
    );
    let mut first = Node::start(&cfg, "deliver");
    let intake = Node::start(&cfg, "intake");
    let load = Load::start(intake.hooks(), "k", 3, 100, Duration::from_millis(5));
    // Kill once several batches went through, with a batch at the receiver and more queued.
    let start = Instant::now();
    while rx.count() < 5 {
        assert!(start.elapsed() < BOUND, "the first worker never delivered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.proc.kill9();
    let accepted = load.join().await;
    assert!(accepted.len() > 100, "only {} accepted", accepted.len());
    let _second = Node::start(&cfg, "deliver");
    wait_all_arrive("after the kill", &accepted, BOUND, || received_ids(&rx)).await;
    let got = received_ids(&rx);
    let unique: BTreeSet<&String> = got.iter().collect();
    let duplicates = got.len() - unique.len();
    assert!(
        duplicates <= 2 * MAX_EVENTS,
        "{duplicates} events arrived twice; at most the batch in flight and the one before \
         ({} events) may",
        2 * MAX_EVENTS
    );
}

/// `kill -9` of an intake node while requests flow: every event it answered 200 for reaches
/// the delivery worker's sink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_an_intake_node_under_load_loses_no_event_that_got_a_200() {
    let m = mock(3, 2);
    let cfg = config(&m.bootstrap_servers(), &file_sink(), "10s", 50);
    let deliver = Node::start(&cfg, "deliver");
    let mut intake = Node::start(&cfg, "intake");
    let load = Load::start(intake.hooks(), "i", 4, 400, Duration::ZERO);
    load.wait_accepted(60).await;
    intake.proc.kill9();
    let accepted = load.stop().await;
    wait_all_arrive("after the intake's kill", &accepted, BOUND, || {
        deliver.sink_ids()
    })
    .await;
}

/// Two delivery workers in the sink's group while an intake node takes a bounded load: the
/// second joins mid-stream, then the first leaves (SIGTERM). Nothing accepted is lost, and at
/// every look the group's committed offset of each partition has every event below it at one
/// of the sinks (read the offsets first, the sinks after: a sink only grows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_while_delivering_loses_nothing_and_commits_only_what_is_delivered() {
    const PARTITIONS: i32 = 4;
    let m = mock(3, PARTITIONS);
    let bootstrap = m.bootstrap_servers();
    let cfg = config(&bootstrap, &file_sink(), "10s", 20);
    let mut a = Node::start(&cfg, "deliver");
    let intake = Node::start(&cfg, "intake");
    let load = Load::start(intake.hooks(), "r", 4, 150, Duration::from_millis(10));
    let mut looks: Vec<(Vec<i64>, BTreeSet<String>)> = Vec::new();
    let mut look = |a: Option<&Node>, b: Option<&Node>| {
        let offsets = committed(&bootstrap, PARTITIONS);
        let mut have: BTreeSet<String> = BTreeSet::new();
        for n in [a, b].into_iter().flatten() {
            have.extend(n.sink_ids());
        }
        looks.push((offsets, have));
    };
    load.wait_accepted(100).await;
    look(Some(&a), None);
    let b = Node::start(&cfg, "deliver");
    // B joins: partitions move while events flow.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        look(Some(&a), Some(&b));
    }
    load.wait_accepted(350).await;
    a.stop();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        look(Some(&a), Some(&b));
    }
    let accepted = load.join().await;
    wait_all_arrive("across the rebalances", &accepted, BOUND, || {
        let mut ids = a.sink_ids();
        ids.extend(b.sink_ids());
        ids
    })
    .await;
    look(Some(&a), Some(&b));
    // Both members delivered: the partitions really were shared.
    assert!(!b.sink_ids().is_empty(), "B never got a partition");

    let topic = topic_ids(&bootstrap, PARTITIONS);
    let mut committed_any = false;
    for (i, (offsets, have)) in looks.iter().enumerate() {
        for (p, &c) in offsets.iter().enumerate() {
            committed_any |= c > 0;
            for (o, id) in topic[p].iter().enumerate().take(c as usize) {
                assert!(
                    have.contains(id),
                    "look {i}: partition {p} committed at {c}, but offset {o} ({id}) was not \
                     at any sink"
                );
            }
        }
    }
    assert!(committed_any, "nothing was ever committed");
    // At the end everything is committed: a restart would deliver nothing again.
    let last = committed(&bootstrap, PARTITIONS);
    let ends: Vec<i64> = topic.iter().map(|p| p.len() as i64).collect();
    let start = Instant::now();
    let mut last = last;
    while last != ends {
        assert!(
            start.elapsed() < BOUND,
            "committed {last:?}, topic ends at {ends:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        last = committed(&bootstrap, PARTITIONS);
    }
}

fn sum_lag(text: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("siemgate_kafka_consumer_lag{") && l.contains("sink=\"out\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The Kafka metrics move with what happens: on the intake node, produce latency per request,
/// bytes held by the producer while the broker is down, produce errors by kind (a lost
/// broker, an authorization refusal); on the delivery worker, rebalances and the lag of its
/// partitions while its destination refuses, back to 0 once it accepts. Readiness follows:
/// the worker is not ready while it reaches no broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_metrics_move_with_production_consumption_and_rebalances() {
    let m = mock(1, 2);
    let rx = Receiver::start(Vec::new()).await;
    rx.set_default(Reply::status(503));
    let cfg = config(&m.bootstrap_servers(), &http_sink(&rx.url("/in")), "1s", 50);
    let deliver = Node::start(&cfg, "deliver");
    let intake = Node::start(&cfg, "intake");
    let hooks = intake.hooks();
    for i in 0..6 {
        let id = format!("m-{i}");
        let a = send(hooks, post(hooks, SOURCES[i % 3], &[AUTH], event(&id))).await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    }
    let count = intake
        .metric(
            "siemgate_kafka_produce_duration_seconds_count",
            &[("sink", "out")],
        )
        .await;
    assert_eq!(count, Some(6.0), "one sample per request");
    assert_eq!(
        intake
            .metric("siemgate_kafka_produce_inflight_bytes", &[("sink", "out")])
            .await,
        Some(0.0)
    );

    // The worker joined its group, and its destination refuses: the lag is the 6 events.
    let start = Instant::now();
    loop {
        let text = deliver.metrics_text().await;
        let assigned = common::metric(
            &text,
            "siemgate_kafka_rebalances_total",
            &[("sink", "out"), ("kind", "assign")],
        );
        if assigned >= Some(1.0) && sum_lag(&text) == 6.0 {
            break;
        }
        assert!(
            start.elapsed() < BOUND,
            "no assignment or lag 6; metrics:\n{}",
            text.lines()
                .filter(|l| l.contains("kafka"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The destination accepts again: delivered, stored, and the lag falls to 0.
    rx.set_default(Reply::status(200));
    let start = Instant::now();
    loop {
        let text = deliver.metrics_text().await;
        if sum_lag(&text) == 0.0 && text.contains("siemgate_kafka_consumer_lag{") {
            break;
        }
        assert!(start.elapsed() < BOUND, "the lag never fell to 0");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The broker goes down: a request answers 503 once its produce_timeout is over, and the
    // producer holds its bytes (it never expires them) until the broker is back.
    m.broker_down(1).unwrap();
    let a = send(hooks, post(hooks, "demo", &[AUTH], event("m-down"))).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", a.body);
    let held = intake
        .metric("siemgate_kafka_produce_inflight_bytes", &[("sink", "out")])
        .await
        .unwrap();
    assert!(held > 0.0, "the producer holds the event's bytes: {held}");
    let start = Instant::now();
    loop {
        let lost = intake
            .metric(
                "siemgate_kafka_produce_errors_total",
                &[("sink", "out"), ("kind", "transport")],
            )
            .await;
        let (status, body) = deliver.readyz().await;
        if lost >= Some(1.0)
            && status == StatusCode::SERVICE_UNAVAILABLE
            && body.contains("reaches no Kafka broker")
        {
            break;
        }
        assert!(
            start.elapsed() < BOUND,
            "lost connections {lost:?}; worker readiness {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    m.broker_up(1).unwrap();
    let start = Instant::now();
    loop {
        let held = intake
            .metric("siemgate_kafka_produce_inflight_bytes", &[("sink", "out")])
            .await;
        let (status, _) = deliver.readyz().await;
        if held == Some(0.0) && status == StatusCode::OK {
            break;
        }
        assert!(
            start.elapsed() < BOUND,
            "still held {held:?} bytes, worker {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_all_arrive("the held event", &["m-down".to_owned()], BOUND, || {
        received_ids(&rx)
    })
    .await;

    // The brokers refuse the topic: counted as an authorization error.
    m.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
    );
    let a = send(hooks, post(hooks, "demo", &[AUTH], event("m-denied"))).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", a.body);
    assert_eq!(
        intake
            .metric(
                "siemgate_kafka_produce_errors_total",
                &[("sink", "out"), ("kind", "authorization")],
            )
            .await,
        Some(1.0)
    );
    // Every kind is there from the start, at 0 until it happens.
    let text = intake.metrics_text().await;
    let kinds: HashMap<&str, Option<f64>> = ["unknown_topic", "message_too_large", "other"]
        .into_iter()
        .map(|k| {
            (
                k,
                common::metric(
                    &text,
                    "siemgate_kafka_produce_errors_total",
                    &[("sink", "out"), ("kind", k)],
                ),
            )
        })
        .collect();
    assert!(kinds.values().all(Option::is_some), "{kinds:?}");
}

/// Dead letters are written where events are delivered: a delivery worker's replay (admin
/// API) puts them back on the topic, and the group delivers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_worker_replays_its_dead_letters_through_the_topic() {
    const ADMIN: &str = "cluster-admin-token";
    let m = mock(1, 1);
    let rx = Receiver::start(Vec::new()).await;
    rx.set_default(Reply::status(400));
    let mut sink = http_sink(&rx.url("/in"));
    sink.push_str("dead_letter_path = '{dir}/dead.ndjson'\n");
    let mut cfg = config(&m.bootstrap_servers(), &sink, "10s", 50);
    cfg.push_str(&format!(
        "\n[admin]\nlisten = \"127.0.0.1:0\"\n[[admin.tokens]]\nname = \"ops\"\ntoken = \"{ADMIN}\"\n"
    ));
    let deliver = Node::start(&cfg, "deliver");
    let intake = Node::start(&cfg, "intake");
    let hooks = intake.hooks();
    let a = send(hooks, post(hooks, "demo", &[AUTH], event("dl-1"))).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let start = Instant::now();
    while deliver
        .metric("siemgate_dead_letters_waiting", &[("sink", "out")])
        .await
        != Some(1.0)
    {
        assert!(start.elapsed() < BOUND, "never dead-lettered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rx.set_default(Reply::status(200));
    let admin = deliver.admin.unwrap();
    let req = http::Request::post(format!(
        "http://{admin}/api/v1/sinks/out/dead-letters/replay"
    ))
    .header("authorization", format!("Bearer {ADMIN}"))
    .header("content-type", "application/json")
    .body(http_body_util::Full::new(bytes::Bytes::from_static(
        br#"{"all":true}"#,
    )))
    .unwrap();
    let r = send(admin, req).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.json()["replayed"], 1);
    let start = Instant::now();
    loop {
        let delivered: Vec<String> = rx
            .accepted()
            .iter()
            .flat_map(|r| {
                r.body
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(|l| {
                        serde_json::from_slice::<serde_json::Value>(l).unwrap()["id"]
                            .as_str()
                            .unwrap()
                            .to_owned()
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        if delivered == ["dl-1"] {
            break;
        }
        assert!(start.elapsed() < BOUND, "replay delivered {delivered:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Nodes without traffic stay ready past several statistics reports: an idle producer or
/// consumer still counts as reaching the brokers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_nodes_of_both_roles_stay_ready() {
    let m = mock(3, 2);
    let cfg = config(&m.bootstrap_servers(), &file_sink(), "10s", 50);
    let deliver = Node::start(&cfg, "deliver");
    let intake = Node::start(&cfg, "intake");
    // Two statistics intervals (5 s each) and some.
    tokio::time::sleep(Duration::from_secs(12)).await;
    for node in [&intake, &deliver] {
        let (status, body) = node.readyz().await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

/// The role is the process's: a reload (SIGHUP) that adds a sink without a Kafka queue to an
/// intake node is refused, naming the sink, and the node goes on with its running config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adding_a_sink_without_a_kafka_queue_is_refused_in_a_split_role() {
    let m = mock(1, 1);
    let cfg = config(&m.bootstrap_servers(), &file_sink(), "10s", 50);
    let deliver = Node::start(&cfg, "deliver");
    let intake = Node::start(&cfg, "intake");
    let bad = format!(
        "{cfg}\n[[sinks]]\nid = \"local\"\ntype = \"file\"\npath = \"{{dir}}/local.ndjson\"\n"
    );
    binary::write_config(intake.dir.path(), &bad);
    intake.proc.signal("-HUP");
    let start = Instant::now();
    loop {
        let log = intake.proc.stderr_text();
        let refusal = log.lines().any(|l| {
            l.contains("config reload refused")
                && l.contains("--role intake needs every sink's queue to be kafka")
                && l.contains("local")
                && l.contains("has a memory queue")
        });
        if refusal {
            break;
        }
        assert!(start.elapsed() < BOUND, "no refusal in the log:\n{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hooks = intake.hooks();
    let a = send(hooks, post(hooks, "demo", &[AUTH], event("after-reload"))).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    wait_all_arrive(
        "after the refused reload",
        &["after-reload".to_owned()],
        BOUND,
        || deliver.sink_ids(),
    )
    .await;
}
