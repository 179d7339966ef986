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

use std::path::Path;

use serde_json::Value;

mod common;

use common::binary::{run_with_stdin, Run};
use common::{mask, parse_record, repo};

/// Runs `siemgate <args>` with `stdin` as its standard input (bounded by the shared runner).
fn run(args: &[&str], stdin: &[u8]) -> Run {
    run_with_stdin(&repo(), args, stdin)
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
    let names = common::vendor_fixtures();
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
        assert_eq!(r.status.code(), Some(0), "{file}: {}", r.stderr);
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
            if parse_record(g) != parse_record(w) || g != w {
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

/// `--encoding ocsf` prints, for each fixture, one OCSF class object per event the default
/// encoding prints, in the same order and with the event id as `metadata.uid`; `--ocsf-version`
/// picks the version written. (tests/ocsf.rs validates these objects against the schemas.)
#[test]
fn ocsf_encoding_prints_one_class_object_per_event() {
    for (file, vendor) in [
        ("prisma_cloud-webhook-alert-open.json", "prisma_cloud"),
        ("wallarm-new_hits-array-2023.json", "wallarm"),
    ] {
        let body = std::fs::read(repo().join("fixtures/vendors").join(file)).unwrap();
        let plain = run(&["normalize", "--vendor", vendor], &body);
        assert_eq!(plain.status.code(), Some(0), "{file}: {}", plain.stderr);
        for version in ["1.1.0", "1.8.0"] {
            let r = run(
                &[
                    "normalize",
                    "--vendor",
                    vendor,
                    "--encoding",
                    "ocsf",
                    "--ocsf-version",
                    version,
                ],
                &body,
            );
            assert_eq!(r.status.code(), Some(0), "{file}: {}", r.stderr);
            let ids: Vec<Value> = plain
                .stdout
                .lines()
                .map(|l| parse_record(l)["id"].clone())
                .collect();
            let ocsf: Vec<Value> = r.stdout.lines().map(parse_record).collect();
            assert_eq!(ocsf.len(), ids.len(), "{file}");
            for (o, id) in ocsf.iter().zip(&ids) {
                assert_eq!(&o["metadata"]["uid"], id, "{file}");
                assert_eq!(o["metadata"]["version"], version, "{file}");
                let class = o["class_uid"].as_u64().unwrap();
                assert_eq!(
                    o["type_uid"],
                    class * 100 + o["activity_id"].as_u64().unwrap()
                );
            }
        }
    }
    let r = run(
        &["normalize", "--vendor", "generic", "--encoding", "leef"],
        b"{}",
    );
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("--encoding \"leef\""), "{}", r.stderr);
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
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    let lines: Vec<Value> = r.stdout.lines().map(parse_record).collect();
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
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
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
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("line 1, column 1") && r.stderr.contains("unknown field `titel`"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_malformed_body_exits_3_with_the_byte_offset_and_prints_nothing() {
    let body = std::fs::read(
        repo()
            .join("fixtures/vendors")
            .join(common::MALFORMED_FIXTURE),
    )
    .unwrap();
    let r = run(&["normalize", "--vendor", "wallarm"], &body);
    assert_eq!(r.status.code(), Some(3), "{}", r.stderr);
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
    assert_eq!(r.status.code(), Some(3), "{}", r.stderr);
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
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
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
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
}

/// The fenced blocks of `lang` in a Markdown page, in order.
fn fenced<'a>(page: &'a str, lang: &str) -> Vec<&'a str> {
    let open = format!("```{lang}\n");
    page.split(open.as_str())
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .collect()
}

fn vendor_pages() -> Vec<(String, String)> {
    let mut pages: Vec<(String, String)> = std::fs::read_dir(repo().join("docs/vendors"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .map(|p| {
            (
                p.file_name().unwrap().to_str().unwrap().to_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    pages.sort();
    pages
}

/// Every vendor guide's source snippet is a valid source: `siemgate check` accepts it in a
/// config with the example's `events_file` sink (its `${VAR}` secrets set to stand-ins).
#[test]
fn every_vendor_guide_source_passes_check() {
    let pages = vendor_pages();
    let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "coralogix.md",
            "generic.md",
            "immuta.md",
            "prisma-cloud-compute.md",
            "prisma-cloud.md",
            "wallarm.md"
        ]
    );
    let dir = tempfile::tempdir().unwrap();
    for (name, page) in &pages {
        let snippets = fenced(page, "toml");
        assert_eq!(snippets.len(), 1, "{name}: one source snippet");
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nplaintext = true\n[metrics]\nenabled = false\n\
             [[sinks]]\nid = \"events_file\"\ntype = \"file\"\npath = \"{}/events.ndjson\"\n{}",
            dir.path().display(),
            snippets[0]
        );
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, config).unwrap();
        let vars: Vec<String> = snippets[0]
            .split("${")
            .skip(1)
            .map(|rest| rest.split('}').next().unwrap().to_owned())
            .collect();
        let out = std::process::Command::new(common::binary::BIN)
            .args(["check", "--config", path.to_str().unwrap()])
            .envs(
                vars.iter()
                    .map(|v| (v.as_str(), "stand-in-secret-0123456789")),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Each guide's event is what `siemgate normalize` prints for the body the page names: a
/// fixture (`siemgate normalize ... < fixtures/...`), the body piped by `echo`, or the page's
/// first JSON block with its `[sources.mapping]` (Prisma Cloud Compute). Compared without
/// `received_at`, the time of the run (and `time` where it fell back to it).
#[test]
fn every_vendor_guide_shows_the_event_normalize_prints() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = Vec::new();
    for (name, page) in vendor_pages() {
        let commands = fenced(&page, "sh");
        let shown = fenced(&page, "json");
        let (args, body): (Vec<String>, Vec<u8>) = if let Some(c) = commands
            .iter()
            .find(|c| c.starts_with("siemgate normalize ") && c.contains("< fixtures/"))
        {
            let (args, file) = c.trim().split_once(" < ").unwrap();
            let args = args.split_whitespace().skip(1).map(str::to_owned).collect();
            (args, std::fs::read(repo().join(file)).unwrap())
        } else if let Some(c) = commands.iter().find(|c| c.starts_with("echo '")) {
            let (body, rest) = c["echo '".len()..].split_once('\'').unwrap();
            let args = rest.split("siemgate ").nth(1).unwrap();
            let args = args.split_whitespace().map(str::to_owned).collect();
            (args, body.as_bytes().to_vec())
        } else {
            let toml = fenced(&page, "toml")[0];
            let (_, mapping) = toml.split_once("[sources.mapping]\n").unwrap();
            let file = dir.path().join("mapping.toml");
            std::fs::write(&file, mapping).unwrap();
            let args = vec![
                "normalize".to_owned(),
                "--vendor".to_owned(),
                "generic".to_owned(),
                "--mapping".to_owned(),
                file.to_str().unwrap().to_owned(),
                "--source".to_owned(),
                "prisma-compute".to_owned(),
            ];
            (args, shown[0].as_bytes().to_vec())
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(&args, &body);
        assert_eq!(r.status.code(), Some(0), "{name}: {args:?}: {}", r.stderr);
        let events: Vec<Value> = shown
            .iter()
            .filter_map(|j| serde_json::from_str::<Value>(j).ok())
            .filter(|v| v.get("received_at").is_some())
            .collect();
        assert_eq!(events.len(), 1, "{name}: one event shown");
        let without_run_time = |v: &Value, keep_raw: bool| {
            let mut v = v.clone();
            let o = v.as_object_mut().unwrap();
            if o.get("time") == o.get("received_at") {
                o.remove("time");
            }
            o.remove("received_at");
            // A page may leave out a long `raw` (`{"...": ...}`); the rest must be as printed.
            if !keep_raw || o.get("raw").is_some_and(|r| r.get("...").is_some()) {
                o.remove("raw");
            }
            v
        };
        let want = without_run_time(&events[0], true);
        let keep_raw = want.get("raw").is_some();
        let printed: Vec<Value> = r
            .stdout
            .lines()
            .map(|l| without_run_time(&parse_record(l), keep_raw))
            .collect();
        assert!(
            printed.contains(&want),
            "{name}: the event shown is not what normalize prints:\n{}",
            r.stdout
        );
        checked.push(name);
    }
    assert_eq!(checked.len(), 6, "{checked:?}");
}
