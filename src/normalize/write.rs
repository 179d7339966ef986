//! The Event as JSON, written straight into a buffer: the bytes `serde_json::to_writer` gives
//! for the Event's `Serialize` impl, without serde's per-field cost.
//!
//! Through serde every key is escaped at run time and every string, key and number goes through
//! `io::Write` one fragment at a time: about 70 such calls per Prisma Cloud alert, which made
//! the NDJSON encode cost more than the Prisma decoder itself. Here the keys are literals, and a
//! string's escaping skips sixteen bytes at a time while none needs an escape. The output is
//! serde_json's, byte for byte (same escapes, lowercase `\u00xx`, no escape for `/` or DEL); a
//! test compares the two on every vendor fixture and on generated events.

use bytes::{BufMut, BytesMut};
use serde_json::value::RawValue;

use super::event::{Event, EventId, Finding, Network, Ocsf, Resource};
use super::scan::special_in;
use super::Timestamp;

/// Appends `event` as one JSON object on one line: `raw` (and the resource's tags) as the vendor
/// sent it, but for the line breaks of a pretty-printed body, written as spaces ([`one_line`]).
pub fn event(e: &Event<'_>, out: &mut BytesMut) {
    out.reserve(e.encoded_len_hint());
    out.extend_from_slice(b"{\"id\":");
    id(&e.id, out);
    out.extend_from_slice(b",\"time\":");
    time(e.time, out);
    out.extend_from_slice(b",\"received_at\":");
    time(e.received_at, out);
    out.extend_from_slice(b",\"vendor\":");
    word(e.vendor.as_str(), out);
    out.extend_from_slice(b",\"product\":");
    word(e.product, out);
    out.extend_from_slice(b",\"source\":");
    string(e.source, out);
    out.extend_from_slice(b",\"kind\":");
    word(e.kind.as_str(), out);
    out.extend_from_slice(b",\"status\":");
    word(e.status.as_str(), out);
    out.extend_from_slice(b",\"severity\":");
    word(e.severity.as_str(), out);
    out.extend_from_slice(b",\"severity_id\":");
    number(u64::from(e.severity.ocsf_id()), out);
    opt(b",\"vendor_severity\":", e.vendor_severity.as_deref(), out);
    opt(b",\"title\":", e.title.as_deref(), out);
    opt(b",\"description\":", e.description.as_deref(), out);
    if !e.resource.is_empty() {
        out.extend_from_slice(b",\"resource\":");
        resource(&e.resource, out);
    }
    if !e.network.is_empty() {
        out.extend_from_slice(b",\"network\":");
        network(&e.network, out);
    }
    opt(b",\"url\":", e.url.as_deref(), out);
    if !e.finding.is_empty() {
        out.extend_from_slice(b",\"finding\":");
        finding(&e.finding, out);
    }
    opt(b",\"remediation\":", e.remediation.as_deref(), out);
    opt(b",\"status_detail\":", e.status_detail.as_deref(), out);
    if let Some(d) = e.disposition {
        out.extend_from_slice(b",\"disposition\":");
        word(d.as_str(), out);
        out.extend_from_slice(b",\"disposition_id\":");
        number(u64::from(d.ocsf_id()), out);
    }
    opt(b",\"vendor_cloud\":", e.vendor_cloud.as_deref(), out);
    out.extend_from_slice(b",\"ocsf\":");
    ocsf(e.ocsf, out);
    if !e.normalization_warnings.is_empty() || e.unparsed_time.is_some() {
        out.extend_from_slice(b",\"normalization_warnings\":[");
        let mut first = true;
        for w in &e.normalization_warnings {
            if !first {
                out.put_u8(b',');
            }
            first = false;
            string(w, out);
        }
        if let Some(t) = &e.unparsed_time {
            if !first {
                out.put_u8(b',');
            }
            // As `Warnings` writes it (rare: only a time the vendor wrote that is unreadable).
            string(&format!("time: not understood: {t:?}"), out);
        }
        out.put_u8(b']');
    }
    out.extend_from_slice(b",\"raw\":");
    // Every other line break would have been escaped: only `raw` and the tags need the pass.
    as_sent(&e.raw, out);
    out.put_u8(b'}');
}

/// Appends a vendor's JSON value as the vendor sent it, on one line ([`one_line`]).
pub fn as_sent(json: &RawValue, out: &mut BytesMut) {
    let at = out.len();
    out.extend_from_slice(json.get().as_bytes());
    one_line(&mut out[at..]);
}

/// Turns the line breaks of a pretty-printed `raw` into spaces so the event stays on one line.
/// JSON strings cannot hold a raw CR or LF (they are escaped as `\n`/`\r`), so every CR or LF
/// in encoded JSON is whitespace between tokens, and a space means the same.
///
/// A branch-free pass over every byte, which the compiler turns into vector code: a Prisma
/// Cloud alert is pretty-printed with a line break every few dozen bytes, and a search from
/// line break to line break paid a call per line.
pub fn one_line(json: &mut [u8]) {
    for b in json.iter_mut() {
        *b = if matches!(*b, b'\n' | b'\r') {
            b' '
        } else {
            *b
        };
    }
}

/// `,"key":"value"` when there is a value. `key` is the literal with its leading comma.
fn opt(key: &[u8], value: Option<&str>, out: &mut BytesMut) {
    if let Some(v) = value {
        out.extend_from_slice(key);
        string(v, out);
    }
}

/// An object's members: each `Some` as `"key":"value"`, comma-separated.
fn members(fields: &[(&[u8], Option<&str>)], out: &mut BytesMut) -> bool {
    let mut first = true;
    for (key, value) in fields {
        let Some(v) = value else { continue };
        if !first {
            out.put_u8(b',');
        }
        first = false;
        out.put_u8(b'"');
        out.extend_from_slice(key);
        out.extend_from_slice(b"\":");
        string(v, out);
    }
    !first
}

fn resource(r: &Resource<'_>, out: &mut BytesMut) {
    out.put_u8(b'{');
    let any = members(
        &[
            (b"id", r.id.as_deref()),
            (b"name", r.name.as_deref()),
            (b"type", r.kind.as_deref()),
            (b"region", r.region.as_deref()),
            (b"account_id", r.account_id.as_deref()),
            (b"account_name", r.account_name.as_deref()),
            (b"cloud", r.cloud.as_deref()),
        ],
        out,
    );
    if let Some(tags) = r.tags {
        if any {
            out.put_u8(b',');
        }
        out.extend_from_slice(b"\"tags\":");
        as_sent(tags, out);
    }
    out.put_u8(b'}');
}

fn network(n: &Network<'_>, out: &mut BytesMut) {
    out.put_u8(b'{');
    let mut any = members(&[(b"src_ip", n.src_ip.as_deref())], out);
    if let Some(port) = n.src_port {
        if any {
            out.put_u8(b',');
        }
        out.extend_from_slice(b"\"src_port\":");
        number(u64::from(port), out);
        any = true;
    }
    if any && (n.domain.is_some() || n.path.is_some() || n.method.is_some()) {
        out.put_u8(b',');
    }
    members(
        &[
            (b"domain", n.domain.as_deref()),
            (b"path", n.path.as_deref()),
            (b"method", n.method.as_deref()),
        ],
        out,
    );
    out.put_u8(b'}');
}

fn finding(f: &Finding<'_>, out: &mut BytesMut) {
    out.put_u8(b'{');
    let mut any = false;
    if f.policy_id.is_some() || f.policy_name.is_some() || f.policy_type.is_some() {
        out.extend_from_slice(b"\"policy\":{");
        members(
            &[
                (b"id", f.policy_id.as_deref()),
                (b"name", f.policy_name.as_deref()),
                (b"type", f.policy_type.as_deref()),
            ],
            out,
        );
        out.put_u8(b'}');
        any = true;
    }
    if f.rule.is_some() || f.type_code.is_some() {
        if any {
            out.put_u8(b',');
        }
        any |= members(
            &[
                (b"rule", f.rule.as_deref()),
                (b"type", f.type_code.as_deref()),
            ],
            out,
        );
    }
    for (key, at) in [
        (&b"first_seen"[..], f.first_seen),
        (b"last_seen", f.last_seen),
    ] {
        let Some(at) = at else { continue };
        if any {
            out.put_u8(b',');
        }
        any = true;
        out.put_u8(b'"');
        out.extend_from_slice(key);
        out.extend_from_slice(b"\":");
        time(at, out);
    }
    out.put_u8(b'}');
}

fn ocsf(o: Ocsf, out: &mut BytesMut) {
    out.extend_from_slice(b"{\"class_uid\":");
    number(u64::from(o.class_uid), out);
    out.extend_from_slice(b",\"category_uid\":");
    number(u64::from(o.category_uid), out);
    out.extend_from_slice(b",\"activity_id\":");
    number(u64::from(o.activity_id), out);
    out.extend_from_slice(b",\"type_uid\":");
    number(u64::from(o.type_uid()), out);
    out.put_u8(b'}');
}

/// The id as its `Display` writes it, as a JSON string. JSON escaping maps each character on
/// its own, so escaping the parts one after the other escapes the whole.
fn id(id: &EventId<'_>, out: &mut BytesMut) {
    out.put_u8(b'"');
    match id {
        EventId::Unset => {}
        EventId::Vendor(s) => contents(s, out),
        EventId::Hash(h) => out.extend_from_slice(h),
        EventId::Joined(id, word) => {
            contents(id, out);
            out.put_u8(b':');
            contents(word, out);
        }
        EventId::Pair(a, b) => {
            contents(a, out);
            out.put_u8(b':');
            contents(b, out);
        }
        EventId::Occurrence(id, word, n) => {
            contents(id, out);
            out.put_u8(b':');
            contents(word, out);
            out.put_u8(b':');
            signed(*n, out);
        }
        EventId::Change(id, word, reason, at) => {
            contents(id, out);
            out.put_u8(b':');
            contents(word, out);
            if let Some(r) = reason {
                out.put_u8(b':');
                contents(r, out);
            }
            if let Some(n) = at {
                out.put_u8(b':');
                signed(*n, out);
            }
        }
    }
    out.put_u8(b'"');
}

fn time(t: Timestamp, out: &mut BytesMut) {
    // RFC 3339 text is ASCII letters, digits and `-:.`, none of which JSON escapes.
    out.reserve(26);
    out.put_u8(b'"');
    out.extend_from_slice(&t.rfc3339_bytes());
    out.put_u8(b'"');
}

fn number(n: u64, out: &mut BytesMut) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    let mut n = n;
    loop {
        at -= 1;
        // n % 10 < 10: the cast cannot truncate.
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[at..]);
}

fn signed(n: i64, out: &mut BytesMut) {
    if n < 0 {
        out.put_u8(b'-');
    }
    number(n.unsigned_abs(), out);
}

/// One of siemgate's own words (a vocabulary's `as_str`, a product name) as a JSON string:
/// none holds a byte that needs an escape (the fixtures' byte-for-byte comparison with serde_json
/// covers every one a decoder sets), so it is copied between quotes unscanned.
fn word(s: &'static str, out: &mut BytesMut) {
    debug_assert!(
        special_in(s.as_bytes(), 0).is_none(),
        "{s:?} needs an escape"
    );
    out.reserve(s.len() + 2);
    out.put_u8(b'"');
    out.extend_from_slice(s.as_bytes());
    out.put_u8(b'"');
}

/// A JSON string: quotes around the escaped text.
fn string(s: &str, out: &mut BytesMut) {
    out.reserve(s.len() + 2);
    out.put_u8(b'"');
    contents(s, out);
    out.put_u8(b'"');
}

/// What serde_json writes for each byte: 0 for the byte itself, else the letter after the
/// backslash (`u` for `\u00xx`).
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = b'u';
        b += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The escaped text of `s`, without quotes: the runs between bytes that need an escape are
/// copied whole, found sixteen bytes at a time ([`special_in`]).
fn contents(s: &str, out: &mut BytesMut) {
    let bytes = s.as_bytes();
    let mut start = 0;
    while let Some(at) = special_in(bytes, start) {
        let b = bytes[at];
        out.extend_from_slice(&bytes[start..at]);
        let escape = ESCAPE[usize::from(b)];
        out.put_u8(b'\\');
        out.put_u8(escape);
        if escape == b'u' {
            out.extend_from_slice(b"00");
            out.put_u8(HEX[usize::from(b >> 4)]);
            out.put_u8(HEX[usize::from(b & 0x0f)]);
        }
        start = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ours(s: &str) -> String {
        let mut out = BytesMut::new();
        string(s, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut every: String = (0u8..0x80).map(char::from).collect();
        every.push_str("é€😀 / \u{7f}");
        for s in [
            "",
            "plain",
            "exactly8",
            "sixteen bytes ok",
            "\"",
            "a\\b",
            "tab\there",
            "line\nbreak and \r and \u{0}",
            "12345678\"12345678\\",
            "1234567\u{1f}",
            every.as_str(),
        ] {
            assert_eq!(ours(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn numbers_are_written_as_serde_json_writes_them() {
        for n in [0u64, 7, 10, 99, 100, 4_294_967_295, u64::MAX] {
            let mut out = BytesMut::new();
            number(n, &mut out);
            assert_eq!(&out[..], n.to_string().as_bytes());
        }
        for n in [0i64, -1, -1_700_000_000_000, i64::MIN, i64::MAX] {
            let mut out = BytesMut::new();
            signed(n, &mut out);
            assert_eq!(&out[..], n.to_string().as_bytes());
        }
    }
}
