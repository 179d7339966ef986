//! Failed admin authentication, per client address: counted in a fixed window; past
//! `admin.max_auth_failures` the address is refused (429 with Retry-After, the token not even
//! compared) until its window ends, and failures are logged at a bounded rate — the first of a
//! window, and the one that starts the refusal, with how many were refused in the window
//! before. Memory is bounded: at most [`MAX_TRACKED`] addresses are remembered; past that,
//! addresses share one overflow entry (so a flood from many addresses is throttled together).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::AdminLimits;

/// Addresses remembered at once; each entry is a few dozen bytes.
pub const MAX_TRACKED: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
    /// Requests refused with 429 in this window (reported in the next log line).
    refused: u64,
}

/// What the caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Check the token.
    Check,
    /// Refuse without checking; the window ends in this long.
    Refuse { retry_after: Duration },
}

/// What a failure should log, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureLog {
    /// Nothing: a line about this address was written in this window already.
    Quiet,
    /// The first failure of a window (with what the previous window refused).
    First { refused_before: u64 },
    /// The failure that reaches the limit: refusals start.
    Throttled {
        failures: u32,
        retry_after: Duration,
    },
}

pub struct AuthThrottle {
    limits: AdminLimits,
    clients: Mutex<Clients>,
}

#[derive(Default)]
struct Clients {
    by_ip: HashMap<IpAddr, Window>,
    overflow: Option<Window>,
    /// Refusals of windows that ended, per address, reported with the next failure.
    carried: HashMap<IpAddr, u64>,
}

impl AuthThrottle {
    pub fn new(limits: AdminLimits) -> AuthThrottle {
        AuthThrottle {
            limits,
            clients: Mutex::default(),
        }
    }

    /// Whether `ip` may have its token checked at `now`; counts a refusal when not.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Verdict {
        let mut c = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let window = self.limits.auth_failure_window;
        let max = self.limits.max_auth_failures;
        let Some(w) = c.entry(ip, now, window, false) else {
            return Verdict::Check;
        };
        if w.failures >= max {
            w.refused += 1;
            let retry_after = window.saturating_sub(now.saturating_duration_since(w.started));
            return Verdict::Refuse { retry_after };
        }
        Verdict::Check
    }

    /// Counts a failed authentication from `ip`; says what to log.
    pub fn failed(&self, ip: IpAddr, now: Instant) -> FailureLog {
        let mut c = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let window = self.limits.auth_failure_window;
        let max = self.limits.max_auth_failures;
        let Some(w) = c.entry(ip, now, window, true) else {
            return FailureLog::Quiet;
        };
        w.failures = w.failures.saturating_add(1);
        let failures = w.failures;
        let started = w.started;
        if failures == max {
            return FailureLog::Throttled {
                failures,
                retry_after: window.saturating_sub(now.saturating_duration_since(started)),
            };
        }
        if failures == 1 {
            let refused_before = c.carried.remove(&ip).unwrap_or(0);
            return FailureLog::First { refused_before };
        }
        FailureLog::Quiet
    }
}

impl Clients {
    /// The current window of `ip` (a fresh one when the last ended), created only when
    /// `create`; past [`MAX_TRACKED`] addresses, the shared overflow window.
    fn entry(
        &mut self,
        ip: IpAddr,
        now: Instant,
        window: Duration,
        create: bool,
    ) -> Option<&mut Window> {
        let fresh = Window {
            started: now,
            failures: 0,
            refused: 0,
        };
        let expired = |w: &Window| now.saturating_duration_since(w.started) >= window;
        if let Some(w) = self.by_ip.get(&ip).copied() {
            if expired(&w) {
                if w.refused > 0 && self.carried.len() < MAX_TRACKED {
                    *self.carried.entry(ip).or_default() += w.refused;
                }
                if !create {
                    self.by_ip.remove(&ip);
                    return None;
                }
                self.by_ip.insert(ip, fresh);
            }
            return self.by_ip.get_mut(&ip);
        }
        if !create {
            // An address without failures: only the overflow window may hold it back.
            return match &mut self.overflow {
                Some(o) if !expired(o) && self.by_ip.len() >= MAX_TRACKED => Some(o),
                _ => None,
            };
        }
        if self.by_ip.len() >= MAX_TRACKED {
            self.by_ip.retain(|_, w| !expired(w));
        }
        if self.by_ip.len() < MAX_TRACKED {
            return Some(self.by_ip.entry(ip).or_insert(fresh));
        }
        let o = self.overflow.get_or_insert(fresh);
        if expired(o) {
            *o = fresh;
        }
        Some(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn throttle(max: u32) -> AuthThrottle {
        AuthThrottle::new(AdminLimits {
            max_sources: 10,
            max_auth_failures: max,
            auth_failure_window: Duration::from_secs(60),
        })
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn refuses_after_the_limit_until_the_window_ends() {
        let t = throttle(3);
        let t0 = Instant::now();
        assert_eq!(t.check(ip(1), t0), Verdict::Check);
        assert_eq!(t.failed(ip(1), t0), FailureLog::First { refused_before: 0 });
        assert_eq!(t.failed(ip(1), t0), FailureLog::Quiet);
        assert_eq!(
            t.failed(ip(1), t0 + Duration::from_secs(10)),
            FailureLog::Throttled {
                failures: 3,
                retry_after: Duration::from_secs(50)
            }
        );
        assert_eq!(
            t.check(ip(1), t0 + Duration::from_secs(20)),
            Verdict::Refuse {
                retry_after: Duration::from_secs(40)
            }
        );
        // Another address is not affected.
        assert_eq!(t.check(ip(2), t0), Verdict::Check);
        // The window ends: checked again, and the next failure reports the refusals.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(t.check(ip(1), later), Verdict::Check);
        assert_eq!(
            t.failed(ip(1), later),
            FailureLog::First { refused_before: 1 }
        );
    }

    #[test]
    fn memory_is_bounded_and_the_overflow_is_throttled_together() {
        let t = throttle(2);
        let t0 = Instant::now();
        for n in 0..(MAX_TRACKED as u32 + 50) {
            t.failed(ip(n), t0);
        }
        let c = t.clients.lock().unwrap_or_else(PoisonError::into_inner);
        assert_eq!(c.by_ip.len(), MAX_TRACKED);
        assert_eq!(c.overflow.map(|o| o.failures), Some(50));
        drop(c);
        // Unknown addresses now share the overflow window, which is past its limit.
        assert!(matches!(t.check(ip(999_999), t0), Verdict::Refuse { .. }));
        // Known addresses keep their own count.
        assert_eq!(t.check(ip(0), t0), Verdict::Check);
    }
}
