//! The shipped Grafana dashboard and Prometheus alert rules against the real binary's
//! `/metrics`: every `siemgate_*` name they query (histogram `_bucket`/`_sum`/`_count` series
//! included) must be one the binary exposes, so renaming a metric cannot silently blank a panel
//! or disarm an alert. The binary runs with a token source and a Splunk HEC sink with a disk
//! queue and indexer acknowledgement (against the loopback collector), so every family the
//! files use exists, and it serves accepted, refused and unrouted requests first. The dashboard's
//! queries must also parse as PromQL (`promtool check rules`, where promtool is installed).
//! Each sink's queue bounds, which the queue alert divides by, are gauges with exactly the
//! configured values (two sinks with different bounds, across a reload and a restart).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/hec.rs"]
mod hec;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use common::binary::Process;
use common::*;
use hec::{AckPolicy, HecServer};
use http::StatusCode;
use serde_json::Value;

const TOKEN: &str = "deploy-test-token-7c1e";
const HEC_TOKEN: &str = "deploy-hec-token-4b2a";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn config(hec_url: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
plaintext = true
shutdown_grace = "10s"
data_dir = '{{dir}}/data'
[metrics]
listen = "127.0.0.1:0"

[[sinks]]
id = "splunk"
type = "splunk_hec"
url = "{hec_url}"
token = "{HEC_TOKEN}"
[sinks.acknowledgements]
enabled = true
poll_interval = "100ms"
[sinks.queue]
type = "disk"
[sinks.batch]
linger = "0ms"

[[sources]]
id = "prisma"
vendor = "prisma_cloud"
sinks = ["splunk"]
auth = {{ scheme = "token", secret = "{TOKEN}" }}
"#
    )
}

/// The `siemgate_*` words of a text: a loose read of PromQL (and of any prose around it).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("siemgate_") {
        let word: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + word.len()..];
        names.insert(word);
    }
    names
}

/// Every string in a JSON document (queries, variable definitions, descriptions), one a line.
fn strings(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(o) => o.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// The names `/metrics` exposes: each sample's name, and a histogram's own name (`# TYPE` line)
/// when its `_bucket` samples are there.
fn exposed(scrape: &str) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l[..l.find(['{', ' ']).unwrap_or(l.len())].to_owned())
        .collect();
    let histograms: Vec<String> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" histogram"))
        .filter(|name| names.contains(&format!("{name}_bucket")))
        .map(str::to_owned)
        .collect();
    names.extend(histograms);
    names
}

fn missing(file: &str, wanted: &BTreeSet<String>, exposed: &BTreeSet<String>) -> Vec<String> {
    wanted
        .iter()
        .filter(|n| !exposed.contains(*n))
        .map(|n| format!("{file}: {n}"))
        .collect()
}

/// Scrapes until `name{labels}` reaches `want` (bounded), returning the last scrape.
async fn scrape_until(
    metrics: std::net::SocketAddr,
    name: &str,
    labels: &[(&str, &str)],
    want: f64,
) -> String {
    let mut text = String::new();
    for _ in 0..250 {
        text = get_text(metrics, "/metrics").await.1;
        if metric(&text, name, labels).is_some_and(|v| v >= want) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{name}{labels:?} never reached {want}:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alert_rules_query_only_metrics_the_binary_exposes() {
    let hec = HecServer::start(HEC_TOKEN).await;
    hec.enable_acks(AckPolicy::All);
    let dir = tempfile::tempdir().unwrap();
    let mut proc = Process::start(dir.path(), &config(&hec.url()), &[]);
    let [hooks, metrics] = proc.wait_ready(["hooks", "metrics"]);

    // Accepted, refused for a wrong token, and to no configured source.
    let alert = std::fs::read_to_string(
        repo().join("fixtures/vendors/prisma_cloud-webhook-alert-open.json"),
    )
    .unwrap();
    let ok = send(
        hooks,
        post(hooks, "prisma", &[("X-Redlock-Auth", TOKEN)], alert.clone()),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    let bad = send(
        hooks,
        post(
            hooks,
            "prisma",
            &[("X-Redlock-Auth", "wrong-token-123")],
            alert.clone(),
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::FORBIDDEN, "{:?}", bad.body);
    let unrouted = send(hooks, post(hooks, "nowhere", &[], alert)).await;
    assert_eq!(unrouted.status, StatusCode::NOT_FOUND);

    let scrape = scrape_until(
        metrics,
        "siemgate_events_delivered_total",
        &[("sink", "splunk")],
        1.0,
    )
    .await;
    assert_eq!(
        metric(
            &scrape,
            "siemgate_auth_failures_total",
            &[("source", "prisma"), ("reason", "invalid_credential")]
        ),
        Some(1.0),
        "{scrape}"
    );
    let exposed = exposed(&scrape);

    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/siemgate.json")).unwrap();
    let mut dashboard_text = String::new();
    strings(&dashboard, &mut dashboard_text);
    let in_dashboard = metric_names(&dashboard_text);
    let in_rules = metric_names(&read("deploy/prometheus/alerts.yml"));
    let in_rule_tests = metric_names(&read("deploy/prometheus/alerts_test.yml"));

    // The files do query the metrics (a parse that found nothing would prove nothing).
    for (file, names, at_least) in [
        ("dashboard", &in_dashboard, 25),
        ("alerts.yml", &in_rules, 6),
        ("alerts_test.yml", &in_rule_tests, 6),
    ] {
        assert!(names.len() >= at_least, "{file} names only {names:?}");
    }
    for name in [
        "siemgate_http_request_duration_seconds_bucket",
        "siemgate_hec_pending_ack_events",
        "siemgate_queue_fsync_duration_seconds",
        "siemgate_connections_open",
        "siemgate_queue_max_events",
        "siemgate_queue_max_bytes",
        "siemgate_dead_letters_waiting",
        "siemgate_dead_letter_replays_total",
        "siemgate_dead_letter_purges_total",
    ] {
        assert!(
            in_dashboard.contains(name),
            "the dashboard does not show {name}"
        );
    }

    let mut unknown = missing("deploy/grafana/siemgate.json", &in_dashboard, &exposed);
    unknown.extend(missing("deploy/prometheus/alerts.yml", &in_rules, &exposed));
    unknown.extend(missing(
        "deploy/prometheus/alerts_test.yml",
        &in_rule_tests,
        &exposed,
    ));
    assert!(
        unknown.is_empty(),
        "names /metrics does not expose:\n{}\n\n/metrics exposes:\n{}",
        unknown.join("\n"),
        exposed.iter().cloned().collect::<Vec<_>>().join("\n")
    );

    proc.signal("-TERM");
    assert!(
        proc.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        proc.stderr_text()
    );
    hec.assert_no_problems();
}

/// Two file sinks with their own queue bounds (one a memory queue, one a disk queue), and a
/// source to both; `small_events` is the memory queue's `max_events`, and `with_big` whether the
/// disk queue's sink is in the file.
fn bounds_config(small_events: u64, with_big: bool) -> String {
    let big = if with_big {
        r#"
[[sinks]]
id = "big"
type = "file"
path = "{dir}/big.ndjson"
[sinks.queue]
type = "disk"
max_events = 250000
max_bytes = 536870912
"#
    } else {
        ""
    };
    let sinks = if with_big {
        r#"["small", "big"]"#
    } else {
        r#"["small"]"#
    };
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
plaintext = true
shutdown_grace = "10s"
data_dir = '{{dir}}/data'
[metrics]
listen = "127.0.0.1:0"

[[sinks]]
id = "small"
type = "file"
path = "{{dir}}/small.ndjson"
[sinks.queue]
max_events = {small_events}
max_bytes = 1048576
{big}
[[sources]]
id = "prisma"
vendor = "prisma_cloud"
sinks = {sinks}
auth = {{ scheme = "token", secret = "{TOKEN}" }}
"#
    )
}

/// Each sink's configured queue bounds are gauges with exactly the configured values, the
/// denominators of the queue alert's ratio. A reload that changes a running sink's bounds
/// keeps its queue (and so the gauges) until the next start; a reload that removes a sink
/// removes its gauges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_bound_gauges_show_each_sinks_configured_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let mut proc = Process::start(dir.path(), &bounds_config(500, true), &[]);
    let [_hooks, metrics] = proc.wait_ready(["hooks", "metrics"]);

    let scrape = get_text(metrics, "/metrics").await.1;
    let gauge = |text: &str, name: &str, sink: &str| metric(text, name, &[("sink", sink)]);
    for (sink, events, bytes) in [
        ("small", 500.0, 1_048_576.0),
        ("big", 250_000.0, 536_870_912.0),
    ] {
        assert_eq!(
            gauge(&scrape, "siemgate_queue_max_events", sink),
            Some(events),
            "{sink}: {scrape}"
        );
        assert_eq!(
            gauge(&scrape, "siemgate_queue_max_bytes", sink),
            Some(bytes),
            "{sink}: {scrape}"
        );
    }
    for name in ["siemgate_queue_max_events", "siemgate_queue_max_bytes"] {
        assert!(
            scrape.contains(&format!("# TYPE {name} gauge")),
            "{name} is not a gauge: {scrape}"
        );
    }

    // Reload: "small" asks for other bounds (they apply at the next start), "big" goes.
    common::binary::write_config(dir.path(), &bounds_config(700, false));
    proc.signal("-HUP");
    let mut scrape = String::new();
    for _ in 0..250 {
        scrape = get_text(metrics, "/metrics").await.1;
        if gauge(&scrape, "siemgate_queue_max_events", "big").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        gauge(&scrape, "siemgate_queue_max_events", "big"),
        None,
        "{scrape}"
    );
    assert_eq!(
        gauge(&scrape, "siemgate_queue_max_bytes", "big"),
        None,
        "{scrape}"
    );
    assert_eq!(
        gauge(&scrape, "siemgate_queue_max_events", "small"),
        Some(500.0),
        "the running queue keeps its bounds until the next start: {scrape}"
    );
    assert_eq!(
        gauge(&scrape, "siemgate_queue_max_bytes", "small"),
        Some(1_048_576.0),
        "{scrape}"
    );

    // The next start runs with the new bounds.
    proc.signal("-TERM");
    assert!(
        proc.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        proc.stderr_text()
    );
    let mut proc = Process::spawn(dir.path(), &[]);
    let [_hooks, metrics] = proc.wait_ready(["hooks", "metrics"]);
    let scrape = get_text(metrics, "/metrics").await.1;
    assert_eq!(
        gauge(&scrape, "siemgate_queue_max_events", "small"),
        Some(700.0),
        "{scrape}"
    );
    assert_eq!(
        gauge(&scrape, "siemgate_queue_max_events", "big"),
        None,
        "{scrape}"
    );
    proc.signal("-TERM");
    assert!(
        proc.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        proc.stderr_text()
    );
}

#[test]
fn dashboard_has_a_prometheus_datasource_and_source_and_sink_variables() {
    let d: Value = serde_json::from_str(&read("deploy/grafana/siemgate.json")).unwrap();
    let vars = d["templating"]["list"].as_array().unwrap();
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no ${name} variable"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    assert!(var("source")["definition"]
        .as_str()
        .unwrap()
        .contains(", source)"));
    assert!(var("sink")["definition"]
        .as_str()
        .unwrap()
        .contains(", sink)"));

    // Every query goes to the chosen datasource, and every per-source or per-sink one follows
    // the variable.
    let mut queries = 0;
    for panel in d["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            queries += 1;
            let expr = t["expr"].as_str().unwrap();
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{expr}");
            if expr.contains("by (source") {
                assert!(expr.contains(r#"source=~"$source""#), "{expr}");
            }
            if expr.contains("by (sink") {
                assert!(expr.contains(r#"sink=~"$sink""#), "{expr}");
            }
        }
    }
    assert!(queries >= 25, "{queries} queries");
}

/// Every panel query, with Grafana's variables replaced by what they stand for at "All".
fn dashboard_queries(d: &Value) -> Vec<String> {
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .map(|t| {
            t["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "5m")
                .replace("$instance", ".*")
                .replace("$source", ".*")
                .replace("$sink", ".*")
        })
        .collect()
}

/// The dashboard's queries parse as PromQL: `promtool check rules` on a recording rule per
/// query. promtool is there in CI (`.ci/run` installs it before the tests); elsewhere this
/// test says it is skipped.
#[test]
fn dashboard_queries_are_valid_promql() {
    if std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no promtool here (Debian's prometheus package has it)");
        return;
    }
    let d: Value = serde_json::from_str(&read("deploy/grafana/siemgate.json")).unwrap();
    let queries = dashboard_queries(&d);
    assert!(queries.len() >= 25);
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in queries.iter().enumerate() {
        // A JSON string is a YAML double-quoted scalar.
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            Value::String(q.clone())
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard_rules.yml");
    std::fs::write(&file, rules).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules on the dashboard's queries:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("SUCCESS: {} rules found", queries.len())),
        "{said}"
    );
}

#[test]
fn names_are_read_from_promql_and_histogram_series_count_as_exposed() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le) (rate(siemgate_x_seconds_bucket{a="b"}[5m]))) / siemgate_y"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["siemgate_x_seconds_bucket", "siemgate_y"]
    );
    let scrape = "# TYPE siemgate_x_seconds histogram\nsiemgate_x_seconds_bucket{le=\"1\"} 0\nsiemgate_x_seconds_sum 0\nsiemgate_up 1\n";
    let e = exposed(scrape);
    assert!(e.contains("siemgate_x_seconds") && e.contains("siemgate_x_seconds_bucket"));
    assert!(e.contains("siemgate_up") && !e.contains("siemgate_x_seconds_count"));
}
