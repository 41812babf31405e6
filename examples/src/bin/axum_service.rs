//! `/metrics` served from your own axum router, next to your routes: no second
//! server, no second port. Starts, takes a few orders, scrapes itself once over
//! loopback, prints what it got, and shuts down with a flush.
//!
//! `cargo run -p outcometer-examples --bin axum_service`

use std::time::Duration;

use axum::routing::post;
use axum::Router;
use outcometer::prelude::*;
use outcometer::{IdempotencyOutcome, IdempotencyRecorder};
use outcometer_exporter::{ExporterKind, Telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The Prometheus exporter without its own server: the router serves it.
    let telemetry = Telemetry::builder()
        .service_name("orders")
        .namespace("orders")
        .exporters([ExporterKind::Prometheus])
        .build_without_pull_server()?;
    let idempotency = IdempotencyRecorder::builder()
        .request_duration_histogram(true)
        .build(&telemetry.backend())?;

    let app = Router::new()
        .route(
            "/orders",
            post(move |body: String| async move {
                let scope = idempotency.scope(&body);
                idempotency.record_miss(scope);
                idempotency.record_request_duration(IdempotencyOutcome::Miss, Duration::from_millis(2));
                "created\n"
            }),
        )
        .route_service("/metrics", telemetry.metrics_service());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    println!("serving http://{addr}/orders and http://{addr}/metrics");

    for user in ["ada", "grace", "linus"] {
        request(addr, "POST", "/orders", user).await?;
    }
    let scrape = request(addr, "GET", "/metrics", "").await?;
    for line in scrape.lines().filter(|l| l.starts_with("orders_")) {
        println!("{line}");
    }
    server.abort();
    telemetry.shutdown()?;
    Ok(())
}

/// A minimal HTTP/1.1 request over loopback; returns the body.
async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default())
}
