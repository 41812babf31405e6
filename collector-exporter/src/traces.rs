//! Traces from the same configuration as metrics: a tracer provider whose batch
//! span processor pushes over our OTLP transports (or prints, or nothing), and
//! the `tracing-opentelemetry` layer an application adds to its subscriber so
//! its `tracing` spans and their events reach the same collector.
//!
//! The layer keeps tracing-opentelemetry's context activation on: while a
//! `tracing` span is entered, its OpenTelemetry context is the current one, which
//! is what code reading `opentelemetry::Context::map_current` (exemplars) needs.

use std::sync::Arc;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;

use crate::config::{ResolvedConfig, TraceSampler, TracesExporter};
use crate::error::{ExportFailure, Operation, SetupError};
use crate::otlp::ExportHealth;

/// The running tracer provider and what flush and shutdown need to report on it.
pub(crate) struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    health: Arc<ExportHealth>,
    /// The OTLP exporter's name and endpoint, for flush and shutdown errors.
    push_target: Option<(&'static str, String)>,
    #[cfg(feature = "otlp")]
    cutoff: Arc<crate::otlp::Cutoff>,
}

/// A flush or shutdown of the tracer provider running on a thread of its own.
pub(crate) struct Pending {
    rx: std::sync::mpsc::Receiver<opentelemetry_sdk::error::OTelSdkResult>,
    failed_before: u64,
}

fn sampler(s: TraceSampler) -> Sampler {
    match s {
        TraceSampler::AlwaysOn => Sampler::AlwaysOn,
        TraceSampler::AlwaysOff => Sampler::AlwaysOff,
        TraceSampler::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
        TraceSampler::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        TraceSampler::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        TraceSampler::ParentBasedTraceIdRatio(r) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
        }
    }
}

impl Traces {
    /// Starts the tracer provider `config.traces` describes; `None` when spans go nowhere.
    pub(crate) fn start(
        config: &ResolvedConfig,
        resource: &Resource,
        #[cfg(feature = "otlp")] runtime: &crate::otlp::SharedRuntime,
    ) -> Result<Option<Traces>, SetupError> {
        let traces = &config.traces;
        // Every value is set here, over what `BatchConfigBuilder::default()` read
        // from the process environment. The export timeout is not the SDK's to
        // enforce (0.33's thread-based processor does not): the OTLP exporter
        // bounds each export by it.
        let batch = BatchConfigBuilder::default()
            .with_scheduled_delay(traces.batch.schedule_delay)
            .with_max_queue_size(traces.batch.max_queue_size)
            .with_max_export_batch_size(traces.batch.max_export_batch_size)
            .build();
        let health = Arc::new(ExportHealth::default());
        #[cfg(feature = "otlp")]
        let cutoff = Arc::new(crate::otlp::Cutoff::default());
        let mut push_target = None;
        let builder = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_sampler(sampler(traces.sampler));
        let builder = match traces.exporter {
            TracesExporter::None => return Ok(None),
            TracesExporter::Console => builder.with_span_processor(
                BatchSpanProcessor::builder(ConsoleSpanExporter)
                    .with_batch_config(batch)
                    .build(),
            ),
            #[cfg(feature = "otlp")]
            TracesExporter::Otlp => {
                let otlp = traces.otlp.as_ref().expect("resolved with OTLP");
                let sender = crate::otlp::exporter_for(
                    crate::otlp::Signal::Traces,
                    otlp,
                    traces.batch.export_timeout,
                    health.clone(),
                    cutoff.clone(),
                    runtime,
                )?;
                let exporter = crate::otlp::traces::OtlpSpanExporter::new(sender, resource);
                // Failures name the signal: a gRPC endpoint is the same for both.
                let name = match exporter.name() {
                    "OTLP/gRPC" => "OTLP/gRPC traces",
                    _ => "OTLP/HTTP traces",
                };
                push_target = Some((name, crate::otlp::display_endpoint(&otlp.endpoint)));
                builder.with_span_processor(
                    BatchSpanProcessor::builder(exporter)
                        .with_batch_config(batch)
                        .build(),
                )
            }
            #[cfg(not(feature = "otlp"))]
            TracesExporter::Otlp => {
                let _ = (batch, &mut push_target);
                return Err(SetupError::FeatureDisabled {
                    what: "OTLP push of traces".into(),
                    feature: "otlp-grpc` or `otlp-http",
                });
            }
        };
        let provider = builder.build();
        let tracer = provider.tracer("outcometer-exporter");
        Ok(Some(Traces {
            provider,
            tracer,
            health,
            push_target,
            #[cfg(feature = "otlp")]
            cutoff,
        }))
    }

    pub(crate) fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    pub(crate) fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + 'static
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        use tracing_subscriber::Layer as _;
        // Context activation is tracing-opentelemetry's default; said here so no
        // one turns it off by accident (exemplars read the active span).
        tracing_opentelemetry::layer()
            .with_tracer(self.tracer.clone())
            .with_context_activation(true)
            .with_filter(NotSuppressed)
    }

    /// Starts `operation` on a thread of its own, its exports stopping a little
    /// before `limit` so that they report their own failure.
    pub(crate) fn begin(&self, operation: Operation, limit: std::time::Duration) -> Pending {
        #[cfg(feature = "otlp")]
        {
            let margin = (limit / 10).min(std::time::Duration::from_millis(250));
            self.cutoff.set(Some(crate::otlp::after(limit - margin)));
        }
        let failed_before = self.health.failed();
        let provider = self.provider.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("outcometer-traces-{operation}"))
            .spawn(move || {
                let result = match operation {
                    Operation::Flush => provider.force_flush(),
                    Operation::Shutdown => provider.shutdown_with_timeout(limit),
                };
                let _ = tx.send(result);
            });
        if let Err(e) = spawned {
            let (tx, rx2) = std::sync::mpsc::channel();
            let _ = tx.send(Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(
                e.to_string(),
            )));
            return Pending {
                rx: rx2,
                failed_before,
            };
        }
        Pending { rx, failed_before }
    }

    /// Waits for `pending` until `deadline`; the failures, and whether it gave up.
    pub(crate) fn finish(
        &self,
        operation: Operation,
        pending: Pending,
        deadline: std::time::Instant,
    ) -> (Vec<ExportFailure>, bool) {
        let outcome = pending
            .rx
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .ok();
        #[cfg(feature = "otlp")]
        if operation == Operation::Flush {
            self.cutoff.set(None);
        }
        #[cfg(not(feature = "otlp"))]
        let _ = operation;
        let mut failures = self
            .health
            .failures_since(pending.failed_before, &self.push_target);
        match outcome {
            // A second shutdown (the handle dropped after `shutdown`) is not a failure.
            Some(Ok(()) | Err(opentelemetry_sdk::error::OTelSdkError::AlreadyShutdown)) => (failures, false),
            Some(Err(e)) => {
                if failures.is_empty() {
                    failures.push(ExportFailure {
                        exporter: "traces pipeline",
                        endpoint: String::new(),
                        cause: e.to_string(),
                    });
                }
                (failures, false)
            }
            None => (failures, true),
        }
    }

    /// Spans exported and failed exports, for [`crate::Telemetry::trace_export_health`].
    pub(crate) fn health(&self) -> &ExportHealth {
        &self.health
    }
}

/// Leaves out spans and events begun where OpenTelemetry telemetry is suppressed:
/// the exporters' own threads (the batch span processor's, the OTLP runtime's).
/// The SDK's tracer already drops spans whose parent context is suppressed, but
/// tracing-opentelemetry gives an explicit root span (`parent: None`, as h2 opens
/// its `Connection` span) a fresh context, and everything under it was exported:
/// sending spans made more spans. Decided per span, never cached per callsite.
struct NotSuppressed;

impl<S> tracing_subscriber::layer::Filter<S> for NotSuppressed {
    fn enabled(&self, _: &tracing::Metadata<'_>, _: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        !opentelemetry::Context::is_current_telemetry_suppressed()
    }

    fn callsite_enabled(&self, _: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
}

/// `OTEL_TRACES_EXPORTER=console`: one line per span on stdout, for debugging.
#[derive(Debug)]
struct ConsoleSpanExporter;

impl opentelemetry_sdk::trace::SpanExporter for ConsoleSpanExporter {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        use std::fmt::Write as _;
        let mut out = String::new();
        for span in batch {
            let attrs: Vec<String> = span
                .attributes
                .iter()
                .map(|kv| format!("{}={}", kv.key, kv.value))
                .collect();
            let took = span.end_time.duration_since(span.start_time).unwrap_or_default();
            let _ = writeln!(
                out,
                "span {} trace={} span={} parent={} {took:?} {{{}}} events={}",
                span.name,
                span.span_context.trace_id(),
                span.span_context.span_id(),
                span.parent_span_id,
                attrs.join(","),
                span.events.len(),
            );
        }
        print!("{out}");
        Ok(())
    }
}
