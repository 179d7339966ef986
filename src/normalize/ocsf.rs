//! The OCSF encoding of an [`Event`]: one OCSF 1.x class object per event, written straight
//! from the event's borrowed fields by serde (no `serde_json::Value` tree).
//!
//! Every object uses only attributes that exist in both OCSF 1.1.0 (what Amazon Security Lake
//! validates against) and 1.8.0, so one object is valid against both; `fixtures/ocsf/` holds
//! the schemas and `tests/ocsf.rs` proves it for every golden vendor event.
//!
//! The class is the event's `ocsf.class_uid` when its required attributes can be filled
//! honestly, else Detection Finding (2004) with `finding_info`:
//! * Compliance Finding (2003) needs `compliance.standards`: read from Prisma's
//!   `complianceMetadata` in `raw` (borrowed, only here);
//! * Vulnerability Finding (2002) needs a vulnerability with a CWE: read from Wallarm's
//!   vulnerability `type` in `raw` and mapped by [`wallarm_cwe`];
//! * Account Change (3001) needs `user`: the created user's name (the event's resource name);
//! * User Access Management (3005) needs `privileges`, which no Immuta notification carries,
//!   so Immuta events are Detection Findings.
//!
//! Vendor facts with no OCSF attribute in both versions (the disposition of a Wallarm hit, the
//! HTTP method and path, Wallarm's own cloud, resource tags, the source id, warnings) go to
//! `unmapped`.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};

use super::Vendor;
use super::{Event, Severity, Status};

/// The OCSF schema version written in `metadata.version`: the two versions every object is
/// proven valid against (`fixtures/ocsf/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OcsfVersion {
    /// What Amazon Security Lake validates against.
    #[default]
    V1_1_0,
    /// The latest OCSF release.
    V1_8_0,
}

impl OcsfVersion {
    pub const NAMES: [&'static str; 2] = ["1.1.0", "1.8.0"];

    pub fn as_str(self) -> &'static str {
        match self {
            OcsfVersion::V1_1_0 => "1.1.0",
            OcsfVersion::V1_8_0 => "1.8.0",
        }
    }

    pub fn from_name(name: &str) -> Option<OcsfVersion> {
        match name {
            "1.1.0" => Some(OcsfVersion::V1_1_0),
            "1.8.0" => Some(OcsfVersion::V1_8_0),
            _ => None,
        }
    }
}

/// The OCSF classes siemgate emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcsfClass {
    VulnerabilityFinding,
    ComplianceFinding,
    DetectionFinding,
    AccountChange,
}

impl OcsfClass {
    pub fn uid(self) -> u32 {
        match self {
            OcsfClass::VulnerabilityFinding => 2002,
            OcsfClass::ComplianceFinding => 2003,
            OcsfClass::DetectionFinding => 2004,
            OcsfClass::AccountChange => 3001,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            OcsfClass::VulnerabilityFinding => "Vulnerability Finding",
            OcsfClass::ComplianceFinding => "Compliance Finding",
            OcsfClass::DetectionFinding => "Detection Finding",
            OcsfClass::AccountChange => "Account Change",
        }
    }

    /// The snake_case name (the schema file name and the HEC sourcetype suffix).
    pub fn snake_name(self) -> &'static str {
        match self {
            OcsfClass::VulnerabilityFinding => "vulnerability_finding",
            OcsfClass::ComplianceFinding => "compliance_finding",
            OcsfClass::DetectionFinding => "detection_finding",
            OcsfClass::AccountChange => "account_change",
        }
    }

    pub fn category_uid(self) -> u32 {
        self.uid() / 1000
    }

    pub fn category_name(self) -> &'static str {
        match self.category_uid() {
            2 => "Findings",
            _ => "Identity & Access Management",
        }
    }

    fn is_finding(self) -> bool {
        self.category_uid() == 2
    }

    /// The activity id this class takes from the event's, and its name.
    fn activity(self, event_activity: u32) -> (u32, &'static str) {
        if self.is_finding() {
            match event_activity {
                0 => (0, "Unknown"),
                1 => (1, "Create"),
                2 => (2, "Update"),
                3 => (3, "Close"),
                _ => (99, "Other"),
            }
        } else {
            // Account Change: siemgate only sees creations (Wallarm `create_user`).
            match event_activity {
                1 => (1, "Create"),
                _ => (0, "Unknown"),
            }
        }
    }
}

/// The OCSF `severity` label of a `severity_id`.
pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Unknown => "Unknown",
        Severity::Informational => "Informational",
        Severity::Low => "Low",
        Severity::Medium => "Medium",
        Severity::High => "High",
        Severity::Critical => "Critical",
    }
}

/// Finding `status_id` and `status`: an open alert nobody has worked yet is New; a dismissed
/// or snoozed one is Suppressed.
fn finding_status(s: Status) -> (u8, &'static str) {
    match s {
        Status::New | Status::Open => (1, "New"),
        Status::Dismissed | Status::Snoozed => (3, "Suppressed"),
        Status::Resolved => (4, "Resolved"),
    }
}

/// The company behind each vendor's product (`metadata.product.vendor_name`, required in
/// 1.1.0); `None` for generic sources, whose sender is named by the source id instead.
fn vendor_company(v: Vendor) -> Option<&'static str> {
    match v {
        Vendor::PrismaCloud => Some("Palo Alto Networks"),
        Vendor::Wallarm => Some("Wallarm"),
        Vendor::Coralogix => Some("Coralogix"),
        Vendor::Immuta => Some("Immuta"),
        Vendor::Generic => None,
    }
}

/// The CWE of a Wallarm vulnerability type, as Wallarm documents its vulnerability types;
/// `None` for a type without one CWE (then the event is a Detection Finding).
///
/// Source: Wallarm's "Attack and Vulnerability Types" page, `docs/latest/attacks-vulns-list.md`
/// in github.com/wallarm/product-documentation (published at
/// <https://docs.wallarm.com/attacks-vulns-list/>), which gives the CWE code(s) and the Wallarm
/// code of each type. Only types Wallarm reports as vulnerabilities are listed, each with the
/// one CWE the page gives it (for `infoleak` the primary one: the others are "see also");
/// `info` is the code older versions of the page give Information exposure. Types the page
/// gives several CWEs are left out rather than reduced to one of them: `rce` (CWE-78, CWE-94
/// "and others"), `ssti` (CWE-94, CWE-159), `vuln_component` (CWE-937, CWE-1035, CWE-1104)
/// and `weak_auth` (CWE-1270, CWE-1294).
pub fn wallarm_cwe(kind: &str) -> Option<&'static str> {
    const CWES: &[(&str, &str)] = &[
        ("sqli", "CWE-89"),
        ("nosqli", "CWE-943"),
        ("ldapi", "CWE-90"),
        ("ssrf", "CWE-918"),
        ("ptrav", "CWE-22"),
        ("xxe", "CWE-611"),
        ("xss", "CWE-79"),
        ("redir", "CWE-601"),
        ("crlf", "CWE-93"),
        ("idor", "CWE-639"),
        ("auth", "CWE-288"),
        ("csrf", "CWE-352"),
        ("infoleak", "CWE-200"),
        ("info", "CWE-200"),
    ];
    CWES.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(kind.trim()))
        .map(|&(_, c)| c)
}

/// OCSF strings are at most 65,535 characters (1.1.0 `string_t`); longer text is cut at a
/// character boundary (byte length bounds the character count, so short text costs nothing).
const MAX_CHARS: usize = 65_535;

fn capped(s: &str) -> &str {
    capped_to(s, MAX_CHARS)
}

fn capped_to(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    match s.char_indices().nth(max) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// A string field, capped to the OCSF length.
struct Text<'t>(&'t str);

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(capped(self.0))
    }
}

fn text<'t>(v: &'t Option<Cow<'_, str>>) -> Option<Text<'t>> {
    v.as_deref().map(Text)
}

/// A loosely typed vendor value: its text when it is a string, nothing otherwise.
#[derive(Default)]
struct Loose<'r>(Option<Cow<'r, str>>);

impl<'de: 'r, 'r> Deserialize<'de> for Loose<'r> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any<'r> {
            Str(#[serde(borrow)] Cow<'r, str>),
            Other(serde::de::IgnoredAny),
        }
        Ok(match Any::deserialize(d)? {
            Any::Str(s) => Loose(Some(s)),
            Any::Other(_) => Loose(None),
        })
    }
}

/// One entry of Prisma's `complianceMetadata`.
#[derive(Deserialize, Default)]
struct PrismaCompliance<'r> {
    #[serde(rename = "standardName", borrow, default)]
    standard: Loose<'r>,
    #[serde(rename = "requirementId", borrow, default)]
    requirement_id: Loose<'r>,
    #[serde(rename = "requirementName", borrow, default)]
    requirement_name: Loose<'r>,
    #[serde(rename = "sectionId", borrow, default)]
    section: Loose<'r>,
}

#[derive(Deserialize)]
struct PrismaRaw<'r> {
    #[serde(rename = "complianceMetadata", borrow, default)]
    compliance: Option<Vec<PrismaCompliance<'r>>>,
}

/// What Prisma's `complianceMetadata` says, for OCSF `compliance`.
struct Compliance<'r> {
    standards: Vec<Cow<'r, str>>,
    requirements: Vec<Cow<'r, str>>,
    control: Option<Cow<'r, str>>,
}

fn prisma_compliance(raw: &str) -> Option<Compliance<'_>> {
    let parsed: PrismaRaw<'_> = serde_json::from_str(raw).ok()?;
    let mut out = Compliance {
        standards: Vec::new(),
        requirements: Vec::new(),
        control: None,
    };
    for c in parsed.compliance.unwrap_or_default() {
        if let Some(s) = c.standard.0.filter(|s| !s.trim().is_empty()) {
            if !out.standards.contains(&s) {
                out.standards.push(s);
            }
        }
        if let Some(r) = c.requirement_name.0.or(c.requirement_id.0) {
            if !out.requirements.contains(&r) {
                out.requirements.push(r);
            }
        }
        if out.control.is_none() {
            out.control = c.section.0;
        }
    }
    (!out.standards.is_empty()).then_some(out)
}

#[derive(Deserialize, Default)]
struct WallarmVulnBody<'r> {
    #[serde(rename = "type", borrow, default)]
    kind: Loose<'r>,
}

#[derive(Deserialize, Default)]
struct WallarmDetails<'r> {
    #[serde(borrow, default)]
    vuln: Option<WallarmVulnBody<'r>>,
    #[serde(borrow, default)]
    security_issue: Option<WallarmVulnBody<'r>>,
}

#[derive(Deserialize)]
struct WallarmRaw<'r> {
    #[serde(rename = "type", borrow, default)]
    kind: Loose<'r>,
    #[serde(borrow, default)]
    details: Option<WallarmDetails<'r>>,
}

/// The CWE of a Wallarm vulnerability or security issue (flat `type`, or `details.vuln.type` /
/// `details.security_issue.type`).
fn wallarm_vuln_cwe(raw: &str) -> Option<&'static str> {
    let parsed: WallarmRaw<'_> = serde_json::from_str(raw).ok()?;
    let nested = parsed
        .details
        .and_then(|d| d.vuln.or(d.security_issue))
        .and_then(|v| v.kind.0);
    wallarm_cwe(&nested.or(parsed.kind.0)?)
}

/// The class-specific facts the encoder needed `raw` for.
enum Extra<'r> {
    None,
    Compliance(Compliance<'r>),
    Cwe(&'static str),
}

/// One event as one OCSF class object; serializing it writes the object.
pub struct OcsfEvent<'e, 'a> {
    event: &'e Event<'a>,
    version: OcsfVersion,
    class: OcsfClass,
    extra: Extra<'e>,
    /// Leaves out `raw_data` and the descriptions (for a size-limited syslog message).
    lean: bool,
}

impl<'e, 'a> OcsfEvent<'e, 'a> {
    /// Picks the class (see the module doc) and reads what it needs from `raw`.
    pub fn new(event: &'e Event<'a>, version: OcsfVersion) -> OcsfEvent<'e, 'a> {
        let mut extra = Extra::None;
        let class = match event.ocsf.class_uid {
            2003 => match prisma_compliance(event.raw.get()) {
                Some(c) => {
                    extra = Extra::Compliance(c);
                    OcsfClass::ComplianceFinding
                }
                None => OcsfClass::DetectionFinding,
            },
            2002 if event.vendor == Vendor::Wallarm => match wallarm_vuln_cwe(event.raw.get()) {
                Some(c) => {
                    extra = Extra::Cwe(c);
                    OcsfClass::VulnerabilityFinding
                }
                None => OcsfClass::DetectionFinding,
            },
            3001 if event.resource.name.is_some() => OcsfClass::AccountChange,
            _ => OcsfClass::DetectionFinding,
        };
        OcsfEvent {
            event,
            version,
            class,
            extra,
            lean: false,
        }
    }

    /// The same object without `raw_data` and descriptions, for a size limit.
    pub fn lean(mut self) -> Self {
        self.lean = true;
        self
    }

    pub fn class(&self) -> OcsfClass {
        self.class
    }

    /// Whether `cloud` is written (and the `cloud` profile listed): the vendor named the
    /// resource's cloud provider.
    fn has_cloud(&self) -> bool {
        self.event.resource.cloud.is_some()
    }
}

impl Serialize for OcsfEvent<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.event;
        let class = self.class;
        let (activity_id, activity_name) = class.activity(e.ocsf.activity_id);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("class_uid", &class.uid())?;
        m.serialize_entry("class_name", class.name())?;
        m.serialize_entry("category_uid", &class.category_uid())?;
        m.serialize_entry("category_name", class.category_name())?;
        m.serialize_entry("activity_id", &activity_id)?;
        m.serialize_entry("activity_name", activity_name)?;
        m.serialize_entry("type_uid", &(class.uid() * 100 + activity_id))?;
        m.serialize_entry(
            "type_name",
            &format_args!("{}: {}", class.name(), activity_name),
        )?;
        m.serialize_entry("severity_id", &e.severity.ocsf_id())?;
        m.serialize_entry("severity", severity_name(e.severity))?;
        m.serialize_entry("time", &e.time.millis())?;
        m.serialize_entry("metadata", &Metadata(self))?;
        if let Some(t) = text(&e.title) {
            m.serialize_entry("message", &t)?;
        }
        if let Some(v) = text(&e.status_detail) {
            m.serialize_entry("status_detail", &v)?;
        }
        if self.has_cloud() {
            m.serialize_entry("cloud", &Cloud(e))?;
        }
        match class {
            OcsfClass::AccountChange => {
                m.serialize_entry("user", &User(e))?;
            }
            _ => {
                let (status_id, status) = finding_status(e.status);
                m.serialize_entry("status_id", &status_id)?;
                m.serialize_entry("status", status)?;
                m.serialize_entry("finding_info", &FindingInfo(e, self.lean))?;
                let has_resource = e.resource.id.is_some() || e.resource.name.is_some();
                match class {
                    OcsfClass::DetectionFinding => {
                        if has_resource {
                            m.serialize_entry("resources", &[ResourceDetails(e)])?;
                        }
                        if let Some(r) = text(&e.remediation) {
                            m.serialize_entry("remediation", &Remediation(r))?;
                        }
                        if has_evidence(e) {
                            m.serialize_entry("evidences", &[Evidence(e)])?;
                        }
                    }
                    OcsfClass::ComplianceFinding => {
                        if has_resource {
                            m.serialize_entry("resource", &ResourceDetails(e))?;
                        }
                        if let Some(r) = text(&e.remediation) {
                            m.serialize_entry("remediation", &Remediation(r))?;
                        }
                        if let Extra::Compliance(c) = &self.extra {
                            m.serialize_entry("compliance", &ComplianceOut(c))?;
                        }
                    }
                    OcsfClass::VulnerabilityFinding => {
                        if has_resource {
                            m.serialize_entry("resource", &ResourceDetails(e))?;
                        }
                        if let Extra::Cwe(cwe) = self.extra {
                            m.serialize_entry(
                                "vulnerabilities",
                                &[Vulnerability(e, cwe, self.lean)],
                            )?;
                        }
                    }
                    OcsfClass::AccountChange => {}
                }
            }
        }
        // 1.1.0 caps `raw_data` at 65,535 characters; a cut raw object would not be the
        // original, so a longer one is left out (the siemgate encoding still carries it).
        let raw = e.raw.get();
        if !self.lean && (raw.len() <= MAX_CHARS || raw.chars().count() <= MAX_CHARS) {
            m.serialize_entry("raw_data", raw)?;
        }
        m.serialize_entry("unmapped", &Unmapped(self))?;
        m.end()
    }
}

struct Metadata<'o, 'e, 'a>(&'o OcsfEvent<'e, 'a>);

impl Serialize for Metadata<'_, '_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let o = self.0;
        let e = o.event;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("version", o.version.as_str())?;
        m.serialize_entry("product", &Product(e))?;
        m.serialize_entry("uid", &e.id)?;
        let profiles: &[&str] = if o.has_cloud() { &["cloud"] } else { &[] };
        m.serialize_entry("profiles", profiles)?;
        if let Some(t) = &e.unparsed_time {
            m.serialize_entry("original_time", &Text(t))?;
        } else if !time_missing(e) {
            m.serialize_entry("original_time", &e.time)?;
        }
        m.serialize_entry("logged_time", &e.received_at.millis())?;
        m.end()
    }
}

/// Whether the vendor gave no time (the event's `time` is then when siemgate received it).
fn time_missing(e: &Event<'_>) -> bool {
    e.normalization_warnings
        .iter()
        .any(|w| w.starts_with("time: missing"))
}

struct Product<'e, 'a>(&'e Event<'a>);

impl Serialize for Product<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("name", e.product)?;
        match vendor_company(e.vendor) {
            Some(v) => m.serialize_entry("vendor_name", v)?,
            None => m.serialize_entry("vendor_name", &Text(e.source))?,
        }
        m.end()
    }
}

struct Cloud<'e, 'a>(&'e Event<'a>);

impl Serialize for Cloud<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = &self.0.resource;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("provider", &text(&r.cloud))?;
        if let Some(v) = text(&r.region) {
            m.serialize_entry("region", &v)?;
        }
        if r.account_id.is_some() || r.account_name.is_some() {
            m.serialize_entry("account", &Account(self.0))?;
        }
        m.end()
    }
}

struct Account<'e, 'a>(&'e Event<'a>);

impl Serialize for Account<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = &self.0.resource;
        let mut m = s.serialize_map(None)?;
        if let Some(v) = text(&r.account_id) {
            m.serialize_entry("uid", &v)?;
        }
        if let Some(v) = text(&r.account_name) {
            m.serialize_entry("name", &v)?;
        }
        m.end()
    }
}

struct User<'e, 'a>(&'e Event<'a>);

impl Serialize for User<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("name", &text(&self.0.resource.name))?;
        m.end()
    }
}

struct FindingInfo<'e, 'a>(&'e Event<'a>, bool);

impl Serialize for FindingInfo<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let f = &e.finding;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("uid", &e.id)?;
        // `title` is required in 1.1.0: the vendor's, else what kind of event this is.
        match text(&e.title) {
            Some(t) => m.serialize_entry("title", &t)?,
            None => {
                m.serialize_entry("title", &format_args!("{} {}", e.product, e.kind.as_str()))?
            }
        }
        if let Some(v) = text(&e.description).filter(|_| !self.1) {
            m.serialize_entry("desc", &v)?;
        }
        match text(&f.type_code) {
            Some(t) => m.serialize_entry("types", &[t])?,
            None => m.serialize_entry("types", &[e.kind.as_str()])?,
        }
        if let Some(t) = f.first_seen {
            m.serialize_entry("created_time", &t.millis())?;
            m.serialize_entry("first_seen_time", &t.millis())?;
        }
        if let Some(t) = f.last_seen {
            m.serialize_entry("last_seen_time", &t.millis())?;
        }
        if let Some(v) = text(&e.url) {
            m.serialize_entry("src_url", &v)?;
        }
        if f.policy_id.is_some() || f.policy_name.is_some() {
            m.serialize_entry("analytic", &Analytic(e))?;
        }
        m.end()
    }
}

/// The vendor policy that fired, as an OCSF analytic of type Rule.
struct Analytic<'e, 'a>(&'e Event<'a>);

impl Serialize for Analytic<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let f = &self.0.finding;
        let mut m = s.serialize_map(None)?;
        if let Some(v) = text(&f.policy_id) {
            m.serialize_entry("uid", &v)?;
        }
        if let Some(v) = text(&f.policy_name) {
            m.serialize_entry("name", &v)?;
        }
        if let Some(v) = text(&f.policy_type) {
            m.serialize_entry("category", &v)?;
        }
        m.serialize_entry("type_id", &1)?;
        m.serialize_entry("type", "Rule")?;
        m.end()
    }
}

struct ResourceDetails<'e, 'a>(&'e Event<'a>);

impl Serialize for ResourceDetails<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = &self.0.resource;
        let mut m = s.serialize_map(None)?;
        if let Some(v) = text(&r.id) {
            m.serialize_entry("uid", &v)?;
        }
        if let Some(v) = text(&r.name) {
            m.serialize_entry("name", &v)?;
        }
        if let Some(v) = text(&r.kind) {
            m.serialize_entry("type", &v)?;
        }
        // `region` of a resource comes with the cloud profile.
        if r.cloud.is_some() {
            if let Some(v) = text(&r.region) {
                m.serialize_entry("region", &v)?;
            }
        }
        m.end()
    }
}

struct Remediation<'t>(Text<'t>);

impl Serialize for Remediation<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("desc", &self.0)?;
        m.end()
    }
}

struct ComplianceOut<'c, 'r>(&'c Compliance<'r>);

impl Serialize for ComplianceOut<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("standards", &TextList(&c.standards))?;
        if !c.requirements.is_empty() {
            m.serialize_entry("requirements", &TextList(&c.requirements))?;
        }
        if let Some(v) = text(&c.control) {
            m.serialize_entry("control", &v)?;
        }
        m.end()
    }
}

struct TextList<'l, 'r>(&'l [Cow<'r, str>]);

impl Serialize for TextList<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for t in self.0 {
            seq.serialize_element(&Text(t))?;
        }
        seq.end()
    }
}

struct Vulnerability<'e, 'a>(&'e Event<'a>, &'static str, bool);

impl Serialize for Vulnerability<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Cwe {
            uid: &'static str,
        }
        let e = self.0;
        let mut m = s.serialize_map(None)?;
        // 1.8.0 wants exactly one of advisory, cve, cwe.
        m.serialize_entry("cwe", &Cwe { uid: self.1 })?;
        if let Some(v) = text(&e.title) {
            m.serialize_entry("title", &v)?;
        }
        if let Some(v) = text(&e.description).filter(|_| !self.2) {
            m.serialize_entry("desc", &v)?;
        }
        if let Some(v) = text(&e.vendor_severity) {
            m.serialize_entry("severity", &v)?;
        }
        m.serialize_entry("vendor_name", e.product)?;
        if let Some(r) = text(&e.remediation) {
            m.serialize_entry("remediation", &Remediation(r))?;
        }
        m.end()
    }
}

/// The attack source address (when it is an IP address) and the target host.
fn valid_ip<'e>(e: &'e Event<'_>) -> Option<Text<'e>> {
    e.network
        .src_ip
        .as_deref()
        // OCSF `ip_t` is at most 40 characters (an IPv4-mapped IPv6 address written in full
        // parses but is longer).
        .filter(|ip| ip.len() <= 40 && ip.parse::<IpAddr>().is_ok())
        .map(Text)
}

fn has_evidence(e: &Event<'_>) -> bool {
    valid_ip(e).is_some() || e.network.domain.is_some()
}

struct Evidence<'e, 'a>(&'e Event<'a>);

impl Serialize for Evidence<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Endpoint<'t> {
            ip: Option<Text<'t>>,
            port: Option<u16>,
            hostname: Option<Text<'t>>,
        }
        impl Serialize for Endpoint<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(None)?;
                if let Some(v) = &self.ip {
                    m.serialize_entry("ip", v)?;
                }
                if let Some(v) = self.port {
                    m.serialize_entry("port", &v)?;
                }
                if let Some(v) = &self.hostname {
                    m.serialize_entry("hostname", v)?;
                }
                m.end()
            }
        }
        let e = self.0;
        let mut m = s.serialize_map(None)?;
        if let Some(ip) = valid_ip(e) {
            let port = e.network.src_port;
            m.serialize_entry(
                "src_endpoint",
                &Endpoint {
                    ip: Some(ip),
                    port,
                    hostname: None,
                },
            )?;
        }
        if let Some(host) = text(&e.network.domain) {
            m.serialize_entry(
                "dst_endpoint",
                &Endpoint {
                    ip: None,
                    port: None,
                    hostname: Some(host),
                },
            )?;
        }
        m.end()
    }
}

/// Vendor facts with no attribute in both OCSF 1.1.0 and 1.8.0.
struct Unmapped<'o, 'e, 'a>(&'o OcsfEvent<'e, 'a>);

impl Serialize for Unmapped<'_, '_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let o = self.0;
        let e = o.event;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("source", &Text(e.source))?;
        m.serialize_entry("kind", e.kind.as_str())?;
        m.serialize_entry("status", e.status.as_str())?;
        if let Some(v) = text(&e.vendor_severity) {
            m.serialize_entry("vendor_severity", &v)?;
        }
        if let Some(d) = e.disposition {
            m.serialize_entry("disposition", d.as_str())?;
            m.serialize_entry("disposition_id", &d.ocsf_id())?;
        }
        if let Some(v) = text(&e.vendor_cloud) {
            m.serialize_entry("vendor_cloud", &v)?;
        }
        if let Some(v) = text(&e.finding.rule) {
            m.serialize_entry("rule", &v)?;
        }
        if let Some(v) = text(&e.network.method) {
            m.serialize_entry("http_method", &v)?;
        }
        if let Some(v) = text(&e.network.path) {
            m.serialize_entry("http_path", &v)?;
        }
        // The source address is mapped only on a Detection Finding, and only when it is one.
        if let Some(ip) = text(&e.network.src_ip) {
            if o.class != OcsfClass::DetectionFinding || valid_ip(e).is_none() {
                m.serialize_entry("src_ip", &ip)?;
            }
        }
        if o.class != OcsfClass::DetectionFinding {
            if let Some(v) = text(&e.network.domain) {
                m.serialize_entry("domain", &v)?;
            }
        }
        if !o.has_cloud() {
            if let Some(v) = text(&e.resource.account_id) {
                m.serialize_entry("account_uid", &v)?;
            }
            if let Some(v) = text(&e.resource.account_name) {
                m.serialize_entry("account_name", &v)?;
            }
            if let Some(v) = text(&e.resource.region) {
                m.serialize_entry("region", &v)?;
            }
        }
        if let Some(tags) = e.resource.tags {
            m.serialize_entry("resource_tags", tags)?;
        }
        if o.class == OcsfClass::AccountChange {
            if let Some(v) = text(&e.url) {
                m.serialize_entry("url", &v)?;
            }
            if let Some(v) = text(&e.description).filter(|_| !o.lean) {
                m.serialize_entry("description", &v)?;
            }
        }
        if !e.normalization_warnings.is_empty() || e.unparsed_time.is_some() {
            m.serialize_entry(
                "normalization_warnings",
                &crate::normalize::event::Warnings(e, 4096),
            )?;
        }
        m.end()
    }
}

impl fmt::Debug for OcsfEvent<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OcsfEvent")
            .field("class", &self.class)
            .field("version", &self.version)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn caps_text_at_a_character_boundary() {
        assert_eq!(capped("short"), "short");
        let long = "ж".repeat(MAX_CHARS + 5);
        assert_eq!(capped(&long).chars().count(), MAX_CHARS);
        assert_eq!(capped_to("abcdef", 3), "abc");
    }

    #[test]
    fn reads_wallarm_vulnerability_types_from_raw() {
        assert_eq!(wallarm_vuln_cwe(r#"{"type":"Info"}"#), Some("CWE-200"));
        assert_eq!(
            wallarm_vuln_cwe(r#"{"details":{"vuln":{"type":"sqli"}}}"#),
            Some("CWE-89")
        );
        assert_eq!(
            wallarm_vuln_cwe(r#"{"details":{"security_issue":{"type":"xss"}}}"#),
            Some("CWE-79")
        );
        assert_eq!(wallarm_vuln_cwe(r#"{"type":"something new"}"#), None);
        // As Wallarm's attacks-vulns-list documents them.
        for (kind, cwe) in [
            ("infoleak", Some("CWE-200")),
            ("idor", Some("CWE-639")),
            ("auth", Some("CWE-288")),
            ("csrf", Some("CWE-352")),
            ("nosqli", Some("CWE-943")),
            // Several CWEs documented: none picked.
            ("ssti", None),
            ("rce", None),
            ("vuln_component", None),
            ("weak_auth", None),
        ] {
            assert_eq!(wallarm_cwe(kind), cwe, "{kind}");
        }
        assert_eq!(wallarm_vuln_cwe(r#"{"type":7}"#), None);
    }

    #[test]
    fn reads_prisma_compliance_standards_and_skips_wrong_types() {
        let c = prisma_compliance(
            r#"{"complianceMetadata":[{"standardName":"CIS","requirementId":"1","sectionId":"1.2"},
                {"standardName":"CIS","requirementName":7},{"standardName":"PCI \u0044SS"}]}"#,
        )
        .unwrap();
        assert_eq!(c.standards, vec!["CIS", "PCI DSS"]);
        assert_eq!(c.requirements, vec!["1"]);
        assert_eq!(c.control.as_deref(), Some("1.2"));
        assert!(prisma_compliance(r#"{"complianceMetadata":[{"standardName":""}]}"#).is_none());
        assert!(prisma_compliance(r#"{"complianceMetadata":"x"}"#).is_none());
    }
}
