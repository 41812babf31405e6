//! The custom-family example runs, exits 0, and its scrape shows the family's
//! instruments under the pipeline's namespace, bounded, with the folds counted.

use std::process::Command;

#[test]
fn the_custom_family_example_runs_and_stays_bounded() {
    let out = Command::new(env!("CARGO_BIN_EXE_custom_family"))
        .output()
        .expect("run custom_family");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The line of `name` carrying every one of `labels` (the exporter sorts labels).
    let line = |name: &str, labels: &[&str]| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|p| l.contains(p)))
            .unwrap_or_else(|| panic!("no {name} with {labels:?}:\n{stdout}"))
    };
    let processed = "shop_jobs_processed_total";
    assert!(line(processed, &["queue=\"orders_v2\"", "outcome=\"retry\""]).ends_with(" 1"));
    assert!(line("shop_jobs_queue_depth", &["queue=\"emails\""]).ends_with(" 3"));
    assert!(line("shop_jobs_queue_depth", &["queue=\"orders_v2\""]).ends_with(" 0"));
    // 3 queues, then 5 of the 20 tenants fill K = 8; the other 15 fold into `_OTHER`.
    assert!(line(processed, &["queue=\"_OTHER\"", "outcome=\"ack\""]).ends_with(" 15"));
    assert!(line("outcometer_attribute_overflow_total", &["attribute=\"queue\""]).ends_with(" 15"));
    assert!(!stdout.contains("_bucket{"), "bucket lines are left out");
    let queues: std::collections::BTreeSet<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("shop_jobs_processed_total{"))
        .filter_map(|l| l.split("queue=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(queues.len(), 9, "{queues:?}");
    // The overflow counter (33), then 9 queues × 3 outcomes, 9 depths, 9 waits.
    assert!(stdout.contains(&format!("series budget: {}\n", 33 + 9 * 3 + 9 + 9)));
}
