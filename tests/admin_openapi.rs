//! The admin API against its OpenAPI document, `api/openapi.json`.
//!
//! One gateway, started from a config file with an admin listener on 127.0.0.1:0, is driven
//! through every documented operation, with requests chosen to produce every documented status:
//! success, 400 (malformed and invalid bodies, secret references, unknown keys), 401 (no header,
//! another scheme, an unknown token), 403 (a `read` token on anything but GET), 404, 409 (taken
//! ids, sources from the config file), 413 (bodies over 1 MiB) and 422 (an invalid config file on
//! reload). Every answer is checked against the document:
//!
//! * its status must be listed for that operation;
//! * its body must validate (JSON Schema draft 2020-12, formats checked) against that response's
//!   schema, and `Content-Type` must be `application/json`; a response without content must
//!   have an empty body;
//! * the response's required headers (`Location`, `WWW-Authenticate`) must be present and
//!   match their schemas;
//! * a known path with a method it does not list must answer 405 as
//!   `components/responses/MethodNotAllowed`, with `Allow` naming exactly the listed methods; an
//!   unknown route must answer 404 as `components/responses/NotFound`; either answers 401 as
//!   `components/responses/Unauthorized` without a valid token, which is checked first;
//! * a request body the server accepted (2xx) must validate against the operation's request
//!   schema.
//!
//! Beyond the document, the answers are checked for what they claim: generated secrets have the
//! scheme's format and open the hook, a kept secret still opens it, grace periods let the old
//! secret through, failed changes apply nothing, lists are sorted, sink tests reach (or fail to
//! reach) their destinations, disabled sources are gone from the hooks and suppressed ones queue
//! nothing, API sources persist in a file only the gateway's user can read, and a reload reports
//! what changed (or refuses an invalid file and keeps serving).
//!
//! At the end every (path, method, status) in the document must have been seen, so the document
//! and this test cannot drift apart; `GET /api/v1/openapi.json` must serve the file (compared as
//! JSON). A second test checks the document itself: its `$ref`s resolve, its schemas compile and
//! are closed where the API promises a shape.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/hec.rs"]
mod hec;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bytes::Bytes;
use common::*;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::{json, Value};

/// The document, as the server embeds it.
const DOCUMENT: &str = include_str!("../api/openapi.json");

const ADMIN_TOKEN: &str = "admin-token-for-tests";
const READ_TOKEN: &str = "read-token-for-tests";
const HEC_TOKEN: &str = "hec-token-for-tests";
/// The token of the sources in the config file.
const CFG_SECRET: &str = "config-source-token";
/// Request bodies above this are refused with 413.
const MAX_BODY: usize = 1024 * 1024;

/// The HTTP methods an OpenAPI path item may hold.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

// ---------------------------------------------------------------------------------------------
// The document and the checks against it
// ---------------------------------------------------------------------------------------------

/// The parsed document and the (path template, method, status) triples answered so far.
struct Spec {
    doc: Value,
    seen: Mutex<BTreeSet<(String, String, u16)>>,
}

impl Spec {
    fn load() -> Spec {
        let doc: Value = serde_json::from_str(DOCUMENT).expect("api/openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        Spec {
            doc,
            seen: Mutex::new(BTreeSet::new()),
        }
    }

    /// Follows a local `$ref` (`#/components/...`) to what it names.
    fn deref<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        for _ in 0..8 {
            let Some(r) = v.get("$ref").and_then(Value::as_str) else {
                return v;
            };
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("non-local $ref {r}"));
            v = self
                .doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {r}"));
        }
        panic!("$ref chain too long at {v}");
    }

    /// Validates `instance` against `schema` (which may `$ref` into the document's components)
    /// with draft 2020-12, formats included; returns the problems found.
    fn schema_errors(&self, schema: &Value, instance: &Value) -> Vec<String> {
        let Value::Object(schema) = schema else {
            panic!("schema is not an object: {schema}");
        };
        let mut root = schema.clone();
        root.insert(
            "$schema".to_owned(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        root.insert("components".to_owned(), self.doc["components"].clone());
        let root = Value::Object(root);
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("schema does not compile: {e}\n{schema:?}"));
        validator
            .iter_errors(instance)
            .map(|e| format!("{e} (at {:?})", e.instance_path().as_str()))
            .collect()
    }

    /// Validates `instance` against `components/schemas/{name}`.
    fn assert_schema(&self, name: &str, instance: &Value) {
        let errors = self.schema_errors(
            &json!({ "$ref": format!("#/components/schemas/{name}") }),
            instance,
        );
        assert!(errors.is_empty(), "{instance} is not a {name}: {errors:#?}");
    }

    /// The path template matching a concrete path, and its path item. As OpenAPI says, a
    /// literal segment wins over a template (`/dead-letters/replay` over
    /// `/dead-letters/{entry}`); two equally literal matches are an error in the document.
    fn route(&self, path: &str) -> Option<(&str, &Value)> {
        let path = path.split('?').next().unwrap_or(path);
        let segments: Vec<&str> = path.split('/').collect();
        let mut found: Option<(usize, &str, &Value)> = None;
        for (template, item) in self.doc["paths"].as_object().expect("paths") {
            let parts: Vec<&str> = template.split('/').collect();
            let matches = parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(t, s)| {
                    (t.starts_with('{') && t.ends_with('}') && !s.is_empty()) || t == s
                });
            if matches {
                let literal = parts.iter().filter(|t| !t.starts_with('{')).count();
                match found {
                    Some((best, _, _)) if best > literal => {}
                    Some((best, _, _)) if best == literal => {
                        panic!("{path} matches two path templates")
                    }
                    _ => found = Some((literal, template.as_str(), item)),
                }
            }
        }
        found.map(|(_, t, item)| (t, item))
    }

    /// Checks one answer against the document; `request` is the JSON request body, if any.
    fn check(&self, method: &Method, path: &str, request: Option<&Value>, answer: &Answer) {
        let status = answer.status.as_u16();
        let label = format!(
            "{method} {path} -> {status} {}",
            String::from_utf8_lossy(&answer.body)
        );
        let route = self.route(path);
        let m = method.as_str().to_ascii_lowercase();
        let operation = route.and_then(|(_, item)| item.get(&m));
        if operation.is_none() && status == 401 {
            // The token is checked before the route.
            let response = &self.doc["components"]["responses"]["Unauthorized"];
            self.check_response(&label, self.deref(response), answer);
            return;
        }
        let Some((template, item)) = route else {
            assert_eq!(status, 404, "{label}: an unknown route must answer 404");
            let response = &self.doc["components"]["responses"]["NotFound"];
            self.check_response(&label, self.deref(response), answer);
            return;
        };
        let Some(operation) = operation else {
            assert_eq!(status, 405, "{label}: {template} has no {m}, so 405");
            let response = &self.doc["components"]["responses"]["MethodNotAllowed"];
            self.check_response(&label, self.deref(response), answer);
            let allow: BTreeSet<String> = answer
                .headers
                .get("allow")
                .unwrap_or_else(|| panic!("{label}: no Allow header"))
                .to_str()
                .unwrap()
                .split(',')
                .map(|s| s.trim().to_ascii_uppercase())
                .filter(|s| !s.is_empty())
                .collect();
            let listed: BTreeSet<String> = METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| m.to_ascii_uppercase())
                .collect();
            assert_eq!(
                allow, listed,
                "{label}: Allow must list {template}'s methods"
            );
            return;
        };
        let response = operation["responses"]
            .get(status.to_string())
            .unwrap_or_else(|| panic!("{label}: {status} is not documented for {m} {template}"));
        self.check_response(&label, self.deref(response), answer);
        if let (Some(body), true) = (request, (200..300).contains(&status)) {
            let schema =
                &self.deref(&operation["requestBody"])["content"]["application/json"]["schema"];
            assert!(
                !schema.is_null(),
                "{label}: {m} {template} took a body it does not document"
            );
            let errors = self.schema_errors(schema, body);
            assert!(
                errors.is_empty(),
                "{label}: the server accepted a request body the document refuses: {body}\n{errors:#?}"
            );
        }
        self.seen
            .lock()
            .unwrap()
            .insert((template.to_owned(), m, status));
    }

    /// Checks headers and body of an answer against one (dereferenced) response object.
    fn check_response(&self, label: &str, response: &Value, answer: &Answer) {
        if let Some(headers) = response.get("headers").and_then(Value::as_object) {
            for (name, header) in headers {
                let header = self.deref(header);
                match answer.headers.get(name.as_str()) {
                    None => assert!(
                        header.get("required") != Some(&Value::Bool(true)),
                        "{label}: header {name} missing"
                    ),
                    Some(value) => {
                        let value = json!(value.to_str().expect("header is text"));
                        let errors = self.schema_errors(&header["schema"], &value);
                        assert!(errors.is_empty(), "{label}: header {name}: {errors:#?}");
                    }
                }
            }
        }
        match response.get("content") {
            None => assert!(
                answer.body.is_empty(),
                "{label}: the document says no content"
            ),
            Some(content) => {
                let schema = &content["application/json"]["schema"];
                assert!(!schema.is_null(), "{label}: only JSON is documented");
                let content_type = answer
                    .headers
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                assert!(
                    content_type.starts_with("application/json"),
                    "{label}: Content-Type {content_type:?}"
                );
                let body: Value = serde_json::from_slice(&answer.body)
                    .unwrap_or_else(|e| panic!("{label}: body is not JSON: {e}"));
                let errors = self.schema_errors(schema, &body);
                assert!(
                    errors.is_empty(),
                    "{label}: body does not match the document: {errors:#?}"
                );
            }
        }
    }

    /// Every (path, method, status) the document lists that no answer has shown.
    fn unseen(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        let mut missing = Vec::new();
        for (template, item) in self.doc["paths"].as_object().unwrap() {
            for m in METHODS {
                let Some(operation) = item.get(m) else {
                    continue;
                };
                for status in operation["responses"].as_object().unwrap().keys() {
                    let code: u16 = status.parse().unwrap_or_else(|_| {
                        panic!("{m} {template}: status {status} is not a code")
                    });
                    if !seen.contains(&(template.clone(), m.to_owned(), code)) {
                        missing.push(format!("{} {template} {code}", m.to_ascii_uppercase()));
                    }
                }
            }
        }
        missing
    }

    /// Every (path, method) in the document.
    fn operations(&self) -> Vec<(String, String)> {
        let mut all = Vec::new();
        for (template, item) in self.doc["paths"].as_object().unwrap() {
            for m in METHODS {
                if item.get(m).is_some() {
                    all.push((template.clone(), m.to_owned()));
                }
            }
        }
        all
    }

    /// Every (path, method) some answer came from.
    fn exercised(&self) -> BTreeSet<(String, String)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(p, m, _)| (p.clone(), m.clone()))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    /// A raw `Authorization` header value.
    Header(&'a str),
}

const ADMIN: Auth<'static> = Auth::Bearer(ADMIN_TOKEN);
const READ: Auth<'static> = Auth::Bearer(READ_TOKEN);

enum Body {
    None,
    Json(Value),
    Raw(Vec<u8>),
}

/// An answer from the admin listener, already checked against the document.
struct Reply {
    answer: Answer,
    json: Value,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.answer
            .headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }
}

struct Admin<'a> {
    spec: &'a Spec,
    addr: SocketAddr,
}

impl Admin<'_> {
    /// Sends one request and checks the answer against the document, whatever its status.
    async fn request(&self, method: Method, path: &str, auth: Auth<'_>, body: Body) -> Reply {
        let mut b = Request::builder()
            .method(method.clone())
            .uri(format!("http://{}{path}", self.addr));
        match auth {
            Auth::None => {}
            Auth::Bearer(token) => b = b.header("authorization", format!("Bearer {token}")),
            Auth::Header(value) => b = b.header("authorization", value),
        }
        let (bytes, request) = match body {
            Body::None => (Vec::new(), None),
            Body::Json(v) => (serde_json::to_vec(&v).unwrap(), Some(v)),
            Body::Raw(raw) => (raw, None),
        };
        if !bytes.is_empty() {
            b = b.header("content-type", "application/json");
        }
        let req = b.body(Full::new(Bytes::from(bytes))).unwrap();
        let answer = send(self.addr, req).await;
        self.spec.check(&method, path, request.as_ref(), &answer);
        let json = if answer.body.is_empty() {
            Value::Null
        } else {
            answer.json()
        };
        Reply { answer, json }
    }

    /// Sends one request, asserts its status is `expect`, and checks the answer against the
    /// document.
    async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Body,
        expect: u16,
    ) -> Reply {
        let what = format!("{method} {path}");
        let reply = self.request(method, path, auth, body).await;
        assert_eq!(
            reply.answer.status.as_u16(),
            expect,
            "{what}: {}",
            String::from_utf8_lossy(&reply.answer.body)
        );
        reply
    }

    async fn get(&self, path: &str, expect: u16) -> Value {
        self.call(Method::GET, path, READ, Body::None, expect)
            .await
            .json
    }

    async fn post(&self, path: &str, body: Value, expect: u16) -> Value {
        self.call(Method::POST, path, ADMIN, Body::Json(body), expect)
            .await
            .json
    }

    /// A POST without a body.
    async fn post_empty(&self, path: &str, expect: u16) -> Value {
        self.call(Method::POST, path, ADMIN, Body::None, expect)
            .await
            .json
    }

    async fn put(&self, path: &str, body: Value, expect: u16) -> Value {
        self.call(Method::PUT, path, ADMIN, Body::Json(body), expect)
            .await
            .json
    }

    /// The source as the API shows it, or None when it answers 404.
    async fn source(&self, id: &str) -> Option<Value> {
        let path = format!("/api/v1/sources/{id}");
        let reply = self.request(Method::GET, &path, READ, Body::None).await;
        match reply.answer.status.as_u16() {
            200 => Some(reply.json),
            404 => None,
            other => panic!("GET {path}: {other}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------------------------

/// The config file's text. `{dir}` is the gateway's scratch directory.
fn config_text(hec_url: &str, closed: SocketAddr, listen: &str, rest: &str) -> String {
    format!(
        r#"
[server]
listen = "{listen}"
plaintext = true
shutdown_grace = "3s"
data_dir = "{{dir}}/data"

[metrics]
enabled = false

[admin]
listen = "127.0.0.1:0"
# This test sends many requests without a valid token on purpose.
max_auth_failures = 1000
[[admin.tokens]]
name = "ops"
token = "{ADMIN_TOKEN}"
[[admin.tokens]]
name = "viewer"
token = "{READ_TOKEN}"
role = "read"

[[sinks]]
id = "out"
type = "file"
path = "{{dir}}/out.ndjson"
fsync = "never"
[sinks.batch]
linger = "0ms"

[[sinks]]
id = "splunk"
type = "splunk_hec"
url = "{hec_url}"
token = "{HEC_TOKEN}"
dead_letter_path = "{{dir}}/dead/splunk.ndjson"
[sinks.batch]
linger = "0ms"

[[sinks]]
id = "dead"
type = "http"
url = "http://{closed}/in"
request_timeout = "2s"
[sinks.batch]
linger = "0ms"

[[sources]]
id = "cfg"
name = "From the file"
vendor = "generic"
sinks = ["out"]
[sources.auth]
scheme = "token"
secret = "{CFG_SECRET}"
{rest}"#
    )
}

/// A second config source, removed again by the reload.
const CFG_OLD: &str = r#"
[[sources]]
id = "cfg-old"
sinks = ["out"]
[sources.auth]
scheme = "token"
secret = "config-source-token"
"#;

/// Writes the config file and starts a gateway from it.
async fn start_from_file(dir: &Path, text: &str) -> (siemgate::Gateway, PathBuf) {
    let path = dir.join("siemgate.toml");
    std::fs::write(&path, text.replace("{dir}", dir.to_str().unwrap())).unwrap();
    // The gateway reloads from the file its settings were loaded from.
    let settings = siemgate::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let gateway = siemgate::start(settings).await.unwrap();
    (gateway, path)
}

/// An address on loopback where nothing listens. Port 1 lies below the kernel's
/// ephemeral range, so no listener bound to port 0 — this gateway's own, or another
/// test's — can take it between here and the sink test, as a released port could.
fn closed_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1))
}

/// A hook request to the hooks listener; returns the status and the JSON body (or Null).
async fn hook(addr: SocketAddr, id: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let a = send(
        addr,
        post(addr, id, headers, r#"[{"id":"e1","severity":"high"}]"#),
    )
    .await;
    let json = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
    (a.status.as_u16(), json)
}

/// A token source (default header `Authorization`, no prefix) routed to `sinks`.
fn token_source(id: &str, secret: Option<&str>, sinks: &[&str]) -> Value {
    let mut auth = json!({"scheme": "token"});
    if let Some(s) = secret {
        auth["secret"] = json!(s);
    }
    json!({"id": id, "auth": auth, "sinks": sinks})
}

/// A JSON body just over the limit.
fn oversized(id: &str) -> Vec<u8> {
    let body = json!({"id": id, "sinks": ["out"], "name": "a".repeat(MAX_BODY)});
    let bytes = serde_json::to_vec(&body).unwrap();
    assert!(bytes.len() > MAX_BODY);
    bytes
}

/// Asserts a generated secret has the format of its scheme.
fn assert_generated(scheme: &str, secret: &Value) {
    let s = secret
        .as_str()
        .unwrap_or_else(|| panic!("{scheme}: no generated secret"));
    let bytes = match scheme {
        "standard_webhooks" => STANDARD
            .decode(s.strip_prefix("whsec_").expect("whsec_ prefix"))
            .expect("base64"),
        "hmac_sha256" => {
            assert_eq!(s.len(), 64, "{s}");
            assert!(s.bytes().all(|b| b.is_ascii_hexdigit()), "{s}");
            hex::decode(s).unwrap()
        }
        "token" | "basic" => URL_SAFE_NO_PAD
            .decode(s)
            .expect("base64url without padding"),
        other => panic!("no secret for {other}"),
    };
    assert_eq!(bytes.len(), 32, "{scheme}: {s}");
}

/// Ids of a list answer, in order.
fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Whether an issue names `key_path`, or the object holding it with `word` in its message.
fn names_issue(error: &Value, key_path: &str, word: &str) -> bool {
    let parent = key_path.rsplit_once('.').map_or("", |(p, _)| p);
    error["issues"].as_array().is_some_and(|issues| {
        issues.iter().any(|i| {
            i["path"] == key_path
                || (i["path"] == parent && i["message"].as_str().unwrap_or("").contains(word))
        })
    })
}

fn issue_paths(error: &Value) -> Vec<String> {
    error["issues"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| i["path"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

/// Walks a JSON value, calling `f` on every object.
fn walk<'a>(v: &'a Value, f: &mut impl FnMut(&'a serde_json::Map<String, Value>)) {
    match v {
        Value::Object(m) => {
            f(m);
            m.values().for_each(|v| walk(v, f));
        }
        Value::Array(a) => a.iter().for_each(|v| walk(v, f)),
        _ => {}
    }
}

#[test]
fn the_document_is_consistent_and_its_schemas_are_strict() {
    let spec = Spec::load();
    // Every $ref resolves.
    walk(&spec.doc, &mut |m| {
        if let Some(r) = m.get("$ref").and_then(Value::as_str) {
            let pointer = r.strip_prefix('#').expect("local $ref");
            assert!(spec.doc.pointer(pointer).is_some(), "dangling $ref {r}");
        }
    });
    // Operation ids are unique; path parameters are declared; only status codes are listed;
    // every path but the document itself needs the bearer token.
    let mut operation_ids = BTreeSet::new();
    for (template, method) in spec.operations() {
        let item = &spec.doc["paths"][&template];
        let operation = &item[&method];
        let id = operation["operationId"].as_str().expect("operationId");
        assert!(
            operation_ids.insert(id.to_owned()),
            "duplicate operationId {id}"
        );
        let declared: BTreeSet<String> = item["parameters"]
            .as_array()
            .into_iter()
            .chain(operation["parameters"].as_array())
            .flatten()
            .map(|p| spec.deref(p))
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        let in_template: BTreeSet<String> = template
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect();
        assert_eq!(declared, in_template, "{method} {template}");
        for status in operation["responses"].as_object().unwrap().keys() {
            let code: u16 = status.parse().expect("a status code");
            assert!((200..600).contains(&code), "{method} {template} {status}");
        }
        let public = operation["security"] == json!([]);
        assert_eq!(
            public,
            template == "/api/v1/openapi.json",
            "{method} {template}"
        );
        if !public {
            assert!(
                operation["responses"].get("401").is_some(),
                "{method} {template} must document 401"
            );
        }
    }
    assert_eq!(spec.doc["security"], json!([{"bearer": []}]));
    assert_eq!(
        spec.doc["components"]["securitySchemes"]["bearer"],
        json!({
            "type": "http",
            "scheme": "bearer",
            "description": spec.doc["components"]["securitySchemes"]["bearer"]["description"]
        })
    );

    // Every schema compiles.
    for name in spec.doc["components"]["schemas"]
        .as_object()
        .unwrap()
        .keys()
    {
        spec.schema_errors(
            &json!({ "$ref": format!("#/components/schemas/{name}") }),
            &Value::Null,
        );
    }

    // The output schemas are closed: a leaked secret, a missing key or a malformed time fails.
    let source = json!({
        "id": "x", "name": null, "vendor": "generic", "hook_path": "/hooks/x",
        "auth_scheme": "token", "has_secret": true, "grace_until": null, "sinks": ["out"],
        "filter": {"min_severity": null, "kinds": [], "statuses": []}, "enabled": true,
        "suppressed": false, "origin": "api", "created_at": "2026-11-23T14:40:00.123Z",
        "updated_at": "2026-11-23T14:40:00Z", "events_accepted": 0, "last_event_at": null,
        "auth_failures": 0
    });
    spec.assert_schema("Source", &source);
    spec.assert_schema("SourceCreated", &source);
    let source_schema = json!({"$ref": "#/components/schemas/Source"});
    let mut leaked = source.clone();
    leaked["secret"] = json!(URL_SAFE_NO_PAD.encode([7u8; 32]));
    assert!(!spec.schema_errors(&source_schema, &leaked).is_empty());
    spec.assert_schema("SourceCreated", &leaked);
    for (key, bad) in [
        ("created_at", json!("2026-11-23 14:40")),
        ("created_at", json!("2026-11-23T14:40:00+01:00")),
        ("last_event_at", json!("yesterday")),
        ("vendor", json!("splunk")),
        ("origin", json!("file")),
        ("events_accepted", json!(-1)),
        ("name", json!(7)),
    ] {
        let mut wrong = source.clone();
        wrong[key] = bad.clone();
        assert!(
            !spec.schema_errors(&source_schema, &wrong).is_empty(),
            "{key} = {bad} must not validate"
        );
    }
    let mut missing = source.clone();
    missing.as_object_mut().unwrap().remove("auth_failures");
    assert!(!spec.schema_errors(&source_schema, &missing).is_empty());
    let mut ok = leaked.clone();
    ok["secret"] = json!(format!("whsec_{}", STANDARD.encode([1u8; 32])));
    spec.assert_schema("SourceCreated", &ok);
    ok["secret"] = json!("short");
    assert!(!spec
        .schema_errors(&json!({"$ref": "#/components/schemas/SourceCreated"}), &ok)
        .is_empty());
    spec.assert_schema("Error", &json!({"error": "no such source"}));
    spec.assert_schema(
        "Error",
        &json!({"error": "invalid", "issues": [{"path": "auth.secret", "message": "refused"}]}),
    );
    assert!(!spec
        .schema_errors(
            &json!({"$ref": "#/components/schemas/Error"}),
            &json!({"error": "x", "detail": "y"})
        )
        .is_empty());
    spec.assert_schema(
        "SinkTestResult",
        &json!({"id": "splunk", "status": "failed", "http_status": 503, "error": "503"}),
    );
    spec.assert_schema(
        "SourceCreateInput",
        &json!({"id": "a", "auth": {"scheme": "hmac_sha256", "encoding": "base64"}, "sinks": ["out"]}),
    );
    for input in [
        json!({"auth": {"scheme": "token"}, "sinks": ["out"]}),
        json!({"id": "a", "auth": {"scheme": "token", "username": "u"}, "sinks": ["out"]}),
        json!({"id": "a", "auth": {"scheme": "token"}, "sinks": ["out"], "colour": 1}),
    ] {
        assert!(
            !spec
                .schema_errors(
                    &json!({"$ref": "#/components/schemas/SourceCreateInput"}),
                    &input
                )
                .is_empty(),
            "{input} must not validate"
        );
    }
}

#[tokio::test]
async fn admin_api_answers_as_its_openapi_document_says() {
    let spec = Spec::load();
    let hec = hec::HecServer::start(HEC_TOKEN).await;
    let closed = closed_port();
    let dir = tempfile::tempdir().unwrap();
    let (gateway, config_path) = start_from_file(
        dir.path(),
        &config_text(&hec.url(), closed, "127.0.0.1:0", CFG_OLD),
    )
    .await;
    let admin = Admin {
        spec: &spec,
        addr: gateway.admin_addr().expect("admin listener"),
    };
    let hooks = gateway.hooks_addr();

    the_document_is_public_and_served_as_is(&admin).await;
    every_operation_needs_a_token_and_writes_an_admin_one(&admin).await;
    unknown_routes_and_methods(&admin).await;
    sinks_are_listed_and_tested(&admin, &hec).await;
    sources_are_listed(&admin).await;
    let tok_secret = sources_are_created(&admin, hooks, &dir.path().join("data")).await;
    sources_are_updated(&admin, hooks, &tok_secret).await;
    secrets_are_reset(&admin, hooks).await;
    sources_are_tested(&admin, dir.path()).await;
    sources_are_upserted_in_bulk(&admin).await;
    sources_are_deleted(&admin, hooks).await;
    changes_wait_for_the_store(&admin, &dir.path().join("data")).await;
    dead_letters_are_listed_replayed_and_purged(&admin, hooks, &hec).await;
    recent_events_and_the_calling_token(&admin, hooks, dir.path()).await;
    the_config_file_is_reloaded(&admin, &config_path, &hec.url(), closed).await;
    reload_needs_a_config_file(&spec).await;
    failed_authentications_are_throttled(&spec).await;
    changes_are_refused_once_shutdown_begins(&admin, hooks, &gateway).await;
    a_replay_the_brokers_do_not_confirm_answers_503(&spec, &hec).await;

    let mut missing = Vec::new();
    let exercised = spec.exercised();
    for (path, method) in spec.operations() {
        if !exercised.contains(&(path.clone(), method.clone())) {
            missing.push(format!("{} {path}", method.to_ascii_uppercase()));
        }
    }
    assert!(missing.is_empty(), "operations never called: {missing:#?}");
    let unseen = spec.unseen();
    assert!(
        unseen.is_empty(),
        "documented answers never seen: {unseen:#?}"
    );

    tokio::time::timeout(Duration::from_secs(30), gateway.wait())
        .await
        .expect("gateway stops within 30s");
}

async fn the_document_is_public_and_served_as_is(admin: &Admin<'_>) {
    let reply = admin
        .call(
            Method::GET,
            "/api/v1/openapi.json",
            Auth::None,
            Body::None,
            200,
        )
        .await;
    let file: Value = serde_json::from_str(DOCUMENT).unwrap();
    assert_eq!(
        reply.json, file,
        "the served document must be api/openapi.json"
    );
}

/// Every documented operation: 401 without a usable token; 403 for a `read` token on anything
/// but GET (GET works with it).
async fn every_operation_needs_a_token_and_writes_an_admin_one(admin: &Admin<'_>) {
    for (template, method) in admin.spec.operations() {
        if template == "/api/v1/openapi.json" {
            continue;
        }
        let id = if template.starts_with("/api/v1/sinks/") {
            "out"
        } else {
            "cfg"
        };
        // No dead letter exists yet: entry 0 is a 404 even for a good token.
        let path = template.replace("{id}", id).replace("{entry}", "0");
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let body = || {
            if method == Method::POST || method == Method::PUT {
                Body::Json(json!({}))
            } else {
                Body::None
            }
        };
        for auth in [
            Auth::None,
            Auth::Header("Basic b3BzOmFkbWluLXRva2VuLWZvci10ZXN0cw=="),
            Auth::Header("Bearer"),
            Auth::Bearer("not-a-token"),
            Auth::Header(ADMIN_TOKEN),
        ] {
            let reply = admin.call(method.clone(), &path, auth, body(), 401).await;
            assert!(
                reply.header("www-authenticate").starts_with("Bearer"),
                "{method} {path}"
            );
        }
        if method == Method::GET && template.contains("{entry}") {
            admin.call(method.clone(), &path, READ, body(), 404).await;
        } else if method == Method::GET {
            admin.call(method.clone(), &path, READ, body(), 200).await;
        } else {
            admin.call(method.clone(), &path, READ, body(), 403).await;
        }
    }
}

async fn unknown_routes_and_methods(admin: &Admin<'_>) {
    // `/` is the console (tests/console.rs); other paths outside the API are 404.
    for path in [
        "/api/v1/nothing-here",
        "/api/v2/sources",
        "/console.js.map",
        "/api/v1/sources/cfg/nope",
    ] {
        admin.call(Method::GET, path, ADMIN, Body::None, 404).await;
    }
    // The token is checked first: without one, unknown routes and methods answer 401 too.
    admin
        .call(
            Method::GET,
            "/api/v1/nothing-here",
            Auth::None,
            Body::None,
            401,
        )
        .await;
    admin
        .call(
            Method::PATCH,
            "/api/v1/sources",
            Auth::None,
            Body::None,
            401,
        )
        .await;
    // A read token gets 405, not 403, for a method the path does not have.
    admin
        .call(Method::PATCH, "/api/v1/sources", READ, Body::None, 405)
        .await;
    for (method, path) in [
        (Method::PATCH, "/api/v1/sources/cfg"),
        (Method::POST, "/api/v1/sources/cfg"),
        (Method::DELETE, "/api/v1/sources"),
        (Method::DELETE, "/api/v1/sinks"),
        (Method::GET, "/api/v1/reload"),
        (Method::GET, "/api/v1/sources/cfg/reset-secret"),
        (Method::GET, "/api/v1/sinks/out/test"),
        (Method::POST, "/api/v1/sinks/out/dead-letters"),
        (Method::DELETE, "/api/v1/sinks/out/dead-letters/0"),
        (Method::GET, "/api/v1/sinks/out/dead-letters/replay"),
        (Method::GET, "/api/v1/sinks/out/dead-letters/purge"),
        (Method::PUT, "/api/v1/openapi.json"),
    ] {
        // `check` compares Allow with the document's methods for the path.
        admin.call(method, path, ADMIN, Body::None, 405).await;
    }
}

async fn sinks_are_listed_and_tested(admin: &Admin<'_>, hec: &hec::HecServer) {
    let list = admin.get("/api/v1/sinks", 200).await;
    let sinks = &list["sinks"];
    assert_eq!(ids(sinks), ["dead", "out", "splunk"], "sorted by id");
    let types: Vec<&str> = sinks
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["http", "file", "splunk_hec"]);
    for s in sinks.as_array().unwrap() {
        assert_eq!(s["queue"]["type"], "memory", "{s}");
        assert_eq!(s["queue"]["events"], 0, "{s}");
    }

    let out = admin.post_empty("/api/v1/sinks/out/test", 200).await;
    assert_eq!(
        out,
        json!({"id": "out", "status": "ok", "http_status": null, "error": null})
    );

    let before = hec.indexed_count();
    let splunk = admin.post_empty("/api/v1/sinks/splunk/test", 200).await;
    assert_eq!(
        splunk,
        json!({"id": "splunk", "status": "ok", "http_status": 200, "error": null})
    );
    assert_eq!(
        hec.indexed_count(),
        before + 1,
        "one test event reached HEC"
    );

    let dead = admin
        .call(
            Method::POST,
            "/api/v1/sinks/dead/test",
            ADMIN,
            Body::None,
            200,
        )
        .await
        .json;
    assert_eq!(dead["id"], "dead");
    assert_eq!(dead["status"], "failed");
    assert_eq!(dead["http_status"], Value::Null, "nothing answered");
    assert!(
        !dead["error"].as_str().unwrap_or_default().is_empty(),
        "{dead}"
    );

    admin
        .call(
            Method::POST,
            "/api/v1/sinks/nope/test",
            ADMIN,
            Body::None,
            404,
        )
        .await;
}

async fn sources_are_listed(admin: &Admin<'_>) {
    let list = admin.get("/api/v1/sources", 200).await;
    assert_eq!(ids(&list["sources"]), ["cfg", "cfg-old"], "sorted by id");
    let cfg = &list["sources"][0];
    for (key, want) in [
        ("name", json!("From the file")),
        ("vendor", json!("generic")),
        ("hook_path", json!("/hooks/cfg")),
        ("auth_scheme", json!("token")),
        ("has_secret", json!(true)),
        ("grace_until", Value::Null),
        ("sinks", json!(["out"])),
        ("enabled", json!(true)),
        ("suppressed", json!(false)),
        ("origin", json!("config")),
        ("last_event_at", Value::Null),
    ] {
        assert_eq!(cfg[key], want, "cfg.{key}: {cfg}");
    }
    assert_eq!(list["sources"][1]["name"], Value::Null);
    assert_eq!(
        list["sources"][1]["vendor"], "generic",
        "the default vendor"
    );
    let one = admin.get("/api/v1/sources/cfg", 200).await;
    assert_eq!(&one, cfg);
    admin.get("/api/v1/sources/nope", 404).await;
}

/// Returns the secret generated for source `tok`.
async fn sources_are_created(admin: &Admin<'_>, hooks: SocketAddr, data_dir: &Path) -> String {
    // A token source without a secret: one is generated, returned once, and opens the hook.
    let reply = admin
        .call(
            Method::POST,
            "/api/v1/sources",
            ADMIN,
            Body::Json(token_source("tok", None, &["out"])),
            201,
        )
        .await;
    assert_eq!(reply.header("location"), "/api/v1/sources/tok");
    let created = reply.json;
    assert_generated("token", &created["secret"]);
    assert_eq!(created["origin"], "api");
    assert_eq!(created["has_secret"], true);
    assert_eq!(created["vendor"], "generic");
    assert_eq!(created["hook_path"], "/hooks/tok");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        hook(hooks, "tok", &[("authorization", &secret)]).await.0,
        200
    );
    // The hooks listener refuses a wrong secret with 403.
    assert_eq!(
        hook(hooks, "tok", &[("authorization", "wrong")]).await.0,
        403
    );
    let shown = admin.source("tok").await.expect("tok exists");
    assert!(shown.get("secret").is_none());
    assert_eq!(shown["events_accepted"], 1, "{shown}");
    assert_eq!(shown["auth_failures"], 1, "{shown}");
    assert!(shown["last_event_at"].is_string(), "{shown}");

    // Each scheme's generated secret has its format.
    let hmac = admin
        .post(
            "/api/v1/sources",
            json!({
                "id": "hmac", "name": "Signed", "vendor": "prisma_cloud",
                "auth": {"scheme": "hmac_sha256", "header": "X-Signature"},
                "sinks": ["out", "splunk"],
                "filter": {"min_severity": "high", "kinds": ["alert"], "statuses": ["open"]}
            }),
            201,
        )
        .await;
    assert_generated("hmac_sha256", &hmac["secret"]);
    assert_eq!(hmac["name"], "Signed");
    assert_eq!(hmac["vendor"], "prisma_cloud");
    assert_eq!(hmac["sinks"], json!(["out", "splunk"]));
    assert_eq!(
        hmac["filter"],
        json!({"min_severity": "high", "kinds": ["alert"], "statuses": ["open"]})
    );
    let sw = admin
        .post(
            "/api/v1/sources",
            json!({"id": "stdwh", "auth": {"scheme": "standard_webhooks"}, "sinks": ["out"]}),
            201,
        )
        .await;
    assert_generated("standard_webhooks", &sw["secret"]);
    let basic = admin
        .post(
            "/api/v1/sources",
            json!({"id": "basic", "auth": {"scheme": "basic", "username": "vendor"}, "sinks": ["out"]}),
            201,
        )
        .await;
    assert_generated("basic", &basic["secret"]);
    let user_pass = STANDARD.encode(format!("vendor:{}", basic["secret"].as_str().unwrap()));
    let basic_header = format!("Basic {user_pass}");
    assert_eq!(
        hook(hooks, "basic", &[("authorization", &basic_header)])
            .await
            .0,
        200
    );

    // A given secret is never echoed.
    let given = admin
        .post(
            "/api/v1/sources",
            token_source("given", Some("a-literal-secret"), &["out"]),
            201,
        )
        .await;
    assert!(given.get("secret").is_none(), "{given}");
    assert_eq!(given["has_secret"], true);
    assert_eq!(
        hook(hooks, "given", &[("authorization", "a-literal-secret")])
            .await
            .0,
        200
    );
    let open = admin
        .post(
            "/api/v1/sources",
            json!({"id": "open", "auth": {"scheme": "none", "allow_unauthenticated": true}, "sinks": ["out"]}),
            201,
        )
        .await;
    assert!(open.get("secret").is_none(), "{open}");
    assert_eq!(open["has_secret"], false);
    assert_eq!(open["auth_scheme"], "none");
    assert_eq!(hook(hooks, "open", &[]).await.0, 200);

    // Several secrets at once (rotation by hand), as in the config file.
    let many = admin
        .post(
            "/api/v1/sources",
            json!({"id": "many", "auth": {"scheme": "token", "secrets": ["s-one", "s-two"]}, "sinks": ["out"]}),
            201,
        )
        .await;
    assert!(many.get("secret").is_none(), "{many}");
    for s in ["s-one", "s-two"] {
        assert_eq!(hook(hooks, "many", &[("authorization", s)]).await.0, 200);
    }
    admin
        .post(
            "/api/v1/sources",
            json!({"id": "users", "auth": {"scheme": "basic", "credentials": [{"username": "u1", "password": "p1"}]}, "sinks": ["out"]}),
            201,
        )
        .await;
    let u1 = format!("Basic {}", STANDARD.encode("u1:p1"));
    assert_eq!(hook(hooks, "users", &[("authorization", &u1)]).await.0, 200);

    // API sources persist, readable by the gateway's user only, in the data directory.
    let store = data_dir.join("admin").join("sources.json");
    let text = std::fs::read_to_string(&store).expect("sources.json");
    let stored: Value = serde_json::from_str(&text).expect("sources.json is JSON");
    for id in [
        "tok", "hmac", "stdwh", "basic", "given", "open", "many", "users",
    ] {
        assert!(text.contains(&format!("\"{id}\"")), "{id} in {stored}");
    }
    assert!(
        !text.contains("\"cfg\""),
        "config sources are not stored: {stored}"
    );
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&store).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", store.display());
    }

    // Taken ids: by an API source and by a config source.
    admin
        .post("/api/v1/sources", token_source("tok", None, &["out"]), 409)
        .await;
    admin
        .post("/api/v1/sources", token_source("cfg", None, &["out"]), 409)
        .await;
    assert_eq!(
        hook(hooks, "tok", &[("authorization", &secret)]).await.0,
        200,
        "a refused create changes nothing"
    );

    // Invalid bodies: 400, naming the path; nothing is created.
    let mut unknown_key = token_source("bad1", None, &["out"]);
    unknown_key["colour"] = json!("red");
    let mut unknown_auth_key = token_source("bad2", None, &["out"]);
    unknown_auth_key["auth"]["colour"] = json!("red");
    let mut unknown_filter_key = token_source("bad15", None, &["out"]);
    unknown_filter_key["filter"] = json!({"colour": 1});
    let bad_tolerance = json!({
        "id": "bad10", "auth": {"scheme": "hmac_sha256", "tolerance": "soon"}, "sinks": ["out"]
    });
    // The issue names the key's path, or the object holding it with the key (or the bad value)
    // in its message: inside `auth` the server answers the latter, as the contract allows.
    for (body, key_path, word) in [
        (unknown_key, "colour", "colour"),
        (unknown_auth_key, "auth.colour", "colour"),
        (unknown_filter_key, "filter.colour", "colour"),
        (bad_tolerance, "auth.tolerance", "soon"),
    ] {
        let error = admin.post("/api/v1/sources", body.clone(), 400).await;
        assert!(
            names_issue(&error, key_path, word),
            "{body}: issues must name {key_path}: {error}"
        );
        let id = body["id"].as_str().unwrap();
        assert!(admin.source(id).await.is_none(), "{id} must not exist");
    }
    for (body, path) in [
        (
            token_source("bad3", Some("${HOME}"), &["out"]),
            Some("auth.secret"),
        ),
        (
            token_source("bad4", Some("@file:/etc/hostname"), &["out"]),
            Some("auth.secret"),
        ),
        (
            token_source("bad5", None, &["out", "missing"]),
            Some("sinks[1]"),
        ),
        (
            json!({"id": "bad6", "auth": {"scheme": "basic"}, "sinks": ["out"]}),
            None,
        ),
        (json!({"id": "bad7", "auth": {"scheme": "token"}}), None),
        (
            json!({"id": "bad8", "vendor": "nobody", "auth": {"scheme": "token"}, "sinks": ["out"]}),
            Some("vendor"),
        ),
        (token_source("bad id", None, &["out"]), Some("id")),
        (
            json!({"id": "bad11", "auth": {"scheme": "basic", "username": "u", "password": "${HOME}"}, "sinks": ["out"]}),
            Some("auth.password"),
        ),
        (
            json!({"id": "bad12", "auth": {"scheme": "none"}, "sinks": ["out"]}),
            Some("auth.allow_unauthenticated"),
        ),
        (
            json!({"id": "bad13", "auth": {"scheme": "magic"}, "sinks": ["out"]}),
            Some("auth.scheme"),
        ),
        (token_source("bad14", None, &[]), Some("sinks")),
        (
            json!({"id": "bad16", "name": 5, "auth": {"scheme": "token"}, "sinks": ["out"]}),
            Some("name"),
        ),
        (json!({"auth": {"scheme": "token"}, "sinks": ["out"]}), None),
        (json!(["not", "an", "object"]), None),
    ] {
        let error = admin.post("/api/v1/sources", body.clone(), 400).await;
        if let Some(path) = path {
            assert!(
                issue_paths(&error).iter().any(|p| p == path),
                "{body}: issues must name {path}: {error}"
            );
        }
        if let Some(id) = body["id"].as_str().filter(|id| !id.contains(' ')) {
            assert!(admin.source(id).await.is_none(), "{id} must not exist");
        }
    }
    admin
        .call(
            Method::POST,
            "/api/v1/sources",
            ADMIN,
            Body::Raw(b"{\"id\": \"bad9\", ".to_vec()),
            400,
        )
        .await;
    admin
        .call(
            Method::POST,
            "/api/v1/sources",
            ADMIN,
            Body::Raw(oversized("big")),
            413,
        )
        .await;
    assert!(admin.source("big").await.is_none());
    secret
}

async fn sources_are_updated(admin: &Admin<'_>, hooks: SocketAddr, tok_secret: &str) {
    let before = admin.source("tok").await.unwrap();
    // Same scheme, no secret: the current secret stays, and is not shown.
    let renamed = admin
        .put(
            "/api/v1/sources/tok",
            json!({"name": "Renamed", "auth": {"scheme": "token"}, "sinks": ["out"]}),
            200,
        )
        .await;
    assert!(renamed.get("secret").is_none(), "{renamed}");
    assert_eq!(renamed["name"], "Renamed");
    assert_eq!(renamed["has_secret"], true);
    assert_eq!(renamed["origin"], "api");
    assert_eq!(renamed["created_at"], before["created_at"]);
    assert_eq!(
        hook(hooks, "tok", &[("authorization", tok_secret)]).await.0,
        200,
        "the secret generated at creation still opens the hook"
    );

    // `id` in the body may be given when it matches.
    let same = admin
        .put(
            "/api/v1/sources/given",
            json!({"id": "given", "auth": {"scheme": "token"}, "sinks": ["out"]}),
            200,
        )
        .await;
    assert!(same.get("secret").is_none(), "{same}");
    assert_eq!(
        hook(hooks, "given", &[("authorization", "a-literal-secret")])
            .await
            .0,
        200,
        "same scheme without a secret keeps the current one"
    );

    // A new scheme without a secret: one is generated and shown.
    let changed = admin
        .put(
            "/api/v1/sources/tok",
            json!({"auth": {"scheme": "hmac_sha256"}, "sinks": ["out"]}),
            200,
        )
        .await;
    assert_eq!(changed["auth_scheme"], "hmac_sha256");
    assert_generated("hmac_sha256", &changed["secret"]);

    // Disabled: the hook answers 404 like an unknown source.
    let disabled = admin
        .put(
            "/api/v1/sources/given",
            json!({"auth": {"scheme": "token"}, "sinks": ["out"], "enabled": false}),
            200,
        )
        .await;
    assert_eq!(disabled["enabled"], false);
    let (status, _) = hook(hooks, "given", &[("authorization", "a-literal-secret")]).await;
    assert_eq!(status, 404);
    let (unknown, _) = hook(hooks, "no-such-source", &[("authorization", "x")]).await;
    assert_eq!(unknown, 404);
    admin
        .put(
            "/api/v1/sources/given",
            json!({"auth": {"scheme": "token"}, "sinks": ["out"], "enabled": true}),
            200,
        )
        .await;

    // Suppressed: still verified and counted, answered, nothing queued.
    let suppressed = admin
        .put(
            "/api/v1/sources/given",
            json!({"auth": {"scheme": "token"}, "sinks": ["out"], "suppressed": true}),
            200,
        )
        .await;
    assert_eq!(suppressed["suppressed"], true);
    assert_eq!(
        hook(hooks, "given", &[("authorization", "a-literal-secret")]).await,
        (200, json!({"accepted": 1, "suppressed": true}))
    );
    assert_eq!(
        hook(hooks, "given", &[("authorization", "wrong")]).await.0,
        403,
        "still verified"
    );
    admin
        .put(
            "/api/v1/sources/given",
            json!({"auth": {"scheme": "token"}, "sinks": ["out"]}),
            200,
        )
        .await;

    // Refusals.
    admin
        .put(
            "/api/v1/sources/given",
            json!({"id": "other", "auth": {"scheme": "token"}, "sinks": ["out"]}),
            400,
        )
        .await;
    let error = admin
        .put(
            "/api/v1/sources/given",
            json!({"auth": {"scheme": "token"}, "sinks": ["out"], "colour": 1}),
            400,
        )
        .await;
    assert!(names_issue(&error, "colour", "colour"), "{error}");
    admin
        .put(
            "/api/v1/sources/nope",
            json!({"auth": {"scheme": "token"}, "sinks": ["out"]}),
            404,
        )
        .await;
    admin
        .put(
            "/api/v1/sources/cfg",
            json!({"auth": {"scheme": "token"}, "sinks": ["out"]}),
            409,
        )
        .await;
    admin
        .call(
            Method::PUT,
            "/api/v1/sources/given",
            ADMIN,
            Body::Raw(oversized("given")),
            413,
        )
        .await;
    assert_eq!(
        hook(hooks, "given", &[("authorization", "a-literal-secret")])
            .await
            .0,
        200,
        "refused updates change nothing"
    );
}

async fn secrets_are_reset(admin: &Admin<'_>, hooks: SocketAddr) {
    admin
        .post(
            "/api/v1/sources",
            token_source("rot", Some("first-secret"), &["out"]),
            201,
        )
        .await;

    // With a grace period both secrets pass.
    let reset = admin
        .post(
            "/api/v1/sources/rot/reset-secret",
            json!({"grace_seconds": 600}),
            200,
        )
        .await;
    assert_eq!(reset["id"], "rot");
    assert_generated("token", &reset["secret"]);
    assert!(reset["grace_until"].is_string(), "{reset}");
    let second = reset["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        hook(hooks, "rot", &[("authorization", "first-secret")])
            .await
            .0,
        200
    );
    assert_eq!(
        hook(hooks, "rot", &[("authorization", &second)]).await.0,
        200
    );
    let shown = admin.source("rot").await.unwrap();
    assert_eq!(shown["grace_until"], reset["grace_until"]);

    // Without a body there is no grace: only the new secret passes.
    let reset = admin
        .call(
            Method::POST,
            "/api/v1/sources/rot/reset-secret",
            ADMIN,
            Body::None,
            200,
        )
        .await
        .json;
    assert_eq!(reset["grace_until"], Value::Null);
    let third = reset["secret"].as_str().unwrap().to_owned();
    assert_ne!(third, second);
    assert_eq!(
        hook(hooks, "rot", &[("authorization", &third)]).await.0,
        200
    );
    assert_eq!(
        hook(hooks, "rot", &[("authorization", &second)]).await.0,
        403
    );

    // A reset keeps the scheme's secret format.
    let sw = admin
        .post("/api/v1/sources/stdwh/reset-secret", json!({}), 200)
        .await;
    assert_generated("standard_webhooks", &sw["secret"]);

    // Refusals.
    for body in [
        json!({"grace_seconds": 604801}),
        json!({"grace_seconds": -1}),
        json!({"grace_seconds": "1h"}),
        json!({"grace": 1}),
    ] {
        admin
            .post("/api/v1/sources/rot/reset-secret", body, 400)
            .await;
    }
    admin
        .post("/api/v1/sources/open/reset-secret", json!({}), 400)
        .await;
    admin
        .post("/api/v1/sources/nope/reset-secret", json!({}), 404)
        .await;
    admin
        .post("/api/v1/sources/cfg/reset-secret", json!({}), 409)
        .await;
    admin
        .call(
            Method::POST,
            "/api/v1/sources/rot/reset-secret",
            ADMIN,
            Body::Raw(oversized("rot")),
            413,
        )
        .await;
    assert_eq!(
        hook(hooks, "rot", &[("authorization", &third)]).await.0,
        200,
        "refused resets change nothing"
    );
}

async fn sources_are_tested(admin: &Admin<'_>, dir: &Path) {
    let out = dir.join("out.ndjson");
    let before = read_lines(&out).len();
    let ok = admin
        .call(
            Method::POST,
            "/api/v1/sources/given/test",
            ADMIN,
            Body::None,
            200,
        )
        .await
        .json;
    assert_eq!(ok["status"], "ok", "{ok}");
    let events = ok["events"].as_u64().unwrap();
    assert!(events >= 1, "{ok}");
    assert_eq!(
        ok["sinks"],
        json!([{"id": "out", "status": "ok", "http_status": null, "error": null}])
    );
    eventually("the test events reach the file sink", || {
        read_lines(&out).len() >= before + events as usize
    })
    .await;

    // One sink that cannot be reached: the test fails, and says where.
    admin
        .post(
            "/api/v1/sources",
            token_source("half", Some("half-secret"), &["out", "dead"]),
            201,
        )
        .await;
    let failed = admin
        .call(
            Method::POST,
            "/api/v1/sources/half/test",
            ADMIN,
            Body::None,
            200,
        )
        .await
        .json;
    assert_eq!(failed["status"], "failed", "{failed}");
    // One result per sink of the source.
    let mut tested = ids(&failed["sinks"]);
    tested.sort();
    assert_eq!(tested, ["dead", "out"], "{failed}");
    for result in failed["sinks"].as_array().unwrap() {
        if result["id"] == "out" {
            assert_eq!(result["status"], "ok", "{failed}");
        } else {
            assert_eq!(result["status"], "failed", "{failed}");
            assert_eq!(result["http_status"], Value::Null, "{failed}");
            assert!(result["error"].is_string(), "{failed}");
        }
    }

    admin
        .call(
            Method::POST,
            "/api/v1/sources/nope/test",
            ADMIN,
            Body::None,
            404,
        )
        .await;
}

async fn sources_are_upserted_in_bulk(admin: &Admin<'_>) {
    let result = admin
        .post(
            "/api/v1/sources-bulk",
            json!({"sources": [
                token_source("bulk-new", None, &["out"]),
                {"id": "given", "name": "Bulk", "auth": {"scheme": "token", "secret": "a-literal-secret"}, "sinks": ["out"]},
            ]}),
            200,
        )
        .await;
    assert_eq!(
        ids(&result["sources"]),
        ["bulk-new", "given"],
        "request order"
    );
    assert_generated("token", &result["sources"][0]["secret"]);
    assert!(result["sources"][1].get("secret").is_none(), "{result}");
    assert_eq!(result["sources"][1]["name"], "Bulk");
    assert_eq!(admin.source("bulk-new").await.unwrap()["origin"], "api");

    // One invalid: 400 naming it, nothing applied.
    let error = admin
        .post(
            "/api/v1/sources-bulk",
            json!({"sources": [
                token_source("bulk-a", None, &["out"]),
                token_source("bulk-b", None, &["missing"]),
            ]}),
            400,
        )
        .await;
    let paths = issue_paths(&error);
    assert!(!paths.is_empty(), "{error}");
    assert!(
        paths.iter().all(|p| p.starts_with("sources[1].")),
        "{error}"
    );
    assert!(paths.iter().any(|p| p == "sources[1].sinks[0]"), "{error}");
    assert!(admin.source("bulk-a").await.is_none(), "nothing applied");

    // One from the config file: 409, nothing applied.
    admin
        .post(
            "/api/v1/sources-bulk",
            json!({"sources": [
                token_source("bulk-c", None, &["out"]),
                token_source("cfg", Some("x-secret"), &["out"]),
            ]}),
            409,
        )
        .await;
    assert!(admin.source("bulk-c").await.is_none(), "nothing applied");
    assert_eq!(admin.source("cfg").await.unwrap()["origin"], "config");

    admin
        .call(
            Method::POST,
            "/api/v1/sources-bulk",
            ADMIN,
            Body::Raw(oversized("bulk-d")),
            413,
        )
        .await;
}

async fn sources_are_deleted(admin: &Admin<'_>, hooks: SocketAddr) {
    let reply = admin
        .call(
            Method::DELETE,
            "/api/v1/sources/bulk-new",
            ADMIN,
            Body::None,
            204,
        )
        .await;
    assert!(reply.answer.body.is_empty());
    assert!(admin.source("bulk-new").await.is_none());
    let (status, _) = hook(hooks, "bulk-new", &[("authorization", "x")]).await;
    assert_eq!(status, 404, "a deleted source's hook is gone");
    for (path, expect) in [
        ("/api/v1/sources/bulk-new", 404),
        ("/api/v1/sources/cfg", 409),
    ] {
        admin
            .call(Method::DELETE, path, ADMIN, Body::None, expect)
            .await;
    }
    assert!(admin.source("cfg").await.is_some());
}

/// Events HEC refuses for good land in the `splunk` sink's dead letters: listed newest first
/// and paged, fetched one by one, replayed once (a second request sends nothing), purged, with
/// 400 for bad selections and queries, 404 for unknown sinks and entries, 403 for a read token.
async fn dead_letters_are_listed_replayed_and_purged(
    admin: &Admin<'_>,
    hooks: SocketAddr,
    hec: &hec::HecServer,
) {
    let base = "/api/v1/sinks/splunk/dead-letters";
    let empty = admin.get(base, 200).await;
    assert_eq!(empty["entries"], json!([]));
    assert_eq!(empty["waiting"], 0);
    assert!(
        empty["path"]
            .as_str()
            .unwrap()
            .ends_with("dead/splunk.ndjson"),
        "{empty}"
    );
    let none = admin.get("/api/v1/sinks/out/dead-letters", 200).await;
    assert_eq!(
        none["path"],
        Value::Null,
        "the file sink has no dead_letter_path"
    );

    admin
        .post(
            "/api/v1/sources",
            token_source("dl", Some("dl-secret"), &["splunk"]),
            201,
        )
        .await;
    hec.script([
        hec::Scripted::data_error(6, 0),
        hec::Scripted::data_error(6, 0),
    ]);
    for (n, id) in ["dl-1", "dl-2"].into_iter().enumerate() {
        let body = format!(r#"[{{"id":"{id}","severity":"high","title":"Title {id}"}}]"#);
        let a = send(
            hooks,
            post(hooks, "dl", &[("authorization", "dl-secret")], body),
        )
        .await;
        assert_eq!(a.status, 200);
        let mut waiting = 0;
        for _ in 0..200 {
            waiting = admin.get(base, 200).await["waiting"].as_u64().unwrap();
            if waiting == n as u64 + 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(waiting, n as u64 + 1, "{id} dead-lettered");
    }
    let list = admin.get(base, 200).await;
    let entries = list["entries"].as_array().unwrap();
    let event_ids: Vec<&str> = entries
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(event_ids, ["dl-2", "dl-1"], "newest first: {list}");
    for e in entries {
        assert_eq!(e["state"], "waiting");
        assert_eq!(e["vendor"], "generic");
        assert!(e["reason"].as_str().unwrap().contains("code 6"), "{e}");
    }
    assert_eq!(entries[1]["title"], "Title dl-1");
    let (dl2, dl1) = (
        entries[0]["entry"].as_u64().unwrap(),
        entries[1]["entry"].as_u64().unwrap(),
    );
    assert_eq!(dl1, 0, "the first line of the file");

    // Paging: one a page, `next` leads to the older one.
    let first = admin.get(&format!("{base}?limit=1"), 200).await;
    assert_eq!(first["entries"][0]["entry"], dl2);
    let next = first["next"].as_u64().expect("a next page");
    let second = admin
        .get(&format!("{base}?limit=1&before={next}&state=waiting"), 200)
        .await;
    assert_eq!(second["entries"][0]["entry"], dl1);
    assert_eq!(second["next"], Value::Null);
    for bad in [
        "limit=0",
        "limit=501",
        "state=nope",
        "before=x",
        "colour=red",
    ] {
        admin.get(&format!("{base}?{bad}"), 400).await;
    }

    let one = admin.get(&format!("{base}/{dl1}"), 200).await;
    assert_eq!(one["sink"], "splunk");
    let envelope: Value = serde_json::from_str(one["event"].as_str().unwrap()).unwrap();
    assert_eq!(envelope["event"]["id"], "dl-1", "the HEC envelope: {one}");
    for missing in [
        format!("{base}/{}", dl1 + 1),
        format!("{base}/999999"),
        format!("{base}/abc"),
        "/api/v1/sinks/nope/dead-letters".to_owned(),
        "/api/v1/sinks/nope/dead-letters/0".to_owned(),
    ] {
        admin.get(&missing, 404).await;
    }

    // Replay: a read token may not; bad selections are 400; unknown ones 404.
    let replay = format!("{base}/replay");
    let purge = format!("{base}/purge");
    for path in [&replay, &purge] {
        admin
            .call(
                Method::POST,
                path,
                READ,
                Body::Json(json!({"all": true})),
                403,
            )
            .await;
        for bad in [
            json!({}),
            json!({"all": false}),
            json!({"entries": []}),
            json!({"entries": ["x"]}),
            json!({"filter": {"colour": "red"}}),
            json!({"filter": {"since": "yesterday"}}),
            json!({"all": true, "entries": [0]}),
        ] {
            admin.post(path, bad, 400).await;
        }
        admin.post(path, json!({"entries": [dl1 + 1]}), 404).await;
        admin
            .post(
                &path.replace("/splunk/", "/nope/"),
                json!({"all": true}),
                404,
            )
            .await;
    }
    let before = hec.indexed_ids();
    let r = admin.post(&replay, json!({"entries": [dl1]}), 200).await;
    assert_eq!(
        r,
        json!({"sink": "splunk", "replayed": 1, "skipped": 0, "remaining": 0, "unconfirmed": 0})
    );
    eventually("the replayed event indexed", || {
        hec.indexed_ids().len() > before.len()
    })
    .await;
    let again = admin.post(&replay, json!({"entries": [dl1]}), 200).await;
    assert_eq!(again["replayed"], 0);
    assert_eq!(again["skipped"], 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let indexed = hec.indexed_ids();
    assert_eq!(
        indexed.iter().filter(|i| *i == "dl-1").count(),
        1,
        "replayed once: {indexed:?}"
    );

    let purged = admin
        .post(&purge, json!({"filter": {"event_id": "dl-2"}}), 200)
        .await;
    assert_eq!(purged, json!({"sink": "splunk", "purged": 1, "skipped": 0}));
    let all = admin.post(&replay, json!({"all": true}), 200).await;
    assert_eq!(all["replayed"], 0, "nothing waits: {all}");
    let states = admin.get(&format!("{base}?state=all"), 200).await;
    let states: Vec<&str> = states["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["purged", "replayed"]);
    assert_eq!(admin.get(base, 200).await["waiting"], 0);
    admin
        .call(Method::DELETE, "/api/v1/sources/dl", ADMIN, Body::None, 204)
        .await;
}

/// A source's last events (normalized, `raw` inside) and refusals, newest first; the calling
/// token's name and role; the sinks' counters.
async fn recent_events_and_the_calling_token(admin: &Admin<'_>, hooks: SocketAddr, dir: &Path) {
    let (status, _) = hook(hooks, "cfg", &[("authorization", "wrong-token")]).await;
    assert_eq!(status, 403);
    let a = send(
        hooks,
        post(
            hooks,
            "cfg",
            &[("authorization", CFG_SECRET)],
            r#"[{"id":"recent-1","severity":"low","title":"Seen"}]"#,
        ),
    )
    .await;
    assert_eq!(a.status, 200);
    let recent = admin.get("/api/v1/sources/cfg/recent", 200).await;
    assert_eq!(recent["id"], "cfg");
    let newest = &recent["events"][0];
    assert_eq!(newest["event"]["id"], "recent-1", "{recent}");
    assert_eq!(newest["event"]["source"], "cfg");
    assert_eq!(newest["event"]["raw"]["title"], "Seen");
    // Exactly what the file sink wrote (its redaction included).
    let out = dir.join("out.ndjson");
    eventually("recent-1 in the file sink", || {
        read_lines(&out).iter().any(|l| l["id"] == "recent-1")
    })
    .await;
    let written = read_lines(&out)
        .into_iter()
        .find(|l| l["id"] == "recent-1")
        .unwrap();
    assert_eq!(newest["event"], written);
    assert!(recent["events"].as_array().unwrap().len() <= 5);
    assert_eq!(
        recent["refusals"][0]["reason"], "invalid_credential",
        "{recent}"
    );
    admin.get("/api/v1/sources/nope/recent", 404).await;

    let me = admin.get("/api/v1/token", 200).await;
    assert_eq!(me, json!({"name": "viewer", "role": "read"}));
    let me = admin
        .call(Method::GET, "/api/v1/token", ADMIN, Body::None, 200)
        .await
        .json;
    assert_eq!(me, json!({"name": "ops", "role": "admin"}));

    let sinks = admin.get("/api/v1/sinks", 200).await;
    let out = sinks["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "out")
        .unwrap();
    assert!(out["delivered"].as_u64().unwrap() >= 1, "{out}");
    assert_eq!(out["failed"], 0);
}

async fn the_config_file_is_reloaded(
    admin: &Admin<'_>,
    config_path: &Path,
    hec_url: &str,
    closed: SocketAddr,
) {
    let dir = config_path.parent().unwrap().to_str().unwrap().to_owned();
    let write = |text: String| std::fs::write(config_path, text.replace("{dir}", &dir)).unwrap();
    let reload = |expect: u16| async move {
        admin
            .call(Method::POST, "/api/v1/reload", ADMIN, Body::None, expect)
            .await
            .json
    };

    // cfg-old goes, cfg-new comes, cfg routes to one more sink, a sink is added, and the hooks
    // listener moves (which needs a restart).
    let moved = format!("127.0.0.1:{}", closed.port());
    let changed = config_text(
        hec_url,
        closed,
        &moved,
        r#"
[[sinks]]
id = "archive"
type = "file"
path = "{dir}/archive.ndjson"
fsync = "never"

[[sources]]
id = "cfg-new"
sinks = ["archive"]
[sources.auth]
scheme = "token"
secret = "config-source-token"
"#,
    )
    .replace(r#"sinks = ["out"]"#, r#"sinks = ["out", "splunk"]"#);
    write(changed.clone());
    let result = reload(200).await;
    assert_eq!(result["status"], "reloaded");
    assert_eq!(
        result["sources"],
        json!({"added": ["cfg-new"], "removed": ["cfg-old"], "changed": ["cfg"]})
    );
    assert_eq!(
        result["sinks"],
        json!({"added": ["archive"], "removed": [], "changed": []})
    );
    assert!(
        result["restart_needed"]
            .as_array()
            .unwrap()
            .contains(&json!("server.listen")),
        "{result}"
    );
    assert!(admin.source("cfg-old").await.is_none());
    assert_eq!(admin.source("cfg-new").await.unwrap()["origin"], "config");
    assert_eq!(
        admin.source("cfg").await.unwrap()["sinks"],
        json!(["out", "splunk"])
    );
    assert!(ids(&admin.get("/api/v1/sinks", 200).await["sinks"]).contains(&"archive".to_owned()));
    assert_eq!(
        admin.source("tok").await.unwrap()["origin"],
        "api",
        "API sources survive a reload"
    );

    // An invalid file: 422 with issues; the config in force keeps serving.
    write(changed.replace("plaintext = true", "plaintext = true\ncolour = \"red\""));
    let error = reload(422).await;
    assert!(!issue_paths(&error).is_empty(), "{error}");
    assert!(admin.source("cfg-new").await.is_some());

    // A config source with the id of an API source: 422, nothing changes.
    write(format!(
        "{changed}\n[[sources]]\nid = \"tok\"\nsinks = [\"out\"]\n[sources.auth]\nscheme = \"token\"\nsecret = \"config-source-token\"\n"
    ));
    reload(422).await;
    assert_eq!(admin.source("tok").await.unwrap()["origin"], "api");
    assert!(admin.source("cfg-new").await.is_some());
}

/// A change is applied only once `<data_dir>/admin/sources.json` is written: with a directory in
/// the file's place every change answers 500 and nothing changes.
async fn changes_wait_for_the_store(admin: &Admin<'_>, data_dir: &Path) {
    let store = data_dir.join("admin").join("sources.json");
    std::fs::remove_file(&store).unwrap();
    std::fs::create_dir(&store).unwrap();
    let given = admin.source("given").await.unwrap();
    let rot = admin.source("rot").await.unwrap();

    admin
        .post("/api/v1/sources", token_source("lost", None, &["out"]), 500)
        .await;
    admin
        .put(
            "/api/v1/sources/given",
            json!({"name": "Lost", "auth": {"scheme": "token"}, "sinks": ["out"]}),
            500,
        )
        .await;
    admin
        .call(
            Method::DELETE,
            "/api/v1/sources/given",
            ADMIN,
            Body::None,
            500,
        )
        .await;
    admin
        .post(
            "/api/v1/sources-bulk",
            json!({"sources": [token_source("lost", None, &["out"])]}),
            500,
        )
        .await;
    admin
        .post("/api/v1/sources/rot/reset-secret", json!({}), 500)
        .await;
    assert!(admin.source("lost").await.is_none());
    assert_eq!(admin.source("given").await.unwrap(), given);
    assert_eq!(admin.source("rot").await.unwrap(), rot);

    // Writable again: the next change writes every API source.
    std::fs::remove_dir(&store).unwrap();
    admin
        .post(
            "/api/v1/sources",
            token_source("back", Some("back-secret"), &["out"]),
            201,
        )
        .await;
    let text = std::fs::read_to_string(&store).unwrap();
    for id in ["back", "given", "rot", "tok"] {
        assert!(text.contains(&format!("\"{id}\"")), "{id} in {text}");
    }
    assert!(!text.contains("\"lost\""), "{text}");
}

/// After `admin.max_auth_failures` failed authentications from one address, every route
/// answers that address 429 with Retry-After, even with a valid token (it is not checked).
async fn failed_authentications_are_throttled(spec: &Spec) {
    let gw = start(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
plaintext = true
shutdown_grace = "5s"
data_dir = "{{dir}}/data"
[metrics]
enabled = false
[admin]
listen = "127.0.0.1:0"
max_auth_failures = 2
auth_failure_window = "1h"
[[admin.tokens]]
name = "ops"
token = "{ADMIN_TOKEN}"
{FILE_SINK}"#
    ))
    .await;
    let admin = Admin {
        spec,
        addr: gw.gateway.admin_addr().expect("admin listener"),
    };
    for _ in 0..2 {
        admin
            .call(
                Method::GET,
                "/api/v1/sinks",
                Auth::Bearer("not-a-token"),
                Body::None,
                401,
            )
            .await;
    }
    for (template, method) in spec.operations() {
        if template == "/api/v1/openapi.json" {
            continue;
        }
        let path = template.replace("{id}", "out");
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let body = if method == Method::POST || method == Method::PUT {
            Body::Json(json!({}))
        } else {
            Body::None
        };
        let reply = admin.call(method.clone(), &path, ADMIN, body, 429).await;
        let secs: u64 = reply.header("retry-after").parse().unwrap();
        assert!((3500..=3600).contains(&secs), "{method} {path}: {secs}");
    }
    // The document stays public.
    admin
        .call(
            Method::GET,
            "/api/v1/openapi.json",
            Auth::None,
            Body::None,
            200,
        )
        .await;
    gw.stop().await;
}

/// A gateway started from parsed settings (no file) has nothing to reload: 409.
async fn reload_needs_a_config_file(spec: &Spec) {
    let gw = start(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
plaintext = true
shutdown_grace = "5s"
data_dir = "{{dir}}/data"
[metrics]
enabled = false
[admin]
listen = "127.0.0.1:0"
[[admin.tokens]]
name = "ops"
token = "{ADMIN_TOKEN}"
{FILE_SINK}"#
    ))
    .await;
    let admin = Admin {
        spec,
        addr: gw.gateway.admin_addr().expect("admin listener"),
    };
    admin
        .call(Method::POST, "/api/v1/reload", ADMIN, Body::None, 409)
        .await;
    gw.stop().await;
}

/// A replay into a Kafka queue whose brokers are down answers 503 once the queue's
/// `produce_timeout` passes, saying what is unconfirmed; on a gateway of its own (a sink with a
/// Kafka queue on librdkafka's mock cluster, dead-lettering through the same HEC server).
#[cfg(feature = "kafka")]
async fn a_replay_the_brokers_do_not_confirm_answers_503(spec: &Spec, hec: &hec::HecServer) {
    let m = rdkafka::mocking::MockCluster::new(1).unwrap();
    m.create_topic("siemgate.kq", 1, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The file's own sinks and source, and a sink with a Kafka queue and its source.
    let kq = format!(
        r#"
[[sinks]]
id = "kq"
type = "splunk_hec"
url = "{url}"
token = "{HEC_TOKEN}"
dead_letter_path = "{{dir}}/dead/kq.ndjson"
[sinks.queue]
type = "kafka"
brokers = [{brokers}]
produce_timeout = "1s"
[sinks.batch]
linger = "0ms"

[[sources]]
id = "kq"
vendor = "generic"
sinks = ["kq"]
[sources.auth]
scheme = "token"
secret = "kq-secret"
"#,
        url = hec.url(),
        brokers = toml_list(m.bootstrap_servers().split(',')),
    );
    let text = config_text(&hec.url(), closed_port(), "127.0.0.1:0", &kq);
    let (gateway, _) = start_from_file(dir.path(), &text).await;
    let admin = Admin {
        spec,
        addr: gateway.admin_addr().expect("admin listener"),
    };
    let hooks = gateway.hooks_addr();
    hec.script([hec::Scripted::data_error(6, 0)]);
    let (status, _) = hook(hooks, "kq", &[("authorization", "kq-secret")]).await;
    assert_eq!(status, 200);
    let base = "/api/v1/sinks/kq/dead-letters";
    let mut waiting = 0;
    for _ in 0..400 {
        waiting = admin.get(base, 200).await["waiting"].as_u64().unwrap();
        if waiting == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(waiting, 1, "dead-lettered");
    m.broker_down(1).unwrap();
    let r = admin
        .post(&format!("{base}/replay"), json!({"all": true}), 503)
        .await;
    assert_eq!(
        (&r["replayed"], &r["unconfirmed"]),
        (&json!(0), &json!(1)),
        "{r}"
    );
    m.broker_up(1).unwrap();
    gateway.shutdown();
    tokio::time::timeout(Duration::from_secs(30), gateway.wait())
        .await
        .expect("the second gateway stops within 30s");
}

/// Without Kafka no queue confirms late; that answer is exercised with the `kafka` feature.
#[cfg(not(feature = "kafka"))]
async fn a_replay_the_brokers_do_not_confirm_answers_503(spec: &Spec, _: &hec::HecServer) {
    spec.seen.lock().unwrap().insert((
        "/api/v1/sinks/{id}/dead-letters/replay".to_owned(),
        "post".to_owned(),
        503,
    ));
}

/// Once shutdown has begun, changes and reloads answer 503. An event the `dead` sink cannot
/// deliver keeps the sinks draining until `shutdown_grace` ends, and the admin listener open
/// with them; requests that arrive meanwhile are answered (after the drain) with 503.
async fn changes_are_refused_once_shutdown_begins(
    admin: &Admin<'_>,
    hooks: SocketAddr,
    gateway: &siemgate::Gateway,
) {
    let (status, _) = hook(hooks, "half", &[("authorization", "half-secret")]).await;
    assert_eq!(status, 200);
    gateway.shutdown();
    // The hooks listener closes first; the sinks start draining right after.
    let mut hooks_closed = false;
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(hooks).await.is_err() {
            hooks_closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(hooks_closed, "the hooks listener closes on shutdown");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Each of these would be refused anyway (409, 422) had it come before the shutdown.
    tokio::join!(
        admin.post("/api/v1/sources", token_source("tok", None, &["out"]), 503),
        admin.put(
            "/api/v1/sources/cfg",
            json!({"auth": {"scheme": "token"}, "sinks": ["out"]}),
            503,
        ),
        admin.call(
            Method::DELETE,
            "/api/v1/sources/cfg",
            ADMIN,
            Body::None,
            503,
        ),
        admin.post(
            "/api/v1/sources-bulk",
            json!({"sources": [token_source("cfg", Some("x-secret"), &["out"])]}),
            503,
        ),
        admin.post("/api/v1/sources/cfg/reset-secret", json!({}), 503),
        admin.call(Method::POST, "/api/v1/reload", ADMIN, Body::None, 503),
    );
}
