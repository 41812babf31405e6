//! The demo, scraped by a real Prometheus (Debian's 2.42): every documented query
//! answers what the demo observed from the outside (and what its fault injector
//! did to the idempotency store), exact sums match exactly, and `promtool check
//! metrics` accepts the endpoint. Skips loudly without Prometheus unless `CI=true`.

use std::time::Duration;

use outcometer::{ErrorKind, IdempotencyOutcome, StoreOperation};
use outcometer_examples::demo::{Args, Demo};
use outcometer_tests::e2e::{promtool_check_metrics, tool, wait_until, Prometheus};
use outcometer_tests::http_request;

/// `(heading, query)` for every ```promql block of docs/queries.md.
fn env(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
    let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

#[test]
fn prometheus_scrapes_the_demo_and_the_documented_queries_agree() {
    let (Some(prometheus), Some(promtool)) = (
        tool("OUTCOMETER_PROMETHEUS", "prometheus"),
        tool("OUTCOMETER_PROMTOOL", "promtool"),
    ) else {
        return;
    };
    let args = Args {
        duration: Duration::from_secs(6),
        rate: 250,
        users: 200,
        endpoints: 6,
        namespace: "wildside".into(),
        seed: 7,
        ..Args::default()
    };
    let demo = Demo::start(
        args,
        env(&[
            ("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1".into()),
            ("OTEL_EXPORTER_PROMETHEUS_PORT", "0".into()),
        ]),
    )
    .expect("demo starts");
    let target = demo.metrics_address().expect("pull endpoint");
    let server = Prometheus::start(&prometheus, target);
    assert!(
        wait_until(Duration::from_secs(30), || server.scalar("up{job=\"demo\"}")
            == Some(1.0)),
        "Prometheus never scraped the demo:\n{}",
        server.output()
    );

    let seen = demo.run(std::future::pending(), |_| {});
    assert_eq!(seen.unexpected, 0, "{seen}");
    assert_eq!(seen.active_tasks, 0, "deliveries drained: {seen}");
    for &outcome in IdempotencyOutcome::ALL {
        assert!(
            seen.outcome(outcome) > 0,
            "the scenario produces {outcome:?}: {seen}"
        );
    }
    assert!(
        seen.successes > 0 && seen.failures > 0 && seen.errors > 0 && seen.timeouts > 0,
        "{seen}"
    );
    assert!(
        seen.store_fallbacks() > 0 && seen.store_errors() > 0,
        "the injector fails ~2% of store operations: {seen}"
    );

    // Wait for the scrape that holds the final values.
    let final_scraped = wait_until(Duration::from_secs(20), || {
        server.scalar("sum(wildside_idempotency_requests_total)") == Some(seen.requests() as f64)
            && server.scalar("sum(wildside_delivery_attempts_total)") == Some(seen.attempts() as f64)
            && server.scalar("sum(wildside_delivery_dead_letters_total)") == Some(seen.dead_letters as f64)
            && server.scalar("sum(wildside_idempotency_request_duration_seconds_count)")
                == Some(seen.requests() as f64)
            && server.scalar("sum(wildside_idempotency_store_fallbacks_total)")
                == Some(seen.store_fallbacks() as f64)
            && server.scalar("sum(wildside_idempotency_store_errors_total)")
                == Some(seen.store_errors() as f64)
    });
    assert!(
        final_scraped,
        "Prometheus has {:?} requests, {:?} timed requests, {:?} attempts, {:?} store fallbacks and {:?} store errors; the demo saw {seen}",
        server.scalar("sum(wildside_idempotency_requests_total)"),
        server.scalar("sum(wildside_idempotency_request_duration_seconds_count)"),
        server.scalar("sum(wildside_delivery_attempts_total)"),
        server.scalar("sum(wildside_idempotency_store_fallbacks_total)"),
        server.scalar("sum(wildside_idempotency_store_errors_total)"),
    );

    // Exact: the counters Prometheus holds are what the clients and the sink saw.
    for &outcome in IdempotencyOutcome::ALL {
        let q = format!(
            "sum(wildside_idempotency_requests_total{{outcome=\"{}\"}})",
            outcome.as_str()
        );
        assert_eq!(server.scalar(&q), Some(seen.outcome(outcome) as f64), "{q}");
        // Every answered request was timed under the outcome it was answered with.
        let q = format!(
            "sum(wildside_idempotency_request_duration_seconds_count{{outcome=\"{}\"}})",
            outcome.as_str()
        );
        assert_eq!(server.scalar(&q), Some(seen.outcome(outcome) as f64), "{q}");
    }
    // Store health is what the fault injector did: fallbacks by operation, errors
    // by operation and kind (`or vector(0)`: a pair never injected may have no series).
    let mut store_exact = vec![
        (
            "sum(wildside_idempotency_store_fallbacks_total)".to_owned(),
            seen.store_fallbacks(),
        ),
        (
            "sum(wildside_idempotency_store_errors_total)".to_owned(),
            seen.store_errors(),
        ),
    ];
    for &operation in StoreOperation::ALL {
        let op = operation.as_str();
        store_exact.push((
            format!("sum(wildside_idempotency_store_fallbacks_total{{operation=\"{op}\"}}) or vector(0)"),
            seen.store_fallbacks_of(operation),
        ));
        for &kind in ErrorKind::ALL {
            store_exact.push((
                format!(
                    "sum(wildside_idempotency_store_errors_total{{operation=\"{op}\",error_type=\"{}\"}}) or vector(0)",
                    kind.as_str()
                ),
                seen.store_errors_of(operation, kind),
            ));
        }
    }
    for (q, want) in store_exact {
        assert_eq!(server.scalar(&q), Some(want as f64), "{q}");
    }
    let exact = [
        ("sum(wildside_delivery_attempts_total{outcome=\"success\"})", seen.successes),
        ("sum(wildside_delivery_attempts_total{outcome=\"failure\"})", seen.failures),
        ("sum(wildside_delivery_attempts_total{outcome=\"error\"})", seen.errors),
        ("sum(wildside_delivery_attempts_total{error_type=\"timeout\"})", seen.timeouts),
        ("sum(wildside_delivery_retries_total)", seen.retries),
        ("sum(wildside_delivery_dead_letters_total)", seen.dead_letters),
        ("sum(wildside_delivery_duration_seconds_count)", seen.attempts()),
        // Everything that reached the sink: answered attempts plus the ones it stalled.
        (
            "sum(wildside_delivery_attempts_total{outcome!=\"error\"}) + sum(wildside_delivery_attempts_total{error_type=\"timeout\"})",
            seen.sink_received,
        ),
        ("sum(wildside_delivery_active_tasks)", 0),
    ];
    for (q, want) in exact {
        assert_eq!(server.scalar(q), Some(want as f64), "{q}");
    }
    // Same buckets, same interpolation: the all-time p95 equals the demo's to rounding.
    let p95_all_time = server
        .scalar("histogram_quantile(0.95, sum by (le) (wildside_delivery_duration_seconds_bucket))")
        .expect("p95");
    let seen_p95 = seen.p95_seconds().expect("attempts happened");
    assert!(
        (p95_all_time - seen_p95).abs() < 1e-9,
        "{p95_all_time} vs {seen_p95}"
    );

    // The documented queries: rate() windows extrapolate from the first scrape of
    // each series, so ratios agree to within a few points, not exactly.
    let queries = outcometer_tests::e2e::documented_queries(&["Idempotency", "Delivery"]);
    assert!(queries.len() >= 9, "docs/queries.md has its queries: {queries:?}");
    for (title, q) in &queries {
        let result = server.query(q);
        assert!(!result.is_empty(), "{title}: {q} returned nothing");
        assert!(result.iter().all(|s| s.value.is_finite()), "{title}: {result:?}");
    }
    let value = |title: &str| {
        let (_, q) = queries.iter().find(|(t, _)| t == title).expect(title);
        server.scalar(q).expect(title)
    };
    for (title, want) in [
        ("Hit ratio", seen.hit_ratio()),
        ("Conflict rate", seen.conflict_ratio()),
        ("Delivery success rate", seen.success_ratio()),
    ] {
        let (got, want) = (value(title), want.expect("non-empty"));
        assert!(
            (got - want).abs() < 0.03,
            "{title}: Prometheus {got}, demo {want}"
        );
    }
    // The demo's keys live seconds, so every replay is under a minute old.
    assert!((value("Replays within a minute") - 1.0).abs() < 1e-9);
    let p95 = value("p95 delivery latency");
    assert!(
        (p95 - seen_p95).abs() <= 0.25 * seen_p95,
        "p95: Prometheus {p95}, demo {seen_p95}"
    );

    let scrape = http_request(target, "GET", "/metrics", &[]);
    assert_eq!(scrape.status, 200);
    let (ok, verdict) = promtool_check_metrics(&promtool, &scrape.body);
    assert!(ok, "promtool check metrics rejected the endpoint:\n{verdict}");

    demo.shutdown().expect("clean shutdown");
}
