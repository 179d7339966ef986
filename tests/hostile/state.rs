//! Hostile-input tests: bounded state and logs (see tests/hostile.rs), against the real binary
//! with a legitimate sender (the config source `cfg`) served alongside:
//!
//! * admin API source churn: create/use/delete cycles leave `/metrics` back where it started
//!   and memory under a bound; `admin.max_sources` refuses more sources (409, nothing applied);
//! * failed admin authentication: past `admin.max_auth_failures` one address gets 429 with
//!   Retry-After even with a valid token, another address does not, and the log stays short;
//! * a flood of refused hook requests writes a bounded number of log lines, the next one
//!   counting what was left out;
//! * a source and a sink removed at a reload take their series with them;
//! * ids `.` and `..` are refused through the admin API and in bulk;
//! * a secret written where a list or a string was expected never appears in the SIGHUP log or
//!   the reload API's 422, which still name the key path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::common::binary::{self, Process};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpSocket;

use crate::common::{collect, metric, metrics_text, Answer};

/// The admin token of these tests.
const OPS: &str = "ops-admin-token-3f9a61c0e7d2b548";
/// The token of the legitimate sender's source `cfg`.
const CFG_TOKEN: &str = "cfg-prober-token-a81c4e02f7";
/// Bound on any one request (the prober must be answered well within it).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Logging as in production (info), so what is measured is what operators get.
const LOG: &[(&str, &str)] = &[("SIEMGATE_LOG", "info")];

fn config(admin_extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
plaintext = true
shutdown_grace = "2s"
data_dir = "{{dir}}/data"
[metrics]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
{admin_extra}
[[admin.tokens]]
name = "ops"
token = "{OPS}"
[[sinks]]
id = "out"
type = "file"
path = "{{dir}}/out.ndjson"
[sinks.queue]
type = "memory"
[[sources]]
id = "cfg"
vendor = "generic"
sinks = ["out"]
[sources.auth]
scheme = "token"
prefix = "Bearer "
secret = "{CFG_TOKEN}"
"#
    )
}

/// One HTTP/1.1 request on a new connection from `from` (a loopback address), bounded.
async fn request(
    from: IpAddr,
    to: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Answer {
    let fut = async {
        let sock = TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::new(from, 0)).unwrap();
        let tcp = sock.connect(to).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut b = Request::builder()
            .method(method)
            .uri(format!("http://{to}{path}"))
            .header("host", to.to_string());
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let body = body.map_or_else(Bytes::new, |v| Bytes::from(v.to_string()));
        collect(
            sender
                .send_request(b.body(Full::new(body)).unwrap())
                .await
                .unwrap(),
        )
        .await
    };
    tokio::time::timeout(REQUEST_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no answer within {REQUEST_TIMEOUT:?}"))
}

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn admin(to: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Answer {
    let auth = format!("Bearer {OPS}");
    request(LOCAL, to, method, path, &[("authorization", &auth)], body).await
}

/// The legitimate sender: one event to `cfg`, answered 200 within a second.
async fn probe(hooks: SocketAddr, n: usize) {
    let started = Instant::now();
    let auth = format!("Bearer {CFG_TOKEN}");
    let a = request(
        LOCAL,
        hooks,
        "POST",
        "/hooks/cfg",
        &[("authorization", &auth)],
        Some(json!({"id": format!("probe-{n}"), "severity": "high"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "prober {n}: {:?}", a.body);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "prober {n} waited {:?}",
        started.elapsed()
    );
}

/// Creating, using and deleting sources through the admin API, many times over, leaves
/// `/metrics` as long as it was and memory bounded; the legitimate sender is served
/// throughout. `admin.max_sources` refuses a source (and a bulk) past the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_source_churn_leaves_metrics_and_memory_bounded() {
    const CYCLES: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let mut p = Process::start(dir.path(), &config("max_sources = 5"), LOG);
    let [hooks, metrics, admin_addr] = p.wait_ready(["hooks", "metrics", "admin"]);
    probe(hooks, 0).await;

    // Warm up one cycle so that lazily built state (the store file, allocator arenas) is in
    // the baseline.
    let cycle = |i: usize| async move {
        let id = format!("churn-{i}");
        let a = admin(
            admin_addr,
            "POST",
            "/api/v1/sources",
            Some(json!({"id": id, "auth": {"scheme": "token", "prefix": "Bearer "}, "sinks": ["out"]})),
        )
        .await;
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
        let secret = a.json()["secret"].as_str().unwrap().to_owned();
        let auth = format!("Bearer {secret}");
        let hook = request(
            LOCAL,
            hooks,
            "POST",
            &format!("/hooks/{id}"),
            &[("authorization", &auth)],
            Some(json!({"id": "e", "severity": "low"})),
        )
        .await;
        assert_eq!(hook.status, StatusCode::OK, "{:?}", hook.body);
        let refused = request(
            LOCAL,
            hooks,
            "POST",
            &format!("/hooks/{id}"),
            &[("authorization", "Bearer wrong")],
            Some(json!({})),
        )
        .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        let d = admin(admin_addr, "DELETE", &format!("/api/v1/sources/{id}"), None).await;
        assert_eq!(d.status, StatusCode::NO_CONTENT, "{:?}", d.body);
    };
    cycle(0).await;
    let before = metrics_text(metrics).await;
    let lines_before = before.lines().count();
    let rss_before = p.memory_kib().rss;

    for i in 1..=CYCLES {
        cycle(i).await;
        if i % 50 == 0 {
            probe(hooks, i).await;
        }
    }

    let after = metrics_text(metrics).await;
    let lines_after = after.lines().count();
    assert!(
        !after.contains("source=\"churn-"),
        "series of deleted sources remain:\n{}",
        after
            .lines()
            .filter(|l| l.contains("churn-"))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Only values change (counters of `cfg`, `out` and the admin routes); no series is added.
    assert!(
        lines_after <= lines_before + 4,
        "/metrics grew from {lines_before} to {lines_after} lines over {CYCLES} cycles"
    );
    let rss_after = p.memory_kib().rss;
    // Without removal each cycle kept ~50 series: 500 cycles grew RSS by ~13 MiB (and
    // /metrics by ~26,000 lines); with it, well under 1 MiB. The bound leaves room for the
    // allocator, not for a leak per cycle.
    assert!(
        rss_after < rss_before + 5 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB over {CYCLES} cycles"
    );

    // The cap: 5 API sources, then 409; a bulk that would pass it applies nothing.
    for i in 0..5 {
        let a = admin(
            admin_addr,
            "POST",
            "/api/v1/sources",
            Some(json!({"id": format!("kept-{i}"), "auth": {"scheme": "token"}, "sinks": ["out"]})),
        )
        .await;
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    }
    let over = admin(
        admin_addr,
        "POST",
        "/api/v1/sources",
        Some(json!({"id": "one-too-many", "auth": {"scheme": "token"}, "sinks": ["out"]})),
    )
    .await;
    assert_eq!(over.status, StatusCode::CONFLICT, "{:?}", over.body);
    let msg = over.json()["error"].as_str().unwrap().to_owned();
    assert!(
        msg.contains("admin.max_sources") && msg.contains('5'),
        "{msg}"
    );
    let bulk = admin(
        admin_addr,
        "POST",
        "/api/v1/sources-bulk",
        Some(json!({"sources": [
            {"id": "kept-0", "auth": {"scheme": "token"}, "sinks": ["out"]},
            {"id": "bulk-new", "auth": {"scheme": "token"}, "sinks": ["out"]}
        ]})),
    )
    .await;
    assert_eq!(bulk.status, StatusCode::CONFLICT, "{:?}", bulk.body);
    let list = admin(admin_addr, "GET", "/api/v1/sources", None).await;
    let text = String::from_utf8_lossy(&list.body).into_owned();
    assert!(
        !text.contains("one-too-many") && !text.contains("bulk-new"),
        "{text}"
    );
    // A refused change leaves no series behind either.
    let m = metrics_text(metrics).await;
    assert!(
        !m.contains("one-too-many") && !m.contains("bulk-new"),
        "series of refused sources"
    );
    // Deleting one makes room again.
    let d = admin(admin_addr, "DELETE", "/api/v1/sources/kept-4", None).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    let a = admin(
        admin_addr,
        "POST",
        "/api/v1/sources",
        Some(json!({"id": "one-too-many", "auth": {"scheme": "token"}, "sinks": ["out"]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    probe(hooks, CYCLES + 1).await;
    p.signal("-TERM");
    assert!(p.wait_exit(Duration::from_secs(20)).success());
}

/// Past `admin.max_auth_failures` failures, an address gets 429 with Retry-After even with a
/// valid token; another address is not affected; the log has a bounded number of lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_admin_authentication_is_throttled_per_address() {
    const ATTEMPTS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let mut p = Process::start(
        dir.path(),
        &config("max_auth_failures = 5\nauth_failure_window = \"10m\""),
        LOG,
    );
    let [hooks, metrics, admin_addr] = p.wait_ready(["hooks", "metrics", "admin"]);
    let attacker = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut statuses = Vec::with_capacity(ATTEMPTS);
    for i in 0..ATTEMPTS {
        let token = format!("Bearer guess-{i:08}-abcdefgh");
        let a = request(
            attacker,
            admin_addr,
            "GET",
            "/api/v1/sources",
            &[("authorization", &token)],
            None,
        )
        .await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            let secs: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=600).contains(&secs), "Retry-After {secs}");
        }
        statuses.push(a.status.as_u16());
        if i % 50 == 0 {
            probe(hooks, i).await;
        }
    }
    assert!(
        statuses[..5].iter().all(|s| *s == 401),
        "{:?}",
        &statuses[..6]
    );
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // The right token from that address is not even checked.
    let auth = format!("Bearer {OPS}");
    let a = request(
        attacker,
        admin_addr,
        "GET",
        "/api/v1/sources",
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    // Another address is served.
    let a = admin(admin_addr, "GET", "/api/v1/sources", None).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let m = metrics_text(metrics).await;
    assert_eq!(
        metric(
            &m,
            "siemgate_admin_requests_total",
            &[("route", "throttled"), ("code", "429")]
        ),
        Some((ATTEMPTS - 5 + 1) as f64),
        "every refusal is counted"
    );
    let log = p.stderr_text();
    let lines = log
        .lines()
        .filter(|l| l.contains("admin authentication failed"))
        .count();
    assert!(
        (1..=2).contains(&lines),
        "{lines} log lines for {ATTEMPTS} failures:\n{log}"
    );
    assert!(!log.contains("guess-0000"), "a guessed token was logged");
    probe(hooks, ATTEMPTS).await;
    p.signal("-TERM");
    assert!(p.wait_exit(Duration::from_secs(20)).success());
}

/// A flood of refused hook requests writes at most one line per reason and second; after a
/// pause, the next line says how many were left out. Every refusal is still counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_are_logged_at_a_bounded_rate() {
    const FLOOD: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let mut p = Process::start(dir.path(), &config(""), LOG);
    let [hooks, metrics] = p.wait_ready(["hooks", "metrics"]);
    let started = Instant::now();
    for i in 0..FLOOD {
        let a = request(
            LOCAL,
            hooks,
            "POST",
            "/hooks/cfg",
            &[("authorization", "Bearer not-the-token")],
            Some(json!({})),
        )
        .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        if i % 100 == 0 {
            probe(hooks, i).await;
        }
    }
    let secs = started.elapsed().as_secs() + 1;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let a = request(
        LOCAL,
        hooks,
        "POST",
        "/hooks/cfg",
        &[("authorization", "Bearer not-the-token")],
        Some(json!({})),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let m = metrics_text(metrics).await;
    assert_eq!(
        metric(
            &m,
            "siemgate_requests_rejected_total",
            &[("source", "cfg"), ("reason", "invalid_credential")]
        ),
        Some((FLOOD + 1) as f64)
    );
    // The last line may take a moment to reach stderr.
    let deadline = Instant::now() + Duration::from_secs(5);
    let lines: Vec<String> = loop {
        let lines: Vec<String> = p
            .stderr_text()
            .lines()
            .filter(|l| l.contains("request refused") && l.contains("invalid_credential"))
            .map(str::to_owned)
            .collect();
        let total: u64 = lines.iter().map(|l| unlogged(l) + 1).sum();
        if total == (FLOOD + 1) as u64 || Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        lines.len() as u64 <= secs + 1,
        "{} lines in about {secs} s for {FLOOD} refusals:\n{}",
        lines.len(),
        lines.join("\n")
    );
    // Lines plus what they report as left out account for every refusal.
    let total: u64 = lines.iter().map(|l| unlogged(l) + 1).sum();
    assert_eq!(total, (FLOOD + 1) as u64, "{}", lines.join("\n"));
    assert!(unlogged(lines.last().unwrap()) > 0, "{}", lines.join("\n"));
    probe(hooks, FLOOD + 1).await;
    p.signal("-TERM");
    assert!(p.wait_exit(Duration::from_secs(20)).success());
}

/// The `unlogged=N` field of a log line: refusals of that kind left out since the last line.
fn unlogged(line: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("unlogged="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no unlogged= in {line}"))
}

/// `.` and `..` are not ids through the admin API or in bulk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_ids_are_refused_through_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Process::start(dir.path(), &config(""), LOG);
    let [hooks, admin_addr] = p.wait_ready(["hooks", "admin"]);
    for id in [".", ".."] {
        let a = admin(
            admin_addr,
            "POST",
            "/api/v1/sources",
            Some(json!({"id": id, "auth": {"scheme": "token"}, "sinks": ["out"]})),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{id}: {:?}", a.body);
        let issues = a.json()["issues"].clone();
        assert!(
            issues
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["path"] == "id"
                    && i["message"].as_str().unwrap().contains("not a valid id")),
            "{id}: {issues}"
        );
        let b = admin(
            admin_addr,
            "POST",
            "/api/v1/sources-bulk",
            Some(json!({"sources": [
                {"id": "fine", "auth": {"scheme": "token"}, "sinks": ["out"]},
                {"id": id, "auth": {"scheme": "token"}, "sinks": ["out"]}
            ]})),
        )
        .await;
        assert_eq!(b.status, StatusCode::BAD_REQUEST, "{id}: {:?}", b.body);
        assert!(
            String::from_utf8_lossy(&b.body).contains("sources[1].id"),
            "{:?}",
            b.body
        );
    }
    let list = admin(admin_addr, "GET", "/api/v1/sources", None).await;
    let ids: Vec<String> = list.json()["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["cfg"], "nothing was applied");
    probe(hooks, 0).await;
    p.signal("-TERM");
    assert!(p.wait_exit(Duration::from_secs(20)).success());
}

/// A secret written where a list was expected, and a numeric admin token, are named by key
/// path in the SIGHUP log and the reload API's 422, and never printed; the running config
/// keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_errors_never_print_a_value_of_the_wrong_type() {
    const SECRET: &str = "wrong-place-secret-5c1e9a7b";
    const NUMBER: &str = "73829104657382910";
    let dir = tempfile::tempdir().unwrap();
    let good = config("");
    let mut p = Process::start(dir.path(), &good, LOG);
    let [hooks, admin_addr] = p.wait_ready(["hooks", "admin"]);
    probe(hooks, 0).await;
    let cases = [
        (
            good.replace(
                &format!("secret = \"{CFG_TOKEN}\""),
                &format!("secrets = \"{SECRET}\""),
            ),
            SECRET,
            "sources[0].auth.secrets",
        ),
        (
            good.replace(&format!("token = \"{OPS}\""), &format!("token = {NUMBER}")),
            NUMBER,
            "admin.tokens[0].token",
        ),
    ];
    for (n, (text, value, key)) in cases.iter().enumerate() {
        assert!(text.contains(value));
        binary::write_config(dir.path(), text);
        let from = p.line_count();
        p.signal("-HUP");
        let deadline = Instant::now() + Duration::from_secs(10);
        let logged = loop {
            let lines = p.lines_from(from);
            if let Some(l) = lines.iter().find(|l| l.contains("config reload refused")) {
                break l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no reload line:\n{}",
                lines.join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(logged.contains(key), "{key} not named: {logged}");
        let a = admin(admin_addr, "POST", "/api/v1/reload", None).await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", a.body);
        let body = String::from_utf8_lossy(&a.body).into_owned();
        assert!(body.contains(key), "{key} not named: {body}");
        assert!(
            !body.contains(value),
            "the reload API printed the value: {body}"
        );
        probe(hooks, n + 1).await;
    }
    let log = p.stderr_text();
    assert!(
        !log.contains(SECRET) && !log.contains(NUMBER),
        "printed:\n{log}"
    );
    p.signal("-TERM");
    assert!(p.wait_exit(Duration::from_secs(20)).success());
}

/// A source and a sink removed from the file at a reload take their series with them (the
/// sink's once it has delivered what it held); the others keep theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_removes_the_series_of_removed_sources_and_sinks() {
    let dir = tempfile::tempdir().unwrap();
    let good = config("");
    let extra = format!(
        r#"{good}
[[sinks]]
id = "two"
type = "file"
path = "{{dir}}/two.ndjson"
[sinks.queue]
type = "memory"
[[sources]]
id = "extra"
vendor = "generic"
sinks = ["two"]
[sources.auth]
scheme = "token"
prefix = "Bearer "
secret = "{CFG_TOKEN}-extra"
"#
    );
    let mut p = Process::start(dir.path(), &extra, LOG);
    let [hooks, metrics, admin_addr] = p.wait_ready(["hooks", "metrics", "admin"]);
    let auth = format!("Bearer {CFG_TOKEN}-extra");
    let a = request(
        LOCAL,
        hooks,
        "POST",
        "/hooks/extra",
        &[("authorization", &auth)],
        Some(json!({"id": "x"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    probe(hooks, 0).await;
    let m = metrics_text(metrics).await;
    assert!(m.contains("source=\"extra\"") && m.contains("sink=\"two\""));

    binary::write_config(dir.path(), &good);
    let r = admin(admin_addr, "POST", "/api/v1/reload", None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = metrics_text(metrics).await;
        if !m.contains("source=\"extra\"") && !m.contains("sink=\"two\"") {
            assert!(
                m.contains("source=\"cfg\"") && m.contains("sink=\"out\""),
                "{m}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "series of removed source/sink remain:\n{}",
            m.lines()
                .filter(|l| l.contains("extra") || l.contains("\"two\""))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    probe(hooks, 1).await;
    p.signal("-TERM");
    assert!(p.wait_exit(Duration::from_secs(20)).success());
}
