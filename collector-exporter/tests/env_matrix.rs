//! Every `OTEL_*` variable honoured, precedence as documented (code > signal-specific
//! > generic > default), each bad value rejected with a message naming the variable.

use std::time::Duration;

use outcometer_exporter::{
    ExporterKind, OtlpProtocol, ResolvedConfig, SetupError, Telemetry, TelemetryBuilder,
    TemporalityPreference,
};

fn resolve(pairs: &[(&str, &str)]) -> Result<ResolvedConfig, SetupError> {
    resolve_with(Telemetry::builder(), pairs)
}

fn resolve_with(builder: TelemetryBuilder, pairs: &[(&str, &str)]) -> Result<ResolvedConfig, SetupError> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    builder.resolve_with(move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
}

#[test]
fn each_variable_is_honoured() {
    let c = resolve(&[
        ("OTEL_SERVICE_NAME", "checkout"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=prod,team=a%20b",
        ),
        ("OTEL_METRICS_EXPORTER", "otlp, prometheus,console"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s3cr%3Dt,tenant=blue"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "Delta"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "15000"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "7000"),
        ("OTEL_EXPORTER_PROMETHEUS_HOST", "0.0.0.0"),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "9999"),
    ])
    .unwrap();
    assert_eq!(c.resource["service.name"], "checkout");
    assert_eq!(c.resource["deployment.environment"], "prod");
    assert_eq!(c.resource["team"], "a b");
    assert_eq!(
        c.exporters,
        [
            ExporterKind::Otlp,
            ExporterKind::Prometheus,
            ExporterKind::Console
        ]
    );
    assert_eq!(
        c.otlp.endpoint, "http://collector:4318/v1/metrics",
        "generic endpoint gets the signal path"
    );
    assert_eq!(c.otlp.protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(c.otlp.headers["api-key"], "s3cr=t");
    assert_eq!(c.otlp.headers["tenant"], "blue");
    assert_eq!(c.otlp.timeout, Duration::from_millis(2500));
    assert!(c.otlp.gzip);
    assert_eq!(c.otlp.temporality, TemporalityPreference::Delta);
    assert_eq!(c.export_interval, Duration::from_secs(15));
    assert_eq!(c.export_timeout, Duration::from_secs(7));
    assert_eq!(c.prometheus_address, "0.0.0.0:9999");
}

#[test]
fn grpc_endpoints_are_used_as_given() {
    let c = resolve(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
    ])
    .unwrap();
    assert_eq!(c.otlp.endpoint, "http://c:4317");
    let d = resolve(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap();
    assert_eq!(d.otlp.endpoint, "http://localhost:4317");
}

#[test]
fn signal_specific_beats_generic() {
    let c = resolve(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "http://specific:9000/custom/path",
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
        ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "2000"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "none"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a=generic"),
        ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "b=specific"),
    ])
    .unwrap();
    assert_eq!(
        c.otlp.endpoint, "http://specific:9000/custom/path",
        "signal endpoint used as is"
    );
    assert_eq!(c.otlp.protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(c.otlp.timeout, Duration::from_secs(2));
    assert!(!c.otlp.gzip);
    assert_eq!(c.otlp.headers.len(), 1);
    assert_eq!(c.otlp.headers["b"], "specific");
}

#[test]
fn code_beats_every_variable() {
    let builder = Telemetry::builder()
        .service_name("from-code")
        .exporters([ExporterKind::Prometheus])
        .otlp_endpoint("http://code:4318")
        .otlp_protocol(OtlpProtocol::Grpc)
        .otlp_timeout(Duration::from_millis(42))
        .otlp_gzip(false)
        .otlp_header("a", "code")
        .temporality(TemporalityPreference::Cumulative)
        .export_interval(Duration::from_millis(500))
        .export_timeout(Duration::from_millis(600))
        .prometheus_host("127.0.0.1")
        .prometheus_port(0u16)
        .disabled(false);
    let c = resolve_with(
        builder,
        &[
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_SERVICE_NAME", "from-env"),
            ("OTEL_METRICS_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://env:1"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "9"),
            ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "a=env"),
            ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "9"),
            ("OTEL_METRIC_EXPORT_TIMEOUT", "9"),
            ("OTEL_EXPORTER_PROMETHEUS_HOST", "env-host"),
            ("OTEL_EXPORTER_PROMETHEUS_PORT", "1"),
        ],
    )
    .unwrap();
    assert!(!c.disabled);
    assert_eq!(c.resource["service.name"], "from-code");
    assert_eq!(c.exporters, [ExporterKind::Prometheus]);
    assert_eq!(c.otlp.endpoint, "http://code:4318");
    assert_eq!(c.otlp.protocol, OtlpProtocol::Grpc);
    assert_eq!(c.otlp.timeout, Duration::from_millis(42));
    assert!(!c.otlp.gzip);
    assert_eq!(c.otlp.headers["a"], "code");
    assert_eq!(c.otlp.temporality, TemporalityPreference::Cumulative);
    assert_eq!(c.export_interval, Duration::from_millis(500));
    assert_eq!(c.export_timeout, Duration::from_millis(600));
    assert_eq!(c.prometheus_address, "127.0.0.1:0");
}

#[test]
fn programmatic_http_endpoint_gets_v1_metrics_once() {
    let b = || Telemetry::builder().otlp_protocol(OtlpProtocol::HttpProtobuf);
    assert_eq!(
        resolve_with(b().otlp_endpoint("http://h:4318"), &[])
            .unwrap()
            .otlp
            .endpoint,
        "http://h:4318/v1/metrics"
    );
    assert_eq!(
        resolve_with(b().otlp_endpoint("http://h:4318/"), &[])
            .unwrap()
            .otlp
            .endpoint,
        "http://h:4318/v1/metrics"
    );
    assert_eq!(
        resolve_with(b().otlp_endpoint("http://h:4318/v1/metrics"), &[])
            .unwrap()
            .otlp
            .endpoint,
        "http://h:4318/v1/metrics"
    );
}

#[test]
fn service_name_precedence_and_instance_id() {
    let c = resolve(&[(
        "OTEL_RESOURCE_ATTRIBUTES",
        "service.name=from-attrs,service.instance.id=pod-7",
    )])
    .unwrap();
    assert_eq!(c.resource["service.name"], "from-attrs");
    assert_eq!(c.resource["service.instance.id"], "pod-7");
    let c = resolve(&[
        ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"),
        ("OTEL_SERVICE_NAME", "svc"),
    ])
    .unwrap();
    assert_eq!(c.resource["service.name"], "svc");
    let (a, b) = (resolve(&[]).unwrap(), resolve(&[]).unwrap());
    assert_ne!(
        a.resource["service.instance.id"], b.resource["service.instance.id"],
        "unique per pipeline"
    );
}

#[test]
fn disabled_and_none_mean_no_exporters() {
    assert!(resolve(&[("OTEL_SDK_DISABLED", "TRUE")])
        .unwrap()
        .exporters
        .is_empty());
    assert!(resolve(&[("OTEL_METRICS_EXPORTER", "none")])
        .unwrap()
        .exporters
        .is_empty());
    let telemetry = Telemetry::builder()
        .build_with_env(|k| (k == "OTEL_SDK_DISABLED").then(|| "true".into()))
        .unwrap();
    assert!(telemetry.config().disabled);
    assert!(telemetry.prometheus_address().is_none());
}

#[test]
fn each_bad_value_is_rejected_with_the_variable_and_what_it_accepts() {
    let cases: &[(&str, &str, &str)] = &[
        ("OTEL_SDK_DISABLED", "yes", "true or false"),
        (
            "OTEL_METRICS_EXPORTER",
            "otlp,zipkin",
            "otlp, prometheus, console, none",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "localhost:4317",
            "http:// or https://",
        ),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://", "with a host"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "http://h:99999",
            "with a host and an optional port",
        ),
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "http/json",
            "grpc or http/protobuf",
        ),
        (
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
            "udp",
            "grpc or http/protobuf",
        ),
        ("OTEL_EXPORTER_OTLP_HEADERS", "novalue", "key=value pairs"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a=%zz", "percent-encoded"),
        ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "bad key=v", "header names"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s", "milliseconds"),
        ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "-1", "milliseconds"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", "gzip or none"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
            "sometimes",
            "cumulative, delta or lowmemory",
        ),
        ("OTEL_METRIC_EXPORT_INTERVAL", "fast", "milliseconds"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "1.5", "milliseconds"),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "70000", "0 to 65535"),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "http", "0 to 65535"),
        ("OTEL_EXPORTER_PROMETHEUS_HOST", "a/b", "host name or IP"),
        ("OTEL_RESOURCE_ATTRIBUTES", "=x", "key=value pairs"),
    ];
    for (var, value, expected) in cases {
        let err = resolve(&[(var, value)]).expect_err(&format!("{var}={value} must be rejected"));
        let message = err.to_string();
        assert!(message.contains(var), "{message} names {var}");
        assert!(message.contains(expected), "{message} says it accepts {expected}");
    }
}

#[test]
fn bad_code_values_are_rejected_too() {
    let err = resolve_with(Telemetry::builder().otlp_endpoint("collector:4317"), &[]).unwrap_err();
    assert!(err.to_string().contains("otlp_endpoint"), "{err}");
    let err = resolve_with(Telemetry::builder().export_interval(Duration::ZERO), &[]).unwrap_err();
    assert!(err.to_string().contains("export_interval"), "{err}");
    let err = resolve_with(Telemetry::builder().otlp_header("bad header", "v"), &[]).unwrap_err();
    assert!(err.to_string().contains("otlp_header"), "{err}");
}

#[test]
fn a_port_in_use_is_a_clear_setup_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = Telemetry::builder()
        .exporters([ExporterKind::Prometheus])
        .prometheus_host("127.0.0.1")
        .prometheus_port(port)
        .build_with_env(|_| None)
        .unwrap_err();
    assert!(err.to_string().contains("OTEL_EXPORTER_PROMETHEUS_PORT"), "{err}");
}
