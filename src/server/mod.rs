//! Listeners: the accept loop shared by the hooks and ops listeners. A connection permit is
//! taken *before* `accept` (so excess connections wait in the kernel backlog, costing us
//! nothing), the TLS handshake runs under a timeout, HTTP/1.1 and HTTP/2 are served by
//! hyper-util's auto builder (ALPN on TLS, prior knowledge on plaintext) with a header-read
//! timer, and shutdown closes every connection gracefully within the grace period.

pub mod dedup;
pub mod ingest;
pub mod ops;
pub mod reject;
pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::Limits;

/// What a handler knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The client certificate presented and verified against `client_ca`, read once per
    /// connection: sources with `require_client_cert` match it against their identities.
    pub client_cert: Option<Arc<tls::ClientCert>>,
}

/// Concurrent HTTP/2 streams per connection: bounds the work one connection can queue.
const MAX_CONCURRENT_STREAMS: u32 = 128;

/// Serves `handler` on `listener` until `shutdown` fires, then lets open connections finish
/// within `grace`.
pub async fn serve<H, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    shutdown: CancellationToken,
    grace: Duration,
    handler: H,
) where
    H: Fn(ConnInfo, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    let builder = Arc::new(builder);

    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Usually EMFILE; pausing lets connections close before the next try.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = tcp.set_nodelay(true);
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let handler = handler.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => {
                    let info = ConnInfo {
                        peer,
                        client_cert: None,
                    };
                    serve_connection(&builder, watcher, tcp, info, limits, handler).await;
                }
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(
                        limits.tls_handshake_timeout,
                        acceptor.accept(tcp),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let client_cert = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(<[_]>::first)
                        .map(|c| Arc::new(tls::ClientCert::read(c.as_ref())));
                    let info = ConnInfo { peer, client_cert };
                    serve_connection(&builder, watcher, stream, info, limits, handler).await;
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open at the end of the shutdown grace period");
    }
}

/// Serves one connection. A connection that has not sent a complete request head within
/// `header_read_timeout` is closed: hyper's own header timer only starts once HTTP/1 has been
/// detected, so without this a client that connects and sends nothing (or only an HTTP/2
/// preface) would hold a connection permit forever.
async fn serve_connection<IO, H, F>(
    builder: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
    io: IO,
    info: ConnInfo,
    limits: Limits,
    handler: H,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(ConnInfo, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let first_request = Arc::new(AtomicBool::new(false));
    let seen = first_request.clone();
    let conn_info = info.clone();
    let service = service_fn(move |req| {
        seen.store(true, Ordering::Relaxed);
        let fut = handler(conn_info.clone(), req);
        async move { Ok::<_, Infallible>(fut.await) }
    });
    let conn = watcher.watch(
        builder
            .serve_connection(TokioIo::new(io), service)
            .into_owned(),
    );
    tokio::pin!(conn);
    let result = tokio::select! {
        r = &mut conn => r,
        () = tokio::time::sleep(limits.header_read_timeout) => {
            if !first_request.load(Ordering::Relaxed) {
                tracing::debug!(peer = %info.peer, "closing a connection that sent no request in time");
                return;
            }
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(peer = %info.peer, error = %e, "connection ended with an error");
    }
}
