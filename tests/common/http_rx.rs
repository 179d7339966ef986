//! A loopback HTTP receiver for the HTTP-out sink's tests: a hyper 1 HTTP/1.1 server on
//! 127.0.0.1 that records every request (method, path, headers, body) and answers from a
//! script of replies (status, delay, headers), 200 once the script is used up.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Wait this long before answering (the request is recorded at once).
    pub delay: Duration,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            delay: Duration::ZERO,
            headers: Vec::new(),
        }
    }

    pub fn delayed(status: u16, delay: Duration) -> Reply {
        Reply {
            delay,
            ..Reply::status(status)
        }
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// One request as the receiver saw it, with the answer it was given.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status answered (or to be answered, after `delay`).
    pub status: u16,
    pub delay: Duration,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// Answered 2xx without a delay: the sender saw it accepted.
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status) && self.delay.is_zero()
    }
}

pub struct Inner {
    pub requests: Vec<Recorded>,
    pub script: VecDeque<Reply>,
    pub default: Reply,
}

/// A hyper 1 HTTP/1.1 server on 127.0.0.1:0. Each request takes the next reply of the script,
/// or the default reply (200 unless changed) once the script is used up.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    pub inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    pub async fn start(script: Vec<Reply>) -> Receiver {
        Receiver::start_on("127.0.0.1:0".parse().unwrap(), script).await
    }

    /// A receiver on a given address (to bring one up where a sink already sends).
    pub async fn start_on(addr: SocketAddr, script: Vec<Reply>) -> Receiver {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Mutex::new(Inner {
            requests: Vec::new(),
            script: script.into(),
            default: Reply::status(200),
        }));
        let shared = inner.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let inner = shared.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| answer(inner.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Receiver { addr, inner }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set_default(&self, reply: Reply) {
        self.inner.lock().unwrap().default = reply;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().requests.clone()
    }

    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Requests answered 2xx at once (what the sink counts as delivered).
    pub fn accepted(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(Recorded::accepted)
            .collect()
    }

    /// The `id` of the Event JSON body of every accepted request, in order.
    pub fn accepted_ids(&self) -> Vec<String> {
        self.accepted()
            .iter()
            .map(|r| r.json()["id"].as_str().unwrap().to_owned())
            .collect()
    }

    pub fn count(&self) -> usize {
        self.inner.lock().unwrap().requests.len()
    }
}

pub async fn answer(
    inner: Arc<Mutex<Inner>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let reply = {
        let mut g = inner.lock().unwrap();
        let reply = g.script.pop_front().unwrap_or_else(|| g.default.clone());
        g.requests.push(Recorded {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            headers: parts.headers,
            body,
            status: reply.status,
            delay: reply.delay,
            at: Instant::now(),
        });
        reply
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        resp = resp.header(*k, v.as_str());
    }
    Ok(resp
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap())
}
