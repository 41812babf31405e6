//! The gateway demo, scraped by a real Prometheus (Debian's 2.42): every gateway
//! instrument with its exact name and label keys, exact sums equal to what the
//! demo's load generator saw, the "Gateway" queries of docs/queries.md answering
//! sanely, and `/v1/stats` equal to the PromQL sums at the same instant. Skips
//! loudly without Prometheus unless `CI=true`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use outcometer_examples::gateway::{Args, GatewayDemo};
use outcometer_tests::e2e::{
    documented_queries, promtool_check_metrics, tool, wait_until, Prometheus, Sample,
};
use outcometer_tests::http_request;
use serde_json::Value;

fn env(name: &str) -> Option<String> {
    match name {
        "OTEL_EXPORTER_PROMETHEUS_HOST" => Some("127.0.0.1".into()),
        "OTEL_EXPORTER_PROMETHEUS_PORT" => Some("0".into()),
        _ => None,
    }
}

/// The value of label `key` in `sample`.
fn label<'a>(sample: &'a Sample, key: &str) -> &'a str {
    sample
        .labels
        .iter()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_default()
}

/// `sum by (key) (metric)` as a map.
fn sum_by(server: &Prometheus, key: &str, metric: &str) -> BTreeMap<String, f64> {
    server
        .query(&format!("sum by ({key}) ({metric})"))
        .iter()
        .map(|s| (label(s, key).to_owned(), s.value))
        .collect()
}

#[test]
fn prometheus_scrapes_the_gateway_and_the_documented_queries_agree() {
    let (Some(prometheus), Some(promtool)) = (
        tool("OUTCOMETER_PROMETHEUS", "prometheus"),
        tool("OUTCOMETER_PROMTOOL", "promtool"),
    ) else {
        return;
    };
    // Past the first double outage (backends 0 and 1, from 2 + 10/3 s), so
    // fallbacks and no_healthy_backend both happen.
    let args = Args {
        duration: Duration::from_secs(8),
        rate: 200,
        seed: 11,
        ..Args::default()
    };
    let demo = GatewayDemo::start(args, env).expect("gateway starts");
    let target = demo.metrics_address().expect("pull endpoint");
    let server = Prometheus::start(&prometheus, target);
    assert!(
        wait_until(Duration::from_secs(30), || server.scalar("up{job=\"demo\"}")
            == Some(1.0)),
        "Prometheus never scraped the gateway:\n{}",
        server.output()
    );

    let seen = demo.run(std::future::pending(), |_| {});
    assert_eq!(seen.unexpected, 0, "{seen}");
    for error_type in [
        "timeout",
        "backend_error",
        "rate_limited",
        "model_not_found",
        "invalid_request",
        "no_healthy_backend",
    ] {
        assert!(seen.errors_of(error_type) > 0, "no {error_type}: {seen}");
    }
    assert!(seen.fallbacks_total() > 0 && seen.streamed > 0, "{seen}");

    // The load has stopped: /v1/stats now, then the scrape that holds the same values.
    let stats = http_request(target, "GET", "/v1/stats", &[]);
    assert_eq!(stats.status, 200, "{}", stats.body);
    let stats: Value = serde_json::from_str(&stats.body).expect("stats JSON");
    let final_scraped = wait_until(Duration::from_secs(20), || {
        server.scalar("sum(nexus_requests_total)") == Some(seen.answered_total() as f64)
            && server.scalar("sum(nexus_errors_total)") == Some(seen.errors_total() as f64)
            && server.scalar("sum(nexus_fallbacks_total)") == Some(seen.fallbacks_total() as f64)
            && server.scalar("sum(nexus_time_to_first_token_seconds_count)") == Some(seen.streamed as f64)
    });
    assert!(
        final_scraped,
        "Prometheus has {:?} requests, {:?} errors, {:?} fallbacks; the demo saw {seen}",
        server.scalar("sum(nexus_requests_total)"),
        server.scalar("sum(nexus_errors_total)"),
        server.scalar("sum(nexus_fallbacks_total)"),
    );

    // Every instrument with its exact name and label keys.
    let keys: [(&str, &[&str]); 12] = [
        ("nexus_requests_total", &["backend", "model", "status"]),
        ("nexus_request_duration_seconds_count", &["backend", "model"]),
        ("nexus_errors_total", &["error_type", "model"]),
        ("nexus_fallbacks_total", &["from_model", "to_model"]),
        ("nexus_tokens_total", &["backend", "model", "type"]),
        ("nexus_tokens_per_request_count", &["model", "type"]),
        ("nexus_time_to_first_token_seconds_count", &["backend", "model"]),
        ("nexus_pending_requests", &["backend"]),
        ("nexus_backend_latency_seconds_count", &["backend"]),
        ("nexus_backends", &[]),
        ("nexus_backends_healthy", &[]),
        ("nexus_models_available", &[]),
    ];
    for (metric, want) in keys {
        let samples = server.query(metric);
        assert!(!samples.is_empty(), "{metric} has no series");
        for sample in &samples {
            let got: Vec<&str> = sample
                .labels
                .iter()
                .filter_map(|l| l.split_once('=').map(|(k, _)| k))
                .filter(|k| !["__name__", "job", "instance"].contains(k))
                .collect();
            assert_eq!(got, want, "{metric}: {sample:?}");
        }
    }

    // Exact: what Prometheus holds is what the load generator saw.
    let mut exact: Vec<(String, f64)> = vec![
        ("sum(nexus_requests_total)".into(), seen.answered_total() as f64),
        (
            "sum(nexus_request_duration_seconds_count)".into(),
            seen.answered_total() as f64,
        ),
        ("sum(nexus_errors_total)".into(), seen.errors_total() as f64),
        ("sum(nexus_fallbacks_total)".into(), seen.fallbacks_total() as f64),
        (
            "sum(nexus_tokens_total{type=\"prompt\"})".into(),
            seen.prompt_tokens as f64,
        ),
        (
            "sum(nexus_tokens_total{type=\"completion\"})".into(),
            seen.completion_tokens as f64,
        ),
        (
            "sum(nexus_tokens_per_request_count{type=\"prompt\"})".into(),
            seen.successful() as f64,
        ),
        (
            "sum(nexus_tokens_per_request_sum{type=\"completion\"})".into(),
            seen.completion_tokens as f64,
        ),
        (
            "sum(nexus_time_to_first_token_seconds_count)".into(),
            seen.streamed as f64,
        ),
        ("sum(nexus_pending_requests)".into(), 0.0),
        ("max(nexus_backends)".into(), 3.0),
    ];
    for (status, count) in &seen.answered {
        exact.push((
            format!("sum(nexus_requests_total{{status=\"{status}\"}})"),
            *count as f64,
        ));
    }
    for (error_type, count) in &seen.errors {
        exact.push((
            format!("sum(nexus_errors_total{{error_type=\"{error_type}\"}})"),
            *count as f64,
        ));
    }
    for ((from, to), count) in &seen.fallbacks {
        exact.push((
            format!("sum(nexus_fallbacks_total{{from_model=\"{from}\",to_model=\"{to}\"}})"),
            *count as f64,
        ));
    }
    for (q, want) in &exact {
        assert_eq!(server.scalar(q), Some(*want), "{q}");
    }
    let by_model = sum_by(&server, "model", "nexus_requests_total");
    let want: BTreeMap<String, f64> = seen
        .by_model
        .iter()
        .map(|(k, v)| (k.clone(), *v as f64))
        .collect();
    assert_eq!(by_model, want);
    let by_backend = sum_by(&server, "backend", "nexus_requests_total");
    let want: BTreeMap<String, f64> = seen
        .by_backend
        .iter()
        .map(|(k, v)| (k.clone(), *v as f64))
        .collect();
    assert_eq!(by_backend, want);
    let health_checks = sum_by(&server, "backend", "nexus_backend_latency_seconds_count");
    assert_eq!(health_checks.len(), 3, "{health_checks:?}");
    assert!(health_checks.values().all(|&n| n > 0.0), "{health_checks:?}");

    // /v1/stats taken after the load stopped equals the PromQL sums of the final scrape.
    assert_eq!(
        stats["requests"]["total"].as_f64(),
        server.scalar("sum(nexus_requests_total)")
    );
    assert_eq!(
        stats["requests"]["success"].as_f64(),
        server.scalar("sum(nexus_requests_total{status=~\"2..\"})")
    );
    assert_eq!(
        stats["requests"]["errors"].as_f64(),
        server.scalar("sum(nexus_errors_total)")
    );
    let durations = sum_by(&server, "model", "nexus_request_duration_seconds_sum");
    let counts = sum_by(&server, "model", "nexus_request_duration_seconds_count");
    for model in stats["models"].as_array().expect("models") {
        let name = model["name"].as_str().expect("name");
        let requests = model["requests"].as_f64().expect("requests");
        assert_eq!(requests, by_model.get(name).copied().unwrap_or(0.0), "{model}");
        if requests > 0.0 {
            let promql = 1000.0 * durations[name] / counts[name];
            let json = model["average_duration_ms"].as_f64().expect("average");
            assert!(
                (promql - json).abs() <= 1e-6 * promql,
                "{name}: {promql} vs {json}"
            );
        }
    }
    let stats_backends: BTreeSet<&str> = stats["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .map(|backend| {
            let name = backend["name"].as_str().expect("name");
            assert_eq!(
                backend["requests"].as_f64(),
                by_backend.get(name).copied(),
                "{backend}"
            );
            assert_eq!(backend["pending"].as_i64(), Some(0), "{backend}");
            assert!(backend["healthy"].is_boolean(), "{backend}");
            name
        })
        .collect();
    assert_eq!(stats_backends, ["gpu-0", "gpu-1", "gpu-2"].into());

    // The documented queries: rate() windows extrapolate from the first scrape of
    // each series, so ratios agree to within a few points, not exactly.
    let queries = documented_queries(&["Gateway"]);
    assert_eq!(
        queries.len(),
        7,
        "docs/queries.md has its Gateway queries: {queries:?}"
    );
    let result = |title: &str| {
        let (_, q) = queries.iter().find(|(t, _)| t == title).expect(title);
        let samples = server.query(q);
        assert!(!samples.is_empty(), "{title}: {q} returned nothing");
        assert!(
            samples.iter().all(|s| s.value.is_finite() && s.value >= 0.0),
            "{title}: {samples:?}"
        );
        samples
    };
    let rates = result("Request rate by model");
    let served: BTreeSet<&str> = rates.iter().map(|s| label(s, "model")).collect();
    assert_eq!(
        served,
        seen.by_model.keys().map(String::as_str).collect(),
        "{rates:?}"
    );
    let handled = (seen.successful() + seen.errors_total()) as f64;
    let ratios = result("Error ratio by error type");
    for sample in &ratios {
        let want = seen.errors_of(label(sample, "error_type")) as f64 / handled;
        assert!((sample.value - want).abs() < 0.03, "{sample:?}: demo {want}");
    }
    let total: f64 = ratios.iter().map(|s| s.value).sum();
    let want = seen.errors_total() as f64 / handled;
    assert!(
        (total - want).abs() < 0.03,
        "error ratio: Prometheus {total}, demo {want}"
    );
    for sample in result("p95 request duration by backend") {
        // Backends answer in 10–30 ms; 429s at once; none waits past the 250 ms timeout.
        assert!(sample.value > 0.0 && sample.value <= 0.25, "{sample:?}");
    }
    for sample in result("p95 time to first token by model") {
        assert!(sample.value > 0.0 && sample.value <= 0.25, "{sample:?}");
    }
    let pairs: BTreeSet<(String, String)> = result("Fallbacks per second by pair")
        .iter()
        .map(|s| (label(s, "from_model").to_owned(), label(s, "to_model").to_owned()))
        .collect();
    assert_eq!(pairs, seen.fallbacks.keys().cloned().collect());
    let tokens = result("Tokens per second by type");
    let rate_of = |t: &str| {
        tokens
            .iter()
            .find(|s| label(s, "type") == t)
            .map(|s| s.value)
            .expect(t)
    };
    let (got, want) = (
        rate_of("completion") / rate_of("prompt"),
        seen.completion_tokens as f64 / seen.prompt_tokens as f64,
    );
    assert!(
        (got - want).abs() <= 0.05 * want,
        "completion/prompt: Prometheus {got}, demo {want}"
    );
    let healthy = result("Healthy backends");
    assert!(healthy.len() == 1 && healthy[0].value <= 1.0, "{healthy:?}");

    let scrape = http_request(target, "GET", "/metrics", &[]);
    assert_eq!(scrape.status, 200);
    let (ok, verdict) = promtool_check_metrics(&promtool, &scrape.body);
    assert!(ok, "promtool check metrics rejected the endpoint:\n{verdict}");

    demo.shutdown().expect("clean shutdown");
}
