//! The machinery every outcome family is a thin definition on.
//!
//! An instrument is a static [`InstrumentSpec`] (name, kind, unit, boundaries)
//! plus the [`Dimension`]s of its attributes. Its series space is the product of
//! the dimensions' cardinalities, fixed when it is built; a series is a dense
//! index into it. Counters and up-down counters are flat arrays of atomics indexed
//! by series — recording is one relaxed `fetch_add` — and a [`Backend`] decides how
//! they are exported. Histograms need the backend on the record path, through a
//! [`HistogramSink`].

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use crate::attr::{Attribute, Dimension};
use crate::error::ConfigError;

/// The most series one instrument may declare. Cells cost 8 bytes a series, so
/// this caps an instrument's memory at 2 MiB; real dashboards want far fewer.
pub const MAX_SERIES_PER_INSTRUMENT: usize = 1 << 18;

/// What kind of OpenTelemetry instrument a spec is exported as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstrumentKind {
    /// Monotonic sum (`…_total` in Prometheus).
    Counter,
    /// Non-monotonic sum (a gauge in Prometheus).
    UpDownCounter,
    /// Explicit-bucket histogram.
    Histogram,
}

impl InstrumentKind {
    /// How the catalog names the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            InstrumentKind::Counter => "counter",
            InstrumentKind::UpDownCounter => "up-down counter",
            InstrumentKind::Histogram => "histogram",
        }
    }
}

/// The static part of an instrument: everything but its namespace and dimensions.
#[derive(Debug, PartialEq)]
pub struct InstrumentSpec {
    /// Name without namespace, dotted (e.g. `delivery.duration`).
    pub name: &'static str,
    /// The kind.
    pub kind: InstrumentKind,
    /// UCUM unit (`s`, `{request}`).
    pub unit: &'static str,
    /// One-sentence description.
    pub description: &'static str,
    /// Histogram bucket boundaries (empty for sums).
    pub boundaries: &'static [f64],
}

/// A namespace prepended to every instrument name (`wildside` → `wildside.idempotency.requests`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Namespace(Option<String>);

/// Longest accepted namespace: leaves room for the longest instrument name within
/// OpenTelemetry's 255-character limit.
pub const MAX_NAMESPACE_LEN: usize = 200;

impl Namespace {
    /// No namespace.
    pub const NONE: Namespace = Namespace(None);

    /// A validated namespace; the empty string means none.
    pub fn new(namespace: &str) -> Result<Self, ConfigError> {
        if namespace.is_empty() {
            return Ok(Namespace(None));
        }
        let mut bytes = namespace.bytes();
        let valid = namespace.len() <= MAX_NAMESPACE_LEN
            && bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
            && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/'))
            && !namespace.ends_with('.');
        if valid {
            Ok(Namespace(Some(namespace.to_owned())))
        } else {
            Err(ConfigError::InvalidNamespace {
                namespace: namespace.to_owned(),
                max: MAX_NAMESPACE_LEN,
            })
        }
    }

    /// The namespace, if any.
    pub fn as_str(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// `name` with the namespace in front.
    pub fn qualify(&self, name: &str) -> String {
        match &self.0 {
            Some(ns) => format!("{ns}.{name}"),
            None => name.to_owned(),
        }
    }
}

/// A fully resolved instrument: spec, namespaced name and dimensions.
pub struct InstrumentDef {
    spec: &'static InstrumentSpec,
    name: String,
    dimensions: Vec<Arc<dyn Dimension>>,
    series_bound: usize,
}

impl fmt::Debug for InstrumentDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentDef")
            .field("name", &self.name)
            .field("series_bound", &self.series_bound)
            .finish()
    }
}

impl InstrumentDef {
    /// Resolves `spec` under `namespace` with `dimensions` (most significant first).
    pub fn new(
        spec: &'static InstrumentSpec,
        namespace: &Namespace,
        dimensions: Vec<Arc<dyn Dimension>>,
    ) -> Result<Self, ConfigError> {
        let name = namespace.qualify(spec.name);
        let series_bound = dimensions
            .iter()
            .try_fold(1usize, |acc, d| acc.checked_mul(d.cardinality()))
            .unwrap_or(usize::MAX);
        if series_bound > MAX_SERIES_PER_INSTRUMENT {
            return Err(ConfigError::SeriesBoundTooLarge {
                instrument: name,
                bound: series_bound,
                max: MAX_SERIES_PER_INSTRUMENT,
            });
        }
        let sorted = spec.boundaries.windows(2).all(|w| w[0] < w[1]);
        let finite = spec.boundaries.iter().all(|b| b.is_finite());
        if spec.kind == InstrumentKind::Histogram && (spec.boundaries.is_empty() || !sorted || !finite) {
            return Err(ConfigError::InvalidBoundaries {
                instrument: name,
                boundaries: spec.boundaries.to_vec(),
            });
        }
        Ok(InstrumentDef {
            spec,
            name,
            dimensions,
            series_bound,
        })
    }

    /// The static spec.
    pub fn spec(&self) -> &'static InstrumentSpec {
        self.spec
    }

    /// The namespaced OpenTelemetry name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dimensions, most significant first.
    pub fn dimensions(&self) -> &[Arc<dyn Dimension>] {
        &self.dimensions
    }

    /// Worst-case series count: the product of the dimensions' cardinalities.
    pub fn series_bound(&self) -> usize {
        self.series_bound
    }

    /// The series index of `coords` (one per dimension, most significant first);
    /// `None` when a coordinate is out of its dimension's range.
    pub fn index(&self, coords: &[usize]) -> Option<usize> {
        if coords.len() != self.dimensions.len() {
            return None;
        }
        let mut index = 0usize;
        for (coord, dim) in coords.iter().zip(&self.dimensions) {
            let card = dim.cardinality();
            if *coord >= card {
                return None;
            }
            index = index * card + coord;
        }
        Some(index)
    }

    /// The attributes of series `index`, in dimension order.
    pub fn attributes(&self, index: usize) -> Vec<Attribute> {
        let mut coords = vec![0usize; self.dimensions.len()];
        let mut rest = index;
        for (slot, dim) in coords.iter_mut().zip(&self.dimensions).rev() {
            let card = dim.cardinality().max(1);
            *slot = rest % card;
            rest /= card;
        }
        let mut out = Vec::with_capacity(self.dimensions.len() + 2);
        if rest == 0 {
            for (coord, dim) in coords.iter().zip(&self.dimensions) {
                dim.attributes(*coord, &mut out);
            }
        }
        out
    }
}

/// A monotonic counter over a bounded series space: one atomic cell a series.
#[derive(Clone, Debug)]
pub struct Counter {
    def: Arc<InstrumentDef>,
    cells: Arc<[AtomicU64]>,
}

impl Counter {
    /// A counter with zeroed cells, not yet exported.
    pub fn new(def: Arc<InstrumentDef>) -> Self {
        let cells = (0..def.series_bound()).map(|_| AtomicU64::new(0)).collect();
        Counter { def, cells }
    }

    /// Adds `n` to `series`; an out-of-range series is ignored, never a panic.
    #[inline]
    pub fn add(&self, series: usize, n: u64) {
        if let Some(cell) = self.cells.get(series) {
            cell.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The current value of `series`.
    pub fn value(&self, series: usize) -> u64 {
        self.cells.get(series).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Every series with its value, zeros included.
    pub fn values(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.cells.iter().map(|c| c.load(Ordering::Relaxed)).enumerate()
    }

    /// The definition.
    pub fn def(&self) -> &Arc<InstrumentDef> {
        &self.def
    }
}

/// An up-down counter over a bounded series space.
#[derive(Clone, Debug)]
pub struct UpDownCounter {
    def: Arc<InstrumentDef>,
    cells: Arc<[AtomicI64]>,
}

impl UpDownCounter {
    /// An up-down counter with zeroed cells, not yet exported.
    pub fn new(def: Arc<InstrumentDef>) -> Self {
        let cells = (0..def.series_bound()).map(|_| AtomicI64::new(0)).collect();
        UpDownCounter { def, cells }
    }

    /// Adds `delta` (negative to subtract) to `series`.
    #[inline]
    pub fn add(&self, series: usize, delta: i64) {
        if let Some(cell) = self.cells.get(series) {
            cell.fetch_add(delta, Ordering::Relaxed);
        }
    }

    /// The current value of `series`.
    pub fn value(&self, series: usize) -> i64 {
        self.cells.get(series).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Every series with its value, zeros included.
    pub fn values(&self) -> impl Iterator<Item = (usize, i64)> + '_ {
        self.cells.iter().map(|c| c.load(Ordering::Relaxed)).enumerate()
    }

    /// The definition.
    pub fn def(&self) -> &Arc<InstrumentDef> {
        &self.def
    }
}

/// Where a histogram's measurements go. Implementations must not panic, block or
/// allocate per call (a one-time bind per series is allowed).
pub trait HistogramSink: Send + Sync {
    /// Records finite `value` into `series`.
    fn record(&self, series: usize, value: f64);
}

/// A histogram over a bounded series space.
#[derive(Clone)]
pub struct Histogram {
    def: Arc<InstrumentDef>,
    sink: Arc<dyn HistogramSink>,
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram").field("def", &self.def).finish()
    }
}

impl Histogram {
    /// A histogram recording into `sink`.
    pub fn new(def: Arc<InstrumentDef>, sink: Arc<dyn HistogramSink>) -> Self {
        Histogram { def, sink }
    }

    /// Records `value` into `series`. Non-finite values and out-of-range series are
    /// dropped: one bad measurement must not corrupt a sum forever.
    #[inline]
    pub fn record(&self, series: usize, value: f64) {
        if value.is_finite() && series < self.def.series_bound() {
            self.sink.record(series, value);
        }
    }

    /// The definition.
    pub fn def(&self) -> &Arc<InstrumentDef> {
        &self.def
    }
}

/// Turns instrument definitions into exported instruments.
///
/// [`crate::otel::OtelBackend`] exports through any OpenTelemetry `MeterProvider`;
/// `testing::InMemoryBackend` (feature `testing`) keeps everything in memory.
pub trait Backend {
    /// A counter whose cells this backend exports.
    fn counter(&self, def: Arc<InstrumentDef>) -> Counter;
    /// An up-down counter whose cells this backend exports.
    fn up_down_counter(&self, def: Arc<InstrumentDef>) -> UpDownCounter;
    /// A histogram recording through this backend.
    fn histogram(&self, def: Arc<InstrumentDef>) -> Histogram;
}

impl<B: Backend + ?Sized> Backend for &B {
    fn counter(&self, def: Arc<InstrumentDef>) -> Counter {
        (**self).counter(def)
    }
    fn up_down_counter(&self, def: Arc<InstrumentDef>) -> UpDownCounter {
        (**self).up_down_counter(def)
    }
    fn histogram(&self, def: Arc<InstrumentDef>) -> Histogram {
        (**self).histogram(def)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::age::AgeBucket;
    use crate::attr::error_kind::ErrorKind;
    use crate::attr::EnumDimension;

    static SPEC: InstrumentSpec = InstrumentSpec {
        name: "test.things",
        kind: InstrumentKind::Counter,
        unit: "{thing}",
        description: "Things.",
        boundaries: &[],
    };

    #[test]
    fn index_and_attributes_round_trip() {
        let def = InstrumentDef::new(
            &SPEC,
            &Namespace::new("svc").unwrap(),
            vec![
                Arc::new(EnumDimension::<ErrorKind>::new()),
                Arc::new(EnumDimension::<AgeBucket>::new()),
            ],
        )
        .unwrap();
        assert_eq!(def.name(), "svc.test.things");
        assert_eq!(def.series_bound(), 7 * 8);
        let index = def
            .index(&[ErrorKind::Dns.index(), AgeBucket::TwoToSixHours.index()])
            .unwrap();
        let attrs: Vec<String> = def
            .attributes(index)
            .iter()
            .map(|a| format!("{}={}", a.key, a.value))
            .collect();
        assert_eq!(attrs, ["error.type=dns", "age_bucket=2h-6h"]);
        assert_eq!(def.index(&[7, 0]), None);
        assert!(def.attributes(def.series_bound()).is_empty());
    }

    #[test]
    fn namespaces_follow_the_instrument_name_syntax() {
        for good in ["wildside", "a", "my_app.v2", "team/app-1"] {
            assert!(Namespace::new(good).is_ok(), "{good}");
        }
        for bad in ["1abc", "has space", "dot.", "ünï", &"a".repeat(201)] {
            let err = Namespace::new(bad).unwrap_err();
            assert!(
                err.to_string().contains("must start with an ASCII letter"),
                "{err}"
            );
        }
        assert_eq!(Namespace::new("").unwrap(), Namespace::NONE);
    }

    #[test]
    fn counter_ignores_out_of_range_series() {
        let def = Arc::new(
            InstrumentDef::new(
                &SPEC,
                &Namespace::NONE,
                vec![Arc::new(EnumDimension::<ErrorKind>::new())],
            )
            .unwrap(),
        );
        let counter = Counter::new(def);
        counter.add(3, 2);
        counter.add(1_000_000, 5);
        assert_eq!(counter.values().map(|(_, v)| v).sum::<u64>(), 2);
    }

    use crate::attr::ClosedSet;
}
