//! Every `OTEL_*` variable honoured, precedence as documented (code, then
//! signal-specific, then generic, then default), and the specification's error rules: a bad environment
//! value is a warning naming the variable, the value and what is used instead; a
//! bad value in code is a setup error naming the setting. Tests named `row_*` keep
//! rows of the conformance table in `docs/configuration.md` honest.

use std::time::Duration;

use outcometer_exporter::{
    ExporterKind, OtlpConfig, OtlpProtocol, ResolvedConfig, SetupError, Telemetry, TelemetryBuilder,
    TemporalityPreference,
};

fn resolve(pairs: &[(&str, &str)]) -> ResolvedConfig {
    resolve_with(Telemetry::builder(), pairs).expect("environment values never fail resolution")
}

fn resolve_with(builder: TelemetryBuilder, pairs: &[(&str, &str)]) -> Result<ResolvedConfig, SetupError> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    builder.resolve_with(move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
}

fn otlp(c: &ResolvedConfig) -> &OtlpConfig {
    c.otlp.as_ref().expect("OTLP runs")
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
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/etc/client.pem"),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/client.key"),
        ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "Delta"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "15000"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "7000"),
        ("OTEL_EXPORTER_PROMETHEUS_HOST", "0.0.0.0"),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "9999"),
    ]);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
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
    let o = otlp(&c);
    assert_eq!(o.endpoint, "http://collector:4318/v1/metrics");
    assert_eq!(o.protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(o.headers["api-key"], "s3cr=t");
    assert_eq!(o.headers["tenant"], "blue");
    assert_eq!(o.timeout, Duration::from_millis(2500));
    assert!(o.gzip);
    assert_eq!(o.temporality, TemporalityPreference::Delta);
    let path =
        |f: &Option<outcometer_exporter::config::TlsFile>| f.as_ref().map(|f| f.path.display().to_string());
    assert_eq!(path(&o.tls.certificate).as_deref(), Some("/etc/ca.pem"));
    assert_eq!(
        path(&o.tls.client_certificate).as_deref(),
        Some("/etc/client.pem")
    );
    assert_eq!(path(&o.tls.client_key).as_deref(), Some("/etc/client.key"));
    assert_eq!(c.export_interval, Duration::from_secs(15));
    assert_eq!(c.export_timeout, Duration::from_secs(7));
    assert_eq!(c.prometheus_address.as_deref(), Some("0.0.0.0:9999"));
}

#[test]
fn row_endpoint_generic_always_gets_v1_metrics() {
    for (base, want) in [
        ("http://c:4318", "http://c:4318/v1/metrics"),
        ("http://c:4318/", "http://c:4318/v1/metrics"),
        (
            "http://c:4318/mycollector/",
            "http://c:4318/mycollector/v1/metrics",
        ),
        ("http://c:4318/v1/metrics", "http://c:4318/v1/metrics/v1/metrics"),
        ("http://c:4318/?tenant=a", "http://c:4318/v1/metrics?tenant=a"),
    ] {
        let c = resolve(&[("OTEL_EXPORTER_OTLP_ENDPOINT", base)]);
        assert_eq!(otlp(&c).endpoint, want, "{base}");
        let code = resolve_with(Telemetry::builder().otlp_endpoint(base), &[]).unwrap();
        assert_eq!(otlp(&code).endpoint, want, "otlp_endpoint({base})");
    }
}

#[test]
fn row_endpoint_signal_specific_is_used_as_is() {
    for (url, want) in [
        ("http://c:9000/custom/path", "http://c:9000/custom/path"),
        (
            "https://c.example.com/v1/metrics/",
            "https://c.example.com/v1/metrics/",
        ),
        ("http://c:4318", "http://c:4318/"),
        ("http://c:4318/p?tenant=a", "http://c:4318/p?tenant=a"),
    ] {
        let c = resolve(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", url),
        ]);
        assert_eq!(otlp(&c).endpoint, want, "{url}");
        let code = resolve_with(Telemetry::builder().otlp_metrics_endpoint(url), &[]).unwrap();
        assert_eq!(otlp(&code).endpoint, want, "otlp_metrics_endpoint({url})");
    }
}

#[test]
fn row_endpoint_grpc_used_as_given_and_schemeless_follows_insecure() {
    let grpc = |pairs: &[(&str, &str)]| {
        let mut all = vec![("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")];
        all.extend_from_slice(pairs);
        otlp(&resolve(&all)).endpoint.clone()
    };
    assert_eq!(
        grpc(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")]),
        "http://c:4317"
    );
    assert_eq!(grpc(&[]), "http://localhost:4317");
    assert_eq!(
        grpc(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
            ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
        ]),
        "http://collector:4317"
    );
    assert_eq!(
        grpc(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")]),
        "https://collector:4317"
    );
    assert_eq!(
        grpc(&[
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "collector:4317"),
            ("OTEL_EXPORTER_OTLP_INSECURE", "false"),
            ("OTEL_EXPORTER_OTLP_METRICS_INSECURE", "TRUE"),
        ]),
        "http://collector:4317"
    );
    // A scheme wins over insecure.
    assert_eq!(
        grpc(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4317"),
            ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
        ]),
        "https://c:4317"
    );
    let code = resolve_with(
        Telemetry::builder()
            .otlp_protocol(OtlpProtocol::Grpc)
            .otlp_endpoint("collector:4317")
            .otlp_insecure(true),
        &[],
    )
    .unwrap();
    assert_eq!(otlp(&code).endpoint, "http://collector:4317");
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
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/generic.pem"),
        ("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", "/specific.pem"),
    ]);
    let o = otlp(&c);
    assert_eq!(o.endpoint, "http://specific:9000/custom/path");
    assert_eq!(o.protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(o.timeout, Duration::from_secs(2));
    assert!(!o.gzip);
    assert_eq!(o.headers.len(), 1);
    assert_eq!(o.headers["b"], "specific");
    assert_eq!(
        o.tls.certificate.as_ref().unwrap().path.to_str(),
        Some("/specific.pem")
    );
}

#[test]
fn code_beats_every_variable() {
    let builder = Telemetry::builder()
        .service_name("from-code")
        .exporters([ExporterKind::Otlp, ExporterKind::Prometheus])
        .otlp_endpoint("http://code:4318")
        .otlp_protocol(OtlpProtocol::Grpc)
        .otlp_timeout(Duration::from_millis(42))
        .otlp_gzip(false)
        .otlp_header("a", "code")
        .otlp_certificate("/code/ca.pem")
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
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://env:1"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "9"),
            ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "a=env"),
            ("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", "/env/ca.pem"),
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
    assert_eq!(c.exporters, [ExporterKind::Otlp, ExporterKind::Prometheus]);
    let o = otlp(&c);
    assert_eq!(o.endpoint, "http://code:4318");
    assert_eq!(o.protocol, OtlpProtocol::Grpc);
    assert_eq!(o.timeout, Duration::from_millis(42));
    assert!(!o.gzip);
    assert_eq!(o.headers["a"], "code");
    assert_eq!(
        o.tls.certificate.as_ref().unwrap().path.to_str(),
        Some("/code/ca.pem")
    );
    assert_eq!(o.temporality, TemporalityPreference::Cumulative);
    assert_eq!(c.export_interval, Duration::from_millis(500));
    assert_eq!(c.export_timeout, Duration::from_millis(600));
    assert_eq!(c.prometheus_address.as_deref(), Some("127.0.0.1:0"));
}

#[test]
fn service_name_precedence_and_instance_id() {
    let c = resolve(&[(
        "OTEL_RESOURCE_ATTRIBUTES",
        "service.name=from-attrs,service.instance.id=pod-7",
    )]);
    assert_eq!(c.resource["service.name"], "from-attrs");
    assert_eq!(c.resource["service.instance.id"], "pod-7");
    let c = resolve(&[
        ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"),
        ("OTEL_SERVICE_NAME", "svc"),
    ]);
    assert_eq!(c.resource["service.name"], "svc");
    let (a, b) = (resolve(&[]), resolve(&[]));
    assert_ne!(
        a.resource["service.instance.id"], b.resource["service.instance.id"],
        "unique per pipeline"
    );
}

#[test]
fn row_sdk_disabled_and_exporter_none_mean_no_exporters() {
    assert!(resolve(&[("OTEL_SDK_DISABLED", "TRUE")]).exporters.is_empty());
    assert!(resolve(&[("OTEL_METRICS_EXPORTER", "none")]).exporters.is_empty());
    assert!(resolve(&[("OTEL_METRICS_EXPORTER", "NONE")]).exporters.is_empty());
    let telemetry = Telemetry::builder()
        .build_with_env(|k| (k == "OTEL_SDK_DISABLED").then(|| "true".into()))
        .unwrap();
    assert!(telemetry.config().disabled);
    assert!(telemetry.prometheus_address().is_none());
}

#[test]
fn row_boolean_true_only_for_case_insensitive_true() {
    for (value, disabled, warned) in [
        ("true", true, false),
        ("True", true, false),
        ("TRUE", true, false),
        ("false", false, false),
        ("FALSE", false, false),
        ("1", false, true),
        ("yes", false, true),
        ("on", false, true),
    ] {
        let c = resolve(&[("OTEL_SDK_DISABLED", value)]);
        assert_eq!(c.disabled, disabled, "{value}");
        assert_eq!(!c.warnings.is_empty(), warned, "{value}: {:?}", c.warnings);
        if warned {
            let w = &c.warnings[0];
            assert_eq!(w.variable, "OTEL_SDK_DISABLED");
            assert!(w.message.contains(value) && w.message.contains("false"), "{w}");
        }
    }
}

#[test]
fn row_enum_values_are_case_insensitive() {
    let c = resolve(&[
        ("OTEL_METRICS_EXPORTER", "OTLP,Prometheus"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "GRPC"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "GZIP"),
        ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "LowMemory"),
    ]);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.exporters, [ExporterKind::Otlp, ExporterKind::Prometheus]);
    let o = otlp(&c);
    assert_eq!(o.protocol, OtlpProtocol::Grpc);
    assert!(o.gzip);
    assert_eq!(o.temporality, TemporalityPreference::LowMemory);
    let c = resolve(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "HTTP/PROTOBUF")]);
    assert_eq!(otlp(&c).protocol, OtlpProtocol::HttpProtobuf);
}

/// Each bad environment value: a warning naming the variable, showing the value,
/// saying what is used instead; resolution goes on with the fallback.
#[test]
fn row_bad_environment_values_are_warnings_with_a_fallback() {
    // (variables, the warned variable, the value shown, what is used instead)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str, &'a str);
    let cases: &[Case] = &[
        (
            &[("OTEL_METRICS_EXPORTER", "logging")],
            "OTEL_METRICS_EXPORTER",
            "logging",
            "console",
        ),
        (
            &[("OTEL_METRICS_EXPORTER", "zipkin")],
            "OTEL_METRICS_EXPORTER",
            "zipkin",
            "default",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "http/json",
            "http/protobuf",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "udp"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ],
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
            "udp",
            "grpc from OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")],
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "localhost:4318",
            "http://localhost:4318/v1/metrics",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://")],
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://",
            "http://localhost:4318/v1/metrics",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://h:99999"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://g:4318"),
            ],
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "http://h:99999",
            "http://g:4318/v1/metrics from OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")],
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "10s",
            "10000ms",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "-1"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
            ],
            "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
            "-1",
            "500ms from OTEL_EXPORTER_OTLP_TIMEOUT",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")],
            "OTEL_EXPORTER_OTLP_COMPRESSION",
            "zstd",
            "none",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "sometimes")],
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
            "sometimes",
            "cumulative",
        ),
        (
            &[("OTEL_METRIC_EXPORT_INTERVAL", "fast")],
            "OTEL_METRIC_EXPORT_INTERVAL",
            "fast",
            "60000ms",
        ),
        (
            &[("OTEL_METRIC_EXPORT_INTERVAL", "0")],
            "OTEL_METRIC_EXPORT_INTERVAL",
            "0",
            "60000ms",
        ),
        (
            &[("OTEL_METRIC_EXPORT_TIMEOUT", "1.5")],
            "OTEL_METRIC_EXPORT_TIMEOUT",
            "1.5",
            "30000ms",
        ),
        (
            &[("OTEL_METRIC_EXPORT_TIMEOUT", "-5")],
            "OTEL_METRIC_EXPORT_TIMEOUT",
            "-5",
            "30000ms",
        ),
        (
            &[
                ("OTEL_METRICS_EXPORTER", "prometheus"),
                ("OTEL_EXPORTER_PROMETHEUS_PORT", "70000"),
            ],
            "OTEL_EXPORTER_PROMETHEUS_PORT",
            "70000",
            "9464",
        ),
        (
            &[
                ("OTEL_METRICS_EXPORTER", "prometheus"),
                ("OTEL_EXPORTER_PROMETHEUS_HOST", "a/b"),
            ],
            "OTEL_EXPORTER_PROMETHEUS_HOST",
            "a/b",
            "localhost",
        ),
        (
            &[("OTEL_RESOURCE_ATTRIBUTES", "=x")],
            "OTEL_RESOURCE_ATTRIBUTES",
            "entry 1",
            "no attributes",
        ),
    ];
    for (pairs, var, value, instead) in cases {
        let c = resolve(pairs);
        let w = c
            .warnings
            .iter()
            .find(|w| w.variable == *var)
            .unwrap_or_else(|| panic!("{pairs:?}: a warning for {var}, got {:?}", c.warnings));
        assert!(w.message.contains(var), "{w} names {var}");
        assert!(w.message.contains(value), "{w} shows {value}");
        assert!(w.message.contains(instead), "{w} says it uses {instead}");
    }
    // The fallbacks are really used.
    let c = resolve(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "-5"),
    ]);
    assert_eq!(otlp(&c).protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(c.export_timeout, Duration::from_secs(30));
    let c = resolve(&[("OTEL_METRICS_EXPORTER", "otlp,zipkin,prometheus")]);
    assert_eq!(c.exporters, [ExporterKind::Otlp, ExporterKind::Prometheus]);
}

#[test]
fn row_resource_attributes_discarded_whole_on_error() {
    let c = resolve(&[("OTEL_RESOURCE_ATTRIBUTES", "team=a,broken,zone=b")]);
    assert!(!c.resource.contains_key("team") && !c.resource.contains_key("zone"));
    assert_eq!(c.warnings.len(), 1);
}

#[test]
fn row_timeout_zero_means_no_limit() {
    let c = resolve(&[
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "0"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "0"),
    ]);
    assert!(c.warnings.is_empty());
    assert_eq!(otlp(&c).timeout, Duration::ZERO);
    assert_eq!(c.export_timeout, Duration::ZERO);
}

#[test]
fn header_values_are_never_shown() {
    const SECRET: &str = "hunter2-SECRET";
    let c = resolve(&[(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "api-key=hunter2-SECRET,bad key=hunter2-SECRET,x=%zzhunter2-SECRET,hunter2-SECRET,ok=1",
    )]);
    assert_eq!(otlp(&c).headers.len(), 2, "the valid entries are kept");
    assert_eq!(c.warnings.len(), 3, "{:?}", c.warnings);
    for w in &c.warnings {
        assert!(!w.message.contains(SECRET), "{w}");
        assert!(w.message.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{w}");
    }
    assert!(!format!("{c:?}").contains(SECRET), "Debug hides header values");
    let err = resolve_with(Telemetry::builder().otlp_header("bad key", SECRET), &[]).unwrap_err();
    assert!(
        err.to_string().contains("otlp_header") && !err.to_string().contains(SECRET),
        "{err}"
    );
}

#[test]
fn bad_code_values_are_setup_errors() {
    let err = resolve_with(Telemetry::builder().otlp_endpoint("collector:4317"), &[]).unwrap_err();
    assert!(err.to_string().contains("otlp_endpoint"), "{err}");
    let err = resolve_with(Telemetry::builder().otlp_metrics_endpoint("http://h:99999"), &[]).unwrap_err();
    assert!(err.to_string().contains("otlp_metrics_endpoint"), "{err}");
    let err = resolve_with(Telemetry::builder().export_interval(Duration::ZERO), &[]).unwrap_err();
    assert!(err.to_string().contains("export_interval"), "{err}");
    let err = resolve_with(Telemetry::builder().otlp_header("bad header", "v"), &[]).unwrap_err();
    assert!(err.to_string().contains("otlp_header"), "{err}");
    let err = resolve_with(
        Telemetry::builder()
            .exporters([ExporterKind::Prometheus])
            .prometheus_host("a/b"),
        &[],
    )
    .unwrap_err();
    assert!(err.to_string().contains("prometheus_host"), "{err}");
}

#[test]
fn row_settings_of_exporters_not_started_are_not_validated() {
    let c = resolve(&[
        ("OTEL_METRICS_EXPORTER", "otlp"),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "99999"),
        ("OTEL_EXPORTER_PROMETHEUS_HOST", "a/b"),
    ]);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.prometheus_address, None);
    // Spans push over OTLP by default, so the generic OTLP variables are unused
    // only when traces are off too.
    let c = resolve(&[
        ("OTEL_METRICS_EXPORTER", "prometheus"),
        ("OTEL_TRACES_EXPORTER", "none"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "nonsense"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
    ]);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert!(c.otlp.is_none());
    // And a pipeline with no pull server starts whatever the port variable says.
    let telemetry = Telemetry::builder()
        .exporters([ExporterKind::Console])
        .build_with_env(|k| (k == "OTEL_EXPORTER_PROMETHEUS_PORT").then(|| "99999".into()))
        .expect("starts");
    drop(telemetry);
}

#[test]
fn row_add_exporter_combines_with_the_environment() {
    let always_prometheus = || Telemetry::builder().add_exporter(ExporterKind::Prometheus);
    let exporters = |b: TelemetryBuilder, pairs: &[(&str, &str)]| resolve_with(b, pairs).unwrap().exporters;
    assert_eq!(
        exporters(always_prometheus(), &[]),
        [ExporterKind::Otlp, ExporterKind::Prometheus],
        "unset: the specification's default (otlp), plus ours"
    );
    assert_eq!(
        exporters(always_prometheus(), &[("OTEL_METRICS_EXPORTER", "none")]),
        [ExporterKind::Prometheus],
        "none turns off what the environment controls"
    );
    assert_eq!(
        exporters(always_prometheus(), &[("OTEL_METRICS_EXPORTER", "console")]),
        [ExporterKind::Prometheus, ExporterKind::Console]
    );
    let push_if_asked = || always_prometheus().default_exporters([]);
    assert_eq!(exporters(push_if_asked(), &[]), [ExporterKind::Prometheus]);
    assert_eq!(
        exporters(push_if_asked(), &[("OTEL_METRICS_EXPORTER", "otlp")]),
        [ExporterKind::Otlp, ExporterKind::Prometheus]
    );
    assert_eq!(
        exporters(
            always_prometheus().exporters([ExporterKind::Console]),
            &[("OTEL_METRICS_EXPORTER", "otlp")]
        ),
        [ExporterKind::Console],
        "exporters() replaces everything"
    );
    assert!(
        exporters(always_prometheus(), &[("OTEL_SDK_DISABLED", "true")]).is_empty(),
        "disabled is disabled"
    );
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

#[test]
fn row_empty_value_is_unset() {
    let c = resolve(&[
        ("OTEL_SDK_DISABLED", ""),
        ("OTEL_METRICS_EXPORTER", "  "),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", ""),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
        ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", ""),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "1234"),
    ]);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert!(!c.disabled);
    assert_eq!(c.exporters, [ExporterKind::Otlp]);
    assert_eq!(otlp(&c).endpoint, "http://generic:4318/v1/metrics");
    assert_eq!(otlp(&c).timeout, Duration::from_millis(1234));
}
