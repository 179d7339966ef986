//! `siemgate normalize` as a user runs it: the real binary with a payload on standard input.
//!
//! * Every fixture in `fixtures/vendors/` (but the malformed one), normalized with
//!   `--vendor <vendor> --source <vendor>` (the vendor is the file name up to the first `-`),
//!   prints exactly the sink records of `fixtures/expected/<stem>.expected.ndjson`, which
//!   `ingest_vendors` checks against a real gateway's file sink: the output is what the gateway
//!   would write. The comparison masks what varies per run as `ingest_vendors` does:
//!   `received_at`, and `time` where the event says it fell back to `received_at`.
//! * A generic mapping file shapes the events; a bad one is a usage error naming its key.
//! * `--redact` removes a field from `raw`; the default source id is `normalize`.
//! * The malformed Wallarm NDJSON fixture exits 3 with the byte offset and prints nothing.
//! * An unknown vendor exits 2 and lists the known ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_siemgate");
/// Bound on one run of the binary: it reads a small body and exits.
const RUN_TIMEOUT: Duration = Duration::from_secs(20);
const MALFORMED: &str = "wallarm-new_hits-ndjson-2023-asdocumented-malformed.ndjson";
const MARKER: &str = "<received_at>";
const TIME_MISSING: &str = "time: missing, received_at used";

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `siemgate <args>` with `stdin` as its standard input; waits at most [`RUN_TIMEOUT`].
fn run(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let body = stdin.to_vec();
    // A refused body may be left unread; the write then fails with a broken pipe, which is fine.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&body);
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("siemgate {args:?} did not exit within {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    writer.join().unwrap();
    Run {
        code: status.code(),
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn parse(record: &str) -> Value {
    serde_json::from_str(record).unwrap_or_else(|e| panic!("bad record {record:?}: {e}"))
}

/// One printed line as it stands in an expected file (the masking of `ingest_vendors`).
fn mask(record: &str) -> String {
    let v = parse(record);
    let received_at = v["received_at"].as_str().expect("received_at");
    // The top-level fields come before `raw`, so the first occurrence is the event's own.
    let mut out = record.replacen(
        &format!(r#""received_at":"{received_at}""#),
        &format!(r#""received_at":"{MARKER}""#),
        1,
    );
    let fell_back = v["normalization_warnings"]
        .as_array()
        .is_some_and(|w| w.iter().any(|w| w == TIME_MISSING));
    if fell_back {
        assert_eq!(v["time"], v["received_at"], "{TIME_MISSING}: {record}");
        out = out.replacen(
            &format!(r#""time":"{}""#, v["time"].as_str().unwrap()),
            &format!(r#""time":"{MARKER}""#),
            1,
        );
    }
    out
}

fn expected_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_fixture_prints_its_golden_events() {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("fixtures/vendors"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != MALFORMED)
        .collect();
    names.sort();
    let mut vendors = std::collections::BTreeSet::new();
    let mut mismatches = Vec::new();
    for file in &names {
        let vendor = file.split('-').next().unwrap();
        vendors.insert(vendor.to_owned());
        let stem = file.rsplit_once('.').map_or(file.as_str(), |(s, _)| s);
        let body = std::fs::read(repo().join("fixtures/vendors").join(file)).unwrap();
        let r = run(
            &["normalize", "--vendor", vendor, "--source", vendor],
            &body,
        );
        assert_eq!(r.code, Some(0), "{file}: {}", r.stderr);
        assert!(r.stdout.ends_with('\n'), "{file}: unterminated output");
        let got: Vec<String> = r.stdout.lines().map(mask).collect();
        let want = expected_lines(
            &repo()
                .join("fixtures/expected")
                .join(format!("{stem}.expected.ndjson")),
        );
        assert_eq!(got.len(), want.len(), "{file}: number of events");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            // Compared as JSON values and as text: the bytes are the file sink's bytes.
            if parse(g) != parse(w) || g != w {
                mismatches.push(format!("{file} event {i}:\n  got  {g}\n  want {w}"));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    let all: Vec<&str> = vendors.iter().map(String::as_str).collect();
    assert_eq!(
        all,
        ["coralogix", "generic", "immuta", "prisma_cloud", "wallarm"],
        "every vendor has a fixture"
    );
}

#[test]
fn a_mapping_file_shapes_generic_events() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("compute.toml");
    std::fs::write(
        &mapping,
        r#"
records = "/aggregatedAlerts"
id = "/_id"
time = "/time"
time_format = "%b %d, %Y %Z"
severity = "/sev"
severity_map = { P1 = "critical" }
kind = { value = "attack" }
title = "/rule"
"#,
    )
    .unwrap();
    let body = br#"{"aggregatedAlerts":[{"_id":"c-1","time":"Jan 21, 2018 UTC","sev":"p1","rule":"crypto miner","secret":"s3"}]}"#;
    let r = run(
        &[
            "normalize",
            "--vendor",
            "generic",
            "--mapping",
            mapping.to_str().unwrap(),
            "--redact",
            "/secret",
        ],
        body,
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let lines: Vec<Value> = r.stdout.lines().map(parse).collect();
    assert_eq!(lines.len(), 1, "{}", r.stdout);
    let e = &lines[0];
    assert_eq!(e["id"], "c-1");
    assert_eq!(e["source"], "normalize");
    assert_eq!(e["time"], "2018-01-21T00:00:00.000Z");
    assert_eq!(e["severity"], "critical");
    assert_eq!(e["kind"], "attack");
    assert_eq!(e["title"], "crypto miner");
    assert_eq!(e["raw"]["secret"], "[redacted]");
    assert!(!r.stdout.contains("s3\""), "{}", r.stdout);

    // A bad mapping is a usage error that names the key, and prints nothing.
    std::fs::write(&mapping, "title = \"rule\"\n").unwrap();
    let r = run(
        &[
            "normalize",
            "--vendor",
            "generic",
            "--mapping",
            mapping.to_str().unwrap(),
        ],
        body,
    );
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(
        r.stderr.contains("title: \"rule\" is not a JSON pointer"),
        "{}",
        r.stderr
    );
    std::fs::write(&mapping, "titel = \"/rule\"\n").unwrap();
    let r = run(
        &[
            "normalize",
            "--vendor",
            "generic",
            "--mapping",
            mapping.to_str().unwrap(),
        ],
        body,
    );
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("line 1, column 1") && r.stderr.contains("unknown field `titel`"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_malformed_body_exits_3_with_the_byte_offset_and_prints_nothing() {
    let body = std::fs::read(repo().join("fixtures/vendors").join(MALFORMED)).unwrap();
    let r = run(&["normalize", "--vendor", "wallarm"], &body);
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "printed {:?}", r.stdout);
    let at = r
        .stderr
        .split("malformed JSON at byte ")
        .nth(1)
        .unwrap_or_else(|| panic!("no offset in {:?}", r.stderr));
    let offset: usize = at
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(offset > 0 && offset <= body.len(), "{offset} {}", r.stderr);
    // A body that is not even UTF-8 says where too.
    let r = run(&["normalize", "--vendor", "generic"], b"{\"a\":\"\xff\"}");
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("not valid UTF-8: invalid byte at offset 6"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_unknown_vendor_is_a_usage_error() {
    let r = run(&["normalize", "--vendor", "splunk"], b"{}");
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert!(
        r.stderr.contains("unknown vendor \"splunk\"")
            && r.stderr.contains("prisma_cloud")
            && r.stderr.contains("generic"),
        "{}",
        r.stderr
    );
    // A missing --vendor is clap's usage error, with the same code.
    let r = run(&["normalize"], b"{}");
    assert_eq!(r.code, Some(2), "{}", r.stderr);
}
