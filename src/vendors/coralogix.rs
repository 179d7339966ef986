//! Coralogix outbound-webhook alerts: the default body of its generic webhook template (one
//! object with `alert_id`, `name`, `description`, `alert_action`, `alert_url` and a `fields`
//! list of `{key, value}` pairs), rendered by Coralogix from `$PLACEHOLDER`s.
//!
//! Coralogix leaves placeholders that do not apply as literal text (`"$SERVICE"`), writes
//! missing values as the string `"null"`, and sends most numbers as strings; all of these are
//! read as absent or parsed leniently. The id is `<alertUniqueIdentifier>:<action>:<timestampMs>`
//! (the unique identifier survives edits of the alert; the time tells repeated triggers apart);
//! without a time it is a hash of the object.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::fields::{epoch_millis, text, Warnings};
use super::json::{for_each_element, offset_in, parse_object, string};
use super::{emit_each_object, Context, DecodeError, Vendor};
use crate::normalize::{Event, EventId, Ocsf, Severity, Status, Timestamp};

#[derive(Deserialize, Default)]
#[serde(default)]
struct Alert<'a> {
    #[serde(borrow)]
    alert_id: Option<&'a RawValue>,
    #[serde(borrow)]
    name: Option<&'a RawValue>,
    #[serde(borrow)]
    description: Option<&'a RawValue>,
    #[serde(borrow)]
    alert_action: Option<&'a RawValue>,
    #[serde(borrow)]
    alert_url: Option<&'a RawValue>,
    #[serde(borrow)]
    fields: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Field<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
}

/// The `fields` entries siemgate reads.
#[derive(Default)]
struct Known<'a> {
    unique_id: Option<&'a RawValue>,
    severity: Option<&'a RawValue>,
    severity_lowercase: Option<&'a RawValue>,
    timestamp_ms: Option<&'a RawValue>,
    timestamp_iso: Option<&'a RawValue>,
    timestamp: Option<&'a RawValue>,
    application: Option<&'a RawValue>,
    subsystem: Option<&'a RawValue>,
    computer: Option<&'a RawValue>,
    team: Option<&'a RawValue>,
    company_id: Option<&'a RawValue>,
    ip_address: Option<&'a RawValue>,
}

pub fn decode<'a, F>(body: &'a str, ctx: &Context<'a>, emit: F) -> Result<usize, DecodeError>
where
    F: FnMut(Event<'a>),
{
    emit_each_object(
        body,
        "a Coralogix alert object",
        |raw, offset| normalize(raw, offset, ctx),
        emit,
    )
}

/// An unrendered placeholder such as `$ALERT_ID` or `$status_code.numeric`.
fn is_placeholder(s: &str) -> bool {
    s.len() > 1
        && s.starts_with('$')
        && s[1..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// A rendered string: unrendered placeholders and `"null"` count as absent.
fn rendered<'a>(
    raw: Option<&'a RawValue>,
    warn: &'static str,
    w: &mut Warnings,
) -> Option<Cow<'a, str>> {
    text(raw, warn, w).filter(|s| s != "null" && !is_placeholder(s))
}

/// A rendered string, or a JSON number as its text.
fn rendered_or_number<'a>(
    raw: Option<&'a RawValue>,
    warn: &'static str,
    w: &mut Warnings,
) -> Option<Cow<'a, str>> {
    match raw {
        Some(r)
            if r.get()
                .starts_with(|c: char| c == '-' || c.is_ascii_digit()) =>
        {
            Some(Cow::Borrowed(r.get()))
        }
        _ => rendered(raw, warn, w),
    }
}

/// Keeps a `fields` value only if it was rendered.
fn rendered_raw(raw: Option<&RawValue>) -> Option<&RawValue> {
    raw.filter(|r| match string(r) {
        Some(s) => !s.is_empty() && s != "null" && !is_placeholder(&s),
        None => r.get() != "null",
    })
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

fn collect_fields<'a>(
    fields: &'a RawValue,
    offset: usize,
    w: &mut Warnings,
) -> Result<Known<'a>, DecodeError> {
    let mut known = Known::default();
    let text_json = fields.get();
    if !text_json.starts_with('[') {
        w.push("fields: not an array");
        return Ok(known);
    }
    for_each_element(text_json, |entry| {
        let Ok(f) = serde_json::from_str::<Field<'a>>(entry.get()) else {
            w.push("fields: entry without a string key");
            return Ok(());
        };
        let slot = match f.key.as_ref() {
            "alertUniqueIdentifier" => &mut known.unique_id,
            "severity" => &mut known.severity,
            "severityLowercase" => &mut known.severity_lowercase,
            "timestampMs" => &mut known.timestamp_ms,
            "timestampISO" => &mut known.timestamp_iso,
            "timestamp" => &mut known.timestamp,
            "application" => &mut known.application,
            "subsystem" => &mut known.subsystem,
            "computer" => &mut known.computer,
            "team" => &mut known.team,
            "companyId" => &mut known.company_id,
            "ipAddress" => &mut known.ip_address,
            _ => return Ok(()),
        };
        *slot = rendered_raw(f.value);
        Ok(())
    })
    .map_err(|e| e.shifted(offset))?;
    Ok(known)
}

fn normalize<'a>(
    raw: &'a RawValue,
    offset: usize,
    ctx: &Context<'a>,
) -> Result<Event<'a>, DecodeError> {
    let a: Alert<'a> = parse_object(raw, offset)?;
    let mut e = Event::new(Vendor::Coralogix, ctx.source, raw, ctx.received_at);
    let w: &mut Warnings = &mut e.normalization_warnings;
    let known = match a.fields {
        Some(f) => collect_fields(f, offset + offset_in(raw.get(), f.get()), w)?,
        None => Known::default(),
    };

    let action = rendered(a.alert_action, "alert_action: not a string", w);
    let (status, word, activity) = match action.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("resolve" | "resolved") => (Status::Resolved, "resolved", 3),
        Some("trigger" | "triggered") | None => (Status::Open, "triggered", 1),
        Some(_) => {
            w.push("alert_action: unknown action");
            (Status::Open, "triggered", 1)
        }
    };
    e.status = status;
    e.ocsf = Ocsf::DETECTION_FINDING.with_activity(activity);

    let time = epoch_millis(
        known.timestamp_ms,
        "fields.timestampMs: not epoch milliseconds",
        w,
    )
    .or_else(|| {
        rendered(known.timestamp_iso, "fields.timestampISO: not a string", w)
            .and_then(|s| Timestamp::parse_rfc3339(&s))
    })
    .or_else(|| {
        rendered(known.timestamp, "fields.timestamp: not a string", w).and_then(|s| slash_time(&s))
    });
    match time {
        Some(t) => e.time = t,
        None => w.push("time: missing, received_at used"),
    }

    let sev = rendered(known.severity, "fields.severity: not a string", w).or_else(|| {
        rendered(
            known.severity_lowercase,
            "fields.severityLowercase: not a string",
            w,
        )
    });
    if let Some(word) = sev {
        match severity_of(&word) {
            Some(s) => e.severity = s,
            None => w.push("severity: unknown word"),
        }
        e.vendor_severity = Some(word);
    }

    e.title = rendered(a.name, "name: not a string", w);
    e.description = rendered(a.description, "description: not a string", w);
    e.url = rendered(a.alert_url, "alert_url: not a string", w);
    e.resource.name = rendered(known.application, "fields.application: not a string", w);
    e.resource.kind = rendered(known.subsystem, "fields.subsystem: not a string", w);
    e.resource.id = rendered(known.computer, "fields.computer: not a string", w);
    e.resource.account_name = rendered(known.team, "fields.team: not a string", w);
    e.resource.account_id =
        rendered_or_number(known.company_id, "fields.companyId: not a string", w);
    // `ipAddress` can be "Multiple IPs"; only a real address is a source IP.
    e.network.src_ip = rendered(known.ip_address, "fields.ipAddress: not a string", w)
        .filter(|s| s.parse::<std::net::IpAddr>().is_ok());

    let uid = rendered(
        known.unique_id,
        "fields.alertUniqueIdentifier: not a string",
        w,
    )
    .or_else(|| rendered(a.alert_id, "alert_id: not a string", w));
    // Without a time two triggers of one alert would share `<uid>:<action>`; the hash of the
    // object (left to `Vendor::decode`) differs whenever the notification does.
    if let (Some(uid), Some(t)) = (uid, time) {
        e.id = EventId::Occurrence(uid, word, t.millis());
    }
    Ok(e)
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
            serde_json::json!(["time: missing, received_at used"])
        );
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
    fn without_a_time_the_id_is_the_hash_of_the_notification() {
        let a = r#"{"alert_id":"a1","alert_action":"trigger","description":"3 hits"}"#;
        let b = r#"{"alert_id":"a1","alert_action":"trigger","description":"5 hits"}"#;
        let id = |body: &str| run(body).unwrap()[0]["id"].clone();
        assert_eq!(id(a), id(a), "a retry keeps its id");
        assert_ne!(id(a), id(b), "another trigger of the same alert");
        assert_eq!(id(a).as_str().unwrap().len(), 32);
    }
}
