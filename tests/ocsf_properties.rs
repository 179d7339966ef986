//! Property tests of the OCSF encoder: random vendor-shaped JSON and mutated vendor fixtures,
//! decoded by every vendor, never yield an OCSF object that is invalid against the committed
//! OCSF 1.1.0 schema of its class (with the `cloud` profile when it lists it), nor one whose
//! `type_uid` disagrees with its class and activity.
//!
//! Each property runs 48 cases through all vendors, to keep CI fast; set `PROPTEST_CASES` to
//! run more.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::LazyLock;

use bytes::BytesMut;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value};
use siemgate::normalize::ocsf::OcsfVersion;
use siemgate::normalize::Timestamp;
use siemgate::sinks::{Encoder, OcsfNdjson};
use siemgate::vendors::{json, Context, Vendor};

/// The 1.1.0 validators, by schema file name.
static SCHEMAS: LazyLock<HashMap<String, jsonschema::Validator>> = LazyLock::new(|| {
    let mut out = HashMap::new();
    for class in [
        "detection_finding",
        "compliance_finding",
        "vulnerability_finding",
        "account_change",
    ] {
        for suffix in ["", "+cloud"] {
            let name = format!("{class}{suffix}");
            let path = common::repo().join(format!("fixtures/ocsf/1.1.0/{name}.json"));
            let schema: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            out.insert(name, jsonschema::validator_for(&schema).unwrap());
        }
    }
    out
});

fn class_file(uid: u64) -> Option<&'static str> {
    Some(match uid {
        2002 => "vulnerability_finding",
        2003 => "compliance_finding",
        2004 => "detection_finding",
        3001 => "account_change",
        _ => return None,
    })
}

/// Decodes `body` with every vendor and checks every OCSF object it yields; returns their
/// class uids.
fn check_all_vendors(body: &str) -> Result<Vec<u64>, TestCaseError> {
    let mut classes = Vec::new();
    if json::utf8(body.as_bytes()).is_err() || json::check_limits(body).is_err() {
        return Ok(classes);
    }
    for name in Vendor::names() {
        let vendor = Vendor::from_name(name).unwrap();
        let ctx = Context {
            source: "prop",
            received_at: Timestamp(1_700_000_000_000),
        };
        let mut buf = BytesMut::new();
        let mut encode_errors = Vec::new();
        // A body the decoder refuses yields no events: nothing to check.
        let _ = vendor.decode(body, &ctx, |event| {
            if let Err(e) = OcsfNdjson(OcsfVersion::V1_1_0).encode(&event, &mut buf) {
                encode_errors.push(e.to_string());
            }
        });
        prop_assert!(encode_errors.is_empty(), "{name}: {encode_errors:?}");
        for line in std::str::from_utf8(&buf).unwrap().lines() {
            let obj: Value = serde_json::from_str(line)
                .map_err(|e| TestCaseError::fail(format!("{name}: not JSON: {e}: {line}")))?;
            let uid = obj["class_uid"].as_u64().unwrap_or(0);
            let Some(class) = class_file(uid) else {
                return Err(TestCaseError::fail(format!("{name}: class {uid}: {line}")));
            };
            let cloud = obj["metadata"]["profiles"]
                .as_array()
                .is_some_and(|p| p.iter().any(|v| v == "cloud"));
            let file = if cloud {
                format!("{class}+cloud")
            } else {
                class.to_string()
            };
            let errors: Vec<String> = SCHEMAS[&file]
                .iter_errors(&obj)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            prop_assert!(
                errors.is_empty(),
                "{name}: {errors:?}\nobject: {line}\nbody: {body}"
            );
            let activity = obj["activity_id"].as_u64().unwrap_or(999);
            prop_assert_eq!(obj["type_uid"].as_u64(), Some(uid * 100 + activity));
            classes.push(uid);
        }
    }
    Ok(classes)
}

/// Keys the decoders and the OCSF encoder read.
const KEYS: &[&str] = &[
    "id",
    "type",
    "severity",
    "message",
    "description",
    "timestamp",
    "createdAt",
    "title",
    "alertId",
    "alertStatus",
    "alertTs",
    "policyName",
    "policyId",
    "policyType",
    "policyDescription",
    "policyRecommendation",
    "cloudType",
    "accountId",
    "accountName",
    "resourceId",
    "resourceName",
    "resourceType",
    "resourceRegionId",
    "callbackUrl",
    "complianceMetadata",
    "standardName",
    "requirementId",
    "requirementName",
    "sectionId",
    "reason",
    "alertRuleName",
    "firstSeen",
    "lastSeen",
    "resourceTags",
    "summary",
    "details",
    "client_name",
    "cloud",
    "hit",
    "vuln",
    "security_issue",
    "vuln_link",
    "link",
    "ip",
    "email",
    "domain",
    "host",
    "method",
    "path",
    "remote_addr4",
    "remote_port",
    "threat",
    "risk",
    "block_status",
    "attack_type",
    "name",
    "alert_action",
    "alert_url",
    "fields",
    "key",
    "value",
    "alert_severity",
    "alert_id",
    "alert_name",
    "notification_type",
];

const WORDS: &[&str] = &[
    "",
    " ",
    "aws",
    "azure",
    "gcp",
    "us-west-2",
    "open",
    "resolved",
    "dismissed",
    "snoozed",
    "NEW_ALERT",
    "USER_REOPENED",
    "critical",
    "HIGH",
    "low",
    "info",
    "Info",
    "sqli",
    "xss",
    "ptrav",
    "rce",
    "vuln",
    "security_issue",
    "create_user",
    "new_hits",
    "blocked",
    "monitored",
    "trigger",
    "resolve",
    "8.8.8.8",
    "::1",
    "999.1.1.1",
    "not an ip",
    "2024-02-29T12:34:56.789Z",
    "Jan 21, 2018 UTC",
    "1700000000000",
    "é",
    "\u{1F600}",
    "\u{2028}",
    "\"",
    "\\",
    "{\"nested\":1}",
    "P-0",
    "Test Notification",
    "CIS",
    "1.1",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        select(WORDS).prop_map(|w| Value::String(w.to_owned())),
        any::<i64>().prop_map(Value::from),
        (0u32..70_000).prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        "[a-z ]{0,12}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::vec((select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

fn object() -> impl Strategy<Value = Value> {
    prop::collection::vec((select(KEYS), value()), 1..10)
        .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

/// Every vendor fixture's top-level elements (objects), parsed.
static FIXTURE_OBJECTS: LazyLock<Vec<Value>> = LazyLock::new(|| {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(common::repo().join("fixtures/vendors")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for v in serde_json::Deserializer::from_str(&text).into_iter::<Value>() {
            match v {
                Ok(Value::Array(items)) => out.extend(items),
                Ok(v) => out.push(v),
                Err(_) => break,
            }
        }
    }
    assert!(out.len() >= 20);
    out
});

/// Replaces the `n`-th node (in walk order) of `v` with `with`; returns whether it did.
fn replace_nth(v: &mut Value, n: &mut usize, with: &Value) -> bool {
    if *n == 0 {
        *v = with.clone();
        return true;
    }
    *n -= 1;
    match v {
        Value::Array(items) => items.iter_mut().any(|i| replace_nth(i, n, with)),
        Value::Object(map) => map.values_mut().any(|i| replace_nth(i, n, with)),
        _ => false,
    }
}

fn mutated_fixture() -> impl Strategy<Value = Value> {
    (
        0..FIXTURE_OBJECTS.len(),
        prop::collection::vec((1usize..200, value()), 1..4),
        prop::collection::vec((select(KEYS), value()), 0..3),
    )
        .prop_map(|(i, swaps, adds)| {
            let mut v = FIXTURE_OBJECTS[i].clone();
            for (n, with) in swaps {
                let mut n = n;
                replace_nth(&mut v, &mut n, &with);
            }
            if let Value::Object(map) = &mut v {
                for (k, val) in adds {
                    map.insert(k.to_owned(), val);
                }
            } else {
                let mut map = Map::new();
                map.insert("value".into(), v);
                v = Value::Object(map);
            }
            v
        })
}

proptest! {
    #![proptest_config(common::proptest_config(48))]

    #[test]
    fn random_vendor_shaped_objects_give_valid_ocsf(obj in object()) {
        check_all_vendors(&obj.to_string())?;
    }

    #[test]
    fn random_arrays_of_objects_give_valid_ocsf(objs in prop::collection::vec(object(), 1..4)) {
        check_all_vendors(&Value::Array(objs).to_string())?;
    }

    #[test]
    fn mutated_vendor_fixtures_give_valid_ocsf(obj in mutated_fixture()) {
        check_all_vendors(&obj.to_string())?;
    }
}

#[test]
fn every_unmutated_fixture_object_gives_valid_ocsf() {
    let mut classes = std::collections::BTreeSet::new();
    for obj in FIXTURE_OBJECTS.iter() {
        classes.extend(check_all_vendors(&obj.to_string()).unwrap());
    }
    // The checks above reached every class the encoder writes.
    assert_eq!(
        classes.into_iter().collect::<Vec<_>>(),
        vec![2002, 2003, 2004, 3001]
    );
}
