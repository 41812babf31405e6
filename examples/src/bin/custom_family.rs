//! A family of your own, on the public toolkit only: a closed outcome set, an
//! admitted open name, a gauge and a histogram, built on the pipeline, recorded,
//! and the lines of its scrape printed.
//!
//! `cargo run -p outcometer-examples --bin custom_family`

use std::sync::Arc;
use std::time::Duration;

use outcometer::toolkit::{
    closed, Admission, AdmissionPolicy, Admitted, AdmittedDimension, Counter, Dimension, Family,
    FamilyBuilder, Gauge, Histogram, InstrumentSpec, Names,
};
use outcometer::ConfigError;
use outcometer_exporter::{ExporterKind, Telemetry};

// 1. A closed set: every value and its wire string written out.
outcometer::closed_set! {
    /// How a job ended.
    pub enum JobOutcome: "outcome" {
        /// Done.
        Ack = "ack",
        /// Will run again.
        Retry = "retry",
        /// Gave up.
        DeadLetter = "dead_letter",
    }
}

// 2. The instruments, declared once.
static JOBS: InstrumentSpec =
    InstrumentSpec::counter("jobs.processed", "{job}", "Jobs processed, by queue and outcome.");
static DEPTH: InstrumentSpec = InstrumentSpec::gauge("jobs.queue.depth", "{job}", "Jobs waiting, by queue.");
static WAIT: InstrumentSpec = InstrumentSpec::histogram(
    "jobs.wait",
    "s",
    "Enqueue to start, by queue.",
    &[0.01, 0.1, 1.0, 10.0],
);

// 3. The configuration (what two builds must agree on to share cells).
#[derive(Clone, Debug, PartialEq)]
pub struct JobsConfig {
    queues: AdmissionPolicy,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            queues: AdmissionPolicy::first_k(8),
        }
    }
}

// 4. The recorder: typed handles addressed by their coordinates.
#[derive(Clone)]
pub struct JobMetrics {
    queues: Arc<Admission>,
    jobs: Counter<(Admitted, JobOutcome)>,
    depth: Gauge<Admitted>,
    wait: Histogram<Admitted>,
}

impl Family for JobMetrics {
    const NAME: &'static str = "jobs";
    type Config = JobsConfig;

    fn build(config: &JobsConfig, family: &mut FamilyBuilder<'_>) -> Result<Self, ConfigError> {
        let queues = Arc::new(Admission::new("queue", &config.queues, Names)?);
        let queue = || -> Arc<dyn Dimension> { Arc::new(AdmittedDimension(queues.clone())) };
        Ok(JobMetrics {
            jobs: family.counter(&JOBS, vec![queue(), closed::<JobOutcome>()])?,
            depth: family.gauge(&DEPTH, vec![queue()])?,
            wait: family.histogram(&WAIT, vec![queue()])?,
            queues,
        })
    }
}

// 5. What callers use: names in, bounded coordinates out.
impl JobMetrics {
    pub fn processed(&self, queue: &str, outcome: JobOutcome, waited: Duration) {
        let queue = self.queues.resolve(queue);
        self.jobs.add((queue, outcome), 1);
        self.wait.record(queue, waited.as_secs_f64());
    }

    pub fn depth(&self, queue: &str, jobs: i64) {
        self.depth.set(self.queues.resolve(queue), jobs);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = Telemetry::builder()
        .namespace("shop")
        .exporters([ExporterKind::Prometheus])
        .prometheus_port(0u16)
        .build()?;
    let jobs = outcometer::toolkit::build::<JobMetrics>(&telemetry.backend(), JobsConfig::default())?;
    for (i, queue) in ["emails", "orders_v2", "emails", "invoices"].iter().enumerate() {
        jobs.processed(
            queue,
            JobOutcome::ALL[i % 3],
            Duration::from_millis(40 * i as u64),
        );
    }
    jobs.depth("emails", 3);
    jobs.depth("orders_v2", 0);
    for i in 0..20 {
        // 8 queues are admitted; the rest become `_OTHER`, counted on the overflow counter.
        jobs.processed(&format!("tenant-{i}"), JobOutcome::Ack, Duration::ZERO);
    }
    println!("series budget: {}", telemetry.series_budget());
    let scrape = telemetry.metrics_service().render();
    let ours =
        |l: &&str| (l.starts_with("shop_jobs") || l.starts_with("outcometer_")) && !l.contains("_bucket{");
    scrape.lines().filter(ours).for_each(|line| println!("{line}"));
    telemetry.shutdown()?;
    Ok(())
}
