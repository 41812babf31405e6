//! Records a short idempotency and webhook-delivery scenario, serves it on the
//! Prometheus pull endpoint (default localhost:9464, or `OTEL_EXPORTER_PROMETHEUS_*`),
//! pushes OTLP too when `OTEL_METRICS_EXPORTER` says so, prints its own scrape, and
//! shuts down with a flush: at the end, or early on Ctrl-C or SIGTERM.
//!
//! `cargo run -p outcometer-examples --bin quickstart [seconds]`

use std::time::Duration;

use outcometer::{DeliveryMetrics, DeliveryRecorder, ErrorKind, IdempotencyMetrics, IdempotencyRecorder};
use outcometer_exporter::{ExporterKind, ShutdownSignal, Telemetry};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = match std::env::args().nth(1) {
        None => 3,
        Some(arg) => arg
            .parse()
            .map_err(|_| format!("usage: quickstart [seconds]; got {arg:?}"))?,
    };
    // Listening first: from here SIGTERM (a container stopping) flushes like Ctrl-C.
    let signal = ShutdownSignal::listen()?;
    let telemetry = Telemetry::builder()
        .service_name("outcometer-quickstart")
        .namespace("quickstart")
        // Always serve Prometheus; push OTLP only if OTEL_METRICS_EXPORTER asks.
        .add_exporter(ExporterKind::Prometheus)
        .default_exporters([])
        .build()?;
    let addr = telemetry
        .prometheus_address()
        .ok_or("the Prometheus endpoint did not start")?;
    println!("serving metrics on http://{addr}/metrics for {seconds}s");

    let idempotency = IdempotencyRecorder::builder().build(&telemetry.backend())?;
    let delivery = DeliveryRecorder::builder().build(&telemetry.backend())?;
    let users = ["ada@example.com", "grace@example.com", "linus@example.com", ""];
    let hooks = [
        "https://hooks.example.com/a?token=x",
        "https://partner.example.org/webhook",
    ];
    let ticks = seconds * 10;
    for tick in 0..ticks {
        let scope = idempotency.scope(users[tick as usize % users.len()]);
        match tick % 10 {
            0..=5 => idempotency.record_miss(scope),
            6..=7 => idempotency.record_hit(scope, Duration::from_secs(tick * 7)),
            8 => idempotency.record_conflict(scope, Duration::from_secs(400)),
            _ => idempotency.record_in_flight(scope, Duration::from_millis(300)),
        }
        let hook = hooks[tick as usize % hooks.len()];
        let _task = delivery.track_active_task();
        match tick % 20 {
            0 => delivery.record_delivery_failure(hook, 503, Duration::from_millis(900)),
            1 => delivery.record_delivery_error(hook, ErrorKind::Timeout, Duration::from_secs(5)),
            _ => delivery.record_delivery_success(hook, Duration::from_millis(20 + tick % 200)),
        }
        if let Some(received) = signal.wait_timeout(Duration::from_millis(100)) {
            println!("{received}: stopping early");
            break;
        }
    }
    let body = telemetry.metrics_service().render();
    for line in body
        .lines()
        .filter(|l| l.starts_with("quickstart_") && !l.contains("_bucket{"))
    {
        println!("{line}");
    }
    telemetry.shutdown()?;
    println!("flushed and shut down");
    Ok(())
}
