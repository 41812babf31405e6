//! `/v1/stats`: a JSON summary of the LLM-gateway family, from the sources
//! `/metrics` renders.
//!
//! Request, error and pending counts are sums over the gateway recorder's cells
//! (found in the pipeline's registry); averages are sum ÷ count of the
//! `request.duration` and `backend.latency` histogram cells, the ones the
//! exposition renders; `healthy` is one run of the
//! recorder's fleet callback. Nothing is counted twice, so the summary and a
//! scrape taken at the same instant agree. The schema is in `docs/stats.md`.

use std::collections::HashMap;
use std::fmt::Write as _;

use outcometer::toolkit::{AnyInstrument, Registry};
use outcometer::GatewayRecorder;

use crate::exposition::Exposition;

/// The `/v1/stats` body.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Whole seconds since the pipeline started.
    pub uptime_seconds: u64,
    /// Request totals.
    pub requests: RequestStats,
    /// One entry per backend.
    pub backends: Vec<BackendStats>,
    /// One entry per model.
    pub models: Vec<ModelStats>,
}

/// Request totals of a [`Stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestStats {
    /// Requests a backend answered: `sum(nexus_requests_total)`.
    pub total: u64,
    /// Those answered with a 2xx status: `sum(nexus_requests_total{status=~"2.."})`.
    pub success: u64,
    /// Failed requests, answered by a backend or not: `sum(nexus_errors_total)`.
    pub errors: u64,
}

/// One backend of a [`Stats`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BackendStats {
    /// The `backend` value (an admitted name, or `_OTHER`).
    pub name: String,
    /// Requests it answered.
    pub requests: u64,
    /// Mean health-check latency in milliseconds (`backend.latency`); `None`
    /// before its first health check.
    pub average_latency_ms: Option<f64>,
    /// Requests pending on it now.
    pub pending: i64,
    /// Whether the fleet callback reported it healthy; `None` without a callback,
    /// for a backend it did not report, and for `_OTHER`.
    pub healthy: Option<bool>,
}

/// One model of a [`Stats`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ModelStats {
    /// The `model` value (an admitted name, or `_OTHER`).
    pub name: String,
    /// Requests it served.
    pub requests: u64,
    /// Mean request duration in milliseconds (`request.duration`); `None` before
    /// its first request.
    pub average_duration_ms: Option<f64>,
}

/// Why no summary can be given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatsUnavailable {
    /// The pipeline was shut down.
    #[error("the metrics pipeline is shut down")]
    ShutDown,
    /// The pipeline has no Prometheus exporter, whose reader the summary reads.
    #[error("the pipeline has no Prometheus exporter: add ExporterKind::Prometheus to serve /v1/stats")]
    NoPullExporter,
}

/// Per attribute value: histogram count and sum.
type Totals = HashMap<String, (u64, f64)>;

/// Sums the count and sum of every series of histogram `name` (kept in cells)
/// by the value of attribute `key`.
fn histogram_totals(registry: &Registry, name: &str, key: &str) -> Totals {
    let mut totals = Totals::new();
    for instrument in registry.instruments() {
        let AnyInstrument::Histogram(histogram) = instrument else {
            continue;
        };
        let Some(cells) = histogram.cells().filter(|c| c.def().name() == name) else {
            continue;
        };
        for series in cells.recorded_series() {
            let value = cells
                .def()
                .attributes(series)
                .into_iter()
                .find(|a| a.key == key)
                .map(|a| a.value.to_text());
            if let Some(value) = value {
                let entry = totals.entry(value).or_default();
                entry.0 += cells.count(series);
                entry.1 += cells.sum(series);
            }
        }
    }
    totals
}

fn average_ms(totals: &Totals, name: &str) -> Option<f64> {
    let (count, sum) = totals.get(name)?;
    (*count > 0).then(|| sum / *count as f64 * 1000.0)
}

/// The summary of the pipeline `exposition` renders.
pub(crate) fn snapshot(exposition: &Exposition) -> Result<Stats, StatsUnavailable> {
    if exposition.is_closed() {
        return Err(StatsUnavailable::ShutDown);
    }
    let registry = exposition.registry().ok_or(StatsUnavailable::NoPullExporter)?;
    let uptime_seconds = exposition.uptime().as_secs();
    let Some(gateway) = registry.recorder::<GatewayRecorder>() else {
        // No gateway family on this pipeline: nothing to sum, but the endpoint
        // answers as long as the pipeline runs.
        return Ok(Stats {
            uptime_seconds,
            ..Stats::default()
        });
    };
    let durations = histogram_totals(registry, gateway.request_duration_name(), "model");
    let latencies = histogram_totals(registry, gateway.backend_latency_name(), "backend");
    let summary = gateway.summary();
    Ok(Stats {
        uptime_seconds,
        requests: RequestStats {
            total: summary.requests,
            success: summary.successful,
            errors: summary.errors,
        },
        backends: summary
            .backends
            .into_iter()
            .map(|b| BackendStats {
                average_latency_ms: average_ms(&latencies, &b.name),
                name: b.name,
                requests: b.requests,
                pending: b.pending,
                healthy: b.healthy,
            })
            .collect(),
        models: summary
            .models
            .into_iter()
            .map(|m| ModelStats {
                average_duration_ms: average_ms(&durations, &m.name),
                name: m.name,
                requests: m.requests,
            })
            .collect(),
    })
}

impl Stats {
    /// The JSON body, keys in the documented order.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(128 + 96 * (self.backends.len() + self.models.len()));
        let _ = write!(
            out,
            r#"{{"uptime_seconds":{},"requests":{{"total":{},"success":{},"errors":{}}},"backends":["#,
            self.uptime_seconds, self.requests.total, self.requests.success, self.requests.errors
        );
        for (i, backend) in self.backends.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(r#"{"name":"#);
            push_json_string(&mut out, &backend.name);
            let _ = write!(out, r#","requests":{},"average_latency_ms":"#, backend.requests);
            push_json_number(&mut out, backend.average_latency_ms);
            let _ = write!(out, r#","pending":{},"healthy":"#, backend.pending);
            out.push_str(match backend.healthy {
                Some(true) => "true",
                Some(false) => "false",
                None => "null",
            });
            out.push('}');
        }
        out.push_str(r#"],"models":["#);
        for (i, model) in self.models.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(r#"{"name":"#);
            push_json_string(&mut out, &model.name);
            let _ = write!(out, r#","requests":{},"average_duration_ms":"#, model.requests);
            push_json_number(&mut out, model.average_duration_ms);
            out.push('}');
        }
        out.push_str("]}");
        out
    }
}

/// `{"error":"…"}`: the body of every `/v1/stats` refusal.
pub(crate) fn error_json(message: &str) -> String {
    let mut out = String::from(r#"{"error":"#);
    push_json_string(&mut out, message);
    out.push('}');
    out
}

/// A JSON string literal: quotes, backslashes and control characters escaped.
fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON number, or `null` for no value (and for a non-finite one, which JSON cannot carry).
fn push_json_number(out: &mut String, value: Option<f64>) {
    match value {
        Some(v) if v.is_finite() => {
            let _ = write!(out, "{v}");
        }
        _ => out.push_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_names_and_writes_null_for_missing_values() {
        let stats = Stats {
            uptime_seconds: 7,
            requests: RequestStats {
                total: 3,
                success: 2,
                errors: 1,
            },
            backends: vec![BackendStats {
                name: "gpu \"a\"\\1".into(),
                requests: 3,
                average_latency_ms: None,
                pending: -1,
                healthy: Some(false),
            }],
            models: vec![ModelStats {
                name: "gpt-4.1\u{1}".into(),
                requests: 3,
                average_duration_ms: Some(1500.25),
            }],
        };
        assert_eq!(
            stats.to_json(),
            r#"{"uptime_seconds":7,"requests":{"total":3,"success":2,"errors":1},"backends":[{"name":"gpu \"a\"\\1","requests":3,"average_latency_ms":null,"pending":-1,"healthy":false}],"models":[{"name":"gpt-4.1\u0001","requests":3,"average_duration_ms":1500.25}]}"#
        );
        assert_eq!(
            Stats::default().to_json(),
            r#"{"uptime_seconds":0,"requests":{"total":0,"success":0,"errors":0},"backends":[],"models":[]}"#
        );
        let mut out = String::new();
        push_json_number(&mut out, Some(f64::NAN));
        assert_eq!(out, "null");
        assert_eq!(error_json("shut \"down\""), r#"{"error":"shut \"down\""}"#);
    }
}
