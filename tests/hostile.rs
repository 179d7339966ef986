//! Attacks on the real binary on loopback, each with a legitimate signed sender alongside: the
//! attack gets its precise answer, nothing it sends reaches a sink, memory stays bounded, and the
//! legitimate sender keeps being served. Every attack loop is bounded in count and time.
//!
//! * `connections`: idle and slow connections, per-IP caps, HTTP/2 streams, bytes in flight.
//! * `requests`: per-request work (events per request, queue bounds) and replays.
//! * `identity`: output escaping, TLS and mTLS identity.
//! * `state`: bounded admin state (source churn and `/metrics`, `admin.max_sources`), failed
//!   admin authentication, refusal logs at a bounded rate, `.`/`..` ids, config errors that
//!   never print a value.

mod common;

#[path = "hostile/connections.rs"]
mod connections;
#[path = "hostile/identity.rs"]
mod identity;
#[path = "hostile/requests.rs"]
mod requests;
#[path = "hostile/state.rs"]
mod state;
