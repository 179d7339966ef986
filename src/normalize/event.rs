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

use super::Vendor;
use super::{Severity, Timestamp};

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

/// Where the vendor's alert stands (its state, not what just happened to it: that is the OCSF
/// activity, `ocsf.activity_id`); `New` where the vendor has no lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    New,
    Open,
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
            Status::Resolved => "resolved",
            Status::Dismissed => "dismissed",
            Status::Snoozed => "snoozed",
        }
    }

    /// The config and wire name (`new`, `open`, ...), any case.
    pub fn from_word(word: &str) -> Option<Status> {
        const ALL: [(&str, Status); 5] = [
            ("new", Status::New),
            ("open", Status::Open),
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
    /// One status notification of an alert that is notified again in the same status (a
    /// reopen), written `id:status[:reason][:millis]`: the reason and the time of the change
    /// tell the notifications apart, and a retry of one notification repeats all of them.
    Change(
        Cow<'a, str>,
        &'static str,
        Option<Cow<'a, str>>,
        Option<i64>,
    ),
}

impl EventId<'_> {
    pub fn hash_of(raw: &[u8]) -> EventId<'static> {
        // ring's SHA-256 rather than the `sha2` crate's: both take the SHA extensions where
        // the CPU has them; without them ring's assembly (AVX, SSSE3) takes about 40% fewer
        // instructions than sha2's portable code. Alerts without an id hash their whole
        // object, which was the larger part of their decode + encode cost on such hosts.
        let digest = ring::digest::digest(&ring::digest::SHA256, raw);
        let mut out = [0u8; 32];
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, b) in digest.as_ref().iter().take(16).enumerate() {
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
            EventId::Change(id, word, reason, at) => {
                write!(f, "{id}:{word}")?;
                if let Some(r) = reason {
                    write!(f, ":{r}")?;
                }
                match at {
                    Some(n) => write!(f, ":{n}"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl Serialize for EventId<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The cloud resource an alert is about.
#[derive(Debug, Clone, Default, Serialize)]
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
    /// The resource's tags as the vendor sent them (a JSON object), e.g. Prisma `resourceTags`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<&'a RawValue>,
}

impl PartialEq for Resource<'_> {
    fn eq(&self, o: &Self) -> bool {
        let tags = |r: &Self| r.tags.map(RawValue::get);
        (&self.id, &self.name, &self.kind, &self.region) == (&o.id, &o.name, &o.kind, &o.region)
            && (&self.account_id, &self.account_name, &self.cloud)
                == (&o.account_id, &o.account_name, &o.cloud)
            && tags(self) == tags(o)
    }
}

impl Eq for Resource<'_> {}

impl Resource<'_> {
    pub fn is_empty(&self) -> bool {
        *self == Resource::default()
    }
}

/// What the vendor's rule or policy says about the finding (OCSF `finding_info` and `policy`:
/// `analytic`, `types`, `first_seen_time`, `last_seen_time`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finding<'a> {
    /// The policy that fired: Prisma `policyId`, `policyName`, `policyType` (config, network, ...).
    pub policy_id: Option<Cow<'a, str>>,
    pub policy_name: Option<Cow<'a, str>>,
    pub policy_type: Option<Cow<'a, str>>,
    /// The vendor rule that routed the notification (Prisma `alertRuleName`).
    pub rule: Option<Cow<'a, str>>,
    /// The vendor's code for what was found (Wallarm attack type `sqli`, ...); the readable
    /// name is the event `title`.
    pub type_code: Option<Cow<'a, str>>,
    pub first_seen: Option<Timestamp>,
    pub last_seen: Option<Timestamp>,
}

impl Finding<'_> {
    pub fn is_empty(&self) -> bool {
        *self == Finding::default()
    }
}

impl Serialize for Finding<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Policy<'p> {
            #[serde(skip_serializing_if = "Option::is_none")]
            id: Option<&'p str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            name: Option<&'p str>,
            #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
            kind: Option<&'p str>,
        }
        let mut st = s.serialize_struct("Finding", 5)?;
        let policy = Policy {
            id: self.policy_id.as_deref(),
            name: self.policy_name.as_deref(),
            kind: self.policy_type.as_deref(),
        };
        if policy.id.is_some() || policy.name.is_some() || policy.kind.is_some() {
            st.serialize_field("policy", &policy)?;
        }
        if let Some(v) = &self.rule {
            st.serialize_field("rule", v)?;
        }
        if let Some(v) = &self.type_code {
            st.serialize_field("type", v)?;
        }
        if let Some(v) = &self.first_seen {
            st.serialize_field("first_seen", v)?;
        }
        if let Some(v) = &self.last_seen {
            st.serialize_field("last_seen", v)?;
        }
        st.end()
    }
}

/// What the vendor did with the request or activity (OCSF `disposition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    Allowed,
    Blocked,
    /// Seen and reported, not stopped (Wallarm's monitoring mode).
    Detected,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Allowed => "allowed",
            Disposition::Blocked => "blocked",
            Disposition::Detected => "detected",
        }
    }

    /// OCSF `disposition_id`: 1 Allowed, 2 Blocked, 15 Detected.
    pub fn ocsf_id(self) -> u8 {
        match self {
            Disposition::Allowed => 1,
            Disposition::Blocked => 2,
            Disposition::Detected => 15,
        }
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
    pub finding: Finding<'a>,
    /// The vendor's fix text (Prisma `policyRecommendation`; OCSF `remediation.desc`).
    pub remediation: Option<Cow<'a, str>>,
    /// Why the status is what it is (Prisma `reason`, e.g. `USER_REOPENED`; OCSF `status_detail`).
    pub status_detail: Option<Cow<'a, str>>,
    pub disposition: Option<Disposition>,
    /// The vendor's own cloud that holds the account (Wallarm `cloud`: EU, US), not the
    /// resource's region.
    pub vendor_cloud: Option<Cow<'a, str>>,
    pub ocsf: Ocsf,
    /// Fields that could not be normalized; the event still carries `raw`.
    pub normalization_warnings: Vec<&'static str>,
    /// A time the vendor wrote that could not be read, kept as sent; serialized as one more
    /// `normalization_warnings` entry (`time: not understood: "<text>"`).
    pub unparsed_time: Option<Cow<'a, str>>,
    /// Borrowed from the body unless a credential field had to be redacted.
    pub raw: Cow<'a, RawValue>,
}

impl Event<'_> {
    /// About how many bytes the event takes as JSON (`normalize::write::event`), and at least
    /// that unless its text needs many escapes: `raw`, the text of every field, and room for the
    /// keys, the id, times and numbers. Encoders reserve it before writing an event, and a
    /// request's buffer is sized from its first event (`dispatch`), so that the usual event is
    /// written without the buffer growing (a copy of everything written so far).
    pub fn encoded_len_hint(&self) -> usize {
        let len = |t: &Option<Cow<'_, str>>| t.as_ref().map_or(0, |t| t.len());
        let r = &self.resource;
        let f = &self.finding;
        let n = &self.network;
        let text = [
            &self.vendor_severity,
            &self.title,
            &self.description,
            &self.url,
            &self.remediation,
            &self.status_detail,
            &self.vendor_cloud,
            &self.unparsed_time,
            &r.id,
            &r.name,
            &r.kind,
            &r.region,
            &r.account_id,
            &r.account_name,
            &r.cloud,
            &f.policy_id,
            &f.policy_name,
            &f.policy_type,
            &f.rule,
            &f.type_code,
            &n.src_ip,
            &n.domain,
            &n.path,
            &n.method,
        ]
        .into_iter()
        .map(len)
        .sum::<usize>();
        let id = match &self.id {
            EventId::Vendor(a) | EventId::Joined(a, _) | EventId::Occurrence(a, _, _) => a.len(),
            EventId::Pair(a, b) => a.len() + b.len(),
            EventId::Change(a, _, reason, _) => a.len() + len(reason),
            EventId::Unset | EventId::Hash(_) => 0,
        };
        let warnings = self
            .normalization_warnings
            .iter()
            .map(|w| w.len() + 3)
            .sum::<usize>();
        self.raw.get().len() + text + id + warnings + EVENT_FIXED_LEN
    }
}

/// What an event's JSON takes besides `raw` and its text ([`Event::encoded_len_hint`]): every
/// key, the times, the id's words and numbers, the `ocsf` block and the punctuation.
const EVENT_FIXED_LEN: usize = 768;

/// The warning of an event whose object carries none of its vendor's recognisable fields.
pub const UNRECOGNIZED: &str = "shape: none of the vendor's fields were recognised";

impl Serialize for Event<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Event", 27)?;
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
        if !self.finding.is_empty() {
            st.serialize_field("finding", &self.finding)?;
        }
        if let Some(v) = &self.remediation {
            st.serialize_field("remediation", v)?;
        }
        if let Some(v) = &self.status_detail {
            st.serialize_field("status_detail", v)?;
        }
        if let Some(v) = self.disposition {
            st.serialize_field("disposition", &v)?;
            st.serialize_field("disposition_id", &v.ocsf_id())?;
        }
        if let Some(v) = &self.vendor_cloud {
            st.serialize_field("vendor_cloud", v)?;
        }
        st.serialize_field("ocsf", &self.ocsf)?;
        if !self.normalization_warnings.is_empty() || self.unparsed_time.is_some() {
            st.serialize_field("normalization_warnings", &Warnings(self, usize::MAX))?;
        }
        st.serialize_field("raw", &*self.raw)?;
        st.end()
    }
}

/// The warnings list as serialized: the static entries, then the unparsed time with its text,
/// cut to at most the given number of characters (OCSF caps its strings; the Event does not).
pub(crate) struct Warnings<'e, 'a>(pub &'e Event<'a>, pub usize);

impl Serialize for Warnings<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let e = self.0;
        let mut seq = s.serialize_seq(None)?;
        for w in &e.normalization_warnings {
            seq.serialize_element(w)?;
        }
        if let Some(t) = &e.unparsed_time {
            let text = match t.char_indices().nth(self.1) {
                Some((at, _)) => &t[..at],
                None => t,
            };
            seq.serialize_element(&Unparsed(text))?;
        }
        seq.end()
    }
}

struct Unparsed<'t>(&'t str);

impl Serialize for Unparsed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("time: not understood: {:?}", self.0))
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
            finding: Finding::default(),
            remediation: None,
            status_detail: None,
            disposition: None,
            vendor_cloud: None,
            ocsf: Ocsf::DETECTION_FINDING,
            normalization_warnings: Vec::new(),
            unparsed_time: None,
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
    fn new_fields_serialize_only_when_set_and_unparsed_time_is_a_warning() {
        let raw: &RawValue = serde_json::from_str("{}").unwrap();
        let tags: &RawValue = serde_json::from_str(r#"{"env":"prod"}"#).unwrap();
        let mut e = Event::new(Vendor::Generic, "src", raw, Timestamp(0));
        let line = serde_json::to_string(&e).unwrap();
        for absent in [
            "finding",
            "disposition",
            "remediation",
            "status_detail",
            "vendor_cloud",
        ] {
            assert!(!line.contains(absent), "{line}");
        }
        e.finding.policy_id = Some("p-1".into());
        e.finding.type_code = Some("sqli".into());
        e.finding.first_seen = Some(Timestamp(1000));
        e.disposition = Some(Disposition::Blocked);
        e.resource.tags = Some(tags);
        e.normalization_warnings.push("x: y");
        e.unparsed_time = Some("Jan 99, 2018".into());
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v["finding"],
            serde_json::json!({"policy": {"id": "p-1"}, "type": "sqli",
                               "first_seen": "1970-01-01T00:00:01.000Z"})
        );
        assert_eq!(
            (&v["disposition"], &v["disposition_id"]),
            (&"blocked".into(), &2.into())
        );
        assert_eq!(v["resource"]["tags"]["env"], "prod");
        assert_eq!(
            v["normalization_warnings"],
            serde_json::json!(["x: y", "time: not understood: \"Jan 99, 2018\""])
        );
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
        let change = |reason: Option<&'static str>, at| {
            EventId::Change("P-1".into(), "open", reason.map(Into::into), at).to_string()
        };
        assert_eq!(
            change(Some("USER_REOPENED"), Some(9)),
            "P-1:open:USER_REOPENED:9"
        );
        assert_eq!(change(None, Some(9)), "P-1:open:9");
        assert_eq!(change(Some("NEW_ALERT"), None), "P-1:open:NEW_ALERT");
        assert_eq!(change(None, None), "P-1:open");
    }
}
