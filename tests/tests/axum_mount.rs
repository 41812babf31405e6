//! `MetricsService` mounted in an axum `Router`, as most services serve `/metrics`.

use std::time::Duration;

use axum::Router;
use outcometer::{DeliveryMetrics, DeliveryRecorder};
use outcometer_exporter::{ExporterKind, Telemetry};
use outcometer_tests::{exposition_value, http_request};

#[test]
fn the_metrics_service_answers_inside_an_axum_router() {
    let telemetry = Telemetry::builder()
        .namespace("mounted")
        .exporters([ExporterKind::Prometheus])
        .build_without_pull_server()
        .expect("pipeline");
    assert_eq!(telemetry.prometheus_address(), None, "no server of our own");
    let delivery = DeliveryRecorder::builder().build(&telemetry.backend()).unwrap();
    delivery.record_delivery_success("https://a.example/hook", Duration::from_millis(30));
    let app = Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .route_service("/metrics", telemetry.metrics_service());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move { axum::serve(listener, app).await });

    let response = http_request(addr, "GET", "/metrics", &[]);
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(
        exposition_value(
            &response.body,
            "mounted_delivery_attempts_total",
            &["outcome=\"success\"", "server_address=\"a.example\""]
        ),
        Some(1.0),
        "{}",
        response.body
    );
    let om = http_request(addr, "GET", "/metrics", &["Accept: application/openmetrics-text"]);
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);
    let post = http_request(addr, "POST", "/metrics", &[]);
    assert_eq!(post.status, 405);
    assert_eq!(http_request(addr, "GET", "/health", &[]).body, "ok");
    runtime.shutdown_background();
}
