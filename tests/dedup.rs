//! De-duplication of vendor retries: within a source's window, a request seen before is
//! answered 200 with the first receipt and its events are queued once; a refused request is
//! not remembered, so its retry goes through.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use http::StatusCode;

const TOKEN: &str = "dedup-token-5b1e";

fn config(window: &str) -> String {
    format!(
        r#"{PLAIN_SERVER}{FILE_SINK}
[[sources]]
id = "hooks"
vendor = "generic"
sinks = ["out"]
auth = {{ scheme = "token", secret = "{TOKEN}" }}
[sources.dedup]
window = "{window}"
"#
    )
}

async fn post_body(gw: &TestGateway, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut all = vec![("authorization", TOKEN)];
    all.extend_from_slice(headers);
    send(gw.addr(), post(gw.addr(), "hooks", &all, body.to_owned())).await
}

fn ids(gw: &TestGateway) -> Vec<String> {
    ids_in(gw.dir.path())
}

/// The ids in `{dir}/out.ndjson`, in order.
fn ids_in(dir: &std::path::Path) -> Vec<String> {
    read_lines(&dir.join("out.ndjson"))
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_retried_request_is_answered_200_and_queued_once() {
    let gw = start(&config("10m")).await;
    let body = r#"[{"id":"a-1"},{"id":"a-2"}]"#;
    let first = post_body(&gw, &[], body).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.json(), serde_json::json!({"accepted": 2}));
    let again = post_body(&gw, &[], body).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(
        again.json(),
        serde_json::json!({"accepted": 2, "duplicate": true})
    );
    let other = post_body(&gw, &[], r#"{"id":"b-1"}"#).await;
    assert_eq!(other.json(), serde_json::json!({"accepted": 1}));

    let out = gw.out();
    eventually("3 events written", || read_lines(&out).len() >= 3).await;
    let (_, text) = get_text(gw.metrics_addr(), "/metrics").await;
    assert_eq!(
        metric(
            &text,
            "siemgate_duplicate_requests_total",
            &[("source", "hooks")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "siemgate_events_received_total",
            &[("source", "hooks")]
        ),
        Some(3.0),
        "{text}"
    );
    // Stopping drains the queue: whatever was still on its way is written by now.
    let dir = gw.stop().await;
    assert_eq!(ids_in(dir.path()), ["a-1", "a-2", "b-1"], "each event once");
}

/// A token source signs nothing, so an unsigned `webhook-id` header names nothing: the key is
/// the body. (It used to be the key for every scheme, which let a replay with a fresh id be
/// queued again and a forged id drop a later real event as a "duplicate".)
#[tokio::test]
async fn an_unsigned_webhook_id_is_not_the_key() {
    let gw = start(&config("10m")).await;
    let a = post_body(&gw, &[("webhook-id", "msg_1")], r#"{"id":"w-1"}"#).await;
    assert_eq!(a.json(), serde_json::json!({"accepted": 1}));
    // Another event under the same id is another request: queued.
    let b = post_body(&gw, &[("webhook-id", "msg_1")], r#"{"id":"w-2"}"#).await;
    assert_eq!(b.json(), serde_json::json!({"accepted": 1}));
    // The same body under a fresh id is the same request: a duplicate.
    let c = post_body(&gw, &[("webhook-id", "msg_2")], r#"{"id":"w-1"}"#).await;
    assert_eq!(
        c.json(),
        serde_json::json!({"accepted": 1, "duplicate": true})
    );
    let out = gw.out();
    eventually("2 events written", || read_lines(&out).len() >= 2).await;
    let dir = gw.stop().await;
    assert_eq!(ids_in(dir.path()), ["w-1", "w-2"]);
}

#[tokio::test]
async fn refused_requests_are_not_remembered_and_the_window_expires() {
    let gw = start(&config("300ms")).await;
    // Bad credentials: refused before the window is consulted.
    let bad = send(
        gw.addr(),
        post(
            gw.addr(),
            "hooks",
            &[("authorization", "wrong")],
            r#"{"id":"r-1"}"#,
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::FORBIDDEN);
    // Malformed JSON is refused and not remembered: sent again, it is refused again rather
    // than answered 200 as a duplicate of something that was never queued.
    let broken = post_body(&gw, &[], r#"{"id":"#).await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    let broken_again = post_body(&gw, &[], r#"{"id":"#).await;
    assert_eq!(
        broken_again.status,
        StatusCode::BAD_REQUEST,
        "{broken_again:?}"
    );
    let ok = post_body(&gw, &[], r#"{"id":"r-1"}"#).await;
    assert_eq!(ok.json(), serde_json::json!({"accepted": 1}));
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let after_window = post_body(&gw, &[], r#"{"id":"r-1"}"#).await;
    assert_eq!(
        after_window.json(),
        serde_json::json!({"accepted": 1}),
        "outside the window the request is queued again"
    );
    let out = gw.out();
    eventually("2 events written", || read_lines(&out).len() >= 2).await;
    assert_eq!(ids(&gw), ["r-1", "r-1"]);
}
