//! Decode + normalize + encode (NDJSON) throughput per vendor on the fixtures, next to a
//! `serde_json::Value` baseline (parse the body into a tree, re-serialize each alert) measured
//! in the same run; and heap allocations per event, counted by a counting global allocator and
//! printed before the timings.
//!
//! `cargo bench --bench decode`
//!
//! The siemgate side runs what a request does with its body: the UTF-8 check, then decode
//! (which checks the body's limits: in its one-pass reader where that reads every object,
//! else with the separate pass `vendors::json::check_limits`), normalize and NDJSON encode; the
//! baseline parses the same bytes (checking UTF-8 as it goes) and writes each alert back.
//!
//! Instruction counts, repeatable on a busy machine: with `SIEMGATE_BENCH_CASE` set (a case
//! name such as `wallarm/security_issue`), the binary skips criterion, runs that case
//! `SIEMGATE_BENCH_ITERS` times (default 2000) through [`run_siemgate`] and then through
//! [`run_baseline`], and exits; under `valgrind --tool=callgrind` the inclusive cost of each
//! function divided by iterations x events is the instructions per event (`run_prepass`, the
//! UTF-8 check and the separate limits pass alone, is measured on its own):
//!
//! ```text
//! cargo bench --bench decode --no-run
//! SIEMGATE_BENCH_CASE=coralogix/alert valgrind --tool=callgrind \
//!   --callgrind-out-file=cg.out target/release/deps/decode-<hash>
//! callgrind_annotate --inclusive=yes cg.out | grep -E 'run_(siemgate|baseline|prepass) '
//! ```

// A counting global allocator needs `unsafe`; it only forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use siemgate::normalize::Timestamp;
use siemgate::sinks::{Encoder, Ndjson};
use siemgate::vendors::{json, Context, Vendor};

/// Counts allocations so the bench can report allocations per event.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwards to the system allocator with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with the same layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwards to the system allocator; `ptr`/`layout` come from it.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// `n` copies of the fixture's alert object in one JSON array, with distinct ids.
fn batch(alert: &str, id_field: &str, n: usize) -> String {
    let obj = alert
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim();
    let items: Vec<String> = (0..n)
        .map(|i| {
            obj.replacen(
                &format!("\"{id_field}\": \""),
                &format!("\"{id_field}\": \"{i}-"),
                1,
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// Immuta publishes no payload sample; a representative notification.
const IMMUTA: &str = r#"{"id":"n-1","type":"marketplace.data_product.access_requests.created","message":"Access requested to data product Sales","timestamp":"2026-01-20T10:00:00Z","dataProduct":{"id":"dp-7","name":"Sales"},"requester":{"email":"a@example.com"}}"#;

fn cases() -> Vec<(&'static str, Vendor, String)> {
    let prisma = include_str!("../fixtures/vendors/prisma_cloud-webhook-alert-open.json");
    let single = include_str!("../fixtures/load/prisma-alert-single.json");
    let wallarm_hits = include_str!("../fixtures/vendors/wallarm-new_hits-array-2023.json");
    let wallarm_issue =
        include_str!("../fixtures/vendors/wallarm-security_issue-array-from-js-literal.json");
    let wallarm_ndjson = include_str!("../fixtures/vendors/wallarm-new_hits-ndjson-2023.ndjson");
    let coralogix = include_str!("../fixtures/vendors/coralogix-alert-trigger-keep-mock.json");
    vec![
        ("generic/prisma-740B-x1", Vendor::Generic, single.to_owned()),
        // The body `benches/load.sh` sends, as its gateway reads it.
        (
            "prisma_cloud/740B-x1",
            Vendor::PrismaCloud,
            single.to_owned(),
        ),
        (
            "prisma_cloud/x1",
            Vendor::PrismaCloud,
            batch(prisma, "alertId", 1),
        ),
        (
            "prisma_cloud/x30",
            Vendor::PrismaCloud,
            batch(prisma, "alertId", 30),
        ),
        (
            "wallarm/new_hits-x2",
            Vendor::Wallarm,
            wallarm_hits.to_owned(),
        ),
        (
            "wallarm/new_hits-ndjson",
            Vendor::Wallarm,
            wallarm_ndjson.to_owned(),
        ),
        (
            "wallarm/security_issue",
            Vendor::Wallarm,
            wallarm_issue.to_owned(),
        ),
        ("coralogix/alert", Vendor::Coralogix, coralogix.to_owned()),
        ("immuta/notification", Vendor::Immuta, IMMUTA.to_owned()),
    ]
}

/// What a request does with its body (`dispatch`): the UTF-8 check, then decode (limits
/// included), normalize and encode each event.
fn decode_encode(vendor: Vendor, body: &str, ctx: &Context<'_>, out: &mut BytesMut) -> usize {
    out.clear();
    // The decoder checks the body's limits (`Vendor::decode_until`).
    let Ok(text) = json::utf8(body.as_bytes()) else {
        return 0;
    };
    vendor
        .decode(text, ctx, |e| {
            let _ = Ndjson.encode(&e, out);
        })
        .unwrap_or(0)
}

/// Parses the body bytes (UTF-8 checked as it goes, like the pre-pass above) into a tree and
/// writes each alert back out.
fn value_baseline(body: &str, out: &mut Vec<u8>) {
    out.clear();
    // A stream of values, for NDJSON bodies; an array or one object is a stream of one.
    for v in serde_json::Deserializer::from_slice(body.as_bytes()).into_iter() {
        let Ok(v) = v else {
            break;
        };
        let items = match v {
            serde_json::Value::Array(items) => items,
            one => vec![one],
        };
        for item in items {
            let _ = serde_json::to_writer(&mut *out, &item);
            out.push(b'\n');
        }
    }
}

/// `iters` passes of siemgate's decode + normalize + encode over `body` (callgrind mode).
#[inline(never)]
fn run_siemgate(vendor: Vendor, body: &str, ctx: &Context<'_>, out: &mut BytesMut, iters: u64) {
    for _ in 0..iters {
        std::hint::black_box(decode_encode(vendor, std::hint::black_box(body), ctx, out));
    }
}

/// `iters` passes of the `serde_json::Value` baseline over `body` (callgrind mode).
#[inline(never)]
fn run_baseline(body: &str, out: &mut Vec<u8>, iters: u64) {
    for _ in 0..iters {
        value_baseline(std::hint::black_box(body), out);
        std::hint::black_box(&out);
    }
}

/// `iters` passes of the UTF-8 check and the separate limits pass alone.
#[inline(never)]
fn run_prepass(body: &str, iters: u64) {
    for _ in 0..iters {
        let text = json::utf8(std::hint::black_box(body).as_bytes());
        let _ = std::hint::black_box(text.map(json::check_limits));
    }
}

/// The callgrind mode (see the file's doc): runs one case a fixed number of times and prints
/// what to divide the instruction counts by. Returns false when the mode is off.
fn fixed_iterations() -> bool {
    let Ok(name) = std::env::var("SIEMGATE_BENCH_CASE") else {
        return false;
    };
    let iters: u64 = std::env::var("SIEMGATE_BENCH_ITERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let ctx = Context {
        source: "bench",
        received_at: Timestamp(1_700_000_000_000),
    };
    let Some((name, vendor, body)) = cases().into_iter().find(|(n, _, _)| *n == name) else {
        eprintln!(
            "no case {name}; cases: {:?}",
            cases().iter().map(|c| c.0).collect::<Vec<_>>()
        );
        std::process::exit(2);
    };
    let mut out = BytesMut::with_capacity(body.len() * 3);
    let mut base_out = Vec::with_capacity(body.len() * 3);
    let events = decode_encode(vendor, &body, &ctx, &mut out);
    run_siemgate(vendor, &body, &ctx, &mut out, iters);
    run_baseline(&body, &mut base_out, iters);
    run_prepass(&body, iters);
    println!(
        "case {name}: {iters} iterations x {events} events, {} bytes per body",
        body.len()
    );
    true
}

fn bench(c: &mut Criterion) {
    if fixed_iterations() {
        std::process::exit(0);
    }
    let ctx = Context {
        source: "bench",
        received_at: Timestamp(1_700_000_000_000),
    };
    let mut group = c.benchmark_group("decode_normalize_encode");
    for (name, vendor, body) in cases() {
        let mut out = BytesMut::with_capacity(body.len() * 3);
        let mut base_out = Vec::with_capacity(body.len() * 3);
        // Warm the buffers, then count one pass of each.
        decode_encode(vendor, &body, &ctx, &mut out);
        value_baseline(&body, &mut base_out);
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let events = decode_encode(vendor, &body, &ctx, &mut out).max(1);
        let ours = ALLOCATIONS.load(Ordering::Relaxed) - before;
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        value_baseline(&body, &mut base_out);
        let theirs = ALLOCATIONS.load(Ordering::Relaxed) - before;
        eprintln!(
            "{name}: {events} events, {:.2} allocations/event (serde_json::Value baseline: {:.2})",
            ours as f64 / events as f64,
            theirs as f64 / events as f64
        );

        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("siemgate", name), &body, |b, body| {
            b.iter(|| decode_encode(vendor, body, &ctx, &mut out))
        });
        group.bench_with_input(
            BenchmarkId::new("value_baseline", name),
            &body,
            |b, body| b.iter(|| value_baseline(body, &mut base_out)),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
