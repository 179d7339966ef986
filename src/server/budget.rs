//! The global budget of request body bytes in flight on the hooks listener. A request reserves
//! its declared Content-Length before any of its body is read, or, without one, each data frame
//! as it arrives; what does not fit is refused (503 with Retry-After) before more is read. One
//! client address may hold at most a share of the budget, so a single host cannot starve the
//! others. Reservations are released when the request is answered.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use super::conns::client_key;

/// The budget did not have room for the bytes asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted;

#[derive(Default)]
struct Inner {
    used: u64,
    per_client: HashMap<IpAddr, u64>,
}

pub struct BodyBudget {
    total: u64,
    /// What one client address may hold: a quarter of the total, but at least one body of the
    /// largest size (or the total, if smaller).
    per_client: u64,
    inner: Mutex<Inner>,
}

impl BodyBudget {
    pub fn new(total: u64, max_body_bytes: u64) -> BodyBudget {
        BodyBudget {
            total,
            per_client: (total / 4).max(max_body_bytes).min(total),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// An empty reservation for a request from `peer`.
    pub fn reservation(&self, peer: IpAddr) -> Reservation<'_> {
        Reservation {
            budget: self,
            client: client_key(peer),
            bytes: 0,
        }
    }

    /// Bytes reserved now, by everyone.
    pub fn used(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).used
    }

    fn take(&self, client: IpAddr, n: u64) -> Result<(), Exhausted> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mine = inner.per_client.get(&client).copied().unwrap_or(0);
        if inner.used.saturating_add(n) > self.total || mine.saturating_add(n) > self.per_client {
            return Err(Exhausted);
        }
        inner.used += n;
        *inner.per_client.entry(client).or_insert(0) += n;
        Ok(())
    }

    fn give_back(&self, client: IpAddr, n: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.used = inner.used.saturating_sub(n);
        if let Some(mine) = inner.per_client.get_mut(&client) {
            *mine = mine.saturating_sub(n);
            if *mine == 0 {
                inner.per_client.remove(&client);
            }
        }
    }
}

/// Bytes one request holds in the budget; given back on drop.
pub struct Reservation<'a> {
    budget: &'a BodyBudget,
    client: IpAddr,
    bytes: u64,
}

impl Reservation<'_> {
    /// Makes sure `total` bytes are reserved, taking only what is not yet.
    pub fn ensure(&mut self, total: u64) -> Result<(), Exhausted> {
        if total <= self.bytes {
            return Ok(());
        }
        let more = total - self.bytes;
        self.budget.take(self.client, more)?;
        self.bytes = total;
        Ok(())
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.budget.give_back(self.client, self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn total_and_per_client_shares() {
        let b = BodyBudget::new(100, 10);
        let mut a1 = b.reservation(ip("10.0.0.1"));
        a1.ensure(25).unwrap();
        let mut a2 = b.reservation(ip("10.0.0.1"));
        assert_eq!(
            a2.ensure(1),
            Err(Exhausted),
            "a client's share is a quarter"
        );
        let mut others: Vec<_> = (2..5)
            .map(|i| {
                let mut r = b.reservation(ip(&format!("10.0.0.{i}")));
                r.ensure(25).unwrap();
                r
            })
            .collect();
        assert_eq!(b.used(), 100);
        let mut late = b.reservation(ip("10.0.0.9"));
        assert_eq!(late.ensure(1), Err(Exhausted), "the total is spent");
        others.pop();
        late.ensure(10).unwrap();
        late.ensure(4).unwrap();
        assert_eq!(b.used(), 85);
        drop((a1, late, others));
        assert_eq!(b.used(), 0);
        a2.ensure(25).unwrap();
    }

    #[test]
    fn a_client_may_always_hold_one_full_body() {
        let b = BodyBudget::new(100, 60);
        let mut r = b.reservation(ip("10.0.0.1"));
        r.ensure(60).unwrap();
        let mut r2 = b.reservation(ip("10.0.0.2"));
        assert_eq!(r2.ensure(60), Err(Exhausted));
        r2.ensure(40).unwrap();
    }
}
