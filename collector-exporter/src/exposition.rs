//! The Prometheus text (0.0.4) and OpenMetrics 1.0 encoder, straight from the cells.
//!
//! outcometer's counters, up-down counters, gauges and histograms are rendered
//! from their atomic cells, with each series' label text rendered once and reused:
//! a scrape is a walk over the cells, integer formatting and `memcpy`. Histogram
//! buckets carry their latest exemplar in OpenMetrics (ADR 0007). The pipeline's
//! backend is cells-only, so the SDK holds none of outcometer's instruments: one
//! SDK collection gives the application's own, and nothing is rendered twice.
//!
//! Names follow the OpenTelemetry → Prometheus compatibility rules
//! ([`outcometer::catalog::prometheus_metric_name`]); resource attributes become
//! `target_info`; `otel_scope_name`/`otel_scope_version` labels are off by default
//! (`TelemetryBuilder::prometheus_scope_labels`).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, HistogramDataPoint, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::ManualReader;
use opentelemetry_sdk::Resource;
use outcometer::catalog::{prometheus_metric_name, push_sanitized};
use outcometer::otel::SCOPE_NAME;
use outcometer::toolkit::{AnyInstrument, Exemplar, HistogramCells, InstrumentDef, Registry};

/// Which exposition format a scrape asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The format an `Accept` header asks for: OpenMetrics when it names
    /// `application/openmetrics-text` with a non-zero quality, text otherwise.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let asks = accept.is_some_and(|accept| {
            accept.split(',').any(|item| {
                let mut parts = item.split(';').map(str::trim);
                let media = parts.next().unwrap_or("");
                let quality = parts
                    .find_map(|p| p.strip_prefix("q="))
                    .map_or(1.0, |q| q.parse::<f32>().unwrap_or(0.0));
                media.eq_ignore_ascii_case("application/openmetrics-text") && quality > 0.0
            })
        });
        if asks {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }
}

/// A SDK reader whose collections the encoder runs (cloned into the provider).
#[derive(Clone, Debug)]
pub(crate) struct SharedReader(pub(crate) Arc<ManualReader>);

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
        _: opentelemetry_sdk::metrics::InstrumentKind,
    ) -> opentelemetry_sdk::metrics::Temporality {
        opentelemetry_sdk::metrics::Temporality::Cumulative
    }
}

/// Per instrument: names and headers rendered once, label text per series rendered
/// on first use.
struct Rendered {
    instrument: AnyInstrument,
    /// The sample name (`…_total` for counters).
    sample: String,
    /// `# HELP`/`# TYPE` (and `# UNIT`) lines, per format.
    header_text: String,
    header_om: String,
    labels: Box<[OnceLock<Box<str>>]>,
    /// Up-down counters: series that have been non-zero (reported from then on).
    touched: Box<[AtomicBool]>,
    /// Histograms kept in cells: `le="…"` per bucket, `+Inf` last, per format.
    le_text: Box<[Box<[u8]>]>,
    le_om: Box<[Box<[u8]>]>,
}

struct Cache {
    generation: usize,
    rendered: Vec<Rendered>,
}

/// Renders a pipeline's metrics; shared by the pull server and `MetricsService`.
pub(crate) struct Exposition {
    registry: Option<Arc<Registry>>,
    reader: Option<SharedReader>,
    scope_labels: bool,
    target_text: OnceLock<String>,
    target_om: OnceLock<String>,
    resource: Resource,
    cache: RwLock<Cache>,
    buffers: Mutex<Vec<Vec<u8>>>,
    started: Instant,
    closed: AtomicBool,
}

impl std::fmt::Debug for Exposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exposition")
            .field("scope_labels", &self.scope_labels)
            .finish_non_exhaustive()
    }
}

impl Exposition {
    pub(crate) fn new(
        registry: Option<Arc<Registry>>,
        reader: Option<SharedReader>,
        resource: Resource,
        scope_labels: bool,
    ) -> Self {
        Exposition {
            registry,
            reader,
            scope_labels,
            target_text: OnceLock::new(),
            target_om: OnceLock::new(),
            resource,
            cache: RwLock::new(Cache {
                generation: usize::MAX,
                rendered: Vec::new(),
            }),
            buffers: Mutex::new(Vec::new()),
            started: Instant::now(),
            closed: AtomicBool::new(false),
        }
    }

    /// The registry whose cells are rendered; `None` without the Prometheus exporter.
    pub(crate) fn registry(&self) -> Option<&Arc<Registry>> {
        self.registry.as_ref()
    }

    /// How long ago the pipeline started.
    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Marks the pipeline shut down (its provider is shutting down or gone).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Whether the pipeline was shut down.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Runs one SDK collection (the application's instruments: the SDK holds
    /// none of outcometer's) and hands it to `visit`. `None` without a reader or
    /// when the collection fails (the provider is shut down).
    fn collect_sdk<R>(&self, visit: impl FnOnce(&ResourceMetrics) -> R) -> Option<R> {
        let reader = self.reader.as_ref()?;
        let mut metrics = ResourceMetrics::default();
        reader.collect(&mut metrics).ok()?;
        Some(visit(&metrics))
    }

    /// A buffer from the pool (warm after the first scrapes).
    pub(crate) fn take_buffer(&self) -> Vec<u8> {
        let mut buffer = self
            .buffers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        buffer.clear();
        buffer
    }

    /// Returns a buffer to the pool.
    pub(crate) fn give_back(&self, buffer: Vec<u8>) {
        let mut pool = self.buffers.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() < 4 {
            pool.push(buffer);
        }
    }

    fn refresh(&self) {
        let Some(registry) = &self.registry else {
            return;
        };
        let generation = registry.generation();
        if self
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .generation
            == generation
        {
            return;
        }
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if cache.generation == generation {
            return;
        }
        // Keep what is rendered (by name: names are unique in a registry), in
        // the registry's order, which a registration may change (the overflow
        // meta counter goes first, instruments built by hand join their entry).
        let mut known: std::collections::HashMap<String, Rendered> = cache
            .rendered
            .drain(..)
            .map(|r| (r.instrument.def().name().to_owned(), r))
            .collect();
        cache.rendered = registry
            .instruments()
            .into_iter()
            .map(|instrument| {
                known
                    .remove(instrument.def().name())
                    .unwrap_or_else(|| Rendered::new(instrument))
            })
            .collect();
        cache.generation = generation;
    }

    /// Renders every metric into `out` in `format`.
    pub(crate) fn render(&self, format: Format, out: &mut Vec<u8>) {
        self.refresh();
        if self.reader.is_some() {
            out.extend_from_slice(self.target_info(format).as_bytes());
        }
        let scope = self.scope_labels.then(|| {
            format!(
                "otel_scope_name=\"{SCOPE_NAME}\",otel_scope_version=\"{}\"",
                outcometer_version()
            )
        });
        {
            let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
            for rendered in &cache.rendered {
                rendered.render(format, scope.as_deref(), out);
            }
        }
        self.collect_sdk(|metrics| render_sdk(metrics, format, self.scope_labels, out));
        if format == Format::OpenMetrics {
            out.extend_from_slice(b"# EOF\n");
        }
    }

    fn target_info(&self, format: Format) -> &str {
        let slot = match format {
            Format::Text => &self.target_text,
            Format::OpenMetrics => &self.target_om,
        };
        slot.get_or_init(|| {
            let mut pairs: Vec<(String, String)> = self
                .resource
                .iter()
                .map(|(k, v)| {
                    let mut key = String::new();
                    push_sanitized(&mut key, k.as_str());
                    (key, v.as_str().into_owned())
                })
                .collect();
            if pairs.is_empty() {
                return String::new();
            }
            pairs.sort();
            let mut labels = String::new();
            for (key, value) in pairs {
                push_label(&mut labels, &key, &value);
            }
            let header = match format {
                Format::Text => "# HELP target_info Target metadata\n# TYPE target_info gauge\n",
                Format::OpenMetrics => "# TYPE target info\n# HELP target Target metadata\n",
            };
            format!("{header}target_info{{{labels}}} 1\n")
        })
    }
}

fn outcometer_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

impl Rendered {
    fn new(instrument: AnyInstrument) -> Self {
        let def = instrument.def().clone();
        let counter = matches!(instrument, AnyInstrument::Counter(_));
        let sample = prometheus_metric_name(def.name(), def.spec().unit(), counter);
        let (kind, family) = match &instrument {
            AnyInstrument::Counter(_) => ("counter", sample.strip_suffix("_total").unwrap_or(&sample)),
            AnyInstrument::Histogram(_) => ("histogram", sample.as_str()),
            _ => ("gauge", sample.as_str()),
        };
        let help = def.spec().description();
        let header_text = format!(
            "# HELP {sample} {}\n# TYPE {sample} {kind}\n",
            escape_help(help, Format::Text)
        );
        let unit = unit_word(&def, family);
        let mut header_om = format!(
            "# TYPE {family} {kind}\n# HELP {family} {}\n",
            escape_help(help, Format::OpenMetrics)
        );
        if let Some(unit) = unit {
            let _ = writeln!(header_om, "# UNIT {family} {unit}");
        }
        let series = def.series_bound();
        let bounds = match &instrument {
            AnyInstrument::Histogram(h) => h.cells().map_or(&[][..], |cells| cells.bounds()),
            _ => &[],
        };
        Rendered {
            le_text: le_labels(bounds, Format::Text),
            le_om: le_labels(bounds, Format::OpenMetrics),
            instrument,
            labels: (0..series).map(|_| OnceLock::new()).collect(),
            touched: (0..series).map(|_| AtomicBool::new(false)).collect(),
            sample,
            header_text,
            header_om,
        }
    }

    fn label_text(&self, series: usize) -> Option<&str> {
        let slot = self.labels.get(series)?;
        if let Some(text) = slot.get() {
            return Some(text);
        }
        let def = self.instrument.def();
        let attributes = def.attributes(series);
        let dims = def.dimensions().len();
        let mut text = String::new();
        for attribute in &attributes {
            let mut key = String::new();
            push_sanitized(&mut key, attribute.key);
            push_label(&mut text, &key, &attribute.value.to_text());
        }
        if attributes.len() < dims {
            // An admission slot not written yet (a race with its first record):
            // render now, cache later.
            return None;
        }
        Some(slot.get_or_init(|| text.into_boxed_str()))
    }

    fn render(&self, format: Format, scope: Option<&str>, out: &mut Vec<u8>) {
        let mut header = Some(match format {
            Format::Text => &self.header_text,
            Format::OpenMetrics => &self.header_om,
        });
        let mut sample = |out: &mut Vec<u8>, series: usize, value: Sample| {
            let Some(labels) = self.label_text(series) else {
                return;
            };
            if let Some(header) = header.take() {
                out.extend_from_slice(header.as_bytes());
            }
            out.extend_from_slice(self.sample.as_bytes());
            write_labels(out, labels, scope);
            out.push(b' ');
            value.write(out);
            out.push(b'\n');
        };
        match &self.instrument {
            AnyInstrument::Counter(c) => {
                for (series, value) in c.values().filter(|(_, v)| *v != 0) {
                    sample(out, series, Sample::U(value));
                }
            }
            AnyInstrument::UpDownCounter(c) => {
                let always = c.def().dimensions().is_empty();
                for ((series, value), touched) in c.values().zip(self.touched.iter()) {
                    if value != 0 {
                        touched.store(true, Ordering::Relaxed);
                    }
                    if always || touched.load(Ordering::Relaxed) {
                        sample(out, series, Sample::I(value));
                    }
                }
            }
            AnyInstrument::Gauge(g) => {
                for (series, value) in g.values() {
                    sample(out, series, Sample::I(value));
                }
            }
            AnyInstrument::FloatGauge(g) => {
                for (series, value) in g.collect() {
                    sample(out, series, Sample::F(value));
                }
            }
            AnyInstrument::Histogram(h) => {
                // Histograms the SDK keeps (not in cells) come from its collection.
                if let Some(cells) = h.cells() {
                    self.render_histogram(cells, format, scope, header, out);
                }
            }
            // Unknown kinds are not ours to guess.
            _ => {}
        }
    }

    /// Buckets, `_sum` and `_count` of each recorded series, with each bucket's
    /// latest exemplar in OpenMetrics. One pass over the bucket counts gives both
    /// the cumulative buckets and `_count`, so `+Inf` equals `_count` even while
    /// threads record.
    fn render_histogram(
        &self,
        cells: &HistogramCells,
        format: Format,
        scope: Option<&str>,
        mut header: Option<&String>,
        out: &mut Vec<u8>,
    ) {
        let le = match format {
            Format::Text => &self.le_text,
            Format::OpenMetrics => &self.le_om,
        };
        for series in cells.recorded_series() {
            let Some(labels) = self.label_text(series) else {
                continue;
            };
            if let Some(header) = header.take() {
                out.extend_from_slice(header.as_bytes());
            }
            let mut cumulative = 0u64;
            for (bucket, (count, le)) in cells.bucket_counts(series).zip(le.iter()).enumerate() {
                cumulative += count;
                out.extend_from_slice(self.sample.as_bytes());
                out.extend_from_slice(b"_bucket{");
                if !labels.is_empty() {
                    out.extend_from_slice(labels.as_bytes());
                    out.push(b',');
                }
                out.extend_from_slice(le);
                if let Some(scope) = scope {
                    out.push(b',');
                    out.extend_from_slice(scope.as_bytes());
                }
                out.extend_from_slice(b"} ");
                Sample::U(cumulative).write(out);
                if format == Format::OpenMetrics {
                    if let Some(exemplar) = cells.exemplar(series, bucket) {
                        write_exemplar(out, &exemplar);
                    }
                }
                out.push(b'\n');
            }
            for (suffix, value) in [
                ("_sum", Sample::F(cells.sum(series))),
                ("_count", Sample::U(cumulative)),
            ] {
                out.extend_from_slice(self.sample.as_bytes());
                out.extend_from_slice(suffix.as_bytes());
                write_labels(out, labels, scope);
                out.push(b' ');
                value.write(out);
                out.push(b'\n');
            }
        }
    }
}

/// ` # {trace_id="…",span_id="…"} value timestamp`: an OpenMetrics exemplar.
fn write_exemplar(out: &mut Vec<u8>, exemplar: &Exemplar) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hex = |bytes: &[u8], out: &mut Vec<u8>| {
        for byte in bytes {
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        }
    };
    out.extend_from_slice(b" # {trace_id=\"");
    hex(&exemplar.ids.trace_id, out);
    out.extend_from_slice(b"\",span_id=\"");
    hex(&exemplar.ids.span_id, out);
    out.extend_from_slice(b"\"} ");
    write_float(out, exemplar.value);
    out.push(b' ');
    let seconds = exemplar.time_unix_nano / 1_000_000_000;
    let millis = exemplar.time_unix_nano % 1_000_000_000 / 1_000_000;
    out.extend_from_slice(itoa::Buffer::new().format(seconds).as_bytes());
    out.push(b'.');
    for digit in [millis / 100, millis / 10 % 10, millis % 10] {
        out.push(b'0' + digit as u8);
    }
}

/// `le="…"` for each boundary and `+Inf`; OpenMetrics wants canonical floats (`1.0`).
fn le_labels(bounds: &[f64], format: Format) -> Box<[Box<[u8]>]> {
    if bounds.is_empty() {
        return Box::default();
    }
    bounds
        .iter()
        .map(|&bound| {
            let mut v = b"le=\"".to_vec();
            let start = v.len();
            write_float(&mut v, bound);
            let text = &v[start..];
            if format == Format::OpenMetrics && !text.contains(&b'.') && !text.contains(&b'e') {
                v.extend_from_slice(b".0");
            }
            v.push(b'"');
            v.into_boxed_slice()
        })
        .chain(std::iter::once(b"le=\"+Inf\"".to_vec().into_boxed_slice()))
        .collect()
}

/// The unit word a family name ends with, for `# UNIT` (OpenMetrics requires the
/// family name to end in it).
fn unit_word(def: &InstrumentDef, family: &str) -> Option<String> {
    let probe = prometheus_metric_name("x", def.spec().unit(), false);
    let word = probe.strip_prefix("x_")?;
    (family.ends_with(&format!("_{word}"))).then(|| word.to_owned())
}

enum Sample {
    U(u64),
    I(i64),
    F(f64),
}

impl Sample {
    #[inline]
    fn write(&self, out: &mut Vec<u8>) {
        match *self {
            Sample::U(v) => out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
            Sample::I(v) => out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
            Sample::F(v) => write_float(out, v),
        }
    }
}

fn write_float(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        out.extend_from_slice(itoa::Buffer::new().format(v as i64).as_bytes());
    } else {
        let _ = std::io::Write::write_fmt(out, format_args!("{v}"));
    }
}

#[inline]
fn write_labels(out: &mut Vec<u8>, labels: &str, scope: Option<&str>) {
    match (labels.is_empty(), scope) {
        (true, None) => {}
        (false, None) => {
            out.push(b'{');
            out.extend_from_slice(labels.as_bytes());
            out.push(b'}');
        }
        (true, Some(scope)) => {
            out.push(b'{');
            out.extend_from_slice(scope.as_bytes());
            out.push(b'}');
        }
        (false, Some(scope)) => {
            out.push(b'{');
            out.extend_from_slice(labels.as_bytes());
            out.push(b',');
            out.extend_from_slice(scope.as_bytes());
            out.push(b'}');
        }
    }
}

/// Appends `key="value"` (comma-separated) with the value escaped as both
/// formats require: `\` → `\\`, `"` → `\"`, newline → `\n`.
pub(crate) fn push_label(out: &mut String, key: &str, value: &str) {
    if !out.is_empty() {
        out.push(',');
    }
    out.push_str(key);
    out.push_str("=\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn escape_help(help: &str, format: Format) -> String {
    let mut out = String::with_capacity(help.len());
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if format == Format::OpenMetrics => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

fn attribute_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.as_str().to_owned(),
        other => other.to_string(),
    }
}

fn labels_of<'a>(attributes: impl Iterator<Item = &'a KeyValue>) -> String {
    let mut text = String::new();
    labels_into(&mut text, attributes);
    text
}

/// Appends the label text of `attributes` to `text`: keys sanitised and sorted,
/// values escaped.
fn labels_into<'a>(text: &mut String, attributes: impl Iterator<Item = &'a KeyValue>) {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for kv in attributes {
        let mut key = String::new();
        push_sanitized(&mut key, kv.key.as_str());
        let value = attribute_text(&kv.value);
        // Keys that sanitise to the same name are joined with `;`, as the
        // compatibility rules say.
        match pairs.iter_mut().find(|(k, _)| *k == key) {
            Some((_, existing)) => {
                existing.push(';');
                existing.push_str(&value);
            }
            None => pairs.push((key, value)),
        }
    }
    pairs.sort();
    for (key, value) in &pairs {
        push_label(text, key, value);
    }
}

/// Renders what one SDK collection holds: outcometer's histograms, and every
/// instrument whose series the registry's cells did not provide (the
/// application's, and cell instruments built outside a family). The registered
/// cell instruments observed nothing in this collection, so nothing is rendered twice.
fn render_sdk(metrics: &ResourceMetrics, format: Format, scope_labels: bool, out: &mut Vec<u8>) {
    for scope_metrics in metrics.scope_metrics() {
        let scope = scope_metrics.scope();
        let scope_text = scope_labels.then(|| {
            let mut text = String::new();
            push_label(&mut text, "otel_scope_name", scope.name());
            push_label(&mut text, "otel_scope_version", scope.version().unwrap_or(""));
            text
        });
        for metric in scope_metrics.metrics() {
            let family = SdkFamily {
                name: metric.name(),
                unit: metric.unit(),
                help: metric.description(),
                format,
                scope: scope_text.as_deref(),
            };
            match metric.data() {
                AggregatedMetrics::F64(MetricData::Histogram(h)) => family.histogram(h.data_points(), out),
                AggregatedMetrics::U64(MetricData::Histogram(h)) => family.histogram(h.data_points(), out),
                AggregatedMetrics::I64(MetricData::Histogram(h)) => family.histogram(h.data_points(), out),
                AggregatedMetrics::U64(MetricData::Sum(s)) => family.sum(
                    s.is_monotonic(),
                    s.data_points()
                        .map(|p| (labels_of(p.attributes()), Sample::U(p.value()))),
                    out,
                ),
                AggregatedMetrics::I64(MetricData::Sum(s)) => family.sum(
                    s.is_monotonic(),
                    s.data_points()
                        .map(|p| (labels_of(p.attributes()), Sample::I(p.value()))),
                    out,
                ),
                AggregatedMetrics::F64(MetricData::Sum(s)) => family.sum(
                    s.is_monotonic(),
                    s.data_points()
                        .map(|p| (labels_of(p.attributes()), Sample::F(p.value()))),
                    out,
                ),
                AggregatedMetrics::U64(MetricData::Gauge(g)) => family.sum(
                    false,
                    g.data_points()
                        .map(|p| (labels_of(p.attributes()), Sample::U(p.value()))),
                    out,
                ),
                AggregatedMetrics::I64(MetricData::Gauge(g)) => family.sum(
                    false,
                    g.data_points()
                        .map(|p| (labels_of(p.attributes()), Sample::I(p.value()))),
                    out,
                ),
                AggregatedMetrics::F64(MetricData::Gauge(g)) => family.sum(
                    false,
                    g.data_points()
                        .map(|p| (labels_of(p.attributes()), Sample::F(p.value()))),
                    out,
                ),
                // Exponential histograms have no Prometheus text form; skipped
                // (documented), as the OpenTelemetry Prometheus exporter does.
                _ => {}
            }
        }
    }
}

/// Histogram sums of any SDK number type, as a float.
trait ToF64 {
    fn to_f64(self) -> f64;
}

impl ToF64 for f64 {
    fn to_f64(self) -> f64 {
        self
    }
}

impl ToF64 for u64 {
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl ToF64 for i64 {
    fn to_f64(self) -> f64 {
        self as f64
    }
}

struct SdkFamily<'a> {
    name: &'a str,
    unit: &'a str,
    help: &'a str,
    format: Format,
    scope: Option<&'a str>,
}

impl SdkFamily<'_> {
    fn header(&self, sample: &str, kind: &str, out: &mut Vec<u8>) {
        let family = match kind {
            "counter" => sample.strip_suffix("_total").unwrap_or(sample),
            _ => sample,
        };
        let mut text = String::new();
        match self.format {
            Format::Text => {
                let _ = writeln!(text, "# HELP {sample} {}", escape_help(self.help, self.format));
                let _ = writeln!(text, "# TYPE {sample} {kind}");
            }
            Format::OpenMetrics => {
                let _ = writeln!(text, "# TYPE {family} {kind}");
                let _ = writeln!(text, "# HELP {family} {}", escape_help(self.help, self.format));
                let probe = prometheus_metric_name("x", self.unit, false);
                if let Some(word) = probe.strip_prefix("x_") {
                    if family.ends_with(&format!("_{word}")) {
                        let _ = writeln!(text, "# UNIT {family} {word}");
                    }
                }
            }
        }
        out.extend_from_slice(text.as_bytes());
    }

    fn sum(&self, monotonic: bool, points: impl Iterator<Item = (String, Sample)>, out: &mut Vec<u8>) {
        let sample = prometheus_metric_name(self.name, self.unit, monotonic);
        let mut first = true;
        for (labels, value) in points {
            if std::mem::take(&mut first) {
                self.header(&sample, if monotonic { "counter" } else { "gauge" }, out);
            }
            out.extend_from_slice(sample.as_bytes());
            write_labels(out, &labels, self.scope);
            out.push(b' ');
            value.write(out);
            out.push(b'\n');
        }
    }

    fn histogram<'p, T: Copy + ToF64 + 'p>(
        &self,
        points: impl Iterator<Item = &'p HistogramDataPoint<T>>,
        out: &mut Vec<u8>,
    ) {
        let name = prometheus_metric_name(self.name, self.unit, false);
        // `le="…"` per bucket, rendered once per instrument (every point of an
        // instrument has the same boundaries), then copied into each line.
        let mut le: Vec<Box<[u8]>> = Vec::new();
        let mut labels = String::new();
        for point in points {
            if le.is_empty() {
                self.header(&name, "histogram", out);
                let bounds: Vec<f64> = point.bounds().collect();
                le = le_labels(&bounds, self.format).into_vec();
                if le.is_empty() {
                    le.push(b"le=\"+Inf\"".to_vec().into_boxed_slice());
                }
            }
            labels.clear();
            labels_into(&mut labels, point.attributes());
            let mut cumulative = 0u64;
            for (count, le) in point.bucket_counts().zip(&le) {
                cumulative += count;
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"_bucket{");
                if !labels.is_empty() {
                    out.extend_from_slice(labels.as_bytes());
                    out.push(b',');
                }
                out.extend_from_slice(le);
                if let Some(scope) = self.scope {
                    out.push(b',');
                    out.extend_from_slice(scope.as_bytes());
                }
                out.extend_from_slice(b"} ");
                Sample::U(cumulative).write(out);
                out.push(b'\n');
            }
            for (suffix, value) in [
                ("_sum", Sample::F(point.sum().to_f64())),
                ("_count", Sample::U(point.count())),
            ] {
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(suffix.as_bytes());
                write_labels(out, &labels, self.scope);
                out.push(b' ');
                value.write(out);
                out.push(b'\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_honours_quality() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
            )),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0")),
            Format::Text
        );
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
    }

    #[test]
    fn label_values_are_escaped() {
        let mut text = String::new();
        push_label(&mut text, "a", "x\\y\"z\nw");
        assert_eq!(text, r#"a="x\\y\"z\nw""#);
    }
}
