//! The pipeline families (events, actions, queue, cache, dedup, checkpoint):
//! properties of every domain and of the action decorator, configuration from
//! files, and 100,000 distinct names that stay inside the declared bounds.

use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use outcometer::testing::{InMemoryBackend, Point, PointValue};
use outcometer::toolkit::{Backend, MAX_VALUE_LEN};
use outcometer::{
    ActionMetrics, ActionOutcome, ActionRecorder, AdmissionPolicy, CacheMetrics, CacheRecorder, CacheResult,
    CheckpointMetrics, CheckpointOutcome, CheckpointRecorder, DeadlineExceeded, DedupMetrics, DedupRecorder,
    DedupResult, EventOutcome, EventProcessingMetrics, EventProcessingRecorder, EvictionCause, QueueMetrics,
    QueueOutcome, QueueRecorder, RecoveryResult,
};
use proptest::prelude::*;

type BoxError = Box<dyn Error + Send + Sync>;

const OVERFLOW: &str = "outcometer.attribute.overflow";

fn overflow(backend: &InMemoryBackend, attribute: &str) -> u64 {
    backend
        .counter_value(OVERFLOW, &[("attribute", attribute)])
        .unwrap_or(0)
}

/// Every instrument of `backend` holds at most its declared number of series.
fn assert_within_bounds(backend: &InMemoryBackend) -> Vec<Point> {
    let points = backend.points();
    let mut per_instrument: HashMap<&str, usize> = HashMap::new();
    for p in &points {
        *per_instrument.entry(p.name.as_str()).or_default() += 1;
    }
    for instrument in backend.registry().unwrap().instruments() {
        let def = instrument.def();
        let seen = per_instrument.get(def.name()).copied().unwrap_or(0);
        assert!(
            seen <= def.series_bound(),
            "{} has {seen} series, over its bound {}",
            def.name(),
            def.series_bound()
        );
    }
    points
}

/// Which names an admission of `k` first-come values gives their own value,
/// as the `Names` normaliser judges them, and how many lookups folded.
#[derive(Default)]
struct AdmissionModel {
    k: usize,
    admitted: Vec<String>,
    folds: u64,
}

impl AdmissionModel {
    fn new(k: usize) -> Self {
        AdmissionModel { k, ..Self::default() }
    }

    /// The value `name` is recorded under.
    fn resolve(&mut self, name: &str) -> String {
        let valid = !name.is_empty() && name.len() <= MAX_VALUE_LEN && !name.chars().any(char::is_control);
        if valid && (self.admitted.iter().any(|a| a == name) || self.admitted.len() < self.k) {
            if !self.admitted.iter().any(|a| a == name) {
                self.admitted.push(name.to_owned());
            }
            return name.to_owned();
        }
        self.folds += 1;
        "_OTHER".to_owned()
    }
}

fn any_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "q[0-5]",
        1 => any::<String>(),
        1 => Just(String::new()),
        1 => "[a-z]{254,260}",
    ]
}

fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        (0u64..100_000, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

/// One call on one of the six families.
#[derive(Clone, Debug)]
enum Op {
    Event(EventOutcome, Duration),
    Action(String, ActionOutcome, Duration),
    Enqueued(String),
    Processed(String, QueueOutcome),
    Wait(String, Duration),
    Depth(String, u64),
    Oldest(String, Option<Duration>),
    Get(String, CacheResult),
    Eviction(String, EvictionCause),
    Size(String, u64),
    Check(DedupResult),
    Save(CheckpointOutcome, Duration),
    Recovery(RecoveryResult),
}

fn any_op() -> impl Strategy<Value = Op> {
    let event = prop::sample::select(EventOutcome::ALL);
    let action = prop::sample::select(ActionOutcome::ALL);
    let queue = prop::sample::select(QueueOutcome::ALL);
    prop_oneof![
        (event, any_duration()).prop_map(|(o, d)| Op::Event(o, d)),
        (any_name(), action, any_duration()).prop_map(|(n, o, d)| Op::Action(n, o, d)),
        any_name().prop_map(Op::Enqueued),
        (any_name(), queue).prop_map(|(n, o)| Op::Processed(n, o)),
        (any_name(), any_duration()).prop_map(|(n, d)| Op::Wait(n, d)),
        (any_name(), any::<u64>()).prop_map(|(n, d)| Op::Depth(n, d)),
        (any_name(), prop::option::of(any_duration())).prop_map(|(n, a)| Op::Oldest(n, a)),
        (any_name(), prop::sample::select(CacheResult::ALL)).prop_map(|(n, r)| Op::Get(n, r)),
        (any_name(), prop::sample::select(EvictionCause::ALL)).prop_map(|(n, c)| Op::Eviction(n, c)),
        (any_name(), any::<u64>()).prop_map(|(n, b)| Op::Size(n, b)),
        prop::sample::select(DedupResult::ALL).prop_map(Op::Check),
        (prop::sample::select(CheckpointOutcome::ALL), any_duration()).prop_map(|(o, d)| Op::Save(o, d)),
        prop::sample::select(RecoveryResult::ALL).prop_map(Op::Recovery),
    ]
}

struct Pipeline {
    events: EventProcessingRecorder,
    actions: ActionRecorder,
    queues: QueueRecorder,
    caches: CacheRecorder,
    dedup: DedupRecorder,
    checkpoints: CheckpointRecorder,
}

impl Pipeline {
    fn build(backend: &InMemoryBackend, k: usize) -> Self {
        Pipeline {
            events: EventProcessingRecorder::builder().build(backend).unwrap(),
            actions: ActionRecorder::builder()
                .actions(AdmissionPolicy::first_k(k))
                .build(backend)
                .unwrap(),
            queues: QueueRecorder::builder()
                .queues(AdmissionPolicy::first_k(k))
                .build(backend)
                .unwrap(),
            caches: CacheRecorder::builder()
                .caches(AdmissionPolicy::first_k(k))
                .build(backend)
                .unwrap(),
            dedup: DedupRecorder::builder().build(backend).unwrap(),
            checkpoints: CheckpointRecorder::builder().build(backend).unwrap(),
        }
    }

    /// Records `op` through the ports, as application code would.
    fn apply(&self, op: &Op) {
        match op {
            Op::Event(o, d) => self.events.record_event(*o, *d),
            Op::Action(n, o, d) => self.actions.record_action(n, *o, *d),
            Op::Enqueued(n) => self.queues.record_enqueued(n),
            Op::Processed(n, o) => self.queues.record_processed(n, *o),
            Op::Wait(n, d) => self.queues.record_wait(n, *d),
            Op::Depth(n, d) => self.queues.record_depth(n, *d),
            Op::Oldest(n, a) => self.queues.record_oldest_age(n, *a),
            Op::Get(n, r) => self.caches.record_get(n, *r),
            Op::Eviction(n, c) => self.caches.record_eviction(n, *c),
            Op::Size(n, b) => self.caches.record_size(n, *b),
            Op::Check(r) => self.dedup.record_check(*r),
            Op::Save(o, d) => self.checkpoints.record_save(*o, *d),
            Op::Recovery(r) => self.checkpoints.record_recovery(*r),
        }
    }
}

/// Counter totals keyed by (instrument, attributes as `k=v` sorted).
fn counters(points: &[Point]) -> HashMap<(String, Vec<String>), u64> {
    points
        .iter()
        .filter_map(|p| match p.value {
            PointValue::Counter(v) => {
                let mut attrs: Vec<String> = p.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
                attrs.sort();
                Some(((p.name.clone(), attrs), v))
            }
            _ => None,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Every call lands in exactly the series its closed values and admitted name
    /// say, nothing escapes a declared bound, and the overflow counter counts
    /// exactly the lookups that folded into `_OTHER`.
    #[test]
    fn every_domain_records_exactly_and_stays_bounded(ops in prop::collection::vec(any_op(), 1..120), k in 1usize..4) {
        let backend = InMemoryBackend::new();
        let pipeline = Pipeline::build(&backend, k);
        let mut models: HashMap<&str, AdmissionModel> =
            ["action", "queue", "cache"].into_iter().map(|a| (a, AdmissionModel::new(k))).collect();
        let mut want: HashMap<(String, Vec<String>), u64> = HashMap::new();
        let mut count = |name: &str, attrs: &[(&str, String)]| {
            let mut attrs: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            attrs.sort();
            *want.entry((name.to_owned(), attrs)).or_default() += 1;
        };
        for op in &ops {
            pipeline.apply(op);
            let mut model = |attribute: &'static str, name: &str| models.get_mut(attribute).unwrap().resolve(name);
            match op {
                Op::Event(o, _) => count("events.processed", &[("outcome", o.as_str().into())]),
                Op::Action(n, o, _) => {
                    let action = model("action", n);
                    count("actions.executed", &[("action", action), ("outcome", o.as_str().into())]);
                }
                Op::Enqueued(n) => count("queue.enqueued", &[("queue", model("queue", n))]),
                Op::Processed(n, o) => {
                    let queue = model("queue", n);
                    count("queue.processed", &[("queue", queue), ("outcome", o.as_str().into())]);
                }
                Op::Wait(n, _) | Op::Depth(n, _) | Op::Oldest(n, _) => {
                    model("queue", n);
                }
                Op::Get(n, r) => {
                    let cache = model("cache", n);
                    count("cache.gets", &[("cache", cache), ("result", r.as_str().into())]);
                }
                Op::Eviction(n, c) => {
                    let cache = model("cache", n);
                    count("cache.evictions", &[("cache", cache), ("cause", c.as_str().into())]);
                }
                Op::Size(n, _) => {
                    model("cache", n);
                }
                Op::Check(r) => count("dedup.checks", &[("result", r.as_str().into())]),
                Op::Save(o, _) => count("checkpoint.saves", &[("outcome", o.as_str().into())]),
                Op::Recovery(r) => count("checkpoint.recoveries", &[("result", r.as_str().into())]),
            }
        }
        let points = assert_within_bounds(&backend);
        let mut have = counters(&points);
        for attribute in ["action", "queue", "cache"] {
            let folds = have.remove(&(OVERFLOW.to_owned(), vec![format!("attribute={attribute}")])).unwrap_or(0);
            prop_assert_eq!(folds, models[attribute].folds, "folds of {}", attribute);
        }
        prop_assert_eq!(have, want);
        // Histograms count what their buckets hold; gauges hold finite, non-negative values.
        for p in &points {
            if let PointValue::Histogram(h) = &p.value {
                prop_assert_eq!(h.bucket_counts.iter().sum::<u64>(), h.count);
            }
            if let PointValue::Gauge(v) = p.value {
                prop_assert!(v.is_finite() && v >= 0.0, "{} = {}", p.name, v);
            }
        }
        let saves = ops.iter().filter(|op| matches!(op, Op::Save(CheckpointOutcome::Success, _))).count();
        prop_assert_eq!(pipeline.checkpoints.last_success().is_some(), saves > 0);
    }
}

// ---- the decorator ----

struct NoopWake;
impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

/// How a scripted action ends after its pending polls.
#[derive(Clone, Debug)]
enum End {
    Ok(u16),
    Err,
    Panic,
    Never,
}

/// An action that is pending `pending` times, then ends as `end` says.
struct Script {
    pending: u8,
    end: End,
}

impl Future for Script {
    type Output = Result<u16, BoxError>;
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        if self.pending > 0 {
            self.pending -= 1;
            return Poll::Pending;
        }
        match self.end {
            End::Ok(v) => Poll::Ready(Ok(v)),
            End::Err => Poll::Ready(Err("refused".into())),
            End::Panic => panic!("scripted panic"),
            End::Never => Poll::Pending,
        }
    }
}

/// A deadline that passes on its `left`-th poll (it is polled only while the
/// action is pending).
struct CountingTimer {
    left: u8,
}

impl Future for CountingTimer {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        self.left = self.left.saturating_sub(1);
        if self.left == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// What driving a run produced: its output, the panic it resumed, or nothing
/// (dropped unfinished after `budget` polls).
#[derive(Debug)]
enum Driven {
    Output(Result<u16, String>),
    Panicked(String),
    Dropped,
}

fn drive<F: Future<Output = Result<u16, BoxError>>>(future: F, budget: u8) -> Driven {
    let waker = Waker::from(Arc::new(NoopWake));
    let mut cx = Context::from_waker(&waker);
    let mut future = Box::pin(future);
    for _ in 0..budget {
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))) {
            Ok(Poll::Ready(result)) => {
                return Driven::Output(result.map_err(|e| match e.is::<DeadlineExceeded>() {
                    true => "deadline".to_owned(),
                    false => e.to_string(),
                }))
            }
            Ok(Poll::Pending) => {}
            Err(panic) => {
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                return Driven::Panicked(text);
            }
        }
    }
    Driven::Dropped
}

/// The outcome and result the decorator must produce for a script.
fn expected(pending: u8, end: &End, deadline: Option<u8>, budget: u8) -> (ActionOutcome, Driven) {
    let pending_at = |poll: u8| poll <= pending || matches!(end, End::Never);
    let timeout = deadline.filter(|&k| pending_at(k));
    let ready = (!matches!(end, End::Never)).then_some(pending + 1);
    let finish = match (timeout, ready) {
        (Some(t), Some(r)) => Some(t.min(r)),
        (t, r) => t.or(r),
    };
    match finish {
        Some(at) if at <= budget && Some(at) == timeout => {
            (ActionOutcome::Timeout, Driven::Output(Err("deadline".into())))
        }
        Some(at) if at <= budget => match end {
            End::Ok(v) if *v >= 500 => (ActionOutcome::Failure, Driven::Output(Ok(*v))),
            End::Ok(v) => (ActionOutcome::Success, Driven::Output(Ok(*v))),
            End::Err => (ActionOutcome::Failure, Driven::Output(Err("refused".into()))),
            End::Panic => (ActionOutcome::Panic, Driven::Panicked("scripted panic".into())),
            End::Never => unreachable!("a run that never ends finishes only by its deadline"),
        },
        _ => (ActionOutcome::Cancelled, Driven::Dropped),
    }
}

fn any_end() -> impl Strategy<Value = End> {
    prop_oneof![
        (100u16..600).prop_map(End::Ok),
        Just(End::Err),
        Just(End::Panic),
        Just(End::Never),
    ]
}

fn same(a: &Driven, b: &Driven) -> bool {
    match (a, b) {
        (Driven::Output(x), Driven::Output(y)) => x == y,
        (Driven::Panicked(x), Driven::Panicked(y)) => x == y,
        (Driven::Dropped, Driven::Dropped) => true,
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Success, failure by `Err` or by the classifier, timeout, cancellation and
    /// panic: each run is recorded exactly once, under the outcome it had, and
    /// the caller gets exactly what the action returned (or its panic). Disabled,
    /// the decorator hands back the same and records nothing.
    #[test]
    fn the_decorator_records_how_every_run_ended(
        runs in prop::collection::vec((0u8..5, any_end(), prop::option::of(1u8..7), 0u8..9), 1..30),
    ) {
        let backend = InMemoryBackend::new();
        let actions = ActionRecorder::builder().build(&backend).unwrap();
        let off = ActionRecorder::disabled();
        let mut want: HashMap<ActionOutcome, u64> = HashMap::new();
        for (pending, end, deadline, budget) in &runs {
            let (outcome, result) = expected(*pending, end, *deadline, *budget);
            *want.entry(outcome).or_default() += 1;
            for recorder in [&actions, &off] {
                let executor = recorder.executor("scripted").classify(|status: &u16| *status >= 500);
                let script = Script { pending: *pending, end: end.clone() };
                let driven = match deadline {
                    None => drive(executor.run(script), *budget),
                    Some(k) => {
                        let k = *k;
                        drive(executor.deadline(move || CountingTimer { left: k }).run(script), *budget)
                    }
                };
                prop_assert!(same(&driven, &result), "{:?} but expected {:?}", driven, result);
            }
        }
        let name = actions.action("scripted");
        for &outcome in ActionOutcome::ALL {
            let n = want.get(&outcome).copied().unwrap_or(0);
            prop_assert_eq!(actions.executed(name, outcome), n, "{}", outcome);
            let histogram = backend.histogram("actions.duration", &[("action", "scripted"), ("outcome", outcome.as_str())]);
            prop_assert_eq!(histogram.map_or(0, |h| h.count), n, "{}", outcome);
            prop_assert_eq!(off.executed_total(outcome), 0);
        }
    }
}

// ---- 100,000 names ----

#[test]
fn a_hundred_thousand_names_stay_inside_every_bound_and_every_fold_is_counted() {
    const NAMES: usize = 100_000;
    let backend = InMemoryBackend::with_namespace("observer").unwrap();
    let pipeline = Pipeline::build(&backend, outcometer::toolkit::DEFAULT_ADMITTED_QUEUES);
    let waker = Waker::from(Arc::new(NoopWake));
    let mut cx = Context::from_waker(&waker);
    for i in 0..NAMES {
        let name = format!("tenant-{i}");
        let d = Duration::from_millis(i as u64 % 5_000);
        // Queue: five lookups per name.
        pipeline.queues.record_enqueued(&name);
        pipeline
            .queues
            .record_processed(&name, QueueOutcome::ALL[i % QueueOutcome::ALL.len()]);
        pipeline.queues.record_wait(&name, d);
        pipeline.queues.record_depth(&name, i as u64);
        pipeline.queues.record_oldest_age(&name, Some(d));
        // Cache: three lookups per name.
        pipeline.caches.record_get(&name, CacheResult::ALL[i % 2]);
        pipeline
            .caches
            .record_eviction(&name, EvictionCause::ALL[i % EvictionCause::ALL.len()]);
        pipeline.caches.record_size(&name, i as u64);
        // Action: two lookups per name, one by hand and one by the decorator.
        pipeline
            .actions
            .record_action(&name, ActionOutcome::ALL[i % ActionOutcome::ALL.len()], d);
        let run = pipeline
            .actions
            .executor(&name)
            .run(std::future::ready(Ok::<(), ()>(())));
        assert!(std::pin::pin!(run).poll(&mut cx).is_ready());
    }
    let points = assert_within_bounds(&backend);
    let other_series = |instrument: &str, key: &str| {
        points
            .iter()
            .filter(|p| p.name == instrument && p.attributes.iter().any(|(k, v)| k == key && v == "_OTHER"))
            .count()
    };
    let folded = (NAMES - 20) as u64;
    assert_eq!(overflow(&backend, "queue"), 5 * folded);
    assert_eq!(overflow(&backend, "cache"), 3 * folded);
    assert_eq!(overflow(&backend, "action"), 2 * folded);
    assert_eq!(
        backend.counter_value("observer.queue.enqueued", &[("queue", "_OTHER")]),
        Some(folded)
    );
    assert_eq!(pipeline.queues.enqueued(), NAMES as u64);
    assert_eq!(
        pipeline.actions.executed_total(ActionOutcome::Success),
        (NAMES / 5 + NAMES) as u64
    );
    // Every series that exists names one of the first 20 or `_OTHER`.
    let admitted: HashSet<String> = (0..20).map(|i| format!("tenant-{i}")).collect();
    for p in &points {
        for (key, value) in &p.attributes {
            if ["queue", "cache", "action"].contains(&key.as_str()) {
                assert!(
                    value == "_OTHER" || admitted.contains(value),
                    "{} {key}={value}",
                    p.name
                );
            }
        }
    }
    assert_eq!(other_series("observer.queue.processed", "queue"), 3);
    assert_eq!(other_series("observer.cache.evictions", "cache"), 4);
    assert_eq!(other_series("observer.actions.executed", "action"), 5);
}

#[test]
fn a_non_unit_sample_rate_is_refused_with_the_reason() {
    let backend = InMemoryBackend::new();
    let errors = [
        EventProcessingRecorder::builder()
            .sample_rate(0.1)
            .build(&backend)
            .err(),
        ActionRecorder::builder().sample_rate(0.5).build(&backend).err(),
        QueueRecorder::builder().sample_rate(0.0).build(&backend).err(),
        CacheRecorder::builder().sample_rate(2.0).build(&backend).err(),
        DedupRecorder::builder()
            .sample_rate(f64::NAN)
            .build(&backend)
            .err(),
        CheckpointRecorder::builder()
            .sample_rate(0.99)
            .build(&backend)
            .err(),
    ];
    for err in errors {
        let text = err.expect("refused").to_string();
        assert!(
            text.contains("`sample_rate`") && text.contains("only 1.0 is accepted"),
            "{text}"
        );
    }
    assert!(backend.registry().unwrap().families().is_empty());
}

#[cfg(feature = "serde")]
mod from_a_file {
    use super::*;
    use outcometer::{
        ActionConfig, CacheConfig, CheckpointConfig, DedupConfig, EventProcessingConfig, QueueConfig,
    };

    /// What an application might keep under `metrics` in its configuration file.
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Metrics {
        #[serde(default)]
        events: EventProcessingConfig,
        #[serde(default)]
        actions: ActionConfig,
        #[serde(default)]
        queue: QueueConfig,
        #[serde(default)]
        cache: CacheConfig,
        #[serde(default)]
        dedup: DedupConfig,
        #[serde(default)]
        checkpoint: CheckpointConfig,
    }

    #[test]
    fn configs_deserialise_with_defaults_for_what_is_left_out() {
        let file = r#"{
            "events": { "duration_buckets": [0.01, 0.1, 1.0] },
            "actions": { "actions": { "allow": ["send_email", "call_webhook"] }, "sample_rate": 1.0 },
            "queue": { "queues": { "allow": ["orders"], "first_k": 3 }, "wait_buckets": [1, 10, 100] },
            "cache": { "enabled": false },
            "dedup": {}
        }"#;
        let metrics: Metrics = serde_json::from_str(file).unwrap();
        assert_eq!(metrics.events.duration_buckets, [0.01, 0.1, 1.0]);
        assert_eq!(
            metrics.actions.actions,
            AdmissionPolicy::allow_list(["send_email", "call_webhook"])
        );
        assert_eq!(
            metrics.queue.queues,
            AdmissionPolicy::allow_then_first_k(["orders"], 3)
        );
        assert_eq!(metrics.checkpoint, CheckpointConfig::default());
        assert!(metrics.dedup.enabled && !metrics.cache.enabled);

        let backend = InMemoryBackend::new();
        let events = outcometer::EventProcessingRecorderBuilder::from(metrics.events)
            .build(&backend)
            .unwrap();
        let queues = outcometer::QueueRecorderBuilder::from(metrics.queue)
            .build(&backend)
            .unwrap();
        let caches = outcometer::CacheRecorderBuilder::from(metrics.cache)
            .build(&backend)
            .unwrap();
        let actions = outcometer::ActionRecorderBuilder::from(metrics.actions)
            .build(&backend)
            .unwrap();
        events.record_success(Duration::from_millis(50));
        queues.record_wait("orders", Duration::from_secs(5));
        actions.record_success("send_sms", Duration::ZERO);
        assert!(!caches.is_enabled());
        let h = backend
            .histogram("events.duration", &[("outcome", "success")])
            .unwrap();
        assert_eq!(h.boundaries, [0.01, 0.1, 1.0]);
        let h = backend.histogram("queue.wait", &[("queue", "orders")]).unwrap();
        assert_eq!(h.bucket_counts, [0, 1, 0, 0]);
        assert_eq!(
            overflow(&backend, "action"),
            1,
            "send_sms is not on the allow-list"
        );

        let round_trip: QueueConfig =
            serde_json::from_str(&serde_json::to_string(&QueueConfig::default()).unwrap()).unwrap();
        assert_eq!(round_trip, QueueConfig::default());
    }

    #[test]
    fn typos_and_bad_values_are_errors_that_say_so() {
        let typo = serde_json::from_str::<QueueConfig>(r#"{ "wait_bucket": [1] }"#).unwrap_err();
        assert!(typo.to_string().contains("unknown field `wait_bucket`"), "{typo}");
        let policy = serde_json::from_str::<CacheConfig>(r#"{ "caches": { "first": 3 } }"#).unwrap_err();
        assert!(policy.to_string().contains("unknown field `first`"), "{policy}");
        let sampled: DedupConfig = serde_json::from_str(r#"{ "sample_rate": 0.25 }"#).unwrap();
        let err = outcometer::DedupRecorderBuilder::from(sampled)
            .build(&InMemoryBackend::new())
            .unwrap_err();
        assert!(err.to_string().contains("only 1.0 is accepted"), "{err}");
        let unsorted: CheckpointConfig =
            serde_json::from_str(r#"{ "save_duration_buckets": [2, 1] }"#).unwrap();
        let err = outcometer::CheckpointRecorderBuilder::from(unsorted)
            .build(&InMemoryBackend::new())
            .unwrap_err();
        assert!(err.to_string().contains("strictly increasing"), "{err}");
    }
}
