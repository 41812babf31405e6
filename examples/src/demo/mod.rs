//! The demo service: a payments API honouring `Idempotency-Key` against a
//! two-tier store with injected faults, a webhook deliverer POSTing to an
//! in-process sink with injected faults, and a load generator driving both, all
//! recorded through `outcometer` and exported through `outcometer-exporter`. The
//! `demo` binary is a thin shell around [`Demo`]; the end-to-end tests run the
//! same [`Demo`] in-process.

mod api;
mod args;
mod deliverer;
mod load;
mod pool;
mod rng;
mod server;
mod sink;
mod store;
mod tally;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outcometer::{ConfigError, DeliveryRecorder, IdempotencyRecorder};
use outcometer_exporter::{SetupError, Telemetry};

pub use crate::common::SeriesCount;

pub use api::{CRASH_HEADER, OUTCOME_HEADER};
pub use args::{Args, ArgsError, Command, USAGE};
pub use deliverer::MAX_ATTEMPTS;
pub use load::Scenario;
pub use tally::{histogram_quantile, Snapshot};

/// How long a lock may be held before another request with its key takes over.
/// Short so the demo shows recoveries within seconds; services use tens of seconds.
pub const LOCK_TTL: Duration = Duration::from_secs(1);
/// The longest a webhook attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(300);
/// Interval of the live summary.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(5);
/// The longest the demo waits for started requests and deliveries after the load stops.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Why the demo could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The telemetry pipeline's configuration (flags or `OTEL_*` variables).
    #[error(transparent)]
    Telemetry(#[from] SetupError),
    /// The recorders' configuration (e.g. `--namespace`).
    #[error("--namespace: {0}")]
    Recorder(#[from] ConfigError),
    /// The user-scope label's configuration.
    #[error("--scope-prefix / --admitted-scopes: {0}")]
    Scopes(ConfigError),
    /// Loopback sockets or the runtime.
    #[error("could not start the demo's servers: {0}")]
    Io(#[from] std::io::Error),
}

/// A running demo: servers up, telemetry exporting, load not yet started.
pub struct Demo {
    runtime: tokio::runtime::Runtime,
    telemetry: Telemetry,
    api: Arc<api::Api>,
    api_addr: SocketAddr,
    tally: Arc<tally::Tally>,
    args: Args,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo")
            .field("api", &self.api_addr)
            .field("metrics", &self.metrics_address())
            .finish_non_exhaustive()
    }
}

impl Demo {
    /// Builds the pipeline from `args` and the `OTEL_*` variables `env` returns,
    /// and starts the API and the sink on loopback.
    pub fn start(args: Args, env: impl Fn(&str) -> Option<String>) -> Result<Demo, DemoError> {
        // Checked first so the error names the flag, not the pipeline.
        outcometer::toolkit::Namespace::new(&args.namespace)?;
        let (telemetry, tracing) =
            crate::common::telemetry(&args.namespace, "outcometer-demo", module_path!(), &env)?;
        // The demo shows every instrument, the opt-in histograms included.
        let idempotency = IdempotencyRecorder::builder()
            .scope_prefix_len(args.scope_prefix)
            .admitted_scopes(args.admitted_scopes)
            .key_age_histogram(true)
            .request_duration_histogram(true)
            .build(&telemetry.backend())
            .map_err(|error| match error {
                ConfigError::ScopePrefixLenOutOfRange { .. }
                | ConfigError::NothingAdmitted { .. }
                | ConfigError::TooManyAdmitted { .. } => DemoError::Scopes(error),
                other => DemoError::Recorder(other),
            })?;
        let delivery = Arc::new(DeliveryRecorder::builder().build(&telemetry.backend())?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("demo")
            .on_thread_start(crate::common::on_thread_start(tracing))
            .enable_all()
            .build()?;
        let tally = Arc::new(tally::Tally::default());
        let (api, api_addr) = runtime.block_on(async {
            let sink_tally = tally.clone();
            let seed = args.seed;
            let sink_addr = server::serve(move |request| {
                sink::handle(request, seed, ATTEMPT_TIMEOUT, sink_tally.clone())
            })
            .await?;
            let deliverer = deliverer::Deliverer {
                metrics: delivery,
                routes: Arc::new({
                    let routes = deliverer::Routes::new(args.endpoints, sink_addr)?;
                    if args.sink_down {
                        routes.all_down()
                    } else {
                        routes
                    }
                }),
                tally: tally.clone(),
                attempt_timeout: ATTEMPT_TIMEOUT,
            };
            let faults = store::Faults::new(args.seed, tally.clone());
            let api = Arc::new(api::Api {
                store: store::Store::new(LOCK_TTL, faults, Arc::new(idempotency.clone())),
                metrics: idempotency,
                deliverer,
                next_id: AtomicU64::new(1),
            });
            let handler_api = api.clone();
            let api_addr = server::serve(move |request| {
                // One span per request; the handler records the idempotency outcome.
                let span = tracing::info_span!(
                    "orders.request",
                    http.request.method = %request.method(),
                    idempotency_key = request.headers().contains_key("idempotency-key"),
                    outcome = tracing::field::Empty,
                    http.response.status_code = tracing::field::Empty,
                );
                tracing::Instrument::instrument(handler_api.clone().handle(request), span)
            })
            .await?;
            Ok::<_, std::io::Error>((api, api_addr))
        })?;
        Ok(Demo {
            runtime,
            telemetry,
            api,
            api_addr,
            tally,
            args,
        })
    }

    /// Where the Prometheus endpoint listens.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.telemetry.prometheus_address()
    }

    /// Where the payments API listens.
    pub fn api_address(&self) -> SocketAddr {
        self.api_addr
    }

    /// The telemetry pipeline.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// What the demo has seen so far.
    pub fn snapshot(&self, elapsed: Duration) -> Snapshot {
        self.tally
            .snapshot(elapsed, self.api.deliverer.metrics.active_task_count())
    }

    /// Runs the load for `--duration` or until `stop` completes, calling `on_tick`
    /// every [`SUMMARY_EVERY`]; then waits (at most [`DRAIN_TIMEOUT`]) for started
    /// requests and deliveries, and returns the final tally.
    pub fn run(&self, stop: impl Future<Output = ()>, mut on_tick: impl FnMut(&Snapshot)) -> Snapshot {
        let started = Instant::now();
        let generator = Arc::new(load::LoadGenerator {
            api: Arc::new(pool::ConnectionPool::new(self.api_addr)),
            tally: self.tally.clone(),
            rate: self.args.rate,
            users: self.args.users,
            hooks: (
                self.api.deliverer.routes.host_count(),
                self.api.deliverer.routes.unreachable(),
            ),
            seed: self.args.seed,
            lock_ttl: LOCK_TTL,
        });
        let (stop_load, stopped) = tokio::sync::watch::channel(false);
        self.runtime.block_on(async {
            let mut load = tokio::spawn(generator.run(self.args.duration, stopped));
            let mut ticks =
                tokio::time::interval_at(tokio::time::Instant::now() + SUMMARY_EVERY, SUMMARY_EVERY);
            tokio::pin!(stop);
            let mut stopping = false;
            let deadline = loop {
                tokio::select! {
                    _ = &mut load => break tokio::time::Instant::now() + DRAIN_TIMEOUT,
                    _ = ticks.tick() => on_tick(&self.snapshot(started.elapsed())),
                    _ = &mut stop, if !stopping => {
                        stopping = true;
                        let _ = stop_load.send(true);
                    }
                }
            };
            while self.api.deliverer.metrics.active_task_count() > 0 && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        self.snapshot(started.elapsed())
    }

    /// Exported series per instrument, read from the Prometheus endpoint's body,
    /// against each instrument's declared bound.
    pub fn series_counts(&self) -> Vec<SeriesCount> {
        crate::common::series_counts(&self.telemetry)
    }

    /// Flushes the last interval to every exporter and stops.
    pub fn shutdown(self) -> Result<(), DemoError> {
        self.runtime.shutdown_timeout(Duration::from_secs(1));
        self.telemetry.shutdown()?;
        Ok(())
    }
}
