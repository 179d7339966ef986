//! The admin API's dead-letter routes: list a sink's dead letters (paged, newest first), fetch
//! one, replay a selection back into the sink's queue, purge a selection. Replays and purges
//! are audited. The file and its marks are `sinks::dead_letter`'s.

use http::StatusCode;
use serde_json::{json, Map, Value};

use super::{audit, Reply};
use crate::config::ConfigIssue;
use crate::control::Control;
use crate::normalize::Timestamp;
use crate::sinks::dead_letter::{
    DeadLetterError, Filter, Outcome, Selection, Show, State, MAX_ENTRIES_PER_REQUEST,
};

/// Entries a page holds unless `limit` says otherwise, and the most it may say.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

fn no_sink(id: &str) -> Reply {
    Reply::error(StatusCode::NOT_FOUND, format!("no sink {id:?}"))
}

fn from_error(e: DeadLetterError) -> Reply {
    match e {
        DeadLetterError::NotFound(n) => {
            Reply::error(StatusCode::NOT_FOUND, format!("no dead letter {n}"))
        }
        other => {
            tracing::error!(error = %other, "dead-letter operation failed");
            Reply::error(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
        }
    }
}

fn bad(path: &str, message: impl Into<String>) -> Reply {
    Reply::issues(
        StatusCode::BAD_REQUEST,
        "invalid request",
        &[ConfigIssue {
            path: path.to_owned(),
            message: message.into(),
        }],
    )
}

/// `GET /api/v1/sinks/{id}/dead-letters?state=&before=&limit=`
pub(super) async fn list(c: &Control, id: &str, query: &str) -> Reply {
    let mut show = Show::One(State::Waiting);
    let mut before = None;
    let mut limit = DEFAULT_LIMIT;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "state" => {
                show = match v {
                    "waiting" => Show::One(State::Waiting),
                    "replayed" => Show::One(State::Replayed),
                    "purged" => Show::One(State::Purged),
                    "unmarked" => Show::One(State::Unmarked),
                    "all" => Show::All,
                    _ => return bad("state", "one of waiting, replayed, purged, unmarked, all"),
                }
            }
            "before" => match v.parse::<u64>() {
                Ok(n) => before = Some(n),
                Err(_) => return bad("before", "an entry number (the `next` of a page)"),
            },
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => limit = n,
                _ => return bad("limit", format!("an integer from 1 to {MAX_LIMIT}")),
            },
            other => return bad(other, "unknown query parameter (state, before, limit)"),
        }
    }
    let Some(dl) = c.lock().await.dead_letters(id).cloned() else {
        return no_sink(id);
    };
    match dl.list(show, before, limit).await {
        Ok(page) => Reply::json(
            StatusCode::OK,
            json!({
                "sink": id,
                "path": dl.path().map(|p| p.display().to_string()),
                "waiting": dl.waiting(),
                "entries": page.entries,
                "next": page.next,
            }),
        ),
        Err(e) => from_error(e),
    }
}

/// `GET /api/v1/sinks/{id}/dead-letters/{entry}`
pub(super) async fn get(c: &Control, id: &str, entry: &str) -> Reply {
    let Some(dl) = c.lock().await.dead_letters(id).cloned() else {
        return no_sink(id);
    };
    let Ok(n) = entry.parse::<u64>() else {
        return Reply::error(StatusCode::NOT_FOUND, format!("no dead letter {entry:?}"));
    };
    match dl.get(n).await {
        Ok(full) => {
            let mut v = serde_json::to_value(&full).unwrap_or(Value::Null);
            if let Value::Object(o) = &mut v {
                o.insert("sink".to_owned(), json!(id));
            }
            Reply::json(StatusCode::OK, v)
        }
        Err(e) => from_error(e),
    }
}

/// Reads `{"entries": [..]}`, `{"filter": {..}}` or `{"all": true}`.
fn selection(body: Option<Value>) -> Result<Selection, Reply> {
    let shape =
        "the body must be one of {\"entries\": [n, ...]}, {\"filter\": {...}}, {\"all\": true}";
    let Some(Value::Object(o)) = body else {
        return Err(bad("", shape));
    };
    if o.len() != 1 {
        return Err(bad("", shape));
    }
    let (k, v) = o.into_iter().next().ok_or_else(|| bad("", shape))?;
    match (k.as_str(), v) {
        ("all", Value::Bool(true)) => Ok(Selection::All),
        ("entries", Value::Array(a)) => {
            if a.is_empty() || a.len() > MAX_ENTRIES_PER_REQUEST {
                return Err(bad(
                    "entries",
                    format!("from 1 to {MAX_ENTRIES_PER_REQUEST} entry numbers"),
                ));
            }
            a.iter()
                .map(Value::as_u64)
                .collect::<Option<Vec<u64>>>()
                .map(Selection::Entries)
                .ok_or_else(|| bad("entries", "entry numbers (integers from a list)"))
        }
        ("filter", Value::Object(f)) => filter(f).map(Selection::Filter),
        _ => Err(bad("", shape)),
    }
}

fn filter(f: Map<String, Value>) -> Result<Filter, Reply> {
    let mut out = Filter::default();
    for (k, v) in f {
        let path = format!("filter.{k}");
        let Value::String(s) = v else {
            return Err(bad(&path, "a string"));
        };
        match k.as_str() {
            "reason" => out.reason = Some(s),
            "vendor" => out.vendor = Some(s),
            "event_id" => out.event_id = Some(s),
            "since" | "until" => {
                let Some(t) = Timestamp::parse_rfc3339(&s) else {
                    return Err(bad(&path, "an RFC 3339 time"));
                };
                if k == "since" {
                    out.since = Some(t.millis());
                } else {
                    out.until = Some(t.millis());
                }
            }
            _ => {
                return Err(bad(
                    &path,
                    "unknown key (reason, vendor, event_id, since, until)",
                ))
            }
        }
    }
    Ok(out)
}

/// `POST /api/v1/sinks/{id}/dead-letters/replay`
pub(super) async fn replay(c: &Control, caller: &str, id: &str, body: Option<Value>) -> Reply {
    let sel = match selection(body) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (dl, handle) = {
        let st = c.lock().await;
        match (st.dead_letters(id), st.sink_handle(id)) {
            (Some(d), Some(h)) => (d.clone(), h.clone()),
            _ => return no_sink(id),
        }
    };
    // On a task of its own: a caller that hangs up mid-replay does not cut it between the
    // queue taking a chunk and the chunk's entries being marked (or held as unconfirmed).
    let replayed = {
        let (dl, handle) = (dl.clone(), handle.clone());
        tokio::spawn(async move { dl.replay(&handle.queue, sel).await })
            .await
            .unwrap_or_else(|e| Err(DeadLetterError::Task(e.to_string())))
    };
    match replayed {
        Ok(o) => {
            handle.update_depth_gauges();
            audit(
                caller,
                "sink.dead_letters.replay",
                id,
                &format!(
                    "ok: {} replayed, {} skipped, {} left for want of queue room, {} awaiting the brokers' confirmation of an earlier replay",
                    o.done, o.skipped, o.remaining, o.unconfirmed
                ),
            );
            Reply::json(StatusCode::OK, replay_body(id, &o))
        }
        Err(e) => {
            audit(
                caller,
                "sink.dead_letters.replay",
                id,
                &format!("failed: {e}"),
            );
            if let DeadLetterError::Unconfirmed { outcome, timeout } = &e {
                handle.update_depth_gauges();
                let mut body = replay_body(id, outcome);
                body["error"] = json!(e.to_string());
                let mut r = Reply::json(StatusCode::SERVICE_UNAVAILABLE, body);
                r.retry_after = Some(timeout.as_secs().max(1));
                return r;
            }
            from_error(e)
        }
    }
}

/// What a replay did, as its answer says it.
fn replay_body(id: &str, o: &Outcome) -> Value {
    json!({
        "sink": id,
        "replayed": o.done,
        "skipped": o.skipped,
        "remaining": o.remaining,
        "unconfirmed": o.unconfirmed,
    })
}

/// `POST /api/v1/sinks/{id}/dead-letters/purge`
pub(super) async fn purge(c: &Control, caller: &str, id: &str, body: Option<Value>) -> Reply {
    let sel = match selection(body) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(dl) = c.lock().await.dead_letters(id).cloned() else {
        return no_sink(id);
    };
    match dl.purge(sel).await {
        Ok(o) => {
            audit(
                caller,
                "sink.dead_letters.purge",
                id,
                &format!("ok: {} purged, {} skipped", o.done, o.skipped),
            );
            Reply::json(
                StatusCode::OK,
                json!({"sink": id, "purged": o.done, "skipped": o.skipped}),
            )
        }
        Err(e) => {
            audit(
                caller,
                "sink.dead_letters.purge",
                id,
                &format!("failed: {e}"),
            );
            from_error(e)
        }
    }
}
