//! The `generic` decoder: any JSON object, or array of objects, is one event per object.
//!
//! Without a mapping, the common field names are read (the first present wins): id from
//! `id`/`uid`/`event_id`, title from `title`/`name`/`summary`/`rule`, description from
//! `description`/`message`/`details`, severity from `severity`/`level`/`priority` (a word, or a
//! number: 0-5 as OCSF `severity_id`, and `priority` 1-5 as P1 critical .. P5 informational),
//! time from `time`/`timestamp`/`created_at`/`@timestamp` (see [`auto_time`]). The id is taken
//! to name one notification: a body whose `id` names an alert notified several times should
//! leave it out (the hash of the whole object then tells the notifications apart) or use a
//! mapping. With a `[sources.mapping]` (see `mapping.rs`), every Event field comes from the
//! pointer or constant the config names, and the records may sit inside the body
//! (`records = "/alerts"`).

use serde::Deserialize;
use serde_json::value::RawValue;

use std::borrow::Cow;

use super::fields::{epoch_millis, epoch_seconds, integer, text, text_or_number, Warnings};
use super::json::{first_byte, malformed, offset_in, parse_object, string};
use super::mapping::{Mapping, Source, TimeFormat, Value};
use super::{emit_each_object, emit_each_read, Context, DecodeError, Vendor};
use crate::normalize::{Event, EventId, Kind, Severity, Status, Timestamp};

/// The common field names the generic decoder looks at; everything else is skipped without
/// copying. Several names per Event field, read in this order.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    uid: Option<&'a RawValue>,
    #[serde(borrow, default)]
    event_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    title: Option<&'a RawValue>,
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    summary: Option<&'a RawValue>,
    #[serde(borrow, default)]
    rule: Option<&'a RawValue>,
    #[serde(borrow, default)]
    description: Option<&'a RawValue>,
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
    #[serde(borrow, default)]
    details: Option<&'a RawValue>,
    #[serde(borrow, default)]
    severity: Option<&'a RawValue>,
    #[serde(borrow, default)]
    level: Option<&'a RawValue>,
    #[serde(borrow, default)]
    priority: Option<&'a RawValue>,
    #[serde(borrow, default)]
    time: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow, default)]
    created_at: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "@timestamp")]
    at_timestamp: Option<&'a RawValue>,
}

/// What a body must be, as the decode error says.
const EXPECTED: &str = "a JSON object or an array of objects";

pub fn decode<'a, F>(body: &'a str, ctx: &Context<'a>, emit: F) -> Result<usize, DecodeError>
where
    F: FnMut(Event<'a>) -> std::ops::ControlFlow<()>,
{
    emit_each_read(
        body,
        EXPECTED,
        |p, raw| fill(raw, p, ctx),
        |raw, offset| normalize(raw, offset, ctx),
        emit,
    )
}

/// The first field that is present and not null.
fn first<'a>(fields: &[Option<&'a RawValue>]) -> Option<&'a RawValue> {
    fields.iter().flatten().copied().find(|r| r.get() != "null")
}

/// The first field that holds a non-empty string; a present field of another type adds `warn`
/// and the next one is tried.
fn first_text<'a>(
    fields: &[Option<&'a RawValue>],
    warn: &'static str,
    w: &mut Warnings,
) -> Option<Cow<'a, str>> {
    fields.iter().find_map(|f| text(*f, warn, w))
}

/// A severity as a number: `priority` 1-5 is P1 (critical) .. P5 (informational), as alerting
/// tools write it; anything else 1-5 is OCSF's `severity_id`; 0 and other numbers are unknown.
fn severity_number(n: i64, is_priority: bool) -> Option<Severity> {
    const OCSF: [Severity; 5] = [
        Severity::Informational,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];
    let i = usize::try_from(n).ok().filter(|i| (1..=5).contains(i))?;
    Some(if is_priority {
        OCSF[5 - i]
    } else {
        OCSF[i - 1]
    })
}

/// Without a mapping: the common field names (module docs).
fn normalize<'a>(
    raw: &'a RawValue,
    offset: usize,
    ctx: &Context<'a>,
) -> Result<Event<'a>, DecodeError> {
    Ok(fill(raw, parse_object(raw, offset)?, ctx))
}

/// The event of the object `raw`, read into `p`.
fn fill<'a>(raw: &'a RawValue, p: Probe<'a>, ctx: &Context<'a>) -> Event<'a> {
    let mut e = Event::new(Vendor::Generic, ctx.source, raw, ctx.received_at);
    let w = &mut e.normalization_warnings;
    if let Some(id) = text_or_number(
        first(&[p.id, p.uid, p.event_id]),
        "id: not a string or number",
        w,
    ) {
        e.id = EventId::Vendor(id);
    }
    e.title = first_text(
        &[p.title, p.name, p.summary, p.rule],
        "title: not a string",
        w,
    );
    e.description = first_text(
        &[p.description, p.message, p.details],
        "description: not a string",
        w,
    );
    let sev = [(p.severity, false), (p.level, false), (p.priority, true)]
        .into_iter()
        .find(|(f, _)| f.is_some_and(|r| r.get() != "null"));
    if let Some((Some(r), is_priority)) = sev {
        let t = r.get();
        if t.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            if let Some(n) = integer(Some(r), "severity: not a whole number", w) {
                match severity_number(n, is_priority) {
                    Some(s) => e.severity = s,
                    None => w.push("severity: unknown number"),
                }
            }
            e.vendor_severity = Some(Cow::Borrowed(t));
        } else if let Some(word) = string(r) {
            let number = word.trim().parse::<i64>().ok();
            match number.map_or_else(
                || Severity::from_word(&word),
                |n| severity_number(n, is_priority),
            ) {
                Some(s) => e.severity = s,
                None if number.is_some() => w.push("severity: unknown number"),
                None => w.push("severity: unknown word"),
            }
            e.vendor_severity = Some(word);
        } else {
            w.push("severity: not a string or number");
        }
    }
    let time = auto_time(
        first(&[p.time, p.timestamp, p.created_at, p.at_timestamp]),
        &mut e.normalization_warnings,
        &mut e.unparsed_time,
    );
    match time {
        Some(t) => e.time = t,
        None => e
            .normalization_warnings
            .push("time: missing, received_at used"),
    }
    if [
        p.id,
        p.uid,
        p.event_id,
        p.title,
        p.name,
        p.summary,
        p.rule,
        p.description,
        p.message,
        p.details,
        p.severity,
        p.level,
        p.priority,
        p.time,
        p.timestamp,
        p.created_at,
        p.at_timestamp,
    ]
    .iter()
    .all(Option::is_none)
    {
        e.mark_unrecognized();
    }
    e
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

/// A time string read with `parse`; text that does not parse is kept in `unparsed` (it is
/// written as a warning with the text), another JSON type adds [`TIME_WARN`].
fn time_text<'a>(
    r: &'a RawValue,
    parse: impl FnOnce(&str) -> Option<Timestamp>,
    w: &mut Warnings,
    unparsed: &mut Option<Cow<'a, str>>,
) -> Option<Timestamp> {
    let s = text(Some(r), TIME_WARN, w)?;
    let t = parse(&s);
    if t.is_none() {
        *unparsed = Some(s);
    }
    t
}

/// A time written as a string (RFC 3339, `YYYY-MM-DD HH:MM:SS` in UTC, or RFC 2822), or as
/// epoch seconds or milliseconds (told apart by magnitude: epoch milliseconds passed 10^11 in
/// 1973, epoch seconds will not until 5138).
fn auto_time<'a>(
    raw: Option<&'a RawValue>,
    w: &mut Warnings,
    unparsed: &mut Option<Cow<'a, str>>,
) -> Option<Timestamp> {
    let r = raw.filter(|r| r.get() != "null")?;
    if r.get().starts_with('"') {
        time_text(r, Timestamp::parse_auto, w, unparsed)
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

fn mapped_time<'a>(
    m: &'a Mapping,
    raw: &'a RawValue,
    w: &mut Warnings,
    unparsed: &mut Option<Cow<'a, str>>,
) -> Option<Timestamp> {
    match Value::of(m.fields.time.as_ref(), raw)? {
        Value::Const(c) => Timestamp::parse_rfc3339(c),
        Value::Raw(r) => match &m.time_format {
            TimeFormat::Rfc3339 => time_text(r, Timestamp::parse_rfc3339, w, unparsed),
            TimeFormat::EpochSeconds => epoch_seconds(Some(r), TIME_WARN, w),
            TimeFormat::EpochMillis => epoch_millis(Some(r), TIME_WARN, w),
            TimeFormat::Auto => auto_time(Some(r), w, unparsed),
            TimeFormat::Pattern(p) => time_text(r, |s| p.read(s), w, unparsed),
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
    match mapped_time(m, raw, w, &mut e.unparsed_time) {
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
        /// Reading each object in one pass gives the same events, count and error as splitting
        /// the body and then reading each object (see `vendors::one_pass`).
        #[test]
        fn one_pass_reads_what_the_ordinary_reading_reads((body, limit) in crate::vendors::one_pass::bodies(vec![
            include_str!("../../fixtures/vendors/generic-common-field-names.json").trim().trim_start_matches('[').trim_end_matches(']'),
            r#"{"severity":{"x":1},"time":[1],"title":7}"#,
            r#"{}"#,
            r#"7"#,
            r#"{"id":"a","id":"b"}"#,
            r#"{"id":"x""#,
            r#"{"id":"y",}"#,
            r#"{"id":"\u0035","message":"a\"b"}"#,
        ])) {
            let ctx = Context { source: "s", received_at: crate::normalize::Timestamp(5) };
            crate::vendors::one_pass::assert_same_events!(&body, limit, &ctx);
        }
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
        let lines = run(r#"{"id":{"n":1},"severity":[5]}"#).unwrap();
        assert!(
            lines[0].contains("id: not a string or number"),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].contains("severity: not a string or number"),
            "{}",
            lines[0]
        );
    }

    fn one(body: &str) -> serde_json::Value {
        serde_json::from_str(&run(body).unwrap()[0]).unwrap()
    }

    #[test]
    fn common_field_names_without_a_mapping() {
        let e = one(
            r#"{"uid":"u-1","name":"Disk full","message":"/var at 99%","level":"error",
                "created_at":"2024-01-02 03:04:05"}"#,
        );
        assert_eq!(e["id"], "u-1");
        assert_eq!(e["title"], "Disk full");
        assert_eq!(e["description"], "/var at 99%");
        assert_eq!(
            (&e["severity"], &e["vendor_severity"]),
            (&"medium".into(), &"error".into())
        );
        assert_eq!(
            e["time"], "2024-01-02T03:04:05.000Z",
            "plain date-time is UTC"
        );
        let e = one(
            r#"{"event_id":7,"summary":"s","rule":"r","details":"d","@timestamp":"Tue, 2 Jan 2024 04:04:05 +0100"}"#,
        );
        assert_eq!(
            (&e["id"], &e["title"], &e["description"]),
            (&"7".into(), &"s".into(), &"d".into())
        );
        assert_eq!(e["time"], "2024-01-02T03:04:05.000Z", "RFC 2822");
        // The first name present wins, in the documented order.
        let e =
            one(r#"{"id":"a","uid":"b","title":"t","name":"n","description":"x","message":"m"}"#);
        assert_eq!(
            (&e["id"], &e["title"], &e["description"]),
            (&"a".into(), &"t".into(), &"x".into())
        );
        let e = one(r#"{"rule":"only the rule"}"#);
        assert_eq!(e["title"], "only the rule");
    }

    /// Severity words and numbers: (field and value, severity, warning).
    #[test]
    fn severity_words_and_numbers() {
        let table: &[(&str, &str, Option<&str>)] = &[
            (r#""severity":"HIGH""#, "high", None),
            (r#""severity":4"#, "high", None),
            (r#""severity":"5""#, "critical", None),
            (
                r#""severity":"sev9""#,
                "unknown",
                Some("severity: unknown word"),
            ),
            (
                r#""severity":0"#,
                "unknown",
                Some("severity: unknown number"),
            ),
            (r#""level":"warning""#, "low", None),
            (r#""level":2"#, "low", None),
            (r#""priority":1"#, "critical", None),
            (r#""priority":"2""#, "high", None),
            (r#""priority":5"#, "informational", None),
            (r#""priority":"medium""#, "medium", None),
            (
                r#""priority":9"#,
                "unknown",
                Some("severity: unknown number"),
            ),
            (r#""severity":null,"level":"critical""#, "critical", None),
        ];
        for &(field, sev, warn) in table {
            let e = one(&format!("{{{field},\"time\":0}}"));
            assert_eq!(e["severity"], sev, "{field}");
            let warnings = e.get("normalization_warnings").cloned().unwrap_or_default();
            match warn {
                Some(w) => assert_eq!(warnings, serde_json::json!([w]), "{field}"),
                None => assert!(warnings.is_null(), "{field}: {warnings}"),
            }
        }
    }

    #[test]
    fn times_that_do_not_parse_keep_their_text() {
        let e = one(r#"{"timestamp":"yesterday at noon"}"#);
        assert_eq!(
            e["normalization_warnings"],
            serde_json::json!([
                "time: missing, received_at used",
                "time: not understood: \"yesterday at noon\""
            ])
        );
        assert_eq!(e["time"], e["received_at"]);
    }

    #[test]
    fn mapping_time_format_takes_a_strftime_pattern() {
        let mapping = r#"
            time = "/t"
            time_format = "%b %d, %Y %Z"
        "#;
        let events = run_mapped(
            r#"[{"t":"Jan 21, 2018 UTC"},{"t":"Oct 14, 2023 09:16:04 UTC"},{"t":5}]"#,
            mapping,
        )
        .unwrap();
        assert_eq!(events[0]["time"], "2018-01-21T00:00:00.000Z");
        // The mapping names no severity: that is the only warning of the first record.
        assert_eq!(
            events[0]["normalization_warnings"],
            serde_json::json!([crate::vendors::NO_SEVERITY])
        );
        assert_eq!(
            events[1]["normalization_warnings"],
            serde_json::json!([
                "time: missing, received_at used",
                crate::vendors::NO_SEVERITY,
                "time: not understood: \"Oct 14, 2023 09:16:04 UTC\""
            ])
        );
        assert_eq!(
            events[2]["normalization_warnings"],
            serde_json::json!([
                "time: not in the configured time format",
                "time: missing, received_at used",
                crate::vendors::NO_SEVERITY
            ])
        );
        let xsiam = "time = \"/t\"\ntime_format = \"%b %d, %Y %H:%M:%S %Z\"";
        let e = &run_mapped(r#"{"t":"Oct 14, 2023 09:16:04 UTC"}"#, xsiam).unwrap()[0];
        assert_eq!(e["time"], "2023-10-14T09:16:04.000Z");
        let auto = "time = \"/t\"";
        let e = &run_mapped(r#"{"t":"Sat, 14 Oct 2023 11:16:04 +0200"}"#, auto).unwrap()[0];
        assert_eq!(e["time"], "2023-10-14T09:16:04.000Z", "auto reads RFC 2822");
    }
}
