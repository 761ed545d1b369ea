//! Prometheus metrics every skiff component serves at `/metrics`: counters, gauges and
//! histograms with labels, kept in a registry and rendered in the text exposition format
//! (version 0.0.4) that Prometheus and `kubectl get --raw /metrics` read.
//!
//! Families are created once, usually in a `LazyLock` static, and asking the registry for
//! a name it already holds returns the same family, so a process that runs a component
//! twice (tests do) counts into one place.

mod process;
mod render;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

pub use process::{PROCESS_FAMILIES, mark_start};

/// The content type of [`Registry::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Kubernetes' default latency buckets (seconds), as its request-duration histograms use.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Exponential buckets: `start`, `start * factor`, … (`count` of them).
pub fn exponential_buckets(start: f64, factor: f64, count: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(count);
    let mut b = start;
    for _ in 0..count {
        out.push(b);
        b *= factor;
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Counter,
    Gauge,
    Histogram,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
            Type::Histogram => "histogram",
        }
    }
}

/// One value slot: a counter or gauge is an `f64` stored as bits; a histogram has a count
/// per bucket, a sum and a total count.
#[derive(Debug)]
struct Cell {
    value: AtomicU64,
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
}

impl Cell {
    fn new(buckets: usize) -> Self {
        Cell {
            value: AtomicU64::new(0f64.to_bits()),
            buckets: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
        }
    }

    fn get(&self) -> f64 {
        f64::from_bits(self.value.load(Ordering::Relaxed))
    }

    fn set(&self, v: f64) {
        self.value.store(v.to_bits(), Ordering::Relaxed);
    }

    fn add(&self, d: f64) {
        let mut cur = self.value.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(cur) + d).to_bits();
            match self
                .value
                .compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }
}

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    kind: Type,
    labels: Vec<String>,
    bounds: Vec<f64>,
    /// Label values joined by `\u{1}` → cell; ordered so output is stable.
    cells: Mutex<BTreeMap<String, Arc<Cell>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain numbers behind; they are still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Family {
    fn cell(&self, values: &[&str]) -> Arc<Cell> {
        let mut key = String::new();
        for i in 0..self.labels.len() {
            if i > 0 {
                key.push('\u{1}');
            }
            // A missing value is empty rather than a panic: metrics never fail a request.
            key.push_str(values.get(i).copied().unwrap_or(""));
        }
        let mut cells = lock(&self.cells);
        if let Some(c) = cells.get(&key) {
            return c.clone();
        }
        let c = Arc::new(Cell::new(self.bounds.len()));
        cells.insert(key, c.clone());
        c
    }

    fn remove(&self, values: &[&str]) {
        let key = values.join("\u{1}");
        lock(&self.cells).remove(&key);
    }

    fn remove_where(&self, pairs: &[(&str, &str)]) {
        let mut wanted = Vec::with_capacity(pairs.len());
        for (label, value) in pairs {
            match self.labels.iter().position(|l| l == label) {
                Some(i) => wanted.push((i, *value)),
                None => return,
            }
        }
        lock(&self.cells).retain(|key, _| {
            let values: Vec<&str> = key.split('\u{1}').collect();
            !wanted.iter().all(|(i, v)| values.get(*i) == Some(v))
        });
    }
}

/// A set of metric families.
#[derive(Debug, Default)]
pub struct Registry {
    families: Mutex<Vec<Arc<Family>>>,
}

static GLOBAL: LazyLock<Registry> = LazyLock::new(Registry::default);

/// The process-wide registry that `/metrics` endpoints render.
pub fn global() -> &'static Registry {
    &GLOBAL
}

impl Registry {
    fn family(
        &self,
        name: &str,
        help: &str,
        kind: Type,
        labels: &[&str],
        bounds: &[f64],
    ) -> Arc<Family> {
        let mut fams = lock(&self.families);
        if let Some(f) = fams.iter().find(|f| f.name == name) {
            return f.clone();
        }
        let f = Arc::new(Family {
            name: name.to_string(),
            help: help.to_string(),
            kind,
            labels: labels.iter().map(|l| l.to_string()).collect(),
            bounds: bounds.to_vec(),
            cells: Mutex::new(BTreeMap::new()),
        });
        fams.push(f.clone());
        f
    }

    /// A monotonically increasing count, e.g. `apiserver_request_total`.
    pub fn counter(&self, name: &str, help: &str, labels: &[&str]) -> CounterVec {
        CounterVec(self.family(name, help, Type::Counter, labels, &[]))
    }

    /// A value that goes up and down, e.g. `workqueue_depth`.
    pub fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        GaugeVec(self.family(name, help, Type::Gauge, labels, &[]))
    }

    /// A distribution over `buckets` (upper bounds, ascending; `+Inf` is implied).
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> HistogramVec {
        HistogramVec(self.family(name, help, Type::Histogram, labels, buckets))
    }

    /// Every family in the text exposition format, process metrics first.
    pub fn render(&self) -> String {
        let fams: Vec<Arc<Family>> = lock(&self.families).clone();
        let mut out = String::with_capacity(4096);
        process::render(&mut out);
        for f in &fams {
            render::family(&mut out, f);
        }
        out
    }
}

/// A counter family; `with(&[values])` picks one series.
#[derive(Debug, Clone)]
pub struct CounterVec(Arc<Family>);

/// One counter series.
#[derive(Debug, Clone)]
pub struct Counter(Arc<Cell>);

impl CounterVec {
    pub fn with(&self, values: &[&str]) -> Counter {
        Counter(self.0.cell(values))
    }
    /// Drops a series, e.g. of a pod that is gone.
    pub fn remove(&self, values: &[&str]) {
        self.0.remove(values)
    }
    /// Drops every series whose labels have all these values.
    pub fn remove_where(&self, pairs: &[(&str, &str)]) {
        self.0.remove_where(pairs)
    }
}

impl Counter {
    pub fn inc(&self) {
        self.0.add(1.0)
    }
    pub fn inc_by(&self, v: f64) {
        if v > 0.0 {
            self.0.add(v)
        }
    }
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

/// A gauge family.
#[derive(Debug, Clone)]
pub struct GaugeVec(Arc<Family>);

/// One gauge series.
#[derive(Debug, Clone)]
pub struct Gauge(Arc<Cell>);

impl GaugeVec {
    pub fn with(&self, values: &[&str]) -> Gauge {
        Gauge(self.0.cell(values))
    }
    pub fn remove(&self, values: &[&str]) {
        self.0.remove(values)
    }
    pub fn remove_where(&self, pairs: &[(&str, &str)]) {
        self.0.remove_where(pairs)
    }
}

impl Gauge {
    pub fn set(&self, v: f64) {
        self.0.set(v)
    }
    pub fn add(&self, v: f64) {
        self.0.add(v)
    }
    pub fn inc(&self) {
        self.0.add(1.0)
    }
    pub fn dec(&self) {
        self.0.add(-1.0)
    }
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

/// A histogram family.
#[derive(Debug, Clone)]
pub struct HistogramVec(Arc<Family>);

/// One histogram series.
#[derive(Debug, Clone)]
pub struct Histogram {
    cell: Arc<Cell>,
    fam: Arc<Family>,
}

impl HistogramVec {
    pub fn with(&self, values: &[&str]) -> Histogram {
        Histogram {
            cell: self.0.cell(values),
            fam: self.0.clone(),
        }
    }
    pub fn remove_where(&self, pairs: &[(&str, &str)]) {
        self.0.remove_where(pairs)
    }
}

impl Histogram {
    pub fn observe(&self, v: f64) {
        if let Some(i) = self.fam.bounds.iter().position(|b| v <= *b) {
            self.cell.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.cell.count.fetch_add(1, Ordering::Relaxed);
        self.cell.add(v);
    }

    /// Observes the seconds elapsed since `start`.
    pub fn observe_since(&self, start: std::time::Instant) {
        self.observe(start.elapsed().as_secs_f64())
    }

    /// How many observations so far.
    pub fn count(&self) -> u64 {
        self.cell.count.load(Ordering::Relaxed)
    }

    /// The sum of all observations.
    pub fn sum(&self) -> f64 {
        self.cell.get()
    }
}

#[cfg(test)]
mod tests;
