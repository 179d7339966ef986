//! The series store behind `/metrics`: counters, gauges and histograms keyed by name and labels,
//! rendered in the Prometheus text format with the exporter's own formatting helpers (so the
//! output reads exactly as `metrics-exporter-prometheus` writes it), and — unlike that crate's
//! recorder, which has no way to delete a series — able to forget every series of a source or
//! sink that was removed. Without that, each source created and deleted through the admin API
//! left its ~40 series behind for good.
//!
//! Handles stay plain atomics: registering hands out an `Arc` to the series' storage, so the
//! request path bumps an atomic and never takes a lock. The counters every request updates and
//! histograms with buckets keep a cell per thread shard ([`sharded`](super::sharded)), so the
//! listener's threads do not pass their cache lines back and forth. A handle kept after its
//! series was removed still works; it just counts into storage nobody renders.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use indexmap::IndexMap;
use metrics::atomics::AtomicU64;
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use metrics_exporter_prometheus::formatting::{
    sanitize_metric_name, write_help_line, write_metric_line, write_type_line,
};
use metrics_exporter_prometheus::{Distribution, DistributionBuilder, LabelSet, Matcher};
use metrics_util::storage::AtomicBucket;
use quanta::Instant;

use super::sharded::{Bucketed, ShardedU64};

/// Samples a histogram buffers before the recording thread folds them in itself: bounds the
/// buffer of a gateway nobody scrapes (16 bytes a sample, one sample per request).
const FOLD_AT: usize = 4096;

/// A summary series (a histogram without configured buckets): samples land in a lock-free
/// bucket on the hot path and are folded into the distribution when `/metrics` is rendered, or
/// every [`FOLD_AT`] samples.
struct HistogramSeries {
    samples: AtomicBucket<(f64, Instant)>,
    pending: AtomicUsize,
    distribution: Mutex<Distribution>,
}

impl HistogramSeries {
    fn fold(&self, d: &mut Distribution) {
        self.pending.store(0, Ordering::Relaxed);
        self.samples.clear_with(|samples| d.record_samples(samples));
    }
}

impl HistogramFn for HistogramSeries {
    fn record(&self, value: f64) {
        self.samples.push((value, Instant::now()));
        if self.pending.fetch_add(1, Ordering::Relaxed) + 1 >= FOLD_AT {
            // Whoever holds the lock (a render, another fold) drains the bucket anyway.
            if let Ok(mut d) = self.distribution.try_lock() {
                self.fold(&mut d);
            }
        }
    }
}

/// A histogram series: with buckets (the request path's latency), or a summary.
enum HistogramKind {
    Bucketed(Arc<Bucketed>),
    Sampled(Arc<HistogramSeries>),
}

#[derive(Default)]
struct Series {
    counters: HashMap<Key, Arc<ShardedU64>>,
    gauges: HashMap<Key, Arc<AtomicU64>>,
    histograms: HashMap<Key, HistogramKind>,
}

impl Series {
    fn len(&self) -> usize {
        self.counters.len() + self.gauges.len() + self.histograms.len()
    }
}

/// Every series of one gateway, with their descriptions.
pub struct Store {
    series: RwLock<Series>,
    help: RwLock<HashMap<String, SharedString>>,
    distributions: DistributionBuilder,
    /// Counter names updated on every request: their series keep a cell per thread shard;
    /// other counters one cell.
    per_request: Vec<&'static str>,
}

impl Store {
    /// A store whose histograms named in `buckets` use those buckets; other histograms render as
    /// summaries with the exporter's default quantiles. Counters named in `per_request` keep a
    /// cell per thread shard.
    pub fn new(buckets: HashMap<Matcher, Vec<f64>>, per_request: &[&'static str]) -> Store {
        let quantiles = metrics_util::parse_quantiles(&[0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0]);
        Store {
            series: RwLock::default(),
            help: RwLock::default(),
            distributions: DistributionBuilder::new(
                quantiles,
                None,
                None,
                None,
                Some(buckets),
                None,
            ),
            per_request: per_request.to_vec(),
        }
    }

    /// Forgets every series whose `label` has a value `keep` refuses (e.g. `source` = the id of
    /// a source that no longer exists); series without that label stay. Returns how many
    /// series went.
    pub fn retain_labelled(&self, label: &str, keep: impl Fn(&str) -> bool) -> usize {
        let stays = |k: &Key| {
            k.labels()
                .find(|l| l.key() == label)
                .is_none_or(|l| keep(l.value()))
        };
        let mut s = self.series.write().unwrap_or_else(PoisonError::into_inner);
        let before = s.len();
        s.counters.retain(|k, _| stays(k));
        s.gauges.retain(|k, _| stays(k));
        s.histograms.retain(|k, _| stays(k));
        before - s.len()
    }

    /// Forgets one series (of any type), if it exists.
    pub fn remove(&self, key: &Key) {
        let mut s = self.series.write().unwrap_or_else(PoisonError::into_inner);
        s.counters.remove(key);
        s.gauges.remove(key);
        s.histograms.remove(key);
    }

    /// The value of a counter series (0 when there is none).
    pub fn counter_value(&self, key: &Key) -> u64 {
        let s = self.series.read().unwrap_or_else(PoisonError::into_inner);
        s.counters.get(key).map_or(0, |c| c.get())
    }

    /// How many series exist.
    pub fn len(&self) -> usize {
        self.series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn describe(&self, name: &KeyName, help: SharedString) {
        let mut h = self.help.write().unwrap_or_else(PoisonError::into_inner);
        h.entry(sanitize_metric_name(name.as_str())).or_insert(help);
    }

    /// Prometheus text exposition: per family a `# HELP` (when described) and `# TYPE` line, its
    /// series, and an empty line; families in name order.
    pub fn render(&self) -> String {
        let s = self.series.read().unwrap_or_else(PoisonError::into_inner);
        let help = self.help.read().unwrap_or_else(PoisonError::into_inner);
        let no_global = IndexMap::new();
        let mut out = String::new();

        let mut counters: BTreeMap<String, Vec<(LabelSet, u64)>> = BTreeMap::new();
        for (k, v) in &s.counters {
            counters
                .entry(sanitize_metric_name(k.name()))
                .or_default()
                .push((LabelSet::from_key_and_global(k, &no_global), v.get()));
        }
        for (name, series) in counters {
            header(&mut out, &help, &name, "counter");
            for (labels, value) in series {
                write_metric_line::<&str, u64>(&mut out, &name, None, &labels, None, value, None);
            }
            out.push('\n');
        }

        let mut gauges: BTreeMap<String, Vec<(LabelSet, f64)>> = BTreeMap::new();
        for (k, v) in &s.gauges {
            gauges
                .entry(sanitize_metric_name(k.name()))
                .or_default()
                .push((
                    LabelSet::from_key_and_global(k, &no_global),
                    f64::from_bits(v.load(Ordering::Acquire)),
                ));
        }
        for (name, series) in gauges {
            header(&mut out, &help, &name, "gauge");
            for (labels, value) in series {
                write_metric_line::<&str, f64>(&mut out, &name, None, &labels, None, value, None);
            }
            out.push('\n');
        }

        let mut histograms: BTreeMap<String, Vec<(LabelSet, &HistogramKind)>> = BTreeMap::new();
        for (k, h) in &s.histograms {
            histograms
                .entry(sanitize_metric_name(k.name()))
                .or_default()
                .push((LabelSet::from_key_and_global(k, &no_global), h));
        }
        for (name, series) in histograms {
            let kind = self.distributions.get_distribution_type(&name);
            header(&mut out, &help, &name, kind);
            for (labels, h) in series {
                match h {
                    HistogramKind::Bucketed(b) => {
                        let (buckets, count, sum) = b.snapshot();
                        write_buckets(&mut out, &name, &labels, &buckets, count);
                        write_sum_count(&mut out, &name, &labels, sum, count);
                    }
                    HistogramKind::Sampled(h) => {
                        let mut d = h
                            .distribution
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner);
                        h.fold(&mut d);
                        write_distribution(&mut out, &name, &labels, &d);
                    }
                }
            }
            out.push('\n');
        }
        out
    }
}

fn header(out: &mut String, help: &HashMap<String, SharedString>, name: &str, kind: &str) {
    if let Some(h) = help.get(name) {
        write_help_line(out, name, None, None, h);
    }
    write_type_line(out, name, None, None, kind);
}

fn write_distribution(out: &mut String, name: &str, labels: &LabelSet, d: &Distribution) {
    let (sum, count) = match d {
        Distribution::Summary(summary, quantiles, sum) => {
            let snapshot = summary.snapshot(Instant::now());
            for q in quantiles.iter() {
                let value = snapshot.quantile(q.value()).unwrap_or(0.0);
                write_metric_line(
                    out,
                    name,
                    None,
                    labels,
                    Some(("quantile", q.value())),
                    value,
                    None,
                );
            }
            (*sum, summary.count() as u64)
        }
        Distribution::Histogram(histogram) => {
            write_buckets(out, name, labels, &histogram.buckets(), histogram.count());
            (histogram.sum(), histogram.count())
        }
        // Not configured here, and not expressible in the text format.
        Distribution::NativeHistogram(_) => return,
    };
    write_sum_count(out, name, labels, sum, count);
}

/// A histogram's `le` buckets (cumulative counts), then its `+Inf` bucket.
fn write_buckets(
    out: &mut String,
    name: &str,
    labels: &LabelSet,
    buckets: &[(f64, u64)],
    count: u64,
) {
    for &(le, n) in buckets {
        write_metric_line(out, name, Some("bucket"), labels, Some(("le", le)), n, None);
    }
    write_metric_line(
        out,
        name,
        Some("bucket"),
        labels,
        Some(("le", "+Inf")),
        count,
        None,
    );
}

fn write_sum_count(out: &mut String, name: &str, labels: &LabelSet, sum: f64, count: u64) {
    write_metric_line::<&str, f64>(out, name, Some("sum"), labels, None, sum, None);
    write_metric_line::<&str, u64>(out, name, Some("count"), labels, None, count, None);
}

impl HistogramKind {
    fn handle(&self) -> Histogram {
        match self {
            HistogramKind::Bucketed(b) => Histogram::from_arc(b.clone()),
            HistogramKind::Sampled(h) => Histogram::from_arc(h.clone()),
        }
    }
}

impl Recorder for Store {
    fn describe_counter(&self, key: KeyName, _unit: Option<Unit>, help: SharedString) {
        self.describe(&key, help);
    }

    fn describe_gauge(&self, key: KeyName, _unit: Option<Unit>, help: SharedString) {
        self.describe(&key, help);
    }

    fn describe_histogram(&self, key: KeyName, _unit: Option<Unit>, help: SharedString) {
        self.describe(&key, help);
    }

    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        if let Some(c) = self
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .counters
            .get(key)
        {
            return Counter::from_arc(c.clone());
        }
        let mut s = self.series.write().unwrap_or_else(PoisonError::into_inner);
        let sharded = self.per_request.iter().any(|n| *n == key.name());
        let c = s.counters.entry(key.clone()).or_insert_with(|| {
            Arc::new(if sharded {
                ShardedU64::default()
            } else {
                ShardedU64::single()
            })
        });
        Counter::from_arc(c.clone())
    }

    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        if let Some(g) = self
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .gauges
            .get(key)
        {
            return Gauge::from_arc(g.clone());
        }
        let mut s = self.series.write().unwrap_or_else(PoisonError::into_inner);
        let g = s
            .gauges
            .entry(key.clone())
            .or_insert_with(|| Arc::new(AtomicU64::new(0)));
        Gauge::from_arc(g.clone())
    }

    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        if let Some(h) = self
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .histograms
            .get(key)
        {
            return h.handle();
        }
        let name = sanitize_metric_name(key.name());
        let mut s = self.series.write().unwrap_or_else(PoisonError::into_inner);
        let h = s.histograms.entry(key.clone()).or_insert_with(|| {
            let distribution = self.distributions.get_distribution(&name);
            let bucketed = match &distribution {
                Distribution::Histogram(h) => {
                    let bounds: Vec<f64> = h.buckets().iter().map(|&(le, _)| le).collect();
                    Bucketed::new(&bounds)
                }
                _ => None,
            };
            match bucketed {
                Some(b) => HistogramKind::Bucketed(Arc::new(b)),
                None => HistogramKind::Sampled(Arc::new(HistogramSeries {
                    samples: AtomicBucket::new(),
                    pending: AtomicUsize::new(0),
                    distribution: Mutex::new(distribution),
                })),
            }
        });
        h.handle()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use metrics::Label;
    use metrics_exporter_prometheus::PrometheusBuilder;

    static META: Metadata<'static> = Metadata::new("t", metrics::Level::INFO, None);

    fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
        let labels: Vec<Label> = labels
            .iter()
            .map(|&(k, v)| Label::new(k, v.to_owned()))
            .collect();
        Key::from_parts(name, labels)
    }

    /// Records the same things into this store and into the exporter's own recorder.
    fn both(r: &dyn Recorder) {
        r.describe_counter(
            KeyName::from_const_str("t_requests_total"),
            None,
            "Requests \"served\".".into(),
        );
        r.describe_histogram(
            KeyName::from_const_str("t_duration_seconds"),
            Some(Unit::Seconds),
            "Time taken.".into(),
        );
        r.register_counter(
            &key("t_requests_total", &[("source", "a\"b"), ("code", "200")]),
            &META,
        )
        .increment(7);
        r.register_gauge(&key("t_queue", &[("sink", "s")]), &META)
            .set(2.5);
        let h = r.register_histogram(&key("t_duration_seconds", &[("source", "a")]), &META);
        h.record(0.003);
        h.record(0.2);
        let q = r.register_histogram(&key("t_fsync_seconds", &[("sink", "s")]), &META);
        q.record(0.01);
    }

    fn buckets() -> HashMap<Matcher, Vec<f64>> {
        HashMap::from([(
            Matcher::Full("t_duration_seconds".to_owned()),
            vec![0.001, 0.01, 0.1, 1.0],
        )])
    }

    #[test]
    fn renders_exactly_what_the_exporter_renders() {
        let ours = Store::new(buckets(), &["t_requests_total"]);
        both(&ours);
        let theirs = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("t_duration_seconds".to_owned()),
                &[0.001, 0.01, 0.1, 1.0],
            )
            .unwrap()
            .build_recorder();
        both(&theirs);
        let handle = theirs.handle();
        handle.run_upkeep();
        // The exporter orders families and series by hash; compare them as sorted sets of
        // families, each with its lines.
        let families = |text: &str| {
            let mut f: Vec<Vec<String>> = text
                .split("\n\n")
                .filter(|b| !b.trim().is_empty())
                .map(|b| {
                    let mut lines: Vec<String> = b.lines().map(str::to_owned).collect();
                    lines.sort();
                    lines
                })
                .collect();
            f.sort();
            f
        };
        let mine = ours.render();
        assert_eq!(families(&mine), families(&handle.render()), "{mine}");
        assert!(mine.ends_with("\n\n"), "{mine:?}");
    }

    #[test]
    fn unscraped_histograms_fold_their_samples_as_they_go() {
        let s = Store::new(buckets(), &["t_requests_total"]);
        let h = s.register_histogram(&key("t_fsync_seconds", &[("sink", "a")]), &META);
        for _ in 0..(FOLD_AT * 3 + 7) {
            h.record(0.005);
        }
        let series = s.series.read().unwrap();
        let Some(HistogramKind::Sampled(hs)) = series.histograms.values().next() else {
            panic!("a histogram without buckets is kept as samples");
        };
        assert!(hs.pending.load(Ordering::Relaxed) < FOLD_AT);
        let mut buffered = 0;
        hs.samples.data_with(|b| buffered += b.len());
        assert!(buffered < FOLD_AT, "{buffered} samples buffered");
        drop(series);
        // Nothing is lost: the count is every sample.
        let text = s.render();
        let want = format!("t_fsync_seconds_count{{sink=\"a\"}} {}\n", FOLD_AT * 3 + 7);
        assert!(text.contains(&want), "{text}");
    }

    #[test]
    fn removed_series_are_gone_and_others_stay() {
        let s = Store::new(buckets(), &["t_requests_total"]);
        for source in ["a", "b"] {
            s.register_counter(&key("t_requests_total", &[("source", source)]), &META)
                .increment(1);
            s.register_histogram(&key("t_duration_seconds", &[("source", source)]), &META)
                .record(0.5);
        }
        s.register_gauge(&key("t_queue", &[("sink", "a")]), &META)
            .set(1.0);
        let kept = s.register_counter(&key("t_requests_total", &[("source", "a")]), &META);
        assert_eq!(s.len(), 5);
        assert_eq!(s.retain_labelled("source", |v| v != "a"), 2);
        let text = s.render();
        assert!(!text.contains("source=\"a\""), "{text}");
        assert!(text.contains("source=\"b\""), "{text}");
        assert!(text.contains("t_queue{sink=\"a\"}"), "{text}");
        // A handle held across the removal still works and is not rendered.
        kept.increment(5);
        assert!(!s.render().contains("source=\"a\""));
        // Registering again starts a fresh series.
        s.register_counter(&key("t_requests_total", &[("source", "a")]), &META)
            .increment(1);
        assert!(s.render().contains("t_requests_total{source=\"a\"} 1\n"));
    }
}
