//! OTLP push over gRPC or HTTP/protobuf, and export-failure reporting.
//!
//! The transports are our own, on the same parts `opentelemetry-otlp` uses
//! (`opentelemetry-proto` for the encoding, `tonic` for gRPC, `reqwest` for HTTP),
//! because `opentelemetry-otlp` 0.33 reads `OTEL_EXPORTER_OTLP_*` from the process
//! environment while it builds and lets it win over values given in code (headers
//! on both transports, compression whenever none is asked for). Here every byte on
//! the wire comes from [`crate::config::OtlpConfig`]: nothing reads the environment
//! (ADR 0005).
//!
//! Each export is bounded by the OTLP timeout and the reader's export timeout,
//! whichever is shorter (`0` means no limit), retries transient failures with
//! exponential back-off and jitter inside that bound, and runs on a private
//! one-worker tokio runtime, so a collector that never answers delays neither the
//! next interval nor shutdown beyond it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

#[cfg(feature = "otlp")]
use {
    crate::config::{OtlpConfig, OtlpProtocol, TemporalityPreference},
    crate::error::SetupError,
    opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
    opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult},
    opentelemetry_sdk::metrics::data::ResourceMetrics,
    opentelemetry_sdk::metrics::exporter::PushMetricExporter,
    opentelemetry_sdk::metrics::Temporality,
    std::sync::Arc,
    std::time::{Duration, Instant},
};

/// A generated gRPC client with the specification's size limits and, when
/// configured, gzip.
#[cfg(feature = "otlp-grpc")]
macro_rules! grpc_client {
    ($client:expr, $gzip:expr) => {{
        let client = $client
            .max_encoding_message_size($crate::otlp::MAX_REQUEST_BYTES)
            .max_decoding_message_size($crate::otlp::MAX_RESPONSE_BYTES);
        if $gzip {
            client.send_compressed(tonic::codec::CompressionEncoding::Gzip)
        } else {
            client
        }
    }};
}
#[cfg(all(feature = "otlp-grpc", feature = "traces"))]
pub(crate) use grpc_client;

#[cfg(feature = "otlp")]
mod cells;
#[cfg(feature = "otlp-grpc")]
mod grpc;
#[cfg(feature = "otlp-http")]
mod http;
#[cfg(feature = "otlp")]
mod tls;
#[cfg(all(feature = "otlp", feature = "traces"))]
pub(crate) mod traces;

/// What the pipeline knows about its pushes; shared with [`crate::Telemetry`].
#[derive(Debug, Default)]
#[cfg_attr(not(feature = "otlp"), allow(dead_code))]
pub struct ExportHealth {
    succeeded: AtomicU64,
    failed: AtomicU64,
    failing: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl ExportHealth {
    /// Exports that were accepted.
    pub fn succeeded(&self) -> u64 {
        self.succeeded.load(Ordering::Relaxed)
    }
    /// Exports that failed.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
    /// The export to `target` as a failure if any export failed since the count
    /// was `failed_before` (what a flush or shutdown reports).
    pub(crate) fn failures_since(
        &self,
        failed_before: u64,
        target: &Option<(&'static str, String)>,
    ) -> Vec<crate::error::ExportFailure> {
        match target {
            Some((exporter, endpoint)) if self.failed() > failed_before => {
                vec![crate::error::ExportFailure {
                    exporter,
                    endpoint: endpoint.clone(),
                    cause: self.last_error().unwrap_or_else(|| "failed".into()),
                }]
            }
            _ => Vec::new(),
        }
    }

    /// The most recent failure's cause, if the last export failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records a result; reports once per failure streak, and the recovery.
    #[cfg(feature = "otlp")]
    pub(crate) fn observe(&self, target: &Target, result: &Result<(), String>) {
        match result {
            Ok(()) => {
                self.succeeded.fetch_add(1, Ordering::Relaxed);
                *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = None;
                if self.failing.swap(false, Ordering::Relaxed) {
                    crate::report::info(&format!("{target} recovered"));
                }
            }
            Err(error) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(error.clone());
                if !self.failing.swap(true, Ordering::Relaxed) {
                    crate::report::warn(&failure_message(target, error));
                }
            }
        }
    }
}

/// The first failure of a streak, with what it costs under the temporality in use.
#[cfg(feature = "otlp")]
fn failure_message(target: &Target, error: &str) -> String {
    let consequence = match (target.signal, target.temporality) {
        // Spans are sent once: a batch that cannot be delivered is gone.
        (Signal::Traces, _) => "the spans of each failed export are lost",
        (Signal::Metrics, TemporalityPreference::Cumulative) => {
            "the next export that succeeds carries the full cumulative totals"
        }
        (Signal::Metrics, TemporalityPreference::Delta | TemporalityPreference::LowMemory) => {
            "with delta temporality the counts of each failed export are lost"
        }
    };
    format!(
        "{target} failed: {error}; {consequence}; further failures are not logged until an export succeeds"
    )
}

#[cfg(all(test, feature = "otlp"))]
mod tests {
    use super::*;

    #[test]
    fn failure_messages_are_true_to_the_temporality() {
        let target = |temporality| Target {
            name: "OTLP/HTTP",
            endpoint: "http://c:4318/v1/metrics?token=s3cret".into(),
            temporality,
            signal: Signal::Metrics,
        };
        let cumulative = failure_message(&target(TemporalityPreference::Cumulative), "HTTP 503");
        assert!(
            cumulative.contains("carries the full cumulative totals"),
            "{cumulative}"
        );
        for t in [TemporalityPreference::Delta, TemporalityPreference::LowMemory] {
            let delta = failure_message(&target(t), "HTTP 503");
            assert!(delta.contains("are lost") && !delta.contains("totals"), "{delta}");
            assert!(!delta.contains("s3cret"), "query strings are hidden: {delta}");
        }
    }

    #[test]
    fn the_runtime_threads_suppress_telemetry() {
        let runtime = Runtime::new().unwrap();
        let rt = runtime.0.as_ref().unwrap();
        let on_worker = rt
            .block_on(rt.spawn(async { opentelemetry::Context::is_current_telemetry_suppressed() }))
            .unwrap();
        assert!(on_worker);
    }

    #[test]
    fn limits_combine_with_zero_as_none() {
        let s = Duration::from_secs;
        assert_eq!(combined_limit(s(10), s(30)), Some(s(10)));
        assert_eq!(combined_limit(s(0), s(30)), Some(s(30)));
        assert_eq!(combined_limit(s(10), s(0)), Some(s(10)));
        assert_eq!(combined_limit(s(0), s(0)), None);
    }
}

/// Which exporter, and where it sends, as messages name it (query string hidden:
/// it may carry a token).
#[cfg(feature = "otlp")]
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) name: &'static str,
    pub(crate) endpoint: String,
    pub(crate) temporality: TemporalityPreference,
    pub(crate) signal: Signal,
}

/// Which signal an exporter sends: it names the data in messages and decides
/// what a failed export costs.
#[cfg(feature = "otlp")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    Metrics,
    #[cfg_attr(not(feature = "traces"), allow(dead_code))]
    Traces,
}

#[cfg(feature = "otlp")]
impl Signal {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Signal::Metrics => "metrics",
            Signal::Traces => "traces",
        }
    }
}

#[cfg(feature = "otlp")]
impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} export to {}",
            self.name,
            self.signal.as_str(),
            display_endpoint(&self.endpoint)
        )
    }
}

/// An endpoint as messages show it: without its query string.
pub(crate) fn display_endpoint(endpoint: &str) -> String {
    match endpoint.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => endpoint.to_owned(),
    }
}

/// A receiver that accepted part of a request says so; that is worth a warning
/// but is not a failed export (the rest will not be accepted by sending it again).
#[cfg(feature = "otlp")]
pub(crate) fn report_partial(rejected: i64, what: &str, message: &str) {
    if rejected > 0 || !message.is_empty() {
        crate::report::warn(&format!(
            "the OTLP receiver rejected {rejected} {what}: {message}"
        ));
    }
}

/// What differs between the signals' requests on the wire: the HTTP path, the
/// gRPC method, and how the answer reports a partial success. Everything else
/// (retries, deadlines, TLS, headers, gzip, health) is shared.
#[cfg(feature = "otlp")]
pub(crate) trait OtlpRequest: prost::Message + Clone + Send + Sync + 'static {
    /// What the receiver counts when it rejects part of a request.
    const ITEMS: &'static str;
    /// The answer's protobuf type.
    type Response: prost::Message + Default;
    /// Rejected items and the receiver's message, if it reported a partial success.
    fn partial(response: &Self::Response) -> Option<(i64, String)>;
    /// Sends `call` on `channel` with the generated client of this signal's service.
    #[cfg(feature = "otlp-grpc")]
    fn grpc_export(
        channel: tonic::transport::Channel,
        gzip: bool,
        call: tonic::Request<Self>,
    ) -> impl std::future::Future<Output = Result<tonic::Response<Self::Response>, tonic::Status>> + Send;
}

#[cfg(feature = "otlp")]
impl OtlpRequest for ExportMetricsServiceRequest {
    const ITEMS: &'static str = "data points";
    type Response = opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
    fn partial(response: &Self::Response) -> Option<(i64, String)> {
        response
            .partial_success
            .as_ref()
            .map(|p| (p.rejected_data_points, p.error_message.clone()))
    }
    #[cfg(feature = "otlp-grpc")]
    async fn grpc_export(
        channel: tonic::transport::Channel,
        gzip: bool,
        call: tonic::Request<Self>,
    ) -> Result<tonic::Response<Self::Response>, tonic::Status> {
        use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
        grpc_client!(MetricsServiceClient::new(channel), gzip)
            .export(call)
            .await
    }
}

/// What flush and shutdown impose on the exports running under them: a deadline,
/// and (at shutdown, with cumulative temporality) the abandonment of an export
/// already in progress, whose data the final export carries anyway.
#[cfg(feature = "otlp")]
#[derive(Debug, Default)]
pub(crate) struct Cutoff {
    at: Mutex<Option<Instant>>,
    abandon_before: Mutex<Option<Instant>>,
    notify: tokio::sync::Notify,
}

#[cfg(feature = "otlp")]
impl Cutoff {
    pub(crate) fn set(&self, at: Option<Instant>) {
        *self.at.lock().unwrap_or_else(PoisonError::into_inner) = at;
    }

    fn get(&self) -> Option<Instant> {
        *self.at.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Abandons every export that started before now.
    pub(crate) fn abandon_in_progress(&self) {
        *self.abandon_before.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        self.notify.notify_waiters();
    }

    fn abandons(&self, started: Instant) -> bool {
        self.abandon_before
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|before| started < before)
    }

    /// Completes when an export that started at `started` is abandoned.
    async fn abandoned(&self, started: Instant) {
        loop {
            let notified = self.notify.notified();
            if self.abandons(started) {
                return;
            }
            notified.await;
        }
    }
}

/// One try's failure: its message, and whether trying again may help (with the
/// server's requested delay, if it sent one).
#[cfg(feature = "otlp")]
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) retry: Retry,
}

#[cfg(feature = "otlp")]
#[derive(Debug, PartialEq)]
pub(crate) enum Retry {
    No,
    Yes,
    #[cfg_attr(not(feature = "otlp-http"), allow(dead_code))]
    After(Duration),
}

#[cfg(feature = "otlp")]
enum Transport {
    #[cfg(feature = "otlp-grpc")]
    Grpc(grpc::Client),
    #[cfg(feature = "otlp-http")]
    Http(http::Client),
}

#[cfg(feature = "otlp")]
impl Transport {
    async fn send<R: OtlpRequest>(&self, request: &R, budget: Option<Duration>) -> Result<(), Failure> {
        match self {
            #[cfg(feature = "otlp-grpc")]
            Transport::Grpc(client) => client.send(request, budget).await,
            #[cfg(feature = "otlp-http")]
            Transport::Http(client) => client.send(request, budget).await,
        }
    }
}

/// The OTLP push exporter: builds requests, sends them within the deadline, counts
/// and reports failures.
#[cfg(feature = "otlp")]
pub(crate) struct OtlpExporter {
    transport: Transport,
    target: Target,
    /// OTLP timeout and export timeout combined; `None`: no limit.
    limit: Option<Duration>,
    cutoff: Arc<Cutoff>,
    health: Arc<ExportHealth>,
    runtime: Runtime,
    shut_down: AtomicBool,
    /// outcometer's instruments, which are cells the SDK never collects (metrics
    /// only: a span exporter has none).
    cells: Option<cells::CellMetrics>,
}

/// Initial back-off; it doubles up to [`MAX_BACKOFF`], plus up to 25% jitter.
#[cfg(feature = "otlp")]
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
#[cfg(feature = "otlp")]
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How much longer than the remaining budget a transport's own timeout is.
#[cfg(feature = "otlp")]
const TRANSPORT_SLACK: Duration = Duration::from_millis(100);
/// Tries per export, the first included.
#[cfg(feature = "otlp")]
const MAX_TRIES: u32 = 6;

#[cfg(feature = "otlp")]
fn jitter(base: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    let quarter = (base.as_millis() as u64 / 4).max(1);
    base + Duration::from_millis(h.finish() % quarter)
}

/// Whether a failure is a TLS handshake rejected for its certificates, which
/// trying again cannot fix.
#[cfg(feature = "otlp")]
fn tls_rejected(message: &str) -> bool {
    message.contains("invalid peer certificate") || message.contains("received fatal alert")
}

/// `limit` from now; a year from now when `limit` is too long for an `Instant`
/// (a `Duration::MAX` timeout must not panic, least of all in `Drop`).
#[cfg_attr(not(any(feature = "otlp", feature = "traces")), allow(dead_code))]
pub(crate) fn after(limit: std::time::Duration) -> std::time::Instant {
    let now = std::time::Instant::now();
    now.checked_add(limit)
        .unwrap_or(now + std::time::Duration::from_secs(365 * 86_400))
}

/// The shorter of two limits where zero means none.
#[cfg(feature = "otlp")]
pub(crate) fn combined_limit(a: Duration, b: Duration) -> Option<Duration> {
    [a, b].into_iter().filter(|d| !d.is_zero()).min()
}

#[cfg(feature = "otlp")]
impl OtlpExporter {
    pub(crate) fn name(&self) -> &'static str {
        self.target.name
    }

    pub(crate) fn temporality_preference(&self) -> TemporalityPreference {
        self.target.temporality
    }

    fn deadline(&self, start: Instant) -> Option<Instant> {
        let own = self.limit.map(|l| start + l);
        match (own, self.cutoff.get()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sends `request`, retrying transient failures until `deadline`.
    pub(crate) async fn send_with_retry<R: OtlpRequest>(
        &self,
        request: &R,
        start: Instant,
    ) -> Result<(), String> {
        let deadline = self.deadline(start);
        let mut backoff = FIRST_BACKOFF;
        let mut tries = 0;
        loop {
            tries += 1;
            let budget = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if budget.is_some_and(|b| b.is_zero()) {
                return Err(self.timed_out(start, tries - 1));
            }
            // The transports get a little more than the budget, so the deadline
            // here fires first and the failure says which limit it was.
            let attempt = self.transport.send(request, budget.map(|b| b + TRANSPORT_SLACK));
            let result = match budget {
                Some(budget) => match tokio::time::timeout(budget, attempt).await {
                    Ok(result) => result,
                    Err(_) => return Err(self.timed_out(start, tries)),
                },
                None => attempt.await,
            };
            let failure = match result {
                Ok(()) => return Ok(()),
                Err(failure) => failure,
            };
            // A certificate the other side rejects will be rejected again.
            let retry = if tls_rejected(&failure.message) {
                Retry::No
            } else {
                failure.retry
            };
            let wait = match retry {
                Retry::No => return Err(failure.message),
                Retry::Yes => jitter(backoff),
                Retry::After(delay) => delay.max(backoff),
            };
            backoff = (backoff * 2).min(MAX_BACKOFF);
            let fits = deadline.map_or(true, |d| Instant::now() + wait < d);
            if tries >= MAX_TRIES || !fits || self.shut_down.load(Ordering::Relaxed) {
                return Err(if tries > 1 {
                    format!("{} ({tries} tries in {:.1?})", failure.message, start.elapsed())
                } else {
                    failure.message
                });
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Sends `request` now, retrying within the deadline, and records the outcome
    /// in the export health. Nothing is abandoned: each request carries data no
    /// later request repeats (spans).
    #[cfg_attr(not(feature = "traces"), allow(dead_code))]
    pub(crate) fn deliver<R: OtlpRequest>(&self, request: &R) -> OTelSdkResult {
        if self.shut_down.load(Ordering::Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let start = Instant::now();
        let result = self
            .runtime
            .block_on(self.send_with_retry(request, start))
            .unwrap_or_else(|| Err("the OTLP runtime is shut down".to_owned()));
        self.health.observe(&self.target, &result);
        result.map_err(|message| OTelSdkError::InternalFailure(format!("{}: {message}", self.target)))
    }

    /// No export starts after this; one in progress stops retrying.
    #[cfg_attr(not(feature = "traces"), allow(dead_code))]
    pub(crate) fn stop(&self) {
        self.shut_down.store(true, Ordering::Relaxed);
    }

    fn timed_out(&self, start: Instant, tries: u32) -> String {
        let why = match (self.limit, self.cutoff.get()) {
            (Some(limit), _) if start.elapsed() + Duration::from_millis(5) >= limit => {
                format!("no answer within the export timeout of {limit:?}")
            }
            (_, Some(_)) => "no answer before the flush or shutdown deadline".to_owned(),
            _ => format!("no answer within {:.1?}", start.elapsed()),
        };
        if tries > 1 {
            format!("{why} ({tries} tries)")
        } else {
            why
        }
    }
}

#[cfg(feature = "otlp")]
impl PushMetricExporter for OtlpExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        if self.shut_down.load(Ordering::Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let start = Instant::now();
        let mut request = ExportMetricsServiceRequest::from(metrics);
        if let Some(cells) = &self.cells {
            cells.append(&mut request);
        }
        let outcome = self.runtime.block_on(async {
            tokio::select! {
                result = self.send_with_retry(&request, start) => Some(result),
                () = self.cutoff.abandoned(start) => None,
            }
        });
        let result = match outcome {
            Some(Some(result)) => result,
            Some(None) => {
                // Not a failure of the pipeline: the final export carries this data.
                return Err(OTelSdkError::InternalFailure(format!(
                    "{}: abandoned at shutdown; the final export carries its data",
                    self.target
                )));
            }
            None => Err("the OTLP runtime is shut down".to_owned()),
        };
        self.health.observe(&self.target, &result);
        result.map_err(|message| OTelSdkError::InternalFailure(format!("{}: {message}", self.target)))
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.shut_down.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        match self.target.temporality {
            TemporalityPreference::Cumulative => Temporality::Cumulative,
            TemporalityPreference::Delta => Temporality::Delta,
            TemporalityPreference::LowMemory => Temporality::LowMemory,
        }
    }
}

/// Encodes what one export sends: the SDK's collection plus a registry's cells
/// (cumulative). For the benchmarks, which time it against the SDK's own
/// collect-convert-encode; not part of the API.
#[doc(hidden)]
#[cfg(feature = "otlp")]
pub struct CellEncoder(cells::CellMetrics);

#[cfg(feature = "otlp")]
impl CellEncoder {
    /// An encoder of `registry`'s cells.
    pub fn new(registry: Arc<outcometer::toolkit::Registry>) -> Self {
        CellEncoder(cells::CellMetrics::new(
            registry,
            TemporalityPreference::Cumulative,
        ))
    }

    /// The encoded request for `sdk` (the SDK's collection) and the cells.
    pub fn encode(&self, sdk: &ResourceMetrics) -> Vec<u8> {
        use prost::Message as _;
        let mut request = ExportMetricsServiceRequest::from(sdk);
        self.0.append(&mut request);
        request.encode_to_vec()
    }
}

/// A one-worker runtime that drives the transports' connections; the metrics and
/// span exporters of one pipeline share it (clones), and the last one stops it.
#[cfg(feature = "otlp")]
#[derive(Clone)]
pub(crate) struct Runtime(Option<Arc<tokio::runtime::Runtime>>);

/// The pipeline's OTLP runtime, started by the first exporter that needs it.
#[cfg(feature = "otlp")]
#[derive(Default)]
pub(crate) struct SharedRuntime(std::sync::OnceLock<Runtime>);

#[cfg(feature = "otlp")]
impl SharedRuntime {
    pub(crate) fn get(&self) -> Result<Runtime, SetupError> {
        if let Some(runtime) = self.0.get() {
            return Ok(runtime.clone());
        }
        let runtime = Runtime::new()?;
        Ok(self.0.get_or_init(|| runtime).clone())
    }
}

#[cfg(feature = "otlp")]
impl Runtime {
    fn new() -> Result<Runtime, SetupError> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("outcometer-otlp")
            // The transports' own `tracing` spans (hyper, h2, tonic) must not become
            // OpenTelemetry spans that are exported, which would make more of them.
            .on_thread_start(|| std::mem::forget(opentelemetry::Context::enter_telemetry_suppressed_scope()))
            .enable_all()
            .build()
            .map(|rt| Runtime(Some(Arc::new(rt))))
            .map_err(|source| SetupError::Runtime {
                what: "OTLP runtime",
                source,
            })
    }

    fn block_on<F: std::future::Future>(&self, future: F) -> Option<F::Output> {
        self.0.as_ref().map(|rt| rt.block_on(future))
    }

    #[cfg(feature = "otlp-grpc")]
    fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.0.as_ref().map(|rt| rt.handle())
    }
}

#[cfg(feature = "otlp")]
impl Drop for Runtime {
    // The provider may be dropped inside the application's own runtime, where a
    // blocking runtime drop would panic. The last clone stops it.
    fn drop(&mut self) {
        if let Some(rt) = self.0.take().and_then(Arc::into_inner) {
            rt.shutdown_background();
        }
    }
}

/// The user agent both transports send (protocol/exporter.md, "User Agent").
#[cfg(feature = "otlp")]
pub(crate) const USER_AGENT: &str = concat!(
    "OTel-OTLP-Exporter-Rust/",
    env!("CARGO_PKG_VERSION"),
    " (outcometer-exporter)"
);

/// The largest request we send and the largest response we read (the spec's defaults).
#[cfg(feature = "otlp")]
pub(crate) const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;
#[cfg(feature = "otlp")]
pub(crate) const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Builds the OTLP push exporter that `config` describes; `export_timeout` is the
/// periodic reader's.
#[cfg(feature = "otlp")]
pub(crate) fn exporter(
    config: &OtlpConfig,
    export_timeout: Duration,
    health: Arc<ExportHealth>,
    cutoff: Arc<Cutoff>,
    registry: Arc<outcometer::toolkit::Registry>,
    runtime: &SharedRuntime,
) -> Result<OtlpExporter, SetupError> {
    let mut exporter = exporter_for(Signal::Metrics, config, export_timeout, health, cutoff, runtime)?;
    exporter.cells = Some(cells::CellMetrics::new(registry, config.temporality));
    Ok(exporter)
}

/// Builds an OTLP sender for `signal`: the same transports, retries, deadlines
/// and health reporting whatever it sends, on the pipeline's OTLP runtime.
#[cfg(feature = "otlp")]
pub(crate) fn exporter_for(
    signal: Signal,
    config: &OtlpConfig,
    export_timeout: Duration,
    health: Arc<ExportHealth>,
    cutoff: Arc<Cutoff>,
    runtime: &SharedRuntime,
) -> Result<OtlpExporter, SetupError> {
    if config.endpoint.starts_with("https://") && !cfg!(feature = "tls") {
        return Err(SetupError::FeatureDisabled {
            what: format!("the https endpoint {}", display_endpoint(&config.endpoint)),
            feature: "tls",
        });
    }
    let tls = tls::Material::load(config)?;
    let runtime = runtime.get()?;
    let (transport, name) = match config.protocol {
        #[cfg(feature = "otlp-grpc")]
        OtlpProtocol::Grpc => {
            let handle = runtime.handle().expect("a runtime that was just built").clone();
            (
                Transport::Grpc(grpc::Client::new(config, &tls, &handle)?),
                "OTLP/gRPC",
            )
        }
        #[cfg(not(feature = "otlp-grpc"))]
        OtlpProtocol::Grpc => {
            return Err(SetupError::FeatureDisabled {
                what: "OTLP over gRPC".into(),
                feature: "otlp-grpc",
            })
        }
        #[cfg(feature = "otlp-http")]
        OtlpProtocol::HttpProtobuf => (Transport::Http(http::Client::new(config, &tls)?), "OTLP/HTTP"),
        #[cfg(not(feature = "otlp-http"))]
        OtlpProtocol::HttpProtobuf => {
            return Err(SetupError::FeatureDisabled {
                what: "OTLP over HTTP/protobuf".into(),
                feature: "otlp-http",
            })
        }
    };
    Ok(OtlpExporter {
        transport,
        target: Target {
            name,
            endpoint: config.endpoint.clone(),
            temporality: config.temporality,
            signal,
        },
        limit: combined_limit(config.timeout, export_timeout),
        cutoff,
        health,
        runtime,
        shut_down: AtomicBool::new(false),
        cells: None,
    })
}

/// Header names and values for the wire, checked (names lower-case).
#[cfg(feature = "otlp")]
pub(crate) fn wire_headers(
    config: &OtlpConfig,
) -> Result<Vec<(::http::HeaderName, ::http::HeaderValue)>, SetupError> {
    config
        .headers
        .iter()
        .map(|(k, v)| {
            let name = ::http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes());
            let value = ::http::HeaderValue::from_str(v);
            match (name, value) {
                (Ok(n), Ok(v)) => Ok((n, v)),
                _ => Err(SetupError::Otlp {
                    endpoint: display_endpoint(&config.endpoint),
                    message: format!("header `{k}` cannot be sent (its value is not shown)"),
                }),
            }
        })
        .collect()
}
