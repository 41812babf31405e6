//! What the pipeline saw, counted by its own parts as things happen, beside (not
//! from) the recorders: the summaries print it, and the tests compare it with
//! what the exporter and Prometheus received.

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outcometer::toolkit::{ACTIONS_DURATION_BOUNDARIES_SECONDS, EVENTS_DURATION_BOUNDARIES_SECONDS};
use outcometer::{
    ActionOutcome, CacheResult, CheckpointOutcome, DedupResult, EventOutcome, EvictionCause, QueueOutcome,
    RecoveryResult,
};

const EVENT_BUCKETS: usize = EVENTS_DURATION_BOUNDARIES_SECONDS.len() + 1;
const ACTION_BUCKETS: usize = ACTIONS_DURATION_BOUNDARIES_SECONDS.len() + 1;

/// Durations in an instrument's own buckets, so a quantile of these is the one
/// `histogram_quantile` computes from the export.
#[derive(Debug)]
pub struct Buckets<const N: usize> {
    bounds: &'static [f64],
    counts: [AtomicU64; N],
}

impl<const N: usize> Buckets<N> {
    const fn new(bounds: &'static [f64]) -> Self {
        Buckets {
            bounds,
            counts: [const { AtomicU64::new(0) }; N],
        }
    }

    /// Counts one duration (upper bounds inclusive, like Prometheus's `le`).
    pub fn record(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let bucket = self.bounds.partition_point(|&upper| upper < seconds);
        self.counts[bucket.min(N - 1)].fetch_add(1, Relaxed);
    }

    fn read(&self) -> BucketCounts {
        BucketCounts {
            bounds: self.bounds,
            counts: self.counts.iter().map(|c| c.load(Relaxed)).collect(),
        }
    }
}

/// Per-bucket counts (the last one is +Inf) with their upper bounds.
#[derive(Clone, Debug, PartialEq)]
pub struct BucketCounts {
    /// Finite upper bounds, seconds.
    pub bounds: &'static [f64],
    /// Counts, one more than `bounds`.
    pub counts: Vec<u64>,
}

impl BucketCounts {
    /// Prometheus's `histogram_quantile`: linear within the bucket, the highest
    /// finite bound for the +Inf bucket, `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let mut below = 0u64;
        for (i, &count) in self.counts.iter().enumerate() {
            if (below + count) as f64 >= rank && count > 0 {
                let Some(&upper) = self.bounds.get(i) else {
                    return self.bounds.last().copied();
                };
                let lower = if i == 0 { 0.0 } else { self.bounds[i - 1] };
                return Some(lower + (upper - lower) * ((rank - below as f64) / count as f64));
            }
            below += count;
        }
        self.bounds.last().copied()
    }

    /// Observations.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Names given against names that kept their own label value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Names {
    /// Distinct names in use.
    pub given: u64,
    /// Distinct label values they map to, `_OTHER` included.
    pub labels: u64,
    /// Names folded into `_OTHER` (each counted once on the overflow counter).
    pub folded: u64,
}

/// Counters shared by the pipeline's parts.
#[derive(Debug)]
pub struct Tally {
    /// Handler runs by `EventOutcome::index`.
    pub events: [AtomicU64; EventOutcome::ALL.len()],
    /// Handler run durations, all outcomes.
    pub event_latency: Buckets<EVENT_BUCKETS>,
    /// Handlers running now.
    pub in_flight: AtomicI64,
    /// Action runs by `ActionOutcome::index`, as the caller saw them end.
    pub actions: [AtomicU64; ActionOutcome::ALL.len()],
    /// Action run durations, all outcomes, as the caller timed them.
    pub action_latency: Buckets<ACTION_BUCKETS>,
    /// Panics that were not the injected ones (a bug).
    pub unexpected_panics: AtomicU64,
    /// Jobs put on a queue: first tries and retries.
    pub enqueued: AtomicU64,
    /// Jobs taken off a queue by `QueueOutcome::index`.
    pub processed: [AtomicU64; QueueOutcome::ALL.len()],
    /// Events not finished yet (waiting, running, or backing off before a retry).
    pub outstanding: AtomicI64,
    /// The deepest the queues were, all together.
    pub max_depth: AtomicU64,
    /// The longest a job waited, in microseconds.
    pub max_wait_micros: AtomicU64,
    /// Cache lookups by `CacheResult::index`.
    pub cache_gets: [AtomicU64; CacheResult::ALL.len()],
    /// Cache evictions by `EvictionCause::index`.
    pub evictions: [AtomicU64; EvictionCause::ALL.len()],
    /// Deduplication checks by `DedupResult::index`.
    pub dedup: [AtomicU64; DedupResult::ALL.len()],
    /// Events read again after a restart went back to an older position.
    pub replayed: AtomicU64,
    /// Checkpoint saves by `CheckpointOutcome::index`.
    pub saves: [AtomicU64; CheckpointOutcome::ALL.len()],
    /// Unix time of the last successful save, as `f64` bits (0: none yet).
    pub last_save_bits: AtomicU64,
    /// Recoveries by `RecoveryResult::index`.
    pub recoveries: [AtomicU64; RecoveryResult::ALL.len()],
    /// Why the last failed recovery failed.
    pub recovery_failure: Mutex<Option<String>>,
    /// Action calls the downstream server received.
    pub downstream_actions: AtomicU64,
    /// Profile fetches the downstream server received.
    pub downstream_profiles: AtomicU64,
    /// Events the producer appended.
    pub produced: AtomicU64,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            events: Default::default(),
            event_latency: Buckets::new(&EVENTS_DURATION_BOUNDARIES_SECONDS),
            in_flight: AtomicI64::new(0),
            actions: Default::default(),
            action_latency: Buckets::new(&ACTIONS_DURATION_BOUNDARIES_SECONDS),
            unexpected_panics: AtomicU64::new(0),
            enqueued: AtomicU64::new(0),
            processed: Default::default(),
            outstanding: AtomicI64::new(0),
            max_depth: AtomicU64::new(0),
            max_wait_micros: AtomicU64::new(0),
            cache_gets: Default::default(),
            evictions: Default::default(),
            dedup: Default::default(),
            replayed: AtomicU64::new(0),
            saves: Default::default(),
            last_save_bits: AtomicU64::new(0),
            recoveries: Default::default(),
            recovery_failure: Mutex::new(None),
            downstream_actions: AtomicU64::new(0),
            downstream_profiles: AtomicU64::new(0),
            produced: AtomicU64::new(0),
        }
    }
}

/// What the queues and the cache hold at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Holding {
    /// Jobs waiting, all queues.
    pub depth: u64,
    /// The oldest waiting job's age, zero when none waits.
    pub oldest: Duration,
    /// Bytes in the cache.
    pub cache_bytes: u64,
}

/// A reading of the tally at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Time since the producer started.
    pub elapsed: Duration,
    /// Handler runs by `EventOutcome::index`.
    pub events: [u64; EventOutcome::ALL.len()],
    /// Handler run durations.
    pub event_latency: BucketCounts,
    /// Handlers running.
    pub in_flight: i64,
    /// Action runs by `ActionOutcome::index`.
    pub actions: [u64; ActionOutcome::ALL.len()],
    /// Action run durations.
    pub action_latency: BucketCounts,
    /// Panics that were not injected.
    pub unexpected_panics: u64,
    /// Jobs enqueued (retries included).
    pub enqueued: u64,
    /// Jobs processed by `QueueOutcome::index`.
    pub processed: [u64; QueueOutcome::ALL.len()],
    /// Events not finished.
    pub outstanding: i64,
    /// Deepest the queues were.
    pub max_depth: u64,
    /// Longest wait.
    pub max_wait: Duration,
    /// Cache lookups by `CacheResult::index`.
    pub cache_gets: [u64; CacheResult::ALL.len()],
    /// Evictions by `EvictionCause::index`.
    pub evictions: [u64; EvictionCause::ALL.len()],
    /// Dedup checks by `DedupResult::index`.
    pub dedup: [u64; DedupResult::ALL.len()],
    /// Events read again after restarts.
    pub replayed: u64,
    /// Saves by `CheckpointOutcome::index`.
    pub saves: [u64; CheckpointOutcome::ALL.len()],
    /// The last successful save.
    pub last_save: Option<SystemTime>,
    /// Recoveries by `RecoveryResult::index`.
    pub recoveries: [u64; RecoveryResult::ALL.len()],
    /// Why the last failed recovery failed.
    pub recovery_failure: Option<String>,
    /// Action calls received downstream.
    pub downstream_actions: u64,
    /// Profile fetches received downstream.
    pub downstream_profiles: u64,
    /// Events produced.
    pub produced: u64,
    /// What is held now.
    pub holding: Holding,
    /// Queue names and their labels.
    pub queue_names: Names,
    /// Action names and their labels.
    pub action_names: Names,
}

fn load<const N: usize>(counters: &[AtomicU64; N]) -> [u64; N] {
    std::array::from_fn(|i| counters[i].load(Relaxed))
}

impl Tally {
    /// Notes a successful save finished at `at`.
    pub fn saved_at(&self, at: SystemTime) {
        let secs = at.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        self.last_save_bits.store(secs.to_bits(), Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self, elapsed: Duration, holding: Holding, names: (Names, Names)) -> Snapshot {
        let last_save = f64::from_bits(self.last_save_bits.load(Relaxed));
        Snapshot {
            elapsed,
            events: load(&self.events),
            event_latency: self.event_latency.read(),
            in_flight: self.in_flight.load(Relaxed),
            actions: load(&self.actions),
            action_latency: self.action_latency.read(),
            unexpected_panics: self.unexpected_panics.load(Relaxed),
            enqueued: self.enqueued.load(Relaxed),
            processed: load(&self.processed),
            outstanding: self.outstanding.load(Relaxed),
            max_depth: self.max_depth.load(Relaxed),
            max_wait: Duration::from_micros(self.max_wait_micros.load(Relaxed)),
            cache_gets: load(&self.cache_gets),
            evictions: load(&self.evictions),
            dedup: load(&self.dedup),
            replayed: self.replayed.load(Relaxed),
            saves: load(&self.saves),
            last_save: (last_save > 0.0).then(|| UNIX_EPOCH + Duration::from_secs_f64(last_save)),
            recoveries: load(&self.recoveries),
            recovery_failure: self
                .recovery_failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            downstream_actions: self.downstream_actions.load(Relaxed),
            downstream_profiles: self.downstream_profiles.load(Relaxed),
            produced: self.produced.load(Relaxed),
            holding,
            queue_names: names.0,
            action_names: names.1,
        }
    }
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn percent(r: Option<f64>) -> String {
    r.map_or("-".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

fn millis(seconds: Option<f64>) -> String {
    match seconds {
        None => "-".to_owned(),
        Some(0.0) => "0ms".to_owned(),
        Some(s) if s < 0.01 => format!("{:.1}ms", s * 1000.0),
        Some(s) => format!("{:.0}ms", s * 1000.0),
    }
}

impl Snapshot {
    /// Handler runs ending with `outcome`.
    pub fn event(&self, outcome: EventOutcome) -> u64 {
        self.events[outcome.index()]
    }

    /// Handler runs.
    pub fn events_total(&self) -> u64 {
        self.events.iter().sum()
    }

    /// Failed handler runs over all runs (the docs' failure-rate query).
    pub fn failure_ratio(&self) -> Option<f64> {
        ratio(self.event(EventOutcome::Failure), self.events_total())
    }

    /// Action runs ending with `outcome`.
    pub fn action(&self, outcome: ActionOutcome) -> u64 {
        self.actions[outcome.index()]
    }

    /// Action runs.
    pub fn actions_total(&self) -> u64 {
        self.actions.iter().sum()
    }

    /// p95 action duration in seconds, bucket-interpolated like Prometheus.
    pub fn action_p95(&self) -> Option<f64> {
        self.action_latency.quantile(0.95)
    }

    /// Jobs taken off a queue with `outcome`.
    pub fn queue(&self, outcome: QueueOutcome) -> u64 {
        self.processed[outcome.index()]
    }

    /// Jobs taken off a queue.
    pub fn processed_total(&self) -> u64 {
        self.processed.iter().sum()
    }

    /// Cache lookups with `result`.
    pub fn cache(&self, result: CacheResult) -> u64 {
        self.cache_gets[result.index()]
    }

    /// Hits over lookups (the docs' hit-ratio query).
    pub fn hit_ratio(&self) -> Option<f64> {
        ratio(self.cache(CacheResult::Hit), self.cache_gets.iter().sum())
    }

    /// Entries evicted for `cause`.
    pub fn eviction(&self, cause: EvictionCause) -> u64 {
        self.evictions[cause.index()]
    }

    /// Dedup checks with `result`.
    pub fn dedup_of(&self, result: DedupResult) -> u64 {
        self.dedup[result.index()]
    }

    /// Duplicates over checks (the docs' duplicate-ratio query).
    pub fn duplicate_ratio(&self) -> Option<f64> {
        ratio(self.dedup_of(DedupResult::Duplicate), self.dedup.iter().sum())
    }

    /// Saves with `outcome`.
    pub fn save(&self, outcome: CheckpointOutcome) -> u64 {
        self.saves[outcome.index()]
    }

    /// Recoveries with `result`.
    pub fn recovery(&self, result: RecoveryResult) -> u64 {
        self.recoveries[result.index()]
    }

    /// The last successful save as Unix seconds.
    pub fn last_save_unix(&self) -> Option<f64> {
        self.last_save
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64())
    }

    /// How long ago the last successful save was, now.
    pub fn since_last_save(&self) -> Option<Duration> {
        self.last_save.map(|t| t.elapsed().unwrap_or_default())
    }

    /// The live one-line summary.
    pub fn line(&self) -> String {
        format!(
            "[{:>5.1}s] events {} (failed {}) · actions p95 {} (timeout {}, cancelled {}, panic {}) · waiting {} (oldest {}) · retries {}, dead letters {} · cache hits {} · duplicates {} · checkpoint {} ago",
            self.elapsed.as_secs_f64(),
            self.events_total(),
            percent(self.failure_ratio()),
            millis(self.action_p95()),
            self.action(ActionOutcome::Timeout),
            self.action(ActionOutcome::Cancelled),
            self.action(ActionOutcome::Panic),
            self.holding.depth,
            millis(Some(self.holding.oldest.as_secs_f64())),
            self.queue(QueueOutcome::Retry),
            self.queue(QueueOutcome::DeadLetter),
            percent(self.hit_ratio()),
            percent(self.duplicate_ratio()),
            self.since_last_save()
                .map_or("-".to_owned(), |d| format!("{:.1}s", d.as_secs_f64())),
        )
    }
}

fn names(names: &Names, what: &str) -> String {
    format!(
        "{} {what} names → {} {what} label values{}",
        names.given,
        names.labels,
        if names.folded > 0 {
            format!(" ({} names folded into _OTHER)", names.folded)
        } else {
            String::new()
        }
    )
}

impl fmt::Display for Snapshot {
    /// The final summary: exact counts per family.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "events: {} produced in {:.1}s; dedup: {} checks (unique {}, duplicate {}; {} duplicates), {} read again after restarts",
            self.produced,
            self.elapsed.as_secs_f64(),
            self.dedup.iter().sum::<u64>(),
            self.dedup_of(DedupResult::Unique),
            self.dedup_of(DedupResult::Duplicate),
            percent(self.duplicate_ratio()),
            self.replayed,
        )?;
        writeln!(
            f,
            "  processed {} (success {}, failure {}; {} failed), p95 {}, in flight {}",
            self.events_total(),
            self.event(EventOutcome::Success),
            self.event(EventOutcome::Failure),
            percent(self.failure_ratio()),
            millis(self.event_latency.quantile(0.95)),
            self.in_flight,
        )?;
        let by_outcome: Vec<String> = ActionOutcome::ALL
            .iter()
            .map(|&o| format!("{} {}", o.as_str(), self.action(o)))
            .collect();
        writeln!(
            f,
            "actions: {} runs ({}), p95 {}; {}",
            self.actions_total(),
            by_outcome.join(", "),
            millis(self.action_p95()),
            names(&self.action_names, "action"),
        )?;
        writeln!(
            f,
            "queues: {} enqueued; taken off: success {}, retry {}, dead_letter {}; waiting {} (oldest {}), at most {} waited, longest wait {}; {}",
            self.enqueued,
            self.queue(QueueOutcome::Success),
            self.queue(QueueOutcome::Retry),
            self.queue(QueueOutcome::DeadLetter),
            self.holding.depth,
            millis(Some(self.holding.oldest.as_secs_f64())),
            self.max_depth,
            millis(Some(self.max_wait.as_secs_f64())),
            names(&self.queue_names, "queue"),
        )?;
        let causes: Vec<String> = EvictionCause::ALL
            .iter()
            .map(|&c| format!("{} {}", c.as_str(), self.eviction(c)))
            .collect();
        writeln!(
            f,
            "cache {}: {} gets (hit {}, miss {}; {} hits), evictions: {}; {} bytes held",
            super::CACHE_NAME,
            self.cache_gets.iter().sum::<u64>(),
            self.cache(CacheResult::Hit),
            self.cache(CacheResult::Miss),
            percent(self.hit_ratio()),
            causes.join(", "),
            self.holding.cache_bytes,
        )?;
        writeln!(
            f,
            "checkpoints: {} saves (success {}, failure {}), last {}; recoveries: restored {}, empty {}, failed {}{}",
            self.saves.iter().sum::<u64>(),
            self.save(CheckpointOutcome::Success),
            self.save(CheckpointOutcome::Failure),
            self.since_last_save()
                .map_or("never".to_owned(), |d| format!("{:.1}s ago", d.as_secs_f64())),
            self.recovery(RecoveryResult::Restored),
            self.recovery(RecoveryResult::Empty),
            self.recovery(RecoveryResult::Failed),
            self.recovery_failure
                .as_ref()
                .map_or(String::new(), |why| format!(" (last: {why})")),
        )?;
        write!(
            f,
            "downstream (loopback HTTP): {} action calls, {} profile fetches; {} unexpected panics",
            self.downstream_actions, self.downstream_profiles, self.unexpected_panics,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_matches_prometheus_interpolation() {
        let buckets: Buckets<ACTION_BUCKETS> = Buckets::new(&ACTIONS_DURATION_BOUNDARIES_SECONDS);
        assert_eq!(buckets.read().quantile(0.95), None);
        for _ in 0..100 {
            buckets.record(Duration::from_millis(7)); // (0.005, 0.01]
        }
        let p95 = buckets.read().quantile(0.95).unwrap();
        assert!((p95 - (0.005 + 0.005 * 0.95)).abs() < 1e-12, "{p95}");
        let high: Buckets<ACTION_BUCKETS> = Buckets::new(&ACTIONS_DURATION_BOUNDARIES_SECONDS);
        high.record(Duration::from_secs(1000));
        assert_eq!(high.read().quantile(0.5), Some(60.0));
        let edge: Buckets<EVENT_BUCKETS> = Buckets::new(&EVENTS_DURATION_BOUNDARIES_SECONDS);
        edge.record(Duration::from_millis(1)); // le="0.001": upper bounds are inclusive
        assert_eq!(edge.read().counts[0], 1);
    }
}
