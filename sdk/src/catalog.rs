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
use crate::{
    ActionRecorder, CacheRecorder, CheckpointRecorder, DedupRecorder, DeliveryRecorder,
    EventProcessingRecorder, IdempotencyRecorder, QueueRecorder,
};

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
    register::<EventProcessingRecorder>(backend)?;
    register::<ActionRecorder>(backend)?;
    register::<QueueRecorder>(backend)?;
    register::<CacheRecorder>(backend)?;
    register::<DedupRecorder>(backend)?;
    register::<CheckpointRecorder>(backend)?;
    register::<crate::GatewayRecorder>(backend)?;
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

/// The Prometheus name of `def`: see [`prometheus_metric_name`].
pub fn prometheus_name(def: &InstrumentDef) -> String {
    let kind = def.spec().kind();
    prometheus_metric_name(def.name(), def.spec().unit(), kind == InstrumentKind::Counter)
}

/// The Prometheus name of an OpenTelemetry metric, as the OpenTelemetry →
/// Prometheus compatibility rules give it: characters outside `[a-zA-Z0-9_:]`
/// become `_`, runs of `_` collapse, a leading digit gets a `_` in front; the unit
/// becomes a suffix (`s` → `_seconds`, `By` → `_bytes`, `By/s` →
/// `_bytes_per_second`, `1` → `_ratio` on non-counters, `{…}` annotations
/// dropped) unless the name already ends in it; counters end in `_total`, once.
///
/// ```
/// use outcometer::catalog::prometheus_metric_name as name;
/// assert_eq!(name("delivery.duration", "s", false), "delivery_duration_seconds");
/// assert_eq!(name("jobs.done_total", "{job}", true), "jobs_done_total");
/// assert_eq!(name("x.seconds", "s", false), "x_seconds");
/// assert_eq!(name("http..requests", "1", false), "http_requests_ratio");
/// assert_eq!(name("9lives", "By/s", false), "_9lives_bytes_per_second");
/// ```
pub fn prometheus_metric_name(name: &str, unit: &str, counter: bool) -> String {
    let mut out = String::with_capacity(name.len() + 16);
    push_sanitized(&mut out, name);
    if let Some(unit) = unit_suffix(unit, counter) {
        let already = out.ends_with(&unit) && out[..out.len() - unit.len()].ends_with('_');
        if !already && !unit.is_empty() {
            if !out.ends_with('_') {
                out.push('_');
            }
            out.push_str(&unit);
        }
    }
    if counter && !out.ends_with("_total") {
        if !out.ends_with('_') {
            out.push('_');
        }
        out.push_str("total");
    }
    out
}

/// Appends `name` with invalid characters as `_`, `_` runs collapsed and a
/// leading digit prefixed: a valid Prometheus metric or label name.
pub fn push_sanitized(out: &mut String, name: &str) {
    let start = out.len();
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == ':' {
            c
        } else {
            '_'
        };
        if c == '_' && out.len() > start && out.ends_with('_') {
            continue;
        }
        if out.len() == start && c.is_ascii_digit() {
            out.push('_');
        }
        out.push(c);
    }
    if out.len() == start {
        out.push('_');
    }
}

/// The Prometheus unit word of a UCUM unit, `None` when it has none.
fn unit_suffix(unit: &str, counter: bool) -> Option<String> {
    let unit = unit.trim();
    let word = |u: &str| -> Option<&'static str> {
        Some(match u {
            "d" => "days",
            "h" => "hours",
            "min" => "minutes",
            "s" => "seconds",
            "ms" => "milliseconds",
            "us" => "microseconds",
            "ns" => "nanoseconds",
            "By" => "bytes",
            "KiBy" => "kibibytes",
            "MiBy" => "mebibytes",
            "GiBy" => "gibibytes",
            "TiBy" => "tibibytes",
            "KBy" => "kilobytes",
            "MBy" => "megabytes",
            "GBy" => "gigabytes",
            "TBy" => "terabytes",
            "m" => "meters",
            "V" => "volts",
            "A" => "amperes",
            "J" => "joules",
            "W" => "watts",
            "g" => "grams",
            "Cel" => "celsius",
            "Hz" => "hertz",
            "%" => "percent",
            _ => return None,
        })
    };
    let per = |u: &str| -> Option<&'static str> {
        Some(match u {
            "s" => "second",
            "m" => "minute",
            "h" => "hour",
            "d" => "day",
            "w" => "week",
            "mo" => "month",
            "y" => "year",
            _ => return None,
        })
    };
    if unit.is_empty() || unit.starts_with('{') {
        return None;
    }
    if unit == "1" {
        return (!counter).then(|| "ratio".to_owned());
    }
    let sanitize = |u: &str| {
        let mut s = String::new();
        push_sanitized(&mut s, u.trim_matches(|c: char| !c.is_ascii_alphanumeric()));
        s
    };
    match unit.split_once('/') {
        Some((num, den)) => {
            let num = word(num).map_or_else(|| sanitize(num), str::to_owned);
            let den = per(den).map_or_else(|| sanitize(den), str::to_owned);
            Some(format!("{num}_per_{den}"))
        }
        None => Some(word(unit).map_or_else(|| sanitize(unit), str::to_owned)),
    }
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
