//! The ops listener end to end: after a known sequence of accepted and refused requests on two
//! sources, `/metrics` shows exact counts per source, code, reason and sink (requests, unrouted
//! requests, auth failures, rejections, events received and delivered, queue depth, request
//! duration count) with HELP/TYPE lines; `/healthz` and `/readyz` answer 200, other paths 404.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::StatusCode;
use http_body_util::Full;

fn config() -> String {
    format!(
        r#"{PLAIN_SERVER}{FILE_SINK}
[[sources]]
id = "alpha"
sinks = ["out"]
auth = {{ scheme = "token", prefix = "Bearer ", secret = "tok" }}

[[sources]]
id = "beta"
sinks = ["out"]
auth = {{ scheme = "basic", username = "u", password = "p" }}
"#
    )
}

const ALPHA_AUTH: (&str, &str) = ("authorization", "Bearer tok");
/// base64("u:p") and base64("u:x").
const BETA_AUTH: (&str, &str) = ("authorization", "Basic dTpw");
const BETA_WRONG: (&str, &str) = ("authorization", "Basic dTp4");

/// Polls `/metrics` until `name{labels}` equals `want`, for at most 10 s; returns the text.
async fn metrics_when(gw: &TestGateway, name: &str, labels: &[(&str, &str)], want: f64) -> String {
    let mut text = String::new();
    for _ in 0..200 {
        let (status, t) = get_text(gw.metrics_addr(), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        text = t;
        if metric(&text, name, labels) == Some(want) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name}{labels:?} never reached {want}:\n{text}");
}

#[tokio::test]
async fn counters_match_a_known_sequence_of_requests() {
    let gw = start(&config()).await;
    let addr = gw.addr();
    let expect = |a: &Answer, status: StatusCode| assert_eq!(a.status, status, "{a:?}");

    // Accepted: 1 + 2 events on alpha, 3 on beta.
    let a = send(addr, post(addr, "alpha", &[ALPHA_AUTH], r#"{"id":"a1"}"#)).await;
    expect(&a, StatusCode::OK);
    let body = r#"[{"id":"a2"},{"id":"a3"}]"#;
    let a = send(addr, post(addr, "alpha", &[ALPHA_AUTH], body)).await;
    expect(&a, StatusCode::OK);
    let body = r#"[{"id":"b1"},{"id":"b2"},{"id":"b3"}]"#;
    let a = send(addr, post(addr, "beta", &[BETA_AUTH], body)).await;
    expect(&a, StatusCode::OK);
    assert_eq!(a.json(), serde_json::json!({"accepted": 3}));

    // Missing credential on each source, a wrong one on beta.
    let a = send(addr, post(addr, "alpha", &[], r#"{"id":"x"}"#)).await;
    expect(&a, StatusCode::UNAUTHORIZED);
    let a = send(addr, post(addr, "beta", &[], r#"{"id":"x"}"#)).await;
    expect(&a, StatusCode::UNAUTHORIZED);
    let a = send(addr, post(addr, "beta", &[BETA_WRONG], r#"{"id":"x"}"#)).await;
    expect(&a, StatusCode::FORBIDDEN);
    // Malformed JSON, unknown source, wrong method.
    let a = send(addr, post(addr, "alpha", &[ALPHA_AUTH], r#"{"id": tru}"#)).await;
    expect(&a, StatusCode::BAD_REQUEST);
    let a = send(addr, post(addr, "gamma", &[ALPHA_AUTH], r#"{"id":"x"}"#)).await;
    expect(&a, StatusCode::NOT_FOUND);
    let get = http::Request::get(format!("http://{addr}/hooks/alpha"))
        .header(ALPHA_AUTH.0, ALPHA_AUTH.1)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let a = send(addr, get).await;
    expect(&a, StatusCode::METHOD_NOT_ALLOWED);

    let text = metrics_when(
        &gw,
        "siemgate_events_delivered_total",
        &[("sink", "out")],
        6.0,
    )
    .await;
    let m = |name: &str, labels: &[(&str, &str)]| {
        metric(&text, name, labels).unwrap_or_else(|| panic!("no {name}{labels:?} in\n{text}"))
    };

    // Requests per source and code; every pre-registered code not used stays 0.
    let requests = [
        (
            "alpha",
            [("200", 2.0), ("400", 1.0), ("401", 1.0), ("405", 1.0)],
        ),
        (
            "beta",
            [("200", 1.0), ("401", 1.0), ("403", 1.0), ("400", 0.0)],
        ),
    ];
    for (source, codes) in requests {
        for (code, want) in codes {
            assert_eq!(
                m(
                    "siemgate_http_requests_total",
                    &[("source", source), ("code", code)]
                ),
                want,
                "{source} {code}"
            );
        }
    }
    for (source, code) in [("alpha", "403"), ("beta", "405")]
        .into_iter()
        .chain(["408", "413", "499", "500", "503"].map(|c| ("alpha", c)))
        .chain(["408", "413", "499", "500", "503"].map(|c| ("beta", c)))
    {
        assert_eq!(
            m(
                "siemgate_http_requests_total",
                &[("source", source), ("code", code)]
            ),
            0.0,
            "{source} {code}"
        );
    }
    assert!(
        metric(
            &text,
            "siemgate_http_requests_total",
            &[("source", "gamma"), ("code", "404")]
        )
        .is_none(),
        "an unknown source gets no series of its own"
    );
    assert_eq!(
        m("siemgate_unrouted_requests_total", &[("code", "404")]),
        1.0
    );

    // Auth failures by reason.
    for (source, reason, want) in [
        ("alpha", "missing_credential", 1.0),
        ("alpha", "invalid_credential", 0.0),
        ("beta", "missing_credential", 1.0),
        ("beta", "invalid_credential", 1.0),
        ("beta", "malformed_credential", 0.0),
    ] {
        assert_eq!(
            m(
                "siemgate_auth_failures_total",
                &[("source", source), ("reason", reason)]
            ),
            want,
            "{source} {reason}"
        );
    }

    // Rejections by reason.
    for (source, reason, want) in [
        ("alpha", "missing_credential", 1.0),
        ("alpha", "malformed_json", 1.0),
        ("alpha", "method_not_allowed", 1.0),
        ("alpha", "invalid_credential", 0.0),
        ("alpha", "unknown_source", 0.0),
        ("alpha", "queue_full", 0.0),
        ("beta", "missing_credential", 1.0),
        ("beta", "invalid_credential", 1.0),
        ("beta", "malformed_json", 0.0),
        ("beta", "method_not_allowed", 0.0),
    ] {
        assert_eq!(
            m(
                "siemgate_requests_rejected_total",
                &[("source", source), ("reason", reason)]
            ),
            want,
            "{source} {reason}"
        );
    }

    // Events and sinks.
    assert_eq!(
        m("siemgate_events_received_total", &[("source", "alpha")]),
        3.0
    );
    assert_eq!(
        m("siemgate_events_received_total", &[("source", "beta")]),
        3.0
    );
    assert_eq!(
        m("siemgate_events_filtered_total", &[("source", "alpha")]),
        0.0
    );
    assert_eq!(
        m("siemgate_events_delivered_total", &[("sink", "out")]),
        6.0
    );
    assert_eq!(m("siemgate_events_failed_total", &[("sink", "out")]), 0.0);
    assert_eq!(m("siemgate_sink_retries_total", &[("sink", "out")]), 0.0);
    assert_eq!(m("siemgate_queue_events", &[("sink", "out")]), 0.0);
    assert_eq!(m("siemgate_queue_bytes", &[("sink", "out")]), 0.0);

    // One duration sample per request answered for a source (the unknown source is not one).
    assert_eq!(
        m(
            "siemgate_http_request_duration_seconds_count",
            &[("source", "alpha")]
        ),
        5.0
    );
    assert_eq!(
        m(
            "siemgate_http_request_duration_seconds_count",
            &[("source", "beta")]
        ),
        3.0
    );

    // Exposition metadata.
    assert!(
        text.lines()
            .any(|l| l.starts_with("# HELP siemgate_http_requests_total ")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "# TYPE siemgate_http_requests_total counter"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "# TYPE siemgate_http_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "# TYPE siemgate_queue_events gauge"),
        "{text}"
    );

    let lines = gw.lines();
    assert_eq!(lines.len(), 6);
    gw.stop().await;
}

#[tokio::test]
async fn health_readiness_and_unknown_paths() {
    let gw = start(&config()).await;
    let ops = gw.metrics_addr();

    let (status, body) = get_text(ops, "/healthz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"status": "ok"})
    );

    let (status, body) = get_text(ops, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"status": "ready"})
    );

    for path in ["/", "/nosuch", "/metrics/extra", "/hooks/alpha"] {
        let (status, body) = get_text(ops, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        let j: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(j["error"], "not_found", "{path}");
    }

    // The hooks listener does not serve the ops paths.
    let (status, _) = get_text(gw.addr(), "/metrics").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    gw.stop().await;
}
