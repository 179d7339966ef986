//! A cluster's shared control plane end to end: real `siemgate serve` processes with
//! `[cluster]` on one librdkafka mock cluster (real Kafka protocol on 127.0.0.1 ports, in this
//! test process), each with its own data directory, admin API and file sink:
//!
//! * a source created through one node's admin API accepts requests on the other node within a
//!   bounded wait, and a deletion on one node makes the other answer 404;
//! * a secret reset on one node makes the other refuse the old secret and accept the new one;
//! * a node started later has every existing source (and none of the deleted ones) as soon as
//!   it serves: it reads the topic to its end first;
//! * with the brokers down, an admin change answers 503 with Retry-After and is not applied,
//!   while the sources that exist keep accepting requests; once the brokers are back, changes
//!   work again;
//! * no secret ever appears in a node's stderr (debug logging).
#![cfg(feature = "kafka")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::binary::Process;
use common::{read_lines, send, Answer};
use http::{Request, StatusCode};
use http_body_util::Full;
use rdkafka::mocking::MockCluster;
use serde_json::{json, Value};

const OPS: &str = "ops-admin-token-1c9e5a7b3d2f4e60";
const TOPIC: &str = "siemgate.sources";
/// Bound on a change reaching another node ("within seconds"), generous for a loaded 2-core
/// machine.
const SPREAD: Duration = Duration::from_secs(15);
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
const LOG: &[(&str, &str)] = &[("SIEMGATE_LOG", "debug")];

type Mock = MockCluster<'static, rdkafka::producer::DefaultProducerContext>;

fn mock(brokers: i32) -> Mock {
    let m = MockCluster::new(brokers).unwrap();
    m.create_topic(TOPIC, 2, brokers.min(3)).unwrap();
    m
}

/// One node: plaintext hooks, metrics and admin listeners on 127.0.0.1:0, a file sink `out` at
/// `{dir}/out.ndjson`, and `[cluster]` on `brokers`.
struct Node {
    dir: tempfile::TempDir,
    proc: Option<Process>,
    hooks: SocketAddr,
    admin: SocketAddr,
}

impl Node {
    fn start(brokers: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let brokers = common::toml_list(brokers.split(','));
        let config = format!(
            r#"
[server]
listen = "127.0.0.1:0"
plaintext = true
shutdown_grace = "5s"
data_dir = '{d}/data'

[metrics]
listen = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:0"
[[admin.tokens]]
name = "ops"
token = "{OPS}"

[cluster]
brokers = [{brokers}]
write_timeout = "3s"
catch_up_timeout = "20s"

[[sinks]]
id = "out"
type = "file"
path = '{d}/out.ndjson'
fsync = "never"
[sinks.batch]
linger = "0ms"
"#
        );
        let mut p = Process::start(dir.path(), &config, LOG);
        let [hooks, admin] = p.wait_ready(["hooks", "admin"]);
        Node {
            dir,
            proc: Some(p),
            hooks,
            admin,
        }
    }

    fn stderr(&self) -> String {
        self.proc
            .as_ref()
            .map(Process::stderr_text)
            .unwrap_or_default()
    }

    /// SIGTERM, a clean exit, and the whole stderr.
    fn stop(mut self) -> String {
        let mut p = self.proc.take().unwrap();
        p.signal("-TERM");
        let status = p.wait_exit(EXIT_TIMEOUT);
        let text = p.stderr_text();
        assert!(status.success(), "exit status {status:?}; stderr:\n{text}");
        text
    }

    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.admin))
            .header("host", self.admin.to_string())
            .header("authorization", format!("Bearer {OPS}"));
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        send(self.admin, b.body(Full::new(body)).unwrap()).await
    }

    /// Creates a token source (`Bearer ` prefix) routed to `out`; returns its secret.
    async fn create(&self, id: &str) -> String {
        let a = self
            .api(
                "POST",
                "/api/v1/sources",
                Some(json!({"id": id, "auth": {"scheme": "token", "prefix": "Bearer "}, "sinks": ["out"]})),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "create {id}: {:?}", a.body);
        a.json()["secret"].as_str().unwrap().to_owned()
    }

    /// A hook request to `source` with `token`, carrying one event `event_id`.
    async fn hook(&self, source: &str, token: &str, event_id: &str) -> StatusCode {
        let auth = format!("Bearer {token}");
        let body = format!(r#"{{"id":"{event_id}","title":"cluster test"}}"#);
        let req = common::post(self.hooks, source, &[("authorization", &auth)], body);
        send(self.hooks, req).await.status
    }

    /// Waits (bounded by [`SPREAD`]) until a hook request answers `want`; events sent while
    /// waiting are named `{event_id}-{n}`. Returns how many requests it took.
    async fn hook_until(&self, source: &str, token: &str, event_id: &str, want: StatusCode) {
        let start = Instant::now();
        let mut n = 0;
        loop {
            n += 1;
            let got = self.hook(source, token, &format!("{event_id}-{n}")).await;
            if got == want {
                return;
            }
            assert!(
                start.elapsed() < SPREAD,
                "{source} on {} still answers {got} (want {want}) after {SPREAD:?}; stderr:\n{}",
                self.hooks,
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the file sink wrote an event whose id starts with `prefix`, within the bound.
    async fn delivered(&self, prefix: &str) -> bool {
        let path = self.dir.path().join("out.ndjson");
        let start = Instant::now();
        while start.elapsed() < SPREAD {
            if read_lines(&path)
                .iter()
                .any(|l| l["id"].as_str().is_some_and(|id| id.starts_with(prefix)))
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

/// None of `secrets` is in any of `logs`.
fn assert_no_secret(logs: &[String], secrets: &[&str]) {
    for (i, log) in logs.iter().enumerate() {
        for s in secrets {
            assert!(!log.contains(s), "node {i} logged a secret:\n{log}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_made_on_one_node_answers_on_the_other_until_it_is_deleted() {
    let m = mock(3);
    let a = Node::start(&m.bootstrap_servers());
    let b = Node::start(&m.bootstrap_servers());

    let secret = a.create("shared").await;
    // On A at once: the answer came after the brokers had the record, and A applied it.
    assert_eq!(a.hook("shared", &secret, "on-a").await, StatusCode::OK);
    b.hook_until("shared", &secret, "on-b", StatusCode::OK)
        .await;
    assert!(b.delivered("on-b-").await, "B's sink never got the event");
    // B shows it through its own admin API, without the secret.
    let g = b.api("GET", "/api/v1/sources/shared", None).await;
    assert_eq!(g.status, StatusCode::OK);
    assert_eq!(g.json()["origin"], "api");
    assert!(!String::from_utf8_lossy(&g.body).contains(&secret));

    let d = a.api("DELETE", "/api/v1/sources/shared", None).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT, "{:?}", d.body);
    assert_eq!(
        a.hook("shared", &secret, "gone-a").await,
        StatusCode::NOT_FOUND
    );
    b.hook_until("shared", &secret, "gone-b", StatusCode::NOT_FOUND)
        .await;
    let g = b.api("GET", "/api/v1/sources/shared", None).await;
    assert_eq!(g.status, StatusCode::NOT_FOUND);

    let logs = [a.stop(), b.stop()];
    assert_no_secret(&logs, &[&secret, OPS]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_reset_on_one_node_replaces_the_old_secret_on_every_node() {
    let m = mock(3);
    let a = Node::start(&m.bootstrap_servers());
    let b = Node::start(&m.bootstrap_servers());

    let old = a.create("rot").await;
    b.hook_until("rot", &old, "old-on-b", StatusCode::OK).await;

    let r = b
        .api("POST", "/api/v1/sources/rot/reset-secret", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let new = r.json()["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(
        b.hook("rot", &old, "old-after-b").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(b.hook("rot", &new, "new-on-b").await, StatusCode::OK);

    a.hook_until("rot", &old, "old-on-a", StatusCode::FORBIDDEN)
        .await;
    assert_eq!(a.hook("rot", &new, "new-on-a").await, StatusCode::OK);
    assert!(a.delivered("new-on-a").await);

    let logs = [a.stop(), b.stop()];
    assert_no_secret(&logs, &[&old, &new, OPS]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_later_serves_the_existing_sources_from_its_first_request() {
    let m = mock(3);
    let a = Node::start(&m.bootstrap_servers());
    let kept = a.create("kept").await;
    let dropped = a.create("dropped").await;
    let mut reset = a.create("reset").await;
    let old_reset = reset.clone();
    let r = a
        .api("POST", "/api/v1/sources/reset/reset-secret", None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    reset = r.json()["secret"].as_str().unwrap().to_owned();
    let d = a.api("DELETE", "/api/v1/sources/dropped", None).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);

    // C read the topic to its end before its listeners served: no waiting here.
    let c = Node::start(&m.bootstrap_servers());
    assert_eq!(c.hook("kept", &kept, "c-kept").await, StatusCode::OK);
    assert_eq!(c.hook("reset", &reset, "c-reset").await, StatusCode::OK);
    assert_eq!(
        c.hook("reset", &old_reset, "c-old").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.hook("dropped", &dropped, "c-dropped").await,
        StatusCode::NOT_FOUND
    );
    let list = c.api("GET", "/api/v1/sources", None).await;
    assert_eq!(list.status, StatusCode::OK);
    let mut ids: Vec<String> = list.json()["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["kept", "reset"]);
    assert!(c.delivered("c-kept").await);

    let logs = [a.stop(), c.stop()];
    assert_no_secret(&logs, &[&kept, &dropped, &reset, &old_reset, OPS]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_brokers_down_changes_answer_503_and_existing_sources_keep_working() {
    let m = mock(1);
    let a = Node::start(&m.bootstrap_servers());
    let secret = a.create("live").await;

    m.broker_down(1).unwrap();
    let started = Instant::now();
    let r = a
        .api(
            "POST",
            "/api/v1/sources",
            Some(json!({"id": "late", "auth": {"scheme": "token", "prefix": "Bearer "}, "sinks": ["out"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert!(r.headers.contains_key("retry-after"));
    assert!(
        r.json()["error"].as_str().unwrap().contains(TOPIC),
        "{:?}",
        r.body
    );
    // Answered within the write timeout (3 s) and its margin, not held for ever.
    assert!(started.elapsed() < Duration::from_secs(10));
    let g = a.api("GET", "/api/v1/sources/late", None).await;
    assert_eq!(
        g.status,
        StatusCode::NOT_FOUND,
        "a refused change was applied"
    );
    let d = a.api("DELETE", "/api/v1/sources/live", None).await;
    assert_eq!(d.status, StatusCode::SERVICE_UNAVAILABLE);

    // The existing source still takes requests.
    assert_eq!(a.hook("live", &secret, "during").await, StatusCode::OK);
    assert!(a.delivered("during").await);

    m.broker_up(1).unwrap();
    let start = Instant::now();
    loop {
        let r = a
            .api(
                "POST",
                "/api/v1/sources",
                Some(json!({"id": "late", "auth": {"scheme": "token", "prefix": "Bearer "}, "sinks": ["out"]})),
            )
            .await;
        if r.status == StatusCode::CREATED {
            break;
        }
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "changes still refused after the broker came back; stderr:\n{}",
            a.stderr()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let logs = [a.stop()];
    assert_no_secret(&logs, &[&secret, OPS]);
}
