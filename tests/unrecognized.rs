//! Bodies of a shape the vendor's decoder does not recognise, against the real binary on
//! 127.0.0.1: they are answered 200 (a vendor that is refused disables its webhook), forwarded
//! marked (`severity` unknown, `severity_id` 0, the "not recognised" warning), counted in
//! `siemgate_events_unrecognized_total{source}`, and logged as one warning per source per
//! minute at most, however many arrive.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::binary::Process;
use common::*;
use http::StatusCode;
use serde_json::{json, Value};

const TOKEN: &str = "cx-unrec-tok-2b71e0d4";
const LOG_LINE: &str = "none of the vendor's recognisable fields";

fn config() -> String {
    format!(
        r#"{PLAIN_SERVER}
[[sinks]]
id = "out"
type = "file"
path = '{{dir}}/out.ndjson'
fsync = "never"
[sinks.batch]
linger = "0ms"
[[sources]]
id = "cx"
vendor = "coralogix"
sinks = ["out"]
auth = {{ scheme = "token", secret = "{TOKEN}" }}
[[sources]]
id = "pc"
vendor = "prisma_cloud"
sinks = ["out"]
auth = {{ scheme = "token", secret = "{TOKEN}" }}
"#
    )
}

async fn metric_is(metrics: std::net::SocketAddr, source: &str, want: f64) {
    let mut text = String::new();
    for _ in 0..100 {
        text = get_text(metrics, "/metrics").await.1;
        if metric(
            &text,
            "siemgate_events_unrecognized_total",
            &[("source", source)],
        ) == Some(want)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("siemgate_events_unrecognized_total{{source={source:?}}} never reached {want}:\n{text}");
}

#[tokio::test]
async fn unrecognised_bodies_get_200_are_marked_counted_and_logged_once_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let mut proc = Process::start(dir.path(), &config(), &[("SIEMGATE_LOG", "info")]);
    let [hooks, metrics] = proc.wait_ready(["hooks", "metrics"]);
    // Registered when the source starts, before anything arrives.
    metric_is(metrics, "cx", 0.0).await;

    // Three requests to Coralogix, none with a Coralogix field; one real alert between them.
    let odd = [
        r#"{"hello":"world"}"#,
        r#"[{"msg":"a"},{"msg":"b"}]"#,
        r#"{"status":"firing"}"#,
    ];
    for body in odd {
        let a = send(hooks, post(hooks, "cx", &[("x-api-key", TOKEN)], body)).await;
        assert_eq!(a.status, StatusCode::OK, "{body}: {:?}", a.body);
    }
    let alert = r#"{"alert_id":"a-1","name":"CPU high","alert_action":"trigger","fields":[{"key":"severity","value":"Critical"}]}"#;
    let a = send(hooks, post(hooks, "cx", &[("x-api-key", TOKEN)], alert)).await;
    assert_eq!(a.status, StatusCode::OK);
    // Prisma counts its own.
    let a = send(
        hooks,
        post(hooks, "pc", &[("X-Redlock-Auth", TOKEN)], r#"[{"foo":1}]"#),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);

    metric_is(metrics, "cx", 4.0).await;
    metric_is(metrics, "pc", 1.0).await;

    let out = dir.path().join("out.ndjson");
    let mut lines: Vec<Value> = Vec::new();
    for _ in 0..200 {
        lines = read_lines(&out);
        if lines.len() == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(lines.len(), 6, "{lines:?}");
    let unrecognised = "shape: none of the vendor's fields were recognised";
    for e in lines.iter().filter(|e| e["raw"].get("alert_id").is_none()) {
        assert_eq!(e["severity"], "unknown", "{e}");
        assert_eq!(e["severity_id"], 0, "{e}");
        let warnings = e["normalization_warnings"].as_array().unwrap();
        assert!(warnings.contains(&json!(unrecognised)), "{e}");
    }
    let real = lines
        .iter()
        .find(|e| e["raw"].get("alert_id").is_some())
        .unwrap();
    assert_eq!(real["severity"], "critical");
    assert_eq!(real["title"], "CPU high");
    assert!(
        !real["normalization_warnings"]
            .as_array()
            .is_some_and(|w| w.contains(&json!(unrecognised))),
        "{real}"
    );

    // One warning per source, not one per request or event.
    let mut text = String::new();
    for _ in 0..100 {
        text = proc.stderr_text();
        if text.matches(LOG_LINE).count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let warned: Vec<&str> = text.lines().filter(|l| l.contains(LOG_LINE)).collect();
    assert_eq!(warned.len(), 2, "one per source:\n{text}");
    assert!(warned.iter().any(|l| l.contains("cx")), "{warned:?}");
    assert!(warned.iter().any(|l| l.contains("pc")), "{warned:?}");
    assert!(warned.iter().all(|l| l.contains("WARN")), "{warned:?}");
    assert!(!text.contains(TOKEN), "the token was logged");
}
