//! Encoder throughput, events per second, for every sink wire format on decoded fixture
//! events: NDJSON (the file sink; the baseline the others are compared with in the same run),
//! the Splunk HEC envelope, syslog RFC 5424 with LEEF, CEF and JSON bodies (octet-counted),
//! RFC 3164 with LEEF over UDP, an HTTP body template, and OCSF (`encoding = "ocsf"`: the file
//! sink's OCSF object per line and the HEC envelope around it; the Prisma alert is a Compliance
//! Finding, so it includes reading `complianceMetadata` from `raw`).
//!
//! `cargo bench --bench encode`

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use siemgate::normalize::{Event, Timestamp};
use siemgate::sinks::{Encoder, Encoding};
use siemgate::vendors::{Context, Vendor};

/// One sink of each format; the encoders are built from it the way the gateway builds them.
const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
plaintext = true
[[sinks]]
id = "ndjson"
type = "file"
path = "target/bench-unused.ndjson"
[[sinks]]
id = "hec"
type = "splunk_hec"
url = "http://127.0.0.1:8088"
token = "t"
host = "gw-01"
index = "security"
[[sinks]]
id = "leef"
type = "syslog"
address = "127.0.0.1:514"
transport = "tcp"
hostname = "gw-01"
format = "leef"
[[sinks]]
id = "cef"
type = "syslog"
address = "127.0.0.1:514"
transport = "tcp"
hostname = "gw-01"
format = "cef"
[[sinks]]
id = "syslog-json"
type = "syslog"
address = "127.0.0.1:514"
transport = "tcp"
hostname = "gw-01"
format = "json"
[[sinks]]
id = "leef-3164-udp"
type = "syslog"
address = "127.0.0.1:514"
transport = "udp"
header = "rfc3164"
hostname = "gw-01"
format = "leef"
max_message_bytes = 1024
[[sinks]]
id = "http-template"
type = "http"
url = "http://127.0.0.1:9000/in"
body = "template"
template = '{"text":"{{title}} on {{resource.id}}","severity":"{{severity}}","id":"{{id}}"}'
[[sinks]]
id = "ocsf-ndjson"
type = "file"
path = "target/bench-unused-ocsf.ndjson"
encoding = "ocsf"
[[sinks]]
id = "ocsf-hec"
type = "splunk_hec"
url = "http://127.0.0.1:8088"
token = "t"
host = "gw-01"
encoding = "ocsf"
[[sources]]
id = "bench"
vendor = "generic"
sinks = ["ndjson", "hec", "leef", "cef", "syslog-json", "leef-3164-udp", "http-template",
         "ocsf-ndjson", "ocsf-hec"]
auth = { scheme = "none", allow_unauthenticated = true }
"#;

fn encoders() -> Vec<(String, Encoding)> {
    let settings = siemgate::config::validate(
        siemgate::config::parse(CONFIG).unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let registry = siemgate::metrics::Registry::new();
    let source = &settings.sources[0];
    settings
        .sinks
        .iter()
        .map(|s| {
            let metrics = registry.sink(&s.id);
            (s.id.clone(), Encoding::for_target(s, source, &metrics))
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let cases = [
        (
            "prisma_cloud",
            Vendor::PrismaCloud,
            include_str!("../fixtures/vendors/prisma_cloud-webhook-alert-open.json"),
        ),
        (
            "wallarm",
            Vendor::Wallarm,
            include_str!("../fixtures/vendors/wallarm-new_hits-array-2023.json"),
        ),
    ];
    let encoders = encoders();
    let mut group = c.benchmark_group("encode");
    for (name, vendor, body) in cases {
        let ctx = Context {
            source: "bench",
            received_at: Timestamp(1_767_323_045_678),
        };
        let mut events: Vec<Event<'_>> = Vec::new();
        vendor
            .decode(body, &ctx, |e| events.push(e))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        group.throughput(Throughput::Elements(events.len() as u64));
        for (id, encoder) in &encoders {
            let mut out = BytesMut::with_capacity(64 * 1024);
            group.bench_with_input(BenchmarkId::new(id.as_str(), name), &events, |b, events| {
                b.iter(|| {
                    out.clear();
                    for e in events {
                        encoder
                            .encode(e, &mut out)
                            .unwrap_or_else(|e| panic!("{e}"));
                    }
                    out.len()
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
