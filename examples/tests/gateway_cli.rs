//! The `gateway` binary as a user runs it (flags, exit codes, summaries, SIGTERM),
//! its bounds under 100,000 junk model names, and its API on the wire as the
//! OpenAI client libraries see it.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use outcometer_examples::gateway::{Args, GatewayDemo};
use serde_json::Value;

fn gateway() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
    command
        .env_remove("OTEL_METRICS_EXPORTER")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        .env("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
        .env("OTEL_EXPORTER_PROMETHEUS_PORT", "0");
    command
}

fn loopback_env(name: &str) -> Option<String> {
    (name == "OTEL_EXPORTER_PROMETHEUS_PORT").then(|| "0".to_owned())
}

#[test]
fn a_bad_flag_prints_usage_and_exits_2() {
    for bad in [
        &["--rate", "fast"][..],
        &["--bogus"],
        &["--models"],
        &["--models", "0"],
        &["--backends", "33"],
        &["--requested-models", "0"],
        &["--latency", "-5"],
    ] {
        let out = gateway().args(bad).output().expect("run gateway");
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(bad[0]) && stderr.contains("usage: gateway"),
            "{bad:?}: {stderr}"
        );
    }
    let help = gateway().arg("--help").output().expect("run gateway");
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--requested-models N", "--no-metrics", "--namespace NAME"] {
        assert!(help.contains(flag), "{flag} in\n{help}");
    }
}

#[test]
fn runs_for_its_duration_then_summarises_and_flushes() {
    let out = gateway()
        .args(["--duration", "2", "--rate", "100", "--seed", "3"])
        .output()
        .expect("run gateway");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "outcometer gateway: API http://127.0.0.1:",
        "requests: ",
        "answered by a backend: ",
        "tokens: ",
        "unexpected: 0",
        "nexus_requests_total",
        "/v1/stats: {\"uptime_seconds\":",
        "flushed and shut down",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in\n{stdout}");
    }
}

/// Sends `signal` to a running gateway and returns what it printed after it.
fn stop_with(signal: &str) -> String {
    let mut child = gateway()
        .args(["--duration", "600", "--rate", "50"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn gateway");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let banner = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(banner.starts_with("outcometer gateway:"), "{banner}");
    std::thread::sleep(Duration::from_millis(1000));
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("gateway exits");
    assert!(status.success(), "{signal}: {status:?}: {rest:?}");
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
    let rest = stop_with("-TERM");
    assert!(
        rest.contains("SIGTERM") && rest.contains("flushed and shut down"),
        "{rest}"
    );
}

#[test]
fn no_metrics_records_nothing_and_still_serves() {
    let out = gateway()
        .args(["--duration", "1", "--rate", "100", "--no-metrics"])
        .output()
        .expect("run gateway");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("recording nothing (--no-metrics)"), "{stdout}");
    assert!(stdout.contains("unexpected: 0"), "{stdout}");
    assert!(!stdout.contains("nexus_requests_total"), "{stdout}");
}

/// The value of the overflow counter for `attribute` in `body`.
fn overflow(body: &str, attribute: &str) -> f64 {
    body.lines()
        .find(|l| {
            l.starts_with("outcometer_attribute_overflow_total{")
                && l.contains(&format!("attribute=\"{attribute}\""))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
}

#[test]
fn a_hundred_thousand_junk_model_names_stay_within_every_declared_bound() {
    let args = Args {
        duration: Duration::from_secs(3),
        rate: 400,
        requested_models: Some(100_000),
        namespace: "junk".into(),
        seed: 5,
        ..Args::default()
    };
    let demo = GatewayDemo::start(args, loopback_env).expect("gateway starts");
    let seen = demo.run(std::future::pending(), |_| {});
    assert_eq!(seen.unexpected, 0, "{seen}");
    assert!(
        seen.errors_of("model_not_found") > 50,
        "junk names were asked for: {seen}"
    );
    let counts = demo.series_counts();
    // The 12 gateway instruments and the overflow meta counter.
    assert_eq!(counts.len(), 13, "{counts:?}");
    for count in &counts {
        assert!(count.exported <= count.bound, "{count:?}");
    }
    let errors = counts
        .iter()
        .find(|c| c.name == "junk_errors_total")
        .expect("errors");
    assert!(errors.exported > 7, "many models were counted: {errors:?}");
    let body = demo.telemetry().metrics_service().render();
    let models: BTreeSet<&str> = body
        .lines()
        .filter(|l| l.starts_with("junk_errors_total{"))
        .filter_map(|l| l.split("model=\"").nth(1)?.split('"').next())
        .collect();
    // The 4 served models, the first 16 others seen, and _OTHER.
    assert!(
        models.len() <= 4 + 16 + 1 && models.contains("_OTHER"),
        "{models:?}"
    );
    assert!(
        overflow(&body, "model") > 0.0,
        "junk names past the bound were folded, and counted:\n{body}"
    );
    // /v1/stats lists the same bounded set.
    let stats: Value = serde_json::from_str(&demo.telemetry().stats_service().render()).expect("stats JSON");
    assert!(stats["models"].as_array().expect("models").len() <= 21, "{stats}");
    demo.shutdown().expect("shutdown");
}

/// One HTTP/1.0 exchange: status, lower-cased headers, body read to the close.
fn exchange(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nAuthorization: Bearer sk-test\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8(raw).expect("UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1)?.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn the_api_speaks_openai_chat_completions_on_the_wire() {
    let args = Args {
        duration: Duration::from_secs(1),
        rate: 0,
        namespace: "wire".into(),
        ..Args::default()
    };
    let demo = GatewayDemo::start(args, loopback_env).expect("gateway starts");
    let api = demo.api_address();

    let (status, headers, body) = exchange(api, "GET", "/v1/models", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    let list: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| {
            assert_eq!(m["object"], "model");
            m["id"].as_str().expect("id")
        })
        .collect();
    assert_eq!(ids, demo.models(), "{body}");

    // Backends fail now and then on purpose: retry until one answers 200, and
    // check every failure on the way has OpenAI's error shape.
    let until_ok = |request: &str| {
        for _ in 0..50 {
            let (status, headers, body) = exchange(api, "POST", "/v1/chat/completions", request);
            if status == 200 {
                return (headers, body);
            }
            let error: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
            assert!(error["error"]["message"].is_string(), "{body}");
            assert!(error["error"]["type"].is_string(), "{body}");
            assert!(header(&headers, "x-nexus-error").is_some(), "{headers:?}");
        }
        panic!("no 200 in 50 attempts of {request}");
    };

    let (headers, body) =
        until_ok(r#"{"model":"gpt-4.1","messages":[{"role":"user","content":"Say hello"}]}"#);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    let completion: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(completion["object"], "chat.completion", "{body}");
    assert!(completion["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("chatcmpl-")));
    assert!(completion["created"].is_u64());
    let choice = &completion["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(choice["message"]["content"].is_string());
    assert_eq!(choice["finish_reason"], "stop");
    let usage = &completion["usage"];
    let (prompt, generated) = (
        usage["prompt_tokens"].as_u64().expect("prompt_tokens"),
        usage["completion_tokens"].as_u64().expect("completion_tokens"),
    );
    assert_eq!(usage["total_tokens"].as_u64(), Some(prompt + generated));

    let (headers, body) = until_ok(
        r#"{"model":"gpt-4.1","messages":[{"role":"user","content":"Say hello"}],"stream":true,"stream_options":{"include_usage":true}}"#,
    );
    assert_eq!(header(&headers, "content-type"), Some("text/event-stream"));
    let events: Vec<&str> = body
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not an SSE data event: {e:?}"))
        })
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{body}");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("JSON chunk"))
        .collect();
    assert!(chunks.len() >= 3, "{body}");
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk", "{chunk}");
        assert_eq!(chunk["model"], "gpt-4.1", "{chunk}");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks[0]["choices"][0]["delta"]["content"].is_string());
    let last = chunks.last().expect("usage chunk");
    assert_eq!(last["choices"], Value::Array(vec![]), "{last}");
    assert!(last["usage"]["completion_tokens"].is_u64(), "{last}");
    assert!(
        chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"),
        "{body}"
    );

    // Unknown models and malformed bodies are OpenAI errors, recorded as such.
    let (status, headers, body) = exchange(
        api,
        "POST",
        "/v1/chat/completions",
        r#"{"model":"no-such-model","messages":[]}"#,
    );
    assert_eq!(status, 404, "{body}");
    assert_eq!(header(&headers, "x-nexus-error"), Some("model_not_found"));
    let (status, _, body) = exchange(api, "POST", "/v1/chat/completions", "not json");
    assert_eq!(status, 400, "{body}");
    let error: Value = serde_json::from_str(&body).expect("JSON error");
    assert_eq!(error["error"]["type"], "invalid_request_error");

    let recorder = demo.recorder().expect("metrics on");
    assert!(recorder.request_count() >= 2);
    assert!(recorder.error_count() >= 2);
    let metrics = demo.telemetry().metrics_service().render();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("wire_time_to_first_token_seconds_count{")
                && l.contains("model=\"gpt-4.1\"")),
        "the stream's first token was timed:\n{metrics}"
    );
    assert!(
        metrics.contains("wire_tokens_total{model=\"gpt-4.1\""),
        "{metrics}"
    );
    demo.shutdown().expect("shutdown");
}
