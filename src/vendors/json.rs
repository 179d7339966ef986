//! JSON helpers every decoder shares: streaming the elements of a top-level array as borrowed
//! raw values, reading a string field without copying when it has no escapes, and turning a
//! serde_json error into a byte offset.

use std::borrow::Cow;

use memchr::memchr2;
use serde::de::{Deserializer as _, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::DecodeError;

/// Checks that the body is UTF-8, reporting the first invalid byte's offset.
pub fn utf8(body: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(body).map_err(|e| DecodeError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })
}

/// Deepest nesting of arrays and objects a body may have. Real vendor payloads stay under 10;
/// the limit keeps hostile bodies from costing more than one linear scan.
pub const MAX_DEPTH: usize = 64;

/// One pass over the body, skipping string contents, that refuses what downstream readers
/// cannot take: nesting deeper than [`MAX_DEPTH`], and numbers beyond the range of an f64
/// (`1e400` is valid JSON grammar, but serde_json, Go's encoding/json and most SIEM parsers
/// refuse the line that carries it).
pub fn check_limits(body: &str) -> Result<(), DecodeError> {
    let bytes = body.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // A string: jump from escape to escape to its closing quote. Most of a body's
                // bytes are string contents, and memchr2 passes over them many at a time.
                i += 1;
                while let Some(at) = bytes.get(i..).and_then(|rest| memchr2(b'"', b'\\', rest)) {
                    i += at;
                    if bytes[i] == b'"' {
                        break;
                    }
                    i += if bytes.get(i + 1) == Some(&b'u') {
                        unicode_escape(bytes, i)?
                    } else {
                        2
                    };
                }
                if i < bytes.len() && bytes[i] != b'"' {
                    // No closing quote: the string runs to the end of the body.
                    i = bytes.len();
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(DecodeError::TooDeep {
                        offset: i,
                        limit: MAX_DEPTH,
                    });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i + 1 < bytes.len()
                    && matches!(bytes[i + 1], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    i += 1;
                }
                let number = &body[start..=i];
                // Only numbers with an exponent or hundreds of digits can overflow an f64.
                let may_overflow =
                    number.len() > 300 || number.bytes().any(|b| b == b'e' || b == b'E');
                if may_overflow && number.parse::<f64>().is_ok_and(|n| n.is_infinite()) {
                    return Err(DecodeError::Malformed {
                        offset: start,
                        message: "number out of range".to_owned(),
                    });
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The length of the `\\uXXXX` escape at `at` (12 bytes for a surrogate pair). A UTF-16
/// surrogate that is not half of a pair is refused: it names no character, so no string can
/// hold it, and a record carrying it in `raw` would not parse downstream. Malformed hex is left
/// to the decoder, which reports it with its offset.
fn unicode_escape(bytes: &[u8], at: usize) -> Result<usize, DecodeError> {
    let unit = |from: usize| -> Option<u16> {
        let hex = std::str::from_utf8(bytes.get(from..from + 4)?).ok()?;
        u16::from_str_radix(hex, 16).ok()
    };
    let lone = || DecodeError::Malformed {
        offset: at,
        message: "a \\u escape is half of a UTF-16 surrogate pair".to_owned(),
    };
    match unit(at + 2) {
        Some(0xD800..=0xDBFF) => {
            let pair = bytes.get(at + 6..at + 8) == Some(b"\\u".as_slice())
                && matches!(unit(at + 8), Some(0xDC00..=0xDFFF));
            if pair {
                Ok(12)
            } else {
                Err(lone())
            }
        }
        Some(0xDC00..=0xDFFF) => Err(lone()),
        _ => Ok(2),
    }
}

/// The byte offset of `inner` within `outer` (both from the same body).
pub fn offset_in(outer: &str, inner: &str) -> usize {
    (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize)
}

/// The first non-whitespace byte and its offset.
pub fn first_byte(body: &str) -> Option<(usize, u8)> {
    body.bytes()
        .enumerate()
        .find(|(_, b)| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// Converts a serde_json error on `text` (which starts at `base` in the body) to a
/// `DecodeError::Malformed` with a byte offset instead of line and column.
pub fn malformed(text: &str, base: usize, e: &serde_json::Error) -> DecodeError {
    let line = e.line();
    let col = e.column();
    let mut offset = 0;
    if line > 0 {
        let mut seen = 1;
        for (i, b) in text.bytes().enumerate() {
            if seen == line {
                offset = i;
                break;
            }
            if b == b'\n' {
                seen += 1;
                offset = i + 1;
            }
        }
        offset = (offset + col.saturating_sub(1)).min(text.len());
    }
    let full = e.to_string();
    let message = match full.find(" at line ") {
        Some(cut) => full[..cut].to_owned(),
        None => full,
    };
    DecodeError::Malformed {
        offset: base + offset,
        message,
    }
}

/// Calls `each` with every element of the top-level JSON array `body`, as a borrowed raw value,
/// without collecting them. Stops at the first error from `each`.
pub fn for_each_element<'a, F>(body: &'a str, mut each: F) -> Result<(), DecodeError>
where
    F: FnMut(&'a RawValue) -> Result<(), DecodeError>,
{
    struct Elements<'f, F> {
        each: &'f mut F,
        failed: &'f mut Option<DecodeError>,
    }

    impl<'de, F> Visitor<'de> for Elements<'_, F>
    where
        F: FnMut(&'de RawValue) -> Result<(), DecodeError>,
    {
        type Value = ();

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(raw) = seq.next_element::<&'de RawValue>()? {
                if let Err(e) = (self.each)(raw) {
                    *self.failed = Some(e);
                    return Err(serde::de::Error::custom("stopped"));
                }
            }
            Ok(())
        }
    }

    let mut failed = None;
    let mut de = serde_json::Deserializer::from_str(body);
    let result = de.deserialize_seq(Elements {
        each: &mut each,
        failed: &mut failed,
    });
    if let Some(e) = failed {
        return Err(e);
    }
    result
        .and_then(|()| de.end())
        .map_err(|e| malformed(body, 0, &e))
}

/// Deserializes one object of the body into a decoder's borrowed struct; a syntax error carries
/// its offset in the body (`offset` is where the object starts).
pub fn parse_object<'a, T: serde::Deserialize<'a>>(
    raw: &'a RawValue,
    offset: usize,
) -> Result<T, DecodeError> {
    serde_json::from_str(raw.get()).map_err(|e| malformed(raw.get(), offset, &e))
}

/// Calls `each` with every object of a body that is one JSON object or an array of objects,
/// as `(raw object, its byte offset)`. `what` names the expected shape in errors.
pub fn for_each_object<'a, F>(
    body: &'a str,
    what: &'static str,
    mut each: F,
) -> Result<(), DecodeError>
where
    F: FnMut(&'a RawValue, usize) -> Result<(), DecodeError>,
{
    let mut object = |raw: &'a RawValue| {
        let offset = offset_in(body, raw.get());
        if !raw.get().starts_with('{') {
            return Err(DecodeError::Shape {
                offset,
                expected: "a JSON object",
            });
        }
        each(raw, offset)
    };
    match first_byte(body) {
        Some((_, b'[')) => for_each_element(body, object),
        Some((_, b'{')) => {
            let raw: &RawValue = serde_json::from_str(body).map_err(|e| malformed(body, 0, &e))?;
            object(raw)
        }
        Some((offset, _)) => Err(DecodeError::Shape {
            offset,
            expected: what,
        }),
        None => Err(DecodeError::Shape {
            offset: 0,
            expected: what,
        }),
    }
}

/// Reads a JSON string without copying unless it holds escapes; `None` if `raw` is not a string.
/// `raw` was validated when it was parsed, so a string without a backslash is its text between
/// the quotes; only escaped strings are decoded (into an owned copy).
pub fn string(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(text).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_lone_surrogate_escape_is_refused_and_a_pair_passes() {
        for body in [
            r#"{"k":"\uD83D\uDE00"}"#,
            r#"{"k":"\u00e9\u0041"}"#,
            r#"{"a\\u":1}"#,
        ] {
            assert_eq!(check_limits(body), Ok(()), "{body}");
        }
        for (body, at) in [
            (r#"{"clo\udAccount":1}"#, 5),
            (r#"{"k":"\uD83Dx"}"#, 6),
            (r#"{"k":"\uD83D\u0041"}"#, 6),
            (r#"{"k":"\uDE00"}"#, 6),
            (r#"{"k":"\uD83D"#, 6),
        ] {
            match check_limits(body) {
                Err(DecodeError::Malformed { offset, .. }) => assert_eq!(offset, at, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn streams_elements_and_reports_offsets() {
        let body = r#"[ {"a":1}, {"b":[2]} ]"#;
        let mut got = Vec::new();
        for_each_element(body, |r| {
            got.push((offset_in(body, r.get()), r.get()));
            Ok(())
        })
        .unwrap();
        assert_eq!(got, vec![(2, r#"{"a":1}"#), (11, r#"{"b":[2]}"#)]);

        let bad = "[{\"a\":1},\n {\"b\" 2}]";
        match for_each_element(bad, |_| Ok(())).unwrap_err() {
            DecodeError::Malformed { offset, message } => {
                assert_eq!(&bad[offset..offset + 1], "2", "{message}");
                assert!(message.contains("expected `:`"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            for_each_element("[1] x", |_| Ok(())),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let plain: &RawValue = serde_json::from_str(r#""abc""#).unwrap();
        assert!(matches!(string(plain), Some(Cow::Borrowed("abc"))));
        let esc: &RawValue = serde_json::from_str(r#""a\nb""#).unwrap();
        assert_eq!(string(esc).unwrap(), "a\nb");
        let num: &RawValue = serde_json::from_str("12").unwrap();
        assert!(string(num).is_none());
    }

    #[test]
    fn numbers_beyond_f64_are_refused_with_their_offset() {
        assert!(
            check_limits(r#"{"a":1e308,"b":-1.5e-400,"c":123456789012345678901234567890}"#).is_ok()
        );
        assert_eq!(
            check_limits(r#"{"a":"1e400","b": -1e400}"#),
            Err(DecodeError::Malformed {
                offset: 18,
                message: "number out of range".to_owned()
            })
        );
        let long = format!("[{}]", "9".repeat(400));
        assert!(matches!(
            check_limits(&long),
            Err(DecodeError::Malformed { offset: 1, .. })
        ));
    }

    #[test]
    fn depth_limit_skips_strings() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(check_limits(&ok).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(
            check_limits(&deep),
            Err(DecodeError::TooDeep {
                offset: MAX_DEPTH,
                limit: MAX_DEPTH
            })
        );
        let in_string = format!("{{\"a\":\"{}\\\"\"}}", "[".repeat(200));
        assert!(check_limits(&in_string).is_ok(), "{in_string}");
    }

    #[test]
    fn invalid_utf8_offset() {
        assert_eq!(
            utf8(b"{\"a\":\"\xff\"}").unwrap_err(),
            DecodeError::InvalidUtf8 { offset: 6 }
        );
    }
}
