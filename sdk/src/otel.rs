//! The OpenTelemetry adapter: exports outcometer instruments through any
//! `MeterProvider`, ours or the application's own.
//!
//! Counters and up-down counters are atomic cells read by observable-instrument
//! callbacks at collection time, so the record path never touches the SDK.
//! Histograms are OpenTelemetry histograms bound lazily, once per series that
//! occurs, with `experimental_metrics_bound_instruments`. This crate enables that
//! feature in *both* `opentelemetry` and `opentelemetry_sdk`: without the SDK half,
//! bound measurements are silently dropped, and cargo's feature unification makes
//! our dependency switch it on in whatever `opentelemetry_sdk` 0.33 the
//! application uses (docs/adr/0002-pre-bound-recording.md).

use std::sync::{Arc, OnceLock};

use opentelemetry::metrics::{BoundHistogram, Meter, MeterProvider};
use opentelemetry::{InstrumentationScope, KeyValue, StringValue, Value};
// Linked only so that feature unification turns on bound instruments in the SDK.
use opentelemetry_sdk as _;

use crate::attr::{AttrValue, Attribute};
use crate::instrument::{Backend, Counter, Histogram, HistogramSink, InstrumentDef, UpDownCounter};

/// The instrumentation scope outcometer's meters carry.
pub const SCOPE_NAME: &str = "outcometer";

/// A backend that exports through an OpenTelemetry [`Meter`].
#[derive(Clone, Debug)]
pub struct OtelBackend {
    meter: Meter,
}

impl OtelBackend {
    /// Exports through `meter`.
    pub fn new(meter: Meter) -> Self {
        OtelBackend { meter }
    }

    /// Exports through a meter of `provider` with outcometer's instrumentation scope.
    pub fn from_provider(provider: &impl MeterProvider) -> Self {
        Self::new(provider.meter_with_scope(scope()))
    }

    /// Exports through the global meter provider (`opentelemetry::global`).
    pub fn global() -> Self {
        Self::new(opentelemetry::global::meter_with_scope(scope()))
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(SCOPE_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

fn key_value(attribute: Attribute) -> KeyValue {
    let value = match attribute.value {
        AttrValue::Str(s) => Value::String(StringValue::from(s)),
        AttrValue::Int(i) => Value::I64(i),
        AttrValue::Shared(s) => Value::String(StringValue::from(s)),
    };
    KeyValue::new(attribute.key, value)
}

/// Attribute sets per series, built the first time a series is exported or bound.
struct SeriesLabels {
    def: Arc<InstrumentDef>,
    cache: Box<[OnceLock<Box<[KeyValue]>>]>,
}

impl SeriesLabels {
    fn new(def: Arc<InstrumentDef>) -> Self {
        let cache = (0..def.series_bound()).map(|_| OnceLock::new()).collect();
        SeriesLabels { def, cache }
    }

    fn get(&self, series: usize) -> &[KeyValue] {
        match self.cache.get(series) {
            Some(slot) => {
                slot.get_or_init(|| self.def.attributes(series).into_iter().map(key_value).collect())
            }
            None => &[],
        }
    }
}

impl Backend for OtelBackend {
    fn counter(&self, def: Arc<InstrumentDef>) -> Counter {
        let counter = Counter::new(def.clone());
        let cells = counter.clone();
        let labels = SeriesLabels::new(def.clone());
        self.meter
            .u64_observable_counter(def.name().to_owned())
            .with_unit(def.spec().unit)
            .with_description(def.spec().description)
            .with_callback(move |observer| {
                for (series, value) in cells.values() {
                    if value != 0 {
                        observer.observe(value, labels.get(series));
                    }
                }
            })
            .build();
        counter
    }

    fn up_down_counter(&self, def: Arc<InstrumentDef>) -> UpDownCounter {
        let counter = UpDownCounter::new(def.clone());
        let cells = counter.clone();
        let labels = SeriesLabels::new(def.clone());
        // A series that went up and back to zero is still reported: zero is a real
        // gauge value (no active tasks), unlike a counter that never moved.
        let touched: Arc<[OnceLock<()>]> = (0..def.series_bound()).map(|_| OnceLock::new()).collect();
        self.meter
            .i64_observable_up_down_counter(def.name().to_owned())
            .with_unit(def.spec().unit)
            .with_description(def.spec().description)
            .with_callback(move |observer| {
                for ((series, value), touched) in cells.values().zip(touched.iter()) {
                    if value != 0 {
                        let _ = touched.set(());
                    }
                    if touched.get().is_some() || cells.def().dimensions().is_empty() {
                        observer.observe(value, labels.get(series));
                    }
                }
            })
            .build();
        counter
    }

    fn histogram(&self, def: Arc<InstrumentDef>) -> Histogram {
        let histogram = self
            .meter
            .f64_histogram(def.name().to_owned())
            .with_unit(def.spec().unit)
            .with_description(def.spec().description)
            .with_boundaries(def.spec().boundaries.to_vec())
            .build();
        let sink = OtelHistogramSink {
            bound: (0..def.series_bound()).map(|_| OnceLock::new()).collect(),
            labels: SeriesLabels::new(def.clone()),
            histogram,
        };
        Histogram::new(def, Arc::new(sink))
    }
}

struct OtelHistogramSink {
    histogram: opentelemetry::metrics::Histogram<f64>,
    labels: SeriesLabels,
    bound: Box<[OnceLock<BoundHistogram<f64>>]>,
}

impl HistogramSink for OtelHistogramSink {
    #[inline]
    fn record(&self, series: usize, value: f64) {
        if let Some(slot) = self.bound.get(series) {
            slot.get_or_init(|| self.histogram.bind(self.labels.get(series)))
                .record(value);
        }
    }
}
