//! Recording allocates nothing: every record method, through a real OpenTelemetry
//! provider, counted by a global allocator that counts this thread's allocations.
//!
//! Binding a histogram series happens once, on its first measurement (the SDK
//! allocates its aggregator then), so each test records everything once before it
//! counts. After that, no input — new users, new hosts, garbage URLs, any status —
//! allocates: memory per instrument is fixed.

#[allow(dead_code)] // this file needs only the provider
mod common;

use std::sync::Arc;
use std::time::Duration;

use allocation_counter::measure;
use common::user_provider;
use outcometer::otel::OtelBackend;
use outcometer::toolkit::Backend;
use outcometer::{
    ActionMetrics, ActionOutcome, ActionRecorder, AdmissionPolicy, CacheMetrics, CacheRecorder, CacheResult,
    CheckpointMetrics, CheckpointOutcome, CheckpointRecorder, DeadlineExceeded, DedupMetrics, DedupRecorder,
    DedupResult, DeliveryMetrics, DeliveryRecorder, DeliveryResult, ErrorKind, EventOutcome,
    EventProcessingMetrics, EventProcessingRecorder, EvictionCause, IdempotencyMetrics, IdempotencyOutcome,
    IdempotencyRecorder, QueueMetrics, QueueOutcome, QueueRecorder, RecoveryResult, ScopeHasher,
    StoreOperation, UserScope,
};

const AGES: [Duration; 8] = [
    Duration::ZERO,
    Duration::from_secs(59),
    Duration::from_secs(60),
    Duration::from_secs(1_000),
    Duration::from_secs(7_200),
    Duration::from_secs(30_000),
    Duration::from_secs(90_000),
    Duration::MAX,
];

fn every_idempotency_call(m: &impl IdempotencyMetrics, scopes: &[UserScope]) {
    for &scope in scopes {
        for &outcome in IdempotencyOutcome::ALL {
            m.record_outcome(outcome, scope, None);
            for age in AGES {
                m.record_outcome(outcome, scope, Some(age));
            }
        }
        for age in AGES {
            m.record_hit(scope, age);
            m.record_conflict(scope, age);
            m.record_in_flight(scope, age);
            m.record_stale_lock_recovered(scope, age);
        }
        m.record_miss(scope);
        m.record_fingerprint_duplicate(scope);
    }
    for &operation in StoreOperation::ALL {
        m.record_store_fallback(operation);
        for &kind in ErrorKind::ALL {
            m.record_store_error(operation, kind);
        }
    }
}

#[test]
fn idempotency_recording_allocates_nothing() {
    for histograms in [false, true] {
        let (provider, _exporter) = user_provider();
        let backend = OtelBackend::from_provider(&provider);
        let recorder = IdempotencyRecorder::builder()
            .key_age_histogram(histograms)
            .request_duration_histogram(histograms)
            .build(&backend)
            .unwrap();
        // A second configuration needs a backend of its own: one backend holds
        // one idempotency family.
        let other = OtelBackend::from_provider(&provider).namespace("keyed").unwrap();
        let keyed = IdempotencyRecorder::builder()
            .scope_hasher(ScopeHasher::keyed(b"a deployment secret, 32 bytes!!!").unwrap())
            .scope_prefix_len(3)
            .build(&other)
            .unwrap();
        let eight = OtelBackend::from_provider(&provider).namespace("eight").unwrap();
        let full = IdempotencyRecorder::builder()
            .scope_prefix_len(8)
            .admitted_scopes(100)
            .build(&eight)
            .unwrap();
        let user_ids: Vec<String> = (0..256).map(|i| format!("user-{i}")).collect();
        let scopes: Vec<UserScope> = (0..16u32)
            .map(|d| UserScope::from_digest(d << 28 | d))
            .chain([UserScope::ANONYMOUS])
            .collect();
        let shared: Arc<dyn IdempotencyMetrics> = Arc::new(recorder.clone());
        let run = || {
            every_idempotency_call(&recorder, &scopes);
            every_idempotency_call(&shared, &scopes);
            every_idempotency_call(&Some(&keyed), &scopes);
            every_idempotency_call(&full, &scopes);
            for id in &user_ids {
                full.record_miss(full.scope(id));
                let scope = recorder.scope(id);
                recorder.record_miss(scope);
                keyed.record_hit(keyed.scope(id), Duration::from_secs(5));
                std::hint::black_box(scope.hex());
            }
            recorder.record_miss(recorder.scope(""));
        };
        run();
        let counted = measure(run);
        assert_eq!(counted.count_total, 0, "histograms({histograms}): {counted:?}");
    }
}

fn every_delivery_call(m: &DeliveryRecorder, urls: &[String]) {
    for url in urls {
        m.record_delivery_success(url, Duration::from_millis(12));
        for status in [0, 100, 301, 400, 404, 429, 499, 500, 503, 520, 999, u16::MAX] {
            m.record_delivery_failure(url, status, Duration::from_millis(40));
        }
        for &kind in ErrorKind::ALL {
            m.record_delivery_error(url, kind, Duration::from_secs(10));
        }
        m.record_delivery_success(url, Duration::MAX);
        m.record_retry(url);
        m.record_dead_letter(url);
        let endpoint = m.endpoint(url);
        m.record_result(endpoint, DeliveryResult::Failure(418), Duration::ZERO);
        m.record_retry_at(endpoint);
        m.record_dead_letter_at(endpoint);
    }
    m.increment_active_tasks();
    m.decrement_active_tasks();
    let _guard = m.track_active_task();
}

#[test]
fn delivery_recording_allocates_nothing_and_new_hosts_add_no_memory() {
    let (provider, _exporter) = user_provider();
    let recorder = DeliveryRecorder::builder()
        .endpoints(AdmissionPolicy::first_k(20))
        .build(&OtelBackend::from_provider(&provider))
        .unwrap();
    let urls = |prefix: &str| -> Vec<String> {
        (0..500)
            .map(|i| format!("https://user:pw@{prefix}-{i}.Example.com:8443/hook?token={i}#f"))
            .chain(["not a url".to_owned(), String::new(), "https://[::1".to_owned()])
            .collect()
    };
    let first = urls("first");
    every_delivery_call(&recorder, &first);
    // Everything again, and then 500 hosts never seen: all of them fall into
    // `_OTHER`, whose series already exist.
    let again = measure(|| every_delivery_call(&recorder, &first));
    assert_eq!(again.count_total, 0, "{again:?}");
    let fresh = urls("fresh");
    let new_hosts = measure(|| every_delivery_call(&recorder, &fresh));
    assert_eq!(new_hosts.count_total, 0, "{new_hosts:?}");
}

fn every_gateway_call(m: &outcometer::GatewayRecorder, models: &[String], backends: &[String]) {
    use outcometer::{GatewayError, GatewayMetrics as _, Usage};
    let statuses = [0, 100, 200, 201, 400, 418, 429, 500, 502, 503, 599, u16::MAX];
    for (i, name) in models.iter().enumerate() {
        let backend_name = &backends[i % backends.len()];
        // The typed hot path: names resolved once, everything one request records.
        let (model, backend) = (m.model(name), m.backend(backend_name));
        for status in statuses {
            m.record_request_at(
                model,
                backend,
                status,
                Duration::from_millis(900),
                Some(Usage::new(120, 4_000)),
                Some(Duration::from_millis(80)),
            );
        }
        m.record_request_at(model, backend, 200, Duration::MAX, None, None);
        m.record_request_at(
            model,
            backend,
            200,
            Duration::ZERO,
            Some(Usage::new(0, u64::MAX)),
            None,
        );
        for &error in GatewayError::ALL {
            m.record_error_at(model, error);
        }
        m.record_fallback_at(model, m.model(&models[0]));
        m.record_health_check_at(backend, Duration::from_millis(2));
        let guard = m.track_pending(backend);
        drop(guard);
        // The port, by name.
        m.record_request(name, backend_name, 200, Duration::from_millis(5), None, None);
        m.record_error(name, GatewayError::Timeout);
        m.record_fallback(name, backend_name);
        m.record_health_check(backend_name, Duration::from_millis(1));
        m.increment_pending(backend_name);
        m.decrement_pending(backend_name);
    }
}

#[test]
fn gateway_recording_allocates_nothing_and_junk_model_names_add_no_memory() {
    let (provider, _exporter) = user_provider();
    let recorder = outcometer::GatewayRecorder::builder()
        .models(["gpt-4.1", "gpt-4_1"])
        .admitted_models(8)
        .backends(["gpu-1"])
        .admitted_backends(2)
        .build(&OtelBackend::from_provider(&provider).namespace("nexus").unwrap())
        .unwrap();
    let names = |prefix: &str, n: usize| -> Vec<String> {
        (0..n)
            .map(|i| format!("{prefix}-{i}"))
            .chain([
                String::new(),
                "_OTHER".to_owned(),
                "\u{7}bell".to_owned(),
                "x".repeat(300),
            ])
            .collect()
    };
    let (models, backends) = (names("model", 20), names("gpu", 5));
    every_gateway_call(&recorder, &models, &backends);
    let again = measure(|| every_gateway_call(&recorder, &models, &backends));
    assert_eq!(again.count_total, 0, "{again:?}");
    // 500 model names never seen: every one folds into `_OTHER`, whose series exist.
    let junk = names("junk", 500);
    let fresh = measure(|| every_gateway_call(&recorder, &junk, &backends));
    assert_eq!(fresh.count_total, 0, "{fresh:?}");
}

#[test]
fn the_counter_is_real() {
    // The allocator this file installs counts: a test that could not fail is no test.
    let counted = measure(|| {
        std::hint::black_box(vec![1u8; 64]);
    });
    assert_eq!(counted.count_total, 1);
}

#[test]
fn memory_per_instrument_is_fixed_at_build_and_bounded_by_its_series() {
    let (provider, _exporter) = user_provider();
    let backend = OtelBackend::from_provider(&provider);
    let mut recorders = None;
    let built = measure(|| {
        recorders = Some((
            IdempotencyRecorder::builder()
                .key_age_histogram(true)
                .build(&backend)
                .unwrap(),
            DeliveryRecorder::builder().build(&backend).unwrap(),
        ))
    });
    let (idempotency, delivery) = recorders.expect("built");
    let registry = backend.registry().expect("the OTel backend has a registry");
    let instruments = registry.instruments();
    let series = registry.series_budget();
    // Ours: a cell (8 B) and a lazily filled label slot (24 B) per declared
    // series, a bind slot (24 B) more for histograms. The SDK's: each instrument's
    // attribute map, pre-sized for its cardinality limit (2,000 by default).
    eprintln!(
        "build: {} bytes retained for {} instruments, {series} series",
        built.bytes_current,
        instruments.len()
    );
    let bound = 64 * series + 200 * 1024 * instruments.len();
    assert!(
        built.bytes_current > 0 && (built.bytes_current as usize) < bound,
        "{built:?}"
    );

    let scopes: Vec<UserScope> = (0..16u32)
        .map(|d| UserScope::from_digest(d << 28))
        .chain([UserScope::ANONYMOUS])
        .collect();
    let urls: Vec<String> = (0..25).map(|i| format!("https://h{i}.example/x")).collect();
    let populate = || {
        every_idempotency_call(&idempotency, &scopes);
        every_delivery_call(&delivery, &urls);
    };
    let first = measure(populate);
    eprintln!(
        "first use of every series: {} bytes retained (histogram binds)",
        first.bytes_current
    );
    let again = measure(populate);
    assert_eq!((again.count_total, again.bytes_current), (0, 0), "{again:?}");
}

#[test]
fn every_registered_instrument_records_without_allocating() {
    // Iterates whatever families are registered, so a new family is covered
    // without naming it here: every series of every instrument, every kind.
    let (provider, _exporter) = user_provider();
    let backend = OtelBackend::from_provider(&provider);
    outcometer::catalog::register_shipped_families(&backend).unwrap();
    let instruments = backend.registry().unwrap().instruments();
    assert!(instruments.len() >= 10, "{} instruments", instruments.len());
    let values = [0.0, 1.0, 2.5, -3.0, 1e12, f64::NAN, f64::INFINITY];
    let run = || {
        for instrument in &instruments {
            for series in 0..instrument.def().series_bound() + 2 {
                for value in values {
                    instrument.record_raw(series, value);
                }
            }
        }
    };
    run();
    let counted = measure(run);
    assert_eq!(counted.count_total, 0, "{counted:?}");
}

// ---- the pipeline families ----

struct NoopWake;
impl std::task::Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

/// A deadline that passes on its second poll.
struct SecondPoll(bool);
impl std::future::Future for SecondPoll {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if std::mem::replace(&mut self.0, true) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    }
}

const DURATIONS: [Duration; 5] = [
    Duration::ZERO,
    Duration::from_micros(700),
    Duration::from_millis(40),
    Duration::from_secs(90),
    Duration::MAX,
];

fn every_pipeline_call(p: &PipelineRecorders, names: &[String], cx: &mut std::task::Context<'_>) {
    use std::future::Future;
    for &outcome in EventOutcome::ALL {
        for d in DURATIONS {
            p.events.record(outcome, d);
            p.events.record_event(outcome, d);
        }
    }
    p.events.increment_in_flight();
    p.events.decrement_in_flight();
    drop(p.events.track_in_flight());
    for &result in DedupResult::ALL {
        p.dedup.record(result);
        p.dedup.record_check(result);
    }
    for d in DURATIONS {
        for &outcome in CheckpointOutcome::ALL {
            p.checkpoints.record_save(outcome, d);
            p.checkpoints.record_save_at(
                outcome,
                d,
                std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            );
        }
    }
    for &result in RecoveryResult::ALL {
        p.checkpoints.record_recovery(result);
    }
    for name in names {
        let queue = p.queues.queue(name);
        let cache = p.caches.cache(name);
        let action = p.actions.action(name);
        for d in DURATIONS {
            for &outcome in ActionOutcome::ALL {
                p.actions.record_at(action, outcome, d);
                p.actions.record_action(name, outcome, d);
            }
            p.queues.record_wait_at(queue, d);
            p.queues.record_wait(name, d);
            p.queues.record_oldest_age_at(queue, Some(d));
        }
        p.queues.record_enqueued_at(queue);
        p.queues.record_enqueued(name);
        for &outcome in QueueOutcome::ALL {
            p.queues.record_processed_at(queue, outcome);
            p.queues.record_processed(name, outcome);
        }
        p.queues.record_depth_at(queue, 3);
        p.queues.record_depth(name, u64::MAX);
        p.queues.record_oldest_age(name, None);
        p.queues
            .record_oldest_enqueued_at(queue, Some(std::time::Instant::now()));
        p.queues.record_oldest_enqueued_at(queue, None);
        for &result in CacheResult::ALL {
            p.caches.record_get_at(cache, result);
            p.caches.record_get(name, result);
        }
        for &cause in EvictionCause::ALL {
            p.caches.record_eviction_at(cache, cause);
            p.caches.record_eviction(name, cause);
        }
        p.caches.record_size_at(cache, 1 << 20);
        p.caches.record_size(name, 0);
        // The decorator: success, classified failure, error, cancellation, timeout.
        let executor = p.actions.executor(name).classify(|v: &u16| *v >= 500);
        for result in [Ok(200), Ok(503), Err(())] {
            let run = std::pin::pin!(executor.run(std::future::ready(result)));
            assert!(run.poll(cx).is_ready());
        }
        drop(executor.run(std::future::pending::<Result<u16, ()>>()));
        let timed = executor.clone().deadline(|| SecondPoll(false));
        let mut run = std::pin::pin!(timed.run(std::future::pending::<Result<u16, DeadlineExceeded>>()));
        assert!(run.as_mut().poll(cx).is_pending());
        assert_eq!(
            run.as_mut().poll(cx),
            std::task::Poll::Ready(Err(DeadlineExceeded::default()))
        );
    }
}

struct PipelineRecorders {
    events: EventProcessingRecorder,
    actions: ActionRecorder,
    queues: QueueRecorder,
    caches: CacheRecorder,
    dedup: DedupRecorder,
    checkpoints: CheckpointRecorder,
}

#[test]
fn pipeline_recording_allocates_nothing_and_new_names_add_no_memory() {
    let (provider, _exporter) = user_provider();
    let backend = OtelBackend::from_provider(&provider)
        .namespace("observer")
        .unwrap();
    let p = PipelineRecorders {
        events: EventProcessingRecorder::builder().build(&backend).unwrap(),
        actions: ActionRecorder::builder().build(&backend).unwrap(),
        queues: QueueRecorder::builder().build(&backend).unwrap(),
        caches: CacheRecorder::builder().build(&backend).unwrap(),
        dedup: DedupRecorder::builder().build(&backend).unwrap(),
        checkpoints: CheckpointRecorder::builder().build(&backend).unwrap(),
    };
    let waker = std::task::Waker::from(Arc::new(NoopWake));
    let mut cx = std::task::Context::from_waker(&waker);
    let names = |prefix: &str| -> Vec<String> {
        (0..40)
            .map(|i| format!("{prefix}-{i}"))
            .chain([String::new(), "x".repeat(300), "bad\nname".to_owned()])
            .collect()
    };
    let first = names("first");
    every_pipeline_call(&p, &first, &mut cx);
    let again = measure(|| every_pipeline_call(&p, &first, &mut cx));
    assert_eq!(again.count_total, 0, "{again:?}");
    // Forty names never seen: all fold into `_OTHER`, whose series already exist.
    let fresh = names("fresh");
    let new_names = measure(|| every_pipeline_call(&p, &fresh, &mut cx));
    assert_eq!(new_names.count_total, 0, "{new_names:?}");
    // Disabled recorders cost nothing either.
    let off = PipelineRecorders {
        events: EventProcessingRecorder::disabled(),
        actions: ActionRecorder::disabled(),
        queues: QueueRecorder::disabled(),
        caches: CacheRecorder::disabled(),
        dedup: DedupRecorder::disabled(),
        checkpoints: CheckpointRecorder::disabled(),
    };
    let disabled = measure(|| every_pipeline_call(&off, &fresh, &mut cx));
    assert_eq!(disabled.count_total, 0, "{disabled:?}");
}

#[cfg(feature = "tokio")]
#[test]
fn a_tokio_deadline_allocates_nothing_per_run() {
    let (provider, _exporter) = user_provider();
    let actions = ActionRecorder::builder()
        .build(&OtelBackend::from_provider(&provider))
        .unwrap();
    let call = actions.executor("call").deadline(Duration::from_millis(1));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let runs = || {
        runtime.block_on(async {
            for _ in 0..20 {
                // Pending once (the timer starts), then done; then one that times out.
                let mut yielded = false;
                let ok = std::future::poll_fn(|cx| {
                    if std::mem::replace(&mut yielded, true) {
                        std::task::Poll::Ready(Ok::<(), DeadlineExceeded>(()))
                    } else {
                        cx.waker().wake_by_ref();
                        std::task::Poll::Pending
                    }
                });
                assert!(call.run(ok).await.is_ok());
            }
            let slow = call.run(std::future::pending::<Result<(), DeadlineExceeded>>());
            assert!(slow.await.is_err());
        })
    };
    runs();
    let counted = measure(runs);
    assert_eq!(counted.count_total, 0, "{counted:?}");
}

#[test]
fn cells_only_instruments_record_without_allocating_even_writing_exemplars() {
    // As an exporter's pipeline builds them: every instrument a cell, histograms
    // keeping exemplars. Inside a sampled span each histogram record also writes
    // its bucket's exemplar (trace id, span id, value, wall-clock time).
    use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
    let (provider, _exporter) = user_provider();
    let backend = OtelBackend::from_provider(&provider).cells_only();
    outcometer::catalog::register_shipped_families(&backend).unwrap();
    let instruments = backend.registry().unwrap().instruments();
    let span = SpanContext::new(
        TraceId::from(7_u128),
        SpanId::from(9_u64),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    );
    let _active = opentelemetry::Context::new()
        .with_remote_span_context(span)
        .attach();
    let run = || {
        for instrument in &instruments {
            for series in 0..instrument.def().series_bound() + 2 {
                for value in [0.0, 0.3, 2.5, 1e12, f64::NAN] {
                    instrument.record_raw(series, value);
                }
            }
        }
    };
    run();
    let counted = measure(run);
    assert_eq!(counted.count_total, 0, "{counted:?}");
    let exemplars = instruments
        .iter()
        .filter_map(|i| match i {
            outcometer::toolkit::AnyInstrument::Histogram(h) => h.cells(),
            _ => None,
        })
        .filter(|c| (0..=c.bounds().len()).any(|bucket| c.exemplar(0, bucket).is_some()))
        .count();
    assert!(exemplars >= 9, "every histogram kept exemplars: {exemplars}");
}

/// With the `tracing` feature every record also reaches `tracing`'s call-site
/// check: no subscriber (every test above), one whose filter disables
/// `outcometer`, and one that takes the events into a layer that keeps nothing
/// must all record without allocating (the detail is computed on the stack).
#[cfg(feature = "tracing")]
#[test]
fn with_the_tracing_feature_subscribers_cost_no_allocation() {
    use outcometer::{GatewayRecorder, StoreOperation};
    use tracing::level_filters::LevelFilter;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::{Layer, SubscriberExt};

    /// Counts events, so the enabled case is known to have dispatched them.
    struct KeepsNothing(Arc<std::sync::atomic::AtomicUsize>);
    impl<S: tracing::Subscriber> Layer<S> for KeepsNothing {
        fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    let (provider, _exporter) = user_provider();
    let backend = OtelBackend::from_provider(&provider).namespace("traced").unwrap();
    let idempotency = IdempotencyRecorder::builder()
        .key_age_histogram(true)
        .build(&backend)
        .unwrap();
    let delivery = DeliveryRecorder::builder().build(&backend).unwrap();
    let gateway = GatewayRecorder::builder().build(&backend).unwrap();
    let p = PipelineRecorders {
        events: EventProcessingRecorder::builder().build(&backend).unwrap(),
        actions: ActionRecorder::builder().build(&backend).unwrap(),
        queues: QueueRecorder::builder().build(&backend).unwrap(),
        caches: CacheRecorder::builder().build(&backend).unwrap(),
        dedup: DedupRecorder::builder().build(&backend).unwrap(),
        checkpoints: CheckpointRecorder::builder().build(&backend).unwrap(),
    };
    let scopes: Vec<UserScope> = (0..16u32).map(|d| UserScope::from_digest(d << 28 | d)).collect();
    let urls: Vec<String> = (0..30)
        .map(|i| format!("https://user:pw@h{i}.example.com/hooks/{i}?token=t#f"))
        .collect();
    let names: Vec<String> = (0..30)
        .map(|i| format!("name-{i}"))
        .chain(["é".repeat(200)])
        .collect();
    let waker = std::task::Waker::from(Arc::new(NoopWake));
    let everything = |cx: &mut std::task::Context<'_>| {
        every_idempotency_call(&idempotency, &scopes);
        idempotency.record_store_error(StoreOperation::Read, ErrorKind::Timeout);
        every_delivery_call(&delivery, &urls);
        for (attempt, url) in urls.iter().enumerate() {
            delivery.record_attempt(
                url,
                attempt as u32,
                Some(200),
                DeliveryResult::Success,
                Duration::ZERO,
            );
        }
        every_gateway_call(&gateway, &names, &names[..3]);
        every_pipeline_call(&p, &names, cx);
    };
    let filtered_out = tracing_subscriber::registry().with(
        Targets::new()
            .with_default(LevelFilter::TRACE)
            .with_target("outcometer", LevelFilter::OFF),
    );
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let enabled = tracing_subscriber::registry().with(KeepsNothing(seen.clone()));
    for (case, dispatch) in [
        ("outcometer filtered out", tracing::Dispatch::new(filtered_out)),
        (
            "events into a layer that keeps nothing",
            tracing::Dispatch::new(enabled),
        ),
    ] {
        tracing::dispatcher::with_default(&dispatch, || {
            let mut cx = std::task::Context::from_waker(&waker);
            everything(&mut cx);
            let counted = measure(|| everything(&mut cx));
            assert_eq!(counted.count_total, 0, "{case}: {counted:?}");
        });
    }
    // Both runs of the enabled case: one event per outcome recorded.
    assert!(
        seen.load(std::sync::atomic::Ordering::Relaxed) > 2 * 1000,
        "{seen:?}"
    );
}

#[test]
fn a_cells_only_catalog_is_fixed_at_build_and_within_its_declared_size() {
    // Every shipped family on a cells-only backend, as a pipeline builds them:
    // per series an 64-byte padded cell, and per histogram bucket an 8-byte count
    // and a 48-byte exemplar slot. Nothing later adds a byte.
    let (provider, _exporter) = user_provider();
    let backend = OtelBackend::from_provider(&provider).cells_only();
    let built = measure(|| {
        outcometer::catalog::register_shipped_families(&backend).unwrap();
    });
    let instruments = backend.registry().unwrap().instruments();
    let series = backend.registry().unwrap().series_budget();
    let histogram_slots: usize = instruments
        .iter()
        .filter_map(|i| match i {
            outcometer::toolkit::AnyInstrument::Histogram(h) => h.cells(),
            _ => None,
        })
        .map(|c| c.def().series_bound() * (c.bounds().len() + 1))
        .sum();
    eprintln!(
        "cells-only catalog: {} bytes for {} instruments, {series} series, {histogram_slots} histogram buckets",
        built.bytes_current,
        instruments.len()
    );
    let declared = 64 * series + 56 * histogram_slots;
    assert!(
        (built.bytes_current as usize) < declared + 1024 * 1024,
        "{} bytes retained, {declared} declared",
        built.bytes_current
    );
    for instrument in &instruments {
        for series in 0..instrument.def().series_bound() {
            instrument.record_raw(series, 0.5);
        }
    }
    let again = measure(|| {
        for instrument in &instruments {
            for series in 0..instrument.def().series_bound() {
                instrument.record_raw(series, 2.0);
            }
        }
    });
    assert_eq!((again.count_total, again.bytes_current), (0, 0), "{again:?}");
}
