//! Hostile-input tests: identity (see tests/hostile.rs).
//!
//! * `control_characters_reach_syslog_as_spaces`: an event whose title and description carry
//!   NUL, ESC, BEL, VT, FF, DEL, tab, CR, LF, U+0085, U+2028 and U+2029 goes through the real
//!   binary to loopback syslog receivers as LEEF, CEF and JSON: every message parses strictly,
//!   holds no raw control, the characters arrive as spaces (CEF keeps `\r`/`\n` escapes, JSON
//!   its `\u` escapes) and nothing after a NUL is lost.
//! * `self_signed_ca_certificate_works_as_ca_file_or_pin`: a self-signed CA:TRUE certificate
//!   with no subjectAltName (what `openssl req -x509` makes by default) served by loopback TLS
//!   syslog receivers: as the sink's `ca_file`, and pinned by `pinned_sha256`, the event is
//!   delivered; a different self-signed certificate with the same name, and the right
//!   certificate under another `server_name`, are refused, nothing reaches those receivers and
//!   `/readyz` names those sinks.
//! * `client_certificates_are_tied_to_their_sources`: one `client_ca`, three mTLS sources
//!   (`alice` allows a name, `bob` a fingerprint, `anyone` any certificate from the CA): each
//!   client certificate passes only where it is allowed, the others answer 403
//!   `client_cert_not_allowed` with the reason; a certificate without the clientAuth extended
//!   key usage is refused everywhere; the listener's own certificate (which lists clientAuth)
//!   and a serverAuth-only certificate fail the handshake;
//!   every refusal is counted and logged, and only the allowed requests reach the sink.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/syslog.rs"]
mod syslog;

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::json;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::common::binary::Process;
use crate::common::{
    ca_params, get_text, metric, post, read_lines, send, send_tls, tls_client, tls_server_config,
    Answer,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use syslog::{
    first_control, parse_cef, parse_leef, parse_rfc5424, syslog_sink, Framing, Pki, StreamReceiver,
};

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
        leef = syslog_sink(
            "leef",
            leef.addr(),
            "transport = \"tcp\"\nformat = \"leef\""
        ),
        cef = syslog_sink("cef", cef.addr(), "transport = \"tcp\"\nformat = \"cef\""),
        json = syslog_sink(
            "json",
            jsonr.addr(),
            "transport = \"tcp\"\nformat = \"json\"\nframing = \"lf\""
        ),
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

// ---------------------------------------------------------------------------------------------
// Self-signed server certificates for sinks
// ---------------------------------------------------------------------------------------------

/// A self-signed certificate as `openssl req -x509 -subj /CN=<cn>` makes it by default:
/// basicConstraints CA:TRUE, no subjectAltName, no extended key usage; and a TLS server
/// presenting it.
fn openssl_style_self_signed(cn: &str) -> (Pki, Vec<u8>) {
    let key = KeyPair::generate().unwrap();
    let cert = ca_params(cn).self_signed(&key).unwrap();
    let pki = Pki {
        ca_pem: cert.pem(),
        server_cert_pem: cert.pem(),
        server: tls_server_config(vec![cert.der().clone()], &key),
    };
    (pki, cert.der().to_vec())
}

/// `AB:CD:...`, as `openssl x509 -fingerprint -sha256` prints it.
fn colon_fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[tokio::test]
async fn self_signed_ca_certificate_works_as_ca_file_or_pin() {
    let (cert, der) = openssl_style_self_signed("localhost");
    let (impostor, _) = openssl_style_self_signed("localhost");
    // `bycafile` and `wrongname` trust `cert` through ca_file, `bypin` through its fingerprint;
    // `impostor` presents another self-signed certificate with the same name.
    let by_ca_file = StreamReceiver::tls(Framing::OctetCounting, &cert).await;
    let by_pin = StreamReceiver::tls(Framing::OctetCounting, &cert).await;
    let wrong_name = StreamReceiver::tls(Framing::OctetCounting, &cert).await;
    let fake = StreamReceiver::tls(Framing::OctetCounting, &impostor).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("self-signed.pem");
    std::fs::write(&ca, &cert.ca_pem).unwrap();
    let ca = ca.display();
    let tls = |extra: &str| format!("transport = \"tls\"\nconnect_timeout = \"2s\"\n{extra}");
    let sinks = [
        syslog_sink(
            "bycafile",
            by_ca_file.addr(),
            &tls(&format!(
                "tls = {{ ca_file = '{ca}', server_name = 'localhost' }}"
            )),
        ),
        syslog_sink(
            "bypin",
            by_pin.addr(),
            &tls(&format!(
                "tls = {{ pinned_sha256 = ['{}'], server_name = 'localhost' }}",
                colon_fingerprint(&der)
            )),
        ),
        syslog_sink(
            "wrongname",
            wrong_name.addr(),
            &tls(&format!(
                "tls = {{ ca_file = '{ca}', server_name = 'siem.example' }}"
            )),
        ),
        syslog_sink(
            "impostor",
            fake.addr(),
            &tls(&format!(
                "tls = {{ ca_file = '{ca}', server_name = 'localhost' }}"
            )),
        ),
    ];
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
plaintext = true
[metrics]
listen = "127.0.0.1:0"
{sinks}
[[sources]]
id = "s"
vendor = "generic"
sinks = ["bycafile", "bypin", "wrongname", "impostor"]
auth = {{ scheme = "token", header = "Authorization", prefix = "Bearer ", secret = "tok" }}
"#,
        sinks = sinks.concat()
    );
    let mut proc = Process::start(dir.path(), &config, &[]);
    let [hooks, metrics] = proc.wait_ready(["hooks", "metrics"]);
    let a = send(
        hooks,
        post(
            hooks,
            "s",
            &[("authorization", "Bearer tok")],
            r#"{"id":"self-signed-1","title":"t"}"#,
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");

    for (name, r) in [("bycafile", &by_ca_file), ("bypin", &by_pin)] {
        assert!(
            within_bound(|| r.count() >= 1).await,
            "{name}: the self-signed server got nothing; stderr:\n{}",
            proc.stderr_text()
        );
        assert_eq!(r.handshake_failures(), Vec::<String>::new(), "{name}");
        assert!(r.messages()[0].text().contains("self-signed-1"), "{name}");
    }

    // The refused ones: /readyz names them, their receivers saw handshakes fail and got nothing.
    let deadline = Instant::now() + BOUND;
    let last = loop {
        let (status, body) = get_text(metrics, "/readyz").await;
        let named = body.contains("wrongname") && body.contains("impostor");
        if status == StatusCode::SERVICE_UNAVAILABLE && named {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz does not name both refused sinks: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        !last.contains("bycafile") && !last.contains("bypin"),
        "{last}"
    );
    for (name, r) in [("wrongname", &wrong_name), ("impostor", &fake)] {
        assert!(
            !r.handshake_failures().is_empty(),
            "{name}: handshake tried"
        );
        assert_eq!(r.count(), 0, "{name}: nothing over a refused connection");
    }
}

// ---------------------------------------------------------------------------------------------
// Client certificate identities
// ---------------------------------------------------------------------------------------------

/// A certificate and its key, PEM, and the certificate's DER.
struct Leaf {
    cert: String,
    key: String,
    der: Vec<u8>,
}

/// A certificate for `cn` signed by `ca`, with `sans` and the extended key usages `eku` (none:
/// no extension at all).
fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    cn: &str,
    sans: Vec<SanType>,
    eku: Vec<ExtendedKeyUsagePurpose>,
) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.subject_alt_names = sans;
    p.extended_key_usages = eku;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = p.signed_by(&key, &**ca).unwrap();
    Leaf {
        cert: cert.pem(),
        key: key.serialize_pem(),
        der: cert.der().to_vec(),
    }
}

/// POSTs one event to `source` over TLS (HTTP/1.1) presenting `cert`, bounded in time.
async fn post_with_cert(
    hooks: std::net::SocketAddr,
    ca: &str,
    cert: Option<&Leaf>,
    source: &str,
    id: &str,
) -> Result<Answer, String> {
    let config = tls_client(
        ca,
        &[b"http/1.1"],
        cert.map(|c| (c.cert.as_str(), c.key.as_str())),
    );
    let req = Request::post(format!("https://localhost:{}/hooks/{source}", hooks.port()))
        .header("authorization", "Bearer tok")
        .body(Full::new(Bytes::from(format!(r#"{{"id":"{id}"}}"#))))
        .unwrap();
    tokio::time::timeout(BOUND, send_tls(hooks, config, false, req))
        .await
        .expect("the TLS exchange ends within the bound")
        .map(|(a, _)| a)
}

#[tokio::test]
async fn client_certificates_are_tied_to_their_sources() {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "partners CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
    let client_auth = || vec![ExtendedKeyUsagePurpose::ClientAuth];
    let dns = |n: &str| SanType::DnsName(n.try_into().unwrap());
    // The listener's own certificate lists clientAuth too, as many server certificates do.
    let server = leaf(
        &ca,
        "localhost",
        vec![dns("localhost")],
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    );
    // Another server's certificate from the same CA: serverAuth only, the name alice allows.
    let other_server = leaf(
        &ca,
        "Alice Sender",
        vec![SanType::URI("spiffe://partners/alice".try_into().unwrap())],
        vec![ExtendedKeyUsagePurpose::ServerAuth],
    );
    let alice = leaf(
        &ca,
        "Alice Sender",
        vec![SanType::URI("spiffe://partners/alice".try_into().unwrap())],
        client_auth(),
    );
    let bob = leaf(&ca, "bob.partners.example", vec![], client_auth());
    // Alice's name, but not marked for client authentication.
    let no_eku = leaf(
        &ca,
        "Alice Sender",
        vec![SanType::URI("spiffe://partners/alice".try_into().unwrap())],
        vec![],
    );
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let (cert, key, ca_file) = (
        write("server.pem", &server.cert),
        write("server.key", &server.key),
        write("ca.pem", &ca.pem()),
    );
    let bob_pin = colon_fingerprint(&bob.der).to_lowercase();
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[server.tls]
cert = '{cert}'
key = '{key}'
client_ca = '{ca_file}'
[metrics]
listen = "127.0.0.1:0"
[[sinks]]
id = "out"
type = "file"
path = "{{dir}}/out.ndjson"
fsync = "never"
[sinks.batch]
linger = "0ms"
[[sources]]
id = "alice"
sinks = ["out"]
require_client_cert = true
client_cert_names = ["SPIFFE://partners/alice"]
auth = {{ scheme = "token", prefix = "Bearer ", secret = "tok" }}
[[sources]]
id = "bob"
sinks = ["out"]
require_client_cert = true
client_cert_sha256 = ["{bob_pin}"]
auth = {{ scheme = "token", prefix = "Bearer ", secret = "tok" }}
[[sources]]
id = "anyone"
sinks = ["out"]
require_client_cert = true
auth = {{ scheme = "token", prefix = "Bearer ", secret = "tok" }}
"#
    );
    let mut proc = Process::start(dir.path(), &config, &[("SIEMGATE_LOG", "info")]);
    let [hooks, metrics] = proc.wait_ready(["hooks", "metrics"]);
    let ca_pem = ca.pem();

    // Allowed: each certificate where its identity is listed, and anywhere without a list.
    for (who, cert, source) in [
        ("alice", &alice, "alice"),
        ("bob", &bob, "bob"),
        ("alice", &alice, "anyone"),
        ("bob", &bob, "anyone"),
    ] {
        let id = format!("{who}-to-{source}");
        let a = post_with_cert(hooks, &ca_pem, Some(cert), source, &id)
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(a.status, StatusCode::OK, "{id}: {:?}", a.body);
    }

    // Refused with 403 and the reason: a certificate from the same CA on another's source, and
    // a certificate not marked for client authentication (even where its name is allowed).
    for (who, cert, source, why) in [
        ("alice", &alice, "bob", "not one this source allows"),
        ("bob", &bob, "alice", "not one this source allows"),
        ("no-eku", &no_eku, "alice", "clientAuth"),
        ("no-eku", &no_eku, "anyone", "clientAuth"),
    ] {
        let id = format!("{who}-to-{source}");
        let a = post_with_cert(hooks, &ca_pem, Some(cert), source, &id)
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{id}: {:?}", a.body);
        let body = a.json();
        assert_eq!(body["error"], "client_cert_not_allowed", "{id}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(why),
            "{id}: {body}"
        );
    }

    // The listener's own certificate and a serverAuth-only certificate are no client
    // certificates: the handshake refuses them, for every source.
    for (who, cert) in [("own", &server), ("serverAuth-only", &other_server)] {
        for source in ["alice", "anyone"] {
            let r = post_with_cert(hooks, &ca_pem, Some(cert), source, "server-cert").await;
            assert!(r.is_err(), "{who} certificate to {source}: {r:?}");
        }
    }
    // No certificate at all: 401, as before.
    let a = post_with_cert(hooks, &ca_pem, None, "alice", "no-cert")
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{:?}", a.body);

    // Counted per source and reason, and logged.
    let (_, text) = get_text(metrics, "/metrics").await;
    for (source, n) in [("alice", 2.0), ("bob", 1.0), ("anyone", 1.0)] {
        for name in [
            "siemgate_requests_rejected_total",
            "siemgate_auth_failures_total",
        ] {
            let got = metric(
                &text,
                name,
                &[("source", source), ("reason", "client_cert_not_allowed")],
            );
            assert_eq!(got, Some(n), "{name} {source}: {text}");
        }
    }
    // Refusal lines are rate-limited per source and reason (one a second, the next one counting
    // what it left out), so each refused source is logged at least once with its reason.
    let deadline = Instant::now() + BOUND;
    let logged = |source: &str| {
        proc.stderr_text().lines().any(|l| {
            l.contains(&format!("source=\"{source}\""))
                && l.contains("reason=\"client_cert_not_allowed\"")
        })
    };
    while !["alice", "bob", "anyone"].iter().all(|s| logged(s)) {
        assert!(
            Instant::now() < deadline,
            "every refused source logged with its reason: {}",
            proc.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Only the allowed requests reached the sink.
    let out = dir.path().join("out.ndjson");
    assert!(within_bound(|| read_lines(&out).len() >= 4).await);
    // Stopping drains the queue: anything more would be in the file by now.
    proc.signal("-TERM");
    proc.wait_exit(Duration::from_secs(30));
    let mut ids: Vec<String> = read_lines(&out)
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "alice-to-alice",
            "alice-to-anyone",
            "bob-to-anyone",
            "bob-to-bob"
        ]
    );
}
