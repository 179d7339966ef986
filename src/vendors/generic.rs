//! The `generic` decoder: any JSON object, or array of objects, is one event per object.
//!
//! Without a mapping, `id` is the object's `id` field (string or number) or a hash of the
//! object, and `severity` is read from a `severity` field when it holds a known word. With a
//! `[sources.mapping]` (see `mapping.rs`), every Event field comes from the pointer or constant
//! the config names, and the records may sit inside the body (`records = "/alerts"`).

use serde::Deserialize;
use serde_json::value::RawValue;

use std::borrow::Cow;

use super::fields::{
    epoch_millis, epoch_seconds, integer, rfc3339, severity, text_or_number, Warnings,
};
use super::json::{first_byte, malformed, offset_in, parse_object};
use super::mapping::{Mapping, Source, TimeFormat, Value};
use super::{emit_each_object, Context, DecodeError, Vendor};
use crate::normalize::{Event, EventId, Kind, Status, Timestamp};

/// The few fields the generic decoder looks at; everything else is skipped without copying.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    severity: Option<&'a RawValue>,
    #[serde(borrow, default)]
    time: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
}

pub fn decode<'a, F>(body: &'a str, ctx: &Context<'a>, emit: F) -> Result<usize, DecodeError>
where
    F: FnMut(Event<'a>) -> std::ops::ControlFlow<()>,
{
    emit_each_object(
        body,
        "a JSON object or an array of objects",
        |raw, offset| normalize(raw, offset, ctx),
        emit,
    )
}

/// Without a mapping: `id`, `severity` and `time`/`timestamp` by their common names.
fn normalize<'a>(
    raw: &'a RawValue,
    offset: usize,
    ctx: &Context<'a>,
) -> Result<Event<'a>, DecodeError> {
    let probe: Probe<'a> = parse_object(raw, offset)?;
    let mut event = Event::new(Vendor::Generic, ctx.source, raw, ctx.received_at);
    let id = text_or_number(
        probe.id,
        "id: not a string or number",
        &mut event.normalization_warnings,
    );
    if let Some(id) = id {
        event.id = EventId::Vendor(id);
    }
    severity(&mut event, probe.severity);
    let time = auto_time(
        probe.time.or(probe.timestamp),
        &mut event.normalization_warnings,
    );
    match time {
        Some(t) => event.time = t,
        None => event
            .normalization_warnings
            .push("time: missing, received_at used"),
    }
    if [probe.id, probe.severity, probe.time, probe.timestamp]
        .iter()
        .all(Option::is_none)
    {
        event.mark_unrecognized();
    }
    Ok(event)
}

/// Decodes with a field mapping.
pub fn decode_mapped<'a, F>(
    body: &'a str,
    ctx: &Context<'a>,
    m: &'a Mapping,
    emit: F,
) -> Result<usize, DecodeError>
where
    F: FnMut(Event<'a>) -> std::ops::ControlFlow<()>,
{
    let (records, base) = match &m.records {
        None => (body, 0),
        Some(pointer) => {
            let root: &RawValue = serde_json::from_str(body).map_err(|e| malformed(body, 0, &e))?;
            let Some(found) = pointer.resolve(root) else {
                return Err(DecodeError::Shape {
                    offset: first_byte(body).map_or(0, |(o, _)| o),
                    expected: "a body holding the records at the configured `records` pointer",
                });
            };
            (found.get(), offset_in(body, found.get()))
        }
    };
    emit_each_object(
        records,
        "a JSON object or an array of objects at the records pointer",
        |raw, _| Ok(normalize_mapped(raw, ctx, m)),
        emit,
    )
    .map_err(|e| e.shifted(base))
}

/// The text of a mapped field: a string, a number's text, or a constant. Present but of
/// another type adds `warn`; null and empty count as absent.
fn mapped_text<'a>(
    src: &'a Option<Source>,
    raw: &'a RawValue,
    warn: &'static str,
    w: &mut Warnings,
) -> Option<Cow<'a, str>> {
    let value = Value::of(src.as_ref(), raw)?;
    if matches!(value, Value::Raw(r) if r.get() == "null") {
        return None;
    }
    match value.text() {
        Some(t) if t.is_empty() => None,
        Some(t) => Some(t),
        None => {
            w.push(warn);
            None
        }
    }
}

const TIME_WARN: &str = "time: not in the configured time format";

/// A time written as an RFC 3339 string, or as epoch seconds or milliseconds (told apart by
/// magnitude: epoch milliseconds passed 10^11 in 1973, epoch seconds will not until 5138).
fn auto_time(raw: Option<&RawValue>, w: &mut Warnings) -> Option<Timestamp> {
    let r = raw.filter(|r| r.get() != "null")?;
    if r.get().starts_with('"') {
        rfc3339(Some(r), TIME_WARN, w)
    } else {
        let n = integer(Some(r), TIME_WARN, w)?;
        let millis = if n.unsigned_abs() >= 100_000_000_000 {
            Some(n)
        } else {
            n.checked_mul(1000)
        };
        if millis.is_none() {
            w.push(TIME_WARN);
        }
        millis.map(Timestamp)
    }
}

fn mapped_time(m: &Mapping, raw: &RawValue, w: &mut Warnings) -> Option<Timestamp> {
    match Value::of(m.fields.time.as_ref(), raw)? {
        Value::Const(c) => Timestamp::parse_rfc3339(c),
        Value::Raw(r) => match m.time_format {
            TimeFormat::Rfc3339 => rfc3339(Some(r), TIME_WARN, w),
            TimeFormat::EpochSeconds => epoch_seconds(Some(r), TIME_WARN, w),
            TimeFormat::EpochMillis => epoch_millis(Some(r), TIME_WARN, w),
            TimeFormat::Auto => auto_time(Some(r), w),
        },
    }
}

fn normalize_mapped<'a>(raw: &'a RawValue, ctx: &Context<'a>, m: &'a Mapping) -> Event<'a> {
    let f = &m.fields;
    let mut e = Event::new(Vendor::Generic, ctx.source, raw, ctx.received_at);
    let w: &mut Warnings = &mut e.normalization_warnings;
    if let Some(id) = mapped_text(&f.id, raw, "id: not a string or number", w) {
        e.id = EventId::Vendor(id);
    }
    match mapped_time(m, raw, w) {
        Some(t) => e.time = t,
        None => w.push("time: missing, received_at used"),
    }
    if let Some(word) = mapped_text(&f.severity, raw, "severity: not a string", w) {
        match m.severity(&word) {
            Some(s) => e.severity = s,
            None => w.push("severity: unknown word"),
        }
        e.vendor_severity = Some(word);
    }
    if let Some(word) = mapped_text(&f.kind, raw, "kind: not a string", w) {
        match Kind::from_word(&word) {
            Some(k) => e.kind = k,
            None => w.push("kind: unknown word"),
        }
    }
    if let Some(word) = mapped_text(&f.status, raw, "status: not a string", w) {
        match Status::from_word(&word) {
            Some(s) => e.status = s,
            None => w.push("status: unknown word"),
        }
    }
    e.title = mapped_text(&f.title, raw, "title: not a string", w);
    e.description = mapped_text(&f.description, raw, "description: not a string", w);
    e.url = mapped_text(&f.url, raw, "url: not a string", w);
    e.resource.id = mapped_text(&f.resource_id, raw, "resource_id: not a string", w);
    e.resource.name = mapped_text(&f.resource_name, raw, "resource_name: not a string", w);
    e.resource.kind = mapped_text(&f.resource_type, raw, "resource_type: not a string", w);
    e.resource.region = mapped_text(&f.region, raw, "region: not a string", w);
    e.resource.account_id = mapped_text(&f.account_id, raw, "account_id: not a string", w);
    e.resource.account_name = mapped_text(&f.account_name, raw, "account_name: not a string", w);
    e.resource.cloud = mapped_text(&f.cloud, raw, "cloud: not a string", w);
    e.network.src_ip = mapped_text(&f.src_ip, raw, "src_ip: not a string", w);
    e.network.src_port =
        mapped_text(&f.src_port, raw, "src_port: not a port number", w).and_then(|p| {
            let port = p.trim().parse::<u16>().ok();
            if port.is_none() {
                w.push("src_port: not a port number");
            }
            port
        });
    e.network.domain = mapped_text(&f.domain, raw, "domain: not a string", w);
    e.network.path = mapped_text(&f.path, raw, "path: not a string", w);
    e.network.method = mapped_text(&f.method, raw, "method: not a string", w);
    if !m.matches_any(raw) {
        e.mark_unrecognized();
    }
    e
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::normalize::Timestamp;

    fn run(body: &str) -> Result<Vec<String>, DecodeError> {
        let ctx = Context {
            source: "s",
            received_at: Timestamp(0),
        };
        let mut out = Vec::new();
        decode(body, &ctx, |e| {
            out.push(serde_json::to_string(&e).unwrap());
            std::ops::ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    #[test]
    fn object_and_array() {
        assert_eq!(run(r#"{"id":"a1"}"#).unwrap().len(), 1);
        let lines = run(r#"[{"id":"a1","severity":"HIGH"},{"id":7},{"x":1}]"#).unwrap();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with(r#"{"id":"a1""#), "{}", lines[0]);
        assert!(lines[0].contains(r#""severity":"high""#), "{}", lines[0]);
        assert!(lines[1].starts_with(r#"{"id":"7""#), "{}", lines[1]);
        assert_eq!(run("[]").unwrap().len(), 0);
    }

    #[test]
    fn shapes_and_offsets() {
        assert_eq!(
            run("  42").unwrap_err(),
            DecodeError::Shape {
                offset: 2,
                expected: "a JSON object or an array of objects"
            }
        );
        assert_eq!(
            run(r#"[{"a":1}, 3]"#).unwrap_err(),
            DecodeError::Shape {
                offset: 10,
                expected: "a JSON object"
            }
        );
        assert!(matches!(
            run(r#"{"a":"#),
            Err(DecodeError::Malformed { .. })
        ));
    }

    fn run_mapped(body: &str, mapping: &str) -> Result<Vec<serde_json::Value>, DecodeError> {
        let cfg: super::super::mapping::MappingConfig = toml::from_str(mapping).unwrap();
        let m = Mapping::build(&cfg).unwrap();
        let ctx = Context {
            source: "s",
            received_at: Timestamp(0),
        };
        let mut out = Vec::new();
        Vendor::Generic.decode_mapped(body, &ctx, Some(&m), &[], |e| {
            out.push(serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap())
        })?;
        Ok(out)
    }

    const COMPUTE_MAPPING: &str = r#"
        records = "/aggregatedAlerts"
        id = "/_id"
        time = "/time"
        time_format = "epoch_seconds"
        severity = "/sev"
        severity_map = { P1 = "critical", P3 = "medium" }
        kind = { value = "attack" }
        title = "/rule"
        description = "/message/text"
        resource_name = "/container"
        region = "/region"
        src_ip = "/net/0/ip"
        src_port = "/net/0/port"
    "#;

    #[test]
    fn mapping_reads_pointers_constants_and_vocabulary() {
        let body = r#"{"type":"Container Runtime","aggregatedAlerts":[
            {"_id":"c1","time":1700000000,"sev":"P1","rule":"crypto miner","message":{"text":"xmrig"},
             "container":"web","region":"us-east-1","net":[{"ip":"10.0.0.9","port":"4444"}]},
            {"_id":2,"time":"x","sev":"P9","net":[{"port":99999}]}]}"#;
        let events = run_mapped(body, COMPUTE_MAPPING).unwrap();
        assert_eq!(events.len(), 2);
        let a = &events[0];
        assert_eq!(a["id"], "c1");
        assert_eq!(a["time"], "2023-11-14T22:13:20.000Z");
        assert_eq!(a["severity"], "critical");
        assert_eq!(a["vendor_severity"], "P1");
        assert_eq!(a["kind"], "attack");
        assert_eq!(a["title"], "crypto miner");
        assert_eq!(a["description"], "xmrig");
        assert_eq!(a["resource"]["name"], "web");
        assert_eq!(a["resource"]["region"], "us-east-1");
        assert_eq!(a["network"]["src_ip"], "10.0.0.9");
        assert_eq!(a["network"]["src_port"], 4444);
        assert!(a.get("normalization_warnings").is_none(), "{a}");
        assert_eq!(a["raw"]["_id"], "c1");
        let b = &events[1];
        assert_eq!(b["id"], "2");
        assert_eq!(
            b["normalization_warnings"],
            serde_json::json!([
                "time: not in the configured time format",
                "time: missing, received_at used",
                "severity: unknown word",
                "src_port: not a port number"
            ])
        );
    }

    #[test]
    fn a_record_the_mapping_finds_nothing_in_is_marked_unrecognised() {
        let body = r#"{"aggregatedAlerts":[{"unrelated":1},{"rule":"r"}]}"#;
        let events = run_mapped(body, COMPUTE_MAPPING).unwrap();
        assert_eq!(events[0]["severity_id"], 0);
        let unrecognised = serde_json::json!(crate::normalize::UNRECOGNIZED);
        let has = |e: &serde_json::Value| {
            e["normalization_warnings"]
                .as_array()
                .is_some_and(|w| w.contains(&unrecognised))
        };
        assert!(has(&events[0]), "{}", events[0]);
        assert!(!has(&events[1]), "one mapped field found: {}", events[1]);
        // Constants alone find nothing to miss.
        let only_constants = run_mapped(r#"{"x":1}"#, r#"kind = { value = "attack" }"#).unwrap();
        assert!(!has(&only_constants[0]), "{}", only_constants[0]);
    }

    #[test]
    fn mapping_records_pointer_errors_are_precise() {
        let err = run_mapped(r#" {"other":[]}"#, COMPUTE_MAPPING).unwrap_err();
        assert!(
            matches!(err, DecodeError::Shape { offset: 1, .. }),
            "{err:?}"
        );
        let err = run_mapped(r#"{"aggregatedAlerts":[{"a":1}, 5]}"#, COMPUTE_MAPPING).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Shape {
                offset: 30,
                expected: "a JSON object"
            }
        );
        assert_eq!(
            run_mapped(r#"[{"x":1}]"#, "title = \"/x\"").unwrap()[0]["title"],
            "1"
        );
    }

    #[test]
    fn extreme_epoch_times_neither_panic_nor_overflow() {
        let lines =
            run(r#"[{"time":-9223372036854775808},{"time":9223372036854775807},{"time":-5}]"#)
                .unwrap();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[2].contains(r#""time":"1969-12-31T23:59:55.000Z""#),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn time_is_read_from_time_or_timestamp_else_warned() {
        let lines =
            run(r#"[{"time":"2024-01-02T03:04:05Z"},{"timestamp":1700000000},{"x":1}]"#).unwrap();
        assert!(
            lines[0].contains(r#""time":"2024-01-02T03:04:05.000Z""#),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].contains(r#""time":"2023-11-14T22:13:20.000Z""#),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains("time: missing, received_at used"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn wrong_types_warn_but_keep_the_event() {
        let lines = run(r#"{"id":{"n":1},"severity":5}"#).unwrap();
        assert!(
            lines[0].contains("id: not a string or number"),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains("severity: not a string"), "{}", lines[0]);
    }
}
