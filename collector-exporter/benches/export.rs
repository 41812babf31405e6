//! Cost of one scrape and one OTLP export (docs/performance.md).
//!
//! `scrape`: the pull endpoint's body, for outcometer's whole catalog with every
//! declared series populated (its worst case), alone and with OTLP push on the
//! same pipeline; and for the same 5,000 counter series of one label
//! (`bench_items_total{item="item-0000"}` … `item-4999`, every value non-zero)
//! through our endpoint, through the libraries a user would otherwise pick, and
//! through a floor (pre-rendered label text and integer formatting). Every
//! contender renders into a buffer reused across iterations where its API allows,
//! and its setup checks that the body holds each of the 5,000 samples once, with
//! its value (never inside the timed loop).
//! `otlp`: one collection turned into an OTLP request and protobuf-encoded — the
//! CPU work of each push; the network is left out.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{Instrument, ManualReader, MeterProviderBuilder, SdkMeterProvider, Stream};
use outcometer::catalog::register_shipped_families;
use outcometer::otel::OtelBackend;
use outcometer::toolkit::{
    build, AttrValue, Attribute, AttributeDoc, Backend, Counter, Dimension, Family, FamilyBuilder,
    InstrumentSpec, Series,
};
use outcometer::ConfigError;
use outcometer_exporter::exposition::Format;
use outcometer_exporter::otlp::CellEncoder;
use outcometer_exporter::{ExporterKind, Telemetry};
use prometheus_client::metrics::counter::Counter as ClientCounter;
use prometheus_client::metrics::family::Family as ClientFamily;
use prost::Message as _;

const SERIES: usize = 5_000;
/// The sample name every contender emits for the 5,000 series.
const SAMPLE: &str = "bench_items_total";

/// One label, `item`, with `SERIES` values — the same text for every contender.
#[derive(Debug)]
struct Items;

fn item(index: usize) -> String {
    format!("item-{index:04}")
}

/// Series `index`'s value: non-zero, and different per series, so every
/// contender formats integers of 1 to 4 digits.
fn value(index: usize) -> u64 {
    index as u64 + 1
}

/// Setup check: `body` is an exposition holding one `bench_items_total` sample
/// per item, each with its value. Other lines (headers, `target_info`, `# EOF`)
/// and other labels on the sample (OTel scope labels) are allowed.
fn check_items(contender: &str, body: &[u8]) {
    let text = std::str::from_utf8(body).expect("an exposition is UTF-8");
    let mut seen = vec![false; SERIES];
    let sample_start = format!("{SAMPLE}{{");
    for line in text.lines().filter(|l| l.starts_with(&sample_start)) {
        let (series, sample) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("{contender}: no value in {line:?}"));
        let index: usize = series
            .split_once("item=\"item-")
            .and_then(|(_, rest)| rest.get(..4))
            .and_then(|digits| digits.parse().ok())
            .filter(|&index| index < SERIES)
            .unwrap_or_else(|| panic!("{contender}: no item label in {line:?}"));
        let sample: f64 = sample
            .parse()
            .unwrap_or_else(|_| panic!("{contender}: value of {line:?}"));
        assert_eq!(sample, value(index) as f64, "{contender}: {line:?}");
        assert!(
            !std::mem::replace(&mut seen[index], true),
            "{contender}: item {index} twice"
        );
    }
    let found = seen.iter().filter(|&&s| s).count();
    assert_eq!(found, SERIES, "{contender}: {found} of {SERIES} samples");
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

/// The 5,000 series as an outcometer family: declared through the family
/// builder, so a pipeline's registry (and its Prometheus encoder) knows them.
#[derive(Clone)]
struct ItemsFamily {
    items: Counter,
}

impl Family for ItemsFamily {
    const NAME: &'static str = "bench_items";
    type Config = ();
    fn build(_: &(), family: &mut FamilyBuilder<'_>) -> Result<Self, ConfigError> {
        Ok(ItemsFamily {
            items: family.counter(&ITEMS, vec![Arc::new(Items)])?,
        })
    }
}

/// Builds the items family on `backend` and gives every series its value.
fn populate_items(backend: &impl Backend) {
    let family = build::<ItemsFamily>(backend, ()).expect("5,000 series");
    (0..SERIES).for_each(|s| family.items.add(Series(s), value(s)));
}

/// Registers every shipped family on `backend` (opt-in instruments on), admits a
/// value into every free slot of each admitted attribute (hosts, queue names, …)
/// and puts a value in every series each instrument declares: the worst case a
/// scrape can see. Returns the series budget. (Without the admissions, a series
/// whose admitted value was never seen has no label text and is not rendered:
/// the scrape would cover only a fraction of the catalog.)
fn populate_catalog(backend: &impl Backend) -> usize {
    register_shipped_families(backend).expect("the shipped families build");
    let registry = backend.registry().expect("the pipeline backend has a registry");
    let instruments = registry.instruments();
    for instrument in &instruments {
        for admission in instrument.def().dimensions().iter().filter_map(|d| d.admission()) {
            for i in 0..admission.capacity() {
                // A URL: its host for host admissions, the whole string for names.
                admission.resolve(&format!("https://{}-{i}.example/", admission.key()));
            }
        }
    }
    for instrument in &instruments {
        for s in 0..instrument.def().series_bound() {
            instrument.record_raw(s, 1.0 + 0.001 * s as f64);
        }
    }
    registry.series_budget()
}

/// Setup check for a catalog body: its series, counting a histogram once (by
/// its `_count` line) and leaving out `target_info`.
fn rendered_series(body: &[u8]) -> usize {
    let text = std::str::from_utf8(body).expect("an exposition is UTF-8");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("target_info"))
        .filter(|l| {
            let name = l.split(['{', ' ']).next().unwrap_or("");
            !name.ends_with("_bucket") && !name.ends_with("_sum")
        })
        .count()
}

/// The SDK merges every series past its default cardinality limit (2,000) into
/// one `otel_metric_overflow` series: a plain OTel peer needs this view to keep
/// all 5,000 (one more for the overflow series the limit counts).
fn with_peer_view(builder: MeterProviderBuilder) -> MeterProviderBuilder {
    builder.with_view(|i: &Instrument| {
        (i.name() == "bench.items")
            .then(|| Stream::builder().with_cardinality_limit(SERIES + 1).build().ok())
            .flatten()
    })
}

fn pull_only() -> Telemetry {
    Telemetry::builder()
        .exporters([ExporterKind::Prometheus])
        .build_without_pull_server()
        .expect("a Prometheus-only pipeline")
}

/// `measured` 0.0.25: a fixed-cardinality label whose 5,000 values are known at
/// start-up, the way its docs suggest for runtime sets (like its `lasso`
/// `RodeoReader` set): values sorted, so encoding is a binary search.
mod measured_peer {
    use measured::label::{FixedCardinalitySet, LabelSet};

    /// The `item` label's values.
    pub struct ItemNames(pub Vec<String>);

    impl LabelSet for ItemNames {
        type Value<'a> = &'a str;

        fn dynamic_cardinality(&self) -> Option<usize> {
            Some(self.0.len())
        }

        fn encode(&self, value: &str) -> Option<usize> {
            self.0.binary_search_by(|v| v.as_str().cmp(value)).ok()
        }

        fn decode(&self, value: usize) -> &str {
            &self.0[value]
        }
    }

    impl FixedCardinalitySet for ItemNames {}

    #[derive(Clone, Copy, measured::LabelGroup)]
    #[label(set = ItemSet)]
    pub struct Item<'a> {
        #[label(fixed_with = ItemNames)]
        pub item: &'a str,
    }

    #[derive(measured::MetricGroup)]
    pub struct Metrics {
        /// Items.
        pub bench_items_total: measured::CounterVec<ItemSet>,
    }
}

/// `prometheus-client` 0.25's label set for the same label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ClientItem {
    item: String,
}

fn scrape(c: &mut Criterion) {
    let mut group = c.benchmark_group("scrape");
    // Milliseconds per call: fewer, equal-sized samples.
    group.sampling_mode(SamplingMode::Flat).sample_size(30);
    let mut body: Vec<u8> = Vec::new();

    // The whole catalog, rendered as the pull endpoint does: into a reused buffer.
    let telemetry = pull_only();
    let declared = populate_catalog(&telemetry.backend());
    let service = telemetry.metrics_service();
    service.render_into(Format::Text, &mut body);
    assert_eq!(rendered_series(&body), declared, "every declared series rendered");
    let catalog_lines = body.split(|&b| b == b'\n').count();
    group.bench_function("outcometer_catalog", |b| {
        b.iter(|| service.render_into(Format::Text, black_box(&mut body)))
    });
    drop(telemetry);

    // The same catalog on a pipeline that also pushes OTLP: the scrape must cost
    // the same. The collector address is a loopback port nobody listens on, and
    // the interval is an hour, so no push runs during the bench.
    let unused = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port");
    let telemetry = Telemetry::builder()
        .exporters([ExporterKind::Otlp, ExporterKind::Prometheus])
        .otlp_endpoint(format!("http://{unused}"))
        .export_interval(Duration::from_secs(3_600))
        .otlp_timeout(Duration::from_millis(200))
        .shutdown_timeout(Duration::from_secs(1))
        .build_without_pull_server()
        .expect("an OTLP + Prometheus pipeline");
    assert_eq!(populate_catalog(&telemetry.backend()), declared);
    let service = telemetry.metrics_service();
    service.render_into(Format::Text, &mut body);
    assert_eq!(rendered_series(&body), declared, "every declared series rendered");
    assert_eq!(
        body.split(|&b| b == b'\n').count(),
        catalog_lines,
        "the same catalog renders the same lines"
    );
    group.bench_function("outcometer_catalog_with_otlp", |b| {
        b.iter(|| service.render_into(Format::Text, black_box(&mut body)))
    });
    // The final push fails (nobody listens); that is expected here.
    let _ = telemetry.shutdown();

    // The floor: label text rendered once, then one load and one itoa a series.
    let prefixes: Vec<String> = (0..SERIES)
        .map(|s| format!("{SAMPLE}{{item=\"{}\"}} ", item(s)))
        .collect();
    let values: Vec<AtomicU64> = (0..SERIES).map(|s| AtomicU64::new(value(s))).collect();
    let floor = |out: &mut Vec<u8>| {
        out.clear();
        out.extend_from_slice(b"# HELP bench_items_total Items.\n# TYPE bench_items_total counter\n");
        let mut digits = itoa::Buffer::new();
        for (prefix, value) in prefixes.iter().zip(&values) {
            out.extend_from_slice(prefix.as_bytes());
            out.extend_from_slice(digits.format(value.load(Ordering::Relaxed)).as_bytes());
            out.push(b'\n');
        }
    };
    floor(&mut body);
    check_items("floor", &body);
    group.bench_function("floor_5000", |b| b.iter(|| floor(black_box(&mut body))));

    let telemetry = pull_only();
    populate_items(&telemetry.backend());
    let service = telemetry.metrics_service();
    service.render_into(Format::Text, &mut body);
    check_items("outcometer", &body);
    group.bench_function("outcometer_5000", |b| {
        b.iter(|| service.render_into(Format::Text, black_box(&mut body)))
    });

    // measured: dense cells (5,000 is above its default dense limit of 1,024, so
    // ask for dense explicitly), encoded by its text encoder into a reused Vec.
    let metrics = measured_peer::Metrics {
        bench_items_total: measured::CounterVec::dense_with_label_set(measured_peer::ItemSet::new(
            measured_peer::ItemNames((0..SERIES).map(item).collect()),
        )),
    };
    for s in 0..SERIES {
        let name = item(s);
        metrics
            .bench_items_total
            .inc_by(measured_peer::Item { item: &name }, value(s));
    }
    let mut encoder = measured::text::TextEncoder::new(Vec::new());
    let measured_render = |encoder: &mut measured::text::TextEncoder<Vec<u8>>| {
        encoder.writer.clear();
        measured::MetricGroup::collect_group_into(&metrics, encoder).expect("writing to a Vec");
        encoder.flush().expect("writing to a Vec");
    };
    measured_render(&mut encoder);
    check_items("measured", &encoder.writer);
    group.bench_function("measured_5000", |b| {
        b.iter(|| measured_render(black_box(&mut encoder)))
    });

    // prometheus-client: a Family of counters, its text encoder into a reused String.
    let mut registry = prometheus_client::registry::Registry::default();
    let family = ClientFamily::<ClientItem, ClientCounter>::default();
    registry.register("bench_items", "Items.", family.clone());
    for s in 0..SERIES {
        family
            .get_or_create(&ClientItem { item: item(s) })
            .inc_by(value(s));
    }
    let mut text = String::new();
    let client_render = |text: &mut String| {
        text.clear();
        prometheus_client::encoding::text::encode(text, &registry).expect("writing to a String");
    };
    client_render(&mut text);
    check_items("prometheus-client", text.as_bytes());
    group.bench_function("prometheus_client_5000", |b| {
        b.iter(|| client_render(black_box(&mut text)))
    });

    // The prometheus crate's encoder, for the two registries below.
    let render = |registry: &prometheus::Registry, body: &mut Vec<u8>| {
        body.clear();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &registry.gather(), body)
            .expect("text encoding");
    };

    let registry = prometheus::Registry::new();
    let reader = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .build()
        .expect("opentelemetry-prometheus exporter");
    let provider = with_peer_view(SdkMeterProvider::builder())
        .with_reader(reader)
        .build();
    let counter = provider.meter("peer").u64_counter("bench.items").build();
    (0..SERIES).for_each(|s| counter.add(value(s), &[KeyValue::new("item", item(s))]));
    render(&registry, &mut body);
    check_items("opentelemetry-prometheus", &body);
    group.bench_function("otel_prometheus_5000", |b| {
        b.iter(|| render(&registry, black_box(&mut body)))
    });

    let registry = prometheus::Registry::new();
    let vec = prometheus::IntCounterVec::new(prometheus::Opts::new(SAMPLE, "Items."), &["item"])
        .expect("valid counter");
    registry.register(Box::new(vec.clone())).expect("registered once");
    (0..SERIES).for_each(|s| vec.with_label_values(&[item(s).as_str()]).inc_by(value(s)));
    render(&registry, &mut body);
    check_items("prometheus", &body);
    group.bench_function("prometheus_crate_5000", |b| {
        b.iter(|| render(&registry, black_box(&mut body)))
    });
    group.finish();
}

/// A provider read by hand: what a periodic reader does before it hands the
/// batch to the OTLP exporter.
struct Manual {
    reader: Arc<ManualReader>,
    provider: SdkMeterProvider,
    backend: OtelBackend,
    /// For a pipeline's cells-only backend: what its OTLP exporter appends.
    cells: Option<CellEncoder>,
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
    /// For outcometer's instruments, as the pipeline pushes them.
    fn new() -> Self {
        let reader = Arc::new(ManualReader::builder().build());
        let provider = SdkMeterProvider::builder()
            .with_reader(SharedReader(reader.clone()))
            .build();
        // As the pipeline builds it: outcometer's instruments only in the cells,
        // encoded into the request by the OTLP exporter.
        let backend = OtelBackend::from_provider(&provider).cells_only();
        Manual {
            cells: Some(CellEncoder::new(backend.shared_registry())),
            reader,
            provider,
            backend,
        }
    }

    /// For a plain OTel peer: the view a user needs for 5,000 series.
    fn peer() -> Self {
        let reader = Arc::new(ManualReader::builder().build());
        let provider = with_peer_view(SdkMeterProvider::builder())
            .with_reader(SharedReader(reader.clone()))
            .build();
        let backend = OtelBackend::from_provider(&provider);
        Manual {
            reader,
            provider,
            backend,
            cells: None,
        }
    }

    fn export(&self) -> Vec<u8> {
        let mut batch = ResourceMetrics::default();
        let _ = self.reader.collect(&mut batch);
        match &self.cells {
            Some(cells) => cells.encode(&batch),
            None => ExportMetricsServiceRequest::from(&batch).encode_to_vec(),
        }
    }
}

/// Setup check: the data points of the `bench.items` sum in an encoded OTLP
/// request, each non-zero.
fn otlp_items(body: &[u8]) -> usize {
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value};
    let request = ExportMetricsServiceRequest::decode(body).expect("a valid OTLP request");
    request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .filter(|m| m.name == "bench.items")
        .map(|m| match &m.data {
            Some(Data::Sum(sum)) => sum
                .data_points
                .iter()
                .filter(|p| match p.value {
                    Some(Value::AsInt(v)) => v != 0,
                    Some(Value::AsDouble(v)) => v != 0.0,
                    None => false,
                })
                .count(),
            _ => 0,
        })
        .sum()
}

fn otlp(c: &mut Criterion) {
    let mut group = c.benchmark_group("otlp");
    group.sampling_mode(SamplingMode::Flat).sample_size(30);
    let catalog = Manual::new();
    populate_catalog(&catalog.backend);
    assert!(!catalog.export().is_empty());
    group.bench_function("outcometer_catalog", |b| b.iter(|| black_box(catalog.export())));

    let items = Manual::new();
    populate_items(&items.backend);
    assert_eq!(otlp_items(&items.export()), SERIES, "outcometer: 5,000 points");
    group.bench_function("outcometer_5000", |b| b.iter(|| black_box(items.export())));

    // The same series on a plain OTel counter: the SDK's own aggregation,
    // collected, converted and encoded the same way.
    let otel = Manual::peer();
    let counter = otel.provider.meter("peer").u64_counter("bench.items").build();
    (0..SERIES).for_each(|s| counter.add(value(s), &[KeyValue::new("item", item(s))]));
    assert_eq!(otlp_items(&otel.export()), SERIES, "OTel: 5,000 points");
    group.bench_function("otel_5000", |b| b.iter(|| black_box(otel.export())));
    group.finish();
}

criterion_group!(benches, scrape, otlp);
criterion_main!(benches);
