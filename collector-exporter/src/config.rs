//! Configuration: a builder, and the standard `OTEL_*` environment variables.
//!
//! Precedence, for every setting: **code > signal-specific variable
//! (`OTEL_EXPORTER_OTLP_METRICS_*`) > generic variable (`OTEL_EXPORTER_OTLP_*`) >
//! default** — the table is in `docs/configuration.md`. A value that does not parse
//! is a [`SetupError`] naming the variable and what it accepts, never a fallback.
//! Resolution is a pure function of the builder and an environment lookup, so it
//! is tested with maps instead of the process environment.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::SetupError;

/// Where metrics go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExporterKind {
    /// OTLP push.
    Otlp,
    /// Prometheus pull endpoint.
    Prometheus,
    /// Print each export to stdout (for debugging).
    Console,
}

/// OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// gRPC (`grpc`), default port 4317.
    Grpc,
    /// HTTP with protobuf bodies (`http/protobuf`), default port 4318.
    HttpProtobuf,
}

/// OTLP temporality preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemporalityPreference {
    /// Totals since start (Prometheus-friendly; the default).
    Cumulative,
    /// Differences since the last export, for counters and histograms.
    Delta,
    /// Delta for synchronous counters and histograms, cumulative otherwise.
    LowMemory,
}

/// Builds a [`crate::Telemetry`]; every setting left unset comes from the environment.
#[derive(Clone, Debug, Default)]
pub struct TelemetryBuilder {
    pub(crate) disabled: Option<bool>,
    pub(crate) service_name: Option<String>,
    pub(crate) service_version: Option<String>,
    pub(crate) service_instance_id: Option<String>,
    pub(crate) resource_attributes: Vec<(String, String)>,
    pub(crate) exporters: Option<Vec<ExporterKind>>,
    pub(crate) otlp_endpoint: Option<String>,
    pub(crate) otlp_protocol: Option<OtlpProtocol>,
    pub(crate) otlp_headers: Vec<(String, String)>,
    pub(crate) otlp_timeout: Option<Duration>,
    pub(crate) otlp_gzip: Option<bool>,
    pub(crate) temporality: Option<TemporalityPreference>,
    pub(crate) export_interval: Option<Duration>,
    pub(crate) export_timeout: Option<Duration>,
    pub(crate) prometheus_host: Option<String>,
    pub(crate) prometheus_port: Option<u16>,
    pub(crate) shutdown_timeout: Option<Duration>,
    pub(crate) namespace: Option<String>,
    pub(crate) prometheus_scope_labels: Option<bool>,
}

macro_rules! setters {
    ($( $(#[$doc:meta])* $name:ident : $field:ident = $ty:ty ),+ $(,)?) => {$(
        $(#[$doc])*
        pub fn $name(mut self, value: impl Into<$ty>) -> Self {
            self.$field = Some(value.into());
            self
        }
    )+};
}

impl TelemetryBuilder {
    setters! {
        /// Turn the whole pipeline off (`OTEL_SDK_DISABLED`).
        disabled: disabled = bool,
        /// `service.name` (`OTEL_SERVICE_NAME`).
        service_name: service_name = String,
        /// `service.version` (default: none).
        service_version: service_version = String,
        /// `service.instance.id` (default: random per process, so replicas never collide).
        service_instance_id: service_instance_id = String,
        /// OTLP endpoint, a base URL; for HTTP `/v1/metrics` is appended unless present
        /// (`OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT`).
        otlp_endpoint: otlp_endpoint = String,
        /// OTLP transport (`OTEL_EXPORTER_OTLP_[METRICS_]PROTOCOL`).
        otlp_protocol: otlp_protocol = OtlpProtocol,
        /// Per-export timeout (`OTEL_EXPORTER_OTLP_[METRICS_]TIMEOUT`).
        otlp_timeout: otlp_timeout = Duration,
        /// gzip request bodies (`OTEL_EXPORTER_OTLP_[METRICS_]COMPRESSION=gzip`).
        otlp_gzip: otlp_gzip = bool,
        /// Temporality (`OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`).
        temporality: temporality = TemporalityPreference,
        /// Push interval (`OTEL_METRIC_EXPORT_INTERVAL`).
        export_interval: export_interval = Duration,
        /// Push deadline (`OTEL_METRIC_EXPORT_TIMEOUT`).
        export_timeout: export_timeout = Duration,
        /// Pull endpoint host (`OTEL_EXPORTER_PROMETHEUS_HOST`).
        prometheus_host: prometheus_host = String,
        /// Pull endpoint port; 0 picks a free one (`OTEL_EXPORTER_PROMETHEUS_PORT`).
        prometheus_port: prometheus_port = u16,
        /// How long shutdown may wait for the final flush (default 5 s).
        shutdown_timeout: shutdown_timeout = Duration,
        /// Prefix of every outcometer instrument name built on this pipeline
        /// (`wildside` → `wildside_idempotency_requests_total`); set once here,
        /// not per recorder. Validated at build.
        namespace: namespace = String,
        /// Add `otel_scope_name`/`otel_scope_version` labels to every Prometheus
        /// series (default off: they double every label set for no query anyone
        /// writes, and outcometer's series all carry the same scope).
        prometheus_scope_labels: prometheus_scope_labels = bool,
    }

    /// Which exporters run (`OTEL_METRICS_EXPORTER`); an empty list means none.
    pub fn exporters(mut self, exporters: impl IntoIterator<Item = ExporterKind>) -> Self {
        self.exporters = Some(exporters.into_iter().collect());
        self
    }

    /// Adds a resource attribute (merged over `OTEL_RESOURCE_ATTRIBUTES`).
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.resource_attributes.push((key.into(), value.into()));
        self
    }

    /// Adds an OTLP header (merged over `OTEL_EXPORTER_OTLP_[METRICS_]HEADERS`).
    pub fn otlp_header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.otlp_headers.push((key.into(), value.into()));
        self
    }

    /// Resolves against the process environment.
    pub fn resolve(&self) -> Result<ResolvedConfig, SetupError> {
        self.resolve_with(|name| std::env::var(name).ok())
    }

    /// Resolves against `env` (a lookup by variable name).
    pub fn resolve_with(&self, env: impl Fn(&str) -> Option<String>) -> Result<ResolvedConfig, SetupError> {
        resolve(self, &env)
    }
}

/// Every setting, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedConfig {
    /// The pipeline is off.
    pub disabled: bool,
    /// Resource attributes, `service.name` and `service.instance.id` included.
    pub resource: BTreeMap<String, String>,
    /// Exporters to run, sorted, without duplicates.
    pub exporters: Vec<ExporterKind>,
    /// OTLP settings.
    pub otlp: OtlpConfig,
    /// Push interval.
    pub export_interval: Duration,
    /// Push deadline.
    pub export_timeout: Duration,
    /// Pull endpoint `host:port`.
    pub prometheus_address: String,
    /// Shutdown deadline.
    pub shutdown_timeout: Duration,
    /// `otel_scope_*` labels on Prometheus series.
    pub prometheus_scope_labels: bool,
}

/// Resolved OTLP settings.
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpConfig {
    /// The full URL requests go to (HTTP: ends in `/v1/metrics`).
    pub endpoint: String,
    /// Transport.
    pub protocol: OtlpProtocol,
    /// Headers (gRPC metadata).
    pub headers: BTreeMap<String, String>,
    /// Per-export timeout.
    pub timeout: Duration,
    /// gzip.
    pub gzip: bool,
    /// Temporality.
    pub temporality: TemporalityPreference,
}

/// The default `OTEL_EXPORTER_PROMETHEUS_HOST`.
pub const DEFAULT_PROMETHEUS_HOST: &str = "localhost";
/// The default `OTEL_EXPORTER_PROMETHEUS_PORT`.
pub const DEFAULT_PROMETHEUS_PORT: u16 = 9464;

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The first of `names` that is set (and not blank), with its name.
fn lookup(env: Env<'_>, names: &[&'static str]) -> Option<(&'static str, String)> {
    names.iter().find_map(|name| {
        env(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .map(|v| (*name, v))
    })
}

fn invalid(var: &'static str, value: &str, expected: &'static str) -> SetupError {
    SetupError::InvalidEnv {
        var,
        value: value.to_owned(),
        expected,
    }
}

fn millis(env: Env<'_>, names: &[&'static str]) -> Result<Option<Duration>, SetupError> {
    match lookup(env, names) {
        None => Ok(None),
        Some((var, value)) => value
            .parse::<u64>()
            .map(|ms| Some(Duration::from_millis(ms)))
            .map_err(|_| invalid(var, &value, "a whole number of milliseconds, e.g. 10000")),
    }
}

/// Parses `k=v,k2=v2` with percent-decoding (W3C baggage style, as the spec says).
fn key_value_list(var: &'static str, value: &str) -> Result<Vec<(String, String)>, SetupError> {
    const EXPECTED: &str =
        "comma-separated key=value pairs, percent-encoded, e.g. \"api-key=abc,tenant=a%20b\"";
    value
        .split(',')
        .filter(|item| !item.trim().is_empty())
        .map(|item| {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| invalid(var, value, EXPECTED))?;
            let key = percent_decode(k.trim()).ok_or_else(|| invalid(var, value, EXPECTED))?;
            let val = percent_decode(v.trim()).ok_or_else(|| invalid(var, value, EXPECTED))?;
            if key.is_empty() {
                return Err(invalid(var, value, EXPECTED));
            }
            Ok((key, val))
        })
        .collect()
}

fn percent_decode(s: &str) -> Option<String> {
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

fn parse_bool(var: &'static str, value: &str) -> Result<bool, SetupError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(var, value, "true or false")),
    }
}

/// Checks an OTLP endpoint: http(s) URL with a host.
fn check_endpoint(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or("an http:// or https:// URL, e.g. http://localhost:4317")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_ok = outcometer::toolkit::host_of(url).is_some();
    let port_ok = match authority.rsplit_once(':') {
        Some((_, port)) if !authority.ends_with(']') => port.parse::<u16>().is_ok(),
        _ => true,
    };
    if authority.is_empty() || !host_ok || !port_ok || authority.contains('@') {
        return Err(
            "an http:// or https:// URL with a host and an optional port, e.g. http://localhost:4317",
        );
    }
    Ok(())
}

/// A header both HTTP and gRPC metadata accept.
fn valid_header(name: &str, value: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        && !value.bytes().any(|c| c.is_ascii_control())
}

fn with_metrics_path(base: &str) -> String {
    let trimmed = base.trim_end_matches('/');
    if trimmed.ends_with("/v1/metrics") {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/v1/metrics")
    }
}

fn default_service_name() -> String {
    let exe = std::env::current_exe().ok();
    match exe.as_ref().and_then(|p| p.file_name()).and_then(|n| n.to_str()) {
        Some(name) => format!("unknown_service:{name}"),
        None => "unknown_service".to_owned(),
    }
}

/// A random 128-bit id in UUID v4 text form, from std's randomly keyed hasher.
pub(crate) fn random_instance_id() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let word = |salt: u64| {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        h.finish()
    };
    let (a, b) = (word(1), word(2));
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

fn resolve(b: &TelemetryBuilder, env: Env<'_>) -> Result<ResolvedConfig, SetupError> {
    let disabled = match b.disabled {
        Some(d) => d,
        None => match lookup(env, &["OTEL_SDK_DISABLED"]) {
            Some((var, v)) => parse_bool(var, &v)?,
            None => false,
        },
    };

    let mut resource = BTreeMap::new();
    if let Some((var, v)) = lookup(env, &["OTEL_RESOURCE_ATTRIBUTES"]) {
        resource.extend(key_value_list(var, &v)?);
    }
    if let Some((_, name)) = lookup(env, &["OTEL_SERVICE_NAME"]) {
        resource.insert("service.name".to_owned(), name);
    }
    resource.extend(b.resource_attributes.iter().cloned());
    if let Some(name) = &b.service_name {
        resource.insert("service.name".to_owned(), name.clone());
    }
    if let Some(version) = &b.service_version {
        resource.insert("service.version".to_owned(), version.clone());
    }
    if let Some(id) = &b.service_instance_id {
        resource.insert("service.instance.id".to_owned(), id.clone());
    }
    resource
        .entry("service.name".to_owned())
        .or_insert_with(default_service_name);
    resource
        .entry("service.instance.id".to_owned())
        .or_insert_with(random_instance_id);

    let mut exporters = match &b.exporters {
        Some(list) => list.clone(),
        None => match lookup(env, &["OTEL_METRICS_EXPORTER"]) {
            None => vec![ExporterKind::Otlp],
            Some((var, v)) => {
                let mut list = Vec::new();
                for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    match item.to_ascii_lowercase().as_str() {
                        "otlp" => list.push(ExporterKind::Otlp),
                        "prometheus" => list.push(ExporterKind::Prometheus),
                        "console" => list.push(ExporterKind::Console),
                        "none" => {}
                        _ => {
                            return Err(invalid(
                                var,
                                &v,
                                "a comma-separated list of otlp, prometheus, console, none",
                            ))
                        }
                    }
                }
                list
            }
        },
    };
    exporters.sort();
    exporters.dedup();

    let protocol = match b.otlp_protocol {
        Some(p) => p,
        None => match lookup(
            env,
            &[
                "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ],
        ) {
            None => OtlpProtocol::HttpProtobuf,
            Some((var, v)) => match v.as_str() {
                "grpc" => OtlpProtocol::Grpc,
                "http/protobuf" => OtlpProtocol::HttpProtobuf,
                _ => {
                    return Err(invalid(
                        var,
                        &v,
                        "grpc or http/protobuf (http/json is not supported)",
                    ))
                }
            },
        },
    };

    let endpoint = if let Some(url) = &b.otlp_endpoint {
        check_endpoint(url).map_err(|expected| SetupError::InvalidSetting {
            setting: "otlp_endpoint",
            value: url.clone(),
            expected,
        })?;
        match protocol {
            OtlpProtocol::HttpProtobuf => with_metrics_path(url),
            OtlpProtocol::Grpc => url.clone(),
        }
    } else if let Some((var, url)) = lookup(env, &["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"]) {
        check_endpoint(&url).map_err(|expected| invalid(var, &url, expected))?;
        url // signal-specific: used as is
    } else if let Some((var, url)) = lookup(env, &["OTEL_EXPORTER_OTLP_ENDPOINT"]) {
        check_endpoint(&url).map_err(|expected| invalid(var, &url, expected))?;
        match protocol {
            OtlpProtocol::HttpProtobuf => with_metrics_path(&url),
            OtlpProtocol::Grpc => url,
        }
    } else {
        match protocol {
            OtlpProtocol::HttpProtobuf => "http://localhost:4318/v1/metrics".to_owned(),
            OtlpProtocol::Grpc => "http://localhost:4317".to_owned(),
        }
    };

    const HEADER_RULE: &str =
        "header names of ASCII letters, digits, '-' or '_', values without control characters";
    let mut headers = BTreeMap::new();
    let header_vars = ["OTEL_EXPORTER_OTLP_METRICS_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"];
    if let Some((var, v)) = lookup(env, &header_vars) {
        for (key, value) in key_value_list(var, &v)? {
            if !valid_header(&key, &value) {
                return Err(invalid(var, &format!("{key}={value}"), HEADER_RULE));
            }
            headers.insert(key, value);
        }
    }
    for (key, value) in &b.otlp_headers {
        if !valid_header(key, value) {
            return Err(SetupError::InvalidSetting {
                setting: "otlp_header",
                value: format!("{key}={value}"),
                expected: HEADER_RULE,
            });
        }
        headers.insert(key.clone(), value.clone());
    }

    let timeout = match b.otlp_timeout {
        Some(t) => t,
        None => millis(
            env,
            &["OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"],
        )?
        .unwrap_or(Duration::from_secs(10)),
    };

    let gzip = match b.otlp_gzip {
        Some(g) => g,
        None => match lookup(
            env,
            &[
                "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
                "OTEL_EXPORTER_OTLP_COMPRESSION",
            ],
        ) {
            None => false,
            Some((var, v)) => match v.to_ascii_lowercase().as_str() {
                "gzip" => true,
                "none" => false,
                _ => return Err(invalid(var, &v, "gzip or none")),
            },
        },
    };

    let temporality = match b.temporality {
        Some(t) => t,
        None => match lookup(env, &["OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"]) {
            None => TemporalityPreference::Cumulative,
            Some((var, v)) => match v.to_ascii_lowercase().as_str() {
                "cumulative" => TemporalityPreference::Cumulative,
                "delta" => TemporalityPreference::Delta,
                "lowmemory" => TemporalityPreference::LowMemory,
                _ => return Err(invalid(var, &v, "cumulative, delta or lowmemory")),
            },
        },
    };

    let export_interval = match b.export_interval {
        Some(i) => i,
        None => millis(env, &["OTEL_METRIC_EXPORT_INTERVAL"])?.unwrap_or(Duration::from_secs(60)),
    };
    let export_timeout = match b.export_timeout {
        Some(t) => t,
        None => millis(env, &["OTEL_METRIC_EXPORT_TIMEOUT"])?.unwrap_or(Duration::from_secs(30)),
    };
    if export_interval.is_zero() {
        return Err(SetupError::InvalidSetting {
            setting: "export_interval",
            value: "0ms".into(),
            expected: "a positive duration (OTEL_METRIC_EXPORT_INTERVAL in milliseconds)",
        });
    }

    let host = match &b.prometheus_host {
        Some(h) => h.clone(),
        None => lookup(env, &["OTEL_EXPORTER_PROMETHEUS_HOST"])
            .map_or(DEFAULT_PROMETHEUS_HOST.to_owned(), |(_, h)| h),
    };
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        return Err(invalid(
            "OTEL_EXPORTER_PROMETHEUS_HOST",
            &host,
            "a host name or IP address, e.g. 127.0.0.1",
        ));
    }
    let port = match b.prometheus_port {
        Some(p) => p,
        None => match lookup(env, &["OTEL_EXPORTER_PROMETHEUS_PORT"]) {
            None => DEFAULT_PROMETHEUS_PORT,
            Some((var, v)) => v
                .parse::<u16>()
                .map_err(|_| invalid(var, &v, "a port number from 0 to 65535"))?,
        },
    };
    let prometheus_address = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };

    Ok(ResolvedConfig {
        disabled,
        resource,
        exporters: if disabled { Vec::new() } else { exporters },
        otlp: OtlpConfig {
            endpoint,
            protocol,
            headers,
            timeout,
            gzip,
            temporality,
        },
        export_interval,
        export_timeout,
        prometheus_address,
        shutdown_timeout: b.shutdown_timeout.unwrap_or(Duration::from_secs(5)),
        prometheus_scope_labels: b.prometheus_scope_labels.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn defaults_follow_the_specification() {
        let c = TelemetryBuilder::default().resolve_with(env(&[])).unwrap();
        assert!(!c.disabled);
        assert_eq!(c.exporters, [ExporterKind::Otlp]);
        assert_eq!(c.otlp.endpoint, "http://localhost:4318/v1/metrics");
        assert_eq!(c.otlp.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(c.otlp.timeout, Duration::from_secs(10));
        assert_eq!(c.otlp.temporality, TemporalityPreference::Cumulative);
        assert_eq!(c.export_interval, Duration::from_secs(60));
        assert_eq!(c.export_timeout, Duration::from_secs(30));
        assert_eq!(c.prometheus_address, "localhost:9464");
        assert!(c.resource["service.name"].starts_with("unknown_service"));
        assert_eq!(c.resource["service.instance.id"].len(), 36);
    }

    #[test]
    fn instance_ids_differ() {
        assert_ne!(random_instance_id(), random_instance_id());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2Cc").as_deref(), Some("a b,c"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
    }
}
