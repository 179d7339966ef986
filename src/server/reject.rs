//! `Reject`: every way a webhook request is refused, and the one exhaustive match that chooses
//! its status code, metric reason label and log level. Bad input from a caller is logged at
//! debug or warn, never error.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use tracing::Level;

use crate::auth::AuthError;
use crate::dispatch::DispatchError;
use crate::vendors::DecodeError;

/// Seconds a sender is asked to wait when a queue is full.
pub const RETRY_AFTER_SECS: &str = "5";
/// Seconds a sender is asked to wait when the body budget is spent: bodies in flight are
/// answered within the body timeout, most within milliseconds.
pub const BODY_BUDGET_RETRY_AFTER_SECS: &str = "1";

#[derive(Debug)]
pub enum Reject {
    UnknownSource,
    MethodNotAllowed,
    IpNotAllowed,
    ClientCertRequired,
    /// A verified client certificate that is not for client authentication, or not one of
    /// the source's allowed identities: why, in words.
    ClientCertNotAllowed(&'static str),
    Auth(AuthError),
    BodyTooLarge {
        limit: u64,
    },
    BodyTimeout,
    BodyRead,
    /// The body does not fit in the budget of body bytes in flight (`max_inflight_body_bytes`,
    /// or the sender's share of it); refused before more of it is read.
    BodyBudget,
    Decode(DecodeError),
    /// More events than `max_events_per_request`: the request can never be taken whole.
    TooManyEvents {
        limit: usize,
    },
    /// More events (or bytes) for one sink than its whole queue holds: it can never fit.
    BatchTooLarge {
        sink: String,
    },
    QueueFull {
        sink: String,
    },
    /// The same request (de-duplication key) is being queued by another connection.
    DuplicateInFlight,
    /// A disk queue could not write (or fsync) the events in time.
    QueueWrite,
    /// A Kafka queue's producer or brokers refused an event as too large: it can never be
    /// taken as it is (the request's other events were delivered).
    EventTooLarge {
        sink: String,
        reason: std::sync::Arc<str>,
    },
    Internal(&'static str),
}

impl From<DispatchError> for Reject {
    fn from(e: DispatchError) -> Reject {
        match e {
            DispatchError::Decode(e) => Reject::Decode(e),
            DispatchError::TooManyEvents { limit } => Reject::TooManyEvents { limit },
            DispatchError::BatchTooLarge { sink } => Reject::BatchTooLarge { sink },
            DispatchError::QueueFull { sink } => Reject::QueueFull { sink },
            DispatchError::QueueWrite => Reject::QueueWrite,
            DispatchError::EventTooLarge { sink, reason } => Reject::EventTooLarge { sink, reason },
            DispatchError::Internal(why) => Reject::Internal(why),
        }
    }
}

impl Reject {
    /// Every reason label, pre-registered per source in metrics.
    pub const REASONS: [&'static str; 24] = crate::metrics::REJECT_REASONS;

    /// Status, reason label and log level: the only place these are chosen.
    pub fn class(&self) -> (StatusCode, &'static str, Level) {
        match self {
            Reject::UnknownSource => (StatusCode::NOT_FOUND, "unknown_source", Level::DEBUG),
            Reject::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                Level::DEBUG,
            ),
            Reject::IpNotAllowed => (StatusCode::FORBIDDEN, "ip_not_allowed", Level::WARN),
            Reject::ClientCertRequired => (
                StatusCode::UNAUTHORIZED,
                "client_cert_required",
                Level::WARN,
            ),
            Reject::ClientCertNotAllowed(_) => (
                StatusCode::FORBIDDEN,
                "client_cert_not_allowed",
                Level::WARN,
            ),
            Reject::Auth(e @ AuthError::Missing(_)) => {
                (StatusCode::UNAUTHORIZED, e.reason(), Level::WARN)
            }
            Reject::Auth(
                e @ (AuthError::Mismatch
                | AuthError::Malformed(_)
                | AuthError::TimestampOutOfWindow),
            ) => (StatusCode::FORBIDDEN, e.reason(), Level::WARN),
            Reject::BodyTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", Level::WARN)
            }
            Reject::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, "body_timeout", Level::WARN),
            Reject::BodyRead => (StatusCode::BAD_REQUEST, "body_read_failed", Level::DEBUG),
            Reject::BodyBudget => (
                StatusCode::SERVICE_UNAVAILABLE,
                "body_budget_exhausted",
                Level::WARN,
            ),
            Reject::Decode(DecodeError::InvalidUtf8 { .. }) => {
                (StatusCode::BAD_REQUEST, "invalid_utf8", Level::WARN)
            }
            Reject::Decode(DecodeError::Malformed { .. }) => {
                (StatusCode::BAD_REQUEST, "malformed_json", Level::WARN)
            }
            Reject::Decode(DecodeError::TooDeep { .. }) => {
                (StatusCode::BAD_REQUEST, "too_deep", Level::WARN)
            }
            Reject::Decode(DecodeError::Shape { .. }) => {
                (StatusCode::BAD_REQUEST, "unexpected_shape", Level::WARN)
            }
            Reject::TooManyEvents { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_events",
                Level::WARN,
            ),
            Reject::BatchTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "batch_too_large",
                Level::WARN,
            ),
            Reject::QueueFull { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "queue_full", Level::WARN)
            }
            Reject::DuplicateInFlight => (
                StatusCode::SERVICE_UNAVAILABLE,
                "duplicate_in_flight",
                Level::DEBUG,
            ),
            Reject::QueueWrite => (
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_write_failed",
                Level::ERROR,
            ),
            Reject::EventTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "event_too_large",
                Level::WARN,
            ),
            Reject::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", Level::ERROR),
        }
    }

    pub fn reason_index(&self) -> usize {
        crate::metrics::reject_reason_index(self.class().1)
    }

    /// Human detail for the error body. Never names a secret or says which one came close.
    pub fn detail(&self) -> String {
        match self {
            Reject::UnknownSource => "no source is configured at this path".to_owned(),
            Reject::MethodNotAllowed => "use POST or PUT".to_owned(),
            Reject::IpNotAllowed => {
                "the sender's address is not in this source's allowed_ips".to_owned()
            }
            Reject::ClientCertRequired => {
                "this source requires a TLS client certificate".to_owned()
            }
            Reject::ClientCertNotAllowed(why) => (*why).to_owned(),
            Reject::Auth(e) => e.to_string(),
            Reject::BodyTooLarge { limit } => format!("request body exceeds {limit} bytes"),
            Reject::BodyTimeout => "request body was not received in time".to_owned(),
            Reject::BodyRead => "request body could not be read".to_owned(),
            Reject::BodyBudget => "too many request bodies in flight; retry later".to_owned(),
            Reject::Decode(e) => e.to_string(),
            Reject::TooManyEvents { limit } => format!(
                "request holds more than {limit} events (server.limits.max_events_per_request); split it"
            ),
            Reject::BatchTooLarge { sink } => format!(
                "request holds more events or bytes for sink {sink} than its whole queue; split it"
            ),
            Reject::QueueFull { sink } => format!("sink {sink} is full; retry later"),
            Reject::DuplicateInFlight => {
                "the same request is being accepted on another connection; retry".to_owned()
            }
            Reject::QueueWrite => {
                "the events could not be written to the queue in time; retry later".to_owned()
            }
            Reject::EventTooLarge { sink, reason } => format!(
                "an event for sink {sink} is larger than its Kafka brokers take ({reason}); it can never be taken as it is, and the request's other events were delivered"
            ),
            Reject::Internal(what) => (*what).to_owned(),
        }
    }

    pub fn response(&self) -> Response<Full<Bytes>> {
        let (status, reason, _) = self.class();
        let mut resp = json_response(
            status,
            &ErrorBody {
                error: reason,
                detail: &self.detail(),
            },
        );
        let headers = resp.headers_mut();
        match self {
            Reject::QueueFull { .. } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECS),
                );
            }
            Reject::DuplicateInFlight => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Reject::QueueWrite => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECS),
                );
            }
            // Refused before its body was read: the connection cannot be reused.
            Reject::BodyBudget => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(BODY_BUDGET_RETRY_AFTER_SECS),
                );
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Reject::MethodNotAllowed => {
                headers.insert(header::ALLOW, HeaderValue::from_static("POST, PUT"));
            }
            // The rest of the body was not read: the connection cannot be reused.
            Reject::BodyTooLarge { .. } | Reject::BodyTimeout | Reject::BodyRead => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        resp
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    detail: &'a str,
}

/// A response with a JSON body.
pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_listed() {
        let samples = [
            Reject::UnknownSource,
            Reject::MethodNotAllowed,
            Reject::IpNotAllowed,
            Reject::ClientCertRequired,
            Reject::ClientCertNotAllowed("x"),
            Reject::Auth(AuthError::Missing("x")),
            Reject::Auth(AuthError::Mismatch),
            Reject::Auth(AuthError::Malformed("x")),
            Reject::Auth(AuthError::TimestampOutOfWindow),
            Reject::BodyTooLarge { limit: 1 },
            Reject::BodyTimeout,
            Reject::BodyRead,
            Reject::BodyBudget,
            Reject::Decode(DecodeError::InvalidUtf8 { offset: 0 }),
            Reject::Decode(DecodeError::Malformed {
                offset: 0,
                message: String::new(),
            }),
            Reject::Decode(DecodeError::TooDeep {
                offset: 0,
                limit: 1,
            }),
            Reject::Decode(DecodeError::Shape {
                offset: 0,
                expected: "",
            }),
            Reject::TooManyEvents { limit: 1 },
            Reject::BatchTooLarge {
                sink: String::new(),
            },
            Reject::QueueFull {
                sink: String::new(),
            },
            Reject::DuplicateInFlight,
            Reject::QueueWrite,
            Reject::EventTooLarge {
                sink: String::new(),
                reason: "".into(),
            },
            Reject::Internal(""),
        ];
        for (i, r) in samples.iter().enumerate() {
            assert_eq!(r.reason_index(), i, "{r:?}");
            assert_eq!(Reject::REASONS[i], r.class().1);
        }
        for r in &samples[5..9] {
            let (status, reason, _) = r.class();
            assert_eq!(
                status.as_u16(),
                if reason == "missing_credential" {
                    401
                } else {
                    403
                }
            );
        }
    }
}
