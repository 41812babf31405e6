//! Delivery outcomes (webhook and event delivery) and their recorder.
//!
//! Every attempt counts once in `delivery.attempts` and also records its duration,
//! under its `outcome`: a timeout that took 10 s is exactly the latency an
//! operator must see, and success-only percentiles hide it. Filter on
//! `outcome="success"` for the latency of successful deliveries alone.

use std::sync::Arc;
use std::time::Duration;

use crate::attr::admission::{Admission, AdmissionPolicy, Admitted, AdmittedDimension};
use crate::attr::delivery_result::{DeliveryOutcome, DeliveryResult, DeliveryResultDimension};
use crate::attr::endpoint::{host_of, url_path_of, Hosts, DEFAULT_ADMITTED_HOSTS};
use crate::attr::error_kind::ErrorKind;
use crate::attr::{closed, Dimension};
use crate::backend::Backend;
use crate::cells::{Counter, Histogram, UpDownCounter};
use crate::detail::outcome_event;
use crate::error::ConfigError;
use crate::instrument::{Coordinate, InstrumentSpec};
use crate::registry::{self, Family, FamilyBuilder};

crate::port! {
    /// The delivery metrics port: what a webhook or event deliverer records through.
    ///
    /// A *port* is the trait application code depends on, so tests and disabled
    /// builds can pass [`NoopDeliveryMetrics`] instead of the recorder. It is
    /// synchronous: recording cannot fail and never waits.
    pub trait DeliveryMetrics {
        /// The endpoint accepted the event after `duration`.
        fn record_delivery_success(&self, endpoint_url: &str, duration: Duration);
        /// The endpoint answered `status_code`, counted as a failure, after `duration`.
        fn record_delivery_failure(&self, endpoint_url: &str, status_code: u16, duration: Duration);
        /// No HTTP response, for `kind`, after `duration`.
        fn record_delivery_error(&self, endpoint_url: &str, kind: ErrorKind, duration: Duration);
        /// An attempt is about to be retried.
        fn record_retry(&self, endpoint_url: &str);
        /// An event gave up and went to the dead-letter store.
        fn record_dead_letter(&self, endpoint_url: &str);
        /// One more delivery task is running.
        fn increment_active_tasks(&self);
        /// One delivery task finished.
        fn decrement_active_tasks(&self);
        forwarded {
            /// The `attempt`-th try (the first is 1) at `endpoint_url` ended with
            /// `result` after `duration`; `status` is the HTTP status of the answer
            /// if there was one (a success's 2xx too). The metrics are those of the
            /// `record_delivery_…` methods; the recorder also puts the attempt and
            /// status on its trace event (feature `tracing`), which the default
            /// body, for implementations written before it, drops.
            fn record_attempt(
                &self,
                endpoint_url: &str,
                attempt: u32,
                status: Option<u16>,
                result: DeliveryResult,
                duration: Duration
            ) {
                let _ = (attempt, status);
                match result {
                    DeliveryResult::Success => self.record_delivery_success(endpoint_url, duration),
                    DeliveryResult::Failure(code) => self.record_delivery_failure(endpoint_url, code, duration),
                    DeliveryResult::Error(kind) => self.record_delivery_error(endpoint_url, kind, duration),
                }
            }
        }
        provided {
            /// Counts a running task until the guard drops: on return, `?`, or a
            /// panic unwinding. The guard owns a clone of `self` (for a recorder,
            /// a few reference counts), so it is `'static` when `Self` is and
            /// moves into `tokio::spawn`.
            fn track_active_task(&self) -> ActiveTaskGuard<Self>
            where
                Self: Sized + Clone,
            {
                ActiveTaskGuard::new(self.clone())
            }
        }
    }
    /// Records nothing, at no cost.
    noop NoopDeliveryMetrics;
}

/// The delivery port under its earlier name.
pub use DeliveryMetrics as EventMetrics;
/// The no-op delivery port under its earlier name.
pub type NoopEventMetrics = NoopDeliveryMetrics;

/// Decrements the active-task count when dropped, including during unwinding.
#[must_use = "the task counts as active only while the guard is alive"]
#[derive(Debug)]
pub struct ActiveTaskGuard<M: DeliveryMetrics> {
    metrics: M,
}

impl<M: DeliveryMetrics> ActiveTaskGuard<M> {
    /// Increments the active-task count; the guard's drop decrements it.
    pub fn new(metrics: M) -> Self {
        metrics.increment_active_tasks();
        ActiveTaskGuard { metrics }
    }
}

impl<M: DeliveryMetrics> Drop for ActiveTaskGuard<M> {
    fn drop(&mut self) {
        self.metrics.decrement_active_tasks();
    }
}

/// Bucket boundaries of `delivery.duration`: the semantic conventions' HTTP
/// duration advice, a superset of the common `[0.1, 0.5, 1, 2.5, 5, 10]`.
pub const DURATION_BOUNDARIES_SECONDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

static ATTEMPTS: InstrumentSpec = InstrumentSpec::counter(
    "delivery.attempts",
    "{attempt}",
    "Delivery attempts by result and destination host.",
);
static DURATION: InstrumentSpec = InstrumentSpec::histogram(
    "delivery.duration",
    "s",
    "Duration of delivery attempts, every outcome included.",
    &DURATION_BOUNDARIES_SECONDS,
);
static ACTIVE_TASKS: InstrumentSpec =
    InstrumentSpec::up_down_counter("delivery.active_tasks", "{task}", "Delivery tasks running now.");
static RETRIES: InstrumentSpec = InstrumentSpec::counter(
    "delivery.retries",
    "{retry}",
    "Delivery attempts scheduled again after a failure or error.",
);
static DEAD_LETTERS: InstrumentSpec = InstrumentSpec::counter(
    "delivery.dead_letters",
    "{event}",
    "Events that exhausted their retries and were dead-lettered.",
);

/// A pre-resolved destination: the `server.address` coordinate of an endpoint URL.
/// Resolve once per subscription with [`DeliveryRecorder::endpoint`] and record
/// with the `…_at` methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint(Admitted);

impl Coordinate for Endpoint {
    #[inline]
    fn coordinate(self) -> usize {
        self.0.coordinate()
    }
}

/// What a delivery family is built with.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryConfig {
    /// Which endpoint hosts become `server.address` values.
    pub endpoints: AdmissionPolicy,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            endpoints: AdmissionPolicy::first_k(DEFAULT_ADMITTED_HOSTS),
        }
    }
}

/// Builds a [`DeliveryRecorder`].
#[derive(Clone, Debug, Default)]
pub struct DeliveryRecorderBuilder {
    config: DeliveryConfig,
}

impl DeliveryRecorderBuilder {
    /// How endpoint hosts become `server.address` values (default: the first 20
    /// hosts seen; an allow-list, or both).
    pub fn endpoints(mut self, policy: AdmissionPolicy) -> Self {
        self.config.endpoints = policy;
        self
    }

    /// Validates the configuration and creates the instruments on `backend`, or
    /// returns a recorder sharing the cells of the one already built there.
    pub fn build(self, backend: &(impl Backend + ?Sized)) -> Result<DeliveryRecorder, ConfigError> {
        registry::build::<DeliveryRecorder>(backend, self.config)
    }
}

/// The delivery recorder: pre-indexed instruments on any [`Backend`].
///
/// Clones are cheap and share cells; so do recorders built twice on one backend.
#[derive(Clone, Debug)]
pub struct DeliveryRecorder {
    hosts: Arc<Admission>,
    attempts: Counter<(DeliveryResult, Endpoint)>,
    duration: Histogram<(DeliveryOutcome, Endpoint)>,
    active_tasks: UpDownCounter<()>,
    retries: Counter<Endpoint>,
    dead_letters: Counter<Endpoint>,
}

impl Family for DeliveryRecorder {
    const NAME: &'static str = "delivery";
    type Config = DeliveryConfig;

    fn build(config: &DeliveryConfig, family: &mut FamilyBuilder<'_>) -> Result<Self, ConfigError> {
        let hosts = Arc::new(Admission::new("server.address", &config.endpoints, Hosts)?);
        let host = || -> Arc<dyn Dimension> { Arc::new(AdmittedDimension(hosts.clone())) };
        Ok(DeliveryRecorder {
            attempts: family.counter(&ATTEMPTS, vec![Arc::new(DeliveryResultDimension), host()])?,
            duration: family.histogram(&DURATION, vec![closed::<DeliveryOutcome>(), host()])?,
            active_tasks: family.up_down_counter(&ACTIVE_TASKS, vec![])?,
            retries: family.counter(&RETRIES, vec![host()])?,
            dead_letters: family.counter(&DEAD_LETTERS, vec![host()])?,
            hosts,
        })
    }
}

impl DeliveryRecorder {
    /// A builder with the defaults: first 20 hosts.
    pub fn builder() -> DeliveryRecorderBuilder {
        DeliveryRecorderBuilder::default()
    }

    /// Resolves `endpoint_url` to its `server.address` value (admitting its host if
    /// the policy allows). Unparseable URLs resolve to `_OTHER`.
    pub fn endpoint(&self, endpoint_url: &str) -> Endpoint {
        Endpoint(self.hosts.resolve(endpoint_url))
    }

    /// Records one attempt at a pre-resolved endpoint: the fast path. Its trace
    /// event carries the admitted host only; [`record_attempt`](DeliveryMetrics::record_attempt)
    /// also carries the path, attempt and status.
    #[inline]
    pub fn record_result(&self, endpoint: Endpoint, result: DeliveryResult, duration: Duration) {
        self.count(endpoint, result, duration);
        outcome_event!(
            "delivery",
            "delivery attempt",
            server.address = self.hosts.value(endpoint.0.index()),
            http.response.status_code = failure_status(result),
            error.type = error_type(result),
            outcometer.outcome = result.outcome().as_str(),
            outcometer.duration_s = duration.as_secs_f64(),
        );
    }

    #[inline]
    fn count(&self, endpoint: Endpoint, result: DeliveryResult, duration: Duration) {
        self.attempts.add((result, endpoint), 1);
        self.duration
            .record((result.outcome(), endpoint), duration.as_secs_f64());
    }

    /// One attempt at `url`, counted and put on a trace event with the URL's
    /// host and path (never its userinfo, query or fragment).
    fn record_url(
        &self,
        url: &str,
        attempt: Option<u32>,
        status: Option<u16>,
        result: DeliveryResult,
        duration: Duration,
    ) {
        self.count(self.endpoint(url), result, duration);
        outcome_event!(
            "delivery",
            "delivery attempt",
            server.address = host_of(url),
            url.path = url_path_of(url),
            http.response.status_code = status.or(failure_status(result)),
            // Semantic conventions: set on resends only (attempt 2 is resend 1).
            http.request.resend_count = attempt.filter(|&a| a > 1).map(|a| a - 1),
            error.type = error_type(result),
            outcometer.outcome = result.outcome().as_str(),
            outcometer.duration_s = duration.as_secs_f64(),
        );
    }

    /// An attempt at a pre-resolved endpoint is about to be retried.
    #[inline]
    pub fn record_retry_at(&self, endpoint: Endpoint) {
        self.retries.add(endpoint, 1);
        outcome_event!(
            "delivery",
            "delivery retry",
            server.address = self.hosts.value(endpoint.0.index()),
        );
    }

    /// An event for a pre-resolved endpoint was dead-lettered.
    #[inline]
    pub fn record_dead_letter_at(&self, endpoint: Endpoint) {
        self.dead_letters.add(endpoint, 1);
        outcome_event!(
            "delivery",
            "delivery dead letter",
            server.address = self.hosts.value(endpoint.0.index()),
        );
    }

    fn attempts_where(&self, keep: impl Fn(usize) -> bool) -> u64 {
        let endpoints = self.hosts.capacity() + 1;
        self.attempts
            .values()
            .filter(|(series, _)| keep(series / endpoints))
            .map(|(_, v)| v)
            .sum()
    }

    /// Attempts that succeeded, over all endpoints.
    pub fn success_count(&self) -> u64 {
        self.attempts_where(|result| result == DeliveryResult::Success.index())
    }

    /// Attempts answered with a failure status, over all endpoints.
    pub fn failure_count(&self) -> u64 {
        let errors_start = DeliveryResult::Error(ErrorKind::ALL[0]).index();
        self.attempts_where(|result| result > 0 && result < errors_start)
    }

    /// Attempts that got no response, over all endpoints.
    pub fn error_count(&self) -> u64 {
        let errors_start = DeliveryResult::Error(ErrorKind::ALL[0]).index();
        self.attempts_where(|result| result >= errors_start)
    }

    /// Attempts with exactly `result`, over all endpoints.
    pub fn attempt_count(&self, result: DeliveryResult) -> u64 {
        self.attempts_where(|r| r == result.index())
    }

    /// Delivery tasks running now.
    pub fn active_task_count(&self) -> i64 {
        self.active_tasks.value(())
    }

    /// Retries over all endpoints.
    pub fn retry_count(&self) -> u64 {
        self.retries.total()
    }

    /// Dead letters over all endpoints.
    pub fn dead_letter_count(&self) -> u64 {
        self.dead_letters.total()
    }
}

/// The status a failure carries, for the trace event.
#[inline]
fn failure_status(result: DeliveryResult) -> Option<u16> {
    match result {
        DeliveryResult::Failure(code) => Some(code),
        _ => None,
    }
}

/// The `error.type` of an attempt without a response, for the trace event.
#[inline]
fn error_type(result: DeliveryResult) -> Option<&'static str> {
    match result {
        DeliveryResult::Error(kind) => Some(kind.as_str()),
        _ => None,
    }
}

impl DeliveryMetrics for DeliveryRecorder {
    fn record_delivery_success(&self, endpoint_url: &str, duration: Duration) {
        self.record_url(endpoint_url, None, None, DeliveryResult::Success, duration);
    }
    fn record_delivery_failure(&self, endpoint_url: &str, status_code: u16, duration: Duration) {
        let result = DeliveryResult::Failure(status_code);
        self.record_url(endpoint_url, None, None, result, duration);
    }
    fn record_delivery_error(&self, endpoint_url: &str, kind: ErrorKind, duration: Duration) {
        let result = DeliveryResult::Error(kind);
        self.record_url(endpoint_url, None, None, result, duration);
    }
    fn record_attempt(
        &self,
        endpoint_url: &str,
        attempt: u32,
        status: Option<u16>,
        result: DeliveryResult,
        duration: Duration,
    ) {
        self.record_url(endpoint_url, Some(attempt), status, result, duration);
    }
    fn record_retry(&self, endpoint_url: &str) {
        self.retries.add(self.endpoint(endpoint_url), 1);
        outcome_event!(
            "delivery",
            "delivery retry",
            server.address = host_of(endpoint_url),
            url.path = url_path_of(endpoint_url),
        );
    }
    fn record_dead_letter(&self, endpoint_url: &str) {
        self.dead_letters.add(self.endpoint(endpoint_url), 1);
        outcome_event!(
            "delivery",
            "delivery dead letter",
            server.address = host_of(endpoint_url),
            url.path = url_path_of(endpoint_url),
        );
    }
    fn increment_active_tasks(&self) {
        self.active_tasks.add((), 1);
    }
    fn decrement_active_tasks(&self) {
        self.active_tasks.add((), -1);
    }
}
