//! Immuta webhook notifications. Immuta publishes no payload sample, so this decoder is a
//! built-in generic mapping that keeps `raw`: the first present of `id`/`uid`/`eventId` is the
//! id, `type`/`notificationType`/`eventType`/`action` the title, `message`/`description` the
//! description, `timestamp`/`time`/`createdAt` (RFC 3339, RFC 2822, `YYYY-MM-DD HH:MM:SS` in
//! UTC, or epoch ms; text that does not parse is kept in a warning) the time. Events are
//! access-governance notifications: kind `system`, OCSF User Access Management (3005), and
//! severity `unknown` (Immuta sends none, so siemgate does not invent one). The body may be
//! one object or an array of objects. The "Test webhook"
//! button's payload is not published either: a notification whose type names a test (a word
//! `test` in `type`/`notificationType`/`eventType`/`action`, e.g. `webhook.test`,
//! `testWebhook`) or that carries `"test": true` is `kind = test`.
//!
//! Verification is the `hmac_sha256` scheme over the raw body; see the README for the header and
//! encoding assumptions.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::fields::{epoch_millis, text, text_or_number, Warnings};
use super::json::parse_object;
use super::{emit_each_read, Context, DecodeError, Vendor};
use crate::normalize::{Event, EventId, Kind, Ocsf, Timestamp};

#[derive(Deserialize, Default)]
#[serde(default)]
struct Notification<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    uid: Option<&'a RawValue>,
    #[serde(borrow, rename = "eventId")]
    event_id: Option<&'a RawValue>,
    #[serde(borrow, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(borrow, rename = "notificationType")]
    notification_type: Option<&'a RawValue>,
    #[serde(borrow, rename = "eventType")]
    event_type: Option<&'a RawValue>,
    #[serde(borrow)]
    action: Option<&'a RawValue>,
    #[serde(borrow)]
    message: Option<&'a RawValue>,
    #[serde(borrow)]
    description: Option<&'a RawValue>,
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow)]
    time: Option<&'a RawValue>,
    #[serde(borrow, rename = "createdAt")]
    created_at: Option<&'a RawValue>,
    #[serde(borrow)]
    test: Option<&'a RawValue>,
}

/// What a body must be, as the decode error says.
const EXPECTED: &str = "an Immuta notification object or an array of them";

pub fn decode<'a, F>(body: &'a str, ctx: &Context<'a>, emit: F) -> Result<usize, DecodeError>
where
    F: FnMut(Event<'a>) -> std::ops::ControlFlow<()>,
{
    emit_each_read(
        body,
        EXPECTED,
        |n, raw| fill(raw, n, ctx),
        |raw, offset| normalize(raw, offset, ctx),
        emit,
    )
}

fn normalize<'a>(
    raw: &'a RawValue,
    offset: usize,
    ctx: &Context<'a>,
) -> Result<Event<'a>, DecodeError> {
    Ok(fill(raw, parse_object(raw, offset)?, ctx))
}

/// The event of the object `raw`, read into `n`.
fn fill<'a>(raw: &'a RawValue, n: Notification<'a>, ctx: &Context<'a>) -> Event<'a> {
    let mut e = Event::new(Vendor::Immuta, ctx.source, raw, ctx.received_at);
    let w: &mut Warnings = &mut e.normalization_warnings;
    e.kind = Kind::System;
    e.ocsf = Ocsf::USER_ACCESS_MANAGEMENT;
    if let Some(id) = text_or_number(
        n.id.or(n.uid).or(n.event_id),
        "id: not a string or number",
        w,
    ) {
        e.id = EventId::Vendor(id);
    }
    e.title = text(
        n.kind.or(n.notification_type).or(n.event_type).or(n.action),
        "type: not a string",
        w,
    );
    if e.title.as_deref().is_some_and(names_a_test) || n.test.is_some_and(|t| t.get() == "true") {
        e.kind = Kind::Test;
    }
    e.description = text(n.message.or(n.description), "message: not a string", w);
    match time(
        n.timestamp.or(n.time).or(n.created_at),
        w,
        &mut e.unparsed_time,
    ) {
        Some(t) => e.time = t,
        None => w.push("time: missing, received_at used"),
    }
    let recognised = [
        n.id,
        n.uid,
        n.event_id,
        n.kind,
        n.notification_type,
        n.event_type,
        n.action,
    ]
    .iter()
    .any(Option::is_some);
    if !recognised {
        e.mark_unrecognized();
    }
    e
}

/// True when one word of a type name is `test`, any case: words are split at `.`, `_`, `-`,
/// spaces and lower-to-upper case changes (`webhook.test`, `TEST_WEBHOOK`, `testWebhook`).
fn names_a_test(name: &str) -> bool {
    let b = name.as_bytes();
    // A word `test` is the text `test` somewhere, in any case, and most type names have none:
    // four bytes at a time, `| 0x20` lowering exactly the letters `T`, `E` and `S` onto `t`,
    // `e` and `s` (no other byte maps onto them).
    const TEST: u32 = u32::from_le_bytes(*b"test");
    if !b
        .windows(4)
        .any(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]) | 0x2020_2020 == TEST)
    {
        return false;
    }
    let mut start = 0;
    for i in 0..=b.len() {
        let boundary = i == b.len()
            || matches!(b[i], b'.' | b'_' | b'-' | b' ' | b':' | b'/')
            || (i > start && b[i].is_ascii_uppercase() && b[i - 1].is_ascii_lowercase());
        if boundary {
            if name
                .get(start..i)
                .is_some_and(|w| w.eq_ignore_ascii_case("test"))
            {
                return true;
            }
            start = if i < b.len() && b[i].is_ascii_uppercase() {
                i
            } else {
                i + 1
            };
        }
    }
    false
}

/// A time string in any form `Timestamp::parse_auto` reads (text that does not parse is kept
/// in `unparsed`), or epoch milliseconds.
fn time<'a>(
    raw: Option<&'a RawValue>,
    w: &mut Warnings,
    unparsed: &mut Option<std::borrow::Cow<'a, str>>,
) -> Option<Timestamp> {
    let raw = raw?;
    if raw.get().starts_with('"') {
        let s = text(Some(raw), "time: not a string", w)?;
        let t = Timestamp::parse_auto(&s);
        if t.is_none() {
            *unparsed = Some(s);
        }
        t
    } else {
        epoch_millis(Some(raw), "time: not epoch milliseconds", w)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const VENDOR: &str = "immuta";

    fn run(body: &str) -> Vec<serde_json::Value> {
        let ctx = Context {
            source: "im",
            received_at: Timestamp(5),
        };
        let mut out = Vec::new();
        Vendor::from_name(VENDOR)
            .unwrap()
            .decode(body, &ctx, |e| {
                out.push(serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap())
            })
            .unwrap();
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
        /// Reading each object in one pass gives the same events, count and error as splitting
        /// the body and then reading each object (see `vendors::one_pass`).
        #[test]
        fn one_pass_reads_what_the_ordinary_reading_reads((body, limit) in crate::vendors::one_pass::bodies(vec![
            include_str!("../../fixtures/vendors/immuta-test-webhook.json"),
            r#"{"type":"policyChange","actor":{"name":"ana"},"timestamp":1700000000}"#,
            r#"{}"#,
            r#"7"#,
            r#"{"id":"a","id":"b"}"#,
            r#"{"id":"x""#,
            r#"{"id":"y",}"#,
            r#"{"id":"\u0035","message":"a\"b"}"#,
        ])) {
            let ctx = Context { source: "im", received_at: crate::normalize::Timestamp(5) };
            crate::vendors::one_pass::assert_same_events!(&body, limit, &ctx);
        }
    }

    #[test]
    fn maps_the_common_fields_and_keeps_raw() {
        let e = &run(
            r#"{"id":"n-1","type":"marketplace.data_product.access_requests.created",
            "message":"Access requested","timestamp":"2026-01-20T10:00:00Z","extra":{"a":1}}"#,
        )[0];
        assert_eq!(e["id"], "n-1");
        assert_eq!(e["vendor"], "immuta");
        assert_eq!(e["kind"], "system");
        assert_eq!(
            e["title"],
            "marketplace.data_product.access_requests.created"
        );
        assert_eq!(e["description"], "Access requested");
        assert_eq!(e["time"], "2026-01-20T10:00:00.000Z");
        assert_eq!(e["ocsf"]["class_uid"], 3005);
        assert_eq!(e["raw"]["extra"]["a"], 1);
    }

    proptest::proptest! {
        /// The word `test` (lower, upper or capitalized) is found between any words, and nothing
        /// without the text `test` in it, in any case, names a test.
        #[test]
        fn a_test_word_is_found_wherever_it_is(
            before in "[a-zA-Z0-9._ :/-]{0,12}",
            word in "(test|TEST|Test)",
            after in "[a-zA-Z0-9._ :/-]{0,12}",
            any in "[a-zA-Z._-]{0,24}",
        ) {
            let name = format!("{before}.{word}_{after}");
            proptest::prop_assert!(names_a_test(&name), "{}", name);
            proptest::prop_assert!(
                !names_a_test(&any) || any.to_ascii_lowercase().contains("test"),
                "{}", any
            );
        }
    }

    #[test]
    fn test_webhooks_are_kind_test() {
        for (body, test) in [
            (r#"{"type":"webhook.test"}"#, true),
            (r#"{"notificationType":"testWebhook"}"#, true),
            (r#"{"eventType":"TEST_NOTIFICATION"}"#, true),
            (r#"{"action":"test"}"#, true),
            (r#"{"type":"policy.updated","test":true}"#, true),
            (r#"{"type":"attestation.updated"}"#, false),
            (r#"{"type":"latestQuery"}"#, false),
            (r#"{"type":"policy.updated","test":false}"#, false),
        ] {
            let e = &run(body)[0];
            let want = if test { "test" } else { "system" };
            assert_eq!(e["kind"], want, "{body}");
        }
    }

    #[test]
    fn arrays_epoch_times_and_unknown_shapes() {
        let events =
            run(r#"[{"notificationType":"apiKeyRevoked","createdAt":1700000000000},{"x":1}]"#);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["time"], "2023-11-14T22:13:20.000Z");
        assert_eq!(events[0]["title"], "apiKeyRevoked");
        assert_eq!(events[0]["severity"], "unknown", "Immuta sends no severity");
        assert_eq!(
            events[1]["normalization_warnings"],
            serde_json::json!([
                "time: missing, received_at used",
                crate::normalize::UNRECOGNIZED,
                crate::vendors::NO_SEVERITY
            ])
        );
        assert_eq!(events[1]["severity_id"], 0);
        assert_eq!(events[1]["id"].as_str().unwrap().len(), 32);
    }
}
