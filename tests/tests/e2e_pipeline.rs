//! The pipeline demo, scraped by a real Prometheus (Debian's 2.42): every
//! instrument of the six pipeline families appears under its exact Prometheus
//! name, the totals Prometheus holds equal the pipeline's own tally exactly, and
//! every query of the "Pipeline" section of docs/queries.md answers what the
//! pipeline saw. Skips loudly without Prometheus unless `CI=true`.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outcometer::{
    ActionOutcome, CacheResult, CheckpointOutcome, DedupResult, EventOutcome, EvictionCause, QueueOutcome,
    RecoveryResult,
};
use outcometer_examples::pipeline::{quiet_injected_panics, Args, Pipeline, Snapshot};
use outcometer_tests::e2e::{documented_queries, promtool_check_metrics, tool, wait_until, Prometheus};
use outcometer_tests::http_request;

/// The instruments of the pipeline families under namespace `observer`, exactly
/// as the table names them, and whether each is a histogram.
const INSTRUMENTS: [(&str, bool); 18] = [
    ("observer_events_processed_total", false),
    ("observer_events_duration_seconds", true),
    ("observer_events_in_flight", false),
    ("observer_actions_executed_total", false),
    ("observer_actions_duration_seconds", true),
    ("observer_queue_enqueued_total", false),
    ("observer_queue_processed_total", false),
    ("observer_queue_depth", false),
    ("observer_queue_wait_seconds", true),
    ("observer_queue_oldest_age_seconds", false),
    ("observer_cache_gets_total", false),
    ("observer_cache_evictions_total", false),
    ("observer_cache_size_bytes", false),
    ("observer_dedup_checks_total", false),
    ("observer_checkpoint_saves_total", false),
    ("observer_checkpoint_save_duration_seconds", true),
    ("observer_checkpoint_recoveries_total", false),
    ("observer_checkpoint_last_success_timestamp_seconds", false),
];

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// Every outcome the pipeline injects happened at least once.
fn assert_every_outcome_happened(seen: &Snapshot) {
    assert_eq!(
        (seen.in_flight, seen.outstanding, seen.unexpected_panics),
        (0, 0, 0),
        "drained, no bugs: {seen}"
    );
    for &outcome in EventOutcome::ALL {
        assert!(seen.event(outcome) > 0, "{outcome:?}: {seen}");
    }
    for &outcome in ActionOutcome::ALL {
        assert!(seen.action(outcome) > 0, "{outcome:?}: {seen}");
    }
    for &outcome in QueueOutcome::ALL {
        assert!(seen.queue(outcome) > 0, "{outcome:?}: {seen}");
    }
    for &result in CacheResult::ALL {
        assert!(seen.cache(result) > 0, "{result:?}: {seen}");
    }
    for &cause in EvictionCause::ALL {
        assert!(seen.eviction(cause) > 0, "{cause:?}: {seen}");
    }
    for &result in DedupResult::ALL {
        assert!(seen.dedup_of(result) > 0, "{result:?}: {seen}");
    }
    for &outcome in CheckpointOutcome::ALL {
        assert!(seen.save(outcome) > 0, "{outcome:?}: {seen}");
    }
    for &result in RecoveryResult::ALL {
        assert!(seen.recovery(result) > 0, "{result:?}: {seen}");
    }
    assert!(seen.replayed > 0, "restarts read events again: {seen}");
}

#[test]
fn prometheus_scrapes_the_pipeline_and_the_documented_queries_agree() {
    let (Some(prometheus), Some(promtool)) = (
        tool("OUTCOMETER_PROMETHEUS", "prometheus"),
        tool("OUTCOMETER_PROMTOOL", "promtool"),
    ) else {
        return;
    };
    quiet_injected_panics();
    // 9 s: restarts at 3 s (restored) and 6 s (a corrupted checkpoint: failed),
    // after the empty recovery at start-up.
    let args = Args {
        duration: Duration::from_secs(9),
        rate: 150,
        queues: 3,
        actions: 4,
        namespace: "observer".into(),
        seed: 11,
    };
    let pipeline = Pipeline::start(
        args,
        env(&[
            ("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1"),
            ("OTEL_EXPORTER_PROMETHEUS_PORT", "0"),
        ]),
    )
    .expect("pipeline starts");
    let target = pipeline.metrics_address().expect("pull endpoint");
    let server = Prometheus::start(&prometheus, target);
    assert!(
        wait_until(Duration::from_secs(30), || server.scalar("up{job=\"demo\"}")
            == Some(1.0)),
        "Prometheus never scraped the pipeline:\n{}",
        server.output()
    );

    let seen = pipeline.run(std::future::pending(), |_| {});
    assert_every_outcome_happened(&seen);

    // Wait for the scrape that holds the final values.
    let final_scraped = wait_until(Duration::from_secs(20), || {
        let sum = |metric: &str| server.scalar(&format!("sum({metric})"));
        sum("observer_events_processed_total") == Some(seen.events_total() as f64)
            && sum("observer_actions_executed_total") == Some(seen.actions_total() as f64)
            && sum("observer_queue_processed_total") == Some(seen.processed_total() as f64)
            && sum("observer_cache_gets_total") == Some(seen.cache_gets.iter().sum::<u64>() as f64)
            && sum("observer_dedup_checks_total") == Some(seen.dedup.iter().sum::<u64>() as f64)
            && sum("observer_checkpoint_saves_total") == Some(seen.saves.iter().sum::<u64>() as f64)
            && sum("observer_queue_depth") == Some(0.0)
    });
    assert!(
        final_scraped,
        "Prometheus has {:?} events, {:?} actions, {:?} jobs, {:?} saves; the pipeline saw {seen}",
        server.scalar("sum(observer_events_processed_total)"),
        server.scalar("sum(observer_actions_executed_total)"),
        server.scalar("sum(observer_queue_processed_total)"),
        server.scalar("sum(observer_checkpoint_saves_total)"),
    );

    // Every instrument of the table, under its exact name, and nothing else.
    let names: BTreeSet<String> = server
        .query("group by (__name__) ({__name__=~\"observer_.+\"})")
        .into_iter()
        .filter_map(|s| {
            s.labels
                .iter()
                .find_map(|l| l.strip_prefix("__name__=").map(str::to_owned))
        })
        .collect();
    let expected: BTreeSet<String> = INSTRUMENTS
        .iter()
        .flat_map(|&(name, histogram)| match histogram {
            true => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|suffix| format!("{name}{suffix}"))
                .collect(),
            false => vec![name.to_owned()],
        })
        .collect();
    assert_eq!(names, expected);
    assert_eq!(
        server.scalar("sum(outcometer_attribute_overflow_total) or vector(0)"),
        Some(0.0),
        "3 queues, 4 actions and one cache: nothing folds"
    );

    // Exact: what Prometheus holds is what the pipeline's parts counted.
    // (`or vector(0)`: a counter is exported from its first count.)
    let mut exact: Vec<(String, f64)> = Vec::new();
    let mut expect = |q: String, want: u64| exact.push((format!("{q} or vector(0)"), want as f64));
    for &o in EventOutcome::ALL {
        let o_ = o.as_str();
        expect(
            format!("sum(observer_events_processed_total{{outcome=\"{o_}\"}})"),
            seen.event(o),
        );
        expect(
            format!("sum(observer_events_duration_seconds_count{{outcome=\"{o_}\"}})"),
            seen.event(o),
        );
    }
    expect("sum(observer_events_in_flight)".into(), 0);
    for &o in ActionOutcome::ALL {
        let o_ = o.as_str();
        expect(
            format!("sum(observer_actions_executed_total{{outcome=\"{o_}\"}})"),
            seen.action(o),
        );
        expect(
            format!("sum(observer_actions_duration_seconds_count{{outcome=\"{o_}\"}})"),
            seen.action(o),
        );
    }
    expect("sum(observer_queue_enqueued_total)".into(), seen.enqueued);
    for &o in QueueOutcome::ALL {
        let q = format!(
            "sum(observer_queue_processed_total{{outcome=\"{}\"}})",
            o.as_str()
        );
        expect(q, seen.queue(o));
    }
    expect(
        "sum(observer_queue_wait_seconds_count)".into(),
        seen.processed_total(),
    );
    expect("sum(observer_queue_depth)".into(), seen.holding.depth);
    expect("max(observer_queue_oldest_age_seconds)".into(), 0);
    for &r in CacheResult::ALL {
        expect(
            format!("sum(observer_cache_gets_total{{result=\"{}\"}})", r.as_str()),
            seen.cache(r),
        );
    }
    for &c in EvictionCause::ALL {
        expect(
            format!("sum(observer_cache_evictions_total{{cause=\"{}\"}})", c.as_str()),
            seen.eviction(c),
        );
    }
    expect("sum(observer_cache_size_bytes)".into(), seen.holding.cache_bytes);
    for &r in DedupResult::ALL {
        expect(
            format!("sum(observer_dedup_checks_total{{result=\"{}\"}})", r.as_str()),
            seen.dedup_of(r),
        );
    }
    for &o in CheckpointOutcome::ALL {
        let o_ = o.as_str();
        expect(
            format!("sum(observer_checkpoint_saves_total{{outcome=\"{o_}\"}})"),
            seen.save(o),
        );
        expect(
            format!("sum(observer_checkpoint_save_duration_seconds_count{{outcome=\"{o_}\"}})"),
            seen.save(o),
        );
    }
    for &r in RecoveryResult::ALL {
        let q = format!(
            "sum(observer_checkpoint_recoveries_total{{result=\"{}\"}})",
            r.as_str()
        );
        expect(q, seen.recovery(r));
    }
    for (q, want) in &exact {
        assert_eq!(server.scalar(q), Some(*want), "{q}");
    }
    let last_save = seen.last_save_unix().expect("saved");
    let exported = server
        .scalar("observer_checkpoint_last_success_timestamp_seconds")
        .expect("timestamp");
    assert!((exported - last_save).abs() < 1e-3, "{exported} vs {last_save}");
    // The handler's cross-family invariants hold in the export too: one wait, one
    // handler run and one action run per job taken off a queue.
    for q in [
        "sum(observer_events_processed_total)",
        "sum(observer_actions_executed_total)",
        "sum(observer_cache_gets_total)",
    ] {
        assert_eq!(server.scalar(q), Some(seen.processed_total() as f64), "{q}");
    }
    // Same buckets: the all-time p95 of the export is the pipeline's own, but for
    // the microseconds between the decorator's clock and the caller's.
    let p95_all_time = server
        .scalar("histogram_quantile(0.95, sum by (le) (observer_actions_duration_seconds_bucket))")
        .expect("p95");
    let seen_p95 = seen.action_p95().expect("actions ran");
    assert!(
        (p95_all_time - seen_p95).abs() <= 0.05 * seen_p95,
        "{p95_all_time} vs {seen_p95}"
    );
    // Gauges Prometheus sampled during the run stay within what the pipeline saw:
    // never deeper than its deepest, never older than its longest wait.
    let deepest = server
        .scalar("max_over_time(sum(observer_queue_depth)[5m:1s])")
        .expect("depth over time");
    assert!(
        (0.0..=seen.max_depth as f64).contains(&deepest),
        "{deepest} vs {seen}"
    );
    let oldest = server
        .scalar("max_over_time(max(observer_queue_oldest_age_seconds)[5m:1s])")
        .expect("oldest age over time");
    assert!(
        (0.0..=seen.max_wait.as_secs_f64() + 1e-3).contains(&oldest),
        "{oldest} vs {seen}"
    );

    // The documented queries. `rate()` over a window longer than the run misses
    // the value of each series' first scrape and extrapolates half a scrape
    // interval or so at either end: ratios agree within 5 points, and a per-second
    // rate times the 5-minute window is the count within 30 % (plus 2).
    let queries = documented_queries(&["Pipeline"]);
    assert_eq!(queries.len(), 8, "the Pipeline section's queries: {queries:?}");
    for (title, q) in &queries {
        let result = server.query(q);
        assert!(!result.is_empty(), "{title}: {q} returned nothing");
        assert!(
            result.iter().all(|s| s.value.is_finite() && s.value >= 0.0),
            "{title}: {result:?}"
        );
    }
    let query = |title: &str| {
        let (_, q) = queries.iter().find(|(t, _)| t == title).expect(title);
        server.query(q)
    };
    let value = |title: &str| match query(title).as_slice() {
        [one] => one.value,
        other => panic!("{title}: {other:?}"),
    };
    for (title, want) in [
        ("Event failure rate", seen.failure_ratio()),
        ("Cache hit ratio", seen.hit_ratio()),
        ("Duplicate ratio", seen.duplicate_ratio()),
    ] {
        let (got, want) = (value(title), want.expect("non-empty"));
        assert!(
            (got - want).abs() < 0.05,
            "{title}: Prometheus {got}, pipeline {want}"
        );
    }
    let p95 = value("p95 action latency");
    assert!(
        (p95 - seen_p95).abs() <= 0.25 * seen_p95,
        "p95: Prometheus {p95}, pipeline {seen_p95}"
    );
    // Drained: nothing waits in any queue, as the pipeline reported.
    for title in ["Queue depth", "Oldest waiting job"] {
        let per_queue = query(title);
        assert_eq!(per_queue.len(), 3, "{title}: one per queue: {per_queue:?}");
        assert!(per_queue.iter().all(|s| s.value == 0.0), "{title}: {per_queue:?}");
    }
    assert_eq!((seen.holding.depth, seen.holding.oldest), (0, Duration::ZERO));
    let per_outcome = query("Retries and dead letters per second");
    for outcome in [QueueOutcome::Retry, QueueOutcome::DeadLetter] {
        let label = format!("outcome={}", outcome.as_str());
        let per_second = per_outcome
            .iter()
            .find(|s| s.labels.contains(&label))
            .unwrap_or_else(|| panic!("{label} in {per_outcome:?}"))
            .value;
        let (got, want) = (per_second * 300.0, seen.queue(outcome) as f64);
        assert!(
            (got - want).abs() <= 0.3 * want + 2.0,
            "{label}: Prometheus {per_second}/s over 5m = {got}, pipeline {want}"
        );
    }
    let since = value("Time since the last checkpoint");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(
        (since - (now - last_save)).abs() < 2.0,
        "Prometheus says {since}s since the last checkpoint, the pipeline {}s",
        now - last_save
    );

    let scrape = http_request(target, "GET", "/metrics", &[]);
    assert_eq!(scrape.status, 200);
    let (ok, verdict) = promtool_check_metrics(&promtool, &scrape.body);
    assert!(ok, "promtool check metrics rejected the endpoint:\n{verdict}");

    pipeline.shutdown().expect("clean shutdown");
}
