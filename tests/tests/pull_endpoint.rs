//! The Prometheus pull endpoint, scraped over real HTTP: exposition names and
//! labels, content type, gzip, HEAD, 404, 405; and push and pull at once.

use std::time::Duration;

use outcometer::{
    DeliveryMetrics, DeliveryRecorder, ErrorKind, IdempotencyMetrics, IdempotencyRecorder, UserScope,
};
use outcometer_exporter::exposition::Format;
use outcometer_exporter::{ExporterKind, OtlpProtocol, Telemetry};
use outcometer_tests::{exposition_value, http_request, number, Receiver};

fn pull_only() -> Telemetry {
    pull_only_under("")
}

fn pull_only_under(namespace: &str) -> Telemetry {
    Telemetry::builder()
        .namespace(namespace)
        .service_name("pull-test")
        .exporters([ExporterKind::Prometheus])
        .prometheus_host("127.0.0.1")
        .prometheus_port(0u16)
        .build_with_env(|_| None)
        .expect("pipeline")
}

#[test]
fn scrape_shows_the_seed_names_and_labels() {
    let telemetry = pull_only_under("wildside");
    let addr = telemetry.prometheus_address().expect("listening");
    let idem = IdempotencyRecorder::builder()
        .key_age_histogram(true)
        .build(&telemetry.backend())
        .unwrap();
    let delivery = DeliveryRecorder::builder().build(&telemetry.backend()).unwrap();
    idem.record_miss(UserScope::from_digest(0xa1b2_c3d4));
    idem.record_conflict(UserScope::from_digest(0xe5f6_0000), Duration::from_secs(600));
    delivery.record_delivery_success("https://hooks.example.com", Duration::from_millis(120));
    delivery.record_delivery_error(
        "https://hooks.example.com",
        ErrorKind::Timeout,
        Duration::from_secs(10),
    );
    let _task = delivery.track_active_task();

    let response = http_request(addr, "GET", "/metrics", &[]);
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(
        !response.body.contains("otel_scope_"),
        "scope labels are off by default"
    );
    let body = &response.body;
    assert_eq!(
        exposition_value(
            body,
            "wildside_idempotency_requests_total",
            &["outcome=\"miss\"", "user_scope=\"a\"", "age_bucket=\"n/a\""]
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        exposition_value(
            body,
            "wildside_idempotency_requests_total",
            &["outcome=\"conflict\"", "user_scope=\"e\"", "age_bucket=\"5-30m\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        exposition_value(
            body,
            "wildside_delivery_duration_seconds_bucket",
            &[
                "outcome=\"success\"",
                "server_address=\"hooks.example.com\"",
                "le=\"0.25\""
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        exposition_value(
            body,
            "wildside_delivery_attempts_total",
            &[
                "outcome=\"error\"",
                "error_type=\"timeout\"",
                "server_address=\"hooks.example.com\""
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        exposition_value(body, "wildside_delivery_active_tasks", &[]),
        Some(1.0)
    );
    assert_eq!(
        exposition_value(
            body,
            "wildside_idempotency_key_age_seconds_count",
            &["outcome=\"conflict\""]
        ),
        Some(1.0)
    );
    assert!(
        body.contains("service_instance_id="),
        "target_info keeps replicas apart:\n{body}"
    );

    // Prometheus asks for OpenMetrics by default.
    let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let om = http_request(addr, "GET", "/metrics", &[&format!("Accept: {accept}")]);
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let om = om.body;
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(
        om.contains("# TYPE wildside_idempotency_requests counter\n"),
        "{om}"
    );
    assert!(
        om.contains("# TYPE wildside_delivery_duration_seconds histogram\n"),
        "{om}"
    );
    assert!(
        om.contains("# UNIT wildside_delivery_duration_seconds seconds\n"),
        "{om}"
    );
    assert!(om.contains("# TYPE target info\n"), "{om}");
    assert_eq!(
        exposition_value(
            &om,
            "wildside_idempotency_requests_total",
            &["outcome=\"miss\"", "user_scope=\"a\"", "age_bucket=\"n/a\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        exposition_value(
            &om,
            "wildside_delivery_duration_seconds_bucket",
            &[
                "outcome=\"success\"",
                "server_address=\"hooks.example.com\"",
                "le=\"0.25\""
            ]
        ),
        Some(1.0)
    );
}

#[test]
fn endpoint_speaks_http_properly() {
    let telemetry = pull_only();
    let addr = telemetry.prometheus_address().unwrap();
    let idem = IdempotencyRecorder::builder()
        .build(&telemetry.backend())
        .unwrap();
    idem.record_miss(UserScope::ANONYMOUS);

    let gz = http_request(addr, "GET", "/metrics", &["Accept-Encoding: gzip"]);
    assert_eq!(gz.status, 200);
    assert!(gz.was_gzipped);
    assert!(gz.body.contains("idempotency_requests_total"));

    let head = http_request(addr, "HEAD", "/metrics", &[]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert!(head
        .header("content-length")
        .is_some_and(|l| l.parse::<usize>().unwrap() > 0));

    assert_eq!(http_request(addr, "GET", "/", &[]).status, 404);
    let post = http_request(addr, "POST", "/metrics", &["Content-Length: 0"]);
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
}

#[test]
fn shutdown_stops_the_endpoint() {
    let telemetry = pull_only();
    let addr = telemetry.prometheus_address().unwrap();
    telemetry.shutdown().unwrap();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "port closed after shutdown"
    );
}

#[test]
fn push_and_pull_at_once_agree() {
    let receiver = Receiver::grpc("127.0.0.1:0");
    let telemetry = Telemetry::builder()
        .exporters([ExporterKind::Otlp, ExporterKind::Prometheus])
        .otlp_protocol(OtlpProtocol::Grpc)
        .otlp_endpoint(format!("http://{}", receiver.addr))
        .prometheus_host("127.0.0.1")
        .prometheus_port(0u16)
        .export_interval(Duration::from_secs(3600))
        .build_with_env(|_| None)
        .unwrap();
    let addr = telemetry.prometheus_address().unwrap();
    let idem = IdempotencyRecorder::builder()
        .build(&telemetry.backend())
        .unwrap();
    for _ in 0..7 {
        idem.record_miss(UserScope::ANONYMOUS);
    }
    let scraped = exposition_value(
        &http_request(addr, "GET", "/metrics", &[]).body,
        "idempotency_requests_total",
        &["outcome=\"miss\"", "user_scope=\"anonymous\""],
    );
    telemetry.shutdown().unwrap();
    let pushed = receiver
        .received
        .latest("idempotency.requests")
        .and_then(|m| number(&m, &["outcome=miss", "user_scope=anonymous", "age_bucket=n/a"]));
    assert_eq!(scraped, Some(7.0));
    assert_eq!(pushed, Some(7.0));
}

#[test]
fn both_formats_pass_promtool_check_metrics() {
    let Some(promtool) = outcometer_tests::e2e::tool("OUTCOMETER_PROMTOOL", "promtool") else {
        return;
    };
    let telemetry = pull_only_under("lint");
    outcometer::catalog::register_shipped_families(&telemetry.backend()).unwrap();
    let idem = IdempotencyRecorder::builder()
        .key_age_histogram(true)
        .request_duration_histogram(true)
        .build(&telemetry.backend())
        .unwrap();
    let delivery = DeliveryRecorder::builder().build(&telemetry.backend()).unwrap();
    idem.record_conflict(UserScope::from_digest(7), Duration::from_secs(90));
    idem.record_request_duration(outcometer::IdempotencyOutcome::Hit, Duration::from_millis(3));
    // Inside a sampled span: the bucket gets an exemplar (OpenMetrics only).
    outcometer_tests::in_sampled_span(
        0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
        0x00f0_67aa_0ba9_02b7,
        || {
            delivery.record_delivery_failure("https://a.example/x", 503, Duration::from_millis(80));
        },
    );
    delivery.record_dead_letter("not a url");
    let _task = delivery.track_active_task();
    let meter = opentelemetry::metrics::MeterProvider::meter(telemetry.provider(), "app");
    meter
        .u64_counter("app.jobs")
        .with_description("Jobs done.")
        .build()
        .add(2, &[opentelemetry::KeyValue::new("queue", "a \"quoted\"\nvalue")]);
    let text = telemetry.metrics_service().render_as(Format::Text);
    let (ok, output) = outcometer_tests::e2e::promtool_check_metrics(&promtool, &text);
    assert!(ok, "promtool check metrics failed:\n{output}\n{text}");
    // promtool (2.42) reads only the text format; OpenMetrics goes through the
    // strict parser of the Prometheus project's Python client.
    let Some(python) = outcometer_tests::e2e::tool("OUTCOMETER_PYTHON", "python-with-prometheus-client")
    else {
        return;
    };
    let om = telemetry.metrics_service().render_as(Format::OpenMetrics);
    let parse = "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as p\n\
                 families = list(p(sys.stdin.read()))\n\
                 exemplars = [s.exemplar.labels['trace_id'] for f in families for s in f.samples if s.exemplar]\n\
                 print(' '.join(exemplars), len(families), sum(len(f.samples) for f in families))";
    let mut child = std::process::Command::new(python)
        .args(["-c", parse])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), om.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("python runs");
    assert!(
        out.status.success(),
        "OpenMetrics parser rejected the body: {}\n{om}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples = om.lines().filter(|l| !l.starts_with('#')).count();
    let parsed = String::from_utf8_lossy(&out.stdout);
    assert!(
        parsed.trim().ends_with(&format!(" {samples}")),
        "{parsed} vs {samples} sample lines"
    );
    assert!(
        parsed.starts_with("4bf92f3577b34da6a3ce929d0e0e4736 "),
        "exactly one exemplar, parsed with its trace id: {parsed}"
    );
}
