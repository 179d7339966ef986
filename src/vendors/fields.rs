//! Field readers every decoder shares. Vendor fields are deserialized as borrowed raw values so
//! that a field of an unexpected type never fails the whole body; these readers turn them into
//! typed values, and where a field is present but unusable they leave the Event field empty and
//! record a warning (`"<field>: <problem>"`) on the event instead.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::json::string;
use crate::normalize::{Event, Severity, Timestamp};

/// Warnings collected while normalizing one event.
pub type Warnings = Vec<&'static str>;

fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

/// A string field; empty strings count as absent. Any other JSON type adds `warn`.
pub fn text<'a>(
    raw: Option<&'a RawValue>,
    warn: &'static str,
    w: &mut Warnings,
) -> Option<Cow<'a, str>> {
    let raw = raw.filter(|r| !is_null(r))?;
    match string(raw) {
        Some(s) if s.is_empty() => None,
        Some(s) => Some(s),
        None => {
            w.push(warn);
            None
        }
    }
}

/// A string or a number (as its JSON text), e.g. an id or an account number.
pub fn text_or_number<'a>(
    raw: Option<&'a RawValue>,
    warn: &'static str,
    w: &mut Warnings,
) -> Option<Cow<'a, str>> {
    let raw = raw.filter(|r| !is_null(r))?;
    let t = raw.get();
    if t.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Some(Cow::Borrowed(t));
    }
    text(Some(raw), warn, w)
}

/// A whole number, written as a JSON number or a numeric string.
pub fn integer(raw: Option<&RawValue>, warn: &'static str, w: &mut Warnings) -> Option<i64> {
    let raw = raw.filter(|r| !is_null(r))?;
    let t = raw.get();
    let parsed = if t.starts_with('"') {
        string(raw).and_then(|s| parse_number(s.trim()))
    } else {
        parse_number(t)
    };
    if parsed.is_none() {
        w.push(warn);
    }
    parsed
}

fn parse_number(t: &str) -> Option<i64> {
    t.parse::<i64>().ok().or_else(|| {
        t.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|f| f as i64)
    })
}

/// Epoch milliseconds, as a number or a numeric string.
pub fn epoch_millis(
    raw: Option<&RawValue>,
    warn: &'static str,
    w: &mut Warnings,
) -> Option<Timestamp> {
    integer(raw, warn, w).map(Timestamp)
}

/// Epoch seconds, as a number or a numeric string.
pub fn epoch_seconds(
    raw: Option<&RawValue>,
    warn: &'static str,
    w: &mut Warnings,
) -> Option<Timestamp> {
    integer(raw, warn, w)
        .and_then(|s| s.checked_mul(1000))
        .map(Timestamp)
}

/// An RFC 3339 string.
pub fn rfc3339(raw: Option<&RawValue>, warn: &'static str, w: &mut Warnings) -> Option<Timestamp> {
    let s = text(raw, warn, w)?;
    let t = Timestamp::parse_rfc3339(&s);
    if t.is_none() {
        w.push(warn);
    }
    t
}

/// Sets the event's severity from a vendor word, keeping the word as `vendor_severity`; an
/// unknown word or a non-string adds a warning and leaves the default.
pub fn severity<'a>(e: &mut Event<'a>, raw: Option<&'a RawValue>) {
    if let Some(word) = text(raw, "severity: not a string", &mut e.normalization_warnings) {
        match Severity::from_word(&word) {
            Some(s) => e.severity = s,
            None => e.normalization_warnings.push("severity: unknown word"),
        }
        e.vendor_severity = Some(word);
    }
}

/// True when the field is a non-empty array or a non-empty object.
pub fn non_empty_container(raw: Option<&RawValue>) -> bool {
    raw.is_some_and(|r| {
        let t = r.get();
        (t.starts_with('[')
            && !t.starts_with("[]")
            && t.trim_start_matches('[').trim_start() != "]")
            || (t.starts_with('{') && t.trim_start_matches('{').trim_start() != "}")
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn raw(s: &str) -> &RawValue {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn readers_accept_the_right_types_and_warn_on_others() {
        let mut w = Warnings::new();
        assert_eq!(text(Some(raw(r#""a""#)), "x", &mut w).unwrap(), "a");
        assert_eq!(text(Some(raw(r#""""#)), "x", &mut w), None);
        assert_eq!(text(Some(raw("null")), "x", &mut w), None);
        assert!(w.is_empty());
        assert_eq!(text(Some(raw("5")), "f: not a string", &mut w), None);
        assert_eq!(w, ["f: not a string"]);
        assert_eq!(
            text_or_number(Some(raw("123")), "x", &mut w).unwrap(),
            "123"
        );
        assert_eq!(
            integer(Some(raw(r#""1700000000000""#)), "x", &mut w),
            Some(1_700_000_000_000)
        );
        assert_eq!(integer(Some(raw("1.7e3")), "x", &mut w), Some(1700));
        assert_eq!(
            epoch_seconds(Some(raw("2")), "x", &mut w),
            Some(Timestamp(2000))
        );
        assert_eq!(
            rfc3339(Some(raw(r#""1970-01-01T00:00:01Z""#)), "x", &mut w),
            Some(Timestamp(1000))
        );
        assert_eq!(w.len(), 1);
        assert_eq!(integer(Some(raw("true")), "t: not a number", &mut w), None);
        assert_eq!(
            rfc3339(Some(raw(r#""yesterday""#)), "r: not RFC 3339", &mut w),
            None
        );
        assert_eq!(&w[1..], ["t: not a number", "r: not RFC 3339"]);
        assert!(non_empty_container(Some(raw("[1]"))));
        assert!(!non_empty_container(Some(raw("[ ]"))));
        assert!(!non_empty_container(Some(raw("{}"))));
        assert!(!non_empty_container(None));
    }
}
