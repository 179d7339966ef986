//! The request path a body takes through siemgate, as `server::ingest` and `dispatch` run it:
//! `json::utf8` -> `Vendor::decode` (which checks the body's limits) -> each event encoded as
//! NDJSON;
//! and the checks every outcome must pass. Shared by the fuzz targets (`fuzz_targets/*.rs`),
//! `tests/fuzz_corpus.rs` and `tests/decoder_properties.rs` through `#[path]` modules.
#![allow(dead_code)]

use bytes::BytesMut;
use serde::Deserialize;
use serde_json::value::RawValue;
use siemgate::normalize::Timestamp;
use siemgate::sinks::{one_line, Encoder, Ndjson};
use siemgate::vendors::{json, Context, DecodeError, Vendor};

/// The source name every event carries.
pub const SOURCE: &str = "fuzz-source";

/// What one body produced.
#[derive(Debug, PartialEq)]
pub struct Output {
    /// `Err` from utf8/decode, or `Ok(count)` from decode.
    pub result: Result<usize, DecodeError>,
    /// The result when the body's limits are checked first (`json::check_limits`), as a
    /// separate pass before the decoder: it must be `result` (see [`check`]).
    pub limits_first: Result<usize, DecodeError>,
    /// Each emitted event's NDJSON record (or the encoder's error), in emission order.
    pub records: Vec<Result<Vec<u8>, String>>,
}

/// Runs `body` through the request path for `vendor`, with `received_at: Timestamp(0)`.
pub fn request_path(vendor: Vendor, body: &[u8]) -> Output {
    let mut records = Vec::new();
    let ctx = Context {
        source: SOURCE,
        received_at: Timestamp(0),
    };
    let limits_first = json::utf8(body).and_then(|text| {
        json::check_limits(text)?;
        vendor.decode(text, &ctx, |_| {})
    });
    let result = json::utf8(body).and_then(|text| {
        let ctx = Context {
            source: SOURCE,
            received_at: Timestamp(0),
        };
        // One buffer for the request, as dispatch keeps per sink, split where each event ends.
        let mut buf = BytesMut::new();
        vendor.decode(text, &ctx, |event| {
            let start = buf.len();
            records.push(match Ndjson.encode(&event, &mut buf) {
                // The NDJSON encoder writes the Event itself; it must give the bytes serde
                // gives for the Event's `Serialize` impl (with `raw` on one line).
                Ok(()) => match serde_json::to_vec(&event) {
                    Ok(mut serde) => {
                        one_line(&mut serde);
                        serde.push(b'\n');
                        if buf[start..] == serde[..] {
                            Ok(serde)
                        } else {
                            Err(format!(
                                "the NDJSON encoder wrote {:?}, serde_json {:?}",
                                String::from_utf8_lossy(&buf[start..]),
                                String::from_utf8_lossy(&serde)
                            ))
                        }
                    }
                    Err(e) => Err(format!("serde_json: {e}")),
                },
                Err(e) => Err(e.to_string()),
            });
        })
    });
    Output {
        result,
        records,
        limits_first,
    }
}

/// The top-level elements of a body the decoders may accept: the elements of one JSON array,
/// or the whitespace-separated JSON values of the body (one object, or NDJSON objects).
/// `None` when the body is not such JSON.
pub fn top_level_elements(body: &str) -> Option<Vec<&str>> {
    let values = serde_json::Deserializer::from_str(body)
        .into_iter::<&RawValue>()
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    match values.as_slice() {
        [one] if one.get().starts_with('[') => {
            let elements: Vec<&RawValue> = serde_json::from_str(one.get()).ok()?;
            Some(elements.into_iter().map(RawValue::get).collect())
        }
        _ => Some(values.into_iter().map(RawValue::get).collect()),
    }
}

/// Every whitespace-separated JSON value of the body, and the elements of those that are
/// arrays; empty when the body is not a stream of JSON values.
fn elements_and_values(body: &str) -> Vec<&str> {
    let Ok(values) = serde_json::Deserializer::from_str(body)
        .into_iter::<&RawValue>()
        .collect::<Result<Vec<_>, _>>()
    else {
        return Vec::new();
    };
    let mut all = Vec::new();
    for v in values {
        all.push(v.get());
        if let Ok(elements) = serde_json::from_str::<Vec<&RawValue>>(v.get()) {
            all.extend(elements.into_iter().map(RawValue::get));
        }
    }
    all
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    raw: &'a RawValue,
    #[serde(default)]
    normalization_warnings: Vec<String>,
}

/// The warning of an event whose `raw` had a credential field redacted.
const REDACTED_WARNING: &str = "raw: credential field redacted";

/// Whether `raw` is `element` with some values replaced by `"[redacted]"` (and at least one).
fn redacted_from(raw: &serde_json::Value, element: &serde_json::Value) -> bool {
    use serde_json::Value;
    fn walk(r: &Value, e: &Value, seen: &mut bool) -> bool {
        match (r, e) {
            (Value::String(s), other) if s == "[redacted]" && other != r => {
                *seen = true;
                true
            }
            (Value::Object(a), Value::Object(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b.iter())
                        .all(|((ka, va), (kb, vb))| ka == kb && walk(va, vb, seen))
            }
            (Value::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| walk(x, y, seen))
            }
            _ => r == e,
        }
    }
    let mut seen = false;
    walk(raw, element, &mut seen) && seen
}

/// `raw` as the encoder writes it is the body's text, byte for byte, except that line breaks
/// (whitespace between tokens: JSON strings cannot hold a raw CR or LF) may become spaces so
/// that the record stays on one line (`sinks::one_line`).
fn same_text(raw: &str, element: &str) -> bool {
    raw.len() == element.len()
        && raw
            .bytes()
            .zip(element.bytes())
            .all(|(r, e)| r == e || (r == b' ' && matches!(e, b'\n' | b'\r')))
}

/// Whether `raw` is a slice of `body` (up to line breaks written as spaces).
fn is_slice_of(body: &str, raw: &str) -> bool {
    let Some(first) = raw.bytes().next() else {
        return false;
    };
    body.bytes()
        .enumerate()
        .filter(|&(_, b)| b == first)
        .any(|(i, _)| {
            body.get(i..i + raw.len())
                .is_some_and(|s| same_text(raw, s))
        })
}

/// Checks an [`Output`] of `body`:
/// * the result is the one a separate limits pass before the decoder gives (and the events of a
///   body past the limits, which no caller keeps, are not looked at);
/// * a count returned matches the events emitted; an error's offset lies within the body;
/// * every event encodes to one JSON object on one line: no CR or LF but the final `\n`;
/// * every event has `raw`, which parses, is a slice of the body (up to line breaks written as
///   spaces, see [`same_text`]), and equals (as `serde_json::Value`) a top-level element of the
///   body, or an element of one; a raw with a credential redacted (the event's warning says so)
///   is instead that element with some values replaced by `"[redacted]"` (events emitted before a failure need only be slices that
///   parse when the body is not JSON);
/// * when decoding succeeded, the events' `raw`s are exactly the body's top-level elements,
///   in order.
pub fn check(body: &[u8], out: &Output) -> Result<(), String> {
    if out.result != out.limits_first {
        return Err(format!(
            "the decoder's own limits check gave {:?}, a pre-pass before it {:?}",
            out.result, out.limits_first
        ));
    }
    let text = std::str::from_utf8(body).ok();
    match &out.result {
        Ok(n) if *n != out.records.len() => {
            return Err(format!(
                "decode returned {n} but emitted {}",
                out.records.len()
            ))
        }
        Ok(_) => {}
        Err(e) => {
            let offset = match e {
                DecodeError::InvalidUtf8 { offset }
                | DecodeError::Malformed { offset, .. }
                | DecodeError::TooDeep { offset, .. }
                | DecodeError::Shape { offset, .. } => *offset,
            };
            if offset > body.len() {
                return Err(format!(
                    "error offset {offset} is past the body's {} bytes: {e}",
                    body.len()
                ));
            }
        }
    }
    if out.records.is_empty() && out.result.is_err() {
        return Ok(());
    }
    // A body past the limits may have had events emitted before the decoder found out (its
    // one-pass reader checks the limits as it reads); every caller drops them with the body, and
    // they may hold what the limits refuse (a `1e400` in `raw`).
    if out.result.is_err() && text.is_some_and(|t| json::check_limits(t).is_err()) {
        return Ok(());
    }
    let Some(text) = text else {
        return Err("decode ran on a body that is not UTF-8".into());
    };
    let elements = top_level_elements(text);
    let candidates = elements_and_values(text);
    let mut raws = Vec::with_capacity(out.records.len());
    for (i, record) in out.records.iter().enumerate() {
        let record = record
            .as_ref()
            .map_err(|e| format!("event {i} failed to encode: {e}"))?;
        let line = std::str::from_utf8(record)
            .map_err(|e| format!("event {i}: record is not UTF-8: {e}"))?;
        let Some(json) = line.strip_suffix('\n') else {
            return Err(format!(
                "event {i}: record does not end in a newline: {line:?}"
            ));
        };
        if json.contains(['\n', '\r']) {
            return Err(format!(
                "event {i}: the NDJSON record spans lines: {line:?}"
            ));
        }
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| format!("event {i}: record is not one JSON value ({e}): {line:?}"))?;
        let rec: Record<'_> = serde_json::from_str(json)
            .map_err(|e| format!("event {i}: record has no raw ({e}): {line:?}"))?;
        if !json.starts_with('{') {
            return Err(format!("event {i}: record is not an object: {line:?}"));
        }
        let raw = rec.raw.get();
        let raw_value: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| format!("event {i}: raw does not parse ({e}): {raw:?}"))?;
        if value.get("raw") != Some(&raw_value) {
            return Err(format!("event {i}: raw read two ways differs: {line:?}"));
        }
        // A redacted raw is an owned copy: the element it came from, with credential values
        // replaced (and the event says so); any other raw is a slice of the body.
        let redacted = rec
            .normalization_warnings
            .iter()
            .any(|w| w == REDACTED_WARNING);
        if !redacted && !is_slice_of(text, raw) {
            return Err(format!(
                "event {i}: raw is not a slice of the body: {raw:?}"
            ));
        }
        let is_element = candidates.iter().any(|el| {
            let el_value = serde_json::from_str::<serde_json::Value>(el).ok();
            if redacted {
                el_value.is_some_and(|v| redacted_from(&raw_value, &v))
            } else {
                same_text(raw, el) && el_value.as_ref() == Some(&raw_value)
            }
        });
        if !is_element && (out.result.is_ok() || !candidates.is_empty()) {
            return Err(format!(
                "event {i}: raw is not a top-level element of the body: {raw:?}"
            ));
        }
        raws.push((raw, redacted));
    }
    if out.result.is_ok() {
        let same = |(r, redacted): &(&str, bool), e: &&str| {
            if *redacted {
                let parse = |t: &str| serde_json::from_str::<serde_json::Value>(t).ok();
                matches!((parse(r), parse(e)), (Some(r), Some(e)) if redacted_from(&r, &e))
            } else {
                same_text(r, e)
            }
        };
        match &elements {
            Some(elements)
                if elements.len() == raws.len()
                    && raws.iter().zip(elements).all(|(r, e)| same(r, e)) => {}
            other => {
                return Err(format!(
                    "decode succeeded but the raws {raws:?} are not the elements {other:?}"
                ))
            }
        }
    }
    Ok(())
}

/// Runs the request path and the checks; panics (the fuzz targets' crash) on a failed check.
pub fn fuzz_one(vendor: &str, body: &[u8]) {
    let Some(v) = Vendor::from_name(vendor) else {
        panic!("unknown vendor {vendor}");
    };
    let out = request_path(v, body);
    if let Err(msg) = check(body, &out) {
        panic!("{vendor}: {msg}\nresult: {:?}", out.result);
    }
}
