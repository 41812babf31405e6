//! The gateway demo's command line: `--flag value` or `--flag=value`, nothing else.

use std::time::Duration;

use crate::common::number;
pub use crate::common::ArgsError;

/// The outcome of parsing: run, or print help.
pub type Command = crate::common::Command<Args>;

/// Printed for `--help` and after a bad flag.
pub const USAGE: &str = "\
usage: gateway [--duration SECS] [--rate N] [--namespace NAME] [--seed N] [--models N]
               [--backends N] [--requested-models N] [--latency MS] [--no-metrics]

Runs an LLM gateway on loopback (POST /v1/chat/completions, plain JSON or
stream: true server-sent events, and GET /v1/models, as the OpenAI client
libraries call them) in front of fake model backends reached over loopback HTTP,
with latency, 5xx errors, rate limits (429), timeouts, unhealthy periods found by
health checks, fallbacks from one model to another, streaming with a first-token
delay and token usage. A built-in load generator drives it; outcometer records
what happens: /metrics and /v1/stats on the Prometheus endpoint (default
localhost:9464; OTEL_EXPORTER_PROMETHEUS_HOST and _PORT override it) and OTLP when
OTEL_EXPORTER_OTLP_ENDPOINT is set, with a span per request (OTEL_TRACES_EXPORTER=console
prints them instead). Ctrl-C or SIGTERM stops early, with a flush.

  --duration SECS        how long it runs (default 60)
  --rate N               requests per second of the load generator, 0..=20000; 0 runs the
                         gateway without load, for an outside client (default 50)
  --namespace NAME       metric name prefix (default nexus)
  --seed N               seed of the load and of the backends' faults (default 42)
  --models N             models served, 1..=64 (default 4)
  --backends N           fake backends, 1..=32 (default 3)
  --requested-models N   distinct model names the load asks for, 1..=10000000; names past
                         --models are junk the gateway does not serve (default: --models + 4)
  --latency MS           mean backend latency (the first token when streaming), 0..=10000
                         (default 20)
  --no-metrics           record through outcometer's NoopGatewayMetrics (nothing recorded),
                         to measure what recording costs
  -h, --help             this text";

/// What the gateway demo runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    /// How long the demo runs.
    pub duration: Duration,
    /// Requests per second of the load generator (0: none).
    pub rate: u32,
    /// Metric name prefix.
    pub namespace: String,
    /// Load and fault seed.
    pub seed: u64,
    /// Models served.
    pub models: usize,
    /// Fake backends.
    pub backends: usize,
    /// Distinct model names the load asks for; `None`: `models + 4`.
    pub requested_models: Option<u64>,
    /// Mean backend latency.
    pub latency: Duration,
    /// Record nothing (NoopGatewayMetrics).
    pub no_metrics: bool,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            duration: Duration::from_secs(60),
            rate: 50,
            namespace: "nexus".to_owned(),
            seed: 42,
            models: 4,
            backends: 3,
            requested_models: None,
            latency: Duration::from_millis(20),
            no_metrics: false,
        }
    }
}

impl Args {
    /// Distinct model names the load asks for.
    pub fn requested_models(&self) -> u64 {
        self.requested_models.unwrap_or(self.models as u64 + 4)
    }
}

impl Args {
    /// Parses the arguments after the program name.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, ArgsError> {
        let mut parsed = Args::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "-h" | "--help" => return Ok(Command::Help),
                "--no-metrics" => {
                    parsed.no_metrics = true;
                    continue;
                }
                _ => {}
            }
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            let known = [
                "--duration",
                "--rate",
                "--namespace",
                "--seed",
                "--models",
                "--backends",
                "--requested-models",
                "--latency",
            ];
            if !known.contains(&flag.as_str()) {
                return Err(ArgsError::Unknown(arg));
            }
            let value = match inline.or_else(|| args.next()) {
                Some(v) => v,
                None => return Err(ArgsError::MissingValue(flag)),
            };
            match flag.as_str() {
                "--duration" => {
                    let secs = number(&flag, &value, 0.001, 31_536_000.0, "seconds, 0.001 to one year")?;
                    parsed.duration = Duration::from_secs_f64(secs);
                }
                "--rate" => parsed.rate = number(&flag, &value, 0, 20_000, "0 to 20000 requests/s")?,
                "--seed" => parsed.seed = number(&flag, &value, 0, u64::MAX, "an unsigned 64-bit integer")?,
                "--models" => parsed.models = number(&flag, &value, 1, 64, "1 to 64")?,
                "--backends" => parsed.backends = number(&flag, &value, 1, 32, "1 to 32")?,
                "--requested-models" => {
                    parsed.requested_models = Some(number(&flag, &value, 1, 10_000_000, "1 to 10000000")?)
                }
                "--latency" => {
                    let ms: u64 = number(&flag, &value, 0, 10_000, "0 to 10000 milliseconds")?;
                    parsed.latency = Duration::from_millis(ms);
                }
                _ => parsed.namespace = value,
            }
        }
        Ok(Command::Run(parsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, ArgsError> {
        Args::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn flags_in_both_spellings() {
        let Ok(Command::Run(a)) = parse(&[
            "--duration=2.5",
            "--rate",
            "0",
            "--namespace",
            "gw",
            "--seed=9",
            "--models",
            "7",
            "--backends=5",
            "--requested-models",
            "100000",
            "--latency",
            "0",
            "--no-metrics",
        ]) else {
            panic!("should parse")
        };
        assert_eq!(a.duration, Duration::from_millis(2500));
        assert_eq!((a.rate, a.seed, a.models, a.backends), (0, 9, 7, 5));
        assert_eq!(
            (a.requested_models(), a.latency, a.no_metrics),
            (100_000, Duration::ZERO, true)
        );
        assert_eq!(a.namespace, "gw");
        assert_eq!(parse(&[]), Ok(Command::Run(Args::default())));
        assert_eq!(Args::default().requested_models(), 8);
        assert_eq!(parse(&["-h"]), Ok(Command::Help));
    }

    #[test]
    fn bad_flags_are_named() {
        assert_eq!(
            parse(&["--model", "3"]),
            Err(ArgsError::Unknown("--model".into()))
        );
        assert_eq!(parse(&["--rate"]), Err(ArgsError::MissingValue("--rate".into())));
        for bad in [
            ["--rate", "x"],
            ["--models", "0"],
            ["--backends", "33"],
            ["--requested-models", "0"],
            ["--latency", "-1"],
        ] {
            let err = parse(&bad).expect_err("must fail");
            assert!(err.to_string().starts_with(bad[0]), "{err}");
        }
    }
}
