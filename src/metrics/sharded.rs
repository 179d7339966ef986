//! Counters and bucketed histograms written per thread: each value is kept in one cell per
//! shard, each cell on a cache line of its own, and a thread adds to its own shard's cell; a
//! read sums the cells.
//!
//! Every accepted request bumps a few series of its source (requests by code, events received,
//! the latency histogram). With one atomic per series, the webhook listener's threads took each
//! of those cache lines from one another on every request: each add waited for the line to come
//! over from the other core. With a shard per connection thread, each thread's adds stay in its
//! own core's cache; only `/metrics` (a read, every scrape) reads every shard.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

use metrics::{CounterFn, HistogramFn};

/// The most shards a value has; threads beyond that share them.
const MAX_SHARDS: usize = 16;

/// One cache line (two on CPUs that fetch lines in adjacent pairs) per cell.
#[repr(align(128))]
#[derive(Default)]
struct Padded<T>(T);

/// How many shards each value has: one per CPU, at most [`MAX_SHARDS`].
fn shards() -> usize {
    static SHARDS: OnceLock<usize> = OnceLock::new();
    *SHARDS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_SHARDS)
    })
}

/// The next shard handed to a thread that was not given one.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard (any number; taken modulo a value's shard count).
    static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Gives this thread shard `n`: the webhook listener's thread `n` calls it first thing, so its
/// connection threads each write their own shard. Other threads take shards in turn.
pub fn pin_thread(n: usize) {
    SHARD.with(|s| s.set(Some(n)));
}

fn this_shard() -> usize {
    SHARD.with(|s| match s.get() {
        Some(n) => n,
        None => {
            let n = NEXT_SHARD.fetch_add(1, Ordering::Relaxed);
            s.set(Some(n));
            n
        }
    })
}

/// A `u64` that threads add to without taking each other's cache lines.
pub struct ShardedU64 {
    cells: Box<[Padded<AtomicU64>]>,
}

impl Default for ShardedU64 {
    fn default() -> Self {
        ShardedU64 {
            cells: (0..shards()).map(|_| Padded::default()).collect(),
        }
    }
}

impl std::fmt::Debug for ShardedU64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.get())
    }
}

impl ShardedU64 {
    /// One cell for every thread: for series that are not updated per request, so a gateway
    /// with many sources on a many-core host does not keep a line per CPU for each of them.
    pub fn single() -> ShardedU64 {
        ShardedU64 {
            cells: Box::new([Padded::default()]),
        }
    }

    pub fn add(&self, n: u64) {
        if n == 0 {
            return;
        }
        let cells = &self.cells;
        let i = match cells.len() {
            1 => 0,
            n => this_shard() % n.max(1),
        };
        if let Some(cell) = cells.get(i) {
            cell.0.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The sum of every shard.
    pub fn get(&self) -> u64 {
        self.cells
            .iter()
            .fold(0u64, |sum, c| sum.wrapping_add(c.0.load(Ordering::Relaxed)))
    }
}

impl CounterFn for ShardedU64 {
    fn increment(&self, value: u64) {
        self.add(value);
    }

    /// Raises the counter to `value` if it is below it (a counter never goes down), as the
    /// exporter's own counters do.
    fn absolute(&self, value: u64) {
        let now = self.get();
        if value > now {
            self.add(value - now);
        }
    }
}

/// The most bounds a [`Bucketed`] histogram takes; a histogram configured with more is kept as
/// samples instead (the store decides).
pub const MAX_BOUNDS: usize = 15;

/// One shard of a histogram: per bucket the samples at or below its bound and above the one
/// before (the last cell: above every bound), and the samples' sum as `f64` bits.
#[derive(Default)]
struct BucketShard {
    counts: [AtomicU64; MAX_BOUNDS + 1],
    sum: AtomicU64,
}

/// A Prometheus histogram with fixed bounds, written per shard.
pub struct Bucketed {
    bounds: Box<[f64]>,
    shards: Box<[Padded<BucketShard>]>,
}

impl Bucketed {
    /// `None` for more than [`MAX_BOUNDS`] bounds. `bounds` are in increasing order.
    pub fn new(bounds: &[f64]) -> Option<Bucketed> {
        if bounds.len() > MAX_BOUNDS {
            return None;
        }
        Some(Bucketed {
            bounds: bounds.into(),
            shards: (0..shards()).map(|_| Padded::default()).collect(),
        })
    }

    /// Per bound, the samples at or below it (cumulative, as Prometheus' `le` buckets), then
    /// the count and sum of every sample.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let mut per_bucket = [0u64; MAX_BOUNDS + 1];
        let mut sum = 0.0;
        for shard in self.shards.iter() {
            for (total, cell) in per_bucket.iter_mut().zip(&shard.0.counts) {
                *total = total.wrapping_add(cell.load(Ordering::Relaxed));
            }
            sum += f64::from_bits(shard.0.sum.load(Ordering::Relaxed));
        }
        let mut below = 0u64;
        let buckets = self
            .bounds
            .iter()
            .zip(per_bucket)
            .map(|(&le, n)| {
                below = below.wrapping_add(n);
                (le, below)
            })
            .collect();
        let count = per_bucket.iter().fold(0u64, |a, &n| a.wrapping_add(n));
        (buckets, count, sum)
    }
}

impl HistogramFn for Bucketed {
    fn record(&self, value: f64) {
        // The first bound at or above the value; a NaN is above every bound (in no `le` bucket
        // but the count's), as in the exporter's histograms.
        let i = if value.is_nan() {
            self.bounds.len()
        } else {
            self.bounds.partition_point(|&b| b < value)
        };
        let shards = &self.shards;
        let Some(shard) = shards.get(this_shard() % shards.len().max(1)) else {
            return;
        };
        if let Some(cell) = shard.0.counts.get(i) {
            cell.fetch_add(1, Ordering::Relaxed);
        }
        // Other threads only read this shard's sum, but more threads than shards may share it.
        let sum = &shard.0.sum;
        let mut old = sum.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(old) + value).to_bits();
            match sum.compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => old = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Arc;

    #[test]
    fn adds_from_many_threads_sum_to_the_total() {
        let c = Arc::new(ShardedU64::default());
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    if t % 2 == 0 {
                        pin_thread(t);
                    }
                    for _ in 0..10_000 {
                        c.add(3);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.get(), 6 * 10_000 * 3);
        c.absolute(10);
        assert_eq!(c.get(), 180_000, "a counter never goes down");
        c.absolute(180_005);
        assert_eq!(c.get(), 180_005);
        let one = ShardedU64::single();
        one.add(2);
        one.add(0);
        one.absolute(5);
        assert_eq!(one.get(), 5);
    }

    #[test]
    fn buckets_are_cumulative_and_count_every_sample() {
        let h = Arc::new(Bucketed::new(&[0.001, 0.01, 0.1]).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let h = h.clone();
                std::thread::spawn(move || {
                    pin_thread(t);
                    for v in [0.0005, 0.001, 0.002, 0.05, 0.5, f64::NAN] {
                        h.record(v);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let (buckets, count, sum) = h.snapshot();
        assert_eq!(buckets, vec![(0.001, 8), (0.01, 12), (0.1, 16)]);
        assert_eq!(count, 24);
        assert!(
            sum.is_nan(),
            "a NaN sample makes the sum NaN, as in the exporter"
        );
        let h = Bucketed::new(&[1.0]).unwrap();
        h.record(0.25);
        h.record(2.0);
        assert_eq!(h.snapshot(), (vec![(1.0, 1)], 2, 2.25));
        assert!(Bucketed::new(&[0.0; MAX_BOUNDS + 1]).is_none());
    }
}
