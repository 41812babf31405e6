//! What the demos share: their command-line plumbing, how they pick exporters, and
//! how they count exported series against declared bounds.

use outcometer::catalog;
use outcometer::toolkit::{Backend as _, InstrumentKind};
use outcometer_exporter::{ExporterKind, Telemetry};

/// A command line a demo cannot run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ArgsError {
    /// An unknown flag or a stray word.
    #[error("unknown argument {0:?}")]
    Unknown(String),
    /// A flag without its value.
    #[error("{0} needs a value")]
    MissingValue(String),
    /// A value out of range or not a number.
    #[error("{flag} {value:?}: expected {expected}")]
    BadValue {
        /// The flag.
        flag: String,
        /// What was given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
}

/// The outcome of parsing: run with `A`, or print help.
#[derive(Debug, PartialEq)]
pub enum Command<A> {
    /// Run with these arguments.
    Run(A),
    /// `-h` / `--help`.
    Help,
}

/// `value` of `flag` as a number in `low..=high`.
pub(crate) fn number<T: std::str::FromStr + PartialOrd>(
    flag: &str,
    value: &str,
    low: T,
    high: T,
    expected: &'static str,
) -> Result<T, ArgsError> {
    match value.parse::<T>() {
        Ok(n) if n >= low && n <= high => Ok(n),
        _ => Err(ArgsError::BadValue {
            flag: flag.to_owned(),
            value: value.to_owned(),
            expected,
        }),
    }
}

/// One instrument's exported series against its declared bound.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesCount {
    /// Prometheus metric name.
    pub name: String,
    /// Series in the current scrape.
    pub exported: usize,
    /// The instrument's worst case.
    pub bound: usize,
}

/// What an unset `OTEL_METRICS_EXPORTER` means for a demo: push OTLP when an
/// endpoint variable names a collector, otherwise nothing (Prometheus is always
/// added). `OTEL_METRICS_EXPORTER=none` still means no push.
fn default_push(env: &impl Fn(&str) -> Option<String>) -> Vec<ExporterKind> {
    let endpoint = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    ]
    .iter()
    .any(|name| env(name).is_some_and(|v| !v.trim().is_empty()));
    if endpoint {
        vec![ExporterKind::Otlp]
    } else {
        Vec::new()
    }
}

/// Exported series per instrument, read from the Prometheus endpoint's body,
/// against each instrument's declared bound.
pub fn series_counts(telemetry: &Telemetry) -> Vec<SeriesCount> {
    let body = telemetry.metrics_service().render();
    let backend = telemetry.backend();
    let instruments = backend.registry().map(|r| r.instruments()).unwrap_or_default();
    instruments
        .iter()
        .map(|instrument| {
            let def = instrument.def();
            let name = catalog::prometheus_name(def);
            let series_name = match def.spec().kind() {
                InstrumentKind::Histogram => format!("{name}_count"),
                _ => name.clone(),
            };
            let exported = body
                .lines()
                .filter(|line| {
                    line.strip_prefix(&series_name)
                        .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                })
                .count();
            SeriesCount {
                name,
                exported,
                bound: def.series_bound(),
            }
        })
        .collect()
}

/// A demo's pipeline from the `OTEL_*` variables `env` returns: instruments under
/// `namespace`, the Prometheus endpoint always, OTLP when an endpoint variable
/// names a collector (see [`default_push`]), and `service_name` unless
/// `OTEL_SERVICE_NAME` sets one.
pub(crate) fn telemetry(
    namespace: &str,
    service_name: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Telemetry, outcometer_exporter::SetupError> {
    let mut builder = Telemetry::builder()
        .namespace(namespace)
        .add_exporter(ExporterKind::Prometheus)
        .default_exporters(default_push(&env));
    if env("OTEL_SERVICE_NAME").is_none() {
        builder = builder.service_name(service_name);
    }
    builder.build_with_env(&env)
}
