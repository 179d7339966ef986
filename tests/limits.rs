//! Server limits end to end, over raw TCP where the client must misbehave: a Content-Length over
//! the cap is refused with 413 before the body is sent, a chunked body growing past the cap gets
//! 413 while streaming, a stalled body gets 408, stalled or trickled headers get the connection
//! closed, a body exactly at the cap (sized or chunked) is accepted, and only accepted events
//! reach the sink. At `max_connections` the longest-idle connection makes room for a new one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MAX_BODY: usize = 1024;
const AUTH: (&str, &str) = ("authorization", "Bearer tok");
/// Upper bound for anything the server should do "soon"; generous for a noisy 2-core machine.
const BOUND: Duration = Duration::from_secs(5);

fn config() -> String {
    format!(
        r#"{PLAIN_SERVER}
[server.limits]
max_body_bytes = {MAX_BODY}
header_read_timeout = "300ms"
body_read_timeout = "500ms"
{FILE_SINK}
[[sources]]
id = "demo"
sinks = ["out"]
auth = {{ scheme = "token", prefix = "Bearer ", secret = "tok" }}
"#
    )
}

/// A request head for `/hooks/demo` with the token and `extra` header lines (each ending in
/// CRLF), up to and including the blank line.
fn head(extra: &str) -> String {
    format!(
        "POST /hooks/demo HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer tok\r\n{extra}\r\n"
    )
}

/// A JSON object with the given id, padded to exactly `len` bytes.
fn body_of_len(id: &str, len: usize) -> String {
    let bare = format!(r#"{{"id":"{id}","pad":""}}"#);
    let body = format!(
        r#"{{"id":"{id}","pad":"{}"}}"#,
        "x".repeat(len - bare.len())
    );
    assert_eq!(body.len(), len);
    body
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// A response read off a raw socket: status, head text, body.
#[derive(Debug)]
struct RawAnswer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl RawAnswer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// Reads one HTTP/1.1 response (head plus a Content-Length body) from `stream`, within
/// [`BOUND`].
async fn read_answer(stream: &mut TcpStream) -> RawAnswer {
    let read = async {
        let mut buf = Vec::new();
        let mut tmp = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut tmp).await.expect("read the answer");
            assert!(
                n > 0,
                "connection closed before a full head: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&tmp[..n]);
        };
        let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line: {head:?}"));
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())
                    .flatten()
            })
            .unwrap_or_else(|| panic!("no content-length: {head:?}"));
        while buf.len() < head_end + len {
            let n = stream.read(&mut tmp).await.expect("read the answer body");
            assert!(n > 0, "connection closed mid-body: {head:?}");
            buf.extend_from_slice(&tmp[..n]);
        }
        RawAnswer {
            status,
            head,
            body: buf[head_end..head_end + len].to_vec(),
        }
    };
    tokio::time::timeout(BOUND, read)
        .await
        .expect("an answer within the bound")
}

/// Reads until the server closes the connection (EOF or a reset) and returns what it sent;
/// panics if the connection is still open after [`BOUND`].
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let read = async {
        let mut seen = Vec::new();
        let mut tmp = [0u8; 1024];
        loop {
            match stream.read(&mut tmp).await {
                Ok(0) | Err(_) => return seen,
                Ok(n) => seen.extend_from_slice(&tmp[..n]),
            }
        }
    };
    tokio::time::timeout(BOUND, read)
        .await
        .expect("the server closes the connection within the bound")
}

async fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    s
}

async fn declared_length_over_the_cap_is_refused_before_the_body(addr: SocketAddr) {
    let mut s = connect(addr).await;
    let mut req = head("content-length: 1073741824\r\n").into_bytes();
    req.extend_from_slice(br#"{"id":"huge","#);
    s.write_all(&req).await.unwrap();
    // The body is never sent: the answer must come from the Content-Length alone (a server
    // waiting for the body would answer 408 after body_read_timeout instead).
    let a = read_answer(&mut s).await;
    assert_eq!(a.status, 413, "{a:?}");
    assert_eq!(a.json()["error"], "body_too_large");
    assert!(
        a.json()["detail"].as_str().unwrap().contains("1024"),
        "{a:?}"
    );
    assert!(
        a.head.to_ascii_lowercase().contains("connection: close"),
        "{a:?}"
    );
}

async fn chunked_body_over_the_cap_is_refused_while_streaming(addr: SocketAddr) {
    let mut s = connect(addr).await;
    s.write_all(head("transfer-encoding: chunked\r\n").as_bytes())
        .await
        .unwrap();
    // 5 x 300 bytes = 1500 > 1024, and no terminating chunk: the server must decide while the
    // body is still streaming.
    let mut chunks = Vec::new();
    for _ in 0..5 {
        chunks.extend_from_slice(&chunk(&[b'a'; 300]));
    }
    s.write_all(&chunks).await.unwrap();
    let a = read_answer(&mut s).await;
    assert_eq!(a.status, 413, "{a:?}");
    assert_eq!(a.json()["error"], "body_too_large");
}

async fn stalled_body_gets_408(addr: SocketAddr) {
    let mut s = connect(addr).await;
    let started = Instant::now();
    // 10 of the 100 declared bytes, then nothing.
    let mut req = head("content-length: 100\r\n").into_bytes();
    req.extend_from_slice(&body_of_len("slow", 100).as_bytes()[..10]);
    s.write_all(&req).await.unwrap();
    let a = read_answer(&mut s).await;
    let took = started.elapsed();
    assert_eq!(a.status, 408, "{a:?}");
    assert_eq!(a.json()["error"], "body_timeout");
    // The body timer starts once the head is in, after our write: it cannot fire early.
    assert!(
        took >= Duration::from_millis(450),
        "408 after only {took:?}"
    );
}

async fn stalled_headers_close_the_connection(addr: SocketAddr) {
    let mut s = connect(addr).await;
    let started = Instant::now();
    s.write_all(b"POST /hooks/demo HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ")
        .await
        .unwrap();
    let seen = read_until_closed(&mut s).await;
    let took = started.elapsed();
    assert!(
        !String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 2"),
        "{seen:?}"
    );
    assert!(took >= Duration::from_millis(250), "closed after {took:?}");
}

async fn trickled_headers_close_the_connection(addr: SocketAddr) {
    // One byte every 50 ms: each byte arrives well within the header timeout, but the head as a
    // whole does not. The header timeout bounds the whole head, not the gap between bytes.
    let s = connect(addr).await;
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        let line = b"POST /hooks/demo HTTP/1.1\r\nhost: 127.0.0.1\r\n";
        let filler =
            b"x-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        // 120 bytes x 50 ms = 6 s: longer than the bound below, so the test can only pass if
        // the server closes the connection.
        for b in line.iter().chain(filler.iter()).take(120) {
            if wr.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let read = async {
        let mut tmp = [0u8; 1024];
        loop {
            match rd.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(BOUND, read)
        .await
        .expect("the server closes a trickling connection within the bound");
    writer.abort();
}

async fn body_exactly_at_the_cap_is_accepted(addr: SocketAddr) {
    // Sized.
    let body = body_of_len("exact-cl", MAX_BODY);
    let a = send(addr, post(addr, "demo", &[AUTH], body)).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.json(), serde_json::json!({"accepted": 1}));

    // Chunked, in two halves.
    let body = body_of_len("exact-chunked", MAX_BODY);
    let mut s = connect(addr).await;
    let mut req = head("transfer-encoding: chunked\r\n").into_bytes();
    req.extend_from_slice(&chunk(&body.as_bytes()[..MAX_BODY / 2]));
    s.write_all(&req).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut rest = chunk(&body.as_bytes()[MAX_BODY / 2..]);
    rest.extend_from_slice(b"0\r\n\r\n");
    s.write_all(&rest).await.unwrap();
    let a = read_answer(&mut s).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json(), serde_json::json!({"accepted": 1}));

    // One byte more is refused, even from a well-behaved client that sends it all.
    let body = body_of_len("one-over", MAX_BODY + 1);
    let a = send(addr, post(addr, "demo", &[AUTH], body)).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{a:?}");
    assert_eq!(a.json()["error"], "body_too_large");
}

#[tokio::test]
async fn body_and_header_limits_refuse_and_only_accepted_events_reach_the_sink() {
    let gw = start(&config()).await;
    let addr = gw.addr();

    declared_length_over_the_cap_is_refused_before_the_body(addr).await;
    chunked_body_over_the_cap_is_refused_while_streaming(addr).await;
    stalled_body_gets_408(addr).await;
    stalled_headers_close_the_connection(addr).await;
    trickled_headers_close_the_connection(addr).await;
    body_exactly_at_the_cap_is_accepted(addr).await;

    // The gateway still serves normally afterwards.
    let a = send(addr, post(addr, "demo", &[AUTH], r#"{"id":"after"}"#)).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");

    let out = gw.out();
    eventually("3 accepted events in the sink", || {
        read_lines(&out).len() >= 3
    })
    .await;

    let (_, text) = get_text(gw.metrics_addr(), "/metrics").await;
    let requests = |code: &str| {
        metric(
            &text,
            "siemgate_http_requests_total",
            &[("source", "demo"), ("code", code)],
        )
    };
    let rejected = |reason: &str| {
        metric(
            &text,
            "siemgate_requests_rejected_total",
            &[("source", "demo"), ("reason", reason)],
        )
    };
    assert_eq!(requests("200"), Some(3.0), "{text}");
    assert_eq!(requests("413"), Some(3.0), "{text}");
    assert_eq!(requests("408"), Some(1.0), "{text}");
    assert_eq!(rejected("body_too_large"), Some(3.0), "{text}");
    assert_eq!(rejected("body_timeout"), Some(1.0), "{text}");
    assert_eq!(
        metric(
            &text,
            "siemgate_events_received_total",
            &[("source", "demo")]
        ),
        Some(3.0),
        "{text}"
    );

    let dir = gw.stop().await;
    let lines = read_lines(&dir.path().join("out.ndjson"));
    let ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["exact-cl", "exact-chunked", "after"]);
}

/// At `max_connections` a new connection is served at once: the connection idle the longest is
/// closed to make room, never one with a request in flight; when every connection is busy the new
/// one is closed at once instead of waiting in the backlog.
#[tokio::test]
async fn at_capacity_the_longest_idle_connection_makes_room() {
    // Default header timeout (10 s): the idle connections would hold their slots for the whole
    // test if nothing made room.
    let config = format!(
        r#"{PLAIN_SERVER}
[server.limits]
max_connections = 2
{FILE_SINK}
[[sources]]
id = "demo"
sinks = ["out"]
auth = {{ scheme = "token", prefix = "Bearer ", secret = "tok" }}
"#
    );
    let gw = start(&config).await;
    let addr = gw.addr();

    let mut idle1 = connect(addr).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut idle2 = connect(addr).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    // A third connection is served at once; the oldest idle one is closed for it.
    let mut third = connect(addr).await;
    let body = r#"{"id":"third"}"#;
    third
        .write_all(
            format!(
                "{}{body}",
                head(&format!("content-length: {}\r\n", body.len()))
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let a = read_answer(&mut third).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert!(read_until_closed(&mut idle1).await.is_empty());
    let mut byte = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), idle2.read(&mut byte))
            .await
            .is_err(),
        "only the longest-idle connection is closed"
    );
    drop(third);
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Two requests in flight (bodies still coming): neither is evicted, and a third connection
    // is closed at once.
    drop(idle2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut busy = Vec::new();
    for id in ["busy-1", "busy-2"] {
        let mut s = connect(addr).await;
        let body = format!(r#"{{"id":"{id}"}}"#);
        s.write_all(head(&format!("content-length: {}\r\n", body.len())).as_bytes())
            .await
            .unwrap();
        s.write_all(&body.as_bytes()[..2]).await.unwrap();
        busy.push((s, body));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut refused = connect(addr).await;
    assert!(read_until_closed(&mut refused).await.is_empty());
    for (s, body) in &mut busy {
        s.write_all(&body.as_bytes()[2..]).await.unwrap();
        let a = read_answer(s).await;
        assert_eq!(a.status, 200, "{a:?}");
    }
    let (_, text) = get_text(gw.metrics_addr(), "/metrics").await;
    for (name, reason, n) in [
        ("siemgate_connections_closed_total", "evicted", 1.0),
        ("siemgate_connections_refused_total", "at_capacity", 1.0),
    ] {
        assert_eq!(
            metric(&text, name, &[("listener", "hooks"), ("reason", reason)]),
            Some(n),
            "{text}"
        );
    }
    let out = gw.out();
    eventually("the events in the sink", || read_lines(&out).len() == 3).await;
    gw.stop().await;
}

/// On a kept-alive connection the next request head is bounded too: after one accepted
/// request, a head trickled one byte every 50 ms (6 s in all) gets no answer and the connection
/// is closed within the bound.
#[tokio::test]
async fn trickled_head_after_a_request_closes_the_connection() {
    let gw = start(&config()).await;
    let s = connect(gw.addr()).await;
    let (mut rd, mut wr) = s.into_split();
    let body = r#"{"id":"kept-alive"}"#;
    let first = format!(
        "{}{body}",
        head(&format!("content-length: {}\r\n", body.len()))
    );
    wr.write_all(first.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut tmp = [0u8; 1024];
    while !answer.ends_with(br#"{"accepted":1}"#) {
        let n = tokio::time::timeout(BOUND, rd.read(&mut tmp))
            .await
            .expect("the first answer within the bound")
            .unwrap();
        assert!(n > 0, "closed before the first answer: {answer:?}");
        answer.extend_from_slice(&tmp[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    let writer = tokio::spawn(async move {
        for b in head("x-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n")
            .bytes()
            .take(120)
        {
            if wr.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let rest = async {
        let mut seen = Vec::new();
        loop {
            match rd.read(&mut tmp).await {
                Ok(0) | Err(_) => return seen,
                Ok(n) => seen.extend_from_slice(&tmp[..n]),
            }
        }
    };
    let seen = tokio::time::timeout(BOUND, rest)
        .await
        .expect("the server closes a connection whose second head trickles");
    assert!(
        !String::from_utf8_lossy(&seen).contains("HTTP/1.1 2"),
        "{seen:?}"
    );
    writer.abort();
    gw.stop().await;
}

/// A connection that never sends a byte should be closed like one that stalls mid-head.
#[tokio::test]
async fn silent_connection_is_closed() {
    let gw = start(&config()).await;
    let mut s = connect(gw.addr()).await;
    read_until_closed(&mut s).await;
    gw.stop().await;
}
