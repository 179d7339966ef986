//! Reloading the config file while the gateway runs: what changed takes effect, what did not
//! keeps its queue and connection, and an invalid or conflicting file changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/hec.rs"]
mod hec;
#[path = "common/syslog.rs"]
mod syslog;

use std::path::Path;
use std::time::Duration;

use common::*;
use http::StatusCode;
use siemgate::control::ChangeError;
use siemgate::Gateway;

const AUTH: (&str, &str) = ("authorization", "tok-reload-test");

fn server(dir: &Path) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
plaintext = true
shutdown_grace = "5s"
data_dir = "{}/data"
[metrics]
enabled = false
"#,
        dir.display()
    )
}

fn file_sink(id: &str, path: &Path) -> String {
    format!(
        r#"
[[sinks]]
id = "{id}"
type = "file"
path = "{}"
fsync = "never"
[sinks.batch]
linger = "0ms"
"#,
        path.display()
    )
}

fn source(id: &str, sinks: &[&str]) -> String {
    let list = toml_list(sinks.iter().copied());
    format!(
        r#"
[[sources]]
id = "{id}"
sinks = [{list}]
auth = {{ scheme = "token", secret = "{}" }}
"#,
        AUTH.1
    )
}

/// Writes the config and starts a gateway from the file (so that it can reload it).
async fn start_from(path: &Path, text: &str) -> Gateway {
    std::fs::write(path, text).unwrap();
    let settings = siemgate::config::load(path).unwrap_or_else(|e| panic!("{e}\n{text}"));
    siemgate::start(settings).await.unwrap()
}

async fn post_event(gw: &Gateway, source: &str, id: &str) -> StatusCode {
    let body = format!(r#"{{"id":"{id}","title":"event {id}"}}"#);
    send(
        gw.hooks_addr(),
        post(gw.hooks_addr(), source, &[AUTH], body),
    )
    .await
    .status
}

fn ids(path: &Path) -> Vec<String> {
    if !path.exists() {
        return Vec::new();
    }
    read_lines(path)
        .iter()
        .map(|v| v["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn stop(gw: Gateway) {
    gw.shutdown();
    tokio::time::timeout(Duration::from_secs(20), gw.wait())
        .await
        .expect("gateway stops");
}

#[tokio::test]
async fn unchanged_sinks_keep_their_connection_and_a_changed_sink_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = syslog::StreamReceiver::tcp(syslog::Framing::Lf).await;
    let syslog_sink = format!(
        r#"
[[sinks]]
id = "siem"
type = "syslog"
address = "{}"
transport = "tcp"
framing = "lf"
[sinks.batch]
linger = "0ms"
"#,
        receiver.addr()
    );
    let (a, b) = (dir.path().join("a.ndjson"), dir.path().join("b.ndjson"));
    let cfg = dir.path().join("siemgate.toml");
    let gw = start_from(
        &cfg,
        &format!(
            "{}{}{}{}",
            server(dir.path()),
            file_sink("out", &a),
            syslog_sink,
            source("s", &["out", "siem"])
        ),
    )
    .await;
    assert_eq!(post_event(&gw, "s", "e1").await, StatusCode::OK);
    eventually("e1 in a.ndjson and at the syslog receiver", || {
        ids(&a) == ["e1"] && receiver.count() == 1
    })
    .await;
    // Source "t" does not exist yet.
    assert_eq!(post_event(&gw, "t", "x").await, StatusCode::NOT_FOUND);

    // The file sink moves to b.ndjson and a source is added; the syslog sink is untouched.
    std::fs::write(
        &cfg,
        format!(
            "{}{}{}{}{}",
            server(dir.path()),
            file_sink("out", &b),
            syslog_sink,
            source("s", &["out", "siem"]),
            source("t", &["out", "siem"])
        ),
    )
    .unwrap();
    let report = gw.reload().await.unwrap();
    assert_eq!(report.sinks.changed, ["out"]);
    assert!(report.sinks.added.is_empty() && report.sinks.removed.is_empty());
    assert_eq!(report.sources.added, ["t"]);
    assert!(report.sources.changed.is_empty(), "{report:?}");
    assert!(report.restart_needed.is_empty(), "{report:?}");

    assert_eq!(post_event(&gw, "s", "e2").await, StatusCode::OK);
    assert_eq!(post_event(&gw, "t", "e3").await, StatusCode::OK);
    eventually("e2 and e3 in b.ndjson and at the syslog receiver", || {
        ids(&b) == ["e2", "e3"] && receiver.count() == 3
    })
    .await;
    assert_eq!(ids(&a), ["e1"], "the old file got nothing after the reload");
    assert_eq!(
        receiver.connections(),
        1,
        "the unchanged syslog sink kept its connection"
    );
    assert!(receiver.messages().iter().all(|m| m.conn == 1));
    stop(gw).await;
}

#[tokio::test]
async fn a_changed_destination_gets_what_was_queued_for_the_old_one_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let collector = hec::HecServer::start("hec-token").await;
    let down = hec::free_addr();
    let hec_sink = |url: &str| {
        format!(
            r#"
[[sinks]]
id = "splunk"
type = "splunk_hec"
url = "{url}"
token = "hec-token"
[sinks.batch]
linger = "0ms"
"#
        )
    };
    let cfg = dir.path().join("siemgate.toml");
    let gw = start_from(
        &cfg,
        &format!(
            "{}{}{}",
            server(dir.path()),
            hec_sink(&format!("http://{down}")),
            source("s", &["splunk"])
        ),
    )
    .await;
    for i in 0..5 {
        assert_eq!(post_event(&gw, "s", &format!("q{i}")).await, StatusCode::OK);
    }
    // Nothing listens at the first URL: the events wait in the queue.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(collector.indexed_count(), 0);

    std::fs::write(
        &cfg,
        format!(
            "{}{}{}",
            server(dir.path()),
            hec_sink(&collector.url()),
            source("s", &["splunk"])
        ),
    )
    .unwrap();
    let report = gw.reload().await.unwrap();
    assert_eq!(report.sinks.changed, ["splunk"]);
    assert_eq!(post_event(&gw, "s", "q5").await, StatusCode::OK);
    let want: Vec<String> = (0..6).map(|i| format!("q{i}")).collect();
    eventually("every queued event at the new collector, in order", || {
        collector.indexed_ids() == want
    })
    .await;
    stop(gw).await;
}

#[tokio::test]
async fn an_invalid_or_conflicting_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ndjson");
    let cfg = dir.path().join("siemgate.toml");
    let good = format!(
        "{}{}{}",
        server(dir.path()),
        file_sink("out", &out),
        source("s", &["out"])
    );
    let gw = start_from(&cfg, &good).await;

    // A parse error, then a validation error, then a sink whose type changes under its id.
    let broken = [
        format!("{good}\nnot toml ["),
        format!(
            "{}{}{}",
            server(dir.path()),
            file_sink("out", &out),
            source("s", &["nosuch"])
        ),
        format!(
            "{}{}{}",
            server(dir.path()),
            r#"
[[sinks]]
id = "out"
type = "http"
url = "http://127.0.0.1:9/"
"#,
            source("s", &["out"])
        ),
    ];
    let expect = ["", "sources[0].sinks[0]", "sinks[0].type"];
    for (text, path) in broken.iter().zip(expect) {
        std::fs::write(&cfg, text).unwrap();
        match gw.reload().await {
            Err(ChangeError::InvalidConfig(issues)) => {
                assert!(
                    issues.iter().any(|i| i.path == path),
                    "want an issue at {path:?}: {issues:?}"
                );
            }
            other => panic!("reload of an invalid file: {other:?}"),
        }
        assert_eq!(post_event(&gw, "s", "still").await, StatusCode::OK);
    }
    eventually("three events through the old config", || {
        ids(&out) == ["still", "still", "still"]
    })
    .await;
    stop(gw).await;
}
