//! The web console in a real browser: headless Chromium driven through chromedriver (Debian's
//! `chromium` and `chromium-driver`, which `.ci/run` installs) against the real binary's admin
//! listener. An admin token signs in; an event POSTed to a source's hook appears in the
//! source's card, normalized next to its raw payload; the destination refuses it, so it shows in
//! the dead letters; the "send the vendor's test" button reaches the destination; once the
//! destination is fixed, the dead letter's Replay button delivers it once and the sink counts
//! it. A `read` token sees the same page without a single action button. The page as the admin
//! sees it is saved to `target/console.png`, and with `SIEMGATE_BLESS=1` to `docs/console.png`,
//! the README's screenshot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/http_rx.rs"]
mod http_rx;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::binary::Process;
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use http::StatusCode;
use http_rx::{Receiver, Reply};
use serde_json::json;

const TOKEN: &str = "console-source-token";
const ADMIN: &str = "console-admin-token-0123";
const VIEWER: &str = "console-viewer-token-0123";
/// Bound on every wait for the page.
const WAIT: Duration = Duration::from_secs(20);
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

fn config(url: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
plaintext = true
shutdown_grace = "5s"
data_dir = '{{dir}}/data'
[admin]
listen = "127.0.0.1:0"
[[admin.tokens]]
name = "ops"
token = "{ADMIN}"
[[admin.tokens]]
name = "viewer"
token = "{VIEWER}"
role = "read"

[[sinks]]
id = "siem"
type = "http"
url = "{url}"
request_timeout = "5s"
dead_letter_path = '{{dir}}/dead/siem.ndjson'
[sinks.batch]
linger = "0ms"

[[sources]]
id = "wallarm"
name = "Wallarm EU"
vendor = "wallarm"
sinks = ["siem"]
auth = {{ scheme = "token", secret = "{TOKEN}" }}
"#
    )
}

/// chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
            "the console test needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--window-size=1280,860",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a chromium session")
}

async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} never appeared: {e}"))
}

/// Waits until the element `css` holds `text` (the page re-renders, so it is looked up anew).
async fn wait_text(c: &Client, css: &str, text: &str) -> String {
    let deadline = Instant::now() + WAIT;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if t.contains(text) {
                    return t;
                }
                last = t;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} never showed {text:?}; last: {last:?}");
}

/// Clicks `css`, looking it up again if a refresh replaced it in between.
async fn click(c: &Client, css: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let clicked = match c.find(Locator::Css(css)).await {
            Ok(e) => e.click().await.is_ok(),
            Err(_) => false,
        };
        if clicked {
            return;
        }
        assert!(Instant::now() < deadline, "could not click {css}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sign_in(c: &Client, admin: SocketAddr, token: &str) {
    c.goto(&format!("http://{admin}/")).await.unwrap();
    let input = wait_for(c, "#token").await;
    input.send_keys(token).await.unwrap();
    click(c, "#sign-in-button").await;
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_events_tests_a_source_and_replays_a_dead_letter() {
    let rx = Receiver::start(vec![]).await;
    rx.set_default(Reply::status(400));
    let dir = tempfile::tempdir().unwrap();
    let mut proc = Process::start(dir.path(), &config(&rx.url("/siem")), &[]);
    let [hooks, admin] = proc.wait_ready(["hooks", "admin"]);

    // The page and its policy, as the browser gets them.
    let (status, html) = get_text(admin, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<title>siemgate console</title>"), "{html}");

    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;

    sign_in(&c, admin, ADMIN).await;
    wait_text(&c, "#who", "signed in as ops (admin)").await;
    wait_for(&c, r#"[data-source="wallarm"]"#).await;

    // A Wallarm hit arrives; the destination refuses it (400): it is a dead letter.
    let hit = json!([fixture_element("wallarm-new_hits-array-2023.json")]).to_string();
    let a = send(
        hooks,
        post(hooks, "wallarm", &[("x-auth-token", TOKEN)], hit),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let normalized = wait_text(
        &c,
        r#"[data-source="wallarm"] pre.normalized"#,
        "\"source\": \"wallarm\"",
    )
    .await;
    assert!(
        normalized.contains("\"vendor\": \"wallarm\""),
        "{normalized}"
    );
    assert!(!normalized.contains("\"raw\""), "raw is shown beside it");
    let raw = wait_text(&c, r#"[data-source="wallarm"] pre.raw"#, "8.8.8.8").await;
    assert!(raw.contains("1' select version();"), "{raw}");
    wait_text(&c, r#"[data-source="wallarm"]"#, "events accepted 1").await;
    let row = r#"[data-dead-letters="siem"] tr[data-entry]"#;
    wait_text(&c, row, "400").await;
    wait_text(&c, r#"[data-sink="siem"]"#, "dead letters waiting 1").await;

    // The destination is fixed; the vendor's test reaches it.
    rx.set_default(Reply::status(200));
    let before = rx.count();
    click(
        &c,
        r#"button[data-action="source-test"][data-id="wallarm"]"#,
    )
    .await;
    wait_text(&c, r#"[data-source="wallarm"] .result"#, "test ok").await;
    assert!(
        rx.count() > before,
        "the test event reached the destination"
    );
    let test = rx.requests().last().unwrap().json();
    assert_eq!(test["kind"], "test", "{test}");

    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    // Every run keeps its screenshot under target/; SIEMGATE_BLESS=1 also makes it the
    // README's, so a test run never leaves the checkout modified.
    let shot = repo().join("target/console.png");
    std::fs::write(&shot, &png).unwrap();
    if std::env::var_os("SIEMGATE_BLESS").is_some() {
        std::fs::write(repo().join("docs/console.png"), &png).unwrap();
    }

    // Replay the dead letter: delivered once, counted, and gone from the waiting list.
    click(&c, r#"button[data-action="replay"][data-sink="siem"]"#).await;
    wait_text(&c, r#"[data-sink="siem"]"#, "dead letters waiting 0").await;
    wait_text(&c, r#"[data-sink="siem"]"#, "delivered 1").await;
    let delivered: Vec<String> = rx
        .accepted()
        .iter()
        .map(|r| r.json())
        .filter(|e| e["kind"] != "test")
        .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert!(
        delivered[0].contains("hits_production_1111_202312_v_1"),
        "{delivered:?}"
    );
    assert!(c.find_all(Locator::Css(row)).await.unwrap().is_empty());

    // A read token: the same page, no action button anywhere.
    click(&c, "#sign-out").await;
    sign_in(&c, admin, VIEWER).await;
    wait_text(&c, "#who", "signed in as viewer (read)").await;
    wait_text(&c, r#"[data-sink="siem"]"#, "delivered 1").await;
    wait_for(&c, r#"[data-source="wallarm"] pre.normalized"#).await;
    let buttons = c
        .find_all(Locator::Css("button[data-action]"))
        .await
        .unwrap();
    assert!(buttons.is_empty(), "{} action buttons", buttons.len());

    c.close().await.unwrap();
    proc.signal("-TERM");
    assert!(proc.wait_exit(Duration::from_secs(20)).success());
}
