//! Hostile-input tests: connections (see tests/hostile.rs). Each test starts the real binary on
//! 127.0.0.1 and attacks it from 127.0.0.1 while a signed prober on 127.0.0.2 (another loopback
//! address, so a per-address limit on the attacker does not touch it) sends one HMAC-signed
//! request on a fresh connection every 100 ms and must get 200 within 1 s every time:
//! * 300 h2c connections that each sent one request to an unknown path and then stay open;
//! * 300 slow or silent HTTP/1 connections from one address;
//! * 4 HTTP/2 connections x 64 streams each starting a 1 MiB body without credentials;
//! * bodies with forged signatures holding the in-flight body budget;
//! * an HTTP/2 peer that stops answering pings;
//! * 100 idle HTTP/2 connections over TLS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;

use crate::common::binary::{memory_kib, Process};
use crate::common::{hmac_sha256, metric, metrics_text};

const SECRET: &str = "connections-hostile-secret";
const PROBER_IP: &str = "127.0.0.2";
/// Bound on anything the server should do "soon"; generous for a noisy 2-core machine.
const BOUND: Duration = Duration::from_secs(5);

/// A plaintext gateway whose `[server.limits]` are short timeouts plus `extra`, with one
/// HMAC-signed source `signed` writing to a file sink.
fn config(extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
plaintext = true
shutdown_grace = "2s"
[server.limits]
header_read_timeout = "3s"
body_read_timeout = "3s"
idle_timeout = "1s"
{extra}
[metrics]
listen = "127.0.0.1:0"
[[sinks]]
id = "out"
type = "file"
path = "{{dir}}/out.ndjson"
fsync = "never"
[sinks.batch]
linger = "0ms"
[[sources]]
id = "signed"
sinks = ["out"]
[sources.auth]
scheme = "hmac_sha256"
header = "X-Signature"
encoding = "hex"
secrets = ["{SECRET}"]
"#
    )
}

fn sign(body: &[u8]) -> String {
    hex::encode(hmac_sha256(SECRET.as_bytes(), &[body]))
}

/// Connects to `addr` from the loopback address `from`.
async fn connect_from(from: &str, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))?;
    let s = socket.connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// One signed request on a fresh HTTP/1.1 connection from `from` (over TLS when `tls` is set);
/// the status, or why none came.
async fn signed_request(
    from: &str,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    id: &str,
) -> Result<StatusCode, String> {
    let tcp = connect_from(from, addr).await.map_err(|e| e.to_string())?;
    let mut sender = match tls {
        None => {
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            sender
        }
        Some(config) => {
            let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| e.to_string())?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            sender
        }
    };
    let body = format!(r#"{{"id":"{id}"}}"#);
    let req = Request::post(format!("http://{addr}/hooks/signed"))
        .header("x-signature", sign(body.as_bytes()))
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    resp.into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(status)
}

/// The legitimate sender running alongside an attack.
struct Prober {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Vec<Result<StatusCode, String>>>,
}

impl Prober {
    /// Sends a signed request every 100 ms (at most 600) until stopped; each must be answered
    /// within 1 s.
    fn start(addr: SocketAddr) -> Prober {
        Prober::start_with(addr, None)
    }

    /// [`Prober::start`] over TLS with `tls`.
    fn start_with(addr: SocketAddr, tls: Option<Arc<rustls::ClientConfig>>) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            for i in 0..600 {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let id = format!("probe-{i}");
                let r = tokio::time::timeout(
                    Duration::from_secs(1),
                    signed_request(PROBER_IP, addr, tls.clone(), &id),
                )
                .await
                .unwrap_or_else(|_| Err("no answer within 1 s".to_owned()));
                seen.push(r);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            seen
        });
        Prober { stop, task }
    }

    /// Stops it and asserts that every request it sent got 200 within 1 s; returns how many.
    async fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let seen = self.task.await.unwrap();
        assert!(seen.len() >= 3, "the prober ran too briefly: {seen:?}");
        for (i, r) in seen.iter().enumerate() {
            assert_eq!(
                r.as_ref().ok(),
                Some(&StatusCode::OK),
                "probe {i} of {}: {r:?}",
                seen.len()
            );
        }
        seen.len()
    }
}

/// Samples the RSS of `pid` every 20 ms until stopped; the task returns the peak.
fn watch_rss(pid: u32) -> (Arc<AtomicBool>, JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let peak = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(async move {
        // Bounded: at most 60 s of samples.
        for _ in 0..3000 {
            peak.fetch_max(memory_kib(pid).rss * 1024, Ordering::Relaxed);
            if flag.load(Ordering::Relaxed) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        peak.load(Ordering::Relaxed)
    });
    (stop, task)
}

/// Whether the server closes `s` within `within` (EOF or reset), reading and discarding what
/// it sends.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read).await.is_ok()
}

/// Reads one HTTP/1.1 response head (and its Content-Length body) within [`BOUND`]: the status
/// and the head's text.
async fn read_head(s: &mut TcpStream) -> (u16, String) {
    let read = async {
        let mut buf = Vec::new();
        let mut tmp = [0u8; 4096];
        loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..i]).into_owned();
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                return (status, head);
            }
            let n = s.read(&mut tmp).await.unwrap();
            assert!(
                n > 0,
                "closed before an answer: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&tmp[..n]);
        }
    };
    tokio::time::timeout(BOUND, read)
        .await
        .expect("an answer within the bound")
}

fn header_value<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Waits (bounded) until the file sink holds `n` events, then stops the gateway, which drains
/// its queue, and checks the sink holds no more: only signed requests reach the sink.
async fn sink_holds_exactly(mut p: Process, dir: &std::path::Path, n: usize) {
    let path = dir.join("out.ndjson");
    let deadline = Instant::now() + BOUND;
    while crate::common::read_lines(&path).len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.signal("-TERM");
    p.wait_exit(Duration::from_secs(30));
    assert_eq!(
        crate::common::read_lines(&path).len(),
        n,
        "only signed requests reach the sink"
    );
}

fn hooks_counter(text: &str, name: &str, reason: &str) -> f64 {
    metric(text, name, &[("listener", "hooks"), ("reason", reason)]).unwrap_or(0.0)
}

/// 300 h2c connections (from ten addresses) that each send one request to an unknown path and
/// stay open, against `max_connections = 64`: they are closed once idle for `idle_timeout` (the
/// longest-idle earlier, to make room for new ones), every one of them got its 404, and the prober is served throughout. A busy h2 connection is closed gracefully at
/// `max_connection_age`, its answered requests all 200. The metrics listener closes idle
/// connections too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_h2_connections_are_closed_and_signed_senders_keep_being_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Process::start(
        dir.path(),
        &config("max_connections = 64\nmax_connections_per_ip = 40\nmax_connection_age = \"2s\""),
        &[],
    );
    let [hooks, metrics] = p.wait_ready(["hooks", "metrics"]);
    let prober = Prober::start(hooks);

    let mut held = Vec::new();
    let mut statuses = Vec::new();
    for i in 0..300 {
        // From ten addresses, 30 each: under the per-address cap, over max_connections.
        let from = format!("127.0.1.{}", 1 + i % 10);
        let tcp = connect_from(&from, hooks).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        let open = tokio::spawn(conn);
        let req = Request::get(format!("http://{hooks}/no-such-path"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let status = tokio::time::timeout(BOUND, sender.send_request(req))
            .await
            .expect("an answer within the bound")
            .map(|r| r.status());
        statuses.push(status.map_err(|e| e.to_string()));
        held.push((sender, open));
    }
    assert!(
        statuses
            .iter()
            .all(|s| s.as_ref().ok() == Some(&StatusCode::NOT_FOUND)),
        "{statuses:?}"
    );

    // Every one of them is closed by the server, the last ones one idle period later.
    let deadline = tokio::time::Instant::now() + BOUND;
    for (i, (_sender, open)) in held.into_iter().enumerate() {
        assert!(
            tokio::time::timeout_at(deadline, open).await.is_ok(),
            "h2 connection {i} still open"
        );
    }

    // A connection that stays busy is closed gracefully at max_connection_age.
    let tcp = connect_from("127.0.0.3", hooks).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    let opened = Instant::now();
    let mut open = tokio::spawn(conn);
    let mut answered = 0;
    for i in 0..60 {
        let body = format!(r#"{{"id":"busy-{i}"}}"#);
        let req = Request::post(format!("http://{hooks}/hooks/signed"))
            .header("x-signature", sign(body.as_bytes()))
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        match sender.send_request(req).await {
            Ok(resp) => {
                assert_eq!(resp.status(), StatusCode::OK);
                answered += 1;
            }
            // Refused after the GOAWAY, as a client expects: it retries on a new connection.
            Err(_) => break,
        }
        if open.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::timeout(BOUND, &mut open)
        .await
        .expect("the busy connection is closed at its maximum age")
        .unwrap()
        .ok();
    assert!(answered >= 5, "{answered}");
    assert!(
        opened.elapsed() < Duration::from_secs(2) + BOUND,
        "{:?}",
        opened.elapsed()
    );

    // The metrics listener: an idle keep-alive connection is closed as well.
    let mut ops = TcpStream::connect(metrics).await.unwrap();
    ops.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_head(&mut ops).await.0, 200);
    assert!(
        closed_within(&mut ops, BOUND).await,
        "idle ops connection kept open"
    );

    let probes = prober.finish().await;
    let text = metrics_text(metrics).await;
    let idle = hooks_counter(&text, "siemgate_connections_closed_total", "idle");
    let evicted = hooks_counter(&text, "siemgate_connections_closed_total", "evicted");
    let aged = hooks_counter(&text, "siemgate_connections_closed_total", "max_age");
    assert!(idle >= 1.0 && idle + evicted >= 300.0, "{text}");
    assert_eq!(aged, 1.0, "{text}");
    assert_eq!(
        metric(
            &text,
            "siemgate_connections_closed_total",
            &[("listener", "metrics"), ("reason", "idle")]
        ),
        Some(1.0),
        "{text}"
    );
    sink_holds_exactly(p, dir.path(), probes + answered).await;
}

/// 300 slow or silent HTTP/1 connections from one address: all beyond
/// `max_connections_per_ip` are closed at once (counted, logged at a bounded rate), the prober
/// from another address is served throughout, and an idle keep-alive connection is closed after
/// `idle_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_h1_connections_from_one_address_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Process::start(
        dir.path(),
        &config("max_connections = 256\nmax_connections_per_ip = 40"),
        &[],
    );
    let [hooks, metrics] = p.wait_ready(["hooks", "metrics"]);
    let prober = Prober::start(hooks);

    let mut attackers = Vec::new();
    for i in 0..300 {
        let mut s = TcpStream::connect(hooks).await.unwrap();
        if i % 2 == 0 {
            // Slowloris: a head that never ends. (The write may fail on a refused connection.)
            let _ = s
                .write_all(b"POST /hooks/signed HTTP/1.1\r\nhost: x\r\n")
                .await;
        }
        attackers.push(s);
    }
    // Refused ones are closed at once; the admitted ones wait out the header timeout (3 s).
    let checks: Vec<_> = attackers
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let closed = closed_within(&mut s, Duration::from_secs(1)).await;
                (closed, s)
            })
        })
        .collect();
    let mut open = Vec::new();
    let mut closed = 0;
    for c in checks {
        let (was_closed, s) = c.await.unwrap();
        if was_closed {
            closed += 1;
        } else {
            open.push(s);
        }
    }
    assert_eq!((closed, open.len()), (260, 40));

    // A keep-alive connection that sent one request is closed one idle period later.
    let mut keep = connect_from("127.0.0.3", hooks).await.unwrap();
    let body = r#"{"id":"keep-alive"}"#;
    keep.write_all(
        format!(
            "POST /hooks/signed HTTP/1.1\r\nhost: x\r\nx-signature: {}\r\ncontent-length: {}\r\n\r\n{body}",
            sign(body.as_bytes()),
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(read_head(&mut keep).await.0, 200);
    // Closed by the idle timeout (1 s), well before the header timeout (3 s) would.
    assert!(
        closed_within(&mut keep, Duration::from_millis(2500)).await,
        "idle keep-alive kept open"
    );

    // The admitted slow connections are closed at the header timeout.
    for mut s in open {
        assert!(closed_within(&mut s, BOUND).await);
    }

    let probes = prober.finish().await;
    let text = metrics_text(metrics).await;
    assert_eq!(
        hooks_counter(&text, "siemgate_connections_refused_total", "per_ip_limit"),
        260.0,
        "{text}"
    );
    let logged = p
        .stderr_text()
        .lines()
        .filter(|l| l.contains("too many connections from this client address"))
        .count();
    assert!(
        (1..=5).contains(&logged),
        "{logged} log lines for 260 refusals"
    );
    sink_holds_exactly(p, dir.path(), probes + 1).await;
}

/// 4 HTTP/2 connections x 64 streams, each starting a 1 MiB body without a signature: every
/// stream gets 401 before its body is read, at most 16 streams run per connection, and the
/// server's memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_streams_without_credentials_are_refused_before_their_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Process::start(dir.path(), &config(""), &[]);
    let [hooks, metrics] = p.wait_ready(["hooks", "metrics"]);
    let prober = Prober::start(hooks);
    // The baseline once the gateway has served and delivered a few probes.
    let out = dir.path().join("out.ndjson");
    let deadline = Instant::now() + BOUND;
    while crate::common::read_lines(&out).len() < 3 {
        assert!(
            Instant::now() < deadline,
            "no 3 probes delivered within {BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = p.memory_kib().rss * 1024;
    let (stop_rss, peak) = watch_rss(p.pid());

    let body = Bytes::from(vec![b'x'; 1024 * 1024]);
    let mut conns = Vec::new();
    for _ in 0..4 {
        let tcp = TcpStream::connect(hooks).await.unwrap();
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        // One request first, so the client has the server's settings (16 streams at most)
        // and queues the rest instead of having them refused.
        let mut sender = sender;
        let req = Request::post(format!("http://{hooks}/hooks/signed"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        conns.push(sender);
    }
    let mut streams = Vec::new();
    for sender in &conns {
        for _ in 0..64 {
            let mut sender = sender.clone();
            let req = Request::post(format!("http://{hooks}/hooks/signed"))
                .header("content-length", body.len())
                .body(Full::new(body.clone()))
                .unwrap();
            streams.push(tokio::spawn(async move {
                let resp = sender
                    .send_request(req)
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                let status = resp.status();
                let text = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| format!("{e:?}"))?
                    .to_bytes();
                Ok::<_, String>((status, text))
            }));
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for s in streams {
        let (status, text) = tokio::time::timeout_at(deadline, s)
            .await
            .expect("every stream answered in time")
            .unwrap()
            .unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            String::from_utf8_lossy(&text).contains("missing_credential"),
            "{status}: {text:?}"
        );
    }
    stop_rss.store(true, Ordering::Relaxed);
    let peak = peak.await.unwrap();

    let probes = prober.finish().await;
    // Without the fixes each stream buffered its whole body (+177 MB for this attack); now
    // nothing is read past the stream windows.
    let grown = peak.saturating_sub(before);
    eprintln!("RSS before {} KiB, peak {} KiB", before >> 10, peak >> 10);
    assert!(
        grown < 24 * 1024 * 1024,
        "RSS grew by {} MiB (from {} MiB)",
        grown >> 20,
        before >> 20
    );
    let text = metrics_text(metrics).await;
    assert_eq!(
        metric(
            &text,
            "siemgate_requests_rejected_total",
            &[("source", "signed"), ("reason", "missing_credential")]
        ),
        Some(4.0 + 256.0),
        "{text}"
    );
    sink_holds_exactly(p, dir.path(), probes).await;
}

/// Bodies with forged signatures hold the in-flight body budget: once one address's share is
/// spent, further bodies (declared, or chunked as they arrive) get 503 with Retry-After before
/// they are read, while the prober from another address is served; a body without a signature
/// header gets 401 before any of it is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_bodies_past_the_budget_get_503_before_they_are_read() {
    const BODY: usize = 256 * 1024;
    let dir = tempfile::tempdir().unwrap();
    // A quarter of 4 MiB per address: four bodies of the largest size.
    let mut p = Process::start(
        dir.path(),
        &config(&format!(
            "max_body_bytes = {BODY}\nmax_inflight_body_bytes = {}",
            4 * 1024 * 1024
        )),
        &[],
    );
    let [hooks, metrics] = p.wait_ready(["hooks", "metrics"]);
    let prober = Prober::start(hooks);
    let forged = "0".repeat(64);
    let head = |extra: &str| {
        format!("POST /hooks/signed HTTP/1.1\r\nhost: x\r\nx-signature: {forged}\r\n{extra}\r\n")
    };

    // Four bodies that never finish hold the address's share.
    let mut holders = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(hooks).await.unwrap();
        s.write_all(head(&format!("content-length: {BODY}\r\n")).as_bytes())
            .await
            .unwrap();
        s.write_all(&[b'x'; 1024]).await.unwrap();
        holders.push(s);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Declared bodies past the share: 503 at once, with Retry-After, nothing of them read.
    for _ in 0..8 {
        let mut s = TcpStream::connect(hooks).await.unwrap();
        s.write_all(head(&format!("content-length: {BODY}\r\n")).as_bytes())
            .await
            .unwrap();
        let (status, head) = read_head(&mut s).await;
        assert_eq!(status, 503, "{head}");
        assert_eq!(header_value(&head, "retry-after"), Some("1"), "{head}");
    }
    // A chunked body is refused at its first chunk.
    let mut s = TcpStream::connect(hooks).await.unwrap();
    s.write_all(head("transfer-encoding: chunked\r\n").as_bytes())
        .await
        .unwrap();
    s.write_all(format!("{:x}\r\n", 64 * 1024).as_bytes())
        .await
        .unwrap();
    s.write_all(&[b'x'; 64 * 1024]).await.unwrap();
    let (status, head_text) = read_head(&mut s).await;
    assert_eq!(status, 503, "{head_text}");
    // No signature header: 401 though the body is never sent.
    let mut s = TcpStream::connect(hooks).await.unwrap();
    s.write_all(
        format!("POST /hooks/signed HTTP/1.1\r\nhost: x\r\ncontent-length: {BODY}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(read_head(&mut s).await.0, 401);

    // A holder that finishes its body is answered (403: the signature is forged), which frees
    // its share: a new body is held again rather than refused.
    let mut done = holders.pop().unwrap();
    done.write_all(&vec![b'x'; BODY - 1024]).await.unwrap();
    assert_eq!(read_head(&mut done).await.0, 403);
    let mut again = TcpStream::connect(hooks).await.unwrap();
    again
        .write_all(head(&format!("content-length: {BODY}\r\n")).as_bytes())
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), again.read(&mut byte))
            .await
            .is_err(),
        "a body that fits the budget is read, not refused"
    );

    let probes = prober.finish().await;
    let text = metrics_text(metrics).await;
    assert_eq!(
        metric(
            &text,
            "siemgate_requests_rejected_total",
            &[("source", "signed"), ("reason", "body_budget_exhausted")]
        ),
        Some(9.0),
        "{text}"
    );
    drop((holders, again));
    sink_holds_exactly(p, dir.path(), probes).await;
}

/// An HTTP/2 frame header: length, type, flags, stream id.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap();
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// HPACK "literal header field without indexing, new name", no Huffman coding.
fn hpack_literal(block: &mut Vec<u8>, name: &str, value: &str) {
    block.push(0);
    block.push(u8::try_from(name.len()).unwrap());
    block.extend_from_slice(name.as_bytes());
    block.push(u8::try_from(value.len()).unwrap());
    block.extend_from_slice(value.as_bytes());
}

/// A hand-written h2c peer that starts a request (its body never comes, so the connection is
/// not idle) and then goes silent: it never answers the server's pings. The server drops it
/// after one keep-alive interval and timeout, long before the body timeout would end the
/// request; the prober is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_peer_that_stops_answering_pings_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Process::start(
        dir.path(),
        &config("h2_keepalive_interval = \"500ms\"\nh2_keepalive_timeout = \"500ms\""),
        &[],
    );
    let [hooks, _] = p.wait_ready(["hooks", "metrics"]);
    let prober = Prober::start(hooks);

    let mut s = TcpStream::connect(hooks).await.unwrap();
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(h2_frame(0x4, 0, 0, &[])); // SETTINGS
    let mut block = Vec::new();
    for (k, v) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/hooks/signed"),
        (":authority", "127.0.0.1"),
        ("x-signature", &"0".repeat(64)),
        ("content-length", "100"),
    ] {
        hpack_literal(&mut block, k, v);
    }
    hello.extend(h2_frame(0x1, 0x4, 1, &block)); // HEADERS, END_HEADERS, no END_STREAM
    s.write_all(&hello).await.unwrap();
    let started = Instant::now();

    // Read frames: acknowledge the server's settings, never its pings, until it closes.
    let read = async {
        let mut pings = 0;
        let mut buf = Vec::new();
        let mut tmp = [0u8; 4096];
        loop {
            while buf.len() >= 9 {
                let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
                if buf.len() < 9 + len {
                    break;
                }
                let (kind, flags) = (buf[3], buf[4]);
                if kind == 0x4 && flags & 0x1 == 0 {
                    let _ = s.write_all(&h2_frame(0x4, 0x1, 0, &[])).await;
                }
                if kind == 0x6 && flags & 0x1 == 0 {
                    pings += 1;
                }
                buf.drain(..9 + len);
            }
            match s.read(&mut tmp).await {
                Ok(0) | Err(_) => return pings,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
    };
    let pings = tokio::time::timeout(BOUND, read)
        .await
        .expect("the silent peer is dropped");
    assert!(pings >= 1, "no keep-alive ping was sent");
    // The body timeout (3 s) answers 408 and would leave the connection open; the ping
    // timeout is what closes it.
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "dropped only after {:?}",
        started.elapsed()
    );
    let probes = prober.finish().await;
    sink_holds_exactly(p, dir.path(), probes).await;
}

/// Over TLS with HTTP/2 (ALPN) the same holds: 100 connections from ten addresses that each
/// sent one request and stay open, against `max_connections = 32`, are all closed (idle or to
/// make room) while a signed prober over TLS keeps being served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tls_h2_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("server.pem"), cert.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("server.key"),
        cert.signing_key.serialize_pem(),
    )
    .unwrap();
    let text = config("max_connections = 32\nmax_connections_per_ip = 16").replace(
        "plaintext = true\nshutdown_grace = \"2s\"",
        "shutdown_grace = \"2s\"\n[server.tls]\ncert = \"{dir}/server.pem\"\nkey = \"{dir}/server.key\"",
    );
    let mut p = Process::start(dir.path(), &text, &[]);
    let [hooks, metrics] = p.wait_ready(["hooks", "metrics"]);
    let h1 = crate::common::tls_client(&cert.cert.pem(), &[b"http/1.1"], None);
    let h2 = crate::common::tls_client(&cert.cert.pem(), &[b"h2"], None);
    let prober = Prober::start_with(hooks, Some(h1));

    let mut held = Vec::new();
    for i in 0..100 {
        let tcp = connect_from(&format!("127.0.1.{}", 1 + i % 10), hooks)
            .await
            .unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(h2.clone())
            .connect(name, tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        let open = tokio::spawn(conn);
        let req = Request::get(format!("https://localhost:{}/nowhere", hooks.port()))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = tokio::time::timeout(BOUND, sender.send_request(req))
            .await
            .expect("an answer within the bound")
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        held.push((sender, open));
    }
    let deadline = tokio::time::Instant::now() + BOUND;
    for (i, (_sender, open)) in held.into_iter().enumerate() {
        assert!(
            tokio::time::timeout_at(deadline, open).await.is_ok(),
            "TLS h2 connection {i} still open"
        );
    }
    let probes = prober.finish().await;
    let text = metrics_text(metrics).await;
    let idle = hooks_counter(&text, "siemgate_connections_closed_total", "idle");
    let evicted = hooks_counter(&text, "siemgate_connections_closed_total", "evicted");
    assert!(
        idle >= 1.0 && evicted >= 1.0 && idle + evicted >= 100.0,
        "{text}"
    );
    sink_holds_exactly(p, dir.path(), probes).await;
}
