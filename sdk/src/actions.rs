//! Actions (webhooks, e-mails, calls an event triggers): how each run ended and
//! how long it took, and a decorator that records both around any future.
//!
//! `actions.executed{action,outcome}` counts every run once and
//! `actions.duration{action,outcome}` times it under the same outcome, timeouts
//! and cancellations included: a run that hit its 5 s deadline is exactly the
//! latency an operator must see. Action names pass an admission (the first 20
//! seen by default, or an allow-list); the rest are `_OTHER`. There is no
//! success-ratio gauge: the counter holds every part, and a ratio computed in the
//! process could be neither summed across instances nor re-windowed. The
//! decorator is [`ActionExecutor`].

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::attr::admission::{Admission, AdmissionPolicy, Admitted, AdmittedDimension, Names};
use crate::attr::{closed, Dimension};
use crate::cells::{Counter, Histogram};
use crate::detail::{clip_name, outcome_event, Name};
use crate::error::ConfigError;
use crate::instrument::InstrumentSpec;
use crate::registry::{Family, FamilyBuilder};
use crate::settings;

crate::closed_set! {
    /// How one run of an action ended.
    pub enum ActionOutcome: "outcome" {
        /// It returned `Ok` and the classifier accepted the value.
        Success = "success",
        /// It returned `Err`, or an `Ok` the classifier calls a failure.
        Failure = "failure",
        /// Its deadline passed before it finished.
        Timeout = "timeout",
        /// It was dropped before it finished (a `select!` branch lost, a task aborted).
        Cancelled = "cancelled",
        /// It panicked.
        Panic = "panic",
    }
}

crate::port! {
    /// The action metrics port: what code that runs actions by hand records through.
    /// (The [`ActionExecutor`] decorator records for you.)
    ///
    /// Synchronous: recording cannot fail and never waits. Pass
    /// [`NoopActionMetrics`] in tests or when metrics are off.
    pub trait ActionMetrics {
        /// One run of `action` ended with `outcome` after `duration`.
        fn record_action(&self, action: &str, outcome: ActionOutcome, duration: Duration);
        provided {
            /// One run of `action` succeeded after `duration`.
            fn record_success(&self, action: &str, duration: Duration) {
                self.record_action(action, ActionOutcome::Success, duration);
            }
            /// One run of `action` failed after `duration`.
            fn record_failure(&self, action: &str, duration: Duration) {
                self.record_action(action, ActionOutcome::Failure, duration);
            }
            /// One run of `action` hit its deadline after `duration`.
            fn record_timeout(&self, action: &str, duration: Duration) {
                self.record_action(action, ActionOutcome::Timeout, duration);
            }
        }
    }
    /// Records nothing, at no cost.
    noop NoopActionMetrics;
}

/// How many action names get their own `action` value by default.
pub const DEFAULT_ADMITTED_ACTIONS: usize = 20;

/// Default bucket boundaries of `actions.duration` (seconds): from an in-process
/// action (5 ms) to a slow remote call that runs into a 30–60 s deadline.
pub const DURATION_BOUNDARIES_SECONDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0,
];

static EXECUTED: InstrumentSpec = InstrumentSpec::counter(
    "actions.executed",
    "{action}",
    "Action runs, by action and how they ended.",
);
static DURATION: InstrumentSpec = InstrumentSpec::histogram(
    "actions.duration",
    "s",
    "Time an action ran, by action and how it ended: timeouts and cancellations included.",
    &DURATION_BOUNDARIES_SECONDS,
);

/// A pre-resolved action name: its `action` coordinate. Resolve once with
/// [`ActionRecorder::action`] and record with [`ActionRecorder::record_at`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActionName(Option<Admitted>);

/// What an action family is built with; two builds with equal configs share
/// cells. Read it from a configuration file with the `serde` feature.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct ActionConfig {
    /// Whether anything is recorded. Off, the builder returns a recorder that
    /// records nothing and registers nothing (the decorator still enforces
    /// deadlines and still hands back every result and panic).
    pub enabled: bool,
    /// Which action names become `action` values (default: the first 20 seen).
    #[cfg_attr(feature = "serde", serde(with = "settings::AdmissionPolicyDef"))]
    pub actions: AdmissionPolicy,
    /// Bucket boundaries of `actions.duration`, in seconds: finite, strictly
    /// increasing, not empty.
    pub duration_buckets: Vec<f64>,
    /// Must be 1.0: a sampled counter is wrong in every total and rate.
    pub sample_rate: f64,
}

impl Default for ActionConfig {
    fn default() -> Self {
        ActionConfig {
            enabled: true,
            actions: AdmissionPolicy::first_k(DEFAULT_ADMITTED_ACTIONS),
            duration_buckets: DURATION_BOUNDARIES_SECONDS.to_vec(),
            sample_rate: 1.0,
        }
    }
}

impl ActionConfig {
    /// Checks every setting; returns the admission of action names and the duration spec.
    fn validate(&self) -> Result<(Admission, &'static InstrumentSpec), ConfigError> {
        settings::check_sample_rate(ActionRecorder::NAME, self.sample_rate)?;
        let duration = settings::histogram_spec(ActionRecorder::NAME, &DURATION, &self.duration_buckets)?;
        Ok((Admission::new("action", &self.actions, Names)?, duration))
    }
}

/// Builds an [`ActionRecorder`].
#[derive(Clone, Debug, Default)]
pub struct ActionRecorderBuilder {
    config: ActionConfig,
}

settings::switchable_builder!(
    ActionRecorderBuilder,
    ActionConfig,
    ActionRecorder,
    check = |config| config.validate().map(drop)
);

impl ActionRecorderBuilder {
    /// How action names become `action` values (default: the first 20 seen; an
    /// allow-list, or both).
    pub fn actions(mut self, policy: AdmissionPolicy) -> Self {
        self.config.actions = policy;
        self
    }

    /// Bucket boundaries of `actions.duration` in seconds (default
    /// [`DURATION_BOUNDARIES_SECONDS`]).
    pub fn duration_buckets(mut self, buckets: impl Into<Vec<f64>>) -> Self {
        self.config.duration_buckets = buckets.into();
        self
    }
}

/// The action recorder: pre-indexed instruments on any [`Backend`](crate::toolkit::Backend), or nothing at
/// all when disabled.
///
/// There is no success-ratio gauge, on purpose: a ratio worked out in the process
/// cannot be added up across instances (99 % on a busy replica and 50 % on an
/// idle one are not 74.5 % overall) or looked at over another window. The counter holds every part,
/// and PromQL divides rates for any set of instances and any window:
/// `sum by (action) (rate(actions_executed_total{outcome="success"}[5m])) / sum by (action) (rate(actions_executed_total[5m]))`.
///
/// Clones are cheap (one reference count) and share cells; so do recorders built
/// twice on one backend.
#[derive(Clone, Debug)]
pub struct ActionRecorder {
    cells: Option<Arc<ActionCells>>,
}

#[derive(Debug)]
struct ActionCells {
    actions: Arc<Admission>,
    executed: Counter<(Admitted, ActionOutcome)>,
    duration: Histogram<(Admitted, ActionOutcome)>,
}

impl ActionCells {
    /// Records one run; its trace event carries `name`: as given by the by-name
    /// method, admitted (`None` for `_OTHER`) by the others.
    #[inline]
    fn record<'a>(&self, action: Admitted, outcome: ActionOutcome, duration: Duration, name: impl Name<'a>) {
        self.executed.add((action, outcome), 1);
        self.duration.record((action, outcome), duration.as_secs_f64());
        outcome_event!(
            "actions",
            "action run",
            outcometer.action.name = name().map(clip_name),
            outcometer.outcome = outcome.as_str(),
            outcometer.duration_s = duration.as_secs_f64(),
        );
    }

    /// `action`'s admitted name, for trace events.
    fn admitted_name(&self, action: Admitted) -> Option<&str> {
        self.actions.value(action.index())
    }
}

impl Family for ActionRecorder {
    const NAME: &'static str = "actions";
    type Config = ActionConfig;

    fn build(config: &ActionConfig, family: &mut FamilyBuilder<'_>) -> Result<Self, ConfigError> {
        let (actions, duration) = config.validate()?;
        if !config.enabled {
            return Ok(Self::disabled());
        }
        let actions = Arc::new(actions);
        let action = || -> Arc<dyn Dimension> { Arc::new(AdmittedDimension(actions.clone())) };
        let cells = ActionCells {
            executed: family.counter(&EXECUTED, vec![action(), closed::<ActionOutcome>()])?,
            duration: family.histogram(duration, vec![action(), closed::<ActionOutcome>()])?,
            actions,
        };
        Ok(ActionRecorder {
            cells: Some(Arc::new(cells)),
        })
    }
}

impl ActionRecorder {
    /// A builder with the defaults: enabled, the first 20 action names,
    /// [`DURATION_BOUNDARIES_SECONDS`].
    pub fn builder() -> ActionRecorderBuilder {
        ActionRecorderBuilder::default()
    }

    /// A recorder that records nothing, at the cost of one branch a call.
    pub const fn disabled() -> Self {
        ActionRecorder { cells: None }
    }

    /// Whether this recorder records.
    pub fn is_enabled(&self) -> bool {
        self.cells.is_some()
    }

    /// Resolves `name` to its `action` value, admitting it if the policy still
    /// allows (otherwise `_OTHER`, counted on the overflow counter). Resolve once
    /// per action, not per run.
    pub fn action(&self, name: &str) -> ActionName {
        ActionName(self.cells.as_ref().map(|c| c.actions.resolve(name)))
    }

    /// One run of a pre-resolved action ended with `outcome` after `duration`:
    /// the fast path for code that times actions itself.
    #[inline]
    pub fn record_at(&self, action: ActionName, outcome: ActionOutcome, duration: Duration) {
        if let (Some(cells), Some(at)) = (&self.cells, action.0) {
            cells.record(at, outcome, duration, || cells.admitted_name(at));
        }
    }

    /// The decorator for `name` (resolved now, once): every future it
    /// [`run`](ActionExecutor::run)s is timed and recorded. Build it once per
    /// action and clone it; every `Ok` is a success until you
    /// [`classify`](ActionExecutor::classify), and there is no deadline until you
    /// set [one](ActionExecutor::deadline).
    pub fn executor(&self, name: &str) -> ActionExecutor {
        ActionExecutor {
            recorder: self.clone(),
            action: self.action(name),
            classifier: OkIsSuccess,
            deadline: NoDeadline,
        }
    }

    /// Runs of `action` that ended with `outcome` so far.
    pub fn executed(&self, action: ActionName, outcome: ActionOutcome) -> u64 {
        match (&self.cells, action.0) {
            (Some(cells), Some(at)) => cells.executed.value((at, outcome)),
            _ => 0,
        }
    }

    /// Runs that ended with `outcome` so far, over all actions.
    pub fn executed_total(&self, outcome: ActionOutcome) -> u64 {
        let Some(cells) = &self.cells else { return 0 };
        let def = cells.executed.def();
        cells
            .executed
            .values()
            .filter(|(series, _)| def.coordinates(*series).is_some_and(|c| c[1] == outcome.index()))
            .map(|(_, v)| v)
            .sum()
    }
}

impl ActionMetrics for ActionRecorder {
    fn record_action(&self, action: &str, outcome: ActionOutcome, duration: Duration) {
        if let (Some(cells), Some(at)) = (&self.cells, self.action(action).0) {
            cells.record(at, outcome, duration, || Some(action));
        }
    }
}

/// Decides which `Ok` values of an action are failures (every `Err` is one).
///
/// Implemented by [`OkIsSuccess`] (the default) and by any `Fn(&T) -> bool`
/// closure returning `true` for a failure, e.g. `|status: &u16| *status >= 500`.
pub trait ClassifyOk<T> {
    /// Whether `value`, returned as `Ok`, counts as a failure.
    fn is_failure(&self, value: &T) -> bool;
}

/// The default classifier: every `Ok` is a success.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OkIsSuccess;

impl<T> ClassifyOk<T> for OkIsSuccess {
    #[inline]
    fn is_failure(&self, _: &T) -> bool {
        false
    }
}

impl<T, F: Fn(&T) -> bool> ClassifyOk<T> for F {
    #[inline]
    fn is_failure(&self, value: &T) -> bool {
        self(value)
    }
}

/// What an action returns when its deadline passes first: its error type must
/// convert from this (`Box<dyn Error + Send + Sync>`, `anyhow::Error` and
/// tower's `BoxError` do; for your own error enum, add a `From` impl).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadlineExceeded;

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the action's deadline passed before it finished")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// A running deadline: pending until it passes, then the error the action returns.
///
/// Implemented by [`NoDeadline`] (never passes), by [`Until`] (any timer future)
/// and, with the `tokio` feature, by `TokioDeadline`.
pub trait DeadlineTimer<E> {
    /// `Ready(error)` once the deadline has passed, registering `cx` to be woken then.
    fn poll_expired(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<E>;
}

/// Starts one run's deadline: what an [`ActionExecutor`] is configured with.
///
/// Implemented by [`NoDeadline`] (the default), by `Duration` with the `tokio`
/// feature (the tokio timer; poll inside a tokio runtime with time enabled),
/// and by any `Fn() -> impl Future<Output = ()>` closure, which is how other
/// runtimes' timers come in: `move || async_io::Timer::after(limit).map(drop)`.
pub trait StartDeadline {
    /// The running deadline.
    type Timer;
    /// Starts a deadline for a run beginning now.
    fn start(&self) -> Self::Timer;
}

/// No deadline: the action may run for ever.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoDeadline;

impl StartDeadline for NoDeadline {
    type Timer = NoDeadline;
    #[inline]
    fn start(&self) -> NoDeadline {
        NoDeadline
    }
}

impl<E> DeadlineTimer<E> for NoDeadline {
    #[inline]
    fn poll_expired(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<E> {
        Poll::Pending
    }
}

impl<F, T> StartDeadline for F
where
    F: Fn() -> T,
    T: Future<Output = ()>,
{
    type Timer = Until<T>;
    #[inline]
    fn start(&self) -> Until<T> {
        Until { timer: self() }
    }
}

pin_project_lite::pin_project! {
    /// A deadline that passes when `timer` completes: a timer future from any runtime.
    #[derive(Debug)]
    pub struct Until<T> {
        #[pin]
        timer: T,
    }
}

impl<T> Until<T> {
    /// A deadline that passes when `timer` completes.
    pub fn new(timer: T) -> Self {
        Until { timer }
    }
}

impl<T: Future<Output = ()>, E: From<DeadlineExceeded>> DeadlineTimer<E> for Until<T> {
    #[inline]
    fn poll_expired(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<E> {
        self.project().timer.poll(cx).map(|()| DeadlineExceeded.into())
    }
}

#[cfg(feature = "tokio")]
impl StartDeadline for Duration {
    type Timer = TokioDeadline;
    /// A deadline this long from now. The tokio timer starts on the first poll
    /// that finds the action still running, so the future may be made outside a
    /// runtime and the timer costs nothing for actions that finish at once.
    #[inline]
    fn start(&self) -> TokioDeadline {
        TokioDeadline {
            at: tokio::time::Instant::now() + *self,
            sleep: None,
        }
    }
}

#[cfg(feature = "tokio")]
pin_project_lite::pin_project! {
    /// A deadline on the tokio timer (feature `tokio`): what a `Duration` starts.
    /// Poll it inside a tokio runtime with time enabled.
    #[derive(Debug)]
    pub struct TokioDeadline {
        at: tokio::time::Instant,
        #[pin]
        sleep: Option<tokio::time::Sleep>,
    }
}

#[cfg(feature = "tokio")]
impl<E: From<DeadlineExceeded>> DeadlineTimer<E> for TokioDeadline {
    fn poll_expired(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<E> {
        let mut this = self.project();
        if this.sleep.is_none() {
            this.sleep.set(Some(tokio::time::sleep_until(*this.at)));
        }
        match this.sleep.as_pin_mut() {
            Some(sleep) => sleep.poll(cx).map(|()| DeadlineExceeded.into()),
            None => Poll::Pending,
        }
    }
}

/// The action decorator: runs futures as one named action and records how each
/// ended. Cheap to clone; with the `tower` feature it is also a `tower::Layer`.
///
/// [`ActionRecorder::executor`] gives one for an action name; [`run`](Self::run)
/// wraps any future that returns a `Result` in an [`ActionFuture`], which times
/// it from the call and records how it ended:
///
/// | how it ended | `outcome` | what the caller gets |
/// |---|---|---|
/// | `Ok(v)` and the classifier accepts `v` | `success` | `Ok(v)` |
/// | `Ok(v)` the classifier calls a failure, or `Err(e)` | `failure` | unchanged |
/// | the deadline passed first | `timeout` | `Err(DeadlineExceeded.into())` |
/// | dropped before it finished (`select!`, an aborted task) | `cancelled` | — |
/// | the future (or the classifier) panicked | `panic` | the panic, resumed |
///
/// It allocates nothing per call: the wrapper is a struct holding the future,
/// pinned where the caller pins it, with one reference count on the recorder.
/// Which `Ok`s are failures is up to a [`ClassifyOk`]: [`OkIsSuccess`] (the
/// default) or any `Fn(&T) -> bool` closure. The deadline is a
/// [`StartDeadline`]: none by default, a `Duration` with the `tokio` feature, or
/// any closure that returns a timer future (`async-io`, `smol`, embassy…), so
/// the decorator works with or without tokio.
///
/// ```
/// use outcometer::testing::InMemoryBackend;
/// use outcometer::{ActionOutcome, ActionRecorder};
///
/// let backend = InMemoryBackend::new();
/// let actions = ActionRecorder::builder().build(&backend)?;
/// // A 5xx answer is an `Ok` from the HTTP client, and a failure of the action.
/// let send = actions.executor("send_webhook").classify(|status: &u16| *status >= 500);
///
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// let status = runtime.block_on(send.run(async { Ok::<u16, std::io::Error>(503) }))?;
/// assert_eq!(status, 503); // handed back unchanged, and counted as a failure:
/// assert_eq!(actions.executed(send.action(), ActionOutcome::Failure), 1);
/// assert_eq!(
///     backend.counter_value("actions.executed", &[("action", "send_webhook"), ("outcome", "failure")]),
///     Some(1)
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// `C` decides which `Ok`s are failures ([`ClassifyOk`]); `D` starts each run's
/// deadline ([`StartDeadline`]).
#[derive(Clone, Debug)]
pub struct ActionExecutor<C = OkIsSuccess, D = NoDeadline> {
    recorder: ActionRecorder,
    action: ActionName,
    classifier: C,
    deadline: D,
}

impl<C, D> ActionExecutor<C, D> {
    /// The same action with `classifier` deciding which `Ok`s are failures.
    pub fn classify<C2>(self, classifier: C2) -> ActionExecutor<C2, D> {
        ActionExecutor {
            recorder: self.recorder,
            action: self.action,
            classifier,
            deadline: self.deadline,
        }
    }

    /// The same action with a deadline per run: a `Duration` (feature `tokio`), or
    /// a closure returning a timer future. A run still going when it passes ends
    /// as `timeout`, returning [`DeadlineExceeded`] converted into its error type.
    pub fn deadline<D2: StartDeadline>(self, deadline: D2) -> ActionExecutor<C, D2> {
        ActionExecutor {
            recorder: self.recorder,
            action: self.action,
            classifier: self.classifier,
            deadline,
        }
    }

    /// The pre-resolved action name.
    pub fn action(&self) -> ActionName {
        self.action
    }

    /// Wraps `future`, a run of this action starting now: see [`ActionExecutor`].
    /// Polling it polls `future`; its output is `future`'s, or the deadline error.
    pub fn run<F, T, E>(&self, future: F) -> ActionFuture<F, C, D::Timer>
    where
        F: Future<Output = Result<T, E>>,
        C: ClassifyOk<T> + Clone,
        D: StartDeadline,
        D::Timer: DeadlineTimer<E>,
    {
        let pending = match (&self.recorder.cells, self.action.0) {
            (Some(cells), Some(action)) => Some(Running {
                cells: cells.clone(),
                action,
                start: Instant::now(),
            }),
            _ => None,
        };
        ActionFuture {
            inner: future,
            deadline: self.deadline.start(),
            classifier: self.classifier.clone(),
            run: Run(pending),
        }
    }
}

struct Running {
    cells: Arc<ActionCells>,
    action: Admitted,
    start: Instant,
}

/// The record of a run not yet recorded; dropped unrecorded, it records `cancelled`.
struct Run(Option<Running>);

impl Run {
    #[inline]
    fn finish(&mut self, outcome: ActionOutcome) {
        if let Some(run) = self.0.take() {
            let cells = &run.cells;
            cells.record(run.action, outcome, run.start.elapsed(), || {
                cells.admitted_name(run.action)
            });
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        self.finish(ActionOutcome::Cancelled);
    }
}

pin_project_lite::pin_project! {
    /// A run of an action: the wrapped future, its deadline and its record.
    /// Made by [`ActionExecutor::run`]; see [`ActionExecutor`].
    #[must_use = "futures do nothing unless polled; dropped unpolled, the run counts as cancelled"]
    pub struct ActionFuture<F, C = OkIsSuccess, D = NoDeadline> {
        #[pin]
        inner: F,
        #[pin]
        deadline: D,
        classifier: C,
        run: Run,
    }
}

impl<F, C, D> fmt::Debug for ActionFuture<F, C, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActionFuture")
            .field("recording", &self.run.0.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, T, E, C, D> Future for ActionFuture<F, C, D>
where
    F: Future<Output = Result<T, E>>,
    C: ClassifyOk<T>,
    D: DeadlineTimer<E>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T, E>> {
        let this = self.project();
        let mut inner = this.inner;
        if this.run.0.is_none() {
            // Not recording (disabled, or polled again after it finished): the
            // future alone, its panics untouched. The deadline still applies.
            return match inner.poll(cx) {
                Poll::Pending => this.deadline.poll_expired(cx).map(Err),
                ready => ready,
            };
        }
        let classifier = &*this.classifier;
        let polled = catch_unwind(AssertUnwindSafe(|| match inner.as_mut().poll(cx) {
            Poll::Ready(Ok(value)) => {
                let outcome = match classifier.is_failure(&value) {
                    true => ActionOutcome::Failure,
                    false => ActionOutcome::Success,
                };
                Poll::Ready((Ok(value), outcome))
            }
            Poll::Ready(Err(error)) => Poll::Ready((Err(error), ActionOutcome::Failure)),
            Poll::Pending => Poll::Pending,
        }));
        match polled {
            Ok(Poll::Ready((result, outcome))) => {
                this.run.finish(outcome);
                Poll::Ready(result)
            }
            Ok(Poll::Pending) => match this.deadline.poll_expired(cx) {
                Poll::Ready(error) => {
                    this.run.finish(ActionOutcome::Timeout);
                    Poll::Ready(Err(error))
                }
                Poll::Pending => Poll::Pending,
            },
            Err(panic) => {
                this.run.finish(ActionOutcome::Panic);
                resume_unwind(panic)
            }
        }
    }
}

#[cfg(feature = "tower")]
mod tower {
    use super::*;

    impl<S, C: Clone, D: Clone> tower_layer::Layer<S> for ActionExecutor<C, D> {
        type Service = ActionService<S, C, D>;
        fn layer(&self, inner: S) -> Self::Service {
            ActionService {
                inner,
                executor: self.clone(),
            }
        }
    }

    /// A tower service whose every call is one run of an action: made by using an
    /// [`ActionExecutor`] as a `tower::Layer` (feature `tower`).
    #[derive(Clone, Debug)]
    pub struct ActionService<S, C = OkIsSuccess, D = NoDeadline> {
        inner: S,
        executor: ActionExecutor<C, D>,
    }

    impl<S, Request, C, D> tower_service::Service<Request> for ActionService<S, C, D>
    where
        S: tower_service::Service<Request>,
        C: ClassifyOk<S::Response> + Clone,
        D: StartDeadline,
        D::Timer: DeadlineTimer<S::Error>,
    {
        type Response = S::Response;
        type Error = S::Error;
        type Future = ActionFuture<S::Future, C, D::Timer>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
            self.inner.poll_ready(cx)
        }

        fn call(&mut self, request: Request) -> Self::Future {
            self.executor.run(self.inner.call(request))
        }
    }
}

#[cfg(feature = "tower")]
pub use self::tower::ActionService;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::InMemoryBackend;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Wake, Waker};

    struct NoopWake;
    impl Wake for NoopWake {
        fn wake(self: Arc<Self>) {}
    }

    /// Polls `future` once with a waker that does nothing.
    fn poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
        let waker = Waker::from(Arc::new(NoopWake));
        future.poll(&mut Context::from_waker(&waker))
    }

    /// A timer that passes once its flag is set.
    struct FlagTimer(Arc<AtomicBool>);
    impl Future for FlagTimer {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            match self.0.load(Ordering::Relaxed) {
                true => Poll::Ready(()),
                false => Poll::Pending,
            }
        }
    }

    fn flag_timer(flag: &Arc<AtomicBool>) -> impl Fn() -> FlagTimer + Clone {
        let flag = flag.clone();
        move || FlagTimer(flag.clone())
    }

    fn recorder() -> (InMemoryBackend, ActionRecorder) {
        let backend = InMemoryBackend::with_namespace("observer").unwrap();
        let actions = ActionRecorder::builder().build(&backend).unwrap();
        (backend, actions)
    }

    #[test]
    fn every_way_a_run_ends() {
        let (backend, actions) = recorder();
        let send = actions.executor("send").classify(|status: &u16| *status >= 500);
        let name = send.action();
        let ok = std::pin::pin!(send.run(async { Ok::<u16, String>(200) }));
        assert_eq!(poll_once(ok), Poll::Ready(Ok(200)));
        let bad = std::pin::pin!(send.run(async { Ok::<u16, String>(503) }));
        assert_eq!(
            poll_once(bad),
            Poll::Ready(Ok(503)),
            "the value is handed back unchanged"
        );
        let err = std::pin::pin!(send.run(async { Err::<u16, _>("refused".to_owned()) }));
        assert_eq!(poll_once(err), Poll::Ready(Err("refused".to_owned())));
        drop(send.run(std::future::pending::<Result<u16, String>>()));
        let panicking = send.run(async { panic!("handler bug") as Result<u16, String> });
        let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut panicking = std::pin::pin!(panicking);
            let _ = poll_once(panicking.as_mut());
        }));
        assert_eq!(
            caught.unwrap_err().downcast_ref::<&str>(),
            Some(&"handler bug"),
            "the panic resumes unchanged"
        );
        let flag = Arc::new(AtomicBool::new(false));
        let timed = send.clone().deadline(flag_timer(&flag));
        let mut slow =
            std::pin::pin!(timed.run(std::future::pending::<Result<u16, Box<dyn std::error::Error>>>()));
        assert!(poll_once(slow.as_mut()).is_pending());
        flag.store(true, Ordering::Relaxed);
        match poll_once(slow.as_mut()) {
            Poll::Ready(Err(e)) => assert!(e.is::<DeadlineExceeded>(), "{e}"),
            other => panic!("{:?}", other.map(|r| r.map_err(|e| e.to_string()))),
        }
        for (outcome, n) in [
            (ActionOutcome::Success, 1),
            (ActionOutcome::Failure, 2),
            (ActionOutcome::Cancelled, 1),
            (ActionOutcome::Panic, 1),
            (ActionOutcome::Timeout, 1),
        ] {
            assert_eq!(actions.executed(name, outcome), n, "{outcome}");
            let attrs = [("action", "send"), ("outcome", outcome.as_str())];
            assert_eq!(
                backend.counter_value("observer.actions.executed", &attrs),
                Some(n)
            );
            assert_eq!(
                backend
                    .histogram("observer.actions.duration", &attrs)
                    .unwrap()
                    .count,
                n
            );
        }
    }

    #[test]
    fn finishing_records_once_even_if_polled_again() {
        let (_, actions) = recorder();
        let run = actions.executor("once");
        {
            let mut ready = std::pin::pin!(run.run(std::future::ready(Ok::<(), ()>(()))));
            assert_eq!(poll_once(ready.as_mut()), Poll::Ready(Ok(())));
            // Polled after it finished, the future panics as it would unwrapped, and
            // nothing more is recorded: not a panic, and not a cancellation when
            // it drops at the end of this block.
            let again = std::panic::catch_unwind(AssertUnwindSafe(|| poll_once(ready.as_mut())));
            assert!(again.is_err());
        }
        assert_eq!(actions.executed_total(ActionOutcome::Success), 1);
        for outcome in [ActionOutcome::Panic, ActionOutcome::Cancelled] {
            assert_eq!(actions.executed_total(outcome), 0, "{outcome}");
        }
    }

    #[test]
    fn disabled_still_enforces_the_deadline_and_records_nothing() {
        let off = ActionRecorder::builder()
            .enabled(false)
            .build(&InMemoryBackend::new())
            .unwrap();
        let flag = Arc::new(AtomicBool::new(true));
        let timed = off.executor("x").deadline(flag_timer(&flag));
        let mut run =
            std::pin::pin!(timed.run(std::future::pending::<Result<(), Box<dyn std::error::Error>>>()));
        assert!(matches!(poll_once(run.as_mut()), Poll::Ready(Err(_))));
        off.record_success("x", Duration::ZERO);
        assert_eq!(off.executed_total(ActionOutcome::Timeout), 0);
        assert!(!off.is_enabled());
    }

    #[test]
    fn names_fold_into_other_past_the_bound() {
        let backend = InMemoryBackend::new();
        let actions = ActionRecorder::builder()
            .actions(AdmissionPolicy::first_k(1))
            .build(&backend)
            .unwrap();
        actions.record_success("a", Duration::ZERO);
        actions.record_failure("b", Duration::ZERO);
        actions.record_timeout("c", Duration::ZERO);
        let other = [("action", "_OTHER"), ("outcome", "timeout")];
        assert_eq!(backend.counter_value("actions.executed", &other), Some(1));
        let overflow = backend.counter_value("outcometer.attribute.overflow", &[("attribute", "action")]);
        assert_eq!(overflow, Some(2));
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn on_tokio_a_duration_is_a_deadline_and_an_aborted_task_is_cancelled() {
        type BoxError = Box<dyn std::error::Error + Send + Sync>;
        let (_, actions) = recorder();
        let call = actions.executor("call").deadline(Duration::from_millis(20));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let slow = async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<(), BoxError>(())
        };
        let result = runtime.block_on(call.run(slow));
        assert!(result.unwrap_err().is::<DeadlineExceeded>());
        let fast = runtime.block_on(call.run(async { Ok::<_, BoxError>(7) }));
        assert_eq!(fast.unwrap(), 7);
        let task = runtime.spawn(
            actions
                .executor("call")
                .run(std::future::pending::<Result<(), ()>>()),
        );
        task.abort();
        assert!(runtime.block_on(task).unwrap_err().is_cancelled());
        let name = call.action();
        for outcome in [
            ActionOutcome::Timeout,
            ActionOutcome::Success,
            ActionOutcome::Cancelled,
        ] {
            assert_eq!(actions.executed(name, outcome), 1, "{outcome}");
        }
    }

    #[cfg(feature = "tower")]
    #[test]
    fn as_a_tower_layer_every_call_is_a_run() {
        use tower_layer::Layer;
        use tower_service::Service;

        /// Answers the status it is asked for; 0 is an error.
        struct Status;
        impl Service<u16> for Status {
            type Response = u16;
            type Error = Box<dyn std::error::Error + Send + Sync>;
            type Future = std::future::Ready<Result<u16, Self::Error>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                Poll::Ready(Ok(()))
            }
            fn call(&mut self, status: u16) -> Self::Future {
                std::future::ready(if status == 0 {
                    Err("no answer".into())
                } else {
                    Ok(status)
                })
            }
        }

        let (backend, actions) = recorder();
        let layer = actions
            .executor("deliver")
            .classify(|status: &u16| *status >= 500);
        let mut service = layer.layer(Status);
        for status in [200, 204, 503, 0] {
            assert!(poll_once(std::pin::pin!(service.call(status))).is_ready());
        }
        let count = |outcome: &str| {
            backend.counter_value(
                "observer.actions.executed",
                &[("action", "deliver"), ("outcome", outcome)],
            )
        };
        assert_eq!((count("success"), count("failure")), (Some(2), Some(2)));
    }
}
