//! The `generic` decoder: any JSON object, or array of objects, is one event per object.
//! `id` is the object's `id` field (string or number) or a hash of the object; `severity` is
//! read from a `severity` field when it holds a known word.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::fields::{severity, text_or_number};
use super::json::{for_each_object, malformed};
use super::{Context, DecodeError, Vendor};
use crate::normalize::{Event, EventId};

/// The few fields the generic decoder looks at; everything else is skipped without copying.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    severity: Option<&'a RawValue>,
}

pub fn decode<'a, F>(body: &'a str, ctx: &Context<'a>, mut emit: F) -> Result<usize, DecodeError>
where
    F: FnMut(Event<'a>),
{
    let mut count = 0;
    for_each_object(
        body,
        "a JSON object or an array of objects",
        |raw, offset| {
            let probe: Probe<'a> =
                serde_json::from_str(raw.get()).map_err(|e| malformed(raw.get(), offset, &e))?;
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
            emit(event);
            count += 1;
            Ok(())
        },
    )?;
    Ok(count)
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
        decode(body, &ctx, |e| out.push(serde_json::to_string(&e).unwrap()))?;
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
