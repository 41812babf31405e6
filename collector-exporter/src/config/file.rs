//! `OTEL_CONFIG_FILE`: the declarative configuration file
//! (opentelemetry-configuration YAML, `file_format: "1.x"`), for what this
//! exporter supports: `disabled`, `resource` (`attributes`, `attributes_list`),
//! and `meter_provider` with `readers` (periodic with `otlp_http`, `otlp_grpc` or
//! `console`; pull with `prometheus/development`) and `views` whose stream sets
//! `aggregation_cardinality_limit`; and `tracer_provider` with one `batch`
//! processor (`otlp_http`, `otlp_grpc` or `console`) and a `sampler`
//! (`always_on`, `always_off`, `trace_id_ratio_based`, `parent_based` with a `root`).
//!
//! Environment substitution follows the data model: `${VAR}`, `${env:VAR}`,
//! `${VAR:-default}`, `$$` for a literal `$`, only in scalar values, never
//! recursively; an invalid reference is an error. A key this exporter does not
//! know or support is an error naming it: a setting silently dropped is the bug
//! this file format exists to avoid. When a file is used, no other `OTEL_*`
//! variable is read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::env::{key_value_list, parse_temporality, percent_decode, SpanBatchLayer};
use super::{
    endpoint_url_for, valid_header, valid_host, EndpointKind, ExporterKind, Layer, Origin, OtlpLayer,
    OtlpProtocol, TlsFile, TlsFiles, TraceSampler, TracesExporter, TracesLayer, HEADER_RULE,
};
use crate::error::SetupError;

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Reads and checks the file `origin` named.
pub(crate) fn load(path: &Path, origin: &Origin, env: Env<'_>) -> Result<Layer, SetupError> {
    let fail = |message: String| SetupError::ConfigFile {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(format!("cannot read it ({e}); it is named by {origin}")))?;
    let mut doc: Value = serde_yaml::from_str(&text).map_err(|e| fail(format!("not valid YAML: {e}")))?;
    substitute_all(&mut doc, env, "").map_err(fail)?;
    parse(&doc).map_err(fail)
}

/// Substitutes every string scalar (not keys).
fn substitute_all(value: &mut Value, env: Env<'_>, path: &str) -> Result<(), String> {
    match value {
        Value::String(s) => {
            *s = substitute(s, env).map_err(|e| format!("`{path}`: {e}"))?;
        }
        Value::Sequence(items) => {
            for (n, item) in items.iter_mut().enumerate() {
                substitute_all(item, env, &format!("{path}[{n}]"))?;
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                let key = key.as_str().unwrap_or("?");
                let child = if path.is_empty() {
                    key.to_owned()
                } else {
                    format!("{path}.{key}")
                };
                substitute_all(item, env, &child)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The data model's substitution: `$$` escapes are found first, left to right;
/// references are replaced in the text between them.
pub(crate) fn substitute(input: &str, env: Env<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    for (n, segment) in input.split("$$").enumerate() {
        if n > 0 {
            out.push('$');
        }
        let mut rest = segment;
        while let Some(start) = rest.find("${") {
            let Some(len) = rest[start + 2..].find('}') else {
                break;
            };
            out.push_str(&rest[..start]);
            let reference = &rest[start + 2..start + 2 + len];
            out.push_str(&resolve_reference(reference, env)?);
            rest = &rest[start + 2 + len + 1..];
        }
        out.push_str(rest);
    }
    Ok(out)
}

fn resolve_reference(reference: &str, env: Env<'_>) -> Result<String, String> {
    let invalid = || {
        format!(
            "`${{{reference}}}` is not a valid substitution (${{NAME}}, ${{env:NAME}} or ${{NAME:-default}})"
        )
    };
    let body = match reference.split_once(':') {
        Some((prefix, rest))
            if !rest.starts_with('-')
                && prefix.starts_with(|c: char| c.is_ascii_alphabetic())
                && prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            if prefix != "env" {
                return Err(format!(
                    "`${{{reference}}}` is not a valid substitution: the prefix `{prefix}:` is not supported (only env:)"
                ));
            }
            rest
        }
        _ => reference,
    };
    let name_len = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    let (name, tail) = body.split_at(name_len);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(invalid());
    }
    let default = match tail {
        "" => None,
        t if t.starts_with(":-") => Some(&t[2..]),
        _ => return Err(invalid()),
    };
    let value = env(name).filter(|v| !v.is_empty());
    Ok(value.or_else(|| default.map(str::to_owned)).unwrap_or_default())
}

/// A mapping's keys, checked against what is supported here.
fn mapping<'v>(value: &'v Value, path: &str, allowed: &[&str]) -> Result<Option<&'v Mapping>, String> {
    let map = match value {
        Value::Null => return Ok(None),
        Value::Mapping(m) => m,
        _ => return Err(format!("`{path}` must be a mapping")),
    };
    for key in map.keys() {
        let key = key
            .as_str()
            .ok_or_else(|| format!("`{path}` has a key that is not a string"))?;
        if !allowed.contains(&key) {
            let at = if path.is_empty() {
                key.to_owned()
            } else {
                format!("{path}.{key}")
            };
            return Err(format!(
                "`{at}` is not a key outcometer-exporter knows or supports here (supported: {})",
                allowed.join(", ")
            ));
        }
    }
    Ok(Some(map))
}

fn get<'v>(map: &'v Mapping, key: &str) -> &'v Value {
    map.get(key).unwrap_or(&Value::Null)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A scalar as text; null or empty (an unset substitution) is `None`.
fn text(value: &Value, path: &str) -> Result<Option<String>, String> {
    Ok(match value {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => return Err(format!("`{path}` must be a single value")),
    })
}

fn integer(value: &Value, path: &str) -> Result<Option<u64>, String> {
    let Some(t) = text(value, path)? else {
        return Ok(None);
    };
    let parsed = match t.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse::<u64>().ok(),
    };
    parsed
        .map(Some)
        .ok_or_else(|| format!("`{path}` = {t:?} is not a whole number ≥ 0"))
}

fn boolean(value: &Value, path: &str) -> Result<Option<bool>, String> {
    match text(value, path)?.as_deref() {
        None => Ok(None),
        Some(t) if t.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(t) if t.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(t) => Err(format!("`{path}` = {t:?} is not true or false")),
    }
}

fn millis(value: &Value, path: &str) -> Result<Option<Duration>, String> {
    Ok(integer(value, path)?.map(Duration::from_millis))
}

fn parse(doc: &Value) -> Result<Layer, String> {
    let top = mapping(
        doc,
        "",
        &[
            "file_format",
            "disabled",
            "resource",
            "meter_provider",
            "tracer_provider",
        ],
    )?
    .ok_or("the file is empty; it needs at least file_format")?;
    match text(get(top, "file_format"), "file_format")? {
        None => return Err("`file_format` is required (e.g. file_format: \"1.0\")".into()),
        Some(v) if v.split('.').next() == Some("1") => {}
        Some(v) => return Err(format!("`file_format` = {v:?} is not supported (1.x is)")),
    }
    let mut layer = Layer {
        disabled: boolean(get(top, "disabled"), "disabled")?,
        ..Layer::default()
    };
    if let Some(resource) = mapping(
        get(top, "resource"),
        "resource",
        &["attributes", "attributes_list"],
    )? {
        if let Some(list) = text(get(resource, "attributes_list"), "resource.attributes_list")? {
            layer.resource =
                key_value_list(&list).map_err(|why| format!("`resource.attributes_list`: {why}"))?;
        }
        if let Some(items) = sequence(get(resource, "attributes"), "resource.attributes")? {
            for (n, item) in items.iter().enumerate() {
                let path = format!("resource.attributes[{n}]");
                let attr =
                    mapping(item, &path, &["name", "value", "type"])?.ok_or(format!("`{path}` is empty"))?;
                let name = text(get(attr, "name"), &join(&path, "name"))?
                    .ok_or(format!("`{path}.name` is required"))?;
                if let Some(kind) = text(get(attr, "type"), &join(&path, "type"))? {
                    if !["string", "bool", "int", "double"].contains(&kind.as_str()) {
                        return Err(format!(
                            "`{path}.type` = {kind:?} is not supported (string, bool, int, double)"
                        ));
                    }
                }
                // A null value means the entry is ignored.
                if let Some(value) = text(get(attr, "value"), &join(&path, "value"))? {
                    layer.resource.push((name, value));
                }
            }
        }
    }
    layer.traces = tracer_provider(get(top, "tracer_provider"))?;
    let Some(meter) = mapping(
        get(top, "meter_provider"),
        "meter_provider",
        &["readers", "views"],
    )?
    else {
        // No meter provider: no metrics exporters.
        layer.exporters = Some(Vec::new());
        return Ok(layer);
    };
    let mut exporters = Vec::new();
    for (n, reader) in sequence(get(meter, "readers"), "meter_provider.readers")?
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let path = format!("meter_provider.readers[{n}]");
        let reader = mapping(reader, &path, &["periodic", "pull"])?.ok_or(format!("`{path}` is empty"))?;
        if let Some(periodic) = mapping(
            get(reader, "periodic"),
            &join(&path, "periodic"),
            &["interval", "timeout", "exporter"],
        )? {
            let path = join(&path, "periodic");
            if let Some(interval) = millis(get(periodic, "interval"), &join(&path, "interval"))? {
                if interval.is_zero() {
                    return Err(format!("`{path}.interval` must be positive"));
                }
                layer.export_interval = Some(interval);
            }
            layer.export_timeout =
                millis(get(periodic, "timeout"), &join(&path, "timeout"))?.or(layer.export_timeout);
            let exporter = mapping(
                get(periodic, "exporter"),
                &join(&path, "exporter"),
                &["otlp_http", "otlp_grpc", "console"],
            )?
            .ok_or(format!("`{path}.exporter` is required"))?;
            for (key, value) in exporter {
                let key = key.as_str().unwrap_or_default();
                let path = join(&join(&path, "exporter"), key);
                let kind = match key {
                    "otlp_http" => {
                        otlp(value, &path, OtlpProtocol::HttpProtobuf, &mut layer.otlp)?;
                        ExporterKind::Otlp
                    }
                    "otlp_grpc" => {
                        otlp(value, &path, OtlpProtocol::Grpc, &mut layer.otlp)?;
                        ExporterKind::Otlp
                    }
                    _ => {
                        mapping(value, &path, &["temporality_preference"])?;
                        ExporterKind::Console
                    }
                };
                if exporters.contains(&kind) {
                    return Err(format!(
                        "`{path}`: a second {key} reader is not supported (one of each)"
                    ));
                }
                exporters.push(kind);
            }
        }
        if let Some(pull) = mapping(get(reader, "pull"), &join(&path, "pull"), &["exporter"])? {
            let path = join(&path, "pull.exporter");
            let exporter = mapping(
                get(pull, "exporter"),
                &path,
                &["prometheus/development", "prometheus"],
            )?
            .ok_or(format!("`{path}` is required"))?;
            for (key, value) in exporter {
                let path = join(&path, key.as_str().unwrap_or_default());
                let prometheus = mapping(value, &path, &["host", "port"])?;
                if let Some(p) = prometheus {
                    if let Some(host) = text(get(p, "host"), &join(&path, "host"))? {
                        if !valid_host(&host) {
                            return Err(format!(
                                "`{path}.host` = {host:?} is not a host name or IP address"
                            ));
                        }
                        layer.prometheus_host = Some(host);
                    }
                    if let Some(port) = integer(get(p, "port"), &join(&path, "port"))? {
                        let port = u16::try_from(port)
                            .map_err(|_| format!("`{path}.port` = {port} is not a port (0-65535)"))?;
                        layer.prometheus_port = Some(port);
                    }
                }
                if exporters.contains(&ExporterKind::Prometheus) {
                    return Err(format!("`{path}`: a second Prometheus reader is not supported"));
                }
                exporters.push(ExporterKind::Prometheus);
            }
        }
    }
    layer.exporters = Some(exporters);
    for (n, view) in sequence(get(meter, "views"), "meter_provider.views")?
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let path = format!("meter_provider.views[{n}]");
        let view = mapping(view, &path, &["selector", "stream"])?.ok_or(format!("`{path}` is empty"))?;
        let selector = mapping(
            get(view, "selector"),
            &join(&path, "selector"),
            &["instrument_name"],
        )?
        .ok_or(format!("`{path}.selector` is required"))?;
        let name = text(
            get(selector, "instrument_name"),
            &join(&path, "selector.instrument_name"),
        )?
        .ok_or(format!(
            "`{path}.selector.instrument_name` is required (a name, or *)"
        ))?;
        let stream = mapping(
            get(view, "stream"),
            &join(&path, "stream"),
            &["aggregation_cardinality_limit"],
        )?
        .ok_or(format!("`{path}.stream` is required"))?;
        let limit = integer(
            get(stream, "aggregation_cardinality_limit"),
            &join(&path, "stream.aggregation_cardinality_limit"),
        )?
        .filter(|l| *l > 0)
        .ok_or(format!(
            "`{path}.stream.aggregation_cardinality_limit` must be a number > 0"
        ))?;
        layer
            .cardinality_limits
            .push((name, usize::try_from(limit).unwrap_or(usize::MAX)));
    }
    Ok(layer)
}

/// `tracer_provider`: one `batch` processor and a sampler. `None` without the key.
fn tracer_provider(value: &Value) -> Result<Option<TracesLayer>, String> {
    let Some(provider) = mapping(value, "tracer_provider", &["processors", "sampler"])? else {
        return Ok(None);
    };
    let mut out = TracesLayer {
        exporter: Some(TracesExporter::None),
        ..TracesLayer::default()
    };
    let processors = sequence(get(provider, "processors"), "tracer_provider.processors")?.unwrap_or_default();
    if processors.len() > 1 {
        return Err("`tracer_provider.processors`: one batch processor is supported".into());
    }
    for (n, processor) in processors.iter().enumerate() {
        let path = format!("tracer_provider.processors[{n}]");
        let processor = mapping(processor, &path, &["batch"])?.ok_or(format!("`{path}` is empty"))?;
        let path = join(&path, "batch");
        let batch = mapping(
            get(processor, "batch"),
            &path,
            &[
                "schedule_delay",
                "export_timeout",
                "max_queue_size",
                "max_export_batch_size",
                "exporter",
            ],
        )?
        .ok_or(format!("`{path}` is empty"))?;
        let positive = |key: &str| -> Result<Option<u64>, String> {
            match integer(get(batch, key), &join(&path, key))? {
                Some(0) => Err(format!("`{}` must be positive", join(&path, key))),
                other => Ok(other),
            }
        };
        out.batch = SpanBatchLayer {
            schedule_delay: positive("schedule_delay")?.map(Duration::from_millis),
            export_timeout: millis(get(batch, "export_timeout"), &join(&path, "export_timeout"))?,
            max_queue_size: positive("max_queue_size")?.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            max_export_batch_size: positive("max_export_batch_size")?
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        };
        if let (Some(batch), queue) = (out.batch.max_export_batch_size, out.batch.max_queue_size) {
            let queue = queue.unwrap_or(2048);
            if batch > queue {
                return Err(format!(
                    "`{path}.max_export_batch_size` = {batch} is more than the queue size ({queue})"
                ));
            }
        }
        let exporter = mapping(
            get(batch, "exporter"),
            &join(&path, "exporter"),
            &["otlp_http", "otlp_grpc", "console"],
        )?
        .ok_or(format!("`{path}.exporter` is required"))?;
        if exporter.len() > 1 {
            return Err(format!("`{path}.exporter`: one exporter per processor"));
        }
        for (key, value) in exporter {
            let key = key.as_str().unwrap_or_default();
            let at = join(&join(&path, "exporter"), key);
            out.exporter = Some(match key {
                "otlp_http" => {
                    otlp_for(value, &at, OtlpProtocol::HttpProtobuf, &mut out.otlp, true)?;
                    TracesExporter::Otlp
                }
                "otlp_grpc" => {
                    otlp_for(value, &at, OtlpProtocol::Grpc, &mut out.otlp, true)?;
                    TracesExporter::Otlp
                }
                _ => {
                    mapping(value, &at, &[])?;
                    TracesExporter::Console
                }
            });
        }
    }
    if !get(provider, "sampler").is_null() {
        out.sampler = Some(sampler(
            get(provider, "sampler"),
            "tracer_provider.sampler",
            true,
        )?);
    }
    Ok(Some(out))
}

/// A sampler: `always_on`, `always_off`, `trace_id_ratio_based` (`ratio`), and at
/// the top `parent_based` with a `root` (its other keys are not supported).
fn sampler(value: &Value, path: &str, top: bool) -> Result<TraceSampler, String> {
    let allowed: &[&str] = if top {
        &["always_on", "always_off", "trace_id_ratio_based", "parent_based"]
    } else {
        &["always_on", "always_off", "trace_id_ratio_based"]
    };
    let map = mapping(value, path, allowed)?.ok_or(format!("`{path}` is empty"))?;
    if map.len() != 1 {
        return Err(format!("`{path}` names one sampler"));
    }
    let (key, value) = map.iter().next().ok_or(format!("`{path}` is empty"))?;
    let key = key.as_str().unwrap_or_default();
    let at = join(path, key);
    let ratio = |value: &Value| -> Result<f64, String> {
        let Some(map) = mapping(value, &at, &["ratio"])? else {
            return Ok(1.0);
        };
        match text(get(map, "ratio"), &join(&at, "ratio"))? {
            None => Ok(1.0),
            Some(r) => r
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or(format!("`{at}.ratio` = {r:?} is not a ratio from 0.0 to 1.0")),
        }
    };
    Ok(match key {
        "always_on" => {
            mapping(value, &at, &[])?;
            TraceSampler::AlwaysOn
        }
        "always_off" => {
            mapping(value, &at, &[])?;
            TraceSampler::AlwaysOff
        }
        "trace_id_ratio_based" => TraceSampler::TraceIdRatio(ratio(value)?),
        _ => {
            let parent = mapping(value, &at, &["root"])?;
            let root = match parent.map(|p| get(p, "root")) {
                None | Some(Value::Null) => TraceSampler::AlwaysOn,
                Some(root) => sampler(root, &join(&at, "root"), false)?,
            };
            match root {
                TraceSampler::AlwaysOff => TraceSampler::ParentBasedAlwaysOff,
                TraceSampler::TraceIdRatio(r) => TraceSampler::ParentBasedTraceIdRatio(r),
                _ => TraceSampler::ParentBasedAlwaysOn,
            }
        }
    })
}

fn sequence<'v>(value: &'v Value, path: &str) -> Result<Option<&'v [Value]>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Sequence(items) => Ok(Some(items.as_slice())),
        _ => Err(format!("`{path}` must be a list")),
    }
}

fn otlp(value: &Value, path: &str, protocol: OtlpProtocol, out: &mut OtlpLayer) -> Result<(), String> {
    otlp_for(value, path, protocol, out, false)
}

/// An OTLP exporter's keys, for spans (`traces`) or metrics (which alone take
/// `temporality_preference` and `default_histogram_aggregation`).
fn otlp_for(
    value: &Value,
    path: &str,
    protocol: OtlpProtocol,
    out: &mut OtlpLayer,
    traces: bool,
) -> Result<(), String> {
    const KEYS: &[&str] = &[
        "endpoint",
        "tls",
        "headers",
        "headers_list",
        "compression",
        "timeout",
        "encoding",
        "temporality_preference",
        "default_histogram_aggregation",
    ];
    out.protocol = Some(protocol);
    let keys = if traces { &KEYS[..7] } else { KEYS };
    let Some(map) = mapping(value, path, keys)? else {
        return Ok(());
    };
    let tls_keys: &[&str] = match protocol {
        OtlpProtocol::Grpc => &["ca_file", "key_file", "cert_file", "insecure"],
        OtlpProtocol::HttpProtobuf => &["ca_file", "key_file", "cert_file"],
    };
    if let Some(tls) = mapping(get(map, "tls"), &join(path, "tls"), tls_keys)? {
        let file = |key: &str| -> Result<Option<TlsFile>, String> {
            let at = join(&join(path, "tls"), key);
            Ok(text(get(tls, key), &at)?.map(|p| TlsFile {
                path: PathBuf::from(p),
                origin: Origin::File(at),
            }))
        };
        out.tls = TlsFiles {
            certificate: file("ca_file")?,
            client_certificate: file("cert_file")?,
            client_key: file("key_file")?,
        };
        out.insecure = boolean(get(tls, "insecure"), &join(path, "tls.insecure"))?;
    }
    if let Some(endpoint) = text(get(map, "endpoint"), &join(path, "endpoint"))? {
        endpoint_url_for(
            &endpoint,
            EndpointKind::AsIs,
            protocol,
            out.insecure.unwrap_or(false),
            if traces { "v1/traces" } else { "v1/metrics" },
        )
        .map_err(|expected| format!("`{path}.endpoint` is invalid: expected {expected}"))?;
        out.endpoint = Some((endpoint, EndpointKind::AsIs, Origin::File(join(path, "endpoint"))));
    }
    let mut headers = BTreeMap::new();
    if let Some(list) = text(get(map, "headers_list"), &join(path, "headers_list"))? {
        for (n, entry) in list.split(',').enumerate().filter(|(_, e)| !e.trim().is_empty()) {
            let (key, raw) = entry.split_once('=').ok_or(format!(
                "`{path}.headers_list`: entry {} is not key=value (not shown)",
                n + 1
            ))?;
            let value = percent_decode(raw.trim()).ok_or(format!(
                "`{path}.headers_list`: the value of `{}` is not valid percent-encoding",
                key.trim()
            ))?;
            headers.insert(key.trim().to_owned(), value);
        }
    }
    if let Some(items) = sequence(get(map, "headers"), &join(path, "headers"))? {
        for (n, item) in items.iter().enumerate() {
            let at = format!("{path}.headers[{n}]");
            let pair = mapping(item, &at, &["name", "value"])?.ok_or(format!("`{at}` is empty"))?;
            let name =
                text(get(pair, "name"), &join(&at, "name"))?.ok_or(format!("`{at}.name` is required"))?;
            // A null value means the entry is ignored.
            if let Some(value) = text(get(pair, "value"), &join(&at, "value"))? {
                headers.insert(name, value);
            }
        }
    }
    for (name, value) in &headers {
        if !valid_header(name, value) {
            return Err(format!(
                "`{path}`: header `{name}` is invalid: expected {HEADER_RULE}"
            ));
        }
    }
    out.headers = headers;
    out.gzip = match text(get(map, "compression"), &join(path, "compression"))?.as_deref() {
        None => None,
        Some(c) if c.eq_ignore_ascii_case("gzip") => Some(true),
        Some(c) if c.eq_ignore_ascii_case("none") => Some(false),
        Some(c) => {
            return Err(format!(
                "`{path}.compression` = {c:?} is not supported (gzip or none)"
            ))
        }
    };
    out.timeout = millis(get(map, "timeout"), &join(path, "timeout"))?;
    if let Some(encoding) = text(get(map, "encoding"), &join(path, "encoding"))? {
        if !encoding.eq_ignore_ascii_case("protobuf") {
            return Err(format!(
                "`{path}.encoding` = {encoding:?} is not supported (protobuf)"
            ));
        }
    }
    if let Some(t) = text(
        get(map, "temporality_preference"),
        &join(path, "temporality_preference"),
    )? {
        out.temporality =
            Some(parse_temporality(&t).map_err(|why| format!("`{path}.temporality_preference`: {why}"))?);
    }
    if let Some(a) = text(
        get(map, "default_histogram_aggregation"),
        &join(path, "default_histogram_aggregation"),
    )? {
        if a != "explicit_bucket_histogram" {
            return Err(format!(
                "`{path}.default_histogram_aggregation` = {a:?} is not supported (explicit_bucket_histogram)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        let pairs = [
            ("STRING_VALUE", "value"),
            ("BOOL_VALUE", "true"),
            ("INT_VALUE", "1"),
            ("REPLACE_ME", "${DO_NOT_REPLACE_ME}"),
            ("DO_NOT_REPLACE_ME", "Never use this value"),
            ("VALUE_WITH_ESCAPE", "value$$"),
            ("EMPTY", ""),
        ];
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }

    /// The data model's table of substitution examples.
    #[test]
    fn substitution_follows_the_data_model() {
        for (input, want) in [
            ("${STRING_VALUE}", "value"),
            ("${env:STRING_VALUE}", "value"),
            ("foo ${STRING_VALUE} ${INT_VALUE}", "foo value 1"),
            ("${UNDEFINED_KEY}", ""),
            ("${EMPTY:-fallback}", "fallback"),
            ("${UNDEFINED_KEY:-fallback}", "fallback"),
            ("${REPLACE_ME}", "${DO_NOT_REPLACE_ME}"),
            ("${UNDEFINED_KEY:-${STRING_VALUE}}", "${STRING_VALUE}"),
            ("$${STRING_VALUE}", "${STRING_VALUE}"),
            ("$$${STRING_VALUE}", "$value"),
            ("$$$${STRING_VALUE}", "$${STRING_VALUE}"),
            ("$${STRING_VALUE:-fallback}", "${STRING_VALUE:-fallback}"),
            ("$${STRING_VALUE:-${STRING_VALUE}}", "${STRING_VALUE:-value}"),
            (
                "${UNDEFINED_KEY:-$${UNDEFINED_KEY}}",
                "${UNDEFINED_KEY:-${UNDEFINED_KEY}}",
            ),
            ("${VALUE_WITH_ESCAPE}", "value$$"),
            ("a $$ b", "a $ b"),
            ("a $ b", "a $ b"),
        ] {
            assert_eq!(substitute(input, &env).as_deref(), Ok(want), "{input}");
        }
        for bad in ["${STRING_VALUE:?error}", "${1API_KEY}", "${API_$KEY}", "${sys:x}"] {
            assert!(substitute(bad, &env).is_err(), "{bad}");
        }
    }
}
