//! `Event<'a>`: one normalized alert, borrowing from the request body.
//!
//! An `Event` lives only inside the request that produced it: dispatch encodes it into each
//! target sink's wire bytes before the request answers, so the borrow never crosses a task or
//! queue boundary. `raw` is the vendor's original object, byte for byte, borrowed; only when a
//! credential field was redacted is it an owned copy with that field's value replaced.

use std::borrow::Cow;
use std::fmt;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::{Severity, Timestamp};
use crate::vendors::Vendor;

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Alert,
    Vulnerability,
    Attack,
    System,
    Test,
}

/// Lifecycle of the vendor's alert; `New` where the vendor has no lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    New,
    Open,
    Updated,
    Resolved,
    Dismissed,
    Snoozed,
}

impl Kind {
    /// The wire name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Alert => "alert",
            Kind::Vulnerability => "vulnerability",
            Kind::Attack => "attack",
            Kind::System => "system",
            Kind::Test => "test",
        }
    }

    /// The config and wire name (`alert`, `attack`, ...), any case.
    pub fn from_word(word: &str) -> Option<Kind> {
        const ALL: [(&str, Kind); 5] = [
            ("alert", Kind::Alert),
            ("vulnerability", Kind::Vulnerability),
            ("attack", Kind::Attack),
            ("system", Kind::System),
            ("test", Kind::Test),
        ];
        ALL.iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(word.trim()))
            .map(|&(_, k)| k)
    }
}

impl Status {
    /// The wire name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Open => "open",
            Status::Updated => "updated",
            Status::Resolved => "resolved",
            Status::Dismissed => "dismissed",
            Status::Snoozed => "snoozed",
        }
    }

    /// The config and wire name (`new`, `open`, ...), any case.
    pub fn from_word(word: &str) -> Option<Status> {
        const ALL: [(&str, Status); 6] = [
            ("new", Status::New),
            ("open", Status::Open),
            ("updated", Status::Updated),
            ("resolved", Status::Resolved),
            ("dismissed", Status::Dismissed),
            ("snoozed", Status::Snoozed),
        ];
        ALL.iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(word.trim()))
            .map(|&(_, s)| s)
    }
}

/// A stable event id: the vendor's own id where there is one, else a hash of `raw`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventId<'a> {
    /// Not set by the decoder; replaced by [`EventId::hash_of`] the raw object before the
    /// event leaves the decoder, so the hash is only computed for alerts without an id.
    Unset,
    Vendor(Cow<'a, str>),
    /// First 16 bytes of SHA-256 over the raw object, as 32 lowercase hex digits.
    Hash([u8; 32]),
    /// A vendor id qualified by a lifecycle word, written `id:word` (no allocation).
    Joined(Cow<'a, str>, &'static str),
    /// A two-part vendor id, written `first:second` (e.g. Wallarm's `[index, doc_id]`).
    Pair(Cow<'a, str>, Cow<'a, str>),
    /// One occurrence of a recurring alert, written `id:word:millis`.
    Occurrence(Cow<'a, str>, &'static str, i64),
}

impl EventId<'_> {
    pub fn hash_of(raw: &[u8]) -> EventId<'static> {
        let digest = Sha256::digest(raw);
        let mut out = [0u8; 32];
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, b) in digest.iter().take(16).enumerate() {
            out[2 * i] = HEX[usize::from(b >> 4)];
            out[2 * i + 1] = HEX[usize::from(b & 0x0f)];
        }
        EventId::Hash(out)
    }
}

impl fmt::Display for EventId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventId::Unset => Ok(()),
            EventId::Vendor(s) => f.write_str(s),
            // Only hex digits were written.
            EventId::Hash(h) => f.write_str(std::str::from_utf8(h).unwrap_or("")),
            EventId::Joined(id, word) => write!(f, "{id}:{word}"),
            EventId::Pair(a, b) => write!(f, "{a}:{b}"),
            EventId::Occurrence(id, word, n) => write!(f, "{id}:{word}:{n}"),
        }
    }
}

impl Serialize for EventId<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The cloud resource an alert is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Resource<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Cow<'a, str>>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_name: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud: Option<Cow<'a, str>>,
}

impl Resource<'_> {
    pub fn is_empty(&self) -> bool {
        *self == Resource::default()
    }
}

/// Network facts of an attack (source address, target host and request).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Network<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_ip: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<Cow<'a, str>>,
}

impl Network<'_> {
    pub fn is_empty(&self) -> bool {
        *self == Network::default()
    }
}

/// OCSF classification of the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ocsf {
    pub class_uid: u32,
    pub category_uid: u32,
    pub activity_id: u32,
}

impl Ocsf {
    /// Detection Finding (2004), category Findings (2), activity Create (1).
    pub const DETECTION_FINDING: Ocsf = Ocsf {
        class_uid: 2004,
        category_uid: 2,
        activity_id: 1,
    };

    /// Vulnerability Finding (2002).
    pub const VULNERABILITY_FINDING: Ocsf = Ocsf {
        class_uid: 2002,
        category_uid: 2,
        activity_id: 1,
    };

    /// Compliance Finding (2003).
    pub const COMPLIANCE_FINDING: Ocsf = Ocsf {
        class_uid: 2003,
        category_uid: 2,
        activity_id: 1,
    };

    /// Account Change (3001), category Identity & Access Management (3).
    pub const ACCOUNT_CHANGE: Ocsf = Ocsf {
        class_uid: 3001,
        category_uid: 3,
        activity_id: 1,
    };

    /// User Access Management (3005), category Identity & Access Management (3); activity
    /// 0 (Unknown) until a real Immuta payload tells grants from revocations.
    pub const USER_ACCESS_MANAGEMENT: Ocsf = Ocsf {
        class_uid: 3005,
        category_uid: 3,
        activity_id: 0,
    };

    /// The same class with another activity (findings: 1 Create, 2 Update, 3 Close).
    pub const fn with_activity(self, activity_id: u32) -> Ocsf {
        Ocsf {
            activity_id,
            ..self
        }
    }

    /// OCSF `type_uid` = class_uid * 100 + activity_id.
    pub fn type_uid(self) -> u32 {
        self.class_uid * 100 + self.activity_id
    }
}

impl Serialize for Ocsf {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Ocsf", 4)?;
        st.serialize_field("class_uid", &self.class_uid)?;
        st.serialize_field("category_uid", &self.category_uid)?;
        st.serialize_field("activity_id", &self.activity_id)?;
        st.serialize_field("type_uid", &self.type_uid())?;
        st.end()
    }
}

/// One normalized alert (DESIGN §3).
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub id: EventId<'a>,
    pub time: Timestamp,
    pub received_at: Timestamp,
    pub vendor: Vendor,
    pub product: &'static str,
    /// The configured source id the event arrived on.
    pub source: &'a str,
    pub kind: Kind,
    pub status: Status,
    /// Serialized with its OCSF `severity_id` beside it.
    pub severity: Severity,
    /// The vendor's own severity word, kept as sent.
    pub vendor_severity: Option<Cow<'a, str>>,
    pub title: Option<Cow<'a, str>>,
    pub description: Option<Cow<'a, str>>,
    pub resource: Resource<'a>,
    pub network: Network<'a>,
    pub url: Option<Cow<'a, str>>,
    pub ocsf: Ocsf,
    /// Fields that could not be normalized; the event still carries `raw`.
    pub normalization_warnings: Vec<&'static str>,
    /// Borrowed from the body unless a credential field had to be redacted.
    pub raw: Cow<'a, RawValue>,
}

/// The warning of an event whose object carries none of its vendor's recognisable fields.
pub const UNRECOGNIZED: &str = "shape: none of the vendor's fields were recognised";

impl Serialize for Event<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Event", 20)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("time", &self.time)?;
        st.serialize_field("received_at", &self.received_at)?;
        st.serialize_field("vendor", &self.vendor)?;
        st.serialize_field("product", self.product)?;
        st.serialize_field("source", self.source)?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("status", &self.status)?;
        st.serialize_field("severity", &self.severity)?;
        st.serialize_field("severity_id", &self.severity.ocsf_id())?;
        if let Some(v) = &self.vendor_severity {
            st.serialize_field("vendor_severity", v)?;
        }
        if let Some(v) = &self.title {
            st.serialize_field("title", v)?;
        }
        if let Some(v) = &self.description {
            st.serialize_field("description", v)?;
        }
        if !self.resource.is_empty() {
            st.serialize_field("resource", &self.resource)?;
        }
        if !self.network.is_empty() {
            st.serialize_field("network", &self.network)?;
        }
        if let Some(v) = &self.url {
            st.serialize_field("url", v)?;
        }
        st.serialize_field("ocsf", &self.ocsf)?;
        if !self.normalization_warnings.is_empty() {
            st.serialize_field("normalization_warnings", &self.normalization_warnings)?;
        }
        st.serialize_field("raw", &*self.raw)?;
        st.end()
    }
}

impl<'a> Event<'a> {
    /// An event with every optional field empty; decoders fill in what their vendor gives.
    pub fn new(
        vendor: Vendor,
        source: &'a str,
        raw: &'a RawValue,
        received_at: Timestamp,
    ) -> Event<'a> {
        Event {
            id: EventId::Unset,
            time: received_at,
            received_at,
            vendor,
            product: vendor.product(),
            source,
            kind: Kind::Alert,
            status: Status::New,
            severity: Severity::Unknown,
            vendor_severity: None,
            title: None,
            description: None,
            resource: Resource::default(),
            network: Network::default(),
            url: None,
            ocsf: Ocsf::DETECTION_FINDING,
            normalization_warnings: Vec::new(),
            raw: Cow::Borrowed(raw),
        }
    }

    /// Marks an object none of whose fields the decoder recognised: severity unknown and the
    /// [`UNRECOGNIZED`] warning (dispatch counts and logs these per source).
    pub fn mark_unrecognized(&mut self) {
        self.severity = Severity::Unknown;
        self.normalization_warnings.push(UNRECOGNIZED);
    }

    pub fn is_unrecognized(&self) -> bool {
        self.normalization_warnings.contains(&UNRECOGNIZED)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn serializes_raw_verbatim_and_skips_empty_parts() {
        let raw: &RawValue = serde_json::from_str(r#"{"b": 1,  "a":"x"}"#).unwrap();
        let mut e = Event::new(Vendor::Generic, "src", raw, Timestamp(0));
        e.id = EventId::Vendor("x".into());
        e.severity = Severity::High;
        let line = serde_json::to_string(&e).unwrap();
        assert!(line.ends_with(r#""raw":{"b": 1,  "a":"x"}}"#), "{line}");
        assert!(
            line.contains(r#""severity":"high","severity_id":4"#),
            "{line}"
        );
        assert!(
            !line.contains("resource") && !line.contains("network"),
            "{line}"
        );
        assert!(line.contains(r#""type_uid":200401"#), "{line}");
    }

    #[test]
    fn hash_id_is_stable_and_hex() {
        let a = EventId::hash_of(b"{\"x\":1}");
        assert_eq!(a, EventId::hash_of(b"{\"x\":1}"));
        assert_ne!(a, EventId::hash_of(b"{\"x\":2}"));
        let text = a.to_string();
        assert_eq!(text.len(), 32);
        assert!(text.bytes().all(|b| b.is_ascii_hexdigit()));
        let joined = EventId::Joined("P-1".into(), "open");
        assert_eq!(serde_json::to_string(&joined).unwrap(), r#""P-1:open""#);
    }
}
