//! Flattens what the OpenTelemetry SDK exported into rows tests can compare exactly.

use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Sum {
        value: f64,
        monotonic: bool,
    },
    Gauge(f64),
    Histogram {
        count: u64,
        sum: f64,
        bounds: Vec<f64>,
        buckets: Vec<u64>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub unit: String,
    /// `key=value` pairs, sorted.
    pub attributes: Vec<String>,
    pub value: Value,
}

/// A provider built the way a user would, with nothing of ours in it.
pub fn user_provider() -> (SdkMeterProvider, InMemoryMetricExporter) {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    (provider, exporter)
}

/// Flushes and returns the rows of the latest export.
pub fn collect(provider: &SdkMeterProvider, exporter: &InMemoryMetricExporter) -> Vec<Row> {
    exporter.reset();
    provider.force_flush().expect("flush");
    let exported = exporter.get_finished_metrics().expect("metrics");
    rows(exported.last().expect("one export"))
}

/// One row per data point of a u64 or i64 sum.
macro_rules! push_sums {
    ($sum:ident, $push:ident, $kv:ident) => {
        for p in $sum.data_points() {
            $push(
                $kv(&mut p.attributes()),
                Value::Sum {
                    value: p.value() as f64,
                    monotonic: $sum.is_monotonic(),
                },
            );
        }
    };
}

pub fn rows(resource_metrics: &ResourceMetrics) -> Vec<Row> {
    let mut out = Vec::new();
    for scope in resource_metrics.scope_metrics() {
        for metric in scope.metrics() {
            let name = metric.name().to_owned();
            let unit = metric.unit().to_owned();
            let mut push = |attrs: Vec<String>, value: Value| {
                let mut attributes = attrs;
                attributes.sort();
                out.push(Row {
                    name: name.clone(),
                    unit: unit.clone(),
                    attributes,
                    value,
                });
            };
            let kv = |it: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| {
                it.map(|kv| format!("{}={}", kv.key, kv.value))
                    .collect::<Vec<_>>()
            };
            match metric.data() {
                AggregatedMetrics::U64(MetricData::Sum(sum)) => push_sums!(sum, push, kv),
                AggregatedMetrics::I64(MetricData::Sum(sum)) => push_sums!(sum, push, kv),
                AggregatedMetrics::I64(MetricData::Gauge(g)) => {
                    for p in g.data_points() {
                        push(kv(&mut p.attributes()), Value::Gauge(p.value() as f64));
                    }
                }
                AggregatedMetrics::F64(MetricData::Gauge(g)) => {
                    for p in g.data_points() {
                        push(kv(&mut p.attributes()), Value::Gauge(p.value()));
                    }
                }
                AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                    for p in h.data_points() {
                        push(
                            kv(&mut p.attributes()),
                            Value::Histogram {
                                count: p.count(),
                                sum: p.sum(),
                                bounds: p.bounds().collect(),
                                buckets: p.bucket_counts().collect(),
                            },
                        );
                    }
                }
                other => panic!("unexpected aggregation for {name}: {other:?}"),
            }
        }
    }
    out.sort_by(|a, b| (&a.name, &a.attributes).cmp(&(&b.name, &b.attributes)));
    out
}

pub fn find<'a>(rows: &'a [Row], name: &str, attributes: &[&str]) -> Option<&'a Row> {
    let mut want: Vec<String> = attributes.iter().map(|s| s.to_string()).collect();
    want.sort();
    rows.iter().find(|r| r.name == name && r.attributes == want)
}

pub fn sum(rows: &[Row], name: &str, attributes: &[&str]) -> Option<f64> {
    match &find(rows, name, attributes)?.value {
        Value::Sum { value, .. } | Value::Gauge(value) => Some(*value),
        Value::Histogram { .. } => None,
    }
}
