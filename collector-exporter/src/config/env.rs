//! The `OTEL_*` variables, read with the specification's error rules
//! (`configuration/sdk-environment-variables.md`, `configuration/common.md`):
//! empty is unset; enums are case-insensitive and an unknown value is warned about
//! and ignored; a boolean is true only for `true` (any case) and anything else but
//! `false` is warned about and read as false; a number that does not parse or is
//! negative is warned about and ignored. "Ignored" means the next source is used:
//! the generic variable after the signal-specific one, then the default. Each
//! warning names the variable, the value (never a header value) and what is used
//! instead.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::{
    endpoint_url_for, valid_header, valid_host, ConfigWarning, EndpointKind, ExporterKind, Layer, Origin,
    OtlpLayer, OtlpProtocol, SignalVars, SpanBatch, TelemetryBuilder, TemporalityPreference, TlsFile,
    TlsFiles, TraceSampler, TracesExporter, DEFAULT_EXPORT_INTERVAL, DEFAULT_EXPORT_TIMEOUT,
    DEFAULT_GRPC_ENDPOINT, DEFAULT_OTLP_TIMEOUT, DEFAULT_PROMETHEUS_HOST, DEFAULT_PROMETHEUS_PORT,
    HEADER_RULE,
};
use crate::otlp::display_endpoint;

/// Reads variables through a lookup and collects warnings.
pub(crate) struct EnvReader<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
    warnings: RefCell<Vec<ConfigWarning>>,
}

/// A value that could not be used: the variable, the value as shown, and why.
struct Rejected {
    var: &'static str,
    shown: String,
    why: String,
}

impl<'a> EnvReader<'a> {
    pub(crate) fn new(get: &'a dyn Fn(&str) -> Option<String>) -> Self {
        EnvReader {
            get,
            warnings: RefCell::default(),
        }
    }

    /// The warnings, each once: a generic variable both signals read is
    /// reported once when it means the same for both.
    pub(crate) fn into_warnings(self) -> Vec<ConfigWarning> {
        let mut out: Vec<ConfigWarning> = Vec::new();
        for warning in self.warnings.into_inner() {
            if !out.contains(&warning) {
                out.push(warning);
            }
        }
        out
    }

    fn warn(&self, variable: &'static str, message: String) {
        self.warnings
            .borrow_mut()
            .push(ConfigWarning { variable, message });
    }

    /// The variable's value, trimmed; empty counts as unset.
    fn raw(&self, var: &str) -> Option<String> {
        (self.get)(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn path(&self, var: &str) -> Option<PathBuf> {
        self.raw(var).map(PathBuf::from)
    }

    /// The first of `vars` (most specific first) whose value `parse` accepts.
    /// Each rejected one is warned about, naming what is used instead: the next
    /// variable's value, or `default`.
    fn pick<T>(
        &self,
        vars: &[&'static str],
        parse: impl Fn(&str) -> Result<T, String>,
        show: impl Fn(&T) -> String,
        default: &str,
    ) -> Option<T> {
        let mut rejected = Vec::new();
        let mut found = None;
        for var in vars {
            let Some(value) = self.raw(var) else { continue };
            match parse(&value) {
                Ok(v) => {
                    found = Some((v, *var));
                    break;
                }
                Err(why) => rejected.push(Rejected {
                    var,
                    shown: display_endpoint(&value),
                    why,
                }),
            }
        }
        let instead = match &found {
            Some((v, var)) => format!("using {} from {var} instead", show(v)),
            None => format!("using the default, {default}, instead"),
        };
        for r in rejected {
            self.warn(
                r.var,
                format!("{}={:?} is ignored: {}; {instead}", r.var, r.shown, r.why),
            );
        }
        found.map(|(v, _)| v)
    }

    /// A boolean: true only for `true`, any case; anything but `false` is warned
    /// about and read as false.
    fn flag(&self, vars: &[&'static str]) -> Option<bool> {
        let var = vars.iter().find(|v| self.raw(v).is_some())?;
        let value = self.raw(var)?;
        if value.eq_ignore_ascii_case("true") {
            Some(true)
        } else if value.eq_ignore_ascii_case("false") {
            Some(false)
        } else {
            self.warn(
                var,
                format!("{var}={value:?} is not a boolean (only true or false, any case); read as false"),
            );
            Some(false)
        }
    }

    /// Whole milliseconds, not negative.
    fn millis(&self, vars: &[&'static str], zero_allowed: bool, default: Duration) -> Option<Duration> {
        self.pick(
            vars,
            |v| match v.parse::<i128>() {
                Ok(n) if n < 0 => Err("a negative duration".into()),
                Ok(0) if !zero_allowed => Err("the interval must be positive".into()),
                Ok(n) => Ok(Duration::from_millis(u64::try_from(n).unwrap_or(u64::MAX))),
                Err(_) => Err("not a whole number of milliseconds".into()),
            },
            |d| format!("{}ms", d.as_millis()),
            &format!("{}ms", default.as_millis()),
        )
    }

    pub(crate) fn general(&self) -> Layer {
        let mut layer = Layer {
            disabled: self.flag(&["OTEL_SDK_DISABLED"]),
            ..Layer::default()
        };
        if let Some(value) = self.raw("OTEL_RESOURCE_ATTRIBUTES") {
            // resource/sdk.md: on any error the whole value is discarded.
            match key_value_list(&value) {
                Ok(pairs) => layer.resource = pairs,
                Err(why) => self.warn(
                    "OTEL_RESOURCE_ATTRIBUTES",
                    format!("OTEL_RESOURCE_ATTRIBUTES is ignored: {why}; no attributes are taken from it"),
                ),
            }
        }
        if let Some(name) = self.raw("OTEL_SERVICE_NAME") {
            layer.resource.push(("service.name".to_owned(), name));
        }
        layer.exporters = self.exporters();
        layer.export_interval = self.millis(&["OTEL_METRIC_EXPORT_INTERVAL"], false, DEFAULT_EXPORT_INTERVAL);
        layer.export_timeout = self.millis(&["OTEL_METRIC_EXPORT_TIMEOUT"], true, DEFAULT_EXPORT_TIMEOUT);
        layer
    }

    fn exporters(&self) -> Option<Vec<ExporterKind>> {
        const VAR: &str = "OTEL_METRICS_EXPORTER";
        let value = self.raw(VAR)?;
        let mut list = Vec::new();
        let mut none = false;
        let mut unknown = Vec::new();
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.to_ascii_lowercase().as_str() {
                "otlp" => list.push(ExporterKind::Otlp),
                "prometheus" => list.push(ExporterKind::Prometheus),
                "console" => list.push(ExporterKind::Console),
                "none" => none = true,
                "logging" => unknown.push(format!(
                    "`{item}` is a deprecated name this SDK does not support (use `console`)"
                )),
                _ => unknown.push(format!(
                    "`{item}` is not a metrics exporter (otlp, prometheus, console, none)"
                )),
            }
        }
        let fall_back = list.is_empty() && !none;
        let instead = if fall_back {
            "using the default instead".to_owned()
        } else if list.is_empty() {
            "using none instead".to_owned()
        } else {
            let names: Vec<String> = list
                .iter()
                .map(|k| format!("{k:?}").to_ascii_lowercase())
                .collect();
            format!("using {} instead", names.join(","))
        };
        for why in unknown {
            self.warn(VAR, format!("{VAR}={value:?}: {why}; ignored, {instead}"));
        }
        (!fall_back).then_some(list)
    }

    /// One signal's OTLP settings, from its variables (`vars`) then the generic ones.
    pub(crate) fn otlp(&self, vars: &SignalVars, b: &TelemetryBuilder) -> OtlpLayer {
        let mut layer = OtlpLayer {
            protocol: match b.otlp_protocol {
                Some(_) => None,
                None => self.pick(
                    &[vars.protocol, "OTEL_EXPORTER_OTLP_PROTOCOL"],
                    |v| match v.to_ascii_lowercase().as_str() {
                        "grpc" => Ok(OtlpProtocol::Grpc),
                        "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
                        "http/json" => Err("http/json is not supported (grpc or http/protobuf)".into()),
                        _ => Err("not a protocol (grpc or http/protobuf)".into()),
                    },
                    |p| protocol_name(*p).to_owned(),
                    "http/protobuf",
                ),
            },
            insecure: match b.otlp_insecure {
                Some(_) => None,
                None => self.flag(&[vars.insecure, "OTEL_EXPORTER_OTLP_INSECURE"]),
            },
            ..OtlpLayer::default()
        };
        let protocol = b
            .otlp_protocol
            .or(layer.protocol)
            .unwrap_or(OtlpProtocol::HttpProtobuf);
        let insecure = b.otlp_insecure.or(layer.insecure).unwrap_or(false);

        if vars.code_endpoint(b).is_none() {
            let default = match protocol {
                OtlpProtocol::HttpProtobuf => vars.default_http_endpoint,
                OtlpProtocol::Grpc => DEFAULT_GRPC_ENDPOINT,
            };
            let kinds = [
                (vars.endpoint, EndpointKind::AsIs),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", EndpointKind::Base),
            ];
            // Checked one variable at a time, so each knows its own kind.
            let mut rejected: Vec<Rejected> = Vec::new();
            for (var, kind) in kinds {
                let Some(raw) = self.raw(var) else { continue };
                match endpoint_url_for(&raw, kind, protocol, insecure, vars.path) {
                    Ok(url) => {
                        for r in rejected.drain(..) {
                            self.warn(
                                r.var,
                                format!(
                                    "{}={:?} is ignored: {}; using {} from {var} instead",
                                    r.var,
                                    r.shown,
                                    r.why,
                                    display_endpoint(&url)
                                ),
                            );
                        }
                        layer.endpoint = Some((raw, kind, Origin::Env(var)));
                        break;
                    }
                    Err(why) => rejected.push(Rejected {
                        var,
                        shown: display_endpoint(&raw),
                        why: format!("expected {why}"),
                    }),
                }
            }
            for r in rejected {
                self.warn(
                    r.var,
                    format!(
                        "{}={:?} is ignored: {}; using the default, {default}, instead",
                        r.var, r.shown, r.why
                    ),
                );
            }
        }

        layer.headers = self.headers(vars.headers);
        layer.timeout = self.millis(
            &[vars.timeout, "OTEL_EXPORTER_OTLP_TIMEOUT"],
            true,
            DEFAULT_OTLP_TIMEOUT,
        );
        layer.gzip = self.pick(
            &[vars.compression, "OTEL_EXPORTER_OTLP_COMPRESSION"],
            |v| match v.to_ascii_lowercase().as_str() {
                "gzip" => Ok(true),
                "none" => Ok(false),
                _ => Err("not a supported compression (gzip or none)".into()),
            },
            |gzip| if *gzip { "gzip" } else { "none" }.to_owned(),
            "none",
        );
        if !vars.traces {
            layer.temporality = self.pick(
                &["OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"],
                parse_temporality,
                |t| format!("{t:?}").to_ascii_lowercase(),
                "cumulative",
            );
        }
        let file = |vars: [&'static str; 2]| {
            vars.iter().find_map(|var| {
                self.path(var).map(|path| TlsFile {
                    path,
                    origin: Origin::Env(var),
                })
            })
        };
        layer.tls = TlsFiles {
            certificate: file([vars.certificate, "OTEL_EXPORTER_OTLP_CERTIFICATE"]),
            client_certificate: file([vars.client_certificate, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"]),
            client_key: file([vars.client_key, "OTEL_EXPORTER_OTLP_CLIENT_KEY"]),
        };
        layer
    }

    /// The signal-specific headers variable if it yields any header, else the
    /// generic one. A malformed entry is warned about (by position and name,
    /// never by value) and skipped.
    fn headers(&self, signal_var: &'static str) -> BTreeMap<String, String> {
        for var in [signal_var, "OTEL_EXPORTER_OTLP_HEADERS"] {
            let Some(value) = self.raw(var) else { continue };
            let mut headers = BTreeMap::new();
            for (n, entry) in value.split(',').enumerate().filter(|(_, e)| !e.trim().is_empty()) {
                let n = n + 1;
                let Some((key, raw)) = entry.split_once('=') else {
                    self.warn(
                        var,
                        format!("{var}: entry {n} is not key=value (not shown); skipped"),
                    );
                    continue;
                };
                let key = key.trim();
                match percent_decode(raw.trim()) {
                    None => self.warn(
                        var,
                        format!("{var}: the value of `{key}` (entry {n}) is not valid percent-encoding; skipped"),
                    ),
                    Some(v) if !valid_header(key, &v) => self.warn(
                        var,
                        format!("{var}: entry {n} (`{key}`) is not a valid header: expected {HEADER_RULE}; skipped"),
                    ),
                    Some(v) => {
                        headers.insert(key.to_owned(), v);
                    }
                }
            }
            if !headers.is_empty() {
                return headers;
            }
        }
        BTreeMap::new()
    }

    /// `OTEL_TRACES_EXPORTER`: one of `otlp`, `console`, `none`.
    pub(crate) fn traces_exporter(&self) -> Option<TracesExporter> {
        const VAR: &str = "OTEL_TRACES_EXPORTER";
        let value = self.raw(VAR)?;
        let mut chosen: Option<TracesExporter> = None;
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let kind = match item.to_ascii_lowercase().as_str() {
                "otlp" => TracesExporter::Otlp,
                "console" => TracesExporter::Console,
                "none" => TracesExporter::None,
                _ => {
                    self.warn(
                        VAR,
                        format!(
                            "{VAR}={value:?}: `{item}` is not a traces exporter this SDK supports (otlp, console, none); ignored"
                        ),
                    );
                    continue;
                }
            };
            match chosen {
                None => chosen = Some(kind),
                Some(first) if first != kind => self.warn(
                    VAR,
                    format!(
                        "{VAR}={value:?}: one traces exporter at a time; `{item}` is ignored, using {} instead",
                        traces_exporter_name(first)
                    ),
                ),
                Some(_) => {}
            }
        }
        if chosen.is_none() {
            self.warn(
                VAR,
                format!("{VAR}={value:?} names no usable exporter; using the default instead"),
            );
        }
        chosen
    }

    /// `OTEL_TRACES_SAMPLER` with `OTEL_TRACES_SAMPLER_ARG` for the ratio samplers
    /// (a missing or bad ratio means 1.0, as the specification says).
    pub(crate) fn sampler(&self) -> Option<TraceSampler> {
        let ratio = || {
            self.pick(
                &["OTEL_TRACES_SAMPLER_ARG"],
                |v| match v.parse::<f64>() {
                    Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                    _ => Err("not a ratio from 0.0 to 1.0".into()),
                },
                f64::to_string,
                "1.0",
            )
            .unwrap_or(1.0)
        };
        let name = self.pick(
            &["OTEL_TRACES_SAMPLER"],
            |v| {
                let name = v.to_ascii_lowercase();
                match name.as_str() {
                    "always_on"
                    | "always_off"
                    | "traceidratio"
                    | "parentbased_always_on"
                    | "parentbased_always_off"
                    | "parentbased_traceidratio" => Ok(name),
                    _ => Err(
                        "not a sampler this SDK supports (always_on, always_off, traceidratio, \
                              parentbased_always_on, parentbased_always_off, parentbased_traceidratio)"
                            .into(),
                    ),
                }
            },
            String::clone,
            "parentbased_always_on",
        )?;
        Some(match name.as_str() {
            "always_on" => TraceSampler::AlwaysOn,
            "always_off" => TraceSampler::AlwaysOff,
            "traceidratio" => TraceSampler::TraceIdRatio(ratio()),
            "parentbased_always_off" => TraceSampler::ParentBasedAlwaysOff,
            "parentbased_traceidratio" => TraceSampler::ParentBasedTraceIdRatio(ratio()),
            _ => TraceSampler::ParentBasedAlwaysOn,
        })
    }

    /// `OTEL_BSP_*`; each unset or unusable one is `None`.
    pub(crate) fn span_batch(&self) -> SpanBatchLayer {
        let defaults = SpanBatch::default();
        let count = |var: &'static str, default: usize| {
            self.pick(
                &[var],
                |v| match v.parse::<usize>() {
                    Ok(0) => Err("must be positive".into()),
                    Ok(n) => Ok(n),
                    Err(_) => Err("not a whole positive number".into()),
                },
                usize::to_string,
                &default.to_string(),
            )
        };
        SpanBatchLayer {
            schedule_delay: self.millis(&["OTEL_BSP_SCHEDULE_DELAY"], false, defaults.schedule_delay),
            export_timeout: self.millis(&["OTEL_BSP_EXPORT_TIMEOUT"], true, defaults.export_timeout),
            max_queue_size: count("OTEL_BSP_MAX_QUEUE_SIZE", defaults.max_queue_size),
            max_export_batch_size: count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", defaults.max_export_batch_size),
        }
    }

    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` above the queue size: the specification
    /// says it must not be; the queue size is used.
    pub(crate) fn batch_larger_than_queue(&self, batch: usize, queue: usize) {
        self.warn(
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            format!(
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=\"{batch}\" is ignored: more than the queue size ({queue}); using {queue} instead"
            ),
        );
    }

    pub(crate) fn prometheus(&self) -> (Option<String>, Option<u16>) {
        let host = self.pick(
            &["OTEL_EXPORTER_PROMETHEUS_HOST"],
            |v| {
                if valid_host(v) {
                    Ok(v.to_owned())
                } else {
                    Err("not a host name or IP address".into())
                }
            },
            String::clone,
            DEFAULT_PROMETHEUS_HOST,
        );
        let port = self.pick(
            &["OTEL_EXPORTER_PROMETHEUS_PORT"],
            |v| {
                v.parse::<u16>()
                    .map_err(|_| "not a port number from 0 to 65535".into())
            },
            u16::to_string,
            &DEFAULT_PROMETHEUS_PORT.to_string(),
        );
        (host, port)
    }
}

/// `OTEL_BSP_*` as the environment gave them (or the file's batch processor).
#[derive(Clone, Debug, Default)]
pub(crate) struct SpanBatchLayer {
    pub(crate) schedule_delay: Option<Duration>,
    pub(crate) export_timeout: Option<Duration>,
    pub(crate) max_queue_size: Option<usize>,
    pub(crate) max_export_batch_size: Option<usize>,
}

fn traces_exporter_name(kind: TracesExporter) -> &'static str {
    match kind {
        TracesExporter::Otlp => "otlp",
        TracesExporter::Console => "console",
        TracesExporter::None => "none",
    }
}

pub(crate) fn protocol_name(p: OtlpProtocol) -> &'static str {
    match p {
        OtlpProtocol::Grpc => "grpc",
        OtlpProtocol::HttpProtobuf => "http/protobuf",
    }
}

pub(crate) fn parse_temporality(v: &str) -> Result<TemporalityPreference, String> {
    match v.to_ascii_lowercase().as_str() {
        "cumulative" => Ok(TemporalityPreference::Cumulative),
        "delta" => Ok(TemporalityPreference::Delta),
        "lowmemory" | "low_memory" => Ok(TemporalityPreference::LowMemory),
        _ => Err("not a temporality (cumulative, delta or lowmemory)".into()),
    }
}

/// Parses `k=v,k2=v2`, keys and values percent-decoded (resource attributes).
pub(crate) fn key_value_list(value: &str) -> Result<Vec<(String, String)>, String> {
    value
        .split(',')
        .enumerate()
        .filter(|(_, item)| !item.trim().is_empty())
        .map(|(n, item)| {
            let n = n + 1;
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("entry {n} is not key=value"))?;
            let key =
                percent_decode(k.trim()).ok_or_else(|| format!("entry {n} has invalid percent-encoding"))?;
            let val =
                percent_decode(v.trim()).ok_or_else(|| format!("entry {n} has invalid percent-encoding"))?;
            if key.is_empty() {
                return Err(format!("entry {n} has an empty key"));
            }
            Ok((key, val))
        })
        .collect()
}

/// Decodes `%XX` escapes (W3C Baggage values); `None` if one is malformed or the
/// result is not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2Cc").as_deref(), Some("a b,c"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
    }
}
