//! docs/ops/dashboards/*.json are Grafana dashboards generated from the catalog
//! (`outcometer::catalog::catalog()`) and the panel table below; this fails when
//! the committed files differ. A panel names an instrument by its OpenTelemetry
//! name between `%` signs (`%delivery.attempts%`); the generator resolves it in the
//! catalog to `${prefix}_<Prometheus name>`, so renaming an instrument fails here
//! (unknown name) instead of leaving a panel that shows nothing, and every
//! instrument of a family must appear on its family's dashboard.
//! Regenerate with `UPDATE_DOCS=1 cargo test -p outcometer-tests --test dashboards`.

use std::collections::{BTreeMap, BTreeSet};

use outcometer::catalog::{catalog, prometheus_name, push_sanitized, CatalogEntry};
use serde_json::{json, Value};

/// One panel: title, description, Grafana unit, and `(expr, legend)` targets.
struct Panel {
    title: &'static str,
    description: &'static str,
    unit: &'static str,
    targets: &'static [(&'static str, &'static str)],
}

/// One dashboard per family: its family name, title, and the default of `prefix`.
struct Dashboard {
    family: &'static str,
    title: &'static str,
    prefix: &'static str,
    panels: &'static [Panel],
}

const fn p(
    title: &'static str,
    description: &'static str,
    unit: &'static str,
    targets: &'static [(&'static str, &'static str)],
) -> Panel {
    Panel {
        title,
        description,
        unit,
        targets,
    }
}

const DASHBOARDS: &[Dashboard] = &[
    Dashboard {
        family: "idempotency",
        title: "Idempotency",
        prefix: "wildside",
        panels: &[
            p("Requests per second by outcome", "Every request that carried (or lacked) an idempotency key, by how it was answered.", "reqps", &[(
                "sum by (outcome) (rate(%idempotency.requests%[$__rate_interval]))",
                "{{outcome}}",
            )]),
            p("Hit ratio", "Share of requests answered by replaying a stored response. A rise means clients retry more; zero with traffic means keys are not reaching the store.", "percentunit", &[(
                "sum(rate(%idempotency.requests%{outcome=\"hit\"}[$__rate_interval]))\n  / sum(rate(%idempotency.requests%[$__rate_interval]))",
                "hit ratio",
            )]),
            p("Conflict ratio", "Share of requests that reused a key with a different payload: client bugs, or keys generated too coarsely.", "percentunit", &[(
                "sum(rate(%idempotency.requests%{outcome=\"conflict\"}[$__rate_interval]))\n  / sum(rate(%idempotency.requests%[$__rate_interval]))",
                "conflict ratio",
            )]),
            p("Stale-lock recoveries and in-flight replays per second", "Locks abandoned by a worker that died mid-request, and requests that arrived while their key's first request was still running.", "reqps", &[(
                "sum by (outcome) (rate(%idempotency.requests%{outcome=~\"stale_lock_recovered|in_flight\"}[$__rate_interval]))",
                "{{outcome}}",
            )]),
            p("Key reuse by key age", "Requests that reused a key, by the key's age: sizes the key TTL.", "reqps", &[(
                "sum by (age_bucket) (rate(%idempotency.requests%{age_bucket!=\"n/a\"}[$__rate_interval]))",
                "{{age_bucket}}",
            )]),
            p("Requests per second by user scope", "By the user-scope prefix (a bounded hash prefix, never the user id).", "reqps", &[(
                "sum by (user_scope) (rate(%idempotency.requests%[$__rate_interval]))",
                "{{user_scope}}",
            )]),
            p("Key age at reuse, p50 and p90", "Needs the opt-in histogram (`IdempotencyRecorder::builder().key_age_histogram(true)`).", "s", &[
                ("histogram_quantile(0.5, sum by (le) (rate(%idempotency.key.age%_bucket[$__rate_interval])))", "p50"),
                ("histogram_quantile(0.9, sum by (le) (rate(%idempotency.key.age%_bucket[$__rate_interval])))", "p90"),
            ]),
            p("Request duration p95 by outcome", "Needs the opt-in histogram (`IdempotencyRecorder::builder().request_duration_histogram(true)`).", "s", &[(
                "histogram_quantile(0.95, sum by (outcome, le) (rate(%idempotency.request.duration%_bucket[$__rate_interval])))",
                "{{outcome}}",
            )]),
            p("Store fallbacks per second by operation", "Requests served fail-open because the key store could not be read or written.", "ops", &[(
                "sum by (operation) (rate(%idempotency.store.fallbacks%[$__rate_interval]))",
                "{{operation}}",
            )]),
            p("Store errors per second", "Key-store errors by operation and kind.", "ops", &[(
                "sum by (operation, error_type) (rate(%idempotency.store.errors%[$__rate_interval]))",
                "{{operation}} {{error_type}}",
            )]),
        ],
    },
    Dashboard {
        family: "delivery",
        title: "Delivery",
        prefix: "wildside",
        panels: &[
            p("Attempts per second by outcome", "Every delivery attempt: `success` (2xx), `failure` (an HTTP answer that is not 2xx), `error` (no answer).", "ops", &[(
                "sum by (outcome) (rate(%delivery.attempts%[$__rate_interval]))",
                "{{outcome}}",
            )]),
            p("Success ratio", "Share of attempts the endpoint accepted. Retries count as attempts; dead letters are the per-event failures.", "percentunit", &[(
                "sum(rate(%delivery.attempts%{outcome=\"success\"}[$__rate_interval]))\n  / sum(rate(%delivery.attempts%[$__rate_interval]))",
                "success ratio",
            )]),
            p("Attempt latency p50, p95, p99", "Over every attempt, failed ones included.", "s", &[
                ("histogram_quantile(0.5, sum by (le) (rate(%delivery.duration%_bucket[$__rate_interval])))", "p50"),
                ("histogram_quantile(0.95, sum by (le) (rate(%delivery.duration%_bucket[$__rate_interval])))", "p95"),
                ("histogram_quantile(0.99, sum by (le) (rate(%delivery.duration%_bucket[$__rate_interval])))", "p99"),
            ]),
            p("Failures and errors by host and type", "`error_type` is the status code for failures and the error kind for errors.", "ops", &[(
                "sum by (server_address, error_type) (rate(%delivery.attempts%{outcome!=\"success\"}[$__rate_interval]))",
                "{{server_address}} {{error_type}}",
            )]),
            p("Failures by status code", "HTTP answers that were not 2xx, by registered status code.", "ops", &[(
                "sum by (http_response_status_code) (rate(%delivery.attempts%{outcome=\"failure\"}[$__rate_interval]))",
                "{{http_response_status_code}}",
            )]),
            p("Retries per second by host", "Attempts scheduled again after a failure or an error.", "ops", &[(
                "sum by (server_address) (rate(%delivery.retries%[$__rate_interval]))",
                "{{server_address}}",
            )]),
            p("Dead letters per second by host", "Events given up on after the last attempt.", "ops", &[(
                "sum by (server_address) (rate(%delivery.dead_letters%[$__rate_interval]))",
                "{{server_address}}",
            )]),
            p("Active delivery tasks", "Deliveries in progress now.", "short", &[(
                "sum(%delivery.active_tasks%)",
                "active",
            )]),
        ],
    },
    Dashboard {
        family: "events",
        title: "Events",
        prefix: "observer",
        panels: &[
            p("Events per second by outcome", "Events handled, by outcome.", "ops", &[(
                "sum by (outcome) (rate(%events.processed%[$__rate_interval]))",
                "{{outcome}}",
            )]),
            p("Failure ratio", "Share of events whose handling failed.", "percentunit", &[(
                "sum(rate(%events.processed%{outcome=\"failure\"}[$__rate_interval]))\n  / sum(rate(%events.processed%[$__rate_interval]))",
                "failure ratio",
            )]),
            p("Handling duration p95 by outcome", "Time to handle one event.", "s", &[(
                "histogram_quantile(0.95, sum by (outcome, le) (rate(%events.duration%_bucket[$__rate_interval])))",
                "{{outcome}}",
            )]),
            p("Events in flight", "Events being handled now.", "short", &[(
                "sum(%events.in_flight%)",
                "in flight",
            )]),
        ],
    },
    Dashboard {
        family: "actions",
        title: "Actions",
        prefix: "observer",
        panels: &[
            p("Actions per second by outcome", "Action runs, by outcome.", "ops", &[(
                "sum by (outcome) (rate(%actions.executed%[$__rate_interval]))",
                "{{outcome}}",
            )]),
            p("Actions per second by action", "Action runs, by action name (first-K admission; the rest are `_OTHER`).", "ops", &[(
                "sum by (action) (rate(%actions.executed%[$__rate_interval]))",
                "{{action}}",
            )]),
            p("Failure ratio by action", "Share of runs that did not succeed (failure, timeout, cancelled, panic).", "percentunit", &[(
                "sum by (action) (rate(%actions.executed%{outcome!=\"success\"}[$__rate_interval]))\n  / sum by (action) (rate(%actions.executed%[$__rate_interval]))",
                "{{action}}",
            )]),
            p("Duration p95 by action", "Time of one action run.", "s", &[(
                "histogram_quantile(0.95, sum by (action, le) (rate(%actions.duration%_bucket[$__rate_interval])))",
                "{{action}}",
            )]),
        ],
    },
    Dashboard {
        family: "queue",
        title: "Queue",
        prefix: "observer",
        panels: &[
            p("Enqueued per second by queue", "Jobs put on each queue.", "ops", &[(
                "sum by (queue) (rate(%queue.enqueued%[$__rate_interval]))",
                "{{queue}}",
            )]),
            p("Processed per second by outcome", "Jobs taken off the queues: done, retried, or dead-lettered.", "ops", &[(
                "sum by (queue, outcome) (rate(%queue.processed%[$__rate_interval]))",
                "{{queue}} {{outcome}}",
            )]),
            p("Depth by queue", "Jobs waiting now.", "short", &[(
                "sum by (queue) (%queue.depth%)",
                "{{queue}}",
            )]),
            p("Oldest waiting job by queue", "Age of the oldest job still waiting: a stuck consumer shows here before depth does.", "s", &[(
                "max by (queue) (%queue.oldest.age%)",
                "{{queue}}",
            )]),
            p("Wait p95 by queue", "Time from enqueue to pick-up.", "s", &[(
                "histogram_quantile(0.95, sum by (queue, le) (rate(%queue.wait%_bucket[$__rate_interval])))",
                "{{queue}}",
            )]),
        ],
    },
    Dashboard {
        family: "cache",
        title: "Cache",
        prefix: "observer",
        panels: &[
            p("Hit ratio by cache", "Share of gets answered from the cache.", "percentunit", &[(
                "sum by (cache) (rate(%cache.gets%{result=\"hit\"}[$__rate_interval]))\n  / sum by (cache) (rate(%cache.gets%[$__rate_interval]))",
                "{{cache}}",
            )]),
            p("Gets per second by result", "Cache gets, hits and misses.", "ops", &[(
                "sum by (cache, result) (rate(%cache.gets%[$__rate_interval]))",
                "{{cache}} {{result}}",
            )]),
            p("Evictions per second by cause", "Entries removed: expired, over the size budget, explicit, replaced.", "ops", &[(
                "sum by (cache, cause) (rate(%cache.evictions%[$__rate_interval]))",
                "{{cache}} {{cause}}",
            )]),
            p("Size by cache", "Bytes held now.", "bytes", &[(
                "sum by (cache) (%cache.size%)",
                "{{cache}}",
            )]),
        ],
    },
    Dashboard {
        family: "dedup",
        title: "Dedup",
        prefix: "observer",
        panels: &[
            p("Checks per second by result", "Deduplication checks, unique and duplicate.", "ops", &[(
                "sum by (result) (rate(%dedup.checks%[$__rate_interval]))",
                "{{result}}",
            )]),
            p("Duplicate ratio", "Share of checks that found a duplicate: redelivery upstream.", "percentunit", &[(
                "sum(rate(%dedup.checks%{result=\"duplicate\"}[$__rate_interval]))\n  / sum(rate(%dedup.checks%[$__rate_interval]))",
                "duplicate ratio",
            )]),
        ],
    },
    Dashboard {
        family: "checkpoint",
        title: "Checkpoint",
        prefix: "observer",
        panels: &[
            p("Saves per second by outcome", "Checkpoint saves, successful and failed.", "ops", &[(
                "sum by (outcome) (rate(%checkpoint.saves%[$__rate_interval]))",
                "{{outcome}}",
            )]),
            p("Save failure ratio", "Share of saves that failed.", "percentunit", &[(
                "sum(rate(%checkpoint.saves%{outcome=\"failure\"}[$__rate_interval]))\n  / sum(rate(%checkpoint.saves%[$__rate_interval]))",
                "failure ratio",
            )]),
            p("Save duration p95", "Time to write one checkpoint.", "s", &[(
                "histogram_quantile(0.95, sum by (le) (rate(%checkpoint.save.duration%_bucket[$__rate_interval])))",
                "p95",
            )]),
            p("Recoveries in the time range by result", "Start-ups that restored a checkpoint, found none, or failed to read one.", "short", &[(
                "sum by (result) (increase(%checkpoint.recoveries%[$__range]))",
                "{{result}}",
            )]),
            p("Time since the last successful save", "Staleness of the checkpoint: what a restart now would replay.", "s", &[(
                "time() - max(%checkpoint.last_success.timestamp%)",
                "since last save",
            )]),
        ],
    },
    Dashboard {
        family: "gateway",
        title: "Gateway",
        prefix: "nexus",
        panels: &[
            p("Requests per second by model", "Answered requests, by requested model.", "reqps", &[(
                "sum by (model) (rate(%requests%[$__rate_interval]))",
                "{{model}}",
            )]),
            p("Requests per second by status", "Answered requests, by HTTP status.", "reqps", &[(
                "sum by (status) (rate(%requests%[$__rate_interval]))",
                "{{status}}",
            )]),
            p("Error ratio by error type", "Errors over all requests (answered 2xx plus errors).", "percentunit", &[(
                "sum by (error_type) (rate(%errors%[$__rate_interval]))\n  / scalar(sum(rate(%requests%{status=~\"2..\"}[$__rate_interval])) + sum(rate(%errors%[$__rate_interval])))",
                "{{error_type}}",
            )]),
            p("Request latency p95 by backend", "End-to-end request duration.", "s", &[(
                "histogram_quantile(0.95, sum by (backend, le) (rate(%request.duration%_bucket[$__rate_interval])))",
                "{{backend}}",
            )]),
            p("Time to first token p95 by model", "Streaming requests only.", "s", &[(
                "histogram_quantile(0.95, sum by (model, le) (rate(%time_to_first_token%_bucket[$__rate_interval])))",
                "{{model}}",
            )]),
            p("Backend latency p95 by backend", "Time the backend took, without the gateway's own work.", "s", &[(
                "histogram_quantile(0.95, sum by (backend, le) (rate(%backend.latency%_bucket[$__rate_interval])))",
                "{{backend}}",
            )]),
            p("Fallbacks per second by pair", "Requests served by another model than the one asked for.", "reqps", &[(
                "sum by (from_model, to_model) (rate(%fallbacks%[$__rate_interval]))",
                "{{from_model}} → {{to_model}}",
            )]),
            p("Tokens per second by type", "Prompt and completion tokens.", "suffix: tokens/s", &[(
                "sum by (type) (rate(%tokens%[$__rate_interval]))",
                "{{type}}",
            )]),
            p("Tokens per request p95 by type", "Size of one request's prompt and completion.", "suffix: tokens", &[(
                "histogram_quantile(0.95, sum by (type, le) (rate(%tokens.per_request%_bucket[$__rate_interval])))",
                "{{type}}",
            )]),
            p("Pending requests by backend", "Requests waiting on each backend now.", "short", &[(
                "sum by (backend) (%pending_requests%)",
                "{{backend}}",
            )]),
            p("Backends and models", "Backends configured, backends healthy, models available.", "short", &[
                ("max(%backends%)", "backends"),
                ("max(%backends.healthy%)", "healthy"),
                ("max(%models.available%)", "models"),
            ]),
            p("Healthy backend ratio", "Zero means every request ends in `no_healthy_backend`.", "percentunit", &[(
                "max(%backends.healthy%) / max(%backends%)",
                "healthy",
            )]),
        ],
    },
];

/// The overflow meta counter's OpenTelemetry name (never namespaced).
const OVERFLOW: &str = "outcometer.attribute.overflow";

/// Where the dashboards live.
fn dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ops/dashboards")
}

/// OpenTelemetry name → (family, Prometheus name without the namespace).
fn instruments(entries: &[CatalogEntry]) -> BTreeMap<String, (&'static str, String)> {
    entries
        .iter()
        .map(|e| (e.def.name().to_owned(), (e.family, prometheus_name(&e.def))))
        .collect()
}

/// `expr` with every `%name%` resolved; the names it used.
fn resolve(expr: &str, names: &BTreeMap<String, (&'static str, String)>) -> (String, Vec<String>) {
    let (mut out, mut used, mut rest) = (String::new(), Vec::new(), expr);
    while let Some(start) = rest.find('%') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after
            .find('%')
            .unwrap_or_else(|| panic!("unclosed % in {expr:?}"));
        let name = &after[..end];
        let (_, prom) = names
            .get(name)
            .unwrap_or_else(|| panic!("{expr:?} names {name:?}, which is not in the catalog"));
        if prom.starts_with("outcometer_") {
            out.push_str(prom);
        } else {
            out.push_str("${prefix}_");
            out.push_str(prom);
        }
        used.push(name.to_owned());
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    (out, used)
}

/// A Prometheus label name for an attribute key (`server.address` → `server_address`).
fn sanitized(key: &str) -> String {
    let mut out = String::new();
    push_sanitized(&mut out, key);
    out
}

/// OpenTelemetry name → Prometheus label → the values it can take (`None` when
/// admitted at run time, so any value).
type Labels = BTreeMap<String, BTreeMap<String, Option<BTreeSet<String>>>>;

fn labels(entries: &[CatalogEntry]) -> Labels {
    let mut out = Labels::new();
    for e in entries {
        let def = &e.def;
        let mut labels: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
        for d in def.dimensions() {
            let admitted = d.admission().is_some();
            for doc in d.docs() {
                labels.insert(sanitized(doc.key), (!admitted).then(BTreeSet::new));
            }
        }
        for index in 0..def.series_bound() {
            for attribute in def.attributes(index) {
                if let Some(Some(values)) = labels.get_mut(&sanitized(attribute.key)) {
                    values.insert(attribute.value.to_text());
                }
            }
        }
        out.insert(def.name().to_owned(), labels);
    }
    out
}

/// The problems with the labels `template` (before resolving) names: every
/// `by (…)` label and every matcher label belongs to an instrument of the
/// expression (or is `le` on a bucket), and every literal matcher value is one the
/// catalog lists for that label.
fn label_problems(template: &str, labels: &Labels) -> Vec<String> {
    let mut problems = Vec::new();
    let parts: Vec<&str> = template.split('%').collect();
    let used: Vec<&str> = parts.iter().skip(1).step_by(2).copied().collect();
    let mut known: BTreeSet<String> = used
        .iter()
        .filter_map(|name| labels.get(*name))
        .flat_map(|l| l.keys().cloned())
        .collect();
    if template.contains("%_bucket") {
        known.insert("le".into());
    }
    // `by (a, b)` groupings.
    let mut rest = template;
    while let Some(at) = rest.find("by (") {
        let after = &rest[at + 4..];
        let end = after.find(')').unwrap_or(after.len());
        for label in after[..end].split(',').map(str::trim).filter(|l| !l.is_empty()) {
            if !known.contains(label) {
                problems.push(format!(
                    "{template:?} groups by {label:?}, which its instruments lack"
                ));
            }
        }
        rest = &after[end..];
    }
    // Matchers right after an instrument: `%name%{label="value",…}` (or `_bucket{`).
    for (i, name) in used.iter().enumerate() {
        let tail = parts.get(2 * i + 2).copied().unwrap_or_default();
        let tail = tail.strip_prefix("_bucket").unwrap_or(tail);
        let Some(body) = tail
            .strip_prefix('{')
            .and_then(|t| t.split_once('}'))
            .map(|(b, _)| b)
        else {
            continue;
        };
        let Some(instrument) = labels.get(*name) else {
            continue;
        };
        for matcher in body.split(',') {
            let Some(op) = ["=~", "!~", "!=", "="]
                .into_iter()
                .find(|op| matcher.contains(op))
            else {
                continue;
            };
            let (label, value) = matcher.split_once(op).unwrap_or_default();
            let (label, value) = (label.trim(), value.trim().trim_matches('"'));
            match instrument.get(label) {
                None => problems.push(format!("{template:?}: {name} has no label {label:?}")),
                Some(None) => {}
                Some(Some(values)) => {
                    let alternatives: Vec<&str> = match op {
                        "=~" | "!~" => value.split('|').collect(),
                        _ => vec![value],
                    };
                    for v in alternatives {
                        let literal = !v.contains(['.', '*', '+', '?', '[', '(', '^', '$']);
                        if literal && !values.contains(v) {
                            problems.push(format!("{template:?}: {name} {label} never takes {v:?}"));
                        }
                    }
                }
            }
        }
    }
    problems
}

/// The attribute keys of `family` whose values pass an admission (they can fold
/// into `_OTHER`, counted on the overflow counter under that key).
fn admitted_keys(entries: &[CatalogEntry], family: &str) -> BTreeSet<&'static str> {
    entries
        .iter()
        .filter(|e| e.family == family)
        .flat_map(|e| e.def.dimensions().iter())
        .filter_map(|d| d.admission().map(|a| a.key()))
        .collect()
}

fn datasource() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

fn panel_json(id: usize, panel: &Panel, exprs: Vec<String>) -> Value {
    let targets: Vec<Value> = exprs
        .into_iter()
        .zip(panel.targets)
        .enumerate()
        .map(|(i, (expr, (_, legend)))| {
            json!({
                "datasource": datasource(),
                "expr": expr,
                // Latency panels show the buckets' exemplars (OpenMetrics scrape,
                // Prometheus with exemplar storage): a click opens the trace.
                "exemplar": expr.starts_with("histogram_quantile"),
                "legendFormat": legend,
                "range": true,
                "refId": ((b'A' + i as u8) as char).to_string(),
            })
        })
        .collect();
    let index = id - 1;
    json!({
        "id": id,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": datasource(),
        "gridPos": {"h": 8, "w": 12, "x": (index % 2) * 12, "y": (index / 2) * 8},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": true},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": targets,
    })
}

/// Every dashboard, rendered: (file name, JSON text).
fn render() -> Vec<(String, String)> {
    let entries = catalog();
    let names = instruments(&entries);
    let mut out = Vec::new();
    for dashboard in DASHBOARDS {
        let mut used = BTreeSet::new();
        let mut panels = Vec::new();
        for panel in dashboard.panels {
            let exprs = panel
                .targets
                .iter()
                .map(|(expr, _)| {
                    let (expr, names_used) = resolve(expr, &names);
                    used.extend(names_used);
                    expr
                })
                .collect();
            panels.push(panel_json(panels.len() + 1, panel, exprs));
        }
        // Every instrument of the family is on its dashboard, and nothing else's.
        for (name, (family, _)) in &names {
            if *family == dashboard.family {
                assert!(used.contains(name), "{}: no panel shows {name}", dashboard.family);
            }
        }
        for name in &used {
            assert_eq!(
                names[name].0, dashboard.family,
                "{name} on another family's dashboard"
            );
        }
        // The overflow counter for the keys this family admits.
        let keys = admitted_keys(&entries, dashboard.family);
        if !keys.is_empty() {
            let keys: Vec<&str> = keys.into_iter().collect();
            let overflow = Panel {
                title: "Attribute values folded into _OTHER",
                description: "Values past an admission's first K, per attribute key; 0 when nothing folds. Raise the admission or pass an allow-list when this is not 0.",
                unit: "ops",
                targets: &[("", "{{attribute}}")],
            };
            let selector = format!("{{attribute=~\"{}\"}}", keys.join("|"));
            let expr = format!(
                "sum by (attribute) (rate(%{OVERFLOW}%{selector}[$__rate_interval]))\n  or on () vector(0)"
            );
            let (expr, _) = resolve(&expr, &names);
            panels.push(panel_json(panels.len() + 1, &overflow, vec![expr]));
        }
        let uid = format!("outcometer-{}", dashboard.family);
        let value = json!({
            "uid": uid,
            "title": format!("outcometer / {}", dashboard.title),
            "description": format!("The {} family, generated from the outcometer catalog by tests/tests/dashboards.rs.", dashboard.family),
            "tags": ["outcometer", dashboard.family],
            "editable": true,
            "graphTooltip": 1,
            "refresh": "30s",
            "schemaVersion": 39,
            "version": 1,
            "time": {"from": "now-1h", "to": "now"},
            "timezone": "browser",
            "annotations": {"list": []},
            "links": [],
            "templating": {"list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                },
                {
                    "name": "prefix",
                    "label": "Metric namespace",
                    "description": "The namespace the recorder was built with (`wildside` gives `wildside_idempotency_requests_total`).",
                    "type": "textbox",
                    "query": dashboard.prefix,
                    "current": {"selected": false, "text": dashboard.prefix, "value": dashboard.prefix},
                    "hide": 0,
                    "options": [{"selected": true, "text": dashboard.prefix, "value": dashboard.prefix}],
                },
            ]},
            "panels": panels,
        });
        let text = serde_json::to_string_pretty(&value).expect("JSON") + "\n";
        out.push((format!("{}.json", dashboard.family), text));
    }
    out
}

#[test]
fn every_label_and_value_a_panel_names_is_in_the_catalog() {
    let labels = labels(&catalog());
    let problems: Vec<String> = DASHBOARDS
        .iter()
        .flat_map(|d| d.panels.iter())
        .flat_map(|p| p.targets.iter())
        .flat_map(|(expr, _)| label_problems(expr, &labels))
        .collect();
    assert!(
        problems.is_empty(),
        "the panels name what the catalog does not:\n{}",
        problems.join("\n")
    );
    // The check sees a wrong label and a wrong value.
    assert_eq!(
        label_problems("sum by (outcomes) (rate(%dedup.checks%[1m]))", &labels).len(),
        1
    );
    assert_eq!(
        label_problems("sum(rate(%dedup.checks%{result=\"dup\"}[1m]))", &labels).len(),
        1
    );
}

#[test]
fn every_family_has_a_dashboard() {
    let families: BTreeSet<&str> = catalog()
        .iter()
        .map(|e| e.family)
        .filter(|f| !f.starts_with("outcometer"))
        .collect();
    let dashboards: BTreeSet<&str> = DASHBOARDS.iter().map(|d| d.family).collect();
    for family in &families {
        assert!(
            dashboards.contains(family)
                || catalog()
                    .iter()
                    .filter(|e| e.family == *family)
                    .all(|e| e.def.name() == OVERFLOW),
            "family {family} has no dashboard"
        );
    }
    assert!(
        render()
            .iter()
            .any(|(_, text)| text.contains("outcometer_attribute_overflow_total")),
        "the overflow counter is on a dashboard"
    );
}

#[test]
fn every_panel_has_a_unit_a_datasource_and_rate_interval() {
    for (file, text) in render() {
        let value: Value = serde_json::from_str(&text).expect("JSON");
        for panel in value["panels"].as_array().expect("panels") {
            let title = &panel["title"];
            assert!(
                panel["fieldConfig"]["defaults"]["unit"]
                    .as_str()
                    .is_some_and(|u| !u.is_empty()),
                "{file}: {title}"
            );
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{file}: {title}");
            for target in panel["targets"].as_array().expect("targets") {
                let expr = target["expr"].as_str().expect("expr");
                assert!(!expr.contains('%'), "{file}: {title}: {expr}");
                assert!(
                    !expr.contains("[5m]") && !expr.contains("[1m]"),
                    "{file}: {title}: fixed window in {expr}"
                );
            }
        }
    }
}

#[test]
fn committed_dashboards_match_the_catalog() {
    let dir = dir();
    let rendered = render();
    let update = std::env::var_os("UPDATE_DOCS").is_some();
    let mut stale = Vec::new();
    for (file, text) in &rendered {
        let path = dir.join(file);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            if update {
                std::fs::create_dir_all(&dir).expect("dashboards directory");
                std::fs::write(&path, text).expect("write dashboard");
            } else {
                stale.push(file.clone());
            }
        }
    }
    // No dashboard left behind for a family that is gone.
    let expected: BTreeSet<&str> = rendered.iter().map(|(f, _)| f.as_str()).collect();
    for entry in std::fs::read_dir(&dir).expect("docs/ops/dashboards") {
        let name = entry.expect("entry").file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") && !expected.contains(name.as_str()) {
            stale.push(format!("{name} (no such family)"));
        }
    }
    assert!(
        stale.is_empty(),
        "docs/ops/dashboards is out of date with the catalog ({stale:?}); run UPDATE_DOCS=1 cargo test -p outcometer-tests --test dashboards"
    );
}
