//! The provider, its readers and views, and the handle that owns their lifetime.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::Resource;
use outcometer::otel::OtelBackend;
use outcometer::toolkit::{RegisteredFamily, Registry};

use crate::config::{ExporterKind, ResolvedConfig, TelemetryBuilder};
use crate::error::SetupError;
use crate::otlp::ExportHealth;

/// The running metrics pipeline. Shut it down to flush the last interval; dropping
/// it without [`Telemetry::shutdown`] does the same with the configured deadline.
pub struct Telemetry {
    provider: SdkMeterProvider,
    backend: OtelBackend,
    config: ResolvedConfig,
    health: Arc<ExportHealth>,
    #[cfg(feature = "prometheus")]
    pull: (
        crate::prometheus::MetricsService,
        Option<crate::prometheus::PullServer>,
    ),
    shut_down: Mutex<bool>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TelemetryBuilder {
    /// Resolves the configuration against the process environment and starts the pipeline.
    pub fn build(self) -> Result<Telemetry, SetupError> {
        let namespace = self.namespace.clone();
        Telemetry::start(self.resolve()?, namespace, true)
    }

    /// Like [`TelemetryBuilder::build`], with `env` standing in for the process environment.
    pub fn build_with_env(self, env: impl Fn(&str) -> Option<String>) -> Result<Telemetry, SetupError> {
        let namespace = self.namespace.clone();
        Telemetry::start(self.resolve_with(env)?, namespace, true)
    }

    /// Builds the pipeline without starting the pull endpoint's own server, for
    /// applications that mount [`Telemetry::metrics_service`] in their router.
    pub fn build_without_pull_server(self) -> Result<Telemetry, SetupError> {
        let namespace = self.namespace.clone();
        Telemetry::start(self.resolve()?, namespace, false)
    }
}

impl Telemetry {
    /// A builder; unset settings come from `OTEL_*` variables, then defaults.
    pub fn builder() -> TelemetryBuilder {
        TelemetryBuilder::default()
    }

    /// Starts a pipeline configured only by the environment.
    pub fn from_env() -> Result<Telemetry, SetupError> {
        Self::builder().build()
    }

    fn start(
        config: ResolvedConfig,
        namespace: Option<String>,
        serve_pull: bool,
    ) -> Result<Telemetry, SetupError> {
        #[cfg(not(feature = "prometheus"))]
        let _ = serve_pull;
        let registry = Registry::new(namespace.as_deref().unwrap_or(""))?.on_register(log_budget);
        let health = Arc::new(ExportHealth::default());
        let resource = Resource::builder_empty()
            .with_detector(Box::new(TelemetryResourceDetector))
            .with_attributes(
                config
                    .resource
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
            )
            .build();
        let mut builder = SdkMeterProvider::builder().with_resource(resource.clone());
        #[cfg(feature = "prometheus")]
        let mut pull_reader = None;
        for kind in &config.exporters {
            match kind {
                #[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
                ExporterKind::Otlp => {
                    let exporter = crate::otlp::exporter(&config.otlp, health.clone())?;
                    builder = builder.with_reader(periodic(exporter, &config));
                }
                #[cfg(not(any(feature = "otlp-grpc", feature = "otlp-http")))]
                ExporterKind::Otlp => {
                    return Err(SetupError::FeatureDisabled {
                        what: "OTLP push".into(),
                        feature: "otlp-grpc` or `otlp-http",
                    })
                }
                ExporterKind::Console => {
                    builder = builder.with_reader(periodic(crate::console::ConsoleExporter, &config));
                }
                #[cfg(feature = "prometheus")]
                ExporterKind::Prometheus => {
                    let reader = crate::exposition::SharedReader(Arc::new(
                        opentelemetry_sdk::metrics::ManualReader::builder().build(),
                    ));
                    builder = builder.with_reader(reader.clone());
                    pull_reader = Some(reader);
                }
                #[cfg(not(feature = "prometheus"))]
                ExporterKind::Prometheus => {
                    return Err(SetupError::FeatureDisabled {
                        what: "the Prometheus exporter".into(),
                        feature: "prometheus",
                    })
                }
            }
        }
        let (provider, backend) = OtelBackend::with_views(builder);
        let backend = backend.with_registry(registry);
        #[cfg(feature = "prometheus")]
        let pull = {
            // Without the Prometheus exporter (or with the SDK disabled) the
            // service still exists and answers an empty exposition.
            let exposition = crate::exposition::Exposition::new(
                pull_reader.as_ref().map(|_| backend.shared_registry()),
                pull_reader.clone(),
                resource,
                config.prometheus_scope_labels,
            );
            let service = crate::prometheus::MetricsService::new(Arc::new(exposition));
            let server = match (&pull_reader, serve_pull) {
                (Some(_), true) => Some(crate::prometheus::PullServer::start(
                    &config.prometheus_address,
                    service.clone(),
                )?),
                _ => None,
            };
            (service, server)
        };
        #[cfg(not(feature = "prometheus"))]
        let _ = resource;
        Ok(Telemetry {
            backend,
            provider,
            config,
            health,
            #[cfg(feature = "prometheus")]
            pull,
            shut_down: Mutex::new(false),
        })
    }

    /// The meter provider, for instruments of your own.
    pub fn provider(&self) -> &SdkMeterProvider {
        &self.provider
    }

    /// The backend to build outcometer recorders on (clones share one registry).
    /// It declares each instrument's series bound and boundaries to this
    /// pipeline's views before creating it, so the cardinality limit is the
    /// declared bound and nothing real overflows; and a family built twice on it
    /// shares one set of cells.
    pub fn backend(&self) -> OtelBackend {
        self.backend.clone()
    }

    /// The series budget: the sum of the declared worst cases of every family
    /// built on this pipeline, the overflow meta counter included. Each
    /// registration also logs it once (`tracing`, info).
    pub fn series_budget(&self) -> usize {
        use outcometer::toolkit::Backend as _;
        self.backend.registry().map_or(0, Registry::series_budget)
    }

    /// The resolved configuration.
    pub fn config(&self) -> &ResolvedConfig {
        &self.config
    }

    /// Counts of OTLP exports that succeeded and failed, and the last failure.
    pub fn export_health(&self) -> &ExportHealth {
        &self.health
    }

    /// The address the pull endpoint listens on (the real port when 0 was asked).
    pub fn prometheus_address(&self) -> Option<SocketAddr> {
        #[cfg(feature = "prometheus")]
        {
            self.pull.1.as_ref().map(|s| s.local_addr)
        }
        #[cfg(not(feature = "prometheus"))]
        None
    }

    /// The pull endpoint as a service to mount in your own router (see the
    /// README's "In an axum service"). It always exists: with the Prometheus
    /// exporter off, or the SDK disabled, it answers an empty exposition.
    #[cfg(feature = "prometheus")]
    pub fn metrics_service(&self) -> crate::prometheus::MetricsService {
        self.pull.0.clone()
    }

    /// Collects and pushes now.
    pub fn force_flush(&self) -> Result<(), SetupError> {
        self.provider
            .force_flush()
            .map_err(|e| SetupError::Shutdown(e.to_string()))
    }

    /// Flushes the last interval and stops every reader, waiting at most the
    /// configured shutdown timeout.
    pub fn shutdown(self) -> Result<(), SetupError> {
        self.shutdown_once()
    }

    fn shutdown_once(&self) -> Result<(), SetupError> {
        let mut done = self.shut_down.lock().unwrap_or_else(PoisonError::into_inner);
        if *done {
            return Ok(());
        }
        *done = true;
        // The SDK's shutdown ignores its timeout; bound the wait here.
        let provider = self.provider.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("outcometer-shutdown".into())
            .spawn(move || {
                let _ = tx.send(provider.shutdown());
            });
        let result = match spawned {
            Ok(_) => match rx.recv_timeout(self.config.shutdown_timeout) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(SetupError::Shutdown(e.to_string())),
                Err(_) => Err(SetupError::Shutdown(format!(
                    "the final export did not finish within {:?}",
                    self.config.shutdown_timeout
                ))),
            },
            Err(e) => Err(SetupError::Shutdown(e.to_string())),
        };
        result
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        #[cfg(feature = "prometheus")]
        drop(self.pull.1.take());
        if let Err(error) = self.shutdown_once() {
            eprintln!("outcometer-exporter: {error}");
        }
    }
}

fn periodic<E: opentelemetry_sdk::metrics::exporter::PushMetricExporter>(
    exporter: E,
    config: &ResolvedConfig,
) -> PeriodicReader<E> {
    PeriodicReader::builder(exporter)
        .with_interval(config.export_interval)
        .build()
}

/// Logs each family as it registers, with the series budget after it.
fn log_budget(family: &RegisteredFamily, budget: usize) {
    tracing::info!(
        family = family.name,
        instruments = family.instruments.len(),
        series = family.series_bound(),
        series_budget = budget,
        "outcometer: registered family `{}` ({} series); series budget now {budget}",
        family.name,
        family.series_bound(),
    );
}
