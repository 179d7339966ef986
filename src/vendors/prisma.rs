//! Prisma Cloud (CSPM) alert webhooks, in both shapes that exist:
//!
//! * the webhook integration's body: a JSON array of camelCase alert objects (`alertId`,
//!   `alertStatus`, `policyName`, `severity`, `alertTs` in epoch ms, `complianceMetadata`, ...);
//! * the AsyncAPI shape: one snake_case object per request (`notification_type`, `alert_id`,
//!   `alert_status`, `timestamp` in RFC 3339, ...), recognized by `notification_type`/`alert_id`.
//!
//! A single camelCase object is accepted too. Test notifications (`alertId` `P-0`, or
//! `sender` "Test Notification") become `kind = test`. The same alert arrives again with each
//! status change, so the Event id is `<alertId>:<status>`. Admins can edit Prisma's payload, so
//! every field is optional and a field of the wrong type only adds a warning.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::fields::{
    epoch_millis, non_empty_container, rfc3339, severity, text, text_or_number, Warnings,
};
use super::json::parse_object;
use super::{emit_each_object, Context, DecodeError, Vendor};
use crate::normalize::{Event, EventId, Kind, Ocsf, Status};

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
}

pub fn decode<'a, F>(body: &'a str, ctx: &Context<'a>, emit: F) -> Result<usize, DecodeError>
where
    F: FnMut(Event<'a>) -> std::ops::ControlFlow<()>,
{
    emit_each_object(
        body,
        "a JSON array of Prisma Cloud alerts, or one alert object",
        |raw, offset| normalize(raw, offset, ctx),
        emit,
    )
}

/// Prisma's status words (and the AsyncAPI notification types) to the Event lifecycle, with
/// the word used in the Event id and the OCSF finding activity (1 Create, 2 Update, 3 Close).
fn lifecycle(word: &str) -> Option<(Status, &'static str, u32)> {
    const TABLE: &[(&str, Status, &str, u32)] = &[
        ("open", Status::Open, "open", 1),
        ("alert.created", Status::Open, "open", 1),
        ("alert.updated", Status::Updated, "updated", 2),
        (
            "pending_resolution",
            Status::Updated,
            "pending_resolution",
            2,
        ),
        ("resolved", Status::Resolved, "resolved", 3),
        ("alert.resolved", Status::Resolved, "resolved", 3),
        ("dismissed", Status::Dismissed, "dismissed", 3),
        ("alert.dismissed", Status::Dismissed, "dismissed", 3),
        ("snoozed", Status::Snoozed, "snoozed", 2),
    ];
    TABLE
        .iter()
        .find(|(w, ..)| w.eq_ignore_ascii_case(word))
        .map(|&(_, s, id, a)| (s, id, a))
}

fn normalize<'a>(
    raw: &'a RawValue,
    offset: usize,
    ctx: &Context<'a>,
) -> Result<Event<'a>, DecodeError> {
    let a: Alert<'a> = parse_object(raw, offset)?;
    let mut e = Event::new(Vendor::PrismaCloud, ctx.source, raw, ctx.received_at);
    let w: &mut Warnings = &mut e.normalization_warnings;

    let alert_id = text_or_number(a.alert_id.or(a.alert_id_snake), "alertId: not a string", w);
    let status_word = text(
        a.alert_status.or(a.alert_status_snake),
        "alertStatus: not a string",
        w,
    );
    let notification = text(a.notification_type, "notification_type: not a string", w);
    let life = notification
        .as_deref()
        .and_then(lifecycle)
        .or_else(|| status_word.as_deref().and_then(lifecycle));
    if life.is_none() && (status_word.is_some() || notification.is_some()) {
        w.push("alertStatus: unknown status");
    }
    let (status, status_id, activity) = life.unwrap_or((Status::Open, "open", 1));
    e.status = status;

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
    e.resource.region = text(a.resource_region_id, "resourceRegionId: not a string", w)
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
        e.id = EventId::Joined(id, status_id);
    } else {
        e.normalization_warnings
            .push("alertId: missing, id is a hash of the alert");
    }
    if !a.recognised() {
        e.mark_unrecognized();
    }
    Ok(e)
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

    #[test]
    fn webhook_array_maps_every_field() {
        let body = include_str!("../../fixtures/vendors/prisma_cloud-webhook-alert-open.json");
        let events = run(body).unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e["id"], "P-51307:open");
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
        assert_eq!(e["id"], "P-9:resolved");
        assert_eq!(e["status"], "resolved");
        assert_eq!(e["time"], "2024-01-02T03:04:05.000Z");
        assert_eq!(e["ocsf"]["class_uid"], 2004);
        assert_eq!(e["ocsf"]["activity_id"], 3);
        assert_eq!(e["severity_id"], 5);
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
