//! A loopback Microsoft Entra token endpoint and Azure Monitor Logs Ingestion endpoint for the
//! sentinel sink's tests: one hyper 1 HTTP/1.1 server on 127.0.0.1 (the sink's
//! `authority_host` and `endpoint` both point at it) that answers as the public references say:
//!
//! * `POST /{tenant}/oauth2/v2.0/token`, form `grant_type=client_credentials`, `client_id`,
//!   `client_secret`, `scope`: 200 `{"token_type":"Bearer","expires_in":N,"access_token":..}`;
//!   a wrong secret 401 `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid
//!   client secret provided..."}` ("Microsoft identity platform and the OAuth 2.0 client
//!   credentials flow", <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>,
//!   "Get a token" and "Error response").
//! * `POST /dataCollectionRules/{immutableId}/streams/{stream}?api-version=2023-01-01` with
//!   `Authorization: Bearer`, a JSON array body, optionally `Content-Encoding: gzip` ("Logs
//!   Ingestion API in Azure Monitor",
//!   <https://learn.microsoft.com/azure/azure-monitor/logs/logs-ingestion-api-overview>, and
//!   the REST reference "Logs Ingestion - Upload"):
//!   - 204 No Content when the rows are accepted;
//!   - 401 for a missing, unknown or expired token (`InvalidToken`);
//!   - 403 when the app lacks "Monitoring Metrics Publisher" on the DCR (`OperationFailed`,
//!     "does not have access to ingest data for the data collection rule");
//!   - 404 for an unknown DCR or stream (`InvalidStream`);
//!   - 413 for a body over 1 MB (`ContentLengthLimitExceeded`);
//!   - 429 with `Retry-After` when throttled;
//!   - 400 when a row does not fit the stream declaration (`InvalidArgument`): the whole call
//!     is refused and nothing of it is ingested.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const CLIENT_ID: &str = "0f3c1d2e-5a6b-4c7d-8e9f-a0b1c2d3e4f5";
pub const CLIENT_SECRET: &str = "q~8Q-client-secret+value";
pub const DCR: &str = "dcr-00000000000000000000000000000001";
pub const STREAM: &str = "Custom-SiemgateEvents_CL";
/// The Logs Ingestion API's limit per call.
pub const MAX_BODY: usize = 1024 * 1024;

/// One ingestion call as the server saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub headers: http::HeaderMap,
    /// The decoded body (gunzipped).
    pub body: String,
    pub status: u16,
    pub at: Instant,
}

pub struct State {
    /// Ingested rows, in order.
    pub rows: Vec<Value>,
    pub calls: Vec<Call>,
    /// Token requests: the decoded form fields of each.
    pub token_requests: Vec<Vec<(String, String)>>,
    /// Tokens that are valid now, with when they expire (`expires_in` after issue).
    valid: HashMap<String, Instant>,
    issued: usize,
    /// `expires_in` of issued tokens.
    pub lifetime_s: u64,
    /// Every valid token expires once this many ingestion calls have been answered.
    pub expire_tokens_after_calls: Option<usize>,
    /// The app has the role on the DCR.
    pub role: bool,
    /// The next N ingestion calls are throttled (429, `Retry-After: 1`).
    pub throttle: usize,
    /// While set, every ingestion call is answered this status.
    pub down: Option<u16>,
    /// Rows whose `EventId` is here do not fit the stream (400).
    pub bad_rows: HashSet<String>,
    pub max_body: usize,
}

#[derive(Clone)]
pub struct Azure {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
}

impl Azure {
    pub async fn start() -> Azure {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            rows: Vec::new(),
            calls: Vec::new(),
            token_requests: Vec::new(),
            valid: HashMap::new(),
            issued: 0,
            lifetime_s: 3599,
            expire_tokens_after_calls: None,
            role: true,
            throttle: 0,
            down: None,
            bad_rows: HashSet::new(),
            max_body: MAX_BODY,
        }));
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Azure { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    pub fn row_ids(&self) -> Vec<String> {
        self.with(|s| {
            s.rows
                .iter()
                .map(|r| r["EventId"].as_str().unwrap_or("").to_owned())
                .collect()
        })
    }

    pub fn statuses(&self) -> Vec<u16> {
        self.with(|s| s.calls.iter().map(|c| c.status).collect())
    }

    /// The `[[sinks]]` block of a sentinel sink pointed at this server.
    pub fn sink(&self, id: &str, extra: &str) -> String {
        format!(
            r#"
[[sinks]]
id = "{id}"
type = "sentinel"
endpoint = "{url}"
authority_host = "{url}"
dcr_immutable_id = "{DCR}"
stream = "{STREAM}"
tenant_id = "{TENANT}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
request_timeout = "2s"
dead_letter_path = "{{dir}}/dead-{id}.ndjson"
{extra}
[sinks.batch]
linger = "200ms"
"#,
            url = self.url()
        )
    }
}

fn form_decode(text: &str) -> Vec<(String, String)> {
    fn unescape(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    }
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

fn json_response(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn api_error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(status, json!({"error": {"code": code, "message": message}}))
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let raw = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let mut s = state.lock().unwrap();
    if path == format!("/{TENANT}/oauth2/v2.0/token") {
        let form = form_decode(std::str::from_utf8(&raw).unwrap());
        s.token_requests.push(form.clone());
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if get("grant_type") != Some("client_credentials")
            || get("scope") != Some("https://monitor.azure.com/.default")
        {
            return Ok(json_response(
                400,
                json!({"error": "invalid_request", "error_description": "AADSTS900144: The request body must contain the following parameter: 'grant_type'."}),
            ));
        }
        if get("client_id") != Some(CLIENT_ID) || get("client_secret") != Some(CLIENT_SECRET) {
            return Ok(json_response(
                401,
                json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.\r\nTrace ID: 0000"}),
            ));
        }
        s.issued += 1;
        let token = format!("tok-{}", s.issued);
        let lifetime = s.lifetime_s;
        s.valid.insert(
            token.clone(),
            Instant::now() + Duration::from_secs(lifetime),
        );
        return Ok(json_response(
            200,
            json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}),
        ));
    }
    let gz = parts
        .headers
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let text = if gz {
        let mut t = String::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_string(&mut t)
            .unwrap();
        t
    } else {
        String::from_utf8(raw.to_vec()).unwrap()
    };
    let full_path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let resp = ingest(&mut s, &path, &full_path, &parts.headers, &text);
    let status = resp.status().as_u16();
    s.calls.push(Call {
        path: full_path,
        headers: parts.headers,
        body: text,
        status,
        at: Instant::now(),
    });
    if let Some(n) = s.expire_tokens_after_calls {
        if s.calls.len() >= n {
            s.valid.clear();
            s.expire_tokens_after_calls = None;
        }
    }
    Ok(resp)
}

fn ingest(
    s: &mut State,
    path: &str,
    full_path: &str,
    headers: &http::HeaderMap,
    text: &str,
) -> Response<Full<Bytes>> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let now = Instant::now();
    let valid = token.is_some_and(|t| s.valid.get(t).is_some_and(|&until| now < until));
    if !valid {
        return api_error(
            401,
            "InvalidToken",
            "The access token is missing, invalid or expired.",
        );
    }
    let Some(rest) = path.strip_prefix("/dataCollectionRules/") else {
        return api_error(404, "NotFound", "unknown path");
    };
    let (dcr, stream) = rest.split_once("/streams/").unwrap_or((rest, ""));
    if !full_path.ends_with("?api-version=2023-01-01") {
        return api_error(
            400,
            "InvalidApiVersion",
            "api-version is missing or unsupported",
        );
    }
    if !s.role {
        return api_error(
            403,
            "OperationFailed",
            &format!("The authentication token provided does not have access to ingest data for the data collection rule with immutable Id '{dcr}'."),
        );
    }
    if dcr != DCR || stream != STREAM {
        return api_error(
            404,
            "InvalidStream",
            &format!("Stream '{stream}' does not exist in data collection rule '{dcr}'."),
        );
    }
    if let Some(status) = s.down {
        return api_error(status, "ServiceUnavailable", "The service is unavailable.");
    }
    if s.throttle > 0 {
        s.throttle -= 1;
        let mut r = api_error(429, "TooManyRequests", "Too many requests; retry later.");
        r.headers_mut()
            .insert("retry-after", http::HeaderValue::from_static("1"));
        return r;
    }
    if text.len() > s.max_body {
        return api_error(
            413,
            "ContentLengthLimitExceeded",
            "Maximum allowed content length: 1048576 bytes (1 MB).",
        );
    }
    let Ok(Value::Array(rows)) = serde_json::from_str::<Value>(text) else {
        return api_error(400, "InvalidArgument", "The body must be a JSON array.");
    };
    for (i, row) in rows.iter().enumerate() {
        let id = row["EventId"].as_str().unwrap_or("");
        if s.bad_rows.contains(id) {
            return api_error(
                400,
                "InvalidArgument",
                &format!("Row {i}: column 'Title' does not match the stream declaration."),
            );
        }
    }
    s.rows.extend(rows);
    Response::builder()
        .status(204)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Waits until `f` holds, up to `bound`.
pub async fn until(what: &str, bound: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
