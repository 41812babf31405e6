//! The `demo` binary as a user runs it: flags, exit codes, summaries, Ctrl-C,
//! and SIGTERM flushing both signals to a collector.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use outcometer_examples::demo::{Args, Demo};

fn demo() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_demo"));
    command
        .env_remove("OTEL_METRICS_EXPORTER")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
        .env("OTEL_EXPORTER_PROMETHEUS_PORT", "0");
    command
}

#[test]
fn a_bad_flag_prints_usage_and_exits_2() {
    for bad in [
        &["--rate", "fast"][..],
        &["--bogus"],
        &["--users"],
        &["--endpoints", "0"],
        &["--scope-prefix", "9"],
        &["--scope-prefix", "0"],
        &["--admitted-scopes", "0"],
    ] {
        let out = demo().args(bad).output().expect("run demo");
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(bad[0]) && stderr.contains("usage: demo"),
            "{bad:?}: {stderr}"
        );
    }
    let help = demo().arg("--help").output().expect("run demo");
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--endpoints N", "--scope-prefix N", "--admitted-scopes K"] {
        assert!(help.contains(flag), "{flag} in\n{help}");
    }
}

#[test]
fn a_bad_namespace_is_a_setup_error_and_a_bad_otel_variable_a_warning() {
    let out = demo()
        .args(["--namespace", "9 lives"])
        .output()
        .expect("run demo");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--namespace"));
    // The specification's rule: warn, naming the variable, and run on.
    let out = demo()
        .args(["--duration", "1"])
        .env("OTEL_SDK_DISABLED", "1")
        .output()
        .expect("run demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("OTEL_SDK_DISABLED=\"1\""), "{stderr}");
}

#[test]
fn runs_for_its_duration_then_summarises_and_flushes() {
    let out = demo()
        .args(["--duration", "2", "--rate", "100", "--seed", "3"])
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "requests: ",
        "hit ratio",
        "delivery attempts: ",
        "idempotency store: ",
        "fallbacks (read ",
        "series exported",
        "flushed and shut down",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in\n{stdout}");
    }
}

/// Sends `signal` to a running demo and returns what it printed after it.
fn stop_with(signal: &str) -> String {
    let mut child = demo()
        .args(["--duration", "600", "--rate", "50"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn demo");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let banner = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(banner.starts_with("outcometer demo:"), "{banner}");
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("demo exits");
    assert!(status.success(), "{signal}: {status:?}: {rest:?}");
    assert!(started.elapsed() < Duration::from_secs(30), "drain is bounded");
    rest.join("\n")
}

#[test]
fn ctrl_c_stops_early_with_a_flush() {
    let rest = stop_with("-INT");
    assert!(
        rest.contains("Ctrl-C") && rest.contains("flushed and shut down"),
        "{rest}"
    );
}

#[test]
fn sigterm_stops_early_with_a_flush_too() {
    // Containers stop a program with SIGTERM: it must flush like Ctrl-C, exit 0.
    let rest = stop_with("-TERM");
    assert!(
        rest.contains("SIGTERM") && rest.contains("flushed and shut down"),
        "{rest}"
    );
}

#[test]
fn sigterm_flushes_the_spans_and_the_metrics_to_the_collector() {
    let receiver = outcometer_tests::Receiver::http("127.0.0.1:0");
    let mut child = demo()
        .args(["--duration", "600", "--rate", "50"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", receiver.addr))
        .env_remove("OTEL_TRACES_EXPORTER")
        // Nothing is sent before the signal: what arrives, its shutdown flushed.
        .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "600000")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn demo");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let banner = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(banner.starts_with("outcometer demo:"), "{banner}");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(receiver.spans.spans().is_empty(), "nothing before the signal");
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(child.wait().expect("demo exits").success(), "{rest:?}");
    let requests = receiver.spans.named("orders.request");
    assert!(!requests.is_empty(), "the request spans were flushed: {rest:?}");
    assert!(
        requests[0]
            .resource
            .contains(&"service.name=outcometer-demo".to_owned()),
        "{:?}",
        requests[0].resource
    );
    assert!(
        !receiver.spans.named("webhook.delivery_attempt").is_empty(),
        "and the delivery attempts"
    );
    assert!(
        receiver.received.latest("demo.idempotency.requests").is_some(),
        "the metrics too"
    );
}

#[test]
fn large_user_and_endpoint_counts_stay_within_every_declared_bound() {
    let args = Args {
        duration: Duration::from_secs(3),
        rate: 400,
        users: 1_000_000,
        endpoints: 500,
        namespace: "bounds".into(),
        seed: 5,
        ..Args::default()
    };
    let demo = Demo::start(args, |name| {
        (name == "OTEL_EXPORTER_PROMETHEUS_PORT").then(|| "0".to_owned())
    })
    .expect("demo starts");
    let seen = demo.run(std::future::pending(), |_| {});
    assert!(seen.requests() > 500, "{seen}");
    let counts = demo.series_counts();
    // 10 instruments of the two families (both opt-in idempotency histograms on)
    // and the overflow meta counter.
    assert_eq!(counts.len(), 11);
    for count in &counts {
        assert!(count.exported <= count.bound, "{count:?}");
    }
    let attempts = counts
        .iter()
        .find(|c| c.name == "bounds_delivery_attempts_total")
        .expect("attempts");
    assert!(
        attempts.exported > 21,
        "many hosts and results were seen: {attempts:?}"
    );
    let body = demo.telemetry().metrics_service().render();
    let hosts: std::collections::BTreeSet<&str> = body
        .lines()
        .filter(|l| l.starts_with("bounds_delivery_retries_total{"))
        .filter_map(|l| l.split("server_address=\"").nth(1)?.split('"').next())
        .collect();
    assert!(hosts.len() <= 21 && hosts.contains("_OTHER"), "{hosts:?}");
    // 500 endpoints against 20 admitted hosts: the folds are counted.
    let overflow = body
        .lines()
        .find(|l| {
            l.starts_with("outcometer_attribute_overflow_total{")
                && l.contains("attribute=\"server.address\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(overflow > 0.0, "no overflow counted:\n{body}");
    let scopes: std::collections::BTreeSet<&str> = body
        .lines()
        .filter(|l| l.starts_with("bounds_idempotency_requests_total{"))
        .filter_map(|l| l.split("user_scope=\"").nth(1)?.split('"').next())
        .collect();
    assert!(scopes.len() <= 17, "{scopes:?}");
    demo.shutdown().expect("shutdown");
}

/// The `user_scope` values of the idempotency counter in `body`.
fn user_scopes<'a>(body: &'a str, metric: &str) -> std::collections::BTreeSet<&'a str> {
    body.lines()
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with('{'))
        .filter_map(|l| l.split("user_scope=\"").nth(1)?.split('"').next())
        .collect()
}

#[test]
fn full_scopes_with_scope_prefix_8_stay_within_the_admitted_bound() {
    const ADMITTED: usize = 64;
    let args = Args {
        duration: Duration::from_secs(2),
        rate: 300,
        users: 1_000_000,
        namespace: "scopes".into(),
        seed: 8,
        scope_prefix: 8,
        admitted_scopes: ADMITTED,
        ..Args::default()
    };
    let demo = Demo::start(args, |name| {
        (name == "OTEL_EXPORTER_PROMETHEUS_PORT").then(|| "0".to_owned())
    })
    .expect("demo starts");
    let seen = demo.run(std::future::pending(), |_| {});
    // A million users: nearly every request is a new one, far more than K.
    assert!(seen.requests() > 4 * ADMITTED as u64, "{seen}");
    for count in demo.series_counts() {
        assert!(count.exported <= count.bound, "{count:?}");
    }
    let body = demo.telemetry().metrics_service().render();
    let scopes = user_scopes(&body, "scopes_idempotency_requests_total");
    let full_scope = |s: &str| {
        s.len() == 8
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    for scope in &scopes {
        assert!(
            full_scope(scope) || *scope == "anonymous" || *scope == "_OTHER",
            "{scope:?} is not an 8-hex scope"
        );
    }
    assert!(
        scopes.len() <= ADMITTED + 2,
        "{} scopes: {scopes:?}",
        scopes.len()
    );
    let admitted = scopes.iter().filter(|s| full_scope(s)).count();
    assert_eq!(
        admitted, ADMITTED,
        "the first K scopes keep their value: {scopes:?}"
    );
    assert!(scopes.contains("_OTHER"), "{scopes:?}");
    let overflow = body
        .lines()
        .find(|l| {
            l.starts_with("outcometer_attribute_overflow_total{") && l.contains("attribute=\"user_scope\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        overflow > 0.0,
        "more than {ADMITTED} scopes were seen, none counted as overflow:\n{body}"
    );
    demo.shutdown().expect("shutdown");
}
