//! The demo's command line: `--flag value` or `--flag=value`, nothing else.

use std::time::Duration;

use outcometer::toolkit::{DEFAULT_ADMITTED_SCOPES, MAX_ADMITTED};

use crate::common::number;
pub use crate::common::ArgsError;

/// The outcome of parsing: run, or print help.
pub type Command = crate::common::Command<Args>;

/// Printed for `--help` and after a bad flag.
pub const USAGE: &str = "\
usage: demo [--duration SECS] [--rate N] [--users N] [--endpoints N] [--namespace NAME] [--seed N]
            [--scope-prefix N] [--admitted-scopes K] [--sink-down]

Runs a small payments API that honours Idempotency-Key and a webhook deliverer,
drives both with a built-in load generator, and exports what happens through
outcometer: a Prometheus endpoint (default localhost:9464; OTEL_EXPORTER_PROMETHEUS_HOST
and _PORT override it) and OTLP when OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_METRICS_EXPORTER=otlp is set. Spans (one per request, delivery and attempt) go
over OTLP when an endpoint is set, or to stdout with OTEL_TRACES_EXPORTER=console.
Ctrl-C stops early, with a flush.

  --duration SECS   how long the load runs (default 60)
  --rate N          API requests per second, 1..=20000 (default 50)
  --users N         distinct users, 1..=10000000 (default 100)
  --endpoints N     distinct webhook hosts, 1..=100000 (default 5; one is unreachable when N > 1)
  --namespace NAME  metric name prefix (default demo)
  --seed N          seed of the scenario and of the injected faults (webhook answers,
                    idempotency-store failures) (default 42)
  --scope-prefix N  hex characters of the anonymised user scope kept in the user_scope
                    label, 1..=8 (default 1: 16 prefixes and anonymous); 4 and more keep
                    the first K prefixes seen and fold the rest into _OTHER
  --admitted-scopes K
                    that K, for --scope-prefix 4..=8: 1..=4096 (default 1000)
  --sink-down       fault: every webhook host refuses connections, so every delivery
                    attempt fails and every event is dead-lettered (to see the alerts fire)
  -h, --help        this text";

/// What the demo runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    /// How long the load generator runs.
    pub duration: Duration,
    /// API requests per second.
    pub rate: u32,
    /// Distinct users.
    pub users: u64,
    /// Distinct webhook hosts.
    pub endpoints: u32,
    /// Metric name prefix.
    pub namespace: String,
    /// Scenario and fault seed.
    pub seed: u64,
    /// Hex characters of the user scope kept in the `user_scope` label (1–8).
    pub scope_prefix: u8,
    /// For scope prefixes of 4–8 characters: how many distinct prefixes keep their value.
    pub admitted_scopes: usize,
    /// Fault: every webhook host refuses connections (`--sink-down`).
    pub sink_down: bool,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            duration: Duration::from_secs(60),
            rate: 50,
            users: 100,
            endpoints: 5,
            namespace: "demo".to_owned(),
            seed: 42,
            scope_prefix: 1,
            admitted_scopes: DEFAULT_ADMITTED_SCOPES,
            sink_down: false,
        }
    }
}

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
            let known = [
                "--duration",
                "--rate",
                "--users",
                "--endpoints",
                "--namespace",
                "--seed",
                "--scope-prefix",
                "--admitted-scopes",
            ];
            // The one switch: it takes no value.
            if arg == "--sink-down" {
                parsed.sink_down = true;
                continue;
            }
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
                "--rate" => parsed.rate = number(&flag, &value, 1, 20_000, "1 to 20000 requests/s")?,
                "--users" => parsed.users = number(&flag, &value, 1, 10_000_000, "1 to 10000000")?,
                "--endpoints" => parsed.endpoints = number(&flag, &value, 1, 100_000, "1 to 100000")?,
                "--seed" => parsed.seed = number(&flag, &value, 0, u64::MAX, "an unsigned 64-bit integer")?,
                "--scope-prefix" => {
                    parsed.scope_prefix = number(&flag, &value, 1, 8, "1 to 8 hex characters")?
                }
                "--admitted-scopes" => {
                    parsed.admitted_scopes = number(&flag, &value, 1, MAX_ADMITTED, "1 to 4096")?
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
            "--duration",
            "2.5",
            "--rate=300",
            "--users",
            "7",
            "--endpoints=40",
            "--namespace",
            "shop",
            "--seed",
            "9",
            "--scope-prefix=8",
            "--admitted-scopes",
            "64",
        ]) else {
            panic!("should parse")
        };
        assert_eq!(a.duration, Duration::from_millis(2500));
        assert_eq!((a.rate, a.users, a.endpoints, a.seed), (300, 7, 40, 9));
        assert_eq!(a.namespace, "shop");
        assert_eq!((a.scope_prefix, a.admitted_scopes), (8, 64));
        assert_eq!(parse(&[]), Ok(Command::Run(Args::default())));
        assert_eq!(parse(&["--help"]), Ok(Command::Help));
    }

    #[test]
    fn sink_down_is_a_switch() {
        let Ok(Command::Run(a)) = parse(&["--sink-down", "--rate", "5"]) else {
            panic!("should parse")
        };
        assert!(a.sink_down);
        assert_eq!(a.rate, 5);
        assert!(!Args::default().sink_down);
        // A switch takes no value: `--sink-down=yes` is not it.
        assert_eq!(
            parse(&["--sink-down=yes"]),
            Err(ArgsError::Unknown("--sink-down=yes".into()))
        );
    }

    #[test]
    fn bad_flags_are_named() {
        assert_eq!(parse(&["--rat", "3"]), Err(ArgsError::Unknown("--rat".into())));
        assert_eq!(parse(&["extra"]), Err(ArgsError::Unknown("extra".into())));
        assert_eq!(parse(&["--rate"]), Err(ArgsError::MissingValue("--rate".into())));
        for bad in [
            ["--rate", "0"],
            ["--rate", "x"],
            ["--users", "-1"],
            ["--duration", "NaN"],
            ["--scope-prefix", "0"],
            ["--scope-prefix", "9"],
            ["--admitted-scopes", "0"],
            ["--admitted-scopes", "4097"],
        ] {
            let err = parse(&bad).expect_err("must fail");
            assert!(err.to_string().starts_with(bad[0]), "{err}");
        }
    }
}
