//! Backpressure end to end: when a sink's queue is full the sender gets 503 with Retry-After,
//! nothing of the request is queued or written anywhere (all or nothing across sinks), `/readyz`
//! turns 503, and once the sink drains the same request is accepted.
//!
//! The sink is made deterministically stuck with a named pipe at its path. The file sink opens
//! its path read-write, which on Linux neither blocks nor needs a reader, so the first event is
//! made larger than a pipe's buffer: its write blocks until the test reads the pipe, and every
//! event stays queued (unacknowledged) meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use http::StatusCode;
use tokio::sync::mpsc;

const AUTH: (&str, &str) = ("authorization", "Bearer tok");
/// Bound for every wait on the gateway; generous for a noisy 2-core machine.
const BOUND: Duration = Duration::from_secs(10);
/// Padding of the first event: well above a pipe's default buffer (64 KiB), below the default
/// body cap (1 MiB).
const BIG_PAD: usize = 600_000;

/// A sink `stuck` (queue of 3 events, no linger) writing to `{dir}/out.ndjson`, which the test
/// turns into a FIFO, plus a normal file sink `other` at `{dir}/other.ndjson`. The source
/// `demo` routes to `sinks`.
fn config(sinks: &str) -> String {
    format!(
        r#"{PLAIN_SERVER}
[[sinks]]
id = "stuck"
type = "file"
path = "{{dir}}/out.ndjson"
fsync = "never"
[sinks.queue]
max_events = 3
[sinks.batch]
linger = "0ms"

[[sinks]]
id = "other"
type = "file"
path = "{{dir}}/other.ndjson"
fsync = "never"
[sinks.batch]
linger = "0ms"

[[sources]]
id = "demo"
sinks = {sinks}
auth = {{ scheme = "token", prefix = "Bearer ", secret = "tok" }}
"#
    )
}

/// The stuck sink's FIFO. Until [`Fifo::read`] is called nobody reads it. When the test ends
/// (or panics), dropping it keeps a reader on the pipe on a detached thread, reopening it as
/// often as the gateway does, so a blocked write or open of the in-process gateway's file sink
/// always finishes and the runtime can shut down.
struct Fifo {
    path: PathBuf,
    reading: bool,
}

impl Fifo {
    fn create(path: &Path) -> Fifo {
        mkfifo(path);
        Fifo {
            path: path.to_owned(),
            reading: false,
        }
    }

    /// Starts reading the FIFO on a plain thread (never one the runtime waits for); each line
    /// arrives on the channel, which closes when the gateway closes its end (at shutdown).
    fn read(&mut self) -> mpsc::UnboundedReceiver<String> {
        assert!(!self.reading);
        self.reading = true;
        let (tx, rx) = mpsc::unbounded_channel();
        let path = self.path.clone();
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open the FIFO for reading");
            for line in BufReader::new(file).lines() {
                let Ok(line) = line else { return };
                // Once the test has stopped listening, the pipe is still drained: closing
                // the read end would leave the sink's next open of the FIFO blocked forever.
                let _ = tx.send(line);
            }
        });
        rx
    }
}

impl Drop for Fifo {
    fn drop(&mut self) {
        let path = self.path.clone();
        // Bounded in count; each open waits for a writer, and the thread is detached, so the
        // test binary exits whatever it is waiting on.
        std::thread::spawn(move || {
            for _ in 0..1000 {
                match std::fs::File::open(&path) {
                    Ok(mut f) => {
                        let _ = std::io::copy(&mut f, &mut std::io::sink());
                    }
                    Err(_) => return,
                }
            }
        });
    }
}

/// The next line from the FIFO, as JSON, within [`BOUND`].
async fn next_line(rx: &mut mpsc::UnboundedReceiver<String>) -> serde_json::Value {
    let line = tokio::time::timeout(BOUND, rx.recv())
        .await
        .expect("a line from the FIFO within the bound")
        .expect("the FIFO is still open");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad line ({e}): {line:.200}"))
}

fn event(id: &str) -> String {
    format!(r#"{{"id":"{id}","severity":"high"}}"#)
}

fn big_event(id: &str) -> String {
    format!(r#"{{"id":"{id}","pad":"{}"}}"#, "x".repeat(BIG_PAD))
}

/// Fills `stuck`: one big event whose write blocks on the FIFO, then two small ones behind it.
async fn fill_stuck_queue(gw: &TestGateway) {
    let addr = gw.addr();
    for body in [big_event("p1"), event("p2"), event("p3")] {
        let a = send(addr, post(addr, "demo", &[AUTH], body)).await;
        assert_eq!(a.status, StatusCode::OK, "{a:?}");
        assert_eq!(a.json(), serde_json::json!({"accepted": 1}));
    }
}

/// The refused request, sent again and again.
async fn send_p4(gw: &TestGateway) -> Answer {
    send(gw.addr(), post(gw.addr(), "demo", &[AUTH], event("p4"))).await
}

fn assert_queue_full(a: &Answer) {
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{a:?}");
    assert_eq!(
        a.headers.get("retry-after").map(|v| v.to_str().unwrap()),
        Some("5"),
        "{a:?}"
    );
    assert_eq!(a.json()["error"], "queue_full");
    assert!(
        a.json()["detail"].as_str().unwrap().contains("stuck"),
        "{a:?}"
    );
}

#[tokio::test]
async fn full_queue_refuses_with_503_until_the_sink_drains() {
    let gw = start(&config(r#"["stuck"]"#)).await;
    let mut fifo = Fifo::create(&gw.out());

    fill_stuck_queue(&gw).await;
    let a = send_p4(&gw).await;
    assert_queue_full(&a);
    // Still full on a second try: nothing drains while the FIFO is unread.
    assert_queue_full(&send_p4(&gw).await);

    let (status, body) = get_text(gw.metrics_addr(), "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["status"], "not_ready", "{body}");
    assert!(
        ready["reasons"].as_array().unwrap().iter().any(|r| r
            .as_str()
            .unwrap()
            .contains("stuck: queue above high-water mark")),
        "{body}"
    );

    let text = gw.metrics_text().await;
    let m = |name: &str, labels: &[(&str, &str)]| metric(&text, name, labels);
    assert_eq!(
        m("siemgate_queue_events", &[("sink", "stuck")]),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        m("siemgate_events_delivered_total", &[("sink", "stuck")]),
        Some(0.0)
    );
    assert_eq!(
        m(
            "siemgate_http_requests_total",
            &[("source", "demo"), ("code", "503")]
        ),
        Some(2.0)
    );
    assert_eq!(
        m(
            "siemgate_requests_rejected_total",
            &[("source", "demo"), ("reason", "queue_full")]
        ),
        Some(2.0)
    );

    // Refused requests count no events, so the sender's retry is not counted twice.
    assert_eq!(
        m("siemgate_events_received_total", &[("source", "demo")]),
        Some(3.0)
    );

    // Drain: exactly the three queued events come out, in order, and nothing more.
    let mut rx = fifo.read();
    for id in ["p1", "p2", "p3"] {
        assert_eq!(next_line(&mut rx).await["id"], id);
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err(),
        "the refused request's event was written"
    );

    // Room again: readiness recovers and the same request now goes through.
    let ops = gw.metrics_addr();
    let mut ready = false;
    for _ in 0..400 {
        if get_text(ops, "/readyz").await.0 == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "/readyz back to 200 once the queue drained");
    let a = send_p4(&gw).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.json(), serde_json::json!({"accepted": 1}));
    assert_eq!(next_line(&mut rx).await["id"], "p4");

    gw.stop().await;
    // Shutdown closed the gateway's end of the FIFO: the reader ends with nothing more.
    let rest = tokio::time::timeout(BOUND, rx.recv())
        .await
        .expect("the FIFO closes at shutdown");
    assert_eq!(rest, None, "exactly 4 lines were written");
}

/// With two target sinks and only one full, the request is refused and the other sink gets
/// nothing from it; the room reserved in the other sink's queue is given back.
async fn all_or_nothing_across_sinks(sinks: &str) {
    let gw = start(&config(sinks)).await;
    let mut fifo = Fifo::create(&gw.out());
    let other = gw.dir.path().join("other.ndjson");

    fill_stuck_queue(&gw).await;
    eventually("3 lines in the other sink", || {
        read_lines(&other).len() == 3
    })
    .await;

    assert_queue_full(&send_p4(&gw).await);
    // A refused p4 that still reached `other` would show there twice after the drain at the
    // end, where the sink's whole content is checked once the gateway has stopped.
    let ids: Vec<String> = read_lines(&other)
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["p1", "p2", "p3"], "{sinks}");
    let text = gw.metrics_text().await;
    assert_eq!(
        metric(&text, "siemgate_queue_events", &[("sink", "other")]),
        Some(0.0),
        "{sinks}: {text}"
    );
    assert_eq!(
        metric(&text, "siemgate_queue_events", &[("sink", "stuck")]),
        Some(3.0),
        "{sinks}: {text}"
    );

    let mut rx = fifo.read();
    for id in ["p1", "p2", "p3"] {
        assert_eq!(next_line(&mut rx).await["id"], id, "{sinks}");
    }
    // The queue is acknowledged just after the write returns: retry briefly on 503.
    let mut accepted = None;
    for _ in 0..400 {
        let a = send_p4(&gw).await;
        if a.status != StatusCode::SERVICE_UNAVAILABLE {
            accepted = Some(a);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let a = accepted.expect("accepted once the stuck sink drained");
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(next_line(&mut rx).await["id"], "p4", "{sinks}");
    eventually("4 lines in the other sink", || {
        read_lines(&other).len() == 4
    })
    .await;

    let dir = gw.stop().await;
    assert_eq!(tokio::time::timeout(BOUND, rx.recv()).await.unwrap(), None);
    let ids: Vec<String> = read_lines(&dir.path().join("other.ndjson"))
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["p1", "p2", "p3", "p4"], "{sinks}");
}

#[tokio::test]
async fn full_second_sink_refuses_and_first_sink_gets_nothing() {
    // `other` reserves first; the refusal at `stuck` must give that room back.
    all_or_nothing_across_sinks(r#"["other", "stuck"]"#).await;
}

#[tokio::test]
async fn full_first_sink_refuses_and_second_sink_gets_nothing() {
    all_or_nothing_across_sinks(r#"["stuck", "other"]"#).await;
}

/// A sink whose write never completes does not hold shutdown past the grace period: the gateway
/// stops within `shutdown_grace` plus its short wait for aborted workers, and says what it left.
#[tokio::test]
async fn shutdown_with_a_stuck_sink_ends_after_the_grace_period() {
    let text =
        config(r#"["stuck"]"#).replace("shutdown_grace = \"10s\"", "shutdown_grace = \"1s\"");
    assert!(text.contains("shutdown_grace = \"1s\""));
    let gw = start(&text).await;
    let mut fifo = Fifo::create(&gw.out());
    fill_stuck_queue(&gw).await;

    let started = std::time::Instant::now();
    gw.gateway.shutdown();
    tokio::time::timeout(BOUND, gw.gateway.wait())
        .await
        .expect("the gateway stops although its sink is stuck");
    let took = started.elapsed();
    // Grace (1 s) plus the 2 s wait for aborted workers, with room for a slow machine.
    assert!(took < Duration::from_secs(8), "shutdown took {took:?}");
    assert!(
        took >= Duration::from_millis(900),
        "stopped before the grace period: {took:?}"
    );
    // Release the write still blocked in the kernel (the runtime waits for it at the end of the
    // test) while the temp dir and its FIFO still exist.
    let mut rx = fifo.read();
    assert_eq!(next_line(&mut rx).await["id"], "p1");
}
