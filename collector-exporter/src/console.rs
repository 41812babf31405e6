//! `OTEL_METRICS_EXPORTER=console`: one line per data point on stdout, for debugging.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use outcometer::toolkit::{AnyInstrument, Registry};

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;

/// Prints every export, and outcometer's instruments from their cells (the SDK
/// does not hold those).
#[derive(Debug)]
pub(crate) struct ConsoleExporter {
    registry: Arc<Registry>,
}

impl ConsoleExporter {
    pub(crate) fn new(registry: Arc<Registry>) -> Self {
        ConsoleExporter { registry }
    }
}

fn point_line<'a>(
    out: &mut String,
    name: &str,
    attrs: impl Iterator<Item = &'a opentelemetry::KeyValue>,
    value: String,
) {
    let attrs: Vec<String> = attrs.map(|kv| format!("{}={}", kv.key, kv.value)).collect();
    let _ = writeln!(out, "{name}{{{}}} {value}", attrs.join(","));
}

macro_rules! sums_and_gauges {
    ($out:ident, $name:ident, $data:expr) => {
        match $data {
            MetricData::Sum(s) => s
                .data_points()
                .for_each(|p| point_line(&mut $out, $name, p.attributes(), p.value().to_string())),
            MetricData::Gauge(g) => g
                .data_points()
                .for_each(|p| point_line(&mut $out, $name, p.attributes(), p.value().to_string())),
            MetricData::Histogram(h) => h.data_points().for_each(|p| {
                point_line(
                    &mut $out,
                    $name,
                    p.attributes(),
                    format!("count={} sum={}", p.count(), p.sum()),
                )
            }),
            MetricData::ExponentialHistogram(_) => {}
        }
    };
}

/// One line per reported series of a cell instrument (the SDK holds none of them).
fn cell_lines(out: &mut String, instrument: &AnyInstrument) {
    let def = instrument.def();
    let mut line = |series: usize, value: String| {
        let attrs: Vec<String> = def
            .attributes(series)
            .into_iter()
            .map(|a| format!("{}={}", a.key, a.value.to_text()))
            .collect();
        let _ = writeln!(out, "{}{{{}}} {value}", def.name(), attrs.join(","));
    };
    match instrument {
        AnyInstrument::Counter(c) => c
            .values()
            .filter(|(_, v)| *v != 0)
            .for_each(|(s, v)| line(s, v.to_string())),
        AnyInstrument::UpDownCounter(c) => c
            .values()
            .filter(|(_, v)| *v != 0)
            .for_each(|(s, v)| line(s, v.to_string())),
        AnyInstrument::Gauge(g) => g.values().for_each(|(s, v)| line(s, v.to_string())),
        AnyInstrument::FloatGauge(g) => g.collect().for_each(|(s, v)| line(s, v.to_string())),
        AnyInstrument::Histogram(h) => {
            if let Some(cells) = h.cells() {
                for series in cells.recorded_series() {
                    line(
                        series,
                        format!("count={} sum={}", cells.count(series), cells.sum(series)),
                    );
                }
            }
        }
        _ => {}
    }
}

impl PushMetricExporter for ConsoleExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let mut out = String::new();
        for scope in metrics.scope_metrics() {
            for metric in scope.metrics() {
                let name = metric.name();
                match metric.data() {
                    AggregatedMetrics::F64(d) => sums_and_gauges!(out, name, d),
                    AggregatedMetrics::U64(d) => sums_and_gauges!(out, name, d),
                    AggregatedMetrics::I64(d) => sums_and_gauges!(out, name, d),
                }
            }
        }
        for instrument in self.registry.instruments() {
            cell_lines(&mut out, &instrument);
        }
        print!("{out}");
        Ok(())
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}
