//! A loopback Elasticsearch/OpenSearch `_bulk` endpoint for the elasticsearch sink's tests: a
//! hyper 1 HTTP/1.1 server on 127.0.0.1 that indexes documents in memory and answers the way
//! the public API references say a cluster does:
//!
//! * Bulk API, request: NDJSON action/metadata line + source line per document, the body ending
//!   in a newline; `create` fails on an existing `_id`, `index` replaces
//!   (<https://www.elastic.co/guide/en/elasticsearch/reference/current/docs-bulk.html>,
//!   "Bulk API" > request body; OpenSearch:
//!   <https://docs.opensearch.org/latest/api-reference/document-apis/bulk/>).
//! * Bulk API, response body: 200 with `took`, `errors` (true if any operation failed) and
//!   `items`, one result per action in request order, each with `status` and, when it failed,
//!   `error.type`/`error.reason`; `filter_path` keeps only the named paths (Elasticsearch
//!   "Common options" > response filtering).
//! * `create` of an id already indexed: item 409 `version_conflict_engine_exception`.
//! * A write thread pool that is full: item (or whole request) 429
//!   `es_rejected_execution_exception`; the client retries the item.
//! * A field mapped `long` given a value that is not an integer: item 400
//!   `mapper_parsing_exception` ("failed to parse field [x] of type [long]").
//! * A body over `http.max_content_length`: 413 for the whole request.
//! * Without valid credentials: 401 `security_exception` ("missing authentication credentials").
//! * `Content-Encoding: gzip` request bodies are accepted (HTTP compression).
//! * `_type` in an action: 400 `illegal_argument_exception` (types were removed in 8.0;
//!   OpenSearch refuses it).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// One document as indexed.
#[derive(Debug, Clone)]
pub struct Doc {
    pub index: String,
    pub id: String,
    pub source: Value,
}

#[derive(Default)]
pub struct State {
    /// Indexed documents in the order they were first indexed.
    pub docs: Vec<Doc>,
    by_key: HashMap<(String, String), usize>,
    /// Every `_bulk` request: (path with query, headers, decoded body).
    pub requests: Vec<(String, http::HeaderMap, String)>,
    /// The status of every answer, in order (a lost answer is not listed).
    pub statuses: Vec<u16>,
    /// How many times each `_id` appeared in an action, over all requests.
    pub attempts: HashMap<String, usize>,
    /// Ids whose next attempt is answered 429 (then forgotten: the pool drained).
    pub reject_once: HashSet<String>,
    /// Fields mapped `long`, as dotted paths into the source.
    pub long_fields: Vec<String>,
    /// Whole requests answered with this status (and `Retry-After: 1` on 429) while set.
    pub whole_status: Option<u16>,
    /// The next N requests are indexed and then their connection is dropped with no answer
    /// (an answer lost on the way back).
    pub lose_answers: usize,
    /// `http.max_content_length`, on the decoded body.
    pub max_content_length: usize,
    /// The `Authorization` header value required, if any.
    pub authorization: Option<String>,
}

#[derive(Clone)]
pub struct Cluster {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
}

impl Cluster {
    pub async fn start() -> Cluster {
        Cluster::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(addr: SocketAddr) -> Cluster {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            max_content_length: 100 * 1024 * 1024,
            ..State::default()
        }));
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let state = state.clone();
                        async move {
                            let resp = handle(state.clone(), req).await;
                            if let Ok(r) = &resp {
                                state.lock().unwrap().statuses.push(r.status().as_u16());
                            }
                            resp
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Cluster { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    /// The indexed documents' ids, in indexing order.
    pub fn ids(&self) -> Vec<String> {
        self.with(|s| s.docs.iter().map(|d| d.id.clone()).collect())
    }

    pub fn docs(&self) -> Vec<Doc> {
        self.with(|s| s.docs.clone())
    }

    pub fn request_count(&self) -> usize {
        self.with(|s| s.requests.len())
    }
}

fn error_item(op: &str, status: u16, kind: &str, reason: &str) -> Value {
    json!({ op: { "status": status, "error": { "type": kind, "reason": reason } } })
}

fn lookup<'v>(v: &'v Value, dotted: &str) -> Option<&'v Value> {
    dotted.split('.').try_fold(v, |v, k| v.get(k))
}

fn whole(status: u16, kind: &str, reason: &str) -> Response<Full<Bytes>> {
    let body = json!({"error": {"type": kind, "reason": reason}, "status": status});
    let mut b = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if status == 429 {
        b = b.header("retry-after", "1");
    }
    b.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let raw = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let gz = parts
        .headers
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let text = if gz {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_string(&mut s)
            .unwrap();
        s
    } else {
        String::from_utf8(raw.to_vec()).unwrap()
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let mut s = state.lock().unwrap();
    s.requests
        .push((path.clone(), parts.headers.clone(), text.clone()));
    if let Some(want) = &s.authorization {
        let got = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if got != Some(want.as_str()) {
            return Ok(whole(
                401,
                "security_exception",
                "missing authentication credentials for REST request [/_bulk]",
            ));
        }
    }
    if !parts.uri.path().ends_with("/_bulk") {
        return Ok(whole(404, "no_handler_found_exception", "no handler"));
    }
    if let Some(status) = s.whole_status {
        return Ok(match status {
            429 => whole(
                429,
                "es_rejected_execution_exception",
                "rejected execution of coordinating operation",
            ),
            st => whole(st, "unavailable", "cluster unavailable"),
        });
    }
    if text.len() > s.max_content_length {
        return Ok(whole(413, "content_too_long", "Request Entity Too Large"));
    }
    if !text.ends_with('\n') {
        return Ok(whole(
            400,
            "illegal_argument_exception",
            "The bulk request must be terminated by a newline [\\n]",
        ));
    }
    let mut lines = text.lines();
    let mut items = Vec::new();
    let mut errors = false;
    while let Some(action_line) = lines.next() {
        let action: Value = serde_json::from_str(action_line).unwrap();
        let (op, meta) = action.as_object().unwrap().iter().next().unwrap();
        let op = op.clone();
        let source: Value = serde_json::from_str(lines.next().expect("source line")).unwrap();
        if meta.get("_type").is_some() {
            return Ok(whole(
                400,
                "illegal_argument_exception",
                "Action/metadata line [1] contains an unknown parameter [_type]",
            ));
        }
        let index = meta["_index"].as_str().unwrap().to_owned();
        let id = meta["_id"].as_str().unwrap().to_owned();
        *s.attempts.entry(id.clone()).or_default() += 1;
        if s.reject_once.remove(&id) {
            errors = true;
            items.push(error_item(
                &op,
                429,
                "es_rejected_execution_exception",
                "rejected execution of primary operation",
            ));
            continue;
        }
        let bad_field = s.long_fields.iter().find(|f| {
            lookup(&source, f).is_some_and(|v| {
                !(v.is_i64() || v.is_u64() || v.as_str().is_some_and(|t| t.parse::<i64>().is_ok()))
            })
        });
        if let Some(f) = bad_field {
            errors = true;
            let reason =
                format!("failed to parse field [{f}] of type [long] in document with id '{id}'");
            items.push(error_item(&op, 400, "mapper_parsing_exception", &reason));
            continue;
        }
        let key = (index.clone(), id.clone());
        match (op.as_str(), s.by_key.get(&key).copied()) {
            ("create", Some(_)) => {
                errors = true;
                let reason = format!("[{id}]: version conflict, document already exists");
                items.push(error_item(
                    &op,
                    409,
                    "version_conflict_engine_exception",
                    &reason,
                ));
            }
            ("index", Some(at)) => {
                s.docs[at].source = source;
                items.push(json!({ op: { "status": 200 } }));
            }
            _ => {
                let at = s.docs.len();
                s.docs.push(Doc { index, id, source });
                s.by_key.insert(key, at);
                items.push(json!({ op: { "status": 201 } }));
            }
        }
    }
    if s.lose_answers > 0 {
        s.lose_answers -= 1;
        // Indexed, but the answer never arrives: the connection is dropped.
        return Err(std::io::Error::other("answer lost"));
    }
    let body = json!({"took": 3, "errors": errors, "items": items});
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap())
}
