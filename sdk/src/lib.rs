//! # outcometer
//!
//! OpenTelemetry instruments for the reliability machinery of a service —
//! idempotency keys, webhook and event delivery, and event pipelines (event
//! processing, actions, job queues, caches, deduplication, checkpoints) — whose
//! attributes have a **bounded, documented, tested cardinality**.
//!
//! Every attribute value comes from a finite domain: outcomes and age buckets are
//! closed sets, and open inputs (user ids, endpoint URLs, status codes) pass a
//! bounding policy first. So each instrument's worst-case series count is known at
//! start-up ([`toolkit::InstrumentDef::series_bound`]), and recording is an index
//! computation plus an atomic add: no allocation, no lock, no hashing of attribute
//! sets, no panic, no error to handle.
//!
//! The API comes in tiers. The crate root holds what services call: recorders,
//! their ports (traits to depend on, with no-op implementations) and the domain
//! values passed to them; [`prelude`] imports the ports. [`toolkit`] holds what
//! family authors build with: instrument specs, typed cells, dimensions, bounded
//! admission, the [`Family`](toolkit::Family) trait and the [`port!`] macro.
//! [`otel`] exports through any OpenTelemetry `MeterProvider`.
//!
//! ```
//! use std::time::Duration;
//! use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
//! use outcometer::otel::OtelBackend;
//! use outcometer::prelude::*;
//! use outcometer::{DeliveryRecorder, IdempotencyRecorder};
//!
//! // Any MeterProvider works; `outcometer-exporter` builds one with OTLP and Prometheus.
//! let exporter = InMemoryMetricExporter::default();
//! let provider = SdkMeterProvider::builder()
//!     .with_reader(PeriodicReader::builder(exporter.clone()).build())
//!     .build();
//! let backend = OtelBackend::from_provider(&provider).namespace("wildside")?;
//!
//! let idempotency = IdempotencyRecorder::builder().build(&backend)?;
//! let scope = idempotency.scope("user-42"); // SHA-256 → 8 hex, label keeps a 1-char prefix
//! idempotency.record_miss(scope);
//! idempotency.record_hit(scope, Duration::from_secs(90)); // age_bucket="1-5m"
//!
//! let delivery = DeliveryRecorder::builder().build(&backend)?;
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
//!
//! With the `tracing` feature, every outcome record also emits a `DEBUG` event
//! under target `outcometer::<family>` in the current span, carrying the detail
//! metrics drop (full user scope, endpoint path, attempt, raw names): see
//! [`detail`] and `docs/tracing.md`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub(crate) mod actions;
pub(crate) mod attr;
pub(crate) mod backend;
pub(crate) mod cache;
pub mod catalog;
pub(crate) mod cells;
pub(crate) mod checkpoint;
pub(crate) mod dedup;
pub(crate) mod delivery;
pub mod detail;
pub(crate) mod error;
pub(crate) mod events;
pub(crate) mod histogram;
pub(crate) mod idempotency;
pub(crate) mod instrument;
#[cfg(feature = "otel")]
pub mod otel;
pub mod port;
pub(crate) mod queue;
pub(crate) mod registry;
pub(crate) mod settings;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(feature = "tower")]
pub use actions::ActionService;
#[cfg(feature = "tokio")]
pub use actions::TokioDeadline;
pub use actions::{
    ActionConfig, ActionExecutor, ActionFuture, ActionMetrics, ActionName, ActionOutcome, ActionRecorder,
    ActionRecorderBuilder, ClassifyOk, DeadlineExceeded, DeadlineTimer, NoDeadline, NoopActionMetrics,
    OkIsSuccess, StartDeadline, Until,
};
pub use attr::admission::AdmissionPolicy;
pub use attr::age::{key_age, AgeBucket, Clock, ManualClock, SystemClock};
pub use attr::delivery_result::{DeliveryOutcome, DeliveryResult};
pub use attr::error_kind::ErrorKind;
pub use attr::user_scope::{ScopeHasher, ScopeHex, UserScope};
pub use cache::{
    Cache, CacheConfig, CacheMetrics, CacheRecorder, CacheRecorderBuilder, CacheResult, EvictionCause,
    NoopCacheMetrics,
};
pub use cells::InFlightGuard;
pub use checkpoint::{
    CheckpointConfig, CheckpointMetrics, CheckpointOutcome, CheckpointRecorder, CheckpointRecorderBuilder,
    NoopCheckpointMetrics, RecoveryResult,
};
pub use dedup::{
    DedupConfig, DedupMetrics, DedupRecorder, DedupRecorderBuilder, DedupResult, NoopDedupMetrics,
};
pub use delivery::{
    ActiveTaskGuard, DeliveryConfig, DeliveryMetrics, DeliveryRecorder, DeliveryRecorderBuilder, Endpoint,
    EventMetrics, NoopDeliveryMetrics, NoopEventMetrics,
};
pub use error::ConfigError;
pub use events::{
    EventOutcome, EventProcessingConfig, EventProcessingMetrics, EventProcessingRecorder,
    EventProcessingRecorderBuilder, NoopEventProcessingMetrics,
};
pub use idempotency::{
    IdempotencyConfig, IdempotencyMetrics, IdempotencyOutcome, IdempotencyRecorder,
    IdempotencyRecorderBuilder, KeyReuse, NoopIdempotencyMetrics, StoreOperation,
};
pub use queue::{
    NoopQueueMetrics, Queue, QueueConfig, QueueMetrics, QueueOutcome, QueueRecorder, QueueRecorderBuilder,
};

/// The ports, to `use outcometer::prelude::*` where recording happens.
pub mod prelude {
    pub use crate::{
        ActionMetrics, CacheMetrics, CheckpointMetrics, DedupMetrics, DeliveryMetrics,
        EventProcessingMetrics, GatewayMetrics, IdempotencyMetrics, QueueMetrics,
    };
}

pub mod toolkit {
    //! Building blocks for family authors: everything a new family file uses.
    //!
    //! A family declares static [`InstrumentSpec`]s, builds them with
    //! [`FamilyBuilder`] over [`Dimension`]s (closed sets via [`closed`], open names
    //! via [`Admission`]), keeps the typed handles ([`Counter`], [`Gauge`], …), and
    //! implements [`Family`]; a port trait comes from [`port!`](crate::port!). See
    //! `examples/src/bin/custom_family.rs` and "Adding a family" in `docs/architecture.md`.
    pub use crate::actions::{
        DEFAULT_ADMITTED_ACTIONS, DURATION_BOUNDARIES_SECONDS as ACTIONS_DURATION_BOUNDARIES_SECONDS,
    };
    pub use crate::attr::admission::{
        Admission, AdmissionPolicy, Admitted, AdmittedDimension, Names, Normaliser, MAX_ADMITTED,
        MAX_VALUE_LEN,
    };
    pub use crate::attr::age::AGE_BUCKET_EDGES_SECONDS;
    pub use crate::attr::delivery_result::{DeliveryResultDimension, DELIVERY_RESULT_CARDINALITY};
    pub use crate::attr::endpoint::{host_of, Hosts, DEFAULT_ADMITTED_HOSTS};
    pub use crate::attr::status::{status_index, REGISTERED_STATUS_CODES};
    pub use crate::attr::user_scope::{
        ScopeCoord, ScopePrefixLen, UserScopeDimension, DEFAULT_ADMITTED_SCOPES,
    };
    pub use crate::attr::{
        closed, AttrValue, Attribute, AttributeDoc, ClosedSet, Dimension, EnumDimension, OTHER,
    };
    pub use crate::backend::{Backend, Detached};
    pub use crate::cache::DEFAULT_ADMITTED_CACHES;
    pub use crate::cells::{
        Counter, FloatGauge, Gauge, Histogram, HistogramSink, InFlightGuard, UpDownCounter,
    };
    pub use crate::checkpoint::SAVE_DURATION_BOUNDARIES_SECONDS as CHECKPOINT_SAVE_DURATION_BOUNDARIES_SECONDS;
    pub use crate::delivery::DURATION_BOUNDARIES_SECONDS as DELIVERY_DURATION_BOUNDARIES_SECONDS;
    pub use crate::events::DURATION_BOUNDARIES_SECONDS as EVENTS_DURATION_BOUNDARIES_SECONDS;
    pub use crate::histogram::{Exemplar, HistogramCells, SpanIds, SpanSource};
    pub use crate::idempotency::REQUEST_DURATION_BOUNDARIES_SECONDS as IDEMPOTENCY_REQUEST_DURATION_BOUNDARIES_SECONDS;
    pub use crate::instrument::{
        Coordinate, Coords, InstrumentDef, InstrumentKind, InstrumentSpec, Namespace, Series, Strides,
        MAX_DIMENSIONS, MAX_NAMESPACE_LEN, MAX_SERIES_PER_INSTRUMENT,
    };
    pub use crate::queue::{
        DEFAULT_ADMITTED_QUEUES, WAIT_BOUNDARIES_SECONDS as QUEUE_WAIT_BOUNDARIES_SECONDS,
    };
    pub use crate::registry::{
        build, AnyInstrument, Family, FamilyBuilder, RegisteredFamily, Registry, ATTRIBUTE_OVERFLOW,
    };
}

pub(crate) mod gateway;
pub use attr::status::{HttpStatus, StatusTextDimension};
pub use gateway::{
    Backend, BackendSummary, Fleet, FleetReport, GatewayConfig, GatewayError, GatewayMetrics,
    GatewayRecorder, GatewayRecorderBuilder, GatewaySummary, Model, ModelSummary, NoopGatewayMetrics,
    TokenType, Usage,
};
