//! Dead letters end to end, on the real binary: an HTTP destination (a loopback receiver)
//! refuses an event for good (400), the event waits in the sink's dead letters (file, admin API,
//! `siemgate_dead_letters_waiting`); once the destination is fixed, a replay through the admin
//! API delivers it exactly once (a second replay sends nothing), the replay is audited and
//! counted; a purge is audited and counted too; and the marks survive a restart (the file is
//! the state: a restarted gateway counts what still waits and replays only that). With a Kafka
//! queue (librdkafka's mock cluster), a replay goes back through the sink's topic: produced,
//! consumed by the sink's delivery worker, and delivered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/http_rx.rs"]
mod http_rx;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::binary::Process;
use common::*;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use http_rx::{Receiver, Reply};
use serde_json::{json, Value};

const TOKEN: &str = "dead-letter-source-token";
const ADMIN: &str = "dead-letter-admin-token";
const LOG: &[(&str, &str)] = &[("SIEMGATE_LOG", "info")];

fn config(url: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
plaintext = true
shutdown_grace = "5s"
data_dir = '{{dir}}/data'
[metrics]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[[admin.tokens]]
name = "ops"
token = "{ADMIN}"

[[sinks]]
id = "hook"
type = "http"
url = "{url}"
request_timeout = "5s"
dead_letter_path = '{{dir}}/dead/hook.ndjson'
[sinks.batch]
linger = "0ms"

[[sources]]
id = "gen"
vendor = "generic"
sinks = ["hook"]
auth = {{ scheme = "token", secret = "{TOKEN}" }}
"#
    )
}

async fn admin(addr: SocketAddr, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let a = admin_answer(addr, method, path, body).await;
    let v = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
    (a.status.as_u16(), v)
}

async fn admin_answer(addr: SocketAddr, method: Method, path: &str, body: Option<Value>) -> Answer {
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .unwrap();
    send(addr, req).await
}

async fn gauge(metrics: SocketAddr, name: &str) -> f64 {
    metric(&metrics_text(metrics).await, name, &[("sink", "hook")]).unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_event_is_replayed_once_after_the_destination_is_fixed() {
    let rx = Receiver::start(vec![]).await;
    rx.set_default(Reply::status(400));
    let dir = tempfile::tempdir().unwrap();
    let mut proc = Process::start(dir.path(), &config(&rx.url("/in")), LOG);
    let [hooks, metrics, admin_addr] = proc.wait_ready(["hooks", "metrics", "admin"]);

    let body = r#"[{"id":"refused-1","severity":"high","title":"Refused once"}]"#;
    let a = send(hooks, post(hooks, "gen", &[("authorization", TOKEN)], body)).await;
    assert_eq!(a.status, StatusCode::OK);
    eventually_async("the event is dead-lettered", || async {
        gauge(metrics, "siemgate_dead_letters_waiting").await == 1.0
    })
    .await;
    assert_eq!(rx.count(), 1, "a 400 is not retried");
    assert!(rx.accepted().is_empty());

    let (status, list) = admin(
        admin_addr,
        Method::GET,
        "/api/v1/sinks/hook/dead-letters",
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["waiting"], 1);
    let entry = &list["entries"][0];
    assert_eq!(entry["event_id"], "refused-1", "{list}");
    assert_eq!(entry["title"], "Refused once");
    assert_eq!(entry["vendor"], "generic");
    assert_eq!(entry["reason"], "receiver answered 400 Bad Request");
    let n = entry["entry"].as_u64().unwrap();

    // The destination is fixed; the replay delivers the event, byte for byte, once.
    rx.set_default(Reply::status(200));
    let (status, r) = admin(
        admin_addr,
        Method::POST,
        "/api/v1/sinks/hook/dead-letters/replay",
        Some(json!({"all": true})),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["replayed"], 1);
    eventually("the replayed event delivered", || rx.accepted().len() == 1).await;
    assert_eq!(rx.accepted_ids(), ["refused-1"]);
    assert_eq!(
        rx.accepted()[0].body,
        rx.requests()[0].body,
        "the same bytes as the refused request"
    );
    let (_, again) = admin(
        admin_addr,
        Method::POST,
        "/api/v1/sinks/hook/dead-letters/replay",
        Some(json!({"entries": [n]})),
    )
    .await;
    assert_eq!(again["replayed"], 0);
    assert_eq!(again["skipped"], 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.accepted_ids(), ["refused-1"], "delivered once");
    eventually_async("delivered counted", || async {
        metric(
            &metrics_text(metrics).await,
            "siemgate_events_delivered_total",
            &[("sink", "hook")],
        ) == Some(1.0)
    })
    .await;
    assert_eq!(gauge(metrics, "siemgate_dead_letters_waiting").await, 0.0);
    assert_eq!(
        gauge(metrics, "siemgate_dead_letter_replays_total").await,
        1.0
    );
    let (_, one) = admin(
        admin_addr,
        Method::GET,
        &format!("/api/v1/sinks/hook/dead-letters/{n}"),
        None,
    )
    .await;
    assert_eq!(one["state"], "replayed");

    // Another refusal, purged: it is never replayed, also not after a restart.
    rx.set_default(Reply::status(422));
    let body = r#"[{"id":"refused-2","severity":"low"}]"#;
    let a = send(hooks, post(hooks, "gen", &[("authorization", TOKEN)], body)).await;
    assert_eq!(a.status, StatusCode::OK);
    eventually_async("the second event is dead-lettered", || async {
        gauge(metrics, "siemgate_dead_letters_waiting").await == 1.0
    })
    .await;
    rx.set_default(Reply::status(200));
    let (status, p) = admin(
        admin_addr,
        Method::POST,
        "/api/v1/sinks/hook/dead-letters/purge",
        Some(json!({"filter": {"reason": "422"}})),
    )
    .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["purged"], 1);
    assert_eq!(
        gauge(metrics, "siemgate_dead_letter_purges_total").await,
        1.0
    );
    assert_eq!(gauge(metrics, "siemgate_dead_letters_waiting").await, 0.0);

    // The audit line is written before the answer; the test's reader thread may not have
    // taken it from the pipe yet.
    let audited = |stderr: &str, action: &str| {
        stderr.lines().any(|l| {
            l.contains("siemgate::audit")
                && l.contains(&format!("action=\"{action}\""))
                && l.contains("token=\"ops\"")
                && l.contains("sink=\"hook\"")
        })
    };
    eventually("the purge audit line", || {
        audited(&proc.stderr_text(), "sink.dead_letters.purge")
    })
    .await;
    let stderr = proc.stderr_text();
    for action in ["sink.dead_letters.replay", "sink.dead_letters.purge"] {
        assert!(
            audited(&stderr, action),
            "no audit line for {action}:\n{stderr}"
        );
    }
    // A third refusal stays waiting across the restart.
    rx.set_default(Reply::status(400));
    let body = r#"[{"id":"refused-3","severity":"low"}]"#;
    let a = send(hooks, post(hooks, "gen", &[("authorization", TOKEN)], body)).await;
    assert_eq!(a.status, StatusCode::OK);
    eventually_async("the third event is dead-lettered", || async {
        gauge(metrics, "siemgate_dead_letters_waiting").await == 1.0
    })
    .await;
    proc.signal("-TERM");
    assert!(proc.wait_exit(Duration::from_secs(20)).success());

    // The marks are in the file: a new process counts what waits, and replays only that.
    rx.set_default(Reply::status(200));
    let mut proc = Process::spawn(dir.path(), LOG);
    let [metrics, admin_addr] = proc.wait_ready(["metrics", "admin"]);
    let (_, list) = admin(
        admin_addr,
        Method::GET,
        "/api/v1/sinks/hook/dead-letters?state=all",
        None,
    )
    .await;
    let states: Vec<&str> = list["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["waiting", "purged", "replayed"], "{list}");
    assert_eq!(list["waiting"], 1);
    assert_eq!(gauge(metrics, "siemgate_dead_letters_waiting").await, 1.0);
    let (_, r) = admin(
        admin_addr,
        Method::POST,
        "/api/v1/sinks/hook/dead-letters/replay",
        Some(json!({"all": true})),
    )
    .await;
    assert_eq!(r["replayed"], 1, "only refused-3: {r}");
    assert_eq!(gauge(metrics, "siemgate_dead_letters_waiting").await, 0.0);
    eventually("refused-3 delivered", || rx.accepted().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.accepted_ids(), ["refused-1", "refused-3"]);
    proc.signal("-TERM");
    assert!(proc.wait_exit(Duration::from_secs(20)).success());
}

/// `config` with the `hook` sink's queue on Kafka at `brokers` (topic `siemgate.hook`).
#[cfg(feature = "kafka")]
fn kafka_config(url: &str, brokers: &str) -> String {
    config(url).replace(
        "[sinks.batch]",
        &format!(
            "[sinks.queue]\ntype = \"kafka\"\nbrokers = [{}]\n[sinks.batch]",
            toml_list(brokers.split(','))
        ),
    )
}

/// How many records the brokers hold in the one-partition topic `siemgate.hook`.
#[cfg(feature = "kafka")]
fn hook_topic_records(brokers: &str) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    c.fetch_watermarks("siemgate.hook", 0, Duration::from_secs(5))
        .unwrap()
        .1
}

/// A gateway (the real binary) whose `hook` sink has its queue on a one-broker mock cluster
/// (topic `siemgate.hook`, `queue_keys` added to `[sinks.queue]`), with one event dead-lettered
/// through it: produced (before its 200), consumed, refused by the receiver with 400.
#[cfg(feature = "kafka")]
struct KafkaHook {
    mock: rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    brokers: String,
    rx: Receiver,
    proc: Process,
    metrics: SocketAddr,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

#[cfg(feature = "kafka")]
impl KafkaHook {
    async fn dead_letter(queue_keys: &str, body: &str) -> KafkaHook {
        let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
        mock.create_topic("siemgate.hook", 1, 1).unwrap();
        let brokers = mock.bootstrap_servers();
        let rx = Receiver::start(vec![]).await;
        rx.set_default(Reply::status(400));
        let dir = tempfile::tempdir().unwrap();
        let cfg = kafka_config(&rx.url("/in"), &brokers)
            .replace("[sinks.batch]", &format!("{queue_keys}\n[sinks.batch]"));
        let mut proc = Process::start(dir.path(), &cfg, LOG);
        let [hooks, metrics, admin] = proc.wait_ready(["hooks", "metrics", "admin"]);
        let a = send(
            hooks,
            post(hooks, "gen", &[("authorization", TOKEN)], body.to_owned()),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(
            hook_topic_records(&brokers),
            1,
            "the 200 came after the produce"
        );
        eventually_async("the event is dead-lettered", || async {
            gauge(metrics, "siemgate_dead_letters_waiting").await == 1.0
        })
        .await;
        assert_eq!(rx.count(), 1, "a 400 is not retried");
        KafkaHook {
            mock,
            brokers,
            rx,
            proc,
            metrics,
            admin,
            _dir: dir,
        }
    }
}

#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_replayed_into_a_kafka_queue_reaches_the_sink_through_the_topic() {
    let body = r#"[{"id":"kafka-refused","severity":"high","title":"Refused through Kafka"}]"#;
    // Every part bound: the mock cluster and the directory live to the end.
    let KafkaHook {
        mock: _mock,
        brokers,
        rx,
        mut proc,
        metrics,
        admin: admin_addr,
        _dir,
    } = KafkaHook::dead_letter("", body).await;

    rx.set_default(Reply::status(200));
    let (status, r) = admin(
        admin_addr,
        Method::POST,
        "/api/v1/sinks/hook/dead-letters/replay",
        Some(json!({"all": true})),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["replayed"], 1);
    // Back on the topic first, then from there to the destination.
    assert_eq!(hook_topic_records(&brokers), 2, "the replay was produced");
    eventually("the replayed event delivered", || rx.accepted().len() == 1).await;
    assert_eq!(rx.accepted_ids(), ["kafka-refused"]);
    assert_eq!(
        rx.accepted()[0].body,
        rx.requests()[0].body,
        "the same bytes as the refused request"
    );
    assert_eq!(gauge(metrics, "siemgate_dead_letters_waiting").await, 0.0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.accepted_ids(), ["kafka-refused"], "delivered once");
    proc.signal("-TERM");
    assert!(proc.wait_exit(Duration::from_secs(20)).success());
}

/// The brokers down during a replay into a Kafka queue: the replay answers 503 with
/// Retry-After within about the queue's `produce_timeout` and says what became of the entry:
/// it stays waiting, and neither a second replay nor a purge takes it while the producer holds
/// it. Once the brokers are back the producer's copy is delivered, the entry is marked
/// replayed, and the event reaches the destination exactly once.
#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_the_brokers_do_not_confirm_in_time_answers_503_and_is_never_sent_twice() {
    let body = r#"[{"id":"kafka-late","severity":"high","title":"Confirmed late"}]"#;
    let KafkaHook {
        mock: m,
        brokers,
        rx,
        mut proc,
        metrics,
        admin: admin_addr,
        _dir,
    } = KafkaHook::dead_letter("produce_timeout = \"1s\"", body).await;
    rx.set_default(Reply::status(200));

    m.broker_down(1).unwrap();
    let replay = "/api/v1/sinks/hook/dead-letters/replay";
    let started = std::time::Instant::now();
    let a = admin_answer(admin_addr, Method::POST, replay, Some(json!({"all": true}))).await;
    // A bound, not a speed: the replay does not wait for the brokers to come back.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the replay waited {:?}",
        started.elapsed()
    );
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", a.body);
    assert_eq!(a.headers["retry-after"], "1");
    let r = a.json();
    assert_eq!(
        (&r["replayed"], &r["unconfirmed"], &r["remaining"]),
        (&json!(0), &json!(1), &json!(0)),
        "{r}"
    );
    let error = r["error"].as_str().unwrap();
    assert!(
        error.contains("did not confirm") && error.contains("produce_timeout"),
        "{error}"
    );
    let (_, list) = admin(
        admin_addr,
        Method::GET,
        "/api/v1/sinks/hook/dead-letters",
        None,
    )
    .await;
    assert_eq!(list["waiting"], 1, "{list}");
    let n = list["entries"][0]["entry"].as_u64().unwrap();
    assert_eq!(list["entries"][0]["state"], "waiting");

    // While the producer holds it, no replay sends it again and no purge takes it.
    let (status, again) = admin(
        admin_addr,
        Method::POST,
        replay,
        Some(json!({"entries": [n]})),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (&again["replayed"], &again["unconfirmed"]),
        (&json!(0), &json!(1)),
        "{again}"
    );
    let (status, p) = admin(
        admin_addr,
        Method::POST,
        "/api/v1/sinks/hook/dead-letters/purge",
        Some(json!({"all": true})),
    )
    .await;
    assert_eq!((status, &p["purged"]), (200, &json!(0)), "{p}");

    m.broker_up(1).unwrap();
    poll_until(
        "the late confirmation marks the entry replayed",
        Duration::from_secs(30),
        || async {
            let (_, one) = admin(
                admin_addr,
                Method::GET,
                &format!("/api/v1/sinks/hook/dead-letters/{n}"),
                None,
            )
            .await;
            one["state"] == "replayed"
        },
    )
    .await;
    eventually("the replayed event delivered", || rx.accepted().len() == 1).await;
    assert_eq!(gauge(metrics, "siemgate_dead_letters_waiting").await, 0.0);
    assert_eq!(
        gauge(metrics, "siemgate_dead_letter_replays_total").await,
        1.0
    );
    let (status, r) = admin(admin_addr, Method::POST, replay, Some(json!({"all": true}))).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (&r["replayed"], &r["unconfirmed"]),
        (&json!(0), &json!(0)),
        "{r}"
    );
    assert_eq!(
        hook_topic_records(&brokers),
        2,
        "the event, and its replay once"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.accepted_ids(), ["kafka-late"], "delivered once");
    proc.signal("-TERM");
    assert!(proc.wait_exit(Duration::from_secs(20)).success());
}
