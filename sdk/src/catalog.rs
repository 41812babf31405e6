//! The catalog of every instrument outcometer defines, rendered for `docs/metrics.md`.
//!
//! The docs table is generated from the same definitions the recorders use, and a
//! test fails when the committed file differs, so the docs cannot drift.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::idempotency::KEY_AGE;
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

/// One instrument of the catalog.
#[derive(Debug)]
pub struct CatalogEntry {
    /// The definition, with default configuration and no namespace.
    pub def: Arc<InstrumentDef>,
    /// `None` when exported by default; otherwise the builder call that turns it on.
    pub opt_in: Option<&'static str>,
}

/// Every instrument of every family, opt-in ones included, in catalog order.
pub fn catalog() -> Vec<CatalogEntry> {
    let mut all = Vec::new();
    if let Ok(r) = IdempotencyRecorder::builder()
        .key_age_histogram(true)
        .build(&Detached)
    {
        all.extend(r.instruments());
    }
    if let Ok(r) = DeliveryRecorder::builder().build(&Detached) {
        all.extend(r.instruments());
    }
    all.into_iter()
        .map(|def| CatalogEntry {
            opt_in: std::ptr::eq(def.spec(), &KEY_AGE)
                .then_some("IdempotencyRecorder::builder().key_age_histogram(true)"),
            def,
        })
        .collect()
}

/// Every instrument a default configuration exports, with no namespace.
pub fn default_instruments() -> Vec<Arc<InstrumentDef>> {
    catalog()
        .into_iter()
        .filter(|e| e.opt_in.is_none())
        .map(|e| e.def)
        .collect()
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

/// The Markdown table of `entries`, one row per attribute key; opt-in
/// instruments are marked and left out of the default total.
pub fn render_markdown(entries: &[CatalogEntry]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| Instrument | Prometheus | Kind | Unit | Attribute | Values | Worst-case series |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let (mut total, mut opt_in_total) = (0usize, 0usize);
    for CatalogEntry { def, opt_in } in entries {
        if opt_in.is_some() {
            opt_in_total += def.series_bound();
        } else {
            total += def.series_bound();
        }
        let docs: Vec<_> = def.dimensions().iter().flat_map(|d| d.docs()).collect();
        let head = format!(
            "| `{}`{} | `{}` | {} | `{}` |",
            def.name(),
            if opt_in.is_some() { " (opt-in)" } else { "" },
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
    let _ = writeln!(
        out,
        "| **all, by default** | | | | | | **{total}** (+{opt_in_total} opt-in) |"
    );
    let _ = writeln!(out);
    for CatalogEntry { def, opt_in } in entries {
        if let Some(call) = opt_in {
            let _ = writeln!(out, "- `{}` is opt-in: `{call}`", def.name());
        }
    }
    for def in entries
        .iter()
        .map(|e| &e.def)
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
