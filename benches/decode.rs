//! Decode + normalize + encode (NDJSON) throughput per vendor on the fixtures, next to a
//! `serde_json::Value` baseline (parse the body into a tree, re-serialize each alert) measured
//! in the same run; and heap allocations per event, counted by a counting global allocator and
//! printed before the timings.
//!
//! `cargo bench --bench decode`

// A counting global allocator needs `unsafe`; it only forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use siemgate::normalize::Timestamp;
use siemgate::sinks::{Encoder, Ndjson};
use siemgate::vendors::{Context, Vendor};

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
    let coralogix = include_str!("../fixtures/vendors/coralogix-alert-trigger-keep-mock.json");
    vec![
        ("generic/prisma-740B-x1", Vendor::Generic, single.to_owned()),
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
            "wallarm/security_issue",
            Vendor::Wallarm,
            wallarm_issue.to_owned(),
        ),
        ("coralogix/alert", Vendor::Coralogix, coralogix.to_owned()),
        ("immuta/notification", Vendor::Immuta, IMMUTA.to_owned()),
    ]
}

fn decode_encode(vendor: Vendor, body: &str, ctx: &Context<'_>, out: &mut BytesMut) -> usize {
    out.clear();
    vendor
        .decode(body, ctx, |e| {
            let _ = Ndjson.encode(&e, out);
        })
        .unwrap_or(0)
}

fn value_baseline(body: &str, out: &mut Vec<u8>) {
    out.clear();
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let items = match v {
        serde_json::Value::Array(items) => items,
        one => vec![one],
    };
    for item in items {
        let _ = serde_json::to_writer(&mut *out, &item);
        out.push(b'\n');
    }
}

fn bench(c: &mut Criterion) {
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
