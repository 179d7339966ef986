//! Prisma Cloud (CSPM) alert webhooks, in both shapes that exist:
//!
//! * the webhook integration's body: a JSON array of camelCase alert objects (`alertId`,
//!   `alertStatus`, `policyName`, `severity`, `alertTs` in epoch ms, `complianceMetadata`, ...);
//! * the AsyncAPI shape: one snake_case object per request (`notification_type`, `alert_id`,
//!   `alert_status`, `timestamp` in RFC 3339, ...), recognized by `notification_type`/`alert_id`.
//!
//! A single camelCase object is accepted too. Test notifications (`alertId` `P-0`, or
//! `sender` "Test Notification") become `kind = test`.
//!
//! One alert is notified many times: once per status change, and again in the same status when
//! it is reopened (`reason` `USER_REOPENED`, `SNOOZED_AUTO_REOPEN`, `MDC_REOPEN_...`). The Event
//! id is `<alertId>:<status>[:<reason>][:<millis>]`, the millis being `lastSeen`, else the event
//! time: every part comes from the body, so a retry of one notification keeps its id while a
//! reopen gets a new one. `status` is the alert's state (`alertStatus`); what happened is the
//! OCSF activity (Create for a new alert, Update for a reopen, an update, a dismissal or a
//! snooze, Close for a resolution). Admins can edit Prisma's payload, so every field is optional
//! and a field of the wrong type only adds a warning.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::fields::{
    epoch_millis, non_empty_container, rfc3339, severity, text, text_or_number, Warnings,
};
use super::json::parse_object;
use super::{emit_each_read, Context, DecodeError, Vendor};
use crate::normalize::{Event, EventId, Kind, Ocsf, Status, Timestamp};

/// Every field siemgate reads, in both spellings; all borrowed and all optional.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Alert<'a> {
    #[serde(borrow, rename = "alertId")]
    alert_id: Option<&'a RawValue>,
    #[serde(borrow, rename = "alert_id")]
    alert_id_snake: Option<&'a RawValue>,
    #[serde(borrow, rename = "alertStatus")]
    alert_status: Option<&'a RawValue>,
    #[serde(borrow, rename = "alert_status")]
    alert_status_snake: Option<&'a RawValue>,
    #[serde(borrow)]
    notification_type: Option<&'a RawValue>,
    #[serde(borrow, rename = "alertTs")]
    alert_ts: Option<&'a RawValue>,
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
    /// When a test notification was sent (Palo Alto's test sample; epoch ms).
    #[serde(borrow, rename = "sentTs")]
    sent_ts: Option<&'a RawValue>,
    #[serde(borrow, rename = "policyName")]
    policy_name: Option<&'a RawValue>,
    #[serde(borrow, rename = "policy_name")]
    policy_name_snake: Option<&'a RawValue>,
    #[serde(borrow, rename = "policyDescription")]
    policy_description: Option<&'a RawValue>,
    #[serde(borrow)]
    severity: Option<&'a RawValue>,
    #[serde(borrow, rename = "cloudType")]
    cloud_type: Option<&'a RawValue>,
    #[serde(borrow, rename = "cloud_type")]
    cloud_type_snake: Option<&'a RawValue>,
    #[serde(borrow, rename = "accountId")]
    account_id: Option<&'a RawValue>,
    #[serde(borrow, rename = "account_id")]
    account_id_snake: Option<&'a RawValue>,
    #[serde(borrow, rename = "accountName")]
    account_name: Option<&'a RawValue>,
    #[serde(borrow, rename = "resourceId")]
    resource_id: Option<&'a RawValue>,
    #[serde(borrow, rename = "resource_id")]
    resource_id_snake: Option<&'a RawValue>,
    #[serde(borrow, rename = "resourceName")]
    resource_name: Option<&'a RawValue>,
    #[serde(borrow, rename = "resourceType")]
    resource_type: Option<&'a RawValue>,
    #[serde(borrow, rename = "resource_type")]
    resource_type_snake: Option<&'a RawValue>,
    #[serde(borrow, rename = "resourceRegionId")]
    resource_region_id: Option<&'a RawValue>,
    #[serde(borrow, rename = "resourceRegion")]
    resource_region: Option<&'a RawValue>,
    #[serde(borrow, rename = "callbackUrl")]
    callback_url: Option<&'a RawValue>,
    #[serde(borrow, rename = "complianceMetadata")]
    compliance_metadata: Option<&'a RawValue>,
    #[serde(borrow)]
    sender: Option<&'a RawValue>,
    #[serde(borrow)]
    reason: Option<&'a RawValue>,
    #[serde(borrow, rename = "alertRuleName")]
    alert_rule_name: Option<&'a RawValue>,
    #[serde(borrow, rename = "policyId")]
    policy_id: Option<&'a RawValue>,
    #[serde(borrow, rename = "policy_id")]
    policy_id_snake: Option<&'a RawValue>,
    #[serde(borrow, rename = "policyType")]
    policy_type: Option<&'a RawValue>,
    #[serde(borrow, rename = "policyRecommendation")]
    policy_recommendation: Option<&'a RawValue>,
    #[serde(borrow, rename = "firstSeen")]
    first_seen: Option<&'a RawValue>,
    #[serde(borrow, rename = "lastSeen")]
    last_seen: Option<&'a RawValue>,
    /// The nested resource object (`regionId`, `resourceTags`, ...).
    #[serde(borrow)]
    resource: Option<&'a RawValue>,
}

/// The part of the nested `resource` object siemgate reads.
#[derive(Deserialize, Default)]
#[serde(default)]
struct NestedResource<'a> {
    #[serde(borrow, rename = "regionId")]
    region_id: Option<&'a RawValue>,
    #[serde(borrow, rename = "resourceTags")]
    resource_tags: Option<&'a RawValue>,
}

/// What a body must be, as the decode error says.
const EXPECTED: &str = "a JSON array of Prisma Cloud alerts, or one alert object";

pub fn decode<'a, F>(body: &'a str, ctx: &Context<'a>, emit: F) -> Result<usize, DecodeError>
where
    F: FnMut(Event<'a>) -> std::ops::ControlFlow<()>,
{
    emit_each_read(
        body,
        EXPECTED,
        |a, raw| fill(raw, a, ctx),
        |raw, offset| normalize(raw, offset, ctx),
        emit,
    )
}

/// Prisma's status words (`alertStatus`, AsyncAPI `alert_status`) to the alert's state, with
/// the word written in the Event id. `pending_resolution` (auto-remediation running) is still
/// open, but keeps its own id word.
fn state(word: &str) -> Option<(Status, &'static str)> {
    const TABLE: &[(&str, Status, &str)] = &[
        ("open", Status::Open, "open"),
        ("pending_resolution", Status::Open, "pending_resolution"),
        ("resolved", Status::Resolved, "resolved"),
        ("dismissed", Status::Dismissed, "dismissed"),
        ("snoozed", Status::Snoozed, "snoozed"),
    ];
    TABLE
        .iter()
        .find(|(w, ..)| w.eq_ignore_ascii_case(word.trim()))
        .map(|&(_, s, id)| (s, id))
}

/// OCSF finding activities.
const CREATE: u32 = 1;
const UPDATE: u32 = 2;
const CLOSE: u32 = 3;

/// The AsyncAPI `notification_type` (what happened) to the OCSF activity, with the state the
/// alert is in when the body has no `alert_status`.
fn notification(word: &str) -> Option<(u32, Status, &'static str)> {
    const TABLE: &[(&str, u32, Status, &str)] = &[
        ("alert.created", CREATE, Status::Open, "open"),
        ("alert.updated", UPDATE, Status::Open, "open"),
        ("alert.resolved", CLOSE, Status::Resolved, "resolved"),
        ("alert.dismissed", UPDATE, Status::Dismissed, "dismissed"),
    ];
    TABLE
        .iter()
        .find(|(w, ..)| w.eq_ignore_ascii_case(word.trim()))
        .map(|&(_, a, s, id)| (a, s, id))
}

/// The activity of a camelCase notification, from the state and `reason`: an open alert is
/// created unless the reason says it was reopened; a resolution closes it; anything else
/// (dismissed, snoozed, pending resolution) updates it.
fn activity(status: Status, id_word: &str, reason: Option<&str>) -> u32 {
    let reopened = reason.is_some_and(|r| {
        let r = r.trim();
        r.eq_ignore_ascii_case("USER_REOPENED")
            || r.eq_ignore_ascii_case("SNOOZED_AUTO_REOPEN")
            || r.get(..10)
                .is_some_and(|p| p.eq_ignore_ascii_case("MDC_REOPEN"))
    });
    match status {
        Status::Open if id_word == "open" && !reopened => CREATE,
        Status::Resolved => CLOSE,
        _ => UPDATE,
    }
}

fn normalize<'a>(
    raw: &'a RawValue,
    offset: usize,
    ctx: &Context<'a>,
) -> Result<Event<'a>, DecodeError> {
    Ok(fill(raw, parse_object(raw, offset)?, ctx))
}

/// The event of the alert `raw`, read into `a`.
fn fill<'a>(raw: &'a RawValue, a: Alert<'a>, ctx: &Context<'a>) -> Event<'a> {
    let mut e = Event::new(Vendor::PrismaCloud, ctx.source, raw, ctx.received_at);
    let w: &mut Warnings = &mut e.normalization_warnings;

    let alert_id = text_or_number(a.alert_id.or(a.alert_id_snake), "alertId: not a string", w);
    let status_word = text(
        a.alert_status.or(a.alert_status_snake),
        "alertStatus: not a string",
        w,
    );
    let reason = text(a.reason, "reason: not a string", w);
    let happened = text(a.notification_type, "notification_type: not a string", w)
        .map(|n| (notification(&n), n));
    if happened.as_ref().is_some_and(|(known, _)| known.is_none()) {
        w.push("notification_type: unknown type");
    }
    let happened = happened.and_then(|(known, _)| known);
    let known_state = status_word.as_deref().and_then(state);
    if status_word.is_some() && known_state.is_none() {
        w.push("alertStatus: unknown status");
    }
    let (status, status_id) = known_state
        .or(happened.map(|(_, s, id)| (s, id)))
        .unwrap_or((Status::Open, "open"));
    e.status = status;
    let activity = match happened {
        Some((a, ..)) => a,
        None => activity(status, status_id, reason.as_deref()),
    };

    let time = epoch_millis(a.alert_ts, "alertTs: not epoch milliseconds", w)
        .or_else(|| rfc3339(a.timestamp, "timestamp: not RFC 3339", w))
        .or_else(|| epoch_millis(a.sent_ts, "sentTs: not epoch milliseconds", w));
    match time {
        Some(t) => e.time = t,
        None => w.push("time: missing, received_at used"),
    }

    e.title = text(
        a.policy_name.or(a.policy_name_snake),
        "policyName: not a string",
        w,
    );
    e.description = text(a.policy_description, "policyDescription: not a string", w);
    e.remediation = text(
        a.policy_recommendation,
        "policyRecommendation: not a string",
        w,
    );
    let f = &mut e.finding;
    f.policy_id = text(
        a.policy_id.or(a.policy_id_snake),
        "policyId: not a string",
        w,
    );
    f.policy_name = e.title.clone();
    f.policy_type = text(a.policy_type, "policyType: not a string", w);
    f.rule = text(a.alert_rule_name, "alertRuleName: not a string", w);
    f.first_seen = epoch_millis(a.first_seen, "firstSeen: not epoch milliseconds", w);
    f.last_seen = epoch_millis(a.last_seen, "lastSeen: not epoch milliseconds", w);
    // Palo Alto's own test sample sends `"resource": "This is a test message."`: anything but an
    // object simply has nothing to read.
    let nested: NestedResource<'a> = a
        .resource
        .filter(|r| r.get().starts_with('{'))
        .and_then(|r| parse_object(r, 0).ok())
        .unwrap_or_default();
    e.resource.tags = nested
        .resource_tags
        .filter(|t| non_empty_container(Some(t)));
    e.url = text(a.callback_url, "callbackUrl: not a string", w);
    e.resource.id = text_or_number(
        a.resource_id.or(a.resource_id_snake),
        "resourceId: not a string",
        w,
    );
    e.resource.name = text(a.resource_name, "resourceName: not a string", w);
    e.resource.kind = text(
        a.resource_type.or(a.resource_type_snake),
        "resourceType: not a string",
        w,
    );
    // The API id (`us-west-2`, `global`) rather than the display name (`AWS Oregon`).
    e.resource.region = text(a.resource_region_id, "resourceRegionId: not a string", w)
        .or_else(|| text(nested.region_id, "resource.regionId: not a string", w))
        .or_else(|| text(a.resource_region, "resourceRegion: not a string", w));
    e.resource.account_id = text_or_number(
        a.account_id.or(a.account_id_snake),
        "accountId: not a string",
        w,
    );
    e.resource.account_name = text(a.account_name, "accountName: not a string", w);
    e.resource.cloud = text(
        a.cloud_type.or(a.cloud_type_snake),
        "cloudType: not a string",
        w,
    );

    e.status_detail = reason;
    let sender = text(a.sender, "sender: not a string", w);
    severity(&mut e, a.severity);
    let is_test = alert_id.as_deref() == Some("P-0")
        || sender
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("Test Notification"));
    let class = if non_empty_container(a.compliance_metadata) {
        Ocsf::COMPLIANCE_FINDING
    } else {
        Ocsf::DETECTION_FINDING
    };
    e.ocsf = class.with_activity(activity);
    e.kind = if is_test { Kind::Test } else { Kind::Alert };
    if let Some(id) = alert_id {
        let at = e.finding.last_seen.or(time).map(Timestamp::millis);
        e.id = EventId::Change(id, status_id, e.status_detail.clone(), at);
    } else {
        e.normalization_warnings
            .push("alertId: missing, id is a hash of the alert");
    }
    if !a.recognised() {
        e.mark_unrecognized();
    }
    e
}

impl Alert<'_> {
    /// Whether the object carries any field of either Prisma shape that identifies an alert.
    fn recognised(&self) -> bool {
        [
            self.alert_id,
            self.alert_id_snake,
            self.alert_status,
            self.alert_status_snake,
            self.notification_type,
            self.policy_name,
            self.policy_name_snake,
            self.severity,
            self.alert_ts,
            self.resource_id,
            self.resource_id_snake,
            self.sender,
        ]
        .iter()
        .any(Option::is_some)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::normalize::Timestamp;

    fn run(body: &str) -> Result<Vec<serde_json::Value>, DecodeError> {
        let ctx = Context {
            source: "prisma",
            received_at: Timestamp(5),
        };
        let mut out = Vec::new();
        decode(body, &ctx, |e| {
            out.push(serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap());
            std::ops::ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
        /// Reading each alert in one pass gives the same events, the same count and the same
        /// error (at the same offset) as splitting the body and then reading each alert, on
        /// bodies that are fine and bodies that break anywhere: a bad element, a key given
        /// twice, a missing or extra comma, text after the end, an `emit` that stops early.
        #[test]
        fn one_pass_reads_what_the_ordinary_reading_reads((body, limit) in crate::vendors::one_pass::bodies(vec![
            include_str!("../../fixtures/vendors/prisma_cloud-webhook-alert-open.json").trim().trim_start_matches('[').trim_end_matches(']'),
            include_str!("../../fixtures/vendors/prisma_cloud-alert-created-asyncapi-example.json"),
            r#"{"alertId":"P-1","alertStatus":"resolved","alertTs":1700000000000,"resource":{"resourceTags":{"a":"b"}}}"#,
            r#"{"alertId":"P-2","alertId":"P-3"}"#,
            r#"{"alertId":"P-4","resource":"not an object","alertTs":"x"}"#,
            r#"{"alertId":"P-\u0035","policyName":"a\"b"}"#,
            r#"{}"#,
            r#"7"#,
            r#"{"alertId":"P-6""#,
            r#"{"alertId":"P-7",}"#,
        ])) {
            let ctx = Context { source: "prisma", received_at: Timestamp(5) };
            crate::vendors::one_pass::assert_same_events!(&body, limit, &ctx);
        }
    }

    #[test]
    fn webhook_array_maps_every_field() {
        let body = include_str!("../../fixtures/vendors/prisma_cloud-webhook-alert-open.json");
        let events = run(body).unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e["id"], "P-51307:open:NEW_ALERT:1700000100000");
        assert_eq!(e["status_detail"], "NEW_ALERT");
        assert_eq!(e["ocsf"]["activity_id"], 1, "a new alert is created");
        assert_eq!(
            e["finding"],
            serde_json::json!({
                "policy": {"id": "630d3779-d932-4fbf-9cce-6e8d793c6916",
                           "name": "AWS S3 buckets are accessible to public", "type": "config"},
                "rule": "Default Alert Rule",
                "first_seen": "2023-11-14T22:13:20.000Z",
                "last_seen": "2023-11-14T22:15:00.000Z"})
        );
        assert_eq!(e["remediation"], "illustrative remediation text");
        assert!(e["resource"].get("tags").is_none(), "empty resourceTags");
        assert_eq!(e["vendor"], "prisma_cloud");
        assert_eq!(e["status"], "open");
        assert_eq!(e["kind"], "alert");
        assert_eq!(e["severity"], "high");
        assert_eq!(e["time"], "2023-11-14T22:15:00.000Z");
        assert_eq!(e["title"], "AWS S3 buckets are accessible to public");
        assert_eq!(e["resource"]["region"], "us-west-2");
        assert_eq!(e["resource"]["account_id"], "123456789012");
        assert_eq!(e["resource"]["cloud"], "aws");
        assert_eq!(e["ocsf"]["class_uid"], 2003, "complianceMetadata present");
        assert!(e.get("normalization_warnings").is_none(), "{e}");
        let raw: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(e["raw"], raw[0]);
    }

    #[test]
    fn asyncapi_shape_and_lifecycle() {
        let body = r#"{"notification_type":"alert.resolved","alert_id":"P-9","alert_status":"resolved",
            "policy_name":"p","cloud_type":"gcp","severity":"critical","timestamp":"2024-01-02T03:04:05Z"}"#;
        let e = &run(body).unwrap()[0];
        assert_eq!(e["id"], "P-9:resolved:1704164645000");
        assert_eq!(e["status"], "resolved");
        assert_eq!(e["time"], "2024-01-02T03:04:05.000Z");
        assert_eq!(e["ocsf"]["class_uid"], 2004);
        assert_eq!(e["ocsf"]["activity_id"], 3);
        assert_eq!(e["severity_id"], 5);
    }

    /// Every status word and notification type: (body fields, status, activity, id).
    #[test]
    fn status_and_activity_table() {
        let table: &[(&str, &str, u32, &str)] = &[
            (
                r#""alertStatus":"open","reason":"NEW_ALERT""#,
                "open",
                1,
                "P-1:open:NEW_ALERT:9",
            ),
            (r#""alertStatus":"open""#, "open", 1, "P-1:open:9"),
            (
                r#""alertStatus":"open","reason":"USER_REOPENED""#,
                "open",
                2,
                "P-1:open:USER_REOPENED:9",
            ),
            (
                r#""alertStatus":"open","reason":"SNOOZED_AUTO_REOPEN""#,
                "open",
                2,
                "P-1:open:SNOOZED_AUTO_REOPEN:9",
            ),
            (
                r#""alertStatus":"open","reason":"MDC_REOPEN_FOR_ACCIDENTAL_DELETE""#,
                "open",
                2,
                "P-1:open:MDC_REOPEN_FOR_ACCIDENTAL_DELETE:9",
            ),
            (
                r#""alertStatus":"pending_resolution""#,
                "open",
                2,
                "P-1:pending_resolution:9",
            ),
            (
                r#""alertStatus":"RESOLVED","reason":"RESOURCE_UPDATED""#,
                "resolved",
                3,
                "P-1:resolved:RESOURCE_UPDATED:9",
            ),
            (
                r#""alertStatus":"dismissed","reason":"USER_DISMISSED""#,
                "dismissed",
                2,
                "P-1:dismissed:USER_DISMISSED:9",
            ),
            (r#""alertStatus":"snoozed""#, "snoozed", 2, "P-1:snoozed:9"),
            (
                r#""notification_type":"alert.created","alert_status":"open""#,
                "open",
                1,
                "P-1:open:9",
            ),
            (
                r#""notification_type":"alert.updated","alert_status":"open""#,
                "open",
                2,
                "P-1:open:9",
            ),
            (
                r#""notification_type":"alert.updated","alert_status":"snoozed""#,
                "snoozed",
                2,
                "P-1:snoozed:9",
            ),
            (
                r#""notification_type":"alert.resolved""#,
                "resolved",
                3,
                "P-1:resolved:9",
            ),
            (
                r#""notification_type":"alert.dismissed","alert_status":"dismissed""#,
                "dismissed",
                2,
                "P-1:dismissed:9",
            ),
        ];
        for &(fields, status, activity, id) in table {
            let body = format!(r#"{{"alertId":"P-1","alertTs":9,{fields}}}"#);
            let e = &run(&body).unwrap()[0];
            assert_eq!(e["status"], status, "{fields}");
            assert_eq!(e["ocsf"]["activity_id"], activity, "{fields}");
            assert_eq!(e["ocsf"]["type_uid"], 200400 + activity, "{fields}");
            assert_eq!(e["id"], id, "{fields}");
            assert!(e.get("normalization_warnings").is_none(), "{e}");
        }
    }

    #[test]
    fn a_reopen_is_a_new_notification_and_a_retry_is_not() {
        let open = r#"[{"alertId":"P-7","alertStatus":"open","reason":"NEW_ALERT","alertTs":100,"lastSeen":100}]"#;
        let reopen = r#"[{"alertId":"P-7","alertStatus":"open","reason":"USER_REOPENED","alertTs":100,"lastSeen":500}]"#;
        let again = r#"[{"alertId":"P-7","alertStatus":"open","reason":"USER_REOPENED","alertTs":100,"lastSeen":900}]"#;
        let ids: Vec<serde_json::Value> = [open, reopen, again, reopen]
            .iter()
            .map(|b| run(b).unwrap()[0]["id"].clone())
            .collect();
        assert_eq!(ids[0], "P-7:open:NEW_ALERT:100");
        assert_eq!(ids[1], "P-7:open:USER_REOPENED:500");
        assert_eq!(ids[2], "P-7:open:USER_REOPENED:900");
        assert_eq!(ids[3], ids[1], "a retry keeps its id");
    }

    #[test]
    fn test_messages_and_wrong_types() {
        let e = &run(r#"[{"alertId":"P-0","alertStatus":"open"}]"#).unwrap()[0];
        assert_eq!(e["kind"], "test");
        let e = &run(r#"{"sender":"Test Notification","alertId":"T-0"}"#).unwrap()[0];
        assert_eq!(e["kind"], "test");
        let e = &run(r#"[{"alertId":"P-2","alertTs":"soon","severity":7,"policyName":["x"]}]"#)
            .unwrap()[0];
        assert_eq!(e["id"], "P-2:open");
        let w = e["normalization_warnings"].as_array().unwrap();
        assert_eq!(w.len(), 4, "{w:?}");
        assert_eq!(e["time"], "1970-01-01T00:00:00.005Z", "received_at used");
        assert!(matches!(
            run("[1]"),
            Err(DecodeError::Shape { offset: 1, .. })
        ));
        assert!(matches!(
            run("[{}, {\"a\" 1}]"),
            Err(DecodeError::Malformed { offset: 10, .. })
        ));
        assert!(matches!(
            run(r#""x""#),
            Err(DecodeError::Shape { offset: 0, .. })
        ));
    }
}
