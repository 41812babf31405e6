//! What the gateway demo saw from the outside: every response as the load
//! generator read it, keyed by the `x-nexus-*` headers and the `usage` in the
//! body. The summaries print it; the tests compare it with `/metrics`,
//! `/v1/stats` and Prometheus.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Counts so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Time since the load started.
    pub elapsed: Duration,
    /// Requests sent.
    pub sent: u64,
    /// Requests a backend answered, by the status it answered with.
    pub answered: BTreeMap<u16, u64>,
    /// Requests a backend answered, by the model that served.
    pub by_model: BTreeMap<String, u64>,
    /// Requests a backend answered, by backend.
    pub by_backend: BTreeMap<String, u64>,
    /// Failed requests, by `error_type`.
    pub errors: BTreeMap<String, u64>,
    /// Requests served by another model, by (asked for, served).
    pub fallbacks: BTreeMap<(String, String), u64>,
    /// Prompt tokens of successful answers.
    pub prompt_tokens: u64,
    /// Completion tokens of successful answers.
    pub completion_tokens: u64,
    /// Successful streamed answers (each has a time to first token).
    pub streamed: u64,
    /// Responses the demo cannot explain: no response, a malformed one.
    pub unexpected: u64,
}

impl Snapshot {
    /// Requests a backend answered, any status.
    pub fn answered_total(&self) -> u64 {
        self.answered.values().sum()
    }

    /// Of those, answered 2xx.
    pub fn successful(&self) -> u64 {
        self.answered
            .iter()
            .filter(|(s, _)| (200..300).contains(*s))
            .map(|(_, n)| n)
            .sum()
    }

    /// Failed requests.
    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Failed requests of `error_type`.
    pub fn errors_of(&self, error_type: &str) -> u64 {
        self.errors.get(error_type).copied().unwrap_or(0)
    }

    /// Fallbacks.
    pub fn fallbacks_total(&self) -> u64 {
        self.fallbacks.values().sum()
    }

    /// Requests answered with `status`.
    pub fn answered_with(&self, status: u16) -> u64 {
        self.answered.get(&status).copied().unwrap_or(0)
    }
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per_second = self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9);
        write!(
            f,
            "{:>5.1}s requests: {} sent ({per_second:.0}/s) · answered by a backend: {} ({} 2xx, {} 429, {} 5xx)",
            self.elapsed.as_secs_f64(),
            self.sent,
            self.answered_total(),
            self.successful(),
            self.answered_with(429),
            self.answered.iter().filter(|(s, _)| **s >= 500).map(|(_, n)| n).sum::<u64>(),
        )?;
        write!(f, " · errors: {}", self.errors_total())?;
        if !self.errors.is_empty() {
            let parts: Vec<String> = self.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
            write!(f, " ({})", parts.join(", "))?;
        }
        write!(
            f,
            " · fallbacks: {} · tokens: {} prompt, {} completion · streamed: {} · unexpected: {}",
            self.fallbacks_total(),
            self.prompt_tokens,
            self.completion_tokens,
            self.streamed,
            self.unexpected
        )
    }
}

/// One response as the load generator read it.
#[derive(Debug, Default)]
pub struct Observed {
    /// The status the backend answered with, if one did.
    pub backend_status: Option<u16>,
    /// The model that served.
    pub model: Option<String>,
    /// The backend that served.
    pub backend: Option<String>,
    /// The `error_type` recorded, if the request failed.
    pub error: Option<String>,
    /// The model asked for, when another served.
    pub fallback_from: Option<String>,
    /// Token usage of a successful answer.
    pub usage: Option<(u64, u64)>,
    /// Whether a successful answer was streamed.
    pub streamed: bool,
}

/// The shared tally.
#[derive(Debug, Default)]
pub struct Tally(Mutex<Snapshot>);

impl Tally {
    fn with(&self, f: impl FnOnce(&mut Snapshot)) {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// A request was sent.
    pub fn sent(&self) {
        self.with(|s| s.sent += 1);
    }

    /// A request got no usable response.
    pub fn unexpected(&self) {
        self.with(|s| s.unexpected += 1);
    }

    /// Counts one response.
    pub fn observe(&self, seen: Observed) {
        self.with(|s| {
            if let Some(status) = seen.backend_status {
                *s.answered.entry(status).or_default() += 1;
                if let Some(model) = &seen.model {
                    *s.by_model.entry(model.clone()).or_default() += 1;
                }
                if let Some(backend) = &seen.backend {
                    *s.by_backend.entry(backend.clone()).or_default() += 1;
                }
            }
            if let Some(error) = seen.error {
                *s.errors.entry(error).or_default() += 1;
            }
            if let (Some(from), Some(to)) = (seen.fallback_from, seen.model) {
                *s.fallbacks.entry((from, to)).or_default() += 1;
            }
            if let Some((prompt, completion)) = seen.usage {
                s.prompt_tokens += prompt;
                s.completion_tokens += completion;
                s.streamed += u64::from(seen.streamed);
            }
        });
    }

    /// The counts now, `elapsed` after the load started.
    pub fn snapshot(&self, elapsed: Duration) -> Snapshot {
        let mut snapshot = self.0.lock().unwrap_or_else(PoisonError::into_inner).clone();
        snapshot.elapsed = elapsed;
        snapshot
    }
}
