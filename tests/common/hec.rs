//! A loopback Splunk HTTP Event Collector for the HEC sink's end-to-end tests.
//!
//! [`HecServer::start`] binds 127.0.0.1:0 (or a given loopback address) and speaks HTTP/1.1
//! with hyper. It behaves like Splunk where the sink can tell:
//!
//! * `POST /services/collector/event` needs `Authorization: Splunk <token>` (401 code 2 when
//!   missing, 401 code 3 when not `Splunk ...`, 403 code 4 for another token) and an
//!   `X-Splunk-Request-Channel` that is a UUID (400 code 10 when missing, 400 code 11 when not a
//!   UUID). The channel must stay the same for every request (a change is a recorded problem).
//! * The body is gunzipped when `Content-Encoding: gzip`, then parsed strictly as concatenated
//!   event objects, each followed by exactly one `"\n"`: keys only among `time` (a JSON number,
//!   epoch seconds, at most 3 decimals, no exponent), `host`, `source`, `sourcetype` (non-empty
//!   strings, required), `index` (optional string), `event` (an object, required) and `fields`
//!   (an object of strings, required). A malformed event k is answered like Splunk, 400 code 6
//!   with `invalid-event-number` k (events before k count as indexed), and recorded as a problem.
//! * Well-formed requests are answered from a script (a queue of [`Scripted`] answers, then the
//!   fallback, by default 200 `{"text":"Success","code":0}`). A 2xx indexes every event of the
//!   request; an answer with `invalid-event-number` n indexes events `0..n` only (Splunk's data
//!   error); any other answer indexes nothing.
//! * `GET /services/collector/health` answers 200 `{"text":"HEC is healthy","code":17}` (or what
//!   [`HecServer::set_health`] says) and consumes nothing from the script.
//!
//! * Indexer acknowledgement ([`HecServer::enable_acks`], off by default): a 200 code 0 answer to
//!   an event POST gets `"ackId":N`, N counting from 0 per channel (an answer scripted
//!   [`Scripted::without_ack_id`] gets none). `POST /services/collector/ack` with the same token
//!   and channel and a body `{"acks":[ids...]}` answers `{"acks":{"<id>":true|false,...}}` as the
//!   test's [`AckPolicy`] says. Like Splunk, an id answered `true` is forgotten (asking again
//!   answers `false`, recorded as a problem), and so is asking for an id never issued. Refusals
//!   as Splunk answers them: 401 code 2/3 and 403 code 4 (token), 400 code 10 (no channel),
//!   400 code 11 (channel not a UUID, or one that never sent events), 400 code 14 when acks are
//!   off, 400 code 6 for a body that is not `{"acks":[ids]}`. Every poll is recorded
//!   ([`HecServer::ack_polls`]).
//! * Sticky sessions: [`HecServer::set_cookie_once`] / [`HecServer::set_cookie_always`] put a
//!   `Set-Cookie` header on the next / every event answer.
//!
//! Every request is recorded ([`HecServer::requests`]): headers, arrival time, body sizes, the
//! decoded events, and the answer. [`HecServer::indexed`] is what Splunk would have indexed, in
//! order. Anything the sink got wrong on the wire is listed by [`HecServer::problems`].
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const EVENT_PATH: &str = "/services/collector/event";
pub const HEALTH_PATH: &str = "/services/collector/health";
pub const ACK_PATH: &str = "/services/collector/ack";
pub const CHANNEL_HEADER: &str = "x-splunk-request-channel";

/// One scripted answer: status, JSON body, optional `Retry-After` (seconds), optional delay
/// before the answer is sent (the request is recorded, and its events indexed or not, when it
/// arrives).
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<u64>,
    pub delay: Option<Duration>,
    /// With acks enabled, a 2xx code 0 answer gets no `ackId` (as from a token without acks).
    pub no_ack_id: bool,
    /// A `Set-Cookie` header value to send with this answer.
    pub set_cookie: Option<String>,
}

impl Scripted {
    pub fn new(status: u16, body: Value) -> Scripted {
        Scripted {
            status,
            body,
            retry_after: None,
            delay: None,
            no_ack_id: false,
            set_cookie: None,
        }
    }

    /// 200 `{"text":"Success","code":0}`.
    pub fn success() -> Scripted {
        Scripted::new(200, json!({"text": "Success", "code": 0}))
    }

    /// 503 code 9.
    pub fn busy() -> Scripted {
        Scripted::new(503, json!({"text": "Server is busy", "code": 9}))
    }

    /// 500 code 8.
    pub fn internal_error() -> Scripted {
        Scripted::new(500, json!({"text": "Internal server error", "code": 8}))
    }

    /// 429 with `Retry-After: <secs>`.
    pub fn too_many_requests(retry_after: u64) -> Scripted {
        Scripted::new(429, json!({"text": "Server is busy", "code": 9})).retry_after(retry_after)
    }

    /// 400 with a data-error code (5, 6, 12, 13, 15) and `invalid-event-number` n.
    pub fn data_error(code: u64, invalid_event_number: usize) -> Scripted {
        let text = match code {
            5 => "No data",
            12 => "Event field is required",
            13 => "Event field cannot be blank",
            15 => "Error in handling indexed fields",
            _ => "Invalid data format",
        };
        Scripted::new(
            400,
            json!({"text": text, "code": code, "invalid-event-number": invalid_event_number}),
        )
    }

    /// 413, as Splunk answers a body over `max_content_length`.
    pub fn too_large() -> Scripted {
        Scripted::new(413, json!({"text": "Content too large", "code": 27}))
    }

    /// 403 code 4.
    pub fn invalid_token() -> Scripted {
        Scripted::new(403, json!({"text": "Invalid token", "code": 4}))
    }

    pub fn retry_after(mut self, secs: u64) -> Scripted {
        self.retry_after = Some(secs);
        self
    }

    /// Answers only after `delay` (to make the client's request timeout fire).
    pub fn delayed(mut self, delay: Duration) -> Scripted {
        self.delay = Some(delay);
        self
    }

    /// With acks enabled, answer this one without an `ackId`.
    pub fn without_ack_id(mut self) -> Scripted {
        self.no_ack_id = true;
        self
    }

    /// Sends `Set-Cookie: <cookie>` with this answer.
    pub fn with_cookie(mut self, cookie: &str) -> Scripted {
        self.set_cookie = Some(cookie.to_owned());
        self
    }

    /// The `invalid-event-number` of the body, if any.
    pub fn invalid_event_number(&self) -> Option<usize> {
        self.body
            .get("invalid-event-number")
            .and_then(Value::as_u64)
            .map(|n| n as usize)
    }
}

/// One event object as the sink sent it.
#[derive(Debug, Clone)]
pub struct HecEvent {
    /// `time` exactly as written in the body, e.g. `1700000000.123`.
    pub time_text: String,
    /// `time` in epoch milliseconds (exact, from the text).
    pub time_ms: i64,
    pub host: String,
    pub source: String,
    pub sourcetype: String,
    pub index: Option<String>,
    /// The `event` object.
    pub event: Value,
    pub fields: BTreeMap<String, String>,
    /// The object's text as sent (without the trailing newline).
    pub text: String,
}

impl HecEvent {
    /// The normalized event's `id`.
    pub fn id(&self) -> String {
        self.event["id"].as_str().unwrap_or_default().to_owned()
    }
}

/// One request as the server received and answered it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    /// When the request (headers and body) had arrived.
    pub at: Instant,
    /// Body bytes as received (compressed when gzip).
    pub body_len: usize,
    /// `Content-Encoding: gzip` was sent.
    pub gzip: bool,
    /// The body after gunzip (the bytes `max_request_bytes` caps).
    pub decoded: Bytes,
    /// The event objects parsed from the body, in order (up to the first malformed one).
    pub events: Vec<HecEvent>,
    /// The answer.
    pub status: u16,
    pub answer: Value,
    /// How many of `events` were indexed by this request.
    pub indexed: usize,
    /// The `ackId` given in the answer (acks enabled, 2xx code 0).
    pub ack_id: Option<u64>,
    /// The `Set-Cookie` header sent with the answer.
    pub set_cookie: Option<String>,
}

impl Received {
    pub fn is_event_post(&self) -> bool {
        self.method == Method::POST && self.path == EVENT_PATH
    }

    pub fn is_health(&self) -> bool {
        self.path == HEALTH_PATH
    }

    pub fn is_ack_poll(&self) -> bool {
        self.path == ACK_PATH
    }

    /// The cookies of the `Cookie` header(s), as `name=value` strings.
    pub fn cookies(&self) -> Vec<String> {
        cookies_of(&self.headers)
    }

    /// The normalized event ids of the request, in order.
    pub fn ids(&self) -> Vec<String> {
        self.events.iter().map(HecEvent::id).collect()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
}

/// The `name=value` pairs of every `Cookie` header.
pub fn cookies_of(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(';')
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Which asked-for ackIds a poll answers `true` for (ids already acknowledged or never issued
/// are always `false`).
#[derive(Debug, Clone)]
pub enum AckPolicy {
    /// Every pending id asked for.
    All,
    /// None.
    Nothing,
    /// An id on the K-th poll that asks for it (K >= 1; earlier polls answer `false`).
    AfterPolls(usize),
    /// Only these ids.
    Ids(BTreeSet<u64>),
    /// An id once it was issued at least this long ago.
    AfterDelay(Duration),
}

/// One `POST /services/collector/ack` as the server received and answered it.
#[derive(Debug, Clone)]
pub struct AckPoll {
    pub at: Instant,
    pub headers: HeaderMap,
    /// The ids asked for, in the order sent (empty when the body was not understood).
    pub ids: Vec<u64>,
    pub status: u16,
    /// The answer body.
    pub answer: Value,
    /// The ids answered `true`.
    pub acked: Vec<u64>,
}

impl AckPoll {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    pub fn cookies(&self) -> Vec<String> {
        cookies_of(&self.headers)
    }
}

/// An ackId issued and not acknowledged yet.
#[derive(Debug, Clone)]
struct PendingAck {
    issued: Instant,
    events: usize,
    /// Polls that asked for it so far.
    polls: usize,
}

#[derive(Debug, Default)]
struct AckChannel {
    next_id: u64,
    pending: BTreeMap<u64, PendingAck>,
    acked: BTreeSet<u64>,
}

struct State {
    acks_enabled: bool,
    policy: AckPolicy,
    channels: BTreeMap<String, AckChannel>,
    polls: Vec<AckPoll>,
    /// A `Set-Cookie` for event answers, and whether only the next one gets it.
    cookie: Option<(String, bool)>,
    outstanding_events: usize,
    max_outstanding_events: usize,
    token: String,
    script: VecDeque<Scripted>,
    fallback: Scripted,
    health: Scripted,
    channel: Option<String>,
    requests: Vec<Received>,
    indexed: Vec<HecEvent>,
    problems: Vec<String>,
}

/// A running loopback HEC. Dropping it stops it (the port is closed and open connections are
/// dropped).
pub struct HecServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: CancellationToken,
}

impl Drop for HecServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A loopback address with a port that was free a moment ago (bound, then released): for a
/// destination that is down at first and comes up later with [`HecServer::start_on`].
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

impl HecServer {
    /// Starts on 127.0.0.1:0 accepting `Authorization: Splunk <token>`.
    pub async fn start(token: &str) -> HecServer {
        HecServer::start_on("127.0.0.1:0".parse().unwrap(), token).await
    }

    /// Starts on a given loopback address.
    pub async fn start_on(addr: SocketAddr, token: &str) -> HecServer {
        assert!(addr.ip().is_loopback(), "loopback only: {addr}");
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind the HEC server on {addr}: {e}"));
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            token: token.to_owned(),
            script: VecDeque::new(),
            fallback: Scripted::success(),
            health: Scripted::new(200, json!({"text": "HEC is healthy", "code": 17})),
            channel: None,
            requests: Vec::new(),
            indexed: Vec::new(),
            problems: Vec::new(),
            acks_enabled: false,
            policy: AckPolicy::All,
            channels: BTreeMap::new(),
            polls: Vec::new(),
            cookie: None,
            outstanding_events: 0,
            max_outstanding_events: 0,
        }));
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(listener, state.clone(), stop.clone()));
        HecServer { addr, state, stop }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to configure as the sink's `url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues answers for the next well-formed event POSTs, in order.
    pub fn script(&self, answers: impl IntoIterator<Item = Scripted>) {
        self.lock().script.extend(answers);
    }

    /// Scripted answers not used yet.
    pub fn script_left(&self) -> usize {
        self.lock().script.len()
    }

    /// The answer once the script is used up (default: success).
    pub fn set_fallback(&self, answer: Scripted) {
        self.lock().fallback = answer;
    }

    /// The answer to `GET /services/collector/health`.
    pub fn set_health(&self, answer: Scripted) {
        self.lock().health = answer;
    }

    /// Changes the token the server accepts.
    pub fn set_token(&self, token: &str) {
        token.clone_into(&mut self.lock().token);
    }

    /// What was indexed, in order.
    pub fn indexed(&self) -> Vec<HecEvent> {
        self.lock().indexed.clone()
    }

    /// The ids of what was indexed, in order.
    pub fn indexed_ids(&self) -> Vec<String> {
        self.lock().indexed.iter().map(HecEvent::id).collect()
    }

    pub fn indexed_count(&self) -> usize {
        self.lock().indexed.len()
    }

    /// Every request, in arrival order.
    pub fn requests(&self) -> Vec<Received> {
        self.lock().requests.clone()
    }

    /// The `POST /services/collector/event` requests, in arrival order.
    pub fn event_requests(&self) -> Vec<Received> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.is_event_post())
            .cloned()
            .collect()
    }

    pub fn event_request_count(&self) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.is_event_post())
            .count()
    }

    /// The health probes, in arrival order.
    pub fn health_requests(&self) -> Vec<Received> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.is_health())
            .cloned()
            .collect()
    }

    /// The channel of the first request that had a valid one.
    pub fn channel(&self) -> Option<String> {
        self.lock().channel.clone()
    }

    /// Protocol mistakes seen so far (bad auth, channel, encoding or body).
    pub fn problems(&self) -> Vec<String> {
        self.lock().problems.clone()
    }

    /// The problems seen so far, forgetting them (for tests that provoke some on purpose).
    pub fn take_problems(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().problems)
    }

    #[track_caller]
    pub fn assert_no_problems(&self) {
        let p = self.problems();
        assert!(p.is_empty(), "HEC protocol problems:\n  {}", p.join("\n  "));
    }

    /// Turns indexer acknowledgement on, answering polls by `policy`.
    pub fn enable_acks(&self, policy: AckPolicy) {
        let mut st = self.lock();
        st.acks_enabled = true;
        st.policy = policy;
    }

    /// Changes how later polls are answered.
    pub fn set_ack_policy(&self, policy: AckPolicy) {
        self.lock().policy = policy;
    }

    /// `Set-Cookie: <cookie>` on the next event answer only.
    pub fn set_cookie_once(&self, cookie: &str) {
        self.lock().cookie = Some((cookie.to_owned(), true));
    }

    /// `Set-Cookie: <cookie>` on every event answer from now on.
    pub fn set_cookie_always(&self, cookie: &str) {
        self.lock().cookie = Some((cookie.to_owned(), false));
    }

    /// Every ack poll, in arrival order.
    pub fn ack_polls(&self) -> Vec<AckPoll> {
        self.lock().polls.clone()
    }

    pub fn ack_poll_count(&self) -> usize {
        self.lock().polls.len()
    }

    /// The ackIds issued so far (over all channels), in order.
    pub fn ack_ids_issued(&self) -> Vec<u64> {
        self.lock()
            .requests
            .iter()
            .filter_map(|r| r.ack_id)
            .collect()
    }

    /// The ackIds answered `true` so far (over all channels).
    pub fn acked_ids(&self) -> BTreeSet<u64> {
        self.lock()
            .channels
            .values()
            .flat_map(|c| c.acked.iter().copied())
            .collect()
    }

    /// The ackIds issued and not acknowledged yet (over all channels).
    pub fn pending_ack_ids(&self) -> BTreeSet<u64> {
        self.lock()
            .channels
            .values()
            .flat_map(|c| c.pending.keys().copied())
            .collect()
    }

    /// The event request whose answer carried `ackId` `id`.
    pub fn request_with_ack_id(&self, id: u64) -> Option<Received> {
        self.lock()
            .requests
            .iter()
            .find(|r| r.ack_id == Some(id))
            .cloned()
    }

    /// Events of requests answered with an ackId not acknowledged yet.
    pub fn outstanding_events(&self) -> usize {
        self.lock().outstanding_events
    }

    /// The most events ever outstanding (answered with an ackId, not yet acknowledged).
    pub fn max_outstanding_events(&self) -> usize {
        self.lock().max_outstanding_events
    }

    /// How many times each event id appears in the event requests (indexed or not).
    pub fn times_sent(&self, id: &str) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.is_event_post())
            .flat_map(|r| r.events.iter())
            .filter(|e| e.id() == id)
            .count()
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<Mutex<State>>, stop: CancellationToken) {
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(_) => continue,
            },
            () = stop.cancelled() => return,
        };
        let state = state.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(state, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service);
            tokio::select! {
                _ = conn => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

fn reply(answer: &Scripted) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(answer.body.to_string())));
    *resp.status_mut() = StatusCode::from_u16(answer.status).unwrap();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    if let Some(s) = answer.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    if let Some(c) = &answer.set_cookie {
        resp.headers_mut()
            .insert(header::SET_COOKIE, HeaderValue::from_str(c).unwrap());
    }
    resp
}

async fn handle(state: Arc<Mutex<State>>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            st.problems.push(format!("request body not read: {e}"));
            return reply(&Scripted::new(
                400,
                json!({"text": "Invalid data format", "code": 6}),
            ));
        }
    };
    let mut rec = Received {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        headers: parts.headers.clone(),
        at: Instant::now(),
        body_len: body.len(),
        gzip: false,
        decoded: Bytes::new(),
        events: Vec::new(),
        status: 0,
        answer: Value::Null,
        indexed: 0,
        ack_id: None,
        set_cookie: None,
    };
    let answer = {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        let answer = st.answer(&mut rec, body);
        rec.status = answer.status;
        rec.answer = answer.body.clone();
        rec.set_cookie = answer.set_cookie.clone();
        st.requests.push(rec);
        answer
    };
    if let Some(d) = answer.delay {
        tokio::time::sleep(d).await;
    }
    reply(&answer)
}

impl State {
    fn problem(&mut self, rec: &Received, what: String) {
        let n = self.requests.len();
        self.problems.push(format!(
            "request #{n} ({} {}): {what}",
            rec.method, rec.path
        ));
    }

    /// Checks the token and channel headers; `Err` is the answer to give.
    fn check_auth_and_channel(&mut self, rec: &Received) -> Result<(), Scripted> {
        let auth = rec.headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
        match auth {
            None => {
                self.problem(rec, "no Authorization header".into());
                return Err(Scripted::new(
                    401,
                    json!({"text": "Token is required", "code": 2}),
                ));
            }
            Some(v) => match v.strip_prefix(b"Splunk ") {
                None => {
                    let shown = String::from_utf8_lossy(v).into_owned();
                    self.problem(
                        rec,
                        format!("Authorization is not `Splunk <token>`: {shown:?}"),
                    );
                    return Err(Scripted::new(
                        401,
                        json!({"text": "Invalid authorization", "code": 3}),
                    ));
                }
                Some(t) if t != self.token.as_bytes() => {
                    self.problem(rec, "wrong token".into());
                    return Err(Scripted::invalid_token());
                }
                Some(_) => {}
            },
        }
        let channel = rec.headers.get(CHANNEL_HEADER).map(|v| v.as_bytes());
        let Some(channel) = channel else {
            self.problem(rec, "no X-Splunk-Request-Channel header".into());
            return Err(Scripted::new(
                400,
                json!({"text": "Data channel is missing", "code": 10}),
            ));
        };
        let channel = String::from_utf8_lossy(channel).into_owned();
        if uuid::Uuid::try_parse(&channel).is_err() {
            self.problem(rec, format!("channel is not a UUID: {channel:?}"));
            return Err(Scripted::new(
                400,
                json!({"text": "Invalid data channel", "code": 11}),
            ));
        }
        match &self.channel {
            None => self.channel = Some(channel),
            Some(first) if *first != channel => {
                let first = first.clone();
                self.problem(rec, format!("channel changed from {first} to {channel}"));
            }
            Some(_) => {}
        }
        Ok(())
    }

    fn answer(&mut self, rec: &mut Received, body: Bytes) -> Scripted {
        if rec.path == HEALTH_PATH {
            if rec.method != Method::GET {
                self.problem(rec, "health probe is not a GET".into());
            }
            // The probe carries the same token and channel as the event requests.
            if let Err(a) = self.check_auth_and_channel(rec) {
                return a;
            }
            return self.health.clone();
        }
        if rec.path == ACK_PATH {
            return self.answer_ack_poll(rec, body);
        }
        if rec.method != Method::POST || rec.path != EVENT_PATH {
            self.problem(rec, "unexpected method or path".into());
            return Scripted::new(
                404,
                json!({"text": "The requested URL was not found on this server.", "code": 404}),
            );
        }
        let mut answer = self.answer_event_post(rec, body);
        if self.acks_enabled {
            self.issue_ack_id(rec, &mut answer);
        }
        if answer.set_cookie.is_none() {
            if let Some((cookie, once)) = self.cookie.clone() {
                answer.set_cookie = Some(cookie);
                if once {
                    self.cookie = None;
                }
            }
        }
        answer
    }

    /// Gives a 2xx code 0 answer to an event POST its `ackId`, and makes sure the request's
    /// channel exists (as Splunk creates a channel on its first event request).
    fn issue_ack_id(&mut self, rec: &mut Received, answer: &mut Scripted) {
        let Some(channel) = rec.header(CHANNEL_HEADER) else {
            return;
        };
        if uuid::Uuid::try_parse(&channel).is_err() || answer.status == 401 || answer.status == 403
        {
            return;
        }
        let ch = self.channels.entry(channel).or_default();
        let code_ok = answer.body.get("code").and_then(Value::as_u64) == Some(0);
        if !(200..300).contains(&answer.status) || !code_ok || answer.no_ack_id {
            return;
        }
        let id = ch.next_id;
        ch.next_id += 1;
        ch.pending.insert(
            id,
            PendingAck {
                issued: Instant::now(),
                events: rec.events.len(),
                polls: 0,
            },
        );
        rec.ack_id = Some(id);
        self.outstanding_events += rec.events.len();
        self.max_outstanding_events = self.max_outstanding_events.max(self.outstanding_events);
        if let Some(o) = answer.body.as_object_mut() {
            o.insert("ackId".to_owned(), json!(id));
        }
    }

    /// `POST /services/collector/ack`.
    fn answer_ack_poll(&mut self, rec: &mut Received, body: Bytes) -> Scripted {
        let mut poll = AckPoll {
            at: rec.at,
            headers: rec.headers.clone(),
            ids: Vec::new(),
            status: 0,
            answer: Value::Null,
            acked: Vec::new(),
        };
        let answer = self.ack_answer(rec, body, &mut poll);
        poll.status = answer.status;
        poll.answer = answer.body.clone();
        self.polls.push(poll);
        answer
    }

    fn ack_answer(&mut self, rec: &mut Received, body: Bytes, poll: &mut AckPoll) -> Scripted {
        if rec.method != Method::POST {
            self.problem(rec, "ack poll is not a POST".into());
            return Scripted::new(
                404,
                json!({"text": "The requested URL was not found on this server.", "code": 404}),
            );
        }
        if let Err(a) = self.check_auth_and_channel(rec) {
            return a;
        }
        if !self.acks_enabled {
            self.problem(rec, "ack poll while acks are disabled".into());
            return Scripted::new(400, json!({"text": "ACK is disabled", "code": 14}));
        }
        let channel = rec.header(CHANNEL_HEADER).unwrap_or_default();
        if !self.channels.contains_key(&channel) {
            self.problem(rec, format!("ack poll on unknown channel {channel}"));
            return Scripted::new(400, json!({"text": "Invalid data channel", "code": 11}));
        }
        let gzip = rec
            .header("content-encoding")
            .is_some_and(|e| e.eq_ignore_ascii_case("gzip"));
        let decoded = if gzip {
            rec.gzip = true;
            let mut out = Vec::new();
            match flate2::read::MultiGzDecoder::new(&body[..]).read_to_end(&mut out) {
                Ok(_) => Bytes::from(out),
                Err(e) => {
                    self.problem(rec, format!("ack body is not gzip: {e}"));
                    return Scripted::new(400, json!({"text": "Invalid data format", "code": 6}));
                }
            }
        } else {
            body
        };
        rec.decoded = decoded.clone();
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct AckBody {
            acks: Vec<u64>,
        }
        let ids = match serde_json::from_slice::<AckBody>(&decoded) {
            Ok(b) => b.acks,
            Err(e) => {
                let shown = String::from_utf8_lossy(&decoded).into_owned();
                self.problem(
                    rec,
                    format!("ack body is not {{\"acks\":[ids]}}: {e}: {shown:?}"),
                );
                return Scripted::new(400, json!({"text": "Invalid data format", "code": 6}));
            }
        };
        poll.ids.clone_from(&ids);
        let mut seen = BTreeSet::new();
        let mut answers = serde_json::Map::new();
        let mut outstanding_freed = 0;
        let mut problems = Vec::new();
        let policy = self.policy.clone();
        let ch = self.channels.get_mut(&channel).unwrap();
        for id in ids {
            if !seen.insert(id) {
                problems.push(format!("ack id {id} asked twice in one poll"));
                continue;
            }
            let yes = if let Some(p) = ch.pending.get_mut(&id) {
                p.polls += 1;
                match &policy {
                    AckPolicy::All => true,
                    AckPolicy::Nothing => false,
                    AckPolicy::AfterPolls(k) => p.polls >= *k,
                    AckPolicy::Ids(set) => set.contains(&id),
                    AckPolicy::AfterDelay(d) => p.issued.elapsed() >= *d,
                }
            } else if ch.acked.contains(&id) {
                problems.push(format!("ack id {id} asked again after it was acknowledged"));
                false
            } else {
                problems.push(format!("ack id {id} was never issued on channel {channel}"));
                false
            };
            if yes {
                let p = ch.pending.remove(&id).unwrap();
                ch.acked.insert(id);
                outstanding_freed += p.events;
                poll.acked.push(id);
            }
            answers.insert(id.to_string(), Value::Bool(yes));
        }
        self.outstanding_events -= outstanding_freed;
        for p in problems {
            self.problem(rec, p);
        }
        Scripted::new(200, json!({ "acks": answers }))
    }

    fn answer_event_post(&mut self, rec: &mut Received, body: Bytes) -> Scripted {
        if let Err(a) = self.check_auth_and_channel(rec) {
            return a;
        }
        let content_type = rec
            .headers
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        if !content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/json"))
        {
            self.problem(rec, format!("Content-Type is {content_type:?}"));
        }
        let encoding = rec
            .headers
            .get(header::CONTENT_ENCODING)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase());
        let decoded = match encoding.as_deref() {
            None | Some("identity") => {
                if body.starts_with(&[0x1f, 0x8b]) {
                    self.problem(rec, "gzip body without Content-Encoding: gzip".into());
                }
                body
            }
            Some("gzip") => {
                rec.gzip = true;
                let mut out = Vec::new();
                match flate2::read::MultiGzDecoder::new(&body[..]).read_to_end(&mut out) {
                    Ok(_) => Bytes::from(out),
                    Err(e) => {
                        self.problem(rec, format!("body is not gzip: {e}"));
                        return Scripted::new(
                            400,
                            json!({"text": "Invalid data format", "code": 6, "invalid-event-number": 0}),
                        );
                    }
                }
            }
            Some(other) => {
                self.problem(rec, format!("unsupported Content-Encoding {other:?}"));
                return Scripted::new(
                    415,
                    json!({"text": "Unsupported content encoding", "code": 6}),
                );
            }
        };
        rec.decoded = decoded.clone();
        let (events, malformed) = parse_body(&decoded);
        rec.events = events;
        if let Some((k, why)) = malformed {
            self.problem(rec, format!("event {k}: {why}"));
            rec.indexed = k;
            self.indexed.extend(rec.events[..k].iter().cloned());
            return Scripted::new(
                400,
                json!({"text": "Invalid data format", "code": 6, "invalid-event-number": k}),
            );
        }
        if rec.events.is_empty() {
            self.problem(rec, "no events in the body".into());
            return Scripted::new(400, json!({"text": "No data", "code": 5}));
        }
        let answer = self
            .script
            .pop_front()
            .unwrap_or_else(|| self.fallback.clone());
        let n = if (200..300).contains(&answer.status) {
            rec.events.len()
        } else {
            answer
                .invalid_event_number()
                .map_or(0, |n| n.min(rec.events.len()))
        };
        rec.indexed = n;
        self.indexed.extend(rec.events[..n].iter().cloned());
        answer
    }
}

/// Parses a body of event objects each followed by exactly one `"\n"`. Returns the events up to
/// the first malformed one, and that one's index and what is wrong with it.
pub fn parse_body(body: &[u8]) -> (Vec<HecEvent>, Option<(usize, String)>) {
    let mut events = Vec::new();
    let mut expected_start = 0;
    let mut stream = serde_json::Deserializer::from_slice(body).into_iter::<&RawValue>();
    loop {
        let k = events.len();
        let raw = match stream.next() {
            None => break,
            Some(Err(e)) => return (events, Some((k, format!("not JSON: {e}")))),
            Some(Ok(raw)) => raw,
        };
        let end = stream.byte_offset();
        let text = raw.get();
        let start = end - text.len();
        if start != expected_start {
            let gap = String::from_utf8_lossy(&body[expected_start..start]).into_owned();
            return (
                events,
                Some((k, format!("{gap:?} before the object (want nothing)"))),
            );
        }
        if body.get(end) != Some(&b'\n') {
            return (events, Some((k, "not followed by \"\\n\"".to_owned())));
        }
        expected_start = end + 1;
        match parse_event(text) {
            Ok(e) => events.push(e),
            Err(why) => return (events, Some((k, why))),
        }
    }
    if expected_start != body.len() {
        let k = events.len();
        let rest = String::from_utf8_lossy(&body[expected_start..]).into_owned();
        return (events, Some((k, format!("trailing bytes {rest:?}"))));
    }
    (events, None)
}

const KEYS: [&str; 7] = [
    "time",
    "host",
    "source",
    "sourcetype",
    "index",
    "event",
    "fields",
];

/// Parses one event object strictly.
pub fn parse_event(text: &str) -> Result<HecEvent, String> {
    let map: BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(text).map_err(|e| format!("not an object: {e}"))?;
    if let Some(k) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(format!("unknown key {k:?}"));
    }
    let time_text = map.get("time").ok_or("no time")?.get().to_owned();
    let time_ms = epoch_ms_of_number(&time_text)
        .ok_or_else(|| format!("time {time_text} is not epoch seconds with <= 3 decimals"))?;
    let string = |key: &str| -> Result<String, String> {
        let raw = map.get(key).ok_or_else(|| format!("no {key}"))?;
        let s: String = serde_json::from_str(raw.get())
            .map_err(|_| format!("{key} is not a string: {}", raw.get()))?;
        if s.is_empty() {
            return Err(format!("{key} is empty"));
        }
        Ok(s)
    };
    let host = string("host")?;
    let source = string("source")?;
    let sourcetype = string("sourcetype")?;
    let index = match map.get("index") {
        None => None,
        Some(_) => Some(string("index")?),
    };
    let event: Value = serde_json::from_str(map.get("event").ok_or("no event")?.get())
        .map_err(|e| format!("event: {e}"))?;
    if !event.is_object() {
        return Err(format!("event is not an object: {event}"));
    }
    let fields_raw = map.get("fields").ok_or("no fields")?.get();
    let fields: BTreeMap<String, String> = serde_json::from_str(fields_raw)
        .map_err(|_| format!("fields is not an object of strings: {fields_raw}"))?;
    Ok(HecEvent {
        time_text,
        time_ms,
        host,
        source,
        sourcetype,
        index,
        event,
        fields,
        text: text.to_owned(),
    })
}

/// `1700000000.123` -> 1700000000123, `-0.001` -> -1; `None` unless an optional `-`, digits and
/// an optional fraction of 1 to 3 digits (no `+`, no exponent).
pub fn epoch_ms_of_number(text: &str) -> Option<i64> {
    if let Some(abs) = text.strip_prefix('-') {
        return epoch_ms_of_number(abs)
            .filter(|_| !abs.starts_with('-'))
            .map(|ms| -ms);
    }
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut ms = int.parse::<i64>().ok()?.checked_mul(1000)?;
    if let Some(f) = frac {
        if f.is_empty() || f.len() > 3 || !f.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let padded = format!("{f:0<3}");
        ms += padded.parse::<i64>().ok()?;
    }
    Some(ms)
}

/// `2023-11-14T22:15:00.123Z` (the Event's `time`) -> epoch milliseconds.
pub fn epoch_ms_of_rfc3339(s: &str) -> i64 {
    let bad = || -> ! { panic!("not YYYY-MM-DDTHH:MM:SS[.fff]Z: {s:?}") };
    let s2 = s.strip_suffix('Z').unwrap_or_else(|| bad());
    let (date, time) = s2.split_once('T').unwrap_or_else(|| bad());
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
    assert!(d.len() == 3 && t.len() == 3 && frac.len() <= 3, "{s:?}");
    let ms: i64 = format!("{frac:0<3}").parse().unwrap();
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m, day) = (d[0], d[1], d[2]);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + ms
}

#[cfg(test)]
mod self_tests {
    use super::*;

    #[test]
    fn numbers_and_dates() {
        assert_eq!(
            epoch_ms_of_number("1700000000.123"),
            Some(1_700_000_000_123)
        );
        assert_eq!(epoch_ms_of_number("1700000000.1"), Some(1_700_000_000_100));
        assert_eq!(epoch_ms_of_number("1700000000"), Some(1_700_000_000_000));
        assert_eq!(epoch_ms_of_number("1700000000.1234"), None);
        assert_eq!(epoch_ms_of_number("1.7e9"), None);
        assert_eq!(epoch_ms_of_number("-0.001"), Some(-1));
        assert_eq!(epoch_ms_of_number("-1.5"), Some(-1500));
        assert_eq!(epoch_ms_of_number("--1"), None);
        assert_eq!(epoch_ms_of_number("+1"), None);
        assert_eq!(epoch_ms_of_rfc3339("1969-12-31T23:59:59.999Z"), -1);
        assert_eq!(epoch_ms_of_number("\"1\""), None);
        assert_eq!(
            epoch_ms_of_rfc3339("2023-11-14T22:15:00.000Z"),
            1_700_000_100_000
        );
        assert_eq!(epoch_ms_of_rfc3339("1970-01-01T00:00:00.001Z"), 1);
    }

    #[test]
    fn strict_body() {
        let one = r#"{"time":1.5,"host":"h","source":"s","sourcetype":"t","event":{"id":"a"},"fields":{"k":"v"}}"#;
        let (ev, bad) = parse_body(format!("{one}\n{one}\n").as_bytes());
        assert!(bad.is_none(), "{bad:?}");
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].time_ms, 1500);
        assert_eq!(ev[0].id(), "a");
        assert_eq!(
            parse_body(format!("{one}{one}\n").as_bytes()).1.unwrap().0,
            0
        );
        assert_eq!(parse_body(format!("{one}\n\n").as_bytes()).1.unwrap().0, 1);
        let nested = one.replace(r#""v""#, r#"{"x":"y"}"#);
        assert_eq!(
            parse_body(format!("{one}\n{nested}\n").as_bytes())
                .1
                .unwrap()
                .0,
            1
        );
        let extra = one.replace(r#""host""#, r#""colour":"red","host""#);
        assert!(parse_body(format!("{extra}\n").as_bytes()).1.is_some());
    }
}
