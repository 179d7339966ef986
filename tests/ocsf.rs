//! OCSF output proven by schema: every golden event of every vendor fixture (each body in
//! `fixtures/vendors/` decoded by its vendor, plus the raw objects of the inline golden bodies
//! in `fixtures/expected/inline-*`) encoded with `encoding = "ocsf"` validates against the
//! committed OCSF 1.1.0 and 1.8.0 JSON Schemas of its class (`fixtures/ocsf/`), and its
//! `type_uid`, `category_uid` and `*_name` labels agree (the schemas do not check those).
//! Also the mapping of each vendor's alert kinds to classes and attributes.
//!
//! End to end: the real binary on 127.0.0.1 with one `encoding = "ocsf"` file sink writes one
//! valid OCSF object per line for Prisma, Wallarm and Coralogix alerts, beside a default sink
//! that still writes siemgate's Event; the config refuses OCSF where the sink is not JSON.
//! And every vendor fixture in `fixtures/vendors/` posted to the real binary comes out valid,
//! one object per accepted event, through each network sink with `encoding = "ocsf"`: Splunk
//! HEC (`event` objects, sourcetype `ocsf:<class>`) to the loopback HEC collector, HTTP with
//! `body = "ndjson"` to a loopback HTTP receiver, and syslog `format = "json"` over TCP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/hec.rs"]
mod hec;
#[path = "common/http_rx.rs"]
mod http_rx;
#[path = "common/syslog.rs"]
mod syslog;

use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex};

use bytes::BytesMut;
use serde_json::{json, Value};
use siemgate::normalize::ocsf::OcsfVersion;
use siemgate::normalize::Timestamp;
use siemgate::sinks::{Encoder, OcsfNdjson};
use siemgate::vendors::{Context, Vendor};

use common::{fixture, repo};

type Validators = Mutex<HashMap<String, &'static jsonschema::Validator>>;

static VALIDATORS: LazyLock<Validators> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// The validator of `fixtures/ocsf/<version>/<file>.json`, compiled once.
fn validator(version: &str, file: &str) -> &'static jsonschema::Validator {
    let key = format!("{version}/{file}");
    let mut map = VALIDATORS.lock().unwrap();
    if let Some(v) = map.get(&key) {
        return v;
    }
    let path = repo().join("fixtures/ocsf").join(format!("{key}.json"));
    let schema: Value = serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap();
    let v: &'static jsonschema::Validator =
        Box::leak(Box::new(jsonschema::validator_for(&schema).unwrap()));
    map.insert(key, v);
    v
}

const CLASSES: &[(u64, &str, &str, u64, &str)] = &[
    (
        2002,
        "vulnerability_finding",
        "Vulnerability Finding",
        2,
        "Findings",
    ),
    (
        2003,
        "compliance_finding",
        "Compliance Finding",
        2,
        "Findings",
    ),
    (
        2004,
        "detection_finding",
        "Detection Finding",
        2,
        "Findings",
    ),
    (
        3001,
        "account_change",
        "Account Change",
        3,
        "Identity & Access Management",
    ),
];

/// Every problem with one OCSF object, against both versions' schemas and the label rules.
pub fn problems(obj: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let class_uid = obj["class_uid"].as_u64().unwrap_or(0);
    let Some(&(_, file, class_name, category_uid, category_name)) =
        CLASSES.iter().find(|c| c.0 == class_uid)
    else {
        return vec![format!("class_uid {class_uid} is not one siemgate emits")];
    };
    let profiles: Vec<&str> = obj["metadata"]["profiles"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let file = if profiles.contains(&"cloud") {
        format!("{file}+cloud")
    } else {
        file.to_string()
    };
    for version in OcsfVersion::NAMES {
        for err in validator(version, &file).iter_errors(obj) {
            out.push(format!(
                "{version} {file}: {err} at {}",
                err.instance_path()
            ));
        }
    }
    let activity_id = obj["activity_id"].as_u64().unwrap_or(999);
    let activity_name = obj["activity_name"].as_str().unwrap_or("");
    let expect_activity = match (category_uid, activity_id) {
        (_, 0) => "Unknown",
        (_, 1) => "Create",
        (2, 2) => "Update",
        (2, 3) => "Close",
        (_, 99) => "Other",
        _ => "?",
    };
    let severity = [
        "Unknown",
        "Informational",
        "Low",
        "Medium",
        "High",
        "Critical",
    ];
    let sev_id = obj["severity_id"].as_u64().unwrap_or(999) as usize;
    let checks = [
        (
            "type_uid",
            obj["type_uid"].clone(),
            json!(class_uid * 100 + activity_id),
        ),
        (
            "category_uid",
            obj["category_uid"].clone(),
            json!(category_uid),
        ),
        ("class_name", obj["class_name"].clone(), json!(class_name)),
        (
            "category_name",
            obj["category_name"].clone(),
            json!(category_name),
        ),
        (
            "activity_name",
            json!(activity_name),
            json!(expect_activity),
        ),
        (
            "type_name",
            obj["type_name"].clone(),
            json!(format!("{class_name}: {activity_name}")),
        ),
        (
            "severity",
            obj["severity"].clone(),
            json!(severity.get(sev_id).copied().unwrap_or("?")),
        ),
    ];
    for (name, got, want) in checks {
        if got != want {
            out.push(format!("{name}: {got} is not {want}"));
        }
    }
    if category_uid == 2 {
        let status = match obj["status_id"].as_u64() {
            Some(1) => "New",
            Some(3) => "Suppressed",
            Some(4) => "Resolved",
            _ => "?",
        };
        if obj["status"] != json!(status) {
            out.push(format!(
                "status {} for status_id {}",
                obj["status"], obj["status_id"]
            ));
        }
    }
    if obj["metadata"]["version"] != json!("1.1.0") && obj["metadata"]["version"] != json!("1.8.0")
    {
        out.push(format!("metadata.version {}", obj["metadata"]["version"]));
    }
    out
}

/// Decodes `body` as `vendor` and encodes every event as OCSF (one object per line).
fn ocsf_objects(vendor: Vendor, body: &str, version: OcsfVersion) -> Vec<Value> {
    let ctx = Context {
        source: "golden",
        received_at: Timestamp(1_700_000_000_000),
    };
    let mut buf = BytesMut::new();
    let mut errors = Vec::new();
    vendor
        .decode(body, &ctx, |event| {
            if let Err(e) = OcsfNdjson(version).encode(&event, &mut buf) {
                errors.push(e.to_string());
            }
        })
        .unwrap_or_else(|e| panic!("{}: {e}", vendor.as_str()));
    assert!(errors.is_empty(), "{errors:?}");
    let text = std::str::from_utf8(&buf).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every golden body: (name, vendor, body).
fn golden_bodies() -> Vec<(String, Vendor, String)> {
    let mut out = Vec::new();
    let dir = repo().join("fixtures/vendors");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.contains("malformed") {
            continue;
        }
        let vendor = Vendor::from_name(name.split('-').next().unwrap()).unwrap();
        out.push((name, vendor, std::fs::read_to_string(&path).unwrap()));
    }
    for entry in std::fs::read_dir(repo().join("fixtures/expected")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix("inline-") else {
            continue;
        };
        let vendor = Vendor::from_name(rest.split('-').next().unwrap()).unwrap();
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let rec: Value = serde_json::from_str(line).unwrap();
            out.push((name.clone(), vendor, rec["raw"].to_string()));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 30, "only {} golden bodies", out.len());
    out
}

#[test]
fn every_golden_event_validates_against_ocsf_1_1_0_and_1_8_0() {
    let mut classes: BTreeMap<u64, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut events = 0;
    for (name, vendor, body) in golden_bodies() {
        for version in [OcsfVersion::V1_1_0, OcsfVersion::V1_8_0] {
            for obj in ocsf_objects(vendor, &body, version) {
                events += 1;
                *classes
                    .entry(obj["class_uid"].as_u64().unwrap())
                    .or_default() += 1;
                assert_eq!(obj["metadata"]["version"], version.as_str(), "{name}");
                for p in problems(&obj) {
                    failures.push(format!("{name}: {p}\n  {obj}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(events >= 60, "{events}");
    // Every class siemgate emits appears among the golden events.
    assert_eq!(
        classes.keys().copied().collect::<Vec<_>>(),
        vec![2002, 2003, 2004, 3001],
        "{classes:?}"
    );
}

#[test]
fn the_checker_rejects_what_ocsf_forbids() {
    let body = std::fs::read_to_string(
        repo().join("fixtures/vendors/prisma_cloud-webhook-alert-open.json"),
    )
    .unwrap();
    let good = ocsf_objects(Vendor::PrismaCloud, &body, OcsfVersion::V1_1_0).remove(0);
    assert!(problems(&good).is_empty(), "{:?}", problems(&good));
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        problems(&v)
    };
    assert!(!broken(&|v| v["type_uid"] = json!(200402)).is_empty());
    assert!(!broken(&|v| v["class_name"] = json!("Detection Finding")).is_empty());
    assert!(!broken(&|v| v["severity"] = json!("Low")).is_empty());
    assert!(!broken(&|v| v["made_up"] = json!(1)).is_empty());
    assert!(!broken(&|v| v["severity_id"] = json!(7)).is_empty());
    assert!(!broken(&|v| {
        v.as_object_mut().unwrap().remove("compliance");
    })
    .is_empty());
    assert!(!broken(&|v| {
        v.as_object_mut().unwrap().remove("cloud");
    })
    .is_empty());
}

fn one(vendor: Vendor, body: &str) -> Value {
    let mut all = ocsf_objects(vendor, body, OcsfVersion::V1_1_0);
    assert_eq!(all.len(), 1, "{all:?}");
    let obj = all.remove(0);
    assert!(problems(&obj).is_empty(), "{:?}\n{obj}", problems(&obj));
    obj
}

#[test]
fn prisma_alert_with_compliance_metadata_is_a_compliance_finding() {
    let o = one(
        Vendor::PrismaCloud,
        &fixture("prisma_cloud-webhook-alert-open.json"),
    );
    assert_eq!(o["class_uid"], 2003);
    assert_eq!(o["type_uid"], 200301);
    assert_eq!(o["severity_id"], 4);
    assert_eq!(o["status_id"], 1);
    assert_eq!(o["time"], 1_700_000_100_000i64);
    assert_eq!(
        o["compliance"]["standards"],
        json!(["illustrative standard"])
    );
    assert_eq!(
        o["compliance"]["requirements"],
        json!(["illustrative requirement"])
    );
    assert_eq!(o["compliance"]["control"], "1.1");
    assert_eq!(
        o["cloud"],
        json!({"provider": "aws", "region": "us-west-2",
               "account": {"uid": "123456789012", "name": "Test"}})
    );
    assert_eq!(o["metadata"]["profiles"], json!(["cloud"]));
    assert_eq!(
        o["metadata"]["product"],
        json!({"name": "Prisma Cloud", "vendor_name": "Palo Alto Networks"})
    );
    assert_eq!(o["metadata"]["uid"], "P-51307:open:NEW_ALERT:1700000100000");
    assert_eq!(o["metadata"]["original_time"], "2023-11-14T22:15:00.000Z");
    assert_eq!(o["metadata"]["logged_time"], 1_700_000_000_000i64);
    assert_eq!(o["resource"]["uid"], "my-public-bucket");
    assert_eq!(o["resource"]["type"], "S3 Bucket");
    assert_eq!(o["remediation"]["desc"], "illustrative remediation text");
    assert_eq!(o["status_detail"], "NEW_ALERT");
    let fi = &o["finding_info"];
    assert_eq!(fi["title"], "AWS S3 buckets are accessible to public");
    assert_eq!(
        fi["analytic"]["uid"],
        "630d3779-d932-4fbf-9cce-6e8d793c6916"
    );
    assert_eq!(fi["analytic"]["category"], "config");
    assert_eq!(fi["first_seen_time"], 1_700_000_000_000i64);
    assert_eq!(fi["last_seen_time"], 1_700_000_100_000i64);
    assert!(fi["src_url"].as_str().unwrap().contains("P-51307"));
    assert_eq!(o["unmapped"]["rule"], "Default Alert Rule");
    // raw_data is the original alert, as a string.
    let raw: Value = serde_json::from_str(o["raw_data"].as_str().unwrap()).unwrap();
    assert_eq!(raw["alertId"], "P-51307");
}

#[test]
fn prisma_alert_without_compliance_metadata_is_a_detection_finding() {
    let body = fixture("prisma_cloud-alert-resolved-asyncapi-example.json");
    let objs = ocsf_objects(Vendor::PrismaCloud, &body, OcsfVersion::V1_8_0);
    assert!(!objs.is_empty());
    for o in objs {
        assert!(problems(&o).is_empty(), "{:?}", problems(&o));
        assert_eq!(o["class_uid"], 2004, "{o}");
        assert_eq!(o["status_id"], 4, "{o}");
        assert_eq!(o["status"], "Resolved");
        assert_eq!(o["metadata"]["version"], "1.8.0");
    }
}

#[test]
fn wallarm_hit_is_a_detection_finding_with_its_endpoints_and_disposition() {
    let o = one(
        Vendor::Wallarm,
        &fixture("wallarm-hit-flat-legacy-2020.json"),
    );
    assert_eq!(o["class_uid"], 2004);
    assert_eq!(o["finding_info"]["types"], json!(["sqli"]));
    assert_eq!(o["finding_info"]["title"], "SQL injection");
    assert_eq!(
        o["evidences"],
        json!([{"src_endpoint": {"ip": "111.17.1.1", "port": 41616},
                "dst_endpoint": {"hostname": "example.com"}}])
    );
    assert_eq!(o["unmapped"]["disposition"], "detected");
    assert_eq!(o["unmapped"]["disposition_id"], 15);
    assert_eq!(o["unmapped"]["http_method"], "GET");
    assert_eq!(o["unmapped"]["http_path"], "/");
    assert_eq!(o["metadata"]["profiles"], json!([]));
    assert!(o.get("cloud").is_none());
}

#[test]
fn wallarm_vulnerabilities_and_security_issues_are_vulnerability_findings() {
    for name in [
        "wallarm-vuln-array-2021-from-js-literal.json",
        "wallarm-security_issue-array-from-js-literal.json",
        "wallarm-vuln-flat-legacy-2020.json",
    ] {
        let o = one(Vendor::Wallarm, &fixture(name));
        assert_eq!(o["class_uid"], 2002, "{name}");
        assert_eq!(o["vulnerabilities"][0]["cwe"]["uid"], "CWE-200", "{name}");
        assert!(o["vulnerabilities"][0]["title"].is_string(), "{name}");
        // No vendor time: the event time is the receive time and no original_time is claimed.
        assert_eq!(o["time"], 1_700_000_000_000i64, "{name}");
        assert!(o["metadata"].get("original_time").is_none(), "{name}");
    }
}

#[test]
fn wallarm_user_creation_is_an_account_change_with_the_user() {
    let o = one(
        Vendor::Wallarm,
        &fixture("wallarm-create_user-flat-legacy-from-screenshot.json"),
    );
    assert_eq!(o["class_uid"], 3001);
    assert_eq!(o["type_uid"], 300101);
    assert_eq!(o["user"], json!({"name": "johnsmith@example.com"}));
    assert!(o.get("finding_info").is_none());
    assert_eq!(o["message"], "New user was created");
}

#[test]
fn coralogix_alert_is_a_detection_finding_and_its_team_is_unmapped() {
    let o = one(
        Vendor::Coralogix,
        &fixture("coralogix-alert-trigger-keep-mock.json"),
    );
    assert_eq!(o["class_uid"], 2004);
    assert_eq!(o["severity_id"], 4);
    assert_eq!(o["unmapped"]["vendor_severity"], "ERROR");
    assert_eq!(o["unmapped"]["account_uid"], "1010757");
    assert!(o.get("cloud").is_none());
}

#[test]
fn immuta_and_generic_are_detection_findings_with_unknown_severity_when_unsaid() {
    let o = one(
        Vendor::Immuta,
        r#"{"id":"n-1","type":"policy.updated","message":"Policy Mask PII was updated","createdAt":"2026-01-20T08:00:00Z"}"#,
    );
    assert_eq!(o["class_uid"], 2004);
    assert_eq!(o["severity_id"], 0);
    assert_eq!(o["severity"], "Unknown");
    assert_eq!(o["metadata"]["product"]["vendor_name"], "Immuta");
    let g = one(
        Vendor::Generic,
        r#"{"id":"g-1","title":"disk full","severity":"HIGH"}"#,
    );
    assert_eq!(g["class_uid"], 2004);
    assert_eq!(g["severity_id"], 4);
    assert_eq!(g["finding_info"]["uid"], "g-1");
    assert_eq!(
        g["metadata"]["product"],
        json!({"name": "generic", "vendor_name": "golden"})
    );
    // An event without a title still carries the title 1.1.0 requires.
    let bare = one(Vendor::Generic, r#"{"x":1}"#);
    assert_eq!(bare["finding_info"]["title"], "generic alert");
}

#[test]
fn overlong_text_is_capped_and_an_overlong_raw_left_out() {
    let long = "é".repeat(70_000);
    let body = format!(r#"{{"id":"g-2","title":"t","description":"{long}"}}"#);
    let o = one(Vendor::Generic, &body);
    assert_eq!(
        o["finding_info"]["desc"].as_str().unwrap().chars().count(),
        65_535
    );
    assert!(o.get("raw_data").is_none());
    let short = one(Vendor::Generic, r#"{"id":"g-3","title":"t"}"#);
    assert_eq!(short["raw_data"], r#"{"id":"g-3","title":"t"}"#);
}

fn config_issues(toml_text: &str) -> Vec<String> {
    let file = siemgate::config::parse(toml_text).unwrap();
    match siemgate::config::validate(file) {
        Ok(_) => Vec::new(),
        Err(issues) => issues.iter().map(|i| i.to_string()).collect(),
    }
}

const SERVER: &str = "[server]\nlisten = \"127.0.0.1:0\"\nplaintext = true\n";
const SOURCE: &str =
    "[[sources]]\nid = \"a\"\nsinks = [\"s\"]\nauth = { scheme = \"token\", secret = \"t\" }\n";

#[test]
fn ocsf_encoding_is_accepted_only_where_json_is_sent() {
    let ok = [
        "type = \"file\"\npath = \"/tmp/siemgate-ocsf-never-written.ndjson\"\nencoding = \"ocsf\"",
        "type = \"file\"\npath = \"/tmp/siemgate-ocsf-never-written.ndjson\"\nencoding = \"ocsf\"\nocsf_version = \"1.8.0\"",
        "type = \"splunk_hec\"\nurl = \"http://127.0.0.1:8088\"\ntoken = \"x\"\nencoding = \"ocsf\"",
        "type = \"http\"\nurl = \"http://127.0.0.1:9\"\nbody = \"ndjson\"\nencoding = \"ocsf\"",
        "type = \"syslog\"\naddress = \"127.0.0.1:514\"\nformat = \"json\"\nencoding = \"ocsf\"",
    ];
    for sink in ok {
        let cfg = format!("{SERVER}[[sinks]]\nid = \"s\"\n{sink}\n{SOURCE}");
        assert_eq!(config_issues(&cfg), Vec::<String>::new(), "{sink}");
    }
    let bad = [
        (
            "type = \"syslog\"\naddress = \"127.0.0.1:514\"\nformat = \"leef\"\nencoding = \"ocsf\"",
            "sinks[0].encoding",
            "format = \"json\"",
        ),
        (
            "type = \"syslog\"\naddress = \"127.0.0.1:514\"\nformat = \"cef\"\nencoding = \"ocsf\"",
            "sinks[0].encoding",
            "LEEF and CEF",
        ),
        (
            "type = \"http\"\nurl = \"http://127.0.0.1:9\"\nbody = \"template\"\ntemplate = \"{{title}}\"\nencoding = \"ocsf\"",
            "sinks[0].encoding",
            "template",
        ),
        (
            "type = \"file\"\npath = \"/tmp/x.ndjson\"\nencoding = \"ocsf\"\nocsf_version = \"1.3\"",
            "sinks[0].ocsf_version",
            "1.8.0",
        ),
        (
            "type = \"file\"\npath = \"/tmp/x.ndjson\"\nocsf_version = \"1.8.0\"",
            "sinks[0].ocsf_version",
            "only used with encoding",
        ),
    ];
    for (sink, key, words) in bad {
        let cfg = format!("{SERVER}[[sinks]]\nid = \"s\"\n{sink}\n{SOURCE}");
        let issues = config_issues(&cfg);
        assert!(
            issues.iter().any(|i| i.contains(key) && i.contains(words)),
            "{sink}: {issues:?}"
        );
    }
    let unknown = format!(
        "{SERVER}[[sinks]]\nid = \"s\"\ntype = \"file\"\npath = \"/tmp/x\"\nencoding = \"ucsf\"\n{SOURCE}"
    );
    assert!(siemgate::config::parse(&unknown).is_err());
}

#[tokio::test]
async fn the_binary_writes_one_valid_ocsf_object_per_line_to_an_ocsf_file_sink() {
    use common::*;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"{PLAIN_SERVER}
[[sinks]]
id = "ocsf"
type = "file"
path = '{{dir}}/ocsf.ndjson'
fsync = "never"
encoding = "ocsf"
ocsf_version = "1.8.0"
[sinks.batch]
linger = "0ms"
[[sinks]]
id = "plain"
type = "file"
path = '{{dir}}/plain.ndjson'
fsync = "never"
[sinks.batch]
linger = "0ms"
[[sources]]
id = "pc"
vendor = "prisma_cloud"
sinks = ["ocsf", "plain"]
auth = {{ scheme = "token", secret = "pc-ocsf-tok-71d2" }}
[[sources]]
id = "wl"
vendor = "wallarm"
sinks = ["ocsf", "plain"]
auth = {{ scheme = "token", secret = "wl-ocsf-tok-93a0" }}
"#
    );
    let mut proc = common::binary::Process::start(dir.path(), &config, &[]);
    let [hooks] = proc.wait_ready(["hooks"]);
    let posts = [
        (
            "pc",
            "X-Redlock-Auth",
            "pc-ocsf-tok-71d2",
            "prisma_cloud-webhook-alert-open.json",
        ),
        (
            "wl",
            "X-Auth-Token",
            "wl-ocsf-tok-93a0",
            "wallarm-new_hits-array-2023.json",
        ),
        (
            "wl",
            "X-Auth-Token",
            "wl-ocsf-tok-93a0",
            "wallarm-vuln-flat-legacy-2020.json",
        ),
        (
            "wl",
            "X-Auth-Token",
            "wl-ocsf-tok-93a0",
            "wallarm-create_user-flat-legacy-from-screenshot.json",
        ),
    ];
    let mut accepted = 0;
    for (source, header, token, file) in posts {
        let a = send(
            hooks,
            post(hooks, source, &[(header, token)], fixture(file)),
        )
        .await;
        assert_eq!(a.status, http::StatusCode::OK, "{file}: {:?}", a.body);
        accepted += a.json()["accepted"].as_u64().unwrap_or(0) as usize;
    }
    assert!(accepted >= 4, "{accepted}");
    let ocsf_path = dir.path().join("ocsf.ndjson");
    let plain_path = dir.path().join("plain.ndjson");
    let (mut ocsf, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..300 {
        ocsf = read_lines(&ocsf_path);
        plain = read_lines(&plain_path);
        if ocsf.len() >= accepted && plain.len() >= accepted {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(ocsf.len(), accepted, "{ocsf:?}");
    assert_eq!(plain.len(), accepted);
    let mut classes = std::collections::BTreeSet::new();
    for obj in &ocsf {
        assert!(problems(obj).is_empty(), "{:?}\n{obj}", problems(obj));
        assert_eq!(obj["metadata"]["version"], "1.8.0");
        classes.insert(obj["class_uid"].as_u64().unwrap());
    }
    assert_eq!(
        classes.into_iter().collect::<Vec<_>>(),
        vec![2002, 2003, 2004, 3001]
    );
    // The default sink still writes siemgate's Event, for the same events.
    for e in &plain {
        assert!(
            e.get("raw").is_some() && e.get("class_uid").is_none(),
            "{e}"
        );
    }
    let ids = |v: &[Value], key: &dyn Fn(&Value) -> Value| {
        let mut ids: Vec<String> = v.iter().map(|o| key(o).to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(&ocsf, &|o| o["metadata"]["uid"].clone()),
        ids(&plain, &|e| e["id"].clone())
    );
    proc.signal("-TERM");
    proc.wait_exit(std::time::Duration::from_secs(10));
}

/// Posts every vendor fixture of `fixtures/vendors/` (but the malformed ones) to a gateway
/// whose one source per vendor routes to `sink` (a `[[sinks]]` table with id `out`); waits
/// until `delivered()` reaches the number of events accepted, and returns that number.
async fn post_every_vendor_fixture(
    sink: &str,
    delivered: impl Fn() -> usize,
) -> (usize, common::binary::Process, tempfile::TempDir) {
    use common::*;
    let dir = tempfile::tempdir().unwrap();
    let mut config = format!("{PLAIN_SERVER}{sink}");
    let vendors = ["prisma_cloud", "wallarm", "coralogix", "immuta", "generic"];
    for v in vendors {
        config += &format!(
            r#"
[[sources]]
id = "{v}"
vendor = "{v}"
sinks = ["out"]
auth = {{ scheme = "none", allow_unauthenticated = true }}
"#
        );
    }
    let mut proc = common::binary::Process::start(dir.path(), &config, &[]);
    let [hooks] = proc.wait_ready(["hooks"]);
    let mut names: Vec<String> = std::fs::read_dir(repo().join("fixtures/vendors"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.contains("malformed"))
        .collect();
    names.sort();
    let mut accepted = 0;
    let mut by_vendor = BTreeMap::new();
    for name in &names {
        let vendor = name.split('-').next().unwrap();
        assert!(vendors.contains(&vendor), "{name}");
        let a = send(hooks, post(hooks, vendor, &[], fixture(name))).await;
        let n = a.json()["accepted"].as_u64().unwrap_or(0) as usize;
        accepted += n;
        *by_vendor.entry(vendor).or_insert(0) += n;
    }
    // Every vendor had events accepted, so every vendor's mapping went through the sink.
    assert_eq!(by_vendor.len(), vendors.len(), "{by_vendor:?}");
    assert!(by_vendor.values().all(|&n| n > 0), "{by_vendor:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while delivered() < accepted && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    (accepted, proc, dir)
}

/// Checks OCSF objects a sink delivered: `accepted` of them, each valid, every class seen.
fn assert_valid_ocsf(objects: &[Value], accepted: usize) {
    assert_eq!(objects.len(), accepted, "delivered vs accepted");
    let mut classes = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for obj in objects {
        for p in problems(obj) {
            failures.push(format!("{p}\n  {obj}"));
        }
        assert_eq!(obj["metadata"]["version"], "1.1.0", "{obj}");
        classes.insert(obj["class_uid"].as_u64().unwrap_or(0));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        classes.into_iter().collect::<Vec<_>>(),
        vec![2002, 2003, 2004, 3001]
    );
}

#[tokio::test]
async fn a_splunk_hec_sink_sends_valid_ocsf_events_with_the_class_as_sourcetype() {
    let hec = hec::HecServer::start("hec-ocsf-tok-4c19").await;
    let sink = format!(
        r#"
[[sinks]]
id = "out"
type = "splunk_hec"
url = "{}"
token = "hec-ocsf-tok-4c19"
encoding = "ocsf"
[sinks.batch]
linger = "0ms"
"#,
        hec.url()
    );
    let (accepted, mut proc, _dir) = post_every_vendor_fixture(&sink, || hec.indexed_count()).await;
    let indexed = hec.indexed();
    hec.assert_no_problems();
    for e in &indexed {
        let class_uid = e.event["class_uid"].as_u64().unwrap_or(0);
        let class = CLASSES
            .iter()
            .find(|c| c.0 == class_uid)
            .map_or("?", |c| c.1);
        assert_eq!(e.sourcetype, format!("ocsf:{class}"), "{}", e.text);
    }
    let events: Vec<Value> = indexed.into_iter().map(|e| e.event).collect();
    assert_valid_ocsf(&events, accepted);
    proc.signal("-TERM");
    proc.wait_exit(std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn an_http_ndjson_sink_sends_one_valid_ocsf_object_per_line() {
    let rx = http_rx::Receiver::start(vec![]).await;
    let sink = format!(
        r#"
[[sinks]]
id = "out"
type = "http"
url = "{}"
body = "ndjson"
encoding = "ocsf"
[sinks.batch]
linger = "0ms"
"#,
        rx.url("/ocsf")
    );
    let lines = |rx: &http_rx::Receiver| -> Vec<Value> {
        rx.accepted()
            .iter()
            .flat_map(|r| {
                let text = std::str::from_utf8(&r.body).unwrap().to_owned();
                assert!(text.ends_with('\n'), "{text}");
                text.lines()
                    .map(|l| serde_json::from_str::<Value>(l).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let (accepted, mut proc, _dir) = post_every_vendor_fixture(&sink, || lines(&rx).len()).await;
    for r in rx.requests() {
        assert_eq!(r.path, "/ocsf");
        assert_eq!(r.method, "POST");
    }
    assert_valid_ocsf(&lines(&rx), accepted);
    proc.signal("-TERM");
    proc.wait_exit(std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn a_syslog_json_sink_over_tcp_sends_valid_ocsf_bodies() {
    let rx = syslog::StreamReceiver::tcp(syslog::Framing::Lf).await;
    let sink = syslog::syslog_sink(
        "out",
        rx.addr(),
        "transport = \"tcp\"\nframing = \"lf\"\nformat = \"json\"\nencoding = \"ocsf\"",
    );
    let (accepted, mut proc, _dir) = post_every_vendor_fixture(&sink, || rx.count()).await;
    assert!(rx.errors().is_empty(), "{:?}", rx.errors());
    let bodies: Vec<Value> = rx
        .messages()
        .iter()
        .map(|m| {
            let p = syslog::parse_rfc5424(&m.bytes).unwrap_or_else(|e| panic!("{e}"));
            serde_json::from_str(p.msg_str()).unwrap_or_else(|e| panic!("{e}: {}", p.msg_str()))
        })
        .collect();
    assert_valid_ocsf(&bodies, accepted);
    proc.signal("-TERM");
    proc.wait_exit(std::time::Duration::from_secs(10));
}
