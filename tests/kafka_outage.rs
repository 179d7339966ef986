//! Every broker down for longer than librdkafka's old default `message.timeout.ms` (300 s),
//! with an intake node and a delivery worker as real processes on the mock cluster.
//!
//! Why this test takes five and a half minutes: the failure it guards against happens only
//! after 300 s. Producers that keep librdkafka's default expire what they hold after 5 minutes
//! of outage and report it failed (Vector lost events exactly there); siemgate sets
//! `message.timeout.ms = 0`, so nothing it holds expires however long the brokers are away.
//! A shorter outage would pass with or without that setting. The mock cluster runs in this
//! process and cannot fast-forward librdkafka's clock, so the outage is real time. The test
//! has its own binary so that nothing else runs beside it in this process, and posts only a
//! few requests during the outage (one every ~100 s).
#![cfg(feature = "kafka")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::cluster::*;
use common::{post, send};
use http::StatusCode;

/// Longer than librdkafka's former default `message.timeout.ms` of 300 s.
const OUTAGE: Duration = Duration::from_secs(320);
const BROKERS: i32 = 3;
const BOUND: Duration = Duration::from_secs(90);

async fn readyz_until(node: &Node, want: StatusCode, says: &str) {
    let start = Instant::now();
    loop {
        let (status, body) = node.readyz().await;
        if status == want && body.contains(says) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "readiness {status}: {body}; wanted {want} saying {says:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broker_down_past_five_minutes_answers_503_loses_nothing_and_flows_again() {
    let m = mock(BROKERS, 2);
    let cfg = config(&m.bootstrap_servers(), &file_sink(), "2s", 50);
    let deliver = Node::start(&cfg, "deliver");
    let intake = Node::start(&cfg, "intake");
    let hooks = intake.hooks();
    let mut accepted = Vec::new();
    for i in 0..6 {
        let id = format!("before-{i}");
        let a = send(hooks, post(hooks, SOURCES[i % 3], &[AUTH], event(&id))).await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
        accepted.push(id);
    }
    wait_all_arrive("before the outage", &accepted, BOUND, || deliver.sink_ids()).await;

    for b in 1..=BROKERS {
        m.broker_down(b).unwrap();
    }
    let down_at = Instant::now();
    // A few requests spread over the outage: each is answered 503 with Retry-After once its
    // produce_timeout (2 s) is over; the producer keeps its event.
    let mut refused = Vec::new();
    for (i, at) in [0u64, 100, 200, 310].into_iter().enumerate() {
        let due = Duration::from_secs(at);
        if let Some(wait) = due.checked_sub(down_at.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        let id = format!("during-{i}");
        let a = send(hooks, post(hooks, SOURCES[i % 3], &[AUTH], event(&id))).await;
        assert_eq!(
            a.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{id}: {:?}",
            a.body
        );
        assert!(
            a.headers.contains_key("retry-after"),
            "{id}: {:?}",
            a.headers
        );
        assert_eq!(a.json()["error"], "queue_write_failed");
        refused.push(id);
        if i == 0 {
            // Both nodes say they reach no broker.
            readyz_until(&intake, StatusCode::SERVICE_UNAVAILABLE, "no Kafka broker").await;
            readyz_until(&deliver, StatusCode::SERVICE_UNAVAILABLE, "no Kafka broker").await;
        }
    }
    if let Some(rest) = OUTAGE.checked_sub(down_at.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    assert!(down_at.elapsed() >= OUTAGE);
    // Past 300 s nothing the producer holds was given up: no delivery report failed.
    let text = intake.metrics_text().await;
    for kind in [
        "authorization",
        "unknown_topic",
        "message_too_large",
        "local_queue_full",
        "other",
    ] {
        assert_eq!(
            common::metric(
                &text,
                "siemgate_kafka_produce_errors_total",
                &[("sink", "out"), ("kind", kind)]
            ),
            Some(0.0),
            "produce errors of kind {kind} during the outage"
        );
    }
    let held = common::metric(
        &text,
        "siemgate_kafka_produce_inflight_bytes",
        &[("sink", "out")],
    )
    .unwrap();
    assert!(
        held > 0.0,
        "the producer still holds the refused requests' events"
    );

    for b in 1..=BROKERS {
        m.broker_up(b).unwrap();
    }
    // Everything flows again: the events refused during the outage (held, never expired) go
    // out, both nodes are ready, and new requests are accepted and delivered.
    wait_all_arrive("held through the outage", &refused, BOUND, || {
        deliver.sink_ids()
    })
    .await;
    readyz_until(&intake, StatusCode::OK, "ready").await;
    readyz_until(&deliver, StatusCode::OK, "ready").await;
    for i in 0..6 {
        let id = format!("after-{i}");
        let a = send(hooks, post(hooks, SOURCES[i % 3], &[AUTH], event(&id))).await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
        accepted.push(id);
    }
    wait_all_arrive("after the outage", &accepted, BOUND, || deliver.sink_ids()).await;
    assert_eq!(
        intake
            .metric("siemgate_kafka_produce_inflight_bytes", &[("sink", "out")])
            .await,
        Some(0.0)
    );
}
