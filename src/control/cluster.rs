//! The shared store of the admin API's sources in a cluster (`[cluster]`): a compacted Kafka
//! topic whose key is the source id and whose value is the source's record (or a tombstone for
//! a deletion), written by the node that takes the admin request and followed from the
//! beginning by every node.
//!
//! * Writing: an idempotent producer (`acks=all`); [`Cluster::write`] resolves once the
//!   brokers acknowledged every record, with each record's partition and offset, or fails after
//!   `write_timeout` (also librdkafka's `message.timeout.ms`, so a change answered 503 is not
//!   published later by a retry the caller never hears of).
//! * Following: one thread reads every partition of the topic from the beginning, without a
//!   consumer group (each node reads everything; nothing is committed), and hands each record
//!   to the control plane through a bounded channel, then [`Update::CaughtUp`] once every
//!   partition reached its end for the first time. The thread keeps reading (and librdkafka
//!   keeps reconnecting) until [`Cluster::stop`].
//!
//! The records hold the sources' secrets, as the local store does; nothing here logs a record's
//! value.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::store::ApiRecord;
use crate::config::cluster::ClusterSettings;

/// How long the follower waits in one poll; also how often it looks at its stop flag.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How often the follower asks again for the topic's partitions while the brokers do not
/// answer.
const METADATA_RETRY: Duration = Duration::from_secs(1);
/// Records read and not yet applied: the follower waits when the control plane is this far
/// behind.
const CHANNEL_CAPACITY: usize = 256;
/// Version of the record envelope; a record of another version is not applied.
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot create the Kafka {what} for the sources topic {topic}: {source}")]
    Client {
        what: &'static str,
        topic: String,
        source: KafkaError,
    },
    #[error("cannot start the sources topic's follower thread: {0}")]
    Thread(std::io::Error),
}

/// Why a change could not be written; the admin API answers 503.
#[derive(Debug, thiserror::Error)]
#[error("the cluster's sources topic {topic} did not acknowledge the change: {reason}")]
pub struct WriteError {
    topic: String,
    reason: String,
}

/// Where a record is in the topic. One source id is always in one partition (the key decides),
/// so a later offset there is a later change of that source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub partition: i32,
    pub offset: i64,
}

impl Position {
    /// Whether a record at `self` is older than (or the same as) one applied at `applied`.
    pub fn not_after(self, applied: Position) -> bool {
        self.partition == applied.partition && self.offset <= applied.offset
    }
}

/// What the follower hands to the control plane.
pub enum Update {
    /// A source's latest state: `Ok(None)` deleted, `Err` a record this node cannot read (the
    /// reason never holds the value).
    Record {
        id: String,
        record: Result<Option<ApiRecord>, String>,
        at: Position,
    },
    /// Every partition was read to its end once: the node has the cluster's sources.
    CaughtUp,
}

/// The value of a record.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    version: u32,
    source: ApiRecord,
}

/// The producer of admin changes and the follower thread.
pub struct Cluster {
    topic: String,
    write_timeout: Duration,
    producer: FutureProducer,
    /// Tells the follower thread to end; it looks at it after every poll.
    stop: Arc<AtomicBool>,
}

impl Cluster {
    /// Creates the producer and starts the follower; nothing waits for the brokers here.
    pub fn start(
        settings: &ClusterSettings,
    ) -> Result<(Cluster, mpsc::Receiver<Update>), ClusterError> {
        let client_err = |what, source| ClusterError::Client {
            what,
            topic: settings.sources_topic.clone(),
            source,
        };
        let mut base = ClientConfig::new();
        for (k, v) in settings.connection.properties() {
            base.set(k, v);
        }
        base.set("client.id", "siemgate-control");
        let timeout_ms = settings
            .write_timeout
            .as_millis()
            .clamp(1, i32::MAX as u128);
        let producer: FutureProducer = base
            .clone()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "0")
            .set("message.timeout.ms", timeout_ms.to_string())
            .create()
            .map_err(|e| client_err("producer", e))?;
        // Partitions are assigned, not subscribed: the group id is never joined and nothing is
        // committed (librdkafka only wants one to exist); unique, so no two nodes share one.
        let group = format!("siemgate-control-{}", uuid::Uuid::new_v4());
        let consumer: BaseConsumer = base
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .create()
            .map_err(|e| client_err("consumer", e))?;
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let stop = Arc::new(AtomicBool::new(false));
        let follower = Follower {
            consumer,
            topic: settings.sources_topic.clone(),
            tx,
            stop: stop.clone(),
        };
        // Not joined: it ends by itself once stopped (or once the receiver is gone).
        std::thread::Builder::new()
            .name("siemgate-sources".to_owned())
            .spawn(move || follower.run())
            .map_err(ClusterError::Thread)?;
        Ok((
            Cluster {
                topic: settings.sources_topic.clone(),
                write_timeout: settings.write_timeout,
                producer,
                stop,
            },
            rx,
        ))
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Writes each `(id, record)` (`None`: a tombstone) and waits for the brokers'
    /// acknowledgements: the position of every record, in the given order, or the first
    /// failure. Records acknowledged before a failure stay written (each node applies them).
    pub async fn write(
        &self,
        changes: &[(&str, Option<&ApiRecord>)],
    ) -> Result<Vec<Position>, WriteError> {
        let fail = |reason: String| WriteError {
            topic: self.topic.clone(),
            reason,
        };
        let mut pending = Vec::with_capacity(changes.len());
        for (id, record) in changes {
            let value = match record {
                Some(r) => Some(encode(r).map_err(|e| fail(e.to_string()))?),
                None => None,
            };
            let mut rec = FutureRecord::<str, [u8]>::to(&self.topic).key(id);
            if let Some(v) = &value {
                rec = rec.payload(v.as_slice());
            }
            let delivery = self
                .producer
                .send_result(rec)
                .map_err(|(e, _)| fail(e.to_string()))?;
            pending.push(delivery);
        }
        // librdkafka reports every record within message.timeout.ms; the margin covers the
        // report's way back.
        let all = async {
            let mut out = Vec::with_capacity(pending.len());
            for d in pending {
                match d.await {
                    Ok(Ok(d)) => out.push(Position {
                        partition: d.partition,
                        offset: d.offset,
                    }),
                    Ok(Err((e, _))) => return Err(fail(e.to_string())),
                    Err(_) => return Err(fail("the producer was dropped".to_owned())),
                }
            }
            Ok(out)
        };
        match tokio::time::timeout(self.write_timeout + Duration::from_secs(1), all).await {
            Ok(r) => r,
            Err(_) => Err(fail(format!(
                "no acknowledgement within {:?}",
                self.write_timeout
            ))),
        }
    }

    /// Tells the follower to stop; it ends after its current poll. Nothing is left to flush:
    /// every change was answered only once the brokers had it.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The follower thread's state.
struct Follower {
    consumer: BaseConsumer,
    topic: String,
    tx: mpsc::Sender<Update>,
    stop: Arc<AtomicBool>,
}

impl Follower {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.tx.is_closed()
    }

    fn run(self) {
        let Some(partitions) = self.partitions() else {
            return;
        };
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            if let Err(e) = tpl.add_partition_offset(&self.topic, *p, Offset::Beginning) {
                tracing::error!(topic = %self.topic, error = %e, "cannot follow the sources topic");
                return;
            }
        }
        if let Err(e) = self.consumer.assign(&tpl) {
            tracing::error!(topic = %self.topic, error = %e, "cannot follow the sources topic");
            return;
        }
        let mut at_end: HashSet<i32> = HashSet::new();
        let mut caught_up = false;
        let mut last_error: Option<String> = None;
        while !self.stopped() {
            let update = match self.consumer.poll(POLL_INTERVAL) {
                None => continue,
                Some(Ok(m)) => {
                    last_error = None;
                    let at = Position {
                        partition: m.partition(),
                        offset: m.offset(),
                    };
                    let Some(id) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                        tracing::warn!(topic = %self.topic, partition = at.partition, offset = at.offset, "a record of the sources topic has no source id as key; skipped");
                        continue;
                    };
                    Update::Record {
                        id: id.to_owned(),
                        record: decode(id, m.payload()),
                        at,
                    }
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    if caught_up || !at_end.insert(p) || at_end.len() < partitions.len() {
                        continue;
                    }
                    caught_up = true;
                    Update::CaughtUp
                }
                Some(Err(e)) => {
                    // Broker trouble: librdkafka reconnects by itself; say it once per spell.
                    let text = e.to_string();
                    if last_error.as_deref() != Some(text.as_str()) {
                        tracing::warn!(topic = %self.topic, error = %text, "reading the cluster's sources topic failed; retrying");
                        last_error = Some(text);
                    }
                    continue;
                }
            };
            if !self.hand_over(update) {
                return;
            }
        }
    }

    /// Sends `update`, waiting while the channel is full; false once stopped.
    fn hand_over(&self, mut update: Update) -> bool {
        loop {
            match self.tx.try_send(update) {
                Ok(()) => return true,
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
                Err(mpsc::error::TrySendError::Full(u)) => {
                    if self.stopped() {
                        return false;
                    }
                    update = u;
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    /// The topic's partitions, asked again until the brokers answer; `None` once stopped.
    fn partitions(&self) -> Option<Vec<i32>> {
        let mut said = false;
        loop {
            if self.stopped() {
                return None;
            }
            let problem = match self
                .consumer
                .fetch_metadata(Some(&self.topic), Duration::from_secs(5))
            {
                Ok(md) => match md.topics().iter().find(|t| t.name() == self.topic) {
                    Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                        return Some(t.partitions().iter().map(|p| p.id()).collect());
                    }
                    Some(t) => match t.error() {
                        Some(e) => format!("{:?}", rdkafka::error::RDKafkaErrorCode::from(e)),
                        None => "the topic has no partitions".to_owned(),
                    },
                    None => "the topic does not exist".to_owned(),
                },
                Err(e) => e.to_string(),
            };
            if !said {
                tracing::warn!(topic = %self.topic, problem = %problem, "cannot read the cluster's sources topic yet (it must exist, with cleanup.policy=compact); retrying");
                said = true;
            }
            std::thread::sleep(METADATA_RETRY);
        }
    }
}

/// A record's value: `None` (a tombstone) is a deletion.
fn decode(id: &str, payload: Option<&[u8]>) -> Result<Option<ApiRecord>, String> {
    let Some(bytes) = payload else {
        return Ok(None);
    };
    // Where it went wrong, never serde's message: that may quote a value (a secret).
    let env: Envelope = serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "not a source record ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        )
    })?;
    if env.version != VERSION {
        return Err(format!(
            "record version {} is not one this siemgate reads ({VERSION})",
            env.version
        ));
    }
    if env.source.id() != id {
        return Err("the record's source id is not its key".to_owned());
    }
    Ok(Some(env.source))
}

/// The value written for `record`.
pub fn encode(record: &ApiRecord) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&Envelope {
        version: VERSION,
        source: record.clone(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn record(id: &str) -> ApiRecord {
        ApiRecord {
            definition: serde_json::json!({"id": id, "auth": {"scheme": "token", "secret": "s3cr3t-value"}, "sinks": ["out"]}),
            created_at: 1,
            updated_at: 2,
            grace: None,
        }
    }

    #[test]
    fn records_round_trip_and_tombstones_are_deletions() {
        let bytes = encode(&record("a")).unwrap();
        let back = decode("a", Some(&bytes)).unwrap().unwrap();
        assert_eq!(back, record("a"));
        assert_eq!(decode("a", None).unwrap(), None);
    }

    #[test]
    fn unreadable_records_are_refused_without_their_value() {
        let bytes = encode(&record("a")).unwrap();
        assert!(decode("b", Some(&bytes)).unwrap_err().contains("key"));
        let other = String::from_utf8(bytes)
            .unwrap()
            .replace("\"version\":1", "\"version\":9");
        assert!(decode("a", Some(other.as_bytes()))
            .unwrap_err()
            .contains("version 9"));
        let err = decode("a", Some(b"{\"version\":1,\"source\":\"s3cr3t-value\"}")).unwrap_err();
        assert!(!err.contains("s3cr3t"), "{err}");
    }

    #[test]
    fn a_later_offset_in_the_same_partition_is_a_later_change() {
        let p = |partition, offset| Position { partition, offset };
        assert!(p(0, 4).not_after(p(0, 4)));
        assert!(p(0, 3).not_after(p(0, 4)));
        assert!(!p(0, 5).not_after(p(0, 4)));
        assert!(!p(1, 3).not_after(p(0, 4)));
    }
}
