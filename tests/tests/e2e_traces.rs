//! The traces path: the payments demo → rotel (OTLP/gRPC in) → OTLP/HTTP out → a
//! receiver decoding with `opentelemetry-proto`. The demo's spans (one per
//! idempotent request, one per webhook delivery and one per attempt) arrive with
//! their bounded fields, the demo's resource and their parent links, flushed by
//! the demo's shutdown; the SDK's outcome events arrive inside them. Skips loudly without rotel unless `CI=true`.
//!
//! One test in this binary: the demo installs the process's default subscriber.

use std::time::Duration;

use outcometer_examples::demo::{Args, Demo};
use outcometer_tests::e2e::{tool, wait_until, Prometheus, Rotel};
use outcometer_tests::{outcome_events, ReceivedSpan, Receiver};

const DEMO_SPANS: [&str; 3] = ["orders.request", "webhook.delivery", "webhook.delivery_attempt"];

#[test]
fn demo_spans_arrive_through_rotel() {
    let Some(rotel) = tool("OUTCOMETER_ROTEL", "rotel-agent") else {
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
        ("OTEL_BSP_SCHEDULE_DELAY", "500".into()),
    ];
    let args = Args {
        duration: Duration::from_secs(3),
        rate: 50,
        users: 20,
        endpoints: 3,
        ..Args::default()
    };
    let demo = Demo::start(args, move |name| {
        settings.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
    })
    .expect("demo starts");
    let instance = demo.telemetry().config().resource["service.instance.id"].clone();
    // A real Prometheus with exemplar storage scrapes the demo (OpenMetrics).
    let prometheus = tool("OUTCOMETER_PROMETHEUS", "prometheus").map(|binary| {
        let target = demo.metrics_address().expect("pull endpoint");
        let server = Prometheus::start_with_flags(&binary, target, &["--enable-feature=exemplar-storage"]);
        assert!(
            wait_until(Duration::from_secs(30), || server.scalar("up{job=\"demo\"}")
                == Some(1.0)),
            "Prometheus never scraped the demo:\n{}",
            server.output()
        );
        server
    });
    let seen = demo.run(std::future::pending(), |_| {});
    assert!(seen.requests() > 0 && seen.attempts() > 0, "{seen}");
    let mut exemplars = Vec::new();
    if let Some(server) = &prometheus {
        let found = wait_until(Duration::from_secs(20), || {
            exemplars = server.exemplars("demo_delivery_duration_seconds_bucket");
            exemplars.len() >= 3
        });
        assert!(
            found,
            "exemplars of the delivery duration: {exemplars:?}\n{}",
            server.output()
        );
    }
    demo.shutdown()
        .expect("shutdown flushes metrics and spans to rotel");

    let enough = |spans: &[ReceivedSpan]| {
        let count = |name: &str| spans.iter().filter(|s| s.span.name == name).count() as u64;
        count("orders.request") >= seen.requests() && count("webhook.delivery_attempt") >= seen.attempts()
    };
    let arrived = backend.spans.wait_for(Duration::from_secs(20), enough);
    let spans = backend.spans.spans();
    let count = |name: &str| spans.iter().filter(|s| s.span.name == name).count();
    assert!(
        arrived,
        "rotel forwarded {} request spans for {} requests and {} attempt spans for {} attempts\nrotel said:\n{}",
        count("orders.request"),
        seen.requests(),
        count("webhook.delivery_attempt"),
        seen.attempts(),
        collector.output()
    );

    for span in spans
        .iter()
        .filter(|s| DEMO_SPANS.contains(&s.span.name.as_str()))
    {
        assert!(
            span.resource.contains(&"service.name=outcometer-demo".to_owned()),
            "{span:?}"
        );
        assert!(
            span.resource.contains(&format!("service.instance.id={instance}")),
            "the same resource as the metrics: {span:?}"
        );
    }
    let requests = backend.spans.named("orders.request");
    for request in &requests {
        let outcome = request.attribute("outcome");
        assert!(
            outcome.is_some() || request.attribute("http.response.status_code").is_none(),
            "a request that was answered says its outcome: {request:?}"
        );
    }
    assert!(
        requests
            .iter()
            .any(|r| r.attribute("outcome").as_deref() == Some("miss")),
        "misses happen in every run"
    );
    let attempts = backend.spans.named("webhook.delivery_attempt");
    let deliveries = backend.spans.named("webhook.delivery");
    for attempt in &attempts {
        let parent = deliveries
            .iter()
            .find(|d| d.span.span_id == attempt.span.parent_span_id)
            .unwrap_or_else(|| panic!("every attempt is a child of its delivery: {attempt:?}"));
        assert_eq!(parent.span.trace_id, attempt.span.trace_id);
        let outcome = attempt
            .attribute("outcome")
            .expect("each attempt records its outcome");
        assert!(
            ["delivered", "retry", "give_up"].contains(&outcome.as_str()),
            "{outcome}"
        );
        assert!(attempt.attribute("attempt").is_some(), "{attempt:?}");
    }
    assert!(
        attempts
            .iter()
            .any(|a| a.attribute("outcome").as_deref() == Some("delivered")),
        "some deliveries succeed"
    );
    // A retry is an event of its delivery, followed by another attempt.
    for delivery in &deliveries {
        let retries = delivery
            .events()
            .iter()
            .filter(|(name, _)| name == "retrying the delivery")
            .count();
        let children = attempts
            .iter()
            .filter(|a| a.span.parent_span_id == delivery.span.span_id)
            .count();
        assert!(
            children > retries,
            "{retries} retries, {children} attempts: {delivery:?}"
        );
    }

    // Each exemplar Prometheus stored points at a delivery attempt that arrived
    // over OTLP: the trace and span the measurement was recorded in.
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    for (labels, trace_id, span_id, value) in &exemplars {
        let attempt = attempts
            .iter()
            .find(|a| hex(&a.span.trace_id) == *trace_id && hex(&a.span.span_id) == *span_id)
            .unwrap_or_else(|| {
                panic!("exemplar {trace_id}/{span_id} ({labels:?}) is no attempt span that arrived")
            });
        let le = labels
            .iter()
            .find_map(|l| l.strip_prefix("le="))
            .expect("a bucket");
        let upper = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().expect("le")
        };
        assert!(*value <= upper, "{value} lies in its bucket le={le}");
        let took = (attempt.span.end_time_unix_nano - attempt.span.start_time_unix_nano) as f64 / 1e9;
        assert!(*value <= took, "the measured {value}s fits in its span's {took}s");
    }

    // The SDK's own outcome events (`outcometer::<family>`, the demos enable the
    // SDK's `tracing` feature) ride in the demo's spans.
    let events = outcome_events(&spans);
    for event in &events {
        assert!(DEMO_SPANS.contains(&event.span.as_str()), "{event:?}");
    }
    let family = |name: &str| events.iter().filter(|e| e.family == name).count();
    assert!(family("idempotency") > 0, "idempotency outcomes: {events:?}");
    assert!(family("delivery") > 0, "delivery outcomes: {events:?}");
    assert!(
        events
            .iter()
            .filter(|e| e.span == "webhook.delivery_attempt" && e.family == "delivery")
            .all(|e| e.attributes.iter().any(|a| a.starts_with("outcometer.outcome="))),
        "each delivery outcome names its outcome"
    );
}
