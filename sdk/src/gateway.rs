//! LLM-gateway outcomes: requests, errors, fallbacks, tokens, latency and fleet
//! state, and their recorder.
//!
//! Built under the gateway's namespace (`nexus`), the instruments read
//! `nexus_requests_total{model,backend,status}`,
//! `nexus_request_duration_seconds{model,backend}`, `nexus_tokens_total{model,backend,type}`
//! and so on in Prometheus (`docs/metrics.md` lists them all).
//!
//! Model and backend names are open inputs: a client can ask for any model name.
//! Both pass bounded admission (the configured names first, then the first K
//! others seen, then `_OTHER`, each fold counted on
//! `outcometer.attribute.overflow{attribute}`), and `model`, `from_model` and
//! `to_model` share one model admission, so a model has one coordinate whatever
//! attribute it appears under. Names are kept exactly: `gpt-4.1` and `gpt-4_1`
//! stay two values. `status` is the HTTP status as text (`"503"`) for registered
//! codes, `_OTHER` otherwise; `error_type` and `type` are closed sets.
//!
//! What counts where:
//! - `requests`, `request.duration`, `tokens`, `tokens.per_request` and
//!   `time_to_first_token` record requests a backend answered, in one call
//!   ([`GatewayRecorder::record_request_at`]), under the model that served (after
//!   any fallback) and the HTTP status of the answer;
//! - `errors` counts failed requests by why they failed and the model asked for,
//!   whether a backend answered (`timeout`, `backend_error`) or not
//!   (`no_healthy_backend`, `model_not_found`);
//! - `fallbacks` counts requests served by another model than the one asked for;
//! - `pending_requests` is what a backend is working on now ([`GatewayRecorder::track_pending`]);
//! - `backend.latency` is the latency of health checks;
//! - `backends`, `backends.healthy` and `models.available` come from a callback the
//!   application sets ([`GatewayRecorder::set_fleet_callback`]), run when metrics
//!   are collected, never on a record path.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::attr::admission::{Admission, AdmissionPolicy, Admitted, AdmittedDimension, Names};
use crate::attr::status::{HttpStatus, StatusTextDimension, REGISTERED_STATUS_CODES};
use crate::attr::{closed, AttrValue, Attribute, AttributeDoc, Dimension, OTHER};
use crate::backend::Backend as MetricsBackend;
use crate::cells::{Counter, Histogram, InFlightGuard, UpDownCounter};
use crate::detail::{clip_name, outcome_event, seconds, Name};
use crate::error::ConfigError;
use crate::instrument::{Coordinate, InstrumentSpec, Series};
use crate::registry::{self, Family, FamilyBuilder};
use crate::settings::histogram_spec;

crate::closed_set! {
    /// Why a gateway request failed (`error_type`).
    pub enum GatewayError: "error_type" {
        /// No backend serving the model was healthy.
        NoHealthyBackend = "no_healthy_backend",
        /// The backend did not answer in time.
        Timeout = "timeout",
        /// The backend answered with an error or broke the connection.
        BackendError = "backend_error",
        /// The request was refused by a rate limit (the gateway's or a backend's).
        RateLimited = "rate_limited",
        /// The request was malformed.
        InvalidRequest = "invalid_request",
        /// No backend serves the model asked for.
        ModelNotFound = "model_not_found",
        /// Anything else.
        Other = "_OTHER",
    }
}

crate::closed_set! {
    /// Which side of a completion tokens were counted on (`type`).
    pub enum TokenType: "type" {
        /// Tokens of the prompt (input).
        Prompt = "prompt",
        /// Tokens generated (output).
        Completion = "completion",
    }
}

/// Token usage of one request, as a backend reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Usage {
    /// Tokens of the prompt.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
}

impl Usage {
    /// Usage of `prompt_tokens` in and `completion_tokens` out.
    pub const fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Usage {
            prompt_tokens,
            completion_tokens,
        }
    }
}

crate::port! {
    /// The LLM-gateway metrics port: what request handlers, the router and health
    /// checks record through.
    ///
    /// A *port* is the trait application code depends on, so tests and disabled
    /// builds can pass [`NoopGatewayMetrics`] instead of the recorder. It takes
    /// names; the recorder's `…_at` methods take names resolved once
    /// ([`GatewayRecorder::model`], [`GatewayRecorder::backend`]).
    pub trait GatewayMetrics {
        /// `backend` answered a request for `model` with HTTP `status` after
        /// `duration`; `usage` if the answer carried token counts,
        /// `time_to_first_token` if it was streamed.
        fn record_request(
            &self,
            model: &str,
            backend: &str,
            status: u16,
            duration: Duration,
            usage: Option<Usage>,
            time_to_first_token: Option<Duration>
        );
        /// A request for `model` failed because of `error`.
        fn record_error(&self, model: &str, error: GatewayError);
        /// A request for `from_model` was served by `to_model`.
        fn record_fallback(&self, from_model: &str, to_model: &str);
        /// A health check of `backend` took `latency`.
        fn record_health_check(&self, backend: &str, latency: Duration);
        /// `backend` has one more request pending.
        fn increment_pending(&self, backend: &str);
        /// `backend` has one request fewer pending.
        fn decrement_pending(&self, backend: &str);
    }
    /// Records nothing, at no cost.
    noop NoopGatewayMetrics;
}

/// A model name resolved once: the `model` (and `from_model`, `to_model`)
/// coordinate. Get it from [`GatewayRecorder::model`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Model(Admitted);

impl Coordinate for Model {
    #[inline]
    fn coordinate(self) -> usize {
        self.0.coordinate()
    }
    fn fits(dimension: &dyn Dimension) -> bool {
        dimension.admission().is_some_and(|a| a.key() == MODEL_KEY)
    }
}

/// A backend name resolved once: the `backend` coordinate. Get it from
/// [`GatewayRecorder::backend`]. (Not to be confused with
/// [`toolkit::Backend`](crate::toolkit::Backend), where instruments are exported.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Backend(Admitted);

impl Coordinate for Backend {
    #[inline]
    fn coordinate(self) -> usize {
        self.0.coordinate()
    }
    fn fits(dimension: &dyn Dimension) -> bool {
        dimension.admission().is_some_and(|a| a.key() == BACKEND_KEY)
    }
}

const MODEL_KEY: &str = "model";
const BACKEND_KEY: &str = "backend";

/// The model admission under an attribute key of its own (`model`, `from_model`,
/// `to_model`): one admission, so one model has one coordinate everywhere.
#[derive(Debug)]
struct ModelDimension {
    key: &'static str,
    models: Arc<Admission>,
}

impl Dimension for ModelDimension {
    fn cardinality(&self) -> usize {
        self.models.capacity() + 1
    }
    fn attributes(&self, index: usize, out: &mut Vec<Attribute>) {
        let value = if index == self.models.capacity() {
            AttrValue::Str(OTHER)
        } else if let Some(value) = self.models.value(index) {
            AttrValue::Shared(value.into())
        } else {
            return;
        };
        out.push(Attribute { key: self.key, value });
    }
    fn docs(&self) -> Vec<AttributeDoc> {
        let shared = if self.key == MODEL_KEY {
            ""
        } else {
            " (the `model` admission)"
        };
        AdmittedDimension(self.models.clone())
            .docs()
            .into_iter()
            .map(|doc| AttributeDoc {
                key: self.key,
                values: format!("{}{shared}", doc.values),
            })
            .collect()
    }
    fn admission(&self) -> Option<&Arc<Admission>> {
        Some(&self.models)
    }
}

static REQUESTS: InstrumentSpec = InstrumentSpec::counter(
    "requests",
    "{request}",
    "Requests a backend answered, by the model that served, the backend and the HTTP status of the answer.",
);
static REQUEST_DURATION: InstrumentSpec = InstrumentSpec::histogram(
    "request.duration",
    "s",
    "Time from receiving a request to the end of the backend's answer, by model and backend.",
    &GatewayConfig::DEFAULT_REQUEST_DURATION_BUCKETS,
);
static ERRORS: InstrumentSpec = InstrumentSpec::counter(
    "errors",
    "{error}",
    "Failed requests, by why they failed and the model asked for.",
);
static FALLBACKS: InstrumentSpec = InstrumentSpec::counter(
    "fallbacks",
    "{request}",
    "Requests served by another model than the one asked for, by both models.",
);
static TOKENS: InstrumentSpec = InstrumentSpec::counter(
    "tokens",
    "{token}",
    "Tokens processed, by model, backend and prompt or completion.",
);
static TOKENS_PER_REQUEST: InstrumentSpec = InstrumentSpec::histogram(
    "tokens.per_request",
    "{token}",
    "Tokens of one request, by model and prompt or completion.",
    &GatewayConfig::TOKEN_BUCKETS,
);
static TIME_TO_FIRST_TOKEN: InstrumentSpec = InstrumentSpec::histogram(
    "time_to_first_token",
    "s",
    "Time from receiving a streamed request to its first token, by model and backend.",
    &GatewayConfig::DEFAULT_TIME_TO_FIRST_TOKEN_BUCKETS,
);
static PENDING_REQUESTS: InstrumentSpec = InstrumentSpec::up_down_counter(
    "pending_requests",
    "{request}",
    "Requests a backend is working on now.",
);
static BACKEND_LATENCY: InstrumentSpec = InstrumentSpec::histogram(
    "backend.latency",
    "s",
    "Latency of backend health checks, by backend.",
    &GatewayConfig::DEFAULT_BACKEND_LATENCY_BUCKETS,
);
static BACKENDS: InstrumentSpec = InstrumentSpec::gauge(
    "backends",
    "{backend}",
    "Backends configured, as the fleet callback reports them.",
);
static BACKENDS_HEALTHY: InstrumentSpec = InstrumentSpec::gauge(
    "backends.healthy",
    "{backend}",
    "Backends whose last health check passed, as the fleet callback reports them.",
);
static MODELS_AVAILABLE: InstrumentSpec = InstrumentSpec::gauge(
    "models.available",
    "{model}",
    "Distinct models served by healthy backends, as the fleet callback reports them.",
);

/// What a gateway family is built with; two builds with equal configs share cells.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// Which model names become `model`, `from_model` and `to_model` values: the
    /// configured models (allow-list) first, then the first K others seen.
    pub models: AdmissionPolicy,
    /// Which backend names become `backend` values.
    pub backends: AdmissionPolicy,
    /// Bucket boundaries of `request.duration`, in seconds: finite, strictly
    /// increasing, not empty.
    pub request_duration_buckets: Vec<f64>,
    /// Bucket boundaries of `time_to_first_token`, in seconds.
    pub time_to_first_token_buckets: Vec<f64>,
    /// Bucket boundaries of `backend.latency`, in seconds.
    pub backend_latency_buckets: Vec<f64>,
}

impl GatewayConfig {
    /// Distinct model names admitted beyond the allow-list by default.
    pub const DEFAULT_ADMITTED_MODELS: usize = 16;
    /// Distinct backend names admitted beyond the allow-list by default.
    pub const DEFAULT_ADMITTED_BACKENDS: usize = 8;
    /// `request.duration` boundaries: completions take from 50 ms to minutes.
    pub const DEFAULT_REQUEST_DURATION_BUCKETS: [f64; 13] = [
        0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
    ];
    /// `time_to_first_token` boundaries: 10 ms to 30 s.
    pub const DEFAULT_TIME_TO_FIRST_TOKEN_BUCKETS: [f64; 12] =
        [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0];
    /// `backend.latency` boundaries: a health check on a LAN takes ~1 ms, a loaded
    /// backend seconds.
    pub const DEFAULT_BACKEND_LATENCY_BUCKETS: [f64; 13] = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    /// `tokens.per_request` boundaries: powers of 4 from 1 to 1,048,576 (4¹⁰).
    pub const TOKEN_BUCKETS: [f64; 11] = [
        1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0,
    ];
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            models: AdmissionPolicy::first_k(Self::DEFAULT_ADMITTED_MODELS),
            backends: AdmissionPolicy::first_k(Self::DEFAULT_ADMITTED_BACKENDS),
            request_duration_buckets: Self::DEFAULT_REQUEST_DURATION_BUCKETS.to_vec(),
            time_to_first_token_buckets: Self::DEFAULT_TIME_TO_FIRST_TOKEN_BUCKETS.to_vec(),
            backend_latency_buckets: Self::DEFAULT_BACKEND_LATENCY_BUCKETS.to_vec(),
        }
    }
}

/// Builds a [`GatewayRecorder`].
#[derive(Clone, Debug, Default)]
pub struct GatewayRecorderBuilder {
    config: GatewayConfig,
}

impl GatewayRecorderBuilder {
    /// The configured models: always admitted, in this order, before any other
    /// name (default: none).
    pub fn models<S: Into<String>>(mut self, models: impl IntoIterator<Item = S>) -> Self {
        self.config.models.allow = models.into_iter().map(Into::into).collect();
        self
    }

    /// How many other model names are admitted, first come first served, before
    /// the rest become `_OTHER` (default 16; 0 for the allow-list alone).
    pub fn admitted_models(mut self, k: usize) -> Self {
        self.config.models.first_k = k;
        self
    }

    /// The configured backends, always admitted (default: none).
    pub fn backends<S: Into<String>>(mut self, backends: impl IntoIterator<Item = S>) -> Self {
        self.config.backends.allow = backends.into_iter().map(Into::into).collect();
        self
    }

    /// How many other backend names are admitted (default 8; 0 for the allow-list alone).
    pub fn admitted_backends(mut self, k: usize) -> Self {
        self.config.backends.first_k = k;
        self
    }

    /// `request.duration` bucket boundaries in seconds (finite, strictly increasing).
    pub fn request_duration_buckets(mut self, buckets: impl Into<Vec<f64>>) -> Self {
        self.config.request_duration_buckets = buckets.into();
        self
    }

    /// `time_to_first_token` bucket boundaries in seconds.
    pub fn time_to_first_token_buckets(mut self, buckets: impl Into<Vec<f64>>) -> Self {
        self.config.time_to_first_token_buckets = buckets.into();
        self
    }

    /// `backend.latency` bucket boundaries in seconds.
    pub fn backend_latency_buckets(mut self, buckets: impl Into<Vec<f64>>) -> Self {
        self.config.backend_latency_buckets = buckets.into();
        self
    }

    /// The configuration as it stands.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// Validates the configuration and creates the instruments on `backend`, or
    /// returns a recorder sharing the cells of the one already built there.
    pub fn build(self, backend: &(impl MetricsBackend + ?Sized)) -> Result<GatewayRecorder, ConfigError> {
        registry::build::<GatewayRecorder>(backend, self.config)
    }
}

type FleetCallback = Arc<dyn Fn(&mut Fleet<'_>) + Send + Sync>;

/// Where the fleet callback lives: set by the application after the build,
/// read only at collection time.
#[derive(Default)]
struct FleetSource {
    callback: RwLock<Option<FleetCallback>>,
}

impl std::fmt::Debug for FleetSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = self
            .callback
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        f.debug_struct("FleetSource").field("callback_set", &set).finish()
    }
}

impl FleetSource {
    /// Runs the callback, if set; a callback that panics reports nothing.
    fn report(&self, backends: &Admission) -> Option<FleetReport> {
        let callback = self
            .callback
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        let mut fleet = Fleet {
            backends,
            report: FleetReport::default(),
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback(&mut fleet))).ok()?;
        Some(fleet.report)
    }
}

/// What the fleet callback fills in, each time metrics are collected.
///
/// Report every configured backend once, healthy or not, and the number of
/// distinct models the healthy ones serve.
pub struct Fleet<'a> {
    backends: &'a Admission,
    report: FleetReport,
}

impl std::fmt::Debug for Fleet<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet").field("report", &self.report).finish()
    }
}

impl Fleet<'_> {
    /// Backend `name` exists and is `healthy` (or not). The name is admitted like
    /// any backend name.
    pub fn backend(&mut self, name: &str, healthy: bool) {
        let backend = Backend(self.backends.resolve(name));
        self.backend_at(backend, healthy);
    }

    /// A pre-resolved backend exists and is `healthy` (or not).
    pub fn backend_at(&mut self, backend: Backend, healthy: bool) {
        self.report.backends += 1;
        self.report.healthy += usize::from(healthy);
        // `_OTHER` stands for many backends: it has no health of its own.
        if backend.0 != self.backends.other() {
            self.report.health.push((backend, healthy));
        }
    }

    /// `count` distinct models are available on healthy backends.
    pub fn models_available(&mut self, count: usize) {
        self.report.models_available = Some(count);
    }
}

/// One evaluation of the fleet callback.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetReport {
    /// Backends reported.
    pub backends: usize,
    /// Backends reported healthy.
    pub healthy: usize,
    /// Models available, if reported.
    pub models_available: Option<usize>,
    health: Vec<(Backend, bool)>,
}

impl FleetReport {
    /// Whether `backend` was reported healthy; `None` if it was not reported, or
    /// for `_OTHER` (which stands for many backends).
    pub fn is_healthy(&self, backend: Backend) -> Option<bool> {
        self.health
            .iter()
            .rev()
            .find(|(b, _)| *b == backend)
            .map(|(_, healthy)| *healthy)
    }
}

/// Sums over the gateway's cells, for summaries (`/v1/stats`) and tests.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct GatewaySummary {
    /// Every count of `requests`.
    pub requests: u64,
    /// Counts of `requests` with a 2xx status.
    pub successful: u64,
    /// Every count of `errors`.
    pub errors: u64,
    /// Every admitted model in admission order, then `_OTHER` if it counted requests.
    pub models: Vec<ModelSummary>,
    /// Every admitted backend in admission order, then `_OTHER` if it counted
    /// requests or has requests pending.
    pub backends: Vec<BackendSummary>,
}

/// One model of a [`GatewaySummary`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModelSummary {
    /// The `model` value.
    pub name: String,
    /// Its counts of `requests`, over every backend and status.
    pub requests: u64,
}

/// One backend of a [`GatewaySummary`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackendSummary {
    /// The `backend` value.
    pub name: String,
    /// Its counts of `requests`, over every model and status.
    pub requests: u64,
    /// Its `pending_requests` now.
    pub pending: i64,
    /// What the fleet callback reported; `None` without a callback, for a backend
    /// it did not report, and for `_OTHER`.
    pub healthy: Option<bool>,
}

/// The LLM-gateway recorder: pre-indexed instruments on any [`toolkit::Backend`](crate::toolkit::Backend).
///
/// Clones are cheap (reference counts) and share cells; so do recorders built
/// twice on one backend. Resolve names once with [`model`](Self::model) and
/// [`backend`](Self::backend), then record with the `…_at` methods: recording a
/// whole request is a few atomic adds and bound-histogram records, with no
/// allocation and no lock of ours.
#[derive(Clone, Debug)]
pub struct GatewayRecorder {
    models: Arc<Admission>,
    backends: Arc<Admission>,
    requests: Counter<(Model, Backend, HttpStatus)>,
    request_duration: Histogram<(Model, Backend)>,
    errors: Counter<(GatewayError, Model)>,
    fallbacks: Counter<(Model, Model)>,
    tokens: Counter<(Model, Backend, TokenType)>,
    tokens_per_request: Histogram<(Model, TokenType)>,
    time_to_first_token: Histogram<(Model, Backend)>,
    pending: UpDownCounter<Backend>,
    backend_latency: Histogram<Backend>,
    fleet: Arc<FleetSource>,
}

impl Family for GatewayRecorder {
    const NAME: &'static str = "gateway";
    type Config = GatewayConfig;

    fn build(config: &GatewayConfig, family: &mut FamilyBuilder<'_>) -> Result<Self, ConfigError> {
        let models = Arc::new(Admission::new(MODEL_KEY, &config.models, Names)?);
        let backends = Arc::new(Admission::new(BACKEND_KEY, &config.backends, Names)?);
        let model = |key: &'static str| -> Arc<dyn Dimension> {
            Arc::new(ModelDimension {
                key,
                models: models.clone(),
            })
        };
        let backend = || -> Arc<dyn Dimension> { Arc::new(AdmittedDimension(backends.clone())) };
        let status = || -> Arc<dyn Dimension> { Arc::new(StatusTextDimension::new("status")) };
        let fleet = Arc::new(FleetSource::default());
        let fleet_gauge = |family: &mut FamilyBuilder<'_>,
                           spec: &'static InstrumentSpec,
                           read: fn(&FleetReport) -> Option<usize>| {
            let (source, backends) = (fleet.clone(), backends.clone());
            family.callback_gauge::<()>(spec, vec![], move |gauge| {
                if let Some(value) = source.report(&backends).as_ref().and_then(read) {
                    gauge.set((), value as f64);
                }
            })
        };
        let recorder = GatewayRecorder {
            requests: family.counter(&REQUESTS, vec![model(MODEL_KEY), backend(), status()])?,
            request_duration: family.histogram(
                histogram_spec(Self::NAME, &REQUEST_DURATION, &config.request_duration_buckets)?,
                vec![model(MODEL_KEY), backend()],
            )?,
            errors: family.counter(&ERRORS, vec![closed::<GatewayError>(), model(MODEL_KEY)])?,
            fallbacks: family.counter(&FALLBACKS, vec![model("from_model"), model("to_model")])?,
            tokens: family.counter(&TOKENS, vec![model(MODEL_KEY), backend(), closed::<TokenType>()])?,
            tokens_per_request: family
                .histogram(&TOKENS_PER_REQUEST, vec![model(MODEL_KEY), closed::<TokenType>()])?,
            time_to_first_token: family.histogram(
                histogram_spec(
                    Self::NAME,
                    &TIME_TO_FIRST_TOKEN,
                    &config.time_to_first_token_buckets,
                )?,
                vec![model(MODEL_KEY), backend()],
            )?,
            pending: family.up_down_counter(&PENDING_REQUESTS, vec![backend()])?,
            backend_latency: family.histogram(
                histogram_spec(Self::NAME, &BACKEND_LATENCY, &config.backend_latency_buckets)?,
                vec![backend()],
            )?,
            models: models.clone(),
            backends: backends.clone(),
            fleet: fleet.clone(),
        };
        fleet_gauge(family, &BACKENDS, |r| Some(r.backends))?;
        fleet_gauge(family, &BACKENDS_HEALTHY, |r| Some(r.healthy))?;
        fleet_gauge(family, &MODELS_AVAILABLE, |r| r.models_available)?;
        Ok(recorder)
    }
}

impl GatewayRecorder {
    /// A builder with the defaults: the first 16 models and 8 backends seen.
    pub fn builder() -> GatewayRecorderBuilder {
        GatewayRecorderBuilder::default()
    }

    /// Resolves a model name to its coordinate, admitting it if the policy still
    /// allows; `_OTHER` (counted as a fold) otherwise. Resolve configured models
    /// once at start-up, client-supplied names per request.
    #[inline]
    pub fn model(&self, name: &str) -> Model {
        Model(self.models.resolve(name))
    }

    /// Resolves a backend name to its coordinate, like [`model`](Self::model).
    #[inline]
    pub fn backend(&self, name: &str) -> Backend {
        Backend(self.backends.resolve(name))
    }

    /// The `model` value of `model`: the admitted name or `_OTHER`.
    pub fn model_name(&self, model: Model) -> &str {
        self.models.value_of(model.0)
    }

    /// The `backend` value of `backend`: the admitted name or `_OTHER`.
    pub fn backend_name(&self, backend: Backend) -> &str {
        self.backends.value_of(backend.0)
    }

    /// Records everything one answered request records: `requests`,
    /// `request.duration`, and when given `tokens` and `tokens.per_request`
    /// (`usage`) and `time_to_first_token`. `model` is the model that served.
    #[inline]
    pub fn record_request_at(
        &self,
        model: Model,
        backend: Backend,
        status: u16,
        duration: Duration,
        usage: Option<Usage>,
        time_to_first_token: Option<Duration>,
    ) {
        self.count_request(model, backend, status, duration, usage, time_to_first_token);
        request_event(
            || self.models.value(model.0.index()),
            || self.backends.value(backend.0.index()),
            status,
            duration,
            usage,
            time_to_first_token,
        );
    }

    #[inline]
    fn count_request(
        &self,
        model: Model,
        backend: Backend,
        status: u16,
        duration: Duration,
        usage: Option<Usage>,
        time_to_first_token: Option<Duration>,
    ) {
        self.requests.add((model, backend, HttpStatus(status)), 1);
        self.request_duration
            .record((model, backend), duration.as_secs_f64());
        if let Some(usage) = usage {
            self.tokens
                .add((model, backend, TokenType::Prompt), usage.prompt_tokens);
            self.tokens
                .add((model, backend, TokenType::Completion), usage.completion_tokens);
            self.tokens_per_request
                .record((model, TokenType::Prompt), usage.prompt_tokens as f64);
            self.tokens_per_request
                .record((model, TokenType::Completion), usage.completion_tokens as f64);
        }
        if let Some(ttft) = time_to_first_token {
            self.time_to_first_token
                .record((model, backend), ttft.as_secs_f64());
        }
    }

    /// A request for `model` failed because of `error`.
    #[inline]
    pub fn record_error_at(&self, model: Model, error: GatewayError) {
        self.errors.add((error, model), 1);
        error_event(|| self.models.value(model.0.index()), error);
    }

    /// A request for `from` was served by `to`.
    #[inline]
    pub fn record_fallback_at(&self, from: Model, to: Model) {
        self.fallbacks.add((from, to), 1);
        fallback_event(
            || self.models.value(from.0.index()),
            || self.models.value(to.0.index()),
        );
    }

    /// A health check of `backend` took `latency`.
    #[inline]
    pub fn record_health_check_at(&self, backend: Backend, latency: Duration) {
        self.backend_latency.record(backend, latency.as_secs_f64());
        health_check_event(|| self.backends.value(backend.0.index()), latency);
    }

    /// Counts one request pending on `backend` until the guard drops: on return,
    /// `?`, or a panic unwinding. The guard is owned and `'static`, so it moves
    /// into a spawned task or a streaming body.
    pub fn track_pending(&self, backend: Backend) -> InFlightGuard {
        self.pending.track(backend)
    }

    /// Sets the callback `backends`, `backends.healthy` and `models.available` (and
    /// `/v1/stats`'s `healthy`) are read from. It runs each time metrics are
    /// collected, once per gauge, never on a record path; it should read the
    /// application's own fleet state (a registry, a health-check table) and
    /// report each backend once. Backend names are admitted like any other, so
    /// list the configured backends in [`GatewayRecorderBuilder::backends`]: a name
    /// past the bound is `_OTHER` and counts as a fold at every collection. Replaces
    /// any earlier callback; one that panics reports nothing for that collection.
    ///
    /// ```
    /// # use outcometer::testing::InMemoryBackend;
    /// let recorder = outcometer::GatewayRecorder::builder().build(&InMemoryBackend::new())?;
    /// recorder.set_fleet_callback(|fleet| {
    ///     fleet.backend("gpu-1", true);
    ///     fleet.backend("gpu-2", false);
    ///     fleet.models_available(3);
    /// });
    /// let report = recorder.fleet().unwrap();
    /// assert_eq!((report.backends, report.healthy), (2, 1));
    /// # Ok::<(), outcometer::ConfigError>(())
    /// ```
    pub fn set_fleet_callback(&self, callback: impl Fn(&mut Fleet<'_>) + Send + Sync + 'static) {
        *self
            .fleet
            .callback
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(callback));
    }

    /// Runs the fleet callback now; `None` when none is set.
    pub fn fleet(&self) -> Option<FleetReport> {
        self.fleet.report(&self.backends)
    }

    /// `backend`'s pending requests now.
    pub fn pending(&self, backend: Backend) -> i64 {
        self.pending.value(backend)
    }

    /// Requests counted over every model, backend and status.
    pub fn request_count(&self) -> u64 {
        self.requests.total()
    }

    /// Errors counted over every type and model.
    pub fn error_count(&self) -> u64 {
        self.errors.total()
    }

    /// Fallbacks counted over every pair of models.
    pub fn fallback_count(&self) -> u64 {
        self.fallbacks.total()
    }

    /// The OpenTelemetry name of `request.duration` (namespaced), for readers of
    /// its histogram points.
    pub fn request_duration_name(&self) -> &str {
        self.request_duration.def().name()
    }

    /// The OpenTelemetry name of `backend.latency` (namespaced).
    pub fn backend_latency_name(&self) -> &str {
        self.backend_latency.def().name()
    }

    /// Sums of the request, error and pending cells by model and backend, with
    /// each backend's health from one run of the fleet callback.
    pub fn summary(&self) -> GatewaySummary {
        let model_slots = self.models.capacity() + 1;
        let backend_slots = self.backends.capacity() + 1;
        let mut by_model = vec![0u64; model_slots];
        let mut by_backend = vec![0u64; backend_slots];
        let mut summary = GatewaySummary::default();
        let def = self.requests.def();
        for (series, count) in self.requests.values().filter(|(_, c)| *c != 0) {
            let Some([model, backend, status, _]) = def.coordinates(series) else {
                continue;
            };
            summary.requests += count;
            by_model[model] += count;
            by_backend[backend] += count;
            let code = REGISTERED_STATUS_CODES.get(status).map_or(0, |(code, _)| *code);
            if (200..300).contains(&code) {
                summary.successful += count;
            }
        }
        summary.errors = self.errors.total();
        for (index, requests) in by_model.into_iter().enumerate() {
            let name = match self.models.value(index) {
                Some(name) => name,
                None if index == model_slots - 1 && requests > 0 => OTHER,
                None => continue,
            };
            summary.models.push(ModelSummary {
                name: name.to_owned(),
                requests,
            });
        }
        let fleet = self.fleet();
        let pending = self.pending.raw();
        for (index, requests) in by_backend.into_iter().enumerate() {
            let waiting = pending.value(Series(index));
            let other = index == backend_slots - 1;
            let name = match self.backends.value(index) {
                Some(name) => name,
                None if other && (requests > 0 || waiting != 0) => OTHER,
                None => continue,
            };
            let healthy = fleet.as_ref().and_then(|report| {
                report
                    .health
                    .iter()
                    .rev()
                    .find(|(b, _)| b.0.index() == index)
                    .map(|(_, healthy)| *healthy)
            });
            summary.backends.push(BackendSummary {
                name: name.to_owned(),
                requests,
                pending: waiting,
                healthy,
            });
        }
        summary
    }
}

// The trace events: names as given (clipped) by the by-name methods, the admitted
// value (none for `_OTHER`) by the `…_at` ones.

#[inline]
fn request_event<'a>(
    model: impl Name<'a>,
    backend: impl Name<'a>,
    status: u16,
    duration: Duration,
    usage: Option<Usage>,
    time_to_first_token: Option<Duration>,
) {
    outcome_event!(
        "gateway",
        "gateway request",
        gen_ai.response.model = model().map(clip_name),
        outcometer.backend = backend().map(clip_name),
        http.response.status_code = status,
        outcometer.duration_s = duration.as_secs_f64(),
        gen_ai.usage.input_tokens = usage.map(|u| u.prompt_tokens),
        gen_ai.usage.output_tokens = usage.map(|u| u.completion_tokens),
        outcometer.time_to_first_token_s = seconds(time_to_first_token),
    );
}

#[inline]
fn error_event<'a>(model: impl Name<'a>, error: GatewayError) {
    outcome_event!(
        "gateway",
        "gateway error",
        gen_ai.request.model = model().map(clip_name),
        error.type = error.as_str(),
    );
}

#[inline]
fn fallback_event<'a>(from: impl Name<'a>, to: impl Name<'a>) {
    outcome_event!(
        "gateway",
        "gateway fallback",
        gen_ai.request.model = from().map(clip_name),
        gen_ai.response.model = to().map(clip_name),
    );
}

#[inline]
fn health_check_event<'a>(backend: impl Name<'a>, latency: Duration) {
    outcome_event!(
        "gateway",
        "gateway health check",
        outcometer.backend = backend().map(clip_name),
        outcometer.duration_s = latency.as_secs_f64(),
    );
}

impl GatewayMetrics for GatewayRecorder {
    fn record_request(
        &self,
        model: &str,
        backend: &str,
        status: u16,
        duration: Duration,
        usage: Option<Usage>,
        time_to_first_token: Option<Duration>,
    ) {
        self.count_request(
            self.model(model),
            self.backend(backend),
            status,
            duration,
            usage,
            time_to_first_token,
        );
        request_event(
            || Some(model),
            || Some(backend),
            status,
            duration,
            usage,
            time_to_first_token,
        );
    }
    fn record_error(&self, model: &str, error: GatewayError) {
        self.errors.add((error, self.model(model)), 1);
        error_event(|| Some(model), error);
    }
    fn record_fallback(&self, from_model: &str, to_model: &str) {
        self.fallbacks
            .add((self.model(from_model), self.model(to_model)), 1);
        fallback_event(|| Some(from_model), || Some(to_model));
    }
    fn record_health_check(&self, backend: &str, latency: Duration) {
        self.backend_latency
            .record(self.backend(backend), latency.as_secs_f64());
        health_check_event(|| Some(backend), latency);
    }
    fn increment_pending(&self, backend: &str) {
        self.pending.add(self.backend(backend), 1);
    }
    fn decrement_pending(&self, backend: &str) {
        self.pending.add(self.backend(backend), -1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Detached;
    use crate::catalog::prometheus_name;
    use crate::registry::Registry;
    use crate::testing::{InMemoryBackend, PointValue};

    fn nexus() -> InMemoryBackend {
        InMemoryBackend::with_namespace("nexus").unwrap()
    }

    #[test]
    fn prometheus_names_and_label_keys_are_the_ones_dashboards_use() {
        let backend = Detached::with_registry(Registry::new("nexus").unwrap());
        GatewayRecorder::builder().build(&backend).unwrap();
        let registry = backend.registry().unwrap();
        let rows: Vec<(String, String, Vec<&str>)> = registry
            .instruments()
            .iter()
            .map(|i| i.def())
            .filter(|d| d.name().starts_with("nexus."))
            .map(|d| {
                let keys = d
                    .dimensions()
                    .iter()
                    .flat_map(|dim| dim.docs())
                    .map(|doc| doc.key)
                    .collect();
                (d.name().to_owned(), prometheus_name(d), keys)
            })
            .collect();
        let expected: [(&str, &str, &[&str]); 12] = [
            (
                "nexus.requests",
                "nexus_requests_total",
                &["model", "backend", "status"],
            ),
            (
                "nexus.request.duration",
                "nexus_request_duration_seconds",
                &["model", "backend"],
            ),
            ("nexus.errors", "nexus_errors_total", &["error_type", "model"]),
            (
                "nexus.fallbacks",
                "nexus_fallbacks_total",
                &["from_model", "to_model"],
            ),
            (
                "nexus.tokens",
                "nexus_tokens_total",
                &["model", "backend", "type"],
            ),
            (
                "nexus.tokens.per_request",
                "nexus_tokens_per_request",
                &["model", "type"],
            ),
            (
                "nexus.time_to_first_token",
                "nexus_time_to_first_token_seconds",
                &["model", "backend"],
            ),
            ("nexus.pending_requests", "nexus_pending_requests", &["backend"]),
            (
                "nexus.backend.latency",
                "nexus_backend_latency_seconds",
                &["backend"],
            ),
            ("nexus.backends", "nexus_backends", &[]),
            ("nexus.backends.healthy", "nexus_backends_healthy", &[]),
            ("nexus.models.available", "nexus_models_available", &[]),
        ];
        assert_eq!(rows.len(), expected.len(), "{rows:?}");
        for ((name, prometheus, keys), (want_name, want_prometheus, want_keys)) in rows.iter().zip(expected) {
            assert_eq!((name.as_str(), prometheus.as_str()), (want_name, want_prometheus));
            assert_eq!(keys.as_slice(), want_keys, "{name}");
        }
    }

    #[test]
    fn one_call_records_everything_a_request_records() {
        let backend = nexus();
        let m = GatewayRecorder::builder()
            .models(["gpt-4.1"])
            .backends(["gpu-1"])
            .build(&backend)
            .unwrap();
        let (model, gpu) = (m.model("gpt-4.1"), m.backend("gpu-1"));
        m.record_request_at(
            model,
            gpu,
            200,
            Duration::from_millis(1500),
            Some(Usage::new(20, 300)),
            Some(Duration::from_millis(120)),
        );
        m.record_request_at(model, gpu, 503, Duration::from_millis(10), None, None);
        let labels = [("model", "gpt-4.1"), ("backend", "gpu-1")];
        let with = |extra: (&'static str, &'static str)| {
            let mut all = labels.to_vec();
            all.push(extra);
            all
        };
        assert_eq!(
            backend.counter_value("nexus.requests", &with(("status", "200"))),
            Some(1)
        );
        assert_eq!(
            backend.counter_value("nexus.requests", &with(("status", "503"))),
            Some(1)
        );
        let duration = backend.histogram("nexus.request.duration", &labels).unwrap();
        assert_eq!(duration.count, 2);
        assert!((duration.sum - 1.51).abs() < 1e-9, "{}", duration.sum);
        assert_eq!(
            backend.counter_value("nexus.tokens", &with(("type", "prompt"))),
            Some(20)
        );
        assert_eq!(
            backend.counter_value("nexus.tokens", &with(("type", "completion"))),
            Some(300)
        );
        let per_request = backend
            .histogram(
                "nexus.tokens.per_request",
                &[("model", "gpt-4.1"), ("type", "completion")],
            )
            .unwrap();
        assert_eq!((per_request.count, per_request.sum), (1, 300.0));
        // 300 tokens fall in (256, 1024].
        assert_eq!(per_request.bucket_counts[5], 1);
        let ttft = backend.histogram("nexus.time_to_first_token", &labels).unwrap();
        assert_eq!((ttft.count, ttft.sum), (1, 0.12));
        assert_eq!(m.request_count(), 2);
    }

    #[test]
    fn models_share_one_admission_under_three_keys() {
        let backend = nexus();
        let m = GatewayRecorder::builder()
            .models(["a"])
            .admitted_models(1)
            .build(&backend)
            .unwrap();
        m.record_fallback("gpt-4.1", "gpt-4_1");
        m.record_error("junk", GatewayError::ModelNotFound);
        m.record_request("gpt-4.1", "x", 200, Duration::ZERO, None, None);
        assert_eq!(
            backend.counter_value(
                "nexus.fallbacks",
                &[("from_model", "gpt-4.1"), ("to_model", "_OTHER")]
            ),
            Some(1)
        );
        assert_eq!(
            backend.counter_value(
                "nexus.errors",
                &[("error_type", "model_not_found"), ("model", "_OTHER")]
            ),
            Some(1)
        );
        assert_eq!(m.model("gpt-4.1"), m.model("gpt-4.1"));
        assert_eq!(m.model_name(m.model("a")), "a");
        // `gpt-4_1` and `junk` folded, on the one `model` series of the overflow counter.
        assert_eq!(
            backend.counter_value("outcometer.attribute.overflow", &[("attribute", "model")]),
            Some(2)
        );
    }

    #[test]
    fn status_is_the_code_as_text_or_other() {
        let backend = nexus();
        let m = GatewayRecorder::builder().build(&backend).unwrap();
        for code in [200, 418, 0, 999] {
            m.record_request("m", "b", code, Duration::ZERO, None, None);
        }
        let status = |s| {
            backend.counter_value(
                "nexus.requests",
                &[("model", "m"), ("backend", "b"), ("status", s)],
            )
        };
        assert_eq!(status("200"), Some(1));
        assert_eq!(status("_OTHER"), Some(3));
    }

    #[test]
    fn fleet_gauges_and_health_come_from_the_callback() {
        let backend = nexus();
        let m = GatewayRecorder::builder()
            .backends(["gpu-1", "gpu-2"])
            .build(&backend)
            .unwrap();
        assert_eq!(backend.gauge_value("nexus.backends", &[]), None);
        assert!(m.fleet().is_none());
        m.set_fleet_callback(|fleet| {
            fleet.backend("gpu-1", true);
            fleet.backend("gpu-2", false);
            fleet.backend("gpu-3", true);
            fleet.models_available(4);
        });
        assert_eq!(backend.gauge_value("nexus.backends", &[]), Some(3.0));
        assert_eq!(backend.gauge_value("nexus.backends.healthy", &[]), Some(2.0));
        assert_eq!(backend.gauge_value("nexus.models.available", &[]), Some(4.0));
        let _pending = m.track_pending(m.backend("gpu-2"));
        m.record_request("m", "gpu-1", 200, Duration::ZERO, None, None);
        m.record_request("m", "gpu-1", 500, Duration::ZERO, None, None);
        m.record_error("m", GatewayError::BackendError);
        let summary = m.summary();
        assert_eq!((summary.requests, summary.successful, summary.errors), (2, 1, 1));
        let rows: Vec<(&str, u64, i64, Option<bool>)> = summary
            .backends
            .iter()
            .map(|b| (b.name.as_str(), b.requests, b.pending, b.healthy))
            .collect();
        assert_eq!(
            rows,
            [
                ("gpu-1", 2, 0, Some(true)),
                ("gpu-2", 0, 1, Some(false)),
                ("gpu-3", 0, 0, Some(true)),
            ]
        );
        assert_eq!(
            summary.models,
            [ModelSummary {
                name: "m".into(),
                requests: 2
            }]
        );
        m.set_fleet_callback(|_| panic!("fleet state unavailable"));
        assert!(m.fleet().is_none());
    }

    #[test]
    fn the_pending_guard_is_owned_and_survives_a_panic() {
        let backend = nexus();
        let m = GatewayRecorder::builder().build(&backend).unwrap();
        let gpu = m.backend("gpu-1");
        let guard = m.track_pending(gpu);
        assert_eq!(m.pending(gpu), 1);
        std::thread::spawn(move || {
            let _guard = guard;
            let _ = std::panic::catch_unwind(|| panic!("stream broke"));
        })
        .join()
        .unwrap();
        assert_eq!(m.pending(gpu), 0);
        m.increment_pending("gpu-1");
        assert_eq!(
            backend.up_down_value("nexus.pending_requests", &[("backend", "gpu-1")]),
            Some(1)
        );
        m.decrement_pending("gpu-1");
        assert_eq!(m.pending(gpu), 0);
    }

    #[test]
    fn buckets_are_configurable_and_checked() {
        const FAST: [f64; 3] = [0.01, 0.1, 1.0];
        let backend = nexus();
        let m = GatewayRecorder::builder()
            .request_duration_buckets(FAST)
            .build(&backend)
            .unwrap();
        m.record_request("m", "b", 200, Duration::from_millis(50), None, None);
        let h = backend
            .histogram("nexus.request.duration", &[("model", "m"), ("backend", "b")])
            .unwrap();
        assert_eq!(h.boundaries, FAST);
        // The same buckets on another backend share one interned spec.
        let again = GatewayRecorder::builder()
            .request_duration_buckets(FAST)
            .build(&nexus())
            .unwrap();
        assert!(std::ptr::eq(
            m.request_duration.def().spec(),
            again.request_duration.def().spec()
        ));
        let err = GatewayRecorder::builder()
            .backend_latency_buckets([1.0, 0.5])
            .build(&nexus())
            .unwrap_err();
        assert!(err.to_string().contains("backend.latency"), "{err}");
        assert!(GatewayRecorder::builder()
            .admitted_models(0)
            .build(&nexus())
            .is_err());
    }

    #[test]
    fn equal_configs_share_cells_and_the_registry_finds_the_recorder() {
        let backend = nexus();
        let one = GatewayRecorder::builder().build(&backend).unwrap();
        let two = GatewayRecorder::builder().build(&backend).unwrap();
        one.record_error("m", GatewayError::Timeout);
        assert_eq!(two.error_count(), 1);
        let found = backend.registry().unwrap().recorder::<GatewayRecorder>().unwrap();
        assert_eq!(found.error_count(), 1);
        assert_eq!(found.request_duration_name(), "nexus.request.duration");
        assert_eq!(found.backend_latency_name(), "nexus.backend.latency");
        assert!(backend
            .points()
            .iter()
            .all(|p| !matches!(p.value, PointValue::Histogram(_))));
    }
}
