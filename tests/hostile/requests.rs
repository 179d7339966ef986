//! Hostile-input tests: requests (see tests/hostile.rs). Per-request work (events per request,
//! queue bounds, memory of the real binary) and replays of captured signed requests, each with a
//! legitimate sender on another source served alongside within 1 s.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::StatusCode;

use crate::common::{hmac_sha256, post, read_lines, send, unix_now, Answer};

use crate::common::binary::Process;

const HMAC_KEY: &str = "hostile-hmac-key-3f9a";
/// Standard Webhooks key: `whsec_` + base64 of the raw key.
const SWH_RAW_KEY: &[u8] = b"hostile-standard-webhooks-key-77";
const PROBE_TOKEN: &str = "hostile-probe-token-a1c4";

fn hmac_hex(parts: &[&[u8]]) -> String {
    hex::encode(hmac_sha256(HMAC_KEY.as_bytes(), parts))
}

fn swh_secret() -> String {
    format!("whsec_{}", STANDARD.encode(SWH_RAW_KEY))
}

fn swh_signature(id: &str, ts: &str, body: &str) -> String {
    let tag = hmac_sha256(SWH_RAW_KEY, &[format!("{id}.{ts}.{body}").as_bytes()]);
    format!("v1,{}", STANDARD.encode(tag))
}

fn now_secs() -> String {
    unix_now().to_string()
}

/// Plaintext hooks on loopback; a file sink per source (`{dir}/<id>.ndjson`), so what each
/// source queued can be counted apart; a `probe` source for the legitimate sender.
fn config(limits: &str, sources: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
plaintext = true
data_dir = "{{dir}}"
shutdown_grace = "2s"
[server.limits]
{limits}
[metrics]
enabled = false

[[sinks]]
id = "probe-out"
type = "file"
path = "{{dir}}/probe.ndjson"
fsync = "never"
[sinks.batch]
linger = "0ms"

[[sinks]]
id = "out"
type = "file"
path = "{{dir}}/out.ndjson"
fsync = "never"
[sinks.batch]
linger = "0ms"

[[sources]]
id = "probe"
vendor = "generic"
sinks = ["probe-out"]
auth = {{ scheme = "token", secret = "{PROBE_TOKEN}" }}
{sources}
"#
    )
}

fn start(dir: &Path, limits: &str, sources: &str) -> (Process, SocketAddr) {
    let mut p = Process::start(dir, &config(limits, sources), &[]);
    let [hooks] = p.wait_ready(["hooks"]);
    (p, hooks)
}

/// One legitimate request on the probe source; it must be answered 200 within 1 s.
async fn probe(addr: SocketAddr, n: usize) {
    let started = Instant::now();
    let body = format!(r#"{{"id":"probe-{n}","severity":"high"}}"#);
    let answer = tokio::time::timeout(
        Duration::from_secs(1),
        send(
            addr,
            post(addr, "probe", &[("authorization", PROBE_TOKEN)], body),
        ),
    )
    .await
    .unwrap_or_else(|_| panic!("probe {n} not answered within 1 s"));
    assert_eq!(answer.status, StatusCode::OK, "probe {n}: {answer:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// Waits (bounded) until each file holds its number of lines, then stops the gateway, which
/// drains its queues; returns the events' ids in each file, where nothing more can come.
async fn ids_after_stop<const N: usize>(
    mut p: Process,
    files: [(&Path, usize); N],
) -> [Vec<String>; N] {
    let deadline = Instant::now() + Duration::from_secs(10);
    for (path, n) in files {
        while read_lines(path).len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    p.signal("-TERM");
    p.wait_exit(Duration::from_secs(30));
    files.map(|(path, _)| {
        read_lines(path)
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_owned())
            .collect()
    })
}

fn is_duplicate(a: &Answer) -> bool {
    a.status == StatusCode::OK && a.json()["duplicate"] == serde_json::json!(true)
}

/// A captured HMAC request (no signed timestamp) replayed 100 times, each with a fresh
/// `webhook-id`, is queued once: the unsigned header is not the key. A replay carrying the id
/// the vendor will give its next event cannot make that real event a "duplicate".
#[tokio::test]
async fn hmac_replays_with_fresh_webhook_ids_are_queued_once_and_cannot_shadow_a_real_event() {
    let dir = tempfile::tempdir().unwrap();
    let sources = format!(
        r#"
[[sources]]
id = "hmac"
vendor = "generic"
sinks = ["out"]
auth = {{ scheme = "hmac_sha256", header = "X-Sig", secret = "{HMAC_KEY}" }}
[sources.dedup]
window = "10m"
"#
    );
    let (p, addr) = start(dir.path(), "", &sources);
    let captured = r#"{"id":"real-1","severity":"high"}"#;
    let sig = hmac_hex(&[captured.as_bytes()]);
    let first = send(
        addr,
        post(
            addr,
            "hmac",
            &[("x-sig", &sig), ("webhook-id", "msg_1")],
            captured,
        ),
    )
    .await;
    assert_eq!(first.json(), serde_json::json!({"accepted": 1}));
    let started = Instant::now();
    for i in 0..100 {
        let id = format!("attacker-{i}");
        let a = send(
            addr,
            post(
                addr,
                "hmac",
                &[("x-sig", &sig), ("webhook-id", &id)],
                captured,
            ),
        )
        .await;
        assert!(is_duplicate(&a), "replay {i}: {a:?}");
        if i % 25 == 0 {
            probe(addr, i).await;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "bounded");
    }
    // The attacker guesses the next message id and spends the replay on it first.
    let forged = send(
        addr,
        post(
            addr,
            "hmac",
            &[("x-sig", &sig), ("webhook-id", "msg_2")],
            captured,
        ),
    )
    .await;
    assert!(is_duplicate(&forged), "{forged:?}");
    let next = r#"{"id":"real-2","severity":"high"}"#;
    let real = send(
        addr,
        post(
            addr,
            "hmac",
            &[
                ("x-sig", &hmac_hex(&[next.as_bytes()])),
                ("webhook-id", "msg_2"),
            ],
            next,
        ),
    )
    .await;
    assert_eq!(real.json(), serde_json::json!({"accepted": 1}), "{real:?}");
    let (out, probes) = (
        dir.path().join("out.ndjson"),
        dir.path().join("probe.ndjson"),
    );
    let [out, probes] = ids_after_stop(p, [(&out, 2), (&probes, 4)]).await;
    assert_eq!(out, ["real-1", "real-2"]);
    assert_eq!(probes.len(), 4);
}

/// With no de-duplication configured, schemes that sign a timestamp remember what they
/// accepted while it still verifies: a byte-identical replay (or the vendor's own identical
/// retry) is answered like a duplicate and queued once; the vendor's re-signed retry of a
/// Standard Webhooks message (same id, new timestamp) is the same message; a new timestamp on
/// an HMAC body is a new request; a stale timestamp is refused.
#[tokio::test]
async fn signed_timestamp_replays_are_duplicates_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let sources = format!(
        r#"
[[sources]]
id = "swh"
vendor = "generic"
sinks = ["out"]
auth = {{ scheme = "standard_webhooks", secret = "{swh}" }}

[[sources]]
id = "hmac-ts"
vendor = "generic"
sinks = ["out"]
auth = {{ scheme = "hmac_sha256", header = "X-Sig", timestamp_header = "X-Ts", tolerance = "5m", secret = "{HMAC_KEY}" }}
"#,
        swh = swh_secret()
    );
    let (p, addr) = start(dir.path(), "", &sources);

    let body = r#"{"id":"swh-1"}"#;
    let ts = now_secs();
    let sig = swh_signature("msg_a", &ts, body);
    let headers = [
        ("webhook-id", "msg_a"),
        ("webhook-timestamp", ts.as_str()),
        ("webhook-signature", sig.as_str()),
    ];
    let first = send(addr, post(addr, "swh", &headers, body)).await;
    assert_eq!(
        first.json(),
        serde_json::json!({"accepted": 1}),
        "{first:?}"
    );
    for i in 0..50 {
        let a = send(addr, post(addr, "swh", &headers, body)).await;
        assert!(is_duplicate(&a), "replay {i}: {a:?}");
    }
    probe(addr, 0).await;
    // The vendor's retry re-signs the same message at a later time: still msg_a.
    let later = (ts.parse::<u64>().unwrap() + 7).to_string();
    let resigned = swh_signature("msg_a", &later, body);
    let retry = send(
        addr,
        post(
            addr,
            "swh",
            &[
                ("webhook-id", "msg_a"),
                ("webhook-timestamp", later.as_str()),
                ("webhook-signature", resigned.as_str()),
            ],
            body,
        ),
    )
    .await;
    assert!(is_duplicate(&retry), "{retry:?}");

    let hbody = r#"{"id":"hmac-1"}"#;
    let signed_at = |ts: &str| {
        (
            ts.to_owned(),
            hmac_hex(&[ts.as_bytes(), b".", hbody.as_bytes()]),
        )
    };
    let (ts1, sig1) = signed_at(&now_secs());
    let h1 = [("x-ts", ts1.as_str()), ("x-sig", sig1.as_str())];
    let a = send(addr, post(addr, "hmac-ts", &h1, hbody)).await;
    assert_eq!(a.json(), serde_json::json!({"accepted": 1}), "{a:?}");
    for i in 0..50 {
        let r = send(addr, post(addr, "hmac-ts", &h1, hbody)).await;
        assert!(is_duplicate(&r), "replay {i}: {r:?}");
    }
    probe(addr, 1).await;
    // Signed again at another second: another request as far as anything signed can tell.
    let (ts2, sig2) = signed_at(&(ts1.parse::<u64>().unwrap() + 1).to_string());
    let b = send(
        addr,
        post(
            addr,
            "hmac-ts",
            &[("x-ts", ts2.as_str()), ("x-sig", sig2.as_str())],
            hbody,
        ),
    )
    .await;
    assert_eq!(b.json(), serde_json::json!({"accepted": 1}), "{b:?}");
    // Outside the tolerance: refused, never queued.
    let (old, sig_old) = signed_at(&(ts1.parse::<u64>().unwrap() - 600).to_string());
    let stale = send(
        addr,
        post(
            addr,
            "hmac-ts",
            &[("x-ts", old.as_str()), ("x-sig", sig_old.as_str())],
            hbody,
        ),
    )
    .await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN, "{stale:?}");
    let [out] = ids_after_stop(p, [(&dir.path().join("out.ndjson"), 3)]).await;
    assert_eq!(out, ["swh-1", "hmac-1", "hmac-1"]);
}

/// `[{},{},...]` with `n` empty objects: 3 bytes an event.
fn empty_objects(n: usize) -> String {
    let mut body = String::with_capacity(3 * n + 1);
    body.push('[');
    for i in 0..n {
        if i > 0 {
            body.push(',');
        }
        body.push_str("{}");
    }
    body.push(']');
    body
}

const ATTACK_TOKEN: &str = "hostile-attack-token-9d2e";

/// 349,524 empty objects in a 1 MiB body (four at once), then 1,048,575 in a 3 MB body, from
/// a sender with a valid credential: each is refused 413 `too_many_events` as soon as the
/// event past the cap is decoded, nothing reaches the sink, the process's peak memory grows
/// by far less than the old cost (hundreds of MB for one such request), and the probe keeps
/// being served within 1 s throughout.
#[tokio::test]
async fn a_body_of_hundreds_of_thousands_of_events_is_refused_413_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let sources = format!(
        r#"
[[sources]]
id = "flood"
vendor = "generic"
sinks = ["out"]
auth = {{ scheme = "token", secret = "{ATTACK_TOKEN}" }}
"#
    );
    let (p, addr) = start(dir.path(), "max_body_bytes = 4194304", &sources);
    probe(addr, 0).await;
    let before = p.memory_kib().rss;

    let one_mib = bytes::Bytes::from(empty_objects(349_524));
    assert!(one_mib.len() <= 1024 * 1024, "{}", one_mib.len());
    let three_mb = bytes::Bytes::from(empty_objects(1_048_575));
    assert!(three_mb.len() > 3_000_000);
    let mut attacks = Vec::new();
    for body in [&one_mib, &one_mib, &one_mib, &one_mib, &three_mb] {
        let body = body.clone();
        attacks.push(tokio::spawn(async move {
            send(
                addr,
                post(addr, "flood", &[("authorization", ATTACK_TOKEN)], body),
            )
            .await
        }));
    }
    let started = Instant::now();
    let mut n = 1;
    while !attacks.iter().all(|a| a.is_finished()) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "attack requests unanswered after 30 s"
        );
        probe(addr, n).await;
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for a in attacks {
        let answer = a.await.unwrap();
        assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{answer:?}");
        assert_eq!(
            answer.json(),
            serde_json::json!({
                "error": "too_many_events",
                "detail": "request holds more than 10000 events (server.limits.max_events_per_request); split it"
            })
        );
    }
    let peak = p.memory_kib().peak;
    let grown_mib = peak.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 64,
        "peak RSS grew by {grown_mib} MiB (from {before} KiB) for five refused requests of 7 MB in all"
    );
    probe(addr, n).await;
    let [probes] = ids_after_stop(p, [(&dir.path().join("probe.ndjson"), n + 1)]).await;
    assert_eq!(probes.len(), n + 1);
    assert!(read_lines(&dir.path().join("out.ndjson")).is_empty());
}

/// A batch that can never fit is 413, not an endless 503: more events than a target queue's
/// whole `max_events`, or more than `max_events_per_request`. All or nothing across sinks: a
/// batch too large for one of two sinks (a disk queue, fsync always) reaches neither; one that
/// fits reaches both.
#[tokio::test]
async fn a_batch_larger_than_a_queue_is_refused_413_and_reaches_no_sink() {
    let dir = tempfile::tempdir().unwrap();
    let sources = format!(
        r#"
[[sinks]]
id = "small"
type = "file"
path = "{{dir}}/small.ndjson"
fsync = "never"
[sinks.batch]
linger = "0ms"
[sinks.queue]
type = "disk"
fsync = "always"
max_events = 100

[[sources]]
id = "both"
vendor = "generic"
sinks = ["out", "small"]
auth = {{ scheme = "token", secret = "{ATTACK_TOKEN}" }}
"#
    );
    let (p, addr) = start(dir.path(), "max_events_per_request = 200", &sources);
    let events = |n: usize, tag: &str| {
        let items: Vec<String> = (0..n).map(|i| format!(r#"{{"id":"{tag}-{i}"}}"#)).collect();
        format!("[{}]", items.join(","))
    };
    let hit = |body: String| async move {
        send(
            addr,
            post(addr, "both", &[("authorization", ATTACK_TOKEN)], body),
        )
        .await
    };
    for attempt in 0..3 {
        let a = hit(events(150, "big")).await;
        assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{a:?}");
        assert_eq!(a.json()["error"], "batch_too_large", "attempt {attempt}");
        assert_eq!(
            a.json()["detail"],
            "request holds more events or bytes for sink small than its whole queue; split it"
        );
        probe(addr, attempt).await;
    }
    // Over the cap on a source whose queue is large: the cap answers.
    let over = send(
        addr,
        post(
            addr,
            "probe",
            &[("authorization", PROBE_TOKEN)],
            events(201, "over"),
        ),
    )
    .await;
    assert_eq!(over.status, StatusCode::PAYLOAD_TOO_LARGE, "{over:?}");
    assert_eq!(over.json()["error"], "too_many_events");
    let ok = hit(events(60, "fits")).await;
    assert_eq!(ok.json(), serde_json::json!({"accepted": 60}), "{ok:?}");
    let expected: Vec<String> = (0..60).map(|i| format!("fits-{i}")).collect();
    let (out, small) = (
        dir.path().join("out.ndjson"),
        dir.path().join("small.ndjson"),
    );
    let [out, small] = ids_after_stop(p, [(&out, 60), (&small, 60)]).await;
    assert_eq!(out, expected);
    assert_eq!(small, expected);
}
