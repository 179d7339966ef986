//! siemgate's Kafka mode end to end against a real Kafka-compatible broker, `tansu`
//! (Apache-licensed, crates.io `tansu`), instead of librdkafka's mock cluster: an intake node
//! (`serve --role intake`) and a delivery worker (`serve --role deliver`) share the sink's
//! topic on one tansu broker on 127.0.0.1 (idempotent producer, consumer group, offset commits
//! and fetches all against tansu).
//!
//! Every event answered 200 arrives at the file sink exactly once, both nodes are ready, the
//! sink's group committed an offset past every event, and below those offsets the topic holds
//! each accepted event once.
//!
//! Ignored by default: it needs a tansu binary with its in-memory storage engine
//! (`cargo install tansu --locked --features dynostore`; the default features have no storage
//! engine), which takes about 50 minutes to build on a 2-core machine. Run it with
//! `TANSU_BIN=/path/to/tansu cargo test --test kafka_tansu -- --ignored`.
#![cfg(feature = "kafka")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::*;
use http::StatusCode;

/// Four partitions: librdkafka's partitioner puts the sources' keys `demo` and `demo1` in
/// partition 0 and `demo2` in partition 2 (with three partitions all three land in 0).
const PARTITIONS: i32 = 4;
/// Bound on every wait against the broker and the nodes; generous for a noisy machine.
const BOUND: Duration = Duration::from_secs(90);

/// A tansu broker on a free loopback port, killed when dropped (a failing test included).
struct Tansu {
    bin: String,
    child: Child,
    addr: SocketAddr,
    /// Its output, for a failure message.
    log: tempfile::NamedTempFile,
}

impl Tansu {
    /// Starts `tansu broker` with in-memory storage and waits (bounded) for its port.
    fn start() -> Tansu {
        let bin = std::env::var("TANSU_BIN")
            .ok()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "TANSU_BIN is not set: this test needs the tansu broker \
                 (`cargo install tansu --locked --features dynostore`), e.g. TANSU_BIN=/path/to/tansu \
                 cargo test --test kafka_tansu -- --ignored"
                )
            });
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let url = format!("tcp://{addr}");
        let log = tempfile::NamedTempFile::new().unwrap();
        // One open file for both streams: they share its offset.
        let out = log.reopen().unwrap();
        let child = Command::new(&bin)
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {bin}: {e}"));
        let tansu = Tansu {
            bin,
            child,
            addr,
            log,
        };
        let mut tansu = tansu;
        let start = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = tansu.child.try_wait().unwrap() {
                panic!(
                    "tansu exited ({status}) before listening (it needs a storage engine: \
                     memory:// comes with `--features dynostore`): {}",
                    tansu.output()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "tansu never listened on {addr}: {}",
                tansu.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        tansu
    }

    fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// `tansu topic create` of `name` with `partitions` partitions on this broker.
    fn create_topic(&self, name: &str, partitions: i32) {
        let out = Command::new(&self.bin)
            .args(["topic", "create", name])
            .args(["--broker", &format!("tcp://{}", self.addr)])
            .args(["--partitions", &partitions.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tansu topic create {name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// 200 events posted over a few seconds to an intake node, delivered by a delivery worker
/// through a sink topic on tansu: all arrive once, and the group's offsets are committed.
#[ignore = "needs the tansu broker: TANSU_BIN=/path/to/tansu cargo test --test kafka_tansu -- --ignored"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intake_node_and_a_delivery_worker_on_a_tansu_broker_deliver_every_event_once() {
    let tansu = Tansu::start();
    tansu.create_topic(TOPIC, PARTITIONS);
    let bootstrap = tansu.bootstrap();
    let cfg = config(&bootstrap, &file_sink(), "10s", 20);
    let mut deliver = Node::start(&cfg, "deliver");
    let mut intake = Node::start(&cfg, "intake");

    // 4 clients × 50 requests, 20 ms apart: 200 events over a few seconds.
    let load = Load::start(intake.hooks(), "t", 4, 50, Duration::from_millis(20));
    let accepted = load.join().await;
    assert_eq!(
        accepted.len(),
        200,
        "intake answered 200 to only {} of 200 events: {}",
        accepted.len(),
        intake.proc.stderr_text()
    );
    wait_all_arrive("tansu", &accepted, BOUND, || deliver.sink_ids()).await;
    let got = deliver.sink_ids();
    let unique: BTreeSet<&String> = got.iter().collect();
    assert_eq!(got.len(), unique.len(), "duplicates at the sink: {got:?}");
    assert_eq!(got.len(), accepted.len(), "{got:?}");

    for (what, node) in [("intake", &intake), ("deliver", &deliver)] {
        let (status, body) = node.readyz().await;
        assert_eq!(status, StatusCode::OK, "{what} /readyz: {body}");
    }

    // The sink's group commits past every event (OffsetFetch on tansu): one offset per
    // accepted event, so the committed offsets add up to 200 once all are delivered.
    let start = Instant::now();
    let offsets = loop {
        let offsets = committed(&bootstrap, PARTITIONS);
        if offsets.iter().sum::<i64>() == 200 {
            break offsets;
        }
        assert!(
            start.elapsed() < BOUND,
            "the group committed {offsets:?} for 200 delivered events"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Below those offsets the topic holds each accepted event once (the idempotent producer
    // wrote no duplicates).
    // Reads up to those offsets, not to the partitions' high watermarks: tansu 0.6 answers
    // ListOffsets(latest) with the newest batch's base offset plus one, short of the end when
    // that batch holds several events.
    let on_topic = ids_below(&reader(&bootstrap), &offsets).concat();
    let unique: BTreeSet<&String> = on_topic.iter().collect();
    assert_eq!(on_topic.len(), unique.len(), "duplicates on the topic");
    assert_eq!(unique, accepted.iter().collect(), "the topic differs");

    intake.stop();
    deliver.stop();
    assert_eq!(deliver.sink_ids().len(), 200, "delivered again at shutdown");
}
