//! Routing to several sinks with per-sink filters (`[sinks.filter]`: `min_severity`, `kinds`,
//! `vendors`; an event must pass every given condition to be queued for that sink):
//!
//! * one source to two file sinks, the second with `min_severity = "high"`: the first gets every
//!   event, the second only critical, high and unknown ones;
//! * two vendors' sources to sinks filtered by `kinds`, by `vendors`, and by both;
//! * a source whose events all miss its only sink's filter still gets 200 and writes nothing;
//! * a stuck sink (an http sink whose receiver never answers) does not keep the other sink of the
//!   same source from receiving every event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use http::StatusCode;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

const AUTH: (&str, &str) = ("authorization", "Bearer tok");
const WALLARM_TOKEN: &str = "wallarm-route-tok-31c9";
const PRISMA_TOKEN: &str = "prisma-route-tok-88a2";

/// A file sink `id` writing `{dir}/<id>.ndjson`, with no linger and an optional filter table.
fn file_sink(id: &str, filter: &str) -> String {
    let filter = if filter.is_empty() {
        String::new()
    } else {
        format!("[sinks.filter]\n{filter}\n")
    };
    format!(
        r#"
[[sinks]]
id = "{id}"
type = "file"
path = "{{dir}}/{id}.ndjson"
fsync = "never"
[sinks.batch]
linger = "0ms"
{filter}"#
    )
}

/// The complete records of a sink file so far (a record still being written is not read).
fn records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .map_while(Result::ok)
        .collect()
}

fn sink_file(gw: &TestGateway, id: &str) -> std::path::PathBuf {
    gw.dir.path().join(format!("{id}.ndjson"))
}

fn ids(gw: &TestGateway, sink: &str) -> Vec<String> {
    records(&sink_file(gw, sink))
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn send_ok(gw: &TestGateway, source: &str, header: (&str, &str), body: String) -> Answer {
    let a = send(gw.addr(), post(gw.addr(), source, &[header], body)).await;
    assert_eq!(a.status, StatusCode::OK, "{source}: {a:?}");
    a
}

/// Waits until `sink` holds `want.len()` records and checks that they are `want` (by id, in
/// order); [`stop_with_nothing_more`] checks at the end that nothing more arrived.
async fn expect_ids(gw: &TestGateway, sink: &str, want: &[&str]) {
    let path = sink_file(gw, sink);
    eventually(&format!("{sink} has {} records", want.len()), || {
        records(&path).len() >= want.len()
    })
    .await;
    assert_eq!(ids(gw, sink), want, "sink {sink}");
}

/// Stops the gateway, which drains every queue before it ends, and checks that each of
/// `sinks` holds the same records after the drain as before it: nothing more arrived.
async fn stop_with_nothing_more(gw: TestGateway, sinks: &[&str]) {
    let before: Vec<Vec<String>> = sinks.iter().map(|s| ids(&gw, s)).collect();
    let dir = gw.stop().await;
    for (sink, before) in sinks.iter().zip(before) {
        let after: Vec<String> = records(&dir.path().join(format!("{sink}.ndjson")))
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            after, before,
            "sink {sink}: more arrived after the expected records"
        );
    }
}

#[tokio::test]
async fn min_severity_filter_on_the_second_sink() {
    let config = format!(
        r#"{PLAIN_SERVER}{all}{high}
[[sources]]
id = "demo"
vendor = "generic"
sinks = ["all", "high"]
auth = {{ scheme = "token", prefix = "Bearer ", secret = "tok" }}
"#,
        all = file_sink("all", ""),
        high = file_sink("high", r#"min_severity = "high""#),
    );
    let gw = start(&config).await;
    let events = [
        ("e-crit", "critical"),
        ("e-info", "informational"),
        ("e-high", "high"),
        ("e-med", "medium"),
        ("e-low", "low"),
    ];
    let body = format!(
        "[{}]",
        events
            .iter()
            .map(|(id, sev)| format!(r#"{{"id":"{id}","severity":"{sev}"}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    let a = send_ok(&gw, "demo", AUTH, body).await;
    assert_eq!(a.json()["accepted"], 5, "{:?}", a.json());
    // One more without any severity: unknown, which passes every min_severity.
    send_ok(&gw, "demo", AUTH, r#"{"id":"e-none"}"#.to_owned()).await;
    send_ok(
        &gw,
        "demo",
        AUTH,
        r#"{"id":"e-high2","severity":"HIGH"}"#.to_owned(),
    )
    .await;

    expect_ids(
        &gw,
        "all",
        &[
            "e-crit", "e-info", "e-high", "e-med", "e-low", "e-none", "e-high2",
        ],
    )
    .await;
    expect_ids(&gw, "high", &["e-crit", "e-high", "e-none", "e-high2"]).await;
    assert_eq!(
        records(&sink_file(&gw, "high"))[2]["severity"],
        "unknown",
        "the event without a severity"
    );
    // The filtered sink gets the same records as the unfiltered one.
    let all = records(&sink_file(&gw, "all"));
    for r in records(&sink_file(&gw, "high")) {
        assert!(all.contains(&r), "{r}");
    }
    let text = get_text(gw.metrics_addr(), "/metrics").await.1;
    assert_eq!(
        metric(&text, "siemgate_events_delivered_total", &[("sink", "all")]),
        Some(7.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "siemgate_events_delivered_total",
            &[("sink", "high")]
        ),
        Some(4.0),
        "{text}"
    );
    // The three events the filter left out are counted for that sink only.
    assert_eq!(
        metric(
            &text,
            "siemgate_sink_events_filtered_total",
            &[("sink", "high")]
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "siemgate_sink_events_filtered_total",
            &[("sink", "all")]
        ),
        Some(0.0),
        "{text}"
    );
    stop_with_nothing_more(gw, &["all", "high"]).await;
}

#[tokio::test]
async fn kinds_and_vendors_filters() {
    let config = format!(
        r#"{PLAIN_SERVER}{all}{attacks}{prisma_only}{wallarm_sys_vuln}{prisma_attacks}{high_wallarm}
[[sources]]
id = "wallarm"
vendor = "wallarm"
sinks = ["all", "attacks", "prisma_only", "wallarm_sys_vuln", "prisma_attacks", "high_wallarm"]
auth = {{ scheme = "token", secret = "{WALLARM_TOKEN}" }}

[[sources]]
id = "prisma"
vendor = "prisma_cloud"
sinks = ["all", "attacks", "prisma_only", "wallarm_sys_vuln", "prisma_attacks", "high_wallarm"]
auth = {{ scheme = "token", secret = "{PRISMA_TOKEN}" }}
"#,
        all = file_sink("all", ""),
        attacks = file_sink("attacks", r#"kinds = ["attack"]"#),
        prisma_only = file_sink("prisma_only", r#"vendors = ["prisma_cloud"]"#),
        wallarm_sys_vuln = file_sink(
            "wallarm_sys_vuln",
            r#"kinds = ["system", "vulnerability"]
vendors = ["wallarm"]"#
        ),
        prisma_attacks = file_sink(
            "prisma_attacks",
            r#"kinds = ["attack"]
vendors = ["prisma_cloud"]"#
        ),
        high_wallarm = file_sink(
            "high_wallarm",
            r#"min_severity = "high"
kinds = ["attack", "vulnerability"]
vendors = ["wallarm"]"#
        ),
    );
    let gw = start(&config).await;
    let wallarm = ("X-Auth-Token", WALLARM_TOKEN);
    let prisma = ("X-Redlock-Auth", PRISMA_TOKEN);
    // (source, header, fixture, expected id): one event each.
    let sends = [
        (
            "wallarm",
            wallarm,
            "wallarm-hit-flat-legacy-2020.json",
            "hits_production_6396_202006_v_1:vpuRfnIBVc0URvOZ6ALA",
        ), // attack, high
        (
            "prisma",
            prisma,
            "prisma_cloud-webhook-alert-open.json",
            "P-51307:open:NEW_ALERT:1700000100000",
        ), // alert, high
        (
            "wallarm",
            wallarm,
            "wallarm-vuln-flat-legacy-2020.json",
            "fe09b2fc1c9bc7f127cbb382716f3f31",
        ), // vulnerability, low
        (
            "wallarm",
            wallarm,
            "wallarm-create_user-flat-legacy-from-screenshot.json",
            "8a1913b08d97dd4338d93aa4b5a7548e",
        ), // system, informational
        (
            "prisma",
            prisma,
            "prisma_cloud-webhook-test-p0.json",
            "P-0:open:1600293588125",
        ), // test, informational
    ];
    for (source, header, f, _) in sends {
        let a = send_ok(&gw, source, header, fixture(f)).await;
        assert_eq!(a.json()["accepted"], 1, "{f}: {:?}", a.json());
    }
    let all: Vec<&str> = sends.iter().map(|s| s.3).collect();
    expect_ids(&gw, "all", &all).await;
    let recs = records(&sink_file(&gw, "all"));
    let kinds: Vec<&str> = recs.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["attack", "alert", "vulnerability", "system", "test"],
        "the fixtures' kinds"
    );
    expect_ids(&gw, "attacks", &[all[0]]).await;
    expect_ids(&gw, "prisma_only", &[all[1], all[4]]).await;
    expect_ids(&gw, "wallarm_sys_vuln", &[all[2], all[3]]).await;
    expect_ids(&gw, "prisma_attacks", &[]).await;
    expect_ids(&gw, "high_wallarm", &[all[0]]).await;
    stop_with_nothing_more(
        gw,
        &[
            "all",
            "attacks",
            "prisma_only",
            "wallarm_sys_vuln",
            "prisma_attacks",
            "high_wallarm",
        ],
    )
    .await;
}

#[tokio::test]
async fn events_that_miss_every_sink_filter_still_get_200() {
    let config = format!(
        r#"{PLAIN_SERVER}{high}{attacks}
[[sources]]
id = "demo"
vendor = "generic"
sinks = ["high", "attacks"]
auth = {{ scheme = "token", prefix = "Bearer ", secret = "tok" }}
"#,
        high = file_sink("high", r#"min_severity = "high""#),
        attacks = file_sink("attacks", r#"kinds = ["attack"]"#),
    );
    let gw = start(&config).await;
    let a = send(
        gw.addr(),
        post(
            gw.addr(),
            "demo",
            &[AUTH],
            // Both miss both filters (an event without a severity would pass min_severity).
            r#"[{"id":"m-1","severity":"low"},{"id":"m-2","severity":"informational"}]"#,
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let receipt = a.json();
    assert!(receipt.is_object(), "{receipt}");
    // Routing still works for the same source: a high event reaches `high` (not `attacks`).
    let a = send_ok(
        &gw,
        "demo",
        AUTH,
        r#"{"id":"m-3","severity":"high"}"#.to_owned(),
    )
    .await;
    assert_eq!(a.json(), json!({"accepted": 1}));
    expect_ids(&gw, "high", &["m-3"]).await;
    expect_ids(&gw, "attacks", &[]).await;
    let text = get_text(gw.metrics_addr(), "/metrics").await.1;
    for sink in ["high", "attacks"] {
        assert_eq!(
            metric(&text, "siemgate_events_failed_total", &[("sink", sink)]).unwrap_or(0.0),
            0.0,
            "{text}"
        );
    }
    stop_with_nothing_more(gw, &["high", "attacks"]).await;
}

/// Accepts connections on 127.0.0.1:0 and reads whatever comes, but never answers.
async fn silent_receiver() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bytes = Arc::new(AtomicUsize::new(0));
    let seen = bytes.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            seen.fetch_add(n, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    (addr, bytes)
}

#[tokio::test]
async fn a_stuck_sink_does_not_stop_the_other_sink() {
    let (stuck_addr, stuck_bytes) = silent_receiver().await;
    let config = format!(
        r#"{PLAIN_SERVER}{FILE_SINK}
[[sinks]]
id = "stuck"
type = "http"
url = "http://{stuck_addr}/never"
body = "event"
request_timeout = "60s"
[sinks.batch]
linger = "0ms"

[[sources]]
id = "demo"
vendor = "generic"
sinks = ["stuck", "out"]
auth = {{ scheme = "token", prefix = "Bearer ", secret = "tok" }}
"#
    )
    .replace("shutdown_grace = \"10s\"", "shutdown_grace = \"1s\"");
    assert!(config.contains("shutdown_grace = \"1s\""));
    let gw = start(&config).await;
    let n = 20;
    for i in 0..n {
        let a = send(
            gw.addr(),
            post(
                gw.addr(),
                "demo",
                &[AUTH],
                format!(r#"{{"id":"s-{i}","severity":"high"}}"#),
            ),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "event {i}: {a:?}");
    }
    let out = gw.out();
    eventually("every event in the file sink", || records(&out).len() == n).await;
    let want: Vec<String> = (0..n).map(|i| format!("s-{i}")).collect();
    assert_eq!(ids(&gw, "out"), want);
    eventually("the stuck receiver got a request", || {
        stuck_bytes.load(Ordering::Relaxed) > 0
    })
    .await;
    let text = get_text(gw.metrics_addr(), "/metrics").await.1;
    assert_eq!(
        metric(&text, "siemgate_events_delivered_total", &[("sink", "out")]),
        Some(n as f64),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "siemgate_events_delivered_total",
            &[("sink", "stuck")]
        ),
        Some(0.0),
        "{text}"
    );
    gw.stop().await;
}
