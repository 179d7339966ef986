//! Send failures classified once, as retryable or a configuration problem, and the backoff
//! the worker loop applies to them (exponential, full jitter, capped). Events a destination
//! refuses for good are not failures of the send: they are part of its answer
//! (`sent::Partial::refused`, `sent::Settled::refused`).

use std::time::Duration;

/// Why (the rest of) a batch was not delivered, classified once by the sink that knows its
/// protocol; the worker loop acts on the class.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The destination may take the same events later (I/O error, timeout, busy). Nothing of
    /// this attempt counts as delivered; the batch is sent again after a backoff, or after
    /// `retry_after` when the destination asked for it.
    #[error("{reason}")]
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The destination refuses us until a configuration changes (bad token, untrusted
    /// certificate, wrong URL): the sink holds its queue, reports not ready, and keeps trying.
    #[error("{0}")]
    Config(String),
}

impl SendError {
    pub fn retryable(reason: impl Into<String>) -> SendError {
        SendError::Retryable {
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// How long the destination asked to wait, when it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Retryable { retry_after, .. } => *retry_after,
            SendError::Config(_) => None,
        }
    }
}

/// Exponential backoff with full jitter: each delay is uniform in `[0, min(cap, base * 2^n))`.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
    /// xorshift state for jitter; quality does not matter, only spreading retries apart.
    seed: u64,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64)
            | 1;
        Backoff {
            base,
            cap,
            attempt: 0,
            seed,
        }
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let nanos = ceiling.as_nanos().max(1) as u64;
        // At least a millisecond, so a hot failure loop never spins.
        Duration::from_nanos(self.seed % nanos).max(Duration::from_millis(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_stay_under_it() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut max_seen = Duration::ZERO;
        for attempt in 0..50 {
            let d = b.next_delay();
            let ceiling = Duration::from_millis(100)
                .saturating_mul(1 << attempt.min(20))
                .min(Duration::from_secs(2));
            assert!(
                d <= ceiling.max(Duration::from_millis(1)),
                "{d:?} > {ceiling:?}"
            );
            max_seen = max_seen.max(d);
        }
        assert!(
            max_seen > Duration::from_millis(200),
            "jitter never reached later ceilings"
        );
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
