//! Caches: lookups that hit or missed, entries evicted and why, and bytes held.
//!
//! `cache.gets{cache,result}` holds both parts of the hit ratio. There is no
//! hit-ratio gauge: a ratio computed in the process cannot be summed across
//! instances (two replicas at 90 % and 10 % are not at 100 %, nor at 50 % unless
//! they serve equal traffic) or looked at over another window, while
//! `rate(…{result="hit"}[5m]) / rate(…[5m])` gives it for any set of instances
//! and any window. Cache names pass an admission (the first 20 seen by default,
//! or an allow-list); the rest are `_OTHER`.

use std::sync::Arc;

use crate::attr::admission::{Admission, AdmissionPolicy, Admitted, AdmittedDimension, Names};
use crate::attr::{closed, Dimension};
use crate::cells::{Counter, Gauge};
use crate::detail::{clip_name, outcome_event, Name};
use crate::error::ConfigError;
use crate::instrument::InstrumentSpec;
use crate::registry::{Family, FamilyBuilder};
use crate::settings;

crate::closed_set! {
    /// What a cache lookup found.
    pub enum CacheResult: "result" {
        /// The key was cached.
        Hit = "hit",
        /// The key was not cached (absent or expired).
        Miss = "miss",
    }
}

crate::closed_set! {
    /// Why an entry left a cache.
    pub enum EvictionCause: "cause" {
        /// Its time to live ran out.
        Expired = "expired",
        /// The cache was over its size or byte limit.
        Size = "size",
        /// It was removed on purpose (invalidation, `remove`, `clear`).
        Explicit = "explicit",
        /// A new value for the same key took its place.
        Replaced = "replaced",
    }
}

crate::port! {
    /// The cache metrics port: what a cache records through.
    ///
    /// Synchronous: recording cannot fail and never waits. Pass
    /// [`NoopCacheMetrics`] in tests or when metrics are off.
    pub trait CacheMetrics {
        /// One lookup in `cache` found `result`.
        fn record_get(&self, cache: &str, result: CacheResult);
        /// One entry left `cache` for `cause`.
        fn record_eviction(&self, cache: &str, cause: EvictionCause);
        /// `cache` now holds `bytes` bytes.
        fn record_size(&self, cache: &str, bytes: u64);
        provided {
            /// One lookup in `cache` hit.
            fn record_hit(&self, cache: &str) {
                self.record_get(cache, CacheResult::Hit);
            }
            /// One lookup in `cache` missed.
            fn record_miss(&self, cache: &str) {
                self.record_get(cache, CacheResult::Miss);
            }
        }
    }
    /// Records nothing, at no cost.
    noop NoopCacheMetrics;
}

/// How many cache names get their own `cache` value by default.
pub const DEFAULT_ADMITTED_CACHES: usize = 20;

static GETS: InstrumentSpec =
    InstrumentSpec::counter("cache.gets", "{get}", "Cache lookups, by cache and result.");
static EVICTIONS: InstrumentSpec = InstrumentSpec::counter(
    "cache.evictions",
    "{entry}",
    "Entries that left a cache, by cache and cause.",
);
static SIZE: InstrumentSpec = InstrumentSpec::gauge("cache.size", "By", "Bytes a cache holds, by cache.");

/// A pre-resolved cache: its `cache` coordinate. Resolve once with
/// [`CacheRecorder::cache`] and record with the `…_at` methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cache(Option<Admitted>);

/// What a cache family is built with; two builds with equal configs share cells.
/// Read it from a configuration file with the `serde` feature.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Whether anything is recorded. Off, the builder returns a recorder that
    /// records nothing and registers nothing.
    pub enabled: bool,
    /// Which cache names become `cache` values (default: the first 20 seen).
    #[cfg_attr(feature = "serde", serde(with = "settings::AdmissionPolicyDef"))]
    pub caches: AdmissionPolicy,
    /// Must be 1.0: a sampled counter is wrong in every total and rate.
    pub sample_rate: f64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            caches: AdmissionPolicy::first_k(DEFAULT_ADMITTED_CACHES),
            sample_rate: 1.0,
        }
    }
}

/// Builds a [`CacheRecorder`].
#[derive(Clone, Debug, Default)]
pub struct CacheRecorderBuilder {
    config: CacheConfig,
}

settings::switchable_builder!(
    CacheRecorderBuilder,
    CacheConfig,
    CacheRecorder,
    check = |config| config.admission().map(drop)
);

impl CacheRecorderBuilder {
    /// How cache names become `cache` values (default: the first 20 seen; an
    /// allow-list, or both).
    pub fn caches(mut self, policy: AdmissionPolicy) -> Self {
        self.config.caches = policy;
        self
    }
}

impl CacheConfig {
    /// Checks every setting; returns the admission of cache names.
    fn admission(&self) -> Result<Admission, ConfigError> {
        settings::check_sample_rate(CacheRecorder::NAME, self.sample_rate)?;
        Admission::new("cache", &self.caches, Names)
    }
}

/// The cache recorder: pre-indexed instruments on any [`Backend`](crate::toolkit::Backend), or nothing at
/// all when disabled.
///
/// There is no hit-ratio gauge, on purpose: a ratio worked out in the process
/// cannot be added up across instances (90 % on a busy replica and 10 % on an
/// idle one are not 50 % overall) or looked at over another window. The counter holds every part,
/// and PromQL divides rates for any set of instances and any window:
/// `sum by (cache) (rate(cache_gets_total{result="hit"}[5m])) / sum by (cache) (rate(cache_gets_total[5m]))`.
///
/// Clones are cheap (one reference count) and share cells; so do recorders built
/// twice on one backend.
#[derive(Clone, Debug)]
pub struct CacheRecorder {
    cells: Option<Arc<CacheCells>>,
}

#[derive(Debug)]
struct CacheCells {
    caches: Arc<Admission>,
    gets: Counter<(Admitted, CacheResult)>,
    evictions: Counter<(Admitted, EvictionCause)>,
    size: Gauge<Admitted>,
}

impl Family for CacheRecorder {
    const NAME: &'static str = "cache";
    type Config = CacheConfig;

    fn build(config: &CacheConfig, family: &mut FamilyBuilder<'_>) -> Result<Self, ConfigError> {
        let caches = Arc::new(config.admission()?);
        if !config.enabled {
            return Ok(Self::disabled());
        }
        let cache = || -> Arc<dyn Dimension> { Arc::new(AdmittedDimension(caches.clone())) };
        let cells = CacheCells {
            gets: family.counter(&GETS, vec![cache(), closed::<CacheResult>()])?,
            evictions: family.counter(&EVICTIONS, vec![cache(), closed::<EvictionCause>()])?,
            size: family.gauge(&SIZE, vec![cache()])?,
            caches,
        };
        Ok(CacheRecorder {
            cells: Some(Arc::new(cells)),
        })
    }
}

/// The sum of `counter`'s series whose coordinate along `dim` is `index`.
fn total_where<C: crate::instrument::Coords>(counter: &Counter<C>, dim: usize, index: usize) -> u64 {
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

impl CacheRecorder {
    /// A builder with the defaults: enabled, the first 20 cache names.
    pub fn builder() -> CacheRecorderBuilder {
        CacheRecorderBuilder::default()
    }

    /// A recorder that records nothing, at the cost of one branch a call.
    pub const fn disabled() -> Self {
        CacheRecorder { cells: None }
    }

    /// Whether this recorder records.
    pub fn is_enabled(&self) -> bool {
        self.cells.is_some()
    }

    /// Resolves `name` to its `cache` value, admitting it if the policy still
    /// allows (otherwise `_OTHER`, counted on the overflow counter). Resolve once
    /// per cache, not per lookup.
    pub fn cache(&self, name: &str) -> Cache {
        Cache(self.cells.as_ref().map(|c| c.caches.resolve(name)))
    }

    /// One lookup in a pre-resolved cache found `result`: the fast path.
    #[inline]
    pub fn record_get_at(&self, cache: Cache, result: CacheResult) {
        self.get_named(cache, result, || self.admitted_name(cache));
    }

    /// One entry left a pre-resolved cache for `cause`.
    #[inline]
    pub fn record_eviction_at(&self, cache: Cache, cause: EvictionCause) {
        self.eviction_named(cache, cause, || self.admitted_name(cache));
    }

    /// `cache`'s admitted name, for trace events (`None` for `_OTHER`).
    fn admitted_name(&self, cache: Cache) -> Option<&str> {
        self.cells.as_ref()?.caches.value(cache.0?.index())
    }

    // The record paths, with the name their trace event carries: as given by
    // the by-name methods, admitted by the `…_at` ones.

    #[inline]
    fn get_named<'a>(&self, cache: Cache, result: CacheResult, name: impl Name<'a>) {
        if let (Some(cells), Some(at)) = (&self.cells, cache.0) {
            cells.gets.add((at, result), 1);
            outcome_event!(
                "cache",
                "cache get",
                outcometer.cache.name = name().map(clip_name),
                outcometer.result = result.as_str(),
            );
        }
    }

    #[inline]
    fn eviction_named<'a>(&self, cache: Cache, cause: EvictionCause, name: impl Name<'a>) {
        if let (Some(cells), Some(at)) = (&self.cells, cache.0) {
            cells.evictions.add((at, cause), 1);
            outcome_event!(
                "cache",
                "cache eviction",
                outcometer.cache.name = name().map(clip_name),
                outcometer.cause = cause.as_str(),
            );
        }
    }

    /// A pre-resolved cache now holds `bytes` bytes.
    #[inline]
    pub fn record_size_at(&self, cache: Cache, bytes: u64) {
        if let (Some(cells), Some(at)) = (&self.cells, cache.0) {
            cells.size.set(at, i64::try_from(bytes).unwrap_or(i64::MAX));
        }
    }

    /// Lookups with `result` so far, over all caches.
    pub fn gets(&self, result: CacheResult) -> u64 {
        self.cells
            .as_ref()
            .map_or(0, |c| total_where(&c.gets, 1, result.index()))
    }

    /// Lookups in `cache` with `result` so far.
    pub fn gets_of(&self, cache: Cache, result: CacheResult) -> u64 {
        match (&self.cells, cache.0) {
            (Some(cells), Some(at)) => cells.gets.value((at, result)),
            _ => 0,
        }
    }

    /// Evictions for `cause` so far, over all caches.
    pub fn evictions(&self, cause: EvictionCause) -> u64 {
        self.cells
            .as_ref()
            .map_or(0, |c| total_where(&c.evictions, 1, cause.index()))
    }

    /// The last size recorded for `cache`, in bytes.
    pub fn size_of(&self, cache: Cache) -> Option<u64> {
        match (&self.cells, cache.0) {
            (Some(cells), Some(at)) => cells.size.value(at).and_then(|v| u64::try_from(v).ok()),
            _ => None,
        }
    }
}

impl CacheMetrics for CacheRecorder {
    fn record_get(&self, cache: &str, result: CacheResult) {
        self.get_named(self.cache(cache), result, || Some(cache));
    }
    fn record_eviction(&self, cache: &str, cause: EvictionCause) {
        self.eviction_named(self.cache(cache), cause, || Some(cache));
    }
    fn record_size(&self, cache: &str, bytes: u64) {
        self.record_size_at(self.cache(cache), bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::InMemoryBackend;

    #[test]
    fn lookups_evictions_and_bytes_by_cache() {
        let backend = InMemoryBackend::with_namespace("observer").unwrap();
        let caches = CacheRecorder::builder()
            .caches(AdmissionPolicy::allow_list(["results"]))
            .build(&backend)
            .unwrap();
        let results = caches.cache("results");
        caches.record_get_at(results, CacheResult::Hit);
        caches.record_hit("results");
        caches.record_miss("sessions");
        caches.record_eviction("results", EvictionCause::Replaced);
        caches.record_eviction_at(results, EvictionCause::Expired);
        caches.record_size_at(results, 4096);
        caches.record_size("results", u64::MAX);
        assert_eq!(caches.gets_of(results, CacheResult::Hit), 2);
        assert_eq!(caches.gets(CacheResult::Miss), 1);
        assert_eq!(caches.evictions(EvictionCause::Expired), 1);
        assert_eq!(caches.size_of(results), Some(i64::MAX as u64));
        let gets = "observer.cache.gets";
        assert_eq!(
            backend.counter_value(gets, &[("cache", "_OTHER"), ("result", "miss")]),
            Some(1)
        );
        assert_eq!(
            backend.counter_value("outcometer.attribute.overflow", &[("attribute", "cache")]),
            Some(1)
        );
        assert_eq!(
            backend.gauge_value("observer.cache.size", &[("cache", "results")]),
            Some(i64::MAX as f64)
        );
    }

    #[test]
    fn disabled_resolves_nothing_and_bad_policies_still_fail() {
        let off = CacheRecorder::builder()
            .enabled(false)
            .build(&InMemoryBackend::new())
            .unwrap();
        let cache = off.cache("results");
        off.record_get_at(cache, CacheResult::Hit);
        assert_eq!((off.gets(CacheResult::Hit), off.size_of(cache)), (0, None));
        let err = CacheRecorder::builder()
            .enabled(false)
            .caches(AdmissionPolicy::first_k(0))
            .build(&InMemoryBackend::new())
            .unwrap_err();
        assert!(err.to_string().contains("`cache` admits nothing"), "{err}");
    }
}
