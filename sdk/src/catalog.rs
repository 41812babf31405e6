//! The catalog of every instrument outcometer defines, rendered for `docs/metrics.md`.
//!
//! The docs table is generated from the same definitions the recorders use, and a
//! test fails when the committed file differs, so the docs cannot drift.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::backend::{Backend, Detached};
use crate::error::ConfigError;
use crate::instrument::{InstrumentDef, InstrumentKind};
use crate::registry::{self, Family, Registry};
use crate::{DeliveryRecorder, IdempotencyRecorder};

/// One instrument of the catalog.
#[derive(Debug)]
pub struct CatalogEntry {
    /// The family that declares it.
    pub family: &'static str,
    /// The definition.
    pub def: Arc<InstrumentDef>,
    /// `None` when exported by default; otherwise the builder call that turns it on.
    pub opt_in: Option<&'static str>,
}

fn register<F: Family>(backend: &(impl Backend + ?Sized)) -> Result<(), ConfigError> {
    registry::build::<F>(backend, F::catalog_config()).map(drop)
}

/// Registers every family this crate ships, in catalog order, each with its
/// catalog config (defaults, opt-in instruments on). A new family file adds its
/// line here and nowhere else.
pub fn register_shipped_families(backend: &(impl Backend + ?Sized)) -> Result<(), ConfigError> {
    register::<IdempotencyRecorder>(backend)?;
    register::<DeliveryRecorder>(backend)?;
    Ok(())
}

/// The catalog of every family registered in `registry`, in registration order.
pub fn catalog_of(registry: &Registry) -> Vec<CatalogEntry> {
    registry
        .families()
        .into_iter()
        .flat_map(|family| {
            family.instruments.into_iter().map(move |i| CatalogEntry {
                family: family.name,
                opt_in: i.def().spec().opt_in_call(),
                def: i.def().clone(),
            })
        })
        .collect()
}

/// Every instrument of every shipped family, opt-in ones included, with no namespace.
pub fn catalog() -> Vec<CatalogEntry> {
    let backend = Detached::with_registry(Registry::default());
    // The shipped families' defaults are valid; a failure here is caught by tests.
    let _ = register_shipped_families(&backend);
    backend.registry().map(catalog_of).unwrap_or_default()
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
    match def.spec().unit() {
        "s" => name.push_str("_seconds"),
        "By" => name.push_str("_bytes"),
        "1" if def.spec().kind() != InstrumentKind::Counter => name.push_str("_ratio"),
        _ => {}
    }
    if def.spec().kind() == InstrumentKind::Counter {
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
    for CatalogEntry { def, opt_in, .. } in entries {
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
            def.spec().kind().as_str(),
            def.spec().unit()
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
    for CatalogEntry { def, opt_in, .. } in entries {
        if let Some(call) = opt_in {
            let _ = writeln!(out, "- `{}` is opt-in: `{call}`", def.name());
        }
    }
    for def in entries
        .iter()
        .map(|e| &e.def)
        .filter(|d| d.spec().kind() == InstrumentKind::Histogram)
    {
        let _ = writeln!(
            out,
            "- `{}` bucket boundaries ({}): `{:?}`",
            def.name(),
            def.spec().unit(),
            def.spec().boundaries()
        );
    }
    out
}
