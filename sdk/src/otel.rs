//! The OpenTelemetry adapter: exports outcometer instruments through any
//! `MeterProvider`, ours or the application's own.
//!
//! Counters, up-down counters and gauges are atomic cells read by
//! observable-instrument callbacks at collection time, so the record path never
//! touches the SDK. When the exporter reads the cells itself
//! ([`OtelBackend::cells_only`]) no SDK instrument is created at all and
//! histograms are cells too, with exemplars (ADR 0007); otherwise histograms are
//! OpenTelemetry histograms bound lazily, once per series that occurs, with
//! `experimental_metrics_bound_instruments`. This crate
//! enables that feature in *both* `opentelemetry` and `opentelemetry_sdk`: without
//! the SDK half, bound measurements are silently dropped, and cargo's feature
//! unification makes our dependency switch it on in whatever `opentelemetry_sdk`
//! 0.33 the application uses (docs/adr/0002-pre-bound-recording.md).
//!
//! Applications with a provider of their own build it with
//! [`OtelBackend::with_views`], which adds the views that set each instrument's
//! cardinality limit to its declared bound and its histogram boundaries, so no
//! series is ever merged by the SDK's default limit of 2,000.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use opentelemetry::metrics::{BoundHistogram, Meter, MeterProvider};
use opentelemetry::{InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::metrics::{
    Aggregation, Instrument, InstrumentKind as SdkKind, MeterProviderBuilder, SdkMeterProvider, Stream,
};

use crate::attr::{AttrValue, Attribute};
use crate::backend::Backend;
use crate::cells::{Counter, FloatGauge, Gauge, Histogram, HistogramSink, UpDownCounter};
use crate::error::ConfigError;
use crate::histogram::{HistogramCells, SpanIds};
use crate::instrument::InstrumentDef;
use crate::registry::{AnyInstrument, Registry};

/// The sampled span active on this thread in OpenTelemetry's context, if any: the
/// exemplar source of histograms kept in cells. Reads a thread-local without a
/// lock or an allocation.
pub fn current_span_ids() -> Option<SpanIds> {
    use opentelemetry::trace::TraceContextExt;
    opentelemetry::Context::map_current(|context| {
        let span = context.span();
        let span_context = span.span_context();
        (span_context.is_valid() && span_context.is_sampled()).then(|| SpanIds {
            trace_id: span_context.trace_id().to_bytes(),
            span_id: span_context.span_id().to_bytes(),
        })
    })
}

/// The instrumentation scope outcometer's meters carry.
pub const SCOPE_NAME: &str = "outcometer";

/// A backend that exports through an OpenTelemetry [`Meter`].
///
/// Clones share one [`Registry`]: build a family twice on clones of one backend
/// and both recorders share cells. Build the backend once per provider.
#[derive(Clone, Debug)]
pub struct OtelBackend {
    meter: Meter,
    registry: Arc<Registry>,
    views: Option<Views>,
    cells_only: bool,
}

impl OtelBackend {
    /// Exports through `meter`.
    pub fn new(meter: Meter) -> Self {
        OtelBackend {
            meter,
            registry: Arc::default(),
            views: None,
            cells_only: false,
        }
    }

    /// Exports through a meter of `provider` with outcometer's instrumentation
    /// scope. Without [`OtelBackend::with_views`], the provider's default
    /// cardinality limit (2,000 series) applies to every instrument.
    pub fn from_provider(provider: &impl MeterProvider) -> Self {
        Self::new(provider.meter_with_scope(scope()))
    }

    /// Exports through the global meter provider (`opentelemetry::global`).
    pub fn global() -> Self {
        Self::new(opentelemetry::global::meter_with_scope(scope()))
    }

    /// Builds `builder` (your readers, resource, …) with outcometer's views added,
    /// and a backend on the result: each instrument built on it declares its
    /// bound and boundaries first, so the SDK never merges its series.
    ///
    /// ```
    /// use opentelemetry_sdk::metrics::{ManualReader, SdkMeterProvider};
    /// use outcometer::otel::OtelBackend;
    /// let (provider, backend) = OtelBackend::with_views(
    ///     SdkMeterProvider::builder().with_reader(ManualReader::builder().build()),
    /// );
    /// let backend = backend.namespace("shop")?;
    /// let delivery = outcometer::DeliveryRecorder::builder().build(&backend)?;
    /// # let _ = (provider, delivery);
    /// # Ok::<(), outcometer::ConfigError>(())
    /// ```
    pub fn with_views(builder: MeterProviderBuilder) -> (SdkMeterProvider, OtelBackend) {
        let views = Views::default();
        let stream_views = views.clone();
        let provider = builder
            .with_view(move |i: &Instrument| stream_views.stream(i))
            .build();
        let mut backend = Self::from_provider(&provider);
        backend.views = Some(views);
        (provider, backend)
    }

    /// Names every instrument under `namespace` (`wildside` →
    /// `wildside.idempotency.requests`). Starts a fresh registry: call it before
    /// building recorders.
    pub fn namespace(self, namespace: &str) -> Result<Self, ConfigError> {
        Ok(self.with_registry(Registry::new(namespace)?))
    }

    /// The registry of the families built here (cheap to clone, shared).
    pub fn shared_registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// Uses `registry` (its namespace, its listener) for the families built here.
    pub fn with_registry(mut self, registry: impl Into<Arc<Registry>>) -> Self {
        self.registry = registry.into();
        self
    }

    /// Keeps every outcometer instrument in cells only, for exporters that read
    /// them straight from the registry, as `outcometer-exporter`'s Prometheus and
    /// OTLP encoders do: no SDK instrument is created for them, so collections and
    /// exports never rebuild their series through the SDK, and histograms are
    /// [`HistogramCells`] that keep, per bucket, the latest exemplar — the trace
    /// and span of the sampled span active in OpenTelemetry's context at record
    /// time (what `tracing-opentelemetry` activates when a `tracing` span is
    /// entered). Instruments built by hand rather than by a family are listed in
    /// the registry too, so the exporter finds them.
    ///
    /// The provider's own readers then see no outcometer instrument: use it only
    /// when the exporter reads the registry ([`OtelBackend::shared_registry`]).
    pub fn cells_only(mut self) -> Self {
        self.cells_only = true;
        self
    }

    /// In cells-only mode, lists `handle` in the registry unless a family did,
    /// and returns the listed handle: building the same instrument by hand twice
    /// gives two handles on one set of cells, exported once.
    fn cells<T>(
        &self,
        def: &InstrumentDef,
        handle: T,
        any: fn(T) -> AnyInstrument,
        back: fn(AnyInstrument) -> Option<T>,
    ) -> T
    where
        T: Clone,
    {
        if def.is_registered() {
            return handle;
        }
        let listed = self.registry.adopt(any(handle.clone()));
        let compatible = listed.def().series_bound() == def.series_bound()
            && listed.def().spec().kind() == def.spec().kind();
        match back(listed).filter(|_| compatible) {
            Some(listed) => listed,
            None => {
                eprintln!(
                    "outcometer: an instrument named `{}` is already exported with another shape; \
                     this one is recorded but not exported (give it another name)",
                    def.name()
                );
                handle
            }
        }
    }

    fn declare(&self, def: &InstrumentDef) {
        if let Some(views) = &self.views {
            views.declare(def);
        }
    }
}

/// Views that give each declared instrument its cardinality limit (its series
/// bound, plus one for the SDK's overflow series) and its histogram boundaries.
#[derive(Clone, Debug, Default)]
pub struct Views {
    declared: Arc<RwLock<HashMap<String, Declared>>>,
}

/// What a view needs of a declared instrument: its series bound and boundaries.
type Declared = (usize, &'static [f64]);

impl Views {
    /// Declares `def`; call before the instrument is created.
    pub fn declare(&self, def: &InstrumentDef) {
        self.declared
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                def.name().to_owned(),
                (def.series_bound(), def.spec().boundaries()),
            );
    }

    /// The stream for `instrument`, if it was declared; pass to `with_view`.
    pub fn stream(&self, instrument: &Instrument) -> Option<Stream> {
        let declared = self.declared.read().unwrap_or_else(PoisonError::into_inner);
        let (bound, boundaries) = *declared.get(instrument.name())?;
        let mut stream = Stream::builder().with_cardinality_limit(bound + 1);
        if instrument.kind() == SdkKind::Histogram && !boundaries.is_empty() {
            stream = stream.with_aggregation(Aggregation::ExplicitBucketHistogram {
                boundaries: boundaries.to_vec(),
                record_min_max: true,
            });
        }
        stream.build().ok()
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

/// Creates the cells `$new`, registers the observable instrument `$builder` whose
/// callback hands them to `$body` at collection time, and returns the cells.
macro_rules! observed_cells {
    ($self:ident, $def:ident, $new:expr, $builder:ident, |$observer:ident, $cells:ident, $labels:ident| $body:block) => {{
        $self.declare(&$def);
        let handle = $new;
        let $cells = handle.clone();
        let $labels = SeriesLabels::new($def.clone());
        $self
            .meter
            .$builder($def.name().to_owned())
            .with_unit($def.spec().unit())
            .with_description($def.spec().description())
            .with_callback(move |$observer| $body)
            .build();
        handle
    }};
}

impl Backend for OtelBackend {
    fn counter(&self, def: Arc<InstrumentDef>) -> Counter {
        if self.cells_only {
            return self.cells(
                &def,
                Counter::new(def.clone()),
                AnyInstrument::Counter,
                |any| match any {
                    AnyInstrument::Counter(listed) => Some(listed),
                    _ => None,
                },
            );
        }
        observed_cells!(
            self,
            def,
            Counter::new(def.clone()),
            u64_observable_counter,
            |observer, cells, labels| {
                for (series, value) in cells.values().filter(|(_, v)| *v != 0) {
                    observer.observe(value, labels.get(series));
                }
            }
        )
    }

    fn up_down_counter(&self, def: Arc<InstrumentDef>) -> UpDownCounter {
        if self.cells_only {
            return self.cells(
                &def,
                UpDownCounter::new(def.clone()),
                AnyInstrument::UpDownCounter,
                |any| match any {
                    AnyInstrument::UpDownCounter(listed) => Some(listed),
                    _ => None,
                },
            );
        }
        // A series that went up and back to zero is still reported: zero is a real
        // gauge value (no active tasks), unlike a counter that never moved.
        let touched: Arc<[OnceLock<()>]> = (0..def.series_bound()).map(|_| OnceLock::new()).collect();
        let always = def.dimensions().is_empty();
        observed_cells!(
            self,
            def,
            UpDownCounter::new(def.clone()),
            i64_observable_up_down_counter,
            |observer, cells, labels| {
                for ((series, value), touched) in cells.values().zip(touched.iter()) {
                    if value != 0 {
                        let _ = touched.set(());
                    }
                    if always || touched.get().is_some() {
                        observer.observe(value, labels.get(series));
                    }
                }
            }
        )
    }

    fn gauge(&self, def: Arc<InstrumentDef>) -> Gauge {
        if self.cells_only {
            return self.cells(
                &def,
                Gauge::new(def.clone()),
                AnyInstrument::Gauge,
                |any| match any {
                    AnyInstrument::Gauge(listed) => Some(listed),
                    _ => None,
                },
            );
        }
        observed_cells!(
            self,
            def,
            Gauge::new(def.clone()),
            i64_observable_gauge,
            |observer, cells, labels| {
                for (series, value) in cells.values() {
                    observer.observe(value, labels.get(series));
                }
            }
        )
    }

    fn float_gauge(&self, def: Arc<InstrumentDef>) -> FloatGauge {
        if self.cells_only {
            return self.cells(
                &def,
                FloatGauge::new(def.clone()),
                AnyInstrument::FloatGauge,
                |any| match any {
                    AnyInstrument::FloatGauge(listed) => Some(listed),
                    _ => None,
                },
            );
        }
        observed_cells!(
            self,
            def,
            FloatGauge::new(def.clone()),
            f64_observable_gauge,
            |observer, cells, labels| {
                for (series, value) in cells.collect() {
                    observer.observe(value, labels.get(series));
                }
            }
        )
    }

    fn histogram(&self, def: Arc<InstrumentDef>) -> Histogram {
        if self.cells_only {
            let cells = HistogramCells::new(def.clone(), Some(current_span_ids));
            return self.cells(
                &def,
                Histogram::new(def.clone(), Arc::new(cells)),
                AnyInstrument::Histogram,
                |any| match any {
                    AnyInstrument::Histogram(listed) => Some(listed),
                    _ => None,
                },
            );
        }
        self.declare(&def);
        let histogram = self
            .meter
            .f64_histogram(def.name().to_owned())
            .with_unit(def.spec().unit())
            .with_description(def.spec().description())
            .with_boundaries(def.spec().boundaries().to_vec())
            .build();
        let sink = OtelHistogramSink {
            bound: (0..def.series_bound()).map(|_| OnceLock::new()).collect(),
            labels: SeriesLabels::new(def.clone()),
            histogram,
        };
        Histogram::new(def, Arc::new(sink))
    }

    fn registry(&self) -> Option<&Registry> {
        Some(&self.registry)
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
