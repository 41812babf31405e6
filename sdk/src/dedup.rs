//! Content deduplication: how many checks found a new item and how many a duplicate.
//!
//! One counter, `dedup.checks{result}`, holds both parts of the duplicate ratio.
//! There is no ratio gauge: a ratio computed in the process cannot be summed
//! across instances or looked at over another window, while
//! `rate(…{result="duplicate"}[5m]) / rate(…[5m])` gives it for any set of
//! instances and any window.

use std::sync::Arc;

use crate::attr::closed;
use crate::cells::Counter;
use crate::detail::outcome_event;
use crate::error::ConfigError;
use crate::instrument::InstrumentSpec;
use crate::registry::{Family, FamilyBuilder};
use crate::settings;

crate::closed_set! {
    /// What a deduplication check found.
    pub enum DedupResult: "result" {
        /// Not seen before: the item goes on.
        Unique = "unique",
        /// Seen before: the item is dropped.
        Duplicate = "duplicate",
    }
}

crate::port! {
    /// The deduplication metrics port: what a deduplicator records through.
    ///
    /// Synchronous: recording cannot fail and never waits. Pass
    /// [`NoopDedupMetrics`] in tests or when metrics are off.
    pub trait DedupMetrics {
        /// One check found `result`.
        fn record_check(&self, result: DedupResult);
        provided {
            /// One check found a new item.
            fn record_unique(&self) {
                self.record_check(DedupResult::Unique);
            }
            /// One check found a duplicate.
            fn record_duplicate(&self) {
                self.record_check(DedupResult::Duplicate);
            }
        }
    }
    /// Records nothing, at no cost.
    noop NoopDedupMetrics;
}

static CHECKS: InstrumentSpec = InstrumentSpec::counter(
    "dedup.checks",
    "{check}",
    "Deduplication checks, by result: new items against duplicates.",
);

/// What a deduplication family is built with. Read it from a configuration file
/// with the `serde` feature.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct DedupConfig {
    /// Whether anything is recorded. Off, the builder returns a recorder that
    /// records nothing and registers nothing.
    pub enabled: bool,
    /// Must be 1.0: a sampled counter is wrong in every total and rate.
    pub sample_rate: f64,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            enabled: true,
            sample_rate: 1.0,
        }
    }
}

/// Builds a [`DedupRecorder`].
#[derive(Clone, Debug, Default)]
pub struct DedupRecorderBuilder {
    config: DedupConfig,
}

settings::switchable_builder!(
    DedupRecorderBuilder,
    DedupConfig,
    DedupRecorder,
    check = |config| settings::check_sample_rate(Self::NAME, config.sample_rate)
);

impl DedupRecorderBuilder {}

/// The deduplication recorder: a pre-indexed counter on any [`Backend`](crate::toolkit::Backend), or
/// nothing at all when disabled.
///
/// There is no duplicate-ratio gauge, on purpose: a ratio worked out in the process
/// cannot be added up across instances (5 % on a busy replica and 40 % on an
/// idle one are not 22.5 % overall) or looked at over another window. The counter holds every part,
/// and PromQL divides rates for any set of instances and any window:
/// `sum(rate(dedup_checks_total{result="duplicate"}[5m])) / sum(rate(dedup_checks_total[5m]))`.
///
/// Clones are cheap (one reference count) and share cells; so do recorders built
/// twice on one backend.
#[derive(Clone, Debug)]
pub struct DedupRecorder {
    checks: Option<Arc<Counter<DedupResult>>>,
}

impl Family for DedupRecorder {
    const NAME: &'static str = "dedup";
    type Config = DedupConfig;

    fn build(config: &DedupConfig, family: &mut FamilyBuilder<'_>) -> Result<Self, ConfigError> {
        settings::check_sample_rate(Self::NAME, config.sample_rate)?;
        if !config.enabled {
            return Ok(Self::disabled());
        }
        let checks = family.counter(&CHECKS, vec![closed::<DedupResult>()])?;
        Ok(DedupRecorder {
            checks: Some(Arc::new(checks)),
        })
    }
}

impl DedupRecorder {
    /// A builder with the defaults: enabled.
    pub fn builder() -> DedupRecorderBuilder {
        DedupRecorderBuilder::default()
    }

    /// A recorder that records nothing, at the cost of one branch a call.
    pub const fn disabled() -> Self {
        DedupRecorder { checks: None }
    }

    /// Whether this recorder records.
    pub fn is_enabled(&self) -> bool {
        self.checks.is_some()
    }

    /// One check found `result`.
    #[inline]
    pub fn record(&self, result: DedupResult) {
        if let Some(checks) = &self.checks {
            checks.add(result, 1);
            outcome_event!("dedup", "dedup check", outcometer.result = result.as_str());
        }
    }

    /// Checks that found `result` so far.
    pub fn checks(&self, result: DedupResult) -> u64 {
        self.checks.as_ref().map_or(0, |c| c.value(result))
    }
}

impl DedupMetrics for DedupRecorder {
    #[inline]
    fn record_check(&self, result: DedupResult) {
        self.record(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::InMemoryBackend;

    #[test]
    fn counts_both_results_on_one_counter() {
        let backend = InMemoryBackend::with_namespace("observer").unwrap();
        let dedup = DedupRecorder::builder().build(&backend).unwrap();
        let shared: Arc<dyn DedupMetrics> = Arc::new(dedup.clone());
        shared.record_unique();
        dedup.record_duplicate();
        dedup.record_duplicate();
        assert_eq!(dedup.checks(DedupResult::Duplicate), 2);
        let name = "observer.dedup.checks";
        assert_eq!(backend.counter_value(name, &[("result", "unique")]), Some(1));
        assert_eq!(backend.counter_value(name, &[("result", "duplicate")]), Some(2));
    }

    #[test]
    fn disabled_or_sampled() {
        let backend = InMemoryBackend::new();
        let off = DedupRecorder::builder().enabled(false).build(&backend).unwrap();
        off.record_duplicate();
        assert_eq!((off.is_enabled(), off.checks(DedupResult::Duplicate)), (false, 0));
        assert!(crate::backend::Backend::registry(&backend)
            .unwrap()
            .families()
            .is_empty());
        let err = DedupRecorder::builder()
            .sample_rate(0.5)
            .build(&backend)
            .unwrap_err();
        assert!(err.to_string().contains("only 1.0 is accepted"), "{err}");
        NoopDedupMetrics.record_unique();
    }
}
