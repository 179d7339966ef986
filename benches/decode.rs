//! Decode + normalize + encode throughput of the generic decoder on Prisma-like alerts, next to
//! a `serde_json::Value` baseline (parse into a tree, re-serialize) measured in the same run.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use siemgate::normalize::Timestamp;
use siemgate::sinks::{Encoder, Ndjson};
use siemgate::vendors::{Context, Vendor};

fn batch(n: usize) -> String {
    let one = include_str!("../fixtures/load/prisma-alert-single.json");
    let obj = one.trim().trim_start_matches('[').trim_end_matches(']');
    let items: Vec<String> = (0..n)
        .map(|i| obj.replace("P-51307", &format!("P-{i}")))
        .collect();
    format!("[{}]", items.join(","))
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("generic_decode_encode");
    for n in [1usize, 30] {
        let body = batch(n);
        group.throughput(Throughput::Bytes(body.len() as u64));
        let ctx = Context {
            source: "bench",
            received_at: Timestamp(1_700_000_000_000),
        };
        let mut out = BytesMut::with_capacity(body.len() * 3);
        group.bench_with_input(BenchmarkId::new("siemgate", n), &body, |b, body| {
            b.iter(|| {
                out.clear();
                Vendor::Generic
                    .decode(body, &ctx, |e| {
                        let _ = Ndjson.encode(&e, &mut out);
                    })
                    .ok()
            })
        });
        let mut out = Vec::with_capacity(body.len() * 3);
        group.bench_with_input(
            BenchmarkId::new("serde_json_value_baseline", n),
            &body,
            |b, body| {
                b.iter(|| {
                    out.clear();
                    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
                    if let serde_json::Value::Array(items) = v {
                        for item in items {
                            let _ = serde_json::to_writer(&mut out, &item);
                            out.push(b'\n');
                        }
                    }
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
