//! `OTEL_CONFIG_FILE`: the sample file in docs/ resolves; substitution follows the
//! data model; other `OTEL_*` variables are ignored when a file is used; code still
//! wins; every unknown or unsupported key, bad value and bad substitution is an
//! error naming it.

use std::path::PathBuf;
use std::time::Duration;

use outcometer_exporter::{
    ExporterKind, OtlpProtocol, ResolvedConfig, SetupError, Telemetry, TelemetryBuilder,
};

fn sample() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/otel-sdk-config.yaml"
    ))
}

fn resolve(builder: TelemetryBuilder, pairs: &[(&str, &str)]) -> Result<ResolvedConfig, SetupError> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    builder.resolve_with(move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
}

/// Writes `yaml` to a fresh file; the path.
fn file(yaml: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "outcometer-config-{}-{}.yaml",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn row_config_file_the_sample_resolves_with_its_defaults() {
    let path = sample().display().to_string();
    let c = resolve(Telemetry::builder(), &[("OTEL_CONFIG_FILE", &path)]).expect("the sample is valid");
    assert_eq!(c.config_file.as_deref(), Some(sample().as_path()));
    assert!(!c.disabled);
    assert_eq!(c.exporters, [ExporterKind::Otlp, ExporterKind::Prometheus]);
    assert_eq!(c.resource["service.name"], "checkout");
    assert_eq!(c.resource["deployment.environment"], "dev");
    let o = c.otlp.as_ref().unwrap();
    assert_eq!(o.protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(o.endpoint, "http://localhost:4318/v1/metrics");
    assert_eq!(o.headers["x-tenant"], "blue");
    assert!(o.gzip);
    assert_eq!(o.timeout, Duration::from_secs(10));
    assert!(o.tls.certificate.is_none());
    assert_eq!(c.export_interval, Duration::from_secs(60));
    assert_eq!(c.export_timeout, Duration::from_secs(30));
    assert_eq!(c.prometheus_address.as_deref(), Some("localhost:9464"));
    assert_eq!(c.cardinality_limits, [("*".to_owned(), 2000)]);
    assert_eq!(c.traces.exporter, outcometer_exporter::TracesExporter::Otlp);
    assert_eq!(
        c.traces.sampler,
        outcometer_exporter::TraceSampler::ParentBasedAlwaysOn
    );
    assert_eq!(c.traces.batch, outcometer_exporter::SpanBatch::default());
    let t = c.traces.otlp.as_ref().unwrap();
    assert_eq!(t.endpoint, "http://localhost:4318/v1/traces");
    assert_eq!(t.headers["x-tenant"], "blue");
    assert!(t.gzip);
}

#[test]
fn row_config_file_substitutes_variables_it_names_and_ignores_the_others() {
    let path = sample().display().to_string();
    let c = resolve(
        Telemetry::builder(),
        &[
            ("OTEL_CONFIG_FILE", &path),
            // Referenced by the file: used.
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s3cr%3Dt"),
            ("OTEL_EXPORTER_PROMETHEUS_PORT", "9999"),
            ("TENANT", "green"),
            // Not referenced: ignored, as the specification requires.
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://ignored:1"),
            ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta"),
        ],
    )
    .unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.exporters, [ExporterKind::Otlp, ExporterKind::Prometheus]);
    let o = c.otlp.as_ref().unwrap();
    assert_eq!(o.protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(o.endpoint, "https://collector:4318/v1/metrics");
    assert_eq!(o.timeout, Duration::from_millis(2500));
    assert_eq!(o.headers["api-key"], "s3cr=t");
    assert_eq!(o.headers["x-tenant"], "green");
    assert_eq!(
        o.temporality,
        outcometer_exporter::TemporalityPreference::Cumulative
    );
    assert_eq!(c.prometheus_address.as_deref(), Some("localhost:9999"));
}

#[test]
fn code_still_wins_over_the_file() {
    let c = resolve(
        Telemetry::builder()
            .config_file(sample())
            .otlp_gzip(false)
            .service_name("from-code")
            .add_exporter(ExporterKind::Console),
        &[],
    )
    .unwrap();
    assert!(!c.otlp.as_ref().unwrap().gzip);
    assert_eq!(c.resource["service.name"], "from-code");
    assert_eq!(
        c.exporters,
        [
            ExporterKind::Otlp,
            ExporterKind::Prometheus,
            ExporterKind::Console
        ]
    );
}

#[test]
fn grpc_pull_only_and_disabled_files() {
    let grpc = file(
        "file_format: '1.0'\nmeter_provider:\n  readers:\n    - periodic:\n        exporter:\n          otlp_grpc:\n            endpoint: collector:4317\n            tls:\n              insecure: true\n",
    );
    let c = resolve(Telemetry::builder().config_file(&grpc), &[]).unwrap();
    let o = c.otlp.as_ref().unwrap();
    assert_eq!(
        (o.protocol, o.endpoint.as_str()),
        (OtlpProtocol::Grpc, "http://collector:4317")
    );
    let none = file("file_format: '1.0'\n");
    assert!(resolve(Telemetry::builder().config_file(&none), &[])
        .unwrap()
        .exporters
        .is_empty());
    let off = file("file_format: '1.0'\ndisabled: true\nmeter_provider:\n  readers:\n    - pull:\n        exporter:\n          prometheus/development:\n");
    let c = resolve(Telemetry::builder().config_file(&off), &[]).unwrap();
    assert!(c.disabled && c.exporters.is_empty());
}

#[test]
fn row_config_file_unknown_keys_and_bad_values_are_errors_naming_them() {
    let reader = |exporter: &str| {
        format!(
            "file_format: '1.0'\nmeter_provider:\n  readers:\n    - periodic:\n        exporter:\n{exporter}"
        )
    };
    let cases: Vec<(String, &str)> = vec![
        ("file_format: '1.0'\nlogger_provider: {}\n".into(), "`logger_provider` is not a key"),
        (
            "file_format: '1.0'\ntracer_provider:\n  limits: {}\n".into(),
            "`tracer_provider.limits` is not a key",
        ),
        ("disabled: true\n".into(), "`file_format` is required"),
        ("file_format: '2.0'\n".into(), "not supported (1.x is)"),
        ("file_format: '1.0'\ndisabled: maybe\n".into(), "`disabled`"),
        ("file_format: '1.0'\nresource:\n  schema_url: x\n".into(), "`resource.schema_url`"),
        (
            reader("          otlp_http:\n            compresion: gzip\n"),
            "`meter_provider.readers[0].periodic.exporter.otlp_http.compresion` is not a key",
        ),
        (reader("          otlp_http:\n            compression: zstd\n"), "compression` = \"zstd\""),
        (reader("          otlp_http:\n            encoding: json\n"), "encoding"),
        (reader("          otlp_http:\n            endpoint: collector:4318\n"), "endpoint` is invalid"),
        (reader("          otlp_http:\n            timeout: soon\n"), "timeout` = \"soon\""),
        (reader("          otlp_http:\n            max_request_size: 1\n"), "max_request_size"),
        (reader("          zipkin: {}\n"), "`meter_provider.readers[0].periodic.exporter.zipkin`"),
        (reader("          otlp_http:\n            endpoint: ${BAD:?x}\n"), "not a valid substitution"),
        (
            reader("          otlp_http:\n            headers:\n              - name: bad key\n                value: TOPSECRET\n"),
            "header `bad key` is invalid",
        ),
        (
            "file_format: '1.0'\nmeter_provider:\n  views:\n    - selector:\n        instrument_name: x\n      stream:\n        aggregation_cardinality_limit: 0\n"
                .into(),
            "aggregation_cardinality_limit` must be a number > 0",
        ),
        ("file_format: '1.0'\n  bad: [yaml\n".into(), "not valid YAML"),
    ];
    for (yaml, expected) in cases {
        let path = file(&yaml);
        let err = resolve(
            Telemetry::builder(),
            &[("OTEL_CONFIG_FILE", &path.display().to_string())],
        )
        .expect_err(&yaml);
        let message = err.to_string();
        assert!(matches!(err, SetupError::ConfigFile { .. }), "{err:?}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(
            message.contains(expected),
            "{yaml}\n→ {message}\nwants {expected}"
        );
        assert!(!message.contains("TOPSECRET"), "{message}");
    }
    let err = resolve(
        Telemetry::builder(),
        &[("OTEL_CONFIG_FILE", "/nonexistent/otel.yaml")],
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("cannot read") && err.to_string().contains("OTEL_CONFIG_FILE"),
        "{err}"
    );
}
