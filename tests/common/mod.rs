//! Test harness: start a gateway on 127.0.0.1:0 from a config text, and talk to it with a real
//! HTTP/1.1 or HTTP/2 client, over plaintext or TLS; the helpers every test file shares
//! (scrapes of `/metrics` and `/readyz`, bounded waits, vendor fixtures, HMAC signing, FIFOs);
//! and, in [`binary`], the real binary as a child process.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod binary;
#[cfg(feature = "kafka")]
pub mod cluster;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use sha2::Sha256;
use siemgate::Gateway;
use tokio::net::TcpStream;

/// A running gateway with a scratch directory for its files.
pub struct TestGateway {
    pub gateway: Gateway,
    pub dir: tempfile::TempDir,
}

impl TestGateway {
    pub fn addr(&self) -> SocketAddr {
        self.gateway.hooks_addr()
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.gateway.metrics_addr().expect("metrics listener")
    }

    /// The file sink's output path used by [`file_sink`] configs.
    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out.ndjson")
    }

    pub fn lines(&self) -> Vec<serde_json::Value> {
        read_lines(&self.out())
    }

    /// `/metrics` of this gateway, as text (see [`metrics_text`]).
    pub async fn metrics_text(&self) -> String {
        metrics_text(self.metrics_addr()).await
    }

    /// `/readyz` of this gateway: status and body text.
    pub async fn readyz(&self) -> (StatusCode, String) {
        get_text(self.metrics_addr(), "/readyz").await
    }

    /// `/readyz` of this gateway: status and body, which must be JSON.
    pub async fn readyz_json(&self) -> (StatusCode, Value) {
        let (status, body) = self.readyz().await;
        let v = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("/readyz not JSON ({e}): {body}"));
        (status, v)
    }

    /// Polls `/readyz` (bounded by [`READYZ_BOUND`]) until it answers `want`; returns that
    /// body.
    pub async fn readyz_becomes(&self, want: StatusCode) -> Value {
        let start = Instant::now();
        let mut last = Value::Null;
        while start.elapsed() < READYZ_BOUND {
            let (status, body) = self.readyz_json().await;
            if status == want {
                return body;
            }
            last = body;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("/readyz never answered {want}; last: {last}");
    }

    /// The sample `name{sink="<sink>"}` from one scrape of `/metrics`.
    pub async fn sink_metric(&self, name: &str, sink: &str) -> Option<f64> {
        metric(&self.metrics_text().await, name, &[("sink", sink)])
    }

    /// Polls `/metrics` (bounded by [`METRIC_BOUND`]) until `name{sink="<sink>"}` is what `ok`
    /// wants; returns that sample.
    pub async fn sink_metric_until(
        &self,
        name: &str,
        sink: &str,
        ok: impl Fn(Option<f64>) -> bool,
    ) -> Option<f64> {
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < METRIC_BOUND {
            last = self.sink_metric(name, sink).await;
            if ok(last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{name}{{sink=\"{sink}\"}} is {last:?} after {METRIC_BOUND:?}, not what the test waits for");
    }

    /// Stops the gateway cleanly and waits for it.
    pub async fn stop(self) -> tempfile::TempDir {
        self.gateway.shutdown();
        tokio::time::timeout(Duration::from_secs(30), self.gateway.wait())
            .await
            .expect("gateway stops within 30s");
        self.dir
    }
}

/// The complete lines of an NDJSON file (each ends in a line break): a line the sink is still
/// writing, read mid-write, is not one yet.
pub fn read_lines(path: &Path) -> Vec<serde_json::Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .split_inclusive('\n')
            .filter_map(|l| l.strip_suffix('\n'))
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A `[server]` + `[[sinks]]` preamble: plaintext on 127.0.0.1:0, metrics on 127.0.0.1:0, one
/// file sink `out` writing to `{dir}/out.ndjson` with no linger. `{dir}` is replaced by
/// [`start`].
pub const PLAIN_SERVER: &str = r#"
[server]
listen = "127.0.0.1:0"
plaintext = true
shutdown_grace = "10s"
[metrics]
listen = "127.0.0.1:0"
"#;

pub const FILE_SINK: &str = r#"
[[sinks]]
id = "out"
type = "file"
path = "{dir}/out.ndjson"
fsync = "never"
[sinks.batch]
linger = "0ms"
"#;

/// Starts a gateway from config text; `{dir}` in the text becomes a fresh temp directory.
pub async fn start(config: &str) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let text = config.replace("{dir}", dir.path().to_str().unwrap());
    let file = siemgate::config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let settings = match siemgate::config::validate(file) {
        Ok(s) => s,
        Err(issues) => panic!("{issues:#?}"),
    };
    let gateway = siemgate::start(settings).await.unwrap();
    TestGateway { gateway, dir }
}

/// An answer as the client saw it.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// Sends one request on a new HTTP/1.1 plaintext connection.
pub async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Answer {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.unwrap();
    collect(resp).await
}

pub async fn collect(resp: http::Response<hyper::body::Incoming>) -> Answer {
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

/// A POST to `/hooks/{source}` with the given headers and body.
pub fn post(
    addr: SocketAddr,
    source: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    let mut b = Request::post(format!("http://{addr}/hooks/{source}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(body.into())).unwrap()
}

/// GET on the metrics listener, as text.
pub async fn get_text(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let req = Request::get(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let a = send(addr, req).await;
    (a.status, String::from_utf8(a.body.to_vec()).unwrap())
}

/// The value of one sample in Prometheus text, e.g.
/// `metric(&text, "siemgate_http_requests_total", &[("source","a"),("code","200")])`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (labelset, value) = match rest.strip_prefix('{') {
            Some(r) => {
                let end = r.find('}')?;
                (&r[..end], r[end + 1..].trim())
            }
            None if rest.starts_with(' ') => ("", rest.trim()),
            None => return None,
        };
        let all = labels
            .iter()
            .all(|(k, v)| labelset.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
        let count = if labelset.is_empty() {
            0
        } else {
            labelset.split(',').count()
        };
        (all && count == labels.len())
            .then(|| value.parse().ok())
            .flatten()
    })
}

/// `/metrics` of the metrics listener at `addr`, as text; the scrape must answer 200.
pub async fn metrics_text(addr: SocketAddr) -> String {
    let (status, text) = get_text(addr, "/metrics").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    text
}

/// How long [`TestGateway::sink_metric_until`] polls.
pub const METRIC_BOUND: Duration = Duration::from_secs(20);

/// How long [`TestGateway::readyz_becomes`] polls.
pub const READYZ_BOUND: Duration = Duration::from_secs(10);

/// Waits until `f` holds, polling for up to 10 s.
pub async fn eventually<F: FnMut() -> bool>(what: &str, mut f: F) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// A rustls client config trusting `ca_pem`, with ALPN set, optionally presenting a client cert.
pub fn tls_client(
    ca_pem: &str,
    alpn: &[&[u8]],
    client: Option<(&str, &str)>,
) -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut cfg = match client {
        None => b.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            b.with_client_auth_cert(chain, key).unwrap()
        }
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

/// Certificate params of a CA named `cn` as `openssl req -x509` makes one: CA:TRUE
/// (unconstrained), keyCertSign, cRLSign and digitalSignature, no subjectAltName.
pub fn ca_params(cn: &str) -> rcgen::CertificateParams {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyUsagePurpose};
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

/// A rustls server config (ring, safe default protocol versions, no client authentication)
/// presenting `chain` with `key`.
pub fn tls_server_config(
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key: &rcgen::KeyPair,
) -> Arc<rustls::ServerConfig> {
    let key_der = rustls_pki_types::PrivateKeyDer::Pkcs8(
        rustls_pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()),
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .unwrap();
    Arc::new(server)
}

/// Sends one request over TLS (HTTP/2 if `h2`, else HTTP/1.1); returns the answer and the
/// negotiated ALPN protocol.
pub async fn send_tls(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    h2: bool,
    req: Request<Full<Bytes>>,
) -> Result<(Answer, Option<Vec<u8>>), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let resp = if h2 {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        sender.send_request(req).await.map_err(|e| e.to_string())?
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        sender.send_request(req).await.map_err(|e| e.to_string())?
    };
    Ok((collect(resp).await, alpn))
}

/// `items` as the inside of a TOML array of strings: `"a", "b"`.
pub fn toml_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items
        .into_iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Polls `/readyz` on the ops listener `ops` until it answers 503 with `words` among its
/// reasons, within `bound`; returns the body.
pub async fn readyz_refuses_saying(ops: SocketAddr, words: &str, bound: Duration) -> String {
    let deadline = Instant::now() + bound;
    loop {
        let (status, body) = get_text(ops, "/readyz").await;
        if status == StatusCode::SERVICE_UNAVAILABLE && body.contains(words) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never said {words:?}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls an async condition every 50 ms for up to `bound`; fails naming `what` after that.
pub async fn poll_until<F, Fut>(what: &str, bound: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + bound;
    loop {
        if f().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {bound:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls an async condition every 50 ms for up to 10 s.
pub async fn eventually_async<F, Fut>(what: &str, f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    poll_until(what, Duration::from_secs(10), f).await;
}

/// The repository root (where `fixtures/`, `config/` and `fuzz/` are).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The vendor fixture that is not valid JSON (a documented NDJSON example with a broken line).
pub const MALFORMED_FIXTURE: &str = "wallarm-new_hits-ndjson-2023-asdocumented-malformed.ndjson";

/// The names of the files in `fixtures/vendors/` but [`MALFORMED_FIXTURE`], sorted.
pub fn vendor_fixtures() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("fixtures/vendors"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != MALFORMED_FIXTURE)
        .collect();
    names.sort();
    names
}

/// `fixtures/vendors/<file>`, as text.
pub fn fixture(file: &str) -> String {
    let path = repo().join("fixtures/vendors").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first object of `fixtures/vendors/<file>`: its first element if the file holds a JSON
/// array, else its first JSON value (one object, or the first line of NDJSON).
pub fn fixture_element(file: &str) -> Value {
    let path = repo().join("fixtures/vendors").join(file);
    let body = fixture(file);
    let first = serde_json::Deserializer::from_str(&body)
        .into_iter::<Value>()
        .next()
        .unwrap_or_else(|| panic!("{}: no JSON value", path.display()))
        .unwrap();
    match first {
        Value::Array(mut a) => a.remove(0),
        v => v,
    }
}

/// Prisma Cloud alert number `i`, from the open-alert fixture: `alertId` `P-<1000+i>` and
/// `alertTs` [`prisma_ts`]`(i)`; normalized, its event id is [`prisma_id`]`(i)`.
pub fn prisma_alert(i: usize) -> Value {
    let mut a = fixture_element("prisma_cloud-webhook-alert-open.json");
    a["alertId"] = serde_json::json!(format!("P-{}", 1000 + i));
    a["alertTs"] = serde_json::json!(prisma_ts(i));
    a
}

/// The `alertTs` of [`prisma_alert`]`(i)`: milliseconds that differ per alert.
pub fn prisma_ts(i: usize) -> i64 {
    1_700_000_100_000 + i as i64 * 1_001 + 123
}

/// The event id of [`prisma_alert`]`(i)` (`alertId:status:reason:lastSeen`).
pub fn prisma_id(i: usize) -> String {
    format!("P-{}:open:NEW_ALERT:1700000100000", 1000 + i)
}

pub fn prisma_ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(prisma_id).collect()
}

/// POSTs `events` as one JSON array to `/hooks/<source>` (a source without credentials) and
/// expects all of them accepted.
pub async fn post_events(gw: &TestGateway, source: &str, events: &[Value]) {
    let body = serde_json::to_string(events).unwrap();
    let addr = gw.addr();
    let a = send(
        addr,
        post(addr, source, &[("content-type", "application/json")], body),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "POST /hooks/{source}: {a:?}");
    assert_eq!(
        a.json(),
        serde_json::json!({"accepted": events.len()}),
        "POST /hooks/{source}"
    );
}

/// The proptest settings of the property tests: `cases` unless `PROPTEST_CASES` says
/// otherwise, and failures print the shrunk input without writing into the source tree.
pub fn proptest_config(cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(cases),
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Golden event records (tests/ingest_vendors.rs, tests/normalize_cli.rs)

pub const MARKER: &str = "<received_at>";
pub const TIME_MISSING: &str = "time: missing, received_at used";

/// One sink record as it goes into an expected file: `received_at` masked, `time` masked when
/// the decoder fell back to `received_at`.
pub fn mask(record: &str) -> String {
    let v = parse_record(record);
    let received_at = v["received_at"].as_str().expect("received_at");
    assert!(
        received_at.len() == 24 && received_at.ends_with('Z'),
        "received_at {received_at:?}"
    );
    // The top-level fields come before `raw`, so the first occurrence is the event's own.
    let mut out = record.replacen(
        &format!(r#""received_at":"{received_at}""#),
        &format!(r#""received_at":"{MARKER}""#),
        1,
    );
    let warned = v["normalization_warnings"]
        .as_array()
        .is_some_and(|w| w.iter().any(|w| w == TIME_MISSING));
    let fell_back = warned;
    if fell_back {
        assert_eq!(v["time"], v["received_at"], "{TIME_MISSING}: {record}");
        out = out.replacen(
            &format!(r#""time":"{}""#, v["time"].as_str().unwrap()),
            &format!(r#""time":"{MARKER}""#),
            1,
        );
    }
    let masked = parse_record(&out);
    assert_eq!(masked["received_at"], MARKER, "{out}");
    assert_eq!(masked["time"] == MARKER, fell_back, "{out}");
    out.replace(['\n', '\r'], " ")
}

/// One event record (a sink's NDJSON line), which must be JSON.
pub fn parse_record(record: &str) -> Value {
    serde_json::from_str(record).unwrap_or_else(|e| panic!("bad record {record:?}: {e}"))
}

/// HMAC-SHA256 of the concatenated `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

/// Seconds since the Unix epoch, as a signed timestamp header carries them.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Creates a named pipe at `path` with `mkfifo(1)`.
pub fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}
