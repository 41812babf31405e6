//! What the demo saw from the outside: responses as the load generator read them,
//! attempts as the deliverer saw them, requests as the sink received them, and
//! idempotency-store failures as the fault injector caused them. The summaries
//! print these, and the end-to-end tests compare them with what Prometheus and
//! the collector received.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use outcometer::toolkit::DELIVERY_DURATION_BOUNDARIES_SECONDS as DURATION_BOUNDARIES_SECONDS;
use outcometer::{ErrorKind, IdempotencyOutcome, StoreOperation};

const BUCKETS: usize = DURATION_BOUNDARIES_SECONDS.len() + 1;
const OPERATIONS: usize = StoreOperation::ALL.len();
const ERROR_KINDS: usize = ErrorKind::ALL.len();

/// Attempt latencies in the delivery-duration instrument's own buckets, so the
/// summary's p95 is the figure `histogram_quantile` computes from the export.
#[derive(Debug, Default)]
pub struct LatencyBuckets([AtomicU64; BUCKETS]);

impl LatencyBuckets {
    /// Counts one latency.
    pub fn record(&self, latency: Duration) {
        let seconds = latency.as_secs_f64();
        let bucket = DURATION_BOUNDARIES_SECONDS.partition_point(|&upper| upper < seconds);
        self.0[bucket].fetch_add(1, Relaxed);
    }

    fn counts(&self) -> [u64; BUCKETS] {
        std::array::from_fn(|i| self.0[i].load(Relaxed))
    }
}

/// Prometheus's `histogram_quantile` over per-bucket counts with upper bounds
/// `DURATION_BOUNDARIES_SECONDS` (then +Inf): linear within the bucket, the
/// highest finite bound for the +Inf bucket, `None` without observations.
pub fn histogram_quantile(q: f64, counts: &[u64; BUCKETS]) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, &count) in counts.iter().enumerate() {
        if (below + count) as f64 >= rank && count > 0 {
            let Some(&upper) = DURATION_BOUNDARIES_SECONDS.get(i) else {
                return DURATION_BOUNDARIES_SECONDS.last().copied();
            };
            let lower = if i == 0 {
                0.0
            } else {
                DURATION_BOUNDARIES_SECONDS[i - 1]
            };
            return Some(lower + (upper - lower) * ((rank - below as f64) / count as f64));
        }
        below += count;
    }
    DURATION_BOUNDARIES_SECONDS.last().copied()
}

/// Counters shared by the load generator, the deliverer and the sink.
#[derive(Debug, Default)]
pub struct Tally {
    /// Requests by the outcome the API reported, indexed by `IdempotencyOutcome::index`;
    /// a crashed request counts as the `miss` it was when the server took its lock.
    pub outcomes: [AtomicU64; IdempotencyOutcome::ALL.len()],
    /// Requests whose connection the API dropped on purpose (simulated worker crash),
    /// also counted under `miss`.
    pub crashed: AtomicU64,
    /// Requests that failed in a way the scenario does not plan for.
    pub unexpected: AtomicU64,
    /// Delivery attempts answered 2xx.
    pub successes: AtomicU64,
    /// Delivery attempts answered with another status.
    pub failures: AtomicU64,
    /// Delivery attempts without a response, timeouts among them.
    pub errors: AtomicU64,
    /// Delivery attempts that timed out.
    pub timeouts: AtomicU64,
    /// Retries scheduled.
    pub retries: AtomicU64,
    /// Events dead-lettered.
    pub dead_letters: AtomicU64,
    /// Attempt latencies.
    pub latency: LatencyBuckets,
    /// Requests the webhook sink received.
    pub sink_received: AtomicU64,
    /// Idempotency-store operations whose primary the injector failed and whose
    /// fallback answered, indexed by `StoreOperation::index`.
    pub store_fallbacks: [AtomicU64; OPERATIONS],
    /// Idempotency-store operations the injector failed on both stores (the request
    /// was served fail-open), by `StoreOperation::index` then `ErrorKind::index`.
    pub store_errors: [[AtomicU64; ERROR_KINDS]; OPERATIONS],
}

/// A reading of the tally at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Time since the load started.
    pub elapsed: Duration,
    /// Responses by outcome, in `IdempotencyOutcome::ALL` order.
    pub outcomes: [u64; IdempotencyOutcome::ALL.len()],
    /// Dropped on purpose.
    pub crashed: u64,
    /// Unplanned failures.
    pub unexpected: u64,
    /// Delivery attempts answered 2xx.
    pub successes: u64,
    /// Delivery attempts answered non-2xx.
    pub failures: u64,
    /// Delivery attempts without a response.
    pub errors: u64,
    /// Of which timeouts.
    pub timeouts: u64,
    /// Retries.
    pub retries: u64,
    /// Dead letters.
    pub dead_letters: u64,
    /// Attempt latency bucket counts.
    pub latency: [u64; BUCKETS],
    /// Requests the sink received.
    pub sink_received: u64,
    /// Delivery tasks running.
    pub active_tasks: i64,
    /// Store operations answered by the fallback, by `StoreOperation::index`.
    pub store_fallbacks: [u64; OPERATIONS],
    /// Store operations no store answered, by `StoreOperation::index` then `ErrorKind::index`.
    pub store_errors: [[u64; ERROR_KINDS]; OPERATIONS],
}

impl Tally {
    /// Reads every counter.
    pub fn snapshot(&self, elapsed: Duration, active_tasks: i64) -> Snapshot {
        Snapshot {
            elapsed,
            outcomes: std::array::from_fn(|i| self.outcomes[i].load(Relaxed)),
            crashed: self.crashed.load(Relaxed),
            unexpected: self.unexpected.load(Relaxed),
            successes: self.successes.load(Relaxed),
            failures: self.failures.load(Relaxed),
            errors: self.errors.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            retries: self.retries.load(Relaxed),
            dead_letters: self.dead_letters.load(Relaxed),
            latency: self.latency.counts(),
            sink_received: self.sink_received.load(Relaxed),
            active_tasks,
            store_fallbacks: std::array::from_fn(|op| self.store_fallbacks[op].load(Relaxed)),
            store_errors: std::array::from_fn(|op| {
                std::array::from_fn(|kind| self.store_errors[op][kind].load(Relaxed))
            }),
        }
    }
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn percent(r: Option<f64>) -> String {
    r.map_or("-".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

impl Snapshot {
    /// Responses with an idempotency outcome.
    pub fn requests(&self) -> u64 {
        self.outcomes.iter().sum()
    }

    /// Responses with `outcome`.
    pub fn outcome(&self, outcome: IdempotencyOutcome) -> u64 {
        self.outcomes[outcome.index()]
    }

    /// Hits over all requests (the docs' hit-ratio query).
    pub fn hit_ratio(&self) -> Option<f64> {
        ratio(self.outcome(IdempotencyOutcome::Hit), self.requests())
    }

    /// Conflicts over all requests (the docs' conflict-rate query).
    pub fn conflict_ratio(&self) -> Option<f64> {
        ratio(self.outcome(IdempotencyOutcome::Conflict), self.requests())
    }

    /// Delivery attempts.
    pub fn attempts(&self) -> u64 {
        self.successes + self.failures + self.errors
    }

    /// Successful attempts over all attempts (the docs' success-rate query).
    pub fn success_ratio(&self) -> Option<f64> {
        ratio(self.successes, self.attempts())
    }

    /// Store operations of `operation` answered by the fallback store.
    pub fn store_fallbacks_of(&self, operation: StoreOperation) -> u64 {
        self.store_fallbacks[operation.index()]
    }

    /// Store operations answered by the fallback store.
    pub fn store_fallbacks(&self) -> u64 {
        self.store_fallbacks.iter().sum()
    }

    /// Store operations of `operation` that failed with `kind` on both stores.
    pub fn store_errors_of(&self, operation: StoreOperation, kind: ErrorKind) -> u64 {
        self.store_errors[operation.index()][kind.index()]
    }

    /// Store operations that failed on both stores: requests served fail-open.
    pub fn store_errors(&self) -> u64 {
        self.store_errors.iter().flatten().sum()
    }

    /// p95 attempt latency in seconds, bucket-interpolated like Prometheus.
    pub fn p95_seconds(&self) -> Option<f64> {
        histogram_quantile(0.95, &self.latency)
    }

    /// The live one-line summary.
    pub fn line(&self) -> String {
        format!(
            "[{:>5.1}s] requests {} (hit {}, conflict {}) · store fallbacks {}, errors {} · deliveries {} (success {}, p95 {}) · active {}",
            self.elapsed.as_secs_f64(),
            self.requests(),
            percent(self.hit_ratio()),
            percent(self.conflict_ratio()),
            self.store_fallbacks(),
            self.store_errors(),
            self.attempts(),
            percent(self.success_ratio()),
            self.p95_seconds()
                .map_or("-".to_owned(), |s| format!("{:.0}ms", s * 1000.0)),
            self.active_tasks,
        )
    }
}

impl fmt::Display for Snapshot {
    /// The final summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "requests: {} in {:.1}s",
            self.requests(),
            self.elapsed.as_secs_f64()
        )?;
        for outcome in IdempotencyOutcome::ALL {
            writeln!(f, "  {:<22} {}", outcome.as_str(), self.outcome(*outcome))?;
        }
        writeln!(
            f,
            "  hit ratio {}, conflict ratio {}; {} dropped on purpose (worker crash), {} unexpected",
            percent(self.hit_ratio()),
            percent(self.conflict_ratio()),
            self.crashed,
            self.unexpected
        )?;
        let by_operation = |count: &dyn Fn(StoreOperation) -> u64| {
            StoreOperation::ALL
                .iter()
                .map(|&op| format!("{} {}", op.as_str(), count(op)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let kinds: Vec<String> = ErrorKind::ALL
            .iter()
            .map(|&kind| {
                let n: u64 = StoreOperation::ALL
                    .iter()
                    .map(|&op| self.store_errors_of(op, kind))
                    .sum();
                (kind, n)
            })
            .filter(|&(_, n)| n > 0)
            .map(|(kind, n)| format!("{} {n}", kind.as_str()))
            .collect();
        writeln!(
            f,
            "idempotency store: {} fallbacks ({}), {} errors, fail-open ({}{}{})",
            self.store_fallbacks(),
            by_operation(&|op| self.store_fallbacks_of(op)),
            self.store_errors(),
            by_operation(&|op| ErrorKind::ALL.iter().map(|&k| self.store_errors_of(op, k)).sum()),
            if kinds.is_empty() { "" } else { "; " },
            kinds.join(", "),
        )?;
        writeln!(
            f,
            "delivery attempts: {} (success {}, failure {}, error {} of which timeout {}); success {}, p95 {}",
            self.attempts(),
            self.successes,
            self.failures,
            self.errors,
            self.timeouts,
            percent(self.success_ratio()),
            self.p95_seconds()
                .map_or("-".to_owned(), |s| format!("{:.0}ms", s * 1000.0)),
        )?;
        write!(
            f,
            "  retries {}, dead letters {}, received by the sink {}, still active {}",
            self.retries, self.dead_letters, self.sink_received, self.active_tasks
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_matches_prometheus_interpolation() {
        let mut counts = [0u64; BUCKETS];
        assert_eq!(histogram_quantile(0.95, &counts), None);
        // 100 observations in (0.005, 0.01]: p95 is 95% of the way through that bucket.
        counts[1] = 100;
        let p95 = histogram_quantile(0.95, &counts).expect("some");
        assert!((p95 - (0.005 + 0.005 * 0.95)).abs() < 1e-12, "{p95}");
        // Everything above the last bound: the last finite bound.
        let mut high = [0u64; BUCKETS];
        high[BUCKETS - 1] = 3;
        assert_eq!(
            histogram_quantile(0.5, &high),
            DURATION_BOUNDARIES_SECONDS.last().copied()
        );
    }

    #[test]
    fn latency_lands_in_the_instrument_bucket() {
        let buckets = LatencyBuckets::default();
        buckets.record(Duration::from_millis(5)); // le="0.005" (upper bound inclusive)
        buckets.record(Duration::from_millis(6));
        buckets.record(Duration::from_secs(100));
        let c = buckets.counts();
        assert_eq!((c[0], c[1], c[BUCKETS - 1]), (1, 1, 1));
    }
}
