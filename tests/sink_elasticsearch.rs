//! The Elasticsearch / OpenSearch sink (`type = "elasticsearch"`) end to end, against a
//! loopback `_bulk` endpoint that indexes in memory and answers as the Bulk API reference says
//! (tests/common/es.rs):
//!
//! * documents: `_id` = event id, `@timestamp` = event time, the templated index, no `_type`,
//!   gzip, Basic auth; `encoding = "ocsf"` indexes the OCSF object;
//! * a 200 with `errors: true`: items answered 429 are sent again alone, a mapping error goes to
//!   the dead letters with its reason, the rest counts delivered once;
//! * an answer lost after indexing: the resend's 409s count delivered, nothing is indexed or
//!   counted twice;
//! * 413 halves the request; 401 holds the queue and `/readyz` says why;
//! * an outage across a `kill -9` of the real binary, with a disk queue: nothing lost, nothing
//!   twice, order kept;
//! * configuration errors name their key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/es.rs"]
mod es;

use std::time::Duration;

use common::*;
use es::Cluster;
use http::StatusCode;
use serde_json::Value;

const AUTH: (&str, &str) = ("authorization", "Bearer tok");

fn demo_source(sinks: &str) -> String {
    format!(
        r#"
[[sources]]
id = "Demo"
vendor = "generic"
sinks = {sinks}
auth = {{ scheme = "token", prefix = "Bearer ", secret = "tok" }}
"#
    )
}

fn es_sink(id: &str, url: &str, extra: &str) -> String {
    format!(
        r#"
[[sinks]]
id = "{id}"
type = "elasticsearch"
url = "{url}"
request_timeout = "2s"
dead_letter_path = "{{dir}}/dead-{id}.ndjson"
{extra}
[sinks.batch]
linger = "200ms"
"#
    )
}

/// Posts `events` (generic JSON objects) as one request to the `Demo` source.
async fn post_events(gw: &TestGateway, events: &[Value]) {
    let body = serde_json::to_vec(events).unwrap();
    let a = send(gw.addr(), post(gw.addr(), "Demo", &[AUTH], body)).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
}

fn ev(id: &str) -> Value {
    serde_json::json!({"id": id, "severity": "high", "title": format!("alert {id}"), "time": "2026-12-02T10:11:12Z"})
}

async fn counter(gw: &TestGateway, name: &str, sink: &str) -> f64 {
    metric(&gw.metrics_text().await, name, &[("sink", sink)]).unwrap_or(0.0)
}

async fn wait_docs(cluster: &Cluster, n: usize) {
    poll_until("documents indexed", Duration::from_secs(20), || {
        let c = cluster.clone();
        async move { c.ids().len() >= n }
    })
    .await;
}

#[tokio::test]
async fn documents_carry_event_id_timestamp_index_and_credentials() {
    let cluster = Cluster::start().await;
    cluster.with(|s| s.authorization = Some("Basic ZWxhc3RpYzpzM2NyZXQ=".to_owned()));
    let config = format!(
        "{PLAIN_SERVER}{}{}{}",
        es_sink(
            "es",
            &cluster.url(),
            "index = \"siemgate-{vendor}-{source}-%Y.%m.%d\"\nusername = \"elastic\"\npassword = \"s3cret\"",
        ),
        es_sink(
            "es_ocsf",
            &cluster.url(),
            "encoding = \"ocsf\"\nindex = \"ocsf-findings\"\ngzip = false\nusername = \"elastic\"\npassword = \"s3cret\"",
        ),
        demo_source("[\"es\", \"es_ocsf\"]"),
    );
    let gw = start(&config).await;
    post_events(&gw, &[ev("a-1"), ev("a-2"), ev("a-3")]).await;
    wait_docs(&cluster, 6).await;
    let docs = cluster.docs();
    let plain: Vec<_> = docs.iter().filter(|d| d.index != "ocsf-findings").collect();
    assert_eq!(
        plain.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["a-1", "a-2", "a-3"]
    );
    for d in &plain {
        assert_eq!(d.index, "siemgate-generic-demo-2026.12.02");
        assert_eq!(d.source["@timestamp"], "2026-12-02T10:11:12.000Z");
        assert_eq!(d.source["id"], d.id.as_str());
        assert_eq!(d.source["severity"], "high");
    }
    let ocsf: Vec<_> = docs.iter().filter(|d| d.index == "ocsf-findings").collect();
    assert_eq!(ocsf.len(), 3);
    assert_eq!(ocsf[0].source["class_uid"], 2004);
    assert_eq!(ocsf[0].source["@timestamp"], "2026-12-02T10:11:12.000Z");
    let requests = cluster.with(|s| s.requests.clone());
    let gzipped = requests
        .iter()
        .filter(|(_, h, _)| h.get("content-encoding").is_some_and(|v| v == "gzip"))
        .count();
    assert!(gzipped >= 1, "the es sink gzips by default");
    assert!(requests
        .iter()
        .all(|(p, _, body)| p.starts_with("/_bulk?filter_path=") && !body.contains("\"_type\"")));
    assert_eq!(
        counter(&gw, "siemgate_events_delivered_total", "es").await,
        3.0
    );
    assert_eq!(
        counter(&gw, "siemgate_events_delivered_total", "es_ocsf").await,
        3.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_partial_bulk_failure_resends_only_the_failed_items_and_dead_letters_mapping_errors() {
    let cluster = Cluster::start().await;
    cluster.with(|s| {
        s.reject_once = ["p-2".to_owned(), "p-5".to_owned()].into();
        s.long_fields = vec!["raw.count".to_owned()];
    });
    let config = format!(
        "{PLAIN_SERVER}{}{}",
        es_sink("es", &cluster.url(), ""),
        demo_source("[\"es\"]"),
    );
    let gw = start(&config).await;
    let mut events: Vec<Value> = (1..=6).map(|i| ev(&format!("p-{i}"))).collect();
    events[3]["count"] = Value::from("not a number");
    events[0]["count"] = Value::from(12);
    post_events(&gw, &events).await;
    wait_docs(&cluster, 5).await;
    poll_until("counters settle", Duration::from_secs(10), || async {
        counter(&gw, "siemgate_events_delivered_total", "es").await == 5.0
    })
    .await;
    // Everything but the mapping error is indexed, once.
    let mut ids = cluster.ids();
    ids.sort();
    assert_eq!(ids, ["p-1", "p-2", "p-3", "p-5", "p-6"]);
    let attempts = cluster.with(|s| s.attempts.clone());
    for (id, n) in [
        ("p-1", 1),
        ("p-2", 2),
        ("p-3", 1),
        ("p-4", 1),
        ("p-5", 2),
        ("p-6", 1),
    ] {
        assert_eq!(attempts.get(id), Some(&n), "{id}: {attempts:?}");
    }
    // The resend held the two rejected items alone.
    let requests = cluster.with(|s| s.requests.clone());
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let resent: Vec<Value> = requests[1]
        .2
        .lines()
        .step_by(2)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(resent.len(), 2);
    assert_eq!(resent[0]["create"]["_id"], "p-2");
    assert_eq!(resent[1]["create"]["_id"], "p-5");
    // The mapping error is a dead letter with the cluster's reason.
    let dead = read_lines(&gw.dir.path().join("dead-es.ndjson"));
    assert_eq!(dead.len(), 1, "{dead:#?}");
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("400 mapper_parsing_exception: failed to parse field [raw.count]"),
        "{reason}"
    );
    assert!(dead[0]["event"]
        .as_str()
        .unwrap()
        .contains("\"_id\":\"p-4\""));
    assert_eq!(
        counter(&gw, "siemgate_events_failed_total", "es").await,
        1.0
    );
    assert_eq!(counter(&gw, "siemgate_dead_letters_total", "es").await, 1.0);
    assert!(counter(&gw, "siemgate_sink_retries_total", "es").await >= 1.0);
    gw.stop().await;
}

#[tokio::test]
async fn an_answer_lost_after_indexing_is_resent_and_its_409s_count_once() {
    let cluster = Cluster::start().await;
    cluster.with(|s| s.lose_answers = 1);
    let config = format!(
        "{PLAIN_SERVER}{}{}",
        es_sink("es", &cluster.url(), ""),
        demo_source("[\"es\"]"),
    );
    let gw = start(&config).await;
    post_events(&gw, &[ev("l-1"), ev("l-2"), ev("l-3")]).await;
    poll_until("the resend", Duration::from_secs(20), || {
        let c = cluster.clone();
        async move { c.request_count() >= 2 }
    })
    .await;
    poll_until("delivered", Duration::from_secs(10), || async {
        counter(&gw, "siemgate_events_delivered_total", "es").await >= 3.0
    })
    .await;
    assert_eq!(cluster.ids(), ["l-1", "l-2", "l-3"]);
    let attempts = cluster.with(|s| s.attempts.clone());
    assert!(
        attempts.values().all(|&n| n == 2),
        "sent twice each: {attempts:?}"
    );
    assert!(
        cluster.with(|s| s.statuses.clone()) == [200],
        "the resend answered (409s)"
    );
    assert_eq!(
        counter(&gw, "siemgate_events_delivered_total", "es").await,
        3.0
    );
    assert_eq!(
        counter(&gw, "siemgate_events_failed_total", "es").await,
        0.0
    );
    assert!(!gw.dir.path().join("dead-es.ndjson").exists());
    gw.stop().await;
}

#[tokio::test]
async fn a_413_halves_the_request_and_a_401_holds_the_queue_until_fixed() {
    let cluster = Cluster::start().await;
    cluster.with(|s| {
        s.max_content_length = 2500;
        s.authorization = Some("ApiKey right-key".to_owned());
    });
    let config = format!(
        "{PLAIN_SERVER}{}{}",
        es_sink("es", &cluster.url(), "api_key = \"wrong-key\""),
        demo_source("[\"es\"]"),
    );
    let gw = start(&config).await;
    let events: Vec<Value> = (0..8).map(|i| ev(&format!("h-{i}"))).collect();
    post_events(&gw, &events).await;
    let ready = gw.readyz_becomes(StatusCode::SERVICE_UNAVAILABLE).await;
    let reasons = ready["reasons"].to_string();
    assert!(
        reasons.contains(
            "sink es: destination failing: cluster answered 401 Unauthorized: security_exception"
        ),
        "{reasons}"
    );
    assert!(cluster.ids().is_empty());
    // The operator fixes the credentials on the cluster's side.
    cluster.with(|s| s.authorization = Some("ApiKey wrong-key".to_owned()));
    wait_docs(&cluster, 8).await;
    gw.readyz_becomes(StatusCode::OK).await;
    assert_eq!(
        cluster.ids(),
        (0..8).map(|i| format!("h-{i}")).collect::<Vec<_>>()
    );
    let statuses = cluster.with(|s| s.statuses.clone());
    let first_413 = statuses.iter().position(|&s| s == 413);
    assert!(
        first_413.is_some_and(|at| statuses[..at].iter().all(|&s| s == 401)
            && statuses[at..].iter().all(|&s| s == 200 || s == 413)),
        "401s, then 413 for the whole batch, then smaller requests: {statuses:?}"
    );
    assert_eq!(
        counter(&gw, "siemgate_events_delivered_total", "es").await,
        8.0
    );
    gw.stop().await;
}

/// Posts `events` to the binary's hooks listener as one request.
async fn post_to(hooks: std::net::SocketAddr, source: &str, events: &[Value]) {
    let body = serde_json::to_vec(events).unwrap();
    let a = send(hooks, post(hooks, source, &[AUTH], body)).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
}

#[tokio::test]
async fn an_outage_across_a_kill_9_of_the_binary_with_a_disk_queue_loses_nothing_and_keeps_order() {
    let cluster = Cluster::start().await;
    cluster.with(|s| s.whole_status = Some(503));
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{PLAIN_SERVER}{}{}",
        es_sink(
            "es",
            &cluster.url(),
            "[sinks.queue]\ntype = \"disk\"\npath = \"{dir}/queue\"",
        ),
        demo_source("[\"es\"]"),
    );
    let mut sent = Vec::new();
    // The cluster is down while the binary takes events, in many requests; then it dies.
    let mut proc = common::binary::Process::start(dir.path(), &config, &[]);
    let [hooks, metrics] = proc.wait_ready(["hooks", "metrics"]);
    for r in 0..10 {
        let batch: Vec<Value> = (0..10)
            .map(|i| ev(&format!("o-{:03}", r * 10 + i)))
            .collect();
        sent.extend(batch.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        post_to(hooks, "Demo", &batch).await;
    }
    poll_until("retries while down", Duration::from_secs(10), || async {
        let text = metrics_text(metrics).await;
        metric(&text, "siemgate_sink_retries_total", &[("sink", "es")]).unwrap_or(0.0) >= 2.0
    })
    .await;
    proc.kill9();
    // A new process on the same queue takes more; the cluster comes back, busy (429) first.
    let mut proc = common::binary::Process::spawn(dir.path(), &[]);
    let [hooks, _] = proc.wait_ready(["hooks", "metrics"]);
    let batch: Vec<Value> = (100..120).map(|i| ev(&format!("o-{i:03}"))).collect();
    sent.extend(batch.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
    post_to(hooks, "Demo", &batch).await;
    cluster.with(|s| s.whole_status = Some(429));
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.with(|s| s.whole_status = None);
    wait_docs(&cluster, sent.len()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cluster.ids(), sent, "every event, once, in the order taken");
    let attempts = cluster.with(|s| s.attempts.clone());
    assert!(attempts.values().all(|&n| n == 1), "{attempts:?}");
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
id = "es"
type = "elasticsearch"
url = "http://127.0.0.1:9200"
index = "Siem Events"
username = "elastic"
api_key = "k"
max_request_bytes = 10
[[sources]]
id = "g"
vendor = "generic"
sinks = ["es"]
auth = { scheme = "token", secret = "t" }
"#;
    let file = siemgate::config::parse(text).unwrap();
    let issues = siemgate::config::validate(file).err().unwrap();
    let text: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
    for key in [
        "sinks[0].index",
        "sinks[0].api_key",
        "sinks[0].max_request_bytes",
    ] {
        assert!(text.iter().any(|t| t.starts_with(key)), "{key}: {text:#?}");
    }
    let unknown = text_with_key("_type = \"doc\"");
    assert!(unknown.contains("_type"), "{unknown}");
}

fn text_with_key(extra: &str) -> String {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nplaintext = true\n[[sinks]]\nid = \"es\"\ntype = \"elasticsearch\"\nurl = \"http://127.0.0.1:9200\"\n{extra}\n"
    );
    match siemgate::config::parse(&text) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}
