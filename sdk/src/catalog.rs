//! The catalog of every instrument outcometer defines, rendered for `docs/metrics.md`.
//!
//! The docs table is generated from the same definitions the recorders use, and a
//! test fails when the committed file differs, so the docs cannot drift.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::instrument::{
    Backend, Counter, Histogram, HistogramSink, InstrumentDef, InstrumentKind, UpDownCounter,
};
use crate::{DeliveryRecorder, IdempotencyRecorder};

/// A backend that exports nothing; used to enumerate definitions.
struct Detached;

struct DropSink;

impl HistogramSink for DropSink {
    fn record(&self, _: usize, _: f64) {}
}

impl Backend for Detached {
    fn counter(&self, def: Arc<InstrumentDef>) -> Counter {
        Counter::new(def)
    }
    fn up_down_counter(&self, def: Arc<InstrumentDef>) -> UpDownCounter {
        UpDownCounter::new(def)
    }
    fn histogram(&self, def: Arc<InstrumentDef>) -> Histogram {
        Histogram::new(def, Arc::new(DropSink))
    }
}

/// Every instrument of every family, with default configuration and no namespace.
pub fn default_instruments() -> Vec<Arc<InstrumentDef>> {
    let mut all = Vec::new();
    if let Ok(r) = IdempotencyRecorder::builder().build(&Detached) {
        all.extend(r.instruments());
    }
    if let Ok(r) = DeliveryRecorder::builder().build(&Detached) {
        all.extend(r.instruments());
    }
    all
}

/// The name the OpenTelemetry Prometheus exporter gives `def`: dots become
/// underscores, the unit becomes a suffix (`s` → `_seconds`, `{…}` → nothing),
/// and counters end in `_total`.
pub fn prometheus_name(def: &InstrumentDef) -> String {
    let mut name: String = def
        .name()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    match def.spec().unit {
        "s" => name.push_str("_seconds"),
        "By" => name.push_str("_bytes"),
        "1" if def.spec().kind != InstrumentKind::Counter => name.push_str("_ratio"),
        _ => {}
    }
    if def.spec().kind == InstrumentKind::Counter {
        name.push_str("_total");
    }
    name
}

/// The Markdown table of `instruments`, one row per attribute key.
pub fn render_markdown(instruments: &[Arc<InstrumentDef>]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| Instrument | Prometheus | Kind | Unit | Attribute | Values | Worst-case series |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let mut total = 0usize;
    for def in instruments {
        total += def.series_bound();
        let docs: Vec<_> = def.dimensions().iter().flat_map(|d| d.docs()).collect();
        let head = format!(
            "| `{}` | `{}` | {} | `{}` |",
            def.name(),
            prometheus_name(def),
            def.spec().kind.as_str(),
            def.spec().unit
        );
        let bound = format!(
            "{} ({})",
            def.series_bound(),
            def.dimensions()
                .iter()
                .map(|d| d.cardinality().to_string())
                .collect::<Vec<_>>()
                .join(" × ")
        );
        if docs.is_empty() {
            let _ = writeln!(out, "{head} — | — | 1 |");
        }
        for (i, doc) in docs.iter().enumerate() {
            let series = if i == 0 { bound.as_str() } else { "〃" };
            let lead = if i == 0 { head.as_str() } else { "| 〃 | | | |" };
            let _ = writeln!(out, "{lead} `{}` | {} | {series} |", doc.key, doc.values);
        }
    }
    let _ = writeln!(out, "| **all** | | | | | | **{total}** |");
    let _ = writeln!(out);
    for def in instruments
        .iter()
        .filter(|d| d.spec().kind == InstrumentKind::Histogram)
    {
        let _ = writeln!(
            out,
            "- `{}` bucket boundaries ({}): `{:?}`",
            def.name(),
            def.spec().unit,
            def.spec().boundaries
        );
    }
    out
}
