//! The ops listener: `/metrics` (Prometheus text), `/healthz` (the process answers) and
//! `/readyz` (listeners up, every sink's destination healthy and its queue below the
//! high-water mark). Plaintext, meant for loopback or a cluster-internal port.
//!
//! Readiness follows the role (`serve --role`): an intake node is ready while its hooks
//! listener accepts and its queues take events (a Kafka queue's last refusal, its producer
//! reaching a broker, the high-water mark); it delivers nothing, so destinations are not its
//! concern. A delivery worker has no
//! hooks listener: it is ready while it is not shutting down, its sinks' destinations accept
//! what it sends, and it reaches a broker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::Serialize;

use super::reject::json_response;
use crate::config::role::Role;
use crate::metrics::Registry;

/// A queue fuller than this fraction of either bound makes the gateway not ready, so a load
/// balancer can steer senders elsewhere before requests start getting 503.
pub const HIGH_WATER_MARK: f64 = 0.9;

pub struct Ops {
    pub registry: Arc<Registry>,
    /// The routing table; its sinks are the ones that run.
    pub routes: Arc<arc_swap::ArcSwap<crate::routes::Routes>>,
    /// Set once the hooks listener is bound (on a delivery-only node: once started); cleared
    /// when shutdown begins.
    pub accepting: AtomicBool,
    pub role: Role,
}

#[derive(Serialize)]
struct Readiness {
    status: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasons: Vec<String>,
}

impl Ops {
    pub fn not_ready_reasons(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if !self.accepting.load(Ordering::Relaxed) {
            reasons.push(match self.role.intakes() {
                true => "hooks listener is not accepting".to_owned(),
                false => "shutting down".to_owned(),
            });
        }
        let routes = self.routes.load();
        for sink in &routes.sinks {
            if self.role.delivers() && !sink.is_healthy() {
                match sink.failure() {
                    Some(why) => {
                        reasons.push(format!("sink {}: destination failing: {why}", sink.id))
                    }
                    None => reasons.push(format!("sink {}: destination failing", sink.id)),
                }
            }
            if let Some(problem) = sink.queue.problem() {
                reasons.push(format!("sink {}: queue refused: {problem}", sink.id));
            }
            let depth = sink.queue.depth();
            let limits = sink.queue.limits();
            if depth.events as f64 > limits.max_events as f64 * HIGH_WATER_MARK
                || depth.bytes as f64 > limits.max_bytes as f64 * HIGH_WATER_MARK
            {
                reasons.push(format!("sink {}: queue above high-water mark", sink.id));
            }
        }
        reasons
    }
}

pub async fn handle(ops: Arc<Ops>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/metrics" => {
            for sink in &ops.routes.load().sinks {
                sink.update_depth_gauges();
            }
            let mut resp = Response::new(Full::new(Bytes::from(ops.registry.render())));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            resp
        }
        "/healthz" => json_response(
            StatusCode::OK,
            &Readiness {
                status: "ok",
                reasons: Vec::new(),
            },
        ),
        "/readyz" => {
            let reasons = ops.not_ready_reasons();
            if reasons.is_empty() {
                json_response(
                    StatusCode::OK,
                    &Readiness {
                        status: "ready",
                        reasons,
                    },
                )
            } else {
                json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &Readiness {
                        status: "not_ready",
                        reasons,
                    },
                )
            }
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": "not_found", "detail": "try /metrics, /healthz or /readyz"}),
        ),
    }
}
