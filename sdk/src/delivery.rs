//! Delivery outcomes (seed 001: webhook and event delivery) and their recorder.
//!
//! Every attempt counts once in `delivery.attempts` and — unlike the seed, which
//! timed successes only — records its duration too, under its `outcome`: a
//! timeout that took 10 s is exactly the latency an operator must see, and
//! success-only percentiles hide it. Filter on `outcome="success"` for the seed's view.

use std::sync::Arc;
use std::time::Duration;

use crate::attr::delivery_result::{DeliveryOutcome, DeliveryResult, DeliveryResultDimension};
use crate::attr::endpoint::{EndpointAdmission, EndpointDimension, EndpointPolicy};
use crate::attr::error_kind::ErrorKind;
use crate::attr::{ClosedSet, EnumDimension};
use crate::error::ConfigError;
use crate::instrument::{
    Backend, Counter, Histogram, InstrumentDef, InstrumentKind, InstrumentSpec, Namespace, UpDownCounter,
};

/// The delivery metrics port (seed 001's `EventMetrics`), synchronous.
pub trait EventMetrics: Send + Sync {
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

    /// Counts a running task until the guard drops — on return, `?`, or a panic unwinding.
    fn track_active_task(&self) -> ActiveTaskGuard<&Self>
    where
        Self: Sized,
    {
        ActiveTaskGuard::new(self)
    }
}

macro_rules! forward_event_metrics {
    ($($ty:ty),+) => {$(
        impl<T: EventMetrics + ?Sized> EventMetrics for $ty {
            fn record_delivery_success(&self, endpoint_url: &str, duration: Duration) {
                (**self).record_delivery_success(endpoint_url, duration)
            }
            fn record_delivery_failure(&self, endpoint_url: &str, status_code: u16, duration: Duration) {
                (**self).record_delivery_failure(endpoint_url, status_code, duration)
            }
            fn record_delivery_error(&self, endpoint_url: &str, kind: ErrorKind, duration: Duration) {
                (**self).record_delivery_error(endpoint_url, kind, duration)
            }
            fn record_retry(&self, endpoint_url: &str) {
                (**self).record_retry(endpoint_url)
            }
            fn record_dead_letter(&self, endpoint_url: &str) {
                (**self).record_dead_letter(endpoint_url)
            }
            fn increment_active_tasks(&self) {
                (**self).increment_active_tasks()
            }
            fn decrement_active_tasks(&self) {
                (**self).decrement_active_tasks()
            }
        }
    )+};
}
forward_event_metrics!(&T, Arc<T>, Box<T>);

impl<T: EventMetrics> EventMetrics for Option<T> {
    fn record_delivery_success(&self, endpoint_url: &str, duration: Duration) {
        if let Some(m) = self {
            m.record_delivery_success(endpoint_url, duration)
        }
    }
    fn record_delivery_failure(&self, endpoint_url: &str, status_code: u16, duration: Duration) {
        if let Some(m) = self {
            m.record_delivery_failure(endpoint_url, status_code, duration)
        }
    }
    fn record_delivery_error(&self, endpoint_url: &str, kind: ErrorKind, duration: Duration) {
        if let Some(m) = self {
            m.record_delivery_error(endpoint_url, kind, duration)
        }
    }
    fn record_retry(&self, endpoint_url: &str) {
        if let Some(m) = self {
            m.record_retry(endpoint_url)
        }
    }
    fn record_dead_letter(&self, endpoint_url: &str) {
        if let Some(m) = self {
            m.record_dead_letter(endpoint_url)
        }
    }
    fn increment_active_tasks(&self) {
        if let Some(m) = self {
            m.increment_active_tasks()
        }
    }
    fn decrement_active_tasks(&self) {
        if let Some(m) = self {
            m.decrement_active_tasks()
        }
    }
}

/// Decrements the active-task count when dropped, including during unwinding.
#[must_use = "the task counts as active only while the guard is alive"]
#[derive(Debug)]
pub struct ActiveTaskGuard<M: EventMetrics> {
    metrics: M,
}

impl<M: EventMetrics> ActiveTaskGuard<M> {
    /// Increments the active-task count; the guard's drop decrements it.
    pub fn new(metrics: M) -> Self {
        metrics.increment_active_tasks();
        ActiveTaskGuard { metrics }
    }
}

impl<M: EventMetrics> Drop for ActiveTaskGuard<M> {
    fn drop(&mut self) {
        self.metrics.decrement_active_tasks();
    }
}

/// Records nothing, at no cost.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopEventMetrics;

impl EventMetrics for NoopEventMetrics {
    fn record_delivery_success(&self, _: &str, _: Duration) {}
    fn record_delivery_failure(&self, _: &str, _: u16, _: Duration) {}
    fn record_delivery_error(&self, _: &str, _: ErrorKind, _: Duration) {}
    fn record_retry(&self, _: &str) {}
    fn record_dead_letter(&self, _: &str) {}
    fn increment_active_tasks(&self) {}
    fn decrement_active_tasks(&self) {}
}

/// Bucket boundaries of `delivery.duration`: the semantic conventions' HTTP
/// duration advice, a superset of seed 001's `[0.1, 0.5, 1, 2.5, 5, 10]`.
pub const DURATION_BOUNDARIES_SECONDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// `delivery.attempts`.
pub static ATTEMPTS: InstrumentSpec = InstrumentSpec {
    name: "delivery.attempts",
    kind: InstrumentKind::Counter,
    unit: "{attempt}",
    description: "Delivery attempts by result and destination host.",
    boundaries: &[],
};

/// `delivery.duration`.
pub static DURATION: InstrumentSpec = InstrumentSpec {
    name: "delivery.duration",
    kind: InstrumentKind::Histogram,
    unit: "s",
    description: "Duration of delivery attempts, every outcome included.",
    boundaries: &DURATION_BOUNDARIES_SECONDS,
};

/// `delivery.active_tasks`.
pub static ACTIVE_TASKS: InstrumentSpec = InstrumentSpec {
    name: "delivery.active_tasks",
    kind: InstrumentKind::UpDownCounter,
    unit: "{task}",
    description: "Delivery tasks running now.",
    boundaries: &[],
};

/// `delivery.retries`.
pub static RETRIES: InstrumentSpec = InstrumentSpec {
    name: "delivery.retries",
    kind: InstrumentKind::Counter,
    unit: "{retry}",
    description: "Delivery attempts scheduled again after a failure or error.",
    boundaries: &[],
};

/// `delivery.dead_letters`.
pub static DEAD_LETTERS: InstrumentSpec = InstrumentSpec {
    name: "delivery.dead_letters",
    kind: InstrumentKind::Counter,
    unit: "{event}",
    description: "Events that exhausted their retries and were dead-lettered.",
    boundaries: &[],
};

/// A pre-resolved destination: the `server.address` index of an endpoint URL.
/// Resolve once per subscription and record with [`DeliveryRecorder::record_result`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint(usize);

/// Builds a [`DeliveryRecorder`].
#[derive(Clone, Debug, Default)]
pub struct DeliveryRecorderBuilder {
    namespace: String,
    endpoints: EndpointPolicy,
}

impl DeliveryRecorderBuilder {
    /// Prefix every instrument name.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How endpoint hosts become `server.address` values (default first 20 hosts).
    pub fn endpoints(mut self, policy: EndpointPolicy) -> Self {
        self.endpoints = policy;
        self
    }

    /// Validates the configuration and creates the instruments on `backend`.
    pub fn build(self, backend: &impl Backend) -> Result<DeliveryRecorder, ConfigError> {
        let namespace = Namespace::new(&self.namespace)?;
        let admission = Arc::new(EndpointAdmission::new(&self.endpoints)?);
        let endpoint = || Arc::new(EndpointDimension(admission.clone()));
        let attempts = InstrumentDef::new(
            &ATTEMPTS,
            &namespace,
            vec![Arc::new(DeliveryResultDimension), endpoint()],
        )?;
        let duration = InstrumentDef::new(
            &DURATION,
            &namespace,
            vec![Arc::new(EnumDimension::<DeliveryOutcome>::new()), endpoint()],
        )?;
        let active = InstrumentDef::new(&ACTIVE_TASKS, &namespace, vec![])?;
        let retries = InstrumentDef::new(&RETRIES, &namespace, vec![endpoint()])?;
        let dead_letters = InstrumentDef::new(&DEAD_LETTERS, &namespace, vec![endpoint()])?;
        Ok(DeliveryRecorder {
            endpoints: admission.capacity() + 1,
            attempts: backend.counter(Arc::new(attempts)),
            duration: backend.histogram(Arc::new(duration)),
            active_tasks: backend.up_down_counter(Arc::new(active)),
            retries: backend.counter(Arc::new(retries)),
            dead_letters: backend.counter(Arc::new(dead_letters)),
            admission,
        })
    }
}

/// The delivery recorder: pre-indexed instruments on any [`Backend`].
#[derive(Clone, Debug)]
pub struct DeliveryRecorder {
    admission: Arc<EndpointAdmission>,
    endpoints: usize,
    attempts: Counter,
    duration: Histogram,
    active_tasks: UpDownCounter,
    retries: Counter,
    dead_letters: Counter,
}

impl DeliveryRecorder {
    /// A builder with the defaults: no namespace, first 20 hosts.
    pub fn builder() -> DeliveryRecorderBuilder {
        DeliveryRecorderBuilder::default()
    }

    /// Resolves `endpoint_url` to its `server.address` value (admitting its host if
    /// the policy allows). Unparseable URLs resolve to `_OTHER`.
    pub fn endpoint(&self, endpoint_url: &str) -> Endpoint {
        Endpoint(self.admission.resolve(endpoint_url))
    }

    /// Records one attempt at a pre-resolved endpoint: the fast path.
    #[inline]
    pub fn record_result(&self, endpoint: Endpoint, result: DeliveryResult, duration: Duration) {
        self.attempts.add(result.index() * self.endpoints + endpoint.0, 1);
        self.duration.record(
            result.outcome().index() * self.endpoints + endpoint.0,
            duration.as_secs_f64(),
        );
    }

    fn attempts_where(&self, keep: impl Fn(usize) -> bool) -> u64 {
        self.attempts
            .values()
            .filter(|(series, _)| keep(series / self.endpoints))
            .map(|(_, v)| v)
            .sum()
    }

    /// Attempts that succeeded, over all endpoints.
    pub fn success_count(&self) -> u64 {
        self.attempts_where(|result| result == DeliveryResult::Success.index())
    }

    /// Attempts answered with a failure status, over all endpoints.
    pub fn failure_count(&self) -> u64 {
        let errors_start = DeliveryResult::Error(ErrorKind::Timeout).index();
        self.attempts_where(|result| result > 0 && result < errors_start)
    }

    /// Attempts that got no response, over all endpoints.
    pub fn error_count(&self) -> u64 {
        let errors_start = DeliveryResult::Error(ErrorKind::Timeout).index();
        self.attempts_where(|result| result >= errors_start)
    }

    /// Attempts with exactly `result`, over all endpoints.
    pub fn attempt_count(&self, result: DeliveryResult) -> u64 {
        self.attempts_where(|r| r == result.index())
    }

    /// Delivery tasks running now.
    pub fn active_task_count(&self) -> i64 {
        self.active_tasks.value(0)
    }

    /// Retries over all endpoints.
    pub fn retry_count(&self) -> u64 {
        self.retries.values().map(|(_, v)| v).sum()
    }

    /// Dead letters over all endpoints.
    pub fn dead_letter_count(&self) -> u64 {
        self.dead_letters.values().map(|(_, v)| v).sum()
    }

    /// The instruments this recorder exports, for catalogs and views.
    pub fn instruments(&self) -> Vec<Arc<InstrumentDef>> {
        vec![
            self.attempts.def().clone(),
            self.duration.def().clone(),
            self.active_tasks.def().clone(),
            self.retries.def().clone(),
            self.dead_letters.def().clone(),
        ]
    }
}

impl EventMetrics for DeliveryRecorder {
    fn record_delivery_success(&self, endpoint_url: &str, duration: Duration) {
        self.record_result(self.endpoint(endpoint_url), DeliveryResult::Success, duration);
    }
    fn record_delivery_failure(&self, endpoint_url: &str, status_code: u16, duration: Duration) {
        self.record_result(
            self.endpoint(endpoint_url),
            DeliveryResult::Failure(status_code),
            duration,
        );
    }
    fn record_delivery_error(&self, endpoint_url: &str, kind: ErrorKind, duration: Duration) {
        self.record_result(self.endpoint(endpoint_url), DeliveryResult::Error(kind), duration);
    }
    fn record_retry(&self, endpoint_url: &str) {
        self.retries.add(self.endpoint(endpoint_url).0, 1);
    }
    fn record_dead_letter(&self, endpoint_url: &str) {
        self.dead_letters.add(self.endpoint(endpoint_url).0, 1);
    }
    fn increment_active_tasks(&self) {
        self.active_tasks.add(0, 1);
    }
    fn decrement_active_tasks(&self) {
        self.active_tasks.add(0, -1);
    }
}
