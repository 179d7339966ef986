//! The syslog sink (`type = "syslog"`) end to end: vendor payloads POSTed to `/hooks/<source>`
//! come out of the gateway's syslog sink into loopback receivers on 127.0.0.1
//! (`tests/common/syslog.rs`), which decode the framing and parse every message strictly.
//!
//! Every gateway here also has the file sink `out` on the same sources: its NDJSON line is the
//! normalized Event the syslog message must carry (the golden tests of `ingest_vendors` pin that
//! line to the vendor payload), and a few fields are also checked against the payload directly.
//!
//! * `tcp_octet_counting_rfc5424_leef`: N events -> N messages; PRI = facility*8 + severity;
//!   HOSTNAME / APP-NAME from the config; PROCID `-`; MSGID = kind; the `siemgate@32473`
//!   SD-ELEMENT; every LEEF header field and attribute, in order.
//! * `leef_special_characters`: `^ | = \`, CR, LF, tab and non-ASCII text, with `^` and with tab
//!   (`x09`) as the delimiter; SD-PARAM escaping of `"`, `\` and `]`.
//!   `leef_backslash_delimiter`: `\` is a delimiter the spec allows.
//! * `cef_over_tcp_with_lf_framing`: CEF header and extension escaping field by field; no raw
//!   CR/LF in any message.
//! * `json_over_tls_with_rfc3164_header`: TLS with `ca_file`; `<PRI>Mmm dd hh:mm:ss HOST APP: `;
//!   the body is byte for byte the file sink's line.
//! * `udp_one_complete_message_per_datagram`: each datagram is one message within
//!   `max_message_bytes`; `udp_never_over_max_message_bytes`: not even when the parts that
//!   are never cut (a JSON title, an event id in the SD-ELEMENT) are long.
//! * `truncation_leef_keeps_headers_and_utf8`, `truncation_cef_and_json`: a 5,000-byte
//!   multi-byte description with `max_message_bytes = 600`.
//! * `killed_tcp_receiver_loses_nothing`, `killed_tls_receiver_loses_nothing`: the receiver
//!   closes its listener and connections, more events are posted, a new receiver listens on the
//!   same port: every event arrives, none partial, `siemgate_sink_reconnects_total` grows.
//! * `untrusted_tls_certificate_holds_the_queue`: nothing delivered, `/readyz` 503 naming the
//!   sink, the queue kept; then a trusted receiver on the same port gets everything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/syslog.rs"]
mod syslog;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;
use serde_json::{json, Value};
use syslog::*;

const AUTH: (&str, &str) = ("authorization", "Bearer tok");
/// Bound for waits that may span a reconnect backoff.
const BOUND: Duration = Duration::from_secs(20);
/// The product version in LEEF/CEF headers: this crate's.
const VERSION: &str = env!("CARGO_PKG_VERSION");
const PRISMA: &str = include_str!("../fixtures/vendors/prisma_cloud-webhook-alert-open.json");
const WALLARM: &str = include_str!("../fixtures/vendors/wallarm-new_hits-array-2023.json");

/// Every special character the formats care about, and non-ASCII text (2, 3 and 4 bytes).
const NASTY: &str = "a^b|c=d\\e\rf\ng\th – Zugriff verweigert – ü 日本 😀";

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

/// The server, the file sink `out`, the given syslog sinks and four sources routed to `out`
/// and every syslog sink: `prisma` (prisma_cloud), `wallarm`, `plain` (generic, no mapping)
/// and `mapped` (generic with a mapping of every Event field).
fn config(sinks: &[String], ids: &[&str]) -> String {
    let list = toml_list(std::iter::once("out").chain(ids.iter().copied()));
    let auth = r#"auth = { scheme = "token", header = "Authorization", prefix = "Bearer ", secret = "tok" }"#;
    format!(
        r#"{PLAIN_SERVER}{FILE_SINK}{sinks}
[[sources]]
id = "prisma"
vendor = "prisma_cloud"
sinks = [{list}]
{auth}

[[sources]]
id = "wallarm"
vendor = "wallarm"
sinks = [{list}]
{auth}

[[sources]]
id = "plain"
vendor = "generic"
sinks = [{list}]
{auth}

[[sources]]
id = "mapped"
vendor = "generic"
sinks = [{list}]
{auth}
[sources.mapping]
id = "/id"
time = "/ts"
time_format = "epoch_millis"
severity = "/sev"
kind = {{ value = "attack" }}
status = "/status"
title = "/title"
description = "/desc"
url = "/url"
resource_id = "/res/id"
resource_name = "/res/name"
resource_type = "/res/type"
region = "/res/region"
account_id = "/res/account"
account_name = "/res/account_name"
cloud = "/res/cloud"
src_ip = "/net/ip"
src_port = "/net/port"
domain = "/net/host"
path = "/net/path"
method = "/net/method"
"#,
        sinks = sinks.concat()
    )
}

// ---------------------------------------------------------------------------------------------
// Payloads and requests
// ---------------------------------------------------------------------------------------------

/// Prisma webhook alerts made from the fixture: (alertId, severity word, alertTs, policyName).
fn prisma_alerts(specs: &[(&str, &str, i64, &str)]) -> String {
    let base: Value = serde_json::from_str(PRISMA).unwrap();
    let alerts: Vec<Value> = specs
        .iter()
        .map(|(id, sev, ts, policy)| {
            let mut a = base[0].clone();
            a["alertId"] = json!(id);
            a["severity"] = json!(sev);
            a["alertTs"] = json!(ts);
            a["policyName"] = json!(policy);
            a
        })
        .collect();
    serde_json::to_string(&alerts).unwrap()
}

/// Five Prisma alerts, one per severity.
fn five_prisma() -> String {
    prisma_alerts(&[
        ("P-101", "critical", 1_700_000_100_001, "policy one"),
        ("P-102", "high", 1_700_000_100_002, "policy two"),
        ("P-103", "medium", 1_700_000_100_003, "policy three"),
        ("P-104", "low", 1_700_000_100_004, "policy four"),
        ("P-105", "informational", 1_700_000_100_005, "policy five"),
    ])
}

/// A record for the `mapped` source with every field set.
fn mapped(id: &str, title: &str, desc: &str) -> Value {
    json!({
        "id": id,
        "ts": 1_767_323_045_678_i64,
        "sev": "critical",
        "status": "open",
        "title": title,
        "desc": desc,
        "url": "https://console.example.com/a?b=c&d=e|f^g",
        "res": {
            "id": "arn:aws:s3:::bucket^x", "name": "名前 | name", "type": "AWS::S3::Bucket",
            "region": "eu-central-1", "account": "123456789012", "account_name": "prod=main",
            "cloud": "aws"
        },
        "net": {
            "ip": "192.0.2.7", "port": 4444, "host": "shop.example.com",
            "path": "/a=b?c=d|e^f\\g", "method": "POST"
        }
    })
}

async fn post_ok(gw: &TestGateway, source: &str, body: String, n: usize) {
    let a = send(gw.addr(), post(gw.addr(), source, &[AUTH], body)).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.json()["accepted"], n, "{a:?}");
}

/// The file sink's events once there are `n`.
async fn file_events(gw: &TestGateway, n: usize) -> Vec<Value> {
    let out = gw.out();
    eventually(&format!("{n} events in the file sink"), || {
        read_lines(&out).len() >= n
    })
    .await;
    let lines = read_lines(&out);
    assert_eq!(lines.len(), n, "the file sink has exactly {n} events");
    lines
}

/// The file sink's lines as written (text).
fn file_line_texts(gw: &TestGateway) -> Vec<String> {
    std::fs::read_to_string(gw.out())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits until the sample `name{sink}` equals `want`.
async fn wait_metric(gw: &TestGateway, name: &str, sink: &str, want: f64) {
    gw.sink_metric_until(name, sink, |got| got == Some(want))
        .await;
}

/// Waits until `/readyz` answers `want` with a body containing `needle`; returns the body.
async fn wait_readyz(gw: &TestGateway, want: StatusCode, needle: &str) -> String {
    let deadline = Instant::now() + BOUND;
    loop {
        let (status, body) = gw.readyz().await;
        if status == want && body.contains(needle) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {BOUND:?} waiting for /readyz {want} with {needle:?}: last {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for a receiver count with [`BOUND`].
async fn wait_count(what: &str, count: impl Fn() -> usize, n: usize) {
    poll_until(&format!("{n} messages at {what}"), BOUND, || {
        let c = count();
        async move { c >= n }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Expectations from the normalized Event
// ---------------------------------------------------------------------------------------------

/// A non-empty string at `ptr`.
fn text<'a>(ev: &'a Value, ptr: &str) -> Option<&'a str> {
    ev.pointer(ptr)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn field<'a>(ev: &'a Value, ptr: &str) -> &'a str {
    text(ev, ptr).unwrap_or_else(|| panic!("event has no {ptr}: {ev}"))
}

fn syslog_severity(sev: &str) -> u8 {
    match sev {
        "critical" => 2,
        "high" => 3,
        "medium" => 4,
        // Notice, like low: a receiver keeping notice and above never drops it.
        "low" | "unknown" => 5,
        "informational" => 6,
        other => panic!("severity {other}"),
    }
}

/// The 0-10 number of a severity; `None` for `unknown`, which has none (LEEF then writes
/// `severity=unknown` instead of `sev`, CEF the word `Unknown`).
fn sev10(sev: &str) -> Option<u8> {
    match sev {
        "critical" => Some(10),
        "high" => Some(8),
        "medium" => Some(5),
        "low" => Some(3),
        "informational" => Some(1),
        "unknown" => None,
        other => panic!("severity {other}"),
    }
}

/// `<vendor>:<kind>:<status>`.
fn event_name(ev: &Value) -> String {
    format!(
        "{}:{}:{}",
        field(ev, "/vendor"),
        field(ev, "/kind"),
        field(ev, "/status")
    )
}

fn epoch_ms(ev: &Value) -> i64 {
    rfc3339_millis(field(ev, "/time"))
}

/// The LEEF attributes the spec asks for, in order, values cleaned for `delim`.
fn expected_leef(ev: &Value, delim: char) -> Vec<(String, String)> {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c == delim || is_break(c) { ' ' } else { c })
            .collect()
    };
    let mut out: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            out.push((k.to_owned(), clean(&v)));
        }
    };
    let s = |p: &str| text(ev, p).map(str::to_owned);
    put("devTime", Some(epoch_ms(ev).to_string()));
    match sev10(field(ev, "/severity")) {
        Some(n) => put("sev", Some(n.to_string())),
        None => put("severity", Some("unknown".to_owned())),
    }
    put("cat", s("/kind"));
    put("externalId", s("/id"));
    put("status", s("/status"));
    put("disposition", s("/disposition"));
    put("policy", s("/title"));
    put("src", s("/network/src_ip"));
    put(
        "srcPort",
        ev.pointer("/network/src_port").map(|p| p.to_string()),
    );
    put("url", s("/url"));
    put("resource", s("/resource/id"));
    put("resourceName", s("/resource/name"));
    put("resourceType", s("/resource/type"));
    put("region", s("/resource/region"));
    put("accountId", s("/resource/account_id"));
    put("accountName", s("/resource/account_name"));
    put("cloud", s("/resource/cloud"));
    put("targetDomain", s("/network/domain"));
    put("requestPath", s("/network/path"));
    put("requestMethod", s("/network/method"));
    put("vendorSeverity", s("/vendor_severity"));
    put("policyId", s("/finding/policy/id"));
    put("policyType", s("/finding/policy/type"));
    put("alertRule", s("/finding/rule"));
    put("attackType", s("/finding/type"));
    put("statusDetail", s("/status_detail"));
    put("firstSeen", seen_ms(ev, "/finding/first_seen"));
    put("lastSeen", seen_ms(ev, "/finding/last_seen"));
    put("vendorCloud", s("/vendor_cloud"));
    put("siemgateSource", s("/source"));
    put(
        "resourceTags",
        ev.pointer("/resource/tags").map(Value::to_string),
    );
    put("remediation", s("/remediation"));
    put("description", s("/description"));
    out
}

/// A `finding` time of the event as epoch milliseconds, when present.
fn seen_ms(ev: &Value, pointer: &str) -> Option<String> {
    text(ev, pointer).map(|t| rfc3339_millis(t).to_string())
}

/// A C0 control, DEL or Unicode line break: written as a space in LEEF and CEF (CEF values
/// keep CR and LF as their `\r` / `\n` escapes).
fn is_break(c: char) -> bool {
    c.is_ascii_control() || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// The CEF extension the spec asks for, in order, values as in the event (unescaped) but for
/// controls other than CR and LF, which are spaces.
fn expected_cef(ev: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let s = |p: &str| {
        text(ev, p).map(|t| {
            t.chars()
                .map(|c| {
                    if is_break(c) && c != '\r' && c != '\n' {
                        ' '
                    } else {
                        c
                    }
                })
                .collect::<String>()
        })
    };
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            out.push((k.to_owned(), v));
        }
    };
    put("rt", Some(epoch_ms(ev).to_string()));
    put("externalId", s("/id"));
    put("cat", s("/kind"));
    put("outcome", s("/status"));
    put("act", s("/disposition"));
    put("src", s("/network/src_ip"));
    put(
        "spt",
        ev.pointer("/network/src_port").map(|p| p.to_string()),
    );
    put("dhost", s("/network/domain"));
    put("request", s("/network/path"));
    put("requestMethod", s("/network/method"));
    for (n, label, ptr) in [
        (1, "resourceId", "/resource/id"),
        (2, "resourceType", "/resource/type"),
        (3, "region", "/resource/region"),
        (4, "account", "/resource/account_id"),
        (5, "cloud", "/resource/cloud"),
        (6, "vendorSeverity", "/vendor_severity"),
    ] {
        if let Some(v) = s(ptr) {
            put(&format!("cs{n}Label"), Some(label.to_owned()));
            put(&format!("cs{n}"), Some(v));
        }
    }
    for (n, label, ptr) in [
        (1, "policyId", "/finding/policy/id"),
        (2, "attackType", "/finding/type"),
    ] {
        if let Some(v) = s(ptr) {
            put(&format!("flexString{n}Label"), Some(label.to_owned()));
            put(&format!("flexString{n}"), Some(v));
        }
    }
    put("reason", s("/status_detail"));
    put("start", seen_ms(ev, "/finding/first_seen"));
    put("end", seen_ms(ev, "/finding/last_seen"));
    put("deviceExternalId", s("/source"));
    put("policyType", s("/finding/policy/type"));
    put("alertRule", s("/finding/rule"));
    put("vendorCloud", s("/vendor_cloud"));
    put(
        "resourceTags",
        ev.pointer("/resource/tags").map(Value::to_string),
    );
    put("remediation", s("/remediation"));
    put("msg", s("/description"));
    out
}

/// What the syslog header of a sink must say.
struct Header {
    facility: u8,
    hostname: &'static str,
    app_name: &'static str,
    /// The SD-ID is `siemgate@<enterprise>`.
    enterprise: u32,
}

/// Parses one message as RFC 5424 strictly and checks its header and SD against the event.
fn check_5424(bytes: &[u8], ev: &Value, h: &Header) -> Syslog5424 {
    let text = std::str::from_utf8(bytes)
        .unwrap_or_else(|e| panic!("message is not UTF-8 ({e}): {bytes:?}"));
    let p = parse_rfc5424(bytes).unwrap_or_else(|e| panic!("not RFC 5424 ({e}): {text}"));
    let sev = field(ev, "/severity");
    assert_eq!(
        p.pri,
        h.facility * 8 + syslog_severity(sev),
        "PRI for facility {} and severity {sev}: {text}",
        h.facility
    );
    let ts = p.timestamp.as_deref().expect("a TIMESTAMP");
    let t = parse_timestamp_5424(ts).unwrap();
    assert!(
        t.zulu && t.fraction.as_deref().is_some_and(|f| f.len() == 3),
        "TIMESTAMP in UTC with milliseconds: {ts}"
    );
    assert_eq!(ts, field(ev, "/time"), "TIMESTAMP = event time: {text}");
    assert_eq!(p.hostname.as_deref(), Some(h.hostname), "{text}");
    assert_eq!(p.app_name.as_deref(), Some(h.app_name), "{text}");
    assert_eq!(p.procid, None, "PROCID is '-': {text}");
    assert_eq!(
        p.msgid.as_deref(),
        Some(field(ev, "/kind")),
        "MSGID: {text}"
    );
    let want_sd = SdElement {
        id: format!("siemgate@{}", h.enterprise),
        params: vec![
            ("vendor".to_owned(), field(ev, "/vendor").to_owned()),
            ("severity".to_owned(), sev.to_owned()),
            ("source".to_owned(), field(ev, "/source").to_owned()),
            ("id".to_owned(), field(ev, "/id").to_owned()),
        ],
    };
    assert_eq!(p.sd, [want_sd], "STRUCTURED-DATA: {text}");
    assert!(!p.bom, "no BOM: {text}");
    assert!(p.msg.is_some(), "a MSG: {text}");
    p
}

/// Parses a LEEF body and checks header and every attribute against the event.
fn check_leef(body: &str, ev: &Value, delim: char) -> Leef {
    let p = parse_leef(body).unwrap_or_else(|e| panic!("not LEEF 2.0 ({e}): {body}"));
    check_leef_header(&p, ev, delim, body);
    assert_eq!(
        p.attrs,
        expected_leef(ev, delim),
        "LEEF attributes of {body}"
    );
    p
}

fn check_leef_header(p: &Leef, ev: &Value, delim: char, body: &str) {
    assert_eq!(p.vendor, "siemgate", "{body}");
    assert_eq!(p.product, field(ev, "/product"), "{body}");
    assert_eq!(p.product_version, VERSION, "{body}");
    assert_eq!(p.event_id, event_name(ev), "{body}");
    let dfield = if delim == '\t' {
        "x09".to_owned()
    } else {
        delim.to_string()
    };
    assert_eq!(p.delimiter_field, dfield, "{body}");
    assert_eq!(p.delimiter, delim, "{body}");
}

/// Parses a CEF body and checks header and every extension pair against the event.
fn check_cef(body: &str, ev: &Value) -> Cef {
    let p = parse_cef(body).unwrap_or_else(|e| panic!("not CEF ({e}): {body}"));
    check_cef_header(&p, ev, body);
    assert_eq!(p.ext, expected_cef(ev), "CEF extension of {body}");
    p
}

fn check_cef_header(p: &Cef, ev: &Value, body: &str) {
    assert_eq!(p.version, "0", "{body}");
    assert_eq!(p.vendor, "siemgate", "{body}");
    assert_eq!(p.product, field(ev, "/product"), "{body}");
    assert_eq!(p.product_version, VERSION, "{body}");
    assert_eq!(p.class_id, event_name(ev), "{body}");
    let name = text(ev, "/title").map_or_else(|| event_name(ev), |t| t.replace(is_break, " "));
    assert_eq!(p.name, name, "{body}");
    assert_eq!(
        p.severity,
        sev10(field(ev, "/severity")).map_or_else(|| "Unknown".to_owned(), |n| n.to_string()),
        "{body}"
    );
}

/// Checks a shortened attribute list: every pair but the last is the expected one, the last is
/// the expected key with a non-empty prefix of its value.
fn check_cut(got: &[(String, String)], want: &[(String, String)], what: &str) {
    assert!(
        got.len() <= want.len(),
        "{what}: more attributes than the event has"
    );
    let Some(((lk, lv), rest)) = got.split_last() else {
        return;
    };
    assert_eq!(rest, &want[..rest.len()], "{what}: kept attributes intact");
    let (wk, wv) = &want[rest.len()];
    assert_eq!(lk, wk, "{what}: attributes dropped from the end only");
    assert!(
        !lv.is_empty() && wv.starts_with(lv.as_str()),
        "{what}: last attribute {lk} is a prefix of the full value: {lv:?}"
    );
}

fn assert_no_receiver_errors(r: &StreamReceiver, name: &str) {
    assert_eq!(r.errors(), Vec::<String>::new(), "{name}: framing errors");
    assert_eq!(
        r.handshake_failures(),
        Vec::<String>::new(),
        "{name}: TLS handshake failures"
    );
}

fn ca_file_key(dir: &tempfile::TempDir, pki: &Pki) -> String {
    let path = pki.write_ca(dir.path(), "ca.pem");
    format!("tls = {{ ca_file = '{}' }}", path.display())
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn tcp_octet_counting_rfc5424_leef() {
    let r = StreamReceiver::tcp(Framing::OctetCounting).await;
    let sink = syslog_sink(
        "qradar",
        r.addr(),
        r#"transport = "tcp"
framing = "octet_counting"
header = "rfc5424"
format = "leef"
facility = 10
hostname = "gw-test-01"
app_name = "siemgate-it""#,
    );
    let gw = start(&config(&[sink], &["qradar"])).await;
    post_ok(&gw, "prisma", five_prisma(), 5).await;
    post_ok(&gw, "wallarm", WALLARM.to_owned(), 2).await;
    let events = file_events(&gw, 7).await;
    wait_count("the receiver", || r.count(), 7).await;
    wait_metric(&gw, "siemgate_events_delivered_total", "qradar", 7.0).await;
    let text = gw.metrics_text().await;
    let m = |name: &str| metric(&text, name, &[("sink", "qradar")]);
    assert_eq!(
        m("siemgate_events_failed_total").unwrap_or(0.0),
        0.0,
        "{text}"
    );
    assert_eq!(
        m("siemgate_sink_truncations_total").unwrap_or(0.0),
        0.0,
        "{text}"
    );
    assert_eq!(
        m("siemgate_sink_reconnects_total").unwrap_or(0.0),
        0.0,
        "{text}"
    );
    assert_eq!(m("siemgate_queue_events"), Some(0.0), "{text}");
    gw.stop().await;
    let msgs = r.messages();
    assert_eq!(msgs.len(), 7, "one message per event");
    assert_no_receiver_errors(&r, "receiver");
    assert_eq!(r.connections(), 1, "one connection for everything");

    let h = Header {
        facility: 10,
        hostname: "gw-test-01",
        app_name: "siemgate-it",
        enterprise: 32473,
    };
    let mut leefs = Vec::new();
    for (m, ev) in msgs.iter().zip(&events) {
        let p = check_5424(&m.bytes, ev, &h);
        leefs.push(check_leef(p.msg_str(), ev, '^'));
    }

    // Field by field against the posted payloads.
    let prisma: Value = serde_json::from_str(&five_prisma()).unwrap();
    let sevs = [
        ("critical", 10, 2),
        ("high", 8, 3),
        ("medium", 5, 4),
        ("low", 3, 5),
        ("informational", 1, 6),
    ];
    for (i, (word, s10, s5424)) in sevs.iter().enumerate() {
        let l = &leefs[i];
        let a = &prisma[i];
        let pri = parse_rfc5424(&msgs[i].bytes).unwrap().pri;
        assert_eq!(pri, 10 * 8 + s5424, "{word}");
        assert_eq!(l.product, "Prisma Cloud");
        assert_eq!(l.event_id, "prisma_cloud:alert:open");
        let want: Vec<(String, String)> = [
            ("devTime", a["alertTs"].to_string()),
            ("sev", s10.to_string()),
            ("cat", "alert".to_owned()),
            (
                "externalId",
                format!(
                    "{}:open:NEW_ALERT:1700000100000",
                    a["alertId"].as_str().unwrap()
                ),
            ),
            ("status", "open".to_owned()),
            ("policy", a["policyName"].as_str().unwrap().to_owned()),
            ("url", a["callbackUrl"].as_str().unwrap().to_owned()),
            ("resource", "my-public-bucket".to_owned()),
            ("resourceName", "my-public-bucket".to_owned()),
            ("resourceType", "S3 Bucket".to_owned()),
            ("region", "us-west-2".to_owned()),
            ("accountId", "123456789012".to_owned()),
            ("accountName", "Test".to_owned()),
            ("cloud", "aws".to_owned()),
            ("vendorSeverity", word.to_string()),
            (
                "policyId",
                "630d3779-d932-4fbf-9cce-6e8d793c6916".to_owned(),
            ),
            ("policyType", "config".to_owned()),
            ("alertRule", "Default Alert Rule".to_owned()),
            ("statusDetail", "NEW_ALERT".to_owned()),
            ("firstSeen", "1700000000000".to_owned()),
            ("lastSeen", "1700000100000".to_owned()),
            ("siemgateSource", "prisma".to_owned()),
            ("remediation", "illustrative remediation text".to_owned()),
            ("description", "illustrative policy description".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(l.attrs, want, "Prisma alert {i}");
    }
    let wallarm: Value = serde_json::from_str(WALLARM).unwrap();
    for (j, l) in leefs[5..].iter().enumerate() {
        let hit = &wallarm[j]["details"]["hit"];
        assert_eq!(l.product, "Wallarm");
        assert_eq!(l.event_id, "wallarm:attack:new");
        assert_eq!(
            l.get("devTime").unwrap(),
            (hit["request_time"].as_i64().unwrap() * 1000).to_string()
        );
        // Hits carry no severity: no `sev` number, and `severity=unknown` says why.
        assert_eq!(l.get("sev"), None);
        assert_eq!(l.get("severity"), Some("unknown"));
        assert_eq!(l.get("cat"), Some("attack"));
        let name = ["SQL injection", "Path traversal"][j];
        assert_eq!(l.get("policy"), Some(name), "the attack's name");
        assert_eq!(l.get("attackType"), hit["type"].as_str());
        assert_eq!(
            l.get("disposition"),
            Some("detected"),
            "block_status monitored"
        );
        assert_eq!(l.get("vendorCloud"), Some("EU"));
        assert_eq!(
            l.get("region"),
            None,
            "Wallarm's cloud is not the resource's region"
        );
        assert_eq!(l.get("src"), hit["remote_addr4"].as_str());
        assert_eq!(
            l.get("srcPort").unwrap(),
            hit["remote_port"].to_string().as_str()
        );
        assert_eq!(l.get("targetDomain"), hit["host"].as_str());
        assert_eq!(l.get("requestPath"), hit["path"].as_str());
        assert_eq!(l.get("requestMethod"), hit["method"].as_str());
        assert_eq!(l.get("siemgateSource"), Some("wallarm"));
        let id = hit["id"].as_array().unwrap();
        assert_eq!(
            l.get("externalId").unwrap(),
            format!("{}:{}", id[0].as_str().unwrap(), id[1].as_str().unwrap())
        );
    }

    assert_no_receiver_errors(&r, "receiver after shutdown");
}

#[tokio::test]
async fn leef_special_characters() {
    let caret = StreamReceiver::tcp(Framing::OctetCounting).await;
    let tab = StreamReceiver::tcp(Framing::OctetCounting).await;
    let common_keys = r#"transport = "tcp"
hostname = "gw"
"#;
    let sinks = [
        syslog_sink(
            "caret",
            caret.addr(),
            &format!("{common_keys}leef_delimiter = \"^\""),
        ),
        syslog_sink(
            "tab",
            tab.addr(),
            &format!("{common_keys}leef_delimiter = \"\\t\""),
        ),
    ];
    let gw = start(&config(&sinks, &["caret", "tab"])).await;
    let id = "ev \"1\" \\ ]^|=";
    post_ok(
        &gw,
        "mapped",
        mapped(id, NASTY, &format!("{NASTY} / end")).to_string(),
        1,
    )
    .await;
    // A vendor payload with a crafted title.
    post_ok(
        &gw,
        "prisma",
        prisma_alerts(&[("P-9|^", "high", 1_700_000_200_000, NASTY)]),
        1,
    )
    .await;
    let events = file_events(&gw, 2).await;
    // The gateway kept the values as sent (the expectations below build on that).
    assert_eq!(events[0]["title"], NASTY);
    assert_eq!(events[0]["id"], id);
    assert_eq!(events[0]["network"]["path"], "/a=b?c=d|e^f\\g");
    assert_eq!(events[1]["title"], NASTY);

    wait_count("caret", || caret.count(), 2).await;
    wait_count("tab", || tab.count(), 2).await;
    let h = Header {
        facility: 13,
        hostname: "gw",
        app_name: "siemgate",
        enterprise: 32473,
    };
    for (r, delim) in [(&caret, '^'), (&tab, '\t')] {
        assert_no_receiver_errors(r, "receiver");
        let msgs = r.messages();
        assert_eq!(msgs.len(), 2);
        for (m, ev) in msgs.iter().zip(&events) {
            assert!(
                !m.bytes.contains(&b'\n') && !m.bytes.contains(&b'\r'),
                "no CR/LF anywhere in the message: {:?}",
                m.text()
            );
            // The SD-PARAM `id` holds `"`, `\` and `]`: escaped on the wire, intact once parsed.
            let p = check_5424(&m.bytes, ev, &h);
            check_leef(p.msg_str(), ev, delim);
        }
    }

    // The same facts spelled out.
    let body = |r: &StreamReceiver, i: usize| {
        let m = &r.messages()[i];
        parse_leef(parse_rfc5424(&m.bytes).unwrap().msg_str()).unwrap()
    };
    let c = body(&caret, 0);
    assert_eq!(
        c.get("policy"),
        Some("a b|c=d\\e f g h – Zugriff verweigert – ü 日本 😀"),
        "^, CR, LF, tab -> space; | = \\ and non-ASCII kept"
    );
    assert_eq!(
        c.get("description"),
        Some("a b|c=d\\e f g h – Zugriff verweigert – ü 日本 😀 / end")
    );
    assert_eq!(c.get("externalId"), Some("ev \"1\" \\ ] |="));
    assert_eq!(c.get("requestPath"), Some("/a=b?c=d|e f\\g"));
    assert_eq!(
        c.get("url"),
        Some("https://console.example.com/a?b=c&d=e|f g")
    );
    assert_eq!(c.get("resourceName"), Some("名前 | name"));
    assert_eq!(c.get("accountName"), Some("prod=main"));
    assert_eq!(c.product, "generic");
    assert_eq!(c.event_id, "generic:attack:open");
    let t = body(&tab, 0);
    assert_eq!(t.delimiter_field, "x09");
    assert_eq!(
        t.get("policy"),
        Some("a^b|c=d\\e f g h – Zugriff verweigert – ü 日本 😀"),
        "tab, CR, LF -> space; ^ kept"
    );
    assert_eq!(t.get("externalId"), Some("ev \"1\" \\ ]^|="));
    assert_eq!(t.get("requestPath"), Some("/a=b?c=d|e^f\\g"));
    let c = body(&caret, 1);
    assert_eq!(
        c.get("externalId"),
        Some("P-9| :open:NEW_ALERT:1700000100000")
    );
    assert_eq!(
        c.get("policy"),
        Some("a b|c=d\\e f g h – Zugriff verweigert – ü 日本 😀")
    );
    // On the wire, the SD-PARAM escapes.
    let raw = caret.messages()[0].text().to_owned();
    assert!(
        raw.contains(r#" id="ev \"1\" \\ \]^|="]"#),
        "SD-PARAM escaping: {raw}"
    );
    gw.stop().await;
}

/// The spec allows any ASCII delimiter but a letter, a digit, `=`, space and `|`: a backslash
/// is one, and values then have their backslashes replaced by spaces.
#[tokio::test]
async fn leef_backslash_delimiter() {
    let r = StreamReceiver::tcp(Framing::OctetCounting).await;
    let sink = syslog_sink(
        "bs",
        r.addr(),
        r#"transport = "tcp"
hostname = "gw"
leef_delimiter = "\\""#,
    );
    let gw = start(&config(&[sink], &["bs"])).await;
    post_ok(&gw, "mapped", mapped("b-1", NASTY, "x\\y").to_string(), 1).await;
    let events = file_events(&gw, 1).await;
    wait_count("the receiver", || r.count(), 1).await;
    assert_no_receiver_errors(&r, "receiver");
    let h = Header {
        facility: 13,
        hostname: "gw",
        app_name: "siemgate",
        enterprise: 32473,
    };
    let m = &r.messages()[0];
    let p = check_5424(&m.bytes, &events[0], &h);
    let l = check_leef(p.msg_str(), &events[0], '\\');
    assert_eq!(
        l.get("policy"),
        Some("a^b|c=d e f g h – Zugriff verweigert – ü 日本 😀")
    );
    assert_eq!(l.get("description"), Some("x y"));
    gw.stop().await;
}

#[tokio::test]
async fn cef_over_tcp_with_lf_framing() {
    let r = StreamReceiver::tcp(Framing::Lf).await;
    let sink = syslog_sink(
        "arcsight",
        r.addr(),
        r#"transport = "tcp"
framing = "lf"
format = "cef"
hostname = "gw-cef"
app_name = "sg"
enterprise_number = 99999"#,
    );
    let gw = start(&config(&[sink], &["arcsight"])).await;
    post_ok(&gw, "prisma", five_prisma(), 5).await;
    post_ok(&gw, "wallarm", WALLARM.to_owned(), 2).await;
    let title = format!("{NASTY} \\| x");
    post_ok(
        &gw,
        "mapped",
        mapped("c=1 \\ x", &title, &format!("line1\nline2\r\n{NASTY} k=v")).to_string(),
        1,
    )
    .await;
    // No title: the name is the event id name.
    post_ok(
        &gw,
        "plain",
        json!({"id": "no-title", "severity": "low"}).to_string(),
        1,
    )
    .await;
    let events = file_events(&gw, 9).await;
    wait_count("the receiver", || r.count(), 9).await;
    gw.stop().await;
    assert_no_receiver_errors(&r, "receiver");
    let msgs = r.messages();
    assert_eq!(
        msgs.len(),
        9,
        "one line per event (a raw LF would split one)"
    );
    let h = Header {
        facility: 13,
        hostname: "gw-cef",
        app_name: "sg",
        enterprise: 99999,
    };
    let mut cefs = Vec::new();
    for (m, ev) in msgs.iter().zip(&events) {
        assert!(!m.bytes.contains(&b'\r'), "no raw CR: {:?}", m.text());
        let p = check_5424(&m.bytes, ev, &h);
        cefs.push((check_cef(p.msg_str(), ev), p.msg_str().to_owned()));
    }

    let (c, wire) = &cefs[0];
    assert_eq!(c.product, "Prisma Cloud");
    assert_eq!(c.class_id, "prisma_cloud:alert:open");
    assert_eq!(c.name, "policy one");
    assert_eq!(c.severity, "10");
    assert_eq!(c.get("rt"), Some("1700000100001"));
    assert_eq!(
        c.get("externalId"),
        Some("P-101:open:NEW_ALERT:1700000100000")
    );
    assert_eq!(c.get("cs1Label"), Some("resourceId"));
    assert_eq!(c.get("cs1"), Some("my-public-bucket"));
    assert_eq!(c.get("cs4Label"), Some("account"));
    assert_eq!(c.get("cs4"), Some("123456789012"));
    assert_eq!(c.get("deviceExternalId"), Some("prisma"));
    assert_eq!(c.keys().last(), Some(&"msg"));
    // The spec's CEF extension has no key for the event URL.
    assert!(
        !wire.contains("callbackUrl") && !wire.contains("P-51307"),
        "{wire}"
    );
    let (c, _) = &cefs[5];
    assert_eq!(c.get("src"), Some("8.8.8.8"));
    assert_eq!(c.get("spt"), Some("41253"));
    assert_eq!(c.get("dhost"), Some("example.com"));
    assert_eq!(c.get("request"), Some("/"));
    assert_eq!(c.get("requestMethod"), Some("GET"));
    assert_eq!(c.get("cat"), Some("attack"));
    assert_eq!(c.get("outcome"), Some("new"));

    let (c, wire) = &cefs[7];
    assert_eq!(
        c.name, "a^b|c=d\\e f g h – Zugriff verweigert – ü 日本 😀 \\| x",
        "header: CR/LF/tab -> space, the rest intact once unescaped"
    );
    assert!(
        wire.contains("|a^b\\|c=d\\\\e f g h – Zugriff verweigert – ü 日本 😀 \\\\\\| x|10|"),
        "header escaping on the wire: {wire}"
    );
    assert_eq!(c.get("externalId"), Some("c=1 \\ x"));
    assert!(wire.contains("externalId=c\\=1 \\\\ x "), "{wire}");
    assert_eq!(c.get("request"), Some("/a=b?c=d|e^f\\g"));
    assert!(wire.contains("request=/a\\=b?c\\=d|e^f\\\\g "), "{wire}");
    assert_eq!(
        c.get("msg"),
        Some(format!("line1\nline2\r\n{} k=v", NASTY.replace('\t', " ")).as_str())
    );
    assert!(
        wire.ends_with(
            "msg=line1\\nline2\\r\\na^b|c\\=d\\\\e\\rf\\ng h – Zugriff verweigert – ü 日本 😀 k\\=v"
        ),
        "{wire}"
    );
    let (c, _) = &cefs[8];
    assert_eq!(c.name, "generic:alert:new", "no title: the event id name");
    assert_eq!(c.severity, "3");
}

#[tokio::test]
async fn json_over_tls_with_rfc3164_header() {
    let pki = Pki::new("siemgate syslog test CA");
    let r = StreamReceiver::tls(Framing::OctetCounting, &pki).await;
    let ca_dir = tempfile::tempdir().unwrap();
    let sink = syslog_sink(
        "json",
        r.addr(),
        &format!(
            r#"transport = "tls"
header = "rfc3164"
format = "json"
facility = 4
hostname = "gw-json"
app_name = "siemgate-json"
{}"#,
            ca_file_key(&ca_dir, &pki)
        ),
    );
    let gw = start(&config(&[sink], &["json"])).await;
    post_ok(&gw, "prisma", five_prisma(), 5).await;
    post_ok(&gw, "wallarm", WALLARM.to_owned(), 2).await;
    post_ok(&gw, "mapped", mapped("j-1", NASTY, NASTY).to_string(), 1).await;
    let events = file_events(&gw, 8).await;
    let lines = file_line_texts(&gw);
    wait_count("the TLS receiver", || r.count(), 8).await;
    wait_metric(&gw, "siemgate_events_delivered_total", "json", 8.0).await;
    gw.stop().await;
    assert_no_receiver_errors(&r, "TLS receiver");
    let msgs = r.messages();
    assert_eq!(msgs.len(), 8);
    for ((m, ev), line) in msgs.iter().zip(&events).zip(&lines) {
        let text = m.text();
        let p = parse_rfc3164(&m.bytes).unwrap_or_else(|e| panic!("not RFC 3164 ({e}): {text}"));
        let sev = field(ev, "/severity");
        assert_eq!(p.pri, 4 * 8 + syslog_severity(sev), "{text}");
        let t = field(ev, "/time");
        let month: usize = t[5..7].parse().unwrap();
        let day: u32 = t[8..10].parse().unwrap();
        let want_ts = format!("{} {day:>2} {}", MONTHS[month - 1], &t[11..19]);
        assert_eq!(p.timestamp, want_ts, "UTC, day space-padded: {text}");
        assert_eq!(p.hostname, "gw-json");
        assert_eq!(p.tag, "siemgate-json");
        assert_eq!(p.pid, None);
        let body = p.msg_str();
        assert!(!body.contains(['\n', '\r']), "{text}");
        let json: Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {body}"));
        assert_eq!(&json, ev, "the normalized Event");
        assert_eq!(body, line, "byte for byte what the file sink writes");
        assert!(json.get("truncated").is_none());
    }
    assert_eq!(events[7]["title"], NASTY);
}

#[tokio::test]
async fn udp_one_complete_message_per_datagram() {
    let r = UdpReceiver::start().await;
    let sink = syslog_sink(
        "udp",
        r.addr(),
        r#"transport = "udp"
max_message_bytes = 1024
hostname = "gw-udp""#,
    );
    let gw = start(&config(&[sink], &["udp"])).await;
    post_ok(&gw, "prisma", five_prisma(), 5).await;
    post_ok(&gw, "wallarm", WALLARM.to_owned(), 2).await;
    post_ok(
        &gw,
        "mapped",
        mapped("big", "big one", &"ü日😀".repeat(300)).to_string(),
        1,
    )
    .await;
    let events = file_events(&gw, 8).await;
    wait_count("the UDP receiver", || r.count(), 8).await;
    wait_metric(&gw, "siemgate_sink_truncations_total", "udp", 1.0).await;
    gw.stop().await;
    let msgs = r.messages();
    assert_eq!(msgs.len(), 8, "one datagram per event, nothing split");
    let h = Header {
        facility: 13,
        hostname: "gw-udp",
        app_name: "siemgate",
        enterprise: 32473,
    };
    for (m, ev) in msgs.iter().zip(&events) {
        assert!(
            m.bytes.len() <= 1024,
            "datagram of {} bytes over max_message_bytes",
            m.bytes.len()
        );
        assert!(m.bytes.starts_with(b"<"), "no framing: {:?}", m.text());
        let p = check_5424(&m.bytes, ev, &h);
        let body = p.msg_str();
        if ev["id"] == "big" {
            let l = parse_leef(body).unwrap_or_else(|e| panic!("{e}: {body}"));
            check_leef_header(&l, ev, '^', body);
            check_cut(&l.attrs, &expected_leef(ev, '^'), "big event");
        } else {
            check_leef(body, ev, '^');
        }
    }
}

/// UDP datagrams never exceed `max_message_bytes`, even for events whose non-cuttable parts
/// are long: a JSON body with a 3,000-byte title (left after `raw` and `description` go) and an
/// event id of 1,500 bytes (it sits in the SD-ELEMENT of the header). Whatever arrives is one
/// complete message; the small event after them still arrives.
#[tokio::test]
async fn udp_never_over_max_message_bytes() {
    let rj = UdpReceiver::start().await;
    let rl = UdpReceiver::start().await;
    let sinks = [
        syslog_sink(
            "udp_json",
            rj.addr(),
            r#"transport = "udp"
format = "json"
max_message_bytes = 1024
hostname = "gw""#,
        ),
        syslog_sink(
            "udp_leef",
            rl.addr(),
            r#"transport = "udp"
max_message_bytes = 1024
hostname = "gw""#,
        ),
    ];
    let gw = start(&config(&sinks, &["udp_json", "udp_leef"])).await;
    let long_title = "T".repeat(3000);
    post_ok(
        &gw,
        "mapped",
        mapped("long-title", &long_title, "d").to_string(),
        1,
    )
    .await;
    let long_id = format!("id-{}", "i".repeat(1500));
    post_ok(&gw, "plain", plain_event(&long_id), 1).await;
    post_ok(&gw, "plain", plain_event("small"), 1).await;
    file_events(&gw, 3).await;
    let has_small = |msgs: Vec<Received>| {
        msgs.iter().any(|m| {
            parse_rfc5424(&m.bytes)
                .ok()
                .and_then(|p| p.sd.first().and_then(|e| e.get("id")).map(|i| i == "small"))
                .unwrap_or(false)
        })
    };
    poll_until("the small event at both receivers", BOUND, || {
        let done = has_small(rj.messages()) && has_small(rl.messages());
        async move { done }
    })
    .await;
    gw.stop().await;
    let mut over = Vec::new();
    for (name, r) in [("udp_json", &rj), ("udp_leef", &rl)] {
        for m in r.messages() {
            let text = m.text();
            parse_rfc5424(&m.bytes)
                .unwrap_or_else(|e| panic!("{name}: not RFC 5424 ({e}): {text}"));
            if m.bytes.len() > 1024 {
                let p = parse_rfc5424(&m.bytes).unwrap();
                let id = p.sd[0].get("id").unwrap_or("?");
                over.push(format!(
                    "{name}: {} bytes for event {:.20}...",
                    m.bytes.len(),
                    id
                ));
            }
        }
    }
    assert_eq!(
        over,
        Vec::<String>::new(),
        "datagrams over max_message_bytes = 1024"
    );
}

/// A mapped event whose description is `bytes` long in 2-, 3- and 4-byte characters.
fn big_description(bytes: usize) -> String {
    let unit = "日本語ü€😀";
    let s = unit.repeat(bytes / unit.len() + 1);
    let mut end = bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[tokio::test]
async fn truncation_leef_keeps_headers_and_utf8() {
    let r = StreamReceiver::tcp(Framing::OctetCounting).await;
    let sink = syslog_sink(
        "small",
        r.addr(),
        r#"transport = "tcp"
max_message_bytes = 600
hostname = "gw-trunc""#,
    );
    let gw = start(&config(&[sink], &["small"])).await;
    let desc = big_description(5000);
    assert!(desc.len() > 4990);
    let record = json!({
        "id": "t-1", "ts": 1_767_323_045_678_i64, "sev": "high", "title": "short title",
        "desc": desc, "res": {"id": "res-1"}, "net": {"ip": "192.0.2.1"}
    });
    post_ok(&gw, "mapped", record.to_string(), 1).await;
    post_ok(
        &gw,
        "plain",
        json!({"id": "t-2", "severity": "low", "title": "fits"}).to_string(),
        1,
    )
    .await;
    let events = file_events(&gw, 2).await;
    wait_count("the receiver", || r.count(), 2).await;
    assert_no_receiver_errors(&r, "receiver");
    let msgs = r.messages();
    let h = Header {
        facility: 13,
        hostname: "gw-trunc",
        app_name: "siemgate",
        enterprise: 32473,
    };

    let big = &msgs[0];
    assert!(
        big.bytes.len() <= 600,
        "message of {} bytes over max_message_bytes = 600",
        big.bytes.len()
    );
    std::str::from_utf8(&big.bytes).expect("a shortened message is still valid UTF-8");
    let p = check_5424(&big.bytes, &events[0], &h);
    let body = p.msg_str();
    let l = parse_leef(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    check_leef_header(&l, &events[0], '^', body);
    let want = expected_leef(&events[0], '^');
    check_cut(&l.attrs, &want, "shortened LEEF");
    // Everything but the description fits in 600 bytes: only the description may go.
    assert!(
        l.attrs.len() >= want.len() - 1,
        "only the description is shortened: {body}"
    );
    assert_eq!(want.last().unwrap().0, "description");
    assert_eq!(
        l.keys()[..6],
        ["devTime", "sev", "cat", "externalId", "status", "policy"]
    );

    // The small event is untouched.
    let p = check_5424(&msgs[1].bytes, &events[1], &h);
    check_leef(p.msg_str(), &events[1], '^');

    wait_metric(&gw, "siemgate_sink_truncations_total", "small", 1.0).await;
    wait_metric(&gw, "siemgate_events_delivered_total", "small", 2.0).await;
    gw.stop().await;
}

#[tokio::test]
async fn truncation_cef_and_json() {
    let rc = StreamReceiver::tcp(Framing::OctetCounting).await;
    let rj = StreamReceiver::tcp(Framing::OctetCounting).await;
    let sinks = [
        syslog_sink(
            "cef600",
            rc.addr(),
            r#"transport = "tcp"
format = "cef"
max_message_bytes = 600
hostname = "gw""#,
        ),
        syslog_sink(
            "json600",
            rj.addr(),
            r#"transport = "tcp"
format = "json"
max_message_bytes = 600
hostname = "gw""#,
        ),
    ];
    let gw = start(&config(&sinks, &["cef600", "json600"])).await;
    let desc = format!("a=b\\c\n{}", big_description(5000));
    let record = json!({
        "id": "t-1", "ts": 1_767_323_045_678_i64, "sev": "medium", "title": "short | title",
        "desc": desc, "res": {"id": "res-1", "region": "eu-west-1"}, "net": {"ip": "192.0.2.1"}
    });
    post_ok(&gw, "mapped", record.to_string(), 1).await;
    post_ok(
        &gw,
        "plain",
        json!({"id": "t-2", "severity": "low", "title": "fits"}).to_string(),
        1,
    )
    .await;
    let events = file_events(&gw, 2).await;
    let lines = file_line_texts(&gw);
    wait_count("the CEF receiver", || rc.count(), 2).await;
    wait_count("the JSON receiver", || rj.count(), 2).await;
    assert_no_receiver_errors(&rc, "CEF receiver");
    assert_no_receiver_errors(&rj, "JSON receiver");
    let h = Header {
        facility: 13,
        hostname: "gw",
        app_name: "siemgate",
        enterprise: 32473,
    };

    // CEF: the header whole, pairs dropped or cut from the end (msg first), never inside an
    // escape (the strict parser refuses a dangling backslash).
    let big = &rc.messages()[0];
    assert!(
        big.bytes.len() <= 600,
        "CEF message of {} bytes",
        big.bytes.len()
    );
    let p = check_5424(&big.bytes, &events[0], &h);
    let body = p.msg_str();
    let c = parse_cef(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    check_cef_header(&c, &events[0], body);
    let want = expected_cef(&events[0]);
    check_cut(&c.ext, &want, "shortened CEF");
    assert_eq!(want.last().unwrap().0, "msg");
    assert!(
        c.ext.len() >= want.len() - 1,
        "only msg is shortened: {body}"
    );
    let p = check_5424(&rc.messages()[1].bytes, &events[1], &h);
    check_cef(p.msg_str(), &events[1]);

    // JSON: `raw` and then `description` dropped, `"truncated":true`, the rest intact.
    let big = &rj.messages()[0];
    assert!(
        big.bytes.len() <= 600,
        "JSON message of {} bytes",
        big.bytes.len()
    );
    let p = check_5424(&big.bytes, &events[0], &h);
    let body = p.msg_str();
    let got: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert_eq!(got["truncated"], true, "{body}");
    let mut want = events[0].clone();
    let obj = want.as_object_mut().unwrap();
    obj.remove("raw");
    obj.remove("description");
    obj.insert("truncated".to_owned(), Value::Bool(true));
    let mut rest = got.clone();
    let raw = rest.as_object_mut().unwrap().remove("raw");
    assert_eq!(rest, want, "only raw and description dropped: {body}");
    let p = check_5424(&rj.messages()[1].bytes, &events[1], &h);
    assert_eq!(
        p.msg_str(),
        lines[1],
        "the small event is the file sink's line"
    );

    for sink in ["cef600", "json600"] {
        wait_metric(&gw, "siemgate_sink_truncations_total", sink, 1.0).await;
    }
    gw.stop().await;
    // Checked last so that everything above is checked whatever happens here.
    assert_eq!(
        raw, None,
        "`raw` is dropped (the key is absent), not kept: {body}"
    );
}

/// The `plain` event `id`.
fn plain_event(id: &str) -> String {
    json!({"id": id, "severity": "high", "title": format!("event {id}")}).to_string()
}

/// The SD `id` of every message, each parsed strictly (5424 + LEEF).
fn ids_of(msgs: &[Received]) -> Vec<String> {
    msgs.iter()
        .map(|m| {
            let p = parse_rfc5424(&m.bytes)
                .unwrap_or_else(|e| panic!("not RFC 5424 ({e}): {:?}", m.text()));
            let body = p.msg_str();
            let l = parse_leef(body).unwrap_or_else(|e| panic!("not LEEF ({e}): {body}"));
            let id = p.sd[0].get("id").unwrap().to_owned();
            assert_eq!(l.get("externalId"), Some(id.as_str()));
            id
        })
        .collect()
}

async fn receiver_restart_loses_nothing(pki: Option<&Pki>) {
    let framing = Framing::OctetCounting;
    let start_receiver = |addr: SocketAddr| async move {
        match pki {
            None => StreamReceiver::tcp_on(addr, framing).await,
            Some(p) => StreamReceiver::tls_on(addr, framing, p).await,
        }
    };
    let r1 = start_receiver("127.0.0.1:0".parse().unwrap()).await;
    let addr = r1.addr();
    let ca_dir = tempfile::tempdir().unwrap();
    let keys = match pki {
        None => r#"transport = "tcp""#.to_owned(),
        Some(p) => format!(
            // No `transport`: TLS is the default.
            "connect_timeout = \"2s\"\n{}",
            ca_file_key(&ca_dir, p)
        ),
    };
    let gw = start(&config(&[syslog_sink("siem", addr, &keys)], &["siem"])).await;

    let before: Vec<String> = (0..5).map(|i| format!("before-{i}")).collect();
    let after: Vec<String> = (0..5).map(|i| format!("after-{i}")).collect();
    for id in &before {
        post_ok(&gw, "plain", plain_event(id), 1).await;
    }
    wait_count("the first receiver", || r1.count(), 5).await;
    wait_metric(&gw, "siemgate_events_delivered_total", "siem", 5.0).await;

    // The receiver goes away: listener and connections closed.
    r1.kill().await;
    for id in &after {
        post_ok(&gw, "plain", plain_event(id), 1).await;
    }
    // Connection failures make the sink not ready (spec: "Common to all sinks").
    wait_readyz(&gw, StatusCode::SERVICE_UNAVAILABLE, "siem").await;
    let r2 = start_receiver(addr).await;
    assert_eq!(r2.addr(), addr);

    let all: BTreeSet<String> = before.iter().chain(&after).cloned().collect();
    poll_until("every event at one of the receivers", BOUND, || {
        let got: BTreeSet<String> = ids_of(&r1.messages())
            .into_iter()
            .chain(ids_of(&r2.messages()))
            .collect();
        let done = all.is_subset(&got);
        async move { done }
    })
    .await;
    // An empty queue has nothing left to send again.
    wait_metric(&gw, "siemgate_queue_events", "siem", 0.0).await;

    let ids1 = ids_of(&r1.messages());
    let ids2 = ids_of(&r2.messages());
    assert_eq!(
        ids1, before,
        "the first receiver got the first five, in order"
    );
    let union: BTreeSet<String> = ids1.iter().chain(&ids2).cloned().collect();
    assert_eq!(union, all, "only posted events arrive");
    for id in &before {
        assert!(
            !ids2.contains(id),
            "{id} was delivered before the receiver died and sent again: {ids2:?}"
        );
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for id in &ids2 {
        *seen.entry(id).or_default() += 1;
    }
    assert_no_receiver_errors(&r1, "first receiver");
    assert_no_receiver_errors(&r2, "second receiver");
    assert_eq!(
        r1.cut_by_kill(),
        Vec::<String>::new(),
        "nothing was in flight at the kill"
    );
    assert!(r2.connections() >= 1);

    let text = gw.metrics_text().await;
    let m = |name: &str| metric(&text, name, &[("sink", "siem")]);
    assert!(
        m("siemgate_sink_reconnects_total").unwrap_or(0.0) >= 1.0,
        "reconnects counted: {text}"
    );
    assert_eq!(
        m("siemgate_events_failed_total").unwrap_or(0.0),
        0.0,
        "{text}"
    );
    wait_metric(&gw, "siemgate_queue_events", "siem", 0.0).await;
    let delivered = gw
        .sink_metric("siemgate_events_delivered_total", "siem")
        .await
        .unwrap();
    assert!(
        delivered >= 10.0,
        "delivered {delivered} (duplicates: {seen:?})"
    );
    wait_readyz(&gw, StatusCode::OK, "").await;

    // The receiver restarts at once: the sink still holds the dead connection when the next
    // events come, and must notice it before writing to it.
    let reconnects = gw
        .sink_metric("siemgate_sink_reconnects_total", "siem")
        .await
        .unwrap_or(0.0);
    r2.kill().await;
    let r3 = start_receiver(addr).await;
    let again: Vec<String> = (0..3).map(|i| format!("again-{i}")).collect();
    for id in &again {
        post_ok(&gw, "plain", plain_event(id), 1).await;
    }
    wait_count("the third receiver", || r3.count(), 3).await;
    let now = gw
        .sink_metric("siemgate_sink_reconnects_total", "siem")
        .await
        .unwrap_or(0.0);
    // Stopping drains the queue: anything more would have been sent by now.
    gw.stop().await;
    assert_eq!(
        ids_of(&r3.messages()),
        again,
        "the third receiver gets exactly the new events, in order"
    );
    assert_eq!(
        ids_of(&r2.messages()),
        ids2,
        "nothing more reached the dead receiver"
    );
    assert_no_receiver_errors(&r2, "second receiver");
    assert_no_receiver_errors(&r3, "third receiver");
    assert_eq!(r2.cut_by_kill(), Vec::<String>::new());
    assert!(now > reconnects, "reconnect counted: {reconnects} -> {now}");
}

#[tokio::test]
async fn killed_tcp_receiver_loses_nothing() {
    receiver_restart_loses_nothing(None).await;
}

#[tokio::test]
async fn killed_tls_receiver_loses_nothing() {
    let pki = Pki::new("siemgate restart CA");
    receiver_restart_loses_nothing(Some(&pki)).await;
}

#[tokio::test]
async fn untrusted_tls_certificate_holds_the_queue() {
    let trusted = Pki::new("trusted CA");
    let rogue = Pki::new("rogue CA");
    let bad = StreamReceiver::tls(Framing::OctetCounting, &rogue).await;
    let addr = bad.addr();
    let ca_dir = tempfile::tempdir().unwrap();
    let keys = format!(
        "transport = \"tls\"\nconnect_timeout = \"2s\"\n{}",
        ca_file_key(&ca_dir, &trusted)
    );
    let gw = start(&config(&[syslog_sink("qradar", addr, &keys)], &["qradar"])).await;
    let ids = ["u-0", "u-1", "u-2"];
    for id in ids {
        post_ok(&gw, "plain", plain_event(id), 1).await;
    }
    file_events(&gw, 3).await;

    let body = wait_readyz(&gw, StatusCode::SERVICE_UNAVAILABLE, "qradar").await;
    let ready: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(ready["status"], "not_ready", "{body}");
    assert!(
        ready["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains("qradar")),
        "{body}"
    );
    assert!(
        !bad.handshake_failures().is_empty(),
        "the sink tried the handshake"
    );
    poll_until("the sink tries the handshake again", BOUND, || {
        let again = bad.handshake_failures().len() >= 2;
        async move { again }
    })
    .await;
    assert_eq!(
        bad.count(),
        0,
        "nothing delivered over an untrusted connection"
    );
    let text = gw.metrics_text().await;
    let m = |name: &str| metric(&text, name, &[("sink", "qradar")]);
    assert_eq!(m("siemgate_queue_events"), Some(3.0), "all held: {text}");
    assert_eq!(m("siemgate_events_delivered_total").unwrap_or(0.0), 0.0);
    assert_eq!(
        m("siemgate_events_failed_total").unwrap_or(0.0),
        0.0,
        "nothing dropped"
    );

    // A receiver with a trusted certificate on the same port gets everything; ready again.
    bad.kill().await;
    let good = StreamReceiver::tls_on(addr, Framing::OctetCounting, &trusted).await;
    wait_count("the trusted receiver", || good.count(), 3).await;
    assert_no_receiver_errors(&good, "trusted receiver");
    let got: BTreeSet<String> = ids_of(&good.messages()).into_iter().collect();
    assert_eq!(got, ids.iter().map(|s| s.to_string()).collect());
    wait_readyz(&gw, StatusCode::OK, "").await;
    wait_metric(&gw, "siemgate_queue_events", "qradar", 0.0).await;
    gw.stop().await;
    assert_eq!(bad.count(), 0);
}
