//! The admin API: JSON over its own listener, bearer tokens from the config, every change
//! audited. Operators add, change, test and delete sources, rotate secrets, test sinks and
//! reload the config file without a restart. The contract is `api/openapi.json`, served at
//! `GET /api/v1/openapi.json`.

mod console;
mod dead_letters;
pub mod input;
pub mod throttle;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::config::{AdminLimits, AdminRole, AdminToken, ConfigIssue};
use crate::control::store::{ApiRecord, GraceRecord};
use crate::control::{ApiChange, ChangeError, Control, Origin, SourceEntry, State};
use crate::normalize::{Kind, Severity, Status, Timestamp};
use crate::sinks::TestOutcome;
use throttle::{AuthThrottle, FailureLog, Verdict};

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("../../api/openapi.json");

/// Largest request body the admin API reads.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How long a client may take to send its body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest grace period a secret reset may give the old secret: a week.
const MAX_GRACE_SECONDS: u64 = 7 * 24 * 3600;
/// `Retry-After` of a change the cluster's sources topic did not take: brokers that are
/// unreachable or electing a leader are usually back within seconds.
const SHARED_STORE_RETRY_AFTER: u64 = 5;

pub struct Admin {
    pub control: Arc<Control>,
    pub tokens: Vec<AdminToken>,
    limits: AdminLimits,
    /// Failed authentications per client address (429 past the limit).
    throttle: AuthThrottle,
}

impl Admin {
    pub fn new(control: Arc<Control>, tokens: Vec<AdminToken>, limits: AdminLimits) -> Admin {
        Admin {
            control,
            tokens,
            limits,
            throttle: AuthThrottle::new(limits),
        }
    }
}

/// Who called: the token's name and role.
#[derive(Clone, Copy)]
struct Caller<'a> {
    name: &'a str,
    role: AdminRole,
}

/// An answer with its status; errors are `{"error": ..., "issues": [...]}`.
struct Reply {
    status: StatusCode,
    body: Option<Value>,
    location: Option<String>,
    allow: Option<&'static str>,
    /// Seconds for Retry-After (429).
    retry_after: Option<u64>,
}

impl Reply {
    fn json(status: StatusCode, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
            location: None,
            allow: None,
            retry_after: None,
        }
    }

    fn error(status: StatusCode, message: impl Into<String>) -> Reply {
        Reply::json(status, json!({ "error": message.into() }))
    }

    fn issues(status: StatusCode, message: impl Into<String>, issues: &[ConfigIssue]) -> Reply {
        let issues: Vec<Value> = issues
            .iter()
            .map(|i| json!({"path": i.path, "message": i.message}))
            .collect();
        Reply::json(status, json!({ "error": message.into(), "issues": issues }))
    }

    fn method_not_allowed(allow: &'static str) -> Reply {
        let mut r = Reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method not allowed here; allowed: {allow}"),
        );
        r.allow = Some(allow);
        r
    }

    fn from_change(e: ChangeError) -> Reply {
        match e {
            ChangeError::BadRequest { message, issues } => {
                Reply::issues(StatusCode::BAD_REQUEST, message, &issues)
            }
            ChangeError::NotFound(m) => Reply::error(StatusCode::NOT_FOUND, m),
            ChangeError::Conflict(m) => Reply::error(StatusCode::CONFLICT, m),
            ChangeError::InvalidConfig(issues) => Reply::issues(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the config file is invalid; the running configuration stays",
                &issues,
            ),
            ChangeError::Internal(m) => Reply::error(StatusCode::INTERNAL_SERVER_ERROR, m),
            ChangeError::Unavailable => Reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the gateway is shutting down; nothing was changed",
            ),
            ChangeError::SharedStore(m) => {
                let mut r = Reply::error(StatusCode::SERVICE_UNAVAILABLE, m);
                r.retry_after = Some(SHARED_STORE_RETRY_AFTER);
                r
            }
        }
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let body = match &self.body {
            Some(v) => Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
            None => Bytes::new(),
        };
        let mut resp = Response::new(Full::new(body));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        if self.body.is_some() {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(l) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            h.insert(header::LOCATION, l);
        }
        if let Some(a) = self.allow {
            h.insert(header::ALLOW, HeaderValue::from_static(a));
        }
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// The admin listener's handler.
pub async fn handle(
    admin: Arc<Admin>,
    peer: IpAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    if req.uri().path() == "/api/v1/openapi.json" && req.method() == Method::GET {
        admin
            .control
            .registry()
            .admin_request("openapi", 200)
            .increment(1);
        let mut resp = Response::new(Full::new(Bytes::from_static(OPENAPI.as_bytes())));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return resp;
    }
    if req.method() == Method::GET {
        if let Some(resp) = console::asset(req.uri().path()) {
            admin
                .control
                .registry()
                .admin_request("console", 200)
                .increment(1);
            return resp;
        }
    }
    let (route, reply) = route(&admin, peer, req).await;
    admin
        .control
        .registry()
        .admin_request(route, reply.status.as_u16())
        .increment(1);
    reply.into_response()
}

/// The routes, as `(label, segments)` patterns; `{}` matches one id.
enum Route<'a> {
    Sources,
    Source(&'a str),
    ResetSecret(&'a str),
    TestSource(&'a str),
    Recent(&'a str),
    Token,
    Bulk,
    Sinks,
    TestSink(&'a str),
    DeadLetters(&'a str),
    DeadLetter(&'a str, &'a str),
    Replay(&'a str),
    Purge(&'a str),
    Reload,
}

impl Route<'_> {
    fn parse(path: &str) -> Option<Route<'_>> {
        let rest = path.strip_prefix("/api/v1/")?;
        let parts: Vec<&str> = rest.split('/').collect();
        Some(match parts.as_slice() {
            ["sources"] => Route::Sources,
            ["sources", id] if !id.is_empty() => Route::Source(id),
            ["sources", id, "reset-secret"] if !id.is_empty() => Route::ResetSecret(id),
            ["sources", id, "test"] if !id.is_empty() => Route::TestSource(id),
            ["sources", id, "recent"] if !id.is_empty() => Route::Recent(id),
            ["sources-bulk"] => Route::Bulk,
            ["token"] => Route::Token,
            ["sinks"] => Route::Sinks,
            ["sinks", id, "test"] if !id.is_empty() => Route::TestSink(id),
            ["sinks", id, "dead-letters"] if !id.is_empty() => Route::DeadLetters(id),
            ["sinks", id, "dead-letters", "replay"] if !id.is_empty() => Route::Replay(id),
            ["sinks", id, "dead-letters", "purge"] if !id.is_empty() => Route::Purge(id),
            ["sinks", id, "dead-letters", entry] if !id.is_empty() && !entry.is_empty() => {
                Route::DeadLetter(id, entry)
            }
            ["reload"] => Route::Reload,
            _ => return None,
        })
    }

    fn label(&self) -> &'static str {
        match self {
            Route::Sources => "sources",
            Route::Source(_) => "source",
            Route::ResetSecret(_) => "source_reset_secret",
            Route::TestSource(_) => "source_test",
            Route::Recent(_) => "source_recent",
            Route::Token => "token",
            Route::Bulk => "sources_bulk",
            Route::Sinks => "sinks",
            Route::TestSink(_) => "sink_test",
            Route::DeadLetters(_) => "sink_dead_letters",
            Route::DeadLetter(..) => "sink_dead_letter",
            Route::Replay(_) => "sink_dead_letters_replay",
            Route::Purge(_) => "sink_dead_letters_purge",
            Route::Reload => "reload",
        }
    }

    fn allow(&self) -> &'static str {
        match self {
            Route::Sources => "GET, POST",
            Route::Source(_) => "GET, PUT, DELETE",
            Route::Sinks
            | Route::Recent(_)
            | Route::Token
            | Route::DeadLetters(_)
            | Route::DeadLetter(..) => "GET",
            _ => "POST",
        }
    }
}

async fn route(admin: &Admin, peer: IpAddr, req: Request<Incoming>) -> (&'static str, Reply) {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let method = req.method().clone();
    if path == "/api/v1/openapi.json" {
        // GET is answered in `handle`.
        return ("openapi", Reply::method_not_allowed("GET"));
    }
    if let Verdict::Refuse { retry_after } = admin.throttle.check(peer, Instant::now()) {
        let secs = retry_after.as_secs().max(1);
        let mut r = Reply::error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many failed authentications from this address; retry in {secs} s"),
        );
        r.retry_after = Some(secs);
        return ("throttled", r);
    }
    let caller = match authenticate(&admin.tokens, req.headers()) {
        Ok(c) => c,
        Err(m) => {
            log_auth_failure(admin, peer, m);
            return ("unauthorized", Reply::error(StatusCode::UNAUTHORIZED, m));
        }
    };
    let Some(route) = Route::parse(&path) else {
        return (
            "unknown",
            Reply::error(StatusCode::NOT_FOUND, format!("no admin route {path}")),
        );
    };
    let label = route.label();
    let allowed = route.allow().split(", ").any(|m| m == method.as_str());
    if !allowed {
        return (label, Reply::method_not_allowed(route.allow()));
    }
    if method != Method::GET && caller.role == AdminRole::Read {
        return (
            label,
            Reply::error(
                StatusCode::FORBIDDEN,
                format!("token {:?} may only read", caller.name),
            ),
        );
    }
    let body = if method == Method::POST || method == Method::PUT {
        match read_json(req.into_body()).await {
            Ok(b) => b,
            Err(r) => return (label, r),
        }
    } else {
        None
    };
    let c = &admin.control;
    let reply = match (route, method) {
        (Route::Sources, Method::GET) => list_sources(c).await,
        (Route::Sources, _) => create_source(c, caller, body, admin.limits.max_sources).await,
        (Route::Source(id), Method::GET) => get_source(c, id).await,
        (Route::Source(id), Method::PUT) => update_source(c, caller, id, body).await,
        (Route::Source(id), _) => delete_source(c, caller, id).await,
        (Route::ResetSecret(id), _) => reset_secret(c, caller, id, body).await,
        (Route::TestSource(id), _) => test_source(c, caller, id).await,
        (Route::Recent(id), _) => recent(c, id).await,
        (Route::Token, _) => Reply::json(
            StatusCode::OK,
            json!({"name": caller.name, "role": match caller.role {
                AdminRole::Read => "read",
                AdminRole::Admin => "admin",
            }}),
        ),
        (Route::Bulk, _) => bulk(c, caller, body, admin.limits.max_sources).await,
        (Route::Sinks, _) => list_sinks(c).await,
        (Route::TestSink(id), _) => test_sink(c, caller, id).await,
        (Route::DeadLetters(id), _) => dead_letters::list(c, id, &query).await,
        (Route::DeadLetter(id, entry), _) => dead_letters::get(c, id, entry).await,
        (Route::Replay(id), _) => dead_letters::replay(c, caller.name, id, body).await,
        (Route::Purge(id), _) => dead_letters::purge(c, caller.name, id, body).await,
        (Route::Reload, _) => reload(c, caller.name).await,
    };
    (label, reply)
}

/// Finds the token's holder; every configured token is compared, in constant time.
/// Logs a failed authentication at a bounded rate (see [`throttle`]); never the token.
fn log_auth_failure(admin: &Admin, peer: IpAddr, why: &'static str) {
    match admin.throttle.failed(peer, Instant::now()) {
        FailureLog::Quiet => {}
        FailureLog::First { refused_before } => tracing::warn!(
            %peer,
            reason = why,
            refused_in_last_window = refused_before,
            "admin authentication failed (further failures from this address are logged once more if they reach the limit)"
        ),
        FailureLog::Throttled {
            failures,
            retry_after,
        } => tracing::warn!(
            %peer,
            reason = why,
            failures,
            refusing_for_secs = retry_after.as_secs().max(1),
            "admin authentication failed too often; this address gets 429 until its window ends"
        ),
    }
}

fn authenticate<'a>(
    tokens: &'a [AdminToken],
    headers: &http::HeaderMap,
) -> Result<Caller<'a>, &'static str> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err("missing Authorization: Bearer <token>");
    };
    let Some(given) = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return Err("the Authorization header must be Bearer <token>");
    };
    let mut found = None;
    for t in tokens {
        if bool::from(t.token.expose().as_bytes().ct_eq(given.as_bytes())) {
            found = Some(Caller {
                name: &t.name,
                role: t.role,
            });
        }
    }
    found.ok_or("unknown token")
}

async fn read_json(body: Incoming) -> Result<Option<Value>, Reply> {
    let collected =
        tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY_BYTES).collect()).await;
    let bytes = match collected {
        Err(_) => {
            return Err(Reply::error(
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive in time",
            ))
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            ))
        }
        Ok(Err(_)) => {
            return Err(Reply::error(
                StatusCode::BAD_REQUEST,
                "the body could not be read",
            ))
        }
        Ok(Ok(b)) => b.to_bytes(),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        Reply::error(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}"),
        )
    })
}

/// Logs one audit line: who (the token's name), what, on which source or sink, and how it
/// ended. Never a secret.
fn audit(caller: &str, action: &'static str, id: &str, result: &str) {
    if action.starts_with("sink.") {
        tracing::info!(target: "siemgate::audit", token = caller, action, sink = id, result, "admin change");
    } else if action.starts_with("config.") {
        tracing::info!(target: "siemgate::audit", token = caller, action, result, "admin change");
    } else {
        tracing::info!(target: "siemgate::audit", token = caller, action, source = id, result, "admin change");
    }
}

fn rfc3339(t: Timestamp) -> String {
    let mut buf = [0u8; 24];
    t.rfc3339(&mut buf).to_owned()
}

#[derive(Serialize)]
struct FilterView<'a> {
    min_severity: Option<Severity>,
    kinds: &'a [Kind],
    statuses: &'a [Status],
}

#[derive(Serialize)]
struct SourceView<'a> {
    id: &'a str,
    name: Option<&'a str>,
    vendor: &'static str,
    hook_path: String,
    auth_scheme: &'static str,
    has_secret: bool,
    grace_until: Option<String>,
    sinks: &'a [String],
    filter: FilterView<'a>,
    enabled: bool,
    suppressed: bool,
    origin: &'static str,
    created_at: String,
    updated_at: String,
    events_accepted: u64,
    last_event_at: Option<String>,
    auth_failures: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<&'a str>,
}

fn view<'a>(e: &'a SourceEntry, secret: Option<&'a str>) -> Value {
    use std::sync::atomic::Ordering;
    let s = &e.settings;
    let last = e.stats.last_event_ms.load(Ordering::Relaxed);
    let grace_until = s
        .grace
        .as_ref()
        .filter(|(_, until)| *until > SystemTime::now())
        .map(|(_, until)| rfc3339(Timestamp::from_system(*until)));
    let v = SourceView {
        id: &s.id,
        name: s.name.as_deref(),
        vendor: s.vendor.as_str(),
        hook_path: format!("/hooks/{}", s.id),
        auth_scheme: s.verifier.scheme(),
        has_secret: !matches!(s.verifier, crate::auth::Verifier::None),
        grace_until,
        sinks: &e.sink_ids,
        filter: FilterView {
            min_severity: s.filter.min_severity,
            kinds: &s.filter.kinds,
            statuses: &s.filter.statuses,
        },
        enabled: s.enabled,
        suppressed: s.suppressed,
        origin: e.origin.as_str(),
        created_at: rfc3339(e.created_at),
        updated_at: rfc3339(e.updated_at),
        events_accepted: e.stats.events_accepted.get(),
        last_event_at: (last != 0).then(|| rfc3339(Timestamp(last))),
        auth_failures: e.stats.auth_failures.load(Ordering::Relaxed),
        secret,
    };
    serde_json::to_value(v).unwrap_or(Value::Null)
}

async fn list_sources(c: &Control) -> Reply {
    let st = c.lock().await;
    let sources: Vec<Value> = st.sources.values().map(|e| view(e, None)).collect();
    Reply::json(StatusCode::OK, json!({ "sources": sources }))
}

fn no_source(id: &str) -> Reply {
    Reply::error(StatusCode::NOT_FOUND, format!("no source {id:?}"))
}

async fn get_source(c: &Control, id: &str) -> Reply {
    let st = c.lock().await;
    match st.sources.get(id) {
        Some(e) => Reply::json(StatusCode::OK, view(e, None)),
        None => no_source(id),
    }
}

/// The API-made source `id`, or the answer for why it cannot be changed.
fn api_source<'a>(st: &'a State, id: &str) -> Result<&'a SourceEntry, Reply> {
    match st.sources.get(id) {
        None => Err(no_source(id)),
        Some(e) if e.origin == Origin::Config => Err(Reply::error(
            StatusCode::CONFLICT,
            format!("source {id:?} comes from the config file and is read-only here: change it in the file and reload"),
        )),
        Some(e) => Ok(e),
    }
}

/// Makes `upsert` and `delete` durable (the local store, or the cluster's sources topic); the
/// change is applied only if this worked.
async fn save(
    c: &Control,
    st: &mut State,
    upsert: Vec<&ApiRecord>,
    delete: Vec<&str>,
) -> Result<(), Reply> {
    c.persist(st, ApiChange { upsert, delete })
        .await
        .map_err(Reply::from_change)
}

fn now_ms() -> i64 {
    Timestamp::now().millis()
}

/// One validated change to an API source: its new entry and the secret generated for it.
struct Staged {
    entry: SourceEntry,
    generated: Option<String>,
}

/// Validates a definition for `id` (`None`: a new source) against the running state.
fn stage(
    c: &Control,
    st: &State,
    body: Value,
    path_id: Option<&str>,
    prefix: &str,
) -> Result<Staged, Vec<ConfigIssue>> {
    let prev = path_id.and_then(|id| st.sources.get(id));
    let prepared = input::prepare(
        body,
        prev.and_then(|p| p.api.as_ref()).map(|r| &r.definition),
        prefix,
    )?;
    let at = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    if let Some(id) = path_id {
        if prepared.config.id != id {
            return Err(vec![ConfigIssue {
                path: at("id"),
                message: format!(
                    "{:?} does not match the source in the path ({id:?})",
                    prepared.config.id
                ),
            }]);
        }
    }
    let now = now_ms();
    let (created_at, grace) = match prev.and_then(|p| p.api.as_ref()) {
        Some(r) => {
            // Grace secrets stay only while the scheme does.
            let same_scheme =
                input::scheme_of(&r.definition) == input::scheme_of(&prepared.definition);
            (r.created_at, r.grace.clone().filter(|_| same_scheme))
        }
        None => (now, None),
    };
    let record = ApiRecord {
        definition: prepared.definition,
        created_at,
        updated_at: now,
        grace,
    };
    let entry = st.api_entry(record, prev, c.registry()).map_err(|issues| {
        issues
            .into_iter()
            .map(|mut i| {
                i.path = at(&i.path);
                i
            })
            .collect::<Vec<_>>()
    })?;
    Ok(Staged {
        entry,
        generated: prepared.generated,
    })
}

fn need_body(body: Option<Value>) -> Result<Value, Reply> {
    body.ok_or_else(|| Reply::error(StatusCode::BAD_REQUEST, "a JSON body is required"))
}

/// The answer when a change would take the API sources past `admin.max_sources`.
fn too_many_sources(now: usize, adding: usize, max: usize) -> Reply {
    Reply::error(
        StatusCode::CONFLICT,
        format!(
            "the admin API holds {now} sources and this would add {adding}; its limit is {max} (admin.max_sources): delete sources first; nothing was applied"
        ),
    )
}

fn api_source_count(st: &State) -> usize {
    st.sources
        .values()
        .filter(|e| e.origin == Origin::Api)
        .count()
}

async fn create_source(
    c: &Control,
    caller: Caller<'_>,
    body: Option<Value>,
    max_sources: usize,
) -> Reply {
    let body = match need_body(body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut st = match c.lock_for_change().await {
        Ok(st) => st,
        Err(e) => return Reply::from_change(e),
    };
    if let Some(id) = body.get("id").and_then(Value::as_str) {
        if let Some(e) = st.sources.get(id) {
            audit(caller.name, "source.create", id, "conflict");
            return Reply::error(
                StatusCode::CONFLICT,
                format!(
                    "source {id:?} already exists (origin {}); change it with PUT /api/v1/sources/{id}",
                    e.origin.as_str()
                ),
            );
        }
    }
    let now = api_source_count(&st);
    if now >= max_sources {
        audit(
            caller.name,
            "source.create",
            "",
            "refused: admin.max_sources",
        );
        return too_many_sources(now, 1, max_sources);
    }
    let staged = match stage(c, &st, body, None, "") {
        Ok(s) => s,
        Err(issues) => {
            c.forget_unused_series(&st);
            return Reply::issues(StatusCode::BAD_REQUEST, "invalid source", &issues);
        }
    };
    let id = staged.entry.settings.id.clone();
    if let Err(r) = save(c, &mut st, staged.entry.api.iter().collect(), Vec::new()).await {
        audit(caller.name, "source.create", &id, "store write failed");
        c.forget_unused_series(&st);
        return r;
    }
    st.sources.insert(id.clone(), staged.entry);
    c.publish(&st);
    audit(caller.name, "source.create", &id, "ok");
    let mut reply = match st.sources.get(&id) {
        Some(e) => Reply::json(StatusCode::CREATED, view(e, staged.generated.as_deref())),
        None => Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "source vanished"),
    };
    reply.location = Some(format!("/api/v1/sources/{id}"));
    reply
}

async fn update_source(c: &Control, caller: Caller<'_>, id: &str, body: Option<Value>) -> Reply {
    let mut body = match need_body(body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut st = match c.lock_for_change().await {
        Ok(st) => st,
        Err(e) => return Reply::from_change(e),
    };
    if let Err(r) = api_source(&st, id) {
        audit(caller.name, "source.update", id, "refused");
        return r;
    }
    if let Value::Object(o) = &mut body {
        o.entry("id")
            .or_insert_with(|| Value::String(id.to_owned()));
    }
    let staged = match stage(c, &st, body, Some(id), "") {
        Ok(s) => s,
        Err(issues) => return Reply::issues(StatusCode::BAD_REQUEST, "invalid source", &issues),
    };
    if let Err(r) = save(c, &mut st, staged.entry.api.iter().collect(), Vec::new()).await {
        audit(caller.name, "source.update", id, "store write failed");
        return r;
    }
    st.sources.insert(id.to_owned(), staged.entry);
    c.publish(&st);
    audit(caller.name, "source.update", id, "ok");
    match st.sources.get(id) {
        Some(e) => Reply::json(StatusCode::OK, view(e, staged.generated.as_deref())),
        None => no_source(id),
    }
}

async fn delete_source(c: &Control, caller: Caller<'_>, id: &str) -> Reply {
    let mut st = match c.lock_for_change().await {
        Ok(st) => st,
        Err(e) => return Reply::from_change(e),
    };
    if let Err(r) = api_source(&st, id) {
        audit(caller.name, "source.delete", id, "refused");
        return r;
    }
    if let Err(r) = save(c, &mut st, Vec::new(), vec![id]).await {
        audit(caller.name, "source.delete", id, "store write failed");
        return r;
    }
    st.sources.remove(id);
    c.publish(&st);
    audit(caller.name, "source.delete", id, "ok");
    Reply {
        status: StatusCode::NO_CONTENT,
        body: None,
        location: None,
        allow: None,
        retry_after: None,
    }
}

async fn bulk(c: &Control, caller: Caller<'_>, body: Option<Value>, max_sources: usize) -> Reply {
    let body = match need_body(body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let items = match body {
        Value::Object(mut o) if o.len() == 1 && o.get("sources").is_some_and(Value::is_array) => {
            match o.remove("sources") {
                Some(Value::Array(a)) => a,
                _ => Vec::new(),
            }
        }
        _ => {
            return Reply::issues(
                StatusCode::BAD_REQUEST,
                "invalid bulk request",
                &[ConfigIssue {
                    path: "sources".to_owned(),
                    message: "the body must be {\"sources\": [ ... ]}".to_owned(),
                }],
            )
        }
    };
    let mut st = match c.lock_for_change().await {
        Ok(st) => st,
        Err(e) => return Reply::from_change(e),
    };
    let mut issues = Vec::new();
    let mut staged: Vec<Staged> = Vec::with_capacity(items.len());
    let mut seen = std::collections::HashSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let prefix = format!("sources[{i}]");
        let id = item.get("id").and_then(Value::as_str).map(str::to_owned);
        if let Some(id) = &id {
            if !seen.insert(id.clone()) {
                issues.push(ConfigIssue {
                    path: format!("{prefix}.id"),
                    message: format!("{id:?} appears twice in this request"),
                });
                continue;
            }
            if st
                .sources
                .get(id)
                .is_some_and(|e| e.origin == Origin::Config)
            {
                audit(caller.name, "sources.bulk", id, "refused");
                c.forget_unused_series(&st);
                return Reply::error(
                    StatusCode::CONFLICT,
                    format!("{prefix}: source {id:?} comes from the config file and is read-only here; nothing was applied"),
                );
            }
        }
        let existing = id.as_deref().filter(|id| st.sources.contains_key(*id));
        match stage(c, &st, item, existing, &prefix) {
            Ok(s) => staged.push(s),
            Err(mut i) => issues.append(&mut i),
        }
    }
    if !issues.is_empty() {
        audit(caller.name, "sources.bulk", "", "invalid; nothing applied");
        c.forget_unused_series(&st);
        return Reply::issues(
            StatusCode::BAD_REQUEST,
            "invalid sources; nothing was applied",
            &issues,
        );
    }
    let now = api_source_count(&st);
    let adding = staged
        .iter()
        .filter(|s| !st.sources.contains_key(&s.entry.settings.id))
        .count();
    if now + adding > max_sources {
        audit(
            caller.name,
            "sources.bulk",
            "",
            "refused: admin.max_sources",
        );
        c.forget_unused_series(&st);
        return too_many_sources(now, adding, max_sources);
    }
    let ids: Vec<String> = staged.iter().map(|s| s.entry.settings.id.clone()).collect();
    let upsert = staged.iter().filter_map(|s| s.entry.api.as_ref()).collect();
    if let Err(r) = save(c, &mut st, upsert, Vec::new()).await {
        audit(caller.name, "sources.bulk", "", "store write failed");
        c.forget_unused_series(&st);
        return r;
    }
    let mut secrets = Vec::with_capacity(staged.len());
    for s in staged {
        secrets.push(s.generated);
        st.sources.insert(s.entry.settings.id.clone(), s.entry);
    }
    c.publish(&st);
    let mut out = Vec::with_capacity(ids.len());
    for (id, secret) in ids.iter().zip(&secrets) {
        audit(caller.name, "sources.bulk", id, "ok");
        if let Some(e) = st.sources.get(id) {
            out.push(view(e, secret.as_deref()));
        }
    }
    Reply::json(StatusCode::OK, json!({ "sources": out }))
}

async fn reset_secret(c: &Control, caller: Caller<'_>, id: &str, body: Option<Value>) -> Reply {
    let grace_seconds = match body.as_ref().map(|b| {
        b.as_object()
            .filter(|o| o.keys().all(|k| k == "grace_seconds"))
            .map(|o| o.get("grace_seconds").map(Value::as_u64))
    }) {
        None | Some(Some(None)) => 0,
        Some(Some(Some(Some(n)))) if n <= MAX_GRACE_SECONDS => n,
        _ => {
            return Reply::issues(
                StatusCode::BAD_REQUEST,
                "invalid body",
                &[ConfigIssue {
                    path: "grace_seconds".to_owned(),
                    message: format!(
                        "the body may only hold grace_seconds, an integer from 0 to {MAX_GRACE_SECONDS}"
                    ),
                }],
            )
        }
    };
    let mut st = match c.lock_for_change().await {
        Ok(st) => st,
        Err(e) => return Reply::from_change(e),
    };
    let record = match api_source(&st, id) {
        Ok(e) => match &e.api {
            Some(r) => r.clone(),
            None => return no_source(id),
        },
        Err(r) => {
            audit(caller.name, "source.reset_secret", id, "refused");
            return r;
        }
    };
    let scheme = input::scheme_of(&record.definition)
        .unwrap_or("none")
        .to_owned();
    let secret = match input::generate_secret(&scheme) {
        Ok(s) => s,
        Err(e) => return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let Some(definition) = input::with_new_secret(&record.definition, &secret) else {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            format!("source {id:?} uses auth scheme {scheme:?}, which has no secret"),
        );
    };
    let now = now_ms();
    let grace = (grace_seconds > 0).then(|| GraceRecord {
        auth: record
            .definition
            .get("auth")
            .cloned()
            .unwrap_or(Value::Null),
        until: now.saturating_add(i64::try_from(grace_seconds * 1000).unwrap_or(i64::MAX)),
    });
    let new = ApiRecord {
        definition,
        created_at: record.created_at,
        updated_at: now,
        grace,
    };
    let entry = match st.api_entry(new, st.sources.get(id), c.registry()) {
        Ok(e) => e,
        Err(issues) => {
            return Reply::issues(
                StatusCode::BAD_REQUEST,
                "the source does not validate with a single new secret (a basic source needs username and password)",
                &issues,
            )
        }
    };
    if let Err(r) = save(c, &mut st, entry.api.iter().collect(), Vec::new()).await {
        audit(caller.name, "source.reset_secret", id, "store write failed");
        return r;
    }
    let grace_until = entry
        .settings
        .grace
        .as_ref()
        .map(|(_, until)| rfc3339(Timestamp::from_system(*until)));
    st.sources.insert(id.to_owned(), entry);
    c.publish(&st);
    audit(caller.name, "source.reset_secret", id, "ok");
    Reply::json(
        StatusCode::OK,
        json!({ "id": id, "secret": secret, "grace_until": grace_until }),
    )
}

fn outcome_json(id: &str, o: &TestOutcome) -> Value {
    json!({
        "id": id,
        "status": if o.ok { "ok" } else { "failed" },
        "http_status": o.http_status,
        "error": o.error,
    })
}

async fn test_source(c: &Control, caller: Caller<'_>, id: &str) -> Reply {
    let reply = match c.test_source(id).await {
        None => return no_source(id),
        Some(Err(e)) => json!({"status": "failed", "events": 0, "sinks": [], "error": e}),
        Some(Ok((events, sinks))) => {
            let ok = events > 0 && sinks.iter().all(|(_, o)| o.ok);
            let sinks: Vec<Value> = sinks.iter().map(|(id, o)| outcome_json(id, o)).collect();
            let error = (events == 0).then_some("the test payload held no event");
            json!({"status": if ok { "ok" } else { "failed" }, "events": events, "sinks": sinks, "error": error})
        }
    };
    let status = reply["status"].as_str().unwrap_or("failed").to_owned();
    audit(caller.name, "source.test", id, &status);
    Reply::json(StatusCode::OK, reply)
}

/// `GET /api/v1/sources/{id}/recent`: the source's last events (normalized and redacted, with
/// the vendor's object in `raw`) and refusals, newest first.
async fn recent(c: &Control, id: &str) -> Reply {
    let stats = {
        let st = c.lock().await;
        match st.sources.get(id) {
            Some(e) => e.stats.clone(),
            None => return no_source(id),
        }
    };
    let events: Vec<Value> = stats
        .recent()
        .iter()
        .rev()
        .map(|e| {
            let event = e
                .json
                .as_ref()
                .and_then(|b| serde_json::from_slice::<Value>(b).ok());
            json!({"received_at": rfc3339(e.received_at), "bytes": e.bytes, "event": event})
        })
        .collect();
    let refusals: Vec<Value> = stats
        .refusals()
        .iter()
        .rev()
        .map(|(at, reason)| json!({"at": rfc3339(*at), "reason": reason}))
        .collect();
    Reply::json(
        StatusCode::OK,
        json!({"id": id, "events": events, "refusals": refusals}),
    )
}

async fn list_sinks(c: &Control) -> Reply {
    let st = c.lock().await;
    let mut sinks = Vec::new();
    for id in st.sink_ids() {
        let (Some(h), Some(kind)) = (st.sink_handle(id), st.sink_type(id)) else {
            continue;
        };
        let depth = h.queue.depth();
        let last_error = h
            .last_error
            .lock()
            .ok()
            .and_then(|l| l.clone())
            .map(|(at, message)| json!({"at": rfc3339(at), "message": message}));
        let registry = c.registry();
        sinks.push(json!({
            "id": id,
            "type": kind,
            "ready": h.is_healthy(),
            "delivered": registry.sink_counter(crate::metrics::EVENTS_DELIVERED, id),
            "failed": registry.sink_counter(crate::metrics::EVENTS_FAILED, id),
            "last_error": last_error,
            "dead_letters_waiting": st.dead_letters(id).map_or(0, |d| d.waiting()),
            "queue": {
                "type": h.queue.kind(),
                "events": depth.events,
                "bytes": depth.bytes,
                "oldest_event_age_seconds": h.queue.oldest_age().as_secs_f64(),
            },
        }));
    }
    Reply::json(StatusCode::OK, json!({ "sinks": sinks }))
}

async fn test_sink(c: &Control, caller: Caller<'_>, id: &str) -> Reply {
    match c.test_sink(id).await {
        None => Reply::error(StatusCode::NOT_FOUND, format!("no sink {id:?}")),
        Some(o) => {
            audit(
                caller.name,
                "sink.test",
                id,
                if o.ok { "ok" } else { "failed" },
            );
            Reply::json(StatusCode::OK, outcome_json(id, &o))
        }
    }
}

async fn reload(c: &Control, caller: &str) -> Reply {
    match c.reload().await {
        Ok(report) => {
            audit(caller, "config.reload", "", "ok");
            log_reload(&report);
            let mut v = serde_json::to_value(&report).unwrap_or(Value::Null);
            if let Value::Object(o) = &mut v {
                o.insert("status".to_owned(), json!("reloaded"));
            }
            Reply::json(StatusCode::OK, v)
        }
        Err(e) => {
            audit(caller, "config.reload", "", "refused");
            log_reload_error(&e);
            Reply::from_change(e)
        }
    }
}

/// Logs what a reload changed.
pub fn log_reload(report: &crate::control::ReloadReport) {
    tracing::info!(
        sources_added = ?report.sources.added,
        sources_removed = ?report.sources.removed,
        sources_changed = ?report.sources.changed,
        sinks_added = ?report.sinks.added,
        sinks_removed = ?report.sinks.removed,
        sinks_changed = ?report.sinks.changed,
        "config reloaded"
    );
    for key in &report.restart_needed {
        tracing::warn!(key = %key, "changed in the config file; takes effect at the next start");
    }
}

/// Logs why a reload was refused.
pub fn log_reload_error(e: &ChangeError) {
    match e {
        ChangeError::InvalidConfig(issues) => {
            for i in issues {
                tracing::error!(path = %i.path, problem = %i.message, "config reload refused; the running configuration stays");
            }
        }
        other => {
            tracing::error!(error = %other, "config reload refused; the running configuration stays")
        }
    }
}
