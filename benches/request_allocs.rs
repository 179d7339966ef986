//! Heap allocations per request over the whole ingest path of one HMAC-signed Prisma Cloud alert
//! (`fixtures/load/prisma-alert-single.json`, the body `benches/load.sh` sends): header and body
//! verification, the UTF-8 and limits check, decode, normalize, NDJSON encode, and reserve +
//! commit into a file sink's memory queue — the work `server::ingest` does per request after
//! hyper hands it the body. A counting global allocator counts only on this thread, so the sink
//! worker (draining the queue into a temporary file on the runtime's thread) is not counted.
//!
//! `cargo bench --bench request_allocs` prints the allocations per request and which steps
//! make them; `REQUESTS=n` sets how many requests are counted (default 10000).

// A counting global allocator needs `unsafe`; it only forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue};
use sha2::Sha256;
use siemgate::control::Control;
use siemgate::dispatch::{self, DispatchError};
use siemgate::normalize::Timestamp;
use siemgate::vendors::json;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the thread whose allocations are counted.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count_one() {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwards to the system allocator with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with the same layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: forwards to the system allocator; `ptr`/`layout` come from it.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SECRET: &str = "load-test-secret";

/// Allocations made by `f` on this thread.
fn counted<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTED.with(|c| c.set(true));
    let out = f();
    COUNTED.with(|c| c.set(false));
    (out, ALLOCATIONS.load(Ordering::Relaxed) - before)
}

fn main() {
    let requests: u64 = std::env::var("REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
plaintext = true
data_dir = "{dir}"
[[sinks]]
id = "out"
type = "file"
path = "{dir}/out.ndjson"
[sinks.queue]
type = "memory"
max_events = 1000000
max_bytes = 1073741824
[[sources]]
id = "prisma"
vendor = "prisma_cloud"
sinks = ["out"]
[sources.auth]
scheme = "hmac_sha256"
header = "X-Signature"
prefix = "sha256="
secret = "{SECRET}"
"#,
        dir = dir.path().display()
    );
    let file = siemgate::config::parse(&config).unwrap_or_else(|e| panic!("config: {e}"));
    let settings =
        siemgate::config::validate(file).unwrap_or_else(|issues| panic!("config: {issues:?}"));

    let body = Bytes::from_static(include_bytes!("../fixtures/load/prisma-alert-single.json"));
    let mut mac =
        Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    mac.update(&body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-signature",
        HeaderValue::from_str(&signature).unwrap_or_else(|e| panic!("{e}")),
    );
    headers.insert("content-type", HeaderValue::from_static("application/json"));

    // The sink worker runs on the runtime's own thread; requests run on this one.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let registry = Arc::new(siemgate::metrics::Registry::new());
    let (control, routes) = rt
        .block_on(Control::start(settings, registry))
        .unwrap_or_else(|e| panic!("start: {e}"));
    let source = routes
        .load()
        .sources
        .get("prisma")
        .cloned()
        .unwrap_or_else(|| panic!("no source prisma"));

    // One request as `server::ingest` runs it once the body is read.
    let request = || -> Result<(), String> {
        let now = SystemTime::now();
        source
            .settings
            .verifier
            .verify_headers(&headers)
            .map_err(|e| e.to_string())?;
        source
            .settings
            .verifier
            .verify_body(&headers, &body, now)
            .map_err(|e| e.to_string())?;
        // The decoder checks the body's limits (`Vendor::decode_until`).
        let text = json::utf8(&body).map_err(|e| e.to_string())?;
        let received_at = Timestamp::now();
        match dispatch::dispatch(&source, text, received_at, 1000) {
            Ok(d) => {
                drop(d);
                Ok(())
            }
            Err(DispatchError::QueueFull { .. }) => Err("queue full".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    };

    // Warm up (first-use allocations of metric handles and buffers), then count.
    for _ in 0..100 {
        request().unwrap_or_else(|e| panic!("request: {e}"));
    }
    let mut total = 0;
    for _ in 0..requests {
        let (result, n) = counted(request);
        result.unwrap_or_else(|e| panic!("request: {e}"));
        total += n;
    }
    // Where they come from: each step alone, once more.
    let ((), auth) = counted(|| {
        let _ = source
            .settings
            .verifier
            .verify_body(&headers, &body, SystemTime::now());
    });
    let ((), decode) = counted(|| {
        let text = json::utf8(&body).unwrap_or_default();
        let ctx = siemgate::vendors::Context {
            source: "prisma",
            received_at: Timestamp::now(),
        };
        let _ = source
            .settings
            .vendor
            .decode(text, &ctx, |e| drop(std::hint::black_box(e)));
    });
    println!(
        "prisma alert ({} bytes, HMAC-signed, memory queue, file sink): {:.2} allocations per request over {requests} requests",
        body.len(),
        total as f64 / requests as f64
    );
    println!(
        "  of which: auth {auth}, decode + normalize {decode}, the rest encode + reserve + commit"
    );
    rt.block_on(control.shutdown(
        tokio::time::Instant::now() + Duration::from_secs(2),
        Duration::from_secs(1),
    ));
}
