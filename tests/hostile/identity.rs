//! Hostile-input tests: identity (see tests/hostile.rs).
//!
//! * `control_characters_reach_syslog_as_spaces`: an event whose title and description carry
//!   NUL, ESC, BEL, VT, FF, DEL, tab, CR, LF, U+0085, U+2028 and U+2029 goes through the real
//!   binary to loopback syslog receivers as LEEF, CEF and JSON: every message parses strictly,
//!   holds no raw control, the characters arrive as spaces (CEF keeps `\r`/`\n` escapes, JSON
//!   its `\u` escapes) and nothing after a NUL is lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/binary.rs"]
mod binary;
#[path = "../common/syslog.rs"]
mod syslog;

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::json;

use crate::common::{post, send};
use binary::Process;
use syslog::{first_control, parse_cef, parse_leef, parse_rfc5424, Framing, StreamReceiver};

/// Bound on waiting for a sink to deliver (or to give up).
const BOUND: Duration = Duration::from_secs(10);

/// Polls `f` every 20 ms until it holds or `BOUND` passes; returns whether it held.
async fn within_bound(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + BOUND;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

// ---------------------------------------------------------------------------------------------
// Control characters in syslog bodies
// ---------------------------------------------------------------------------------------------

/// Each character receivers and consoles trip over, between letters.
const CONTROLS: &str = "n\0e\x1bb\x07v\x0bf\x0cd\x7ft\tr\rl\nN\u{85}L\u{2028}P\u{2029}end";
/// `CONTROLS` as LEEF and CEF headers carry it: every one of them a space.
const SPACED: &str = "n e b v f d t r l N L P end";

/// A `[[sinks]]` table of type syslog over TCP, no linger; `keys` are more `key = value` lines.
fn syslog_sink(id: &str, addr: std::net::SocketAddr, keys: &str) -> String {
    format!(
        r#"
[[sinks]]
id = "{id}"
type = "syslog"
address = "{addr}"
transport = "tcp"
{keys}
[sinks.batch]
linger = "0ms"
"#
    )
}

#[tokio::test]
async fn control_characters_reach_syslog_as_spaces() {
    let leef = StreamReceiver::tcp(Framing::OctetCounting).await;
    let cef = StreamReceiver::tcp(Framing::OctetCounting).await;
    let jsonr = StreamReceiver::tcp(Framing::Lf).await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
plaintext = true
{leef}{cef}{json}
[[sources]]
id = "odd"
vendor = "generic"
sinks = ["leef", "cef", "json"]
auth = {{ scheme = "token", header = "Authorization", prefix = "Bearer ", secret = "tok" }}
[sources.mapping]
id = "/id"
title = "/title"
description = "/desc"
"#,
        leef = syslog_sink("leef", leef.addr(), r#"format = "leef""#),
        cef = syslog_sink("cef", cef.addr(), r#"format = "cef""#),
        json = syslog_sink("json", jsonr.addr(), "format = \"json\"\nframing = \"lf\""),
    );
    let mut proc = Process::start(dir.path(), &config, &[]);
    let [hooks] = proc.wait_ready(["hooks"]);

    let body = json!({"id": "ctl-1", "title": CONTROLS, "desc": format!("{CONTROLS} tail")});
    let a = send(
        hooks,
        post(
            hooks,
            "odd",
            &[("authorization", "Bearer tok")],
            body.to_string(),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");

    for (name, r) in [("leef", &leef), ("cef", &cef), ("json", &jsonr)] {
        assert!(
            within_bound(|| r.count() >= 1).await,
            "{name}: no message; stderr:\n{}",
            proc.stderr_text()
        );
        assert_eq!(r.errors(), Vec::<String>::new(), "{name}: framing errors");
        assert_eq!(r.count(), 1, "{name}: one event, one message");
    }

    let msg = |r: &StreamReceiver| {
        let m = r.messages().remove(0);
        let text = m.text().to_owned();
        assert_eq!(
            first_control(&text),
            None,
            "a raw control on the wire: {text:?}"
        );
        let p = parse_rfc5424(&m.bytes).unwrap_or_else(|e| panic!("not RFC 5424 ({e}): {text:?}"));
        p.msg_str().to_owned()
    };

    let l = parse_leef(&msg(&leef)).unwrap();
    assert_eq!(l.get("policy"), Some(SPACED));
    assert_eq!(
        l.get("description"),
        Some(format!("{SPACED} tail").as_str()),
        "the last attribute arrives whole"
    );
    assert_eq!(l.get("externalId"), Some("ctl-1"));

    let c = parse_cef(&msg(&cef)).unwrap();
    assert_eq!(c.name, SPACED);
    // Extension values keep CEF's own `\r` and `\n` escapes for CR and LF.
    assert_eq!(
        c.get("msg"),
        Some("n e b v f d t r\rl\nN L P end tail"),
        "the last pair arrives whole"
    );

    let j: serde_json::Value = serde_json::from_str(&msg(&jsonr)).unwrap();
    assert_eq!(j["title"], CONTROLS, "JSON keeps the text, escaped");
    assert_eq!(j["description"], format!("{CONTROLS} tail"));
}
