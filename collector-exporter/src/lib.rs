//! # outcometer-exporter
//!
//! The OpenTelemetry pipeline for [`outcometer`]: OTLP push (gRPC or HTTP/protobuf)
//! and a Prometheus pull endpoint, alone or both on one provider, configured in
//! code or by the standard `OTEL_*` variables (code > signal-specific variable >
//! generic variable > default; see `docs/configuration.md`).
//!
//! ```no_run
//! use outcometer::IdempotencyRecorder;
//! use outcometer_exporter::{ExporterKind, Telemetry};
//!
//! let telemetry = Telemetry::builder()
//!     .service_name("checkout")
//!     .namespace("checkout")
//!     .exporters([ExporterKind::Otlp, ExporterKind::Prometheus])
//!     .build()?;
//! let idempotency = IdempotencyRecorder::builder().build(&telemetry.backend())?;
//! // … record …
//! telemetry.shutdown()?; // flushes the last interval
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod config;
mod console;
pub mod error;
#[cfg(feature = "prometheus")]
pub mod exposition;
pub mod otlp;
mod pipeline;
#[cfg(feature = "prometheus")]
pub mod prometheus;
mod push;
mod report;
#[cfg(feature = "signal")]
mod signal;
#[cfg(feature = "prometheus")]
pub mod stats;
#[cfg(feature = "traces")]
mod traces;
mod views;

pub use config::{
    ConfigWarning, ExporterKind, Origin, OtlpConfig, OtlpProtocol, ResolvedConfig, SpanBatch,
    TelemetryBuilder, TemporalityPreference, TraceSampler, TracesConfig, TracesExporter,
};
pub use error::{ExportError, ExportFailure, Operation, SetupError};
pub use otlp::ExportHealth;
pub use pipeline::Telemetry;
#[cfg(feature = "signal")]
pub use signal::{shutdown_signal, wait_for_shutdown_signal, ShutdownSignal, Signal};
