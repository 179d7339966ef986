//! Listeners: the accept loop shared by the hooks, metrics and admin listeners. Connections are
//! accepted at once and admitted by the listener's connection table (per-client and total caps;
//! at capacity the longest-idle connection makes room), the TLS handshake runs under a timeout,
//! HTTP/1.1 and HTTP/2 are served by hyper-util's auto builder (ALPN on TLS, prior knowledge on
//! plaintext) with bounded streams, windows and keep-alive pings, and each connection is closed
//! when it sends no request in time, stays idle, is evicted, grows too old, or at shutdown —
//! gracefully (GOAWAY, `Connection: close`), letting requests in flight finish.

pub mod budget;
pub mod conns;
pub mod ingest;
pub mod ops;
pub mod reject;
pub mod threads;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::Limits;
use crate::tls::ClientCert;
use conns::{ConnMetrics, ConnTable, Slot};
use threads::ConnThreads;

/// What a handler knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The client certificate presented and verified against `client_ca`, read once per
    /// connection: sources with `require_client_cert` match it against their identities.
    pub client_cert: Option<Arc<ClientCert>>,
}

/// How long a connection closed for being idle (or evicted) may take to say goodbye (flush a
/// GOAWAY) when nothing is in flight; a request that raced in gets the full grace period.
const IDLE_CLOSE_DRAIN: Duration = Duration::from_secs(1);

/// The HTTP/2 connection receive window: hyper's default. The stream window is at most the body
/// cap, so one stream never buffers more than a body may hold.
const H2_CONNECTION_WINDOW: u32 = 1024 * 1024;

/// The largest window hyper's adaptive flow control grows a stream and a connection to
/// (`BDP_LIMIT` in hyper's `proto/h2/ping.rs`). Adaptive windows follow the bandwidth-delay
/// product a peer shows, and a peer that delays its PING acknowledgements inflates that product
/// at will, so the window may reach this size whatever the body cap says.
const H2_ADAPTIVE_WINDOW_LIMIT: u64 = 16 * 1024 * 1024;

/// How a listener sizes its HTTP/2 receive windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum H2Windows {
    /// hyper's adaptive (BDP) windows: start at 64 KiB and follow the bandwidth-delay product,
    /// so a distant sender is not held to one window per round trip. Only when the body cap is
    /// at least [`H2_ADAPTIVE_WINDOW_LIMIT`]: then no window can outgrow what a body may hold.
    Adaptive,
    /// Fixed windows: the stream window is the body cap (at most [`H2_CONNECTION_WINDOW`]), so
    /// a stream never buffers more than one body may hold, however the peer paces its pings.
    Fixed { stream: u32, connection: u32 },
}

impl H2Windows {
    fn for_body_cap(max_body_bytes: u64) -> H2Windows {
        if max_body_bytes >= H2_ADAPTIVE_WINDOW_LIMIT {
            return H2Windows::Adaptive;
        }
        let stream = u32::try_from(max_body_bytes)
            .unwrap_or(u32::MAX)
            .clamp(1, H2_CONNECTION_WINDOW);
        H2Windows::Fixed {
            stream,
            connection: H2_CONNECTION_WINDOW,
        }
    }
}

/// One listener's name (for logs and metrics) and its connection counters.
pub struct Listener {
    pub name: &'static str,
    pub metrics: ConnMetrics,
}

/// Serves `handler` on `listener` until `shutdown` fires, then lets open connections finish
/// within `grace`. Connections run on `threads` when given (each stays on one; they stop when
/// this returns), else on the caller's runtime.
#[allow(clippy::too_many_arguments)]
pub async fn serve<H, F>(
    listener: TcpListener,
    about: Listener,
    mut threads: Option<ConnThreads>,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    shutdown: CancellationToken,
    grace: Duration,
    handler: H,
) where
    H: Fn(ConnInfo, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let table = Arc::new(ConnTable::new(
        about.name,
        limits.max_connections,
        limits.max_connections_per_ip,
        about.metrics,
    ));
    // Every connection task holds a sender; when all are gone, `recv` returns None.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // No hyper header timer: `Conn::serve` bounds the first request head by
    // `header_read_timeout` and every later one by `idle_timeout` (shorter, by config), since
    // the time since the last request ended is no request in flight. hyper's timer cost each
    // request a boxed sleep, registered in the timer wheel and removed again.
    builder.http1().header_read_timeout(None);
    let mut h2 = builder.http2();
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .keep_alive_interval(limits.h2_keepalive_interval)
        .keep_alive_timeout(limits.h2_keepalive_timeout);
    match H2Windows::for_body_cap(limits.max_body_bytes) {
        H2Windows::Adaptive => h2.adaptive_window(true),
        H2Windows::Fixed { stream, connection } => h2
            .initial_stream_window_size(stream)
            .initial_connection_window_size(connection),
    };
    let builder = Arc::new(builder);

    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Usually EMFILE; pausing lets connections close before the next try.
                    tracing::warn!(listener = about.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // Refused connections are dropped here: closed at once, before any byte is read.
        let Ok(slot) = table.admit(peer.ip()) else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let builder = builder.clone();
        let handler = handler.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        let open = open_tx.clone();
        let table = table.clone();
        let serve_conn = move |tcp: TcpStream| async move {
            let conn = Conn {
                slot: &slot,
                table: &table,
                limits,
                shutdown,
                grace,
            };
            match tls {
                None => {
                    let info = ConnInfo {
                        peer,
                        client_cert: None,
                    };
                    conn.serve(&builder, tcp, info, handler).await;
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(tcp));
                    let stream = tokio::select! {
                        r = handshake => match r {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        },
                        () = slot.activity().evicted.cancelled() => return,
                    };
                    let client_cert = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(<[_]>::first)
                        .map(|c| Arc::new(ClientCert::read(c.as_ref())));
                    let info = ConnInfo { peer, client_cert };
                    conn.serve(&builder, stream, info, handler).await;
                }
            }
            drop(slot);
            drop(open);
        };
        match &mut threads {
            None => drop(tokio::spawn(serve_conn(tcp))),
            // The socket leaves this runtime's event loop for the serving thread's.
            Some(threads) => match tcp.into_std() {
                Ok(tcp) => threads.spawn(async move {
                    match TcpStream::from_std(tcp) {
                        Ok(tcp) => serve_conn(tcp).await,
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "cannot register the connection")
                        }
                    }
                }),
                Err(e) => tracing::debug!(%peer, error = %e, "cannot hand the connection over"),
            },
        }
    }
    drop(listener);
    drop(open_tx);
    if tokio::time::timeout(grace, open_rx.recv()).await.is_err() {
        tracing::warn!(
            listener = about.name,
            "connections still open at the end of the shutdown grace period"
        );
    }
    // Those still open are dropped with their threads.
    drop(threads);
}

/// Why a connection is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    Shutdown,
    Idle,
    Evicted,
    MaxAge,
}

/// What woke a connection's supervisor.
enum Watch {
    Close(Closing),
    /// Time to look at whether the connection is idle (or sent no request in time).
    IdleCheck,
    /// The closing connection's drain period is over.
    DrainEnd,
}

/// A future polled only when its own waker has fired since its last poll (and on the first
/// poll). Raced against a busy future in one `select!`, it keeps the busy future's wake-ups from
/// polling it: each of those costs one atomic swap here instead of a poll of every branch.
struct OnWake<F> {
    inner: Pin<Box<F>>,
    flag: Arc<WakeFlag>,
    /// `flag` as a waker, made once.
    own: Waker,
    /// The task's waker last stored in `flag`, to compare against without its lock.
    parent: Option<Waker>,
}

struct WakeFlag {
    woken: AtomicBool,
    parent: std::sync::Mutex<Option<Waker>>,
}

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let parent = self.parent.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(w) = parent.as_ref() {
            w.wake_by_ref();
        }
    }
}

impl<F: Future> OnWake<F> {
    fn new(inner: F) -> Self {
        let flag = Arc::new(WakeFlag {
            woken: AtomicBool::new(true),
            parent: std::sync::Mutex::new(None),
        });
        OnWake {
            inner: Box::pin(inner),
            own: Waker::from(flag.clone()),
            flag,
            parent: None,
        }
    }
}

impl<F: Future> Future for OnWake<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        if !this
            .parent
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            let mut parent = this
                .flag
                .parent
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *parent = Some(cx.waker().clone());
            this.parent = Some(cx.waker().clone());
        }
        // Cleared before the poll: a wake-up during it is seen by the next one.
        if !this.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        this.inner
            .as_mut()
            .poll(&mut Context::from_waker(&this.own))
    }
}

pin_project_lite::pin_project! {
    /// A request's response future, counted as in flight on its connection until it completes.
    /// The handler's future is stored once and polled in place: an `async` block awaiting it
    /// would hold it twice (before and after the first poll) and copy it between the two.
    struct Tracked<F> {
        #[pin]
        response: F,
        in_flight: Option<conns::InFlight>,
    }
}

impl<F: Future<Output = Response<Full<Bytes>>>> Future for Tracked<F> {
    type Output = Result<Response<Full<Bytes>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let resp = std::task::ready!(this.response.poll(cx));
        this.in_flight.take();
        Poll::Ready(Ok(resp))
    }
}

/// One admitted connection and what decides when it closes.
struct Conn<'a> {
    slot: &'a Slot,
    table: &'a ConnTable,
    limits: Limits,
    shutdown: CancellationToken,
    grace: Duration,
}

impl Conn<'_> {
    /// Serves one connection until it ends or must close:
    /// * no complete first request head within `header_read_timeout`: dropped (HTTP/1, an
    ///   HTTP/2 preface, or nothing at all);
    /// * no request in flight for `idle_timeout` after the last one: closed gracefully. A later
    ///   HTTP/1 request head that has not arrived whole is no request in flight, so this bounds
    ///   it, and `idle_timeout` is shorter than `header_read_timeout`;
    /// * evicted to make room, older than `max_connection_age`, or shutdown: closed gracefully,
    ///   requests in flight finish within the grace period.
    async fn serve<IO, H, F>(
        self,
        builder: &auto::Builder<TokioExecutor>,
        io: IO,
        info: ConnInfo,
        handler: H,
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Fn(ConnInfo, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        let activity = self.slot.activity().clone();
        let seen = activity.clone();
        let conn_info = info.clone();
        let service = service_fn(move |req| Tracked {
            in_flight: Some(seen.begin()),
            response: handler(conn_info.clone(), req),
        });
        let conn = builder
            .serve_connection(TokioIo::new(io), service)
            .into_owned();
        tokio::pin!(conn);

        let opened = Instant::now();
        let first_request_by = opened + self.limits.header_read_timeout;
        let max_age_at = opened + self.limits.max_connection_age;
        // Why the connection is closing, and until when it may finish what it is doing.
        let mut closing: Option<(Closing, Instant)> = None;
        let mut extended = false;
        let result = loop {
            // When to look at idleness next: when the connection would have been idle for
            // `idle_timeout` (one idle period from now while busy), or, before its first request,
            // at the header deadline; never later than one idle period from now, since a request
            // may start and end in between.
            let now = Instant::now();
            let idle_check = if activity.any_request() {
                now + self.limits.idle_timeout.saturating_sub(activity.idle_for())
            } else {
                first_request_by.min(now + self.limits.idle_timeout)
            };
            let drain_until = closing.map_or(max_age_at, |(_, at)| at);
            // What ends or checks the connection, besides the connection itself: one-off events,
            // polled only when one of them woke the task, not on every wake-up of the connection
            // (a token's poll takes its waiter lock, and the shutdown token is shared by all).
            let watch = OnWake::new(async {
                if closing.is_some() {
                    tokio::time::sleep_until(drain_until).await;
                    return Watch::DrainEnd;
                }
                tokio::select! {
                    biased;
                    () = self.shutdown.cancelled() => Watch::Close(Closing::Shutdown),
                    () = activity.evicted.cancelled() => Watch::Close(Closing::Evicted),
                    () = tokio::time::sleep_until(max_age_at) => Watch::Close(Closing::MaxAge),
                    () = tokio::time::sleep_until(idle_check) => Watch::IdleCheck,
                }
            });
            // The connection first: no random draw per wake-up.
            let woke = tokio::select! {
                biased;
                r = &mut conn => break r,
                w = watch => w,
            };
            let start = match woke {
                Watch::Close(reason) => reason,
                Watch::IdleCheck => {
                    if !activity.any_request() {
                        if Instant::now() < first_request_by {
                            continue;
                        }
                        tracing::debug!(peer = %info.peer, "closing a connection that sent no request in time");
                        return;
                    }
                    if activity.idle_for() < self.limits.idle_timeout {
                        continue;
                    }
                    Closing::Idle
                }
                Watch::DrainEnd => {
                    let reason = closing.map(|(r, _)| r);
                    if activity.in_flight() > 0
                        && !extended
                        && matches!(reason, Some(Closing::Idle | Closing::Evicted))
                    {
                        // A request raced in as the connection went idle (or was evicted): it
                        // gets the full grace period to finish, once.
                        extended = true;
                        closing = reason.map(|r| (r, Instant::now() + self.grace));
                        continue;
                    }
                    tracing::debug!(peer = %info.peer, ?reason, "connection dropped at the end of its drain period");
                    return;
                }
            };
            let metrics = self.table.metrics();
            let drain = match start {
                Closing::Idle => {
                    metrics.closed_idle.increment(1);
                    IDLE_CLOSE_DRAIN
                }
                Closing::Evicted => IDLE_CLOSE_DRAIN,
                Closing::MaxAge => {
                    metrics.closed_max_age.increment(1);
                    self.grace
                }
                Closing::Shutdown => self.grace,
            };
            tracing::debug!(peer = %info.peer, reason = ?start, "closing the connection gracefully");
            conn.as_mut().graceful_shutdown();
            closing = Some((start, Instant::now() + drain));
        };
        if let Err(e) = result {
            tracing::debug!(peer = %info.peer, error = %e, "connection ended with an error");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_watched_future_is_polled_only_after_its_own_wake_up() {
        let polls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let inner_waker: Arc<std::sync::Mutex<Option<Waker>>> = Arc::default();
        let ready = Arc::new(AtomicBool::new(false));
        let (p, w, r) = (polls.clone(), inner_waker.clone(), ready.clone());
        let mut watch = OnWake::new(std::future::poll_fn(move |cx| {
            p.fetch_add(1, Ordering::Relaxed);
            *w.lock().unwrap() = Some(cx.waker().clone());
            if r.load(Ordering::Relaxed) {
                Poll::Ready(7)
            } else {
                Poll::Pending
            }
        }));
        let task_woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        struct Count(Arc<std::sync::atomic::AtomicUsize>);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let task = Waker::from(Arc::new(Count(task_woken.clone())));
        let mut cx = Context::from_waker(&task);

        // Polled once at first, then not again however often the task is polled for others.
        for _ in 0..5 {
            assert!(Pin::new(&mut watch).poll(&mut cx).is_pending());
        }
        assert_eq!(polls.load(Ordering::Relaxed), 1);

        // Its own wake-up wakes the task and lets the next poll through.
        ready.store(true, Ordering::Relaxed);
        inner_waker.lock().unwrap().take().unwrap().wake();
        assert_eq!(task_woken.load(Ordering::Relaxed), 1);
        assert_eq!(Pin::new(&mut watch).poll(&mut cx), Poll::Ready(7));
        assert_eq!(polls.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn h2_windows_never_outgrow_the_body_cap() {
        // The default cap (1 MiB) and anything below hyper's adaptive limit: fixed windows,
        // the stream window no larger than one body.
        assert_eq!(
            H2Windows::for_body_cap(1024 * 1024),
            H2Windows::Fixed {
                stream: 1024 * 1024,
                connection: H2_CONNECTION_WINDOW
            }
        );
        assert_eq!(
            H2Windows::for_body_cap(4096),
            H2Windows::Fixed {
                stream: 4096,
                connection: H2_CONNECTION_WINDOW
            }
        );
        assert_eq!(
            H2Windows::for_body_cap(8 * 1024 * 1024),
            H2Windows::Fixed {
                stream: H2_CONNECTION_WINDOW,
                connection: H2_CONNECTION_WINDOW
            }
        );
        // A cap no adaptive window can exceed: adaptive flow control.
        assert_eq!(
            H2Windows::for_body_cap(H2_ADAPTIVE_WINDOW_LIMIT),
            H2Windows::Adaptive
        );
        assert_eq!(H2Windows::for_body_cap(u64::MAX), H2Windows::Adaptive);
    }
}
