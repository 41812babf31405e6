//! outcometer's histogram cells in OTLP: the SDK never sees them (they are not
//! SDK instruments; `OtelBackend::histograms_in_cells`), so each export appends
//! them to the request the SDK collection produced, with their exemplars.
//!
//! Cumulative temporality sends the cells as they are, from the pipeline's start.
//! Delta (and low-memory, where histograms are delta) sends the difference from
//! the previous export, kept here: one count per bucket and one sum per series of
//! memory, allocated at the first export.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric, AggregationTemporality, Exemplar, Histogram, HistogramDataPoint, Metric, ScopeMetrics,
};
use outcometer::otel::SCOPE_NAME;
use outcometer::toolkit::{AnyInstrument, AttrValue, HistogramCells, Registry};

/// The previous export's counts and sums of one histogram (delta temporality).
#[derive(Default)]
struct Previous {
    counts: Vec<u64>,
    sums: Vec<f64>,
}

/// Appends a registry's histogram cells to OTLP requests.
pub(crate) struct CellHistograms {
    registry: Arc<Registry>,
    delta: bool,
    started: u64,
    /// Delta: per instrument name, what was sent last, and when.
    previous: Mutex<(u64, HashMap<String, Previous>)>,
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl CellHistograms {
    pub(crate) fn new(registry: Arc<Registry>, delta: bool) -> Self {
        let started = now_nanos();
        CellHistograms {
            registry,
            delta,
            started,
            previous: Mutex::new((started, HashMap::new())),
        }
    }

    /// Adds every histogram kept in cells to `request`'s outcometer scope.
    pub(crate) fn append(&self, request: &mut ExportMetricsServiceRequest) {
        let now = now_nanos();
        let mut previous = self.previous.lock().unwrap_or_else(PoisonError::into_inner);
        let (since, by_name) = &mut *previous;
        let start = if self.delta { *since } else { self.started };
        let mut metrics = Vec::new();
        for instrument in self.registry.instruments() {
            let AnyInstrument::Histogram(histogram) = instrument else {
                continue;
            };
            let Some(cells) = histogram.cells() else {
                continue;
            };
            let last = self
                .delta
                .then(|| by_name.entry(cells.def().name().to_owned()).or_default());
            let points = data_points(cells, last, start, now);
            if points.is_empty() {
                continue;
            }
            let spec = cells.def().spec();
            metrics.push(Metric {
                name: cells.def().name().to_owned(),
                description: spec.description().to_owned(),
                unit: spec.unit().to_owned(),
                data: Some(metric::Data::Histogram(Histogram {
                    data_points: points,
                    aggregation_temporality: if self.delta {
                        AggregationTemporality::Delta
                    } else {
                        AggregationTemporality::Cumulative
                    } as i32,
                })),
                ..Metric::default()
            });
        }
        *since = now;
        drop(previous);
        if metrics.is_empty() {
            return;
        }
        if request.resource_metrics.is_empty() {
            request.resource_metrics.push(Default::default());
        }
        let scopes = &mut request.resource_metrics[0].scope_metrics;
        let ours = scopes
            .iter()
            .position(|s| s.scope.as_ref().is_some_and(|scope| scope.name == SCOPE_NAME));
        let index = ours.unwrap_or_else(|| {
            scopes.push(ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: SCOPE_NAME.to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..InstrumentationScope::default()
                }),
                ..ScopeMetrics::default()
            });
            scopes.len() - 1
        });
        scopes[index].metrics.extend(metrics);
    }
}

/// The points of one histogram: recorded series (cumulative), or series that
/// changed since `last` (delta, which `last` is then advanced to).
fn data_points(
    cells: &HistogramCells,
    mut last: Option<&mut Previous>,
    start: u64,
    now: u64,
) -> Vec<HistogramDataPoint> {
    let buckets = cells.bounds().len() + 1;
    let series_bound = cells.def().series_bound();
    if let Some(last) = last.as_deref_mut() {
        if last.counts.len() != series_bound * buckets {
            last.counts = vec![0; series_bound * buckets];
            last.sums = vec![0.0; series_bound];
        }
    }
    let mut points = Vec::new();
    for series in cells.recorded_series() {
        let mut counts: Vec<u64> = cells.bucket_counts(series).collect();
        let mut sum = cells.sum(series);
        if let Some(last) = last.as_deref_mut() {
            let sent = &mut last.counts[series * buckets..(series + 1) * buckets];
            let mut changed = false;
            for (count, sent) in counts.iter_mut().zip(sent.iter_mut()) {
                let total = *count;
                *count = total.saturating_sub(*sent);
                changed |= *count > 0;
                *sent = total;
            }
            let total_sum = sum;
            sum -= last.sums[series];
            last.sums[series] = total_sum;
            if !changed {
                continue;
            }
        }
        let exemplars = (0..buckets)
            .filter_map(|bucket| cells.exemplar(series, bucket))
            .filter(|e| e.time_unix_nano >= start || last.is_none())
            .map(|e| Exemplar {
                time_unix_nano: e.time_unix_nano,
                value: Some(exemplar::Value::AsDouble(e.value)),
                span_id: e.ids.span_id.to_vec(),
                trace_id: e.ids.trace_id.to_vec(),
                ..Exemplar::default()
            })
            .collect();
        points.push(HistogramDataPoint {
            attributes: cells
                .def()
                .attributes(series)
                .into_iter()
                .map(|a| KeyValue {
                    key: a.key.to_owned(),
                    value: Some(AnyValue {
                        value: Some(match a.value {
                            AttrValue::Int(i) => any_value::Value::IntValue(i),
                            other => any_value::Value::StringValue(other.to_text()),
                        }),
                    }),
                    ..KeyValue::default()
                })
                .collect(),
            start_time_unix_nano: start,
            time_unix_nano: now,
            count: counts.iter().sum(),
            sum: Some(sum),
            bucket_counts: counts,
            explicit_bounds: cells.bounds().to_vec(),
            exemplars,
            ..HistogramDataPoint::default()
        });
    }
    points
}
