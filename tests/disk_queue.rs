//! The disk queue in process: events accepted while the destination is down survive a
//! restart and are delivered by the next start, and delivered events are not sent again. And
//! the queue itself, through the library: a backlog far larger than its memory window is held
//! on disk and read back in order, across a restart too, with the window never exceeded; a
//! failed read back keeps the events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::StatusCode;
use siemgate::config::{QueueFsync, QueueLimits};
use siemgate::queue::disk::{DiskMetrics, DiskSettings};
use siemgate::queue::Queue;

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

// ---------------------------------------------------------------------------------------------
// The queue through the library: a memory window far smaller than the backlog.

/// The memory window of these tests: a few dozen events.
const WINDOW_BYTES: u64 = 4096;
/// Bound of the whole queue: far beyond the window.
const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// A disk queue in `dir` with a [`WINDOW_BYTES`] window; also returns its recovered-events
/// counter.
fn open_queue(dir: &Path) -> (Queue, Arc<AtomicU64>) {
    let recovered = Arc::new(AtomicU64::new(0));
    let settings = DiskSettings {
        dir: dir.to_path_buf(),
        fsync: QueueFsync::Never,
        segment_bytes: 16 * 1024,
        memory: QueueLimits {
            max_events: 100_000,
            max_bytes: WINDOW_BYTES,
        },
    };
    let metrics = DiskMetrics {
        torn_bytes: metrics::Counter::noop(),
        recovered: metrics::Counter::from_arc(recovered.clone()),
        fsync_seconds: metrics::Histogram::noop(),
        read_errors: metrics::Counter::noop(),
    };
    let limits = QueueLimits {
        max_events: 1_000_000,
        max_bytes: MAX_BYTES,
    };
    let q = Queue::disk("lib", limits, &settings, metrics).unwrap();
    (q, recovered)
}

/// Event `i`: its number, then padding of a length that varies with `i` (31 to 130 bytes).
fn event(i: usize) -> Bytes {
    let mut e = format!("{i:08}:");
    e.push_str(&"p".repeat(22 + i * 7 % 100));
    Bytes::from(e)
}

fn number(e: &Bytes) -> usize {
    std::str::from_utf8(&e[..8]).unwrap().parse().unwrap()
}

/// Queues events `range` as requests of 1 to 9 events, each answered once in the log.
async fn put(q: &Queue, range: std::ops::Range<usize>) {
    let mut i = range.start;
    while i < range.end {
        let n = (1 + i % 9).min(range.end - i);
        let items: Vec<Bytes> = (i..i + n).map(event).collect();
        let bytes = items.iter().map(|b| b.len() as u64).sum();
        let reservation = q.try_reserve(n as u64, bytes).expect("room in the queue");
        let written = q.commit(reservation, items).expect("writer keeps up");
        written
            .expect("a disk queue answers once written")
            .await
            .expect("writer answers")
            .expect("written");
        i += n;
    }
}

/// Takes exactly `n` events off the queue with small batches, acknowledging each; checks the
/// window after every batch.
async fn take(q: &Queue, n: usize) -> Vec<usize> {
    let mut got = Vec::with_capacity(n);
    let mut batch = Vec::new();
    while got.len() < n {
        let more = tokio::time::timeout(
            Duration::from_secs(10),
            q.next_batch(7.min(n - got.len()), 600, Duration::ZERO, &mut batch),
        )
        .await
        .unwrap_or_else(|_| panic!("no batch within 10 s after {} events", got.len()));
        assert!(more.is_some(), "queue closed after {} events", got.len());
        got.extend(batch.iter().map(number));
        q.ack(batch.len());
        assert!(
            q.resident().bytes <= WINDOW_BYTES,
            "{:?} in memory",
            q.resident()
        );
    }
    got
}

fn total_bytes(range: std::ops::Range<usize>) -> u64 {
    range.map(|i| event(i).len() as u64).sum()
}

async fn close(q: Queue) {
    tokio::task::spawn_blocking(move || {
        q.close_disk();
        drop(q);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_far_larger_than_the_window_is_delivered_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = open_queue(dir.path());
    let q = Arc::new(q);
    const BACKLOG: usize = 2000;
    const TOTAL: usize = 6000;
    assert!(total_bytes(0..BACKLOG) > 30 * WINDOW_BYTES);

    // A backlog with nobody consuming: the depth is the whole queue, memory only the window.
    put(&q, 0..BACKLOG).await;
    let depth = q.depth();
    assert_eq!(
        (depth.events, depth.bytes),
        (BACKLOG as u64, total_bytes(0..BACKLOG))
    );
    assert!(q.resident().bytes <= WINDOW_BYTES && q.resident().events > 0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(q.oldest_age() >= Duration::from_millis(20));

    // A consumer drains while more events come, in requests of several events.
    let consumer = {
        let q = q.clone();
        tokio::spawn(async move { take(&q, TOTAL).await })
    };
    put(&q, BACKLOG..TOTAL).await;
    let got = tokio::time::timeout(Duration::from_secs(60), consumer)
        .await
        .expect("drained within 60 s")
        .unwrap();
    assert_eq!(
        got,
        (0..TOTAL).collect::<Vec<_>>(),
        "every event once, in order"
    );
    let peak = q.resident_peak();
    assert!(peak.bytes <= WINDOW_BYTES, "memory held {peak:?}");
    assert!(
        peak.bytes > WINDOW_BYTES / 2,
        "the window was used: {peak:?}"
    );
    assert_eq!((q.depth().events, q.depth().bytes), (0, 0));
    assert_eq!(q.oldest_age(), Duration::ZERO);
    assert_eq!(q.read_errors(), 0);
    let q = Arc::try_unwrap(q).ok().expect("the consumer is done");
    close(q).await;

    // Everything delivered was committed: nothing comes back.
    let (q, recovered) = open_queue(dir.path());
    assert_eq!(recovered.load(Ordering::Relaxed), 0);
    assert_eq!(q.depth().events, 0);
    close(q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_a_backlog_larger_than_the_window_delivers_all_of_it_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = open_queue(dir.path());
    const TOTAL: usize = 3000;
    const DELIVERED: usize = 500;
    put(&q, 0..TOTAL).await;
    assert_eq!(
        take(&q, DELIVERED).await,
        (0..DELIVERED).collect::<Vec<_>>()
    );
    close(q).await;

    let (q, recovered) = open_queue(dir.path());
    let left = TOTAL - DELIVERED;
    assert_eq!(recovered.load(Ordering::Relaxed), left as u64);
    // The whole backlog counts at once; only the window is read back.
    let depth = q.depth();
    assert_eq!(
        (depth.events, depth.bytes),
        (left as u64, total_bytes(DELIVERED..TOTAL))
    );
    assert!(total_bytes(DELIVERED..TOTAL) > 30 * WINDOW_BYTES);
    eventually("the window read back", || q.resident().events > 0).await;
    assert!(q.resident().bytes <= WINDOW_BYTES);
    // New events go after the recovered ones.
    put(&q, TOTAL..TOTAL + 100).await;
    let got = take(&q, left + 100).await;
    assert_eq!(got, (DELIVERED..TOTAL + 100).collect::<Vec<_>>());
    assert!(q.resident_peak().bytes <= WINDOW_BYTES);
    assert_eq!(q.depth().events, 0);
    close(q).await;

    let (q, recovered) = open_queue(dir.path());
    assert_eq!(
        recovered.load(Ordering::Relaxed),
        0,
        "all of it was committed"
    );
    close(q).await;
}

/// Flips one payload byte of record `seq` (of the file's first record `base`) in a segment.
fn flip_record_byte(dir: &Path, seq: u64) {
    let mut segs: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .map(|p| (p.file_stem().unwrap().to_str().unwrap().parse().unwrap(), p))
        .collect();
    segs.sort();
    let (base, path) = segs
        .iter()
        .rev()
        .find(|(base, _)| *base <= seq)
        .expect("a segment holds the record");
    let data = std::fs::read(path).unwrap();
    let mut at = 0usize;
    for _ in *base..seq {
        at += 8 + u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
    }
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start((at + 8 + 3) as u64)).unwrap();
    f.write_all(&[data[at + 8 + 3] ^ 0x20]).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_read_back_keeps_the_events_and_is_tried_again_without_spinning() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = open_queue(dir.path());
    const TOTAL: usize = 400;
    put(&q, 0..TOTAL).await;
    // The window holds events 0..k; k, the first event waiting on disk, no longer reads back
    // intact (the writer reads nothing back before the window drains to half).
    let k = q.resident().events as usize;
    assert!(k > 0 && k < TOTAL);
    flip_record_byte(dir.path(), k as u64);
    assert_eq!(take(&q, k).await, (0..k).collect::<Vec<_>>());
    eventually("a failed read back", || q.read_errors() > 0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let errors = q.read_errors();
    assert!(
        (1..=5).contains(&errors),
        "{errors} failed reads in about a second: retries must back off"
    );
    assert_eq!(
        q.depth().events as usize,
        TOTAL - k,
        "the events stay queued"
    );
    let mut batch = Vec::new();
    let next = tokio::time::timeout(
        Duration::from_millis(200),
        q.next_batch(7, 600, Duration::ZERO, &mut batch),
    )
    .await;
    assert!(next.is_err(), "nothing is skipped: {batch:?}");

    // Repaired, a later attempt reads the rest back, in order.
    flip_record_byte(dir.path(), k as u64);
    assert_eq!(take(&q, TOTAL - k).await, (k..TOTAL).collect::<Vec<_>>());
    close(q).await;
}

#[test]
fn memory_window_keys_are_validated() {
    let config = |queue: &str| {
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
plaintext = true
[[sinks]]
id = "fwd"
type = "http"
url = "http://127.0.0.1:9/x"
[sinks.queue]
{queue}
[[sources]]
id = "in"
sinks = ["fwd"]
auth = {{ scheme = "none", allow_unauthenticated = true }}
"#
        )
    };
    let issues = |queue: &str| -> Vec<String> {
        match siemgate::config::validate(siemgate::config::parse(&config(queue)).unwrap()) {
            Ok(_) => Vec::new(),
            Err(issues) => issues.iter().map(ToString::to_string).collect(),
        }
    };
    let settings = |queue: &str| {
        siemgate::config::validate(siemgate::config::parse(&config(queue)).unwrap())
            .unwrap_or_else(|e| panic!("{e:?}"))
    };

    let s = settings("type = \"disk\"");
    let memory = s.sinks[0].disk.as_ref().unwrap().memory;
    assert_eq!(
        (memory.max_events, memory.max_bytes),
        (100_000, 64 * 1024 * 1024)
    );
    let s = settings(
        "type = \"disk\"\nmemory_events = 50\nmemory_bytes = 4096\nmax_bytes = 10737418240",
    );
    let memory = s.sinks[0].disk.as_ref().unwrap().memory;
    assert_eq!((memory.max_events, memory.max_bytes), (50, 4096));
    assert_eq!(s.sinks[0].queue.max_bytes, 10 * 1024 * 1024 * 1024);

    for key in ["memory_events", "memory_bytes"] {
        let found = issues(&format!("type = \"disk\"\n{key} = 0"));
        assert!(
            found.len() == 1
                && found[0].contains(&format!("queue.{key}"))
                && found[0].contains("greater than 0"),
            "{key} = 0: {found:?}"
        );
        let found = issues(&format!("{key} = 100"));
        assert!(
            found.len() == 1
                && found[0].contains(&format!("queue.{key}"))
                && found[0].contains("disk"),
            "{key} on a memory queue: {found:?}"
        );
    }
}
