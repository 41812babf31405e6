//! OTLP push, gRPC and HTTP/protobuf, against in-process receivers that decode
//! the real protobuf: names, units, attributes, values, boundaries, temporality,
//! resource; shutdown flushes; a collector that is down and then up gets totals.

use std::time::Duration;

use outcometer::{
    AdmissionPolicy, DeliveryMetrics, DeliveryRecorder, IdempotencyMetrics, IdempotencyRecorder, UserScope,
};
use outcometer_exporter::{ExporterKind, OtlpProtocol, Telemetry, TemporalityPreference};
use outcometer_tests::{histogram, number, released_port, temporality, Receiver};

fn record_scenario(telemetry: &Telemetry) -> (IdempotencyRecorder, DeliveryRecorder) {
    let idem = IdempotencyRecorder::builder()
        .key_age_histogram(true)
        .build(&telemetry.backend())
        .unwrap();
    let delivery = DeliveryRecorder::builder()
        .endpoints(AdmissionPolicy::first_k(3))
        .build(&telemetry.backend())
        .unwrap();
    let scope = UserScope::from_digest(0x3000_0000);
    for _ in 0..5 {
        idem.record_miss(scope);
    }
    idem.record_hit(scope, Duration::from_secs(120));
    delivery.record_delivery_success("https://hooks.example.com/a", Duration::from_millis(20));
    delivery.record_delivery_failure("https://hooks.example.com/a", 502, Duration::from_millis(300));
    (idem, delivery)
}

fn telemetry(
    protocol: OtlpProtocol,
    receiver: &Receiver,
    gzip: bool,
    temporality: TemporalityPreference,
) -> Telemetry {
    Telemetry::builder()
        .namespace("wildside")
        .service_name("otlp-test")
        .service_version("1.2.3")
        .exporters([ExporterKind::Otlp])
        .otlp_protocol(protocol)
        .otlp_endpoint(format!("http://{}", receiver.addr))
        .otlp_gzip(gzip)
        .otlp_header("x-tenant", "blue")
        .temporality(temporality)
        .export_interval(Duration::from_secs(3600)) // only the shutdown flush exports
        .build_with_env(|_| None)
        .expect("pipeline")
}

fn assert_scenario(receiver: &Receiver, want_temporality: i32) {
    let got = &receiver.received;
    let requests = got
        .latest("wildside.idempotency.requests")
        .expect("requests metric");
    assert_eq!(requests.unit, "{request}");
    assert_eq!(
        number(&requests, &["outcome=miss", "user_scope=3", "age_bucket=n/a"]),
        Some(5.0)
    );
    assert_eq!(
        number(&requests, &["outcome=hit", "user_scope=3", "age_bucket=1-5m"]),
        Some(1.0)
    );
    assert_eq!(temporality(&requests), Some(want_temporality));

    let age = got.latest("wildside.idempotency.key.age").expect("key age");
    let point = histogram(&age, &["outcome=hit"]).expect("hit age point");
    assert_eq!((point.count, point.sum), (1, Some(120.0)));
    assert_eq!(
        point.explicit_bounds,
        vec![60.0, 300.0, 1800.0, 7200.0, 21600.0, 86400.0]
    );
    assert_eq!(point.bucket_counts, vec![0, 1, 0, 0, 0, 0, 0]);

    let attempts = got.latest("wildside.delivery.attempts").expect("attempts");
    assert_eq!(attempts.unit, "{attempt}");
    assert_eq!(
        number(
            &attempts,
            &["outcome=success", "server.address=hooks.example.com"]
        ),
        Some(1.0)
    );
    assert_eq!(
        number(
            &attempts,
            &[
                "outcome=failure",
                "http.response.status_code=502",
                "error.type=502",
                "server.address=hooks.example.com"
            ]
        ),
        Some(1.0)
    );
    let duration = got.latest("wildside.delivery.duration").expect("duration");
    assert_eq!(duration.unit, "s");
    let d = histogram(
        &duration,
        &["outcome=failure", "server.address=hooks.example.com"],
    )
    .expect("point");
    assert_eq!(
        d.explicit_bounds,
        outcometer::toolkit::DELIVERY_DURATION_BOUNDARIES_SECONDS.to_vec()
    );
    assert_eq!(d.count, 1);

    let resource = got.resource();
    for want in [
        "service.name=otlp-test",
        "service.version=1.2.3",
        "telemetry.sdk.language=rust",
        "telemetry.sdk.name=opentelemetry",
    ] {
        assert!(
            resource.iter().any(|a| a == want),
            "{want} missing from {resource:?}"
        );
    }
    let instance = resource
        .iter()
        .find(|a| a.starts_with("service.instance.id="))
        .expect("instance id");
    assert_eq!(instance.len(), "service.instance.id=".len() + 36);
}

/// Records the scenario, shuts down (the only export), and checks what arrived.
fn push_scenario(receiver: &Receiver, protocol: OtlpProtocol, gzip: bool, preference: TemporalityPreference) {
    let telemetry = telemetry(protocol, receiver, gzip, preference);
    let _recorders = record_scenario(&telemetry);
    telemetry.shutdown().expect("clean shutdown");
    let want = if preference == TemporalityPreference::Delta {
        1
    } else {
        2
    };
    assert_scenario(receiver, want);
}

#[test]
fn grpc_push_with_gzip_delivers_exact_data_on_shutdown() {
    push_scenario(
        &Receiver::grpc("127.0.0.1:0"),
        OtlpProtocol::Grpc,
        true,
        TemporalityPreference::Cumulative,
    );
}

#[test]
fn http_protobuf_push_with_gzip_and_delta_temporality() {
    let receiver = Receiver::http("127.0.0.1:0");
    push_scenario(
        &receiver,
        OtlpProtocol::HttpProtobuf,
        true,
        TemporalityPreference::Delta,
    );
    assert!(*receiver.gzipped.lock().unwrap() >= 1, "bodies were gzipped");
}

#[test]
fn http_push_without_gzip_uses_protobuf_at_v1_metrics() {
    let receiver = Receiver::http("127.0.0.1:0");
    push_scenario(
        &receiver,
        OtlpProtocol::HttpProtobuf,
        false,
        TemporalityPreference::Cumulative,
    );
    assert_eq!(*receiver.gzipped.lock().unwrap(), 0);
}

#[test]
fn collector_down_then_up_receives_the_full_totals() {
    let port = released_port();
    let telemetry = Telemetry::builder()
        .exporters([ExporterKind::Otlp])
        .otlp_protocol(OtlpProtocol::Grpc)
        .otlp_endpoint(format!("http://127.0.0.1:{port}"))
        .otlp_timeout(Duration::from_millis(500))
        .export_interval(Duration::from_millis(200))
        .build_with_env(|_| None)
        .expect("pipeline");
    let idem = IdempotencyRecorder::builder()
        .build(&telemetry.backend())
        .unwrap();
    // Recording while nothing listens: every call returns at once and counts.
    for _ in 0..10_000 {
        idem.record_miss(UserScope::ANONYMOUS);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while telemetry.export_health().failed() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        telemetry.export_health().failed() >= 1,
        "exports failed while the collector was down"
    );
    assert!(telemetry.export_health().last_error().is_some());

    let receiver = Receiver::grpc(&format!("127.0.0.1:{port}"));
    for _ in 0..5_000 {
        idem.record_miss(UserScope::ANONYMOUS);
    }
    let arrived = receiver.received.wait_for(Duration::from_secs(30), |_| {
        receiver
            .received
            .latest("idempotency.requests")
            .and_then(|m| number(&m, &["outcome=miss", "user_scope=anonymous", "age_bucket=n/a"]))
            == Some(15_000.0)
            // The receiver keeps the request before its answer reaches the exporter.
            && telemetry.export_health().succeeded() >= 1
    });
    assert!(
        arrived,
        "cumulative total after recovery equals everything recorded"
    );
    assert!(telemetry.export_health().succeeded() >= 1);
    assert_eq!(telemetry.export_health().last_error(), None);
    telemetry.shutdown().expect("clean shutdown");
}

#[test]
fn dropping_the_handle_flushes_too() {
    let receiver = Receiver::http("127.0.0.1:0");
    {
        let telemetry = telemetry(
            OtlpProtocol::HttpProtobuf,
            &receiver,
            false,
            TemporalityPreference::Cumulative,
        );
        let delivery = DeliveryRecorder::builder().build(&telemetry.backend()).unwrap();
        delivery.record_dead_letter("https://x.example");
    }
    let metric = receiver
        .received
        .latest("wildside.delivery.dead_letters")
        .expect("flushed on drop");
    assert_eq!(number(&metric, &["server.address=x.example"]), Some(1.0));
}

#[test]
fn histograms_carry_exemplars_and_delta_exports_send_only_the_difference() {
    let receiver = Receiver::grpc("127.0.0.1:0");
    let telemetry = telemetry(OtlpProtocol::Grpc, &receiver, false, TemporalityPreference::Delta);
    let delivery = DeliveryRecorder::builder().build(&telemetry.backend()).unwrap();
    outcometer_tests::in_sampled_span(
        0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c,
        0xb7ad_6b71_6920_3331,
        || {
            delivery.record_delivery_success("https://hooks.example.com/a", Duration::from_millis(30));
        },
    );
    delivery.record_delivery_success("https://hooks.example.com/a", Duration::from_millis(2));
    telemetry.force_flush().expect("first export");
    let first = receiver
        .received
        .latest("wildside.delivery.duration")
        .expect("first");
    let point = histogram(&first, &["outcome=success", "server.address=hooks.example.com"]).expect("point");
    assert_eq!(
        (point.count, point.bucket_counts[0], point.bucket_counts[3]),
        (2, 1, 1)
    );
    assert_eq!(
        point.exemplars.len(),
        1,
        "only the measurement inside a sampled span"
    );
    let exemplar = &point.exemplars[0];
    assert_eq!(
        exemplar.trace_id,
        0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c_u128.to_be_bytes()
    );
    assert_eq!(exemplar.span_id, 0xb7ad_6b71_6920_3331_u64.to_be_bytes());
    assert!(matches!(
        exemplar.value,
        Some(opentelemetry_proto::tonic::metrics::v1::exemplar::Value::AsDouble(v)) if (v - 0.03).abs() < 1e-12
    ));
    assert_eq!(temporality(&first), Some(1), "delta");

    delivery.record_delivery_success("https://hooks.example.com/a", Duration::from_millis(2));
    telemetry.shutdown().expect("second export");
    let second = receiver
        .received
        .latest("wildside.delivery.duration")
        .expect("second");
    let point = histogram(&second, &["outcome=success", "server.address=hooks.example.com"]).expect("point");
    assert_eq!(
        (point.count, point.bucket_counts[0]),
        (1, 1),
        "only what came after the first export"
    );
    assert!(
        point.exemplars.is_empty(),
        "the exemplar was sent with the interval it belongs to"
    );
    assert!((point.sum.unwrap() - 0.002).abs() < 1e-12);
}

#[test]
fn lowmemory_sends_counters_and_histograms_as_delta_and_up_down_counters_cumulative() {
    let receiver = Receiver::http("127.0.0.1:0");
    let telemetry = telemetry(
        OtlpProtocol::HttpProtobuf,
        &receiver,
        false,
        TemporalityPreference::LowMemory,
    );
    let (_idem, delivery) = record_scenario(&telemetry);
    let _task = delivery.track_active_task();
    telemetry.force_flush().expect("export");
    let got = &receiver.received;
    let delta = 1;
    let cumulative = 2;
    for (name, want) in [
        ("wildside.idempotency.requests", delta),
        ("wildside.delivery.duration", delta),
        ("wildside.delivery.active_tasks", cumulative),
    ] {
        let metric = got.latest(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(temporality(&metric), Some(want), "{name}");
    }
    telemetry.shutdown().expect("clean shutdown");
}
