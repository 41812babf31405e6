//! The alert and recording rules in `docs/ops/rules/`: `promtool check rules`
//! accepts them, the fixtures in `docs/ops/tests/` pass `promtool test rules`
//! (each alert firing when it should and silent when it should not), every rule
//! is exercised by a fixture, every alert has its annotations and its runbook
//! section, and every metric, label and value the rules name exists in the
//! catalog, so renaming an instrument or a value fails here instead of silently
//! disabling an alert. The namespace rewrite documented in the runbook is run
//! too, and its output passes the same checks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use outcometer::catalog::{catalog, prometheus_name, push_sanitized};
use outcometer::toolkit::InstrumentKind;
use outcometer_tests::e2e::tool;
use serde_yaml::Value;

/// The gateway rules are written for the namespace the gateway docs recommend.
const GATEWAY_NAMESPACE: &str = "nexus";
/// The one-line rewrites in the runbook ("Namespaces"), for namespace `wildside`
/// and for a gateway under `llm` instead of `nexus`.
const NAMESPACE_SED: &str = r"sed -E 's/(^|[^[:alnum:]_])(idempotency|delivery|events|actions|queue|cache|dedup|checkpoint)_/\1wildside_\2_/g'";
const GATEWAY_SED: &str = r"sed 's/nexus_/llm_/g'";
/// Labels Prometheus adds, not the SDK.
const TARGET_LABELS: &[&str] = &["job", "instance"];

fn ops_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ops")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .yml files in {}", dir.display());
    files
}

fn rule_files() -> Vec<PathBuf> {
    yaml_files(&ops_dir().join("rules"))
}

fn fixture_files() -> Vec<PathBuf> {
    yaml_files(&ops_dir().join("tests"))
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_ran(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn promtool(promtool: &Path, args: &[&str], files: &[PathBuf], cwd: &Path) -> Output {
    Command::new(promtool)
        .args(args)
        .args(files)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", promtool.display()))
}

#[test]
fn promtool_checks_every_rule_file() {
    let Some(promtool_path) = tool("OUTCOMETER_PROMTOOL", "promtool") else {
        return;
    };
    let output = promtool(&promtool_path, &["check", "rules"], &rule_files(), &ops_dir());
    assert_ran("promtool check rules", &output);
}

#[test]
fn promtool_fixtures_pass() {
    let Some(promtool_path) = tool("OUTCOMETER_PROMTOOL", "promtool") else {
        return;
    };
    let output = promtool(&promtool_path, &["test", "rules"], &fixture_files(), &ops_dir());
    assert_ran("promtool test rules", &output);
}

/// One rule of a rule file.
struct Rule {
    file: String,
    alert: Option<String>,
    record: Option<String>,
    expr: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.as_str().expect("string key").to_owned(),
                        v.as_str().expect("string value").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn rules_of(path: &Path) -> Vec<Rule> {
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    let doc = load(path);
    let mut rules = Vec::new();
    for group in doc["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            rules.push(Rule {
                file: file.clone(),
                alert: rule["alert"].as_str().map(str::to_owned),
                record: rule["record"].as_str().map(str::to_owned),
                expr: rule["expr"].as_str().expect("expr").to_owned(),
                labels: string_map(&rule["labels"]),
                annotations: string_map(&rule["annotations"]),
            });
        }
    }
    rules
}

fn all_rules() -> Vec<Rule> {
    rule_files().iter().flat_map(|p| rules_of(p)).collect()
}

#[test]
fn every_alert_fires_and_stays_silent_in_a_fixture_and_every_recording_rule_is_evaluated() {
    let mut firing = BTreeSet::new();
    let mut silent = BTreeSet::new();
    let mut evaluated = BTreeSet::new();
    for path in fixture_files() {
        let doc = load(&path);
        for test in doc["tests"].as_sequence().expect("tests") {
            for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = case["alertname"].as_str().expect("alertname").to_owned();
                match case["exp_alerts"].as_sequence() {
                    Some(alerts) if !alerts.is_empty() => firing.insert(name),
                    _ => silent.insert(name),
                };
            }
            for case in test["promql_expr_test"].as_sequence().into_iter().flatten() {
                evaluated.insert(case["expr"].as_str().expect("expr").trim().to_owned());
            }
        }
    }
    let mut missing = Vec::new();
    for rule in all_rules() {
        if let Some(alert) = &rule.alert {
            if !firing.contains(alert) {
                missing.push(format!("{alert}: no fixture shows it firing"));
            }
            if !silent.contains(alert) {
                missing.push(format!("{alert}: no fixture shows it silent"));
            }
        }
        if let Some(record) = &rule.record {
            if !evaluated.contains(record) {
                missing.push(format!("{record}: no promql_expr_test evaluates it"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/ops/tests lacks:\n{}",
        missing.join("\n")
    );
}

fn workspace_repository() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let text = std::fs::read_to_string(&path).expect("workspace Cargo.toml");
    text.lines()
        .find_map(|line| {
            let value = line.trim().strip_prefix("repository")?.trim().strip_prefix('=')?;
            Some(value.trim().trim_matches('"').to_owned())
        })
        .expect("repository in the workspace Cargo.toml")
}

/// The anchor a Markdown renderer (GitHub's) gives a heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn runbook() -> String {
    std::fs::read_to_string(ops_dir().join("runbook.md")).expect("docs/ops/runbook.md")
}

#[test]
fn every_alert_has_a_severity_annotations_and_a_runbook_section() {
    let runbook = runbook();
    let anchors: BTreeSet<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(anchor)
        .collect();
    let base = format!("{}/blob/main/docs/ops/runbook.md#", workspace_repository());
    let mut problems = Vec::new();
    for rule in all_rules() {
        let Some(alert) = &rule.alert else { continue };
        let severity = rule.labels.get("severity").map(String::as_str);
        if !matches!(severity, Some("critical" | "warning" | "info")) {
            problems.push(format!(
                "{alert}: severity {severity:?}, not critical, warning or info"
            ));
        }
        for key in ["summary", "description"] {
            if rule.annotations.get(key).is_none_or(|v| v.trim().is_empty()) {
                problems.push(format!("{alert}: no {key} annotation"));
            }
        }
        let expected = format!("{base}{}", anchor(alert));
        match rule.annotations.get("runbook_url") {
            Some(url) if *url == expected => {}
            other => problems.push(format!("{alert}: runbook_url {other:?}, expected {expected}")),
        }
        if !anchors.contains(&anchor(alert)) {
            problems.push(format!(
                "{alert}: no `### {alert}` section in docs/ops/runbook.md"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Everything the catalog lets a rule name.
#[derive(Default)]
struct Names {
    /// Prometheus metric name → label name → the values the label can take
    /// (empty when admitted at run time, so any value).
    metrics: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    /// Every label name of every instrument, and the target labels.
    labels: BTreeSet<String>,
}

impl Names {
    /// The catalog's names: the gateway family under `gateway_ns`, the others
    /// under `ns` (empty: none), the overflow meta counter never namespaced.
    fn from_catalog(ns: &str, gateway_ns: &str) -> Names {
        let mut names = Names {
            labels: TARGET_LABELS.iter().map(|l| (*l).to_owned()).collect(),
            ..Names::default()
        };
        for entry in catalog() {
            let def = &entry.def;
            let bare = prometheus_name(def);
            let prefix = match entry.family {
                "gateway" => gateway_ns,
                _ if bare.starts_with("outcometer_") => "",
                _ => ns,
            };
            let name = if prefix.is_empty() {
                bare
            } else {
                format!("{prefix}_{bare}")
            };
            let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            let admitted: BTreeSet<String> = def
                .dimensions()
                .iter()
                .filter(|d| d.admission().is_some())
                .flat_map(|d| d.docs())
                .map(|doc| sanitized(doc.key))
                .collect();
            for doc in def.dimensions().iter().flat_map(|d| d.docs()) {
                labels.entry(sanitized(doc.key)).or_default();
            }
            for index in 0..def.series_bound() {
                for attribute in def.attributes(index) {
                    let key = sanitized(attribute.key);
                    if !admitted.contains(&key) {
                        labels.entry(key).or_default().insert(attribute.value.to_text());
                    }
                }
            }
            for key in &admitted {
                labels.insert(key.clone(), BTreeSet::new());
            }
            names.labels.extend(labels.keys().cloned());
            if def.spec().kind() == InstrumentKind::Histogram {
                for suffix in ["_bucket", "_sum", "_count"] {
                    let mut with_le = labels.clone();
                    if suffix == "_bucket" {
                        with_le.insert("le".to_owned(), BTreeSet::new());
                    }
                    names.metrics.insert(format!("{name}{suffix}"), with_le);
                }
            } else {
                names.metrics.insert(name, labels);
            }
        }
        names.labels.insert("le".to_owned());
        names
    }
}

fn sanitized(key: &str) -> String {
    let mut out = String::new();
    push_sanitized(&mut out, key);
    out
}

/// A metric selector found in an expression: the name and its label matchers
/// (label, operator, value).
#[derive(Debug)]
struct Selector {
    name: String,
    matchers: Vec<(String, String, String)>,
}

/// What an expression refers to: metric selectors and the labels of its
/// `by`/`without`/`on`/`ignoring`/`group_*` clauses.
#[derive(Debug, Default)]
struct Refs {
    selectors: Vec<Selector>,
    grouping: Vec<String>,
}

/// Binary operators, modifiers, and aggregation operators (which may be followed
/// by `by (…)` before their parenthesis).
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];
const GROUPING: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

/// A small PromQL scanner: enough for the rules in docs/ops (identifiers,
/// numbers, strings, `{…}` matchers, `[…]` ranges, function calls).
fn scan(expr: &str) -> Refs {
    let chars: Vec<char> = expr.chars().collect();
    let mut refs = Refs::default();
    let mut i = 0;
    let next_non_space = |from: usize| (from..chars.len()).find(|&j| !chars[j].is_whitespace());
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            i = skip_string(&chars, i);
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let after = next_non_space(i);
            let before_paren = after.is_some_and(|j| chars[j] == '(');
            if GROUPING.contains(&word.as_str()) {
                if let Some(open) = after.filter(|_| before_paren) {
                    let close = (open..chars.len()).find(|&j| chars[j] == ')').expect("closing )");
                    let list: String = chars[open + 1..close].iter().collect();
                    refs.grouping.extend(
                        list.split(',')
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(str::to_owned),
                    );
                    i = close + 1;
                }
            } else if KEYWORDS.contains(&word.to_lowercase().as_str()) || before_paren {
                // An operator or a function.
            } else {
                let mut selector = Selector {
                    name: word,
                    matchers: Vec::new(),
                };
                if let Some(open) = after.filter(|&j| chars[j] == '{') {
                    let (matchers, end) = matchers(&chars, open);
                    selector.matchers = matchers;
                    i = end;
                }
                refs.selectors.push(selector);
            }
        } else {
            i += 1;
        }
    }
    refs
}

fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() && chars[i] != quote {
        i += if chars[i] == '\\' { 2 } else { 1 };
    }
    i + 1
}

/// Parses `{label op "value", …}` from `open`; returns the matchers and the
/// index after `}`.
fn matchers(chars: &[char], open: usize) -> (Vec<(String, String, String)>, usize) {
    let mut out = Vec::new();
    let mut i = open + 1;
    loop {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
            i += 1;
        }
        if i >= chars.len() || chars[i] == '}' {
            return (out, i + 1);
        }
        let start = i;
        while chars[i].is_ascii_alphanumeric() || chars[i] == '_' {
            i += 1;
        }
        let label: String = chars[start..i].iter().collect();
        while chars[i].is_whitespace() {
            i += 1;
        }
        let op_start = i;
        while matches!(chars[i], '=' | '!' | '~') {
            i += 1;
        }
        let op: String = chars[op_start..i].iter().collect();
        while chars[i].is_whitespace() {
            i += 1;
        }
        let end = skip_string(chars, i);
        let value: String = chars[i + 1..end - 1].iter().collect();
        out.push((label, op, value));
        i = end;
    }
}

/// Every problem with the names `rules` and `fixtures` use, against `names`.
fn name_problems(names: &Names, rules: &[Rule], fixture_series: &[(String, String)]) -> Vec<String> {
    let recorded: BTreeSet<&str> = rules.iter().filter_map(|r| r.record.as_deref()).collect();
    let mut problems = Vec::new();
    for rule in rules {
        let what = format!(
            "{} {}",
            rule.file,
            rule.alert.as_deref().or(rule.record.as_deref()).unwrap_or("?")
        );
        let refs = scan(&rule.expr);
        assert!(
            !refs.selectors.is_empty(),
            "{what}: no metric found in {}",
            rule.expr
        );
        for selector in &refs.selectors {
            if recorded.contains(selector.name.as_str()) {
                continue;
            }
            let Some(labels) = names.metrics.get(&selector.name) else {
                problems.push(format!("{what}: `{}` is not in the catalog", selector.name));
                continue;
            };
            for (label, op, value) in &selector.matchers {
                match labels.get(label) {
                    None if TARGET_LABELS.contains(&label.as_str()) => {}
                    None => problems.push(format!("{what}: `{}` has no label `{label}`", selector.name)),
                    Some(values)
                        if (op == "=" || op == "!=") && !values.is_empty() && !values.contains(value) =>
                    {
                        problems.push(format!(
                            "{what}: `{}{{{label}}}` never takes the value \"{value}\" (values: {values:?})",
                            selector.name
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        for label in &refs.grouping {
            if !names.labels.contains(label) {
                problems.push(format!("{what}: groups by `{label}`, which no instrument has"));
            }
        }
    }
    for (fixture, series) in fixture_series {
        let refs = scan(series);
        let selector = refs.selectors.first().expect("a series name");
        match names.metrics.get(&selector.name) {
            None => problems.push(format!(
                "{fixture}: input series `{}` is not in the catalog",
                selector.name
            )),
            Some(labels) => {
                for (label, _, value) in &selector.matchers {
                    match labels.get(label) {
                        None if TARGET_LABELS.contains(&label.as_str()) => {}
                        None => {
                            problems.push(format!("{fixture}: `{}` has no label `{label}`", selector.name))
                        }
                        Some(values) if !values.is_empty() && !values.contains(value) => {
                            problems.push(format!(
                                "{fixture}: `{}{{{label}}}` never takes the value \"{value}\"",
                                selector.name
                            ))
                        }
                        Some(_) => {}
                    }
                }
            }
        }
    }
    problems
}

fn fixture_series(files: &[PathBuf]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        for test in load(path)["tests"].as_sequence().expect("tests") {
            for series in test["input_series"].as_sequence().into_iter().flatten() {
                out.push((
                    file.clone(),
                    series["series"].as_str().expect("series").to_owned(),
                ));
            }
        }
    }
    out
}

#[test]
fn every_metric_label_and_value_in_the_rules_is_in_the_catalog() {
    let names = Names::from_catalog("", GATEWAY_NAMESPACE);
    let problems = name_problems(&names, &all_rules(), &fixture_series(&fixture_files()));
    assert!(
        problems.is_empty(),
        "the rules name what the catalog does not (rename them with the instrument):\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_scanner_finds_metrics_labels_and_values() {
    let refs = scan(
        r#"(sum by (job, cache) (rate(cache_gets_total{result="hit", cache!~"x.*"}[5m])) or 0 * x:y:z)
           / on (job) time() - max without (le) (a_b) > 0.2 and 1e3 < bool other"#,
    );
    let found: Vec<&str> = refs.selectors.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(found, ["cache_gets_total", "x:y:z", "a_b", "other"]);
    assert_eq!(refs.selectors[0].matchers.len(), 2);
    assert_eq!(
        refs.selectors[0].matchers[0],
        ("result".into(), "=".into(), "hit".into())
    );
    assert_eq!(refs.grouping, ["job", "cache", "job", "le"]);
}

#[test]
fn a_renamed_instrument_or_value_is_caught() {
    let names = Names::from_catalog("", GATEWAY_NAMESPACE);
    let rule = |expr: &str| Rule {
        file: "x.yml".into(),
        alert: Some("X".into()),
        record: None,
        expr: expr.into(),
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
    };
    for bad in [
        r#"rate(delivery_attempt_total[5m])"#,
        r#"rate(delivery_attempts_total{outcome="succeeded"}[5m])"#,
        r#"rate(delivery_attempts_total{status="200"}[5m])"#,
        r#"sum by (host) (rate(delivery_attempts_total[5m]))"#,
        r#"rate(delivery_duration_seconds[5m])"#,
        r#"nexus_backends_healthy_total == 0"#,
    ] {
        assert!(
            !name_problems(&names, &[rule(bad)], &[]).is_empty(),
            "{bad} passed"
        );
    }
    let good = r#"sum by (job, le) (rate(delivery_duration_seconds_bucket{outcome="success"}[5m]))"#;
    assert_eq!(name_problems(&names, &[rule(good)], &[]), Vec::<String>::new());
}

/// Runs `script` (a `sed` command line from the runbook) on `input`.
fn run_sed(script: &str, input: &Path, output: &Path) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{script} \"$1\" > \"$2\""))
        .arg("sh")
        .arg(input)
        .arg(output)
        .output()
        .expect("run sh");
    assert_ran(script, &out);
}

#[test]
fn the_documented_namespace_rewrite_gives_namespaced_rules_that_pass() {
    let runbook = runbook();
    for script in [NAMESPACE_SED, GATEWAY_SED] {
        assert!(
            runbook.contains(script),
            "docs/ops/runbook.md no longer shows `{script}`"
        );
    }
    let dir = std::env::temp_dir().join(format!("outcometer-ops-rules-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    // Each file goes through the rewrite of its family: the gateway's for
    // gateway files, the namespace one for the rest.
    let script_for = |path: &Path| {
        if path.file_name().unwrap().to_string_lossy().starts_with("gateway") {
            GATEWAY_SED
        } else {
            NAMESPACE_SED
        }
    };
    let mut rules = Vec::new();
    let mut fixtures = Vec::new();
    for (sub, files, out) in [
        ("rules", rule_files(), &mut rules),
        ("tests", fixture_files(), &mut fixtures),
    ] {
        for path in files {
            let target = dir.join(sub).join(path.file_name().unwrap());
            run_sed(script_for(&path), &path, &target);
            out.push(target);
        }
    }
    let names = Names::from_catalog("wildside", "llm");
    let rewritten: Vec<Rule> = rules.iter().flat_map(|p| rules_of(p)).collect();
    let problems = name_problems(&names, &rewritten, &fixture_series(&fixtures));
    if let Some(promtool_path) = tool("OUTCOMETER_PROMTOOL", "promtool") {
        assert_ran(
            "promtool check rules (rewritten)",
            &promtool(&promtool_path, &["check", "rules"], &rules, &dir),
        );
        assert_ran(
            "promtool test rules (rewritten)",
            &promtool(&promtool_path, &["test", "rules"], &fixtures, &dir),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(problems.is_empty(), "after the rewrite:\n{}", problems.join("\n"));
}

#[test]
fn every_recording_rule_is_listed_in_the_runbook() {
    let runbook = runbook();
    let missing: Vec<String> = all_rules()
        .into_iter()
        .filter_map(|r| r.record)
        .filter(|record| !runbook.contains(&format!("| `{record}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in the runbook's recording-rule table: {missing:?}"
    );
}
