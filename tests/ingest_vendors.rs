//! Every vendor end to end over plaintext HTTP/1.1 on 127.0.0.1: one gateway with one source per
//! vendor (`prisma_cloud`, `wallarm`, `coralogix`, `immuta`, `generic`, each with token auth on
//! its default header) plus two filtered sources, and one file sink per source.
//!
//! * Golden tests: every fixture in `fixtures/vendors/` (except the malformed NDJSON) is POSTed to
//!   its vendor's source (the vendor is the file name up to the first `-`), one at a time, and the
//!   records it produced are compared with `fixtures/expected/<fixture stem>.expected.ndjson`.
//!   Immuta and generic have no published fixture; two small inline bodies (`inline-*`) stand in.
//!   Only what varies per run is masked: `received_at` always, and `time` only when
//!   `normalization_warnings` says "time: missing, received_at used"; both become
//!   `"<received_at>"`. Each expected line is one sink record (one NDJSON line) after masking.
//! * The malformed Wallarm NDJSON fixture gets 400 `malformed_json` with a byte offset and writes
//!   nothing; batches of 1,000 Prisma alerts and 1,000 Wallarm hits are accepted whole; source
//!   filters forward only matching events and count the rest in the receipt and in
//!   `siemgate_events_filtered_total`.
//! * Every record of every sink has a `raw` equal (as JSON) to the element it came from, and no
//!   sink file contains a source's secret.
//!
//! To (re)generate the expected files after an intended change, run
//! `SIEMGATE_BLESS=1 cargo test --test ingest_vendors`, then review the diff of
//! `fixtures/expected/` line by line before committing it.
//!
//! A pretty-printed vendor body still gives one NDJSON line per event: the line breaks between
//! its tokens become spaces (`pretty_printed_raw_stays_on_one_line`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use http::StatusCode;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// One configured source: id, vendor, token header and its value (prefix + secret), filter.
struct Src {
    id: &'static str,
    vendor: &'static str,
    /// The header the vendor's `token` source reads by default (nothing set in the config).
    header: &'static str,
    prefix: &'static str,
    secret: &'static str,
    filter: &'static str,
}

const SOURCES: &[Src] = &[
    Src {
        id: "prisma_cloud",
        vendor: "prisma_cloud",
        header: "X-Redlock-Auth",
        prefix: "",
        secret: "prisma-tok-3f9c1a77",
        filter: "",
    },
    Src {
        id: "wallarm",
        vendor: "wallarm",
        header: "X-Auth-Token",
        prefix: "",
        secret: "wallarm-tok-8d2e4b19",
        filter: "",
    },
    Src {
        id: "coralogix",
        vendor: "coralogix",
        header: "x-api-key",
        prefix: "",
        secret: "coralogix-tok-51c0ee02",
        filter: "",
    },
    Src {
        id: "immuta",
        vendor: "immuta",
        header: "Authorization",
        prefix: "Bearer ",
        secret: "immuta-tok-a4d93b6c",
        filter: "",
    },
    Src {
        id: "generic",
        vendor: "generic",
        header: "Authorization",
        prefix: "Bearer ",
        secret: "generic-tok-07be5d31",
        filter: "",
    },
    Src {
        id: "prisma_high",
        vendor: "prisma_cloud",
        header: "X-Redlock-Auth",
        prefix: "",
        secret: "prisma-high-tok-c2f81e90",
        filter: r#"{ min_severity = "high" }"#,
    },
    Src {
        id: "wallarm_attacks",
        vendor: "wallarm",
        header: "X-Auth-Token",
        prefix: "",
        secret: "wallarm-attacks-tok-6b7da245",
        filter: r#"{ kinds = ["attack"] }"#,
    },
];

fn src(id: &str) -> &'static Src {
    SOURCES
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no source {id:?}"))
}

/// The gateway config: `PLAIN_SERVER`, optionally a raised body cap, and per source a file sink
/// `<id>_out` writing `{dir}/<id>.ndjson` with no linger.
fn config(max_body_bytes: Option<u64>) -> String {
    let mut c = PLAIN_SERVER.to_owned();
    if let Some(n) = max_body_bytes {
        c += &format!("[server.limits]\nmax_body_bytes = {n}\n");
    }
    for s in SOURCES {
        c += &format!(
            r#"
[[sinks]]
id = "{id}_out"
type = "file"
path = "{{dir}}/{id}.ndjson"
fsync = "never"
[sinks.batch]
linger = "0ms"
"#,
            id = s.id
        );
    }
    for s in SOURCES {
        c += &format!(
            r#"
[[sources]]
id = "{id}"
vendor = "{vendor}"
sinks = ["{id}_out"]
auth = {{ scheme = "token", prefix = "{prefix}", secret = "{secret}" }}
"#,
            id = s.id,
            vendor = s.vendor,
            prefix = s.prefix,
            secret = s.secret
        );
        if !s.filter.is_empty() {
            c += &format!("filter = {}\n", s.filter);
        }
    }
    c
}

fn sink_path(gw: &TestGateway, s: &Src) -> PathBuf {
    gw.dir.path().join(format!("{}.ndjson", s.id))
}

async fn send_to(gw: &TestGateway, s: &Src, body: impl Into<bytes::Bytes>) -> Answer {
    let value = format!("{}{}", s.prefix, s.secret);
    let addr = gw.addr();
    send(addr, post(addr, s.id, &[(s.header, value.as_str())], body)).await
}

/// The complete records of a sink file, read with a JSON stream reader, which stops cleanly at a
/// record still being written.
fn records_so_far(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    serde_json::Deserializer::from_str(&text)
        .into_iter::<&RawValue>()
        .map_while(Result::ok)
        .map(|r| r.get().to_owned())
        .collect()
}

/// Every record of a sink file, which must be whole records each followed by a newline.
fn records(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{}: unterminated last record",
        path.display()
    );
    serde_json::Deserializer::from_str(&text)
        .into_iter::<&RawValue>()
        .map(|r| {
            let r = r.unwrap_or_else(|e| panic!("{}: not NDJSON: {e}", path.display()));
            assert!(r.get().starts_with('{'), "not an object: {}", r.get());
            r.get().to_owned()
        })
        .collect()
}

/// Waits (bounded) until the sink holds `n` records, then checks it holds exactly `n`.
async fn wait_records(path: &Path, n: usize) -> Vec<String> {
    eventually(&format!("{n} records in {}", path.display()), || {
        records_so_far(path).len() >= n
    })
    .await;
    let all = records(path);
    assert_eq!(
        all.len(),
        n,
        "{}: more records than expected",
        path.display()
    );
    all
}

/// The objects a body sends, in order: the elements of an array, the lines of NDJSON, or the
/// object itself.
fn originals(body: &str) -> Vec<Value> {
    let values: Vec<Value> = serde_json::Deserializer::from_str(body)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect();
    match values.as_slice() {
        [Value::Array(elements)] => elements.clone(),
        _ => values,
    }
}

/// The objects of `body` as a sink must hold them in `raw`: as sent, but for the credential
/// fields the vendor's decoder redacts by default (README, Vendors).
fn redacted_originals(vendor: &str, body: &str) -> Vec<Value> {
    let mut objects = originals(body);
    if vendor == "coralogix" {
        for o in &mut objects {
            if let Some(key) = o.get_mut("privateKey") {
                *key = json!("[redacted]");
            }
        }
    }
    objects
}

/// Requirement: `raw` of each record equals, as JSON, the object it came from, in order.
fn assert_raws(what: &str, records: &[String], sent: &[Value]) {
    assert_eq!(records.len(), sent.len(), "{what}: record count");
    for (i, (r, original)) in records.iter().zip(sent).enumerate() {
        assert_eq!(
            &parse_record(r)["raw"],
            original,
            "{what}: raw of record {i}"
        );
    }
}

/// Requirement: no sink file contains any source's secret (and so no auth header value).
fn assert_no_secrets(gw: &TestGateway) {
    let mut files = 0;
    for entry in std::fs::read_dir(gw.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for s in SOURCES {
            assert!(
                !text.contains(s.secret),
                "{} contains the secret of {}",
                path.display(),
                s.id
            );
        }
        // The Send-Your-Data key in the Coralogix send-log fixture's body.
        assert!(
            !text.contains("cxtp_7f3Kq9ZrXw2mB8vLp4NsT6yHd1"),
            "{} contains a credential from a body",
            path.display()
        );
        files += 1;
    }
    assert!(files > 0, "no sink file was written");
}

fn bless() -> bool {
    std::env::var("SIEMGATE_BLESS").is_ok_and(|v| v == "1")
}

/// A golden case: a name (the expected file's stem), the source it is sent to, and the body.
struct Case {
    name: String,
    source: &'static Src,
    body: String,
}

/// Every fixture in `fixtures/vendors/` but the malformed one, sorted by name, plus the inline
/// bodies for the vendors without a published fixture.
fn cases() -> Vec<Case> {
    let names = vendor_fixtures();
    let mut cases: Vec<Case> = names
        .iter()
        .map(|file| {
            let vendor = file.split('-').next().unwrap();
            let source = SOURCES
                .iter()
                .find(|s| s.id == vendor)
                .unwrap_or_else(|| panic!("{file}: no source for vendor {vendor:?}"));
            let stem = file.rsplit_once('.').map_or(file.as_str(), |(s, _)| s);
            Case {
                name: stem.to_owned(),
                source,
                body: std::fs::read_to_string(repo().join("fixtures/vendors").join(file)).unwrap(),
            }
        })
        .collect();
    // Immuta publishes no payload sample (README): an invented body exercising each id, title
    // and time spelling the decoder reads, and an object with none of them.
    cases.push(Case {
        name: "inline-immuta-notifications".to_owned(),
        source: src("immuta"),
        body: r#"[{"id":"n-1","type":"policy.updated","message":"Policy Mask PII was updated","timestamp":"2026-01-20T10:00:00+02:00"},{"uid":42,"notificationType":"apiKeyRevoked","description":"API key revoked","createdAt":1700000000000},{"eventId":"e-9","action":"subscription.approved","time":"2026-01-21T08:30:00.123Z","user":{"name":"ana"}},{"note":"no known field"}]"#.to_owned(),
    });
    cases.push(Case {
        name: "inline-generic-objects".to_owned(),
        source: src("generic"),
        body: r#"[{"id":"g-1","severity":"HIGH","title":"disk full"},{"id":7,"severity":"P1"},{"nested":{"k":"v"}},{"id":{"x":1},"severity":5}]"#.to_owned(),
    });
    let stems: BTreeSet<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(stems.len(), cases.len(), "two fixtures share a stem");
    cases
}

#[tokio::test]
async fn every_fixture_matches_its_expected_ndjson() {
    let gw = start(&config(None)).await;
    let expected_dir = repo().join("fixtures/expected");
    let cases = cases();
    // Records per source so far, and every object sent to each source, in order.
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    let mut sent: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    let mut mismatches = Vec::new();
    for case in &cases {
        let objects = redacted_originals(case.source.vendor, &case.body);
        let a = send_to(&gw, case.source, case.body.clone()).await;
        assert_eq!(a.status, StatusCode::OK, "{}: {:?}", case.name, a.body);
        assert_eq!(
            a.json(),
            json!({"accepted": objects.len()}),
            "{}",
            case.name
        );
        // One fixture at a time: wait for its records before sending the next.
        let before = count.entry(case.source.id).or_default();
        let all = wait_records(&sink_path(&gw, case.source), *before + objects.len()).await;
        let mine = &all[*before..];
        *before = all.len();
        for r in mine {
            let v = parse_record(r);
            assert_eq!(v["source"], case.source.id, "{}", case.name);
            assert_eq!(v["vendor"], case.source.vendor, "{}", case.name);
        }
        assert_raws(&case.name, mine, &objects);
        sent.entry(case.source.id).or_default().extend(objects);

        let got: String = mine.iter().map(|r| mask(r) + "\n").collect();
        let path = expected_dir.join(format!("{}.expected.ndjson", case.name));
        if bless() {
            std::fs::create_dir_all(&expected_dir).unwrap();
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run SIEMGATE_BLESS=1 cargo test --test ingest_vendors",
                path.display()
            )
        });
        if got != want {
            let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
            let mut msg = format!("{}: {} lines, expected {}\n", case.name, g.len(), w.len());
            for i in 0..g.len().max(w.len()) {
                if g.get(i) != w.get(i) {
                    msg += &format!(
                        "  line {}:\n    got:  {}\n    want: {}\n",
                        i + 1,
                        g.get(i).unwrap_or(&"<none>"),
                        w.get(i).unwrap_or(&"<none>")
                    );
                }
            }
            mismatches.push(msg);
        }
    }
    // No stale expected file.
    let names: BTreeSet<String> = cases
        .iter()
        .map(|c| format!("{}.expected.ndjson", c.name))
        .collect();
    for entry in std::fs::read_dir(&expected_dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(names.contains(&name), "stale expected file {name}");
    }
    assert!(
        mismatches.is_empty(),
        "output differs from fixtures/expected (if intended: SIEMGATE_BLESS=1):\n{}",
        mismatches.join("")
    );
    // Every vendor source got something, and every sink holds exactly what was sent to it.
    for s in SOURCES.iter().filter(|s| s.filter.is_empty()) {
        let objects = sent
            .get(s.id)
            .unwrap_or_else(|| panic!("nothing sent to {}", s.id));
        assert_raws(s.id, &records(&sink_path(&gw, s)), objects);
    }
    assert_no_secrets(&gw);
    gw.stop().await;
}

/// Wallarm's NDJSON example as published is one `}` short on each line: 400 with the offset of
/// the first line's last byte, and nothing reaches the sink.
#[tokio::test]
async fn malformed_wallarm_ndjson_is_refused_with_a_byte_offset() {
    let gw = start(&config(None)).await;
    let wallarm = src("wallarm");
    let body = fixture(MALFORMED_FIXTURE);
    let a = send_to(&gw, wallarm, body.clone()).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{:?}", a.body);
    let j = a.json();
    assert_eq!(j["error"], "malformed_json", "{j}");
    let detail = j["detail"].as_str().unwrap();
    let offset: usize = detail
        .split_once("at byte ")
        .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no byte offset in {detail:?}"));
    let first_line_end = body.find('\n').unwrap();
    assert_eq!(offset, first_line_end - 1, "{detail}");
    assert!(detail.contains("EOF while parsing an object"), "{detail}");

    // Barrier: a valid body sent afterwards is the only thing in the sink.
    let valid = std::fs::read_to_string(
        repo().join("fixtures/vendors/wallarm-new_hits-ndjson-2023.ndjson"),
    )
    .unwrap();
    let a = send_to(&gw, wallarm, valid.clone()).await;
    assert_eq!(a.json(), json!({"accepted": 2}));
    let all = wait_records(&sink_path(&gw, wallarm), 2).await;
    assert_raws("after the refusal", &all, &originals(&valid));
    let (_, text) = get_text(gw.metrics_addr(), "/metrics").await;
    let labels = [("source", "wallarm"), ("reason", "malformed_json")];
    assert_eq!(
        metric(&text, "siemgate_requests_rejected_total", &labels),
        Some(1.0),
        "{text}"
    );
    assert_no_secrets(&gw);
    gw.stop().await;
}

/// Sends a batch of 1,000 objects in one request and checks the receipt, the 1,000 records,
/// their ids, their raws and the secrets.
async fn batch_of_1000(gw: &TestGateway, s: &Src, batch: Vec<Value>, ids: BTreeSet<String>) {
    assert_eq!((batch.len(), ids.len()), (1000, 1000));
    let body = serde_json::to_string(&batch).unwrap();
    let a = send_to(gw, s, body).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.json(), json!({"accepted": 1000}));
    let path = sink_path(gw, s);
    let all = wait_records(&path, 1000).await;
    // Compact bodies: here one record is one line.
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 1000);
    let got: BTreeSet<String> = all
        .iter()
        .map(|r| parse_record(r)["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, ids, "1,000 distinct ids, the expected ones");
    assert_raws(s.id, &all, &batch);
    assert_no_secrets(gw);
}

/// A compact Prisma alert is about 1.9 KB, so 1,000 of them (about 1.9 MB) do not fit the
/// default 1 MiB cap: this gateway raises `[server.limits] max_body_bytes` to 3 MiB.
#[tokio::test]
async fn prisma_batch_of_1000_alerts_in_one_request() {
    const CAP: u64 = 3 << 20;
    let gw = start(&config(Some(CAP))).await;
    let alert = fixture_element("prisma_cloud-webhook-alert-open.json");
    let mut ids = BTreeSet::new();
    let batch: Vec<Value> = (0..1000)
        .map(|i| {
            let mut a = alert.clone();
            let id = format!("P-{}", 100_000 + i);
            a["alertId"] = json!(id);
            ids.insert(format!("{id}:open:NEW_ALERT:1700000100000"));
            a
        })
        .collect();
    let size = serde_json::to_string(&batch).unwrap().len() as u64;
    assert!(
        size > 1 << 20 && size < CAP,
        "body is {size} bytes: over the default cap, under the raised one"
    );
    batch_of_1000(&gw, src("prisma_cloud"), batch, ids).await;
    gw.stop().await;
}

/// A compact Wallarm hit notification is about 1 KB: 1,000 fit the default 1 MiB cap.
#[tokio::test]
async fn wallarm_batch_of_1000_hits_in_one_request() {
    let gw = start(&config(None)).await;
    let hit = fixture_element("wallarm-new_hits-array-2023.json");
    let index = hit["details"]["hit"]["id"][0].as_str().unwrap().to_owned();
    let mut ids = BTreeSet::new();
    let batch: Vec<Value> = (0..1000)
        .map(|i| {
            let mut h = hit.clone();
            let doc = format!("doc{i:05}");
            h["details"]["hit"]["id"] = json!([index, doc]);
            ids.insert(format!("{index}:{doc}"));
            h
        })
        .collect();
    let size = serde_json::to_string(&batch).unwrap().len();
    assert!(size < 1 << 20, "body is {size} bytes, over the default cap");
    batch_of_1000(&gw, src("wallarm"), batch, ids).await;
    gw.stop().await;
}

/// Polls `/metrics` (bounded) until `name{source}` equals `want`.
async fn metric_reaches(gw: &TestGateway, name: &str, source: &str, want: f64) {
    let mut text = String::new();
    for _ in 0..100 {
        text = get_text(gw.metrics_addr(), "/metrics").await.1;
        if metric(&text, name, &[("source", source)]) == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name}{{source={source:?}}} never reached {want}:\n{text}");
}

#[tokio::test]
async fn filters_forward_matching_events_and_count_the_rest() {
    let gw = start(&config(None)).await;

    // min_severity = high on Prisma: seven alerts, three at high or above, and "P1", an
    // unknown word: its severity is unknown, and an unknown severity passes every minimum.
    let high = src("prisma_high");
    let alert = fixture_element("prisma_cloud-webhook-alert-open.json");
    let severities = [
        "informational",
        "low",
        "medium",
        "high",
        "critical",
        "HIGH",
        "P1",
    ];
    let batch: Vec<Value> = severities
        .iter()
        .enumerate()
        .map(|(i, sev)| {
            let mut a = alert.clone();
            a["alertId"] = json!(format!("P-{}", 200 + i));
            a["severity"] = json!(sev);
            a
        })
        .collect();
    let a = send_to(&gw, high, serde_json::to_string(&batch).unwrap()).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.json(), json!({"accepted": 4, "filtered": 3}));
    let all = wait_records(&sink_path(&gw, high), 4).await;
    let ids: Vec<Value> = all.iter().map(|r| parse_record(r)["id"].clone()).collect();
    assert_eq!(
        ids,
        [
            json!("P-203:open:NEW_ALERT:1700000100000"),
            json!("P-204:open:NEW_ALERT:1700000100000"),
            json!("P-205:open:NEW_ALERT:1700000100000"),
            json!("P-206:open:NEW_ALERT:1700000100000")
        ]
    );
    assert_eq!(parse_record(&all[3])["severity"], "unknown");
    assert_raws(high.id, &all, &batch[3..7]);

    // kinds = ["attack"] on Wallarm: every Wallarm JSON fixture in one array; of these ten
    // notifications three are hits.
    let attacks = src("wallarm_attacks");
    let files = [
        "wallarm-create_user-flat-legacy-from-screenshot.json",
        "wallarm-hit-flat-legacy-2020.json",
        "wallarm-ip_blocked-trigger-array.json",
        "wallarm-new_hits-array-2023.json",
        "wallarm-security_issue-array-from-js-literal.json",
        "wallarm-test-vuln-array-2021-from-js-literal.json",
        "wallarm-test-vuln-flat-legacy-2020.json",
        "wallarm-vuln-array-2021-from-js-literal.json",
        "wallarm-vuln-flat-legacy-2020.json",
    ];
    let mixed: Vec<Value> = files
        .iter()
        .flat_map(|f| {
            originals(&std::fs::read_to_string(repo().join("fixtures/vendors").join(f)).unwrap())
        })
        .collect();
    assert_eq!(mixed.len(), 10);
    let a = send_to(&gw, attacks, serde_json::to_string(&mixed).unwrap()).await;
    assert_eq!(a.json(), json!({"accepted": 3, "filtered": 7}));
    // Nothing filtered: no "filtered" key.
    let ndjson = std::fs::read_to_string(
        repo().join("fixtures/vendors/wallarm-new_hits-ndjson-2023.ndjson"),
    )
    .unwrap();
    let a = send_to(&gw, attacks, ndjson.clone()).await;
    assert_eq!(a.json(), json!({"accepted": 2}));
    // Everything filtered: 200 with nothing accepted.
    let ip_blocked = std::fs::read_to_string(
        repo().join("fixtures/vendors/wallarm-ip_blocked-trigger-array.json"),
    )
    .unwrap();
    let a = send_to(&gw, attacks, ip_blocked).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json(), json!({"accepted": 0, "filtered": 1}));

    let all = wait_records(&sink_path(&gw, attacks), 5).await;
    for r in &all {
        assert_eq!(parse_record(r)["kind"], "attack", "{r}");
    }
    let mut forwarded: Vec<Value> = mixed
        .iter()
        .filter(|o| o.get("object_type") == Some(&json!("hit")) || o["details"]["hit"].is_object())
        .cloned()
        .collect();
    forwarded.extend(originals(&ndjson));
    assert_raws(attacks.id, &all, &forwarded);

    metric_reaches(&gw, "siemgate_events_filtered_total", "prisma_high", 3.0).await;
    metric_reaches(
        &gw,
        "siemgate_events_filtered_total",
        "wallarm_attacks",
        8.0,
    )
    .await;
    metric_reaches(&gw, "siemgate_events_received_total", "prisma_high", 7.0).await;
    metric_reaches(
        &gw,
        "siemgate_events_received_total",
        "wallarm_attacks",
        13.0,
    )
    .await;
    metric_reaches(&gw, "siemgate_events_filtered_total", "wallarm", 0.0).await;
    assert_no_secrets(&gw);
    gw.stop().await;
}

/// The pretty-printed Prisma fixture (one alert) is one line of the NDJSON file, so line-based
/// readers (a SIEM forwarder, the file sink's own torn-tail repair) see whole events.
#[tokio::test]
async fn pretty_printed_raw_stays_on_one_line() {
    let gw = start(&config(None)).await;
    let prisma = src("prisma_cloud");
    let body = std::fs::read_to_string(
        repo().join("fixtures/vendors/prisma_cloud-webhook-alert-open.json"),
    )
    .unwrap();
    assert_eq!(
        send_to(&gw, prisma, body.clone()).await.status,
        StatusCode::OK
    );
    let path = sink_path(&gw, prisma);
    wait_records(&path, 1).await;
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    let record: Value = serde_json::from_str(text.trim_end()).unwrap();
    let fixture: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(record["raw"], fixture[0]);
    gw.stop().await;
}

/// Credentials in bodies never reach a sink: Coralogix's `privateKey` is redacted by default,
/// and a source's `redact` pointers (RFC 6901, per alert object) redact more, in `raw` and in
/// any normalized field that carried the same text; an object with nothing to redact keeps its
/// bytes exactly as sent.
#[tokio::test]
async fn credentials_in_bodies_are_redacted_by_default_and_by_pointer() {
    let mut c = PLAIN_SERVER.to_owned();
    c += FILE_SINK;
    c += r#"[[sources]]
id = "cx"
vendor = "coralogix"
sinks = ["out"]
auth = { scheme = "token", secret = "cx-redact-tok-91aa" }
redact = ["/logEntries/0/text/alert_url"]
[[sources]]
id = "gen"
vendor = "generic"
sinks = ["out"]
auth = { scheme = "token", prefix = "Bearer ", secret = "gen-redact-tok-5c2e" }
redact = ["/auth/token", "/id"]
"#;
    let gw = start(&c).await;
    let body = std::fs::read_to_string(
        repo().join("fixtures/vendors/coralogix-sendlog-template-private-key.json"),
    )
    .unwrap();
    let a = send(
        gw.addr(),
        post(
            gw.addr(),
            "cx",
            &[("x-api-key", "cx-redact-tok-91aa")],
            body,
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let generic = r#"[{"id":"sk_live_51Hx","auth":{"token":"sk_live_51Hx","user":"ana"},
        "severity":"high"},{"name":"plain-1",  "title":"nothing secret"}]"#;
    let a = send(
        gw.addr(),
        post(
            gw.addr(),
            "gen",
            &[("Authorization", "Bearer gen-redact-tok-5c2e")],
            generic,
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);

    let out = gw.dir.path().join("out.ndjson");
    let lines = wait_records(&out, 3).await;
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(!text.contains("cxtp_7f3Kq9ZrXw2mB8vLp4NsT6yHd1"), "{text}");
    assert!(!text.contains("sk_live_51Hx"), "{text}");

    let cx = parse_record(&lines[0]);
    assert_eq!(cx["raw"]["privateKey"], "[redacted]");
    assert_eq!(
        cx["raw"]["logEntries"][0]["text"]["alert_url"],
        "[redacted]"
    );
    assert_eq!(cx["url"], "[redacted]", "the normalized copy goes too");
    assert_eq!(
        cx["raw"]["logEntries"][0]["text"]["alert_name"],
        "Admin login from new country"
    );
    assert_eq!(cx["title"], "Admin login from new country");
    assert_eq!(cx["severity"], "critical");
    assert!(
        cx["normalization_warnings"]
            .as_array()
            .unwrap()
            .contains(&json!("raw: credential field redacted")),
        "{cx}"
    );

    let g = parse_record(&lines[1]);
    assert_eq!(
        g["raw"]["auth"],
        json!({"token": "[redacted]", "user": "ana"})
    );
    assert_eq!(g["raw"]["id"], "[redacted]");
    // The id was the secret: it becomes the hash of the redacted object.
    let id = g["id"].as_str().unwrap();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "id is a hash: {id}"
    );
    // Nothing to redact: raw is the object byte for byte, and no warning about redaction.
    let plain = &lines[2];
    assert!(
        plain.contains(r#""raw":{"name":"plain-1",  "title":"nothing secret"}"#),
        "{plain}"
    );
    assert!(!plain.contains("redacted"), "{plain}");
    gw.stop().await;
}
