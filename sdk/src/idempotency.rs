//! Idempotency outcomes and their recorder.
//!
//! Request outcomes share one counter, `idempotency.requests{outcome,user_scope,age_bucket}`,
//! so ratios are one PromQL division. Store health is kept apart: a fallback or a
//! fail-open store error is not a request outcome (the request still ends as a
//! hit or a miss), and on its own instrument it can be alerted on without being
//! diluted by user scopes.

use std::sync::Arc;
use std::time::Duration;

use crate::attr::age::{AgeBucket, AGE_BUCKET_EDGES_SECONDS};
use crate::attr::error_kind::ErrorKind;
use crate::attr::user_scope::{
    ScopeCoord, ScopeHasher, ScopePrefixLen, UserScope, UserScopeDimension, DEFAULT_ADMITTED_SCOPES,
};
use crate::attr::{closed, Dimension};
use crate::backend::Backend;
use crate::cells::{Counter, Histogram};
use crate::detail::{outcome_event, seconds};
use crate::error::ConfigError;
use crate::instrument::InstrumentSpec;
use crate::registry::{self, Family, FamilyBuilder};

crate::closed_set! {
    /// How an idempotency check ended for one request.
    pub enum IdempotencyOutcome: "outcome" {
        /// New key, or no key: the request runs.
        Miss = "miss",
        /// Key seen with the same payload: the stored response is replayed.
        Hit = "hit",
        /// Key seen with a different payload: rejected (409).
        Conflict = "conflict",
        /// Key seen and its first request is still running: rejected or made to wait.
        InFlight = "in_flight",
        /// Key held by a lock older than the stale-lock timeout: taken over and run.
        StaleLockRecovered = "stale_lock_recovered",
        /// No key, but the same canonical content was just seen (content fingerprint).
        FingerprintDuplicate = "fingerprint_duplicate",
    }
}

crate::closed_set! {
    /// The outcomes that reuse an existing key, and so have a key age.
    pub enum KeyReuse: "outcome" {
        /// See [`IdempotencyOutcome::Hit`].
        Hit = "hit",
        /// See [`IdempotencyOutcome::Conflict`].
        Conflict = "conflict",
        /// See [`IdempotencyOutcome::InFlight`].
        InFlight = "in_flight",
        /// See [`IdempotencyOutcome::StaleLockRecovered`].
        StaleLockRecovered = "stale_lock_recovered",
    }
}

crate::closed_set! {
    /// Which idempotency-store operation degraded.
    pub enum StoreOperation: "operation" {
        /// Looking a key or fingerprint up.
        Read = "read",
        /// Saving a lock or a response.
        Write = "write",
    }
}

impl IdempotencyOutcome {
    /// The key-reuse outcome this is, if it reuses a key.
    pub fn key_reuse(self) -> Option<KeyReuse> {
        match self {
            IdempotencyOutcome::Hit => Some(KeyReuse::Hit),
            IdempotencyOutcome::Conflict => Some(KeyReuse::Conflict),
            IdempotencyOutcome::InFlight => Some(KeyReuse::InFlight),
            IdempotencyOutcome::StaleLockRecovered => Some(KeyReuse::StaleLockRecovered),
            IdempotencyOutcome::Miss | IdempotencyOutcome::FingerprintDuplicate => None,
        }
    }
}

crate::port! {
    /// The idempotency metrics port: what request handlers record through.
    ///
    /// A *port* is the trait application code depends on, so tests and disabled
    /// builds can pass [`NoopIdempotencyMetrics`] instead of the recorder. It is
    /// synchronous on purpose: recording is an in-memory update that cannot fail,
    /// and an `async fn` returning `Result` would force every caller to `.await`
    /// an atomic add and handle an error that cannot happen.
    pub trait IdempotencyMetrics {
        /// Records one request's outcome. `key_age` is the age of the reused key;
        /// it is ignored (`age_bucket="n/a"`) for outcomes that reuse no key.
        fn record_outcome(&self, outcome: IdempotencyOutcome, scope: UserScope, key_age: Option<Duration>);
        /// How long a request with `outcome` took to answer (replays against runs);
        /// recorded only when the request-duration histogram is on.
        fn record_request_duration(&self, outcome: IdempotencyOutcome, duration: Duration);
        /// The primary store failed and a fallback store answered.
        fn record_store_fallback(&self, operation: StoreOperation);
        /// No store could answer; the request was served without idempotency (fail-open).
        fn record_store_error(&self, operation: StoreOperation, kind: ErrorKind);
        provided {
            /// A new key, or no key.
            fn record_miss(&self, scope: UserScope) {
                self.record_outcome(IdempotencyOutcome::Miss, scope, None);
            }
            /// A replay of a key `key_age` old.
            fn record_hit(&self, scope: UserScope, key_age: Duration) {
                self.record_outcome(IdempotencyOutcome::Hit, scope, Some(key_age));
            }
            /// A reuse of a key `key_age` old with a different payload.
            fn record_conflict(&self, scope: UserScope, key_age: Duration) {
                self.record_outcome(IdempotencyOutcome::Conflict, scope, Some(key_age));
            }
            /// A reuse of a key whose first request, `key_age` ago, is still running.
            fn record_in_flight(&self, scope: UserScope, key_age: Duration) {
                self.record_outcome(IdempotencyOutcome::InFlight, scope, Some(key_age));
            }
            /// A lock `lock_age` old was stale and taken over.
            fn record_stale_lock_recovered(&self, scope: UserScope, lock_age: Duration) {
                self.record_outcome(IdempotencyOutcome::StaleLockRecovered, scope, Some(lock_age));
            }
            /// A keyless duplicate caught by content fingerprint.
            fn record_fingerprint_duplicate(&self, scope: UserScope) {
                self.record_outcome(IdempotencyOutcome::FingerprintDuplicate, scope, None);
            }
        }
    }
    /// Records nothing, at no cost.
    noop NoopIdempotencyMetrics;
}

/// Bucket boundaries of `idempotency.request.duration` (seconds): from a fast
/// replay out of a cache (1 ms) to a slow run (10 s).
pub const REQUEST_DURATION_BOUNDARIES_SECONDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

static REQUESTS: InstrumentSpec = InstrumentSpec::counter(
    "idempotency.requests",
    "{request}",
    "Requests checked for idempotency, by outcome, anonymised user scope and key age.",
);
static KEY_AGE: InstrumentSpec = InstrumentSpec::histogram(
    "idempotency.key.age",
    "s",
    "Age of an idempotency key when it was reused.",
    &AGE_BUCKET_EDGES_SECONDS,
)
.opt_in("IdempotencyRecorder::builder().key_age_histogram(true)");
static REQUEST_DURATION: InstrumentSpec = InstrumentSpec::histogram(
    "idempotency.request.duration",
    "s",
    "Time to answer a request checked for idempotency, by outcome: replays against runs.",
    &REQUEST_DURATION_BOUNDARIES_SECONDS,
)
.opt_in("IdempotencyRecorder::builder().request_duration_histogram(true)");
static STORE_FALLBACKS: InstrumentSpec = InstrumentSpec::counter(
    "idempotency.store.fallbacks",
    "{operation}",
    "Idempotency-store operations answered by the fallback store after the primary failed.",
);
static STORE_ERRORS: InstrumentSpec = InstrumentSpec::counter(
    "idempotency.store.errors",
    "{error}",
    "Idempotency-store operations no store could answer; the request was served fail-open.",
);

/// What an idempotency family is built with; two builds with equal configs share cells.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdempotencyConfig {
    /// Hex characters of the user scope kept in the metric label (1–8).
    pub scope_prefix_len: u8,
    /// For prefixes of 4–8 characters: how many distinct prefixes keep their value.
    pub admitted_scopes: usize,
    /// Whether `idempotency.key.age` is recorded.
    pub key_age_histogram: bool,
    /// Whether `idempotency.request.duration` is recorded.
    pub request_duration_histogram: bool,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        IdempotencyConfig {
            scope_prefix_len: ScopePrefixLen::DEFAULT.get(),
            admitted_scopes: DEFAULT_ADMITTED_SCOPES,
            key_age_histogram: false,
            request_duration_histogram: false,
        }
    }
}

/// Builds an [`IdempotencyRecorder`].
#[derive(Clone, Debug, Default)]
pub struct IdempotencyRecorderBuilder {
    config: IdempotencyConfig,
    hasher: ScopeHasher,
}

impl IdempotencyRecorderBuilder {
    /// Hex characters of the user scope kept in the metric label (1–8; default 1).
    /// 1–3 give every prefix a series (17, 257, 4,097 values); 4–8 admit the first
    /// [`admitted_scopes`](Self::admitted_scopes) prefixes seen and fold the rest
    /// into `_OTHER`, so 8 yields full 8-hex scopes under a declared bound.
    pub fn scope_prefix_len(mut self, len: u8) -> Self {
        self.config.scope_prefix_len = len;
        self
    }

    /// For prefix lengths 4–8: how many distinct prefixes keep their own value (default 1,000).
    pub fn admitted_scopes(mut self, k: usize) -> Self {
        self.config.admitted_scopes = k;
        self
    }

    /// How user ids become scopes (default plain SHA-256).
    pub fn scope_hasher(mut self, hasher: ScopeHasher) -> Self {
        self.hasher = hasher;
        self
    }

    /// Also record each reused key's exact age in the `idempotency.key.age`
    /// histogram (default off). The counter's `age_bucket` already has the same
    /// edges; the histogram adds the sum (mean age) and `histogram_quantile`. It
    /// costs ~7× a counter per reuse: the OpenTelemetry SDK's bound histogram
    /// takes a lock, shared by every thread recording the same outcome
    /// (docs/adr/0003-record-path.md).
    pub fn key_age_histogram(mut self, enabled: bool) -> Self {
        self.config.key_age_histogram = enabled;
        self
    }

    /// Also record how long each request took, by outcome, in the
    /// `idempotency.request.duration` histogram (default off): replays should be
    /// far faster than runs, and a slow replay means a slow store.
    pub fn request_duration_histogram(mut self, enabled: bool) -> Self {
        self.config.request_duration_histogram = enabled;
        self
    }

    /// Validates the configuration and creates the instruments on `backend`, or
    /// returns a recorder sharing the cells of the one already built there.
    pub fn build(self, backend: &(impl Backend + ?Sized)) -> Result<IdempotencyRecorder, ConfigError> {
        let mut recorder = registry::build::<IdempotencyRecorder>(backend, self.config)?;
        recorder.hasher = self.hasher;
        Ok(recorder)
    }
}

/// The idempotency recorder: pre-indexed instruments on any [`Backend`].
///
/// Clones are cheap and share cells; so do recorders built twice on one backend.
#[derive(Clone, Debug)]
pub struct IdempotencyRecorder {
    requests: Counter<(IdempotencyOutcome, ScopeCoord, AgeBucket)>,
    scopes: Arc<UserScopeDimension>,
    key_age: Option<Histogram<KeyReuse>>,
    request_duration: Option<Histogram<IdempotencyOutcome>>,
    store_fallbacks: Counter<StoreOperation>,
    store_errors: Counter<(StoreOperation, ErrorKind)>,
    hasher: ScopeHasher,
}

impl Family for IdempotencyRecorder {
    const NAME: &'static str = "idempotency";
    type Config = IdempotencyConfig;

    fn build(config: &IdempotencyConfig, family: &mut FamilyBuilder<'_>) -> Result<Self, ConfigError> {
        let prefix = ScopePrefixLen::new(config.scope_prefix_len)?;
        let scopes = Arc::new(UserScopeDimension::new(prefix, config.admitted_scopes)?);
        let scope_dim: Arc<dyn Dimension> = scopes.clone();
        let outcome = closed::<IdempotencyOutcome>;
        Ok(IdempotencyRecorder {
            requests: family.counter(&REQUESTS, vec![outcome(), scope_dim, closed::<AgeBucket>()])?,
            key_age: match config.key_age_histogram {
                true => Some(family.histogram(&KEY_AGE, vec![closed::<KeyReuse>()])?),
                false => None,
            },
            request_duration: match config.request_duration_histogram {
                true => Some(family.histogram(&REQUEST_DURATION, vec![outcome()])?),
                false => None,
            },
            store_fallbacks: family.counter(&STORE_FALLBACKS, vec![closed::<StoreOperation>()])?,
            store_errors: family.counter(
                &STORE_ERRORS,
                vec![closed::<StoreOperation>(), closed::<ErrorKind>()],
            )?,
            scopes,
            hasher: ScopeHasher::default(),
        })
    }

    fn catalog_config() -> IdempotencyConfig {
        IdempotencyConfig {
            key_age_histogram: true,
            request_duration_histogram: true,
            ..IdempotencyConfig::default()
        }
    }
}

impl IdempotencyRecorder {
    /// A builder with the defaults: 1-character scope prefix, SHA-256 scopes,
    /// no opt-in histograms.
    pub fn builder() -> IdempotencyRecorderBuilder {
        IdempotencyRecorderBuilder::default()
    }

    /// The scope of `user_id` under this recorder's hasher (empty id: anonymous).
    pub fn scope(&self, user_id: &str) -> UserScope {
        self.hasher.scope(user_id)
    }

    /// How many requests ended with `outcome`, over all scopes and ages.
    pub fn count(&self, outcome: IdempotencyOutcome) -> u64 {
        let def = self.requests.def();
        let per_outcome = def.series_bound() / IdempotencyOutcome::ALL.len();
        let start = outcome.index() * per_outcome;
        self.requests
            .values()
            .skip(start)
            .take(per_outcome)
            .map(|(_, v)| v)
            .sum()
    }

    /// How many requests ended with `outcome` for `scope`'s prefix and `age`.
    /// (Asking admits the prefix, as recording would.)
    pub fn count_of(&self, outcome: IdempotencyOutcome, scope: UserScope, age: AgeBucket) -> u64 {
        self.requests.value((outcome, self.scopes.coordinate(scope), age))
    }

    /// How many store operations fell back, for `operation`.
    pub fn store_fallbacks(&self, operation: StoreOperation) -> u64 {
        self.store_fallbacks.value(operation)
    }

    /// How many store operations failed open, for `operation` and `kind`.
    pub fn store_errors(&self, operation: StoreOperation, kind: ErrorKind) -> u64 {
        self.store_errors.value((operation, kind))
    }
}

impl IdempotencyMetrics for IdempotencyRecorder {
    #[inline]
    fn record_outcome(&self, outcome: IdempotencyOutcome, scope: UserScope, key_age: Option<Duration>) {
        let reuse = outcome.key_reuse();
        let age = match (reuse, key_age) {
            (Some(_), Some(age)) => AgeBucket::from_age(age),
            _ => AgeBucket::NotApplicable,
        };
        self.requests
            .add((outcome, self.scopes.coordinate(scope), age), 1);
        if let (Some(histogram), Some(reuse), Some(age)) = (&self.key_age, reuse, key_age) {
            histogram.record(reuse, age.as_secs_f64());
        }
        outcome_event!(
            "idempotency",
            "idempotency outcome",
            outcometer.user_scope = scope.hex().as_str(),
            outcometer.outcome = outcome.as_str(),
            outcometer.age_bucket = age.as_str(),
            outcometer.key_age_s = seconds(key_age.filter(|_| reuse.is_some())),
        );
    }

    #[inline]
    fn record_request_duration(&self, outcome: IdempotencyOutcome, duration: Duration) {
        if let Some(histogram) = &self.request_duration {
            histogram.record(outcome, duration.as_secs_f64());
        }
        outcome_event!(
            "idempotency",
            "idempotency request duration",
            outcometer.outcome = outcome.as_str(),
            outcometer.duration_s = duration.as_secs_f64(),
        );
    }

    fn record_store_fallback(&self, operation: StoreOperation) {
        self.store_fallbacks.add(operation, 1);
        outcome_event!(
            "idempotency",
            "idempotency store fallback",
            outcometer.operation = operation.as_str(),
        );
    }

    fn record_store_error(&self, operation: StoreOperation, kind: ErrorKind) {
        self.store_errors.add((operation, kind), 1);
        outcome_event!(
            "idempotency",
            "idempotency store error",
            outcometer.operation = operation.as_str(),
            error.type = kind.as_str(),
        );
    }
}
