//! What a Kafka sink queues per event: one record that carries the message's value and what
//! the transport needs besides it (the topic template's parts, the key, the headers), built
//! at the edge like every sink's wire bytes.
//!
//! The record is a JSON object, so a dead letter reads like any JSON sink's (its `event` is
//! what the message value would have been):
//!
//! ```text
//! {"kafka":{"vendor":"wallarm","kind":"attack","source":"w-eu","id":"1234"},"event":<value>}
//! ```
//!
//! The value is the event as JSON (the normalized Event, or its OCSF object with
//! `encoding = "ocsf"`), on one line.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

use crate::normalize::ocsf::{OcsfEvent, OcsfVersion};
use crate::normalize::Event;
use crate::sinks::{one_line, EncodeError, Encoder};

const HEAD: &[u8] = b"{\"kafka\":";
const VALUE: &[u8] = b",\"event\":";

/// What the transport needs of an event besides its value.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta<'a> {
    #[serde(borrow)]
    pub vendor: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub source: Cow<'a, str>,
    #[serde(borrow)]
    pub id: Cow<'a, str>,
}

/// One queued record, read back.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub meta: Meta<'a>,
    /// The message value.
    pub value: &'a [u8],
}

/// Reads a record; `None` when `bytes` is not one (a dead letter edited by hand, say).
pub fn parse(bytes: &[u8]) -> Option<Record<'_>> {
    let rest = bytes.strip_prefix(HEAD)?;
    let mut stream = serde_json::Deserializer::from_slice(rest).into_iter::<Meta<'_>>();
    let meta = stream.next()?.ok()?;
    let value = rest
        .get(stream.byte_offset()..)?
        .strip_prefix(VALUE)?
        .strip_suffix(b"}")?;
    (!value.is_empty()).then_some(Record { meta, value })
}

/// Encodes each event as a [`Record`] whose value is the event's JSON (or OCSF object).
#[derive(Debug, Clone, Copy, Default)]
pub struct KafkaEncoder {
    ocsf: Option<OcsfVersion>,
}

impl KafkaEncoder {
    pub fn new(ocsf: Option<OcsfVersion>) -> KafkaEncoder {
        KafkaEncoder { ocsf }
    }
}

/// The event id as a JSON string, escaped as its `Display` writes it (no allocation).
struct IdText<'e, 'a>(&'e Event<'a>);

impl Serialize for IdText<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0.id)
    }
}

impl Encoder for KafkaEncoder {
    fn encode(&self, event: &Event<'_>, out: &mut BytesMut) -> Result<(), EncodeError> {
        out.extend_from_slice(HEAD);
        out.extend_from_slice(b"{\"vendor\":\"");
        out.extend_from_slice(event.vendor.as_str().as_bytes());
        out.extend_from_slice(b"\",\"kind\":\"");
        out.extend_from_slice(event.kind.as_str().as_bytes());
        // Source ids are `[A-Za-z0-9._-]`, vendor names and kinds lowercase words: nothing to
        // escape; the id may hold anything.
        out.extend_from_slice(b"\",\"source\":\"");
        out.extend_from_slice(event.source.as_bytes());
        out.extend_from_slice(b"\",\"id\":");
        serde_json::to_writer(out.writer(), &IdText(event))?;
        out.put_u8(b'}');
        out.extend_from_slice(VALUE);
        let at = out.len();
        match self.ocsf {
            // On one line already.
            None => crate::normalize::write::event(event, out),
            Some(v) => {
                serde_json::to_writer(out.writer(), &OcsfEvent::new(event, v))?;
                one_line(&mut out[at..]);
            }
        }
        out.put_u8(b'}');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::normalize::{EventId, Kind, Timestamp};
    use crate::vendors::Vendor;

    fn encoded(ocsf: Option<OcsfVersion>) -> BytesMut {
        let raw: &serde_json::value::RawValue =
            serde_json::from_str("{\n \"alertId\": \"A-1\"\n}").unwrap();
        let mut e = Event::new(Vendor::PrismaCloud, "Prisma.EU", raw, Timestamp(0));
        e.id = EventId::Vendor("a\"{b}\n".into());
        e.kind = Kind::Vulnerability;
        let mut out = BytesMut::new();
        KafkaEncoder::new(ocsf).encode(&e, &mut out).unwrap();
        out
    }

    #[test]
    fn a_record_reads_back_with_its_value_and_is_json_for_the_dead_letters() {
        let out = encoded(None);
        let r = parse(&out).unwrap();
        assert_eq!(
            r.meta,
            Meta {
                vendor: "prisma_cloud".into(),
                kind: "vulnerability".into(),
                source: "Prisma.EU".into(),
                id: "a\"{b}\n".into(),
            }
        );
        let value: serde_json::Value = serde_json::from_slice(r.value).unwrap();
        assert_eq!(value["id"], "a\"{b}\n");
        assert_eq!(value["raw"]["alertId"], "A-1");
        assert!(!r.value.contains(&b'\n'), "one line");
        let whole: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(whole["event"], value);
        let summary = crate::sinks::dead_letter::summarize(std::str::from_utf8(&out).unwrap());
        assert_eq!(summary.vendor.as_deref(), Some("prisma_cloud"));
    }

    #[test]
    fn ocsf_values_and_what_is_not_a_record() {
        let out = encoded(Some(OcsfVersion::default()));
        let value: serde_json::Value = serde_json::from_slice(parse(&out).unwrap().value).unwrap();
        assert!(value["class_uid"].is_u64(), "{value}");
        for bad in [
            &b""[..],
            b"{\"kafka\":{}}",
            b"{\"event\":{}}",
            b"{\"kafka\":{\"vendor\":\"v\",\"kind\":\"k\",\"source\":\"s\",\"id\":\"i\"},\"event\":}",
            &out[..40],
        ] {
            assert_eq!(parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
