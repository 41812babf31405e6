//! outcometer's instruments in OTLP, straight from the cells.
//!
//! The pipeline's backend is cells-only (`OtelBackend::cells_only`): the SDK holds
//! none of outcometer's instruments, so its collection carries only the
//! application's. Each export appends the registry's instruments to the request the
//! SDK collection produced, under the `outcometer` scope: counters and up-down
//! counters as sums, gauges, and histograms with their exemplars. That skips the
//! SDK's per-collection rebuild of every observable series (ADR 0006) and carries
//! exemplars the SDK cannot (ADR 0007).
//!
//! Temporality follows the preference as the OpenTelemetry specification maps it
//! for synchronous instruments: counters and histograms are delta under `delta`
//! and `lowmemory`, up-down counters always cumulative, gauges have none. Delta is
//! the difference from the previous export, kept here per series (a count per
//! bucket, a sum, a value), allocated at the first export of each instrument.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric, number_data_point, AggregationTemporality, Exemplar, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ScopeMetrics, Sum,
};
use outcometer::otel::SCOPE_NAME;
use outcometer::toolkit::{AnyInstrument, AttrValue, HistogramCells, InstrumentDef, Registry};

use crate::config::TemporalityPreference;

/// What one instrument needs between exports.
struct InstrumentState {
    /// Attribute lists per series, built the first time the series is sent with
    /// every dimension's value known.
    attributes: Box<[OnceLock<Vec<KeyValue>>]>,
    /// Delta: per series (per bucket for histograms), what has been sent so far.
    sent: Vec<u64>,
    sent_sums: Vec<f64>,
    /// Up-down counters: series that have been non-zero (reported from then on).
    touched: Vec<bool>,
}

impl InstrumentState {
    fn new(def: &InstrumentDef) -> Self {
        InstrumentState {
            attributes: (0..def.series_bound()).map(|_| OnceLock::new()).collect(),
            sent: Vec::new(),
            sent_sums: Vec::new(),
            touched: Vec::new(),
        }
    }

    fn attributes(&self, def: &InstrumentDef, series: usize) -> Option<Vec<KeyValue>> {
        let slot = self.attributes.get(series)?;
        if let Some(cached) = slot.get() {
            return Some(cached.clone());
        }
        let attributes = def.attributes(series);
        if attributes.len() < def.dimensions().len() {
            // An admission slot whose name is being written: send next time.
            return None;
        }
        let list: Vec<KeyValue> = attributes
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
            .collect();
        Some(slot.get_or_init(|| list).clone())
    }

    /// What `value` at `index` adds to what was sent; [`Self::commit`] it once sent.
    fn unsent(&mut self, index: usize, value: u64, len: usize) -> u64 {
        if self.sent.len() != len {
            self.sent = vec![0; len];
        }
        value.saturating_sub(self.sent[index])
    }

    fn commit(&mut self, index: usize, value: u64) {
        self.sent[index] = value;
    }
}

/// Appends a registry's cells to OTLP requests.
pub(crate) struct CellMetrics {
    registry: Arc<Registry>,
    delta: bool,
    started: u64,
    /// The previous export's time, and per instrument name its state.
    state: Mutex<(u64, HashMap<String, InstrumentState>)>,
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// When and how the points of one export are stamped.
#[derive(Clone, Copy)]
struct Stamp {
    /// Start of cumulative points: the pipeline's start.
    started: u64,
    /// Start of delta points: the previous export.
    since: u64,
    now: u64,
    delta: bool,
}

impl Stamp {
    fn start(&self) -> u64 {
        if self.delta {
            self.since
        } else {
            self.started
        }
    }

    fn temporality(&self) -> i32 {
        if self.delta {
            AggregationTemporality::Delta as i32
        } else {
            AggregationTemporality::Cumulative as i32
        }
    }
}

impl CellMetrics {
    pub(crate) fn new(registry: Arc<Registry>, temporality: TemporalityPreference) -> Self {
        let started = now_nanos();
        CellMetrics {
            registry,
            delta: temporality != TemporalityPreference::Cumulative,
            started,
            state: Mutex::new((started, HashMap::new())),
        }
    }

    /// Adds every instrument of the registry to `request`'s outcometer scope.
    pub(crate) fn append(&self, request: &mut ExportMetricsServiceRequest) {
        let now = now_nanos();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (since, by_name) = &mut *state;
        let stamp = Stamp {
            started: self.started,
            since: *since,
            now,
            delta: self.delta,
        };
        let mut metrics = Vec::new();
        for instrument in self.registry.instruments() {
            let def = instrument.def().clone();
            let state = by_name
                .entry(def.name().to_owned())
                .or_insert_with(|| InstrumentState::new(&def));
            if let Some(data) = data(&instrument, state, stamp) {
                metrics.push(Metric {
                    name: def.name().to_owned(),
                    description: def.spec().description().to_owned(),
                    unit: def.spec().unit().to_owned(),
                    data: Some(data),
                    ..Metric::default()
                });
            }
        }
        *since = now;
        drop(state);
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

fn number_point(
    attributes: Vec<KeyValue>,
    start: u64,
    now: u64,
    value: number_data_point::Value,
) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        start_time_unix_nano: start,
        time_unix_nano: now,
        value: Some(value),
        ..NumberDataPoint::default()
    }
}

/// The data of one instrument in this export; `None` when it has no point.
fn data(instrument: &AnyInstrument, state: &mut InstrumentState, stamp: Stamp) -> Option<metric::Data> {
    use number_data_point::Value;
    let def = instrument.def();
    let bound = def.series_bound();
    let data = match instrument {
        AnyInstrument::Counter(counter) => {
            let mut points = Vec::new();
            for (series, total) in counter.values() {
                let value = if stamp.delta {
                    state.unsent(series, total, bound)
                } else {
                    total
                };
                if value == 0 {
                    continue;
                }
                // Without its attributes (a name still being admitted) the series
                // waits for the next export, its delta kept.
                let Some(attributes) = state.attributes(def, series) else {
                    continue;
                };
                if stamp.delta {
                    state.commit(series, total);
                }
                points.push(number_point(
                    attributes,
                    stamp.start(),
                    stamp.now,
                    Value::AsInt(value as i64),
                ));
            }
            (!points.is_empty()).then(|| {
                metric::Data::Sum(Sum {
                    data_points: points,
                    aggregation_temporality: stamp.temporality(),
                    is_monotonic: true,
                })
            })
        }
        AnyInstrument::UpDownCounter(counter) => {
            if state.touched.len() != bound {
                state.touched = vec![false; bound];
            }
            // A series that went up and back to zero is still reported: zero is
            // a real value (no active tasks), unlike a counter that never moved.
            let always = def.dimensions().is_empty();
            let mut points = Vec::new();
            for (series, value) in counter.values() {
                state.touched[series] |= value != 0;
                if always || state.touched[series] {
                    if let Some(attributes) = state.attributes(def, series) {
                        points.push(number_point(
                            attributes,
                            stamp.started,
                            stamp.now,
                            Value::AsInt(value),
                        ));
                    }
                }
            }
            (!points.is_empty()).then_some(metric::Data::Sum(Sum {
                data_points: points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: false,
            }))
        }
        AnyInstrument::Gauge(gauge) => {
            let points: Vec<_> = gauge
                .values()
                .filter_map(|(series, value)| {
                    let attributes = state.attributes(def, series)?;
                    Some(number_point(attributes, 0, stamp.now, Value::AsInt(value)))
                })
                .collect();
            (!points.is_empty()).then_some(metric::Data::Gauge(Gauge { data_points: points }))
        }
        AnyInstrument::FloatGauge(gauge) => {
            let points: Vec<_> = gauge
                .collect()
                .filter_map(|(series, value)| {
                    let attributes = state.attributes(def, series)?;
                    Some(number_point(attributes, 0, stamp.now, Value::AsDouble(value)))
                })
                .collect();
            (!points.is_empty()).then_some(metric::Data::Gauge(Gauge { data_points: points }))
        }
        AnyInstrument::Histogram(histogram) => {
            // A histogram the SDK keeps is in the SDK's part of the request.
            let cells = histogram.cells()?;
            let points = histogram_points(cells, state, stamp);
            (!points.is_empty()).then(|| {
                metric::Data::Histogram(Histogram {
                    data_points: points,
                    aggregation_temporality: stamp.temporality(),
                })
            })
        }
        _ => None,
    };
    data
}

/// The points of one histogram: recorded series (cumulative), or the series that
/// changed since the previous export (delta), with the exemplars of the interval.
fn histogram_points(
    cells: &HistogramCells,
    state: &mut InstrumentState,
    stamp: Stamp,
) -> Vec<HistogramDataPoint> {
    let def = cells.def();
    let buckets = cells.bounds().len() + 1;
    let slots = def.series_bound() * buckets;
    if stamp.delta && state.sent_sums.len() != def.series_bound() {
        state.sent_sums = vec![0.0; def.series_bound()];
    }
    let mut points = Vec::new();
    for series in cells.recorded_series() {
        let Some(attributes) = state.attributes(def, series) else {
            continue;
        };
        let totals: Vec<u64> = cells.bucket_counts(series).collect();
        let total_sum = cells.sum(series);
        let mut counts = totals.clone();
        let mut sum = total_sum;
        if stamp.delta {
            for (bucket, count) in counts.iter_mut().enumerate() {
                *count = state.unsent(series * buckets + bucket, *count, slots);
            }
            if counts.iter().all(|&c| c == 0) {
                // Nothing new; what was read (a sum may run a record ahead of
                // its count) is sent with the next change.
                continue;
            }
            for (bucket, total) in totals.iter().enumerate() {
                state.commit(series * buckets + bucket, *total);
            }
            sum -= state.sent_sums[series];
            state.sent_sums[series] = total_sum;
        }
        let exemplars = (0..buckets)
            .filter_map(|bucket| cells.exemplar(series, bucket))
            // Delta: the interval's own (one recorded after `now` goes next time).
            .filter(|e| !stamp.delta || (stamp.since..stamp.now).contains(&e.time_unix_nano))
            .map(|e| Exemplar {
                time_unix_nano: e.time_unix_nano,
                value: Some(exemplar::Value::AsDouble(e.value)),
                span_id: e.ids.span_id.to_vec(),
                trace_id: e.ids.trace_id.to_vec(),
                ..Exemplar::default()
            })
            .collect();
        points.push(HistogramDataPoint {
            attributes,
            start_time_unix_nano: stamp.start(),
            time_unix_nano: stamp.now,
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
