//! The OpenTelemetry adapter against the OTel SDK's in-memory exporter, on a
//! provider the user builds themself: exact names, units, attributes and values.

mod common;

use std::time::Duration;

use common::{collect, find, sum, user_provider, Value};
use outcometer::attr::ClosedSet;
use outcometer::otel::OtelBackend;
use outcometer::{
    DeliveryRecorder, EndpointPolicy, ErrorKind, EventMetrics, IdempotencyMetrics, IdempotencyRecorder,
    StoreOperation, UserScope,
};

#[test]
fn idempotency_instruments_have_exact_names_units_attributes_and_values() {
    let (provider, exporter) = user_provider();
    let backend = OtelBackend::from_provider(&provider);
    let m = IdempotencyRecorder::builder()
        .namespace("wildside")
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
    assert!(m.instruments().iter().all(|d| d.name() != "idempotency.key.age"));
}

#[test]
fn delivery_instruments_have_exact_names_units_attributes_and_values() {
    let (provider, exporter) = user_provider();
    let backend = OtelBackend::from_provider(&provider);
    let m = DeliveryRecorder::builder()
        .namespace("repo_roller")
        .endpoints(EndpointPolicy::FirstK(2))
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
                &outcometer::delivery::DURATION_BOUNDARIES_SECONDS.to_vec()
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
        .namespace("g")
        .build(&OtelBackend::global())
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
