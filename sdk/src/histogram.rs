//! Histogram cells of our own: per-bucket atomic counts, an atomic sum, and per
//! bucket the latest exemplar (the trace and span a measurement was taken in).
//!
//! Why not the SDK's histogram: OpenTelemetry Rust keeps no exemplars, and a
//! bound SDK histogram costs a lock-free but indirect update per record. Here a
//! record is a bucket search over a few boundaries, one `fetch_add`, one
//! compare-and-swap on the sum's bits and, only when a sampled span is active, an
//! exemplar write — no lock and no allocation. Exporters read the cells directly
//! (the Prometheus encoder and the OTLP encoder of `outcometer-exporter`).
//!
//! A reader walking the cells while threads record may see a bucket count one
//! ahead of the sum, never a torn value: counts and `_count` come from the same
//! reads, so `+Inf` always equals `_count`.

use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cells::{HistogramSink, Padded};
use crate::instrument::InstrumentDef;

/// The trace and span a measurement was recorded in (W3C ids, big-endian bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpanIds {
    /// The 16-byte trace id.
    pub trace_id: [u8; 16],
    /// The 8-byte span id.
    pub span_id: [u8; 8],
}

/// Finds the sampled span active on this thread, if any: called on the record
/// path, so it must not lock, allocate or block. `OtelBackend` passes one that
/// reads OpenTelemetry's current context.
pub type SpanSource = fn() -> Option<SpanIds>;

/// One exemplar: a measurement, when it was taken, and its span.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exemplar {
    /// The measured value.
    pub value: f64,
    /// Nanoseconds since the Unix epoch.
    pub time_unix_nano: u64,
    /// The span active when it was recorded.
    pub ids: SpanIds,
}

/// The latest exemplar of one bucket, written without a lock.
///
/// A sequence lock built from atomics: a writer claims the slot by moving the
/// sequence from even to odd (and gives up if another writer holds it — the
/// other's exemplar is just as recent), writes, then publishes with the next even
/// number. A reader retries while the sequence is odd or moved during its read.
#[derive(Debug, Default)]
struct ExemplarSlot {
    sequence: AtomicU64,
    trace_high: AtomicU64,
    trace_low: AtomicU64,
    span: AtomicU64,
    value: AtomicU64,
    time: AtomicU64,
}

impl ExemplarSlot {
    fn write(&self, exemplar: &Exemplar) {
        let sequence = self.sequence.load(Ordering::Relaxed);
        if sequence & 1 == 1
            || self
                .sequence
                .compare_exchange(sequence, sequence + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        // The odd sequence must be visible before any data store: an `Acquire`
        // claim alone lets the relaxed stores below move ahead of it.
        fence(Ordering::Release);
        let (high, low) = exemplar.ids.trace_id.split_at(8);
        self.trace_high.store(u64_of(high), Ordering::Relaxed);
        self.trace_low.store(u64_of(low), Ordering::Relaxed);
        self.span
            .store(u64::from_be_bytes(exemplar.ids.span_id), Ordering::Relaxed);
        self.value.store(exemplar.value.to_bits(), Ordering::Relaxed);
        self.time.store(exemplar.time_unix_nano, Ordering::Relaxed);
        self.sequence.store(sequence + 2, Ordering::Release);
    }

    fn read(&self) -> Option<Exemplar> {
        for _ in 0..8 {
            let before = self.sequence.load(Ordering::Acquire);
            if before == 0 {
                return None;
            }
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let mut trace_id = [0; 16];
            trace_id[..8].copy_from_slice(&self.trace_high.load(Ordering::Relaxed).to_be_bytes());
            trace_id[8..].copy_from_slice(&self.trace_low.load(Ordering::Relaxed).to_be_bytes());
            let exemplar = Exemplar {
                ids: SpanIds {
                    trace_id,
                    span_id: self.span.load(Ordering::Relaxed).to_be_bytes(),
                },
                value: f64::from_bits(self.value.load(Ordering::Relaxed)),
                time_unix_nano: self.time.load(Ordering::Relaxed),
            };
            fence(Ordering::Acquire);
            if self.sequence.load(Ordering::Relaxed) == before {
                return Some(exemplar);
            }
        }
        None
    }
}

fn u64_of(bytes: &[u8]) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(bytes);
    u64::from_be_bytes(word)
}

/// The cells of one explicit-bucket histogram over a bounded series space.
///
/// Memory is fixed at build: per series, `boundaries + 1` counts (8 bytes each),
/// a padded sum (64 bytes) and, with exemplars, `boundaries + 1` slots of 48 bytes.
pub struct HistogramCells {
    def: Arc<InstrumentDef>,
    bounds: &'static [f64],
    /// `series × (bounds + 1)` counts, bucket `i` holding values in
    /// `(bounds[i-1], bounds[i]]` and the last one everything above.
    counts: Box<[AtomicU64]>,
    sums: Box<[Padded<AtomicU64>]>,
    /// Empty without a span source.
    exemplars: Box<[ExemplarSlot]>,
    span_source: Option<SpanSource>,
}

impl std::fmt::Debug for HistogramCells {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistogramCells")
            .field("instrument", &self.def.name())
            .field("bounds", &self.bounds)
            .field("exemplars", &self.span_source.is_some())
            .finish_non_exhaustive()
    }
}

impl HistogramCells {
    /// Cells for `def` (its spec's boundaries). With `span_source`, each bucket
    /// keeps the latest measurement recorded inside a sampled span.
    pub fn new(def: Arc<InstrumentDef>, span_source: Option<SpanSource>) -> Self {
        let bounds = def.spec().boundaries();
        let slots = def.series_bound() * (bounds.len() + 1);
        HistogramCells {
            counts: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            sums: (0..def.series_bound()).map(|_| Padded::default()).collect(),
            exemplars: match span_source {
                Some(_) => (0..slots).map(|_| ExemplarSlot::default()).collect(),
                None => Box::default(),
            },
            span_source,
            bounds,
            def,
        }
    }

    /// The definition.
    pub fn def(&self) -> &Arc<InstrumentDef> {
        &self.def
    }

    /// The bucket boundaries (upper bounds, inclusive; `+Inf` is implied).
    pub fn bounds(&self) -> &'static [f64] {
        self.bounds
    }

    /// Whether buckets keep exemplars.
    pub fn keeps_exemplars(&self) -> bool {
        self.span_source.is_some()
    }

    fn buckets(&self) -> usize {
        self.bounds.len() + 1
    }

    /// The non-cumulative bucket counts of `series` (`bounds + 1` of them; empty
    /// out of range).
    pub fn bucket_counts(&self, series: usize) -> impl Iterator<Item = u64> + '_ {
        let buckets = self.buckets();
        let start = series.saturating_mul(buckets).min(self.counts.len());
        let end = (start + buckets).min(self.counts.len());
        self.counts[start..end].iter().map(|c| c.load(Ordering::Relaxed))
    }

    /// The sum of `series` (0 out of range).
    pub fn sum(&self, series: usize) -> f64 {
        self.sums
            .get(series)
            .map_or(0.0, |s| f64::from_bits(s.load(Ordering::Relaxed)))
    }

    /// The measurement count of `series`.
    pub fn count(&self, series: usize) -> u64 {
        self.bucket_counts(series).sum()
    }

    /// The latest exemplar of `bucket` of `series`, if one was recorded.
    pub fn exemplar(&self, series: usize, bucket: usize) -> Option<Exemplar> {
        if bucket >= self.buckets() {
            return None;
        }
        self.exemplars
            .get(series.checked_mul(self.buckets())? + bucket)?
            .read()
    }

    /// Series that have a measurement, in order.
    pub fn recorded_series(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.def.series_bound()).filter(|&series| self.count(series) > 0)
    }
}

impl HistogramSink for HistogramCells {
    #[inline]
    fn record(&self, series: usize, value: f64) {
        let buckets = self.buckets();
        let bucket = self.bounds.partition_point(|bound| *bound < value);
        let index = series * buckets + bucket;
        let (Some(count), Some(sum)) = (self.counts.get(index), self.sums.get(series)) else {
            return;
        };
        count.fetch_add(1, Ordering::Relaxed);
        let mut current = sum.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(current) + value).to_bits();
            match sum.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        if let Some(ids) = self.span_source.and_then(|source| source()) {
            if let Some(slot) = self.exemplars.get(index) {
                let time_unix_nano = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                slot.write(&Exemplar {
                    value,
                    time_unix_nano,
                    ids,
                });
            }
        }
    }

    fn cells(&self) -> Option<&HistogramCells> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::error_kind::ErrorKind;
    use crate::attr::EnumDimension;
    use crate::instrument::{InstrumentSpec, Namespace};

    static SPEC: InstrumentSpec =
        InstrumentSpec::histogram("test.duration", "s", "Durations.", &[0.1, 1.0, 10.0]);

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

    const IDS: SpanIds = SpanIds {
        trace_id: [7; 16],
        span_id: [9; 8],
    };

    #[test]
    fn buckets_are_upper_inclusive_and_counts_agree_with_the_sum() {
        let cells = HistogramCells::new(def(), None);
        for value in [0.05, 0.1, 0.5, 1.0, 20.0] {
            cells.record(1, value);
        }
        assert_eq!(cells.bucket_counts(1).collect::<Vec<_>>(), [2, 2, 0, 1]);
        assert_eq!(cells.count(1), 5);
        assert!((cells.sum(1) - 21.65).abs() < 1e-9);
        assert_eq!(cells.recorded_series().collect::<Vec<_>>(), [1]);
        assert_eq!(cells.exemplar(1, 0), None, "no span source, no exemplars");
        // Out of range: ignored, never a panic.
        cells.record(99, 1.0);
        assert_eq!(cells.bucket_counts(99).count(), 0);
    }

    #[test]
    fn exemplars_keep_the_latest_sampled_measurement_per_bucket() {
        let cells = HistogramCells::new(def(), Some(|| Some(IDS)));
        cells.record(0, 0.5);
        cells.record(0, 0.7);
        let exemplar = cells.exemplar(0, 1).expect("an exemplar in (0.1, 1]");
        assert_eq!((exemplar.value, exemplar.ids), (0.7, IDS));
        assert!(exemplar.time_unix_nano > 1_600_000_000_000_000_000);
        assert_eq!(cells.exemplar(0, 0), None);
        assert_eq!(cells.exemplar(0, 4), None, "no such bucket");

        let unsampled = HistogramCells::new(def(), Some(|| None));
        unsampled.record(0, 0.5);
        assert_eq!(unsampled.exemplar(0, 1), None);
    }

    #[test]
    fn concurrent_records_lose_nothing_and_exemplars_are_never_torn() {
        // Each writer's ids and value all encode one number, so a torn read (ids
        // of one measurement, value of another) shows as a mismatch.
        thread_local!(static CURRENT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) });
        fn source() -> Option<SpanIds> {
            let n = CURRENT.with(std::cell::Cell::get);
            Some(SpanIds {
                trace_id: [n.to_be_bytes(), n.to_be_bytes()].concat().try_into().unwrap(),
                span_id: n.to_be_bytes(),
            })
        }
        let cells = Arc::new(HistogramCells::new(def(), Some(source)));
        std::thread::scope(|scope| {
            for t in 0..4u64 {
                let cells = cells.clone();
                scope.spawn(move || {
                    for i in 0..10_000u64 {
                        let n = t * 1_000_000 + i;
                        CURRENT.with(|c| c.set(n));
                        // (0.1, 1]: bucket 1, and the value says which n it was.
                        cells.record(2, 0.5 + n as f64 * 1e-10);
                    }
                });
            }
            let reader = cells.clone();
            scope.spawn(move || {
                for _ in 0..20_000 {
                    if let Some(e) = reader.exemplar(2, 1) {
                        let n = u64::from_be_bytes(e.ids.span_id);
                        assert_eq!(e.ids.trace_id[..8], n.to_be_bytes(), "trace and span agree");
                        assert_eq!(e.ids.trace_id[8..], n.to_be_bytes(), "both trace halves agree");
                        assert_eq!(e.value, 0.5 + n as f64 * 1e-10, "value and span agree");
                    }
                }
            });
        });
        assert_eq!(cells.count(2), 40_000);
        let expected: f64 = (0..4u64)
            .flat_map(|t| (0..10_000u64).map(move |i| 0.5 + (t * 1_000_000 + i) as f64 * 1e-10))
            .sum();
        assert!((cells.sum(2) - expected).abs() < 1e-6);
    }
}
