//! LEEF 2.0 bodies for QRadar: the `LEEF:2.0|...|` header and the delimiter-separated
//! attributes (docs: notes/sinks-spec.md "LEEF body"), shortened to a byte budget from the
//! least important attribute backwards.
//!
//! Also owns what the CEF encoder ([`super::cef`]) shares with this one: the 1-10 severity
//! ([`sev10`]), the `<vendor>:<kind>:<status>` event name ([`event_name`]) and the attribute
//! writer that enforces the budget (`Attrs`).
//!
//! Character rules (IBM QRadar DSM guide, "Log Event Extended Format (LEEF)", section "LEEF
//! event components" for LEEF 2.0; made stricter by the siemgate sinks contract, which
//! replaces characters instead of escaping them so that no receiver has to unescape):
//! * The header is `|`-separated: a `|` inside a header field becomes `_`.
//! * Attributes are `key=value` joined by the delimiter named in the header's sixth field: one
//!   character, or its hex code for tab, written `x09` (the guide allows `x` or `0x` followed by
//!   1-4 hex digits). In a value the delimiter becomes a space. `=` is left as is: the first `=`
//!   of an attribute ends its key.
//! * Everywhere (header and values, LEEF and CEF alike): every C0 control (NUL to US, tab, CR
//!   and LF included), DEL, and the Unicode line breaks U+0085, U+2028 and U+2029 become one
//!   space each ([`is_control`], [`unicode_break_len`]). One event is one syslog line; NUL cuts
//!   messages in C receivers (syslog-ng rewrites it as the four characters `\x00`), ESC puts
//!   terminal codes in analysts' consoles, and the Unicode breaks split lines in viewers.

use std::fmt::{self, Write as _};

use bytes::{BufMut, BytesMut};

use crate::normalize::{Event, Severity};

/// The product version written in the LEEF and CEF headers.
pub(super) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The LEEF / CEF severity: critical 10, high 8, medium 5, low 3, informational 1; `None` for
/// unknown, which has no number (LEEF then leaves `sev` out, CEF writes `Unknown`).
pub fn sev10(s: Severity) -> Option<u8> {
    Some(match s {
        Severity::Unknown => return None,
        Severity::Critical => 10,
        Severity::High => 8,
        Severity::Medium => 5,
        Severity::Low => 3,
        Severity::Informational => 1,
    })
}

/// Appends the event id name `<vendor>:<kind>:<status>` (e.g. `prisma_cloud:alert:open`).
/// Only snake_case ASCII words: safe in a LEEF or CEF header field as it is.
pub fn event_name(event: &Event<'_>, out: &mut BytesMut) {
    out.extend_from_slice(event.vendor.as_str().as_bytes());
    out.put_u8(b':');
    out.extend_from_slice(event.kind.as_str().as_bytes());
    out.put_u8(b':');
    out.extend_from_slice(event.status.as_str().as_bytes());
}

/// The delimiter actually used: `delimiter` when it is one the config accepts (tab, or printable
/// ASCII other than a letter, digit, `=`, space or `|`), else the default `^`. Config
/// validation rejects the others; this keeps the output parseable and valid UTF-8 regardless.
fn usable_delimiter(delimiter: u8) -> u8 {
    let ok = delimiter == b'\t'
        || (delimiter.is_ascii_graphic()
            && !delimiter.is_ascii_alphanumeric()
            && delimiter != b'='
            && delimiter != b'|');
    if ok {
        delimiter
    } else {
        b'^'
    }
}

/// Whether `b` is a C0 control (tab, CR and LF included) or DEL: written as a space in every
/// syslog body (see the module docs).
pub(super) fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// Bytes of the Unicode line break (U+0085 NEL, U+2028 LINE SEPARATOR, U+2029 PARAGRAPH
/// SEPARATOR) that `s` starts with, 0 if none: written as one space, like the C0 controls.
pub(super) fn unicode_break_len(s: &[u8]) -> usize {
    match s {
        [0xC2, 0x85, ..] => 2,
        [0xE2, 0x80, 0xA8 | 0xA9, ..] => 3,
        _ => 0,
    }
}

/// Header field rule: `|` -> `_`, controls -> space (see the module docs).
fn header_escape(b: u8) -> Option<&'static [u8]> {
    match b {
        b'|' => Some(b"_"),
        b if is_control(b) => Some(b" "),
        _ => None,
    }
}

/// Appends the LEEF 2.0 body of `event` (header and attributes; no syslog header, no newline)
/// to `out`, keeping the body within `budget` bytes by dropping attributes from the end
/// (`description` first) and cutting the last one kept on a character boundary. The header is
/// never cut: when it alone exceeds `budget` it is written whole with no attribute.
///
/// Returns true when the body was shortened (some attribute dropped or cut).
pub fn encode(event: &Event<'_>, delimiter: u8, budget: usize, out: &mut BytesMut) -> bool {
    let delim = usable_delimiter(delimiter);
    let start = out.len();
    out.extend_from_slice(b"LEEF:2.0|siemgate|");
    put_escaped(out, event.product.as_bytes(), &header_escape);
    out.put_u8(b'|');
    put_escaped(out, VERSION.as_bytes(), &header_escape);
    out.put_u8(b'|');
    event_name(event, out);
    out.put_u8(b'|');
    if delim == b'\t' {
        out.extend_from_slice(b"x09");
    } else {
        out.put_u8(delim);
    }
    out.put_u8(b'|');

    // Attribute value rule: the delimiter and controls -> space (see the module docs).
    let esc = |b: u8| -> Option<&'static [u8]> {
        if b == delim || is_control(b) {
            Some(b" ")
        } else {
            None
        }
    };
    let net = &event.network;
    let res = &event.resource;
    let mut a = Attrs::new(out, start, budget, delim, false);
    a.int("devTime", event.time.0);
    // No made-up number for an unknown severity: without `sev` QRadar applies the severity
    // of the event's QID mapping, and `severity=unknown` says why.
    match sev10(event.severity) {
        Some(sev) => a.int("sev", i64::from(sev)),
        None => a.str("severity", Some(Severity::Unknown.as_str()), &esc),
    }
    a.str("cat", Some(event.kind.as_str()), &esc);
    a.display("externalId", &event.id, &esc);
    a.str("status", Some(event.status.as_str()), &esc);
    a.str("disposition", event.disposition.map(|d| d.as_str()), &esc);
    a.str("policy", event.title.as_deref(), &esc);
    a.str("src", net.src_ip.as_deref(), &esc);
    if let Some(port) = net.src_port {
        a.int("srcPort", i64::from(port));
    }
    a.str("url", event.url.as_deref(), &esc);
    a.str("resource", res.id.as_deref(), &esc);
    a.str("resourceName", res.name.as_deref(), &esc);
    a.str("resourceType", res.kind.as_deref(), &esc);
    a.str("region", res.region.as_deref(), &esc);
    a.str("accountId", res.account_id.as_deref(), &esc);
    a.str("accountName", res.account_name.as_deref(), &esc);
    a.str("cloud", res.cloud.as_deref(), &esc);
    a.str("targetDomain", net.domain.as_deref(), &esc);
    a.str("requestPath", net.path.as_deref(), &esc);
    a.str("requestMethod", net.method.as_deref(), &esc);
    a.str("vendorSeverity", event.vendor_severity.as_deref(), &esc);
    let f = &event.finding;
    a.str("policyId", f.policy_id.as_deref(), &esc);
    a.str("policyType", f.policy_type.as_deref(), &esc);
    a.str("alertRule", f.rule.as_deref(), &esc);
    a.str("attackType", f.type_code.as_deref(), &esc);
    a.str("statusDetail", event.status_detail.as_deref(), &esc);
    if let Some(t) = f.first_seen {
        a.int("firstSeen", t.0);
    }
    if let Some(t) = f.last_seen {
        a.int("lastSeen", t.0);
    }
    a.str("vendorCloud", event.vendor_cloud.as_deref(), &esc);
    a.str("siemgateSource", Some(event.source), &esc);
    a.str("resourceTags", res.tags.map(|t| t.get()), &esc);
    a.str("remediation", event.remediation.as_deref(), &esc);
    a.str("description", event.description.as_deref(), &esc);
    a.finish()
}

/// Calls `put` with the pieces of `s` after `esc` rewrote its bytes and every Unicode line
/// break became a space: runs of kept bytes and replacements. Escapes only ever match ASCII
/// bytes, so other UTF-8 sequences pass through whole.
fn for_each_piece<E, P>(s: &[u8], esc: &E, mut put: P)
where
    E: Fn(u8) -> Option<&'static [u8]>,
    P: FnMut(&[u8]),
{
    let (mut run, mut i) = (0, 0);
    while i < s.len() {
        let b = s[i];
        let (rep, len): (&[u8], usize) = if let Some(rep) = esc(b) {
            (rep, 1)
        } else if b >= 0xC2 {
            match unicode_break_len(&s[i..]) {
                0 => (&[], 0),
                n => (b" ", n),
            }
        } else {
            (&[], 0)
        };
        if len == 0 {
            i += 1;
            continue;
        }
        put(&s[run..i]);
        put(rep);
        i += len;
        run = i;
    }
    put(&s[run..]);
}

/// Appends `s` to `out` rewritten by `esc`, without limit (header fields).
pub(super) fn put_escaped<E>(out: &mut BytesMut, s: &[u8], esc: &E)
where
    E: Fn(u8) -> Option<&'static [u8]>,
{
    for_each_piece(s, esc, |p| out.extend_from_slice(p));
}

/// The decimal digits of `v` (with a leading `-` when negative), written into `buf`.
pub(super) fn int_digits(v: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut n = v.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        // n % 10 < 10: the cast cannot truncate.
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// Bytes in the UTF-8 sequence a lead byte starts (1 for ASCII and, defensively, for a stray
/// continuation byte).
fn utf8_len(lead: u8) -> usize {
    match lead {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// Writes `key=value` attributes after a header already in `out`, separated by one byte, and
/// keeps the body (from `start`) within the byte budget.
///
/// Attributes are written in order of importance. Value bytes past `start + budget` are never
/// written; the first attribute that does not fit whole keeps the longest prefix of its value
/// that ends on a UTF-8 character boundary (and, for CEF, not inside a `\x` escape), or is
/// dropped entirely if that prefix would be empty; nothing after it is written. An attribute
/// whose value is empty is left out and is not a cut. No allocation beyond `out`'s own growth.
pub(super) struct Attrs<'o> {
    out: &'o mut BytesMut,
    /// Offset where the first attribute goes (right after the header): it has no separator.
    first_at: usize,
    /// `start + budget`: no attribute byte may end up past this offset.
    limit: usize,
    sep: u8,
    /// Whether `\` starts a two-byte escape in values (CEF), which a cut must not split.
    backslash_escapes: bool,
    /// An attribute was dropped or cut: nothing more is written.
    cut: bool,
    /// Offset of the current attribute (its separator, if any).
    attr_at: usize,
    /// Offset of the current attribute's value.
    value_at: usize,
    /// Value bytes of the current attribute were refused because of `limit`.
    over: bool,
}

impl<'o> Attrs<'o> {
    /// `out` holds the header, which began at offset `start`.
    pub(super) fn new(
        out: &'o mut BytesMut,
        start: usize,
        budget: usize,
        sep: u8,
        backslash_escapes: bool,
    ) -> Attrs<'o> {
        let first_at = out.len();
        Attrs {
            out,
            first_at,
            limit: start.saturating_add(budget),
            sep,
            backslash_escapes,
            cut: false,
            attr_at: first_at,
            value_at: first_at,
            over: false,
        }
    }

    /// A string attribute; absent or empty values are left out.
    pub(super) fn str<E>(&mut self, key: &str, value: Option<&str>, esc: &E)
    where
        E: Fn(u8) -> Option<&'static [u8]>,
    {
        let Some(v) = value else { return };
        if v.is_empty() || !self.begin(key) {
            return;
        }
        self.escaped(v.as_bytes(), esc);
        self.end();
    }

    /// An integer attribute, in decimal.
    pub(super) fn int(&mut self, key: &str, v: i64) {
        if !self.begin(key) {
            return;
        }
        let mut buf = [0u8; 20];
        self.raw(int_digits(v, &mut buf));
        self.end();
    }

    /// An attribute whose value is `v`'s `Display` text (escaped as it is produced, without an
    /// intermediate String); left out when that text is empty.
    pub(super) fn display<E, D>(&mut self, key: &str, v: &D, esc: &E)
    where
        E: Fn(u8) -> Option<&'static [u8]>,
        D: fmt::Display + ?Sized,
    {
        if !self.begin(key) {
            return;
        }
        let mut w = EscapingWriter { attrs: self, esc };
        // EscapingWriter never fails; an error could only come from `v`'s own Display.
        let _ = write!(w, "{v}");
        self.end();
    }

    /// True when something was dropped or cut.
    pub(super) fn finish(self) -> bool {
        self.cut
    }

    /// Writes the separator and `key=`; false once the body is full.
    fn begin(&mut self, key: &str) -> bool {
        if self.cut {
            return false;
        }
        self.attr_at = self.out.len();
        if self.attr_at != self.first_at {
            self.out.put_u8(self.sep);
        }
        self.out.extend_from_slice(key.as_bytes());
        self.out.put_u8(b'=');
        self.value_at = self.out.len();
        self.over = false;
        true
    }

    /// Appends value bytes, as many as fit before `limit`.
    fn raw(&mut self, bytes: &[u8]) {
        if self.over {
            return;
        }
        let room = self.limit.saturating_sub(self.out.len());
        if bytes.len() > room {
            self.out.extend_from_slice(&bytes[..room]);
            self.over = true;
        } else {
            self.out.extend_from_slice(bytes);
        }
    }

    fn escaped<E>(&mut self, s: &[u8], esc: &E)
    where
        E: Fn(u8) -> Option<&'static [u8]>,
    {
        for_each_piece(s, esc, |p| self.raw(p));
    }

    /// Closes the current attribute: left out if empty, cut (and the body closed) if it did
    /// not fit.
    fn end(&mut self) {
        if self.over || self.out.len() > self.limit {
            let keep = self.safe_end();
            if keep > self.value_at {
                self.out.truncate(keep);
            } else {
                // `key=` with nothing after it would read as a present, empty value: drop it.
                self.out.truncate(self.attr_at);
            }
            self.cut = true;
        } else if self.out.len() == self.value_at {
            self.out.truncate(self.attr_at);
        }
    }

    /// The end of the longest prefix of the current value, within `limit`, that ends on a
    /// character boundary and (CEF) not between `\` and the character it escapes.
    fn safe_end(&self) -> usize {
        let end = self.out.len().min(self.limit);
        if self.value_at >= end {
            return self.value_at;
        }
        let v = &self.out[self.value_at..end];
        let (mut i, mut ok) = (0, 0);
        while i < v.len() {
            i += if self.backslash_escapes && v[i] == b'\\' {
                2
            } else {
                utf8_len(v[i])
            };
            if i <= v.len() {
                ok = i;
            }
        }
        self.value_at + ok
    }
}

/// `fmt::Write` into the current attribute's value, escaping and respecting the budget.
struct EscapingWriter<'a, 'o, E> {
    attrs: &'a mut Attrs<'o>,
    esc: &'a E,
}

impl<E> fmt::Write for EscapingWriter<'_, '_, E>
where
    E: Fn(u8) -> Option<&'static [u8]>,
{
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.attrs.escaped(s.as_bytes(), self.esc);
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::normalize::{EventId, Kind, Status, Timestamp};
    use crate::vendors::Vendor;
    use proptest::prelude::*;
    use serde_json::value::RawValue;

    fn raw() -> &'static RawValue {
        serde_json::from_str::<&RawValue>("{}").unwrap()
    }

    /// A Prisma Cloud alert with every field the LEEF body reads.
    fn full(raw: &RawValue) -> Event<'_> {
        let mut e = Event::new(
            Vendor::PrismaCloud,
            "prisma",
            raw,
            Timestamp(1_700_000_000_999),
        );
        e.id = EventId::Vendor("P-123".into());
        e.time = Timestamp(1_700_000_000_123);
        e.kind = Kind::Alert;
        e.status = Status::Open;
        e.severity = Severity::High;
        e.vendor_severity = Some("high".into());
        e.title = Some("Public S3 bucket".into());
        e.description = Some("Bucket b is readable by anyone".into());
        e.url = Some("https://app.prismacloud.io/alerts?id=P-123".into());
        e.resource.id = Some("arn:aws:s3:::b".into());
        e.resource.name = Some("b".into());
        e.resource.kind = Some("AWS::S3::Bucket".into());
        e.resource.region = Some("us-east-1".into());
        e.resource.account_id = Some("123456789012".into());
        e.resource.account_name = Some("prod".into());
        e.resource.cloud = Some("aws".into());
        e.network.src_ip = Some("203.0.113.7".into());
        e.network.src_port = Some(44_321);
        e.network.domain = Some("shop.example.com".into());
        e.network.path = Some("/login".into());
        e.network.method = Some("POST".into());
        e
    }

    fn encode_str(e: &Event<'_>, delim: u8, budget: usize) -> (String, bool) {
        let mut out = BytesMut::new();
        let cut = encode(e, delim, budget, &mut out);
        (String::from_utf8(out.to_vec()).unwrap(), cut)
    }

    /// A parsed LEEF 2.0 body.
    #[derive(Debug)]
    struct Parsed {
        header: Vec<String>,
        header_len: usize,
        delim: char,
        attrs: Vec<(String, String)>,
    }

    /// Splits a body into the 6 header fields after `LEEF:2.0` and the attributes.
    fn parse(body: &str) -> Parsed {
        let rest = body.strip_prefix("LEEF:2.0|").expect("LEEF:2.0 prefix");
        let mut fields = rest.splitn(6, '|');
        let header: Vec<String> = fields.by_ref().take(5).map(str::to_owned).collect();
        assert_eq!(header.len(), 5, "{body}");
        let attrs_text = fields.next().expect("attributes after the header");
        let header_len = body.len() - attrs_text.len();
        let delim = match header[4].as_str() {
            "x09" => '\t',
            d => {
                assert_eq!(d.chars().count(), 1, "{body}");
                d.chars().next().unwrap()
            }
        };
        let attrs = if attrs_text.is_empty() {
            Vec::new()
        } else {
            attrs_text
                .split(delim)
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("key=value");
                    assert!(!k.is_empty() && !v.is_empty(), "empty key or value: {kv:?}");
                    (k.to_owned(), v.to_owned())
                })
                .collect()
        };
        Parsed {
            header,
            header_len,
            delim,
            attrs,
        }
    }

    fn get<'p>(p: &'p Parsed, key: &str) -> Option<&'p str> {
        p.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn sev10_and_words() {
        assert_eq!(sev10(Severity::Critical), Some(10));
        assert_eq!(sev10(Severity::High), Some(8));
        assert_eq!(sev10(Severity::Medium), Some(5));
        assert_eq!(sev10(Severity::Low), Some(3));
        assert_eq!(sev10(Severity::Informational), Some(1));
        assert_eq!(sev10(Severity::Unknown), None);
        // event_name's words are the serde (JSON) spelling.
        for k in [
            Kind::Alert,
            Kind::Vulnerability,
            Kind::Attack,
            Kind::System,
            Kind::Test,
        ] {
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
        for s in [
            Status::New,
            Status::Open,
            Status::Resolved,
            Status::Dismissed,
            Status::Snoozed,
        ] {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        let raw = raw();
        let mut e = Event::new(Vendor::Wallarm, "w", raw, Timestamp(0));
        e.kind = Kind::Attack;
        e.status = Status::New;
        let mut out = BytesMut::new();
        event_name(&e, &mut out);
        assert_eq!(&out[..], b"wallarm:attack:new");
    }

    #[test]
    fn int_digits_cover_the_range() {
        let mut b = [0u8; 20];
        for v in [0i64, 7, -7, 10, 1_700_000_000_123, i64::MAX, i64::MIN, -1] {
            assert_eq!(int_digits(v, &mut b), v.to_string().as_bytes());
        }
    }

    #[test]
    fn typical_event_exact() {
        let raw = raw();
        let e = full(raw);
        let (body, cut) = encode_str(&e, b'^', 65_000);
        assert!(!cut);
        let expected = format!(
            "LEEF:2.0|siemgate|Prisma Cloud|{VERSION}|prisma_cloud:alert:open|^|\
             devTime=1700000000123^sev=8^cat=alert^externalId=P-123^status=open^\
             policy=Public S3 bucket^src=203.0.113.7^srcPort=44321^\
             url=https://app.prismacloud.io/alerts?id=P-123^resource=arn:aws:s3:::b^\
             resourceName=b^resourceType=AWS::S3::Bucket^region=us-east-1^\
             accountId=123456789012^accountName=prod^cloud=aws^\
             targetDomain=shop.example.com^requestPath=/login^requestMethod=POST^\
             vendorSeverity=high^siemgateSource=prisma^\
             description=Bucket b is readable by anyone"
        );
        assert_eq!(body, expected);
        let p = parse(&body);
        let keys: Vec<&str> = p.attrs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "devTime",
                "sev",
                "cat",
                "externalId",
                "status",
                "policy",
                "src",
                "srcPort",
                "url",
                "resource",
                "resourceName",
                "resourceType",
                "region",
                "accountId",
                "accountName",
                "cloud",
                "targetDomain",
                "requestPath",
                "requestMethod",
                "vendorSeverity",
                "siemgateSource",
                "description"
            ]
        );
    }

    #[test]
    fn minimal_event_leaves_out_absent_and_empty_values() {
        let raw = raw();
        let mut e = Event::new(Vendor::Generic, "gen", raw, Timestamp(-5));
        e.title = Some("".into());
        e.description = Some("".into());
        let (body, cut) = encode_str(&e, b'^', 65_000);
        assert!(!cut);
        // EventId::Unset writes nothing: externalId is left out too. An unknown severity has
        // no `sev` number; `severity=unknown` says so.
        assert_eq!(
            body,
            format!(
                "LEEF:2.0|siemgate|generic|{VERSION}|generic:alert:new|^|\
                 devTime=-5^severity=unknown^cat=alert^status=new^siemgateSource=gen"
            )
        );
    }

    #[test]
    fn hash_and_joined_ids_are_written_without_allocating_a_string() {
        let raw = raw();
        let mut e = Event::new(Vendor::PrismaCloud, "s", raw, Timestamp(0));
        e.id = EventId::Occurrence("P^1".into(), "open", 42);
        let p = parse(&encode_str(&e, b'^', 65_000).0);
        assert_eq!(get(&p, "externalId"), Some("P 1:open:42"));
        e.id = EventId::hash_of(b"{}");
        let p = parse(&encode_str(&e, b'^', 65_000).0);
        assert_eq!(get(&p, "externalId"), Some(e.id.to_string().as_str()));
    }

    const NASTY: &str = "a^b|c=d\\e\rf\ng\th – Zugriff verweigert – ü 日本";

    fn nasty(raw: &RawValue) -> Event<'_> {
        let mut e = full(raw);
        e.title = Some(NASTY.into());
        e.description = Some(NASTY.into());
        e.network.path = Some("/a=b?c=d|e".into());
        e.id = EventId::Vendor("id^with|pipe".into());
        e
    }

    #[test]
    fn special_characters_in_values_caret() {
        let raw = raw();
        let e = nasty(raw);
        let (body, cut) = encode_str(&e, b'^', 65_000);
        assert!(!cut);
        assert!(!body.contains(['\r', '\n']), "{body:?}");
        let p = parse(&body);
        assert_eq!(p.delim, '^');
        // `^`, CR, LF, tab -> space; `|`, `=`, `\` and non-ASCII text stay.
        let want = "a b|c=d\\e f g h – Zugriff verweigert – ü 日本";
        assert_eq!(get(&p, "policy"), Some(want));
        assert_eq!(get(&p, "description"), Some(want));
        assert_eq!(get(&p, "requestPath"), Some("/a=b?c=d|e"));
        assert_eq!(get(&p, "externalId"), Some("id with|pipe"));
        assert_eq!(p.attrs.len(), 22);
    }

    #[test]
    fn tab_delimiter_is_written_x09() {
        let raw = raw();
        let e = nasty(raw);
        let (body, cut) = encode_str(&e, b'\t', 65_000);
        assert!(!cut);
        assert!(
            body.starts_with(&format!(
                "LEEF:2.0|siemgate|Prisma Cloud|{VERSION}|prisma_cloud:alert:open|x09|devTime=1700000000123\tsev=8\t"
            )),
            "{body}"
        );
        let p = parse(&body);
        assert_eq!(p.delim, '\t');
        let want = "a^b|c=d\\e f g h – Zugriff verweigert – ü 日本";
        assert_eq!(get(&p, "policy"), Some(want));
        assert_eq!(get(&p, "description"), Some(want));
        assert_eq!(p.attrs.len(), 22);
    }

    #[test]
    fn other_delimiters_round_trip_and_bad_ones_fall_back() {
        let raw = raw();
        let e = nasty(raw);
        for d in [b'~', b';', b',', b'\\', b'#'] {
            let (body, _) = encode_str(&e, d, 65_000);
            let p = parse(&body);
            assert_eq!(p.delim, char::from(d));
            assert_eq!(p.attrs.len(), 22, "{body}");
            assert!(!get(&p, "description").unwrap().contains(char::from(d)));
        }
        // Outside what config accepts: the default `^`.
        for d in [b'a', b'7', b'=', b' ', b'|', b'\n', 0x00, 0xC3, 0xFF] {
            let (body, _) = encode_str(&e, d, 65_000);
            assert_eq!(parse(&body).delim, '^', "{d:#x}");
        }
    }

    #[test]
    fn header_fields_never_hold_pipe_cr_lf() {
        let raw = raw();
        let mut e = full(raw);
        e.product = "Odd|Product\r\nName";
        let (body, _) = encode_str(&e, b'^', 65_000);
        let p = parse(&body);
        assert_eq!(p.header[1], "Odd_Product  Name");
        assert_eq!(p.header[0], "siemgate");
        assert_eq!(p.header[2], VERSION);
        assert_eq!(p.header[3], "prisma_cloud:alert:open");
    }

    /// Checks the truncation invariants of one body against the full one.
    fn check_cut(full_body: &str, out: &[u8], prefix: &[u8], budget: usize, cut: bool) {
        assert!(
            out.starts_with(prefix),
            "bytes before the body were touched"
        );
        let body = std::str::from_utf8(&out[prefix.len()..]).expect("valid UTF-8");
        let full_p = parse(full_body);
        let p = parse(body);
        assert_eq!(
            &body[..p.header_len],
            &full_body[..full_p.header_len],
            "header intact"
        );
        assert_eq!(cut, full_body.len() > budget, "budget {budget}");
        if full_body.len() <= budget {
            assert_eq!(body, full_body);
            return;
        }
        if p.header_len >= budget {
            assert_eq!(body.len(), p.header_len, "header only");
            return;
        }
        assert!(body.len() <= budget, "{} > {budget}", body.len());
        assert!(p.attrs.len() <= full_p.attrs.len());
        // Every attribute but the last is intact; the last is whole or a non-empty prefix.
        if let Some(((lk, lv), rest)) = p.attrs.split_last() {
            assert_eq!(rest, &full_p.attrs[..rest.len()]);
            let (fk, fv) = &full_p.attrs[rest.len()];
            assert_eq!(lk, fk);
            assert!(
                !lv.is_empty() && fv.starts_with(lv.as_str()),
                "{lv:?} / {fv:?}"
            );
        }
        // Nothing that fit was dropped: the next attribute would not have fit.
        let kept = p.attrs.len();
        if let Some((lk, lv)) = p.attrs.last() {
            let whole = &full_p.attrs[kept - 1].1;
            if lv == whole && kept < full_p.attrs.len() {
                let (nk, nv) = &full_p.attrs[kept];
                let first = nv.chars().next().map_or(0, char::len_utf8);
                // separator + key + '=' + the value's first character
                assert!(
                    body.len() + 1 + nk.len() + 1 + first > budget,
                    "{lk} then {nk}"
                );
            }
        }
    }

    #[test]
    fn truncation_every_budget() {
        let raw = raw();
        let e = nasty(raw);
        for delim in [b'^', b'\t'] {
            let (full_body, _) = encode_str(&e, delim, usize::MAX);
            let header_len = parse(&full_body).header_len;
            let prefix = b"<13>1 prefix ";
            for budget in 0..=full_body.len() + 2 {
                let mut out = BytesMut::from(&prefix[..]);
                let cut = encode(&e, delim, budget, &mut out);
                check_cut(&full_body, &out, prefix, budget, cut);
                if budget >= header_len {
                    assert!(out.len() - prefix.len() <= budget);
                }
            }
        }
    }

    #[test]
    fn truncation_drops_description_first_and_keeps_the_head() {
        let raw = raw();
        let mut e = full(raw);
        e.description = None;
        let (head, _) = encode_str(&e, b'^', usize::MAX);
        e.description = Some("x".repeat(10_000).into());
        let budget = head.len() + 40;
        let (body, cut) = encode_str(&e, b'^', budget);
        assert!(cut);
        assert_eq!(body.len(), budget);
        // Only description was cut, to what room was left.
        assert!(body.starts_with(&head));
        let p = parse(&body);
        assert_eq!(p.attrs.len(), 22);
        assert_eq!(get(&p, "description"), Some("x".repeat(40 - 13).as_str()));
        // Less room than `^description=` and one byte: dropped with its delimiter.
        let (body, cut) = encode_str(&e, b'^', head.len() + 13);
        assert!(cut);
        assert_eq!(body, head);

        // Header bigger than the budget: header whole, no attribute.
        let (body, cut) = encode_str(&e, b'^', 10);
        assert!(cut);
        assert_eq!(
            body,
            format!("LEEF:2.0|siemgate|Prisma Cloud|{VERSION}|prisma_cloud:alert:open|^|")
        );
    }

    #[test]
    fn a_huge_value_is_never_written_whole() {
        // Value bytes past the budget are never written, so `out` with room for the budget
        // (and one key) does not reallocate even for a 1 MB description.
        let raw = raw();
        let mut e = full(raw);
        e.description = Some("^\r\n日".repeat(200_000).into());
        let prefix = b"<13>1 - ";
        let mut out = BytesMut::with_capacity(prefix.len() + 480 + 64);
        out.extend_from_slice(prefix);
        let (ptr, cap) = (out.as_ptr(), out.capacity());
        assert!(encode(&e, b'^', 480, &mut out));
        assert_eq!((out.as_ptr(), out.capacity()), (ptr, cap));
        assert!(out.len() - prefix.len() <= 480);
    }

    #[test]
    fn truncation_cuts_on_char_boundaries() {
        let raw = raw();
        let mut e = Event::new(Vendor::PrismaCloud, "s", raw, Timestamp(0));
        e.description = Some("日本語ü€😀".repeat(20).into());
        let (full_body, _) = encode_str(&e, b'^', usize::MAX);
        let start = full_body.find("description=").unwrap() + "description=".len();
        for budget in start..full_body.len() {
            let (body, cut) = encode_str(&e, b'^', budget);
            assert!(cut);
            assert!(body.len() <= budget, "{budget}");
            assert!(full_body.starts_with(&body));
            if body.ends_with("siemgateSource=s") {
                // No room for one character: `description=` is dropped with its separator.
                assert!(budget < start + 3, "{budget}");
            } else {
                assert!(body.len() + 4 > budget, "{budget}");
            }
        }
    }

    /// Every C0 control, DEL and the Unicode line breaks, between letters.
    pub(crate) const CONTROLS: &str =
        "n\0e\x1bb\x07v\x0bf\x0cd\x7fx\x01t\tr\rl\nN\u{85}L\u{2028}P\u{2029}end";

    #[test]
    fn controls_and_unicode_breaks_become_spaces_in_header_and_values() {
        let raw = raw();
        let mut e = full(raw);
        e.product = "Pro\0d\x1b[31mct\u{2028}";
        e.title = Some(CONTROLS.into());
        e.description = Some(format!("{CONTROLS} tail").into());
        for delim in [b'^', b'\t'] {
            let (body, cut) = encode_str(&e, delim, 65_000);
            assert!(!cut);
            let bad = body.char_indices().find(|&(_, c)| {
                (c.is_control() && !(delim == b'\t' && c == '\t'))
                    || matches!(c, '\u{2028}' | '\u{2029}')
            });
            assert_eq!(bad, None, "{body:?}");
            let p = parse(&body);
            assert_eq!(p.header[1], "Pro d [31mct ");
            let want = "n e b v f d x t r l N L P end";
            assert_eq!(get(&p, "policy"), Some(want));
            // The description is the last attribute: nothing after a NUL was lost.
            assert_eq!(
                get(&p, "description"),
                Some(format!("{want} tail").as_str())
            );
            assert_eq!(p.attrs.len(), 22);
        }
    }

    #[test]
    fn a_lone_c2_or_e2_lead_byte_is_not_taken_for_a_break() {
        let raw = raw();
        let mut e = full(raw);
        // U+0080..U+00FF and U+2000..U+202F around the breaks stay as they are.
        let text = "\u{84}\u{86}\u{2027}\u{202A}é€";
        e.title = Some(text.into());
        let p = parse(&encode_str(&e, b'^', 65_000).0);
        assert_eq!(get(&p, "policy"), Some(text));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn prop_round_trip_and_cut(
            title in "[a-z^|=\\\\\t\r\n üß日本-]{0,30}",
            desc in "[a-z^|=\\\\\t\r\n üß日本😀-]{0,120}",
            path in "[a-z/^=|?&\t]{0,20}",
            tab in any::<bool>(),
            budget in 0usize..700,
        ) {
            let raw = raw();
            let mut e = full(raw);
            e.title = Some(title.as_str().into());
            e.description = Some(desc.as_str().into());
            e.network.path = Some(path.as_str().into());
            let delim = if tab { b'\t' } else { b'^' };
            let (full_body, cut) = encode_str(&e, delim, usize::MAX);
            prop_assert!(!cut);
            let p = parse(&full_body);
            let clean = |s: &str| -> String {
                s.chars()
                    .map(|c| if c == char::from(delim) || c.is_ascii_control() { ' ' } else { c })
                    .collect()
            };
            for (key, given) in [("policy", &title), ("description", &desc), ("requestPath", &path)] {
                let want = clean(given);
                prop_assert_eq!(get(&p, key), Some(want.as_str()).filter(|s| !s.is_empty()));
            }
            let mut out = BytesMut::new();
            let cut = encode(&e, delim, budget, &mut out);
            check_cut(&full_body, &out, b"", budget, cut);
        }
    }
}
