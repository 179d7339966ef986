//! Dead letters: events a destination refused for good (HEC "invalid data format", an HTTP
//! receiver's 4xx), written to the sink's `dead_letter_path` as NDJSON with the time, the sink
//! and the reason, so nothing accepted is dropped without a trace. Without a path the event's
//! first bytes go to the log instead. Either way `siemgate_dead_letters_total` counts it.
//!
//! One line per event: `{"time":"...","sink":"...","reason":"...","event":"<wire bytes>"}`,
//! where `event` is what the sink would have sent (a HEC envelope, a syslog frame, ...), as
//! text. Writes run on the blocking pool.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::PathBuf;

use bytes::Bytes;
use metrics::Counter;
use serde::Serialize;

use crate::normalize::Timestamp;

/// Bytes of a refused event logged when no dead-letter file is configured.
const LOGGED_BYTES: usize = 1024;

pub struct DeadLetters {
    sink_id: String,
    path: Option<PathBuf>,
    counter: Counter,
}

#[derive(Serialize)]
struct Line<'a> {
    time: Timestamp,
    sink: &'a str,
    reason: &'a str,
    event: std::borrow::Cow<'a, str>,
}

impl DeadLetters {
    pub fn new(sink_id: &str, path: Option<PathBuf>, counter: Counter) -> DeadLetters {
        DeadLetters {
            sink_id: sink_id.to_owned(),
            path,
            counter,
        }
    }

    /// Records each event as refused for its reason (one write for all of them).
    pub async fn record(&self, events: Vec<(Bytes, String)>) {
        let Some((_, reason)) = events.first() else {
            return;
        };
        let reason = reason.clone();
        self.counter.increment(events.len() as u64);
        let Some(path) = self.path.clone() else {
            for (e, reason) in &events {
                let shown = &e[..e.len().min(LOGGED_BYTES)];
                tracing::error!(sink = %self.sink_id, %reason, event = %String::from_utf8_lossy(shown), "dead letter (no dead_letter_path configured)");
            }
            return;
        };
        let sink = self.sink_id.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut text = Vec::new();
            let time = Timestamp::now();
            for (e, reason) in &events {
                let line = Line {
                    time,
                    sink: &sink,
                    reason,
                    event: String::from_utf8_lossy(e),
                };
                serde_json::to_writer(&mut text, &line)?;
                text.push(b'\n');
            }
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
            file.write_all(&text)?;
            file.sync_data()?;
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
}
