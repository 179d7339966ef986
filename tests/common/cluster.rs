//! A siemgate cluster for tests: intake nodes (`serve --role intake`) and delivery workers
//! (`serve --role deliver`) as real child processes, sharing librdkafka's mock cluster
//! (real Kafka protocol on 127.0.0.1 ports, run by the test process), one sink `out` whose
//! queue is the topic `siemgate.out`; bounded senders that keep the ids answered 200; and
//! what the brokers hold: the topic's events by partition and offset, the group's committed
//! offsets.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{Offset, TopicPartitionList};

use super::binary::{write_config, Process};
use super::{get_text, metric, metrics_text, post, read_lines, send, toml_list, PLAIN_SERVER};

pub const AUTH: (&str, &str) = ("authorization", "Bearer tok");
/// Sources whose ids are the events' keys: three of them spread events over partitions.
pub const SOURCES: [&str; 3] = ["demo", "demo1", "demo2"];
pub const TOPIC: &str = "siemgate.out";
/// The sink's consumer group (`siemgate.<sink id>`).
pub const GROUP: &str = "siemgate.out";

pub fn event(id: &str) -> String {
    format!(r#"{{"id":"{id}","severity":"high","title":"cluster {id}"}}"#)
}

/// A mock cluster of `brokers` brokers with the sink's topic in `partitions` partitions.
pub fn mock(brokers: i32, partitions: i32) -> MockCluster<'static, DefaultProducerContext> {
    let m = MockCluster::new(brokers).unwrap();
    m.create_topic(TOPIC, partitions, brokers.min(3)).unwrap();
    m
}

/// The sink `out` as a file sink writing `{dir}/out.ndjson`.
pub fn file_sink() -> String {
    "[[sinks]]\nid = \"out\"\ntype = \"file\"\npath = \"{dir}/out.ndjson\"\nfsync = \"never\"\n"
        .to_owned()
}

/// The sink `out` as an HTTP sink posting each batch as NDJSON to `url`.
pub fn http_sink(url: &str) -> String {
    format!(
        "[[sinks]]\nid = \"out\"\ntype = \"http\"\nurl = \"{url}\"\nbody = \"ndjson\"\nrequest_timeout = \"5s\"\n"
    )
}

/// A config for every node of the cluster: `sink` (one of the above) queued on Kafka at
/// `brokers`, batches of at most `max_events`, and the sources of [`SOURCES`].
pub fn config(brokers: &str, sink: &str, produce_timeout: &str, max_events: usize) -> String {
    let brokers = toml_list(brokers.split(','));
    let mut c = format!(
        r#"{PLAIN_SERVER}
{sink}
[sinks.queue]
type = "kafka"
brokers = [{brokers}]
produce_timeout = "{produce_timeout}"
[sinks.batch]
linger = "0ms"
max_events = {max_events}
"#
    );
    for id in SOURCES {
        c.push_str(&format!(
            "\n[[sources]]\nid = \"{id}\"\nvendor = \"generic\"\nsinks = [\"out\"]\n\
             auth = {{ scheme = \"token\", prefix = \"Bearer \", secret = \"tok\" }}\n"
        ));
    }
    c
}

/// One `siemgate serve --role <role>` process in its own scratch directory.
pub struct Node {
    pub proc: Process,
    pub dir: tempfile::TempDir,
    /// The hooks listener; `None` on a delivery worker.
    pub hooks: Option<SocketAddr>,
    pub metrics: SocketAddr,
    /// The admin API, when the config has `[admin]`.
    pub admin: Option<SocketAddr>,
}

impl Node {
    /// Starts a node on `config` and waits for its listeners.
    pub fn start(config: &str, role: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        write_config(dir.path(), config);
        let mut proc = Process::spawn_with(
            dir.path(),
            &["--role", role],
            &[("SIEMGATE_LOG", "info,librdkafka=warn")],
        );
        let admin = config.contains("\n[admin]");
        let (hooks, metrics, admin) = match (role == "deliver", admin) {
            (true, false) => {
                let [m] = proc.wait_ready(["metrics"]);
                (None, m, None)
            }
            (true, true) => {
                let [m, a] = proc.wait_ready(["metrics", "admin"]);
                (None, m, Some(a))
            }
            (false, false) => {
                let [h, m] = proc.wait_ready(["hooks", "metrics"]);
                (Some(h), m, None)
            }
            (false, true) => {
                let [h, m, a] = proc.wait_ready(["hooks", "metrics", "admin"]);
                (Some(h), m, Some(a))
            }
        };
        Node {
            proc,
            dir,
            hooks,
            metrics,
            admin,
        }
    }

    pub fn hooks(&self) -> SocketAddr {
        self.hooks.expect("an intake node")
    }

    /// The ids in the file sink's output, in order, duplicates included.
    pub fn sink_ids(&self) -> Vec<String> {
        read_lines(&self.dir.path().join("out.ndjson"))
            .iter()
            .filter_map(|l| l["id"].as_str().map(str::to_owned))
            .collect()
    }

    pub async fn metrics_text(&self) -> String {
        metrics_text(self.metrics).await
    }

    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        metric(&self.metrics_text().await, name, labels)
    }

    pub async fn readyz(&self) -> (StatusCode, String) {
        get_text(self.metrics, "/readyz").await
    }

    /// SIGTERM, then a bounded wait for a clean exit.
    pub fn stop(&mut self) {
        self.proc.signal("-TERM");
        let status = self.proc.wait_exit(Duration::from_secs(40));
        assert!(status.success(), "{status:?}: {}", self.proc.stderr_text());
    }
}

/// Posts one event per request from a few concurrent clients, each at most `per_client`
/// times; keeps the ids answered 200. Stops by itself, or when told.
pub struct Load {
    accepted: Arc<Mutex<Vec<String>>>,
    answered: Arc<Mutex<Vec<StatusCode>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `clients` senders to `addr`, ids `<prefix><client>-<i>`, `pause` between requests.
    pub fn start(
        addr: SocketAddr,
        prefix: &str,
        clients: usize,
        per_client: usize,
        pause: Duration,
    ) -> Load {
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let answered = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|client| {
                let (accepted, answered, stop) = (accepted.clone(), answered.clone(), stop.clone());
                let prefix = prefix.to_owned();
                tokio::spawn(async move {
                    for i in 0..per_client {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let id = format!("{prefix}{client}-{i}");
                        let source = SOURCES[(client + i) % SOURCES.len()];
                        let req = post(addr, source, &[AUTH], event(&id));
                        // A request cut by a kill panics inside its own task: not accepted.
                        match tokio::spawn(send(addr, req)).await {
                            Ok(a) => {
                                if a.status == StatusCode::OK {
                                    accepted.lock().unwrap().push(id);
                                }
                                answered.lock().unwrap().push(a.status);
                            }
                            Err(_) => break,
                        }
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Load {
            accepted,
            answered,
            stop,
            tasks,
        }
    }

    pub fn accepted(&self) -> Vec<String> {
        self.accepted.lock().unwrap().clone()
    }

    /// Waits (bounded) until at least `n` requests were accepted.
    pub async fn wait_accepted(&self, n: usize) {
        let start = Instant::now();
        while self.accepted.lock().unwrap().len() < n {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "only {} requests accepted; answers: {:?}",
                self.accepted.lock().unwrap().len(),
                self.answered.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the senders; the ids accepted.
    pub async fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.join().await
    }

    /// Waits for the senders to finish; the ids accepted.
    pub async fn join(self) -> Vec<String> {
        for t in self.tasks {
            let _ = t.await;
        }
        let accepted = self.accepted.lock().unwrap().clone();
        accepted
    }
}

/// Waits (bounded) until every id of `accepted` is in what `got` returns; fails naming the
/// missing ones.
pub async fn wait_all_arrive(
    what: &str,
    accepted: &[String],
    bound: Duration,
    mut got: impl FnMut() -> Vec<String>,
) {
    let start = Instant::now();
    loop {
        let have: BTreeSet<String> = got().into_iter().collect();
        let missing: Vec<&String> = accepted.iter().filter(|id| !have.contains(*id)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < bound,
            "{what}: {} of {} accepted events never arrived: {missing:?}",
            missing.len(),
            accepted.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The id of every event on the topic, by partition and offset (read with a consumer of its
/// own, from the start to each partition's high watermark).
pub fn topic_ids(bootstrap: &str, partitions: i32) -> Vec<Vec<String>> {
    let c = reader(bootstrap);
    let high: Vec<i64> = (0..partitions)
        .map(|p| {
            c.fetch_watermarks(TOPIC, p, Duration::from_secs(10))
                .unwrap()
                .1
        })
        .collect();
    ids_below(&c, &high)
}

/// A consumer of the topic outside the sink's group.
pub fn reader(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "siemgate-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

/// The id of every event below offset `ends[p]` of each partition `p`, by partition and
/// offset, read with `c` from the start.
pub fn ids_below(c: &BaseConsumer, ends: &[i64]) -> Vec<Vec<String>> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..ends.len() {
        tpl.add_partition_offset(TOPIC, p as i32, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out: Vec<Vec<Option<String>>> = ends.iter().map(|e| vec![None; *e as usize]).collect();
    let start = Instant::now();
    let mut left: usize = ends.iter().map(|e| *e as usize).sum();
    while left > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "could not read the topic back: {left} events below {ends:?} missing"
        );
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let Some(slot) = out[m.partition() as usize].get_mut(m.offset() as usize) else {
                continue;
            };
            if slot.is_none() {
                let line: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
                *slot = Some(line["id"].as_str().unwrap().to_owned());
                left -= 1;
            }
        }
    }
    out.into_iter()
        .map(|p| p.into_iter().map(Option::unwrap).collect())
        .collect()
}

/// The sink group's committed offset per partition (0 where none was committed).
pub fn committed(bootstrap: &str, partitions: i32) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(TOPIC, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    (0..partitions)
        .map(|p| match got.find_partition(TOPIC, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => 0,
        })
        .collect()
}
