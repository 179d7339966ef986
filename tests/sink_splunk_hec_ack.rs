//! HEC indexer acknowledgement end to end: vendor payloads are POSTed to `/hooks/prisma` of a
//! real gateway on 127.0.0.1 whose `splunk_hec` sink has `[sinks.acknowledgements] enabled =
//! true`; the loopback collector (`common/hec.rs`) gives every 200 an `ackId` and answers
//! `POST /services/collector/ack` from a policy each test controls.
//!
//! Contract: `/work/notes/sinks-spec.md`, section "Splunk HEC", and its addition "HEC indexer
//! acknowledgement": with acks on, a 200 with an `ackId` makes the request's events pending;
//! they count in `siemgate_events_delivered_total` and leave `siemgate_queue_events` only once
//! acknowledged (in order); a request not acknowledged within `timeout` is sent again whole
//! (`siemgate_hec_ack_timeouts_total`); at `max_pending_events` nothing new is sent; a 200
//! without `ackId` is delivered at once; cookies set by the collector are sent back; clean
//! shutdown waits (within `shutdown_grace`) for pending acks.
//!
//! Every test uses `linger = "0ms"`, polls every 200 ms, and bounds every wait.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/hec.rs"]
mod hec;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use hec::{AckPolicy, HecEvent, HecServer, Scripted};
use http::{Request, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

const TOKEN: &str = "5b0c7c4e-8a0f-4f3e-9d57-2f1c0e6a9b11";
const SINK: &str = "splunk";
/// How long "nothing more happens" is watched for.
const QUIET: Duration = Duration::from_millis(600);
/// Bound for every wait.
const BOUND: Duration = Duration::from_secs(10);

const DELIVERED: &str = "siemgate_events_delivered_total";
const FAILED: &str = "siemgate_events_failed_total";
const QUEUE: &str = "siemgate_queue_events";
const PENDING: &str = "siemgate_hec_pending_ack_events";
const TIMEOUTS: &str = "siemgate_hec_ack_timeouts_total";
const RETRIES: &str = "siemgate_sink_retries_total";

/// The `[sinks.acknowledgements]` table.
fn acks(poll_interval: &str, timeout: &str, max_pending_events: usize) -> String {
    format!(
        r#"
[sinks.acknowledgements]
enabled = true
poll_interval = "{poll_interval}"
timeout = "{timeout}"
max_pending_events = {max_pending_events}
"#
    )
}

/// One HEC sink `splunk` at `url` (host `gw-01`), `tables` (the acknowledgements table and
/// maybe a queue table) after its keys, batches of up to `batch_max_events`, fed by source
/// `prisma`; `server` is the `[server]`/`[metrics]` preamble.
fn config_with(server: &str, url: &str, tables: &str, batch_max_events: usize) -> String {
    format!(
        r#"{server}
[[sinks]]
id = "{SINK}"
type = "splunk_hec"
url = "{url}"
token = "{TOKEN}"
host = "gw-01"
{tables}
[sinks.batch]
max_events = {batch_max_events}
linger = "0ms"

[[sources]]
id = "prisma"
vendor = "prisma_cloud"
sinks = ["{SINK}"]
auth = {{ scheme = "none", allow_unauthenticated = true }}
"#
    )
}

fn config(url: &str, tables: &str, batch_max_events: usize) -> String {
    config_with(PLAIN_SERVER, url, tables, batch_max_events)
}

async fn post_raw(gw: &TestGateway, events: &[Value]) -> Answer {
    let body = serde_json::to_string(events).unwrap();
    let addr = gw.addr();
    send(
        addr,
        post(
            addr,
            "prisma",
            &[("content-type", "application/json")],
            body,
        ),
    )
    .await
}

/// The sink's metrics `names` from one scrape (absent counts as 0), and the scrape.
async fn sink_metrics<const N: usize>(gw: &TestGateway, names: [&str; N]) -> ([f64; N], String) {
    let text = gw.metrics_text().await;
    let values = names.map(|n| metric(&text, n, &[("sink", SINK)]).unwrap_or(0.0));
    (values, text)
}

/// Polls `/metrics` (bounded) until `name{sink="splunk"}` is exactly `want`.
async fn metric_becomes(gw: &TestGateway, name: &str, want: f64) {
    let start = Instant::now();
    let mut text = String::new();
    while start.elapsed() < BOUND {
        text = gw.metrics_text().await;
        if metric(&text, name, &[("sink", SINK)]).unwrap_or(0.0) == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{name}{{sink=\"{SINK}\"}} never became {want}:\n{}",
        relevant(&text)
    );
}

/// The sink's lines of a scrape (for failure messages).
fn relevant(text: &str) -> String {
    text.lines()
        .filter(|l| l.contains(&format!("sink=\"{SINK}\"")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts the delivered, queue, pending and failed metrics at once.
#[track_caller]
fn assert_metrics(what: &str, values: [f64; 4], text: &str, want: [f64; 4]) {
    let names = [DELIVERED, QUEUE, PENDING, FAILED];
    for i in 0..4 {
        assert_eq!(
            values[i],
            want[i],
            "{what}: {}{{sink=\"{SINK}\"}}\n{}",
            names[i],
            relevant(text)
        );
    }
}

async fn check_metrics(gw: &TestGateway, what: &str, want: [f64; 4]) {
    let (values, text) = sink_metrics(gw, [DELIVERED, QUEUE, PENDING, FAILED]).await;
    assert_metrics(what, values, &text, want);
}

fn ids_of(events: &[HecEvent]) -> Vec<String> {
    events.iter().map(HecEvent::id).collect()
}

/// The event ids in order of first appearance.
fn distinct_in_order(ids: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    ids.iter().filter(|i| seen.insert(*i)).cloned().collect()
}

/// Every ack poll is a 200 to a POST with the sink's token and channel, asking only for ids the
/// collector issued.
#[track_caller]
fn assert_polls_well_formed(hec: &HecServer) {
    let channel = hec.channel().expect("a channel");
    let issued: BTreeSet<u64> = hec.ack_ids_issued().into_iter().collect();
    for (i, p) in hec.ack_polls().iter().enumerate() {
        assert_eq!(p.status, 200, "poll {i}: answer {}", p.answer);
        assert_eq!(
            p.header("authorization").as_deref(),
            Some(format!("Splunk {TOKEN}").as_str()),
            "poll {i}: token"
        );
        assert_eq!(
            p.header(hec::CHANNEL_HEADER).as_deref(),
            Some(channel.as_str()),
            "poll {i}: the channel of the event requests"
        );
        for id in &p.ids {
            assert!(issued.contains(id), "poll {i} asks for {id}, never issued");
        }
    }
    for r in hec.requests().iter().filter(|r| r.is_ack_poll()) {
        assert_eq!(r.method, http::Method::POST, "ack poll method");
    }
}

/// Acks withheld: every event is indexed, but `delivered_total` stays 0 and the N events stay
/// queued (and pending) while polls carrying the token, the channel and the two returned ackIds
/// (in one POST) answer false. Acknowledging only the second request leaves the queue at N
/// (pending events leave it in order) and that id is not asked for again. Once everything is
/// acknowledged, delivered_total = N, the queue and the pending gauge are 0, and it stays so.
#[tokio::test]
async fn events_count_as_delivered_only_once_acknowledged() {
    let hec = HecServer::start(TOKEN).await;
    hec.enable_acks(AckPolicy::Nothing);
    let gw = start(&config(&hec.url(), &acks("200ms", "30s", 10_000), 3)).await;
    let alerts: Vec<Value> = (0..6).map(prisma_alert).collect();
    post_events(&gw, "prisma", &alerts).await;

    eventually("6 events indexed", || hec.indexed_count() >= 6).await;
    eventually("2 ackIds issued", || hec.ack_ids_issued().len() >= 2).await;
    let requests = hec.event_requests();
    assert_eq!(requests.len(), 2, "two requests of three events");
    assert_eq!(requests[0].ids(), prisma_ids(0..3));
    assert_eq!(requests[1].ids(), prisma_ids(3..6));
    assert_eq!(requests[0].ack_id, Some(0), "{}", requests[0].answer);
    assert_eq!(requests[1].ack_id, Some(1), "{}", requests[1].answer);

    eventually("two polls asking for ackIds 0 and 1 together", || {
        hec.ack_polls()
            .iter()
            .filter(|p| p.ids.contains(&0) && p.ids.contains(&1))
            .count()
            >= 2
    })
    .await;
    check_metrics(&gw, "acks withheld", [0.0, 6.0, 6.0, 0.0]).await;
    // Polls come about every poll_interval (200 ms): some, but not a flood.
    let before = hec.ack_poll_count();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let in_a_second = hec.ack_poll_count() - before;
    assert!(
        (2..=10).contains(&in_a_second),
        "{in_a_second} polls in one second with poll_interval = 200ms"
    );
    let last = hec.ack_polls().last().cloned().unwrap();
    let mut asked = last.ids.clone();
    asked.sort_unstable();
    assert_eq!(asked, [0, 1], "one poll asks for every pending ackId");
    check_metrics(&gw, "acks still withheld", [0.0, 6.0, 6.0, 0.0]).await;

    // Only the second request acknowledged: the first one's events are still pending, and the
    // queue releases in order.
    hec.set_ack_policy(AckPolicy::Ids(BTreeSet::from([1])));
    eventually("ackId 1 acknowledged", || hec.acked_ids().contains(&1)).await;
    tokio::time::sleep(QUIET).await;
    let (values, text) = sink_metrics(&gw, [QUEUE, FAILED]).await;
    assert_eq!(
        values[0],
        6.0,
        "ackId 0 is pending: nothing may leave the queue before its events\n{}",
        relevant(&text)
    );
    assert_eq!(values[1], 0.0, "{}", relevant(&text));
    let after_1 = hec
        .ack_polls()
        .iter()
        .position(|p| p.acked.contains(&1))
        .unwrap();
    for p in &hec.ack_polls()[after_1 + 1..] {
        assert_eq!(
            p.ids,
            [0],
            "after ackId 1 was acknowledged, only 0 is pending"
        );
    }

    hec.set_ack_policy(AckPolicy::All);
    metric_becomes(&gw, DELIVERED, 6.0).await;
    metric_becomes(&gw, QUEUE, 0.0).await;
    tokio::time::sleep(QUIET).await;
    check_metrics(&gw, "all acknowledged", [6.0, 0.0, 0.0, 0.0]).await;
    assert_eq!(hec.acked_ids(), BTreeSet::from([0, 1]));
    assert_eq!(hec.event_request_count(), 2, "nothing sent again");
    assert_eq!(
        ids_of(&hec.indexed()),
        prisma_ids(0..6),
        "indexed once each"
    );
    assert_polls_well_formed(&hec);
    gw.stop().await;
    hec.assert_no_problems();
}

/// An ack that never comes: after `timeout` (2 s) the request is sent again whole (the same
/// events, in order) and gets a new ackId; `ack_timeouts_total` counts it; nothing is delivered
/// or dropped meanwhile. Once acks come, delivered_total = N exactly (each event once, though
/// the collector got duplicates), the queue is empty, and every event request was either the
/// first or a re-send after a timeout.
#[tokio::test]
async fn unacknowledged_request_is_sent_again_after_the_timeout() {
    let hec = HecServer::start(TOKEN).await;
    hec.enable_acks(AckPolicy::Nothing);
    let gw = start(&config(&hec.url(), &acks("200ms", "2s", 10_000), 50)).await;
    let alerts: Vec<Value> = (0..3).map(prisma_alert).collect();
    post_events(&gw, "prisma", &alerts).await;

    eventually("the first event request", || hec.event_request_count() >= 1).await;
    eventually("the re-send after the ack timeout", || {
        hec.event_request_count() >= 2
    })
    .await;
    let requests = hec.event_requests();
    let (first, second) = (&requests[0], &requests[1]);
    assert_eq!(first.ids(), prisma_ids(0..3), "the first request");
    assert_eq!(first.ack_id, Some(0));
    assert_eq!(
        second.ids(),
        prisma_ids(0..3),
        "the re-send carries the whole request"
    );
    assert_eq!(second.ack_id, Some(1), "a new ackId");
    let gap = second.at - first.at;
    assert!(
        gap >= Duration::from_millis(1_800) && gap <= Duration::from_secs(5),
        "re-sent {gap:?} after the first request (timeout = 2s, poll_interval = 200ms)"
    );
    assert!(
        hec.ack_polls().iter().any(|p| p.ids.contains(&0)),
        "ackId 0 was never polled before it timed out"
    );
    let (values, text) = sink_metrics(&gw, [TIMEOUTS, DELIVERED, QUEUE, FAILED]).await;
    assert!(values[0] >= 1.0, "{TIMEOUTS}\n{}", relevant(&text));
    assert_eq!(values[1], 0.0, "nothing delivered yet\n{}", relevant(&text));
    assert_eq!(
        values[2],
        3.0,
        "all three still queued\n{}",
        relevant(&text)
    );
    assert_eq!(values[3], 0.0, "nothing dropped\n{}", relevant(&text));

    hec.set_ack_policy(AckPolicy::All);
    metric_becomes(&gw, DELIVERED, 3.0).await;
    metric_becomes(&gw, QUEUE, 0.0).await;
    tokio::time::sleep(QUIET).await;
    check_metrics(&gw, "acknowledged", [3.0, 0.0, 0.0, 0.0]).await;
    let timeouts = sink_metrics(&gw, [TIMEOUTS]).await.0[0];

    let requests = hec.event_requests();
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(r.ids(), prisma_ids(0..3), "request {i}: sent whole");
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(r.ack_id, Some(i as u64), "request {i}");
    }
    assert_eq!(
        requests.len() as f64,
        1.0 + timeouts,
        "one re-send per ack timeout ({TIMEOUTS} = {timeouts})"
    );
    let acked = hec.acked_ids();
    assert!(!acked.is_empty());
    for id in &acked {
        let r = hec.request_with_ack_id(*id).unwrap();
        assert_eq!(r.ids(), prisma_ids(0..3), "acknowledged request {id}");
    }
    let indexed = ids_of(&hec.indexed());
    assert_eq!(distinct_in_order(&indexed), prisma_ids(0..3));
    for i in 0..3 {
        assert!(hec.times_sent(&prisma_id(i)) >= 2, "{}", prisma_id(i));
    }
    assert_polls_well_formed(&hec);
    gw.stop().await;
    hec.assert_no_problems();
}

/// Sticky sessions: the collector sets `Set-Cookie: AWSALB=abc; Path=/` on the first event
/// answer only; every later request of the sink (event requests and ack polls) sends
/// `Cookie: AWSALB=abc`, without the cookie's attributes.
#[tokio::test]
async fn cookies_set_by_the_collector_are_sent_back() {
    let hec = HecServer::start(TOKEN).await;
    hec.enable_acks(AckPolicy::AfterPolls(2));
    hec.set_cookie_once("AWSALB=abc; Path=/");
    let gw = start(&config(&hec.url(), &acks("200ms", "30s", 10_000), 50)).await;
    post_events(&gw, "prisma", &(0..3).map(prisma_alert).collect::<Vec<_>>()).await;
    eventually("the first ack poll", || hec.ack_poll_count() >= 1).await;
    post_events(&gw, "prisma", &(3..6).map(prisma_alert).collect::<Vec<_>>()).await;
    metric_becomes(&gw, DELIVERED, 6.0).await;
    metric_becomes(&gw, QUEUE, 0.0).await;

    let requests = hec.requests();
    let first = requests
        .iter()
        .position(hec::Received::is_event_post)
        .unwrap();
    assert_eq!(
        requests[first].set_cookie.as_deref(),
        Some("AWSALB=abc; Path=/"),
        "the collector set the cookie on the first event answer"
    );
    assert!(
        !requests[first]
            .cookies()
            .iter()
            .any(|c| c.starts_with("AWSALB")),
        "the first event request already had the cookie: {:?}",
        requests[first].cookies()
    );
    let later = &requests[first + 1..];
    let later_events = later.iter().filter(|r| r.is_event_post()).count();
    let later_polls = later.iter().filter(|r| r.is_ack_poll()).count();
    assert!(later_events >= 1, "no event request after the first");
    assert!(later_polls >= 2, "{later_polls} ack polls");
    for r in later {
        let cookies = r.cookies();
        assert!(
            cookies.iter().any(|c| c == "AWSALB=abc"),
            "{} {} at +{:?} without Cookie: AWSALB=abc (Cookie: {:?})",
            r.method,
            r.path,
            r.at - requests[first].at,
            r.header("cookie")
        );
        assert!(
            !cookies
                .iter()
                .any(|c| c.to_ascii_lowercase().starts_with("path")),
            "{} {}: the cookie's attributes were sent back: {:?}",
            r.method,
            r.path,
            r.header("cookie")
        );
    }
    for (i, p) in hec.ack_polls().iter().enumerate() {
        assert!(
            p.cookies().iter().any(|c| c == "AWSALB=abc"),
            "poll {i}: {:?}",
            p.header("cookie")
        );
    }
    assert_eq!(ids_of(&hec.indexed()), prisma_ids(0..6));
    assert_polls_well_formed(&hec);
    gw.stop().await;
    hec.assert_no_problems();
}

/// `max_pending_events = 4` with requests of 2 events and acks withheld: the sink sends two
/// requests (4 events) and then nothing until acks arrive; the 10 events stay queued, so a
/// queue of `max_events = 10` is full and one more event is refused with 503. Once acks come
/// every event is delivered once, in order, never more than 4 unacknowledged at the collector,
/// and the refused event is accepted again.
#[tokio::test]
async fn max_pending_events_caps_what_is_awaiting_acknowledgement() {
    let hec = HecServer::start(TOKEN).await;
    hec.enable_acks(AckPolicy::Nothing);
    let tables = acks("200ms", "60s", 4) + "\n[sinks.queue]\nmax_events = 10\n";
    let gw = start(&config(&hec.url(), &tables, 2)).await;
    post_events(
        &gw,
        "prisma",
        &(0..10).map(prisma_alert).collect::<Vec<_>>(),
    )
    .await;

    eventually("two event requests", || hec.event_request_count() >= 2).await;
    eventually("a few polls", || hec.ack_poll_count() >= 3).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        hec.event_request_count(),
        2,
        "at max_pending_events = 4 (2 requests of 2) the sink must send nothing new"
    );
    assert!(
        hec.max_outstanding_events() <= 4,
        "{} events unacknowledged at the collector",
        hec.max_outstanding_events()
    );
    check_metrics(&gw, "stalled at the cap", [0.0, 10.0, 4.0, 0.0]).await;
    let refused = post_raw(&gw, &[prisma_alert(10)]).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the queue (10 events, pending included) is full: {refused:?}"
    );

    hec.set_ack_policy(AckPolicy::All);
    metric_becomes(&gw, DELIVERED, 10.0).await;
    metric_becomes(&gw, QUEUE, 0.0).await;
    assert!(
        hec.max_outstanding_events() <= 4,
        "{} events were unacknowledged at the collector at once",
        hec.max_outstanding_events()
    );
    for (i, r) in hec.event_requests().iter().enumerate() {
        assert!(
            r.events.len() <= 2,
            "request {i}: {} events",
            r.events.len()
        );
    }
    assert_eq!(
        ids_of(&hec.indexed()),
        prisma_ids(0..10),
        "indexed once each, in order"
    );
    post_events(&gw, "prisma", &[prisma_alert(10)]).await;
    metric_becomes(&gw, DELIVERED, 11.0).await;
    check_metrics(&gw, "after the last event", [11.0, 0.0, 0.0, 0.0]).await;
    assert_polls_well_formed(&hec);
    gw.stop().await;
    hec.assert_no_problems();
}

/// A collector whose token has no acks answers 200 `{"text":"Success","code":0}` without an
/// `ackId`: with acks enabled in the sink, the events count as delivered at once (well before
/// the 10 s poll interval) and nothing is polled.
#[tokio::test]
async fn success_without_ack_id_is_delivered_at_once() {
    let hec = HecServer::start(TOKEN).await; // acks off at the collector
    let gw = start(&config(&hec.url(), &acks("10s", "30s", 10_000), 50)).await;
    let posted = Instant::now();
    post_events(&gw, "prisma", &(0..4).map(prisma_alert).collect::<Vec<_>>()).await;
    metric_becomes(&gw, DELIVERED, 4.0).await;
    let took = posted.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "delivered after {took:?}: a 200 without ackId must not wait for a poll"
    );
    metric_becomes(&gw, QUEUE, 0.0).await;
    check_metrics(&gw, "no ackId", [4.0, 0.0, 0.0, 0.0]).await;
    for r in hec.event_requests() {
        assert_eq!(r.status, 200);
        assert_eq!(r.answer.get("ackId"), None);
    }
    // Stopping drains the sink: a poll or a resend would have been made by now.
    gw.stop().await;
    assert_eq!(hec.ack_poll_count(), 0, "nothing to poll for");
    assert_eq!(ids_of(&hec.indexed()), prisma_ids(0..4));
    hec.assert_no_problems();
}

/// A 200 without `ackId` counts as delivered at once even while an earlier request still
/// awaits its ack: of two requests of 3 events, the first gets ackId 0 (withheld) and the
/// second a 200 without ackId; delivered_total is 3 right away and only the first request's 3
/// events await acknowledgement. Once ackId 0 is acknowledged all 6 are delivered and the queue
/// is empty.
#[tokio::test]
async fn success_without_ack_id_behind_a_pending_request_counts_at_once() {
    let hec = HecServer::start(TOKEN).await;
    hec.enable_acks(AckPolicy::Nothing);
    hec.script([Scripted::success(), Scripted::success().without_ack_id()]);
    let gw = start(&config(&hec.url(), &acks("200ms", "30s", 10_000), 3)).await;
    post_events(&gw, "prisma", &(0..6).map(prisma_alert).collect::<Vec<_>>()).await;

    eventually("two event requests", || hec.event_request_count() >= 2).await;
    let requests = hec.event_requests();
    assert_eq!(requests[0].ack_id, Some(0));
    assert_eq!(requests[1].ack_id, None);
    assert_eq!(requests[1].ids(), prisma_ids(3..6));
    let start = Instant::now();
    let mut last = ([0.0; 2], String::new());
    while start.elapsed() < Duration::from_secs(2) {
        last = sink_metrics(&gw, [DELIVERED, PENDING]).await;
        if last.0 == [3.0, 3.0] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        last.0,
        [3.0, 3.0],
        "{DELIVERED} and {PENDING} while ackId 0 is withheld and the second request was \
         answered 200 without ackId\n{}",
        relevant(&last.1)
    );

    hec.set_ack_policy(AckPolicy::All);
    metric_becomes(&gw, QUEUE, 0.0).await;
    check_metrics(&gw, "acknowledged", [6.0, 0.0, 0.0, 0.0]).await;
    assert_eq!(hec.event_request_count(), 2, "nothing sent again");
    gw.stop().await;
    hec.assert_no_problems();
}

/// With acks on, the other answers behave as without them: a 503 is retried, a data error at
/// event 1 counts event 0 delivered and event 1 failed (neither sent again), and the rest,
/// sent again, is delivered once acknowledged. Only the 200 gets an ackId.
#[tokio::test]
async fn retries_and_data_errors_behave_as_without_acks() {
    let hec = HecServer::start(TOKEN).await;
    hec.enable_acks(AckPolicy::All);
    hec.script([Scripted::busy(), Scripted::data_error(6, 1)]);
    let gw = start(&config(&hec.url(), &acks("200ms", "30s", 10_000), 50)).await;
    post_events(&gw, "prisma", &(0..4).map(prisma_alert).collect::<Vec<_>>()).await;

    metric_becomes(&gw, DELIVERED, 3.0).await;
    metric_becomes(&gw, FAILED, 1.0).await;
    metric_becomes(&gw, QUEUE, 0.0).await;
    tokio::time::sleep(QUIET).await;
    check_metrics(&gw, "settled", [3.0, 0.0, 0.0, 1.0]).await;
    assert!(
        sink_metrics(&gw, [RETRIES]).await.0[0] >= 1.0,
        "the 503 retry"
    );

    let requests = hec.event_requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 400, 200], "event requests");
    assert_eq!(requests[0].ids(), prisma_ids(0..4));
    assert_eq!(requests[1].ids(), prisma_ids(0..4));
    assert_eq!(requests[2].ids(), prisma_ids(2..4));
    let ack_ids: Vec<Option<u64>> = requests.iter().map(|r| r.ack_id).collect();
    assert_eq!(ack_ids, [None, None, Some(0)]);
    assert_eq!(hec.acked_ids(), BTreeSet::from([0]));
    assert_eq!(
        ids_of(&hec.indexed()),
        [prisma_id(0), prisma_id(2), prisma_id(3)]
    );
    assert_polls_well_formed(&hec);
    gw.stop().await;
    hec.assert_no_problems();
}

/// `max_pending_events` bounds what is awaiting acknowledgement, also when a batch does not fit
/// the room left: with a cap of 4, requests of up to 3 events and acks withheld, the collector
/// never has more than 4 events unacknowledged (the sink may send a smaller request, or wait).
#[tokio::test]
async fn max_pending_events_is_not_exceeded_by_a_batch_that_does_not_fit() {
    let hec = HecServer::start(TOKEN).await;
    hec.enable_acks(AckPolicy::Nothing);
    let gw = start(&config(&hec.url(), &acks("200ms", "60s", 4), 3)).await;
    post_events(&gw, "prisma", &(0..9).map(prisma_alert).collect::<Vec<_>>()).await;

    eventually("a first event request", || hec.event_request_count() >= 1).await;
    eventually("a few polls", || hec.ack_poll_count() >= 3).await;
    tokio::time::sleep(QUIET).await;
    let sent: Vec<usize> = hec
        .event_requests()
        .iter()
        .map(|r| r.events.len())
        .collect();
    assert!(
        hec.max_outstanding_events() <= 4,
        "max_pending_events = 4, but {} events were awaiting acknowledgement at once \
         (requests of {sent:?} events)",
        hec.max_outstanding_events()
    );
    let (values, text) = sink_metrics(&gw, [PENDING, DELIVERED]).await;
    assert!(values[0] <= 4.0, "{PENDING}\n{}", relevant(&text));
    assert_eq!(values[1], 0.0, "{}", relevant(&text));

    hec.set_ack_policy(AckPolicy::All);
    metric_becomes(&gw, DELIVERED, 9.0).await;
    assert!(
        hec.max_outstanding_events() <= 4,
        "{} events were unacknowledged at the collector at once",
        hec.max_outstanding_events()
    );
    assert_eq!(
        ids_of(&hec.indexed()),
        prisma_ids(0..9),
        "indexed once each, in order"
    );
    gw.stop().await;
    hec.assert_no_problems();
}

/// Every ackId from 1 on (the first request's, 0, is never acknowledged).
fn all_but_the_first() -> AckPolicy {
    AckPolicy::Ids((1..1000).collect())
}

/// The re-send after an ack timeout is a send like any other: answered 429 with
/// `Retry-After: 2`, it is retried no sooner than 2 s later and counts in
/// `siemgate_sink_retries_total`; once it gets an ackId that is acknowledged, the three events
/// are delivered once.
#[tokio::test]
async fn resend_answered_429_honours_retry_after() {
    let hec = HecServer::start(TOKEN).await;
    hec.enable_acks(all_but_the_first());
    hec.script([Scripted::success(), Scripted::too_many_requests(2)]);
    let gw = start(&config(&hec.url(), &acks("200ms", "1s", 10_000), 50)).await;
    post_events(&gw, "prisma", &(0..3).map(prisma_alert).collect::<Vec<_>>()).await;

    eventually("the 429 answer to the re-send", || {
        hec.event_request_count() >= 2
    })
    .await;
    eventually("the re-send after the 429", || {
        hec.event_request_count() >= 3
    })
    .await;
    let requests = hec.event_requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(&statuses[..3], [200, 429, 200], "event requests");
    let gap = requests[2].at - requests[1].at;
    assert!(
        gap >= Duration::from_millis(1_900),
        "the re-send answered 429 with Retry-After: 2 was sent again after {gap:?}"
    );
    metric_becomes(&gw, DELIVERED, 3.0).await;
    metric_becomes(&gw, QUEUE, 0.0).await;
    let (values, text) = sink_metrics(&gw, [RETRIES, TIMEOUTS, FAILED]).await;
    assert!(
        values[0] >= 1.0,
        "the 429 is a retry: {RETRIES}\n{}",
        relevant(&text)
    );
    assert!(values[1] >= 1.0, "{TIMEOUTS}\n{}", relevant(&text));
    assert_eq!(values[2], 0.0, "{}", relevant(&text));
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(r.ids(), prisma_ids(0..3), "request {i}");
    }
    gw.stop().await;
    hec.assert_no_problems();
}

/// The re-send after an ack timeout answered with a data error (400 code 6,
/// `invalid-event-number: 1`) is handled as without acks: event 0 was indexed (delivered),
/// event 1 is refused for good (failed, never sent again), and only events 2 and 3 go in the
/// next request, whose ack delivers them.
#[tokio::test]
async fn resend_answered_with_a_data_error_refuses_only_that_event() {
    let hec = HecServer::start(TOKEN).await;
    hec.enable_acks(all_but_the_first());
    hec.script([Scripted::success(), Scripted::data_error(6, 1)]);
    let gw = start(&config(&hec.url(), &acks("200ms", "1s", 10_000), 50)).await;
    post_events(&gw, "prisma", &(0..4).map(prisma_alert).collect::<Vec<_>>()).await;

    eventually("three event requests", || hec.event_request_count() >= 3).await;
    metric_becomes(&gw, QUEUE, 0.0).await;
    tokio::time::sleep(QUIET).await;
    let requests = hec.event_requests();
    let shown: Vec<(u16, Vec<String>)> = requests.iter().map(|r| (r.status, r.ids())).collect();
    assert_eq!(requests[0].ids(), prisma_ids(0..4), "{shown:?}");
    assert_eq!(
        (requests[1].status, requests[1].ids()),
        (400, prisma_ids(0..4)),
        "{shown:?}"
    );
    assert_eq!(
        requests[2].ids(),
        prisma_ids(2..4),
        "after the data error at event 1, only events 2 and 3 are sent again: {shown:?}"
    );
    assert_eq!(
        hec.times_sent(&prisma_id(1)),
        2,
        "the refused event was sent again: {shown:?}"
    );
    assert_eq!(requests.len(), 3, "{shown:?}");
    let (values, text) = sink_metrics(&gw, [DELIVERED, FAILED]).await;
    assert_eq!(values, [3.0, 1.0], "delivered, failed\n{}", relevant(&text));
    gw.stop().await;
    hec.assert_no_problems();
}

/// The re-send after an ack timeout answered 413 is handled as without acks: the events per
/// request halve (no request of more than 2 events after it), and all four are delivered once
/// acknowledged, none failed.
#[tokio::test]
async fn resend_answered_413_halves_the_request() {
    let hec = HecServer::start(TOKEN).await;
    hec.enable_acks(all_but_the_first());
    hec.script([Scripted::success(), Scripted::too_large()]);
    let gw = start(&config(&hec.url(), &acks("200ms", "1s", 10_000), 50)).await;
    post_events(&gw, "prisma", &(0..4).map(prisma_alert).collect::<Vec<_>>()).await;

    metric_becomes(&gw, DELIVERED, 4.0).await;
    metric_becomes(&gw, QUEUE, 0.0).await;
    let requests = hec.event_requests();
    let shown: Vec<(u16, Vec<String>)> = requests.iter().map(|r| (r.status, r.ids())).collect();
    assert_eq!(requests[1].status, 413, "{shown:?}");
    for (i, r) in requests.iter().enumerate().skip(2) {
        assert!(
            r.events.len() <= 2,
            "request {i} after the 413 has {} events: {shown:?}",
            r.events.len()
        );
    }
    assert_eq!(sink_metrics(&gw, [FAILED]).await.0[0], 0.0);
    gw.stop().await;
    hec.assert_no_problems();
}

/// The re-send after an ack timeout answered 403 code 4 is a configuration error as without
/// acks: `/readyz` answers 503 naming the sink, nothing is dropped; once the collector accepts
/// again the events are delivered and the sink is ready.
#[tokio::test]
async fn resend_answered_403_makes_the_sink_not_ready() {
    let hec = HecServer::start(TOKEN).await;
    hec.enable_acks(all_but_the_first());
    let gw = start(&config(&hec.url(), &acks("200ms", "1s", 10_000), 50)).await;
    post_events(&gw, "prisma", &(0..3).map(prisma_alert).collect::<Vec<_>>()).await;
    eventually("the first event request", || hec.event_request_count() >= 1).await;
    hec.set_fallback(Scripted::invalid_token());

    eventually("the re-send answered 403", || {
        hec.event_request_count() >= 2
    })
    .await;
    let body = gw.readyz_becomes(StatusCode::SERVICE_UNAVAILABLE).await;
    let named = body["reasons"].as_array().is_some_and(|r| {
        r.iter()
            .any(|r| r.as_str().is_some_and(|r| r.contains(SINK)))
    });
    assert!(named, "/readyz does not name the sink: {body}");
    check_metrics(&gw, "held", [0.0, 3.0, 3.0, 0.0]).await;

    hec.set_fallback(Scripted::success());
    metric_becomes(&gw, DELIVERED, 3.0).await;
    metric_becomes(&gw, QUEUE, 0.0).await;
    gw.readyz_becomes(StatusCode::OK).await;
    assert_eq!(sink_metrics(&gw, [FAILED]).await.0[0], 0.0);
    gw.stop().await;
    hec.assert_no_problems();
}

/// GET /metrics without panicking (the metrics listener closes at the end of a shutdown).
async fn try_metrics(addr: std::net::SocketAddr) -> Option<String> {
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .ok()?;
        tokio::spawn(conn);
        let req = Request::get(format!("http://{addr}/metrics"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.ok()?;
        if resp.status() != StatusCode::OK {
            return None;
        }
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .ok()?
            .to_bytes();
        String::from_utf8(body.to_vec()).ok()
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
}

/// Clean shutdown with a request awaiting its ack (the collector acknowledges an id once it is
/// 1.2 s old): `shutdown` + `wait` does not return before the poll that acknowledges it, and it
/// returns soon after (well within shutdown_grace = 10s). Scrapes of /metrics during the
/// shutdown never show the events delivered before the ack.
#[tokio::test]
async fn shutdown_waits_for_pending_acks() {
    const ACK_AFTER: Duration = Duration::from_millis(1_200);
    let hec = HecServer::start(TOKEN).await;
    hec.enable_acks(AckPolicy::AfterDelay(ACK_AFTER));
    let gw = start(&config(&hec.url(), &acks("200ms", "30s", 10_000), 50)).await;
    post_events(&gw, "prisma", &(0..3).map(prisma_alert).collect::<Vec<_>>()).await;
    eventually("the event request", || !hec.ack_ids_issued().is_empty()).await;
    check_metrics(&gw, "pending before shutdown", [0.0, 3.0, 3.0, 0.0]).await;
    let request_at = hec.request_with_ack_id(0).unwrap().at;

    let metrics_addr = gw.metrics_addr();
    let TestGateway { gateway, dir } = gw;
    let shutdown_at = Instant::now();
    gateway.shutdown();
    let scraping = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(text) = try_metrics(metrics_addr).await {
            let delivered = metric(&text, DELIVERED, &[("sink", SINK)]).unwrap_or(0.0);
            seen.push((Instant::now(), delivered));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        seen
    });
    tokio::time::timeout(Duration::from_secs(15), gateway.wait())
        .await
        .expect("the gateway stops within 15 s");
    let stopped_at = Instant::now();
    drop(dir);
    let seen = tokio::time::timeout(Duration::from_secs(5), scraping)
        .await
        .expect("the metrics listener closes after the shutdown")
        .unwrap();

    let polls = hec.ack_polls();
    let acking = polls
        .iter()
        .find(|p| p.acked.contains(&0))
        .unwrap_or_else(|| {
            panic!(
                "shutdown returned after {:?} without the poll that acknowledges ackId 0 \
                 ({} polls, ids asked: {:?})",
                stopped_at - shutdown_at,
                polls.len(),
                polls.iter().map(|p| p.ids.clone()).collect::<Vec<_>>()
            )
        });
    assert!(
        acking.at <= stopped_at,
        "the acknowledging poll came after the gateway stopped"
    );
    let took = stopped_at - shutdown_at;
    let ack_due = (request_at + ACK_AFTER).saturating_duration_since(shutdown_at);
    assert!(
        took >= ack_due,
        "shutdown took {took:?}, the ack was due {ack_due:?} after it started"
    );
    assert!(
        took < Duration::from_secs(6),
        "shutdown took {took:?} although the ack came {:?} after it started",
        acking.at.saturating_duration_since(shutdown_at)
    );
    for (at, delivered) in &seen {
        if *at < acking.at {
            assert_eq!(*delivered, 0.0, "delivered before the ack");
        }
    }
    // The metrics listener closes as soon as the queues are drained, so the final count
    // cannot be scraped; that stop waited for the acknowledging poll is what shows the wait.
    assert!(!seen.is_empty(), "no scrape succeeded during the shutdown");
    assert_eq!(hec.event_request_count(), 1, "nothing sent again");
    hec.assert_no_problems();
}

/// Clean shutdown with acks that never come does not wait past `shutdown_grace` (2 s): it keeps
/// polling meanwhile and returns within the grace period plus the bounded abort wait.
#[tokio::test]
async fn shutdown_waits_no_longer_than_the_grace_period() {
    let hec = HecServer::start(TOKEN).await;
    hec.enable_acks(AckPolicy::Nothing);
    let server = PLAIN_SERVER.replace("shutdown_grace = \"10s\"", "shutdown_grace = \"2s\"");
    assert_ne!(
        server, PLAIN_SERVER,
        "PLAIN_SERVER changed: set shutdown_grace another way"
    );
    let gw = start(&config_with(
        &server,
        &hec.url(),
        &acks("200ms", "30s", 10_000),
        50,
    ))
    .await;
    post_events(&gw, "prisma", &(0..3).map(prisma_alert).collect::<Vec<_>>()).await;
    eventually("the event request", || !hec.ack_ids_issued().is_empty()).await;

    let shutdown_at = Instant::now();
    gw.gateway.shutdown();
    tokio::time::timeout(Duration::from_secs(15), gw.gateway.wait())
        .await
        .expect("the gateway stops within 15 s");
    let took = shutdown_at.elapsed();
    assert!(
        took >= Duration::from_millis(1_800),
        "shutdown took {took:?}: it must wait (up to shutdown_grace = 2s) for pending acks"
    );
    assert!(
        took <= Duration::from_millis(5_500),
        "shutdown took {took:?} with shutdown_grace = 2s"
    );
    let polls_during = hec
        .ack_polls()
        .iter()
        .filter(|p| p.at > shutdown_at + Duration::from_millis(500))
        .count();
    assert!(
        polls_during >= 2,
        "{polls_during} polls while shutting down"
    );
    hec.assert_no_problems();
}

/// The loopback collector itself (no gateway): acks off -> 400 code 14; a poll on a channel
/// that never sent events -> 400 code 11; no token 401 code 2, not `Splunk ...` 401 code 3,
/// another token 403 code 4, no channel 400 code 10, a channel that is not a UUID 400 code 11;
/// a body that is not `{"acks":[...]}` 400 code 6; an ackId answered true once, then false.
#[tokio::test]
async fn collector_answers_ack_polls_like_splunk() {
    const CHANNEL: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
    const OTHER: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    let hec = HecServer::start(TOKEN).await;
    let addr = hec.addr();
    let auth = format!("Splunk {TOKEN}");
    let request = |path: &str, headers: &[(&str, &str)], body: &str| {
        let mut b = Request::post(format!("http://{addr}{path}"));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
    };
    let poll = |headers: &[(&str, &str)], body: &str| request(hec::ACK_PATH, headers, body);
    let good: [(&str, &str); 2] = [("authorization", &auth), (hec::CHANNEL_HEADER, CHANNEL)];

    let a = send(addr, poll(&good, r#"{"acks":[0]}"#)).await;
    assert_eq!(
        (a.status.as_u16(), a.json()["code"].clone()),
        (400, json!(14))
    );

    hec.enable_acks(AckPolicy::All);
    let a = send(addr, poll(&good, r#"{"acks":[0]}"#)).await;
    assert_eq!(
        (a.status.as_u16(), a.json()["code"].clone()),
        (400, json!(11)),
        "unknown channel"
    );
    type Case<'a> = (&'a [(&'a str, &'a str)], u16, u64);
    let cases: [Case<'_>; 5] = [
        (&[(hec::CHANNEL_HEADER, CHANNEL)], 401, 2),
        (
            &[
                ("authorization", "Bearer x"),
                (hec::CHANNEL_HEADER, CHANNEL),
            ],
            401,
            3,
        ),
        (
            &[
                ("authorization", "Splunk nope"),
                (hec::CHANNEL_HEADER, CHANNEL),
            ],
            403,
            4,
        ),
        (&[("authorization", &auth)], 400, 10),
        (
            &[
                ("authorization", &auth),
                (hec::CHANNEL_HEADER, "not-a-uuid"),
            ],
            400,
            11,
        ),
    ];
    for (headers, status, code) in cases {
        let a = send(addr, poll(headers, r#"{"acks":[0]}"#)).await;
        assert_eq!(a.status.as_u16(), status, "{headers:?}: {a:?}");
        assert_eq!(a.json()["code"], json!(code), "{headers:?}");
    }

    let event = r#"{"time":1.5,"host":"h","source":"s","sourcetype":"t","event":{"id":"a"},"fields":{"k":"v"}}"#;
    let mut headers = good.to_vec();
    headers.push(("content-type", "application/json"));
    for want in 0..2 {
        let a = send(
            addr,
            request(hec::EVENT_PATH, &headers, &format!("{event}\n")),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(
            a.json(),
            json!({"text": "Success", "code": 0, "ackId": want})
        );
    }
    let a = send(addr, poll(&good, r#"{"acks":[1,0,7]}"#)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.json(),
        json!({"acks": {"0": true, "1": true, "7": false}})
    );
    let a = send(addr, poll(&good, r#"{"acks":[0]}"#)).await;
    assert_eq!(
        a.json(),
        json!({"acks": {"0": false}}),
        "acknowledged ids are forgotten"
    );
    let a = send(addr, poll(&good, r#"{"ids":[0]}"#)).await;
    assert_eq!(
        (a.status.as_u16(), a.json()["code"].clone()),
        (400, json!(6))
    );
    let other = [
        ("authorization", auth.as_str()),
        (hec::CHANNEL_HEADER, OTHER),
    ];
    let a = send(addr, poll(&other, r#"{"acks":[0]}"#)).await;
    assert_eq!(
        (a.status.as_u16(), a.json()["code"].clone()),
        (400, json!(11))
    );

    // Policies and cookies.
    hec.set_ack_policy(AckPolicy::AfterPolls(2));
    hec.set_cookie_once("AWSALB=abc; Path=/");
    let a = send(
        addr,
        request(hec::EVENT_PATH, &headers, &format!("{event}\n")),
    )
    .await;
    assert_eq!(a.json()["ackId"], json!(2));
    assert_eq!(
        a.headers.get("set-cookie").map(|v| v.to_str().unwrap()),
        Some("AWSALB=abc; Path=/")
    );
    let a = send(
        addr,
        request(hec::EVENT_PATH, &headers, &format!("{event}\n")),
    )
    .await;
    assert_eq!(a.headers.get("set-cookie"), None, "the cookie is set once");
    let a = send(addr, poll(&good, r#"{"acks":[2]}"#)).await;
    assert_eq!(a.json(), json!({"acks": {"2": false}}));
    let a = send(addr, poll(&good, r#"{"acks":[2,3]}"#)).await;
    assert_eq!(a.json(), json!({"acks": {"2": true, "3": false}}));
    assert_eq!(hec.outstanding_events(), 1);
    assert_eq!(hec.max_outstanding_events(), 2);
    assert_eq!(hec.pending_ack_ids(), BTreeSet::from([3]));
    assert_eq!(
        hec.ack_polls().iter().filter(|p| p.status == 200).count(),
        4
    );

    let problems = hec.take_problems();
    let want = [
        "ack poll while acks are disabled",
        "ack poll on unknown channel",
        "no Authorization header",
        "wrong token",
        "no X-Splunk-Request-Channel header",
        "channel is not a UUID",
        "was never issued",
        "asked again after it was acknowledged",
        "ack body is not",
    ];
    for w in want {
        assert!(
            problems.iter().any(|p| p.contains(w)),
            "{w:?} not in {problems:#?}"
        );
    }
}
