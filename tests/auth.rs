//! End to end over plaintext HTTP/1.1, every auth scheme in a source of its own: token (custom
//! header and Bearer), basic, hmac_sha256 (hex with prefix, base64, signed timestamp) and
//! standard_webhooks, each with rotated secrets, missing/wrong credentials, tampered bodies and
//! stale/future timestamps; allowed_ips; error bodies never echo a secret; only accepted events
//! reach the sink; `siemgate_auth_failures_total` counts every failure by source and reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::*;
use http::StatusCode;

const TOKEN_OLD: &str = "tok-old-7f3a9c";
const TOKEN_NEW: &str = "tok-new-b21e58";
const BASIC_USER: &str = "alice";
const BASIC_OLD: &str = "basic-old-pw-4410";
const BASIC_NEW: &str = "basic-new-pw-9923";
const HMAC_OLD: &str = "hmac-old-secret-51c0";
const HMAC_NEW: &str = "hmac-new-secret-e7d4";
const WRONG: &str = "not-the-secret-0000";
/// Standard Webhooks keys (the secrets are `whsec_` + base64 of these).
const SWH_OLD_KEY: &[u8] = b"swh-old-signing-key-3141";
const SWH_NEW_KEY: &[u8] = b"swh-new-signing-key-2718";
const SWH_WRONG_KEY: &[u8] = b"swh-wrong-signing-key-000";

fn whsec(key: &[u8]) -> String {
    format!("whsec_{}", STANDARD.encode(key))
}

/// Every secret value configured, in the forms a leak could take.
fn all_secrets() -> Vec<String> {
    let mut s: Vec<String> = [
        TOKEN_OLD, TOKEN_NEW, BASIC_OLD, BASIC_NEW, HMAC_OLD, HMAC_NEW,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for key in [SWH_OLD_KEY, SWH_NEW_KEY] {
        s.push(whsec(key));
        s.push(STANDARD.encode(key));
        s.push(String::from_utf8(key.to_vec()).unwrap());
    }
    s
}

fn config() -> String {
    format!(
        r#"{PLAIN_SERVER}{FILE_SINK}
[[sources]]
id = "token_header"
sinks = ["out"]
auth = {{ scheme = "token", header = "X-Auth-Token", secrets = ["{TOKEN_OLD}", "{TOKEN_NEW}"] }}

[[sources]]
id = "token_bearer"
sinks = ["out"]
auth = {{ scheme = "token", prefix = "Bearer ", secrets = ["{TOKEN_OLD}", "{TOKEN_NEW}"] }}

[[sources]]
id = "basic"
sinks = ["out"]
[sources.auth]
scheme = "basic"
credentials = [
  {{ username = "{BASIC_USER}", password = "{BASIC_OLD}" }},
  {{ username = "{BASIC_USER}", password = "{BASIC_NEW}" }},
]

[[sources]]
id = "hmac_hex"
sinks = ["out"]
[sources.auth]
scheme = "hmac_sha256"
header = "X-Hub-Signature-256"
encoding = "hex"
prefix = "sha256="
secrets = ["{HMAC_OLD}", "{HMAC_NEW}"]

[[sources]]
id = "hmac_b64"
sinks = ["out"]
[sources.auth]
scheme = "hmac_sha256"
header = "X-Signature"
encoding = "base64"
secrets = ["{HMAC_OLD}", "{HMAC_NEW}"]

[[sources]]
id = "hmac_ts"
sinks = ["out"]
[sources.auth]
scheme = "hmac_sha256"
header = "X-Signature"
encoding = "hex"
timestamp_header = "X-Timestamp"
tolerance = "5m"
secrets = ["{HMAC_OLD}", "{HMAC_NEW}"]

[[sources]]
id = "swh"
sinks = ["out"]
auth = {{ scheme = "standard_webhooks", tolerance = "5m", secrets = ["{swh_old}", "{swh_new}"] }}

[[sources]]
id = "ip_denied"
sinks = ["out"]
allowed_ips = ["10.0.0.0/8"]
auth = {{ scheme = "token", prefix = "Bearer ", secret = "{TOKEN_NEW}" }}

[[sources]]
id = "ip_allowed"
sinks = ["out"]
allowed_ips = ["127.0.0.1/32"]
auth = {{ scheme = "token", prefix = "Bearer ", secret = "{TOKEN_NEW}" }}
"#,
        swh_old = whsec(SWH_OLD_KEY),
        swh_new = whsec(SWH_NEW_KEY),
    )
}

/// `webhook-signature` entry for Standard Webhooks: `v1,` + base64(HMAC(key, id.ts.body)).
fn swh_sig(key: &[u8], id: &str, ts: u64, body: &str) -> String {
    let tag = hmac_sha256(key, &[format!("{id}.{ts}.").as_bytes(), body.as_bytes()]);
    format!("v1,{}", STANDARD.encode(tag))
}

fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{pass}")))
}

type Headers = Vec<(String, String)>;

fn h(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// One gateway with the full config, and what the test expects of it: the ids of accepted
/// events, the ids of refused ones, and the auth failures by source and reason.
struct Run {
    gw: TestGateway,
    next: usize,
    accepted: Vec<String>,
    refused: Vec<String>,
    failures: BTreeMap<(String, &'static str), u64>,
    secrets: Vec<String>,
}

impl Run {
    async fn new() -> Run {
        Run {
            gw: start(&config()).await,
            next: 0,
            accepted: Vec::new(),
            refused: Vec::new(),
            failures: BTreeMap::new(),
            secrets: all_secrets(),
        }
    }

    /// A fresh one-event body with a unique id.
    fn body(&mut self, source: &str) -> (String, String) {
        self.next += 1;
        let id = format!("{source}-{}", self.next);
        let body = format!(r#"{{"id":"{id}","severity":"high"}}"#);
        (id, body)
    }

    async fn send(&self, source: &str, headers: &Headers, body: &str) -> Answer {
        let addr = self.gw.addr();
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        send(addr, post(addr, source, &pairs, body.to_owned())).await
    }

    /// Sends `body` (whose event id is `id`) and expects 200 {"accepted":1}.
    async fn ok(
        &mut self,
        what: &str,
        source: &str,
        headers: Headers,
        (id, body): (String, String),
    ) {
        let a = self.send(source, &headers, &body).await;
        assert_eq!(a.status, StatusCode::OK, "{source}: {what}: {:?}", a.body);
        assert_eq!(
            a.json(),
            serde_json::json!({"accepted": 1}),
            "{source}: {what}"
        );
        self.accepted.push(id);
    }

    /// Sends `body` and expects a refusal with `status` and `reason`, whose body names no secret.
    async fn refused(
        &mut self,
        what: &str,
        source: &str,
        headers: Headers,
        (id, body): (String, String),
        status: StatusCode,
        reason: &'static str,
    ) {
        let a = self.send(source, &headers, &body).await;
        assert_eq!(a.status, status, "{source}: {what}: {:?}", a.body);
        let j = a.json();
        assert_eq!(j["error"], reason, "{source}: {what}: {j}");
        assert!(
            j["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{source}: {what}: {j}"
        );
        let text = String::from_utf8_lossy(&a.body);
        for s in &self.secrets {
            assert!(
                !text.contains(s.as_str()),
                "{source}: {what}: body {text} has a secret"
            );
        }
        for (_, v) in headers.iter().filter(|(_, v)| v.len() >= 8) {
            // A presented credential is not echoed either.
            assert!(
                !text.contains(v.as_str()),
                "{source}: {what}: body {text} echoes {v}"
            );
        }
        *self
            .failures
            .entry((source.to_owned(), reason))
            .or_default() += 1;
        self.refused.push(id);
    }

    /// Checks `siemgate_auth_failures_total` for `sources` against what was sent, then stops the
    /// gateway (which drains the queue) and checks that exactly the accepted events are in the
    /// sink.
    async fn finish(self, sources: &[&str]) {
        const REASONS: [&str; 6] = [
            "missing_credential",
            "invalid_credential",
            "malformed_credential",
            "timestamp_out_of_window",
            "ip_not_allowed",
            "client_cert_required",
        ];
        let (status, text) = get_text(self.gw.metrics_addr(), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        for source in sources {
            for reason in REASONS {
                let want = self
                    .failures
                    .get(&((*source).to_owned(), reason))
                    .copied()
                    .unwrap_or(0);
                let got = metric(
                    &text,
                    "siemgate_auth_failures_total",
                    &[("source", source), ("reason", reason)],
                )
                .unwrap_or(0.0);
                assert_eq!(got, want as f64, "auth failures {source}/{reason}");
            }
        }
        let n = self.accepted.len();
        let out = self.gw.out();
        eventually("accepted events in the sink", || {
            read_lines(&out).len() >= n
        })
        .await;
        let dir = self.gw.stop().await;
        let lines = read_lines(&dir.path().join("out.ndjson"));
        let mut got: Vec<String> = lines
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_owned())
            .collect();
        got.sort();
        let mut want = self.accepted.clone();
        want.sort();
        assert_eq!(got, want, "exactly the accepted events are in the sink");
        for id in &self.refused {
            assert!(!got.contains(id), "refused event {id} reached the sink");
        }
        for l in &lines {
            let line = l.to_string();
            for s in &self.secrets {
                assert!(!line.contains(s.as_str()), "event has a secret: {line}");
            }
        }
    }
}

const UNAUTHORIZED: StatusCode = StatusCode::UNAUTHORIZED;
const FORBIDDEN: StatusCode = StatusCode::FORBIDDEN;

#[tokio::test]
async fn token_in_a_custom_header_and_as_bearer() {
    let mut r = Run::new().await;

    let s = "token_header";
    let b = r.body(s);
    r.ok("first secret", s, h(&[("X-Auth-Token", TOKEN_OLD)]), b)
        .await;
    let b = r.body(s);
    r.ok(
        "second rotated secret",
        s,
        h(&[("x-auth-token", TOKEN_NEW)]),
        b,
    )
    .await;
    let b = r.body(s);
    r.refused("missing", s, h(&[]), b, UNAUTHORIZED, "missing_credential")
        .await;
    let b = r.body(s);
    // The token in another header is as good as missing.
    let hdr = h(&[("Authorization", &format!("Bearer {TOKEN_NEW}"))]);
    r.refused(
        "other header",
        s,
        hdr,
        b,
        UNAUTHORIZED,
        "missing_credential",
    )
    .await;
    let b = r.body(s);
    r.refused(
        "wrong",
        s,
        h(&[("X-Auth-Token", WRONG)]),
        b,
        FORBIDDEN,
        "invalid_credential",
    )
    .await;
    let b = r.body(s);
    let hdr = h(&[("X-Auth-Token", &format!("{TOKEN_NEW}x"))]);
    r.refused("longer", s, hdr, b, FORBIDDEN, "invalid_credential")
        .await;

    let s = "token_bearer";
    let b = r.body(s);
    let hdr = h(&[("Authorization", &format!("Bearer {TOKEN_OLD}"))]);
    r.ok("first secret", s, hdr, b).await;
    let b = r.body(s);
    let hdr = h(&[("Authorization", &format!("Bearer {TOKEN_NEW}"))]);
    r.ok("second rotated secret", s, hdr, b).await;
    let b = r.body(s);
    r.refused("missing", s, h(&[]), b, UNAUTHORIZED, "missing_credential")
        .await;
    let b = r.body(s);
    let hdr = h(&[("Authorization", &format!("Bearer {WRONG}"))]);
    r.refused("wrong", s, hdr, b, FORBIDDEN, "invalid_credential")
        .await;
    let b = r.body(s);
    // The right token without the prefix does not pass.
    let hdr = h(&[("Authorization", TOKEN_NEW)]);
    r.refused("no prefix", s, hdr, b, FORBIDDEN, "invalid_credential")
        .await;

    r.finish(&["token_header", "token_bearer"]).await;
}

#[tokio::test]
async fn basic_with_rotated_passwords() {
    let mut r = Run::new().await;
    let s = "basic";
    let b = r.body(s);
    r.ok(
        "first password",
        s,
        h(&[("Authorization", &basic(BASIC_USER, BASIC_OLD))]),
        b,
    )
    .await;
    let b = r.body(s);
    r.ok(
        "second password",
        s,
        h(&[("Authorization", &basic(BASIC_USER, BASIC_NEW))]),
        b,
    )
    .await;
    let b = r.body(s);
    r.refused("missing", s, h(&[]), b, UNAUTHORIZED, "missing_credential")
        .await;
    let b = r.body(s);
    let hdr = h(&[("Authorization", &basic(BASIC_USER, WRONG))]);
    r.refused("wrong password", s, hdr, b, FORBIDDEN, "invalid_credential")
        .await;
    let b = r.body(s);
    let hdr = h(&[("Authorization", &basic("mallory", BASIC_NEW))]);
    r.refused("wrong user", s, hdr, b, FORBIDDEN, "invalid_credential")
        .await;
    let b = r.body(s);
    let hdr = h(&[("Authorization", &format!("Bearer {BASIC_NEW}"))]);
    r.refused("not basic", s, hdr, b, FORBIDDEN, "malformed_credential")
        .await;
    r.finish(&["basic"]).await;
}

#[tokio::test]
async fn hmac_hex_with_prefix_and_base64() {
    let mut r = Run::new().await;

    let s = "hmac_hex";
    let sig = |key: &str, body: &str| {
        format!(
            "sha256={}",
            hex::encode(hmac_sha256(key.as_bytes(), &[body.as_bytes()]))
        )
    };
    let hn = "X-Hub-Signature-256";
    let b = r.body(s);
    r.ok("first secret", s, h(&[(hn, &sig(HMAC_OLD, &b.1))]), b)
        .await;
    let b = r.body(s);
    r.ok(
        "second rotated secret",
        s,
        h(&[(hn, &sig(HMAC_NEW, &b.1))]),
        b,
    )
    .await;
    let b = r.body(s);
    // Hex and prefix in upper case decode to the same tag.
    let upper = sig(HMAC_NEW, &b.1).to_ascii_uppercase();
    r.ok("upper case", s, h(&[(hn, &upper)]), b).await;
    let b = r.body(s);
    r.refused("missing", s, h(&[]), b, UNAUTHORIZED, "missing_credential")
        .await;
    let b = r.body(s);
    r.refused(
        "wrong secret",
        s,
        h(&[(hn, &sig(WRONG, &b.1))]),
        b,
        FORBIDDEN,
        "invalid_credential",
    )
    .await;
    let b = r.body(s);
    let other = r#"{"id":"something-else","severity":"low"}"#;
    r.refused(
        "tampered body",
        s,
        h(&[(hn, &sig(HMAC_NEW, other))]),
        b,
        FORBIDDEN,
        "invalid_credential",
    )
    .await;
    let b = r.body(s);
    let bare = sig(HMAC_NEW, &b.1).trim_start_matches("sha256=").to_owned();
    r.refused(
        "no prefix",
        s,
        h(&[(hn, &bare)]),
        b,
        FORBIDDEN,
        "malformed_credential",
    )
    .await;

    let s = "hmac_b64";
    let sig =
        |key: &str, body: &str| STANDARD.encode(hmac_sha256(key.as_bytes(), &[body.as_bytes()]));
    let hn = "X-Signature";
    let b = r.body(s);
    r.ok("first secret", s, h(&[(hn, &sig(HMAC_OLD, &b.1))]), b)
        .await;
    let b = r.body(s);
    r.ok(
        "second rotated secret",
        s,
        h(&[(hn, &sig(HMAC_NEW, &b.1))]),
        b,
    )
    .await;
    let b = r.body(s);
    r.refused("missing", s, h(&[]), b, UNAUTHORIZED, "missing_credential")
        .await;
    let b = r.body(s);
    // The hex form of the right tag is not accepted where base64 is configured.
    let wrong_enc = hex::encode(hmac_sha256(HMAC_NEW.as_bytes(), &[b.1.as_bytes()]));
    r.refused(
        "hex instead of base64",
        s,
        h(&[(hn, &wrong_enc)]),
        b,
        FORBIDDEN,
        "malformed_credential",
    )
    .await;
    let b = r.body(s);
    r.refused(
        "wrong secret",
        s,
        h(&[(hn, &sig(WRONG, &b.1))]),
        b,
        FORBIDDEN,
        "invalid_credential",
    )
    .await;
    let b = r.body(s);
    let other = r#"{"id":"something-else"}"#;
    r.refused(
        "tampered body",
        s,
        h(&[(hn, &sig(HMAC_OLD, other))]),
        b,
        FORBIDDEN,
        "invalid_credential",
    )
    .await;

    r.finish(&["hmac_hex", "hmac_b64"]).await;
}

#[tokio::test]
async fn hmac_with_signed_timestamp() {
    let mut r = Run::new().await;
    let s = "hmac_ts";
    let sig = |key: &str, ts: u64, body: &str| {
        hex::encode(hmac_sha256(
            key.as_bytes(),
            &[format!("{ts}.").as_bytes(), body.as_bytes()],
        ))
    };
    let hdrs = |sig: &str, ts: u64| h(&[("X-Signature", sig), ("X-Timestamp", &ts.to_string())]);

    let t = unix_now();
    let b = r.body(s);
    r.ok("first secret", s, hdrs(&sig(HMAC_OLD, t, &b.1), t), b)
        .await;
    let b = r.body(s);
    r.ok(
        "second rotated secret",
        s,
        hdrs(&sig(HMAC_NEW, t, &b.1), t),
        b,
    )
    .await;
    let b = r.body(s);
    let t2 = t - 60;
    r.ok("a minute old", s, hdrs(&sig(HMAC_NEW, t2, &b.1), t2), b)
        .await;

    let b = r.body(s);
    r.refused(
        "missing both",
        s,
        h(&[]),
        b,
        UNAUTHORIZED,
        "missing_credential",
    )
    .await;
    let b = r.body(s);
    let only_sig = h(&[("X-Signature", &sig(HMAC_NEW, t, &b.1))]);
    r.refused(
        "missing timestamp",
        s,
        only_sig,
        b,
        UNAUTHORIZED,
        "missing_credential",
    )
    .await;
    let b = r.body(s);
    let only_ts = h(&[("X-Timestamp", &t.to_string())]);
    r.refused(
        "missing signature",
        s,
        only_ts,
        b,
        UNAUTHORIZED,
        "missing_credential",
    )
    .await;
    let b = r.body(s);
    r.refused(
        "wrong secret",
        s,
        hdrs(&sig(WRONG, t, &b.1), t),
        b,
        FORBIDDEN,
        "invalid_credential",
    )
    .await;
    let b = r.body(s);
    let other = r#"{"id":"something-else"}"#;
    r.refused(
        "tampered body",
        s,
        hdrs(&sig(HMAC_NEW, t, other), t),
        b,
        FORBIDDEN,
        "invalid_credential",
    )
    .await;
    let b = r.body(s);
    // The signature covers the timestamp: a fresh timestamp on an old signature fails.
    let resigned = hdrs(&sig(HMAC_NEW, t - 1000, &b.1), t);
    r.refused(
        "timestamp swapped",
        s,
        resigned,
        b,
        FORBIDDEN,
        "invalid_credential",
    )
    .await;
    let b = r.body(s);
    // The body alone signed (no timestamp) does not pass either.
    let body_only = hex::encode(hmac_sha256(HMAC_NEW.as_bytes(), &[b.1.as_bytes()]));
    r.refused(
        "body-only signature",
        s,
        hdrs(&body_only, t),
        b,
        FORBIDDEN,
        "invalid_credential",
    )
    .await;

    for (what, ts) in [("stale", t - 600), ("future", t + 600)] {
        let b = r.body(s);
        let hd = hdrs(&sig(HMAC_NEW, ts, &b.1), ts);
        r.refused(what, s, hd, b, FORBIDDEN, "timestamp_out_of_window")
            .await;
    }
    r.finish(&["hmac_ts"]).await;
}

#[tokio::test]
async fn standard_webhooks_with_rotation_and_several_signatures() {
    let mut r = Run::new().await;
    let s = "swh";
    let hdrs = |msg: &str, ts: u64, sig: &str| {
        h(&[
            ("webhook-id", msg),
            ("webhook-timestamp", &ts.to_string()),
            ("webhook-signature", sig),
        ])
    };
    let t = unix_now();

    let b = r.body(s);
    r.ok(
        "first secret",
        s,
        hdrs("msg_1", t, &swh_sig(SWH_OLD_KEY, "msg_1", t, &b.1)),
        b,
    )
    .await;
    let b = r.body(s);
    r.ok(
        "second rotated secret",
        s,
        hdrs("msg_2", t, &swh_sig(SWH_NEW_KEY, "msg_2", t, &b.1)),
        b,
    )
    .await;
    let b = r.body(s);
    // Several signatures, space separated: one valid entry is enough, wherever it is.
    let list = format!(
        "v1,{} v1a,abc {} v1,!!!",
        STANDARD.encode([0u8; 32]),
        swh_sig(SWH_NEW_KEY, "msg_3", t, &b.1)
    );
    r.ok("several signatures", s, hdrs("msg_3", t, &list), b)
        .await;
    let b = r.body(s);
    let list = format!(
        "{} {}",
        swh_sig(SWH_WRONG_KEY, "msg_4", t, &b.1),
        swh_sig(SWH_OLD_KEY, "msg_4", t, &b.1)
    );
    r.ok("rotation on the sender side", s, hdrs("msg_4", t, &list), b)
        .await;

    let b = r.body(s);
    r.refused(
        "missing all",
        s,
        h(&[]),
        b,
        UNAUTHORIZED,
        "missing_credential",
    )
    .await;
    let b = r.body(s);
    let no_sig = h(&[
        ("webhook-id", "msg_5"),
        ("webhook-timestamp", &t.to_string()),
    ]);
    r.refused(
        "missing signature",
        s,
        no_sig,
        b,
        UNAUTHORIZED,
        "missing_credential",
    )
    .await;
    let b = r.body(s);
    let sig = swh_sig(SWH_NEW_KEY, "msg_6", t, &b.1);
    let no_id = h(&[
        ("webhook-timestamp", &t.to_string()),
        ("webhook-signature", &sig),
    ]);
    r.refused(
        "missing id",
        s,
        no_id,
        b,
        UNAUTHORIZED,
        "missing_credential",
    )
    .await;
    let b = r.body(s);
    let wrong = swh_sig(SWH_WRONG_KEY, "msg_7", t, &b.1);
    r.refused(
        "wrong secret",
        s,
        hdrs("msg_7", t, &wrong),
        b,
        FORBIDDEN,
        "invalid_credential",
    )
    .await;
    let b = r.body(s);
    let list = format!(
        "{} {}",
        swh_sig(SWH_WRONG_KEY, "msg_8", t, &b.1),
        swh_sig(SWH_NEW_KEY, "msg_8", t, r#"{"id":"x"}"#)
    );
    r.refused(
        "several, none valid",
        s,
        hdrs("msg_8", t, &list),
        b,
        FORBIDDEN,
        "invalid_credential",
    )
    .await;
    let b = r.body(s);
    let tampered = swh_sig(SWH_NEW_KEY, "msg_9", t, r#"{"id":"something-else"}"#);
    r.refused(
        "tampered body",
        s,
        hdrs("msg_9", t, &tampered),
        b,
        FORBIDDEN,
        "invalid_credential",
    )
    .await;
    let b = r.body(s);
    // The id is signed too.
    let other_id = swh_sig(SWH_NEW_KEY, "msg_other", t, &b.1);
    r.refused(
        "other id",
        s,
        hdrs("msg_10", t, &other_id),
        b,
        FORBIDDEN,
        "invalid_credential",
    )
    .await;

    for (what, ts) in [("stale", t - 600), ("future", t + 600)] {
        let b = r.body(s);
        let sig = swh_sig(SWH_NEW_KEY, "msg_ts", ts, &b.1);
        r.refused(
            what,
            s,
            hdrs("msg_ts", ts, &sig),
            b,
            FORBIDDEN,
            "timestamp_out_of_window",
        )
        .await;
    }
    r.finish(&["swh"]).await;
}

#[tokio::test]
async fn allowed_ips_are_checked_before_the_credential() {
    let mut r = Run::new().await;
    let right = h(&[("Authorization", &format!("Bearer {TOKEN_NEW}"))]);
    let b = r.body("ip_denied");
    r.refused(
        "right token, wrong network",
        "ip_denied",
        right.clone(),
        b,
        FORBIDDEN,
        "ip_not_allowed",
    )
    .await;
    let b = r.body("ip_denied");
    r.refused(
        "no token, wrong network",
        "ip_denied",
        h(&[]),
        b,
        FORBIDDEN,
        "ip_not_allowed",
    )
    .await;
    let b = r.body("ip_allowed");
    r.ok("right token, allowed network", "ip_allowed", right, b)
        .await;
    let b = r.body("ip_allowed");
    r.refused(
        "allowed network, no token",
        "ip_allowed",
        h(&[]),
        b,
        UNAUTHORIZED,
        "missing_credential",
    )
    .await;
    r.finish(&["ip_denied", "ip_allowed"]).await;
}
