//! Vendor decoders: what each payload family (`Vendor`, named in `normalize::vendor`) decodes
//! with and which headers its senders use by default, and the `DecodeError` every decoder
//! returns.
//!
//! A decoder turns a request body into `Event`s that borrow from it, handing each to a callback
//! as soon as it is built, so a batch of a thousand alerts never needs a `Vec` of events.
//! A new vendor is one file here plus one variant and one line in `REGISTRY`
//! (`normalize/vendor.rs`) and its arms in the `impl Vendor` below.

pub mod coralogix;
pub mod fields;
pub mod generic;
pub mod immuta;
pub mod json;
pub mod mapping;
mod members;
pub mod prisma;
pub mod redact;
mod validate;
pub mod wallarm;

use std::ops::ControlFlow;

pub use crate::normalize::Vendor;
use crate::normalize::{Event, EventId, Severity, Timestamp};

/// The warning of an event whose vendor gave no severity (the event says `unknown`, OCSF 0).
pub const NO_SEVERITY: &str = "severity: not given by the vendor, unknown";

// The family's names live with the schema (`normalize::vendor`); what each family's senders
// and payloads need is here.
impl Vendor {
    /// The header a `token` source of this vendor reads when the config names none.
    pub fn default_token_header(self) -> &'static str {
        match self {
            Vendor::Generic => "Authorization",
            // The header named by the AsyncAPI description of Prisma's webhooks; Prisma lets
            // admins add any header, so `header` can name another.
            Vendor::PrismaCloud => "X-Redlock-Auth",
            // The header Wallarm's own Fluentd example configured; Wallarm sends any
            // number of custom headers, so `header` can name another.
            Vendor::Wallarm => "X-Auth-Token",
            // Coralogix and Immuta let admins add any header; Keep's Coralogix guide uses x-api-key.
            Vendor::Coralogix => "x-api-key",
            Vendor::Immuta => "Authorization",
        }
    }

    /// The header an `hmac_sha256` source of this vendor reads when the config names none.
    pub fn default_signature_header(self) -> &'static str {
        match self {
            // Immuta's HMAC-SHA256 header (its SHA-1 `x-immuta-webhook-signature` is retired).
            Vendor::Immuta => "x-immuta-webhook-signature-sha256",
            Vendor::Generic | Vendor::PrismaCloud | Vendor::Wallarm | Vendor::Coralogix => {
                "X-Signature"
            }
        }
    }

    /// Decodes `body` into events, calling `emit` for each; returns how many were emitted.
    /// Events the decoder left without an id get the hash of their raw object here.
    pub fn decode<'a, F>(
        self,
        body: &'a str,
        ctx: &Context<'a>,
        emit: F,
    ) -> Result<usize, DecodeError>
    where
        F: FnMut(Event<'a>),
    {
        self.decode_mapped(body, ctx, None, &[], emit)
    }

    /// [`decode`](Self::decode) with the source's field mapping (used by `generic` only) and
    /// the source's own `redact` pointers (the vendor's credential fields are always redacted).
    pub fn decode_mapped<'a, F>(
        self,
        body: &'a str,
        ctx: &Context<'a>,
        mapping: Option<&'a mapping::Mapping>,
        redact: &[mapping::Pointer],
        mut emit: F,
    ) -> Result<usize, DecodeError>
    where
        F: FnMut(Event<'a>),
    {
        self.decode_until(body, ctx, mapping, redact, |e| {
            emit(e);
            ControlFlow::Continue(())
        })
    }

    /// [`decode_mapped`](Self::decode_mapped) that stops as soon as `emit` says
    /// `Break`: the rest of the body is not decoded (only its limits are checked, below).
    /// Returns how many events were emitted (the one that said `Break` included).
    ///
    /// The body's limits ([`json::check_limits`]: nesting, numbers beyond an f64, lone UTF-16
    /// surrogates) are checked here, and a body past them is refused with that error whatever
    /// else is wrong with it. Where the one-pass reader has read every object, it checked them
    /// on the way and the body is not scanned again; elsewhere the scan runs before anything is
    /// read the ordinary way. Events may be emitted before a body is refused: the caller keeps
    /// them until this returns `Ok`.
    pub fn decode_until<'a, F>(
        self,
        body: &'a str,
        ctx: &Context<'a>,
        mapping: Option<&'a mapping::Mapping>,
        redact: &[mapping::Pointer],
        mut emit: F,
    ) -> Result<usize, DecodeError>
    where
        F: FnMut(Event<'a>) -> ControlFlow<()>,
    {
        let emit = |mut e: Event<'a>| {
            // Every decoder leaves the severity unknown unless its vendor said one; say so.
            if e.severity == Severity::Unknown && e.vendor_severity.is_none() {
                e.normalization_warnings.push(NO_SEVERITY);
            }
            // Before the id: a hash id is taken over the redacted object.
            redact::apply(&mut e, self, redact);
            if e.id == EventId::Unset {
                e.id = EventId::hash_of(e.raw.get().as_bytes());
            }
            emit(e)
        };
        match self {
            Vendor::Generic => match mapping {
                Some(m) => generic::decode_mapped(body, ctx, m, emit),
                None => generic::decode(body, ctx, emit),
            },
            Vendor::PrismaCloud => prisma::decode(body, ctx, emit),
            Vendor::Wallarm => wallarm::decode(body, ctx, emit),
            Vendor::Coralogix => coralogix::decode(body, ctx, emit),
            Vendor::Immuta => immuta::decode(body, ctx, emit),
        }
    }
}

/// What a decoder knows besides the body.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The configured source id the request arrived on.
    pub source: &'a str,
    pub received_at: Timestamp,
}

/// Why a body could not be decoded; every variant says where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("body is not valid UTF-8: invalid byte at offset {offset}")]
    InvalidUtf8 { offset: usize },
    #[error("malformed JSON at byte {offset}: {message}")]
    Malformed { offset: usize, message: String },
    #[error("JSON nested deeper than {limit} levels at byte {offset}")]
    TooDeep { offset: usize, limit: usize },
    #[error("unexpected JSON at byte {offset}: expected {expected}")]
    Shape {
        offset: usize,
        expected: &'static str,
    },
}

/// Normalizes every object of a body (one object or an array of objects) and emits each event;
/// returns how many were emitted. `what` names the expected shape in errors.
fn emit_each_object<'a, N, F>(
    body: &'a str,
    what: &'static str,
    mut normalize: N,
    mut emit: F,
) -> Result<usize, DecodeError>
where
    N: FnMut(&'a serde_json::value::RawValue, usize) -> Result<Event<'a>, DecodeError>,
    F: FnMut(Event<'a>) -> ControlFlow<()>,
{
    json::check_limits(body)?;
    let mut count = 0;
    let mut stopped = false;
    let walked = json::for_each_object(body, what, |raw, offset| {
        let flow = emit(normalize(raw, offset)?);
        count += 1;
        stop_walk(flow, &mut stopped)
    });
    finish_walk(walked, stopped, count)
}

/// [`emit_each_object`] for a decoder that reads each object into `T` and makes its event with
/// `fill`: each object is read in one pass where the body allows it (see
/// [`json::for_each_read`]); from the first object that does not, the body is read the ordinary
/// way, by `normalize`, which reports any error exactly as [`emit_each_object`] would.
fn emit_each_read<'a, T, R, N, F>(
    body: &'a str,
    what: &'static str,
    fill: R,
    normalize: N,
    emit: F,
) -> Result<usize, DecodeError>
where
    T: serde::Deserialize<'a>,
    R: FnMut(T, &'a serde_json::value::RawValue) -> Event<'a>,
    N: FnMut(&'a serde_json::value::RawValue, usize) -> Result<Event<'a>, DecodeError>,
    F: FnMut(Event<'a>) -> ControlFlow<()>,
{
    let walk = |body, each: &mut dyn FnMut(_, _) -> _| json::for_each_object(body, what, each);
    read_then_walk(body, false, walk, fill, normalize, emit)
}

/// [`emit_each_read`] with the ordinary reading `walk`, which calls its argument with every
/// object of the body and its offset; `stream` as in [`json::for_each_read`].
fn read_then_walk<'a, T, W, R, N, F>(
    body: &'a str,
    stream: bool,
    walk: W,
    mut fill: R,
    mut normalize: N,
    mut emit: F,
) -> Result<usize, DecodeError>
where
    T: serde::Deserialize<'a>,
    W: FnOnce(
        &'a str,
        &mut dyn FnMut(&'a serde_json::value::RawValue, usize) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError>,
    R: FnMut(T, &'a serde_json::value::RawValue) -> Event<'a>,
    N: FnMut(&'a serde_json::value::RawValue, usize) -> Result<Event<'a>, DecodeError>,
    F: FnMut(Event<'a>) -> ControlFlow<()>,
{
    let mut count = 0;
    let read = json::for_each_read(body, stream, |fields: T, raw| {
        count += 1;
        emit(fill(fields, raw))
    });
    // The body's limits, where the one-pass reader did not check every byte of it: their error
    // comes before any other, as when the pre-pass ran first (nothing emitted so far has left
    // the caller, which keeps a body's events until the body is decoded).
    let skip = match read {
        json::Read::Checked => return Ok(count),
        json::Read::Done => {
            json::check_limits(body)?;
            return Ok(count);
        }
        json::Read::Stopped(skip) => {
            json::check_limits(body)?;
            skip
        }
    };
    let mut seen = 0;
    let mut stopped = false;
    let walked = walk(body, &mut |raw, offset| {
        if seen < skip {
            seen += 1;
            return Ok(());
        }
        let flow = emit(normalize(raw, offset)?);
        count += 1;
        stop_walk(flow, &mut stopped)
    });
    finish_walk(walked, stopped, count)
}

/// Turns an `emit`'s `Break` into an error that ends a walk over a body's objects, noting in
/// `stopped` that it was asked for (see [`finish_walk`]).
fn stop_walk(flow: ControlFlow<()>, stopped: &mut bool) -> Result<(), DecodeError> {
    match flow {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => {
            *stopped = true;
            Err(DecodeError::Shape {
                offset: 0,
                expected: "nothing more (stopped)",
            })
        }
    }
}

/// The result of a walk that `stop_walk` may have ended: `count` when it was stopped on
/// purpose (the placeholder error never leaves the decoder).
fn finish_walk(
    walked: Result<(), DecodeError>,
    stopped: bool,
    count: usize,
) -> Result<usize, DecodeError> {
    match walked {
        Err(_) if stopped => Ok(count),
        other => other.map(|()| count),
    }
}

impl DecodeError {
    /// The same error with its offset moved by `base`, for errors found in a part of the body
    /// that starts at `base`.
    pub fn shifted(self, base: usize) -> DecodeError {
        match self {
            DecodeError::InvalidUtf8 { offset } => DecodeError::InvalidUtf8 {
                offset: base + offset,
            },
            DecodeError::Malformed { offset, message } => DecodeError::Malformed {
                offset: base + offset,
                message,
            },
            DecodeError::TooDeep { offset, limit } => DecodeError::TooDeep {
                offset: base + offset,
                limit,
            },
            DecodeError::Shape { offset, expected } => DecodeError::Shape {
                offset: base + offset,
                expected,
            },
        }
    }
}

/// Test support for decoders that read objects in one pass ([`emit_each_read`]): bodies that
/// are fine and bodies that break anywhere, and what a reading of them emits.
#[cfg(test)]
mod one_pass {
    #![allow(clippy::unwrap_used)]
    use proptest::prelude::*;

    use std::ops::ControlFlow;

    use serde_json::value::RawValue;

    use super::{DecodeError, Event};

    /// A reading's events as NDJSON lines, and its result.
    pub type Lines = (Vec<String>, Result<usize, DecodeError>);

    /// A body made of `elements` (objects, and things that are not), as an array with spacing,
    /// missing or doubled commas and text after its end, or as the elements alone (one per
    /// line at times, as NDJSON); and after how many events `emit` asks to stop.
    pub fn bodies(elements: Vec<&'static str>) -> impl Strategy<Value = (String, usize)> {
        (
            prop::sample::select(vec!["[", " [\n", "", "x"]),
            prop::collection::vec(prop::sample::select(elements), 0..5),
            prop::collection::vec(prop::sample::select(vec![",", " ,\n ", ",,", "", "\n"]), 5),
            prop::sample::select(vec!["]", " ]\n", "", "] x", "],{}"]),
            1..6usize,
        )
            .prop_map(|(open, elements, separators, close, limit)| {
                let mut body = open.to_owned();
                for (i, element) in elements.iter().enumerate() {
                    if i > 0 {
                        body.push_str(separators[i]);
                    }
                    body.push_str(element);
                }
                if open.contains('[') {
                    body.push_str(close);
                }
                (body, limit)
            })
    }

    /// Every event a reading emits, as its NDJSON line, and its result; `emit` asks to stop at
    /// the `limit`th event.
    pub fn lines<'a, R>(limit: usize, read: R) -> Lines
    where
        R: FnOnce(&mut dyn FnMut(Event<'a>) -> ControlFlow<()>) -> Result<usize, DecodeError>,
    {
        let mut out = Vec::new();
        let result = read(&mut |e: Event<'_>| {
            out.push(serde_json::to_string(&e).unwrap());
            if out.len() >= limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        (out, result)
    }

    /// What a decoder's `decode` emits next to what the ordinary reading of the same body emits
    /// ([`super::emit_each_object`] with the decoder's `normalize`), as [`lines`] each: the
    /// one-pass reading must not change an event, the count or an error.
    pub fn against_the_ordinary_reading<'a, D, N>(
        body: &'a str,
        limit: usize,
        expected: &'static str,
        decode: D,
        normalize: N,
    ) -> (Lines, Lines)
    where
        D: FnOnce(&mut dyn FnMut(Event<'a>) -> ControlFlow<()>) -> Result<usize, DecodeError>,
        N: FnMut(&'a RawValue, usize) -> Result<Event<'a>, DecodeError>,
    {
        let one_pass = lines(limit, decode);
        let ordinary = lines(limit, |emit| {
            super::emit_each_object(body, expected, normalize, emit)
        });
        (one_pass, ordinary)
    }

    /// In a decoder's tests: `prop_assert_eq!` of [`against_the_ordinary_reading`] with the
    /// module's `decode`, `normalize` and `EXPECTED`.
    macro_rules! assert_same_events {
        ($body:expr, $limit:expr, $ctx:expr) => {{
            let (one_pass, ordinary) = $crate::vendors::one_pass::against_the_ordinary_reading(
                $body,
                $limit,
                EXPECTED,
                |emit| decode($body, $ctx, emit),
                |raw, offset| normalize(raw, offset, $ctx),
            );
            proptest::prop_assert_eq!(one_pass, ordinary, "{}", $body);
        }};
    }
    pub(crate) use assert_same_events;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_and_names_agree() {
        for name in Vendor::names() {
            let v = Vendor::from_name(name);
            assert_eq!(v.map(Vendor::as_str), Some(name));
        }
        assert_eq!(Vendor::names().count(), 5);
        assert_eq!(Vendor::from_name("nosuch"), None);
    }

    #[test]
    fn every_decoder_refuses_a_body_past_the_limits_as_the_limits_pass_does() {
        let ctx = Context {
            source: "s",
            received_at: Timestamp(0),
        };
        let cfg: mapping::MappingConfig =
            toml::from_str(r#"title = "/name""#).unwrap_or_else(|e| panic!("{e}"));
        let mapping = mapping::Mapping::build(&cfg).unwrap_or_else(|e| panic!("{e:?}"));
        let nest = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        // Each a valid object but for one member no decoder reads; as one object, in an array
        // after a good one, and as the second line of NDJSON.
        for bad in [
            nest(json::MAX_DEPTH),
            nest(json::MAX_DEPTH - 1),
            "1e400".to_owned(),
            r#""\ud800 alone""#.to_owned(),
        ] {
            let object = format!(r#"{{"id":"x","alertId":"x","name":"n","extra":{bad}}}"#);
            for body in [
                object.clone(),
                format!(r#"[{{"id":"ok"}}, {object}]"#),
                format!("{{\"id\":\"ok\"}}\n{object}"),
            ] {
                let want = json::check_limits(&body).err();
                for vendor in Vendor::names().filter_map(Vendor::from_name) {
                    for m in [None, Some(&mapping)] {
                        if m.is_some() && vendor != Vendor::Generic {
                            continue;
                        }
                        let got =
                            vendor.decode_until(&body, &ctx, m, &[], |_| ControlFlow::Continue(()));
                        match &want {
                            Some(e) => assert_eq!(got.as_ref().err(), Some(e), "{vendor:?} {body}"),
                            None => assert!(
                                !matches!(got, Err(DecodeError::TooDeep { .. })),
                                "{vendor:?} {body}: {got:?}"
                            ),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn decode_until_stops_where_emit_says_and_reads_no_further() {
        let ctx = Context {
            source: "s",
            received_at: Timestamp(0),
        };
        // The tail after the third object is broken: a stop before it never reads it.
        let array = r#"[{"id":"a"},{"id":"b"},{"id":"c"},{"id":"#;
        let ndjson = "{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":\"c\"}\n{\"id\":";
        for (vendor, body) in [
            (Vendor::Generic, array),
            (Vendor::PrismaCloud, array),
            (Vendor::Wallarm, array),
            (Vendor::Wallarm, ndjson),
        ] {
            let mut seen = 0;
            let n = vendor.decode_until(body, &ctx, None, &[], |_| {
                seen += 1;
                if seen == 2 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            assert_eq!(n, Ok(2), "{vendor:?} {body}");
            // Without a stop the broken tail is reported as before.
            let all = vendor.decode_until(body, &ctx, None, &[], |_| ControlFlow::Continue(()));
            assert!(
                matches!(all, Err(DecodeError::Malformed { .. })),
                "{vendor:?}: {all:?}"
            );
        }
    }

    /// Every vendor's severity words in one table: what the vendor sends, where, and the
    /// normalized severity. No severity from the vendor is `unknown` (OCSF 0), never a guess;
    /// Wallarm hits carry none, so they are `unknown` too.
    #[test]
    fn severity_words_per_vendor() {
        use Severity::*;
        let prisma = |w: &str| format!(r#"{{"alertId":"P-1","severity":"{w}"}}"#);
        let wallarm_risk = |w: &str| {
            format!(
                r#"{{"details":{{"notification_type":"security_issue","security_issue":{{"risk":"{w}"}}}}}}"#
            )
        };
        let wallarm_threat = |w: &str| format!(r#"{{"title":"t","threat":"{w}"}}"#);
        let wallarm_hit = |t: &str| {
            format!(r#"{{"details":{{"notification_type":"new_hits","hit":{{"type":"{t}"}}}}}}"#)
        };
        let cx_field = |w: &str| {
            format!(r#"{{"alert_id":"a","fields":[{{"key":"severity","value":"{w}"}}]}}"#)
        };
        let cx_sendlog = |w: &str| {
            format!(r#"{{"logEntries":[{{"severity":3,"text":{{"alert_severity":"{w}"}}}}]}}"#)
        };
        let cx_priority = |w: &str| format!(r#"{{"alert_name":"n","alert_priority":"{w}"}}"#);
        let generic = |w: &str| format!(r#"{{"id":"g","severity":"{w}"}}"#);
        let table: Vec<(Vendor, String, Severity)> = vec![
            (Vendor::PrismaCloud, prisma("informational"), Informational),
            (Vendor::PrismaCloud, prisma("low"), Low),
            (Vendor::PrismaCloud, prisma("medium"), Medium),
            (Vendor::PrismaCloud, prisma("high"), High),
            (Vendor::PrismaCloud, prisma("critical"), Critical),
            (Vendor::PrismaCloud, prisma("HIGH"), High),
            (Vendor::PrismaCloud, prisma("P1"), Unknown),
            (Vendor::PrismaCloud, r#"{"alertId":"P-0"}"#.into(), Unknown),
            (Vendor::Wallarm, wallarm_risk("Critical"), Critical),
            (Vendor::Wallarm, wallarm_risk("High"), High),
            (Vendor::Wallarm, wallarm_risk("Medium"), Medium),
            (Vendor::Wallarm, wallarm_risk("Low"), Low),
            (Vendor::Wallarm, wallarm_risk("Info"), Informational),
            (Vendor::Wallarm, wallarm_risk("severe"), Unknown),
            (Vendor::Wallarm, wallarm_threat("Low"), Low),
            (Vendor::Wallarm, wallarm_threat("Medium"), Medium),
            (Vendor::Wallarm, wallarm_threat("High"), High),
            // Hits carry no severity: the attack type names the hit, it does not grade it.
            (Vendor::Wallarm, wallarm_hit("sqli"), Unknown),
            (Vendor::Wallarm, wallarm_hit("scanner"), Unknown),
            (
                Vendor::Wallarm,
                r#"{"summary":"[Wallarm] Trigger","details":{"notification_type":"ip_blocked"}}"#
                    .into(),
                Unknown,
            ),
            (Vendor::Coralogix, cx_field("Info"), Informational),
            (Vendor::Coralogix, cx_field("Warning"), Medium),
            (Vendor::Coralogix, cx_field("Error"), High),
            (Vendor::Coralogix, cx_field("Critical"), Critical),
            (Vendor::Coralogix, cx_field("CRITICAL"), Critical),
            (Vendor::Coralogix, cx_field("debug"), Informational),
            (Vendor::Coralogix, cx_field("verbose"), Informational),
            (Vendor::Coralogix, cx_field("warn"), Medium),
            (Vendor::Coralogix, cx_field("$EVENT_SEVERITY"), Unknown),
            (Vendor::Coralogix, cx_sendlog("Critical"), Critical),
            (Vendor::Coralogix, cx_sendlog("Error"), High),
            (Vendor::Coralogix, cx_priority("P1"), Critical),
            (Vendor::Coralogix, cx_priority("P2"), High),
            (Vendor::Coralogix, cx_priority("P3"), Medium),
            (Vendor::Coralogix, cx_priority("P4"), Low),
            (Vendor::Coralogix, cx_priority("P5"), Informational),
            (
                Vendor::Immuta,
                r#"{"type":"apiKeyRevoked"}"#.into(),
                Unknown,
            ),
            (Vendor::Generic, generic("info"), Informational),
            (Vendor::Generic, generic("informational"), Informational),
            (Vendor::Generic, generic("debug"), Informational),
            (Vendor::Generic, generic("low"), Low),
            (Vendor::Generic, generic("warning"), Low),
            (Vendor::Generic, generic("medium"), Medium),
            (Vendor::Generic, generic("moderate"), Medium),
            (Vendor::Generic, generic("error"), Medium),
            (Vendor::Generic, generic("high"), High),
            (Vendor::Generic, generic("critical"), Critical),
            (Vendor::Generic, generic("fatal"), Critical),
            (Vendor::Generic, generic("unknown"), Unknown),
            (Vendor::Generic, generic("P1"), Unknown),
            (Vendor::Generic, r#"{"id":"g"}"#.into(), Unknown),
        ];
        let ctx = Context {
            source: "s",
            received_at: Timestamp(0),
        };
        for (vendor, body, want) in &table {
            let mut got = Vec::new();
            vendor
                .decode(body, &ctx, |e| {
                    got.push((e.severity, e.normalization_warnings.clone()))
                })
                .unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(got.len(), 1, "{body}");
            let (severity, warnings) = &got[0];
            assert_eq!(severity, want, "{} {body}", vendor.as_str());
            // Unknown says why, unless the vendor's own word was "unknown".
            if *want == Unknown && !body.contains(r#""unknown""#) {
                assert!(
                    warnings
                        .iter()
                        .any(|w| *w == NO_SEVERITY || w.ends_with("unknown word")),
                    "an unknown severity always says why: {body} {warnings:?}"
                );
            }
        }
    }
}
