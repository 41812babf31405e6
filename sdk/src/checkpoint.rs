//! Checkpoints: saves and how long they took, recoveries at start-up, and when
//! the last save succeeded.
//!
//! `checkpoint.last_success.timestamp` is the Unix time (seconds) of the last
//! successful save, so "how long since the last checkpoint" is `time() - …` in
//! PromQL, right however long ago that was and whether or not anything has been
//! recorded since; an age gauge set by the process would stop moving exactly when
//! the process stops saving. There is no failure-ratio gauge: the counter holds
//! both parts, and a ratio computed in the process could be neither summed across
//! instances nor re-windowed.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::attr::closed;
use crate::cells::{Counter, FloatGauge, Histogram};
use crate::detail::outcome_event;
use crate::error::ConfigError;
use crate::instrument::InstrumentSpec;
use crate::registry::{Family, FamilyBuilder};
use crate::settings;

crate::closed_set! {
    /// How a checkpoint save ended.
    pub enum CheckpointOutcome: "outcome" {
        /// The checkpoint is durable.
        Success = "success",
        /// It could not be written; the previous one still stands.
        Failure = "failure",
    }
}

crate::closed_set! {
    /// What a recovery from the last checkpoint found.
    pub enum RecoveryResult: "result" {
        /// A checkpoint was read and its state restored.
        Restored = "restored",
        /// There was no checkpoint: a fresh start.
        Empty = "empty",
        /// A checkpoint was there but could not be read or used.
        Failed = "failed",
    }
}

crate::port! {
    /// The checkpoint metrics port: what a checkpointer records through.
    ///
    /// Synchronous: recording cannot fail and never waits. Pass
    /// [`NoopCheckpointMetrics`] in tests or when metrics are off.
    pub trait CheckpointMetrics {
        /// One save ended with `outcome` after `duration`; a success also sets the
        /// last-success timestamp to now.
        fn record_save(&self, outcome: CheckpointOutcome, duration: Duration);
        /// One recovery found `result`.
        fn record_recovery(&self, result: RecoveryResult);
        provided {
            /// One save succeeded after `duration`.
            fn record_save_success(&self, duration: Duration) {
                self.record_save(CheckpointOutcome::Success, duration);
            }
            /// One save failed after `duration`.
            fn record_save_failure(&self, duration: Duration) {
                self.record_save(CheckpointOutcome::Failure, duration);
            }
        }
    }
    /// Records nothing, at no cost.
    noop NoopCheckpointMetrics;
}

/// Default bucket boundaries of `checkpoint.save.duration` (seconds): from a small
/// state written to a local disk (1 ms) to a large one on a slow volume (10 s).
pub const SAVE_DURATION_BOUNDARIES_SECONDS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static SAVES: InstrumentSpec = InstrumentSpec::counter(
    "checkpoint.saves",
    "{checkpoint}",
    "Checkpoint saves, by outcome.",
);
static SAVE_DURATION: InstrumentSpec = InstrumentSpec::histogram(
    "checkpoint.save.duration",
    "s",
    "Time to save a checkpoint, by outcome.",
    &SAVE_DURATION_BOUNDARIES_SECONDS,
);
static RECOVERIES: InstrumentSpec = InstrumentSpec::counter(
    "checkpoint.recoveries",
    "{recovery}",
    "Recoveries from the last checkpoint, by result: restored, nothing to restore, or failed.",
);
static LAST_SUCCESS: InstrumentSpec = InstrumentSpec::gauge(
    "checkpoint.last_success.timestamp",
    "s",
    "Unix time of the last successful checkpoint save.",
);

/// What a checkpoint family is built with; two builds with equal configs share
/// cells. Read it from a configuration file with the `serde` feature.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct CheckpointConfig {
    /// Whether anything is recorded. Off, the builder returns a recorder that
    /// records nothing and registers nothing.
    pub enabled: bool,
    /// Bucket boundaries of `checkpoint.save.duration`, in seconds: finite,
    /// strictly increasing, not empty.
    pub save_duration_buckets: Vec<f64>,
    /// Must be 1.0: a sampled counter is wrong in every total and rate.
    pub sample_rate: f64,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            enabled: true,
            save_duration_buckets: SAVE_DURATION_BOUNDARIES_SECONDS.to_vec(),
            sample_rate: 1.0,
        }
    }
}

impl CheckpointConfig {
    /// Checks every setting, disabled or not; returns the save-duration spec.
    fn save_duration_spec(&self) -> Result<&'static InstrumentSpec, ConfigError> {
        settings::check_sample_rate(CheckpointRecorder::NAME, self.sample_rate)?;
        settings::histogram_spec(
            CheckpointRecorder::NAME,
            &SAVE_DURATION,
            &self.save_duration_buckets,
        )
    }
}

/// Builds a [`CheckpointRecorder`].
#[derive(Clone, Debug, Default)]
pub struct CheckpointRecorderBuilder {
    config: CheckpointConfig,
}

settings::switchable_builder!(
    CheckpointRecorderBuilder,
    CheckpointConfig,
    CheckpointRecorder,
    check = |config| config.save_duration_spec().map(drop)
);

impl CheckpointRecorderBuilder {
    /// Bucket boundaries of `checkpoint.save.duration` in seconds (default
    /// [`SAVE_DURATION_BOUNDARIES_SECONDS`]).
    pub fn save_duration_buckets(mut self, buckets: impl Into<Vec<f64>>) -> Self {
        self.config.save_duration_buckets = buckets.into();
        self
    }
}

/// The checkpoint recorder: pre-indexed instruments on any [`Backend`](crate::toolkit::Backend), or
/// nothing at all when disabled.
///
/// A successful save sets `checkpoint.last_success.timestamp` to the Unix time
/// it finished, so the time since the last checkpoint is
/// `time() - checkpoint_last_success_timestamp_seconds` in PromQL: it keeps
/// growing when the process stops saving, which an age gauge set by the process
/// would not. There is no failure-ratio gauge (it could be neither summed across
/// instances nor re-windowed): divide rates of `checkpoint.saves` instead.
///
/// Clones are cheap (one reference count) and share cells; so do recorders built
/// twice on one backend.
#[derive(Clone, Debug)]
pub struct CheckpointRecorder {
    cells: Option<Arc<CheckpointCells>>,
}

#[derive(Debug)]
struct CheckpointCells {
    saves: Counter<CheckpointOutcome>,
    save_duration: Histogram<CheckpointOutcome>,
    recoveries: Counter<RecoveryResult>,
    last_success: FloatGauge<()>,
}

impl Family for CheckpointRecorder {
    const NAME: &'static str = "checkpoint";
    type Config = CheckpointConfig;

    fn build(config: &CheckpointConfig, family: &mut FamilyBuilder<'_>) -> Result<Self, ConfigError> {
        let save_duration = config.save_duration_spec()?;
        if !config.enabled {
            return Ok(Self::disabled());
        }
        let cells = CheckpointCells {
            saves: family.counter(&SAVES, vec![closed::<CheckpointOutcome>()])?,
            save_duration: family.histogram(save_duration, vec![closed::<CheckpointOutcome>()])?,
            recoveries: family.counter(&RECOVERIES, vec![closed::<RecoveryResult>()])?,
            last_success: family.float_gauge(&LAST_SUCCESS, vec![])?,
        };
        Ok(CheckpointRecorder {
            cells: Some(Arc::new(cells)),
        })
    }
}

impl CheckpointRecorder {
    /// A builder with the defaults: enabled, [`SAVE_DURATION_BOUNDARIES_SECONDS`].
    pub fn builder() -> CheckpointRecorderBuilder {
        CheckpointRecorderBuilder::default()
    }

    /// A recorder that records nothing, at the cost of one branch a call.
    pub const fn disabled() -> Self {
        CheckpointRecorder { cells: None }
    }

    /// Whether this recorder records.
    pub fn is_enabled(&self) -> bool {
        self.cells.is_some()
    }

    /// One save ended with `outcome` after `duration`, at `finished` (a success
    /// sets the last-success timestamp to it; a time before 1970 is dropped).
    #[inline]
    pub fn record_save_at(&self, outcome: CheckpointOutcome, duration: Duration, finished: SystemTime) {
        if let Some(cells) = &self.cells {
            cells.saves.add(outcome, 1);
            cells.save_duration.record(outcome, duration.as_secs_f64());
            outcome_event!(
                "checkpoint",
                "checkpoint save",
                outcometer.outcome = outcome.as_str(),
                outcometer.duration_s = duration.as_secs_f64(),
            );
            if outcome == CheckpointOutcome::Success {
                if let Ok(since_epoch) = finished.duration_since(UNIX_EPOCH) {
                    cells.last_success.set((), since_epoch.as_secs_f64());
                }
            }
        }
    }

    /// One recovery found `result`.
    #[inline]
    pub fn record_recovery_result(&self, result: RecoveryResult) {
        if let Some(cells) = &self.cells {
            cells.recoveries.add(result, 1);
            outcome_event!(
                "checkpoint",
                "checkpoint recovery",
                outcometer.result = result.as_str(),
            );
        }
    }

    /// Saves that ended with `outcome` so far.
    pub fn saves(&self, outcome: CheckpointOutcome) -> u64 {
        self.cells.as_ref().map_or(0, |c| c.saves.value(outcome))
    }

    /// Recoveries that found `result` so far.
    pub fn recoveries(&self, result: RecoveryResult) -> u64 {
        self.cells.as_ref().map_or(0, |c| c.recoveries.value(result))
    }

    /// When the last successful save finished, as recorded.
    pub fn last_success(&self) -> Option<SystemTime> {
        let seconds = self.cells.as_ref()?.last_success.value(())?;
        UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(seconds).ok()?)
    }
}

impl CheckpointMetrics for CheckpointRecorder {
    #[inline]
    fn record_save(&self, outcome: CheckpointOutcome, duration: Duration) {
        let finished = match outcome {
            CheckpointOutcome::Success => SystemTime::now(),
            CheckpointOutcome::Failure => UNIX_EPOCH,
        };
        self.record_save_at(outcome, duration, finished);
    }
    fn record_recovery(&self, result: RecoveryResult) {
        self.record_recovery_result(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::InMemoryBackend;

    #[test]
    fn saves_recoveries_and_the_last_success() {
        let backend = InMemoryBackend::with_namespace("observer").unwrap();
        let checkpoints = CheckpointRecorder::builder().build(&backend).unwrap();
        let stamp = "observer.checkpoint.last_success.timestamp";
        assert_eq!(backend.gauge_value(stamp, &[]), None, "no success yet");
        checkpoints.record_save_failure(Duration::from_millis(4));
        assert_eq!(
            backend.gauge_value(stamp, &[]),
            None,
            "a failure sets no timestamp"
        );
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        checkpoints.record_save_at(CheckpointOutcome::Success, Duration::from_millis(12), at);
        checkpoints.record_recovery(RecoveryResult::Restored);
        checkpoints.record_recovery(RecoveryResult::Empty);
        assert_eq!(backend.gauge_value(stamp, &[]), Some(1_700_000_000.25));
        assert_eq!(checkpoints.last_success(), Some(at));
        assert_eq!(checkpoints.saves(CheckpointOutcome::Failure), 1);
        assert_eq!(checkpoints.recoveries(RecoveryResult::Empty), 1);
        let saves = "observer.checkpoint.saves";
        assert_eq!(backend.counter_value(saves, &[("outcome", "success")]), Some(1));
        let h = backend
            .histogram("observer.checkpoint.save.duration", &[("outcome", "failure")])
            .unwrap();
        assert_eq!(h.count, 1);
        let before = SystemTime::now();
        checkpoints.record_save_success(Duration::ZERO);
        assert!(checkpoints.last_success().unwrap() >= before - Duration::from_millis(1));
        // Before 1970: counted, but no timestamp.
        checkpoints.record_save_at(
            CheckpointOutcome::Success,
            Duration::ZERO,
            UNIX_EPOCH - Duration::from_secs(1),
        );
        assert_eq!(checkpoints.saves(CheckpointOutcome::Success), 3);
    }

    #[test]
    fn disabled_and_invalid_configs() {
        let off = CheckpointRecorder::disabled();
        off.record_save_success(Duration::ZERO);
        assert_eq!(off.last_success(), None);
        let err = CheckpointRecorder::builder()
            .save_duration_buckets([0.1, f64::NAN])
            .enabled(false)
            .build(&InMemoryBackend::new())
            .unwrap_err();
        assert!(matches!(err, ConfigError::InvalidBoundaries { .. }), "{err}");
        NoopCheckpointMetrics.record_recovery(RecoveryResult::Failed);
    }
}
