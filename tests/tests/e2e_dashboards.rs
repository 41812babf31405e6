//! Every panel of every dashboard in docs/ops/dashboards answers with data: the
//! three demos run at once, each scraped by its own real Prometheus (Debian's
//! 2.42), and each target's `expr`, with `${prefix}` set to the dashboard's
//! default and Grafana's `$__rate_interval` / `$__range` set to fixed windows, must
//! return a non-empty result with a finite value from the Prometheus scraping the demo that uses that
//! namespace. Skips loudly without Prometheus unless `CI=true`.

use std::path::Path;
use std::time::Duration;

use outcometer_tests::e2e::{tool, wait_until, Prometheus};
use serde_json::Value;

/// One panel target: (dashboard file, panel title, expr with variables set).
type Target = (String, String, String);

/// Every target of every committed dashboard, grouped by the `prefix` default.
fn targets() -> Vec<(String, Vec<Target>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ops/dashboards");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("docs/ops/dashboards")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut out: Vec<(String, Vec<Target>)> = Vec::new();
    for path in files {
        let file = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let json: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("JSON");
        let prefix = json["templating"]["list"]
            .as_array()
            .and_then(|l| l.iter().find(|v| v["name"] == "prefix"))
            .and_then(|v| v["current"]["value"].as_str())
            .unwrap_or_else(|| panic!("{file}: no prefix variable"))
            .to_owned();
        let mut found = Vec::new();
        for panel in json["panels"].as_array().expect("panels") {
            let title = panel["title"].as_str().unwrap_or_default().to_owned();
            for target in panel["targets"].as_array().expect("targets") {
                let expr = target["expr"]
                    .as_str()
                    .expect("expr")
                    .replace("${prefix}", &prefix)
                    .replace("$__rate_interval", "1m")
                    .replace("$__range", "5m");
                assert!(!expr.contains('$'), "{file}: {title}: unset variable in {expr}");
                found.push((file.clone(), title.clone(), expr));
            }
        }
        match out.iter_mut().find(|(p, _)| *p == prefix) {
            Some((_, list)) => list.extend(found),
            None => out.push((prefix, found)),
        }
    }
    out
}

fn env(name: &str) -> Option<String> {
    match name {
        "OTEL_EXPORTER_PROMETHEUS_HOST" => Some("127.0.0.1".into()),
        "OTEL_EXPORTER_PROMETHEUS_PORT" => Some("0".into()),
        _ => None,
    }
}

/// Starts Prometheus on `target`, waits for its first scrape, runs `run` (the
/// demo's load), then waits until every target answers with at least one finite
/// sample (a ratio of zero rates is NaN: no data on a panel); returns the ones
/// that never did.
fn check(
    prometheus: &Path,
    target: std::net::SocketAddr,
    run: impl FnOnce(),
    targets: &[Target],
) -> Vec<String> {
    let server = Prometheus::start(prometheus, target);
    assert!(
        wait_until(Duration::from_secs(30), || server.scalar("up{job=\"demo\"}")
            == Some(1.0)),
        "Prometheus never scraped {target}:\n{}",
        server.output()
    );
    run();
    let empty = || {
        targets
            .iter()
            .filter(|(_, _, expr)| !server.query(expr).iter().any(|s| s.value.is_finite()))
            .map(|(file, title, expr)| format!("{file}: {title}: {expr}"))
            .collect::<Vec<_>>()
    };
    // The last scrapes land after the load stops: give the slowest series time.
    let mut missing = empty();
    let _ = wait_until(Duration::from_secs(10), || {
        missing = empty();
        missing.is_empty()
    });
    missing
}

#[test]
fn every_dashboard_panel_has_data_from_the_demos() {
    let Some(prometheus) = tool("OUTCOMETER_PROMETHEUS", "prometheus") else {
        return;
    };
    let groups = targets();
    let mut names: Vec<&str> = groups.iter().map(|(p, _)| p.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        ["nexus", "observer", "wildside"],
        "the dashboards' namespaces are the demos'"
    );
    let of = |prefix: &str| {
        groups
            .iter()
            .find(|(p, _)| p == prefix)
            .map(|(_, t)| t.clone())
            .unwrap_or_default()
    };
    let total: usize = groups.iter().map(|(_, t)| t.len()).sum();

    let (demo_targets, pipeline_targets, gateway_targets) = (of("wildside"), of("observer"), of("nexus"));
    let (p1, p2, p3) = (prometheus.clone(), prometheus.clone(), prometheus);
    let demo = std::thread::spawn(move || {
        use outcometer_examples::demo::{Args, Demo};
        let args = Args {
            duration: Duration::from_secs(6),
            rate: 250,
            users: 200,
            endpoints: 6,
            namespace: "wildside".into(),
            seed: 7,
            ..Args::default()
        };
        let demo = Demo::start(args, env).expect("demo starts");
        let target = demo.metrics_address().expect("pull endpoint");
        let missing = check(
            &p1,
            target,
            || {
                let seen = demo.run(std::future::pending(), |_| {});
                assert_eq!(seen.unexpected, 0, "{seen}");
            },
            &demo_targets,
        );
        demo.shutdown().expect("clean shutdown");
        missing
    });
    let pipeline = std::thread::spawn(move || {
        use outcometer_examples::pipeline::{quiet_injected_panics, Args, Pipeline};
        quiet_injected_panics();
        // 9 s: restarts at 3 s and 6 s give every recovery result.
        let args = Args {
            duration: Duration::from_secs(9),
            rate: 150,
            queues: 3,
            actions: 4,
            namespace: "observer".into(),
            seed: 11,
        };
        let pipeline = Pipeline::start(args, env).expect("pipeline starts");
        let target = pipeline.metrics_address().expect("pull endpoint");
        check(
            &p2,
            target,
            || {
                let seen = pipeline.run(std::future::pending(), |_| {});
                assert_eq!(seen.unexpected_panics, 0, "{seen}");
            },
            &pipeline_targets,
        )
    });
    let gateway = std::thread::spawn(move || {
        use outcometer_examples::gateway::{Args, GatewayDemo};
        // Past the first double outage, so fallbacks and no_healthy_backend happen.
        let args = Args {
            duration: Duration::from_secs(8),
            rate: 200,
            seed: 11,
            ..Args::default()
        };
        let demo = GatewayDemo::start(args, env).expect("gateway starts");
        let target = demo.metrics_address().expect("pull endpoint");
        let missing = check(
            &p3,
            target,
            || {
                let seen = demo.run(std::future::pending(), |_| {});
                assert_eq!(seen.unexpected, 0, "{seen}");
            },
            &gateway_targets,
        );
        demo.shutdown().expect("clean shutdown");
        missing
    });
    let mut missing = Vec::new();
    for handle in [demo, pipeline, gateway] {
        missing.extend(handle.join().expect("demo thread"));
    }
    assert!(total >= 50, "the dashboards have their targets: {total}");
    assert!(
        missing.is_empty(),
        "{} of {total} panel targets returned nothing:\n{}",
        missing.len(),
        missing.join("\n")
    );
}
