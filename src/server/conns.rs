//! The connection table of one listener: who holds a connection slot, per client address and in
//! total, and which connections are idle. New connections are admitted after `accept` (never left
//! waiting in the kernel backlog): a client address over `max_connections_per_ip` is refused at
//! once; at `max_connections` the connection idle the longest is told to close to make room (a
//! connection with a request in flight is never chosen), and only when every connection is busy is
//! the new one refused. Refusals and evictions are counted and logged at a bounded rate.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::metrics::ConnMetrics;
use tokio_util::sync::CancellationToken;

/// The address a per-client limit is keyed on: IPv4-mapped IPv6 addresses count as the IPv4
/// address, and an IPv6 client as its /64 (one host usually owns a whole /64).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// Why a new connection was closed without being served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Its client address already holds `max_connections_per_ip` connections.
    PerIpLimit,
    /// `max_connections` are open and every one has a request in flight.
    AtCapacity,
}

/// What a connection's task and its request handlers share: requests in flight, when the last
/// one ended, and the signal to close.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    /// Requests started on this connection.
    started: AtomicU64,
    /// Milliseconds after `epoch` when the connection last had a request end (or was opened).
    last_ms: AtomicU64,
    /// Cancelled when the table evicts this connection to make room.
    pub evicted: CancellationToken,
}

impl Activity {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A request started: the connection is busy until the returned guard drops.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.started.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Whether any request has started on this connection.
    pub fn any_request(&self) -> bool {
        self.started.load(Ordering::Relaxed) > 0
    }

    /// How long the connection has had no request in flight (zero while one is).
    pub fn idle_for(&self) -> Duration {
        if self.in_flight() > 0 {
            return Duration::ZERO;
        }
        let last = self.last_ms.load(Ordering::Acquire);
        Duration::from_millis(self.now_ms().saturating_sub(last))
    }
}

/// Marks one request in flight on its connection; dropping it (the answer was produced, or the
/// request was abandoned) makes the connection idle again if it was the last.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.last_ms.store(self.0.now_ms(), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Entry {
    ip: IpAddr,
    activity: Arc<Activity>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    conns: HashMap<u64, Entry>,
    per_ip: HashMap<IpAddr, usize>,
}

impl Inner {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.conns.remove(&id)?;
        if let Some(n) = self.per_ip.get_mut(&entry.ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&entry.ip);
            }
        }
        Some(entry)
    }
}

/// One listener's connections.
pub struct ConnTable {
    listener: &'static str,
    epoch: Instant,
    max: usize,
    per_ip: usize,
    inner: Mutex<Inner>,
    metrics: ConnMetrics,
    log_per_ip: LogLimiter,
    log_capacity: LogLimiter,
    log_evicted: LogLimiter,
}

impl ConnTable {
    pub fn new(
        listener: &'static str,
        max: usize,
        per_ip: usize,
        metrics: ConnMetrics,
    ) -> ConnTable {
        ConnTable {
            listener,
            epoch: Instant::now(),
            max,
            per_ip,
            inner: Mutex::new(Inner::default()),
            metrics,
            log_per_ip: LogLimiter::default(),
            log_capacity: LogLimiter::default(),
            log_evicted: LogLimiter::default(),
        }
    }

    pub fn metrics(&self) -> &ConnMetrics {
        &self.metrics
    }

    /// Takes a slot for a new connection from `ip`, evicting the longest-idle connection when
    /// the listener is full. The refusal is counted and logged (at most once a second per
    /// reason, with the number left unlogged).
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Refused> {
        let ip = client_key(peer);
        let result = self.try_admit(ip);
        match &result {
            Ok(_) => {}
            Err(Refused::PerIpLimit) => {
                self.metrics.refused_per_ip.increment(1);
                if let Some(suppressed) = self.log_per_ip.allow(self.epoch) {
                    tracing::warn!(
                        listener = self.listener,
                        client = %ip,
                        limit = self.per_ip,
                        suppressed,
                        "connection refused: too many connections from this client address"
                    );
                }
            }
            Err(Refused::AtCapacity) => {
                self.metrics.refused_at_capacity.increment(1);
                if let Some(suppressed) = self.log_capacity.allow(self.epoch) {
                    tracing::warn!(
                        listener = self.listener,
                        client = %ip,
                        limit = self.max,
                        suppressed,
                        "connection refused: every connection has a request in flight"
                    );
                }
            }
        }
        result
    }

    fn try_admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // A cap of `max` or more is no per-address cap: the total decides (and evicts).
        if self.per_ip < self.max && inner.per_ip.get(&ip).copied().unwrap_or(0) >= self.per_ip {
            return Err(Refused::PerIpLimit);
        }
        if inner.conns.len() >= self.max {
            let victim = inner
                .conns
                .iter()
                .filter(|(_, e)| e.activity.in_flight() == 0)
                // Idle the longest; of equally idle ones, the oldest.
                .max_by_key(|(id, e)| (e.activity.idle_for(), std::cmp::Reverse(**id)))
                .map(|(id, _)| *id);
            let Some(victim) = victim.and_then(|id| inner.remove(id)) else {
                return Err(Refused::AtCapacity);
            };
            victim.activity.evicted.cancel();
            self.metrics.evicted.increment(1);
            if let Some(suppressed) = self.log_evicted.allow(self.epoch) {
                tracing::info!(
                    listener = self.listener,
                    client = %victim.ip,
                    limit = self.max,
                    suppressed,
                    "closing the longest-idle connection to make room for a new one"
                );
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let activity = Arc::new(Activity {
            epoch: self.epoch,
            in_flight: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            last_ms: AtomicU64::new(0),
            evicted: CancellationToken::new(),
        });
        activity.last_ms.store(activity.now_ms(), Ordering::Release);
        inner.conns.insert(
            id,
            Entry {
                ip,
                activity: activity.clone(),
            },
        );
        *inner.per_ip.entry(ip).or_insert(0) += 1;
        self.metrics.open.set(inner.conns.len() as f64);
        Ok(Slot {
            table: self.clone(),
            id,
            activity,
        })
    }
}

/// A connection's slot in its table; dropping it frees the slot (unless an eviction already did).
pub struct Slot {
    table: Arc<ConnTable>,
    id: u64,
    activity: Arc<Activity>,
}

impl Slot {
    pub fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.table.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.remove(self.id);
        self.table.metrics.open.set(inner.conns.len() as f64);
    }
}

/// Lets one log line through per second and counts the ones it holds back, so a flood of
/// refusals costs a counter increment each, not a log line each.
#[derive(Default)]
struct LogLimiter {
    /// Milliseconds after the table's epoch before which nothing more is logged.
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimiter {
    const EVERY_MS: u64 = 1000;

    /// `Some(lines held back since the last one)` when this one may be logged.
    fn allow(&self, epoch: Instant) -> Option<u64> {
        let now = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now + Self::EVERY_MS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use metrics::{Counter, Gauge};

    fn table(max: usize, per_ip: usize) -> Arc<ConnTable> {
        let m = || Counter::noop();
        Arc::new(ConnTable::new(
            "test",
            max,
            per_ip,
            ConnMetrics {
                refused_per_ip: m(),
                refused_at_capacity: m(),
                evicted: m(),
                closed_idle: m(),
                closed_max_age: m(),
                open: Gauge::noop(),
            },
        ))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn client_keys() {
        assert_eq!(client_key(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
        assert_eq!(
            client_key(ip("2001:db8::1")),
            client_key(ip("2001:db8::ffff:2"))
        );
        assert_ne!(
            client_key(ip("2001:db8::1")),
            client_key(ip("2001:db8:0:1::1"))
        );
    }

    #[test]
    fn per_ip_cap_frees_on_drop() {
        let t = table(10, 2);
        let a = t.admit(ip("10.0.0.1")).unwrap();
        let _b = t.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(t.admit(ip("10.0.0.1")).err(), Some(Refused::PerIpLimit));
        let _c = t.admit(ip("10.0.0.2")).unwrap();
        drop(a);
        assert!(t.admit(ip("10.0.0.1")).is_ok());
    }

    #[test]
    fn a_per_ip_cap_of_max_connections_leaves_the_total_to_decide() {
        let t = table(2, 2);
        let old = t.admit(ip("10.0.0.1")).unwrap();
        let _b = t.admit(ip("10.0.0.1")).unwrap();
        let _c = t.admit(ip("10.0.0.1")).unwrap();
        assert!(old.activity().evicted.is_cancelled());
    }

    #[test]
    fn full_table_evicts_the_longest_idle_and_never_a_busy_one() {
        let t = table(2, 2);
        let old = t.admit(ip("10.0.0.1")).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let busy = t.admit(ip("10.0.0.2")).unwrap();
        let request = busy.activity().begin();
        let new = t.admit(ip("10.0.0.3")).unwrap();
        assert!(old.activity().evicted.is_cancelled());
        assert!(!busy.activity().evicted.is_cancelled());
        // Both remaining are busy: the next one is refused.
        let _r2 = new.activity().begin();
        assert_eq!(t.admit(ip("10.0.0.4")).err(), Some(Refused::AtCapacity));
        drop(request);
        let _fourth = t.admit(ip("10.0.0.4")).unwrap();
        assert!(busy.activity().evicted.is_cancelled());
        // The evicted slots' drops do not free a second time.
        drop(old);
        drop(busy);
        assert_eq!(t.inner.lock().unwrap().conns.len(), 2);
    }

    #[test]
    fn log_limiter_lets_one_line_a_second() {
        let l = LogLimiter::default();
        let epoch = Instant::now();
        assert_eq!(l.allow(epoch), Some(0));
        assert_eq!(l.allow(epoch), None);
        assert_eq!(l.allow(epoch), None);
        l.next_ms.store(0, Ordering::Relaxed);
        assert_eq!(l.allow(epoch), Some(2));
    }
}
