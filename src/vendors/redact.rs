//! Redaction of credentials that vendors' templates put in webhook bodies: the fields each
//! vendor is known to send a credential in (redacted by default), plus the JSON pointers a
//! source names in `redact = [...]`. A redacted value is replaced by `"[redacted]"` in `raw`
//! and in any normalized field that carried the same text, and the event says so in a warning.
//!
//! `raw` stays a borrowed slice of the body unless something was redacted; only then is an
//! owned copy made, with every other byte as it was sent. Pointers are RFC 6901, relative to
//! each alert object (the event's `raw`); a key that appears twice in an object is redacted
//! at both places.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::json::{offset_in, string};
use super::mapping::Pointer;
use super::Vendor;
use crate::normalize::{Event, EventId};

/// What a redacted value becomes.
pub const REDACTED: &str = "[redacted]";

/// The warning of an event whose `raw` had a value redacted.
pub const WARNING: &str = "raw: credential field redacted";

/// Credential fields each vendor is known to send, as pointer tokens. Coralogix's send-log
/// template carries `privateKey`, the account's Send-Your-Data API key. Prisma Cloud, Wallarm
/// and Immuta document no credential in their bodies (they authenticate with headers or a
/// signature); `generic` has no vendor and relies on the source's `redact` list.
pub fn vendor_fields(vendor: Vendor) -> &'static [&'static [&'static str]] {
    match vendor {
        Vendor::Coralogix => &[&["privateKey"]],
        Vendor::Generic | Vendor::PrismaCloud | Vendor::Wallarm | Vendor::Immuta => &[],
    }
}

/// Checks a configured `redact` pointer: RFC 6901 (`/` first, `~` only as `~0` or `~1`), and
/// not the empty pointer (the whole object is no credential field).
pub fn parse_pointer(text: &str) -> Result<Pointer, String> {
    if text.is_empty() {
        return Err(
            "the empty pointer names the whole object; name a field such as \"/token\"".to_owned(),
        );
    }
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "{text:?} is not a JSON pointer: '~' must be followed by 0 or 1 (RFC 6901)"
            ));
        }
    }
    Pointer::parse(text)
}

/// Redacts the vendor's credential fields and the source's `extra` pointers in `e`.
pub fn apply(e: &mut Event<'_>, vendor: Vendor, extra: &[Pointer]) {
    let raw = e.raw.get();
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for tokens in vendor_fields(vendor) {
        if may_hold(raw, tokens) {
            find(raw, raw, tokens, &mut spans);
        }
    }
    for p in extra {
        if may_hold(raw, p.tokens()) {
            find(raw, raw, p.tokens(), &mut spans);
        }
    }
    if spans.is_empty() {
        return;
    }
    spans.sort_unstable();
    // Keep the outermost of nested spans (e.g. `/a` and `/a/b` both named).
    let mut kept: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match kept.last() {
            Some(&(_, last_end)) if start < last_end => {}
            _ => kept.push((start, end)),
        }
    }
    let mut secrets: Vec<String> = Vec::new();
    let mut out = String::with_capacity(raw.len());
    let mut at = 0;
    for &(start, end) in &kept {
        out.push_str(&raw[at..start]);
        out.push('"');
        out.push_str(REDACTED);
        out.push('"');
        at = end;
        if let Ok(value) = serde_json::from_str::<&RawValue>(&raw[start..end]) {
            if let Some(s) = string(value).filter(|s| !s.is_empty()) {
                secrets.push(s.into_owned());
            }
        }
    }
    out.push_str(&raw[at..]);
    match RawValue::from_string(out) {
        Ok(owned) => e.raw = Cow::Owned(owned),
        // Unreachable: whole JSON values were replaced by a JSON string. Never forward the
        // original if it happens anyway.
        Err(_) => e.raw = Cow::Borrowed(RawValue::NULL),
    }
    e.normalization_warnings.push(WARNING);
    scrub(e, &secrets);
}

/// False when the object `raw` cannot have a member named `tokens[0]`, found without parsing
/// it: most alerts carry no credential field, and walking every member of every alert for one
/// that is absent was a sixth of the decode + encode cost of a Coralogix alert. A key is
/// written in JSON as its own text, or with escapes; a name without `"`, `\\`, `/` or control
/// characters has no two-character escape, so any escaped spelling of it holds `\u`. Anything
/// else (an array, such a character in the name, a `\u` anywhere) is walked.
fn may_hold(raw: &str, tokens: &[impl AsRef<str>]) -> bool {
    let Some(first) = tokens.first() else {
        return true;
    };
    let name = first.as_ref();
    let plain = |c: char| !matches!(c, '"' | '\\' | '/') && !c.is_control();
    !raw.starts_with('{')
        || !name.chars().all(plain)
        || memchr::memmem::find(raw.as_bytes(), name.as_bytes()).is_some()
        || memchr::memmem::find(raw.as_bytes(), b"\\u").is_some()
}

/// Pushes the byte span (in `root`) of every value at `tokens` inside `at`.
fn find(root: &str, at: &str, tokens: &[impl AsRef<str>], out: &mut Vec<(usize, usize)>) {
    let Some((first, rest)) = tokens.split_first() else {
        let start = offset_in(root, at);
        out.push((start, start + at.len()));
        return;
    };
    let first = first.as_ref();
    if at.starts_with('{') {
        let _ = for_each_member(at, |key, value| {
            if key == first {
                find(root, value.get(), rest, out);
            }
        });
    } else if at.starts_with('[') {
        let Ok(index) = first.parse::<usize>() else {
            return;
        };
        let mut i = 0;
        let _ = super::json::for_each_element(at, |v| {
            if i == index {
                find(root, v.get(), rest, out);
            }
            i += 1;
            Ok(())
        });
    }
}

/// Calls `each` with every member of an object, in order and duplicates included, without
/// collecting them.
fn for_each_member<'a, F>(obj: &'a str, each: F) -> Result<(), serde_json::Error>
where
    F: FnMut(&str, &'a RawValue),
{
    struct Members<F>(F);

    impl<'de, F: FnMut(&str, &'de RawValue)> serde::de::Visitor<'de> for Members<F> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
            while let Some(Key(k)) = map.next_key()? {
                (self.0)(&k, map.next_value::<&'de RawValue>()?);
            }
            Ok(())
        }
    }

    #[derive(serde::Deserialize)]
    struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

    serde::Deserializer::deserialize_map(
        &mut serde_json::Deserializer::from_str(obj),
        Members(each),
    )
}

/// Replaces normalized text equal to a redacted value, so the credential travels nowhere.
fn scrub(e: &mut Event<'_>, secrets: &[String]) {
    if secrets.is_empty() {
        return;
    }
    let hit = |s: &str| secrets.iter().any(|x| x == s);
    let fields = [
        &mut e.title,
        &mut e.description,
        &mut e.url,
        &mut e.vendor_severity,
        &mut e.resource.id,
        &mut e.resource.name,
        &mut e.resource.kind,
        &mut e.resource.region,
        &mut e.resource.account_id,
        &mut e.resource.account_name,
        &mut e.resource.cloud,
        &mut e.network.src_ip,
        &mut e.network.domain,
        &mut e.network.path,
        &mut e.network.method,
        &mut e.finding.policy_id,
        &mut e.finding.policy_name,
        &mut e.finding.policy_type,
        &mut e.finding.rule,
        &mut e.finding.type_code,
        &mut e.remediation,
        &mut e.status_detail,
        &mut e.vendor_cloud,
        &mut e.unparsed_time,
    ];
    for f in fields {
        if f.as_deref().is_some_and(hit) {
            *f = Some(Cow::Borrowed(REDACTED));
        }
    }
    // Tags are a borrowed slice of the body: dropped whole when a redacted value is inside.
    if e.resource
        .tags
        .is_some_and(|t| secrets.iter().any(|x| t.get().contains(x.as_str())))
    {
        e.resource.tags = None;
    }
    let id_leaks = match &e.id {
        EventId::Vendor(a) | EventId::Joined(a, _) | EventId::Occurrence(a, _, _) => hit(a),
        EventId::Pair(a, b) => hit(a) || hit(b),
        EventId::Change(a, _, reason, _) => hit(a) || reason.as_deref().is_some_and(hit),
        EventId::Unset | EventId::Hash(_) => false,
    };
    if id_leaks {
        // Replaced by the hash of the redacted `raw` before the event leaves the decoder.
        e.id = EventId::Unset;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::normalize::Timestamp;

    fn event(raw: &RawValue) -> Event<'_> {
        Event::new(Vendor::Generic, "s", raw, Timestamp(0))
    }

    #[test]
    fn nothing_to_redact_keeps_the_borrowed_slice() {
        let raw: &RawValue = serde_json::from_str(r#"{"a": 1}"#).unwrap();
        let mut e = event(raw);
        apply(&mut e, Vendor::Coralogix, &[parse_pointer("/b").unwrap()]);
        assert!(matches!(e.raw, Cow::Borrowed(r) if std::ptr::eq(r, raw)));
        assert!(e.normalization_warnings.is_empty());
    }

    #[test]
    fn redacts_vendor_fields_pointers_duplicates_and_normalized_copies() {
        let raw: &RawValue = serde_json::from_str(
            r#"{"privateKey": "cxtp_S3CR3T", "n": {"tok": ["x", {"k": 7}]},
                "privateKey":"again", "a/b": {"c~d": "s2"}, "title": "s2"}"#,
        )
        .unwrap();
        let mut e = event(raw);
        e.title = Some("s2".into());
        e.id = EventId::Vendor("cxtp_S3CR3T".into());
        let extra = [
            parse_pointer("/n/tok/1/k").unwrap(),
            parse_pointer("/a~1b/c~0d").unwrap(),
            parse_pointer("/n/tok/9").unwrap(),
        ];
        apply(&mut e, Vendor::Coralogix, &extra);
        assert_eq!(
            e.raw.get(),
            r#"{"privateKey": "[redacted]", "n": {"tok": ["x", {"k": "[redacted]"}]},
                "privateKey":"[redacted]", "a/b": {"c~d": "[redacted]"}, "title": "s2"}"#
        );
        assert_eq!(e.title.as_deref(), Some(REDACTED));
        assert_eq!(e.id, EventId::Unset);
        assert_eq!(e.normalization_warnings, [WARNING]);
    }

    #[test]
    fn a_credential_key_spelled_with_escapes_is_still_redacted() {
        // `privateKey` with \u escapes, beside an escaped quote that is no key at all.
        let raw: &RawValue = serde_json::from_str(
            r#"{"q": "a \"privateK\" b", "priv\u0061teK\u0065y": "cxtp_S3CR3T"}"#,
        )
        .unwrap();
        let mut e = event(raw);
        apply(&mut e, Vendor::Coralogix, &[]);
        assert_eq!(
            e.raw.get(),
            r#"{"q": "a \"privateK\" b", "priv\u0061teK\u0065y": "[redacted]"}"#
        );
        // A name with a two-character escape (`/` as `\/`) is found too.
        let raw: &RawValue = serde_json::from_str(r#"{"a\/b": "s"}"#).unwrap();
        let mut e = event(raw);
        apply(&mut e, Vendor::Generic, &[parse_pointer("/a~1b").unwrap()]);
        assert_eq!(e.raw.get(), r#"{"a\/b": "[redacted]"}"#);
        // The shortcut only skips objects whose text cannot hold the name.
        assert!(!may_hold(r#"{"a": "b"}"#, &["privateKey"]));
        assert!(may_hold(r#"{"a": "privateKey"}"#, &["privateKey"]));
        assert!(may_hold(r#"{"a": "\u0041"}"#, &["privateKey"]));
        assert!(may_hold(r#"[{"a": 1}]"#, &["0"]));
    }

    #[test]
    fn pointers_are_checked() {
        assert!(parse_pointer("/a/b~1c/0").is_ok());
        assert!(parse_pointer("").is_err());
        assert!(parse_pointer("a").is_err());
        assert!(parse_pointer("/a~2").is_err());
        assert!(parse_pointer("/a~").is_err());
    }
}
