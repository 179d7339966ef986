//! The running configuration: sinks with their workers, sources from the config file and from
//! the admin API, and the routing table the hooks listener reads.
//!
//! Every change (an admin API call, a reload) takes the one lock, checks everything before it
//! touches anything, writes the API's store if it must, and ends by swapping the routing table
//! whole: a request sees the old table or the new one, never a mix, and open connections are not
//! touched. Sinks whose settings did not change keep their queue, worker and connection.
//!
//! A reload runs in three steps: `check` (pure: refuses a file that conflicts with what
//! runs), `Plan::new` (pure: which sinks are added, changed, removed or kept, which sources,
//! and the report), then `apply`. A source's entry is made in one place
//! (`SourceEntry::build`), and its routing-table `Source` in another (`SourceEntry::route`).
//!
//! The sources made through the admin API are kept in `store`, so they outlive a restart; in a
//! cluster (`[cluster]`) they are kept in a compacted Kafka topic instead (`cluster`), which
//! every node follows, so a change made on one node reaches all of them.

#[cfg(feature = "kafka")]
pub mod cluster;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::store::{ApiRecord, Store};
use crate::config::role::Role;
use crate::config::{
    self, ConfigError, ConfigFile, ConfigIssue, Limits, Settings, SinkSettings, SourceConfig,
    SourceSettings,
};
use crate::dedup::Dedup;
use crate::metrics::{Registry, SourceMetrics};
use crate::normalize::Timestamp;
use crate::routes::{Accepted, Routes, Source, SourceStats, Target};
use crate::sinks::dead_letter::DeadLetters;
use crate::sinks::{Encoder, Encoding, Sink, SinkHandle, TestOutcome};
use crate::vendors::{Context, Vendor};

/// How long a reload waits for the worker of a changed sink to stop before cancelling it.
const WORKER_STOP_WAIT: Duration = Duration::from_secs(5);

/// Where a source was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Config,
    Api,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Config => "config",
            Origin::Api => "api",
        }
    }
}

/// A sink that runs: its settings, its shared handle, and its worker.
struct RunningSink {
    config_type: &'static str,
    settings: Arc<SinkSettings>,
    handle: Arc<SinkHandle>,
    /// The sink's dead letters, for the admin API.
    dead_letters: Arc<DeadLetters>,
    worker: JoinHandle<()>,
    /// Stops this worker alone (a reload that changes the sink); a child of the shutdown
    /// abort.
    stop: CancellationToken,
}

/// A source as the control plane keeps it; `Source`s for the routing table are built from it.
pub struct SourceEntry {
    pub origin: Origin,
    pub config: SourceConfig,
    pub settings: Arc<SourceSettings>,
    pub sink_ids: Vec<String>,
    metrics: Arc<SourceMetrics>,
    dedup: Option<Arc<Dedup<Accepted>>>,
    pub stats: Arc<SourceStats>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// API sources: the stored definition (with its secrets) and grace secrets.
    pub api: Option<ApiRecord>,
}

/// Where the admin API's sources are kept: this node's file, or the cluster's topic.
pub enum Persist {
    Local(Store),
    #[cfg(feature = "kafka")]
    Shared(cluster::Cluster),
}

/// A change of API sources to make durable: the records to write and the ids to delete.
pub struct ApiChange<'a> {
    pub upsert: Vec<&'a ApiRecord>,
    pub delete: Vec<&'a str>,
}

impl SourceEntry {
    /// The one place a source's entry is made. `prev`, the entry it replaces, hands over its
    /// counters, metric handles, creation time, and de-duplication memory while that memory's
    /// settings stay the same; `updated_at` moves to `now` unless the definition is the same.
    fn build(
        origin: Origin,
        config: SourceConfig,
        settings: SourceSettings,
        prev: Option<&SourceEntry>,
        registry: &Registry,
        now: Timestamp,
    ) -> SourceEntry {
        let dedup = match (prev.and_then(|p| p.dedup.as_ref()), settings.dedup) {
            (Some(d), Some(new)) if d.settings() == new => Some(d.clone()),
            (_, new) => new.map(|d| Arc::new(Dedup::new(d))),
        };
        SourceEntry {
            origin,
            sink_ids: in_given_order(&config.sinks),
            metrics: match prev {
                Some(p) => p.metrics.clone(),
                None => Arc::new(registry.source(&settings.id)),
            },
            stats: prev.map(|p| p.stats.clone()).unwrap_or_default(),
            created_at: prev.map_or(now, |p| p.created_at),
            updated_at: match prev {
                Some(p) if p.config == config => p.updated_at,
                _ => now,
            },
            dedup,
            config,
            settings: Arc::new(settings),
            api: None,
        }
    }

    /// The source as the request path sees it, routed to those of its sinks that run.
    fn route(&self, sinks: &BTreeMap<String, RunningSink>) -> Source {
        let targets = self
            .sink_ids
            .iter()
            .filter_map(|id| sinks.get(id))
            .map(|r| Target {
                sink: r.handle.clone(),
                filter: r.settings.filter.clone(),
                encoding: Encoding::for_target(&r.settings, &self.settings, &r.handle.metrics),
            })
            .collect();
        Source {
            settings: self.settings.clone(),
            metrics: self.metrics.clone(),
            targets,
            dedup: self.dedup.clone(),
            stats: self.stats.clone(),
        }
    }
}

/// What the control plane owns; behind one lock.
pub struct State {
    file: ConfigFile,
    config_path: Option<PathBuf>,
    client_ca: bool,
    limits: Limits,
    sinks: BTreeMap<String, RunningSink>,
    /// Sinks a reload removed that are still delivering what they had queued.
    retired: Vec<(Arc<SinkHandle>, JoinHandle<()>)>,
    pub sources: BTreeMap<String, SourceEntry>,
    /// Shutdown has taken the sinks; no change may start new ones.
    closed: bool,
    /// In a cluster: per API source id, where in the sources topic the state this node has
    /// (the source or its deletion) came from, so an older record read later never undoes a
    /// newer change this node already applied.
    #[cfg(feature = "kafka")]
    applied: HashMap<String, cluster::Position>,
}

/// Why a change was refused; each maps to one HTTP status in the admin API.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("{message}")]
    BadRequest {
        message: String,
        issues: Vec<ConfigIssue>,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The config file is invalid; the running configuration stays.
    #[error("the config file is invalid; the running configuration stays")]
    InvalidConfig(Vec<ConfigIssue>),
    #[error("{0}")]
    Internal(String),
    #[error("the gateway is shutting down")]
    Unavailable,
    /// The cluster's sources topic did not take the change; nothing changed on this node.
    #[error("{0}")]
    SharedStore(String),
}

impl ChangeError {
    pub fn bad(message: impl Into<String>, issues: Vec<ConfigIssue>) -> ChangeError {
        ChangeError::BadRequest {
            message: message.into(),
            issues,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlStartError {
    #[error("cannot open the queue of sink {sink}: {source}")]
    Queue {
        sink: String,
        source: crate::queue::OpenError,
    },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("start-up task failed: {0}")]
    Task(String),
    #[error("admin API source store {path}: {message}")]
    StoredSource { path: PathBuf, message: String },
    #[cfg(feature = "kafka")]
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error("could not read the cluster's sources topic {topic} to its end within {timeout:?} (brokers {brokers}); not serving without the cluster's sources")]
    CatchUp {
        topic: String,
        brokers: String,
        timeout: Duration,
    },
    #[error("[cluster] is set but this siemgate was built without Kafka support")]
    NoKafka,
}

/// What a reload changed.
#[derive(Debug, Default, serde::Serialize)]
pub struct ReloadReport {
    pub sources: Changes,
    pub sinks: Changes,
    /// Settings that changed in the file and only take effect at the next start.
    pub restart_needed: Vec<String>,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

/// The control plane of a running gateway.
pub struct Control {
    routes: Arc<ArcSwap<Routes>>,
    registry: Arc<Registry>,
    /// Fired when the shutdown grace period is over: every worker stops.
    abort: CancellationToken,
    persist: Persist,
    /// In a cluster: the follower's updates, until [`Control::follow`] takes them.
    #[cfg(feature = "kafka")]
    updates: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<cluster::Update>>>,
    state: tokio::sync::Mutex<State>,
    /// What this process runs (`serve --role`); a reload keeps it.
    role: Role,
}

impl RunningSink {
    /// Starts the sink's worker, stoppable alone or with every other by `abort`.
    fn spawn(settings: SinkSettings, sink: Sink, abort: &CancellationToken) -> RunningSink {
        let stop = abort.child_token();
        let handle = sink.handle.clone();
        let dead_letters = sink.dead_letters.clone();
        // Counting what waits in the file reads it: off the runtime.
        let counting = dead_letters.clone();
        tokio::task::spawn_blocking(move || counting.recount());
        let worker = tokio::spawn(sink.run(stop.clone()));
        RunningSink {
            config_type: sink_type(&settings),
            settings: Arc::new(settings),
            handle,
            dead_letters,
            worker,
            stop,
        }
    }
}

fn sink_type(settings: &SinkSettings) -> &'static str {
    match settings.kind {
        config::SinkKind::File(_) => "file",
        config::SinkKind::SplunkHec(_) => "splunk_hec",
        config::SinkKind::Syslog(_) => "syslog",
        config::SinkKind::Http(_) => "http",
        config::SinkKind::Elasticsearch(_) => "elasticsearch",
        config::SinkKind::Sentinel(_) => "sentinel",
        #[cfg(feature = "kafka")]
        config::SinkKind::Kafka(_) => "kafka",
    }
}

impl Control {
    /// Builds every sink (opening disk queues), starts their workers, and loads the config's
    /// and the store's sources. `settings.sources` go first; an API source may not reuse a
    /// config source's id.
    pub async fn start(
        mut settings: Settings,
        registry: Arc<Registry>,
    ) -> Result<(Control, Arc<ArcSwap<Routes>>), ControlStartError> {
        let abort = CancellationToken::new();
        let store = Store::new(&settings.server.data_dir);
        let shared = settings.cluster.take();
        // Opening disk queues reads their logs, and the store is a file: off the runtime. In a
        // cluster the topic holds the API sources and the file is not read.
        let to_build = std::mem::take(&mut settings.sinks);
        let role = settings.role;
        let (reg, st) = (registry.clone(), store.clone());
        let local = shared.is_none();
        let (built, records) = tokio::task::spawn_blocking(move || {
            let built = build_sinks(to_build, &reg, role)
                .map_err(|(sink, source)| ControlStartError::Queue { sink, source })?;
            let records = if local {
                st.load()?
            } else {
                if st.path().exists() {
                    tracing::warn!(path = %st.path().display(), "[cluster] is set: the API sources of this file are not read (the cluster's sources topic holds them); create them again through the admin API to share them");
                }
                Vec::new()
            };
            Ok::<_, ControlStartError>((built, records))
        })
        .await
        .map_err(|e| ControlStartError::Task(e.to_string()))??;

        let mut sinks = BTreeMap::new();
        for (s, sink) in built {
            sinks.insert(s.id.clone(), RunningSink::spawn(s, sink, &abort));
        }
        let client_ca = client_ca(&settings.file);
        let now = Timestamp::now();
        let mut sources = BTreeMap::new();
        for (cfg, s) in settings.file.sources.iter().zip(settings.sources) {
            if matches!(s.verifier, crate::auth::Verifier::None) {
                tracing::warn!(source = %s.id, "source accepts unauthenticated requests (allow_unauthenticated = true)");
            }
            let entry = SourceEntry::build(Origin::Config, cfg.clone(), s, None, &registry, now);
            sources.insert(entry.settings.id.clone(), entry);
        }
        let mut state = State {
            file: settings.file,
            config_path: settings.path,
            client_ca,
            limits: settings.server.limits,
            sinks,
            retired: Vec::new(),
            sources,
            closed: false,
            #[cfg(feature = "kafka")]
            applied: HashMap::new(),
        };
        for record in records {
            let id = record.id().to_owned();
            if state.sources.contains_key(&id) {
                return Err(ControlStartError::StoredSource {
                    path: store.path().to_owned(),
                    message: format!(
                        "source {id:?} is also defined in the config file; remove one of them"
                    ),
                });
            }
            let entry = state.api_entry(record, None, &registry).map_err(|issues| {
                ControlStartError::StoredSource {
                    path: store.path().to_owned(),
                    message: format!(
                        "source {id:?} no longer validates: {}",
                        issues
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                }
            })?;
            state.sources.insert(id, entry);
        }
        #[cfg(feature = "kafka")]
        let (persist, updates) = match shared {
            None => (Persist::Local(store), None),
            Some(settings) => {
                let (cluster, updates) = catch_up(&settings, &mut state, &registry).await?;
                (Persist::Shared(cluster), Some(updates))
            }
        };
        #[cfg(not(feature = "kafka"))]
        let persist = match shared {
            None => Persist::Local(store),
            Some(_) => return Err(ControlStartError::NoKafka),
        };
        let routes = Arc::new(ArcSwap::from_pointee(state.routes()));
        Ok((
            Control {
                routes: routes.clone(),
                registry,
                abort,
                persist,
                #[cfg(feature = "kafka")]
                updates: std::sync::Mutex::new(updates),
                state: tokio::sync::Mutex::new(state),
                role,
            },
            routes,
        ))
    }

    /// In a cluster: applies the sources topic's changes as the follower reads them, for as
    /// long as the gateway runs. Call once, after [`Control::start`]; nothing to do otherwise.
    pub fn follow(self: &Arc<Self>) {
        #[cfg(feature = "kafka")]
        {
            let taken = self
                .updates
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            let Some(mut updates) = taken else {
                return;
            };
            let control = self.clone();
            tokio::spawn(async move {
                while let Some(first) = updates.recv().await {
                    let mut st = control.state.lock().await;
                    if st.closed {
                        break;
                    }
                    // What else is already read goes into the same routing-table swap.
                    let mut changed = st.apply_shared(first, &control.registry);
                    while let Ok(more) = updates.try_recv() {
                        changed |= st.apply_shared(more, &control.registry);
                    }
                    if changed {
                        control.publish(&st);
                    }
                }
            });
        }
    }

    /// Makes an API change durable before it is applied: the local store file is written
    /// whole, or (in a cluster) the change's records are acknowledged by the brokers, and where
    /// they landed is remembered (see `State::applied`).
    pub async fn persist(&self, st: &mut State, change: ApiChange<'_>) -> Result<(), ChangeError> {
        match &self.persist {
            Persist::Local(store) => {
                let without: Vec<&str> = change
                    .upsert
                    .iter()
                    .map(|r| r.id())
                    .chain(change.delete.iter().copied())
                    .collect();
                let records = st.api_records(&without, change.upsert.iter().map(|r| (*r).clone()));
                let store = store.clone();
                match tokio::task::spawn_blocking(move || store.save(records)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "admin API change not applied");
                        Err(ChangeError::Internal(format!(
                            "{e}; the change was not applied"
                        )))
                    }
                    Err(e) => Err(ChangeError::Internal(format!(
                        "store task failed: {e}; the change was not applied"
                    ))),
                }
            }
            #[cfg(feature = "kafka")]
            Persist::Shared(cluster) => {
                let items: Vec<(&str, Option<&ApiRecord>)> = change
                    .upsert
                    .iter()
                    .map(|r| (r.id(), Some(*r)))
                    .chain(change.delete.iter().map(|id| (*id, None)))
                    .collect();
                match cluster.write(&items).await {
                    Ok(positions) => {
                        for ((id, _), at) in items.iter().zip(positions) {
                            st.applied.insert((*id).to_owned(), at);
                        }
                        Ok(())
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "admin API change not applied");
                        Err(ChangeError::SharedStore(format!(
                            "{e}; the change was not applied on this node (should the brokers have taken part of it after all, every node applies that part when it reads it)"
                        )))
                    }
                }
            }
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The lock reads take, briefly.
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, State> {
        self.state.lock().await
    }

    /// The lock every change takes; refused once shutdown has begun.
    pub async fn lock_for_change(&self) -> Result<tokio::sync::MutexGuard<'_, State>, ChangeError> {
        let st = self.state.lock().await;
        if st.closed {
            return Err(ChangeError::Unavailable);
        }
        Ok(st)
    }

    /// Publishes the state's sources and sinks as the new routing table.
    pub fn publish(&self, state: &State) {
        self.routes.store(Arc::new(state.routes()));
        self.forget_unused_series(state);
    }

    /// Forgets the metric series of sources that are not in `state`: deleted, removed at a
    /// reload, or staged by a change that failed. Without this, every source ever created
    /// through the admin API would stay in `/metrics` (and in memory) for good.
    pub fn forget_unused_series(&self, state: &State) {
        self.registry
            .retain_sources(|id| state.sources.contains_key(id));
    }

    /// Re-reads the config file and applies it if it is valid; otherwise nothing changes.
    pub async fn reload(&self) -> Result<ReloadReport, ChangeError> {
        let mut st = self.lock_for_change().await?;
        let Some(path) = st.config_path.clone() else {
            return Err(ChangeError::Conflict(
                "this gateway was not started from a config file; there is nothing to reload"
                    .to_owned(),
            ));
        };
        let loaded = tokio::task::spawn_blocking(move || config::load(&path))
            .await
            .map_err(|e| ChangeError::Internal(format!("config load task failed: {e}")))?;
        let settings = match loaded {
            Ok(s) => s,
            Err(ConfigError::Invalid(issues)) => return Err(ChangeError::InvalidConfig(issues)),
            Err(e) => return Err(ChangeError::InvalidConfig(vec![e.into_issue()])),
        };
        let report = self.apply_config(&mut st, settings).await?;
        self.publish(&st);
        Ok(report)
    }

    /// Checks a new config against what runs, plans what it changes, then applies the plan.
    /// Nothing changes when the check fails, nor when a new sink's disk queue cannot open.
    async fn apply_config(
        &self,
        st: &mut State,
        mut settings: Settings,
    ) -> Result<ReloadReport, ChangeError> {
        st.retired.retain(|(_, w)| !w.is_finished());
        // The role is the process's, not the file's: a new sink must fit it too.
        settings.role = self.role;
        let issues = config::role::check(&settings);
        if !issues.is_empty() {
            return Err(ChangeError::InvalidConfig(issues));
        }
        check(st, &settings.file)?;
        let plan = Plan::new(st, settings);
        self.apply(st, plan).await
    }

    /// Carries out a checked plan: new sinks first (opening a disk queue can fail, and then
    /// nothing has changed yet), then removed and changed sinks, then the sources.
    async fn apply(&self, st: &mut State, plan: Plan) -> Result<ReloadReport, ChangeError> {
        let Plan {
            add,
            change,
            remove,
            sources,
            report,
            limits,
            client_ca,
            file,
        } = plan;
        let registry = self.registry.clone();
        let role = self.role;
        let fresh = tokio::task::spawn_blocking(move || build_sinks(add, &registry, role))
            .await
            .map_err(|e| ChangeError::Internal(format!("sink start-up task failed: {e}")))?
            .map_err(|(sink, e)| {
                ChangeError::InvalidConfig(vec![ConfigIssue {
                    path: format!("sinks (sink {sink:?})"),
                    message: e.to_string(),
                }])
            })?;

        // Removed sinks stop taking events and deliver what they hold, then close.
        for id in remove {
            if let Some(r) = st.sinks.remove(&id) {
                r.handle.queue.close();
                let handle = r.handle.clone();
                let worker = r.worker;
                let registry = self.registry.clone();
                let done = tokio::spawn(async move {
                    let _ = worker.await;
                    let h = handle.clone();
                    let _ = tokio::task::spawn_blocking(move || h.queue.close_disk()).await;
                    // Its series go once it has nothing left to report; the id cannot be added
                    // back before this task ends.
                    registry.remove_sink(&handle.id);
                    tracing::info!(sink = %handle.id, "removed sink finished delivering its queue");
                });
                st.retired.push((r.handle, done));
            }
        }
        // Changed sinks: the worker stops, and a new one takes the same queue to the new
        // destination. What was in flight is sent again (at least once).
        for s in change {
            let Some(old) = st.sinks.remove(&s.id) else {
                continue;
            };
            old.stop.cancel();
            let mut worker = old.worker;
            if tokio::time::timeout(WORKER_STOP_WAIT, &mut worker)
                .await
                .is_err()
            {
                worker.abort();
                let _ = worker.await;
            }
            let mut sink = Sink::with_handle(&s, &self.registry, old.handle);
            // The same file keeps the same dead letters, so a replay running across the
            // reload and a new one never act on one file side by side.
            if old.dead_letters.path() == sink.dead_letters.path() {
                sink.dead_letters = old.dead_letters;
            }
            st.sinks
                .insert(s.id.clone(), RunningSink::spawn(s, sink, &self.abort));
        }
        for (s, sink) in fresh {
            st.sinks
                .insert(s.id.clone(), RunningSink::spawn(s, sink, &self.abort));
        }

        // Config sources: rebuilt from the file, keeping counters and de-duplication memory;
        // API sources stay as they are.
        let now = Timestamp::now();
        let (api, old): (BTreeMap<_, _>, BTreeMap<_, _>) = std::mem::take(&mut st.sources)
            .into_iter()
            .partition(|(_, e)| e.origin == Origin::Api);
        let mut entries = api;
        for (cfg, s) in sources {
            let prev = old.get(&s.id);
            let entry = SourceEntry::build(Origin::Config, cfg, s, prev, &self.registry, now);
            entries.insert(entry.settings.id.clone(), entry);
        }
        st.sources = entries;
        st.limits = limits;
        st.client_ca = client_ca;
        st.file = file;
        Ok(report)
    }

    /// Stops every sink: queues close, workers deliver until `deadline`, then they are
    /// aborted; disk queues record their last deliveries and keep the rest.
    pub async fn shutdown(&self, deadline: tokio::time::Instant, abort_wait: Duration) {
        // The lock is held only to take the sinks: admin requests during the drain get their
        // answer (503 for changes) at once.
        #[cfg(feature = "kafka")]
        if let Persist::Shared(cluster) = &self.persist {
            cluster.stop();
        }
        let (sinks, retired) = {
            let mut st = self.state.lock().await;
            st.closed = true;
            (
                std::mem::take(&mut st.sinks),
                std::mem::take(&mut st.retired),
            )
        };
        let mut handles: Vec<Arc<SinkHandle>> = Vec::new();
        let mut workers = Vec::new();
        for r in sinks.into_values() {
            r.handle.queue.close();
            handles.push(r.handle);
            workers.push(r.worker);
        }
        for (h, w) in retired {
            handles.push(h);
            workers.push(w);
        }
        tracing::info!("draining sink queues");
        let drain = async {
            for w in workers {
                let _ = w.await;
            }
        };
        tokio::pin!(drain);
        if tokio::time::timeout_at(deadline, &mut drain).await.is_err() {
            self.abort.cancel();
            // Workers stop at their next await point once aborted; a write stuck in the
            // kernel cannot be interrupted, so this wait is bounded too.
            if tokio::time::timeout(abort_wait, &mut drain).await.is_err() {
                tracing::error!("sink workers did not stop after the shutdown deadline");
            }
        }
        for h in &handles {
            let left = h.queue.depth().events;
            if left > 0 && h.queue.is_durable() {
                tracing::warn!(sink = %h.id, events = left, queue = h.queue.kind(), "undelivered events stay in the queue for the next start");
            } else if left > 0 {
                tracing::error!(sink = %h.id, events = left, "shutdown grace period ended before these events were delivered");
            }
            let handle = h.clone();
            let _ = tokio::task::spawn_blocking(move || handle.queue.close_disk()).await;
        }
    }

    /// Sends one test event straight to a sink's destination; `None` when no such sink runs.
    pub async fn test_sink(&self, id: &str) -> Option<TestOutcome> {
        let (settings, handle) = {
            let st = self.state.lock().await;
            let r = st.sinks.get(id)?;
            (r.settings.clone(), r.handle.clone())
        };
        let source = SourceSettings {
            id: "siemgate-test".to_owned(),
            name: None,
            enabled: true,
            suppressed: false,
            vendor: Vendor::Generic,
            verifier: crate::auth::Verifier::None,
            sinks: Vec::new(),
            allowed_ips: Vec::new(),
            require_client_cert: false,
            client_cert_names: Vec::new(),
            client_cert_sha256: Vec::new(),
            filter: config::Filter::default(),
            mapping: None,
            redact: Vec::new(),
            hec: config::HecOverrides::default(),
            dedup: None,
            grace: None,
        };
        let encoding = Encoding::for_target(&settings, &source, &handle.metrics);
        match encode_test_payload(&source, &[encoding]) {
            Ok((_, mut per_sink)) => {
                let events = per_sink.pop().unwrap_or_default();
                Some(crate::sinks::test_send(&settings, &events).await)
            }
            Err(e) => Some(TestOutcome {
                ok: false,
                http_status: None,
                error: Some(e),
            }),
        }
    }

    /// Runs the source's vendor test payload through its decoder and sends the events straight
    /// to each of the source's sinks (filters and queues are bypassed: this checks the path,
    /// not the routing). `None` when there is no such source.
    pub async fn test_source(
        &self,
        id: &str,
    ) -> Option<Result<(usize, Vec<(String, TestOutcome)>), String>> {
        let (settings, targets) = {
            let st = self.state.lock().await;
            let e = st.sources.get(id)?;
            let targets: Vec<(Arc<SinkSettings>, Arc<SinkHandle>)> = e
                .sink_ids
                .iter()
                .filter_map(|sid| st.sinks.get(sid))
                .map(|r| (r.settings.clone(), r.handle.clone()))
                .collect();
            (e.settings.clone(), targets)
        };
        let encodings: Vec<Encoding> = targets
            .iter()
            .map(|(s, h)| Encoding::for_target(s, &settings, &h.metrics))
            .collect();
        let (events, per_sink) = match encode_test_payload(&settings, &encodings) {
            Ok(x) => x,
            Err(e) => return Some(Err(e)),
        };
        let mut set = tokio::task::JoinSet::new();
        for (i, ((s, _), events)) in targets.into_iter().zip(per_sink).enumerate() {
            set.spawn(async move { (i, s.id.clone(), crate::sinks::test_send(&s, &events).await) });
        }
        let mut results = Vec::new();
        while let Some(r) = set.join_next().await {
            match r {
                Ok(x) => results.push(x),
                Err(e) => return Some(Err(format!("a test send failed: {e}"))),
            }
        }
        results.sort_by_key(|(i, _, _)| *i);
        Some(Ok((
            events,
            results.into_iter().map(|(_, id, o)| (id, o)).collect(),
        )))
    }
}

/// Decodes the test payload of `source`'s vendor (with its mapping) and encodes every event
/// with each of `encodings`: the number of events, and the wire bytes per encoding.
fn encode_test_payload(
    source: &SourceSettings,
    encodings: &[Encoding],
) -> Result<(usize, Vec<Vec<Bytes>>), String> {
    let mut per_sink: Vec<Vec<Bytes>> = vec![Vec::new(); encodings.len()];
    let ctx = Context {
        source: &source.id,
        received_at: Timestamp::now(),
    };
    let mut encode_error = None;
    let events = source
        .vendor
        .decode_mapped(
            test_payload(source.vendor),
            &ctx,
            source.mapping.as_ref(),
            &source.redact,
            |event| {
                for (enc, out) in encodings.iter().zip(per_sink.iter_mut()) {
                    let mut buf = BytesMut::new();
                    match enc.encode(&event, &mut buf) {
                        Ok(()) => out.push(buf.freeze()),
                        Err(e) => encode_error = Some(e.to_string()),
                    }
                }
            },
        )
        .map_err(|e| format!("the test payload did not decode: {e}"))?;
    match encode_error {
        Some(e) => Err(format!("a test event could not be encoded: {e}")),
        None => Ok((events, per_sink)),
    }
}

/// Whether the hooks listener asks for client certificates: decided once per config file, and
/// what API sources are validated against.
fn client_ca(file: &ConfigFile) -> bool {
    file.server
        .tls
        .as_ref()
        .is_some_and(|t| t.client_ca.is_some())
}

/// Checks a new config file against what runs, touching nothing: config sources may not take
/// an API source's id, sinks that API sources use may not go, a sink keeps its type, and a
/// sink still delivering after an earlier removal cannot come back yet.
fn check(st: &State, file: &ConfigFile) -> Result<(), ChangeError> {
    let mut issues = Vec::new();
    let issue = |path: String, message: String| ConfigIssue { path, message };
    for (i, s) in file.sources.iter().enumerate() {
        if st
            .sources
            .get(&s.id)
            .is_some_and(|e| e.origin == Origin::Api)
        {
            issues.push(issue(
                format!("sources[{i}].id"),
                format!("{:?} is a source made through the admin API; delete it there or use another id", s.id),
            ));
        }
    }
    for e in st.sources.values().filter(|e| e.origin == Origin::Api) {
        for id in &e.sink_ids {
            if !file.sinks.iter().any(|s| s.id() == id) {
                issues.push(issue(
                    "sinks".to_owned(),
                    format!(
                        "sink {id:?} is used by admin API source {:?}; it cannot be removed",
                        e.settings.id
                    ),
                ));
            }
        }
    }
    for (i, s) in file.sinks.iter().enumerate() {
        if let Some(running) = st.sinks.get(s.id()) {
            if running.config_type != s.type_name() {
                issues.push(issue(
                    format!("sinks[{i}].type"),
                    format!(
                        "sink {:?} is a {} sink; changing its type needs a new id (its queued events are in the {} format)",
                        s.id(),
                        running.config_type,
                        running.config_type
                    ),
                ));
            }
        }
        if let Some((h, _)) = st.retired.iter().find(|(h, _)| h.id == s.id()) {
            issues.push(issue(
                format!("sinks[{i}].id"),
                format!(
                    "sink {:?} was removed by an earlier reload and is still delivering its queue ({} events); add it back once that is done",
                    s.id(),
                    h.queue.depth().events
                ),
            ));
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(ChangeError::InvalidConfig(issues))
    }
}

/// What a checked config file changes in the running configuration. Sinks in none of the
/// lists are kept as they run, with their queue, worker and connection.
struct Plan {
    /// Sinks that do not run now: built (disk queues opened) before anything else changes.
    add: Vec<SinkSettings>,
    /// Running sinks whose settings changed: a new worker takes over the same queue.
    change: Vec<SinkSettings>,
    /// Running sinks the file no longer has: they deliver what they hold, then close.
    remove: Vec<String>,
    /// The file's sources, in order; each replaces the config source of its id, if any.
    sources: Vec<(SourceConfig, SourceSettings)>,
    /// What the reload reports: sinks and sources added, changed and removed, and the
    /// settings that take effect only at the next start.
    report: ReloadReport,
    limits: Limits,
    client_ca: bool,
    file: ConfigFile,
}

impl Plan {
    /// Compares the new settings with what runs; changes nothing.
    fn new(st: &State, settings: Settings) -> Plan {
        let file = settings.file;
        let mut report = ReloadReport::default();
        let old_configs: HashMap<&str, &config::SinkConfig> =
            st.file.sinks.iter().map(|s| (s.id(), s)).collect();
        let (mut add, mut change) = (Vec::new(), Vec::new());
        for (i, (cfg, s)) in file.sinks.iter().zip(settings.sinks).enumerate() {
            match old_configs.get(cfg.id()) {
                Some(&old) if old == cfg => {}
                Some(&old) => {
                    if old.queue() != cfg.queue() {
                        report.restart_needed.push(format!(
                            "sinks[{i}].queue (sink {:?} keeps its current queue until the next start)",
                            cfg.id()
                        ));
                    }
                    change.push(s);
                }
                None => add.push(s),
            }
        }
        let remove: Vec<String> = st
            .sinks
            .keys()
            .filter(|id| !file.sinks.iter().any(|s| s.id() == id.as_str()))
            .cloned()
            .collect();
        report.sinks.removed.clone_from(&remove);
        report.sinks.changed = change.iter().map(|s| s.id.clone()).collect();
        report.sinks.added = add.iter().map(|s| s.id.clone()).collect();

        let sources: Vec<(SourceConfig, SourceSettings)> =
            file.sources.iter().cloned().zip(settings.sources).collect();
        for (cfg, s) in &sources {
            match st.sources.get(&s.id) {
                Some(p) if p.origin == Origin::Config => {
                    if p.config != *cfg {
                        report.sources.changed.push(s.id.clone());
                    }
                }
                _ => report.sources.added.push(s.id.clone()),
            }
        }
        report.sources.removed = st
            .sources
            .values()
            .filter(|e| e.origin == Origin::Config)
            .filter(|e| !sources.iter().any(|(_, s)| s.id == e.settings.id))
            .map(|e| e.settings.id.clone())
            .collect();
        report
            .restart_needed
            .extend(restart_needed(&st.file, &file));
        Plan {
            add,
            change,
            remove,
            sources,
            report,
            limits: settings.server.limits,
            client_ca: client_ca(&file),
            file,
        }
    }
}

/// A source's sink ids in the order its definition gives them, each once.
fn in_given_order(ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        if !out.contains(id) {
            out.push(id.clone());
        }
    }
    out
}

/// Builds sinks (opening and recovering disk queues: blocking). On a failure the sinks built
/// so far are closed again and the failing sink's id is returned.
fn build_sinks(
    settings: Vec<SinkSettings>,
    registry: &Arc<Registry>,
    role: Role,
) -> Result<Vec<(SinkSettings, Sink)>, (String, crate::queue::OpenError)> {
    let mut built: Vec<(SinkSettings, Sink)> = Vec::with_capacity(settings.len());
    for s in settings {
        match Sink::build(&s, registry, role) {
            Ok(sink) => built.push((s, sink)),
            Err(e) => {
                for (_, sink) in built {
                    sink.handle.queue.close_disk();
                }
                return Err((s.id, e));
            }
        }
    }
    Ok(built)
}

impl State {
    /// The routing table for the current sources and sinks.
    fn routes(&self) -> Routes {
        let mut sources = HashMap::with_capacity(self.sources.len());
        for e in self.sources.values().filter(|e| e.settings.enabled) {
            sources.insert(e.settings.id.clone(), Arc::new(e.route(&self.sinks)));
        }
        Routes {
            sources,
            limits: self.limits,
            sinks: self.sinks.values().map(|r| r.handle.clone()).collect(),
        }
    }

    pub fn sink_ids(&self) -> Vec<&str> {
        self.sinks.keys().map(String::as_str).collect()
    }

    pub fn client_ca(&self) -> bool {
        self.client_ca
    }

    pub fn sink_type(&self, id: &str) -> Option<&'static str> {
        self.sinks.get(id).map(|r| r.config_type)
    }

    pub fn sink_handle(&self, id: &str) -> Option<&Arc<SinkHandle>> {
        self.sinks.get(id).map(|r| &r.handle)
    }

    pub fn dead_letters(&self, id: &str) -> Option<&Arc<DeadLetters>> {
        self.sinks.get(id).map(|r| &r.dead_letters)
    }

    /// Builds the entry of an API source from its stored record, validated against the sinks
    /// that run now. `prev` (an update) hands over counters and de-duplication memory.
    pub fn api_entry(
        &self,
        record: ApiRecord,
        prev: Option<&SourceEntry>,
        registry: &Registry,
    ) -> Result<SourceEntry, Vec<ConfigIssue>> {
        let config = record.source_config().map_err(|i| vec![i])?;
        let sink_ids = self.sink_ids();
        let mut settings = config::validate_source_config(&config, "", &sink_ids, self.client_ca)?;
        if let Some(grace) = &record.grace {
            let auth = grace.auth_config().map_err(|i| vec![i])?;
            let verifier = config::build_verifier(&auth, settings.vendor)?;
            settings.grace = Some((verifier, grace.until()));
        }
        let created_at = Timestamp(record.created_at);
        let updated_at = Timestamp(record.updated_at);
        Ok(SourceEntry {
            created_at,
            updated_at,
            api: Some(record),
            ..SourceEntry::build(Origin::Api, config, settings, prev, registry, updated_at)
        })
    }

    /// Applies one record of the cluster's sources topic; whether the sources changed. A record
    /// older than what this node already applied for its source is skipped; a record that does
    /// not validate here (a sink this node lacks, an unreadable value) removes the source from
    /// this node rather than keep an older version (whose secret may have been reset) serving.
    #[cfg(feature = "kafka")]
    fn apply_shared(&mut self, update: cluster::Update, registry: &Registry) -> bool {
        let cluster::Update::Record { id, record, at } = update else {
            return false;
        };
        if self
            .applied
            .get(&id)
            .is_some_and(|seen| at.not_after(*seen))
        {
            return false;
        }
        self.applied.insert(id.clone(), at);
        if self
            .sources
            .get(&id)
            .is_some_and(|e| e.origin == Origin::Config)
        {
            tracing::warn!(source = %id, "the cluster's sources topic has a source this node's config file defines; the file's source stays");
            return false;
        }
        let record = match record {
            Ok(Some(r)) => r,
            Ok(None) => return self.sources.remove(&id).is_some(),
            Err(reason) => {
                tracing::error!(source = %id, partition = at.partition, offset = at.offset, %reason, "unreadable record in the cluster's sources topic; the source is not served on this node");
                return self.sources.remove(&id).is_some();
            }
        };
        let prev = self.sources.get(&id);
        if prev.and_then(|e| e.api.as_ref()) == Some(&record) {
            return false;
        }
        match self.api_entry(record, prev, registry) {
            Ok(entry) => {
                self.sources.insert(id, entry);
                true
            }
            Err(issues) => {
                let issues = issues
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                tracing::error!(source = %id, %issues, "a source of the cluster's sources topic does not validate on this node (do all nodes have the same sinks?); it is not served here");
                self.sources.remove(&id).is_some()
            }
        }
    }

    /// The store file's records after a change: every API source's but those of `without`,
    /// then `with`.
    pub fn api_records(
        &self,
        without: &[&str],
        with: impl IntoIterator<Item = ApiRecord>,
    ) -> Vec<ApiRecord> {
        self.sources
            .values()
            .filter(|e| !without.contains(&e.settings.id.as_str()))
            .filter_map(|e| e.api.clone())
            .chain(with)
            .collect()
    }
}

/// Starts following the cluster's sources topic and applies it to `state` up to its end, bounded
/// by `catch_up_timeout`: a node serves only once it has every source of the cluster.
#[cfg(feature = "kafka")]
async fn catch_up(
    settings: &config::cluster::ClusterSettings,
    state: &mut State,
    registry: &Registry,
) -> Result<
    (
        cluster::Cluster,
        tokio::sync::mpsc::Receiver<cluster::Update>,
    ),
    ControlStartError,
> {
    let (cluster, mut updates) = cluster::Cluster::start(settings)?;
    let deadline = tokio::time::Instant::now() + settings.catch_up_timeout;
    loop {
        match tokio::time::timeout_at(deadline, updates.recv()).await {
            Ok(Some(cluster::Update::CaughtUp)) => break,
            Ok(Some(update)) => {
                state.apply_shared(update, registry);
            }
            Ok(None) | Err(_) => {
                cluster.stop();
                return Err(ControlStartError::CatchUp {
                    topic: settings.sources_topic.clone(),
                    brokers: settings.connection.brokers.clone(),
                    timeout: settings.catch_up_timeout,
                });
            }
        }
    }
    let api = state
        .sources
        .values()
        .filter(|e| e.origin == Origin::Api)
        .count();
    tracing::info!(topic = %cluster.topic(), sources = api, "read the cluster's sources topic to its end");
    Ok((cluster, updates))
}

/// Settings that changed between two files and need a restart to take effect.
fn restart_needed(old: &ConfigFile, new: &ConfigFile) -> Vec<String> {
    let mut out = Vec::new();
    let (o, n) = (&old.server, &new.server);
    if o.listen != n.listen {
        out.push("server.listen".to_owned());
    }
    if o.tls != n.tls || o.plaintext != n.plaintext {
        out.push("server.tls".to_owned());
    }
    if o.data_dir != n.data_dir {
        out.push("server.data_dir".to_owned());
    }
    if o.shutdown_grace != n.shutdown_grace {
        out.push("server.shutdown_grace".to_owned());
    }
    if o.threads != n.threads {
        out.push("server.threads".to_owned());
    }
    let (ol, nl) = (&o.limits, &n.limits);
    if ol.max_connections != nl.max_connections {
        out.push("server.limits.max_connections".to_owned());
    }
    if ol.header_read_timeout != nl.header_read_timeout {
        out.push("server.limits.header_read_timeout".to_owned());
    }
    if ol.tls_handshake_timeout != nl.tls_handshake_timeout {
        out.push("server.limits.tls_handshake_timeout".to_owned());
    }
    for (key, changed) in [
        ("idle_timeout", ol.idle_timeout != nl.idle_timeout),
        (
            "max_connection_age",
            ol.max_connection_age != nl.max_connection_age,
        ),
        (
            "h2_keepalive_interval",
            ol.h2_keepalive_interval != nl.h2_keepalive_interval,
        ),
        (
            "h2_keepalive_timeout",
            ol.h2_keepalive_timeout != nl.h2_keepalive_timeout,
        ),
        (
            "max_connections_per_ip",
            ol.max_connections_per_ip != nl.max_connections_per_ip,
        ),
        (
            "max_concurrent_streams",
            ol.max_concurrent_streams != nl.max_concurrent_streams,
        ),
        (
            "max_inflight_body_bytes",
            ol.max_inflight_body_bytes != nl.max_inflight_body_bytes,
        ),
    ] {
        if changed {
            out.push(format!("server.limits.{key}"));
        }
    }
    if old.metrics != new.metrics {
        out.push("metrics".to_owned());
    }
    if old.admin != new.admin {
        out.push("admin".to_owned());
    }
    if old.cluster != new.cluster {
        out.push("cluster".to_owned());
    }
    out
}

/// The test payload of each vendor: the vendor's own test or sample notification.
fn test_payload(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::PrismaCloud => {
            include_str!("../fixtures/vendors/prisma_cloud-webhook-test-p0.json")
        }
        Vendor::Wallarm => {
            include_str!("../fixtures/vendors/wallarm-test-vuln-array-2021-from-js-literal.json")
        }
        Vendor::Coralogix => {
            include_str!("../fixtures/vendors/coralogix-alert-trigger-keep-mock.json")
        }
        Vendor::Immuta => {
            r#"[{"id":"siemgate-test","type":"webhook.test","message":"siemgate test notification","timestamp":"2026-01-01T00:00:00Z"}]"#
        }
        Vendor::Generic => {
            r#"{"id":"siemgate-test","title":"siemgate test event","severity":"info","message":"A test event sent from the siemgate admin API."}"#
        }
    }
}
