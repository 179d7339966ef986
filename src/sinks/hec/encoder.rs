//! The HEC event encoder: one envelope per event, built at the edge,
//! `{"time":<s.mmm>,"host":..,"source":..,"sourcetype":..,"index":..,"event":{..},"fields":{..}}`
//! with the `host`..`index` part built once per source, and `fields` flat strings (HEC refuses
//! nested indexed fields with code 15).

use std::io::Write as _;

use bytes::{BufMut, BytesMut};

use crate::config::{HecSettings, SourceSettings, DEFAULT_HEC_SOURCETYPE};
use crate::normalize::ocsf::{OcsfEvent, OcsfVersion};
use crate::normalize::Event;
use crate::sinks::{EncodeError, Encoder};

/// Encodes one event as a HEC event envelope followed by a newline:
/// `{"time":<s.mmm>,"host":..,"source":..,"sourcetype":..,"index":..,"event":{Event},"fields":{..}}`.
pub struct HecEncoder {
    /// The `,"host":...` part, the same for every event of one source: built once.
    meta: Box<[u8]>,
    /// `Some` with `encoding = "ocsf"`: the event is the OCSF object.
    ocsf: Option<OcsfVersion>,
    /// With OCSF and no sourcetype configured: `ocsf:<class>` per event (left out of `meta`).
    class_sourcetype: bool,
}

impl HecEncoder {
    pub fn new(settings: &HecSettings, source: &SourceSettings) -> HecEncoder {
        let o = &source.hec;
        let default_source = format!("siemgate:{}", source.id);
        let host = o.host.as_deref().unwrap_or(&settings.host);
        let src = o
            .source
            .as_deref()
            .or(settings.source.as_deref())
            .unwrap_or(&default_source);
        let sourcetype = o.sourcetype.as_deref().unwrap_or(&settings.sourcetype);
        let index = o.index.as_deref().or(settings.index.as_deref());
        let mut meta = Vec::with_capacity(128);
        for (key, value) in [
            ("host", Some(host)),
            ("source", Some(src)),
            ("sourcetype", Some(sourcetype)),
            ("index", index),
        ] {
            if let Some(v) = value {
                meta.extend_from_slice(b",\"");
                meta.extend_from_slice(key.as_bytes());
                meta.extend_from_slice(b"\":");
                // Serializing a &str cannot fail.
                let _ = serde_json::to_writer(&mut meta, v);
            }
        }
        HecEncoder {
            meta: meta.into_boxed_slice(),
            ocsf: None,
            class_sourcetype: false,
        }
    }

    /// With `encoding = "ocsf"`: the OCSF object is the `event`, and unless a sourcetype is
    /// configured (on the sink, other than the default, or on the source) the sourcetype
    /// names its class, e.g. `ocsf:detection_finding`.
    pub fn with_ocsf(self, ocsf: Option<OcsfVersion>) -> HecEncoder {
        let Some(version) = ocsf else { return self };
        let default = format!(",\"sourcetype\":\"{DEFAULT_HEC_SOURCETYPE}\"");
        let mut meta = self.meta.into_vec();
        let class_sourcetype = match find(&meta, default.as_bytes()) {
            Some(at) => {
                meta.drain(at..at + default.len());
                true
            }
            None => false,
        };
        HecEncoder {
            meta: meta.into_boxed_slice(),
            ocsf: Some(version),
            class_sourcetype,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Epoch seconds with exactly three decimals (HEC reads `time` as seconds; milliseconds as an
/// integer would land events 50,000 years ahead).
fn write_epoch_seconds(millis: i64, out: &mut BytesMut) {
    let sign = if millis < 0 { "-" } else { "" };
    let abs = millis.unsigned_abs();
    let _ = write!(out.writer(), "{sign}{}.{:03}", abs / 1000, abs % 1000);
}

impl Encoder for HecEncoder {
    fn encode(&self, event: &Event<'_>, out: &mut BytesMut) -> Result<(), EncodeError> {
        out.extend_from_slice(b"{\"time\":");
        write_epoch_seconds(event.time.millis(), out);
        out.extend_from_slice(&self.meta);
        match self.ocsf {
            None => {
                out.extend_from_slice(b",\"event\":");
                crate::normalize::write::event(event, out);
            }
            Some(version) => {
                let ocsf = OcsfEvent::new(event, version);
                if self.class_sourcetype {
                    out.extend_from_slice(b",\"sourcetype\":\"ocsf:");
                    out.extend_from_slice(ocsf.class().snake_name().as_bytes());
                    out.put_u8(b'"');
                }
                out.extend_from_slice(b",\"event\":");
                serde_json::to_writer(out.writer(), &ocsf)?;
            }
        }
        // Indexed fields must be flat strings (nested values are HEC code 15).
        out.extend_from_slice(b",\"fields\":{\"vendor\":\"");
        out.extend_from_slice(event.vendor.as_str().as_bytes());
        out.extend_from_slice(b"\",\"severity\":\"");
        out.extend_from_slice(event.severity.as_str().as_bytes());
        out.extend_from_slice(b"\",\"kind\":\"");
        out.extend_from_slice(event.kind.as_str().as_bytes());
        if let Some(d) = event.disposition {
            out.extend_from_slice(b"\",\"disposition\":\"");
            out.extend_from_slice(d.as_str().as_bytes());
        }
        out.extend_from_slice(b"\"}}\n");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn disposition_is_an_indexed_field_when_the_vendor_gives_one() {
        use crate::normalize::{Disposition, Timestamp};
        use crate::vendors::Vendor;
        let enc = HecEncoder {
            meta: Box::from(&b""[..]),
            ocsf: None,
            class_sourcetype: false,
        };
        let raw: &serde_json::value::RawValue = serde_json::from_str("{}").unwrap();
        let mut e = Event::new(Vendor::Wallarm, "w", raw, Timestamp(0));
        let fields = |e: &Event<'_>| {
            let mut out = BytesMut::new();
            enc.encode(e, &mut out).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            v["fields"].clone()
        };
        assert!(fields(&e).get("disposition").is_none());
        e.disposition = Some(Disposition::Blocked);
        assert_eq!(fields(&e)["disposition"], "blocked");
        assert_eq!(fields(&e)["kind"], "alert");
    }

    #[test]
    fn ocsf_event_with_a_class_sourcetype_unless_one_is_configured() {
        use crate::normalize::{Ocsf, Timestamp};
        let meta = |st: &str| -> Box<[u8]> {
            format!(",\"host\":\"h\",\"sourcetype\":\"{st}\"")
                .into_bytes()
                .into_boxed_slice()
        };
        let raw: &serde_json::value::RawValue = serde_json::from_str("{}").unwrap();
        let mut e = Event::new(crate::vendors::Vendor::Wallarm, "w", raw, Timestamp(0));
        e.ocsf = Ocsf::DETECTION_FINDING;
        let encode = |enc: &HecEncoder, e: &Event<'_>| {
            let mut out = BytesMut::new();
            enc.encode(e, &mut out).unwrap();
            serde_json::from_slice::<serde_json::Value>(&out).unwrap()
        };
        let plain = HecEncoder {
            meta: meta(DEFAULT_HEC_SOURCETYPE),
            ocsf: None,
            class_sourcetype: false,
        };
        let ocsf = HecEncoder {
            meta: meta(DEFAULT_HEC_SOURCETYPE),
            ocsf: None,
            class_sourcetype: false,
        }
        .with_ocsf(Some(OcsfVersion::V1_1_0));
        let v = encode(&ocsf, &e);
        assert_eq!(v["sourcetype"], "ocsf:detection_finding");
        assert_eq!(v["event"]["class_uid"], 2004);
        assert_eq!(v["event"]["metadata"]["version"], "1.1.0");
        assert_eq!(v["host"], "h");
        assert_eq!(encode(&plain, &e)["sourcetype"], DEFAULT_HEC_SOURCETYPE);
        let custom = HecEncoder {
            meta: meta("mine"),
            ocsf: None,
            class_sourcetype: false,
        }
        .with_ocsf(Some(OcsfVersion::V1_8_0));
        let v = encode(&custom, &e);
        assert_eq!(v["sourcetype"], "mine");
        assert_eq!(v["event"]["metadata"]["version"], "1.8.0");
    }

    #[test]
    fn epoch_seconds_keep_milliseconds_and_sign() {
        for (ms, text) in [
            (1_700_000_000_123, "1700000000.123"),
            (5, "0.005"),
            (-1, "-0.001"),
            (-1500, "-1.500"),
        ] {
            let mut out = BytesMut::new();
            write_epoch_seconds(ms, &mut out);
            assert_eq!(&out[..], text.as_bytes());
        }
    }

    #[test]
    fn unknown_severity_is_an_indexed_field_and_severity_id_0() {
        let raw: &serde_json::value::RawValue = serde_json::from_str("{}").unwrap();
        let e = Event::new(
            crate::vendors::Vendor::Immuta,
            "im",
            raw,
            crate::normalize::Timestamp(0),
        );
        let enc = HecEncoder {
            meta: Box::default(),
            ocsf: None,
            class_sourcetype: false,
        };
        let mut out = BytesMut::new();
        enc.encode(&e, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["fields"]["severity"], "unknown");
        assert_eq!(v["event"]["severity"], "unknown");
        assert_eq!(v["event"]["severity_id"], 0);
    }
}
