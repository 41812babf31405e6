//! Cost of one recorded outcome, outcometer beside the libraries a user would
//! otherwise pick, in one run (docs/performance.md).
//!
//! Every benchmark cycles the same shape in the same fixed order: 3 outcomes ×
//! 8 age buckets × 16 user scopes = 384 series, one series a call. Peers get their
//! fastest idiomatic form: attributes and label values built before the loop.
//! `contended2` splits the 384 series between two threads, 192 each, disjoint.
//! With `--features tracing`, `tracing` measures the outcome events (docs/tracing.md):
//! no subscriber, a subscriber whose filter disables them, and events enabled.

use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::{ManualReader, SdkMeterProvider};
use outcometer::otel::OtelBackend;
use outcometer::{
    ActionExecutor, ActionName, ActionOutcome, ActionRecorder, AgeBucket, Cache, CacheRecorder, CacheResult,
    CheckpointMetrics, CheckpointOutcome, CheckpointRecorder, DedupRecorder, DedupResult, DeliveryRecorder,
    DeliveryResult, Endpoint, ErrorKind, EventOutcome, EventProcessingMetrics, EventProcessingRecorder,
    IdempotencyMetrics, IdempotencyOutcome, IdempotencyRecorder, Queue, QueueOutcome, QueueRecorder,
    ScopeHasher, UserScope,
};

const OUTCOMES: [IdempotencyOutcome; 3] = [
    IdempotencyOutcome::Hit,
    IdempotencyOutcome::Conflict,
    IdempotencyOutcome::InFlight,
];
/// One age in each of the 7 age buckets, then no age (`n/a`).
const AGES: [Option<u64>; 8] = [
    Some(30),
    Some(120),
    Some(600),
    Some(3_600),
    Some(10_800),
    Some(43_200),
    Some(100_000),
    None,
];
const SCOPES: usize = 16;
const SERIES: usize = OUTCOMES.len() * AGES.len() * SCOPES;

/// The `i`-th call's (outcome, age, scope) coordinates.
fn coords(i: usize) -> (usize, usize, usize) {
    (i / (AGES.len() * SCOPES), (i / SCOPES) % AGES.len(), i % SCOPES)
}

/// Label values in the same order, as every peer sees them.
fn labels(i: usize) -> [&'static str; 3] {
    const OUTCOME: [&str; 3] = ["hit", "conflict", "in_flight"];
    const AGE: [&str; 8] = [
        "0-1m", "1-5m", "5-30m", "30m-2h", "2h-6h", "6h-24h", ">24h", "n/a",
    ];
    const SCOPE: [&str; SCOPES] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f",
    ];
    let (o, a, s) = coords(i);
    [OUTCOME[o], SCOPE[s], AGE[a]]
}

fn key_values(i: usize) -> [KeyValue; 3] {
    let [o, s, a] = labels(i);
    [
        KeyValue::new("outcome", o),
        KeyValue::new("user_scope", s),
        KeyValue::new("age_bucket", a),
    ]
}

fn age_seconds(i: usize) -> f64 {
    AGES[coords(i).1].unwrap_or(0) as f64
}

/// Runs `op` on series `from`, `from + 1`, …, `to - 1`, `from`, … — the shared
/// loop every benchmark pays.
#[inline(always)]
fn cycle_in(iters: u64, from: usize, to: usize, mut op: impl FnMut(usize)) {
    let mut i = from;
    for _ in 0..iters {
        op(i);
        i += 1;
        if i == to {
            i = from;
        }
    }
}

/// Times `iters` calls of `op` over all series (0, 1, …, 383, 0, …), on this thread.
fn one_thread(iters: u64, op: impl FnMut(usize)) -> Duration {
    let start = Instant::now();
    cycle_in(iters, 0, SERIES, op);
    start.elapsed()
}

/// The idempotency recorder as configured by default, and with the opt-in histogram.
const IDEMPOTENCY_VARIANTS: [(&str, bool); 2] = [
    ("outcometer_idempotency", false),
    ("outcometer_idempotency_key_age", true),
];

fn provider() -> SdkMeterProvider {
    SdkMeterProvider::builder()
        .with_reader(ManualReader::builder().build())
        .build()
}

struct IdempotencyCase {
    recorder: IdempotencyRecorder,
    calls: Vec<(IdempotencyOutcome, UserScope, Option<Duration>)>,
}

impl IdempotencyCase {
    fn new(provider: &SdkMeterProvider, key_age_histogram: bool) -> Self {
        let recorder = IdempotencyRecorder::builder()
            .key_age_histogram(key_age_histogram)
            .build(&OtelBackend::from_provider(provider))
            .expect("default idempotency recorder");
        let calls = (0..SERIES)
            .map(|i| {
                let (o, a, s) = coords(i);
                let scope = UserScope::from_digest((s as u32) << 28);
                (OUTCOMES[o], scope, AGES[a].map(Duration::from_secs))
            })
            .collect();
        IdempotencyCase { recorder, calls }
    }

    #[inline(always)]
    fn record(&self, i: usize) {
        let (outcome, scope, age) = self.calls[i];
        self.recorder.record_outcome(outcome, scope, age);
    }
}

struct DeliveryCase {
    recorder: DeliveryRecorder,
    calls: Vec<(Endpoint, DeliveryResult, Duration)>,
}

impl DeliveryCase {
    /// Same shape: 3 results × 8 durations × 16 endpoints.
    fn new(provider: &SdkMeterProvider, cells_only: bool) -> Self {
        const RESULTS: [DeliveryResult; 3] = [
            DeliveryResult::Success,
            DeliveryResult::Failure(503),
            DeliveryResult::Error(ErrorKind::Timeout),
        ];
        let backend = OtelBackend::from_provider(provider);
        let backend = if cells_only {
            // A registry of its own: the SDK-histogram recorder above is another family instance.
            backend.namespace("cells").expect("namespace").cells_only()
        } else {
            backend
        };
        let recorder = DeliveryRecorder::builder()
            .build(&backend)
            .expect("default delivery recorder");
        let endpoints: Vec<Endpoint> = (0..SCOPES)
            .map(|s| recorder.endpoint(&format!("https://hook-{s}.example.com/events")))
            .collect();
        let calls = (0..SERIES)
            .map(|i| {
                let (r, d, s) = coords(i);
                (endpoints[s], RESULTS[r], Duration::from_millis(3 << d))
            })
            .collect();
        DeliveryCase { recorder, calls }
    }
}

/// The pipeline families, each recorded the way its hot path records: by
/// pre-resolved name (16 queues, caches, actions), cycling outcomes and durations
/// over the same 384 calls as everything else.
struct PipelineCase {
    events: EventProcessingRecorder,
    actions: ActionRecorder,
    queues: QueueRecorder,
    caches: CacheRecorder,
    dedup: DedupRecorder,
    checkpoints: CheckpointRecorder,
    executors: Vec<ActionExecutor>,
    calls: Vec<PipelineCall>,
}

#[derive(Clone, Copy)]
struct PipelineCall {
    name: usize,
    action: ActionName,
    queue: Queue,
    cache: Cache,
    duration: Duration,
    /// Picks the outcome of each family's closed set.
    outcome: usize,
}

impl PipelineCase {
    fn new(provider: &SdkMeterProvider) -> Self {
        let backend = OtelBackend::from_provider(provider)
            .namespace("observer")
            .expect("namespace");
        let actions = ActionRecorder::builder().build(&backend).expect("actions");
        let queues = QueueRecorder::builder().build(&backend).expect("queues");
        let caches = CacheRecorder::builder().build(&backend).expect("caches");
        let names: Vec<String> = (0..SCOPES).map(|s| format!("name-{s}")).collect();
        let executors = names.iter().map(|n| actions.executor(n)).collect();
        let calls = (0..SERIES)
            .map(|i| {
                let (o, d, s) = coords(i);
                PipelineCall {
                    name: s,
                    action: actions.action(&names[s]),
                    queue: queues.queue(&names[s]),
                    cache: caches.cache(&names[s]),
                    duration: Duration::from_millis(3 << d),
                    outcome: o * AGES.len() + d,
                }
            })
            .collect();
        PipelineCase {
            events: EventProcessingRecorder::builder()
                .build(&backend)
                .expect("events"),
            dedup: DedupRecorder::builder().build(&backend).expect("dedup"),
            checkpoints: CheckpointRecorder::builder()
                .build(&backend)
                .expect("checkpoints"),
            actions,
            queues,
            caches,
            executors,
            calls,
        }
    }
}

fn pick<T: Copy>(all: &[T], i: usize) -> T {
    all[i % all.len()]
}

/// A waker that does nothing, for polling a future by hand (`Waker::noop` needs Rust 1.85).
struct NoopWake;

impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// Times `op` over the pipeline calls; generic, so `op` is inlined into the loop
/// like every other benchmark's.
fn bench_calls(group: &mut Group<'_>, id: &str, calls: &[PipelineCall], op: impl Fn(PipelineCall)) {
    group.bench_function(id, |b| {
        b.iter_custom(|iters| one_thread(iters, |i| op(calls[black_box(i)])))
    });
}

fn pipeline(group: &mut Group<'_>, provider: &SdkMeterProvider) {
    let p = PipelineCase::new(provider);
    let calls = &p.calls;
    bench_calls(group, "outcometer_events", calls, |c| {
        p.events.record(pick(EventOutcome::ALL, c.outcome), c.duration)
    });
    // The owned guard (it clones the counter handle, so it is `'static`), and the
    // port's bare increment and decrement.
    bench_calls(group, "outcometer_events_in_flight", calls, |_| {
        drop(p.events.track_in_flight())
    });
    bench_calls(group, "outcometer_events_in_flight_port", calls, |_| {
        p.events.increment_in_flight();
        p.events.decrement_in_flight();
    });
    bench_calls(group, "outcometer_actions", calls, |c| {
        p.actions
            .record_at(c.action, pick(ActionOutcome::ALL, c.outcome), c.duration)
    });
    // The decorator around a future that is ready at once: what it adds to an
    // action (two clock reads, a reference count, the record) over the bare poll.
    let waker = Waker::from(Arc::new(NoopWake));
    bench_calls(group, "outcometer_action_decorator", calls, |c| {
        let run = std::pin::pin!(p.executors[c.name].run(std::future::ready(Ok::<usize, ()>(c.outcome))));
        let _ = black_box(run.poll(&mut Context::from_waker(&waker)));
    });
    bench_calls(group, "future_bare", calls, |c| {
        let run = std::pin::pin!(std::future::ready(Ok::<usize, ()>(c.outcome)));
        let _ = black_box(run.poll(&mut Context::from_waker(&waker)));
    });
    bench_calls(group, "outcometer_queue_enqueued", calls, |c| {
        p.queues.record_enqueued_at(c.queue)
    });
    bench_calls(group, "outcometer_queue_processed", calls, |c| {
        p.queues
            .record_processed_at(c.queue, pick(QueueOutcome::ALL, c.outcome))
    });
    bench_calls(group, "outcometer_queue_depth", calls, |c| {
        p.queues.record_depth_at(c.queue, c.outcome as u64)
    });
    bench_calls(group, "outcometer_queue_wait", calls, |c| {
        p.queues.record_wait_at(c.queue, c.duration)
    });
    // From an age: reads the clock to turn it into an instant.
    bench_calls(group, "outcometer_queue_oldest_age", calls, |c| {
        p.queues.record_oldest_age_at(c.queue, Some(c.duration))
    });
    // From the oldest job's enqueue instant, which a queue keeps: no clock read.
    let enqueued: Vec<Instant> = calls.iter().map(|c| Instant::now() - c.duration).collect();
    bench_calls(group, "outcometer_queue_oldest_enqueued", calls, |c| {
        p.queues
            .record_oldest_enqueued_at(c.queue, Some(enqueued[c.outcome % enqueued.len()]))
    });
    bench_calls(group, "outcometer_cache_get", calls, |c| {
        p.caches.record_get_at(c.cache, pick(CacheResult::ALL, c.outcome))
    });
    bench_calls(group, "outcometer_cache_size", calls, |c| {
        p.caches.record_size_at(c.cache, c.outcome as u64)
    });
    bench_calls(group, "outcometer_dedup_check", calls, |c| {
        p.dedup.record(pick(DedupResult::ALL, c.outcome))
    });
    bench_calls(group, "outcometer_checkpoint_save", calls, |c| {
        p.checkpoints
            .record_save(pick(CheckpointOutcome::ALL, c.outcome), c.duration)
    });
}

fn metrics_recorder() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).expect("the only global metrics recorder");
        handle
    })
}

fn record(c: &mut Criterion) {
    let mut group = c.benchmark_group("record");

    let cells: Vec<AtomicU64> = (0..SERIES).map(|_| AtomicU64::new(0)).collect();
    group.bench_function("atomic_floor", |b| {
        b.iter_custom(|iters| {
            one_thread(iters, |i| {
                cells[black_box(i)].fetch_add(1, Ordering::Relaxed);
            })
        })
    });

    let provider = provider();
    for (id, key_age_histogram) in IDEMPOTENCY_VARIANTS {
        let idempotency = IdempotencyCase::new(&provider, key_age_histogram);
        group.bench_function(id, |b| {
            b.iter_custom(|iters| one_thread(iters, |i| idempotency.record(black_box(i))))
        });
    }

    let delivery = DeliveryCase::new(&provider, false);
    group.bench_function("outcometer_delivery", |b| {
        b.iter_custom(|iters| {
            one_thread(iters, |i| {
                let (endpoint, result, duration) = delivery.calls[black_box(i)];
                delivery.recorder.record_result(endpoint, result, duration);
            })
        })
    });
    histograms(&mut group, &provider);

    pipeline(&mut group, &provider);

    let hasher = ScopeHasher::sha256();
    let user_ids: Vec<String> = (0..SERIES).map(|i| format!("user-{i:06}")).collect();
    group.bench_function("user_scope_sha256", |b| {
        b.iter_custom(|iters| {
            one_thread(iters, |i| {
                black_box(hasher.scope(&user_ids[black_box(i)]));
            })
        })
    });

    let meter = provider.meter("peers");
    let attributes: Vec<[KeyValue; 3]> = (0..SERIES).map(key_values).collect();
    let ages: Vec<f64> = (0..SERIES).map(age_seconds).collect();

    let counter = meter.u64_counter("otel.counter").build();
    group.bench_function("otel_counter_add", |b| {
        b.iter_custom(|iters| one_thread(iters, |i| counter.add(1, &attributes[black_box(i)])))
    });

    let bound_counters: Vec<_> = attributes.iter().map(|kv| counter.bind(kv)).collect();
    group.bench_function("otel_counter_bound", |b| {
        b.iter_custom(|iters| one_thread(iters, |i| bound_counters[black_box(i)].add(1)))
    });

    let histogram = meter.f64_histogram("otel.histogram").build();
    group.bench_function("otel_histogram_record", |b| {
        b.iter_custom(|iters| one_thread(iters, |i| histogram.record(ages[i], &attributes[black_box(i)])))
    });

    let bound_histograms: Vec<_> = attributes.iter().map(|kv| histogram.bind(kv)).collect();
    group.bench_function("otel_histogram_bound", |b| {
        b.iter_custom(|iters| one_thread(iters, |i| bound_histograms[black_box(i)].record(ages[i])))
    });

    // What `outcometer_delivery` does, done by hand with OTel bound instruments:
    // the cheapest a user could record a counter and a histogram through the SDK.
    group.bench_function("otel_bound_counter_and_histogram", |b| {
        b.iter_custom(|iters| {
            one_thread(iters, |i| {
                let i = black_box(i);
                bound_counters[i].add(1);
                bound_histograms[i].record(ages[i]);
            })
        })
    });

    let registry = prometheus::Registry::new();
    let vec = prometheus::IntCounterVec::new(
        prometheus::Opts::new("prometheus_counter", "peer"),
        &["outcome", "user_scope", "age_bucket"],
    )
    .expect("valid prometheus counter");
    registry.register(Box::new(vec.clone())).expect("registered once");
    let label_values: Vec<[&str; 3]> = (0..SERIES).map(labels).collect();
    group.bench_function("prometheus_vec_inc", |b| {
        b.iter_custom(|iters| {
            one_thread(iters, |i| {
                vec.with_label_values(&label_values[black_box(i)]).inc()
            })
        })
    });

    let prebound: Vec<_> = label_values.iter().map(|l| vec.with_label_values(l)).collect();
    group.bench_function("prometheus_prebound_inc", |b| {
        b.iter_custom(|iters| one_thread(iters, |i| prebound[black_box(i)].inc()))
    });

    metrics_recorder();
    group.bench_function("metrics_macro", |b| {
        b.iter_custom(|iters| {
            one_thread(iters, |i| {
                let [o, s, a] = label_values[black_box(i)];
                metrics::counter!("metrics_counter", "outcome" => o, "user_scope" => s, "age_bucket" => a)
                    .increment(1);
            })
        })
    });

    let handles: Vec<metrics::Counter> = label_values
        .iter()
        .map(|&[o, s, a]| {
            metrics::counter!("metrics_counter", "outcome" => o, "user_scope" => s, "age_bucket" => a)
        })
        .collect();
    group.bench_function("metrics_handle", |b| {
        b.iter_custom(|iters| one_thread(iters, |i| handles[black_box(i)].increment(1)))
    });

    group.finish();
    assert_eq!(
        AgeBucket::ALL.len(),
        AGES.len(),
        "the shape covers every age bucket"
    );
}

/// Histograms: the SDK's bound histogram against outcometer's cells (what the
/// exporter's pipeline uses), outside any span and inside a sampled span (an
/// exemplar written per record), and the `prometheus` crate's prebound histogram.
fn histograms(group: &mut Group<'_>, provider: &SdkMeterProvider) {
    use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
    let cells = DeliveryCase::new(provider, true);
    let record = |case: &DeliveryCase, i: usize| {
        let (endpoint, result, duration) = case.calls[black_box(i)];
        case.recorder.record_result(endpoint, result, duration);
    };
    group.bench_function("outcometer_delivery_cells", |b| {
        b.iter_custom(|iters| one_thread(iters, |i| record(&cells, i)))
    });
    let sampled = SpanContext::new(
        TraceId::from(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c_u128),
        SpanId::from(0xb7ad_6b71_6920_3331_u64),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    );
    group.bench_function("outcometer_delivery_cells_sampled_span", |b| {
        let _span = opentelemetry::Context::new()
            .with_remote_span_context(sampled.clone())
            .attach();
        b.iter_custom(|iters| one_thread(iters, |i| record(&cells, i)))
    });

    let registry = prometheus::Registry::new();
    let opts = prometheus::HistogramOpts::new("prometheus_histogram", "peer")
        .buckets(outcometer::toolkit::DELIVERY_DURATION_BOUNDARIES_SECONDS.to_vec());
    let vec = prometheus::HistogramVec::new(opts, &["outcome", "user_scope", "age_bucket"])
        .expect("valid prometheus histogram");
    registry.register(Box::new(vec.clone())).expect("registered once");
    let prebound: Vec<_> = (0..SERIES).map(|i| vec.with_label_values(&labels(i))).collect();
    let values: Vec<f64> = (0..SERIES).map(|i| cells.calls[i].2.as_secs_f64()).collect();
    group.bench_function("prometheus_histogram_prebound", |b| {
        b.iter_custom(|iters| one_thread(iters, |i| prebound[black_box(i)].observe(values[i])))
    });
}

/// Time per op per thread with two threads on the same instrument, each
/// recording its own half of the series: thread `k` cycles over series
/// `k * SERIES / 2 .. (k + 1) * SERIES / 2`. The halves are disjoint, so any cost
/// beyond the one-thread figure is what two cores pay for writing distinct
/// series of one instrument (cache lines the layout makes them share, shared
/// locks), not two threads incrementing the same cells. (Until this change both
/// threads walked all 384 series, half a cycle apart: every cell was written by
/// both, so `atomic_floor`'s 3× was that sharing, not the machine.)
fn two_threads(iters: u64, op: &(impl Fn(usize) + Sync)) -> Duration {
    const HALF: usize = SERIES / 2;
    let barrier = Barrier::new(2);
    let elapsed: Vec<Duration> = std::thread::scope(|s| {
        let workers: Vec<_> = [0, 1]
            .into_iter()
            .map(|k| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    cycle_in(iters, k * HALF, (k + 1) * HALF, |i| op(black_box(i)));
                    start.elapsed()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).collect()
    });
    elapsed.into_iter().max().unwrap_or_default()
}

/// A cell alone on its 64-byte cache line, for `contended2/atomic_floor`: with
/// the threads on disjoint series *and* distinct lines, the floor is what two
/// cores cost each other through the machine alone (a flat `AtomicU64` array
/// would let the line where the halves meet be written by both).
#[repr(align(64))]
struct LineCell(AtomicU64);

fn contended(c: &mut Criterion) {
    let mut group = c.benchmark_group("contended2");
    let cells: Vec<LineCell> = (0..SERIES).map(|_| LineCell(AtomicU64::new(0))).collect();
    group.bench_function("atomic_floor", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, &|i| {
                cells[i].0.fetch_add(1, Ordering::Relaxed);
            })
        })
    });

    let provider = provider();
    for (id, key_age_histogram) in IDEMPOTENCY_VARIANTS {
        let idempotency = IdempotencyCase::new(&provider, key_age_histogram);
        group.bench_function(id, |b| {
            b.iter_custom(|iters| two_threads(iters, &|i| idempotency.record(i)))
        });
    }

    let counter = provider.meter("peers").u64_counter("otel.counter").build();
    let attributes: Vec<[KeyValue; 3]> = (0..SERIES).map(key_values).collect();
    group.bench_function("otel_counter_add", |b| {
        b.iter_custom(|iters| two_threads(iters, &|i| counter.add(1, &attributes[i])))
    });
    group.finish();
}

/// Where `outcometer_idempotency_key_age`'s time goes: a miss only counts; a hit
/// also records the key age into the SDK's bound histogram.
fn by_outcome(c: &mut Criterion) {
    let mut group = c.benchmark_group("record_detail");
    let provider = provider();
    let idempotency = IdempotencyCase::new(&provider, true);
    for (name, outcome) in [
        ("miss", IdempotencyOutcome::Miss),
        ("hit", IdempotencyOutcome::Hit),
    ] {
        group.bench_with_input(
            BenchmarkId::new("outcometer_idempotency", name),
            &outcome,
            |b, &outcome| {
                b.iter_custom(|iters| {
                    one_thread(iters, |i| {
                        let (_, scope, age) = idempotency.calls[black_box(i)];
                        idempotency.recorder.record_outcome(outcome, scope, age);
                    })
                })
            },
        );
    }
    group.finish();
}

/// The delivery and idempotency records the `tracing` feature adds events to:
/// the pre-resolved delivery fast path (`record_result`, admitted host only), the
/// by-URL detail path (`record_attempt`: host, path, attempt, status), and an
/// idempotency outcome (8-hex scope formatted only if enabled).
struct TracedCase {
    idempotency: IdempotencyCase,
    delivery: DeliveryCase,
    urls: Vec<String>,
}

impl TracedCase {
    fn new(provider: &SdkMeterProvider) -> Self {
        let urls = (0..SERIES)
            .map(|i| {
                let (_, _, s) = coords(i);
                format!("https://user:pw@hook-{s}.example.com/events/{i}?token=secret")
            })
            .collect();
        TracedCase {
            idempotency: IdempotencyCase::new(provider, false),
            delivery: DeliveryCase::new(provider, false),
            urls,
        }
    }

    fn bench(&self, group: &mut Group<'_>, case: &str) {
        use outcometer::DeliveryMetrics;
        let delivery = &self.delivery;
        group.bench_function(BenchmarkId::new("delivery_result", case), |b| {
            b.iter_custom(|iters| {
                one_thread(iters, |i| {
                    let (endpoint, result, duration) = delivery.calls[black_box(i)];
                    delivery.recorder.record_result(endpoint, result, duration);
                })
            })
        });
        group.bench_function(BenchmarkId::new("delivery_attempt_by_url", case), |b| {
            b.iter_custom(|iters| {
                one_thread(iters, |i| {
                    let (_, result, duration) = delivery.calls[black_box(i)];
                    let status = matches!(result, DeliveryResult::Success).then_some(200);
                    delivery
                        .recorder
                        .record_attempt(&self.urls[i], 2, status, result, duration);
                })
            })
        });
        group.bench_function(BenchmarkId::new("idempotency", case), |b| {
            b.iter_custom(|iters| one_thread(iters, |i| self.idempotency.record(black_box(i))))
        });
    }
}

/// What the `tracing` feature's outcome events cost (docs/tracing.md). Without
/// the feature: `feature_off`, the baseline. With it, each case runs with
/// - `no_subscriber`: nothing installed (a library's default);
/// - `info_filter`: a subscriber at `INFO`; the level check alone rejects DEBUG;
/// - `filtered_out`: a subscriber that enables every other target at TRACE and
///   turns `outcometer` off, so only the call site's cached interest rejects it;
/// - `enabled`: the events delivered into a layer that reads every field and
///   keeps nothing: the cost of computing the detail and dispatching.
///
/// Subscribers are set as the thread's scoped default (`with_default`), a
/// thread-local lookup dearer than a global default: an upper bound.
fn tracing_events(c: &mut Criterion) {
    let traced = TracedCase::new(&provider());
    let mut group = c.benchmark_group("tracing");
    #[cfg(not(feature = "tracing"))]
    traced.bench(&mut group, "feature_off");
    #[cfg(feature = "tracing")]
    for (case, make) in subscribers::ALL {
        // Built just before its case and dropped after: a live dispatcher, even
        // one never made the default, raises tracing's global max level and
        // call-site interest for every other case.
        let dispatch = make();
        match &dispatch {
            Some(dispatch) => tracing::dispatcher::with_default(dispatch, || traced.bench(&mut group, case)),
            None => traced.bench(&mut group, case),
        }
        drop(dispatch);
    }
    group.finish();
}

#[cfg(feature = "tracing")]
mod subscribers {
    use std::hint::black_box;

    use tracing::level_filters::LevelFilter;
    use tracing::Dispatch;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

    pub type MakeDispatch = fn() -> Option<Dispatch>;

    pub const ALL: [(&str, MakeDispatch); 4] = [
        ("no_subscriber", || None),
        ("info_filter", || {
            let filter = Targets::new().with_default(LevelFilter::INFO);
            Some(Dispatch::new(tracing_subscriber::registry().with(filter)))
        }),
        ("filtered_out", || {
            let filter = Targets::new()
                .with_default(LevelFilter::TRACE)
                .with_target("outcometer", LevelFilter::OFF);
            Some(Dispatch::new(tracing_subscriber::registry().with(filter)))
        }),
        ("enabled", || {
            let layer = ReadsFields.with_filter(Targets::new().with_default(LevelFilter::TRACE));
            Some(Dispatch::new(tracing_subscriber::registry().with(layer)))
        }),
    ];

    /// Visits every field of an event, keeps nothing.
    struct ReadsFields;

    struct Discard;

    impl tracing::field::Visit for Discard {
        fn record_debug(&mut self, _: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            black_box(value);
        }
        fn record_str(&mut self, _: &tracing::field::Field, value: &str) {
            black_box(value);
        }
    }

    impl<S: tracing::Subscriber> Layer<S> for ReadsFields {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            event.record(&mut Discard);
        }
    }
}

criterion_group!(benches, record, contended, by_outcome, tracing_events);
criterion_main!(benches);
