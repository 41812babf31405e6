//! The traces variables: `OTEL_TRACES_EXPORTER`, the `OTEL_EXPORTER_OTLP_TRACES_*`
//! family with the generic fallback, the sampler and the batch span processor,
//! with the same precedence (code, then signal-specific, then generic, then
//! default) and error rules as metrics. Tests named `row_*` keep the traces rows
//! of the conformance table in `docs/configuration.md` honest.

use std::path::PathBuf;
use std::time::Duration;

use outcometer_exporter::{
    OtlpConfig, OtlpProtocol, ResolvedConfig, SetupError, SpanBatch, Telemetry, TelemetryBuilder,
    TraceSampler, TracesExporter,
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

fn traces_otlp(c: &ResolvedConfig) -> &OtlpConfig {
    c.traces.otlp.as_ref().expect("spans pushed over OTLP")
}

fn warning<'c>(c: &'c ResolvedConfig, var: &str) -> &'c str {
    &c.warnings
        .iter()
        .find(|w| w.variable == var)
        .unwrap_or_else(|| panic!("a warning for {var}, got {:?}", c.warnings))
        .message
}

#[test]
fn row_traces_defaults_follow_the_specification() {
    let c = resolve(&[]);
    assert_eq!(c.traces.exporter, TracesExporter::Otlp);
    assert_eq!(c.traces.sampler, TraceSampler::ParentBasedAlwaysOn);
    assert_eq!(c.traces.batch, SpanBatch::default());
    assert_eq!(c.traces.batch.schedule_delay, Duration::from_millis(5000));
    assert_eq!(c.traces.batch.export_timeout, Duration::from_millis(30_000));
    assert_eq!(c.traces.batch.max_queue_size, 2048);
    assert_eq!(c.traces.batch.max_export_batch_size, 512);
    let otlp = traces_otlp(&c);
    assert_eq!(otlp.endpoint, "http://localhost:4318/v1/traces");
    assert_eq!(otlp.protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(otlp.timeout, Duration::from_secs(10));
    assert!(!otlp.gzip);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn row_traces_exporter_otlp_console_none() {
    for (value, want) in [
        ("otlp", TracesExporter::Otlp),
        ("CONSOLE", TracesExporter::Console),
        ("none", TracesExporter::None),
    ] {
        let c = resolve(&[("OTEL_TRACES_EXPORTER", value)]);
        assert_eq!(c.traces.exporter, want, "{value}");
        assert_eq!(c.traces.otlp.is_some(), want == TracesExporter::Otlp, "{value}");
        assert!(c.warnings.is_empty(), "{value}: {:?}", c.warnings);
    }
    let c = resolve(&[("OTEL_SDK_DISABLED", "true")]);
    assert_eq!(
        c.traces.exporter,
        TracesExporter::None,
        "disabled turns traces off too"
    );
    let c = resolve(&[("OTEL_TRACES_EXPORTER", "zipkin")]);
    assert_eq!(c.traces.exporter, TracesExporter::Otlp);
    assert!(
        warning(&c, "OTEL_TRACES_EXPORTER").contains("`zipkin`"),
        "{:?}",
        c.warnings
    );
    let c = resolve(&[("OTEL_TRACES_EXPORTER", "console,otlp")]);
    assert_eq!(c.traces.exporter, TracesExporter::Console);
    assert!(warning(&c, "OTEL_TRACES_EXPORTER").contains("one traces exporter at a time"));
    // What unset means can be set in code; the variable still wins over it.
    let off = Telemetry::builder().default_traces_exporter(TracesExporter::None);
    assert_eq!(
        resolve_with(off.clone(), &[]).unwrap().traces.exporter,
        TracesExporter::None
    );
    assert_eq!(
        resolve_with(off, &[("OTEL_TRACES_EXPORTER", "otlp")])
            .unwrap()
            .traces
            .exporter,
        TracesExporter::Otlp
    );
}

#[test]
fn row_traces_endpoint_generic_gets_v1_traces_signal_specific_is_used_as_is() {
    for (base, want) in [
        ("http://c:4318", "http://c:4318/v1/traces"),
        (
            "http://c:4318/mycollector/",
            "http://c:4318/mycollector/v1/traces",
        ),
        ("http://c:4318/?tenant=a", "http://c:4318/v1/traces?tenant=a"),
    ] {
        let c = resolve(&[("OTEL_EXPORTER_OTLP_ENDPOINT", base)]);
        assert_eq!(traces_otlp(&c).endpoint, want, "{base}");
        assert_eq!(
            c.otlp.as_ref().unwrap().endpoint,
            want.replace("v1/traces", "v1/metrics"),
            "one base URL, a path per signal"
        );
        let code = resolve_with(Telemetry::builder().otlp_endpoint(base), &[]).unwrap();
        assert_eq!(traces_otlp(&code).endpoint, want, "otlp_endpoint({base})");
    }
    for (url, want) in [
        ("http://c:9000/custom/path", "http://c:9000/custom/path"),
        ("http://c:4318", "http://c:4318/"),
    ] {
        let c = resolve(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url),
        ]);
        assert_eq!(traces_otlp(&c).endpoint, want, "{url}");
        assert_eq!(
            c.otlp.as_ref().unwrap().endpoint,
            "http://generic:4318/v1/metrics",
            "the traces variable is for traces only"
        );
        let code = resolve_with(Telemetry::builder().otlp_traces_endpoint(url), &[]).unwrap();
        assert_eq!(traces_otlp(&code).endpoint, want, "otlp_traces_endpoint({url})");
    }
    // The metrics-only URL in code does not send spans to the metrics path.
    let code = resolve_with(
        Telemetry::builder().otlp_metrics_endpoint("http://m:1/x"),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318")],
    )
    .unwrap();
    assert_eq!(traces_otlp(&code).endpoint, "http://generic:4318/v1/traces");
    // gRPC: used as given; schemeless follows the traces insecure variable.
    let c = resolve(&[
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4317"),
        ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "true"),
    ]);
    assert_eq!(traces_otlp(&c).endpoint, "http://collector:4317");
    assert_eq!(c.otlp.as_ref().unwrap().protocol, OtlpProtocol::HttpProtobuf);
}

#[test]
fn row_traces_signal_specific_variables_beat_generic() {
    let generic = [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "tenant=generic"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/generic/ca.pem"),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/generic/client.pem"),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/generic/client.key"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "false"),
    ];
    let c = resolve(&generic);
    let t = traces_otlp(&c);
    assert_eq!(t.headers["tenant"], "generic");
    assert_eq!(t.timeout, Duration::from_millis(1000));
    assert_eq!(
        t.tls.certificate.as_ref().unwrap().path,
        PathBuf::from("/generic/ca.pem")
    );

    let mut all = generic.to_vec();
    all.extend([
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "spans:4317"),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "tenant=traces%20only"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "2500"),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/traces/ca.pem"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
            "/traces/client.pem",
        ),
        ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "/traces/client.key"),
        ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "true"),
        // Metrics-specific variables never reach spans.
        ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "tenant=metrics"),
        ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "9000"),
    ]);
    let c = resolve(&all);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let t = traces_otlp(&c);
    assert_eq!(t.protocol, OtlpProtocol::Grpc);
    assert_eq!(
        t.endpoint, "http://spans:4317",
        "schemeless, insecure from the traces variable"
    );
    assert_eq!(t.headers["tenant"], "traces only");
    assert_eq!(t.timeout, Duration::from_millis(2500));
    assert!(t.gzip);
    let path = |f: &Option<outcometer_exporter::config::TlsFile>| f.as_ref().unwrap().path.clone();
    assert_eq!(path(&t.tls.certificate), PathBuf::from("/traces/ca.pem"));
    assert_eq!(
        path(&t.tls.client_certificate),
        PathBuf::from("/traces/client.pem")
    );
    assert_eq!(path(&t.tls.client_key), PathBuf::from("/traces/client.key"));
    let m = c.otlp.as_ref().unwrap();
    assert_eq!(m.headers["tenant"], "metrics");
    assert_eq!(
        m.protocol,
        OtlpProtocol::HttpProtobuf,
        "traces variables are for traces only"
    );
    assert!(!m.gzip);
}

#[test]
fn row_traces_code_beats_every_variable() {
    let env = [
        ("OTEL_TRACES_EXPORTER", "none"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://env:1/x"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "tenant=env"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "100"),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip"),
        ("OTEL_TRACES_SAMPLER", "always_off"),
        ("OTEL_BSP_SCHEDULE_DELAY", "1"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "2"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "3"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "3"),
    ];
    let builder = Telemetry::builder()
        .traces_exporter(TracesExporter::Otlp)
        .otlp_traces_endpoint("http://code:4318/spans")
        .otlp_protocol(OtlpProtocol::HttpProtobuf)
        .otlp_header("tenant", "code")
        .otlp_timeout(Duration::from_secs(7))
        .otlp_gzip(false)
        .traces_sampler(TraceSampler::TraceIdRatio(0.25))
        .span_batch_schedule_delay(Duration::from_millis(700))
        .span_batch_export_timeout(Duration::from_millis(800))
        .span_batch_max_queue_size(100_usize)
        .span_batch_max_export_batch_size(10_usize);
    let c = resolve_with(builder, &env).unwrap();
    assert_eq!(c.traces.exporter, TracesExporter::Otlp);
    let t = traces_otlp(&c);
    assert_eq!(t.endpoint, "http://code:4318/spans");
    assert_eq!(t.protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(t.headers["tenant"], "code");
    assert_eq!(t.timeout, Duration::from_secs(7));
    assert!(!t.gzip);
    assert_eq!(c.traces.sampler, TraceSampler::TraceIdRatio(0.25));
    assert_eq!(c.traces.batch.schedule_delay, Duration::from_millis(700));
    assert_eq!(c.traces.batch.export_timeout, Duration::from_millis(800));
    assert_eq!(c.traces.batch.max_queue_size, 100);
    assert_eq!(c.traces.batch.max_export_batch_size, 10);
}

#[test]
fn row_traces_sampler_and_arg() {
    for (name, arg, want) in [
        ("always_on", None, TraceSampler::AlwaysOn),
        ("always_off", None, TraceSampler::AlwaysOff),
        ("traceidratio", Some("0.5"), TraceSampler::TraceIdRatio(0.5)),
        ("TraceIdRatio", None, TraceSampler::TraceIdRatio(1.0)),
        ("parentbased_always_on", None, TraceSampler::ParentBasedAlwaysOn),
        (
            "parentbased_always_off",
            Some("0.1"),
            TraceSampler::ParentBasedAlwaysOff,
        ),
        (
            "parentbased_traceidratio",
            Some("0.125"),
            TraceSampler::ParentBasedTraceIdRatio(0.125),
        ),
    ] {
        let mut env = vec![("OTEL_TRACES_SAMPLER", name)];
        env.extend(arg.map(|a| ("OTEL_TRACES_SAMPLER_ARG", a)));
        let c = resolve(&env);
        assert_eq!(c.traces.sampler, want, "{name} {arg:?}");
        assert!(c.warnings.is_empty(), "{name}: {:?}", c.warnings);
    }
}

#[test]
fn row_traces_bad_values_are_warnings_with_a_fallback() {
    // (variables, the warned variable, what the message says is used instead)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (
            &[("OTEL_TRACES_SAMPLER", "jaeger_remote")],
            "OTEL_TRACES_SAMPLER",
            "parentbased_always_on",
        ),
        (
            &[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
            ],
            "OTEL_TRACES_SAMPLER_ARG",
            "1.0",
        ),
        (
            &[("OTEL_BSP_SCHEDULE_DELAY", "0")],
            "OTEL_BSP_SCHEDULE_DELAY",
            "5000ms",
        ),
        (
            &[("OTEL_BSP_EXPORT_TIMEOUT", "-1")],
            "OTEL_BSP_EXPORT_TIMEOUT",
            "30000ms",
        ),
        (
            &[("OTEL_BSP_MAX_QUEUE_SIZE", "lots")],
            "OTEL_BSP_MAX_QUEUE_SIZE",
            "2048",
        ),
        (
            &[("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0")],
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            "512",
        ),
        (
            &[
                ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
                ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "200"),
            ],
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            "using 100 instead",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")],
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "http/protobuf",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "localhost:4318")],
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://localhost:4318/v1/traces",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "soon")],
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "10000ms",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "zstd")],
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
            "none",
        ),
    ];
    for (pairs, var, instead) in cases {
        let c = resolve(pairs);
        let message = warning(&c, var);
        assert!(message.starts_with(var), "{message}");
        assert!(message.contains(instead), "{pairs:?}: {message}");
    }
    let c = resolve(&[
        ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "200"),
    ]);
    assert_eq!(c.traces.batch.max_export_batch_size, 100);
    // A generic variable both signals read is warned about once.
    let c = resolve(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "udp")]);
    let count = c
        .warnings
        .iter()
        .filter(|w| w.variable == "OTEL_EXPORTER_OTLP_PROTOCOL")
        .count();
    assert_eq!(count, 1, "{:?}", c.warnings);
}

#[test]
fn row_bsp_variables_are_honoured() {
    let c = resolve(&[
        ("OTEL_BSP_SCHEDULE_DELAY", "250"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "0"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "64"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "16"),
    ]);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.traces.batch.schedule_delay, Duration::from_millis(250));
    assert_eq!(c.traces.batch.export_timeout, Duration::ZERO, "0 = no limit");
    assert_eq!(c.traces.batch.max_queue_size, 64);
    assert_eq!(c.traces.batch.max_export_batch_size, 16);
    // The default batch size never exceeds a smaller queue.
    let c = resolve(&[("OTEL_BSP_MAX_QUEUE_SIZE", "64")]);
    assert_eq!(c.traces.batch.max_export_batch_size, 64);
}

#[test]
fn row_traces_bad_code_values_are_setup_errors() {
    let cases: Vec<(TelemetryBuilder, &str)> = vec![
        (
            Telemetry::builder().traces_sampler(TraceSampler::TraceIdRatio(1.5)),
            "traces_sampler",
        ),
        (
            Telemetry::builder().traces_sampler(TraceSampler::ParentBasedTraceIdRatio(f64::NAN)),
            "traces_sampler",
        ),
        (
            Telemetry::builder().span_batch_schedule_delay(Duration::ZERO),
            "span_batch_schedule_delay",
        ),
        (
            Telemetry::builder().span_batch_max_queue_size(0_usize),
            "span_batch_max_queue_size",
        ),
        (
            Telemetry::builder()
                .span_batch_max_queue_size(10_usize)
                .span_batch_max_export_batch_size(11_usize),
            "span_batch_max_export_batch_size",
        ),
        (
            Telemetry::builder().otlp_traces_endpoint("collector:4318"),
            "otlp_traces_endpoint",
        ),
    ];
    for (builder, setting) in cases {
        let err = resolve_with(builder, &[]).unwrap_err();
        assert!(matches!(err, SetupError::InvalidSetting { .. }), "{err:?}");
        assert!(err.to_string().starts_with(setting), "{err}");
    }
    // Settings of a traces exporter that does not run are not read.
    let c = resolve_with(
        Telemetry::builder().traces_exporter(TracesExporter::None),
        &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "nonsense")],
    )
    .unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

fn config_file(name: &str, yaml: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("outcometer-env-traces-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn row_config_file_without_tracer_provider_leaves_traces_to_code() {
    let path = config_file("no-traces.yaml", "file_format: \"1.0\"\n");
    let env = [
        ("OTEL_TRACES_EXPORTER", "otlp"),
        ("OTEL_TRACES_SAMPLER", "always_off"),
    ];
    let c = resolve_with(Telemetry::builder().config_file(&path), &env).unwrap();
    assert_eq!(
        c.traces.exporter,
        TracesExporter::None,
        "the file replaces the variables"
    );
    let c = resolve_with(
        Telemetry::builder()
            .config_file(&path)
            .traces_exporter(TracesExporter::Otlp),
        &env,
    )
    .unwrap();
    assert_eq!(c.traces.exporter, TracesExporter::Otlp, "code still wins");
    assert_eq!(c.traces.sampler, TraceSampler::ParentBasedAlwaysOn);
    assert_eq!(traces_otlp(&c).endpoint, "http://localhost:4318/v1/traces");
}

#[test]
fn row_config_file_tracer_provider_subset() {
    let path = config_file(
        "traces.yaml",
        r#"file_format: "1.0"
meter_provider:
  readers:
    - periodic:
        exporter:
          otlp_http:
            endpoint: http://metrics:4318/v1/metrics
tracer_provider:
  processors:
    - batch:
        schedule_delay: 250
        export_timeout: 0
        max_queue_size: 64
        max_export_batch_size: 16
        exporter:
          otlp_grpc:
            endpoint: http://spans:4317
            compression: gzip
            timeout: 2500
            headers:
              - name: x-tenant
                value: ${TENANT:-blue}
  sampler:
    parent_based:
      root:
        trace_id_ratio_based:
          ratio: 0.25
"#,
    );
    let env = [("OTEL_BSP_SCHEDULE_DELAY", "1"), ("OTEL_TRACES_EXPORTER", "none")];
    let c = resolve_with(Telemetry::builder().config_file(&path), &env).unwrap();
    assert_eq!(c.traces.exporter, TracesExporter::Otlp);
    assert_eq!(c.traces.sampler, TraceSampler::ParentBasedTraceIdRatio(0.25));
    assert_eq!(c.traces.batch.schedule_delay, Duration::from_millis(250));
    assert_eq!(c.traces.batch.export_timeout, Duration::ZERO);
    assert_eq!(c.traces.batch.max_queue_size, 64);
    assert_eq!(c.traces.batch.max_export_batch_size, 16);
    let t = traces_otlp(&c);
    assert_eq!(t.endpoint, "http://spans:4317");
    assert_eq!(t.protocol, OtlpProtocol::Grpc);
    assert!(t.gzip);
    assert_eq!(t.timeout, Duration::from_millis(2500));
    assert_eq!(t.headers["x-tenant"], "blue");
    assert_eq!(
        c.otlp.as_ref().unwrap().endpoint,
        "http://metrics:4318/v1/metrics"
    );
    assert_eq!(c.otlp.as_ref().unwrap().protocol, OtlpProtocol::HttpProtobuf);
    // Code still wins over the file.
    let c = resolve_with(
        Telemetry::builder()
            .config_file(&path)
            .traces_sampler(TraceSampler::AlwaysOn)
            .span_batch_max_queue_size(100_usize),
        &env,
    )
    .unwrap();
    assert_eq!(c.traces.sampler, TraceSampler::AlwaysOn);
    assert_eq!(c.traces.batch.max_queue_size, 100);

    for (yaml, message) in [
        (
            "tracer_provider:\n  processors:\n    - simple:\n        exporter:\n          console: {}\n",
            "`tracer_provider.processors[0].simple` is not a key",
        ),
        (
            "tracer_provider:\n  processors:\n    - batch:\n        exporter:\n          zipkin: {}\n",
            "`tracer_provider.processors[0].batch.exporter.zipkin`",
        ),
        (
            "tracer_provider:\n  processors:\n    - batch:\n        max_queue_size: 0\n        exporter:\n          console: {}\n",
            "max_queue_size` must be positive",
        ),
        (
            "tracer_provider:\n  processors:\n    - batch:\n        max_queue_size: 10\n        max_export_batch_size: 20\n        exporter:\n          console: {}\n",
            "more than the queue size (10)",
        ),
        (
            "tracer_provider:\n  processors:\n    - batch:\n        exporter:\n          otlp_http:\n            temporality_preference: delta\n",
            "temporality_preference` is not a key",
        ),
        (
            "tracer_provider:\n  sampler:\n    trace_id_ratio_based:\n      ratio: 2\n",
            "is not a ratio from 0.0 to 1.0",
        ),
        (
            "tracer_provider:\n  sampler:\n    parent_based:\n      remote_parent_sampled:\n        always_off: {}\n",
            "`tracer_provider.sampler.parent_based.remote_parent_sampled` is not a key",
        ),
        (
            "tracer_provider:\n  sampler:\n    jaeger_remote: {}\n",
            "`tracer_provider.sampler.jaeger_remote` is not a key",
        ),
    ] {
        let path = config_file("bad.yaml", &format!("file_format: \"1.0\"\n{yaml}"));
        let err = resolve_with(Telemetry::builder().config_file(&path), &[]).unwrap_err();
        assert!(matches!(err, SetupError::ConfigFile { .. }), "{err:?}");
        assert!(err.to_string().contains(message), "{yaml}: {err}");
    }
    let path = config_file(
        "console.yaml",
        "file_format: \"1.0\"\ntracer_provider:\n  processors:\n    - batch:\n        exporter:\n          console: {}\n  sampler:\n    always_off: {}\n",
    );
    let c = resolve_with(Telemetry::builder().config_file(&path), &[]).unwrap();
    assert_eq!(c.traces.exporter, TracesExporter::Console);
    assert_eq!(c.traces.sampler, TraceSampler::AlwaysOff);
    assert!(c.traces.otlp.is_none());
}
