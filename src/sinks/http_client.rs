//! The HTTP/1.1 client the HEC and HTTP sinks share: one keep-alive connection per sink (a
//! sink's worker sends one request at a time, so a pool of one is the pool), plain or TLS,
//! with a connect timeout, a whole-request timeout, a cap on the response body it reads, and
//! the cookies the destination set (Splunk behind a load balancer needs its sticky-session
//! cookie on the acknowledgement polls that follow a send).

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, COOKIE, HOST, SET_COOKIE};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::retry::SendError;
use crate::config::Endpoint;
use crate::tls::ClientTls;

/// Responses are small JSON documents; a destination that sends more is not read further.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Cookies kept per sink; a load balancer sets one or two.
const MAX_COOKIES: usize = 16;

/// A response as the sink needs it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The answer says "later": 5xx, 429 or 408. Returns the retryable error for it.
    pub fn retryable(&self, reason: &str) -> Option<SendError> {
        let s = self.status;
        (s.is_server_error()
            || s == StatusCode::TOO_MANY_REQUESTS
            || s == StatusCode::REQUEST_TIMEOUT)
            .then(|| SendError::Retryable {
                reason: reason.to_owned(),
                retry_after: self.retry_after(),
            })
    }

    /// `Retry-After` in seconds, when the destination gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        self.headers
            .get(http::header::RETRY_AFTER)?
            .to_str()
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
            .map(|s| Duration::from_secs(s.min(3600)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("TLS handshake with {addr} failed: {source}")]
    Tls {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0} timed out")]
    Timeout(&'static str),
    #[error("HTTP error: {0}")]
    Http(#[from] hyper::Error),
}

impl ClientError {
    /// A certificate or TLS setup problem: retrying will not help until someone fixes a config.
    pub fn is_config_error(&self) -> bool {
        match self {
            ClientError::Tls { source, .. } => crate::tls::client::is_config_error(source),
            _ => false,
        }
    }
}

impl From<ClientError> for SendError {
    /// A certificate problem holds the queue (configuration); anything else is retried.
    fn from(e: ClientError) -> SendError {
        if e.is_config_error() {
            SendError::Config(e.to_string())
        } else {
            SendError::retryable(e.to_string())
        }
    }
}

/// One sink's connection to its destination.
pub struct HttpClient {
    endpoint: Endpoint,
    tls: Option<TlsConnector>,
    server_name: Option<rustls_pki_types::ServerName<'static>>,
    connect_timeout: Duration,
    request_timeout: Duration,
    conn: Option<SendRequest<Full<Bytes>>>,
    cookies: Vec<(String, String)>,
    /// The status of the last answer, for the admin API's test sends.
    last_status: Option<u16>,
    /// Bytes of a response body read at most (the rest is not read).
    max_response_bytes: usize,
}

impl HttpClient {
    /// The status of the last answer received, if any.
    pub fn last_status(&self) -> Option<u16> {
        self.last_status
    }

    pub fn new(
        endpoint: Endpoint,
        tls: Option<&ClientTls>,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> HttpClient {
        HttpClient {
            endpoint,
            tls: tls.map(|t| TlsConnector::from(t.config.clone())),
            server_name: tls.map(|t| t.server_name.clone()),
            connect_timeout,
            request_timeout,
            conn: None,
            cookies: Vec::new(),
            last_status: None,
            max_response_bytes: MAX_RESPONSE_BYTES,
        }
    }

    /// Reads response bodies up to `bytes` (an Elasticsearch `_bulk` answer lists every item).
    pub fn with_max_response_bytes(mut self, bytes: usize) -> HttpClient {
        self.max_response_bytes = bytes;
        self
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Drops the connection; the next request opens a new one.
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    async fn connect(&mut self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        let addr = format!("{}:{}", self.endpoint.host, self.endpoint.port);
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&addr))
            .await
            .map_err(|_| ClientError::Timeout("connect"))?
            .map_err(|source| ClientError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let sender = match (&self.tls, &self.server_name) {
            (Some(connector), Some(name)) => {
                let tls = tokio::time::timeout(
                    self.connect_timeout,
                    connector.connect(name.clone(), tcp),
                )
                .await
                .map_err(|_| ClientError::Timeout("TLS handshake"))?
                .map_err(|source| ClientError::Tls { addr, source })?;
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                sender
            }
            _ => {
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                sender
            }
        };
        Ok(sender)
    }

    /// Sends `req` (its URI a path; Host and cookies are added here) and reads the answer, all
    /// within the request timeout. Any failure closes the connection.
    pub async fn send(&mut self, mut req: Request<Full<Bytes>>) -> Result<Reply, ClientError> {
        if let Ok(host) = HeaderValue::from_str(self.endpoint.authority()) {
            req.headers_mut().insert(HOST, host);
        }
        if !self.cookies.is_empty() {
            let jar = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            if let Ok(v) = HeaderValue::from_str(&jar) {
                req.headers_mut().insert(COOKIE, v);
            }
        }
        let result = self.exchange(req).await;
        match &result {
            Ok(reply) => {
                self.keep_cookies(&reply.headers);
                let close = reply
                    .headers
                    .get(CONNECTION)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                if close {
                    self.conn = None;
                }
            }
            Err(_) => self.conn = None,
        }
        result
    }

    async fn exchange(&mut self, req: Request<Full<Bytes>>) -> Result<Reply, ClientError> {
        let reusable = match self.conn.take() {
            Some(mut s) => s.ready().await.is_ok().then_some(s),
            None => None,
        };
        let mut sender = match reusable {
            Some(s) => s,
            None => self.connect().await?,
        };
        let timeout = self.request_timeout;
        let max_body = self.max_response_bytes;
        let reply = tokio::time::timeout(timeout, async {
            sender.ready().await?;
            let resp = sender.send_request(req).await?;
            let (parts, body) = resp.into_parts();
            // A body over the cap is cut; the status and headers are what matter.
            let body = match Limited::new(body, max_body).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => Bytes::new(),
            };
            Ok::<_, ClientError>(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        })
        .await
        .map_err(|_| ClientError::Timeout("request"))??;
        self.conn = Some(sender);
        self.last_status = Some(reply.status.as_u16());
        Ok(reply)
    }

    fn keep_cookies(&mut self, headers: &HeaderMap) {
        for v in headers.get_all(SET_COOKIE) {
            let Ok(text) = v.to_str() else { continue };
            let pair = text.split(';').next().unwrap_or("");
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            if name.is_empty() {
                continue;
            }
            if let Some(slot) = self.cookies.iter_mut().find(|(k, _)| k == name) {
                slot.1 = value.to_owned();
            } else if self.cookies.len() < MAX_COOKIES {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }
}

/// A request body of `items` back to back, gzip-compressed when `gzip`, built in `buf` (kept
/// between requests so its capacity is reused).
pub fn concat_body(buf: &mut Vec<u8>, gzip: bool, items: &[Bytes]) -> Bytes {
    buf.clear();
    if gzip {
        let mut gz =
            flate2::write::GzEncoder::new(std::mem::take(buf), flate2::Compression::fast());
        for e in items {
            // Writing into a Vec cannot fail.
            let _ = std::io::Write::write_all(&mut gz, e);
        }
        let compressed = gz.finish().unwrap_or_default();
        let out = Bytes::copy_from_slice(&compressed);
        *buf = compressed;
        out
    } else {
        for e in items {
            buf.extend_from_slice(e);
        }
        Bytes::copy_from_slice(buf)
    }
}
