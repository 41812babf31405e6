//! The axum example serves `/metrics` from its own router and exits 0.

use std::process::Command;

#[test]
fn the_axum_example_serves_metrics_from_its_router() {
    let out = Command::new(env!("CARGO_BIN_EXE_axum_service"))
        .output()
        .expect("run axum_service");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let misses: f64 = stdout
        .lines()
        .filter(|l| l.starts_with("orders_idempotency_requests_total{") && l.contains("outcome=\"miss\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(misses, 3.0, "{stdout}");
    assert!(
        stdout.contains("orders_idempotency_request_duration_seconds_count{outcome=\"miss\"} 3"),
        "{stdout}"
    );
}
