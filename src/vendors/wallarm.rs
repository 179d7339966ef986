//! Wallarm webhook notifications, in every format Wallarm has sent:
//!
//! * the current envelope, one per notification: `{"summary", "description", "details":
//!   {"client_name", "cloud", "notification_type", ...}}`, where `details` carries a `hit`
//!   (`new_hits`), a `vuln` or `security_issue` object, or a trigger's or system event's fields
//!   (`ip_blocked`: `ip`, `application`, ...);
//! * the flat format used before June 2021: the hit object itself (`object_type: "hit"`), a
//!   vulnerability `{title, source, type, domain, threat, link, summary}`, or a created user
//!   `{summary, email, role, created_by}`.
//!
//! A body is a JSON array (the default) or NDJSON (one object per line, chosen per integration);
//! the test button always sends an array. Test messages (`[Test message]` prefixed to the
//! summary or title, in any case) become `kind = test`. Unknown notification types decode as
//! system events with their summary and description, never as an error, and a field of the
//! wrong type only adds a warning.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::fields::{epoch_seconds, integer, text, text_or_number, Warnings};
use super::json::{first_byte, for_each_object, malformed, offset_in, parse_object, string};
use super::{Context, DecodeError, Vendor};
use std::borrow::Cow;

use crate::normalize::{Disposition, Event, EventId, Kind, Ocsf, Severity, Timestamp};

/// Every field siemgate reads at any level: the envelope, `details`, a hit, a vulnerability or
/// security issue, and the flat legacy objects. Wallarm reuses the same names at every level
/// (`type`, `domain`, `title`, `id`, ...), so one borrowed struct reads each object in one pass;
/// fields a level does not have simply stay `None`. `D` says how the nested levels are read
/// (see [`Nested`]).
#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "D: Depth"))]
struct Fields<'a, D> {
    // Envelope.
    #[serde(borrow)]
    summary: Option<&'a RawValue>,
    #[serde(borrow)]
    description: Option<&'a RawValue>,
    #[serde(borrow)]
    details: Option<Nested<'a, D>>,
    // `details`.
    #[serde(borrow)]
    client_name: Option<&'a RawValue>,
    #[serde(borrow)]
    cloud: Option<&'a RawValue>,
    #[serde(borrow)]
    notification_type: Option<&'a RawValue>,
    #[serde(borrow)]
    hit: Option<Nested<'a, D>>,
    #[serde(borrow)]
    vuln: Option<Nested<'a, D>>,
    #[serde(borrow)]
    security_issue: Option<Nested<'a, D>>,
    #[serde(borrow)]
    vuln_link: Option<&'a RawValue>,
    #[serde(borrow)]
    security_issue_link: Option<&'a RawValue>,
    #[serde(borrow)]
    link: Option<&'a RawValue>,
    #[serde(borrow)]
    ip: Option<&'a RawValue>,
    #[serde(borrow)]
    application: Option<&'a RawValue>,
    #[serde(borrow)]
    email: Option<&'a RawValue>,
    // Hit (in `details.hit`, or the flat element itself).
    #[serde(borrow)]
    object_type: Option<&'a RawValue>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(borrow)]
    host: Option<&'a RawValue>,
    #[serde(borrow)]
    domain: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<&'a RawValue>,
    #[serde(borrow)]
    path: Option<&'a RawValue>,
    #[serde(borrow)]
    remote_addr4: Option<&'a RawValue>,
    #[serde(borrow)]
    remote_addr6: Option<&'a RawValue>,
    #[serde(borrow)]
    remote_port: Option<&'a RawValue>,
    #[serde(borrow)]
    request_time: Option<&'a RawValue>,
    #[serde(borrow)]
    block_status: Option<&'a RawValue>,
    // Vulnerability / security issue (nested or flat).
    #[serde(borrow)]
    title: Option<&'a RawValue>,
    #[serde(borrow)]
    threat: Option<&'a RawValue>,
    #[serde(borrow)]
    risk: Option<&'a RawValue>,
    #[serde(skip)]
    depth: std::marker::PhantomData<D>,
}

/// A nested level (`details`, `hit`, `vuln`, `security_issue`) of a [`Fields`].
///
/// A notification is first read in one pass ([`OnePass`]): each nested object is read into its
/// own `Fields` as the parser meets it, so the bytes of a hit are scanned once rather than once
/// per level above it (that re-reading was most of a Wallarm event's cost). Anything unusual
/// at any level — a nested value that is not an object, a key given twice — fails that pass,
/// and the notification is read again level by level ([`Rescan`]): nested values kept raw and
/// read when used, where each such problem is a warning on the event rather than an error.
/// Both readings give the same event for every notification the first one takes.
enum Nested<'a, D> {
    Raw(&'a RawValue),
    Parsed(Box<Fields<'a, D>>),
}

/// How [`Nested`] levels are read: [`OnePass`] or [`Rescan`].
trait Depth: Default {
    const ONE_PASS: bool;
}

/// Nested objects are read in the same pass as their parent.
#[derive(Default)]
struct OnePass;

/// Nested values are kept raw and read when used.
#[derive(Default)]
struct Rescan;

impl Depth for OnePass {
    const ONE_PASS: bool = true;
}

impl Depth for Rescan {
    const ONE_PASS: bool = false;
}

impl<'de: 'a, 'a, D: Depth> Deserialize<'de> for Nested<'a, D> {
    fn deserialize<De: serde::Deserializer<'de>>(de: De) -> Result<Self, De::Error> {
        struct Object<'a, D>(std::marker::PhantomData<Nested<'a, D>>);

        impl<'de: 'a, 'a, D: Depth> serde::de::Visitor<'de> for Object<'a, D> {
            type Value = Nested<'a, D>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                let fields =
                    Fields::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(Nested::Parsed(Box::new(fields)))
            }
        }

        if D::ONE_PASS {
            de.deserialize_map(Object(std::marker::PhantomData))
        } else {
            <&'a RawValue>::deserialize(de).map(Nested::Raw)
        }
    }
}

/// The shape named in `Shape` errors for a body that is neither an array nor objects.
const WHAT: &str = "a JSON array of Wallarm notifications, or NDJSON objects";

pub fn decode<'a, F>(body: &'a str, ctx: &Context<'a>, emit: F) -> Result<usize, DecodeError>
where
    F: FnMut(Event<'a>) -> std::ops::ControlFlow<()>,
{
    // Each notification of an array or an NDJSON body is read in the same pass that splits
    // the body, where nothing in it is unusual (see `super::read_then_walk`).
    super::read_then_walk(
        body,
        true,
        |body, each: &mut dyn FnMut(_, _) -> _| for_each_notification(body, each),
        |top: Fields<'a, OnePass>, raw| fill(raw, top, ctx),
        |raw, offset| normalize(raw, offset, ctx),
        emit,
    )
}

/// Calls `each` with every object of a JSON array, or of a body of one or more objects
/// separated by whitespace (NDJSON; a single object is the one-line case), as
/// `(raw object, its byte offset)`.
fn for_each_notification<'a, F>(body: &'a str, mut each: F) -> Result<(), DecodeError>
where
    F: FnMut(&'a RawValue, usize) -> Result<(), DecodeError>,
{
    match first_byte(body) {
        Some((_, b'[')) => for_each_object(body, WHAT, each),
        Some((_, b'{')) => {
            // A stream parser rather than a split on '\n': it borrows each object from the
            // body, and it also takes a single pretty-printed object.
            let mut stream = serde_json::Deserializer::from_str(body).into_iter::<&'a RawValue>();
            loop {
                let after = stream.byte_offset();
                match stream.next() {
                    None => return Ok(()),
                    Some(Ok(raw)) => {
                        let offset = offset_in(body, raw.get());
                        if !raw.get().starts_with('{') {
                            return Err(DecodeError::Shape {
                                offset,
                                expected: "a JSON object",
                            });
                        }
                        each(raw, offset)?;
                    }
                    Some(Err(e)) => return Err(stream_error(body, after, &e)),
                }
            }
        }
        Some((offset, _)) => Err(DecodeError::Shape {
            offset,
            expected: WHAT,
        }),
        None => Err(DecodeError::Shape {
            offset: 0,
            expected: WHAT,
        }),
    }
}

/// Turns an NDJSON stream error into a byte offset. An object cut short at the end of its line
/// (as in Wallarm's own NDJSON example, each line one `}` short) is only noticed at the `{`
/// that opens the next line, and that byte would be blamed; when the error sits exactly there,
/// the failing object's line is re-read alone so the error points at the end of the broken line
/// ("EOF while parsing an object"). Any other error keeps the stream's own position.
fn stream_error(body: &str, after: usize, e: &serde_json::Error) -> DecodeError {
    let err = malformed(body, 0, e);
    let DecodeError::Malformed { offset, .. } = &err else {
        return err;
    };
    let rest = body.get(after..).unwrap_or_default();
    let start = after + first_byte(rest).map_or(0, |(i, _)| i);
    let line = body
        .get(start..)
        .and_then(|r| r.split('\n').next())
        .unwrap_or_default();
    let eol = start + line.len();
    let next = body
        .get(eol..)
        .and_then(first_byte)
        .map(|(i, b)| (eol + i, b));
    if next == Some((*offset, b'{')) {
        if let Err(e) = serde_json::from_str::<&RawValue>(line) {
            return malformed(line, start, &e);
        }
    }
    err
}

fn normalize<'a>(
    raw: &'a RawValue,
    offset: usize,
    ctx: &Context<'a>,
) -> Result<Event<'a>, DecodeError> {
    // One pass over the notification when nothing in it is unusual, else level by level (see
    // `Nested`); an error is the level-by-level reading's.
    Ok(match parse_object::<Fields<'a, OnePass>>(raw, offset) {
        Ok(top) => fill(raw, top, ctx),
        Err(_) => fill(raw, parse_object::<Fields<'a, Rescan>>(raw, offset)?, ctx),
    })
}

/// The event of one notification, read into `top`.
fn fill<'a, D: Depth>(raw: &'a RawValue, mut top: Fields<'a, D>, ctx: &Context<'a>) -> Event<'a> {
    let mut e = Event::new(Vendor::Wallarm, ctx.source, raw, ctx.received_at);
    // Triggers and system events, and whatever Wallarm adds next: Detection Findings of kind
    // system and unknown severity (the `Event::new` defaults: Wallarm sends none for them).
    // The shapes below override this.
    e.kind = Kind::System;
    e.title = text(
        top.summary,
        "summary: not a string",
        &mut e.normalization_warnings,
    );
    let test_summary = e.title.as_deref().is_some_and(is_test_message);
    e.description = text(
        top.description,
        "description: not a string",
        &mut e.normalization_warnings,
    );

    // Telling the formats apart (vendors.md §2.3): `details` means the envelope; a top-level
    // `object_type: "hit"` a flat hit; `title` + `threat` a flat vulnerability; `email` the
    // flat user-created event; anything else is generic.
    let object_type = text(
        top.object_type,
        "object_type: not a string",
        &mut e.normalization_warnings,
    );
    let time = if top.details.is_some() {
        envelope(&mut e, top.details.take())
    } else if object_type.as_deref() == Some("hit") {
        hit(&mut e, &top)
    } else if top.title.is_some() && top.threat.is_some() {
        issue(&mut e, &top);
        e.url = text(
            top.link,
            "link: not a string",
            &mut e.normalization_warnings,
        );
        None
    } else if top.email.is_some() {
        user(&mut e, &top);
        None
    } else {
        if e.title.is_none() {
            e.title = text(
                top.title,
                "title: not a string",
                &mut e.normalization_warnings,
            );
        }
        e.url = text(
            top.link,
            "link: not a string",
            &mut e.normalization_warnings,
        );
        if [
            top.summary,
            top.description,
            top.title,
            top.link,
            top.object_type,
        ]
        .iter()
        .all(Option::is_none)
        {
            e.mark_unrecognized();
        }
        None
    };
    match time {
        Some(t) => e.time = t,
        None => e
            .normalization_warnings
            .push("time: missing, received_at used"),
    }
    if test_summary || e.title.as_deref().is_some_and(is_test_message) {
        e.kind = Kind::Test;
    }
    e
}

/// The current format: account and region from `details`, then the type-specific part.
/// Returns the event time when the notification has one (hits only).
fn envelope<'a, D: Depth>(e: &mut Event<'a>, details: Option<Nested<'a, D>>) -> Option<Timestamp> {
    enum Shape {
        Hit,
        Issue,
        User,
        Other,
    }
    let w = &mut e.normalization_warnings;
    let mut d = object(details, "details: not an object", w)?;
    // `client_name` is the Wallarm tenant; `cloud` (EU/US) is the Wallarm cloud that holds the
    // account, not the region of the attacked resource.
    e.resource.account_name = text(d.client_name, "client_name: not a string", w);
    e.vendor_cloud = text(d.cloud, "cloud: not a string", w);
    e.url = text(
        d.security_issue_link.or(d.vuln_link).or(d.link),
        "link: not a string",
        w,
    );
    let issue_raw = d.security_issue.take().or(d.vuln.take());
    let shape = match text(d.notification_type, "notification_type: not a string", w).as_deref() {
        Some("new_hits") => Shape::Hit,
        // `vuln` was renamed `security_issue`; the objects differ only in host/domain and
        // risk/threat, which `issue` reads both ways.
        Some("vuln" | "security_issue") => Shape::Issue,
        Some("create_user") => Shape::User,
        // A type renamed again but still carrying a known object decodes as that object.
        _ if d.hit.is_some() => Shape::Hit,
        _ if issue_raw.is_some() => Shape::Issue,
        _ => Shape::Other,
    };
    match shape {
        Shape::Hit => {
            if d.hit.is_none() {
                w.push("hit: missing");
            }
            let h = object(d.hit.take(), "hit: not an object", w).unwrap_or_default();
            hit(e, &h)
        }
        Shape::Issue => {
            if issue_raw.is_none() {
                w.push("security_issue: missing");
            }
            let v = object(issue_raw, "security_issue: not an object", w).unwrap_or_default();
            issue(e, &v);
            None
        }
        Shape::User => {
            user(e, &d);
            None
        }
        Shape::Other => {
            // `ip_blocked` names the denylisted address and the application it applies to;
            // `expire_at` is when the block ends, not when the event happened.
            e.network.src_ip = text(d.ip, "ip: not a string", w);
            e.resource.name = text(d.application, "application: not a string", w);
            None
        }
    }
}

/// A hit: an attack request. Returns `request_time`.
fn hit<'a, D>(e: &mut Event<'a>, h: &Fields<'a, D>) -> Option<Timestamp> {
    let w = &mut e.normalization_warnings;
    e.kind = Kind::Attack;
    e.ocsf = Ocsf::DETECTION_FINDING;
    let attack = text(h.kind, "type: not a string", w);
    let known = attack.as_deref().and_then(attack_type);
    // Hits carry no severity and siemgate invents none: `unknown` (OCSF 0), with the attack
    // type in `finding.type` for rules that rank by it.
    // The title is the attack's readable name ("SQL injection"), the code (`sqli`) is
    // `finding.type`. The summary is the same boilerplate for every hit ("[Wallarm] New hit
    // detected"), which `kind` and `product` already say, and the flat format has no summary at
    // all; it stays the title only when the hit names no type.
    match (known, &attack) {
        (Some(&(_, name)), _) => e.title = Some(Cow::Borrowed(name)),
        (None, Some(code)) => e.title = Some(code.clone()),
        (None, None) => {}
    }
    e.finding.type_code = attack;
    if let Some(word) = text(h.block_status, "block_status: not a string", w) {
        e.disposition = disposition(&word);
        if e.disposition.is_none() {
            w.push("block_status: unknown word");
        }
    }
    // An address or a port of 0, or empty, is no address (Wallarm writes 0 where it has none).
    e.network.src_ip = text(h.remote_addr4, "remote_addr4: not a string", w)
        .filter(|a| is_address(a))
        .or_else(|| {
            text(h.remote_addr6, "remote_addr6: not a string", w).filter(|a| is_address(a))
        });
    e.network.src_port = integer(h.remote_port, "remote_port: not a number", w)
        .filter(|&p| p != 0)
        .and_then(|p| {
            let port = u16::try_from(p).ok();
            if port.is_none() {
                w.push("remote_port: out of range");
            }
            port
        });
    // `host` since 2023, `domain` before.
    e.network.domain =
        text(h.host, "host: not a string", w).or_else(|| text(h.domain, "domain: not a string", w));
    e.network.path = text(h.path, "path: not a string", w);
    e.network.method = text(h.method, "method: not a string", w);
    if let Some(id) = hit_id(h.id, w) {
        e.id = id;
    }
    epoch_seconds(h.request_time, "request_time: not epoch seconds", w)
}

/// A hit's `id` is `[index, doc_id]` (the storage index and the document in it); the Event id is
/// `index:doc_id`, both parts borrowed from the body. A plain string or number id is borrowed
/// as it is.
fn hit_id<'a>(raw: Option<&'a RawValue>, w: &mut Warnings) -> Option<EventId<'a>> {
    const WARN: &str = "id: not an [index, doc_id] pair";
    let raw = raw.filter(|r| r.get() != "null")?;
    if !raw.get().starts_with('[') {
        return text_or_number(Some(raw), WARN, w).map(EventId::Vendor);
    }
    let pair = serde_json::from_str::<(&RawValue, &RawValue)>(raw.get()).ok();
    match pair.and_then(|(index, doc)| Some((string(index)?, string(doc)?))) {
        Some((index, doc)) if !index.is_empty() && !doc.is_empty() => {
            Some(EventId::Pair(index, doc))
        }
        _ => {
            w.push(WARN);
            None
        }
    }
}

/// Every attack type code of Wallarm's attack list (`attacks-vulns-list.md`, "Wallarm code",
/// titled as the list heads them; a few codes of newer or older lists are kept too):
/// the code and its readable name. Hits carry no severity, so their events say `unknown`.
const ATTACKS: &[(&str, &str)] = &[
    ("sqli", "SQL injection"),
    ("nosqli", "NoSQL injection"),
    ("rce", "Remote code execution"),
    ("ssi", "SSI injection"),
    ("ssti", "Server-side template injection"),
    ("ldapi", "LDAP injection"),
    ("mail_injection", "Email injection"),
    ("ssrf", "Server-side request forgery"),
    ("ptrav", "Path traversal"),
    ("xxe", "XML external entity"),
    ("file_read", "File read"),
    ("file_delete", "File delete"),
    ("request_smuggling", "HTTP request smuggling"),
    ("buffer_overflow", "Buffer overflow"),
    ("xss", "Cross-site scripting"),
    ("redir", "Open redirect"),
    ("crlf", "CRLF injection"),
    ("csrf", "Cross-site request forgery"),
    ("brute", "Brute-force attack"),
    ("idor", "Insecure direct object reference"),
    ("bola", "Broken object level authorization"),
    ("bfla", "Broken function level authorization"),
    ("broken_access", "Broken access control"),
    ("mass_assignment", "Mass assignment"),
    ("api_abuse", "Suspicious API activity"),
    ("enum", "Enumeration attack"),
    ("vuln_component", "Vulnerable component"),
    ("weak_auth", "Weak JWT"),
    ("apileak", "API leak"),
    ("account_takeover", "Account takeover"),
    ("credential_stuffing", "Credential stuffing"),
    ("resource_consumption", "Unrestricted resource consumption"),
    ("ai_prompt_injection", "AI prompt injection"),
    ("ai_prompt_retrieval", "AI prompt retrieval"),
    ("graphql_attacks", "GraphQL attack"),
    ("data_bomb", "Data bomb"),
    ("processing_overlimit", "Processing overlimit"),
    ("overlimit_res", "Resource overlimit"),
    ("dos", "Denial of service"),
    ("auth", "Authentication bypass"),
    ("missing_auth", "Missing authentication"),
    ("api_leak", "API leak"),
    ("infoleak", "Information exposure"),
    ("file_upload_violation", "File upload violation"),
    ("vpatch", "Virtual patch"),
    ("scanner", "Resource scanning"),
    ("dirbust", "Forced browsing"),
    ("security_crawlers", "Security crawlers"),
    ("scraping", "Scraping"),
    ("blocked_source", "Request from a denylisted source"),
    ("api_specification", "API specification violation"),
    ("undefined_endpoint", "Undefined endpoint"),
    ("undefined_parameter", "Undefined parameter"),
    ("invalid_parameter_value", "Invalid parameter value"),
    ("missing_parameter", "Missing parameter"),
    ("invalid_request", "Invalid request"),
    ("invalid_xml", "Invalid XML"),
    ("query_anomaly", "Query anomaly"),
    ("gql_doc_size", "GraphQL query size"),
    ("gql_value_size", "GraphQL value size"),
    ("gql_depth", "GraphQL query depth"),
    ("gql_aliases", "GraphQL aliases"),
    ("gql_docs_per_batch", "GraphQL batching"),
    ("gql_introspection", "GraphQL introspection"),
    ("gql_debug", "GraphQL debug"),
];

/// GraphQL policy violations are a family of codes (`gql_depth`, `gql_aliases`, ...); one
/// Wallarm adds later is still named as one.
const GQL: (&str, &str) = ("gql_", "GraphQL policy violation");

/// The table row of an attack type code, any case; `None` for a code not in Wallarm's list
/// (the hit is then titled with its code).
fn attack_type(code: &str) -> Option<&'static (&'static str, &'static str)> {
    let code = code.trim();
    ATTACKS
        .iter()
        .find(|(c, ..)| c.eq_ignore_ascii_case(code))
        .or_else(|| {
            let prefix = code.get(..GQL.0.len())?;
            (prefix.eq_ignore_ascii_case(GQL.0) && code.len() > GQL.0.len()).then_some(&GQL)
        })
}

/// A hit's `block_status`: `blocked`, `monitored` (seen and let through in monitoring mode),
/// or `passed`/`allowed`/`not_blocked` (let through on purpose).
fn disposition(word: &str) -> Option<Disposition> {
    const TABLE: &[(&str, Disposition)] = &[
        ("blocked", Disposition::Blocked),
        ("monitored", Disposition::Detected),
        ("passed", Disposition::Allowed),
        ("allowed", Disposition::Allowed),
        ("not_blocked", Disposition::Allowed),
    ];
    let word = word.trim();
    TABLE
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(word))
        .map(|&(_, d)| d)
}

/// A usable source address: not empty, not `0`, not the unspecified `0.0.0.0` or `::`.
fn is_address(a: &str) -> bool {
    let a = a.trim();
    !a.is_empty()
        && a != "0"
        && !a
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified())
}

/// A vulnerability or security issue (nested, or the flat legacy object).
fn issue<'a, D>(e: &mut Event<'a>, v: &Fields<'a, D>) {
    let w = &mut e.normalization_warnings;
    e.kind = Kind::Vulnerability;
    e.ocsf = Ocsf::VULNERABILITY_FINDING;
    if let Some(title) = text(v.title, "title: not a string", w) {
        e.title = Some(title);
    }
    // The same `network` fields as hits, so attacks and issues on one endpoint correlate.
    e.network.domain =
        text(v.host, "host: not a string", w).or_else(|| text(v.domain, "domain: not a string", w));
    e.network.path = text(v.path, "path: not a string", w);
    e.network.method = text(v.method, "method: not a string", w);
    // Often null (the docs' examples), and then the id stays a hash of the element.
    if let Some(id) = text_or_number(v.id, "id: not a string or number", w) {
        e.id = EventId::Vendor(id);
    }
    // `risk` (Critical/High/Medium/Low/Info) today, `threat` (Low/Medium/High) before.
    let (word, warn, unknown) = if v.risk.is_some() {
        (v.risk, "risk: not a string", "risk: unknown word")
    } else {
        (v.threat, "threat: not a string", "threat: unknown word")
    };
    if let Some(word) = text(word, warn, w) {
        match Severity::from_word(&word) {
            Some(s) => e.severity = s,
            None => w.push(unknown),
        }
        e.vendor_severity = Some(word);
    }
}

/// A user created: `email` is the new account (the flat form; no JSON of the current
/// `create_user` type was ever published, so its `details` are read the same way).
fn user<'a, D>(e: &mut Event<'a>, f: &Fields<'a, D>) {
    e.kind = Kind::System;
    e.ocsf = Ocsf::ACCOUNT_CHANGE;
    e.resource.name = text(
        f.email,
        "email: not a string",
        &mut e.normalization_warnings,
    );
}

/// A nested object read with [`Fields`]; absent or null is `None`, anything else that is not
/// an object adds `warn`.
fn object<'a, D: Depth>(
    nested: Option<Nested<'a, D>>,
    warn: &'static str,
    w: &mut Warnings,
) -> Option<Fields<'a, D>> {
    let raw = match nested? {
        Nested::Parsed(fields) => return Some(*fields),
        Nested::Raw(raw) => raw,
    };
    let raw = Some(raw).filter(|r| r.get() != "null")?;
    if raw.get().starts_with('{') {
        if let Ok(f) = parse_object(raw, 0) {
            return Some(f);
        }
    }
    w.push(warn);
    None
}

/// `[Test message] ...` (current) or `[Test Message] ...` (legacy).
fn is_test_message(s: &str) -> bool {
    const PREFIX: &str = "[test message]";
    s.trim_start()
        .get(..PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::vendors::NO_SEVERITY;
    use serde_json::{json, Value};

    const HITS: &str = include_str!("../../fixtures/vendors/wallarm-new_hits-array-2023.json");
    const HITS_NDJSON: &str =
        include_str!("../../fixtures/vendors/wallarm-new_hits-ndjson-2023.ndjson");
    const HITS_NDJSON_BAD: &str = include_str!(
        "../../fixtures/vendors/wallarm-new_hits-ndjson-2023-asdocumented-malformed.ndjson"
    );
    const ISSUE: &str =
        include_str!("../../fixtures/vendors/wallarm-security_issue-array-from-js-literal.json");
    const VULN: &str =
        include_str!("../../fixtures/vendors/wallarm-vuln-array-2021-from-js-literal.json");
    const TEST_VULN: &str =
        include_str!("../../fixtures/vendors/wallarm-test-vuln-array-2021-from-js-literal.json");
    const IP_BLOCKED: &str =
        include_str!("../../fixtures/vendors/wallarm-ip_blocked-trigger-array.json");
    const FLAT_HIT: &str = include_str!("../../fixtures/vendors/wallarm-hit-flat-legacy-2020.json");
    const FLAT_VULN: &str =
        include_str!("../../fixtures/vendors/wallarm-vuln-flat-legacy-2020.json");
    const FLAT_TEST_VULN: &str =
        include_str!("../../fixtures/vendors/wallarm-test-vuln-flat-legacy-2020.json");
    const FLAT_USER: &str =
        include_str!("../../fixtures/vendors/wallarm-create_user-flat-legacy-from-screenshot.json");

    /// Decodes through `Vendor::decode`, as dispatch does, and returns the events as JSON.
    fn run(body: &str) -> Result<Vec<Value>, DecodeError> {
        let ctx = Context {
            source: "wallarm",
            received_at: Timestamp(5),
        };
        let mut out = Vec::new();
        let n = Vendor::Wallarm.decode(body, &ctx, |e| {
            out.push(serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap())
        })?;
        assert_eq!(n, out.len());
        Ok(out)
    }

    fn one(body: &str) -> Value {
        let mut events = run(body).unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        events.remove(0)
    }

    fn warnings(e: &Value) -> Vec<&str> {
        e.get("normalization_warnings")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|w| w.as_str().unwrap()).collect())
            .unwrap_or_default()
    }

    fn is_hash_id(e: &Value) -> bool {
        let id = e["id"].as_str().unwrap();
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
    }

    /// `raw` is each element of the body, unchanged.
    fn raw_matches(events: &[Value], body: &str) {
        let elements: Value = serde_json::from_str(body).unwrap();
        let elements = elements.as_array().unwrap();
        assert_eq!(events.len(), elements.len());
        for (e, raw) in events.iter().zip(elements) {
            assert_eq!(&e["raw"], raw);
        }
    }

    /// The elements of a fixture that is a JSON array, as one string.
    fn inner(array: &'static str) -> &'static str {
        array.trim().trim_start_matches('[').trim_end_matches(']')
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
        /// Reading each notification of an array or an NDJSON body in one pass gives the same
        /// events, count and error as splitting the body and then reading each one (see
        /// `vendors::one_pass`), including notifications only the level-by-level reading takes.
        #[test]
        fn one_pass_reads_what_the_ordinary_reading_reads((body, limit) in crate::vendors::one_pass::bodies(vec![
            inner(HITS),
            HITS_NDJSON,
            HITS_NDJSON_BAD,
            inner(ISSUE),
            inner(VULN),
            inner(IP_BLOCKED),
            FLAT_HIT,
            r#"{"summary":"s","details":5}"#,
            r#"{"details":{"hit":{"id":1,"id":2}}}"#,
            r#"{"details":{"hit":[1]},"summary":"x"}"#,
            r#"{}"#,
            r#"7"#,
            r#"{"summary":"x""#,
        ])) {
            use crate::vendors::one_pass::lines;
            let ctx = Context { source: "w", received_at: crate::normalize::Timestamp(5) };
            proptest::prop_assert_eq!(
                lines(limit, |emit| decode(&body, &ctx, emit)),
                lines(limit, |emit| {
                    let mut count = 0;
                    let mut stopped = false;
                    let walked = for_each_notification(&body, |raw, offset| {
                        let flow = emit(normalize(raw, offset, &ctx)?);
                        count += 1;
                        crate::vendors::stop_walk(flow, &mut stopped)
                    });
                    crate::vendors::finish_walk(walked, stopped, count)
                }),
                "{}", body
            );
        }
    }

    #[test]
    fn hits_array_2023() {
        let events = run(HITS).unwrap();
        assert_eq!(events.len(), 2);
        let e = &events[0];
        assert_eq!(e["id"], "hits_production_1111_202312_v_1:xxxxxxxxxxxxxxxx");
        assert_eq!(e["vendor"], "wallarm");
        assert_eq!(e["product"], "Wallarm");
        assert_eq!(e["kind"], "attack");
        assert_eq!(e["status"], "new");
        assert_eq!(e["severity"], "unknown", "hits carry no severity");
        assert!(e.get("vendor_severity").is_none());
        assert_eq!(e["time"], "2023-12-25T15:57:03.000Z");
        assert_eq!(e["title"], "SQL injection");
        assert_eq!(e["finding"], json!({"type": "sqli"}));
        assert_eq!(e["disposition"], "detected", "block_status monitored");
        assert_eq!(e["disposition_id"], 15);
        assert!(e.get("description").is_none());
        assert_eq!(
            e["network"],
            json!({"src_ip": "8.8.8.8", "src_port": 41253, "domain": "example.com",
                   "path": "/", "method": "GET"})
        );
        assert_eq!(e["resource"], json!({"account_name": "Test Company"}));
        assert_eq!(
            e["vendor_cloud"], "EU",
            "Wallarm's cloud, not the resource's region"
        );
        assert_eq!(e["ocsf"]["class_uid"], 2004);
        assert_eq!(e["ocsf"]["type_uid"], 200401);
        assert_eq!(warnings(e), [NO_SEVERITY], "{e}");
        let e = &events[1];
        assert_eq!(e["title"], "Path traversal");
        assert_eq!(e["severity"], "unknown", "hits carry no severity");
        assert_eq!(e["time"], "2023-12-25T15:57:06.000Z");
        assert_eq!(e["network"]["path"], "/etc/passwd");
        assert_eq!(e["network"]["src_port"], 41254);
        raw_matches(&events, HITS);
    }

    #[test]
    fn ndjson_hits_match_the_array() {
        let lines = run(HITS_NDJSON).unwrap();
        let array = run(HITS).unwrap();
        assert_eq!(lines.len(), 2);
        for (mut l, mut a) in lines.into_iter().zip(array) {
            let raw = l.as_object_mut().unwrap().remove("raw").unwrap();
            assert_eq!(raw["details"]["notification_type"], "new_hits");
            a.as_object_mut().unwrap().remove("raw");
            assert_eq!(l, a);
        }
        // CRLF, blank lines, a trailing newline, and a single pretty-printed object.
        let crlf = HITS_NDJSON.replace('\n', "\r\n\r\n");
        assert_eq!(run(&crlf).unwrap().len(), 2);
        let pretty = r#"
            {"summary": "[Wallarm] x",
             "details": {"notification_type": "new_hits", "hit": {"type": "xss"}}}
        "#;
        assert_eq!(one(pretty)["severity"], "unknown");
    }

    #[test]
    fn malformed_ndjson_points_into_the_first_line() {
        let first_line_end = HITS_NDJSON_BAD.find('\n').unwrap();
        match run(HITS_NDJSON_BAD) {
            Err(DecodeError::Malformed { offset, message }) => {
                assert!(offset < first_line_end, "{offset} {message}");
                assert_eq!(offset, first_line_end - 1, "the line's last byte");
                assert!(message.contains("EOF while parsing an object"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // Other stream errors keep the parser's own position.
        let body = "{\"summary\":\"a\"}\n{\"summary\" \"b\"}\n";
        assert!(matches!(
            run(body),
            Err(DecodeError::Malformed { offset: 27, .. })
        ));
        assert!(matches!(
            run("{} x"),
            Err(DecodeError::Malformed { offset: 3, .. })
        ));
    }

    #[test]
    fn body_shapes() {
        for (body, at) in [
            (r#""x""#, 0),
            ("  7", 2),
            ("", 0),
            ("[1]", 1),
            ("{}\n[1]", 3),
        ] {
            match run(body) {
                Err(DecodeError::Shape { offset, .. }) => assert_eq!(offset, at, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        assert_eq!(run("[]").unwrap().len(), 0);
    }

    #[test]
    fn security_issue_and_vuln() {
        for (body, word) in [(ISSUE, "security_issue"), (VULN, "vuln")] {
            let events = run(body).unwrap();
            raw_matches(&events, body);
            let e = &events[0];
            assert_eq!(e["kind"], "vulnerability", "{word}");
            assert_eq!(e["ocsf"]["class_uid"], 2002);
            assert_eq!(e["severity"], "medium");
            assert_eq!(e["vendor_severity"], "Medium");
            assert_eq!(e["title"], "Test");
            assert!(e["description"]
                .as_str()
                .unwrap()
                .starts_with(&format!("Notification type: {word}\n")));
            assert_eq!(e["url"], "https://us1.my.wallarm.com/object/555");
            assert_eq!(e["network"], json!({"domain": "example.com"}));
            assert_eq!(e["resource"], json!({"account_name": "TestCompany"}));
            assert_eq!(e["vendor_cloud"], "US");
            assert!(is_hash_id(e), "id is null: {}", e["id"]);
            assert_eq!(e["time"], "1970-01-01T00:00:00.005Z", "received_at");
            assert_eq!(warnings(e), ["time: missing, received_at used"]);
        }
        let e = one(TEST_VULN);
        assert_eq!(e["kind"], "test");
        assert_eq!(e["ocsf"]["class_uid"], 2002);
    }

    #[test]
    fn ip_blocked_trigger() {
        let e = one(IP_BLOCKED);
        assert_eq!(e["kind"], "system");
        assert_eq!(e["severity"], "unknown", "triggers carry no severity");
        assert_eq!(e["severity_id"], 0);
        assert_eq!(
            warnings(&e),
            [
                "time: missing, received_at used",
                crate::vendors::NO_SEVERITY
            ]
        );
        assert_eq!(e["ocsf"]["class_uid"], 2004);
        assert_eq!(
            e["title"],
            "[Wallarm] Trigger: New IP address was denylisted"
        );
        assert_eq!(e["network"], json!({"src_ip": "1.1.1.1"}));
        assert_eq!(
            e["resource"],
            json!({"name": "Application #8", "account_name": "TestCompany"})
        );
        assert_eq!(e["vendor_cloud"], "EU");
        assert!(is_hash_id(&e));
        assert_eq!(
            e["time"], "1970-01-01T00:00:00.005Z",
            "expire_at is not the time"
        );
        raw_matches(&[e], IP_BLOCKED);
    }

    #[test]
    fn flat_legacy_formats() {
        let e = one(FLAT_HIT);
        assert_eq!(e["kind"], "attack");
        assert_eq!(
            e["id"],
            "hits_production_6396_202006_v_1:vpuRfnIBVc0URvOZ6ALA"
        );
        assert_eq!(e["severity"], "unknown", "hits carry no severity");
        assert_eq!(e["time"], "2020-06-04T09:02:47.000Z");
        assert_eq!(e["title"], "SQL injection");
        assert_eq!(
            e["network"],
            json!({"src_ip": "111.17.1.1", "src_port": 41616, "domain": "example.com",
                   "path": "/", "method": "GET"})
        );
        assert!(e.get("resource").is_none());
        assert_eq!(warnings(&e), [NO_SEVERITY], "{e}");
        raw_matches(&[e], FLAT_HIT);

        let e = one(FLAT_VULN);
        assert_eq!(e["kind"], "vulnerability");
        assert_eq!(e["ocsf"]["class_uid"], 2002);
        assert_eq!(e["severity"], "low");
        assert_eq!(e["vendor_severity"], "Low");
        assert!(e["title"]
            .as_str()
            .unwrap()
            .starts_with("Missing \"Strict-Transport-Security\""));
        assert_eq!(e["url"], "https://my.wallarm.com/object/282157");
        assert_eq!(e["network"]["domain"], "www.example.com");
        raw_matches(&[e], FLAT_VULN);

        let e = one(FLAT_TEST_VULN);
        assert_eq!(e["kind"], "test", "[Test Message] in any case");
        assert_eq!(e["title"], "Test");

        let e = one(FLAT_USER);
        assert_eq!(e["kind"], "system");
        assert_eq!(e["ocsf"]["class_uid"], 3001);
        assert_eq!(e["ocsf"]["category_uid"], 3);
        assert_eq!(e["severity"], "unknown");
        assert_eq!(e["title"], "New user was created");
        assert_eq!(e["resource"], json!({"name": "johnsmith@example.com"}));
        raw_matches(&[e], FLAT_USER);
    }

    #[test]
    fn other_types_decode_generically() {
        let e = one(
            r#"[{"summary":"[Wallarm] Trigger: attacks exceeded","description":"d",
                "details":{"notification_type":"attacks_exceeded","client_name":"c","link":"u"}}]"#,
        );
        assert_eq!(e["kind"], "system");
        assert_eq!(e["severity"], "unknown");
        assert_eq!(e["ocsf"]["class_uid"], 2004);
        assert_eq!(e["title"], "[Wallarm] Trigger: attacks exceeded");
        assert_eq!(e["description"], "d");
        assert_eq!(e["url"], "u");
        let e =
            one(r#"[{"summary":"x","details":{"notification_type":"create_user","email":"a@b"}}]"#);
        assert_eq!(e["ocsf"]["class_uid"], 3001);
        assert_eq!(e["resource"]["name"], "a@b");
        let e = one(
            r#"{"summary":"[TEST MESSAGE] New hit","details":{"notification_type":"new_hits","hit":{"type":"scanner","id":[1,2]}}}"#,
        );
        assert_eq!(e["kind"], "test");
        assert_eq!(e["severity"], "unknown");
        assert_eq!(
            warnings(&e),
            [
                "id: not an [index, doc_id] pair",
                "time: missing, received_at used",
                NO_SEVERITY
            ]
        );
        // Renamed type still carrying a hit; an object with nothing known at all.
        let e = one(r#"{"details":{"notification_type":"siem","hit":{"type":"xss","id":"h1"}}}"#);
        assert_eq!(
            (&e["kind"], &e["id"], &e["severity"]),
            (&json!("attack"), &json!("h1"), &json!("unknown"))
        );
        let e = one(r#"{"anything":1}"#);
        assert_eq!(e["kind"], "system");
        assert!(is_hash_id(&e));
        assert_eq!(e["severity_id"], 0);
        assert!(
            warnings(&e).contains(&crate::normalize::UNRECOGNIZED),
            "{e}"
        );
    }

    #[test]
    fn wrong_types_warn_and_keep_the_event() {
        let body = r#"[{"summary":5,"details":{"client_name":["c"],"cloud":"EU",
            "notification_type":"new_hits","hit":{"type":"rce","request_time":"soon",
            "remote_port":70000,"remote_addr4":4,"remote_addr6":"::1","host":{},
            "domain":"d.example","id":["i"]}}}]"#;
        let e = one(body);
        assert_eq!(e["kind"], "attack");
        assert_eq!(e["title"], "Remote code execution");
        assert_eq!(e["severity"], "unknown", "hits carry no severity");
        assert_eq!(
            e["network"],
            json!({"src_ip": "::1", "domain": "d.example"})
        );
        assert!(e.get("resource").is_none(), "{e}");
        assert_eq!(e["vendor_cloud"], "EU");
        assert!(is_hash_id(&e));
        assert_eq!(
            warnings(&e),
            [
                "summary: not a string",
                "client_name: not a string",
                "remote_addr4: not a string",
                "remote_port: out of range",
                "host: not a string",
                "id: not an [index, doc_id] pair",
                "request_time: not epoch seconds",
                "time: missing, received_at used",
                NO_SEVERITY,
            ]
        );
        raw_matches(&[e], body);
        let e = one(r#"[{"summary":"s","details":"oops"}]"#);
        assert_eq!(e["title"], "s");
        assert_eq!(
            warnings(&e),
            [
                "details: not an object",
                "time: missing, received_at used",
                crate::vendors::NO_SEVERITY
            ]
        );
        let e = one(
            r#"[{"details":{"notification_type":"security_issue","security_issue":{"risk":"severe","id":12}}}]"#,
        );
        assert_eq!(e["id"], "12");
        assert_eq!(e["vendor_severity"], "severe");
        assert_eq!(e["severity"], "unknown");
        assert_eq!(
            warnings(&e),
            ["risk: unknown word", "time: missing, received_at used"]
        );
    }

    #[test]
    fn attack_table_and_test_prefix() {
        // The whole mapping a reader needs: code -> title, as Wallarm lists them.
        let table: &[(&str, &str)] = &[
            ("sqli", "SQL injection"),
            ("SQLi", "SQL injection"),
            ("nosqli", "NoSQL injection"),
            ("rce", "Remote code execution"),
            ("ssti", "Server-side template injection"),
            ("ldapi", "LDAP injection"),
            ("ssrf", "Server-side request forgery"),
            ("ptrav", "Path traversal"),
            ("xxe", "XML external entity"),
            ("xss", "Cross-site scripting"),
            ("redir", "Open redirect"),
            ("crlf", "CRLF injection"),
            ("brute", "Brute-force attack"),
            ("bola", "Broken object level authorization"),
            ("idor", "Insecure direct object reference"),
            ("credential_stuffing", "Credential stuffing"),
            ("scanner", "Resource scanning"),
            ("dirbust", "Forced browsing"),
            ("gql_depth", "GraphQL query depth"),
            ("gql_new_limit", "GraphQL policy violation"),
            ("Enum", "Enumeration attack"),
            ("weak_auth", "Weak JWT"),
            ("undefined_endpoint", "Undefined endpoint"),
        ];
        for &(code, name) in table {
            let row = attack_type(code).unwrap_or_else(|| panic!("{code}"));
            assert_eq!(row.1, name, "{code}");
        }
        assert!(attack_type("gql_").is_none() && attack_type("newthing").is_none());
        let codes: std::collections::BTreeSet<&str> = ATTACKS.iter().map(|r| r.0).collect();
        assert_eq!(codes.len(), ATTACKS.len(), "a code listed twice");
        for (word, d) in [
            ("blocked", Some(Disposition::Blocked)),
            ("monitored", Some(Disposition::Detected)),
            ("passed", Some(Disposition::Allowed)),
            ("Allowed", Some(Disposition::Allowed)),
            ("dropped", None),
        ] {
            assert_eq!(disposition(word), d, "{word}");
        }
        for (a, ok) in [("8.8.8.8", true), ("::1", true), ("0", false), ("", false)] {
            assert_eq!(is_address(a), ok, "{a:?}");
        }
        assert!(!is_address("0.0.0.0") && !is_address("::"));
        assert!(is_test_message(
            "[Test message] [Test partner(US)] New vulnerability detected"
        ));
        assert!(is_test_message(
            "[Test Message] New vulnerability identified"
        ));
        assert!(!is_test_message("[Wallarm] New hit detected"));
        assert!(!is_test_message("[Test mess"));
        assert!(!is_test_message("[Test messagé]"));
    }
}
