//! What the per-request metrics cost when the webhook listener's threads run requests at the
//! same time: each thread does, per request, what `server::ingest` and `dispatch` do to a
//! source's series (the 200 counter, events received and filtered, the latency histogram), on
//! siemgate's registry, where counters and bucketed histograms keep a cell per thread shard, and
//! on `metrics-exporter-prometheus`'s recorder with the same buckets, which keeps one atomic per
//! counter and a shared sample buffer per histogram (as siemgate's store did before). The
//! threads pass a series' cache line back and forth on every update in the second; not in the
//! first.
//!
//! `cargo bench --bench metrics_contention` prints, for one thread and for one per CPU (at least
//! two), the median nanoseconds per request of `ROUNDS` (default 7) rounds of `REQUESTS`
//! (default 2,000,000) requests per thread, alternating between the two recorders; it exits
//! non-zero if siemgate's registry did not count every request.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use metrics::{Counter, Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use siemgate::metrics::{sharded, Registry, HTTP_REQUEST_DURATION, LATENCY_BUCKETS};

static META: Metadata<'static> = Metadata::new("bench", Level::INFO, None);

/// The series one accepted request updates.
struct PerRequest {
    ok: Counter,
    received: Counter,
    filtered: Counter,
    duration: Histogram,
}

impl PerRequest {
    fn siemgate(registry: &Registry) -> PerRequest {
        let m = Arc::new(registry.source("bench"));
        let ok = {
            let m = m.clone();
            // `SourceMetrics::request` picks the code's counter from its table; a counter
            // handle that does the same, so both sides make the same calls.
            Counter::from_arc(Arc::new(ByCode(m)))
        };
        PerRequest {
            ok,
            received: m.events_received.clone(),
            filtered: m.events_filtered.clone(),
            duration: m.duration.clone(),
        }
    }

    fn exporter(r: &dyn Recorder) -> PerRequest {
        let key = |name: &'static str, code: Option<&str>| {
            let mut labels = vec![Label::new("source", "bench")];
            if let Some(c) = code {
                labels.push(Label::new("code", c.to_owned()));
            }
            Key::from_parts(name, labels)
        };
        PerRequest {
            ok: r.register_counter(&key("siemgate_http_requests_total", Some("200")), &META),
            received: r.register_counter(&key("siemgate_events_received_total", None), &META),
            filtered: r.register_counter(&key("siemgate_events_filtered_total", None), &META),
            duration: r.register_histogram(&key(HTTP_REQUEST_DURATION, None), &META),
        }
    }

    fn request(&self, i: u64) {
        self.ok.increment(1);
        self.received.increment(1);
        self.filtered.increment(0);
        // Latencies spread over the low buckets, as a healthy gateway's are.
        self.duration.record(0.0001 + (i % 64) as f64 * 0.00005);
    }
}

struct ByCode(Arc<siemgate::metrics::SourceMetrics>);

impl metrics::CounterFn for ByCode {
    fn increment(&self, _: u64) {
        self.0.request(200);
    }
    fn absolute(&self, _: u64) {}
}

/// Nanoseconds per request with `threads` threads doing `requests` each at once.
fn run(series: &Arc<PerRequest>, threads: usize, requests: u64) -> f64 {
    let start = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let series = series.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                // As the listener's thread `t` does.
                sharded::pin_thread(t);
                start.wait();
                for i in 0..requests {
                    series.request(std::hint::black_box(i));
                }
            })
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    for h in handles {
        let _ = h.join();
    }
    t0.elapsed().as_nanos() as f64 / requests as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    // `cargo bench` passes `--bench`; under `cargo test` the binary makes one short round, as
    // a check that it runs and counts every request.
    let benching = std::env::args().any(|a| a == "--bench");
    let rounds = env("ROUNDS", if benching { 7 } else { 1 }).max(1);
    let requests = env("REQUESTS", if benching { 2_000_000 } else { 20_000 }).max(1);
    let cpus = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2);

    let registry = Registry::new();
    let ours = Arc::new(PerRequest::siemgate(&registry));
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(HTTP_REQUEST_DURATION.to_owned()),
            &LATENCY_BUCKETS,
        )
        .map(|b| b.build_recorder());
    let Ok(recorder) = recorder else {
        eprintln!("the exporter refused the buckets");
        std::process::exit(1);
    };
    let theirs = Arc::new(PerRequest::exporter(&recorder));

    println!(
        "per-request metrics, ns per request (median of {rounds} rounds of {requests} per thread)"
    );
    for threads in [1, cpus] {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            a.push(run(&ours, threads, requests));
            b.push(run(&theirs, threads, requests));
        }
        let (a, b) = (median(a), median(b));
        println!(
            "{threads} thread(s): siemgate {a:.1} ns, one atomic per series {b:.1} ns ({:.2}x)",
            b / a
        );
    }
    // Every request was counted by both.
    let text = registry.render();
    let counted: u64 = text
        .lines()
        .find(|l| {
            l.starts_with("siemgate_http_requests_total{")
                && l.contains("source=\"bench\"")
                && l.contains("code=\"200\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let want = rounds * requests * (1 + cpus as u64);
    if counted != want {
        eprintln!("siemgate counted {counted} requests, {want} were made");
        std::process::exit(1);
    }
}
