//! The generic HTTP-out sink (`type = "http"`) end to end, against a loopback receiver on
//! 127.0.0.1:0 (a hyper 1 server that records every request and answers from a script):
//!
//! * `body = "event"`: one request per event, POST or PUT, `Content-Type: application/json`,
//!   the body is the Event JSON the file sink writes, `[sinks.headers]` sent (one from `${ENV}`);
//! * `body = "ndjson"`: one request per batch, one Event JSON per line, every event once, in order;
//! * `body = "template"`: placeholders rendered JSON-escaped (a title with `"`, `\` and a newline),
//!   `{{event}}`/`{{raw}}` inserted as JSON; an unknown placeholder is a config error at
//!   `sinks[i].template`;
//! * responses: a request that outlives `request_timeout` is retried; 503 then 200 delivers once;
//!   `Retry-After` is honoured; 408 and refused connections are retried; 400 and 422 refuse that
//!   event only (counted failed, the next one goes); 401, 403, 404 and 3xx hold the queue, make
//!   `/readyz` 503 naming the sink, and deliver once answered 200;
//! * `[sinks.headers]` from `@file:`, and a `content_type` override;
//! * `[sinks.signature]`: HMAC-SHA256 of the exact body (hex by default; base64 with a prefix),
//!   and a chain where gateway A signs and posts to gateway B's `hmac_sha256` source.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/http_rx.rs"]
mod http_rx;

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use common::*;
use http::StatusCode;
use http_rx::*;
use serde_json::{json, Value};
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const AUTH: (&str, &str) = ("authorization", "Bearer tok");
const PRISMA_TOKEN: &str = "prisma-tok-5e1b77";

/// A generic source `demo` (Bearer tok) routed to `sinks`.
fn demo_source(sinks: &str) -> String {
    format!(
        r#"
[[sources]]
id = "demo"
vendor = "generic"
sinks = {sinks}
auth = {{ scheme = "token", prefix = "Bearer ", secret = "tok" }}
"#
    )
}

fn event(id: &str, severity: &str) -> String {
    format!(r#"{{"id":"{id}","severity":"{severity}"}}"#)
}

async fn send_demo(gw: &TestGateway, body: impl Into<Bytes>) -> Answer {
    let a = send(gw.addr(), post(gw.addr(), "demo", &[AUTH], body)).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    a
}

fn hmac_of(secret: &str, body: &[u8]) -> Vec<u8> {
    hmac_sha256(secret.as_bytes(), &[body])
}

/// The file sink's lines, by event id.
fn file_line<'a>(lines: &'a [Value], id: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["id"] == id)
        .unwrap_or_else(|| panic!("no file line with id {id}: {lines:#?}"))
}

// ---------------------------------------------------------------------------------------------
// Body formats
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn event_body_is_one_request_per_event_with_headers_post_and_put() {
    const ENV_NAME: &str = "SIEMGATE_TEST_SINK_HTTP_HEADER_9C41D2";
    const ENV_VALUE: &str = "from-env-7a1f03e5";
    std::env::set_var(ENV_NAME, ENV_VALUE);
    let rx = Receiver::start(vec![]).await;
    let config = format!(
        r#"{PLAIN_SERVER}{FILE_SINK}
[[sinks]]
id = "hook"
type = "http"
url = "{post_url}"
body = "event"
request_timeout = "5s"
[sinks.headers]
"X-Api-Key" = "abc-123"
"X-From-Env" = "${{{ENV_NAME}}}"
[sinks.batch]
linger = "0ms"

[[sinks]]
id = "hook_put"
type = "http"
url = "{put_url}"
method = "PUT"
body = "event"
[sinks.batch]
linger = "0ms"

[[sources]]
id = "prisma"
vendor = "prisma_cloud"
sinks = ["out", "hook", "hook_put"]
auth = {{ scheme = "token", secret = "{PRISMA_TOKEN}" }}
"#,
        post_url = rx.url("/in/events"),
        put_url = rx.url("/put/here"),
    );
    let gw = start(&config).await;
    let addr = gw.addr();
    // Two fixtures, one alert each.
    for f in [
        "prisma_cloud-webhook-alert-open.json",
        "prisma_cloud-alert-created-asyncapi-example.json",
    ] {
        let a = send(
            addr,
            post(
                addr,
                "prisma",
                &[("X-Redlock-Auth", PRISMA_TOKEN)],
                fixture(f),
            ),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{f}: {a:?}");
        assert_eq!(a.json(), json!({"accepted": 1}), "{f}");
    }
    let out = gw.out();
    eventually("2 lines in the file sink", || read_lines(&out).len() == 2).await;
    eventually("2 requests at each path", || {
        rx.requests_to("/in/events").len() >= 2 && rx.requests_to("/put/here").len() >= 2
    })
    .await;
    for sink in ["hook", "hook_put"] {
        eventually_async(&format!("delivered_total{{sink={sink}}} == 2"), || async {
            gw.sink_metric("siemgate_events_delivered_total", sink)
                .await
                .unwrap_or(0.0)
                == 2.0
        })
        .await;
    }
    // Stopping drains the queues: what the sinks would still send has been sent.
    let _dir = gw.stop().await;

    let lines = read_lines(&out);
    assert_eq!(lines[0]["id"], "P-51307:open:NEW_ALERT:1700000100000");
    assert_eq!(lines[1]["id"], "P-12345678:open:1705314600000");
    for (path, method) in [("/in/events", "POST"), ("/put/here", "PUT")] {
        let reqs = rx.requests_to(path);
        assert_eq!(reqs.len(), 2, "{path}: one request per event: {reqs:#?}");
        for (r, line) in reqs.iter().zip(&lines) {
            assert_eq!(r.method, method, "{path}");
            assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
            let body = r.json();
            for key in [
                "id", "vendor", "severity", "title", "kind", "status", "source",
            ] {
                assert_eq!(body[key], line[key], "{path}: {key}");
            }
            assert_eq!(body["vendor"], "prisma_cloud");
            assert_eq!(body["severity"], "high");
            assert_eq!(body["source"], "prisma");
            assert_eq!(
                &body, line,
                "{path}: the body is the same Event JSON the file sink writes"
            );
        }
        assert_eq!(
            reqs[0].json()["title"],
            "AWS S3 buckets are accessible to public"
        );
        assert_eq!(reqs[1].json()["title"], "AWS S3 Bucket Publicly Accessible");
    }
    for r in rx.requests_to("/in/events") {
        assert_eq!(r.header("x-api-key"), Some("abc-123"));
        assert_eq!(
            r.header("x-from-env"),
            Some(ENV_VALUE),
            "a ${{ENV}} header value is resolved"
        );
    }
    for r in rx.requests_to("/put/here") {
        assert_eq!(r.header("x-api-key"), None, "headers are per sink");
        assert!(
            !format!("{:?}", r.headers).contains(PRISMA_TOKEN),
            "the source's credential is not forwarded"
        );
    }
}

#[tokio::test]
async fn ndjson_body_is_one_request_per_batch_with_every_event_once() {
    let rx = Receiver::start(vec![]).await;
    let config = format!(
        r#"{PLAIN_SERVER}{FILE_SINK}
[[sinks]]
id = "hook"
type = "http"
url = "{url}"
body = "ndjson"
[sinks.batch]
max_events = 2
linger = "200ms"
{source}"#,
        url = rx.url("/bulk"),
        source = demo_source(r#"["out", "hook"]"#),
    );
    let gw = start(&config).await;
    let ids: Vec<String> = (1..=5).map(|i| format!("nd-{i}")).collect();
    let body = format!(
        "[{}]",
        ids.iter()
            .map(|id| event(id, "medium"))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(send_demo(&gw, body).await.json(), json!({"accepted": 5}));
    let id = "nd-6".to_owned();
    assert_eq!(
        send_demo(&gw, event(&id, "low")).await.json(),
        json!({"accepted": 1})
    );
    let total = |rx: &Receiver| -> usize {
        rx.requests()
            .iter()
            .map(|r| {
                r.body
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .count()
            })
            .sum()
    };
    eventually("6 events at the receiver", || total(&rx) >= 6).await;
    let out = gw.out();
    eventually("6 lines in the file sink", || read_lines(&out).len() == 6).await;
    eventually_async("delivered_total{sink=hook} == 6", || async {
        gw.sink_metric("siemgate_events_delivered_total", "hook")
            .await
            .unwrap_or(0.0)
            == 6.0
    })
    .await;
    // Stopping drains the queues: what the sinks would still send has been sent.
    let _dir = gw.stop().await;
    let lines = read_lines(&out);
    let reqs = rx.requests();
    let mut got = Vec::new();
    for r in &reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/bulk");
        assert_eq!(
            r.header("content-type"),
            Some("application/x-ndjson"),
            "ndjson default content type"
        );
        let text = std::str::from_utf8(&r.body).unwrap();
        let n = text.lines().filter(|l| !l.is_empty()).count();
        assert!(
            (1..=2).contains(&n),
            "a batch holds 1..=max_events (2) events, got {n}: {text:?}"
        );
        for l in text.lines().filter(|l| !l.is_empty()) {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("line {l:?}: {e}"));
            assert_eq!(&v, file_line(&lines, v["id"].as_str().unwrap()));
            got.push(v["id"].as_str().unwrap().to_owned());
        }
    }
    let mut want = ids.clone();
    want.push(id);
    assert_eq!(got, want, "every event once, in order");
    assert!(
        reqs.len() >= 3 && reqs.len() < 6,
        "one request per batch, not per event: {} requests",
        reqs.len()
    );
}

/// A generic source with a mapping, so the event has a title, a resource and a source address.
fn mapped_source(sinks: &str) -> String {
    format!(
        r#"
[[sources]]
id = "mapped"
vendor = "generic"
sinks = {sinks}
auth = {{ scheme = "token", prefix = "Bearer ", secret = "tok" }}
[sources.mapping]
id = "/id"
severity = "/sev"
title = "/name"
resource_id = "/res"
src_ip = "/ip"
"#
    )
}

/// A template using many placeholders; `{{event}}` and `{{raw}}` unquoted, the rest quoted.
const TEMPLATE: &str = r#"{"text": "{{title}} on {{resource.id}}", "t": "{{title}}", "sev": "{{severity}}", "sid": {{severity_id}}, "id": "{{id}}", "vendor": "{{vendor}}", "source": "{{source}}", "kind": "{{kind}}", "status": "{{status}}", "time": "{{time}}", "ip": "{{network.src_ip}}", "desc": "{{description}}", "region": "{{resource.region}}", "event": {{event}}, "raw": {{raw}}}"#;

#[tokio::test]
async fn template_body_renders_escaped_fields_and_json_event_and_raw() {
    let rx = Receiver::start(vec![]).await;
    let config = format!(
        r#"{PLAIN_SERVER}{FILE_SINK}
[[sinks]]
id = "hook"
type = "http"
url = "{url}"
body = "template"
template = '{TEMPLATE}'
[sinks.batch]
linger = "0ms"
{source}"#,
        url = rx.url("/tpl"),
        source = mapped_source(r#"["out", "hook"]"#),
    );
    let gw = start(&config).await;
    let title = "He said \"hi\" \\ bye\nsecond line";
    let record = json!({
        "id": "tpl-1",
        "sev": "critical",
        "name": title,
        "res": "arn:aws:s3:::bucket-1",
        "ip": "192.0.2.9",
        "extra": {"n": [1, 2, 3]},
    });
    let body = serde_json::to_string(&record).unwrap();
    let a = send(gw.addr(), post(gw.addr(), "mapped", &[AUTH], body)).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let out = gw.out();
    eventually("1 line in the file sink", || read_lines(&out).len() == 1).await;
    eventually("1 request at the receiver", || rx.count() >= 1).await;
    // Stopping drains the queue: a second request would have been sent by now.
    let dir = gw.stop().await;

    let line = &read_lines(&dir.path().join("out.ndjson"))[0];
    assert_eq!(line["title"], title, "the mapping kept the title as sent");
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1, "one request per event");
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let text = std::str::from_utf8(&r.body).unwrap();
    let v: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("the rendered template is not JSON ({e}): {text}"));
    assert_eq!(v["t"], title, "{text}");
    assert_eq!(
        v["text"],
        format!("{title} on arn:aws:s3:::bucket-1"),
        "{text}"
    );
    assert_eq!(v["sev"], "critical");
    assert_eq!(v["sid"], line["severity_id"]);
    assert_eq!(v["id"], "tpl-1");
    assert_eq!(v["vendor"], "generic");
    assert_eq!(v["source"], "mapped");
    assert_eq!(v["kind"], line["kind"]);
    assert_eq!(v["status"], line["status"]);
    assert_eq!(v["time"], line["time"]);
    assert_eq!(v["ip"], "192.0.2.9");
    assert_eq!(v["desc"], "", "a missing value is empty");
    assert_eq!(v["region"], "", "a missing value is empty");
    assert_eq!(v["event"], *line, "{{{{event}}}} is the Event JSON object");
    assert_eq!(
        v["raw"], record,
        "{{{{raw}}}} is the vendor's original JSON"
    );
    // Only the template: nothing around it.
    assert!(text.trim_start().starts_with(r#"{"text": ""#), "{text}");
}

#[tokio::test]
async fn template_with_an_unknown_placeholder_is_a_config_error() {
    let config = format!(
        r#"{PLAIN_SERVER}
[[sinks]]
id = "hook"
type = "http"
url = "http://127.0.0.1:9/in"
body = "template"
template = '{{"a": "{{{{title}}}}", "b": "{{{{nosuch}}}}"}}'
{source}"#,
        source = demo_source(r#"["hook"]"#),
    );
    assert!(config.contains(r#"template = '{"a": "{{title}}", "b": "{{nosuch}}"}'"#));
    let file = siemgate::config::parse(&config).unwrap_or_else(|e| panic!("{e}"));
    let issues = match siemgate::config::validate(file) {
        Ok(_) => panic!("a template with {{{{nosuch}}}} was accepted"),
        Err(issues) => issues,
    };
    assert!(
        issues
            .iter()
            .any(|i| i.path.contains("template") && i.path.starts_with("sinks[0]")),
        "an issue at sinks[0].template: {issues:#?}"
    );

    // The same config with a known placeholder is valid.
    let good = config.replace("{{nosuch}}", "{{vendor}}");
    let file = siemgate::config::parse(&good).unwrap();
    if let Err(issues) = siemgate::config::validate(file) {
        panic!("known placeholders only, yet refused: {issues:#?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Responses: timeouts, retries, permanent refusals, held queue
// ---------------------------------------------------------------------------------------------

/// One http sink `hook` to `url` with extra top-level keys, and the `demo` source to it and `out`.
fn hook_config(url: &str, keys: &str) -> String {
    format!(
        r#"{PLAIN_SERVER}{FILE_SINK}
[[sinks]]
id = "hook"
type = "http"
url = "{url}"
body = "event"
{keys}
[sinks.batch]
linger = "0ms"
{source}"#,
        source = demo_source(r#"["out", "hook"]"#),
    )
}

#[tokio::test]
async fn request_timeout_is_retried_and_the_event_arrives() {
    let rx = Receiver::start(vec![Reply::delayed(200, Duration::from_secs(4))]).await;
    let gw = start(&hook_config(
        &rx.url("/slow"),
        r#"request_timeout = "500ms""#,
    ))
    .await;
    send_demo(&gw, event("to-1", "high")).await;
    eventually("the event accepted after a timed-out try", || {
        rx.accepted_ids() == ["to-1"]
    })
    .await;
    let reqs = rx.requests();
    assert!(reqs.len() >= 2, "{reqs:#?}");
    assert!(!reqs[0].delay.is_zero(), "the first try was the slow one");
    assert_eq!(
        reqs[0].body,
        reqs[reqs.len() - 1].body,
        "the same body is sent again"
    );
    eventually_async("siemgate_sink_retries_total{sink=hook} >= 1", || async {
        gw.sink_metric("siemgate_sink_retries_total", "hook")
            .await
            .unwrap_or(0.0)
            >= 1.0
    })
    .await;
    eventually_async("delivered 1", || async {
        gw.sink_metric("siemgate_events_delivered_total", "hook")
            .await
            .unwrap_or(0.0)
            == 1.0
    })
    .await;
    assert_eq!(
        gw.sink_metric("siemgate_events_failed_total", "hook")
            .await
            .unwrap_or(0.0),
        0.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn retryable_503_then_200_delivers_once() {
    let rx = Receiver::start(vec![Reply::status(503)]).await;
    let gw = start(&hook_config(&rx.url("/r"), r#"request_timeout = "5s""#)).await;
    send_demo(&gw, event("r-1", "high")).await;
    eventually("delivered after a 503", || !rx.accepted().is_empty()).await;
    eventually_async("delivered_total{sink=hook} == 1", || async {
        gw.sink_metric("siemgate_events_delivered_total", "hook")
            .await
            .unwrap_or(0.0)
            == 1.0
    })
    .await;
    assert!(
        gw.sink_metric("siemgate_sink_retries_total", "hook")
            .await
            .unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(
        gw.sink_metric("siemgate_events_failed_total", "hook")
            .await
            .unwrap_or(0.0),
        0.0
    );
    // Stopping drains the queue: a second delivery would have been made by now.
    gw.stop().await;
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2, "one 503, one 200: {reqs:#?}");
    assert_eq!(reqs[0].status, 503);
    assert_eq!(reqs[0].body, reqs[1].body);
    assert_eq!(rx.accepted_ids(), ["r-1"], "delivered exactly once");
}

#[tokio::test]
async fn retry_after_is_honoured_on_429_and_503() {
    let rx = Receiver::start(vec![
        Reply::status(429).with_header("retry-after", "1"),
        Reply::status(503).with_header("retry-after", "1"),
    ])
    .await;
    let gw = start(&hook_config(&rx.url("/ra"), r#"request_timeout = "5s""#)).await;
    send_demo(&gw, event("ra-1", "high")).await;
    eventually("delivered after 429 and 503", || !rx.accepted().is_empty()).await;
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 3, "{reqs:#?}");
    for i in 1..3 {
        let gap = reqs[i].at - reqs[i - 1].at;
        assert!(
            gap >= Duration::from_millis(900),
            "retry {i} came {gap:?} after a Retry-After: 1 answer"
        );
    }
    assert_eq!(rx.accepted_ids(), ["ra-1"]);
    gw.stop().await;
}

#[tokio::test]
async fn status_400_refuses_that_event_and_the_next_is_delivered() {
    let rx = Receiver::start(vec![Reply::status(400)]).await;
    let gw = start(&hook_config(
        &rx.url("/p"),
        "request_timeout = \"5s\"\ndead_letter_path = \"{dir}/dead/hook.ndjson\"",
    ))
    .await;
    send_demo(&gw, event("bad-1", "high")).await;
    eventually("the first request answered 400", || rx.count() >= 1).await;
    eventually_async("failed_total{sink=hook} == 1", || async {
        gw.sink_metric("siemgate_events_failed_total", "hook")
            .await
            .unwrap_or(0.0)
            == 1.0
    })
    .await;
    send_demo(&gw, event("good-2", "high")).await;
    eventually("the next event delivered", || !rx.accepted().is_empty()).await;
    eventually_async("delivered_total{sink=hook} == 1", || async {
        gw.sink_metric("siemgate_events_delivered_total", "hook")
            .await
            .unwrap_or(0.0)
            == 1.0
    })
    .await;
    assert_eq!(
        gw.sink_metric("siemgate_events_failed_total", "hook")
            .await
            .unwrap_or(0.0),
        1.0
    );
    let (status, body) = gw.readyz().await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a data error is not a readiness problem: {body}"
    );
    // The refused event is in the dead-letter file (its directory created), with the reason.
    let dead = read_lines(&gw.dir.path().join("dead/hook.ndjson"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["sink"], "hook");
    assert_eq!(dead[0]["reason"], "receiver answered 400 Bad Request");
    let body: serde_json::Value = serde_json::from_str(dead[0]["event"].as_str().unwrap()).unwrap();
    assert_eq!(body["id"], "bad-1");
    assert_eq!(
        gw.sink_metric("siemgate_dead_letters_total", "hook")
            .await
            .unwrap_or(0.0),
        1.0
    );
    // Stopping drains the queue: a retry of the refused event would have been sent by now.
    gw.stop().await;
    let reqs = rx.requests();
    let ids: Vec<String> = reqs
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["bad-1", "good-2"], "400 is not retried");
    assert_eq!(rx.accepted_ids(), ["good-2"]);
}

/// The receiver answers `status` until told otherwise: the sink holds its queue (the first event
/// is sent again and again, nothing is skipped or dropped), `/readyz` is 503 naming the sink,
/// and once the receiver answers 200 both events arrive in order and the sink is ready again.
async fn held_until_200(status: u16) {
    let rx = Receiver::start(vec![]).await;
    rx.set_default(Reply::status(status));
    let gw = start(&hook_config(&rx.url("/auth"), r#"request_timeout = "5s""#)).await;
    send_demo(&gw, event("held-1", "high")).await;
    send_demo(&gw, event("held-2", "high")).await;
    eventually(&format!("the {status} retried"), || rx.count() >= 2).await;
    eventually_async(
        &format!("{status}: /readyz 503 naming the sink"),
        || async {
            let (code, body) = gw.readyz().await;
            code == StatusCode::SERVICE_UNAVAILABLE && body.contains("hook")
        },
    )
    .await;
    let (_, body) = gw.readyz().await;
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["status"], "not_ready", "{status}: {body}");
    assert!(
        ready["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains("hook")),
        "{status}: {body}"
    );
    // Held: the first event is sent again and again, the second never overtakes it.
    for r in rx.requests() {
        assert_eq!(
            r.json()["id"],
            "held-1",
            "{status}: nothing skipped while held"
        );
    }
    assert_eq!(
        gw.sink_metric("siemgate_events_failed_total", "hook")
            .await
            .unwrap_or(0.0),
        0.0,
        "{status}: nothing dropped while held"
    );
    assert_eq!(
        gw.sink_metric("siemgate_events_delivered_total", "hook")
            .await
            .unwrap_or(0.0),
        0.0,
        "{status}"
    );

    rx.set_default(Reply::status(200));
    eventually(
        &format!("{status}: both delivered once the receiver answers 200"),
        || rx.accepted().len() >= 2,
    )
    .await;
    eventually_async(&format!("{status}: /readyz 200 again"), || async {
        gw.readyz().await.0 == StatusCode::OK
    })
    .await;
    eventually_async(&format!("{status}: delivered_total == 2"), || async {
        gw.sink_metric("siemgate_events_delivered_total", "hook")
            .await
            .unwrap_or(0.0)
            == 2.0
    })
    .await;
    assert_eq!(
        gw.sink_metric("siemgate_events_failed_total", "hook")
            .await
            .unwrap_or(0.0),
        0.0,
        "{status}"
    );
    // Stopping drains the queue: a second copy of either would have been sent by now.
    gw.stop().await;
    assert_eq!(
        rx.accepted_ids(),
        ["held-1", "held-2"],
        "{status}: in order, once each"
    );
}

#[tokio::test]
async fn status_401_holds_the_queue_and_readyz_names_the_sink_until_200() {
    held_until_200(401).await;
}

#[tokio::test]
async fn status_403_404_and_3xx_hold_the_queue_like_401() {
    for status in [403, 404, 307] {
        held_until_200(status).await;
    }
}

#[tokio::test]
async fn other_4xx_refuse_permanently_and_408_is_retried() {
    let rx = Receiver::start(vec![Reply::status(422), Reply::status(408)]).await;
    let gw = start(&hook_config(&rx.url("/q"), r#"request_timeout = "5s""#)).await;
    send_demo(&gw, event("q-1", "high")).await;
    eventually_async("422 counted failed", || async {
        gw.sink_metric("siemgate_events_failed_total", "hook")
            .await
            .unwrap_or(0.0)
            == 1.0
    })
    .await;
    send_demo(&gw, event("q-2", "high")).await;
    eventually("q-2 delivered after a 408", || !rx.accepted().is_empty()).await;
    eventually_async("delivered_total{sink=hook} == 1", || async {
        gw.sink_metric("siemgate_events_delivered_total", "hook")
            .await
            .unwrap_or(0.0)
            == 1.0
    })
    .await;
    assert_eq!(
        gw.sink_metric("siemgate_events_failed_total", "hook")
            .await
            .unwrap_or(0.0),
        1.0
    );
    // Stopping drains the queue: a retry of q-1 or a second q-2 would have been sent by now.
    gw.stop().await;
    let ids: Vec<(String, u16)> = rx
        .requests()
        .iter()
        .map(|r| (r.json()["id"].as_str().unwrap().to_owned(), r.status))
        .collect();
    let want: Vec<(String, u16)> = [("q-1", 422), ("q-2", 408), ("q-2", 200)]
        .iter()
        .map(|(i, s)| ((*i).to_owned(), *s))
        .collect();
    assert_eq!(ids, want);
}

#[tokio::test]
async fn connection_refused_is_retried_until_the_receiver_is_up() {
    // A free port: bound, then released, so nothing listens there until the test says so.
    let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let gw = start(&hook_config(
        &format!("http://{addr}/late"),
        r#"connect_timeout = "1s""#,
    ))
    .await;
    send_demo(&gw, event("late-1", "high")).await;
    eventually_async("a refused connection counted as a retry", || async {
        gw.sink_metric("siemgate_sink_retries_total", "hook")
            .await
            .unwrap_or(0.0)
            >= 1.0
    })
    .await;
    eventually_async(
        "/readyz 503 naming the sink while it cannot connect",
        || async {
            let (code, body) = gw.readyz().await;
            code == StatusCode::SERVICE_UNAVAILABLE && body.contains("hook")
        },
    )
    .await;
    assert_eq!(
        gw.sink_metric("siemgate_events_failed_total", "hook")
            .await
            .unwrap_or(0.0),
        0.0,
        "a connection error drops nothing"
    );
    let rx = Receiver::start_on(addr, vec![]).await;
    eventually("delivered once the receiver listens", || {
        !rx.accepted().is_empty()
    })
    .await;
    eventually_async("/readyz 200 again", || async {
        gw.readyz().await.0 == StatusCode::OK
    })
    .await;
    // Stopping drains the queue: a second delivery would have been made by now.
    gw.stop().await;
    assert_eq!(rx.accepted_ids(), ["late-1"]);
}

#[tokio::test]
async fn file_secret_header_and_content_type_override() {
    let secrets = tempfile::tempdir().unwrap();
    let key_file = secrets.path().join("api-key");
    std::fs::write(&key_file, "file-key-0b6c2a\n").unwrap();
    let rx = Receiver::start(vec![]).await;
    let keys = format!(
        r#"content_type = "application/vnd.siem+json"
[sinks.headers]
"X-File-Key" = "@file:{}""#,
        key_file.display()
    );
    let gw = start(&hook_config(&rx.url("/ct"), &keys)).await;
    send_demo(&gw, event("ct-1", "high")).await;
    eventually("delivered", || !rx.accepted().is_empty()).await;
    let r = &rx.accepted()[0];
    assert_eq!(r.header("content-type"), Some("application/vnd.siem+json"));
    assert_eq!(
        r.header("x-file-key"),
        Some("file-key-0b6c2a"),
        "@file: read, trailing newline trimmed"
    );
    assert_eq!(r.json()["id"], "ct-1");
    gw.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Signature
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn signature_is_hmac_sha256_of_the_exact_body() {
    const SECRET: &str = "sink-sig-secret-2b8e";
    const SECRET_B64: &str = "sink-sig-secret-b64-44f1";
    let rx = Receiver::start(vec![]).await;
    let config = format!(
        r#"{PLAIN_SERVER}
[[sinks]]
id = "hex"
type = "http"
url = "{hex_url}"
body = "event"
[sinks.signature]
secret = "{SECRET}"
[sinks.batch]
linger = "0ms"

[[sinks]]
id = "b64"
type = "http"
url = "{b64_url}"
body = "ndjson"
[sinks.signature]
header = "X-Sig"
secret = "{SECRET_B64}"
encoding = "base64"
prefix = "sha256="
[sinks.batch]
linger = "0ms"
{source}"#,
        hex_url = rx.url("/hex"),
        b64_url = rx.url("/b64"),
        source = demo_source(r#"["hex", "b64"]"#),
    );
    let gw = start(&config).await;
    send_demo(&gw, event("sig-1", "high")).await;
    send_demo(&gw, event("sig-2", "low")).await;
    eventually("2 requests at /hex and both events at /b64", || {
        rx.requests_to("/hex").len() >= 2
            && rx
                .requests_to("/b64")
                .iter()
                .map(|r| {
                    r.body
                        .split(|b| *b == b'\n')
                        .filter(|l| !l.is_empty())
                        .count()
                })
                .sum::<usize>()
                >= 2
    })
    .await;
    for r in rx.requests_to("/hex") {
        let want = hex::encode(hmac_of(SECRET, &r.body));
        assert_eq!(
            r.header("x-siemgate-signature"),
            Some(want.as_str()),
            "default header, hex, no prefix"
        );
    }
    for r in rx.requests_to("/b64") {
        let want = format!("sha256={}", STANDARD.encode(hmac_of(SECRET_B64, &r.body)));
        assert_eq!(r.header("x-sig"), Some(want.as_str()), "base64 with prefix");
        assert_eq!(r.header("x-siemgate-signature"), None);
    }
    let all = format!("{:?}", rx.requests());
    assert!(
        !all.contains(SECRET) && !all.contains(SECRET_B64),
        "the secret itself is never sent"
    );
    gw.stop().await;
}

#[tokio::test]
async fn chain_gateway_a_signs_and_gateway_b_verifies() {
    const SECRET: &str = "chain-secret-6d0a91";
    let b = start(&format!(
        r#"{PLAIN_SERVER}{FILE_SINK}
[[sources]]
id = "chain"
vendor = "generic"
sinks = ["out"]
auth = {{ scheme = "hmac_sha256", header = "X-Siemgate-Signature", secret = "{SECRET}" }}
"#
    ))
    .await;
    let a = start(&format!(
        r#"{PLAIN_SERVER}{FILE_SINK}
[[sinks]]
id = "to_b"
type = "http"
url = "http://{b_addr}/hooks/chain"
body = "event"
[sinks.signature]
secret = "{SECRET}"
[sinks.batch]
linger = "0ms"

[[sources]]
id = "prisma"
vendor = "prisma_cloud"
sinks = ["out", "to_b"]
auth = {{ scheme = "token", secret = "{PRISMA_TOKEN}" }}
"#,
        b_addr = b.addr(),
    ))
    .await;
    let fixtures = [
        "prisma_cloud-webhook-alert-open.json",
        "prisma_cloud-alert-created-asyncapi-example.json",
        "prisma_cloud-alert-resolved-asyncapi-example.json",
    ];
    for f in fixtures {
        let ans = send(
            a.addr(),
            post(
                a.addr(),
                "prisma",
                &[("X-Redlock-Auth", PRISMA_TOKEN)],
                fixture(f),
            ),
        )
        .await;
        assert_eq!(ans.status, StatusCode::OK, "{f}: {ans:?}");
    }
    let (a_out, b_out) = (a.out(), b.out());
    eventually("3 lines at A", || read_lines(&a_out).len() == 3).await;
    eventually("3 lines at B", || read_lines(&b_out).len() == 3).await;
    let (a_lines, b_lines) = (a.lines(), b.lines());
    for (x, y) in a_lines.iter().zip(&b_lines) {
        assert_eq!(y["raw"], *x, "B's raw is A's Event JSON");
        assert_eq!(y["id"], x["id"], "B's generic decoder keeps A's id");
        assert_eq!(y["severity"], x["severity"]);
        assert_eq!(y["vendor"], "generic");
        assert_eq!(y["source"], "chain");
    }
    assert_eq!(
        b_lines
            .iter()
            .map(|l| l["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [
            "P-51307:open:NEW_ALERT:1700000100000",
            "P-12345678:open:1705314600000",
            "P-12345678:resolved:1705320000000"
        ]
    );
    assert_eq!(
        a.sink_metric("siemgate_events_delivered_total", "to_b")
            .await
            .unwrap_or(0.0),
        3.0
    );
    let b_metrics = b.metrics_text().await;
    assert_eq!(
        metric(
            &b_metrics,
            "siemgate_http_requests_total",
            &[("source", "chain"), ("code", "200")]
        ),
        Some(3.0),
        "{b_metrics}"
    );
    a.stop().await;
    b.stop().await;
}

/// `max_retry_duration`: a batch that keeps failing with retryable answers is given up after
/// that long and goes to the dead letters; the next event is delivered normally.
#[tokio::test]
async fn max_retry_duration_dead_letters_a_batch_that_keeps_failing() {
    let rx = Receiver::start(vec![]).await;
    rx.set_default(Reply::status(503));
    let gw = start(&hook_config(
        &rx.url("/p"),
        "max_retry_duration = \"700ms\"\ndead_letter_path = \"{dir}/dead.ndjson\"",
    ))
    .await;
    send_demo(&gw, event("doomed-1", "high")).await;
    let dead_path = gw.dir.path().join("dead.ndjson");
    eventually("the batch is dead-lettered", || {
        read_lines(&dead_path).len() == 1
    })
    .await;
    assert!(rx.count() >= 2, "it was retried before giving up");
    let dead = read_lines(&dead_path);
    assert_eq!(
        dead[0]["reason"],
        "retried for longer than max_retry_duration"
    );
    assert_eq!(
        gw.sink_metric("siemgate_events_failed_total", "hook")
            .await
            .unwrap_or(0.0),
        1.0
    );
    rx.set_default(Reply::status(200));
    send_demo(&gw, event("fine-2", "high")).await;
    eventually("the next event delivered", || !rx.accepted().is_empty()).await;
    assert_eq!(rx.accepted_ids(), ["fine-2"]);
    gw.stop().await;
}
