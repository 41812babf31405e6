//! The instruments a family records into: atomic cells over a bounded series space.
//!
//! Each handle is typed by the coordinates that address it (`Counter<(Outcome,
//! Admitted)>`), so a family says *which* series and the strides in its
//! [`InstrumentDef`] say *where*. Counters, up-down counters and gauges are flat
//! arrays of atomics indexed by series: recording is one relaxed atomic operation.
//! Histograms go through a [`HistogramSink`] the backend provides. Handles are
//! cheap to clone and clones share their cells; [`Series`] is the untyped address
//! exporters and generic code use.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::error::ConfigError;
use crate::histogram::HistogramCells;
use crate::instrument::{Coords, InstrumentDef, Series};

/// A cell alone on its cache line: two threads recording distinct series never
/// write the same line (false sharing made two threads 4× slower per record).
/// The price is 64 bytes a series.
#[repr(align(64))]
#[derive(Debug, Default)]
pub struct Padded<T>(pub T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

/// `Ok` when coordinates `D` address `def`'s dimensions.
pub(crate) fn retype_check<D: Coords>(def: &InstrumentDef) -> Result<(), ConfigError> {
    if D::fit(def.dimensions()) {
        Ok(())
    } else {
        Err(ConfigError::CoordinatesMismatch {
            instrument: def.name().to_owned(),
            dimensions: def
                .dimensions()
                .iter()
                .flat_map(|d| d.docs())
                .map(|d| d.key)
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

macro_rules! handle_common {
    ($ty:ident) => {
        impl<C: Coords> Clone for $ty<C> {
            fn clone(&self) -> Self {
                $ty {
                    def: self.def.clone(),
                    cells: self.cells.clone(),
                    _coords: PhantomData,
                }
            }
        }

        impl<C: Coords> fmt::Debug for $ty<C> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("def", &self.def)
                    .finish()
            }
        }

        impl<C: Coords> $ty<C> {
            /// The definition.
            pub fn def(&self) -> &Arc<InstrumentDef> {
                &self.def
            }

            /// The same cells addressed by other coordinates; an error when `D`
            /// does not match the instrument's dimensions.
            pub fn typed<D: Coords>(&self) -> Result<$ty<D>, ConfigError> {
                retype_check::<D>(&self.def)?;
                Ok($ty {
                    def: self.def.clone(),
                    cells: self.cells.clone(),
                    _coords: PhantomData,
                })
            }

            /// The same cells addressed by raw series index.
            pub fn raw(&self) -> $ty<Series> {
                $ty {
                    def: self.def.clone(),
                    cells: self.cells.clone(),
                    _coords: PhantomData,
                }
            }

            /// Whether `other` shares this handle's cells.
            pub fn shares_cells_with<D: Coords>(&self, other: &$ty<D>) -> bool {
                Arc::ptr_eq(&self.cells, &other.cells)
            }
        }
    };
}

/// A monotonic counter over a bounded series space: one atomic cell a series.
pub struct Counter<C: Coords = Series> {
    def: Arc<InstrumentDef>,
    cells: Arc<[Padded<AtomicU64>]>,
    _coords: PhantomData<fn(C)>,
}
handle_common!(Counter);

impl Counter<Series> {
    /// A counter with zeroed cells, not yet exported.
    pub fn new(def: Arc<InstrumentDef>) -> Self {
        let cells = (0..def.series_bound())
            .map(|_| Padded(AtomicU64::new(0)))
            .collect();
        Counter {
            def,
            cells,
            _coords: PhantomData,
        }
    }
}

impl<C: Coords> Counter<C> {
    /// Adds `n` to the series at `at`; an out-of-range series is ignored, never a panic.
    #[inline]
    pub fn add(&self, at: C, n: u64) {
        if let Some(cell) = self.cells.get(self.def.series(at)) {
            cell.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The current value of the series at `at`.
    pub fn value(&self, at: C) -> u64 {
        self.cells
            .get(self.def.series(at))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Every series with its value, zeros included.
    pub fn values(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.cells.iter().map(|c| c.load(Ordering::Relaxed)).enumerate()
    }

    /// The sum over all series.
    pub fn total(&self) -> u64 {
        self.values().map(|(_, v)| v).sum()
    }
}

/// An up-down counter over a bounded series space.
pub struct UpDownCounter<C: Coords = Series> {
    def: Arc<InstrumentDef>,
    cells: Arc<[Padded<AtomicI64>]>,
    _coords: PhantomData<fn(C)>,
}
handle_common!(UpDownCounter);

impl UpDownCounter<Series> {
    /// An up-down counter with zeroed cells, not yet exported.
    pub fn new(def: Arc<InstrumentDef>) -> Self {
        let cells = (0..def.series_bound())
            .map(|_| Padded(AtomicI64::new(0)))
            .collect();
        UpDownCounter {
            def,
            cells,
            _coords: PhantomData,
        }
    }
}

impl<C: Coords> UpDownCounter<C> {
    /// Adds `delta` (negative to subtract) to the series at `at`.
    #[inline]
    pub fn add(&self, at: C, delta: i64) {
        if let Some(cell) = self.cells.get(self.def.series(at)) {
            cell.fetch_add(delta, Ordering::Relaxed);
        }
    }

    /// The current value of the series at `at`.
    pub fn value(&self, at: C) -> i64 {
        self.cells
            .get(self.def.series(at))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Every series with its value, zeros included.
    pub fn values(&self) -> impl Iterator<Item = (usize, i64)> + '_ {
        self.cells.iter().map(|c| c.load(Ordering::Relaxed)).enumerate()
    }

    /// Counts one unit of in-flight work at `at` until the returned guard drops,
    /// on return, `?` or a panic unwinding. The guard is owned and `'static`, so
    /// it moves into a spawned task.
    pub fn track(&self, at: C) -> InFlightGuard {
        let series = self.def.series(at);
        let cells = self.cells.get(series).map(|cell| {
            cell.fetch_add(1, Ordering::Relaxed);
            self.cells.clone()
        });
        InFlightGuard { cells, series }
    }
}

/// Decrements an up-down counter series when dropped, including during unwinding.
/// It holds only the cells (one reference count), so taking and dropping one is
/// two atomic adds and a reference count.
#[must_use = "the work counts as in flight only while the guard is alive"]
#[derive(Debug)]
pub struct InFlightGuard {
    cells: Option<Arc<[Padded<AtomicI64>]>>,
    series: usize,
}

impl InFlightGuard {
    /// A guard that counts nothing (what no-op recorders hand out).
    pub const fn noop() -> Self {
        InFlightGuard {
            cells: None,
            series: 0,
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if let Some(cell) = self.cells.as_ref().and_then(|cells| cells.get(self.series)) {
            cell.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The value an integer gauge cell holds before it is first set.
const UNSET_I64: i64 = i64::MIN;

/// A last-value integer gauge (queue depth, healthy backends). A series is
/// exported once it has been set; `i64::MIN` is reserved and stored as `MIN + 1`.
pub struct Gauge<C: Coords = Series> {
    def: Arc<InstrumentDef>,
    cells: Arc<[Padded<AtomicI64>]>,
    _coords: PhantomData<fn(C)>,
}
handle_common!(Gauge);

impl Gauge<Series> {
    /// A gauge with no series set, not yet exported.
    pub fn new(def: Arc<InstrumentDef>) -> Self {
        let cells = (0..def.series_bound())
            .map(|_| Padded(AtomicI64::new(UNSET_I64)))
            .collect();
        Gauge {
            def,
            cells,
            _coords: PhantomData,
        }
    }
}

impl<C: Coords> Gauge<C> {
    /// Sets the series at `at` to `value`.
    #[inline]
    pub fn set(&self, at: C, value: i64) {
        if let Some(cell) = self.cells.get(self.def.series(at)) {
            cell.store(value.max(UNSET_I64 + 1), Ordering::Relaxed);
        }
    }

    /// The series' value, `None` until first set.
    pub fn value(&self, at: C) -> Option<i64> {
        let v = self.cells.get(self.def.series(at))?.load(Ordering::Relaxed);
        (v != UNSET_I64).then_some(v)
    }

    /// Every series that has been set, with its value.
    pub fn values(&self) -> impl Iterator<Item = (usize, i64)> + '_ {
        self.cells
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .enumerate()
            .filter(|(_, v)| *v != UNSET_I64)
    }
}

/// The bit pattern a float gauge cell holds before it is first set (a NaN no
/// arithmetic produces; NaN inputs are dropped anyway).
const UNSET_F64: u64 = 0x7ff8_dead_beef_0001;

type GaugeCallback = Arc<dyn Fn(&FloatGauge<Series>) + Send + Sync>;

/// The cells of a float gauge and, for a callback gauge, the callback that sets
/// them at collection time.
pub struct FloatCells {
    values: Box<[Padded<AtomicU64>]>,
    callback: OnceLock<GaugeCallback>,
}

impl std::ops::Deref for FloatCells {
    type Target = [Padded<AtomicU64>];
    fn deref(&self) -> &[Padded<AtomicU64>] {
        &self.values
    }
}

/// A last-value float gauge (cache bytes, a timestamp, an age in seconds), or a
/// callback gauge whose callback sets it each time it is collected. Non-finite
/// values are dropped: one bad reading must not stick.
pub struct FloatGauge<C: Coords = Series> {
    def: Arc<InstrumentDef>,
    cells: Arc<FloatCells>,
    _coords: PhantomData<fn(C)>,
}
handle_common!(FloatGauge);

impl FloatGauge<Series> {
    /// A float gauge with no series set, not yet exported.
    pub fn new(def: Arc<InstrumentDef>) -> Self {
        let cells = Arc::new(FloatCells {
            values: (0..def.series_bound())
                .map(|_| Padded(AtomicU64::new(UNSET_F64)))
                .collect(),
            callback: OnceLock::new(),
        });
        FloatGauge {
            def,
            cells,
            _coords: PhantomData,
        }
    }
}

impl<C: Coords> FloatGauge<C> {
    /// Sets the series at `at` to `value` (non-finite values are dropped).
    #[inline]
    pub fn set(&self, at: C, value: f64) {
        if let (Some(cell), true) = (self.cells.get(self.def.series(at)), value.is_finite()) {
            cell.store(value.to_bits(), Ordering::Relaxed);
        }
    }

    /// The series' value, `None` until first set.
    pub fn value(&self, at: C) -> Option<f64> {
        let bits = self.cells.get(self.def.series(at))?.load(Ordering::Relaxed);
        (bits != UNSET_F64).then(|| f64::from_bits(bits))
    }

    /// Runs the callback, if this is a callback gauge, then yields every series
    /// that has been set. Exporters call this at collection time.
    pub fn collect(&self) -> impl Iterator<Item = (usize, f64)> + '_ {
        if let Some(callback) = self.cells.callback.get() {
            callback(&self.raw());
        }
        self.cells
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .enumerate()
            .filter(|(_, bits)| *bits != UNSET_F64)
            .map(|(series, bits)| (series, f64::from_bits(bits)))
    }

    /// Whether a callback sets this gauge.
    pub fn has_callback(&self) -> bool {
        self.cells.callback.get().is_some()
    }

    /// Makes this a callback gauge: `callback` sets its series each time it is
    /// collected. Set once; later calls are ignored.
    pub(crate) fn set_callback(&self, callback: impl Fn(&FloatGauge<C>) + Send + Sync + 'static) {
        let typed = self.clone();
        let _ = self
            .cells
            .callback
            .set(Arc::new(move |_: &FloatGauge<Series>| callback(&typed)));
    }
}

/// Where a histogram's measurements go. Implementations must not panic, block or
/// allocate per call (a one-time bind per series is allowed).
pub trait HistogramSink: Send + Sync {
    /// Records finite `value` into `series`.
    fn record(&self, series: usize, value: f64);
    /// The cells an exporter can read directly, when the sink keeps its own
    /// ([`HistogramCells`]); `None` when measurements go elsewhere (an SDK histogram).
    fn cells(&self) -> Option<&HistogramCells> {
        None
    }
}

/// A histogram over a bounded series space.
pub struct Histogram<C: Coords = Series> {
    def: Arc<InstrumentDef>,
    cells: Arc<dyn HistogramSink>,
    _coords: PhantomData<fn(C)>,
}
handle_common!(Histogram);

impl Histogram<Series> {
    /// A histogram recording into `sink`.
    pub fn new(def: Arc<InstrumentDef>, sink: Arc<dyn HistogramSink>) -> Self {
        Histogram {
            def,
            cells: sink,
            _coords: PhantomData,
        }
    }
}

impl<C: Coords> Histogram<C> {
    /// The cells exporters read, when this histogram keeps its own.
    pub fn cells(&self) -> Option<&HistogramCells> {
        self.cells.cells()
    }

    /// Records `value` into the series at `at`. Non-finite values and
    /// out-of-range series are dropped: one bad measurement must not corrupt a sum forever.
    #[inline]
    pub fn record(&self, at: C, value: f64) {
        let series = self.def.series(at);
        if value.is_finite() && series < self.def.series_bound() {
            self.cells.record(series, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::error_kind::ErrorKind;
    use crate::attr::EnumDimension;
    use crate::instrument::{InstrumentSpec, Namespace};

    static SPEC: InstrumentSpec = InstrumentSpec::counter("test.things", "{thing}", "Things.");

    fn def() -> Arc<InstrumentDef> {
        Arc::new(
            InstrumentDef::new(
                &SPEC,
                &Namespace::NONE,
                vec![Arc::new(EnumDimension::<ErrorKind>::new())],
            )
            .unwrap(),
        )
    }

    #[test]
    fn typed_handles_share_cells_and_ignore_out_of_range() {
        let raw = Counter::new(def());
        let typed = raw.typed::<(ErrorKind,)>().unwrap();
        typed.add((ErrorKind::Dns,), 2);
        raw.add(Series(1_000_000), 5);
        assert_eq!(raw.value(Series(2)), 2);
        assert_eq!(raw.total(), 2);
        assert!(raw.typed::<()>().is_err());
        assert!(typed.shares_cells_with(&raw));
    }

    #[test]
    fn gauges_report_only_what_was_set() {
        let gauge = Gauge::new(def()).typed::<(ErrorKind,)>().unwrap();
        assert_eq!(gauge.value((ErrorKind::Io,)), None);
        gauge.set((ErrorKind::Io,), 0);
        gauge.set((ErrorKind::Tls,), i64::MIN);
        assert_eq!(gauge.value((ErrorKind::Io,)), Some(0));
        assert_eq!(gauge.values().count(), 2);
        let float = FloatGauge::new(def()).typed::<(ErrorKind,)>().unwrap();
        float.set((ErrorKind::Io,), f64::NAN);
        assert_eq!(float.value((ErrorKind::Io,)), None);
        float.set_callback(|g| g.set((ErrorKind::Dns,), 1.5));
        assert_eq!(float.collect().collect::<Vec<_>>(), [(2, 1.5)]);
    }

    #[test]
    fn in_flight_guard_is_owned_and_decrements_on_unwind() {
        let counter = UpDownCounter::new(def()).typed::<(ErrorKind,)>().unwrap();
        let guard = counter.track((ErrorKind::Io,));
        let moved = std::thread::spawn(move || {
            let _g = guard;
            let _ = std::panic::catch_unwind(|| panic!("task failed"));
        });
        moved.join().unwrap();
        assert_eq!(counter.value((ErrorKind::Io,)), 0);
        let _g = counter.track((ErrorKind::Io,));
        assert_eq!(counter.value((ErrorKind::Io,)), 1);
    }
}
