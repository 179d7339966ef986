//! End to end over real TLS handshakes: HTTP/1.1 and HTTP/2 chosen by ALPN, mTLS sources that
//! require a client certificate from the configured CA next to sources that do not, and a
//! plaintext request to the TLS port; only accepted requests reach the file sink.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rcgen::{
    CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose,
};

/// A certificate and its private key, both PEM.
struct Pem {
    cert: String,
    key: String,
}

/// Two CAs: `ca` signs the server certificate (written to `dir` with its key and the CA) and the
/// trusted client certificate; `rogue` is a CA the server does not know, which signs the untrusted
/// client certificate.
struct Pki {
    ca: String,
    client: Pem,
    rogue_client: Pem,
    dir: tempfile::TempDir,
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    CertifiedIssuer::self_signed(ca_params(name), KeyPair::generate().unwrap()).unwrap()
}

fn new_leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> Pem {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec![name.to_owned()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.extended_key_usages = vec![usage];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = p.signed_by(&key, &**issuer).unwrap();
    Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

impl Pki {
    fn new() -> Pki {
        let ca = new_ca("siemgate test CA");
        let rogue = new_ca("rogue CA");
        let server = new_leaf(&ca, "localhost", ExtendedKeyUsagePurpose::ServerAuth);
        let client = new_leaf(&ca, "client.test", ExtendedKeyUsagePurpose::ClientAuth);
        let rogue_client = new_leaf(&rogue, "client.test", ExtendedKeyUsagePurpose::ClientAuth);
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("server.pem", &server.cert);
        write("server.key", &server.key);
        write("ca.pem", &ca.pem());
        write("client.pem", &client.cert);
        write("client.key", &client.key);
        write("rogue-ca.pem", &rogue.pem());
        Pki {
            ca: ca.pem(),
            client,
            rogue_client,
            dir,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    /// A TLS listener on 127.0.0.1:0 (client CA optional), the file sink, and two sources:
    /// `open` (token only) and `mtls` (token and a client certificate).
    fn config(&self, client_ca: bool) -> String {
        let ca_line = if client_ca {
            format!("client_ca = '{}'", self.path("ca.pem"))
        } else {
            String::new()
        };
        let mtls = if client_ca {
            r#"
[[sources]]
id = "mtls"
sinks = ["out"]
require_client_cert = true
auth = { scheme = "token", prefix = "Bearer ", secret = "tok" }
"#
        } else {
            ""
        };
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
shutdown_grace = "10s"
[server.limits]
tls_handshake_timeout = "3s"
[server.tls]
cert = '{cert}'
key = '{key}'
{ca_line}
[metrics]
listen = "127.0.0.1:0"
{FILE_SINK}
[[sources]]
id = "open"
sinks = ["out"]
auth = {{ scheme = "token", prefix = "Bearer ", secret = "tok" }}
{mtls}"#,
            cert = self.path("server.pem"),
            key = self.path("server.key"),
        )
    }

    fn client(&self, alpn: &[&[u8]], cert: Option<&Pem>) -> Arc<rustls::ClientConfig> {
        tls_client(
            &self.ca,
            alpn,
            cert.map(|p| (p.cert.as_str(), p.key.as_str())),
        )
    }
}

const AUTH: (&str, &str) = ("authorization", "Bearer tok");

/// Sends `req` in plaintext HTTP/1.1 to a TLS listener: the listener must close the connection
/// or answer without a 2xx, within 15 s.
async fn assert_no_2xx_in_plaintext(addr: SocketAddr, req: Request<Full<Bytes>>) {
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(collect(resp).await)
    };
    let r = tokio::time::timeout(Duration::from_secs(15), attempt)
        .await
        .expect("the listener answers or closes within 15s");
    if let Ok(a) = r {
        assert!(!a.status.is_success(), "plaintext got {}", a.status);
    }
}

/// A POST to `https://localhost:port/hooks/{source}` with the token.
fn post_tls(addr: SocketAddr, source: &str, id: &str) -> Request<Full<Bytes>> {
    Request::post(format!("https://localhost:{}/hooks/{source}", addr.port()))
        .header(AUTH.0, AUTH.1)
        .body(Full::new(Bytes::from(format!(r#"{{"id":"{id}"}}"#))))
        .unwrap()
}

/// [`send_tls`] bounded in time.
async fn send_tls_bounded(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    h2: bool,
    req: Request<Full<Bytes>>,
) -> Result<(Answer, Option<Vec<u8>>), String> {
    tokio::time::timeout(Duration::from_secs(15), send_tls(addr, config, h2, req))
        .await
        .expect("TLS exchange finishes within 15s")
}

fn ids(path: &Path) -> Vec<String> {
    let mut ids: Vec<String> = read_lines(path)
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn http1_and_h2_are_negotiated_by_alpn_and_deliver() {
    let pki = Pki::new();
    let gw = start(&pki.config(false)).await;
    let addr = gw.addr();

    let (a, alpn) = send_tls_bounded(
        addr,
        pki.client(&[b"http/1.1"], None),
        false,
        post_tls(addr, "open", "over-h1"),
    )
    .await
    .unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.json(), serde_json::json!({"accepted": 1}));

    let (a, alpn) = send_tls_bounded(
        addr,
        pki.client(&[b"h2"], None),
        true,
        post_tls(addr, "open", "over-h2"),
    )
    .await
    .unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.json(), serde_json::json!({"accepted": 1}));

    // When the client offers both, the server's preference (h2 first) wins.
    let (a, alpn) = send_tls_bounded(
        addr,
        pki.client(&[b"http/1.1", b"h2"], None),
        true,
        post_tls(addr, "open", "over-both"),
    )
    .await
    .unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(a.status, StatusCode::OK);

    let out = gw.out();
    eventually("3 events in the sink", || read_lines(&out).len() == 3).await;
    let dir = gw.stop().await;
    let out = dir.path().join("out.ndjson");
    assert_eq!(ids(&out), ["over-both", "over-h1", "over-h2"]);
    for l in read_lines(&out) {
        assert_eq!(l["source"], "open");
    }
}

#[tokio::test]
async fn mtls_source_requires_a_client_cert_from_the_configured_ca() {
    let pki = Pki::new();
    let gw = start(&pki.config(true)).await;
    let addr = gw.addr();

    // A client certificate signed by the configured CA: accepted, over either protocol.
    for (h2, alpn, id) in [
        (false, &b"http/1.1"[..], "mtls-h1"),
        (true, &b"h2"[..], "mtls-h2"),
    ] {
        let (a, got) = send_tls_bounded(
            addr,
            pki.client(&[alpn], Some(&pki.client)),
            h2,
            post_tls(addr, "mtls", id),
        )
        .await
        .unwrap();
        assert_eq!(got.as_deref(), Some(alpn));
        assert_eq!(a.status, StatusCode::OK, "{id}: {:?}", a.body);
        assert_eq!(a.json(), serde_json::json!({"accepted": 1}));
    }

    // No client certificate: the handshake succeeds (other sources share the listener), the
    // request is refused.
    for h2 in [false, true] {
        let alpn: &[u8] = if h2 { b"h2" } else { b"http/1.1" };
        let (a, _) = send_tls_bounded(
            addr,
            pki.client(&[alpn], None),
            h2,
            post_tls(addr, "mtls", "refused-no-cert"),
        )
        .await
        .unwrap();
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{:?}", a.body);
        assert_eq!(a.json()["error"], "client_cert_required");
    }

    // A client certificate from a CA the server does not trust: no 2xx, whether the handshake
    // or the request is what fails.
    for h2 in [false, true] {
        let alpn: &[u8] = if h2 { b"h2" } else { b"http/1.1" };
        for source in ["mtls", "open"] {
            let r = send_tls_bounded(
                addr,
                pki.client(&[alpn], Some(&pki.rogue_client)),
                h2,
                post_tls(addr, source, "refused-rogue"),
            )
            .await;
            if let Ok((a, _)) = &r {
                assert!(
                    !a.status.is_success(),
                    "untrusted client cert got {} from {source}",
                    a.status
                );
            }
        }
    }

    // The source without require_client_cert works without a certificate, and with one.
    let (a, _) = send_tls_bounded(
        addr,
        pki.client(&[b"http/1.1"], None),
        false,
        post_tls(addr, "open", "open-no-cert"),
    )
    .await
    .unwrap();
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let (a, _) = send_tls_bounded(
        addr,
        pki.client(&[b"h2"], Some(&pki.client)),
        true,
        post_tls(addr, "open", "open-with-cert"),
    )
    .await
    .unwrap();
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);

    let (_, text) = get_text(gw.metrics_addr(), "/metrics").await;
    let refused = metric(
        &text,
        "siemgate_auth_failures_total",
        &[("source", "mtls"), ("reason", "client_cert_required")],
    );
    assert_eq!(refused, Some(2.0), "{text}");

    let out = gw.out();
    eventually("4 events in the sink", || read_lines(&out).len() == 4).await;
    let dir = gw.stop().await;
    assert_eq!(
        ids(&dir.path().join("out.ndjson")),
        ["mtls-h1", "mtls-h2", "open-no-cert", "open-with-cert"]
    );
}

#[tokio::test]
async fn plaintext_http_to_the_tls_port_gets_no_2xx() {
    let pki = Pki::new();
    let gw = start(&pki.config(true)).await;
    let addr = gw.addr();

    assert_no_2xx_in_plaintext(addr, post(addr, "open", &[AUTH], r#"{"id":"plain"}"#)).await;

    // The listener still serves TLS afterwards.
    let (a, _) = send_tls_bounded(
        addr,
        pki.client(&[b"http/1.1"], None),
        false,
        post_tls(addr, "open", "after-plain"),
    )
    .await
    .unwrap();
    assert_eq!(a.status, StatusCode::OK);

    let out = gw.out();
    eventually("1 event in the sink", || read_lines(&out).len() == 1).await;
    let dir = gw.stop().await;
    assert_eq!(ids(&dir.path().join("out.ndjson")), ["after-plain"]);
}

/// Gateway A forwards over HTTPS to gateway B's mTLS source: A's http sink trusts B through
/// `ca_file` and presents a client certificate. A second sink trusting only a CA that did not
/// sign B's certificate delivers nothing, holds its events and makes A not ready.
#[tokio::test]
async fn http_sink_speaks_tls_with_a_client_certificate_and_holds_on_an_untrusted_server() {
    let pki = Pki::new();
    let b = start(&pki.config(true)).await;
    let port = b.addr().port();
    let a = start(&format!(
        r#"{PLAIN_SERVER}
[[sinks]]
id = "to_b"
type = "http"
url = "https://localhost:{port}/hooks/mtls"
[sinks.headers]
Authorization = "Bearer tok"
[sinks.tls]
ca_file = '{ca}'
client_cert = '{cert}'
client_key = '{key}'
[sinks.batch]
linger = "0ms"

[[sinks]]
id = "untrusted"
type = "http"
url = "https://localhost:{port}/hooks/open"
[sinks.tls]
ca_file = '{rogue}'
[sinks.batch]
linger = "0ms"

[[sources]]
id = "in"
sinks = ["to_b", "untrusted"]
auth = {{ scheme = "none", allow_unauthenticated = true }}
"#,
        ca = pki.path("ca.pem"),
        cert = pki.path("client.pem"),
        key = pki.path("client.key"),
        rogue = pki.path("rogue-ca.pem"),
    ))
    .await;
    for i in 0..3 {
        let ans = send(
            a.addr(),
            post(a.addr(), "in", &[], format!(r#"{{"id":"fwd-{i}"}}"#)),
        )
        .await;
        assert_eq!(ans.status, StatusCode::OK, "{ans:?}");
    }
    let b_out = b.out();
    eventually("B receives the 3 events over mTLS", || {
        read_lines(&b_out).len() == 3
    })
    .await;
    let got: Vec<String> = read_lines(&b_out)
        .iter()
        .map(|l| l["raw"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, ["fwd-0", "fwd-1", "fwd-2"]);

    let ops = a.metrics_addr();
    for _ in 0..500 {
        let (status, body) = get_text(ops, "/readyz").await;
        if status == StatusCode::SERVICE_UNAVAILABLE && body.contains("untrusted") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = get_text(ops, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("sink untrusted"), "{body}");
    let (_, text) = get_text(ops, "/metrics").await;
    assert_eq!(
        metric(&text, "siemgate_queue_events", &[("sink", "untrusted")]),
        Some(3.0),
        "held, not dropped: {text}"
    );
    assert_eq!(
        metric(
            &text,
            "siemgate_events_failed_total",
            &[("sink", "untrusted")]
        ),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "siemgate_sink_up", &[("sink", "untrusted")]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "siemgate_events_delivered_total",
            &[("sink", "to_b")]
        ),
        Some(3.0),
        "{text}"
    );
}

#[tokio::test]
async fn admin_api_over_tls_on_its_own_listener() {
    let pki = Pki::new();
    let config = format!(
        r#"{}
[admin]
listen = "127.0.0.1:0"
[admin.tls]
cert = '{}'
key = '{}'
[[admin.tokens]]
name = "ops"
token = "admin-token-over-tls-0001"
"#,
        pki.config(false),
        pki.path("server.pem"),
        pki.path("server.key"),
    );
    let gw = start(&config).await;
    let admin = gw.gateway.admin_addr().expect("admin listener");
    assert_ne!(admin, gw.addr(), "the admin API has its own listener");

    let get = |path: &str, token: &str| {
        Request::get(format!("https://localhost:{}{path}", admin.port()))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let (a, _) = send_tls_bounded(
        admin,
        pki.client(&[b"http/1.1"], None),
        false,
        get("/api/v1/sources", "admin-token-over-tls-0001"),
    )
    .await
    .unwrap();
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let sources = a.json()["sources"].clone();
    assert_eq!(sources.as_array().map(Vec::len), Some(1), "{sources}");
    assert_eq!(sources[0]["id"], "open");
    assert_eq!(sources[0]["origin"], "config");

    let (a, _) = send_tls_bounded(
        admin,
        pki.client(&[b"h2"], None),
        true,
        get("/api/v1/sinks", "wrong-token-over-tls-0001"),
    )
    .await
    .unwrap();
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);

    // Plain HTTP to the TLS admin port gets no answer: the token never crosses in clear.
    assert_no_2xx_in_plaintext(admin, get("/api/v1/sources", "admin-token-over-tls-0001")).await;
    gw.stop().await;
}
