//! The gateway demo: an OpenAI-compatible LLM gateway on loopback in front of
//! fake model backends reached over real loopback HTTP (latency, 5xx, 429,
//! timeouts, outages found by health checks, fallbacks from one model to another,
//! streams with a first-token delay, token usage), driven by a load generator
//! and recorded through outcometer's gateway family (namespace `nexus`): `/metrics`
//! and `/v1/stats` on the pull endpoint. The `gateway` binary is a thin shell
//! around [`GatewayDemo`]; the tests run the same [`GatewayDemo`] in-process.

mod args;
mod backend;
mod http;
mod load;
mod router;
mod tally;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use outcometer::{ConfigError, GatewayMetrics, GatewayRecorder, NoopGatewayMetrics};
use outcometer_exporter::{SetupError, Telemetry};

pub use crate::common::SeriesCount;

pub use args::{Args, ArgsError, Command, USAGE};
pub use backend::{DOWN_FOR, FIRST_OUTAGE, PERIOD};
pub use load::{observe, request_body};
pub use tally::{Observed, Snapshot};

/// Interval of the live summary.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(5);
/// Interval of the health checks.
pub const HEALTH_EVERY: Duration = Duration::from_millis(200);
/// Model names served, in order; past these, `model-N`.
pub const MODEL_NAMES: [&str; 6] = [
    "gpt-4.1",
    "gpt-4.1-mini",
    "llama-3.1-70b",
    "mistral-large",
    "qwen-2.5-72b",
    "claude-sonnet-4",
];

/// Why the gateway demo could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum GatewayDemoError {
    /// The telemetry pipeline's configuration (flags or `OTEL_*` variables).
    #[error(transparent)]
    Telemetry(#[from] SetupError),
    /// The recorder's configuration (e.g. `--namespace`).
    #[error("--namespace: {0}")]
    Recorder(#[from] ConfigError),
    /// Loopback sockets or the runtime.
    #[error("could not start the gateway's servers: {0}")]
    Io(#[from] std::io::Error),
}

/// The name of model `i`.
pub fn model_name(i: usize) -> String {
    MODEL_NAMES
        .get(i)
        .map_or_else(|| format!("model-{i}"), |name| (*name).to_owned())
}

/// A running gateway demo: backends, gateway and health checks up, telemetry
/// exporting, load not yet started.
pub struct GatewayDemo {
    runtime: tokio::runtime::Runtime,
    telemetry: Telemetry,
    recorder: Option<GatewayRecorder>,
    gateway: Arc<router::Gateway>,
    api_addr: SocketAddr,
    tally: Arc<tally::Tally>,
    args: Args,
}

impl std::fmt::Debug for GatewayDemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayDemo")
            .field("api", &self.api_addr)
            .field("metrics", &self.metrics_address())
            .finish_non_exhaustive()
    }
}

impl GatewayDemo {
    /// Builds the pipeline from `args` and the `OTEL_*` variables `env` returns,
    /// and starts the backends, the gateway and its health checks on loopback.
    pub fn start(args: Args, env: impl Fn(&str) -> Option<String>) -> Result<GatewayDemo, GatewayDemoError> {
        // Checked first so the error names the flag, not the pipeline.
        outcometer::toolkit::Namespace::new(&args.namespace)?;
        let (telemetry, tracing) =
            crate::common::telemetry(&args.namespace, "outcometer-gateway-demo", module_path!(), &env)?;
        let models: Vec<String> = (0..args.models).map(model_name).collect();
        let backend_names: Vec<String> = (0..args.backends).map(|i| format!("gpu-{i}")).collect();
        let recorder = if args.no_metrics {
            None
        } else {
            Some(
                GatewayRecorder::builder()
                    .models(models.iter().cloned())
                    .backends(backend_names.iter().cloned())
                    .build(&telemetry.backend())?,
            )
        };
        let metrics: Arc<dyn GatewayMetrics> = match &recorder {
            Some(recorder) => Arc::new(recorder.clone()),
            None => Arc::new(NoopGatewayMetrics),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("gateway")
            .on_thread_start(crate::common::on_thread_start(tracing))
            .enable_all()
            .build()?;
        // Long enough for a normal answer, short enough that a stall is a timeout.
        let timeout = (args.latency * 5).max(Duration::from_millis(250));
        let started = Instant::now();
        let (gateway, api_addr) = runtime.block_on(async {
            let mut upstreams = Vec::new();
            for (i, name) in backend_names.iter().enumerate() {
                let fake = Arc::new(backend::FakeBackend::new(
                    i,
                    args.backends,
                    args.seed,
                    started,
                    args.latency,
                    timeout * 3,
                ));
                let addr = http::serve(move |request| fake.clone().handle(request)).await?;
                upstreams.push(router::Upstream {
                    name: name.clone(),
                    pool: http::Pool::new(addr),
                    healthy: AtomicBool::new(true),
                });
            }
            // Model m runs on backends m and m+1 (mod the count) and falls back to m+1.
            let routes = models
                .iter()
                .enumerate()
                .map(|(m, name)| {
                    let mut on = vec![m % args.backends, (m + 1) % args.backends];
                    on.dedup();
                    router::Route {
                        name: name.clone(),
                        backends: on,
                        fallback: (args.models > 1).then_some((m + 1) % args.models),
                    }
                })
                .collect();
            let gateway = Arc::new(router::Gateway::new(metrics, routes, upstreams, timeout));
            tokio::spawn(gateway.clone().check_health(HEALTH_EVERY));
            let handler = gateway.clone();
            let api_addr = http::serve(move |request| {
                // One span per gateway request; the router records model, backend and outcome.
                let span = tracing::info_span!(
                    "gateway.request",
                    http.request.method = %request.method(),
                    url.path = request.uri().path().to_owned(),
                    model = tracing::field::Empty,
                    backend = tracing::field::Empty,
                    error.type = tracing::field::Empty,
                    http.response.status_code = tracing::field::Empty,
                );
                tracing::Instrument::instrument(handler.clone().handle(request), span)
            })
            .await?;
            Ok::<_, std::io::Error>((gateway, api_addr))
        })?;
        if let Some(recorder) = &recorder {
            let fleet = gateway.clone();
            recorder.set_fleet_callback(move |report| {
                for upstream in &fleet.upstreams {
                    report.backend(&upstream.name, upstream.healthy.load(Relaxed));
                }
                report.models_available(fleet.models_available());
            });
        }
        Ok(GatewayDemo {
            runtime,
            telemetry,
            recorder,
            gateway,
            api_addr,
            tally: Arc::default(),
            args,
        })
    }

    /// Where the Prometheus endpoint (`/metrics`, `/v1/stats`) listens.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.telemetry.prometheus_address()
    }

    /// Where the gateway (`/v1/chat/completions`, `/v1/models`) listens.
    pub fn api_address(&self) -> SocketAddr {
        self.api_addr
    }

    /// The telemetry pipeline.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// The recorder, unless `--no-metrics`.
    pub fn recorder(&self) -> Option<&GatewayRecorder> {
        self.recorder.as_ref()
    }

    /// The models served, in order.
    pub fn models(&self) -> Vec<String> {
        self.gateway.routes.iter().map(|r| r.name.clone()).collect()
    }

    /// Backends whose last health check passed.
    pub fn healthy_backends(&self) -> usize {
        self.gateway
            .upstreams
            .iter()
            .filter(|u| u.healthy.load(Relaxed))
            .count()
    }

    /// What the load generator has seen so far.
    pub fn snapshot(&self, elapsed: Duration) -> Snapshot {
        self.tally.snapshot(elapsed)
    }

    /// Runs the load for `--duration` or until `stop` completes, calling `on_tick`
    /// every [`SUMMARY_EVERY`], waits for every request it started, and returns
    /// the final tally. With `--rate 0` it only serves, for outside clients.
    pub fn run(&self, stop: impl Future<Output = ()>, mut on_tick: impl FnMut(&Snapshot)) -> Snapshot {
        let started = Instant::now();
        let generator = Arc::new(load::LoadGenerator {
            gateway: http::Pool::new(self.api_addr),
            tally: self.tally.clone(),
            rate: self.args.rate,
            models: self.models(),
            requested_models: self.args.requested_models(),
            seed: self.args.seed,
        });
        let (stop_load, stopped) = tokio::sync::watch::channel(false);
        let duration = self.args.duration;
        self.runtime.block_on(async {
            let mut load = tokio::spawn(async move {
                if generator.rate > 0 {
                    generator.run(duration, stopped).await;
                } else {
                    let mut stopped = stopped;
                    let _ = tokio::time::timeout(duration, stopped.changed()).await;
                }
            });
            let mut ticks =
                tokio::time::interval_at(tokio::time::Instant::now() + SUMMARY_EVERY, SUMMARY_EVERY);
            tokio::pin!(stop);
            let mut stopping = false;
            loop {
                tokio::select! {
                    _ = &mut load => break,
                    _ = ticks.tick() => on_tick(&self.snapshot(started.elapsed())),
                    _ = &mut stop, if !stopping => {
                        stopping = true;
                        let _ = stop_load.send(true);
                    }
                }
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
    pub fn shutdown(self) -> Result<(), GatewayDemoError> {
        self.runtime.shutdown_timeout(Duration::from_secs(1));
        self.telemetry.shutdown()?;
        Ok(())
    }
}
