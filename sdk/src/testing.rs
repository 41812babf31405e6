//! An in-memory backend for asserting on metrics in your own tests (feature `testing`).
//!
//! ```
//! use outcometer::testing::InMemoryBackend;
//! use outcometer::{IdempotencyMetrics, IdempotencyRecorder};
//!
//! let backend = InMemoryBackend::with_namespace("shop").unwrap();
//! let metrics = IdempotencyRecorder::builder().build(&backend).unwrap();
//! metrics.record_miss(metrics.scope("user-1"));
//! let scope = metrics.scope("user-1").hex();
//! let prefix = &scope.as_str()[..1];
//! assert_eq!(
//!     backend.counter_value(
//!         "shop.idempotency.requests",
//!         &[("outcome", "miss"), ("user_scope", prefix), ("age_bucket", "n/a")],
//!     ),
//!     Some(1)
//! );
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::backend::Backend;
use crate::cells::{Counter, FloatGauge, Gauge, Histogram, HistogramSink, UpDownCounter};
use crate::error::ConfigError;
use crate::instrument::InstrumentDef;
use crate::registry::Registry;

/// One series' current value.
#[derive(Clone, Debug, PartialEq)]
pub enum PointValue {
    /// A counter's total.
    Counter(u64),
    /// An up-down counter's value.
    UpDownCounter(i64),
    /// A gauge's last value (integer gauges too, as `f64`).
    Gauge(f64),
    /// A histogram's state.
    Histogram(HistogramPoint),
}

/// A histogram series' state.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramPoint {
    /// Number of measurements.
    pub count: u64,
    /// Sum of measurements.
    pub sum: f64,
    /// Count per bucket; `boundaries.len() + 1` entries, the last one unbounded.
    pub bucket_counts: Vec<u64>,
    /// The bucket boundaries (upper bounds, inclusive, as OpenTelemetry defines them).
    pub boundaries: Vec<f64>,
}

/// One series of one instrument.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// The namespaced instrument name.
    pub name: String,
    /// Attributes as text, in dimension order.
    pub attributes: Vec<(String, String)>,
    /// The value.
    pub value: PointValue,
}

enum Registered {
    Counter(Counter),
    UpDown(UpDownCounter),
    Gauge(Gauge),
    FloatGauge(FloatGauge),
    Histogram(Arc<InstrumentDef>, Arc<AtomicHistogram>),
}

/// Keeps every instrument built on it in memory and answers questions about them.
#[derive(Clone, Default)]
pub struct InMemoryBackend {
    registered: Arc<Mutex<Vec<Registered>>>,
    registry: Arc<Registry>,
}

impl std::fmt::Debug for InMemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryBackend").finish_non_exhaustive()
    }
}

impl InMemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty backend naming instruments under `namespace`.
    pub fn with_namespace(namespace: &str) -> Result<Self, ConfigError> {
        Ok(InMemoryBackend {
            registry: Arc::new(Registry::new(namespace)?),
            ..Self::default()
        })
    }

    fn register(&self, entry: Registered) {
        self.registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(entry);
    }

    /// Every series that was recorded into (counters that moved, up-down counters
    /// that ever moved, histograms with a measurement).
    pub fn points(&self) -> Vec<Point> {
        let registered = self.registered.lock().unwrap_or_else(PoisonError::into_inner);
        let mut points = Vec::new();
        let text = |def: &InstrumentDef, series: usize| {
            def.attributes(series)
                .into_iter()
                .map(|a| (a.key.to_owned(), a.value.to_text()))
                .collect()
        };
        for entry in registered.iter() {
            match entry {
                Registered::Counter(c) => {
                    points.extend(c.values().filter(|(_, v)| *v != 0).map(|(s, v)| Point {
                        name: c.def().name().to_owned(),
                        attributes: text(c.def(), s),
                        value: PointValue::Counter(v),
                    }))
                }
                Registered::UpDown(c) => {
                    points.extend(c.values().filter(|(_, v)| *v != 0).map(|(s, v)| Point {
                        name: c.def().name().to_owned(),
                        attributes: text(c.def(), s),
                        value: PointValue::UpDownCounter(v),
                    }))
                }
                Registered::Gauge(g) => points.extend(g.values().map(|(s, v)| Point {
                    name: g.def().name().to_owned(),
                    attributes: text(g.def(), s),
                    value: PointValue::Gauge(v as f64),
                })),
                Registered::FloatGauge(g) => points.extend(g.collect().map(|(s, v)| Point {
                    name: g.def().name().to_owned(),
                    attributes: text(g.def(), s),
                    value: PointValue::Gauge(v),
                })),
                Registered::Histogram(def, h) => points.extend(
                    (0..def.series_bound())
                        .filter_map(|s| h.point(s))
                        .map(|(s, p)| Point {
                            name: def.name().to_owned(),
                            attributes: text(def, s),
                            value: PointValue::Histogram(p),
                        }),
                ),
            }
        }
        points
    }

    fn find(&self, name: &str, attributes: &[(&str, &str)]) -> Option<PointValue> {
        let mut want: Vec<(&str, &str)> = attributes.to_vec();
        want.sort_unstable();
        self.points().into_iter().find_map(|p| {
            let mut have: Vec<(&str, &str)> = p
                .attributes
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            have.sort_unstable();
            (p.name == name && have == want).then_some(p.value)
        })
    }

    /// The value of the counter series `name{attributes}` (any order), if it moved.
    pub fn counter_value(&self, name: &str, attributes: &[(&str, &str)]) -> Option<u64> {
        match self.find(name, attributes)? {
            PointValue::Counter(v) => Some(v),
            _ => None,
        }
    }

    /// The value of the up-down counter series `name{attributes}`, if it ever moved.
    pub fn up_down_value(&self, name: &str, attributes: &[(&str, &str)]) -> Option<i64> {
        match self.find(name, attributes)? {
            PointValue::UpDownCounter(v) => Some(v),
            _ => None,
        }
    }

    /// The value of the gauge series `name{attributes}`, if it was set.
    pub fn gauge_value(&self, name: &str, attributes: &[(&str, &str)]) -> Option<f64> {
        match self.find(name, attributes)? {
            PointValue::Gauge(v) => Some(v),
            _ => None,
        }
    }

    /// The histogram series `name{attributes}`, if it has a measurement.
    pub fn histogram(&self, name: &str, attributes: &[(&str, &str)]) -> Option<HistogramPoint> {
        match self.find(name, attributes)? {
            PointValue::Histogram(p) => Some(p),
            _ => None,
        }
    }
}

impl Backend for InMemoryBackend {
    fn counter(&self, def: Arc<InstrumentDef>) -> Counter {
        let counter = Counter::new(def);
        self.register(Registered::Counter(counter.clone()));
        counter
    }

    fn up_down_counter(&self, def: Arc<InstrumentDef>) -> UpDownCounter {
        let counter = UpDownCounter::new(def);
        self.register(Registered::UpDown(counter.clone()));
        counter
    }

    fn histogram(&self, def: Arc<InstrumentDef>) -> Histogram {
        let cells = Arc::new(AtomicHistogram::new(&def));
        self.register(Registered::Histogram(def.clone(), cells.clone()));
        Histogram::new(def, cells)
    }

    fn gauge(&self, def: Arc<InstrumentDef>) -> Gauge {
        let gauge = Gauge::new(def);
        self.register(Registered::Gauge(gauge.clone()));
        gauge
    }

    fn float_gauge(&self, def: Arc<InstrumentDef>) -> FloatGauge {
        let gauge = FloatGauge::new(def);
        self.register(Registered::FloatGauge(gauge.clone()));
        gauge
    }

    fn registry(&self) -> Option<&Registry> {
        Some(&self.registry)
    }
}

/// Lock-free explicit-bucket histogram cells, one set per series.
struct AtomicHistogram {
    boundaries: &'static [f64],
    /// Per series: `boundaries.len() + 1` bucket counts, then the count, then the sum's bits.
    cells: Box<[AtomicU64]>,
}

impl AtomicHistogram {
    fn new(def: &InstrumentDef) -> Self {
        let boundaries = def.spec().boundaries();
        let stride = boundaries.len() + 3;
        AtomicHistogram {
            boundaries,
            cells: (0..def.series_bound() * stride)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    fn stride(&self) -> usize {
        self.boundaries.len() + 3
    }

    fn point(&self, series: usize) -> Option<(usize, HistogramPoint)> {
        let base = series * self.stride();
        let cells = self.cells.get(base..base + self.stride())?;
        let buckets = self.boundaries.len() + 1;
        let count = cells[buckets].load(Ordering::Relaxed);
        (count > 0).then(|| {
            (
                series,
                HistogramPoint {
                    count,
                    sum: f64::from_bits(cells[buckets + 1].load(Ordering::Relaxed)),
                    bucket_counts: cells[..buckets]
                        .iter()
                        .map(|c| c.load(Ordering::Relaxed))
                        .collect(),
                    boundaries: self.boundaries.to_vec(),
                },
            )
        })
    }
}

impl HistogramSink for AtomicHistogram {
    fn record(&self, series: usize, value: f64) {
        let base = series * self.stride();
        let Some(cells) = self.cells.get(base..base + self.stride()) else {
            return;
        };
        // OpenTelemetry buckets are (lower, upper]: the first boundary >= value.
        let bucket = self.boundaries.partition_point(|b| *b < value);
        let buckets = self.boundaries.len() + 1;
        cells[bucket].fetch_add(1, Ordering::Relaxed);
        cells[buckets].fetch_add(1, Ordering::Relaxed);
        let _ = cells[buckets + 1].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
            Some((f64::from_bits(bits) + value).to_bits())
        });
    }
}
