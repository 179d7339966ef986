//! The Microsoft Sentinel sink (`type = "sentinel"`, Azure Monitor Logs Ingestion API) end to
//! end, against a loopback Microsoft Entra token endpoint and DCR ingestion endpoint that answer
//! as the public references say (tests/common/azure.rs):
//!
//! * the client credentials grant (form fields, scope), one cached token for many calls, the
//!   ingestion path with api-version, gzip, rows with TimeGenerated, EventId and the Event's
//!   columns; `stream_shape = "ocsf"` rows;
//! * a token that expires while a batch is in flight: 401, one new token, the same rows resent,
//!   every row ingested once;
//! * 400 for rows that do not fit the stream: those rows go to the dead letters with the API's
//!   message, the rest are ingested once; 413 halves the rows per request;
//! * 429 with Retry-After is honoured; 403 holds the queue and `/readyz` names the missing role;
//!   404 names the stream; a wrong client secret shows on `/readyz` at start;
//! * an outage across a `kill -9` of the real binary, with a disk queue: nothing lost, order
//!   kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/azure.rs"]
mod azure;
mod common;

use std::time::Duration;

use azure::*;
use common::*;
use http::StatusCode;
use serde_json::Value;

const AUTH: (&str, &str) = ("authorization", "Bearer tok");

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

async fn post_events(gw: &TestGateway, events: &[Value]) {
    let body = serde_json::to_vec(events).unwrap();
    let a = send(gw.addr(), post(gw.addr(), "demo", &[AUTH], body)).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
}

fn ev(id: &str) -> Value {
    serde_json::json!({"id": id, "severity": "critical", "title": format!("alert {id}"), "time": "2026-12-02T08:00:00Z"})
}

async fn counter(gw: &TestGateway, name: &str, sink: &str) -> f64 {
    metric(&gw.metrics_text().await, name, &[("sink", sink)]).unwrap_or(0.0)
}

async fn wait_rows(az: &Azure, n: usize) {
    until("rows ingested", Duration::from_secs(20), || {
        az.row_ids().len() >= n
    })
    .await;
}

#[tokio::test]
async fn rows_arrive_with_a_cached_client_credentials_token_in_the_stream_columns() {
    let az = Azure::start().await;
    let config = format!(
        "{PLAIN_SERVER}{}{}{}",
        az.sink("sentinel", ""),
        az.sink("sentinel_ocsf", "stream_shape = \"ocsf\"\ngzip = false"),
        demo_source("[\"sentinel\", \"sentinel_ocsf\"]"),
    );
    let gw = start(&config).await;
    post_events(&gw, &[ev("s-1"), ev("s-2")]).await;
    wait_rows(&az, 4).await;
    post_events(&gw, &[ev("s-3")]).await;
    wait_rows(&az, 6).await;
    let rows = az.with(|s| s.rows.clone());
    let plain: Vec<&Value> = rows.iter().filter(|r| r.get("Event").is_some()).collect();
    assert_eq!(
        plain
            .iter()
            .map(|r| r["EventId"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["s-1", "s-2", "s-3"]
    );
    assert_eq!(plain[0]["TimeGenerated"], "2026-12-02T08:00:00.000Z");
    assert_eq!(plain[0]["Severity"], "critical");
    assert_eq!(plain[0]["SeverityId"], 5);
    assert_eq!(plain[0]["Vendor"], "generic");
    assert_eq!(plain[0]["Source"], "demo");
    assert_eq!(plain[0]["Title"], "alert s-1");
    assert_eq!(plain[0]["Event"]["raw"]["id"], "s-1");
    let ocsf: Vec<&Value> = rows
        .iter()
        .filter(|r| r.get("class_uid").is_some())
        .collect();
    assert_eq!(ocsf.len(), 3);
    assert_eq!(ocsf[0]["TimeGenerated"], "2026-12-02T08:00:00.000Z");
    assert_eq!(ocsf[0]["EventId"], "s-1");
    // The grant as the identity platform documents it; one token per sink, reused.
    let tokens = az.with(|s| s.token_requests.clone());
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    for form in &tokens {
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("grant_type").as_deref(), Some("client_credentials"));
        assert_eq!(
            get("scope").as_deref(),
            Some("https://monitor.azure.com/.default")
        );
        assert_eq!(get("client_id").as_deref(), Some(CLIENT_ID));
    }
    let calls = az.with(|s| s.calls.clone());
    assert!(calls.len() >= 4);
    for c in &calls {
        assert_eq!(
            c.path,
            format!("/dataCollectionRules/{DCR}/streams/{STREAM}?api-version=2023-01-01")
        );
        assert!(c.headers["authorization"]
            .to_str()
            .unwrap()
            .starts_with("Bearer tok-"));
        assert_eq!(c.status, 204);
    }
    assert!(calls.iter().any(|c| c
        .headers
        .get("content-encoding")
        .is_some_and(|v| v == "gzip")));
    assert_eq!(
        counter(&gw, "siemgate_events_delivered_total", "sentinel").await,
        3.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_token_that_expires_while_a_batch_is_in_flight_is_fetched_again_once() {
    let az = Azure::start().await;
    // Tokens die after the first call; the batch needs several calls (small requests).
    az.with(|s| s.expire_tokens_after_calls = Some(1));
    let config = format!(
        "{PLAIN_SERVER}{}{}",
        az.sink("sentinel", "max_request_bytes = 2048"),
        demo_source("[\"sentinel\"]"),
    );
    let gw = start(&config).await;
    let events: Vec<Value> = (0..6).map(|i| ev(&format!("t-{i}"))).collect();
    post_events(&gw, &events).await;
    wait_rows(&az, 6).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        az.row_ids(),
        (0..6).map(|i| format!("t-{i}")).collect::<Vec<_>>()
    );
    let statuses = az.statuses();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 401).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses[1], 401,
        "the second call of the batch met the expiry: {statuses:?}"
    );
    assert_eq!(az.with(|s| s.token_requests.len()), 2);
    assert_eq!(
        counter(&gw, "siemgate_events_delivered_total", "sentinel").await,
        6.0
    );
    assert_eq!(
        counter(&gw, "siemgate_events_failed_total", "sentinel").await,
        0.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_token_is_fetched_again_before_it_expires() {
    let az = Azure::start().await;
    // Two-second tokens: the sink fetches a new one halfway through, never presenting an
    // expired one.
    az.with(|s| s.lifetime_s = 2);
    let config = format!(
        "{PLAIN_SERVER}{}{}",
        az.sink("sentinel", ""),
        demo_source("[\"sentinel\"]"),
    );
    let gw = start(&config).await;
    for i in 0..3 {
        post_events(&gw, &[ev(&format!("e-{i}"))]).await;
        wait_rows(&az, i + 1).await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    assert_eq!(az.row_ids(), ["e-0", "e-1", "e-2"]);
    assert!(
        az.statuses().iter().all(|&s| s == 204),
        "{:?}",
        az.statuses()
    );
    assert!(az.with(|s| s.token_requests.len()) >= 3);
    gw.stop().await;
}

#[tokio::test]
async fn rows_refused_with_400_go_to_the_dead_letters_and_the_rest_is_ingested_once() {
    let az = Azure::start().await;
    az.with(|s| s.bad_rows = ["r-2".to_owned(), "r-5".to_owned()].into());
    let config = format!(
        "{PLAIN_SERVER}{}{}",
        az.sink("sentinel", ""),
        demo_source("[\"sentinel\"]"),
    );
    let gw = start(&config).await;
    let events: Vec<Value> = (0..8).map(|i| ev(&format!("r-{i}"))).collect();
    post_events(&gw, &events).await;
    wait_rows(&az, 6).await;
    until("dead letters", Duration::from_secs(10), || {
        read_lines(&gw.dir.path().join("dead-sentinel.ndjson")).len() >= 2
    })
    .await;
    assert_eq!(az.row_ids(), ["r-0", "r-1", "r-3", "r-4", "r-6", "r-7"]);
    let dead = read_lines(&gw.dir.path().join("dead-sentinel.ndjson"));
    assert_eq!(dead.len(), 2);
    for (d, id) in dead.iter().zip(["r-2", "r-5"]) {
        let row: Value = serde_json::from_str(d["event"].as_str().unwrap()).unwrap();
        assert_eq!(row["EventId"], id);
        let reason = d["reason"].as_str().unwrap();
        assert!(
            reason
                .starts_with("Logs Ingestion API answered 400 Bad Request: InvalidArgument: Row 0"),
            "{reason}"
        );
    }
    poll_until("counters", Duration::from_secs(5), || async {
        counter(&gw, "siemgate_events_delivered_total", "sentinel").await == 6.0
    })
    .await;
    assert_eq!(
        counter(&gw, "siemgate_events_failed_total", "sentinel").await,
        2.0
    );
    assert_eq!(
        counter(&gw, "siemgate_dead_letters_total", "sentinel").await,
        2.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_413_halves_the_rows_per_request_and_a_429_waits_for_retry_after() {
    let az = Azure::start().await;
    az.with(|s| {
        s.max_body = 1500;
        s.throttle = 1;
    });
    let config = format!(
        "{PLAIN_SERVER}{}{}",
        az.sink("sentinel", "gzip = false"),
        demo_source("[\"sentinel\"]"),
    );
    let gw = start(&config).await;
    let events: Vec<Value> = (0..6).map(|i| ev(&format!("h-{i}"))).collect();
    post_events(&gw, &events).await;
    wait_rows(&az, 6).await;
    assert_eq!(
        az.row_ids(),
        (0..6).map(|i| format!("h-{i}")).collect::<Vec<_>>()
    );
    let calls = az.with(|s| s.calls.clone());
    assert_eq!(calls[0].status, 429);
    let gap = calls[1].at.duration_since(calls[0].at);
    assert!(
        gap >= Duration::from_millis(900),
        "Retry-After: 1 honoured: {gap:?}"
    );
    assert!(calls.iter().any(|c| c.status == 413));
    assert!(calls
        .iter()
        .filter(|c| c.status == 204)
        .all(|c| c.body.len() <= 1500));
    assert_eq!(
        counter(&gw, "siemgate_events_delivered_total", "sentinel").await,
        6.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_missing_role_holds_the_queue_and_readyz_names_it() {
    let az = Azure::start().await;
    az.with(|s| s.role = false);
    let config = format!(
        "{PLAIN_SERVER}{}{}",
        az.sink("sentinel", ""),
        demo_source("[\"sentinel\"]"),
    );
    let gw = start(&config).await;
    post_events(&gw, &[ev("m-1"), ev("m-2")]).await;
    let ready = gw.readyz_becomes(StatusCode::SERVICE_UNAVAILABLE).await;
    let reasons = ready["reasons"].to_string();
    assert!(
        reasons.contains("sink sentinel: destination failing"),
        "{reasons}"
    );
    assert!(
        reasons.contains("Monitoring Metrics Publisher"),
        "{reasons}"
    );
    assert!(reasons.contains(DCR), "{reasons}");
    assert!(az.row_ids().is_empty());
    // The role is granted: the held rows go, once.
    az.with(|s| s.role = true);
    wait_rows(&az, 2).await;
    gw.readyz_becomes(StatusCode::OK).await;
    assert_eq!(az.row_ids(), ["m-1", "m-2"]);
    assert_eq!(
        counter(&gw, "siemgate_events_failed_total", "sentinel").await,
        0.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_unknown_stream_and_a_wrong_secret_show_on_readyz() {
    let az = Azure::start().await;
    let config = format!(
        "{PLAIN_SERVER}{}{}{}",
        az.sink("wrong_stream", "")
            .replace(STREAM, "Custom-Nope_CL"),
        az.sink("wrong_secret", "")
            .replace(CLIENT_SECRET, "not-the-secret"),
        demo_source("[\"wrong_stream\"]"),
    );
    let gw = start(&config).await;
    // The wrong secret shows at start, before any event.
    let ready = gw.readyz_becomes(StatusCode::SERVICE_UNAVAILABLE).await;
    let reasons = ready["reasons"].to_string();
    assert!(reasons.contains("sink wrong_secret: destination failing: token endpoint answered 401 Unauthorized: invalid_client: AADSTS7000215"), "{reasons}");
    assert!(
        !reasons.contains("not-the-secret"),
        "the secret is never shown"
    );
    post_events(&gw, &[ev("u-1")]).await;
    poll_until("the stream error", Duration::from_secs(10), || async {
        gw.readyz().await.1.contains("Custom-Nope_CL")
    })
    .await;
    let (_, text) = gw.readyz().await;
    assert!(text.contains("404 Not Found: InvalidStream"), "{text}");
    assert!(az.row_ids().is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn an_outage_across_a_kill_9_of_the_binary_with_a_disk_queue_loses_nothing_and_keeps_order() {
    let az = Azure::start().await;
    az.with(|s| s.down = Some(503));
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{PLAIN_SERVER}{}{}",
        az.sink(
            "sentinel",
            "[sinks.queue]\ntype = \"disk\"\npath = \"{dir}/queue\"",
        ),
        demo_source("[\"sentinel\"]"),
    );
    let post_to = |hooks: std::net::SocketAddr, events: Vec<Value>| async move {
        let body = serde_json::to_vec(&events).unwrap();
        let a = send(hooks, post(hooks, "demo", &[AUTH], body)).await;
        assert_eq!(a.status, StatusCode::OK, "{a:?}");
    };
    let mut sent = Vec::new();
    let mut proc = common::binary::Process::start(dir.path(), &config, &[]);
    let [hooks, metrics] = proc.wait_ready(["hooks", "metrics"]);
    for r in 0..10 {
        let batch: Vec<Value> = (0..10)
            .map(|i| ev(&format!("o-{:03}", r * 10 + i)))
            .collect();
        sent.extend(batch.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        post_to(hooks, batch).await;
    }
    poll_until("retries while down", Duration::from_secs(10), || async {
        let text = metrics_text(metrics).await;
        metric(
            &text,
            "siemgate_sink_retries_total",
            &[("sink", "sentinel")],
        )
        .unwrap_or(0.0)
            >= 2.0
    })
    .await;
    proc.kill9();
    let mut proc = common::binary::Process::spawn(dir.path(), &[]);
    let [hooks, _] = proc.wait_ready(["hooks", "metrics"]);
    let batch: Vec<Value> = (100..120).map(|i| ev(&format!("o-{i:03}"))).collect();
    sent.extend(batch.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
    post_to(hooks, batch).await;
    az.with(|s| {
        s.down = None;
        s.throttle = 1;
    });
    wait_rows(&az, sent.len()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(az.row_ids(), sent, "every row, once, in the order taken");
    proc.signal("-TERM");
    assert!(proc.wait_exit(Duration::from_secs(20)).success());
}

#[test]
fn configuration_errors_name_their_key() {
    let text = r#"
[server]
listen = "127.0.0.1:0"
plaintext = true
[[sinks]]
id = "s"
type = "sentinel"
endpoint = "https://dce.westeurope-1.ingest.monitor.azure.com/extra"
dcr_immutable_id = "12345"
stream = "Custom Table"
tenant_id = "t"
client_id = "c"
client_secret = "${SIEMGATE_TEST_UNSET_SENTINEL_SECRET_8F1}"
max_request_bytes = 2000000
[[sources]]
id = "g"
vendor = "generic"
sinks = ["s"]
auth = { scheme = "token", secret = "t" }
"#;
    let file = siemgate::config::parse(text).unwrap();
    let issues = siemgate::config::validate(file).err().unwrap();
    let text: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
    for key in [
        "sinks[0].endpoint",
        "sinks[0].dcr_immutable_id",
        "sinks[0].stream",
        "sinks[0].client_secret",
        "sinks[0].max_request_bytes",
    ] {
        assert!(text.iter().any(|t| t.starts_with(key)), "{key}: {text:#?}");
    }
}
