//! With the layer installed as the process's subscriber, unfiltered, the OTLP
//! transports' own `tracing` spans (h2 under gRPC), for spans and for metrics, are
//! not exported: the exporter's threads run with telemetry suppressed, so sending
//! spans does not make more spans. One test in this binary: it sets the global
//! subscriber.

use std::time::Duration;

use outcometer::{IdempotencyMetrics, IdempotencyRecorder, UserScope};
use outcometer_exporter::{ExporterKind, OtlpProtocol, Telemetry, TracesExporter};
use outcometer_tests::Receiver;
use tracing_subscriber::layer::SubscriberExt as _;

#[test]
fn the_transports_own_spans_are_not_exported() {
    let receiver = Receiver::grpc("127.0.0.1:0");
    let telemetry = Telemetry::builder()
        .exporters([ExporterKind::Otlp])
        .traces_exporter(TracesExporter::Otlp)
        .otlp_protocol(OtlpProtocol::Grpc)
        .otlp_endpoint(format!("http://{}", receiver.addr))
        .span_batch_schedule_delay(Duration::from_millis(50))
        .export_interval(Duration::from_millis(50))
        .build_with_env(|_| None)
        .expect("pipeline");
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(telemetry.tracing_layer()))
        .expect("the only subscriber in this binary");
    // Metrics push over the same kind of channel, from the periodic reader's thread.
    let idem = IdempotencyRecorder::builder()
        .build(&telemetry.backend())
        .unwrap();
    idem.record_miss(UserScope::ANONYMOUS);
    for n in 0..5_i64 {
        tracing::info_span!("job", n).in_scope(|| tracing::info!("done"));
        // Several exports, each of which would trace its own transport.
        std::thread::sleep(Duration::from_millis(100));
    }
    telemetry.shutdown().expect("shutdown");
    let names: Vec<String> = receiver.spans.spans().into_iter().map(|s| s.span.name).collect();
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(names.iter().all(|n| n == "job"), "{names:?}");
    assert!(
        receiver.received.requests().len() >= 3,
        "metrics were pushed meanwhile"
    );
}
