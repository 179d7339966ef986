//! The Splunk HEC sink end to end: vendor payloads are POSTed to `/hooks/<source>` of a real
//! gateway on 127.0.0.1, which forwards them to a loopback HEC (`common/hec.rs`) that checks
//! the wire format strictly and answers from a script.
//!
//! Contract: `/work/notes/sinks-spec.md`, sections "Splunk HEC" and "Common to all sinks".
//!
//! Every test uses `[sinks.batch] linger = "0ms"` and posts each batch of events in one request,
//! whose events are queued at once, so the first HEC request of a test carries exactly the
//! events of the first POST. Every wait is bounded (`eventually`: 10 s).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/hec.rs"]
mod hec;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use hec::{epoch_ms_of_rfc3339, HecEvent, HecServer, Scripted};
use http::StatusCode;
use serde_json::{json, Value};

const TOKEN: &str = "5b0c7c4e-8a0f-4f3e-9d57-2f1c0e6a9b11";
const TOKEN2: &str = "e1d2c3b4-a596-4877-8899-aabbccddeeff";

const PRISMA_SEVERITIES: [&str; 5] = ["high", "medium", "low", "critical", "informational"];

/// [`common::prisma_alert`] `i`, its severity cycling through `PRISMA_SEVERITIES`.
fn prisma_alert(i: usize) -> Value {
    let mut a = common::prisma_alert(i);
    a["severity"] = json!(PRISMA_SEVERITIES[i % PRISMA_SEVERITIES.len()]);
    a
}

/// Wallarm hit number `i`: id `hits_production_1111_202312_v_1:doc<i>` once normalized.
fn wallarm_hit(i: usize) -> Value {
    let mut h = fixture_element("wallarm-new_hits-array-2023.json");
    h["details"]["hit"]["id"] = json!(["hits_production_1111_202312_v_1", format!("doc{i:03}")]);
    h["details"]["hit"]["request_time"] = json!(1_703_519_823 + i as i64);
    h
}

fn wallarm_id(i: usize) -> String {
    format!("hits_production_1111_202312_v_1:doc{i:03}")
}

/// A HEC sink section. `extra` goes right after the keys every HEC sink has (more keys, then
/// maybe more tables); the batch table comes last.
fn hec_sink(id: &str, url: &str, token: &str, extra: &str, batch_max_events: usize) -> String {
    format!(
        r#"
[[sinks]]
id = "{id}"
type = "splunk_hec"
url = "{url}"
token = "{token}"
{extra}
[sinks.batch]
max_events = {batch_max_events}
linger = "0ms"
"#
    )
}

/// A source without auth (loopback tests) routing to `sinks`; `extra` may hold `[sources.hec]`.
fn source(id: &str, vendor: &str, sinks: &[&str], extra: &str) -> String {
    let sinks = toml_list(sinks.iter().copied());
    format!(
        r#"
[[sources]]
id = "{id}"
vendor = "{vendor}"
sinks = [{sinks}]
auth = {{ scheme = "none", allow_unauthenticated = true }}
{extra}
"#
    )
}

/// The usual gateway: one HEC sink `splunk` at `url` (host `gw-01`, batches of up to 50 events
/// unless `sink_extra` says otherwise) fed by source `prisma`.
fn one_sink_config(url: &str, sink_extra: &str, batch_max_events: usize) -> String {
    let host = "host = \"gw-01\"\n";
    PLAIN_SERVER.to_owned()
        + &hec_sink(
            "splunk",
            url,
            TOKEN,
            &(host.to_owned() + sink_extra),
            batch_max_events,
        )
        + &source("prisma", "prisma_cloud", &["splunk"], "")
}

/// Polls `/metrics` (bounded) until `name{sink}` is at least `want`; returns its value.
async fn sink_metric_reaches(gw: &TestGateway, name: &str, sink: &str, want: f64) -> f64 {
    gw.sink_metric_until(name, sink, |v| v.is_some_and(|v| v >= want))
        .await
        .unwrap_or_default()
}

/// Asserts a not-ready `/readyz` body names `sink` in one of its reasons.
fn assert_names_sink(body: &Value, sink: &str) {
    assert_eq!(body["status"], "not_ready", "{body}");
    let named = body["reasons"].as_array().is_some_and(|r| {
        r.iter()
            .any(|r| r.as_str().is_some_and(|r| r.contains(sink)))
    });
    assert!(named, "/readyz reasons do not name sink {sink:?}: {body}");
}

/// Waits (bounded) until `hec` indexed `n` events and checks it indexed exactly `n`;
/// [`stop_with_nothing_more`] checks at the end of the test that nothing more arrived.
async fn wait_indexed(hec: &HecServer, n: usize) -> Vec<HecEvent> {
    eventually(&format!("{n} events indexed"), || hec.indexed_count() >= n).await;
    let all = hec.indexed();
    assert_eq!(
        all.len(),
        n,
        "more events indexed than sent: {:?}",
        hec.indexed_ids()
    );
    all
}

/// Stops the gateway, which drains every queue before it ends, and checks that each of
/// `hecs` indexed nothing during the drain: nothing more arrived after the expected events.
async fn stop_with_nothing_more(gw: TestGateway, hecs: &[&HecServer]) {
    let before: Vec<Vec<String>> = hecs.iter().map(|h| h.indexed_ids()).collect();
    gw.stop().await;
    for (hec, before) in hecs.iter().zip(before) {
        assert_eq!(hec.indexed_ids(), before, "more events indexed than sent");
    }
}

/// Every id appears exactly once among `events`.
fn assert_each_once(events: &[HecEvent]) {
    let mut seen = BTreeMap::new();
    for e in events {
        *seen.entry(e.id()).or_insert(0) += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "indexed more than once: {dups:?}");
}

fn machine_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// What one indexed event's envelope should hold.
struct Envelope<'a> {
    host: &'a str,
    source: &'a str,
    sourcetype: &'a str,
    index: Option<&'a str>,
}

/// Checks the envelope of `e` against `want`, its `time` against the event's `time`, and its
/// `fields` against the event's vendor, severity and kind.
fn assert_envelope(what: &str, e: &HecEvent, want: &Envelope<'_>) {
    let id = e.id();
    assert_eq!(e.host, want.host, "{what} {id}: host");
    assert_eq!(e.source, want.source, "{what} {id}: source");
    assert_eq!(e.sourcetype, want.sourcetype, "{what} {id}: sourcetype");
    assert_eq!(e.index.as_deref(), want.index, "{what} {id}: index");
    let event_time = e.event["time"].as_str().unwrap_or_else(|| {
        panic!("{what} {id}: the event has no time: {}", e.event);
    });
    assert_eq!(
        e.time_ms,
        epoch_ms_of_rfc3339(event_time),
        "{what} {id}: time {} is not the event's time {event_time}",
        e.time_text
    );
    for key in ["vendor", "severity", "kind"] {
        assert_eq!(
            e.fields.get(key).map(String::as_str),
            e.event[key].as_str(),
            "{what} {id}: fields.{key} (fields {:?})",
            e.fields
        );
    }
}

/// Every event POST carries the token, the sink's one UUID channel, JSON content type and the
/// expected content encoding; returns the channel.
fn assert_request_headers(what: &str, hec: &HecServer, gzip: bool) -> String {
    let requests = hec.event_requests();
    assert!(!requests.is_empty(), "{what}: no event request");
    let channel = hec.channel().expect("a channel");
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(
            r.header("authorization").as_deref(),
            Some(format!("Splunk {}", token_of(what)).as_str()),
            "{what}: request {i}"
        );
        assert_eq!(
            r.header(hec::CHANNEL_HEADER).as_deref(),
            Some(channel.as_str()),
            "{what}: request {i}: channel"
        );
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{what}: request {i}: content-type {:?}",
            r.header("content-type")
        );
        assert_eq!(r.gzip, gzip, "{what}: request {i}: Content-Encoding gzip");
        if gzip {
            assert_eq!(r.header("content-encoding").as_deref(), Some("gzip"));
        } else {
            assert_eq!(r.header("content-encoding"), None, "{what}: request {i}");
            assert_eq!(r.body_len, r.decoded.len());
        }
    }
    channel
}

fn token_of(sink: &str) -> &'static str {
    if sink == "splunk_plain" {
        TOKEN2
    } else {
        TOKEN
    }
}

/// N events posted (two sources, three POSTs) arrive exactly once each, in order, with the
/// right envelope, at two HEC sinks (gzip by default, and `gzip = false` with every default
/// left as is); the `event` object is the one the file sink writes; the per-source
/// `[sources.hec]` override applies to both HEC sinks.
#[tokio::test]
async fn batches_arrive_complete_with_the_right_envelope() {
    let gz = HecServer::start(TOKEN).await;
    let plain = HecServer::start(TOKEN2).await;
    let config = PLAIN_SERVER.to_owned()
        + &hec_sink(
            "splunk",
            &gz.url(),
            TOKEN,
            "host = \"gw-01\"\nsourcetype = \"siemgate:test\"\nindex = \"security\"",
            50,
        )
        + &hec_sink("splunk_plain", &plain.url(), TOKEN2, "gzip = false", 50)
        + FILE_SINK
        + &source(
            "prisma",
            "prisma_cloud",
            &["splunk", "splunk_plain", "out"],
            "[sources.hec]\nhost = \"prisma-edge\"\nsource = \"prisma:webhook\"\nsourcetype = \"prisma:alert\"\nindex = \"cloud\"",
        )
        + &source("wallarm", "wallarm", &["splunk", "splunk_plain", "out"], "");
    let gw = start(&config).await;

    let first: Vec<Value> = (0..5).map(prisma_alert).collect();
    let hits: Vec<Value> = (0..3).map(wallarm_hit).collect();
    let second: Vec<Value> = (5..9).map(prisma_alert).collect();
    post_events(&gw, "prisma", &first).await;
    post_events(&gw, "wallarm", &hits).await;
    post_events(&gw, "prisma", &second).await;
    let mut want_ids = prisma_ids(0..5);
    want_ids.extend((0..3).map(wallarm_id));
    want_ids.extend(prisma_ids(5..9));
    let n = want_ids.len();

    eventually("12 lines in the file sink", || gw.lines().len() >= n).await;
    let file_events = gw.lines();
    let gz_events = wait_indexed(&gz, n).await;
    let plain_events = wait_indexed(&plain, n).await;
    gz.assert_no_problems();
    plain.assert_no_problems();

    let hostname = machine_hostname();
    for (sink, events) in [("splunk", &gz_events), ("splunk_plain", &plain_events)] {
        let ids: Vec<String> = events.iter().map(HecEvent::id).collect();
        assert_eq!(ids, want_ids, "{sink}: indexed ids, in order");
        for (i, e) in events.iter().enumerate() {
            assert_eq!(
                e.event, file_events[i],
                "{sink}: event {i} differs from the file sink's record"
            );
            let from_prisma = e.event["source"] == "prisma";
            let want = match (sink, from_prisma) {
                (_, true) => Envelope {
                    host: "prisma-edge",
                    source: "prisma:webhook",
                    sourcetype: "prisma:alert",
                    index: Some("cloud"),
                },
                ("splunk", false) => Envelope {
                    host: "gw-01",
                    source: "siemgate:wallarm",
                    sourcetype: "siemgate:test",
                    index: Some("security"),
                },
                (_, false) => Envelope {
                    host: e.host.as_str(),
                    source: "siemgate:wallarm",
                    sourcetype: "siemgate:ocsf",
                    index: None,
                },
            };
            assert_envelope(sink, e, &want);
            if sink == "splunk_plain" && !from_prisma {
                if let Some(h) = &hostname {
                    assert_eq!(&e.host, h, "{sink}: default host is the machine's hostname");
                }
            }
        }
    }
    // The Prisma alerts' times are their alertTs, milliseconds included.
    for (i, e) in gz_events
        .iter()
        .filter(|e| e.event["vendor"] == "prisma_cloud")
        .enumerate()
    {
        assert_eq!(e.time_ms, prisma_ts(i), "{}: time {}", e.id(), e.time_text);
        assert_eq!(
            e.fields.get("severity").map(String::as_str),
            Some(PRISMA_SEVERITIES[i % PRISMA_SEVERITIES.len()]),
            "{}",
            e.id()
        );
        assert_eq!(e.fields.get("kind").map(String::as_str), Some("alert"));
        assert_eq!(
            e.fields.get("vendor").map(String::as_str),
            Some("prisma_cloud")
        );
    }

    let gz_channel = assert_request_headers("splunk", &gz, true);
    let plain_channel = assert_request_headers("splunk_plain", &plain, false);
    // The health probe at start uses the same token and channel.
    for (sink, server, channel) in [
        ("splunk", &gz, &gz_channel),
        ("splunk_plain", &plain, &plain_channel),
    ] {
        let probes = server.health_requests();
        assert!(
            !probes.is_empty(),
            "{sink}: no GET {} at start",
            hec::HEALTH_PATH
        );
        for p in &probes {
            assert_eq!(p.method, http::Method::GET, "{sink}");
            assert_eq!(
                p.header(hec::CHANNEL_HEADER).as_deref(),
                Some(channel.as_str()),
                "{sink}: health probe channel"
            );
        }
    }

    let text = gw.metrics_text().await;
    for sink in ["splunk", "splunk_plain"] {
        assert_eq!(
            metric(&text, "siemgate_events_delivered_total", &[("sink", sink)]),
            Some(n as f64),
            "{sink}: {text}"
        );
        assert_eq!(
            metric(&text, "siemgate_events_failed_total", &[("sink", sink)]).unwrap_or(0.0),
            0.0,
            "{sink}"
        );
    }
    stop_with_nothing_more(gw, &[&gz, &plain]).await;
    gz.assert_no_problems();
    plain.assert_no_problems();
}

/// 503 code 9, 500 code 8, 429 with `Retry-After: 1` and 408 are retried with the same events
/// until 200; every event is indexed exactly once; the first retry comes quickly and the one
/// after the 429 waits the second it was told; `siemgate_sink_retries_total` counts the four.
#[tokio::test]
async fn retryable_answers_are_retried_and_every_event_arrives_once() {
    let hec = HecServer::start(TOKEN).await;
    hec.script([
        Scripted::busy(),
        Scripted::internal_error(),
        Scripted::too_many_requests(1),
        Scripted::new(408, json!({"text": "Request Timeout", "code": 8})),
    ]);
    let gw = start(&one_sink_config(&hec.url(), "", 50)).await;
    let alerts: Vec<Value> = (0..5).map(prisma_alert).collect();
    post_events(&gw, "prisma", &alerts).await;

    let indexed = wait_indexed(&hec, 5).await;
    hec.assert_no_problems();
    let ids: Vec<String> = indexed.iter().map(HecEvent::id).collect();
    assert_eq!(ids, prisma_ids(0..5), "indexed once each, in order");
    assert_each_once(&indexed);

    let requests = hec.event_requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 500, 429, 408, 200], "event requests");
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(r.ids(), prisma_ids(0..5), "request {i} carries the batch");
    }
    let first_retry = requests[1].at - requests[0].at;
    assert!(
        first_retry < Duration::from_secs(1),
        "first retry after {first_retry:?} (spec: <= 100 ms)"
    );
    let after_429 = requests[3].at - requests[2].at;
    assert!(
        after_429 >= Duration::from_millis(950),
        "Retry-After: 1 not honoured: retried {after_429:?} after the 429"
    );

    assert_eq!(
        sink_metric_reaches(&gw, "siemgate_sink_retries_total", "splunk", 4.0).await,
        4.0
    );
    assert_eq!(
        gw.sink_metric("siemgate_events_delivered_total", "splunk")
            .await
            .unwrap_or(0.0),
        5.0
    );
    assert_eq!(
        gw.sink_metric("siemgate_events_failed_total", "splunk")
            .await
            .unwrap_or(0.0),
        0.0
    );
    stop_with_nothing_more(gw, &[&hec]).await;
    hec.assert_no_problems();
}

/// 400 code 6 with `invalid-event-number: 2` on a batch of 5: events 0 and 1 count as indexed
/// and are never sent again, event 2 is refused permanently (counted failed), events 3 and 4
/// are indexed from a later request.
#[tokio::test]
async fn data_error_drops_only_the_invalid_event() {
    let hec = HecServer::start(TOKEN).await;
    hec.script([Scripted::data_error(6, 2)]);
    let gw = start(&one_sink_config(
        &hec.url(),
        "dead_letter_path = \"{dir}/dead.ndjson\"\n",
        50,
    ))
    .await;
    let alerts: Vec<Value> = (0..5).map(prisma_alert).collect();
    post_events(&gw, "prisma", &alerts).await;

    let indexed = wait_indexed(&hec, 4).await;
    hec.assert_no_problems();
    let ids: Vec<String> = indexed.iter().map(HecEvent::id).collect();
    assert_eq!(
        ids,
        [prisma_id(0), prisma_id(1), prisma_id(3), prisma_id(4)],
        "indexed"
    );
    assert_each_once(&indexed);

    let requests = hec.event_requests();
    assert_eq!(requests[0].ids(), prisma_ids(0..5), "the first request");
    assert_eq!(requests[0].status, 400);
    for id in [prisma_id(0), prisma_id(1)] {
        assert_eq!(
            hec.times_sent(&id),
            1,
            "{id} was indexed and must not be sent again"
        );
    }
    assert_eq!(
        hec.times_sent(&prisma_id(2)),
        1,
        "the invalid event must not be sent again"
    );
    assert_eq!(requests.len(), 2, "one more request for events 3 and 4");
    assert_eq!(requests[1].ids(), [prisma_id(3), prisma_id(4)]);
    assert_eq!(requests[1].status, 200);

    assert_eq!(
        sink_metric_reaches(&gw, "siemgate_events_failed_total", "splunk", 1.0).await,
        1.0
    );
    assert_eq!(
        gw.sink_metric("siemgate_events_delivered_total", "splunk")
            .await
            .unwrap_or(0.0),
        4.0
    );
    // The refused event is in the dead-letter file: the HEC envelope it would have been, the
    // reason HEC gave, the sink and a time.
    let dead = gw.dir.path().join("dead.ndjson");
    eventually("a dead letter", || read_lines(&dead).len() == 1).await;
    let line = &read_lines(&dead)[0];
    assert_eq!(line["sink"], "splunk", "{line}");
    let reason = line["reason"].as_str().unwrap();
    assert!(reason.contains("code 6"), "{reason}");
    let envelope: Value = serde_json::from_str(line["event"].as_str().unwrap()).unwrap();
    assert_eq!(envelope["event"]["id"], prisma_id(2), "{envelope}");
    assert!(line["time"].as_str().unwrap().ends_with('Z'), "{line}");
    assert_eq!(
        gw.sink_metric("siemgate_dead_letters_total", "splunk")
            .await
            .unwrap_or(0.0),
        1.0
    );
    stop_with_nothing_more(gw, &[&hec]).await;
    hec.assert_no_problems();
}

/// 413 on a request of 8 events: the sink halves its requests (at most 4 events each after
/// that) and all 8 events are indexed once, in order.
#[tokio::test]
async fn payload_too_large_halves_the_batch() {
    let hec = HecServer::start(TOKEN).await;
    hec.script([Scripted::too_large()]);
    let gw = start(&one_sink_config(&hec.url(), "", 50)).await;
    let alerts: Vec<Value> = (0..8).map(prisma_alert).collect();
    post_events(&gw, "prisma", &alerts).await;

    let indexed = wait_indexed(&hec, 8).await;
    hec.assert_no_problems();
    let ids: Vec<String> = indexed.iter().map(HecEvent::id).collect();
    assert_eq!(ids, prisma_ids(0..8), "indexed once each, in order");
    assert_each_once(&indexed);

    let requests = hec.event_requests();
    assert_eq!(requests[0].ids(), prisma_ids(0..8), "the first request");
    assert_eq!(requests[0].status, 413);
    assert!(requests.len() >= 3, "{} requests", requests.len());
    for (i, r) in requests.iter().enumerate().skip(1) {
        assert!(
            r.events.len() <= 4,
            "request {i} after the 413 has {} events (want <= 4)",
            r.events.len()
        );
        assert_eq!(r.status, 200, "request {i}");
    }
    assert_eq!(
        gw.sink_metric("siemgate_events_delivered_total", "splunk")
            .await
            .unwrap_or(0.0),
        8.0
    );
    assert_eq!(
        gw.sink_metric("siemgate_events_failed_total", "splunk")
            .await
            .unwrap_or(0.0),
        0.0
    );
    stop_with_nothing_more(gw, &[&hec]).await;
    hec.assert_no_problems();
}

/// A single event answered 413 is refused permanently (like a data error at 0): counted failed,
/// never sent again, and the next event goes through.
#[tokio::test]
async fn payload_too_large_for_one_event_refuses_it() {
    let hec = HecServer::start(TOKEN).await;
    hec.script([Scripted::too_large()]);
    let gw = start(&one_sink_config(&hec.url(), "", 50)).await;
    post_events(&gw, "prisma", &[prisma_alert(0)]).await;
    assert_eq!(
        sink_metric_reaches(&gw, "siemgate_events_failed_total", "splunk", 1.0).await,
        1.0
    );
    post_events(&gw, "prisma", &[prisma_alert(1)]).await;
    let indexed = wait_indexed(&hec, 1).await;
    hec.assert_no_problems();
    assert_eq!(indexed[0].id(), prisma_id(1));
    assert_eq!(
        hec.times_sent(&prisma_id(0)),
        1,
        "the refused event was sent again"
    );
    assert_eq!(
        gw.sink_metric("siemgate_events_delivered_total", "splunk")
            .await
            .unwrap_or(0.0),
        1.0
    );
    stop_with_nothing_more(gw, &[&hec]).await;
    hec.assert_no_problems();
}

/// 403 code 4 holds the queue: nothing is dropped or skipped, `/readyz` answers 503 naming the
/// sink; once the server accepts again every event arrives once, in order, and `/readyz` is 200.
#[tokio::test]
async fn token_error_holds_the_queue_until_it_works() {
    let hec = HecServer::start(TOKEN).await;
    hec.set_fallback(Scripted::invalid_token());
    let gw = start(&one_sink_config(&hec.url(), "", 50)).await;
    let alerts: Vec<Value> = (0..6).map(prisma_alert).collect();
    post_events(&gw, "prisma", &alerts).await;

    eventually("three refused event requests", || {
        hec.event_request_count() >= 3
    })
    .await;
    let body = gw.readyz_becomes(StatusCode::SERVICE_UNAVAILABLE).await;
    assert_names_sink(&body, "splunk");
    assert_eq!(hec.indexed_count(), 0);
    let text = gw.metrics_text().await;
    let m = |name: &str| metric(&text, name, &[("sink", "splunk")]).unwrap_or(0.0);
    assert_eq!(m("siemgate_events_delivered_total"), 0.0, "{text}");
    assert_eq!(
        m("siemgate_events_failed_total"),
        0.0,
        "nothing dropped: {text}"
    );
    assert_eq!(
        m("siemgate_queue_events"),
        6.0,
        "all six still queued: {text}"
    );
    for (i, r) in hec.event_requests().iter().enumerate() {
        assert_eq!(r.status, 403, "request {i}");
        assert_eq!(r.ids(), prisma_ids(0..6), "request {i}: the held batch");
    }
    // Still not ready while it keeps failing.
    let (status, body) = gw.readyz_json().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    hec.set_fallback(Scripted::success());
    let indexed = wait_indexed(&hec, 6).await;
    let ids: Vec<String> = indexed.iter().map(HecEvent::id).collect();
    assert_eq!(ids, prisma_ids(0..6), "indexed once each, in order");
    gw.readyz_becomes(StatusCode::OK).await;
    assert_eq!(
        gw.sink_metric("siemgate_events_delivered_total", "splunk")
            .await
            .unwrap_or(0.0),
        6.0
    );
    assert_eq!(
        gw.sink_metric("siemgate_events_failed_total", "splunk")
            .await
            .unwrap_or(0.0),
        0.0
    );
    stop_with_nothing_more(gw, &[&hec]).await;
    hec.assert_no_problems();
}

/// A destination that refuses connections at first: the sink is not ready and retries; once a
/// server listens on the same port every event arrives once, in order, and it is ready again.
#[tokio::test]
async fn server_down_at_first_then_up_gets_every_event() {
    let addr = hec::free_addr();
    let gw = start(&one_sink_config(&format!("http://{addr}"), "", 50)).await;
    let alerts: Vec<Value> = (0..5).map(prisma_alert).collect();
    post_events(&gw, "prisma", &alerts).await;

    let body = gw.readyz_becomes(StatusCode::SERVICE_UNAVAILABLE).await;
    assert_names_sink(&body, "splunk");
    sink_metric_reaches(&gw, "siemgate_sink_retries_total", "splunk", 1.0).await;
    assert_eq!(
        gw.sink_metric("siemgate_events_failed_total", "splunk")
            .await
            .unwrap_or(0.0),
        0.0
    );

    let hec = HecServer::start_on(addr, TOKEN).await;
    let indexed = wait_indexed(&hec, 5).await;
    let ids: Vec<String> = indexed.iter().map(HecEvent::id).collect();
    assert_eq!(ids, prisma_ids(0..5), "indexed once each, in order");
    gw.readyz_becomes(StatusCode::OK).await;
    assert_eq!(
        gw.sink_metric("siemgate_events_delivered_total", "splunk")
            .await
            .unwrap_or(0.0),
        5.0
    );
    stop_with_nothing_more(gw, &[&hec]).await;
    hec.assert_no_problems();
}

/// `max_request_bytes` caps the uncompressed body: with a cap of about two events, every
/// request stays under it, no event is split (each request parses into whole events), and all
/// events arrive once, in order.
#[tokio::test]
async fn max_request_bytes_caps_every_body_without_splitting_events() {
    const CAP: usize = 9_000;
    let hec = HecServer::start(TOKEN).await;
    let gw = start(&one_sink_config(
        &hec.url(),
        &format!("max_request_bytes = {CAP}"),
        50,
    ))
    .await;
    let alerts: Vec<Value> = (0..12).map(prisma_alert).collect();
    post_events(&gw, "prisma", &alerts).await;

    let indexed = wait_indexed(&hec, 12).await;
    hec.assert_no_problems();
    let ids: Vec<String> = indexed.iter().map(HecEvent::id).collect();
    assert_eq!(ids, prisma_ids(0..12), "indexed once each, in order");

    let requests = hec.event_requests();
    let largest_event = indexed.iter().map(|e| e.text.len() + 1).max().unwrap();
    let total: usize = indexed.iter().map(|e| e.text.len() + 1).sum();
    assert!(
        largest_event * 2 <= CAP && total > CAP * 2,
        "test sizes: events up to {largest_event} bytes, {total} in all, cap {CAP}"
    );
    for (i, r) in requests.iter().enumerate() {
        assert!(r.gzip, "request {i}: gzip is the default");
        assert!(
            r.decoded.len() <= CAP,
            "request {i}: {} uncompressed bytes over max_request_bytes {CAP}",
            r.decoded.len()
        );
        assert!(!r.events.is_empty(), "request {i} has no event");
        assert_eq!(r.status, 200, "request {i}");
    }
    assert!(
        requests.len() >= total.div_ceil(CAP),
        "{} requests for {total} bytes under a cap of {CAP}",
        requests.len()
    );
    stop_with_nothing_more(gw, &[&hec]).await;
    hec.assert_no_problems();
}

/// A data error without `invalid-event-number` (400 code 13) means event 0: it is refused for
/// good and the rest of the request is indexed from the next one.
#[tokio::test]
async fn data_error_without_an_event_number_refuses_the_first_event() {
    let hec = HecServer::start(TOKEN).await;
    hec.script([Scripted::new(
        400,
        json!({"text": "Event field cannot be blank", "code": 13}),
    )]);
    let gw = start(&one_sink_config(&hec.url(), "", 50)).await;
    let alerts: Vec<Value> = (0..3).map(prisma_alert).collect();
    post_events(&gw, "prisma", &alerts).await;

    let indexed = wait_indexed(&hec, 2).await;
    hec.assert_no_problems();
    let ids: Vec<String> = indexed.iter().map(HecEvent::id).collect();
    assert_eq!(ids, prisma_ids(1..3), "indexed");
    assert_eq!(
        hec.times_sent(&prisma_id(0)),
        1,
        "the refused event was sent again"
    );
    let requests = hec.event_requests();
    assert_eq!(requests.len(), 2, "one more request for events 1 and 2");
    assert_eq!(requests[1].ids(), prisma_ids(1..3));
    assert_eq!(
        sink_metric_reaches(&gw, "siemgate_events_failed_total", "splunk", 1.0).await,
        1.0
    );
    assert_eq!(
        gw.sink_metric("siemgate_events_delivered_total", "splunk")
            .await
            .unwrap_or(0.0),
        2.0
    );
    stop_with_nothing_more(gw, &[&hec]).await;
    hec.assert_no_problems();
}

/// Configuration errors other than the token (400 code 7 incorrect index, 400 code 10 channel
/// missing, 404, 415, 401 code 2) hold the queue and are retried: nothing dropped or skipped,
/// every event indexed once, in order, once the server accepts.
#[tokio::test]
async fn other_config_errors_hold_the_queue_too() {
    let hec = HecServer::start(TOKEN).await;
    hec.script([
        Scripted::new(400, json!({"text": "Incorrect index", "code": 7})),
        Scripted::new(
            404,
            json!({"text": "The requested URL was not found on this server.", "code": 404}),
        ),
        Scripted::new(400, json!({"text": "Data channel is missing", "code": 10})),
        Scripted::new(415, json!({"text": "Unsupported Media Type", "code": 6})),
        Scripted::new(401, json!({"text": "Token is required", "code": 2})),
    ]);
    let gw = start(&one_sink_config(&hec.url(), "", 50)).await;
    let alerts: Vec<Value> = (0..4).map(prisma_alert).collect();
    post_events(&gw, "prisma", &alerts).await;

    let indexed = wait_indexed(&hec, 4).await;
    hec.assert_no_problems();
    let ids: Vec<String> = indexed.iter().map(HecEvent::id).collect();
    assert_eq!(ids, prisma_ids(0..4), "indexed once each, in order");
    let requests = hec.event_requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [400, 404, 400, 415, 401, 200], "event requests");
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(r.ids(), prisma_ids(0..4), "request {i}: the held batch");
    }
    assert_eq!(
        gw.sink_metric("siemgate_events_failed_total", "splunk")
            .await
            .unwrap_or(0.0),
        0.0,
        "nothing dropped"
    );
    assert_eq!(
        gw.sink_metric("siemgate_events_delivered_total", "splunk")
            .await
            .unwrap_or(0.0),
        4.0
    );
    gw.readyz_becomes(StatusCode::OK).await;
    stop_with_nothing_more(gw, &[&hec]).await;
    hec.assert_no_problems();
}

/// A wrong token shows at start, before any event: the health probe (same token and channel
/// as the event requests) fails, `/readyz` names the sink, and the sink keeps probing while not
/// ready; once the token is accepted it turns ready and delivers.
#[tokio::test]
async fn wrong_token_at_start_is_found_by_the_health_probe() {
    let hec = HecServer::start("some-other-token").await;
    let gw = start(&one_sink_config(&hec.url(), "", 50)).await;

    let body = gw.readyz_becomes(StatusCode::SERVICE_UNAVAILABLE).await;
    assert_names_sink(&body, "splunk");
    eventually("a second health probe while not ready", || {
        hec.health_requests().len() >= 2
    })
    .await;
    assert_eq!(hec.event_request_count(), 0);
    for p in hec.health_requests() {
        assert_eq!(p.method, http::Method::GET);
        assert_eq!(
            p.header("authorization").as_deref(),
            Some(format!("Splunk {TOKEN}").as_str())
        );
        assert_eq!(p.status, 403);
    }
    let problems = hec.take_problems();
    assert!(
        problems.iter().all(|p| p.ends_with("wrong token")),
        "{problems:#?}"
    );

    hec.set_token(TOKEN);
    gw.readyz_becomes(StatusCode::OK).await;
    let alerts: Vec<Value> = (0..3).map(prisma_alert).collect();
    post_events(&gw, "prisma", &alerts).await;
    let indexed = wait_indexed(&hec, 3).await;
    let ids: Vec<String> = indexed.iter().map(HecEvent::id).collect();
    assert_eq!(ids, prisma_ids(0..3));
    let channel = hec.channel().expect("a channel");
    for p in hec.requests() {
        assert_eq!(
            p.header(hec::CHANNEL_HEADER).as_deref(),
            Some(channel.as_str()),
            "{} {}",
            p.method,
            p.path
        );
    }
    stop_with_nothing_more(gw, &[&hec]).await;
    hec.assert_no_problems();
}

/// `time` is the event's time in epoch seconds with milliseconds, also before 1970:
/// -1 ms is `-0.001`, -1500 ms is `-1.5`.
#[tokio::test]
async fn time_keeps_its_value_before_1970() {
    let hec = HecServer::start(TOKEN).await;
    let gw = start(&one_sink_config(&hec.url(), "", 50)).await;
    let stamps: [i64; 4] = [1_700_000_000_005, 0, -1, -1_500];
    let alerts: Vec<Value> = stamps
        .iter()
        .enumerate()
        .map(|(i, ts)| {
            let mut a = prisma_alert(i);
            a["alertTs"] = json!(ts);
            a
        })
        .collect();
    post_events(&gw, "prisma", &alerts).await;
    let indexed = wait_indexed(&hec, 4).await;
    hec.assert_no_problems();
    for (e, ts) in indexed.iter().zip(stamps) {
        let event_time = e.event["time"].as_str().unwrap();
        assert_eq!(
            epoch_ms_of_rfc3339(event_time),
            ts,
            "{}: the decoder kept alertTs",
            e.id()
        );
        assert_eq!(
            e.time_ms,
            ts,
            "{}: HEC time {} for an event at {event_time} ({ts} ms)",
            e.id(),
            e.time_text
        );
    }
    stop_with_nothing_more(gw, &[&hec]).await;
    hec.assert_no_problems();
}

/// `request_timeout` bounds a request: a collector that does not answer within it is given up
/// on and the batch is sent again (here the slow answer was a 503, so nothing was indexed).
#[tokio::test]
async fn request_timeout_gives_up_on_a_silent_collector() {
    let hec = HecServer::start(TOKEN).await;
    hec.script([Scripted::busy().delayed(Duration::from_secs(8))]);
    let gw = start(&one_sink_config(&hec.url(), "request_timeout = \"1s\"", 50)).await;
    let alerts: Vec<Value> = (0..3).map(prisma_alert).collect();
    post_events(&gw, "prisma", &alerts).await;

    let indexed = wait_indexed(&hec, 3).await;
    hec.assert_no_problems();
    let ids: Vec<String> = indexed.iter().map(HecEvent::id).collect();
    assert_eq!(ids, prisma_ids(0..3));
    let requests = hec.event_requests();
    assert_eq!(requests.len(), 2, "the timed-out request and its retry");
    let gap = requests[1].at - requests[0].at;
    assert!(
        gap >= Duration::from_millis(900) && gap < Duration::from_secs(5),
        "retry {gap:?} after the unanswered request (request_timeout = 1s)"
    );
    assert_eq!(
        sink_metric_reaches(&gw, "siemgate_sink_retries_total", "splunk", 1.0).await,
        1.0
    );
    stop_with_nothing_more(gw, &[&hec]).await;
    hec.assert_no_problems();
}

/// An outage behind a disk queue: while the collector is down the gateway keeps accepting until
/// the queue bound, then answers 503 with Retry-After; once the collector is back, everything
/// accepted is indexed once, in order, and new requests are accepted again.
#[tokio::test]
async fn outage_with_a_disk_queue_accepts_to_the_bound_then_delivers_in_order() {
    let addr = hec::free_addr();
    let queue = "[sinks.queue]\ntype = \"disk\"\npath = \"{dir}/q\"\nmax_events = 8\n";
    let gw = start(&one_sink_config(&format!("http://{addr}"), queue, 50)).await;
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..12 {
        let body = serde_json::to_string(&[prisma_alert(i)]).unwrap();
        let a = send(
            gw.addr(),
            post(
                gw.addr(),
                "prisma",
                &[("content-type", "application/json")],
                body,
            ),
        )
        .await;
        match a.status {
            StatusCode::OK => {
                assert_eq!(refused, 0, "a 200 after a 503: the bound must hold");
                accepted.push(prisma_id(i));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(a.headers.contains_key("retry-after"), "{a:?}");
                assert_eq!(a.json()["error"], "queue_full", "{a:?}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {a:?}"),
        }
    }
    assert_eq!(accepted.len(), 8, "accepted up to the bound");
    assert_eq!(refused, 4);
    assert!(
        std::fs::read_dir(gw.dir.path().join("q"))
            .unwrap()
            .any(|e| e.unwrap().path().extension().is_some_and(|x| x == "seg")),
        "the accepted events are on disk"
    );

    let hec = HecServer::start_on(addr, TOKEN).await;
    let indexed = wait_indexed(&hec, 8).await;
    let ids: Vec<String> = indexed.iter().map(HecEvent::id).collect();
    assert_eq!(ids, accepted, "indexed once each, in order");
    assert_each_once(&indexed);
    post_events(&gw, "prisma", &[prisma_alert(20)]).await;
    wait_indexed(&hec, 9).await;
    stop_with_nothing_more(gw, &[&hec]).await;
    hec.assert_no_problems();
}
