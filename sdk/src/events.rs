//! Event processing: how each event ended, how long it took, and how many are
//! being processed now.
//!
//! `events.processed{outcome}` counts every event once and `events.duration{outcome}`
//! times it under the same outcome, so a failure that took 10 s shows in the
//! latency instead of hiding behind fast successes. `events.in_flight` counts
//! events being processed now; [`EventProcessingRecorder::track_in_flight`] hands
//! out an owned guard that takes the event off again when it drops: on return, on
//! `?`, and while a panic unwinds.
//!
//! There is no failure-ratio gauge. A ratio computed in the process cannot be
//! summed across instances (two replicas at 10 % and 50 % are not at 60 %) or
//! looked at over another window; the counter holds both parts, and
//! `rate(…{outcome="failure"}[5m]) / rate(…[5m])` gives the ratio for any set of
//! instances and any window.

use std::sync::Arc;
use std::time::Duration;

use crate::attr::closed;
use crate::cells::{Counter, Histogram, InFlightGuard, UpDownCounter};
use crate::detail::outcome_event;
use crate::error::ConfigError;
use crate::instrument::InstrumentSpec;
use crate::registry::{Family, FamilyBuilder};
use crate::settings;

crate::closed_set! {
    /// How processing one event ended.
    pub enum EventOutcome: "outcome" {
        /// Every step for the event succeeded.
        Success = "success",
        /// Processing failed (whatever happens to the event next).
        Failure = "failure",
    }
}

crate::port! {
    /// The event-processing metrics port: what an event processor records through.
    ///
    /// Application code depends on the port, so tests and disabled builds can pass
    /// [`NoopEventProcessingMetrics`]. It is synchronous: recording cannot fail and
    /// never waits.
    pub trait EventProcessingMetrics {
        /// One event was processed, ending with `outcome`, after `duration`.
        fn record_event(&self, outcome: EventOutcome, duration: Duration);
        /// One more event is being processed.
        fn increment_in_flight(&self);
        /// One event is no longer being processed.
        fn decrement_in_flight(&self);
        provided {
            /// One event was processed successfully after `duration`.
            fn record_success(&self, duration: Duration) {
                self.record_event(EventOutcome::Success, duration);
            }
            /// Processing one event failed after `duration`.
            fn record_failure(&self, duration: Duration) {
                self.record_event(EventOutcome::Failure, duration);
            }
        }
    }
    /// Records nothing, at no cost.
    noop NoopEventProcessingMetrics;
}

/// Default bucket boundaries of `events.duration` (seconds): from an event handled
/// in memory (1 ms) to one that waits on slow downstream actions (10 s).
pub const DURATION_BOUNDARIES_SECONDS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static PROCESSED: InstrumentSpec =
    InstrumentSpec::counter("events.processed", "{event}", "Events processed, by outcome.");
static DURATION: InstrumentSpec = InstrumentSpec::histogram(
    "events.duration",
    "s",
    "Time to process an event, by outcome: failures included.",
    &DURATION_BOUNDARIES_SECONDS,
);
static IN_FLIGHT: InstrumentSpec =
    InstrumentSpec::up_down_counter("events.in_flight", "{event}", "Events being processed now.");

/// What an event-processing family is built with; two builds with equal configs
/// share cells. Read it from a configuration file with the `serde` feature.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct EventProcessingConfig {
    /// Whether anything is recorded. Off, the builder returns a recorder that
    /// records nothing and registers nothing.
    pub enabled: bool,
    /// Bucket boundaries of `events.duration`, in seconds: finite, strictly
    /// increasing, not empty.
    pub duration_buckets: Vec<f64>,
    /// Must be 1.0: a sampled counter is wrong in every total and rate.
    pub sample_rate: f64,
}

impl Default for EventProcessingConfig {
    fn default() -> Self {
        EventProcessingConfig {
            enabled: true,
            duration_buckets: DURATION_BOUNDARIES_SECONDS.to_vec(),
            sample_rate: 1.0,
        }
    }
}

impl EventProcessingConfig {
    /// Checks every setting, disabled or not; returns the duration spec to build.
    fn duration_spec(&self) -> Result<&'static InstrumentSpec, ConfigError> {
        settings::check_sample_rate(EventProcessingRecorder::NAME, self.sample_rate)?;
        settings::histogram_spec(EventProcessingRecorder::NAME, &DURATION, &self.duration_buckets)
    }
}

/// Builds an [`EventProcessingRecorder`].
#[derive(Clone, Debug, Default)]
pub struct EventProcessingRecorderBuilder {
    config: EventProcessingConfig,
}

settings::switchable_builder!(
    EventProcessingRecorderBuilder,
    EventProcessingConfig,
    EventProcessingRecorder,
    check = |config| config.duration_spec().map(drop)
);

impl EventProcessingRecorderBuilder {
    /// Bucket boundaries of `events.duration` in seconds (default
    /// [`DURATION_BOUNDARIES_SECONDS`]).
    pub fn duration_buckets(mut self, buckets: impl Into<Vec<f64>>) -> Self {
        self.config.duration_buckets = buckets.into();
        self
    }
}

/// The event-processing recorder: pre-indexed instruments on any [`Backend`](crate::toolkit::Backend), or
/// nothing at all when disabled.
///
/// There is no failure-ratio gauge, on purpose: a ratio worked out in the process
/// cannot be added up across instances (10 % on a busy replica and 50 % on an
/// idle one are not 30 % overall) or looked at over another window. The counter holds every part,
/// and PromQL divides rates for any set of instances and any window:
/// `sum(rate(events_processed_total{outcome="failure"}[5m])) / sum(rate(events_processed_total[5m]))`.
///
/// Clones are cheap (one reference count) and share cells; so do recorders built
/// twice on one backend.
#[derive(Clone, Debug)]
pub struct EventProcessingRecorder {
    cells: Option<Arc<EventCells>>,
}

#[derive(Debug)]
struct EventCells {
    processed: Counter<EventOutcome>,
    duration: Histogram<EventOutcome>,
    in_flight: UpDownCounter<()>,
}

impl Family for EventProcessingRecorder {
    const NAME: &'static str = "events";
    type Config = EventProcessingConfig;

    fn build(config: &EventProcessingConfig, family: &mut FamilyBuilder<'_>) -> Result<Self, ConfigError> {
        let duration = config.duration_spec()?;
        if !config.enabled {
            return Ok(Self::disabled());
        }
        let cells = EventCells {
            processed: family.counter(&PROCESSED, vec![closed::<EventOutcome>()])?,
            duration: family.histogram(duration, vec![closed::<EventOutcome>()])?,
            in_flight: family.up_down_counter(&IN_FLIGHT, vec![])?,
        };
        Ok(EventProcessingRecorder {
            cells: Some(Arc::new(cells)),
        })
    }
}

impl EventProcessingRecorder {
    /// A builder with the defaults: enabled, [`DURATION_BOUNDARIES_SECONDS`].
    pub fn builder() -> EventProcessingRecorderBuilder {
        EventProcessingRecorderBuilder::default()
    }

    /// A recorder that records nothing, at the cost of one branch a call.
    pub const fn disabled() -> Self {
        EventProcessingRecorder { cells: None }
    }

    /// Whether this recorder records.
    pub fn is_enabled(&self) -> bool {
        self.cells.is_some()
    }

    /// One event was processed, ending with `outcome`, after `duration`.
    #[inline]
    pub fn record(&self, outcome: EventOutcome, duration: Duration) {
        if let Some(cells) = &self.cells {
            cells.processed.add(outcome, 1);
            cells.duration.record(outcome, duration.as_secs_f64());
            outcome_event!(
                "events",
                "event processed",
                outcometer.outcome = outcome.as_str(),
                outcometer.duration_s = duration.as_secs_f64(),
            );
        }
    }

    /// Counts one event in flight until the returned guard drops, on return, `?`
    /// or a panic unwinding. The guard is owned (`'static`), so it moves into a
    /// spawned task.
    pub fn track_in_flight(&self) -> InFlightGuard {
        match &self.cells {
            Some(cells) => cells.in_flight.track(()),
            None => InFlightGuard::noop(),
        }
    }

    /// Events processed with `outcome` so far.
    pub fn processed(&self, outcome: EventOutcome) -> u64 {
        self.cells.as_ref().map_or(0, |c| c.processed.value(outcome))
    }

    /// Events in flight now.
    pub fn in_flight(&self) -> i64 {
        self.cells.as_ref().map_or(0, |c| c.in_flight.value(()))
    }
}

impl EventProcessingMetrics for EventProcessingRecorder {
    #[inline]
    fn record_event(&self, outcome: EventOutcome, duration: Duration) {
        self.record(outcome, duration);
    }
    fn increment_in_flight(&self) {
        if let Some(cells) = &self.cells {
            cells.in_flight.add((), 1);
        }
    }
    fn decrement_in_flight(&self) {
        if let Some(cells) = &self.cells {
            cells.in_flight.add((), -1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::InMemoryBackend;

    #[test]
    fn records_outcomes_durations_and_in_flight() {
        let backend = InMemoryBackend::with_namespace("observer").unwrap();
        let events = EventProcessingRecorder::builder().build(&backend).unwrap();
        events.record_success(Duration::from_millis(3));
        events.record_failure(Duration::from_secs(2));
        events.record_failure(Duration::from_secs(20));
        let guard = events.track_in_flight();
        let moved = std::thread::spawn(move || {
            let _guard = guard;
            let _ = std::panic::catch_unwind(|| panic!("handler failed"));
        });
        let _held = events.track_in_flight();
        moved.join().unwrap();
        assert_eq!(events.processed(EventOutcome::Failure), 2);
        assert_eq!(events.in_flight(), 1);
        let name = "observer.events.processed";
        assert_eq!(backend.counter_value(name, &[("outcome", "success")]), Some(1));
        let failures = backend
            .histogram("observer.events.duration", &[("outcome", "failure")])
            .unwrap();
        assert_eq!((failures.count, failures.sum), (2, 22.0));
        assert_eq!(
            failures.bucket_counts.last(),
            Some(&1),
            "20 s is past the last bucket"
        );
        assert_eq!(backend.up_down_value("observer.events.in_flight", &[]), Some(1));
    }

    #[test]
    fn disabled_records_and_registers_nothing_but_still_validates() {
        let backend = InMemoryBackend::new();
        let off = EventProcessingRecorder::builder()
            .enabled(false)
            .build(&backend)
            .unwrap();
        off.record_success(Duration::from_millis(1));
        let _guard = off.track_in_flight();
        assert!(!off.is_enabled());
        assert!(crate::backend::Backend::registry(&backend)
            .unwrap()
            .families()
            .is_empty());
        assert!(backend.points().is_empty());
        let err = EventProcessingRecorder::builder()
            .enabled(false)
            .sample_rate(0.1)
            .build(&backend)
            .unwrap_err();
        assert!(err.to_string().contains("sample_rate"), "{err}");
    }

    #[test]
    fn configured_buckets_reach_the_histogram_and_are_checked() {
        let backend = InMemoryBackend::new();
        let events = EventProcessingRecorder::builder()
            .duration_buckets([0.5, 1.0])
            .build(&backend)
            .unwrap();
        events.record_success(Duration::from_millis(700));
        let h = backend
            .histogram("events.duration", &[("outcome", "success")])
            .unwrap();
        assert_eq!((h.boundaries, h.bucket_counts), (vec![0.5, 1.0], vec![0, 1, 0]));
        let clone = EventProcessingRecorder::builder()
            .duration_buckets(vec![0.5, 1.0])
            .build(&backend)
            .unwrap();
        clone.record_success(Duration::ZERO);
        assert_eq!(
            events.processed(EventOutcome::Success),
            2,
            "equal configs share cells"
        );
        let err = EventProcessingRecorder::builder()
            .duration_buckets([1.0, 0.5])
            .build(&InMemoryBackend::new())
            .unwrap_err();
        assert!(matches!(err, ConfigError::InvalidBoundaries { .. }), "{err}");
    }

    #[test]
    fn the_noop_port_and_forwarding_compile_and_record_nothing() {
        let noop: Arc<dyn EventProcessingMetrics> = Arc::new(NoopEventProcessingMetrics);
        noop.record_success(Duration::ZERO);
        let backend = InMemoryBackend::new();
        let events = EventProcessingRecorder::builder().build(&backend).unwrap();
        let port: Option<&EventProcessingRecorder> = Some(&events);
        port.increment_in_flight();
        port.record_event(EventOutcome::Success, Duration::ZERO);
        assert_eq!(
            (events.in_flight(), events.processed(EventOutcome::Success)),
            (1, 1)
        );
    }
}
