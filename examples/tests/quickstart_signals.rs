//! `quickstart` stops early and flushes on SIGTERM as on Ctrl-C (SIGINT): a
//! container stopping it loses nothing, and it exits 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn stops_cleanly_on(signal: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .arg("60")
        .env_remove("OTEL_METRICS_EXPORTER")
        .env_remove("OTEL_CONFIG_FILE")
        .env("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
        .env("OTEL_EXPORTER_PROMETHEUS_PORT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run quickstart");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("first line");
    assert!(line.starts_with("serving metrics on"), "{line}");
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let status = child.wait().expect("exits");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("rest of stdout");
    assert!(status.success(), "{signal}: {status:?}\n{rest}");
    assert!(start.elapsed() < Duration::from_secs(5), "stopped early");
    assert!(rest.contains("stopping early"), "{rest}");
    assert!(
        rest.contains("quickstart_idempotency_requests_total"),
        "printed its scrape: {rest}"
    );
    assert!(rest.trim_end().ends_with("flushed and shut down"), "{rest}");
}

#[test]
fn sigterm_flushes_and_exits_0() {
    stops_cleanly_on("TERM");
}

#[test]
fn sigint_flushes_and_exits_0() {
    stops_cleanly_on("INT");
}
