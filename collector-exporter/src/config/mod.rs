//! Configuration: a builder, the standard `OTEL_*` environment variables, and the
//! declarative configuration file (`OTEL_CONFIG_FILE`).
//!
//! Precedence, for every setting: **code > signal-specific variable
//! (`OTEL_EXPORTER_OTLP_METRICS_*`) > generic variable (`OTEL_EXPORTER_OTLP_*`) >
//! default**. When a configuration file is named (`OTEL_CONFIG_FILE` or
//! [`TelemetryBuilder::config_file`]) it replaces every other `OTEL_*` variable:
//! code > file > default.
//!
//! Mistakes are treated as the specification asks: a value **from the
//! environment** that cannot be used is warned about once (naming the variable,
//! the value and what is used instead) and ignored, so telemetry never stops an
//! application; a value **given in code or in the file** is a [`SetupError`] that
//! names the setting and what it accepts. Header values are never shown.
//! Resolution is a pure function of the builder and an environment lookup (plus
//! the file, when one is named), so it is tested with maps instead of the process
//! environment. The table of every variable is in `docs/configuration.md`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::SetupError;

mod env;
#[cfg(feature = "config-file")]
mod file;

use env::EnvReader;

/// Where metrics go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExporterKind {
    /// OTLP push.
    Otlp,
    /// Prometheus pull endpoint.
    Prometheus,
    /// Print each export to stdout (for debugging).
    Console,
}

/// OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// gRPC (`grpc`), default port 4317.
    Grpc,
    /// HTTP with protobuf bodies (`http/protobuf`), default port 4318.
    HttpProtobuf,
}

/// OTLP temporality preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemporalityPreference {
    /// Totals since start (Prometheus-friendly; the default). A failed export
    /// loses nothing: the next one carries the totals.
    Cumulative,
    /// Differences since the last export, for counters and histograms. A failed
    /// export loses its interval's counts.
    Delta,
    /// Delta for synchronous counters and histograms, cumulative otherwise.
    LowMemory,
}

/// Where spans go (`OTEL_TRACES_EXPORTER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TracesExporter {
    /// OTLP push, over the transport and settings metrics use (the default).
    Otlp,
    /// One line per span on stdout (for debugging).
    Console,
    /// No tracer provider: [`crate::Telemetry::tracing_layer`] is a layer that does nothing.
    None,
}

/// Which traces are recorded (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TraceSampler {
    /// Every trace.
    AlwaysOn,
    /// No trace.
    AlwaysOff,
    /// This fraction of traces, by trace id (0.0 to 1.0).
    TraceIdRatio(f64),
    /// The parent's decision; root spans always (the default).
    ParentBasedAlwaysOn,
    /// The parent's decision; root spans never.
    ParentBasedAlwaysOff,
    /// The parent's decision; this fraction of root spans, by trace id.
    ParentBasedTraceIdRatio(f64),
}

/// How spans are batched before export (`OTEL_BSP_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpanBatch {
    /// The longest a finished span waits before its batch is sent (default 5 s).
    pub schedule_delay: Duration,
    /// Time allowed for each export, retries included; zero: no limit (default 30 s).
    /// An OTLP export stops at this or the OTLP timeout, whichever comes first.
    pub export_timeout: Duration,
    /// Finished spans waiting for export; more are dropped (default 2048).
    pub max_queue_size: usize,
    /// Spans per export at most (default 512), never more than the queue holds.
    pub max_export_batch_size: usize,
}

impl Default for SpanBatch {
    fn default() -> Self {
        SpanBatch {
            schedule_delay: Duration::from_millis(5000),
            export_timeout: Duration::from_millis(30_000),
            max_queue_size: 2048,
            max_export_batch_size: 512,
        }
    }
}

/// Resolved trace settings.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TracesConfig {
    /// Where spans go.
    pub exporter: TracesExporter,
    /// OTLP settings, when spans are pushed over OTLP.
    pub otlp: Option<OtlpConfig>,
    /// Which traces are recorded.
    pub sampler: TraceSampler,
    /// Batching.
    pub batch: SpanBatch,
}

/// Where a setting came from, as messages name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A [`TelemetryBuilder`] method.
    Code(&'static str),
    /// An environment variable.
    Env(&'static str),
    /// A key of the configuration file.
    File(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Code(method) => write!(f, "`{method}` (code)"),
            Origin::Env(var) => f.write_str(var),
            Origin::File(key) => write!(f, "`{key}` in the configuration file"),
        }
    }
}

/// A PEM file named for TLS, and who named it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFile {
    /// The path.
    pub path: PathBuf,
    /// The builder method, variable or file key that named it.
    pub origin: Origin,
}

/// TLS files for an `https://` OTLP endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate(s) to trust instead of the public roots
    /// (`OTEL_EXPORTER_OTLP_[METRICS_]CERTIFICATE`).
    pub certificate: Option<TlsFile>,
    /// Client certificate chain for mutual TLS (`…CLIENT_CERTIFICATE`).
    pub client_certificate: Option<TlsFile>,
    /// Client private key for mutual TLS (`…CLIENT_KEY`).
    pub client_key: Option<TlsFile>,
}

/// An environment value that could not be used, and what was used instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The variable.
    pub variable: &'static str,
    /// What was wrong and what was used instead (never a header value).
    pub message: String,
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Builds a [`crate::Telemetry`]; every setting left unset comes from the
/// environment (or the configuration file), then the defaults.
#[derive(Clone, Debug, Default)]
pub struct TelemetryBuilder {
    pub(crate) disabled: Option<bool>,
    pub(crate) service_name: Option<String>,
    pub(crate) service_version: Option<String>,
    pub(crate) service_instance_id: Option<String>,
    pub(crate) resource_attributes: Vec<(String, String)>,
    pub(crate) exporters: Option<Vec<ExporterKind>>,
    pub(crate) added_exporters: Vec<ExporterKind>,
    pub(crate) default_exporters: Option<Vec<ExporterKind>>,
    pub(crate) otlp_endpoint: Option<(String, EndpointKind)>,
    pub(crate) otlp_protocol: Option<OtlpProtocol>,
    pub(crate) otlp_insecure: Option<bool>,
    pub(crate) otlp_headers: Vec<(String, String)>,
    pub(crate) otlp_timeout: Option<Duration>,
    pub(crate) otlp_gzip: Option<bool>,
    pub(crate) otlp_certificate: Option<PathBuf>,
    pub(crate) otlp_client_certificate: Option<PathBuf>,
    pub(crate) otlp_client_key: Option<PathBuf>,
    pub(crate) temporality: Option<TemporalityPreference>,
    pub(crate) export_interval: Option<Duration>,
    pub(crate) export_timeout: Option<Duration>,
    pub(crate) prometheus_host: Option<String>,
    pub(crate) prometheus_port: Option<u16>,
    pub(crate) shutdown_timeout: Option<Duration>,
    pub(crate) namespace: Option<String>,
    pub(crate) prometheus_scope_labels: Option<bool>,
    pub(crate) config_file: Option<PathBuf>,
    pub(crate) traces_exporter: Option<TracesExporter>,
    pub(crate) default_traces_exporter: Option<TracesExporter>,
    pub(crate) otlp_traces_endpoint: Option<String>,
    pub(crate) traces_sampler: Option<TraceSampler>,
    pub(crate) span_batch_schedule_delay: Option<Duration>,
    pub(crate) span_batch_export_timeout: Option<Duration>,
    pub(crate) span_batch_max_queue_size: Option<usize>,
    pub(crate) span_batch_max_export_batch_size: Option<usize>,
}

/// How an OTLP endpoint becomes the URL requests go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EndpointKind {
    /// A base URL: OTLP/HTTP appends `v1/metrics` (`v1/traces`) to its path.
    Base,
    /// The full URL, used as it is.
    AsIs,
}

macro_rules! setters {
    ($( $(#[$doc:meta])* $name:ident : $field:ident = $ty:ty ),+ $(,)?) => {$(
        $(#[$doc])*
        pub fn $name(mut self, value: impl Into<$ty>) -> Self {
            self.$field = Some(value.into());
            self
        }
    )+};
}

impl TelemetryBuilder {
    setters! {
        /// Turn the whole pipeline off (`OTEL_SDK_DISABLED`).
        disabled: disabled = bool,
        /// `service.name` (`OTEL_SERVICE_NAME`).
        service_name: service_name = String,
        /// `service.version` (default: none).
        service_version: service_version = String,
        /// `service.instance.id` (default: random per process, so replicas never collide).
        service_instance_id: service_instance_id = String,
        /// OTLP transport (`OTEL_EXPORTER_OTLP_[METRICS_]PROTOCOL`).
        otlp_protocol: otlp_protocol = OtlpProtocol,
        /// For a gRPC endpoint given without a scheme (`collector:4317`): `true`
        /// connects in plain text, `false` (the default) with TLS
        /// (`OTEL_EXPORTER_OTLP_[METRICS_]INSECURE`). A scheme always wins.
        otlp_insecure: otlp_insecure = bool,
        /// Time allowed for each export, retries included; zero means no limit
        /// (`OTEL_EXPORTER_OTLP_[METRICS_]TIMEOUT`, default 10 s).
        otlp_timeout: otlp_timeout = Duration,
        /// gzip request bodies (`OTEL_EXPORTER_OTLP_[METRICS_]COMPRESSION=gzip`).
        otlp_gzip: otlp_gzip = bool,
        /// A PEM file of the CA certificate(s) to trust for an `https://` endpoint,
        /// instead of the public roots (`OTEL_EXPORTER_OTLP_[METRICS_]CERTIFICATE`).
        otlp_certificate: otlp_certificate = PathBuf,
        /// Temporality (`OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`).
        temporality: temporality = TemporalityPreference,
        /// Push interval (`OTEL_METRIC_EXPORT_INTERVAL`, default 60 s).
        export_interval: export_interval = Duration,
        /// Time allowed for each push of the periodic reader; zero means no limit
        /// (`OTEL_METRIC_EXPORT_TIMEOUT`, default 30 s). An OTLP export stops at
        /// this or the OTLP timeout, whichever comes first.
        export_timeout: export_timeout = Duration,
        /// Pull endpoint host (`OTEL_EXPORTER_PROMETHEUS_HOST`).
        prometheus_host: prometheus_host = String,
        /// Pull endpoint port; 0 picks a free one (`OTEL_EXPORTER_PROMETHEUS_PORT`).
        prometheus_port: prometheus_port = u16,
        /// The longest [`crate::Telemetry::shutdown`] and
        /// [`crate::Telemetry::force_flush`] block (default 5 s); an export still
        /// running then is abandoned and reported.
        shutdown_timeout: shutdown_timeout = Duration,
        /// Prefix of every outcometer instrument name built on this pipeline
        /// (`wildside` → `wildside_idempotency_requests_total`); set once here,
        /// not per recorder. Validated at build.
        namespace: namespace = String,
        /// Add `otel_scope_name`/`otel_scope_version` labels to every Prometheus
        /// series (default off: they double every label set for no query anyone
        /// writes, and outcometer's series all carry the same scope).
        prometheus_scope_labels: prometheus_scope_labels = bool,
        /// Reads the declarative configuration file at this path instead of the
        /// `OTEL_*` variables (`OTEL_CONFIG_FILE`); builder settings still win.
        config_file: config_file = PathBuf,
        /// Where spans go, whatever `OTEL_TRACES_EXPORTER` says.
        traces_exporter: traces_exporter = TracesExporter,
        /// What an unset `OTEL_TRACES_EXPORTER` means (the specification's default: `otlp`).
        default_traces_exporter: default_traces_exporter = TracesExporter,
        /// Which traces are recorded (`OTEL_TRACES_SAMPLER` and `…_ARG`; default
        /// `parentbased_always_on`). A ratio outside 0.0..=1.0 is a setup error.
        traces_sampler: traces_sampler = TraceSampler,
        /// The longest a finished span waits for export; not zero
        /// (`OTEL_BSP_SCHEDULE_DELAY`, default 5 s).
        span_batch_schedule_delay: span_batch_schedule_delay = Duration,
        /// Time allowed for each span export; zero means no limit
        /// (`OTEL_BSP_EXPORT_TIMEOUT`, default 30 s).
        span_batch_export_timeout: span_batch_export_timeout = Duration,
        /// Finished spans held for export; not zero (`OTEL_BSP_MAX_QUEUE_SIZE`, default 2048).
        span_batch_max_queue_size: span_batch_max_queue_size = usize,
        /// Spans per export; not zero and not above the queue size
        /// (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, default 512).
        span_batch_max_export_batch_size: span_batch_max_export_batch_size = usize,
    }

    /// The full OTLP URL spans go to, used as it is, like
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (`http://c:4318/v1/traces`). Beats both
    /// variables. Without it, [`TelemetryBuilder::otlp_endpoint`] serves both signals
    /// (`…/v1/traces` for spans over HTTP); every other OTLP builder setting
    /// (protocol, headers, timeout, gzip, TLS) applies to both signals too.
    pub fn otlp_traces_endpoint(mut self, url: impl Into<String>) -> Self {
        self.otlp_traces_endpoint = Some(url.into());
        self
    }

    /// OTLP base URL, like `OTEL_EXPORTER_OTLP_ENDPOINT`: OTLP/HTTP sends to its
    /// path + `v1/metrics` (`http://c:4318` → `http://c:4318/v1/metrics`), gRPC to
    /// it as it is. Beats both variables.
    pub fn otlp_endpoint(mut self, base_url: impl Into<String>) -> Self {
        self.otlp_endpoint = Some((base_url.into(), EndpointKind::Base));
        self
    }

    /// The full OTLP URL, used as it is, like `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`
    /// (`http://c:4318/custom/path`). Beats both variables.
    pub fn otlp_metrics_endpoint(mut self, url: impl Into<String>) -> Self {
        self.otlp_endpoint = Some((url.into(), EndpointKind::AsIs));
        self
    }

    /// The client certificate (chain) and private key, PEM files, for mutual TLS
    /// (`OTEL_EXPORTER_OTLP_[METRICS_]CLIENT_CERTIFICATE` and `…CLIENT_KEY`).
    pub fn otlp_client_identity(mut self, certificate: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.otlp_client_certificate = Some(certificate.into());
        self.otlp_client_key = Some(key.into());
        self
    }

    /// Exactly these exporters, whatever `OTEL_METRICS_EXPORTER` says; an empty
    /// list means none.
    pub fn exporters(mut self, exporters: impl IntoIterator<Item = ExporterKind>) -> Self {
        self.exporters = Some(exporters.into_iter().collect());
        self
    }

    /// Runs `exporter` in addition to those `OTEL_METRICS_EXPORTER` (or the
    /// configuration file) selects: "always serve Prometheus, push OTLP if the
    /// environment asks". `OTEL_METRICS_EXPORTER=none` still turns off what the
    /// environment controls, not this.
    pub fn add_exporter(mut self, exporter: ExporterKind) -> Self {
        self.added_exporters.push(exporter);
        self
    }

    /// What an unset `OTEL_METRICS_EXPORTER` means (the specification's default:
    /// `otlp`). With `default_exporters([])` OTLP pushes only when the
    /// environment asks for it.
    pub fn default_exporters(mut self, exporters: impl IntoIterator<Item = ExporterKind>) -> Self {
        self.default_exporters = Some(exporters.into_iter().collect());
        self
    }

    /// Adds a resource attribute (merged over `OTEL_RESOURCE_ATTRIBUTES`).
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.resource_attributes.push((key.into(), value.into()));
        self
    }

    /// Adds an OTLP header (merged over `OTEL_EXPORTER_OTLP_[METRICS_]HEADERS`),
    /// sent exactly as given: no percent-decoding.
    pub fn otlp_header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.otlp_headers.push((key.into(), value.into()));
        self
    }

    /// Resolves against the process environment.
    pub fn resolve(&self) -> Result<ResolvedConfig, SetupError> {
        self.resolve_with(|name| std::env::var(name).ok())
    }

    /// Resolves against `env` (a lookup by variable name); the process environment
    /// is not read.
    pub fn resolve_with(&self, env: impl Fn(&str) -> Option<String>) -> Result<ResolvedConfig, SetupError> {
        resolve(self, &env)
    }
}

/// Every setting, resolved.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ResolvedConfig {
    /// The pipeline is off.
    pub disabled: bool,
    /// Resource attributes, `service.name` and `service.instance.id` included.
    pub resource: BTreeMap<String, String>,
    /// Exporters to run, sorted, without duplicates.
    pub exporters: Vec<ExporterKind>,
    /// OTLP settings, when OTLP runs.
    pub otlp: Option<OtlpConfig>,
    /// Push interval.
    pub export_interval: Duration,
    /// Deadline of each push of the periodic reader; zero: no limit.
    pub export_timeout: Duration,
    /// Pull endpoint `host:port`, when the Prometheus exporter runs.
    pub prometheus_address: Option<String>,
    /// How long shutdown and flush may block.
    pub shutdown_timeout: Duration,
    /// `otel_scope_*` labels on Prometheus series (default off).
    pub prometheus_scope_labels: bool,
    /// Cardinality limits for instruments that are not outcometer's, from the
    /// configuration file's views: (instrument name or `*`, limit).
    pub cardinality_limits: Vec<(String, usize)>,
    /// The configuration file read, if any.
    pub config_file: Option<PathBuf>,
    /// Traces: exporter, OTLP settings, sampler, batching.
    pub traces: TracesConfig,
    /// Environment values that were ignored, and why; each is also logged once
    /// when the pipeline starts.
    pub warnings: Vec<ConfigWarning>,
}

/// Resolved OTLP settings.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct OtlpConfig {
    /// The URL requests go to (HTTP: the full URL, path included).
    pub endpoint: String,
    /// Transport.
    pub protocol: OtlpProtocol,
    /// Headers (gRPC metadata), sent as they are.
    pub headers: BTreeMap<String, String>,
    /// Time allowed for each export, retries included; zero: no limit.
    pub timeout: Duration,
    /// gzip.
    pub gzip: bool,
    /// Temporality.
    pub temporality: TemporalityPreference,
    /// TLS files (used for `https://` endpoints only).
    pub tls: TlsFiles,
}

impl std::fmt::Debug for OtlpConfig {
    // Header values are secrets (API keys): names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpConfig")
            .field("endpoint", &crate::otlp::display_endpoint(&self.endpoint))
            .field("protocol", &self.protocol)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("gzip", &self.gzip)
            .field("temporality", &self.temporality)
            .field("tls", &self.tls)
            .finish()
    }
}

/// The default `OTEL_EXPORTER_PROMETHEUS_HOST`.
pub const DEFAULT_PROMETHEUS_HOST: &str = "localhost";
/// The default `OTEL_EXPORTER_PROMETHEUS_PORT`.
pub const DEFAULT_PROMETHEUS_PORT: u16 = 9464;
/// The default OTLP/HTTP endpoint.
pub const DEFAULT_HTTP_ENDPOINT: &str = "http://localhost:4318/v1/metrics";
/// The default OTLP/HTTP endpoint for spans.
pub const DEFAULT_HTTP_TRACES_ENDPOINT: &str = "http://localhost:4318/v1/traces";
/// The default OTLP/gRPC endpoint.
pub const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";
/// The default OTLP timeout.
pub const DEFAULT_OTLP_TIMEOUT: Duration = Duration::from_secs(10);
/// The default push interval.
pub const DEFAULT_EXPORT_INTERVAL: Duration = Duration::from_secs(60);
/// The default push timeout.
pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings from outside the code: the environment or the configuration file.
/// `None` everywhere means "not set here".
#[derive(Clone, Debug, Default)]
pub(crate) struct Layer {
    pub(crate) disabled: Option<bool>,
    /// Applied in order, later entries winning.
    pub(crate) resource: Vec<(String, String)>,
    pub(crate) exporters: Option<Vec<ExporterKind>>,
    pub(crate) export_interval: Option<Duration>,
    pub(crate) export_timeout: Option<Duration>,
    pub(crate) otlp: OtlpLayer,
    pub(crate) prometheus_host: Option<String>,
    pub(crate) prometheus_port: Option<u16>,
    pub(crate) cardinality_limits: Vec<(String, usize)>,
    /// The configuration file's `tracer_provider`; `None` when it has none (then
    /// spans go nowhere unless code says otherwise). Never set from the environment.
    pub(crate) traces: Option<TracesLayer>,
}

/// Trace settings from the configuration file.
#[derive(Clone, Debug, Default)]
pub(crate) struct TracesLayer {
    pub(crate) exporter: Option<TracesExporter>,
    pub(crate) otlp: OtlpLayer,
    pub(crate) sampler: Option<TraceSampler>,
    pub(crate) batch: env::SpanBatchLayer,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct OtlpLayer {
    pub(crate) protocol: Option<OtlpProtocol>,
    /// The endpoint as the environment or file gave it, and how to treat it.
    pub(crate) endpoint: Option<(String, EndpointKind, Origin)>,
    pub(crate) insecure: Option<bool>,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) gzip: Option<bool>,
    pub(crate) temporality: Option<TemporalityPreference>,
    pub(crate) tls: TlsFiles,
}

/// The variables and paths of one signal's OTLP exporter: metrics and traces
/// resolve their OTLP settings with the same code, from these names.
pub(crate) struct SignalVars {
    pub(crate) traces: bool,
    /// What a base URL gets appended over HTTP.
    pub(crate) path: &'static str,
    pub(crate) default_http_endpoint: &'static str,
    pub(crate) endpoint: &'static str,
    pub(crate) headers: &'static str,
    pub(crate) timeout: &'static str,
    pub(crate) compression: &'static str,
    pub(crate) protocol: &'static str,
    pub(crate) insecure: &'static str,
    pub(crate) certificate: &'static str,
    pub(crate) client_certificate: &'static str,
    pub(crate) client_key: &'static str,
}

pub(crate) const METRICS_VARS: SignalVars = SignalVars {
    traces: false,
    path: "v1/metrics",
    default_http_endpoint: DEFAULT_HTTP_ENDPOINT,
    endpoint: "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    headers: "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
    timeout: "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
    compression: "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
    protocol: "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    insecure: "OTEL_EXPORTER_OTLP_METRICS_INSECURE",
    certificate: "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
    client_certificate: "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE",
    client_key: "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY",
};

pub(crate) const TRACES_VARS: SignalVars = SignalVars {
    traces: true,
    path: "v1/traces",
    default_http_endpoint: DEFAULT_HTTP_TRACES_ENDPOINT,
    endpoint: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    headers: "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    timeout: "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    compression: "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    protocol: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    insecure: "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
    certificate: "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    client_certificate: "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
    client_key: "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
};

impl SignalVars {
    /// The endpoint given in code for this signal, its kind and the builder method.
    pub(crate) fn code_endpoint<'b>(
        &self,
        b: &'b TelemetryBuilder,
    ) -> Option<(&'b String, EndpointKind, &'static str)> {
        if self.traces {
            b.otlp_traces_endpoint
                .as_ref()
                .map(|url| (url, EndpointKind::AsIs, "otlp_traces_endpoint"))
                .or(match &b.otlp_endpoint {
                    Some((raw, EndpointKind::Base)) => Some((raw, EndpointKind::Base, "otlp_endpoint")),
                    _ => None,
                })
        } else {
            b.otlp_endpoint.as_ref().map(|(raw, kind)| {
                let setting = match kind {
                    EndpointKind::Base => "otlp_endpoint",
                    EndpointKind::AsIs => "otlp_metrics_endpoint",
                };
                (raw, *kind, setting)
            })
        }
    }
}

/// What an OTLP endpoint must look like; `Ok` is the URL requests go to, a base
/// URL getting `signal_path` over HTTP.
pub(crate) fn endpoint_url_for(
    raw: &str,
    kind: EndpointKind,
    protocol: OtlpProtocol,
    insecure: bool,
    signal_path: &str,
) -> Result<String, &'static str> {
    let raw = raw.trim();
    let with_scheme = if raw.starts_with("http://") || raw.starts_with("https://") {
        raw.to_owned()
    } else if protocol == OtlpProtocol::Grpc && !raw.contains("://") {
        // protocol/exporter.md: `insecure` applies to a gRPC endpoint without a scheme.
        format!("{}://{raw}", if insecure { "http" } else { "https" })
    } else if protocol == OtlpProtocol::Grpc {
        return Err(
            "an http:// or https:// URL, or host:port (plain text with OTEL_EXPORTER_OTLP_INSECURE=true)",
        );
    } else {
        return Err("an http:// or https:// URL, e.g. http://localhost:4318");
    };
    let rest = with_scheme.split_once("://").map_or("", |(_, r)| r);
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    let port_ok = match authority.rsplit_once(':') {
        Some((_, port)) if !authority.ends_with(']') => port.parse::<u16>().is_ok(),
        _ => true,
    };
    if authority.is_empty()
        || authority.starts_with(':')
        || authority.contains(['@', ' '])
        || !port_ok
        || outcometer::toolkit::host_of(&with_scheme).is_none()
    {
        return Err("a URL with a host and an optional port, e.g. http://localhost:4318");
    }
    if protocol == OtlpProtocol::Grpc {
        return Ok(with_scheme);
    }
    let scheme_and_authority = &with_scheme[..with_scheme.len() - tail.len()];
    let query_at = tail.find(['?', '#']).unwrap_or(tail.len());
    let (path, query) = tail.split_at(query_at);
    Ok(match kind {
        // Per-signal URL: as it is, except that no path means the root path.
        EndpointKind::AsIs if path.is_empty() => format!("{scheme_and_authority}/{query}"),
        EndpointKind::AsIs => with_scheme,
        // Base URL: path + "v1/metrics" (or "v1/traces"), always, the query kept after it.
        EndpointKind::Base => {
            let slash = if path.ends_with('/') { "" } else { "/" };
            format!("{scheme_and_authority}{path}{slash}{signal_path}{query}")
        }
    })
}

/// A header both HTTP and gRPC metadata accept: a name of ASCII letters, digits,
/// `-`, `_` or `.` (not a binary `-bin` name), a value of printable ASCII.
pub(crate) fn valid_header(name: &str, value: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && !name.to_ascii_lowercase().ends_with("-bin")
        && value.bytes().all(|c| (0x20..=0x7e).contains(&c))
}

/// What a header must look like.
pub(crate) const HEADER_RULE: &str =
    "a header name of ASCII letters, digits, '-', '_' or '.' (not ending in -bin) and a value of printable ASCII";

fn default_service_name() -> String {
    let exe = std::env::current_exe().ok();
    match exe.as_ref().and_then(|p| p.file_name()).and_then(|n| n.to_str()) {
        Some(name) => format!("unknown_service:{name}"),
        None => "unknown_service".to_owned(),
    }
}

/// A random 128-bit id in UUID v4 text form, from std's randomly keyed hasher.
pub(crate) fn random_instance_id() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let word = |salt: u64| {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        h.finish()
    };
    let (a, b) = (word(1), word(2));
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// Where the settings not given in code come from.
enum Source<'a> {
    Env(EnvReader<'a>),
    #[cfg_attr(not(feature = "config-file"), allow(dead_code))]
    File(Box<Layer>, PathBuf),
}

impl Source<'_> {
    fn general(&self) -> Layer {
        match self {
            Source::Env(env) => env.general(),
            Source::File(layer, _) => (**layer).clone(),
        }
    }
    fn otlp(&self, vars: &SignalVars, b: &TelemetryBuilder) -> OtlpLayer {
        match self {
            Source::Env(env) => env.otlp(vars, b),
            // The tracer provider's exporter, not the meter provider's.
            Source::File(layer, _) if vars.traces => {
                layer.traces.as_ref().map(|t| t.otlp.clone()).unwrap_or_default()
            }
            Source::File(layer, _) => layer.otlp.clone(),
        }
    }
    fn prometheus(&self) -> (Option<String>, Option<u16>) {
        match self {
            Source::Env(env) => env.prometheus(),
            Source::File(layer, _) => (layer.prometheus_host.clone(), layer.prometheus_port),
        }
    }
}

fn invalid_code(setting: &'static str, value: impl Into<String>, expected: &'static str) -> SetupError {
    SetupError::InvalidSetting {
        setting,
        value: value.into(),
        expected,
    }
}

fn resolve(b: &TelemetryBuilder, env: &dyn Fn(&str) -> Option<String>) -> Result<ResolvedConfig, SetupError> {
    let reader = EnvReader::new(env);
    let file = match &b.config_file {
        Some(path) => Some((path.clone(), Origin::Code("config_file"))),
        None => reader
            .path("OTEL_CONFIG_FILE")
            .map(|p| (p, Origin::Env("OTEL_CONFIG_FILE"))),
    };
    let source = match file {
        #[cfg(feature = "config-file")]
        Some((path, origin)) => {
            let layer = file::load(&path, &origin, env)?;
            Source::File(Box::new(layer), path)
        }
        #[cfg(not(feature = "config-file"))]
        Some((path, origin)) => {
            return Err(SetupError::FeatureDisabled {
                what: format!("the configuration file {} named by {origin}", path.display()),
                feature: "config-file",
            })
        }
        None => Source::Env(reader),
    };
    let general = source.general();

    let disabled = b.disabled.or(general.disabled).unwrap_or(false);

    let mut resource = BTreeMap::new();
    resource.extend(general.resource.iter().cloned());
    resource.extend(b.resource_attributes.iter().cloned());
    for (key, value) in [
        ("service.name", &b.service_name),
        ("service.version", &b.service_version),
        ("service.instance.id", &b.service_instance_id),
    ] {
        if let Some(value) = value {
            resource.insert(key.to_owned(), value.clone());
        }
    }
    resource
        .entry("service.name".to_owned())
        .or_insert_with(default_service_name);
    resource
        .entry("service.instance.id".to_owned())
        .or_insert_with(random_instance_id);

    let mut exporters = match &b.exporters {
        Some(list) => list.clone(),
        None => {
            let mut list = general
                .exporters
                .clone()
                .or_else(|| b.default_exporters.clone())
                .unwrap_or_else(|| vec![ExporterKind::Otlp]);
            list.extend(b.added_exporters.iter().copied());
            list
        }
    };
    exporters.sort();
    exporters.dedup();
    if disabled {
        exporters.clear();
    }

    let export_interval = match b.export_interval {
        Some(d) if d.is_zero() => {
            return Err(invalid_code(
                "export_interval",
                "0ms",
                "a positive duration (OTEL_METRIC_EXPORT_INTERVAL in milliseconds)",
            ))
        }
        Some(d) => d,
        None => general.export_interval.unwrap_or(DEFAULT_EXPORT_INTERVAL),
    };
    let export_timeout = b
        .export_timeout
        .or(general.export_timeout)
        .unwrap_or(DEFAULT_EXPORT_TIMEOUT);

    let otlp = if exporters.contains(&ExporterKind::Otlp) {
        Some(resolve_otlp(b, &METRICS_VARS, &source.otlp(&METRICS_VARS, b))?)
    } else {
        None
    };
    let traces = resolve_traces(b, &source, disabled)?;

    let prometheus_address = if exporters.contains(&ExporterKind::Prometheus) {
        let (env_host, env_port) = source.prometheus();
        let host = match &b.prometheus_host {
            Some(h) if !valid_host(h) => {
                return Err(invalid_code(
                    "prometheus_host",
                    h.clone(),
                    "a host name or IP address, e.g. 127.0.0.1",
                ))
            }
            Some(h) => h.clone(),
            None => env_host.unwrap_or_else(|| DEFAULT_PROMETHEUS_HOST.to_owned()),
        };
        let port = b.prometheus_port.or(env_port).unwrap_or(DEFAULT_PROMETHEUS_PORT);
        Some(if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        })
    } else {
        None
    };

    let (config_file, warnings) = match source {
        Source::Env(reader) => (None, reader.into_warnings()),
        Source::File(_, path) => (Some(path), Vec::new()),
    };
    Ok(ResolvedConfig {
        disabled,
        resource,
        exporters,
        otlp,
        export_interval,
        export_timeout,
        prometheus_address,
        shutdown_timeout: b.shutdown_timeout.unwrap_or(Duration::from_secs(5)),
        prometheus_scope_labels: b.prometheus_scope_labels.unwrap_or(false),
        cardinality_limits: general.cardinality_limits,
        config_file,
        traces,
        warnings,
    })
}

fn resolve_traces(
    b: &TelemetryBuilder,
    source: &Source<'_>,
    disabled: bool,
) -> Result<TracesConfig, SetupError> {
    let (env, file) = match source {
        Source::Env(env) => (Some(env), None),
        Source::File(layer, _) => (None, Some(layer.traces.clone().unwrap_or_default())),
    };
    let exporter = match (b.traces_exporter, env, &file) {
        _ if disabled => TracesExporter::None,
        (Some(kind), _, _) => kind,
        (None, Some(env), _) => env
            .traces_exporter()
            .or(b.default_traces_exporter)
            .unwrap_or(TracesExporter::Otlp),
        // A file without a `tracer_provider` (or without processors): no spans.
        (None, None, file) => file
            .as_ref()
            .and_then(|f| f.exporter)
            .unwrap_or(TracesExporter::None),
    };
    let sampler = match b.traces_sampler {
        Some(TraceSampler::TraceIdRatio(r) | TraceSampler::ParentBasedTraceIdRatio(r))
            if !(0.0..=1.0).contains(&r) =>
        {
            return Err(invalid_code(
                "traces_sampler",
                format!("{r}"),
                "a ratio from 0.0 to 1.0",
            ))
        }
        Some(sampler) => sampler,
        None => match (env, &file) {
            (Some(env), _) => env.sampler(),
            (None, file) => file.as_ref().and_then(|f| f.sampler),
        }
        .unwrap_or(TraceSampler::ParentBasedAlwaysOn),
    };
    let from_env = match (env, file) {
        (Some(env), _) => env.span_batch(),
        (None, file) => file.map(|f| f.batch).unwrap_or_default(),
    };
    let defaults = SpanBatch::default();
    let positive = |code: Option<usize>, setting: &'static str| match code {
        Some(0) => Err(invalid_code(setting, "0", "a positive number of spans")),
        other => Ok(other),
    };
    let schedule_delay = match b.span_batch_schedule_delay {
        Some(d) if d.is_zero() => {
            return Err(invalid_code(
                "span_batch_schedule_delay",
                "0ms",
                "a positive duration (OTEL_BSP_SCHEDULE_DELAY in milliseconds)",
            ))
        }
        Some(d) => d,
        None => from_env.schedule_delay.unwrap_or(defaults.schedule_delay),
    };
    let max_queue_size = positive(b.span_batch_max_queue_size, "span_batch_max_queue_size")?
        .or(from_env.max_queue_size)
        .unwrap_or(defaults.max_queue_size);
    let max_export_batch_size = match positive(
        b.span_batch_max_export_batch_size,
        "span_batch_max_export_batch_size",
    )? {
        Some(n) if n > max_queue_size => {
            return Err(invalid_code(
                "span_batch_max_export_batch_size",
                n.to_string(),
                "at most the queue size (span_batch_max_queue_size, default 2048)",
            ))
        }
        Some(n) => n,
        None => match from_env.max_export_batch_size {
            Some(n) if n > max_queue_size => {
                if let Some(env) = env {
                    env.batch_larger_than_queue(n, max_queue_size);
                }
                max_queue_size
            }
            Some(n) => n,
            None => defaults.max_export_batch_size.min(max_queue_size),
        },
    };
    let batch = SpanBatch {
        schedule_delay,
        export_timeout: b
            .span_batch_export_timeout
            .or(from_env.export_timeout)
            .unwrap_or(defaults.export_timeout),
        max_queue_size,
        max_export_batch_size,
    };
    let otlp = if exporter == TracesExporter::Otlp {
        Some(resolve_otlp(b, &TRACES_VARS, &source.otlp(&TRACES_VARS, b))?)
    } else {
        None
    };
    Ok(TracesConfig {
        exporter,
        otlp,
        sampler,
        batch,
    })
}

/// A host the pull endpoint can listen on.
pub(crate) fn valid_host(host: &str) -> bool {
    !host.is_empty() && !host.contains(['/', ' ', '@', '?', '#'])
}

fn resolve_otlp(
    b: &TelemetryBuilder,
    vars: &SignalVars,
    layer: &OtlpLayer,
) -> Result<OtlpConfig, SetupError> {
    let protocol = b
        .otlp_protocol
        .or(layer.protocol)
        .unwrap_or(OtlpProtocol::HttpProtobuf);
    let insecure = b.otlp_insecure.or(layer.insecure).unwrap_or(false);
    let endpoint = match (vars.code_endpoint(b), &layer.endpoint) {
        (Some((raw, kind, setting)), _) => endpoint_url_for(raw, kind, protocol, insecure, vars.path)
            .map_err(|expected| invalid_code(setting, crate::otlp::display_endpoint(raw), expected))?,
        // Already checked where it was read (a warning for the environment, an
        // error for the file).
        (None, Some((raw, kind, _))) => {
            endpoint_url_for(raw, *kind, protocol, insecure, vars.path).unwrap_or_else(|_| raw.clone())
        }
        (None, None) => match protocol {
            OtlpProtocol::HttpProtobuf => vars.default_http_endpoint.to_owned(),
            OtlpProtocol::Grpc => DEFAULT_GRPC_ENDPOINT.to_owned(),
        },
    };

    let mut headers = layer.headers.clone();
    for (key, value) in &b.otlp_headers {
        if !valid_header(key, value) {
            return Err(invalid_code("otlp_header", format!("{key}=…"), HEADER_RULE));
        }
        headers.insert(key.clone(), value.clone());
    }

    let code_file = |path: &Option<PathBuf>, method: &'static str| {
        path.as_ref().map(|p| TlsFile {
            path: p.clone(),
            origin: Origin::Code(method),
        })
    };
    let tls = TlsFiles {
        certificate: code_file(&b.otlp_certificate, "otlp_certificate")
            .or_else(|| layer.tls.certificate.clone()),
        client_certificate: code_file(&b.otlp_client_certificate, "otlp_client_identity")
            .or_else(|| layer.tls.client_certificate.clone()),
        client_key: code_file(&b.otlp_client_key, "otlp_client_identity")
            .or_else(|| layer.tls.client_key.clone()),
    };

    Ok(OtlpConfig {
        endpoint,
        protocol,
        headers,
        timeout: b.otlp_timeout.or(layer.timeout).unwrap_or(DEFAULT_OTLP_TIMEOUT),
        gzip: b.otlp_gzip.or(layer.gzip).unwrap_or(false),
        temporality: b
            .temporality
            .or(layer.temporality)
            .unwrap_or(TemporalityPreference::Cumulative),
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn defaults_follow_the_specification() {
        let c = TelemetryBuilder::default().resolve_with(env(&[])).unwrap();
        assert!(!c.disabled);
        assert_eq!(c.exporters, [ExporterKind::Otlp]);
        let otlp = c.otlp.as_ref().unwrap();
        assert_eq!(otlp.endpoint, "http://localhost:4318/v1/metrics");
        assert_eq!(otlp.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(otlp.timeout, Duration::from_secs(10));
        assert_eq!(otlp.temporality, TemporalityPreference::Cumulative);
        assert_eq!(c.export_interval, Duration::from_secs(60));
        assert_eq!(c.export_timeout, Duration::from_secs(30));
        assert_eq!(c.prometheus_address, None);
        assert!(c.resource["service.name"].starts_with("unknown_service"));
        assert_eq!(c.resource["service.instance.id"].len(), 36);
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn instance_ids_differ() {
        assert_ne!(random_instance_id(), random_instance_id());
    }

    #[test]
    fn base_urls_get_v1_metrics_and_keep_their_query() {
        let http = |raw, kind| endpoint_url_for(raw, kind, OtlpProtocol::HttpProtobuf, false, "v1/metrics");
        use EndpointKind::{AsIs, Base};
        assert_eq!(http("http://c:4318", Base).unwrap(), "http://c:4318/v1/metrics");
        assert_eq!(http("http://c:4318/", Base).unwrap(), "http://c:4318/v1/metrics");
        assert_eq!(
            http("http://c:4318/v1/metrics", Base).unwrap(),
            "http://c:4318/v1/metrics/v1/metrics"
        );
        assert_eq!(
            http("http://c:4318/mycollector/", Base).unwrap(),
            "http://c:4318/mycollector/v1/metrics"
        );
        assert_eq!(
            http("http://c:4318/?tenant=a", Base).unwrap(),
            "http://c:4318/v1/metrics?tenant=a"
        );
        assert_eq!(
            http("http://c:4318?tenant=a", Base).unwrap(),
            "http://c:4318/v1/metrics?tenant=a"
        );
        assert_eq!(http("http://c:4318", AsIs).unwrap(), "http://c:4318/");
        assert_eq!(http("http://c:4318?x=1", AsIs).unwrap(), "http://c:4318/?x=1");
        assert_eq!(
            http("https://c.example.com/v1/metrics/", AsIs).unwrap(),
            "https://c.example.com/v1/metrics/"
        );
        assert!(http("c:4318", Base).is_err());
        assert!(http("http://", Base).is_err());
        assert!(http("http://h:99999", Base).is_err());
        assert!(http("http://user:pw@h:1", Base).is_err());
    }

    #[test]
    fn schemeless_grpc_endpoints_follow_insecure() {
        let grpc = |raw, insecure| {
            endpoint_url_for(
                raw,
                EndpointKind::Base,
                OtlpProtocol::Grpc,
                insecure,
                "v1/metrics",
            )
        };
        assert_eq!(grpc("collector:4317", true).unwrap(), "http://collector:4317");
        assert_eq!(grpc("collector:4317", false).unwrap(), "https://collector:4317");
        assert_eq!(
            grpc("http://collector:4317", false).unwrap(),
            "http://collector:4317"
        );
        assert_eq!(
            grpc("https://collector:4317", true).unwrap(),
            "https://collector:4317"
        );
        assert!(grpc("ftp://collector:4317", true).is_err());
    }

    #[test]
    fn headers_must_fit_both_transports() {
        assert!(valid_header("x-api-key", "a b=c%20"));
        assert!(valid_header("tenant.id", "blue"));
        assert!(!valid_header("bad key", "v"));
        assert!(!valid_header("k", "line\nbreak"));
        assert!(!valid_header("k", "é"));
        assert!(!valid_header("trace-bin", "v"));
        assert!(!valid_header("", "v"));
    }
}
