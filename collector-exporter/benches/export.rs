//! Cost of one scrape and one OTLP export (docs/performance.md).
//!
//! `scrape`: the pull endpoint's body, for outcometer's whole catalog with every
//! declared series populated (its worst case), and for 5,000 counter series
//! through our endpoint and through the two ways a user would otherwise get one.
//! `otlp`: one collection turned into an OTLP request and protobuf-encoded — the
//! CPU work of each push; the network is left out.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{ManualReader, SdkMeterProvider};
use outcometer::catalog::register_shipped_families;
use outcometer::otel::OtelBackend;
use outcometer::toolkit::{
    AttrValue, Attribute, AttributeDoc, Backend, Dimension, InstrumentDef, InstrumentSpec, Namespace, Series,
};
use outcometer_exporter::{ExporterKind, Telemetry};
use prost::Message as _;

const SERIES: usize = 5_000;

/// One label, `item`, with `SERIES` values — the same text for every contender.
#[derive(Debug)]
struct Items;

fn item(index: usize) -> String {
    format!("item-{index:04}")
}

impl Dimension for Items {
    fn cardinality(&self) -> usize {
        SERIES
    }
    fn attributes(&self, index: usize, out: &mut Vec<Attribute>) {
        if index < SERIES {
            out.push(Attribute {
                key: "item",
                value: AttrValue::Shared(item(index).into()),
            });
        }
    }
    fn docs(&self) -> Vec<AttributeDoc> {
        Vec::new()
    }
}

static ITEMS: InstrumentSpec = InstrumentSpec::counter("bench.items", "{item}", "Items.");

fn items_def() -> Arc<InstrumentDef> {
    Arc::new(InstrumentDef::new(&ITEMS, &Namespace::NONE, vec![Arc::new(Items)]).expect("5,000 series"))
}

/// Registers every shipped family on `backend` (opt-in instruments on) and puts a
/// value in every series each declares: the worst case a scrape can see.
fn populate_catalog(backend: &impl Backend) -> usize {
    register_shipped_families(backend).expect("the shipped families build");
    let registry = backend.registry().expect("the pipeline backend has a registry");
    for instrument in registry.instruments() {
        for s in 0..instrument.def().series_bound() {
            instrument.record_raw(s, 1.0 + 0.001 * s as f64);
        }
    }
    registry.series_budget()
}

fn pull_only() -> Telemetry {
    Telemetry::builder()
        .exporters([ExporterKind::Prometheus])
        .build_without_pull_server()
        .expect("a Prometheus-only pipeline")
}

fn scrape(c: &mut Criterion) {
    let mut group = c.benchmark_group("scrape");
    // Milliseconds per call: fewer, equal-sized samples.
    group.sampling_mode(SamplingMode::Flat).sample_size(30);

    let telemetry = pull_only();
    let declared = populate_catalog(&telemetry.backend());
    let service = telemetry.metrics_service();
    let body = service.render();
    assert!(
        body.len() > declared * 20,
        "{declared} series rendered in {} bytes",
        body.len()
    );
    group.bench_function("outcometer_catalog", |b| b.iter(|| black_box(service.render())));

    let telemetry = pull_only();
    let counter = telemetry.backend().counter(items_def());
    (0..SERIES).for_each(|s| counter.add(Series(s), 1));
    let service = telemetry.metrics_service();
    assert_eq!(service.render().matches("item=\"item-").count(), SERIES);
    group.bench_function("outcometer_5000", |b| b.iter(|| black_box(service.render())));

    let registry = prometheus::Registry::new();
    let reader = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .build()
        .expect("opentelemetry-prometheus exporter");
    let provider = SdkMeterProvider::builder().with_reader(reader).build();
    let counter = provider.meter("peer").u64_counter("bench.items").build();
    (0..SERIES).for_each(|s| counter.add(1, &[KeyValue::new("item", item(s))]));
    let render = |registry: &prometheus::Registry| {
        let mut body = Vec::with_capacity(16 * 1024);
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &registry.gather(), &mut body)
            .expect("text encoding");
        body
    };
    group.bench_function("otel_prometheus_5000", |b| {
        b.iter(|| black_box(render(&registry)))
    });

    let registry = prometheus::Registry::new();
    let vec = prometheus::IntCounterVec::new(prometheus::Opts::new("bench_items_total", "Items."), &["item"])
        .expect("valid counter");
    registry.register(Box::new(vec.clone())).expect("registered once");
    (0..SERIES).for_each(|s| vec.with_label_values(&[item(s).as_str()]).inc());
    group.bench_function("prometheus_crate_5000", |b| {
        b.iter(|| black_box(render(&registry)))
    });
    group.finish();
}

/// A provider read by hand: what a periodic reader does before it hands the
/// batch to the OTLP exporter.
struct Manual {
    reader: Arc<ManualReader>,
    _provider: SdkMeterProvider,
    backend: OtelBackend,
}

#[derive(Debug, Clone)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: std::sync::Weak<opentelemetry_sdk::metrics::Pipeline>) {
        self.0.register_pipeline(pipeline)
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(
        &self,
        kind: opentelemetry_sdk::metrics::InstrumentKind,
    ) -> opentelemetry_sdk::metrics::Temporality {
        self.0.temporality(kind)
    }
}

impl Manual {
    fn new() -> Self {
        let reader = Arc::new(ManualReader::builder().build());
        let provider = SdkMeterProvider::builder()
            .with_reader(SharedReader(reader.clone()))
            .build();
        let backend = OtelBackend::from_provider(&provider);
        Manual {
            reader,
            _provider: provider,
            backend,
        }
    }

    fn export(&self) -> Vec<u8> {
        let mut batch = ResourceMetrics::default();
        let _ = self.reader.collect(&mut batch);
        ExportMetricsServiceRequest::from(&batch).encode_to_vec()
    }
}

fn otlp(c: &mut Criterion) {
    let mut group = c.benchmark_group("otlp");
    group.sampling_mode(SamplingMode::Flat).sample_size(30);
    let catalog = Manual::new();
    populate_catalog(&catalog.backend);
    assert!(!catalog.export().is_empty());
    group.bench_function("outcometer_catalog", |b| b.iter(|| black_box(catalog.export())));

    let items = Manual::new();
    let counter = items.backend.counter(items_def());
    (0..SERIES).for_each(|s| counter.add(Series(s), 1));
    group.bench_function("outcometer_5000", |b| b.iter(|| black_box(items.export())));
    group.finish();
}

criterion_group!(benches, scrape, otlp);
criterion_main!(benches);
