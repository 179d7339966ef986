//! The disk queue end to end, with the real binary: every event whose request got a 2xx reaches
//! the sink after `kill -9` under load, after a torn last record (cut, counted, the rest kept),
//! after SIGTERM with a stuck sink; an unwritable queue directory stops the start with an error
//! naming it; a full disk queue answers 503 with Retry-After and keeps exactly what it accepted;
//! a backlog many times the queue's memory window, across a restart, reaches a HEC collector
//! that comes up later, once and in order.
//!
//! A sink is made stuck in one of two ways:
//! * a FIFO at its path, nobody reading, and a first event larger than a pipe's buffer: the
//!   file sink's write blocks in the kernel and nothing after it is acknowledged (used where the
//!   process is killed, since that write never ends otherwise);
//! * a path under a regular file (`{dir}/afile/out.ndjson`): every open fails, the sink retries
//!   forever, and a clean shutdown is not held by a blocked write.
//!
//! The next start points the sink at `{dir}/out.ndjson`, a regular file, and keeps the queue.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/hec.rs"]
mod hec;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::binary::{Process, READY_TIMEOUT};
use common::{mkfifo, poll_until};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

const SOURCE: &str = "load";
const TOKEN: &str = "durability-test-token";
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Per-request bound for the clients (connect, send, read the answer).
const CLIENT_OP_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound on waiting for the restarted gateway to deliver what its queue holds.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Padding of the event that jams the FIFO: well above a pipe's buffer (64 KiB), below the
/// default body cap (1 MiB).
const BIG_PAD: usize = 600_000;

/// Working sink path (a regular file) and the two stuck ones.
const OUT: &str = "{dir}/out.ndjson";
const FIFO_OUT: &str = "{dir}/fifo";
const FAILING_OUT: &str = "{dir}/afile/out.ndjson";

/// A gateway with one generic token source `load` routed to one file sink `out` at `out`,
/// whose `[sinks.queue]` is `type = "disk"` plus the `queue` lines; `server` lines go into
/// `[server]`. `{dir}` is replaced by [`Server::start`].
fn config(out: &str, queue: &str, server: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
plaintext = true
shutdown_grace = "1s"
{server}
[metrics]
listen = "127.0.0.1:0"

[[sinks]]
id = "out"
type = "file"
path = '{out}'
fsync = "never"
[sinks.batch]
linger = "0ms"
[sinks.queue]
type = "disk"
{queue}

[[sources]]
id = "{SOURCE}"
vendor = "generic"
sinks = ["out"]
auth = {{ scheme = "token", prefix = "Bearer ", secret = "{TOKEN}" }}
"#
    )
}

// ---------------------------------------------------------------------------------------------
// The real binary.

/// The gateway's environment.
const LOG: &[(&str, &str)] = &[("SIEMGATE_LOG", "info")];

/// A running gateway: the process and its two listeners.
struct Server {
    proc: Process,
    hooks: SocketAddr,
    metrics: SocketAddr,
}

impl Server {
    /// Starts the binary in `dir` (`{dir}` in `config` replaced) and waits (bounded) for both
    /// ready lines.
    fn start(dir: &Path, config: &str) -> Server {
        let mut proc = Process::start(dir, config, LOG);
        let [hooks, metrics] = proc.wait_ready(["hooks", "metrics"]);
        Server {
            proc,
            hooks,
            metrics,
        }
    }

    fn stderr_text(&self) -> String {
        self.proc.stderr_text()
    }

    /// SIGKILL, and wait for the process to be gone.
    fn kill9(&mut self) {
        self.proc.kill9();
        let status = self.proc.wait_exit(EXIT_TIMEOUT);
        assert!(!status.success(), "killed, yet exit status {status:?}");
    }

    /// Sends a signal with `kill(1)` (`sig` is e.g. "-TERM").
    fn signal(&self, sig: &str) {
        self.proc.signal(sig);
    }

    /// SIGTERM; waits (bounded) for the exit and returns its status.
    fn terminate(&mut self) -> ExitStatus {
        self.signal("-TERM");
        self.proc.wait_exit(EXIT_TIMEOUT)
    }
}

// ---------------------------------------------------------------------------------------------
// Clients and files.

/// An answer as a client saw it.
#[derive(Debug)]
struct Reply {
    status: u16,
    retry_after: Option<String>,
    body: String,
}

/// POSTs `body` to the source on a fresh connection, bounded by [`CLIENT_OP_TIMEOUT`]; an error
/// is any failure to get a whole answer (refused, reset, timed out).
async fn try_post(addr: SocketAddr, body: String) -> Result<Reply, String> {
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        let auth = format!("Bearer {TOKEN}");
        let req = common::post(addr, SOURCE, &[("authorization", &auth)], body);
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok(Reply {
            status,
            retry_after,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    tokio::time::timeout(CLIENT_OP_TIMEOUT, exchange)
        .await
        .map_err(|_| "timed out".to_owned())?
}

/// POSTs and expects an answer (any status).
async fn post(addr: SocketAddr, body: String) -> Reply {
    try_post(addr, body)
        .await
        .unwrap_or_else(|e| panic!("no answer: {e}"))
}

/// A JSON array with one small event per id.
fn events_body(ids: &[String]) -> String {
    let events: Vec<String> = ids
        .iter()
        .map(|id| format!(r#"{{"id":"{id}","severity":"high","title":"durability {id}"}}"#))
        .collect();
    format!("[{}]", events.join(","))
}

fn big_body(id: &str) -> String {
    format!(r#"{{"id":"{id}","pad":"{}"}}"#, "x".repeat(BIG_PAD))
}

fn accepted(n: usize) -> String {
    format!(r#"{{"accepted":{n}}}"#)
}

/// Asserts a 200 with the receipt for `n` events.
fn assert_ok(reply: &Reply, n: usize, stderr: impl FnOnce() -> String) {
    assert!(
        reply.status == 200 && reply.body == accepted(n),
        "expected 200 {}, got {reply:?}; stderr:\n{}",
        accepted(n),
        stderr()
    );
}

/// Creates `{dir}/afile`, a regular file, so that paths under it can be neither created nor
/// opened.
fn make_afile(dir: &Path) -> PathBuf {
    let afile = dir.join("afile");
    std::fs::write(&afile, "not a directory\n").unwrap();
    afile
}

/// The ids of the whole lines of `path` with their counts; a line that is not JSON with a string
/// `id` panics. Unless `strict`, a last line without its newline (a write in progress) is
/// skipped; if `strict` it is an error.
fn read_ids(path: &Path, strict: bool) -> HashMap<String, usize> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut whole = text.as_str();
    if !text.is_empty() && !text.ends_with('\n') {
        assert!(
            !strict,
            "{} ends in a partial line: {:?}",
            path.display(),
            &text[text.rfind('\n').map_or(0, |i| i + 1)..]
                .chars()
                .take(200)
                .collect::<String>()
        );
        whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    }
    let mut counts = HashMap::new();
    for (n, line) in whole.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "{} line {} is not JSON ({e}): {:?}",
                path.display(),
                n + 1,
                line.chars().take(200).collect::<String>()
            )
        });
        let id = v["id"].as_str().unwrap_or_else(|| {
            panic!(
                "{} line {} has no string id: {:?}",
                path.display(),
                n + 1,
                line.chars().take(200).collect::<String>()
            )
        });
        *counts.entry(id.to_owned()).or_default() += 1;
    }
    counts
}

/// Waits (bounded) until every id of `expected` is in `path` and the sink's queue is empty
/// (nothing is left that could still arrive), and returns the final counts (read strictly:
/// whole JSON lines only).
async fn wait_for_ids(
    path: &Path,
    expected: &HashSet<String>,
    server: &Server,
) -> HashMap<String, usize> {
    let started = Instant::now();
    loop {
        let counts = read_ids(path, false);
        let missing: Vec<&String> = expected
            .iter()
            .filter(|id| !counts.contains_key(*id))
            .collect();
        if missing.is_empty() {
            break;
        }
        if started.elapsed() >= DELIVERY_TIMEOUT {
            let mut sample: Vec<&&String> = missing.iter().collect();
            sample.sort();
            panic!(
                "{} of {} expected events not delivered within {DELIVERY_TIMEOUT:?} \
                 ({} distinct ids in the file), e.g. {:?}; stderr:\n{}",
                missing.len(),
                expected.len(),
                counts.len(),
                &sample[..sample.len().min(10)],
                server.stderr_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_queue_empty(server).await;
    read_ids(path, true)
}

/// The committed position a disk queue keeps in `<queue>/committed` (the sequence number of
/// its first undelivered record; records count from 0): 0 while the file is not there. The
/// file is `SGC1`, the position (u64, little endian), a CRC-32.
fn committed_position(queue: &Path) -> u64 {
    match std::fs::read(queue.join("committed")) {
        Ok(b) if b.len() == 16 && &b[..4] == b"SGC1" => {
            u64::from_le_bytes(b[4..12].try_into().unwrap())
        }
        Ok(b) => panic!("{}/committed is not a position: {b:?}", queue.display()),
        Err(_) => 0,
    }
}

/// The `.seg` files of a queue directory, sorted by name; each name must be 20 digits.
fn segments(queue: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(queue)
        .unwrap_or_else(|e| panic!("read {}: {e}", queue.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    for s in &segs {
        let stem = s.file_stem().unwrap().to_str().unwrap();
        assert!(
            stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()),
            "segment name is not <20 digits>.seg: {}",
            s.display()
        );
    }
    segs
}

/// The records of a segment file as (offset, payload); every record must be whole, its
/// checksum the CRC-32 of its sequence number (the file's name plus its index, u64 LE) and
/// payload. An end marker (zero length, the CRC-32 of the next sequence number) ends the file's
/// records where a segment was written over a delivered one.
fn records(seg: &Path) -> Vec<(usize, Vec<u8>)> {
    let base: u64 = seg.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let data = std::fs::read(seg).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let seq = base + out.len() as u64;
        assert!(
            at + 8 <= data.len(),
            "{}: header cut at {at}",
            seg.display()
        );
        let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(data[at + 4..at + 8].try_into().unwrap());
        if len == 0 && crc == crc32fast::hash(&seq.to_le_bytes()) {
            break;
        }
        let end = at + 8 + len;
        assert!(
            len > 0 && end <= data.len(),
            "{}: record at {at} of length {len} runs past the end ({})",
            seg.display(),
            data.len()
        );
        let payload = &data[at + 8..end];
        let mut want = crc32fast::Hasher::new();
        want.update(&seq.to_le_bytes());
        want.update(payload);
        assert_eq!(
            want.finalize(),
            crc,
            "{}: CRC mismatch in the record at {at} (sequence {seq})",
            seg.display()
        );
        out.push((at, payload.to_vec()));
        at = end;
    }
    out
}

/// The `id` of a record whose payload is one NDJSON line.
fn record_id(payload: &[u8]) -> String {
    assert!(payload.ends_with(b"\n"), "payload is not one NDJSON line");
    let v: serde_json::Value = serde_json::from_slice(payload).unwrap_or_else(|e| {
        panic!(
            "payload is not JSON ({e}): {:?}",
            String::from_utf8_lossy(payload)
        )
    });
    v["id"]
        .as_str()
        .expect("payload has a string id")
        .to_owned()
}

/// Waits (bounded) until the sink's queue gauge reads 0.
async fn wait_queue_empty(server: &Server) {
    let mut last = None;
    for _ in 0..100 {
        let text = common::metrics_text(server.metrics).await;
        last = common::metric(&text, "siemgate_queue_events", &[("sink", "out")]);
        if last == Some(0.0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("siemgate_queue_events{{sink=\"out\"}} is {last:?}, not 0, after 10s");
}

fn ids(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

fn duplicates(counts: &HashMap<String, usize>) -> Vec<(&String, &usize)> {
    let mut d: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
    d.sort();
    d
}

// ---------------------------------------------------------------------------------------------
// 1. kill -9 under load.

const CLIENTS: usize = 6;
const REQUESTS_PER_CLIENT: usize = 60;
const EVENTS_PER_REQUEST: usize = 2;
/// Requests answered 200 before the kill.
const KILL_AFTER_OKS: usize = 120;

fn load_id(client: usize, request: usize, event: usize) -> String {
    format!("c{client}-r{request}-e{event}")
}

#[derive(Debug, Default)]
struct ClientLog {
    ok: Vec<usize>,
    sent: Vec<usize>,
    other: Vec<(usize, Reply)>,
    ended_by: String,
}

async fn load_client(addr: SocketAddr, client: usize, oks: Arc<AtomicUsize>) -> ClientLog {
    let mut log = ClientLog::default();
    for request in 0..REQUESTS_PER_CLIENT {
        let ids: Vec<String> = (0..EVENTS_PER_REQUEST)
            .map(|e| load_id(client, request, e))
            .collect();
        log.sent.push(request);
        match try_post(addr, events_body(&ids)).await {
            Ok(r) if r.status == 200 && r.body == accepted(EVENTS_PER_REQUEST) => {
                log.ok.push(request);
                oks.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => log.other.push((request, r)),
            Err(e) => {
                log.ended_by = e;
                return log;
            }
        }
    }
    log.ended_by = "request limit".to_owned();
    log
}

/// Starts [`CLIENTS`] load clients against `addr` and waits (bounded, 60 s) until
/// [`KILL_AFTER_OKS`] of their requests got 200; returns the clients and the count of 200s,
/// which goes on rising.
fn start_load(addr: SocketAddr) -> (Vec<tokio::task::JoinHandle<ClientLog>>, Arc<AtomicUsize>) {
    let oks = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(load_client(addr, c, oks.clone())))
        .collect();
    let waited = Instant::now();
    while oks.load(Ordering::Relaxed) < KILL_AFTER_OKS && waited.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    (clients, oks)
}

/// The logs of the load clients, each of which ends (bounded) once the server is gone.
async fn client_logs(clients: Vec<tokio::task::JoinHandle<ClientLog>>) -> Vec<ClientLog> {
    let mut logs = Vec::new();
    for c in clients {
        let log = tokio::time::timeout(CLIENT_OP_TIMEOUT * 2, c)
            .await
            .expect("a load client ends once the server is gone")
            .unwrap();
        logs.push(log);
    }
    logs
}

/// The ids of the events the load sent, and of those its 200s acknowledged.
fn load_ids(logs: &[ClientLog]) -> (HashSet<String>, HashSet<String>) {
    let mut sent = HashSet::new();
    let mut acknowledged = HashSet::new();
    for (c, log) in logs.iter().enumerate() {
        for &r in &log.sent {
            sent.extend((0..EVENTS_PER_REQUEST).map(|e| load_id(c, r, e)));
        }
        for &r in &log.ok {
            acknowledged.extend((0..EVENTS_PER_REQUEST).map(|e| load_id(c, r, e)));
        }
    }
    (sent, acknowledged)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    mkfifo(&dir.path().join("fifo"));
    let queue = "path = '{dir}/q'\nfsync = \"always\"\nsegment_bytes = 262144";
    let mut server = Server::start(dir.path(), &config(FIFO_OUT, queue, ""));

    // Jam the sink: its write of this event blocks on the unread FIFO.
    let reply = post(server.hooks, big_body("big")).await;
    assert_ok(&reply, 1, || server.stderr_text());

    let (clients, oks) = start_load(server.hooks);
    // The sink is jammed: nothing delivered, everything acknowledged still queued.
    // (The count first: every 200 counted is in the gauge read after it.)
    let oks_at_check = oks.load(Ordering::Relaxed);
    let text = common::metrics_text(server.metrics).await;
    let delivered = common::metric(&text, "siemgate_events_delivered_total", &[("sink", "out")]);
    let queued = common::metric(&text, "siemgate_queue_events", &[("sink", "out")]);
    assert!(
        delivered.unwrap_or(0.0) == 0.0
            && queued.is_some_and(|q| q >= (1 + oks_at_check * EVENTS_PER_REQUEST) as f64),
        "the FIFO did not jam the sink: delivered {delivered:?}, queued {queued:?} after \
         {oks_at_check} requests"
    );
    let oks_at_kill = oks.load(Ordering::Relaxed);
    server.kill9();
    let first_stderr = server.stderr_text();

    let logs = client_logs(clients).await;
    let ok_requests: usize = logs.iter().map(|l| l.ok.len()).sum();
    let sent_requests: usize = logs.iter().map(|l| l.sent.len()).sum();
    let mut ended_by: HashMap<String, usize> = HashMap::new();
    for l in &logs {
        *ended_by.entry(l.ended_by.clone()).or_default() += 1;
    }
    let summary = format!(
        "{sent_requests} requests sent, {ok_requests} got 200 ({oks_at_kill} before the kill), \
         clients ended by {ended_by:?}"
    );
    let other: Vec<_> = logs.iter().flat_map(|l| l.other.iter()).collect();
    assert!(
        other.is_empty(),
        "answers other than 200 ({summary}): {:?}; stderr:\n{first_stderr}",
        &other[..other.len().min(5)]
    );
    assert!(
        oks_at_kill >= KILL_AFTER_OKS,
        "the load did not get going ({summary}); stderr:\n{first_stderr}"
    );
    assert!(
        !segments(&dir.path().join("q")).is_empty(),
        "no segment in the queue directory after the kill"
    );

    // The jamming event was acknowledged too.
    let (mut sent, mut expected) = load_ids(&logs);
    sent.insert("big".to_owned());
    expected.insert("big".to_owned());

    let mut server = Server::start(dir.path(), &config(OUT, queue, ""));
    let out = dir.path().join("out.ndjson");
    let counts = wait_for_ids(&out, &expected, &server).await;
    let mut stray: Vec<_> = counts.keys().filter(|id| !sent.contains(*id)).collect();
    stray.sort();
    assert!(
        stray.is_empty(),
        "ids in the file that no request carried ({summary}): {:?}",
        &stray[..stray.len().min(10)]
    );
    wait_queue_empty(&server).await;
    let lines: usize = counts.values().sum();
    let status = server.terminate();
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{}",
        server.stderr_text()
    );
    eprintln!(
        "kill -9 under load: {summary}; {} acknowledged events, {lines} lines, {} distinct ids, \
         {} duplicated",
        expected.len(),
        counts.len(),
        duplicates(&counts).len()
    );
}

/// Kill -9 while the sink is delivering (a working file sink, small segments being rolled and
/// deleted as they are delivered), then a restart on the same file: every acknowledged event is
/// in the file (duplicates allowed), every line whole JSON (the file sink cuts a half-written
/// line). `kill -9` keeps the page cache, so this holds for every fsync policy.
async fn kill_9_while_delivering(fsync: &str) {
    let dir = tempfile::tempdir().unwrap();
    let queue = format!("path = '{{dir}}/q'\nfsync = \"{fsync}\"\nsegment_bytes = 16384");
    // A slow sink (one fsynced event per write) so that a backlog builds up behind it.
    let slow = "fsync = \"never\"\n[sinks.batch]\nlinger = \"0ms\"";
    let config = config(OUT, &queue, "").replace(
        slow,
        "fsync = \"always\"\n[sinks.batch]\nlinger = \"0ms\"\nmax_events = 1",
    );
    assert!(!config.contains(slow));
    let mut server = Server::start(dir.path(), &config);
    let (clients, oks) = start_load(server.hooks);
    let text = common::metrics_text(server.metrics).await;
    let backlog = common::metric(&text, "siemgate_queue_events", &[("sink", "out")]);
    let oks_at_kill = oks.load(Ordering::Relaxed);
    let delivered_at_kill = read_ids(&dir.path().join("out.ndjson"), false).len();
    server.kill9();
    let first_stderr = server.stderr_text();
    let logs = client_logs(clients).await;
    let other: Vec<_> = logs.iter().flat_map(|l| l.other.iter()).collect();
    assert!(
        other.is_empty(),
        "fsync {fsync}: answers other than 200: {:?}; stderr:\n{first_stderr}",
        &other[..other.len().min(5)]
    );
    assert!(
        oks_at_kill >= KILL_AFTER_OKS,
        "fsync {fsync}: the load did not get going; stderr:\n{first_stderr}"
    );
    let (sent, expected) = load_ids(&logs);

    let server = Server::start(dir.path(), &config);
    let counts = wait_for_ids(&dir.path().join("out.ndjson"), &expected, &server).await;
    let mut stray: Vec<_> = counts.keys().filter(|id| !sent.contains(*id)).collect();
    stray.sort();
    assert!(
        stray.is_empty(),
        "fsync {fsync}: ids in the file that no request carried: {:?}",
        &stray[..stray.len().min(10)]
    );
    wait_queue_empty(&server).await;
    eprintln!(
        "kill -9 while delivering, fsync {fsync}: {} acknowledged events ({oks_at_kill} requests \
         at the kill, {delivered_at_kill} ids in the file then, queue gauge {backlog:?}), {} \
         distinct ids after restart, {} duplicated",
        expected.len(),
        counts.len(),
        duplicates(&counts).len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_delivering_fsync_always() {
    kill_9_while_delivering("always").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_delivering_fsync_interval() {
    kill_9_while_delivering("interval").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_delivering_fsync_never() {
    kill_9_while_delivering("never").await;
}

/// The sink delivers some events (the test reads them from a FIFO), then jams (the test stops
/// reading and a large event fills the pipe); kill -9 and a restart: everything accepted after
/// the jam arrives, so the committed position never passed an undelivered event; and what was
/// delivered and committed well before the kill is not delivered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_partial_delivery_keeps_exactly_the_undelivered() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let queue = "path = '{dir}/q'\nfsync = \"always\"";
    let mut server = Server::start(dir.path(), &config(FIFO_OUT, queue, ""));

    const DELIVERED: usize = 20;
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        let file = std::fs::File::open(&fifo).expect("open the FIFO for reading");
        for line in BufReader::new(file).lines().take(DELIVERED) {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
        // Stops reading here; the gateway's own read-write descriptor keeps the pipe open.
    });
    let first = ids("e", 0..DELIVERED);
    for id in &first {
        let reply = post(server.hooks, events_body(std::slice::from_ref(id))).await;
        assert_ok(&reply, 1, || server.stderr_text());
    }
    let mut read = Vec::new();
    for _ in 0..DELIVERED {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| {
                panic!(
                    "{} lines read from the FIFO, then {e}; stderr:\n{}",
                    read.len(),
                    server.stderr_text()
                )
            });
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        read.push(v["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(read, first);
    // Let the delivery be acknowledged and committed (the queue commits every 50 ms or so).
    let mut delivered = None;
    for _ in 0..50 {
        let text = common::metrics_text(server.metrics).await;
        delivered = common::metric(&text, "siemgate_events_delivered_total", &[("sink", "out")]);
        if delivered == Some(DELIVERED as f64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(delivered, Some(DELIVERED as f64));
    wait_queue_empty(&server).await;
    let queue_dir = dir.path().join("q");
    poll_until(
        "the delivered events committed on disk",
        DELIVERY_TIMEOUT,
        || {
            let done = committed_position(&queue_dir) >= DELIVERED as u64;
            async move { done }
        },
    )
    .await;

    // Jam: nobody reads any more, and this event is larger than the pipe.
    let reply = post(server.hooks, big_body("big")).await;
    assert_ok(&reply, 1, || server.stderr_text());
    let mut after = vec!["big".to_owned()];
    for id in ids("f", 0..10) {
        let reply = post(server.hooks, events_body(std::slice::from_ref(&id))).await;
        assert_ok(&reply, 1, || server.stderr_text());
        after.push(id);
    }
    server.kill9();

    let server = Server::start(dir.path(), &config(OUT, queue, ""));
    let expected: HashSet<String> = after.iter().cloned().collect();
    let counts = wait_for_ids(&dir.path().join("out.ndjson"), &expected, &server).await;
    let mut again: Vec<&String> = counts.keys().filter(|k| k.starts_with('e')).collect();
    again.sort();
    assert!(
        again.is_empty(),
        "events delivered and committed before the jam were delivered again: {again:?}"
    );
    assert_eq!(counts.len(), expected.len(), "{counts:?}");
    assert!(duplicates(&counts).is_empty(), "{counts:?}");
}

// ---------------------------------------------------------------------------------------------
// 2. A torn last record.

/// How the last record of the last segment is damaged after the kill.
#[derive(Debug, Clone, Copy)]
enum Tear {
    /// Cut in the middle of its payload (the brief's torn tail).
    MidPayload,
    /// Cut in the middle of its 8-byte header.
    MidHeader,
    /// Whole length, but a payload byte changed: the CRC no longer matches.
    BadCrc,
    /// Intact, followed by zero bytes (a file extended but never written).
    ZeroTail,
}

/// Ten one-event requests into a stuck sink's disk queue (`segment_bytes` as given), kill -9,
/// damage the end of the last segment as `tear` says, restart with a working sink: every
/// record before the damage is delivered once, the damaged one never, the bytes cut are
/// counted in `siemgate_queue_torn_bytes_total{sink="out"}` and logged, and the queue goes on.
async fn torn_tail_case(tear: Tear, segment_bytes: u64) {
    let dir = tempfile::tempdir().unwrap();
    make_afile(dir.path());
    let queue = format!("path = '{{dir}}/q'\nfsync = \"always\"\nsegment_bytes = {segment_bytes}");
    let mut server = Server::start(dir.path(), &config(FAILING_OUT, &queue, ""));
    let all = ids("t", 0..10);
    for id in &all {
        let reply = post(server.hooks, events_body(std::slice::from_ref(id))).await;
        assert_ok(&reply, 1, || server.stderr_text());
    }
    server.kill9();

    // The queue on disk: whole records in order, one per event, the payload an NDJSON line.
    let qdir = dir.path().join("q");
    let segs = segments(&qdir);
    assert!(!segs.is_empty(), "no segment in {}", qdir.display());
    let mut on_disk = Vec::new();
    for s in &segs {
        on_disk.extend(records(s).iter().map(|(_, p)| record_id(p)));
    }
    assert_eq!(on_disk, all, "records in {segs:?}");
    if segment_bytes < 2048 {
        assert!(segs.len() > 2, "expected several segments: {segs:?}");
    }

    let last = segs.last().unwrap();
    let recs = records(last);
    let (start, payload) = recs.last().expect("the last segment has records");
    let start = *start as u64;
    assert_eq!(record_id(payload), "t9");
    let old_len = std::fs::metadata(last).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(last).unwrap();
    // (bytes the recovery must cut, the segment's length after it, whether t9 survives)
    let (cut, kept_len, t9_kept) = match tear {
        Tear::MidPayload => {
            let len = start + 8 + payload.len() as u64 / 2;
            file.set_len(len).unwrap();
            (len - start, start, false)
        }
        Tear::MidHeader => {
            file.set_len(start + 5).unwrap();
            (5, start, false)
        }
        Tear::BadCrc => {
            use std::os::unix::fs::FileExt;
            let at = start + 8 + payload.len() as u64 / 2;
            let flipped = [payload[payload.len() / 2] ^ 0x01];
            file.write_all_at(&flipped, at).unwrap();
            (old_len - start, start, false)
        }
        Tear::ZeroTail => {
            file.set_len(old_len + 100).unwrap();
            (100, old_len, true)
        }
    };
    drop(file);

    let server = Server::start(dir.path(), &config(OUT, &queue, ""));
    if let Ok(m) = std::fs::metadata(last) {
        assert_eq!(
            m.len(),
            kept_len,
            "{tear:?}: the last segment after recovery (was {old_len} bytes, record t9 at \
             {start})"
        );
    }
    let out = dir.path().join("out.ndjson");
    let n = if t9_kept { 10 } else { 9 };
    let expected: HashSet<String> = all[..n].iter().cloned().collect();
    let counts = wait_for_ids(&out, &expected, &server).await;
    assert!(
        t9_kept || !counts.contains_key("t9"),
        "{tear:?}: the damaged event was delivered: {counts:?}"
    );
    assert!(
        duplicates(&counts).is_empty(),
        "{tear:?}: delivered more than once (nothing had been delivered before): {:?}",
        duplicates(&counts)
    );
    assert_eq!(counts.len(), n, "{tear:?}: {counts:?}");

    let text = common::metrics_text(server.metrics).await;
    let torn = common::metric(&text, "siemgate_queue_torn_bytes_total", &[("sink", "out")]);
    assert!(
        torn.is_some_and(|t| t > 0.0),
        "{tear:?}: siemgate_queue_torn_bytes_total{{sink=\"out\"}} = {torn:?}; metrics:\n{text}"
    );
    assert_eq!(
        torn,
        Some(cut as f64),
        "{tear:?}: torn bytes counted differ from the {cut} bytes cut (segment was {old_len} \
         bytes, last record at {start})"
    );
    let stderr = server.stderr_text();
    assert!(
        stderr.contains("torn"),
        "{tear:?}: the cut is not logged; stderr:\n{stderr}"
    );

    // The recovered queue still takes and delivers new events.
    let reply = post(server.hooks, events_body(&["t10".to_owned()])).await;
    assert_ok(&reply, 1, || server.stderr_text());
    let mut expected = expected;
    expected.insert("t10".to_owned());
    let counts = wait_for_ids(&out, &expected, &server).await;
    assert_eq!(counts.len(), n + 1, "{tear:?}: {counts:?}");
    assert!(duplicates(&counts).is_empty(), "{tear:?}: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_is_cut_and_counted_and_the_rest_delivered() {
    torn_tail_case(Tear::MidPayload, 67_108_864).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_in_the_last_of_several_segments() {
    torn_tail_case(Tear::MidPayload, 1024).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_header_is_cut_and_counted() {
    torn_tail_case(Tear::MidHeader, 67_108_864).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_record_with_a_bad_crc_is_cut_and_counted() {
    torn_tail_case(Tear::BadCrc, 67_108_864).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_filled_tail_is_cut_and_every_record_kept() {
    torn_tail_case(Tear::ZeroTail, 67_108_864).await;
}

// ---------------------------------------------------------------------------------------------
// 3. SIGTERM with a stuck sink, then restarts.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_left_at_sigterm_are_delivered_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    make_afile(dir.path());
    // Default queue location: <data_dir>/queues/<sink id>, data_dir "data" (relative to the
    // working directory, which is `dir`).
    let queue = "fsync = \"always\"";
    let mut server = Server::start(dir.path(), &config(FAILING_OUT, queue, ""));
    let mut all = Vec::new();
    for r in 0..20 {
        let batch = ids(&format!("s{r}-"), 0..2);
        let reply = post(server.hooks, events_body(&batch)).await;
        assert_ok(&reply, 2, || server.stderr_text());
        all.extend(batch);
    }
    let status = server.terminate();
    let stderr = server.stderr_text();
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{stderr}"
    );
    assert!(stderr.contains("stopped"), "stderr:\n{stderr}");
    let qdir = dir.path().join("data").join("queues").join("out");
    assert!(
        !segments(&qdir).is_empty(),
        "no segment in the default queue directory {}; stderr:\n{stderr}",
        qdir.display()
    );
    assert!(
        !dir.path().join("out.ndjson").exists(),
        "nothing can have been delivered yet"
    );

    // Second start, sink still stuck: the queue is loaded back (the gauge says so), takes more
    // events on top, and a second SIGTERM keeps both.
    let mut server = Server::start(dir.path(), &config(FAILING_OUT, queue, ""));
    let text = common::metrics_text(server.metrics).await;
    assert_eq!(
        common::metric(&text, "siemgate_queue_events", &[("sink", "out")]),
        Some(all.len() as f64),
        "queue gauge after loading the queue back; stderr:\n{}",
        server.stderr_text()
    );
    for r in 20..25 {
        let batch = ids(&format!("s{r}-"), 0..2);
        let reply = post(server.hooks, events_body(&batch)).await;
        assert_ok(&reply, 2, || server.stderr_text());
        all.extend(batch);
    }
    let status = server.terminate();
    assert!(
        status.success(),
        "second stuck run: exit status {status:?}; stderr:\n{}",
        server.stderr_text()
    );

    // Third start, working sink: everything arrives, once (nothing was delivered before).
    let mut server = Server::start(dir.path(), &config(OUT, queue, ""));
    let out = dir.path().join("out.ndjson");
    let expected: HashSet<String> = all.iter().cloned().collect();
    let counts = wait_for_ids(&out, &expected, &server).await;
    assert_eq!(
        counts.len(),
        expected.len(),
        "stray ids: {:?}",
        counts
            .keys()
            .filter(|k| !expected.contains(*k))
            .collect::<Vec<_>>()
    );
    assert!(
        duplicates(&counts).is_empty(),
        "delivered more than once: {:?}",
        duplicates(&counts)
    );
    wait_queue_empty(&server).await;
    let status = server.terminate();
    assert!(
        status.success(),
        "delivering run: exit status {status:?}; stderr:\n{}",
        server.stderr_text()
    );

    // Fourth start after a clean stop with everything delivered: nothing is delivered again.
    let before = std::fs::read_to_string(&out).unwrap();
    let mut server = Server::start(dir.path(), &config(OUT, queue, ""));
    let text = common::metrics_text(server.metrics).await;
    assert_eq!(
        common::metric(&text, "siemgate_queue_events", &[("sink", "out")]),
        Some(0.0),
        "{text}"
    );
    // A clean stop drains the queue: whatever the restart would deliver is delivered by then.
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    let after = std::fs::read_to_string(&out).unwrap();
    assert!(
        after == before,
        "a clean restart with an empty queue delivered {} more bytes; stderr:\n{}",
        after.len() as i64 - before.len() as i64,
        server.stderr_text()
    );
}

/// SIGTERM while the sink's write is blocked in the kernel (a FIFO nobody reads): the gateway
/// still stops after its grace period, and the next start delivers everything it had accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_blocked_sink_write_exits_and_delivers_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    mkfifo(&dir.path().join("fifo"));
    let queue = "path = '{dir}/q'\nfsync = \"always\"";
    let mut server = Server::start(dir.path(), &config(FIFO_OUT, queue, ""));
    let reply = post(server.hooks, big_body("big")).await;
    assert_ok(&reply, 1, || server.stderr_text());
    let mut all = vec!["big".to_owned()];
    for r in 0..10 {
        let batch = ids(&format!("f{r}-"), 0..2);
        let reply = post(server.hooks, events_body(&batch)).await;
        assert_ok(&reply, 2, || server.stderr_text());
        all.extend(batch);
    }
    server.signal("-TERM");
    let started = Instant::now();
    // Grace 1 s plus the gateway's own short waits, with room for a slow machine.
    let exit = server.proc.try_wait_exit(Duration::from_secs(15));
    let took = started.elapsed();
    if exit.is_none() {
        // Still check what the queue kept, then report the hang.
        server.kill9();
    }
    let stderr = server.stderr_text();

    let server = Server::start(dir.path(), &config(OUT, queue, ""));
    let expected: HashSet<String> = all.iter().cloned().collect();
    let counts = wait_for_ids(&dir.path().join("out.ndjson"), &expected, &server).await;
    assert_eq!(counts.len(), expected.len(), "{counts:?}");
    assert!(duplicates(&counts).is_empty(), "{counts:?}");
    let status = exit.unwrap_or_else(|| {
        panic!(
            "siemgate was still running {took:?} after SIGTERM (shutdown_grace 1s) with its \
             sink's write blocked; it was killed (the queue kept every event); stderr:\n{stderr}"
        )
    });
    assert!(
        status.success(),
        "exit status {status:?} after {took:?}; stderr:\n{stderr}"
    );
    eprintln!("SIGTERM with a blocked write: exited after {took:?}");
}

// ---------------------------------------------------------------------------------------------
// 4. An unwritable queue directory.

/// Starts the binary expecting it to refuse: it exits non-zero (bounded) without a ready line;
/// returns its stderr.
fn expect_refusal(dir: &Path, config: &str) -> String {
    let mut proc = Process::start(dir, config, LOG);
    let status = proc.wait_exit(READY_TIMEOUT);
    let stderr = proc.stderr_text();
    assert!(
        !status.success(),
        "siemgate exited with {status:?} though its queue directory is unwritable; stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("hooks listener ready"),
        "siemgate got ready though its queue directory is unwritable; stderr:\n{stderr}"
    );
    stderr
}

#[test]
fn unwritable_queue_path_refuses_to_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let afile = make_afile(dir.path());
    let queue = "path = '{dir}/afile/q'";
    let stderr = expect_refusal(dir.path(), &config(OUT, queue, ""));
    let qpath = afile.join("q");
    assert!(
        stderr.contains(qpath.to_str().unwrap()),
        "stderr does not name {}:\n{stderr}",
        qpath.display()
    );
    assert!(std::fs::metadata(&afile).unwrap().is_file());
}

#[test]
fn unwritable_data_dir_refuses_to_start_naming_the_queue_path() {
    let dir = tempfile::tempdir().unwrap();
    let afile = make_afile(dir.path());
    let server = "data_dir = '{dir}/afile/data'";
    let stderr = expect_refusal(dir.path(), &config(OUT, "", server));
    let qpath = afile.join("data").join("queues").join("out");
    assert!(
        stderr.contains(qpath.to_str().unwrap()),
        "stderr does not name {}:\n{stderr}",
        qpath.display()
    );
}

/// A write failure at run time: the queue directory is replaced by a regular file under the
/// running gateway, so the next segment cannot be created. Once a request needs it, the answer
/// is 503 (never a 2xx), and the gateway keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_write_failure_at_run_time_answers_503_never_2xx() {
    let dir = tempfile::tempdir().unwrap();
    make_afile(dir.path());
    let queue = "path = '{dir}/q'\nfsync = \"always\"\nsegment_bytes = 4096";
    let server = Server::start(dir.path(), &config(FAILING_OUT, queue, ""));
    for id in ids("w", 0..3) {
        let reply = post(server.hooks, events_body(std::slice::from_ref(&id))).await;
        assert_ok(&reply, 1, || server.stderr_text());
    }
    let qdir = dir.path().join("q");
    std::fs::remove_dir_all(&qdir).unwrap();
    std::fs::write(&qdir, "not a directory\n").unwrap();

    // 40 records of ~250 bytes need several 4 KiB segments.
    let mut answers = Vec::new();
    for id in ids("x", 0..40) {
        let reply = post(server.hooks, events_body(std::slice::from_ref(&id))).await;
        answers.push((id, reply.status));
    }
    let first_503 = answers.iter().position(|(_, s)| *s == 503);
    let stderr = server.stderr_text();
    assert!(
        answers.iter().all(|(_, s)| *s == 200 || *s == 503),
        "answers: {answers:?}; stderr:\n{stderr}"
    );
    let first_503 = first_503.unwrap_or_else(|| {
        panic!("no 503 though no segment can be created: {answers:?}; stderr:\n{stderr}")
    });
    let late_oks: Vec<_> = answers[first_503..]
        .iter()
        .filter(|(_, s)| *s != 503)
        .collect();
    assert!(
        late_oks.is_empty(),
        "2xx after the queue could no longer be written: {late_oks:?}; stderr:\n{stderr}"
    );
    let (status, _) = common::get_text(server.metrics, "/metrics").await;
    assert_eq!(status, http::StatusCode::OK, "the gateway still serves");
    eprintln!(
        "run-time write failure: {first_503} requests accepted into the unlinked segment, then 503"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. The queue bound.

/// The bound a queue bound test sets.
#[derive(Debug, Clone, Copy)]
enum Bound {
    Events(usize),
    Bytes(u64),
}

/// One-event requests into a stuck sink's bounded disk queue until it refuses: an unbroken run
/// of 200s, then only 503 `queue_full` with Retry-After; a request that does not fit is refused
/// whole. After kill -9 and a restart with a working sink exactly the accepted events arrive,
/// once each, and there is room again.
async fn bound_case(bound: Bound) {
    let dir = tempfile::tempdir().unwrap();
    make_afile(dir.path());
    let limit = match bound {
        Bound::Events(n) => format!("max_events = {n}"),
        Bound::Bytes(n) => format!("max_bytes = {n}"),
    };
    let queue = format!("path = '{{dir}}/q'\nfsync = \"always\"\n{limit}");
    let mut server = Server::start(dir.path(), &config(FAILING_OUT, &queue, ""));

    let mut accepted_ids = Vec::new();
    let mut refused = Vec::new();
    for i in 0..12 {
        let id = format!("b{i}");
        let reply = post(server.hooks, events_body(std::slice::from_ref(&id))).await;
        match reply.status {
            200 => {
                assert_ok(&reply, 1, || server.stderr_text());
                assert!(
                    refused.is_empty(),
                    "{bound:?}: {id} accepted after a refusal, though nothing drains: refused \
                     {refused:?}"
                );
                accepted_ids.push(id);
            }
            503 => {
                let ra = reply.retry_after.as_deref();
                assert!(
                    ra.is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s >= 1)),
                    "{bound:?}: 503 without a valid Retry-After: {reply:?}"
                );
                let v: serde_json::Value = serde_json::from_str(&reply.body)
                    .unwrap_or_else(|e| panic!("503 body not JSON ({e}): {reply:?}"));
                assert_eq!(v["error"], "queue_full", "{bound:?}: {reply:?}");
                refused.push(id);
            }
            _ => panic!(
                "{bound:?}: {id}: unexpected answer {reply:?}; stderr:\n{}",
                server.stderr_text()
            ),
        }
    }
    match bound {
        Bound::Events(n) => assert_eq!(
            accepted_ids,
            ids("b", 0..n),
            "max_events = {n}: refused {refused:?}"
        ),
        Bound::Bytes(n) => assert!(
            !accepted_ids.is_empty() && !refused.is_empty(),
            "max_bytes = {n}: accepted {accepted_ids:?}, refused {refused:?}"
        ),
    }
    let accepted_n = accepted_ids.len();
    // A two-event request does not fit either, and is refused whole.
    let reply = post(server.hooks, events_body(&ids("pair", 0..2))).await;
    assert_eq!(reply.status, 503, "{bound:?}: {reply:?}");
    let text = common::metrics_text(server.metrics).await;
    assert_eq!(
        common::metric(&text, "siemgate_queue_events", &[("sink", "out")]),
        Some(accepted_n as f64),
        "{bound:?}: {text}"
    );
    server.kill9();

    let server = Server::start(dir.path(), &config(OUT, &queue, ""));
    let out = dir.path().join("out.ndjson");
    let expected: HashSet<String> = accepted_ids.iter().cloned().collect();
    let counts = wait_for_ids(&out, &expected, &server).await;
    let mut got: Vec<(&String, &usize)> = counts.iter().collect();
    got.sort();
    assert!(
        counts.len() == accepted_n && counts.values().all(|&n| n == 1),
        "{bound:?}: expected exactly {accepted_ids:?} once each, got {got:?}"
    );
    if let Bound::Bytes(n) = bound {
        let bytes = std::fs::metadata(&out).unwrap().len();
        assert!(
            bytes <= n,
            "max_bytes = {n}, yet the accepted events are {bytes} bytes"
        );
    }
    wait_queue_empty(&server).await;

    // Room again once delivered.
    let reply = post(server.hooks, events_body(&["b12".to_owned()])).await;
    assert_ok(&reply, 1, || server.stderr_text());
    let mut expected = expected;
    expected.insert("b12".to_owned());
    let counts = wait_for_ids(&out, &expected, &server).await;
    assert_eq!(counts.len(), accepted_n + 1, "{bound:?}: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_queue_refuses_with_503_and_keeps_exactly_what_it_accepted() {
    bound_case(Bound::Events(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_queue_byte_bound_refuses_with_503_and_keeps_exactly_what_it_accepted() {
    bound_case(Bound::Bytes(1500)).await;
}

// ---------------------------------------------------------------------------------------------
// 6. A backlog far larger than the memory window.

const HEC_TOKEN: &str = "0f6c1f0e-3c1d-4b61-9a8e-7d2b5c4a3e10";
/// The queue's memory window in the backlog test; the backlog is many times this.
const WINDOW_BYTES: u64 = 64 * 1024;

/// Like [`config`], with a HEC sink `out` at `url` instead of the file sink.
fn hec_config(url: &str, queue: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
plaintext = true
shutdown_grace = "1s"
[metrics]
listen = "127.0.0.1:0"

[[sinks]]
id = "out"
type = "splunk_hec"
url = "{url}"
token = "{HEC_TOKEN}"
connect_timeout = "1s"
request_timeout = "5s"
[sinks.batch]
linger = "0ms"
[sinks.queue]
type = "disk"
{queue}

[[sources]]
id = "{SOURCE}"
vendor = "generic"
sinks = ["out"]
auth = {{ scheme = "token", prefix = "Bearer ", secret = "{TOKEN}" }}
"#
    )
}

/// A JSON array with one event of about 400 bytes per id.
fn padded_body(ids: &[String]) -> String {
    let events: Vec<String> = ids
        .iter()
        .map(|id| {
            format!(
                r#"{{"id":"{id}","severity":"low","pad":"{}"}}"#,
                "p".repeat(300)
            )
        })
        .collect();
    format!("[{}]", events.join(","))
}

/// POSTs events `prefix{range}` as requests of 20, each expected to be accepted.
async fn post_padded(server: &Server, prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    let all = ids(prefix, range);
    for chunk in all.chunks(20) {
        let reply = post(server.hooks, padded_body(chunk)).await;
        assert_ok(&reply, chunk.len(), || server.stderr_text());
    }
    all
}

async fn queue_metric(server: &Server, name: &str) -> f64 {
    let text = common::metrics_text(server.metrics).await;
    common::metric(&text, name, &[("sink", "out")])
        .unwrap_or_else(|| panic!("no {name}{{sink=\"out\"}} in:\n{text}"))
}

/// The collector is down (nothing listens on its port) while a backlog of many times the
/// memory window builds up, across a restart (recovery reads back only the window); then it
/// comes up and gets every accepted event, once, in order, and the queue empties.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_larger_than_the_memory_window_reaches_a_collector_that_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let addr = hec::free_addr();
    let url = format!("http://{addr}");
    let queue = format!(
        "path = '{{dir}}/q'\nfsync = \"always\"\nsegment_bytes = 262144\n\
         memory_bytes = {WINDOW_BYTES}\nmax_events = 1000000\nmax_bytes = 1073741824"
    );
    let mut server = Server::start(dir.path(), &hec_config(&url, &queue));
    let mut all = post_padded(&server, "w", 0..1200).await;
    let bytes = queue_metric(&server, "siemgate_queue_bytes").await;
    assert_eq!(
        queue_metric(&server, "siemgate_queue_events").await,
        1200.0,
        "the whole backlog counts"
    );
    assert!(
        bytes > 5.0 * WINDOW_BYTES as f64,
        "backlog of {bytes} bytes, window {WINDOW_BYTES}"
    );
    let status = server.terminate();
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{}",
        server.stderr_text()
    );

    // Restart, collector still down: the backlog is counted whole, more is accepted on top.
    let mut server = Server::start(dir.path(), &hec_config(&url, &queue));
    assert_eq!(
        queue_metric(&server, "siemgate_queue_recovered_events_total").await,
        1200.0
    );
    assert_eq!(queue_metric(&server, "siemgate_queue_bytes").await, bytes);
    all.extend(post_padded(&server, "x", 0..1200).await);
    assert_eq!(
        queue_metric(&server, "siemgate_queue_events").await,
        all.len() as f64
    );
    assert!(queue_metric(&server, "siemgate_queue_oldest_event_age_seconds").await > 0.0);

    // The collector comes up on the port the sink has been retrying.
    let collector = hec::HecServer::start_on(addr, HEC_TOKEN).await;
    let started = Instant::now();
    while collector.indexed_count() < all.len() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} of {} events indexed after 60 s; stderr:\n{}",
            collector.indexed_count(),
            all.len(),
            server.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Everything delivered and committed: nothing is left to index again.
    wait_queue_empty(&server).await;
    let indexed = collector.indexed_ids();
    assert!(
        indexed == all,
        "indexed {} events, expected {} once each in order; first difference at {:?}",
        indexed.len(),
        all.len(),
        indexed.iter().zip(&all).position(|(a, b)| a != b)
    );
    collector.assert_no_problems();
    wait_queue_empty(&server).await;
    assert_eq!(queue_metric(&server, "siemgate_queue_bytes").await, 0.0);
    let status = server.terminate();
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{}",
        server.stderr_text()
    );
}
