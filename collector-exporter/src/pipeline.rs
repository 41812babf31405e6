//! The provider, its readers and views, and the handle that owns their lifetime.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::Resource;
use outcometer::otel::OtelBackend;
use outcometer::toolkit::{RegisteredFamily, Registry};

use crate::config::{ExporterKind, ResolvedConfig, TelemetryBuilder};
use crate::error::{ExportError, ExportFailure, Operation, SetupError};
use crate::otlp::ExportHealth;

/// The running metrics pipeline. Shut it down to flush the last interval; dropping
/// it without [`Telemetry::shutdown`] does the same with the configured deadline.
pub struct Telemetry {
    provider: SdkMeterProvider,
    backend: OtelBackend,
    config: ResolvedConfig,
    health: Arc<ExportHealth>,
    /// The OTLP exporter's name and endpoint, for flush and shutdown errors.
    push_target: Option<(&'static str, String)>,
    /// Cumulative: an export in progress at shutdown is abandoned, since the final
    /// one carries its data; with delta it is allowed to finish.
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    abandon_at_shutdown: bool,
    #[cfg(feature = "otlp")]
    cutoff: Arc<crate::otlp::Cutoff>,
    #[cfg(feature = "prometheus")]
    pull: (
        crate::prometheus::MetricsService,
        Option<crate::prometheus::PullServer>,
    ),
    /// The tracer provider, when spans go somewhere.
    #[cfg(feature = "traces")]
    traces: Option<crate::traces::Traces>,
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
    /// Resolves the configuration against the process environment and starts the
    /// pipeline. Environment values that cannot be used are logged once each
    /// (`tracing`, or stderr without a subscriber) and ignored; see
    /// [`ResolvedConfig::warnings`].
    pub fn build(self) -> Result<Telemetry, SetupError> {
        let namespace = self.namespace.clone();
        Telemetry::start(self.resolve()?, namespace, true)
    }

    /// Like [`TelemetryBuilder::build`], with `env` standing in for the process
    /// environment, which is then not read at all (nor by the transports).
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
        for warning in &config.warnings {
            crate::report::warn_once(&warning.message);
        }
        let registry = Arc::new(Registry::new(namespace.as_deref().unwrap_or(""))?.on_register(log_budget));
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
        #[cfg(feature = "otlp")]
        let otlp_runtime = crate::otlp::SharedRuntime::default();
        #[cfg(feature = "traces")]
        let traces = crate::traces::Traces::start(
            &config,
            &resource,
            #[cfg(feature = "otlp")]
            &otlp_runtime,
        )?;
        let mut builder = SdkMeterProvider::builder().with_resource(resource.clone());
        #[cfg(feature = "prometheus")]
        let mut pull_reader = None;
        #[cfg(feature = "otlp")]
        let cutoff = Arc::new(crate::otlp::Cutoff::default());
        let mut push_target = None;
        let mut abandon_at_shutdown = false;
        for kind in &config.exporters {
            match kind {
                #[cfg(feature = "otlp")]
                ExporterKind::Otlp => {
                    let otlp = config.otlp.as_ref().expect("resolved with OTLP");
                    let exporter = crate::otlp::exporter(
                        otlp,
                        config.export_timeout,
                        health.clone(),
                        cutoff.clone(),
                        registry.clone(),
                        &otlp_runtime,
                    )?;
                    push_target = Some((exporter.name(), crate::otlp::display_endpoint(&otlp.endpoint)));
                    abandon_at_shutdown =
                        exporter.temporality_preference() == crate::config::TemporalityPreference::Cumulative;
                    builder = builder.with_reader(push_reader(exporter, &config)?);
                }
                #[cfg(not(feature = "otlp"))]
                ExporterKind::Otlp => {
                    return Err(SetupError::FeatureDisabled {
                        what: "OTLP push".into(),
                        feature: "otlp-grpc` or `otlp-http",
                    })
                }
                ExporterKind::Console => {
                    builder = builder.with_reader(push_reader(
                        crate::console::ConsoleExporter::new(registry.clone()),
                        &config,
                    )?);
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
        #[cfg(not(feature = "otlp"))]
        let _ = (&mut push_target, &mut abandon_at_shutdown);
        if !config.cardinality_limits.is_empty() {
            builder = builder.with_view(crate::views::cardinality_limits(&config.cardinality_limits));
        }
        let provider = builder.build();
        // The encoders read every outcometer instrument from the cells (histograms
        // with exemplars); the SDK's readers see only the application's, so no
        // view for outcometer's instruments is needed.
        let backend = OtelBackend::from_provider(&provider)
            .with_registry(registry)
            .cells_only();
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
            let server = match (&pull_reader, serve_pull, config.prometheus_address.as_deref()) {
                (Some(_), true, Some(address)) => {
                    Some(crate::prometheus::PullServer::start(address, service.clone())?)
                }
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
            push_target,
            abandon_at_shutdown,
            #[cfg(feature = "otlp")]
            cutoff,
            #[cfg(feature = "prometheus")]
            pull,
            #[cfg(feature = "traces")]
            traces,
            shut_down: Mutex::new(false),
        })
    }

    /// The `tracing` layer that turns the application's spans, and the events
    /// inside them, into OpenTelemetry spans sent where `OTEL_TRACES_EXPORTER` (or
    /// [`TelemetryBuilder::traces_exporter`]) says, with this pipeline's resource.
    /// Add it to the subscriber once:
    ///
    /// ```
    /// use tracing_subscriber::layer::SubscriberExt as _;
    /// use outcometer_exporter::{Telemetry, TracesExporter};
    ///
    /// let telemetry = Telemetry::builder()
    ///     .exporters([])
    ///     .traces_exporter(TracesExporter::None)
    ///     .build_with_env(|_| None)?;
    /// let subscriber = tracing_subscriber::registry().with(telemetry.tracing_layer());
    /// tracing::subscriber::with_default(subscriber, || {
    ///     tracing::info_span!("job", kind = "report").in_scope(|| tracing::info!("done"));
    /// });
    /// // With `none` there is no tracer provider and the layer does nothing.
    /// assert!(telemetry.tracer_provider().is_none());
    /// telemetry.shutdown()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// In a program, as the process's subscriber:
    ///
    /// ```no_run
    /// use tracing_subscriber::layer::SubscriberExt as _;
    /// use tracing_subscriber::util::SubscriberInitExt as _;
    ///
    /// let telemetry = outcometer_exporter::Telemetry::from_env()?;
    /// tracing_subscriber::registry().with(telemetry.tracing_layer()).init();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// With `OTEL_TRACES_EXPORTER=none` (or `disabled`) it is a layer that does
    /// nothing, so the subscriber's type does not depend on the configuration.
    /// While a span is entered its OpenTelemetry context is the current one.
    ///
    /// The layer exports every span and event the subscriber lets reach it, of
    /// every crate and level: filter it as you filter any layer, on the registry
    /// or on the layer itself, e.g.
    /// `telemetry.tracing_layer().with_filter(Targets::new().with_default(Level::INFO).with_target("outcometer", Level::DEBUG))`
    /// (outcometer's outcome events are `DEBUG`). A per-layer filter on your log
    /// output alone leaves this layer unfiltered.
    #[cfg(feature = "traces")]
    pub fn tracing_layer<S>(&self) -> impl tracing_subscriber::Layer<S> + 'static
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        self.traces.as_ref().map(crate::traces::Traces::layer)
    }

    /// The tracer provider, for tracers of your own; `None` when spans go nowhere.
    #[cfg(feature = "traces")]
    pub fn tracer_provider(&self) -> Option<&opentelemetry_sdk::trace::SdkTracerProvider> {
        self.traces.as_ref().map(crate::traces::Traces::provider)
    }

    /// Counts of OTLP span exports that succeeded and failed, and the last failure;
    /// `None` when spans go nowhere.
    #[cfg(feature = "traces")]
    pub fn trace_export_health(&self) -> Option<&ExportHealth> {
        self.traces.as_ref().map(crate::traces::Traces::health)
    }

    /// The meter provider, for instruments of your own.
    pub fn provider(&self) -> &SdkMeterProvider {
        &self.provider
    }

    /// The backend to build outcometer recorders on (clones share one registry).
    /// It is cells-only: every instrument lives in its cells, which this
    /// pipeline's encoders read, so no series is ever merged or dropped by an SDK
    /// cardinality limit; and a family built twice on it shares one set of cells.
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

    /// The `/v1/stats` endpoint (the LLM-gateway family's JSON summary) as a
    /// service to mount in your own router; the pull server serves it at
    /// `/v1/stats`. It answers `503` once the pipeline is shut down, and on a
    /// pipeline without the Prometheus exporter. See `docs/stats.md`.
    #[cfg(feature = "prometheus")]
    pub fn stats_service(&self) -> crate::prometheus::StatsService {
        self.pull.0.stats_service()
    }

    /// Collects and pushes now, metrics and finished spans, blocking until every
    /// push exporter is done: at most the shutdown timeout (default 5 s). The error
    /// names each export that failed and where it was going.
    pub fn force_flush(&self) -> Result<(), SetupError> {
        self.bounded(Operation::Flush, |provider| provider.force_flush())
            .map_err(SetupError::from)
    }

    /// Flushes the last interval and the spans not yet sent, and stops every
    /// reader, the tracer provider and the pull endpoint, blocking at most the
    /// shutdown timeout (default 5 s), which also bounds the final exports; both
    /// signals are flushed at the same time. The error names each export that
    /// failed and where it was going. From async code, use
    /// [`Telemetry::shutdown_async`].
    pub fn shutdown(self) -> Result<(), SetupError> {
        self.shutdown_once()
    }

    /// [`Telemetry::shutdown`] on a thread of its own, for async code: awaiting
    /// it never blocks the executor. Works on any executor.
    pub fn shutdown_async(
        self,
    ) -> impl std::future::Future<Output = Result<(), SetupError>> + Send + 'static {
        off_thread(move || self.shutdown())
    }

    fn shutdown_once(&self) -> Result<(), SetupError> {
        let mut done = self.shut_down.lock().unwrap_or_else(PoisonError::into_inner);
        if *done {
            return Ok(());
        }
        *done = true;
        #[cfg(feature = "prometheus")]
        self.pull.0.close();
        self.bounded(Operation::Shutdown, |provider| provider.shutdown())
            .map_err(SetupError::from)
    }

    /// Runs `operation` on both providers at once, each from a helper thread,
    /// waits at most the shutdown timeout in all, and says which export failed.
    fn bounded(
        &self,
        operation: Operation,
        run: impl FnOnce(SdkMeterProvider) -> opentelemetry_sdk::error::OTelSdkResult + Send + 'static,
    ) -> Result<(), ExportError> {
        #[cfg(feature = "traces")]
        let deadline = crate::otlp::after(self.config.shutdown_timeout);
        #[cfg(feature = "traces")]
        let pending = self
            .traces
            .as_ref()
            .map(|traces| (traces, traces.begin(operation, self.config.shutdown_timeout)));
        let metrics = self.bounded_metrics(operation, run);
        #[cfg(feature = "traces")]
        if let Some((traces, pending)) = pending {
            let (failures, gave_up) = traces.finish(operation, pending, deadline);
            return merge(
                operation,
                metrics,
                failures,
                gave_up.then_some(self.config.shutdown_timeout),
            );
        }
        metrics
    }

    /// Runs `operation` on the meter provider from a helper thread (the SDK's own
    /// deadlines are not enforced), waits at most the shutdown timeout, and says
    /// which export failed.
    fn bounded_metrics(
        &self,
        operation: Operation,
        run: impl FnOnce(SdkMeterProvider) -> opentelemetry_sdk::error::OTelSdkResult + Send + 'static,
    ) -> Result<(), ExportError> {
        let limit = self.config.shutdown_timeout;
        // The export under us stops itself a little before we stop waiting, so it
        // is reported as its own failure rather than as a give-up.
        #[cfg(feature = "otlp")]
        {
            let margin = (limit / 10).min(std::time::Duration::from_millis(250));
            self.cutoff.set(Some(crate::otlp::after(limit - margin)));
            if operation == Operation::Shutdown && self.abandon_at_shutdown {
                self.cutoff.abandon_in_progress();
            }
        }
        let failed_before = self.health.failed();
        let provider = self.provider.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("outcometer-{operation}"))
            .spawn(move || {
                let _ = tx.send(run(provider));
            });
        let outcome = match spawned {
            Ok(_) => rx.recv_timeout(limit).ok(),
            Err(e) => Some(Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(
                e.to_string(),
            ))),
        };
        #[cfg(feature = "otlp")]
        if operation == Operation::Flush {
            self.cutoff.set(None);
        }
        let failures = self.health.failures_since(failed_before, &self.push_target);
        match outcome {
            Some(Ok(())) if failures.is_empty() => Ok(()),
            Some(Err(e)) if failures.is_empty() => Err(ExportError {
                operation,
                failures: vec![ExportFailure {
                    exporter: "metrics pipeline",
                    endpoint: String::new(),
                    cause: e.to_string(),
                }],
                gave_up_after: None,
                signals: "metrics",
            }),
            Some(_) => Err(ExportError {
                operation,
                failures,
                gave_up_after: None,
                signals: "metrics",
            }),
            None => Err(ExportError {
                operation,
                failures,
                gave_up_after: Some(limit),
                signals: "metrics",
            }),
        }
    }
}

/// The metrics outcome and the traces' failures as one error, naming the signals
/// that failed.
#[cfg(feature = "traces")]
fn merge(
    operation: Operation,
    metrics: Result<(), ExportError>,
    trace_failures: Vec<ExportFailure>,
    traces_gave_up: Option<std::time::Duration>,
) -> Result<(), ExportError> {
    let traces_failed = !trace_failures.is_empty() || traces_gave_up.is_some();
    match metrics {
        Ok(()) if !traces_failed => Ok(()),
        Ok(()) => Err(ExportError {
            operation,
            failures: trace_failures,
            gave_up_after: traces_gave_up,
            signals: "traces",
        }),
        Err(mut error) => {
            if traces_failed {
                error.failures.extend(trace_failures);
                error.gave_up_after = error.gave_up_after.or(traces_gave_up);
                error.signals = "metrics and traces";
            }
            Err(error)
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        #[cfg(feature = "prometheus")]
        drop(self.pull.1.take());
        if let Err(error) = self.shutdown_once() {
            crate::report::warn(&error.to_string());
        }
    }
}

/// A reader pushing through `exporter` every export interval.
fn push_reader<E: opentelemetry_sdk::metrics::exporter::PushMetricExporter>(
    exporter: E,
    config: &ResolvedConfig,
) -> Result<crate::push::PushReader<E>, SetupError> {
    crate::push::PushReader::start(exporter, config.export_interval).map_err(|source| SetupError::Runtime {
        what: "metrics push thread",
        source,
    })
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

/// Runs `f` on a thread of its own; the future completes with its result, on any
/// executor, without blocking it.
fn off_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> impl std::future::Future<Output = T> + Send + 'static {
    struct Slot<T> {
        value: Option<T>,
        waker: Option<std::task::Waker>,
    }
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
    }));
    let job = Arc::new(Mutex::new(Some(f)));
    let run = {
        let (slot, job) = (slot.clone(), job.clone());
        move || {
            let f = job.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(f) = f {
                let value = f();
                let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
                slot.value = Some(value);
                if let Some(waker) = slot.waker.take() {
                    waker.wake();
                }
            }
        }
    };
    if std::thread::Builder::new()
        .name("outcometer-shutdown".into())
        .spawn(run.clone())
        .is_err()
    {
        // No thread to be had: do it here rather than not at all.
        run();
    }
    std::future::poll_fn(move |cx| {
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.value.take() {
            Some(value) => std::task::Poll::Ready(value),
            None => {
                slot.waker = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
        }
    })
}
