//! siemgate: a webhook receiver and SIEM forwarding gateway.
//!
//! Vendors POST alerts to `/hooks/{source}`; siemgate verifies the sender, decodes the vendor's
//! payload without copying it, normalizes every alert to one [`normalize::Event`] schema, and
//! queues each event, already encoded for its destination, in every sink the source routes to.
//! The sender gets its 2xx only once the events are queued. One worker per sink delivers.
//!
//! # Layout
//!
//! * `config`: the TOML file's types, secret references, and `validate()` into runtime settings;
//!   parse errors without values (`parse_error`); the keys every sink has in `config::sinks`,
//!   each sink type's own in a file under it; `config::role`, what `serve --role` runs (intake,
//!   delivery or both) and which configs a split role refuses. It uses no runtime code of
//!   `server` or `sinks`.
//! * `secret`: the `Secret` type that never prints.
//! * `server`: the accept loop (`mod`), each listener's connection table with its per-address and
//!   total caps (`conns`), the budget of body bytes in flight (`budget`), the hooks handler
//!   (`ingest`), the one match that turns refusals into status codes (`reject`), and the
//!   metrics/health listener (`ops`).
//! * `auth`: per-source sender verification (token, basic, HMAC, Standard Webhooks).
//! * `vendors`: payload decoders (`generic`, ...) and shared JSON helpers.
//! * `normalize`: the `Event` schema, severities, timestamps, the payload families (`Vendor`),
//!   and its OCSF 1.x encoding. It knows no decoder.
//! * `routes`: the runtime source in one place: the routing table, each source's settings,
//!   metric handles, target sinks and live counters, and the receipt a request gets.
//! * `dedup`: per-source windows of accepted requests (vendor retries, replays).
//! * `dispatch`: decode -> filter -> encode per sink -> enqueue all or nothing; hands back the
//!   wait until the events are durable (its own `DispatchError`, turned into `Reject` once).
//! * `queue`: bounded per-sink queues of encoded events behind one narrow API (`Queue`): an
//!   in-memory `window`, and for disk queues a segment log (`log`) with its writer (`disk`).
//! * `kafka`: librdkafka client pieces the Kafka queue and the Kafka sink share (client
//!   properties, the idempotent producer's settings, event headers).
//! * `normalize_cli`: `siemgate normalize`, a payload's events without a server.
//! * `tls`: the listener's and the sinks' rustls configs, read by one PEM loader (`tls::pem`):
//!   client certificates and their identities (`tls::server`), CA files, pins and self-signed
//!   receivers (`tls::client`).
//! * `sinks`: encoders, the `Transport` seam (`transport`) and the answers it gives (`sent`),
//!   the one worker loop (`worker`), retry classification and backoff (`retry`), dead letters,
//!   the HTTP client, and each sink (`file`, `hec` for Splunk with its indexer
//!   acknowledgements, `syslog` with LEEF/CEF/JSON bodies, `http`, `elasticsearch`
//!   for Elasticsearch/OpenSearch `_bulk`, `sentinel` for the Azure Monitor Logs Ingestion API,
//!   `kafka` producing to a topic for SIEMs that read Kafka).
//! * `metrics`: metric names and the handles registered once per source, sink and listener, in
//!   a series store (`metrics::store`) that forgets removed sources' and sinks' series. A leaf:
//!   callers hand it labels (a refusal's reason), not their types.
//! * `shutdown`: the signal future the binary waits on.
//! * `control`: the running configuration (sinks, sources, routing table) and every change to
//!   it: admin API calls and reloads; the store of the sources made through the API (`store`),
//!   or in a cluster the compacted Kafka topic every node follows (`cluster`).
//! * `admin`: the admin API's listener handler, its input rules, and the throttle on failed
//!   authentication (`throttle`), and its dead-letter routes (`sinks::dead_letter` keeps the file).
//!
//! # A request, from accept to the sink's bytes
//!
//! 1. `server` accepts the connection (per-address and total caps, TLS handshake under a
//!    timeout) and hyper hands each request to `server::ingest::handle`.
//! 2. `ingest` looks the path up in the current `routes::Routes` (one atomic load: a reload
//!    swaps the table whole), checks method, address and client certificate, verifies the
//!    headers (`auth`), reads the body under its size cap and the in-flight budget, verifies
//!    the body, and asks the source's `dedup` window whether it saw the request before.
//! 3. `dispatch` decodes the borrowed body with the source's vendor, applies the source's
//!    filter, and encodes each event at once into every target sink's wire format, reserving
//!    queue room as it goes; then it commits to every target queue, all or nothing, and hands
//!    back `Accepted` with a `Durable` wait (disk queues: until the events are in the log).
//!    Its `DispatchError` becomes a `Reject`, and `server::reject` picks status, metric reason
//!    and log level in its one match.
//! 4. Each sink's worker (`sinks::worker`) takes batches off its queue (`next_batch`) and sends
//!    them with the sink's transport, which answers per batch (`sinks::sent::Sent`): delivered,
//!    refused or to retry per event, or handed off to a destination that confirms later. The
//!    worker acknowledges what is delivered or refused (`ack`) in queue order, dead-letters what
//!    is refused, and backs off before a retry (`sinks::retry`); what was handed off leaves the
//!    queue when the transport reports it settled (Splunk HEC indexer acknowledgement).
//!
//! Three seams are meant to be extended:
//!
//! * **Decoder** (a new vendor): one file in `vendors/` with a `decode` function that walks a
//!   borrowed body and emits `normalize::Event<'a>`s (stopping when the callback says so),
//!   plus one `Vendor` variant (`normalize/vendor.rs`) and its arm in `Vendor::decode_until`.
//! * **Encoder and sink transport** (a new destination): a config type in `config/sinks/`, an
//!   encoder implementing `sinks::Encoder` (one event appended to a reused buffer, no
//!   allocation per event) as a `sinks::Encoding` variant, and a transport implementing
//!   `sinks::transport::Transport`, added as a `SinkTransport` variant. Only `send` is
//!   required: it sends a batch, or its first events, and answers `Sent::Delivered(n)`,
//!   `Sent::Partial` (per event: refused for good with a reason, or to retry, the rest
//!   delivered) or an error the sink classifies once (`SendError`: retryable or a
//!   configuration problem). `probe` (a real check of the destination), `last_status` and
//!   `close` have defaults; `settled` matters only to a transport that answers
//!   `Sent::HandedOff` and confirms later. The generic worker does batching, queue order,
//!   backoff, retries of single events, dead letters, metrics and readiness.
//! * **Queue** (a new backing store): one `queue::Queue` backing variant, mapping the queue's
//!   API (reserve and commit for dispatch, next batch and ack for the worker, depth) onto
//!   where its events are kept; see `queue`'s module docs.

#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod config;
pub mod control;
pub mod dedup;
pub mod dispatch;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod metrics;
pub mod normalize;
pub mod normalize_cli;
pub mod queue;
pub mod routes;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod sinks;
pub mod tls;
pub mod vendors;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::control::{ChangeError, Control, ReloadReport};
use crate::server::ingest::Ingest;
use crate::server::ops::Ops;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Control(#[from] control::ControlStartError),
    #[error("{}", role_problems(.0))]
    Role(Vec<config::ConfigIssue>),
    #[error("cannot listen on {addr} ({listener}): {source}")]
    Bind {
        listener: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the {threads} threads of the hooks listener: {source}")]
    Threads {
        threads: usize,
        source: std::io::Error,
    },
}

fn role_problems(issues: &[config::ConfigIssue]) -> String {
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// How long shutdown waits for aborted sink workers after the grace period.
const ABORT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A running gateway. Dropping it does not stop it; call [`Gateway::shutdown`] and then
/// [`Gateway::wait`].
pub struct Gateway {
    /// `None` on a delivery-only node (`--role deliver`), which has no hooks listener.
    hooks_addr: Option<SocketAddr>,
    /// The configured hooks address, bound or not.
    hooks_listen: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    control: Arc<Control>,
    shutdown: CancellationToken,
    done: JoinHandle<()>,
}

impl Gateway {
    /// Where the hooks listener is bound (useful when the config said port 0). A
    /// delivery-only node (`--role deliver`) has none: this is then the configured address,
    /// unbound; see [`hooks_listener`](Self::hooks_listener).
    pub fn hooks_addr(&self) -> SocketAddr {
        self.hooks_addr.unwrap_or(self.hooks_listen)
    }

    /// Where the hooks listener is bound; `None` on a delivery-only node.
    pub fn hooks_listener(&self) -> Option<SocketAddr> {
        self.hooks_addr
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Where the admin API listens, when `[admin]` is configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Re-reads the config file and applies it if it is valid (what SIGHUP does); the result
    /// is logged as well.
    pub async fn reload(&self) -> Result<ReloadReport, ChangeError> {
        let r = self.control.reload().await;
        match &r {
            Ok(report) => admin::log_reload(report),
            Err(e) => admin::log_reload_error(e),
        }
        r
    }

    /// Starts a clean shutdown: stop accepting, finish in-flight requests, drain the queues.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits until the gateway has stopped.
    pub async fn wait(self) {
        let _ = self.done.await;
    }
}

async fn bind(listener: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    let l = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            listener,
            addr,
            source,
        })?;
    Ok(l)
}

fn local_addr(
    listener: &'static str,
    l: &TcpListener,
    addr: SocketAddr,
) -> Result<SocketAddr, StartError> {
    l.local_addr().map_err(|source| StartError::Bind {
        listener,
        addr,
        source,
    })
}

/// Binds the listeners and starts the sink workers; returns once the gateway accepts requests.
/// `settings.role` says what runs: a delivery-only node binds no hooks listener, an
/// intake-only node runs no sink worker (see `config::role`).
pub async fn start(settings: Settings) -> Result<Gateway, StartError> {
    let role = settings.role;
    let role_issues = config::role::check(&settings);
    if !role_issues.is_empty() {
        return Err(StartError::Role(role_issues));
    }
    let registry = Arc::new(metrics::Registry::new());
    let server = &settings.server;
    let listen = server.listen;
    let limits = server.limits;
    let grace = server.shutdown_grace;
    let threads = server.threads;
    let tls = server.tls.clone().map(TlsAcceptor::from);
    let metrics_listen = settings.metrics;
    let admin_settings = settings.admin.as_ref().map(|a| {
        (
            a.listen,
            a.tls.clone(),
            a.tokens
                .iter()
                .map(|t| config::AdminToken {
                    name: t.name.clone(),
                    token: t.token.clone(),
                    role: t.role,
                })
                .collect::<Vec<_>>(),
            a.limits,
        )
    });

    let hooks = match role.intakes() {
        true => Some(bind("hooks", listen).await?),
        false => None,
    };
    let hooks_addr = match &hooks {
        Some(l) => Some(local_addr("hooks", l, listen)?),
        None => None,
    };
    let ops_listener = match metrics_listen {
        Some(addr) => Some(bind("metrics", addr).await?),
        None => None,
    };
    let metrics_addr = ops_listener.as_ref().and_then(|l| l.local_addr().ok());
    let admin_listener = match &admin_settings {
        Some((addr, _, _, _)) => Some(bind("admin", *addr).await?),
        None => None,
    };
    let admin_addr = admin_listener.as_ref().and_then(|l| l.local_addr().ok());

    let (control, routes) = Control::start(settings, registry.clone()).await?;
    let control = Arc::new(control);
    control.follow();

    let shutdown = CancellationToken::new();
    let ingest = Arc::new(Ingest {
        routes: routes.clone(),
        unrouted: registry.unrouted(),
        budget: server::budget::BodyBudget::new(
            limits.max_inflight_body_bytes,
            limits.max_body_bytes,
        ),
    });
    let hooks_threads = hooks
        .is_some()
        .then(|| server::threads::ConnThreads::start("hooks", threads))
        .transpose()
        .map_err(|source| StartError::Threads { threads, source })?;
    let hooks_task = hooks.map(|hooks| {
        tokio::spawn(server::serve(
            hooks,
            server::Listener {
                name: "hooks",
                metrics: registry.connections("hooks"),
            },
            hooks_threads,
            tls,
            limits,
            shutdown.clone(),
            grace,
            move |conn, req| server::ingest::handle(ingest.clone(), conn, req),
        ))
    });

    let ops = Arc::new(Ops {
        registry,
        routes,
        accepting: true.into(),
        role,
    });
    let ops_shutdown = CancellationToken::new();
    let ops_task = ops_listener.map(|listener| {
        let ops = ops.clone();
        let about = server::Listener {
            name: "metrics",
            metrics: ops.registry.connections("metrics"),
        };
        tokio::spawn(server::serve(
            listener,
            about,
            None,
            None,
            limits,
            ops_shutdown.clone(),
            std::time::Duration::from_secs(1),
            move |_, req| server::ops::handle(ops.clone(), req),
        ))
    });
    let admin_task = match (admin_listener, admin_settings) {
        (Some(listener), Some((_, admin_tls, tokens, admin_limits))) => {
            let admin = Arc::new(admin::Admin::new(control.clone(), tokens, admin_limits));
            let about = server::Listener {
                name: "admin",
                metrics: ops.registry.connections("admin"),
            };
            Some(tokio::spawn(server::serve(
                listener,
                about,
                None,
                admin_tls.map(TlsAcceptor::from),
                limits,
                ops_shutdown.clone(),
                std::time::Duration::from_secs(1),
                move |conn: server::ConnInfo, req| {
                    admin::handle(admin.clone(), conn.peer.ip(), req)
                },
            )))
        }
        _ => None,
    };

    let stop = shutdown.clone();
    let ctl = control.clone();
    let done = tokio::spawn(async move {
        stop.cancelled().await;
        let deadline = tokio::time::Instant::now() + grace;
        ops.accepting.store(false, Ordering::Relaxed);
        tracing::info!("shutting down: no new connections, finishing requests in flight");
        if let Some(t) = hooks_task {
            let _ = t.await;
        }
        ctl.shutdown(deadline, ABORT_WAIT).await;
        ops_shutdown.cancel();
        if let Some(t) = ops_task {
            let _ = t.await;
        }
        if let Some(t) = admin_task {
            let _ = t.await;
        }
        tracing::info!("stopped");
    });

    Ok(Gateway {
        hooks_addr,
        hooks_listen: listen,
        metrics_addr,
        admin_addr,
        control,
        shutdown,
        done,
    })
}
