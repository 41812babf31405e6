//! Idempotency outcomes (seeds 000 and 002) and their recorder.
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
use crate::attr::user_scope::{ScopeHasher, ScopePrefixLen, UserScope, UserScopeDimension};
use crate::attr::{ClosedSet, EnumDimension};
use crate::error::ConfigError;
use crate::instrument::{
    Backend, Counter, Histogram, InstrumentDef, InstrumentKind, InstrumentSpec, Namespace,
};

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

/// The idempotency metrics port (seed 000), synchronous on purpose.
///
/// Recording is an in-memory update that cannot fail; an `async fn` returning
/// `Result` here (as in the seed) forces every caller to `.await` an atomic add
/// and to decide what to do with an error that cannot happen.
pub trait IdempotencyMetrics: Send + Sync {
    /// Records one request's outcome. `key_age` is the age of the reused key;
    /// it is ignored (`age_bucket="n/a"`) for outcomes that reuse no key.
    fn record_outcome(&self, outcome: IdempotencyOutcome, scope: UserScope, key_age: Option<Duration>);

    /// The primary store failed and a fallback store answered.
    fn record_store_fallback(&self, operation: StoreOperation);

    /// No store could answer; the request was served without idempotency (fail-open).
    fn record_store_error(&self, operation: StoreOperation, kind: ErrorKind);

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

macro_rules! forward_idempotency_metrics {
    ($($ty:ty),+) => {$(
        impl<T: IdempotencyMetrics + ?Sized> IdempotencyMetrics for $ty {
            fn record_outcome(&self, outcome: IdempotencyOutcome, scope: UserScope, key_age: Option<Duration>) {
                (**self).record_outcome(outcome, scope, key_age)
            }
            fn record_store_fallback(&self, operation: StoreOperation) {
                (**self).record_store_fallback(operation)
            }
            fn record_store_error(&self, operation: StoreOperation, kind: ErrorKind) {
                (**self).record_store_error(operation, kind)
            }
        }
    )+};
}
forward_idempotency_metrics!(&T, Arc<T>, Box<T>);

impl<T: IdempotencyMetrics> IdempotencyMetrics for Option<T> {
    fn record_outcome(&self, outcome: IdempotencyOutcome, scope: UserScope, key_age: Option<Duration>) {
        if let Some(inner) = self {
            inner.record_outcome(outcome, scope, key_age)
        }
    }
    fn record_store_fallback(&self, operation: StoreOperation) {
        if let Some(inner) = self {
            inner.record_store_fallback(operation)
        }
    }
    fn record_store_error(&self, operation: StoreOperation, kind: ErrorKind) {
        if let Some(inner) = self {
            inner.record_store_error(operation, kind)
        }
    }
}

/// Records nothing, at no cost.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopIdempotencyMetrics;

impl IdempotencyMetrics for NoopIdempotencyMetrics {
    fn record_outcome(&self, _: IdempotencyOutcome, _: UserScope, _: Option<Duration>) {}
    fn record_store_fallback(&self, _: StoreOperation) {}
    fn record_store_error(&self, _: StoreOperation, _: ErrorKind) {}
}

/// `idempotency.requests`.
pub static REQUESTS: InstrumentSpec = InstrumentSpec {
    name: "idempotency.requests",
    kind: InstrumentKind::Counter,
    unit: "{request}",
    description: "Requests checked for idempotency, by outcome, anonymised user scope and key age.",
    boundaries: &[],
};

/// `idempotency.key.age`.
pub static KEY_AGE: InstrumentSpec = InstrumentSpec {
    name: "idempotency.key.age",
    kind: InstrumentKind::Histogram,
    unit: "s",
    description: "Age of an idempotency key when it was reused.",
    boundaries: &AGE_BUCKET_EDGES_SECONDS,
};

/// `idempotency.store.fallbacks`.
pub static STORE_FALLBACKS: InstrumentSpec = InstrumentSpec {
    name: "idempotency.store.fallbacks",
    kind: InstrumentKind::Counter,
    unit: "{operation}",
    description: "Idempotency-store operations answered by the fallback store after the primary failed.",
    boundaries: &[],
};

/// `idempotency.store.errors`.
pub static STORE_ERRORS: InstrumentSpec = InstrumentSpec {
    name: "idempotency.store.errors",
    kind: InstrumentKind::Counter,
    unit: "{error}",
    description: "Idempotency-store operations no store could answer; the request was served fail-open.",
    boundaries: &[],
};

/// Builds an [`IdempotencyRecorder`].
#[derive(Clone, Debug, Default)]
pub struct IdempotencyRecorderBuilder {
    namespace: String,
    scope_prefix_len: Option<u8>,
    hasher: ScopeHasher,
    key_age_histogram: bool,
}

impl IdempotencyRecorderBuilder {
    /// Prefix every instrument name (`wildside` → `wildside_idempotency_requests_total`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Hex characters of the user scope kept in the metric label (1–8; default 1).
    pub fn scope_prefix_len(mut self, len: u8) -> Self {
        self.scope_prefix_len = Some(len);
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
        self.key_age_histogram = enabled;
        self
    }

    /// Validates the configuration and creates the instruments on `backend`.
    pub fn build(self, backend: &impl Backend) -> Result<IdempotencyRecorder, ConfigError> {
        let namespace = Namespace::new(&self.namespace)?;
        let prefix = self
            .scope_prefix_len
            .map_or(Ok(ScopePrefixLen::DEFAULT), ScopePrefixLen::new)?;
        let requests = InstrumentDef::new(
            &REQUESTS,
            &namespace,
            vec![
                Arc::new(EnumDimension::<IdempotencyOutcome>::new()),
                Arc::new(UserScopeDimension { prefix }),
                Arc::new(EnumDimension::<AgeBucket>::new()),
            ],
        )?;
        let key_age = InstrumentDef::new(
            &KEY_AGE,
            &namespace,
            vec![Arc::new(EnumDimension::<KeyReuse>::new())],
        )?;
        let fallbacks = InstrumentDef::new(
            &STORE_FALLBACKS,
            &namespace,
            vec![Arc::new(EnumDimension::<StoreOperation>::new())],
        )?;
        let errors = InstrumentDef::new(
            &STORE_ERRORS,
            &namespace,
            vec![
                Arc::new(EnumDimension::<StoreOperation>::new()),
                Arc::new(EnumDimension::<ErrorKind>::new()),
            ],
        )?;
        Ok(IdempotencyRecorder {
            requests: backend.counter(Arc::new(requests)),
            key_age: self
                .key_age_histogram
                .then(|| backend.histogram(Arc::new(key_age))),
            store_fallbacks: backend.counter(Arc::new(fallbacks)),
            store_errors: backend.counter(Arc::new(errors)),
            scopes: prefix.prefix_count() + 1,
            prefix,
            hasher: self.hasher,
        })
    }
}

/// The idempotency recorder: pre-indexed instruments on any [`Backend`].
#[derive(Clone, Debug)]
pub struct IdempotencyRecorder {
    requests: Counter,
    key_age: Option<Histogram>,
    store_fallbacks: Counter,
    store_errors: Counter,
    prefix: ScopePrefixLen,
    scopes: usize,
    hasher: ScopeHasher,
}

impl IdempotencyRecorder {
    /// A builder with the defaults: no namespace, 1-character scope prefix,
    /// SHA-256 scopes, no key-age histogram.
    pub fn builder() -> IdempotencyRecorderBuilder {
        IdempotencyRecorderBuilder::default()
    }

    /// The scope of `user_id` under this recorder's hasher (empty id: anonymous).
    pub fn scope(&self, user_id: &str) -> UserScope {
        self.hasher.scope(user_id)
    }

    #[inline]
    fn request_series(&self, outcome: IdempotencyOutcome, scope: UserScope, age: AgeBucket) -> usize {
        (outcome.index() * self.scopes + scope.prefix_index(self.prefix)) * AgeBucket::ALL.len() + age.index()
    }

    /// How many requests ended with `outcome`, over all scopes and ages.
    pub fn count(&self, outcome: IdempotencyOutcome) -> u64 {
        let per_outcome = self.scopes * AgeBucket::ALL.len();
        let start = outcome.index() * per_outcome;
        (start..start + per_outcome).map(|s| self.requests.value(s)).sum()
    }

    /// How many requests ended with `outcome` for `scope`'s prefix and `age`.
    pub fn count_of(&self, outcome: IdempotencyOutcome, scope: UserScope, age: AgeBucket) -> u64 {
        self.requests.value(self.request_series(outcome, scope, age))
    }

    /// How many store operations fell back, for `operation`.
    pub fn store_fallbacks(&self, operation: StoreOperation) -> u64 {
        self.store_fallbacks.value(operation.index())
    }

    /// How many store operations failed open, for `operation` and `kind`.
    pub fn store_errors(&self, operation: StoreOperation, kind: ErrorKind) -> u64 {
        self.store_errors
            .value(operation.index() * ErrorKind::ALL.len() + kind.index())
    }

    /// The instruments this recorder exports, for catalogs and views.
    pub fn instruments(&self) -> Vec<Arc<InstrumentDef>> {
        let mut all = vec![self.requests.def().clone()];
        all.extend(self.key_age.as_ref().map(|h| h.def().clone()));
        all.extend([
            self.store_fallbacks.def().clone(),
            self.store_errors.def().clone(),
        ]);
        all
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
        self.requests.add(self.request_series(outcome, scope, age), 1);
        if let (Some(histogram), Some(reuse), Some(age)) = (&self.key_age, reuse, key_age) {
            histogram.record(reuse.index(), age.as_secs_f64());
        }
    }

    fn record_store_fallback(&self, operation: StoreOperation) {
        self.store_fallbacks.add(operation.index(), 1);
    }

    fn record_store_error(&self, operation: StoreOperation, kind: ErrorKind) {
        self.store_errors
            .add(operation.index() * ErrorKind::ALL.len() + kind.index(), 1);
    }
}
