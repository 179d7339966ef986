//! Paced (open-loop) load client for `benches/load.sh`: sends signed POSTs on a fixed schedule
//! and measures each request's latency from the time it was *scheduled*, not from when it could
//! be sent, so a server that stalls is charged for every request it delayed (no coordinated
//! omission). wrk2 and oha's `--rate` do the same; neither is packaged here.
//!
//! Request `i` of the run is due at `start + i / rate`; connection `k` of `C` sends the requests
//! with `i % C == k`, one at a time over one keep-alive HTTP/1.1 connection on its own thread
//! (blocking I/O, `std::thread::sleep` for pacing: sub-millisecond precision, where an async
//! timer would round every send up to its 1 ms tick and add that to every latency). Bounded: it
//! sends `rate x seconds` requests and stops; a request still unanswered 10 s after it was sent
//! counts as an error and ends that connection.
//!
//! Usage (prints one line, the format `benches/load.sh` reads from wrk):
//!   paced_load URL RATE SECONDS CONNECTIONS BODY_FILE [HEADER: VALUE]...
//!   RESULT rps=... p50_ms=... p99_ms=... errors=... non2xx=... late_ms_p99=...

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long a connection waits for one answer before it gives up.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

struct Target {
    host: String,
    path: String,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("only http:// URLs: {url}"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    Ok(Target {
        host: host.to_owned(),
        path: path.to_owned(),
    })
}

/// What one connection saw: latencies from the scheduled time (ns), how late sends were (ns).
#[derive(Default)]
struct Seen {
    latencies: Vec<u64>,
    late: Vec<u64>,
    errors: u64,
    non2xx: u64,
}

/// Reads one HTTP/1.1 response (headers plus a Content-Length body) from `stream`, keeping
/// what follows in `buf`; returns its status code.
fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).map_err(std::io::Error::other)?;
            let status: u16 = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| std::io::Error::other("bad status line"))?;
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            let total = end + 4 + length;
            while buf.len() < total {
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..total);
            return Ok(status);
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn connection(
    host: &str,
    request: &[u8],
    start: Instant,
    interval_ns: f64,
    first: u64,
    step: u64,
    total: u64,
) -> Seen {
    let mut seen = Seen::default();
    let mut stream: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(8192);
    let mut i = first;
    while i < total {
        let due = start + Duration::from_nanos((i as f64 * interval_ns) as u64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let sent = Instant::now();
        seen.late
            .push(sent.saturating_duration_since(due).as_nanos() as u64);
        let s = match &mut stream {
            Some(s) => s,
            None => match TcpStream::connect(host) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    let _ = s.set_read_timeout(Some(ANSWER_TIMEOUT));
                    buf.clear();
                    stream.insert(s)
                }
                Err(_) => {
                    seen.errors += 1;
                    i += step;
                    continue;
                }
            },
        };
        let answered = s
            .write_all(request)
            .and_then(|()| read_response(s, &mut buf));
        match answered {
            Ok(status) => {
                seen.latencies
                    .push(Instant::now().saturating_duration_since(due).as_nanos() as u64);
                if !(200..300).contains(&status) {
                    seen.non2xx += 1;
                }
            }
            Err(_) => {
                seen.errors += 1;
                stream = None;
            }
        }
        i += step;
    }
    seen
}

fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1e6
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        return Err(
            "usage: paced_load URL RATE SECONDS CONNECTIONS BODY_FILE [HEADER: VALUE]...".into(),
        );
    }
    let target = parse_url(&args[0])?;
    let rate: f64 = args[1].parse().map_err(|_| "RATE: requests per second")?;
    let seconds: f64 = args[2].parse().map_err(|_| "SECONDS: a number")?;
    let connections: u64 = args[3].parse().map_err(|_| "CONNECTIONS: a number")?;
    if rate <= 0.0 || seconds <= 0.0 || connections == 0 {
        return Err("RATE, SECONDS and CONNECTIONS must be positive".into());
    }
    let body = std::fs::read(&args[4]).map_err(|e| format!("{}: {e}", args[4]))?;
    let mut request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
        target.path,
        target.host,
        body.len()
    );
    for h in &args[5..] {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let mut request = request.into_bytes();
    request.extend_from_slice(&body);

    let total = (rate * seconds) as u64;
    let interval_ns = 1e9 / rate;
    let start = Instant::now() + Duration::from_millis(50);
    let seen: Vec<Seen> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..connections)
            .map(|k| {
                let (host, request) = (&target.host, &request);
                scope.spawn(move || {
                    connection(host, request, start, interval_ns, k, connections, total)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let mut latencies: Vec<u64> = seen
        .iter()
        .flat_map(|s| s.latencies.iter().copied())
        .collect();
    let mut late: Vec<u64> = seen.iter().flat_map(|s| s.late.iter().copied()).collect();
    latencies.sort_unstable();
    late.sort_unstable();
    let errors: u64 = seen.iter().map(|s| s.errors).sum();
    let non2xx: u64 = seen.iter().map(|s| s.non2xx).sum();
    println!(
        "RESULT rps={:.0} p50_ms={:.3} p99_ms={:.3} errors={} non2xx={} late_ms_p99={:.3}",
        latencies.len() as f64 / elapsed,
        percentile_ms(&latencies, 50.0),
        percentile_ms(&latencies, 99.0),
        errors,
        non2xx,
        percentile_ms(&late, 99.0),
    );
    Ok(())
}
