//! Traces over the metrics pipeline, on the wire: `tracing` spans and their
//! events, through the layer `Telemetry::tracing_layer` gives, arrive at real
//! in-process OTLP receivers (gRPC and HTTP, protobuf decoded with
//! `opentelemetry-proto`) with their attributes, events, parent links and the
//! pipeline's resource; shutdown flushes the spans recorded just before it,
//! together with the metrics, within the shutdown deadline even when the
//! collector never answers. Each test installs its subscriber for its own thread
//! only (`with_default`), so they run in parallel.

use std::time::{Duration, Instant};

use opentelemetry::trace::TraceContextExt as _;
use outcometer::{IdempotencyMetrics, IdempotencyRecorder, UserScope};
use outcometer_exporter::{
    ExporterKind, OtlpProtocol, SetupError, Telemetry, TelemetryBuilder, TracesExporter,
};
use outcometer_tests::{HungReceiver, ReceivedSpan, Receiver};
use tracing_subscriber::layer::SubscriberExt as _;

fn pipeline(protocol: OtlpProtocol, endpoint: String) -> TelemetryBuilder {
    Telemetry::builder()
        .service_name("traces-test")
        .service_instance_id("instance-7")
        .exporters([ExporterKind::Otlp])
        .traces_exporter(TracesExporter::Otlp)
        .otlp_protocol(protocol)
        .otlp_endpoint(endpoint)
        // Nothing is sent before shutdown: what arrives was flushed by it.
        .export_interval(Duration::from_secs(3600))
        .span_batch_schedule_delay(Duration::from_secs(3600))
}

/// One unit of work, as the demos record it: a span with bounded fields, a child
/// span, and events inside both.
fn work(telemetry: &Telemetry) {
    let subscriber = tracing_subscriber::registry().with(telemetry.tracing_layer());
    tracing::subscriber::with_default(subscriber, || {
        let attempt = tracing::info_span!("delivery.attempt", host = "hooks.example", attempt = 2_i64);
        attempt.in_scope(|| {
            tracing::info!(status = 503_i64, "webhook answered");
            tracing::info_span!("idempotency.request", outcome = "hit").in_scope(|| {
                tracing::warn!(retry_in_ms = 200_i64, "retrying");
            });
        });
    });
}

fn one(spans: &[ReceivedSpan], name: &str) -> ReceivedSpan {
    let found: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.span.name == name).collect();
    assert_eq!(found.len(), 1, "one {name} span in {spans:#?}");
    found[0].clone()
}

fn spans_arrive_on_shutdown(protocol: OtlpProtocol) {
    let receiver = match protocol {
        OtlpProtocol::Grpc => Receiver::grpc("127.0.0.1:0"),
        OtlpProtocol::HttpProtobuf => Receiver::http("127.0.0.1:0"),
    };
    let telemetry = pipeline(protocol, format!("http://{}", receiver.addr))
        .build_with_env(|_| None)
        .expect("pipeline");
    let idem = IdempotencyRecorder::builder()
        .build(&telemetry.backend())
        .unwrap();
    idem.record_miss(UserScope::ANONYMOUS);
    work(&telemetry);
    assert!(receiver.spans.spans().is_empty(), "nothing before shutdown");
    telemetry.shutdown().expect("shutdown flushes both signals");

    let spans = receiver.spans.spans();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let attempt = one(&spans, "delivery.attempt");
    let request = one(&spans, "idempotency.request");
    assert_eq!(attempt.attribute("host").as_deref(), Some("hooks.example"));
    assert_eq!(attempt.attribute("attempt").as_deref(), Some("2"));
    assert_eq!(request.attribute("outcome").as_deref(), Some("hit"));
    assert_eq!(request.span.trace_id, attempt.span.trace_id, "one trace");
    assert_eq!(
        request.span.parent_span_id, attempt.span.span_id,
        "the child's parent"
    );
    assert!(attempt.span.parent_span_id.is_empty(), "a root span");
    let events = attempt.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "webhook answered");
    assert!(events[0].1.contains(&"status=503".to_owned()), "{events:?}");
    assert!(events[0].1.contains(&"level=INFO".to_owned()), "{events:?}");
    let events = request.events();
    assert_eq!(events[0].0, "retrying");
    assert!(events[0].1.contains(&"retry_in_ms=200".to_owned()), "{events:?}");
    for span in [&attempt, &request] {
        assert!(
            span.resource.contains(&"service.name=traces-test".to_owned()),
            "{span:?}"
        );
        assert!(
            span.resource
                .contains(&"service.instance.id=instance-7".to_owned()),
            "{span:?}"
        );
        assert!(span.span.end_time_unix_nano >= span.span.start_time_unix_nano);
    }
    assert_eq!(
        attempt.resource,
        receiver.received.resource(),
        "spans and metrics carry one resource"
    );
    assert!(
        receiver.received.latest("idempotency.requests").is_some(),
        "metrics flushed by the same shutdown"
    );
    if protocol == OtlpProtocol::HttpProtobuf {
        let paths = receiver.paths.lock().unwrap().clone();
        assert!(paths.contains(&"/v1/traces".to_owned()), "{paths:?}");
        assert!(paths.contains(&"/v1/metrics".to_owned()), "{paths:?}");
    }
}

#[test]
fn spans_events_and_resource_arrive_over_grpc_on_shutdown() {
    spans_arrive_on_shutdown(OtlpProtocol::Grpc);
}

#[test]
fn spans_events_and_resource_arrive_over_http_on_shutdown() {
    spans_arrive_on_shutdown(OtlpProtocol::HttpProtobuf);
}

#[test]
fn traces_variables_reach_the_wire_with_gzip_headers_and_their_own_endpoint() {
    let metrics = Receiver::http("127.0.0.1:0");
    let traces = Receiver::grpc("127.0.0.1:0");
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", metrics.addr)),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("http://{}", traces.addr),
        ),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc".to_owned()),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip".to_owned()),
        (
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "x-tenant=blue%20team".to_owned(),
        ),
        ("OTEL_METRICS_EXPORTER", "otlp".to_owned()),
        ("OTEL_TRACES_EXPORTER", "otlp".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ];
    let telemetry = Telemetry::builder()
        .build_with_env(move |k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
        .expect("pipeline");
    let idem = IdempotencyRecorder::builder()
        .build(&telemetry.backend())
        .unwrap();
    idem.record_miss(UserScope::ANONYMOUS);
    work(&telemetry);
    // The schedule delay sends them without a flush.
    assert!(
        traces.spans.wait_for(Duration::from_secs(10), |s| s.len() == 2),
        "spans within the schedule delay: {:?}",
        traces.spans.spans()
    );
    assert_eq!(
        *traces.gzipped.lock().unwrap(),
        1,
        "gzip from the traces variable"
    );
    assert_eq!(traces.headers.last("x-tenant"), ["blue team"]);
    telemetry.shutdown().expect("shutdown");
    assert!(metrics.spans.spans().is_empty(), "spans go to their own endpoint");
    assert!(
        !metrics.received.requests().is_empty(),
        "metrics to the generic one"
    );
}

#[test]
fn the_active_span_is_the_current_opentelemetry_context() {
    let receiver = Receiver::http("127.0.0.1:0");
    let telemetry = pipeline(OtlpProtocol::HttpProtobuf, format!("http://{}", receiver.addr))
        .build_with_env(|_| None)
        .expect("pipeline");
    let subscriber = tracing_subscriber::registry().with(telemetry.tracing_layer());
    let (inside, outside) = tracing::subscriber::with_default(subscriber, || {
        let valid = || opentelemetry::Context::map_current(|cx| cx.span().span_context().is_valid());
        let inside = tracing::info_span!("job").in_scope(valid);
        (inside, valid())
    });
    assert!(
        inside,
        "exemplars read the active span through the OpenTelemetry context"
    );
    assert!(!outside);
    telemetry.shutdown().expect("shutdown");
}

#[test]
fn sampler_always_off_sends_no_spans_and_none_needs_no_provider() {
    let receiver = Receiver::http("127.0.0.1:0");
    let telemetry = pipeline(OtlpProtocol::HttpProtobuf, format!("http://{}", receiver.addr))
        .build_with_env(|k| (k == "OTEL_TRACES_SAMPLER").then(|| "always_off".to_owned()))
        .expect("pipeline");
    work(&telemetry);
    telemetry.shutdown().expect("shutdown");
    assert!(receiver.spans.spans().is_empty());

    let telemetry = Telemetry::builder()
        .exporters([])
        .otlp_endpoint(format!("http://{}", receiver.addr))
        .build_with_env(|k| (k == "OTEL_TRACES_EXPORTER").then(|| "none".to_owned()))
        .expect("pipeline");
    assert!(telemetry.tracer_provider().is_none());
    work(&telemetry);
    telemetry.shutdown().expect("shutdown");
    assert!(receiver.spans.spans().is_empty());
}

/// Against a collector that accepts and never answers, with an OTLP timeout far
/// longer than the shutdown deadline, shutdown still ends at its deadline, names
/// the span export that failed and where it was going, and the metrics export
/// in the same shutdown is bounded by the same deadline (they run at once).
fn shutdown_is_bounded(protocol: OtlpProtocol) -> Duration {
    let hung = HungReceiver::start();
    let telemetry = pipeline(protocol, format!("http://{}", hung.addr))
        .otlp_timeout(Duration::from_secs(30))
        .shutdown_timeout(Duration::from_secs(1))
        .build_with_env(|_| None)
        .expect("pipeline");
    let idem = IdempotencyRecorder::builder()
        .build(&telemetry.backend())
        .unwrap();
    idem.record_miss(UserScope::ANONYMOUS);
    work(&telemetry);
    let start = Instant::now();
    let error = telemetry.shutdown().expect_err("nothing answers");
    let took = start.elapsed();
    let SetupError::Export(export) = &error else {
        panic!("{error:?}")
    };
    let message = error.to_string();
    assert_eq!(export.signals, "metrics and traces", "{message}");
    assert!(message.starts_with("metrics and traces shutdown"), "{message}");
    let name = match protocol {
        OtlpProtocol::Grpc => "OTLP/gRPC traces",
        OtlpProtocol::HttpProtobuf => "OTLP/HTTP traces",
    };
    assert!(export.failures.iter().any(|f| f.exporter == name), "{message}");
    assert!(
        message.contains("/v1/traces") || protocol == OtlpProtocol::Grpc,
        "{message}"
    );
    assert!(message.contains(&hung.addr.to_string()), "{message}");
    assert!(
        took < Duration::from_millis(1500),
        "shutdown took {took:?} with a 1 s deadline: {message}"
    );
    eprintln!("{protocol:?}: shutdown against a collector that never answers took {took:?}: {message}");
    took
}

#[test]
fn shutdown_of_both_signals_ends_at_its_deadline_against_a_hung_collector_grpc() {
    shutdown_is_bounded(OtlpProtocol::Grpc);
}

#[test]
fn shutdown_of_both_signals_ends_at_its_deadline_against_a_hung_collector_http() {
    shutdown_is_bounded(OtlpProtocol::HttpProtobuf);
}

#[test]
fn shutdown_async_flushes_spans() {
    let receiver = Receiver::grpc("127.0.0.1:0");
    let telemetry = pipeline(OtlpProtocol::Grpc, format!("http://{}", receiver.addr))
        .build_with_env(|_| None)
        .expect("pipeline");
    work(&telemetry);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(telemetry.shutdown_async()).expect("flushed");
    assert_eq!(receiver.spans.spans().len(), 2);
}

/// Run in a child process whose real environment sets the traces variables
/// against the code: `build_with_env(|_| None)` reads none of them, and neither do
/// the SDK's batch processor (which reads `OTEL_BSP_*` itself) nor the transports.
#[test]
fn traces_are_hermetic_in_a_conflicting_process_environment() {
    const CONFLICTING: &[(&str, &str)] = &[
        ("OTEL_TRACES_EXPORTER", "none"),
        ("OTEL_TRACES_SAMPLER", "always_off"),
        ("OTEL_BSP_SCHEDULE_DELAY", "1"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "1"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "1"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9/env"),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-from-env=1"),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1"),
    ];
    if std::env::var_os("OUTCOMETER_HERMETIC_TRACES_CHILD").is_some() {
        let receiver = Receiver::http("127.0.0.1:0");
        let telemetry = pipeline(OtlpProtocol::HttpProtobuf, format!("http://{}", receiver.addr))
            .build_with_env(|_| None)
            .expect("pipeline");
        work(&telemetry);
        std::thread::sleep(Duration::from_millis(200));
        assert!(receiver.spans.spans().is_empty(), "not the variable's 1 ms delay");
        telemetry.shutdown().expect("shutdown");
        assert_eq!(
            receiver.spans.spans().len(),
            2,
            "sampled, and not the variable's queue of 1"
        );
        assert_eq!(
            receiver.spans.requests().len(),
            1,
            "not the variable's batches of 1"
        );
        assert!(receiver.headers.last("x-from-env").is_empty());
        assert_eq!(*receiver.gzipped.lock().unwrap(), 0);
        return;
    }
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"));
    child
        .args([
            "traces_are_hermetic_in_a_conflicting_process_environment",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("OUTCOMETER_HERMETIC_TRACES_CHILD", "1");
    for (k, v) in CONFLICTING {
        child.env(k, v);
    }
    let out = child.output().expect("child test runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
