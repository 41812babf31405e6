//! Job queues: jobs in and out, how each left, how long it waited, how many wait
//! now, and how old the oldest waiting one is.
//!
//! `queue.processed{queue,outcome}` counts every job taken off a queue once, as
//! `success`, `retry` (it goes back for another attempt) or `dead_letter`; so
//! retries and dead letters per second are rates of one counter, and their share
//! of the work is a ratio of it, computed in PromQL for any set of instances and
//! any window (a ratio gauge could be neither summed nor re-windowed).
//!
//! `queue.oldest.age` is the alertable one: depth says how much waits, the oldest
//! age says how long, and a stuck consumer shows as an age that only grows. The
//! recorder therefore keeps *when* the oldest job was enqueued, not its age: the
//! age is worked out each time the gauge is collected, so it keeps growing while
//! nothing records, which is exactly when a queue is stuck.
//!
//! Queue names pass an admission (the first 20 seen by default, or an
//! allow-list); the rest are `_OTHER`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::attr::admission::{Admission, AdmissionPolicy, Admitted, AdmittedDimension, Names};
use crate::attr::{closed, Dimension};
use crate::cells::{Counter, FloatGauge, Gauge, Histogram};
use crate::detail::{clip_name, outcome_event, Name};
use crate::error::ConfigError;
use crate::instrument::{Coords, InstrumentSpec, Series};
use crate::registry::{Family, FamilyBuilder};
use crate::settings;

crate::closed_set! {
    /// How a job left its queue.
    pub enum QueueOutcome: "outcome" {
        /// Processed; done.
        Success = "success",
        /// Failed and put back for another attempt later.
        Retry = "retry",
        /// Failed for the last time and moved to the dead-letter store.
        DeadLetter = "dead_letter",
    }
}

crate::port! {
    /// The queue metrics port: what a job queue and its workers record through.
    ///
    /// Synchronous: recording cannot fail and never waits. Pass
    /// [`NoopQueueMetrics`] in tests or when metrics are off.
    pub trait QueueMetrics {
        /// One job was put on `queue`.
        fn record_enqueued(&self, queue: &str);
        /// One job left `queue` with `outcome`.
        fn record_processed(&self, queue: &str, outcome: QueueOutcome);
        /// A job of `queue` started after waiting `wait` since it was enqueued.
        fn record_wait(&self, queue: &str, wait: Duration);
        /// `queue` now holds `depth` waiting jobs.
        fn record_depth(&self, queue: &str, depth: u64);
        /// The oldest job waiting in `queue` was enqueued `age` ago; `None` when
        /// nothing waits. The exported age keeps growing from here until the next call.
        fn record_oldest_age(&self, queue: &str, age: Option<Duration>);
        provided {
            /// One job of `queue` succeeded.
            fn record_success(&self, queue: &str) {
                self.record_processed(queue, QueueOutcome::Success);
            }
            /// One job of `queue` failed and will be retried.
            fn record_retry(&self, queue: &str) {
                self.record_processed(queue, QueueOutcome::Retry);
            }
            /// One job of `queue` was dead-lettered.
            fn record_dead_letter(&self, queue: &str) {
                self.record_processed(queue, QueueOutcome::DeadLetter);
            }
        }
    }
    /// Records nothing, at no cost.
    noop NoopQueueMetrics;
}

/// How many queue names get their own `queue` value by default.
pub const DEFAULT_ADMITTED_QUEUES: usize = 20;

/// Default bucket boundaries of `queue.wait` (seconds): from a job picked up at
/// once (5 ms) to a backlog of an hour.
pub const WAIT_BOUNDARIES_SECONDS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

static ENQUEUED: InstrumentSpec =
    InstrumentSpec::counter("queue.enqueued", "{job}", "Jobs put on a queue, by queue.");
static PROCESSED: InstrumentSpec = InstrumentSpec::counter(
    "queue.processed",
    "{job}",
    "Jobs taken off a queue, by queue and outcome: done, retried later, or dead-lettered.",
);
static DEPTH: InstrumentSpec = InstrumentSpec::gauge("queue.depth", "{job}", "Jobs waiting in a queue.");
static WAIT: InstrumentSpec = InstrumentSpec::histogram(
    "queue.wait",
    "s",
    "Time from enqueue to the start of processing, by queue.",
    &WAIT_BOUNDARIES_SECONDS,
);
static OLDEST_AGE: InstrumentSpec = InstrumentSpec::gauge(
    "queue.oldest.age",
    "s",
    "Age of the oldest job waiting in a queue, as of collection; 0 when none waits.",
);

/// A pre-resolved queue: its `queue` coordinate. Resolve once with
/// [`QueueRecorder::queue`] and record with the `…_at` methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queue(Option<Admitted>);

/// What a queue family is built with; two builds with equal configs share cells.
/// Read it from a configuration file with the `serde` feature.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct QueueConfig {
    /// Whether anything is recorded. Off, the builder returns a recorder that
    /// records nothing and registers nothing.
    pub enabled: bool,
    /// Which queue names become `queue` values (default: the first 20 seen).
    #[cfg_attr(feature = "serde", serde(with = "settings::AdmissionPolicyDef"))]
    pub queues: AdmissionPolicy,
    /// Bucket boundaries of `queue.wait`, in seconds: finite, strictly
    /// increasing, not empty.
    pub wait_buckets: Vec<f64>,
    /// Must be 1.0: a sampled counter is wrong in every total and rate.
    pub sample_rate: f64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            enabled: true,
            queues: AdmissionPolicy::first_k(DEFAULT_ADMITTED_QUEUES),
            wait_buckets: WAIT_BOUNDARIES_SECONDS.to_vec(),
            sample_rate: 1.0,
        }
    }
}

impl QueueConfig {
    /// Checks every setting; returns the admission of queue names and the wait spec.
    fn validate(&self) -> Result<(Admission, &'static InstrumentSpec), ConfigError> {
        settings::check_sample_rate(QueueRecorder::NAME, self.sample_rate)?;
        let wait = settings::histogram_spec(QueueRecorder::NAME, &WAIT, &self.wait_buckets)?;
        Ok((Admission::new("queue", &self.queues, Names)?, wait))
    }
}

/// Builds a [`QueueRecorder`].
#[derive(Clone, Debug, Default)]
pub struct QueueRecorderBuilder {
    config: QueueConfig,
}

settings::switchable_builder!(
    QueueRecorderBuilder,
    QueueConfig,
    QueueRecorder,
    check = |config| config.validate().map(drop)
);

impl QueueRecorderBuilder {
    /// How queue names become `queue` values (default: the first 20 seen; an
    /// allow-list, or both).
    pub fn queues(mut self, policy: AdmissionPolicy) -> Self {
        self.config.queues = policy;
        self
    }

    /// Bucket boundaries of `queue.wait` in seconds (default [`WAIT_BOUNDARIES_SECONDS`]).
    pub fn wait_buckets(mut self, buckets: impl Into<Vec<f64>>) -> Self {
        self.config.wait_buckets = buckets.into();
        self
    }
}

/// The queue recorder: pre-indexed instruments on any [`Backend`](crate::toolkit::Backend), or nothing at
/// all when disabled.
///
/// `queue.oldest.age` is kept as the instant the oldest waiting job was enqueued
/// (from the age you record), and turned into an age each time it is collected:
/// a stuck consumer, which records nothing, shows as an age that keeps growing.
///
/// There is no retry- or dead-letter-ratio gauge, on purpose: a ratio worked out in the process
/// cannot be added up across instances (2 % on a busy replica and 20 % on an
/// idle one are not 11 % overall) or looked at over another window. The counter holds every part,
/// and PromQL divides rates for any set of instances and any window:
/// `sum by (queue) (rate(queue_processed_total{outcome="dead_letter"}[5m])) / sum by (queue) (rate(queue_processed_total[5m]))`.
///
/// Clones are cheap (one reference count) and share cells; so do recorders built
/// twice on one backend.
#[derive(Clone, Debug)]
pub struct QueueRecorder {
    cells: Option<Arc<QueueCells>>,
}

#[derive(Debug)]
struct QueueCells {
    queues: Arc<Admission>,
    enqueued: Counter<Admitted>,
    processed: Counter<(Admitted, QueueOutcome)>,
    depth: Gauge<Admitted>,
    wait: Histogram<Admitted>,
    oldest: Arc<OldestEnqueued>,
}

/// Per queue, when its oldest waiting job was enqueued: nanoseconds since `base`,
/// or one of the two markers. The callback of `queue.oldest.age` turns these into
/// ages at collection time.
#[derive(Debug)]
struct OldestEnqueued {
    base: Instant,
    at: Box<[AtomicI64]>,
}

/// Never recorded: the series is not exported.
const NEVER: i64 = i64::MIN;
/// Nothing waits: the age is 0.
const NOTHING_WAITS: i64 = i64::MAX;

impl OldestEnqueued {
    fn nanos_since_base(&self, now: Instant) -> i64 {
        i64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(NOTHING_WAITS - 1)
    }

    /// `at` as signed nanoseconds since `base` (before it: negative), off the markers.
    fn stamp(&self, at: Instant) -> i64 {
        let nanos = match at.checked_duration_since(self.base) {
            Some(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
            None => i64::try_from(self.base.duration_since(at).as_nanos()).map_or(i64::MIN, |n| -n),
        };
        nanos.clamp(NEVER + 1, NOTHING_WAITS - 1)
    }

    #[inline]
    fn store(&self, queue: Admitted, at: i64) {
        if let Some(cell) = self.at.get(queue.index()) {
            cell.store(at, Ordering::Relaxed);
        }
    }

    /// The oldest job was enqueued `age` ago (reads the clock).
    #[inline]
    fn set_age(&self, queue: Admitted, age: Option<Duration>) {
        let at = match age {
            None => NOTHING_WAITS,
            Some(age) => {
                let age = i64::try_from(age.as_nanos()).unwrap_or(i64::MAX);
                self.nanos_since_base(Instant::now())
                    .saturating_sub(age)
                    .clamp(NEVER + 1, NOTHING_WAITS - 1)
            }
        };
        self.store(queue, at);
    }

    /// The oldest job was enqueued at `at` (no clock read).
    #[inline]
    fn set_enqueued(&self, queue: Admitted, at: Option<Instant>) {
        self.store(queue, at.map_or(NOTHING_WAITS, |at| self.stamp(at)));
    }

    /// The age at `now` of series `index`'s oldest job; `None` if never recorded.
    fn age(&self, index: usize, now: Instant) -> Option<Duration> {
        match self.at.get(index)?.load(Ordering::Relaxed) {
            NEVER => None,
            NOTHING_WAITS => Some(Duration::ZERO),
            at => {
                let nanos = self.nanos_since_base(now).saturating_sub(at).max(0);
                Some(Duration::from_nanos(nanos.unsigned_abs()))
            }
        }
    }

    fn collect(&self, gauge: &FloatGauge<Series>) {
        let now = Instant::now();
        for index in 0..self.at.len() {
            if let Some(age) = self.age(index, now) {
                gauge.set(Series(index), age.as_secs_f64());
            }
        }
    }
}

impl Family for QueueRecorder {
    const NAME: &'static str = "queue";
    type Config = QueueConfig;

    fn build(config: &QueueConfig, family: &mut FamilyBuilder<'_>) -> Result<Self, ConfigError> {
        let (queues, wait) = config.validate()?;
        if !config.enabled {
            return Ok(Self::disabled());
        }
        let queues = Arc::new(queues);
        let queue = || -> Arc<dyn Dimension> { Arc::new(AdmittedDimension(queues.clone())) };
        let oldest = Arc::new(OldestEnqueued {
            base: Instant::now(),
            at: (0..=queues.capacity()).map(|_| AtomicI64::new(NEVER)).collect(),
        });
        let collected = oldest.clone();
        let enqueued = family.counter(&ENQUEUED, vec![queue()])?;
        let processed = family.counter(&PROCESSED, vec![queue(), closed::<QueueOutcome>()])?;
        let depth = family.gauge(&DEPTH, vec![queue()])?;
        let wait = family.histogram(wait, vec![queue()])?;
        // Series index = queue index: the gauge has the queue as its only dimension.
        family.callback_gauge::<Series>(&OLDEST_AGE, vec![queue()], move |gauge| collected.collect(gauge))?;
        let cells = QueueCells {
            enqueued,
            processed,
            depth,
            wait,
            oldest,
            queues,
        };
        Ok(QueueRecorder {
            cells: Some(Arc::new(cells)),
        })
    }
}

/// The sum of `counter`'s series whose coordinate along `dim` is `index`.
fn total_where<C: Coords>(counter: &Counter<C>, dim: usize, index: usize) -> u64 {
    counter
        .values()
        .filter(|(series, _)| {
            counter
                .def()
                .coordinates(*series)
                .is_some_and(|c| c[dim] == index)
        })
        .map(|(_, v)| v)
        .sum()
}

impl QueueRecorder {
    /// A builder with the defaults: enabled, the first 20 queue names,
    /// [`WAIT_BOUNDARIES_SECONDS`].
    pub fn builder() -> QueueRecorderBuilder {
        QueueRecorderBuilder::default()
    }

    /// A recorder that records nothing, at the cost of one branch a call.
    pub const fn disabled() -> Self {
        QueueRecorder { cells: None }
    }

    /// Whether this recorder records.
    pub fn is_enabled(&self) -> bool {
        self.cells.is_some()
    }

    /// Resolves `name` to its `queue` value, admitting it if the policy still
    /// allows (otherwise `_OTHER`, counted on the overflow counter). Resolve once
    /// per queue, not per job.
    pub fn queue(&self, name: &str) -> Queue {
        Queue(self.cells.as_ref().map(|c| c.queues.resolve(name)))
    }

    #[inline]
    fn at(&self, queue: Queue) -> Option<(&QueueCells, Admitted)> {
        Some((self.cells.as_deref()?, queue.0?))
    }

    /// One job was put on a pre-resolved queue: the fast path.
    #[inline]
    pub fn record_enqueued_at(&self, queue: Queue) {
        self.enqueued_named(queue, || self.admitted_name(queue));
    }

    /// One job left a pre-resolved queue with `outcome`.
    #[inline]
    pub fn record_processed_at(&self, queue: Queue, outcome: QueueOutcome) {
        self.processed_named(queue, outcome, || self.admitted_name(queue));
    }

    /// A job of a pre-resolved queue started after waiting `wait`.
    #[inline]
    pub fn record_wait_at(&self, queue: Queue, wait: Duration) {
        self.wait_named(queue, wait, || self.admitted_name(queue));
    }

    /// `queue`'s admitted name, for trace events (`None` for `_OTHER`).
    fn admitted_name(&self, queue: Queue) -> Option<&str> {
        let (cells, at) = self.at(queue)?;
        cells.queues.value(at.index())
    }

    // The record paths, with the name their trace event carries: as given by
    // the by-name methods, admitted by the `…_at` ones.

    #[inline]
    fn enqueued_named<'a>(&self, queue: Queue, name: impl Name<'a>) {
        if let Some((cells, at)) = self.at(queue) {
            cells.enqueued.add(at, 1);
            outcome_event!(
                "queue",
                "queue enqueued",
                messaging.destination.name = name().map(clip_name),
            );
        }
    }

    #[inline]
    fn processed_named<'a>(&self, queue: Queue, outcome: QueueOutcome, name: impl Name<'a>) {
        if let Some((cells, at)) = self.at(queue) {
            cells.processed.add((at, outcome), 1);
            outcome_event!(
                "queue",
                "queue processed",
                messaging.destination.name = name().map(clip_name),
                outcometer.outcome = outcome.as_str(),
            );
        }
    }

    #[inline]
    fn wait_named<'a>(&self, queue: Queue, wait: Duration, name: impl Name<'a>) {
        if let Some((cells, at)) = self.at(queue) {
            cells.wait.record(at, wait.as_secs_f64());
            outcome_event!(
                "queue",
                "queue wait",
                messaging.destination.name = name().map(clip_name),
                outcometer.wait_s = wait.as_secs_f64(),
            );
        }
    }

    /// A pre-resolved queue now holds `depth` waiting jobs.
    #[inline]
    pub fn record_depth_at(&self, queue: Queue, depth: u64) {
        if let Some((cells, at)) = self.at(queue) {
            cells.depth.set(at, i64::try_from(depth).unwrap_or(i64::MAX));
        }
    }

    /// The oldest job waiting in a pre-resolved queue was enqueued `age` ago
    /// (`None`: nothing waits). The exported age grows from here until the next call.
    #[inline]
    pub fn record_oldest_age_at(&self, queue: Queue, age: Option<Duration>) {
        if let Some((cells, at)) = self.at(queue) {
            cells.oldest.set_age(at, age);
        }
    }

    /// The oldest job waiting in a pre-resolved queue was enqueued at `enqueued`
    /// (`None`: nothing waits): the fast path when the queue keeps enqueue
    /// instants, as it reads no clock. The exported age grows from there.
    #[inline]
    pub fn record_oldest_enqueued_at(&self, queue: Queue, enqueued: Option<Instant>) {
        if let Some((cells, at)) = self.at(queue) {
            cells.oldest.set_enqueued(at, enqueued);
        }
    }

    /// Jobs enqueued so far, over all queues.
    pub fn enqueued(&self) -> u64 {
        self.cells.as_ref().map_or(0, |c| c.enqueued.total())
    }

    /// Jobs that left with `outcome` so far, over all queues.
    pub fn processed(&self, outcome: QueueOutcome) -> u64 {
        self.cells
            .as_ref()
            .map_or(0, |c| total_where(&c.processed, 1, outcome.index()))
    }

    /// Jobs of `queue` that left with `outcome` so far.
    pub fn processed_of(&self, queue: Queue, outcome: QueueOutcome) -> u64 {
        self.at(queue)
            .map_or(0, |(c, at)| c.processed.value((at, outcome)))
    }

    /// The last depth recorded for `queue`.
    pub fn depth_of(&self, queue: Queue) -> Option<u64> {
        let (cells, at) = self.at(queue)?;
        cells.depth.value(at).and_then(|v| u64::try_from(v).ok())
    }

    /// The age of `queue`'s oldest waiting job now, as the gauge would export it.
    pub fn oldest_age_of(&self, queue: Queue) -> Option<Duration> {
        let (cells, at) = self.at(queue)?;
        cells.oldest.age(at.index(), Instant::now())
    }
}

impl QueueMetrics for QueueRecorder {
    fn record_enqueued(&self, queue: &str) {
        self.enqueued_named(self.queue(queue), || Some(queue));
    }
    fn record_processed(&self, queue: &str, outcome: QueueOutcome) {
        self.processed_named(self.queue(queue), outcome, || Some(queue));
    }
    fn record_wait(&self, queue: &str, wait: Duration) {
        self.wait_named(self.queue(queue), wait, || Some(queue));
    }
    fn record_depth(&self, queue: &str, depth: u64) {
        self.record_depth_at(self.queue(queue), depth);
    }
    fn record_oldest_age(&self, queue: &str, age: Option<Duration>) {
        self.record_oldest_age_at(self.queue(queue), age);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::InMemoryBackend;

    #[test]
    fn jobs_in_out_waits_and_depth_by_queue() {
        let backend = InMemoryBackend::with_namespace("observer").unwrap();
        let queues = QueueRecorder::builder().build(&backend).unwrap();
        let orders = queues.queue("orders");
        queues.record_enqueued_at(orders);
        queues.record_enqueued("orders");
        queues.record_wait_at(orders, Duration::from_millis(30));
        queues.record_success("orders");
        queues.record_retry("orders");
        queues.record_dead_letter("emails");
        queues.record_depth_at(orders, 1);
        assert_eq!(queues.enqueued(), 2);
        assert_eq!(queues.processed(QueueOutcome::Retry), 1);
        assert_eq!(queues.processed_of(orders, QueueOutcome::Success), 1);
        assert_eq!(queues.depth_of(orders), Some(1));
        let processed = "observer.queue.processed";
        assert_eq!(
            backend.counter_value(processed, &[("queue", "emails"), ("outcome", "dead_letter")]),
            Some(1)
        );
        let wait = backend
            .histogram("observer.queue.wait", &[("queue", "orders")])
            .unwrap();
        assert_eq!(wait.count, 1);
        assert_eq!(
            backend.gauge_value("observer.queue.depth", &[("queue", "orders")]),
            Some(1.0)
        );
    }

    #[test]
    fn the_oldest_age_keeps_growing_until_told_otherwise() {
        let backend = InMemoryBackend::new();
        let queues = QueueRecorder::builder().build(&backend).unwrap();
        let orders = queues.queue("orders");
        let age = |b: &InMemoryBackend| b.gauge_value("queue.oldest.age", &[("queue", "orders")]);
        assert_eq!(age(&backend), None, "not exported before it is recorded");
        queues.record_oldest_age_at(orders, Some(Duration::from_secs(90)));
        let first = age(&backend).unwrap();
        assert!((90.0..91.0).contains(&first), "{first}");
        std::thread::sleep(Duration::from_millis(20));
        let later = age(&backend).unwrap();
        assert!(later >= first + 0.02, "{first} then {later}");
        queues.record_oldest_age("orders", None);
        assert_eq!(age(&backend), Some(0.0));
        assert_eq!(queues.oldest_age_of(orders), Some(Duration::ZERO));
        // From an enqueue instant, before the recorder was built or after.
        let enqueued = Instant::now() - Duration::from_secs(30);
        queues.record_oldest_enqueued_at(orders, Some(enqueued));
        let from_instant = queues.oldest_age_of(orders).unwrap();
        assert!(
            (30.0..31.0).contains(&from_instant.as_secs_f64()),
            "{from_instant:?}"
        );
        queues.record_oldest_enqueued_at(orders, Some(Instant::now() + Duration::from_secs(5)));
        assert_eq!(
            queues.oldest_age_of(orders),
            Some(Duration::ZERO),
            "a future instant is age 0"
        );
        queues.record_oldest_enqueued_at(orders, None);
        assert_eq!(age(&backend), Some(0.0));
        // Older than the recorder, or absurdly old: still an age, never a panic.
        queues.record_oldest_age_at(orders, Some(Duration::MAX));
        assert!(age(&backend).unwrap() > 1e9);
    }

    #[test]
    fn disabled_and_invalid_configs() {
        let backend = InMemoryBackend::new();
        let off = QueueRecorder::builder().enabled(false).build(&backend).unwrap();
        let q = off.queue("orders");
        off.record_enqueued_at(q);
        off.record_oldest_age_at(q, Some(Duration::from_secs(1)));
        assert_eq!((off.enqueued(), off.oldest_age_of(q)), (0, None));
        assert!(backend.points().is_empty());
        let err = QueueRecorder::builder()
            .wait_buckets(Vec::new())
            .build(&backend)
            .unwrap_err();
        assert!(matches!(err, ConfigError::InvalidBoundaries { .. }), "{err}");
        let err = QueueRecorder::builder()
            .sample_rate(0.0)
            .build(&backend)
            .unwrap_err();
        assert!(err.to_string().contains("sample_rate"), "{err}");
    }
}
