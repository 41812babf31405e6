//! # outcometer
//!
//! OpenTelemetry instruments for the reliability machinery of a service —
//! idempotency keys, webhook and event delivery — whose attributes have a
//! **bounded, documented, tested cardinality**.
//!
//! Every attribute value comes from a finite domain: outcomes and age buckets are
//! closed sets, and open inputs (user ids, endpoint URLs, status codes) pass a
//! bounding policy first. So each instrument's worst-case series count is known at
//! start-up ([`instrument::InstrumentDef::series_bound`]), and recording is an index
//! computation plus an atomic add: no allocation, no lock, no hashing of attribute
//! sets, no panic, no error to handle.
//!
//! ```
//! use std::time::Duration;
//! use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
//! use outcometer::otel::OtelBackend;
//! use outcometer::{DeliveryRecorder, EventMetrics, IdempotencyMetrics, IdempotencyRecorder};
//!
//! // Any MeterProvider works; `outcometer-exporter` builds one with OTLP and Prometheus.
//! let exporter = InMemoryMetricExporter::default();
//! let provider = SdkMeterProvider::builder()
//!     .with_reader(PeriodicReader::builder(exporter.clone()).build())
//!     .build();
//! let backend = OtelBackend::from_provider(&provider);
//!
//! let idempotency = IdempotencyRecorder::builder().namespace("wildside").build(&backend)?;
//! let scope = idempotency.scope("user-42"); // SHA-256 → 8 hex, label keeps a 1-char prefix
//! idempotency.record_miss(scope);
//! idempotency.record_hit(scope, Duration::from_secs(90)); // age_bucket="1-5m"
//!
//! let delivery = DeliveryRecorder::builder().namespace("wildside").build(&backend)?;
//! let _active = delivery.track_active_task();
//! delivery.record_delivery_failure("https://hooks.example.com/x?token=secret", 503, Duration::from_millis(80));
//!
//! provider.force_flush()?;
//! let names: Vec<String> = exporter.get_finished_metrics()?[0].scope_metrics()
//!     .flat_map(|s| s.metrics().map(|m| m.name().to_owned())).collect();
//! assert!(names.contains(&"wildside.idempotency.requests".to_owned()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! See `docs/metrics.md` for every instrument, its attributes and bounds.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod attr;
pub mod catalog;
pub mod delivery;
pub mod error;
pub mod idempotency;
pub mod instrument;
#[cfg(feature = "otel")]
pub mod otel;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use attr::age::{key_age, AgeBucket, Clock, ManualClock, SystemClock};
pub use attr::delivery_result::{DeliveryOutcome, DeliveryResult};
pub use attr::endpoint::EndpointPolicy;
pub use attr::error_kind::ErrorKind;
pub use attr::user_scope::{ScopeHasher, UserScope};
pub use delivery::{
    ActiveTaskGuard, DeliveryRecorder, DeliveryRecorderBuilder, Endpoint, EventMetrics, NoopEventMetrics,
};
pub use error::ConfigError;
pub use idempotency::{
    IdempotencyMetrics, IdempotencyOutcome, IdempotencyRecorder, IdempotencyRecorderBuilder,
    NoopIdempotencyMetrics, StoreOperation,
};
