//! `otel-config.yaml` is a Collector (contrib) config we cannot run here, so this
//! checks what can be checked: it parses, uses only real contrib components,
//! every pipeline reference is defined, the processors are in the right order,
//! the backend endpoint comes from the environment, and the receiver ports are
//! the SDK's default OTLP endpoints.

use outcometer_exporter::{OtlpProtocol, Telemetry};
use serde_yaml::Value;

fn config() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../otel-config.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).expect("otel-config.yaml")).expect("valid YAML")
}

fn names(section: &Value) -> Vec<String> {
    section
        .as_mapping()
        .map(|m| m.keys().filter_map(|k| k.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn list(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|s| s.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// The component type of an id like `otlphttp/backend`.
fn kind(id: &str) -> &str {
    id.split('/').next().unwrap_or(id)
}

fn port(endpoint: &str) -> Option<u16> {
    endpoint.rsplit(':').next()?.split('/').next()?.parse().ok()
}

#[test]
fn every_reference_is_defined_and_every_component_is_real() {
    let c = config();
    // Component types shipped in otelcol-contrib.
    let known = [
        ("receivers", &["otlp", "prometheus", "hostmetrics"][..]),
        (
            "processors",
            &[
                "memory_limiter",
                "batch",
                "resource",
                "attributes",
                "filter",
                "transform",
            ][..],
        ),
        (
            "exporters",
            &["prometheus", "otlp", "otlphttp", "debug", "prometheusremotewrite"][..],
        ),
        ("extensions", &["health_check", "pprof", "zpages"][..]),
    ];
    for (section, types) in known {
        for id in names(&c[section]) {
            assert!(
                types.contains(&kind(&id)),
                "{section}: unknown component type {id:?}"
            );
        }
    }
    let service = &c["service"];
    for ext in list(&service["extensions"]) {
        assert!(
            names(&c["extensions"]).contains(&ext),
            "extension {ext} is not defined"
        );
    }
    assert!(list(&service["extensions"]).contains(&"health_check".to_owned()));
    let pipelines = service["pipelines"].as_mapping().expect("pipelines");
    assert!(!pipelines.is_empty());
    for (name, pipeline) in pipelines {
        for section in ["receivers", "processors", "exporters"] {
            let used = list(&pipeline[section]);
            assert!(
                !used.is_empty() || section == "processors",
                "{name:?} has no {section}"
            );
            for id in used {
                assert!(
                    names(&c[section]).contains(&id),
                    "{name:?} uses undefined {section} {id:?}"
                );
            }
        }
        let processors = list(&pipeline["processors"]);
        assert_eq!(
            processors.first().map(String::as_str),
            Some("memory_limiter"),
            "{name:?}"
        );
        assert_eq!(processors.last().map(String::as_str), Some("batch"), "{name:?}");
    }
    let metrics_exporters = list(&c["service"]["pipelines"]["metrics"]["exporters"]);
    for wanted in ["prometheus", "otlphttp", "debug"] {
        assert!(
            metrics_exporters.iter().any(|e| kind(e) == wanted),
            "metrics pipeline lacks {wanted}"
        );
    }
    // Spans go where the metrics' OTLP goes, so an exemplar's trace id is found.
    let trace_exporters = list(&c["service"]["pipelines"]["traces"]["exporters"]);
    assert!(
        trace_exporters.iter().any(|e| kind(e) == "otlphttp"),
        "{trace_exporters:?}"
    );
    assert_eq!(
        c["exporters"]["prometheus"]["enable_open_metrics"].as_bool(),
        Some(true),
        "exemplars survive the collector's Prometheus endpoint only in OpenMetrics"
    );
}

#[test]
fn backend_endpoint_comes_from_the_environment_and_instances_stay_distinct() {
    let c = config();
    let endpoint = c["exporters"]["otlphttp"]["endpoint"]
        .as_str()
        .expect("otlphttp endpoint");
    assert!(
        endpoint.starts_with("${env:") && endpoint.ends_with('}'),
        "{endpoint:?} should be ${{env:VAR}}"
    );
    // The exporter maps service.instance.id to `instance` unless resource-to-label
    // conversion is switched on (then it is a label too); either keeps it, as long
    // as nothing relabels it away.
    let prometheus = &c["exporters"]["prometheus"];
    assert!(prometheus["endpoint"].as_str().and_then(port).is_some());
    let text = serde_yaml::to_string(prometheus).expect("yaml");
    assert!(
        !text.contains("instance"),
        "nothing drops or rewrites instance: {text}"
    );
}

#[test]
fn receiver_ports_are_the_sdk_defaults() {
    let c = config();
    let receiver = |protocol: &str| {
        c["receivers"]["otlp"]["protocols"][protocol]["endpoint"]
            .as_str()
            .and_then(port)
            .unwrap_or_else(|| panic!("otlp {protocol} endpoint with a port"))
    };
    let sdk_default = |protocol: OtlpProtocol| {
        let resolved = Telemetry::builder()
            .otlp_protocol(protocol)
            .resolve_with(|_| None)
            .expect("defaults resolve");
        let otlp = resolved.otlp.expect("OTLP is the default exporter");
        port(otlp.endpoint.trim_end_matches("/v1/metrics")).expect("port")
    };
    assert_eq!(receiver("grpc"), sdk_default(OtlpProtocol::Grpc));
    assert_eq!(receiver("http"), sdk_default(OtlpProtocol::HttpProtobuf));
    assert_eq!((receiver("grpc"), receiver("http")), (4317, 4318));
}
