//! Exemplars: a histogram bucket carries the trace and span of the latest
//! measurement recorded inside a sampled span, in OpenMetrics only.

use std::time::Duration;

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use outcometer::DeliveryResult;
use outcometer_exporter::exposition::Format;
use outcometer_exporter::{ExporterKind, Telemetry};

fn pipeline() -> Telemetry {
    Telemetry::builder()
        .service_name("exemplars")
        .namespace("svc")
        .exporters([ExporterKind::Prometheus])
        .build_without_pull_server()
        .expect("pipeline")
}

/// Runs `f` with a span of `trace`/`span` active in OpenTelemetry's context, as
/// `tracing-opentelemetry` activates it when a `tracing` span is entered.
fn in_span(trace: u128, span: u64, sampled: bool, f: impl FnOnce()) {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let context = SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span),
        flags,
        false,
        TraceState::default(),
    );
    let _guard = Context::new().with_remote_span_context(context).attach();
    f();
}

fn bucket_lines<'a>(body: &'a str, name: &str) -> Vec<&'a str> {
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket")))
        .collect()
}

#[test]
fn open_metrics_buckets_carry_the_latest_sampled_span_and_text_does_not() {
    let telemetry = pipeline();
    let delivery = outcometer::DeliveryRecorder::builder()
        .build(&telemetry.backend())
        .expect("delivery");
    let endpoint = delivery.endpoint("https://hooks.example/in");
    // Outside any span, and inside an unsampled one: counted, no exemplar.
    delivery.record_result(endpoint, DeliveryResult::Success, Duration::from_millis(3));
    in_span(0xaa, 0xbb, false, || {
        delivery.record_result(endpoint, DeliveryResult::Success, Duration::from_millis(4));
    });
    // Two sampled spans into the same bucket: the later one is kept.
    in_span(0x0102, 0x0304, true, || {
        delivery.record_result(endpoint, DeliveryResult::Success, Duration::from_millis(40));
    });
    in_span(
        0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
        0x00f0_67aa_0ba9_02b7,
        true,
        || {
            delivery.record_result(endpoint, DeliveryResult::Success, Duration::from_millis(45));
        },
    );

    let service = telemetry.metrics_service();
    let om = service.render_as(Format::OpenMetrics);
    let buckets = bucket_lines(&om, "svc_delivery_duration_seconds");
    let with_exemplars: Vec<&&str> = buckets.iter().filter(|l| l.contains(" # {")).collect();
    assert_eq!(
        with_exemplars.len(),
        1,
        "one bucket has a sampled measurement:\n{om}"
    );
    let line = with_exemplars[0];
    assert!(
        line.contains(
            r#"} 4 # {trace_id="4bf92f3577b34da6a3ce929d0e0e4736",span_id="00f067aa0ba902b7"} 0.045 "#
        ),
        "{line}"
    );
    let timestamp: f64 = line.rsplit(' ').next().unwrap().parse().expect("a timestamp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - timestamp).abs() < 60.0, "{timestamp} vs {now}");
    // Buckets up to 0.025 s hold the two early measurements, +Inf all four.
    assert!(
        om.contains(
            "svc_delivery_duration_seconds_count{outcome=\"success\",server_address=\"hooks.example\"} 4"
        ),
        "{om}"
    );

    let text = service.render_as(Format::Text);
    assert!(!text.contains(" # {"), "text 0.0.4 has no exemplars:\n{text}");
    assert_eq!(
        bucket_lines(&text, "svc_delivery_duration_seconds").len(),
        buckets.len(),
        "same buckets in both formats"
    );
}

#[test]
fn histograms_from_cells_agree_with_their_counts_while_threads_record() {
    let telemetry = pipeline();
    let delivery = outcometer::DeliveryRecorder::builder()
        .build(&telemetry.backend())
        .expect("delivery");
    let endpoint = delivery.endpoint("https://a.example");
    let service = telemetry.metrics_service();
    std::thread::scope(|scope| {
        for t in 0..2u64 {
            let delivery = delivery.clone();
            scope.spawn(move || {
                for i in 0..20_000u64 {
                    in_span(u128::from(i + 1), t + 1, true, || {
                        delivery.record_result(
                            endpoint,
                            DeliveryResult::Failure(503),
                            Duration::from_micros(i % 7_000),
                        );
                    });
                }
            });
        }
        for _ in 0..50 {
            let om = service.render_as(Format::OpenMetrics);
            let inf = om
                .lines()
                .find(|l| l.contains("_bucket{") && l.contains("le=\"+Inf\""))
                .map(|l| l.split(' ').nth(1).unwrap().to_owned());
            let count = om
                .lines()
                .find(|l| l.starts_with("svc_delivery_duration_seconds_count"))
                .map(|l| l.split(' ').nth(1).unwrap().to_owned());
            assert_eq!(inf, count, "+Inf equals _count in every scrape");
        }
    });
    assert_eq!(delivery.attempt_count(DeliveryResult::Failure(503)), 40_000);
}
