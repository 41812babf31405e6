//! Where instruments are exported: the [`Backend`] trait.

use std::sync::Arc;

use crate::cells::{Counter, FloatGauge, Gauge, Histogram, HistogramSink, UpDownCounter};
use crate::instrument::InstrumentDef;
use crate::registry::Registry;

/// Turns instrument definitions into exported instruments.
///
/// [`crate::otel::OtelBackend`] exports through any OpenTelemetry `MeterProvider`;
/// `testing::InMemoryBackend` (feature `testing`) keeps everything in memory.
///
/// Kinds added after a backend was written have default methods, so existing
/// implementations keep compiling; a default keeps the cells (recorders and their
/// counts work) but cannot export them, and says so once on stderr.
pub trait Backend {
    /// A counter whose cells this backend exports.
    fn counter(&self, def: Arc<InstrumentDef>) -> Counter;
    /// An up-down counter whose cells this backend exports.
    fn up_down_counter(&self, def: Arc<InstrumentDef>) -> UpDownCounter;
    /// A histogram recording through this backend.
    fn histogram(&self, def: Arc<InstrumentDef>) -> Histogram;
    /// An integer gauge whose cells this backend exports.
    fn gauge(&self, def: Arc<InstrumentDef>) -> Gauge {
        not_exported(&def);
        Gauge::new(def)
    }
    /// A float gauge (or callback gauge: see [`FloatGauge::collect`]) whose cells
    /// this backend exports.
    fn float_gauge(&self, def: Arc<InstrumentDef>) -> FloatGauge {
        not_exported(&def);
        FloatGauge::new(def)
    }
    /// The registry families built on this backend share: a second build of the
    /// same family gets the first one's cells, and the namespace lives here.
    /// `None` (the default) builds every family afresh, without a namespace.
    fn registry(&self) -> Option<&Registry> {
        None
    }
}

fn not_exported(def: &InstrumentDef) {
    eprintln!(
        "outcometer: this Backend does not export {} instruments; `{}` is recorded but not exported \
         (implement Backend::{} to export it)",
        def.spec().kind().as_str(),
        def.name(),
        match def.spec().kind() {
            crate::instrument::InstrumentKind::Gauge => "gauge/float_gauge",
            _ => "the method for this kind",
        }
    );
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
    fn gauge(&self, def: Arc<InstrumentDef>) -> Gauge {
        (**self).gauge(def)
    }
    fn float_gauge(&self, def: Arc<InstrumentDef>) -> FloatGauge {
        (**self).float_gauge(def)
    }
    fn registry(&self) -> Option<&Registry> {
        (**self).registry()
    }
}

/// A backend that exports nothing: cells only, histograms dropped. The catalog
/// enumerates definitions with it; a registry can be attached for namespaces.
#[derive(Debug, Default)]
pub struct Detached {
    registry: Option<Registry>,
}

impl Detached {
    /// A detached backend sharing families through `registry`.
    pub fn with_registry(registry: Registry) -> Self {
        Detached {
            registry: Some(registry),
        }
    }
}

struct DropSink;

impl HistogramSink for DropSink {
    fn record(&self, _: usize, _: f64) {}
}

impl Backend for Detached {
    fn counter(&self, def: Arc<InstrumentDef>) -> Counter {
        Counter::new(def)
    }
    fn up_down_counter(&self, def: Arc<InstrumentDef>) -> UpDownCounter {
        UpDownCounter::new(def)
    }
    fn histogram(&self, def: Arc<InstrumentDef>) -> Histogram {
        Histogram::new(def, Arc::new(DropSink))
    }
    fn gauge(&self, def: Arc<InstrumentDef>) -> Gauge {
        Gauge::new(def)
    }
    fn float_gauge(&self, def: Arc<InstrumentDef>) -> FloatGauge {
        FloatGauge::new(def)
    }
    fn registry(&self) -> Option<&Registry> {
        self.registry.as_ref()
    }
}
