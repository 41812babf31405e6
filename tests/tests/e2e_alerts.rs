//! Alerts end to end: the payments demo with its webhook sink down (`--sink-down`)
//! is scraped by a real Prometheus (Debian's) evaluating the shipped rule files,
//! which fires `DeliverySuccessRatioLow` and `DeliveryDeadLetters` into a real
//! Alertmanager (Debian's `prometheus-alertmanager`), which POSTs them to a
//! webhook receiver in this test. Skips loudly without the tools unless `CI=true`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use outcometer_examples::demo::{Args, Demo};
use outcometer_tests::e2e::{tool, wait_until, Alertmanager, Prometheus, WebhookReceiver};
use serde_json::Value;

const NAMESPACE: &str = "wildside";

fn ops_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ops")
}

/// The families the runbook's namespace `sed` ("Namespaces") prefixes, read from
/// that very command line so the test follows the documentation.
fn documented_families() -> Vec<String> {
    let runbook = std::fs::read_to_string(ops_dir().join("runbook.md")).expect("runbook");
    let line = runbook
        .lines()
        .find(|l| l.starts_with("sed -E 's/(^|[^[:alnum:]_])("))
        .expect("the runbook's namespace sed");
    let start = line.find("_])(").expect("families") + 4;
    let end = start + line[start..].find(")_/").expect("families end");
    line[start..end].split('|').map(str::to_owned).collect()
}

/// The runbook's `sed -E 's/(^|[^[:alnum:]_])(FAMILIES)_/\1NS_\2_/g'`, in Rust:
/// a family prefix at the start of a word gets the namespace.
fn apply_namespace(text: &str, families: &[String], namespace: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1024);
    let mut previous: Option<char> = None;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let word_start = previous.is_none_or(|p| !(p.is_ascii_alphanumeric() || p == '_'));
        if word_start
            && families
                .iter()
                .any(|f| rest.starts_with(f.as_str()) && rest[f.len()..].starts_with('_'))
        {
            out.push_str(namespace);
            out.push('_');
        }
        out.push(c);
        previous = Some(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Shortens the timing for a test, and only the timing: every `for:` becomes
/// `0s` and every range window (`[5m]`, `[15m]`, `[1h]`) becomes `[30s]`; the
/// expressions, thresholds, `offset`s, labels and annotations stay the shipped ones.
fn shorten_timing(text: &str) -> String {
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with("for:") {
                format!("{}for: 0s", &line[..line.len() - trimmed.len()])
            } else {
                shorten_windows(line)
            }
        })
        .collect();
    lines.join("\n") + "\n"
}

fn shorten_windows(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        let is_window = digits > 0
            && after[digits..].len() >= 2
            && matches!(after.as_bytes()[digits], b's' | b'm' | b'h' | b'd')
            && after.as_bytes()[digits + 1] == b']';
        if is_window {
            out.push_str("[30s]");
            rest = &after[digits + 2..];
        } else {
            out.push('[');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Every alert of every notification received, as JSON objects.
fn received_alerts(receiver: &WebhookReceiver) -> Vec<Value> {
    receiver
        .bodies()
        .iter()
        .filter_map(|body| serde_json::from_str::<Value>(body).ok())
        .flat_map(|n| n["alerts"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn named<'a>(alerts: &'a [Value], name: &str) -> Option<&'a Value> {
    alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == name && a["status"] == "firing")
}

#[test]
fn the_sink_down_fires_the_delivery_alerts_through_alertmanager_to_a_webhook() {
    let (Some(prometheus), Some(alertmanager)) = (
        tool("OUTCOMETER_PROMETHEUS", "prometheus"),
        tool("OUTCOMETER_ALERTMANAGER", "prometheus-alertmanager"),
    ) else {
        return;
    };
    let scratch = std::env::temp_dir().join(format!("outcometer-alert-rules-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch");
    let families = documented_families();
    assert!(families.contains(&"delivery".to_owned()), "{families:?}");
    let mut rule_files = Vec::new();
    for name in ["outcometer.rules.yml", "gateway.rules.yml"] {
        let shipped = std::fs::read_to_string(ops_dir().join("rules").join(name)).expect("rules");
        let text = if name == "outcometer.rules.yml" {
            apply_namespace(&shipped, &families, NAMESPACE)
        } else {
            shipped
        };
        let target = scratch.join(name);
        std::fs::write(&target, shorten_timing(&text)).expect("write rules");
        rule_files.push(target);
    }
    let rules = std::fs::read_to_string(&rule_files[0]).expect("rules");
    assert!(
        rules.contains("wildside_delivery_attempts_total{outcome=\"success\"}[30s]")
            && rules.contains("job:wildside_delivery_attempts:success_ratio_rate5m < 0.9")
            && !rules.contains("for: 15m"),
        "namespace and timing applied:\n{rules}"
    );

    let receiver = WebhookReceiver::start();
    let manager = Alertmanager::start(&alertmanager, &format!("http://{}/alerts", receiver.addr));
    let args = Args {
        duration: Duration::from_secs(90),
        rate: 40,
        users: 50,
        endpoints: 1,
        namespace: NAMESPACE.into(),
        sink_down: true,
        ..Args::default()
    };
    let demo = Demo::start(args, |name: &str| match name {
        "OTEL_EXPORTER_PROMETHEUS_HOST" => Some("127.0.0.1".to_owned()),
        "OTEL_EXPORTER_PROMETHEUS_PORT" => Some("0".to_owned()),
        _ => None,
    })
    .expect("demo starts");
    let target = demo.metrics_address().expect("pull endpoint");
    let started = Instant::now();
    let server = Prometheus::start_with_rules(&prometheus, target, &rule_files, Some(manager.addr));

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (seen, delivered, firing) = std::thread::scope(|scope| {
        let load = scope.spawn(|| {
            demo.run(
                async {
                    let _ = stopped.await;
                },
                |_| {},
            )
        });
        let delivered = wait_until(Duration::from_secs(60), || {
            let alerts = received_alerts(&receiver);
            named(&alerts, "DeliverySuccessRatioLow").is_some()
                && named(&alerts, "DeliveryDeadLetters").is_some()
        });
        eprintln!("alerts at the webhook after {:?}", started.elapsed());
        let firing: Vec<String> = server
            .query("ALERTS{alertstate=\"firing\"}")
            .into_iter()
            .flat_map(|s| s.labels)
            .filter_map(|l| l.strip_prefix("alertname=").map(str::to_owned))
            .collect();
        let _ = stop.send(());
        (load.join().expect("demo thread"), delivered, firing)
    });
    let alerts = received_alerts(&receiver);
    assert!(
        delivered,
        "the webhook got {:#?}\nPrometheus fires {firing:?}\nPrometheus:\n{}\nAlertmanager:\n{}",
        alerts,
        server.output(),
        manager.output()
    );
    assert!(
        seen.successes == 0 && seen.dead_letters > 0,
        "the sink is down: {seen}"
    );

    // What the outage fires: no attempt succeeds, for the one webhook host.
    let ratio = named(&alerts, "DeliverySuccessRatioLow").expect("fired");
    assert_eq!(ratio["labels"]["job"], "demo", "{ratio:#}");
    assert_eq!(ratio["labels"]["severity"], "warning", "{ratio:#}");
    let summary = ratio["annotations"]["summary"].as_str().unwrap_or_default();
    assert!(summary.starts_with("demo: only 0% of"), "{ratio:#}");
    assert!(
        ratio["annotations"]["runbook_url"]
            .as_str()
            .is_some_and(|u| u.ends_with("docs/ops/runbook.md#deliverysuccessratiolow")),
        "{ratio:#}"
    );
    let dead = named(&alerts, "DeliveryDeadLetters").expect("fired");
    assert_eq!(dead["labels"]["server_address"], "hook-0.demo.test", "{dead:#}");
    assert!(
        dead["annotations"]["runbook_url"]
            .as_str()
            .is_some_and(|u| u.ends_with("docs/ops/runbook.md#deliverydeadletters")),
        "{dead:#}"
    );

    // What it does not fire: families the payments demo does not run, and the
    // gateway's rules (another service's namespace).
    let unrelated = [
        "QueueDepthHigh",
        "QueueOldestJobTooOld",
        "EventsFailureRatioHigh",
        "ActionFailureRatioHigh",
        "CacheHitRatioLow",
        "CheckpointStale",
        "CheckpointNeverSaved",
        "AttributeOverflow",
    ];
    let names: Vec<&str> = alerts
        .iter()
        .filter_map(|a| a["labels"]["alertname"].as_str())
        .chain(firing.iter().map(String::as_str))
        .collect();
    for name in unrelated {
        assert!(!names.contains(&name), "{name} fired: {names:?}");
    }
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with("Gateway") && !n.starts_with("Nexus")),
        "{names:?}"
    );
    eprintln!("Prometheus fired {firing:?}; the webhook got {names:?}");
    demo.shutdown().expect("shutdown");
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn the_rewrites_match_the_runbook_sed_and_shorten_only_timing() {
    let families = documented_families();
    assert_eq!(
        apply_namespace(
            "expr: sum(rate(delivery_attempts_total[5m])) / job_cache:cache_gets:rate5m and outcometer_attribute_overflow_total\n",
            &families,
            "wildside"
        ),
        "expr: sum(rate(wildside_delivery_attempts_total[5m])) / job_cache:wildside_cache_gets:rate5m and outcometer_attribute_overflow_total\n"
    );
    assert_eq!(
        shorten_timing("    for: 15m\n  expr: x[5m] unless x offset 15m or y[1h] and z{a=~\"[0-9]\"}\n"),
        "    for: 0s\n  expr: x[30s] unless x offset 15m or y[30s] and z{a=~\"[0-9]\"}\n"
    );
}
