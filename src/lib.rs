//! siemgate: a webhook receiver and SIEM forwarding gateway.
//!
//! Vendors POST alerts to `/hooks/{source}`; siemgate verifies the sender, decodes the vendor's
//! payload without copying it, normalizes every alert to one [`normalize::Event`] schema, and
//! queues each event, already encoded for its destination, in every sink the source routes to.
//! The sender gets its 2xx only once the events are queued. One worker per sink delivers.
//!
//! # Layout
//!
//! * `config`: the TOML file's types, secret references, and `validate()` into runtime settings.
//! * `secret`: the `Secret` type that never prints.
//! * `server`: the accept loop (`mod`), TLS (`tls`), the hooks handler (`ingest`), the one match
//!   that turns refusals into status codes (`reject`), and the metrics/health listener (`ops`).
//! * `auth`: per-source sender verification (token, basic, HMAC, Standard Webhooks).
//! * `vendors`: payload decoders (`generic`, ...) and shared JSON helpers.
//! * `normalize`: the `Event` schema, severities, timestamps.
//! * `dispatch`: decode -> filter -> encode per sink -> enqueue all or nothing.
//! * `queue`: bounded per-sink queues of encoded events.
//! * `sinks`: encoders, the worker loop, retry classification, client TLS and HTTP, and each
//!   sink (`file`, `hec` for Splunk, `syslog` with LEEF/CEF/JSON bodies, `http`).
//! * `metrics`: metric names and the handles registered once per source and sink.
//! * `shutdown`: the signal future the binary waits on.

#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod dispatch;
pub mod metrics;
pub mod normalize;
pub mod queue;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod sinks;
pub mod vendors;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::dispatch::Source;
use crate::server::ingest::Ingest;
use crate::server::ops::Ops;
use crate::sinks::Sink;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the disk queue of sink {sink}: {source}")]
    Queue {
        sink: String,
        source: queue::log::LogError,
    },
    #[error("cannot listen on {addr} ({listener}): {source}")]
    Bind {
        listener: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// How long shutdown waits for aborted sink workers after the grace period.
const ABORT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A running gateway. Dropping it does not stop it; call [`Gateway::shutdown`] and then
/// [`Gateway::wait`].
pub struct Gateway {
    hooks_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    done: JoinHandle<()>,
}

impl Gateway {
    /// Where the hooks listener is bound (useful when the config said port 0).
    pub fn hooks_addr(&self) -> SocketAddr {
        self.hooks_addr
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
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
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            listener,
            addr,
            source,
        })
}

/// Binds the listeners and starts the sink workers; returns once the gateway accepts requests.
pub async fn start(settings: Settings) -> Result<Gateway, StartError> {
    let registry = Arc::new(metrics::Registry::new());
    let mut sinks: Vec<Sink> = Vec::with_capacity(settings.sinks.len());
    for s in &settings.sinks {
        let sink = Sink::build(s, &registry).map_err(|source| StartError::Queue {
            sink: s.id.clone(),
            source,
        })?;
        sinks.push(sink);
    }
    let handles: Vec<_> = sinks.iter().map(|s| s.handle.clone()).collect();

    let mut sources = HashMap::with_capacity(settings.sources.len());
    for s in settings.sources {
        if matches!(s.verifier, auth::Verifier::None) {
            tracing::warn!(source = %s.id, "source accepts unauthenticated requests (allow_unauthenticated = true)");
        }
        let targets = s
            .sinks
            .iter()
            .map(|&i| dispatch::Target {
                sink: handles[i].clone(),
                filter: settings.sinks[i].filter.clone(),
                encoding: sinks::Encoding::for_target(&settings.sinks[i], &s, &handles[i].metrics),
            })
            .collect();
        let metrics = registry.source(&s.id);
        let dedup = s
            .dedup
            .map(|(window, max)| server::dedup::Dedup::new(window, max));
        sources.insert(
            s.id.clone(),
            Source {
                settings: s,
                metrics,
                targets,
                dedup,
            },
        );
    }

    let hooks = bind("hooks", settings.server.listen).await?;
    let hooks_addr = hooks.local_addr().map_err(|source| StartError::Bind {
        listener: "hooks",
        addr: settings.server.listen,
        source,
    })?;
    let ops_listener = match settings.metrics {
        Some(addr) => Some(bind("metrics", addr).await?),
        None => None,
    };
    let metrics_addr = ops_listener.as_ref().and_then(|l| l.local_addr().ok());

    let shutdown = CancellationToken::new();
    let abort = CancellationToken::new();
    let limits = settings.server.limits;
    let grace = settings.server.shutdown_grace;

    let workers: Vec<JoinHandle<()>> = sinks
        .into_iter()
        .map(|sink| tokio::spawn(sink.run(abort.clone())))
        .collect();

    let ingest = Arc::new(Ingest {
        sources,
        limits,
        unrouted: registry.unrouted(),
    });
    let tls = settings.server.tls.map(TlsAcceptor::from);
    let hooks_task = tokio::spawn(server::serve(
        hooks,
        tls,
        limits,
        shutdown.clone(),
        grace,
        move |conn, req| server::ingest::handle(ingest.clone(), conn, req),
    ));

    let ops = Arc::new(Ops {
        registry,
        sinks: handles.clone(),
        accepting: true.into(),
    });
    let ops_shutdown = CancellationToken::new();
    let ops_task = ops_listener.map(|listener| {
        let ops = ops.clone();
        tokio::spawn(server::serve(
            listener,
            None,
            limits,
            ops_shutdown.clone(),
            std::time::Duration::from_secs(1),
            move |_, req| server::ops::handle(ops.clone(), req),
        ))
    });

    let stop = shutdown.clone();
    let done = tokio::spawn(async move {
        stop.cancelled().await;
        let deadline = tokio::time::Instant::now() + grace;
        ops.accepting.store(false, Ordering::Relaxed);
        tracing::info!("shutting down: no new connections, finishing requests in flight");
        let _ = hooks_task.await;
        for h in &handles {
            h.queue.close();
        }
        tracing::info!("draining sink queues");
        let drain = async {
            for w in workers {
                let _ = w.await;
            }
        };
        tokio::pin!(drain);
        if tokio::time::timeout_at(deadline, &mut drain).await.is_err() {
            abort.cancel();
            // Workers stop at their next await point once aborted; a write stuck in the
            // kernel cannot be interrupted, so this wait is bounded too.
            if tokio::time::timeout(ABORT_WAIT, &mut drain).await.is_err() {
                tracing::error!("sink workers did not stop after the shutdown deadline");
            }
        }
        for h in &handles {
            let left = h.queue.depth().events;
            if left > 0 && h.queue.is_disk() {
                tracing::warn!(sink = %h.id, events = left, "undelivered events stay in the disk queue for the next start");
            } else if left > 0 {
                tracing::error!(sink = %h.id, events = left, "shutdown grace period ended before these events were delivered");
            }
            // A disk queue records the last deliveries and keeps the rest for the next start.
            let handle = h.clone();
            let _ = tokio::task::spawn_blocking(move || handle.queue.close_disk()).await;
        }
        ops_shutdown.cancel();
        if let Some(t) = ops_task {
            let _ = t.await;
        }
        tracing::info!("stopped");
    });

    Ok(Gateway {
        hooks_addr,
        metrics_addr,
        shutdown,
        done,
    })
}
