//! The disk queue in process: events accepted while the destination is down survive a
//! restart and are delivered by the next start, and delivered events are not sent again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use http::StatusCode;

/// Gateway A: a generic source into an http sink with a disk queue in `queue_dir`.
fn config_a(queue_dir: &Path, url: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
plaintext = true
shutdown_grace = "1s"
[metrics]
listen = "127.0.0.1:0"
[[sinks]]
id = "fwd"
type = "http"
url = "{url}"
connect_timeout = "1s"
[sinks.queue]
type = "disk"
path = "{q}"
segment_bytes = 4096
[sinks.batch]
linger = "0ms"
[[sources]]
id = "in"
sinks = ["fwd"]
auth = {{ scheme = "none", allow_unauthenticated = true }}
"#,
        q = queue_dir.display()
    )
}

async fn start_a(queue_dir: &Path, url: &str) -> siemgate::Gateway {
    let settings =
        siemgate::config::validate(siemgate::config::parse(&config_a(queue_dir, url)).unwrap())
            .unwrap_or_else(|e| panic!("{e:?}"));
    siemgate::start(settings).await.unwrap()
}

async fn stop(gw: siemgate::Gateway) {
    gw.shutdown();
    tokio::time::timeout(Duration::from_secs(15), gw.wait())
        .await
        .expect("stops");
}

#[tokio::test]
async fn accepted_events_survive_a_restart_and_are_delivered_once() {
    let scratch = tempfile::tempdir().unwrap();
    let q = scratch.path().join("queue");
    // B receives what A forwards and writes it to its file.
    let b = start(&format!(
        "{PLAIN_SERVER}{FILE_SINK}\n[[sources]]\nid = \"fromA\"\nvendor = \"generic\"\nsinks = [\"out\"]\nauth = {{ scheme = \"none\", allow_unauthenticated = true }}\n"
    ))
    .await;

    // A's destination is down (nothing listens on port 9 of loopback): events stay queued.
    let a = start_a(&q, "http://127.0.0.1:9/hooks/fromA").await;
    for i in 0..20 {
        let ans = send(
            a.hooks_addr(),
            post(
                a.hooks_addr(),
                "in",
                &[],
                format!(r#"{{"id":"e-{i}","pad":"{}"}}"#, "x".repeat(300)),
            ),
        )
        .await;
        assert_eq!(ans.status, StatusCode::OK, "{ans:?}");
    }
    // The backlog shows as the age of its oldest event.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, text) = get_text(a.metrics_addr().unwrap(), "/metrics").await;
    let age = metric(
        &text,
        "siemgate_queue_oldest_event_age_seconds",
        &[("sink", "fwd")],
    )
    .unwrap();
    assert!(age >= 0.3, "oldest event age {age}");
    assert_eq!(
        metric(&text, "siemgate_queue_events", &[("sink", "fwd")]),
        Some(20.0),
        "{text}"
    );
    stop(a).await;
    let segments: Vec<_> = std::fs::read_dir(&q)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .collect();
    assert!(segments.len() > 1, "several 4 KiB segments hold 20 events");

    // The next start delivers them, in order, to B.
    let url = format!("http://{}/hooks/fromA", b.addr());
    let a = start_a(&q, &url).await;
    let out = b.out();
    eventually("20 events at B", || read_lines(&out).len() >= 20).await;
    let (_, text) = get_text(a.metrics_addr().unwrap(), "/metrics").await;
    assert_eq!(
        metric(
            &text,
            "siemgate_queue_recovered_events_total",
            &[("sink", "fwd")]
        ),
        Some(20.0),
        "{text}"
    );
    let ids: Vec<String> = read_lines(&out)
        .iter()
        .map(|l| l["raw"]["id"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..20).map(|i| format!("e-{i}")).collect();
    assert_eq!(ids, expected);
    stop(a).await;

    // Delivered events are committed: a third start sends nothing again.
    let a = start_a(&q, &url).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(read_lines(&out).len(), 20, "nothing delivered twice");
    stop(a).await;
}

#[tokio::test]
async fn an_unusable_queue_directory_stops_the_start_with_its_path() {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("afile");
    std::fs::write(&file, "not a directory").unwrap();
    let q = file.join("q");
    let settings = siemgate::config::validate(
        siemgate::config::parse(&config_a(&q, "http://127.0.0.1:9/x")).unwrap(),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let err = match siemgate::start(settings).await {
        Ok(_) => panic!("started on an unusable queue directory"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("fwd") && err.contains("afile"), "{err}");
}
