//! The admin API end to end, with the real binary (`siemgate serve` in a temp dir, every
//! listener on 127.0.0.1:0, `SIEMGATE_LOG=debug`):
//!
//! * a created source answers 201 with its generated secret once (hex for hmac_sha256, `whsec_`
//!   for standard_webhooks); hook requests signed with it are accepted and reach the file sink;
//!   GET never shows a secret; refusals count in `auth_failures`, accepted events in
//!   `events_accepted` / `last_event_at`;
//! * reset-secret with a grace period: old and new secrets pass during the grace, only the new
//!   one after it;
//! * bulk is all or nothing (an invalid entry or a config-file source leaves nothing applied);
//! * delete; config-file sources cannot be changed through the API (409);
//! * API-made sources survive a restart; a corrupt `<data_dir>/admin/sources.json` stops the
//!   start with an error naming the file and is left as it was;
//! * SIGHUP and `POST /api/v1/reload`: an invalid file keeps the old config serving, a valid one
//!   takes effect;
//! * the source and sink test endpoints report per-sink results;
//! * `suppressed` sources answer 200 and queue nothing; disabled ones answer 404;
//! * bearer tokens: 401 with `WWW-Authenticate: Bearer`, 403 for a read token on a change;
//! * no secret or token ever appears in an answer (other than the one-time creation/reset
//!   answers) or anywhere in the process's stderr; every change is audited with the token name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bytes::Bytes;
use common::binary::{Process, READY_TIMEOUT};
use common::{hmac_sha256, read_lines, unix_now, Answer};
use http::{Request, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

/// Admin tokens: `ops` may change things, `viewer` may only read.
const OPS: &str = "ops-admin-token-5d8e1c47a93f0b62";
const VIEWER: &str = "viewer-read-token-b62f09e4d1753ac8";
/// A bearer token no admin token matches (a typo of a real one must not be echoed or logged
/// either).
const WRONG_TOKEN: &str = "not-an-admin-token-7a1c3e5f9b2d";
/// The token of the config-file source `cfg`.
const CFG_TOKEN: &str = "cfg-source-token-e41b9c03d7a2";
/// A key nothing is configured with, to sign refused requests.
const WRONG_KEY: &str = "wrong-signing-key-00c0ffee11";

const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound on waiting for something to show up (a line in the file, a log line, a reload).
const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

/// The gateway's environment: debug logging, so the leak check sees as much as there is.
const LOG: &[(&str, &str)] = &[("SIEMGATE_LOG", "debug")];

type Headers = Vec<(String, String)>;

/// The config file: plaintext hooks, metrics and admin listeners on 127.0.0.1:0, the two admin
/// tokens, one file sink `out` at `{dir}/out.ndjson`, one token source `cfg` routed to it;
/// `extra_sinks` and `extra_sources` are appended to their sections.
fn config(dir: &Path, extra_sinks: &str, extra_sources: &str) -> String {
    let d = dir.to_str().unwrap();
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
plaintext = true
shutdown_grace = "5s"
data_dir = '{d}/data'

[metrics]
listen = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:0"
[[admin.tokens]]
name = "ops"
token = "{OPS}"
[[admin.tokens]]
name = "viewer"
token = "{VIEWER}"
role = "read"

[[sinks]]
id = "out"
type = "file"
path = '{d}/out.ndjson'
fsync = "never"
[sinks.batch]
linger = "0ms"
{extra_sinks}

[[sources]]
id = "cfg"
sinks = ["out"]
auth = {{ scheme = "token", prefix = "Bearer ", secret = "{CFG_TOKEN}" }}
{extra_sources}
"#
    )
}

/// A `[[sources]]` table for a token source (Bearer prefix) routed to `sinks`.
fn token_source(id: &str, token: &str, sinks: &str) -> String {
    format!(
        r#"
[[sources]]
id = "{id}"
sinks = [{sinks}]
auth = {{ scheme = "token", prefix = "Bearer ", secret = "{token}" }}
"#
    )
}

// ---------------------------------------------------------------------------------------------
// One gateway, its scratch directory, and what the test must check at the end.

struct Run {
    dir: tempfile::TempDir,
    proc: Option<Process>,
    hooks: SocketAddr,
    admin: SocketAddr,
    /// Every secret and token the test used or was given; none may appear in `answers` or in
    /// the stderr of any process.
    secrets: Vec<String>,
    /// Every answer (status, headers, body), with the `secret` of one-time answers taken out.
    answers: Vec<String>,
    /// Full stderr of the processes that have exited.
    logs: Vec<String>,
}

impl Run {
    /// Writes the config (see [`config`]) to a fresh temp dir and starts the gateway there.
    fn start(extra_sinks: &str, extra_sources: &str) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Run {
            dir,
            proc: None,
            hooks: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            secrets: [OPS, VIEWER, WRONG_TOKEN, CFG_TOKEN, WRONG_KEY]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            answers: Vec::new(),
            logs: Vec::new(),
        };
        r.write_config(extra_sinks, extra_sources);
        r.launch();
        r
    }

    fn write_config(&self, extra_sinks: &str, extra_sources: &str) {
        let dir = self.dir.path();
        common::binary::write_config(dir, &config(dir, extra_sinks, extra_sources));
    }

    fn store_path(&self) -> PathBuf {
        self.dir
            .path()
            .join("data")
            .join("admin")
            .join("sources.json")
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out.ndjson")
    }

    /// Starts the binary on the current config file and waits for its listeners.
    fn launch(&mut self) {
        assert!(self.proc.is_none(), "already running");
        let mut p = Process::spawn(self.dir.path(), LOG);
        let [hooks, admin] = p.wait_ready(["hooks", "admin"]);
        assert_ne!(hooks, admin, "the admin API has a listener of its own");
        self.hooks = hooks;
        self.admin = admin;
        self.proc = Some(p);
    }

    fn proc(&self) -> &Process {
        self.proc.as_ref().expect("siemgate is running")
    }

    /// SIGTERM; waits (bounded) for exit status 0 and keeps the stderr.
    fn stop(&mut self) {
        let mut p = self.proc.take().expect("siemgate is running");
        p.signal("-TERM");
        let status = p.wait_exit(EXIT_TIMEOUT);
        let text = p.stderr_text();
        self.logs.push(text.clone());
        assert!(status.success(), "exit status {status:?}; stderr:\n{text}");
    }

    /// Starts the binary on the current config and expects it to fail to start: returns the
    /// exit status and the stderr.
    fn launch_expecting_failure(&mut self) -> (ExitStatus, String) {
        assert!(self.proc.is_none(), "already running");
        let mut p = Process::spawn(self.dir.path(), LOG);
        let status = p.try_wait_exit(READY_TIMEOUT).unwrap_or_else(|| {
            p.kill_and_panic(&format!(
                "siemgate kept running for {READY_TIMEOUT:?} instead of refusing to start"
            ))
        });
        let text = p.stderr_text();
        self.logs.push(text.clone());
        (status, text)
    }

    fn secret(&mut self, s: &str) {
        self.secrets.push(s.to_owned());
        if let Some(key) = s.strip_prefix("whsec_") {
            self.secrets.push(key.to_owned());
        }
    }

    /// A request to the admin listener with an optional bearer token and JSON body.
    async fn api(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let headers: Headers = token
            .map(|t| vec![("authorization".to_owned(), format!("Bearer {t}"))])
            .unwrap_or_default();
        self.api_raw(
            method,
            path,
            &headers,
            body.map(|b| Bytes::from(b.to_string())),
        )
        .await
    }

    /// A request to the admin listener with the `ops` token.
    async fn ops(&mut self, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.api(method, path, Some(OPS), body).await
    }

    /// POST /api/v1/sources with the `ops` token.
    async fn create(&mut self, source: Value) -> Answer {
        self.ops("POST", "/api/v1/sources", Some(source)).await
    }

    /// Creates a source routed to `out` with `auth`; expects 201 and returns the one-time
    /// secret of the answer.
    async fn create_source(&mut self, id: &str, auth: Value) -> String {
        let a = self
            .create(json!({"id": id, "auth": auth, "sinks": ["out"]}))
            .await;
        expect(&a, 201, &format!("create {id}"))["secret"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// POST /api/v1/sources/{id}/reset-secret with the `ops` token, with `grace_seconds` in the
    /// body if given (no body otherwise).
    async fn reset_secret(&mut self, id: &str, grace_seconds: Option<u64>) -> Answer {
        let path = format!("/api/v1/sources/{id}/reset-secret");
        let body = grace_seconds.map(|g| json!({"grace_seconds": g}));
        self.ops("POST", &path, body).await
    }

    /// POST /api/v1/sources-bulk with the `ops` token and `sources` as its list.
    async fn bulk(&mut self, sources: Value) -> Answer {
        let body = json!({"sources": sources});
        self.ops("POST", "/api/v1/sources-bulk", Some(body)).await
    }

    /// [`Run::create_source`] with a token scheme (`Bearer ` prefix); returns the token.
    async fn create_token_source(&mut self, id: &str) -> String {
        self.create_source(id, json!({"scheme": "token", "prefix": "Bearer "}))
            .await
    }

    /// A request to the admin listener; checks what every admin answer must be (JSON with
    /// `application/json`, an `error` message on 4xx/5xx) and records it for the leak check.
    async fn api_raw(
        &mut self,
        method: &str,
        path: &str,
        headers: &Headers,
        body: Option<Bytes>,
    ) -> Answer {
        let addr = self.admin;
        let mut b = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .header("host", addr.to_string());
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        for (k, v) in headers {
            b = b.header(k.as_str(), v.as_str());
        }
        let req = b.body(Full::new(body.unwrap_or_default())).unwrap();
        let what = format!("{method} {path}");
        let a = send(addr, req, &what).await;
        let what = format!("{what} -> {}", a.status);
        let mut text = String::from_utf8_lossy(&a.body).into_owned();
        if a.body.is_empty() {
            assert!(
                a.status.is_success(),
                "{what}: an error answer without an Error body"
            );
        } else {
            let ct = a
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            assert!(
                ct.starts_with("application/json"),
                "{what}: content-type {ct:?}, body {text}"
            );
            let mut j: Value = serde_json::from_slice(&a.body)
                .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
            if a.status.as_u16() >= 400 {
                assert!(
                    j["error"].as_str().is_some_and(|e| !e.is_empty()),
                    "{what}: an error answer without an error message: {j}"
                );
            }
            if a.status.is_success() && may_answer_a_secret(method, path) {
                for s in take_secrets(&mut j) {
                    self.secret(&s);
                }
                text = j.to_string();
            }
        }
        self.answers.push(format!("{what} {:?} {text}", a.headers));
        a
    }

    /// A POST to `/hooks/{source}` on the hooks listener; recorded for the leak check.
    async fn hook(&mut self, source: &str, headers: &Headers, body: &str) -> Answer {
        let addr = self.hooks;
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let req = common::post(addr, source, &pairs, body.to_owned());
        let a = send(addr, req, &format!("POST /hooks/{source}")).await;
        self.answers.push(format!(
            "POST /hooks/{source} -> {} {:?} {}",
            a.status,
            a.headers,
            String::from_utf8_lossy(&a.body)
        ));
        a
    }

    /// POSTs the generic event `event` to `/hooks/{source}` with `Authorization: Bearer {token}`.
    async fn hook_bearer(&mut self, source: &str, token: &str, event: &str) -> Answer {
        let body = generic_body(event);
        self.hook(source, &bearer(token), &body).await
    }

    /// POSTs the generic event `event` to `/hooks/{source}`, signed with the hmac_sha256
    /// `secret`.
    async fn hook_hmac(&mut self, source: &str, secret: &str, event: &str) -> Answer {
        let body = generic_body(event);
        self.hook(source, &hmac_signed(secret, &body), &body).await
    }

    /// GET /api/v1/sources/{id} with the ops token: 200 and a well-formed Source.
    async fn source(&mut self, id: &str) -> Value {
        let a = self
            .ops("GET", &format!("/api/v1/sources/{id}"), None)
            .await;
        let s = expect(&a, 200, &format!("GET source {id}"));
        check_source(&s, id);
        s
    }

    /// GET /api/v1/sources/{id} answers 404.
    async fn source_absent(&mut self, id: &str) {
        let a = self
            .ops("GET", &format!("/api/v1/sources/{id}"), None)
            .await;
        expect(&a, 404, &format!("GET source {id} (absent)"));
    }

    /// Waits (bounded) for a line of the file sink that `f` accepts.
    async fn wait_line(&self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(v) = read_lines(&self.out()).into_iter().find(|l| f(l)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not in the file sink within {WAIT:?}; lines:\n{:#?}",
                read_lines(&self.out())
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stops the gateway if it runs, then checks that no secret or token used by the test is
    /// in any answer or anywhere on stderr. Returns the whole stderr.
    async fn finish(mut self) -> String {
        if self.proc.is_some() {
            // A credential presented to an unknown source is neither echoed nor logged either.
            let a = self.hook_bearer("leak-probe", OPS, "leak-probe").await;
            expect(&a, 404, "hook of an unknown source");
            self.stop();
        }
        let stderr = self.logs.join("\n");
        for s in &self.secrets {
            let shown = &s[..6.min(s.len())];
            if let Some(a) = self.answers.iter().find(|a| a.contains(s.as_str())) {
                panic!("an answer holds a secret ({shown}...): {a}");
            }
            if let Some(l) = stderr.lines().find(|l| l.contains(s.as_str())) {
                panic!("stderr holds a secret ({shown}...): {l}");
            }
        }
        stderr
    }
}

/// Answers that may hold a `secret` once: creation, bulk, update and reset-secret.
fn may_answer_a_secret(method: &str, path: &str) -> bool {
    match method {
        "POST" => {
            path == "/api/v1/sources"
                || path == "/api/v1/sources-bulk"
                || path.ends_with("/reset-secret")
        }
        "PUT" => path.starts_with("/api/v1/sources/"),
        _ => false,
    }
}

/// Removes `secret` from the object and from each of its `sources`; returns the values.
fn take_secrets(j: &mut Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut take = |o: &mut Value| {
        if let Some(Value::String(s)) = o.as_object_mut().and_then(|m| m.remove("secret")) {
            found.push(s);
        }
    };
    take(j);
    if let Some(list) = j.get_mut("sources").and_then(Value::as_array_mut) {
        for o in list {
            take(o);
        }
    }
    found
}

/// Sends one request, bounded.
async fn send(addr: SocketAddr, req: Request<Full<Bytes>>, what: &str) -> Answer {
    tokio::time::timeout(REQUEST_TIMEOUT, common::send(addr, req))
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {REQUEST_TIMEOUT:?}"))
}

/// Asserts the status; returns the JSON body (`Null` when empty).
#[track_caller]
fn expect(a: &Answer, status: u16, what: &str) -> Value {
    assert_eq!(
        a.status,
        StatusCode::from_u16(status).unwrap(),
        "{what}: {}",
        String::from_utf8_lossy(&a.body)
    );
    if a.body.is_empty() {
        Value::Null
    } else {
        a.json()
    }
}

fn is_timestamp(v: &Value) -> bool {
    v.as_str().is_some_and(|t| {
        t.len() >= 20 && t.ends_with('Z') && t.as_bytes()[4] == b'-' && t.as_bytes()[10] == b'T'
    })
}

/// A Source object as the contract shapes it, never with a secret.
#[track_caller]
fn check_source(s: &Value, id: &str) {
    assert_eq!(s["id"], id, "{s}");
    assert!(s.get("secret").is_none(), "a Source shows a secret: {s}");
    assert_eq!(s["hook_path"], format!("/hooks/{id}"), "{s}");
    for k in ["vendor", "auth_scheme", "origin"] {
        assert!(s[k].is_string(), "{k}: {s}");
    }
    for k in ["has_secret", "enabled", "suppressed"] {
        assert!(s[k].is_boolean(), "{k}: {s}");
    }
    for k in ["events_accepted", "auth_failures"] {
        assert!(s[k].is_u64(), "{k}: {s}");
    }
    for k in ["created_at", "updated_at"] {
        assert!(is_timestamp(&s[k]), "{k}: {s}");
    }
    for k in ["grace_until", "last_event_at"] {
        assert!(s[k].is_null() || is_timestamp(&s[k]), "{k}: {s}");
    }
    assert!(s["name"].is_null() || s["name"].is_string(), "name: {s}");
    assert!(s["sinks"].is_array(), "sinks: {s}");
    assert!(s["filter"].is_object(), "filter: {s}");
}

/// The issue paths of an Error body.
fn issue_paths(j: &Value) -> Vec<String> {
    j["issues"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|i| {
                    assert!(
                        i["message"].as_str().is_some_and(|m| !m.is_empty()),
                        "an issue without a message: {j}"
                    );
                    i["path"].as_str().unwrap_or_default().to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Signing hook requests.

/// `X-Signature: hex(HMAC-SHA256(secret, body))`.
fn hmac_signed(secret: &str, body: &str) -> Headers {
    vec![(
        "X-Signature".to_owned(),
        hex::encode(hmac_sha256(secret.as_bytes(), &[body.as_bytes()])),
    )]
}

/// Standard Webhooks headers for `body`, signed with the `whsec_...` secret.
fn swh_signed(secret: &str, msg_id: &str, body: &str) -> Headers {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
        .expect("base64 after whsec_");
    let ts = unix_now();
    let tag = hmac_sha256(
        &key,
        &[format!("{msg_id}.{ts}.").as_bytes(), body.as_bytes()],
    );
    vec![
        ("webhook-id".to_owned(), msg_id.to_owned()),
        ("webhook-timestamp".to_owned(), ts.to_string()),
        (
            "webhook-signature".to_owned(),
            format!("v1,{}", STANDARD.encode(tag)),
        ),
    ]
}

fn bearer(token: &str) -> Headers {
    vec![("Authorization".to_owned(), format!("Bearer {token}"))]
}

/// One Prisma Cloud alert as the webhook integration sends it (an array).
fn prisma_body(alert_id: &str) -> String {
    format!(
        r#"[{{"alertId":"{alert_id}","alertStatus":"open","policyName":"Admin API check","severity":"high","alertTs":1700000100000}}]"#
    )
}

/// One generic event.
fn generic_body(id: &str) -> String {
    format!(r#"{{"id":"{id}","severity":"high","title":"admin api"}}"#)
}

#[track_caller]
fn accepted(a: &Answer, what: &str) {
    let j = expect(a, 200, what);
    assert_eq!(j, json!({"accepted": 1}), "{what}");
}

// ---------------------------------------------------------------------------------------------
// Audit lines.

/// The value of `key=value` (or `key="value"`) in a log line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|t| t.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim_matches('"'))
}

/// There is an audit line (target `siemgate::audit`) for `action` by the `ops` token; with
/// `id`, its `source` or `sink` field (`sink.test` names a sink, every other per-item action a
/// source) is that id.
#[track_caller]
fn assert_audit(stderr: &str, action: &str, id: Option<&str>) {
    let key = if action.starts_with("sink.") {
        "sink"
    } else {
        "source"
    };
    let audit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("siemgate::audit"))
        .collect();
    assert!(
        audit.iter().any(|l| field(l, "action") == Some(action)
            && field(l, "token") == Some("ops")
            && field(l, "result").is_some()
            && id.is_none_or(|id| field(l, key) == Some(id))),
        "no audit line for {action}{} by token ops; audit lines:\n{}",
        id.map(|id| format!(" with {key}={id}")).unwrap_or_default(),
        audit.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[tokio::test]
async fn created_sources_give_their_secret_once_and_count_events() {
    let mut r = Run::start("", "");

    // hmac_sha256 for Prisma Cloud, no secret given: one is generated (64 hex characters).
    let a = r
        .create(json!({
            "id": "prisma-acme",
            "name": "Prisma ACME",
            "vendor": "prisma_cloud",
            "auth": {"scheme": "hmac_sha256", "header": "X-Signature", "encoding": "hex"},
            "sinks": ["out"]
        }))
        .await;
    let mut created = expect(&a, 201, "create prisma-acme");
    assert_eq!(
        a.headers.get("location").map(|v| v.to_str().unwrap()),
        Some("/api/v1/sources/prisma-acme"),
        "Location of the created source"
    );
    let hmac_secret = created["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("the creation answer holds the generated secret: {created}"))
        .to_owned();
    assert!(
        hmac_secret.len() == 64 && hmac_secret.bytes().all(|b| b.is_ascii_hexdigit()),
        "hmac_sha256 secret is 64 hex characters: {} chars",
        hmac_secret.len()
    );
    created.as_object_mut().unwrap().remove("secret");
    check_source(&created, "prisma-acme");
    assert_eq!(created["name"], "Prisma ACME");
    assert_eq!(created["vendor"], "prisma_cloud");
    assert_eq!(created["auth_scheme"], "hmac_sha256");
    assert_eq!(created["origin"], "api");
    assert_eq!(created["has_secret"], true);
    assert_eq!(created["sinks"], json!(["out"]));
    assert_eq!(created["enabled"], true);
    assert_eq!(created["suppressed"], false);
    assert_eq!(created["events_accepted"], 0);
    assert_eq!(created["auth_failures"], 0);
    assert_eq!(created["last_event_at"], Value::Null);
    assert_eq!(created["grace_until"], Value::Null);

    // standard_webhooks, no secret given: whsec_ + base64 of 32 random bytes.
    let a = r
        .create(json!({"id": "swh-api", "auth": {"scheme": "standard_webhooks"}, "sinks": ["out"]}))
        .await;
    let created = expect(&a, 201, "create swh-api");
    let swh_secret = created["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("the creation answer holds the generated secret: {created}"))
        .to_owned();
    let key = swh_secret
        .strip_prefix("whsec_")
        .map(|k| STANDARD.decode(k).expect("base64 after whsec_"))
        .unwrap_or_else(|| panic!("standard_webhooks secret starts with whsec_"));
    assert_eq!(key.len(), 32, "32 random bytes behind whsec_");
    assert_ne!(swh_secret, hmac_secret);
    assert_eq!(created["vendor"], "generic", "vendor defaults to generic");
    assert_eq!(created["name"], Value::Null);
    assert_eq!(created["auth_scheme"], "standard_webhooks");

    // Signed with the generated secrets: accepted, and the events reach the file sink.
    let body = prisma_body("P-9001");
    let a = r
        .hook("prisma-acme", &hmac_signed(&hmac_secret, &body), &body)
        .await;
    accepted(&a, "prisma-acme signed with its generated secret");
    r.wait_line("the Prisma alert", |l| {
        l["source"] == "prisma-acme" && l["raw"]["alertId"] == "P-9001"
    })
    .await;
    let body = generic_body("swh-evt-1");
    let a = r
        .hook("swh-api", &swh_signed(&swh_secret, "msg_1", &body), &body)
        .await;
    accepted(&a, "swh-api signed with its generated secret");
    r.wait_line("the Standard Webhooks event", |l| {
        l["source"] == "swh-api" && l["id"] == "swh-evt-1"
    })
    .await;

    // GET never shows the secret; the counters moved.
    let s = r.source("prisma-acme").await;
    assert_eq!(s["has_secret"], true);
    assert_eq!(s["events_accepted"], 1, "{s}");
    assert!(is_timestamp(&s["last_event_at"]), "{s}");
    assert_eq!(s["auth_failures"], 0, "{s}");
    let s = r.source("swh-api").await;
    assert_eq!(s["events_accepted"], 1, "{s}");
    assert!(is_timestamp(&s["last_event_at"]), "{s}");

    // Refusals: no signature (401), a signature made with another key (403, as for every
    // source); both count as auth failures, neither as accepted events.
    let body = prisma_body("P-9002");
    let a = r.hook("prisma-acme", &Vec::new(), &body).await;
    let j = expect(&a, 401, "prisma-acme without a signature");
    assert_eq!(j["error"], "missing_credential");
    let a = r
        .hook("prisma-acme", &hmac_signed(WRONG_KEY, &body), &body)
        .await;
    let j = expect(&a, 403, "prisma-acme with a wrong signature");
    assert_eq!(j["error"], "invalid_credential");
    let s = r.source("prisma-acme").await;
    assert_eq!(s["auth_failures"], 2, "{s}");
    assert_eq!(s["events_accepted"], 1, "{s}");

    // The list: sorted by id, config and API sources, no secrets.
    let a = r.ops("GET", "/api/v1/sources", None).await;
    let list = expect(&a, 200, "list sources");
    let sources = list["sources"].as_array().expect("sources array");
    let ids: Vec<&str> = sources.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["cfg", "prisma-acme", "swh-api"]);
    for s in sources {
        check_source(s, s["id"].as_str().unwrap());
    }
    assert_eq!(sources[0]["origin"], "config");
    assert_eq!(sources[0]["has_secret"], true);

    // The id is taken: 409, and the existing secret still verifies.
    let a = r
        .create(json!({"id": "prisma-acme", "auth": {"scheme": "hmac_sha256"}, "sinks": ["out"]}))
        .await;
    expect(&a, 409, "create with a taken id");
    let body = prisma_body("P-9003");
    let a = r
        .hook("prisma-acme", &hmac_signed(&hmac_secret, &body), &body)
        .await;
    accepted(&a, "prisma-acme after the refused re-creation");

    let stderr = r.finish().await;
    assert_audit(&stderr, "source.create", Some("prisma-acme"));
    assert_audit(&stderr, "source.create", Some("swh-api"));
}

#[tokio::test]
async fn reset_secret_keeps_the_old_one_during_the_grace_only() {
    let mut r = Run::start("", "");
    let old = r
        .create_source("rot", json!({"scheme": "hmac_sha256"}))
        .await;
    let a = r.hook_hmac("rot", &old, "rot-first").await;
    accepted(&a, "rot with its first secret");

    let reset_at = Instant::now();
    let a = r.reset_secret("rot", Some(3)).await;
    let j = expect(&a, 200, "reset-secret with grace");
    assert_eq!(j["id"], "rot");
    let new = j["secret"].as_str().expect("the new secret").to_owned();
    assert!(
        new.len() == 64 && new.bytes().all(|b| b.is_ascii_hexdigit()),
        "hmac_sha256 secret is 64 hex characters"
    );
    assert_ne!(new, old);
    assert!(is_timestamp(&j["grace_until"]), "{j}");
    let s = r.source("rot").await;
    assert!(is_timestamp(&s["grace_until"]), "{s}");
    assert_eq!(s["has_secret"], true);

    // During the grace both pass.
    let a = r.hook_hmac("rot", &old, "rot-old-in-grace").await;
    accepted(&a, "old secret during the grace");
    assert!(
        reset_at.elapsed() < Duration::from_secs(3),
        "the check during the grace came too late to mean anything"
    );
    let a = r.hook_hmac("rot", &new, "rot-new-in-grace").await;
    accepted(&a, "new secret during the grace");

    // After it, only the new one (bounded: grace + 6 s).
    let deadline = reset_at + Duration::from_secs(9);
    let mut i = 0;
    let refused_after = loop {
        i += 1;
        let a = r.hook_hmac("rot", &old, &format!("rot-old-poll-{i}")).await;
        match a.status.as_u16() {
            200 => {}
            403 => break reset_at.elapsed(),
            other => panic!("old secret while waiting for the grace to end: {other}"),
        }
        assert!(
            Instant::now() < deadline,
            "the old secret still passes 9 s after a 3 s grace"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        refused_after >= Duration::from_millis(2900),
        "the old secret was refused {refused_after:?} after the reset, before its 3 s grace ended"
    );
    let a = r.hook_hmac("rot", &old, "rot-old-after").await;
    let j = expect(&a, 403, "old secret after the grace");
    assert_eq!(j["error"], "invalid_credential");
    let a = r.hook_hmac("rot", &new, "rot-new-after").await;
    accepted(&a, "new secret after the grace");
    r.wait_line("the event signed with the new secret", |l| {
        l["id"] == "rot-new-after"
    })
    .await;

    // No body: no grace, the previous secret stops at once.
    let a = r.reset_secret("rot", None).await;
    let j = expect(&a, 200, "reset-secret without a body");
    let third = j["secret"].as_str().expect("the new secret").to_owned();
    assert_ne!(third, new);
    assert_eq!(j["grace_until"], Value::Null, "{j}");
    let a = r.hook_hmac("rot", &new, "rot-second-after-reset").await;
    expect(&a, 403, "previous secret after a reset without grace");
    let a = r.hook_hmac("rot", &third, "rot-third").await;
    accepted(&a, "the third secret");

    // Refusals.
    let a = r.reset_secret("rot", Some(604_801)).await;
    expect(&a, 400, "grace_seconds above 604800");
    let a = r.reset_secret("nope", Some(3)).await;
    expect(&a, 404, "reset-secret of an unknown source");
    let a = r
        .create(json!({
            "id": "open",
            "auth": {"scheme": "none", "allow_unauthenticated": true},
            "sinks": ["out"]
        }))
        .await;
    let j = expect(&a, 201, "create a source without auth");
    assert!(j.get("secret").is_none(), "no secret for scheme none: {j}");
    assert_eq!(j["has_secret"], false);
    let a = r.reset_secret("open", None).await;
    expect(&a, 400, "reset-secret of a scheme none source");
    // The third secret is unchanged by the refused resets.
    let a = r.hook_hmac("rot", &third, "rot-third-again").await;
    accepted(&a, "the third secret after refused resets");

    let stderr = r.finish().await;
    assert_audit(&stderr, "source.reset_secret", Some("rot"));
}

#[tokio::test]
async fn bulk_applies_all_or_nothing() {
    const GIVEN: &str = "given-bulk-hmac-secret-0f3e9d21";
    let mut r = Run::start("", "");
    r.secret(GIVEN);
    let entry_a =
        json!({"id": "bulk-a", "auth": {"scheme": "token", "prefix": "Bearer "}, "sinks": ["out"]});
    let entry_b = |sink: &str| {
        json!({
            "id": "bulk-b",
            "auth": {"scheme": "hmac_sha256", "secret": GIVEN},
            "sinks": [sink]
        })
    };

    // The second entry names a sink that does not exist: 400, nothing applied.
    let a = r.bulk(json!([entry_a, entry_b("nope")])).await;
    let j = expect(&a, 400, "bulk with an unknown sink");
    let paths = issue_paths(&j);
    assert!(
        paths.iter().any(|p| p == "sources[1].sinks[0]"),
        "an issue at sources[1].sinks[0]: {j}"
    );
    r.source_absent("bulk-a").await;
    r.source_absent("bulk-b").await;
    let a = r
        .hook_bearer("bulk-a", "anything-at-all-123", "bulk-a-none")
        .await;
    expect(&a, 404, "hook of the valid entry of a refused bulk");

    // One entry is a config-file source: 409, nothing applied.
    let a = r
        .bulk(json!([
            {"id": "bulk-c", "auth": {"scheme": "token"}, "sinks": ["out"]},
            {"id": "cfg", "auth": {"scheme": "token", "prefix": "Bearer "}, "sinks": ["out"]}
        ]))
        .await;
    expect(&a, 409, "bulk touching a config source");
    r.source_absent("bulk-c").await;
    let a = r.hook_bearer("cfg", CFG_TOKEN, "cfg-after-bulk").await;
    accepted(&a, "cfg unchanged by the refused bulk");

    // A valid bulk creates all, answered in request order; only generated secrets are shown.
    let a = r.bulk(json!([entry_a, entry_b("out")])).await;
    let j = expect(&a, 200, "valid bulk");
    let list = j["sources"].as_array().expect("sources array");
    assert_eq!(list.len(), 2, "{j}");
    assert_eq!(list[0]["id"], "bulk-a");
    assert_eq!(list[1]["id"], "bulk-b");
    let token_a = list[0]["secret"]
        .as_str()
        .expect("bulk-a's generated secret")
        .to_owned();
    assert!(
        token_a.len() == 43
            && URL_SAFE_NO_PAD
                .decode(&token_a)
                .is_ok_and(|k| k.len() == 32),
        "token secret is base64url without padding of 32 bytes"
    );
    assert!(
        list[1].get("secret").is_none(),
        "a given secret is not answered back: {}",
        list[1]
    );
    assert_eq!(list[1]["has_secret"], true);
    for s in list {
        let mut s = s.clone();
        s.as_object_mut().unwrap().remove("secret");
        check_source(&s, s["id"].as_str().unwrap());
        assert_eq!(s["origin"], "api");
    }
    let a = r.hook_bearer("bulk-a", &token_a, "bulk-a-1").await;
    accepted(&a, "bulk-a with its generated token");
    let a = r.hook_hmac("bulk-b", GIVEN, "bulk-b-1").await;
    accepted(&a, "bulk-b with its given secret");
    r.wait_line("bulk-a's event", |l| l["id"] == "bulk-a-1")
        .await;
    r.wait_line("bulk-b's event", |l| l["id"] == "bulk-b-1")
        .await;

    // A bulk updates by id: same scheme and no secret keeps the current one.
    let a = r
        .bulk(json!([{
            "id": "bulk-a",
            "name": "renamed",
            "auth": {"scheme": "token", "prefix": "Bearer "},
            "sinks": ["out"]
        }]))
        .await;
    let j = expect(&a, 200, "bulk update");
    assert_eq!(j["sources"][0]["name"], "renamed");
    assert!(
        j["sources"][0].get("secret").is_none(),
        "no new secret when the scheme stays: {j}"
    );
    let a = r.hook_bearer("bulk-a", &token_a, "bulk-a-2").await;
    accepted(&a, "bulk-a keeps its token through the update");

    let stderr = r.finish().await;
    assert_audit(&stderr, "sources.bulk", None);
}

#[tokio::test]
async fn delete_removes_the_hook_and_config_sources_are_read_only() {
    let mut r = Run::start("", "");
    let token = r.create_token_source("gone").await;
    let a = r.hook_bearer("gone", &token, "gone-1").await;
    accepted(&a, "gone before the delete");

    let a = r.ops("DELETE", "/api/v1/sources/gone", None).await;
    expect(&a, 204, "delete gone");
    assert!(a.body.is_empty(), "204 has an empty body");
    let a = r.hook_bearer("gone", &token, "gone-2").await;
    expect(&a, 404, "hook of a deleted source");
    r.source_absent("gone").await;
    let a = r.ops("DELETE", "/api/v1/sources/gone", None).await;
    expect(&a, 404, "delete again");
    let a = r.ops("GET", "/api/v1/sources", None).await;
    let j = expect(&a, 200, "list");
    assert!(
        !j["sources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == "gone"),
        "{j}"
    );

    // The config file's source: no PUT, DELETE or reset-secret through the API.
    let s = r.source("cfg").await;
    assert_eq!(s["origin"], "config");
    let a = r
        .ops("PUT", "/api/v1/sources/cfg", Some(json!({"auth": {"scheme": "token", "prefix": "Bearer "}, "sinks": ["out"], "suppressed": true})))
        .await;
    expect(&a, 409, "PUT of a config source");
    let a = r.ops("DELETE", "/api/v1/sources/cfg", None).await;
    expect(&a, 409, "DELETE of a config source");
    let a = r.reset_secret("cfg", Some(10)).await;
    expect(&a, 409, "reset-secret of a config source");
    let s = r.source("cfg").await;
    assert_eq!(s["suppressed"], false, "{s}");
    assert_eq!(s["grace_until"], Value::Null, "{s}");
    let a = r.hook_bearer("cfg", CFG_TOKEN, "cfg-still").await;
    accepted(&a, "cfg unchanged");
    r.wait_line("cfg's event", |l| l["id"] == "cfg-still").await;

    let stderr = r.finish().await;
    assert_audit(&stderr, "source.create", Some("gone"));
    assert_audit(&stderr, "source.delete", Some("gone"));
}

#[tokio::test]
async fn api_sources_survive_a_restart_and_a_corrupt_store_stops_the_start() {
    use std::os::unix::fs::PermissionsExt as _;

    let mut r = Run::start("", "");
    let hmac_secret = r
        .create_source("keep-hmac", json!({"scheme": "hmac_sha256"}))
        .await;
    let swh_secret = r
        .create_source("keep-swh", json!({"scheme": "standard_webhooks"}))
        .await;
    let a = r.hook_hmac("keep-hmac", &hmac_secret, "keep-1").await;
    accepted(&a, "keep-hmac before the restart");
    r.stop();

    let store = r.store_path();
    let meta = std::fs::metadata(&store)
        .unwrap_or_else(|e| panic!("{} after a clean stop: {e}", store.display()));
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "{} is readable by its owner only",
        store.display()
    );

    // Same data_dir: the API sources are back, their secrets still verify.
    r.launch();
    for id in ["keep-hmac", "keep-swh"] {
        let s = r.source(id).await;
        assert_eq!(s["origin"], "api", "{s}");
        assert_eq!(s["has_secret"], true, "{s}");
    }
    let a = r.hook_hmac("keep-hmac", &hmac_secret, "keep-2").await;
    accepted(&a, "keep-hmac after the restart");
    let body = generic_body("keep-3");
    let a = r
        .hook(
            "keep-swh",
            &swh_signed(&swh_secret, "msg_keep", &body),
            &body,
        )
        .await;
    accepted(&a, "keep-swh after the restart");
    r.wait_line("keep-hmac's event after the restart", |l| {
        l["id"] == "keep-2"
    })
    .await;
    r.wait_line("keep-swh's event after the restart", |l| {
        l["id"] == "keep-3"
    })
    .await;
    r.stop();

    // A corrupt store: the start fails naming the file, and the file is left as it was.
    let corrupt = b"{\"sources\": [ this is not JSON";
    std::fs::write(&store, corrupt).unwrap();
    let (status, stderr) = r.launch_expecting_failure();
    assert!(
        !status.success(),
        "started despite a corrupt {}; stderr:\n{stderr}",
        store.display()
    );
    assert!(
        stderr.contains(store.to_str().unwrap()),
        "the error names {}; stderr:\n{stderr}",
        store.display()
    );
    assert!(
        !stderr.contains("admin listener ready"),
        "the admin listener came up; stderr:\n{stderr}"
    );
    assert_eq!(
        std::fs::read(&store).unwrap(),
        corrupt,
        "the corrupt store is left untouched"
    );

    let stderr = r.finish().await;
    assert_audit(&stderr, "source.create", Some("keep-hmac"));
}

#[tokio::test]
async fn sighup_and_reload_apply_a_valid_file_and_keep_serving_on_an_invalid_one() {
    const ADDED: &str = "added-source-token-91ab7c3e";
    const ADDED2: &str = "added2-source-token-4f0e2d6b";
    const DUP: &str = "dup-config-token-8e8e1a1a";
    let mut r = Run::start("", "");
    for s in [ADDED, ADDED2, DUP] {
        r.secret(s);
    }
    let a = r.hook_bearer("cfg", CFG_TOKEN, "cfg-1").await;
    accepted(&a, "cfg before any reload");

    // SIGHUP with an invalid file: logged, the old config keeps serving.
    r.write_config("", &token_source("bad", ADDED, r#""missing-sink""#));
    let from = r.proc().line_count();
    r.proc().signal("-HUP");
    let deadline = Instant::now() + WAIT;
    loop {
        let lines = r.proc().lines_from(from);
        if lines.iter().any(|l| {
            l.contains(" ERROR ")
                && (l.to_lowercase().contains("reload")
                    || l.contains("missing-sink")
                    || l.contains("sources[1]"))
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no error logged within {WAIT:?} of SIGHUP with an invalid file; since the \
             signal:\n{}",
            lines.join("\n")
        );
        tokio::time::sleep(POLL).await;
    }
    let a = r.hook_bearer("cfg", CFG_TOKEN, "cfg-2").await;
    accepted(&a, "cfg after SIGHUP with an invalid file");
    let a = r.hook_bearer("bad", ADDED, "bad-1").await;
    expect(&a, 404, "the invalid file's source was not added");

    // SIGHUP with a valid changed file: the new source answers (bounded wait).
    r.write_config("", &token_source("added", ADDED, r#""out""#));
    r.proc().signal("-HUP");
    let deadline = Instant::now() + WAIT;
    let mut i = 0;
    loop {
        i += 1;
        let a = r.hook_bearer("added", ADDED, &format!("added-{i}")).await;
        match a.status.as_u16() {
            200 => break,
            404 => {}
            other => panic!("the added source answered {other} while reloading"),
        }
        assert!(
            Instant::now() < deadline,
            "the source added by SIGHUP does not answer within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let a = r.hook_bearer("cfg", CFG_TOKEN, "cfg-3").await;
    accepted(&a, "cfg after SIGHUP with a valid file");
    let s = r.source("added").await;
    assert_eq!(s["origin"], "config");

    // POST /api/v1/reload with an invalid file: 422 with issues; nothing changes.
    r.write_config("", &token_source("bad", ADDED2, r#""missing-sink""#));
    let a = r.ops("POST", "/api/v1/reload", None).await;
    let j = expect(&a, 422, "reload with an invalid file");
    let paths = issue_paths(&j);
    assert!(
        paths.iter().any(|p| p == "sources[1].sinks[0]"),
        "an issue at sources[1].sinks[0]: {j}"
    );
    let a = r.hook_bearer("added", ADDED, "added-after-422").await;
    accepted(&a, "added after a refused reload");
    let a = r.hook_bearer("bad", ADDED2, "bad-2").await;
    expect(&a, 404, "the refused file's source");

    // A valid file through the API: the answer lists what changed.
    r.write_config("", &token_source("added2", ADDED2, r#""out""#));
    let a = r.ops("POST", "/api/v1/reload", None).await;
    let j = expect(&a, 200, "reload with a valid file");
    assert_eq!(j["status"], "reloaded", "{j}");
    assert_eq!(j["sources"]["added"], json!(["added2"]), "{j}");
    assert_eq!(j["sources"]["removed"], json!(["added"]), "{j}");
    assert_eq!(j["sources"]["changed"], json!([]), "{j}");
    for k in ["added", "removed", "changed"] {
        assert_eq!(j["sinks"][k], json!([]), "{j}");
    }
    assert_eq!(j["restart_needed"], json!([]), "{j}");
    let a = r.hook_bearer("added", ADDED, "added-gone").await;
    expect(&a, 404, "the source removed by the reload");
    let a = r.hook_bearer("added2", ADDED2, "added2-1").await;
    accepted(&a, "the source added by the reload");
    r.wait_line("added2's event", |l| l["id"] == "added2-1")
        .await;

    // A config source with the id of an API source: the reload is refused.
    let dup_token = r.create_token_source("dup").await;
    let sources = format!(
        "{}{}",
        token_source("added2", ADDED2, r#""out""#),
        token_source("dup", DUP, r#""out""#)
    );
    r.write_config("", &sources);
    let a = r.ops("POST", "/api/v1/reload", None).await;
    expect(
        &a,
        422,
        "reload with a config source clashing with an API source",
    );
    let a = r.hook_bearer("dup", &dup_token, "dup-1").await;
    accepted(&a, "the API source dup after the refused reload");
    let a = r.hook_bearer("dup", DUP, "dup-2").await;
    expect(&a, 403, "the refused file's token for dup");

    let stderr = r.finish().await;
    assert_audit(&stderr, "config.reload", None);
}

#[tokio::test]
async fn test_endpoints_report_each_sink() {
    // A port nobody listens on: bound, then released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let http_sink = format!(
        r#"
[[sinks]]
id = "closed"
type = "http"
url = "http://127.0.0.1:{port}/in"
connect_timeout = "1s"
request_timeout = "2s"
[sinks.batch]
linger = "0ms"
"#
    );
    let mut r = Run::start(&http_sink, "");
    let a = r
        .create(json!({
            "id": "probe",
            "vendor": "prisma_cloud",
            "auth": {"scheme": "hmac_sha256"},
            "sinks": ["out", "closed"]
        }))
        .await;
    expect(&a, 201, "create probe");

    // The source test: the file sink takes it, the closed port does not.
    let a = r.ops("POST", "/api/v1/sources/probe/test", None).await;
    let j = expect(&a, 200, "test probe");
    assert_eq!(j["status"], "failed", "{j}");
    assert!(j["events"].as_u64().is_some_and(|n| n >= 1), "{j}");
    let results = j["sinks"].as_array().expect("sinks array");
    assert_eq!(results.len(), 2, "{j}");
    let by_id = |id: &str| {
        results
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("no result for {id}: {j}"))
            .clone()
    };
    let out = by_id("out");
    assert_eq!(out["status"], "ok", "{j}");
    assert_eq!(out["error"], Value::Null, "{j}");
    assert_eq!(out["http_status"], Value::Null, "{j}");
    let http = by_id("closed");
    assert_eq!(http["status"], "failed", "{j}");
    assert!(
        http["error"].as_str().is_some_and(|e| !e.is_empty()),
        "the failure says why: {j}"
    );
    assert_eq!(http["http_status"], Value::Null, "nothing answered: {j}");
    r.wait_line("probe's test event", |l| l["source"] == "probe")
        .await;

    // A source whose sinks all work.
    let a = r.ops("POST", "/api/v1/sources/cfg/test", None).await;
    let j = expect(&a, 200, "test cfg");
    assert_eq!(j["status"], "ok", "{j}");
    assert_eq!(j["sinks"][0]["id"], "out", "{j}");
    assert_eq!(j["sinks"][0]["status"], "ok", "{j}");

    r.wait_line("cfg's test event", |l| l["source"] == "cfg")
        .await;

    // The sink test: one event straight to the file.
    let before = read_lines(&r.out()).len();
    let a = r.ops("POST", "/api/v1/sinks/out/test", None).await;
    let j = expect(&a, 200, "test sink out");
    assert_eq!(
        j,
        json!({"id": "out", "status": "ok", "http_status": null, "error": null})
    );
    let deadline = Instant::now() + WAIT;
    while read_lines(&r.out()).len() < before + 1 {
        assert!(
            Instant::now() < deadline,
            "no test event line in the file within {WAIT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
    let a = r.ops("POST", "/api/v1/sinks/closed/test", None).await;
    let j = expect(&a, 200, "test sink closed");
    assert_eq!(j["id"], "closed");
    assert_eq!(j["status"], "failed", "{j}");
    assert!(j["error"].as_str().is_some_and(|e| !e.is_empty()), "{j}");

    // Unknown ids, and a read token.
    let a = r.ops("POST", "/api/v1/sinks/nope/test", None).await;
    expect(&a, 404, "test of an unknown sink");
    let a = r.ops("POST", "/api/v1/sources/nope/test", None).await;
    expect(&a, 404, "test of an unknown source");
    let a = r
        .api("POST", "/api/v1/sinks/out/test", Some(VIEWER), None)
        .await;
    expect(&a, 403, "sink test with a read token");

    // The sinks list.
    let a = r.api("GET", "/api/v1/sinks", Some(VIEWER), None).await;
    let j = expect(&a, 200, "list sinks");
    let sinks = j["sinks"].as_array().expect("sinks array");
    let ids: Vec<&str> = sinks.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["closed", "out"], "{j}");
    assert_eq!(sinks[0]["type"], "http", "{j}");
    assert_eq!(sinks[1]["type"], "file", "{j}");
    for s in sinks {
        assert!(s["ready"].is_boolean(), "{j}");
        assert_eq!(s["queue"]["type"], "memory", "{j}");
        assert!(s["queue"]["events"].is_u64(), "{j}");
        assert!(s["queue"]["bytes"].is_u64(), "{j}");
        assert!(s["queue"]["oldest_event_age_seconds"].is_number(), "{j}");
    }

    let stderr = r.finish().await;
    assert_audit(&stderr, "source.test", Some("probe"));
    assert_audit(&stderr, "sink.test", Some("out"));
}

#[tokio::test]
async fn suppressed_sources_queue_nothing_and_disabled_ones_answer_404() {
    let mut r = Run::start("", "");
    let token = r.create_token_source("quiet").await;
    let a = r.hook_bearer("quiet", &token, "quiet-1").await;
    accepted(&a, "quiet before suppression");
    r.wait_line("quiet's first event", |l| l["id"] == "quiet-1")
        .await;

    // Suppressed: still verified, answered 200 with suppressed true, nothing queued.
    let update = |fields: Value| {
        let mut b = json!({"auth": {"scheme": "token", "prefix": "Bearer "}, "sinks": ["out"]});
        for (k, v) in fields.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let a = r
        .ops(
            "PUT",
            "/api/v1/sources/quiet",
            Some(update(json!({"suppressed": true}))),
        )
        .await;
    let j = expect(&a, 200, "suppress quiet");
    assert!(
        j.get("secret").is_none(),
        "same scheme, no secret: nothing generated: {j}"
    );
    check_source(&j, "quiet");
    assert_eq!(j["suppressed"], true);
    assert_eq!(j["has_secret"], true);
    let a = r.hook_bearer("quiet", &token, "quiet-2").await;
    let j = expect(&a, 200, "suppressed hook");
    assert_eq!(j, json!({"accepted": 1, "suppressed": true}));
    let a = r.hook_bearer("quiet", WRONG_KEY, "quiet-3").await;
    expect(&a, 403, "suppressed sources still verify");
    // A later event of another source on the same sink is written; the suppressed one is not.
    let a = r.hook_bearer("cfg", CFG_TOKEN, "marker-1").await;
    accepted(&a, "marker");
    r.wait_line("the marker", |l| l["id"] == "marker-1").await;
    let ids: Vec<Value> = read_lines(&r.out())
        .iter()
        .map(|l| l["id"].clone())
        .collect();
    assert!(
        !ids.contains(&json!("quiet-2")) && !ids.contains(&json!("quiet-3")),
        "a suppressed source's event reached the sink: {ids:?}"
    );

    // Disabled: 404 exactly as an unknown source.
    let a = r
        .ops(
            "PUT",
            "/api/v1/sources/quiet",
            Some(update(json!({"id": "quiet", "enabled": false}))),
        )
        .await;
    let j = expect(&a, 200, "disable quiet");
    assert_eq!(j["enabled"], false);
    assert_eq!(j["suppressed"], false);
    let body = generic_body("quiet-4");
    let disabled = r.hook("quiet", &bearer(&token), &body).await;
    let unknown = r.hook("no-such-source", &bearer(&token), &body).await;
    expect(&disabled, 404, "disabled source");
    assert_eq!(
        disabled.body, unknown.body,
        "a disabled source looks unknown"
    );

    // Enabled again, with the same secret.
    let a = r
        .ops(
            "PUT",
            "/api/v1/sources/quiet",
            Some(update(json!({"enabled": true}))),
        )
        .await;
    expect(&a, 200, "enable quiet");
    let a = r.hook_bearer("quiet", &token, "quiet-5").await;
    accepted(&a, "quiet enabled again");
    r.wait_line("quiet's event after enabling", |l| l["id"] == "quiet-5")
        .await;

    // PUT refusals.
    let a = r
        .ops(
            "PUT",
            "/api/v1/sources/quiet",
            Some(update(json!({"id": "other"}))),
        )
        .await;
    expect(&a, 400, "PUT with an id other than the path's");
    let a = r
        .ops("PUT", "/api/v1/sources/nope", Some(update(json!({}))))
        .await;
    expect(&a, 404, "PUT of an unknown source");
    r.source_absent("nope").await;

    let stderr = r.finish().await;
    assert_audit(&stderr, "source.update", Some("quiet"));
}

#[tokio::test]
async fn bearer_tokens_and_roles_guard_the_api() {
    let mut r = Run::start("", "");
    let create = json!({"id": "guarded", "auth": {"scheme": "token"}, "sinks": ["out"]});
    let raw = |v: &str| vec![("authorization".to_owned(), v.to_owned())];

    // 401 with WWW-Authenticate: Bearer for a missing, malformed or unknown token.
    for (what, headers) in [
        ("no token", Vec::new()),
        (
            "basic credentials",
            raw(&format!("Basic {}", STANDARD.encode(format!("ops:{OPS}")))),
        ),
        ("a token without Bearer", raw(OPS)),
        ("an unknown token", raw(&format!("Bearer {WRONG_TOKEN}"))),
    ] {
        let a = r.api_raw("GET", "/api/v1/sources", &headers, None).await;
        expect(&a, 401, what);
        let challenge = a
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"));
        assert!(challenge.starts_with("Bearer"), "{what}: {challenge}");
    }
    // A creation with no token or an unknown one is 401; the read token reads, and changes
    // nothing.
    for (token, status, what) in [
        (None, 401, "create without a token"),
        (Some(WRONG_TOKEN), 401, "create with a wrong token"),
        (Some(VIEWER), 403, "create with a read token"),
    ] {
        let a = r
            .api("POST", "/api/v1/sources", token, Some(create.clone()))
            .await;
        expect(&a, status, what);
    }
    let a = r
        .api("DELETE", "/api/v1/sources/cfg", Some(VIEWER), None)
        .await;
    expect(&a, 403, "delete with a read token");
    let a = r.api("POST", "/api/v1/reload", Some(VIEWER), None).await;
    expect(&a, 403, "reload with a read token");
    let a = r.api("GET", "/api/v1/sources", Some(VIEWER), None).await;
    let j = expect(&a, 200, "list with a read token");
    assert_eq!(j["sources"].as_array().map(Vec::len), Some(1), "{j}");
    let a = r
        .api("GET", "/api/v1/sources/cfg", Some(VIEWER), None)
        .await;
    check_source(&expect(&a, 200, "get with a read token"), "cfg");
    r.source_absent("guarded").await;

    // The OpenAPI document is public.
    let a = r.api("GET", "/api/v1/openapi.json", None, None).await;
    let j = expect(&a, 200, "openapi.json without a token");
    assert!(
        j["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")),
        "OpenAPI 3.1: {}",
        j["openapi"]
    );

    // Unknown routes, wrong methods, bad bodies.
    let a = r.ops("GET", "/api/v1/nothing", None).await;
    expect(&a, 404, "unknown route");
    let a = r.ops("DELETE", "/api/v1/sources", None).await;
    expect(&a, 405, "DELETE on the sources collection");
    let allow = a
        .headers
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_uppercase();
    assert!(
        allow.contains("GET") && allow.contains("POST"),
        "Allow names GET and POST: {allow:?}"
    );
    let mut unknown_key = create.clone();
    unknown_key["colour"] = json!("blue");
    let a = r.create(unknown_key).await;
    let j = expect(&a, 400, "an unknown key");
    assert!(
        issue_paths(&j).iter().any(|p| p == "colour"),
        "the issue names the key: {j}"
    );
    let reference = json!({
        "id": "guarded",
        "auth": {"scheme": "token", "secret": "${HOME}"},
        "sinks": ["out"]
    });
    let a = r.create(reference).await;
    let j = expect(&a, 400, "a ${ENV} secret reference");
    assert!(
        issue_paths(&j).iter().any(|p| p == "auth.secret"),
        "the issue is at auth.secret: {j}"
    );
    r.source_absent("guarded").await;
    let mut big = create.clone();
    big["name"] = json!("x".repeat(1024 * 1024));
    let a = r.create(big).await;
    expect(&a, 413, "a body over 1 MiB");
    r.source_absent("guarded").await;

    // The hooks listener does not serve the API.
    let hooks = r.hooks;
    let req = Request::get(format!("http://{hooks}/api/v1/sources"))
        .header("authorization", format!("Bearer {OPS}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let a = send(hooks, req, "GET /api/v1/sources on the hooks listener").await;
    assert_ne!(
        a.status,
        StatusCode::OK,
        "the hooks listener serves the API"
    );
    r.answers.push(format!(
        "hooks GET /api/v1/sources -> {} {:?} {}",
        a.status,
        a.headers,
        String::from_utf8_lossy(&a.body)
    ));

    r.finish().await;
}
