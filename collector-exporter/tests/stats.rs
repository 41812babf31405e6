//! `/v1/stats` against the schema `docs/stats.md` documents, against the sums of a
//! `/metrics` scrape of the same data, and its status codes, in a router and on
//! the pull server.
#![cfg(feature = "prometheus")]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use outcometer::{GatewayError, GatewayMetrics, GatewayRecorder, Usage};
use outcometer_exporter::{ExporterKind, Telemetry};
use serde_json::Value;

/// A Prometheus-only pipeline under namespace `nexus`; with the pull server when `serve`.
fn pipeline(serve: bool) -> Telemetry {
    let builder = Telemetry::builder()
        .namespace("nexus")
        .exporters([ExporterKind::Prometheus])
        .prometheus_port(0u16);
    if serve {
        builder.build().expect("a pull pipeline")
    } else {
        builder.build_without_pull_server().expect("a pull pipeline")
    }
}

/// Two configured models (one never used), two configured backends, one more
/// model admitted and junk names folded into `_OTHER`, a fleet callback that
/// reports `gpu-2` down and a backend it does not know, and one pending request.
fn populate(telemetry: &Telemetry) -> (GatewayRecorder, outcometer::InFlightGuard) {
    let gateway = GatewayRecorder::builder()
        .models(["gpt-4.1", "unused-model"])
        .admitted_models(1)
        .backends(["gpu-1", "gpu-2"])
        .admitted_backends(1)
        .build(&telemetry.backend())
        .expect("the gateway family");
    let usage = Some(Usage::new(30, 200));
    let calls: [(&str, &str, u16, u64); 9] = [
        ("gpt-4.1", "gpu-1", 200, 800),
        ("gpt-4.1", "gpu-1", 200, 1200),
        ("gpt-4.1", "gpu-2", 503, 30),
        ("gpt-4_1", "gpu-2", 200, 450),
        ("gpt-4_1", "gpu-1", 429, 5),
        ("junk-1", "gpu-1", 200, 100),
        ("junk-2", "gpu-3", 201, 70),
        ("junk-3", "gpu-4", 599, 70),
        ("junk-3", "gpu-5", 200, 10),
    ];
    for (model, backend, status, millis) in calls {
        gateway.record_request(
            model,
            backend,
            status,
            Duration::from_millis(millis),
            usage,
            (status == 200).then(|| Duration::from_millis(millis / 4)),
        );
    }
    gateway.record_error("gpt-4.1", GatewayError::BackendError);
    gateway.record_error("nobody-serves-this", GatewayError::ModelNotFound);
    gateway.record_error("gpt-4.1", GatewayError::NoHealthyBackend);
    gateway.record_fallback("gpt-4.1", "gpt-4_1");
    gateway.record_health_check("gpu-1", Duration::from_micros(1500));
    gateway.record_health_check("gpu-1", Duration::from_micros(2500));
    gateway.set_fleet_callback(|fleet| {
        fleet.backend("gpu-1", true);
        fleet.backend("gpu-2", false);
        fleet.backend("gpu-3", true);
        fleet.models_available(2);
    });
    let pending = gateway.track_pending(gateway.backend("gpu-1"));
    (gateway, pending)
}

/// `(path, type, nullable)` for each row of the schema table in docs/stats.md.
fn documented_schema() -> Vec<(String, String, bool)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/stats.md");
    let doc = std::fs::read_to_string(path).expect("docs/stats.md");
    let begin = doc
        .find("<!-- stats-schema:begin -->")
        .expect("schema begin marker");
    let end = doc.find("<!-- stats-schema:end -->").expect("schema end marker");
    let rows: Vec<(String, String, bool)> = doc[begin..end]
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let field = cells[1].trim_matches('`').to_owned();
            let nullable = match cells[3] {
                "yes" => true,
                "no" => false,
                other => panic!("nullable must be yes or no, not {other:?}"),
            };
            (field, cells[2].to_owned(), nullable)
        })
        .collect();
    assert!(rows.len() >= 15, "the schema table lists every field: {rows:?}");
    rows
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every field path of `value`, as the schema writes them (`backends[].name`),
/// with the values found there.
fn fields<'a>(value: &'a Value, prefix: &str, out: &mut BTreeMap<String, Vec<&'a Value>>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                out.entry(path.clone()).or_default().push(child);
                fields(child, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                fields(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

/// Checks `body` against the documented schema: every documented field present
/// with its type (or null where nullable), and nothing undocumented.
fn check_schema(body: &str) -> Value {
    let json: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("invalid JSON ({e}): {body}"));
    let mut found = BTreeMap::new();
    fields(&json, "", &mut found);
    let schema = documented_schema();
    let documented: BTreeSet<&str> = schema.iter().map(|(f, _, _)| f.as_str()).collect();
    for path in found.keys() {
        assert!(
            documented.contains(path.as_str()),
            "`{path}` is not in docs/stats.md"
        );
    }
    for (field, kind, nullable) in &schema {
        let values = found
            .get(field)
            .unwrap_or_else(|| panic!("documented field `{field}` is missing from {body}"));
        for value in values {
            let actual = type_of(value);
            let fits = actual == kind
                || (kind == "number" && actual == "integer")
                || (*nullable && actual == "null");
            assert!(fits, "`{field}` is {actual}, documented as {kind}: {body}");
        }
    }
    json
}

/// `GET path` on the pull server over a real socket: status line and body.
fn http_get(telemetry: &Telemetry, method: &str, path: &str) -> (String, String, String) {
    let address = telemetry.prometheus_address().expect("the pull server");
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a header block");
    let status = head.lines().next().unwrap_or("").to_owned();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn body_text(body: Full<Bytes>) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let bytes = runtime.block_on(body.collect()).expect("a full body").to_bytes();
    String::from_utf8(bytes.to_vec()).expect("UTF-8")
}

#[test]
fn the_response_matches_the_documented_schema() {
    let telemetry = pipeline(true);
    let (_gateway, _pending) = populate(&telemetry);
    let (status, head, body) = http_get(&telemetry, "GET", "/v1/stats");
    assert!(status.contains("200"), "{status}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("cache-control: no-store"), "{head}");
    let json = check_schema(&body);
    // Nullable fields really are null before their first measurement.
    let model = |name: &str| {
        json["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("model {name} in {body}"))
            .clone()
    };
    assert!(model("unused-model")["average_duration_ms"].is_null());
    assert_eq!(model("unused-model")["requests"], 0);
    assert!(
        model("gpt-4.1")["average_duration_ms"].is_f64() || model("gpt-4.1")["average_duration_ms"].is_u64()
    );
    let backend = |name: &str| {
        json["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .unwrap_or_else(|| panic!("backend {name} in {body}"))
            .clone()
    };
    assert!(backend("gpu-2")["average_latency_ms"].is_null());
    let latency = backend("gpu-1")["average_latency_ms"].as_f64().unwrap();
    assert!((latency - 2.0).abs() < 1e-9, "{latency}");
    assert_eq!(backend("gpu-1")["healthy"], true);
    assert_eq!(backend("gpu-2")["healthy"], false);
    assert!(backend("_OTHER")["healthy"].is_null());
    assert_eq!(backend("gpu-1")["pending"], 1);
    // `/metrics` is still served next to it.
    let (status, _, metrics) = http_get(&telemetry, "GET", "/metrics");
    assert!(
        status.contains("200") && metrics.contains("nexus_requests_total{"),
        "{status}"
    );
    let (status, _, _) = http_get(&telemetry, "GET", "/v1/other");
    assert!(status.contains("404"), "{status}");
}

/// `name{labels} value` samples of a text-format scrape.
fn samples(body: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in body.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (series, value) = line.rsplit_once(' ').expect("a sample");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split("\",")
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once("=\"").expect("key=\"value\"");
                (key.to_owned(), value.trim_end_matches('"').to_owned())
            })
            .collect();
        out.push((name.to_owned(), labels, value.parse().expect("a number")));
    }
    out
}

/// The sum of `name`'s samples whose labels pass `keep`.
fn sum(
    samples: &[(String, BTreeMap<String, String>, f64)],
    name: &str,
    keep: impl Fn(&BTreeMap<String, String>) -> bool,
) -> f64 {
    samples
        .iter()
        .filter(|(n, labels, _)| n == name && keep(labels))
        .map(|(_, _, v)| v)
        .sum()
}

/// Equal averages, up to the rounding of two orders of the same operations.
fn assert_close(actual: Option<f64>, expected: Option<f64>, what: &str) {
    match (actual, expected) {
        (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{what}: {a} vs {b}"),
        (a, b) => assert_eq!(a, b, "{what}"),
    }
}

#[test]
fn stats_totals_equal_the_exposition_sums() {
    let telemetry = pipeline(false);
    let (gateway, pending) = populate(&telemetry);
    let stats = telemetry.stats_service().snapshot().expect("a running pipeline");
    let scrape = samples(&telemetry.metrics_service().render());
    let all = |_: &BTreeMap<String, String>| true;
    let label =
        |key: &'static str, value: String| move |l: &BTreeMap<String, String>| l.get(key) == Some(&value);

    assert_eq!(
        stats.requests.total as f64,
        sum(&scrape, "nexus_requests_total", all)
    );
    assert_eq!(
        stats.requests.success as f64,
        sum(&scrape, "nexus_requests_total", |l| l["status"].starts_with('2'))
    );
    assert_eq!(
        stats.requests.errors as f64,
        sum(&scrape, "nexus_errors_total", all)
    );
    assert_eq!(
        (
            stats.requests.total,
            stats.requests.success,
            stats.requests.errors
        ),
        (9, 6, 3)
    );

    for backend in &stats.backends {
        let name = backend.name.clone();
        assert_eq!(
            backend.requests as f64,
            sum(&scrape, "nexus_requests_total", label("backend", name.clone())),
            "{name}"
        );
        let count = sum(
            &scrape,
            "nexus_backend_latency_seconds_count",
            label("backend", name.clone()),
        );
        let seconds = sum(
            &scrape,
            "nexus_backend_latency_seconds_sum",
            label("backend", name.clone()),
        );
        let expected = (count > 0.0).then(|| 1000.0 * seconds / count);
        assert_close(backend.average_latency_ms, expected, &name);
        let pending_now = sum(&scrape, "nexus_pending_requests", label("backend", name.clone()));
        assert_eq!(backend.pending as f64, pending_now, "{name}");
    }
    let healthy = stats.backends.iter().filter(|b| b.healthy == Some(true)).count();
    assert_eq!(healthy as f64, sum(&scrape, "nexus_backends_healthy", all));

    for model in &stats.models {
        let name = model.name.clone();
        assert_eq!(
            model.requests as f64,
            sum(&scrape, "nexus_requests_total", label("model", name.clone())),
            "{name}"
        );
        let count = sum(
            &scrape,
            "nexus_request_duration_seconds_count",
            label("model", name.clone()),
        );
        let seconds = sum(
            &scrape,
            "nexus_request_duration_seconds_sum",
            label("model", name.clone()),
        );
        let expected = (count > 0.0).then(|| 1000.0 * seconds / count);
        assert_close(model.average_duration_ms, expected, &name);
    }
    // Every model and backend the scrape shows a request for is in the summary.
    for (name, labels, value) in &scrape {
        if name == "nexus_requests_total" && *value > 0.0 {
            assert!(
                stats.models.iter().any(|m| m.name == labels["model"]),
                "{labels:?}"
            );
            assert!(
                stats.backends.iter().any(|b| b.name == labels["backend"]),
                "{labels:?}"
            );
        }
    }
    let names: Vec<&str> = stats.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["gpt-4.1", "unused-model", "gpt-4_1", "_OTHER"]);
    let names: Vec<&str> = stats.backends.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["gpu-1", "gpu-2", "gpu-3", "_OTHER"]);
    drop(pending);
    assert_eq!(gateway.pending(gateway.backend("gpu-1")), 0);
}

#[test]
fn status_codes_and_bodies() {
    let telemetry = pipeline(false);
    let service = telemetry.stats_service();
    // No gateway family: zeros and empty lists.
    let empty: Value = serde_json::from_str(&service.render()).expect("JSON");
    assert_eq!(empty["requests"]["total"], 0);
    assert_eq!(empty["backends"], Value::Array(Vec::new()));
    let (_gateway, _pending) = populate(&telemetry);

    let request = |method: Method| {
        Request::builder()
            .method(method)
            .uri("/v1/stats")
            .body(())
            .unwrap()
    };
    let head = service.respond(&request(Method::HEAD));
    assert_eq!(head.status(), StatusCode::OK);
    let length: usize = head.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(length, service.render().len());
    assert!(body_text(head.into_body()).is_empty());

    let post = service.respond(&request(Method::POST));
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    let error: Value = serde_json::from_str(&body_text(post.into_body())).expect("a JSON error");
    assert_eq!(error["error"], "only GET and HEAD are allowed");

    // As a tower service, the way a router calls it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut tower = service.clone();
    let response = runtime
        .block_on(tower_service::Service::call(&mut tower, request(Method::GET)))
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    check_schema(&body_text(response.into_body()));

    telemetry.shutdown().expect("shutdown");
    let after = service.respond(&request(Method::GET));
    assert_eq!(after.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(after.headers()["content-type"], "application/json");
    let error: Value = serde_json::from_str(&body_text(after.into_body())).expect("a JSON error");
    assert_eq!(error["error"], "the metrics pipeline is shut down");
}

#[test]
fn a_pipeline_without_the_pull_exporter_says_what_to_add() {
    let telemetry = Telemetry::builder()
        .exporters(Vec::<ExporterKind>::new())
        .build()
        .expect("a pipeline without exporters");
    let response = telemetry
        .stats_service()
        .respond(&Request::get("/v1/stats").body(()).unwrap());
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let error: Value = serde_json::from_str(&body_text(response.into_body())).expect("a JSON error");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("ExporterKind::Prometheus"),
        "{error}"
    );
}
