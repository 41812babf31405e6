//! What the exporter puts on the wire equals what the configuration says, read
//! back by the in-process receivers: headers (no second percent-decoding), gzip
//! or not, the URL path, and nothing from a conflicting process environment
//! (`build_with_env` is hermetic; proven in a child process whose environment
//! sets every `OTEL_*` variable against the code).

use std::process::Command;
use std::time::Duration;

use outcometer::{IdempotencyMetrics, IdempotencyRecorder, UserScope};
use outcometer_exporter::{ExporterKind, OtlpProtocol, Telemetry, TelemetryBuilder};
use outcometer_tests::Receiver;

fn receiver(protocol: OtlpProtocol) -> Receiver {
    match protocol {
        OtlpProtocol::Grpc => Receiver::grpc("127.0.0.1:0"),
        OtlpProtocol::HttpProtobuf => Receiver::http("127.0.0.1:0"),
    }
}

fn pipeline(protocol: OtlpProtocol, receiver: &Receiver) -> TelemetryBuilder {
    Telemetry::builder()
        .exporters([ExporterKind::Otlp])
        .otlp_protocol(protocol)
        .otlp_endpoint(format!("http://{}", receiver.addr))
        .export_interval(Duration::from_secs(3600))
}

/// Records one miss and shuts down: exactly one export.
fn push_once(builder: TelemetryBuilder, env: impl Fn(&str) -> Option<String>) {
    let telemetry = builder.build_with_env(env).expect("pipeline");
    let idem = IdempotencyRecorder::builder()
        .build(&telemetry.backend())
        .unwrap();
    idem.record_miss(UserScope::ANONYMOUS);
    telemetry.shutdown().expect("clean shutdown");
}

fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

const CONFLICTING: &[(&str, &str)] = &[
    ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=env,x-from-env=1"),
    (
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        "x-tenant=env-metrics,x-from-env=2",
    ),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
    ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "gzip"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9/env"),
    (
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "http://127.0.0.1:9/env/v1/metrics",
    ),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "1"),
    ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "1"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
    ("OTEL_EXPORTER_OTLP_INSECURE", "false"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "1"),
    ("OTEL_METRIC_EXPORT_TIMEOUT", "1"),
    ("OTEL_METRICS_EXPORTER", "none"),
    ("OTEL_SDK_DISABLED", "true"),
    ("OTEL_SERVICE_NAME", "from-env"),
    ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-env,env.only=1"),
    ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"),
];

/// Code beats every variable on the wire, and values given in code are sent
/// exactly as given (`a%20b` stays `a%20b` on both transports). Headers from code
/// are merged over the variable's, so with `env_read` the variable's other header
/// is there too.
fn assert_code_wins(protocol: OtlpProtocol, env: impl Fn(&str) -> Option<String>, env_read: bool) {
    let receiver = receiver(protocol);
    let builder = pipeline(protocol, &receiver)
        .service_name("from-code")
        .otlp_header("x-tenant", "code")
        .otlp_header("x-encoded", "a%20b")
        .otlp_gzip(false)
        .otlp_timeout(Duration::from_secs(5))
        .export_timeout(Duration::from_secs(5))
        .disabled(false);
    push_once(builder, env);
    assert_eq!(receiver.received.requests().len(), 1, "one export arrived");
    assert_eq!(receiver.headers.last("x-tenant"), ["code"]);
    assert_eq!(
        receiver.headers.last("x-encoded"),
        ["a%20b"],
        "not percent-decoded again"
    );
    let from_env: &[&str] = if env_read { &["2"] } else { &[] };
    assert_eq!(receiver.headers.last("x-from-env"), from_env);
    assert_eq!(*receiver.gzipped.lock().unwrap(), 0, "not gzipped");
    if protocol == OtlpProtocol::HttpProtobuf {
        assert_eq!(
            receiver.paths.lock().unwrap().last().map(String::as_str),
            Some("/v1/metrics")
        );
        assert!(receiver.headers.last("content-encoding").is_empty());
    }
    let resource = receiver.received.resource();
    assert!(
        resource.contains(&"service.name=from-code".to_owned()),
        "{resource:?}"
    );
    assert_eq!(
        resource.contains(&"env.only=1".to_owned()),
        env_read,
        "{resource:?}"
    );
}

#[test]
fn code_wins_on_the_wire_over_conflicting_variables_grpc() {
    assert_code_wins(OtlpProtocol::Grpc, env_of(CONFLICTING), true);
}

#[test]
fn code_wins_on_the_wire_over_conflicting_variables_http() {
    assert_code_wins(OtlpProtocol::HttpProtobuf, env_of(CONFLICTING), true);
}

/// Run in a child process with `CONFLICTING` as its real environment:
/// `build_with_env(|_| None)` must not read any of it, nor must the transports.
#[test]
fn build_with_env_is_hermetic_in_a_conflicting_process_environment() {
    if std::env::var_os("OUTCOMETER_HERMETIC_CHILD").is_some() {
        assert_code_wins(OtlpProtocol::Grpc, |_| None, false);
        assert_code_wins(OtlpProtocol::HttpProtobuf, |_| None, false);
        return;
    }
    let mut child = Command::new(std::env::current_exe().expect("test binary"));
    child
        .args([
            "build_with_env_is_hermetic_in_a_conflicting_process_environment",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("OUTCOMETER_HERMETIC_CHILD", "1");
    for (k, v) in CONFLICTING {
        child.env(k, v);
    }
    // And a configuration file that would replace every variable.
    child.env("OTEL_CONFIG_FILE", "/nonexistent/otel.yaml");
    let out = child.output().expect("child test runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Headers and gzip from the variables reach the wire too: values percent-decoded
/// once, the signal-specific variable over the generic one.
fn assert_env_reaches_the_wire(protocol: OtlpProtocol) {
    let receiver = receiver(protocol);
    push_once(
        pipeline(protocol, &receiver),
        env_of(&[
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-generic=1"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
                "x-api-key=s3cr%3Dt,x-space=a%20b",
            ),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "GZIP"),
        ]),
    );
    assert_eq!(receiver.headers.last("x-api-key"), ["s3cr=t"]);
    assert_eq!(receiver.headers.last("x-space"), ["a b"]);
    assert!(
        receiver.headers.last("x-generic").is_empty(),
        "signal-specific wins whole"
    );
    assert_eq!(*receiver.gzipped.lock().unwrap(), 1, "gzipped");
    assert_eq!(receiver.received.requests().len(), 1);
}

#[test]
fn variables_reach_the_wire_grpc() {
    assert_env_reaches_the_wire(OtlpProtocol::Grpc);
}

#[test]
fn variables_reach_the_wire_http() {
    assert_env_reaches_the_wire(OtlpProtocol::HttpProtobuf);
}

#[test]
fn user_agent_names_the_exporter_language_and_version() {
    let receiver = receiver(OtlpProtocol::HttpProtobuf);
    push_once(pipeline(OtlpProtocol::HttpProtobuf, &receiver), |_| None);
    let agent = receiver.headers.last("user-agent");
    assert!(
        agent
            .first()
            .is_some_and(|a| a.starts_with("OTel-OTLP-Exporter-Rust/")),
        "{agent:?}"
    );
}

#[test]
fn generic_endpoint_query_string_is_kept_after_v1_metrics() {
    let receiver = receiver(OtlpProtocol::HttpProtobuf);
    let endpoint = format!("http://{}/?tenant=a", receiver.addr);
    push_once(
        Telemetry::builder()
            .exporters([ExporterKind::Otlp])
            .export_interval(Duration::from_secs(3600)),
        move |k| (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| endpoint.clone()),
    );
    assert_eq!(
        receiver.paths.lock().unwrap().last().map(String::as_str),
        Some("/v1/metrics?tenant=a")
    );
}

#[test]
fn config_file_settings_reach_the_wire() {
    let receiver = receiver(OtlpProtocol::Grpc);
    let dir = outcometer_tests::tls::TempDir::new("config-file");
    let path = dir.write(
        "otel.yaml",
        &format!(
            "file_format: \"1.0\"\nresource:\n  attributes:\n    - name: service.name\n      value: from-file\n\
             meter_provider:\n  readers:\n    - periodic:\n        interval: 3600000\n        exporter:\n          otlp_grpc:\n\
             \x20           endpoint: http://{}\n            compression: gzip\n            headers:\n              - name: x-tenant\n\
             \x20               value: ${{TENANT:-file}}\n",
            receiver.addr
        ),
    );
    let file = path.display().to_string();
    push_once(Telemetry::builder(), move |k| match k {
        "OTEL_CONFIG_FILE" => Some(file.clone()),
        "OTEL_EXPORTER_OTLP_HEADERS" => Some("x-ignored=1".into()),
        _ => None,
    });
    assert_eq!(receiver.headers.last("x-tenant"), ["file"]);
    assert!(
        receiver.headers.last("x-ignored").is_empty(),
        "other variables are ignored"
    );
    assert_eq!(*receiver.gzipped.lock().unwrap(), 1);
    assert!(receiver
        .received
        .resource()
        .contains(&"service.name=from-file".to_owned()));
}
