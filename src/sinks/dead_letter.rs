//! Dead letters: events a destination refused for good (HEC "invalid data format", an HTTP
//! receiver's 4xx), kept in the sink's `dead_letter_path` as NDJSON so nothing accepted is
//! dropped without a trace, and so an operator can list them, replay them into the sink's
//! queue once the destination is fixed, or purge them (the admin API). Without a path the
//! event's first bytes go to the log instead. Either way `siemgate_dead_letters_total` counts it.
//!
//! # The file
//!
//! One line per event, appended:
//!
//! ```text
//! {"state":"waiting" ,"time":"...","sink":"...","reason":"...","event_id":"...","vendor":"...","title":"...","event":"<wire bytes>"}
//! ```
//!
//! `event` is what the sink would have sent (a HEC envelope, a syslog frame, ...) as text, and
//! what a replay puts back into the queue; `event_id`, `vendor` and `title` are read back from
//! it when it is written (null where its format does not carry them).
//!
//! An entry is named by the byte offset of its line, which never moves: the file is only
//! appended to, and the one thing ever rewritten is the `state` value, in place. It always
//! takes exactly [`STATE_WIDTH`] bytes right after `{"state":` (`"waiting" `, `"replayed"`,
//! `"purged"  `: JSON allows the padding blank), so a replay or purge marks an entry with one
//! positioned write of ten bytes and an fsync, and the line stays valid JSON for `jq`. A
//! replay marks its entries only after the queue took them (durably, for a disk queue), so a
//! crash in between can replay an entry again later (at least once), never lose it; a second
//! replay request skips what an earlier one marked. Lines without the `state` field (written
//! by versions before it existed) are listed with state `unmarked` and neither replayed nor
//! purged. Purged and replayed lines stay in the file as the record of what happened; to
//! reclaim the space, move the file away (the sink starts a new one at its next dead letter).
//!
//! A Kafka queue holds a replayed chunk once the brokers confirmed it (its delivery reports).
//! The replay waits for them at most the queue's `produce_timeout`, as a request does; past it
//! the request answers [`DeadLetterError::Unconfirmed`] and stops, and the chunk's entries stay
//! `waiting` in the file while the producer keeps them (it never expires an event): they are
//! marked `replayed` when the reports come, and no other replay sends them meanwhile
//! (`unconfirmed` in its outcome). Refused by the brokers, or never confirmed before the
//! process ends, they are waiting and replayable again (at least once: the consumer
//! de-duplicates on the `event_id` header).
//!
//! Memory stays bounded whatever the file's size: every read pages through the file with a
//! fixed buffer, keeping at most one page of entries or one chunk of a replay; a line longer
//! than [`MAX_LINE`] is listed but never read whole.
//!
//! File work runs on the blocking pool. Appends and state writes take one lock; replays and
//! purges also take an async lock for their whole run, so two of them never pick the same entry.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use metrics::{Counter, Gauge};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::metrics::SinkMetrics;
use crate::normalize::Timestamp;
use crate::queue::{Queue, Written};

/// Bytes of a refused event logged when no dead-letter file is configured.
const LOGGED_BYTES: usize = 1024;
/// What every line written by this version starts with; the state value follows.
const PREFIX: &[u8] = b"{\"state\":";
/// The state value's width in bytes, blank-padded, so it can be rewritten in place.
pub const STATE_WIDTH: usize = 10;
const WAITING: &[u8; STATE_WIDTH] = b"\"waiting\" ";
const REPLAYED: &[u8; STATE_WIDTH] = b"\"replayed\"";
const PURGED: &[u8; STATE_WIDTH] = b"\"purged\"  ";
/// Longest line read whole (list, fetch, replay); a longer one is listed from its state alone.
/// Bounds what one entry costs in memory; queued events are far smaller.
pub const MAX_LINE: u64 = 16 * 1024 * 1024;
/// Read buffer of a scan through the file.
const SCAN_BUFFER: usize = 64 * 1024;
/// A replay moves entries into the queue in chunks of at most this many events and bytes (and
/// at most a quarter of the queue's bounds), marking each chunk once the queue holds it.
const CHUNK_EVENTS: usize = 256;
const CHUNK_BYTES: u64 = 1024 * 1024;
/// How long a replay waits for room in a full queue before it stops and reports what is left.
const ROOM_WAIT: Duration = Duration::from_secs(10);
/// Most entries one request may name.
pub const MAX_ENTRIES_PER_REQUEST: usize = 1000;
/// Longest title shown in a list.
const TITLE_CHARS: usize = 200;

/// A sink's dead letters: the file, its counts, and the operations on it.
pub struct DeadLetters {
    sink_id: String,
    path: Option<PathBuf>,
    metrics: Handles,
    /// Entries in state `waiting`; the gauge mirrors it.
    waiting: Arc<AtomicI64>,
    /// Held (on the blocking pool) by appends and state writes.
    file: Arc<Mutex<()>>,
    /// Held by a replay or purge for its whole run.
    ops: tokio::sync::Mutex<()>,
    /// Entries a replay handed to a Kafka queue whose brokers have not confirmed them yet
    /// (still `waiting` in the file): no replay or purge picks them.
    unconfirmed: Arc<Mutex<HashSet<u64>>>,
}

struct Handles {
    total: Counter,
    waiting: Gauge,
    replays: Counter,
    purges: Counter,
}

/// An entry's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Waiting,
    Replayed,
    Purged,
    /// A line without a `state` field (or one being rewritten as it was read).
    Unmarked,
}

impl State {
    fn of_head(head: &[u8]) -> State {
        let Some(token) = head.strip_prefix(PREFIX) else {
            return State::Unmarked;
        };
        match token.get(..STATE_WIDTH) {
            Some(t) if t == WAITING => State::Waiting,
            Some(t) if t == REPLAYED => State::Replayed,
            Some(t) if t == PURGED => State::Purged,
            _ => State::Unmarked,
        }
    }
}

/// Which entries a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    One(State),
    All,
}

impl Show {
    fn admits(self, s: State) -> bool {
        match self {
            Show::All => true,
            Show::One(want) => want == s,
        }
    }
}

/// One entry as a list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The entry's name: the byte offset of its line in the file.
    pub entry: u64,
    pub state: State,
    pub time: Option<String>,
    pub reason: Option<String>,
    pub event_id: Option<String>,
    pub vendor: Option<String>,
    pub title: Option<String>,
}

/// One entry with the event it holds.
#[derive(Debug, Serialize)]
pub struct Full {
    #[serde(flatten)]
    pub entry: Entry,
    /// The event as the sink would send it; null for a line too long to read.
    pub event: Option<String>,
}

/// A page of entries, newest first; `next` is the `before` of the following page.
#[derive(Debug, Serialize)]
pub struct Page {
    pub entries: Vec<Entry>,
    pub next: Option<u64>,
}

/// The entries a replay or purge acts on; only `waiting` ones are acted on.
#[derive(Debug, Clone)]
pub enum Selection {
    Entries(Vec<u64>),
    Filter(Filter),
    All,
}

/// Entries whose fields match every given condition.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Part of the reason.
    pub reason: Option<String>,
    pub vendor: Option<String>,
    pub event_id: Option<String>,
    /// Dead-lettered at or after (Unix milliseconds).
    pub since: Option<i64>,
    /// Dead-lettered before (Unix milliseconds).
    pub until: Option<i64>,
}

/// What a replay or purge did.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Outcome {
    /// Entries replayed (or purged) by this request.
    pub done: u64,
    /// Named entries that were not waiting (already replayed or purged, or unmarked).
    pub skipped: u64,
    /// Selected entries left waiting because the queue had no room, or because the replay
    /// stopped at a chunk its brokers did not confirm in time (replay only).
    pub remaining: u64,
    /// Selected entries an earlier replay handed to the Kafka brokers, not confirmed yet:
    /// not sent again (they are marked replayed when confirmed, else wait again).
    pub unconfirmed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("no dead letter {0}")]
    NotFound(u64),
    #[error("dead-letter file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the queue did not take the replayed events: {0}")]
    Queue(String),
    /// The Kafka brokers did not confirm a replayed chunk within the queue's
    /// `produce_timeout`; the replay stopped there. `outcome.unconfirmed` entries are with
    /// the producer: still waiting, marked replayed once confirmed, not sent again meanwhile.
    #[error(
        "the Kafka brokers did not confirm {} replayed events within {}s (the queue's produce_timeout); \
         they stay waiting and are marked replayed once the brokers confirm them, not sent again meanwhile; \
         {} entries were replayed before them, {} more left waiting",
        .outcome.unconfirmed, .timeout.as_secs_f64(), .outcome.done, .outcome.remaining
    )]
    Unconfirmed { outcome: Outcome, timeout: Duration },
    #[error("dead-letter task failed: {0}")]
    Task(String),
}

#[derive(Serialize)]
struct Line<'a> {
    time: Timestamp,
    sink: &'a str,
    reason: &'a str,
    event_id: Option<&'a str>,
    vendor: Option<&'a str>,
    title: Option<&'a str>,
    event: std::borrow::Cow<'a, str>,
}

/// A line as read back (older lines lack the summary fields).
#[derive(Deserialize)]
struct Stored {
    time: Option<String>,
    reason: Option<String>,
    event_id: Option<String>,
    vendor: Option<String>,
    title: Option<String>,
    event: Option<String>,
}

impl DeadLetters {
    pub fn new(sink_id: &str, path: Option<PathBuf>, metrics: &SinkMetrics) -> DeadLetters {
        DeadLetters {
            sink_id: sink_id.to_owned(),
            path,
            metrics: Handles {
                total: metrics.dead_letters.clone(),
                waiting: metrics.dead_letters_waiting.clone(),
                replays: metrics.dead_letter_replays.clone(),
                purges: metrics.dead_letter_purges.clone(),
            },
            waiting: Arc::new(AtomicI64::new(0)),
            file: Arc::new(Mutex::new(())),
            ops: tokio::sync::Mutex::new(()),
            unconfirmed: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Entries waiting for a replay or purge.
    pub fn waiting(&self) -> u64 {
        u64::try_from(self.waiting.load(Ordering::Relaxed)).unwrap_or(0)
    }

    fn add_waiting(&self, n: i64) {
        add(&self.waiting, &self.metrics.waiting, n);
    }

    /// Counts the waiting entries of the file (at start, and when a reload gives the sink a
    /// new file). Blocks: call on the blocking pool.
    pub fn recount(&self) {
        let Some(path) = &self.path else { return };
        let _g = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let mut n = 0i64;
        let scanned = open(path).and_then(|f| match f {
            None => Ok(()),
            Some(f) => scan(&f, 0, u64::MAX, |l| {
                if l.state == State::Waiting {
                    n += 1;
                }
                true
            }),
        });
        if let Err(e) = scanned {
            tracing::error!(sink = %self.sink_id, path = %path.display(), error = %e, "cannot read the dead-letter file to count its entries");
        }
        self.waiting.store(n, Ordering::Relaxed);
        self.metrics.waiting.set(n as f64);
    }

    /// Records each event as refused for its own reason (one write for all of them).
    pub async fn record(self: &Arc<Self>, events: Vec<(Bytes, String)>) {
        let Some((_, first_reason)) = events.first() else {
            return;
        };
        let reason = first_reason.clone();
        self.metrics.total.increment(events.len() as u64);
        let Some(path) = self.path.clone() else {
            for (e, reason) in &events {
                let shown = &e[..e.len().min(LOGGED_BYTES)];
                tracing::error!(sink = %self.sink_id, %reason, event = %String::from_utf8_lossy(shown), "dead letter (no dead_letter_path configured)");
            }
            return;
        };
        let this = self.clone();
        let n = events.len() as i64;
        let written = tokio::task::spawn_blocking(move || {
            let mut text = Vec::new();
            let time = Timestamp::now();
            for (e, reason) in &events {
                let event = String::from_utf8_lossy(e);
                let summary = summarize(&event);
                let line = Line {
                    time,
                    sink: &this.sink_id,
                    reason,
                    event_id: summary.event_id.as_deref(),
                    vendor: summary.vendor.as_deref(),
                    title: summary.title.as_deref(),
                    event,
                };
                text.extend_from_slice(PREFIX);
                text.extend_from_slice(WAITING);
                let start = text.len();
                serde_json::to_writer(&mut text, &line)?;
                // The object's own `{` gives way to the state field's `,`.
                text[start] = b',';
                text.push(b'\n');
            }
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            let _g = this.file.lock().unwrap_or_else(|p| p.into_inner());
            let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
            file.write_all(&text)?;
            file.sync_data()?;
            this.add_waiting(n);
            Ok::<_, std::io::Error>(())
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(sink = %self.sink_id, %reason, error = %e, "cannot write the dead-letter file; the refused events are only in this log line")
            }
            Err(e) => {
                tracing::error!(sink = %self.sink_id, %reason, error = %e, "dead-letter writer failed")
            }
        }
    }

    /// Up to `limit` entries that `show` admits, newest first, older than the entry `before`.
    pub async fn list(
        &self,
        show: Show,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Page, DeadLetterError> {
        let Some(path) = self.path.clone() else {
            return Ok(Page {
                entries: Vec::new(),
                next: None,
            });
        };
        blocking(move || {
            let Some(f) = open(&path).map_err(|e| io(&path, e))? else {
                return Ok(Page {
                    entries: Vec::new(),
                    next: None,
                });
            };
            // The newest `limit + 1` that match: the extra one says whether a next page exists.
            let mut kept: VecDeque<LineRef> = VecDeque::with_capacity(limit + 1);
            scan(&f, 0, before.unwrap_or(u64::MAX), |l| {
                if show.admits(l.state) {
                    if kept.len() == limit + 1 {
                        kept.pop_front();
                    }
                    kept.push_back(l);
                }
                true
            })
            .map_err(|e| io(&path, e))?;
            let more = kept.len() > limit;
            if more {
                kept.pop_front();
            }
            let mut entries = Vec::with_capacity(kept.len());
            for l in kept.iter().rev() {
                entries.push(read_entry(&f, *l).map_err(|e| io(&path, e))?.entry);
            }
            let next = if more {
                entries.last().map(|e| e.entry)
            } else {
                None
            };
            Ok(Page { entries, next })
        })
        .await
    }

    /// The entry `entry` with its event.
    pub async fn get(&self, entry: u64) -> Result<Full, DeadLetterError> {
        let Some(path) = self.path.clone() else {
            return Err(DeadLetterError::NotFound(entry));
        };
        blocking(move || {
            let f = open(&path)
                .map_err(|e| io(&path, e))?
                .ok_or(DeadLetterError::NotFound(entry))?;
            let l = line_at(&f, entry)
                .map_err(|e| io(&path, e))?
                .ok_or(DeadLetterError::NotFound(entry))?;
            read_entry(&f, l).map_err(|e| io(&path, e))
        })
        .await
    }

    /// Puts the selected waiting entries back into `queue`, oldest first, and marks each
    /// replayed once the queue holds it. Entries dead-lettered while the replay runs (the
    /// destination refusing a replayed event again) are not part of it: each entry goes at
    /// most once per request.
    pub async fn replay(
        &self,
        queue: &Queue,
        selection: Selection,
    ) -> Result<Outcome, DeadLetterError> {
        self.act(selection, Some(queue)).await
    }

    /// Marks the selected waiting entries purged: never replayed, no longer waiting.
    pub async fn purge(&self, selection: Selection) -> Result<Outcome, DeadLetterError> {
        self.act(selection, None).await
    }

    async fn act(
        &self,
        selection: Selection,
        queue: Option<&Queue>,
    ) -> Result<Outcome, DeadLetterError> {
        let _op = self.ops.lock().await;
        let mut outcome = Outcome::default();
        let Some(path) = self.path.clone() else {
            if let Selection::Entries(ids) = &selection {
                if let Some(id) = ids.first() {
                    return Err(DeadLetterError::NotFound(*id));
                }
            }
            return Ok(outcome);
        };
        // What exists now is what this request may act on.
        let (end, pick) = {
            let (path, selection) = (path.clone(), selection.clone());
            let held = lock(&self.unconfirmed).clone();
            blocking(move || prepare(&path, selection, held)).await?
        };
        outcome.skipped = pick.skipped;
        outcome.unconfirmed = pick.unconfirmed;
        let (max_events, max_bytes) = match queue {
            Some(q) => {
                let l = q.limits();
                (
                    CHUNK_EVENTS.min(
                        usize::try_from(l.max_events / 4)
                            .unwrap_or(usize::MAX)
                            .max(1),
                    ),
                    CHUNK_BYTES.min((l.max_bytes / 4).max(1)),
                )
            }
            None => (CHUNK_EVENTS * 16, u64::MAX),
        };
        let pick = Arc::new(pick);
        let mut cursor = 0u64;
        loop {
            let chunk = {
                let (path, pick) = (path.clone(), pick.clone());
                let with_events = queue.is_some();
                blocking(move || {
                    select(
                        &path,
                        cursor,
                        end,
                        &pick,
                        max_events,
                        max_bytes,
                        with_events,
                    )
                })
                .await?
            };
            outcome.unconfirmed += chunk.unconfirmed;
            if chunk.offsets.is_empty() {
                break;
            }
            let n = chunk.offsets.len() as u64;
            if let Some(q) = queue {
                let stop = match put(q, chunk.events, chunk.bytes).await? {
                    Put::Taken => None,
                    Put::NoRoom => Some((cursor, None)),
                    Put::Unconfirmed(written, timeout) => {
                        self.confirm_later(&path, chunk.offsets.clone(), written);
                        outcome.unconfirmed += n;
                        Some((chunk.next, Some(timeout)))
                    }
                };
                if let Some((from, timeout)) = stop {
                    let (path, pick) = (path.clone(), pick.clone());
                    let rest = blocking(move || {
                        select(&path, from, end, &pick, usize::MAX, u64::MAX, false)
                    })
                    .await?;
                    outcome.remaining = rest.offsets.len() as u64;
                    outcome.unconfirmed += rest.unconfirmed;
                    return match timeout {
                        None => Ok(outcome),
                        Some(timeout) => Err(DeadLetterError::Unconfirmed { outcome, timeout }),
                    };
                }
            }
            cursor = chunk.next;
            let token = if queue.is_some() { REPLAYED } else { PURGED };
            let (p, lock, offsets) = (path.clone(), self.file.clone(), chunk.offsets);
            let (waiting, gauge) = (self.waiting.clone(), self.metrics.waiting.clone());
            blocking(move || {
                mark(&lock, &p, &offsets, token, &waiting, &gauge).map_err(|e| io(&p, e))
            })
            .await?;
            if queue.is_some() {
                self.metrics.replays.increment(n);
            } else {
                self.metrics.purges.increment(n);
            }
            outcome.done += n;
        }
        Ok(outcome)
    }

    /// Replayed entries the brokers did not confirm in time: kept from other replays and
    /// purges until their delivery reports come, then marked replayed (delivered) or left
    /// waiting (refused, or the producer stopped first).
    fn confirm_later(&self, path: &Path, offsets: Vec<u64>, written: Written) {
        lock(&self.unconfirmed).extend(offsets.iter().copied());
        let held = self.unconfirmed.clone();
        let (file, waiting, gauge) = (
            self.file.clone(),
            self.waiting.clone(),
            self.metrics.waiting.clone(),
        );
        let replays = self.metrics.replays.clone();
        let (sink, path) = (self.sink_id.clone(), path.to_owned());
        tokio::spawn(async move {
            let n = offsets.len() as u64;
            match written.await {
                Ok(Ok(())) => {
                    let marked = {
                        let offsets = offsets.clone();
                        tokio::task::spawn_blocking(move || {
                            mark(&file, &path, &offsets, REPLAYED, &waiting, &gauge)
                        })
                        .await
                    };
                    match marked {
                        Ok(Ok(())) => {
                            replays.increment(n);
                            tracing::info!(%sink, events = n, "the brokers confirmed replayed dead letters late; marked replayed");
                        }
                        Ok(Err(e)) => {
                            tracing::error!(%sink, events = n, error = %e, "replayed dead letters were confirmed but cannot be marked; a later replay sends them again")
                        }
                        Err(e) => {
                            tracing::error!(%sink, events = n, error = %e, "marking late-confirmed dead letters failed; a later replay sends them again")
                        }
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(%sink, events = n, error = %e, "the brokers refused replayed dead letters; they wait again")
                }
                Err(_) => {
                    tracing::warn!(%sink, events = n, "the producer stopped before the brokers confirmed replayed dead letters; they wait again")
                }
            }
            let mut held = lock(&held);
            for o in &offsets {
                held.remove(o);
            }
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Inserts and removes of offsets: a panic leaves nothing half done.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DeadLetterError> + Send + 'static,
) -> Result<T, DeadLetterError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DeadLetterError::Task(e.to_string()))?
}

fn io(path: &Path, source: std::io::Error) -> DeadLetterError {
    DeadLetterError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Opens the file for reading; `None` when it does not exist yet.
fn open(path: &Path) -> std::io::Result<Option<File>> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A complete line: where it starts, its length without the newline, and its state.
#[derive(Debug, Clone, Copy)]
struct LineRef {
    offset: u64,
    len: u64,
    state: State,
}

/// Calls `f` for each complete line (ended by a newline) starting before `end`, in file
/// order, until it returns false. A last line without its newline (being written) is left
/// out. Reads through a fixed buffer, whatever the lines' lengths.
fn scan(
    f: &File,
    start: u64,
    end: u64,
    mut each: impl FnMut(LineRef) -> bool,
) -> std::io::Result<()> {
    let head_len = PREFIX.len() + STATE_WIDTH;
    let mut buf = vec![0u8; SCAN_BUFFER];
    let mut head: Vec<u8> = Vec::with_capacity(head_len);
    let mut pos = start;
    let mut line_start = start;
    while line_start < end {
        let n = f.read_at(&mut buf, pos)?;
        if n == 0 {
            return Ok(());
        }
        let mut i = 0;
        while i < n {
            let rest = &buf[i..n];
            let nl = rest.iter().position(|&b| b == b'\n');
            let upto = nl.unwrap_or(rest.len());
            if head.len() < head_len {
                let take = (head_len - head.len()).min(upto);
                head.extend_from_slice(&rest[..take]);
            }
            match nl {
                Some(j) => {
                    let line_end = pos + (i + j) as u64;
                    let l = LineRef {
                        offset: line_start,
                        len: line_end - line_start,
                        state: State::of_head(&head),
                    };
                    if !each(l) {
                        return Ok(());
                    }
                    line_start = line_end + 1;
                    head.clear();
                    i += j + 1;
                    if line_start >= end {
                        return Ok(());
                    }
                }
                None => i = n,
            }
        }
        pos += n as u64;
    }
    Ok(())
}

/// The line starting at `offset`, if a complete line starts there.
fn line_at(f: &File, offset: u64) -> std::io::Result<Option<LineRef>> {
    if offset > 0 {
        let mut b = [0u8; 1];
        if f.read_at(&mut b, offset - 1)? != 1 || b[0] != b'\n' {
            return Ok(None);
        }
    }
    let mut found = None;
    scan(f, offset, offset + 1, |l| {
        found = Some(l);
        false
    })?;
    Ok(found)
}

/// Reads and parses a line (up to [`MAX_LINE`]).
fn read_entry(f: &File, l: LineRef) -> std::io::Result<Full> {
    let mut entry = Entry {
        entry: l.offset,
        state: l.state,
        time: None,
        reason: None,
        event_id: None,
        vendor: None,
        title: None,
    };
    if l.len > MAX_LINE {
        return Ok(Full { entry, event: None });
    }
    let mut text = vec![0u8; l.len as usize];
    f.read_exact_at(&mut text, l.offset)?;
    let Ok(stored) = serde_json::from_slice::<Stored>(&text) else {
        return Ok(Full { entry, event: None });
    };
    let derived = match (&stored.event_id, &stored.vendor, &stored.event) {
        (None, None, Some(e)) => summarize(e),
        _ => Summary::default(),
    };
    entry.time = stored.time;
    entry.reason = stored.reason;
    entry.event_id = stored.event_id.or(derived.event_id);
    entry.vendor = stored.vendor.or(derived.vendor);
    entry.title = stored
        .title
        .or(derived.title)
        .map(|t| t.chars().take(TITLE_CHARS).collect());
    Ok(Full {
        entry,
        event: stored.event,
    })
}

/// What an act picks: the selection, with named entries checked and sorted.
struct Pick {
    selection: Selection,
    skipped: u64,
    /// Named entries held by an unconfirmed replay.
    unconfirmed: u64,
    /// The entries held by unconfirmed replays when the act began: not picked.
    held: HashSet<u64>,
}

/// Fixes the end of what a request may act on, and checks the entries it names (404 for one
/// that is not there; the ones not waiting are skipped).
fn prepare(
    path: &Path,
    selection: Selection,
    held: HashSet<u64>,
) -> Result<(u64, Pick), DeadLetterError> {
    let Some(f) = open(path).map_err(|e| io(path, e))? else {
        return match selection {
            Selection::Entries(ids) if !ids.is_empty() => Err(DeadLetterError::NotFound(ids[0])),
            s => Ok((
                0,
                Pick {
                    selection: s,
                    skipped: 0,
                    unconfirmed: 0,
                    held,
                },
            )),
        };
    };
    let end = f.metadata().map_err(|e| io(path, e))?.len();
    let mut skipped = 0;
    let mut unconfirmed = 0;
    let selection = match selection {
        Selection::Entries(mut ids) => {
            ids.sort_unstable();
            ids.dedup();
            let mut waiting = Vec::with_capacity(ids.len());
            for id in ids {
                let l = line_at(&f, id)
                    .map_err(|e| io(path, e))?
                    .ok_or(DeadLetterError::NotFound(id))?;
                if l.state != State::Waiting {
                    skipped += 1;
                } else if held.contains(&id) {
                    unconfirmed += 1;
                } else {
                    waiting.push(id);
                }
            }
            Selection::Entries(waiting)
        }
        s => s,
    };
    Ok((
        end,
        Pick {
            selection,
            skipped,
            unconfirmed,
            held,
        },
    ))
}

/// One chunk of an act: the entries' offsets and (for a replay) their events.
struct Chunk {
    offsets: Vec<u64>,
    events: Vec<Bytes>,
    bytes: u64,
    /// Selected entries passed over because an unconfirmed replay holds them.
    unconfirmed: u64,
    /// Where the next chunk starts looking.
    next: u64,
}

/// The next waiting entries the pick selects, from `from` to `end`, within the bounds (at
/// least one).
fn select(
    path: &Path,
    from: u64,
    end: u64,
    pick: &Pick,
    max_events: usize,
    max_bytes: u64,
    with_events: bool,
) -> Result<Chunk, DeadLetterError> {
    let mut chunk = Chunk {
        offsets: Vec::new(),
        events: Vec::new(),
        bytes: 0,
        unconfirmed: 0,
        next: end,
    };
    let Some(f) = open(path).map_err(|e| io(path, e))? else {
        return Ok(chunk);
    };
    let mut failed = None;
    scan(&f, from, end, |l| {
        if l.state != State::Waiting {
            return true;
        }
        if let Selection::Entries(ids) = &pick.selection {
            if ids.binary_search(&l.offset).is_err() {
                return true;
            }
        }
        let needs_line = with_events || matches!(pick.selection, Selection::Filter(_));
        if !needs_line && pick.held.contains(&l.offset) {
            chunk.unconfirmed += 1;
            return true;
        }
        let mut event = None;
        if needs_line {
            let full = match read_entry(&f, l) {
                Ok(x) => x,
                Err(e) => {
                    failed = Some(e);
                    return false;
                }
            };
            if let Selection::Filter(filter) = &pick.selection {
                if !matches(filter, &full.entry) {
                    return true;
                }
            }
            if pick.held.contains(&l.offset) {
                chunk.unconfirmed += 1;
                return true;
            }
            let Some(e) = full.event else {
                // Unreadable lines are left waiting; nothing to put back.
                return true;
            };
            event = Some(e);
        }
        let size = event.as_ref().map_or(0, |e| e.len() as u64);
        if !chunk.offsets.is_empty()
            && (chunk.offsets.len() >= max_events || chunk.bytes + size > max_bytes)
        {
            chunk.next = l.offset;
            return false;
        }
        chunk.offsets.push(l.offset);
        chunk.bytes += size;
        if with_events {
            if let Some(e) = event {
                chunk.events.push(Bytes::from(e));
            }
        }
        true
    })
    .map_err(|e| io(path, e))?;
    if let Some(e) = failed {
        return Err(io(path, e));
    }
    Ok(chunk)
}

fn matches(filter: &Filter, e: &Entry) -> bool {
    let has = |want: &Option<String>, got: &Option<String>| {
        want.as_ref()
            .is_none_or(|w| got.as_deref() == Some(w.as_str()))
    };
    let millis = e
        .time
        .as_deref()
        .and_then(Timestamp::parse_rfc3339)
        .map(Timestamp::millis);
    filter
        .reason
        .as_ref()
        .is_none_or(|r| e.reason.as_deref().is_some_and(|x| x.contains(r.as_str())))
        && has(&filter.vendor, &e.vendor)
        && has(&filter.event_id, &e.event_id)
        && filter.since.is_none_or(|s| millis.is_some_and(|m| m >= s))
        && filter.until.is_none_or(|u| millis.is_some_and(|m| m < u))
}

/// What became of a replayed chunk.
enum Put {
    /// The queue holds it (durably, for a disk or Kafka queue).
    Taken,
    /// No room within [`ROOM_WAIT`]: not queued.
    NoRoom,
    /// A Kafka queue's brokers did not confirm it within its `produce_timeout`: the producer
    /// keeps it; `Written` resolves when the reports come.
    Unconfirmed(Written, Duration),
}

/// Puts `events` into the queue, waiting up to [`ROOM_WAIT`] for room, and for a Kafka queue
/// up to its `produce_timeout` for the brokers' confirmation.
async fn put(queue: &Queue, events: Vec<Bytes>, bytes: u64) -> Result<Put, DeadLetterError> {
    let deadline = tokio::time::Instant::now() + ROOM_WAIT;
    let n = events.len() as u64;
    let reservation = loop {
        match queue.try_reserve(n, bytes) {
            Ok(r) => break r,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(_) => return Ok(Put::NoRoom),
        }
    };
    let mut written = match queue.commit(reservation, events) {
        Err(_) => return Ok(Put::NoRoom),
        Ok(None) => return Ok(Put::Taken),
        Ok(Some(w)) => w,
    };
    let result = match queue.write_timeout() {
        // A disk queue's writer always answers (written, or failed).
        None => (&mut written).await,
        Some(timeout) => match tokio::time::timeout(timeout, &mut written).await {
            Ok(r) => r,
            Err(_) => return Ok(Put::Unconfirmed(written, timeout)),
        },
    };
    match result {
        Ok(Ok(())) => Ok(Put::Taken),
        Ok(Err(e)) => Err(DeadLetterError::Queue(e.to_string())),
        Err(_) => Err(DeadLetterError::Queue(
            "the queue stopped before it held the events".to_owned(),
        )),
    }
}

/// An event's id, vendor and title, read back from its wire bytes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub event_id: Option<String>,
    pub vendor: Option<String>,
    pub title: Option<String>,
}

/// Reads an event's id, vendor and title from what a sink sends: a JSON object (the event,
/// a HEC envelope around it, or an OCSF object, possibly after a syslog header), or a CEF or
/// LEEF body. Fields the format does not carry stay `None`. Runs only when an event is
/// dead-lettered (or listed from an older line), never on the delivery path.
pub fn summarize(event: &str) -> Summary {
    if let Some(v) = event
        .find('{')
        .and_then(|i| serde_json::from_str::<Value>(&event[i..]).ok())
    {
        let ev = v.get("event").filter(|e| e.is_object()).unwrap_or(&v);
        let text = |v: Option<&Value>| {
            v.and_then(|x| match x {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        return Summary {
            event_id: text(ev.get("id")).or_else(|| text(ev.pointer("/metadata/uid"))),
            vendor: text(ev.get("vendor"))
                .or_else(|| text(ev.pointer("/metadata/product/vendor_name"))),
            title: text(ev.get("title")).or_else(|| text(ev.pointer("/finding_info/title"))),
        };
    }
    if let Some(i) = event.find("CEF:0|") {
        return from_cef_leef(&event[i..], true);
    }
    if let Some(i) = event.find("LEEF:") {
        return from_cef_leef(&event[i..], false);
    }
    Summary::default()
}

/// CEF: `CEF:0|siemgate|<product>|<version>|<id>|<name>|<sev>|ext`; LEEF:
/// `LEEF:2.0|siemgate|<product>|<version>|<id>|<delim>|attrs`. Both carry `externalId`.
fn from_cef_leef(body: &str, cef: bool) -> Summary {
    let mut fields = Vec::with_capacity(8);
    let mut cur = String::new();
    let mut chars = body.chars();
    let mut rest = "";
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '|' => {
                fields.push(std::mem::take(&mut cur));
                if fields.len() == if cef { 7 } else { 6 } {
                    rest = chars.as_str();
                    break;
                }
            }
            c => cur.push(c),
        }
    }
    let delim = if cef {
        ' '
    } else {
        match fields.get(5).map(String::as_str) {
            Some("x09") | None => '\t',
            Some(d) => d.chars().next().unwrap_or('\t'),
        }
    };
    let event_id = rest.find("externalId=").map(|i| {
        let v = &rest[i + "externalId=".len()..];
        // A value ends where the next `key=` begins.
        let mut end = v.len();
        for (j, c) in v.char_indices() {
            if c == delim {
                let next = &v[j + c.len_utf8()..];
                let key_end = next.find(|c: char| !c.is_ascii_alphanumeric());
                if !cef || key_end.is_some_and(|k| k > 0 && next[k..].starts_with('=')) {
                    end = j;
                    break;
                }
            }
        }
        v[..end].replace("\\=", "=").replace("\\\\", "\\")
    });
    Summary {
        event_id,
        vendor: fields.get(2).cloned().filter(|s| !s.is_empty()),
        title: if cef {
            fields.get(5).cloned().filter(|s| !s.is_empty())
        } else {
            None
        },
    }
}

/// Moves the waiting count (and its gauge) by `n`.
fn add(waiting: &AtomicI64, gauge: &Gauge, n: i64) {
    let now = waiting.fetch_add(n, Ordering::Relaxed) + n;
    gauge.set(now.max(0) as f64);
}

/// Writes `token` as the state of each waiting entry at `offsets`, fsyncs once, and takes them
/// off the waiting count, all under the file lock (so a recount sees the marks and the count
/// agree).
fn mark(
    lock: &Mutex<()>,
    path: &Path,
    offsets: &[u64],
    token: &[u8; STATE_WIDTH],
    waiting: &AtomicI64,
    gauge: &Gauge,
) -> std::io::Result<()> {
    let _g = lock.lock().unwrap_or_else(|p| p.into_inner());
    let f = OpenOptions::new().write(true).open(path)?;
    for &o in offsets {
        f.write_all_at(token, o + PREFIX.len() as u64)?;
    }
    f.sync_data()?;
    add(waiting, gauge, -(offsets.len() as i64));
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn reasoned(reason: &str, events: Vec<Bytes>) -> Vec<(Bytes, String)> {
        events.into_iter().map(|e| (e, reason.to_owned())).collect()
    }
    use crate::config::QueueLimits;
    use crate::metrics::Registry;

    fn event(id: &str, vendor: &str, title: &str) -> Bytes {
        Bytes::from(
            serde_json::json!({"time": 1, "event": {"id": id, "vendor": vendor, "title": title}})
                .to_string(),
        )
    }

    fn setup(dir: &Path) -> (Registry, Arc<DeadLetters>) {
        let registry = Registry::new();
        let metrics = registry.sink("s");
        let dl = Arc::new(DeadLetters::new(
            "s",
            Some(dir.join("dl/s.ndjson")),
            &metrics,
        ));
        (registry, dl)
    }

    async fn drain(q: &Queue) -> Vec<Bytes> {
        let mut out = Vec::new();
        let n = q.depth().events as usize;
        if n > 0 {
            q.next_batch(n, usize::MAX, Duration::ZERO, &mut out).await;
            q.ack(out.len());
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lines_are_listed_newest_first_and_replayed_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (_r, dl) = setup(dir.path());
        dl.record(reasoned(
            "bad format",
            vec![event("a", "wallarm", "A"), event("b", "wallarm", "B")],
        ))
        .await;
        dl.record(reasoned("other", vec![event("c", "prisma_cloud", "C")]))
            .await;
        assert_eq!(dl.waiting(), 3);

        // The file is JSON a line, the state padded in place.
        let text = std::fs::read_to_string(dl.path().unwrap()).unwrap();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["state"], "waiting");
            assert_eq!(v["sink"], "s");
        }

        let page = dl.list(Show::One(State::Waiting), None, 2).await.unwrap();
        let ids: Vec<_> = page
            .entries
            .iter()
            .map(|e| e.event_id.clone().unwrap())
            .collect();
        assert_eq!(ids, ["c", "b"]);
        assert_eq!(page.entries[0].vendor.as_deref(), Some("prisma_cloud"));
        assert_eq!(page.entries[0].reason.as_deref(), Some("other"));
        let next = page.next.expect("a second page");
        let page2 = dl
            .list(Show::One(State::Waiting), Some(next), 2)
            .await
            .unwrap();
        assert_eq!(page2.entries.len(), 1);
        assert_eq!(page2.entries[0].event_id.as_deref(), Some("a"));
        assert_eq!(page2.entries[0].entry, 0);
        assert_eq!(page2.next, None);

        let q = Queue::memory(QueueLimits {
            max_events: 100,
            max_bytes: 1 << 20,
        });
        let o = dl.replay(&q, Selection::All).await.unwrap();
        assert_eq!(
            o,
            Outcome {
                done: 3,
                skipped: 0,
                remaining: 0,
                unconfirmed: 0,
            }
        );
        let replayed = drain(&q).await;
        assert_eq!(
            replayed,
            vec![
                event("a", "wallarm", "A"),
                event("b", "wallarm", "B"),
                event("c", "prisma_cloud", "C")
            ],
            "byte for byte, oldest first"
        );
        assert_eq!(dl.waiting(), 0);
        // A second request finds nothing left to send.
        let o = dl.replay(&q, Selection::All).await.unwrap();
        assert_eq!(o.done, 0);
        assert!(drain(&q).await.is_empty());
        let all = dl.list(Show::All, None, 10).await.unwrap();
        assert!(all.entries.iter().all(|e| e.state == State::Replayed));
        // Naming a replayed entry skips it; naming no entry is a 404.
        let o = dl.replay(&q, Selection::Entries(vec![0])).await.unwrap();
        assert_eq!(
            o,
            Outcome {
                done: 0,
                skipped: 1,
                remaining: 0,
                unconfirmed: 0,
            }
        );
        assert!(matches!(
            dl.replay(&q, Selection::Entries(vec![1])).await,
            Err(DeadLetterError::NotFound(1))
        ));
        // The waiting count survives a recount from the file.
        dl.recount();
        assert_eq!(dl.waiting(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_filter_picks_and_a_purge_keeps_entries_from_replays() {
        let dir = tempfile::tempdir().unwrap();
        let (_r, dl) = setup(dir.path());
        dl.record(reasoned(
            "invalid data format",
            vec![event("a", "wallarm", "A")],
        ))
        .await;
        dl.record(reasoned(
            "HTTP 400",
            vec![event("b", "coralogix", "B"), event("c", "wallarm", "C")],
        ))
        .await;
        let q = Queue::memory(QueueLimits {
            max_events: 100,
            max_bytes: 1 << 20,
        });
        let wallarm_400 = Filter {
            reason: Some("400".to_owned()),
            vendor: Some("wallarm".to_owned()),
            ..Filter::default()
        };
        let o = dl.replay(&q, Selection::Filter(wallarm_400)).await.unwrap();
        assert_eq!(o.done, 1);
        assert_eq!(drain(&q).await, vec![event("c", "wallarm", "C")]);

        let first = dl
            .list(Show::All, None, 10)
            .await
            .unwrap()
            .entries
            .last()
            .unwrap()
            .entry;
        let o = dl.purge(Selection::Entries(vec![first])).await.unwrap();
        assert_eq!(o.done, 1);
        assert_eq!(dl.waiting(), 1);
        let o = dl.replay(&q, Selection::All).await.unwrap();
        assert_eq!(o.done, 1, "only b was still waiting");
        assert_eq!(drain(&q).await, vec![event("b", "coralogix", "B")]);
        let states: Vec<State> = dl
            .list(Show::All, None, 10)
            .await
            .unwrap()
            .entries
            .iter()
            .map(|e| e.state)
            .collect();
        assert_eq!(states, [State::Replayed, State::Replayed, State::Purged]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_leaves_the_rest_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let (_r, dl) = setup(dir.path());
        let events: Vec<Bytes> = (0..6).map(|i| event(&i.to_string(), "v", "t")).collect();
        dl.record(reasoned("r", events)).await;
        // Room for 4 events; chunks of one (a quarter of the bound).
        let q = Queue::memory(QueueLimits {
            max_events: 4,
            max_bytes: 1 << 20,
        });
        let o = dl.replay(&q, Selection::All).await.unwrap();
        assert_eq!(
            o,
            Outcome {
                done: 4,
                skipped: 0,
                remaining: 2,
                unconfirmed: 0,
            }
        );
        assert_eq!(dl.waiting(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_line_being_written_and_older_lines_are_handled() {
        let dir = tempfile::tempdir().unwrap();
        let (_r, dl) = setup(dir.path());
        let path = dl.path().unwrap().to_owned();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let old = r#"{"time":"2026-01-01T00:00:00.000Z","sink":"s","reason":"r","event":"{\"event\":{\"id\":\"old\"}}"}"#;
        std::fs::write(&path, format!("{old}\n{{\"state\":\"waiting\" ,\"ti")).unwrap();
        dl.recount();
        assert_eq!(
            dl.waiting(),
            0,
            "an unmarked line and a torn tail wait for nothing"
        );
        let page = dl.list(Show::All, None, 10).await.unwrap();
        assert_eq!(page.entries.len(), 1);
        assert_eq!(page.entries[0].state, State::Unmarked);
        assert_eq!(
            page.entries[0].event_id.as_deref(),
            Some("old"),
            "read from the event"
        );
        assert!(matches!(dl.get(5).await, Err(DeadLetterError::NotFound(5))));
        let full = dl.get(0).await.unwrap();
        assert_eq!(full.event.as_deref(), Some("{\"event\":{\"id\":\"old\"}}"));
    }

    #[test]
    fn summaries_come_from_every_wire_format() {
        let hec = r#"{"time":1.5,"sourcetype":"_json","event":{"id":"P-1","vendor":"prisma_cloud","title":"Open bucket"}}"#;
        assert_eq!(
            summarize(hec),
            Summary {
                event_id: Some("P-1".into()),
                vendor: Some("prisma_cloud".into()),
                title: Some("Open bucket".into())
            }
        );
        let ocsf = r#"<14>1 2026-01-01T00:00:00Z h siemgate - - - {"metadata":{"uid":"u1","product":{"vendor_name":"Wallarm"}},"finding_info":{"title":"SQLi"}}"#;
        assert_eq!(summarize(ocsf).event_id.as_deref(), Some("u1"));
        assert_eq!(summarize(ocsf).vendor.as_deref(), Some("Wallarm"));
        assert_eq!(summarize(ocsf).title.as_deref(), Some("SQLi"));
        let cef = r"<14>1 2026-01-01T00:00:00Z h siemgate - - - CEF:0|siemgate|Wallarm|1.0|wallarm:attack:new|SQL a\|b|10|rt=1 externalId=P 1:open cat=attack";
        let s = summarize(cef);
        assert_eq!(s.vendor.as_deref(), Some("Wallarm"));
        assert_eq!(s.title.as_deref(), Some("SQL a|b"));
        assert_eq!(s.event_id.as_deref(), Some("P 1:open"));
        let leef = "LEEF:2.0|siemgate|Prisma Cloud|1.0|prisma_cloud:alert:open|x09|devTime=1\texternalId=P-123\tsev=8";
        let s = summarize(leef);
        assert_eq!(s.vendor.as_deref(), Some("Prisma Cloud"));
        assert_eq!(s.event_id.as_deref(), Some("P-123"));
        assert_eq!(s.title, None);
        assert_eq!(summarize("plain text"), Summary::default());
    }
}
