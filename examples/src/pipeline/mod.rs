//! The pipeline demo: an event pipeline (an "observer" of entity changes) whose six families
//! of metrics come from real parts. A producer appends events to a log; a reader
//! deduplicates them by content, queues them on named job queues and checkpoints
//! its position to disk; worker tasks run each event's handler, which looks a
//! profile up in an LRU cache and calls the event's action over loopback HTTP
//! through the action decorator, with retries and dead letters. Faults are
//! injected where real systems meet them (slow, failing and garbled answers,
//! lost leases, failing disk writes, corrupted checkpoints), and every part keeps
//! its own tally beside the recorders, so the tests can compare the two. The
//! `pipeline` binary is a thin shell around [`Pipeline`]; the tests run the same
//! [`Pipeline`] in-process.

mod args;
mod checkpoint;
mod dedup;
mod downstream;
mod jobs;
mod lru;
mod reader;
// The demo's seeded generator and loopback server loop, compiled again here: they
// are private to the demo, and exactly what the pipeline needs.
#[allow(clippy::duplicate_mod)]
#[path = "../demo/rng.rs"]
mod rng;
#[allow(clippy::duplicate_mod)]
#[path = "../demo/server.rs"]
mod server;
mod source;
mod tally;
mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use outcometer::toolkit::Namespace;
use outcometer::{
    ActionRecorder, AdmissionPolicy, CacheRecorder, CheckpointRecorder, ConfigError, DedupRecorder,
    EventProcessingRecorder, QueueRecorder,
};
use outcometer_exporter::{SetupError, Telemetry};

pub use crate::common::SeriesCount;
pub use args::{Args, ArgsError, Command, USAGE};
pub use downstream::{Answer, PREEMPTED_ANSWER_AFTER};
pub use reader::{DEDUP_WINDOW, FAILING_SAVES_PERCENT, REREAD_ON_FAILURE, RESTART_EVERY, SAVE_EVERY};
pub use tally::{BucketCounts, Holding, Names, Snapshot};
pub use worker::{LEASE_LOST_AFTER, MAX_ATTEMPTS};

/// How many queue names, and how many action names, keep their own label value.
pub const ADMITTED_NAMES: usize = 20;
/// The cache's name.
pub const CACHE_NAME: &str = "profiles";
/// Bytes the profile cache may hold.
pub const CACHE_BYTES: usize = 64 * 1024;
/// How long a cached profile lives.
pub const CACHE_TTL: Duration = Duration::from_secs(2);
/// The longest an action may run.
pub const ACTION_DEADLINE: Duration = Duration::from_millis(250);
/// Interval of the live summary.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(5);
/// The longest the pipeline waits for queued work after the producer stops.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// How every injected panic's message starts (the binary keeps them off stderr).
pub const INJECTED_PANIC: &str = "injected fault";

const QUEUE_NAMES: [&str; 5] = ["orders", "emails", "webhooks", "search", "billing"];
const ACTION_NAMES: [&str; 6] = [
    "send_webhook",
    "send_email",
    "index_document",
    "notify_slack",
    "sync_crm",
    "charge_card",
];

/// The name of queue `i`: a few familiar ones, then `queue-<i>`.
pub fn queue_name(i: u32) -> String {
    QUEUE_NAMES
        .get(i as usize)
        .map_or_else(|| format!("queue-{i}"), |n| (*n).to_owned())
}

/// The name of action `i`: a few familiar ones, then `action-<i>`.
pub fn action_name(i: u32) -> String {
    ACTION_NAMES
        .get(i as usize)
        .map_or_else(|| format!("action-{i}"), |n| (*n).to_owned())
}

/// Keeps the injected panics (the garbled answers the handler chokes on) off
/// stderr; every other panic is reported as before. Idempotent.
pub fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !worker::is_injected(info.payload()) {
                previous(info);
            }
        }));
    });
}

/// Resolves `count` names, each once and in order, to label handles; returns
/// one value per distinct label (the first name's), each name's label, and the
/// counts. With first-K admission the first `capacity` labels are names of their
/// own and any label after them is `_OTHER`, so names mapping past them folded.
fn resolve_names<T>(
    count: u32,
    name: impl Fn(u32) -> String,
    mut resolve: impl FnMut(&str) -> T,
    same: impl Fn(&T, &T) -> bool,
    capacity: usize,
) -> (Vec<T>, Vec<u32>, Names) {
    let mut labels: Vec<T> = Vec::new();
    let mut label_of = Vec::with_capacity(count as usize);
    let mut folded = 0;
    for i in 0..count {
        let resolved = resolve(&name(i));
        let label = match labels.iter().position(|l| same(l, &resolved)) {
            Some(at) => at,
            None => {
                labels.push(resolved);
                labels.len() - 1
            }
        };
        if label >= capacity {
            folded += 1;
        }
        label_of.push(label as u32);
    }
    let names = Names {
        given: u64::from(count),
        labels: labels.len() as u64,
        folded,
    };
    (labels, label_of, names)
}

/// Why the pipeline could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The telemetry pipeline's configuration (`OTEL_*` variables).
    #[error(transparent)]
    Telemetry(#[from] SetupError),
    /// The recorders' configuration (e.g. `--namespace`).
    #[error("--namespace: {0}")]
    Recorder(#[from] ConfigError),
    /// Loopback sockets, the runtime or the checkpoint directory.
    #[error("could not start the pipeline: {0}")]
    Io(#[from] std::io::Error),
}

/// A started pipeline: servers up, telemetry exporting, no events yet.
pub struct Pipeline {
    runtime: tokio::runtime::Runtime,
    telemetry: Telemetry,
    args: Args,
    tally: Arc<tally::Tally>,
    log: Arc<source::Log>,
    queues: Arc<jobs::JobQueues>,
    workers: Arc<worker::Workers>,
    reader: Mutex<Option<reader::Reader>>,
    names: (Names, Names),
    worker_count: usize,
    downstream: SocketAddr,
    scratch: checkpoint::ScratchDir,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("downstream", &self.downstream)
            .field("metrics", &self.metrics_address())
            .field("checkpoints", &self.scratch.path())
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Builds the telemetry pipeline from `args` and the `OTEL_*` variables `env`
    /// returns, every part of the event pipeline, and starts the downstream
    /// server on loopback.
    pub fn start(args: Args, env: impl Fn(&str) -> Option<String>) -> Result<Pipeline, PipelineError> {
        // Checked first so the error names the flag, not the pipeline.
        Namespace::new(&args.namespace)?;
        let (telemetry, tracing) =
            crate::common::telemetry(&args.namespace, "outcometer-pipeline", module_path!(), &env)?;
        let backend = telemetry.backend();
        let names = AdmissionPolicy::first_k(ADMITTED_NAMES);
        let events = EventProcessingRecorder::builder().build(&backend)?;
        let actions = ActionRecorder::builder().actions(names.clone()).build(&backend)?;
        let queue_metrics = QueueRecorder::builder().queues(names).build(&backend)?;
        let cache_metrics = CacheRecorder::builder().build(&backend)?;
        let dedup_metrics = DedupRecorder::builder().build(&backend)?;
        let checkpoints = CheckpointRecorder::builder().build(&backend)?;

        // Every name is resolved once, here, as a service would when it loads its
        // queues and actions: the folds are counted once per name.
        let (queue_labels, queue_names) =
            jobs::Labels::for_queues(&queue_metrics, args.queues, ADMITTED_NAMES);
        let (executors, executor_of, action_names) = resolve_names(
            args.actions,
            action_name,
            |name| worker::configure(actions.executor(name)),
            |a, b| a.action() == b.action(),
            ADMITTED_NAMES,
        );

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pipeline")
            .on_thread_start(crate::common::on_thread_start(tracing))
            .enable_all()
            .build()?;
        let tally = Arc::new(tally::Tally::default());
        let scratch = checkpoint::ScratchDir::new("pipeline")?;
        let store = Arc::new(checkpoint::CheckpointStore::open(scratch.path().join("reader"))?);
        let downstream = runtime.block_on({
            let (tally, seed) = (tally.clone(), args.seed);
            server::serve(move |request| downstream::handle(request, seed, tally.clone()))
        })?;
        let log = Arc::new(source::Log::default());
        let queues = Arc::new(jobs::JobQueues::new(queue_labels, queue_metrics, tally.clone()));
        let lru = lru::Lru::new(CACHE_BYTES, CACHE_TTL);
        let workers = Arc::new(worker::Workers {
            queues: queues.clone(),
            events,
            cache: worker::ProfileCache::new(lru, cache_metrics, CACHE_NAME, tally.clone()),
            executors,
            executor_of,
            client: downstream::Client::new(downstream),
            tally: tally.clone(),
            seed: args.seed,
        });
        let reader = reader::Reader::new(
            log.clone(),
            queues.clone(),
            dedup_metrics,
            store,
            checkpoints,
            tally.clone(),
            args.seed,
        );
        // About one worker per 12 events/s: busy enough for queues to form in bursts.
        let worker_count = (args.rate as usize).div_ceil(12).clamp(4, 256);
        Ok(Pipeline {
            runtime,
            telemetry,
            args,
            tally,
            log,
            queues,
            workers,
            reader: Mutex::new(Some(reader)),
            names: (queue_names, action_names),
            worker_count,
            downstream,
            scratch,
        })
    }

    /// Where the Prometheus endpoint listens.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.telemetry.prometheus_address()
    }

    /// The telemetry pipeline.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Where the checkpoints are written.
    pub fn checkpoint_dir(&self) -> &Path {
        self.scratch.path()
    }

    /// How many worker tasks serve the queues.
    pub fn worker_count(&self) -> usize {
        self.worker_count
    }

    /// What the pipeline has seen so far.
    pub fn snapshot(&self, elapsed: Duration) -> Snapshot {
        let (depth, oldest) = self.queues.holding();
        let holding = Holding {
            depth,
            oldest,
            cache_bytes: self.workers.cache.bytes(),
        };
        self.tally.snapshot(elapsed, holding, self.names)
    }

    /// Produces events for `--duration` or until `stop` completes, calling
    /// `on_tick` every [`SUMMARY_EVERY`]; then lets the reader finish the log
    /// and save a last checkpoint, waits (at most [`DRAIN_TIMEOUT`]) for queued
    /// and retrying jobs, stops the workers and returns the final tally. Runs once.
    pub fn run(&self, stop: impl Future<Output = ()>, mut on_tick: impl FnMut(&Snapshot)) -> Snapshot {
        let started = Instant::now();
        let reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner).take();
        let producer = source::Producer {
            log: self.log.clone(),
            rate: self.args.rate,
            queues: self.args.queues,
            actions: self.args.actions,
            seed: self.args.seed,
        };
        let (stop_producing, stopped) = tokio::sync::watch::channel(false);
        self.runtime.block_on(async {
            let reader = tokio::spawn(async move {
                if let Some(reader) = reader {
                    reader.run().await;
                }
            });
            let mut workers = tokio::task::JoinSet::new();
            for _ in 0..self.worker_count {
                workers.spawn(self.workers.clone().work());
            }
            let (tally, duration) = (self.tally.clone(), self.args.duration);
            let mut producer = tokio::spawn(async move {
                let produced = producer.run(duration, stopped).await;
                tally
                    .produced
                    .store(produced, std::sync::atomic::Ordering::Relaxed);
            });
            let mut ticks =
                tokio::time::interval_at(tokio::time::Instant::now() + SUMMARY_EVERY, SUMMARY_EVERY);
            tokio::pin!(stop);
            let mut stopping = false;
            loop {
                tokio::select! {
                    _ = &mut producer => break,
                    _ = ticks.tick() => on_tick(&self.snapshot(started.elapsed())),
                    _ = &mut stop, if !stopping => {
                        stopping = true;
                        let _ = stop_producing.send(true);
                    }
                }
            }
            let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
            let _ = tokio::time::timeout_at(deadline, reader).await;
            while self.tally.outstanding.load(std::sync::atomic::Ordering::Relaxed) > 0
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            self.queues.close();
            let _ = tokio::time::timeout_at(deadline, async { while workers.join_next().await.is_some() {} })
                .await;
        });
        self.snapshot(started.elapsed())
    }

    /// Exported series per instrument, read from the Prometheus endpoint's body,
    /// against each instrument's declared bound.
    pub fn series_counts(&self) -> Vec<SeriesCount> {
        crate::common::series_counts(&self.telemetry)
    }

    /// Flushes the last interval to every exporter, stops, and removes the
    /// checkpoint directory.
    pub fn shutdown(self) -> Result<(), PipelineError> {
        self.runtime.shutdown_timeout(Duration::from_secs(1));
        self.telemetry.shutdown()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_past_the_capacity() {
        let (labels, label_of, names) = resolve_names(
            6,
            queue_name,
            |name| {
                if name.starts_with("queue-") {
                    "_OTHER".to_owned()
                } else {
                    name.to_owned()
                }
            },
            |a, b| a == b,
            5,
        );
        assert_eq!(
            labels,
            ["orders", "emails", "webhooks", "search", "billing", "_OTHER"]
        );
        assert_eq!(label_of, [0, 1, 2, 3, 4, 5]);
        assert_eq!((names.given, names.labels, names.folded), (6, 6, 1));
        assert_eq!(action_name(0), "send_webhook");
        assert_eq!(action_name(99_999), "action-99999");
    }
}
