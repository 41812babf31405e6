//! Cost of one `/v1/stats` body (docs/stats.md, docs/performance.md).
//!
//! `typical`: a gateway with 8 models and 4 backends, every pair answered with a
//! few statuses, health checks on every backend and a fleet callback. `worst_case`:
//! every series the gateway family declares populated (17 models × 9 backends ×
//! 62 statuses on `requests`, every histogram series bound). Both render the JSON
//! string (`StatsService::render`): a pass over the request cells, one SDK
//! collection for the duration histograms, one run of the fleet callback.
//! `metrics_worst_case` is the `/metrics` body of the worst-case pipeline, for
//! scale (the text is far larger than the summary, and it walks every cell).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use outcometer::toolkit::Backend as _;
use outcometer::{GatewayError, GatewayMetrics, GatewayRecorder, Usage};
use outcometer_exporter::{ExporterKind, Telemetry};

fn pipeline(namespace: &str) -> Telemetry {
    Telemetry::builder()
        .namespace(namespace)
        .exporters([ExporterKind::Prometheus])
        .build_without_pull_server()
        .expect("a Prometheus-only pipeline")
}

fn typical() -> (Telemetry, GatewayRecorder) {
    let telemetry = pipeline("nexus");
    let models: Vec<String> = (0..8).map(|m| format!("model-{m}")).collect();
    let backends: Vec<String> = (0..4).map(|b| format!("gpu-{b}")).collect();
    let gateway = GatewayRecorder::builder()
        .models(models.clone())
        .backends(backends.clone())
        .build(&telemetry.backend())
        .expect("the gateway family");
    for (i, model) in models.iter().enumerate() {
        for (j, backend) in backends.iter().enumerate() {
            for (k, status) in [200, 200, 429, 500, 503].into_iter().enumerate() {
                gateway.record_request(
                    model,
                    backend,
                    status,
                    Duration::from_millis((100 * (i + j + k + 1)) as u64),
                    Some(Usage::new(100, 400)),
                    Some(Duration::from_millis(30)),
                );
            }
        }
        gateway.record_error(model, GatewayError::Timeout);
    }
    for backend in &backends {
        gateway.record_health_check(backend, Duration::from_millis(2));
    }
    let names = backends.clone();
    gateway.set_fleet_callback(move |fleet| {
        for (i, backend) in names.iter().enumerate() {
            fleet.backend(backend, i != 3);
        }
        fleet.models_available(8);
    });
    (telemetry, gateway)
}

fn worst_case() -> (Telemetry, GatewayRecorder) {
    let telemetry = pipeline("worst");
    let gateway = GatewayRecorder::builder()
        .build(&telemetry.backend())
        .expect("the gateway family");
    for i in 0..32 {
        gateway.model(&format!("model-{i}"));
        gateway.backend(&format!("gpu-{i}"));
    }
    let registry = telemetry.backend().registry().expect("a registry").instruments();
    for instrument in registry.iter().filter(|i| i.def().name().starts_with("worst.")) {
        for series in 0..instrument.def().series_bound() {
            instrument.record_raw(series, 1.0 + 0.001 * series as f64);
        }
    }
    gateway.set_fleet_callback(|fleet| {
        for i in 0..8 {
            fleet.backend(&format!("gpu-{i}"), i % 2 == 0);
        }
        fleet.models_available(16);
    });
    (telemetry, gateway)
}

fn stats(c: &mut Criterion) {
    let mut group = c.benchmark_group("stats");
    let (typical, _gateway) = typical();
    let service = typical.stats_service();
    assert!(service.snapshot().is_ok());
    group.bench_function("typical", |b| b.iter(|| black_box(service.render())));

    let (worst, _gateway) = worst_case();
    let service = worst.stats_service();
    let body = service.render();
    assert!(body.contains("\"model-15\""), "{body}");
    group.bench_function("worst_case", |b| b.iter(|| black_box(service.render())));

    let metrics = worst.metrics_service();
    let mut buffer = Vec::new();
    group.bench_function("metrics_worst_case", |b| {
        b.iter(|| {
            metrics.render_into(outcometer_exporter::exposition::Format::Text, &mut buffer);
            black_box(buffer.len())
        })
    });
    group.finish();
}

criterion_group!(benches, stats);
criterion_main!(benches);
