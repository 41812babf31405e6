//! The collector path: demo → rotel (OTLP/gRPC in) → OTLP/HTTP out → a receiver
//! decoding with `opentelemetry-proto`. The totals that arrive equal what a real
//! Prometheus scraped from the same process. Skips loudly without rotel or
//! Prometheus unless `CI=true`.

use std::time::Duration;

use outcometer::IdempotencyOutcome;
use outcometer_examples::demo::{Args, Demo};
use outcometer_tests::e2e::{tool, wait_until, Prometheus, Rotel};
use outcometer_tests::{sum_where, Receiver};

#[test]
fn totals_through_rotel_equal_what_prometheus_scraped() {
    let (Some(prometheus), Some(rotel)) = (
        tool("OUTCOMETER_PROMETHEUS", "prometheus"),
        tool("OUTCOMETER_ROTEL", "rotel-agent"),
    ) else {
        return;
    };
    let backend = Receiver::http("127.0.0.1:0");
    let collector = Rotel::start(&rotel, &format!("http://{}", backend.addr));
    let settings: Vec<(&str, String)> = vec![
        ("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1".into()),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "0".into()),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{}", collector.grpc),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1000".into()),
    ];
    let args = Args {
        duration: Duration::from_secs(5),
        rate: 200,
        users: 50,
        endpoints: 4,
        namespace: "wildside".into(),
        seed: 11,
        ..Args::default()
    };
    let demo = Demo::start(args, move |name| {
        settings.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
    })
    .expect("demo starts");
    let instance = demo.telemetry().config().resource["service.instance.id"].clone();
    let server = Prometheus::start(&prometheus, demo.metrics_address().expect("pull endpoint"));
    assert!(wait_until(Duration::from_secs(30), || server
        .scalar("up{job=\"demo\"}")
        == Some(1.0)));

    let seen = demo.run(std::future::pending(), |_| {});
    assert!(seen.requests() > 0 && seen.attempts() > 0, "{seen}");
    assert!(
        wait_until(Duration::from_secs(20), || {
            server.scalar("sum(wildside_idempotency_requests_total)") == Some(seen.requests() as f64)
                && server.scalar("sum(wildside_delivery_attempts_total)") == Some(seen.attempts() as f64)
        }),
        "Prometheus never scraped the final values"
    );
    let scraped = |q: &str| server.scalar(q).unwrap_or(0.0);
    demo.shutdown()
        .expect("shutdown flushes the last interval to rotel");

    let requests = "wildside.idempotency.requests";
    let attempts = "wildside.delivery.attempts";
    let arrived = backend.received.wait_for(Duration::from_secs(20), |_| {
        let total = |name: &str| backend.received.latest(name).map(|m| sum_where(&m, &[]));
        total(requests) == Some(seen.requests() as f64) && total(attempts) == Some(seen.attempts() as f64)
    });
    assert!(
        arrived,
        "rotel forwarded {:?} requests and {:?} attempts; Prometheus scraped {} and {}\nrotel said:\n{}",
        backend.received.latest(requests).map(|m| sum_where(&m, &[])),
        backend.received.latest(attempts).map(|m| sum_where(&m, &[])),
        scraped("sum(wildside_idempotency_requests_total)"),
        scraped("sum(wildside_delivery_attempts_total)"),
        collector.output()
    );
    let latest = |name: &str| {
        backend
            .received
            .latest(name)
            .unwrap_or_else(|| panic!("{name} arrived"))
    };
    for &outcome in IdempotencyOutcome::ALL {
        let label = format!("outcome={}", outcome.as_str());
        let promql = format!(
            "sum(wildside_idempotency_requests_total{{outcome=\"{}\"}})",
            outcome.as_str()
        );
        assert_eq!(
            sum_where(&latest(requests), &[&label]),
            scraped(&promql),
            "{outcome:?}"
        );
    }
    let pairs = [
        (
            attempts,
            "outcome=success",
            "sum(wildside_delivery_attempts_total{outcome=\"success\"})",
        ),
        (
            attempts,
            "outcome=failure",
            "sum(wildside_delivery_attempts_total{outcome=\"failure\"})",
        ),
        (
            attempts,
            "outcome=error",
            "sum(wildside_delivery_attempts_total{outcome=\"error\"})",
        ),
        (
            "wildside.delivery.duration",
            "",
            "sum(wildside_delivery_duration_seconds_count)",
        ),
        (
            "wildside.delivery.retries",
            "",
            "sum(wildside_delivery_retries_total)",
        ),
        (
            "wildside.delivery.dead_letters",
            "",
            "sum(wildside_delivery_dead_letters_total)",
        ),
        (
            "wildside.idempotency.key.age",
            "",
            "sum(wildside_idempotency_key_age_seconds_count)",
        ),
        (
            "wildside.idempotency.request.duration",
            "",
            "sum(wildside_idempotency_request_duration_seconds_count)",
        ),
        (
            "wildside.idempotency.store.fallbacks",
            "",
            "sum(wildside_idempotency_store_fallbacks_total)",
        ),
        (
            "wildside.idempotency.store.errors",
            "",
            "sum(wildside_idempotency_store_errors_total)",
        ),
    ];
    for (name, label, promql) in pairs {
        let filter: Vec<&str> = Some(label).filter(|l| !l.is_empty()).into_iter().collect();
        assert_eq!(
            sum_where(&latest(name), &filter),
            scraped(promql),
            "{name} {label}"
        );
    }
    assert!(
        backend
            .received
            .resource()
            .contains(&format!("service.instance.id={instance}")),
        "rotel kept the instance id: {:?}",
        backend.received.resource()
    );
}
