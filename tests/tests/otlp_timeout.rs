//! The export timeout is applied for real: against a collector that accepts
//! connections and never answers, each export stops at the timeout (OTLP timeout
//! or `OTEL_METRIC_EXPORT_TIMEOUT`, whichever is shorter), so neither the next
//! interval nor shutdown waits longer; with no limit (`0`), shutdown's own
//! deadline still bounds the last export.

use std::time::{Duration, Instant};

use outcometer::{IdempotencyMetrics, IdempotencyRecorder, UserScope};
use outcometer_exporter::{ExporterKind, OtlpProtocol, SetupError, Telemetry, TelemetryBuilder};
use outcometer_tests::HungReceiver;

fn against_hung(protocol: OtlpProtocol, hung: &HungReceiver) -> TelemetryBuilder {
    Telemetry::builder()
        .exporters([ExporterKind::Otlp])
        .otlp_protocol(protocol)
        .otlp_endpoint(format!("http://{}", hung.addr))
}

fn record(telemetry: &Telemetry) -> IdempotencyRecorder {
    let idem = IdempotencyRecorder::builder()
        .build(&telemetry.backend())
        .unwrap();
    idem.record_miss(UserScope::ANONYMOUS);
    idem
}

/// Two interval exports fail at the timeout each, then shutdown's does too; the
/// returned durations are (time to the second failure, shutdown).
fn hung_collector(
    protocol: OtlpProtocol,
    timeout: Duration,
    env: &[(&'static str, String)],
) -> (Duration, Duration, String) {
    let hung = HungReceiver::start();
    let env = env.to_vec();
    let telemetry = against_hung(protocol, &hung)
        .export_interval(Duration::from_millis(300))
        .shutdown_timeout(Duration::from_secs(10))
        .build_with_env(move |k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
        .expect("pipeline");
    let _idem = record(&telemetry);
    let start = Instant::now();
    while telemetry.export_health().failed() < 2 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let two_failures = start.elapsed();
    assert_eq!(telemetry.export_health().failed(), 2, "two exports failed");
    let cause = telemetry.export_health().last_error().expect("a cause");
    assert!(cause.contains(&format!("{timeout:?}")), "{cause}");

    let start = Instant::now();
    let error = telemetry.shutdown().expect_err("the last export fails too");
    let shutdown = start.elapsed();
    let message = error.to_string();
    assert!(matches!(error, SetupError::Export(_)), "{error:?}");
    assert!(message.starts_with("metrics shutdown failed: the "), "{message}");
    assert!(
        message.contains(&hung.addr.to_string()),
        "names where it was going: {message}"
    );
    assert!(message.contains("export timeout"), "{message}");
    (two_failures, shutdown, message)
}

fn check(protocol: OtlpProtocol) {
    let timeout = Duration::from_secs(1);
    let (two, shutdown, message) = hung_collector(
        protocol,
        timeout,
        &[("OTEL_EXPORTER_OTLP_TIMEOUT", "1000".into())],
    );
    eprintln!("{protocol:?}: two failed exports in {two:?}, shutdown in {shutdown:?}: {message}");
    // 300 ms interval + 1 s + 300 ms + 1 s, and some slack; without the timeout
    // the first export would never end.
    assert!(two < Duration::from_millis(3300), "{two:?}");
    assert!(
        shutdown >= timeout && shutdown < timeout + Duration::from_millis(600),
        "{shutdown:?}"
    );
}

#[test]
fn otlp_timeout_bounds_each_export_and_shutdown_grpc() {
    check(OtlpProtocol::Grpc);
}

#[test]
fn otlp_timeout_bounds_each_export_and_shutdown_http() {
    check(OtlpProtocol::HttpProtobuf);
}

#[test]
fn metric_export_timeout_applies_when_shorter() {
    let (_, shutdown, _) = hung_collector(
        OtlpProtocol::HttpProtobuf,
        Duration::from_millis(700),
        &[("OTEL_METRIC_EXPORT_TIMEOUT", "700".into())],
    );
    assert!(shutdown < Duration::from_millis(1300), "{shutdown:?}");
}

#[test]
fn zero_means_no_limit_and_shutdown_still_ends_at_its_deadline() {
    let hung = HungReceiver::start();
    let telemetry = against_hung(OtlpProtocol::Grpc, &hung)
        .otlp_timeout(Duration::ZERO)
        .export_timeout(Duration::ZERO)
        .export_interval(Duration::from_secs(3600))
        .shutdown_timeout(Duration::from_secs(1))
        .build_with_env(|_| None)
        .expect("pipeline");
    let _idem = record(&telemetry);
    let start = Instant::now();
    let error = telemetry.shutdown().expect_err("never answered");
    let took = start.elapsed();
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert!(error.to_string().contains("shutdown deadline"), "{error}");
}
