//! The `generic` decoder: any JSON object, or array of objects, is one event per object.
//! `id` is the object's `id` field (string or number) or a hash of the object; `severity` is
//! read from a `severity` field when it holds a known word.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::json::{first_byte, for_each_element, malformed, offset_in, string};
use super::{Context, DecodeError, Vendor};
use crate::normalize::{Event, EventId, Severity};

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
    let mut one = |raw: &'a RawValue| -> Result<(), DecodeError> {
        emit(normalize(body, raw, ctx)?);
        count += 1;
        Ok(())
    };
    match first_byte(body) {
        Some((_, b'[')) => for_each_element(body, &mut one)?,
        Some((_, b'{')) => {
            let raw: &RawValue = serde_json::from_str(body).map_err(|e| malformed(body, 0, &e))?;
            one(raw)?;
        }
        Some((offset, _)) => {
            return Err(DecodeError::Shape {
                offset,
                expected: "a JSON object or an array of objects",
            })
        }
        None => {
            return Err(DecodeError::Shape {
                offset: 0,
                expected: "a JSON object or an array of objects, got an empty body",
            })
        }
    }
    Ok(count)
}

fn normalize<'a>(
    body: &'a str,
    raw: &'a RawValue,
    ctx: &Context<'a>,
) -> Result<Event<'a>, DecodeError> {
    let text = raw.get();
    let base = offset_in(body, text);
    if !text.starts_with('{') {
        return Err(DecodeError::Shape {
            offset: base,
            expected: "a JSON object",
        });
    }
    let probe: Probe<'a> = serde_json::from_str(text).map_err(|e| malformed(text, base, &e))?;
    let mut event = Event::new(Vendor::Generic, ctx.source, raw, ctx.received_at);
    if let Some(id) = probe.id {
        match string(id) {
            Some(s) if !s.is_empty() => event.id = EventId::Vendor(s),
            Some(_) => {}
            None if id
                .get()
                .starts_with(|c: char| c == '-' || c.is_ascii_digit()) =>
            {
                event.id = EventId::Vendor(id.get().into());
            }
            None => event.normalization_warnings.push("id_not_string_or_number"),
        }
    }
    if let Some(sev) = probe.severity {
        match string(sev) {
            Some(word) => {
                match Severity::from_word(&word) {
                    Some(s) => event.severity = s,
                    None => event.normalization_warnings.push("severity_unrecognized"),
                }
                event.vendor_severity = Some(word);
            }
            None => event.normalization_warnings.push("severity_not_string"),
        }
    }
    Ok(event)
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
        assert!(lines[0].contains("id_not_string_or_number"), "{}", lines[0]);
        assert!(lines[0].contains("severity_not_string"), "{}", lines[0]);
    }
}
