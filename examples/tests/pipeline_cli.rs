//! The `pipeline` binary as a user runs it (flags, exit codes, summaries,
//! SIGTERM), and the pipeline under 100,000 queue and action names.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use outcometer::{ActionOutcome, EventOutcome, QueueOutcome};
use outcometer_examples::pipeline::{quiet_injected_panics, Args, Pipeline, ADMITTED_NAMES};

fn pipeline() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pipeline"));
    command
        .env_remove("OTEL_METRICS_EXPORTER")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        .env_remove("OTEL_CONFIG_FILE")
        .env("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
        .env("OTEL_EXPORTER_PROMETHEUS_PORT", "0");
    command
}

#[test]
fn a_bad_flag_prints_usage_and_exits_2() {
    for bad in [
        &["--rate", "fast"][..],
        &["--bogus"],
        &["--queues"],
        &["--queues", "0"],
        &["--actions", "1000001"],
        &["--duration", "-1"],
        &["--users", "5"],
    ] {
        let out = pipeline().args(bad).output().expect("run pipeline");
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(bad[0]) && stderr.contains("usage: pipeline"),
            "{bad:?}: {stderr}"
        );
    }
    let help = pipeline().arg("--help").output().expect("run pipeline");
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--queues N",
        "--actions N",
        "--namespace NAME",
        "default observer",
    ] {
        assert!(help.contains(flag), "{flag} in\n{help}");
    }
    let out = pipeline()
        .args(["--namespace", "9 lives"])
        .output()
        .expect("run pipeline");
    assert_eq!(out.status.code(), Some(1), "a bad namespace is a setup error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--namespace"));
}

#[test]
fn a_short_run_exits_0_with_a_final_summary() {
    let out = pipeline()
        .args(["--duration", "2.5", "--rate", "120", "--seed", "3"])
        .output()
        .expect("run pipeline");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        !stderr.contains("panicked"),
        "injected panics are kept off stderr:\n{stderr}"
    );
    assert!(
        stdout.starts_with("outcometer pipeline: metrics http://127.0.0.1:"),
        "{stdout}"
    );
    for expected in [
        "produced in",
        "processed ",
        "actions: ",
        "queues: ",
        "cache profiles: ",
        "dedup: ",
        "checkpoints: ",
        "recoveries: restored 0, empty 1",
        "in flight 0",
        "0 unexpected panics",
        "observer_events_processed_total",
        "observer_checkpoint_last_success_timestamp_seconds",
        "flushed and shut down",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in\n{stdout}");
    }
}

#[test]
fn sigterm_stops_early_with_a_flush() {
    let mut child = pipeline()
        .args(["--duration", "600", "--rate", "80"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn pipeline");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let banner = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(banner.starts_with("outcometer pipeline:"), "{banner}");
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("pipeline exits");
    assert!(status.success(), "{status:?}: {rest:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the drain is bounded"
    );
    let rest = rest.join("\n");
    assert!(
        rest.contains("SIGTERM") && rest.contains("events: ") && rest.contains("flushed and shut down"),
        "{rest}"
    );
}

/// The value of the exposition line for `metric` with `label` among its labels.
fn value(body: &str, metric: &str, label: &str) -> Option<f64> {
    body.lines()
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with('{') && l.contains(label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// The values of `label` on the series of `metric`.
fn label_values<'a>(body: &'a str, metric: &str, label: &str) -> BTreeSet<&'a str> {
    let key = format!("{label}=\"");
    body.lines()
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with('{'))
        .filter_map(|l| l.split(key.as_str()).nth(1)?.split('"').next())
        .collect()
}

#[test]
fn a_hundred_thousand_queue_and_action_names_stay_within_every_declared_bound() {
    quiet_injected_panics();
    const NAMES: u32 = 100_000;
    let args = Args {
        duration: Duration::from_secs(3),
        rate: 300,
        queues: NAMES,
        actions: NAMES,
        namespace: "bounds".into(),
        seed: 5,
    };
    let pipeline = Pipeline::start(args, |name| {
        (name == "OTEL_EXPORTER_PROMETHEUS_PORT").then(|| "0".to_owned())
    })
    .expect("pipeline starts");
    let seen = pipeline.run(std::future::pending(), |_| {});
    assert!(seen.events_total() > 500, "{seen}");
    assert_eq!((seen.in_flight, seen.unexpected_panics), (0, 0), "{seen}");
    let counts = pipeline.series_counts();
    // The 18 instruments of the six families and the overflow meta counter.
    assert_eq!(counts.len(), 19, "{counts:?}");
    for count in &counts {
        assert!(count.exported <= count.bound, "{count:?}");
    }
    let body = pipeline.telemetry().metrics_service().render();
    for (metric, label) in [
        ("bounds_queue_enqueued_total", "queue"),
        ("bounds_queue_processed_total", "queue"),
        ("bounds_queue_depth", "queue"),
        ("bounds_queue_oldest_age_seconds", "queue"),
        ("bounds_queue_wait_seconds_count", "queue"),
        ("bounds_actions_executed_total", "action"),
        ("bounds_actions_duration_seconds_count", "action"),
    ] {
        let values = label_values(&body, metric, label);
        assert!(
            values.len() <= ADMITTED_NAMES + 1 && values.contains("_OTHER") && values.len() > 1,
            "{metric}: {values:?}"
        );
    }
    // Every name past the first 20 folded once, when it was resolved; the demo
    // counted the same folds from the labels its names got.
    for (attribute, names) in [("queue", seen.queue_names), ("action", seen.action_names)] {
        assert_eq!(names.given, u64::from(NAMES));
        assert_eq!(names.labels, ADMITTED_NAMES as u64 + 1, "{names:?}");
        assert_eq!(names.folded, u64::from(NAMES) - ADMITTED_NAMES as u64);
        let overflow = value(
            &body,
            "outcometer_attribute_overflow_total",
            &format!("attribute=\"{attribute}\""),
        );
        assert_eq!(overflow, Some(names.folded as f64), "{attribute}");
    }
    assert_eq!(
        value(
            &body,
            "outcometer_attribute_overflow_total",
            "attribute=\"cache\""
        ),
        None,
        "one cache name, no folds"
    );
    // The families still add up under _OTHER.
    let sum = |metric: &str| -> f64 {
        body.lines()
            .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with('{'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(sum("bounds_queue_enqueued_total"), seen.enqueued as f64);
    assert_eq!(sum("bounds_queue_processed_total"), seen.processed_total() as f64);
    assert_eq!(sum("bounds_actions_executed_total"), seen.actions_total() as f64);
    assert_eq!(sum("bounds_queue_depth"), 0.0, "drained");
    assert_eq!(
        seen.events_total(),
        seen.event(EventOutcome::Success) + seen.event(EventOutcome::Failure)
    );
    assert_eq!(
        seen.queue(QueueOutcome::Success),
        seen.action(ActionOutcome::Success)
    );
    pipeline.shutdown().expect("shutdown");
}
