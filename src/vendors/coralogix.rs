//! Coralogix outbound-webhook alerts. Coralogix lets the admin write the body, so the decoder
//! reads the alert's facts wherever the documented templates put them:
//!
//! * the default alert template: top-level `alert_id`, `name`, `description`, `alert_action`,
//!   `alert_url` and a `fields` list of `{key, value}` pairs (`severity`, `timestampMs`,
//!   `alertUniqueIdentifier`, `team`, ...);
//! * the send-log (and Demisto) template: `applicationName`, `subsystemName`, `computerName`
//!   and `logEntries[]`, each with `timestamp` (epoch ms) beside a `text` object, or a string
//!   holding a JSON object, with `alert_severity`, `alert_id`, `alert_name`, `alert_url`,
//!   `hit_count`;
//! * free templates built from the `$PLACEHOLDER` list: the same facts under the names the
//!   placeholders suggest (`alert_severity`, `event_severity`, `alert_priority`,
//!   `event_timestamp_ms`, ...), at the top level.
//!
//! What is absent: an unrendered placeholder (`"$SERVICE"`), the string `"null"`, an empty
//! string, and the filler text Coralogix ships in its templates (`*insert computer name*`,
//! `<Insert your desired integration description>`, `<same-uuid>`). Numbers may come as
//! strings. The id is `<alertUniqueIdentifier or alert_id>:<action>:<time in ms>` (the unique
//! identifier survives edits of the alert; the time tells repeated triggers apart); without a
//! time it is a hash of the object.
//! Application and subsystem names label the log source, not a cloud resource: they stay in
//! `raw` and never fill `resource`. The send-log template's `privateKey` (a Send-Your-Data API
//! key) is redacted before the event leaves the decoder (see `redact.rs`).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer as _, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::fields::{integer, Warnings};
use super::json::{for_each_element, string};
use super::members;
use super::{emit_each_read, Context, DecodeError, Vendor};
use crate::normalize::{Event, EventId, Ocsf, Severity, Status, Timestamp};

/// One alert fact, whichever key or template carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Uid,
    AlertId,
    Name,
    Description,
    Action,
    Url,
    Severity,
    SeverityLower,
    Priority,
    TimeMs,
    TimeIso,
    Time,
    Application,
    Subsystem,
    Computer,
    Team,
    Company,
    Ip,
    HitCount,
}

const SLOTS: usize = 19;

impl Slot {
    /// The key names each fact goes by: the default template's top level and `fields` keys,
    /// the send-log template's `text` keys, and the placeholder-derived names of free
    /// templates.
    fn of(key: &str) -> Option<Slot> {
        Some(match key {
            "alertUniqueIdentifier" | "alert_unique_identifier" => Slot::Uid,
            "alert_id" | "alertId" => Slot::AlertId,
            "name" | "alert_name" | "alertName" | "title" => Slot::Name,
            "description" | "alert_description" | "alertDescription" => Slot::Description,
            "alert_action" | "alertAction" | "action" => Slot::Action,
            "alert_url" | "alertUrl" | "url" => Slot::Url,
            "severity" | "alert_severity" | "alertSeverity" | "event_severity"
            | "eventSeverity" => Slot::Severity,
            "severityLowercase" | "severity_lowercase" | "event_severity_lowercase" => {
                Slot::SeverityLower
            }
            "priority" | "alert_priority" | "alertPriority" | "opsgeniePriority"
            | "opsgenie_priority" => Slot::Priority,
            "timestampMs" | "timestamp_ms" | "event_timestamp_ms" | "eventTimestampMs" => {
                Slot::TimeMs
            }
            "timestampISO" | "timestamp_iso" | "event_timestamp_iso" | "eventTimestampIso" => {
                Slot::TimeIso
            }
            "timestamp" | "event_timestamp" | "eventTimestamp" => Slot::Time,
            "application" | "applicationName" | "application_name" | "alert_application" => {
                Slot::Application
            }
            "subsystem" | "subsystemName" | "subsystem_name" | "alert_subsystem" => Slot::Subsystem,
            "computer" | "computerName" | "computer_name" => Slot::Computer,
            "team" | "team_name" | "teamName" => Slot::Team,
            "companyId" | "company_id" => Slot::Company,
            "ipAddress" | "ip_address" => Slot::Ip,
            "hitCount" | "hit_count" => Slot::HitCount,
            _ => return None,
        })
    }

    /// The warning for a value of the wrong JSON type.
    fn warning(self) -> &'static str {
        match self {
            Slot::Uid => "alertUniqueIdentifier: not a string",
            Slot::AlertId => "alert_id: not a string",
            Slot::Name => "name: not a string",
            Slot::Description => "description: not a string",
            Slot::Action => "alert_action: not a string",
            Slot::Url => "alert_url: not a string",
            Slot::Severity => "severity: not a string",
            Slot::SeverityLower => "severityLowercase: not a string",
            Slot::Priority => "priority: not a string",
            Slot::TimeMs => "timestampMs: not epoch milliseconds",
            Slot::TimeIso => "timestampISO: not a string",
            Slot::Time => "timestamp: not a string or number",
            Slot::Application => "application: not a string",
            Slot::Subsystem => "subsystem: not a string",
            Slot::Computer => "computer: not a string",
            Slot::Team => "team: not a string",
            Slot::Company => "companyId: not a string",
            Slot::Ip => "ipAddress: not a string",
            Slot::HitCount => "hitCount: not a number",
        }
    }
}

/// The facts found so far; the first rendered value of each wins.
#[derive(Default)]
struct Facts<'a> {
    values: [Option<Cow<'a, str>>; SLOTS],
    /// Any Coralogix key was seen, rendered or not.
    known: bool,
}

impl<'a> Facts<'a> {
    fn get(&self, slot: Slot) -> Option<&str> {
        self.values[slot as usize].as_deref()
    }

    fn take(&mut self, slot: Slot) -> Option<Cow<'a, str>> {
        self.values[slot as usize].take()
    }

    /// Records `raw` under the fact `key` names, unless that fact already has a value.
    fn put(&mut self, key: &str, raw: &'a RawValue, w: &mut Warnings) {
        let Some(slot) = Slot::of(key) else {
            return;
        };
        self.known = true;
        if self.values[slot as usize].is_some() {
            return;
        }
        match rendered(raw) {
            Ok(v) => self.values[slot as usize] = v,
            Err(()) => w.push(slot.warning()),
        }
    }

    /// Reads every member of an object.
    fn object(&mut self, obj: &'a RawValue, w: &mut Warnings) -> Result<(), DecodeError> {
        for_each_member(obj, |key, value| self.put(&key, value, w))
    }

    /// Adds the facts of `other` (read from a copy) that are still missing, as owned text.
    fn fill_from(&mut self, other: Facts<'_>) {
        self.known |= other.known;
        for (mine, theirs) in self.values.iter_mut().zip(other.values) {
            if mine.is_none() {
                *mine = theirs.map(|v| Cow::Owned(v.into_owned()));
            }
        }
    }
}

/// The text of a value: a string (absent when not rendered) or a number's JSON text; `Err` for
/// other JSON types. `null` is absent.
fn rendered(raw: &RawValue) -> Result<Option<Cow<'_, str>>, ()> {
    let t = raw.get();
    if t == "null" {
        return Ok(None);
    }
    if t.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Ok(Some(Cow::Borrowed(t)));
    }
    let s = string(raw).ok_or(())?;
    Ok((!is_absent(&s)).then_some(s))
}

/// Empty, `"null"`, an unrendered placeholder, or template filler.
fn is_absent(s: &str) -> bool {
    let s = s.trim();
    s.is_empty() || s == "null" || is_placeholder(s) || is_filler(s)
}

/// An unrendered placeholder such as `$ALERT_ID` or `$status_code.numeric`.
fn is_placeholder(s: &str) -> bool {
    s.len() > 1
        && s.starts_with('$')
        && s[1..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// Text Coralogix's templates ship for the admin to replace: `*insert computer name*`,
/// `<Insert your desired integration description>`, `Insert your desired integration
/// description`, `<send-your-logs-privatekey>`, `<same-uuid>`.
fn is_filler(s: &str) -> bool {
    let inner = s
        .strip_prefix('*')
        .and_then(|r| r.strip_suffix('*'))
        .or_else(|| s.strip_prefix('<').and_then(|r| r.strip_suffix('>')));
    let insert = |t: &str| {
        t.get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("insert "))
    };
    match inner {
        Some(t) => {
            insert(t)
                || (s.starts_with('<')
                    && !t.is_empty()
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b' ')
                    && t.contains(['-', ' ']))
        }
        None => insert(s) && s.to_ascii_lowercase().contains("your desired"),
    }
}

/// Calls `each` with every member of a JSON object, keys borrowed unless escaped.
///
/// `obj` has been validated by serde_json (it is a value from the body, or from a string that
/// serde_json has just parsed), so its members are found by skipping over their values
/// ([`members::visit_map`]) rather than by parsing the object again. Only were that to fail,
/// having handed nothing over, would serde_json read the object and say why.
fn for_each_member<'a, F>(obj: &'a RawValue, mut each: F) -> Result<(), DecodeError>
where
    F: FnMut(Cow<'a, str>, &'a RawValue),
{
    let mut handed = false;
    let skipped = members::visit_map(
        obj,
        Members(|key, value| {
            handed = true;
            each(key, value);
        }),
    );
    if skipped.is_some() || handed {
        return skipped.ok_or_else(|| DecodeError::Malformed {
            offset: 0,
            message: "object not read to its end".to_owned(),
        });
    }
    serde_json::Deserializer::from_str(obj.get())
        .deserialize_map(Members(each))
        .map_err(|e| super::json::malformed(obj.get(), 0, &e))
}

/// The members of an object, handed to the function it holds.
struct Members<F>(F);

impl<'de, F> Visitor<'de> for Members<F>
where
    F: FnMut(Cow<'de, str>, &'de RawValue),
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let value = map.next_value::<&'de RawValue>()?;
            (self.0)(key.0, value);
        }
        Ok(())
    }
}

/// A member's key, borrowed unless escaped.
#[derive(Deserialize)]
#[serde(transparent)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

#[derive(Deserialize)]
struct Field<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
}

/// What a body's elements must be.
const EXPECTED: &str = "a Coralogix alert object";

pub fn decode<'a, F>(body: &'a str, ctx: &Context<'a>, emit: F) -> Result<usize, DecodeError>
where
    F: FnMut(Event<'a>) -> std::ops::ControlFlow<()>,
{
    emit_each_read(
        body,
        EXPECTED,
        |alert: Alert<'a>, raw| event(alert, raw, ctx),
        |raw, offset| normalize(raw, offset, ctx),
        emit,
    )
}

/// An alert's facts and warnings, read from its object as [`normalize`] reads them: its
/// members, then its `fields` and `logEntries` lists. Read straight from the body by the
/// one-pass reader (`super::emit_each_read`), so that the body is not split into objects
/// first; a list that only an entry-by-entry reading takes fails this reading, and the ordinary
/// one reads the alert and reports what it finds.
struct Alert<'a> {
    facts: Facts<'a>,
    warnings: Warnings,
}

impl<'de> Deserialize<'de> for Alert<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(AlertMembers)
    }
}

/// Reads an alert object's members into an [`Alert`].
struct AlertMembers;

impl<'de> Visitor<'de> for AlertMembers {
    type Value = Alert<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Alert<'de>, A::Error> {
        let mut reading = Reading::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let value = map.next_value::<&'de RawValue>()?;
            reading.member(&key.0, value);
        }
        reading.finish().map_err(de::Error::custom)
    }
}

/// An alert being read: its members as they come, then its `fields` and `logEntries` lists.
#[derive(Default)]
struct Reading<'a> {
    facts: Facts<'a>,
    warnings: Warnings,
    fields: Option<&'a RawValue>,
    entries: Option<&'a RawValue>,
}

impl<'a> Reading<'a> {
    fn member(&mut self, key: &str, value: &'a RawValue) {
        match key {
            "fields" => self.fields = Some(value),
            "logEntries" => self.entries = Some(value),
            _ => self.facts.put(key, value, &mut self.warnings),
        }
    }

    /// The alert, once its lists are read after its other members.
    fn finish(mut self) -> Result<Alert<'a>, DecodeError> {
        if let Some(f) = self.fields {
            self.facts.known = true;
            read_fields(f, &mut self.facts, &mut self.warnings)?;
        }
        if let Some(l) = self.entries {
            self.facts.known = true;
            read_log_entries(l, &mut self.facts, &mut self.warnings)?;
        }
        Ok(Alert {
            facts: self.facts,
            warnings: self.warnings,
        })
    }
}

/// Coralogix severities: Info, Warning, Error, Critical (any case; also debug/verbose/warn).
fn severity_of(word: &str) -> Option<Severity> {
    const TABLE: &[(&str, Severity)] = &[
        ("info", Severity::Informational),
        ("debug", Severity::Informational),
        ("verbose", Severity::Informational),
        ("warning", Severity::Medium),
        ("warn", Severity::Medium),
        ("error", Severity::High),
        ("critical", Severity::Critical),
    ];
    TABLE
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(word.trim()))
        .map(|&(_, s)| s)
}

/// Coralogix alert priorities (`$ALERT_PRIORITY`, `$OPSGENIE_PRIORITY`): P1 critical .. P5
/// informational, as Coralogix maps its severities onto them (Critical P1, Error P2, Warning
/// P3, Info P5).
fn priority_of(word: &str) -> Option<Severity> {
    const TABLE: &[(&str, Severity)] = &[
        ("p1", Severity::Critical),
        ("p2", Severity::High),
        ("p3", Severity::Medium),
        ("p4", Severity::Low),
        ("p5", Severity::Informational),
    ];
    TABLE
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(word.trim()))
        .map(|&(_, s)| s)
}

/// `2024/08/14 21:28:56 GMT`, the format of `$EVENT_TIMESTAMP`.
fn slash_time(s: &str) -> Option<Timestamp> {
    let s = s.strip_suffix(" GMT").or_else(|| s.strip_suffix(" UTC"))?;
    let b = s.as_bytes();
    if b.len() != 19 || b[4] != b'/' || b[7] != b'/' || b[10] != b' ' {
        return None;
    }
    let mut iso = [0u8; 20];
    iso[..19].copy_from_slice(b);
    iso[4] = b'-';
    iso[7] = b'-';
    iso[10] = b'T';
    iso[19] = b'Z';
    Timestamp::parse_rfc3339(std::str::from_utf8(&iso).ok()?)
}

/// Epoch milliseconds written as digits (a JSON number or a numeric string).
fn millis(s: &str) -> Option<Timestamp> {
    let raw: &RawValue = serde_json::from_str(s).ok()?;
    integer(Some(raw), "", &mut Vec::new()).map(Timestamp)
}

/// A `timestamp` of any documented kind: epoch ms, RFC 3339, or `$EVENT_TIMESTAMP`'s format.
fn any_time(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    // Epoch ms, possibly with a fraction (Coralogix keeps sub-millisecond precision).
    if s.parse::<f64>().is_ok() {
        return millis(s);
    }
    Timestamp::parse_rfc3339(s).or_else(|| slash_time(s))
}

/// Reads `fields` (`[{key, value}]`) into `facts`.
fn read_fields<'a>(
    fields: &'a RawValue,
    facts: &mut Facts<'a>,
    w: &mut Warnings,
) -> Result<(), DecodeError> {
    if !fields.get().starts_with('[') {
        w.push("fields: not an array");
        return Ok(());
    }
    // One pass over the list when every entry is a `{key, value}` object; else entry by entry,
    // where a broken entry is a warning. Both give the same facts and warnings for a list the
    // first one takes, and reading each entry twice (once to split the list, once to read it)
    // was a large part of a Coralogix alert's cost.
    let mut trial = Facts {
        values: facts.values.clone(),
        known: facts.known,
    };
    let mut trial_warnings = Warnings::new();
    // `fields` is a value from the body, which serde_json has validated: its entries are
    // found by skipping over their values rather than by parsing the list again.
    let one_pass = members::visit_seq(
        fields,
        Entries {
            facts: &mut trial,
            w: &mut trial_warnings,
        },
    );
    if one_pass.is_some() {
        *facts = trial;
        w.append(&mut trial_warnings);
        return Ok(());
    }
    for_each_element(fields.get(), |entry| {
        match serde_json::from_str::<Field<'a>>(entry.get()) {
            Ok(Field {
                key,
                value: Some(value),
            }) => facts.put(&key, value, w),
            Ok(_) => {}
            Err(_) => w.push("fields: entry without a string key"),
        }
        Ok(())
    })
}

/// The `fields` list read in one pass: each `{key, value}` entry goes into `facts` as it is
/// parsed. Fails on the first entry that is not such an object.
struct Entries<'f, 'a> {
    facts: &'f mut Facts<'a>,
    w: &'f mut Warnings,
}

impl<'a> Visitor<'a> for Entries<'_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of {key, value} objects")
    }

    fn visit_seq<A: serde::de::SeqAccess<'a>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(entry) = seq.next_element::<Field<'a>>()? {
            if let Some(value) = entry.value {
                self.facts.put(&entry.key, value, self.w);
            }
        }
        Ok(())
    }
}

/// Reads the send-log template's `logEntries[]`: each entry's `timestamp` and its `text`
/// (an object, or a string holding one). The entry's own `severity` is the level of the log
/// line Coralogix writes (a constant in the template), not the alert's, and is not read.
fn read_log_entries<'a>(
    entries: &'a RawValue,
    facts: &mut Facts<'a>,
    w: &mut Warnings,
) -> Result<(), DecodeError> {
    if !entries.get().starts_with('[') {
        w.push("logEntries: not an array");
        return Ok(());
    }
    for_each_element(entries.get(), |entry| {
        if !entry.get().starts_with('{') {
            w.push("logEntries: entry not an object");
            return Ok(());
        }
        for_each_member(entry, |key, value| match key.as_ref() {
            "timestamp" => facts.put("timestamp", value, w),
            "text" => read_text(value, facts, w),
            _ => {}
        })
    })
}

/// A log entry's `text`: an object of alert facts, a string holding one (read from a copy), or
/// a plain message (nothing to read).
fn read_text<'a>(value: &'a RawValue, facts: &mut Facts<'a>, w: &mut Warnings) {
    if value.get().starts_with('{') {
        // `value` was validated with the body, so reading its members cannot fail.
        let _ = facts.object(value, w);
        return;
    }
    let Some(text) = string(value) else {
        return;
    };
    if let Ok(obj) = serde_json::from_str::<&RawValue>(&text) {
        if obj.get().starts_with('{') {
            let mut inner = Facts::default();
            if inner.object(obj, w).is_ok() {
                facts.fill_from(inner);
            }
        }
    }
}

fn normalize<'a>(
    raw: &'a RawValue,
    offset: usize,
    ctx: &Context<'a>,
) -> Result<Event<'a>, DecodeError> {
    let mut reading = Reading::default();
    for_each_member(raw, |key, value| reading.member(&key, value))
        .map_err(|e| e.shifted(offset))?;
    let alert = reading.finish().map_err(|e| e.shifted(offset))?;
    Ok(event(alert, raw, ctx))
}

/// The event of an alert whose facts have been read.
fn event<'a>(alert: Alert<'a>, raw: &'a RawValue, ctx: &Context<'a>) -> Event<'a> {
    let Alert {
        mut facts,
        warnings,
    } = alert;
    let mut e = Event::new(Vendor::Coralogix, ctx.source, raw, ctx.received_at);
    e.normalization_warnings = warnings;
    let w: &mut Warnings = &mut e.normalization_warnings;

    let action = facts.get(Slot::Action).map(str::to_ascii_lowercase);
    let (status, word, activity) = match action.as_deref() {
        Some("resolve" | "resolved") => (Status::Resolved, "resolved", 3),
        Some("trigger" | "triggered") | None => (Status::Open, "triggered", 1),
        Some(_) => {
            w.push("alert_action: unknown action");
            (Status::Open, "triggered", 1)
        }
    };
    e.status = status;
    e.ocsf = Ocsf::DETECTION_FINDING.with_activity(activity);

    let mut time = None;
    if let Some(t) = facts.get(Slot::TimeMs) {
        time = millis(t);
        if time.is_none() {
            w.push(Slot::TimeMs.warning());
        }
    }
    if let (None, Some(t)) = (time, facts.get(Slot::TimeIso)) {
        time = Timestamp::parse_rfc3339(t.trim());
        if time.is_none() {
            w.push("timestampISO: not RFC 3339");
        }
    }
    if let (None, Some(t)) = (time, facts.get(Slot::Time)) {
        time = any_time(t);
        if time.is_none() {
            w.push("timestamp: not epoch ms, RFC 3339 or YYYY/MM/DD HH:MM:SS GMT");
        }
    }
    match time {
        Some(t) => e.time = t,
        None => w.push("time: missing, received_at used"),
    }

    let sev_word = facts
        .take(Slot::Severity)
        .or_else(|| facts.take(Slot::SeverityLower));
    if let Some(word) = sev_word {
        match severity_of(&word) {
            Some(s) => e.severity = s,
            None => w.push("severity: unknown word"),
        }
        e.vendor_severity = Some(word);
    } else if let Some(p) = facts.take(Slot::Priority) {
        match priority_of(&p) {
            Some(s) => e.severity = s,
            None => w.push("priority: unknown word"),
        }
        e.vendor_severity = Some(p);
    }

    e.title = facts.take(Slot::Name);
    e.description = facts.take(Slot::Description);
    e.url = facts.take(Slot::Url);
    e.resource.id = facts.take(Slot::Computer);
    e.resource.account_name = facts.take(Slot::Team);
    e.resource.account_id = facts.take(Slot::Company);
    // `ipAddress` can be "Multiple IPs"; only a real address is a source IP.
    e.network.src_ip = facts
        .take(Slot::Ip)
        .filter(|s| s.parse::<std::net::IpAddr>().is_ok());

    // Without a time two triggers of one alert would share `<uid>:<action>`; the hash of the
    // object (left to `Vendor::decode`) differs whenever the notification does.
    let uid = facts.take(Slot::Uid).or_else(|| facts.take(Slot::AlertId));
    if let (Some(uid), Some(t)) = (uid, time) {
        e.id = EventId::Occurrence(uid, word, t.millis());
    }
    if !facts.known {
        e.mark_unrecognized();
    }
    e
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const VENDOR: &str = "coralogix";

    fn run(body: &str) -> Result<Vec<serde_json::Value>, DecodeError> {
        let ctx = Context {
            source: "cx",
            received_at: Timestamp(5),
        };
        let mut out = Vec::new();
        Vendor::from_name(VENDOR).unwrap().decode(body, &ctx, |e| {
            out.push(serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap())
        })?;
        Ok(out)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
        /// Reading each alert in one pass gives the same events, count and error as splitting
        /// the body and then reading each alert (see `vendors::one_pass`).
        #[test]
        fn one_pass_reads_what_the_ordinary_reading_reads((body, limit) in crate::vendors::one_pass::bodies(vec![
            include_str!("../../fixtures/vendors/coralogix-alert-trigger-keep-mock.json"),
            include_str!("../../fixtures/vendors/coralogix-sendlog-template-private-key.json"),
            include_str!("../../fixtures/vendors/coralogix-demisto-template-text-as-string.json"),
            include_str!("../../fixtures/vendors/coralogix-free-template-placeholders.json"),
            r#"{"alert_id":"a","name":"n","fields":[{"key":"severity","value":"Error"},7,{"value":1}]}"#,
            r#"{"name":"n","fields":{"key":"team"},"logEntries":"x","name":"m"}"#,
            r#"{"fields":[{"key":"hitCount","value":3}],"fields":[]}"#,
            r#"{"logEntries":[{"timestamp":1700000000000,"text":"{\"alert_action\":\"resolve\"}"}]}"#,
            r#"{}"#,
            r#"7"#,
            r#"{"name":"x""#,
            r#"{"name":"y",}"#,
            r#"{"n\u0061me":"\u0035"}"#,
        ])) {
            let ctx = Context { source: "cx", received_at: crate::normalize::Timestamp(5) };
            crate::vendors::one_pass::assert_same_events!(&body, limit, &ctx);
        }
    }

    #[test]
    fn rendered_alert_maps_fields_and_ignores_placeholders() {
        let body = include_str!("../../fixtures/vendors/coralogix-alert-trigger-keep-mock.json");
        let e = &run(body).unwrap()[0];
        assert_eq!(e["vendor"], "coralogix");
        assert_eq!(
            e["id"],
            "780c892f-f4db-43cb-a833-5f13a5523e96:triggered:1723670936254"
        );
        assert_eq!(e["time"], "2024-08-14T21:28:56.254Z");
        assert_eq!(e["severity"], "high");
        assert_eq!(e["vendor_severity"], "ERROR");
        assert_eq!(e["status"], "open");
        assert_eq!(e["title"], "Keep");
        assert_eq!(e["resource"]["account_name"], "ezhil");
        assert_eq!(e["resource"]["account_id"], "1010757");
        assert!(
            e.get("network").is_none(),
            "\"Multiple IPs\" is not an address: {e}"
        );
        assert!(e.get("normalization_warnings").is_none(), "{e}");
        let mut normalized = e.clone();
        normalized.as_object_mut().unwrap().remove("raw");
        assert!(
            !normalized.to_string().contains("\"$"),
            "a placeholder leaked: {normalized}"
        );
    }

    #[test]
    fn unrendered_template_is_an_event_with_warnings_only_for_time() {
        let body = include_str!(
            "../../fixtures/vendors/coralogix-template-default-terraform-provider.json"
        );
        let e = &run(body).unwrap()[0];
        assert!(
            e.get("title").is_none() && e.get("vendor_severity").is_none(),
            "{e}"
        );
        assert_eq!(
            e["normalization_warnings"],
            serde_json::json!([
                "time: missing, received_at used",
                crate::vendors::NO_SEVERITY
            ])
        );
        assert_eq!(e["severity"], "unknown");
        assert_eq!(e["severity_id"], 0);
        assert_eq!(
            e["id"].as_str().unwrap().len(),
            32,
            "hash id when nothing identifies the alert"
        );
    }

    #[test]
    fn resolve_numbers_as_strings_and_slash_time() {
        let body = r#"{"alert_id":"a1","alert_action":"resolve","fields":[
            {"key":"timestamp","value":"2024/08/14 21:28:56 GMT"},{"key":"severity","value":"Critical"},
            {"key":"ipAddress","value":"10.1.2.3"},{"key":"companyId","value":1010757},{"key":7}]}"#;
        let e = &run(body).unwrap()[0];
        assert_eq!(e["status"], "resolved");
        assert_eq!(e["ocsf"]["activity_id"], 3);
        assert_eq!(e["time"], "2024-08-14T21:28:56.000Z");
        assert_eq!(e["id"], "a1:resolved:1723670936000");
        assert_eq!(e["severity"], "critical");
        assert_eq!(e["network"]["src_ip"], "10.1.2.3");
        assert_eq!(e["resource"]["account_id"], "1010757");
        assert_eq!(
            e["normalization_warnings"],
            serde_json::json!(["fields: entry without a string key"])
        );
    }

    #[test]
    fn send_log_template_reads_the_facts_inside_log_entries() {
        let body = r#"{"privateKey":"<send-your-logs-privatekey>","applicationName":"payments",
            "subsystemName":"api","computerName":"$COMPUTER_NAME","logEntries":[{"severity":3,
            "timestamp":1723670936254,"text":{"integration_text":"<Insert your desired integration description>",
            "alert_severity":"Critical","alert_id":"a-9","alert_name":"Root login",
            "alert_url":"https://x.coralogix.com/#/insights?id=a-9","hit_count":"1"}}],
            "uuid":"<same-uuid>"}"#;
        let e = &run(body).unwrap()[0];
        assert_eq!(e["severity"], "critical");
        assert_eq!(e["vendor_severity"], "Critical");
        assert_eq!(e["title"], "Root login");
        assert_eq!(e["url"], "https://x.coralogix.com/#/insights?id=a-9");
        assert_eq!(e["time"], "2024-08-14T21:28:56.254Z");
        assert_eq!(e["id"], "a-9:triggered:1723670936254");
        assert!(
            e.get("resource").is_none(),
            "application and subsystem are not a resource: {e}"
        );
        assert!(e.get("description").is_none(), "filler is absent: {e}");
        assert_eq!(
            e["normalization_warnings"],
            serde_json::json!([crate::vendors::redact::WARNING])
        );
        assert_eq!(e["raw"]["privateKey"], "[redacted]");
    }

    #[test]
    fn filler_and_placeholders_are_absent() {
        for absent in [
            "*insert computer name*",
            "*Insert desired application name*",
            "<Insert your desired integration description>",
            "Insert your desired integration description",
            "<send-your-logs-privatekey>",
            "<same-uuid>",
            "$ALERT_NAME",
            "$status_code.numeric",
            "null",
            "  ",
        ] {
            assert!(is_absent(absent), "{absent:?}");
        }
        for present in [
            "Insert failed on table users",
            "<b>",
            "CPU > 90%",
            "$5 charge failed",
            "*",
        ] {
            assert!(!is_absent(present), "{present:?}");
        }
    }

    #[test]
    fn priority_stands_in_for_a_missing_severity_and_wrong_types_warn() {
        let e = &run(r#"{"alert_name":"n","alert_priority":"P2","timestamp":1000.75}"#).unwrap()[0];
        assert_eq!(e["severity"], "high");
        assert_eq!(e["vendor_severity"], "P2");
        assert_eq!(e["time"], "1970-01-01T00:00:01.000Z");
        let e = &run(r#"{"alert_name":"n","event_timestamp_ms":"1723670936254"}"#).unwrap()[0];
        assert_eq!(e["time"], "2024-08-14T21:28:56.254Z");
        assert_eq!(e["severity"], "unknown");
        let e = &run(
            r#"{"name":{"x":1},"alert_severity":"Critical","logEntries":[{"text":"plain words"}]}"#,
        )
        .unwrap()[0];
        assert_eq!(e["severity"], "critical");
        assert!(e.get("title").is_none());
        assert_eq!(
            e["normalization_warnings"],
            serde_json::json!(["name: not a string", "time: missing, received_at used"])
        );
        let e = &run(r#"{"anything":"else"}"#).unwrap()[0];
        assert_eq!(e["severity_id"], 0);
        assert!(e["normalization_warnings"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(crate::normalize::UNRECOGNIZED)));
    }

    #[test]
    fn without_a_time_the_id_is_the_hash_of_the_notification() {
        let a = r#"{"alert_id":"a1","alert_action":"trigger","description":"3 hits"}"#;
        let b = r#"{"alert_id":"a1","alert_action":"trigger","description":"5 hits"}"#;
        let id = |body: &str| run(body).unwrap()[0]["id"].clone();
        assert_eq!(id(a), id(a), "a retry keeps its id");
        assert_ne!(id(a), id(b), "another trigger of the same alert");
        assert_eq!(id(a).as_str().unwrap().len(), 32);
    }
}
