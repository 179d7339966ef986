//! End to end over plaintext HTTP/1.1: a JSON object or array becomes NDJSON events in the file
//! sink, with a receipt; routing errors and malformed bodies get precise answers and write
//! nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use http::StatusCode;

fn config() -> String {
    format!(
        r#"{PLAIN_SERVER}{FILE_SINK}
[[sources]]
id = "demo"
sinks = ["out"]
auth = {{ scheme = "token", prefix = "Bearer ", secret = "tok" }}
"#
    )
}

const AUTH: (&str, &str) = ("authorization", "Bearer tok");

#[tokio::test]
async fn object_and_array_become_events_with_raw_and_ids() {
    let gw = start(&config()).await;
    let a = send(
        gw.addr(),
        post(
            gw.addr(),
            "demo",
            &[AUTH],
            r#"{"id":"one","severity":"critical"}"#,
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json(), serde_json::json!({"accepted": 1}));
    let body = r#"[{"id":"two"},{"id":3,"x":[1,2]},{"nested":{"k":"v"}}]"#;
    let a = send(gw.addr(), post(gw.addr(), "demo", &[AUTH], body)).await;
    assert_eq!(a.json(), serde_json::json!({"accepted": 3}));
    let out = gw.out();
    eventually("4 lines in the sink", || read_lines(&out).len() == 4).await;
    let lines = gw.lines();
    assert_eq!(lines[0]["id"], "one");
    assert_eq!(lines[0]["severity"], "critical");
    assert_eq!(lines[0]["severity_id"], 5);
    assert_eq!(lines[0]["source"], "demo");
    assert_eq!(lines[1]["raw"], serde_json::json!({"id":"two"}));
    assert_eq!(lines[2]["id"], "3");
    assert_eq!(lines[2]["raw"], serde_json::json!({"id":3,"x":[1,2]}));
    let hashed = lines[3]["id"].as_str().unwrap();
    assert_eq!(hashed.len(), 32, "hash id: {hashed}");
    for l in &lines {
        assert!(l.get("authorization").is_none() && !l.to_string().contains("Bearer"));
    }
    gw.stop().await;
}

#[tokio::test]
async fn refusals_are_precise_and_write_nothing() {
    let gw = start(&config()).await;
    let addr = gw.addr();
    let cases: Vec<(http::Request<_>, StatusCode, &str)> = vec![
        (
            post(addr, "nosuch", &[AUTH], "{}"),
            StatusCode::NOT_FOUND,
            "unknown_source",
        ),
        (
            http::Request::get(format!("http://{addr}/hooks/demo"))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            post(addr, "demo", &[AUTH], r#"{"a": tru}"#),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            post(addr, "demo", &[AUTH], &b"{\"a\":\"\xff\"}"[..]),
            StatusCode::BAD_REQUEST,
            "invalid_utf8",
        ),
        (
            post(addr, "demo", &[AUTH], "[1,2]"),
            StatusCode::BAD_REQUEST,
            "unexpected_shape",
        ),
        (
            post(addr, "demo", &[AUTH], "[".repeat(100) + &"]".repeat(100)),
            StatusCode::BAD_REQUEST,
            "too_deep",
        ),
        (
            post(addr, "demo", &[AUTH], ""),
            StatusCode::BAD_REQUEST,
            "unexpected_shape",
        ),
        // A valid first element does not get accepted when a later one is bad: all or nothing.
        (
            post(addr, "demo", &[AUTH], r#"[{"id":"ok"}, {"id": ]"#),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
    ];
    for (req, status, reason) in cases {
        let a = send(addr, req).await;
        assert_eq!(a.status, status, "{reason}: {:?}", a.body);
        let j = a.json();
        assert_eq!(j["error"], reason);
        assert!(j["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    let a = send(addr, post(addr, "demo", &[AUTH], r#"{"a":  tru}"#)).await;
    assert!(
        a.json()["detail"].as_str().unwrap().contains("at byte 10"),
        "{:?}",
        a.body
    );
    let a = send(addr, post(addr, "demo", &[AUTH], "[".repeat(100))).await;
    assert!(
        a.json()["detail"].as_str().unwrap().contains("at byte 64"),
        "{:?}",
        a.body
    );
    let dir = gw.stop().await;
    assert!(read_lines(&dir.path().join("out.ndjson")).is_empty());
}

#[tokio::test]
async fn put_is_accepted_and_http2_prior_knowledge_works() {
    let gw = start(&config()).await;
    let addr = gw.addr();
    let req = http::Request::put(format!("http://{addr}/hooks/demo"))
        .header("authorization", "Bearer tok")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"{\"id\":\"put\"}",
        )))
        .unwrap();
    assert_eq!(send(addr, req).await.status, StatusCode::OK);

    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut h2, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let resp = h2
        .send_request(post(addr, "demo", &[AUTH], r#"{"id":"h2"}"#))
        .await
        .unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    let out = gw.out();
    eventually("2 lines", || read_lines(&out).len() == 2).await;
    gw.stop().await;
}

#[tokio::test]
async fn generic_mapping_normalizes_records_inside_the_body() {
    let config = format!(
        r#"{PLAIN_SERVER}{FILE_SINK}
[[sources]]
id = "compute"
sinks = ["out"]
auth = {{ scheme = "token", prefix = "Bearer ", secret = "tok" }}
[sources.mapping]
records = "/alerts"
id = "/alertId"
time = "/ts"
severity = "/priority"
severity_map = {{ P1 = "critical", P4 = "low" }}
kind = {{ value = "attack" }}
title = "/rule/name"
src_ip = "/client/ip"
"#
    );
    let gw = start(&config).await;
    let body = r#"{"tenant":"t1","alerts":[
        {"alertId":"A-1","ts":"2025-03-01T10:00:00+01:00","priority":"P1","rule":{"name":"miner"},"client":{"ip":"192.0.2.7"}},
        {"alertId":"A-2","ts":1740819600000,"priority":"P4","rule":{"name":"scan"}}]}"#;
    let a = send(gw.addr(), post(gw.addr(), "compute", &[AUTH], body)).await;
    assert_eq!(a.json(), serde_json::json!({"accepted": 2}));
    let out = gw.out();
    eventually("2 lines", || read_lines(&out).len() == 2).await;
    let lines = gw.lines();
    assert_eq!(lines[0]["id"], "A-1");
    assert_eq!(lines[0]["time"], "2025-03-01T09:00:00.000Z");
    assert_eq!(lines[0]["severity"], "critical");
    assert_eq!(lines[0]["kind"], "attack");
    assert_eq!(lines[0]["title"], "miner");
    assert_eq!(lines[0]["network"]["src_ip"], "192.0.2.7");
    assert_eq!(
        lines[0]["raw"]["alertId"], "A-1",
        "raw is the record, not the whole body"
    );
    assert_eq!(lines[1]["time"], "2025-03-01T09:00:00.000Z");
    assert_eq!(lines[1]["severity"], "low");
    let a = send(
        gw.addr(),
        post(gw.addr(), "compute", &[AUTH], r#"{"tenant":"t1"}"#),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.json()["error"], "unexpected_shape");
    gw.stop().await;
}

/// Prisma Cloud Compute's `#time` macro renders `Jan 21, 2018 UTC`: a mapping with a strftime
/// `time_format` reads it, and a time that does not match keeps its text in a warning.
#[tokio::test]
async fn generic_mapping_reads_a_strftime_time_format() {
    let config = format!(
        r#"{PLAIN_SERVER}{FILE_SINK}
[[sources]]
id = "compute"
sinks = ["out"]
auth = {{ scheme = "token", prefix = "Bearer ", secret = "tok" }}
[sources.mapping]
title = "/type"
time = "/time"
time_format = "%b %d, %Y %Z"
"#
    );
    let gw = start(&config).await;
    let body = r#"[{"type":"Container Runtime","time":"Jan 21, 2018 UTC"},
        {"type":"Container Runtime","time":"21/01/2018"}]"#;
    let a = send(gw.addr(), post(gw.addr(), "compute", &[AUTH], body)).await;
    assert_eq!(a.json(), serde_json::json!({"accepted": 2}));
    let out = gw.out();
    eventually("2 lines", || read_lines(&out).len() == 2).await;
    let lines = gw.lines();
    assert_eq!(lines[0]["time"], "2018-01-21T00:00:00.000Z");
    // The mapping names no severity: that is the first record's only warning.
    assert_eq!(
        lines[0]["normalization_warnings"],
        serde_json::json!(["severity: not given by the vendor, unknown"])
    );
    assert_eq!(lines[1]["time"], lines[1]["received_at"]);
    assert_eq!(
        lines[1]["normalization_warnings"],
        serde_json::json!([
            "time: missing, received_at used",
            "severity: not given by the vendor, unknown",
            "time: not understood: \"21/01/2018\""
        ])
    );
    gw.stop().await;
}
