//! The pipeline's command line: `--flag value` or `--flag=value`, nothing else.

use std::time::Duration;

use crate::common::number;
pub use crate::common::ArgsError;

/// The outcome of parsing: run, or print help.
pub type Command = crate::common::Command<Args>;

/// Printed for `--help` and after a bad flag.
pub const USAGE: &str = "\
usage: pipeline [--duration SECS] [--rate N] [--queues N] [--actions N] [--namespace NAME] [--seed N]

Runs an event pipeline in-process and exports what it does through outcometer.
A producer appends events to a log; a reader drops content duplicates and puts
each event on a job queue; worker tasks take jobs, look the customer up in an LRU
cache (fetched over loopback HTTP on a miss) and run the event's action as a
loopback HTTP call through the action decorator, with a deadline, retries with
backoff and dead letters. The downstream answers slowly, with errors, or with
bodies the handler chokes on; some runs are dropped mid-call. The reader
checkpoints its position to a temporary directory (atomic rename, some writes
fail on purpose) and restarts from its last checkpoint every few seconds.

Metrics: a Prometheus endpoint (default localhost:9464; OTEL_EXPORTER_PROMETHEUS_HOST
and _PORT override it) and OTLP when OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_METRICS_EXPORTER=otlp is set. Spans (one per job) go over OTLP when an endpoint
is set, or to stdout with OTEL_TRACES_EXPORTER=console. Ctrl-C or SIGTERM stops early,
with a flush.

  --duration SECS   how long events are produced (default 60)
  --rate N          events per second, 1..=2000 (default 50)
  --queues N        distinct queue names, 1..=1000000 (default 3); the first 20 keep
                    their name in the queue label, the rest share _OTHER
  --actions N       distinct action names, 1..=1000000 (default 4); the first 20 keep
                    their name in the action label, the rest share _OTHER
  --namespace NAME  metric name prefix (default observer)
  --seed N          seed of the event mix and of the injected faults (default 42)
  -h, --help        this text";

/// What the pipeline runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    /// How long the producer runs.
    pub duration: Duration,
    /// Events per second.
    pub rate: u32,
    /// Distinct queue names.
    pub queues: u32,
    /// Distinct action names.
    pub actions: u32,
    /// Metric name prefix.
    pub namespace: String,
    /// Seed of the event mix and of the faults.
    pub seed: u64,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            duration: Duration::from_secs(60),
            rate: 50,
            queues: 3,
            actions: 4,
            namespace: "observer".to_owned(),
            seed: 42,
        }
    }
}

const FLAGS: [&str; 6] = [
    "--duration",
    "--rate",
    "--queues",
    "--actions",
    "--namespace",
    "--seed",
];

impl Args {
    /// Parses the arguments after the program name.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, ArgsError> {
        let mut parsed = Args::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "-h" || arg == "--help" {
                return Ok(Command::Help);
            }
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            if !FLAGS.contains(&flag.as_str()) {
                return Err(ArgsError::Unknown(arg));
            }
            let Some(value) = inline.or_else(|| args.next()) else {
                return Err(ArgsError::MissingValue(flag));
            };
            match flag.as_str() {
                "--duration" => {
                    let secs = number(&flag, &value, 0.001, 31_536_000.0, "seconds, 0.001 to one year")?;
                    parsed.duration = Duration::from_secs_f64(secs);
                }
                "--rate" => parsed.rate = number(&flag, &value, 1, 2_000, "1 to 2000 events/s")?,
                "--queues" => parsed.queues = number(&flag, &value, 1, 1_000_000, "1 to 1000000")?,
                "--actions" => parsed.actions = number(&flag, &value, 1, 1_000_000, "1 to 1000000")?,
                "--seed" => parsed.seed = number(&flag, &value, 0, u64::MAX, "an unsigned 64-bit integer")?,
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
            "--duration",
            "2.5",
            "--rate=300",
            "--queues",
            "100000",
            "--actions=7",
            "--namespace",
            "shop",
            "--seed",
            "9",
        ]) else {
            panic!("should parse")
        };
        assert_eq!(a.duration, Duration::from_millis(2500));
        assert_eq!((a.rate, a.queues, a.actions, a.seed), (300, 100_000, 7, 9));
        assert_eq!(a.namespace, "shop");
        assert_eq!(parse(&[]), Ok(Command::Run(Args::default())));
        assert_eq!(Args::default().namespace, "observer");
        assert_eq!(parse(&["-h"]), Ok(Command::Help));
    }

    #[test]
    fn bad_flags_are_named() {
        assert_eq!(parse(&["--rat", "3"]), Err(ArgsError::Unknown("--rat".into())));
        assert_eq!(parse(&["extra"]), Err(ArgsError::Unknown("extra".into())));
        assert_eq!(
            parse(&["--queues"]),
            Err(ArgsError::MissingValue("--queues".into()))
        );
        for bad in [
            ["--rate", "0"],
            ["--rate", "2001"],
            ["--queues", "0"],
            ["--actions", "1000001"],
            ["--actions", "x"],
            ["--duration", "NaN"],
            ["--seed", "-1"],
        ] {
            let err = parse(&bad).expect_err("must fail");
            assert!(err.to_string().starts_with(bad[0]), "{err}");
        }
    }
}
