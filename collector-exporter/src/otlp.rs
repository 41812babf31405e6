//! OTLP push over gRPC or HTTP/protobuf, and export-failure reporting.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
use {
    crate::config::{OtlpConfig, OtlpProtocol, TemporalityPreference},
    crate::error::SetupError,
    opentelemetry_sdk::error::OTelSdkError,
    opentelemetry_sdk::error::OTelSdkResult,
    opentelemetry_sdk::metrics::data::ResourceMetrics,
    opentelemetry_sdk::metrics::exporter::PushMetricExporter,
    opentelemetry_sdk::metrics::Temporality,
    std::sync::Arc,
    std::time::Duration,
};

/// What the pipeline knows about its pushes; shared with [`crate::Telemetry`].
#[derive(Debug, Default)]
#[cfg_attr(not(any(feature = "otlp-grpc", feature = "otlp-http")), allow(dead_code))]
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
    /// The most recent failure's cause, if the last export failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records a result; reports once per failure streak, and the recovery.
    #[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
    pub(crate) fn observe(&self, exporter: &str, endpoint: &str, result: &OTelSdkResult) {
        match result {
            Ok(()) => {
                self.succeeded.fetch_add(1, Ordering::Relaxed);
                *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = None;
                if self.failing.swap(false, Ordering::Relaxed) {
                    report(
                        false,
                        &format!("{exporter} metrics export to {endpoint} recovered"),
                    );
                }
            }
            Err(error) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
                if !self.failing.swap(true, Ordering::Relaxed) {
                    report(
                        true,
                        &format!(
                            "{exporter} metrics export to {endpoint} failed: {error}; \
                             further failures are not logged until an export succeeds \
                             (cumulative totals are re-sent then)"
                        ),
                    );
                }
            }
        }
    }
}

/// Logs through `tracing`, or to stderr when no subscriber is installed, because
/// a failure nobody sees is the bug this exists to prevent.
#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
fn report(is_error: bool, message: &str) {
    if tracing::dispatcher::has_been_set() {
        if is_error {
            tracing::warn!(target: "outcometer_exporter", "{message}");
        } else {
            tracing::info!(target: "outcometer_exporter", "{message}");
        }
    } else {
        eprintln!("outcometer-exporter: {message}");
    }
}

/// Wraps a push exporter: counts and reports failures, and (for gRPC) runs the
/// export on a private tokio runtime, since the periodic reader's thread has none.
#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
pub(crate) struct ReportingExporter<E> {
    inner: E,
    name: &'static str,
    endpoint: String,
    health: Arc<ExportHealth>,
    runtime: Option<tokio_handle::Runtime>,
}

#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
impl<E: PushMetricExporter> PushMetricExporter for ReportingExporter<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = match &self.runtime {
            Some(runtime) => runtime
                .block_on(self.inner.export(metrics))
                .unwrap_or_else(|| Err(OTelSdkError::InternalFailure("OTLP runtime is shut down".into()))),
            None => self.inner.export(metrics).await,
        };
        self.health.observe(self.name, &self.endpoint, &result);
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

#[cfg(feature = "otlp-grpc")]
mod tokio_handle {
    /// A one-worker runtime that drives tonic's connection.
    pub(crate) struct Runtime(pub(crate) Option<tokio::runtime::Runtime>);

    impl Runtime {
        pub(crate) fn block_on<F: std::future::Future>(&self, future: F) -> Option<F::Output> {
            self.0.as_ref().map(|rt| rt.block_on(future))
        }
    }

    impl Drop for Runtime {
        // The provider may be dropped inside the application's own runtime, where
        // a blocking runtime drop would panic.
        fn drop(&mut self) {
            if let Some(rt) = self.0.take() {
                rt.shutdown_background();
            }
        }
    }
}

#[cfg(all(feature = "otlp-http", not(feature = "otlp-grpc")))]
mod tokio_handle {
    pub(crate) enum Runtime {}

    impl Runtime {
        pub(crate) fn block_on<F: std::future::Future>(&self, _: F) -> Option<F::Output> {
            match *self {}
        }
    }
}

#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
fn temporality(preference: TemporalityPreference) -> Temporality {
    match preference {
        TemporalityPreference::Cumulative => Temporality::Cumulative,
        TemporalityPreference::Delta => Temporality::Delta,
        TemporalityPreference::LowMemory => Temporality::LowMemory,
    }
}

#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
fn build_error(config: &OtlpConfig, e: impl std::fmt::Display) -> SetupError {
    SetupError::Otlp {
        endpoint: config.endpoint.clone(),
        message: e.to_string(),
    }
}

#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
/// Builds the OTLP push exporter that `config` describes.
pub(crate) fn exporter(
    config: &OtlpConfig,
    health: Arc<ExportHealth>,
) -> Result<impl PushMetricExporter, SetupError> {
    if config.endpoint.starts_with("https://") && !cfg!(feature = "tls") {
        return Err(SetupError::FeatureDisabled {
            what: format!("the https endpoint {}", config.endpoint),
            feature: "tls",
        });
    }
    let (inner, runtime) = match config.protocol {
        OtlpProtocol::Grpc => grpc(config)?,
        OtlpProtocol::HttpProtobuf => (http(config)?, None),
    };
    let name = match config.protocol {
        OtlpProtocol::Grpc => "OTLP/gRPC",
        OtlpProtocol::HttpProtobuf => "OTLP/HTTP",
    };
    Ok(ReportingExporter {
        inner,
        name,
        endpoint: config.endpoint.clone(),
        health,
        runtime,
    })
}

#[cfg(feature = "otlp-grpc")]
fn grpc(
    config: &OtlpConfig,
) -> Result<(opentelemetry_otlp::MetricExporter, Option<tokio_handle::Runtime>), SetupError> {
    use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
    use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("outcometer-otlp")
        .enable_all()
        .build()
        .map_err(|source| SetupError::Runtime {
            what: "OTLP gRPC runtime",
            source,
        })?;
    let mut headers = http::HeaderMap::new();
    for (k, v) in &config.headers {
        let name = http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes())
            .map_err(|e| build_error(config, e))?;
        let value = http::HeaderValue::from_str(v).map_err(|e| build_error(config, e))?;
        headers.insert(name, value);
    }
    let metadata = MetadataMap::from_headers(headers);
    let _entered = runtime.enter();
    let mut builder = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(config.endpoint.clone())
        .with_timeout(config.timeout)
        .with_metadata(metadata);
    if config.gzip {
        builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
    }
    let exporter = builder
        .with_temporality(temporality(config.temporality))
        .build()
        .map_err(|e| build_error(config, e))?;
    drop(_entered);
    Ok((exporter, Some(tokio_handle::Runtime(Some(runtime)))))
}

#[cfg(all(feature = "otlp-http", not(feature = "otlp-grpc")))]
fn grpc(
    _: &OtlpConfig,
) -> Result<(opentelemetry_otlp::MetricExporter, Option<tokio_handle::Runtime>), SetupError> {
    Err(SetupError::FeatureDisabled {
        what: "OTLP over gRPC".into(),
        feature: "otlp-grpc",
    })
}

#[cfg(feature = "otlp-http")]
fn http(config: &OtlpConfig) -> Result<opentelemetry_otlp::MetricExporter, SetupError> {
    use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};

    let mut builder = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        // Explicit: with `http-json` compiled in anywhere, a bare `.with_http()` sends JSON.
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(config.endpoint.clone())
        .with_timeout(config.timeout)
        .with_headers(config.headers.clone().into_iter().collect());
    if config.gzip {
        builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
    }
    builder
        .with_temporality(temporality(config.temporality))
        .build()
        .map_err(|e| build_error(config, e))
}

#[cfg(all(feature = "otlp-grpc", not(feature = "otlp-http")))]
fn http(_: &OtlpConfig) -> Result<opentelemetry_otlp::MetricExporter, SetupError> {
    Err(SetupError::FeatureDisabled {
        what: "OTLP over HTTP/protobuf".into(),
        feature: "otlp-http",
    })
}
