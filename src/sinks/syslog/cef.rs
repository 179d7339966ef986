//! ArcSight CEF:0 bodies: the `CEF:0|...|` header and the `key=value` extension
//! (docs: notes/sinks-spec.md "CEF body"), shortened to a byte budget from the least important
//! extension pair backwards. Severity, event name and the budgeted attribute writer are shared
//! with the LEEF encoder ([`super::leef`]).
//!
//! Escaping (Micro Focus / ArcSight "Implementing ArcSight Common Event Format (CEF)", rules for
//! special characters in the prefix and in the extension; CR/LF in the header per the siemgate
//! sinks contract):
//! * Header (prefix) fields: `\` -> `\\` and `|` -> `\|`. Newlines are not allowed in the
//!   header, so CR and LF become a space.
//! * Extension values: `\` -> `\\`, `=` -> `\=`, LF -> `\n` and CR -> `\r` (each a backslash
//!   followed by a letter: two bytes). `|` needs no escape in the extension. Pairs are separated
//!   by one space; spaces inside values are legal (a value runs until the next ` key=`).
//! * Every other C0 control (tab included), DEL, and the Unicode line breaks U+0085, U+2028
//!   and U+2029 become a space, in the header and in values (the LEEF rule, see
//!   [`super::leef`]): CEF has no escape for them, and raw they cut or corrupt messages.

use bytes::{BufMut, BytesMut};

use super::leef::{event_name, int_digits, is_control, put_escaped, sev10, Attrs, VERSION};
use crate::normalize::Event;

/// Longest title written as the header's Name (ArcSight CEF: 512 characters).
const MAX_NAME_BYTES: usize = 512;

/// Header field rule: `\` -> `\\`, `|` -> `\|`, controls (CR/LF included) -> space.
fn header_escape(b: u8) -> Option<&'static [u8]> {
    match b {
        b'\\' => Some(b"\\\\"),
        b'|' => Some(b"\\|"),
        b if is_control(b) => Some(b" "),
        _ => None,
    }
}

/// Extension value rule: `\` -> `\\`, `=` -> `\=`, LF -> `\n`, CR -> `\r`, other controls
/// -> space.
fn value_escape(b: u8) -> Option<&'static [u8]> {
    match b {
        b'\\' => Some(b"\\\\"),
        b'=' => Some(b"\\="),
        b'\n' => Some(b"\\n"),
        b'\r' => Some(b"\\r"),
        b if is_control(b) => Some(b" "),
        _ => None,
    }
}

/// Appends the CEF:0 body of `event` (header and extension; no syslog header, no newline) to
/// `out`, keeping the body within `budget` bytes by dropping extension pairs from the end
/// (`msg` first) and cutting the last one kept on a character boundary, never inside an
/// escape. A `csN` value and its `csNLabel` are kept or dropped together. The header is never
/// cut: when it alone exceeds `budget` it is written whole with an empty extension.
///
/// Returns true when the body was shortened (some pair dropped or cut).
pub fn encode(event: &Event<'_>, budget: usize, out: &mut BytesMut) -> bool {
    let start = out.len();
    out.extend_from_slice(b"CEF:0|siemgate|");
    put_escaped(out, event.product.as_bytes(), &header_escape);
    out.put_u8(b'|');
    put_escaped(out, VERSION.as_bytes(), &header_escape);
    out.put_u8(b'|');
    event_name(event, out);
    out.put_u8(b'|');
    match event.title.as_deref() {
        Some(title) if !title.is_empty() => {
            // ArcSight's Name field holds at most 512 characters; the full title is the
            // receiver's problem otherwise, and it would make the header uncuttable.
            let name = super::char_prefix(title, MAX_NAME_BYTES);
            put_escaped(out, name.as_bytes(), &header_escape);
        }
        _ => event_name(event, out),
    }
    out.put_u8(b'|');
    let mut buf = [0u8; 20];
    // CEF's Severity takes 0-10 or the words Unknown, Low, Medium, High, Very-High.
    match sev10(event.severity) {
        Some(sev) => out.extend_from_slice(int_digits(i64::from(sev), &mut buf)),
        None => out.extend_from_slice(b"Unknown"),
    }
    out.put_u8(b'|');

    let esc = value_escape;
    let net = &event.network;
    let res = &event.resource;
    let mut a = Attrs::new(out, start, budget, b' ', true);
    a.int("rt", event.time.0);
    a.display("externalId", &event.id, &esc);
    a.str("cat", Some(event.kind.as_str()), &esc);
    a.str("outcome", Some(event.status.as_str()), &esc);
    a.str("act", event.disposition.map(|d| d.as_str()), &esc);
    a.str("src", net.src_ip.as_deref(), &esc);
    if let Some(port) = net.src_port {
        a.int("spt", i64::from(port));
    }
    a.str("dhost", net.domain.as_deref(), &esc);
    a.str("request", net.path.as_deref(), &esc);
    a.str("requestMethod", net.method.as_deref(), &esc);
    // A label travels with its value: one attribute whose "key" is `csNLabel=<label> csN`.
    a.str("cs1Label=resourceId cs1", res.id.as_deref(), &esc);
    a.str("cs2Label=resourceType cs2", res.kind.as_deref(), &esc);
    a.str("cs3Label=region cs3", res.region.as_deref(), &esc);
    a.str("cs4Label=account cs4", res.account_id.as_deref(), &esc);
    a.str("cs5Label=cloud cs5", res.cloud.as_deref(), &esc);
    a.str(
        "cs6Label=vendorSeverity cs6",
        event.vendor_severity.as_deref(),
        &esc,
    );
    let f = &event.finding;
    a.str(
        "flexString1Label=policyId flexString1",
        f.policy_id.as_deref(),
        &esc,
    );
    a.str(
        "flexString2Label=attackType flexString2",
        f.type_code.as_deref(),
        &esc,
    );
    a.str("reason", event.status_detail.as_deref(), &esc);
    if let Some(t) = f.first_seen {
        a.int("start", t.0);
    }
    if let Some(t) = f.last_seen {
        a.int("end", t.0);
    }
    a.str("deviceExternalId", Some(event.source), &esc);
    // Keys with no CEF dictionary home, as custom extension keys.
    a.str("policyType", f.policy_type.as_deref(), &esc);
    a.str("alertRule", f.rule.as_deref(), &esc);
    a.str("vendorCloud", event.vendor_cloud.as_deref(), &esc);
    a.str("resourceTags", res.tags.map(|t| t.get()), &esc);
    a.str("remediation", event.remediation.as_deref(), &esc);
    a.str("msg", event.description.as_deref(), &esc);
    a.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::normalize::{EventId, Kind, Severity, Status, Timestamp};
    use crate::vendors::Vendor;
    use proptest::prelude::*;
    use serde_json::value::RawValue;

    fn raw() -> &'static RawValue {
        serde_json::from_str::<&RawValue>("{}").unwrap()
    }

    fn full(raw: &RawValue) -> Event<'_> {
        let mut e = Event::new(Vendor::Wallarm, "wallarm-eu", raw, Timestamp(9));
        e.id = EventId::Pair("7".into(), "abc".into());
        e.time = Timestamp(1_700_000_000_123);
        e.kind = Kind::Attack;
        e.status = Status::New;
        e.severity = Severity::Critical;
        e.vendor_severity = Some("critical".into());
        e.title = Some("SQL injection".into());
        e.description = Some("Blocked 3 requests".into());
        e.url = Some("https://my.wallarm.com/attacks/7".into());
        e.resource.id = Some("app-1".into());
        e.resource.name = Some("shop".into());
        e.resource.kind = Some("application".into());
        e.resource.region = Some("eu".into());
        e.resource.account_id = Some("42".into());
        e.resource.account_name = Some("acme".into());
        e.resource.cloud = Some("wallarm".into());
        e.network.src_ip = Some("198.51.100.9".into());
        e.network.src_port = Some(5555);
        e.network.domain = Some("shop.example.com".into());
        e.network.path = Some("/search".into());
        e.network.method = Some("GET".into());
        e
    }

    fn encode_str(e: &Event<'_>, budget: usize) -> (String, bool) {
        let mut out = BytesMut::new();
        let cut = encode(e, budget, &mut out);
        (String::from_utf8(out.to_vec()).unwrap(), cut)
    }

    #[derive(Debug)]
    struct Parsed {
        /// The 7 header fields, unescaped (`CEF:0`, vendor, product, version, id, name, sev).
        header: Vec<String>,
        header_len: usize,
        /// Extension pairs, values unescaped.
        ext: Vec<(String, String)>,
    }

    /// Splits the header on unescaped `|` (unescaping `\|` and `\\`), then the extension on
    /// ` key=` boundaries (an unescaped `=` and the word before it).
    fn parse(body: &str) -> Parsed {
        let b = body.as_bytes();
        let mut header = Vec::new();
        let mut field = Vec::new();
        let mut i = 0;
        while header.len() < 7 {
            assert!(i < b.len(), "header ends early: {body}");
            match b[i] {
                b'\\' => {
                    let next = b[i + 1];
                    assert!(next == b'\\' || next == b'|', "bad header escape: {body}");
                    field.push(next);
                    i += 2;
                }
                b'|' => {
                    header.push(String::from_utf8(std::mem::take(&mut field)).unwrap());
                    i += 1;
                }
                c => {
                    assert!(c != b'\r' && c != b'\n');
                    field.push(c);
                    i += 1;
                }
            }
        }
        assert_eq!(header[0], "CEF:0");
        let header_len = i;
        Parsed {
            header,
            header_len,
            ext: parse_ext(&body[i..]),
        }
    }

    fn parse_ext(ext: &str) -> Vec<(String, String)> {
        let b = ext.as_bytes();
        assert!(!ext.contains(['\r', '\n']), "{ext:?}");
        let mut eqs = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'\\' => {
                    assert!(i + 1 < b.len(), "lone trailing backslash: {ext:?}");
                    i += 2;
                }
                b'=' => {
                    eqs.push(i);
                    i += 1;
                }
                _ => i += 1,
            }
        }
        let mut keys: Vec<(usize, usize)> = Vec::new();
        for &q in &eqs {
            let ks = ext[..q].rfind(' ').map_or(0, |s| s + 1);
            if let Some(&(_, prev)) = keys.last() {
                assert!(ks > prev + 1, "empty value before {:?}", &ext[ks..q]);
            } else {
                assert_eq!(ks, 0, "text before the first key: {ext:?}");
            }
            keys.push((ks, q));
        }
        let mut pairs = Vec::new();
        for (n, &(ks, q)) in keys.iter().enumerate() {
            let end = keys.get(n + 1).map_or(ext.len(), |&(next, _)| next - 1);
            let key = &ext[ks..q];
            assert!(
                !key.is_empty() && key.bytes().all(|c| c.is_ascii_alphanumeric()),
                "{key:?}"
            );
            let value = unescape(&ext[q + 1..end]);
            assert!(!value.is_empty(), "empty value for {key}");
            pairs.push((key.to_owned(), value));
        }
        pairs
    }

    fn unescape(v: &str) -> String {
        let mut out = String::new();
        let mut it = v.chars();
        while let Some(c) = it.next() {
            if c == '\\' {
                match it.next() {
                    Some('\\') => out.push('\\'),
                    Some('=') => out.push('='),
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    other => panic!("bad escape \\{other:?} in {v:?}"),
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    fn get<'p>(p: &'p Parsed, key: &str) -> Option<&'p str> {
        p.ext
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn typical_event_exact() {
        let raw = raw();
        let e = full(raw);
        let (body, cut) = encode_str(&e, 65_000);
        assert!(!cut);
        let expected = format!(
            "CEF:0|siemgate|Wallarm|{VERSION}|wallarm:attack:new|SQL injection|10|\
             rt=1700000000123 externalId=7:abc cat=attack outcome=new src=198.51.100.9 \
             spt=5555 dhost=shop.example.com request=/search requestMethod=GET \
             cs1Label=resourceId cs1=app-1 cs2Label=resourceType cs2=application \
             cs3Label=region cs3=eu cs4Label=account cs4=42 cs5Label=cloud cs5=wallarm \
             cs6Label=vendorSeverity cs6=critical deviceExternalId=wallarm-eu \
             msg=Blocked 3 requests"
        );
        assert_eq!(body, expected);
        let p = parse(&body);
        assert_eq!(
            p.header,
            [
                "CEF:0",
                "siemgate",
                "Wallarm",
                VERSION,
                "wallarm:attack:new",
                "SQL injection",
                "10"
            ]
        );
        assert_eq!(p.ext.len(), 23);
        assert_eq!(get(&p, "msg"), Some("Blocked 3 requests"));
        assert_eq!(get(&p, "cs4Label"), Some("account"));
    }

    #[test]
    fn minimal_event_name_stands_in_for_title_and_labels_follow_values() {
        let raw = raw();
        let mut e = Event::new(Vendor::PrismaCloud, "p", raw, Timestamp(0));
        e.severity = Severity::Medium;
        e.resource.region = Some("us-west-2".into());
        e.title = Some("".into());
        let (body, cut) = encode_str(&e, 65_000);
        assert!(!cut);
        assert_eq!(
            body,
            format!(
                "CEF:0|siemgate|Prisma Cloud|{VERSION}|prisma_cloud:alert:new|\
                 prisma_cloud:alert:new|5|rt=0 cat=alert outcome=new \
                 cs3Label=region cs3=us-west-2 deviceExternalId=p"
            )
        );
    }

    #[test]
    fn unknown_severity_is_the_word_unknown() {
        let raw = raw();
        let e = Event::new(Vendor::Immuta, "i", raw, Timestamp(0));
        assert_eq!(e.severity, Severity::Unknown);
        let (body, _) = encode_str(&e, 65_000);
        assert_eq!(parse(&body).header[6], "Unknown", "{body}");
    }

    const NASTY: &str = "a^b|c=d\\e\rf\ng\th – Zugriff verweigert – ü 日本 \\";

    fn nasty(raw: &RawValue) -> Event<'_> {
        let mut e = full(raw);
        e.title = Some(NASTY.into());
        e.description = Some(NASTY.into());
        e.network.path = Some("/a=b?c=d|e\\".into());
        e.id = EventId::Vendor("id=with|pipe\\".into());
        e.product = "Odd|Prod\\uct\r\n";
        e
    }

    #[test]
    fn special_characters_round_trip() {
        let raw = raw();
        let e = nasty(raw);
        let (body, cut) = encode_str(&e, 65_000);
        assert!(!cut);
        assert!(!body.contains(['\r', '\n']), "{body:?}");
        assert!(body.contains("|Odd\\|Prod\\\\uct  |"), "{body}");
        assert!(
            body.contains("msg=a^b|c\\=d\\\\e\\rf\\ng h – Zugriff verweigert – ü 日本 \\\\"),
            "{body}"
        );
        let p = parse(&body);
        assert_eq!(p.header[2], "Odd|Prod\\uct  ");
        // Header: CR/LF/tab -> space, the rest back as it was.
        assert_eq!(
            p.header[5],
            "a^b|c=d\\e f g h – Zugriff verweigert – ü 日本 \\"
        );
        // Values: CR/LF escaped (`\r`, `\n`), tab -> space.
        assert_eq!(get(&p, "msg"), Some(NASTY.replace('\t', " ").as_str()));
        assert_eq!(get(&p, "request"), Some("/a=b?c=d|e\\"));
        assert_eq!(get(&p, "externalId"), Some("id=with|pipe\\"));
        assert_eq!(p.ext.len(), 23);
    }

    fn check_labels(p: &Parsed) {
        for (n, (k, _)) in p.ext.iter().enumerate() {
            if let Some(num) = k.strip_suffix("Label") {
                assert_eq!(
                    p.ext.get(n + 1).map(|(k, _)| k.as_str()),
                    Some(num),
                    "{k} without its value"
                );
            }
            if k.starts_with("cs") && !k.ends_with("Label") {
                assert_eq!(p.ext[n - 1].0, format!("{k}Label"));
            }
        }
    }

    fn check_cut(full_body: &str, out: &[u8], prefix: &[u8], budget: usize, cut: bool) {
        assert!(out.starts_with(prefix));
        let body = std::str::from_utf8(&out[prefix.len()..]).expect("valid UTF-8");
        let full_p = parse(full_body);
        let p = parse(body);
        assert_eq!(&body[..p.header_len], &full_body[..full_p.header_len]);
        assert_eq!(cut, full_body.len() > budget, "budget {budget}");
        check_labels(&p);
        // No lone trailing backslash (parse_ext checks too) and no half escape.
        let trailing = body.bytes().rev().take_while(|&c| c == b'\\').count();
        assert_eq!(trailing % 2, 0, "{body}");
        if full_body.len() <= budget {
            assert_eq!(body, full_body);
            return;
        }
        if p.header_len >= budget {
            assert_eq!(body.len(), p.header_len);
            return;
        }
        assert!(body.len() <= budget);
        if let Some(((lk, lv), rest)) = p.ext.split_last() {
            assert_eq!(rest, &full_p.ext[..rest.len()]);
            let (fk, fv) = &full_p.ext[rest.len()];
            assert_eq!(lk, fk);
            assert!(
                !lv.is_empty() && fv.starts_with(lv.as_str()),
                "{lv:?} / {fv:?}"
            );
        }
    }

    #[test]
    fn truncation_every_budget() {
        let raw = raw();
        for e in [nasty(raw), full(raw)] {
            let (full_body, _) = encode_str(&e, usize::MAX);
            let header_len = parse(&full_body).header_len;
            let prefix = b"<13>Jan  2 03:04:05 gw siemgate: ";
            for budget in 0..=full_body.len() + 2 {
                let mut out = BytesMut::from(&prefix[..]);
                let cut = encode(&e, budget, &mut out);
                check_cut(&full_body, &out, prefix, budget, cut);
                if budget >= header_len {
                    assert!(out.len() - prefix.len() <= budget);
                }
            }
        }
    }

    #[test]
    fn truncation_never_splits_an_escape() {
        let raw = raw();
        let mut e = Event::new(Vendor::Generic, "s", raw, Timestamp(0));
        e.description = Some("\\=\n\r".repeat(50).into());
        let (full_body, _) = encode_str(&e, usize::MAX);
        let msg_at = full_body.find("msg=").unwrap() + 4;
        for budget in msg_at + 2..full_body.len() {
            let (body, cut) = encode_str(&e, budget);
            assert!(cut);
            assert!(
                body.len() <= budget && body.len() + 2 > budget,
                "{budget}: {body}"
            );
            // Every escape is whole: the value is an even number of bytes of `\x` pairs.
            assert_eq!((body.len() - msg_at) % 2, 0, "{body}");
            let p = parse(&body);
            assert!("\\=\n\r".repeat(50).starts_with(get(&p, "msg").unwrap()));
        }
        // One byte of room: `\` alone would dangle, so msg is dropped whole.
        let (body, _) = encode_str(&e, msg_at + 1);
        assert!(body.ends_with("deviceExternalId=s"), "{body}");
    }

    #[test]
    fn a_huge_value_is_never_written_whole() {
        let raw = raw();
        let mut e = full(raw);
        e.description = Some("=\\\n日".repeat(200_000).into());
        let prefix = b"<13>1 - ";
        let mut out = BytesMut::with_capacity(prefix.len() + 480 + 64);
        out.extend_from_slice(prefix);
        let (ptr, cap) = (out.as_ptr(), out.capacity());
        assert!(encode(&e, 480, &mut out));
        assert_eq!((out.as_ptr(), out.capacity()), (ptr, cap));
        assert!(out.len() - prefix.len() <= 480);
    }

    #[test]
    fn truncation_drops_msg_first_and_header_stays_whole() {
        let raw = raw();
        let mut e = full(raw);
        e.description = Some("Zugriff verweigert – ü 日本 ".repeat(200).into());
        let (body, cut) = encode_str(&e, 480);
        assert!(cut);
        assert!(body.len() <= 480 && body.len() > 476);
        let p = parse(&body);
        assert_eq!(p.ext.len(), 23);
        assert_eq!(get(&p, "deviceExternalId"), Some("wallarm-eu"));

        // A budget that ends inside a cs unit drops the label with the value.
        let (full_body, _) = encode_str(&e, usize::MAX);
        let at = full_body.find(" cs2Label").unwrap();
        for budget in at..at + " cs2Label=resourceType cs2=".len() + 1 {
            let (body, cut) = encode_str(&e, budget);
            assert!(cut);
            assert!(body.ends_with("cs1=app-1"), "{budget}: {body}");
        }

        let (body, cut) = encode_str(&e, 0);
        assert!(cut);
        assert_eq!(
            body,
            format!("CEF:0|siemgate|Wallarm|{VERSION}|wallarm:attack:new|SQL injection|10|")
        );
    }

    #[test]
    fn controls_and_unicode_breaks_become_spaces_in_header_and_values() {
        let raw = raw();
        let mut e = full(raw);
        let controls = super::super::leef::tests::CONTROLS;
        e.title = Some(controls.into());
        e.description = Some(format!("{controls} tail").into());
        let (body, cut) = encode_str(&e, 65_000);
        assert!(!cut);
        let bad = body
            .char_indices()
            .find(|&(_, c)| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'));
        assert_eq!(bad, None, "{body:?}");
        let p = parse(&body);
        // Header: every control -> space; values: CR/LF keep CEF's own escapes.
        assert_eq!(p.header[5], "n e b v f d x t r l N L P end");
        let want = "n e b v f d x t r\rl\nN L P end tail";
        assert_eq!(get(&p, "msg"), Some(want));
        assert_eq!(p.ext.len(), 23);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn prop_round_trip_and_cut(
            title in "[a-z^|=\\\\\t\r\n üß日本-]{0,30}",
            desc in "[a-z^|=\\\\\t\r\n üß日本😀-]{0,120}",
            path in "[a-z/^=|?&\\\\ ]{0,20}",
            budget in 0usize..600,
        ) {
            let raw = raw();
            let mut e = full(raw);
            e.title = Some(title.as_str().into());
            e.description = Some(desc.as_str().into());
            e.network.path = Some(path.as_str().into());
            let (full_body, cut) = encode_str(&e, usize::MAX);
            prop_assert!(!cut);
            let p = parse(&full_body);
            let name = if title.is_empty() {
                "wallarm:attack:new".to_owned()
            } else {
                title.replace(['\r', '\n', '\t'], " ")
            };
            prop_assert_eq!(&p.header[5], &name);
            let msg = desc.replace('\t', " ");
            prop_assert_eq!(get(&p, "msg"), Some(msg.as_str()).filter(|s| !s.is_empty()));
            prop_assert_eq!(get(&p, "request"), Some(path.as_str()).filter(|s| !s.is_empty()));
            let mut out = BytesMut::new();
            let cut = encode(&e, budget, &mut out);
            check_cut(&full_body, &out, b"", budget, cut);
        }
    }
}
