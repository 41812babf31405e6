//! What the demos share: their command-line plumbing, how they pick exporters, and
//! how they count exported series against declared bounds.

use outcometer::catalog;
use outcometer::toolkit::{Backend as _, InstrumentKind};
use outcometer_exporter::{ExporterKind, Telemetry, TracesExporter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::Layer as _;

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

/// Whether one of `names` names a collector.
fn names_a_collector(env: &impl Fn(&str) -> Option<String>, names: &[&str]) -> bool {
    names
        .iter()
        .any(|name| env(name).is_some_and(|v| !v.trim().is_empty()))
}

/// What an unset `OTEL_METRICS_EXPORTER` means for a demo: push OTLP when an
/// endpoint variable names a collector, otherwise nothing (Prometheus is always
/// added). `OTEL_METRICS_EXPORTER=none` still means no push.
fn default_push(env: &impl Fn(&str) -> Option<String>) -> Vec<ExporterKind> {
    if names_a_collector(
        env,
        &[
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        ],
    ) {
        vec![ExporterKind::Otlp]
    } else {
        Vec::new()
    }
}

/// What an unset `OTEL_TRACES_EXPORTER` means for a demo: as for metrics, push
/// OTLP only when an endpoint variable names a collector, so the quick start
/// (no collector) does not warn about spans it cannot send.
fn default_traces(env: &impl Fn(&str) -> Option<String>) -> TracesExporter {
    if names_a_collector(
        env,
        &[
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ],
    ) {
        TracesExporter::Otlp
    } else {
        TracesExporter::None
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
/// `namespace`, the Prometheus endpoint always, OTLP metrics and spans when an
/// endpoint variable names a collector (see [`default_push`]; `OTEL_TRACES_EXPORTER`
/// still decides for spans), and `service_name` unless `OTEL_SERVICE_NAME` sets
/// one. Also the demo's `tracing` subscriber: the pipeline's layer, for the SDK's
/// own events (`outcometer::…`, debug) and the demo's spans (`demo_target`, info).
/// It is installed as the process's default when none is yet, and is what
/// [`on_thread_start`] gives the demo's runtime threads, so that two demos in one
/// process (the end-to-end tests) each trace to their own pipeline.
pub(crate) fn telemetry(
    namespace: &str,
    service_name: &str,
    demo_target: &'static str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(Telemetry, tracing::Dispatch), outcometer_exporter::SetupError> {
    let mut builder = Telemetry::builder()
        .namespace(namespace)
        .add_exporter(ExporterKind::Prometheus)
        .default_exporters(default_push(&env))
        .default_traces_exporter(default_traces(&env));
    if env("OTEL_SERVICE_NAME").is_none() {
        builder = builder.service_name(service_name);
    }
    let telemetry = builder.build_with_env(&env)?;
    // Plain prefixes, no regex: the longest matching target decides.
    let targets = tracing_subscriber::filter::Targets::new()
        .with_target("outcometer", tracing::Level::DEBUG)
        .with_target("outcometer_examples", tracing::Level::WARN)
        .with_target(demo_target, tracing::Level::INFO);
    let subscriber = tracing_subscriber::registry().with(telemetry.tracing_layer().with_filter(targets));
    let dispatch = tracing::Dispatch::new(subscriber);
    // Already set (a second demo in this process): its runtime threads still get ours.
    let _ = tracing::dispatcher::set_global_default(dispatch.clone());
    Ok((telemetry, dispatch))
}

/// For `tokio::runtime::Builder::on_thread_start`: makes `dispatch` the default
/// subscriber of each runtime thread, for the thread's life.
pub(crate) fn on_thread_start(dispatch: tracing::Dispatch) -> impl Fn() + Send + Sync + 'static {
    move || std::mem::forget(tracing::dispatcher::set_default(&dispatch))
}
