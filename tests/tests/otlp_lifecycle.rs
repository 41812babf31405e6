//! Flush and shutdown: blocking with a bound, an async variant, and errors that
//! say which export failed and where it was going.

use std::time::Duration;

use outcometer::{IdempotencyMetrics, IdempotencyRecorder, UserScope};
use outcometer_exporter::{ExportError, ExporterKind, Operation, OtlpProtocol, SetupError, Telemetry};
use outcometer_tests::{number, released_port, Receiver};

#[test]
fn flush_and_shutdown_errors_name_the_export_and_where_it_was_going() {
    let port = released_port();
    let telemetry = Telemetry::builder()
        .exporters([ExporterKind::Otlp])
        .otlp_endpoint(format!("http://127.0.0.1:{port}/?token=s3cret"))
        .otlp_timeout(Duration::from_millis(300))
        .export_interval(Duration::from_secs(3600))
        .build_with_env(|_| None)
        .expect("pipeline");
    let idem = IdempotencyRecorder::builder()
        .build(&telemetry.backend())
        .unwrap();
    idem.record_miss(UserScope::ANONYMOUS);
    let error = telemetry.force_flush().expect_err("nothing listens");
    let SetupError::Export(ExportError {
        operation, failures, ..
    }) = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(*operation, Operation::Flush);
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].exporter, "OTLP/HTTP");
    assert_eq!(
        failures[0].endpoint,
        format!("http://127.0.0.1:{port}/v1/metrics?…")
    );
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "metrics flush failed: the OTLP/HTTP export to http://127.0.0.1:{port}/v1/metrics?…: "
        )),
        "{message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
    let error = telemetry.shutdown().expect_err("still nothing");
    assert!(
        error
            .to_string()
            .starts_with("metrics shutdown failed: the OTLP/HTTP export"),
        "{error}"
    );
}

#[test]
fn shutdown_async_flushes_without_blocking_the_executor() {
    let receiver = Receiver::grpc("127.0.0.1:0");
    let telemetry = Telemetry::builder()
        .exporters([ExporterKind::Otlp])
        .otlp_protocol(OtlpProtocol::Grpc)
        .otlp_endpoint(format!("http://{}", receiver.addr))
        .export_interval(Duration::from_secs(3600))
        .build_with_env(|_| None)
        .expect("pipeline");
    let idem = IdempotencyRecorder::builder()
        .build(&telemetry.backend())
        .unwrap();
    idem.record_miss(UserScope::ANONYMOUS);
    // One thread for everything: if shutdown blocked it, the ticker could not run.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ticks = runtime.block_on(async {
        let ticker = tokio::spawn(async {
            let mut ticks = 0u32;
            loop {
                tokio::time::sleep(Duration::from_millis(1)).await;
                ticks += 1;
                if ticks == 1_000_000 {
                    return ticks;
                }
            }
        });
        telemetry.shutdown_async().await.expect("clean shutdown");
        ticker.abort();
        ticker.await.err().map(|_| ())
    });
    assert!(ticks.is_some(), "the ticker was still running");
    let metric = receiver.received.latest("idempotency.requests").expect("flushed");
    assert_eq!(
        number(
            &metric,
            &["outcome=miss", "user_scope=anonymous", "age_bucket=n/a"]
        ),
        Some(1.0)
    );
}

#[test]
fn a_clean_flush_is_ok_and_delivers() {
    let receiver = Receiver::http("127.0.0.1:0");
    let telemetry = Telemetry::builder()
        .exporters([ExporterKind::Otlp])
        .otlp_endpoint(format!("http://{}", receiver.addr))
        .export_interval(Duration::from_secs(3600))
        .build_with_env(|_| None)
        .expect("pipeline");
    let idem = IdempotencyRecorder::builder()
        .build(&telemetry.backend())
        .unwrap();
    idem.record_miss(UserScope::ANONYMOUS);
    telemetry.force_flush().expect("flushed");
    assert_eq!(receiver.received.requests().len(), 1);
    telemetry.shutdown().expect("clean");
}
