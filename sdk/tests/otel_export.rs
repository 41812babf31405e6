//! The OpenTelemetry adapter against the OTel SDK's in-memory exporter, on a
//! provider the user builds themself: exact names, units, attributes and values.

mod common;

use std::time::Duration;

use common::{collect, find, sum, user_provider, Value};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use outcometer::otel::OtelBackend;
use outcometer::toolkit::Backend;
use outcometer::{
    AdmissionPolicy, DeliveryMetrics, DeliveryRecorder, ErrorKind, IdempotencyMetrics, IdempotencyRecorder,
    StoreOperation, UserScope,
};

#[test]
fn idempotency_instruments_have_exact_names_units_attributes_and_values() {
    let (provider, exporter) = user_provider();
    let backend = OtelBackend::from_provider(&provider)
        .namespace("wildside")
        .unwrap();
    let m = IdempotencyRecorder::builder()
        .key_age_histogram(true)
        .build(&backend)
        .unwrap();
    let scope = UserScope::from_digest(0xa1b2_c3d4);
    m.record_miss(scope);
    m.record_miss(scope);
    m.record_hit(scope, Duration::from_secs(30));
    m.record_conflict(scope, Duration::from_secs(600));
    m.record_in_flight(UserScope::ANONYMOUS, Duration::from_millis(200));
    m.record_stale_lock_recovered(scope, Duration::from_secs(45));
    m.record_fingerprint_duplicate(scope);
    m.record_store_fallback(StoreOperation::Read);
    m.record_store_error(StoreOperation::Write, ErrorKind::Timeout);

    let rows = collect(&provider, &exporter);
    let requests = "wildside.idempotency.requests";
    let r = |o: &str, s: &str, a: &str| {
        sum(
            &rows,
            requests,
            &[
                &format!("outcome={o}"),
                &format!("user_scope={s}"),
                &format!("age_bucket={a}"),
            ],
        )
    };
    assert_eq!(r("miss", "a", "n/a"), Some(2.0));
    assert_eq!(r("hit", "a", "0-1m"), Some(1.0));
    assert_eq!(r("conflict", "a", "5-30m"), Some(1.0));
    assert_eq!(r("in_flight", "anonymous", "0-1m"), Some(1.0));
    assert_eq!(r("stale_lock_recovered", "a", "0-1m"), Some(1.0));
    assert_eq!(r("fingerprint_duplicate", "a", "n/a"), Some(1.0));
    let request_rows: Vec<_> = rows.iter().filter(|r| r.name == requests).collect();
    assert_eq!(
        request_rows.len(),
        6,
        "only recorded series are exported: {request_rows:#?}"
    );
    assert!(request_rows
        .iter()
        .all(|r| r.unit == "{request}" && matches!(r.value, Value::Sum { monotonic: true, .. })));

    let age = find(&rows, "wildside.idempotency.key.age", &["outcome=conflict"]).unwrap();
    assert_eq!(age.unit, "s");
    assert_eq!(
        age.value,
        Value::Histogram {
            count: 1,
            sum: 600.0,
            bounds: vec![60.0, 300.0, 1800.0, 7200.0, 21600.0, 86400.0],
            buckets: vec![0, 0, 1, 0, 0, 0, 0],
        }
    );
    assert!(find(&rows, "wildside.idempotency.key.age", &["outcome=miss"]).is_none());
    assert_eq!(
        sum(&rows, "wildside.idempotency.store.fallbacks", &["operation=read"]),
        Some(1.0)
    );
    assert_eq!(
        sum(
            &rows,
            "wildside.idempotency.store.errors",
            &["operation=write", "error.type=timeout"]
        ),
        Some(1.0)
    );
}

#[test]
fn the_key_age_histogram_is_exported_only_when_asked_for() {
    let (provider, exporter) = user_provider();
    let m = IdempotencyRecorder::builder()
        .build(&OtelBackend::from_provider(&provider))
        .unwrap();
    m.record_hit(UserScope::ANONYMOUS, Duration::from_secs(90));
    let rows = collect(&provider, &exporter);
    assert_eq!(
        sum(
            &rows,
            "idempotency.requests",
            &["outcome=hit", "user_scope=anonymous", "age_bucket=1-5m"]
        ),
        Some(1.0),
        "the counter still carries the age bucket"
    );
    assert!(rows.iter().all(|r| r.name != "idempotency.key.age"), "{rows:#?}");
    let _ = m;
}

#[test]
fn delivery_instruments_have_exact_names_units_attributes_and_values() {
    let (provider, exporter) = user_provider();
    let backend = OtelBackend::from_provider(&provider)
        .namespace("repo_roller")
        .unwrap();
    let m = DeliveryRecorder::builder()
        .endpoints(AdmissionPolicy::first_k(2))
        .build(&backend)
        .unwrap();
    let hook = "https://user:pw@Hooks.Example.com:8443/notify?token=s3cret#x";
    m.record_delivery_success(hook, Duration::from_millis(250));
    m.record_delivery_failure(hook, 503, Duration::from_millis(40));
    m.record_delivery_failure("https://b.example/", 9999, Duration::from_millis(1));
    m.record_delivery_error("https://c.example/", ErrorKind::Timeout, Duration::from_secs(10));
    m.record_delivery_error("::not a url::", ErrorKind::Connect, Duration::ZERO);
    m.record_retry(hook);
    m.record_dead_letter("https://c.example/");
    let guard = m.track_active_task();
    m.increment_active_tasks();

    let rows = collect(&provider, &exporter);
    let attempts = "repo_roller.delivery.attempts";
    assert_eq!(
        sum(
            &rows,
            attempts,
            &["outcome=success", "server.address=hooks.example.com"]
        ),
        Some(1.0)
    );
    assert_eq!(
        sum(
            &rows,
            attempts,
            &[
                "outcome=failure",
                "http.response.status_code=503",
                "error.type=503",
                "server.address=hooks.example.com"
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        sum(
            &rows,
            attempts,
            &["outcome=failure", "error.type=_OTHER", "server.address=b.example"]
        ),
        Some(1.0)
    );
    assert_eq!(
        sum(
            &rows,
            attempts,
            &["outcome=error", "error.type=timeout", "server.address=_OTHER"]
        ),
        Some(1.0)
    );
    assert_eq!(
        sum(
            &rows,
            attempts,
            &["outcome=error", "error.type=connect", "server.address=_OTHER"]
        ),
        Some(1.0)
    );
    assert_eq!(rows.iter().filter(|r| r.name == attempts).count(), 5);
    assert!(rows.iter().all(|r| r
        .attributes
        .iter()
        .all(|a| !a.contains("s3cret") && !a.contains("notify"))));

    let duration = find(
        &rows,
        "repo_roller.delivery.duration",
        &["outcome=error", "server.address=_OTHER"],
    )
    .unwrap();
    match &duration.value {
        Value::Histogram {
            count,
            sum,
            bounds,
            buckets,
        } => {
            assert_eq!(*count, 2);
            assert_eq!(*sum, 10.0);
            assert_eq!(
                bounds,
                &[0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0].to_vec()
            );
            assert_eq!(buckets[0], 1, "zero lands in the first bucket");
            assert_eq!(buckets[13], 1, "10 s lands in (7.5, 10]");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(duration.unit, "s");
    assert_eq!(
        sum(
            &rows,
            "repo_roller.delivery.retries",
            &["server.address=hooks.example.com"]
        ),
        Some(1.0)
    );
    assert_eq!(
        sum(
            &rows,
            "repo_roller.delivery.dead_letters",
            &["server.address=_OTHER"]
        ),
        Some(1.0)
    );
    let active = find(&rows, "repo_roller.delivery.active_tasks", &[]).unwrap();
    assert_eq!(
        active.value,
        Value::Sum {
            value: 2.0,
            monotonic: false
        }
    );

    drop(guard);
    m.decrement_active_tasks();
    let rows = collect(&provider, &exporter);
    assert_eq!(
        find(&rows, "repo_roller.delivery.active_tasks", &[])
            .unwrap()
            .value,
        Value::Sum {
            value: 0.0,
            monotonic: false
        },
        "zero active tasks is still reported"
    );
}

#[test]
fn bound_histograms_are_not_dropped_on_a_provider_built_outside_our_exporter() {
    // The provider comes from the user's own `opentelemetry_sdk`; if bound
    // instruments were not enabled in it, every one of these would vanish.
    let (provider, exporter) = user_provider();
    let m = DeliveryRecorder::builder()
        .build(&OtelBackend::from_provider(&provider))
        .unwrap();
    for _ in 0..1000 {
        m.record_delivery_success("https://a.example", Duration::from_millis(3));
    }
    let rows = collect(&provider, &exporter);
    match &find(
        &rows,
        "delivery.duration",
        &["outcome=success", "server.address=a.example"],
    )
    .unwrap()
    .value
    {
        Value::Histogram { count, .. } => assert_eq!(*count, 1000),
        other => panic!("{other:?}"),
    }
}

#[test]
fn global_provider_works_too() {
    let (provider, exporter) = user_provider();
    opentelemetry::global::set_meter_provider(provider.clone());
    let m = IdempotencyRecorder::builder()
        .build(&OtelBackend::global().namespace("g").unwrap())
        .unwrap();
    m.record_miss(UserScope::ANONYMOUS);
    let rows = collect(&provider, &exporter);
    assert_eq!(
        sum(
            &rows,
            "g.idempotency.requests",
            &["outcome=miss", "user_scope=anonymous", "age_bucket=n/a"]
        ),
        Some(1.0)
    );
    assert_eq!(outcometer::IdempotencyOutcome::ALL.len(), 6);
}

#[test]
fn two_recorders_of_one_family_on_one_backend_share_cells() {
    // Two components each building a recorder with the defaults: before the
    // registry, the second overwrote the first (5 misses exported as 3).
    let (provider, exporter) = user_provider();
    let backend = OtelBackend::from_provider(&provider);
    let a = IdempotencyRecorder::builder().build(&backend).unwrap();
    let b = IdempotencyRecorder::builder().build(&backend.clone()).unwrap();
    for _ in 0..5 {
        a.record_miss(UserScope::ANONYMOUS);
    }
    for _ in 0..3 {
        b.record_miss(UserScope::ANONYMOUS);
    }
    let d1 = DeliveryRecorder::builder().build(&backend).unwrap();
    let d2 = DeliveryRecorder::builder().build(&backend).unwrap();
    d1.record_delivery_success("https://a.example/x", Duration::from_millis(5));
    d2.record_delivery_success("https://a.example/y", Duration::from_millis(5));
    d2.record_delivery_success("https://b.example/y", Duration::from_millis(5));
    let rows = collect(&provider, &exporter);
    let miss = ["outcome=miss", "user_scope=anonymous", "age_bucket=n/a"];
    assert_eq!(sum(&rows, "idempotency.requests", &miss), Some(8.0));
    let attempts: f64 = rows
        .iter()
        .filter(|r| r.name == "delivery.attempts")
        .filter_map(|r| match r.value {
            Value::Sum { value, .. } => Some(value),
            _ => None,
        })
        .sum();
    let durations: u64 = rows
        .iter()
        .filter(|r| r.name == "delivery.duration")
        .map(|r| match r.value {
            Value::Histogram { count, .. } => count,
            _ => 0,
        })
        .sum();
    assert_eq!((attempts, durations), (3.0, 3));
    // A different configuration of the same family is a clear setup error.
    let err = IdempotencyRecorder::builder()
        .scope_prefix_len(2)
        .build(&backend)
        .unwrap_err();
    assert!(
        err.to_string().contains("family `idempotency` is already built"),
        "{err}"
    );
}

#[test]
fn build_and_drop_cycles_register_nothing_new() {
    let (provider, exporter) = user_provider();
    let backend = OtelBackend::from_provider(&provider);
    let registry = backend.registry().unwrap();
    let keep = DeliveryRecorder::builder().build(&backend).unwrap();
    let instruments = registry.instruments().len();
    for _ in 0..2_000 {
        let m = DeliveryRecorder::builder().build(&backend).unwrap();
        let _guard = m.track_active_task();
        m.record_retry("https://a.example");
    }
    assert_eq!(registry.instruments().len(), instruments);
    let _live = keep.track_active_task();
    let rows = collect(&provider, &exporter);
    assert_eq!(
        sum(&rows, "delivery.retries", &["server.address=a.example"]),
        Some(2000.0)
    );
    // The live task is not hidden by a dropped recorder's zero.
    assert_eq!(sum(&rows, "delivery.active_tasks", &[]), Some(1.0));
    assert_eq!(
        rows.iter().filter(|r| r.name == "delivery.active_tasks").count(),
        1
    );
}

#[test]
fn with_views_sets_each_instruments_limit_to_its_bound() {
    // 151 hosts × 70 results = 10,570 declared series; 2,850 of them populated,
    // more than the SDK's default limit of 2,000.
    let exporter = InMemoryMetricExporter::default();
    let (provider, backend) = OtelBackend::with_views(
        SdkMeterProvider::builder().with_reader(PeriodicReader::builder(exporter.clone()).build()),
    );
    let m = DeliveryRecorder::builder()
        .endpoints(AdmissionPolicy::first_k(150))
        .build(&backend)
        .unwrap();
    for host in 0..150 {
        for code in [400, 401, 403, 404, 409, 410, 422, 429, 500, 502, 503, 504] {
            m.record_delivery_failure(&format!("https://h{host}.example"), code, Duration::ZERO);
        }
        for kind in ErrorKind::ALL {
            m.record_delivery_error(&format!("https://h{host}.example"), *kind, Duration::ZERO);
        }
    }
    let rows = collect(&provider, &exporter);
    let attempts = rows.iter().filter(|r| r.name == "delivery.attempts").count();
    assert_eq!(
        attempts,
        150 * (12 + 7),
        "more than the SDK's default limit of 2,000, none merged"
    );
    assert!(rows
        .iter()
        .all(|r| !r.attributes.iter().any(|a| a.contains("otel.metric.overflow"))));
}

#[test]
fn gauges_and_callback_gauges_are_exported() {
    use outcometer::toolkit::{closed, Family, FamilyBuilder, FloatGauge, Gauge, InstrumentSpec};
    static DEPTH: InstrumentSpec = InstrumentSpec::gauge("test.depth", "{job}", "Jobs waiting.");
    static BYTES: InstrumentSpec = InstrumentSpec::gauge("test.bytes", "By", "Bytes held.");
    static UP: InstrumentSpec = InstrumentSpec::gauge("test.up", "{backend}", "Healthy backends.");
    #[derive(Clone)]
    struct Fleet {
        depth: Gauge<ErrorKind>,
        bytes: FloatGauge<()>,
        _up: FloatGauge<()>,
    }
    impl Family for Fleet {
        const NAME: &'static str = "fleet";
        type Config = ();
        fn build(_: &(), family: &mut FamilyBuilder<'_>) -> Result<Self, outcometer::ConfigError> {
            let healthy = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(3));
            Ok(Fleet {
                depth: family.gauge(&DEPTH, vec![closed::<ErrorKind>()])?,
                bytes: family.float_gauge(&BYTES, vec![])?,
                _up: family.callback_gauge(&UP, vec![], move |g| {
                    g.set(
                        (),
                        f64::from(healthy.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
                    )
                })?,
            })
        }
    }
    let (provider, exporter) = user_provider();
    let backend = OtelBackend::from_provider(&provider);
    let fleet = outcometer::toolkit::build::<Fleet>(&backend, ()).unwrap();
    fleet.depth.set(ErrorKind::Io, 0);
    fleet.depth.set(ErrorKind::Dns, 1_001);
    fleet.bytes.set((), 1.5e6);
    let rows = collect(&provider, &exporter);
    assert_eq!(sum(&rows, "test.depth", &["error.type=io"]), Some(0.0));
    assert_eq!(sum(&rows, "test.depth", &["error.type=dns"]), Some(1001.0));
    assert_eq!(
        rows.iter().filter(|r| r.name == "test.depth").count(),
        2,
        "unset series stay out"
    );
    assert_eq!(sum(&rows, "test.bytes", &[]), Some(1.5e6));
    assert_eq!(sum(&rows, "test.up", &[]), Some(3.0));
    let rows = collect(&provider, &exporter);
    assert_eq!(
        sum(&rows, "test.up", &[]),
        Some(4.0),
        "the callback runs at each collection"
    );
}
