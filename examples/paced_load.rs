//! Paced (open-loop) load client for `benches/load.sh`: sends signed POSTs on a fixed schedule
//! and measures each request's latency from the time it was *scheduled*, not from when it could
//! be sent, so a server that stalls is charged for every request it delayed (no coordinated
//! omission). wrk2 and oha's `--rate` do the same; neither is packaged here.
//!
//! Request `i` of the run is due at `start + i / rate` and goes on keep-alive HTTP/1.1
//! connection `i % C`. Two threads share the work, so that the client costs the machine little
//! next to the server it measures (on a 2-core box, a client that spends as much CPU per request
//! as the server takes the server's cores):
//! - the sender sleeps until the next request is due and writes every request that is, whether
//!   or not its connection has answered the earlier ones (HTTP/1.1 pipelining: a server that
//!   stalls finds the requests a fixed-rate sender would have sent waiting on its connections);
//!   the timer slack of a sleep batches sends at high rates, and how late each write was is
//!   reported;
//! - the reader, one readiness-driven event loop over every connection, parses each
//!   connection's responses in order: the `n`-th answers request `k + n * C`, and its latency is
//!   measured from that request's due time.
//!
//! Bounded: it sends `rate x seconds` requests and stops; requests still unanswered 10 s after
//! the last one was due count as errors, as do a connection's remaining requests once it fails.
//!
//! Usage (prints one line, the format `benches/load.sh` reads from wrk):
//!   paced_load URL RATE SECONDS CONNECTIONS BODY_FILE [HEADER: VALUE]...
//!   RESULT rps=... p50_ms=... p99_ms=... errors=... non2xx=... late_ms_p99=...

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

/// How long after the last request was due the reader waits for the answers still missing.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the sender waits before retrying a connection whose socket buffer is full.
const FULL_RETRY: Duration = Duration::from_micros(200);

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

/// The schedule: when request `i` is due, and which requests each connection carries.
#[derive(Clone, Copy)]
struct Schedule {
    start: Instant,
    interval_ns: f64,
    connections: u64,
    total: u64,
}

impl Schedule {
    fn due(&self, i: u64) -> Instant {
        self.start + Duration::from_nanos((i as f64 * self.interval_ns) as u64)
    }

    /// How many requests connection `k` carries.
    fn count(&self, k: u64) -> u64 {
        if k >= self.total {
            0
        } else {
            (self.total - k).div_ceil(self.connections)
        }
    }
}

/// What one connection's reader saw: latencies from the scheduled time (ns).
#[derive(Default)]
struct Seen {
    latencies: Vec<u64>,
    errors: u64,
    non2xx: u64,
}

/// The length of the first complete HTTP/1.1 response (headers plus a Content-Length body) in
/// `buf` and its status code, or `None` if it has not all arrived yet.
fn parse_response(buf: &[u8]) -> Result<Option<(usize, u16)>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|e| e.to_string())?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("bad status line")?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let total = end + 4 + length;
    Ok((buf.len() >= total).then_some((total, status)))
}

/// Reads connection `k`'s answers until it has them all, it fails, or `deadline` passes.
async fn read_answers(
    stream: std::net::TcpStream,
    k: u64,
    schedule: Schedule,
    deadline: Instant,
    failed: Arc<AtomicBool>,
) -> Seen {
    let expected = schedule.count(k);
    let mut seen = Seen {
        latencies: Vec::with_capacity(expected as usize),
        ..Seen::default()
    };
    let mut answered = 0u64;
    let mut stream = match tokio::net::TcpStream::from_std(stream) {
        Ok(s) => s,
        Err(_) => {
            failed.store(true, Ordering::Relaxed);
            seen.errors = expected;
            return seen;
        }
    };
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    let timeout = tokio::time::sleep_until(deadline.into());
    tokio::pin!(timeout);
    'read: while answered < expected {
        let n = tokio::select! {
            r = stream.read(&mut chunk) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            () = &mut timeout => break,
        };
        buf.extend_from_slice(&chunk[..n]);
        let now = Instant::now();
        let mut used = 0;
        loop {
            match parse_response(&buf[used..]) {
                Ok(Some((len, status))) => {
                    let due = schedule.due(k + answered * schedule.connections);
                    seen.latencies
                        .push(now.saturating_duration_since(due).as_nanos() as u64);
                    if !(200..300).contains(&status) {
                        seen.non2xx += 1;
                    }
                    answered += 1;
                    used += len;
                }
                Ok(None) => break,
                // Not HTTP/1.1 as this client reads it: the rest of the connection is lost.
                Err(_) => break 'read,
            }
        }
        buf.drain(..used);
    }
    if answered < expected {
        failed.store(true, Ordering::Relaxed);
        seen.errors += expected - answered;
    }
    seen
}

/// One connection as the sender sees it: its socket, and how far it is through its requests.
struct Sending {
    stream: TcpStream,
    /// Requests of this connection written whole.
    sent: u64,
    /// Requests of this connection that are due (written or not).
    due: u64,
    /// Bytes of the next request already written.
    partial: usize,
    failed: Arc<AtomicBool>,
}

/// Writes every request as it falls due; returns how late each write completed (ns).
fn send(conns: &mut [Sending], request: &[u8], schedule: Schedule) -> Vec<u64> {
    let mut late = Vec::with_capacity(schedule.total as usize);
    let mut next = 0u64;
    loop {
        let now = Instant::now();
        while next < schedule.total && schedule.due(next) <= now {
            conns[(next % schedule.connections) as usize].due += 1;
            next += 1;
        }
        let mut blocked = false;
        for (k, c) in conns.iter_mut().enumerate() {
            while c.sent < c.due && !c.failed.load(Ordering::Relaxed) {
                match c.stream.write(&request[c.partial..]) {
                    Ok(n) => {
                        c.partial += n;
                        if c.partial == request.len() {
                            let i = k as u64 + c.sent * schedule.connections;
                            late.push(
                                Instant::now()
                                    .saturating_duration_since(schedule.due(i))
                                    .as_nanos() as u64,
                            );
                            c.partial = 0;
                            c.sent += 1;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        blocked = true;
                        break;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        c.failed.store(true, Ordering::Relaxed);
                        break;
                    }
                }
            }
        }
        if next >= schedule.total && !blocked {
            return late;
        }
        let now = Instant::now();
        let wait = if next < schedule.total {
            schedule.due(next).saturating_duration_since(now)
        } else {
            FULL_RETRY
        };
        let wait = if blocked { wait.min(FULL_RETRY) } else { wait };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
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

    let mut sending = Vec::with_capacity(connections as usize);
    let mut reading = Vec::with_capacity(connections as usize);
    for _ in 0..connections {
        let s = TcpStream::connect(&target.host).map_err(|e| format!("{}: {e}", target.host))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        let failed = Arc::new(AtomicBool::new(false));
        reading.push((s.try_clone().map_err(|e| e.to_string())?, failed.clone()));
        sending.push(Sending {
            stream: s,
            sent: 0,
            due: 0,
            partial: 0,
            failed,
        });
    }

    let schedule = Schedule {
        start: Instant::now() + Duration::from_millis(50),
        interval_ns: 1e9 / rate,
        connections,
        total: (rate * seconds) as u64,
    };
    let deadline = schedule.due(schedule.total) + ANSWER_TIMEOUT;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let reader = std::thread::spawn(move || {
        runtime.block_on(async move {
            let tasks: Vec<_> = reading
                .into_iter()
                .enumerate()
                .map(|(k, (s, failed))| {
                    tokio::spawn(read_answers(s, k as u64, schedule, deadline, failed))
                })
                .collect();
            let mut seen = Vec::with_capacity(tasks.len());
            for t in tasks {
                seen.push(t.await.unwrap_or_default());
            }
            (seen, Instant::now())
        })
    });
    let mut late = send(&mut sending, &request, schedule);
    let (seen, finished) = reader.join().map_err(|_| "the reader thread panicked")?;
    let elapsed = finished
        .saturating_duration_since(schedule.start)
        .as_secs_f64();
    let mut latencies: Vec<u64> = seen
        .iter()
        .flat_map(|s| s.latencies.iter().copied())
        .collect();
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
